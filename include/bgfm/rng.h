/* rng.h: counter-based random numbers (Philox4x32-10). A stream is keyed by
 * (seed, purpose, i0, i1, i2) so the draws for a graph never depend on rank count,
 * rank, or the order in which ranks ask. Not a global generator: there is none. */
#ifndef BGFM_RNG_H
#define BGFM_RNG_H

#include <stdint.h>

/* Purposes: one per kind of draw (model.md section 5). Values are part of the
 * reproducibility contract: never renumber, only append. */
enum rng_purpose {
    RNG_INIT = 1,      /* parameter initialisation (i0 = parameter index) */
    RNG_SHUFFLE = 2,   /* epoch order (i0 = epoch) */
    RNG_MASK = 3,      /* GMAE mask (i0 = epoch/step, i1 = global graph index) */
    RNG_CORRUPT_A = 4, /* GCL view a corruption */
    RNG_CORRUPT_B = 5, /* GCL view b corruption */
    RNG_DROPOUT = 6,   /* dropout (i0 = step, i1 = global graph index, i2 = site) */
    RNG_SYNTH = 7,     /* synthetic data (i0 = subject, i1 = what) */
    RNG_PROBE = 8,     /* fold assignment, classifier init */
    RNG_WINDOW = 9,
    RNG_PARTNER = 10,  /* GCL positive partner (i0 = epoch, i1 = global graph index) */
    RNG_ADAPT = 11,    /* adaptation: batches (i0 = epoch, i1 = cell), validation splits */
    RNG_SKETCH = 12,   /* randomised subspace's start (pca.h; i0 = column, seed 0) */
    RNG_USER = 100
};

typedef struct rng_stream {
    uint32_t key[2];
    uint32_t ctr[4];   /* ctr[0..1] = draw counter, ctr[2..3] = (i1, i2) mixed */
    uint32_t buf[4];
    int used;          /* values consumed from buf (4 = empty) */
} rng_stream;

/* A stream for (seed, purpose, i0, i1, i2). Cheap: call it per graph. */
void rng_init(rng_stream *r, uint64_t seed, uint32_t purpose, uint64_t i0, uint64_t i1,
              uint64_t i2);
uint32_t rng_u32(rng_stream *r);
/* One SplitMix64 step of z (add 0x9e3779b97f4a7c15, then the finaliser): a 64-bit hash
 * of an integer, for orders that must not depend on a seed (pop.c's halves). */
uint64_t rng_splitmix64(uint64_t z);
uint64_t rng_u64(rng_stream *r);
/* Uniform in [0, 1) with 53 random bits. */
double rng_uniform(rng_stream *r);
/* Uniform in [0, n), unbiased (n >= 1). */
uint64_t rng_below(rng_stream *r, uint64_t n);
/* Standard normal (Box-Muller on two fresh uniforms; no cached second value, so
 * the stream position is a pure function of the number of calls). */
double rng_normal(rng_stream *r);
/* Fisher-Yates shuffle of idx[0..n-1]. */
void rng_shuffle_i64(rng_stream *r, int64_t *idx, int64_t n);
/* The raw block function, for tests against published Philox vectors. */
void rng_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

#endif
