/* write.c: the probe stage's report (docs/probe.md "Outputs", docs/formats.md "Probe
 * report"): probe.json, folds.csv, predictions.csv, regression_predictions.csv, cells.csv,
 * embeddings.h5 and the few-shot plot. Rank 0 only; nothing here is collective.
 * Not the computation (stage.c, data.c) and not `bgfm report` (pipeline/commands/report.c, stages/probe/show.c). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bgfm/child.h"
#include "bgfm/fsutil.h"
#include "bgfm/h5io.h"
#include "bgfm/json.h"
#include "bgfm/log.h"
#include "bgfm/metrics.h"
#include "bgfm/probe_stage.h"
#include "bgfm/regress.h"
#include "bgfm/ridge.h"

const char *const probe_feat_name[PROBE_NFEAT] = {"pretrained", "random_init", "fc_baseline",
                                                  "fc_pca", "site", "motion"};
const char *const probe_met_name[PROBE_NMET] = {"auc", "accuracy", "balanced_accuracy"};

double *probe_cell_at(const probe_results *p, int v, int t, int ki, int r, int f) {
    return p->cell +
           (((((int64_t)v * PROBE_NFEAT + t) * p->nk + ki) * p->R + r) * p->F + f) * PROBE_NMET;
}
double *probe_rcell_at(const probe_results *p, int tg, int v, int t, int ni, int r, int f) {
    return p->rcell +
           ((((((int64_t)tg * p->nv + v) * PROBE_NFEAT + t) * p->nn + ni) * p->R + r) * p->F + f) *
               PROBE_NREG;
}
double *probe_rpred_at(const probe_results *p, int tg, int v, int t, int r) {
    return p->rpred + ((((int64_t)tg * p->nv + v) * PROBE_NFEAT + t) * p->R + r) * p->ns;
}

/* mean and sd over repeats x folds */
int probe_cls_mean_sd(const probe_results *p, int v, int t, int ki, int q, double *mean,
                      double *sd, bgfm_err *e) {
    int n = p->R * p->F;
    double *vals = bgfm_malloc(e, (size_t)n * sizeof *vals, "probe fold scores");
    *mean = *sd = (double)NAN;
    if (!vals) return BGFM_ENOMEM;
    for (int r = 0; r < p->R; r++)
        for (int f = 0; f < p->F; f++) vals[r * p->F + f] = probe_cell_at(p, v, t, ki, r, f)[q];
    metrics_mean_sd(vals, n, mean, sd);
    free(vals);
    return 0;
}
int probe_reg_mean_sd(const probe_results *p, int tg, int v, int t, int ni, int q, double *mean,
                      double *sd, bgfm_err *e) {
    int n = p->R * p->F;
    double *vals = bgfm_malloc(e, (size_t)n * sizeof *vals, "probe fold scores");
    *mean = *sd = (double)NAN;
    if (!vals) return BGFM_ENOMEM;
    for (int r = 0; r < p->R; r++)
        for (int f = 0; f < p->F; f++) vals[r * p->F + f] = probe_rcell_at(p, tg, v, t, ni, r, f)[q];
    metrics_mean_sd(vals, n, mean, sd);
    free(vals);
    return 0;
}

static void num_list(FILE *f, const double *v, int n) {
    fputs("[", f);
    for (int i = 0; i < n; i++) {
        if (i) fputs(", ", f);
        json_write_num(f, v[i]);
    }
    fputs("]", f);
}

static void kv(FILE *f, const char *key, double v) {
    fprintf(f, ", \"%s\": ", key);
    json_write_num(f, v);
}

/* ---- classification ------------------------------------------------------------------ */
/* Out-of-fold AUC of repeat r: every labelled subject of the view scored once (NaN when
 * out of memory, recorded in e). */
static double oof_auc(const probe_results *p, const probe_data *d, int v, int t, int r,
                      bgfm_err *e) {
    const double *P = p->oof + ((((int64_t)v * PROBE_NFEAT + t) * p->R + r) * p->ns) * p->K;
    int *y = bgfm_malloc(e, (size_t)(p->ns ? p->ns : 1) * sizeof *y, "out-of-fold labels");
    double *Ps = bgfm_malloc(e, (size_t)((p->ns ? p->ns : 1) * p->K) * sizeof *Ps,
                             "out-of-fold scores");
    double auc = (double)NAN;
    int64_t m = 0;
    if (y && Ps) {
        for (int64_t s = 0; s < p->ns; s++) {
            double tot = 0;
            for (int k = 0; k < p->K; k++) tot += P[s * p->K + k];
            if (tot <= 0) continue; /* unlabelled, or absent from this view */
            memcpy(Ps + m * p->K, P + s * p->K, (size_t)p->K * sizeof *Ps);
            y[m++] = d->cls[s];
        }
        metrics_auc_ovr(Ps, y, m, p->K, &auc, e);
    }
    free(y);
    free(Ps);
    return auc;
}

