/* test_graphs.c: the graph store: shards and an index written with the writer API,
 * read back for random index lists (exact bytes), runs, prefetch, a single shard
 * as a store, inspect output, and errors. Not the connectivity math. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bgfm/graphs.h"
#include "graphs_fixture.h"

enum { NA = 2, K = 3, GPS = 7, G = 40 };
static const int32_t nodes[NA] = {6, 4};
static const char *const names[NA] = {"alpha", "beta"};
static char dir[256];

/* deterministic content of graph g: value v of array q */
static float fval(int64_t g, int q, int64_t v) { return (float)(g * 1000 + q * 100) + 0.25f * (float)v; }
static uint8_t bval(int64_t g, int q, int64_t v) { return (uint8_t)((g * 7 + q * 3 + v) % 5 == 0); }
static int atlas_of(int64_t g) { return (g % 3 == 1) ? 1 : 0; }

static float value(int64_t g, int q, int64_t v) {
    return q == 1 || q == 3 ? (float)bval(g, q, v) : fval(g, q, v);
}
static void meta_of(int64_t g, int64_t *subject, int64_t *window, int64_t *label, char pid[32],
                    const char **site) {
    *subject = g / 3;
    *window = g % 2;
    *label = g % 4 - 1;
    snprintf(pid, 32, "sub-%02d", (int)(g / 3));
    *site = g % 2 ? "B" : "A";
}

static int setup(void **st) {
    (void)st;
    snprintf(dir, sizeof dir, "/tmp/bgfm-test-graphs.XXXXXX");
    if (!mkdtemp(dir)) return -1;
    gfix_spec x = {NA, nodes, names, K, G, GPS, 1, atlas_of, value, meta_of};
    bgfm_err e = {0};
    int rc = gfix_write(&x, dir, &e);
    if (rc) fprintf(stderr, "%s\n", e.msg);
    return rc ? -1 : 0;
}

