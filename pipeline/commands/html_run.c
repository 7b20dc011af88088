/* html_run.c: the report's run-wide sections: the run status (every stage, failed ones
 * said so), the dataset a parcellate stage read (scans, participants, sites, labels, TR
 * and volume distributions, skipped inputs with reasons) and the provenance of every
 * stage (pipeline file, code version, ranks, resolved options, input and output hashes).
 * Not the stage-specific QC (html_qc.c, html_train.c, html_probe.c) nor the page itself. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/fsutil.h"
#include "bgfm/h5io.h"
#include "bgfm/strlist.h"
#include "html_int.h"

#define LIST_MAX 50 /* rows of a long list shown before "and N more" */

void html_sec_status(html_page *p, const wd *w) {
    hp_raw(p, "<table id=\"stages\"><tr><th>stage</th><th>kind</th><th>status</th>"
              "<th>wall time (s)</th><th>ranks</th><th>runs recorded</th></tr>\n");
    for (int i = 0; i < w->n; i++) {
        const wd_stage *s = &w->s[i];
        char st[512];
        wd_status_text(s, st, sizeof st);
        int bad = s->last_status > 0 && s->last_status != BGFM_PARTIAL;
        hp_raw(p, "<tr data-stage=\"");
        hp_text(p, s->name);
        hp_raw(p, "\">");
        hp_cell(p, s->name);
        hp_cell(p, s->kind);
        hp_raw(p, "<td class=\"%s\">", bad || !s->complete ? "bad" : "ok");
        hp_text(p, st);
        hp_raw(p, "</td>");
        const json_node *tm = json_get(&s->man, "timings");
        double wall = bad || !s->complete ? s->last_wall : json_num(tm, "wall_s");
        hp_num(p, wall, 2);
        hp_num(p, s->complete ? json_num(&s->man, "ranks") : (double)NAN, 0);
        hp_num(p, s->runs, 0);
        hp_raw(p, "</tr>\n");
    }
    hp_raw(p, "</table>\n");
    if (w->bad_lines)
        hp_raw(p, "<p class=\"note\">metrics.jsonl: %lld of %lld lines could not be read (a line "
                  "cut by a killed run); they are left out.</p>\n", (long long)w->bad_lines,
               (long long)w->lines);
    if (!w->has_metrics)
        hp_raw(p, "<p class=\"note\">No metrics.jsonl in the workdir: training curves and stage "
                  "events are not shown.</p>\n");
}

/* ---- dataset ----------------------------------------------------------------------------- */

typedef struct ds {
    int64_t S;
    char **pid, **site, **dset; /* dset: with inputs.datasets, else NULL */
    int64_t *nvol, *label;
    double *tr;
    char *classes, *column;
} ds;

static void ds_free(ds *d) {
    strlist_free(d->pid, d->S);
    strlist_free(d->site, d->S);
    strlist_free(d->dset, d->S);
    free(d->nvol);
    free(d->label);
    free(d->tr);
    free(d->classes);
    free(d->column);
    memset(d, 0, sizeof *d);
}

/* the site: /subjects/site (inputs.datasets), else the participants.tsv column site as
 * strings, or numbers written as text ("" when missing) */
static int read_site(hid_t f, ds *d, bgfm_err *e) {
    const char *sp = h5io_exists(f, "/subjects/site") ? "/subjects/site" : "/subjects/columns/site";
    if (!h5io_exists(f, sp)) return 0;
    int64_t n = 0;
    bgfm_err se = {0};
    if (!h5io_read_strings(f, sp, &d->site, &n, &se)) {
        if (n == d->S) return 0;
        strlist_free(d->site, n);
        d->site = NULL;
        return bgfm_fail(e, BGFM_EDATA, "%s has %lld rows, /subjects has %lld", sp, (long long)n,
                         (long long)d->S);
    }
    /* strings that could not be held are not numbers: out of memory, not a damaged file */
    if (se.code == BGFM_ENOMEM) return bgfm_fail(e, se.code, "%s", se.msg);
    double *v = bgfm_malloc(e, (size_t)d->S * sizeof *v + 1, "site column");
    d->site = bgfm_calloc(e, (size_t)d->S + 1, sizeof *d->site, "sites");
    int rc = !v || !d->site ? BGFM_ENOMEM : h5io_read_all(f, sp, H5T_NATIVE_DOUBLE, d->S, v, e);
    for (int64_t i = 0; !rc && i < d->S; i++) {
        char b[64] = "";
        if (isfinite(v[i])) snprintf(b, sizeof b, "%g", v[i]);
        if (!(d->site[i] = bgfm_strdup(e, b))) rc = BGFM_ENOMEM;
    }
    free(v);
    return rc;
}

