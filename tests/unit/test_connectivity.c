/* test_connectivity.c: unit tests of the connectivity kernels against closed forms
 * and invariants (windows, adjacency rules and ties, Pearson, Fisher z, partial, RWSE),
 * plus a small driver mode (`test_connectivity stage TS OUTDIR key=value...`) that the
 * shell tests run under mpirun. Not the numpy comparisons (tests/reference/). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/connectivity.h"

/* deterministic test data: a 64-bit LCG (tests only; the library never uses it) */
static uint64_t lcg_state = 88172645463325252ULL;
static double lcg_uniform(void) {
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg_state >> 11) / 9007199254740992.0;
}

static void test_windows(void **st) {
    (void)st;
    assert_int_equal(connectivity_n_windows(1200, 100, 50), 23); /* (1200-100)/50 + 1 */
    assert_int_equal(connectivity_n_windows(100, 100, 50), 1);
    assert_int_equal(connectivity_n_windows(99, 100, 50), 0);
    assert_int_equal(connectivity_n_windows(149, 100, 50), 1);
    assert_int_equal(connectivity_n_windows(150, 100, 50), 2);
    assert_int_equal(connectivity_n_windows(10, 0, 0), 1);
    assert_int_equal(connectivity_n_windows(2, 0, 0), 1);
    assert_int_equal(connectivity_n_windows(1, 0, 0), 0);
    assert_int_equal(connectivity_n_windows(0, 0, 0), 0);
}

static void test_threshold_n2(void **st) {
    (void)st;
    float C[4] = {1, 0.3f, 0.3f, 1};
    uint8_t A[4];
    /* strictly greater: 0.3 > 0.3 is false */
    assert_int_equal(connectivity_adj_threshold(A, C, 2, 0.3, NULL), 0);
    assert_int_equal(A[1] + A[2], 0);
    assert_int_equal(connectivity_adj_threshold(A, C, 2, 0.29, NULL), 1);
    assert_int_equal(A[1], 1);
    assert_int_equal(A[2], 1);
    assert_int_equal(A[0] + A[3], 0); /* no self loops */
    uint8_t fl[2] = {0, 1};
    assert_int_equal(connectivity_adj_threshold(A, C, 2, -1.0, fl), 0);
}

static void test_density_ties(void **st) {
    (void)st;
    /* N = 4: 6 pairs, all |C| equal -> density 0.5 keeps K = 3 pairs, the first in
     * (i, j) order: (0,1), (0,2), (0,3). */
    enum { N = 4 };
    float C[N * N];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) C[i * N + j] = i == j ? 1.0f : ((i + j) % 2 ? 0.5f : -0.5f);
    uint8_t A[N * N];
    float work[16];
    assert_int_equal(connectivity_adj_density(A, C, N, 0.5, NULL, work), 3);
    assert_int_equal(A[0 * N + 1], 1);
    assert_int_equal(A[0 * N + 2], 1);
    assert_int_equal(A[0 * N + 3], 1);
    assert_int_equal(A[1 * N + 2] + A[1 * N + 3] + A[2 * N + 3], 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(A[i * N + i], 0);
        for (int j = 0; j < N; j++) assert_int_equal(A[i * N + j], A[j * N + i]);
    }
    /* a strict top pair plus ties: |C_23| largest, then ties in order */
    C[2 * N + 3] = C[3 * N + 2] = 0.9f;
    assert_int_equal(connectivity_adj_density(A, C, N, 0.5, NULL, work), 3);
    assert_int_equal(A[2 * N + 3], 1);
    assert_int_equal(A[0 * N + 1], 1);
    assert_int_equal(A[0 * N + 2], 1);
    assert_int_equal(A[0 * N + 3], 0);
    /* rounding: K = floor(d M + 0.5): d = 0.1, M = 6 -> 1; d = 1 -> all */
    assert_int_equal(connectivity_adj_density(A, C, N, 0.1, NULL, work), 1);
    assert_int_equal(A[2 * N + 3], 1);
    assert_int_equal(connectivity_adj_density(A, C, N, 1.0, NULL, work), 6);
    /* N = 2: one pair */
    float C2[4] = {1, -0.2f, -0.2f, 1};
    uint8_t A2[4];
    assert_int_equal(connectivity_adj_density(A2, C2, 2, 0.5, NULL, work), 1);
    assert_int_equal(A2[1], 1);
    assert_int_equal(connectivity_adj_density(A2, C2, 2, 0.4, NULL, work), 0);
    /* flagged nodes never get edges and do not count in M */
    uint8_t fl[N] = {0, 1, 0, 0};
    assert_int_equal(connectivity_adj_density(A, C, N, 1.0, fl, work), 3);
    for (int j = 0; j < N; j++) assert_int_equal(A[1 * N + j] + A[j * N + 1], 0);
}

