/* config_values.c: the values of a pipeline file that need more than a type and a
 * range: paths (resolved against the pipeline file's folder), names that name folders,
 * Slurm time and memory values, memory sizes and the per-rank memory check, the filter
 * of an inputs.datasets entry.
 * Not the document structure (config.c) and not one option's syntax (optvalue.c). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bgfm/fsutil.h"
#include "bgfm/yamltree.h"
#include "config_parse.h"

static int is_digit(char ch) { return ch >= '0' && ch <= '9'; }

/* ------------------------------------------------------------------ paths and names */

/* Lexically tidy a path: collapse "//" and "/./", drop a trailing "/." or "/".
 * ".." is kept (symlinks make removing it unsafe). In place. */
static void path_tidy(char *s) {
    size_t r = 0, w = 0, n = strlen(s);
    while (r < n) {
        if (s[r] == '/' && w > 0 && s[w - 1] == '/') {
            r++;
            continue;
        }
        if (s[r] == '.' && (r == 0 || s[r - 1] == '/') && (s[r + 1] == '/' || s[r + 1] == '\0') &&
            w > 0) {
            r += s[r + 1] ? 2 : 1;
            continue;
        }
        s[w++] = s[r++];
    }
    while (w > 1 && s[w - 1] == '/') w--;
    s[w] = '\0';
}

/* Directory of the pipeline file, absolute (symlinks resolved when it exists). */
int cfg_base_dir(cfgp *c, char **out) {
    const char *slash = strrchr(c->file, '/');
    size_t dl = slash ? (size_t)(slash - c->file) : 0;
    char cwd[4096] = "";
    if (!slash || c->file[0] != '/') {
        if (!getcwd(cwd, sizeof cwd))
            return bgfm_fail(c->e, BGFM_EIO, "%s: cannot determine the current directory: %s",
                             c->file, strerror(errno));
    }
    size_t n = strlen(cwd) + dl + 4;
    char *b = bgfm_malloc(c->e, n, "pipeline directory");
    if (!b) return BGFM_ENOMEM;
    if (!slash)
        snprintf(b, n, "%s", cwd);
    else if (c->file[0] == '/')
        snprintf(b, n, "%.*s", dl ? (int)dl : 1, c->file);
    else
        snprintf(b, n, "%s/%.*s", cwd, (int)dl, c->file);
    path_tidy(b);
    char *real = realpath(b, NULL);
    if (real) {
        free(b);
        b = real;
        c->base_real = 1;
    }
    *out = b;
    return 0;
}

/* rel against base. When base is a real path (no symlinks), leading "../" of rel
 * are folded into it: the parent of a real directory is its lexical parent. */
int cfg_path_resolve(const cfgp *c, const char *base, const char *rel, int fold, char **out) {
    size_t n = strlen(base) + strlen(rel) + 2;
    char *s = bgfm_malloc(c->e, n, "path");
    if (!s) return BGFM_ENOMEM;
    if (rel[0] == '/') {
        snprintf(s, n, "%s", rel);
    } else {
        snprintf(s, n, "%s", base);
        size_t bl = strlen(s);
        while (fold && c->base_real) {
            while (rel[0] == '.' && rel[1] == '/') rel += 2;
            if (!(rel[0] == '.' && rel[1] == '.' && (rel[2] == '/' || rel[2] == '\0'))) break;
            rel += rel[2] ? 3 : 2;
            while (bl > 1 && s[bl - 1] != '/') bl--; /* drop the last component */
            if (bl > 1) bl--;                      /* and its slash, except the root's */
            s[bl] = '\0';
        }
        snprintf(s + bl, n - bl, "%s%s", bl && s[bl - 1] == '/' ? "" : "/", rel);
    }
    path_tidy(s);
    *out = s;
    return 0;
}

/* [A-Za-z0-9_-]+, plus '.' (not first) when dots is set. */
int cfg_name_ok(const char *s, int dots) {
    if (!s[0] || s[0] == '.') return 0;
    for (; *s; s++) {
        char ch = *s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || is_digit(ch) || ch == '_' ||
              ch == '-' || (dots && ch == '.')))
            return 0;
    }
    return 1;
}

int cfg_value_fail(const cfgp *c, const bgfm_value *v, const char *key, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = yamltree_vfail(c->e, c->file, v->line, v->col, key, NULL, fmt, ap);
    va_end(ap);
    return rc;
}

/* Slurm time limits: MINUTES, MINUTES:SECONDS, HOURS:MINUTES:SECONDS, DAYS-HOURS,
 * DAYS-HOURS:MINUTES, DAYS-HOURS:MINUTES:SECONDS, or UNLIMITED. */
static int slurm_time_ok(const char *s) {
    if (!strcmp(s, "UNLIMITED") || !strcmp(s, "INFINITE")) return 1;
    const char *p = s, *dash = strchr(s, '-');
    if (dash) { /* DAYS- prefix */
        if (dash == s) return 0;
        for (; p < dash; p++)
            if (!is_digit(*p)) return 0;
        p = dash + 1;
    }
    int fields = 0; /* 1 to 3 groups of digits separated by ':' */
    for (;;) {
        int digits = 0;
        while (is_digit(*p)) p++, digits++;
        if (!digits) return 0;
        fields++;
        if (*p != ':') break;
        p++;
    }
    return *p == '\0' && fields <= 3;
}