static int ds_read(const char *path, ds *d, bgfm_err *e) {
    memset(d, 0, sizeof *d);
    hid_t f = h5io_open(MPI_COMM_SELF, path, e);
    if (f < 0) return e->code ? e->code : BGFM_EDATA;
    int rc = h5io_read_strings(f, "/subjects/participant_id", &d->pid, &d->S, e);
    size_t S = (size_t)d->S + 1;
    if (!rc) {
        d->nvol = bgfm_malloc(e, S * sizeof *d->nvol, "n_volumes");
        d->label = bgfm_malloc(e, S * sizeof *d->label, "labels");
        d->tr = bgfm_malloc(e, S * sizeof *d->tr, "t_r");
        if (!d->nvol || !d->label || !d->tr) rc = BGFM_ENOMEM;
    }
    if (!rc) rc = h5io_read_all(f, "/subjects/n_volumes", H5T_NATIVE_INT64, d->S, d->nvol, e);
    if (!rc) rc = h5io_read_all(f, "/subjects/t_r", H5T_NATIVE_DOUBLE, d->S, d->tr, e);
    if (!rc) rc = h5io_read_all(f, "/subjects/label", H5T_NATIVE_INT64, d->S, d->label, e);
    if (!rc && h5io_attr_exists(f, "/subjects/label", "classes"))
        rc = h5io_attr_get_str(f, "/subjects/label", "classes", &d->classes, e);
    if (!rc && h5io_attr_exists(f, "/subjects/label", "column"))
        rc = h5io_attr_get_str(f, "/subjects/label", "column", &d->column, e);
    if (!rc) rc = read_site(f, d, e);
    int64_t nd = 0;
    if (!rc && h5io_exists(f, "/subjects/dataset")) {
        rc = h5io_read_strings(f, "/subjects/dataset", &d->dset, &nd, e);
        if (!rc && nd != d->S) rc = bgfm_fail(e, BGFM_EDATA, "%s: /subjects/dataset has %lld rows, "
                                              "not %lld", path, (long long)nd, (long long)d->S);
    }
    bgfm_err ignore = {0};
    h5io_close(&f, path, rc ? &ignore : e);
    if (!rc && e->code) rc = e->code;
    if (rc) ds_free(d);
    return rc;
}

static int str_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* distinct values of s[0..n) in order, with counts; returns how many (0 on failure: out
 * of memory, recorded in p->e, the page abandoned) */
static int64_t distinct(html_page *p, char **s, int64_t n, char ***vals, int64_t **cnt,
                        int **of) {
    char **c = bgfm_malloc(p->e, (size_t)n * sizeof *c + 1, "report sorted values");
    *vals = bgfm_malloc(p->e, (size_t)n * sizeof **vals + 1, "report distinct values");
    *cnt = bgfm_calloc(p->e, (size_t)n + 1, sizeof **cnt, "report value counts");
    if (of) *of = bgfm_malloc(p->e, (size_t)n * sizeof **of + 1, "report value classes");
    if (!c || !*vals || !*cnt || (of && !*of)) {
        free(c);
        p->failed = 1;
        return 0;
    }
    memcpy(c, s, (size_t)n * sizeof *c);
    qsort(c, (size_t)n, sizeof *c, str_cmp);
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (!k || strcmp(c[i], (*vals)[k - 1])) (*vals)[k++] = c[i];
    for (int64_t i = 0; i < n; i++) {
        char **hit = bsearch(&s[i], *vals, (size_t)k, sizeof **vals, str_cmp);
        int64_t j = hit ? hit - *vals : 0;
        (*cnt)[j]++;
        if (of) (*of)[i] = (int)j;
    }
    free(c);
    return k;
}

