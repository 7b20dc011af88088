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

#include "bgfm/rng.h"

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

/* The formed Gram matrix G (n, n; overwritten) by LAPACK's dsyevd, its k leading
 * eigenpairs out: U (n, k), lam (k), largest first. what names the problem in messages. */
static int gram_eig_top(double *G, int64_t n, int k, double *U, double *lam, const char *what,
                        bgfm_err *e) {
    double *w = bgfm_malloc(e, (size_t)n * sizeof *w, "Gram matrix eigenvalues");
    if (!w) return BGFM_ENOMEM;
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)n, G, (lapack_int)n, w);
    int rc = info ? bgfm_fail(e, BGFM_ENUMERIC, "%s: the eigensolver (dsyevd) failed (info %d) "
                              "on the %lld x %lld Gram matrix", what, (int)info, (long long)n,
                              (long long)n)
                  : 0;
    for (int64_t i = 0; !rc && i < n; i++) /* ascending: the j-th leading is column n-1-j */
        for (int j = 0; j < k; j++) U[i * k + j] = G[i * n + (n - 1 - j)];
    for (int j = 0; !rc && j < k; j++) lam[j] = w[n - 1 - j];
    free(w);
    return rc;
}

/* Past PCA_EXACT_MAX rows: the rows centred in double once and the k leading eigenpairs
 * of their Gram matrix by pca_gram_top's randomised solver (U (n, k), lam (k)); *tr the
 * trace of the Gram matrix; Xc (n, D) returned for the axes. */
static int gram_large(const float *X, int64_t n, int64_t D, const double *mean, int k, double **Xc,
                      double *U, double *lam, double *tr, bgfm_err *e) {
    *Xc = bgfm_malloc(e, (size_t)(n * D) * sizeof **Xc, "PCA centred rows");
    if (!*Xc) return BGFM_ENOMEM;
    centred_block(X, n, D, mean, 0, D, *Xc);
    *tr = 0;
    for (int64_t q = 0; q < n * D; q++) *tr += (*Xc)[q] * (*Xc)[q];
    return pca_gram_top(*Xc, n, D, k, PCA_SOLVER_RANDOMISED, U, lam, NULL, "pca", e);
}

int pca_fit(pca_model *m, const float *X, int64_t n, int64_t D, int k, bgfm_err *e) {
    memset(m, 0, sizeof *m);
    if (n < 2 || D < 1 || k < 1 || k > n - 1)
        return bgfm_fail(e, BGFM_EUSAGE, "pca: need n >= 2 rows, D >= 1 columns and 1 <= k <= "
                         "n - 1 components (got n %lld, D %lld, k %d)", (long long)n,
                         (long long)D, k);
    int64_t bw = D < PCA_BLOCK ? D : PCA_BLOCK;
    const int large = n > PCA_EXACT_MAX; /* no n x n Gram matrix (pca.h, pca_gram_top) */
    m->D = D;
    m->n_fit = n;
    m->mean = bgfm_calloc(e, (size_t)D, sizeof *m->mean, "PCA mean");
    /* the k leading eigenpairs of the Gram matrix: U (n, k), lam (k), largest first */
    double *U = bgfm_malloc(e, (size_t)(n * k) * sizeof *U, "PCA eigenvectors");
    double *lam = bgfm_calloc(e, (size_t)k, sizeof *lam, "PCA eigenvalues");
    double *G = large ? NULL : bgfm_calloc(e, (size_t)(n * n), sizeof *G, "PCA Gram matrix");
    double *Xb = large ? NULL : bgfm_malloc(e, (size_t)(n * bw) * sizeof *Xb, "PCA block");
    double *A = NULL, *Xc = NULL, tr = 0;
    int rc = 0;
    if (!m->mean || !U || !lam || (!large && (!G || !Xb))) {
        rc = BGFM_ENOMEM;
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < D; c++) m->mean[c] += (double)X[i * D + c];
    for (int64_t c = 0; c < D; c++) m->mean[c] /= (double)n;
    if (large) {
        if ((rc = gram_large(X, n, D, m->mean, k, &Xc, U, lam, &tr, e))) goto done;
    } else {
        for (int64_t c0 = 0; c0 < D; c0 += bw) {
            int64_t w = D - c0 < bw ? D - c0 : bw;
            centred_block(X, n, D, m->mean, c0, w, Xb);
            cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)n, (int)w, 1.0, Xb, (int)w,
                        1.0, G, (int)n);
        }
        for (int64_t i = 0; i < n; i++) tr += G[i * n + i];
        if ((rc = gram_eig_top(G, n, k, U, lam, "pca", e))) goto done;
    }
    m->total_var = tr / (double)(n - 1);
    double lmax = lam[0] > 0 ? lam[0] : 0;
    int kk = 0;
    while (kk < k && lam[kk] > 1e-10 * lmax) kk++;
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
        double s = 1.0 / sqrt(lam[j]);
        for (int64_t i = 0; i < n; i++) A[(int64_t)j * n + i] = U[i * k + j] * s;
        m->var[j] = lam[j] / (double)(n - 1);
    }
    if (large)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, kk, (int)D, (int)n, 1.0, A, (int)n,
                    Xc, (int)D, 0.0, m->comp, (int)D);
    for (int64_t c0 = 0; !large && c0 < D; c0 += bw) {
        int64_t w = D - c0 < bw ? D - c0 : bw;
        centred_block(X, n, D, m->mean, c0, w, Xb);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, kk, (int)w, (int)n, 1.0, A, (int)n,
                    Xb, (int)w, 0.0, m->comp + c0, (int)D);
    }
    pca_fix_signs(m->comp, kk, D);
