/* bench_graph.h: what the C benchmark drivers (model_step.c, adapt_step.c) share: a
 * monotonic clock, a comparison for qsort of doubles, and the synthetic graph they time
 * the model on. Header-only (static functions); not part of libbgfm. */
#ifndef BGFM_BENCH_GRAPH_H
#define BGFM_BENCH_GRAPH_H

#include <stdint.h>
#include <time.h>

#include "bgfm/rng.h"

static inline double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Synthetic graph: symmetric FC in [-0.5, 0.5] with unit diagonal, symmetric 0/1
 * adjacency with edge probability 0.15, RWSE in [0, 1). */
static inline void make_graph(int N, int k, uint64_t g, float *fc, uint8_t *adj, float *rw) {
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

#endif
