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

#define FZ_MAX_N 64      /* the harness allocates n*N*N; larger node counts are only opened */
#define FZ_MAX_G 4096

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static h5e_set set;
static char store_dir[300], index_path[300], shard_path[300];

static void make_templates(void) {
    enum { NA = 2, K = 2, G = 7 };
    static const int32_t nodes[NA] = {4, 3};
    static const char *const names[NA] = {"alpha", "beta"};
    char tdir[300];
    fz_path(tdir, sizeof tdir, "tmpl");
    fz_path(store_dir, sizeof store_dir, "store");
    if (fz_mkdir(tdir) || fz_mkdir(store_dir)) abort();
    graphs_info info;
    memset(&info, 0, sizeof info);
    info.n_atlases = NA;
    info.atlas_names = names;
    info.atlas_nodes = nodes;
    info.rwse_steps = K;
    info.measure = "pearson";
    info.adjacency = "threshold";
    info.adjacency_value = 0.3;
    info.graphs_per_shard = 4;
    info.compress = 0;
    bgfm_err e;
    bgfm_err_clear(&e);
    graphs_meta meta[G];
    const char *pid[G], *site[G];
    static char pbuf[G][16];
    const char *shard_names[2] = {"shard-00000.h5", "shard-00001.h5"};
    for (int sh = 0; sh < 2; sh++) {
        int64_t cnt[NA] = {0, 0}, row[NA] = {0, 0};
        int g0 = sh * 4, g1 = sh ? G : 4;
        for (int g = g0; g < g1; g++) cnt[g % NA]++;
        char path[400];
        snprintf(path, sizeof path, "%s/%s", tdir, shard_names[sh]);
        graphs_writer *w = NULL;
        if (graphs_writer_create(&w, path, sh, &info, cnt, &e)) goto fail;
        for (int g = g0; g < g1; g++) {
            int a = g % NA, N = nodes[a];
            float fc[16], rw[8];
            uint8_t adj[16], fl[4];
            for (int v = 0; v < N * N; v++) {
                fc[v] = (float)(g * 100 + v);
                adj[v] = (uint8_t)((g + v) % 2);
            }
            for (int v = 0; v < N * K; v++) rw[v] = 0.5f * (float)v;
            for (int v = 0; v < N; v++) fl[v] = (uint8_t)(v == 0);
            snprintf(pbuf[g], sizeof pbuf[g], "sub-%02d", g);
            meta[g] = (graphs_meta){a, sh, row[a], g, 0, g % 3 - 1, N};
            pid[g] = pbuf[g];
            site[g] = g % 2 ? "B" : "A";
            if (graphs_writer_put(w, a, row[a]++, fc, adj, rw, fl, g, 0, g % 3 - 1, pid[g], site[g],
                                  &e))
                goto fail;
        }
        if (graphs_writer_close(&w, &e)) goto fail;
    }
    char ipath[400];
    snprintf(ipath, sizeof ipath, "%s/index.h5", tdir);
    if (graphs_index_write(ipath, &info, 2, shard_names, G, meta, pid, site, &e)) goto fail;
    snprintf(index_path, sizeof index_path, "%s/index.h5", store_dir);
    snprintf(shard_path, sizeof shard_path, "%s/shard-00000.h5", store_dir);
    h5e_add_file(&set, ipath, index_path);
    for (int sh = 0; sh < 2; sh++) {
        char t[400], wpath[400];
        snprintf(t, sizeof t, "%s/%s", tdir, shard_names[sh]);
        snprintf(wpath, sizeof wpath, "%s/%s", store_dir, shard_names[sh]);
        h5e_add_file(&set, t, wpath);
    }
    return;
fail:
    fprintf(stderr, "fuzz_graphs: cannot write the template store: %s\n", e.msg);
    abort();
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
