/* pop_rule.c: benchmark driver for the cost of pop_rank: auto's held-out rule (16 fits up
 * the ladder of thresholds, docs/model.md section 11) against the population head's fit
 * itself, in the same run: pop_fit_rows with a fixed rank (the Gram matrix, the principal
 * subspace, one discriminant) and with auto_rank (the same and the rule), on the same
 * rows, interleaved round by round so that each round sees the same load; the median and
 * best of each and their ratio are printed. Then the same rows as 3 sites (person p at
 * site p mod 3), with auto_rank: pop_site centre against harmonise (each site's scores
 * mapped to the pooled covariance, and the site shares), the same way. The rows: S people of W windows over T FC
 * entries, K planted person-level factors, a fingerprint per person and noise (sizes of
 * the transfer study: 3 windows, T = 6670 for AAL's 116 regions).
 * Not a test and not part of libbgfm: bench/pop_rule.sh builds it.
 *   pop_rule S W T [ROUNDS] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bgfm/pop.h"
#include "bgfm/rng.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int dbl_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: pop_rule S W T [ROUNDS]\n");
        return 2;
    }
    const int S = atoi(argv[1]), W = atoi(argv[2]), T = atoi(argv[3]);
    const int rounds = argc > 4 ? atoi(argv[4]) : 3, K = 4, r = POP_RANK_AUTO_MAX;
    if (S < 2 || W < 2 || T < 2 || rounds < 1) {
        fprintf(stderr, "pop_rule: S, W, T >= 2 and ROUNDS >= 1\n");
        return 2;
    }
    const int64_t n = (int64_t)S * W;
    float *Z = malloc((size_t)n * (size_t)T * sizeof *Z);
    int64_t *scan = malloc((size_t)n * sizeof *scan);
    float *Wt = malloc((size_t)r * (size_t)T * sizeof *Wt), b[POP_RANK_AUTO_MAX];
    double *f = malloc((size_t)T * sizeof *f), *t_fix = malloc((size_t)rounds * sizeof *t_fix);
    double *t_auto = malloc((size_t)rounds * sizeof *t_auto);
    double *t_cen = malloc((size_t)rounds * sizeof *t_cen), *t_har = malloc((size_t)rounds * sizeof *t_har);
    int32_t *site = malloc((size_t)n * sizeof *site);
    if (!Z || !scan || !Wt || !f || !t_fix || !t_auto || !t_cen || !t_har || !site) {
        fprintf(stderr, "pop_rule: out of memory\n");
        return 5;
    }
    rng_stream g;
    rng_init(&g, 7, RNG_USER, 0, 0, 0);
    const int B = T / (K + 1);
    for (int p = 0; p < S; p++) {
        double s[4];
        for (int k = 0; k < K; k++) s[k] = rng_normal(&g);
        for (int q = 0; q < T; q++) f[q] = 0.3 * rng_normal(&g);
        for (int j = 0; j < W; j++) {
            const int64_t i = (int64_t)p * W + j;
            scan[i] = p;
            site[i] = p % 3;
            for (int q = 0; q < T; q++) {
                double x = f[q] + rng_normal(&g);
                if (q / B < K) x += 8.0 * s[q / B] / sqrt((double)B);
                Z[i * T + q] = (float)x;
            }
        }
    }
    bgfm_err e = {0};
    pop_rows_out ro;
    int rank = -1;
    double *arm[4] = {t_fix, t_auto, t_cen, t_har};
    for (int k = 0; k < rounds; k++) {
        for (int a = 0; a < 4; a++) {
            double t0 = now();
            const pop_fit_opts o = {.r = a ? r : 8, .auto_rank = a > 0, .shrink = 0.1,
                                    .site_mode = a == 3 ? POP_SITE_HARMONISE : POP_SITE_CENTRE,
                                    .site_shrink = POP_SITE_SHRINK};
            if (pop_fit_rows(Z, n, T, scan, a > 1 ? site : NULL, a > 1 ? 3 : 0, &o, Wt, b, NULL,
                             NULL, &ro, &e) < 0) {
                fprintf(stderr, "pop_rule: %s\n", e.msg);
                return 6;
            }
            arm[a][k] = now() - t0;
            if (a == 1) rank = ro.rank;
        }
    }
    for (int a = 0; a < 4; a++) qsort(arm[a], (size_t)rounds, sizeof *arm[a], dbl_cmp);
    const double mf = t_fix[rounds / 2], ma = t_auto[rounds / 2];
    printf("rows %lld (%d people x %d windows), T %d, %d planted factors: the rule counts %d\n",
           (long long)n, S, W, T, K, rank);
    printf("head, fixed rank:     median %.3f s  best %.3f s\n", mf, t_fix[0]);
    printf("head and the rule:    median %.3f s  best %.3f s\n", ma, t_auto[0]);
    printf("auto_over_fixed %.3f (the rule's 16 fits: %.3f s, %.1f %% of the fit with it)\n",
           ma / mf, ma - mf, 100.0 * (ma - mf) / ma);
    const double mc = t_cen[rounds / 2], mh = t_har[rounds / 2];
    printf("3 sites, centre:      median %.3f s  best %.3f s\n", mc, t_cen[0]);
    printf("3 sites, harmonise:   median %.3f s  best %.3f s\n", mh, t_har[0]);
    printf("harmonise_over_centre %.3f\n", mh / mc);
    free(Z), free(scan), free(Wt), free(f), free(t_fix), free(t_auto), free(t_cen), free(t_har),
        free(site);
    return 0;
}
