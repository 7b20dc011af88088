/* model.c: parameter table, initialisation, workspace arena and the GMAE + GCL
 * forward/backward of docs/model.md over the kernels of layers.c.
 * Not the optimiser, not I/O, not the batching of a dataset. */
#include "bgfm/model.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bgfm/block.h"
#include "bgfm/par.h"
#include "bgfm/rng.h"
#include "bgfm/simd.h"

int model_readout_parse(const char *s) {
    return !strcmp(s, "mean") ? MODEL_READOUT_MEAN : !strcmp(s, "region") ? MODEL_READOUT_REGION : -1;
}

const char *model_readout_name(int r) { return r == MODEL_READOUT_REGION ? "region" : "mean"; }

int model_embed_parse(const char *s) {
    return !strcmp(s, "encoder") ? MODEL_EMBED_ENCODER
           : !strcmp(s, "encoder+pop") ? MODEL_EMBED_BOTH
           : !strcmp(s, "pop") ? MODEL_EMBED_POP
           : !strcmp(s, "pcs+pop") ? MODEL_EMBED_PCS : -1;
}

const char *model_embed_name(int embed) {
    return embed == MODEL_EMBED_BOTH ? "encoder+pop" : embed == MODEL_EMBED_POP ? "pop"
           : embed == MODEL_EMBED_PCS ? "pcs+pop" : "encoder";
}

int model_dec_input_parse(const char *s) {
    return !strcmp(s, "nodes")         ? MODEL_DEC_NODES
           : !strcmp(s, "nodes+graph") ? MODEL_DEC_NODES_GRAPH
           : !strcmp(s, "graph")       ? MODEL_DEC_GRAPH
                                       : -1;
}

const char *model_dec_input_name(int d) {
    return d == MODEL_DEC_GRAPH ? "graph" : d == MODEL_DEC_NODES_GRAPH ? "nodes+graph" : "nodes";
}

int model_mode_parse(const char *s) {
    if (!s) return 0;
    if (!strcmp(s, "gmae")) return MODEL_GMAE;
    if (!strcmp(s, "gcl")) return MODEL_GCL;
    if (!strcmp(s, "gmae+gcl")) return MODEL_GMAE_GCL;
    return 0;
}

const char *model_mode_name(int mode) {
    return mode == MODEL_GMAE ? "gmae" : mode == MODEL_GCL ? "gcl" : "gmae+gcl";
}

int model_n_masked(int N, double r) {
    int M = (int)floor(r * (double)N + 0.5);
    if (M > N - 4) M = N - 4;
    return M < 0 ? 0 : M;
}

int model_cfg_check(const model_cfg *c, const char *where, bgfm_err *e) {
    if (c->H < 1 || c->nh < 1 || c->H % c->nh)
        return bgfm_fail(e, BGFM_EUSAGE, "%s: hidden (%d) must be a positive multiple of heads (%d)",
                         where, c->H, c->nh);
    if (c->F < 1 || c->k < 0 || c->L < 1 || c->Ld < 1 || c->P < 1 || c->L > MODEL_MAX_LAYERS ||
        c->Ld > MODEL_MAX_LAYERS)
        return bgfm_fail(e, BGFM_EUSAGE,
                         "%s: need ffn >= 1, proj >= 1, 1 <= layers, decoder_layers <= %d",
                         where, MODEL_MAX_LAYERS);
    if (c->norm != 0 && c->norm != 1)
        return bgfm_fail(e, BGFM_EUSAGE, "%s: input_norm %d is not none (0) or population (1)",
                         where, c->norm);
    if (c->readout != MODEL_READOUT_MEAN && c->readout != MODEL_READOUT_REGION)
        return bgfm_fail(e, BGFM_EUSAGE, "%s: readout %d is not mean (0) or region (1)", where,
                         c->readout);
    if (c->readout == MODEL_READOUT_REGION && (c->rdim < 1 || c->rdim > 1024))
        return bgfm_fail(e, BGFM_EUSAGE, "%s: readout_dim %d (need 1..1024)", where, c->rdim);
    if (c->pop_rank < 0 || c->pop_rank > 256)
        return bgfm_fail(e, BGFM_EUSAGE, "%s: pop_rank %d (need 0..256)", where, c->pop_rank);
    if (c->embed < MODEL_EMBED_ENCODER || c->embed > MODEL_EMBED_PCS)
        return bgfm_fail(e, BGFM_EUSAGE, "%s: embedding %d is not encoder, encoder+pop, pop or "
                         "pcs+pop", where, c->embed);
    if ((c->embed == MODEL_EMBED_PCS) != (c->pcs > 0) || c->pcs < 0 || c->pcs > c->H)
        return bgfm_fail(e, BGFM_EUSAGE, "%s: pcs %d with embedding %s (pcs+pop needs 1..hidden "
                         "(%d) readout axes, every other embedding 0)", where, c->pcs,
                         model_embed_name(c->embed), c->H);
    if (c->embed != MODEL_EMBED_ENCODER && c->pop_rank < 1)
        return bgfm_fail(e, BGFM_EUSAGE, "%s: embedding %s needs the population head: set pop_rank "
                         ">= 1 (or embedding: encoder)", where, model_embed_name(c->embed));
    if (c->n_atlases < 1 || c->n_atlases > MODEL_MAX_ATLASES)
        return bgfm_fail(e, BGFM_EUSAGE, "%s: %d atlases (need 1..%d)", where, c->n_atlases,
                         MODEL_MAX_ATLASES);
    for (int a = 0; a < c->n_atlases; a++)
        if (c->atlas_nodes[a] < 2 || c->atlas_nodes[a] > c->N_max)
            return bgfm_fail(e, BGFM_EUSAGE,
                             "%s: atlas '%s' has %d nodes; need 2 <= N <= n_max (%d): raise n_max",
                             where, c->atlas[a], c->atlas_nodes[a], c->N_max);
    return 0;
}

/* ---- The parameter list: the ONE place names, shapes and kinds are written ------ */
static int64_t add_t(model *m, int64_t *off, const char *name, int64_t rows, int64_t cols,
                     model_init_kind init) {
    int64_t o = *off;
    if (m->t) {
        model_tensor *t = &m->t[m->n_tensors];
        snprintf(t->name, sizeof t->name, "%s", name);
        t->off = o;
        t->rows = rows;
        t->cols = cols;
        t->init = init;
        t->decay = init == MODEL_INIT_XAVIER;
        t->buffer = 0;
    }
    m->n_tensors++;
    *off += rows * (cols ? cols : 1);
    return o;
}

