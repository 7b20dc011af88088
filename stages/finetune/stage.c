/* stage.c: the `finetune` and `prompt` stage kinds (finetune.h, docs/adapt.md): options, then the run:
 * checkpoint and graph store, the labelled (or target) subjects and their folds (the
 * probe's, or a fold_file), and every (encoder, few-shot level, repeat, fold) cell fitted
 * data-parallel over all ranks (train.c), the scores from the test predictions, and the
 * report (report.c). Not the fit, not the head, not the report's format. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/ckpt.h"
#include "bgfm/finetune.h"
#include "bgfm/fsutil.h"
#include "bgfm/log.h"
#include "bgfm/metrics.h"
#include "bgfm/regress.h"
#include "bgfm/rng.h"

/* The options both stages have: the task, the encoders, the protocol and the optimiser
 * (LR_DEFAULT: the stage's peak learning rate). */
#define FT_OPTS_TASK                                                                            \
    {"target", BGFM_OPT_STR, NULL, 1, 0, NULL,                                                  \
     "numeric participants.tsv column to regress (squared error); unset: classify the label "   \
     "(cross-entropy)"},                                                                        \
    {"target_subjects", BGFM_OPT_ENUM, "labelled", 1, 0, "labelled|all",                        \
     "regression: the labelled subjects with a value, or every subject with a value"},          \
    {"encoders", BGFM_OPT_LIST, "[pretrained, random_init]", 1, 0, NULL,                        \
     "start from the pretrained checkpoint and/or a random initialisation of the same shape"}
#define FT_OPTS_PROTOCOL(LR_DEFAULT)                                                            \
    {"folds", BGFM_OPT_INT, "5", 2, 1000, NULL,                                                 \
     "cross-validation folds, grouped by subject, stratified by label (the probe's folds)"},    \
    {"repeats", BGFM_OPT_INT, "1", 1, 100, NULL, "fold draws (the probe's draws 0..repeats-1)"}, \
    {"seed", BGFM_OPT_INT, NULL, 0, 9e18, NULL,                                                 \
     "seed of folds, few-shot subsets, validation splits and batches (default: the pipeline "   \
     "seed)"},                                                                                  \
    {"few_shot", BGFM_OPT_LIST, "[all]", 1, 0, NULL,                                            \
     "training subjects per class (regression: in all) of the few-shot curve (integers >= 1 "   \
     "or all; the probe's subsets)"},                                                           \
    {"fold_file", BGFM_OPT_STR, NULL, 1, 0, NULL,                                               \
     "TSV with columns participant_id and fold (0, 1, ...): these folds instead of drawn ones " \
     "(repeats becomes 1); relative to the pipeline file"},                                     \
    {"epochs", BGFM_OPT_INT, "30", 1, 1e6, NULL, "most passes over the training graphs per fit"}, \
    {"patience", BGFM_OPT_INT, "5", 1, 1e6, NULL,                                               \
     "stop a fit after this many epochs without a lower validation loss"},                      \
    {"val_fraction", BGFM_OPT_REAL, "0.2", 0, 0.9, NULL,                                        \
     "share of the training fold's subjects (per class) held out to choose the epoch; 0: no "   \
     "validation, the last epoch is kept"},                                                     \
    {"batch_size", BGFM_OPT_INT, "16", 1, 65536, NULL,                                          \
     "graphs per step (all of one atlas), split over the ranks"},                               \
    {"lr", BGFM_OPT_REAL, LR_DEFAULT, 0, 10, NULL, "peak AdamW learning rate (head and readout)"}, \
    {"warmup", BGFM_OPT_INT, "0", 0, 1e9, NULL, "linear warm-up steps, then cosine decay to 0"}, \
    {"weight_decay", BGFM_OPT_REAL, "1e-4", 0, 10, NULL, "decoupled weight decay (matrices)"},  \
    {"clip", BGFM_OPT_REAL, "5.0", 0, 1e9, NULL, "global gradient-norm clip (0: off)"},         \
    {"dropout", BGFM_OPT_REAL, "0.1", 0, 0.95, NULL, "the encoder's dropout while training"},   \
    {"checkpoint_every", BGFM_OPT_INT, "1", 0, 1e9, NULL,                                       \
     "epochs between checkpoints of the run (0: only when stopped by a signal); a rerun "       \
     "resumes from the newest"}

static const bgfm_opt ft_opts_table[] = {
    FT_OPTS_TASK,
    {"train", BGFM_OPT_ENUM, "all", 1, 0, "all|head|last_blocks",
     "what is trained: the whole encoder and the head, the head only, or the last_blocks "
     "encoder blocks, the readout and the head"},
    {"last_blocks", BGFM_OPT_INT, "1", 1, MODEL_MAX_LAYERS, NULL,
     "train: last_blocks: how many of the last encoder blocks are trained"},
    {"llrd", BGFM_OPT_REAL, "1.0", 0.01, 1, NULL,
     "layer-wise learning-rate decay: the readout gets lr, block l lr * llrd^(L - l), the "
     "input layer and embeddings lr * llrd^(L + 1)"},
    FT_OPTS_PROTOCOL("1e-3"),
};