static void write_block(FILE *f, const probe_results *p, const probe_data *d, int v, int t,
                        bgfm_err *e) {
    fputs("{", f);
    for (int q = 0; q < PROBE_NMET; q++) {
        double mean, sd;
        probe_cls_mean_sd(p, v, t, p->main_k, q, &mean, &sd, e);
        fprintf(f, "%s\"%s\": ", q ? ", " : "", probe_met_name[q]);
        json_write_num(f, mean);
        fprintf(f, ", \"%s_sd\": ", probe_met_name[q]);
        json_write_num(f, sd);
    }
    double rep[1024], fo[1024], oof[1024];
    int R = p->R < 1024 ? p->R : 1024, F = p->F < 1024 ? p->F : 1024;
    fputs(", \"auc_folds\": [", f);
    for (int r = 0; r < R; r++) {
        for (int k = 0; k < F; k++) fo[k] = probe_cell_at(p, v, t, p->main_k, r, k)[0];
        double sd;
        metrics_mean_sd(fo, F, &rep[r], &sd);
        oof[r] = oof_auc(p, d, v, t, r, e);
        fputs(r ? ", " : "", f);
        num_list(f, fo, F);
    }
    fputs("], \"auc_repeats\": ", f);
    num_list(f, rep, R);
    double m, sd;
    metrics_mean_sd(oof, R, &m, &sd);
    kv(f, "auc_oof", m);
    kv(f, "auc_oof_sd", sd);
    fputs(", \"auc_oof_repeats\": ", f);
    num_list(f, oof, R);
    fputs("}", f);
}

static void write_few_shot(FILE *f, const probe_results *p, int v, const char *ind,
                           bgfm_err *e) {
    fputs("[", f);
    for (int ki = 0; ki < p->n_klist; ki++) {
        fprintf(f, "%s\n%s  {\"k\": ", ki ? "," : "", ind);
        if (p->ks[ki]) fprintf(f, "%lld", (long long)p->ks[ki]);
        else fputs("\"all\"", f);
        kv(f, "k_effective", p->keff[ki]);
        for (int t = 0; t < PROBE_NFEAT; t++) {
            double mean, sd;
            char key[64];
            probe_cls_mean_sd(p, v, t, ki, 0, &mean, &sd, e);
            kv(f, probe_feat_name[t], mean);
            snprintf(key, sizeof key, "%s_sd", probe_feat_name[t]);
            kv(f, key, sd);
        }
        fputs("}", f);
    }
    fprintf(f, "\n%s]", ind);
}

/* ---- regression ---------------------------------------------------------------------- */
/* Out-of-fold R2 and Pearson r of repeat r over the view's subjects with the target (NaN
 * when out of memory, recorded in e). */
static void oof_reg(const probe_report_ctx *c, int tg, int v, int t, int r, double *r2,
                    double *pr, bgfm_err *e) {
    const probe_data *d = c->d;
    const probe_results *p = c->p;
    const int *fold = d->rfold + ((int64_t)tg * p->R + r) * d->ns;
    const double *pred = probe_rpred_at(p, tg, v, t, r), *y = d->y + (int64_t)tg * d->ns;
    double *a = bgfm_malloc(e, (size_t)(d->ns ? d->ns : 1) * sizeof *a, "out-of-fold targets");
    double *b = bgfm_malloc(e, (size_t)(d->ns ? d->ns : 1) * sizeof *b,
                            "out-of-fold predictions");
    int64_t m = 0;
    *r2 = *pr = (double)NAN;
    if (a && b) {
        for (int64_t s = 0; s < d->ns; s++)
            if (fold[s] >= 0 && c->views[v].present[s]) a[m] = y[s], b[m++] = pred[s];
        *r2 = regress_r2(a, b, m);
        *pr = regress_pearson(a, b, m);
    }
    free(a);
    free(b);
}

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void write_rblock(FILE *f, const probe_report_ctx *c, int tg, int v, int t, double *sum,
                         bgfm_err *e) {
    const probe_results *p = c->p;
    double mean, sd, fo[1024], r2o[1024], pr[1024], al[4096];
    int R = p->R < 1024 ? p->R : 1024, F = p->F < 1024 ? p->F : 1024, na = 0;
    probe_reg_mean_sd(p, tg, v, t, p->main_n, REGRESS_R2, &mean, &sd, e);
    fputs("{\"r2\": ", f);
    json_write_num(f, mean);
    kv(f, "r2_sd", sd);
    sum[0] += mean;
    sum[1] += sd;
    fputs(", \"r2_folds\": [", f);
    for (int r = 0; r < R; r++) {
        for (int k = 0; k < F; k++) {
            const double *cell = probe_rcell_at(p, tg, v, t, p->main_n, r, k);
            fo[k] = cell[0];
            if (na < 4096) al[na++] = cell[1];
        }
        fputs(r ? ", " : "", f);
        num_list(f, fo, F);
        oof_reg(c, tg, v, t, r, &r2o[r], &pr[r], e);
    }
    fputs("]", f);
    metrics_mean_sd(r2o, R, &mean, &sd);
    kv(f, "r2_oof", mean);
    kv(f, "r2_oof_sd", sd);
    sum[2] += mean;
    fputs(", \"r2_oof_repeats\": ", f);
    num_list(f, r2o, R);
    metrics_mean_sd(pr, R, &mean, &sd);
    kv(f, "pearson_r", mean);
    kv(f, "pearson_r_sd", sd);
    sum[3] += mean;
    fputs(", \"pearson_r_repeats\": ", f);
    num_list(f, pr, R);
    qsort(al, (size_t)na, sizeof *al, cmp_dbl);
    kv(f, "alpha_median", na ? (na % 2 ? al[na / 2] : 0.5 * (al[na / 2 - 1] + al[na / 2])) : (double)NAN);
    fputs("}", f);
}

/* Number k of regression cells (regress_cell's out[k]) of features t at few-shot level ni
 * of target tg (-1: the mean over targets) in view v: out = {mean, sd} over repeats x
 * folds. */
