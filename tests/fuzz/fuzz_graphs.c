/* fuzz_graphs.c: libFuzzer target for the graph-store reader (pipeline/io/graphs.c):
 * graphs_open on an index (and on a shard alone), graphs_read / graphs_read_flagged /
 * prefetch of every graph, graphs_inspect (text and JSON). The input is a list of
 * structure-aware edits (fuzz_h5edit.h) applied to a valid two-shard store written at
 * start-up with the project's own writer. Not a fuzzer of libhdf5's file parser. */
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/graphs.h"
#include "fuzz_h5edit.h"
#include "graphs_fixture.h"

#define FZ_MAX_N 64      /* the harness allocates n*N*N; larger node counts are only opened */
#define FZ_MAX_G 4096

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static h5e_set set;
static char store_dir[300], index_path[300], shard_path[300];

static int atlas_alt(int64_t g) { return (int)(g % 2); }
static float value(int64_t g, int q, int64_t v) {
    switch (q) {
    case 0: return (float)(g * 100 + v);
    case 1: return (float)((g + v) % 2);
    case 2: return 0.5f * (float)v;
    default: return (float)(v == 0);
    }
}
static void meta_of(int64_t g, int64_t *subject, int64_t *window, int64_t *label, char pid[32],
                    const char **site) {
    *subject = g;
    *window = 0;
    *label = g % 3 - 1;
    snprintf(pid, 32, "sub-%02d", (int)g);
    *site = g % 2 ? "B" : "A";
}

static void make_templates(void) {
    static const int32_t nodes[2] = {4, 3};
    static const char *const names[2] = {"alpha", "beta"};
    static const char *const shard_names[2] = {"shard-00000.h5", "shard-00001.h5"};
    char tdir[300];
    fz_path(tdir, sizeof tdir, "tmpl");
    fz_path(store_dir, sizeof store_dir, "store");
    if (fz_mkdir(tdir) || fz_mkdir(store_dir)) abort();
    gfix_spec x = {2, nodes, names, 2, 7, 4, 0, atlas_alt, value, meta_of};
    bgfm_err e;
    bgfm_err_clear(&e);
    if (gfix_write(&x, tdir, &e)) {
        fprintf(stderr, "fuzz_graphs: cannot write the template store: %s\n", e.msg);
        abort();
    }
    char ipath[400];
    snprintf(ipath, sizeof ipath, "%s/index.h5", tdir);
    snprintf(index_path, sizeof index_path, "%s/index.h5", store_dir);
    snprintf(shard_path, sizeof shard_path, "%s/shard-00000.h5", store_dir);
    h5e_add_file(&set, ipath, index_path);
    for (int sh = 0; sh < 2; sh++) {
        char t[400], wpath[400];
        snprintf(t, sizeof t, "%s/%s", tdir, shard_names[sh]);
        snprintf(wpath, sizeof wpath, "%s/%s", store_dir, shard_names[sh]);
        h5e_add_file(&set, t, wpath);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    make_templates();
    return 0;
}

/* Read every graph of the store, atlas by atlas, as a trainer would. */
static void read_all(graphs_store *s) {
    int64_t G = graphs_count(s);
    if (G < 0) abort();
    if (G > FZ_MAX_G) return;
    int64_t *idx = malloc((size_t)(G ? G : 1) * sizeof *idx);
    if (!idx) abort();
    int k = graphs_rwse_steps(s);
    for (int a = 0; a < graphs_n_atlases(s); a++) {
        (void)graphs_atlas_name(s, a);
        int N = graphs_atlas_nodes(s, a), n = 0;
        for (int64_t g = 0; g < G; g++) {
            const graphs_meta *m = graphs_get_meta(s, g);
            (void)graphs_participant(s, g);
            (void)graphs_site(s, g);
            if (m->atlas == a) idx[n++] = g;
        }
        if (N < 0 || N > FZ_MAX_N || k < 0 || k > FZ_MAX_N || n == 0) continue;
        size_t nn = (size_t)n * (size_t)N * (size_t)N, nk = (size_t)n * (size_t)N * (size_t)k;
        float *fc = malloc(nn * sizeof *fc + 4), *rw = malloc(nk * sizeof *rw + 4);
        uint8_t *adj = malloc(nn + 4), *fl = malloc((size_t)n * (size_t)N + 4);
        if (!fc || !rw || !adj || !fl) abort();
        bgfm_err e;
        bgfm_err_clear(&e);
        if (graphs_read(s, idx, n, fc, adj, rw, &e) && !e.msg[0]) abort();
        bgfm_err_clear(&e);
        if (graphs_read_flagged(s, idx, n, fl, &e) && !e.msg[0]) abort();
        bgfm_err_clear(&e);
        if (graphs_prefetch(s, idx, n, fc, adj, NULL, &e) == 0) {
            if (graphs_wait(s, &e) && !e.msg[0]) abort();
        }
        free(fc);
        free(rw);
        free(adj);
        free(fl);
    }
    (void)graphs_measure(s);
    (void)graphs_adjacency(s);
    (void)graphs_window_length(s);
    free(idx);
}

static void exercise(const char *path) {
    graphs_store *s = NULL;
    bgfm_err e;
    bgfm_err_clear(&e);
    int rc = graphs_open(path, &s, &e);
    if (rc) {
        if (s || !e.msg[0] || e.code == 0) abort();
    } else {
        read_all(s);
        graphs_close(&s);
        if (s) abort();
    }
    FILE *null = fopen("/dev/null", "w");
    if (!null) abort();
    for (int json = 0; json < 2; json++) {
        bgfm_err_clear(&e);
        if (graphs_inspect(path, json, null, &e) && !e.msg[0]) abort();
    }
    fclose(null);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    h5e_apply(&set, data, size);
    exercise(store_dir);
    exercise(shard_path);
    return 0;
}