static const bgfm_opt pr_opts_table[] = {
    FT_OPTS_TASK,
    {"prompts", BGFM_OPT_LIST, "[feature, edge]", 1, 0, NULL,
     "graph prompts per atlas in front of the frozen encoder: feature (N x H added to the input "
     "layer's output), edge (symmetric logits P: weights sigmoid(P + edge_margin (2A - 1)))"},
    {"edge_margin", BGFM_OPT_REAL, "6.0", 0.5, 30, NULL,
     "edge prompt: the logit of an edge (+) and of a non-edge (-) at P = 0"},
    {"meta", BGFM_OPT_ENUM, "none", 1, 0, "none|reptile",
     "reptile: meta-learn the prompts' and head's initialisation (first-order) on (column, "
     "atlas) tasks over the subjects a cell does not use, then adapt from it"},
    {"meta_tasks", BGFM_OPT_LIST, "[]", 1, 0, NULL,
     "meta: categorical participants.tsv columns with the label's number of classes; tasks "
     "= these columns x the store's atlases (empty: the label column)"},
    {"meta_datasets", BGFM_OPT_LIST, "[]", 1, 0, NULL,
     "meta: inputs.datasets names (not probed by this stage, e.g. role pretrain): tasks = "
     "their labels x the store's atlases, over their subjects only (instead of meta_tasks)"},
    {"meta_steps", BGFM_OPT_INT, "40", 1, 1e6, NULL, "meta: Reptile episodes (outer steps) per cell"},
    {"meta_inner_steps", BGFM_OPT_INT, "4", 1, 1e4, NULL,
     "meta: AdamW steps (lr) on one episode's task"},
    {"meta_shots", BGFM_OPT_INT, "4", 1, 1e6, NULL, "meta: subjects per class in an episode"},
    {"meta_lr", BGFM_OPT_REAL, "0.5", 0, 1, NULL,
     "meta: Reptile's outer step size, annealed linearly to 0 over meta_steps"},
    FT_OPTS_PROTOCOL("1e-2"),
};

/* few_shot list -> sizes (0 = all); count or -1 (bad item in *bad) */
static int parse_k(const bgfm_value *v, int64_t *k, const char **bad) {
    int n = 0;
    for (int i = 0; i < v->n_list; i++) {
        const char *s = v->list[i];
        char *end = NULL;
        *bad = s;
        if (n >= PROBE_MAX_K) return -1;
        if (!strcmp(s, "all")) {
            k[n++] = 0;
            continue;
        }
        errno = 0;
        long long x = strtoll(s, &end, 10);
        if (errno || !end || *end || end == s || x < 1 || x > 1000000000LL) return -1;
        k[n++] = x;
    }
    return n;
}

static int ft_validate(const bgfm_pipeline *p, const bgfm_stage_cfg *s, bgfm_err *e) {
    int64_t k[PROBE_MAX_K];
    const char *bad = "";
    int n = parse_k(params_value(&s->with, "few_shot"), k, &bad);
    if (n <= 0)
        return config_stage_fail(e, p, s, "few_shot", "few_shot item '%s' is not an integer >= 1 "
                                 "or 'all' (1..%d items)", n < 0 ? bad : "", PROBE_MAX_K);
    const bgfm_value *en = params_value(&s->with, "encoders");
    if (en->n_list < 1)
        return config_stage_fail(e, p, s, "encoders", "encoders needs pretrained, random_init "
                                 "or both");
    for (int i = 0; i < en->n_list; i++)
        if (strcmp(en->list[i], "pretrained") && strcmp(en->list[i], "random_init"))
            return config_stage_fail(e, p, s, "encoders", "encoders item '%s' is not pretrained "
                                     "or random_init", en->list[i]);
    const char *t = params_str(&s->with, "target");
    if (t && (!strcmp(t, "participant_id") || !*t))
        return config_stage_fail(e, p, s, "target", "'%s' cannot be a target", t);
    return 0;
}

static int pr_validate(const bgfm_pipeline *p, const bgfm_stage_cfg *s, bgfm_err *e) {
    int rc = ft_validate(p, s, e);
    if (rc) return rc;
    const bgfm_value *v = params_value(&s->with, "prompts");
    if (v->n_list < 1)
        return config_stage_fail(e, p, s, "prompts", "prompts needs feature, edge or both");
    for (int i = 0; i < v->n_list; i++)
        if (strcmp(v->list[i], "feature") && strcmp(v->list[i], "edge"))
            return config_stage_fail(e, p, s, "prompts", "prompts item '%s' is not feature or "
                                     "edge", v->list[i]);
    if (strcmp(params_str(&s->with, "meta"), "none") && params_has(&s->with, "target"))
        return config_stage_fail(e, p, s, "meta", "meta: reptile learns classification tasks; "
                                 "it cannot be combined with target (regression)");
    const bgfm_value *md = params_value(&s->with, "meta_datasets");
    if (md->n_list && !strcmp(params_str(&s->with, "meta"), "none"))
        return config_stage_fail(e, p, s, "meta_datasets", "meta_datasets needs meta: reptile");
    if (md->n_list && params_value(&s->with, "meta_tasks")->n_list)
        return config_stage_fail(e, p, s, "meta_datasets", "meta_datasets and meta_tasks exclude "
                                 "each other: tasks come from other datasets' labels or from "
                                 "columns of the probed subjects, not both");
    if (md->n_list > PROBE_MAX_TARGETS)
        return config_stage_fail(e, p, s, "meta_datasets", "at most %d meta_datasets",
                                 PROBE_MAX_TARGETS);
    for (int i = 0; i < md->n_list; i++) {
        if (!config_dataset_find(p, md->list[i]))
            return config_stage_fail(e, p, s, "meta_datasets", "meta_datasets item '%s' is not "
                                     "a dataset of inputs.datasets", md->list[i]);
        if (config_dataset_role(p, md->list[i]) & BGFM_ROLE_DOWNSTREAM)
            return config_stage_fail(e, p, s, "meta_datasets", "meta_datasets item '%s' has role "
                                     "downstream or both, so this stage evaluates on its "
                                     "subjects; meta-train on datasets with role pretrain (or "
                                     "use meta_tasks)", md->list[i]);
        for (int j = 0; j < i; j++)
            if (!strcmp(md->list[i], md->list[j]))
                return config_stage_fail(e, p, s, "meta_datasets", "meta_datasets names '%s' "
                                         "twice", md->list[i]);
    }
    if (params_value(&s->with, "meta_tasks")->n_list > PROBE_MAX_TARGETS)
        return config_stage_fail(e, p, s, "meta_tasks", "at most %d meta_tasks columns",
                                 PROBE_MAX_TARGETS);
    return 0;
}

