/* pretrain.c: the `pretrain` stage kind and its training loop (pretrain.h): epochs of
 * one-atlas batches interleaved by the counter-based generator, AdamW, metrics,
 * checkpoints and exact resume. Single-rank compute for now (rank 0).
 * Not the model math (model.c, layers.c) and not the checkpoint format (ckpt.c). */
#include "bgfm/pretrain.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/ckpt.h"
#include "bgfm/fsutil.h"
#include "bgfm/graphs.h"
#include "bgfm/json.h"
#include "bgfm/log.h"
#include "bgfm/rng.h"
#include "bgfm/stage.h"

/* ---- checkpoints folder --------------------------------------------------------- */
/* Steps of the complete checkpoints in dir, descending (*n of them, malloc'ed). */
static int list_ckpts(const char *dir, int64_t **steps, int *n, bgfm_err *e) {
    *steps = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    int cap = 0;
    struct dirent *de;
    char path[4200];
    while ((de = readdir(d)) != NULL) {
        long long s = 0;
        char tail[8] = "";
        if (sscanf(de->d_name, "ckpt-%lld.%7s", &s, tail) != 2 || strcmp(tail, "h5")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (!ckpt_is_complete(path)) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            int64_t *t = realloc(*steps, (size_t)cap * sizeof *t);
            if (!t) {
                closedir(d);
                return bgfm_fail(e, BGFM_ENOMEM, "out of memory listing %s", dir);
            }
            *steps = t;
        }
        (*steps)[(*n)++] = s;
    }
    closedir(d);
    for (int i = 1; i < *n; i++) /* insertion sort, descending */
        for (int j = i; j > 0 && (*steps)[j] > (*steps)[j - 1]; j--) {
            int64_t t = (*steps)[j];
            (*steps)[j] = (*steps)[j - 1];
            (*steps)[j - 1] = t;
        }
    return 0;
}

static int prune_ckpts(const char *dir, int64_t keep, bgfm_err *e) {
    if (keep <= 0) return 0;
    int64_t *st = NULL;
    int n = 0;
    int rc = list_ckpts(dir, &st, &n, e);
    char path[4200];
    for (int i = (int)keep; i < n && !rc; i++) {
        snprintf(path, sizeof path, "%s/ckpt-%lld.h5", dir, (long long)st[i]);
        remove(path);
    }
    free(st);
    return rc;
}

/* ---- the epoch plan ------------------------------------------------------------ */
typedef struct plan {
    int A;                /* store atlases */
    int64_t *cnt;         /* graphs per atlas */
    int64_t **list;       /* global indices per atlas (store order) */
    int64_t *nb;          /* batches per atlas per epoch */
    int64_t spe;          /* steps per epoch */
    int64_t *perm;        /* scratch: per-atlas shuffled copy (concatenated) */
    int64_t *off;         /* offsets of each atlas in perm */
    int32_t *ord_atlas;   /* (spe) batch order of this epoch */
    int64_t *ord_batch;
} plan;

static void plan_free(plan *p) {
    if (p->list)
        for (int a = 0; a < p->A; a++) free(p->list[a]);
    free(p->list);
    free(p->cnt);
    free(p->nb);
    free(p->perm);
    free(p->off);
    free(p->ord_atlas);
    free(p->ord_batch);
    memset(p, 0, sizeof *p);
}

/* A batch holds batch_size graphs of one atlas; an atlas's last partial batch is kept
 * when it has at least 2 graphs (NT-Xent needs negatives), else dropped. */
