/* html_train.c: the report's pretraining section (loss per term, learning rate, gradient
 * norm, throughput, the compute / communication / I/O split per step, checkpoints and
 * resumes, from metrics.jsonl and the stage folder) and the scaling studies found under
 * the workdir (bgfm scale's CSV and plots). Not the training itself (stages/pretrain). */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bgfm/fsutil.h"
#include "html_int.h"

#define MAX_POINTS 2000 /* points per curve: longer runs are averaged over buckets of steps */

static double stepv(const wd_stage *s, int64_t i, int v) { return s->step[i * WD_NV + v]; }

/* a log-scale curve needs one positive value (gnuplot stops on an all-undefined plot) */
static int any_positive(const wd_stage *s, int v) {
    for (int64_t i = 0; i < s->nstep; i++)
        if (isfinite(stepv(s, i, v)) && stepv(s, i, v) > 0) return 1;
    return 0;
}

/* the curves' data file: step and the bucket means of every field */
static void curves_data(html_page *p, const wd_stage *s, char *dn, size_t dl) {
    FILE *f = hp_data(p, dn, dl);
    int64_t per = (s->nstep + MAX_POINTS - 1) / MAX_POINTS;
    for (int64_t b = 0; f && b < s->nstep; b += per) {
        double m[WD_NV];
        int cnt[WD_NV];
        for (int v = 0; v < WD_NV; v++) m[v] = 0, cnt[v] = 0;
        for (int64_t i = b; i < b + per && i < s->nstep; i++)
            for (int v = 0; v < WD_NV; v++)
                if (isfinite(stepv(s, i, v))) m[v] += stepv(s, i, v), cnt[v]++;
        for (int v = 0; v < WD_NV; v++) {
            if (cnt[v]) fprintf(f, "%s%.9g", v ? " " : "", m[v] / cnt[v]);
            else fprintf(f, "%sNaN", v ? " " : "");
        }
        fputc('\n', f);
    }
    hp_data_close(p, f, dn);
}

static void curves(html_page *p, const wd_stage *s) {
    char dn[32], cap[600], plot[1200];
    curves_data(p, s, dn, sizeof dn);
    if (hp_failed(p)) return;
    const char *per = s->nstep > MAX_POINTS ? " Each point is the mean over a run of steps." : "";
    /* losses: every term that was computed */
    static const int terms[] = {WD_LOSS, WD_REC, WD_ADJ, WD_CL};
    static const char *const tname[] = {"total", "reconstruction (rec)", "structure (adj)",
                                        "contrastive (cl)"};
    size_t w = (size_t)snprintf(plot, sizeof plot, "plot ");
    int n = 0;
    for (int t = 0; t < 4; t++)
        if (any_positive(s, terms[t]))
            w += (size_t)snprintf(plot + w, sizeof plot - w, "%s'%s' u 1:%d with lines lt %d title '%s'",
                                  n++ ? ", " : "", dn, terms[t] + 1, t + 1, tname[t]);
    snprintf(cap, sizeof cap, "Stage %s: training loss per term against the step (log scale; "
             "losses are global, the same on every rank).%s", s->name, per);
    if (n)
        hp_fig(p, 760, 360, cap, "set key outside right top\nset logscale y\nset xlabel 'step'\n"
               "set ylabel 'loss (log scale)'\n%s", plot);
    snprintf(cap, sizeof cap, "Stage %s: learning rate (warm-up, then the schedule).%s", s->name, per);
    hp_fig(p, 370, 280, cap, "set xlabel 'step'\nset ylabel 'learning rate'\nset format y '%%.1e'\n"
           "plot '%s' u 1:%d with lines lt 1", dn, WD_LR + 1);
    snprintf(cap, sizeof cap, "Stage %s: global gradient norm before clipping (log scale).%s",
             s->name, per);
    if (any_positive(s, WD_GN))
        hp_fig(p, 370, 280, cap, "set xlabel 'step'\nset ylabel 'gradient norm (log scale)'\n"
           "set logscale y\nplot '%s' u 1:%d with lines lt 2", dn, WD_GN + 1);
    snprintf(cap, sizeof cap, "Stage %s: throughput, graphs per second (global batch / step "
             "wall time).%s", s->name, per);
    hp_fig(p, 370, 280, cap, "set xlabel 'step'\nset ylabel 'graphs per second'\nset yrange [0:*]\n"
           "plot '%s' u 1:%d with lines lt 3", dn, WD_GPS + 1);
    snprintf(cap, sizeof cap, "Stage %s: where a step's time goes, stacked: compute (forward, "
             "backward, optimiser), communication (all-reduce, gathers, waiting for slower ranks), "
             "I/O (graph reads, checkpoint writes); each the maximum over ranks.%s", s->name, per);
    hp_fig(p, 370, 280, cap, "set xlabel 'step'\nset ylabel 'seconds per step'\nset yrange [0:*]\n"
           "set key top left\nset style fill solid 0.7 noborder\n"
           "plot '%s' u 1:($%d+$%d+$%d) with filledcurves x1 lt 2 title 'I/O', "
           "'' u 1:($%d+$%d) with filledcurves x1 lt 5 title 'communication', "
           "'' u 1:%d with filledcurves x1 lt 1 title 'compute'",
           dn, WD_COMP + 1, WD_COMM + 1, WD_IO + 1, WD_COMP + 1, WD_COMM + 1, WD_COMP + 1);
}

