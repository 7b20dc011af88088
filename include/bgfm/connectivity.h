/* connectivity.h: the `connectivity` stage kind (timeseries.h5 -> graph shards) and
 * its per-graph math: Pearson / Ledoit-Wolf shrunk / partial correlation, Fisher z,
 * adjacency rules, random-walk structural encodings (RWSE, model.md section 1).
 * Not the graph store (graphs.h writes and reads the files) and not the model.
 *
 * Kernels (connectivity_pearson ... connectivity_graph) are non-collective and
 * touch no files; connectivity_stage_exec and the kind's run() are collective over
 * ctx->comm. docs/connectivity.md documents every choice made here. */
#ifndef BGFM_CONNECTIVITY_H
#define BGFM_CONNECTIVITY_H

#include <stdint.h>

#include "bgfm/ctx.h"
#include "bgfm/stage.h"

typedef enum connectivity_measure {
    CONNECTIVITY_PEARSON = 0,
    CONNECTIVITY_SHRUNK = 1, /* shrunk_pearson */
    CONNECTIVITY_PARTIAL = 2
} connectivity_measure;

typedef enum connectivity_adj_rule {
    CONNECTIVITY_ADJ_THRESHOLD = 0, /* A_ij = 1[C_ij > tau] */
    CONNECTIVITY_ADJ_DENSITY = 1    /* top fraction of |C_ij| over unordered pairs */
} connectivity_adj_rule;

/* How a region that is constant within a scan/window but not flagged by parcellate
 * is handled. */
typedef enum connectivity_constant {
    CONNECTIVITY_CONSTANT_ERROR = 0, /* bad input data (exit 3), or skip the subject */
    CONNECTIVITY_CONSTANT_FLAG = 1   /* treated like a flagged region for that graph */
} connectivity_constant;

/* The per-graph parameters (the stage's `with:` keys, resolved). */
typedef struct connectivity_params {
    connectivity_measure measure;
    int fisher_z;              /* 0/1 */
    connectivity_adj_rule adj_rule;
    double adj_value;          /* tau in [-1, 1] or density in (0, 1] */
    int rwse_steps;            /* k >= 1 */
    int64_t window_length;     /* 0: one graph per scan */
    int64_t window_stride;     /* >= 1 when window_length > 0 */
    connectivity_constant constant;
    double window_length_s;    /* > 0: windows in seconds instead (each scan's own TR) */
    double window_stride_s;    /* > 0 when window_length_s > 0 */
} connectivity_params;

/* Stage options beyond the per-graph math. */
typedef struct connectivity_opts {
    connectivity_params p;
    int64_t graphs_per_shard;  /* >= 1 */
    int compress;              /* deflate level 0..9 (0: off), with shuffle */
    const char *site_column;   /* /subjects/columns/<col> giving the site, "" none */
    int skip_bad;              /* pipeline on_error: skip */
    int64_t max_memory;        /* bytes per rank (max_memory_per_rank), 0 = no limit */
    const char *pipeline_file, *stage_name; /* for the memory-limit message (may be NULL) */
    /* per-dataset units (units.c; NULL: none): the stage's previous output folder, the
     * upstream parcellate folder (its parts/<dataset>/key) and the text of this stage's
     * options, hashed into each unit's key; units_prev NULL: nothing reused) */
    const char *units_prev, *units_upstream, *units_salt;
} connectivity_opts;

/* Fisher z clipping: r is clamped to [-(1 - CONNECTIVITY_Z_CLIP), 1 - CONNECTIVITY_Z_CLIP]
 * before arctanh, so |z| <= atanh(1 - 1e-7) ~ 8.4. */
#define CONNECTIVITY_Z_CLIP 1e-7

/* ---- kernels (non-collective, no I/O) ---------------------------------------- */

/* Number of windows of `length` rows every `stride` rows that fit in T rows
 * (0 if T < length). length 0 means "whole scan": 1 if T >= 2 else 0. */
int64_t connectivity_n_windows(int64_t T, int64_t length, int64_t stride);

