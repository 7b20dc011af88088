/* graphs.h: the graph store: HDF5 shard files plus an index, written by the
 * connectivity stage, read by pretrain, probe and `bgfm grad`.
 * Not the connectivity math (stages/connectivity/) and not a batcher.
 *
 * Layout (docs/formats.md is the reference):
 *   index.h5   /shards (strings, shard file names relative to the index's folder)
 *              /graphs/{atlas (int32, into /atlases), shard (int32), row (int64, row in the
 *              shard's /graphs/<atlas> datasets), subject (int64, row of timeseries.h5
 *              /subjects), window (int64), label (int64, -1 unknown), n_nodes (int32)}
 *              /graphs/participant_id, /graphs/site (strings)
 *              /atlases (strings, atlas names, pipeline order), attrs rwse_steps, ...
 *   shard-NNNNN.h5  /graphs/<atlas>/{fc float32 GxNxN, adj uint8 GxNxN, rwse float32 GxNxk,
 *              subject int64 G, window int64 G, label int64 G, flagged uint8 GxN}
 *              chunked one graph per chunk.
 * A single shard file is itself a valid store (its graphs are listed from its own
 * datasets, in atlas order then row order). Reads are independent (any rank, any
 * time): no collective calls here. */
#ifndef BGFM_GRAPHS_H
#define BGFM_GRAPHS_H

#include <stdint.h>

#include "bgfm/ctx.h"

typedef struct graphs_meta {
    int32_t atlas;   /* index into the store's atlas list */
    int32_t shard;
    int64_t row;     /* row within the shard's atlas datasets */
    int64_t subject; /* row in timeseries.h5 /subjects */
    int64_t window;  /* window index within the scan, 0 without windows */
    int64_t label;   /* -1 when unknown */
    int32_t n_nodes;
} graphs_meta;

typedef struct graphs_store graphs_store; /* opaque */

/* Open index.h5, a folder holding index.h5, or a single shard file. */
int graphs_open(const char *path, graphs_store **out, bgfm_err *e);
void graphs_close(graphs_store **s); /* accepts NULL; sets *s = NULL */

int64_t graphs_count(const graphs_store *s);
int graphs_n_atlases(const graphs_store *s);
const char *graphs_atlas_name(const graphs_store *s, int atlas);
int graphs_atlas_nodes(const graphs_store *s, int atlas);
int graphs_atlas_find(const graphs_store *s, const char *name); /* -1 if absent */
int graphs_rwse_steps(const graphs_store *s);
const graphs_meta *graphs_get_meta(const graphs_store *s, int64_t g);
/* participant id / site of graph g ("" when unknown) */
const char *graphs_participant(const graphs_store *s, int64_t g);
const char *graphs_site(const graphs_store *s, int64_t g);

/* Read n graphs (global indices idx[0..n-1], all of ONE atlas with N nodes) into
 * fc (n*N*N), adj (n*N*N) and rwse (n*N*k); any pointer may be NULL to skip that
 * array. Few, large reads: one hyperslab (a run of consecutive rows) per run. */
int graphs_read(graphs_store *s, const int64_t *idx, int n, float *fc, uint8_t *adj,
                float *rwse, bgfm_err *e);

#endif
