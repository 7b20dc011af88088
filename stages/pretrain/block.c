/* block.c: one pass of the encoder or the decoder over a model_run (block.h): the input
 * embedding and the stacked blocks, forward and backward, each block a sequence of
 * layer calls (layers.h) with the loops between the GEMMs shared out over the
 * workspace's thread team by graph or by column strip (docs/model.md section 9).
 * Not the views, the losses, the readout or the parameter table (model.c). */
#include "bgfm/block.h"

#include <cblas.h>
#include <string.h>

#include "bgfm/par.h"
#include "bgfm/rng.h"
#include "bgfm/simd.h"

/* Short float vectors for the row loops between the GEMMs: LV lanes (bgfm/simd.h). */

/* y[i] += x[i] */
static void vadd(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + LV <= n; i += LV) vst(y + i, vld(y + i) + vld(x + i));
    for (; i < n; i++) y[i] += x[i];
}

/* g[i] = pre[i] > 0 ? g[i] : 0 (ReLU backward in place) */
static void vrelu_mask(float *g, const float *pre, int64_t n) {
    int64_t i = 0;
    for (; i + LV <= n; i += LV) vst(g + i, (lvf)((lvi)vld(g + i) & (vld(pre + i) > vset(0.0f))));
    for (; i < n; i++)
        if (!(pre[i] > 0.0f)) g[i] = 0.0f;
}

/* With a team of several threads (ws->pool), forward and backward run OpenBLAS on one
 * thread: the big B*T-row products are cut across the team by layer_gemm and the
 * per-graph attention / structure-loss products run inside the team's threads, so
 * OpenBLAS's own threads would only spin beside ours. Returns the count to restore. */
int blk_team_begin(const model_ws *ws) {
    int nt = openblas_get_num_threads();
    if (par_threads(ws->pool) <= 1 || nt <= 1) return 0;
    openblas_set_num_threads(1);
    return nt;
}
void blk_team_end(int nt) {
    if (nt > 1) openblas_set_num_threads(nt);
}

/* out (n, C) = xhat * gamma + beta: a LayerNorm output again, bit-identical to
 * layer_norm_forward's (same operations on the same stored xhat). */
static void ln_apply(float *out, const float *xhat, const float *gamma, const float *beta,
                     int64_t n, int64_t C) {
    int64_t C16 = C & ~(int64_t)(LV - 1);
    for (int64_t i = 0; i < n; i++) {
        const float *x = xhat + i * C;
        float *o = out + i * C;
        for (int64_t j = 0; j < C16; j += LV) vst(o + j, vld(x + j) * vld(gamma + j) + vld(beta + j));
        for (int64_t j = C16; j < C; j++) o[j] = x[j] * gamma[j] + beta[j];
    }
}

/* dst[i] = pre[i] > 0 ? g[i] : 0 */
static void vrelu_mask_to(float *dst, const float *g, const float *pre, int64_t n) {
    int64_t i = 0;
    for (; i + LV <= n; i += LV) vst(dst + i, (lvf)((lvi)vld(g + i) & (vld(pre + i) > vset(0.0f))));
    for (; i < n; i++) dst[i] = pre[i] > 0.0f ? g[i] : 0.0f;
}

static layer_attn_drop attn_keys(const drop_keys *d, int b) {
    layer_attn_drop a = {d->p, d->seed, d->step, (uint64_t)d->gidx[b], d->site + 2};
    return a;
}

/* ---- Thread-parallel loops of a block ------------------------------------------
 * Between its GEMMs a block's work is split across ws->pool in two ways, both giving
 * results independent of the thread count (bit-identical to one thread): per graph b
 * (each writes only its own T rows) and, for the sums over all rows (bias, gamma and
 * beta gradients), per column strip, each strip summing the rows in row order. The
 * per-graph attention and structure-loss GEMMs run single-threaded inside a thread. */
