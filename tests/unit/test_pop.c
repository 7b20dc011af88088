/* test_pop.c: unit tests of the population head's numerical core (pop.h, pop_fit_rows):
 * on rows with two planted shared directions (subject scores) under a per-subject
 * fingerprint and window noise, the two leading directions span the planted ones; the
 * features of the training rows are centred and the same bits on a second call; with
 * no scan seen twice, with fewer than 3 rows, and with fewer scans than pop_rank (no
 * between-scan variance in the rest) the head is zero or has only the directions the
 * data support, rows after them zero. pop_rank: auto counts 3 and 5 planted directions
 * (its leading rows are what a fixed rank of that many fits), finds no gap with none
 * planted and does not measure when the scans are too few for halves with a bulk; the
 * rank shared by the atlases is the largest count, else 8. Centred on their sites, rows
 * with a strong shift per site give the head of the rows without it (and the count of
 * the planted directions, not of the sites too); harmonised, a direction along which only
 * one site's people differ is neither counted nor read. People who stand apart are left
 * out, named, and the head is the others' fit. tests/reference/pop_fit.py checks the values
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
#include "test_part.h"
#include "bgfm/pop_log.h"
#include "bgfm/rng.h"

/* S scans of w windows over T entries: x = 4 s1 u1 + 3 s2 u2 + 0.3 f_scan + noise, with
 * u1, u2 the unit vectors of entries 0..T/2-1 and T/2..T-1 (equal weights). */

/* pop_fit_rows with pop_site: centre and the options spelt out (pop_fit_opts). */
static int fit_rows(const float *Z, int64_t n, int64_t T, const int64_t *scan, const int32_t *site,
                    int sites, int r, int auto_rank, double shrink, float *W, float *b, int npc,
                    float *Wp, float *bp, pop_rows_out *out, bgfm_err *e) {
    const pop_fit_opts o = {.r = r, .auto_rank = auto_rank, .site_mode = POP_SITE_CENTRE,
                            .npc = npc, .shrink = shrink};
    return pop_fit_rows(Z, n, T, scan, site, sites, &o, W, b, Wp, bp, out, e);
}

/* under valgrind (test_memcheck(), test_part.h) some tests below take fewer people (100
 * scans for 150: the n x n eigensolver a third of the work), where what they check still
 * holds with a margin (the planted plane at cosine 0.95, the two apart at z 5.2 and 5.6,
 * each holding 0.59 and 0.63 of a direction); memcheck runs LAPACK some 450 times slower
 * than natively, and test_pop's tests were most of the valgrind phase. The site
 * harmonisation test keeps its size: with fewer people or entries its site's direction
 * no longer leads. */

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
    const int S = test_memcheck() ? 100 : 150, w = 4, T = 24, r = 4;
    int64_t scan[600];
    float *Z = planted(S, w, T, scan, 7);
    float W[4 * 24], b[4], W2[4 * 24], b2[4];
    pop_rows_out ro;
    bgfm_err e = {0};
    int got = fit_rows(Z, (int64_t)S * w, T, scan, NULL, 0, r, 0, 0.1, W, b, 0, NULL, NULL, &ro, &e);
    assert_int_equal(got, r);
    assert_int_equal(ro.multi, S);
    assert_int_equal(ro.rank, 0); /* no held-out count without pop_rank: auto */
    assert_true(ro.ratio > 1.0);
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
    assert_int_equal(fit_rows(Z, (int64_t)S * w, T, scan, NULL, 0, r, 0, 0.1, W2, b2, 0, NULL, NULL, &ro, &e), r);
    assert_memory_equal(W, W2, sizeof W);
    assert_memory_equal(b, b2, sizeof b);
    free(Z);
}

/* npc principal rows beside the discriminant: the discriminant rows are the same bits
 * as without them; over the rows the principal features are centred, of unit variance
 * and uncorrelated; with sites, their covariance is that of the site-centred rows. */
