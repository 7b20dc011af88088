/* report.c: `bgfm report WORKDIR [--html]`: a short table of every probe stage's
 * report/probe.json in WORKDIR (AUC / accuracy / balanced accuracy with their sd over
 * draws x folds, the few-shot AUCs, the effective dimension of each feature set, and the
 * regression of numeric targets), then any scaling*.csv found in WORKDIR or its stage
 * folders; with --html the run report page instead (html.h).
 * Not the probe, which prints its own report (stages/probe/show.c). */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/cli.h"
#include "bgfm/fsutil.h"
#include "bgfm/html.h"
#include "bgfm/probe_stage.h"

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

static int report_run(const char *wd, bgfm_err *e) {
    DIR *d = opendir(wd);
    if (!d)
        return bgfm_fail(e, BGFM_EUSAGE, "report: cannot open the work folder '%s'; give the "
                         "pipeline's workdir", wd);
    char **names = NULL;
    int n = 0, cap = 0, rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **t = realloc(names, (size_t)cap * sizeof *t);
            if (!t) {
                rc = bgfm_fail(e, BGFM_ENOMEM, "report: out of memory listing %s", wd);
                break;
            }
            names = t;
        }
        if (!(names[n] = strdup(de->d_name))) {
            rc = bgfm_fail(e, BGFM_ENOMEM, "report: out of memory listing %s", wd);
            break;
        }
        n++;
    }
    closedir(d);
    if (!rc && n) qsort(names, (size_t)n, sizeof *names, name_cmp);
    int found = 0;
    char path[8192];
    for (int i = 0; i < n && !rc; i++) {
        snprintf(path, sizeof path, "%s/%s/report/probe.json", wd, names[i]);
        if (fs_exists(path)) {
            rc = probe_report_print(path, names[i], e);
            found++;
        }
    }
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
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    if (!rc && !found)
        rc = bgfm_fail(e, BGFM_EUSAGE, "report: no <stage>/report/probe.json in '%s'; run a "
                       "pipeline with a probe stage first (docs/probe.md)", wd);
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
                   "Pearson r of every regression target; then any\nscaling*.csv in WORKDIR or "
                   "its stage folders.\n\n  --html  instead, write the run report page "
                   "WORKDIR/report/index.html (one\n          self-contained file: dataset, QC, "
                   "training curves, probe, provenance;\n          docs/report.md). A figure "
                   "gnuplot cannot draw is an error here\n          (exit 2 without gnuplot, 4 "
                   "when it fails) and no page is written.\n");
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
