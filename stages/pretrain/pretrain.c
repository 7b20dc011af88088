/* pretrain.c: the `pretrain` stage kind and its data-parallel training loop
 * (pretrain.h): epochs of one-atlas global batches split over the ranks, AdamW,
 * metrics, parallel checkpoints, exact resume and stop on signals.
 * Not the model math (model.c, layers.c) and not the checkpoint format (ckpt.c). */
#include "bgfm/pretrain.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/batches.h"
#include "bgfm/ckpt.h"
#include "bgfm/ckpt_dir.h"
#include "bgfm/dist.h"
#include "bgfm/export.h"
#include "bgfm/fsutil.h"
#include "bgfm/graphs.h"
#include "bgfm/json.h"
#include "bgfm/log.h"
#include "bgfm/mline.h"
#include "bgfm/norm.h"
#include "bgfm/pca.h"
#include "bgfm/pop.h"
#include "bgfm/pop_log.h"
#include "bgfm/rng.h"
#include "bgfm/stage.h"
#include "bgfm/yamlout.h"

/* Whether a step reads each graph's partner: GCL's view b, or the reconstruction target. */
static int uses_pairs(const pretrain_opts *o) {
    int m = o->hp.mode;
    return o->scan_pairs && ((m & MODEL_GCL) || ((m & MODEL_GMAE) && o->hp.rec_partner));
}

/* ---- training ------------------------------------------------------------------------ */
typedef struct step_times {
    double compute, comm, io; /* seconds of this step (max over ranks in the metrics) */
} step_times;

static void metrics_line(bgfm_ctx *ctx, FILE *f, const char *stage, int64_t step, int64_t epoch,
                         const model_losses *l, double gn, double lr, double gps, const char *atlas,
                         double mr, const step_times *t, int ranks) {
    mline ml; /* {"event": "train_step", "stage", "kind": "pretrain", ...} */
    mline_begin(&ml, "train_step", stage ? stage : "pretrain", "pretrain");
    mline_int(&ml, "step", step);
    mline_int(&ml, "epoch", epoch);
    mline_str(&ml, "atlas", atlas);
    const char *k[] = {"loss", "loss_rec", "loss_adj", "loss_cl", "grad_norm", "lr",
                       "graphs_per_s", "mask_ratio", "compute_s", "comm_s", "io_s"};
    double v[] = {l->total, l->rec, l->adj, l->cl, gn, lr, gps, mr, t->compute, t->comm, t->io};
    for (int i = 0; i < 11; i++) mline_num(&ml, k[i], v[i]);
    mline_int(&ml, "ranks", ranks);
    mline_write(&ml, ctx, f);
}

/* Everything one training run holds; freed by train_free. */
typedef struct trainer {
    graphs_store *gs;
    model m;
    optim op;
    model_ws ws;
    dist_ntx ntx;
    batch_plan pl;
    float *fc, *rw, *fcb, *rwb; /* the batch slice, and its GCL partners (gcl_pairs: scan) */
    uint8_t *adj, *adjb;
    int64_t *gidx, *pidx;
    int *amap;
    char **cands;
    int ncand;
    FILE *mf;
} trainer;

static void train_free(trainer *t) {
    if (t->mf) fclose(t->mf);
    for (int i = 0; i < t->ncand; i++) free(t->cands[i]);
    free(t->cands);
    free(t->amap);
    free(t->fc);
    free(t->adj);
    free(t->rw);
    free(t->gidx);
    free(t->fcb);
    free(t->adjb);
    free(t->rwb);
    free(t->pidx);
    batch_plan_free(&t->pl);
    dist_ntx_free(&t->ntx);
    model_ws_free(&t->ws);
    optim_free(&t->op);
    model_free(&t->m);
    graphs_close(&t->gs);
}

/* The stored configuration without its resume_from line: a checkpoint named by
 * resume_from must come from the same configuration. */
static int same_config(const char *a, const char *b) {
    for (;;) {
        while (*a && !strncmp(a + strspn(a, " "), "resume_from:", 12)) a += strcspn(a, "\n") + (a[strcspn(a, "\n")] != 0);
        while (*b && !strncmp(b + strspn(b, " "), "resume_from:", 12)) b += strcspn(b, "\n") + (b[strcspn(b, "\n")] != 0);
        if (!*a || !*b) return !*a && !*b;
        size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
        if (la != lb || strncmp(a, b, la)) return 0;
        a += la + (a[la] != 0);
        b += lb + (b[lb] != 0);
    }
}

/* Collective: the model and optimiser state to start from: the newest valid checkpoint
 * (falling back past corrupted ones with a warning), else init_path, else random. */
static int train_start(bgfm_ctx *ctx, const pretrain_opts *o, trainer *t, const char *dir,
                       ckpt_state *st, int *fresh) {
    *fresh = 0;
    bgfm_err *e = &ctx->err;
    int rc = ckpt_dir_resume_candidates(ctx, dir, o->resume_from, &t->cands, &t->ncand);
    if (rc) return rc;
    for (int i = 0; i < t->ncand; i++) {
        const char *path = t->cands[i];
        log_info(ctx, "pretrain: resuming from %s", path);
        rc = ckpt_load(path, &t->m, &t->op, st, e);
        if (!rc && strncmp(path, dir, strlen(dir)) && !same_config(st->config, o->config_text))
            rc = bgfm_fail(e, BGFM_EUSAGE, "resume_from: %s was written by another configuration "
                           "(stage options, seed or name differ); resume with the same options",
                           path);
        free(st->config);
        st->config = NULL;
        rc = bgfm_ctx_agree(ctx, rc);
        if (!rc && st->blas[0] && strcmp(st->blas, openblas_get_config()) && ctx->rank == 0)
            log_warn(ctx, "pretrain: %s was written with %s, this run's rank 0 runs %s: training "
                     "continues correctly, but not bit for bit as it would have on the kernel "
                     "that wrote it; set OPENBLAS_CORETYPE to keep one kernel (docs/pretrain.md, "
                     "\"Another machine\")", path, st->blas, openblas_get_config());
        if (!rc) return 0;
        optim_free(&t->op);
        model_free(&t->m);
        if ((rc != BGFM_EDATA && rc != BGFM_EIO) || i + 1 == t->ncand) return rc;
        log_warn(ctx, "pretrain: cannot use %s (%s); falling back to the previous checkpoint %s",
                 path, e->msg, t->cands[i + 1]);
        bgfm_err_clear(e);
    }
    if (o->init_path) {
        log_info(ctx, "pretrain: initialising from %s", o->init_path);
        if (export_is_safetensors(o->init_path)) { /* weights from PyTorch (export.h) */
            rc = export_load(o->init_path, o->seed, &t->m, NULL, e);
            if (!rc) rc = export_check_graphs(o->init_path, &t->m, t->gs, e);
        } else {
            rc = ckpt_load(o->init_path, &t->m, NULL, NULL, e);
        }
        if (!rc) rc = optim_init(&t->op, &t->m, e);
        return bgfm_ctx_agree(ctx, rc);
    }
    model_cfg c = o->arch;
    c.k = graphs_rwse_steps(t->gs);
    c.n_atlases = graphs_n_atlases(t->gs);
    int nb = 0;
    for (int a = 0; a < c.n_atlases && a < MODEL_MAX_ATLASES; a++) {
        snprintf(c.atlas[a], sizeof c.atlas[a], "%s", graphs_atlas_name(t->gs, a));
        c.atlas_nodes[a] = graphs_atlas_nodes(t->gs, a);
        if (c.atlas_nodes[a] > nb) nb = c.atlas_nodes[a];
    }
    if (c.N_max == 0) c.N_max = nb;
    *fresh = 1;
    rc = model_init(&t->m, &c, e);
    if (!rc) model_init_params(&t->m, o->seed);
    if (!rc) rc = optim_init(&t->op, &t->m, e);
    return bgfm_ctx_agree(ctx, rc);
}

