/* optim.h: AdamW with decoupled weight decay on matrices only, global gradient-norm
 * clipping, linear warm-up + cosine learning rate, and the mask-ratio schedule
 * (model.md section 5). Works on the model's flat buffers: m and v share the layout of
 * the parameters, so a step is one loop. Not the training loop (pretrain.h). */
#ifndef BGFM_OPTIM_H
#define BGFM_OPTIM_H

#include <stdint.h>

#include "bgfm/ctx.h"
#include "bgfm/model.h"

typedef struct optim_cfg {
    double lr, beta1, beta2, eps, weight_decay, clip;
    int64_t warmup, total_steps;
} optim_cfg;

typedef struct optim {
    int64_t n;
    float *m, *v;    /* owned, same layout as model.w */
    uint8_t *decay;  /* owned: 1 where weight decay applies (per parameter) */
    int64_t t;       /* steps taken */
} optim;

int optim_init(optim *o, const model *md, bgfm_err *e);
void optim_free(optim *o);
/* Learning rate of step s (0-based): lr * (s+1)/warmup during warm-up, then cosine
 * from lr down to 0 at total_steps. */
double optim_lr(const optim_cfg *c, int64_t s);
/* Global L2 norm of g (double accumulation); scales g by clip/norm when norm > clip
 * (clip <= 0: no clipping). Returns the norm before clipping. */
double optim_clip(float *g, int64_t n, double clip);
/* One AdamW update of w from g at learning rate lr; increments o->t. */
void optim_adamw(optim *o, float *w, const float *g, double lr, const optim_cfg *c);
/* The same update on caller-owned buffers of n floats: moments mom/var, the weight-decay
 * mask decay (NULL: none), a per-parameter learning-rate factor scale (NULL: 1; 0 freezes
 * the parameter), t the step number counting this one (>= 1). optim_adamw calls it with
 * scale NULL; fine-tuning (docs/adapt.md) with its layer-wise factors. */
void optim_adamw_buf(float *w, const float *g, float *mom, float *var, const uint8_t *decay,
                     const float *scale, int64_t n, int64_t t, double lr, const optim_cfg *c);
/* Mask ratio of `epoch` (0-based) out of `epochs`: linear from r0 to r1. */
double optim_mask_ratio(double r0, double r1, int64_t epoch, int64_t epochs);

#endif
