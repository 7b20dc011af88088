/* simd.h: short float vectors (GCC vector extension) for the row loops of the model's
 * kernels between the GEMMs (stages/pretrain/layers.c, model.c): LV lanes, 16 with
 * AVX-512, 8 with AVX, 4 otherwise (wider types than the target's registers would change
 * the ABI). Loads and stores go through memcpy: no alignment assumed. Sums reduce the
 * lanes in one fixed order, so results are bit-reproducible run to run on one build.
 * Short names on purpose: they are the arithmetic of the kernels' inner loops.
 * Not a vector library: only what the kernels use. Header only. */
#ifndef BGFM_SIMD_H
#define BGFM_SIMD_H

#include <stdint.h>
#include <string.h>

#if defined(__AVX512F__)
#define LV 16
#elif defined(__AVX__)
#define LV 8
#else
#define LV 4
#endif
typedef float lvf __attribute__((vector_size(4 * LV)));
typedef int32_t lvi __attribute__((vector_size(4 * LV)));
typedef uint16_t lvh __attribute__((vector_size(2 * LV)));

static inline lvf vld(const float *p) {
    lvf v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void vst(float *p, lvf v) { memcpy(p, &v, sizeof v); }
static inline lvf vset(float x) {
    lvf v;
    for (int i = 0; i < LV; i++) v[i] = x;
    return v;
}
/* The lanes summed in lane order. */
static inline float vsum(lvf v) {
    float s = 0.0f;
    for (int i = 0; i < LV; i++) s += v[i];
    return s;
}
static inline lvf vmax(lvf a, lvf b) {
    lvi m = a > b;
    return (lvf)(((lvi)a & m) | ((lvi)b & ~m));
}

#endif
