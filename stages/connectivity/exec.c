/* exec.c: the connectivity stage's collective driver: read timeseries.h5, list the
 * graphs in a rank-independent order, compute each shard's graphs on all ranks,
 * gather each shard to one owner rank that writes it, rank 0 writes index.h5.
 * Not the math (kernels.c) and not the options table (kind.c). */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bgfm/connectivity.h"
#include "bgfm/graphs.h"
#include "bgfm/h5io.h"
#include "bgfm/strlist.h"
#include "bgfm/log.h"

/* What the stage needs from timeseries.h5 (every rank holds a copy: small). */
typedef struct ts_meta {
    int64_t S;
    int A;
    char **atlas;         /* A names, pipeline order */
    int32_t *N;           /* A */
    int64_t **off;        /* A x (S+1) */
    uint8_t **flag;       /* A x (S x N) */
    int32_t **region;     /* A x N */
    char **pid;           /* S */
    char **site;          /* S */
    char **ds;            /* S: /subjects/dataset (inputs.datasets), NULL without */
    double *tr;           /* S: /subjects/t_r (0 when absent) */
    double *fd;           /* S: /subjects/mean_fd (NaN when absent: no confounds) */
    int64_t *label;       /* S */
} ts_meta;

static void ts_meta_free(ts_meta *m) {
    for (int a = 0; a < m->A; a++) {
        if (m->off) free(m->off[a]);
        if (m->flag) free(m->flag[a]);
        if (m->region) free(m->region[a]);
    }
    free(m->off);
    free(m->flag);
    free(m->region);
    strlist_free(m->atlas, m->A);
    strlist_free(m->pid, m->S);
    strlist_free(m->site, m->S);
    if (m->ds) strlist_free(m->ds, m->S);
    free(m->N);
    free(m->label);
    free(m->tr);
    free(m->fd);
    memset(m, 0, sizeof *m);
}

