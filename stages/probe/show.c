/* show.c: the probe's report/probe.json printed as tables (`bgfm report`, probe_stage.h):
 * AUC / accuracy / balanced accuracy per view and feature set, few-shot AUCs, effective
 * dimension and subject share, regression of numeric targets. Reads the report with the
 * same feature names the probe writes it with (probe_feat_name).
 * Not the probe (stage.c, write.c) and not the listing of a workdir (commands/report.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/fsutil.h"
#include "bgfm/json.h"
#include "bgfm/probe_stage.h"

#define NFEAT PROBE_NFEAT
#define feats probe_feat_name

static void print_pm(double m, double sd) {
    if (isnan(m)) printf("  %-16s", "n/a");
    else printf("  %7.4f +- %.4f", m, isnan(sd) ? 0.0 : sd);
}

static void print_view(const char *name, const json_node *b) {
    for (int t = 0; t < NFEAT; t++) {
        const json_node *c = json_get(b, feats[t]);
        if (!c) continue; /* reports of format 1 have no fc_pca */
        printf("%-12s %-12s", t ? "" : name, feats[t]);
        print_pm(json_num(c, "auc"), json_num(c, "auc_sd"));
        print_pm(json_num(c, "accuracy"), json_num(c, "accuracy_sd"));
        print_pm(json_num(c, "balanced_accuracy"), json_num(c, "balanced_accuracy_sd"));
        printf("\n");
    }
}

/* few-shot rows: key "k" (classification) or "n" (regression), one value per feature */
static void print_few_shot(const json_node *fs, const char *key, const char *eff) {
    /* regression rows also hold the null model's R2 (the training subjects' mean) */
    const int null = fs && fs->k == JSON_ARR && fs->n && json_get(&fs->kid[0], "train_mean");
    printf("%-8s %-8s", key, !strcmp(key, "k") ? "k_eff" : "n_eff");
    for (int t = 0; t < NFEAT; t++) printf(" %-12s", feats[t]);
    printf(null ? " %-12s\n" : "\n", "train_mean");
    for (int i = 0; fs && fs->k == JSON_ARR && i < fs->n; i++) {
        const json_node *r = &fs->kid[i], *k = json_get(r, key);
        char kb[32];
        if (k && k->k == JSON_STR) snprintf(kb, sizeof kb, "%s", k->str);
        else snprintf(kb, sizeof kb, "%.0f", k ? k->num : (double)NAN);
        printf("%-8s %-8.2f", kb, json_num(r, eff));
        for (int t = 0; t < NFEAT; t++)
            if (json_get(r, feats[t])) printf(" %-12.4f", json_num(r, feats[t]));
        if (null) printf(" %-12.4f", json_num(r, "train_mean"));
        printf("\n");
    }
}

/* effective dimension and the subject, label and site shares per atlas */
static void print_collapse(const json_node *root) {
    const json_node *ed = json_get(root, "effective_dim");
    const json_node *sh[3] = {json_get(root, "subject_variance_share"),
                              json_get(root, "label_variance_share"),
                              json_get(root, "site_variance_share")};
    if (!ed || ed->k != JSON_OBJ) return;
    printf("\nrepresentation: participation ratio of the covariance (effective dimension) and "
           "share of variance between subjects, labels and sites, per atlas\n");
    printf("%-12s %-12s %-10s %-10s %-10s %-10s %-10s\n", "atlas", "features", "dim",
           "n_features", "subject", "label", "site");
    const json_node *at = json_get(root, "atlases");
    for (int i = 0; i < ed->n; i++) {
        const json_node *nf = json_get(json_get(at, ed->keys[i]), "n_features");
        for (int t = 0; t < NFEAT; t++) {
            double dim = json_num(&ed->kid[i], feats[t]); /* n/a: a constant feature set */
            printf("%-12s %-12s", t ? "" : ed->keys[i], feats[t]);
            if (isnan(dim)) printf(" %-10s", "n/a");
            else printf(" %-10.2f", dim);
            printf(" %-10.0f", json_num(nf, feats[t]));
            for (int q = 0; q < 3; q++) {
                double v = json_num(json_get(sh[q], ed->keys[i]), feats[t]);
                if (isnan(v)) printf(" %-10s", "n/a");
                else printf(" %-10.3f", v);
            }
            printf("\n");
        }
    }
}

char *probe_label_site_text(const json_node *root) {
    const json_node *ls = json_get(root, "label_site"), *lab = json_get(root, "classes");
    const json_node *sites = json_get(ls, "sites"), *cnt = json_get(ls, "counts");
    if (!sites || sites->k != JSON_ARR || !cnt || cnt->k != JSON_ARR || !lab || lab->k != JSON_ARR)
        return NULL;
    char *txt = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&txt, &len);
    if (!f) return NULL;
    fputs("(", f);
    for (int k = 0; k < lab->n; k++) fprintf(f, "%s%.0f", k ? " / " : "", lab->kid[k].num);
    fputs("):", f);
    for (int q = 0; q < sites->n && q < cnt->n; q++) {
        const json_node *row = &cnt->kid[q];
        fprintf(f, "%s %s ", q ? "," : "", sites->kid[q].str ? sites->kid[q].str : "?");
        for (int k = 0; row->k == JSON_ARR && k < row->n; k++)
            fprintf(f, "%s%.0f", k ? "/" : "", row->kid[k].num);
    }
    if (fclose(f)) {
        free(txt);
        return NULL;
    }
    return txt;
}

