/* report.c: the finetune (and prompt) stage's outputs (docs/adapt.md "Outputs"): report/<kind>.json,
 * report/predictions.csv (classification, the probe's columns) or
 * report/regression_predictions.csv, and the stage's metrics.jsonl line. Rank 0 only.
 * Not the computation (stage.c, train.c). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bgfm/finetune.h"
#include "bgfm/fsutil.h"
#include "bgfm/json.h"
#include "bgfm/metrics.h"
#include "bgfm/mline.h"

static const double *cell_at(const ft_results *p, int en, int ki, int r, int f) {
    return p->cell + ((((int64_t)en * p->nk + ki) * p->R + r) * p->F + f) * FT_NMET;
}
static const double *info_at(const ft_results *p, int en, int ki, int r, int f) {
    return p->info + ((((int64_t)en * p->nk + ki) * p->R + r) * p->F + f) * FT_NINFO;
}

/* mean and sd over repeats x folds of metric q */
static void mean_sd(const ft_results *p, int en, int ki, int q, double *mean, double *sd) {
    int n = p->R * p->F;
    double s = 0, ss = 0;
    int m = 0;
    for (int i = 0; i < n; i++) {
        double x = cell_at(p, en, ki, i / p->F, i % p->F)[q];
        if (!isfinite(x)) continue;
        s += x;
        m++;
    }
    *mean = m ? s / m : (double)NAN;
    for (int i = 0; i < n && m > 1; i++) {
        double x = cell_at(p, en, ki, i / p->F, i % p->F)[q];
        if (isfinite(x)) ss += (x - *mean) * (x - *mean);
    }
    *sd = m > 1 ? sqrt(ss / (m - 1)) : m == 1 ? 0 : (double)NAN;
}

static void num(FILE *f, const char *key, double v) {
    fprintf(f, "\"%s\": ", key);
    json_write_num(f, v);
}

static void write_enc(FILE *f, const ft_report_ctx *c, int en) {
    const ft_results *p = c->p;
    const ft_opts *o = c->o;
    const char *m0 = o->regress ? "r2" : "auc", *m1 = o->regress ? "pearson_r" : "accuracy";
    const char *names[FT_NMET] = {m0, m1, "balanced_accuracy"};
    double mean, sd;
    fputs("{", f);
    for (int q = 0; q < (o->regress ? 2 : 3); q++) {
        char k[64];
        mean_sd(p, en, p->main_k, q, &mean, &sd);
        num(f, names[q], mean);
        snprintf(k, sizeof k, "%s_sd", names[q]);
        fputs(", ", f);
        num(f, k, sd);
        fputs(", ", f);
    }
    fprintf(f, "\"%s_folds\": [", m0);
    for (int r = 0; r < p->R; r++) {
        fputs(r ? ", [" : "[", f);
        for (int fo = 0; fo < p->F; fo++) {
            fputs(fo ? ", " : "", f);
            json_write_num(f, cell_at(p, en, p->main_k, r, fo)[0]);
        }
        fputs("]", f);
    }
    fputs("],\n      \"few_shot\": [", f);
    for (int ki = 0; ki < p->nk; ki++) {
        mean_sd(p, en, ki, 0, &mean, &sd);
        fputs(ki ? ", {" : "{", f);
        if (p->ks[ki]) fprintf(f, "\"k\": %lld, ", (long long)p->ks[ki]);
        else fputs("\"k\": \"all\", ", f);
        num(f, "k_effective", p->keff[ki]);
        fputs(", ", f);
        num(f, m0, mean);
        fputs(", ", f);
        num(f, "sd", sd);
        fputs("}", f);
    }
    fputs("],\n      \"cells\": [", f);
    const char *in[FT_NINFO] = {"best_epoch", "epochs_run", "best_val_loss", "seconds",
                                "train_subjects", "val_subjects", "test_subjects", "steps"};
    for (int ki = 0, first = 1; ki < p->nk; ki++)
        for (int r = 0; r < p->R; r++)
            for (int fo = 0; fo < p->F; fo++, first = 0) {
                const double *ci = info_at(p, en, ki, r, fo);
                fputs(first ? "\n        {" : ",\n        {", f);
                if (p->ks[ki]) fprintf(f, "\"k\": %lld", (long long)p->ks[ki]);
                else fputs("\"k\": \"all\"", f);
                fprintf(f, ", \"repeat\": %d, \"fold\": %d, ", r, fo);
                num(f, m0, cell_at(p, en, ki, r, fo)[0]);
                for (int q = 0; q < FT_NINFO; q++) {
                    fputs(", ", f);
                    num(f, in[q], ci[q]);
                }
                int64_t cidx = (((int64_t)en * p->nk + ki) * p->R + r) * p->F + fo;
                if (p->msubj) fprintf(f, ", \"meta_subjects\": %lld", (long long)p->msubj[cidx]);
                fputs(", \"val_loss\": [", f);
                for (int64_t ep = 0; ep < (int64_t)ci[1]; ep++) {
                    fputs(ep ? ", " : "", f);
                    json_write_num(f, p->curve[cidx * o->epochs + ep]);
                }
                fputs("]}", f);
            }
    fputs("]}", f);
}