static int ts_meta_read(hid_t f, const char *path, const char *site_col, ts_meta *m,
                        bgfm_err *e) {
    char *fmt = NULL, *atl = NULL;
    const int got = h5io_root_format(f, &fmt, e);
    if (got == BGFM_ENOMEM) return got; /* out of memory says so, not "not a timeseries file" */
    if (got || !fmt || strcmp(fmt, "bgfm-timeseries") != 0) {
        free(fmt);
        bgfm_err_clear(e);
        return bgfm_fail(e, BGFM_EDATA,
                         "'%s' is not a bgfm timeseries file (root attribute format is not "
                         "'bgfm-timeseries'); the connectivity stage reads the parcellate "
                         "stage's output",
                         path);
    }
    free(fmt);
    int64_t S = 0;
    int one = 1;
    if (h5io_attr_get_i64(f, ".", "n_subjects", &S, &one, e)) return e->code;
    if (h5io_attr_get_str(f, ".", "atlases", &atl, e)) return e->code;
    int rc = strlist_split(atl, ',', &m->atlas, &m->A, e);
    free(atl);
    if (rc) return rc;
    m->S = S;
    if (m->A < 1 || S < 0)
        return bgfm_fail(e, BGFM_EDATA, "'%s' lists no atlas (root attribute 'atlases')", path);
    size_t A = (size_t)m->A, Sz = (size_t)(S ? S : 1);
    m->N = bgfm_calloc(e, A, sizeof *m->N, "atlas sizes");
    m->off = bgfm_calloc(e, A, sizeof *m->off, "offsets");
    m->flag = bgfm_calloc(e, A, sizeof *m->flag, "flags");
    m->region = bgfm_calloc(e, A, sizeof *m->region, "region labels");
    m->label = bgfm_calloc(e, Sz, sizeof *m->label, "labels");
    if (!m->N || !m->off || !m->flag || !m->region || !m->label) return BGFM_ENOMEM;
    for (int a = 0; a < m->A; a++) {
        char p[600];
        int rank = 0;
        hsize_t dims[8];
        snprintf(p, sizeof p, "/atlases/%s/region_labels", m->atlas[a]);
        if (h5io_dims(f, p, &rank, dims, e)) return e->code;
        if (rank != 1 || dims[0] < 1 || dims[0] > 100000)
            return bgfm_fail(e, BGFM_EDATA, "'%s': %s must be a 1-D array of region labels",
                             path, p);
        m->N[a] = (int32_t)dims[0];
        size_t N = (size_t)m->N[a];
        m->region[a] = bgfm_malloc(e, N * sizeof(int32_t), "region labels");
        m->off[a] = bgfm_malloc(e, ((size_t)S + 1) * sizeof(int64_t), "offsets");
        m->flag[a] = bgfm_calloc(e, Sz * N, 1, "flags");
        if (!m->region[a] || !m->off[a] || !m->flag[a]) return BGFM_ENOMEM;
        if (h5io_read_all(f, p, H5T_NATIVE_INT32, m->N[a], m->region[a], e)) return e->code;
        snprintf(p, sizeof p, "/atlases/%s/offsets", m->atlas[a]);
        if (h5io_read_all(f, p, H5T_NATIVE_INT64, S + 1, m->off[a], e)) return e->code;
        for (int64_t s = 0; s < S; s++)
            if (m->off[a][s + 1] < m->off[a][s] || m->off[a][0] != 0)
                return bgfm_fail(e, BGFM_EDATA, "'%s': %s is not ascending from 0", path, p);
        snprintf(p, sizeof p, "/atlases/%s/timeseries", m->atlas[a]);
        if (h5io_dims(f, p, &rank, dims, e)) return e->code;
        if (rank != 2 || dims[1] != N || (int64_t)dims[0] != m->off[a][S])
            return bgfm_fail(e, BGFM_EDATA,
                             "'%s': %s is %llu x %llu, expected %lld x %zu (offsets, regions)",
                             path, p, (unsigned long long)dims[0],
                             (unsigned long long)(rank > 1 ? dims[1] : 0),
                             (long long)m->off[a][S], N);
        snprintf(p, sizeof p, "/atlases/%s/flagged", m->atlas[a]);
        if (h5io_exists(f, p) &&
            h5io_read_all(f, p, H5T_NATIVE_UINT8, S * (int64_t)N, m->flag[a], e))
            return e->code;
    }
    int64_t n = 0;
    if (h5io_read_strings(f, "/subjects/participant_id", &m->pid, &n, e)) return e->code;
    if (n != S)
        return bgfm_fail(e, BGFM_EDATA, "'%s': /subjects/participant_id has %lld entries, not %lld",
                         path, (long long)n, (long long)S);
    for (int64_t s = 0; s < S; s++) m->label[s] = -1;
    if (!(m->tr = bgfm_calloc(e, Sz, sizeof *m->tr, "TRs"))) return BGFM_ENOMEM;
    if (h5io_exists(f, "/subjects/t_r") &&
        h5io_read_all(f, "/subjects/t_r", H5T_NATIVE_DOUBLE, S, m->tr, e))
        return e->code;
    if (!(m->fd = bgfm_malloc(e, Sz * sizeof *m->fd, "mean FD"))) return BGFM_ENOMEM;
    for (int64_t s = 0; s < S; s++) m->fd[s] = NAN;
    if (h5io_exists(f, "/subjects/mean_fd") &&
        h5io_read_all(f, "/subjects/mean_fd", H5T_NATIVE_DOUBLE, S, m->fd, e))
        return e->code;
    if (h5io_exists(f, "/subjects/label") &&
        h5io_read_all(f, "/subjects/label", H5T_NATIVE_INT64, S, m->label, e))
        return e->code;
    /* with inputs.datasets: the dataset of each row, and its site (each dataset's own
     * site_column) in /subjects/site */
    if (h5io_exists(f, "/subjects/dataset")) {
        if (h5io_read_strings(f, "/subjects/dataset", &m->ds, &n, e)) return e->code;
        if (n != S)
            return bgfm_fail(e, BGFM_EDATA, "'%s': /subjects/dataset has %lld entries, not %lld",
                             path, (long long)n, (long long)S);
    }
    /* site: /subjects/site, else /subjects/columns/<site_col>, strings or numbers; "" when
     * absent */
    char sp[600];
    snprintf(sp, sizeof sp, "/subjects/columns/%s", site_col ? site_col : "");
    if (m->ds && h5io_exists(f, "/subjects/site")) {
        snprintf(sp, sizeof sp, "/subjects/site");
        site_col = "site";
    }
    if (site_col && *site_col && h5io_exists(f, sp)) {
        hid_t d = H5Dopen2(f, sp, H5P_DEFAULT);
        hid_t t = d >= 0 ? H5Dget_type(d) : -1;
        int is_str = t >= 0 && H5Tget_class(t) == H5T_STRING;
        if (t >= 0) H5Tclose(t);
        if (d >= 0) H5Dclose(d);
        if (is_str) {
            if (h5io_read_strings(f, sp, &m->site, &n, e)) return e->code;
            if (n != S) return bgfm_fail(e, BGFM_EDATA, "'%s': %s has %lld entries", path, sp, (long long)n);
            return 0;
        }
        double *v = bgfm_malloc(e, Sz * sizeof(double), "site column");
        m->site = bgfm_calloc(e, Sz, sizeof(char *), "sites");
        if (!v || !m->site) {
            free(v);
            return BGFM_ENOMEM;
        }
        rc = h5io_read_all(f, sp, H5T_NATIVE_DOUBLE, S, v, e);
        for (int64_t s = 0; s < S && !rc; s++) {
            char b[64] = "";
            if (isfinite(v[s])) snprintf(b, sizeof b, "%.17g", v[s]);
            if (!(m->site[s] = bgfm_strdup(e, b))) rc = BGFM_ENOMEM;
        }
        free(v);
        return rc;
    }
    m->site = bgfm_calloc(e, Sz, sizeof(char *), "sites");
    if (!m->site) return BGFM_ENOMEM;
    for (int64_t s = 0; s < S; s++)
        if (!(m->site[s] = bgfm_strdup(e, ""))) return BGFM_ENOMEM;
    return 0;
}

/* The global graph list: rank-independent order (subject, atlas, window). */
typedef struct glist {
    int64_t G;
    int64_t *subject, *window, *row0, *len; /* len: rows of the window */
    int32_t *atlas;
} glist;

static void glist_free(glist *g) {
    free(g->subject);
    free(g->window);
    free(g->row0);
    free(g->len);
    free(g->atlas);
    memset(g, 0, sizeof *g);
}

static int64_t scan_rows(const ts_meta *m, int a, int64_t s) {
    return m->off[a][s + 1] - m->off[a][s];
}

/* Scan s's windows in volumes: the stage's TRs, or its seconds through the scan's own TR
 * (length at least 2, stride at least 1); 0, 0 without windows. */
static void scan_window(const ts_meta *m, const connectivity_params *p, int64_t s,
                        int64_t *len, int64_t *stride) {
    *len = p->window_length;
    *stride = p->window_stride;
    if (p->window_length_s <= 0) return;
    double tr = m->tr[s] > 0 ? m->tr[s] : 1.0;
    *len = llround(p->window_length_s / tr);
    *stride = llround(p->window_stride_s / tr);
    if (*len < 2) *len = 2;
    if (*stride < 1) *stride = 1;
}

static int windowed(const connectivity_params *p) {
    return p->window_length > 0 || p->window_length_s > 0;
}

