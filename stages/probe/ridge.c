/* ridge.c: ridge regression with leave-one-out choice of the strength (ridge.h): one
 * eigendecomposition of the smaller cross-product of the standardised training rows,
 * then every alpha of the grid in O(n rank).
 * Not the cross-validation protocol (regress.c). */
#include "bgfm/ridge.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/metrics.h"

void ridge_alpha_grid(int64_t D, int n, double *alphas) {
    for (int i = 0; i < n; i++)
        alphas[i] = (double)D * pow(10.0, -3.0 + 8.0 * (double)i / (double)(n - 1));
}

void ridge_free(ridge_model *m) {
    free(m->mu);
    free(m->sd);
    free(m->beta);
    memset(m, 0, sizeof *m);
}

/* U (n, r) and l (r), the left singular vectors and squared singular values of Z (n, D)
 * with l > 1e-10 l_max, from Z Z^T (n <= D) or Z^T Z (D < n). *U, *l malloc'ed. */
static int thin_svd(const double *Z, int64_t n, int64_t D, double **U, double **l, int64_t *r,
                    bgfm_err *e) {
    int64_t q = n <= D ? n : D;
    double *C = bgfm_calloc(e, (size_t)(q * q), sizeof *C, "ridge");
    double *lam = bgfm_calloc(e, (size_t)q, sizeof *lam, "ridge");
    *U = NULL;
    *l = NULL;
    *r = 0;
    if (!C || !lam) {
        free(C);
        free(lam);
        return BGFM_ENOMEM;
    }
    if (n <= D)
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)n, (int)D, 1.0, Z, (int)D, 0.0,
                    C, (int)n);
    else
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)D, (int)n, 1.0, Z, (int)D, 0.0, C,
                    (int)D);
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)q, C, (lapack_int)q,
                                     lam);
    if (info != 0) {
        free(C);
        free(lam);
        return bgfm_fail(e, BGFM_ENUMERIC, "ridge: eigendecomposition of a %lld x %lld "
                         "cross-product failed (LAPACK info %d)", (long long)q, (long long)q,
                         (int)info);
    }
    double lmax = lam[q - 1] > 0 ? lam[q - 1] : 0;
    int64_t first = 0;
    while (first < q && !(lam[first] > 1e-10 * lmax)) first++;
    int64_t rr = q - first;
    double *Uo = bgfm_calloc(e, (size_t)(n * (rr ? rr : 1)), sizeof *Uo, "ridge");
    double *lo = bgfm_calloc(e, (size_t)(rr ? rr : 1), sizeof *lo, "ridge");
    if (!Uo || !lo) {
        free(C);
        free(lam);
        free(Uo);
        free(lo);
        return BGFM_ENOMEM;
    }
    for (int64_t c = 0; c < rr; c++) lo[c] = lam[first + c];
    if (n <= D) {
        for (int64_t i = 0; i < n; i++)
            for (int64_t c = 0; c < rr; c++) Uo[i * rr + c] = C[i * q + first + c];
    } else if (rr > 0) { /* u_c = Z v_c / sqrt(l_c) */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)rr, (int)D, 1.0, Z,
                    (int)D, C + first, (int)q, 0.0, Uo, (int)rr);
        for (int64_t i = 0; i < n; i++)
            for (int64_t c = 0; c < rr; c++) Uo[i * rr + c] /= sqrt(lo[c]);
    }
    free(C);
    free(lam);
    *U = Uo;
    *l = lo;
    *r = rr;
    return 0;
}

/* Leave-one-out mean squared error at strength a: residuals of the smoother
 * H = 11^T/n + U diag(l/(l+a)) U^T divided by 1 - H_ii. */
static double loo_error(const double *U, const double *l, const double *c, int64_t n, int64_t r,
                        const double *yc, double a) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double fit = 0, h = 1.0 / (double)n;
        for (int64_t k = 0; k < r; k++) {
            double sh = l[k] / (l[k] + a), u = U[i * r + k];
            fit += u * sh * c[k];
            h += u * u * sh;
        }
        double den = 1.0 - h;
        if (!(den > 1e-12)) return (double)INFINITY;
        double loo = (yc[i] - fit) / den;
        s += loo * loo;
    }
    return s / (double)n;
}