typedef struct blk_ctx {
    const model *m;
    float *g; /* gradients (backward) */
    const model_block *p;
    const model_blk_act *a;
    model_blk_act *aw; /* forward: activations written */
    const float *hin;
    const model_run *r;
    model_ws *ws;
    int B;
    int frozen;      /* prompt tuning: no parameter gradients */
    float *dA, *q;   /* edge prompt: d/dAhat per graph (B, n, n), scratch (B, T, H) */
    const drop_keys *dk;
    float *dhin;
    const float *dhout;
    int64_t H, F, nh, T, n, BT;
} blk_ctx;

static blk_ctx blk_ctx_make(const model *m, const model_block *p, const model_run *r,
                            model_ws *ws, int B, const drop_keys *dk) {
    blk_ctx c = {0};
    c.m = m;
    c.p = p;
    c.r = r;
    c.ws = ws;
    c.B = B;
    c.dk = dk;
    c.H = m->cfg.H;
    c.F = m->cfg.F;
    c.nh = m->cfg.nh;
    c.T = r->T;
    c.n = r->n;
    c.BT = (int64_t)B * r->T;
    const model_prompt *pr = r == &ws->ea ? ws->prompt : NULL;
    c.frozen = pr && pr->frozen;
    if (pr && pr->edge && pr->gedge) c.dA = pr->dA, c.q = pr->q;
    return c;
}

/* dropout of graph b's rows of x (per-graph width `per`), stream `which` */
static void drop_graph(float *x, const drop_keys *d, int b, int64_t per, uint64_t which) {
    if (d->p <= 0.0f) return;
    rng_stream r;
    rng_init(&r, d->seed, RNG_DROPOUT, d->step, (uint64_t)d->gidx[b], d->site + which);
    layer_dropout(x + b * per, per, d->p, &r);
}

/* Forward, per graph: u = Ahat (h W_g^T) + b_g on region rows (S1 holds h W_g^T),
 * h1 = LN(h + relu(u)) (token row: h1 = h). */
static void fwd_gcn_body(void *v, int64_t b0, int64_t b1, int tid) {
    const blk_ctx *c = v;
    const float *w = c->m->w;
    int64_t H = c->H, T = c->T, n = c->n;
    model_ws *ws = c->ws;
    float *h1 = ws->S4;
    for (int64_t b = b0; b < b1; b++) {
        layer_csr cs = blk_csr(c->r, (int)b);
        int64_t o = (b * T + 1) * H;
        layer_gcn_propagate(c->aw->u + o, ws->S1 + o, &cs, H, H, 0);
        memset(c->aw->u + b * T * H, 0, (size_t)H * sizeof(float));
        for (int64_t i = 0; i < n; i++) {
            float *u = c->aw->u + o + i * H, *s = ws->S2 + o + i * H;
            const float *x = c->hin + o + i * H, *bg = w + c->p->gb;
            int64_t j = 0;
            for (; j + LV <= H; j += LV) {
                lvf uv = vld(u + j) + vld(bg + j);
                vst(u + j, uv);
                vst(s + j, vld(x + j) + (lvf)((lvi)uv & (uv > vset(0.0f))));
            }
            for (; j < H; j++) {
                u[j] += bg[j];
                s[j] = x[j] + (u[j] > 0.0f ? u[j] : 0.0f);
            }
        }
        layer_norm_forward(h1 + o, c->aw->xg + o, c->aw->rg + b * T + 1, ws->S2 + o,
                           w + c->p->lng_g, w + c->p->lng_b, n, H);
        memcpy(h1 + b * T * H, c->hin + b * T * H, (size_t)H * sizeof(float));
    }
}

static void fwd_attn_body(void *v, int64_t b0, int64_t b1, int tid) {
    const blk_ctx *c = v;
    int64_t H = c->H, T = c->T, nh = c->nh;
    float *scratch = c->ws->attn + (int64_t)tid * 2 * T * T;
    for (int64_t b = b0; b < b1; b++) {
        layer_attn_drop ad = attn_keys(c->dk, (int)b);
        layer_attn_forward(c->aw->att + b * T * H, c->aw->lse + b * nh * T,
                           c->aw->qkv + b * T * 3 * H, T, H, nh, &ad, scratch);
    }
}

