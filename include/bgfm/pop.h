/* pop.h: fitting the model's population head (docs/model.md section 11). Per atlas, over
 * the graphs training read: the FC upper triangle as the model sees it (input-normalised),
 * centred; its leading principal subspace (at most POP_PCA components, through the Gram
 * matrix); in it, the directions along which people differ most relative to how one
 * person's windows differ: the generalised eigenvectors of the between-scan covariance
 * against the within-scan covariance shrunk towards its mean eigenvalue. The pop_rank
 * leading ones, mapped back to the triangle, are pop/<atlas>/W; pop/<atlas>/b centres.
 * No label is read: only which graphs are windows of one scan.
 * Not the head's use (model_pop_apply, model.c). */
#ifndef BGFM_POP_H
#define BGFM_POP_H

#include <stdint.h>

#include "bgfm/ctx.h"
#include "bgfm/graphs.h"
#include "bgfm/model.h"

#define POP_PCA 150 /* principal components the discriminant is solved in (at most) */

typedef struct pop_fit_info {
    int64_t graphs[MODEL_MAX_ATLASES];  /* graphs fitted per model atlas */
    int64_t scans[MODEL_MAX_ATLASES];   /* of them, scans with 2 or more windows */
    int dims[MODEL_MAX_ATLASES];        /* directions fitted (<= pop_rank; rows after: 0) */
    double ratio[MODEL_MAX_ATLASES];    /* the leading between / within variance ratio */
} pop_fit_info;

/* The numerical core, on one atlas's rows: Z (n, T) float, row-major; scan[i] the scan of
 * row i; shrink in [0, 1]; W (r, T) and b (r) written (rows past the fitted directions
 * zero). Returns the number of directions fitted: 0 when no scan has two rows (the head
 * stays zero), or -1 with e set; ratio: the leading between / within ratio; multi: the
 * scans with two or more rows. Deterministic: the same bits for the same rows. */
int pop_fit_rows(const float *Z, int64_t n, int64_t T, const int64_t *scan, int r, double shrink,
                 float *W, float *b, double *ratio, int64_t *multi, bgfm_err *e);

/* Collective over ctx's communicator: the head of every atlas of m that has graphs among
 * graphs[0..n), written into m's pop/ buffers. Each rank reads a contiguous block of the
 * list; the rows are gathered in list order, and every rank solves the same problem, so
 * the result has the same bits for any rank count. Nothing unless m->cfg.pop_rank. The
 * same status on every rank. */
int pop_fit(bgfm_ctx *ctx, model *m, graphs_store *gs, const int64_t *graphs, int64_t n,
            double shrink, pop_fit_info *info);

#endif
