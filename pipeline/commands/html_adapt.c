/* html_adapt.c: the adaptation part of the report's "Probe and adaptation" section: each
 * adaptation stage (finetune, prompt: report/<kind>.json, methods.h) per encoder and
 * few-shot level, then the table of all methods on the same folds (the probe's feature
 * sets and the adapted encoders as rows, few-shot levels as columns) with one few-shot
 * figure of every method. Every number as written in the reports.
 * Not the probe's own tables (html_probe.c) nor the reading (methods.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/methods.h"
#include "html_int.h"

int html_adapt_kind(const char *kind) {
    return !strcmp(kind, "finetune") || !strcmp(kind, "prompt");
}

int html_adapt_present(const wd *w) {
    for (int i = 0; i < w->n; i++)
        if (html_adapt_kind(w->s[i].kind)) return 1;
    return 0;
}

static void gp_text(char *dst, size_t n, const char *s) {
    size_t k = 0;
    for (; *s && k + 1 < n; s++) dst[k++] = *s == '\'' ? '`' : *s;
    dst[k] = '\0';
}

static void id_attr(html_page *p, const char *pre, const char *a, const char *b) {
    hp_raw(p, " id=\"%s-", pre);
    hp_text(p, a);
    if (b) {
        hp_raw(p, "-");
        hp_text(p, b);
    }
    hp_raw(p, "\"");
}

static const char *metric_title(const char *m) { return !strcmp(m, "r2") ? "R2" : "AUC"; }

/* one adaptation stage: its settings and encoder x level table */
static void stage_table(html_page *p, const methods_report *a, const char *note) {
    const json_node *j = &a->j, *t = json_get(j, "train"), *en = json_get(j, "encoders");
    const char *tg = methods_target(a), *m = methods_metric(a);
    hp_raw(p, "<p>");
    hp_text(p, a->kind);
    hp_textf(p, ": %s of %s; %.0f subjects, %.0f folds grouped by subject x %.0f draws, seed "
             "%.0f; train %s; %.0f of the model's %.0f parameters trained; fits %.1f s.",
             tg ? "regression" : "classification", tg ? tg : "the label", json_num(j, "n_subjects"),
             json_num(j, "folds"), json_num(j, "repeats"), json_num(j, "seed"),
             t && t->k == JSON_STR ? t->str : "?", json_num(j, "trainable_params"),
             json_num(j, "model_params"), json_num(j, "wall_seconds"));
    hp_raw(p, "</p>\n<table");
    id_attr(p, "adapt", a->stage, NULL);
    hp_raw(p, "><tr><th>encoder</th><th>%s</th><th>%s</th><th>%s</th><th>sd</th><th>trainable "
              "parameters</th><th>fit seconds</th></tr>\n", tg ? "n" : "k",
           tg ? "n effective" : "k effective", metric_title(m));
    methods_level lv[METHODS_MAXLEV];
    for (int i = 0; en && en->k == JSON_OBJ && i < en->n; i++) {
        int n = methods_levels(a, &en->kid[i], lv, METHODS_MAXLEV);
        for (int l = 0; l < n; l++) {
            char k[24];
            methods_level_text(lv[l].k, k, sizeof k);
            hp_raw(p, "<tr data-enc=\"");
            hp_text(p, en->keys[i]);
            hp_raw(p, "\" data-k=\"%s\">", k);
            hp_cell(p, l ? "" : en->keys[i]);
            hp_cell(p, k);
            hp_num(p, lv[l].keff, 2);
            hp_num(p, lv[l].mean, 3);
            hp_num(p, lv[l].sd, 3);
            hp_num(p, json_num(j, "trainable_params"), 0);
            hp_num(p, lv[l].seconds, 2);
            hp_raw(p, "</tr>\n");
        }
    }
    hp_raw(p, "</table>\n<p class=\"note\">Mean and sd over draws x folds as in ");
    hp_text(p, a->kind);
    hp_raw(p, ".json; fit seconds: the encoder's fits at that level, summed.");
    if (note && note[0]) {
        hp_raw(p, " Not beside a probe: ");
        hp_text(p, note);
        hp_raw(p, ".");
    }
    hp_raw(p, "</p>\n");
}

/* the few-shot curve of every method of table t (x: k effective, log 2) */
static void methods_fig(html_page *p, const methods_table *t, const char *what) {
    char dn[32];
    FILE *f = hp_data(p, dn, sizeof dn);
    if (!f) return;
    int blocks = 0;
    size_t cap = 600 + (size_t)t->nr * 500, w = 0;
    char *plot = bgfm_malloc(p->e, cap, "report methods plot");
    if (!plot) p->failed = 1; /* out of memory: the page is abandoned */
    for (int i = 0; plot && i < t->nr && w < cap - 450; i++) {
        const methods_row *r = &t->row[i];
        int pts = 0;
        for (int l = 0; l < t->nl; l++)
            if (isfinite(r->mean[l]) && r->keff[l] > 0) {
                fprintf(f, "%.9g %.9g %.9g\n", r->keff[l], r->mean[l], isfinite(r->sd[l]) ? r->sd[l] : 0.0);
                pts++;
            }
        if (!pts) continue;
        fputs("\n\n", f);
        char nm[160], ft[110];
        gp_text(nm, sizeof nm, r->src->stage);
        gp_text(ft, sizeof ft, r->feat);
        w += (size_t)snprintf(plot + w, cap - w, "%s'%s' index %d u ($1*(1+0.012*(%d-%d/2.0))):2:3 "
                              "with yerrorlines lt %d dt %d title '%.150s %.100s'", blocks ? ", " : "plot ",
                              dn, blocks, i, t->nr, i % 8 + 1, r->adapt ? 1 : 2, nm, ft);
        blocks++;
    }
    hp_data_close(p, f, dn);
    if (plot && blocks) {
        char cap2[900];
        snprintf(cap2, sizeof cap2, "Few-shot %s of every method on these folds (mean +- sd over "
                 "draws x folds; dashed: the probe's linear model on frozen features, solid: "
                 "adapted encoders; points shifted a little sideways to be seen).", what);
        hp_fig(p, 760, 360, cap2, "set xlabel '%s'\nset ylabel '%s'\nset key outside right\n"
               "set logscale x 2\n%s", t->target ? "training subjects (n, effective)"
               : "labelled training subjects per class (k, effective)", what, plot);
    }
    free(plot);
}

