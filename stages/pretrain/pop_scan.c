/* pop_scan.c: per-scan statistics of the population head's scores (pop_scan.h). */
#include "bgfm/pop_scan.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct scan_row {
    int64_t scan, i;
} scan_row;

static int scan_row_cmp(const void *a, const void *b) {
    const scan_row *x = a, *y = b;
    if (x->scan != y->scan) return x->scan < y->scan ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* The rows i with side[i] == want (all rows when side is NULL) ordered by scan into o (*m
 * of them), and each scan's mean row of Q into G (scans x r0, in scan order). Returns the
 * number of scans; *multi: those with two or more rows. */
static int64_t scan_means(const double *Q, int64_t n, int r0, const int64_t *scan,
                          const signed char *side, int want, scan_row *o, int64_t *m, double *G,
                          int64_t *multi) {
    *m = 0, *multi = 0;
    for (int64_t i = 0; i < n; i++)
        if (!side || side[i] == want) o[(*m)++] = (scan_row){scan[i], i};
    qsort(o, (size_t)*m, sizeof *o, scan_row_cmp);
    int64_t scans = 0;
    for (int64_t s = 0, t; s < *m; s = t, scans++) {
        for (t = s; t < *m && o[t].scan == o[s].scan; t++) {}
        double *g = G + scans * r0;
        memset(g, 0, (size_t)r0 * sizeof *g);
        for (int64_t j = s; j < t; j++)
            for (int c = 0; c < r0; c++) g[c] += Q[o[j].i * r0 + c];
        for (int c = 0; c < r0; c++) g[c] /= (double)(t - s);
        *multi += t - s > 1;
    }
    return scans;
}

int64_t pop_scatter(const double *Q, int64_t n, int r0, const int64_t *scan, const signed char *side,
                    int want, int recentre, double *Sb, double *Sw, double *Gout,
                    int64_t *scans_out, bgfm_err *e) {
    scan_row *o = bgfm_malloc(e, (size_t)n * sizeof *o, "population head scans");
    double *G = Gout ? Gout
                     : bgfm_malloc(e, (size_t)n * (size_t)r0 * sizeof *G, "population head scans");
    double *d = bgfm_malloc(e, (size_t)r0 * sizeof *d, "population head scans");
    double *gm = bgfm_calloc(e, (size_t)r0, sizeof *gm, "population head scans");
    if (!o || !G || !d || !gm) {
        free(o), free(d), free(gm);
        if (G != Gout) free(G);
        return -1;
    }
    int64_t m = 0, multi = 0;
    const int64_t scans = scan_means(Q, n, r0, scan, side, want, o, &m, G, &multi);
    memset(Sb, 0, (size_t)r0 * r0 * sizeof *Sb);
    memset(Sw, 0, (size_t)r0 * r0 * sizeof *Sw);
    for (int64_t j = 0, k = 0; j < m; j++) {
        k += j && o[j].scan != o[j - 1].scan; /* row j's scan */
        for (int c = 0; c < r0; c++) d[c] = Q[o[j].i * r0 + c] - G[k * r0 + c];
        cblas_dger(CblasRowMajor, r0, r0, 1.0, d, 1, d, 1, Sw, r0);
    }
    for (int64_t k = 0; recentre && k < scans; k++)
        for (int c = 0; c < r0; c++) gm[c] += G[k * r0 + c] / (double)scans;
    for (int64_t k = 0; k < scans; k++) {
        double *g = G + k * r0;
        for (int c = 0; recentre && c < r0; c++) g[c] -= gm[c];
        cblas_dger(CblasRowMajor, r0, r0, 1.0, g, 1, g, 1, Sb, r0);
    }
    for (int64_t q = 0; m && q < (int64_t)r0 * r0; q++)
        Sb[q] /= (double)scans, Sw[q] /= (double)m;
    if (scans_out) *scans_out = scans;
    free(o), free(d), free(gm);
    if (G != Gout) free(G);
    return multi;
}

int pop_shrink_within(double *Sw, int r0, double s) {
    double tr = 0;
    for (int c = 0; c < r0; c++) tr += Sw[c * r0 + c];
    if (!(tr > 0)) return 1;
    tr /= r0;
    for (int64_t q = 0; q < (int64_t)r0 * r0; q++) Sw[q] *= 1.0 - s;
    for (int c = 0; c < r0; c++) Sw[c * r0 + c] += s * tr;
    return 0;
}

int pop_site_shares(const double *Qr, int64_t n, int r0, const int64_t *scan, const int32_t *site,
                    int sites, const double *V, int k, pop_rows_out *out, bgfm_err *e) {
    const char *what = "population head site shares";
    double *Y = bgfm_malloc(e, (size_t)n * (size_t)k * sizeof *Y, what);
    double *G = bgfm_malloc(e, (size_t)n * (size_t)k * sizeof *G, what);
    scan_row *o = bgfm_malloc(e, (size_t)n * sizeof *o, what);
    double *sum = bgfm_calloc(e, (size_t)sites * 3, sizeof *sum, what); /* count, sum, sum sq */
    if (!Y || !G || !o || !sum) {
        free(Y), free(G), free(o), free(sum);
        return -1;
    }
    for (int64_t i = 0; i < n; i++)
        for (int d = 0; d < k; d++) {
            double y = 0;
            for (int c = 0; c < r0; c++) y += Qr[i * r0 + c] * V[c * r0 + (r0 - 1 - d)];
            Y[i * k + d] = y;
        }
    int64_t m = 0, multi = 0;
    const int64_t S = scan_means(Y, n, k, scan, NULL, 0, o, &m, G, &multi);
    for (int d = 0; d < k; d++) {
        memset(sum, 0, (size_t)sites * 3 * sizeof *sum);
        for (int64_t j = 0, s = -1; j < m; j++) { /* o: the rows in scan order */
            if (j && o[j].scan == o[j - 1].scan) continue;
            const int w = site[o[j].i];
            const double g = G[++s * k + d];
            sum[3 * w] += 1, sum[3 * w + 1] += g, sum[3 * w + 2] += g * g;
        }
        double tot = 0, best = -1;
        int at = 0;
        for (int w = 0; w < sites; w++) {
            const double c = sum[3 * w], ss = c > 0 ? sum[3 * w + 2] - sum[3 * w + 1] * sum[3 * w + 1] / c : 0;
            sum[3 * w + 2] = ss > 0 ? ss : 0;
            tot += sum[3 * w + 2];
            if (sum[3 * w + 2] > best) best = sum[3 * w + 2], at = w;
        }
        out->site_share[d] = tot > 0 ? best / tot : 0;
        out->site_at[d] = at;
        out->site_scans[d] = S ? sum[3 * at] / (double)S : 0;
    }
    out->site_dirs = k;
    free(Y), free(G), free(o), free(sum);
    return 0;
}

static int dbl_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int pop_i64_cmp(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

double pop_median(double *v, int64_t n) {
    qsort(v, (size_t)n, sizeof *v, dbl_cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The scans of the rows with keep[i] set (every row when keep is NULL), ascending and once
 * each, into ids (pop_scatter's order of its G); rows (may be NULL; zeroed by the caller)
 * gets each one's row count. Returns how many. */
static int64_t sorted_scans(const int64_t *scan, const unsigned char *keep, int64_t n,
                            int64_t *ids, int64_t *rows) {
    int64_t m = 0, u = -1;
    for (int64_t i = 0; i < n; i++)
        if (!keep || keep[i]) ids[m++] = scan[i];
    qsort(ids, (size_t)m, sizeof *ids, pop_i64_cmp);
    for (int64_t i = 0; i < m; i++) {
        if (u < 0 || ids[i] != ids[u]) ids[++u] = ids[i];
        if (rows) rows[u]++;
    }
    return u + 1;
}

int64_t pop_scans_apart(const double *Q, int64_t n, int r0, const int64_t *scan, double shrink,
                        double zmax, unsigned char *keep, pop_rows_out *out, bgfm_err *e) {
    const char *what = "population head distances";
    memset(keep, 1, (size_t)n);
    out->apart = out->apart_of = 0;
    double *Sb = bgfm_malloc(e, (size_t)r0 * r0 * sizeof *Sb, what);
    double *Sw = bgfm_malloc(e, (size_t)r0 * r0 * sizeof *Sw, what);
    double *G = bgfm_malloc(e, (size_t)n * (size_t)r0 * sizeof *G, what);
    double *ld = bgfm_malloc(e, (size_t)n * sizeof *ld, what), *tmp = NULL;
    int64_t *ids = bgfm_malloc(e, (size_t)n * sizeof *ids, what), *rows = NULL;
    signed char *apart = NULL;
    int64_t scans = 0, got = -1, m = 0;
    if (!Sb || !Sw || !G || !ld || !ids) goto done;
    const int64_t multi = pop_scatter(Q, n, r0, scan, NULL, 0, 1, Sb, Sw, G, &scans, e);
    if (multi < 0) goto done;
    got = 0;
    if (multi < POP_APART_MIN || pop_shrink_within(Sw, r0, shrink)) goto done;
    if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', r0, Sw, r0)) goto done; /* not definite: no reading */
    rows = bgfm_calloc(e, (size_t)scans, sizeof *rows, what);
    tmp = bgfm_malloc(e, (size_t)scans * sizeof *tmp, what);
    apart = bgfm_calloc(e, (size_t)scans, sizeof *apart, what);
    if (!rows || !tmp || !apart) {
        got = -1;
        goto done;
    }
    sorted_scans(scan, NULL, n, ids, rows); /* pop_scatter's G order, and the row counts */
    for (int64_t k = 0; k < scans; k++) { /* d = |L^-1 g|^2 */
        double *g = G + k * r0, d = 0;
        cblas_dtrsv(CblasRowMajor, CblasLower, CblasNoTrans, CblasNonUnit, r0, Sw, r0, g, 1);
        for (int c = 0; c < r0; c++) d += g[c] * g[c];
        ld[k] = log(d > 1e-300 ? d : 1e-300);
        if (rows[k] > 1) tmp[m++] = ld[k];
    }
    const double med = pop_median(tmp, m);
    for (int64_t j = 0; j < m; j++) tmp[j] = fabs(tmp[j] - med);
    const double mad = 1.4826 * pop_median(tmp, m);
    out->apart_of = m;
    if (!(mad > 0)) goto done;
    for (int64_t k = 0; k < scans; k++) {
        const double z = (ld[k] - med) / mad;
        if (rows[k] < 2 || !(z > zmax)) continue;
        apart[k] = 1;
        /* into the largest few, largest first */
        int at = (int)(out->apart < POP_APART_LOG ? out->apart : POP_APART_LOG);
        for (; at > 0 && out->apart_z[at - 1] < z; at--) {
            if (at == POP_APART_LOG) continue;
            out->apart_z[at] = out->apart_z[at - 1];
            out->apart_scan[at] = out->apart_scan[at - 1];
        }
        if (at < POP_APART_LOG) out->apart_z[at] = z, out->apart_scan[at] = ids[k];
        out->apart++;
    }
    for (int64_t i = 0; i < n && out->apart; i++) {
        const int64_t *hit = bsearch(&scan[i], ids, (size_t)scans, sizeof *ids, pop_i64_cmp);
        keep[i] = !apart[hit - ids];
    }
    got = out->apart;
done:
    free(Sb), free(Sw), free(G), free(ld), free(tmp), free(ids), free(rows), free(apart);
    return got;
}

int64_t pop_scans_holding(const double *Q, int64_t n, int r0, const int64_t *scan, double shrink,
                          double smin, unsigned char *keep, pop_rows_out *out, bgfm_err *e) {
    const char *what = "population head directions held";
    const int k = POP_HOLD_DIRS < r0 ? POP_HOLD_DIRS : r0;
    out->held = 0;
    double *Sb = bgfm_malloc(e, (size_t)r0 * r0 * sizeof *Sb, what);
    double *Sw = bgfm_malloc(e, (size_t)r0 * r0 * sizeof *Sw, what);
    double *G = bgfm_malloc(e, (size_t)n * (size_t)r0 * sizeof *G, what);
    double *ev = bgfm_malloc(e, (size_t)r0 * sizeof *ev, what);
    double *y = bgfm_malloc(e, (size_t)n * sizeof *y, what);
    signed char *side = bgfm_malloc(e, (size_t)n, what);
    int64_t *ids = bgfm_malloc(e, (size_t)n * sizeof *ids, what), got = -1;
    if (!Sb || !Sw || !G || !ev || !y || !side || !ids) goto done;
    for (got = 0; got < POP_HOLD_MAX; got++) {
        int64_t scans = 0;
        for (int64_t i = 0; i < n; i++) side[i] = (signed char)(keep[i] != 0);
        const int64_t multi = pop_scatter(Q, n, r0, scan, side, 1, 1, Sb, Sw, G, &scans, e);
        if (multi < 0) {
            got = -1;
            break;
        }
        if (multi < POP_APART_MIN || pop_shrink_within(Sw, r0, shrink)) break;
        if (LAPACKE_dsygv(LAPACK_ROW_MAJOR, 1, 'V', 'U', r0, Sb, r0, Sw, r0, ev)) break;
        sorted_scans(scan, keep, n, ids, NULL); /* the kept scans: G's rows */
        int64_t who = -1;
        double best = 0;
        int dir = 0;
        for (int d = 0; d < k; d++) { /* eigenvectors in columns, ascending: leading last */
            const int col = r0 - 1 - d;
            double mean = 0, tot = 0, top = 0;
            int64_t at = 0;
            for (int64_t q = 0; q < scans; q++) {
                y[q] = 0;
                for (int c = 0; c < r0; c++) y[q] += G[q * r0 + c] * Sb[c * r0 + col];
                mean += y[q] / (double)scans;
            }
            for (int64_t q = 0; q < scans; q++) {
                const double c = (y[q] - mean) * (y[q] - mean);
                tot += c;
                if (c > top) top = c, at = q;
            }
            if (tot > 0 && top / tot > best) best = top / tot, who = at, dir = d;
        }
        if (who < 0 || best < smin) break;
        for (int64_t i = 0; i < n; i++)
            if (scan[i] == ids[who]) keep[i] = 0;
        if (out->held < POP_APART_LOG) {
            out->held_scan[out->held] = ids[who];
            out->held_share[out->held] = best;
            out->held_dir[out->held] = dir + 1;
        }
        out->held++;
    }
done:
    free(Sb), free(Sw), free(G), free(ev), free(y), free(side), free(ids);
    return got;
}
