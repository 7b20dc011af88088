/* model.c: parameter table, initialisation, workspace arena and the GMAE + GCL
 * forward/backward of docs/model.md over the kernels of layers.c.
 * Not the optimiser, not I/O, not the batching of a dataset. */
#include "bgfm/model.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bgfm/par.h"
#include "bgfm/rng.h"
#include "bgfm/simd.h"

int model_readout_parse(const char *s) {
    return !strcmp(s, "mean") ? MODEL_READOUT_MEAN : !strcmp(s, "region") ? MODEL_READOUT_REGION : -1;
}

const char *model_readout_name(int r) { return r == MODEL_READOUT_REGION ? "region" : "mean"; }

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

void model_copy_buffers(model *dst, const model *src) {
    BGFM_ASSERT(dst->n_params == src->n_params && dst->n_train == src->n_train);
    memcpy(dst->w + dst->n_train, src->w + src->n_train,
           (size_t)(dst->n_params - dst->n_train) * sizeof(float));
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
    ws->xnb = cf->norm && (mode & MODEL_GCL) ? TAKEF(&c, (int64_t)B * N * N) : NULL;
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

static layer_csr run_csr(const model_run *r, int b) {
    layer_csr c;
    int64_t n = r->n;
    c.n = r->n;
    c.rowptr = r->rowptr + (int64_t)b * (n + 1);
    c.col = r->col + (int64_t)b * n * n;
    c.val = r->val + (int64_t)b * n * n;
    return c;
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
        if (j->visible) {
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
        layer_csr c = run_csr(r, b);
        layer_csr_build(&c, adj, j->visible ? NULL : r->keep + (int64_t)b * N * N, N, idx, n);
    }
}

/* Inputs of an encoder run: idx, X (FC part), R, CSR. visible: GMAE view (mask set);
 * otherwise a corrupted full view (draws of `purpose`, keyed per graph). */
static void build_view(model_ws *ws, model_run *r, const model *m, const model_batch *bt,
                       const model_hp *hp, int visible, uint32_t purpose) {
    view_job j = {ws, r, m, bt, hp, visible, purpose};
    par_for(ws->pool, bt->B, view_body, &j);
}

/* ---- One block (model.md section 2) --------------------------------------------- */
typedef struct drop_keys {
    float p;
    uint64_t seed, step, site;
    const int64_t *gidx;
} drop_keys;

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
static int blas_team_begin(const model_ws *ws) {
    int nt = openblas_get_num_threads();
    if (par_threads(ws->pool) <= 1 || nt <= 1) return 0;
    openblas_set_num_threads(1);
    return nt;
}
static void blas_team_end(int nt) {
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
        layer_csr cs = run_csr(c->r, (int)b);
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
        layer_csr cs = run_csr(c->r, (int)b);
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
    /* feed-forward: S2 = dh2 (residual path), S1 = its dropout = d(ffn output) */
    bwd_ln f2 = {&c, ws->S2, ws->S1, dhout, a->x2, a->r2, p->ln2_g, 1};
    par_for(ws->pool, B, bwd_ln_body, &f2);
    col_sums_run(&c, dhout, a->x2, p->ln2_g, p->ln2_b, ws->S1, p->b2, H);
    layer_linear_backward_set(ws->pool, ws->F2, g + p->W2, NULL, ws->S1, a->f1, w + p->W2, F, BT, F, H);
    par_for(ws->pool, B, bwd_ffn_mid_body, &c); /* F2 through the ReLU; S4 = h2 */
    col_sums_run(&c, NULL, NULL, -1, -1, ws->F2, p->b1, F);
    layer_linear_backward(ws->pool, ws->S2, g + p->W1, NULL, ws->F2, ws->S4, w + p->W1, H, BT, H, F);
    /* attention: S1 = dh1, S2 = its dropout = d(attention output) */
    col_sums_run(&c, ws->S2, a->x1, p->ln1_g, p->ln1_b, NULL, -1, 0);
    bwd_ln f1 = {&c, ws->S1, ws->S2, ws->S2, a->x1, a->r1, p->ln1_g, 0};
    par_for(ws->pool, B, bwd_ln_body, &f1); /* a graph's S2 rows are read, then replaced */
    col_sums_run(&c, NULL, NULL, -1, -1, ws->S2, p->bo, H);
    layer_linear_backward_set(ws->pool, ws->S4, g + p->Wo, NULL, ws->S2, a->att, w + p->Wo, H, BT, H, H);
    par_for(ws->pool, B, bwd_attn_body, &c); /* S3 = dqkv, S2 = h1 */
    col_sums_run(&c, NULL, NULL, -1, -1, ws->S3, p->bqkv, 3 * H);
    layer_linear_backward(ws->pool, ws->S1, g + p->Wqkv, NULL, ws->S3, ws->S2, w + p->Wqkv, H, BT, H, 3 * H);
    /* graph convolution: token row passes through; region rows through ln_g (S2), the
     * ReLU (S3) and Ahat (S4). dhin is written by the GEMM, then the residual paths are
     * added, so the caller does not zero it. */
    par_for(ws->pool, B, bwd_gcn_body, &c);
    par_for(ws->pool, H, bwd_gcn_cols_body, &c);
    layer_linear_backward_set(ws->pool, dhin, g + p->gW, NULL, ws->S4, hin, w + p->gW, H, BT, H, H);
    par_for(ws->pool, B, bwd_res_body, &c);
}

/* ---- Runs: embedding + blocks --------------------------------------------------- */
static void encoder_embed(const model *m, model_run *r, model_ws *ws, int B, int atlas, int N) {
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

static void encoder_embed_backward(model *m, const model_run *r, model_ws *ws, int B, int atlas,
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

static void run_forward(const model *m, model_run *r, const model_block *blocks, model_ws *ws,
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
static float *run_backward(model *m, const model_run *r, const model_block *blocks, model_ws *ws,
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

static drop_keys keys_for(const model_ws *ws, int run) {
    drop_keys d = {ws->hp.p_drop, ws->hp.seed, (uint64_t)ws->hp.step, (uint64_t)run << 16,
                   ws->bt.gidx};
    return d;
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
    for (int64_t b = b0; b < b1; b++) {
        const uint8_t *mk = ws->mask + b * N;
        memcpy(dr->h0 + b * T * H, m->w + m->tok + (int64_t)ws->bt.atlas * H, (size_t)H * sizeof(float));
        int v = 0;
        for (int i = 0; i < N; i++) {
            float *h = dr->h0 + (b * T + 1 + i) * H;
            const float *src = mk[i] ? m->w + m->mask_tok : ws->S3 + (b * Ta + 1 + v) * H;
            if (!mk[i]) v++;
            for (int64_t j = 0; j < H; j++) h[j] = src[j] + E[(int64_t)i * H + j];
            dr->idx[b * N + i] = i;
        }
        layer_csr c = run_csr(dr, (int)b);
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
    for (int64_t b = b0; b < b1; b++) {
        int64_t q = b * ws->M;
        for (int i = 0; i < N; i++)
            if (ws->mask[b * N + i]) {
                memcpy(ws->dm + q * H, dl + (b * T + 1 + i) * H, (size_t)H * sizeof(float));
                memcpy(ws->tgt + q * N, ws->bt.fc + (b * N + i) * N, (size_t)N * sizeof(float));
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
    layer_linear_backward_set(ws->pool, ws->rdv, m->g + m->ro_W[atlas], m->g + m->ro_b, dE, r->rv,
                              m->w + m->ro_W[atlas], NR, B, NR, H);
    float s = (float)N / (float)n;
    for (int b = 0; b < B; b++) {
        memset(ws->rdp + (int64_t)b * T * rd, 0, (size_t)rd * sizeof(float));
        for (int64_t i = 0; i < n; i++) {
            const float *dv = ws->rdv + ((int64_t)b * N + r->idx[(int64_t)b * n + i]) * rd;
            float *dp = ws->rdp + ((int64_t)b * T + 1 + i) * rd;
            for (int64_t d = 0; d < rd; d++) dp[d] = s * dv[d];
        }
    }
    layer_linear_backward(ws->pool, dZ, m->g + m->ro_Wc, NULL, ws->rdp, z, m->w + m->ro_Wc, H,
                          (int64_t)B * T, H, rd);
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
void model_forward(model *m, model_ws *ws, const model_batch *bt, const model_hp *hp,
                   model_losses *out) {
    const model_cfg *cf = &m->cfg;
    int B = bt->B, N = bt->N, mode = hp->mode;
    int64_t H = cf->H;
    BGFM_ASSERT(B <= ws->B_max && N <= ws->N_big && bt->atlas >= 0 &&
                bt->atlas < cf->n_atlases && cf->atlas_nodes[bt->atlas] == N);
    size_t used = carve_all(ws, ws->base, cf, B, N, mode, hp->mask_ratio, 0);
    BGFM_ASSERT(used <= ws->bytes);
    ws->hp = *hp;
    model_batch nb = normalised(m, ws, bt);
    bt = &nb;
    ws->bt = *bt;
    int nt = blas_team_begin(ws);
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
    drop_keys d0 = keys_for(ws, 0), d1 = keys_for(ws, 1), d2 = keys_for(ws, 2);
    encoder_embed(m, &ws->ea, ws, B, bt->atlas, N);
    run_forward(m, &ws->ea, m->enc, ws, B, &d0);
    if (mode & MODEL_GCL) {
        encoder_embed(m, &ws->eb, ws, B, bt->atlas, N);
        run_forward(m, &ws->eb, m->enc, ws, B, &d1);
    }
    int64_t Ta = ws->ea.T;
    const float *za = ws->ea.blk[cf->L - 1].hout;
    memset(ws->G2, 0, (size_t)(B * Ta * H) * sizeof(float));
    if (mode & MODEL_GMAE) {
        /* decoder input: W_re z + b_re (visible) or mask token, + E_a[i]; token first */
        model_run *dr = &ws->dec;
        int64_t M = ws->M;
        layer_linear_forward(ws->pool, ws->S3, za, m->w + m->re_W, H, m->w + m->re_b, (int64_t)B * Ta, H, H);
        step_job dj = {m, ws};
        par_for(ws->pool, B, dec_input_body, &dj);
        run_forward(m, dr, m->dec, ws, B, &d2);
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
        /* graph embeddings, projection head, L2 normalisation */
        readout_forward(m, &ws->ea, ws, B, bt->atlas, N, ws->E);
        readout_forward(m, &ws->eb, ws, B, bt->atlas, N, ws->E + (int64_t)B * H);
        int64_t B2 = 2 * (int64_t)B;
        layer_linear_forward(ws->pool, ws->p1, ws->E, m->w + m->p_W1, H, m->w + m->p_b1, B2, H, H);
        layer_relu_forward(ws->pr, ws->p1, B2 * H);
        layer_linear_forward(ws->pool, ws->p2, ws->pr, m->w + m->p_W2, H, m->w + m->p_b2, B2, H, cf->P);
        layer_l2norm_forward(ws->z, ws->nrm, ws->p2, B2, cf->P);
        memset(ws->dz, 0, (size_t)(B2 * cf->P) * sizeof(float));
    }
    out->total = hp->lambda_rec * out->rec + hp->lambda_adj * out->adj;
    blas_team_end(nt);
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
    drop_keys d0 = keys_for(ws, 0), d1 = keys_for(ws, 1), d2 = keys_for(ws, 2);
    const float *za = ws->ea.blk[cf->L - 1].hout;
    int nt = blas_team_begin(ws);
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
        readout_backward(m, &ws->ea, ws, B, atlas, N, ws->dE, ws->G2);
        readout_backward(m, rb, ws, B, atlas, N, ws->dE + (int64_t)B * H, ws->G0);
        float *dh0 = run_backward(m, rb, m->enc, ws, B, &d1, ws->G0);
        encoder_embed_backward(m, rb, ws, B, atlas, N, dh0);
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
        float *dh0 = run_backward(m, dr, m->dec, ws, B, &d2, dl);
        /* decoder input */
        float *dE = g + m->node[atlas], *dtok = g + m->tok + (int64_t)atlas * H;
        float *dre = ws->S3; /* (B, Ta, H) gradient of W_re z + b_re; token rows 0 */
        memset(dre, 0, (size_t)B * (size_t)Ta * (size_t)H * sizeof(float));
        for (int b = 0; b < B; b++) {
            const uint8_t *mk = ws->mask + (int64_t)b * N;
            for (int64_t j = 0; j < H; j++) dtok[j] += dh0[(int64_t)b * T * H + j];
            int v = 0;
            for (int i = 0; i < N; i++) {
                const float *d = dh0 + ((int64_t)b * T + 1 + i) * H;
                float *dst = mk[i] ? g + m->mask_tok : dre + ((int64_t)b * Ta + 1 + v) * H;
                if (!mk[i]) v++;
                for (int64_t j = 0; j < H; j++) {
                    dst[j] += d[j];
                    dE[(int64_t)i * H + j] += d[j];
                }
            }
        }
        /* token rows of dre are zero, so they add nothing to dW_re, db_re or dz */
        float *dbre = g + m->re_b;
        for (int b = 0; b < B; b++)
            for (int64_t i = 1; i < Ta; i++)
                for (int64_t j = 0; j < H; j++) dbre[j] += dre[((int64_t)b * Ta + i) * H + j];
        layer_linear_backward(ws->pool, ws->G2, g + m->re_W, NULL, dre, za, m->w + m->re_W, H,
                              (int64_t)B * Ta, H, H);
    }
    /* decoder and projection-head gradients are final here (layout: they follow the
     * encoder; the encoder's backward below touches only in/, embed/ and enc/) */
    if (hook) hook(arg, m->re_W, m->n_train - m->re_W);
    float *dh0 = run_backward(m, &ws->ea, m->enc, ws, B, &d0, ws->G2);
    encoder_embed_backward(m, &ws->ea, ws, B, atlas, N, dh0);
    blas_team_end(nt);
}

void model_step(model *m, model_ws *ws, const model_batch *bt, const model_hp *hp,
                model_losses *out) {
    memset(m->g, 0, (size_t)m->n_params * sizeof(float));
    model_forward(m, ws, bt, hp, out);
    out->cl = model_contrastive_local(ws, m);
    out->total += hp->lambda_cl * out->cl;
    model_backward(m, ws);
}