/* Forward, per graph: S1 = dropout(S1) (stream `which`) + res; out = LN(S1) with
 * (xhat, rstd) kept; gamma/beta are parameter offsets. */
typedef struct fwd_res_ln {
    const blk_ctx *c;
    const float *res;
    float *out, *xhat, *rstd;
    int64_t gamma, beta;
    uint64_t which;
} fwd_res_ln;

static void fwd_res_ln_body(void *v, int64_t b0, int64_t b1, int tid) {
    const fwd_res_ln *f = v;
    const blk_ctx *c = f->c;
    int64_t H = c->H, T = c->T, o = b0 * T * H, rows = (b1 - b0) * T;
    float *S1 = c->ws->S1;
    for (int64_t b = b0; b < b1; b++) drop_graph(S1, c->dk, (int)b, T * H, f->which);
    vadd(S1 + o, f->res + o, rows * H);
    layer_norm_forward(f->out + o, f->xhat + o, f->rstd + b0 * T, S1 + o, c->m->w + f->gamma,
                       c->m->w + f->beta, rows, H);
}

static void fwd_relu_body(void *v, int64_t b0, int64_t b1, int tid) {
    const blk_ctx *c = v;
    int64_t FT = c->F * c->T;
    layer_relu_forward(c->aw->f1 + b0 * FT, c->aw->f1 + b0 * FT, (b1 - b0) * FT);
}

static void block_forward(const model *m, const model_block *p, model_blk_act *a, const float *hin,
                          const model_run *r, model_ws *ws, int B, const drop_keys *dk) {
    const float *w = m->w;
    blk_ctx c = blk_ctx_make(m, p, r, ws, B, dk);
    c.aw = a;
    c.a = a;
    c.hin = hin;
    int64_t H = c.H, F = c.F, BT = c.BT;
    float *h1 = ws->S4, *h2 = ws->S3; /* not kept: block_backward recomputes them */
    /* graph convolution on region rows: u = Ahat (h W_g^T) + b_g */
    layer_linear_forward(ws->pool, ws->S1, hin, w + p->gW, H, NULL, BT, H, H);
    par_for(ws->pool, B, fwd_gcn_body, &c);
    /* self-attention over token + regions */
    layer_linear_forward(ws->pool, a->qkv, h1, w + p->Wqkv, H, w + p->bqkv, BT, H, 3 * H);
    par_for(ws->pool, B, fwd_attn_body, &c);
    layer_linear_forward(ws->pool, ws->S1, a->att, w + p->Wo, H, w + p->bo, BT, H, H);
    fwd_res_ln f = {&c, h1, h2, a->x1, a->r1, p->ln1_g, p->ln1_b, 0};
    par_for(ws->pool, B, fwd_res_ln_body, &f);
    /* feed-forward */
    layer_linear_forward(ws->pool, a->f1, h2, w + p->W1, H, w + p->b1, BT, H, F);
    par_for(ws->pool, B, fwd_relu_body, &c);
    layer_linear_forward(ws->pool, ws->S1, a->f1, w + p->W2, F, w + p->b2, BT, F, H);
    fwd_res_ln f2 = {&c, h2, a->hout, a->x2, a->r2, p->ln2_g, p->ln2_b, 1};
    par_for(ws->pool, B, fwd_res_ln_body, &f2);
}

/* Column sums over all rows, split by column strips: LayerNorm parameter gradients
 * (dout, xhat over `rows` rows from row0 of each graph's T rows; gamma < 0: none) and a
 * bias gradient (colsum of bsrc, C_b columns; bias < 0: none). */
typedef struct col_sums {
    const blk_ctx *c;
    /* LayerNorm: over graphs b, rows [r0, r0 + nr) of each, H columns */
    const float *ln_dout, *ln_xhat;
    int64_t gamma, beta, r0, nr;
    /* bias: colsum over all BT rows of bsrc (BT, Cb) */
    const float *bsrc;
    int64_t bias, Cb;
} col_sums;

