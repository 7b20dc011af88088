/* resume.c: the finetune stage's checkpoints (finetune.h, docs/adapt.md "Checkpoints and
 * resume"): after an epoch, checkpoints/ckpt-<n>.h5 through pretraining's writer
 * (ckpt_save_par: the model, its AdamW moments, the state record, checksums, completion
 * mark, atomic rename) with the rest of the run as extra arrays: the head and its
 * moments, the best epoch's copies, the current fit's counters and every finished cell's
 * results. Loading takes the newest valid one, falling back past damaged ones.
 * Not the fit (train.c) and not the stage's loop (stage.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/ckpt.h"
#include "bgfm/ckpt_dir.h"
#include "bgfm/finetune.h"
#include "bgfm/log.h"

/* X_PROMPT (the prompt stage only): the prompts, both moments and the best copy;
 * X_META (with meta): every cell's read record, then its pool size */
enum { X_FIT, X_HEAD, X_BEST, X_CELL, X_INFO, X_CURVE, X_OOF, X_PROMPT, X_META, X_N };
static const char *const x_name[X_N] = {"fit", "head", "best_w", "cell", "info", "curve", "oof",
                                        "prompt", "meta"};
#define FIT_N 8 /* cell, epochs run, step, best epoch, best loss, head steps, stopped, seq */

typedef struct xbufs {
    double *a[X_N];
    int64_t n[X_N];
    int count; /* X_N with meta, X_META with prompts, else X_PROMPT */
} xbufs;

static void xbufs_free(xbufs *x) {
    for (int i = 0; i < X_N; i++) free(x->a[i]);
}

static int xbufs_make(xbufs *x, const ft_trainer *t, const ft_results *p, bgfm_err *e) {
    int64_t cells = (int64_t)FT_NENC * p->nk * p->R * p->F;
    int64_t n[X_N] = {FIT_N, 4 * t->h.n, t->n_enc, cells * FT_NMET, cells * FT_NINFO,
                      cells * p->epochs, (int64_t)FT_NENC * p->R * p->ns * p->K, 4 * t->pn,
                      cells * (p->mw + 1)};
    int rc = 0;
    x->count = t->o->meta ? X_N : t->o->prompt ? X_META : X_PROMPT;
    for (int i = 0; i < x->count; i++) {
        x->n[i] = n[i];
        x->a[i] = bgfm_calloc(e, (size_t)(n[i] ? n[i] : 1), sizeof(double), "checkpoint state");
        if (!x->a[i]) rc = BGFM_ENOMEM;
    }
    return rc;
}

static ckpt_state xstate(const xbufs *x) {
    ckpt_state st;
    memset(&st, 0, sizeof st);
    st.n_extra = x->count;
    st.extra_name = x_name;
    st.extra = x->a;
    st.extra_n = x->n;
    return st;
}

static void to_d(double *d, const float *f, int64_t n) {
    for (int64_t i = 0; i < n; i++) d[i] = (double)f[i];
}
static void to_f(float *f, const double *d, int64_t n) {
    for (int64_t i = 0; i < n; i++) f[i] = (float)d[i];
}

int ft_ckpt_save(ft_ckpt *c, ft_trainer *t, const ft_fit_out *out, int64_t step, int stopped) {
    bgfm_ctx *ctx = c->ctx;
    bgfm_err *e = &ctx->err;
    ft_results *p = c->p;
    xbufs x;
    memset(&x, 0, sizeof x);
    int rc = bgfm_ctx_agree(ctx, xbufs_make(&x, t, p, e));
    if (rc) {
        xbufs_free(&x);
        return rc;
    }
    double fit[FIT_N] = {(double)c->cell, (double)out->epochs_run, (double)step,
                         (double)out->best_epoch, out->best_val, (double)t->h.t, stopped,
                         (double)c->seq};
    memcpy(x.a[X_FIT], fit, sizeof fit);
    int64_t hn = t->h.n;
    to_d(x.a[X_HEAD], t->h.w, hn);
    to_d(x.a[X_HEAD] + hn, t->h.m, hn);
    to_d(x.a[X_HEAD] + 2 * hn, t->h.v, hn);
    to_d(x.a[X_HEAD] + 3 * hn, t->best_h, hn);
    to_d(x.a[X_BEST], t->best_w, t->n_enc);
    float *const pq[4] = {t->pw, t->pm, t->pv, t->pbest};
    for (int i = 0; t->o->prompt && i < 4; i++) to_d(x.a[X_PROMPT] + i * t->pn, pq[i], t->pn);
    if (t->o->meta) {
        int64_t nr = x.n[X_META] - x.n[X_META] / (p->mw + 1);
        memcpy(x.a[X_META], p->mread, (size_t)nr * sizeof(double));
        memcpy(x.a[X_META] + nr, p->msubj, (size_t)(x.n[X_META] - nr) * sizeof(double));
    }
    const double *src[4] = {p->cell, p->info, p->curve, p->oof};
    for (int i = 0; i < 4; i++) memcpy(x.a[X_CELL + i], src[i], (size_t)x.n[X_CELL + i] * sizeof(double));
    ckpt_state st = xstate(&x);
    st.step = step, st.epoch = out->epochs_run, st.pos = c->cell, st.seed = t->o->seed;
    st.config = (char *)(uintptr_t)t->o->kind;
    st.pause_ms = t->o->ckpt_pause_ms;
    optim ov = {t->m.n_params, t->mom, t->var, NULL, t->h.t};
    char path[4200];
    snprintf(path, sizeof path, "%.4000s/ckpt-%lld.h5", c->dir, (long long)c->seq);
    rc = ckpt_save_par(ctx->comm, path, &t->m, &ov, &st, e);
    if (!rc && ctx->rank == 0 && c->seq > 2) { /* keep the two newest */
        snprintf(path, sizeof path, "%.4000s/ckpt-%lld.h5", c->dir, (long long)(c->seq - 2));
        remove(path);
    }
    xbufs_free(&x);
    return bgfm_ctx_agree(ctx, rc);
}

