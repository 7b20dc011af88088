/* graphs_fixture.h: a small graph store written with the project's own writer (shards
 * shard-%05d.h5 of `per_shard` consecutive graphs, and index.h5), the one fixture of the
 * graph-store tests (unit/test_graphs, unit/test_hardening, fuzz/fuzz_graphs). The
 * content and the metadata of every graph come from the caller's functions, so a test
 * can check exact values. Not a test itself; header only (static inline). */
#ifndef BGFM_TEST_GRAPHS_FIXTURE_H
#define BGFM_TEST_GRAPHS_FIXTURE_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/graphs.h"

#define GFIX_MAX_N 16 /* nodes per atlas */
#define GFIX_MAX_K 8  /* RWSE steps */

typedef struct gfix_spec {
    int n_atlases;
    const int32_t *nodes;
    const char *const *names;
    int k;                            /* RWSE steps */
    int64_t G, per_shard;             /* graphs, graphs per shard */
    int compress;
    int (*atlas_of)(int64_t g);
    /* value v of array q of graph g: q 0 fc (N x N), 1 adj, 2 rwse (N x k), 3 flagged (N);
     * adj and flagged take (uint8_t) of it */
    float (*value)(int64_t g, int q, int64_t v);
    /* subject, window, label, participant id (written into pid[32]) and site of graph g */
    void (*meta)(int64_t g, int64_t *subject, int64_t *window, int64_t *label, char pid[32],
                 const char **site);
} gfix_spec;

/* The mean framewise displacement the fixture writes for graph g (NaN for every fifth:
 * unknown), so a test can check what it reads back. */
static inline double gfix_fd(int64_t g) {
    return g % 5 == 4 ? (double)NAN : 0.1 + 0.03 * (double)(g % 7);
}

/* Write the store into dir. 0, or a status with e set. */
static inline int gfix_write(const gfix_spec *x, const char *dir, bgfm_err *e) {
    graphs_info info;
    memset(&info, 0, sizeof info);
    info.n_atlases = x->n_atlases;
    info.atlas_names = x->names;
    info.atlas_nodes = x->nodes;
    info.rwse_steps = x->k;
    info.measure = "pearson";
    info.adjacency = "threshold";
    info.adjacency_value = 0.3;
    info.graphs_per_shard = x->per_shard;
    info.compress = x->compress;
    int64_t G = x->G, nsh = (G + x->per_shard - 1) / x->per_shard;
    graphs_meta *meta = calloc((size_t)G, sizeof *meta);
    const char **pid = calloc((size_t)G, sizeof *pid), **site = calloc((size_t)G, sizeof *site);
    char(*pbuf)[32] = calloc((size_t)G, sizeof *pbuf);
    char **shard_names = calloc((size_t)nsh, sizeof *shard_names);
    int rc = meta && pid && site && pbuf && shard_names ? 0 : BGFM_ENOMEM;
    for (int64_t sh = 0; !rc && sh < nsh; sh++) {
        int64_t g0 = sh * x->per_shard, g1 = g0 + x->per_shard < G ? g0 + x->per_shard : G;
        int64_t cnt[8] = {0}, row[8] = {0};
        for (int64_t g = g0; g < g1; g++) cnt[x->atlas_of(g)]++;
        char path[600];
        shard_names[sh] = malloc(32);
        if (!shard_names[sh]) {
            rc = BGFM_ENOMEM;
            break;
        }
        snprintf(shard_names[sh], 32, "shard-%05d.h5", (int)sh);
        snprintf(path, sizeof path, "%s/%s", dir, shard_names[sh]);
        graphs_writer *w = NULL;
        rc = graphs_writer_create(&w, path, sh, &info, cnt, e);
        for (int64_t g = g0; !rc && g < g1; g++) {
            int a = x->atlas_of(g), N = x->nodes[a];
            float fc[GFIX_MAX_N * GFIX_MAX_N], rw[GFIX_MAX_N * GFIX_MAX_K];
            uint8_t adj[GFIX_MAX_N * GFIX_MAX_N], fl[GFIX_MAX_N];
            for (int v = 0; v < N * N; v++) {
                fc[v] = x->value(g, 0, v);
                adj[v] = (uint8_t)x->value(g, 1, v);
            }
            for (int v = 0; v < N * x->k; v++) rw[v] = x->value(g, 2, v);
            for (int v = 0; v < N; v++) fl[v] = (uint8_t)x->value(g, 3, v);
            int64_t subj, win, lab;
            x->meta(g, &subj, &win, &lab, pbuf[g], &site[g]);
            pid[g] = pbuf[g];
            meta[g] = (graphs_meta){a, (int32_t)sh, row[a], subj, win, lab, N, gfix_fd(g)};
            rc = graphs_writer_put(w, a, row[a]++, fc, adj, rw, fl, subj, win, lab, gfix_fd(g),
                                   pid[g], NULL, site[g], e);
        }
        if (rc) graphs_writer_abort(&w);
        else rc = graphs_writer_close(&w, e);
    }
    if (!rc) {
        char ipath[600];
        snprintf(ipath, sizeof ipath, "%s/index.h5", dir);
        rc = graphs_index_write(ipath, &info, (int)nsh, (const char *const *)shard_names, G, meta,
                                pid, NULL, site, e);
    }
    for (int64_t sh = 0; shard_names && sh < nsh; sh++) free(shard_names[sh]);
    free(shard_names);
    free(pbuf);
    free(site);
    free(pid);
    free(meta);
    return rc;
}

#endif