/* This rank's memory estimate against max_memory_per_rank (docs/reliability.md,
 * "Resource limits"): parameters, gradients and both AdamW moments (4 x 4 bytes per
 * parameter), the model workspace for Bl graphs (measured by laying it out for 1, 2
 * and 3 graphs, which fixes its quadratic in B exactly: nothing is touched), the batch
 * buffers and the global NT-Xent buffers. Before the big allocations. */
static int memory_check(const pretrain_opts *o, const model *m, int64_t Bl, int64_t Nb,
                        bgfm_err *e) {
    double f[3];
    for (int b = 1; b <= 3; b++) {
        model_ws probe;
        if (model_ws_init(&probe, m, b, e)) return BGFM_ENOMEM;
        f[b - 1] = (double)probe.bytes;
        model_ws_free(&probe);
    }
    double B = (double)Bl, G = (double)o->batch_size;
    double ws = f[0] * (B - 2) * (B - 3) / 2 - f[1] * (B - 1) * (B - 3) + f[2] * (B - 1) * (B - 2) / 2;
    double params = 16.0 * (double)m->n_params;
    double batch = (B * Nb * Nb * 5.0 + B * Nb * (m->cfg.k ? m->cfg.k : 1) * 4.0) *
                   (uses_pairs(o) ? 2.0 : 1.0); /* + partners */
    /* row-sharded NT-Xent (dist_ntx_init): 2GP + 4 Bl G floats, 4G doubles + 4G floats */
    double ntx = 8.0 * G * m->cfg.P + 16.0 * B * G + 48.0 * G;
    double est = params + ws + batch + ntx;
    char what[240];
    snprintf(what, sizeof what, "%lld parameters x 16 B = %.1f MiB, workspace for %lld graphs "
             "of %lld nodes = %.1f MiB", (long long)m->n_params, params / 1048576.0,
             (long long)Bl, (long long)Nb, ws / 1048576.0);
    return config_mem_check(o->max_memory, o->pipeline_file, o->stage_name, est, what,
                            "use more ranks or a smaller batch_size (the batch is split across "
                            "ranks) or a smaller model", e);
}

/* This rank's slice buffers (ceil(B / R) graphs of the largest atlas, and partners), the
 * workspace and NT-Xent buffers, after the memory check. Local; the caller agrees. */
static int train_buffers(bgfm_ctx *ctx, const pretrain_opts *o, trainer *t, int pairs) {
    bgfm_err *e = &ctx->err;
    const int R = ctx->size;
    const model *m = &t->m;
    int rc = 0;
    const int64_t B = o->batch_size, Bl = (B + R - 1) / R;
    int64_t Nb = 0;
    for (int a = 0; a < m->cfg.n_atlases; a++)
        if (m->cfg.atlas_nodes[a] > Nb) Nb = m->cfg.atlas_nodes[a];
    if (!rc && o->max_memory > 0) rc = memory_check(o, m, Bl, Nb, e);
    if (!rc) {
        t->fc = bgfm_malloc(e, (size_t)(Bl * Nb * Nb) * sizeof *t->fc, "batch");
        t->adj = bgfm_malloc(e, (size_t)(Bl * Nb * Nb), "batch");
        t->rw = bgfm_malloc(e, (size_t)(Bl * Nb * (m->cfg.k ? m->cfg.k : 1)) * sizeof *t->rw, "batch");
        t->gidx = bgfm_malloc(e, (size_t)B * sizeof *t->gidx, "batch");
        if (!t->fc || !t->adj || !t->rw || !t->gidx) rc = BGFM_ENOMEM;
    }
    if (!rc && pairs) {
        t->fcb = bgfm_malloc(e, (size_t)(Bl * Nb * Nb) * sizeof *t->fcb, "batch partners");
        t->adjb = bgfm_malloc(e, (size_t)(Bl * Nb * Nb), "batch partners");
        t->rwb = bgfm_malloc(e, (size_t)(Bl * Nb * (m->cfg.k ? m->cfg.k : 1)) * sizeof *t->rwb, "batch partners");
        t->pidx = bgfm_malloc(e, (size_t)Bl * sizeof *t->pidx, "batch partners");
        if (!t->fcb || !t->adjb || !t->rwb || !t->pidx) rc = BGFM_ENOMEM;
    }
    if (!rc) rc = model_ws_init(&t->ws, m, (int)Bl, e);
    if (!rc) rc = dist_ntx_init(&t->ntx, ctx, B, m->cfg.P, e);
    return rc;
}

/* One optimiser step on global batch `pos` of epoch `ep` (docs/pretrain.md, "What each
 * rank does"): read this rank's slice of the batch (and its GCL partners), forward, the
 * NT-Xent over the global batch, backward with the decoder/projection gradients
 * all-reduced while the encoder's backward runs, the global losses, clipping, AdamW.
 * Collective: every collective is reached only after the ranks agree on the status, and
 * the status is the same on every rank. */
typedef struct step_out {
    model_losses ls; /* global losses */
    double gn, lr;   /* gradient norm before clipping, learning rate */
    int64_t n;       /* graphs in the global batch */
    step_times tm;
} step_out;

