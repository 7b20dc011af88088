/* layers.c: forward/backward kernels of the model's layer kinds (layers.h), float32,
 * matrix products through cblas_sgemm. Not the model wiring and not allocation. */
#include "bgfm/layers.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "bgfm/ctx.h"
#include "bgfm/simd.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

/* ---- Short float vectors: LV lanes (bgfm/simd.h) for the row loops (LayerNorm,
 * softmax, GCN, dropout); the build's -O2 does not auto-vectorise loops of unknown
 * length. */

/* exp(x), relative error ~2e-7 (Cephes expf polynomial, range reduction by ln 2);
 * 0 below -87.3, the argument is clamped at 88.3. */
static inline __attribute__((always_inline)) lvf vexp(lvf x) {
    const lvf hi = vset(88.3762626647949f), lo = vset(-87.3365447504f);
    lvi under = x < lo;
    x = vmax(lo, x);
    lvi over = x > hi;
    x = (lvf)(((lvi)hi & over) | ((lvi)x & ~over));
    const lvf magic = vset(12582912.0f); /* 1.5 * 2^23: round to nearest */
    lvf t = x * vset(1.44269504088896341f) + magic;
    lvi n = (lvi)t - (lvi)magic;
    lvf nf = t - magic;
    lvf r = x - nf * vset(0.693359375f) + nf * vset(2.12194440e-4f);
    lvf p = vset(1.9875691500e-4f);
    p = p * r + vset(1.3981999507e-3f);
    p = p * r + vset(8.3334519073e-3f);
    p = p * r + vset(4.1665795894e-2f);
    p = p * r + vset(1.6666665459e-1f);
    p = p * r + vset(5.0000001201e-1f);
    lvf y = p * r * r + r + vset(1.0f);
    lvi sc = (n + 127) << 23;
    y = y * (lvf)sc;
    return (lvf)((lvi)y & ~under);
}

/* In-place exp(x - sub) over n floats; returns the sum of the results (fixed order). */
static float exp_shift_sum(float *x, int64_t n, float sub) {
    lvf acc = vset(0.0f), sv = vset(sub);
    int64_t j = 0;
    for (; j + LV <= n; j += LV) {
        lvf e = vexp(vld(x + j) - sv);
        vst(x + j, e);
        acc += e;
    }
    if (j < n) {
        float buf[LV];
        int64_t m = n - j;
        for (int64_t i = 0; i < LV; i++) buf[i] = i < m ? x[j + i] : -INFINITY;
        lvf e = vexp(vld(buf) - sv);
        vst(buf, e);
        memcpy(x + j, buf, (size_t)m * sizeof *x);
        acc += e;
    }
    return vsum(acc);
}

