/* train.c: one fine-tuning (or prompt-tuning) fit (finetune.h, docs/adapt.md): the encoder, head and prompts reset
 * from a start model, epochs of one-atlas global batches of the training graphs split
 * over the ranks like pretraining (dist_slice, gradient all-reduce, AdamW with per-layer
 * learning-rate factors), the validation loss after every epoch, early stopping, and
 * the test graphs predicted once with the best epoch's weights.
 * Not the stage (stage.c: data, folds, cells) and not the report. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/dist.h"
#include "bgfm/finetune.h"
#include "bgfm/log.h"
#include "bgfm/rng.h"

/* layer of a tensor for the decay: 0 input layer and embeddings, l+1 block l, L+1 readout */
static int tensor_layer(const char *name, int L) {
    int l = 0;
    if (!strncmp(name, "enc/", 4) && sscanf(name + 4, "%d", &l) == 1) return l + 1;
    if (!strncmp(name, "readout/", 8)) return L + 1;
    return 0;
}

int64_t ft_scales(const model *m, int64_t n_enc, const ft_opts *o, int64_t head_n, float *scale) {
    int L = m->cfg.L;
    int64_t n = head_n;
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->t[i];
        if (t->off >= n_enc) continue;
        int64_t len = t->rows * (t->cols ? t->cols : 1);
        int layer = tensor_layer(t->name, L);
        double s = pow(o->llrd, (double)(L + 1 - layer));
        if (o->train == FT_TRAIN_HEAD) s = 0;
        if (o->train == FT_TRAIN_LAST && layer <= L - o->last_blocks) s = 0;
        for (int64_t j = 0; j < len; j++) scale[t->off + j] = (float)s;
        if (s > 0) n += len;
    }
    return n;
}

void ft_trainer_free(ft_trainer *t) {
    model_free(&t->m);
    head_free(&t->h);
    model_ws_free(&t->ws);
    free(t->scale);
    free(t->mom);
    free(t->var);
    free(t->decay);
    free(t->best_w);
    free(t->best_h);
    free(t->fc);
    free(t->rw);
    free(t->adj);
    free(t->gbuf);
    free(t->lst);
    free(t->ord);
    free(t->cls);
    free(t->y);
    free(t->pred);
    free(t->pw);
    free(t->pg);
    free(t->pm);
    free(t->pv);
    free(t->pbest);
    free(t->seen);
    free(t->theta);
    model_prompt_free(&t->pr);
    memset(t, 0, sizeof *t);
}

static int prompt_init(ft_trainer *t, bgfm_err *e);

