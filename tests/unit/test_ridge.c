/* test_ridge.c: unit tests of the probe's regression and PCA parts (ridge.h, regress.h,
 * pca.h): ridge normal equations at the chosen strength, the leave-one-out shortcut
 * against refits (LAPACKE_dposv on the held-fixed standardised rows), argument errors,
 * one regression cell, R2 and Pearson r on known values; PCA axes orthonormal and equal
 * to the covariance eigenvectors, the participation ratio and group share on cases with
 * known answers; the Gram matrix's leading eigenpairs, randomised against exact
 * (pca_gram_top). Also the driver of tests/reference/probe_ridge.sh:
 * `test_ridge --ridge|--pca|--pr|--cv|--gram IN OUT` (formats in probe_ridge.py). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lapacke.h>

#include "bgfm/pca.h"
#include "bgfm/regress.h"
#include "bgfm/ridge.h"
#include "bgfm/rng.h"

/* y = X w + noise with columns of different scales and offsets */
static void make_reg(double *X, double *y, int64_t n, int64_t D, uint64_t seed) {
    rng_stream r;
    rng_init(&r, seed, RNG_USER, 0, 0, 0);
    for (int64_t i = 0; i < n; i++) {
        y[i] = 1.5;
        for (int64_t j = 0; j < D; j++) {
            X[i * D + j] = rng_normal(&r) * (1.0 + 0.3 * (double)(j % 7)) + (double)j;
            if (j < 4) y[i] += (j % 2 ? -0.8 : 0.6) * X[i * D + j];
        }
        y[i] += 0.5 * rng_normal(&r);
    }
}

static void standardise(const ridge_model *m, const double *X, int64_t n, double *Z) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < m->D; j++) Z[i * m->D + j] = (X[i * m->D + j] - m->mu[j]) / m->sd[j];
}

/* beta of ridge with intercept on rows `keep` of Z (n, D): centre, solve (Zc'Zc + aI) b =
 * Zc' yc; returns the prediction for row `at`. */
static double refit_predict(const double *Z, const double *y, int64_t n, int64_t D, int64_t skip,
                            double a, int64_t at) {
    double *A = calloc((size_t)(D * D), sizeof *A), *b = calloc((size_t)D, sizeof *b);
    double *zm = calloc((size_t)D, sizeof *zm), ym = 0;
    assert_true(A && b && zm);
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        if (i == skip) continue;
        m++;
        ym += y[i];
        for (int64_t j = 0; j < D; j++) zm[j] += Z[i * D + j];
    }
    ym /= (double)m;
    for (int64_t j = 0; j < D; j++) zm[j] /= (double)m;
    for (int64_t i = 0; i < n; i++) {
        if (i == skip) continue;
        for (int64_t j = 0; j < D; j++) {
            double zj = Z[i * D + j] - zm[j];
            b[j] += zj * (y[i] - ym);
            for (int64_t k = 0; k < D; k++) A[j * D + k] += zj * (Z[i * D + k] - zm[k]);
        }
    }
    for (int64_t j = 0; j < D; j++) A[j * D + j] += a;
    assert_int_equal(LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', (lapack_int)D, 1, A, (lapack_int)D, b, 1), 0);
    double p = ym;
    for (int64_t j = 0; j < D; j++) p += (Z[at * D + j] - zm[j]) * b[j];
    free(A);
    free(b);
    free(zm);
    return p;
}