static int glist_build(const ts_meta *m, const connectivity_params *p, const uint8_t *skip,
                       glist *g, bgfm_err *e) {
    int64_t G = 0;
    int64_t wl, ws;
    for (int64_t s = 0; s < m->S; s++) {
        scan_window(m, p, s, &wl, &ws);
        if (!skip[s])
            for (int a = 0; a < m->A; a++) G += connectivity_n_windows(scan_rows(m, a, s), wl, ws);
    }
    size_t n = (size_t)(G ? G : 1);
    g->subject = bgfm_malloc(e, n * sizeof(int64_t), "graph list");
    g->window = bgfm_malloc(e, n * sizeof(int64_t), "graph list");
    g->row0 = bgfm_malloc(e, n * sizeof(int64_t), "graph list");
    g->len = bgfm_malloc(e, n * sizeof(int64_t), "graph list");
    g->atlas = bgfm_malloc(e, n * sizeof(int32_t), "graph list");
    if (!g->subject || !g->window || !g->row0 || !g->len || !g->atlas) return BGFM_ENOMEM;
    int64_t i = 0;
    for (int64_t s = 0; s < m->S; s++) {
        if (skip[s]) continue;
        scan_window(m, p, s, &wl, &ws);
        for (int a = 0; a < m->A; a++) {
            int64_t T = scan_rows(m, a, s);
            int64_t W = connectivity_n_windows(T, wl, ws);
            for (int64_t w = 0; w < W; w++, i++) {
                g->subject[i] = s;
                g->atlas[i] = a;
                g->window[i] = w;
                g->row0[i] = wl > 0 ? w * ws : 0;
                g->len[i] = wl > 0 ? wl : T;
            }
        }
    }
    g->G = G;
    return 0;
}

static double graph_cost(const ts_meta *m, const glist *g, const connectivity_units *u,
                         int64_t i) {
    double N = m->N[g->atlas[i]];
    if (connectivity_units_reused(u, g->subject[i])) return N * N + 1.0; /* a read */
    return N * N * ((double)g->len[i] + 2.0 * N) + 1.0;
}

/* A graph packed for the gather: fc (N*N float), rwse (N*k float), adj (N*N),
 * flagged (N), padded to 16 bytes so every graph's floats stay aligned. */
static int64_t graph_bytes(const ts_meta *m, int k, int a) {
    int64_t N = m->N[a];
    return (N * N * 4 + N * k * 4 + N * N + N + 15) / 16 * 16;
}

/* This rank's share [*lo, *hi) of graphs [g0, g1): graph i goes to the rank whose
 * slice of the cumulative cost holds the middle of i's cost, so shares are
 * contiguous, ordered by rank and balanced. */
static void split_range(const ts_meta *m, const glist *g, const connectivity_units *u,
                        int64_t g0, int64_t g1, int rank, int size, int64_t *lo, int64_t *hi) {
    double tot = 0, acc = 0;
    for (int64_t i = g0; i < g1; i++) tot += graph_cost(m, g, u, i);
    *lo = *hi = g1;
    for (int64_t i = g0; i < g1; i++) {
        double c = graph_cost(m, g, u, i);
        int owner = (int)((acc + 0.5 * c) / tot * size);
        if (owner >= size) owner = size - 1;
        if (owner >= rank && *lo == g1) *lo = i;
        if (owner > rank) {
            *hi = i;
            return;
        }
        acc += c;
    }
}

static const char *measure_name(connectivity_measure m) {
    return m == CONNECTIVITY_PEARSON ? "pearson" : m == CONNECTIVITY_SHRUNK ? "shrunk_pearson" : "partial";
}

/* Message for a bad window/scan. */
static int bad_data(bgfm_err *e, const ts_meta *m, const char *path, int64_t s, int a,
                    int64_t window, int code, int region) {
    char where[64] = "";
    if (window >= 0) snprintf(where, sizeof where, " (window %lld)", (long long)window);
    if (code == 1)
        return bgfm_fail(e, BGFM_EDATA,
                         "'%s': subject %lld (%s), atlas '%s', region %d (label %d)%s has a "
                         "NaN/Inf value; fix the input or set on_error: skip",
                         path, (long long)s, m->pid[s], m->atlas[a], region,
                         m->region[a][region], where);
    if (code == 2)
        return bgfm_fail(e, BGFM_EDATA,
                         "'%s': subject %lld (%s), atlas '%s', region %d (label %d)%s is constant "
                         "but not flagged, so its correlation is undefined; set the connectivity "
                         "stage's constant_regions: flag, or on_error: skip",
                         path, (long long)s, m->pid[s], m->atlas[a], region,
                         m->region[a][region], where);
    return bgfm_fail(e, BGFM_EDATA,
                     "'%s': subject %lld (%s), atlas '%s'%s: the shrunk covariance is not "
                     "positive definite, so partial correlation is undefined; use measure: "
                     "shrunk_pearson or pearson",
                     path, (long long)s, m->pid[s], m->atlas[a], where);
}

/* Cache of one (subject, atlas) series read from the file. */
typedef struct series_cache {
    int64_t s;
    int a;
    float *X;
    size_t cap;
} series_cache;

static int series_get(series_cache *c, hid_t f, const ts_meta *m, int64_t s, int a,
                      double *bytes, bgfm_err *e) {
    if (c->X && c->s == s && c->a == a) return 0;
    int64_t T = scan_rows(m, a, s);
    size_t need = (size_t)(T > 0 ? T : 1) * (size_t)m->N[a] * sizeof(float);
    if (need > c->cap) {
        free(c->X);
        c->X = bgfm_malloc(e, need, "region time series");
        c->cap = c->X ? need : 0;
        if (!c->X) return BGFM_ENOMEM;
    }
    char p[600];
    snprintf(p, sizeof p, "/atlases/%s/timeseries", m->atlas[a]);
    c->s = -1;
    if (T > 0 && h5io_read_rows(f, p, H5T_NATIVE_FLOAT, m->off[a][s], T, c->X, e)) return e->code;
    *bytes += (double)need;
    c->s = s;
    c->a = a;
    return 0;
}

