/* stage.c: the `probe` stage kind (probe.h, docs/probe.md): options, then the run:
 * inputs and protocol checks, embeddings and fc_pca features (data.c), the grouped
 * cross-validation cells of classification and regression spread over the ranks, the
 * representation diagnostics, and the report (write.c).
 * Not the classifier (logreg.c), the ridge (ridge.c), the folds and cells (probe.c,
 * regress.c), or `bgfm report`. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/ckpt.h"
#include "bgfm/fsutil.h"
#include "bgfm/h5io.h"
#include "bgfm/json.h"
#include "bgfm/log.h"
#include "bgfm/metrics.h"
#include "bgfm/mline.h"
#include "bgfm/pca.h"
#include "bgfm/probe_stage.h"
#include "bgfm/regress.h"
#include "bgfm/ridge.h"
#include "bgfm/strlist.h"

static const bgfm_opt probe_opts_table[] = {
    {"folds", BGFM_OPT_INT, "5", 2, 1000, NULL,
     "cross-validation folds, grouped by subject (stratified by label for classification)"},
    {"repeats", BGFM_OPT_INT, "3", 1, 100, NULL,
     "fold draws: every metric is the mean and sd over repeats x folds"},
    {"seed", BGFM_OPT_INT, NULL, 0, 9e18, NULL,
     "seed of the fold assignment and few-shot subsets (default: the pipeline seed)"},
    {"C", BGFM_OPT_REAL, "1.0", 1e-12, 1e12, NULL,
     "inverse L2 strength: minimise 0.5 |W|^2 + C * sum of cross-entropies"},
    {"few_shot", BGFM_OPT_LIST, "[2, 4, 8, all]", 1, 0, NULL,
     "labelled subjects per class in the training fold (integers >= 1 or all)"},
    {"pca_components", BGFM_OPT_INT, "32", 1, 100000, NULL,
     "components of fc_pca, the PCA of the FC triangle fitted on the graphs pretraining read "
     "(capped at the fitting graphs - 1)"},
    {"targets", BGFM_OPT_LIST, "[]", 1, 0, NULL,
     "numeric participants.tsv columns predicted by ridge regression (R2, Pearson r)"},
    {"target_subjects", BGFM_OPT_ENUM, "labelled", 1, 0, "labelled|all",
     "subjects whose targets are predicted: the labelled ones, or all with a value"},
    {"few_shot_n", BGFM_OPT_LIST, "[16, 48, all]", 1, 0, NULL,
     "training subjects of the regression few-shot curve (integers >= 3 or all)"},
    {"finetune", BGFM_OPT_BOOL, "false", 1, 0, NULL,
     "not an option of the probe (true is rejected): use the finetune stage kind"},
    {"checkpoint", BGFM_OPT_STR, NULL, 1, 0, NULL,
     "final.h5 of another pipeline (relative to the pipeline file's directory) instead of "
     "the earlier pretrain stage's: its atlases must include this pipeline's, with the same "
     "node counts and RWSE steps (docs/corpus.md)"},
    {"transductive", BGFM_OPT_BOOL, "false", 1, 0, NULL,
     "with inputs.datasets: accept probed subjects that pretraining read (recorded in "
     "probe.json's audit); false: such an overlap stops the probe (exit 3). inputs.bids "
     "pipelines are transductive as before"},
    {"fold_file", BGFM_OPT_STR, NULL, 1, 0, NULL,
     "TSV with columns participant_id and fold (0, 1, ...): these folds instead of drawn ones "
     "(one draw: repeats becomes 1, folds the file's count); relative to the pipeline file"},
    {"regress_out", BGFM_OPT_LIST, "[]", 1, 0, NULL,
     "confounds regressed out of every feature set inside each cross-validation fold (fitted "
     "on the training subjects only): motion (the scan's mean framewise displacement), "
     "site (one-hot); docs/probe.md \"Regressing out confounds\""},
    {"max_iter", BGFM_OPT_INT, "1000", 1, 1e7, NULL, "L-BFGS iterations per fit"},
    {"tol", BGFM_OPT_REAL, "1e-6", 0, 1, NULL, "stop a fit when max |gradient| <= tol"},
};

/* few_shot / few_shot_n list -> sizes (0 = all), each >= lo; count or -1 (bad item in *bad) */
static int parse_k(const bgfm_value *v, int64_t lo, int64_t *k, const char **bad) {
    int n = 0;
    for (int i = 0; i < v->n_list; i++) {
        const char *s = v->list[i];
        char *end = NULL;
        if (n >= PROBE_MAX_K) {
            *bad = s;
            return -1;
        }
        if (!strcmp(s, "all")) {
            k[n++] = 0;
            continue;
        }
        errno = 0;
        long long x = strtoll(s, &end, 10);
        if (errno || !end || *end || end == s || x < lo || x > 1000000000LL) {
            *bad = s;
            return -1;
        }
        k[n++] = x;
    }
    return n;
}

static int validate_targets(const bgfm_pipeline *p, const bgfm_stage_cfg *s, bgfm_err *e) {
    const bgfm_value *t = params_value(&s->with, "targets");
    if (t->n_list > PROBE_MAX_TARGETS)
        return config_stage_fail(e, p, s, "targets", "at most %d targets", PROBE_MAX_TARGETS);
    for (int i = 0; i < t->n_list; i++) {
        const char *n = t->list[i];
        if (!strcmp(n, "participant_id") || !strcmp(n, "mean"))
            return config_stage_fail(e, p, s, "targets", "'%s' cannot be a target (%s)", n,
                                     strcmp(n, "mean") ? "it names the subjects"
                                                       : "the report uses it for the mean");
        for (int j = 0; j < i; j++)
            if (!strcmp(n, t->list[j]))
                return config_stage_fail(e, p, s, "targets", "target '%s' is listed twice", n);
    }
    return 0;
}

static int check_ckpt(const bgfm_pipeline *p, const bgfm_stage_cfg *s, bgfm_err *e);

