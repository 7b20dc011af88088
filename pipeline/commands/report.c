/* report.c: `bgfm report WORKDIR`: a short table of every probe stage's
 * report/probe.json in WORKDIR (AUC / accuracy / balanced accuracy with their sd over
 * draws x folds, the few-shot AUCs, the effective dimension of each feature set, and the
 * regression of numeric targets), then any scaling*.csv found in WORKDIR or its stage
 * folders.
 * Includes the small JSON reader it needs. Not the probe itself (stages/probe/). */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/cli.h"
#include "bgfm/fsutil.h"

/* ---- a small JSON reader (the subset our reports use, RFC 8259 syntax) ------------- */
typedef enum { JN_NULL, JN_BOOL, JN_NUM, JN_STR, JN_ARR, JN_OBJ } jn_kind;
typedef struct jnode {
    jn_kind k;
    double num;
    char *str;
    int n;        /* items / members */
    char **keys;  /* JN_OBJ */
    struct jnode *kid;
} jnode;

typedef struct jp {
    const char *s;
    size_t i, n;
    int depth;
} jp;

static void jn_free(jnode *v) {
    if (!v) return;
    for (int i = 0; i < v->n; i++) {
        jn_free(&v->kid[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->kid);
    free(v->keys);
    free(v->str);
    memset(v, 0, sizeof *v);
}

static void jp_ws(jp *p) {
    while (p->i < p->n && strchr(" \t\r\n", p->s[p->i])) p->i++;
}

static int jp_value(jp *p, jnode *v);

static int jp_string(jp *p, char **out) {
    if (p->i >= p->n || p->s[p->i] != '"') return -1;
    p->i++;
    size_t cap = 16, m = 0;
    char *b = malloc(cap);
    if (!b) return -1;
    while (p->i < p->n && p->s[p->i] != '"') {
        char c = p->s[p->i++];
        if (c == '\\') {
            if (p->i >= p->n) break;
            char x = p->s[p->i++];
            switch (x) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u': /* keep ASCII, replace anything else by '?' */
                if (p->i + 4 > p->n) {
                    free(b);
                    return -1;
                }
                {
                    unsigned u = 0;
                    if (sscanf(p->s + p->i, "%4x", &u) != 1) {
                        free(b);
                        return -1;
                    }
                    c = u < 128 ? (char)u : '?';
                }
                p->i += 4;
                break;
            default: c = x;
            }
        }
        if (m + 2 > cap) {
            char *t = realloc(b, cap *= 2);
            if (!t) {
                free(b);
                return -1;
            }
            b = t;
        }
        b[m++] = c;
    }
    if (p->i >= p->n) {
        free(b);
        return -1;
    }
    p->i++;
    b[m] = '\0';
    *out = b;
    return 0;
}

static int jp_push(jnode *v, int *cap) {
    if (v->n < *cap) return 0;
    *cap = *cap ? 2 * *cap : 8;
    jnode *k = realloc(v->kid, (size_t)*cap * sizeof *k);
    if (!k) return -1;
    v->kid = k;
    if (v->k == JN_OBJ) {
        char **ks = realloc(v->keys, (size_t)*cap * sizeof *ks);
        if (!ks) return -1;
        v->keys = ks;
    }
    return 0;
}

static int jp_value(jp *p, jnode *v) {
    memset(v, 0, sizeof *v);
    jp_ws(p);
    if (p->i >= p->n || p->depth > 64) return -1;
    char c = p->s[p->i];
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        v->k = c == '{' ? JN_OBJ : JN_ARR;
        p->i++;
        p->depth++;
        int cap = 0;
        jp_ws(p);
        if (p->i < p->n && p->s[p->i] == close) {
            p->i++;
            p->depth--;
            return 0;
        }
        for (;;) {
            if (jp_push(v, &cap)) return -1;
            char *key = NULL;
            if (v->k == JN_OBJ) {
                jp_ws(p);
                if (jp_string(p, &key)) return -1;
                jp_ws(p);
                if (p->i >= p->n || p->s[p->i] != ':') {
                    free(key);
                    return -1;
                }
                p->i++;
                v->keys[v->n] = key;
            }
            int rc = jp_value(p, &v->kid[v->n]);
            v->n++;
            if (rc) return -1;
            jp_ws(p);
            if (p->i < p->n && p->s[p->i] == ',') {
                p->i++;
                continue;
            }
            if (p->i < p->n && p->s[p->i] == close) {
                p->i++;
                p->depth--;
                return 0;
            }
            return -1;
        }
    }
    if (c == '"') {
        v->k = JN_STR;
        return jp_string(p, &v->str);
    }
    if (!strncmp(p->s + p->i, "null", 4)) {
        p->i += 4;
        v->k = JN_NULL;
        return 0;
    }
    if (!strncmp(p->s + p->i, "true", 4) || !strncmp(p->s + p->i, "false", 5)) {
        v->k = JN_BOOL;
        v->num = p->s[p->i] == 't';
        p->i += p->s[p->i] == 't' ? 4 : 5;
        return 0;
    }
    char *end = NULL;
    v->k = JN_NUM;
    v->num = strtod(p->s + p->i, &end);
    if (end == p->s + p->i) return -1;
    p->i = (size_t)(end - p->s);
    return 0;
}