/* the labelled subjects per site and class, and the chi-squared test ("label_site") */
static void print_label_site(const json_node *root) {
    char *txt = probe_label_site_text(root);
    if (!txt) return;
    printf("\nlabelled subjects per site and label %s", txt);
    free(txt);
    const json_node *ls = json_get(root, "label_site");
    double p = json_num(ls, "p");
    if (isnan(p)) printf("\nchi-squared test: n/a (fewer than two sites or labels)\n");
    else
        printf("\nchi-squared %.3f, dof %.0f, p = %.3g, Cramer's V %.3f%s\n", json_num(ls, "chi2"),
               json_num(ls, "dof"), p, json_num(ls, "cramers_v"),
               p < 0.05 ? ": the label is unevenly spread over the sites" : "");
}

static void print_rview(const char *name, const json_node *b) {
    for (int t = 0; t < NFEAT; t++) {
        const json_node *c = json_get(b, feats[t]);
        printf("%-12s %-12s", t ? "" : name, feats[t]);
        print_pm(json_num(c, "r2"), json_num(c, "r2_sd"));
        if (isnan(json_num(c, "r2_oof"))) printf("  %-9s", "n/a");
        else printf("  %9.4f", json_num(c, "r2_oof"));
        if (isnan(json_num(c, "pearson_r"))) printf("  %-9s\n", "n/a");
        else printf("  %9.4f\n", json_num(c, "pearson_r"));
    }
    if (!json_get(b, "train_mean_r2")) return; /* a report from before the null model */
    printf("%-12s %-12s", "", "train_mean");
    print_pm(json_num(b, "train_mean_r2"), json_num(b, "train_mean_r2_sd"));
    printf("\n");
}

/* one block per target and the mean over targets: R2 (mean +- sd over repeats x folds),
 * pooled out-of-fold R2, Pearson r, then the few-shot R2 of the pooled view */
static void print_regression(const json_node *root) {
    const json_node *rg = json_get(root, "regression");
    if (!rg || rg->k != JSON_OBJ || rg->n == 0) return;
    for (int i = 0; i < rg->n; i++) {
        const json_node *b = &rg->kid[i];
        if (b->k != JSON_OBJ) continue;
        int mean = !strcmp(rg->keys[i], "mean");
        if (mean && rg->n <= 2) continue; /* one target: the mean repeats it */
        if (mean) printf("\nregression: mean over %d targets\n", rg->n - 1);
        else printf("\nregression of '%s' (ridge, alpha by leave-one-out on the training "
                    "subjects; %.0f subjects)\n", rg->keys[i],
                    json_num(json_get(b, "pooled"), "n_subjects"));
        printf("%-12s %-12s  %-17s  %-9s  %-9s\n", "view", "features", "R2 (folds)", "R2 oof",
               "Pearson r");
        print_rview("pooled", json_get(b, "pooled"));
        const json_node *at = json_get(b, "atlases");
        for (int a = 0; at && at->k == JSON_OBJ && a < at->n; a++) print_rview(at->keys[a], &at->kid[a]);
        printf("few-shot R2 (pooled view; n training subjects)\n");
        print_few_shot(json_get(b, "few_shot"), "n", "n_effective");
    }
}

int probe_report_print(const char *path, const char *stage, bgfm_err *e) {
    char *text = NULL;
    size_t len = 0;
    int rc = fs_read_all(path, &text, &len, e);
    if (rc) return rc;
    json_node root;
    memset(&root, 0, sizeof root);
    if (json_parse(text, len, &root) || root.k != JSON_OBJ) {
        json_free(&root);
        free(text);
        return bgfm_fail(e, BGFM_EDATA, "report: %s is not a valid probe report (JSON); rerun "
                         "the probe stage", path);
    }
    free(text);
    const json_node *cls = json_get(&root, "classes"), *proto = json_get(&root, "protocol");
    double reps = json_num(&root, "repeats");
    printf("probe stage '%s' (%s)\n", stage, path);
    printf("  %.0f subjects, %.0f labelled graphs, %d classes, %.0f folds grouped by subject x "
           "%.0f draws, C = %g, seed %.0f\n", json_num(&root, "n_subjects"),
           json_num(&root, "n_graphs"), cls ? cls->n : 0, json_num(&root, "folds"),
           isnan(reps) ? 1.0 : reps, json_num(&root, "C"), json_num(&root, "seed"));
    if (proto && proto->k == JSON_STR)
        printf("  protocol %s: pretraining read %.0f graphs, %.0f probed subjects among them\n",
               proto->str, json_num(&root, "pretrain_graphs"), json_num(&root, "overlap_subjects"));
    printf("\n%-12s %-12s  %-17s  %-17s  %-17s\n", "view", "features", "AUC", "accuracy",
           "balanced acc");
    const json_node *pooled = json_get(&root, "pooled");
    if (pooled) print_view("pooled", pooled);
    const json_node *at = json_get(&root, "atlases");
    for (int i = 0; at && at->k == JSON_OBJ && i < at->n; i++) print_view(at->keys[i], &at->kid[i]);
    const json_node *fs = json_get(&root, "few_shot");
    if (fs && fs->k == JSON_ARR && fs->n) {
        printf("\nfew-shot AUC (pooled view; k labelled training subjects per class)\n");
        print_few_shot(fs, "k", "k_effective");
    }
    print_collapse(&root);
    print_label_site(&root);
    print_regression(&root);
    printf("\n");
    json_free(&root);
    return 0;
}