static int train_step(bgfm_ctx *ctx, const pretrain_opts *o, trainer *t, const optim_cfg *oc,
                      int64_t ep, int64_t pos, double mr, int64_t step, double *bytes,
                      step_out *out) {
    step_times tm = {0, 0, 0};
    double ts = MPI_Wtime(), tc;
    const int R = ctx->size, me = ctx->rank;
    const int64_t B = o->batch_size;
    const int pairs = uses_pairs(o);
    model *m = &t->m;
    bgfm_err *e = &ctx->err;
    int rc = 0;
    int a = t->pl.ord_atlas[pos];
    int64_t j = t->pl.ord_batch[pos], lo = j * B;
    int64_t n = lo + B <= t->pl.cnt[a] ? B : t->pl.cnt[a] - lo, slo = 0, sn = 0;
    memcpy(t->gidx, t->pl.perm + t->pl.off[a] + lo, (size_t)n * sizeof *t->gidx);
    dist_slice(n, R, me, &slo, &sn);
    int N = graphs_atlas_nodes(t->gs, a);
    /* local phase: read this rank's graphs, forward */
    if (sn > 0) rc = graphs_read(t->gs, t->gidx + slo, (int)sn, t->fc, t->adj, t->rw, e);
    if (!rc && sn > 0 && pairs) {
        for (int64_t i = 0; i < sn; i++)
            t->pidx[i] = batch_plan_partner(&t->pl, o->seed, ep, t->gidx[slo + i]);
        rc = graphs_read(t->gs, t->pidx, (int)sn, t->fcb, t->adjb, t->rwb, e);
    }
    *bytes += (double)sn * (pairs ? 2.0 : 1.0) * (double)N * ((double)N * 5.0 + 4.0 * (double)m->cfg.k);
    tc = MPI_Wtime();
    tm.io += tc - ts;
    model_losses ls = {0, 0, 0, 0};
    model_hp hp = o->hp;
    hp.seed = o->seed;
    hp.epoch = ep;
    hp.step = step;
    hp.mask_ratio = mr;
    /* means over graphs divide by the GLOBAL batch count */
    hp.lambda_rec *= (double)sn / (double)n;
    hp.lambda_adj *= (double)sn / (double)n;
    memset(m->g, 0, (size_t)m->n_params * sizeof(float));
    if (!rc && sn > 0) {
        model_batch bt = {t->amap[a], (int)sn, N, t->fc, t->adj, t->rw, t->gidx + slo,
                          t->fcb, t->adjb, t->rwb};
        model_forward(m, &t->ws, &bt, &hp, &ls);
        if (!isfinite(ls.rec) || !isfinite(ls.adj))
            rc = bgfm_fail(e, BGFM_ENUMERIC, "pretrain: loss is not finite (rec %g, adj "
                           "%g) at step %lld (epoch %lld) on graphs %lld..%lld of the "
                           "batch (first global index %lld, atlas %s); check the input "
                           "graphs for NaN, lower lr or raise warmup", ls.rec, ls.adj,
                           (long long)step, (long long)ep, (long long)slo,
                           (long long)(slo + sn - 1), (long long)t->gidx[slo],
                           graphs_atlas_name(t->gs, a));
    }
    double tf = MPI_Wtime();
    tm.compute += tf - tc;
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) return rc;
    /* the contrastive loss over the global batch */
    double cl = 0;
    if (o->hp.mode & MODEL_GCL) {
        rc = dist_ntxent(ctx, &t->ntx, t->ws.z, t->ws.dz, n, m->cfg.P, o->hp.tau_cl,
                         o->hp.lambda_cl, &cl);
        rc = bgfm_ctx_agree(ctx, rc); /* together into the gradient reduction */
        if (rc) return rc;
    }
    double tg = MPI_Wtime(), tl = o->hp.mode & MODEL_GCL ? t->ntx.compute_s : 0;
    tm.compute += tl; /* the loss's own kernels (dist.h); its gathers are communication */
    tm.comm += tg - tf - tl;
    /* the decoder/projection gradients are reduced while the encoder's backward
     * runs (dist_bucket); a rank without graphs posts the same calls */
    dist_bucket bk;
    dist_bucket_init(&bk, ctx, m->g);
    if (sn > 0)
        model_backward_hooked(m, &t->ws, dist_bucket_hook, &bk);
    else
        dist_bucket_hook(&bk, model_grad_tail(m), model_grad_end(m) - model_grad_tail(m));
    double tb = MPI_Wtime();
    tm.compute += tb - tg;
    /* gradient sum and global losses */
    double loc[2] = {(double)sn * ls.rec, (double)sn * ls.adj}, glob[2] = {ls.rec, ls.adj};
    rc = bgfm_ctx_agree(ctx, dist_bucket_finish(&bk));
    if (!rc && R > 1)
        rc = bgfm_ctx_agree(ctx, BGFM_MPI(e, MPI_Allreduce(loc, glob, 2, MPI_DOUBLE,
                                                           MPI_SUM, ctx->comm)));
    if (rc) return rc;
    if (R > 1) {
        glob[0] /= (double)n;
        glob[1] /= (double)n;
    }
    double tr = MPI_Wtime();
    tm.comm += tr - tb;
    ls.rec = glob[0];
    ls.adj = glob[1];
    ls.cl = cl;
    ls.total = o->hp.lambda_rec * ls.rec + o->hp.lambda_adj * ls.adj + o->hp.lambda_cl * ls.cl;
    if (!isfinite(ls.total)) { /* the same global value on every rank */
        rc = bgfm_fail(e, BGFM_ENUMERIC, "pretrain: loss is %g at step %lld (epoch %lld); "
                       "lower lr or raise warmup", ls.total, (long long)step, (long long)ep);
        return rc;
    }
    double gn = optim_clip(m->g, m->n_params, oc->clip);
    double lr = optim_lr(oc, step);
    optim_adamw(&t->op, m->w, m->g, lr, oc);
    tm.compute += MPI_Wtime() - tr;
    out->ls = ls;
    out->gn = gn;
    out->lr = lr;
    out->n = n;
    out->tm = tm;
    return 0;
}

/* pop_rank: auto: the head narrowed to r rows and the readout axes to pcs (model_pop_resize),
 * and the AdamW moments with them (the head and the axes are the layout's tail and are
 * never trained). */
static int narrow_head(trainer *t, int r, int pcs, int embed, bgfm_err *e) {
    const model_cfg *c = &t->m.cfg;
    if (r < 1 || (r == c->pop_rank && pcs == c->pcs && embed == c->embed)) return 0;
    int rc = model_pop_resize(&t->m, r, pcs, embed, e);
    optim op;
    if (!rc) rc = optim_init(&op, &t->m, e);
    if (rc) return rc;
    const int64_t keep = op.n < t->op.n ? op.n : t->op.n;
    memcpy(op.m, t->op.m, (size_t)keep * sizeof *op.m);
    memcpy(op.v, t->op.v, (size_t)keep * sizeof *op.v);
    op.t = t->op.t;
    optim_free(&t->op);
    t->op = op;
    return 0;
}

/* embedding pcs+pop (auto where the head alone is not read, or asked for; why: auto's
 * reason, NULL when asked for): the head's r discriminant rows
 * followed by the principal rows pop_fit found, and the readout's axes fitted (model.md
 * section 11). */
static int pcs_form(bgfm_ctx *ctx, trainer *t, const pop_fit_info *pfi, int r, const char *why) {
    int rc = bgfm_ctx_agree(ctx, narrow_head(t, r + POP_FC_PCS, POP_READOUT_PCS, MODEL_EMBED_PCS,
                                             &ctx->err));
    return rc ? rc : pop_fit_pcs(ctx, &t->m, t->gs, t->pl.used, t->pl.n_used, pfi, r, why);
}

