/* pop.c: fitting the population head (pop.h; docs/model.md section 11). The principal
 * subspace comes from the eigenvectors of the Gram matrix of the centred rows (n graphs
 * are far fewer than the triangle's T entries); the discriminant is one symmetric-definite
 * eigenproblem (LAPACK dsygvd) in that subspace; one product maps its directions back to
 * the triangle. */
#include "bgfm/pop.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/log.h"
#include "bgfm/pca.h"

typedef struct scan_row {
    int64_t scan, i;
} scan_row;

static int scan_row_cmp(const void *a, const void *b) {
    const scan_row *x = a, *y = b;
    if (x->scan != y->scan) return x->scan < y->scan ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Sb = the mean over scans of g g^T (g: the scan's mean row of Q), Sw = the mean over rows
 * of (q - g)(q - g)^T. Returns the number of scans with two or more rows, -1 on ENOMEM. */
static int64_t scatter(const double *Q, int64_t n, int r0, const int64_t *scan, double *Sb,
                       double *Sw, bgfm_err *e) {
    scan_row *o = bgfm_malloc(e, (size_t)n * sizeof *o, "population head scans");
    double *g = bgfm_malloc(e, (size_t)r0 * sizeof *g, "population head scans");
    double *d = bgfm_malloc(e, (size_t)r0 * sizeof *d, "population head scans");
    if (!o || !g || !d) {
        free(o), free(g), free(d);
        return -1;
    }
    for (int64_t i = 0; i < n; i++) o[i] = (scan_row){scan[i], i};
    qsort(o, (size_t)n, sizeof *o, scan_row_cmp);
    memset(Sb, 0, (size_t)r0 * r0 * sizeof *Sb);
    memset(Sw, 0, (size_t)r0 * r0 * sizeof *Sw);
    int64_t scans = 0, multi = 0;
    for (int64_t s = 0, t; s < n; s = t) {
        for (t = s; t < n && o[t].scan == o[s].scan; t++) {}
        memset(g, 0, (size_t)r0 * sizeof *g);
        for (int64_t j = s; j < t; j++)
            for (int c = 0; c < r0; c++) g[c] += Q[o[j].i * r0 + c];
        for (int c = 0; c < r0; c++) g[c] /= (double)(t - s);
        cblas_dger(CblasRowMajor, r0, r0, 1.0, g, 1, g, 1, Sb, r0);
        for (int64_t j = s; j < t; j++) {
            for (int c = 0; c < r0; c++) d[c] = Q[o[j].i * r0 + c] - g[c];
            cblas_dger(CblasRowMajor, r0, r0, 1.0, d, 1, d, 1, Sw, r0);
        }
        scans++;
        multi += t - s > 1;
    }
    for (int64_t q = 0; q < (int64_t)r0 * r0; q++) Sb[q] /= (double)scans, Sw[q] /= (double)n;
    free(o), free(g), free(d);
    return multi;
}

int pop_fit_rows(const float *Z, int64_t n, int64_t T, const int64_t *scan, int r, double shrink,
                 float *W, float *b, double *ratio, int64_t *multi, bgfm_err *e) {
    memset(W, 0, (size_t)r * (size_t)T * sizeof *W);
    memset(b, 0, (size_t)r * sizeof *b);
    *ratio = 0;
    *multi = 0;
    if (n < 3 || T < 1 || r < 1) return 0;
    double *mu = bgfm_calloc(e, (size_t)T, sizeof *mu, "population head mean");
    double *Zc = bgfm_malloc(e, (size_t)(n * T) * sizeof *Zc, "population head rows");
    double *K = bgfm_calloc(e, (size_t)(n * n), sizeof *K, "population head Gram matrix");
    double *lam = bgfm_malloc(e, (size_t)n * sizeof *lam, "population head eigenvalues");
    double *Q = NULL, *Sb = NULL, *Sw = NULL, *ev = NULL, *P = NULL, *C = NULL, *Wd = NULL;
    int rc = mu && Zc && K && lam ? 0 : -1, out = 0;
    if (rc) goto done;
    for (int64_t i = 0; i < n; i++)
        for (int64_t q = 0; q < T; q++) mu[q] += (double)Z[i * T + q];
    for (int64_t q = 0; q < T; q++) mu[q] /= (double)n;
    for (int64_t i = 0; i < n; i++)
        for (int64_t q = 0; q < T; q++) Zc[i * T + q] = (double)Z[i * T + q] - mu[q];
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)n, (int)T, 1.0, Zc, (int)T, 0.0, K,
                (int)n);
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)n, K, (lapack_int)n, lam);
    if (info) {
        rc = bgfm_fail(e, BGFM_ENUMERIC, "population head: the eigensolver (dsyevd) failed "
                       "(info %d) on %lld graphs", (int)info, (long long)n);
        goto done;
    }
    /* the leading components with a non-negligible variance, largest first */
    int r0 = 0;
    const int64_t cap = n - 1 < T ? n - 1 : T;
    while (r0 < POP_PCA && r0 < cap && lam[n - 1 - r0] > 1e-10 * lam[n - 1] && lam[n - 1] > 0) r0++;
    if (r0 < 1) goto done;
    Q = bgfm_malloc(e, (size_t)(n * r0) * sizeof *Q, "population head scores");
    Sb = bgfm_malloc(e, (size_t)r0 * r0 * sizeof *Sb, "population head covariances");
    Sw = bgfm_malloc(e, (size_t)r0 * r0 * sizeof *Sw, "population head covariances");
    ev = bgfm_malloc(e, (size_t)r0 * sizeof *ev, "population head eigenvalues");
    if (!Q || !Sb || !Sw || !ev) {
        rc = -1;
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        for (int c = 0; c < r0; c++) Q[i * r0 + c] = K[i * n + (n - 1 - c)] * sqrt(lam[n - 1 - c]);
    if ((*multi = scatter(Q, n, r0, scan, Sb, Sw, e)) < 0) {
        *multi = 0;
        rc = -1;
        goto done;
    }
    double tr = 0;
    for (int c = 0; c < r0; c++) tr += Sw[c * r0 + c];
    if (*multi == 0 || !(tr > 0)) goto done; /* no person seen twice: nothing to contrast */
    tr /= r0;
    for (int64_t q = 0; q < (int64_t)r0 * r0; q++) Sw[q] *= 1.0 - shrink;
    for (int c = 0; c < r0; c++) Sw[c * r0 + c] += shrink * tr;
    info = LAPACKE_dsygvd(LAPACK_ROW_MAJOR, 1, 'V', 'U', r0, Sb, r0, Sw, r0, ev);
    if (info) {
        rc = bgfm_fail(e, BGFM_ENUMERIC, "population head: the generalised eigensolver (dsygvd) "
                       "failed (info %d) in %d dimensions", (int)info, r0);
        goto done;
    }
    /* directions with no between-scan variance (Sb has rank < r with few scans) are an
     * arbitrary basis of a null space: not fitted */
    int rr = 0;
    while (rr < r && rr < r0 && ev[r0 - 1 - rr] > 1e-9 * ev[r0 - 1] && ev[r0 - 1] > 0) rr++;
    if (rr < 1) goto done;
    /* P (r0, n) = diag(lam^-1/2) U^T; C (rr, n) = A^T P with A the rr leading eigenvectors */
    P = bgfm_malloc(e, (size_t)(r0 * n) * sizeof *P, "population head map");
    C = bgfm_calloc(e, (size_t)(rr * n), sizeof *C, "population head map");
    Wd = bgfm_malloc(e, (size_t)rr * (size_t)T * sizeof *Wd, "population head map");
    if (!P || !C || !Wd) {
        rc = -1;
        goto done;
    }
    for (int c = 0; c < r0; c++)
        for (int64_t i = 0; i < n; i++) P[c * n + i] = K[i * n + (n - 1 - c)] / sqrt(lam[n - 1 - c]);
    for (int k = 0; k < rr; k++)
        for (int c = 0; c < r0; c++) {
            double a = Sb[c * r0 + (r0 - 1 - k)];
            for (int64_t i = 0; i < n; i++) C[k * n + i] += a * P[c * n + i];
        }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rr, (int)T, (int)n, 1.0, C, (int)n, Zc,
                (int)T, 0.0, Wd, (int)T);
    pca_fix_signs(Wd, rr, T);
    for (int k = 0; k < rr; k++) {
        double s = 0;
        for (int64_t q = 0; q < T; q++) {
            W[(int64_t)k * T + q] = (float)Wd[(int64_t)k * T + q];
            s += Wd[(int64_t)k * T + q] * mu[q];
        }
        b[k] = (float)-s;
    }
    *ratio = ev[r0 - 1];
    out = rr;