static void add_block(model *m, int64_t *off, const char *pre, int l, model_block *b) {
    const model_cfg *c = &m->cfg;
    int64_t H = c->H, F = c->F;
    char n[MODEL_NAME_MAX];
#define T_(field, suffix, r, cc, init)                                                      \
    do {                                                                                    \
        snprintf(n, sizeof n, "%s/%d/%s", pre, l, suffix);                                  \
        b->field = add_t(m, off, n, r, cc, init);                                           \
    } while (0)
    T_(gW, "gcn/W", H, H, MODEL_INIT_XAVIER);
    T_(gb, "gcn/b", H, 0, MODEL_INIT_ZERO);
    T_(lng_g, "ln_g/gamma", H, 0, MODEL_INIT_ONE);
    T_(lng_b, "ln_g/beta", H, 0, MODEL_INIT_ZERO);
    T_(Wqkv, "attn/Wq", H, H, MODEL_INIT_XAVIER);
    snprintf(n, sizeof n, "%s/%d/attn/Wk", pre, l);
    add_t(m, off, n, H, H, MODEL_INIT_XAVIER);
    snprintf(n, sizeof n, "%s/%d/attn/Wv", pre, l);
    add_t(m, off, n, H, H, MODEL_INIT_XAVIER);
    T_(bqkv, "attn/bq", H, 0, MODEL_INIT_ZERO);
    snprintf(n, sizeof n, "%s/%d/attn/bk", pre, l);
    add_t(m, off, n, H, 0, MODEL_INIT_ZERO);
    snprintf(n, sizeof n, "%s/%d/attn/bv", pre, l);
    add_t(m, off, n, H, 0, MODEL_INIT_ZERO);
    T_(Wo, "attn/Wo", H, H, MODEL_INIT_XAVIER);
    T_(bo, "attn/bo", H, 0, MODEL_INIT_ZERO);
    T_(ln1_g, "ln_1/gamma", H, 0, MODEL_INIT_ONE);
    T_(ln1_b, "ln_1/beta", H, 0, MODEL_INIT_ZERO);
    T_(W1, "ffn/W1", F, H, MODEL_INIT_XAVIER);
    T_(b1, "ffn/b1", F, 0, MODEL_INIT_ZERO);
    T_(W2, "ffn/W2", H, F, MODEL_INIT_XAVIER);
    T_(b2, "ffn/b2", H, 0, MODEL_INIT_ZERO);
    T_(ln2_g, "ln_2/gamma", H, 0, MODEL_INIT_ONE);
    T_(ln2_b, "ln_2/beta", H, 0, MODEL_INIT_ZERO);
#undef T_
}

/* Runs twice: once counting (m->t == NULL), once filling the table. */
static int64_t layout(model *m) {
    const model_cfg *c = &m->cfg;
    int64_t off = 0, H = c->H;
    char n[MODEL_NAME_MAX];
    m->n_tensors = 0;
    m->in_W = add_t(m, &off, "in/W", H, m->D_in, MODEL_INIT_XAVIER);
    m->in_b = add_t(m, &off, "in/b", H, 0, MODEL_INIT_ZERO);
    m->tok = add_t(m, &off, "embed/token", c->n_atlases, H, MODEL_INIT_NORMAL);
    for (int a = 0; a < c->n_atlases; a++) {
        snprintf(n, sizeof n, "embed/node/%s", c->atlas[a]);
        m->node[a] = add_t(m, &off, n, c->atlas_nodes[a], H, MODEL_INIT_NORMAL);
    }
    for (int l = 0; l < c->L; l++) add_block(m, &off, "enc", l, &m->enc[l]);
    m->ro_Wc = m->ro_b = -1;
    for (int a = 0; a < MODEL_MAX_ATLASES; a++) m->ro_W[a] = -1;
    if (c->readout == MODEL_READOUT_REGION) {
        m->ro_Wc = add_t(m, &off, "readout/Wc", c->rdim, H, MODEL_INIT_XAVIER);
        for (int a = 0; a < c->n_atlases; a++) {
            snprintf(n, sizeof n, "readout/W/%s", c->atlas[a]);
            m->ro_W[a] = add_t(m, &off, n, H, (int64_t)c->atlas_nodes[a] * c->rdim, MODEL_INIT_XAVIER);
        }
        m->ro_b = add_t(m, &off, "readout/b", H, 0, MODEL_INIT_ZERO);
    }
    m->re_W = add_t(m, &off, "dec/re/W", H, H, MODEL_INIT_XAVIER);
    m->re_b = add_t(m, &off, "dec/re/b", H, 0, MODEL_INIT_ZERO);
    m->mask_tok = add_t(m, &off, "dec/mask_token", H, 0, MODEL_INIT_NORMAL);
    for (int l = 0; l < c->Ld; l++) add_block(m, &off, "dec", l, &m->dec[l]);
    m->out_W = add_t(m, &off, "dec/out/W", c->N_max, H, MODEL_INIT_XAVIER);
    m->out_b = add_t(m, &off, "dec/out/b", c->N_max, 0, MODEL_INIT_ZERO);
    m->p_W1 = add_t(m, &off, "proj/W1", H, H, MODEL_INIT_XAVIER);
    m->p_b1 = add_t(m, &off, "proj/b1", H, 0, MODEL_INIT_ZERO);
    m->p_W2 = add_t(m, &off, "proj/W2", c->P, H, MODEL_INIT_XAVIER);
    m->p_b2 = add_t(m, &off, "proj/b2", c->P, 0, MODEL_INIT_ZERO);
    /* buffers last, so the trained floats are one prefix [0, n_train) */
    m->n_train = off;
    int first_buffer = m->n_tensors;
    for (int a = 0; a < MODEL_MAX_ATLASES; a++) m->nm_mean[a] = m->nm_std[a] = -1;
    for (int a = 0; c->norm && a < c->n_atlases; a++) {
        int64_t Na = c->atlas_nodes[a];
        snprintf(n, sizeof n, "norm/%s/mean", c->atlas[a]);
        m->nm_mean[a] = add_t(m, &off, n, Na, Na, MODEL_INIT_ZERO);
        snprintf(n, sizeof n, "norm/%s/std", c->atlas[a]);
        m->nm_std[a] = add_t(m, &off, n, Na, Na, MODEL_INIT_ONE);
    }
    /* the population head after the statistics: model_copy_buffers copies [n_train, n_stat) */
    m->n_stat = off;
    for (int a = 0; a < MODEL_MAX_ATLASES; a++) m->pop_W[a] = m->pop_b[a] = -1;
    for (int a = 0; c->pop_rank && a < c->n_atlases; a++) {
        int64_t Na = c->atlas_nodes[a];
        snprintf(n, sizeof n, "pop/%s/W", c->atlas[a]);
        m->pop_W[a] = add_t(m, &off, n, c->pop_rank, Na * (Na - 1) / 2, MODEL_INIT_NORMAL);
        snprintf(n, sizeof n, "pop/%s/b", c->atlas[a]);
        m->pop_b[a] = add_t(m, &off, n, c->pop_rank, 0, MODEL_INIT_ZERO);
    }
    for (int a = 0; a < MODEL_MAX_ATLASES; a++) m->pcs_W[a] = m->pcs_b[a] = -1;
    for (int a = 0; c->pcs && a < c->n_atlases; a++) {
        snprintf(n, sizeof n, "pcs/%s/W", c->atlas[a]);
        m->pcs_W[a] = add_t(m, &off, n, c->pcs, c->H, MODEL_INIT_NORMAL);
        snprintf(n, sizeof n, "pcs/%s/b", c->atlas[a]);
        m->pcs_b[a] = add_t(m, &off, n, c->pcs, 0, MODEL_INIT_ZERO);
    }
    for (int i = first_buffer; m->t && i < m->n_tensors; i++) m->t[i].buffer = 1;
    return off;
}