done:
    free(U);
    free(G);
    free(lam);
    free(Xb);
    free(A);
    free(Xc);
    if (rc) pca_free(m);
    return rc;
}

/* ---- the leading eigenpairs of a Gram matrix (pca_gram_top) ---- */

static const char *const solver_words[] = {"auto", "exact", "randomised"}; /* PCA_SOLVER_* */

const char *pca_solver_name(int solver) {
    return solver >= 0 && solver < (int)(sizeof solver_words / sizeof *solver_words)
               ? solver_words[solver]
               : NULL;
}

int pca_solver_parse(const char *word) {
    for (int k = 0; k < (int)(sizeof solver_words / sizeof *solver_words); k++)
        if (!strcmp(word, solver_words[k])) return k;
    return -1;
}

/* G = Xc Xc^T and all its eigenpairs; the k leading ones out. */
static int gram_exact(const double *Xc, int64_t n, int64_t D, int k, double *U, double *lam,
                      const char *what, bgfm_err *e) {
    double *G = bgfm_calloc(e, (size_t)(n * n), sizeof *G, "Gram matrix");
    if (!G) return BGFM_ENOMEM;
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)n, (int)D, 1.0, Xc, (int)D, 0.0, G,
                (int)n);
    int rc = gram_eig_top(G, n, k, U, lam, what, e);
    free(G);
    return rc;
}

/* Qt (l, n), row-major, is Q^T for Q (n, l) column-major: its rows made orthonormal in
 * place (Householder QR; tau (l) scratch). */
static int orth_rows(double *Qt, int64_t n, int l, double *tau, const char *what, bgfm_err *e) {
    lapack_int info = LAPACKE_dgeqrf(LAPACK_COL_MAJOR, (lapack_int)n, l, Qt, (lapack_int)n, tau);
    if (!info) info = LAPACKE_dorgqr(LAPACK_COL_MAJOR, (lapack_int)n, l, l, Qt, (lapack_int)n, tau);
    return info ? bgfm_fail(e, BGFM_ENUMERIC, "%s: the randomised subspace's QR factorisation "
                            "(dgeqrf/dorgqr) failed (info %d) on %lld x %d", what, (int)info,
                            (long long)n, l)
                : 0;
}

/* Subspace iteration (pca.h). Qt (l, n) the block's basis as rows; Wt (l, D) = Qt Xc;
 * H (l, l) = Wt Wt^T = Q^T G Q, whose eigenpairs are the Ritz pairs. */
