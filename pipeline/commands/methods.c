/* methods.c: the probe's and the adaptation stages' results read back and put side by side
 * (methods.h): each stage's report, the fold check between an adaptation stage and a
 * probe (their predictions files), and the tables of all methods per shared folds.
 * Not the printing (commands/report.c) nor the page (html_adapt.c). */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/fsutil.h"
#include "bgfm/methods.h"
#include "bgfm/metrics.h"
#include "bgfm/strlist.h"

void methods_level_text(long long k, char *buf, size_t n) {
    if (k) snprintf(buf, n, "%lld", k);
    else snprintf(buf, n, "all");
}

const char *methods_metric(const methods_report *r) {
    const json_node *t = json_get(&r->j, "task");
    return t && t->k == JSON_STR && !strcmp(t->str, "regression") ? "r2" : "auc";
}

const char *methods_target(const methods_report *r) {
    const json_node *t = json_get(&r->j, "target");
    return !strcmp(methods_metric(r), "r2") && t && t->k == JSON_STR ? t->str : NULL;
}

/* a level's value: a number, or "all" (0); -1 when neither */
static long long level_of(const json_node *k) {
    if (k && k->k == JSON_STR && !strcmp(k->str, "all")) return 0;
    if (k && k->k == JSON_NUM && k->num >= 1) return (long long)k->num;
    return -1;
}

int methods_levels(const methods_report *r, const json_node *enc, methods_level *out, int max) {
    const char *m = methods_metric(r);
    const json_node *fs = json_get(enc, "few_shot"), *cells = json_get(enc, "cells");
    int n = 0;
    for (int i = 0; fs && fs->k == JSON_ARR && i < fs->n && n < max; i++) {
        const json_node *row = &fs->kid[i];
        long long k = level_of(json_get(row, "k"));
        if (k < 0) continue;
        methods_level *l = &out[n++];
        l->k = k;
        l->keff = json_num(row, "k_effective");
        l->mean = json_num(row, m);
        l->sd = json_num(row, "sd");
        l->seconds = 0;
        l->cells = 0;
        for (int c = 0; cells && cells->k == JSON_ARR && c < cells->n; c++)
            if (level_of(json_get(&cells->kid[c], "k")) == k) {
                double s = json_num(&cells->kid[c], "seconds");
                if (isfinite(s)) l->seconds += s;
                l->cells++;
            }
        if (!l->cells) l->seconds = NAN;
    }
    return n;
}

/* ---- reading --------------------------------------------------------------------------- */

static int read_json(const char *path, json_node *j, bgfm_err *e) {
    char *text = NULL;
    size_t len = 0;
    memset(j, 0, sizeof *j);
    int rc = fs_read_all(path, &text, &len, e);
    const int jrc = rc ? 0 : json_parse_e(text, len, j, e);
    if (jrc == BGFM_ENOMEM) rc = jrc;
    if (!rc && (jrc || j->k != JSON_OBJ)) {
        json_free(j);
        memset(j, 0, sizeof *j);
        rc = bgfm_fail(e, BGFM_EDATA, "report: %s is not a valid stage report (JSON); rerun the "
                       "stage that wrote it", path);
    }
    free(text);
    return rc;
}

static int push(methods_report **arr, int *n, const char *stage, const char *dir,
                const char *path, const char *kind, methods_report **out, bgfm_err *e) {
    methods_report *t = bgfm_realloc(e, *arr, (size_t)(*n + 1) * sizeof *t, "stage reports");
    if (!t) return BGFM_ENOMEM;
    *arr = t;
    methods_report *r = &t[(*n)++];
    memset(r, 0, sizeof *r);
    r->stage = bgfm_strdup(e, stage);
    r->dir = bgfm_strdup(e, dir);
    r->path = bgfm_strdup(e, path);
    r->kind = bgfm_strdup(e, kind);
    *out = r;
    return r->stage && r->dir && r->path && r->kind ? 0 : BGFM_ENOMEM;
}

/* the adaptation reports of one stage folder: report/<kind>.json with "kind": kind and
 * "encoders" (in name order) */