static void check_ridge(int64_t n, int64_t D) {
    double *X = malloc((size_t)(n * D) * sizeof *X), *y = malloc((size_t)n * sizeof *y);
    double *Z = malloc((size_t)(n * D) * sizeof *Z), al[RIDGE_GRID], loo[RIDGE_GRID];
    assert_true(X && y && Z);
    make_reg(X, y, n, D, (uint64_t)(n * 1000 + D));
    ridge_alpha_grid(D, RIDGE_GRID, al);
    ridge_model m;
    bgfm_err e = {0};
    assert_int_equal(ridge_fit(&m, X, n, D, y, al, RIDGE_GRID, loo, &e), 0);
    standardise(&m, X, n, Z);
    /* the chosen alpha has the smallest LOO error */
    for (int q = 0; q < RIDGE_GRID; q++) assert_true(loo[m.ia] <= loo[q]);
    assert_true(m.alpha == al[m.ia]);
    /* leave-one-out shortcut = refits without row i (standardisation held), 3 alphas */
    int qs[3] = {0, RIDGE_GRID / 2, m.ia};
    for (int qi = 0; qi < 3; qi++) {
        double s = 0;
        for (int64_t i = 0; i < n; i++) {
            double d = y[i] - refit_predict(Z, y, n, D, i, al[qs[qi]], i);
            s += d * d;
        }
        assert_true(fabs(s / (double)n - loo[qs[qi]]) <= 1e-8 * fabs(loo[qs[qi]]));
    }
    /* prediction of the full fit = closed-form refit without leaving anything out */
    double *p = malloc((size_t)n * sizeof *p);
    assert_non_null(p);
    assert_int_equal(ridge_predict(&m, X, n, p, &e), 0);
    for (int64_t i = 0; i < n; i += 3)
        assert_true(fabs(p[i] - refit_predict(Z, y, n, D, -1, m.alpha, i)) < 1e-8 * (1 + fabs(p[i])));
    free(p);
    ridge_free(&m);
    free(X);
    free(y);
    free(Z);
}

static void test_ridge_narrow(void **st) {
    (void)st;
    check_ridge(40, 6);
}

static void test_ridge_wide(void **st) {
    (void)st;
    check_ridge(18, 60);
}

static void test_ridge_bad_args(void **st) {
    (void)st;
    double X[4] = {1, 2, 3, 4}, y[4] = {1, 2, 3, 4}, al[2] = {1, -1};
    ridge_model m;
    bgfm_err e = {0};
    assert_int_equal(ridge_fit(&m, X, 1, 1, y, al, 1, NULL, &e), BGFM_EUSAGE);
    bgfm_err_clear(&e);
    assert_int_equal(ridge_fit(&m, X, 4, 1, y, al, 2, NULL, &e), BGFM_EUSAGE);
    assert_non_null(strstr(e.msg, "alpha"));
}

static void test_scores(void **st) {
    (void)st;
    double y[5] = {1, 2, 3, 4, 5}, p[5] = {1.1, 1.9, 3.2, 3.8, 5.0};
    /* SSE 0.1, SST 10 */
    assert_true(fabs(regress_r2(y, p, 5) - (1 - 0.1 / 10)) < 1e-14);
    double q[5] = {2, 4, 6, 8, 10}, c[5] = {3, 3, 3, 3, 3};
    assert_true(fabs(regress_pearson(y, q, 5) - 1) < 1e-14);
    assert_true(isnan(regress_pearson(y, c, 5)));
    assert_true(isnan(regress_r2(c, y, 5)));
    assert_true(fabs(regress_r2(y, c, 5)) < 1e-14); /* predicting the mean: 0 */
}

/* One cell on y = 2 x + 1 exactly: the test subjects are predicted almost exactly. */
static void test_regress_cell(void **st) {
    (void)st;
    enum { S = 12 };
    double X[S], y[S], pred[S], out[REGRESS_NOUT], al[RIDGE_GRID];
    int fold[S];
    uint8_t use[S];
    for (int s = 0; s < S; s++) X[s] = s * 0.5 - 2, y[s] = 2 * X[s] + 1, fold[s] = s % 3, pred[s] = -99;
    fold[5] = -1; /* no target */
    ridge_alpha_grid(1, RIDGE_GRID, al);
    bgfm_err e = {0};
    assert_int_equal(regress_few_shot(S, fold, 1, 0, 7, 0, use, &e), 0);
    assert_int_equal(regress_cell(X, S, 1, NULL, 0, y, fold, 1, use, NULL, al, RIDGE_GRID, pred, out, &e), 0);
    assert_true(out[0] > 0.999);
    assert_true(out[1] == al[0]); /* the weakest penalty wins on noiseless data */
    assert_true(out[2] == 7);     /* 11 subjects with the target, 4 in fold 1 */
    for (int s = 0; s < S; s++) {
        if (fold[s] == 1) assert_true(fabs(pred[s] - y[s]) < 1e-2);
        else assert_true(pred[s] == -99);
    }
    /* the null model by hand: the 7 training subjects' mean for each of the 4 test ones */
    double ym = 0, mt = 0, sse = 0, sst = 0;
    for (int s = 0; s < S; s++) ym += fold[s] >= 0 && fold[s] != 1 ? y[s] / 7 : 0;
    for (int s = 0; s < S; s++) mt += fold[s] == 1 ? y[s] / 4 : 0;
    for (int s = 0; s < S; s++)
        if (fold[s] == 1) sse += (y[s] - ym) * (y[s] - ym), sst += (y[s] - mt) * (y[s] - mt);
    assert_true(fabs(out[3] - (1 - sse / sst)) < 1e-12);
    assert_true(out[3] < 0); /* the training mean is not the test fold's */
}

