/* html_probe.c: the report's probe and adaptation section: the tables of `bgfm report`
 * (AUC / accuracy / balanced accuracy per view and feature set, regression R2 and r) with
 * every number as written in probe.json, the few-shot curves, the embedding diagnostics
 * (effective dimension, subject share, a 2-D PCA projection of the pretrained embeddings
 * coloured by label and by site so that site effects are visible).
 * Not the probe (stages/probe) nor its text tables (stages/probe/show.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/fsutil.h"
#include "bgfm/graphs.h"
#include "bgfm/h5io.h"
#include "bgfm/probe_stage.h"
#include "bgfm/strlist.h"
#include "html_int.h"

#define MAX_POINTS 20000 /* embeddings drawn in the projection (evenly spread) */
#define MAX_SITES 8
#define NFEAT PROBE_NFEAT
#define feat probe_feat_name /* the keys the probe writes probe.json with */
static const char *const feat_title[NFEAT] = {"pretrained encoder", "random-init encoder",
                                              "FC baseline", "FC PCA", "site alone",
                                              "head motion alone"};

static void gp_name(char *dst, size_t n, const char *s) {
    size_t k = 0;
    for (; *s && k + 1 < n; s++) dst[k++] = *s == '\'' ? '`' : *s;
    dst[k] = '\0';
}

static void attr_id(html_page *p, const char *pre, const wd_stage *s, const char *post) {
    hp_raw(p, " id=\"%s-", pre);
    hp_text(p, s->name);
    if (post) {
        hp_raw(p, "-");
        hp_text(p, post);
    }
    hp_raw(p, "\"");
}

static void cls_rows(html_page *p, const char *view, const json_node *b) {
    static const char *const m[3] = {"auc", "accuracy", "balanced_accuracy"};
    for (int t = 0; t < NFEAT; t++) {
        const json_node *c = json_get(b, feat[t]);
        if (!c) continue;
        hp_raw(p, "<tr data-view=\"");
        hp_text(p, view);
        hp_raw(p, "\" data-feat=\"%s\">", feat[t]);
        hp_cell(p, t ? "" : view);
        hp_cell(p, feat_title[t]);
        for (int k = 0; k < 3; k++) {
            char sd[40];
            snprintf(sd, sizeof sd, "%s_sd", m[k]);
            hp_num(p, json_num(c, m[k]), 3);
            hp_num(p, json_num(c, sd), 3);
        }
        hp_raw(p, "</tr>\n");
    }
}

static void cls_table(html_page *p, const wd_stage *s, const json_node *r) {
    hp_raw(p, "<table");
    attr_id(p, "probe", s, NULL);
    hp_raw(p, "><tr><th>view</th><th>features</th><th>AUC</th><th>sd</th><th>accuracy</th>"
              "<th>sd</th><th>balanced accuracy</th><th>sd</th></tr>\n");
    cls_rows(p, "pooled", json_get(r, "pooled"));
    const json_node *at = json_get(r, "atlases");
    for (int i = 0; at && at->k == JSON_OBJ && i < at->n; i++) cls_rows(p, at->keys[i], &at->kid[i]);
    hp_raw(p, "</table>\n<p class=\"note\">Mean and sd over draws x folds (folds grouped by "
              "subject), as in probe.json.</p>\n");
}

