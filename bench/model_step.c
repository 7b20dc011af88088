/* model_step.c: benchmark driver for one bgfm training step (draws + forward + backward
 * + clipping + AdamW) on synthetic graphs of adjacency density ~0.15; prints key=value
 * lines (throughput, FLOP rate of the documented formula, SGEMM reference rate, OpenBLAS
 * core, peak RSS, a loss checksum). Not a test and not part of libbgfm: bench/model_step.sh
 * builds it against build/libbgfm.a.
 *   model_step H L N B [STEPS] [WARMUP] */
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

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Synthetic graph: symmetric FC in [-0.5, 0.5] with unit diagonal, symmetric 0/1
 * adjacency with edge probability 0.15, RWSE in [0, 1). */
static void make_graph(int N, int k, uint64_t g, float *fc, uint8_t *adj, float *rw) {
    rng_stream r;
    rng_init(&r, 17, RNG_USER, g, (uint64_t)N, 0);
    for (int i = 0; i < N; i++) {
        fc[(size_t)i * N + i] = 1.0f;
        adj[(size_t)i * N + i] = 0;
        for (int j = i + 1; j < N; j++) {
            float c = (float)(rng_uniform(&r) - 0.5);
            uint8_t a = rng_uniform(&r) < 0.15;
            fc[(size_t)i * N + j] = fc[(size_t)j * N + i] = c;
            adj[(size_t)i * N + j] = adj[(size_t)j * N + i] = a;
        }
    }
    for (int i = 0; i < N * k; i++) rw[i] = (float)rng_uniform(&r);
}

/* FLOPs of the step by the formula of docs/model.md ("FLOPs of one training step"),
 * with nnz(Ahat) summed over the graphs of each run. */
static double block_flops(double T, double nnz_per_graph, double H, double F) {
    return 2 * T * H * H + 2 * nnz_per_graph * H + 6 * T * H * H + 4 * T * T * H + 2 * T * H * H +
           4 * T * H * F;
}

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
        double T = r->n + 1, nnz = run_nnz(r, B) / B, blk = block_flops(T, nnz, H, F);
        double fwd = r->nblk * blk, extra = r->nblk * 2 * T * T * H;
        if (i < 2) fwd += 2 * r->n * H * (N + k); /* input layer */
        fl += B * (3 * fwd + extra);
    }
    double nv = ws->ea.n;
    fl += 3 * B * (2 * nv * H * H);         /* W_re */
    fl += 3 * B * (2 * M * H * N);          /* output layer on masked rows */
    fl += 2 * B * (2 * nv * nv * H);        /* structure logits + their gradient */
    fl += 3 * 2 * B * (2 * H * H + 2 * H * P); /* projection head, both views */
    return fl;
}

/* SGEMM GFLOP/s of C (m x n) = A (m x k) B^T (n x k), best of reps. */
static double sgemm_rate(int mm, int n, int kk, int reps) {
    float *a = malloc((size_t)mm * kk * sizeof *a), *b = malloc((size_t)n * kk * sizeof *b);
    float *c = malloc((size_t)mm * n * sizeof *c);
    if (!a || !b || !c) exit(1);
    for (size_t i = 0; i < (size_t)mm * kk; i++) a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)n * kk; i++) b[i] = (float)(i % 5) * 0.1f;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mm, n, kk, 1.0f, a, kk, b, kk, 0.0f, c,
                    n);
        double t = now() - t0;
        if (t < best) best = t;
    }
    free(a), free(b), free(c);
    return 2.0 * mm * n * kk / best * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: model_step H L N B [STEPS] [WARMUP]\n");
        return 2;
    }
    int H = atoi(argv[1]), L = atoi(argv[2]), N = atoi(argv[3]), B = atoi(argv[4]);
    int steps = argc > 5 ? atoi(argv[5]) : 10, warm = argc > 6 ? atoi(argv[6]) : 2;
    model_cfg c;
    memset(&c, 0, sizeof c);
    c.H = H, c.nh = 4, c.F = 2 * H, c.k = 5, c.L = L, c.Ld = 1, c.P = 128, c.N_max = N;
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
    double *ts = malloc((size_t)(steps + warm) * sizeof *ts), lsum = 0, flops = 0;
    if (!ts) return 1;
    for (int s = 0; s < warm + steps; s++) {
        for (int b = 0; b < B; b++) gidx[b] = (int64_t)s * B + b;
        model_batch bt = {0, B, N, fc, adj, rw, gidx};
        model_hp hp = {MODEL_GMAE_GCL, 1.0, 0.1, 0.01, 0.2, 0.4, 0.1, 0.1, 0.1f, 1, 7, s, s};
        model_losses ls;
        double t0 = now();
        model_step(&m, &ws, &bt, &hp, &ls);
        optim_clip(m.g, m.n_params, oc.clip);
        optim_adamw(&op, m.w, m.g, optim_lr(&oc, s), &oc);
        ts[s] = now() - t0;
        lsum += ls.total;
        if (s == 0) flops = step_flops(&m, &ws, B, N);
    }
    qsort(ts + warm, (size_t)steps, sizeof *ts, cmp_d);
    double med = ts[warm + steps / 2], best = ts[warm];
    /* the SGEMM reference: the step's per-node linear layers over all B*T rows */
    int BT = B * (N + 1);
    double r1 = sgemm_rate(BT, 3 * H, H, 5), r2 = sgemm_rate(BT, 2 * H, H, 5),
           r3 = sgemm_rate(BT, H, 2 * H, 5), r4 = sgemm_rate(BT, H, H, 5);
    double f1 = 2.0 * BT * 3 * H * H, f2 = 2.0 * BT * 2 * H * H, f3 = f2, f4 = 2.0 * BT * H * H;
    double ref = (f1 + f2 + f3 + f4) / (f1 / r1 + f2 / r2 + f3 / r3 + f4 / r4);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("config H=%d L=%d N=%d B=%d nh=%d F=%d P=%d params=%lld density=%.3f\n", H, L, N, B,
           c.nh, c.F, c.P, (long long)m.n_params, dens);
    printf("openblas_core %s\n", openblas_get_corename());
    printf("openblas_config %s\n", openblas_get_config());
    printf("step_ms_median %.3f\nstep_ms_best %.3f\n", med * 1e3, best * 1e3);
    printf("graphs_per_s %.2f\n", B / med);
    printf("step_gflop %.4f\nstep_gflops %.2f\n", flops * 1e-9, flops / med * 1e-9);
    printf("sgemm_gflops %.2f (BTx3HxH %.1f, BTx2HxH %.1f, BTxHx2H %.1f, BTxHxH %.1f)\n", ref, r1, r2,
           r3, r4);
    printf("sgemm_fraction %.3f\n", flops / med * 1e-9 / ref);
    printf("workspace_mb %.1f\nws_init_ms %.2f\n", (double)ws.bytes / 1048576.0, t_ws * 1e3);
    printf("peak_rss_mb %.1f\n", (double)ru.ru_maxrss / 1024.0);
    printf("loss_checksum %.17g\n", lsum);
    free(ts), free(fc), free(rw), free(adj), free(gidx);
    model_ws_free(&ws);
    optim_free(&op);
    model_free(&m);
    return 0;
}
