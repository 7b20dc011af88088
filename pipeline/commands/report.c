/* report.c: `bgfm report WORKDIR [--html]`: a short table of every probe stage's
 * report/probe.json in WORKDIR (AUC / accuracy / balanced accuracy with their sd over
 * draws x folds, the few-shot AUCs, the effective dimension of each feature set, and the
 * regression of numeric targets), one of every adaptation stage's report (finetune.json,
 * prompt.json: per encoder and few-shot level), the table of all methods on the same
 * folds (methods.h), then any scaling*.csv found in WORKDIR or its stage folders; with
 * --html the run report page instead (html.h).
 * Not the probe, which prints its own report (stages/probe/show.c). */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/cli.h"
#include "bgfm/fsutil.h"
#include "bgfm/html.h"
#include "bgfm/methods.h"
#include "bgfm/probe_stage.h"
#include "bgfm/strlist.h"

static int is_scaling_csv(const char *n) {
    size_t l = strlen(n);
    return !strncmp(n, "scaling", 7) && l > 4 && !strcmp(n + l - 4, ".csv");
}

static void print_csv(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    printf("scaling: %s\n", path);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f) && n < 40) {
        for (char *c = line; *c; c++)
            if (*c == ',') *c = '\t';
        printf("  %s", line);
        n++;
    }
    if (n == 40) printf("  ...\n");
    fclose(f);
    printf("\n");
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void print_pm(double m, double sd) {
    if (!isfinite(m)) printf("  %-17s", "n/a");
    else printf("  %7.4f +- %-6.4f", m, isfinite(sd) ? sd : 0.0);
}

static void print_opt(double v, int dec, int w) {
    if (isfinite(v)) printf("  %*.*f", w, dec, v);
    else printf("  %*s", w, "n/a");
}

/* one adaptation stage: encoder x few-shot level */
static void print_adapt(const methods_report *a, const char *note) {
    const json_node *j = &a->j, *t = json_get(j, "train"), *en = json_get(j, "encoders");
    const char *tg = methods_target(a), *m = methods_metric(a);
    printf("%s stage '%s' (%s)\n  %s of %s, %.0f subjects, %.0f folds grouped by subject x %.0f "
           "draws, seed %.0f; train %s; %.0f trainable parameters (model %.0f); fits %.1f s\n",
           a->kind, a->stage, a->path, tg ? "regression" : "classification", tg ? tg : "the label",
           json_num(j, "n_subjects"), json_num(j, "folds"), json_num(j, "repeats"),
           json_num(j, "seed"), t && t->k == JSON_STR ? t->str : "?",
           json_num(j, "trainable_params"), json_num(j, "model_params"), json_num(j, "wall_seconds"));
    printf("\n%-12s %-6s %-7s  %-17s  %10s  %9s\n", "encoder", tg ? "n" : "k", tg ? "n_eff" : "k_eff",
           !strcmp(m, "r2") ? "R2" : "AUC", "trainable", "seconds");
    methods_level lv[METHODS_MAXLEV];
    for (int i = 0; en && en->k == JSON_OBJ && i < en->n; i++) {
        int n = methods_levels(a, &en->kid[i], lv, METHODS_MAXLEV);
        for (int l = 0; l < n; l++) {
            char k[24];
            methods_level_text(lv[l].k, k, sizeof k);
            printf("%-12s %-6s %-7.2f", en->keys[i], k, lv[l].keff);
            print_pm(lv[l].mean, lv[l].sd);
            print_opt(json_num(j, "trainable_params"), 0, 10);
            print_opt(lv[l].seconds, 2, 9);
            printf("\n");
        }
    }
    if (note && note[0]) printf("  not in a table with a probe: %s\n", note);
    printf("\n");
}

/* every method on the same folds: rows methods, columns few-shot levels */
static void print_table(const methods_table *t) {
    int r2 = !strcmp(t->metric, "r2"), w = 12;
    for (int i = 0; i < t->nr; i++) {
        int l = (int)(strlen(t->row[i].src->stage) + 1 + strlen(t->row[i].feat));
        w = l > w ? l : w;
    }
    printf("all methods: %s%s (mean +- sd over %d draw%s x folds%s), ", r2 ? "R2 of " : "AUC",
           r2 ? t->target : "", t->draws, t->draws == 1 ? "" : "s",
           t->probe ? "; probe: pooled view" : "");
    if (t->probe) printf("on the folds of probe stage '%s'", t->probe->stage);
    else printf("no probe stage on these folds");
    if (t->probe && t->draws < t->probe_draws)
        printf(" (its draws 0..%d of %d, from its cells.csv)", t->draws - 1, t->probe_draws);
    printf("; columns: %s\n%-*s", r2 ? "n training subjects" : "k labelled training subjects per "
           "class", w, "method");
    for (int l = 0; l < t->nl; l++) {
        char k[24], h[32];
        methods_level_text(t->level[l], k, sizeof k);
        snprintf(h, sizeof h, "%s=%s", r2 ? "n" : "k", k);
        printf("  %-17s", h);
    }
    printf("  %10s  %9s\n", "trainable", "seconds");
    for (int i = 0; i < t->nr; i++) {
        const methods_row *r = &t->row[i];
        char lab[600];
        snprintf(lab, sizeof lab, "%s %s", r->src->stage, r->feat);
        printf("%-*s", w, lab);
        for (int l = 0; l < t->nl; l++) print_pm(r->mean[l], r->sd[l]);
        print_opt(r->params, 0, 10);
        print_opt(r->seconds, 2, 9);
        printf("\n");
    }
    printf("\n");
}