/* Check the series X (T x N, row-major, leading dimension ldx) of the regions not
 * flagged (flagged NULL: none): returns 0 if usable, 1 if a value is NaN/Inf, 2 if a
 * region is constant (max == min), with *region set to the first bad region. */
int connectivity_check(const float *X, int64_t T, int N, int64_t ldx, const uint8_t *flagged,
                       int *region);

/* Standardise: Z[:, i] = (X[:, i] - mean) / ||X[:, i] - mean||_2 (accumulated in
 * double), so Z^T Z is the correlation matrix. Columns flagged (or constant) are 0.
 * Z is T x N row-major (ld N). */
void connectivity_standardise(float *Z, const float *X, int64_t T, int N, int64_t ldx,
                              const uint8_t *flagged, double *work /* 3N */);

/* Pearson correlation C (N x N) = Z^T Z by ONE cblas_ssyrk, mirrored to full,
 * clipped to [-1, 1]; diagonal exactly 1, rows/columns of flagged regions (and
 * their diagonal) exactly 0. */
void connectivity_pearson(float *C, const float *Z, int64_t T, int N, const uint8_t *flagged);

/* Ledoit-Wolf shrinkage intensity (as sklearn.covariance.LedoitWolf on the z-scored
 * series) of the regions not flagged, from Z (unit-norm columns) and its correlation
 * C: returns s in [0, 1]. */
double connectivity_lw_shrinkage(const float *Z, const float *C, int64_t T, int N,
                                 const uint8_t *flagged);

/* C <- (1 - s) C off the diagonal (the shrunk covariance (1-s) R + s I of z-scored
 * series, whose diagonal is 1, so it is already a correlation). */
void connectivity_shrink(float *C, int N, double s);

/* C (a shrunk correlation, positive definite on the non-flagged regions) -> partial
 * correlation -P_ij / sqrt(P_ii P_jj) with P = C^-1 (LAPACKE dpotrf + dpotri, double),
 * diagonal 1, flagged rows/columns 0. work: n'*n' doubles. Returns 0, or 1 if the
 * matrix is not positive definite. */
int connectivity_partial(float *C, int N, const uint8_t *flagged, double *work);

/* Off-diagonal z = atanh(clamp(r)); diagonal set to 0 (atanh(1) is infinite). */
void connectivity_fisher_z(float *C, int N);

/* Adjacency from the correlation C (before Fisher z): no self loops, no edges at
 * flagged regions. Threshold: A_ij = 1[C_ij > tau]. Density: keep the
 * K = floor(d * M + 0.5) unordered pairs i < j of largest |C_ij| among the M pairs of
 * non-flagged regions; ties at the cut are broken by (i, j) in row-major order
 * (smaller i first, then smaller j). Returns the number of undirected edges.
 * work (density only): M floats. */
int64_t connectivity_adj_threshold(uint8_t *A, const float *C, int N, double tau,
                                   const uint8_t *flagged);
int64_t connectivity_adj_density(uint8_t *A, const float *C, int N, double d,
                                 const uint8_t *flagged, float *work);

/* RWSE (model.md section 1): P = D^-1 A, D_ii = max(sum_j A_ij, 1e-6);
 * R[i*k + s-1] = (P^s)_ii, s = 1..k. Powers P^2..P^h (h = ceil(k/2)) by cblas_sgemm,
 * the diagonals of higher powers as row-column dot products of two of them.
 * work: connectivity_rwse_work(N, k) floats. */
int64_t connectivity_rwse_work(int N, int k);
void connectivity_rwse(float *R, const uint8_t *A, int N, int k, float *work);

/* Workspace for connectivity_graph, sized for N regions and T rows. */
typedef struct connectivity_ws {
    int N;
    int64_t T;
    float *Z;       /* T x N */
    float *fwork;   /* max(M, rwse work) floats */
    double *dwork;  /* max(N x N, 3N) doubles */
    uint8_t *flag;  /* N */
} connectivity_ws;

int connectivity_ws_init(connectivity_ws *w, int N, int64_t T, int k, bgfm_err *e);
void connectivity_ws_free(connectivity_ws *w);