static void test_density_random_ties(void **st) {
    (void)st;
    /* values on a coarse grid -> many ties; K edges exactly, the kept set is
     * "all above the cut, then the first ties in (i, j) order" */
    enum { N = 30 };
    float C[N * N], work[N * N];
    uint8_t A[N * N];
    for (int i = 0; i < N; i++) {
        C[i * N + i] = 1;
        for (int j = i + 1; j < N; j++)
            C[i * N + j] = C[j * N + i] = (float)(floor(lcg_uniform() * 5) / 5 - 0.4);
    }
    for (int rep = 0; rep < 5; rep++) {
        double d = 0.05 + 0.2 * rep;
        int64_t M = N * (N - 1) / 2, K = (int64_t)floor(d * (double)M + 0.5);
        assert_int_equal(connectivity_adj_density(A, C, N, d, NULL, work), K);
        int64_t kept = 0;
        float minkept = 2, maxdrop = -1;
        for (int i = 0; i < N; i++)
            for (int j = i + 1; j < N; j++) {
                float v = fabsf(C[i * N + j]);
                if (A[i * N + j]) {
                    kept++;
                    if (v < minkept) minkept = v;
                } else if (v > maxdrop) {
                    maxdrop = v;
                }
            }
        assert_int_equal(kept, K);
        assert_true(minkept >= maxdrop);
        /* among pairs equal to the cut, kept ones precede dropped ones in (i, j) order */
        int seen_drop = 0;
        for (int i = 0; i < N; i++)
            for (int j = i + 1; j < N; j++)
                if (fabsf(C[i * N + j]) == minkept) {
                    if (!A[i * N + j]) seen_drop = 1;
                    else assert_false(seen_drop);
                }
    }
}

static void test_pearson_basic(void **st) {
    (void)st;
    enum { T = 50, N = 6 };
    float X[T * N], Z[T * N], C[N * N];
    double dw[3 * N];
    for (int t = 0; t < T; t++)
        for (int i = 0; i < N; i++) X[t * N + i] = (float)(lcg_uniform() + (i == 1 ? 0 : 0.3 * i));
    for (int t = 0; t < T; t++) X[t * N + 3] = 0; /* flagged region: zeros */
    /* region 5 = 2 * region 0 + 1: r = 1; region 4 = -region 0: r = -1 */
    for (int t = 0; t < T; t++) {
        X[t * N + 5] = 2 * X[t * N + 0] + 1;
        X[t * N + 4] = -X[t * N + 0];
    }
    uint8_t fl[N] = {0, 0, 0, 1, 0, 0};
    int region = -2;
    assert_int_equal(connectivity_check(X, T, N, N, fl, &region), 0);
    assert_int_equal(connectivity_check(X, T, N, N, NULL, &region), 2);
    assert_int_equal(region, 3);
    connectivity_standardise(Z, X, T, N, N, fl, dw);
    connectivity_pearson(C, Z, T, N, fl);
    for (int i = 0; i < N; i++) {
        assert_true(C[i * N + i] == (i == 3 ? 0.0f : 1.0f));
        for (int j = 0; j < N; j++) {
            assert_true(C[i * N + j] == C[j * N + i]);
            assert_true(fabsf(C[i * N + j]) <= 1.0f);
            if (i == 3 || j == 3) assert_true(C[i * N + j] == 0.0f);
        }
    }
    assert_true(fabs((double)C[0 * N + 5] - 1.0) < 1e-6);
    assert_true(fabs((double)C[0 * N + 4] + 1.0) < 1e-6);
    X[7 * N + 2] = NAN;
    assert_int_equal(connectivity_check(X, T, N, N, fl, &region), 1);
    assert_int_equal(region, 2);
}