static void col_sums_body(void *v, int64_t j0, int64_t j1, int tid) {
    const col_sums *s = v;
    const blk_ctx *c = s->c;
    int64_t H = c->H, T = c->T;
    if (s->gamma >= 0) {
        int64_t e = j1 < H ? j1 : H;
        if (s->r0 == 0 && s->nr == T) /* whole graphs: one sweep over all rows */
            layer_norm_backward_params(c->g + s->gamma, c->g + s->beta, s->ln_dout, s->ln_xhat,
                                       c->BT, H, j0, e);
        else
            for (int b = 0; b < c->B; b++) {
                int64_t o = ((int64_t)b * T + s->r0) * H;
                layer_norm_backward_params(c->g + s->gamma, c->g + s->beta, s->ln_dout + o,
                                           s->ln_xhat + o, s->nr, H, j0, e);
            }
    }
    if (s->bias >= 0) {
        /* the bias strip is the same fraction of Cb as [j0, j1) is of H */
        int64_t b0 = s->Cb * j0 / H, b1 = s->Cb * j1 / H;
        layer_colsum_add(c->g + s->bias, s->bsrc, c->BT, s->Cb, b0, b1);
    }
}

static void col_sums_run(const blk_ctx *c, const float *ln_dout, const float *ln_xhat,
                         int64_t gamma, int64_t beta, const float *bsrc, int64_t bias, int64_t Cb) {
    col_sums s = {c, ln_dout, ln_xhat, gamma, beta, 0, c->T, bsrc, bias, Cb};
    par_for(c->ws->pool, c->H, col_sums_body, &s);
}

/* Backward, per graph: dst = LN input gradient of dout (dst zeroed first), then
 * copy = dst with dropout `which` applied (copy may be NULL). */
typedef struct bwd_ln {
    const blk_ctx *c;
    float *dst, *copy;
    const float *dout, *xhat, *rstd;
    int64_t gamma;
    uint64_t which;
} bwd_ln;

static void bwd_ln_body(void *v, int64_t b0, int64_t b1, int tid) {
    const bwd_ln *f = v;
    const blk_ctx *c = f->c;
    int64_t H = c->H, T = c->T, o = b0 * T * H, rows = (b1 - b0) * T;
    size_t bytes = (size_t)(rows * H) * sizeof(float);
    memset(f->dst + o, 0, bytes);
    layer_norm_backward_input(f->dst + o, f->dout + o, f->xhat + o, f->rstd + b0 * T,
                              c->m->w + f->gamma, rows, H);
    if (!f->copy) return;
    memcpy(f->copy + o, f->dst + o, bytes);
    for (int64_t b = b0; b < b1; b++) drop_graph(f->copy, c->dk, (int)b, T * H, f->which);
}

/* per graph: F2 = relu'(f1) * F2; S4 = h2 again (LN output from x1) */
static void bwd_ffn_mid_body(void *v, int64_t b0, int64_t b1, int tid) {
    const blk_ctx *c = v;
    int64_t H = c->H, T = c->T, FT = c->F * T;
    vrelu_mask(c->ws->F2 + b0 * FT, c->a->f1 + b0 * FT, (b1 - b0) * FT);
    ln_apply(c->ws->S4 + b0 * T * H, c->a->x1 + b0 * T * H, c->m->w + c->p->ln1_g,
             c->m->w + c->p->ln1_b, (b1 - b0) * T, H);
}

/* per graph: attention backward into S3 (zeroed here), then S2 = h1 again */
static void bwd_attn_body(void *v, int64_t b0, int64_t b1, int tid) {
    const blk_ctx *c = v;
    model_ws *ws = c->ws;
    const model_blk_act *a = c->a;
    int64_t H = c->H, T = c->T, nh = c->nh, n = c->n;
    float *scratch = ws->attn + (int64_t)tid * 2 * T * T;
    for (int64_t b = b0; b < b1; b++) {
        int64_t t0 = b * T * H;
        memset(ws->S3 + 3 * t0, 0, (size_t)(3 * T * H) * sizeof(float));
        layer_attn_drop ad = attn_keys(c->dk, (int)b);
        layer_attn_backward(ws->S3 + 3 * t0, ws->S4 + t0, a->qkv + 3 * t0, a->att + t0,
                            a->lse + b * nh * T, T, H, nh, &ad, scratch);
        /* h1 again: token row = hin, region rows from xhat */
        memcpy(ws->S2 + t0, c->hin + t0, (size_t)H * sizeof(float));
        ln_apply(ws->S2 + t0 + H, a->xg + t0 + H, c->m->w + c->p->lng_g, c->m->w + c->p->lng_b,
                 n, H);
    }
}