static int read_adapt(methods_set *m, const char *stage, const char *dir, bgfm_err *e) {
    char rdir[8300];
    snprintf(rdir, sizeof rdir, "%s/report", dir);
    DIR *d = opendir(rdir);
    if (!d) return 0;
    char **names = NULL;
    int n = 0, rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && !rc) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' || l < 6 || strcmp(de->d_name + l - 5, ".json") ||
            !strcmp(de->d_name, "probe.json"))
            continue;
        char **t = bgfm_realloc(e, names, (size_t)(n + 1) * sizeof *t, "adaptation report names");
        if (!t || !(t[n] = bgfm_strdup(e, de->d_name))) {
            if (t) names = t;
            rc = BGFM_ENOMEM;
            break;
        }
        names = t;
        n++;
    }
    closedir(d);
    for (int i = 0; i + 1 < n; i++) /* name order (few files) */
        for (int k = i + 1; k < n; k++)
            if (strcmp(names[i], names[k]) > 0) {
                char *s = names[i];
                names[i] = names[k];
                names[k] = s;
            }
    for (int i = 0; i < n && !rc; i++) {
        char path[8600], kind[256];
        snprintf(path, sizeof path, "%s/%s", rdir, names[i]);
        snprintf(kind, sizeof kind, "%.*s", (int)(strlen(names[i]) - 5), names[i]);
        json_node j;
        rc = read_json(path, &j, e);
        const json_node *k = json_get(&j, "kind"), *en = json_get(&j, "encoders");
        if (!rc && k && k->k == JSON_STR && !strcmp(k->str, kind) && en && en->k == JSON_OBJ) {
            methods_report *r = NULL;
            rc = push(&m->ad, &m->na, stage, dir, path, kind, &r, e);
            if (r) r->j = j;
            else json_free(&j);
        } else {
            json_free(&j);
        }
    }
    strlist_free(names, n);
    return rc;
}

/* ---- the fold check --------------------------------------------------------------------- */

static int key_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The folds of a predictions file: "repeat\tsubject\tfold" of every row of the pooled view
 * and the file's first feature set (and the target, when given) in draws 0..draws-1, sorted.
 * *n = -1 when the file is absent or lacks the columns. */
static int fold_keys(const char *path, const char *target, int draws, char ***out, int64_t *n,
                     bgfm_err *e) {
    *out = NULL;
    *n = -1;
    if (!fs_exists(path)) return 0;
    char *text = NULL;
    size_t len = 0;
    int rc = fs_read_all(path, &text, &len, e);
    if (rc) return rc;
    char **lines = NULL, **hdr = NULL;
    int nl = 0, nh = 0;
    rc = strlist_split(text, '\n', &lines, &nl, e);
    free(text);
    if (!rc && nl) rc = strlist_split(lines[0], ',', &hdr, &nh, e);
    int c_t = -1, c_v = -1, c_f = -1, c_r = -1, c_d = -1, c_p = -1, c_fold = -1;
    for (int i = 0; i < nh; i++) {
        const char *h = hdr[i];
        int *c = !strcmp(h, "target") ? &c_t : !strcmp(h, "view") ? &c_v
               : !strcmp(h, "features") ? &c_f : !strcmp(h, "repeat") ? &c_r
               : !strcmp(h, "dataset") ? &c_d : !strcmp(h, "participant_id") ? &c_p
               : !strcmp(h, "fold") ? &c_fold : NULL;
        if (c && *c < 0) *c = i;
    }
    char **keys = NULL, first[256] = "";
    int64_t nk = 0;
    int ok = !rc && c_v >= 0 && c_f >= 0 && c_r >= 0 && c_p >= 0 && c_fold >= 0 &&
             (!target || c_t >= 0);
    if (ok) keys = bgfm_calloc(e, (size_t)nl + 1, sizeof *keys, "fold keys");
    if (ok && !keys) rc = BGFM_ENOMEM;
    for (int i = 1; ok && !rc && i < nl; i++) {
        char **f = NULL;
        int nf = 0;
        if (!lines[i][0]) continue;
        rc = strlist_split(lines[i], ',', &f, &nf, e);
        if (!rc && nf >= nh && !strcmp(f[c_v], "pooled") && (!target || !strcmp(f[c_t], target)) &&
            atoi(f[c_r]) < draws) {
            if (!first[0]) snprintf(first, sizeof first, "%s", f[c_f]);
            if (!strcmp(f[c_f], first)) {
                size_t l = strlen(f[c_r]) + strlen(f[c_p]) + strlen(f[c_fold]) +
                           (c_d >= 0 ? strlen(f[c_d]) : 0) + 8;
                char *k = bgfm_malloc(e, l, "fold key");
                if (!k) rc = BGFM_ENOMEM;
                else {
                    snprintf(k, l, "%s\t%s%s%s\t%s", f[c_r], c_d >= 0 ? f[c_d] : "",
                             c_d >= 0 ? "/" : "", f[c_p], f[c_fold]);
                    keys[nk++] = k;
                }
            }
        }
        strlist_free(f, nf);
    }
    strlist_free(lines, nl);
    strlist_free(hdr, nh);
    if (rc || !ok) {
        strlist_free(keys, nk);
        return rc;
    }
    qsort(keys, (size_t)nk, sizeof *keys, key_cmp);
    *out = keys;
    *n = nk;
    return 0;
}