static char **ft_extra_inputs(const bgfm_pipeline *p, const bgfm_stage_cfg *s, bgfm_err *e) {
    char **out = bgfm_calloc(e, 3, sizeof *out, "finetune input list");
    if (!out) return NULL;
    int n = 0;
    if (params_has(&s->with, "fold_file") && !(out[n++] = probe_fold_file_path(p, s, e))) {
        free(out);
        return NULL;
    }
    int meta = s->kind == &bgfm_stage_prompt && strcmp(params_str(&s->with, "meta"), "none") &&
               !params_value(&s->with, "meta_datasets")->n_list;
    if (params_has(&s->with, "target") || meta) { /* meta: the task columns' table */
        if (p->participants) out[n] = bgfm_strdup(e, p->participants);
        else if (p->bids) out[n] = fs_join(p->bids, "participants.tsv", e);
        if (!out[n] && (p->participants || p->bids)) {
            for (int i = 0; i < n; i++) free(out[i]);
            free(out);
            return NULL;
        }
    }
    return out;
}

static void read_opts(const bgfm_stage_run *r, int prompt, ft_opts *o) {
    const bgfm_params *w = &r->stage->with;
    memset(o, 0, sizeof *o);
    o->kind = prompt ? "prompt" : "finetune";
    o->prompt = prompt;
    o->target = params_str(w, "target");
    o->regress = o->target != NULL;
    o->all_targets = !strcmp(params_str(w, "target_subjects"), "all");
    o->folds = (int)params_int(w, "folds");
    o->repeats = (int)params_int(w, "repeats");
    o->seed = params_has(w, "seed") ? (uint64_t)params_int(w, "seed") : r->pipe->seed;
    const char *bad = NULL;
    o->n_k = parse_k(params_value(w, "few_shot"), o->k, &bad);
    BGFM_ASSERT(o->n_k > 0);
    const bgfm_value *en = params_value(w, "encoders");
    for (int i = 0; i < en->n_list; i++) o->enc[strcmp(en->list[i], "pretrained") ? 1 : 0] = 1;
    if (prompt) { /* the encoder frozen: it trains like `train: head`, plus the prompts */
        const bgfm_value *pv = params_value(w, "prompts");
        for (int i = 0; i < pv->n_list; i++) {
            o->pfeat |= !strcmp(pv->list[i], "feature");
            o->pedge |= !strcmp(pv->list[i], "edge");
        }
        o->margin = params_real(w, "edge_margin");
        o->meta = strcmp(params_str(w, "meta"), "none") != 0;
        o->train = FT_TRAIN_HEAD, o->last_blocks = 0, o->llrd = 1;
    } else {
        const char *tr = params_str(w, "train");
        o->train = !strcmp(tr, "head") ? FT_TRAIN_HEAD : !strcmp(tr, "all") ? FT_TRAIN_ALL : FT_TRAIN_LAST;
        o->last_blocks = (int)params_int(w, "last_blocks");
        o->llrd = params_real(w, "llrd");
    }
    o->epochs = params_int(w, "epochs");
    o->patience = params_int(w, "patience");
    o->val_fraction = params_real(w, "val_fraction");
    o->batch_size = params_int(w, "batch_size");
    o->dropout = (float)params_real(w, "dropout");
    o->opt = (optim_cfg){params_real(w, "lr"), 0.9, 0.999, 1e-8, params_real(w, "weight_decay"),
                         params_real(w, "clip"), params_int(w, "warmup"), 0};
    o->checkpoint_every = params_int(w, "checkpoint_every");
    const bgfm_test_hooks *h = r->ctx->hooks; /* test driver only (ctx.h) */
    o->stop_after = h ? h->stop_after : 0;
    o->ckpt_pause_ms = h ? h->ckpt_pause_ms : 0;
}

/* ---- inputs -------------------------------------------------------------------------- */
typedef struct ft_inputs {
    char *ckpt, *gpath, *fold_file;
    graphs_store *gs;
    model mp, mr; /* pretrained, random_init */
    int *amap;
} ft_inputs;

static void inputs_free(ft_inputs *in) {
    model_free(&in->mp);
    model_free(&in->mr);
    graphs_close(&in->gs);
    free(in->ckpt);
    free(in->gpath);
    free(in->fold_file);
    free(in->amap);
    memset(in, 0, sizeof *in);
}

