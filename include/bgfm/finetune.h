/* finetune.h: the `finetune` and `prompt` stages (docs/adapt.md): the pretrained (or a randomly
 * initialised) encoder plus a task head (head.h), trained per cross-validation cell with
 * cross-entropy or squared error, data-parallel over the ranks like pretraining; what is
 * trained (everything, the head, the last blocks) with layer-wise learning-rate decay;
 * the epoch chosen on an inner validation split of the training fold's subjects; the
 * test fold predicted once, at the end. `prompt` shares all of it with a frozen encoder
 * and learned graph prompts per atlas (model.h model_prompt) in front of it. Folds and
 * few-shot subsets are the probe's
 * (probe.h, regress.h) or a fold_file. What the stage's files share; not a public API.
 * Not the encoder (model.h), not the head's math (head.h). */
#ifndef BGFM_FINETUNE_H
#define BGFM_FINETUNE_H

#include <stdint.h>

#include "bgfm/graphs.h"
#include "bgfm/head.h"
#include "bgfm/model.h"
#include "bgfm/optim.h"
#include "bgfm/probe_stage.h"
#include "bgfm/stage.h"

enum ft_train { FT_TRAIN_ALL = 0, FT_TRAIN_HEAD = 1, FT_TRAIN_LAST = 2 };
#define FT_NENC 2 /* encoders: pretrained, random_init (probe_feat_name order) */
#define FT_NMET 3 /* per cell: auc (or r2), accuracy, balanced accuracy */

typedef struct ft_opts {
    const char *kind;        /* "finetune" or "prompt": messages, report and metrics names */
    int prompt;              /* 1: the `prompt` stage: frozen encoder, graph prompts + head */
    int pfeat, pedge;        /* prompt: the feature and/or the edge prompt */
    int meta;                /* prompt: 1 = meta: reptile */
    double margin;           /* prompt: edge_margin */
    int regress;             /* 1: regression of `target` */
    const char *target;
    int all_targets;
    int folds, repeats;
    uint64_t seed;
    int n_k;
    int64_t k[PROBE_MAX_K];  /* few-shot: per class (classification) or subjects; 0 = all */
    int enc[FT_NENC];        /* 1: this encoder is fitted */
    int train, last_blocks;
    double llrd;
    int64_t epochs, batch_size, patience;
    double val_fraction;
    float dropout;
    optim_cfg opt;
    int64_t checkpoint_every; /* epochs between checkpoints (0: only when stopped) */
    int64_t stop_after;       /* test hook: behave as if signalled after this many epochs */
    long ckpt_pause_ms;       /* test hook: pause before a checkpoint's completion mark */
} ft_opts;

/* Meta-learned prompt initialisation (the prompt stage's `meta: reptile`; meta.c,
 * docs/adapt.md "Meta-learned prompts"): tasks are (column, atlas) pairs, a column being
 * a categorical participants.tsv column with the label's number of classes. */
typedef struct ft_meta {
    int n_cols;
    char *col[PROBE_MAX_TARGETS]; /* task columns, or with ext the meta datasets (owned) */
    int *cls;                     /* (n_cols, ns) class of each subject, -1 without a value;
                                     ns of the pool with ext, of the probed subjects else */
    int n_atl;                    /* store atlases: tasks = n_cols x n_atl */
    int64_t steps, inner, shots;  /* outer iterations, inner steps per task, k per class */
    double eps;                   /* outer step size, annealed linearly to 0 */
    /* ext (meta_datasets): the pool is the labelled subjects of other datasets of the
     * graph store (pool: g, atl, subj, ns, sid, nl, A), the same for every cell and
     * disjoint from the probed subjects; each column is a dataset, its classes its own
     * label values in ascending code order; seen, ord, gbuf: the trainer's scratch for
     * the pool while meta-training */
    int ext;
    int own_label;                /* the evaluated label is a task column: few-shot cells read
                                     more of their task's labels than k (not k-shot) */
    probe_data pool;
    uint8_t *seen;
    int64_t *ord, *gbuf;
} ft_meta;

/* One cross-validation cell's subjects: 1 = train, 2 = validation, 3 = test, 0 = out. */
enum { FT_OUT = 0, FT_TRAIN = 1, FT_VAL = 2, FT_TEST = 3 };

/* What one fit returns. */
typedef struct ft_fit_out {
    int64_t best_epoch, epochs_run, steps;
    double best_val, seconds;
    int64_t n_train, n_val, n_test; /* subjects */
    double *val_curve;              /* (epochs) validation loss per epoch, NaN after a stop */
    double *read;                   /* meta: (ns, then the external pool's) bit 1 = read by
                                       the meta-training, bit 2 = by the fit (train,
                                       validation, test); NULL: none */
} ft_fit_out;