static void test_pca(void **st) {
    (void)st;
    enum { N = 30, D = 5 };
    float X[N * D];
    rng_stream r;
    rng_init(&r, 4, RNG_USER, 1, 0, 0);
    for (int i = 0; i < N; i++) {
        double a = rng_normal(&r), b = rng_normal(&r);
        for (int j = 0; j < D; j++)
            X[i * D + j] = (float)(3 * a * (j + 1) + b * (j % 2 ? 1 : -1) + 0.1 * rng_normal(&r) + j);
    }
    pca_model m;
    bgfm_err e = {0};
    assert_int_equal(pca_fit(&m, X, N, D, 3, &e), 0);
    assert_int_equal(m.k, 3);
    /* the covariance's eigen pairs, directly */
    double C[D * D] = {0}, mu[D] = {0}, w[D];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) mu[j] += (double)X[i * D + j] / (double)N;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++)
            for (int k = 0; k < D; k++)
                C[j * D + k] += ((double)X[i * D + j] - mu[j]) * ((double)X[i * D + k] - mu[k]) / (N - 1);
    double tr = 0;
    for (int j = 0; j < D; j++) tr += C[j * D + j];
    assert_int_equal(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'U', D, C, D, w), 0);
    assert_true(fabs(m.total_var - tr) < 1e-10 * tr);
    for (int c = 0; c < 3; c++) {
        assert_true(fabs(m.var[c] - w[D - 1 - c]) < 1e-9 * w[D - 1]);
        double dot = 0, nn = 0;
        for (int j = 0; j < D; j++) dot += m.comp[c * D + j] * C[j * D + D - 1 - c], nn += m.comp[c * D + j] * m.comp[c * D + j];
        assert_true(fabs(fabs(dot) - 1) < 1e-8 && fabs(nn - 1) < 1e-12);
    }
    /* scores of the fitting rows have the component variances */
    double Xd[N * D], S[N * 3];
    for (int i = 0; i < N * D; i++) Xd[i] = X[i];
    assert_int_equal(pca_transform(&m, Xd, N, S, &e), 0);
    for (int c = 0; c < 3; c++) {
        double v = 0;
        for (int i = 0; i < N; i++) v += S[i * 3 + c] * S[i * 3 + c] / (N - 1);
        assert_true(fabs(v - m.var[c]) < 1e-9 * m.var[0]);
    }
    pca_free(&m);
    assert_int_equal(pca_fit(&m, X, N, D, N, &e), BGFM_EUSAGE); /* k > n - 1 */
}