/* few-shot rows (key "k" or "n") as a table and a curve with the sd as error bars */
static void few_shot(html_page *p, const wd_stage *s, const json_node *fs, const char *key,
                     const char *eff, const char *what, const char *idpost) {
    if (!fs || fs->k != JSON_ARR || !fs->n) return;
    hp_raw(p, "<table");
    attr_id(p, "fewshot", s, idpost);
    hp_raw(p, "><tr><th>%s</th><th>%s</th>", key, eff);
    for (int t = 0; t < NFEAT; t++) hp_raw(p, "<th>%s</th><th>sd</th>", feat_title[t]);
    hp_raw(p, "</tr>\n");
    char dn[32], cap[600], plot[1600];
    FILE *f = hp_data(p, dn, sizeof dn);
    for (int i = 0; i < fs->n; i++) {
        const json_node *r = &fs->kid[i], *k = json_get(r, key);
        hp_raw(p, "<tr>");
        if (k && k->k == JSON_STR) hp_cell(p, k->str);
        else hp_num(p, k ? k->num : (double)NAN, 0);
        hp_num(p, json_num(r, eff), 2);
        if (f) fprintf(f, "%.9g", json_num(r, eff));
        for (int t = 0; t < NFEAT; t++) {
            char sd[40];
            snprintf(sd, sizeof sd, "%s_sd", feat[t]);
            hp_num(p, json_num(r, feat[t]), 3);
            hp_num(p, json_num(r, sd), 3);
            if (f) fprintf(f, " %.9g %.9g", json_num(r, feat[t]), json_num(r, sd));
        }
        if (f) fputc('\n', f);
        hp_raw(p, "</tr>\n");
    }
    hp_raw(p, "</table>\n");
    hp_data_close(p, f, dn);
    int finite = 0; /* gnuplot stops on a plot without one defined point */
    for (int i = 0; i < fs->n; i++)
        for (int t = 0; t < NFEAT; t++)
            finite |= isfinite(json_num(&fs->kid[i], feat[t])) && json_num(&fs->kid[i], eff) > 0;
    if (!f || !finite) return;
    size_t w = (size_t)snprintf(plot, sizeof plot, "plot ");
    for (int t = 0; t < NFEAT; t++)
        w += (size_t)snprintf(plot + w, sizeof plot - w, "%s'%s' u ($1*(1+0.012*%d)):%d:%d with "
                              "yerrorlines lt %d title '%s'", t ? ", " : "", dn, t - 2, 2 + 2 * t,
                              3 + 2 * t, t + 1, feat_title[t]);
    snprintf(cap, sizeof cap, "Stage %s: few-shot %s against the %s (mean +- sd over draws x "
             "folds; points of the feature sets shifted a little sideways to be seen).",
             s->name, what, !strcmp(key, "k") ? "labelled training subjects per class"
                                              : "training subjects");
    hp_fig(p, 620, 340, cap, "set xlabel '%s'\nset ylabel '%s'\nset key outside right\n"
           "set logscale x 2\n%s", !strcmp(key, "k") ? "labelled training subjects per class (k)"
                                                     : "training subjects (n)",
           what, plot);
}

/* the labelled subjects per site and label, and the chi-squared test ("label_site") */
static void label_site(html_page *p, const wd_stage *s, const json_node *r) {
    char *txt = probe_label_site_text(r);
    if (!txt) return;
    const json_node *ls = json_get(r, "label_site");
    double pv = json_num(ls, "p");
    hp_raw(p, "<p class=\"note\"");
    attr_id(p, "labelsite", s, NULL);
    hp_raw(p, ">Labelled subjects per site and label ");
    hp_text(p, txt);
    free(txt);
    if (isnan(pv)) hp_raw(p, ". Chi-squared test: n/a (fewer than two sites or labels).</p>\n");
    else
        hp_raw(p, ". Chi-squared %.3f, dof %.0f, p = %.3g%s</p>\n", json_num(ls, "chi2"),
               json_num(ls, "dof"), pv,
               pv < 0.05 ? ": <strong>the label is unevenly spread over the sites</strong>; a feature "
                           "set that encodes the site can predict the label through it."
                         : ".");
}