/* scans per dataset (inputs.datasets) */
static void ds_datasets(html_page *p, const ds *d, const wd_stage *s) {
    char **v = NULL;
    int64_t *c = NULL, n = d->dset && d->S ? distinct(p, d->dset, d->S, &v, &c, NULL) : 0;
    if (n > 0) {
        hp_raw(p, "<table id=\"datasets-%s\"><tr><th>dataset</th><th>scans</th></tr>", s->name);
        for (int64_t i = 0; i < n && i < LIST_MAX; i++) {
            hp_raw(p, "<tr>");
            hp_cell(p, v[i]);
            hp_num(p, (double)c[i], 0);
            hp_raw(p, "</tr>");
        }
        hp_raw(p, "</table>\n");
    }
    free(v);
    free(c);
}

/* participants: distinct participant ids, or (dataset, participant) pairs with datasets */
static int64_t ds_participants(html_page *p, const ds *d) {
    if (!d->S) return 0;
    char **key = bgfm_calloc(p->e, (size_t)d->S, sizeof *key, "report participant keys");
    char **v = NULL;
    int64_t *c = NULL, n = 0, ok = key != NULL;
    for (int64_t i = 0; ok && i < d->S; i++) {
        size_t l = strlen(d->pid[i]) + (d->dset ? strlen(d->dset[i]) : 0) + 2;
        if (!(key[i] = bgfm_malloc(p->e, l, "report participant key"))) ok = 0;
        else snprintf(key[i], l, "%s/%s", d->dset ? d->dset[i] : "", d->pid[i]);
    }
    if (ok) n = distinct(p, key, d->S, &v, &c, NULL);
    else p->failed = 1;
    for (int64_t i = 0; key && i < d->S; i++) free(key[i]);
    free(key);
    free(v);
    free(c);
    return n;
}

static void ds_tables(html_page *p, const ds *d, const wd_stage *s) {
    char **sv = NULL;
    int64_t *sc = NULL, np = ds_participants(p, d);
    int *sof = NULL;
    int64_t ns = d->site ? distinct(p, d->site, d->S, &sv, &sc, &sof) : 0;
    double *nv = bgfm_malloc(p->e, (size_t)d->S * sizeof *nv + 1, "report volumes per scan");
    double *tr = bgfm_malloc(p->e, (size_t)d->S * sizeof *tr + 1, "report TR per scan");
    if (!nv || !tr) p->failed = 1;
    for (int64_t i = 0; nv && tr && i < d->S; i++) {
        nv[i] = (double)d->nvol[i];
        tr[i] = d->tr[i];
    }
    const json_node *sk = json_get(&s->man, "skipped");
    int nsk = sk && sk->k == JSON_ARR ? sk->n : 0;
    hp_raw(p, "<table id=\"dataset-%s\" class=\"kv\">", s->name);
    hp_raw(p, "<tr><th>scans (4D images)</th>");
    hp_num(p, (double)d->S, 0);
    hp_raw(p, "</tr><tr><th>participants%s</th>", d->dset ? " (dataset, participant)" : "");
    hp_num(p, (double)np, 0);
    hp_raw(p, "</tr><tr><th>sites</th>");
    hp_num(p, d->site ? (double)ns : (double)NAN, 0);
    hp_raw(p, "</tr><tr><th>inputs skipped</th>");
    hp_num(p, nsk, 0);
    if (nv && tr && d->S) {
        hp_raw(p, "</tr><tr><th>volumes per scan: min, median, max</th><td class=\"n\">");
        hp_raw(p, "%.0f, %.1f, %.0f</td>", hp_quantile(nv, d->S, 0), hp_quantile(nv, d->S, 0.5),
               hp_quantile(nv, d->S, 1));
        hp_raw(p, "</tr><tr><th>TR (s): min, median, max</th><td class=\"n\">");
        hp_raw(p, "%.3g, %.3g, %.3g</td>", hp_quantile(tr, d->S, 0), hp_quantile(tr, d->S, 0.5),
               hp_quantile(tr, d->S, 1));
    }
    hp_raw(p, "</tr></table>\n");
    if (ns > 0) {
        hp_raw(p, "<table id=\"sites-%s\"><tr><th>site</th><th>scans</th></tr>", s->name);
        for (int64_t i = 0; i < ns && i < LIST_MAX; i++) {
            hp_raw(p, "<tr>");
            hp_cell(p, sv[i][0] ? sv[i] : "(none)");
            hp_num(p, (double)sc[i], 0);
            hp_raw(p, "</tr>");
        }
        hp_raw(p, "</table>\n");
        if (ns > LIST_MAX) hp_raw(p, "<p class=\"note\">and %lld more sites</p>\n", (long long)(ns - LIST_MAX));
    }
    if (nv && tr && d->S) {
        /* the quantile calls sorted nv and tr: read them again from d */
        for (int64_t i = 0; i < d->S; i++) {
            nv[i] = (double)d->nvol[i];
            tr[i] = d->tr[i];
        }
        const char *gn[64];
        int G = ns > 1 && ns <= 8 ? (int)ns : 0;
        for (int g = 0; g < G; g++) gn[g] = sv[g][0] ? sv[g] : "(none)";
        hp_hist(p, nv, G ? sof : NULL, G, gn, d->S, 30, 0, 0, "volumes per scan",
                G ? "Volumes per scan, per site (share of the site's scans per bin)."
                  : "Volumes per scan (count of scans per bin).");
        hp_hist(p, tr, G ? sof : NULL, G, gn, d->S, 20, 0, 0, "repetition time TR (s)",
                G ? "TR per scan, per site (share of the site's scans per bin)."
                  : "TR per scan, seconds (count of scans per bin).");
    }
    free(nv);
    free(tr);
    free(sv);
    free(sc);
    free(sof);
}

