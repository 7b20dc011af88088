/* adapt_step.c: benchmark driver for the cost of one adaptation step against one
 * pretraining step of the same batch, in the same run (docs/adapt.md, docs/performance.md):
 *   pretrain  model_step (gmae+gcl: masked encoder pass, corrupted view b, decoder,
 *             projection head) + clipping + AdamW over the whole model;
 *   finetune  train: all: model_encode + head loss + model_encode_backward + clipping +
 *             AdamW over the encoder and head (the finetune stage's step, one rank);
 *   head      train: head: model_encode + head loss + the head's AdamW;
 *   prompt    the prompt stage's step: model_encode_prompted (feature + edge prompts, the
 *             encoder frozen) + head loss + model_encode_backward (prompt gradients only)
 *             + clipping + AdamW over the prompts and the head.
 * The four are interleaved step by step (the machine is shared: each round sees the
 * same load) and the median and best of each are printed with their ratios.
 * Not a test and not part of libbgfm: bench/adapt_step.sh builds it.
 *   adapt_step H L N B [STEPS] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bgfm/head.h"
#include "bgfm/model.h"
#include "bgfm/optim.h"
#include "bgfm/rng.h"
#include "bench_graph.h"

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: adapt_step H L N B [STEPS]\n");
        return 2;
    }
    int H = atoi(argv[1]), L = atoi(argv[2]), N = atoi(argv[3]), B = atoi(argv[4]);
    int steps = argc > 5 ? atoi(argv[5]) : 10, warm = 2;
    model_cfg c;
    memset(&c, 0, sizeof c);
    c.H = H, c.nh = 4, c.F = 2 * H, c.k = 5, c.L = L, c.Ld = 1, c.P = 128, c.N_max = N;
    c.readout = MODEL_READOUT_REGION, c.rdim = 8, c.norm = 1, c.n_atlases = 1;
    snprintf(c.atlas[0], sizeof c.atlas[0], "bench");
    c.atlas_nodes[0] = N;
    bgfm_err e;
    memset(&e, 0, sizeof e);
    model m;
    model_ws ws;
    optim op;
    head h;
    if (model_init(&m, &c, &e) || optim_init(&op, &m, &e) || model_ws_init(&ws, &m, B, &e) ||
        head_init(&h, HEAD_CLASSIFY, 2, H, B, &e))
        return 1;
    model_init_params(&m, 1);
    int64_t ne = model_grad_tail(&m);
    float *fc = malloc((size_t)B * N * N * sizeof *fc), *rw = malloc((size_t)B * N * 5 * sizeof *rw);
    uint8_t *adj = malloc((size_t)B * N * N);
    int64_t *gidx = malloc((size_t)B * sizeof *gidx);
    int *cls = malloc((size_t)B * sizeof *cls);
    double *t[4];
    for (int q = 0; q < 4; q++) t[q] = malloc((size_t)(steps + warm) * sizeof(double));
    if (!fc || !rw || !adj || !gidx || !cls || !t[0] || !t[1] || !t[2] || !t[3]) return 1;
    /* the prompts: feature N x H, edge N(N-1)/2, their gradients and moments */
    int64_t pn = (int64_t)N * H + (int64_t)N * (N - 1) / 2;
    float *pw = calloc((size_t)(4 * pn), sizeof(float));
    model_prompt pr;
    memset(&pr, 0, sizeof pr);
    if (!pw || model_prompt_alloc(&pr, &ws, &m, &e)) return 1;
    pr.feat = pw, pr.edge = pw + (int64_t)N * H, pr.gfeat = pw + pn, pr.gedge = pw + pn + (int64_t)N * H;
    pr.margin = 6.0f, pr.frozen = 1;
    for (int b = 0; b < B; b++) {
        make_graph(N, 5, (uint64_t)b, fc + (size_t)b * N * N, adj + (size_t)b * N * N,
                   rw + (size_t)b * N * 5);
        cls[b] = b % 2;
    }
    optim_cfg oc = {1e-4, 0.9, 0.999, 1e-8, 1e-4, 5.0, 10, 1000};
    double chk = 0;
    for (int s = 0; s < warm + steps; s++) {
        for (int b = 0; b < B; b++) gidx[b] = (int64_t)s * B + b;
        model_batch bt = {0, B, N, fc, adj, rw, gidx, NULL, NULL, NULL};
        model_hp hp = {.mode = MODEL_GMAE_GCL, .lambda_rec = 1.0, .lambda_adj = 0.1, .lambda_cl = 0.01,
                       .tau_cl = 0.2, .mask_ratio = 0.4, .p_node = 0.1, .p_edge = 0.1, .p_drop = 0.1f,
                       .mask_columns = 1, .seed = 7, .epoch = s, .step = s};
        model_losses ls;
        double t0 = now();
        model_step(&m, &ws, &bt, &hp, &ls);
        optim_clip(m.g, m.n_params, oc.clip);
        optim_adamw(&op, m.w, m.g, optim_lr(&oc, s), &oc);
        t[0][s] = now() - t0;
        chk += ls.total;
        for (int q = 1; q < 3; q++) {
            t0 = now();
            memset(m.g, 0, (size_t)ne * sizeof(float));
            memset(h.g, 0, (size_t)h.n * sizeof(float));
            model_encode(&m, &ws, &bt, &hp);
            chk += head_loss(&h, ws.E, B, cls, NULL, 1.0 / B, NULL);
            if (q == 1) {
                model_encode_backward(&m, &ws, h.dE);
                optim_clip(m.g, ne, oc.clip);
                optim_adamw_buf(m.w, m.g, op.m, op.v, op.decay, NULL, ne, s + 1, optim_lr(&oc, s), &oc);
            }
            head_adamw(&h, optim_lr(&oc, s), &oc);
            t[q][s] = now() - t0;
        }
        t0 = now();
        memset(pw + pn, 0, (size_t)pn * sizeof(float));
        memset(h.g, 0, (size_t)h.n * sizeof(float));
        model_encode_prompted(&m, &ws, &bt, &hp, &pr);
        chk += head_loss(&h, ws.E, B, cls, NULL, 1.0 / B, NULL);
        model_encode_backward(&m, &ws, h.dE);
        optim_clip(pw + pn, pn, oc.clip);
        optim_adamw_buf(pw, pw + pn, pw + 2 * pn, pw + 3 * pn, NULL, NULL, pn, s + 1,
                        optim_lr(&oc, s), &oc);
        head_adamw(&h, optim_lr(&oc, s), &oc);
        t[3][s] = now() - t0;
    }
    const char *name[4] = {"pretrain", "finetune", "head", "prompt"};
    double med[4], best[4];
    for (int q = 0; q < 4; q++) {
        qsort(t[q] + warm, (size_t)steps, sizeof(double), cmp_d);
        med[q] = t[q][warm + steps / 2], best[q] = t[q][warm];
        printf("%s_ms_median %.3f\n%s_ms_best %.3f\n", name[q], med[q] * 1e3, name[q], best[q] * 1e3);
    }
    printf("config H=%d L=%d N=%d B=%d params=%lld encoder_params=%lld head_params=%lld "
           "prompt_params=%lld\n", H, L, N, B, (long long)m.n_params, (long long)ne, (long long)h.n,
           (long long)pn);
    printf("finetune_over_pretrain %.3f (best %.3f)\n", med[1] / med[0], best[1] / best[0]);
    printf("head_over_finetune %.3f (best %.3f)\n", med[2] / med[1], best[2] / best[1]);
    printf("prompt_over_finetune %.3f (best %.3f); finetune/prompt %.2fx (target >= 3x)\n",
           med[3] / med[1], best[3] / best[1], med[1] / med[3]);
    printf("checksum %.6g\n", chk);
    for (int q = 0; q < 4; q++) free(t[q]);
    free(pw);
    model_prompt_free(&pr);
    free(fc), free(rw), free(adj), free(gidx), free(cls);
    head_free(&h);
    model_ws_free(&ws);
    optim_free(&op);
    model_free(&m);
    return 0;
}
