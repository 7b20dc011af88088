/* block.h: one pass of the encoder or the decoder (docs/model.md section 2) over a
 * model_run: the input embedding and the stacked blocks (GCN, self-attention, FFN, each
 * with its residual LayerNorm and dropout), forward and backward, on the workspace's
 * thread team. Internal to the model (model.c is the only user). Not the views, the
 * losses or the readout (model.c). */
#ifndef BGFM_BLOCK_H
#define BGFM_BLOCK_H

#include <stdint.h>

#include "bgfm/layers.h"
#include "bgfm/model.h"

/* Keys of a run's dropout draws: rng(seed, RNG_DROPOUT, step, gidx[b], site + ...). */
typedef struct drop_keys {
    float p;
    uint64_t seed, step, site;
    const int64_t *gidx;
} drop_keys;

/* The CSR of graph b's normalised adjacency in run r. */
static inline layer_csr blk_csr(const model_run *r, int b) {
    layer_csr c;
    int64_t n = r->n;
    c.n = r->n;
    c.rowptr = r->rowptr + (int64_t)b * (n + 1);
    c.col = r->col + (int64_t)b * n * n;
    c.val = r->val + (int64_t)b * n * n;
    return c;
}

/* OpenBLAS on one thread while the team runs (returns the count to restore). */
int blk_team_begin(const model_ws *ws);
void blk_team_end(int nt);
/* h0 = W_in x + b_in + E_a[i] (token row t_a) for the n nodes of each graph; and its
 * parameter gradients from dh0. */
void blk_embed(const model *m, model_run *r, model_ws *ws, int B, int atlas, int N);
void blk_embed_backward(model *m, const model_run *r, model_ws *ws, int B, int atlas,
                                   int N, const float *dh0);
/* The run's blocks forward; backward from dhout (returns the buffer holding d/dh0). */
void blk_run_forward(const model *m, model_run *r, const model_block *blocks, model_ws *ws,
                        int B, const drop_keys *dk);
float *blk_run_backward(model *m, const model_run *r, const model_block *blocks, model_ws *ws,
                           int B, const drop_keys *dk, const float *dhout);
/* Dropout keys of run `run` (0: encoder view a, 1: view b, 2: decoder). */
drop_keys blk_keys_for(const model_ws *ws, int run);

/* ---- graph prompts (prompt.c; model_prompt in model.h) ---- */
/* Graph b's prompted weights into pr->w and the dense CSR of its Ahat (all n = N nodes). */
void blk_prompt_csr(layer_csr *c, const model_prompt *pr, const uint8_t *adj, int N, int b);
/* h0's region rows += the feature prompt (full graphs of N nodes). */
void blk_prompt_feat(const model_prompt *pr, model_run *r, int B, int N, int64_t H);
/* Gradients of the prompts: gfeat += the region rows of dh0 summed over the graphs; gedge
 * from pr->dA (d/dAhat per graph, summed over the blocks) through the normalisation and
 * the sigmoid. */
void blk_prompt_backward(const model_prompt *pr, const model_run *r, int B, int N, int64_t H,
                         const float *dh0);

#endif