static const char *pred_name(const char *target) {
    return target ? "regression_predictions.csv" : "predictions.csv";
}

/* 1 when a and p put every subject in the same fold of every draw of a (both files readable
 * and not empty); why not in `why` */
static int same_folds(const methods_report *a, const methods_report *p, const char *target,
                      char *why, size_t nwhy, bgfm_err *e) {
    int draws = (int)json_num(&a->j, "repeats");
    char pa[8400], pp[8400];
    snprintf(pa, sizeof pa, "%s/report/%s", a->dir, pred_name(target));
    snprintf(pp, sizeof pp, "%s/report/%s", p->dir, pred_name(target));
    char **ka = NULL, **kp = NULL;
    int64_t na = -1, np = -1;
    int rc = fold_keys(pa, target, draws, &ka, &na, e);
    if (!rc) rc = fold_keys(pp, target, draws, &kp, &np, e);
    int same = !rc && na > 0 && na == np;
    for (int64_t i = 0; same && i < na; i++) same = !strcmp(ka[i], kp[i]);
    if (!rc && !same && (na < 0 || np < 0))
        snprintf(why, nwhy, "no readable %s to compare folds with probe '%s'", pred_name(target),
                 p->stage);
    else if (!rc && !same)
        snprintf(why, nwhy, "other folds than probe '%s' (%s)", p->stage, pred_name(target));
    strlist_free(ka, na < 0 ? 0 : na);
    strlist_free(kp, np < 0 ? 0 : np);
    return rc ? -rc : same;
}

/* the probe's few-shot rows for a task: pooled classification, or regression of target */
static const json_node *probe_fs(const methods_report *p, const char *target) {
    if (!target) return json_get(&p->j, "few_shot");
    return json_get(json_get(json_get(&p->j, "regression"), target), "few_shot");
}

/* ---- the tables -------------------------------------------------------------------------- */

static int level_index(const methods_table *t, long long k) {
    for (int i = 0; i < t->nl; i++)
        if (t->level[i] == k) return i;
    return -1;
}

static long long level_rank(long long k) { return k ? k : (long long)1 << 62; }

static void add_level(methods_table *t, long long k) {
    if (k < 0 || level_index(t, k) >= 0 || t->nl == METHODS_MAXLEV) return;
    int i = t->nl++;
    for (; i > 0 && level_rank(t->level[i - 1]) > level_rank(k); i--) t->level[i] = t->level[i - 1];
    t->level[i] = k; /* ascending, 0 (all) last */
}

static methods_row *new_row(methods_table *t, bgfm_err *e) {
    methods_row *r = bgfm_realloc(e, t->row, (size_t)(t->nr + 1) * sizeof *r, "methods table rows");
    if (!r) return NULL;
    t->row = r;
    r = &t->row[t->nr++];
    memset(r, 0, sizeof *r);
    for (int i = 0; i < METHODS_MAXLEV; i++) r->mean[i] = r->sd[i] = r->keff[i] = NAN;
    r->params = r->seconds = NAN;
    return r;
}