int ft_trainer_init(ft_trainer *t, bgfm_ctx *ctx, const ft_opts *o, graphs_store *gs,
                    const probe_data *d, const int *amap, const model *arch, int K) {
    bgfm_err *e = &ctx->err;
    memset(t, 0, sizeof *t);
    t->ctx = ctx, t->o = o, t->gs = gs, t->d = d, t->amap = amap;
    int rc = model_init(&t->m, &arch->cfg, e);
    if (rc) return rc;
    t->n_enc = model_grad_tail(&t->m);
    t->Bl = (int)((o->batch_size + ctx->size - 1) / ctx->size);
    rc = head_init(&t->h, o->regress ? HEAD_REGRESS : HEAD_CLASSIFY, K, model_embed_dim(&t->m),
                   t->Bl, e);
    if (rc) return rc;
    int64_t Nb = 0, k = t->m.cfg.k ? t->m.cfg.k : 1, nl = d->nl ? d->nl : 1;
    for (int a = 0; a < t->m.cfg.n_atlases; a++)
        if (t->m.cfg.atlas_nodes[a] > Nb) Nb = t->m.cfg.atlas_nodes[a];
    size_t ne = (size_t)t->n_enc;
    t->scale = bgfm_malloc(e, ne * sizeof(float), "fine-tuning");
    t->mom = bgfm_calloc(e, (size_t)t->m.n_params, sizeof(float), "fine-tuning");
    t->var = bgfm_calloc(e, (size_t)t->m.n_params, sizeof(float), "fine-tuning");
    t->decay = bgfm_calloc(e, ne, 1, "fine-tuning");
    t->best_w = bgfm_malloc(e, ne * sizeof(float), "fine-tuning");
    t->best_h = bgfm_malloc(e, (size_t)t->h.n * sizeof(float), "fine-tuning");
    t->fc = bgfm_malloc(e, (size_t)(t->Bl * Nb * Nb) * sizeof(float), "fine-tuning batch");
    t->adj = bgfm_malloc(e, (size_t)(t->Bl * Nb * Nb), "fine-tuning batch");
    t->rw = bgfm_malloc(e, (size_t)(t->Bl * Nb * k) * sizeof(float), "fine-tuning batch");
    t->gbuf = bgfm_malloc(e, (size_t)nl * sizeof(int64_t), "fine-tuning");
    t->lst = bgfm_malloc(e, (size_t)nl * sizeof(int64_t), "fine-tuning");
    t->ord = bgfm_malloc(e, (size_t)(2 * nl + 2) * sizeof(int64_t), "fine-tuning");
    t->cls = bgfm_malloc(e, (size_t)t->Bl * sizeof(int), "fine-tuning");
    t->y = bgfm_malloc(e, (size_t)t->Bl * sizeof(float), "fine-tuning");
    t->pred = bgfm_malloc(e, (size_t)nl * (size_t)t->h.K * sizeof(double), "fine-tuning");
    t->seen = bgfm_calloc(e, 2 * (size_t)(d->ns + 1), 1, "fine-tuning");
    if (!t->scale || !t->mom || !t->var || !t->decay || !t->best_w || !t->best_h || !t->fc ||
        !t->adj || !t->rw || !t->gbuf || !t->lst || !t->ord || !t->cls || !t->y || !t->pred ||
        !t->seen)
        return BGFM_ENOMEM;
    for (int i = 0; i < t->m.n_tensors; i++) {
        const model_tensor *mt = &t->m.t[i];
        if (mt->decay && mt->off < t->n_enc)
            memset(t->decay + mt->off, 1, (size_t)(mt->rows * (mt->cols ? mt->cols : 1)));
    }
    t->n_trainable = ft_scales(&t->m, t->n_enc, o, t->h.n, t->scale);
    rc = model_ws_init(&t->ws, &t->m, t->Bl, e);
    if (!rc && o->prompt) rc = prompt_init(t, e);
    return rc;
}

/* ---- graph prompts (the prompt stage) --------------------------------------------------- */
/* The prompts of the store's atlases (zero at the start of every fit: the feature prompt
 * adds nothing, the edge weights are sigmoid(+-margin)) and their optimiser state. */
static int prompt_init(ft_trainer *t, bgfm_err *e) {
    const ft_opts *o = t->o;
    int64_t H = t->m.cfg.H;
    for (int a = 0; a < MODEL_MAX_ATLASES; a++) t->pf[a] = t->pe[a] = -1;
    for (int a = 0; a < graphs_n_atlases(t->gs); a++) {
        int ma = t->amap[a];
        int64_t N = t->m.cfg.atlas_nodes[ma];
        if (t->pf[ma] >= 0 || t->pe[ma] >= 0) continue;
        if (o->pfeat) t->pf[ma] = t->pn, t->pn += N * H;
        if (o->pedge) t->pe[ma] = t->pn, t->pn += N * (N - 1) / 2;
    }
    size_t n = (size_t)(t->pn ? t->pn : 1);
    t->pw = bgfm_calloc(e, n, sizeof(float), "prompts");
    t->pg = bgfm_calloc(e, n, sizeof(float), "prompts");
    t->pm = bgfm_calloc(e, n, sizeof(float), "prompts");
    t->pv = bgfm_calloc(e, n, sizeof(float), "prompts");
    t->pbest = bgfm_calloc(e, n, sizeof(float), "prompts");
    if (!t->pw || !t->pg || !t->pm || !t->pv || !t->pbest) return BGFM_ENOMEM;
    if (o->meta && !(t->theta = bgfm_malloc(e, (size_t)(t->pn + t->h.n) * sizeof(float), "meta")))
        return BGFM_ENOMEM;
    t->n_trainable = t->h.n + t->pn; /* the encoder is frozen (train: head) */
    t->pr.margin = (float)o->margin;
    t->pr.frozen = 1;
    return model_prompt_alloc(&t->pr, &t->ws, &t->m, e);
}