/* "meta": null, or the method, its tasks ([column, atlas] pairs) and options */
static void write_meta(FILE *f, const ft_report_ctx *c) {
    const ft_meta *m = c->meta;
    if (!m) {
        fputs("\"meta\": null,\n  ", f);
        return;
    }
    fputs("\"meta\": {\"method\": \"reptile\", \"tasks\": [", f);
    for (int i = 0; i < m->n_cols; i++)
        for (int a = 0; a < m->n_atl; a++) {
            fputs(i || a ? ", [" : "[", f);
            json_write_str(f, m->col[i]);
            fputs(", ", f);
            json_write_str(f, graphs_atlas_name(c->gs, a));
            fputs("]", f);
        }
    fprintf(f, "], \"source\": \"%s\", \"k_shot\": %s, ", m->ext ? "datasets" : "columns",
            m->own_label ? "false" : "true");
    if (m->ext)
        fprintf(f, "\"pool_subjects\": %lld, \"pool_graphs\": %lld, ", (long long)m->pool.ns,
                (long long)m->pool.nl);
    fprintf(f, "\"steps\": %lld, \"inner_steps\": %lld, \"shots\": %lld, ",
            (long long)m->steps, (long long)m->inner, (long long)m->shots);
    num(f, "meta_lr", m->eps);
    fputs("},\n  ", f);
}

/* meta_subjects.csv: per cell, every subject the meta-training or the fit read */
static int write_meta_read(const ft_report_ctx *c, const char *dir, bgfm_err *e) {
    const ft_results *p = c->p;
    const probe_data *d = c->d;
    char path[4200];
    FILE *f = fs_create_in(dir, "meta_subjects.csv", "prompt", path, sizeof path, e);
    if (!f) return BGFM_EIO;
    fputs("features,k,repeat,fold,participant_id,read\n", f);
    const char *what[4] = {"", "meta", "fit", "both"};
    for (int en = 0; en < FT_NENC; en++)
        for (int ki = 0; c->o->enc[en] && ki < p->nk; ki++)
            for (int r = 0; r < p->R; r++)
                for (int fo = 0; fo < p->F; fo++) {
                    int64_t cidx = (((int64_t)en * p->nk + ki) * p->R + r) * p->F + fo;
                    for (int64_t s = 0; s < p->mw; s++) {
                        int b = (int)p->mread[cidx * p->mw + s] & 3;
                        if (!b) continue;
                        fprintf(f, "%s,", probe_feat_name[en]);
                        if (p->ks[ki]) fprintf(f, "%lld", (long long)p->ks[ki]);
                        else fputs("all", f);
                        fprintf(f, ",%d,%d,%s,%s\n", r, fo,
                                s < d->ns ? d->sid[s] : c->meta->pool.sid[s - d->ns], what[b]);
                    }
                }
    if (fclose(f)) return bgfm_fail(e, BGFM_EIO, "prompt: cannot write %s", path);
    return 0;
}

static int write_json(const ft_report_ctx *c, const char *path, bgfm_err *e) {
    const ft_opts *o = c->o;
    const probe_data *d = c->d;
    const ft_results *p = c->p;
    FILE *f = fopen(path, "w");
    if (!f) return bgfm_fail(e, BGFM_EIO, "%s: cannot write %s: %s", o->kind, path, strerror(errno));
    fprintf(f, "{\n  \"format\": \"bgfm-%s\",\n  \"format_version\": 1,\n  \"kind\": "
            "\"%s\",\n  \"stage\": ", o->kind, o->kind);
    json_write_str(f, c->r->stage->name);
    fputs(",\n  \"checkpoint\": ", f);
    json_write_str(f, c->ckpt);
    fputs(",\n  \"task\": ", f);
    json_write_str(f, o->regress ? "regression" : "classification");
    fputs(",\n  \"target\": ", f);
    if (o->regress) json_write_str(f, o->target);
    else fputs("null", f);
    fputs(",\n  \"fold_file\": ", f);
    if (c->fold_file) json_write_str(f, c->fold_file);
    else fputs("null", f);
    fprintf(f, ",\n  \"seed\": %llu,\n  \"folds\": %d,\n  \"repeats\": %d,\n  \"n_subjects\": "
            "%lld,\n  \"n_graphs\": %lld,\n  \"classes\": [", (unsigned long long)o->seed,
            o->folds, o->repeats, (long long)d->ns, (long long)d->nl);
    for (int k = 0; !o->regress && k < d->K; k++)
        fprintf(f, "%s%lld", k ? ", " : "", (long long)d->labels[k]);
    fprintf(f, "],\n  \"train\": \"%s\",\n  \"last_blocks\": %d,\n  ",
            o->prompt ? "prompts+head" : o->train == FT_TRAIN_ALL ? "all"
                                       : o->train == FT_TRAIN_HEAD ? "head" : "last_blocks",
            o->last_blocks);
    if (o->prompt) {
        fprintf(f, "\"prompts\": [%s%s%s],\n  \"prompt_params\": %lld,\n  ",
                o->pfeat ? "\"feature\"" : "", o->pfeat && o->pedge ? ", " : "",
                o->pedge ? "\"edge\"" : "", (long long)c->prompt_params);
        num(f, "edge_margin", o->margin);
        fputs(",\n  ", f);
        write_meta(f, c);
    }
    num(f, "llrd", o->llrd);
    fprintf(f, ",\n  \"epochs\": %lld,\n  \"patience\": %lld,\n  \"batch_size\": %lld,\n  ",
            (long long)o->epochs, (long long)o->patience, (long long)o->batch_size);
    num(f, "val_fraction", o->val_fraction);
    fputs(",\n  ", f);
    num(f, "lr", o->opt.lr);
    fprintf(f, ",\n  \"selection\": \"lowest mean validation loss over the epochs (inner split "
            "of the training fold)\",\n  \"model_params\": %lld,\n  \"trainable_params\": %lld,\n  ",
            (long long)c->n_params, (long long)p->trainable);
    num(f, "wall_seconds", p->wall);
    fputs(",\n  \"encoders\": {", f);
    for (int en = 0, first = 1; en < FT_NENC; en++) {
        if (!o->enc[en]) continue;
        fprintf(f, "%s\n    \"%s\": ", first ? "" : ",", probe_feat_name[en]);
        write_enc(f, c, en);
        first = 0;
    }
    fputs("}\n}\n", f);
    if (fclose(f)) return bgfm_fail(e, BGFM_EIO, "%s: cannot write %s", o->kind, path);
    return 0;
}