static void test_principal_rows(void **st) {
    (void)st;
    const int S = test_memcheck() ? 100 : 150, w = 4, T = 24, r = 4, P = 4;
    const int64_t n = (int64_t)S * w;
    int64_t scan[600];
    int32_t site[600];
    float *Z = planted(S, w, T, scan, 7);
    for (int64_t i = 0; i < n; i++) site[i] = (int32_t)(scan[i] % 3);
    float W[4 * 24], b[4], W0[4 * 24], b0[4], Wp[4 * 24], bp[4];
    pop_rows_out ro, ro0;
    bgfm_err e = {0};
    for (int sites = 0; sites <= 3; sites += 3) {
        const int32_t *sp = sites ? site : NULL;
        assert_int_equal(fit_rows(Z, n, T, scan, sp, sites, r, 1, 0.1, W0, b0, 0, NULL, NULL, &ro0, &e), r);
        assert_int_equal(fit_rows(Z, n, T, scan, sp, sites, r, 1, 0.1, W, b, P, Wp, bp, &ro, &e), r);
        assert_memory_equal(W, W0, sizeof W);
        assert_memory_equal(b, b0, sizeof b);
        assert_int_equal(ro.rank, ro0.rank);
        /* features of the (site-)centred rows: F = (Z - site mean) Wp^T; mean of Wp z + bp = 0 */
        double *mean = calloc((size_t)sites ? (size_t)sites * T : (size_t)T, sizeof *mean);
        int64_t cnt[3] = {0, 0, 0};
        for (int64_t i = 0; i < n; i++) {
            int k = sites ? site[i] : 0;
            cnt[k]++;
            for (int q = 0; q < T; q++) mean[k * T + q] += (double)Z[i * T + q];
        }
        for (int k = 0; k < (sites ? sites : 1); k++)
            for (int q = 0; q < T; q++) mean[k * T + q] /= (double)cnt[k];
        double C[4][4] = {{0}}, m[4] = {0};
        for (int64_t i = 0; i < n; i++) {
            double f[4], g[4];
            int k = sites ? site[i] : 0;
            for (int c = 0; c < P; c++) {
                f[c] = 0, g[c] = bp[c];
                for (int q = 0; q < T; q++) {
                    f[c] += (double)Wp[c * T + q] * ((double)Z[i * T + q] - mean[k * T + q]);
                    g[c] += (double)Wp[c * T + q] * (double)Z[i * T + q];
                }
                m[c] += g[c] / (double)n;
            }
            for (int c = 0; c < P; c++)
                for (int d = 0; d < P; d++) C[c][d] += f[c] * f[d] / (double)n;
        }
        for (int c = 0; c < P; c++) {
            assert_true(fabs(m[c]) < 1e-3);
            for (int d = 0; d < P; d++) assert_true(fabs(C[c][d] - (c == d)) < 1e-3);
        }
        free(mean);
    }
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
    pop_rows_out ro = {.ratio = 1, .multi = 5};
    bgfm_err e = {0};
    assert_int_equal(fit_rows(Z, S, T, scan, NULL, 0, r, 0, 0.1, W, b, 0, NULL, NULL, &ro, &e), 0);
    assert_int_equal(ro.multi, 0);
    for (int q = 0; q < r * T; q++) assert_true(W[q] == 0.0f);
    for (int k = 0; k < r; k++) assert_true(b[k] == 0.0f);
    /* fewer than 3 rows: nothing to fit */
    assert_int_equal(fit_rows(Z, 2, T, scan, NULL, 0, r, 0, 0.1, W, b, 0, NULL, NULL, &ro, &e), 0);
    free(Z);
}