/* Checkpoint, graph store, both encoders, atlas map (this rank's; not collective). */
static int open_inputs(bgfm_stage_run *r, const ft_opts *o, ft_inputs *in, bgfm_err *e) {
    int rc = 0;
    if (!r->upstream || !r->upstream2)
        return bgfm_fail(e, BGFM_EUSAGE, "stage '%s': %s needs an earlier pretrain stage "
                         "and an earlier connectivity stage", r->stage->name, o->kind);
    if (!(in->ckpt = fs_join(r->upstream, "final.h5", e))) return BGFM_ENOMEM;
    if (!ckpt_is_complete(in->ckpt))
        return bgfm_fail(e, BGFM_EDATA, "%s: %s is not a complete checkpoint; rerun the "
                         "pretrain stage", o->kind, in->ckpt);
    if (!(in->gpath = fs_join(r->upstream2, "graphs/index.h5", e))) return BGFM_ENOMEM;
    if (!fs_exists(in->gpath)) {
        free(in->gpath);
        if (!(in->gpath = bgfm_strdup(e, r->upstream2))) return BGFM_ENOMEM;
    }
    if (params_has(&r->stage->with, "fold_file") &&
        !(in->fold_file = probe_fold_file_path(r->pipe, r->stage, e)))
        return BGFM_ENOMEM;
    if ((rc = graphs_open(in->gpath, &in->gs, e))) return rc;
    if ((rc = ckpt_load(in->ckpt, &in->mp, NULL, NULL, e))) return rc;
    if ((rc = model_init(&in->mr, &in->mp.cfg, e))) return rc;
    model_init_params(&in->mr, r->pipe->seed); /* pretraining's own init, like the probe's */
    model_copy_buffers(&in->mr, &in->mp);
    if (o->train == FT_TRAIN_LAST && o->last_blocks > in->mp.cfg.L)
        return config_stage_fail(e, r->pipe, r->stage, "last_blocks", "last_blocks: %d, but the "
                                 "encoder of %s has %d blocks", o->last_blocks, in->ckpt,
                                 in->mp.cfg.L);
    int A = graphs_n_atlases(in->gs);
    if (!(in->amap = bgfm_calloc(e, (size_t)A + 1, sizeof *in->amap, "atlas map")))
        return BGFM_ENOMEM;
    for (int a = 0; a < A; a++) {
        in->amap[a] = model_atlas_find(&in->mp, graphs_atlas_name(in->gs, a));
        if (in->amap[a] < 0 || in->mp.cfg.atlas_nodes[in->amap[a]] != graphs_atlas_nodes(in->gs, a) ||
            in->mp.cfg.k != graphs_rwse_steps(in->gs))
            return bgfm_fail(e, BGFM_EDATA, "%s: atlas '%s' of %s is not in the checkpoint "
                             "%s (or has another node count / RWSE steps); %s on the atlases "
                             "the model was pretrained on", o->kind, graphs_atlas_name(in->gs, a),
                             in->gpath, in->ckpt, o->prompt ? "prompts exist only" : "adapt");
    }
    return 0;
}

/* Subjects, classes or target values, and the folds (this rank's; not collective). */
static int prepare(bgfm_stage_run *r, ft_opts *o, ft_inputs *in, probe_data *d, bgfm_err *e) {
    bids_table tab;
    memset(&tab, 0, sizeof tab);
    int tcol[1] = {-1}, rc = 0;
    char *const names[1] = {(char *)(uintptr_t)o->target};
    if (o->regress) {
        char *path = r->pipe->participants ? bgfm_strdup(e, r->pipe->participants)
                                           : fs_join(r->pipe->bids ? r->pipe->bids : ".",
                                                     "participants.tsv", e);
        if (!path) return BGFM_ENOMEM;
        rc = probe_targets_open(path, names, 1, &tab, tcol, e);
        free(path);
        if (rc) return rc;
    }
    d->pipe = r->pipe; /* roles of inputs.datasets: only downstream datasets, like the probe */
    rc = probe_collect(in->gs, in->gpath, o->regress ? &tab : NULL, tcol, o->regress ? names : NULL,
                       o->regress, o->regress && o->all_targets, d, e);
    bids_table_free(&tab);
    d->tname = NULL; /* names[] ends here; the report uses o->target */
    if (rc) return rc;
    if (!o->regress && d->K < 2)
        return bgfm_fail(e, BGFM_EDATA, "%s: %s has %d label value(s) among its graphs; "
                         "classification needs at least 2 (or set `target` for regression)",
                         o->kind, in->gpath, d->K);
    if (d->K > 256)
        return bgfm_fail(e, BGFM_EDATA, "%s: %d classes; at most 256", o->kind, d->K);
    int64_t ns = d->ns;
    uint8_t *has = bgfm_malloc(e, (size_t)(ns ? ns : 1), "folds");
    if (!has) return BGFM_ENOMEM;
    for (int64_t s = 0; s < ns; s++) has[s] = o->regress ? !isnan(d->y[s]) : d->cls[s] >= 0;
    if (in->fold_file) o->repeats = 1;
    d->R = o->repeats;
    int **dst = o->regress ? &d->rfold : &d->fold;
    *dst = bgfm_malloc(e, (size_t)(d->R * ns + 1) * sizeof **dst, "folds");
    if (!*dst) rc = BGFM_ENOMEM;
    if (!rc && in->fold_file) {
        rc = probe_fold_file(in->fold_file, ns, d->sid, has, *dst, &o->folds, e);
    } else {
        for (int q = 0; q < d->R && !rc; q++)
            rc = o->regress ? regress_folds(ns, has, o->folds, o->seed, q, o->target,
                                            *dst + (int64_t)q * ns, e)
                            : probe_folds(ns, d->cls, d->K, o->folds, o->seed, q,
                                          *dst + (int64_t)q * ns, e);
    }
    d->F = o->folds;
    free(has);
    return rc;
}