static int plan_make(plan *p, graphs_store *gs, int64_t bs, bgfm_err *e) {
    memset(p, 0, sizeof *p);
    int A = p->A = graphs_n_atlases(gs);
    int64_t G = graphs_count(gs);
    p->cnt = bgfm_calloc(e, (size_t)A, sizeof *p->cnt, "plan");
    p->list = bgfm_calloc(e, (size_t)A, sizeof *p->list, "plan");
    p->nb = bgfm_calloc(e, (size_t)A, sizeof *p->nb, "plan");
    p->off = bgfm_calloc(e, (size_t)A + 1, sizeof *p->off, "plan");
    p->perm = bgfm_calloc(e, (size_t)(G ? G : 1), sizeof *p->perm, "plan");
    if (!p->cnt || !p->list || !p->nb || !p->off || !p->perm) return BGFM_ENOMEM;
    for (int64_t g = 0; g < G; g++) p->cnt[graphs_get_meta(gs, g)->atlas]++;
    for (int a = 0; a < A; a++) {
        p->list[a] = bgfm_calloc(e, (size_t)(p->cnt[a] ? p->cnt[a] : 1), sizeof(int64_t), "plan");
        if (!p->list[a]) return BGFM_ENOMEM;
        p->off[a + 1] = p->off[a] + p->cnt[a];
        p->nb[a] = p->cnt[a] / bs + (p->cnt[a] % bs >= 2);
        p->spe += p->nb[a];
        p->cnt[a] = 0;
    }
    for (int64_t g = 0; g < G; g++) {
        int a = graphs_get_meta(gs, g)->atlas;
        p->list[a][p->cnt[a]++] = g;
    }
    p->ord_atlas = bgfm_calloc(e, (size_t)(p->spe ? p->spe : 1), sizeof *p->ord_atlas, "plan");
    p->ord_batch = bgfm_calloc(e, (size_t)(p->spe ? p->spe : 1), sizeof *p->ord_batch, "plan");
    return p->ord_atlas && p->ord_batch ? 0 : BGFM_ENOMEM;
}

/* Order of epoch `ep`: each atlas's graphs shuffled (RNG_SHUFFLE, i0 = epoch, i1 =
 * atlas + 1), then the sequence of (atlas, batch) pairs shuffled (i1 = 0). */
static void plan_epoch(plan *p, uint64_t seed, int64_t ep) {
    int64_t k = 0;
    for (int a = 0; a < p->A; a++) {
        memcpy(p->perm + p->off[a], p->list[a], (size_t)p->cnt[a] * sizeof(int64_t));
        rng_stream r;
        rng_init(&r, seed, RNG_SHUFFLE, (uint64_t)ep, (uint64_t)a + 1, 0);
        rng_shuffle_i64(&r, p->perm + p->off[a], p->cnt[a]);
        for (int64_t j = 0; j < p->nb[a]; j++) {
            p->ord_atlas[k] = a;
            p->ord_batch[k++] = j;
        }
    }
    rng_stream r;
    rng_init(&r, seed, RNG_SHUFFLE, (uint64_t)ep, 0, 0);
    for (int64_t i = p->spe - 1; i > 0; i--) {
        int64_t j = (int64_t)rng_below(&r, (uint64_t)i + 1);
        int32_t ta = p->ord_atlas[i];
        int64_t tb = p->ord_batch[i];
        p->ord_atlas[i] = p->ord_atlas[j];
        p->ord_batch[i] = p->ord_batch[j];
        p->ord_atlas[j] = ta;
        p->ord_batch[j] = tb;
    }
}

/* ---- training ------------------------------------------------------------------------ */
static void metrics_line(FILE *f, const char *stage, int64_t step, int64_t epoch,
                         const model_losses *l, double gn, double lr, double gps, const char *atlas,
                         double mr) {
    fputs("{\"stage\": ", f);
    json_write_str(f, stage ? stage : "pretrain");
    fprintf(f, ", \"step\": %lld, \"epoch\": %lld, \"atlas\": ", (long long)step, (long long)epoch);
    json_write_str(f, atlas);
    const char *k[] = {"loss", "loss_rec", "loss_adj", "loss_cl", "grad_norm", "lr",
                       "graphs_per_s", "mask_ratio"};
    double v[] = {l->total, l->rec, l->adj, l->cl, gn, lr, gps, mr};
    for (int i = 0; i < 8; i++) {
        fprintf(f, ", \"%s\": ", k[i]);
        json_write_num(f, v[i]);
    }
    fputs("}\n", f);
    fflush(f);
}