/* The prompts of model atlas ma for model_encode_prompted, or NULL (finetune). */
static const model_prompt *prompt_of(ft_trainer *t, int ma) {
    if (!t->o->prompt) return NULL;
    model_prompt *p = &t->pr;
    p->feat = t->pf[ma] >= 0 ? t->pw + t->pf[ma] : NULL;
    p->gfeat = t->pf[ma] >= 0 ? t->pg + t->pf[ma] : NULL;
    p->edge = t->pe[ma] >= 0 ? t->pw + t->pe[ma] : NULL;
    p->gedge = t->pe[ma] >= 0 ? t->pg + t->pe[ma] : NULL;
    return p;
}

/* ---- one step ------------------------------------------------------------------------ */
typedef struct step_ctx {
    ft_trainer *t;
    const int *cls;    /* per subject */
    const double *ys;  /* per subject */
    int64_t step;
} step_ctx;

/* Graphs gi[0..n) (probed-graph indices, one store atlas), this rank's slice: read,
 * encode (dropout p), head loss (scale > 0: with gradients). Returns the local status. */
static int local_batch(ft_trainer *t, const int64_t *gi, int64_t n, const step_ctx *sc, float p,
                       double scale, double *loss, int64_t *lo_out, int64_t *cnt_out) {
    bgfm_ctx *ctx = t->ctx;
    const probe_data *d = t->d;
    int64_t lo = 0, cnt = 0;
    dist_slice(n, ctx->size, ctx->rank, &lo, &cnt);
    *lo_out = lo, *cnt_out = cnt, *loss = 0;
    if (cnt == 0) return 0;
    for (int64_t i = 0; i < cnt; i++) {
        int64_t q = gi[lo + i], s = d->subj[q];
        t->gbuf[i] = d->g[q];
        t->seen[s] = 1;
        if (sc->cls) t->cls[i] = sc->cls[s];
        if (sc->ys) t->y[i] = (float)sc->ys[s];
    }
    int sa = d->atl[gi[lo]];
    int N = graphs_atlas_nodes(t->gs, sa);
    int rc = graphs_read(t->gs, t->gbuf, (int)cnt, t->fc, t->adj, t->rw, &ctx->err);
    if (rc) return rc;
    model_batch bt = {t->amap[sa], (int)cnt, N, t->fc, t->adj, t->rw, t->gbuf, NULL, NULL, NULL};
    model_hp hp;
    memset(&hp, 0, sizeof hp);
    hp.seed = t->o->seed;
    hp.step = sc->step;
    hp.p_drop = p;
    model_encode_prompted(&t->m, &t->ws, &bt, &hp, prompt_of(t, bt.atlas));
    *loss = head_loss(&t->h, t->ws.E, (int)cnt, t->cls, t->y, scale, NULL);
    if (!isfinite(*loss))
        return bgfm_fail(&ctx->err, BGFM_ENUMERIC, "%s: loss is not finite at step %lld "
                         "(graphs of atlas %s); lower lr", t->o->kind, (long long)sc->step,
                         graphs_atlas_name(t->gs, sa));
    return 0;
}