static int slurm_mem_ok(const char *s) {
    int digits = 0;
    while (is_digit(*s)) s++, digits++;
    if (!digits) return 0;
    if (*s && strchr("KMGTkmgt", *s)) s++;
    return *s == '\0';
}

int cfg_slurm_check(const cfgp *c, const bgfm_params *sl, const char *path) {
    char key[512];
    const bgfm_value *v = params_value(sl, "time");
    cfg_key_join(key, sizeof key, path, "time");
    if (v->state == 2 && !slurm_time_ok(v->s))
        return cfg_value_fail(c, v, key, "'%s' is not a Slurm time limit (write MINUTES, "
                          "\"HH:MM:SS\" or \"D-HH:MM:SS\")", v->s);
    v = params_value(sl, "mem");
    cfg_key_join(key, sizeof key, path, "mem");
    if (v->state == 2 && !slurm_mem_ok(v->s))
        return cfg_value_fail(c, v, key, "'%s' is not a Slurm memory size (digits with an optional "
                          "K, M, G or T suffix, e.g. 16G)", v->s);
    v = params_value(sl, "extra");
    cfg_key_join(key, sizeof key, path, "extra");
    for (int i = 0; v->state == 2 && i < v->n_list; i++)
        if (v->list[i][0] != '-')
            return cfg_value_fail(c, v, key, "'%s' is not an sbatch option (items look like "
                              "\"--gres=gpu:1\")", v->list[i]);
    return 0;
}

/* ------------------------------------------------------------------ memory limit */

int64_t config_parse_bytes(const char *s) {
    static const struct {
        const char *u;
        double mul;
    } units[] = {{"", 1}, {"B", 1}, {"K", 1024.0}, {"KiB", 1024.0}, {"KB", 1e3},
                 {"M", 1048576.0}, {"MiB", 1048576.0}, {"MB", 1e6},
                 {"G", 1073741824.0}, {"GiB", 1073741824.0}, {"GB", 1e9},
                 {"T", 1099511627776.0}, {"TiB", 1099511627776.0}, {"TB", 1e12}};
    const char *p = s;
    int digits = 0;
    while (is_digit(*p)) p++, digits++;
    if (*p == '.') {
        p++;
        while (is_digit(*p)) p++, digits++;
    }
    if (!digits) return 0;
    double x = strtod(s, NULL);
    while (*p == ' ') p++;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcmp(p, units[i].u)) {
            double b = x * units[i].mul;
            if (!(b >= 1048576.0) || b > 9.0e18) return 0;
            return (int64_t)b;
        }
    return 0;
}

static void bytes_text(double b, char *buf, size_t n) {
    if (b >= 1073741824.0)
        snprintf(buf, n, "%.2f GiB", b / 1073741824.0);
    else
        snprintf(buf, n, "%.1f MiB", b / 1048576.0);
}

int config_mem_check(int64_t limit, const char *file, const char *stage, double estimate,
                     const char *what, const char *fix, bgfm_err *e) {
    estimate += CONFIG_MEM_RUNTIME;
    if (limit <= 0 || estimate <= (double)limit) return 0;
    char est[64], lim[64];
    bytes_text(estimate, est, sizeof est);
    bytes_text((double)limit, lim, sizeof lim);
    return bgfm_fail(e, BGFM_ENOMEM,
                     "stage '%s' would need about %s per rank (%s, + 32 MiB runtime), more than "
                     "max_memory_per_rank = %s in %s; %s, or raise max_memory_per_rank",
                     stage ? stage : "?", est, what, lim, file ? file : "the pipeline file", fix);
}

/* ------------------------------------------------------------------ path errors */

int config_path_fail(bgfm_err *e, const bgfm_pipeline *p, const char *key, bgfm_pos pos,
                     int code, const char *fmt, ...) {
    char what[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (pos.line > 0)
        return bgfm_fail(e, code, "%.300s:%d:%d: %s (key '%.200s')", p->file, pos.line, pos.col,
                         what, key);
    return bgfm_fail(e, code, "%.300s: %s (key '%.200s', default value)", p->file, what, key);
}

int config_workdir_make(const bgfm_pipeline *p, bgfm_err *e) {
    bgfm_err m = {0};
    int rc = fs_mkdirs(p->workdir, &m);
    if (rc) rc = config_path_fail(e, p, "workdir", p->workdir_at, rc, "%s; the workdir must be a "
                                  "folder bgfm can create or write", m.msg);
    return rc;
}

/* "COLUMN == VALUE" / "COLUMN != VALUE" (spaces around the operator optional). */
int cfg_filter_ok(const char *f) {
    const char *op = strstr(f, "==");
    if (!op) op = strstr(f, "!=");
    if (!op || op == f) return 0;
    const char *v = op + 2;
    while (*v == ' ') v++;
    const char *c = f;
    while (*c == ' ') c++;
    return c < op && *c != '=' && *c != '!' && *v != '\0' && !strstr(v, "==") && !strstr(v, "!=");
}