int model_init(model *m, const model_cfg *c, bgfm_err *e) {
    memset(m, 0, sizeof *m);
    int rc = model_cfg_check(c, "model", e);
    if (rc) return rc;
    m->cfg = *c;
    m->D_in = c->N_max + c->k;
    layout(m);
    m->t = bgfm_calloc(e, (size_t)m->n_tensors, sizeof *m->t, "parameter table");
    if (!m->t) return BGFM_ENOMEM;
    m->n_params = layout(m);
    m->w = bgfm_calloc(e, (size_t)m->n_params, sizeof(float), "model parameters");
    m->g = bgfm_calloc(e, (size_t)m->n_params, sizeof(float), "model gradients");
    if (!m->w || !m->g) {
        model_free(m);
        return BGFM_ENOMEM;
    }
    return 0;
}

void model_free(model *m) {
    free(m->t);
    free(m->w);
    free(m->g);
    m->t = NULL;
    m->w = m->g = NULL;
}

void model_init_params(model *m, uint64_t seed) {
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->t[i];
        int64_t n = t->rows * (t->cols ? t->cols : 1);
        float *w = m->w + t->off;
        rng_stream r;
        rng_init(&r, seed, RNG_INIT, (uint64_t)i, 0, 0);
        double bound = sqrt(6.0 / (double)(t->rows + t->cols));
        for (int64_t j = 0; j < n; j++) switch (t->init) {
            case MODEL_INIT_XAVIER: w[j] = (float)((2.0 * rng_uniform(&r) - 1.0) * bound); break;
            case MODEL_INIT_ZERO: w[j] = 0.0f; break;
            case MODEL_INIT_ONE: w[j] = 1.0f; break;
            case MODEL_INIT_NORMAL: w[j] = (float)(0.02 * rng_normal(&r)); break;
            }
    }
}

const model_tensor *model_find(const model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->t[i].name, name)) return &m->t[i];
    return NULL;
}

int64_t model_embed_dim(const model *m) { return m->cfg.H; }

int64_t model_feature_dim(const model *m) {
    const model_cfg *c = &m->cfg;
    const int64_t enc = c->embed == MODEL_EMBED_PCS ? c->pcs : c->embed != MODEL_EMBED_POP ? c->H : 0;
    return enc + (c->embed != MODEL_EMBED_ENCODER ? c->pop_rank : 0);
}

double model_input_entry(const model *m, int a, const float *fc, int64_t p) {
    if (!m->cfg.norm) return (double)fc[p];
    return ((double)fc[p] - (double)m->w[m->nm_mean[a] + p]) / (double)m->w[m->nm_std[a] + p];
}

void model_pop_apply(const model *m, int a, int N, const float *fc, float *out) {
    const int64_t T = (int64_t)N * (N - 1) / 2;
    const float *W = m->w + m->pop_W[a], *b = m->w + m->pop_b[a];
    for (int k = 0; k < m->cfg.pop_rank; k++) {
        const float *w = W + (int64_t)k * T;
        double acc = (double)b[k];
        int64_t q = 0;
        for (int i = 0; i < N; i++)
            for (int j = i + 1; j < N; j++, q++)
                acc += (double)w[q] * model_input_entry(m, a, fc, (int64_t)i * N + j);
        out[k] = (float)acc;
    }
}

void model_pcs_apply(const model *m, int a, const float *e, float *out) {
    const int H = m->cfg.H;
    const float *W = m->w + m->pcs_W[a], *b = m->w + m->pcs_b[a];
    for (int k = 0; k < m->cfg.pcs; k++) {
        double acc = (double)b[k];
        for (int h = 0; h < H; h++) acc += (double)W[(int64_t)k * H + h] * (double)e[h];
        out[k] = (float)acc;
    }
}

void model_copy_buffers(model *dst, const model *src) {
    BGFM_ASSERT(dst->n_params == src->n_params && dst->n_train == src->n_train &&
                dst->n_stat == src->n_stat);
    memcpy(dst->w + dst->n_train, src->w + src->n_train,
           (size_t)(dst->n_stat - dst->n_train) * sizeof(float));
}

int model_pop_resize(model *m, int r, int pcs, int embed, bgfm_err *e) {
    model_cfg c = m->cfg;
    const int r_old = c.pop_rank, p_old = c.pcs;
    c.pop_rank = r;
    c.pcs = pcs;
    c.embed = embed;
    model nm;
    int rc = model_init(&nm, &c, e);
    if (rc) return rc;
    BGFM_ASSERT(nm.n_stat == m->n_stat);
    memcpy(nm.w, m->w, (size_t)m->n_stat * sizeof(float));
    const int keep = r < r_old ? r : r_old;
    for (int a = 0; keep > 0 && a < c.n_atlases; a++) {
        const int64_t T = (int64_t)c.atlas_nodes[a] * (c.atlas_nodes[a] - 1) / 2;
        memcpy(nm.w + nm.pop_W[a], m->w + m->pop_W[a], (size_t)keep * (size_t)T * sizeof(float));
        memcpy(nm.w + nm.pop_b[a], m->w + m->pop_b[a], (size_t)keep * sizeof(float));
    }
    const int kp = pcs < p_old ? pcs : p_old;
    for (int a = 0; kp > 0 && a < c.n_atlases; a++) {
        memcpy(nm.w + nm.pcs_W[a], m->w + m->pcs_W[a], (size_t)kp * (size_t)c.H * sizeof(float));
        memcpy(nm.w + nm.pcs_b[a], m->w + m->pcs_b[a], (size_t)kp * sizeof(float));
    }
    model_free(m);
    *m = nm;
    return 0;
}

int model_atlas_find(const model *m, const char *name) {
    for (int a = 0; a < m->cfg.n_atlases; a++)
        if (!strcmp(m->cfg.atlas[a], name)) return a;
    return -1;
}

/* ---- Workspace carving -------------------------------------------------------- */
typedef struct carver {
    unsigned char *base;
    size_t off;
} carver;

static void *take(carver *c, size_t bytes) {
    size_t o = (c->off + 63) & ~(size_t)63;
    c->off = o + bytes;
    return c->base ? c->base + o : NULL;
}
#define TAKEF(c, n) ((float *)take((c), (size_t)(n) * sizeof(float)))
#define TAKEI(c, n) ((int32_t *)take((c), (size_t)(n) * sizeof(int32_t)))
#define TAKEU(c, n) ((uint8_t *)take((c), (size_t)(n)))

