/* pca.c: PCA through the Gram matrix of the centred rows (pca.h), the participation
 * ratio and the group variance share. Column blocks keep the double copies small: the
 * data stay in float, one (n, PCA_BLOCK) double block is centred at a time.
 * Not the probe protocol (probe.c, stage.c). */
#include "bgfm/pca.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PCA_BLOCK 512 /* columns centred per DSYRK / DGEMM call */

void pca_free(pca_model *m) {
    free(m->mean);
    free(m->comp);
    free(m->var);
    memset(m, 0, sizeof *m);
}

/* Xb (n, w) = X[:, c0:c0+w] - mean[c0:c0+w] */
static void centred_block(const float *X, int64_t n, int64_t D, const double *mean, int64_t c0,
                          int64_t w, double *Xb) {
    for (int64_t i = 0; i < n; i++) {
        const float *x = X + i * D + c0;
        double *o = Xb + i * w;
        for (int64_t c = 0; c < w; c++) o[c] = (double)x[c] - mean[c0 + c];
    }
}

void pca_fix_signs(double *rows, int k, int64_t D) {
    for (int j = 0; j < k; j++) {
        double *v = rows + (int64_t)j * D;
        int64_t best = 0;
        for (int64_t c = 1; c < D; c++)
            if (fabs(v[c]) > fabs(v[best])) best = c;
        if (v[best] < 0)
            for (int64_t c = 0; c < D; c++) v[c] = -v[c];
    }
}

int pca_fit(pca_model *m, const float *X, int64_t n, int64_t D, int k, bgfm_err *e) {
    memset(m, 0, sizeof *m);
    if (n < 2 || D < 1 || k < 1 || k > n - 1)
        return bgfm_fail(e, BGFM_EUSAGE, "pca: need n >= 2 rows, D >= 1 columns and 1 <= k <= "
                         "n - 1 components (got n %lld, D %lld, k %d)", (long long)n,
                         (long long)D, k);
    int64_t bw = D < PCA_BLOCK ? D : PCA_BLOCK;
    m->D = D;
    m->n_fit = n;
    m->mean = bgfm_calloc(e, (size_t)D, sizeof *m->mean, "PCA mean");
    double *G = bgfm_calloc(e, (size_t)(n * n), sizeof *G, "PCA Gram matrix");
    double *lam = bgfm_calloc(e, (size_t)n, sizeof *lam, "PCA eigenvalues");
    double *Xb = bgfm_malloc(e, (size_t)(n * bw) * sizeof *Xb, "PCA block");
    double *A = NULL;
    int rc = 0;
    if (!m->mean || !G || !lam || !Xb) {
        rc = BGFM_ENOMEM;
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < D; c++) m->mean[c] += (double)X[i * D + c];
    for (int64_t c = 0; c < D; c++) m->mean[c] /= (double)n;
    for (int64_t c0 = 0; c0 < D; c0 += bw) {
        int64_t w = D - c0 < bw ? D - c0 : bw;
        centred_block(X, n, D, m->mean, c0, w, Xb);
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)n, (int)w, 1.0, Xb, (int)w,
                    1.0, G, (int)n);
    }
    double tr = 0;
    for (int64_t i = 0; i < n; i++) tr += G[i * n + i];
    m->total_var = tr / (double)(n - 1);
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)n, G, (lapack_int)n,
                                     lam);
    if (info != 0) {
        rc = bgfm_fail(e, BGFM_ENUMERIC, "pca: eigendecomposition of the %lld x %lld Gram matrix "
                       "failed (LAPACK info %d)", (long long)n, (long long)n, (int)info);
        goto done;
    }
    /* eigenvalues ascending: component j is column n-1-j */
    double lmax = lam[n - 1] > 0 ? lam[n - 1] : 0;
    int kk = 0;
    while (kk < k && lam[n - 1 - kk] > 1e-10 * lmax) kk++;
    m->k = kk;
    if (kk == 0) goto done; /* rows all equal: no component */
    m->comp = bgfm_calloc(e, (size_t)((int64_t)kk * D), sizeof *m->comp, "PCA components");
    m->var = bgfm_calloc(e, (size_t)kk, sizeof *m->var, "PCA variances");
    A = bgfm_malloc(e, (size_t)((int64_t)kk * n) * sizeof *A, "PCA");
    if (!m->comp || !m->var || !A) {
        rc = BGFM_ENOMEM;
        goto done;
    }
    /* v_j = Xc^T u_j / sqrt(l_j): A (k, n) holds u_j^T / sqrt(l_j) */
    for (int j = 0; j < kk; j++) {
        int64_t col = n - 1 - j;
        double s = 1.0 / sqrt(lam[col]);
        for (int64_t i = 0; i < n; i++) A[(int64_t)j * n + i] = G[i * n + col] * s;
        m->var[j] = lam[col] / (double)(n - 1);
    }
    for (int64_t c0 = 0; c0 < D; c0 += bw) {
        int64_t w = D - c0 < bw ? D - c0 : bw;
        centred_block(X, n, D, m->mean, c0, w, Xb);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, kk, (int)w, (int)n, 1.0, A, (int)n,
                    Xb, (int)w, 0.0, m->comp + c0, (int)D);
    }
    pca_fix_signs(m->comp, kk, D);