/* Load checkpoint number s into the trainer and the results (every rank reads it). */
static int load_one(ft_ckpt *c, ft_trainer *t, int64_t s, ft_resume *rs, ft_fit_out *out) {
    bgfm_err *e = &c->ctx->err;
    ft_results *p = c->p;
    char path[4200];
    snprintf(path, sizeof path, "%.4000s/ckpt-%lld.h5", c->dir, (long long)s);
    xbufs x;
    memset(&x, 0, sizeof x);
    model m2;
    optim o2;
    memset(&m2, 0, sizeof m2);
    memset(&o2, 0, sizeof o2);
    int rc = xbufs_make(&x, t, p, e);
    ckpt_state st = xstate(&x);
    if (!rc) rc = ckpt_load(path, &m2, &o2, &st, e);
    free(st.config);
    if (!rc && m2.n_params != t->m.n_params)
        rc = bgfm_fail(e, BGFM_EDATA, "%s: the model has %lld parameters, this stage's %lld; the "
                       "checkpoint belongs to another run", path, (long long)m2.n_params,
                       (long long)t->m.n_params);
    if (!rc) {
        const double *fit = x.a[X_FIT];
        memcpy(t->m.w, m2.w, (size_t)m2.n_params * sizeof(float));
        memcpy(t->mom, o2.m, (size_t)m2.n_params * sizeof(float));
        memcpy(t->var, o2.v, (size_t)m2.n_params * sizeof(float));
        int64_t hn = t->h.n;
        to_f(t->h.w, x.a[X_HEAD], hn);
        to_f(t->h.m, x.a[X_HEAD] + hn, hn);
        to_f(t->h.v, x.a[X_HEAD] + 2 * hn, hn);
        to_f(t->best_h, x.a[X_HEAD] + 3 * hn, hn);
        to_f(t->best_w, x.a[X_BEST], t->n_enc);
        float *const pq[4] = {t->pw, t->pm, t->pv, t->pbest};
        for (int i = 0; t->o->prompt && i < 4; i++) to_f(pq[i], x.a[X_PROMPT] + i * t->pn, t->pn);
        if (t->o->meta) {
            int64_t nr = x.n[X_META] - x.n[X_META] / (p->mw + 1);
            memcpy(p->mread, x.a[X_META], (size_t)nr * sizeof(double));
            memcpy(p->msubj, x.a[X_META] + nr, (size_t)(x.n[X_META] - nr) * sizeof(double));
        }
        double *dst[4] = {p->cell, p->info, p->curve, p->oof};
        for (int i = 0; i < 4; i++) memcpy(dst[i], x.a[X_CELL + i], (size_t)x.n[X_CELL + i] * sizeof(double));
        c->cell = (int64_t)fit[0];
        out->epochs_run = (int64_t)fit[1];
        rs->epoch = (int64_t)fit[1];
        rs->step = (int64_t)fit[2];
        out->best_epoch = (int64_t)fit[3];
        out->best_val = fit[4];
        t->h.t = (int64_t)fit[5];
        rs->stopped = fit[6] != 0;
        c->seq = (int64_t)fit[7];
    }
    optim_free(&o2);
    model_free(&m2);
    xbufs_free(&x);
    return rc;
}

int ft_ckpt_load(ft_ckpt *c, ft_trainer *t, ft_resume *rs, ft_fit_out *out) {
    bgfm_ctx *ctx = c->ctx;
    bgfm_err *e = &ctx->err;
    int64_t seq[64], *all = NULL; /* the newest 64 */
    int n = 0, rc = ctx->rank == 0 ? ckpt_dir_list(c->dir, &all, &n, 1, e) : 0;
    n = n < 64 ? n : 64;
    if (n) memcpy(seq, all, (size_t)n * sizeof *seq);
    free(all);
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc) rc = bgfm_ctx_agree(ctx, BGFM_MPI(e, MPI_Bcast(&n, 1, MPI_INT, 0, ctx->comm)));
    if (!rc && n > 0) rc = bgfm_ctx_agree(ctx, BGFM_MPI(e, MPI_Bcast(seq, n, MPI_INT64_T, 0, ctx->comm)));
    if (rc) return -rc;
    for (int i = 0; i < n; i++) {
        log_info(ctx, "%s: resuming from %s/ckpt-%lld.h5", t->o->kind, c->dir, (long long)seq[i]);
        rc = bgfm_ctx_agree(ctx, load_one(c, t, seq[i], rs, out));
        if (!rc) return 1;
        if ((rc != BGFM_EDATA && rc != BGFM_EIO) || i + 1 == n) return -rc;
        log_warn(ctx, "%s: cannot use ckpt-%lld.h5 (%s); falling back to the previous "
                 "checkpoint ckpt-%lld.h5", t->o->kind, (long long)seq[i], e->msg,
                 (long long)seq[i + 1]);
        bgfm_err_clear(e);
    }
    return 0;
}