/* the probe's feature sets: the few-shot rows' "<feat>_sd" members (but the null model's) */
static int probe_rows(methods_table *t, const methods_report *p, bgfm_err *e) {
    const json_node *fs = probe_fs(p, t->target);
    const char *key = t->target ? "n" : "k", *eff = t->target ? "n_effective" : "k_effective";
    if (!fs || fs->k != JSON_ARR || !fs->n || fs->kid[0].k != JSON_OBJ) return 0;
    for (int i = 0; i < fs->n; i++) add_level(t, level_of(json_get(&fs->kid[i], key)));
    const json_node *r0 = &fs->kid[0];
    for (int m = 0; m < r0->n; m++) {
        size_t l = strlen(r0->keys[m]);
        if (l < 4 || strcmp(r0->keys[m] + l - 3, "_sd")) continue;
        char feat[128];
        snprintf(feat, sizeof feat, "%.*s", (int)(l - 3), r0->keys[m]);
        /* train_mean: the regression's null model, not a feature set (not in cells.csv) */
        if (!json_get(r0, feat) || !strcmp(feat, "train_mean")) continue;
        methods_row *r = new_row(t, e);
        if (!r) return BGFM_ENOMEM;
        r->src = p;
        for (int q = 0; q < r0->n; q++) /* a name the report owns */
            if (!strcmp(r0->keys[q], feat)) r->feat = r0->keys[q];
        for (int i = 0; i < fs->n; i++) {
            int li = level_index(t, level_of(json_get(&fs->kid[i], key)));
            if (li < 0) continue;
            r->mean[li] = json_num(&fs->kid[i], feat);
            r->sd[li] = json_num(&fs->kid[i], r0->keys[m]);
            r->keff[li] = json_num(&fs->kid[i], eff);
        }
    }
    return 0;
}

/* The probe's rows over draws 0..draws-1 only, from report/cells.csv (every cell's metric),
 * when the adaptation stages of t drew fewer folds than the probe: mean and sample sd of
 * the finite values, as the probe computes its own (metrics_mean_sd). */
static int probe_cells(methods_table *t, const methods_report *p, bgfm_err *e) {
    char path[8400];
    snprintf(path, sizeof path, "%s/report/cells.csv", p->dir);
    char *text = NULL, **lines = NULL, **hdr = NULL;
    size_t len = 0;
    int nl = 0, nh = 0, rc = fs_read_all(path, &text, &len, e);
    if (!rc) rc = strlist_split(text, '\n', &lines, &nl, e);
    free(text);
    if (!rc && nl) rc = strlist_split(lines[0], ',', &hdr, &nh, e);
    int col[7] = {-1, -1, -1, -1, -1, -1, -1};
    static const char *const want[7] = {"task", "view", "features", "size", "repeat", "metric",
                                        "value"};
    for (int i = 0; i < nh; i++)
        for (int c = 0; c < 7; c++)
            if (col[c] < 0 && !strcmp(hdr[i], want[c])) col[c] = i;
    for (int c = 0; !rc && c < 7; c++)
        if (col[c] < 0) rc = bgfm_fail(e, BGFM_EDATA, "report: %s has no column '%s'", path, want[c]);
    /* the pooled view's cells of the task and metric in those draws: row, level, value */
    int64_t n = 0;
    int *ri = NULL, *li = NULL;
    double *v = NULL;
    if (!rc) {
        ri = bgfm_malloc(e, (size_t)nl * sizeof *ri + 1, "probe cells");
        li = bgfm_malloc(e, (size_t)nl * sizeof *li + 1, "probe cells");
        v = bgfm_malloc(e, (size_t)nl * sizeof *v + 1, "probe cells");
        if (!ri || !li || !v) rc = BGFM_ENOMEM;
    }
    for (int i = 1; !rc && i < nl; i++) {
        char **f = NULL;
        int nf = 0;
        if (!lines[i][0]) continue;
        rc = strlist_split(lines[i], ',', &f, &nf, e);
        if (!rc && nf >= nh && !strcmp(f[col[1]], "pooled") &&
            !strcmp(f[col[0]], t->target ? t->target : "label") &&
            !strcmp(f[col[5]], t->metric) && atoi(f[col[4]]) < t->draws) {
            json_node k = {.k = JSON_NUM, .num = atof(f[col[3]])};
            if (!strcmp(f[col[3]], "all")) k = (json_node){.k = JSON_STR, .str = f[col[3]]};
            int l = level_index(t, level_of(&k)), r = -1;
            for (int q = 0; q < t->nr && r < 0; q++)
                r = !t->row[q].adapt && !strcmp(t->row[q].feat, f[col[2]]) ? q : -1;
            if (l >= 0 && r >= 0) {
                ri[n] = r, li[n] = l, v[n] = strtod(f[col[6]], NULL);
                n++;
            }
        }
        strlist_free(f, nf);
    }
    strlist_free(lines, nl);
    strlist_free(hdr, nh);
    double *buf = rc ? NULL : bgfm_malloc(e, (size_t)n * sizeof *buf + 1, "probe cells");
    if (!rc && !buf) rc = BGFM_ENOMEM;
    for (int r = 0; !rc && r < t->nr; r++)
        for (int l = 0; !t->row[r].adapt && l < t->nl; l++) {
            int c = 0;
            for (int64_t i = 0; i < n; i++)
                if (ri[i] == r && li[i] == l) buf[c++] = v[i];
            metrics_mean_sd(buf, c, &t->row[r].mean[l], &t->row[r].sd[l]);
        }
    free(buf), free(ri), free(li), free(v);
    return rc;
}

