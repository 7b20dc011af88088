/* head.h: the task head of adaptation (docs/adapt.md): a linear map from the graph
 * embedding (width H) to K class logits (softmax cross-entropy) or to one value (squared
 * error), its loss and gradients over a batch, and its own AdamW state. Its parameters
 * are one flat buffer, W (K x H) then b (K), named head/W and head/b in dumps.
 * Not the encoder (model.h) and not the training loop (finetune.h). */
#ifndef BGFM_HEAD_H
#define BGFM_HEAD_H

#include <stdint.h>

#include "bgfm/ctx.h"
#include "bgfm/optim.h"

enum head_task { HEAD_CLASSIFY = 1, HEAD_REGRESS = 2 };

typedef struct head {
    int task;
    int K;          /* outputs: classes (>= 2), or 1 for regression */
    int64_t H;      /* input width */
    int B_max;
    int64_t n;      /* K H + K parameters */
    float *w, *g;   /* parameters and gradients (owned) */
    float *m, *v;   /* AdamW moments (owned) */
    uint8_t *decay; /* weight decay on W only */
    int64_t t;      /* AdamW steps taken */
    float *out;     /* (B_max, K) logits or values of the last forward */
    float *dout;    /* (B_max, K) */
    float *dE;      /* (B_max, H) gradient with respect to the embeddings */
} head;

int head_init(head *h, int task, int K, int64_t H, int B_max, bgfm_err *e);
void head_free(head *h);
/* Zero weights and bias (the start of every fit: uniform class probabilities, or the
 * training mean of a standardised target) and moments. */
void head_reset(head *h);
/* Forward of B embeddings E (B, H) and the loss against the targets (cls[i] in 0..K-1,
 * or y[i], standardised): returns the SUM over the B graphs of each graph's loss
 * (cross-entropy, or (out - y)^2), each graph's in per[i] when per != NULL. With
 * scale > 0 also dout = scale * d(sum)/d(out), then ADDS the parameter gradients into
 * h->g and writes h->dE = dout W (so scale = 1 / global batch gives the gradients of the
 * global mean). */
double head_loss(head *h, const float *E, int B, const int *cls, const float *y, double scale,
                 double *per);
/* Predictions of B embeddings: class probabilities (B, K) or values (B), in double. */
void head_predict(head *h, const float *E, int B, double *out);
/* One AdamW step on the head (lr factor 1). */
void head_adamw(head *h, double lr, const optim_cfg *c);

#endif