/* One optimiser step on the global batch gi[0..n) (one store atlas). */
static int train_step(ft_trainer *t, const int64_t *gi, int64_t n, const step_ctx *sc, double lr,
                      double *loss_sum) {
    bgfm_ctx *ctx = t->ctx;
    bgfm_err *e = &ctx->err;
    const ft_opts *o = t->o;
    memset(t->m.g, 0, (size_t)t->n_enc * sizeof(float));
    memset(t->h.g, 0, (size_t)t->h.n * sizeof(float));
    if (o->prompt) memset(t->pg, 0, (size_t)t->pn * sizeof(float));
    double loc = 0;
    int64_t lo, cnt;
    int rc = local_batch(t, gi, n, sc, o->dropout, 1.0 / (double)n, &loc, &lo, &cnt);
    if (!rc && cnt > 0 && (o->prompt || o->train != FT_TRAIN_HEAD))
        model_encode_backward(&t->m, &t->ws, t->h.dE); /* prompt: frozen, prompts only */
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) return rc;
    if (o->prompt) rc = dist_allreduce_sum(ctx, t->pg, t->pn);
    else if (o->train != FT_TRAIN_HEAD) rc = dist_allreduce_sum(ctx, t->m.g, t->n_enc);
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc) rc = bgfm_ctx_agree(ctx, dist_allreduce_sum(ctx, t->h.g, t->h.n));
    double glob = loc;
    if (!rc && ctx->size > 1)
        rc = bgfm_ctx_agree(ctx, BGFM_MPI(e, MPI_Allreduce(&loc, &glob, 1, MPI_DOUBLE, MPI_SUM,
                                                           ctx->comm)));
    if (rc) return rc;
    *loss_sum += glob;
    /* the global norm of what is trained; frozen gradients are dropped */
    double ss = 0;
    for (int64_t i = 0; i < t->n_enc; i++) {
        if (t->scale[i] == 0.0f) t->m.g[i] = 0.0f;
        ss += (double)t->m.g[i] * (double)t->m.g[i];
    }
    for (int64_t i = 0; i < t->h.n; i++) ss += (double)t->h.g[i] * (double)t->h.g[i];
    for (int64_t i = 0; i < t->pn; i++) ss += (double)t->pg[i] * (double)t->pg[i];
    double nr = sqrt(ss);
    if (o->opt.clip > 0 && nr > o->opt.clip) {
        float f = (float)(o->opt.clip / (nr + 1e-6));
        for (int64_t i = 0; i < t->n_enc; i++) t->m.g[i] *= f;
        for (int64_t i = 0; i < t->h.n; i++) t->h.g[i] *= f;
        for (int64_t i = 0; i < t->pn; i++) t->pg[i] *= f;
    }
    if (o->train != FT_TRAIN_HEAD)
        optim_adamw_buf(t->m.w, t->m.g, t->mom, t->var, t->decay, t->scale, t->n_enc, t->h.t + 1,
                        lr, &o->opt);
    if (o->prompt) /* no weight decay on prompts (like embeddings: model.md section 5) */
        optim_adamw_buf(t->pw, t->pg, t->pm, t->pv, NULL, NULL, t->pn, t->h.t + 1, lr, &o->opt);
    head_adamw(&t->h, lr, &o->opt);
    return 0;
}

int ft_train_step(ft_trainer *t, const int64_t *gi, int64_t n, const int *cls, int64_t step,
                  double lr, double *loss_sum) {
    step_ctx sc = {t, cls, NULL, step};
    return train_step(t, gi, n, &sc, lr, loss_sum);
}

/* ---- evaluation ---------------------------------------------------------------------- */
/* Predictions (eval mode) of the probed graphs list[0..n) into t->pred rows list order,
 * identical on every rank: per store atlas the graphs are sliced over the ranks, each
 * rank predicts its own in chunks, and the rows (zero elsewhere) are summed. */