static int probe_validate(const bgfm_pipeline *p, const bgfm_stage_cfg *s, bgfm_err *e) {
    if (params_bool(&s->with, "finetune"))
        return config_stage_fail(e, p, s, "finetune",
                                 "finetune: true is not an option of the probe; fine-tuning is "
                                 "the stage kind `finetune` (docs/adapt.md): remove the key and "
                                 "add a stage {name: ft, uses: finetune}");
    int64_t k[PROBE_MAX_K];
    const char *keys[2] = {"few_shot", "few_shot_n"};
    const int64_t lo[2] = {1, 3};
    for (int q = 0; q < 2; q++) {
        const char *bad = NULL;
        int n = parse_k(params_value(&s->with, keys[q]), lo[q], k, &bad);
        if (n < 0)
            return config_stage_fail(e, p, s, keys[q], "%s item '%s' is not an integer >= %lld "
                                     "or 'all' (at most %d items)", keys[q], bad ? bad : "",
                                     (long long)lo[q], PROBE_MAX_K);
        if (n == 0)
            return config_stage_fail(e, p, s, keys[q], "%s needs at least one item, e.g. [%s]",
                                     keys[q], q ? "16, 48, all" : "2, 4, 8, all");
    }
    const bgfm_value *ro = params_value(&s->with, "regress_out");
    for (int i = 0; i < ro->n_list; i++) {
        if (strcmp(ro->list[i], "motion") && strcmp(ro->list[i], "site"))
            return config_stage_fail(e, p, s, "regress_out", "regress_out item '%s' is not a "
                                     "confound the probe knows: motion or site", ro->list[i]);
        for (int j = 0; j < i; j++)
            if (!strcmp(ro->list[i], ro->list[j]))
                return config_stage_fail(e, p, s, "regress_out", "'%s' is listed twice",
                                         ro->list[i]);
    }
    int rc = validate_targets(p, s, e);
    return rc ? rc : check_ckpt(p, s, e);
}

/* `checkpoint:` resolved against the pipeline file's folder; NULL with e unset when the
 * key is not given. */
static char *ckpt_option(const bgfm_pipeline *p, const bgfm_stage_cfg *s, bgfm_err *e) {
    const char *c = params_str(&s->with, "checkpoint");
    if (!c) return NULL;
    return c[0] == '/' ? bgfm_strdup(e, c) : fs_join(p->basedir, c, e);
}

static int probe_supplies(const bgfm_stage_cfg *s, bgfm_artifact a) {
    return a == BGFM_ART_CHECKPOINT && params_str(&s->with, "checkpoint") != NULL;
}

/* A `checkpoint:` from elsewhere, before any work: complete, and holding every atlas of
 * the pipeline with the RWSE steps of its connectivity stage (node counts are compared
 * when the probe runs, against the graphs). Exit 3 naming what differs. */
static int check_ckpt(const bgfm_pipeline *p, const bgfm_stage_cfg *s, bgfm_err *e) {
    char *path = ckpt_option(p, s, e);
    if (!path) return e->code;
    const bgfm_value *v = params_value(&s->with, "checkpoint");
    bgfm_pos at = {v->line, v->col};
    char key[300];
    snprintf(key, sizeof key, "stages.%s.with.checkpoint", s->name);
    model_cfg mc;
    memset(&mc, 0, sizeof mc);
    bgfm_err le = {0};
    int rc = 0;
    if (!ckpt_is_complete(path)) {
        rc = config_path_fail(e, p, key, at, BGFM_EDATA, "'%s' is not a complete bgfm "
                              "checkpoint (the final.h5 of a pretrain stage); fix the path or "
                              "finish that pipeline first", path);
    } else {
        hid_t f = h5io_open(MPI_COMM_SELF, path, &le);
        rc = f < 0 ? (le.code ? le.code : BGFM_EIO) : ckpt_read_arch(f, "/model", &mc, path, &le);
        if (f >= 0) h5io_close(&f, path, &le);
        if (rc) rc = config_path_fail(e, p, key, at, rc, "%s", le.msg);
    }
    char have[1024] = "";
    for (int a = 0; !rc && a < mc.n_atlases; a++) {
        size_t o = strlen(have);
        snprintf(have + o, sizeof have - o, "%s%s (%d nodes)", a ? ", " : "", mc.atlas[a],
                 mc.atlas_nodes[a]);
    }
    for (int a = 0; !rc && a < p->n_atlases; a++) {
        int found = 0;
        for (int b = 0; b < mc.n_atlases; b++) found |= !strcmp(mc.atlas[b], p->atlases[a].name);
        if (!found)
            rc = config_path_fail(e, p, key, at, BGFM_EDATA, "atlas '%s' of this pipeline is not "
                                  "in the checkpoint %s, whose atlases are %s; probe only atlases "
                                  "the model was pretrained on", p->atlases[a].name, path, have);
    }
    for (int j = 0; !rc && j < p->n_stages && &p->stages[j] != s; j++) {
        const bgfm_stage_cfg *c = &p->stages[j];
        if (strcmp(c->uses, "connectivity") || params_int(&c->with, "rwse_steps") == mc.k) continue;
        rc = config_path_fail(e, p, key, at, BGFM_EDATA, "stage '%s' makes graphs with %lld RWSE "
                              "steps but the checkpoint %s was pretrained with %d; set its "
                              "rwse_steps to %d", c->name, (long long)params_int(&c->with,
                              "rwse_steps"), path, mc.k, mc.k);
    }
    free(path);
    return rc;
}

char *probe_fold_file_path(const bgfm_pipeline *p, const bgfm_stage_cfg *s, bgfm_err *e) {
    const char *v = params_str(&s->with, "fold_file");
    if (!v) return NULL;
    return v[0] == '/' ? bgfm_strdup(e, v) : fs_join(p->basedir, v, e);
}

/* The files the manifest hashes: a checkpoint from elsewhere (rerun on change), the fold
 * file, the subject map, and the participants tables when targets are read from them
 * (every dataset's with inputs.datasets). Packed (the list ends at its first NULL). */
