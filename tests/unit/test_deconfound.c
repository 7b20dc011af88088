/* test_deconfound.c: unit tests of the probe's confound regression (deconfound.h) by its
 * invariants: the training residuals are orthogonal to every confound and keep each
 * column's training mean; test rows get the same fitted map (checked against an
 * independent least-squares solve, LAPACKE_dgels on [1, C] of the training rows); a
 * column the confounds explain entirely becomes exactly constant; collinear confounds
 * (a full one-hot beside the intercept, a column repeated) give the same residuals as
 * the independent set; q = 0 and a constant confound change nothing. */
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

#include "bgfm/deconfound.h"
#include "bgfm/rng.h"

enum { NTR = 40, NTE = 13, D = 7, QMAX = 6 };

/* features: a mix of the confounds, their own signal and an offset; confounds: motion-like
 * (positive, skewed) in column 0, then a one-hot of 3 sites */
static void make(double *X, double *C, int64_t n, uint64_t seed) {
    rng_stream r;
    rng_init(&r, seed, RNG_USER, 0, 0, 0);
    for (int64_t i = 0; i < n; i++) {
        double m = exp(0.5 * rng_normal(&r)) * 0.2;
        int s = (int)(i % 3);
        C[i * 4] = m;
        for (int k = 0; k < 3; k++) C[i * 4 + 1 + k] = k == s ? 1.0 : 0.0;
        for (int j = 0; j < D; j++)
            X[i * D + j] = 3.0 + j + (j + 1) * 2.0 * m + (s == 1 ? 0.5 * j : 0.0) + rng_normal(&r);
    }
}

/* least squares of every column of Xtr on [1, C] (q independent columns), applied to
 * Xte: Xte less its fitted values plus the training mean (the documented map) */
static void reference(const double *Xtr, const double *Ctr, const double *Xte, const double *Cte,
                      int q, double *out) {
    int p = q + 1;
    double A[NTR * QMAX], B[NTR * D];
    for (int i = 0; i < NTR; i++) {
        A[i * p] = 1.0;
        for (int c = 0; c < q; c++) A[i * p + 1 + c] = Ctr[i * 4 + c];
        for (int j = 0; j < D; j++) B[i * D + j] = Xtr[i * D + j];
    }
    assert_int_equal(LAPACKE_dgels(LAPACK_ROW_MAJOR, 'N', NTR, p, D, A, p, B, D), 0);
    for (int j = 0; j < D; j++) {
        double mean = 0;
        for (int i = 0; i < NTR; i++) mean += Xtr[i * D + j] / NTR;
        for (int i = 0; i < NTE; i++) {
            double fit = B[j];
            for (int c = 0; c < q; c++) fit += Cte[i * 4 + c] * B[(1 + c) * D + j];
            out[i * D + j] = Xte[i * D + j] - fit + mean;
        }
    }
}

/* copy of the first q of the 4 confound columns */
static void cols(const double *C, int64_t n, int q, double *out) {
    for (int64_t i = 0; i < n; i++)
        for (int c = 0; c < q; c++) out[i * q + c] = C[i * 4 + c];
}

static void test_against_lstsq(void **st) {
    (void)st;
    double Xtr[NTR * D], Ctr[NTR * 4], Xte[NTE * D], Cte[NTE * 4], ref[NTE * D];
    make(Xtr, Ctr, NTR, 1);
    make(Xte, Cte, NTE, 2);
    /* motion and two of three sites: independent with the intercept */
    double ctr[NTR * 3], cte[NTE * 3], mean[D];
    cols(Ctr, NTR, 3, ctr);
    cols(Cte, NTE, 3, cte);
    reference(Xtr, Ctr, Xte, Cte, 3, ref);
    for (int j = 0; j < D; j++) {
        mean[j] = 0;
        for (int i = 0; i < NTR; i++) mean[j] += Xtr[i * D + j] / NTR;
    }
    bgfm_err e = {0};
    assert_int_equal(deconfound(Xtr, NTR, ctr, Xte, NTE, cte, D, 3, &e), 0);
    double worst = 0;
    for (int i = 0; i < NTE * D; i++) worst = fmax(worst, fabs(Xte[i] - ref[i]));
    assert_true(worst < 1e-10);
    for (int j = 0; j < D; j++) {
        double m = 0;
        for (int i = 0; i < NTR; i++) m += Xtr[i * D + j] / NTR;
        assert_true(fabs(m - mean[j]) < 1e-10); /* the training mean kept */
        for (int c = 0; c < 3; c++) { /* residuals orthogonal to each centred confound */
            double cm = 0, dot = 0;
            for (int i = 0; i < NTR; i++) cm += ctr[i * 3 + c] / NTR;
            for (int i = 0; i < NTR; i++) dot += (ctr[i * 3 + c] - cm) * Xtr[i * D + j];
            assert_true(fabs(dot) < 1e-9);
        }
    }
}