static int adapt_rows(methods_table *t, const methods_report *a, bgfm_err *e) {
    const json_node *en = json_get(&a->j, "encoders");
    methods_level lv[METHODS_MAXLEV];
    for (int i = 0; en && en->k == JSON_OBJ && i < en->n; i++) {
        int n = methods_levels(a, &en->kid[i], lv, METHODS_MAXLEV);
        for (int l = 0; l < n; l++) add_level(t, lv[l].k);
    }
    for (int i = 0; en && en->k == JSON_OBJ && i < en->n; i++) {
        methods_row *r = new_row(t, e);
        if (!r) return BGFM_ENOMEM;
        r->src = a;
        r->feat = en->keys[i];
        r->adapt = 1;
        r->params = json_num(&a->j, "trainable_params");
        int n = methods_levels(a, &en->kid[i], lv, METHODS_MAXLEV);
        r->seconds = 0;
        for (int l = 0; l < n; l++) {
            int li = level_index(t, lv[l].k);
            if (isfinite(lv[l].seconds)) r->seconds += lv[l].seconds;
            if (li < 0) continue;
            r->mean[li] = lv[l].mean;
            r->sd[li] = lv[l].sd;
            r->keff[li] = lv[l].keff;
        }
    }
    return 0;
}

static methods_table *new_table(methods_set *m, const methods_report *p, const char *metric,
                                const char *target, bgfm_err *e) {
    methods_table *t = bgfm_realloc(e, m->t, (size_t)(m->nt + 1) * sizeof *t, "methods tables");
    if (!t) return NULL;
    m->t = t;
    t = &m->t[m->nt++];
    memset(t, 0, sizeof *t);
    t->probe = p;
    t->metric = metric;
    t->target = target;
    return t;
}

static int same_str(const char *a, const char *b) {
    return (!a && !b) || (a && b && !strcmp(a, b));
}

/* the probe each adaptation stage joins (-1: none, with the reason in note) */
static int match(methods_set *m, int *with, bgfm_err *e) {
    for (int i = 0; i < m->na; i++) {
        const methods_report *a = &m->ad[i];
        const char *tg = methods_target(a);
        with[i] = -1;
        snprintf(m->note[i], 300, "no probe stage in the workdir");
        for (int p = 0; p < m->np && with[i] < 0; p++) {
            const json_node *fs = probe_fs(&m->probe[p], tg);
            if (!fs || fs->k != JSON_ARR || !fs->n) {
                if (tg) snprintf(m->note[i], 300, "probe '%s' has no target '%s'", m->probe[p].stage, tg);
                else snprintf(m->note[i], 300, "probe '%s' has no few-shot results", m->probe[p].stage);
                continue;
            }
            if (json_num(&a->j, "seed") != json_num(&m->probe[p].j, "seed")) {
                snprintf(m->note[i], 300, "another seed than probe '%s' (%.0f, %.0f)",
                         m->probe[p].stage, json_num(&a->j, "seed"),
                         json_num(&m->probe[p].j, "seed"));
                continue;
            }
            double ra = json_num(&a->j, "repeats"), rp = json_num(&m->probe[p].j, "repeats");
            if (!(ra >= 1 && ra <= rp)) {
                snprintf(m->note[i], 300, "draws of folds: %.0f here, only %.0f in probe '%s' "
                         "(give the probe at least as many `repeats`)", ra, rp, m->probe[p].stage);
                continue;
            }
            char cells[8400];
            snprintf(cells, sizeof cells, "%s/report/cells.csv", m->probe[p].dir);
            if (ra < rp && !fs_exists(cells)) {
                snprintf(m->note[i], 300, "%.0f draws of folds here, %.0f in probe '%s', whose "
                         "report/cells.csv (each draw's results) is missing", ra, rp,
                         m->probe[p].stage);
                continue;
            }
            int s = same_folds(a, &m->probe[p], tg, m->note[i], 300, e);
            if (s < 0) return -s;
            if (s) {
                with[i] = p;
                m->note[i][0] = '\0';
            }
        }
    }
    return 0;
}

/* the adaptation stages in no probe's table: each joins the first earlier one with the same
 * task, seed and folds (grp = np + that stage's index) */