static char **probe_extra_inputs(const bgfm_pipeline *p, const bgfm_stage_cfg *s, bgfm_err *e) {
    int nd = p->n_datasets, targets = params_value(&s->with, "targets")->n_list > 0;
    char **out = bgfm_calloc(e, (size_t)nd + 5, sizeof *out, "probe input list");
    if (!out) return NULL;
    int n = 0;
    if ((out[n] = ckpt_option(p, s, e))) n++;
    if (!e->code && params_has(&s->with, "fold_file") && (out[n] = probe_fold_file_path(p, s, e)))
        n++;
    if (!e->code && p->subject_map && (out[n] = bgfm_strdup(e, p->subject_map))) n++;
    for (int d = 0; !e->code && targets && d < nd; d++)
        if ((out[n] = bgfm_strdup(e, p->datasets[d].participants))) n++;
    if (!e->code && targets && nd == 0 && (p->participants || p->bids)) {
        out[n] = p->participants ? bgfm_strdup(e, p->participants)
                                 : fs_join(p->bids, "participants.tsv", e);
        if (out[n]) n++;
    }
    if (e->code) {
        strlist_free(out, n);
        return NULL;
    }
    return out;
}

static void read_opts(const bgfm_stage_run *r, probe_opts *o) {
    const bgfm_params *w = &r->stage->with;
    memset(o, 0, sizeof *o);
    o->folds = (int)params_int(w, "folds");
    o->repeats = (int)params_int(w, "repeats");
    o->seed = params_has(w, "seed") ? (uint64_t)params_int(w, "seed") : r->pipe->seed;
    o->lr = (logreg_opts){params_real(w, "C"), (int)params_int(w, "max_iter"),
                          params_real(w, "tol"), 1};
    o->pca_components = (int)params_int(w, "pca_components");
    const char *bad = NULL;
    o->n_k = parse_k(params_value(w, "few_shot"), 1, o->k, &bad);
    o->n_n = parse_k(params_value(w, "few_shot_n"), 3, o->n, &bad);
    BGFM_ASSERT(o->n_k > 0 && o->n_n > 0); /* validate() checked them */
    const bgfm_value *t = params_value(w, "targets");
    o->n_targets = t->n_list;
    o->targets = t->list;
    o->all_targets = !strcmp(params_str(w, "target_subjects"), "all");
    o->transductive = params_bool(w, "transductive");
    const bgfm_value *ro = params_value(w, "regress_out");
    for (int i = 0; i < ro->n_list; i++) {
        if (!strcmp(ro->list[i], "motion")) o->regress_motion = 1;
        if (!strcmp(ro->list[i], "site")) o->regress_site = 1;
    }
}

/* ---- inputs -------------------------------------------------------------------------- */
static char *graphs_path(const char *up, bgfm_err *e) {
    const char *cand[] = {"index.h5", "graphs/index.h5"};
    for (int i = 0; i < 2; i++) {
        char *p = fs_join(up, cand[i], e);
        if (!p) return NULL;
        if (fs_exists(p)) return p;
        free(p);
    }
    return bgfm_strdup(e, up);
}

typedef struct pinputs {
    char *ckpt, *gpath;
    graphs_store *gs;
    model mp, mr;
    int *amap;
} pinputs;

static void pinputs_free(pinputs *in) {
    model_free(&in->mp);
    model_free(&in->mr);
    graphs_close(&in->gs);
    free(in->ckpt);
    free(in->gpath);
    free(in->amap);
    memset(in, 0, sizeof *in);
}

/* Checkpoint, graph store, both encoders, atlas map (this rank's; not collective). */
static int open_inputs(bgfm_stage_run *r, pinputs *in, bgfm_err *e) {
    int rc = 0;
    in->ckpt = ckpt_option(r->pipe, r->stage, e); /* checkpoint: a model from elsewhere */
    if (!in->ckpt && e->code) return e->code;
    if ((!r->upstream && !in->ckpt) || !r->upstream2)
        return bgfm_fail(e, BGFM_EUSAGE, "stage '%s': probe needs an earlier pretrain stage (or "
                         "`checkpoint:`) and an earlier connectivity stage", r->stage->name);
    if (!in->ckpt && !(in->ckpt = fs_join(r->upstream, "final.h5", e))) return BGFM_ENOMEM;
    if (!ckpt_is_complete(in->ckpt))
        return bgfm_fail(e, BGFM_EDATA, "probe: %s is not a complete checkpoint; rerun the "
                         "pretrain stage", in->ckpt);
    if (!(in->gpath = graphs_path(r->upstream2, e))) return BGFM_ENOMEM;
    if ((rc = graphs_open(in->gpath, &in->gs, e))) return rc;
    if ((rc = ckpt_load(in->ckpt, &in->mp, NULL, NULL, e))) return rc;
    if ((rc = model_init(&in->mr, &in->mp.cfg, e))) return rc;
    model_init_params(&in->mr, r->pipe->seed); /* pretraining's own init (model.md 5) */
    model_copy_buffers(&in->mr, &in->mp);      /* the same input normalisation (a statistic) */
    int A = graphs_n_atlases(in->gs);
    if (!(in->amap = bgfm_calloc(e, (size_t)A + 1, sizeof *in->amap, "atlas map")))
        return BGFM_ENOMEM;
    for (int a = 0; a < A; a++) {
        in->amap[a] = model_atlas_find(&in->mp, graphs_atlas_name(in->gs, a));
        if (in->amap[a] < 0 || in->mp.cfg.atlas_nodes[in->amap[a]] != graphs_atlas_nodes(in->gs, a) ||
            in->mp.cfg.k != graphs_rwse_steps(in->gs))
            return bgfm_fail(e, BGFM_EDATA, "probe: atlas '%s' of %s is not in the checkpoint %s "
                             "(or has another node count / RWSE steps); probe graphs of the "
                             "atlases the model was pretrained on", graphs_atlas_name(in->gs, a),
                             in->gpath, in->ckpt);
    }
    return 0;
}

/* With inputs.datasets: one table of the target columns over every dataset's table, its
 * rows named "<dataset>/<participant_id>" like the probe's subjects (each table checked by
 * probe_targets_open: the columns exist, the values are numbers or missing). */