/* on_error: skip: find the subjects with unusable data before the graph list is
 * fixed (the list, hence the shards, must not depend on who found what). */
static int prescan(bgfm_ctx *ctx, hid_t f, const char *path, const ts_meta *m,
                   const connectivity_opts *o, uint8_t *skip, char **why, double *bytes) {
    const connectivity_params *p = &o->p;
    bgfm_err *e = &ctx->err;
    int64_t S = m->S;
    int rc = 0;
    series_cache c = {-1, -1, NULL, 0};
    /* too short: deterministic, every rank decides the same */
    int64_t wl, ws;
    for (int64_t s = 0; s < S; s++)
        for (int a = 0; a < m->A; a++) {
            int64_t T = scan_rows(m, a, s);
            scan_window(m, p, s, &wl, &ws);
            if (connectivity_n_windows(T, wl, ws) > 0) continue;
            if (!o->skip_bad) {
                if (wl > 0)
                    return bgfm_fail(e, BGFM_EDATA,
                                     "'%s': subject %lld (%s%s%s) has %lld volumes, shorter "
                                     "than one window of %lld (TR %g s); shorten the window or "
                                     "set on_error: skip (the scan is then listed in /skipped)",
                                     path, (long long)s, m->ds ? m->ds[s] : "", m->ds ? "/" : "",
                                     m->pid[s], (long long)T, (long long)wl, m->tr[s]);
                return bgfm_fail(e, BGFM_EDATA,
                                 "'%s': subject %lld (%s) has %lld volume(s); a correlation needs "
                                 "at least 2 (set on_error: skip to leave it out)",
                                 path, (long long)s, m->pid[s], (long long)T);
            }
            if (!skip[s] && ctx->rank == 0)
                log_warn(ctx, "connectivity: skipping subject %lld (%s): %lld volumes are too few",
                         (long long)s, m->pid[s], (long long)T);
            if (!why[s]) {
                char txt[300];
                snprintf(txt, sizeof txt, "%lld volume(s) in atlas %s: too few for %s",
                         (long long)T, m->atlas[a],
                         wl > 0 ? "one window" : "a correlation (at least 2)");
                if (!(why[s] = bgfm_strdup(e, txt))) return BGFM_ENOMEM;
            }
            skip[s] = 1;
        }
    if (!o->skip_bad) return 0;
    /* data checks, subjects split in contiguous blocks */
    int64_t lo = S * ctx->rank / ctx->size, hi = S * (ctx->rank + 1) / ctx->size;
    uint8_t *mine = bgfm_calloc(e, (size_t)(S ? S : 1), 1, "skip flags");
    if (!mine) rc = BGFM_ENOMEM;
    for (int64_t s = lo; s < hi && !rc; s++) {
        if (skip[s]) continue;
        for (int a = 0; a < m->A && !rc && !mine[s]; a++) {
            rc = series_get(&c, f, m, s, a, bytes, e);
            if (rc) break;
            int64_t T = scan_rows(m, a, s), N = m->N[a];
            scan_window(m, p, s, &wl, &ws);
            int64_t W = connectivity_n_windows(T, wl, ws);
            for (int64_t w = 0; w < W; w++) {
                int64_t r0 = wl > 0 ? w * ws : 0;
                int64_t L = wl > 0 ? wl : T;
                int region = -1;
                int bad = connectivity_check(c.X + r0 * N, L, (int)N, N,
                                             m->flag[a] + (size_t)s * (size_t)N, &region);
                if (bad == 2 && p->constant == CONNECTIVITY_CONSTANT_FLAG) {
                    /* flagged per graph later; only NaN/Inf matter here */
                    uint8_t *tmp = bgfm_malloc(e, (size_t)N, "flags");
                    if (!tmp) {
                        rc = BGFM_ENOMEM;
                        break;
                    }
                    memcpy(tmp, m->flag[a] + (size_t)s * (size_t)N, (size_t)N);
                    while (bad == 2) {
                        tmp[region] = 1;
                        bad = connectivity_check(c.X + r0 * N, L, (int)N, N, tmp, &region);
                    }
                    free(tmp);
                }
                if (bad) {
                    bgfm_err tmpe;
                    bgfm_err_clear(&tmpe);
                    bad_data(&tmpe, m, path, s, a, windowed(p) ? w : -1, bad, region);
                    log_warn(ctx, "connectivity: skipping: %s", tmpe.msg);
                    mine[s] = 1;
                    if (!why[s] && !(why[s] = bgfm_strdup(e, tmpe.msg))) rc = BGFM_ENOMEM;
                    break;
                }
            }
        }
    }
    free(c.X);
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc && S > 0)
        rc = bgfm_ctx_agree(ctx, BGFM_MPI(e, MPI_Allreduce(MPI_IN_PLACE, mine, (int)S, MPI_UINT8_T,
                                                           MPI_MAX, ctx->comm)));
    for (int64_t s = 0; s < S && !rc; s++) skip[s] |= mine[s];
    free(mine);
    return rc;
}

/* The skip reasons as "participant_id\treason\n" lines in subject order, on every rank:
 * each rank contributes the subjects of its prescan block. */