/* Collective: pop_fit with pop_site mode into *pfi, and the rows every atlas keeps (*r;
 * *how: pop_rank_shared's answer, 0 with a fixed rank). */
static int fit_at(bgfm_ctx *ctx, const pretrain_opts *o, trainer *t, int mode, pop_fit_info *pfi,
                  int *r, int *how) {
    const model_cfg *c = &t->m.cfg;
    const pop_fit_opts fo = {.auto_rank = o->pop_auto, .site_mode = mode, .shrink = o->pop_shrink,
        .site_shrink = o->pop_site_shrink, .npc = o->embed_pcs || o->embed_auto ? POP_FC_PCS : 0,
        .apart_z = o->pop_outlier_z, .apart_share = o->pop_outlier_share,
        .solver = o->pop_solver};
    int rc = pop_fit(ctx, &t->m, t->gs, t->pl.used, t->pl.n_used, &fo, pfi);
    *how = 0;
    *r = rc || !o->pop_auto ? c->pop_rank : pop_rank_shared(pfi, c->n_atlases, c->pop_rank, how);
    return rc;
}

/* Collective: the population head from the graphs training read (pop.h), logged. */
static int fit_head(bgfm_ctx *ctx, const pretrain_opts *o, trainer *t) {
    const model *m = &t->m;
    pop_fit_info pfi;
    double t0 = MPI_Wtime();
    int mode = o->pop_site == POP_SITE_AUTO ? POP_SITE_CENTRE : o->pop_site, how = 0, r = 0;
    int rc = fit_at(ctx, o, t, mode, &pfi, &r, &how);
    /* pop_site: auto: centred, unless a kept direction is one site's own: then harmonised */
    int a = 0, k = -1;
    for (; !rc && o->pop_site == POP_SITE_AUTO && a < m->cfg.n_atlases; a++)
        if (pfi.graphs[a] && (k = pop_site_own(&pfi.fit[a], r)) >= 0) break;
    if (k >= 0) {
        log_info(ctx, "pretrain: pop_site auto: harmonise (centred, %.0f%% of how people differ "
                 "along direction %d of %s is within one site: that site's own variation, or one "
                 "or two of its people's; docs/model.md section 11, \"Sites\")",
                 100 * pfi.fit[a].site_share[k], k + 1, m->cfg.atlas[a]);
        pop_fit_info_free(&pfi);
        mode = POP_SITE_HARMONISE;
        rc = fit_at(ctx, o, t, mode, &pfi, &r, &how);
    }
    if (!rc && m->cfg.pop_rank) pop_log_fit(ctx, &pfi, &m->cfg, r, how, o->pop_auto, mode,
                                              o->pop_outlier_z, o->pop_outlier_share);
    t->m.cfg.pop_site_fit = 1 + mode; /* final.h5 says how the head was fitted */
    const int alone = pop_head_alone(r, how); /* a count the people share */
    if (!rc && m->cfg.pop_rank && (o->embed_pcs || (o->embed_auto && !alone))) {
        rc = pcs_form(ctx, t, &pfi, r, !o->embed_auto ? NULL
                      : how == 2 ? "a reproducible peak of fewer directions than the head alone reads: "
                                 : "no direction stands out: ");
    } else if (!rc && o->pop_auto && m->cfg.pop_rank) {
        const int embed = o->embed_auto ? MODEL_EMBED_POP : t->m.cfg.embed;
        rc = bgfm_ctx_agree(ctx, narrow_head(t, r, 0, embed, &ctx->err));
        if (!rc && o->embed_auto)
            log_info(ctx, "pretrain: embedding auto: pop (the head alone: directions %s)",
                     how == 1 ? "stand out on held-out halves of the people"
                              : "found alike on both halves of the people");
    }
    pop_fit_info_free(&pfi);
    if (!rc && m->cfg.pop_rank)
        log_info(ctx, "pretrain: population head fitted in %.2f s (%d rows per atlas)",
                 MPI_Wtime() - t0, t->m.cfg.pop_rank);
    return rc;
}