static int corpus_targets(const bgfm_pipeline *p, const probe_opts *o, bids_table *t, int *tcol,
                          bgfm_err *e) {
    int NT = o->n_targets, nc = NT + 1;
    memset(t, 0, sizeof *t);
    t->n_cols = nc;
    t->cols = bgfm_calloc(e, (size_t)nc, sizeof *t->cols, "targets");
    int rc = t->cols && (t->path = bgfm_strdup(e, "inputs.datasets")) ? 0 : BGFM_ENOMEM;
    for (int c = 0; !rc && c < nc; c++)
        if (!(t->cols[c] = bgfm_strdup(e, c ? o->targets[c - 1] : "participant_id"))) rc = BGFM_ENOMEM;
    for (int d = 0; !rc && d < p->n_datasets; d++) {
        bids_table one;
        int col[PROBE_MAX_TARGETS];
        if ((rc = probe_targets_open(p->datasets[d].participants, o->targets, NT, &one, col, e)))
            break;
        char **nv = bgfm_realloc(e, t->cells,
                                 (size_t)((t->n_rows + one.n_rows) * nc + 1) * sizeof *nv,
                                 "target table cells");
        if (!nv) rc = BGFM_ENOMEM;
        else t->cells = nv;
        for (int64_t r = 0; !rc && r < one.n_rows; r++, t->n_rows++) {
            char **row = t->cells + t->n_rows * nc;
            const char *id = one.cells[r * one.n_cols + one.id_col];
            size_t l = strlen(p->datasets[d].name) + strlen(id) + 2;
            for (int c = 0; c < nc; c++) row[c] = NULL;
            if ((row[0] = bgfm_malloc(e, l, "targets"))) snprintf(row[0], l, "%s/%s", p->datasets[d].name, id);
            for (int c = 1; c < nc && row[0]; c++)
                if (!(row[c] = bgfm_strdup(e, one.cells[r * one.n_cols + col[c - 1]]))) rc = BGFM_ENOMEM;
            if (!row[0]) rc = BGFM_ENOMEM;
        }
        bids_table_free(&one);
    }
    for (int q = 0; q < NT; q++) tcol[q] = q + 1;
    if (rc) bids_table_free(t);
    return rc;
}

/* The subject map (inputs.subject_map) against the datasets' tables. */
static int load_map(const bgfm_pipeline *p, corpus_map *m, bgfm_err *e) {
    bids_table *tabs = NULL;
    int rc = corpus_tables_read(p, &tabs, e);
    if (!rc) rc = corpus_map_read(p->subject_map, p, tabs, m, e);
    corpus_tables_free(tabs, p->n_datasets);
    return rc;
}

/* The leakage audit; with inputs.datasets a probed subject that pretraining read stops
 * the probe unless the stage says transductive: true (docs/corpus.md). */
static int audit(bgfm_stage_run *r, const probe_opts *o, pinputs *in, probe_data *d,
                 bgfm_err *e) {
    probe_audit *a = &d->audit;
    int rc = d->external
                 ? probe_audit_build(in->gs, NULL, 0, d->pre_keys, d->n_pre_keys, d->g, d->nl,
                                     &d->map, a, e)
                 : probe_audit_build(in->gs, d->pre, d->n_pre, NULL, 0, d->g, d->nl, &d->map, a, e);
    if (rc || r->pipe->n_datasets == 0 || a->n_overlap == 0 || o->transductive) return rc;
    char some[600] = "";
    for (int64_t i = 0, k = 0; i < a->n && k < 5; i++)
        if (a->rows[i].overlap && (!i || strcmp(a->rows[i].subject, a->rows[i - 1].subject))) {
            size_t l = strlen(some);
            snprintf(some + l, sizeof some - l, "%s'%s'", k++ ? ", " : "", a->rows[i].subject);
        }
    return bgfm_fail(e, BGFM_EDATA, "probe: %lld probed subject(s) were read by pretraining "
                     "(%s%s; subjects of inputs.subject_map count as one); give each dataset one "
                     "role (pretrain or downstream) and check the subject map, or set "
                     "`transductive: true` in stage '%s' to accept the overlap (recorded in "
                     "probe.json)", (long long)a->n_overlap, some, a->n_overlap > 5 ? ", ..." : "",
                     r->stage->name);
}

/* fold_file: the file's folds for classification and every target, one draw */
static int file_folds(bgfm_stage_run *r, probe_opts *o, probe_data *d, bgfm_err *e) {
    char *path = probe_fold_file_path(r->pipe, r->stage, e);
    int64_t ns = d->ns;
    uint8_t *need = bgfm_malloc(e, (size_t)(ns ? ns : 1), "folds");
    int rc = path && need ? 0 : BGFM_ENOMEM, F = 0;
    o->repeats = d->R = 1;
    d->fold = bgfm_malloc(e, (size_t)(ns + 1) * sizeof *d->fold, "folds");
    d->rfold = bgfm_malloc(e, (size_t)(d->NT * ns + 1) * sizeof *d->rfold, "folds");
    if (!d->fold || !d->rfold) rc = BGFM_ENOMEM;
    for (int64_t s = 0; s < ns && !rc; s++) need[s] = d->cls[s] >= 0;
    if (!rc) rc = probe_fold_file(path, ns, d->sid, need, d->fold, &F, e);
    o->folds = d->F = F;
    for (int t = 0; t < d->NT && !rc; t++) {
        for (int64_t s = 0; s < ns; s++) need[s] = !isnan(d->y[(int64_t)t * ns + s]);
        int Ft = 0;
        rc = probe_fold_file(path, ns, d->sid, need, d->rfold + (int64_t)t * ns, &Ft, e);
        if (!rc && Ft != F)
            rc = bgfm_fail(e, BGFM_EDATA, "%s: the subjects with target '%s' fall into %d folds, "
                           "the labelled ones into %d; give both the same folds", path,
                           d->tname[t], Ft, F);
    }
    free(need);
    free(path);
    return rc;
}