static void carve_run(carver *c, model_run *r, const model_cfg *cf, int B, int n, int N,
                      int nblk, int encoder, int corrupt) {
    int64_t T = n + 1, BT = (int64_t)B * T, H = cf->H;
    r->n = n;
    r->T = (int)T;
    r->nblk = nblk;
    r->idx = TAKEI(c, (int64_t)B * n);
    r->rowptr = TAKEI(c, (int64_t)B * (n + 1));
    r->col = TAKEI(c, (int64_t)B * n * n);
    r->val = TAKEF(c, (int64_t)B * n * n);
    r->X = encoder ? TAKEF(c, (int64_t)B * n * N) : NULL;
    r->R = encoder ? TAKEF(c, (int64_t)B * n * (cf->k ? cf->k : 1)) : NULL;
    r->corrupt = corrupt ? TAKEU(c, (int64_t)B * N) : NULL;
    r->keep = corrupt ? TAKEU(c, (int64_t)B * N * N) : NULL;
    r->h0 = TAKEF(c, BT * H);
    for (int l = 0; l < nblk; l++) {
        model_blk_act *a = &r->blk[l];
        a->u = TAKEF(c, BT * H);
        a->xg = TAKEF(c, BT * H);
        a->rg = TAKEF(c, BT);
        a->h1 = NULL; /* LayerNorm outputs h1, h2: recomputed from xhat in backward */
        a->qkv = TAKEF(c, BT * 3 * H);
        a->lse = TAKEF(c, BT * cf->nh);
        a->att = TAKEF(c, BT * H);
        a->x1 = TAKEF(c, BT * H);
        a->r1 = TAKEF(c, BT);
        a->h2 = NULL;
        a->f1 = TAKEF(c, BT * cf->F); /* relu(W1 h2 + b1): the ReLU output is its own mask */
        a->x2 = TAKEF(c, BT * H);
        a->r2 = TAKEF(c, BT);
        a->hout = TAKEF(c, BT * H);
    }
    r->pool = encoder ? TAKEF(c, (int64_t)B * H) : NULL;
    int region = encoder && cf->readout == MODEL_READOUT_REGION;
    r->rp = region ? TAKEF(c, BT * cf->rdim) : NULL;
    r->rv = region ? TAKEF(c, (int64_t)B * N * cf->rdim) : NULL;
}

/* Lay out every buffer for (B, N, mode) at c->base (NULL: just count). */
static size_t carve_all(model_ws *ws, unsigned char *base, const model_cfg *cf, int B, int N,
                        int mode, double mask_ratio, int worst) {
    carver c = {base, 0};
    int M = (mode & MODEL_GMAE) ? model_n_masked(N, mask_ratio) : 0;
    int nv = worst ? N : N - M;
    if (worst) M = N;
    int64_t T = N + 1, BT = (int64_t)B * T, H = cf->H, P = cf->P;
    carve_run(&c, &ws->ea, cf, B, nv, N, cf->L, 1, worst || !(mode & MODEL_GMAE));
    if (mode & MODEL_GCL) carve_run(&c, &ws->eb, cf, B, N, N, cf->L, 1, 1);
    if (mode & MODEL_GMAE) carve_run(&c, &ws->dec, cf, B, N, N, cf->Ld, 0, 0);
    ws->mask = TAKEU(&c, (int64_t)B * N);
    ws->perm = TAKEI(&c, N);
    ws->S1 = TAKEF(&c, BT * H);
    ws->S2 = TAKEF(&c, BT * H);
    ws->S3 = TAKEF(&c, BT * 3 * H);
    ws->S4 = TAKEF(&c, BT * H);
    ws->F1 = NULL; /* unused: the FFN keeps relu(f1) itself */
    ws->F2 = TAKEF(&c, BT * cf->F);
    ws->G0 = TAKEF(&c, BT * H);
    ws->G1 = TAKEF(&c, BT * H);
    ws->G2 = TAKEF(&c, BT * H);
    ws->attn = TAKEF(&c, 2 * T * T * (ws->nthr > 0 ? ws->nthr : 1)); /* per thread */
    ws->y = TAKEF(&c, (int64_t)B * M * N);
    ws->tgt = TAKEF(&c, (int64_t)B * M * N);
    ws->dy = TAKEF(&c, (int64_t)B * M * N);
    ws->dm = TAKEF(&c, (int64_t)B * M * H);
    ws->E = TAKEF(&c, 2 * B * H);
    ws->p1 = TAKEF(&c, 2 * B * H);
    ws->pr = TAKEF(&c, 2 * B * H);
    ws->p2 = TAKEF(&c, 2 * B * P);
    ws->z = TAKEF(&c, 2 * B * P);
    ws->nrm = TAKEF(&c, 2 * B);
    ws->dz = TAKEF(&c, 2 * B * P);
    ws->dp2 = TAKEF(&c, 2 * B * P);
    ws->dpr = TAKEF(&c, 2 * B * H);
    ws->dp1 = TAKEF(&c, 2 * B * H);
    ws->dE = TAKEF(&c, 2 * B * H);
    ws->ntx = TAKEF(&c, 4 * (int64_t)B * B);
    int region = cf->readout == MODEL_READOUT_REGION;
    ws->rdv = region ? TAKEF(&c, (int64_t)B * N * cf->rdim) : NULL;
    ws->rdp = region ? TAKEF(&c, BT * cf->rdim) : NULL;
    ws->xn = cf->norm ? TAKEF(&c, (int64_t)B * N * N) : NULL;
    ws->xnb = cf->norm ? TAKEF(&c, (int64_t)B * N * N) : NULL; /* partners (view b, target) */
    ws->lossb = (double *)take(&c, (size_t)B * sizeof(double));
    ws->B = B;
    ws->N = N;
    ws->M = M;
    ws->nv = nv;
    return c.off + 64;
}

int model_ws_init(model_ws *ws, const model *m, int B_max, bgfm_err *e) {
    memset(ws, 0, sizeof *ws);
    int Nb = 0;
    for (int a = 0; a < m->cfg.n_atlases; a++)
        if (m->cfg.atlas_nodes[a] > Nb) Nb = m->cfg.atlas_nodes[a];
    ws->B_max = B_max;
    ws->N_big = Nb;
    /* the loops between the GEMMs use as many threads as OpenBLAS (docs/model.md) */
    ws->nthr = openblas_get_num_threads();
    if (ws->nthr < 1) ws->nthr = 1;
    /* an upper bound of every layout: all passes full size, M = N, all draws kept */
    ws->bytes = carve_all(ws, NULL, &m->cfg, B_max, Nb, MODEL_GMAE_GCL, 0.0, 1);
    ws->base = bgfm_malloc(e, ws->bytes, "model workspace");
    if (!ws->base) return BGFM_ENOMEM;
    int rc = par_pool_create(&ws->pool, ws->nthr, e);
    if (rc) model_ws_free(ws);
    return rc;
}

void model_ws_free(model_ws *ws) {
    par_pool_free(&ws->pool);
    free(ws->base);
    ws->base = NULL;
}

/* ---- Draws (model.md sections 3-5) ------------------------------------------------ */
static void draw_mask(model_ws *ws, int b, int N, int M, const model_hp *hp, int64_t gidx) {
    rng_stream r;
    rng_init(&r, hp->seed, RNG_MASK, (uint64_t)hp->epoch, (uint64_t)gidx, 0);
    uint8_t *mk = ws->mask + (int64_t)b * N;
    for (int i = 0; i < N; i++) ws->perm[i] = i, mk[i] = 0;
    for (int i = 0; i < M; i++) { /* partial Fisher-Yates: first M of a uniform permutation */
        int j = i + (int)rng_below(&r, (uint64_t)(N - i));
        int32_t t = ws->perm[i];
        ws->perm[i] = ws->perm[j];
        ws->perm[j] = t;
        mk[ws->perm[i]] = 1;
    }
}