static int group_rest(methods_set *m, int *grp, bgfm_err *e) {
    char why[300];
    for (int i = 0; i < m->na; i++) {
        if (grp[i] >= 0) continue;
        const methods_report *a = &m->ad[i];
        grp[i] = m->np + i;
        for (int j = 0; j < i; j++) {
            const methods_report *b = &m->ad[j];
            if (grp[j] != m->np + j || !same_str(methods_target(a), methods_target(b)) ||
                strcmp(methods_metric(a), methods_metric(b)) ||
                json_num(&a->j, "seed") != json_num(&b->j, "seed"))
                continue;
            int s = same_folds(a, b, methods_target(a), why, sizeof why, e);
            if (s < 0) return -s;
            if (s) {
                grp[i] = grp[j];
                break;
            }
        }
    }
    return 0;
}

/* a and b in one table of a group: the same task and draws */
static int same_kind(const methods_report *a, const methods_report *b) {
    return same_str(methods_target(a), methods_target(b)) &&
           !strcmp(methods_metric(a), methods_metric(b)) &&
           json_num(&a->j, "repeats") == json_num(&b->j, "repeats");
}

static int build(methods_set *m, bgfm_err *e) {
    int *grp = bgfm_calloc(e, (size_t)m->na + 1, sizeof *grp, "report tables");
    if (!grp) return BGFM_ENOMEM;
    int rc = match(m, grp, e);
    if (!rc) rc = group_rest(m, grp, e);
    /* per probe: its classification table, then one per target, each with its stages; then
     * the groups of stages on other folds */
    for (int g = 0; g < m->np + m->na && !rc; g++)
        for (int i = 0; i < m->na && !rc; i++) {
            if (grp[i] != g) continue;
            const char *tg = methods_target(&m->ad[i]), *mt = methods_metric(&m->ad[i]);
            int done = 0; /* an earlier stage of this group made the table */
            for (int j = 0; j < i && !done; j++) done = grp[j] == g && same_kind(&m->ad[j], &m->ad[i]);
            if (done) continue;
            const methods_report *p = g < m->np ? &m->probe[g] : NULL;
            methods_table *t = new_table(m, p, mt, tg, e);
            if (!t) rc = BGFM_ENOMEM;
            if (t) {
                t->draws = (int)json_num(&m->ad[i].j, "repeats");
                t->probe_draws = p ? (int)json_num(&p->j, "repeats") : t->draws;
            }
            if (!rc && p) rc = probe_rows(t, p, e);
            if (!rc && p && t->draws < t->probe_draws) rc = probe_cells(t, p, e);
            for (int j = i; j < m->na && !rc; j++)
                if (grp[j] == g && same_kind(&m->ad[j], &m->ad[i])) rc = adapt_rows(t, &m->ad[j], e);
        }
    free(grp);
    return rc;
}

int methods_read(methods_set *m, int n, char *const *name, char *const *dir, bgfm_err *e) {
    memset(m, 0, sizeof *m);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        char path[8400];
        snprintf(path, sizeof path, "%s/report/probe.json", dir[i]);
        if (fs_exists(path)) {
            methods_report *r = NULL;
            rc = push(&m->probe, &m->np, name[i], dir[i], path, "probe", &r, e);
            if (!rc) rc = read_json(path, &r->j, e);
        }
        if (!rc) rc = read_adapt(m, name[i], dir[i], e);
    }
    if (!rc && m->na) {
        m->note = bgfm_calloc(e, (size_t)m->na, sizeof *m->note, "report notes");
        for (int i = 0; m->note && i < m->na && !rc; i++)
            if (!(m->note[i] = bgfm_calloc(e, 300, 1, "report notes"))) rc = BGFM_ENOMEM;
        if (!m->note) rc = BGFM_ENOMEM;
    }
    if (!rc) rc = build(m, e);
    return rc;
}

static void free_reports(methods_report *r, int n) {
    for (int i = 0; i < n; i++) {
        free(r[i].stage);
        free(r[i].dir);
        free(r[i].path);
        free(r[i].kind);
        json_free(&r[i].j);
    }
    free(r);
}

void methods_free(methods_set *m) {
    for (int i = 0; i < m->nt; i++) free(m->t[i].row);
    free(m->t);
    if (m->note) strlist_free(m->note, m->na);
    free_reports(m->probe, m->np);
    free_reports(m->ad, m->na);
    memset(m, 0, sizeof *m);
}