/* Probed subjects, targets, protocol, audit and folds (this rank's; not collective). */
static int prepare(bgfm_stage_run *r, probe_opts *o, pinputs *in, probe_data *d,
                   bgfm_err *e) {
    bids_table tab;
    memset(&tab, 0, sizeof tab);
    int tcol[PROBE_MAX_TARGETS];
    int rc = 0;
    if (o->n_targets > 0 && r->pipe->n_datasets > 0) {
        rc = corpus_targets(r->pipe, o, &tab, tcol, e);
        if (rc) return rc;
    } else if (o->n_targets > 0) {
        char *path = r->pipe->participants ? bgfm_strdup(e, r->pipe->participants)
                                           : fs_join(r->pipe->bids ? r->pipe->bids : ".",
                                                     "participants.tsv", e);
        if (!path) return BGFM_ENOMEM;
        rc = probe_targets_open(path, o->targets, o->n_targets, &tab, tcol, e);
        free(path);
        if (rc) return rc;
    }
    d->pipe = r->pipe; /* roles of inputs.datasets: only downstream datasets are probed */
    if (r->pipe->subject_map && (rc = load_map(r->pipe, &d->map, e))) {
        bids_table_free(&tab);
        return rc;
    }
    rc = probe_collect(in->gs, in->gpath, o->n_targets ? &tab : NULL, tcol, o->targets,
                       o->n_targets, o->all_targets, d, e);
    bids_table_free(&tab);
    d->external = params_str(&r->stage->with, "checkpoint") != NULL;
    if (!rc) rc = d->external ? probe_protocol_external(in->ckpt, in->gs, d, e)
                              : probe_protocol(in->ckpt, in->gs, d, e);
    if (!rc) rc = audit(r, o, in, d, e);
    if (rc) return rc;
    if (params_has(&r->stage->with, "fold_file")) return file_folds(r, o, d, e);
    d->R = o->repeats;
    d->F = o->folds;
    int64_t ns = d->ns;
    d->fold = bgfm_malloc(e, (size_t)(d->R * ns + 1) * sizeof *d->fold, "folds");
    d->rfold = bgfm_malloc(e, (size_t)(d->NT * d->R * ns + 1) * sizeof *d->rfold, "folds");
    uint8_t *has = bgfm_malloc(e, (size_t)(ns ? ns : 1), "folds");
    if (!d->fold || !d->rfold || !has) rc = BGFM_ENOMEM;
    for (int q = 0; q < d->R && !rc; q++)
        rc = probe_folds(ns, d->cls, d->K, d->F, o->seed, q, d->fold + (int64_t)q * ns, e);
    for (int t = 0; t < d->NT && !rc; t++) {
        for (int64_t s = 0; s < ns; s++) has[s] = !isnan(d->y[(int64_t)t * ns + s]);
        for (int q = 0; q < d->R && !rc; q++)
            rc = regress_folds(ns, has, d->F, o->seed, q, d->tname[t],
                               d->rfold + ((int64_t)t * d->R + q) * ns, e);
    }
    free(has);
    return rc;
}

/* ---- results ------------------------------------------------------------------------- */
static void results_free(probe_results *p) {
    free(p->cell);
    free(p->oof);
    free(p->keff);
    free(p->rcell);
    free(p->rpred);
    free(p->edim);
    free(p->sshare);
    free(p->lshare);
    free(p->tshare);
    memset(p, 0, sizeof *p);
}

/* Sizes, the main row (`all`, appended when the list lacks it), effective k. */
static int results_init(probe_results *p, const probe_opts *o, const probe_data *d, int nv,
                        bgfm_err *e) {
    p->nv = nv;
    p->F = o->folds;
    p->R = o->repeats;
    p->K = d->K;
    p->ns = d->ns;
    p->n_klist = o->n_k;
    memcpy(p->ks, o->k, (size_t)o->n_k * sizeof *p->ks);
    p->main_k = -1;
    for (int i = 0; i < o->n_k; i++)
        if (o->k[i] == 0 && p->main_k < 0) p->main_k = i;
    p->nk = o->n_k;
    if (p->main_k < 0) p->ks[p->nk] = 0, p->main_k = p->nk++;
    p->NT = d->NT;
    p->n_nlist = o->n_n;
    memcpy(p->nsz, o->n, (size_t)o->n_n * sizeof *p->nsz);
    p->main_n = -1;
    for (int i = 0; i < o->n_n; i++)
        if (o->n[i] == 0 && p->main_n < 0) p->main_n = i;
    p->nn = o->n_n;
    if (p->main_n < 0) p->nsz[p->nn] = 0, p->main_n = p->nn++;
    int64_t cells = (int64_t)nv * PROBE_NFEAT * p->nk * p->R * p->F * PROBE_NMET;
    int64_t rcells = (int64_t)p->NT * nv * PROBE_NFEAT * p->nn * p->R * p->F * PROBE_NREG;
    p->cell = bgfm_calloc(e, (size_t)cells, sizeof *p->cell, "results");
    p->oof = bgfm_calloc(e, (size_t)((int64_t)nv * PROBE_NFEAT * p->R * d->ns * d->K + 1),
                         sizeof *p->oof, "results");
    p->keff = bgfm_calloc(e, (size_t)p->nk, sizeof *p->keff, "results");
    p->rcell = bgfm_calloc(e, (size_t)(rcells + 1), sizeof *p->rcell, "results");
    p->rpred = bgfm_calloc(e, (size_t)((int64_t)p->NT * nv * PROBE_NFEAT * p->R * d->ns + 1),
                           sizeof *p->rpred, "results");
    p->edim = bgfm_calloc(e, (size_t)d->A * PROBE_NFEAT, sizeof *p->edim, "results");
    p->sshare = bgfm_calloc(e, (size_t)d->A * PROBE_NFEAT, sizeof *p->sshare, "results");
    p->lshare = bgfm_calloc(e, (size_t)d->A * PROBE_NFEAT, sizeof *p->lshare, "results");
    p->tshare = bgfm_calloc(e, (size_t)d->A * PROBE_NFEAT, sizeof *p->tshare, "results");
    uint8_t *use = bgfm_malloc(e, (size_t)(d->ns ? d->ns : 1), "few-shot");
    if (!p->cell || !p->oof || !p->keff || !p->rcell || !p->rpred || !p->edim || !p->sshare ||
        !p->lshare || !p->tshare || !use) {
        free(use);
        return BGFM_ENOMEM;
    }
    int rc = 0;
    for (int ki = 0; ki < p->nk && !rc; ki++) { /* mean training subjects per class used */
        double s = 0;
        for (int r = 0; r < p->R && !rc; r++)
            for (int f = 0; f < p->F && !rc; f++) {
                rc = probe_few_shot(d->ns, d->cls, d->fold + (int64_t)r * d->ns, d->K, f,
                                    p->ks[ki], o->seed, r, use, e);
                for (int64_t q = 0; q < d->ns; q++) s += use[q];
            }
        p->keff[ki] = s / ((double)p->R * p->F * d->K);
    }
    free(use);
    return rc;
}

