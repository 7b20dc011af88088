/* strlist.c: a string split into a malloc'ed list, and its free (strlist.h).
 * Not a parser of any particular format. */
#include "bgfm/strlist.h"

#include <stdlib.h>
#include <string.h>

int strlist_split(const char *s, char sep, char ***out, int *n, bgfm_err *e) {
    int cnt = *s ? 1 : 0;
    for (const char *c = s; *c; c++) cnt += *c == sep;
    char **r = bgfm_calloc(e, (size_t)(cnt ? cnt : 1), sizeof *r, "list of names");
    if (!r) return BGFM_ENOMEM;
    const char *p = s;
    for (int i = 0; i < cnt; i++) {
        const char *q = strchr(p, sep);
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if (!(r[i] = bgfm_calloc(e, len + 1, 1, "a name"))) {
            strlist_free(r, i);
            return BGFM_ENOMEM;
        }
        memcpy(r[i], p, len);
        p = q ? q + 1 : p + len;
    }
    *out = r;
    *n = cnt;
    return 0;
}

void strlist_free(char **l, int64_t n) {
    if (!l) return;
    for (int64_t i = 0; i < n; i++) free(l[i]);
    free(l);
}

void strlist_append(char *buf, size_t n, const char *s, char sep) {
    size_t k = strlen(buf);
    if (k && k + 1 < n) buf[k++] = sep, buf[k] = '\0';
    if (k + 1 < n) strncat(buf, s, n - k - 1);
}