static int train(bgfm_ctx *ctx, const pretrain_opts *o, const char *gpath, const char *outdir,
                 const char *metrics, pretrain_result *res) {
    bgfm_err *e = &ctx->err;
    const int R = ctx->size, me = ctx->rank;
    trainer t;
    memset(&t, 0, sizeof t);
    char dir[4096], path[4200];
    ckpt_state st = {.seed = o->seed};
    snprintf(dir, sizeof dir, "%s/checkpoints", outdir);
    int rc = me == 0 ? fs_mkdirs(dir, e) : 0;
    if (!rc && me == 0) { /* an interrupted final write */
        snprintf(path, sizeof path, "%s/final.h5.tmp", outdir);
        remove(path);
    }
    if (!rc) rc = graphs_open(gpath, &t.gs, e);
    rc = bgfm_ctx_agree(ctx, rc);
    int fresh = 0;
    if (!rc) rc = train_start(ctx, o, &t, dir, &st, &fresh);
    if (rc) goto done;
    model *m = &t.m;
    /* every atlas of the store must be one of the model's, with the same N and k */
    t.amap = bgfm_calloc(e, (size_t)graphs_n_atlases(t.gs) + 1, sizeof *t.amap, "atlas map");
    if (!t.amap) rc = BGFM_ENOMEM;
    for (int a = 0; !rc && a < graphs_n_atlases(t.gs); a++) {
        t.amap[a] = model_atlas_find(m, graphs_atlas_name(t.gs, a));
        if (t.amap[a] < 0 || m->cfg.atlas_nodes[t.amap[a]] != graphs_atlas_nodes(t.gs, a) ||
            m->cfg.k != graphs_rwse_steps(t.gs))
            rc = bgfm_fail(e, BGFM_EUSAGE, "pretrain: atlas '%s' of %s is not in the initial "
                           "model (or has another node count / RWSE steps); start from "
                           "`init: random` or use the same atlases", graphs_atlas_name(t.gs, a), gpath);
    }
    if (!rc) rc = batch_plan_make(&t.pl, t.gs, o, e);
    if (!rc && t.pl.spe == 0)
        rc = bgfm_fail(e, BGFM_EDATA, "pretrain: %s has no atlas with 2 or more graphs%s", gpath,
                       o->strict ? " without a label (protocol: strict reads only unlabelled "
                                   "subjects; add unlabelled scans or use protocol: transductive)"
                                 : "");
    /* a fresh model's input normalisation is fitted on the graphs it will train on
     * (resumed and initialised models keep theirs); collective, so reached together */
    if (!(rc = bgfm_ctx_agree(ctx, rc)) && fresh) rc = norm_fit(ctx->comm, e, m, t.gs, t.pl.used, t.pl.n_used);
    rc = bgfm_ctx_agree(ctx, rc);
    const int pairs = uses_pairs(o);
    if (!rc && pairs) rc = batch_plan_partners(&t.pl, t.gs, e);
    st.protocol = o->strict ? "strict" : "transductive";
    st.graphs = t.pl.used, st.n_graphs = t.pl.n_used, st.gs = t.gs, st.pipe = o->pipe;
    st.pause_ms = ctx->hooks ? ctx->hooks->ckpt_pause_ms : 0; /* test hook (ctx.h) */
    if (!rc) rc = train_buffers(ctx, o, &t, pairs);
    if (!rc && metrics && !(t.mf = fopen(metrics, "a")))
        rc = bgfm_fail(e, BGFM_EIO, "cannot append to %s", metrics);
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) goto done;
    const char *dbg = getenv("BGFM_DEBUG_SYNC");
    const int debug_sync = dbg && *dbg && strcmp(dbg, "0");
    optim_cfg oc = o->opt;
    oc.total_steps = o->epochs * t.pl.spe;
    log_progress pg;
    log_progress_start(ctx, &pg, "pretrain", "steps", oc.total_steps);
    double t0 = MPI_Wtime(), sum_ep = 0, first = (double)NAN;
    int64_t n_ep = 0, graphs_done = 0, last_ckpt = -1;
    double bytes = 0;
    /* test hook of the BGFM_DEBUG_SYNC check: this rank perturbs a weight after step 2 */
    const int desync_rank = ctx->hooks ? ctx->hooks->desync_rank : -1;
    int stop = 0;
    for (int64_t ep = st.epoch; ep < o->epochs && !rc && !stop; ep++) {
        batch_plan_epoch(&t.pl, o->seed, ep);
        double mr = optim_mask_ratio(o->mask_r0, o->mask_r1, ep, o->epochs);
        sum_ep = 0;
        n_ep = 0;
        for (int64_t pos = ep == st.epoch ? st.pos : 0; pos < t.pl.spe && !rc && !stop; pos++) {
            step_out so;
            memset(&so, 0, sizeof so);
            double ts = MPI_Wtime();
            rc = train_step(ctx, o, &t, &oc, ep, pos, mr, st.step, &bytes, &so);
            if (rc) break;
            model_losses ls = so.ls;
            step_times tm = so.tm;
            double gn = so.gn, lr = so.lr, tr = MPI_Wtime();
            int64_t n = so.n; /* the step's graphs */
            int a = t.pl.ord_atlas[pos];
            st.step++;
            st.epoch = pos + 1 == t.pl.spe ? ep + 1 : ep;
            st.pos = pos + 1 == t.pl.spe ? 0 : pos + 1;
            graphs_done += n;
            sum_ep += ls.total;
            n_ep++;
            double tu = MPI_Wtime();
            tm.compute += tu - tr;
            if (me == desync_rank && st.step == 2) m->w[0] += 1e-3f;
            if (debug_sync) {
                rc = bgfm_ctx_agree(ctx, dist_check_identical(ctx, m->w, m->n_params, "parameters",
                                                              st.step));
                if (!rc)
                    rc = bgfm_ctx_agree(ctx, dist_check_identical(ctx, t.op.m, m->n_params,
                                                                  "AdamW moments", st.step));
                if (rc) break;
            }
            /* stop requests (SIGTERM/SIGUSR1 on any rank, or the test hook) */
            int sig = bgfm_ctx_stop_requested(ctx);
            rc = bgfm_ctx_agree(ctx, sig < 0 ? BGFM_EMPI : 0);
            if (rc) break;
            stop = sig || (o->stop_after > 0 && st.step >= o->stop_after);
            double tp = MPI_Wtime();
            tm.comm += tp - tu;
            if ((o->checkpoint_every > 0 && st.step % o->checkpoint_every == 0) || stop) {
                snprintf(path, sizeof path, "%s/ckpt-%lld.h5", dir, (long long)st.step);
                st.config = (char *)(uintptr_t)o->config_text;
                rc = ckpt_save_par(ctx->comm, path, m, &t.op, &st, e);
                st.config = NULL;
                if (!rc && me == 0) rc = ckpt_dir_prune(dir, o->keep_checkpoints, e);
                rc = bgfm_ctx_agree(ctx, rc);
                last_ckpt = st.step;
                tm.io += MPI_Wtime() - tp;
            }
            double mx[3] = {tm.compute, tm.comm, tm.io}, g3[3] = {0, 0, 0};
            if (!rc) rc = bgfm_ctx_agree(ctx, BGFM_MPI(e, MPI_Reduce(mx, g3, 3, MPI_DOUBLE, MPI_MAX,
                                                                     0, ctx->comm)));
            step_times gt = {g3[0], g3[1], g3[2]};
            double dt = MPI_Wtime() - ts;
            if (t.mf)
                metrics_line(ctx, t.mf, o->stage_name, st.step, ep, &ls, gn, lr, dt > 0 ? (double)n / dt : 0,
                             graphs_atlas_name(t.gs, a), mr, &gt, R);
            log_progress_update(ctx, &pg, st.step);
        }
        if (!rc && isnan(first) && n_ep) first = sum_ep / (double)n_ep;
    }
    log_progress_end(ctx, &pg, st.step);
    if (!rc && stop)
        rc = bgfm_fail(e, BGFM_SIGNALLED, "pretrain: stop requested (%s); checkpoint %s/ckpt-%lld.h5 "
                       "written; rerun the same command to resume",
                       o->stop_after > 0 && st.step >= o->stop_after ? "BGFM_TEST_STOP_AFTER"
                                                                    : "SIGTERM/SIGUSR1",
                       dir, (long long)last_ckpt);
    if (!rc && !(rc = fit_head(ctx, o, &t))) { /* the population head, then final.h5 */
        snprintf(path, sizeof path, "%s/final.h5", outdir);
        st.config = (char *)(uintptr_t)o->config_text;
        rc = ckpt_save_par(ctx->comm, path, m, &t.op, &st, e);
        st.config = NULL;
    }
    if (res) {
        res->steps = st.step;
        res->graphs = graphs_done;
        res->bytes_read = bytes;
        res->first_loss = first;
        res->last_loss = n_ep ? sum_ep / (double)n_ep : (double)NAN;
        res->seconds = MPI_Wtime() - t0;
    }
done:
    train_free(&t);
    return bgfm_ctx_agree(ctx, rc);
}

int pretrain_train(bgfm_ctx *ctx, const pretrain_opts *o, const char *graphs, const char *outdir,
                   const char *metrics, pretrain_result *res) {
    return train(ctx, o, graphs, outdir, metrics, res);
}