/* Node corruption flags + noise written straight into X (B, N, N) rows, edge keep. */
static void draw_corrupt(model_run *r, int b, int N, const float *fc, const model_hp *hp,
                         uint32_t purpose, int64_t gidx) {
    rng_stream rn, re;
    rng_init(&rn, hp->seed, purpose, (uint64_t)hp->epoch, (uint64_t)gidx, 0);
    rng_init(&re, hp->seed, purpose, (uint64_t)hp->epoch, (uint64_t)gidx, 1);
    uint8_t *cr = r->corrupt + (int64_t)b * N, *kp = r->keep + (int64_t)b * N * N;
    float *X = r->X + (int64_t)b * N * N;
    for (int i = 0; i < N; i++) {
        cr[i] = rng_uniform(&rn) < hp->p_node;
        if (cr[i])
            for (int c = 0; c < N; c++) X[(int64_t)i * N + c] = (float)(0.1 * rng_normal(&rn));
        else
            memcpy(X + (int64_t)i * N, fc + (int64_t)i * N, (size_t)N * sizeof *X);
    }
    for (int i = 0; i < N; i++) {
        kp[(int64_t)i * N + i] = 1;
        for (int j = i + 1; j < N; j++) {
            uint8_t k = rng_uniform(&re) >= hp->p_edge;
            kp[(int64_t)i * N + j] = k;
            kp[(int64_t)j * N + i] = k;
        }
    }
}


typedef struct view_job {
    model_ws *ws;
    model_run *r;
    const model *m;
    const model_batch *bt;
    const model_hp *hp;
    int visible;
    uint32_t purpose;
} view_job;

/* graphs [b0, b1) of build_view: each writes only its own slices of r */
static void view_body(void *v, int64_t b0, int64_t b1, int tid) {
    const view_job *j = v;
    model_run *r = j->r;
    const model_batch *bt = j->bt;
    const model_hp *hp = j->hp;
    int N = bt->N, n = r->n, k = j->m->cfg.k;
    /* view b of a batch with partners is made from the partner graphs */
    int partner = j->purpose == RNG_CORRUPT_B && bt->fc_b;
    const float *fc0 = partner ? bt->fc_b : bt->fc, *rw0 = partner ? bt->rwse_b : bt->rwse;
    const uint8_t *adj0 = partner ? bt->adj_b : bt->adj;
    for (int b = (int)b0; b < (int)b1; b++) {
        const float *fc = fc0 + (int64_t)b * N * N;
        const uint8_t *adj = adj0 + (int64_t)b * N * N;
        const float *rw = rw0 + (int64_t)b * N * k;
        int32_t *idx = r->idx + (int64_t)b * n;
        if (j->purpose == 0 && !j->visible) { /* the full, uncorrupted graph (model_encode) */
            for (int i = 0; i < N; i++) idx[i] = i;
            memcpy(r->X + (int64_t)b * N * N, fc, (size_t)N * (size_t)N * sizeof(float));
        } else if (j->visible) {
            const uint8_t *mk = j->ws->mask + (int64_t)b * N;
            int p = 0;
            for (int i = 0; i < N; i++)
                if (!mk[i]) idx[p++] = i;
            BGFM_ASSERT(p == n);
            float *X = r->X + (int64_t)b * n * N;
            for (int i = 0; i < n; i++) {
                const float *src = fc + (int64_t)idx[i] * N;
                float *dst = X + (int64_t)i * N;
                for (int c = 0; c < N; c++) dst[c] = (hp->mask_columns && mk[c]) ? 0.0f : src[c];
            }
        } else {
            for (int i = 0; i < N; i++) idx[i] = i;
            draw_corrupt(r, b, N, fc, hp, j->purpose, bt->gidx[b]);
        }
        for (int i = 0; i < n; i++)
            memcpy(r->R + ((int64_t)b * n + i) * k, rw + (int64_t)idx[i] * k, (size_t)k * sizeof(float));
        layer_csr c = blk_csr(r, b);
        const model_prompt *pr = j->ws->prompt;
        if (j->purpose == 0 && !j->visible && pr && pr->edge)
            blk_prompt_csr(&c, pr, adj, N, b); /* the prompted, weighted graph */
        else
            layer_csr_build(&c, adj, j->visible || !j->purpose ? NULL : r->keep + (int64_t)b * N * N,
                            N, idx, n);
    }
}

/* Inputs of an encoder run: idx, X (FC part), R, CSR. visible: GMAE view (mask set);
 * otherwise a corrupted full view (draws of `purpose`, keyed per graph). */
static void build_view(model_ws *ws, model_run *r, const model *m, const model_batch *bt,
                       const model_hp *hp, int visible, uint32_t purpose) {
    view_job j = {ws, r, m, bt, hp, visible, purpose};
    par_for(ws->pool, bt->B, view_body, &j);
}

/* The decoder's input rows per graph: W_re z + b_re (visible, from S3) or the mask
 * token, + E_a[i]; token first; and its CSR over all N nodes. */
typedef struct step_job { /* the model and its workspace: the arguments of the bodies below */
    const model *m;
    model_ws *ws;
} step_job;

static void dec_input_body(void *arg, int64_t b0, int64_t b1, int tid) {
    const model *m = ((const step_job *)arg)->m;
    model_ws *ws = ((const step_job *)arg)->ws;
    model_run *dr = &ws->dec;
    int N = ws->N;
    int64_t H = m->cfg.H, T = dr->T, Ta = ws->ea.T;
    const float *E = m->w + m->node[ws->bt.atlas];
    int di = ws->hp.dec_input;
    for (int64_t b = b0; b < b1; b++) {
        const uint8_t *mk = ws->mask + b * N;
        const float *eg = ws->E + b * H; /* e_a of the graph (decoder_input with graph) */
        memcpy(dr->h0 + b * T * H, m->w + m->tok + (int64_t)ws->bt.atlas * H, (size_t)H * sizeof(float));
        int v = 0;
        for (int i = 0; i < N; i++) {
            float *h = dr->h0 + (b * T + 1 + i) * H;
            const float *src = mk[i] || di == MODEL_DEC_GRAPH ? m->w + m->mask_tok
                                                              : ws->S3 + (b * Ta + 1 + v) * H;
            if (!mk[i]) v++;
            for (int64_t j = 0; j < H; j++) h[j] = src[j] + E[(int64_t)i * H + j];
            if (di != MODEL_DEC_NODES)
                for (int64_t j = 0; j < H; j++) h[j] += eg[j];
            dr->idx[b * N + i] = i;
        }
        layer_csr c = blk_csr(dr, (int)b);
        layer_csr_build(&c, ws->bt.adj + b * N * N, NULL, N, dr->idx + b * N, N);
    }
}

/* graph b's masked rows of the decoder output and their FC targets, to rows b M .. */
static void dec_gather_body(void *v, int64_t b0, int64_t b1, int tid) {
    const model *m = ((const step_job *)v)->m;
    model_ws *ws = ((const step_job *)v)->ws;
    int N = ws->N;
    int64_t H = m->cfg.H, T = ws->dec.T;
    const float *dl = ws->dec.blk[m->cfg.Ld - 1].hout;
    /* rec_target partner: the partner window's rows (its sampling noise unpredictable) */
    const float *fc = ws->hp.rec_partner && ws->bt.fc_b ? ws->bt.fc_b : ws->bt.fc;
    for (int64_t b = b0; b < b1; b++) {
        int64_t q = b * ws->M;
        for (int i = 0; i < N; i++)
            if (ws->mask[b * N + i]) {
                memcpy(ws->dm + q * H, dl + (b * T + 1 + i) * H, (size_t)H * sizeof(float));
                memcpy(ws->tgt + q * N, fc + (b * N + i) * N, (size_t)N * sizeof(float));
                q++;
            }
        BGFM_ASSERT(q == (b + 1) * ws->M);
    }
}