static int skip_text(bgfm_ctx *ctx, const ts_meta *m, const uint8_t *skip, char **why,
                     char **out) {
    bgfm_err *e = &ctx->err;
    int64_t S = m->S, lo = S * ctx->rank / ctx->size, hi = S * (ctx->rank + 1) / ctx->size;
    size_t len = 1;
    for (int64_t s = lo; s < hi; s++)
        if (skip[s]) len += strlen(m->pid[s]) + (why[s] ? strlen(why[s]) : 0) + 2;
    char *buf = bgfm_malloc(e, len, "skip reasons");
    int *lens = bgfm_calloc(e, (size_t)ctx->size, sizeof *lens, "skip reasons");
    int *displs = bgfm_calloc(e, (size_t)ctx->size, sizeof *displs, "skip reasons");
    int rc = buf && lens && displs ? 0 : BGFM_ENOMEM;
    size_t w = 0;
    for (int64_t s = lo; !rc && s < hi; s++) {
        if (!skip[s]) continue;
        /* tabs and newlines would break the line format */
        for (const char *c = m->pid[s]; *c; c++) buf[w++] = (*c == '\t' || *c == '\n') ? ' ' : *c;
        buf[w++] = '\t';
        for (const char *c = why[s] ? why[s] : ""; *c; c++)
            buf[w++] = (*c == '\t' || *c == '\n') ? ' ' : *c;
        buf[w++] = '\n';
    }
    rc = bgfm_ctx_agree(ctx, rc || w > (size_t)INT_MAX / 2
                                 ? bgfm_fail(e, rc ? rc : BGFM_EDATA, "too many skip reasons")
                                 : 0);
    int mine = (int)w;
    if (!rc) rc = bgfm_ctx_agree(ctx, BGFM_MPI(e, MPI_Allgather(&mine, 1, MPI_INT, lens, 1, MPI_INT,
                                                                ctx->comm)));
    int64_t tot = 0;
    for (int k = 0; !rc && k < ctx->size; k++) {
        displs[k] = (int)tot;
        tot += lens[k];
    }
    if (!rc && tot > INT_MAX) rc = BGFM_EDATA;
    char *all = rc ? NULL : bgfm_malloc(e, (size_t)tot + 1, "skip reasons");
    if (!rc && !all) rc = BGFM_ENOMEM;
    rc = bgfm_ctx_agree(ctx, rc ? bgfm_fail(e, rc, "gathering the skip reasons failed") : 0);
    if (!rc) rc = BGFM_MPI(e, MPI_Allgatherv(buf, mine, MPI_CHAR, all, lens, displs, MPI_CHAR,
                                             ctx->comm));
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc) {
        all[tot] = '\0';
        *out = all;
    } else {
        free(all);
    }
    free(buf);
    free(lens);
    free(displs);
    return rc;
}

/* Rank 0: /skipped/participant_id and /skipped/reason into index.h5 (already written). */
static int write_skipped(const char *outdir, const char *text, bgfm_err *e) {
    int64_t n = 0;
    for (const char *c = text; *c; c++) n += *c == '\n';
    if (n == 0) return 0;
    char *copy = bgfm_strdup(e, text);
    const char **pid = bgfm_calloc(e, (size_t)n, sizeof *pid, "skipped");
    const char **why = bgfm_calloc(e, (size_t)n, sizeof *why, "skipped");
    size_t pl = strlen(outdir) + 16;
    char *path = bgfm_malloc(e, pl, "index path");
    int rc = copy && pid && why && path ? 0 : BGFM_ENOMEM;
    int64_t k = 0;
    for (char *line = copy; !rc && line && *line && k < n; k++) {
        char *nl = strchr(line, '\n'), *tab = strchr(line, '\t');
        BGFM_ASSERT(nl && tab && tab < nl);
        *nl = *tab = '\0';
        pid[k] = line;
        why[k] = tab + 1;
        line = nl + 1;
    }
    hid_t f = -1;
    if (!rc) {
        snprintf(path, pl, "%s/index.h5", outdir);
        f = h5io_open_rw(MPI_COMM_SELF, path, e);
        if (f < 0) rc = e->code ? e->code : BGFM_EIO;
    }
    if (!rc) rc = h5io_write_strings(f, "/skipped/participant_id", pid, n, 0, e);
    if (!rc) rc = h5io_write_strings(f, "/skipped/reason", why, n, 0, e);
    if (f >= 0) {
        int crc = h5io_close(&f, path, e);
        if (!rc) rc = crc;
    }
    free(copy);
    free(pid);
    free(why);
    free(path);
    return rc;
}

/* Compute graphs [lo, hi) into blob (packed per graph: fc, adj, rwse, flagged). */
static int compute_range(const connectivity_opts *o, hid_t f, const char *path, const ts_meta *m,
                         const glist *g, int64_t lo, int64_t hi, char *blob,
                         connectivity_ws *ws, series_cache *c, connectivity_units *u,
                         int64_t *reused, double *bytes, bgfm_err *e) {
    const connectivity_params *p = &o->p;
    int k = p->rwse_steps;
    char *q = blob;
    for (int64_t i = lo; i < hi; i++) {
        int a = g->atlas[i];
        int64_t s = g->subject[i], N = m->N[a];
        if (connectivity_units_reused(u, s)) { /* from its dataset's unit, as computed before */
            int rc = connectivity_units_read(u, s, i, q, graph_bytes(m, k, a), e);
            if (rc) return rc;
            q += graph_bytes(m, k, a);
            (*reused)++;
            continue;
        }
        int rc = series_get(c, f, m, s, a, bytes, e);
        if (rc) return rc;
        float *fc = (float *)(void *)q;
        float *rwse = (float *)(void *)(q + N * N * 4);
        uint8_t *adj = (uint8_t *)(q + N * N * 4 + N * k * 4);
        uint8_t *fl = adj + N * N;
        int region = -1;
        int bad = connectivity_graph(p, c->X + g->row0[i] * N, g->len[i], (int)N, N,
                                     m->flag[a] + (size_t)s * (size_t)N, fc, adj, rwse, fl,
                                     &ws[a], &region);
        if (bad)
            return bad_data(e, m, path, s, a, windowed(p) ? g->window[i] : -1, bad,
                            region);
        int64_t used = N * N * 4 + N * k * 4 + N * N + N; /* the padding: zeros, not garbage */
        memset(q + used, 0, (size_t)(graph_bytes(m, k, a) - used));
        q += graph_bytes(m, k, a);
    }
    return 0;
}