static const jnode *jn_get(const jnode *v, const char *key) {
    if (!v || v->k != JN_OBJ) return NULL;
    for (int i = 0; i < v->n; i++)
        if (!strcmp(v->keys[i], key)) return &v->kid[i];
    return NULL;
}

static double jn_num(const jnode *v, const char *key) {
    const jnode *x = jn_get(v, key);
    return x && x->k == JN_NUM ? x->num : (double)NAN;
}

/* ---- the table -------------------------------------------------------------------- */
#define NFEAT 4
static const char *const feats[NFEAT] = {"pretrained", "random_init", "fc_baseline", "fc_pca"};

static void print_pm(double m, double sd) {
    if (isnan(m)) printf("  %-16s", "n/a");
    else printf("  %7.4f +- %.4f", m, isnan(sd) ? 0.0 : sd);
}

static void print_view(const char *name, const jnode *b) {
    for (int t = 0; t < NFEAT; t++) {
        const jnode *c = jn_get(b, feats[t]);
        if (!c) continue; /* reports of format 1 have no fc_pca */
        printf("%-12s %-12s", t ? "" : name, feats[t]);
        print_pm(jn_num(c, "auc"), jn_num(c, "auc_sd"));
        print_pm(jn_num(c, "accuracy"), jn_num(c, "accuracy_sd"));
        print_pm(jn_num(c, "balanced_accuracy"), jn_num(c, "balanced_accuracy_sd"));
        printf("\n");
    }
}

/* few-shot rows: key "k" (classification) or "n" (regression), one value per feature */
static void print_few_shot(const jnode *fs, const char *key, const char *eff) {
    printf("%-8s %-8s", key, !strcmp(key, "k") ? "k_eff" : "n_eff");
    for (int t = 0; t < NFEAT; t++) printf(" %-12s", feats[t]);
    printf("\n");
    for (int i = 0; fs && fs->k == JN_ARR && i < fs->n; i++) {
        const jnode *r = &fs->kid[i], *k = jn_get(r, key);
        char kb[32];
        if (k && k->k == JN_STR) snprintf(kb, sizeof kb, "%s", k->str);
        else snprintf(kb, sizeof kb, "%.0f", k ? k->num : (double)NAN);
        printf("%-8s %-8.2f", kb, jn_num(r, eff));
        for (int t = 0; t < NFEAT; t++)
            if (jn_get(r, feats[t])) printf(" %-12.4f", jn_num(r, feats[t]));
        printf("\n");
    }
}

/* effective dimension and subject share per atlas */
static void print_collapse(const jnode *root) {
    const jnode *ed = jn_get(root, "effective_dim"), *sh = jn_get(root, "subject_variance_share");
    if (!ed || ed->k != JN_OBJ) return;
    printf("\nrepresentation: participation ratio of the covariance (effective dimension) and "
           "share of variance between subjects, per atlas\n");
    printf("%-12s %-12s %-10s %-10s %-10s\n", "atlas", "features", "dim", "n_features",
           "subject");
    const jnode *at = jn_get(root, "atlases");
    for (int i = 0; i < ed->n; i++) {
        const jnode *nf = jn_get(jn_get(at, ed->keys[i]), "n_features");
        for (int t = 0; t < NFEAT; t++)
            printf("%-12s %-12s %-10.2f %-10.0f %-10.3f\n", t ? "" : ed->keys[i], feats[t],
                   jn_num(&ed->kid[i], feats[t]), jn_num(nf, feats[t]),
                   jn_num(jn_get(sh, ed->keys[i]), feats[t]));
    }
}

static void print_rview(const char *name, const jnode *b) {
    for (int t = 0; t < NFEAT; t++) {
        const jnode *c = jn_get(b, feats[t]);
        printf("%-12s %-12s", t ? "" : name, feats[t]);
        print_pm(jn_num(c, "r2"), jn_num(c, "r2_sd"));
        if (isnan(jn_num(c, "r2_oof"))) printf("  %-9s", "n/a");
        else printf("  %9.4f", jn_num(c, "r2_oof"));
        if (isnan(jn_num(c, "pearson_r"))) printf("  %-9s\n", "n/a");
        else printf("  %9.4f\n", jn_num(c, "pearson_r"));
    }
}

/* one block per target and the mean over targets: R2 (mean +- sd over repeats x folds),
 * pooled out-of-fold R2, Pearson r, then the few-shot R2 of the pooled view */
