/* json.c: JSON string escaping and number formatting for the files bgfm writes, the
 * one-field look-ups of our own manifests, and a small reader (RFC 8259 syntax, depth
 * 64) for reading our own reports back. Not a general JSON library. */
#include "bgfm/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void json_write_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

void json_write_num(FILE *f, double v) {
    if (!isfinite(v)) {
        fputs("null", f);
        return;
    }
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        fprintf(f, "%.0f", v);
        return;
    }
    char buf[40];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    fputs(buf, f);
}

/* The value after the first "key": of text, or NULL. */
static const char *value_of(const char *text, const char *key) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(text, pat);
    if (!p) return NULL;
    p += strlen(pat);
    while (*p == ' ') p++;
    return p;
}

int json_find_str(const char *text, const char *key, char *out, size_t n) {
    const char *p = value_of(text, key);
    if (!p || *p != '"') return 0;
    p++;
    size_t k = 0;
    while (*p && *p != '"' && k + 1 < n) out[k++] = *p++;
    out[k] = '\0';
    return *p == '"';
}

int json_find_num(const char *text, const char *key, double *out) {
    const char *p = value_of(text, key);
    if (!p) return 0;
    char *end = NULL;
    double v = strtod(p, &end);
    if (end == p) return 0;
    *out = v;
    return 1;
}

/* ---- the reader ---- */
typedef struct jp {
    const char *s;
    size_t i, n;
    int depth;
    bgfm_err *e; /* the allocations' failures */
    int nomem;   /* one failed: the parse stops */
} jp;

void json_free(json_node *v) {
    if (!v) return;
    for (int i = 0; i < v->n; i++) {
        json_free(&v->kid[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->kid);
    free(v->keys);
    free(v->str);
    memset(v, 0, sizeof *v);
}

static void jp_ws(jp *p) {
    while (p->i < p->n && strchr(" \t\r\n", p->s[p->i])) p->i++;
}

static int jp_value(jp *p, json_node *v);

static int jp_string(jp *p, char **out) {
    if (p->i >= p->n || p->s[p->i] != '"') return -1;
    p->i++;
    size_t cap = 16, m = 0;
    char *b = bgfm_malloc(p->e, cap, "JSON string");
    if (!b) {
        p->nomem = 1;
        return -1;
    }
    while (p->i < p->n && p->s[p->i] != '"') {
        char c = p->s[p->i++];
        if (c == '\\') {
            if (p->i >= p->n) break;
            char x = p->s[p->i++];
            switch (x) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u': /* keep ASCII, replace anything else by '?' */
                if (p->i + 4 > p->n) {
                    free(b);
                    return -1;
                }
                {
                    unsigned u = 0;
                    if (sscanf(p->s + p->i, "%4x", &u) != 1) {
                        free(b);
                        return -1;
                    }
                    c = u < 128 ? (char)u : '?';
                }
                p->i += 4;
                break;
            default: c = x;
            }
        }
        if (m + 2 > cap) {
            char *t = bgfm_realloc(p->e, b, cap *= 2, "longer JSON string");
            if (!t) {
                free(b);
                p->nomem = 1;
                return -1;
            }
            b = t;
        }
        b[m++] = c;
    }
    if (p->i >= p->n) {
        free(b);
        return -1;
    }
    p->i++;
    b[m] = '\0';
    *out = b;
    return 0;
}

static int jp_push(jp *p, json_node *v, int *cap) {
    if (v->n < *cap) return 0;
    *cap = *cap ? 2 * *cap : 8;
    json_node *k = bgfm_realloc(p->e, v->kid, (size_t)*cap * sizeof *k, "JSON values");
    if (!k) {
        p->nomem = 1;
        return -1;
    }
    v->kid = k;
    if (v->k == JSON_OBJ) {
        char **ks = bgfm_realloc(p->e, v->keys, (size_t)*cap * sizeof *ks, "JSON member names");
        if (!ks) {
            p->nomem = 1;
            return -1;
        }
        v->keys = ks;
    }
    return 0;
}

static int jp_value(jp *p, json_node *v) {
    memset(v, 0, sizeof *v);
    jp_ws(p);
    if (p->i >= p->n || p->depth > 64) return -1;
    char c = p->s[p->i];
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        v->k = c == '{' ? JSON_OBJ : JSON_ARR;
        p->i++;
        p->depth++;
        int cap = 0;
        jp_ws(p);
        if (p->i < p->n && p->s[p->i] == close) {
            p->i++;
            p->depth--;
            return 0;
        }
        for (;;) {
            if (jp_push(p, v, &cap)) return -1;
            char *key = NULL;
            if (v->k == JSON_OBJ) {
                jp_ws(p);
                if (jp_string(p, &key)) return -1;
                jp_ws(p);
                if (p->i >= p->n || p->s[p->i] != ':') {
                    free(key);
                    return -1;
                }
                p->i++;
                v->keys[v->n] = key;
            }
            int rc = jp_value(p, &v->kid[v->n]);
            v->n++;
            if (rc) return -1;
            jp_ws(p);
            if (p->i < p->n && p->s[p->i] == ',') {
                p->i++;
                continue;
            }
            if (p->i < p->n && p->s[p->i] == close) {
                p->i++;
                p->depth--;
                return 0;
            }
            return -1;
        }
    }
    if (c == '"') {
        v->k = JSON_STR;
        return jp_string(p, &v->str);
    }
    if (!strncmp(p->s + p->i, "null", 4)) {
        p->i += 4;
        v->k = JSON_NULL;
        return 0;
    }
    if (!strncmp(p->s + p->i, "true", 4) || !strncmp(p->s + p->i, "false", 5)) {
        v->k = JSON_BOOL;
        v->num = p->s[p->i] == 't';
        p->i += p->s[p->i] == 't' ? 4 : 5;
        return 0;
    }
    char *end = NULL;
    v->k = JSON_NUM;
    v->num = strtod(p->s + p->i, &end);
    if (end == p->s + p->i) return -1;
    p->i = (size_t)(end - p->s);
    return 0;
}

const json_node *json_get(const json_node *v, const char *key) {
    if (!v || v->k != JSON_OBJ) return NULL;
    for (int i = 0; i < v->n; i++)
        if (!strcmp(v->keys[i], key)) return &v->kid[i];
    return NULL;
}

double json_num(const json_node *v, const char *key) {
    const json_node *x = json_get(v, key);
    return x && x->k == JSON_NUM ? x->num : (double)NAN;
}


int json_parse_e(const char *text, size_t len, json_node *out, bgfm_err *e) {
    jp p = {text, 0, len, 0, e, 0};
    int rc = jp_value(&p, out);
    jp_ws(&p);
    if (rc || p.i != p.n) {
        json_free(out);
        return p.nomem ? BGFM_ENOMEM : -1;
    }
    return 0;
}

int json_parse(const char *text, size_t len, json_node *out) {
    bgfm_err e = {0}; /* an allocation failure is a -1 like a syntax error */
    return json_parse_e(text, len, out, &e) ? -1 : 0;
}