static int gram_randomised(const double *Xc, int64_t n, int64_t D, int k, double *U,
                           double *lam, pca_top_info *info, const char *what, bgfm_err *e) {
    const int l = (int)(n < 2 * (int64_t)k + PCA_RAND_OVER ? n : 2 * k + PCA_RAND_OVER);
    double *Qt = bgfm_malloc(e, (size_t)l * (size_t)n * sizeof *Qt, "randomised subspace");
    double *Wt = bgfm_malloc(e, (size_t)l * (size_t)D * sizeof *Wt, "randomised subspace");
    double *H = bgfm_malloc(e, (size_t)l * (size_t)l * sizeof *H, "randomised subspace");
    double *th = bgfm_malloc(e, (size_t)l * sizeof *th, "randomised subspace");
    double *prev = bgfm_malloc(e, (size_t)k * sizeof *prev, "randomised subspace");
    double *V = bgfm_malloc(e, (size_t)l * (size_t)k * sizeof *V, "randomised subspace");
    int rc = Qt && Wt && H && th && prev && V ? 0 : BGFM_ENOMEM;
    info->block = l;
    /* the start: Qt = orth(Omega^T Xc^T), Omega (D, l) standard normal, row c of Omega^T
     * from its own stream */
    for (int c = 0; !rc && c < l; c++) {
        rng_stream r;
        rng_init(&r, 0, RNG_SKETCH, (uint64_t)c, 0, 0);
        for (int64_t q = 0; q < D; q++) Wt[(int64_t)c * D + q] = rng_normal(&r);
    }
    if (!rc) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, l, (int)n, (int)D, 1.0, Wt, (int)D,
                    Xc, (int)D, 0.0, Qt, (int)n);
        rc = orth_rows(Qt, n, l, th, what, e);
    }
    for (int it = 0; !rc; it++) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, l, (int)D, (int)n, 1.0, Qt, (int)n,
                    Xc, (int)D, 0.0, Wt, (int)D);
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, l, (int)D, 1.0, Wt, (int)D, 0.0, H, l);
        lapack_int li = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', l, H, l, th);
        if (li) {
            rc = bgfm_fail(e, BGFM_ENUMERIC, "%s: the randomised subspace's eigensolver (dsyevd) "
                           "failed (info %d) in %d dimensions", what, (int)li, l);
            break;
        }
        double top = fabs(th[l - 1]), change = 0;
        for (int j = 0; j < k; j++) {
            if (it > 0) change = fmax(change, fabs(th[l - 1 - j] - prev[j]));
            prev[j] = th[l - 1 - j];
        }
        change = top > 0 ? change / top : 0;
        info->iters = it, info->change = it > 0 ? change : (double)INFINITY;
        if ((it > 0 && change <= PCA_RAND_TOL) || it == PCA_RAND_ITERS || l == n) {
            /* Ritz vectors: U = Q V, V the k leading eigenvectors of H */
            for (int c = 0; c < l; c++)
                for (int j = 0; j < k; j++) V[(int64_t)c * k + j] = H[(int64_t)c * l + (l - 1 - j)];
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, k, l, 1.0, Qt, (int)n, V,
                        k, 0.0, U, k);
            memcpy(lam, prev, (size_t)k * sizeof *lam);
            break;
        }
        /* Qt = orth((Xc Xc^T Q)^T) = orth(Wt Xc^T) */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, l, (int)n, (int)D, 1.0, Wt, (int)D,
                    Xc, (int)D, 0.0, Qt, (int)n);
        rc = orth_rows(Qt, n, l, th, what, e);
    }
    free(Qt), free(Wt), free(H), free(th), free(prev), free(V);
    return rc;
}

int pca_gram_top(const double *Xc, int64_t n, int64_t D, int k, int solver, double *U,
                 double *lam, pca_top_info *info, const char *what, bgfm_err *e) {
    pca_top_info tmp;
    info = info ? info : &tmp;
    *info = (pca_top_info){0};
    if (n < 1 || D < 1 || k < 1 || k > n)
        return bgfm_fail(e, BGFM_EUSAGE, "%s: need n >= 1 rows, D >= 1 columns and "
                         "1 <= k <= n (got n %lld, D %lld, k %d)", what, (long long)n, (long long)D, k);
    if (solver == PCA_SOLVER_AUTO)
        solver = n <= PCA_EXACT_MAX ? PCA_SOLVER_EXACT : PCA_SOLVER_RANDOMISED;
    info->solver = solver;
    return solver == PCA_SOLVER_EXACT ? gram_exact(Xc, n, D, k, U, lam, what, e)
                                      : gram_randomised(Xc, n, D, k, U, lam, info, what, e);
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