static void test_participation_ratio(void **st) {
    (void)st;
    /* +-e1, +-e2 (equal variance on 2 axes): 2; points on a line: 1 */
    double X[4 * 3] = {1, 0, 5, -1, 0, 5, 0, 1, 5, 0, -1, 5}, L[4 * 3] = {1, 2, 3, 2, 4, 6, -1, -2, -3, 0, 0, 0};
    double pr, sh;
    bgfm_err e = {0};
    assert_int_equal(pca_participation_ratio(X, 4, 3, &pr, &e), 0);
    assert_true(fabs(pr - 2) < 1e-14);
    assert_int_equal(pca_participation_ratio(L, 4, 3, &pr, &e), 0);
    assert_true(fabs(pr - 1) < 1e-14);
    /* wide (D > n) gives the same as the transposed computation would: 4 rows, 3 cols
     * padded to 6 with copies -> same spectrum doubled, same ratio */
    double W[4 * 6];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 6; j++) W[i * 6 + j] = X[i * 3 + j % 3];
    assert_int_equal(pca_participation_ratio(W, 4, 6, &pr, &e), 0);
    assert_true(fabs(pr - 2) < 1e-14);
    /* groups {0,1} and {2,3}: group means (0,0,5) both: share 0; {0,2},{1,3}: 0.5 */
    int64_t g1[4] = {0, 0, 1, 1}, g2[4] = {0, 1, 0, 1};
    assert_int_equal(pca_group_share(X, 4, 3, g1, 2, &sh, &e), 0);
    assert_true(fabs(sh) < 1e-14);
    assert_int_equal(pca_group_share(X, 4, 3, g2, 2, &sh, &e), 0);
    assert_true(fabs(sh - 0.5) < 1e-14);
    /* a row with group -1 is left out: rows 0, 1, 3 grouped {0}, {1, 3}; their mean
     * (0, -1/3, 5), total 10/9 + 10/9 + 4/9 = 8/3, between 10/9 + 2 * 5/18 = 5/3: 5/8 */
    int64_t g3[4] = {0, 1, -1, 1}, g4[4] = {-1, -1, -1, 0};
    assert_int_equal(pca_group_share(X, 4, 3, g3, 2, &sh, &e), 0);
    assert_true(fabs(sh - 0.625) < 1e-14);
    assert_int_equal(pca_group_share(X, 4, 3, g4, 1, &sh, &e), 0); /* one row kept: NaN */
    assert_true(isnan(sh));
}

/* Rows (n, D) with a spectrum of a few planted directions of strengths 20 / j over unit
 * noise (the shape of a population's FC rows: a few shared factors, then a bulk). */
static void gram_rows(double *X, int64_t n, int64_t D, int planted, uint64_t seed) {
    rng_stream r;
    rng_init(&r, seed, RNG_USER, 2, 0, 0);
    double *dir = malloc((size_t)(planted * D) * sizeof *dir);
    assert_non_null(dir);
    for (int64_t q = 0; q < planted * D; q++) dir[q] = rng_normal(&r);
    for (int64_t i = 0; i < n; i++) {
        double s[8];
        for (int j = 0; j < planted; j++) s[j] = rng_normal(&r) * 20.0 / (j + 1);
        for (int64_t q = 0; q < D; q++) {
            double x = rng_normal(&r);
            for (int j = 0; j < planted; j++) x += s[j] * dir[j * D + q] / sqrt((double)D);
            X[i * D + q] = x;
        }
    }
    free(dir);
}

/* pca_gram_top: the randomised solver against the exact one on the same rows: eigenvalues
 * within 1e-8 of the largest, each planted direction's eigenvector the same up to sign,
 * the k vectors orthonormal; the whole space when the block is as wide as the rows
 * (l = n): the exact answer at once; auto is the exact solver (the same bits) up to
 * PCA_EXACT_MAX rows and randomised past it (eigenvalues = X^T X's); arguments checked. numpy's eigh on the same Gram matrix:
 * tests/reference/probe_ridge.py (--gram). */