static void dim_table(html_page *p, const wd_stage *s, const json_node *r) {
    const json_node *ed = json_get(r, "effective_dim"), *sh = json_get(r, "subject_variance_share"),
                    *lsh = json_get(r, "label_variance_share"),
                    *tsh = json_get(r, "site_variance_share"), *at = json_get(r, "atlases");
    if (!ed || ed->k != JSON_OBJ) return;
    hp_raw(p, "<table");
    attr_id(p, "dim", s, NULL);
    hp_raw(p, "><tr><th>atlas</th><th>features</th><th>effective dimension</th><th>feature "
              "count</th><th>share of variance between subjects</th><th>between labels</th><th>between "
              "sites</th></tr>\n");
    for (int i = 0; i < ed->n; i++) {
        const json_node *nf = json_get(json_get(at, ed->keys[i]), "n_features");
        for (int t = 0; t < NFEAT; t++) {
            hp_raw(p, "<tr data-atlas=\"");
            hp_text(p, ed->keys[i]);
            hp_raw(p, "\" data-feat=\"%s\">", feat[t]);
            hp_cell(p, t ? "" : ed->keys[i]);
            hp_cell(p, feat_title[t]);
            hp_num(p, json_num(&ed->kid[i], feat[t]), 2);
            hp_num(p, json_num(nf, feat[t]), 0);
            hp_num(p, json_num(json_get(sh, ed->keys[i]), feat[t]), 3);
            hp_num(p, json_num(json_get(lsh, ed->keys[i]), feat[t]), 3);
            hp_num(p, json_num(json_get(tsh, ed->keys[i]), feat[t]), 3);
            hp_raw(p, "</tr>\n");
        }
    }
    hp_raw(p, "</table>\n<p class=\"note\">Effective dimension: participation ratio of the "
              "features' covariance (1 = collapsed onto one axis); a pretrained encoder far below "
              "the random one has collapsed; a large share between sites means the features carry the "
              "scanner as much as the person (docs/probe.md).</p>\n");
    label_site(p, s, r);
}

static void reg_rows(html_page *p, const char *view, const json_node *b) {
    for (int t = 0; t < NFEAT; t++) {
        const json_node *c = json_get(b, feat[t]);
        if (!c) continue;
        hp_raw(p, "<tr data-view=\"");
        hp_text(p, view);
        hp_raw(p, "\" data-feat=\"%s\">", feat[t]);
        hp_cell(p, t ? "" : view);
        hp_cell(p, feat_title[t]);
        hp_num(p, json_num(c, "r2"), 3);
        hp_num(p, json_num(c, "r2_sd"), 3);
        hp_num(p, json_num(c, "r2_oof"), 3);
        hp_num(p, json_num(c, "pearson_r"), 3);
        hp_raw(p, "</tr>\n");
    }
    if (!json_get(b, "train_mean_r2")) return; /* a report from before the null model */
    hp_raw(p, "<tr data-view=\"");
    hp_text(p, view);
    hp_raw(p, "\" data-feat=\"train_mean\">");
    hp_cell(p, "");
    hp_cell(p, "null model (training mean)");
    hp_num(p, json_num(b, "train_mean_r2"), 3);
    hp_num(p, json_num(b, "train_mean_r2_sd"), 3);
    hp_num(p, (double)NAN, 3);
    hp_num(p, (double)NAN, 3);
    hp_raw(p, "</tr>\n");
}

