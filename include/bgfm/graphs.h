/* graphs.h: the graph store: HDF5 shard files plus an index, written by the
 * connectivity stage, read by pretrain, probe and `bgfm grad`.
 * Not the connectivity math (stages/connectivity/) and not a batcher.
 *
 * Layout (docs/formats.md is the reference):
 *   index.h5   /shards (strings, shard file names relative to the index's folder)
 *              /graphs/{atlas (int32, into /atlases), shard (int32), row (int64, row in the
 *              shard's /graphs/<atlas> datasets), subject (int64, row of timeseries.h5
 *              /subjects), window (int64), label (int64, -1 unknown), n_nodes (int32),
 *              mean_fd (float64, the scan's mean framewise displacement in mm, NaN
 *              unknown; absent in stores written before it: read as NaN)}
 *              /graphs/participant_id, /graphs/site, [/graphs/dataset] (strings)
 *              /atlases (strings, atlas names, pipeline order), attrs rwse_steps, ...
 *   shard-NNNNN.h5  /graphs/<atlas>/{fc float32 GxNxN, adj uint8 GxNxN, rwse float32 GxNxk,
 *              subject int64 G, window int64 G, label int64 G, flagged uint8 GxN,
 *              mean_fd float64 G}
 *              chunked one graph per chunk.
 * A single shard file is itself a valid store (its graphs are listed from its own
 * datasets, in atlas order then row order). Reads are independent (any rank, any
 * time): no collective calls here. */
#ifndef BGFM_GRAPHS_H
#define BGFM_GRAPHS_H

#include <stdint.h>
#include <stdio.h>

#include "bgfm/ctx.h"

typedef struct graphs_meta {
    int32_t atlas;   /* index into the store's atlas list */
    int32_t shard;
    int64_t row;     /* row within the shard's atlas datasets */
    int64_t subject; /* row in timeseries.h5 /subjects */
    int64_t window;  /* window index within the scan, 0 without windows */
    int64_t label;   /* -1 when unknown */
    int32_t n_nodes;
    double mean_fd;  /* the scan's mean framewise displacement (mm); NaN when unknown */
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
/* dataset name of graph g (inputs.datasets); "" for a store written from inputs.bids */
const char *graphs_dataset(const graphs_store *s, int64_t g);
const char *graphs_site(const graphs_store *s, int64_t g);

/* Read n graphs (global indices idx[0..n-1], all of ONE atlas with N nodes) into
 * fc (n*N*N), adj (n*N*N) and rwse (n*N*k); any pointer may be NULL to skip that
 * array. Few, large reads: one hyperslab (a run of consecutive rows) per run. */
int graphs_read(graphs_store *s, const int64_t *idx, int n, float *fc, uint8_t *adj,
                float *rwse, bgfm_err *e);

/* ---- additions (connectivity stage): store attributes, flags, prefetch, writer,
 * inspect. Everything below is non-collective. ------------------------------ */

/* Store-wide attributes (from the index or shard root attributes). */
const char *graphs_measure(const graphs_store *s);   /* "pearson" | "shrunk_pearson" | "partial" */
int graphs_fisher_z(const graphs_store *s);          /* 0/1 */
const char *graphs_adjacency(const graphs_store *s); /* "threshold" | "density" */
double graphs_adjacency_value(const graphs_store *s);
int64_t graphs_window_length(const graphs_store *s); /* 0: one graph per scan */
int graphs_n_shards(const graphs_store *s);
const char *graphs_file(const graphs_store *s); /* the file opened (index.h5 for a folder) */
int graphs_is_index(const graphs_store *s);     /* 1: an index, 0: a single shard */

/* Read the per-graph region flags (n*N uint8: 1 = no usable signal, row/column of fc
 * and adj are 0) of n graphs of one atlas, like graphs_read. */
int graphs_read_flagged(graphs_store *s, const int64_t *idx, int n, uint8_t *flagged,
                        bgfm_err *e);

/* Prefetch: start graphs_read(s, idx, n, fc, adj, rwse) in a background thread and
 * return at once (idx is copied); graphs_wait joins it and returns its status. At
 * most one prefetch per store is in flight. Between the two calls the caller must
 * not touch these buffers and must make NO HDF5 call at all (the HDF5 library is
 * built without thread safety); compute only. graphs_close waits for a pending one. */
int graphs_prefetch(graphs_store *s, const int64_t *idx, int n, float *fc, uint8_t *adj,
                    float *rwse, bgfm_err *e);
int graphs_wait(graphs_store *s, bgfm_err *e);

/* What a store holds, shared by every shard and the index. */
typedef struct graphs_info {
    int n_atlases;
    const char *const *atlas_names;   /* pipeline order */
    const int32_t *atlas_nodes;       /* N per atlas */
    const int32_t *const *region_labels; /* per atlas N label values, or NULL */
    int rwse_steps;
    const char *measure;
    int fisher_z;
    const char *adjacency;            /* "threshold" | "density" */
    double adjacency_value;
    int64_t window_length, window_stride; /* 0, 0 without windows (or windows in seconds) */
    double window_length_s, window_stride_s; /* windows in seconds; 0, 0 otherwise */
    int64_t graphs_per_shard;
    int compress;                     /* deflate level 0..9, with shuffle */
    int has_dataset;                  /* 1: per-graph dataset names (inputs.datasets) */
} graphs_info;

/* One shard file written by ONE process (sequential HDF5 driver; object time stamps
 * off, so equal contents give byte-identical files). n_per_atlas[a] graphs of atlas
 * a; every row must be put once before graphs_writer_close. */
typedef struct graphs_writer graphs_writer;
int graphs_writer_create(graphs_writer **w, const char *path, int64_t shard,
                         const graphs_info *info, const int64_t *n_per_atlas, bgfm_err *e);
int graphs_writer_put(graphs_writer *w, int atlas, int64_t row, const float *fc,
                      const uint8_t *adj, const float *rwse, const uint8_t *flagged,
                      int64_t subject, int64_t window, int64_t label, double mean_fd,
                      const char *participant, const char *dataset, const char *site,
                      bgfm_err *e);
/* Writes the per-row metadata and closes; on failure (or with w abandoned through
 * graphs_writer_abort) the file is incomplete and must not be used. */
int graphs_writer_close(graphs_writer **w, bgfm_err *e);
void graphs_writer_abort(graphs_writer **w); /* accepts NULL; sets *w = NULL */

/* index.h5 for n graphs (meta in global order), written by one process. dataset: NULL
 * for a store without datasets, else n names (/graphs/dataset). */
int graphs_index_write(const char *path, const graphs_info *info, int n_shards,
                       const char *const *shard_names, int64_t n, const graphs_meta *meta,
                       const char *const *participant, const char *const *dataset,
                       const char *const *site, bgfm_err *e);

/* Summarise a shard or an index (per atlas: graph count, N, mean edge density, mean
 * flagged fraction, label balance) as text or, with json, one JSON object. Used by
 * `bgfm inspect` for files whose root `format` is "bgfm-graphs-index" or
 * "bgfm-graphs-shard". */
int graphs_inspect(const char *path, int json, FILE *out, bgfm_err *e);

#endif
