/* layers.h: the model's layer kinds as forward/backward pairs over float32 (llm.c
 * style): outputs first, shapes in the comment, backward ADDS (+=) into input and
 * parameter gradients so accumulation is free; nothing here allocates.
 * Not the model (model.h wires these together) and not the optimiser (optim.h). */
#ifndef BGFM_LAYERS_H
#define BGFM_LAYERS_H

#include <stdint.h>

#include "bgfm/par.h"
#include "bgfm/rng.h"

/* ---- Matrix product over a thread team -----------------------------------------
 * C (M, N) = alpha op(A) op(B) + beta C, row-major, op = transpose when ta/tb; the
 * output's longer side is cut into pieces fixed by the shape alone (not by the thread
 * count), each a single-threaded cblas_sgemm (call with OpenBLAS at one thread), shared
 * out over the team p (NULL: the calling thread runs them all): the same bits for any
 * team size. */
void layer_gemm(par_pool *p, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                int64_t ldc);

/* ---- Linear: out = inp W^T + b ------------------------------------------------
 * inp (n, cin), W (cout, cin) with row stride ldw >= cin, b (cout) or NULL,
 * out (n, cout). One layer_gemm over the team p (NULL: the calling thread). */
void layer_linear_forward(par_pool *p, float *out, const float *inp, const float *W, int64_t ldw,
                          const float *b, int64_t n, int64_t cin, int64_t cout);
/* dinp (n, cin) += dout W; dW (cout, cin; stride ldw) += dout^T inp; db += colsum(dout).
 * Any of dinp, dW, db may be NULL (not wanted). With a team, the weight gradient (never
 * cut: its K is n) runs beside the input gradient's pieces. */
void layer_linear_backward(par_pool *p, float *dinp, float *dW, float *db, const float *dout,
                           const float *inp, const float *W, int64_t ldw, int64_t n,
                           int64_t cin, int64_t cout);
/* The same with dinp written (= dout W), not added: no zeroing pass needed. */
void layer_linear_backward_set(par_pool *p, float *dinp, float *dW, float *db, const float *dout,
                               const float *inp, const float *W, int64_t ldw, int64_t n,
                               int64_t cin, int64_t cout);

/* ---- LayerNorm over the last axis, eps 1e-5 -------------------------------------
 * inp (n, C) -> out (n, C); xhat (n, C) and rstd (n) kept for backward. out may alias
 * nothing else. */
void layer_norm_forward(float *out, float *xhat, float *rstd, const float *inp,
                        const float *gamma, const float *beta, int64_t n, int64_t C);
/* dinp += d/dinp, dgamma += , dbeta += . */
void layer_norm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                         const float *xhat, const float *rstd, const float *gamma, int64_t n,
                         int64_t C);
/* The two halves of layer_norm_backward, for splitting it across threads with the same
 * results: the input gradient (independent per row) and the parameter gradients over
 * the columns [j0, j1) only (each a sum over the rows in row order). */
void layer_norm_backward_input(float *dinp, const float *dout, const float *xhat,
                               const float *rstd, const float *gamma, int64_t n, int64_t C);
void layer_norm_backward_params(float *dgamma, float *dbeta, const float *dout,
                                const float *xhat, int64_t n, int64_t C, int64_t j0, int64_t j1);
/* db[j] += sum over the n rows of d[i, j] (row order), for the columns [j0, j1) of
 * d (n, C): the bias gradient of layer_linear_backward, column range by column range. */
void layer_colsum_add(float *db, const float *d, int64_t n, int64_t C, int64_t j0, int64_t j1);

/* ---- ReLU: out = max(inp, 0) (out may equal inp) ------------------------------ */
void layer_relu_forward(float *out, const float *inp, int64_t n);
/* dinp += dout * [pre > 0]; pre is the ReLU input. */
void layer_relu_backward(float *dinp, const float *dout, const float *pre, int64_t n);

/* ---- Symmetric-normalised GCN propagation --------------------------------------
 * Ahat = Dt^-1/2 (A_S + I) Dt^-1/2 over a node subset S, stored as CSR (rows in S
 * order, self loop included). A graph's CSR lives in caller memory: rowptr (n+1),
 * col (<= n*n), val (<= n*n). */
typedef struct layer_csr {
    int32_t n;
    int32_t *rowptr, *col;
    float *val;
} layer_csr;
/* Build from a dense 0/1 adjacency adj (N, N) of the whole graph, the subset nodes
 * idx[0..n-1] (ascending original indices), and an optional symmetric keep mask
 * (N, N; 0 = edge dropped) or NULL. Diagonal of adj is ignored (self loop added). */
void layer_csr_build(layer_csr *c, const uint8_t *adj, const uint8_t *keep, int32_t N,
                     const int32_t *idx, int32_t n);
/* out (n, C) = Ahat inp (n, C), rows with stride ld (both). Ahat is symmetric, so the
 * backward of this map is the same map: dinp += Ahat dout (accumulate = 1). */
void layer_gcn_propagate(float *out, const float *inp, const layer_csr *c, int64_t C,
                         int64_t ld, int accumulate);

