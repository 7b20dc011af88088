/* html_wd.c: the workdir as the run report reads it: the stage folders with their
 * manifests, partial folders, and WORKDIR/metrics.jsonl (stage events, each stage kind's
 * own event, the training steps of each pretrain stage's latest run with its resumes).
 * Not the page (html_page.c) and not the sections, which read the stage outputs. */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/fsutil.h"
#include "html_int.h"

const char *const wd_step_key[WD_NV] = {"step", "epoch", "loss", "loss_rec", "loss_adj",
                                        "loss_cl", "grad_norm", "lr", "graphs_per_s",
                                        "mask_ratio", "compute_s", "comm_s", "io_s", "ranks"};

static wd_stage *find_or_add(wd *w, const char *name, bgfm_err *e) {
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->s[i].name, name)) return &w->s[i];
    wd_stage *t = bgfm_realloc(e, w->s, (size_t)(w->n + 1) * sizeof *t, "report stage list");
    if (!t) return NULL;
    w->s = t;
    wd_stage *s = &w->s[w->n];
    memset(s, 0, sizeof *s);
    s->last_status = -1;
    s->name = bgfm_strdup(e, name);
    s->dir = fs_join(w->root, name, e);
    if (!s->name || !s->dir) {
        free(s->name);
        free(s->dir);
        return NULL;
    }
    w->n++;
    return s;
}

static int set_kind(wd_stage *s, const char *kind, bgfm_err *e) {
    if (s->kind || !kind || !*kind) return 0;
    s->kind = bgfm_strdup(e, kind);
    return s->kind ? 0 : BGFM_ENOMEM;
}

/* one train_step line into the stage's latest run: a step that is not after the last
 * one comes from a resume from a checkpoint, whose steps replace the ones after it;
 * `resumed` says the resume was already counted (a failed or stopped run before it) */
static int add_step(wd_stage *s, const json_node *l, int resumed, bgfm_err *e) {
    double step = json_num(l, "step");
    if (isnan(step)) return 0;
    int64_t k = s->nstep;
    while (k > 0 && s->step[(k - 1) * WD_NV] >= step) k--;
    if (k < s->nstep) {
        if (!resumed) s->resumes++; /* killed without a stage event (kill -9) */
        for (int64_t j = k; j < s->nstep; j++) free(s->step_atlas[j]);
        s->nstep = k;
    }
    if (s->nstep == s->capstep) {
        int64_t cap = s->capstep ? 2 * s->capstep : 256;
        double *t = bgfm_realloc(e, s->step, (size_t)cap * WD_NV * sizeof *t, "report steps");
        if (t) s->step = t;
        char **a = t ? bgfm_realloc(e, s->step_atlas, (size_t)cap * sizeof *a,
                                    "report step atlases") : NULL;
        if (a) s->step_atlas = a;
        if (!t || !a) return BGFM_ENOMEM;
        s->capstep = cap;
    }
    for (int v = 0; v < WD_NV; v++) s->step[s->nstep * WD_NV + v] = json_num(l, wd_step_key[v]);
    const json_node *at = json_get(l, "atlas");
    s->step_atlas[s->nstep] = bgfm_strdup(e, at && at->k == JSON_STR ? at->str : "");
    if (!s->step_atlas[s->nstep]) return BGFM_ENOMEM;
    s->nstep++;
    return 0;
}

static void clear_steps(wd_stage *s) {
    for (int64_t j = 0; j < s->nstep; j++) free(s->step_atlas[j]);
    s->nstep = 0;
    s->resumes = 0;
    s->stops = 0;
}