/* out-of-fold test predictions of every subject at the main level (k = all) */
static int write_preds(const ft_report_ctx *c, const char *dir, bgfm_err *e) {
    const ft_opts *o = c->o;
    const probe_data *d = c->d;
    const ft_results *p = c->p;
    char path[4200];
    snprintf(path, sizeof path, "%.4000s/%s", dir,
             o->regress ? "regression_predictions.csv" : "predictions.csv");
    FILE *f = fopen(path, "w");
    if (!f) return bgfm_fail(e, BGFM_EIO, "%s: cannot write %s: %s", o->kind, path, strerror(errno));
    if (o->regress) fputs("target,view,features,repeat,participant_id,fold,y,prediction\n", f);
    else {
        fputs("view,features,repeat,participant_id,label,fold", f);
        for (int k = 0; k < d->K; k++) fprintf(f, ",p_%lld", (long long)d->labels[k]);
        fputs("\n", f);
    }
    for (int en = 0; en < FT_NENC; en++)
        for (int r = 0; o->enc[en] && r < p->R; r++) {
            const int *fold = (o->regress ? d->rfold : d->fold) + (int64_t)r * d->ns;
            const double *P = p->oof + ((int64_t)en * p->R + r) * d->ns * p->K;
            for (int64_t s = 0; s < d->ns; s++) {
                if (fold[s] < 0) continue;
                if (o->regress) {
                    fprintf(f, "%s,pooled,%s,%d,%s,%d,%.17g,%.17g\n", o->target,
                            probe_feat_name[en], r, d->sid[s], fold[s], d->y[s], P[s]);
                    continue;
                }
                fprintf(f, "pooled,%s,%d,%s,%lld,%d", probe_feat_name[en], r, d->sid[s],
                        (long long)d->labels[d->cls[s]], fold[s]);
                for (int k = 0; k < d->K; k++) fprintf(f, ",%.17g", P[s * d->K + k]);
                fputs("\n", f);
            }
        }
    if (fclose(f)) return bgfm_fail(e, BGFM_EIO, "%s: cannot write %s", o->kind, path);
    return 0;
}

int ft_write_report(const ft_report_ctx *c, bgfm_err *e) {
    char dir[4200], path[4400];
    snprintf(dir, sizeof dir, "%.4000s/report", c->r->outdir);
    int rc = fs_mkdirs(dir, e);
    snprintf(path, sizeof path, "%s/%s.json", dir, c->o->kind);
    if (!rc) rc = write_json(c, path, e);
    if (!rc) rc = write_preds(c, dir, e);
    if (!rc && c->meta) rc = write_meta_read(c, dir, e);
    if (rc || !c->r->metrics) return rc;
    mline m;
    mline_begin(&m, c->o->kind, c->r->stage->name, c->o->kind);
    for (int en = 0; en < FT_NENC; en++) {
        if (!c->o->enc[en]) continue;
        double mean, sd;
        char key[64];
        mean_sd(c->p, en, c->p->main_k, 0, &mean, &sd);
        snprintf(key, sizeof key, "%s_%s_%s", c->o->kind, c->o->regress ? "r2" : "auc",
                 probe_feat_name[en]);
        mline_num(&m, key, mean);
    }
    mline_int(&m, "trainable_params", c->p->trainable);
    mline_num(&m, "fit_seconds", c->p->wall);
    mline_append(&m, c->r->ctx, c->r->metrics);
    return 0;
}
