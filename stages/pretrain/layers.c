/* layers.c: forward/backward kernels of the model's layer kinds (layers.h), float32,
 * matrix products through cblas_sgemm. Not the model wiring and not allocation. */
#include "bgfm/layers.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "bgfm/ctx.h"

/* ---- Linear ------------------------------------------------------------------ */
void layer_linear_forward(float *out, const float *inp, const float *W, int64_t ldw,
                          const float *b, int64_t n, int64_t cin, int64_t cout) {
    if (n == 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)cout, (int)cin, 1.0f, inp,
                (int)cin, W, (int)ldw, 0.0f, out, (int)cout);
    if (b)
        for (int64_t i = 0; i < n; i++) {
            float *o = out + i * cout;
            for (int64_t j = 0; j < cout; j++) o[j] += b[j];
        }
}

void layer_linear_backward(float *dinp, float *dW, float *db, const float *dout,
                           const float *inp, const float *W, int64_t ldw, int64_t n,
                           int64_t cin, int64_t cout) {
    if (n == 0) return;
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)cin, (int)cout, 1.0f,
                    dout, (int)cout, W, (int)ldw, 1.0f, dinp, (int)cin);
    if (dW)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)cout, (int)cin, (int)n, 1.0f,
                    dout, (int)cout, inp, (int)cin, 1.0f, dW, (int)ldw);
    if (db)
        for (int64_t i = 0; i < n; i++) {
            const float *d = dout + i * cout;
            for (int64_t j = 0; j < cout; j++) db[j] += d[j];
        }
}

/* ---- LayerNorm ----------------------------------------------------------------- */
void layer_norm_forward(float *out, float *xhat, float *rstd, const float *inp,
                        const float *gamma, const float *beta, int64_t n, int64_t C) {
    for (int64_t i = 0; i < n; i++) {
        const float *x = inp + i * C;
        double s = 0, s2 = 0;
        for (int64_t j = 0; j < C; j++) s += (double)x[j];
        double mu = s / (double)C;
        for (int64_t j = 0; j < C; j++) {
            double t = (double)x[j] - mu;
            s2 += t * t;
        }
        float rs = (float)(1.0 / sqrt(s2 / (double)C + 1e-5));
        float m = (float)mu;
        float *xh = xhat + i * C, *o = out + i * C;
        for (int64_t j = 0; j < C; j++) {
            xh[j] = (x[j] - m) * rs;
            o[j] = xh[j] * gamma[j] + beta[j];
        }
        rstd[i] = rs;
    }
}

void layer_norm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                         const float *xhat, const float *rstd, const float *gamma, int64_t n,
                         int64_t C) {
    for (int64_t i = 0; i < n; i++) {
        const float *dy = dout + i * C, *xh = xhat + i * C;
        double sd = 0, sdx = 0;
        for (int64_t j = 0; j < C; j++) {
            float dxh = dy[j] * gamma[j];
            sd += (double)dxh;
            sdx += (double)(dxh * xh[j]);
            dgamma[j] += dy[j] * xh[j];
            dbeta[j] += dy[j];
        }
        float md = (float)(sd / (double)C), mdx = (float)(sdx / (double)C), rs = rstd[i];
        float *dx = dinp + i * C;
        for (int64_t j = 0; j < C; j++) dx[j] += rs * (dy[j] * gamma[j] - md - xh[j] * mdx);
    }
}

