/* test_logreg.c: unit tests of the logistic regression (logreg.h) and the metrics
 * (metrics.h): stationarity of the penalised objective by finite differences, the
 * D > n row-space reduction against the plain fit, probabilities, AUC edge cases.
 * Also a driver for tests/reference/probe_logreg.sh: `test_logreg --fit IN OUT` fits
 * the data set IN (text) and writes coefficients; `--auc IN OUT` computes AUCs. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bgfm/logreg.h"
#include "bgfm/metrics.h"
#include "bgfm/rng.h"

/* A fixed data set: two shifted Gaussian classes (or K classes). */
static void make_data(double *X, int *y, int64_t n, int64_t D, int K, uint64_t seed) {
    rng_stream r;
    rng_init(&r, seed, RNG_USER, 0, 0, 0);
    for (int64_t i = 0; i < n; i++) {
        y[i] = (int)(i % K);
        for (int64_t j = 0; j < D; j++)
            X[i * D + j] = rng_normal(&r) * (1.0 + 0.1 * (double)j) + (j % K == y[i] ? 0.8 : 0.0) + 3.0;
    }
}

/* The objective of logreg.h on standardised data, for finite differences. */
static double objective(const logreg_model *m, const double *X, int64_t n, const int *y, double C) {
    double reg = 0, loss = 0;
    for (int64_t j = 0; j < (int64_t)m->nr * m->D; j++) reg += m->W[j] * m->W[j];
    double *P = malloc((size_t)(n * m->K) * sizeof *P);
    assert_non_null(P);
    bgfm_err e = {0};
    assert_int_equal(logreg_predict_proba(m, X, n, P, &e), 0);
    for (int64_t i = 0; i < n; i++) loss -= log(P[i * m->K + y[i]]);
    free(P);
    return 0.5 * reg + C * loss;
}

static void check_stationary(int K, int64_t n, int64_t D) {
    double *X = malloc((size_t)(n * D) * sizeof *X);
    int *y = malloc((size_t)n * sizeof *y);
    assert_true(X && y);
    make_data(X, y, n, D, K, 11);
    logreg_model m;
    bgfm_err e = {0};
    logreg_opts o = {0.5, 2000, 1e-9, 1};
    assert_int_equal(logreg_fit(&m, X, n, D, y, K, &o, &e), 0);
    if (!m.converged) fprintf(stderr, "K %d n %lld D %lld: not converged after %d iterations\n", K, (long long)n, (long long)D, m.iters);
    assert_true(m.converged);
    /* central differences of the objective w.r.t. each weight and intercept: ~0 */
    double h = 1e-5, worst = 0;
    int64_t np = (int64_t)m.nr * D;
    for (int64_t q = 0; q < np + m.nr; q++) {
        double *w = q < np ? &m.W[q] : &m.b[q - np];
        double keep = *w;
        *w = keep + h;
        double fp = objective(&m, X, n, y, o.C);
        *w = keep - h;
        double fm = objective(&m, X, n, y, o.C);
        *w = keep;
        double g = (fp - fm) / (2 * h);
        if (fabs(g) > worst) worst = fabs(g);
    }
    assert_true(worst < 1e-4);
    /* probabilities sum to 1 */
    double *P = malloc((size_t)(n * K) * sizeof *P);
    assert_non_null(P);
    assert_int_equal(logreg_predict_proba(&m, X, n, P, &e), 0);
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < K; k++) s += P[i * K + k];
        assert_true(fabs(s - 1) < 1e-12);
    }
    free(P);
    logreg_free(&m);
    free(X);
    free(y);
}

static void test_binary_stationary(void **st) {
    (void)st;
    check_stationary(2, 60, 5);
}
static void test_multinomial_stationary(void **st) {
    (void)st;
    check_stationary(3, 60, 4);
}
static void test_wide_stationary(void **st) { /* D > n: row-space reduction */
    (void)st;
    check_stationary(2, 20, 50);
    check_stationary(3, 21, 40);
}

/* The D > n reduction against the plain fit: constant columns standardise to 0, so a
 * narrow problem padded with them to D > n must give the same weights and intercept. */
static void test_constant_columns_ignored(void **st) {
    (void)st;
    int64_t n = 30, D = 3, D2 = 40;
    double *X = malloc((size_t)(n * D) * sizeof *X), *X2 = calloc((size_t)(n * D2), sizeof *X2);
    int *y = malloc((size_t)n * sizeof *y);
    assert_true(X && X2 && y);
    make_data(X, y, n, D, 2, 5);
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < D; j++) X2[i * D2 + j] = X[i * D + j];
        for (int64_t j = D; j < D2; j++) X2[i * D2 + j] = 7.25;
    }
    logreg_model a, b;
    bgfm_err e = {0};
    logreg_opts o = {1.0, 2000, 1e-10, 1};
    assert_int_equal(logreg_fit(&a, X, n, D, y, 2, &o, &e), 0);
    assert_int_equal(logreg_fit(&b, X2, n, D2, y, 2, &o, &e), 0); /* D2 > n: reduced path */
    for (int64_t j = 0; j < D; j++) assert_true(fabs(a.W[j] - b.W[j]) < 1e-7);
    for (int64_t j = D; j < D2; j++) assert_true(fabs(b.W[j]) < 1e-9);
    assert_true(fabs(a.b[0] - b.b[0]) < 1e-7);
    logreg_free(&a);
    logreg_free(&b);
    free(X);
    free(X2);
    free(y);
}