static void ds_labels(html_page *p, const ds *d, const wd_stage *s) {
    int64_t unk = 0, maxl = -1;
    for (int64_t i = 0; i < d->S; i++) {
        if (d->label[i] < 0) unk++;
        else if (d->label[i] > maxl) maxl = d->label[i];
    }
    if (maxl < 0 || maxl > 1000) return;
    char **cls = NULL;
    int ncls = 0;
    bgfm_err ignore = {0};
    if (d->classes && *d->classes) strlist_split(d->classes, ',', &cls, &ncls, &ignore);
    hp_raw(p, "<table id=\"labels-%s\"><tr><th>label (", s->name);
    hp_text(p, d->column && *d->column ? d->column : "label");
    hp_raw(p, ")</th><th>scans</th></tr>");
    for (int64_t l = 0; l <= maxl; l++) {
        int64_t c = 0;
        for (int64_t i = 0; i < d->S; i++) c += d->label[i] == l;
        if (!c) continue;
        hp_raw(p, "<tr>");
        if (l < ncls) hp_cell(p, cls[l]);
        else hp_raw(p, "<td>%lld</td>", (long long)l);
        hp_num(p, (double)c, 0);
        hp_raw(p, "</tr>");
    }
    hp_raw(p, "<tr><td>unknown</td>");
    hp_num(p, (double)unk, 0);
    hp_raw(p, "</tr></table>\n");
    strlist_free(cls, ncls);
}

void html_skipped(html_page *p, const wd_stage *s, const char *what) {
    const json_node *sk = json_get(&s->man, "skipped");
    if (!sk || sk->k != JSON_ARR || !sk->n) return;
    hp_raw(p, "<table id=\"skipped-%s\"><tr><th>%s skipped</th><th>reason</th></tr>\n", s->name, what);
    for (int i = 0; i < sk->n && i < LIST_MAX; i++) {
        const json_node *it = json_get(&sk->kid[i], "item"), *re = json_get(&sk->kid[i], "reason");
        hp_raw(p, "<tr>");
        hp_cell(p, it && it->k == JSON_STR ? it->str : "?");
        hp_cell(p, re && re->k == JSON_STR ? re->str : "?");
        hp_raw(p, "</tr>\n");
    }
    hp_raw(p, "</table>\n");
    if (sk->n > LIST_MAX)
        hp_raw(p, "<p class=\"note\">and %d more (the whole list: %s/manifest.json, \"skipped\")</p>\n",
               sk->n - LIST_MAX, s->name);
}

void html_sec_dataset(html_page *p, const wd *w, const wd_stage *s) {
    char id[300];
    snprintf(id, sizeof id, "dataset-%s", s->name);
    hp_raw(p, "<h3 id=\"h-%s\">Read by stage ", id);
    hp_text(p, s->name);
    hp_raw(p, "</h3>\n");
    if (!s->complete) {
        hp_stage_problem(p, s, NULL, "No dataset summary.");
        return;
    }
    char *path = fs_join(s->dir, "timeseries.h5", p->e);
    if (!path) {
        p->failed = 1;
        return;
    }
    ds d;
    bgfm_err e = {0};
    if (ds_read(path, &d, &e)) {
        hp_problem(p, e.code, "cannot read %s: %s", path, e.msg);
    } else {
        ds_tables(p, &d, s);
        ds_datasets(p, &d, s);
        ds_labels(p, &d, s);
        ds_free(&d);
    }
    html_skipped(p, s, "input");
    free(path);
    (void)w;
}

