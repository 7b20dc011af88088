/* batches.h: the epoch plan of pretraining: which graphs training reads (the protocol
 * and the datasets' roles), batches of one atlas, each epoch's order, and each graph's
 * positive partner (another window of its scan), all drawn from the counter-based
 * generator so that no plan depends on the rank count.
 * Not the training loop (pretrain.h) and not the model (model.h). */
#ifndef BGFM_BATCHES_H
#define BGFM_BATCHES_H

#include <stdint.h>

#include "bgfm/ctx.h"
#include "bgfm/graphs.h"
#include "bgfm/pretrain.h"

typedef struct batch_plan {
    int A;                /* store atlases */
    int64_t *cnt;         /* graphs per atlas */
    int64_t **list;       /* global indices per atlas (store order) */
    int64_t *nb;          /* batches per atlas per epoch */
    int64_t spe;          /* steps per epoch */
    int64_t *perm;        /* scratch: per-atlas shuffled copy (concatenated) */
    int64_t *off;         /* offsets of each atlas in perm */
    int32_t *ord_atlas;   /* (spe) batch order of this epoch */
    int64_t *ord_batch;
    int64_t *used, n_used; /* store indices of every graph training reads, ascending */
    /* GCL partners: the graphs training reads grouped by (atlas, scan), each group in
     * ascending index order; graph g's group is mem[gstart[g] .. gstart[g] + glen[g]) */
    int64_t *mem, *gstart, *glen;
} batch_plan;

/* Frees every array (accepts a zeroed plan) and zeroes p. */
void batch_plan_free(batch_plan *p);
/* The graphs training reads, per atlas, and the batches per epoch. */
int batch_plan_make(batch_plan *p, graphs_store *gs, const pretrain_opts *o, bgfm_err *e);
/* The (atlas, scan) groups the positive partners are drawn from. */
int batch_plan_partners(batch_plan *p, graphs_store *gs, bgfm_err *e);
/* Graph g's positive partner in epoch ep (g itself when its scan has one graph). */
int64_t batch_plan_partner(const batch_plan *p, uint64_t seed, int64_t ep, int64_t g);
/* The order of epoch ep: ord_atlas / ord_batch and the shuffled graphs in perm. */
void batch_plan_epoch(batch_plan *p, uint64_t seed, int64_t ep);

#endif