/* the full one-hot (collinear with the intercept) and a repeated column: the same
 * residuals as motion and two sites */
static void test_collinear(void **st) {
    (void)st;
    double X0[NTR * D], C0[NTR * 4], T0[NTE * D], E0[NTE * 4];
    make(X0, C0, NTR, 3);
    make(T0, E0, NTE, 4);
    double Xa[NTR * D], Ta[NTE * D], Xb[NTR * D], Tb[NTE * D];
    memcpy(Xa, X0, sizeof Xa), memcpy(Xb, X0, sizeof Xb);
    memcpy(Ta, T0, sizeof Ta), memcpy(Tb, T0, sizeof Tb);
    double ca[NTR * 3], ea[NTE * 3], cb[NTR * QMAX], eb[NTE * QMAX];
    cols(C0, NTR, 3, ca);
    cols(E0, NTE, 3, ea);
    for (int i = 0; i < NTR; i++) { /* motion, 3 sites, motion again x 2, site 1 again */
        for (int c = 0; c < 4; c++) cb[i * 6 + c] = C0[i * 4 + c];
        cb[i * 6 + 4] = 2 * C0[i * 4], cb[i * 6 + 5] = C0[i * 4 + 1];
    }
    for (int i = 0; i < NTE; i++) {
        for (int c = 0; c < 4; c++) eb[i * 6 + c] = E0[i * 4 + c];
        eb[i * 6 + 4] = 2 * E0[i * 4], eb[i * 6 + 5] = E0[i * 4 + 1];
    }
    bgfm_err e = {0};
    assert_int_equal(deconfound(Xa, NTR, ca, Ta, NTE, ea, D, 3, &e), 0);
    assert_int_equal(deconfound(Xb, NTR, cb, Tb, NTE, eb, D, 6, &e), 0);
    for (int i = 0; i < NTR * D; i++) assert_true(fabs(Xa[i] - Xb[i]) < 1e-9);
    for (int i = 0; i < NTE * D; i++) assert_true(fabs(Ta[i] - Tb[i]) < 1e-9);
}

/* a column that is exactly a line in motion becomes its training mean everywhere (no
 * rounding noise left for a standardisation to blow up); q 0 and a constant confound
 * change nothing */
static void test_explained_and_none(void **st) {
    (void)st;
    double X[NTR * D], C[NTR * 4], T[NTE * D], E[NTE * 4];
    make(X, C, NTR, 5);
    make(T, E, NTE, 6);
    for (int i = 0; i < NTR; i++) X[i * D + 2] = 0.7 + 3.1 * C[i * 4];
    for (int i = 0; i < NTE; i++) T[i * D + 2] = 0.7 + 3.1 * E[i * 4];
    double X0[NTR * D], T0[NTE * D];
    memcpy(X0, X, sizeof X0);
    memcpy(T0, T, sizeof T0);
    bgfm_err e = {0};
    assert_int_equal(deconfound(X, NTR, NULL, T, NTE, NULL, D, 0, &e), 0);
    assert_memory_equal(X, X0, sizeof X0);
    assert_memory_equal(T, T0, sizeof T0);
    double one[NTR], onet[NTE];
    for (int i = 0; i < NTR; i++) one[i] = 4.0;
    for (int i = 0; i < NTE; i++) onet[i] = 9.0; /* constant on the training rows: dropped */
    assert_int_equal(deconfound(X, NTR, one, T, NTE, onet, D, 1, &e), 0);
    for (int i = 0; i < NTR * D; i++) assert_true(fabs(X[i] - X0[i]) < 1e-12);
    for (int i = 0; i < NTE * D; i++) assert_true(fabs(T[i] - T0[i]) < 1e-12);
    double m[NTR], mt[NTE];
    cols(C, NTR, 1, m);
    cols(E, NTE, 1, mt);
    assert_int_equal(deconfound(X, NTR, m, T, NTE, mt, D, 1, &e), 0);
    double mean = 0;
    for (int i = 0; i < NTR; i++) mean += X0[i * D + 2] / NTR;
    for (int i = 0; i < NTR; i++) assert_true(X[i * D + 2] == X[2]);
    for (int i = 0; i < NTE; i++) assert_true(T[i * D + 2] == X[2]);
    assert_true(fabs(X[2] - mean) < 1e-12);
    double v = 0; /* the other columns keep variation */
    for (int i = 0; i < NTR; i++) v += fabs(X[i * D + 3] - X[3]);
    assert_true(v > 1.0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_lstsq),
        cmocka_unit_test(test_collinear),
        cmocka_unit_test(test_explained_and_none),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