static void reg_targets_mean_sd(const probe_results *p, int tg, int v, int t, int ni, int k,
                                double out[2], bgfm_err *e) {
    double m1, s1;
    int nt = 0;
    out[0] = out[1] = 0;
    for (int q = tg < 0 ? 0 : tg; q < (tg < 0 ? p->NT : tg + 1); q++, nt++) {
        probe_reg_mean_sd(p, q, v, t, ni, k, &m1, &s1, e);
        out[0] += m1, out[1] += s1;
    }
    out[0] /= nt, out[1] /= nt;
}

/* The null model's R2 (every test subject predicted by the training subjects' mean): the
 * same for every feature set, so read from the first. */
static void train_mean_r2(const probe_results *p, int tg, int v, int ni, double out[2],
                          bgfm_err *e) {
    reg_targets_mean_sd(p, tg, v, 0, ni, REGRESS_NULL_R2, out, e);
}

/* few-shot rows of target tg (tg = -1: mean over targets) in view v */
static void write_rfew(FILE *f, const probe_report_ctx *c, int tg, int v, const char *ind,
                       bgfm_err *e) {
    const probe_results *p = c->p;
    fputs("[", f);
    for (int ni = 0; ni < p->n_nlist; ni++) {
        fprintf(f, "%s\n%s  {\"n\": ", ni ? "," : "", ind);
        if (p->nsz[ni]) fprintf(f, "%lld", (long long)p->nsz[ni]);
        else fputs("\"all\"", f);
        double ne = 0;
        int cnt = 0;
        for (int q = tg < 0 ? 0 : tg; q < (tg < 0 ? p->NT : tg + 1); q++)
            for (int r = 0; r < p->R; r++)
                for (int k = 0; k < p->F; k++) ne += probe_rcell_at(p, q, v, 0, ni, r, k)[2], cnt++;
        kv(f, "n_effective", cnt ? ne / cnt : (double)NAN);
        for (int t = 0; t < PROBE_NFEAT; t++) {
            double ms[2];
            reg_targets_mean_sd(p, tg, v, t, ni, REGRESS_R2, ms, e);
            char key[64];
            kv(f, probe_feat_name[t], ms[0]);
            snprintf(key, sizeof key, "%s_sd", probe_feat_name[t]);
            kv(f, key, ms[1]);
        }
        double tm[2];
        train_mean_r2(p, tg, v, ni, tm, e);
        kv(f, "train_mean", tm[0]);
        kv(f, "train_mean_sd", tm[1]);
        fputs("}", f);
    }
    fprintf(f, "\n%s]", ind);
}

/* "<view>": {...} of target tg; sums (per feature: r2, r2_sd, r2_oof, pearson_r) added
 * into msum for the mean over targets */
static void write_rview(FILE *f, const probe_report_ctx *c, int tg, int v, const char *ind,
                        double *msum, bgfm_err *e) {
    const probe_data *d = c->d;
    int64_t n = 0;
    for (int64_t s = 0; s < d->ns; s++)
        n += c->views[v].present[s] && d->rfold[(int64_t)tg * c->p->R * d->ns + s] >= 0;
    fprintf(f, "{\n%s  \"n_subjects\": %lld", ind, (long long)n);
    double tm[2];
    train_mean_r2(c->p, tg, v, c->p->main_n, tm, e);
    kv(f, "train_mean_r2", tm[0]);
    kv(f, "train_mean_r2_sd", tm[1]);
    for (int t = 0; t < PROBE_NFEAT; t++) {
        fprintf(f, ",\n%s  \"%s\": ", ind, probe_feat_name[t]);
        write_rblock(f, c, tg, v, t, msum + ((int64_t)v * PROBE_NFEAT + t) * 4, e);
    }
    fprintf(f, ",\n%s  \"few_shot\": ", ind);
    write_rfew(f, c, tg, v, ind, e);
    fprintf(f, "\n%s}", ind);
}

static void write_rmean(FILE *f, const probe_report_ctx *c, int v, const double *msum,
                        const char *ind, bgfm_err *e) {
    static const char *const k4[4] = {"r2", "r2_sd", "r2_oof", "pearson_r"};
    double tm[2];
    train_mean_r2(c->p, -1, v, c->p->main_n, tm, e);
    fprintf(f, "{\n%s  \"train_mean_r2\": ", ind);
    json_write_num(f, tm[0]);
    kv(f, "train_mean_r2_sd", tm[1]);
    for (int t = 0; t < PROBE_NFEAT; t++) {
        fprintf(f, ",\n%s  \"%s\": {", ind, probe_feat_name[t]);
        for (int q = 0; q < 4; q++) {
            fprintf(f, "%s\"%s\": ", q ? ", " : "", k4[q]);
            json_write_num(f, msum[((int64_t)v * PROBE_NFEAT + t) * 4 + q] / c->p->NT);
        }
        fputs("}", f);
    }
    fprintf(f, ",\n%s  \"few_shot\": ", ind);
    write_rfew(f, c, -1, v, ind, e);
    fprintf(f, "\n%s}", ind);
}