static void regression(html_page *p, const wd_stage *s, const json_node *r) {
    const json_node *rg = json_get(r, "regression");
    for (int i = 0; rg && rg->k == JSON_OBJ && i < rg->n; i++) {
        const json_node *b = &rg->kid[i];
        if (b->k != JSON_OBJ || !strcmp(rg->keys[i], "mean")) continue;
        hp_raw(p, "<h4>Regression of ");
        hp_text(p, rg->keys[i]);
        hp_raw(p, " (ridge)</h4>\n<table");
        attr_id(p, "reg", s, rg->keys[i]);
        hp_raw(p, "><tr><th>view</th><th>features</th><th>R2 (folds)</th><th>sd</th><th>R2 "
                  "out of fold</th><th>Pearson r</th></tr>\n");
        reg_rows(p, "pooled", json_get(b, "pooled"));
        const json_node *at = json_get(b, "atlases");
        for (int a = 0; at && at->k == JSON_OBJ && a < at->n; a++) reg_rows(p, at->keys[a], &at->kid[a]);
        hp_raw(p, "</table>\n<p class=\"note\">The null model predicts every test subject by "
                  "the training subjects' mean: a feature set below it predicts worse than "
                  "ignoring the features (docs/probe.md).</p>\n");
        char what[300], nm[200];
        gp_name(nm, sizeof nm, rg->keys[i]);
        snprintf(what, sizeof what, "R2 of %s (pooled view)", nm);
        few_shot(p, s, json_get(b, "few_shot"), "n", "n_effective", what, rg->keys[i]);
    }
}

/* ---- the embeddings' 2-D projection ------------------------------------------------------ */

/* the two leading eigenvectors of the symmetric E x E matrix C (power iteration with
 * deflation, deterministic start); their eigenvalues in lam. BGFM_ENOMEM (in e) when out
 * of memory. */
static int top2(double *C, int E, double *v, double lam[2], bgfm_err *e) {
    double *y = bgfm_malloc(e, (size_t)E * sizeof *y, "report power iteration");
    if (!y) {
        lam[0] = lam[1] = NAN;
        return BGFM_ENOMEM;
    }
    for (int c = 0; c < 2; c++) {
        double *x = v + (size_t)c * (size_t)E, l = 0;
        for (int i = 0; i < E; i++) x[i] = 1.0 + 0.01 * (i % 7) + (c ? (i % 2 ? -1 : 1) : 0);
        for (int it = 0; it < 500; it++) {
            double nrm = 0;
            for (int i = 0; i < E; i++) {
                double a = 0;
                for (int j = 0; j < E; j++) a += C[(size_t)i * E + j] * x[j];
                y[i] = a;
                nrm += a * a;
            }
            nrm = sqrt(nrm);
            if (!(nrm > 0)) break;
            double diff = 0;
            for (int i = 0; i < E; i++) {
                diff += fabs(y[i] / nrm - x[i]);
                x[i] = y[i] / nrm;
            }
            l = nrm;
            if (diff < 1e-10 * E) break;
        }
        lam[c] = l;
        for (int i = 0; i < E; i++) /* deflate */
            for (int j = 0; j < E; j++) C[(size_t)i * E + j] -= l * x[i] * x[j];
    }
    free(y);
    return 0;
}

typedef struct emb {
    int64_t n, E;
    double *x;   /* n x E (the kept rows) */
    int64_t *g;  /* n store indices */
} emb;

static int emb_read(const char *path, emb *m, bgfm_err *e) {
    memset(m, 0, sizeof *m);
    hid_t f = h5io_open(MPI_COMM_SELF, path, e);
    if (f < 0) return e->code ? e->code : BGFM_EDATA;
    int r = 0;
    hsize_t d[8];
    int rc = h5io_dims(f, "/pretrained", &r, d, e);
    if (!rc && r != 2) rc = bgfm_fail(e, BGFM_EDATA, "%s: /pretrained is not 2-D", path);
    int64_t n = rc ? 0 : (int64_t)d[0], E = rc ? 0 : (int64_t)d[1];
    int64_t keep = n < MAX_POINTS ? n : MAX_POINTS;
    int64_t *g = rc ? NULL : bgfm_malloc(e, (size_t)n * sizeof *g + 1, "graph indices");
    m->x = rc ? NULL : bgfm_malloc(e, (size_t)(keep * E) * sizeof *m->x + 1, "embeddings");
    m->g = rc ? NULL : bgfm_malloc(e, (size_t)keep * sizeof *m->g + 1, "graph indices");
    if (!rc && (!g || !m->x || !m->g)) rc = BGFM_ENOMEM;
    if (!rc) rc = h5io_read_all(f, "/graph", H5T_NATIVE_INT64, n, g, e);
    /* every (n / keep)-th row, one read each: at most MAX_POINTS small reads */
    for (int64_t k = 0; !rc && k < keep; k++) {
        int64_t row = k * n / keep;
        m->g[k] = g[row];
        rc = h5io_read_rows(f, "/pretrained", H5T_NATIVE_DOUBLE, row, 1, m->x + k * E, e);
    }
    m->n = keep;
    m->E = E;
    free(g);
    bgfm_err ignore = {0};
    h5io_close(&f, path, rc ? &ignore : e);
    if (!rc && e->code) rc = e->code;
    if (rc) {
        free(m->x);
        free(m->g);
        memset(m, 0, sizeof *m);
    }
    return rc;
}