static int predict(ft_trainer *t, const int64_t *list, int64_t n) {
    bgfm_ctx *ctx = t->ctx;
    const probe_data *d = t->d;
    int64_t K = t->h.K;
    memset(t->pred, 0, (size_t)(n ? n : 1) * (size_t)K * sizeof(double));
    int rc = 0;
    for (int a = 0; a < d->A && !rc; a++) {
        int64_t m = 0;
        for (int64_t i = 0; i < n; i++)
            if (d->atl[list[i]] == a) t->ord[m++] = i;
        int64_t lo, cnt;
        dist_slice(m, ctx->size, ctx->rank, &lo, &cnt);
        for (int64_t c0 = 0; c0 < cnt && !rc; c0 += t->Bl) {
            int64_t c = cnt - c0 < t->Bl ? cnt - c0 : t->Bl;
            for (int64_t i = 0; i < c; i++) t->lst[i] = list[t->ord[lo + c0 + i]];
            for (int64_t i = 0; i < c; i++) t->gbuf[i] = d->g[t->lst[i]], t->seen[d->subj[t->lst[i]]] = 1;
            int sa = a, N = graphs_atlas_nodes(t->gs, sa);
            rc = graphs_read(t->gs, t->gbuf, (int)c, t->fc, t->adj, t->rw, &ctx->err);
            if (rc) break;
            model_batch bt = {t->amap[sa], (int)c, N, t->fc, t->adj, t->rw, t->gbuf, NULL, NULL, NULL};
            model_hp hp;
            memset(&hp, 0, sizeof hp);
            hp.seed = t->o->seed;
            model_encode_prompted(&t->m, &t->ws, &bt, &hp, prompt_of(t, bt.atlas));
            double out[256 * 8];
            for (int64_t i = 0; i < c; i++) {
                head_predict(&t->h, t->ws.E + i * t->h.H, 1, out);
                memcpy(t->pred + t->ord[lo + c0 + i] * K, out, (size_t)K * sizeof(double));
            }
        }
    }
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc && ctx->size > 1)
        rc = bgfm_ctx_agree(ctx, BGFM_MPI(&ctx->err, MPI_Allreduce(MPI_IN_PLACE, t->pred,
                                                                   (int)(n * K), MPI_DOUBLE,
                                                                   MPI_SUM, ctx->comm)));
    return rc;
}

/* mean loss of the predicted graphs list[0..n) (after predict) */
static double eval_loss(const ft_trainer *t, const int64_t *list, int64_t n, const int *cls,
                        const double *ys) {
    double s = 0;
    int64_t K = t->h.K;
    for (int64_t i = 0; i < n; i++) {
        int64_t subj = t->d->subj[list[i]];
        const double *p = t->pred + i * K;
        if (cls) {
            double q = p[cls[subj]];
            s += -log(q > 1e-300 ? q : 1e-300);
        } else {
            double r = p[0] - ys[subj];
            s += r * r;
        }
    }
    return n ? s / (double)n : (double)NAN;
}

/* probed graphs of subjects with role `want`, in probed (store) order */
static int64_t role_graphs(const probe_data *d, const uint8_t *role, int want, int64_t *out) {
    int64_t n = 0;
    for (int64_t q = 0; q < d->nl; q++)
        if (role[d->subj[q]] == want) out[n++] = q;
    return n;
}

/* This epoch's batches: per store atlas the training graphs shuffled with rng(seed,
 * RNG_ADAPT, epoch, key, atlas + 1) and cut into batches of batch_size (the last one
 * smaller), then the batch order shuffled (i2 = 0). ord: (start, atlas) pairs. */
static int64_t epoch_plan(ft_trainer *t, int64_t *tr, int64_t ntr, uint64_t key, int64_t ep,
                          int64_t *perm) {
    const probe_data *d = t->d;
    int64_t B = t->o->batch_size, nb = 0, m = 0;
    for (int a = 0; a < d->A; a++) {
        int64_t s0 = m;
        for (int64_t i = 0; i < ntr; i++)
            if (d->atl[tr[i]] == a) perm[m++] = tr[i];
        rng_stream r;
        rng_init(&r, t->o->seed, RNG_ADAPT, (uint64_t)ep, key, (uint64_t)a + 1);
        rng_shuffle_i64(&r, perm + s0, m - s0);
        for (int64_t j = s0; j < m; j += B) {
            t->ord[2 * nb] = j;
            t->ord[2 * nb + 1] = (m - j < B ? m - j : B);
            nb++;
        }
    }
    rng_stream r;
    rng_init(&r, t->o->seed, RNG_ADAPT, (uint64_t)ep, key, 0);
    for (int64_t i = nb - 1; i > 0; i--) {
        int64_t j = (int64_t)rng_below(&r, (uint64_t)i + 1);
        int64_t a0 = t->ord[2 * i], a1 = t->ord[2 * i + 1];
        t->ord[2 * i] = t->ord[2 * j], t->ord[2 * i + 1] = t->ord[2 * j + 1];
        t->ord[2 * j] = a0, t->ord[2 * j + 1] = a1;
    }
    return nb;
}