static void test_fisher_z(void **st) {
    (void)st;
    float C[9] = {1, 0.5f, 1.0f, 0.5f, 1, -1.0f, 1.0f, -1.0f, 1};
    connectivity_fisher_z(C, 3);
    assert_true(C[0] == 0.0f && C[4] == 0.0f && C[8] == 0.0f);
    assert_true(fabs((double)C[1] - atanh(0.5)) < 1e-6);
    double zmax = atanh(1.0 - CONNECTIVITY_Z_CLIP);
    assert_true(fabs((double)C[2] - zmax) < 1e-4 && isfinite(C[2]));
    assert_true(fabs((double)C[5] + zmax) < 1e-4);
}

static void test_partial_closed_form(void **st) {
    (void)st;
    /* C = [[1,a,0],[a,1,0],[0,0,1]]: P = inverse, partial_01 = a, others 0 */
    float C[9] = {1, 0.6f, 0, 0.6f, 1, 0, 0, 0, 1};
    double work[9];
    assert_int_equal(connectivity_partial(C, 3, NULL, work), 0);
    assert_true(fabs((double)C[1] - 0.6) < 1e-6);
    assert_true(fabs((double)C[2]) < 1e-7);
    assert_true(C[0] == 1.0f && C[4] == 1.0f);
    /* 3 regions with r_01 = r_02 = r_12 = r: partial = r / (1 + r) */
    float r = 0.4f;
    float D[16] = {1, r, 0, r, r, 1, 0, r, 0, 0, 0, 0, r, r, 0, 1};
    uint8_t fl[4] = {0, 0, 1, 0};
    double w2[16];
    assert_int_equal(connectivity_partial(D, 4, fl, w2), 0);
    assert_true(fabs((double)D[1] - 0.4 / 1.4) < 1e-6);
    assert_true(D[2 * 4 + 2] == 0.0f && D[1 * 4 + 2] == 0.0f);
    /* not positive definite */
    float E[4] = {1, 1, 1, 1};
    assert_int_equal(connectivity_partial(E, 2, NULL, work), 1);
}

static void test_shrinkage_range(void **st) {
    (void)st;
    enum { T = 20, N = 10 };
    float X[T * N], Z[T * N], C[N * N];
    double dw[3 * N];
    for (int i = 0; i < T * N; i++) X[i] = (float)lcg_uniform();
    connectivity_standardise(Z, X, T, N, N, NULL, dw);
    connectivity_pearson(C, Z, T, N, NULL);
    double s = connectivity_lw_shrinkage(Z, C, T, N, NULL);
    assert_true(s > 0.0 && s <= 1.0);
    /* one region: nothing to shrink */
    uint8_t fl[N] = {0, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    assert_true(connectivity_lw_shrinkage(Z, C, T, N, fl) == 0.0);
}

static void test_rwse_closed_forms(void **st) {
    (void)st;
    /* complete graph K_n: (P^s)_ii = (1 + (n-1) (-1/(n-1))^s) / n */
    enum { N = 7, K = 6 };
    uint8_t A[N * N];
    float R[N * K], work[4 * N * N];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) A[i * N + j] = i != j;
    assert_true(connectivity_rwse_work(N, K) <= 4 * N * N);
    connectivity_rwse(R, A, N, K, work);
    for (int i = 0; i < N; i++)
        for (int s = 1; s <= K; s++) {
            double want = (1.0 + (N - 1) * pow(-1.0 / (N - 1), s)) / N;
            assert_true(fabs((double)R[i * K + s - 1] - want) < 1e-6);
        }
    /* cycle C_n (n = 7): closed walks of length s / 2^s: 0, 1/2, 0, 6/16, 0, 20/64 */
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) A[i * N + j] = (j == (i + 1) % N) || (i == (j + 1) % N);
    connectivity_rwse(R, A, N, K, work);
    const double cyc[K] = {0, 0.5, 0, 6.0 / 16, 0, 20.0 / 64};
    for (int i = 0; i < N; i++)
        for (int s = 0; s < K; s++) assert_true(fabs((double)R[i * K + s] - cyc[s]) < 1e-6);
    /* isolated node: all zeros; k = 1 works */
    memset(A, 0, sizeof A);
    connectivity_rwse(R, A, N, 1, work);
    for (int i = 0; i < N; i++) assert_true(R[i] == 0.0f);
}

