/* dist.h: data parallelism for pretraining over ctx->comm: contiguous slices of a
 * global batch, the gradient all-reduce, the NT-Xent loss over the GLOBAL batch
 * (row-sharded: each rank evaluates its own anchors' rows), and a cross-rank
 * parameter identity check. Not the training loop (pretrain.h) and
 * not checkpoint I/O (ckpt.h). Every function taking a ctx is collective, and makes the
 * same MPI calls on every rank whatever failed locally: it returns this rank's status
 * (ctx->err set) and the caller agrees (bgfm_ctx_agree) before its next collective. */
#ifndef BGFM_DIST_H
#define BGFM_DIST_H

#include <stdint.h>

#include "bgfm/ctx.h"

/* Rank `rank` of `size` owns graphs [*lo, *lo + *cnt) of a global batch of n graphs:
 * contiguous, balanced (sizes differ by at most 1, the first n % size ranks get one
 * more); *cnt == 0 when n < size for the last ranks. */
void dist_slice(int64_t n, int size, int rank, int64_t *lo, int64_t *cnt);

/* In place: g (n floats) becomes the sum of every rank's g (MPI_Allreduce, in pieces
 * of at most 2^30 elements). No-op on one rank. */
int dist_allreduce_sum(bgfm_ctx *ctx, float *g, int64_t n);
/* Gradient all-reduce in two buckets overlapped with the backward pass: the tail
 * bucket is posted (MPI_Iallreduce) from model_backward_hooked's hook, the head is
 * reduced after the backward, then the tail is waited for. Every rank posts the same
 * calls in the same order, also a rank with no graph in the step. */
typedef struct dist_bucket {
    bgfm_ctx *ctx;
    float *g;
    MPI_Request req;
    int64_t off;
    int posted, rc;
} dist_bucket;
void dist_bucket_init(dist_bucket *b, bgfm_ctx *ctx, float *g);
void dist_bucket_hook(void *arg, int64_t off, int64_t n); /* a model_grad_hook */
/* Reduce [0, off) and wait for the tail; returns 0 or a status with ctx->err set. */
int dist_bucket_finish(dist_bucket *b);

/* Workspace of the row-sharded NT-Xent for global batches of up to B_max graphs on
 * ctx->size = R ranks. Per rank: the gathered projections (2 B_max, P) (none on one
 * rank), its similarity rows (2 ceil(B_max / R), 2 B_max) and 2 doubles + 2 floats
 * per anchor: linear in the global batch. `replicated` (the test hook BGFM_TEST_NTXENT=replicated,
 * kept for bench/ntxent_scaling.sh only) selects the previous scheme, every rank
 * evaluating all (2 B_max)^2 similarities: za..scratch are used only then. */
typedef struct dist_ntx {
    int64_t B_max, P, bytes;    /* bytes: what init allocated */
    int replicated;
    double compute_s;           /* seconds of the last call spent in the local kernels */
    float *zg;                  /* (2 B_max, P) rank-major: rank r's b_r view-a rows, then its view-b rows */
    float *s;                   /* (2 ceil(B_max / R), 2 B_max) */
    double *st;                 /* (2 B_max, 2): (log-sum-exp, loss term) per anchor, rank-major */
    float *work;                /* (4 B_max): pass 2's per-anchor log-sum-exps */
    int *cnt, *displ, *cnt2, *displ2; /* (R) MPI_Allgatherv counts / offsets: projections, st */
    float *za, *zb, *dza, *dzb; /* replicated: (B_max, P) each */
    float *scratch;             /* replicated: 4 B_max^2 */
} dist_ntx;

int dist_ntx_init(dist_ntx *d, const bgfm_ctx *ctx, int64_t B_max, int64_t P, bgfm_err *e);
void dist_ntx_free(dist_ntx *d);

/* NT-Xent (model.md section 4) over a global batch of n graphs whose projections are
 * spread over the ranks by dist_slice: z (2 b, P) holds this rank's b view-a rows then
 * its b view-b rows (b may be 0). Every rank's rows are gathered (one MPI_Allgatherv);
 * each rank computes the similarity rows of its own 2b anchors against all 2n
 * (layer_ntxent_rows), the anchors' log-sum-exps and loss terms are gathered (a second
 * MPI_Allgatherv, 16 bytes per anchor), and each rank ADDS into dz (2 b, P) the exact
 * gradient of the global loss with respect to its own rows: its rows of dL/dS and, S
 * being symmetric, its columns, which it rebuilds from its own rows and the gathered
 * log-sum-exps (layer_ntxent_rows_backward): no gradient crosses ranks. Temperature tau;
 * gradient scaled by `scale` (the weight lambda_cl). *loss is the (unweighted) global
 * loss, summed in global anchor order from the gathered terms: the same bits on every
 * rank. Per rank 2 (2b)(2n)P multiply-adds. */
int dist_ntxent(bgfm_ctx *ctx, dist_ntx *d, const float *z, float *dz, int64_t n, int64_t P,
                double tau, double scale, double *loss);

/* Debug check (BGFM_DEBUG_SYNC=1): SHA-256 of w (n floats) compared across ranks;
 * BGFM_EINTERNAL on every rank, naming the ranks and `step`, when any differs. */
int dist_check_identical(bgfm_ctx *ctx, const float *w, int64_t n, const char *what, int64_t step);

#endif