static void print_regression(const jnode *root) {
    const jnode *rg = jn_get(root, "regression");
    if (!rg || rg->k != JN_OBJ || rg->n == 0) return;
    for (int i = 0; i < rg->n; i++) {
        const jnode *b = &rg->kid[i];
        if (b->k != JN_OBJ) continue;
        int mean = !strcmp(rg->keys[i], "mean");
        if (mean && rg->n <= 2) continue; /* one target: the mean repeats it */
        if (mean) printf("\nregression: mean over %d targets\n", rg->n - 1);
        else printf("\nregression of '%s' (ridge, alpha by leave-one-out on the training "
                    "subjects; %.0f subjects)\n", rg->keys[i],
                    jn_num(jn_get(b, "pooled"), "n_subjects"));
        printf("%-12s %-12s  %-17s  %-9s  %-9s\n", "view", "features", "R2 (folds)", "R2 oof",
               "Pearson r");
        print_rview("pooled", jn_get(b, "pooled"));
        const jnode *at = jn_get(b, "atlases");
        for (int a = 0; at && at->k == JN_OBJ && a < at->n; a++) print_rview(at->keys[a], &at->kid[a]);
        printf("few-shot R2 (pooled view; n training subjects)\n");
        print_few_shot(jn_get(b, "few_shot"), "n", "n_effective");
    }
}

static int report_probe(const char *path, const char *stage, bgfm_err *e) {
    char *text = NULL;
    size_t len = 0;
    int rc = fs_read_all(path, &text, &len, e);
    if (rc) return rc;
    jp p = {text, 0, len, 0};
    jnode root;
    if (jp_value(&p, &root) || root.k != JN_OBJ) {
        jn_free(&root);
        free(text);
        return bgfm_fail(e, BGFM_EDATA, "report: %s is not a valid probe report (JSON); rerun "
                         "the probe stage", path);
    }
    free(text);
    const jnode *cls = jn_get(&root, "classes"), *proto = jn_get(&root, "protocol");
    double reps = jn_num(&root, "repeats");
    printf("probe stage '%s' (%s)\n", stage, path);
    printf("  %.0f subjects, %.0f labelled graphs, %d classes, %.0f folds grouped by subject x "
           "%.0f draws, C = %g, seed %.0f\n", jn_num(&root, "n_subjects"),
           jn_num(&root, "n_graphs"), cls ? cls->n : 0, jn_num(&root, "folds"),
           isnan(reps) ? 1.0 : reps, jn_num(&root, "C"), jn_num(&root, "seed"));
    if (proto && proto->k == JN_STR)
        printf("  protocol %s: pretraining read %.0f graphs, %.0f probed subjects among them\n",
               proto->str, jn_num(&root, "pretrain_graphs"), jn_num(&root, "overlap_subjects"));
    printf("\n%-12s %-12s  %-17s  %-17s  %-17s\n", "view", "features", "AUC", "accuracy",
           "balanced acc");
    const jnode *pooled = jn_get(&root, "pooled");
    if (pooled) print_view("pooled", pooled);
    const jnode *at = jn_get(&root, "atlases");
    for (int i = 0; at && at->k == JN_OBJ && i < at->n; i++) print_view(at->keys[i], &at->kid[i]);
    const jnode *fs = jn_get(&root, "few_shot");
    if (fs && fs->k == JN_ARR && fs->n) {
        printf("\nfew-shot AUC (pooled view; k labelled training subjects per class)\n");
        print_few_shot(fs, "k", "k_effective");
    }
    print_collapse(&root);
    print_regression(&root);
    printf("\n");
    jn_free(&root);
    return 0;
}

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
            rc = report_probe(path, names[i], e);
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

int cmd_report(bgfm_ctx *ctx, int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        if (ctx->rank == 0)
            printf("usage: bgfm report WORKDIR\n\nPrints a table of every probe stage's "
                   "WORKDIR/<stage>/report/probe.json:\nAUC, accuracy and balanced accuracy "
                   "(mean +- sd over draws x folds) of the\npretrained encoder, the random-init "
                   "encoder, the FC baseline and its PCA per view\n(pooled, each atlas), the "
                   "few-shot AUCs, the effective dimension of each\nfeature set, the R2 and "
                   "Pearson r of every regression target; then any\nscaling*.csv in WORKDIR or "
                   "its stage folders.\n");
        return 0;
    }
    int rc = 0;
    if (argc != 2)
        rc = bgfm_fail(&ctx->err, BGFM_EUSAGE, "report: expected one argument, the work folder "
                       "(bgfm report WORKDIR)");
    else if (ctx->rank == 0)
        rc = report_run(argv[1], &ctx->err);
    fflush(stdout);
    return bgfm_ctx_agree(ctx, rc);
}