/* ---- Bulk Philox: exactly the words rng_u32 would return, 64 at a time ----------- */
#if defined(__AVX512F__)
/* 16 consecutive blocks from the stream's counter; out gets 64 words in stream order. */
static void philox16(const rng_stream *r, uint64_t ctr, uint32_t *out) {
    const __m512i m0 = _mm512_set1_epi64(0xD2511F53), m1 = _mm512_set1_epi64(0xCD9E8D57);
    const __m512i low = _mm512_set1_epi64(0xFFFFFFFF), lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
    __m512i ca = _mm512_add_epi64(_mm512_set1_epi64((long long)ctr), lane);
    __m512i cb = _mm512_add_epi64(_mm512_set1_epi64((long long)(ctr + 8u)), lane);
    /* two independent chains of 8 blocks each, kept in registers (64-bit lanes holding
     * 32-bit words, so vpmuludq gives the full 32 x 32 -> 64 product) */
    __m512i a0 = _mm512_and_si512(ca, low), a1 = _mm512_srli_epi64(ca, 32);
    __m512i b0 = _mm512_and_si512(cb, low), b1 = _mm512_srli_epi64(cb, 32);
    __m512i a2 = _mm512_set1_epi64(r->ctr[2]), a3 = _mm512_set1_epi64(r->ctr[3]);
    __m512i b2 = a2, b3 = a3;
    uint32_t k0 = r->key[0], k1 = r->key[1];
    for (int round = 0; round < 10; round++) {
        __m512i kk0 = _mm512_set1_epi64(k0), kk1 = _mm512_set1_epi64(k1);
        __m512i pa0 = _mm512_mul_epu32(a0, m0), pa1 = _mm512_mul_epu32(a2, m1);
        __m512i pb0 = _mm512_mul_epu32(b0, m0), pb1 = _mm512_mul_epu32(b2, m1);
        a0 = _mm512_xor_si512(_mm512_xor_si512(_mm512_srli_epi64(pa1, 32), a1), kk0);
        b0 = _mm512_xor_si512(_mm512_xor_si512(_mm512_srli_epi64(pb1, 32), b1), kk0);
        a1 = _mm512_and_si512(pa1, low);
        b1 = _mm512_and_si512(pb1, low);
        a2 = _mm512_xor_si512(_mm512_xor_si512(_mm512_srli_epi64(pa0, 32), a3), kk1);
        b2 = _mm512_xor_si512(_mm512_xor_si512(_mm512_srli_epi64(pb0, 32), b3), kk1);
        a3 = _mm512_and_si512(pa0, low);
        b3 = _mm512_and_si512(pb0, low);
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    /* words of block j in stream order: (w0, w1) interleaved as 64-bit (w0 | w1 << 32) */
    __m512i x01a = _mm512_or_si512(a0, _mm512_slli_epi64(a1, 32));
    __m512i x23a = _mm512_or_si512(a2, _mm512_slli_epi64(a3, 32));
    __m512i x01b = _mm512_or_si512(b0, _mm512_slli_epi64(b1, 32));
    __m512i x23b = _mm512_or_si512(b2, _mm512_slli_epi64(b3, 32));
    /* block j = [x01[j], x23[j]]: interleave the 64-bit lanes */
    const __m512i lo_idx = _mm512_set_epi64(11, 3, 10, 2, 9, 1, 8, 0);
    const __m512i hi_idx = _mm512_set_epi64(15, 7, 14, 6, 13, 5, 12, 4);
    _mm512_storeu_si512(out, _mm512_permutex2var_epi64(x01a, lo_idx, x23a));
    _mm512_storeu_si512(out + 16, _mm512_permutex2var_epi64(x01a, hi_idx, x23a));
    _mm512_storeu_si512(out + 32, _mm512_permutex2var_epi64(x01b, lo_idx, x23b));
    _mm512_storeu_si512(out + 48, _mm512_permutex2var_epi64(x01b, hi_idx, x23b));
}
#endif

/* out[0..nw-1] = the next nw values of rng_u32(r), leaving r where rng_u32 would. */
static void rng_fill_u32(rng_stream *r, uint32_t *out, int64_t nw) {
    int64_t i = 0;
    while (i < nw && r->used < 4) out[i++] = rng_u32(r);
#if defined(__AVX512F__)
    uint64_t ctr = (uint64_t)r->ctr[0] | (uint64_t)r->ctr[1] << 32;
    for (; nw - i >= 64; i += 64, ctr += 16) philox16(r, ctr, out + i);
    r->ctr[0] = (uint32_t)ctr;
    r->ctr[1] = (uint32_t)(ctr >> 32);
#endif
    while (i < nw) out[i++] = rng_u32(r);
}

/* Dropout masks are consumed in chunks of DROP_CHUNK elements (even, so the 16-bit
 * halves pair up exactly as in the one-at-a-time definition). */
#define DROP_CHUNK 2048

void layer_colsum_add(float *db, const float *d, int64_t n, int64_t C, int64_t j0, int64_t j1) {
    int64_t j = j0;
    for (; j + LV <= j1; j += LV) {
        lvf a = vset(0.0f);
        for (int64_t i = 0; i < n; i++) a += vld(d + i * C + j);
        vst(db + j, vld(db + j) + a);
    }
    for (; j < j1; j++) {
        float a = 0.0f;
        for (int64_t i = 0; i < n; i++) a += d[i * C + j];
        db[j] += a;
    }
}

/* ---- Matrix product over a thread team ------------------------------------------
 * OpenBLAS does not promise the same bits for a sub-block as for the whole product (it
 * switches kernels with the size), so the cut must not depend on the thread count:
 * the output dimension cut (rows when M >= N) is split into `pieces` blocks decided by
 * the shape alone, and the team shares out whole pieces. One thread runs the same
 * pieces in turn. */
typedef struct gemm_job {
    int ta, tb, cut_rows;
    int64_t M, N, K, lda, ldb, ldc, pieces;
    float alpha, beta;
    const float *A, *B, *bias; /* bias: rows of C start as it (cut_rows only) */
    float *C;
} gemm_job;

/* Pieces start on multiples of 16 rows/columns (whole register tiles of the SGEMM
 * kernels), are at least 128 long, at most 8 of them. Not cut: products under 2^18
 * multiply-adds (OpenBLAS's own threading threshold), and products whose inner size K
 * exceeds the cut side (weight gradients: every piece would pack the whole K-long
 * other operand again, 10-35% more time measured at one thread). */
#define GEMM_ALIGN 16
#define GEMM_MIN_PIECE 128
#define GEMM_MAX_PIECES 8

static int64_t gemm_edge(const gemm_job *g, int64_t i) {
    int64_t D = g->cut_rows ? g->M : g->N;
    int64_t units = (D + GEMM_ALIGN - 1) / GEMM_ALIGN, e = units * i / g->pieces * GEMM_ALIGN;
    return e < D ? e : D;
}

static void gemm_pieces(const gemm_job *g, int64_t p0, int64_t p1) {
    for (int64_t piece = p0; piece < p1; piece++) {
        int64_t lo = gemm_edge(g, piece), hi = gemm_edge(g, piece + 1);
        if (lo >= hi) continue;
        const float *A = g->A, *B = g->B;
        float *C = g->C;
        int64_t m = g->M, n = g->N;
        float beta = g->beta;
        if (g->cut_rows) {
            A += g->ta ? lo : lo * g->lda;
            C += lo * g->ldc;
            m = hi - lo;
            if (g->bias) {
                int64_t n16 = n & ~(int64_t)(LV - 1);
                for (int64_t i = 0; i < m; i++) {
                    float *o = C + i * g->ldc;
                    for (int64_t j = 0; j < n16; j += LV) vst(o + j, vld(g->bias + j));
                    for (int64_t j = n16; j < n; j++) o[j] = g->bias[j];
                }
                beta = 1.0f;
            }
        } else {
            B += g->tb ? lo * g->ldb : lo;
            C += lo;
            n = hi - lo;
        }
        cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans,
                    g->tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)g->K, g->alpha, A,
                    (int)g->lda, B, (int)g->ldb, beta, C, (int)g->ldc);
    }
}