static int write_shard(const char *outdir, int64_t sh, const graphs_info *info, const ts_meta *m,
                       const glist *g, int64_t g0, int64_t g1, const char *blob, int k,
                       bgfm_err *e) {
    int64_t *cnt = bgfm_calloc(e, (size_t)m->A, sizeof(int64_t), "shard counts");
    if (!cnt) return BGFM_ENOMEM;
    for (int64_t i = g0; i < g1; i++) cnt[g->atlas[i]]++;
    size_t pl = strlen(outdir) + 32;
    char *path = bgfm_malloc(e, pl, "shard path");
    int rc = path ? 0 : BGFM_ENOMEM;
    graphs_writer *w = NULL;
    if (!rc) {
        snprintf(path, pl, "%s/shard-%05lld.h5", outdir, (long long)sh);
        rc = graphs_writer_create(&w, path, sh, info, cnt, e);
    }
    memset(cnt, 0, sizeof(int64_t) * (size_t)m->A);
    const char *q = blob;
    for (int64_t i = g0; i < g1 && !rc; i++) {
        int a = g->atlas[i];
        int64_t N = m->N[a], s = g->subject[i];
        const uint8_t *adj = (const uint8_t *)(q + N * N * 4 + N * k * 4);
        rc = graphs_writer_put(w, a, cnt[a]++, (const float *)(const void *)q, adj,
                               (const float *)(const void *)(q + N * N * 4), adj + N * N, s,
                               g->window[i], m->label[s], m->fd[s], m->pid[s],
                               m->ds ? m->ds[s] : NULL, m->site[s], e);
        q += graph_bytes(m, k, a);
    }
    if (w) {
        if (rc)
            graphs_writer_abort(&w);
        else
            rc = graphs_writer_close(&w, e);
    }
    free(path);
    free(cnt);
    return rc;
}

static int write_index(const char *outdir, const graphs_info *info, const ts_meta *m,
                       const glist *g, int64_t gps, bgfm_err *e) {
    int64_t G = g->G, nsh = (G + gps - 1) / gps;
    size_t n = (size_t)(G ? G : 1);
    graphs_meta *meta = bgfm_calloc(e, n, sizeof *meta, "index");
    const char **pid = bgfm_calloc(e, n, sizeof *pid, "index");
    const char **site = bgfm_calloc(e, n, sizeof *site, "index");
    const char **dsn = m->ds ? bgfm_calloc(e, n, sizeof *dsn, "index") : NULL;
    char **names = bgfm_calloc(e, (size_t)(nsh ? nsh : 1), sizeof *names, "index");
    int64_t *row = bgfm_calloc(e, (size_t)m->A, sizeof *row, "index");
    size_t pl = strlen(outdir) + 32;
    char *path = bgfm_malloc(e, pl, "index path");
    int rc = (!meta || !pid || !site || !names || !row || !path || (m->ds && !dsn)) ? BGFM_ENOMEM : 0;
    for (int64_t sh = 0; sh < nsh && !rc; sh++) {
        if (!(names[sh] = bgfm_malloc(e, 32, "shard name"))) rc = BGFM_ENOMEM;
        else snprintf(names[sh], 32, "shard-%05lld.h5", (long long)sh);
        memset(row, 0, sizeof *row * (size_t)m->A);
        for (int64_t i = sh * gps; i < G && i < (sh + 1) * gps && !rc; i++) {
            int a = g->atlas[i];
            int64_t s = g->subject[i];
            meta[i].atlas = a;
            meta[i].shard = (int32_t)sh;
            meta[i].row = row[a]++;
            meta[i].subject = s;
            meta[i].window = g->window[i];
            meta[i].label = m->label[s];
            meta[i].mean_fd = m->fd[s];
            meta[i].n_nodes = m->N[a];
            pid[i] = m->pid[s];
            site[i] = m->site[s];
            if (dsn) dsn[i] = m->ds[s];
        }
    }
    if (!rc) {
        snprintf(path, pl, "%s/index.h5", outdir);
        rc = graphs_index_write(path, info, (int)nsh, (const char *const *)names, G, meta, pid,
                                dsn, site, e);
    }
    if (names)
        for (int64_t sh = 0; sh < nsh; sh++) free(names[sh]);
    free(names);
    free(meta);
    free(pid);
    free(site);
    free(dsn);
    free(row);
    free(path);
    return rc;
}

/* Bytes of the largest of the nsh shards of gps graphs each. */
static int64_t largest_shard(const ts_meta *m, const glist *g, int rwse_steps, int64_t gps,
                             int64_t nsh) {
    int64_t max_shard = 0;
    for (int64_t sh = 0; sh < nsh; sh++) {
        int64_t b = 0;
        for (int64_t i = sh * gps; i < g->G && i < (sh + 1) * gps; i++)
            b += graph_bytes(m, rwse_steps, g->atlas[i]);
        if (b > max_shard) max_shard = b;
    }
    return max_shard;
}

/* max_memory_per_rank (docs/reliability.md "Resource limits"): two shard buffers (graphs
 * of this rank, the gathered shard) + per-atlas workspaces + one subject's series. */