static int write_regression(FILE *f, const probe_report_ctx *c, bgfm_err *e) {
    const probe_results *p = c->p;
    int nv = p->nv, pooled = nv - 1;
    double *msum = bgfm_calloc(e, (size_t)nv * PROBE_NFEAT * 4, sizeof *msum,
                               "probe regression sums");
    if (!msum) return BGFM_ENOMEM;
    fputs(",\n  \"regression\": {", f);
    for (int tg = 0; tg < p->NT; tg++) {
        fprintf(f, "%s\n    ", tg ? "," : "");
        json_write_str(f, c->d->tname[tg]);
        fputs(": {\n      \"pooled\": ", f);
        write_rview(f, c, tg, pooled, "      ", msum, e);
        fputs(",\n      \"atlases\": {", f);
        for (int v = 0; v < pooled; v++) {
            fprintf(f, "%s\n        \"%s\": ", v ? "," : "", c->views[v].name);
            write_rview(f, c, tg, v, "        ", msum, e);
        }
        fputs("\n      },\n      \"few_shot\": ", f);
        write_rfew(f, c, tg, pooled, "      ", e);
        fputs("\n    }", f);
    }
    fprintf(f, "%s\n    \"mean\": {\n      \"pooled\": ", p->NT ? "," : "");
    if (p->NT) write_rmean(f, c, pooled, msum, "      ", e);
    else fputs("null", f);
    fputs(",\n      \"atlases\": {", f);
    for (int v = 0; v < pooled; v++) {
        fprintf(f, "%s\n        \"%s\": ", v ? "," : "", c->views[v].name);
        if (p->NT) write_rmean(f, c, v, msum, "        ", e);
        else fputs("null", f);
    }
    fputs("\n      },\n      \"few_shot\": ", f);
    if (p->NT) write_rfew(f, c, -1, pooled, "      ", e);
    else fputs("[]", f);
    fputs("\n    }\n  }", f);
    free(msum);
    return 0;
}

/* ---- probe.json ----------------------------------------------------------------------- */
static void write_header(FILE *f, const probe_report_ctx *c) {
    const probe_data *d = c->d;
    const probe_opts *o = c->o;
    fputs("{\n  \"format\": \"bgfm-probe\",\n  \"format_version\": 2,\n  \"stage\": ", f);
    json_write_str(f, c->r->stage->name);
    fputs(",\n  \"checkpoint\": ", f);
    json_write_str(f, c->ckpt);
    fputs(",\n  \"graphs\": ", f);
    json_write_str(f, c->gpath);
    fputs(",\n  \"protocol\": ", f);
    json_write_str(f, d->protocol);
    fprintf(f, ",\n  \"pretrain_graphs\": %lld,\n  \"pretrain_graphs_listed\": %s,\n"
            "  \"overlap_subjects\": %lld", (long long)d->n_pre, d->has_pre ? "true" : "false",
            (long long)d->overlap);
    fputs(",\n  \"audit\": ", f);
    probe_audit_write_json(f, &d->audit, o->transductive, c->r->pipe->subject_map, "    ");
    fprintf(f, ",\n  \"seed\": %llu,\n  \"init_seed\": %llu,\n  \"folds\": %d,\n"
            "  \"repeats\": %d,\n  \"C\": ", (unsigned long long)o->seed,
            (unsigned long long)c->r->pipe->seed, o->folds, o->repeats);
    json_write_num(f, o->lr.C);
    int64_t nlab = 0, glab = 0;
    for (int64_t s = 0; s < d->ns; s++) nlab += d->cls[s] >= 0;
    for (int64_t j = 0; j < d->nl; j++) glab += d->cls[d->subj[j]] >= 0;
    fputs(",\n  \"embedding\": ", f);
    json_write_str(f, model_embed_name(c->embed));
    fprintf(f, ",\n  \"pop_rank\": %d", c->pop_rank);
    fprintf(f, ",\n  \"regress_out\": [%s%s%s]", o->regress_motion ? "\"motion\"" : "",
            o->regress_motion && o->regress_site ? ", " : "", o->regress_site ? "\"site\"" : "");
    fprintf(f, ",\n  \"hidden\": %lld,\n  \"embed_dim\": %lld,\n  \"pca_components\": %d,\n"
            "  \"n_subjects\": %lld,\n  \"n_graphs\": %lld,\n  \"probed_subjects\": %lld,\n"
            "  \"probed_graphs\": %lld,\n  \"classes\": [", (long long)c->H, (long long)d->E,
            c->pca_request, (long long)nlab, (long long)glab, (long long)d->ns, (long long)d->nl);
    for (int k = 0; k < d->K; k++) fprintf(f, "%s%lld", k ? ", " : "", (long long)d->labels[k]);
    fputs("],\n  \"class_subjects\": [", f);
    for (int k = 0; k < d->K; k++) {
        int64_t n = 0;
        for (int64_t s = 0; s < d->ns; s++) n += d->cls[s] == k;
        fprintf(f, "%s%lld", k ? ", " : "", (long long)n);
    }
    fputs("],\n  \"targets\": [", f);
    for (int q = 0; q < d->NT; q++) {
        fputs(q ? ", " : "", f);
        json_write_str(f, d->tname[q]);
    }
    fprintf(f, "],\n  \"target_subjects\": \"%s\",\n  \"ridge\": {\"criterion\": "
            "\"leave-one-out\", \"alpha_grid\": {\"from\": 1e-3, \"to\": 1e5, \"points\": %d, "
            "\"times\": \"n_features\"}}", o->all_targets ? "all" : "labelled", RIDGE_GRID);
}

/* fc_pca fits, effective dimension and subject, label and site shares per atlas; the
 * label by site */