/* ---- the cells ----------------------------------------------------------------------- */
typedef struct pcells {
    const probe_opts *o;
    const probe_data *d;
    const probe_view *v;
    probe_results *p;
    int vi, t;
    int64_t task0;      /* first task number of this (view, features) block */
    int rank, size;
    const double *MC;   /* (ns, q) the subjects' confounds (regress_out), q 0: none */
    int q;
} pcells;

/* *out: the confounds of view v's samples that regress_out names, (v->n, *q) in the
 * order motion, then the site's one-hot (the motion and site feature sets' own columns);
 * NULL and *q = 0 without any. 0 or BGFM_ENOMEM. */
static int view_confounds(const probe_opts *o, const probe_data *d, const probe_view *v,
                          double **out, int *q, bgfm_err *e) {
    int64_t qm = o->regress_motion ? v->D[PROBE_FEAT_MOTION] : 0;
    int64_t qs = o->regress_site ? v->D[PROBE_FEAT_SITE] : 0;
    *q = 0;
    *out = NULL;
    if (!qm && !qs) return 0;
    double *C = bgfm_malloc(e, (size_t)((v->n ? v->n : 1) * (qm + qs)) * sizeof *C, "confounds");
    double *M = qm ? probe_view_matrix(d, v, PROBE_FEAT_MOTION, e) : NULL;
    double *S = qs ? probe_view_matrix(d, v, PROBE_FEAT_SITE, e) : NULL;
    if (!C || (qm && !M) || (qs && !S)) {
        free(C);
        C = NULL;
    }
    for (int64_t i = 0; C && i < v->n; i++) {
        for (int64_t c = 0; c < qm; c++) C[i * (qm + qs) + c] = M[i * qm + c];
        for (int64_t c = 0; c < qs; c++) C[i * (qm + qs) + qm + c] = S[i * qs + c];
    }
    free(M);
    free(S);
    if (!C) return BGFM_ENOMEM;
    *q = (int)(qm + qs);
    *out = C;
    return 0;
}

/* Regression cells of one (view, features): subject means, then every target, few-shot
 * size, repeat and fold whose task number falls to this rank. */
static int reg_cells(const pcells *c, const double *X, uint8_t *use, bgfm_err *e) {
    const probe_data *d = c->d;
    probe_results *p = c->p;
    int64_t D = c->v->D[c->t], task = c->task0 + (int64_t)p->nk * p->R * p->F;
    double *M = probe_subject_means(c->v, d->ns, X, D, e), al[RIDGE_GRID];
    if (!M) return BGFM_ENOMEM;
    ridge_alpha_grid(D, RIDGE_GRID, al);
    int rc = 0;
    for (int tg = 0; tg < d->NT && !rc; tg++)
        for (int ni = 0; ni < p->nn && !rc; ni++)
            for (int r = 0; r < p->R && !rc; r++) {
                const int *fold = d->rfold + ((int64_t)tg * p->R + r) * d->ns;
                double *pred = ni == p->main_n ? probe_rpred_at(p, tg, c->vi, c->t, r) : NULL;
                for (int f = 0; f < p->F && !rc; f++, task++) {
                    if (task % c->size != c->rank) continue;
                    rc = regress_few_shot(d->ns, fold, f, p->nsz[ni], c->o->seed, r, use, e);
                    if (!rc)
                        rc = regress_cell(M, d->ns, D, c->MC, c->q, d->y + (int64_t)tg * d->ns,
                                          fold, f, use, c->v->present, al, RIDGE_GRID, pred,
                                          probe_rcell_at(p, tg, c->vi, c->t, ni, r, f), e);
                }
            }
    free(M);
    return rc;
}

/* Every (view, features, level, repeat, fold) cell, dealt round-robin to the ranks; each
 * cell is done wholly by one rank, so the sums below add zeros to its numbers. */
static int run_cells(bgfm_ctx *ctx, const probe_opts *o, const probe_data *d,
                     const probe_view *views, probe_results *p) {
    bgfm_err *e = &ctx->err;
    int64_t ncls = (int64_t)p->nk * p->R * p->F, per = ncls + (int64_t)p->NT * p->nn * p->R * p->F;
    uint8_t *use = bgfm_malloc(e, (size_t)(d->ns ? d->ns : 1), "few-shot");
    int rc = use ? 0 : BGFM_ENOMEM;
    for (int v = 0; v < p->nv && !rc; v++) {
        /* the view's confounds (regress_out), per sample and per subject: once per view */
        int q = 0;
        double *C = NULL, *MC = NULL;
        rc = view_confounds(o, d, &views[v], &C, &q, e);
        if (!rc && q && p->NT && !(MC = probe_subject_means(&views[v], d->ns, C, q, e)))
            rc = BGFM_ENOMEM;
        for (int t = 0; t < PROBE_NFEAT && !rc; t++) {
            int64_t task0 = ((int64_t)v * PROBE_NFEAT + t) * per;
            int mine = per >= ctx->size;
            for (int64_t i = 0; i < per && !mine; i++) mine = (task0 + i) % ctx->size == ctx->rank;
            if (!mine) continue;
            double *X = probe_view_matrix(d, &views[v], t, e);
            if (!X) {
                rc = BGFM_ENOMEM;
                break;
            }
            int64_t task = task0;
            for (int ki = 0; ki < p->nk && !rc; ki++)
                for (int r = 0; r < p->R && !rc; r++) {
                    const int *fold = d->fold + (int64_t)r * d->ns;
                    double *oof = ki == p->main_k ? p->oof + ((((int64_t)v * PROBE_NFEAT + t) *
                                                   p->R + r) * d->ns) * d->K : NULL;
                    for (int f = 0; f < p->F && !rc; f++, task++) {
                        if (task % ctx->size != ctx->rank) continue;
                        rc = probe_few_shot(d->ns, d->cls, fold, d->K, f, p->ks[ki], o->seed,
                                            r, use, e);
                        if (!rc)
                            rc = probe_cell(X, views[v].n, views[v].D[t], C, q, views[v].subj,
                                            d->ns, d->cls, d->K, fold, f, use, &o->lr,
                                            probe_cell_at(p, v, t, ki, r, f), oof, e);
                    }
                }
            pcells c = {o, d, &views[v], p, v, t, task0, ctx->rank, ctx->size, MC, q};
            if (!rc && p->NT) rc = reg_cells(&c, X, use, e);
            free(X);
        }
        free(C);
        free(MC);
    }
    free(use);
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc)
        rc = probe_allreduce_sum(ctx, p->cell,
                                 (int64_t)p->nv * PROBE_NFEAT * p->nk * p->R * p->F * PROBE_NMET);
    if (!rc)
        rc = probe_allreduce_sum(ctx, p->oof, (int64_t)p->nv * PROBE_NFEAT * p->R * d->ns * d->K);
    if (!rc && p->NT)
        rc = probe_allreduce_sum(ctx, p->rcell, (int64_t)p->NT * p->nv * PROBE_NFEAT * p->nn *
                                                    p->R * p->F * PROBE_NREG);
    if (!rc && p->NT)
        rc = probe_allreduce_sum(ctx, p->rpred, (int64_t)p->NT * p->nv * PROBE_NFEAT * p->R * d->ns);
    return bgfm_ctx_agree(ctx, rc);
}