/* ---- cells --------------------------------------------------------------------------- */
/* Roles of every subject in cell (level k, repeat r, fold f): the probe's few-shot subset
 * of the training fold trains, except a validation share drawn per class with rng(seed,
 * RNG_ADAPT, 2^62, f + 2^32 r, class); fold f is the test fold. */
static int cell_roles(const ft_opts *o, const probe_data *d, const int *fold, int f, int64_t k,
                      int r, uint8_t *use, int64_t *list, uint8_t *role, bgfm_err *e) {
    int64_t ns = d->ns;
    int rc = o->regress ? regress_few_shot(ns, fold, f, k, o->seed, r, use, e)
                        : probe_few_shot(ns, d->cls, fold, d->K, f, k, o->seed, r, use, e);
    if (rc) return rc;
    for (int64_t s = 0; s < ns; s++)
        role[s] = fold[s] < 0 ? FT_OUT : fold[s] == f ? FT_TEST : use[s] ? FT_TRAIN : FT_OUT;
    int groups = o->regress ? 1 : d->K;
    for (int c = 0; c < groups; c++) {
        int64_t m = 0;
        for (int64_t s = 0; s < ns; s++)
            if (role[s] == FT_TRAIN && (o->regress || d->cls[s] == c)) list[m++] = s;
        rng_stream rs;
        rng_init(&rs, o->seed, RNG_ADAPT, (uint64_t)1 << 62, (uint64_t)f + ((uint64_t)r << 32),
                 (uint64_t)c);
        rng_shuffle_i64(&rs, list, m);
        int64_t nv = (int64_t)floor(o->val_fraction * (double)m + 0.5);
        if (o->val_fraction > 0 && nv == 0 && m >= 2) nv = 1;
        if (nv >= m) nv = m - 1;
        for (int64_t j = 0; j < nv; j++) role[list[j]] = FT_VAL;
    }
    return 0;
}

/* Scores of the test subjects of a cell: AUC, accuracy, balanced accuracy (classification)
 * or R2 (regression: predictions back in the target's units). */
static int cell_scores(const ft_opts *o, const probe_data *d, const uint8_t *role,
                       const double *oof, double *ysd, double m3[FT_NMET], int64_t *idx,
                       double *buf, bgfm_err *e) {
    int64_t n = 0, K = o->regress ? 1 : d->K;
    for (int64_t s = 0; s < d->ns; s++)
        if (role[s] == FT_TEST) idx[n++] = s;
    if (o->regress) {
        double *y = buf, *p = buf + n;
        for (int64_t i = 0; i < n; i++) y[i] = d->y[idx[i]], p[i] = oof[idx[i]];
        m3[0] = regress_r2(y, p, n);
        m3[1] = regress_pearson(y, p, n);
        m3[2] = (double)NAN;
        (void)ysd;
        return 0;
    }
    int *ys = (int *)(void *)(buf + n * K), *pr = ys + n;
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        for (int64_t k = 0; k < K; k++) {
            buf[i * K + k] = oof[idx[i] * K + k];
            if (buf[i * K + k] > buf[i * K + best]) best = (int)k;
        }
        ys[i] = d->cls[idx[i]];
        pr[i] = best;
    }
    int rc = metrics_auc_ovr(buf, ys, n, (int)K, &m3[0], e);
    m3[1] = metrics_accuracy(pr, ys, n);
    m3[2] = metrics_balanced_accuracy(pr, ys, n, (int)K);
    return rc;
}

typedef struct cell_buf {
    uint8_t *use, *role;
    int64_t *list;
    double *ys, *oof, *sbuf;
} cell_buf;

static void cell_buf_free(cell_buf *b) {
    free(b->use);
    free(b->role);
    free(b->list);
    free(b->ys);
    free(b->oof);
    free(b->sbuf);
}

/* standardised targets from the training subjects' mean and sd (regression) */
static void standardise(const probe_data *d, const uint8_t *role, double *ys, double *mu,
                        double *sd) {
    double s = 0, q = 0;
    int64_t n = 0;
    for (int64_t i = 0; i < d->ns; i++)
        if (role[i] == FT_TRAIN) s += d->y[i], n++;
    *mu = n ? s / (double)n : 0;
    for (int64_t i = 0; i < d->ns; i++)
        if (role[i] == FT_TRAIN) q += (d->y[i] - *mu) * (d->y[i] - *mu);
    *sd = n ? sqrt(q / (double)n) : 1;
    if (!(*sd > 1e-12)) *sd = 1;
    for (int64_t i = 0; i < d->ns; i++) ys[i] = isnan(d->y[i]) ? 0 : (d->y[i] - *mu) / *sd;
}

/* After every epoch: a stop request (SIGTERM/SIGUSR1 on any rank, or the test hook
 * after N epochs) or checkpoint_every writes a checkpoint; a stop then ends the run
 * with exit 75. */
typedef struct hook_arg {
    ft_ckpt *ck;
    const ft_opts *o;
} hook_arg;