static void test_bad_args(void **st) {
    (void)st;
    double X[4] = {1, 2, 3, 4};
    int y[4] = {0, 1, 2, 0};
    logreg_model m;
    bgfm_err e = {0};
    logreg_opts o = {1.0, 100, 1e-6, 1};
    assert_int_equal(logreg_fit(&m, X, 4, 1, y, 2, &o, &e), BGFM_EUSAGE); /* label 2 >= K */
    bgfm_err e2 = {0};
    o.C = 0;
    assert_int_equal(logreg_fit(&m, X, 4, 1, y, 3, &o, &e2), BGFM_EUSAGE);
}

static void test_auc(void **st) {
    (void)st;
    double s[6] = {0.1, 0.4, 0.35, 0.8, 0.4, 0.9};
    int p[6] = {0, 0, 1, 1, 1, 1};
    bgfm_err e = {0};
    /* pairs (pos, neg): 0.35>0.1 y, 0.35<0.4 n; 0.8 y y; 0.4>0.1 y, 0.4=0.4 half; 0.9 y y */
    assert_true(fabs(metrics_auc(s, p, 6, &e) - 6.5 / 8.0) < 1e-15);
    int q[3] = {1, 1, 1};
    assert_true(isnan(metrics_auc(s, q, 3, &e)));
    assert_int_equal(e.code, 0); /* an empty class is NaN, not an error */
    int pred[4] = {0, 1, 1, 1}, yy[4] = {0, 0, 1, 1};
    assert_true(fabs(metrics_accuracy(pred, yy, 4) - 0.75) < 1e-15);
    assert_true(fabs(metrics_balanced_accuracy(pred, yy, 4, 2) - 0.75) < 1e-15);
    int y3[4] = {0, 0, 0, 1};
    int p3[4] = {0, 0, 0, 0};
    assert_true(fabs(metrics_balanced_accuracy(p3, y3, 4, 2) - 0.5) < 1e-15);
    double v[4] = {1, 2, (double)NAN, 3}, mean, sd;
    assert_int_equal(metrics_mean_sd(v, 4, &mean, &sd), 3);
    assert_true(fabs(mean - 2) < 1e-15 && fabs(sd - 1) < 1e-15);
}

/* The chi-squared test's edge cases (values against scipy: tests/reference/probe_logreg.py) */
static void test_chi2_edges(void **st) {
    (void)st;
    metrics_chi2 t;
    int64_t one_row[4] = {3, 5, 0, 0}; /* second site empty: one row left */
    assert_int_equal(metrics_chi2_table(one_row, 2, 2, &t), 0);
    assert_true(isnan(t.chi2) && isnan(t.p) && isnan(t.cramers_v));
    int64_t even[6] = {4, 4, 0, 0, 2, 2}; /* an empty row left out: 2 x 2, independent */
    assert_int_equal(metrics_chi2_table(even, 3, 2, &t), 1);
    assert_true(fabs(t.chi2) < 1e-15 && fabs(t.p - 1) < 1e-15 && fabs(t.cramers_v) < 1e-15);
    int64_t split[4] = {5, 0, 0, 5}; /* perfectly confounded: chi2 = N, V = 1 */
    assert_int_equal(metrics_chi2_table(split, 2, 2, &t), 1);
    assert_true(fabs(t.chi2 - 10) < 1e-12 && fabs(t.cramers_v - 1) < 1e-12);
    assert_true(fabs(metrics_chi2_sf(0, 3) - 1) < 1e-15 && metrics_chi2_sf(1e9, 1) == 0);
    /* dof 2: P(X > x) = exp(-x/2) exactly */
    assert_true(fabs(metrics_chi2_sf(3.7, 2) - exp(-1.85)) < 1e-15);
    assert_true(isnan(metrics_chi2_sf(1, 0)) && isnan(metrics_chi2_sf((double)NAN, 2)));
}