done:
    free(G);
    free(lam);
    free(Xb);
    free(A);
    if (rc) pca_free(m);
    return rc;
}

int pca_transform(const pca_model *m, const double *X, int64_t n, double *S, bgfm_err *e) {
    int64_t D = m->D, rows = 256;
    if (m->k == 0 || n == 0) return 0;
    double *Xc = bgfm_malloc(e, (size_t)(rows * D) * sizeof *Xc, "PCA scores");
    if (!Xc) return BGFM_ENOMEM;
    for (int64_t i0 = 0; i0 < n; i0 += rows) {
        int64_t r = n - i0 < rows ? n - i0 : rows;
        for (int64_t i = 0; i < r; i++)
            for (int64_t c = 0; c < D; c++) Xc[i * D + c] = X[(i0 + i) * D + c] - m->mean[c];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)r, m->k, (int)D, 1.0, Xc,
                    (int)D, m->comp, (int)D, 0.0, S + i0 * m->k, m->k);
    }
    free(Xc);
    return 0;
}

int pca_participation_ratio(const double *X, int64_t n, int64_t D, double *pr, bgfm_err *e) {
    *pr = (double)NAN;
    if (n < 2 || D < 1) return 0;
    int64_t q = D <= n ? D : n; /* side of the smaller cross-product */
    double *Xc = bgfm_malloc(e, (size_t)(n * D) * sizeof *Xc, "participation ratio");
    double *mu = bgfm_calloc(e, (size_t)D, sizeof *mu, "participation ratio");
    double *C = bgfm_calloc(e, (size_t)(q * q), sizeof *C, "participation ratio");
    if (!Xc || !mu || !C) {
        free(Xc);
        free(mu);
        free(C);
        return BGFM_ENOMEM;
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < D; c++) mu[c] += X[i * D + c];
    for (int64_t c = 0; c < D; c++) mu[c] /= (double)n;
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < D; c++) Xc[i * D + c] = X[i * D + c] - mu[c];
    if (D <= n)
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)D, (int)n, 1.0, Xc, (int)D, 0.0,
                    C, (int)D);
    else
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)n, (int)D, 1.0, Xc, (int)D, 0.0,
                    C, (int)n);
    double tr = 0, fro = 0;
    for (int64_t i = 0; i < q; i++) {
        tr += C[i * q + i];
        fro += C[i * q + i] * C[i * q + i];
        for (int64_t j = i + 1; j < q; j++) fro += 2.0 * C[i * q + j] * C[i * q + j];
    }
    if (fro > 0) *pr = tr * tr / fro;
    free(Xc);
    free(mu);
    free(C);
    return 0;
}

int pca_group_share(const double *X, int64_t n, int64_t D, const int64_t *group,
                    int64_t n_groups, double *share, bgfm_err *e) {
    *share = (double)NAN;
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) kept += group[i] >= 0;
    if (kept < 2 || D < 1) return 0;
    double *mu = bgfm_calloc(e, (size_t)D, sizeof *mu, "variance share");
    double *gs = bgfm_malloc(e, (size_t)D * sizeof *gs, "variance share");
    int64_t *start = bgfm_calloc(e, (size_t)n_groups + 1, sizeof *start, "variance share");
    int64_t *order = bgfm_malloc(e, (size_t)kept * sizeof *order, "variance share");
    int rc = 0;
    if (!mu || !gs || !start || !order) {
        rc = BGFM_ENOMEM;
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        if (group[i] >= 0)
            for (int64_t c = 0; c < D; c++) mu[c] += X[i * D + c];
    for (int64_t c = 0; c < D; c++) mu[c] /= (double)kept;
    /* kept rows by group (counting sort): afterwards group g is order[start[g+1] ..
     * start[g+2]) (the last group ends at kept); then one group's sum at a time */
    for (int64_t i = 0; i < n; i++)
        if (group[i] >= 0) start[group[i] + 1]++;
    for (int64_t g = 0; g < n_groups; g++) start[g + 1] += start[g];
    for (int64_t i = n - 1; i >= 0; i--)
        if (group[i] >= 0) order[--start[group[i] + 1]] = i;
    double tot = 0, between = 0;
    for (int64_t i = 0; i < n; i++)
        if (group[i] >= 0)
            for (int64_t c = 0; c < D; c++) {
                double t = X[i * D + c] - mu[c];
                tot += t * t;
            }
    for (int64_t g = 0; g < n_groups; g++) {
        int64_t a = start[g + 1], b = g + 2 <= n_groups ? start[g + 2] : kept;
        if (b <= a) continue;
        memset(gs, 0, (size_t)D * sizeof *gs);
        for (int64_t q = a; q < b; q++)
            for (int64_t c = 0; c < D; c++) gs[c] += X[order[q] * D + c];
        double s = 0, cnt = (double)(b - a);
        for (int64_t c = 0; c < D; c++) {
            double t = gs[c] / cnt - mu[c];
            s += t * t;
        }
        between += cnt * s;
    }
    if (tot > 0) *share = between / tot;
done:
    free(mu);
    free(gs);
    free(start);
    free(order);
    return rc;
}