static void write_diagnostics(FILE *f, const probe_report_ctx *c) {
    const probe_data *d = c->d;
    fputs(",\n  \"fc_pca\": {", f);
    for (int a = 0; a < d->A; a++) {
        fprintf(f, "%s\n    \"%s\": {\"components\": %d, \"fitting_graphs\": %lld, "
                "\"variance_share\": ", a ? "," : "", c->views[a].name, d->pk[a],
                (long long)d->pca_nfit[a]);
        json_write_num(f, d->pca_share[a]);
        fputs("}", f);
    }
    const char *what[4] = {"effective_dim", "subject_variance_share", "label_variance_share",
                           "site_variance_share"};
    const double *val[4] = {c->p->edim, c->p->sshare, c->p->lshare, c->p->tshare};
    for (int w = 0; w < 4; w++) {
        fprintf(f, "\n  },\n  \"%s\": {", what[w]);
        for (int a = 0; a < d->A; a++) {
            fprintf(f, "%s\n    \"%s\": {", a ? "," : "", c->views[a].name);
            for (int t = 0; t < PROBE_NFEAT; t++) {
                fprintf(f, "%s\"%s\": ", t ? ", " : "", probe_feat_name[t]);
                json_write_num(f, val[w][a * PROBE_NFEAT + t]);
            }
            fputs("}", f);
        }
    }
    fputs("\n  }", f);
    /* what the motion feature set knew: probed subjects with a mean FD, and the value
     * the others were given */
    fprintf(f, ",\n  \"motion\": {\"subjects_known\": %lld, \"subjects\": %lld, \"fill_mm\": ",
            (long long)d->n_motion, (long long)d->ns);
    json_write_num(f, d->fd_fill);
    fputs("}", f);
    /* the labelled subjects per site and class, and the chi-squared test (null without
     * sites) */
    fputs(",\n  \"label_site\": ", f);
    if (d->n_sites == 0) {
        fputs("null", f);
        return;
    }
    fputs("{\"sites\": [", f);
    for (int64_t q = 0; q < d->n_sites; q++) {
        fputs(q ? ", " : "", f);
        json_write_str(f, d->site_name[q]);
    }
    fputs("], \"counts\": [", f);
    for (int64_t q = 0; q < d->n_sites; q++) {
        fputs(q ? ", [" : "[", f);
        for (int k = 0; k < d->K; k++)
            fprintf(f, "%s%lld", k ? ", " : "", (long long)d->site_cls[q * d->K + k]);
        fputs("]", f);
    }
    fputs("], \"chi2\": ", f);
    json_write_num(f, d->label_site.chi2);
    fprintf(f, ", \"dof\": %d, \"p\": ", d->label_site.dof);
    json_write_num(f, d->label_site.p);
    fputs(", \"cramers_v\": ", f);
    json_write_num(f, d->label_site.cramers_v);
    fputs("}", f);
}

int probe_write_json(const probe_report_ctx *c, const char *path, bgfm_err *e) {
    FILE *f = fopen(path, "w");
    if (!f) return bgfm_fail(e, BGFM_EIO, "probe: cannot write %s: %s", path, strerror(errno));
    const probe_results *p = c->p;
    bgfm_err we = {0}; /* the blocks' allocations: a number NaN, the file then an error */
    write_header(f, c);
    write_diagnostics(f, c);
    int pooled = p->nv - 1;
    for (int v = 0; v < p->nv; v++) {
        const probe_view *w = &c->views[v];
        if (v == pooled) fputs(",\n  \"pooled\": {", f);
        else if (v == 0) fprintf(f, ",\n  \"atlases\": {\n    \"%s\": {", w->name);
        else fprintf(f, ",\n    \"%s\": {", w->name);
        const char *ind = v == pooled ? "    " : "      ";
        fprintf(f, "\n%s\"n_samples\": %lld, \"n_features\": {", ind, (long long)w->n);
        for (int t = 0; t < PROBE_NFEAT; t++)
            fprintf(f, "%s\"%s\": %lld", t ? ", " : "", probe_feat_name[t], (long long)w->D[t]);
        fputs("}", f);
        for (int t = 0; t < PROBE_NFEAT; t++) {
            fprintf(f, ",\n%s\"%s\": ", ind, probe_feat_name[t]);
            write_block(f, p, c->d, v, t, &we);
        }
        fprintf(f, ",\n%s\"few_shot\": ", ind);
        write_few_shot(f, p, v, ind, &we);
        fprintf(f, "\n%s}", v == pooled ? "  " : "    ");
        if (v == pooled - 1) fputs("\n  }", f);
    }
    fputs(",\n  \"few_shot\": ", f);
    write_few_shot(f, p, pooled, "  ", &we);
    int rc = write_regression(f, c, &we);
    if (we.code) rc = bgfm_fail(e, we.code, "%s", we.msg);
    fputs("\n}\n", f);
    if (fclose(f) && !rc) rc = bgfm_fail(e, BGFM_EIO, "probe: cannot write %s", path);
    return rc;
}

/* ---- CSV files ---------------------------------------------------------------------- */
/* With inputs.datasets a subject is written as two fields, `dataset,participant_id` (its
 * key split at the '/'; a subject of the subject map under its group's key), else as the
 * one field `participant_id`. */
static int multi(const probe_report_ctx *c) { return c->r->pipe->n_datasets > 0; }
static const char *subject_cols(const probe_report_ctx *c) {
    return multi(c) ? "dataset,participant_id" : "participant_id";
}
static void put_subject(FILE *f, const probe_report_ctx *c, const char *key) {
    const char *sl = multi(c) ? strchr(key, '/') : NULL;
    if (sl) fprintf(f, "%.*s,%s", (int)(sl - key), key, sl + 1);
    else fprintf(f, "%s%s", multi(c) ? "," : "", key);
}