static int is_ckpt(const char *n) {
    size_t l = strlen(n);
    return l > 3 && !strcmp(n + l - 3, ".h5") && (!strncmp(n, "ckpt-", 5) || !strcmp(n, "final.h5"));
}

/* checkpoints in the stage folder (or, unfinished, its partial folder) */
static void checkpoints(html_page *p, const wd *w, const wd_stage *s) {
    char dir[8192];
    if (s->complete) snprintf(dir, sizeof dir, "%s/checkpoints", s->dir);
    else snprintf(dir, sizeof dir, "%s/.%s.partial/checkpoints", w->root, s->name);
    hp_raw(p, "<table id=\"checkpoints-%s\"><tr><th>checkpoint</th><th>size (MB)</th></tr>", s->name);
    int n = 0;
    for (int pass = 0; pass < 2; pass++) {
        char d2[8300];
        snprintf(d2, sizeof d2, "%s", pass ? dir : s->dir);
        if (pass == 0 && !s->complete) continue;
        DIR *d = opendir(d2);
        struct dirent *de;
        while (d && (de = readdir(d)) != NULL) {
            if (!is_ckpt(de->d_name) || (pass == 0 && strcmp(de->d_name, "final.h5"))) continue;
            char f[8600];
            struct stat sb;
            snprintf(f, sizeof f, "%s/%s", d2, de->d_name);
            if (stat(f, &sb)) continue;
            hp_raw(p, "<tr>");
            hp_cell(p, pass ? de->d_name : "final.h5");
            hp_num(p, (double)sb.st_size / 1e6, 2);
            hp_raw(p, "</tr>");
            n++;
        }
        if (d) closedir(d);
    }
    hp_raw(p, "</table>\n");
    if (!n) hp_raw(p, "<p class=\"note\">No checkpoint file in the stage folder.</p>\n");
}

static void summary(html_page *p, const wd_stage *s) {
    const int64_t last = s->nstep - 1;
    double tot[3] = {0, 0, 0}, gps = 0, epochs = 0;
    int64_t ng = 0;
    for (int64_t i = 0; i < s->nstep; i++) {
        for (int k = 0; k < 3; k++)
            if (isfinite(stepv(s, i, WD_COMP + k))) tot[k] += stepv(s, i, WD_COMP + k);
        if (isfinite(stepv(s, i, WD_GPS))) gps += stepv(s, i, WD_GPS), ng++;
        if (stepv(s, i, WD_EPOCH) + 1 > epochs) epochs = stepv(s, i, WD_EPOCH) + 1;
    }
    double all = tot[0] + tot[1] + tot[2];
    hp_raw(p, "<table id=\"pretrain-%s\" class=\"kv\">", s->name);
    static const char *const rows[] = {"steps in the latest run", "last step", "epochs",
                                       "final loss", "final loss_rec", "final loss_adj",
                                       "final loss_cl", "final learning rate",
                                       "mean graphs per second", "compute (s, sum of steps)",
                                       "communication (s)", "I/O (s)", "ranks", "resumes",
                                       "stops by a signal"};
    static const char *const keys[] = {"steps", "last_step", "epochs", "loss", "loss_rec",
                                       "loss_adj", "loss_cl", "lr", "mean_graphs_per_s",
                                       "compute_s", "comm_s", "io_s", "ranks", "resumes", "stops"};
    double v[] = {(double)s->nstep, stepv(s, last, WD_STEP), epochs, stepv(s, last, WD_LOSS),
                  stepv(s, last, WD_REC), stepv(s, last, WD_ADJ), stepv(s, last, WD_CL),
                  stepv(s, last, WD_LR), ng ? gps / (double)ng : (double)NAN, tot[0], tot[1], tot[2],
                  stepv(s, last, WD_RANKS), s->resumes, s->stops};
    static const int dec[] = {0, 0, 0, 5, 5, 5, 5, 7, 1, 2, 2, 2, 0, 0, 0};
    for (int i = 0; i < 15; i++) {
        hp_raw(p, "<tr data-k=\"%s\"><th>%s</th>", keys[i], rows[i]);
        hp_num(p, v[i], dec[i]);
        hp_raw(p, "</tr>");
    }
    hp_raw(p, "</table>\n");
    if (all > 0)
        hp_raw(p, "<p>Time split over the run: compute %.1f %%, communication %.1f %%, I/O %.1f %% "
                  "(per step, the maximum over ranks).</p>\n",
               100 * tot[0] / all, 100 * tot[1] / all, 100 * tot[2] / all);
}