static void gemm_part(void *v, int64_t p0, int64_t p1, int tid) { gemm_pieces(v, p0, p1); }

static void gemm_plan(gemm_job *g) {
    int64_t D = g->cut_rows ? g->M : g->N;
    g->pieces = 1;
    if (g->M * g->N * g->K >= ((int64_t)1 << 18) && g->K <= D) {
        g->pieces = D / GEMM_MIN_PIECE;
        if (g->pieces > GEMM_MAX_PIECES) g->pieces = GEMM_MAX_PIECES;
        if (g->pieces < 1) g->pieces = 1;
    }
}

static void gemm_run(par_pool *p, gemm_job *g) {
    gemm_plan(g);
    par_for(p, g->pieces, gemm_part, g);
}

void layer_gemm(par_pool *p, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    gemm_job g = {ta, tb, M >= N, M, N, K, lda, ldb, ldc, 1, alpha, beta, A, B, NULL, C};
    gemm_run(p, &g);
}

/* ---- Linear ------------------------------------------------------------------ */
void layer_linear_forward(par_pool *p, float *out, const float *inp, const float *W, int64_t ldw,
                          const float *b, int64_t n, int64_t cin, int64_t cout) {
    if (n == 0) return;
    /* rows start as the bias and the GEMM adds into them: one pass, not two */
    gemm_job g = {0, 1, 1, n, cout, cin, cin, ldw, cout, 1, 1.0f, 0.0f, inp, W, b, out};
    gemm_run(p, &g);
}

/* The input gradient's pieces and the weight gradient (one uncut product) at once:
 * with a team, thread 0 takes the weight gradient and the others share the pieces
 * (the two products have the same FLOP count); alone, one after the other. */
typedef struct linear_bwd_job {
    gemm_job din, dw;
    int team, has_din, has_dw;
} linear_bwd_job;

static void linear_bwd_body(void *v, int64_t t0, int64_t t1, int tid) {
    const linear_bwd_job *j = v;
    if (j->team == 1) {
        if (j->has_din) gemm_pieces(&j->din, 0, j->din.pieces);
        if (j->has_dw) gemm_pieces(&j->dw, 0, 1);
        return;
    }
    if (tid == 0) {
        if (j->has_dw) gemm_pieces(&j->dw, 0, 1);
        return;
    }
    int64_t P = j->din.pieces, k = j->team - 1;
    if (j->has_din) gemm_pieces(&j->din, P * (tid - 1) / k, P * tid / k);
}

static void linear_backward(par_pool *p, float *dinp, float beta_in, float *dW, float *db,
                            const float *dout, const float *inp, const float *W, int64_t ldw,
                            int64_t n, int64_t cin, int64_t cout) {
    if (n == 0) return;
    linear_bwd_job j = {
        {0, 0, n >= cin, n, cin, cout, cout, ldw, cin, 1, 1.0f, beta_in, dout, W, NULL, dinp},
        {1, 0, 1, cout, cin, n, cout, cin, ldw, 1, 1.0f, 1.0f, dout, inp, NULL, dW},
        par_threads(p), dinp != NULL, dW != NULL};
    gemm_plan(&j.din);
    if (j.team > 1 && dinp && dW)
        par_for(p, j.team, linear_bwd_body, &j);
    else {
        if (dinp) gemm_run(p, &j.din);
        if (dW) gemm_pieces(&j.dw, 0, 1);
    }
    if (db) layer_colsum_add(db, dout, n, cout, 0, cout);
}

void layer_linear_backward(par_pool *p, float *dinp, float *dW, float *db, const float *dout,
                           const float *inp, const float *W, int64_t ldw, int64_t n,
                           int64_t cin, int64_t cout) {
    linear_backward(p, dinp, 1.0f, dW, db, dout, inp, W, ldw, n, cin, cout);
}

void layer_linear_backward_set(par_pool *p, float *dinp, float *dW, float *db, const float *dout,
                               const float *inp, const float *W, int64_t ldw, int64_t n,
                               int64_t cin, int64_t cout) {
    linear_backward(p, dinp, 0.0f, dW, db, dout, inp, W, ldw, n, cin, cout);
}

