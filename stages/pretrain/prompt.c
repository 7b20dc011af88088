/* prompt.c: graph prompts in front of the encoder (model.h model_prompt, docs/adapt.md
 * "prompt"): the prompted edge weights w_ij = sigmoid(P_ij + margin (2 A_ij - 1)), the
 * dense normalised adjacency Ahat = Dt^-1/2 (W + I) Dt^-1/2 the blocks then use, the
 * feature prompt added to the input rows, and the gradients of both prompts.
 * Not the blocks (block.c) and not the training of the prompts (stages/finetune). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/block.h"
#include "bgfm/model.h"

int model_prompt_alloc(model_prompt *pr, const model_ws *ws, const model *m, bgfm_err *e) {
    size_t B = (size_t)ws->B_max, N = (size_t)ws->N_big, H = (size_t)m->cfg.H;
    pr->w = bgfm_malloc(e, B * N * N * sizeof(float), "prompt scratch");
    pr->dA = bgfm_malloc(e, B * N * N * sizeof(float), "prompt scratch");
    pr->q = bgfm_malloc(e, B * (N + 1) * H * sizeof(float), "prompt scratch");
    if (pr->w && pr->dA && pr->q) return 0;
    model_prompt_free(pr);
    return BGFM_ENOMEM;
}

void model_prompt_free(model_prompt *pr) {
    free(pr->w);
    free(pr->dA);
    free(pr->q);
    pr->w = pr->dA = pr->q = NULL;
}

static float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }

void blk_prompt_csr(layer_csr *c, const model_prompt *pr, const uint8_t *adj, int N, int b) {
    float *w = pr->w + (int64_t)b * N * N;
    c->n = N;
    c->rowptr[0] = 0;
    for (int i = 0; i < N; i++) {
        w[(int64_t)i * N + i] = 0.0f;
        for (int j = i + 1; j < N; j++) {
            float z = pr->edge[model_prompt_pair(i, j, N)] +
                      pr->margin * (adj[(int64_t)i * N + j] ? 1.0f : -1.0f);
            w[(int64_t)i * N + j] = w[(int64_t)j * N + i] = sigm(z);
        }
    }
    /* every pair is an edge: rows of N columns; degrees in the diagonal slots of val
     * first, then the values (the diagonal is the self loop, weight 1) */
    for (int i = 0; i < N; i++) {
        double d = 1.0;
        for (int j = 0; j < N; j++) d += (double)w[(int64_t)i * N + j];
        c->val[(int64_t)i * N + i] = (float)(1.0 / sqrt(d));
        c->rowptr[i + 1] = (i + 1) * N;
        for (int j = 0; j < N; j++) c->col[(int64_t)i * N + j] = j;
    }
    for (int i = 0; i < N; i++) {
        float ri = c->val[(int64_t)i * N + i];
        for (int j = 0; j < N; j++)
            if (j != i)
                c->val[(int64_t)i * N + j] = w[(int64_t)i * N + j] * ri * c->val[(int64_t)j * N + j];
    }
    for (int i = 0; i < N; i++) { /* the diagonal last: 1 / d_i */
        float ri = c->val[(int64_t)i * N + i];
        c->val[(int64_t)i * N + i] = ri * ri;
    }
}

void blk_prompt_feat(const model_prompt *pr, model_run *r, int B, int N, int64_t H) {
    if (!pr->feat) return;
    int64_t T = r->T;
    for (int b = 0; b < B; b++)
        for (int64_t i = 0; i < N; i++) {
            float *h = r->h0 + ((int64_t)b * T + 1 + i) * H;
            const float *f = pr->feat + i * H;
            for (int64_t j = 0; j < H; j++) h[j] += f[j];
        }
}

/* One graph: G = dL/dAhat (N, N), Ahat in c, w the prompted weights. With
 * s_i = -(1 / (2 d_i)) sum_k (G_ik + G_ki) Ahat_ik (the degree's gradient),
 * dL/dw_ij = (G_ij + G_ji) / sqrt(d_i d_j) + s_i + s_j, and dL/dP_ij = dL/dw_ij w (1 - w). */
static void edge_backward(const float *G, const layer_csr *c, const float *w, int N, float *s,
                          float *gP) {
    for (int i = 0; i < N; i++) {
        double a = 0, di = 1.0 / (double)c->val[(int64_t)i * N + i];
        for (int k = 0; k < N; k++)
            a += ((double)G[(int64_t)i * N + k] + (double)G[(int64_t)k * N + i]) *
                 (double)c->val[(int64_t)i * N + k];
        s[i] = (float)(-a / (2.0 * di));
    }
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++) {
            double rij = sqrt((double)c->val[(int64_t)i * N + i] * (double)c->val[(int64_t)j * N + j]);
            double dw = ((double)G[(int64_t)i * N + j] + (double)G[(int64_t)j * N + i]) * rij +
                        (double)s[i] + (double)s[j];
            double wij = w[(int64_t)i * N + j];
            gP[model_prompt_pair(i, j, N)] += (float)(dw * wij * (1.0 - wij));
        }
}

void blk_prompt_backward(const model_prompt *pr, const model_run *r, int B, int N, int64_t H,
                         const float *dh0) {
    int64_t T = r->T;
    if (pr->feat && pr->gfeat)
        for (int b = 0; b < B; b++)
            for (int64_t i = 0; i < N; i++) {
                const float *d = dh0 + ((int64_t)b * T + 1 + i) * H;
                float *g = pr->gfeat + i * H;
                for (int64_t j = 0; j < H; j++) g[j] += d[j];
            }
    if (!pr->edge || !pr->gedge) return;
    float *s = pr->q; /* free after the blocks' backward: N floats of it */
    for (int b = 0; b < B; b++) {
        layer_csr c;
        c.n = N;
        c.rowptr = r->rowptr + (int64_t)b * (N + 1);
        c.col = r->col + (int64_t)b * N * N;
        c.val = r->val + (int64_t)b * N * N;
        edge_backward(pr->dA + (int64_t)b * N * N, &c, pr->w + (int64_t)b * N * N, N, s, pr->gedge);
    }
}