/* Everything a fit needs besides the cell: the store, the probed graphs, the encoder
 * to start from and the working copies. */
typedef struct ft_trainer {
    bgfm_ctx *ctx;
    const ft_opts *o;
    graphs_store *gs;
    const probe_data *d;
    const int *amap;        /* store atlas -> model atlas */
    model m;                /* the model being trained (its w reset from a start model) */
    int64_t n_enc;          /* trained prefix of m: input layer, embeddings, blocks, readout */
    float *scale;           /* (n_enc) learning-rate factor per parameter, 0 = frozen */
    float *mom, *var;       /* AdamW moments, the model's layout (n_params; the trained
                               prefix n_enc moves, the rest stays 0) */
    uint8_t *decay;         /* (n_enc) */
    float *best_w, *best_h; /* copies at the best epoch */
    head h;
    model_ws ws;
    int Bl;                 /* graphs per rank and step (ceil(batch / ranks)) */
    float *fc, *rw;
    uint8_t *adj;
    int64_t *gbuf, *lst, *ord; /* scratch: store indices, per-atlas lists, batch order */
    int *cls;
    float *y;
    double *pred;           /* (nl, K) predictions of every probed graph (eval) */
    int64_t n_trainable;
    /* prompt stage: the prompts of every store atlas in one buffer (feature N x H, then
     * edge N(N-1)/2, per model atlas at pf / pe, -1: none), gradients, AdamW moments, the
     * best epoch's copy, and the model_prompt handed to the encoder */
    int64_t pn, pf[MODEL_MAX_ATLASES], pe[MODEL_MAX_ATLASES];
    float *pw, *pg, *pm, *pv, *pbest;
    model_prompt pr;
    const ft_meta *meta;    /* prompt with meta: the Reptile initialisation, else NULL */
    /* with meta: the initialisation before every fit (ft_meta_train, set by the stage) */
    int (*meta_init)(struct ft_trainer *t, const uint8_t *role, uint64_t key, double *read);
    uint8_t *seen;          /* (ns) subjects whose graphs this rank read (meta's record) */
    float *theta;           /* meta: (pn + head) the initialisation being meta-learned */
} ft_trainer;

/* ---- train.c (collective over ctx->comm) ---- */
/* Allocate the trainer for model architecture `arch` (a loaded model) and K outputs. */
int ft_trainer_init(ft_trainer *t, bgfm_ctx *ctx, const ft_opts *o, graphs_store *gs,
                    const probe_data *d, const int *amap, const model *arch, int K);
void ft_trainer_free(ft_trainer *t);
/* Learning-rate factors of train / last_blocks / llrd over the model's prefix; returns
 * the number of trained parameters (head included). Not collective. */
int64_t ft_scales(const model *m, int64_t n_enc, const ft_opts *o, int64_t head_n, float *scale);
/* Where a resumed fit continues (docs/adapt.md "Checkpoints"): after `epoch` epochs and
 * `step` steps, with the trainer's weights, moments, head and best copies and the fit's
 * out fields (best_epoch, best_val, epochs_run) restored by the caller; stopped: the fit
 * had ended its epochs (early stop) and only the test remains. */
typedef struct ft_resume {
    int64_t epoch, step;
    int stopped;
} ft_resume;
/* Called on every rank after each epoch (after the validation and the early-stopping
 * decision `stopped`): the stage checkpoints there and polls for stop requests.
 * Collective; returns an agreed status (BGFM_SIGNALLED stops the fit). */
typedef int (*ft_epoch_hook)(void *arg, ft_trainer *t, const ft_fit_out *out, int64_t step,
                             int stopped);
/* Fit one cell from `start` (its weights are copied; with rs the restored state is used
 * instead): role[s] of every subject (FT_*), target per subject: cls (classification) or
 * ys (standardised regression target); `key` keys the cell's shuffles. On return the test
 * subjects' predictions are in oof (ns, K) rows (subject means over their graphs; other
 * rows untouched). hook may be NULL. */
int ft_fit(ft_trainer *t, const model *start, const uint8_t *role, const int *cls,
           const double *ys, uint64_t key, const ft_resume *rs, ft_epoch_hook hook, void *arg,
           double *oof, ft_fit_out *out);