/* ---- the stage kind --------------------------------------------------------------- */
static const bgfm_opt pretrain_opts_table[] = {
    {"mode", BGFM_OPT_ENUM, "gmae+gcl", 1, 0, "gmae|gcl|gmae+gcl",
     "objective: masked autoencoding, contrastive, or both (model.md section 5)"},
    {"epochs", BGFM_OPT_INT, "20", 1, 1e9, NULL, "passes over every graph of every atlas"},
    {"batch_size", BGFM_OPT_INT, "32", 2, 65536, NULL, "graphs per step (all of one atlas)"},
    {"lr", BGFM_OPT_REAL, "3e-3", 0, 10, NULL, "peak AdamW learning rate"},
    {"warmup", BGFM_OPT_INT, "10", 0, 1e9, NULL, "linear warm-up steps, then cosine decay to 0"},
    {"weight_decay", BGFM_OPT_REAL, "1e-4", 0, 10, NULL, "decoupled weight decay (matrices only)"},
    {"clip", BGFM_OPT_REAL, "5.0", 0, 1e9, NULL, "global gradient-norm clip (0: off)"},
    {"hidden", BGFM_OPT_INT, "128", 1, 65536, NULL, "hidden width H"},
    {"heads", BGFM_OPT_INT, "4", 1, 1024, NULL, "attention heads (must divide hidden)"},
    {"ffn", BGFM_OPT_INT, "256", 1, 1 << 20, NULL, "feed-forward width F"},
    {"layers", BGFM_OPT_INT, "2", 1, MODEL_MAX_LAYERS, NULL, "encoder blocks L"},
    {"decoder_layers", BGFM_OPT_INT, "1", 1, MODEL_MAX_LAYERS, NULL, "decoder blocks Ld"},
    {"proj", BGFM_OPT_INT, "128", 1, 65536, NULL, "projection width P"},
    {"n_max", BGFM_OPT_INT, "400", 0, 1 << 20, NULL,
     "input width for FC rows (D_in = n_max + k); 0: the largest atlas N"},
    {"readout", BGFM_OPT_ENUM, "region", 1, 0, "region|mean",
     "graph embedding: region (per-region projections in atlas order, model.md section 2) "
     "or mean of the region rows"},
    {"readout_dim", BGFM_OPT_INT, "8", 1, 1024, NULL, "region readout: width per region"},
    {"input_norm", BGFM_OPT_ENUM, "population", 1, 0, "population|none",
     "population: every FC entry standardised by its mean and sd over the graphs pretraining "
     "reads (fitted at a fresh start, stored in the model); none: raw FC (model.md section 1)"},
    {"pop_rank", BGFM_OPT_INT, "auto", 0, 256, "auto",
     "population head: directions along which people differ most against how one person's "
     "windows differ, fitted per atlas after training (0: no head; auto: as many as stand out "
     "on held-out halves of the people, the most over the atlases, at most 16, else 8; "
     "model.md section 11)"},
    {"pop_shrink", BGFM_OPT_REAL, "0.1", 0, 1, NULL,
     "population head: shrinkage of the within-scan covariance towards its mean eigenvalue"},
    {"pop_site", BGFM_OPT_ENUM, "auto", 1, 0, "auto|centre|harmonise|none",
     "population head: centre: fitted on each graph's FC less its site's mean (participants.tsv "
     "site, per dataset), so that what differs between sites is not read as what differs "
     "between people; harmonise: centred, and each site's spread matched to the pooled one "
     "before the directions are chosen, so that one site's own person-to-person variation "
     "(its physiology, its artifacts) is not read either; auto: centre, refitted harmonised "
     "when a kept direction is one site's own (80% of how people differ along it within a "
     "site of at most half the scans); none: on the FC as it is (model.md section 11)"},
    {"pop_site_shrink", BGFM_OPT_REAL, "0.5", 0, 1, NULL, "population head, when harmonised: "
     "shrinkage of each site's covariance towards its mean eigenvalue (0: matched fully)"},
    {"pop_outlier_z", BGFM_OPT_REAL, "4", 0, 100, NULL, "population head: a person whose FC "
     "stands further apart from everyone's than this many robust deviations (of the log "
     "distance, in the head's metric) is left out of its fit and named in the log (0: "
     "everyone kept; model.md section 11)"},
    {"pop_outlier_share", BGFM_OPT_REAL, "0", 0, 1, NULL, "population head: a person who "
     "holds this share or more of the variance of one of its 8 leading directions is left out "
     "of its fit, one at a time, and named in the log (0: off; opt-in, results 12z; model.md "
     "section 11)"},
    {"pop_solver", BGFM_OPT_ENUM, "auto", 1, 0, "auto|exact|randomised",
     "population head: how the principal subspace of an atlas's graphs is found: exact, "
     "through the Gram matrix of all of them (8 n^2 bytes and n^3 work for n graphs); "
     "randomised, by subspace iteration on the graphs (linear in n; results agree to the "
     "iteration's tolerance); auto: exact up to 4096 graphs per atlas, randomised above "
     "(model.md section 11)"},
    {"embedding", BGFM_OPT_ENUM, "auto", 1, 0, "auto|encoder+pop|pop|pcs+pop|encoder",
     "the graph embedding the probe reads: the encoder's readout and the population head, "
     "or one of them alone; auto: with pop_rank: auto the head alone when directions stand "
     "out on held-out halves of the people, else pcs+pop (the readout on its 8 leading "
     "principal axes, the head's 8 directions and the FC's 4 leading principal axes); with "
     "a fixed pop_rank encoder+pop (encoder with pop_rank: 0; model.md section 11)"},
    {"mask_ratio", BGFM_OPT_REAL, "0.4", 0, 1, NULL, "GMAE mask ratio (constant)"},
    {"mask_ratio_start", BGFM_OPT_REAL, NULL, 0, 1, NULL,
     "mask ratio of the first epoch (with mask_ratio_end: linear per epoch)"},
    {"mask_ratio_end", BGFM_OPT_REAL, NULL, 0, 1, NULL, "mask ratio of the last epoch"},
    {"mask_columns", BGFM_OPT_BOOL, "true", 1, 0, NULL,
     "zero masked nodes' columns in visible inputs (no-leak rule)"},
    {"decoder_input", BGFM_OPT_ENUM, "nodes", 1, 0, "nodes|nodes+graph|graph",
     "what the GMAE decoder reads: nodes = the visible nodes' embeddings; nodes+graph = those "
     "and the visible view's graph embedding on every row; graph = only the graph embedding "
     "(reconstruction through the embedding the probe reads; model.md section 3)"},
    {"rec_target", BGFM_OPT_ENUM, "graph", 1, 0, "graph|partner",
     "GMAE reconstruction target: graph = the masked rows of the graph itself; partner = the "
     "same rows of its gcl_pairs partner (with scan: another window of the same scan)"},
    {"p_node", BGFM_OPT_REAL, "0.1", 0, 1, NULL, "GCL: node feature corruption probability"},
    {"p_edge", BGFM_OPT_REAL, "0.1", 0, 1, NULL, "GCL: undirected edge drop probability"},
    {"tau_cl", BGFM_OPT_REAL, "0.2", 1e-6, 1e6, NULL, "NT-Xent temperature"},
    {"lambda_rec", BGFM_OPT_REAL, "1.0", 0, 1e6, NULL, "weight of the reconstruction loss"},
    {"lambda_adj", BGFM_OPT_REAL, "0.1", 0, 1e6, NULL, "weight of the structure loss"},
    {"lambda_cl", BGFM_OPT_REAL, "0.01", 0, 1e6, NULL, "weight of the contrastive loss"},
    {"dropout", BGFM_OPT_REAL, "0.1", 0, 0.95, NULL,
     "dropout on attention weights, MHSA and FFN outputs"},
    {"checkpoint_every", BGFM_OPT_INT, "50", 0, 1e12, NULL,
     "steps between checkpoints (0: only final.h5)"},
    {"keep_checkpoints", BGFM_OPT_INT, "3", 0, 1e9, NULL, "newest checkpoints kept (0: all)"},
    {"resume_from", BGFM_OPT_STR, NULL, 1, 0, NULL,
     "checkpoint file or folder to resume from when this stage has no checkpoint of its own "
     "(restart on another rank count; same options required)"},
    {"gcl_pairs", BGFM_OPT_ENUM, "scan", 1, 0, "scan|graph",
     "GCL positives: scan = view b is another window of the same scan through the same atlas "
     "(the graph itself when its scan has one); graph = both views from the same graph"},
    {"protocol", BGFM_OPT_ENUM, "transductive", 1, 0, "transductive|strict",
     "transductive: every graph of the store (labelled subjects included, labels unused); "
     "strict: only graphs whose subject has no label, so the probe's subjects are never read"},
    {"init", BGFM_OPT_STR, "auto", 1, 0, NULL,
     "auto: final.h5 of the nearest earlier pretrain stage if any, else random; random; "
     "the name of an earlier pretrain stage; or a FILE.safetensors (bgfm export, bgfm_torch; "
     "relative to the pipeline file's folder; docs/export.md)"},
};