static int take_line(wd *w, json_node *l, int *state, bgfm_err *e) {
    const json_node *ev = json_get(l, "event"), *st = json_get(l, "stage"), *k = json_get(l, "kind");
    if (!ev || ev->k != JSON_STR || !st || st->k != JSON_STR) return 0;
    int idx = -1;
    for (int i = 0; i < w->n && idx < 0; i++)
        if (!strcmp(w->s[i].name, st->str)) idx = i;
    wd_stage *s = idx >= 0 ? &w->s[idx] : find_or_add(w, st->str, e);
    if (!s) return BGFM_ENOMEM;
    if (idx < 0) idx = w->n - 1;
    if (set_kind(s, k && k->k == JSON_STR ? k->str : NULL, e)) return BGFM_ENOMEM;
    if (!strcmp(ev->str, "stage")) {
        s->runs++;
        double status = json_num(l, "status");
        s->last_status = isfinite(status) && status >= 0 && status < 256 ? (int)status : -1;
        s->last_wall = json_num(l, "wall_s");
        const json_node *t = json_get(l, "time");
        snprintf(s->last_time, sizeof s->last_time, "%s", t && t->k == JSON_STR ? t->str : "");
        if (s->last_status == BGFM_SIGNALLED) s->stops++;
        /* after a run that ended (complete or partial) the next steps are a new run; after
         * a failed or stopped one they are its resume */
        state[idx] = s->last_status == 0 || s->last_status == BGFM_PARTIAL ? 1 : 2;
    } else if (!strcmp(ev->str, "train_step")) {
        if (state[idx] == 1) clear_steps(s);
        if (state[idx] == 2) s->resumes++;
        int rc = add_step(s, l, state[idx] == 2, e);
        state[idx] = 0;
        return rc;
    } else if (k && k->k == JSON_STR && !strcmp(ev->str, k->str)) {
        json_free(&s->ev);
        s->ev = *l; /* moved */
        memset(l, 0, sizeof *l);
    }
    return 0;
}