/* ---- LayerNorm ----------------------------------------------------------------- */
void layer_norm_forward(float *out, float *xhat, float *rstd, const float *inp,
                        const float *gamma, const float *beta, int64_t n, int64_t C) {
    int64_t C16 = C & ~(int64_t)(LV - 1);
    for (int64_t i = 0; i < n; i++) {
        const float *x = inp + i * C;
        lvf a = vset(0.0f);
        for (int64_t j = 0; j < C16; j += LV) a += vld(x + j);
        float s = vsum(a);
        for (int64_t j = C16; j < C; j++) s += x[j];
        float mu = s / (float)C;
        lvf mv = vset(mu);
        a = vset(0.0f);
        for (int64_t j = 0; j < C16; j += LV) {
            lvf t = vld(x + j) - mv;
            a += t * t;
        }
        float s2 = vsum(a);
        for (int64_t j = C16; j < C; j++) s2 += (x[j] - mu) * (x[j] - mu);
        float rs = 1.0f / sqrtf(s2 / (float)C + 1e-5f);
        lvf rv = vset(rs);
        float *xh = xhat + i * C, *o = out + i * C;
        for (int64_t j = 0; j < C16; j += LV) {
            lvf t = (vld(x + j) - mv) * rv;
            vst(xh + j, t);
            vst(o + j, t * vld(gamma + j) + vld(beta + j));
        }
        for (int64_t j = C16; j < C; j++) {
            xh[j] = (x[j] - mu) * rs;
            o[j] = xh[j] * gamma[j] + beta[j];
        }
        rstd[i] = rs;
    }
}

void layer_norm_backward_input(float *dinp, const float *dout, const float *xhat,
                               const float *rstd, const float *gamma, int64_t n, int64_t C) {
    int64_t C16 = C & ~(int64_t)(LV - 1);
    for (int64_t i = 0; i < n; i++) {
        const float *dy = dout + i * C, *xh = xhat + i * C;
        lvf a = vset(0.0f), b = vset(0.0f);
        for (int64_t j = 0; j < C16; j += LV) {
            lvf dxh = vld(dy + j) * vld(gamma + j);
            a += dxh;
            b += dxh * vld(xh + j);
        }
        float sd = vsum(a), sdx = vsum(b);
        for (int64_t j = C16; j < C; j++) {
            float dxh = dy[j] * gamma[j];
            sd += dxh;
            sdx += dxh * xh[j];
        }
        float md = sd / (float)C, mdx = sdx / (float)C, rs = rstd[i];
        lvf mdv = vset(md), mxv = vset(mdx), rv = vset(rs);
        float *dx = dinp + i * C;
        for (int64_t j = 0; j < C16; j += LV)
            vst(dx + j, vld(dx + j) + rv * (vld(dy + j) * vld(gamma + j) - mdv - vld(xh + j) * mxv));
        for (int64_t j = C16; j < C; j++) dx[j] += rs * (dy[j] * gamma[j] - md - xh[j] * mdx);
    }
}

void layer_norm_backward_params(float *dgamma, float *dbeta, const float *dout,
                                const float *xhat, int64_t n, int64_t C, int64_t j0, int64_t j1) {
    int64_t j = j0;
    for (; j + LV <= j1; j += LV) { /* a column strip in registers, rows in order */
        lvf g = vld(dgamma + j), b = vld(dbeta + j);
        for (int64_t i = 0; i < n; i++) {
            lvf d = vld(dout + i * C + j);
            g += d * vld(xhat + i * C + j);
            b += d;
        }
        vst(dgamma + j, g);
        vst(dbeta + j, b);
    }
    for (; j < j1; j++)
        for (int64_t i = 0; i < n; i++) {
            dgamma[j] += dout[i * C + j] * xhat[i * C + j];
            dbeta[j] += dout[i * C + j];
        }
}

void layer_norm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                         const float *xhat, const float *rstd, const float *gamma, int64_t n,
                         int64_t C) {
    layer_norm_backward_params(dgamma, dbeta, dout, xhat, n, C, 0, C);
    layer_norm_backward_input(dinp, dout, xhat, rstd, gamma, n, C);
}

