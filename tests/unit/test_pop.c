/* test_pop.c: unit tests of the population head's numerical core (pop.h, pop_fit_rows):
 * on rows with two planted shared directions (subject scores) under a per-subject
 * fingerprint and window noise, the two leading directions span the planted ones; the
 * features of the training rows are centred and the same bits on a second call; with
 * no scan seen twice, with fewer than 3 rows, and with fewer scans than pop_rank (no
 * between-scan variance in the rest) the head is zero or has only the directions the
 * data support, rows after them zero. tests/reference/pop_fit.py checks the values
 * against scipy on real pretraining runs. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lapacke.h>

#include "bgfm/pop.h"
#include "bgfm/rng.h"

/* S scans of w windows over T entries: x = 4 s1 u1 + 3 s2 u2 + 0.3 f_scan + noise, with
 * u1, u2 the unit vectors of entries 0..T/2-1 and T/2..T-1 (equal weights). */
static float *planted(int S, int w, int T, int64_t *scan, uint64_t seed) {
    float *Z = malloc((size_t)S * w * T * sizeof *Z);
    double *f = malloc((size_t)T * sizeof *f);
    assert_non_null(Z);
    assert_non_null(f);
    rng_stream r;
    rng_init(&r, seed, RNG_USER, 0, 0, 0);
    const double h = 1.0 / sqrt(T / 2.0);
    for (int s = 0; s < S; s++) {
        double s1 = rng_normal(&r), s2 = rng_normal(&r);
        for (int q = 0; q < T; q++) f[q] = 0.3 * rng_normal(&r);
        for (int j = 0; j < w; j++) {
            int64_t i = (int64_t)s * w + j;
            scan[i] = 1000 + (s * 7919) % 997; /* scan ids in no particular order */
            for (int q = 0; q < T; q++)
                Z[i * T + q] = (float)((q < T / 2 ? 4.0 * s1 : 3.0 * s2) * h + f[q] + rng_normal(&r));
        }
    }
    free(f);
    return Z;
}

/* cosines of the principal angles between span(rows 0..1 of W) and the planted plane */
static double smallest_cosine(const float *W, int T) {
    double A[2][2] = {{0, 0}, {0, 0}}, n[2] = {0, 0};
    const double h = 1.0 / sqrt(T / 2.0);
    for (int k = 0; k < 2; k++)
        for (int q = 0; q < T; q++) {
            n[k] += (double)W[k * T + q] * (double)W[k * T + q];
            A[k][q < T / 2 ? 0 : 1] += (double)W[k * T + q] * h;
        }
    /* orthonormalise the two rows (Gram-Schmidt) and project */
    double g01 = 0;
    for (int q = 0; q < T; q++) g01 += (double)W[q] * (double)W[T + q];
    double a0[2] = {A[0][0] / sqrt(n[0]), A[0][1] / sqrt(n[0])};
    double c = g01 / sqrt(n[0]);
    double n1 = sqrt(n[1] - c * c);
    double a1[2] = {(A[1][0] - c * a0[0]) / n1, (A[1][1] - c * a0[1]) / n1};
    /* singular values of the 2x2 [a0; a1] */
    double p = a0[0] * a0[0] + a0[1] * a0[1], s = a1[0] * a1[0] + a1[1] * a1[1];
    double o = a0[0] * a1[0] + a0[1] * a1[1];
    double tr = p + s, det = p * s - o * o;
    return sqrt(tr / 2 - sqrt(tr * tr / 4 - det));
}

static void test_planted_directions(void **st) {
    (void)st;
    const int S = 150, w = 4, T = 24, r = 4;
    int64_t scan[600];
    float *Z = planted(S, w, T, scan, 7);
    float W[4 * 24], b[4], W2[4 * 24], b2[4];
    double ratio = 0;
    int64_t multi = 0;
    bgfm_err e = {0};
    int got = pop_fit_rows(Z, (int64_t)S * w, T, scan, r, 0.1, W, b, &ratio, &multi, &e);
    assert_int_equal(got, r);
    assert_int_equal(multi, S);
    assert_true(ratio > 1.0);
    double cs = smallest_cosine(W, T);
    print_message("smallest cosine %.4f\n", cs);
    assert_true(cs > 0.9); /* numpy/scipy on the same model: 0.965 */
    /* the training rows' features are centred */
    for (int k = 0; k < r; k++) {
        double m = 0;
        for (int64_t i = 0; i < (int64_t)S * w; i++) {
            double v = (double)b[k];
            for (int q = 0; q < T; q++) v += (double)W[k * T + q] * (double)Z[i * T + q];
            m += v;
        }
        assert_true(fabs(m / (S * w)) < 1e-3);
    }
    /* deterministic */
    assert_int_equal(pop_fit_rows(Z, (int64_t)S * w, T, scan, r, 0.1, W2, b2, &ratio, &multi, &e), r);
    assert_memory_equal(W, W2, sizeof W);
    assert_memory_equal(b, b2, sizeof b);
    free(Z);
}

static void test_no_repeated_scan(void **st) {
    (void)st;
    const int S = 30, T = 12, r = 3;
    int64_t scan[30];
    float *Z = planted(S, 1, T, scan, 8);
    for (int i = 0; i < S; i++) scan[i] = i;
    float W[3 * 12], b[3];
    memset(W, 0x7f, sizeof W);
    double ratio = 1;
    int64_t multi = 5;
    bgfm_err e = {0};
    assert_int_equal(pop_fit_rows(Z, S, T, scan, r, 0.1, W, b, &ratio, &multi, &e), 0);
    assert_int_equal(multi, 0);
    for (int q = 0; q < r * T; q++) assert_true(W[q] == 0.0f);
    for (int k = 0; k < r; k++) assert_true(b[k] == 0.0f);
    /* fewer than 3 rows: nothing to fit */
    assert_int_equal(pop_fit_rows(Z, 2, T, scan, r, 0.1, W, b, &ratio, &multi, &e), 0);
    free(Z);
}

static void test_fewer_scans_than_rank(void **st) {
    (void)st;
    const int S = 3, w = 4, T = 20, r = 8;
    int64_t scan[12];
    float *Z = planted(S, w, T, scan, 9);
    float W[8 * 20], b[8];
    double ratio = 0;
    int64_t multi = 0;
    bgfm_err e = {0};
    int got = pop_fit_rows(Z, S * w, T, scan, r, 0.1, W, b, &ratio, &multi, &e);
    /* 3 scan means around a centred grand mean: at most 2 (or 3) directions vary */
    assert_true(got >= 1 && got <= S);
    for (int k = got; k < r; k++) {
        assert_true(b[k] == 0.0f);
        for (int q = 0; q < T; q++) assert_true(W[k * T + q] == 0.0f);
    }
    for (int k = 0; k < got; k++) {
        double n = 0;
        for (int q = 0; q < T; q++) n += (double)W[k * T + q] * (double)W[k * T + q];
        assert_true(n > 0);
    }
    free(Z);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_planted_directions),
        cmocka_unit_test(test_no_repeated_scan),
        cmocka_unit_test(test_fewer_scans_than_rank),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