/* pc[2n]: the rows' scores on the two leading principal axes; share[2] of the variance.
 * BGFM_ENOMEM (in e) when out of memory. */
static int project(emb *m, double *pc, double share[2], bgfm_err *e) {
    int64_t n = m->n, E = m->E;
    double *mu = bgfm_calloc(e, (size_t)E, sizeof *mu, "report embedding means"),
           *C = bgfm_calloc(e, (size_t)(E * E), sizeof *C, "report embedding covariance"),
           *v = bgfm_calloc(e, (size_t)(2 * E), sizeof *v, "report principal axes");
    if (!mu || !C || !v) {
        free(mu), free(C), free(v);
        return BGFM_ENOMEM;
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < E; j++) mu[j] += m->x[i * E + j] / (double)n;
    double tr = 0;
    for (int64_t i = 0; i < n; i++) {
        double *x = m->x + i * E;
        for (int64_t j = 0; j < E; j++) x[j] -= mu[j];
        for (int64_t a = 0; a < E; a++)
            for (int64_t b = 0; b <= a; b++) C[a * E + b] += x[a] * x[b];
    }
    for (int64_t a = 0; a < E; a++) {
        for (int64_t b = 0; b < a; b++) C[b * E + a] = C[a * E + b];
        tr += C[a * E + a];
    }
    double lam[2];
    if (top2(C, (int)E, v, lam, e)) {
        free(mu), free(C), free(v);
        return BGFM_ENOMEM;
    }
    share[0] = tr > 0 ? lam[0] / tr : (double)NAN;
    share[1] = tr > 0 ? lam[1] / tr : (double)NAN;
    for (int64_t i = 0; i < n; i++)
        for (int c = 0; c < 2; c++) {
            double s = 0;
            for (int64_t j = 0; j < E; j++) s += m->x[i * E + j] * v[c * E + j];
            pc[2 * i + c] = s;
        }
    free(mu), free(C), free(v);
    return 0;
}

/* the label names (timeseries.h5 /subjects/label attribute classes, of the parcellate stage
 * before the connectivity stage cs), for the legend; none when unreadable */
static void class_names(const wd *w, const wd_stage *cs, char ***names, int *n) {
    *names = NULL;
    *n = 0;
    const wd_stage *ps = cs ? wd_before(w, cs, "parcellate") : NULL;
    if (!ps || !ps->complete) return;
    char path[8300];
    snprintf(path, sizeof path, "%s/timeseries.h5", ps->dir);
    bgfm_err e = {0};
    hid_t f = h5io_open(MPI_COMM_SELF, path, &e);
    char *cl = NULL;
    if (f >= 0 && h5io_attr_exists(f, "/subjects/label", "classes") &&
        !h5io_attr_get_str(f, "/subjects/label", "classes", &cl, &e) && cl[0])
        strlist_split(cl, ',', names, n, &e);
    free(cl);
    h5io_close(&f, path, &e);
}

