/* model_step.c: benchmark driver for one bgfm training step (draws + forward + backward
 * + clipping + AdamW) on synthetic graphs of adjacency density ~0.15; prints key=value
 * lines (throughput, FLOP rate of the documented formula, SGEMM reference rate, OpenBLAS
 * core, peak RSS, a loss checksum). Not a test and not part of libbgfm: bench/model_step.sh
 * builds it against build/libbgfm.a; bench/scaling.sh takes its figures for the scaling
 * model, with the gradient buckets (head / tail parameter counts) and the window the
 * tail's all-reduce can overlap (the backward after the tail hook: the encoder's).
 *   model_step H L N B [STEPS] [WARMUP] [region|mean] [F] [HEADS] */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bgfm/model.h"
#include "bgfm/optim.h"
#include "bgfm/rng.h"
#include "bench_graph.h"

/* a model_grad_hook: the time the backward reached the tail bucket */
static void hook_time(void *arg, int64_t off, int64_t n) {
    (void)off, (void)n;
    *(double *)arg = now();
}

/* FLOPs of the step by the formula of docs/model.md ("FLOPs of one training step"),
 * with nnz(Ahat) summed over the graphs of each run. */
static double run_nnz(const model_run *r, int B) {
    double s = 0;
    for (int b = 0; b < B; b++) s += r->rowptr[(int64_t)b * (r->n + 1) + r->n];
    return s;
}

static double step_flops(const model *m, const model_ws *ws, int B, int N) {
    const model_cfg *c = &m->cfg;
    double H = c->H, F = c->F, k = c->k, P = c->P, M = ws->M, fl = 0;
    const model_run *runs[3] = {&ws->ea, &ws->eb, &ws->dec};
    for (int i = 0; i < 3; i++) {
        const model_run *r = runs[i];
        double T = r->n + 1, nnz = run_nnz(r, B) / B;
        double dense = 10 * T * H * H + 4 * T * T * H + 4 * T * H * F; /* gcn, qkv, Wo, attn, ffn */
        double blk = 3 * dense + 2 * (2 * nnz * H) + 2 * T * T * H;      /* + Ahat twice, rescoring */
        double f = r->nblk * blk;
        if (i < 2) f += 2 * (2 * r->n * H * (N + k)); /* input layer: forward + dW only */
        fl += B * f;
    }
    double nv = ws->ea.n;
    fl += B * 3 * (2 * nv * H * H);            /* W_re */
    fl += B * 3 * (2 * M * H * N);             /* output layer on the masked rows */
    fl += B * 2 * (2 * nv * nv * H);           /* structure logits + their gradient */
    fl += 2 * B * 3 * (2 * H * H + 2 * H * P); /* projection head, both views */
    return fl;
}

/* Best time of C = op(A) op(B) (row-major, m x n, inner k), operands of leading
 * dimension `lda`/`ldb` (0: packed). */
static float *gA, *gB, *gC;
static double gemm_time(int ta, int tb, int mm, int n, int kk, int lda, int ldb, int reps) {
    int la = lda ? lda : (ta ? mm : kk), lb = ldb ? ldb : (tb ? kk : n);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, mm,
                    n, kk, 1.0f, gA, la, gB, lb, 0.0f, gC, n);
        double t = now() - t0;
        if (t < best) best = t;
    }
    return best;
}

/* The SGEMM reference rates: `peak` = the step's best-suited shape (the Q/K/V
 * projection over all B*T rows); `mix` = the FLOP-weighted rate of the step's own GEMM
 * shapes (per-node layers forward NT, input gradient NN, weight gradient TN, and the
 * attention products of one head), i.e. what OpenBLAS alone would take for the step's
 * GEMM FLOPs. */
