/* strlist.h: lists of strings: "a,b,c" split into a malloc'ed array, and its free.
 * Not a string library: the one split the graph store and timeseries.h5 readers need
 * (comma-separated atlas names of a file attribute). Non-collective. */
#ifndef BGFM_STRLIST_H
#define BGFM_STRLIST_H

#include <stdint.h>

#include "bgfm/ctx.h"

/* Split s at every `sep` into *n malloc'ed strings (*out malloc'ed; "" gives 0 items,
 * "a," gives "a" and ""). 0 or BGFM_ENOMEM. */
int strlist_split(const char *s, char sep, char ***out, int *n, bgfm_err *e);
/* Free n strings and the array (NULL accepted). */
void strlist_free(char **l, int64_t n);

#endif