/* ---- driver for the Python reference ------------------------------------------------ */
static int drive_fit(const char *in, const char *out) {
    FILE *f = fopen(in, "r");
    if (!f) return 2;
    long long n, D;
    int K, stdz;
    double C;
    if (fscanf(f, "%lld %lld %d %lf %d", &n, &D, &K, &C, &stdz) != 5) return 2;
    double *X = malloc((size_t)(n * D) * sizeof *X);
    int *y = malloc((size_t)n * sizeof *y);
    if (!X || !y) return 2;
    for (long long i = 0; i < n; i++) {
        if (fscanf(f, "%d", &y[i]) != 1) return 2;
        for (long long j = 0; j < D; j++)
            if (fscanf(f, "%lf", &X[i * D + j]) != 1) return 2;
    }
    fclose(f);
    logreg_model m;
    bgfm_err e = {0};
    logreg_opts o = {C, 5000, 1e-10, stdz};
    if (logreg_fit(&m, X, n, D, y, K, &o, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    double *P = malloc((size_t)(n * K) * sizeof *P);
    if (!P || logreg_predict_proba(&m, X, n, P, &e)) return 1;
    FILE *g = fopen(out, "w");
    if (!g) return 2;
    fprintf(g, "%d %lld %d %d\n", m.nr, (long long)m.D, m.converged, m.iters);
    for (int k = 0; k < m.nr; k++)
        for (long long j = 0; j < D; j++) fprintf(g, "%.17g\n", m.W[k * D + j]);
    for (int k = 0; k < m.nr; k++) fprintf(g, "%.17g\n", m.b[k]);
    for (long long j = 0; j < D; j++) fprintf(g, "%.17g %.17g\n", m.mu[j], m.sd[j]);
    for (long long i = 0; i < n * K; i++) fprintf(g, "%.17g\n", P[i]);
    fclose(g);
    logreg_free(&m);
    free(P);
    free(X);
    free(y);
    return 0;
}

/* IN: n K, then n lines "y s_0 .. s_{K-1}"; OUT: auc_ovr, and for K == 2 also the
 * accuracy and balanced accuracy of argmax. */
static int drive_auc(const char *in, const char *out) {
    FILE *f = fopen(in, "r");
    if (!f) return 2;
    long long n;
    int K;
    if (fscanf(f, "%lld %d", &n, &K) != 2) return 2;
    double *P = malloc((size_t)(n * K) * sizeof *P);
    int *y = malloc((size_t)n * sizeof *y), *pr = malloc((size_t)n * sizeof *pr);
    if (!P || !y || !pr) return 2;
    for (long long i = 0; i < n; i++) {
        if (fscanf(f, "%d", &y[i]) != 1) return 2;
        pr[i] = 0;
        for (int k = 0; k < K; k++) {
            if (fscanf(f, "%lf", &P[i * K + k]) != 1) return 2;
            if (P[i * K + k] > P[i * K + pr[i]]) pr[i] = k;
        }
    }
    fclose(f);
    FILE *g = fopen(out, "w");
    if (!g) return 2;
    double auc;
    bgfm_err e = {0};
    if (metrics_auc_ovr(P, y, n, K, &auc, &e)) return 2;
    fprintf(g, "%.17g %.17g %.17g\n", auc, metrics_accuracy(pr, y, n),
            metrics_balanced_accuracy(pr, y, n, K));
    fclose(g);
    free(P);
    free(y);
    free(pr);
    return 0;
}

/* IN: r c, then r lines of c counts, then m, then m lines "x dof"; OUT: chi2 dof p v of
 * metrics_chi2_table, then metrics_chi2_sf(x, dof) per line. */
static int drive_chi2(const char *in, const char *out) {
    FILE *f = fopen(in, "r");
    if (!f) return 2;
    int r, c, m;
    if (fscanf(f, "%d %d", &r, &c) != 2 || r < 1 || c < 1) return 2;
    int64_t *n = malloc((size_t)(r * c) * sizeof *n);
    if (!n) return 2;
    for (int i = 0; i < r * c; i++) {
        long long v;
        if (fscanf(f, "%lld", &v) != 1) return 2;
        n[i] = v;
    }
    metrics_chi2 t;
    metrics_chi2_table(n, r, c, &t);
    FILE *g = fopen(out, "w");
    if (!g || fscanf(f, "%d", &m) != 1) return 2;
    fprintf(g, "%.17g %d %.17g %.17g\n", t.chi2, t.dof, t.p, t.cramers_v);
    for (int i = 0; i < m; i++) {
        double x;
        int dof;
        if (fscanf(f, "%lf %d", &x, &dof) != 2) return 2;
        fprintf(g, "%.17g\n", metrics_chi2_sf(x, dof));
    }
    fclose(f);
    fclose(g);
    free(n);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "--fit")) return drive_fit(argv[2], argv[3]);
    if (argc == 4 && !strcmp(argv[1], "--auc")) return drive_auc(argv[2], argv[3]);
    if (argc == 4 && !strcmp(argv[1], "--chi2")) return drive_chi2(argv[2], argv[3]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binary_stationary),
        cmocka_unit_test(test_multinomial_stationary),
        cmocka_unit_test(test_wide_stationary),
        cmocka_unit_test(test_constant_columns_ignored),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_auc),
        cmocka_unit_test(test_chi2_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