/* ---- ReLU ------------------------------------------------------------------------ */
void layer_relu_forward(float *out, const float *inp, int64_t n) {
    int64_t i = 0;
    for (; i + LV <= n; i += LV) vst(out + i, vmax(vld(inp + i), vset(0.0f)));
    for (; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void layer_relu_backward(float *dinp, const float *dout, const float *pre, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (pre[i] > 0.0f) dinp[i] += dout[i];
}

/* ---- GCN ----------------------------------------------------------------------- */
void layer_csr_build(layer_csr *c, const uint8_t *adj, const uint8_t *keep, int32_t N,
                     const int32_t *idx, int32_t n) {
    c->n = n;
    c->rowptr[0] = 0;
    /* pass 1: columns of A_S + I per row, ascending (self loop once, adj's diagonal
     * ignored); pass 2: values 1 / sqrt(deg_i deg_j) */
    for (int32_t i = 0; i < n; i++) {
        const uint8_t *ar = adj + (size_t)idx[i] * (size_t)N;
        const uint8_t *kr = keep ? keep + (size_t)idx[i] * (size_t)N : NULL;
        int32_t p = c->rowptr[i];
        for (int32_t j = 0; j < n; j++) {
            int32_t oj = idx[j];
            int on = j == i || (ar[oj] && (!kr || kr[oj]));
            c->col[p] = j;
            p += on;
        }
        c->rowptr[i + 1] = p;
    }
    for (int32_t i = 0; i < n; i++) {
        float di = (float)(c->rowptr[i + 1] - c->rowptr[i]);
        for (int32_t p = c->rowptr[i]; p < c->rowptr[i + 1]; p++) {
            int32_t j = c->col[p];
            float dj = (float)(c->rowptr[j + 1] - c->rowptr[j]);
            c->val[p] = 1.0f / sqrtf(di * dj);
        }
    }
}

void layer_gcn_propagate(float *out, const float *inp, const layer_csr *c, int64_t C,
                         int64_t ld, int accumulate) {
    for (int32_t i = 0; i < c->n; i++) {
        float *o = out + (int64_t)i * ld;
        if (!accumulate) memset(o, 0, (size_t)C * sizeof *o);
        int64_t j = 0;
        for (; j + 4 * LV <= C; j += 4 * LV) { /* 4 registers of columns per pass over the row */
            lvf a0 = vld(o + j), a1 = vld(o + j + LV), a2 = vld(o + j + 2 * LV), a3 = vld(o + j + 3 * LV);
            for (int32_t p = c->rowptr[i]; p < c->rowptr[i + 1]; p++) {
                const float *x = inp + (int64_t)c->col[p] * ld + j;
                lvf v = vset(c->val[p]);
                a0 += v * vld(x), a1 += v * vld(x + LV), a2 += v * vld(x + 2 * LV), a3 += v * vld(x + 3 * LV);
            }
            vst(o + j, a0), vst(o + j + LV, a1), vst(o + j + 2 * LV, a2), vst(o + j + 3 * LV, a3);
        }
        for (; j + LV <= C; j += LV) {
            lvf a = vld(o + j);
            for (int32_t p = c->rowptr[i]; p < c->rowptr[i + 1]; p++)
                a += vset(c->val[p]) * vld(inp + (int64_t)c->col[p] * ld + j);
            vst(o + j, a);
        }
        for (; j < C; j++)
            for (int32_t p = c->rowptr[i]; p < c->rowptr[i + 1]; p++)
                o[j] += c->val[p] * inp[(int64_t)c->col[p] * ld + j];
    }
}

/* ---- Dropout --------------------------------------------------------------------- */
/* xc[i] = keep_i ? xc[i] * s : 0 over m elements whose 16-bit draws are the halves of
 * w (element 2j: low half of w[j], 2j+1: high half). On a little-endian machine the
 * halves in memory order are the elements in order. */
static void drop_apply(float *xc, const uint32_t *w, int64_t m, uint32_t thr, float s) {
    int64_t i = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    lvi tv = (lvi)vset(0.0f) + (int32_t)thr;
    lvf sv = vset(s);
    for (; i + LV <= m; i += LV) {
        lvh h;
        memcpy(&h, (const unsigned char *)w + 2 * i, sizeof h);
        lvi keep = __builtin_convertvector(h, lvi) >= tv;
        vst(xc + i, (lvf)((lvi)(vld(xc + i) * sv) & keep));
    }
#endif
    for (; i < m; i++) {
        uint32_t u = (i & 1) ? w[i >> 1] >> 16 : w[i >> 1] & 0xFFFFu;
        xc[i] = u >= thr ? xc[i] * s : 0.0f;
    }
}

void layer_dropout(float *x, int64_t n, float p, rng_stream *r) {
    if (p <= 0.0f) return;
    uint32_t thr = (uint32_t)((double)p * 65536.0 + 0.5);
    float s = 1.0f / (1.0f - p);
    uint32_t w[DROP_CHUNK / 2];
    for (int64_t c = 0; c < n; c += DROP_CHUNK) {
        int64_t m = n - c < DROP_CHUNK ? n - c : DROP_CHUNK;
        rng_fill_u32(r, w, (m + 1) / 2);
        drop_apply(x + c, w, m, thr, s);
    }
}

/* ---- Attention ------------------------------------------------------------------ */
static void attn_drop_stream(rng_stream *r, const layer_attn_drop *d, int64_t h) {
    rng_init(r, d->seed, RNG_DROPOUT, d->key0, d->key1, d->site_base + (uint64_t)h);
}

void layer_attn_forward(float *out, float *lse, const float *qkv, int64_t T, int64_t H,
                        int64_t nh, const layer_attn_drop *drop, float *scratch) {
    int64_t d = H / nh;
    float scale = 1.0f / sqrtf((float)d);
    int ti = (int)T, ld = (int)(3 * H);
    for (int64_t h = 0; h < nh; h++) {
        const float *q = qkv + h * d, *k = qkv + H + h * d, *v = qkv + 2 * H + h * d;
        float *S = scratch;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ti, ti, (int)d, scale, q, ld, k, ld,
                    0.0f, S, ti);
        for (int64_t i = 0; i < T; i++) {
            float *s = S + i * T, mx = s[0];
            int64_t j = 0;
            if (T >= LV) {
                lvf m = vld(s);
                for (j = LV; j + LV <= T; j += LV) m = vmax(m, vld(s + j));
                for (int t = 0; t < LV; t++) mx = m[t] > mx ? m[t] : mx;
            }
            for (; j < T; j++) mx = s[j] > mx ? s[j] : mx;
            float sum = exp_shift_sum(s, T, mx), inv = 1.0f / sum;
            lvf iv = vset(inv);
            for (j = 0; j + LV <= T; j += LV) vst(s + j, vld(s + j) * iv);
            for (; j < T; j++) s[j] *= inv;
            lse[h * T + i] = mx + logf(sum);
        }
        if (drop && drop->p > 0.0f) {
            rng_stream r;
            attn_drop_stream(&r, drop, h);
            layer_dropout(S, T * T, drop->p, &r);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ti, (int)d, ti, 1.0f, S, ti, v, ld,
                    0.0f, out + h * d, (int)H);
    }
}

/* P (n) probabilities -> Pd = P * keep / (1 - p) for the dropout mask of stream r; the
 * dropped entries of P get their sign bit set (P >= 0, so |P| is kept and the sign is
 * the mask: the backward needs both P and the mask, and has room for two T x T). */
static void attn_drop_split(float *P, float *Pd, int64_t n, float p, rng_stream *r) {
    uint32_t thr = (uint32_t)((double)p * 65536.0 + 0.5);
    float s = 1.0f / (1.0f - p);
    uint32_t w[DROP_CHUNK / 2];
    for (int64_t c = 0; c < n; c += DROP_CHUNK) {
        int64_t m = n - c < DROP_CHUNK ? n - c : DROP_CHUNK;
        rng_fill_u32(r, w, (m + 1) / 2);
        float *pc = P + c, *dc = Pd + c;
        int64_t i = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        lvi tv = (lvi)vset(0.0f) + (int32_t)thr, sign = (lvi)vset(-0.0f);
        lvf sv = vset(s);
        for (; i + LV <= m; i += LV) {
            lvh hw;
            memcpy(&hw, (const unsigned char *)w + 2 * i, sizeof hw);
            lvi keep = __builtin_convertvector(hw, lvi) >= tv;
            lvf pv = vld(pc + i);
            vst(dc + i, (lvf)((lvi)(pv * sv) & keep));
            vst(pc + i, (lvf)((lvi)pv | (sign & ~keep)));
        }
#endif
        for (; i < m; i++) {
            uint32_t u = (i & 1) ? w[i >> 1] >> 16 : w[i >> 1] & 0xFFFFu;
            dc[i] = u >= thr ? pc[i] * s : 0.0f;
            if (u < thr) pc[i] = copysignf(pc[i], -1.0f);
        }
    }
}

/* One row of dS = P * (dP - rowsum(P * dP)) in place of g (= dPd on entry). ds > 0:
 * dropout on, p carries the mask in its sign bits and dP = dPd * mask * ds. */
static void attn_ds_row(const float *p, float *g, int64_t T, float ds) {
    const lvi nosign = (lvi)vset(0.0f) + 0x7FFFFFFF;
    lvf acc = vset(0.0f), dv = vset(ds);
    int64_t j = 0;
    for (; j + LV <= T; j += LV) {
        lvi pb = (lvi)vld(p + j);
        lvf pa = (lvf)(pb & nosign), gv = vld(g + j);
        if (ds > 0.0f) gv = (lvf)((lvi)(gv * dv) & (pb >= 0)); /* sign clear = kept */
        vst(g + j, gv);
        acc += pa * gv;
    }
    float D = vsum(acc);
    for (; j < T; j++) {
        if (ds > 0.0f) g[j] = signbit(p[j]) ? 0.0f : g[j] * ds;
        D += fabsf(p[j]) * g[j];
    }
    lvf Dv = vset(D);
    for (j = 0; j + LV <= T; j += LV) {
        lvf pa = (lvf)((lvi)vld(p + j) & nosign);
        vst(g + j, pa * (vld(g + j) - Dv));
    }
    for (; j < T; j++) g[j] = fabsf(p[j]) * (g[j] - D);
}

void layer_attn_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                         const float *lse, int64_t T, int64_t H, int64_t nh,
                         const layer_attn_drop *drop, float *scratch) {
    (void)out;
    int64_t d = H / nh;
    float scale = 1.0f / sqrtf((float)d);
    int ti = (int)T, ld = (int)(3 * H);
    int dropping = drop && drop->p > 0.0f;
    float *P = scratch, *S2 = scratch + T * T;
    float ds = dropping ? 1.0f / (1.0f - drop->p) : 1.0f;
    for (int64_t h = 0; h < nh; h++) {
        const float *q = qkv + h * d, *k = qkv + H + h * d, *v = qkv + 2 * H + h * d;
        const float *dO = dout + h * d;
        float *dq = dqkv + h * d, *dk = dqkv + H + h * d, *dv = dqkv + 2 * H + h * d;
        /* recompute the probabilities from the kept log-sum-exp */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ti, ti, (int)d, scale, q, ld, k, ld,
                    0.0f, P, ti);
        for (int64_t i = 0; i < T; i++) exp_shift_sum(P + i * T, T, lse[h * T + i]);
        const float *Pd = P;
        if (dropping) { /* one mask generation: Pd in S2, the mask in P's sign bits */
            rng_stream r;
            attn_drop_stream(&r, drop, h);
            attn_drop_split(P, S2, T * T, drop->p, &r);
            Pd = S2;
        }
        /* dV += Pd^T dO */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ti, (int)d, ti, 1.0f, Pd, ti, dO,
                    (int)H, 1.0f, dv, ld);
        /* dPd = dO V^T; dP = dPd * mask / (1 - p) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ti, ti, (int)d, 1.0f, dO, (int)H, v,
                    ld, 0.0f, S2, ti);
        /* dS = P * (dP - rowsum(P * dP)) */
        for (int64_t i = 0; i < T; i++)
            attn_ds_row(P + i * T, S2 + i * T, T, dropping ? ds : 0.0f);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ti, (int)d, ti, scale, S2, ti, k, ld,
                    1.0f, dq, ld);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ti, (int)d, ti, scale, S2, ti, q, ld,
                    1.0f, dk, ld);
    }
}