static int train_local(bgfm_ctx *ctx, const pretrain_opts *o, const char *gpath,
                       const char *outdir, const char *metrics, pretrain_result *res) {
    bgfm_err *e = &ctx->err;
    graphs_store *gs = NULL;
    model m;
    optim op;
    model_ws ws;
    plan pl;
    memset(&m, 0, sizeof m);
    memset(&op, 0, sizeof op);
    memset(&ws, 0, sizeof ws);
    memset(&pl, 0, sizeof pl);
    float *fc = NULL, *rw = NULL;
    uint8_t *adj = NULL;
    int64_t *gidx = NULL, *steps = NULL;
    int nst = 0, *amap = NULL;
    FILE *mf = NULL;
    char dir[4096], path[4200];
    ckpt_state st = {0, 0, 0, o->seed, NULL};
    snprintf(dir, sizeof dir, "%s/checkpoints", outdir);
    int rc = graphs_open(gpath, &gs, e);
    if (!rc) rc = fs_mkdirs(dir, e);
    if (!rc) rc = list_ckpts(dir, &steps, &nst, e);
    if (rc) goto done;
    if (nst > 0) { /* resume from the newest complete checkpoint */
        snprintf(path, sizeof path, "%s/ckpt-%lld.h5", dir, (long long)steps[0]);
        log_info(ctx, "pretrain: resuming from %s", path);
        if ((rc = ckpt_load(path, &m, &op, &st, e))) goto done;
        free(st.config);
        st.config = NULL;
    } else if (o->init_path) {
        log_info(ctx, "pretrain: initialising from %s", o->init_path);
        if ((rc = ckpt_load(o->init_path, &m, NULL, NULL, e))) goto done;
        if ((rc = optim_init(&op, &m, e))) goto done;
    } else {
        model_cfg c = o->arch;
        c.k = graphs_rwse_steps(gs);
        c.n_atlases = graphs_n_atlases(gs);
        int nb = 0;
        for (int a = 0; a < c.n_atlases && a < MODEL_MAX_ATLASES; a++) {
            snprintf(c.atlas[a], sizeof c.atlas[a], "%s", graphs_atlas_name(gs, a));
            c.atlas_nodes[a] = graphs_atlas_nodes(gs, a);
            if (c.atlas_nodes[a] > nb) nb = c.atlas_nodes[a];
        }
        if (c.N_max == 0) c.N_max = nb;
        if ((rc = model_init(&m, &c, e))) goto done;
        model_init_params(&m, o->seed);
        if ((rc = optim_init(&op, &m, e))) goto done;
    }
    /* every atlas of the store must be one of the model's, with the same N and k */
    amap = bgfm_calloc(e, (size_t)graphs_n_atlases(gs) + 1, sizeof *amap, "atlas map");
    if (!amap) {
        rc = BGFM_ENOMEM;
        goto done;
    }
    for (int a = 0; a < graphs_n_atlases(gs); a++) {
        amap[a] = model_atlas_find(&m, graphs_atlas_name(gs, a));
        if (amap[a] < 0 || m.cfg.atlas_nodes[amap[a]] != graphs_atlas_nodes(gs, a) ||
            m.cfg.k != graphs_rwse_steps(gs)) {
            rc = bgfm_fail(e, BGFM_EUSAGE, "pretrain: atlas '%s' of %s is not in the initial "
                           "model (or has another node count / RWSE steps); start from "
                           "`init: random` or use the same atlases", graphs_atlas_name(gs, a), gpath);
            goto done;
        }
    }
    if ((rc = plan_make(&pl, gs, o->batch_size, e))) goto done;
    if (pl.spe == 0) {
        rc = bgfm_fail(e, BGFM_EDATA, "pretrain: %s has no atlas with 2 or more graphs", gpath);
        goto done;
    }
    int64_t B = o->batch_size, Nb = 0;
    for (int a = 0; a < m.cfg.n_atlases; a++)
        if (m.cfg.atlas_nodes[a] > Nb) Nb = m.cfg.atlas_nodes[a];
    fc = bgfm_malloc(e, (size_t)(B * Nb * Nb) * sizeof *fc, "batch");
    adj = bgfm_malloc(e, (size_t)(B * Nb * Nb), "batch");
    rw = bgfm_malloc(e, (size_t)(B * Nb * (m.cfg.k ? m.cfg.k : 1)) * sizeof *rw, "batch");
    gidx = bgfm_malloc(e, (size_t)B * sizeof *gidx, "batch");
    if (!fc || !adj || !rw || !gidx || (rc = model_ws_init(&ws, &m, (int)B, e))) {
        rc = rc ? rc : BGFM_ENOMEM;
        goto done;
    }
    if (metrics && !(mf = fopen(metrics, "a"))) {
        rc = bgfm_fail(e, BGFM_EIO, "cannot append to %s", metrics);
        goto done;
    }
    optim_cfg oc = o->opt;
    oc.total_steps = o->epochs * pl.spe;
    log_progress pg;
    log_progress_start(ctx, &pg, "pretrain", "steps", oc.total_steps);
    double t0 = MPI_Wtime(), sum_ep = 0, first = (double)NAN;
    int64_t n_ep = 0, graphs_done = 0;
    for (int64_t ep = st.epoch; ep < o->epochs && !rc; ep++) {
        plan_epoch(&pl, o->seed, ep);
        double mr = optim_mask_ratio(o->mask_r0, o->mask_r1, ep, o->epochs);
        sum_ep = 0;
        n_ep = 0;
        for (int64_t pos = ep == st.epoch ? st.pos : 0; pos < pl.spe && !rc; pos++) {
            double ts = MPI_Wtime();
            int a = pl.ord_atlas[pos];
            int64_t j = pl.ord_batch[pos], lo = j * B;
            int n = (int)(lo + B <= pl.cnt[a] ? B : pl.cnt[a] - lo);
            memcpy(gidx, pl.perm + pl.off[a] + lo, (size_t)n * sizeof *gidx);
            if ((rc = graphs_read(gs, gidx, n, fc, adj, rw, e))) break;
            model_batch bt = {amap[a], n, graphs_atlas_nodes(gs, a), fc, adj, rw, gidx};
            model_hp hp = o->hp;
            hp.seed = o->seed;
            hp.epoch = ep;
            hp.step = st.step;
            hp.mask_ratio = mr;
            model_losses ls;
            model_step(&m, &ws, &bt, &hp, &ls);
            if (!isfinite(ls.total)) {
                rc = bgfm_fail(e, BGFM_ENUMERIC, "pretrain: loss is %g at step %lld (epoch %lld); "
                               "lower lr or raise warmup", ls.total, (long long)st.step, (long long)ep);
                break;
            }
            double gn = optim_clip(m.g, m.n_params, oc.clip);
            double lr = optim_lr(&oc, st.step);
            optim_adamw(&op, m.w, m.g, lr, &oc);
            st.step++;
            st.epoch = pos + 1 == pl.spe ? ep + 1 : ep;
            st.pos = pos + 1 == pl.spe ? 0 : pos + 1;
            graphs_done += n;
            sum_ep += ls.total;
            n_ep++;
            double dt = MPI_Wtime() - ts;
            if (mf)
                metrics_line(mf, o->stage_name, st.step, ep, &ls, gn, lr, dt > 0 ? n / dt : 0,
                             graphs_atlas_name(gs, a), mr);
            log_progress_update(ctx, &pg, st.step);
            if (o->checkpoint_every > 0 && st.step % o->checkpoint_every == 0) {
                snprintf(path, sizeof path, "%s/ckpt-%lld.h5", dir, (long long)st.step);
                st.config = (char *)(uintptr_t)o->config_text;
                rc = ckpt_save(path, &m, &op, &st, e);
                st.config = NULL;
                if (!rc) rc = prune_ckpts(dir, o->keep_checkpoints, e);
            }
            if (!rc && o->stop_after > 0 && st.step >= o->stop_after) {
                rc = bgfm_fail(e, BGFM_SIGNALLED, "pretrain: stopped after step %lld as asked "
                               "(BGFM_TEST_STOP_AFTER); rerun to resume", (long long)st.step);
            }
        }
        if (!rc && isnan(first) && n_ep) first = sum_ep / (double)n_ep;
    }
    log_progress_end(ctx, &pg, st.step);
    if (!rc) {
        snprintf(path, sizeof path, "%s/final.h5", outdir);
        st.config = (char *)(uintptr_t)o->config_text;
        rc = ckpt_save(path, &m, &op, &st, e);
        st.config = NULL;
    }
    if (res) {
        res->steps = st.step;
        res->graphs = graphs_done;
        res->first_loss = first;
        res->last_loss = n_ep ? sum_ep / (double)n_ep : (double)NAN;
        res->seconds = MPI_Wtime() - t0;
    }
done:
    if (mf) fclose(mf);
    free(steps);
    free(amap);
    free(fc);
    free(adj);
    free(rw);
    free(gidx);
    plan_free(&pl);
    model_ws_free(&ws);
    optim_free(&op);
    model_free(&m);
    graphs_close(&gs);
    return rc;
}

