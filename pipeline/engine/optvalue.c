/* optvalue.c: one pipeline option value from its text: the syntax of integers, reals
 * and booleans (YAML 1.2 core, with YAML 1.1 spellings refused by name), ranges, the
 * choices of an enum with the nearest one suggested, list values.
 * Not the document structure (config.c) and not the YAML tree (yamltree.c). */
#include "bgfm/optvalue.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bgfm/yamlout.h"

const char *optvalue_type_want(const bgfm_opt *o) {
    switch (o->type) {
    case BGFM_OPT_BOOL: return "true or false";
    case BGFM_OPT_INT: return "an integer";
    case BGFM_OPT_REAL: return "a number";
    case BGFM_OPT_STR: return "a string";
    case BGFM_OPT_ENUM: return "one of the listed words";
    case BGFM_OPT_LIST: return "a list";
    }
    return "a value";
}

static int is_digit(char ch) { return ch >= '0' && ch <= '9'; }

/* ---- the nearest word (suggestions in messages) ---- */

static int osa_distance(const char *a, const char *b) {
    /* Optimal string alignment (Damerau-Levenshtein without repeated edits of a
     * substring), case-insensitive, on words of at most 63 characters. */
    enum { M = 64 };
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la >= M || lb >= M) return M;
    int d[M][M];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int ca = a[i - 1] | 0x20, cb = b[j - 1] | 0x20;
            int cost = ca == cb ? 0 : 1;
            int best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < best) best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && ca == (b[j - 2] | 0x20) && (a[i - 2] | 0x20) == cb &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

const char *optvalue_nearest(const char *word, const char *const *cands, int n) {
    int len = (int)strlen(word);
    int limit = len <= 3 ? 1 : len <= 6 ? 2 : 3;
    const char *best = NULL;
    int bestd = limit + 1;
    for (int i = 0; i < n; i++) {
        if (!cands[i]) continue;
        int d = osa_distance(word, cands[i]);
        if (d < bestd && d < (int)strlen(cands[i])) {
            bestd = d;
            best = cands[i];
        }
    }
    return best;
}

static int int_syntax(const char *s) {
    if (*s == '+' || *s == '-') s++;
    if (!*s) return 0;
    for (; *s; s++)
        if (!is_digit(*s)) return 0;
    return 1;
}

static int real_syntax(const char *s) {
    int digits = 0;
    if (*s == '+' || *s == '-') s++;
    while (is_digit(*s)) s++, digits++;
    if (*s == '.') {
        s++;
        while (is_digit(*s)) s++, digits++;
    }
    if (!digits) return 0;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') s++;
        if (!is_digit(*s)) return 0;
        while (is_digit(*s)) s++;
    }
    return *s == '\0';
}

int optvalue_has_control(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return 1;
    return 0;
}