static int write_folds_csv(const probe_report_ctx *c, const char *dir, bgfm_err *e) {
    const probe_data *d = c->d;
    char path[4200];
    FILE *f = fs_create_in(dir, "folds.csv", "probe", path, sizeof path, e);
    if (!f) return BGFM_EIO;
    fprintf(f, "graph,%s,atlas,window,label,fold", subject_cols(c));
    for (int r = 1; r < d->R; r++) fprintf(f, ",fold_%d", r);
    fputs("\n", f);
    for (int64_t j = 0; j < d->nl; j++) {
        int64_t s = d->subj[j];
        if (d->cls[s] < 0) continue;
        fprintf(f, "%lld,", (long long)d->g[j]);
        put_subject(f, c, d->sid[s]);
        fprintf(f, ",%s,%lld,%lld", graphs_atlas_name(c->gs, d->atl[j]), (long long)d->win[j],
                (long long)d->labels[d->cls[s]]);
        for (int r = 0; r < d->R; r++) fprintf(f, ",%d", d->fold[(int64_t)r * d->ns + s]);
        fputs("\n", f);
    }
    if (fclose(f)) return bgfm_fail(e, BGFM_EIO, "probe: cannot write %s", path);
    return 0;
}

static int write_pred_csv(const probe_report_ctx *c, const char *dir, bgfm_err *e) {
    const probe_data *d = c->d;
    const probe_results *p = c->p;
    char path[4200];
    FILE *f = fs_create_in(dir, "predictions.csv", "probe", path, sizeof path, e);
    if (!f) return BGFM_EIO;
    fprintf(f, "view,features,repeat,%s,label,fold", subject_cols(c));
    for (int k = 0; k < d->K; k++) fprintf(f, ",p_%lld", (long long)d->labels[k]);
    fputs("\n", f);
    for (int v = 0; v < p->nv; v++)
        for (int t = 0; t < PROBE_NFEAT; t++)
            for (int r = 0; r < p->R; r++) {
                const double *P =
                    p->oof + ((((int64_t)v * PROBE_NFEAT + t) * p->R + r) * p->ns) * p->K;
                for (int64_t s = 0; s < d->ns; s++) {
                    double tot = 0;
                    for (int k = 0; k < d->K; k++) tot += P[s * d->K + k];
                    if (tot <= 0) continue;
                    fprintf(f, "%s,%s,%d,", c->views[v].name, probe_feat_name[t], r);
                    put_subject(f, c, d->sid[s]);
                    fprintf(f, ",%lld,%d", (long long)d->labels[d->cls[s]],
                            d->fold[(int64_t)r * d->ns + s]);
                    for (int k = 0; k < d->K; k++) fprintf(f, ",%.17g", P[s * d->K + k]);
                    fputs("\n", f);
                }
            }
    if (fclose(f)) return bgfm_fail(e, BGFM_EIO, "probe: cannot write %s", path);
    return 0;
}

static int write_rpred_csv(const probe_report_ctx *c, const char *dir, bgfm_err *e) {
    const probe_data *d = c->d;
    const probe_results *p = c->p;
    char path[4200];
    FILE *f = fs_create_in(dir, "regression_predictions.csv", "probe", path, sizeof path, e);
    if (!f) return BGFM_EIO;
    fprintf(f, "target,view,features,repeat,%s,fold,y,prediction\n", subject_cols(c));
    for (int tg = 0; tg < p->NT; tg++)
        for (int v = 0; v < p->nv; v++)
            for (int t = 0; t < PROBE_NFEAT; t++)
                for (int r = 0; r < p->R; r++) {
                    const int *fold = d->rfold + ((int64_t)tg * p->R + r) * d->ns;
                    const double *pred = probe_rpred_at(p, tg, v, t, r);
                    for (int64_t s = 0; s < d->ns; s++) {
                        if (fold[s] < 0 || !c->views[v].present[s]) continue;
                        fprintf(f, "%s,%s,%s,%d,", d->tname[tg], c->views[v].name,
                                probe_feat_name[t], r);
                        put_subject(f, c, d->sid[s]);
                        fprintf(f, ",%d,%.17g,%.17g\n", fold[s], d->y[(int64_t)tg * d->ns + s],
                                pred[s]);
                    }
                }
    if (fclose(f)) return bgfm_fail(e, BGFM_EIO, "probe: cannot write %s", path);
    return 0;
}

/* cells.csv: every (task, view, features, size, repeat, fold) cell's numbers, so that
 * paired comparisons between feature sets (same subjects, same folds) can be made from
 * the files (bench/transfer/summary.py). size: k per class (classification) or training
 * subjects (regression), "all" for every one. */
static void size_text(int64_t k, char *buf, size_t n) {
    if (k == 0) snprintf(buf, n, "all");
    else snprintf(buf, n, "%lld", (long long)k);
}

