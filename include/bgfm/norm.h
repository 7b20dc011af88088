/* norm.h: fitting the model's population input normalisation (docs/model.md section 1):
 * per atlas, the mean and standard deviation of every FC entry over a list of graphs,
 * written into the model's norm/<atlas>/mean and norm/<atlas>/std buffers. The sums are
 * fixed-point integers, so the result has the same bits for any number of ranks.
 * Not the transform itself (model.c applies it in model_forward). */
#ifndef BGFM_NORM_H
#define BGFM_NORM_H

#include <mpi.h>
#include <stdint.h>

#include "bgfm/ctx.h"
#include "bgfm/graphs.h"
#include "bgfm/model.h"

#define NORM_SD_FLOOR 0.01 /* an entry varying less across people is not amplified */
#define NORM_CLIP 8.0      /* |FC| clipped here for the sums (Fisher z of r = 0.9999998) */

/* Collective over comm: graphs[0..n) (store indices, any order; rank r reads those with
 * position i % size == r) -> m's buffers, for every atlas of the model that has graphs
 * (atlases without a graph keep mean 0, std 1). Does nothing unless m->cfg.norm. The
 * same status on every rank. */
int norm_fit(MPI_Comm comm, bgfm_err *e, model *m, graphs_store *gs, const int64_t *graphs,
             int64_t n);

#endif
