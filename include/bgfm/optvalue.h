/* optvalue.h: one pipeline option value (bgfm_value of a bgfm_opt, config.h) from its
 * text: integer/real/boolean syntax, ranges, enum choices (nearest choice suggested),
 * list values. Used by the pipeline loader for values and table defaults.
 * Not the document structure (config.h) and not the YAML tree (yamltree.h). */
#ifndef BGFM_OPTVALUE_H
#define BGFM_OPTVALUE_H

#include <stddef.h>

#include "bgfm/config.h"

/* Parse text s (quoted: it was a quoted YAML scalar) as a value of option o into v.
 * Returns 0; 1 when the text is not a valid value, with the problem in `why` and a
 * suggestion (nearest choice) in `near` or ""; an error code when an allocation fails. */
int optvalue_parse(const bgfm_opt *o, const char *s, int quoted, bgfm_value *v, char *why,
                   size_t nwhy, char *near, size_t nnear, bgfm_err *e);
/* Free v's string and list (v stays usable). */
void optvalue_clear(bgfm_value *v);
/* Append a copy of s to v's list. */
int optvalue_list_add(bgfm_value *v, const char *s, bgfm_err *e);
/* 1 when s holds a control character (newline, tab, ...): refused in every value. */
int optvalue_has_control(const char *s);
/* "an integer", "true or false", ... for messages. */
const char *optvalue_type_want(const bgfm_opt *o);
/* Nearest of `cands` to `word` by edit distance (optimal string alignment, case
 * insensitive; NULL if nothing is close): the "did you mean" of every message. */
const char *optvalue_nearest(const char *word, const char *const *cands, int n);
/* An enum's choices ("a|b|c") as "a, b, c" for messages. */
void optvalue_choices_text(const char *choices, char *out, size_t nout);

#endif