/* Share of the variance of the samples X (n, D) of view v explained by a grouping of their
 * subjects, group[subject] in 0..n_groups-1 or -1 (the sample is left out): over the
 * samples with a group, NaN when fewer than 2 groups remain. */
static int share_by(const double *X, const probe_view *v, int64_t D, const int64_t *group,
                    int64_t n_groups, double *share, bgfm_err *e) {
    *share = (double)NAN;
    int64_t *gy = bgfm_malloc(e, (size_t)(v->n ? v->n : 1) * sizeof *gy, "variance share");
    if (!gy) return BGFM_ENOMEM;
    int64_t first = -1;
    int two = 0;
    for (int64_t i = 0; i < v->n; i++) {
        gy[i] = group[v->subj[i]];
        if (gy[i] >= 0 && first < 0) first = gy[i];
        else if (gy[i] >= 0 && gy[i] != first) two = 1;
    }
    int rc = two ? pca_group_share(X, v->n, D, gy, n_groups, share, e) : 0;
    free(gy);
    return rc;
}

/* Rank 0: participation ratio and the subject, label and site shares of every feature
 * set, per atlas. */
static int diagnostics(const probe_data *d, const probe_view *views, probe_results *p,
                       bgfm_err *e) {
    int64_t *cls = bgfm_malloc(e, (size_t)(d->ns ? d->ns : 1) * sizeof *cls, "variance share");
    if (!cls) return BGFM_ENOMEM;
    for (int64_t s = 0; s < d->ns; s++) cls[s] = d->cls[s];
    int rc = 0;
    for (int a = 0; a < d->A && !rc; a++)
        for (int t = 0; t < PROBE_NFEAT && !rc; t++) {
            const probe_view *v = &views[a];
            int64_t at = a * PROBE_NFEAT + t;
            double *X = probe_view_matrix(d, v, t, e);
            if (!X) {
                rc = BGFM_ENOMEM;
                break;
            }
            rc = pca_participation_ratio(X, v->n, v->D[t], &p->edim[at], e);
            if (!rc) rc = pca_group_share(X, v->n, v->D[t], v->subj, d->ns, &p->sshare[at], e);
            if (!rc) rc = share_by(X, v, v->D[t], cls, d->K, &p->lshare[at], e);
            if (!rc) rc = share_by(X, v, v->D[t], d->site, d->n_sites, &p->tshare[at], e);
            free(X);
        }
    free(cls);
    return rc;
}

/* Rank 0: a warning when head motion alone reads the label (pooled view, all labelled
 * subjects: AUC 0.6 or more, or 0.4 or less; docs/probe.md "Head motion alone") and it
 * was not regressed out: any feature set that carries motion can read the label through
 * it, as the parcellation QC of the run report says for the label itself. */
static int warn_motion(bgfm_ctx *ctx, const probe_opts *o, const probe_data *d,
                       const probe_results *p) {
    double auc, sd;
    if (probe_cls_mean_sd(p, p->nv - 1, PROBE_FEAT_MOTION, p->main_k, 0, &auc, &sd, &ctx->err))
        return BGFM_ENOMEM;
    if (o->regress_motion || d->n_motion == 0 || !(auc >= 0.6 || auc <= 0.4)) return 0;
    log_warn(ctx, "probe: head motion alone (mean framewise displacement) reads the label at AUC "
             "%.2f (pooled view, all labelled subjects): a feature set that carries motion can "
             "read the label through it; compare its AUC with the `motion` row, or probe again "
             "with regress_out: [motion] (docs/probe.md, \"Regressing out confounds\")", auc);
    return 0;
}

/* Rank 0: the stage's "probe" line of metrics.jsonl: {"probe_auc_<features>"...,
 * "probe_r2_<features>"..., "fit_seconds"}. */
static int metrics_line(const bgfm_stage_run *r, const probe_results *p, double t_fit,
                        bgfm_err *e) {
    (void)e;
    bgfm_err me = {0}; /* metrics never stop a run (mline.h): a failure is a warning */
    char key[64];
    mline m;
    mline_begin(&m, "probe", r->stage->name, "probe");
    for (int t = 0; t < PROBE_NFEAT; t++) {
        double mean, sd;
        probe_cls_mean_sd(p, p->nv - 1, t, p->main_k, 0, &mean, &sd, &me);
        snprintf(key, sizeof key, "probe_auc_%s", probe_feat_name[t]);
        mline_num(&m, key, mean);
    }
    for (int t = 0; t < PROBE_NFEAT && p->NT; t++) {
        double mean, sd, s = 0;
        for (int tg = 0; tg < p->NT; tg++) {
            probe_reg_mean_sd(p, tg, p->nv - 1, t, p->main_n, REGRESS_R2, &mean, &sd, &me);
            s += mean;
        }
        snprintf(key, sizeof key, "probe_r2_%s", probe_feat_name[t]);
        mline_num(&m, key, s / p->NT);
    }
    mline_num(&m, "fit_seconds", t_fit);
    if (me.code) {
        log_warn(r->ctx, "probe: metrics line not written: %s", me.msg);
        mline_discard(&m);
    } else {
        mline_append(&m, r->ctx, r->metrics);
    }
    return 0;
}