#define INIT_SAFETENSORS (-3) /* init: a .safetensors file */

/* Index of the stage that `init` points at, -1 for random init, INIT_SAFETENSORS. */
static int init_stage(const bgfm_pipeline *p, const bgfm_stage_cfg *s, bgfm_err *e) {
    const char *v = params_str(&s->with, "init");
    int self = (int)(s - p->stages);
    BGFM_ASSERT(self >= 0 && self < p->n_stages);
    if (!strcmp(v, "random")) return -1;
    for (int j = self - 1; j >= 0; j--) {
        const bgfm_stage_cfg *q = &p->stages[j];
        if (q->kind != &bgfm_stage_pretrain) continue;
        if (!strcmp(v, "auto") || !strcmp(v, q->name)) return j;
    }
    if (!strcmp(v, "auto")) return -1;
    if (export_is_safetensors(v)) return INIT_SAFETENSORS;
    bgfm_fail(e, BGFM_EUSAGE, "%s:%d:%d: stage '%s': init: '%s' is not 'auto', 'random', the "
              "name of an earlier pretrain stage or a FILE.safetensors", p->file, s->line, s->col,
              s->name, v);
    return -2;
}

static char *init_file(const bgfm_pipeline *p, const bgfm_stage_cfg *s, int j, bgfm_err *e) {
    if (j == INIT_SAFETENSORS) { /* relative to the pipeline file's folder */
        const char *v = params_str(&s->with, "init");
        return v[0] == '/' ? bgfm_strdup(e, v) : fs_join(p->basedir, v, e);
    }
    size_t n = strlen(p->workdir) + strlen(p->stages[j].name) + 16;
    char *f = bgfm_malloc(e, n, "path");
    if (f) snprintf(f, n, "%s/%s/final.h5", p->workdir, p->stages[j].name);
    return f;
}

static int pretrain_validate(const bgfm_pipeline *p, const bgfm_stage_cfg *s, bgfm_err *e) {
    const bgfm_params *w = &s->with;
    if (params_int(w, "hidden") % params_int(w, "heads"))
        return bgfm_fail(e, BGFM_EUSAGE, "%s:%d:%d: stage '%s': hidden (%lld) must be a multiple "
                         "of heads (%lld)", p->file, s->line, s->col, s->name,
                         (long long)params_int(w, "hidden"), (long long)params_int(w, "heads"));
    if (params_has(w, "mask_ratio_start") != params_has(w, "mask_ratio_end"))
        return bgfm_fail(e, BGFM_EUSAGE, "%s:%d:%d: stage '%s': give both mask_ratio_start and "
                         "mask_ratio_end, or neither", p->file, s->line, s->col, s->name);
    const char *em = params_str(w, "embedding");
    if (!params_word(w, "pop_rank") && params_int(w, "pop_rank") == 0 && strcmp(em, "auto") &&
        strcmp(em, "encoder")) {
        const bgfm_value *v = params_value(w, "embedding");
        return bgfm_fail(e, BGFM_EUSAGE, "%s:%d:%d: stage '%s': embedding %s needs the population "
                         "head: set pop_rank (auto or >= 1), or embedding: encoder", p->file,
                         v ? v->line : s->line, v ? v->col : s->col, s->name, em);
    }
    return init_stage(p, s, e) == -2 ? BGFM_EUSAGE : 0;
}

static char **pretrain_extra_inputs(const bgfm_pipeline *p, const bgfm_stage_cfg *s, bgfm_err *e) {
    char **l = bgfm_calloc(e, 2, sizeof *l, "inputs");
    if (!l) return NULL;
    int j = init_stage(p, s, e);
    if ((j >= 0 || j == INIT_SAFETENSORS) && !(l[0] = init_file(p, s, j, e))) {
        free(l);
        return NULL;
    }
    return l;
}