/* per graph, graph convolution: S2 = LN_g input gradient of S1 (region rows; token row
 * 0), S3 = relu'(u) * S2, S4 = Ahat S3 (token row 0) */
static void bwd_gcn_body(void *v, int64_t b0, int64_t b1, int tid) {
    const blk_ctx *c = v;
    model_ws *ws = c->ws;
    int64_t H = c->H, T = c->T, n = c->n;
    for (int64_t b = b0; b < b1; b++) {
        int64_t t0 = b * T * H, o = t0 + H;
        memset(ws->S2 + t0, 0, (size_t)(T * H) * sizeof(float));
        layer_norm_backward_input(ws->S2 + o, ws->S1 + o, c->a->xg + o, c->a->rg + b * T + 1,
                                  c->m->w + c->p->lng_g, n, H);
        vrelu_mask_to(ws->S3 + o, ws->S2 + o, c->a->u + o, n * H);
        if (c->dA) { /* dAhat += S3 (hin W_g^T)^T = (S3 W_g) hin^T (docs/adapt.md) */
            float *q = c->q + t0;
            layer_gemm(NULL, 0, 0, n, H, H, 1.0f, ws->S3 + o, H, c->m->w + c->p->gW, H, 0.0f, q, H);
            layer_gemm(NULL, 0, 1, n, n, H, 1.0f, q, H, c->hin + o, H, 1.0f, c->dA + b * n * n, n);
        }
        layer_csr cs = blk_csr(c->r, (int)b);
        memset(ws->S4 + t0, 0, (size_t)H * sizeof(float)); /* token row: no GCN */
        layer_gcn_propagate(ws->S4 + o, ws->S3 + o, &cs, H, H, 0);
    }
}

/* column strips: LN_g's gamma/beta gradients over region rows (from S1, xg) and the
 * GCN bias gradient: every graph's region rows of S3 summed from zero in row order,
 * then added to g */
static void bwd_gcn_cols_body(void *v, int64_t j0, int64_t j1, int tid) {
    const blk_ctx *c = v;
    model_ws *ws = c->ws;
    int64_t H = c->H, T = c->T, n = c->n;
    float *dgb = c->g + c->p->gb;
    for (int b = 0; b < c->B; b++) {
        int64_t o = ((int64_t)b * T + 1) * H;
        layer_norm_backward_params(c->g + c->p->lng_g, c->g + c->p->lng_b, ws->S1 + o,
                                   c->a->xg + o, n, H, j0, j1);
    }
    int64_t j = j0;
    for (; j + LV <= j1; j += LV) { /* one strip of the sum in registers, rows in order */
        lvf acc = vset(0.0f);
        for (int b = 0; b < c->B; b++)
            for (int64_t i = 0; i < n; i++) acc += vld(ws->S3 + ((int64_t)b * T + 1 + i) * H + j);
        vst(dgb + j, vld(dgb + j) + acc);
    }
    for (; j < j1; j++) {
        float acc = 0.0f;
        for (int b = 0; b < c->B; b++)
            for (int64_t i = 0; i < n; i++) acc += ws->S3[((int64_t)b * T + 1 + i) * H + j];
        dgb[j] += acc;
    }
}