/* ---- Mean pooling ------------------------------------------------------------- */
void layer_meanpool_forward(float *out, const float *inp, int64_t n, int64_t C, int64_t ld) {
    memset(out, 0, (size_t)C * sizeof *out);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < C; j++) out[j] += inp[i * ld + j];
    float inv = 1.0f / (float)n;
    for (int64_t j = 0; j < C; j++) out[j] *= inv;
}

void layer_meanpool_backward(float *dinp, const float *dout, int64_t n, int64_t C, int64_t ld) {
    float inv = 1.0f / (float)n;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < C; j++) dinp[i * ld + j] += dout[j] * inv;
}

/* ---- L2 normalisation ------------------------------------------------------------ */
void layer_l2norm_forward(float *out, float *norm, const float *inp, int64_t n, int64_t C) {
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t j = 0; j < C; j++) s += (double)inp[i * C + j] * (double)inp[i * C + j];
        double nr = sqrt(s);
        if (nr < 1e-12) nr = 1e-12;
        norm[i] = (float)nr;
        for (int64_t j = 0; j < C; j++) out[i * C + j] = (float)((double)inp[i * C + j] / nr);
    }
}

void layer_l2norm_backward(float *dinp, const float *dout, const float *out, const float *norm,
                           int64_t n, int64_t C) {
    for (int64_t i = 0; i < n; i++) {
        double dot = 0;
        for (int64_t j = 0; j < C; j++) dot += (double)out[i * C + j] * (double)dout[i * C + j];
        float dt = (float)dot, inv = 1.0f / norm[i];
        for (int64_t j = 0; j < C; j++)
            dinp[i * C + j] += (dout[i * C + j] - out[i * C + j] * dt) * inv;
    }
}