/* ---- provenance ------------------------------------------------------------------------ */

static void files_list(html_page *p, const json_node *l, const char *what) {
    int n = l && l->k == JSON_ARR ? l->n : 0;
    double bytes = 0;
    for (int i = 0; i < n; i++) bytes += json_num(&l->kid[i], "bytes");
    hp_raw(p, "<details><summary>%s: %d files, %.1f MB</summary><table><tr><th>path</th>"
              "<th>bytes</th><th>SHA-256</th></tr>\n", what, n, bytes / 1e6);
    for (int i = 0; i < n && i < 4 * LIST_MAX; i++) {
        const json_node *pa = json_get(&l->kid[i], "path"), *h = json_get(&l->kid[i], "sha256");
        hp_raw(p, "<tr>");
        hp_cell(p, pa && pa->k == JSON_STR ? pa->str : "?");
        hp_num(p, json_num(&l->kid[i], "bytes"), 0);
        hp_raw(p, "<td><code>");
        hp_text(p, h && h->k == JSON_STR ? h->str : "");
        hp_raw(p, "</code></td></tr>\n");
    }
    hp_raw(p, "</table>");
    if (n > 4 * LIST_MAX) hp_raw(p, "<p class=\"note\">and %d more (manifest.json)</p>", n - 4 * LIST_MAX);
    hp_raw(p, "</details>\n");
}

static void kv(html_page *p, const char *k, const char *v, int code) {
    hp_raw(p, "<tr><th>%s</th><td>%s", k, code ? "<code>" : "");
    hp_text(p, v);
    hp_raw(p, "%s</td></tr>", code ? "</code>" : "");
}

void html_sec_provenance(html_page *p, const wd *w) {
    hp_raw(p, "<p>Report written by bgfm %s (%s) from <code>", BGFM_VERSION, BGFM_GITREV);
    hp_text(p, w->root);
    hp_raw(p, "</code>. Each stage's manifest.json records what follows (docs/formats.md).</p>\n");
    for (int i = 0; i < w->n; i++) {
        const wd_stage *s = &w->s[i];
        if (!s->complete) continue;
        hp_raw(p, "<h3 id=\"provenance-%s\">", s->name);
        hp_text(p, s->name);
        hp_raw(p, " (");
        hp_text(p, s->kind);
        hp_raw(p, ")</h3>\n<table class=\"kv\">");
        kv(p, "pipeline file", wd_man_str(s, "pipeline"), 1);
        char v[200];
        snprintf(v, sizeof v, "%s (%s)", wd_man_str(s, "code_version"), wd_man_str(s, "code_rev"));
        kv(p, "bgfm version", v, 0);
        const char *blas = wd_man_str(s, "blas"); /* manifests before session 36 lack it */
        if (*blas) kv(p, "BLAS (kernel)", blas, 0);
        hp_raw(p, "<tr><th>ranks</th>");
        hp_num(p, json_num(&s->man, "ranks"), 0);
        hp_raw(p, "</tr>");
        const json_node *tm = json_get(&s->man, "timings"), *sta = json_get(tm, "started");
        kv(p, "started (UTC)", sta && sta->k == JSON_STR ? sta->str : "", 0);
        hp_raw(p, "<tr><th>wall time (s)</th>");
        hp_num(p, json_num(tm, "wall_s"), 2);
        hp_raw(p, "</tr>");
        kv(p, "status", wd_man_str(s, "status"), 0);
        kv(p, "fingerprint", wd_man_str(s, "fingerprint"), 1);
        kv(p, "outputs SHA-256", wd_man_str(s, "outputs_sha256"), 1);
        hp_raw(p, "</table>\n<details><summary>resolved options (the text fingerprinted)</summary><pre>");
        hp_text(p, wd_man_str(s, "resolved"));
        hp_raw(p, "</pre></details>\n");
        files_list(p, json_get(&s->man, "inputs"), "dataset inputs read");
        files_list(p, json_get(&s->man, "outputs"), "outputs");
    }
}