/* ---- ReLU ------------------------------------------------------------------------ */
void layer_relu_forward(float *out, const float *inp, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void layer_relu_backward(float *dinp, const float *dout, const float *pre, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (pre[i] > 0.0f) dinp[i] += dout[i];
}

/* ---- GCN ----------------------------------------------------------------------- */
static int edge_on(const uint8_t *adj, const uint8_t *keep, int32_t N, int32_t a, int32_t b) {
    size_t o = (size_t)a * (size_t)N + (size_t)b;
    return a != b && adj[o] && (!keep || keep[o]);
}

void layer_csr_build(layer_csr *c, const uint8_t *adj, const uint8_t *keep, int32_t N,
                     const int32_t *idx, int32_t n) {
    c->n = n;
    c->rowptr[0] = 0;
    for (int32_t i = 0; i < n; i++) { /* row counts = degree of A_S + I */
        int32_t cnt = 1;
        for (int32_t j = 0; j < n; j++) cnt += edge_on(adj, keep, N, idx[i], idx[j]);
        c->rowptr[i + 1] = c->rowptr[i] + cnt;
    }
    for (int32_t i = 0; i < n; i++) {
        int32_t p = c->rowptr[i];
        float di = (float)(c->rowptr[i + 1] - c->rowptr[i]);
        for (int32_t j = 0; j < n; j++) {
            if (j != i && !edge_on(adj, keep, N, idx[i], idx[j])) continue;
            float dj = (float)(c->rowptr[j + 1] - c->rowptr[j]);
            c->col[p] = j;
            c->val[p] = 1.0f / sqrtf(di * dj);
            p++;
        }
        BGFM_ASSERT(p == c->rowptr[i + 1]);
    }
}

void layer_gcn_propagate(float *out, const float *inp, const layer_csr *c, int64_t C,
                         int64_t ld, int accumulate) {
    for (int32_t i = 0; i < c->n; i++) {
        float *o = out + (int64_t)i * ld;
        if (!accumulate) memset(o, 0, (size_t)C * sizeof *o);
        for (int32_t p = c->rowptr[i]; p < c->rowptr[i + 1]; p++) {
            const float *x = inp + (int64_t)c->col[p] * ld;
            float v = c->val[p];
            for (int64_t j = 0; j < C; j++) o[j] += v * x[j];
        }
    }
}

/* ---- Dropout --------------------------------------------------------------------- */
void layer_dropout(float *x, int64_t n, float p, rng_stream *r) {
    if (p <= 0.0f) return;
    uint32_t thr = (uint32_t)((double)p * 65536.0 + 0.5);
    float s = 1.0f / (1.0f - p);
    int64_t i = 0;
    for (; i + 1 < n; i += 2) {
        uint32_t u = rng_u32(r);
        x[i] = (u & 0xFFFFu) >= thr ? x[i] * s : 0.0f;
        x[i + 1] = (u >> 16) >= thr ? x[i + 1] * s : 0.0f;
    }
    if (i < n) x[i] = (rng_u32(r) & 0xFFFFu) >= thr ? x[i] * s : 0.0f;
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
            for (int64_t j = 1; j < T; j++) mx = s[j] > mx ? s[j] : mx;
            double sum = 0;
            for (int64_t j = 0; j < T; j++) {
                s[j] = expf(s[j] - mx);
                sum += (double)s[j];
            }
            float inv = (float)(1.0 / sum);
            for (int64_t j = 0; j < T; j++) s[j] *= inv;
            lse[h * T + i] = mx + (float)log(sum);
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

void layer_attn_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                         const float *lse, int64_t T, int64_t H, int64_t nh,
                         const layer_attn_drop *drop, float *scratch) {
    (void)out;
    int64_t d = H / nh;
    float scale = 1.0f / sqrtf((float)d);
    int ti = (int)T, ld = (int)(3 * H);
    int dropping = drop && drop->p > 0.0f;
    float *P = scratch, *S2 = scratch + T * T;
    for (int64_t h = 0; h < nh; h++) {
        const float *q = qkv + h * d, *k = qkv + H + h * d, *v = qkv + 2 * H + h * d;
        const float *dO = dout + h * d;
        float *dq = dqkv + h * d, *dk = dqkv + H + h * d, *dv = dqkv + 2 * H + h * d;
        /* recompute the probabilities from the kept log-sum-exp */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ti, ti, (int)d, scale, q, ld, k, ld,
                    0.0f, P, ti);
        for (int64_t i = 0; i < T; i++) {
            float *s = P + i * T, l = lse[h * T + i];
            for (int64_t j = 0; j < T; j++) s[j] = expf(s[j] - l);
        }
        const float *Pd = P;
        rng_stream r;
        if (dropping) {
            memcpy(S2, P, (size_t)(T * T) * sizeof *S2);
            attn_drop_stream(&r, drop, h);
            layer_dropout(S2, T * T, drop->p, &r);
            Pd = S2;
        }
        /* dV += Pd^T dO */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ti, (int)d, ti, 1.0f, Pd, ti, dO,
                    (int)H, 1.0f, dv, ld);
        /* dP = (dO V^T) (through the same dropout mask) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ti, ti, (int)d, 1.0f, dO, (int)H, v,
                    ld, 0.0f, S2, ti);
        if (dropping) {
            attn_drop_stream(&r, drop, h);
            layer_dropout(S2, T * T, drop->p, &r);
        }
        /* dS = P * (dP - rowsum(P * dP)) */
        for (int64_t i = 0; i < T; i++) {
            const float *p = P + i * T;
            float *g = S2 + i * T;
            double Di = 0;
            for (int64_t j = 0; j < T; j++) Di += (double)(p[j] * g[j]);
            float D = (float)Di;
            for (int64_t j = 0; j < T; j++) g[j] = p[j] * (g[j] - D);
        }
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