/* structure loss of graphs [b0, b1) of the current batch (ws->bt), each into lossb[b] */
static void bce_body(void *arg, int64_t b0, int64_t b1, int tid) {
    const model *m = ((const step_job *)arg)->m;
    model_ws *ws = ((const step_job *)arg)->ws;
    int64_t H = m->cfg.H, Ta = ws->ea.T, N = ws->N, T = N + 1;
    float *scratch = ws->attn + (int64_t)tid * 2 * T * T;
    const float *za = ws->ea.blk[m->cfg.L - 1].hout;
    for (int64_t b = b0; b < b1; b++)
        ws->lossb[b] = layer_bce_struct(ws->G2 + (b * Ta + 1) * H, za + (b * Ta + 1) * H, ws->nv, H,
                                        H, ws->bt.adj + b * N * N, (int32_t)N,
                                        ws->ea.idx + b * ws->nv, ws->hp.lambda_adj / ws->B, scratch);
}

/* ---- Readout: graph embeddings E (B, H) of an encoder run (model.md section 2) ------ */
static void readout_forward(const model *m, model_run *r, model_ws *ws, int B, int atlas, int N,
                            float *E) {
    int64_t H = m->cfg.H, T = r->T, n = r->n, rd = m->cfg.rdim;
    const float *z = r->blk[m->cfg.L - 1].hout;
    if (m->cfg.readout == MODEL_READOUT_MEAN) {
        for (int b = 0; b < B; b++)
            layer_meanpool_forward(E + (int64_t)b * H, z + ((int64_t)b * T + 1) * H, n, H, H);
        return;
    }
    /* p_i = Wc z_i on every row; v = (N / n) p scattered to the rows' region slots (zero
     * where a region is not in the view); e = v W_ro,a^T + b_ro */
    layer_linear_forward(ws->pool, r->rp, z, m->w + m->ro_Wc, H, NULL, (int64_t)B * T, H, rd);
    float s = (float)N / (float)n;
    memset(r->rv, 0, (size_t)B * (size_t)N * (size_t)rd * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int64_t i = 0; i < n; i++) {
            const float *p = r->rp + ((int64_t)b * T + 1 + i) * rd;
            float *v = r->rv + ((int64_t)b * N + r->idx[(int64_t)b * n + i]) * rd;
            for (int64_t d = 0; d < rd; d++) v[d] = s * p[d];
        }
    int64_t NR = (int64_t)N * rd;
    layer_linear_forward(ws->pool, E, r->rv, m->w + m->ro_W[atlas], NR, m->w + m->ro_b, B, NR, H);
}

/* dE (B, H) -> gradients of the readout's weights and dZ (B, T, H), ADDED (token rows
 * get nothing). */
static void readout_backward(model *m, const model_run *r, model_ws *ws, int B, int atlas, int N,
                             const float *dE, float *dZ) {
    int64_t H = m->cfg.H, T = r->T, n = r->n, rd = m->cfg.rdim;
    if (m->cfg.readout == MODEL_READOUT_MEAN) {
        for (int b = 0; b < B; b++)
            layer_meanpool_backward(dZ + ((int64_t)b * T + 1) * H, dE + (int64_t)b * H, n, H, H);
        return;
    }
    const float *z = r->blk[m->cfg.L - 1].hout;
    int64_t NR = (int64_t)N * rd;
    int fz = ws->prompt && ws->prompt->frozen; /* prompt tuning: no parameter gradients */
    layer_linear_backward_set(ws->pool, ws->rdv, fz ? NULL : m->g + m->ro_W[atlas],
                              fz ? NULL : m->g + m->ro_b, dE, r->rv, m->w + m->ro_W[atlas], NR, B,
                              NR, H);
    float s = (float)N / (float)n;
    for (int b = 0; b < B; b++) {
        memset(ws->rdp + (int64_t)b * T * rd, 0, (size_t)rd * sizeof(float));
        for (int64_t i = 0; i < n; i++) {
            const float *dv = ws->rdv + ((int64_t)b * N + r->idx[(int64_t)b * n + i]) * rd;
            float *dp = ws->rdp + ((int64_t)b * T + 1 + i) * rd;
            for (int64_t d = 0; d < rd; d++) dp[d] = s * dv[d];
        }
    }
    layer_linear_backward(ws->pool, dZ, fz ? NULL : m->g + m->ro_Wc, NULL, ws->rdp, z,
                          m->w + m->ro_Wc, H, (int64_t)B * T, H, rd);
}

/* ---- Input normalisation (model.md section 1): x = (C - mean_a) / std_a -------------- */
typedef struct norm_job {
    const model *m;
    const model_batch *bt;
    model_ws *ws;
} norm_job;

static void norm_body(void *v, int64_t b0, int64_t b1, int tid) {
    const norm_job *j = v;
    int64_t N = j->bt->N, NN = N * N;
    const float *mu = j->m->w + j->m->nm_mean[j->bt->atlas], *sd = j->m->w + j->m->nm_std[j->bt->atlas];
    for (int src = 0; src < 2; src++) {
        const float *in = src ? j->bt->fc_b : j->bt->fc;
        float *out = src ? j->ws->xnb : j->ws->xn;
        if (!in || !out) continue;
        for (int64_t b = b0; b < b1; b++)
            for (int64_t q = 0; q < NN; q++) out[b * NN + q] = (in[b * NN + q] - mu[q]) / sd[q];
    }
}

/* The batch the model sees: bt itself, or (input_norm) its normalised copy in ws. */
static model_batch normalised(const model *m, model_ws *ws, const model_batch *bt) {
    model_batch nb = *bt;
    if (!m->cfg.norm) return nb;
    norm_job j = {m, bt, ws};
    par_for(ws->pool, bt->B, norm_body, &j);
    nb.fc = ws->xn;
    if (bt->fc_b) nb.fc_b = ws->xnb;
    return nb;
}

/* ---- The model --------------------------------------------------------------------- */
/* Whether the step computes view a's graph embedding e_a (into ws->E): for GCL, and for
 * a decoder that reads it. */
static int view_a_embedded(const model_ws *ws) {
    int mode = ws->hp.mode;
    return (mode & MODEL_GCL) || ((mode & MODEL_GMAE) && ws->hp.dec_input != MODEL_DEC_NODES);
}

const float *model_graph_readout(model *m, model_ws *ws, int atlas, int N, const float *fc,
                                 const uint8_t *adj, const float *rwse, int64_t gidx) {
    /* GCL mode with p_node = p_edge = 0 runs the encoder on the full, uncorrupted graph
     * (both views); dropout 0; the view-b row is the graph embedding. */
    model_hp hp;
    memset(&hp, 0, sizeof hp);
    hp.mode = MODEL_GCL;
    hp.lambda_cl = 1.0;
    hp.tau_cl = 1.0;
    hp.mask_columns = 1;
    model_batch bt = {atlas, 1, N, fc, adj, rwse, &gidx, NULL, NULL, NULL};
    model_losses ls;
    model_forward(m, ws, &bt, &hp, &ls);
    return ws->E + m->cfg.H;
}

