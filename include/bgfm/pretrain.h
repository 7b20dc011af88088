/* pretrain.h: the `pretrain` stage: GMAE + GCL training of ONE model over the graphs
 * of every atlas (batches of one atlas at a time, interleaved per epoch by the
 * counter-based generator), AdamW, checkpoints and exact resume.
 * Not the model math (model.h) and not the file format (ckpt.h). */
#ifndef BGFM_PRETRAIN_H
#define BGFM_PRETRAIN_H

#include <stdint.h>

#include "bgfm/config.h"
#include "bgfm/ctx.h"
#include "bgfm/model.h"
#include "bgfm/optim.h"

/* Resolved options of one training run (the stage's `with:` keys). */
typedef struct pretrain_opts {
    model_cfg arch;          /* H, nh, F, L, Ld, P, N_max (0: largest atlas N) */
    model_hp hp;             /* mode, lambdas, tau, p_node, p_edge, p_drop, mask_columns */
    double mask_r0, mask_r1; /* mask ratio schedule over epochs */
    optim_cfg opt;           /* lr, weight_decay, clip, warmup (total steps computed) */
    int64_t epochs, batch_size, checkpoint_every, keep_checkpoints;
    int strict;              /* protocol: strict (only graphs with label < 0 are read) */
    int scan_pairs;          /* gcl_pairs: scan (view b from another window of the scan) */
    double pop_shrink;       /* population head: within-scan covariance shrinkage (pop.h) */
    double pop_site_shrink;  /* population head, harmonised: each site's covariance shrinkage */
    double pop_outlier_z;    /* population head: people who stand apart by it left out (0: none) */
    double pop_outlier_share; /* population head: people who hold it of a direction left out (0: off) */
    int pop_auto;            /* pop_rank: auto: the held-out rule chooses the rank (pop.h) */
    int pop_site;            /* pop_site: POP_SITE_NONE, _CENTRE, _HARMONISE, _AUTO (pop.h) */
    int pop_solver;          /* pop_solver: PCA_SOLVER_AUTO, _EXACT, _RANDOMISED (pca.h) */
    int embed_auto;          /* embedding: auto: pop when the rule finds a gap, else pcs+pop */
    int embed_pcs;           /* embedding: pcs+pop asked for (whatever the rule finds) */
    uint64_t seed;
    const char *init_path;   /* checkpoint to start from, or NULL: random init */
    const char *resume_from; /* checkpoint file or folder to resume from when outdir has no
                                checkpoint (another rank count), or NULL */
    const char *stage_name;  /* for metrics */
    const char *config_text; /* resolved config, stored in checkpoints */
    int64_t stop_after;      /* test hook: as if signalled after this step (0 off) */
    int64_t max_memory;      /* bytes per rank (max_memory_per_rank), 0 = no limit */
    const char *pipeline_file; /* for the memory-limit message (may be NULL) */
    const bgfm_pipeline *pipe; /* roles of inputs.datasets: only graphs of pretrain-role
                                  datasets are read; NULL: every dataset */
} pretrain_opts;

typedef struct pretrain_result {
    int64_t steps, graphs;
    double bytes_read;            /* graph bytes this rank read (its slices only) */
    double first_loss, last_loss; /* mean weighted loss of the first and last epoch */
    double seconds;
} pretrain_result;

/* Collective over ctx->comm: data-parallel training (docs/pretrain.md). Each global
 * batch is split into contiguous slices, one per rank (a rank may get none); every
 * rank reads only its graphs from the store at `graphs`; gradients are summed with
 * MPI_Allreduce; NT-Xent runs over the global batch; every rank holds the same
 * parameters after each step. Writes outdir/checkpoints/ckpt-<step>.h5 (parallel HDF5)
 * and outdir/final.h5, appends per-step lines to `metrics` (pass it on rank 0 only,
 * NULL elsewhere). Resumes from the newest valid checkpoint in outdir (else
 * o->resume_from). Stops with BGFM_SIGNALLED after checkpointing when
 * bgfm_ctx_stop_requested says so (the caller installs the handlers). */
/* The stage kind's upstream_digest (stage.h; reads.c): what training reads of the graph
 * store in `upstream_dir`, hashed: the store's atlases and RWSE steps, every graph of a
 * pretrain-role dataset (global index, atlas, subject row, window, label, nodes,
 * dataset, participant) and each such dataset's connectivity unit key (which fixes its
 * graphs' values). 0 when the store or a unit key cannot be read. Rank-local. */
int pretrain_upstream_digest(const bgfm_pipeline *p, const bgfm_stage_cfg *s,
                             const char *upstream_dir, char out[65]);

int pretrain_train(bgfm_ctx *ctx, const pretrain_opts *o, const char *graphs, const char *outdir,
                   const char *metrics, pretrain_result *res);

#endif