static int write_cells_csv(const probe_report_ctx *c, const char *dir, bgfm_err *e) {
    const probe_results *p = c->p;
    char path[4200], sz[32];
    FILE *f = fs_create_in(dir, "cells.csv", "probe", path, sizeof path, e);
    if (!f) return BGFM_EIO;
    fputs("task,view,features,size,repeat,fold,metric,value\n", f);
    for (int v = 0; v < p->nv; v++)
        for (int t = 0; t < PROBE_NFEAT; t++)
            for (int ki = 0; ki < p->nk; ki++)
                for (int r = 0; r < p->R; r++)
                    for (int fo = 0; fo < p->F; fo++) {
                        const double *m = probe_cell_at(p, v, t, ki, r, fo);
                        size_text(p->ks[ki], sz, sizeof sz);
                        for (int q = 0; q < PROBE_NMET; q++)
                            fprintf(f, "label,%s,%s,%s,%d,%d,%s,%.17g\n", c->views[v].name,
                                    probe_feat_name[t], sz, r, fo, probe_met_name[q], m[q]);
                    }
    static const char *const rmet[PROBE_NREG] = {"r2", "alpha", "n_train", "r2_train_mean"};
    for (int tg = 0; tg < p->NT; tg++)
        for (int v = 0; v < p->nv; v++)
            for (int t = 0; t < PROBE_NFEAT; t++)
                for (int ni = 0; ni < p->nn; ni++)
                    for (int r = 0; r < p->R; r++)
                        for (int fo = 0; fo < p->F; fo++) {
                            const double *m = probe_rcell_at(p, tg, v, t, ni, r, fo);
                            size_text(p->nsz[ni], sz, sizeof sz);
                            for (int q = 0; q < PROBE_NREG; q++)
                                fprintf(f, "%s,%s,%s,%s,%d,%d,%s,%.17g\n", c->d->tname[tg],
                                        c->views[v].name, probe_feat_name[t], sz, r, fo, rmet[q],
                                        m[q]);
                        }
    if (fclose(f)) return bgfm_fail(e, BGFM_EIO, "probe: cannot write %s", path);
    return 0;
}

int probe_write_csvs(const probe_report_ctx *c, const char *dir, bgfm_err *e) {
    int rc = write_folds_csv(c, dir, e);
    if (!rc) rc = write_pred_csv(c, dir, e);
    if (!rc && c->p->NT) rc = write_rpred_csv(c, dir, e);
    if (!rc) rc = write_cells_csv(c, dir, e);
    return rc;
}

/* ---- few-shot plot ------------------------------------------------------------------- */
static int write_plot_files(const probe_report_ctx *c, const char *dat, const char *gp,
                            bgfm_err *e) {
    const probe_results *p = c->p;
    int rc = 0;
    FILE *f = fopen(dat, "w");
    if (!f) return bgfm_fail(e, BGFM_EIO, "probe: cannot write %s: %s", dat, strerror(errno));
    fputs("# k_label k_effective pretrained pretrained_sd random_init random_init_sd "
          "fc_baseline fc_baseline_sd fc_pca fc_pca_sd site site_sd motion motion_sd (AUC, mean "
          "and sd over "
          "repeats x folds)\n",
          f);
    for (int ki = 0; ki < p->n_klist; ki++) {
        if (p->ks[ki]) fprintf(f, "%lld", (long long)p->ks[ki]);
        else fprintf(f, "\"all (%.3g)\"", p->keff[ki]);
        fprintf(f, " %.6g", p->keff[ki]);
        for (int t = 0; t < PROBE_NFEAT; t++) {
            double mean = (double)NAN, sd = (double)NAN;
            if (!rc) rc = probe_cls_mean_sd(p, p->nv - 1, t, ki, 0, &mean, &sd, e);
            fprintf(f, " %.6g %.6g", mean, sd);
        }
        fputs("\n", f);
    }
    if (fclose(f) && !rc) rc = bgfm_fail(e, BGFM_EIO, "probe: cannot write %s", dat);
    if (rc) return rc;
    if (!(f = fopen(gp, "w")))
        return bgfm_fail(e, BGFM_EIO, "probe: cannot write %s: %s", gp, strerror(errno));
    fprintf(f,
            "# few_shot.gp: run in this folder with `gnuplot few_shot.gp`\n"
            "set terminal pngcairo size 900,600 enhanced font 'DejaVu Sans,12'\n"
            "set output 'few_shot.png'\n"
            "set title 'Linear probe (%s, %lld subjects, %d-fold CV grouped by subject, %d draws)'\n"
            "set xlabel 'labelled training subjects per class'\n"
            "set ylabel 'ROC AUC (mean +- sd over draws x folds)'\n"
            "set yrange [0:1.12]\nset logscale x 2\nset key bottom right box opaque\n"
            "set grid ytics\nset offsets graph 0.05, graph 0.05, 0, 0\n"
            "set arrow from graph 0, first 0.5 to graph 1, first 0.5 nohead dt 2 lc rgb 'gray40'\n"
            "set label 'chance' at graph 0.01, first 0.52 tc rgb 'gray40'\n"
            "plot 'few_shot.dat' u ($2*0.955):3:4:xtic(1) w yerrorlines lw 2 pt 7 lc rgb '#1b6ac9' t 'pretrained encoder', \\\n"
            "     '' u ($2*0.985):5:6 w yerrorlines lw 2 pt 5 lc rgb '#d95f02' t 'random-init encoder', \\\n"
            "     '' u ($2*1.015):7:8 w yerrorlines lw 2 pt 9 lc rgb '#1b9e77' t 'FC upper triangle', \\\n"
            "     '' u ($2*1.045):9:10 w yerrorlines lw 2 pt 13 lc rgb '#7570b3' t 'PCA of FC (pretraining graphs)', \\\n"
            "     '' u ($2*1.0):11:12 w yerrorlines lw 1 dt 2 pt 1 lc rgb 'gray30' t 'acquisition site alone', \\\n"
            "     '' u ($2*1.03):13:14 w yerrorlines lw 1 dt 3 pt 2 lc rgb 'gray50' t 'head motion alone'\n",
            p->nv > 2 ? "atlases pooled" : c->views[0].name, (long long)p->ns, p->F, p->R);
    if (fclose(f)) return bgfm_fail(e, BGFM_EIO, "probe: cannot write %s", gp);
    return 0;
}