/* per graph: dhin += residual paths (token row: S1; region rows: S2) */
static void bwd_res_body(void *v, int64_t b0, int64_t b1, int tid) {
    const blk_ctx *c = v;
    int64_t H = c->H, T = c->T, n = c->n;
    for (int64_t b = b0; b < b1; b++) {
        int64_t t0 = b * T * H;
        vadd(c->dhin + t0, c->ws->S1 + t0, H);
        vadd(c->dhin + t0 + H, c->ws->S2 + t0 + H, n * H);
    }
}

/* dhin = d/dhin given dhout (written, not added). */
static void block_backward(model *m, const model_block *p, const model_blk_act *a,
                           const float *hin, const model_run *r, model_ws *ws, int B,
                           const drop_keys *dk, float *dhin, const float *dhout) {
    const float *w = m->w;
    float *g = m->g;
    blk_ctx c = blk_ctx_make(m, p, r, ws, B, dk);
    c.g = g;
    c.a = a;
    c.hin = hin;
    c.dhin = dhin;
    c.dhout = dhout;
    int64_t H = c.H, F = c.F, BT = c.BT;
#define GW(off) (c.frozen ? NULL : g + (off)) /* a parameter gradient, or none (frozen) */
    /* feed-forward: S2 = dh2 (residual path), S1 = its dropout = d(ffn output) */
    bwd_ln f2 = {&c, ws->S2, ws->S1, dhout, a->x2, a->r2, p->ln2_g, 1};
    par_for(ws->pool, B, bwd_ln_body, &f2);
    if (!c.frozen) col_sums_run(&c, dhout, a->x2, p->ln2_g, p->ln2_b, ws->S1, p->b2, H);
    layer_linear_backward_set(ws->pool, ws->F2, GW(p->W2), NULL, ws->S1, a->f1, w + p->W2, F, BT, F, H);
    par_for(ws->pool, B, bwd_ffn_mid_body, &c); /* F2 through the ReLU; S4 = h2 */
    if (!c.frozen) col_sums_run(&c, NULL, NULL, -1, -1, ws->F2, p->b1, F);
    layer_linear_backward(ws->pool, ws->S2, GW(p->W1), NULL, ws->F2, ws->S4, w + p->W1, H, BT, H, F);
    /* attention: S1 = dh1, S2 = its dropout = d(attention output) */
    if (!c.frozen) col_sums_run(&c, ws->S2, a->x1, p->ln1_g, p->ln1_b, NULL, -1, 0);
    bwd_ln f1 = {&c, ws->S1, ws->S2, ws->S2, a->x1, a->r1, p->ln1_g, 0};
    par_for(ws->pool, B, bwd_ln_body, &f1); /* a graph's S2 rows are read, then replaced */
    if (!c.frozen) col_sums_run(&c, NULL, NULL, -1, -1, ws->S2, p->bo, H);
    layer_linear_backward_set(ws->pool, ws->S4, GW(p->Wo), NULL, ws->S2, a->att, w + p->Wo, H, BT, H, H);
    par_for(ws->pool, B, bwd_attn_body, &c); /* S3 = dqkv, S2 = h1 */
    if (!c.frozen) col_sums_run(&c, NULL, NULL, -1, -1, ws->S3, p->bqkv, 3 * H);
    layer_linear_backward(ws->pool, ws->S1, GW(p->Wqkv), NULL, ws->S3, ws->S2, w + p->Wqkv, H, BT, H, 3 * H);
    /* graph convolution: token row passes through; region rows through ln_g (S2), the
     * ReLU (S3) and Ahat (S4). dhin is written by the GEMM, then the residual paths are
     * added, so the caller does not zero it. */
    par_for(ws->pool, B, bwd_gcn_body, &c);
    if (!c.frozen) par_for(ws->pool, H, bwd_gcn_cols_body, &c);
    layer_linear_backward_set(ws->pool, dhin, GW(p->gW), NULL, ws->S4, hin, w + p->gW, H, BT, H, H);
    par_for(ws->pool, B, bwd_res_body, &c);
#undef GW
}