static int epoch_hook(void *arg, ft_trainer *t, const ft_fit_out *out, int64_t step, int stopped) {
    hook_arg *h = arg;
    bgfm_ctx *ctx = h->ck->ctx;
    h->ck->seq++;
    int sig = bgfm_ctx_stop_requested(ctx);
    int rc = bgfm_ctx_agree(ctx, sig < 0 ? BGFM_EMPI : 0);
    int stop = sig > 0 || (h->o->stop_after > 0 && h->ck->seq >= h->o->stop_after);
    if (!rc && (stop || (h->o->checkpoint_every > 0 && h->ck->seq % h->o->checkpoint_every == 0)))
        rc = ft_ckpt_save(h->ck, t, out, step, stopped);
    if (!rc && stop)
        rc = bgfm_fail(&ctx->err, BGFM_SIGNALLED, "%s: stop requested (%s); checkpoint "
                       "%s/ckpt-%lld.h5 written; rerun the same command to resume", h->o->kind,
                       sig > 0 ? "SIGTERM/SIGUSR1" : "BGFM_TEST_STOP_AFTER", h->ck->dir,
                       (long long)h->ck->seq);
    return bgfm_ctx_agree(ctx, rc);
}

static int run_cells(bgfm_ctx *ctx, const ft_opts *o, ft_inputs *in, const probe_data *d,
                     const ft_meta *meta, ft_results *p, const char *ckdir) {
    bgfm_err *e = &ctx->err;
    int64_t ns = d->ns, K = o->regress ? 1 : d->K;
    ft_trainer t;
    cell_buf b;
    memset(&b, 0, sizeof b);
    int rc = ft_trainer_init(&t, ctx, o, in->gs, d, in->amap, &in->mp, (int)K);
    size_t z = (size_t)(ns ? ns : 1);
    b.use = bgfm_malloc(e, z, "cells");
    b.role = bgfm_malloc(e, z, "cells");
    b.list = bgfm_malloc(e, z * sizeof *b.list, "cells");
    b.ys = bgfm_calloc(e, z, sizeof *b.ys, "cells");
    b.oof = bgfm_calloc(e, z * (size_t)K, sizeof *b.oof, "cells");
    b.sbuf = bgfm_calloc(e, z * (size_t)(K + 2), sizeof *b.sbuf, "cells");
    if (!rc && (!b.use || !b.role || !b.list || !b.ys || !b.oof || !b.sbuf)) rc = BGFM_ENOMEM;
    rc = bgfm_ctx_agree(ctx, rc);
    t.meta = o->meta ? meta : NULL;
    t.meta_init = ft_meta_train;
    p->trainable = t.n_trainable;
    p->prompt_params = t.pn;
    ft_ckpt ck = {ctx, ckdir, 0, -1, p};
    hook_arg ha = {&ck, o};
    ft_resume rs = {0, 0, 0};
    ft_fit_out ro;
    memset(&ro, 0, sizeof ro);
    int resumed = rc ? 0 : ft_ckpt_load(&ck, &t, &rs, &ro);
    if (resumed < 0) rc = -resumed;
    int64_t total = 0, done = 0;
    for (int en = 0; en < FT_NENC; en++) total += o->enc[en] * (int64_t)p->nk * p->R * p->F;
    log_progress pg;
    log_progress_start(ctx, &pg, o->kind, "fits", total);
    for (int en = 0; en < FT_NENC && !rc; en++) {
        if (!o->enc[en]) continue;
        const model *start = en ? &in->mr : &in->mp;
        for (int ki = 0; ki < p->nk && !rc; ki++)
            for (int r = 0; r < p->R && !rc; r++)
                for (int f = 0; f < p->F && !rc; f++) {
                    const int *fold = (o->regress ? d->rfold : d->fold) + (int64_t)r * ns;
                    /* every rank fits every cell: a rank short of memory here or in the
                     * scores below must not leave the others in the fit's collectives */
                    rc = cell_roles(o, d, fold, f, p->ks[ki], r, b.use, b.list, b.role, e);
                    if ((rc = bgfm_ctx_agree(ctx, rc))) break;
                    double mu = 0, sd = 1;
                    if (o->regress) standardise(d, b.role, b.ys, &mu, &sd);
                    int64_t c = (((int64_t)en * p->nk + ki) * p->R + r) * p->F + f;
                    if (resumed > 0 && c < ck.cell) { /* done before the checkpoint */
                        log_progress_update(ctx, &pg, ++done);
                        continue;
                    }
                    int here = resumed > 0 && c == ck.cell;
                    ft_fit_out fo;
                    memset(&fo, 0, sizeof fo);
                    if (here) fo = ro;
                    fo.val_curve = p->curve + c * o->epochs;
                    if (o->meta) { /* the pool: the subjects this cell does not use */
                        fo.read = p->mread + c * p->mw;
                        p->msubj[c] = meta->ext ? (double)meta->pool.ns : 0;
                        for (int64_t s = 0; !meta->ext && s < ns; s++)
                            p->msubj[c] += b.role[s] == FT_OUT;
                    }
                    ck.cell = c;
                    uint64_t key = ((uint64_t)ki * (uint64_t)p->R + (uint64_t)r) * (uint64_t)p->F +
                                   (uint64_t)f;
                    rc = ft_fit(&t, start, b.role, o->regress ? NULL : d->cls,
                                o->regress ? b.ys : NULL, key, here ? &rs : NULL, epoch_hook, &ha,
                                b.oof, &fo);
                    resumed = 0;
                    if (rc) break;
                    for (int64_t s = 0; o->regress && s < ns; s++)
                        if (b.role[s] == FT_TEST) b.oof[s] = b.oof[s] * sd + mu;
                    rc = cell_scores(o, d, b.role, b.oof, b.ys, p->cell + c * FT_NMET, b.list,
                                     b.sbuf, e);
                    if ((rc = bgfm_ctx_agree(ctx, rc))) break;
                    double info[FT_NINFO] = {(double)fo.best_epoch, (double)fo.epochs_run,
                                             fo.best_val, fo.seconds, (double)fo.n_train,
                                             (double)fo.n_val, (double)fo.n_test, (double)fo.steps};
                    memcpy(p->info + c * FT_NINFO, info, sizeof info);
                    if (ki == p->main_k)
                        for (int64_t s = 0; s < ns; s++)
                            if (b.role[s] == FT_TEST)
                                memcpy(p->oof + (((int64_t)en * p->R + r) * ns + s) * K,
                                       b.oof + s * K, (size_t)K * sizeof(double));
                    log_progress_update(ctx, &pg, ++done);
                }
    }
    log_progress_end(ctx, &pg, done);
    ft_trainer_free(&t);
    cell_buf_free(&b);
    return rc;
}