static void sgemm_ref(int H, int F, int T, int B, int nh, double *peak, double *mix) {
    int BT = B * T, d = H / nh;
    size_t big = (size_t)BT * (size_t)(3 * H > F ? 3 * H : F);
    if ((size_t)T * T > big) big = (size_t)T * T;
    gA = malloc(big * sizeof *gA), gB = malloc(big * sizeof *gB), gC = malloc(big * sizeof *gC);
    if (!gA || !gB || !gC) exit(1);
    for (size_t i = 0; i < big; i++) gA[i] = (float)(i % 7) * 0.1f, gB[i] = (float)(i % 5) * 0.1f;
    int outs[4] = {3 * H, H, H, F}, ins[4] = {H, H, H, H}; /* qkv, Wo, gcn, W1 (+ W2 below) */
    double fl = 0, t = 0;
    for (int i = 0; i < 5; i++) {
        int co = i < 4 ? outs[i] : H, ci = i < 4 ? ins[i] : F;
        double f = 2.0 * BT * co * ci;
        t += gemm_time(0, 1, BT, co, ci, 0, 0, 3) + gemm_time(0, 0, BT, ci, co, 0, 0, 3) +
             gemm_time(1, 0, co, ci, BT, 0, 0, 3);
        fl += 3 * f;
    }
    /* attention of one head for every graph: forward 2 products, backward 5 */
    double fa = 2.0 * T * T * d;
    double ta = gemm_time(0, 1, T, T, d, 3 * H, 3 * H, 5) * 3 + gemm_time(0, 0, T, d, T, 0, 3 * H, 5) * 2 +
                gemm_time(1, 0, T, d, T, 0, H, 5) * 2;
    t += ta * B * nh;
    fl += 7 * fa * B * nh;
    *mix = fl / t * 1e-9;
    *peak = 2.0 * BT * 3 * H * H / gemm_time(0, 1, BT, 3 * H, H, 0, 0, 10) * 1e-9;
    free(gA), free(gB), free(gC);
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: model_step H L N B [STEPS] [WARMUP] [region|mean] [F] [HEADS]\n"
                        "  region: the default model (region readout, input normalisation);\n"
                        "  mean: the model before issue 12 (mean readout, raw FC inputs)\n");
        return 2;
    }
    int H = atoi(argv[1]), L = atoi(argv[2]), N = atoi(argv[3]), B = atoi(argv[4]);
    int steps = argc > 5 ? atoi(argv[5]) : 10, warm = argc > 6 ? atoi(argv[6]) : 2;
    model_cfg c;
    memset(&c, 0, sizeof c);
    c.H = H, c.nh = 4, c.F = 2 * H, c.k = 5, c.L = L, c.Ld = 1, c.P = 128, c.N_max = N;
    if (argc > 8) c.F = atoi(argv[8]);
    if (argc > 9) c.nh = atoi(argv[9]);
    c.readout = argc > 7 ? model_readout_parse(argv[7]) : MODEL_READOUT_REGION, c.rdim = 8;
    if (c.readout < 0) return 2;
    c.norm = c.readout == MODEL_READOUT_REGION;
    c.n_atlases = 1;
    snprintf(c.atlas[0], sizeof c.atlas[0], "bench");
    c.atlas_nodes[0] = N;
    bgfm_err e;
    memset(&e, 0, sizeof e);
    model m;
    model_ws ws;
    optim op;
    if (model_init(&m, &c, &e) || optim_init(&op, &m, &e)) return 1;
    model_init_params(&m, 1);
    double t_ws = now();
    if (model_ws_init(&ws, &m, B, &e)) return 1;
    t_ws = now() - t_ws;
    float *fc = malloc((size_t)B * N * N * sizeof *fc), *rw = malloc((size_t)B * N * 5 * sizeof *rw);
    uint8_t *adj = malloc((size_t)B * N * N);
    int64_t *gidx = malloc((size_t)B * sizeof *gidx);
    if (!fc || !rw || !adj || !gidx) return 1;
    for (int b = 0; b < B; b++)
        make_graph(N, 5, (uint64_t)b, fc + (size_t)b * N * N, adj + (size_t)b * N * N,
                   rw + (size_t)b * N * 5);
    double dens = 0;
    for (size_t i = 0; i < (size_t)B * N * N; i++) dens += adj[i];
    dens /= (double)B * N * (N - 1);
    optim_cfg oc = {1e-4, 0.9, 0.999, 1e-8, 1e-4, 5.0, 10, 1000};
    double *ts = malloc((size_t)(steps + warm) * sizeof *ts), lsum = 0, flops = 0, cpu = 0;
    double *win = malloc((size_t)steps * sizeof *win), *bwd = malloc((size_t)steps * sizeof *bwd);
    if (!ts || !win || !bwd) return 1;
    for (int s = 0; s < warm + steps; s++) {
        for (int b = 0; b < B; b++) gidx[b] = (int64_t)s * B + b;
        model_batch bt = {0, B, N, fc, adj, rw, gidx, NULL, NULL, NULL};
        model_hp hp = {.mode = MODEL_GMAE_GCL, .lambda_rec = 1.0, .lambda_adj = 0.1, .lambda_cl = 0.01,
                       .tau_cl = 0.2, .mask_ratio = 0.4, .p_node = 0.1, .p_edge = 0.1, .p_drop = 0.1f,
                       .mask_columns = 1, .seed = 7, .epoch = s, .step = s};
        model_losses ls;
        double t0 = now(), c0 = cpu_seconds();
        /* model_step, with the time the backward reaches the tail hook */
        memset(m.g, 0, (size_t)m.n_params * sizeof(float));
        model_forward(&m, &ws, &bt, &hp, &ls);
        ls.cl = model_contrastive_local(&ws, &m);
        ls.total += hp.lambda_cl * ls.cl;
        double tb = now(), th = tb;
        model_backward_hooked(&m, &ws, hook_time, &th);
        double te = now();
        if (s >= warm) {
            win[s - warm] = te - th;
            bwd[s - warm] = te - tb;
        }
        optim_clip(m.g, m.n_params, oc.clip);
        optim_adamw(&op, m.w, m.g, optim_lr(&oc, s), &oc);
        ts[s] = now() - t0;
        if (s >= warm) cpu += cpu_seconds() - c0;
        lsum += ls.total;
        if (s == 0) flops = step_flops(&m, &ws, B, N);
    }
    qsort(ts + warm, (size_t)steps, sizeof *ts, cmp_d);
    double med = ts[warm + steps / 2], best = ts[warm];
    double pk, mx;
    sgemm_ref(H, c.F, N + 1, B, c.nh, &pk, &mx);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("config H=%d L=%d N=%d B=%d nh=%d F=%d P=%d params=%lld density=%.3f\n", H, L, N, B,
           c.nh, c.F, c.P, (long long)m.n_params, dens);
    printf("openblas_core %s\n", openblas_get_corename());
    printf("openblas_config %s\n", openblas_get_config());
    printf("step_ms_median %.3f\nstep_ms_best %.3f\n", med * 1e3, best * 1e3);
    printf("graphs_per_s %.2f\ngraphs_per_s_best %.2f\n", B / med, B / best);
    printf("step_gflop %.4f\nstep_gflops %.2f\nstep_gflops_best %.2f\n", flops * 1e-9,
           flops / med * 1e-9, flops / best * 1e-9);
    printf("cpu_ms_per_step %.3f\n", cpu / steps * 1e3);
    printf("sgemm_gflops %.2f %.2f (peak: B*T x 3H x H NT; mix: the step's GEMM shapes)\n", pk,
           mx);
    printf("sgemm_fraction_best %.3f %.3f\n", flops / best * 1e-9 / pk, flops / best * 1e-9 / mx);
    printf("workspace_mb %.1f\nws_init_ms %.2f\n", (double)ws.bytes / 1048576.0, t_ws * 1e3);
    printf("peak_rss_mb %.1f\n", (double)ru.ru_maxrss / 1024.0);
    printf("loss_checksum %.17g\n", lsum);
    qsort(win, (size_t)steps, sizeof *win, cmp_d);
    qsort(bwd, (size_t)steps, sizeof *bwd, cmp_d);
    printf("grad_buckets head=%lld tail=%lld\n", (long long)model_grad_tail(&m),
           (long long)(model_grad_end(&m) - model_grad_tail(&m)));
    printf("backward_ms_median %.3f\noverlap_window_ms_median %.3f\n", bwd[steps / 2] * 1e3,
           win[steps / 2] * 1e3);
    free(ts), free(win), free(bwd), free(fc), free(rw), free(adj), free(gidx);
    model_ws_free(&ws);
    optim_free(&op);
    model_free(&m);
    return 0;
}