int ft_mark_read(ft_trainer *t, double *read, int bit) {
    bgfm_ctx *ctx = t->ctx;
    int rc = 0;
    if (ctx->size > 1)
        rc = bgfm_ctx_agree(ctx, BGFM_MPI(&ctx->err, MPI_Allreduce(MPI_IN_PLACE, t->seen,
                                                                   (int)t->d->ns, MPI_UINT8_T,
                                                                   MPI_MAX, ctx->comm)));
    for (int64_t s = 0; !rc && s < t->d->ns; s++)
        if (t->seen[s]) read[s] = (double)((int)read[s] | bit);
    return rc;
}

/* reset the model to `start`, the head and every moment */
static void fit_reset(ft_trainer *t, const model *start) {
    BGFM_ASSERT(start->n_params == t->m.n_params);
    memcpy(t->m.w, start->w, (size_t)t->m.n_params * sizeof(float));
    memset(t->mom, 0, (size_t)t->n_enc * sizeof(float));
    memset(t->var, 0, (size_t)t->n_enc * sizeof(float));
    head_reset(&t->h);
    for (int64_t i = 0; i < t->pn; i++) t->pw[i] = t->pm[i] = t->pv[i] = 0.0f;
}

static void keep_best(ft_trainer *t, int restore) {
    size_t nw = (size_t)t->n_enc * sizeof(float), nh = (size_t)t->h.n * sizeof(float);
    if (restore) {
        memcpy(t->m.w, t->best_w, nw);
        memcpy(t->h.w, t->best_h, nh);
        if (t->pn) memcpy(t->pw, t->pbest, (size_t)t->pn * sizeof(float));
    } else {
        memcpy(t->best_w, t->m.w, nw);
        memcpy(t->best_h, t->h.w, nh);
        if (t->pn) memcpy(t->pbest, t->pw, (size_t)t->pn * sizeof(float));
    }
}