/* few_shot.dat + few_shot.gp, then gnuplot (child.h: posix_spawn, no shell, safe in an
 * MPI rank) -> few_shot.png. */
int probe_write_plot(bgfm_ctx *ctx, const probe_report_ctx *c, const char *dir) {
    char dat[4400], gp[4400], png[4400];
    snprintf(dat, sizeof dat, "%s/few_shot.dat", dir);
    snprintf(gp, sizeof gp, "%s/few_shot.gp", dir);
    snprintf(png, sizeof png, "%s/few_shot.png", dir);
    int rc = write_plot_files(c, dat, gp, &ctx->err);
    if (rc) return rc;
    char *const argv[] = {(char *)(uintptr_t) "gnuplot", (char *)(uintptr_t) "few_shot.gp", NULL};
    child_opts co = {.dir = dir};
    int code = 0;
    bgfm_err m = {0};
    if (child_run(argv, &co, &code, &m))
        log_warn(ctx, "probe: %s; %s and %s are written, run `gnuplot few_shot.gp` in %s",
                 m.msg, dat, gp, dir);
    else if (code != 0 || !fs_exists(png))
        log_warn(ctx, "probe: gnuplot failed (exit %d); %s and %s are written, run `gnuplot "
                 "few_shot.gp` in %s to draw few_shot.png", code, dat, gp, dir);
    return 0;
}

/* ---- embeddings.h5 ------------------------------------------------------------------ */
/* /graph, /participant_id, /atlas, /pretrained, /random_init, /fc_pca (NaN beyond the
 * graph's atlas's components); root attributes format, format_version, embed_dim. */
int probe_write_embeddings(const probe_report_ctx *c, const char *path, bgfm_err *e) {
    const probe_data *d = c->d;
    int kmax = 0;
    for (int a = 0; a < d->A; a++) kmax = d->pk[a] > kmax ? d->pk[a] : kmax;
    double *S = bgfm_malloc(e, (size_t)((d->nl ? d->nl : 1) * (kmax ? kmax : 1)) * sizeof *S,
                            "embeddings");
    const char **pid = bgfm_calloc(e, (size_t)(d->nl ? d->nl : 1), sizeof *pid, "embeddings");
    const char **an = bgfm_calloc(e, (size_t)(d->nl ? d->nl : 1), sizeof *an, "embeddings");
    if (!S || !pid || !an) {
        free(S);
        free(pid);
        free(an);
        return BGFM_ENOMEM;
    }
    for (int64_t j = 0; j < d->nl; j++) {
        int k = d->pk[d->atl[j]];
        for (int q = 0; q < kmax; q++) S[j * kmax + q] = q < k ? d->pcv[d->pcoff[j] + q] : (double)NAN;
        pid[j] = d->sid[d->subj[j]];
        an[j] = graphs_atlas_name(c->gs, d->atl[j]);
    }
    char **dsn = multi(c) ? bgfm_calloc(e, (size_t)(d->nl ? d->nl : 1), sizeof *dsn, "embeddings")
                          : NULL;
    int rc = multi(c) && !dsn ? BGFM_ENOMEM : 0;
    for (int64_t j = 0; dsn && j < d->nl && !rc; j++) { /* dataset/id -> dataset, id */
        const char *sl = strchr(pid[j], '/');
        if (!(dsn[j] = bgfm_strdup(e, pid[j]))) rc = BGFM_ENOMEM;
        else dsn[j][sl ? sl - pid[j] : 0] = '\0';
        if (sl) pid[j] = sl + 1;
    }
    hid_t f = rc ? -1 : h5io_create(MPI_COMM_SELF, path, e);
    if (!rc && f < 0) rc = e->code ? e->code : BGFM_EIO;
    hsize_t n1[1] = {(hsize_t)d->nl}, n2[2] = {(hsize_t)d->nl, (hsize_t)d->E},
            n3[2] = {(hsize_t)d->nl, (hsize_t)kmax};
    int64_t ver = 1, E = d->E;
    if (!rc) rc = h5io_attr_set_str(f, NULL, "format", "bgfm-embeddings", e);
    if (!rc) rc = h5io_attr_set_i64(f, NULL, "format_version", &ver, 1, e);
    if (!rc) rc = h5io_attr_set_i64(f, NULL, "embed_dim", &E, 1, e);
    if (!rc) rc = h5io_write_small(f, "/graph", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, n1, d->g, 0, e);
    if (!rc) rc = h5io_write_strings(f, "/participant_id", pid, d->nl, 0, e);
    if (!rc && dsn) rc = h5io_write_strings(f, "/dataset", (const char *const *)dsn, d->nl, 0, e);
    if (!rc) rc = h5io_write_strings(f, "/atlas", an, d->nl, 0, e);
    if (!rc)
        rc = h5io_write_small(f, "/pretrained", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, n2,
                              d->emb[0], 0, e);
    if (!rc)
        rc = h5io_write_small(f, "/random_init", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, n2,
                              d->emb[1], 0, e);
    if (!rc)
        rc = h5io_write_small(f, "/fc_pca", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, n3, S, 0, e);
    int rc2 = f >= 0 ? h5io_close(&f, path, e) : 0;
    for (int64_t j = 0; dsn && j < d->nl; j++) free(dsn[j]);
    free(dsn);
    free(S);
    free(pid);
    free(an);
    return rc ? rc : rc2;
}