static void test_graph_constant_policy(void **st) {
    (void)st;
    enum { T = 30, N = 5 };
    float X[T * N], fc[N * N], rw[N * 3];
    uint8_t adj[N * N], fo[N];
    for (int i = 0; i < T * N; i++) X[i] = (float)lcg_uniform();
    for (int t = 0; t < T; t++) X[t * N + 2] = 4.0f; /* constant, not flagged */
    connectivity_params p = {CONNECTIVITY_PEARSON, 0, CONNECTIVITY_ADJ_THRESHOLD, 0.0, 3, 0, 0,
                             CONNECTIVITY_CONSTANT_ERROR, 0, 0};
    connectivity_ws w;
    bgfm_err e;
    bgfm_err_clear(&e);
    assert_int_equal(connectivity_ws_init(&w, N, T, 3, &e), 0);
    int region = -1;
    assert_int_equal(connectivity_graph(&p, X, T, N, N, NULL, fc, adj, rw, fo, &w, &region), 2);
    assert_int_equal(region, 2);
    p.constant = CONNECTIVITY_CONSTANT_FLAG;
    assert_int_equal(connectivity_graph(&p, X, T, N, N, NULL, fc, adj, rw, fo, &w, &region), 0);
    assert_int_equal(fo[2], 1);
    assert_true(fc[2 * N + 2] == 0.0f && fc[0] == 1.0f);
    for (int j = 0; j < N; j++) assert_int_equal(adj[2 * N + j], 0);
    connectivity_ws_free(&w);
}

/* ---- driver mode for the shell tests ------------------------------------------- */

static int driver(int argc, char **argv) {
    bgfm_ctx ctx;
    int rc = bgfm_ctx_init(&ctx, &argc, &argv);
    if (rc) return rc;
    ctx.quiet = 1;
    connectivity_opts o;
    memset(&o, 0, sizeof o);
    o.p.adj_value = 0.3;
    o.p.rwse_steps = 5;
    o.graphs_per_shard = 256;
    o.site_column = "site";
    for (int i = 4; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) continue;
        *eq = '\0';
        const char *k = argv[i], *v = eq + 1;
        if (!strcmp(k, "measure"))
            o.p.measure = !strcmp(v, "partial")          ? CONNECTIVITY_PARTIAL
                          : !strcmp(v, "shrunk_pearson") ? CONNECTIVITY_SHRUNK
                                                         : CONNECTIVITY_PEARSON;
        else if (!strcmp(k, "fisher_z")) o.p.fisher_z = atoi(v);
        else if (!strcmp(k, "threshold")) {
            o.p.adj_rule = CONNECTIVITY_ADJ_THRESHOLD;
            o.p.adj_value = atof(v);
        } else if (!strcmp(k, "density")) {
            o.p.adj_rule = CONNECTIVITY_ADJ_DENSITY;
            o.p.adj_value = atof(v);
        } else if (!strcmp(k, "rwse")) o.p.rwse_steps = atoi(v);
        else if (!strcmp(k, "wlen")) o.p.window_length = atoll(v);
        else if (!strcmp(k, "wstride")) o.p.window_stride = atoll(v);
        else if (!strcmp(k, "gps")) o.graphs_per_shard = atoll(v);
        else if (!strcmp(k, "compress")) o.compress = atoi(v);
        else if (!strcmp(k, "constant")) o.p.constant = !strcmp(v, "flag");
        else if (!strcmp(k, "skip")) o.skip_bad = atoi(v);
        else if (!strcmp(k, "site")) o.site_column = v;
    }
    if (o.p.window_length > 0 && o.p.window_stride == 0) o.p.window_stride = o.p.window_length;
    connectivity_stats stt;
    double t0 = MPI_Wtime();
    rc = connectivity_stage_exec(&ctx, &o, argv[2], argv[3], &stt);
    double wall = MPI_Wtime() - t0;
    if (rc) {
        bgfm_ctx_report(&ctx);
    } else if (ctx.rank == 0) {
        printf("graphs=%lld shards=%lld skipped=%lld wall_s=%.4f\n", (long long)stt.n_graphs,
               (long long)stt.n_shards, (long long)stt.n_skipped, wall);
    }
    free(stt.skipped_text);
    bgfm_ctx_finalize(&ctx);
    return rc;
}