static void test_fewer_scans_than_rank(void **st) {
    (void)st;
    const int S = 3, w = 4, T = 20, r = 8;
    int64_t scan[12];
    float *Z = planted(S, w, T, scan, 9);
    float W[8 * 20], b[8];
    pop_rows_out ro;
    bgfm_err e = {0};
    int got = fit_rows(Z, S * w, T, scan, NULL, 0, r, 0, 0.1, W, b, 0, NULL, NULL, &ro, &e);
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

/* S scans of w windows over T entries with K shared directions: x = sum_k a s_k u_k +
 * 0.3 f_scan + noise, u_k the unit vector of equal weights on entries [k B, (k+1) B),
 * B = T / (K + 1); a = 0: no shared direction, only the scans' fingerprints. */
static float *planted_k(int S, int w, int T, int K, double a, int64_t *scan, uint64_t seed) {
    float *Z = malloc((size_t)S * w * T * sizeof *Z);
    double *f = malloc((size_t)T * sizeof *f), s[8];
    assert_non_null(Z);
    assert_non_null(f);
    assert_true(K <= 8);
    rng_stream r;
    rng_init(&r, seed, RNG_USER, 0, 0, 0);
    const int B = T / (K + 1);
    for (int p = 0; p < S; p++) {
        for (int k = 0; k < K; k++) s[k] = rng_normal(&r);
        for (int q = 0; q < T; q++) f[q] = 0.3 * rng_normal(&r);
        for (int j = 0; j < w; j++) {
            int64_t i = (int64_t)p * w + j;
            scan[i] = 5 * p + 3;
            for (int q = 0; q < T; q++) {
                double x = f[q] + rng_normal(&r);
                if (q / B < K) x += a * s[q / B] / sqrt((double)B);
                Z[i * T + q] = (float)x;
            }
        }
    }
    free(f);
    return Z;
}

/* pop_rank: auto finds K planted directions; rows past them zero; deterministic */
static void test_auto_rank_planted(void **st) {
    (void)st;
    /* under valgrind (BGFM_TEST_MEMCHECK, tests/valgrind.sh) fewer people and entries: the
     * same code paths (halves of 60: D = 59 directions scored, a bulk of 43) */
    const int mc = test_memcheck();
    const int S = mc ? 120 : 160, w = mc ? 2 : 3, T = mc ? 80 : 120, r = POP_RANK_AUTO_MAX;
    int64_t *scan = malloc((size_t)S * w * sizeof *scan);
    float *W = malloc((size_t)r * T * sizeof *W), *W2 = malloc((size_t)r * T * sizeof *W2), b[16];
    assert_non_null(scan);
    assert_non_null(W);
    assert_non_null(W2);
    bgfm_err e = {0};
    for (int K = 3; K <= (mc ? 3 : 5); K += 2) {
        float *Z = planted_k(S, w, T, K, mc ? 3.0 : 2.0, scan, 20 + (uint64_t)K);
        pop_rows_out ro, ro2;
        int got = fit_rows(Z, (int64_t)S * w, T, scan, NULL, 0, r, 1, 0.1, W, b, 0, NULL, NULL, &ro, &e);
        print_message("K %d: held-out mean %.2f, count %d, fitted %d\n", K, ro.held_at[0], ro.rank, got);
        assert_int_equal(ro.rank, K);
        assert_int_equal(got, r); /* every row is fitted; the caller keeps the leading ones */
        /* the gap is read where the count holds: there it is K */
        assert_true(ro.held_step >= 0 && ro.held_step + 1 < POP_HO_STEPS);
        assert_true(fabs(ro.held_at[ro.held_step + 1] - K) < 0.5);
        /* flat over the pair: the fall is at most 6/16 of a direction */
        const int t = ro.held_step;
        print_message("K %d: mean counts at the flat pair %.2f %.2f (step %d)\n", K, ro.held_at[t],
                      ro.held_at[t + 1], t);
        assert_true(ro.held_at[t] - ro.held_at[t + 1] <= 6 / 16.0);
        /* both halves find the K planted directions alike, and not a (K+1)-th */
        print_message("K %d: reproducibility at K-1, K, K+1: %.3f %.3f %.3f\n", K, ro.repro[K - 2],
                      ro.repro[K - 1], ro.repro[K]);
        int peak = 2;
        for (int k = 3; k <= POP_RP_DIRS; k++) peak = ro.repro[k - 1] > ro.repro[peak - 1] ? k : peak;
        assert_int_equal(peak, K);
        assert_true(ro.repro[K - 1] > 0.6 && ro.repro[K] < 0.3);
        assert_int_equal(ro.repro_rank, ro.repro[K - 1] >= POP_RP_MIN ? K : 0);
        assert_int_equal(fit_rows(Z, (int64_t)S * w, T, scan, NULL, 0, r, 1, 0.1, W2, b, 0, NULL, NULL, &ro2, &e), r);
        assert_memory_equal(W, W2, (size_t)r * T * sizeof *W);
        /* a fixed rank of K fits the same leading directions, bit for bit */
        assert_int_equal(fit_rows(Z, (int64_t)S * w, T, scan, NULL, 0, K, 0, 0.1, W2, b, 0, NULL, NULL, &ro2, &e), K);
        assert_int_equal(ro2.rank, 0);
        assert_memory_equal(W, W2, (size_t)K * T * sizeof *W);
        free(Z);
    }
    free(scan), free(W), free(W2);
}

/* no shared direction: the held-out counts are small and the rank falls back to 8; too
 * few scans for two halves with a bulk: not measured, 8 */
static void test_auto_rank_fallback(void **st) {
    (void)st;
    const int mc = test_memcheck(); /* as in test_auto_rank_planted */
    const int S = mc ? 120 : 160, w = mc ? 2 : 3, T = mc ? 80 : 120, r = POP_RANK_AUTO_MAX;
    int64_t *scan = malloc((size_t)S * w * sizeof *scan);
    float *W = malloc((size_t)r * T * sizeof *W), b[16];
    assert_non_null(scan);
    assert_non_null(W);
    bgfm_err e = {0};
    pop_rows_out ro;
    float *Z = planted_k(S, w, T, 3, 0.0, scan, 31);
    int got = fit_rows(Z, (int64_t)S * w, T, scan, NULL, 0, r, 1, 0.1, W, b, 0, NULL, NULL, &ro, &e);
    print_message("no shared direction: held-out mean %.2f, count %d\n", ro.held_at[0], ro.rank);
    assert_true(ro.measured && ro.held_at[0] < 1.5);
    assert_int_equal(ro.rank, 0);
    print_message("no shared direction: reproducibility at k = 2, 3: %.3f %.3f\n", ro.repro[1],
                  ro.repro[2]);
    assert_int_equal(ro.repro_rank, 0); /* nothing reproducible either */
    for (int k = 0; k < POP_RP_DIRS; k++) assert_true(ro.repro[k] >= 0 && ro.repro[k] < 0.7);
    assert_int_equal(got, r);
    free(Z);
    /* 64 scans: halves of 32, fewer than the 33 a bulk of 16 directions needs */
    Z = planted_k(64, w, T, 3, 2.0, scan, 32);
    got = fit_rows(Z, (int64_t)64 * w, T, scan, NULL, 0, r, 1, 0.1, W, b, 0, NULL, NULL, &ro, &e);
    assert_true(!ro.measured);
    assert_int_equal(ro.rank, 0);
    assert_int_equal(got, r);
    free(Z);
    free(scan), free(W);
}

/* pop_site: centre. The rows of test_auto_rank_planted (3 planted directions) with a
 * strong shift per site (3 sites, every scan's windows at its scan's site): fitted as they
 * are, the 2 site directions count too (5); centred on the sites, the count is the 3
 * planted and the head is the one fitted on the rows without the shift, centred on the
 * same sites (the centring removes the shift exactly, up to float rounding), while b
 * centres the shifted rows. One site:
 * the same bits as no site at all. */
static void test_site_centring(void **st) {
    (void)st;
    const int mc = test_memcheck(); /* as in test_auto_rank_planted */
    const int S = mc ? 120 : 160, w = mc ? 2 : 3, T = mc ? 80 : 120, r = POP_RANK_AUTO_MAX, K = 3;
    const int64_t n = (int64_t)S * w;
    int64_t *scan = malloc((size_t)n * sizeof *scan);
    int32_t *site = malloc((size_t)n * sizeof *site), *one = calloc((size_t)n, sizeof *one);
    float *W0 = malloc((size_t)r * T * sizeof *W0), *W = malloc((size_t)r * T * sizeof *W);
    float *Zs = malloc((size_t)n * T * sizeof *Zs), b0[16], b[16];
    double *d = malloc((size_t)3 * T * sizeof *d);
    assert_true(scan && site && one && W0 && W && Zs && d);
    float *Z = planted_k(S, w, T, K, mc ? 3.0 : 2.0, scan, 20 + (uint64_t)K);
    rng_stream g;
    rng_init(&g, 77, RNG_USER, 0, 0, 0);
    for (int k = 0; k < 3; k++)
        for (int q = 0; q < T; q++) d[k * T + q] = 1.5 * rng_normal(&g);
    for (int64_t i = 0; i < n; i++) {
        site[i] = (int32_t)((i / w) % 3);
        for (int q = 0; q < T; q++) Zs[i * T + q] = (float)((double)Z[i * T + q] + d[site[i] * T + q]);
    }
    bgfm_err e = {0};
    pop_rows_out ro0, ro;
    assert_int_equal(fit_rows(Z, n, T, scan, NULL, 0, r, 1, 0.1, W0, b0, 0, NULL, NULL, &ro0, &e), r);
    assert_int_equal(ro0.rank, K);
    assert_int_equal(fit_rows(Zs, n, T, scan, NULL, 0, r, 1, 0.1, W, b, 0, NULL, NULL, &ro, &e), r);
    print_message("shifted sites, not centred: count %d (held-out mean %.2f)\n", ro.rank, ro.held_at[0]);
    assert_int_equal(ro.rank, K + 2);
    assert_int_equal(fit_rows(Zs, n, T, scan, site, 3, r, 1, 0.1, W, b, 0, NULL, NULL, &ro, &e), r);
    print_message("shifted sites, centred: count %d (held-out mean %.2f)\n", ro.rank, ro.held_at[0]);
    assert_int_equal(ro.rank, K);
    /* the leading K directions are those of the unshifted rows centred on the same sites
     * (a shift per site changes nothing the centred fit sees); the shifted rows' features
     * are centred */
    assert_int_equal(fit_rows(Z, n, T, scan, site, 3, r, 1, 0.1, W0, b0, 0, NULL, NULL, &ro0, &e), r);
    assert_int_equal(ro0.rank, K);
    for (int k = 0; k < K; k++) {
        double dn = 0, nn = 0, m = 0;
        for (int q = 0; q < T; q++) {
            const double w1 = (double)W[k * T + q], w0 = (double)W0[k * T + q];
            dn += (w1 - w0) * (w1 - w0);
            nn += w0 * w0;
        }
        for (int64_t i = 0; i < n; i++) {
            double v = (double)b[k];
            for (int q = 0; q < T; q++) v += (double)W[k * T + q] * (double)Zs[i * T + q];
            m += v / (double)n;
        }
        print_message("direction %d: relative difference %.2e, mean feature %.2e\n", k, sqrt(dn / nn), m);
        assert_true(sqrt(dn / nn) < 1e-3);
        assert_true(fabs(m) < 1e-3);
    }
    /* one site: no centring beyond the mean, the same bits as no site */
    assert_int_equal(fit_rows(Zs, n, T, scan, one, 1, r, 1, 0.1, W, b, 0, NULL, NULL, &ro, &e), r);
    assert_int_equal(fit_rows(Zs, n, T, scan, NULL, 0, r, 1, 0.1, W0, b0, 0, NULL, NULL, &ro0, &e), r);
    assert_memory_equal(W, W0, (size_t)r * T * sizeof *W);
    assert_memory_equal(b, b0, sizeof b);
    free(Z), free(Zs), free(scan), free(site), free(one), free(W0), free(W), free(d);
}

/* |cosine| between row k of W and the unit vector d */
static double row_cosine(const float *W, int k, const double *d, int T) {
    double dot = 0, nn = 0;
    for (int q = 0; q < T; q++) {
        dot += (double)W[k * T + q] * d[q];
        nn += (double)W[k * T + q] * (double)W[k * T + q];
    }
    return fabs(dot) / sqrt(nn);
}

/* pop_site: harmonise. The rows of test_site_centring's 3 planted shared directions, and
 * along one more direction d (random, unit) only the first site's people differ, more
 * strongly than along the shared ones (a site's own physiology or artifact; results 12t):
 * centred, that direction stands out too (count 4, one of the leading 4 rows near d: the
 * rows are whitened by the within-scan covariance, so not equal to it); harmonised, the
 * count is the 3 shared ones and none of the leading 3 is near d. One site: harmonise is
 * centre, bit for bit. */
static void test_site_harmonise(void **st) {
    (void)st;
    /* full size under valgrind too: with 40 people per site over 2 windows, 80 entries, the
     * site's covariance is too coarse for the harmonised count to be 3 */
    const int S = 160, w = 3, T = 120, r = POP_RANK_AUTO_MAX, K = 3;
    const int64_t n = (int64_t)S * w;
    int64_t *scan = malloc((size_t)n * sizeof *scan);
    int32_t *site = malloc((size_t)n * sizeof *site), *one = calloc((size_t)n, sizeof *one);
    float *W0 = malloc((size_t)r * T * sizeof *W0), *W = malloc((size_t)r * T * sizeof *W), b0[16], b[16];
    double *d = malloc((size_t)T * sizeof *d), dn = 0;
    assert_true(scan && site && one && W0 && W && d);
    float *Z = planted_k(S, w, T, K, 2.0, scan, 20 + (uint64_t)K);
    rng_stream g;
    rng_init(&g, 91, RNG_USER, 0, 0, 0);
    for (int q = 0; q < T; q++) d[q] = rng_normal(&g), dn += d[q] * d[q];
    for (int q = 0; q < T; q++) d[q] /= sqrt(dn);
    for (int p = 0; p < S; p++) {
        const double a = 4.0 * rng_normal(&g); /* this person's score on d, if at site 0 */
        for (int j = 0; j < w; j++) {
            const int64_t i = (int64_t)p * w + j;
            site[i] = p % 3;
            for (int q = 0; site[i] == 0 && q < T; q++) Z[i * T + q] += (float)(a * d[q]);
        }
    }
    bgfm_err e = {0};
    pop_rows_out ro;
    const pop_fit_opts centre = {.r = r, .auto_rank = 1, .site_mode = POP_SITE_CENTRE, .shrink = 0.1};
    const pop_fit_opts harm = {.r = r, .auto_rank = 1, .site_mode = POP_SITE_HARMONISE, .shrink = 0.1,
                               .site_shrink = POP_SITE_SHRINK};
    assert_int_equal(pop_fit_rows(Z, n, T, scan, site, 3, &centre, W, b, NULL, NULL, &ro, &e), r);
    double most = 0;
    for (int k = 0; k <= K; k++) most = fmax(most, row_cosine(W, k, d, T));
    print_message("one site's own direction, centred: count %d, largest |cos(d, .)| of the "
                  "leading %d %.3f\n", ro.rank, K + 1, most);
    assert_int_equal(ro.rank, K + 1);
    assert_true(most > 0.3);
    /* the site shares (pop_rows_out.site_*) against the rows' features W z: per site the
     * variance of the people's mean features about the site's mean, the largest's share */
    assert_int_equal(ro.site_dirs, r);
    for (int k = 0; k <= K; k++) {
        double v[3] = {0, 0, 0}, s1[3] = {0, 0, 0}, c[3] = {0, 0, 0}, tot = 0;
        for (int p = 0; p < S; p++) {
            double f = 0;
            for (int j = 0; j < w; j++)
                for (int q = 0; q < T; q++) f += (double)W[k * T + q] * (double)Z[((int64_t)p * w + j) * T + q] / w;
            v[p % 3] += f * f, s1[p % 3] += f, c[p % 3] += 1;
        }
        int at = 0;
        for (int x = 0; x < 3; x++) {
            v[x] -= s1[x] * s1[x] / c[x];
            tot += v[x];
            if (v[x] > v[at]) at = x;
        }
        print_message("direction %d: site %d holds %.4f of its variance between people (fit: site %d, %.4f)\n",
                      k, at, v[at] / tot, ro.site_at[k], ro.site_share[k]);
        assert_int_equal(ro.site_at[k], at);
        assert_true(fabs(ro.site_share[k] - v[at] / tot) < 1e-4);
        assert_true(fabs(ro.site_scans[k] - 1.0 / 3.0) < 0.01);
    }
    assert_true(ro.site_share[0] > 0.7); /* the site's own direction leads */
    assert_int_equal(pop_fit_rows(Z, n, T, scan, site, 3, &harm, W, b, NULL, NULL, &ro, &e), r);
    print_message("harmonised: count %d\n", ro.rank);
    assert_int_equal(ro.rank, K);
    for (int k = 0; k < K; k++) {
        print_message("harmonised direction %d: |cos(d, .)| %.3f\n", k, row_cosine(W, k, d, T));
        assert_true(row_cosine(W, k, d, T) < 0.15);
    }
    assert_int_equal(pop_fit_rows(Z, n, T, scan, one, 1, &harm, W, b, NULL, NULL, &ro, &e), r);
    assert_int_equal(pop_fit_rows(Z, n, T, scan, one, 1, &centre, W0, b0, NULL, NULL, &ro, &e), r);
    assert_memory_equal(W, W0, (size_t)r * T * sizeof *W);
    assert_memory_equal(b, b0, sizeof b);
    free(Z), free(scan), free(site), free(one), free(W0), free(W), free(d);
}

/* pop_site's words and modes, both ways */
static void test_site_words(void **st) {
    (void)st;
    const int modes[] = {POP_SITE_NONE, POP_SITE_CENTRE, POP_SITE_HARMONISE, POP_SITE_AUTO};
    const char *words[] = {"none", "centre", "harmonise", "auto"};
    for (int k = 0; k < 4; k++) {
        assert_string_equal(pop_site_name(modes[k]), words[k]);
        assert_int_equal(pop_site_parse(words[k]), modes[k]);
    }
    assert_null(pop_site_name(4));
    assert_null(pop_site_name(-1));
    assert_int_equal(pop_site_parse("center"), -1);
}

/* the rank every atlas keeps: the largest count of the atlases fitted; where none has one,
 * the largest reproducible peak; else 8; capped */
static void test_rank_shared(void **st) {
    (void)st;
    pop_fit_info in;
    memset(&in, 0, sizeof in);
    in.graphs[0] = in.graphs[1] = 10;
    int how = -1;
    assert_int_equal(pop_rank_shared(&in, 2, 16, &how), POP_RANK_FALLBACK);
    assert_int_equal(how, 0);
    in.fit[1].rank = 3;
    assert_int_equal(pop_rank_shared(&in, 2, 16, &how), 3);
    assert_int_equal(how, 1);
    in.fit[0].rank = 5;
    assert_int_equal(pop_rank_shared(&in, 2, 16, NULL), 5);
    assert_int_equal(pop_rank_shared(&in, 2, 4, NULL), 4);
    assert_int_equal(pop_rank_shared(&in, 1, 16, NULL), 5);
    in.graphs[0] = 0; /* an atlas training did not read */
    assert_int_equal(pop_rank_shared(&in, 2, 16, NULL), 3);
    in.fit[1].rank = 0;
    assert_int_equal(pop_rank_shared(&in, 2, 6, NULL), 6);
    /* a reproducible peak counts only where no atlas has a gap, and the largest is kept */
    in.graphs[0] = 10;
    in.fit[0].rank = 0, in.fit[1].rank = 0;
    in.fit[0].repro_rank = 4, in.fit[1].repro_rank = 6;
    assert_int_equal(pop_rank_shared(&in, 2, 16, &how), 6);
    assert_int_equal(how, 2);
    assert_int_equal(pop_rank_shared(&in, 2, 5, &how), 5);
    in.fit[0].rank = 2; /* a gap of 2 wins over a larger peak */
    assert_int_equal(pop_rank_shared(&in, 2, 16, &how), 2);
    assert_int_equal(how, 1);
    in.fit[0].rank = 0, in.graphs[1] = 0; /* the peak of an atlas not read does not count */
    assert_int_equal(pop_rank_shared(&in, 2, 16, &how), 4);
}

/* the reproducible peak: the first largest over k >= 2, at least 0.7 */
static void test_repro_peak(void **st) {
    (void)st;
    assert_int_equal(POP_RP_DIRS, 12);
    /* the third at 640 (results 12p): a peak of 0.78 at 4 */
    const double third[12] = {0.26, 0.42, 0.50, 0.78, 0.11, 0.14, 0.09, 0.09, 0.08, 0.07, 0.06, 0.05};
    assert_int_equal(pop_repro_rank(third), 4);
    /* k = 1 alone does not count */
    const double one[12] = {0.95, 0.40, 0.30, 0.20, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(pop_repro_rank(one), 0);
    /* 0.7 is in, just below is not; ties keep the first */
    double at[12] = {0.5, 0.6, 0.7, 0.7, 0.3, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(pop_repro_rank(at), 3);
    at[2] = at[3] = 0.6999;
    assert_int_equal(pop_repro_rank(at), 0);
    const double last[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.9};
    assert_int_equal(pop_repro_rank(last), 12);
    char buf[640];
    pop_rows_out f = {.rank = 0, .held_step = -1, .repro_rank = 4};
    memcpy(f.repro, third, sizeof third);
    f.held_at[0] = 2.5;
    pop_rule_text(&f, buf, sizeof buf);
    assert_non_null(strstr(buf, ": no gap (no plateau: the count falls steadily"));
    assert_non_null(strstr(buf, "; reproducible on both halves, k = 1 .. 12: 0.26 0.42 0.50 0.78 "
                                "0.11 0.14 0.09 0.09 0.08 0.07 0.06 0.05: a peak of 0.78 at 4"));
    f.repro_rank = 0;
    pop_rule_text(&f, buf, sizeof buf);
    assert_non_null(strstr(buf, "0.06 0.05: no peak of 0.7"));
    f.rank = 3, f.held_step = 0; /* after a gap the curve is not written */
    pop_rule_text(&f, buf, sizeof buf);
    assert_null(strstr(buf, "reproducible"));
}

/* embedding: auto: the head alone after a gap of any size, or at a reproducible peak of
 * POP_RP_ALONE_MIN or more; pcs+pop at a peak of 2 and at the fallback */
static void test_head_alone(void **st) {
    (void)st;
    assert_int_equal(POP_RP_ALONE_MIN, 3);
    assert_true(pop_head_alone(2, 1));  /* a gap of 2 (seventh, fourteenth, g38) */
    assert_true(pop_head_alone(6, 1));
    assert_true(pop_head_alone(4, 2));  /* the third at 640: a peak at 4 */
    assert_true(pop_head_alone(3, 2));
    assert_false(pop_head_alone(2, 2)); /* f4 denoised, the people apart left out */
    assert_false(pop_head_alone(8, 0)); /* no gap, no peak */
}

/* rank of the plateau rule on mean counts (x 16 = the fits' sums) up the ladder */
static int plateau_of(const double m[POP_HO_STEPS], int *step) {
    int sum[POP_HO_STEPS];
    for (int t = 0; t < POP_HO_STEPS; t++) sum[t] = (int)lround(16 * m[t]);
    return pop_plateau_rank(sum, step);
}

/* The plateau rule on the 16 fits' summed counts up the ladder, and what the log says. */
static void test_plateau_rule(void **st) {
    (void)st;
    assert_int_equal(POP_HO_FITS, 16); /* the sums below are of 16 fits */
    assert_int_equal(POP_HO_STEPS, 7);
    int step;
    /* the seventh population (results 12o): 2 holds from 1.2x to 1.4x */
    const double seventh[7] = {2.00, 2.00, 1.94, 1.50, 0.81, 0.44, 0.00};
    assert_int_equal(plateau_of(seventh, &step), 2);
    assert_int_equal(step, 0);
    /* strong factors with weak ones creeping in below: 6 holds from 1.4x (the fourth at 720) */
    const double fourth[7] = {7.41, 6.26, 6.06, 6.00, 5.50, 4.00, 2.00};
    assert_int_equal(plateau_of(fourth, &step), 6);
    assert_int_equal(step, 1);
    /* a steady fall (many weak factors): no pair is flat */
    const double steady[7] = {6.56, 4.12, 3.00, 2.00, 1.20, 0.40, 0.00};
    assert_int_equal(plateau_of(steady, &step), 0);
    assert_int_equal(step, -1);
    /* flat means a fall of at most 6/16: 6/16 is flat, 7/16 is not */
    const double six[7] = {2.375, 2.00, 0, 0, 0, 0, 0}, seven[7] = {2.4375, 2.00, 0, 0, 0, 0, 0};
    assert_int_equal(plateau_of(six, &step), 2);
    assert_int_equal(plateau_of(seven, &step), 0);
    /* the count at the upper threshold, halves up, at least 2 */
    const double half[7] = {2.75, 2.50, 0, 0, 0, 0, 0}, below[7] = {1.50, 1.4375, 0, 0, 0, 0, 0};
    assert_int_equal(plateau_of(half, &step), 3);
    assert_int_equal(plateau_of(below, &step), 0);
    /* a flat pair high on the ladder counts (the first going up) */
    const double high[7] = {9.0, 6.0, 4.0, 3.0, 2.75, 1.0, 0.0};
    assert_int_equal(plateau_of(high, &step), 3);
    assert_int_equal(step, 3);
    /* the cap: 12 at the lower threshold is in, above it is not */
    const double cap[7] = {12.0, 11.75, 0, 0, 0, 0, 0}, over[7] = {12.0625, 12.0, 2.0, 0, 0, 0, 0};
    assert_int_equal(plateau_of(cap, &step), 12);
    assert_int_equal(plateau_of(over, &step), 0);
    const double none[7] = {0};
    assert_int_equal(plateau_of(none, &step), 0);
    char buf[320];
    pop_rows_out f = {.rank = 6, .held_step = 1};
    memcpy(f.held_at, fourth, sizeof fourth);
    pop_rule_text(&f, buf, sizeof buf);
    assert_string_equal(buf, "7.41 at 1.2x, 6.26 at 1.4x, 6.06 at 1.65x, 6.00 at 1.9x, 5.50 at 2.2x, "
                             "4.00 at 2.6x, 2.00 at 3x: a gap after 6 (the count holds from 1.4x "
                             "to 1.65x)");
    f = (pop_rows_out){.rank = 0, .held_step = -1};
    memcpy(f.held_at, steady, sizeof steady);
    pop_rule_text(&f, buf, sizeof buf);
    assert_non_null(strstr(buf, ": no gap (no plateau: the count falls steadily"));
    memcpy(f.held_at, over, sizeof over); /* flat only at the cap: no plateau */
    pop_rule_text(&f, buf, sizeof buf);
    assert_non_null(strstr(buf, "12.06 at 1.2x, 12.00 at 1.4x, 2.00 at 1.65x"));
    assert_non_null(strstr(buf, ": no gap (no plateau"));
    memset(f.held_at, 0, sizeof f.held_at);
    f.held_at[0] = 1.25;
    pop_rule_text(&f, buf, sizeof buf);
    assert_non_null(strstr(buf, "0.00 at 3x: no gap (fewer than 2)"));
    char small[9];
    pop_rule_text(&f, small, sizeof small); /* truncated, still terminated */
    assert_string_equal(small, "1.25 at ");
}

/* People who stand apart (pop_scan.h): two scans whose windows share a large pattern of
 * their own beside 150 planted ones are left out, named (largest z first), and the head is
 * the same bits as the fit of the others alone; without them the rule leaves everyone in
 * (the same bits as without the rule); where they are kept, they take the leading
 * directions; with fewer than POP_APART_MIN scans seen twice nothing is measured. */
/* planted(S, w, T, scan, 7) (returned in *Zc) followed by X scans (5000, 5001, ..) of w
 * windows each that share a pattern of their own, larger than the planted ones. */
static float *with_own(int S, int w, int T, int X, int64_t *scan, float **Zc) {
    const int64_t n = (int64_t)(S + X) * w, nc = (int64_t)S * w;
    float *Z = malloc((size_t)n * T * sizeof *Z);
    *Zc = planted(S, w, T, scan, 7);
    assert_non_null(Z);
    memcpy(Z, *Zc, (size_t)nc * T * sizeof *Z);
    rng_stream g;
    rng_init(&g, 11, RNG_USER, 0, 0, 0);
    for (int x = 0; x < X; x++) {
        double own[24];
        for (int q = 0; q < T; q++) own[q] = (6.0 + 2.0 * x) * rng_normal(&g);
        for (int j = 0; j < w; j++) {
            const int64_t i = nc + (int64_t)x * w + j;
            scan[i] = 5000 + x;
            for (int q = 0; q < T; q++) Z[i * T + q] = (float)(own[q] + rng_normal(&g));
        }
    }
    return Z;
}

static void test_people_apart(void **st) {
    (void)st;
    const int S = test_memcheck() ? 100 : 150, w = 4, T = 24, r = 2, X = 2;
    const int64_t n = (int64_t)(S + X) * w, nc = (int64_t)S * w;
    int64_t scan[(150 + 2) * 4];
    float *Zc, *Z = with_own(S, w, T, X, scan, &Zc);
    float W[2 * 24], b[2], Wc[2 * 24], bc[2];
    pop_rows_out ro, rc;
    bgfm_err e = {0};
    pop_fit_opts o = {.r = r, .site_mode = POP_SITE_CENTRE, .shrink = 0.1, .apart_z = POP_APART_Z};
    pop_fit_opts none = o;
    none.apart_z = 0;
    assert_int_equal(pop_fit_rows(Z, n, T, scan, NULL, 0, &o, W, b, NULL, NULL, &ro, &e), r);
    assert_int_equal(pop_fit_rows(Zc, nc, T, scan, NULL, 0, &none, Wc, bc, NULL, NULL, &rc, &e), r);
    print_message("apart: %lld of %lld, z %.1f (scan %lld), %.1f (scan %lld)\n",
                  (long long)ro.apart, (long long)ro.apart_of, ro.apart_z[0],
                  (long long)ro.apart_scan[0], ro.apart_z[1], (long long)ro.apart_scan[1]);
    assert_int_equal(ro.apart, X);
    assert_int_equal(ro.apart_of, S + X);
    assert_int_equal(ro.multi, S); /* the fit's own count: the others */
    assert_true(ro.apart_z[0] >= ro.apart_z[1] && ro.apart_z[1] > POP_APART_Z);
    assert_true((ro.apart_scan[0] == 5000 && ro.apart_scan[1] == 5001) ||
                (ro.apart_scan[0] == 5001 && ro.apart_scan[1] == 5000));
    assert_memory_equal(W, Wc, sizeof W);
    assert_memory_equal(b, bc, sizeof b);
    /* kept, they take the leading directions away from the planted plane */
    float Wk[2 * 24], bk[2];
    assert_int_equal(pop_fit_rows(Z, n, T, scan, NULL, 0, &none, Wk, bk, NULL, NULL, &rc, &e), r);
    assert_int_equal(rc.apart_of, 0);
    print_message("smallest cosine with the planted plane: %.3f kept, %.3f left out\n",
                  smallest_cosine(Wk, T), smallest_cosine(W, T));
    assert_true(smallest_cosine(W, T) > 0.9 && smallest_cosine(Wk, T) < 0.5);
    /* no one apart: the same bits as without the rule */
    assert_int_equal(pop_fit_rows(Zc, nc, T, scan, NULL, 0, &o, Wk, bk, NULL, NULL, &rc, &e), r);
    assert_int_equal(rc.apart, 0);
    assert_int_equal(rc.apart_of, S);
    assert_memory_equal(Wk, Wc, sizeof Wk);
    assert_memory_equal(bk, bc, sizeof bk);
    /* too few scans seen twice to measure */
    const int64_t few = (int64_t)(POP_APART_MIN - 1) * w;
    assert_int_equal(pop_fit_rows(Zc, few, T, scan, NULL, 0, &o, Wk, bk, NULL, NULL, &rc, &e), r);
    assert_int_equal(rc.apart_of, 0);
    free(Zc), free(Z);
}

/* People who hold a leading direction (pop_outlier_share, pop_scan.h): the same two scans,
 * with the distance rule off, are left out one at a time (each holding more than half of
 * one of the leading directions), and the head is the same bits as the fit of
 * the others alone; without them nobody is left out and the head is the same bits as
 * without the rule; at a share no scan holds, nobody either. */
static void test_people_holding(void **st) {
    (void)st;
    const int S = test_memcheck() ? 100 : 150, w = 4, T = 24, r = 2, X = 2;
    const int64_t n = (int64_t)(S + X) * w, nc = (int64_t)S * w;
    int64_t scan[(150 + 2) * 4];
    float *Zc, *Z = with_own(S, w, T, X, scan, &Zc);
    float W[2 * 24], b[2], Wc[2 * 24], bc[2], Wk[2 * 24], bk[2];
    pop_rows_out ro, rc;
    bgfm_err e = {0};
    pop_fit_opts o = {.r = r, .site_mode = POP_SITE_CENTRE, .shrink = 0.1, .apart_share = 0.5};
    pop_fit_opts none = o;
    none.apart_share = 0;
    assert_int_equal(pop_fit_rows(Z, n, T, scan, NULL, 0, &o, W, b, NULL, NULL, &ro, &e), r);
    assert_int_equal(pop_fit_rows(Zc, nc, T, scan, NULL, 0, &none, Wc, bc, NULL, NULL, &rc, &e), r);
    print_message("held: %lld: scan %lld (%.2f of direction %d), scan %lld (%.2f of direction %d)\n",
                  (long long)ro.held, (long long)ro.held_scan[0], ro.held_share[0],
                  ro.held_dir[0], (long long)ro.held_scan[1], ro.held_share[1], ro.held_dir[1]);
    assert_int_equal(ro.held, X);
    assert_int_equal(ro.apart, 0);
    assert_int_equal(ro.multi, S);
    assert_true((ro.held_scan[0] == 5000 && ro.held_scan[1] == 5001) ||
                (ro.held_scan[0] == 5001 && ro.held_scan[1] == 5000));
    for (int k = 0; k < X; k++)
        assert_true(ro.held_share[k] >= 0.5 && ro.held_dir[k] >= 1 && ro.held_dir[k] <= POP_HOLD_DIRS);
    assert_memory_equal(W, Wc, sizeof W);
    assert_memory_equal(b, bc, sizeof b);
    /* nobody holds a direction: the same bits as without the rule */
    assert_int_equal(pop_fit_rows(Zc, nc, T, scan, NULL, 0, &o, Wk, bk, NULL, NULL, &rc, &e), r);
    assert_int_equal(rc.held, 0);
    assert_memory_equal(Wk, Wc, sizeof Wk);
    assert_memory_equal(bk, bc, sizeof bk);
    /* a share nobody reaches keeps them too */
    o.apart_share = 1.0;
    assert_int_equal(pop_fit_rows(Z, n, T, scan, NULL, 0, &o, Wk, bk, NULL, NULL, &rc, &e), r);
    assert_int_equal(rc.held, 0);
    free(Zc), free(Z);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_planted_directions),
        cmocka_unit_test(test_principal_rows),
        cmocka_unit_test(test_no_repeated_scan),
        cmocka_unit_test(test_site_centring),
        cmocka_unit_test(test_site_harmonise),
        cmocka_unit_test(test_site_words),
        cmocka_unit_test(test_fewer_scans_than_rank),
        cmocka_unit_test(test_auto_rank_planted),
        cmocka_unit_test(test_auto_rank_fallback),
        cmocka_unit_test(test_rank_shared),
        cmocka_unit_test(test_repro_peak), cmocka_unit_test(test_head_alone),
        cmocka_unit_test(test_plateau_rule),
        cmocka_unit_test(test_people_apart),
        cmocka_unit_test(test_people_holding),
    };
    return run_tests_part("test_pop", tests, sizeof tests / sizeof tests[0]);
}