static void projection(html_page *p, const wd *w, const wd_stage *s, const json_node *r) {
    const json_node *gp = json_get(r, "graphs");
    const wd_stage *cs = wd_before(w, s, "connectivity");
    char store[8300], path[8300];
    if (gp && gp->k == JSON_STR && fs_exists(gp->str)) snprintf(store, sizeof store, "%s", gp->str);
    else if (cs) snprintf(store, sizeof store, "%s/index.h5", cs->dir);
    else return;
    snprintf(path, sizeof path, "%s/report/embeddings.h5", s->dir);
    if (!fs_exists(path)) return;
    emb m;
    graphs_store *gs = NULL;
    bgfm_err e = {0};
    if (emb_read(path, &m, &e) || graphs_open(store, &gs, &e)) {
        hp_problem(p, e.code, "embedding projection: %s", e.msg);
        free(m.x), free(m.g);
        return;
    }
    double *pc = bgfm_malloc(p->e, (size_t)(2 * m.n) * sizeof *pc + 1, "report projection"),
           share[2];
    char sites[MAX_SITES][64], dn[32], cap[800], plot[6000];
    int ns = 0, ok = pc && !project(&m, pc, share, p->e);
    if (!ok) p->failed = 1; /* out of memory: the page is abandoned */
    FILE *f = ok ? hp_data(p, dn, sizeof dn) : NULL;
    int64_t maxl = -1;
    for (int64_t i = 0; f && i < m.n; i++) {
        if (m.g[i] < 0 || m.g[i] >= graphs_count(gs)) continue;
        const char *st = graphs_site(gs, m.g[i]);
        int si = -1;
        for (int k = 0; k < ns && si < 0; k++) si = strcmp(sites[k], st) ? -1 : k;
        if (si < 0 && ns < MAX_SITES) snprintf(sites[si = ns++], 64, "%s", st);
        int64_t lab = graphs_get_meta(gs, m.g[i])->label;
        maxl = lab > maxl ? lab : maxl;
        fprintf(f, "%.6g %.6g %lld %d\n", pc[2 * i], pc[2 * i + 1], (long long)lab, si < 0 ? MAX_SITES : si);
    }
    hp_data_close(p, f, dn);
    if (f && maxl <= 64) {
        size_t k = (size_t)snprintf(plot, sizeof plot, "set multiplot layout 1,2\nset title "
                                    "'coloured by label'\nplot '%s' u 1:($3<0?$2:1/0) with points "
                                    "pt 7 ps 0.4 lc rgb '#bbbbbb' title 'no label'", dn);
        char **cn = NULL;
        int ncn = 0;
        class_names(w, wd_before(w, s, "connectivity"), &cn, &ncn);
        for (int64_t l = 0; l <= maxl && k < sizeof plot - 300; l++) {
            char nm[80];
            if (l < ncn) gp_name(nm, sizeof nm, cn[l]);
            else snprintf(nm, sizeof nm, "label %lld", (long long)l);
            k += (size_t)snprintf(plot + k, sizeof plot - k, ", '' u 1:($3==%lld?$2:1/0) with points "
                                  "lt %lld title '%s'", (long long)l, (long long)l + 1, nm);
        }
        strlist_free(cn, ncn);
        k += (size_t)snprintf(plot + k, sizeof plot - k, "\nset title 'coloured by site'\nplot ");
        for (int g = 0; g < ns && k < sizeof plot - 300; g++) {
            char nm[80];
            gp_name(nm, sizeof nm, sites[g][0] ? sites[g] : "(no site)");
            k += (size_t)snprintf(plot + k, sizeof plot - k, "%s'%s' u 1:($4==%d?$2:1/0) with points "
                                  "lt %d title '%s'", g ? ", " : "", dn, g, g + 1, nm);
        }
        snprintf(plot + k, sizeof plot - k, "%s'%s' u 1:($4==%d?$2:1/0) with points lt 8 title "
                 "'other sites'\nunset multiplot", ns ? ", " : "", dn, MAX_SITES);
        snprintf(cap, sizeof cap, "Stage %s: the pretrained encoder's graph embeddings (%lld "
                 "graphs%s) on their first two principal axes (%.1f %% and %.1f %% of the "
                 "variance), coloured by label (left) and by site (right): points that group by "
                 "site rather than by label show a site effect.", s->name, (long long)m.n,
                 m.n == MAX_POINTS ? ", evenly sampled" : "", 100 * share[0], 100 * share[1]);
        hp_fig(p, 960, 420, cap, "set xlabel 'principal axis 1 (embedding units)'\nset ylabel "
               "'principal axis 2 (embedding units)'\nset key bottom right font ',8'\n%s", plot);
    }
    free(pc);
    free(m.x);
    free(m.g);
    graphs_close(&gs);
}