int ft_fit(ft_trainer *t, const model *start, const uint8_t *role, const int *cls,
           const double *ys, uint64_t key, const ft_resume *rs, ft_epoch_hook hook, void *arg,
           double *oof, ft_fit_out *out) {
    bgfm_ctx *ctx = t->ctx;
    bgfm_err *e = &ctx->err;
    const ft_opts *o = t->o;
    const probe_data *d = t->d;
    double t0 = MPI_Wtime();
    int64_t nl = d->nl ? d->nl : 1;
    int64_t *tr = bgfm_malloc(e, (size_t)nl * sizeof *tr, "fine-tuning");
    int64_t *va = bgfm_malloc(e, (size_t)nl * sizeof *va, "fine-tuning");
    int64_t *te = bgfm_malloc(e, (size_t)nl * sizeof *te, "fine-tuning");
    int64_t *perm = bgfm_malloc(e, (size_t)nl * sizeof *perm, "fine-tuning");
    int rc = tr && va && te && perm ? 0 : BGFM_ENOMEM;
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) goto done;
    int64_t ntr = role_graphs(d, role, FT_TRAIN, tr), nva = role_graphs(d, role, FT_VAL, va);
    int64_t nte = role_graphs(d, role, FT_TEST, te);
    out->n_train = out->n_val = out->n_test = 0;
    for (int64_t s = 0; s < d->ns; s++) {
        out->n_train += role[s] == FT_TRAIN;
        out->n_val += role[s] == FT_VAL;
        out->n_test += role[s] == FT_TEST;
    }
    if (ntr == 0 || nte == 0) {
        rc = bgfm_ctx_agree(ctx, bgfm_fail(e, BGFM_EDATA, "%s: a cell has %lld training "
                                           "and %lld test graphs; every fold needs both",
                                           o->kind, (long long)ntr, (long long)nte));
        goto done;
    }
    if (!rs) {
        fit_reset(t, start);
        if (t->meta && out->read) { /* the meta-learned start, from the pool only */
            memset(t->seen, 0, (size_t)d->ns);
            rc = t->meta_init(t, role, key, out->read);
            if (!rc) rc = ft_mark_read(t, out->read, 1);
            memset(t->seen, 0, (size_t)d->ns);
            if (rc) goto done;
        }
        keep_best(t, 0);
        out->best_epoch = 0, out->best_val = (double)INFINITY, out->steps = 0, out->epochs_run = 0;
    }
    optim_cfg oc = o->opt;
    step_ctx sc = {t, cls, ys, rs ? rs->step : 0};
    int64_t spe = 0;
    for (int a = 0; a < d->A; a++) { /* steps per epoch, for the schedule */
        int64_t m = 0;
        for (int64_t i = 0; i < ntr; i++) m += d->atl[tr[i]] == a;
        spe += (m + o->batch_size - 1) / o->batch_size;
    }
    oc.total_steps = spe * o->epochs;
    for (int64_t ep = rs ? rs->epoch : 0; ep < o->epochs && !rc && !(rs && rs->stopped); ep++) {
        int64_t nb = epoch_plan(t, tr, ntr, key, ep, perm);
        double lsum = 0;
        for (int64_t b = 0; b < nb && !rc; b++) {
            rc = train_step(t, perm + t->ord[2 * b], t->ord[2 * b + 1], &sc,
                            optim_lr(&oc, sc.step), &lsum);
            sc.step++;
        }
        if (rc) break;
        out->epochs_run = ep + 1;
        int stop = 0;
        if (nva == 0) { /* no validation subjects: the last epoch is kept */
            out->best_epoch = ep + 1;
        } else {
            rc = predict(t, va, nva);
            if (rc) break;
            double vl = eval_loss(t, va, nva, cls, ys);
            if (out->val_curve) out->val_curve[ep] = vl;
            if (vl < out->best_val) {
                out->best_val = vl;
                out->best_epoch = ep + 1;
                keep_best(t, 0);
            } else if (ep + 1 - out->best_epoch >= o->patience) {
                stop = 1;
            }
        }
        if (hook && (rc = hook(arg, t, out, sc.step, stop))) break;
        if (stop) break;
    }
    if (rc) goto done;
    out->steps = sc.step;
    if (nva > 0) keep_best(t, 1);
    else out->best_val = (double)NAN;
    /* the test fold, once */
    rc = predict(t, te, nte);
    if (rc) goto done;
    int64_t K = t->h.K;
    double *cnt = bgfm_calloc(e, (size_t)(d->ns ? d->ns : 1), sizeof *cnt, "fine-tuning");
    rc = bgfm_ctx_agree(ctx, cnt ? 0 : BGFM_ENOMEM);
    if (rc) {
        free(cnt);
        goto done;
    }
    for (int64_t i = 0; i < nte; i++) {
        int64_t s = d->subj[te[i]];
        if (cnt[s] == 0) memset(oof + s * K, 0, (size_t)K * sizeof(double));
        cnt[s] += 1;
        for (int64_t k = 0; k < K; k++) oof[s * K + k] += t->pred[i * K + k];
    }
    for (int64_t s = 0; s < d->ns; s++)
        for (int64_t k = 0; cnt[s] > 0 && k < K; k++) oof[s * K + k] /= cnt[s];
    free(cnt);
    if (t->meta && out->read && (rc = ft_mark_read(t, out->read, 2))) goto done;
    /* the slowest rank's time: the same number on every rank (it is checkpointed) */
    double sec = MPI_Wtime() - t0;
    rc = bgfm_ctx_agree(ctx, BGFM_MPI(e, MPI_Allreduce(&sec, &out->seconds, 1, MPI_DOUBLE, MPI_MAX,
                                                       ctx->comm)));
done:
    free(tr);
    free(va);
    free(te);
    free(perm);
    return rc;
}