/* ---- Losses -------------------------------------------------------------------- */
double layer_smoothl1(float *dy, const float *y, const float *t, int64_t n, double scale) {
    double s = 0;
    float g = (float)(scale / (double)n);
    for (int64_t i = 0; i < n; i++) {
        float d = y[i] - t[i], a = fabsf(d);
        if (a < 1.0f) {
            s += 0.5 * (double)d * (double)d;
            if (dy) dy[i] += g * d;
        } else {
            s += (double)a - 0.5;
            if (dy) dy[i] += d > 0.0f ? g : -g;
        }
    }
    return s / (double)n;
}

/* BCE with logits, stable form: max(s,0) - s*a + log(1 + exp(-|s|)). */
static double bce_logit(float s, int a) {
    double sd = (double)s;
    return (sd > 0 ? sd : 0) - (a ? sd : 0) + log1p(exp(-fabs(sd)));
}

static float sigmoidf_(float s) {
    return s >= 0.0f ? 1.0f / (1.0f + expf(-s)) : expf(s) / (1.0f + expf(s));
}

double layer_bce_struct(float *dz, const float *z, int64_t n, int64_t H, int64_t ld,
                        const uint8_t *adj, int32_t N, const int32_t *idx, double scale,
                        float *scratch) {
    if (n < 2) return 0.0;
    float *S = scratch;
    float is = 1.0f / sqrtf((float)H);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, (int)H, is, z, (int)ld, z,
                (int)ld, 0.0f, S, (int)n);
    double loss = 0, cnt = (double)n * (double)(n - 1);
    float gs = (float)(scale / cnt);
    for (int64_t i = 0; i < n; i++) {
        S[i * n + i] = 0.0f;
        for (int64_t j = i + 1; j < n; j++) {
            float s = S[i * n + j]; /* upper triangle: one logit per unordered pair */
            int aij = adj[(size_t)idx[i] * (size_t)N + (size_t)idx[j]] != 0;
            int aji = adj[(size_t)idx[j] * (size_t)N + (size_t)idx[i]] != 0;
            loss += bce_logit(s, aij) + bce_logit(s, aji);
            float sg = sigmoidf_(s);
            float g = gs * ((sg - (float)aij) + (sg - (float)aji));
            S[i * n + j] = g;
            S[j * n + i] = g;
        }
    }
    if (dz)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)H, (int)n, is, S,
                    (int)n, z, (int)ld, 1.0f, dz, (int)ld);
    return loss / cnt;
}

