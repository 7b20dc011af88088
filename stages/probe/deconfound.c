/* deconfound.c: confound regression fitted on the training rows of a cell (deconfound.h).
 * The confounds are few (head motion, a site one-hot), so the normal equations are q x q
 * and solved through their eigendecomposition; the features are many, so Z'X and the
 * subtraction are single DGEMMs. */
#include "bgfm/deconfound.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Z (n, q) = (C - mu) / sd with the training rows' mu and sd; sd 0: the column is 0 */
static void scaled(const double *C, int64_t n, int q, const double *mu, const double *sd,
                   double *Z) {
    for (int64_t i = 0; i < n; i++)
        for (int c = 0; c < q; c++)
            Z[i * q + c] = sd[c] > 0 ? (C[i * q + c] - mu[c]) / sd[c] : 0.0;
}

/* column means and centred sums of squares of X (n, D) */
static void col_stats(const double *X, int64_t n, int64_t D, double *mean, double *ss) {
    memset(mean, 0, (size_t)D * sizeof *mean);
    memset(ss, 0, (size_t)D * sizeof *ss);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < D; j++) mean[j] += X[i * D + j];
    for (int64_t j = 0; j < D; j++) mean[j] /= (double)n;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < D; j++) {
            double d = X[i * D + j] - mean[j];
            ss[j] += d * d;
        }
}

int deconfound(double *Xtr, int64_t ntr, const double *Ctr, double *Xte, int64_t nte,
               const double *Cte, int64_t D, int q, bgfm_err *e) {
    if (q <= 0 || ntr < 2 || D <= 0) return 0;
    size_t zq = (size_t)q;
    double *mu = bgfm_calloc(e, zq, sizeof *mu, "confounds");
    double *sd = bgfm_calloc(e, zq, sizeof *sd, "confounds");
    double *Ztr = bgfm_malloc(e, (size_t)ntr * zq * sizeof *Ztr, "confounds");
    double *Zte = bgfm_malloc(e, (size_t)(nte ? nte : 1) * zq * sizeof *Zte, "confounds");
    double *G = bgfm_malloc(e, zq * zq * sizeof *G, "confounds");
    double *L = bgfm_malloc(e, zq * sizeof *L, "confounds");
    double *P = bgfm_calloc(e, zq * zq, sizeof *P, "confounds");
    double *R = bgfm_malloc(e, zq * (size_t)D * sizeof *R, "confounds");
    double *B = bgfm_malloc(e, zq * (size_t)D * sizeof *B, "confounds");
    double *m0 = bgfm_malloc(e, (size_t)D * sizeof *m0, "confounds");
    double *s0 = bgfm_malloc(e, (size_t)D * sizeof *s0, "confounds");
    double *s1 = bgfm_malloc(e, (size_t)D * sizeof *s1, "confounds");
    int rc = mu && sd && Ztr && Zte && G && L && P && R && B && m0 && s0 && s1 ? 0 : BGFM_ENOMEM;
    if (rc) goto done;
    col_stats(Ctr, ntr, q, mu, sd); /* sd holds the sums of squares until here */
    for (int c = 0; c < q; c++) {
        double s = sqrt(sd[c] / (double)ntr);
        sd[c] = s > 1e-12 * (fabs(mu[c]) > 1 ? fabs(mu[c]) : 1) ? s : 0.0;
    }
    scaled(Ctr, ntr, q, mu, sd, Ztr);
    if (nte) scaled(Cte, nte, q, mu, sd, Zte);
    col_stats(Xtr, ntr, D, m0, s0);
    /* G = Z'Z = V diag(L) V', pinv(G) = V diag(1/L, L large enough) V' */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, q, q, (int)ntr, 1.0, Ztr, q, Ztr, q,
                0.0, G, q);
    lapack_int info = LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'U', q, G, q, L);
    if (info != 0) {
        rc = bgfm_fail(e, BGFM_ENUMERIC, "probe: the confounds' normal equations could not be "
                       "solved (LAPACKE_dsyev info %d)", (int)info);
        goto done;
    }
    double lmax = L[q - 1];
    for (int k = 0; k < q; k++) {
        if (!(L[k] > 1e-10 * lmax) || !(lmax > 0)) continue;
        for (int a = 0; a < q; a++)
            for (int b = 0; b < q; b++) P[a * q + b] += G[a * q + k] * G[b * q + k] / L[k];
    }
    /* R = Z'Xtr (Z centred: the same as Z'(Xtr - mean)), B = pinv(G) R */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, q, (int)D, (int)ntr, 1.0, Ztr, q, Xtr,
                (int)D, 0.0, R, (int)D);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, q, (int)D, q, 1.0, P, q, R, (int)D,
                0.0, B, (int)D);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)ntr, (int)D, q, -1.0, Ztr, q, B,
                (int)D, 1.0, Xtr, (int)D);
    if (nte)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nte, (int)D, q, -1.0, Zte, q,
                    B, (int)D, 1.0, Xte, (int)D);
    /* a column the confounds explain entirely: exactly its training mean, not noise */
    col_stats(Xtr, ntr, D, m0, s1);
    for (int64_t j = 0; j < D; j++) {
        if (s1[j] > 1e-12 * s0[j]) continue;
        for (int64_t i = 0; i < ntr; i++) Xtr[i * D + j] = m0[j];
        for (int64_t i = 0; i < nte; i++) Xte[i * D + j] = m0[j];
    }
done:
    free(mu);
    free(sd);
    free(Ztr);
    free(Zte);
    free(G);
    free(L);
    free(P);
    free(R);
    free(B);
    free(m0);
    free(s0);
    free(s1);
    return rc;
}