/* ---- Dropout with counter-based masks ------------------------------------------
 * x (n) *= keep/(1-p), keep = 1 when a 16-bit draw >= p*65536 (resolution 2^-16).
 * The stream r determines the mask, so backward regenerates it from the same key:
 * the same call on the gradient. p == 0 is a no-op. */
void layer_dropout(float *x, int64_t n, float p, rng_stream *r);

/* ---- Multi-head self-attention core -------------------------------------------
 * qkv (T, 3H): [q | k | v] per row, heads of width d = H/nh contiguous inside each.
 * out (T, H): per head softmax(q k^T / sqrt d) v, heads concatenated.
 * lse (nh, T): log-sum-exp of each score row, kept for backward (probabilities are
 * recomputed there rather than stored). scratch: T*T floats.
 * Attention-weight dropout (p > 0): mask from rng_init(seed, RNG_DROPOUT, key0, key1,
 * site_base + head). */
typedef struct layer_attn_drop {
    float p;
    uint64_t seed, key0, key1, site_base;
} layer_attn_drop;
void layer_attn_forward(float *out, float *lse, const float *qkv, int64_t T, int64_t H,
                        int64_t nh, const layer_attn_drop *drop, float *scratch);
/* dqkv (T, 3H) += ; needs out and lse from forward; scratch: 2*T*T floats. */
void layer_attn_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                         const float *lse, int64_t T, int64_t H, int64_t nh,
                         const layer_attn_drop *drop, float *scratch);

/* ---- Mean over rows: out (C) = mean of inp (n, C) rows (row stride ld) --------- */
void layer_meanpool_forward(float *out, const float *inp, int64_t n, int64_t C, int64_t ld);
void layer_meanpool_backward(float *dinp, const float *dout, int64_t n, int64_t C, int64_t ld);

/* ---- Row-wise L2 normalisation: out = x / |x| ---------------------------------- 
 * inp (n, C); norm (n) kept. */
void layer_l2norm_forward(float *out, float *norm, const float *inp, int64_t n, int64_t C);
void layer_l2norm_backward(float *dinp, const float *dout, const float *out, const float *norm,
                           int64_t n, int64_t C);

/* ---- Losses: each returns the loss (double) and writes/ADDS scale * dloss/dinput. */
/* SmoothL1 (beta 1) mean over n elements of (y - t): dy += scale * dL/dy. */
double layer_smoothl1(float *dy, const float *y, const float *t, int64_t n, double scale);
/* Structure loss of one graph: z (n, H) rows with stride ld, logits s_ij = z_i.z_j /
 * sqrt(H) for i != j, BCE with logits against a_ij = adj[idx[i]*N + idx[j]], mean over
 * the n(n-1) ordered pairs. dz += scale * dL/dz. scratch: n*n floats. */
double layer_bce_struct(float *dz, const float *z, int64_t n, int64_t H, int64_t ld,
                        const uint8_t *adj, int32_t N, const int32_t *idx, double scale,
                        float *scratch);
/* NT-Xent over 2m L2-normalised projections: za (m, P) view a, zb (m, P) view b;
 * anchor u's positive is the same graph's other view; cosine s = dot; loss = mean over
 * the 2m anchors of -log(exp(s+/tau) / sum_{w != u} exp(s_uw/tau)). The m rows may be
 * a GLOBAL batch gathered from every rank: dza/dzb (m, P) receive scale * dL/dz for
 * every row (+=) and a rank keeps its own rows. scratch: 4*m*m floats. */
double layer_ntxent(float *dza, float *dzb, const float *za, const float *zb, int64_t m,
                    int64_t P, double tau, double scale, float *scratch);
/* The same loss sharded by anchor rows (dist_ntxent, model.md section 4): k projections
 * zg (k, P) of the whole batch in any order that keeps each rank's anchors together;
 * this rank's m anchors zo (m, P) are columns [c0, c0 + m) of zg, their first m/2 rows
 * view a and the last m/2 the same graphs' view b (anchor i's positive is i +- m/2).
 * Pass 1: S (m, k) = zo zg^T / tau (S_i,c0+i set to -inf: excluded), and per anchor i
 * st[2i] = its log-sum-exp over w != i, st[2i+1] = its loss term (that minus
 * s(i, pos)). Cost m k P, memory m k. Exponentials in float (vexp, 2e-7 relative),
 * summed in double. */
void layer_ntxent_rows(float *S, double *st, const float *zo, const float *zg, int64_t m,
                       int64_t k, int64_t P, int64_t c0, double tau);
/* Pass 2, after every anchor's (log-sum-exp, loss term) pairs were gathered into stg
 * (k x 2, the order of zg): dz (m, P) += scale * dL/dz for the m anchors, L the mean over
 * the k anchors. Row i of dL/dS plus column i (the symmetric term G_wi, from s(i, w)
 * and anchor w's log-sum-exp) in one product with zg. Overwrites S; work: 2k floats. */
void layer_ntxent_rows_backward(float *dz, float *S, const double *stg, const float *zg,
                                int64_t m, int64_t k, int64_t P, int64_t c0, double tau,
                                double scale, float *work);

#endif