/* `test_connectivity bench N T REPS`: seconds per graph of (a) standardise + Pearson
 * (one SSYRK) as the stage runs it, (b) the SSYRK call alone, (c) a whole graph
 * (Pearson, threshold, RWSE k=5); best of REPS. For bench/connectivity.sh. */
static int bench(int argc, char **argv) {
    int N = atoi(argv[2]);
    int64_t T = atoll(argv[3]);
    int reps = argc > 4 ? atoi(argv[4]) : 5;
    float *X = malloc(sizeof(float) * (size_t)(T * N)), *Z = malloc(sizeof(float) * (size_t)(T * N));
    float *C = malloc(sizeof(float) * (size_t)N * N), *R = malloc(sizeof(float) * (size_t)N * 5);
    uint8_t *A = malloc((size_t)N * N), *fo = malloc((size_t)N);
    double *dw = malloc(sizeof(double) * 3 * (size_t)N);
    connectivity_ws w;
    bgfm_err e;
    bgfm_err_clear(&e);
    if (!X || !Z || !C || !R || !A || !fo || !dw || connectivity_ws_init(&w, N, T, 5, &e)) return 5;
    for (int64_t i = 0; i < T * N; i++) X[i] = (float)(lcg_uniform() - 0.5);
    double best[3] = {1e30, 1e30, 1e30}, best_std = 1e30;
    connectivity_params p = {CONNECTIVITY_PEARSON, 0, CONNECTIVITY_ADJ_THRESHOLD, 0.3, 5, 0, 0,
                             CONNECTIVITY_CONSTANT_ERROR, 0, 0};
    for (int r = 0; r < reps; r++) {
        double t0 = MPI_Wtime();
        connectivity_standardise(Z, X, T, N, N, NULL, dw);
        double ts = MPI_Wtime();
        connectivity_pearson(C, Z, T, N, NULL);
        double t1 = MPI_Wtime();
        if (ts - t0 < best_std) best_std = ts - t0;
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, N, (int)T, 1.0f, Z, N, 0.0f, C, N);
        double t2 = MPI_Wtime();
        int region;
        connectivity_graph(&p, X, T, N, N, NULL, C, A, R, fo, &w, &region);
        double t3 = MPI_Wtime();
        double d[3] = {t1 - t0, t2 - t1, t3 - t2};
        for (int q = 0; q < 3; q++)
            if (d[q] < best[q]) best[q] = d[q];
    }
    printf("pearson_s %.6f ssyrk_s %.6f graph_s %.6f standardise_s %.6f\n", best[0], best[1],
           best[2], best_std);
    connectivity_ws_free(&w);
    free(X);
    free(Z);
    free(C);
    free(R);
    free(A);
    free(fo);
    free(dw);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && !strcmp(argv[1], "stage")) return driver(argc, argv);
    if (argc >= 4 && !strcmp(argv[1], "bench")) return bench(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_threshold_n2),
        cmocka_unit_test(test_density_ties),
        cmocka_unit_test(test_density_random_ties),
        cmocka_unit_test(test_pearson_basic),
        cmocka_unit_test(test_fisher_z),
        cmocka_unit_test(test_partial_closed_form),
        cmocka_unit_test(test_shrinkage_range),
        cmocka_unit_test(test_rwse_closed_forms),
        cmocka_unit_test(test_graph_constant_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