static int teardown(void **st) {
    (void)st;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Check buffers against the deterministic content. */
static void check_graphs(const int64_t *idx, int n, int N, const float *fc, const uint8_t *adj,
                         const float *rw) {
    for (int i = 0; i < n; i++) {
        int64_t g = idx[i];
        for (int v = 0; v < N * N; v++) {
            assert_true(fc[(size_t)i * N * N + v] == fval(g, 0, v));
            assert_int_equal(adj[(size_t)i * N * N + v], bval(g, 1, v));
        }
        for (int v = 0; v < N * K; v++) assert_true(rw[(size_t)i * N * K + v] == fval(g, 2, v));
    }
}

/* the mean FD read back: the fixture's value, NaN as NaN */
static void assert_fd(double got, int64_t g) {
    double want = gfix_fd(g);
    if (isnan(want)) assert_true(isnan(got));
    else assert_true(got == want);
}

static void test_index_meta(void **st) {
    (void)st;
    graphs_store *s = NULL;
    bgfm_err e;
    bgfm_err_clear(&e);
    assert_int_equal(graphs_open(dir, &s, &e), 0); /* the folder means its index.h5 */
    assert_int_equal(graphs_count(s), G);
    assert_int_equal(graphs_n_atlases(s), NA);
    assert_string_equal(graphs_atlas_name(s, 1), "beta");
    assert_int_equal(graphs_atlas_nodes(s, 0), 6);
    assert_int_equal(graphs_atlas_find(s, "beta"), 1);
    assert_int_equal(graphs_atlas_find(s, "gamma"), -1);
    assert_int_equal(graphs_rwse_steps(s), K);
    assert_int_equal(graphs_n_shards(s), (G + GPS - 1) / GPS);
    assert_string_equal(graphs_measure(s), "pearson");
    for (int64_t g = 0; g < G; g++) {
        const graphs_meta *m = graphs_get_meta(s, g);
        assert_int_equal(m->atlas, atlas_of(g));
        assert_int_equal(m->shard, g / GPS);
        assert_int_equal(m->subject, g / 3);
        assert_int_equal(m->label, g % 4 - 1);
        char want[16];
        snprintf(want, sizeof want, "sub-%02d", (int)(g / 3));
        assert_string_equal(graphs_participant(s, g), want);
        assert_string_equal(graphs_site(s, g), g % 2 ? "B" : "A");
        assert_fd(m->mean_fd, g);
    }
    graphs_close(&s);
    assert_null(s);
    graphs_close(&s); /* NULL accepted */
}

/* Random index lists (with duplicates, any order) and runs across shards. */
static void test_random_reads(void **st) {
    (void)st;
    graphs_store *s = NULL;
    bgfm_err e;
    bgfm_err_clear(&e);
    char ipath[400];
    snprintf(ipath, sizeof ipath, "%s/index.h5", dir);
    assert_int_equal(graphs_open(ipath, &s, &e), 0);
    uint64_t x = 12345;
    float fc[32 * 36], rw[32 * 18];
    uint8_t adj[32 * 36], fl[32 * 6];
    for (int rep = 0; rep < 50; rep++) {
        int a = rep % 2, n = 1 + rep % 17;
        int64_t idx[32];
        for (int i = 0; i < n; i++) {
            do {
                x = x * 6364136223846793005ULL + 1442695040888963407ULL;
                idx[i] = (int64_t)((x >> 33) % G);
            } while (atlas_of(idx[i]) != a);
        }
        assert_int_equal(graphs_read(s, idx, n, fc, adj, rw, &e), 0);
        check_graphs(idx, n, nodes[a], fc, adj, rw);
        assert_int_equal(graphs_read_flagged(s, idx, n, fl, &e), 0);
        for (int i = 0; i < n; i++)
            for (int v = 0; v < nodes[a]; v++)
                assert_int_equal(fl[i * nodes[a] + v], bval(idx[i], 3, v));
    }
    /* every alpha graph in order: runs of consecutive rows, spanning shards */
    int64_t all[G];
    int n = 0;
    for (int64_t g = 0; g < G; g++)
        if (atlas_of(g) == 0) all[n++] = g;
    assert_int_equal(graphs_read(s, all, n, fc, adj, rw, &e), 0);
    check_graphs(all, n, 6, fc, adj, rw);
    /* NULL arrays are skipped */
    assert_int_equal(graphs_read(s, all, 3, NULL, adj, NULL, &e), 0);
    /* errors: mixed atlases, out of range */
    int64_t mixed[2] = {0, 1};
    assert_int_equal(graphs_read(s, mixed, 2, fc, adj, rw, &e), BGFM_EUSAGE);
    assert_non_null(strstr(e.msg, "different atlases"));
    bgfm_err_clear(&e);
    int64_t bad[1] = {G};
    assert_int_equal(graphs_read(s, bad, 1, fc, adj, rw, &e), BGFM_EUSAGE);
    graphs_close(&s);
}

static void test_prefetch(void **st) {
    (void)st;
    graphs_store *s = NULL;
    bgfm_err e;
    bgfm_err_clear(&e);
    assert_int_equal(graphs_open(dir, &s, &e), 0);
    float fc[2][8 * 36], rw[2][8 * 18];
    uint8_t adj[2][8 * 36];
    /* double buffering: batch b+1 is read while batch b is checked */
    int64_t batches[5][4] = {{0, 2, 3, 5}, {6, 8, 9, 11}, {12, 14, 15, 17}, {39, 0, 38, 2}, {3, 3, 3, 3}};
    assert_int_equal(graphs_prefetch(s, batches[0], 4, fc[0], adj[0], rw[0], &e), 0);
    for (int b = 0; b < 5; b++) {
        assert_int_equal(graphs_wait(s, &e), 0);
        if (b + 1 < 5)
            assert_int_equal(graphs_prefetch(s, batches[b + 1], 4, fc[(b + 1) % 2], adj[(b + 1) % 2],
                                             rw[(b + 1) % 2], &e),
                             0);
        check_graphs(batches[b], 4, 6, fc[b % 2], adj[b % 2], rw[b % 2]);
    }
    assert_int_equal(graphs_wait(s, &e), 0); /* nothing pending: 0 */
    /* an error inside the prefetch comes back from graphs_wait */
    int64_t bad[2] = {0, 1};
    assert_int_equal(graphs_prefetch(s, bad, 2, fc[0], adj[0], rw[0], &e), 0);
    assert_int_equal(graphs_wait(s, &e), BGFM_EUSAGE);
    assert_non_null(strstr(e.msg, "different atlases"));
    /* close with a prefetch pending waits for it */
    bgfm_err_clear(&e);
    assert_int_equal(graphs_prefetch(s, batches[1], 4, fc[0], adj[0], rw[0], &e), 0);
    graphs_close(&s);
}

static void test_single_shard(void **st) {
    (void)st;
    char path[400];
    snprintf(path, sizeof path, "%s/shard-00001.h5", dir);
    graphs_store *s = NULL;
    bgfm_err e;
    bgfm_err_clear(&e);
    assert_int_equal(graphs_open(path, &s, &e), 0);
    /* graphs 7..13: alpha ones first (atlas order), then beta, in row order */
    int64_t want[GPS];
    int n = 0;
    for (int a = 0; a < NA; a++)
        for (int64_t g = GPS; g < 2 * GPS; g++)
            if (atlas_of(g) == a) want[n++] = g;
    assert_int_equal(graphs_count(s), GPS);
    float fc[36], rw[18];
    uint8_t adj[36];
    for (int64_t i = 0; i < GPS; i++) {
        const graphs_meta *m = graphs_get_meta(s, i);
        assert_int_equal(m->atlas, atlas_of(want[i]));
        assert_int_equal(m->subject, want[i] / 3);
        assert_fd(m->mean_fd, want[i]);
        assert_int_equal(graphs_read(s, &i, 1, fc, adj, rw, &e), 0);
        check_graphs(&want[i], 1, nodes[m->atlas], fc, adj, rw);
    }
    graphs_close(&s);
}

/* A store written before /graphs/mean_fd (index and shard without it) still opens, and
 * every graph's mean FD reads as unknown (NaN). */
static void test_mean_fd_absent(void **st) {
    (void)st;
    const char *file[2] = {"index.h5", "shard-00001.h5"};
    const char *drop[2][2] = {{"/graphs/mean_fd", NULL}, {"/graphs/alpha/mean_fd", "/graphs/beta/mean_fd"}};
    for (int q = 0; q < 2; q++) {
        char src[400], dst[400], cmd[900];
        snprintf(src, sizeof src, "%s/%s", dir, file[q]);
        snprintf(dst, sizeof dst, "%s/old-%s", dir, file[q]);
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, dst);
        assert_int_equal(system(cmd), 0);
        hid_t f = H5Fopen(dst, H5F_ACC_RDWR, H5P_DEFAULT);
        assert_true(f >= 0);
        for (int k = 0; k < 2 && drop[q][k]; k++) assert_true(H5Ldelete(f, drop[q][k], H5P_DEFAULT) >= 0);
        assert_true(H5Fclose(f) >= 0);
        graphs_store *s = NULL;
        bgfm_err e;
        bgfm_err_clear(&e);
        assert_int_equal(graphs_open(dst, &s, &e), 0);
        assert_true(graphs_count(s) > 0);
        for (int64_t g = 0; g < graphs_count(s); g++) assert_true(isnan(graphs_get_meta(s, g)->mean_fd));
        graphs_close(&s);
    }
}