static void results_free(ft_results *p) {
    free(p->cell);
    free(p->info);
    free(p->curve);
    free(p->oof);
    free(p->keff);
    free(p->mread);
    free(p->msubj);
    memset(p, 0, sizeof *p);
}

static int results_init(ft_results *p, const ft_opts *o, const probe_data *d, const ft_meta *meta,
                        bgfm_err *e) {
    memset(p, 0, sizeof *p);
    p->R = o->repeats, p->F = o->folds, p->K = o->regress ? 1 : d->K, p->ns = d->ns;
    p->mw = d->ns + (o->meta && meta->ext ? meta->pool.ns : 0);
    p->epochs = o->epochs;
    memcpy(p->ks, o->k, (size_t)o->n_k * sizeof *p->ks);
    p->nk = o->n_k;
    p->main_k = -1;
    for (int i = 0; i < o->n_k; i++)
        if (o->k[i] == 0 && p->main_k < 0) p->main_k = i;
    if (p->main_k < 0) p->ks[p->nk] = 0, p->main_k = p->nk++;
    int64_t cells = (int64_t)FT_NENC * p->nk * p->R * p->F;
    p->cell = bgfm_calloc(e, (size_t)(cells * FT_NMET), sizeof *p->cell, "results");
    p->info = bgfm_calloc(e, (size_t)(cells * FT_NINFO), sizeof *p->info, "results");
    p->curve = bgfm_malloc(e, (size_t)(cells * o->epochs) * sizeof *p->curve, "results");
    p->oof = bgfm_calloc(e, (size_t)(FT_NENC * p->R * d->ns * p->K + 1), sizeof *p->oof, "results");
    p->keff = bgfm_calloc(e, (size_t)p->nk, sizeof *p->keff, "results");
    if (o->meta) {
        p->mread = bgfm_calloc(e, (size_t)(cells * p->mw + 1), sizeof *p->mread, "results");
        p->msubj = bgfm_calloc(e, (size_t)cells, sizeof *p->msubj, "results");
        if (!p->mread || !p->msubj) return BGFM_ENOMEM;
    }
    uint8_t *use = bgfm_malloc(e, (size_t)(d->ns ? d->ns : 1), "results");
    if (!p->cell || !p->info || !p->curve || !p->oof || !p->keff || !use) {
        free(use);
        return BGFM_ENOMEM;
    }
    for (int64_t i = 0; i < cells * o->epochs; i++) p->curve[i] = (double)NAN;
    int rc = 0;
    for (int ki = 0; ki < p->nk && !rc; ki++) { /* mean training-fold subjects used per class */
        double s = 0;
        for (int r = 0; r < p->R && !rc; r++)
            for (int f = 0; f < p->F && !rc; f++) {
                const int *fold = (o->regress ? d->rfold : d->fold) + (int64_t)r * d->ns;
                rc = o->regress
                         ? regress_few_shot(d->ns, fold, f, p->ks[ki], o->seed, r, use, e)
                         : probe_few_shot(d->ns, d->cls, fold, d->K, f, p->ks[ki], o->seed, r,
                                          use, e);
                for (int64_t q = 0; q < d->ns; q++) s += use[q];
            }
        p->keff[ki] = s / ((double)p->R * p->F * (o->regress ? 1 : d->K));
    }
    free(use);
    return rc;
}

/* The meta-learning tasks (meta_datasets, or meta_tasks columns, default the label
 * column) and options. */
static int meta_prepare(bgfm_stage_run *r, const ft_inputs *in, const probe_data *d, ft_meta *m,
                        bgfm_err *e) {
    const bgfm_params *w = &r->stage->with;
    const bgfm_value *v = params_value(w, "meta_tasks"), *md = params_value(w, "meta_datasets");
    const char *cols[PROBE_MAX_TARGETS];
    int n = v->n_list;
    for (int i = 0; i < n; i++) cols[i] = v->list[i];
    if (n == 0) cols[n++] = r->pipe->label_column;
    m->steps = params_int(w, "meta_steps");
    m->inner = params_int(w, "meta_inner_steps");
    m->shots = params_int(w, "meta_shots");
    m->eps = params_real(w, "meta_lr");
    if (md->n_list) {
        const char *names[PROBE_MAX_TARGETS];
        for (int i = 0; i < md->n_list; i++) names[i] = md->list[i];
        return ft_meta_prepare_datasets(in->gs, in->gpath, names, md->n_list, d, m, e);
    }
    for (int i = 0; i < n; i++) /* the evaluated label among the tasks: not a k-shot result */
        m->own_label |= r->pipe->label_column && !strcmp(cols[i], r->pipe->label_column);
    char *path = r->pipe->participants ? bgfm_strdup(e, r->pipe->participants)
                                       : fs_join(r->pipe->bids ? r->pipe->bids : ".",
                                                 "participants.tsv", e);
    if (!path) return BGFM_ENOMEM;
    int rc = ft_meta_prepare(path, cols, n, d, m, e);
    free(path);
    return rc;
}