/* every method on the same folds: rows methods, columns few-shot levels */
static void methods_tab(html_page *p, const methods_table *t) {
    const char *key = t->probe ? t->probe->stage : t->row[0].src->stage;
    char what[300], tg[200];
    gp_text(tg, sizeof tg, t->target ? t->target : "");
    if (t->target) snprintf(what, sizeof what, "R2 of %s", tg);
    else snprintf(what, sizeof what, "AUC");
    hp_raw(p, "<h3");
    id_attr(p, "methods-stage", key, t->target);
    hp_raw(p, ">All methods: ");
    hp_text(p, what);
    if (t->probe) {
        hp_raw(p, " on the folds of probe stage ");
        hp_text(p, t->probe->stage);
    } else {
        hp_raw(p, " (no probe on these folds)");
    }
    hp_raw(p, "</h3>\n<table");
    id_attr(p, "methods", key, t->target);
    hp_raw(p, "><tr><th>stage</th><th>method</th>");
    for (int l = 0; l < t->nl; l++) {
        char k[24];
        methods_level_text(t->level[l], k, sizeof k);
        hp_raw(p, "<th data-level=\"%s\">%s = %s</th><th>sd</th>", k, t->target ? "n" : "k", k);
    }
    hp_raw(p, "<th>trainable parameters</th><th>fit seconds</th></tr>\n");
    for (int i = 0; i < t->nr; i++) {
        const methods_row *r = &t->row[i];
        hp_raw(p, "<tr data-stage=\"");
        hp_text(p, r->src->stage);
        hp_raw(p, "\" data-kind=\"");
        hp_text(p, r->src->kind);
        hp_raw(p, "\" data-feat=\"");
        hp_text(p, r->feat);
        hp_raw(p, "\">");
        hp_cell(p, r->src->stage);
        hp_cell(p, r->feat);
        for (int l = 0; l < t->nl; l++) {
            hp_num(p, r->mean[l], 3);
            hp_num(p, r->sd[l], 3);
        }
        hp_num(p, r->params, 0);
        hp_num(p, r->seconds, 2);
        hp_raw(p, "</tr>\n");
    }
    hp_raw(p, "</table>\n<p class=\"note\">");
    hp_text(p, what);
    hp_raw(p, ", mean and sd over draws x folds (%d draw%s of folds%s), per few-shot level (%s); "
              "the same subjects in the same folds for every row. Fit seconds: the encoder's "
              "fits at every level, summed. n/a: the method has no such level.", t->draws,
           t->draws == 1 ? "" : "s", t->probe ? "; the probe: pooled view" : "",
           t->target ? "n training subjects" : "k labelled training subjects per class");
    if (t->probe && t->draws < t->probe_draws)
        hp_raw(p, " The probe's rows are over its draws 0..%d of %d (from its cells.csv), the "
                  "draws of the adaptation stages.", t->draws - 1, t->probe_draws);
    hp_raw(p, "</p>\n");
    if (t->target) snprintf(what, sizeof what, "R2 of %s", tg);
    else snprintf(what, sizeof what, "AUC");
    methods_fig(p, t, what);
}

void html_sec_adapt(html_page *p, const wd *w) {
    char **name = bgfm_calloc(p->e, (size_t)w->n + 1, sizeof *name, "report adaptation names");
    char **dir = bgfm_calloc(p->e, (size_t)w->n + 1, sizeof *dir, "report adaptation folders");
    if (!name || !dir) { /* out of memory: the page is abandoned */
        free(name);
        free(dir);
        p->failed = 1;
        return;
    }
    int n = 0;
    for (int i = 0; i < w->n; i++)
        if (wd_stage_ok(&w->s[i])) {
            name[n] = w->s[i].name;
            dir[n++] = w->s[i].dir;
        }
    methods_set m;
    memset(&m, 0, sizeof m);
    bgfm_err e = {0};
    int rc = methods_read(&m, n, name, dir, &e);
    free(name);
    free(dir);
    if (rc) {
        hp_problem(p, rc, "adaptation results: %s", e.msg);
        methods_free(&m);
        return;
    }
    for (int i = 0; i < w->n; i++) {
        const wd_stage *s = &w->s[i];
        int k = -1;
        for (int a = 0; a < m.na && k < 0; a++) k = strcmp(m.ad[a].stage, s->name) ? -1 : a;
        if (k < 0 && !html_adapt_kind(s->kind)) continue;
        hp_raw(p, "<h3");
        id_attr(p, "adapt-stage", s->name, NULL);
        hp_raw(p, ">Stage ");
        hp_text(p, s->name);
        hp_raw(p, "</h3>\n");
        if (k >= 0) {
            stage_table(p, &m.ad[k], m.note[k]);
            p->nsec++;
            continue;
        }
        char why[300];
        snprintf(why, sizeof why, "no report/%s.json", s->kind);
        hp_stage_problem(p, s, s->complete ? why : NULL, "No adaptation results.");
    }
    for (int i = 0; i < m.nt; i++)
        if (m.t[i].nr) methods_tab(p, &m.t[i]);
    methods_free(&m);
}