/* ---- Runs: embedding + blocks --------------------------------------------------- */
void blk_embed(const model *m, model_run *r, model_ws *ws, int B, int atlas, int N) {
    const float *w = m->w;
    int64_t H = m->cfg.H, k = m->cfg.k, n = r->n, T = r->T, Bn = (int64_t)B * n;
    float *S = ws->S1;
    layer_gemm(ws->pool, 0, 1, Bn, H, N, 1.0f, r->X, N, w + m->in_W, m->D_in, 0.0f, S, H);
    if (k)
        layer_gemm(ws->pool, 0, 1, Bn, H, k, 1.0f, r->R, k, w + m->in_W + m->cfg.N_max, m->D_in,
                   1.0f, S, H);
    const float *E = w + m->node[atlas], *tok = w + m->tok + (int64_t)atlas * H;
    for (int b = 0; b < B; b++) {
        memcpy(r->h0 + (int64_t)b * T * H, tok, (size_t)H * sizeof(float));
        for (int64_t i = 0; i < n; i++) {
            float *h = r->h0 + ((int64_t)b * T + 1 + i) * H;
            const float *s = S + ((int64_t)b * n + i) * H, *e = E + (int64_t)r->idx[b * n + i] * H;
            for (int64_t j = 0; j < H; j++) h[j] = s[j] + w[m->in_b + j] + e[j];
        }
    }
}

void blk_embed_backward(model *m, const model_run *r, model_ws *ws, int B, int atlas,
                                   int N, const float *dh0) {
    float *g = m->g;
    int64_t H = m->cfg.H, k = m->cfg.k, n = r->n, T = r->T, Bn = (int64_t)B * n;
    float *dS = ws->S1;
    float *dE = g + m->node[atlas], *dtok = g + m->tok + (int64_t)atlas * H;
    for (int b = 0; b < B; b++) {
        for (int64_t j = 0; j < H; j++) dtok[j] += dh0[(int64_t)b * T * H + j];
        for (int64_t i = 0; i < n; i++) {
            const float *d = dh0 + ((int64_t)b * T + 1 + i) * H;
            float *e = dE + (int64_t)r->idx[b * n + i] * H;
            memcpy(dS + ((int64_t)b * n + i) * H, d, (size_t)H * sizeof(float));
            for (int64_t j = 0; j < H; j++) e[j] += d[j];
        }
    }
    layer_linear_backward(ws->pool, NULL, g + m->in_W, g + m->in_b, dS, r->X, NULL, m->D_in, Bn, N, H);
    if (k)
        layer_linear_backward(ws->pool, NULL, g + m->in_W + m->cfg.N_max, NULL, dS, r->R, NULL, m->D_in, Bn,
                              k, H);
}

void blk_run_forward(const model *m, model_run *r, const model_block *blocks, model_ws *ws,
                        int B, const drop_keys *dk) {
    const float *h = r->h0;
    for (int l = 0; l < r->nblk; l++) {
        drop_keys d = *dk;
        d.site = dk->site + (uint64_t)l * 256;
        block_forward(m, &blocks[l], &r->blk[l], h, r, ws, B, &d);
        h = r->blk[l].hout;
    }
}

/* Backward through the blocks from dhout (not modified unless it is G0/G1); returns the
 * buffer holding d/dh0 (G0 or G1). */
float *blk_run_backward(model *m, const model_run *r, const model_block *blocks, model_ws *ws,
                           int B, const drop_keys *dk, const float *dhout) {
    const float *cur = dhout;
    float *next = NULL;
    for (int l = r->nblk - 1; l >= 0; l--) {
        next = cur == ws->G0 ? ws->G1 : ws->G0; /* overwritten by block_backward */
        drop_keys d = *dk;
        d.site = dk->site + (uint64_t)l * 256;
        const float *hin = l ? r->blk[l - 1].hout : r->h0;
        block_backward(m, &blocks[l], &r->blk[l], hin, r, ws, B, &d, next, cur);
        cur = next;
    }
    return next;
}

drop_keys blk_keys_for(const model_ws *ws, int run) {
    drop_keys d = {ws->hp.p_drop, ws->hp.seed, (uint64_t)ws->hp.step, (uint64_t)run << 16,
                   ws->bt.gidx};
    return d;
}