void model_forward(model *m, model_ws *ws, const model_batch *bt, const model_hp *hp,
                   model_losses *out) {
    const model_cfg *cf = &m->cfg;
    int B = bt->B, N = bt->N, mode = hp->mode;
    int64_t H = cf->H;
    BGFM_ASSERT(B <= ws->B_max && N <= ws->N_big && bt->atlas >= 0 &&
                bt->atlas < cf->n_atlases && cf->atlas_nodes[bt->atlas] == N);
    ws->prompt = NULL;
    size_t used = carve_all(ws, ws->base, cf, B, N, mode, hp->mask_ratio, 0);
    BGFM_ASSERT(used <= ws->bytes);
    ws->hp = *hp;
    model_batch nb = normalised(m, ws, bt);
    bt = &nb;
    ws->bt = *bt;
    int nt = blk_team_begin(ws);
    memset(out, 0, sizeof *out);
    memset(ws->mask, 0, (size_t)B * (size_t)N);
    /* views */
    if (mode & MODEL_GMAE) {
        for (int b = 0; b < B; b++) draw_mask(ws, b, N, ws->M, hp, bt->gidx[b]);
        build_view(ws, &ws->ea, m, bt, hp, 1, 0);
    } else {
        build_view(ws, &ws->ea, m, bt, hp, 0, RNG_CORRUPT_A);
    }
    if (mode & MODEL_GCL) build_view(ws, &ws->eb, m, bt, hp, 0, RNG_CORRUPT_B);
    /* encoders */
    drop_keys d0 = blk_keys_for(ws, 0), d1 = blk_keys_for(ws, 1), d2 = blk_keys_for(ws, 2);
    blk_embed(m, &ws->ea, ws, B, bt->atlas, N);
    blk_run_forward(m, &ws->ea, m->enc, ws, B, &d0);
    if (mode & MODEL_GCL) {
        blk_embed(m, &ws->eb, ws, B, bt->atlas, N);
        blk_run_forward(m, &ws->eb, m->enc, ws, B, &d1);
    }
    int64_t Ta = ws->ea.T;
    const float *za = ws->ea.blk[cf->L - 1].hout;
    memset(ws->G2, 0, (size_t)(B * Ta * H) * sizeof(float));
    /* view a's graph embedding: GCL's, and the decoder's when it reads e_a */
    if (view_a_embedded(ws)) readout_forward(m, &ws->ea, ws, B, bt->atlas, N, ws->E);
    if (mode & MODEL_GMAE) {
        /* decoder input: W_re z + b_re (visible) or mask token, + E_a[i] (+ e_a); token first */
        model_run *dr = &ws->dec;
        int64_t M = ws->M;
        if (hp->dec_input != MODEL_DEC_GRAPH)
            layer_linear_forward(ws->pool, ws->S3, za, m->w + m->re_W, H, m->w + m->re_b,
                                 (int64_t)B * Ta, H, H);
        step_job dj = {m, ws};
        par_for(ws->pool, B, dec_input_body, &dj);
        blk_run_forward(m, dr, m->dec, ws, B, &d2);
        /* reconstruction of masked rows (M per graph, graph b's from row b M), first N columns */
        par_for(ws->pool, B, dec_gather_body, &dj);
        int64_t q = (int64_t)B * M;
        layer_linear_forward(ws->pool, ws->y, ws->dm, m->w + m->out_W, H, m->w + m->out_b, q, H, N);
        memset(ws->dy, 0, (size_t)(q * N) * sizeof(float));
        out->rec = q ? layer_smoothl1(ws->dy, ws->y, ws->tgt, q * N, hp->lambda_rec) : 0.0;
        /* structure loss on the visible node embeddings */
        double s = 0;
        step_job bj = {m, ws};
        par_for(ws->pool, B, bce_body, &bj);
        for (int b = 0; b < B; b++) s += ws->lossb[b]; /* graph order */
        out->adj = s / B;
    }
    if (mode & MODEL_GCL) {
        /* graph embeddings (view a's above), projection head, L2 normalisation */
        readout_forward(m, &ws->eb, ws, B, bt->atlas, N, ws->E + (int64_t)B * H);
        int64_t B2 = 2 * (int64_t)B;
        layer_linear_forward(ws->pool, ws->p1, ws->E, m->w + m->p_W1, H, m->w + m->p_b1, B2, H, H);
        layer_relu_forward(ws->pr, ws->p1, B2 * H);
        layer_linear_forward(ws->pool, ws->p2, ws->pr, m->w + m->p_W2, H, m->w + m->p_b2, B2, H, cf->P);
        layer_l2norm_forward(ws->z, ws->nrm, ws->p2, B2, cf->P);
        memset(ws->dz, 0, (size_t)(B2 * cf->P) * sizeof(float));
    }
    out->total = hp->lambda_rec * out->rec + hp->lambda_adj * out->adj;
    blk_team_end(nt);
}

double model_contrastive_local(model_ws *ws, const model *m) {
    if (!(ws->hp.mode & MODEL_GCL)) return 0.0;
    int64_t B = ws->B, P = m->cfg.P;
    return layer_ntxent(ws->dz, ws->dz + B * P, ws->z, ws->z + B * P, B, P, ws->hp.tau_cl,
                        ws->hp.lambda_cl, ws->ntx);
}

int64_t model_grad_tail(const model *m) { return m->re_W; }

int64_t model_grad_end(const model *m) { return m->n_train; }

void model_backward(model *m, model_ws *ws) { model_backward_hooked(m, ws, NULL, NULL); }