static void test_gram_top(void **st) {
    (void)st;
    enum { N = 200, D = 150, K = 20, P = 6 };
    double *X = malloc((size_t)N * D * sizeof *X), *U[3], lam[3][K];
    assert_non_null(X);
    gram_rows(X, N, D, P, 9);
    pca_top_info ti[3];
    bgfm_err e = {0};
    const int solver[3] = {PCA_SOLVER_EXACT, PCA_SOLVER_RANDOMISED, PCA_SOLVER_AUTO};
    for (int s = 0; s < 3; s++) {
        U[s] = malloc((size_t)N * K * sizeof *U[s]);
        assert_non_null(U[s]);
        assert_int_equal(pca_gram_top(X, N, D, K, solver[s], U[s], lam[s], &ti[s], "test", &e), 0);
    }
    assert_int_equal(ti[0].solver, PCA_SOLVER_EXACT);
    assert_int_equal(ti[1].solver, PCA_SOLVER_RANDOMISED);
    assert_int_equal(ti[2].solver, PCA_SOLVER_EXACT);
    assert_int_equal(ti[1].block, 2 * K + PCA_RAND_OVER);
    assert_true(ti[1].iters >= 1 && ti[1].iters < PCA_RAND_ITERS && ti[1].change <= PCA_RAND_TOL);
    assert_memory_equal(U[0], U[2], (size_t)N * K * sizeof *U[0]);
    for (int j = 0; j < K; j++) {
        assert_true(fabs(lam[1][j] - lam[0][j]) <= 1e-8 * lam[0][0]);
        if (j) assert_true(lam[1][j] <= lam[1][j - 1]);
    }
    for (int a = 0; a < K; a++)
        for (int b = 0; b < K; b++) { /* orthonormal; planted directions = the exact ones */
            double d = 0, x = 0;
            for (int64_t i = 0; i < N; i++)
                d += U[1][i * K + a] * U[1][i * K + b], x += U[1][i * K + a] * U[0][i * K + b];
            assert_true(fabs(d - (a == b)) < 1e-10);
            if (a == b && a < P) assert_true(fabs(fabs(x) - 1) < 1e-9);
        }
    /* a block as wide as the rows: exact after the start */
    enum { n2 = 20 };
    double U2[2][n2 * 8], l2[2][8];
    assert_int_equal(pca_gram_top(X, n2, D, 8, PCA_SOLVER_EXACT, U2[0], l2[0], NULL, "test", &e), 0);
    assert_int_equal(pca_gram_top(X, n2, D, 8, PCA_SOLVER_RANDOMISED, U2[1], l2[1], &ti[0], "test",
                                  &e), 0);
    assert_int_equal(ti[0].block, n2);
    assert_int_equal(ti[0].iters, 0);
    for (int j = 0; j < 8; j++) assert_true(fabs(l2[1][j] - l2[0][j]) <= 1e-10 * l2[0][0]);
    /* auto past PCA_EXACT_MAX rows: randomised; the nonzero eigenvalues of X X^T are those of
     * X^T X (D2 x D2, LAPACK directly) */
    enum { nb = PCA_EXACT_MAX + 1, D2 = 6 };
    double *Xb = malloc((size_t)nb * D2 * sizeof *Xb), *Ub = malloc((size_t)nb * 3 * sizeof *Ub);
    double lb[3], Cb[D2 * D2] = {0}, wb[D2];
    assert_true(Xb && Ub);
    gram_rows(Xb, nb, D2, 2, 10);
    assert_int_equal(pca_gram_top(Xb, nb, D2, 3, PCA_SOLVER_AUTO, Ub, lb, &ti[0], "test", &e), 0);
    assert_int_equal(ti[0].solver, PCA_SOLVER_RANDOMISED);
    for (int64_t i = 0; i < nb; i++)
        for (int a = 0; a < D2; a++)
            for (int b = 0; b < D2; b++) Cb[a * D2 + b] += Xb[i * D2 + a] * Xb[i * D2 + b];
    assert_int_equal(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', D2, Cb, D2, wb), 0);
    for (int j = 0; j < 3; j++) assert_true(fabs(lb[j] - wb[D2 - 1 - j]) <= 1e-10 * wb[D2 - 1]);
    free(Xb), free(Ub);
    assert_int_equal(pca_gram_top(X, N, D, N + 1, PCA_SOLVER_EXACT, U[0], lam[0], NULL, "test", &e),
                     BGFM_EUSAGE);
    assert_non_null(strstr(e.msg, "test: need"));
    assert_int_equal(pca_solver_parse("randomised"), PCA_SOLVER_RANDOMISED);
    assert_int_equal(pca_solver_parse("random"), -1);
    assert_string_equal(pca_solver_name(PCA_SOLVER_AUTO), "auto");
    for (int s = 0; s < 3; s++) free(U[s]);
    free(X);
}

/* ---- drivers for tests/reference/probe_ridge.py --------------------------------------- */
static double *read_rows(FILE *f, int64_t n, int64_t D, double *first) {
    double *X = malloc((size_t)((n ? n : 1) * D) * sizeof *X);
    if (!X) return NULL;
    for (int64_t i = 0; i < n; i++) {
        if (first && fscanf(f, "%lf", &first[i]) != 1) return free(X), NULL;
        for (int64_t j = 0; j < D; j++)
            if (fscanf(f, "%lf", &X[i * D + j]) != 1) return free(X), NULL;
    }
    return X;
}

/* IN: n D nte; n rows "y x.."; nte rows "x..". OUT: ia alpha; loo[]; b0; beta[]; pred[] */
static int drive_ridge(FILE *f, FILE *g) {
    long long n, D, nte;
    if (fscanf(f, "%lld %lld %lld", &n, &D, &nte) != 3) return 2;
    double *y = malloc((size_t)n * sizeof *y), al[RIDGE_GRID], loo[RIDGE_GRID];
    double *X = y ? read_rows(f, n, D, y) : NULL, *T = X ? read_rows(f, nte, D, NULL) : NULL;
    double *p = malloc((size_t)(nte + 1) * sizeof *p);
    if (!T || !p) return 2;
    ridge_alpha_grid(D, RIDGE_GRID, al);
    ridge_model m;
    bgfm_err e = {0};
    if (ridge_fit(&m, X, n, D, y, al, RIDGE_GRID, loo, &e) || ridge_predict(&m, T, nte, p, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    fprintf(g, "%d %.17g\n", m.ia, m.alpha);
    for (int q = 0; q < RIDGE_GRID; q++) fprintf(g, "%.17g\n", loo[q]);
    fprintf(g, "%.17g\n", m.b0);
    for (long long j = 0; j < D; j++) fprintf(g, "%.17g\n", m.beta[j]);
    for (long long i = 0; i < nte; i++) fprintf(g, "%.17g\n", p[i]);
    ridge_free(&m);
    free(y), free(X), free(T), free(p);
    return 0;
}

/* IN: n D k nte; n rows (fitting, float32 values), nte rows. OUT: k; mean; comp; var;
 * total_var; scores (nte, k) */
static int drive_pca(FILE *f, FILE *g) {
    long long n, D, nte;
    int k;
    if (fscanf(f, "%lld %lld %d %lld", &n, &D, &k, &nte) != 4) return 2;
    double *Xd = read_rows(f, n, D, NULL), *T = Xd ? read_rows(f, nte, D, NULL) : NULL;
    float *X = malloc((size_t)(n * D) * sizeof *X);
    double *S = malloc((size_t)((nte + 1) * k) * sizeof *S);
    if (!T || !X || !S) return 2;
    for (long long i = 0; i < n * D; i++) X[i] = (float)Xd[i];
    pca_model m;
    bgfm_err e = {0};
    if (pca_fit(&m, X, n, D, k, &e) || pca_transform(&m, T, nte, S, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    fprintf(g, "%d\n", m.k);
    for (long long j = 0; j < D; j++) fprintf(g, "%.17g\n", m.mean[j]);
    for (long long j = 0; j < m.k * D; j++) fprintf(g, "%.17g\n", m.comp[j]);
    for (int c = 0; c < m.k; c++) fprintf(g, "%.17g\n", m.var[c]);
    fprintf(g, "%.17g\n", m.total_var);
    for (long long j = 0; j < nte * m.k; j++) fprintf(g, "%.17g\n", S[j]);
    pca_free(&m);
    free(Xd), free(T), free(X), free(S);
    return 0;
}

/* IN: n D k solver (PCA_SOLVER_*); n rows. OUT: the solver used, block, iterations; lam (k);
 * U (n, k) row by row */
static int drive_gram(FILE *f, FILE *g) {
    long long n, D;
    int k, solver;
    if (fscanf(f, "%lld %lld %d %d", &n, &D, &k, &solver) != 4) return 2;
    double *X = read_rows(f, n, D, NULL), *U = malloc((size_t)(n * k) * sizeof *U);
    double *lam = malloc((size_t)k * sizeof *lam);
    if (!X || !U || !lam) return 2;
    pca_top_info ti;
    bgfm_err e = {0};
    if (pca_gram_top(X, n, D, k, solver, U, lam, &ti, "gram", &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    fprintf(g, "%d %d %d\n", ti.solver, ti.block, ti.iters);
    for (int j = 0; j < k; j++) fprintf(g, "%.17g\n", lam[j]);
    for (long long j = 0; j < n * k; j++) fprintf(g, "%.17g\n", U[j]);
    free(X), free(U), free(lam);
    return 0;
}

/* IN: n D G; n rows "group x..". OUT: participation ratio, group share */
static int drive_pr(FILE *f, FILE *g) {
    long long n, D, G;
    if (fscanf(f, "%lld %lld %lld", &n, &D, &G) != 3) return 2;
    double *gr = malloc((size_t)n * sizeof *gr), *X = gr ? read_rows(f, n, D, gr) : NULL, pr, sh;
    int64_t *gi = malloc((size_t)n * sizeof *gi);
    if (!X || !gi) return 2;
    for (long long i = 0; i < n; i++) gi[i] = (int64_t)gr[i];
    bgfm_err e = {0};
    if (pca_participation_ratio(X, n, D, &pr, &e) || pca_group_share(X, n, D, gi, G, &sh, &e))
        return 1;
    fprintf(g, "%.17g %.17g\n", pr, sh);
    free(gr), free(X), free(gi);
    return 0;
}

/* IN: S D F seed nfew; S rows "y x.." (y nan: no target). Cross-validated ridge as the probe
 * runs it (repeat 0). OUT: per subject "fold pred"; per fold "r2 alpha ntr r2_mean" (n = all);
 * then per fold the few-shot (nfew) "r2 alpha ntr r2_mean" and the training subjects'
 * indices (r2_mean: the training subjects' mean as the prediction). */
static int drive_cv(FILE *f, FILE *g) {
    long long S, D, seed, nfew;
    int F;
    if (fscanf(f, "%lld %lld %d %lld %lld", &S, &D, &F, &seed, &nfew) != 5) return 2;
    double *y = malloc((size_t)S * sizeof *y), *X = y ? read_rows(f, S, D, y) : NULL;
    double *pred = calloc((size_t)S, sizeof *pred), al[RIDGE_GRID], out[REGRESS_NOUT * 1000];
    int *fold = malloc((size_t)S * sizeof *fold);
    uint8_t *has = malloc((size_t)S), *use = malloc((size_t)S);
    if (!X || !pred || !fold || !has || !use || F > 1000) return 2;
    for (long long s = 0; s < S; s++) has[s] = !isnan(y[s]);
    bgfm_err e = {0};
    ridge_alpha_grid(D, RIDGE_GRID, al);
    if (regress_folds(S, has, F, (uint64_t)seed, 0, "y", fold, &e)) return 1;
    for (int k = 0; k < F; k++) {
        if (regress_few_shot(S, fold, k, 0, (uint64_t)seed, 0, use, &e)) return 1;
        if (regress_cell(X, S, D, NULL, 0, y, fold, k, use, NULL, al, RIDGE_GRID, pred, out + REGRESS_NOUT * k, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
    }
    for (long long s = 0; s < S; s++) fprintf(g, "%d %.17g\n", fold[s], pred[s]);
    for (int k = 0; k < F; k++) {
        const double *o = out + REGRESS_NOUT * k;
        fprintf(g, "%.17g %.17g %.17g %.17g\n", o[0], o[1], o[2], o[3]);
    }
    for (int k = 0; k < F; k++) {
        double o[REGRESS_NOUT];
        if (regress_few_shot(S, fold, k, nfew, (uint64_t)seed, 0, use, &e)) return 1;
        if (regress_cell(X, S, D, NULL, 0, y, fold, k, use, NULL, al, RIDGE_GRID, NULL, o, &e)) return 1;
        fprintf(g, "%.17g %.17g %.17g %.17g", o[0], o[1], o[2], o[3]);
        for (long long s = 0; s < S; s++)
            if (use[s]) fprintf(g, " %lld", s);
        fputs("\n", g);
    }
    free(y), free(X), free(pred), free(fold), free(has), free(use);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strncmp(argv[1], "--", 2)) {
        FILE *f = fopen(argv[2], "r"), *g = fopen(argv[3], "w");
        if (!f || !g) return 2;
        int rc = !strcmp(argv[1], "--ridge") ? drive_ridge(f, g)
                 : !strcmp(argv[1], "--pca") ? drive_pca(f, g)
                 : !strcmp(argv[1], "--pr")  ? drive_pr(f, g)
                 : !strcmp(argv[1], "--cv")  ? drive_cv(f, g)
                 : !strcmp(argv[1], "--gram") ? drive_gram(f, g)
                                             : 2;
        fclose(f);
        if (fclose(g)) rc = 2;
        return rc;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ridge_narrow),
        cmocka_unit_test(test_ridge_wide),
        cmocka_unit_test(test_ridge_bad_args),
        cmocka_unit_test(test_scores),
        cmocka_unit_test(test_regress_cell),
        cmocka_unit_test(test_pca),
        cmocka_unit_test(test_participation_ratio),
        cmocka_unit_test(test_gram_top),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