/* One graph from the series X (T x N, ld ldx): fc (N x N), adj (N x N), rwse (N x k),
 * flag_out (N: flagged_in, plus constant regions under CONNECTIVITY_CONSTANT_FLAG).
 * Returns 0; 1 NaN/Inf, 2 constant region (*region set), 3 partial: covariance not
 * positive definite. The caller turns these into messages naming subject/atlas. */
int connectivity_graph(const connectivity_params *p, const float *X, int64_t T, int N,
                       int64_t ldx, const uint8_t *flagged_in, float *fc, uint8_t *adj,
                       float *rwse, uint8_t *flag_out, connectivity_ws *w, int *region);

/* ---- the stage ------------------------------------------------------------- */

typedef struct connectivity_stats {
    int64_t n_graphs, n_shards, n_skipped; /* skipped subjects (on_error: skip) */
    int64_t n_reused; /* graphs this rank took from reused units instead of computing */
    double bytes_read, seconds_compute, seconds_write;
    /* "participant_id\treason\n" per skipped subject, on every rank (malloc'ed, NULL when
     * nothing was checked; the caller frees it); also written to index.h5 /skipped */
    char *skipped_text;
} connectivity_stats;

/* Per-dataset units of the stage (units.c; docs/corpus.md "Adding or removing a
 * dataset"): with inputs.datasets the packed graphs of each dataset (fc, rwse, adj,
 * flagged per graph, as gathered for a shard) in <stage folder>/parts/<dataset>/data.bin,
 * keyed by the code version, the stage's options, on_error and the key of the dataset's
 * parcellate unit; a unit whose key is the previous output's is read instead of
 * computed. Graphs are in the global list's order, so a dataset's graphs are one range. */
typedef struct connectivity_units {
    int n;              /* datasets (runs of /subjects/dataset); 0: no units */
    char **name;        /* n (not owned) */
    char (*key)[65];    /* n; "" when the upstream unit has no key (neither reused nor kept) */
    int *reuse;         /* n: 1 = linked from the previous output */
    int *fd;            /* n: reused: open for reading; kept: open for writing; else -1 */
    int64_t *bytes;     /* n: data.bin sizes */
    int *unit;          /* S: the unit of each subject */
    int64_t *off;       /* G: each graph's offset in its unit's data.bin */
} connectivity_units;

/* Collective: units over the subjects' dataset names ds (S; NULL: no units) and the G
 * graphs of subject subj[i] and packed size gbytes[i]; reused units linked from
 * o->units_prev into outdir, the others created there. */
int connectivity_units_open(bgfm_ctx *ctx, const connectivity_opts *o, const char *outdir,
                            char *const *ds, int64_t S, int64_t G, const int64_t *subj,
                            const int64_t *gbytes, connectivity_units *u);
/* 1 when graph i of subject s comes from a reused unit. */
int connectivity_units_reused(const connectivity_units *u, int64_t s);
/* Graph i (subject s, n packed bytes) from its reused unit into buf. */
int connectivity_units_read(connectivity_units *u, int64_t s, int64_t i, void *buf, int64_t n,
                            bgfm_err *e);
/* The packed graphs [g0, g1) (a gathered shard, gbytes[i] each) into the kept units. */
int connectivity_units_put(connectivity_units *u, const int64_t *subj, int64_t g0, int64_t g1,
                           const char *buf, const int64_t *gbytes, bgfm_err *e);
/* Collective, when every shard is written: rank 0 writes the kept units' keys. */
int connectivity_units_commit(bgfm_ctx *ctx, const char *outdir, connectivity_units *u);
void connectivity_units_free(connectivity_units *u);

/* Collective over ctx->comm: read `ts_path` (timeseries.h5), write index.h5 and
 * shard-NNNNN.h5 into `outdir` (which must exist). Returns an agreed status:
 * BGFM_EIO missing/unreadable input or unwritable output, BGFM_EDATA bad data
 * (message names the subject, atlas and region). Shard contents do not depend on
 * the rank count. */
int connectivity_stage_exec(bgfm_ctx *ctx, const connectivity_opts *o, const char *ts_path,
                            const char *outdir, connectivity_stats *st);

#endif