void html_sec_pretrain(html_page *p, const wd *w, const wd_stage *s) {
    char st[512];
    hp_raw(p, "<h3 id=\"pretraining-%s\">Stage ", s->name);
    hp_text(p, s->name);
    hp_raw(p, "</h3>\n");
    wd_status_text(s, st, sizeof st);
    if (!s->complete || (s->last_status > 0 && s->last_status != BGFM_PARTIAL)) {
        hp_stage_problem(p, s, st, s->nstep ? "The curves show the steps it recorded." : "");
    }
    if (!s->nstep) {
        hp_raw(p, "<p class=\"note\">No train_step line of this stage in metrics.jsonl.</p>\n");
    } else {
        summary(p, s);
        if (s->resumes || s->stops)
            hp_raw(p, "<p>This run was resumed %d time(s) from a checkpoint (%d stop(s) by a "
                      "signal); the steps after the checkpoint a resume started from are shown "
                      "as the resumed run recorded them.</p>\n", s->resumes, s->stops);
        curves(p, s);
    }
    checkpoints(p, w, s);
}

/* ---- scaling studies ------------------------------------------------------------------- */

static int is_scaling_csv(const char *n) {
    size_t l = strlen(n);
    return !strncmp(n, "scaling", 7) && l > 4 && !strcmp(n + l - 4, ".csv");
}

static void one_csv(html_page *p, const char *path, const char *shown, int *k) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    if (!(*k)++) hp_head(p, 2, "scaling", "Scaling studies");
    hp_raw(p, "<h3>");
    hp_text(p, shown);
    hp_raw(p, "</h3>\n<table id=\"scaling-%d\">", *k);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f) && n < 41) {
        line[strcspn(line, "\r\n")] = '\0';
        hp_raw(p, "<tr>");
        for (char *c = line, *e; c; c = e ? e + 1 : NULL) {
            e = strchr(c, ',');
            if (e) *e = '\0';
            char *end = NULL;
            double v = strtod(c, &end);
            if (n && *c && end && !*end) hp_num(p, v, v == floor(v) && fabs(v) < 1e15 ? 0 : 3);
            else {
                hp_raw(p, n ? "<td>" : "<th>");
                hp_text(p, c);
                hp_raw(p, n ? "</td>" : "</th>");
            }
        }
        hp_raw(p, "</tr>\n");
        n++;
    }
    fclose(f);
    hp_raw(p, "</table>\n");
    static const char *const plots[] = {"speedup", "efficiency", "split"};
    size_t l = strlen(path);
    for (int i = 0; i < 3; i++) {
        char png[8300], cap[700];
        snprintf(png, sizeof png, "%.*s-%s.png", (int)(l - 4), path, plots[i]);
        snprintf(cap, sizeof cap, "%s (bgfm scale's plot: %s)", shown, plots[i]);
        struct stat sb;
        if (!stat(png, &sb) && sb.st_size < 2000000) hp_fig_png(p, png, cap);
    }
}

void html_sec_scaling(html_page *p, const wd *w) {
    int k = 0;
    char path[8300];
    for (int pass = -1; pass < w->n; pass++) {
        const char *dir = pass < 0 ? w->root : w->s[pass].dir;
        DIR *d = opendir(dir);
        struct dirent *de;
        char **names = NULL;
        int n = 0;
        while (d && (de = readdir(d)) != NULL) {
            if (!is_scaling_csv(de->d_name)) continue;
            /* out of memory: the page is abandoned, not written without these files */
            char **t = bgfm_realloc(p->e, names, (size_t)(n + 1) * sizeof *t,
                                    "report scaling files");
            if (t) names = t;
            if (!t || !(names[n] = bgfm_strdup(p->e, de->d_name))) {
                p->failed = 1;
                break;
            }
            n++;
        }
        if (d) closedir(d);
        for (int i = 0; i < n; i++) {
            for (int j = i + 1; j < n; j++)
                if (strcmp(names[j], names[i]) < 0) {
                    char *t = names[i];
                    names[i] = names[j];
                    names[j] = t;
                }
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            char shown[600];
            snprintf(shown, sizeof shown, "%s%s%s", pass < 0 ? "" : w->s[pass].name,
                     pass < 0 ? "" : "/", names[i]);
            one_csv(p, path, shown, &k);
        }
        for (int i = 0; i < n; i++) free(names[i]);
        free(names);
    }
}
