/* strlist.h: lists of strings: "a,b,c" split into a malloc'ed array, and its free; and
 * the other way, a name appended to such a list in a fixed buffer. Not a string library:
 * the split and join the graph store and timeseries.h5 need (comma-separated names in a
 * file attribute). Non-collective. */
#ifndef BGFM_STRLIST_H
#define BGFM_STRLIST_H

#include <stddef.h>
#include <stdint.h>

#include "bgfm/ctx.h"

/* Split s at every `sep` into *n malloc'ed strings (*out malloc'ed; "" gives 0 items,
 * "a," gives "a" and ""). 0 or BGFM_ENOMEM. */
int strlist_split(const char *s, char sep, char ***out, int *n, bgfm_err *e);
/* Free n strings and the array (NULL accepted). */
void strlist_free(char **l, int64_t n);
/* Append s to the list in buf (n bytes, terminated), after sep unless buf is empty;
 * truncated to fit, always terminated. */
void strlist_append(char *buf, size_t n, const char *s, char sep);

#endif