double layer_ntxent(float *dza, float *dzb, const float *za, const float *zb, int64_t m,
                    int64_t P, double tau, double scale, float *scratch) {
    int64_t m2 = 2 * m;
    int mi = (int)m, pi = (int)P, l2 = (int)m2;
    float *S = scratch; /* (2m, 2m): [aa ab; ba bb] */
    float it = (float)(1.0 / tau);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mi, mi, pi, it, za, pi, za, pi, 0.0f, S, l2);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mi, mi, pi, it, za, pi, zb, pi, 0.0f, S + m,
                l2);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mi, mi, pi, it, zb, pi, za, pi, 0.0f,
                S + m * m2, l2);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mi, mi, pi, it, zb, pi, zb, pi, 0.0f,
                S + m * m2 + m, l2);
    double loss = 0;
    float g = (float)(scale / (double)m2);
    for (int64_t u = 0; u < m2; u++) {
        float *s = S + u * m2;
        int64_t pos = u < m ? u + m : u - m;
        float mx = -INFINITY;
        for (int64_t w = 0; w < m2; w++)
            if (w != u && s[w] > mx) mx = s[w];
        double sum = 0;
        for (int64_t w = 0; w < m2; w++)
            if (w != u) sum += exp((double)(s[w] - mx));
        double lse = (double)mx + log(sum);
        loss += lse - (double)s[pos];
        /* row u of G = dL/d(s/tau): softmax - onehot(pos) */
        for (int64_t w = 0; w < m2; w++)
            s[w] = w == u ? 0.0f : g * ((float)exp((double)s[w] - lse) - (w == pos ? 1.0f : 0.0f));
    }
    /* d/dz of sum_uw G_uw z_u.z_w / tau = (G + G^T) z / tau */
    for (int64_t u = 0; u < m2; u++)
        for (int64_t w = u + 1; w < m2; w++) {
            float t = S[u * m2 + w] + S[w * m2 + u];
            S[u * m2 + w] = t;
            S[w * m2 + u] = t;
        }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, mi, pi, mi, it, S, l2, za, pi, 1.0f, dza, pi);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, mi, pi, mi, it, S + m, l2, zb, pi, 1.0f,
                dza, pi);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, mi, pi, mi, it, S + m * m2, l2, za, pi,
                1.0f, dzb, pi);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, mi, pi, mi, it, S + m * m2 + m, l2, zb,
                pi, 1.0f, dzb, pi);
    return loss / (double)m2;
}

/* sum over x of exp(x - sub) (vexp), float lanes flushed into a double every 64 vectors */
static double exp_sum(const float *x, int64_t n, float sub) {
    const lvf sv = vset(sub);
    double tot = 0;
    int64_t j = 0;
    while (j + LV <= n) {
        lvf acc = vset(0.0f);
        for (int c = 0; c < 64 && j + LV <= n; c++, j += LV) acc += vexp(vld(x + j) - sv);
        tot += (double)vsum(acc);
    }
    for (; j < n; j++) tot += exp((double)x[j] - (double)sub);
    return tot;
}

void layer_ntxent_rows(float *S, double *st, const float *zo, const float *zg, int64_t m,
                       int64_t k, int64_t P, int64_t c0, double tau) {
    if (m == 0) return;
    BGFM_ASSERT(m % 2 == 0 && c0 >= 0 && c0 + m <= k);
    int64_t h = m / 2;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)k, (int)P,
                (float)(1.0 / tau), zo, (int)P, zg, (int)P, 0.0f, S, (int)k);
    for (int64_t i = 0; i < m; i++) {
        float *s = S + i * k;
        int64_t self = c0 + i, pos = c0 + (i < h ? i + h : i - h);
        s[self] = -INFINITY; /* w != i: its exp is 0 here and its weight 0 in pass 2 */
        lvf mv = vset(-INFINITY);
        int64_t w = 0;
        for (; w + LV <= k; w += LV) mv = vmax(mv, vld(s + w));
        float mx = -INFINITY;
        for (int l = 0; l < LV; l++) mx = fmaxf(mx, mv[l]);
        for (; w < k; w++) mx = fmaxf(mx, s[w]);
        double lse = (double)mx + log(exp_sum(s, k, mx));
        st[2 * i] = lse;
        st[2 * i + 1] = lse - (double)s[pos];
    }
}

void layer_ntxent_rows_backward(float *dz, float *S, const double *stg, const float *zg,
                                int64_t m, int64_t k, int64_t P, int64_t c0, double tau,
                                double scale, float *work) {
    if (m == 0) return;
    int64_t h = m / 2;
    const float g = (float)(scale / (double)k);
    float *hi = work, *lo = work + k; /* every anchor's log-sum-exp as hi + lo floats */
    for (int64_t w = 0; w < k; w++) {
        hi[w] = (float)stg[2 * w];
        lo[w] = (float)(stg[2 * w] - (double)hi[w]);
    }
    const lvf gv = vset(g);
    for (int64_t i = 0; i < m; i++) {
        float *s = S + i * k;
        int64_t self = c0 + i, pos = c0 + (i < h ? i + h : i - h);
        /* M_iw = G_iw + G_wi = g (p_iw + p_wi) - 2 g [w == pos]: p_iw = exp(s_iw - lse_i),
         * and, S being symmetric, p_wi = exp(s_iw - lse_w) with anchor w's log-sum-exp
         * from its rank; s_ii = -inf from pass 1 gives M_ii = 0 */
        const lvf hv = vset(hi[self]), lv = vset(lo[self]);
        int64_t w = 0;
        for (; w + LV <= k; w += LV) {
            lvf x = vld(s + w);
            vst(s + w, gv * (vexp((x - hv) - lv) + vexp((x - vld(hi + w)) - vld(lo + w))));
        }
        for (; w < k; w++)
            s[w] = g * (float)(exp((double)s[w] - stg[2 * self]) + exp((double)s[w] - stg[2 * w]));
        s[self] = 0.0f;
        s[pos] -= 2.0f * g;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)P, (int)k,
                (float)(1.0 / tau), S, (int)k, zg, (int)P, 1.0f, dz, (int)P);
}