void model_backward_hooked(model *m, model_ws *ws, model_grad_hook hook, void *arg) {
    const model_cfg *cf = &m->cfg;
    int B = ws->B, N = ws->N, mode = ws->hp.mode, atlas = ws->bt.atlas;
    int64_t H = cf->H, Ta = ws->ea.T;
    float *g = m->g;
    drop_keys d0 = blk_keys_for(ws, 0), d1 = blk_keys_for(ws, 1), d2 = blk_keys_for(ws, 2);
    const float *za = ws->ea.blk[cf->L - 1].hout;
    int nt = blk_team_begin(ws);
    int di = ws->hp.dec_input;
    /* view a's readout backward waits for the decoder's part of dE when the decoder reads
     * e_a; otherwise it runs where it always did (the same sums in the same order) */
    int late = (mode & MODEL_GMAE) && di != MODEL_DEC_NODES;
    if (!(mode & MODEL_GCL)) memset(ws->dE, 0, (size_t)B * (size_t)H * sizeof(float));
    if (mode & MODEL_GCL) {
        int64_t B2 = 2 * (int64_t)B;
        memset(ws->dp2, 0, (size_t)(B2 * cf->P) * sizeof(float));
        layer_l2norm_backward(ws->dp2, ws->dz, ws->z, ws->nrm, B2, cf->P);
        memset(ws->dpr, 0, (size_t)(B2 * H) * sizeof(float));
        layer_linear_backward(ws->pool, ws->dpr, g + m->p_W2, g + m->p_b2, ws->dp2, ws->pr, m->w + m->p_W2, H,
                              B2, H, cf->P);
        memset(ws->dp1, 0, (size_t)(B2 * H) * sizeof(float));
        layer_relu_backward(ws->dp1, ws->dpr, ws->p1, B2 * H);
        memset(ws->dE, 0, (size_t)(B2 * H) * sizeof(float));
        layer_linear_backward(ws->pool, ws->dE, g + m->p_W1, g + m->p_b1, ws->dp1, ws->E, m->w + m->p_W1, H,
                              B2, H, H);
        /* view b: its own encoder pass */
        model_run *rb = &ws->eb;
        memset(ws->G0, 0, (size_t)B * (size_t)rb->T * (size_t)H * sizeof(float));
        if (!late) readout_backward(m, &ws->ea, ws, B, atlas, N, ws->dE, ws->G2);
        readout_backward(m, rb, ws, B, atlas, N, ws->dE + (int64_t)B * H, ws->G0);
        float *dh0 = blk_run_backward(m, rb, m->enc, ws, B, &d1, ws->G0);
        blk_embed_backward(m, rb, ws, B, atlas, N, dh0);
    }
    if (mode & MODEL_GMAE) {
        model_run *dr = &ws->dec;
        int64_t T = dr->T, q = (int64_t)B * ws->M;
        /* output layer on masked rows */
        memset(ws->S3, 0, (size_t)(q * H) * sizeof(float));
        layer_linear_backward(ws->pool, ws->S3, g + m->out_W, g + m->out_b, ws->dy, ws->dm, m->w + m->out_W,
                              H, q, H, N);
        float *dl = ws->G1;
        memset(dl, 0, (size_t)B * (size_t)T * (size_t)H * sizeof(float));
        int64_t r = 0;
        for (int b = 0; b < B; b++)
            for (int i = 0; i < N; i++)
                if (ws->mask[(int64_t)b * N + i]) {
                    memcpy(dl + ((int64_t)b * T + 1 + i) * H, ws->S3 + r * H, (size_t)H * sizeof(float));
                    r++;
                }
        float *dh0 = blk_run_backward(m, dr, m->dec, ws, B, &d2, dl);
        /* decoder input */
        float *dE = g + m->node[atlas], *dtok = g + m->tok + (int64_t)atlas * H;
        float *dre = ws->S3; /* (B, Ta, H) gradient of W_re z + b_re; token rows 0 */
        memset(dre, 0, (size_t)B * (size_t)Ta * (size_t)H * sizeof(float));
        for (int b = 0; b < B; b++) {
            const uint8_t *mk = ws->mask + (int64_t)b * N;
            float *deg = ws->dE + (int64_t)b * H; /* view a's embedding, when the decoder reads it */
            for (int64_t j = 0; j < H; j++) dtok[j] += dh0[(int64_t)b * T * H + j];
            int v = 0;
            for (int i = 0; i < N; i++) {
                const float *d = dh0 + ((int64_t)b * T + 1 + i) * H;
                float *dst = mk[i] || di == MODEL_DEC_GRAPH ? g + m->mask_tok
                                                            : dre + ((int64_t)b * Ta + 1 + v) * H;
                if (!mk[i]) v++;
                for (int64_t j = 0; j < H; j++) {
                    dst[j] += d[j];
                    dE[(int64_t)i * H + j] += d[j];
                }
                if (di != MODEL_DEC_NODES)
                    for (int64_t j = 0; j < H; j++) deg[j] += d[j];
            }
        }
        /* token rows of dre are zero, so they add nothing to dW_re, db_re or dz */
        if (di != MODEL_DEC_GRAPH) {
            float *dbre = g + m->re_b;
            for (int b = 0; b < B; b++)
                for (int64_t i = 1; i < Ta; i++)
                    for (int64_t j = 0; j < H; j++) dbre[j] += dre[((int64_t)b * Ta + i) * H + j];
            layer_linear_backward(ws->pool, ws->G2, g + m->re_W, NULL, dre, za, m->w + m->re_W, H,
                                  (int64_t)B * Ta, H, H);
        }
    }
    /* view a's readout: the contrastive term's gradient and the decoder's (dE rows 0..B) */
    if (late) readout_backward(m, &ws->ea, ws, B, atlas, N, ws->dE, ws->G2);
    /* decoder and projection-head gradients are final here (layout: they follow the
     * encoder; the encoder's backward below touches only in/, embed/ and enc/) */
    if (hook) hook(arg, m->re_W, m->n_train - m->re_W);
    float *dh0 = blk_run_backward(m, &ws->ea, m->enc, ws, B, &d0, ws->G2);
    blk_embed_backward(m, &ws->ea, ws, B, atlas, N, dh0);
    blk_team_end(nt);
}

/* ---- Adaptation: the encoder alone on full graphs (docs/adapt.md) ------------------ */
void model_encode(model *m, model_ws *ws, const model_batch *bt, const model_hp *hp) {
    model_encode_prompted(m, ws, bt, hp, NULL);
}

void model_encode_prompted(model *m, model_ws *ws, const model_batch *bt, const model_hp *hp,
                           const model_prompt *pr) {
    const model_cfg *cf = &m->cfg;
    int B = bt->B, N = bt->N;
    BGFM_ASSERT(B <= ws->B_max && N <= ws->N_big && bt->atlas >= 0 &&
                bt->atlas < cf->n_atlases && cf->atlas_nodes[bt->atlas] == N);
    size_t used = carve_all(ws, ws->base, cf, B, N, 0, 0.0, 0);
    BGFM_ASSERT(used <= ws->bytes);
    ws->hp = *hp;
    ws->hp.mode = 0;
    ws->prompt = pr;
    model_batch nb = normalised(m, ws, bt);
    ws->bt = nb;
    int nt = blk_team_begin(ws);
    memset(ws->mask, 0, (size_t)B * (size_t)N);
    build_view(ws, &ws->ea, m, &nb, &ws->hp, 0, 0);
    drop_keys d0 = blk_keys_for(ws, 0);
    blk_embed(m, &ws->ea, ws, B, nb.atlas, N);
    if (pr) blk_prompt_feat(pr, &ws->ea, B, N, cf->H);
    blk_run_forward(m, &ws->ea, m->enc, ws, B, &d0);
    readout_forward(m, &ws->ea, ws, B, nb.atlas, N, ws->E);
    blk_team_end(nt);
}

void model_encode_backward(model *m, model_ws *ws, const float *dE) {
    int B = ws->B, N = ws->N, atlas = ws->bt.atlas;
    int64_t H = m->cfg.H, Ta = ws->ea.T;
    drop_keys d0 = blk_keys_for(ws, 0);
    int nt = blk_team_begin(ws);
    const model_prompt *pr = ws->prompt;
    memset(ws->G2, 0, (size_t)B * (size_t)Ta * (size_t)H * sizeof(float));
    if (pr && pr->edge && pr->gedge) memset(pr->dA, 0, (size_t)B * (size_t)N * (size_t)N * sizeof(float));
    readout_backward(m, &ws->ea, ws, B, atlas, N, dE, ws->G2);
    float *dh0 = blk_run_backward(m, &ws->ea, m->enc, ws, B, &d0, ws->G2);
    if (pr) blk_prompt_backward(pr, &ws->ea, B, N, H, dh0);
    if (!pr || !pr->frozen) blk_embed_backward(m, &ws->ea, ws, B, atlas, N, dh0);
    blk_team_end(nt);
}

void model_step(model *m, model_ws *ws, const model_batch *bt, const model_hp *hp,
                model_losses *out) {
    memset(m->g, 0, (size_t)m->n_params * sizeof(float));
    model_forward(m, ws, bt, hp, out);
    out->cl = model_contrastive_local(ws, m);
    out->total += hp->lambda_cl * out->cl;
    model_backward(m, ws);
}