static int adapt_run(bgfm_stage_run *r, int prompt) {
    bgfm_ctx *ctx = r->ctx;
    bgfm_err *e = &ctx->err;
    ft_opts o;
    read_opts(r, prompt, &o);
    ft_inputs in;
    memset(&in, 0, sizeof in);
    probe_data d;
    memset(&d, 0, sizeof d);
    ft_results p;
    memset(&p, 0, sizeof p);
    double t0 = MPI_Wtime();
    int rc = open_inputs(r, &o, &in, e);
    if (!rc) rc = prepare(r, &o, &in, &d, e);
    ft_meta meta;
    memset(&meta, 0, sizeof meta);
    if (!rc && o.meta) rc = meta_prepare(r, &in, &d, &meta, e);
    if (!rc) rc = results_init(&p, &o, &d, &meta, e);
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) goto done;
    int few = 0;
    for (int i = 0; i < o.n_k; i++) few |= o.k[i] > 0;
    if (o.meta && meta.own_label && few)
        log_warn(ctx, "%s: meta_tasks include the evaluated label '%s': meta-training reads it "
                 "for training-fold subjects beyond each cell's k per class, so the few-shot "
                 "levels are not k-shot results (prompt.json meta.k_shot: false); for a k-shot "
                 "claim meta-train on other columns or on meta_datasets",
                 o.kind, r->pipe->label_column);
    if (o.meta && meta.ext)
        log_info(ctx, "%s: meta-training pool: %lld subjects (%lld graphs) of %d dataset(s), "
                 "none of them probed", o.kind, (long long)meta.pool.ns, (long long)meta.pool.nl,
                 meta.n_cols);
    log_info(ctx, "%s: %lld graphs of %lld subjects, %s, %d folds x %d repeats, train %s", o.kind,
             (long long)d.nl, (long long)d.ns, o.regress ? o.target : "label", o.folds, o.repeats,
             prompt ? "prompts + head" : params_str(&r->stage->with, "train"));
    char ckdir[4200];
    snprintf(ckdir, sizeof ckdir, "%.4000s/checkpoints", r->outdir);
    rc = bgfm_ctx_agree(ctx, ctx->rank == 0 ? fs_mkdirs(ckdir, e) : 0);
    if (rc) goto done;
    bgfm_signals_install(); /* SIGTERM / SIGUSR1: checkpoint after the epoch, exit 75 */
    rc = run_cells(ctx, &o, &in, &d, &meta, &p, ckdir);
    bgfm_signals_restore();
    if (rc) goto done;
    p.wall = MPI_Wtime() - t0;
    if (ctx->rank == 0) {
        ft_report_ctx c = {r, &o, &d, &p, in.ckpt, in.fold_file, in.mp.n_train, p.prompt_params,
                           o.meta ? &meta : NULL, in.gs};
        rc = ft_write_report(&c, e);
    }
    rc = bgfm_ctx_agree(ctx, rc);
    r->items = ctx->rank == 0 ? (double)d.ns : 0;
    r->items_unit = "subjects";
done:
    results_free(&p);
    ft_meta_free(&meta);
    probe_data_free(&d);
    inputs_free(&in);
    return rc;
}

static int ft_run(bgfm_stage_run *r) { return adapt_run(r, 0); }
static int pr_run(bgfm_stage_run *r) { return adapt_run(r, 1); }

const bgfm_stage_kind bgfm_stage_prompt = {
    .name = "prompt",
    .summary = "graph prompt tuning: learned feature and edge prompts per atlas in front of the "
               "frozen pretrained (and a random-init) encoder, plus a task head, per grouped CV "
               "fold; the finetune protocol -> report/prompt.json, predictions.csv",
    .opts = pr_opts_table,
    .n_opts = (int)(sizeof pr_opts_table / sizeof pr_opts_table[0]),
    .consumes = BGFM_ART_CHECKPOINT,
    .consumes2 = BGFM_ART_GRAPHS,
    .produces = BGFM_ART_REPORT,
    .rank_sensitive = 1,
    .validate = pr_validate,
    .run = pr_run,
    .extra_inputs = ft_extra_inputs,
};

const bgfm_stage_kind bgfm_stage_finetune = {
    .name = "finetune",
    .summary = "fine-tune the pretrained (and a random-init) encoder with a task head per "
               "grouped CV fold; epoch chosen on an inner validation split; test fold once -> "
               "report/finetune.json, predictions.csv",
    .opts = ft_opts_table,
    .n_opts = (int)(sizeof ft_opts_table / sizeof ft_opts_table[0]),
    .consumes = BGFM_ART_CHECKPOINT,
    .consumes2 = BGFM_ART_GRAPHS,
    .produces = BGFM_ART_REPORT,
    .rank_sensitive = 1,
    .validate = ft_validate,
    .run = ft_run,
    .extra_inputs = ft_extra_inputs,
};
