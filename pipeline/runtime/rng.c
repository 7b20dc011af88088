/* rng.c: Philox4x32-10 (Salmon et al., SC'11), keyed streams, and the derived
 * distributions. Not cryptographic; not seeded from time or /dev/urandom, ever. */
#include "bgfm/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void rng_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* SplitMix64 (rng.h): spreads (seed, purpose, i0) over the 64-bit key. */
uint64_t rng_splitmix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void rng_init(rng_stream *r, uint64_t seed, uint32_t purpose, uint64_t i0, uint64_t i1,
              uint64_t i2) {
    const uint64_t p = (uint64_t)purpose << 32 | (uint64_t)purpose;
    uint64_t k = rng_splitmix64(rng_splitmix64(seed) ^ p);
    k = rng_splitmix64(k ^ i0);
    uint64_t c = rng_splitmix64(rng_splitmix64(i1 ^ 0x5851F42D4C957F2Dull) ^ i2);
    r->key[0] = (uint32_t)k;
    r->key[1] = (uint32_t)(k >> 32);
    r->ctr[0] = 0;
    r->ctr[1] = 0;
    r->ctr[2] = (uint32_t)c;
    r->ctr[3] = (uint32_t)(c >> 32);
    r->used = 4;
}

uint32_t rng_u32(rng_stream *r) {
    if (r->used == 4) {
        rng_philox4x32_10(r->ctr, r->key, r->buf);
        if (++r->ctr[0] == 0) ++r->ctr[1];
        r->used = 0;
    }
    return r->buf[r->used++];
}

uint64_t rng_u64(rng_stream *r) {
    uint64_t hi = rng_u32(r);
    return hi << 32 | rng_u32(r);
}

double rng_uniform(rng_stream *r) { return (double)(rng_u64(r) >> 11) * 0x1.0p-53; }

uint64_t rng_below(rng_stream *r, uint64_t n) {
    /* rejection from the top: unbiased for every n */
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = rng_u64(r);
    while (x >= lim);
    return x % n;
}

double rng_normal(rng_stream *r) {
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 0x1.0p-60) u1 = 0x1.0p-60;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

void rng_shuffle_i64(rng_stream *r, int64_t *idx, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)rng_below(r, (uint64_t)i + 1);
        int64_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}