static int pretrain_stage_run(bgfm_stage_run *r) {
    bgfm_ctx *ctx = r->ctx;
    const bgfm_params *w = &r->stage->with;
    pretrain_opts o;
    memset(&o, 0, sizeof o);
    model_cfg *c = &o.arch;
    c->H = (int)params_int(w, "hidden");
    c->nh = (int)params_int(w, "heads");
    c->F = (int)params_int(w, "ffn");
    c->L = (int)params_int(w, "layers");
    c->Ld = (int)params_int(w, "decoder_layers");
    c->P = (int)params_int(w, "proj");
    c->N_max = (int)params_int(w, "n_max");
    c->readout = model_readout_parse(params_str(w, "readout"));
    c->rdim = (int)params_int(w, "readout_dim");
    c->norm = !strcmp(params_str(w, "input_norm"), "population");
    o.pop_auto = params_word(w, "pop_rank") != NULL; /* the only word is auto */
    c->pop_rank = o.pop_auto ? POP_RANK_AUTO_MAX : (int)params_int(w, "pop_rank");
    /* embedding: auto is chosen in fit_head with pop_rank: auto; with a fixed rank it is
     * encoder+pop (encoder without a head) */
    o.embed_auto = !strcmp(params_str(w, "embedding"), "auto") && o.pop_auto;
    /* pcs+pop trains as encoder+pop: the readout's axes are fitted after the head */
    o.embed_pcs = !strcmp(params_str(w, "embedding"), "pcs+pop");
    c->embed = !strcmp(params_str(w, "embedding"), "auto")
                   ? (c->pop_rank ? MODEL_EMBED_BOTH : MODEL_EMBED_ENCODER)
               : o.embed_pcs ? MODEL_EMBED_BOTH
                             : model_embed_parse(params_str(w, "embedding"));
    o.pop_shrink = params_real(w, "pop_shrink");
    o.pop_site_shrink = params_real(w, "pop_site_shrink");
    o.pop_outlier_z = params_real(w, "pop_outlier_z");
    o.pop_outlier_share = params_real(w, "pop_outlier_share");
    o.pop_solver = pca_solver_parse(params_str(w, "pop_solver")); /* the enum's words */
    o.pop_site = pop_site_parse(params_str(w, "pop_site")); /* the enum's words: never -1 */
    model_hp *h = &o.hp;
    h->mode = model_mode_parse(params_str(w, "mode"));
    h->lambda_rec = params_real(w, "lambda_rec");
    h->lambda_adj = params_real(w, "lambda_adj");
    h->lambda_cl = params_real(w, "lambda_cl");
    h->tau_cl = params_real(w, "tau_cl");
    h->p_node = params_real(w, "p_node");
    h->p_edge = params_real(w, "p_edge");
    h->p_drop = (float)params_real(w, "dropout");
    h->mask_columns = params_bool(w, "mask_columns");
    h->dec_input = model_dec_input_parse(params_str(w, "decoder_input"));
    h->rec_partner = !strcmp(params_str(w, "rec_target"), "partner");
    o.mask_r0 = o.mask_r1 = params_real(w, "mask_ratio");
    if (params_has(w, "mask_ratio_start")) {
        o.mask_r0 = params_real(w, "mask_ratio_start");
        o.mask_r1 = params_real(w, "mask_ratio_end");
    }
    o.opt = (optim_cfg){params_real(w, "lr"), 0.9, 0.999, 1e-8, params_real(w, "weight_decay"),
                        params_real(w, "clip"), params_int(w, "warmup"), 0};
    o.epochs = params_int(w, "epochs");
    o.strict = !strcmp(params_str(w, "protocol"), "strict");
    o.scan_pairs = !strcmp(params_str(w, "gcl_pairs"), "scan");
    o.batch_size = params_int(w, "batch_size");
    o.checkpoint_every = params_int(w, "checkpoint_every");
    o.keep_checkpoints = params_int(w, "keep_checkpoints");
    o.seed = r->pipe->seed;
    o.stage_name = r->stage->name;
    o.max_memory = r->pipe->max_memory_per_rank;
    o.pipeline_file = r->pipe->file;
    o.pipe = r->pipe;
    /* resume_from: relative paths are relative to the pipeline file's folder, like
     * every other path of a pipeline */
    char *resume = NULL;
    const char *rf = params_has(w, "resume_from") ? params_str(w, "resume_from") : NULL;
    if (rf && rf[0] != '/' && strchr(r->pipe->file, '/')) {
        size_t n = strlen(r->pipe->file) + strlen(rf) + 2;
        resume = bgfm_malloc(&ctx->err, n, "path");
        if (resume) {
            snprintf(resume, n, "%s", r->pipe->file);
            snprintf(strrchr(resume, '/') + 1, n - (size_t)(strrchr(resume, '/') + 1 - resume), "%s", rf);
        }
    }
    o.resume_from = resume ? resume : rf;
    o.stop_after = ctx->hooks ? ctx->hooks->stop_after : 0; /* test hook (ctx.h) */
    char *init = NULL, *cfgtext = NULL, *gpath = NULL;
    size_t cl = 0;
    int rc = 0;
    int j = init_stage(r->pipe, r->stage, &ctx->err);
    if (j == -2) rc = BGFM_EUSAGE;
    if (!rc && (j >= 0 || j == INIT_SAFETENSORS)) {
        init = init_file(r->pipe, r->stage, j, &ctx->err);
        if (!init) rc = BGFM_ENOMEM;
        else if (j == INIT_SAFETENSORS && !fs_exists(init))
            rc = config_path_fail(&ctx->err, r->pipe, "init",
                                  (bgfm_pos){params_value(w, "init")->line, params_value(w, "init")->col},
                                  BGFM_EUSAGE, "stage '%s': %s does not exist", r->stage->name, init);
        else if (!fs_exists(init))
            rc = bgfm_fail(&ctx->err, BGFM_EUSAGE, "stage '%s': init from stage '%s' needs %s; "
                           "run that stage first", r->stage->name, r->pipe->stages[j].name, init);
        o.init_path = init;
    }
    /* the resolved `with:` text goes into every checkpoint */
    FILE *mem = open_memstream(&cfgtext, &cl);
    if (mem) {
        fprintf(mem, "stage: %s\nuses: pretrain\nseed: %llu\n", r->stage->name,
                (unsigned long long)r->pipe->seed);
        params_write(w, mem, 2);
        fclose(mem);
    }
    o.config_text = cfgtext ? cfgtext : "";
    if (!rc) {
        gpath = fs_join(r->upstream, "graphs/index.h5", &ctx->err);
        if (gpath && !fs_exists(gpath)) {
            free(gpath);
            gpath = bgfm_strdup(&ctx->err, r->upstream);
        }
        if (!gpath) rc = BGFM_ENOMEM;
    }
    rc = bgfm_ctx_agree(ctx, rc);
    /* SIGTERM / SIGUSR1 from Slurm: finish the step, checkpoint, exit 75 */
    bgfm_signals_install();
    pretrain_result res = {0};
    if (!rc) rc = pretrain_train(ctx, &o, gpath, r->outdir, ctx->rank == 0 ? r->metrics : NULL, &res);
    /* later stages do not poll: a signal must act normally again */
    bgfm_signals_restore();
    r->items = ctx->rank == 0 ? (double)res.steps : 0; /* the engine sums over ranks */
    r->bytes_read = res.bytes_read;
    r->items_unit = "steps";
    free(init);
    free(resume);
    free(cfgtext);
    free(gpath);
    return rc;
}

const bgfm_stage_kind bgfm_stage_pretrain = {
    .name = "pretrain",
    .summary = "GMAE + GCL pretraining of one model over every atlas's graphs -> "
               "checkpoints/ckpt-<step>.h5, final.h5",
    .opts = pretrain_opts_table,
    .n_opts = (int)(sizeof pretrain_opts_table / sizeof pretrain_opts_table[0]),
    .consumes = BGFM_ART_GRAPHS,
    .produces = BGFM_ART_CHECKPOINT,
    .rank_sensitive = 1,
    .validate = pretrain_validate,
    .run = pretrain_stage_run,
    .extra_inputs = pretrain_extra_inputs,
    .reads_roles = BGFM_ROLE_PRETRAIN,
    .upstream_digest = pretrain_upstream_digest,
};