done:
    free(mu), free(Zc), free(K), free(lam), free(Q), free(Sb), free(Sw), free(ev), free(P), free(C),
        free(Wd);
    return rc ? -1 : out;
}

/* This rank's block [lo, hi) of the atlas's list, as the model sees each graph. */
static int read_rows(const model *m, graphs_store *gs, int ma, const int64_t *idx, int64_t lo,
                     int64_t hi, int N, float *Z, bgfm_err *e) {
    const int64_t T = (int64_t)N * (N - 1) / 2;
    float *fc = bgfm_malloc(e, (size_t)N * (size_t)N * sizeof *fc, "population head graph");
    int rc = fc ? 0 : BGFM_ENOMEM;
    for (int64_t g = lo; g < hi && !rc; g++) {
        if ((rc = graphs_read(gs, &idx[g], 1, fc, NULL, NULL, e))) break; /* FC only */
        float *z = Z + (g - lo) * T;
        for (int i = 0; i < N; i++)
            for (int j = i + 1; j < N; j++) {
                double x = model_input_entry(m, ma, fc, (int64_t)i * N + j);
                *z++ = isfinite(x) ? (float)x : 0.0f;
            }
    }
    free(fc);
    return rc;
}

static int fit_atlas(bgfm_ctx *ctx, model *m, graphs_store *gs, int sa, int ma, const int64_t *graphs,
                     int64_t n, double shrink, pop_fit_info *info) {
    bgfm_err *e = &ctx->err;
    const int N = graphs_atlas_nodes(gs, sa), R = ctx->size, me = ctx->rank;
    const int64_t T = (int64_t)N * (N - 1) / 2;
    int64_t na = 0;
    for (int64_t i = 0; i < n; i++) na += graphs_get_meta(gs, graphs[i])->atlas == sa;
    if (na == 0) return 0;
    int64_t *idx = bgfm_malloc(e, (size_t)na * sizeof *idx, "population head list");
    int64_t *scan = bgfm_malloc(e, (size_t)na * sizeof *scan, "population head list");
    float *Z = bgfm_malloc(e, (size_t)(na * T) * sizeof *Z, "population head rows");
    int *cnt = bgfm_malloc(e, (size_t)R * sizeof *cnt, "population head counts");
    int *dsp = bgfm_malloc(e, (size_t)R * sizeof *dsp, "population head counts");
    int rc = idx && scan && Z && cnt && dsp ? 0 : BGFM_ENOMEM;
    if (!rc && na > INT32_MAX) rc = bgfm_fail(e, BGFM_EUSAGE, "population head: %lld graphs of one "
                                              "atlas are more than MPI counts hold", (long long)na);
    for (int64_t i = 0, j = 0; !rc && i < n; i++) {
        const graphs_meta *gm = graphs_get_meta(gs, graphs[i]);
        if (gm->atlas != sa) continue;
        idx[j] = graphs[i], scan[j] = gm->subject, j++;
    }
    for (int q = 0; !rc && q < R; q++) {
        int64_t lo = na * q / R, hi = na * (q + 1) / R;
        cnt[q] = (int)(hi - lo), dsp[q] = (int)lo;
    }
    if (!rc) rc = read_rows(m, gs, ma, idx, dsp[me], dsp[me] + cnt[me], N, Z + (int64_t)dsp[me] * T, e);
    rc = bgfm_ctx_agree(ctx, rc);
    MPI_Datatype row = MPI_DATATYPE_NULL;
    if (!rc) rc = BGFM_MPI(e, MPI_Type_contiguous((int)T, MPI_FLOAT, &row));
    if (!rc) rc = BGFM_MPI(e, MPI_Type_commit(&row));
    if (!rc) rc = BGFM_MPI(e, MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, Z, cnt, dsp, row,
                                             ctx->comm));
    if (row != MPI_DATATYPE_NULL) MPI_Type_free(&row);
    rc = bgfm_ctx_agree(ctx, rc);
    int got = 0;
    if (!rc) {
        got = pop_fit_rows(Z, na, T, scan, m->cfg.pop_rank, shrink, m->w + m->pop_W[ma],
                           m->w + m->pop_b[ma], &info->ratio[ma], &info->scans[ma], e);
        if (got < 0) rc = e->code ? e->code : BGFM_ENOMEM;
    }
    if (!rc) {
        info->graphs[ma] = na;
        info->dims[ma] = got;
        if (got == 0)
            log_warn(ctx, "pretrain: no person of atlas '%s' has two or more windows among the %lld "
                     "graphs training read, so the population head of that atlas stays zero "
                     "(docs/model.md section 11: give windows in the connectivity stage, or set "
                     "pop_rank: 0)", graphs_atlas_name(gs, sa), (long long)na);
    }
    free(idx), free(scan), free(Z), free(cnt), free(dsp);
    return bgfm_ctx_agree(ctx, rc);
}

int pop_fit(bgfm_ctx *ctx, model *m, graphs_store *gs, const int64_t *graphs, int64_t n,
            double shrink, pop_fit_info *info) {
    memset(info, 0, sizeof *info);
    if (!m->cfg.pop_rank) return 0;
    int rc = 0;
    for (int sa = 0; sa < graphs_n_atlases(gs) && !rc; sa++) {
        int ma = model_atlas_find(m, graphs_atlas_name(gs, sa));
        if (ma < 0 || m->cfg.atlas_nodes[ma] != graphs_atlas_nodes(gs, sa)) continue;
        rc = fit_atlas(ctx, m, gs, sa, ma, graphs, n, shrink, info);
    }
    return rc;
}