void html_sec_probe(html_page *p, const wd *w, const wd_stage *s) {
    hp_raw(p, "<h3");
    attr_id(p, "probe-stage", s, NULL);
    hp_raw(p, ">Stage ");
    hp_text(p, s->name);
    hp_raw(p, "</h3>\n");
    char path[8300];
    if (!s->complete) {
        hp_stage_problem(p, s, NULL, "No probe results.");
        return;
    }
    snprintf(path, sizeof path, "%s/report/probe.json", s->dir);
    char *text = NULL;
    size_t len = 0;
    json_node r;
    memset(&r, 0, sizeof r);
    bgfm_err e = {0};
    if (fs_read_all(path, &text, &len, &e) || json_parse(text, len, &r) || r.k != JSON_OBJ) {
        hp_problem(p, e.code ? e.code : BGFM_EDATA, "cannot read the probe report %s%s%s", path,
                   e.code ? ": " : " (not valid JSON)", e.msg);
        free(text);
        json_free(&r);
        return;
    }
    free(text);
    const json_node *cls = json_get(&r, "classes"), *proto = json_get(&r, "protocol");
    hp_raw(p, "<p>%.0f subjects, %.0f labelled graphs, %d classes; %.0f folds grouped by subject "
              "x %.0f draws; protocol ", json_num(&r, "n_subjects"), json_num(&r, "n_graphs"),
           cls ? cls->n : 0, json_num(&r, "folds"),
           isnan(json_num(&r, "repeats")) ? 1.0 : json_num(&r, "repeats"));
    hp_text(p, proto && proto->k == JSON_STR ? proto->str : "?");
    hp_raw(p, " (pretraining read %.0f graphs; %.0f probed subjects among them).</p>\n",
           json_num(&r, "pretrain_graphs"), json_num(&r, "overlap_subjects"));
    const json_node *ro = json_get(&r, "regress_out"), *mo = json_get(&r, "motion");
    if (ro && ro->k == JSON_ARR && ro->n > 0) { /* docs/probe.md "Regressing out confounds" */
        hp_raw(p, "<p class=\"note\" id=\"regress-out-%s\">Regressed out of every feature set in "
                  "each fold (fitted on the training subjects):", s->name);
        for (int i = 0; i < ro->n; i++)
            if (ro->kid[i].k == JSON_STR) {
                hp_raw(p, "%s", i ? ", " : " ");
                hp_text(p, ro->kid[i].str);
            }
        hp_raw(p, ".</p>\n");
    }
    if (mo && json_num(mo, "subjects_known") == 0)
        hp_raw(p, "<p class=\"note\">Head motion is known for no probed subject (no scan has a "
                  "confounds file with framewise_displacement): the head-motion-alone row reads "
                  "nothing.</p>\n");
    cls_table(p, s, &r);
    few_shot(p, s, json_get(&r, "few_shot"), "k", "k_effective", "AUC (pooled view)", "auc");
    hp_raw(p, "<h4>Embedding diagnostics</h4>\n");
    dim_table(p, s, &r);
    projection(p, w, s, &r);
    regression(p, s, &r);
    json_free(&r);
}