int pretrain_train(bgfm_ctx *ctx, const pretrain_opts *o, const char *graphs, const char *outdir,
                   const char *metrics, pretrain_result *res) {
    int rc = ctx->rank == 0 ? train_local(ctx, o, graphs, outdir, metrics, res) : 0;
    return bgfm_ctx_agree(ctx, rc);
}

/* ---- the stage kind --------------------------------------------------------------- */
static const bgfm_opt pretrain_opts_table[] = {
    {"mode", BGFM_OPT_ENUM, "gmae+gcl", 1, 0, "gmae|gcl|gmae+gcl",
     "objective: masked autoencoding, contrastive, or both (model.md section 5)"},
    {"epochs", BGFM_OPT_INT, "10", 1, 1e9, NULL, "passes over every graph of every atlas"},
    {"batch_size", BGFM_OPT_INT, "32", 2, 65536, NULL, "graphs per step (all of one atlas)"},
    {"lr", BGFM_OPT_REAL, "1e-3", 0, 10, NULL, "peak AdamW learning rate"},
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
    {"mask_ratio", BGFM_OPT_REAL, "0.4", 0, 1, NULL, "GMAE mask ratio (constant)"},
    {"mask_ratio_start", BGFM_OPT_REAL, NULL, 0, 1, NULL,
     "mask ratio of the first epoch (with mask_ratio_end: linear per epoch)"},
    {"mask_ratio_end", BGFM_OPT_REAL, NULL, 0, 1, NULL, "mask ratio of the last epoch"},
    {"mask_columns", BGFM_OPT_BOOL, "true", 1, 0, NULL,
     "zero masked nodes' columns in visible inputs (no-leak rule)"},
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
    {"init", BGFM_OPT_STR, "auto", 1, 0, NULL,
     "auto: final.h5 of the nearest earlier pretrain stage if any, else random; random; or "
     "the name of an earlier pretrain stage"},
};