static int report_run(const char *wd, bgfm_err *e) {
    DIR *d = opendir(wd);
    if (!d)
        return bgfm_fail(e, BGFM_EUSAGE, "report: cannot open the work folder '%s'; give the "
                         "pipeline's workdir", wd);
    char **names = NULL, **dirs = NULL;
    int n = 0, cap = 0, rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **t = bgfm_realloc(e, names, (size_t)cap * sizeof *t, "work folder names");
            if (!t) {
                rc = BGFM_ENOMEM;
                break;
            }
            names = t;
        }
        if (!(names[n] = bgfm_strdup(e, de->d_name))) {
            rc = BGFM_ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (!rc && n) qsort(names, (size_t)n, sizeof *names, name_cmp);
    if (!rc && n && !(dirs = bgfm_calloc(e, (size_t)n, sizeof *dirs, "work folder paths")))
        rc = BGFM_ENOMEM;
    for (int i = 0; i < n && !rc; i++)
        if (!(dirs[i] = fs_join(wd, names[i], e))) rc = BGFM_ENOMEM;
    methods_set m;
    memset(&m, 0, sizeof m);
    if (!rc) rc = methods_read(&m, n, names, dirs, e);
    for (int i = 0; i < m.np && !rc; i++) rc = probe_report_print(m.probe[i].path, m.probe[i].stage, e);
    for (int i = 0; i < m.na && !rc; i++) print_adapt(&m.ad[i], m.note[i]);
    for (int i = 0; i < m.nt && !rc; i++) print_table(&m.t[i]);
    char path[8192];
    for (int i = 0; i < n && !rc; i++) {
        snprintf(path, sizeof path, "%s/%s", wd, names[i]);
        if (is_scaling_csv(names[i])) print_csv(path);
        else if (fs_is_dir(path)) {
            DIR *s = opendir(path);
            struct dirent *q;
            while (s && (q = readdir(s)) != NULL) {
                char p2[8448];
                snprintf(p2, sizeof p2, "%s/%s", path, q->d_name);
                if (is_scaling_csv(q->d_name)) print_csv(p2);
            }
            if (s) closedir(s);
        }
    }
    int found = m.np + m.na;
    methods_free(&m);
    if (names) strlist_free(names, n);
    if (dirs) strlist_free(dirs, n);
    if (!rc && !found)
        rc = bgfm_fail(e, BGFM_EUSAGE, "report: no <stage>/report/probe.json and no adaptation "
                       "report (<stage>/report/finetune.json, ...) in '%s'; run a pipeline with a "
                       "probe or finetune stage first (docs/probe.md, docs/adapt.md)", wd);
    return rc;
}

/* --html: the page, strictly (a figure gnuplot cannot draw is an error, no page written) */
static int report_html(const char *wd, bgfm_err *e) {
    html_report_stats st;
    int rc = html_report_write(wd, 1, &st, e);
    if (!rc)
        printf("report: %s (%d sections, %d figures, %.0f kB)\n", st.path, st.sections, st.figures,
               (double)st.bytes / 1024.0);
    return rc;
}

int cmd_report(bgfm_ctx *ctx, int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        if (ctx->rank == 0)
            printf("usage: bgfm report WORKDIR [--html]\n\nPrints a table of every probe stage's "
                   "WORKDIR/<stage>/report/probe.json:\nAUC, accuracy and balanced accuracy "
                   "(mean +- sd over draws x folds) of the\npretrained encoder, the random-init "
                   "encoder, the FC baseline and its PCA per view\n(pooled, each atlas), the "
                   "few-shot AUCs, the effective dimension of each\nfeature set, the R2 and "
                   "Pearson r of every regression target; one of every\nadaptation stage's "
                   "report (finetune.json, prompt.json): AUC or R2 per\nencoder and few-shot "
                   "level, trainable parameters, fit seconds; the table\nof all methods on the "
                   "same folds (probe feature sets and adapted encoders\nas rows, few-shot "
                   "levels as columns; docs/adapt.md); then any\nscaling*.csv in WORKDIR or "
                   "its stage folders.\n\n  --html  instead, write the run report page "
                   "WORKDIR/report/index.html (one\n          self-contained file: dataset, QC, "
                   "training curves, probe and\n          adaptation, provenance; docs/report.md). "
                   "A figure gnuplot\n          cannot draw is an error here (exit 2 without "
                   "gnuplot, 4\n          when it fails) and no page is written.\n");
        return 0;
    }
    int rc = 0, html = 0;
    const char *wd = NULL;
    for (int i = 1; i < argc && !rc; i++) {
        if (!strcmp(argv[i], "--html")) html = 1;
        else if (argv[i][0] == '-')
            rc = bgfm_fail(&ctx->err, BGFM_EUSAGE, "report: unknown option '%s' (bgfm report "
                           "WORKDIR [--html])", argv[i]);
        else if (wd)
            rc = bgfm_fail(&ctx->err, BGFM_EUSAGE, "report: one work folder at a time ('%s' and "
                           "'%s')", wd, argv[i]);
        else wd = argv[i];
    }
    if (!rc && !wd)
        rc = bgfm_fail(&ctx->err, BGFM_EUSAGE, "report: expected one argument, the work folder "
                       "(bgfm report WORKDIR [--html])");
    else if (!rc && ctx->rank == 0)
        rc = html ? report_html(wd, &ctx->err) : report_run(wd, &ctx->err);
    fflush(stdout);
    return bgfm_ctx_agree(ctx, rc);
}