static void test_inspect(void **st) {
    (void)st;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    bgfm_err e;
    bgfm_err_clear(&e);
    assert_int_equal(graphs_inspect(dir, 1, f, &e), 0);
    fclose(f);
    assert_non_null(strstr(buf, "\"format\": \"bgfm-graphs-index\""));
    assert_non_null(strstr(buf, "\"n_graphs\": 40"));
    assert_non_null(strstr(buf, "\"name\": \"beta\", \"n_graphs\": 13, \"n_nodes\": 4"));
    free(buf);
    f = open_memstream(&buf, &len);
    char path[400];
    snprintf(path, sizeof path, "%s/shard-00000.h5", dir);
    assert_int_equal(graphs_inspect(path, 0, f, &e), 0);
    fclose(f);
    assert_non_null(strstr(buf, "graph shard, 7 graphs"));
    free(buf);
}

static void test_open_errors(void **st) {
    (void)st;
    graphs_store *s = NULL;
    bgfm_err e;
    bgfm_err_clear(&e);
    assert_int_equal(graphs_open("/nonexistent/graphs", &s, &e), BGFM_EIO);
    assert_non_null(strstr(e.msg, "/nonexistent/graphs"));
    assert_null(s);
    char path[400];
    snprintf(path, sizeof path, "%s/not.h5", dir);
    FILE *f = fopen(path, "w");
    fputs("nope", f);
    fclose(f);
    bgfm_err_clear(&e);
    assert_int_equal(graphs_open(path, &s, &e), BGFM_EIO);
    unlink(path);
}

int main(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* errors are checked through bgfm_err */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_meta),   cmocka_unit_test(test_random_reads),
        cmocka_unit_test(test_prefetch),     cmocka_unit_test(test_single_shard),
        cmocka_unit_test(test_inspect),      cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_mean_fd_absent),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