/* Index of the stage that `init` points at, -1 for random init. */
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
    bgfm_fail(e, BGFM_EUSAGE, "%s:%d:%d: stage '%s': init: '%s' is not 'auto', 'random' or the "
              "name of an earlier pretrain stage", p->file, s->line, s->col, s->name, v);
    return -2;
}

static char *init_file(const bgfm_pipeline *p, const bgfm_stage_cfg *s, int j, bgfm_err *e) {
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
    return init_stage(p, s, e) == -2 ? BGFM_EUSAGE : 0;
}

static char **pretrain_extra_inputs(const bgfm_pipeline *p, const bgfm_stage_cfg *s, bgfm_err *e) {
    char **l = bgfm_calloc(e, 2, sizeof *l, "inputs");
    if (!l) return NULL;
    int j = init_stage(p, s, e);
    if (j >= 0 && !(l[0] = init_file(p, s, j, e))) {
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
    o.mask_r0 = o.mask_r1 = params_real(w, "mask_ratio");
    if (params_has(w, "mask_ratio_start")) {
        o.mask_r0 = params_real(w, "mask_ratio_start");
        o.mask_r1 = params_real(w, "mask_ratio_end");
    }
    o.opt = (optim_cfg){params_real(w, "lr"), 0.9, 0.999, 1e-8, params_real(w, "weight_decay"),
                        params_real(w, "clip"), params_int(w, "warmup"), 0};
    o.epochs = params_int(w, "epochs");
    o.batch_size = params_int(w, "batch_size");
    o.checkpoint_every = params_int(w, "checkpoint_every");
    o.keep_checkpoints = params_int(w, "keep_checkpoints");
    o.seed = r->pipe->seed;
    o.stage_name = r->stage->name;
    const char *stop = getenv("BGFM_TEST_STOP_AFTER");
    o.stop_after = stop ? strtoll(stop, NULL, 10) : 0;
    char *init = NULL, *cfgtext = NULL, *gpath = NULL;
    size_t cl = 0;
    int rc = 0;
    int j = init_stage(r->pipe, r->stage, &ctx->err);
    if (j == -2) rc = BGFM_EUSAGE;
    if (!rc && j >= 0) {
        init = init_file(r->pipe, r->stage, j, &ctx->err);
        if (!init) rc = BGFM_ENOMEM;
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
    pretrain_result res = {0};
    if (!rc) rc = pretrain_train(ctx, &o, gpath, r->outdir, ctx->rank == 0 ? r->metrics : NULL, &res);
    r->items = (double)res.steps;
    r->items_unit = "steps";
    free(init);
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
    .consumes2 = BGFM_ART_NONE,
    .produces = BGFM_ART_CHECKPOINT,
    .rank_sensitive = 1,
    .validate = pretrain_validate,
    .run = pretrain_stage_run,
    .extra_inputs = pretrain_extra_inputs,
};