int ridge_fit(ridge_model *m, const double *X, int64_t n, int64_t D, const double *y,
              const double *alphas, int n_alpha, double *loo_mse, bgfm_err *e) {
    memset(m, 0, sizeof *m);
    if (n < 2 || D < 1 || n_alpha < 1)
        return bgfm_fail(e, BGFM_EUSAGE, "ridge: need n >= 2 rows, D >= 1 features and a "
                         "non-empty alpha grid (got n %lld, D %lld, %d alphas)", (long long)n,
                         (long long)D, n_alpha);
    for (int i = 0; i < n_alpha; i++)
        if (!(alphas[i] > 0) || !isfinite(alphas[i]))
            return bgfm_fail(e, BGFM_EUSAGE, "ridge: alpha %d is %g; every alpha must be > 0",
                             i, alphas[i]);
    m->D = D;
    m->mu = bgfm_calloc(e, (size_t)D, sizeof *m->mu, "ridge scaling");
    m->sd = bgfm_calloc(e, (size_t)D, sizeof *m->sd, "ridge scaling");
    m->beta = bgfm_calloc(e, (size_t)D, sizeof *m->beta, "ridge coefficients");
    double *Z = bgfm_malloc(e, (size_t)(n * D) * sizeof *Z, "ridge data");
    double *yc = bgfm_malloc(e, (size_t)n * sizeof *yc, "ridge data");
    double *U = NULL, *l = NULL, *c = NULL, *w = NULL;
    int64_t r = 0;
    int rc = 0;
    if (!m->mu || !m->sd || !m->beta || !Z || !yc) {
        rc = BGFM_ENOMEM;
        goto done;
    }
    metrics_col_scale(X, n, D, m->mu, m->sd);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < D; j++) Z[i * D + j] = (X[i * D + j] - m->mu[j]) / m->sd[j];
    for (int64_t i = 0; i < n; i++) m->b0 += y[i];
    m->b0 /= (double)n;
    for (int64_t i = 0; i < n; i++) yc[i] = y[i] - m->b0;
    if ((rc = thin_svd(Z, n, D, &U, &l, &r, e))) goto done;
    m->rank = r;
    c = bgfm_calloc(e, (size_t)(r ? r : 1), sizeof *c, "ridge");
    w = bgfm_calloc(e, (size_t)n, sizeof *w, "ridge");
    if (!c || !w) {
        rc = BGFM_ENOMEM;
        goto done;
    }
    for (int64_t k = 0; k < r; k++)
        for (int64_t i = 0; i < n; i++) c[k] += U[i * r + k] * yc[i];
    m->ia = 0;
    m->loo_mse = (double)INFINITY;
    for (int q = 0; q < n_alpha; q++) {
        double v = loo_error(U, l, c, n, r, yc, alphas[q]);
        if (loo_mse) loo_mse[q] = v;
        if (v <= m->loo_mse) m->loo_mse = v, m->ia = q;
    }
    m->alpha = alphas[m->ia];
    /* beta = Z^T U diag(1 / (l + alpha)) U^T yc */
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t k = 0; k < r; k++) s += U[i * r + k] * c[k] / (l[k] + m->alpha);
        w[i] = s;
    }
    cblas_dgemv(CblasRowMajor, CblasTrans, (int)n, (int)D, 1.0, Z, (int)D, w, 1, 0.0, m->beta, 1);
done:
    free(Z);
    free(yc);
    free(U);
    free(l);
    free(c);
    free(w);
    if (rc) ridge_free(m);
    return rc;
}

int ridge_predict(const ridge_model *m, const double *X, int64_t n, double *out, bgfm_err *e) {
    (void)e;
    for (int64_t i = 0; i < n; i++) {
        double s = m->b0;
        for (int64_t j = 0; j < m->D; j++) s += (X[i * m->D + j] - m->mu[j]) / m->sd[j] * m->beta[j];
        out[i] = s;
    }
    return 0;
}