static int read_metrics(wd *w, bgfm_err *e) {
    char *path = fs_join(w->root, "metrics.jsonl", e);
    if (!path) return BGFM_ENOMEM;
    FILE *f = fopen(path, "r");
    free(path);
    if (!f) return 0;
    w->has_metrics = 1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0, rcap = 0;
    int *reset = NULL;
    while (!rc && (len = getline(&line, &cap, f)) > 0) {
        if (w->n + 1 > rcap) {
            rcap = 2 * (w->n + 1);
            int *t = bgfm_realloc(e, reset, (size_t)rcap * sizeof *t, "report stage states");
            if (!t) {
                rc = BGFM_ENOMEM;
                break;
            }
            for (int i = w->n; i < rcap; i++) t[i] = 0;
            reset = t;
        }
        json_node l;
        if (strspn(line, " \t\r\n") == (size_t)len) continue;
        w->lines++;
        if (json_parse(line, (size_t)len, &l)) {
            w->bad_lines++; /* a line cut by a killed run: counted, said on the page */
            continue;
        }
        rc = take_line(w, &l, reset, e);
        json_free(&l);
    }
    free(reset);
    free(line);
    fclose(f);
    return rc;
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int read_manifest(wd_stage *s, bgfm_err *e) {
    char *p = fs_join(s->dir, "manifest.json", e), *t = NULL;
    size_t len = 0;
    if (!p) return BGFM_ENOMEM;
    bgfm_err ignore = {0};
    int rc = 0;
    if (fs_exists(p) && !fs_read_all(p, &t, &len, &ignore)) {
        if (!json_parse(t, len, &s->man) && s->man.k == JSON_OBJ) {
            s->complete = 1;
            const json_node *k = json_get(&s->man, "kind");
            rc = set_kind(s, k && k->k == JSON_STR ? k->str : NULL, e);
        } else {
            json_free(&s->man);
        }
    }
    free(t);
    free(p);
    return rc;
}

/* the folders: NAME/manifest.json and .NAME.partial, in name order */
static int read_folders(wd *w, bgfm_err *e) {
    DIR *d = opendir(w->root);
    if (!d) return bgfm_fail(e, BGFM_EUSAGE, "report: cannot open the work folder '%s'; give "
                             "the pipeline's workdir", w->root);
    char **names = NULL;
    int n = 0, cap = 0, rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || !strcmp(de->d_name, ".bgfm"))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **t = bgfm_realloc(e, names, (size_t)cap * sizeof *t, "report folder names");
            if (!t) { rc = BGFM_ENOMEM; break; }
            names = t;
        }
        if (!(names[n] = bgfm_strdup(e, de->d_name))) rc = BGFM_ENOMEM;
        else n++;
    }
    closedir(d);
    if (n) qsort(names, (size_t)n, sizeof *names, name_cmp);
    for (int i = 0; !rc && i < n; i++) {
        size_t l = strlen(names[i]);
        if (names[i][0] == '.' && l > 9 && !strcmp(names[i] + l - 8, ".partial")) {
            names[i][l - 8] = '\0';
            wd_stage *s = find_or_add(w, names[i] + 1, e);
            if (!s) rc = BGFM_ENOMEM;
            else s->in_progress = 1;
            continue;
        }
        if (names[i][0] == '.') continue;
        char *m = fs_join(w->root, names[i], e), *mm = m ? fs_join(m, "manifest.json", e) : NULL;
        if (!mm) rc = BGFM_ENOMEM;
        else if (fs_exists(mm)) {
            wd_stage *s = find_or_add(w, names[i], e);
            rc = s ? read_manifest(s, e) : BGFM_ENOMEM;
        }
        free(m);
        free(mm);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

int wd_read(const char *root, wd *w, bgfm_err *e) {
    memset(w, 0, sizeof *w);
    if (!fs_is_dir(root))
        return bgfm_fail(e, BGFM_EUSAGE, "report: '%s' is not a folder; give the pipeline's "
                         "workdir (the `workdir:` of the pipeline file)", root);
    w->root = fs_absolute(root, e); /* absolute: gnuplot runs in a folder of its own */
    if (!w->root) return e->code ? e->code : BGFM_ENOMEM;
    int rc = read_metrics(w, e);
    if (!rc) rc = read_folders(w, e);
    /* manifests of the stages metrics.jsonl named (their folders were read above too,
     * but only those without a metrics line were added there) */
    for (int i = 0; !rc && i < w->n; i++)
        if (!w->s[i].complete && !w->s[i].man.k) rc = read_manifest(&w->s[i], e);
    for (int i = 0; !rc && i < w->n; i++)
        if (!w->s[i].kind) rc = set_kind(&w->s[i], "?", e);
    if (!rc && w->n == 0)
        rc = bgfm_fail(e, BGFM_EUSAGE, "report: '%s' holds no stage output and no metrics.jsonl; "
                       "give the workdir of a pipeline that ran (bgfm run PIPELINE.yaml)", root);
    if (rc) wd_free(w);
    return rc;
}

void wd_free(wd *w) {
    for (int i = 0; i < w->n; i++) {
        wd_stage *s = &w->s[i];
        clear_steps(s);
        free(s->step);
        free(s->step_atlas);
        free(s->name);
        free(s->kind);
        free(s->dir);
        json_free(&s->man);
        json_free(&s->ev);
    }
    free(w->s);
    free(w->root);
    memset(w, 0, sizeof *w);
}

const wd_stage *wd_before(const wd *w, const wd_stage *s, const char *kind) {
    for (const wd_stage *t = s - 1; t >= w->s; t--)
        if (t->kind && !strcmp(t->kind, kind)) return t;
    return NULL;
}

const char *wd_man_str(const wd_stage *s, const char *key) {
    const json_node *v = json_get(&s->man, key);
    return v && v->k == JSON_STR ? v->str : "";
}

int wd_stage_ok(const wd_stage *s) { return s->complete; }

void wd_status_text(const wd_stage *s, char *buf, size_t n) {
    int st = s->last_status;
    if (st > 0 && st != BGFM_PARTIAL) {
        if (st == BGFM_SIGNALLED)
            snprintf(buf, n, "stopped by a signal (exit 75) after checkpointing; rerun to resume");
        else
            snprintf(buf, n, "failed (exit %d, %s)", st, bgfm_status_name(st));
        if (s->complete)
            snprintf(buf + strlen(buf), n - strlen(buf), "; the output shown is from an earlier "
                     "complete run");
    } else if (s->complete) {
        snprintf(buf, n, "%s", !strcmp(wd_man_str(s, "status"), "partial")
                                   ? "complete, some inputs skipped (exit 9)" : "complete");
    } else if (s->in_progress) {
        snprintf(buf, n, "not finished (running, or killed: %s/.%s.partial exists)", "WORKDIR",
                 s->name);
    } else {
        snprintf(buf, n, "no output");
    }
}