/* Is `w` one of the choices "a|b|c"? */
static int choice_has(const char *choices, const char *w) {
    size_t n = strlen(w);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t k = bar ? (size_t)(bar - p) : strlen(p);
        if (k == n && !strncmp(p, w, n)) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

/* Nearest choice, copied into out (empty if none is close). */
static void choice_nearest(const char *choices, const char *w, char *out, size_t nout) {
    char buf[512];
    const char *cands[64];
    int n = 0;
    snprintf(buf, sizeof buf, "%s", choices);
    for (char *tok = buf; tok && n < 64;) {
        char *bar = strchr(tok, '|');
        if (bar) *bar = '\0';
        cands[n++] = tok;
        tok = bar ? bar + 1 : NULL;
    }
    const char *best = optvalue_nearest(w, cands, n);
    snprintf(out, nout, "%s", best ? best : "");
}

void optvalue_choices_text(const char *choices, char *out, size_t nout) {
    size_t k = 0;
    for (const char *p = choices; *p && k + 4 < nout; p++) {
        if (*p == '|') {
            out[k++] = ',';
            out[k++] = ' ';
        } else {
            out[k++] = *p;
        }
    }
    out[k] = '\0';
}

static void range_text(const bgfm_opt *o, char *buf, size_t n) {
    if (o->type == BGFM_OPT_INT) {
        if (o->max >= 9e18)
            snprintf(buf, n, "at least %lld", (long long)o->min);
        else
            snprintf(buf, n, "between %lld and %lld", (long long)o->min, (long long)o->max);
    } else {
        char lo[40], hi[40];
        yaml_real_text(o->min, lo, sizeof lo);
        yaml_real_text(o->max, hi, sizeof hi);
        snprintf(buf, n, "between %s and %s", lo, hi);
    }
}

/* v->s = a copy of s (a string, an enum's word, an integer option's word). */
static int keep_text(bgfm_value *v, const char *s, bgfm_err *e) {
    free(v->s);
    v->s = bgfm_strdup(e, s);
    return v->s ? 0 : BGFM_ENOMEM;
}

/* Parse scalar text into v per the option's type. On a user error returns 1 with a
 * problem in `why` (and a suggestion in `near`); 0 on success; an error code when
 * an allocation fails. */
int optvalue_parse(const bgfm_opt *o, const char *s, int quoted, bgfm_value *v, char *why,
                   size_t nwhy, char *near, size_t nnear, bgfm_err *e) {
    char rng[128];
    near[0] = '\0';
    if (optvalue_has_control(s)) {
        snprintf(why, nwhy, "control characters (newline, tab, ...) are not allowed in values");
        return 1;
    }
    switch (o->type) {
    case BGFM_OPT_BOOL:
        if (quoted) {
            snprintf(why, nwhy, "expected true or false, got the quoted string \"%.100s\" "
                     "(remove the quotes)", s);
            return 1;
        }
        if (!strcmp(s, "true") || !strcmp(s, "false")) {
            v->b = s[0] == 't';
            return 0;
        }
        {
            static const char *const yaml11[] = {"yes", "no", "on", "off", "y", "n", "true",
                                                 "false"};
            for (int i = 0; i < 8; i++)
                if (!strcasecmp(s, yaml11[i])) {
                    snprintf(why, nwhy, "expected true or false, got '%.100s' (YAML 1.1 "
                             "spellings such as yes/no/on/off are not accepted: write %s)",
                             s, (i % 2 == 0) ? "true" : "false");
                    return 1;
                }
        }
        snprintf(why, nwhy, "expected true or false, got '%.100s'", s);
        return 1;
    case BGFM_OPT_INT: {
        if (o->choices && choice_has(o->choices, s)) { /* a word in place of a number */
            v->i = 0;
            return keep_text(v, s, e);
        }
        if (o->choices && !int_syntax(s)) {
            char ch[256];
            optvalue_choices_text(o->choices, ch, sizeof ch);
            snprintf(why, nwhy, "expected a decimal integer or one of: %s; got '%.100s'", ch, s);
            choice_nearest(o->choices, s, near, nnear);
            return 1;
        }
        if (quoted) {
            snprintf(why, nwhy, "expected an integer, got the quoted string \"%.100s\" "
                     "(remove the quotes)", s);
            return 1;
        }
        if (!int_syntax(s)) {
            snprintf(why, nwhy, "expected a decimal integer, got '%.100s'", s);
            return 1;
        }
        const char *d = (*s == '+' || *s == '-') ? s + 1 : s;
        if (d[0] == '0' && d[1]) {
            snprintf(why, nwhy, "expected a decimal integer, got '%.100s' (leading zeros are "
                     "not allowed: YAML 1.1 reads them as octal)", s);
            return 1;
        }
        errno = 0;
        long long x = strtoll(s, NULL, 10);
        if (errno == ERANGE) {
            snprintf(why, nwhy, "integer '%.100s' does not fit in 64 bits", s);
            return 1;
        }
        if (o->min <= o->max && ((double)x < o->min || (double)x > o->max)) {
            range_text(o, rng, sizeof rng);
            snprintf(why, nwhy, "%lld is out of range: must be %s", x, rng);
            return 1;
        }
        free(v->s);
        v->s = NULL;
        v->i = x;
        return 0;
    }
    case BGFM_OPT_REAL: {
        if (quoted) {
            snprintf(why, nwhy, "expected a number, got the quoted string \"%.100s\" (remove "
                     "the quotes)", s);
            return 1;
        }
        if (!real_syntax(s)) {
            snprintf(why, nwhy, "expected a finite decimal number, got '%.100s'", s);
            return 1;
        }
        double x = strtod(s, NULL);
        if (!isfinite(x)) {
            snprintf(why, nwhy, "'%.100s' is too large (not a finite double)", s);
            return 1;
        }
        if (o->min <= o->max && (x < o->min || x > o->max)) {
            range_text(o, rng, sizeof rng);
            char xt[40];
            yaml_real_text(x, xt, sizeof xt);
            snprintf(why, nwhy, "%s is out of range: must be %s", xt, rng);
            return 1;
        }
        v->r = x;
        return 0;
    }
    case BGFM_OPT_ENUM:
        BGFM_ASSERT(o->choices != NULL);
        if (!choice_has(o->choices, s)) {
            char ch[512];
            optvalue_choices_text(o->choices, ch, sizeof ch);
            snprintf(why, nwhy, "'%.100s' is not one of: %.400s", s, ch);
            choice_nearest(o->choices, s, near, nnear);
            return 1;
        }
        /* fall through */
    case BGFM_OPT_STR:
        if (!s[0]) {
            snprintf(why, nwhy, "empty string");
            return 1;
        }
        return keep_text(v, s, e);
    case BGFM_OPT_LIST: break;
    }
    snprintf(why, nwhy, "expected a list");
    return 1;
}

void optvalue_clear(bgfm_value *v) {
    free(v->s);
    v->s = NULL;
    for (int i = 0; i < v->n_list; i++) free(v->list[i]);
    free(v->list);
    v->list = NULL;
    v->n_list = 0;
}

int optvalue_list_add(bgfm_value *v, const char *s, bgfm_err *e) {
    char **l = bgfm_malloc(e, (size_t)(v->n_list + 1) * sizeof *l, "list value");
    if (!l) return BGFM_ENOMEM;
    if (v->n_list) memcpy(l, v->list, (size_t)v->n_list * sizeof *l);
    l[v->n_list] = bgfm_strdup(e, s);
    if (!l[v->n_list]) {
        free(l);
        return BGFM_ENOMEM;
    }
    free(v->list);
    v->list = l;
    v->n_list++;
    return 0;
}