static int memory_check(const connectivity_opts *o, const ts_meta *m, int64_t max_shard,
                        int64_t gps, bgfm_err *e) {
    const connectivity_params *p = &o->p;
    double wsb = 0, series = 0, meta = 0;
    for (int a = 0; a < m->A; a++) {
        double N = m->N[a], maxT = 2;
        for (int64_t s = 0; s < m->S; s++) {
            double T = (double)(m->off[a][s + 1] - m->off[a][s]);
            if (T > maxT) maxT = T;
        }
        double pairs = N * (N - 1) / 2, rw = (double)connectivity_rwse_work((int)N, p->rwse_steps);
        wsb += maxT * N * 4 + (pairs > rw ? pairs : rw) * 4 + (N * N > 3 * N ? N * N : 3 * N) * 8 + N;
        if (maxT * N * 4 > series) series = maxT * N * 4;
        meta += (double)m->S * (N + 8);
    }
    double est = 2.0 * (double)max_shard + wsb + series + meta;
    char what[200];
    snprintf(what, sizeof what, "2 x %.1f MiB shard buffers of %lld graphs + %.1f MiB "
             "workspaces and series", (double)max_shard / 1048576.0, (long long)gps,
             (wsb + series + meta) / 1048576.0);
    return config_mem_check(o->max_memory, o->pipeline_file, o->stage_name, est, what,
                            "lower graphs_per_shard", e);
}

/* The graph store's description (root attributes of every shard and of the index). */
static void store_info(const connectivity_opts *o, const ts_meta *m, int64_t gps,
                       graphs_info *info) {
    const connectivity_params *p = &o->p;
    memset(info, 0, sizeof *info);
    info->n_atlases = m->A;
    info->atlas_names = (const char *const *)m->atlas;
    info->atlas_nodes = m->N;
    info->region_labels = (const int32_t *const *)m->region;
    info->rwse_steps = p->rwse_steps;
    info->measure = measure_name(p->measure);
    info->fisher_z = p->fisher_z;
    info->adjacency = p->adj_rule == CONNECTIVITY_ADJ_THRESHOLD ? "threshold" : "density";
    info->adjacency_value = p->adj_value;
    info->window_length = p->window_length;
    info->window_stride = p->window_length > 0 ? p->window_stride : 0;
    info->window_length_s = p->window_length_s;
    info->window_stride_s = p->window_stride_s;
    info->graphs_per_shard = gps;
    info->compress = o->compress;
    info->has_dataset = m->ds != NULL;
}

/* timeseries.h5 opened (on this rank alone) and its metadata read. */
static int meta_open(const char *ts_path, const connectivity_opts *o, hid_t *f, ts_meta *m,
                     bgfm_err *e) {
    struct stat sb;
    if (stat(ts_path, &sb) != 0)
        return bgfm_fail(e, BGFM_EIO,
                         "time series file '%s' not found; run the parcellate stage first (the "
                         "connectivity stage reads its timeseries.h5)",
                         ts_path);
    *f = h5io_open(MPI_COMM_SELF, ts_path, e);
    return *f < 0 ? e->code : ts_meta_read(*f, ts_path, o->site_column, m, e);
}

/* Collective: each graph's packed size (*gbytes) and the per-dataset units over them. */
static int units_start(bgfm_ctx *ctx, const connectivity_opts *o, const char *outdir,
                       const ts_meta *m, const glist *g, int64_t **gbytes, connectivity_units *u) {
    bgfm_err *e = &ctx->err;
    *gbytes = bgfm_malloc(e, (size_t)(g->G + 1) * sizeof **gbytes, "graph sizes");
    for (int64_t i = 0; *gbytes && i < g->G; i++)
        (*gbytes)[i] = graph_bytes(m, o->p.rwse_steps, g->atlas[i]);
    int rc = bgfm_ctx_agree(ctx, *gbytes ? 0 : BGFM_ENOMEM);
    return rc ? rc : connectivity_units_open(ctx, o, outdir, m->ds, m->S, g->G, g->subject,
                                             *gbytes, u);
}