static int write_report(bgfm_stage_run *r, const probe_report_ctx *c, probe_results *p,
                        double t_fit) {
    bgfm_err *e = &r->ctx->err;
    char dir[4200], path[4400];
    snprintf(dir, sizeof dir, "%s/report", r->outdir);
    int rc = diagnostics(c->d, c->views, p, e);
    if (!rc) rc = fs_mkdirs(dir, e);
    snprintf(path, sizeof path, "%s/probe.json", dir);
    if (!rc) rc = probe_write_json(c, path, e);
    if (!rc) rc = probe_write_csvs(c, dir, e);
    snprintf(path, sizeof path, "%s/audit.tsv", dir);
    if (!rc) rc = probe_audit_write_tsv(&c->d->audit, path, e);
    snprintf(path, sizeof path, "%s/embeddings.h5", dir);
    if (!rc) rc = probe_write_embeddings(c, path, e);
    if (!rc) rc = probe_write_plot(r->ctx, c, dir);
    if (!rc && r->metrics) rc = metrics_line(r, p, t_fit, e);
    return rc;
}

/* ---- the stage ---------------------------------------------------------------------- */
static int probe_run(bgfm_stage_run *r) {
    bgfm_ctx *ctx = r->ctx;
    bgfm_err *e = &ctx->err;
    probe_opts o;
    read_opts(r, &o);
    pinputs in;
    memset(&in, 0, sizeof in);
    probe_data d;
    memset(&d, 0, sizeof d);
    probe_results p;
    memset(&p, 0, sizeof p);
    probe_view *views = NULL;
    int nv = 0;
    int rc = open_inputs(r, &in, e);
    if (!rc) rc = prepare(r, &o, &in, &d, e);
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) goto done;
    log_info(ctx, "probe: %lld graphs of %lld subjects, %d classes, %d targets, %d folds x %d "
             "repeats, protocol %s (%lld probed subjects seen in pretraining)", (long long)d.nl,
             (long long)d.ns, d.K, d.NT, o.folds, o.repeats, d.protocol, (long long)d.overlap);
    log_info(ctx, "probe: head motion (mean framewise displacement) known for %lld of %lld "
             "subjects%s", (long long)d.n_motion, (long long)d.ns,
             d.n_motion ? "" : ": the `motion` feature set is constant (regress confounds in "
             "parcellate to have it)");
    if (o.regress_motion || o.regress_site)
        log_info(ctx, "probe: regressing %s%s%s out of every feature set in each fold (fitted "
                 "on the training subjects)", o.regress_motion ? "head motion" : "",
                 o.regress_motion && o.regress_site ? " and " : "",
                 o.regress_site ? "the site" : "");
    if (ctx->rank == 0 && o.regress_motion && d.n_motion == 0)
        log_warn(ctx, "probe: regress_out lists motion, but no probed subject's head motion is "
                 "known (no scan has a confounds file with a framewise_displacement "
                 "column), so nothing is regressed out for it");
    if (ctx->rank == 0 && o.regress_site && d.n_sites < 2)
        log_warn(ctx, "probe: regress_out lists site, but the probed subjects have %s known "
                 "site (inputs' site_column), so nothing is regressed out for it",
                 d.n_sites ? "one" : "no");
    if (ctx->rank == 0 && d.label_site.dof > 0 && d.label_site.p < 0.05)
        log_warn(ctx, "probe: the label is unevenly spread over the %lld sites of the labelled "
                 "subjects (chi-squared %.2f, dof %d, p = %.3g; counts per site and class in "
                 "probe.json \"label_site\"): a feature set that encodes the site can predict "
                 "the label through it; compare the site's share of variance (docs/probe.md, "
                 "\"Label and site\")", (long long)d.n_sites, d.label_site.chi2, d.label_site.dof,
                 d.label_site.p);
    if ((rc = probe_embed_all(r, in.gs, &in.mp, &in.mr, in.amap, &d))) goto done;
    if ((rc = probe_pca_features(r, in.gs, &d, o.pca_components, in.ckpt))) goto done;
    nv = d.A + 1; /* atlases, then pooled */
    views = bgfm_calloc(e, (size_t)nv, sizeof *views, "views");
    if (!views) rc = BGFM_ENOMEM;
    for (int v = 0; v < nv && !rc; v++) rc = probe_view_make(&d, in.gs, v < d.A ? v : -1, &views[v], e);
    if (!rc && views[nv - 1].n == 0)
        rc = bgfm_fail(e, BGFM_EDATA, "probe: no (subject, window) has a graph in every atlas of "
                       "%s, so the pooled view is empty", in.gpath);
    if (!rc) rc = results_init(&p, &o, &d, nv, e);
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) goto done;
    double t0 = MPI_Wtime();
    if ((rc = run_cells(ctx, &o, &d, views, &p))) goto done;
    double t_fit = MPI_Wtime() - t0;
    if (ctx->rank == 0) rc = warn_motion(ctx, &o, &d, &p);
    if (ctx->rank == 0 && !rc) {
        probe_report_ctx c = {r, &o, &d, &p, views, in.gs, in.ckpt, in.gpath, in.mp.cfg.H,
                              o.pca_components, in.mp.cfg.embed, in.mp.cfg.pop_rank};
        rc = write_report(r, &c, &p, t_fit);
    }
    rc = bgfm_ctx_agree(ctx, rc);
done:
    results_free(&p);
    for (int v = 0; views && v < nv; v++) probe_view_free(&views[v]);
    free(views);
    probe_data_free(&d);
    pinputs_free(&in);
    return rc;
}

const bgfm_stage_kind bgfm_stage_probe = {
    .name = "probe",
    .summary = "linear probes (grouped CV, repeated draws, few-shot) of pretrained vs random-init "
               "encoder embeddings, the FC triangle and its PCA; ridge regression of numeric "
               "targets -> report/probe.json, few_shot.png",
    .opts = probe_opts_table,
    .n_opts = (int)(sizeof probe_opts_table / sizeof probe_opts_table[0]),
    .consumes = BGFM_ART_CHECKPOINT,
    .consumes2 = BGFM_ART_GRAPHS,
    .produces = BGFM_ART_REPORT,
    .supplies = probe_supplies,
    .rank_sensitive = 0,
    .validate = probe_validate,
    .run = probe_run,
    .extra_inputs = probe_extra_inputs,
};