/* ---- meta.c ---- */
/* Task columns and classes from the participants table at `path` (rank-local): exit 3
 * naming the column when it is absent or has another number of classes than the label,
 * or when there are fewer than two tasks. */
int ft_meta_prepare(const char *path, const char *const *cols, int n_cols, const probe_data *d,
                    ft_meta *m, bgfm_err *e);
/* With meta_datasets (rank-local): the pool from the graphs of the named datasets with a
 * label whose subject is not a probed one (d's, through d->map: the same person under
 * inputs.subject_map is left out); exit 3 naming the dataset when its labels among them
 * are not d->K values, or when there are fewer than two tasks. */
int ft_meta_prepare_datasets(graphs_store *gs, const char *gpath, const char *const *names,
                             int n, const probe_data *d, ft_meta *m, bgfm_err *e);
void ft_meta_free(ft_meta *m);
/* Reptile (collective): from the trainer's current prompts and head, `steps` episodes
 * on tasks drawn over the pool: the subjects with role[s] == FT_OUT (neither training,
 * validation nor test of the cell), or with ext the external pool; leaves the learned
 * initialisation in the prompts and head, the moments zero. key keys the draws. With
 * ext, read (the cell's record, ns + pool.ns) gets bit 1 for the pool subjects read. */
int ft_meta_train(ft_trainer *t, const uint8_t *role, uint64_t key, double *read);
/* read[s] |= bit for the subjects of t->d any rank read (t->seen); collective. */
int ft_mark_read(ft_trainer *t, double *read, int bit);
/* The train step of train.c on global batch gi[0..n) of one atlas with classes cls (per
 * subject), for meta.c. */
int ft_train_step(ft_trainer *t, const int64_t *gi, int64_t n, const int *cls, int64_t step,
                  double lr, double *loss_sum);

/* ---- resume.c (collective) ---- */
/* The state a checkpoint carries besides the model and its moments: the trainer's head
 * and best copies, the current fit and every finished cell's results. */
typedef struct ft_ckpt {
    bgfm_ctx *ctx;
    const char *dir;        /* outdir/checkpoints */
    int64_t seq;            /* epochs done over the whole run: the checkpoint's number */
    int64_t cell;           /* linear index of the cell being fitted */
    struct ft_results *p;
} ft_ckpt;
/* Write checkpoints/ckpt-<seq>.h5 (ckpt_save_par: model, moments, state, extras; the two
 * newest are kept). */
int ft_ckpt_save(ft_ckpt *c, ft_trainer *t, const ft_fit_out *out, int64_t step, int stopped);
/* The newest valid checkpoint of c->dir (falling back past damaged ones with a warning):
 * 1 when one was loaded (trainer, results, c->cell, c->seq, *rs, out filled), 0 when
 * there is none, minus the status on an error (the same on every rank). */
int ft_ckpt_load(ft_ckpt *c, ft_trainer *t, ft_resume *rs, ft_fit_out *out);

/* ---- report.c (rank 0) ---- */
typedef struct ft_results {
    int64_t epochs;   /* the curve's row length */
    int nk, main_k, R, F, K;
    int64_t ns;
    int64_t ks[PROBE_MAX_K + 1];
    double *cell;     /* (FT_NENC, nk, R, F, FT_NMET) */
    double *info;     /* (FT_NENC, nk, R, F, FT_NINFO) */
    double *curve;    /* (FT_NENC, nk, R, F, epochs) validation losses */
    double *oof;      /* (FT_NENC, R, ns, K) test predictions at the main level */
    double *keff;     /* (nk) */
    double *mread;    /* meta: (FT_NENC, nk, R, F, mw) the fit_out.read of every cell */
    int64_t mw;       /* meta: a cell's read record: ns, then the external pool's subjects */
    double *msubj;    /* meta: (FT_NENC, nk, R, F) the meta-training pool's size */
    int64_t trainable, prompt_params;
    double wall;
} ft_results;
#define FT_NINFO 8 /* best_epoch, epochs_run, best_val, seconds, n_train, n_val, n_test, steps */

typedef struct ft_report_ctx {
    const bgfm_stage_run *r;
    const ft_opts *o;
    const probe_data *d;
    const ft_results *p;
    const char *ckpt, *fold_file;
    int64_t n_params;
    int64_t prompt_params; /* prompt: the prompts' share of trainable_params */
    const ft_meta *meta;   /* prompt with meta, else NULL */
    graphs_store *gs;      /* the atlas names of the meta tasks */
} ft_report_ctx;

int ft_write_report(const ft_report_ctx *c, bgfm_err *e);

#endif