int connectivity_stage_exec(bgfm_ctx *ctx, const connectivity_opts *o, const char *ts_path,
                            const char *outdir, connectivity_stats *st) {
    bgfm_err *e = &ctx->err;
    const connectivity_params *p = &o->p;
    memset(st, 0, sizeof *st);
    ts_meta m;
    memset(&m, 0, sizeof m);
    glist g;
    memset(&g, 0, sizeof g);
    connectivity_ws *ws = NULL;
    series_cache cache = {-1, -1, NULL, 0};
    char *blob = NULL, *shard_buf = NULL;
    int *counts = NULL, *displs = NULL;
    uint8_t *skip = NULL;
    char **why = NULL;
    int64_t *gbytes = NULL;
    connectivity_units units;
    memset(&units, 0, sizeof units);
    hid_t f = -1;

    /* phase 1: metadata, on every rank */
    int rc = meta_open(ts_path, o, &f, &m, e);
    if (!rc && !(skip = bgfm_calloc(e, (size_t)(m.S ? m.S : 1), 1, "skip flags"))) rc = BGFM_ENOMEM;
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) goto done;
    why = bgfm_calloc(e, (size_t)(m.S ? m.S : 1), sizeof *why, "skip reasons");
    rc = bgfm_ctx_agree(ctx, why ? 0 : BGFM_ENOMEM);
    if (!rc) rc = prescan(ctx, f, ts_path, &m, o, skip, why, &st->bytes_read);
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc) rc = skip_text(ctx, &m, skip, why, &st->skipped_text);
    if (rc) goto done;
    for (int64_t s = 0; s < m.S; s++) st->n_skipped += skip[s];
    rc = glist_build(&m, p, skip, &g, e);
    if (!rc && g.G == 0)
        rc = bgfm_fail(e, BGFM_EDATA, "'%s': no graph to compute (%lld subjects, %lld skipped)",
                       ts_path, (long long)m.S, (long long)st->n_skipped);
    /* shard sizes must fit an MPI count of bytes */
    int64_t gps = o->graphs_per_shard, nsh = rc ? 0 : (g.G + gps - 1) / gps;
    int64_t max_shard = largest_shard(&m, &g, p->rwse_steps, gps, nsh);
    if (!rc && max_shard > INT_MAX)
        rc = bgfm_fail(e, BGFM_EUSAGE,
                       "a shard of %lld graphs would hold %lld bytes (more than 2 GiB); lower the "
                       "connectivity stage's graphs_per_shard",
                       (long long)gps, (long long)max_shard);
    if (!rc && o->max_memory > 0) rc = memory_check(o, &m, max_shard, gps, e);
    if (!rc) {
        ws = bgfm_calloc(e, (size_t)m.A, sizeof *ws, "workspaces");
        counts = bgfm_calloc(e, (size_t)ctx->size, sizeof(int), "gather counts");
        displs = bgfm_calloc(e, (size_t)ctx->size, sizeof(int), "gather displacements");
        blob = bgfm_malloc(e, (size_t)(max_shard ? max_shard : 1), "graphs");
        shard_buf = bgfm_malloc(e, (size_t)(max_shard ? max_shard : 1), "shard");
        if (!ws || !counts || !displs || !blob || !shard_buf) rc = BGFM_ENOMEM;
    }
    for (int a = 0; a < m.A && !rc; a++) {
        int64_t maxT = 2;
        for (int64_t i = 0; i < g.G; i++)
            if (g.atlas[i] == a && g.len[i] > maxT) maxT = g.len[i];
        rc = connectivity_ws_init(&ws[a], m.N[a], maxT, p->rwse_steps, e);
    }
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) goto done;
    /* the datasets whose graphs are the previous output's (inputs.datasets) */
    rc = units_start(ctx, o, outdir, &m, &g, &gbytes, &units);
    if (rc) goto done;

    graphs_info info;
    store_info(o, &m, gps, &info);

    log_info(ctx, "connectivity: %lld graphs (%lld subjects x %d atlases%s) in %lld shard(s), %s",
             (long long)g.G, (long long)(m.S - st->n_skipped), m.A,
             windowed(p) ? " x windows" : "", (long long)nsh, info.measure);
    log_progress prog;
    log_progress_start(ctx, &prog, "connectivity", "shards", nsh);
    int wrc = 0; /* a shard-write failure, agreed at the next boundary */
    for (int64_t sh = 0; sh < nsh; sh++) {
        int64_t g0 = sh * gps, g1 = g0 + gps < g.G ? g0 + gps : g.G;
        int64_t lo, hi;
        double t0 = MPI_Wtime();
        split_range(&m, &g, &units, g0, g1, ctx->rank, ctx->size, &lo, &hi);
        int64_t reused = 0;
        rc = wrc ? wrc
                 : compute_range(o, f, ts_path, &m, &g, lo, hi, blob, ws, &cache, &units, &reused,
                                 &st->bytes_read, e);
        st->seconds_compute += MPI_Wtime() - t0;
        st->n_graphs += hi - lo - reused;
        st->n_reused += reused;
        rc = bgfm_ctx_agree(ctx, rc);
        if (rc) break;
        int owner = (int)(sh % ctx->size);
        int64_t mybytes = 0;
        for (int64_t i = lo; i < hi; i++) mybytes += graph_bytes(&m, p->rwse_steps, g.atlas[i]);
        int mb = (int)mybytes;
        rc = bgfm_ctx_agree(ctx, BGFM_MPI(e, MPI_Gather(&mb, 1, MPI_INT, counts, 1, MPI_INT, owner,
                                                        ctx->comm)));
        if (rc) break;
        if (ctx->rank == owner)
            for (int r = 0, d = 0; r < ctx->size; r++) {
                displs[r] = d;
                d += counts[r];
            }
        rc = bgfm_ctx_agree(ctx, BGFM_MPI(e, MPI_Gatherv(blob, mb, MPI_BYTE, shard_buf, counts,
                                                         displs, MPI_BYTE, owner, ctx->comm)));
        if (rc) break;
        if (ctx->rank == owner) {
            double t1 = MPI_Wtime();
            wrc = write_shard(outdir, sh, &info, &m, &g, g0, g1, shard_buf, p->rwse_steps, e);
            if (!wrc) wrc = connectivity_units_put(&units, g.subject, g0, g1, shard_buf, gbytes, e);
            st->seconds_write += MPI_Wtime() - t1;
        }
        log_progress_update(ctx, &prog, sh + 1);
    }
    if (!rc) rc = bgfm_ctx_agree(ctx, wrc);
    log_progress_end(ctx, &prog, rc ? 0 : nsh);
    if (rc) goto done;
    if (ctx->rank == 0) {
        double t1 = MPI_Wtime();
        rc = write_index(outdir, &info, &m, &g, gps, e);
        if (!rc && st->skipped_text) rc = write_skipped(outdir, st->skipped_text, e);
        st->seconds_write += MPI_Wtime() - t1;
    }
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc) rc = connectivity_units_commit(ctx, outdir, &units);
    st->n_shards = nsh;
done:
    connectivity_units_free(&units);
    free(gbytes);
    if (f >= 0) {
        bgfm_err ignore;
        bgfm_err_clear(&ignore);
        h5io_close(&f, ts_path, &ignore);
    }
    if (ws)
        for (int a = 0; a < m.A; a++) connectivity_ws_free(&ws[a]);
    free(ws);
    free(cache.X);
    free(blob);
    free(shard_buf);
    free(counts);
    free(displs);
    for (int64_t s = 0; why && s < m.S; s++) free(why[s]);
    free(why);
    free(skip);
    glist_free(&g);
    ts_meta_free(&m);
    return rc;
}
