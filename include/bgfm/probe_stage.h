/* probe_stage.h: what the files of the probe stage share (stages/probe/stage.c, data.c,
 * write.c; docs/probe.md): the probed graphs and subjects with their features, the
 * views, the result arrays, and the functions that fill and write them.
 * Not a public API: the protocol's reusable parts are probe.h, regress.h, ridge.h, pca.h. */
#ifndef BGFM_PROBE_STAGE_H
#define BGFM_PROBE_STAGE_H

#include <stdint.h>

#include "bgfm/audit.h"
#include "bgfm/bids.h"
#include "bgfm/corpus.h"
#include "bgfm/graphs.h"
#include "bgfm/metrics.h"
#include "bgfm/model.h"
#include "bgfm/probe.h"
#include "bgfm/regress.h"
#include "bgfm/stage.h"

#define PROBE_NFEAT 6 /* pretrained, random_init, fc_baseline, fc_pca, site, motion */
#define PROBE_FEAT_SITE 4 /* the acquisition site alone, one-hot: what a site confound reads */
#define PROBE_FEAT_MOTION 5 /* the scan's mean framewise displacement alone: what head
                               motion reads */
#define PROBE_NMET 3  /* auc, accuracy, balanced_accuracy */
#define PROBE_NREG REGRESS_NOUT /* per regression cell: r2, alpha, training subjects, r2 of the training mean */
#define PROBE_MAX_TARGETS 32
extern const char *const probe_feat_name[PROBE_NFEAT];
extern const char *const probe_met_name[PROBE_NMET];

/* The probed graphs: every graph of a probed subject (labelled, or with a target when
 * target_subjects is `all`), in store order. */
typedef struct probe_data {
    const bgfm_pipeline *pipe; /* in: roles of inputs.datasets (NULL: every graph) */
    corpus_map map;       /* inputs.subject_map (empty without): subjects counted as one */
    probe_audit audit;    /* the leakage audit (docs/corpus.md) */
    int A;                /* store atlases */
    int64_t nl;           /* probed graphs */
    int64_t *g;           /* (nl) store index */
    int32_t *atl;         /* (nl) store atlas */
    int64_t *subj;        /* (nl) subject (canonical index) */
    int64_t *win;         /* (nl) window */
    int64_t ns;           /* subjects */
    char **sid;           /* (ns) participant ids, sorted */
    int *cls;             /* (ns) class, -1 without a label */
    int64_t *site;        /* (ns) acquisition site (index, -1 unknown): the site of the
                             subject's first probed graph, "dataset/site" in a corpus */
    int64_t n_sites;      /* distinct known sites */
    char **site_name;     /* (n_sites) their names, sorted */
    int64_t *site_cls;    /* (n_sites, K) labelled subjects per site and class */
    metrics_chi2 label_site; /* chi-squared test of site_cls (dof 0: not defined) */
    double *fd;           /* (nl) the mean framewise displacement of the graph's scan (mm),
                             NaN when unknown (no confounds regressed) */
    double fd_fill;       /* what the motion feature holds where fd is unknown: the mean
                             of the known ones (0 when none is known) */
    int64_t n_motion;     /* probed subjects with a known mean FD */
    int K;
    int64_t *labels;      /* (K) label values, ascending */
    int R, F;             /* repeats, folds */
    int *fold;            /* (R, ns) classification folds, -1 without a label */
    int64_t E;            /* embedding width, model_embed_dim */
    double *emb[2];       /* (nl, E) pretrained, random */
    int64_t *tri;         /* (A) N(N-1)/2 */
    int64_t *fcoff;       /* (nl) offset into fcv */
    double *fcv;          /* every probed graph's FC upper triangle */
    int64_t fclen;
    int *pk;              /* (A) PCA components kept */
    int64_t *pcoff;       /* (nl) offset into pcv */
    double *pcv;          /* every probed graph's PCA scores */
    int64_t pclen;
    int64_t *pca_nfit;    /* (A) fitting graphs (rank 0) */
    double *pca_share;    /* (A) variance share of the kept components (rank 0) */
    int NT;               /* targets */
    char *const *tname;   /* (NT) column names (the stage options' strings) */
    double *y;            /* (NT, ns) target values, NaN when missing */
    int *rfold;           /* (NT, R, ns) regression folds, -1 without the target */
    /* protocol (docs/probe.md "Protocols") */
    char protocol[16];    /* "transductive" | "strict" */
    int64_t n_pre;        /* graphs pretraining read */
    int64_t *pre;         /* (n_pre) their store indices, ascending */
    int has_pre;          /* 1: the checkpoint lists them (/pretrain_graphs) */
    int external;         /* the checkpoint comes from elsewhere (`checkpoint:`): pre is
                             every graph of this store (fc_pca's fit), pre_keys what it read */
    char **pre_keys;      /* (n_pre_keys) its /pretrain_subjects, external only */
    int64_t n_pre_keys;
    int64_t overlap;      /* probed subjects whose graphs pretraining read */
} probe_data;

/* A view: each atlas alone, or `pooled` (one sample per subject and window with a graph
 * in every atlas, features concatenated in atlas order). */
typedef struct probe_view {
    char name[64];
    int64_t n;            /* samples */
    int64_t *subj;        /* (n) */
    int64_t *rows;        /* (n, nrow): probed-graph indices making up each sample */
    int nrow;             /* graphs per sample (1 or A) */
    int64_t D[PROBE_NFEAT];
    uint8_t *present;     /* (ns) 1 when the subject has a sample in this view */
} probe_view;

typedef struct probe_results {
    int nv, F, K, R;
    int64_t ns;
    int nk, main_k, n_klist;             /* few-shot levels (list, + `all` when absent) */
    int64_t ks[PROBE_MAX_K + 1];         /* labelled subjects per class, 0 = all */
    double *cell;  /* (nv, NFEAT, nk, R, F, NMET) */
    double *oof;   /* (nv, NFEAT, R, ns, K) out-of-fold subject probabilities, k = all */
    double *keff;  /* (nk) mean training subjects per class */
    int NT, nn, main_n, n_nlist;
    int64_t nsz[PROBE_MAX_K + 1];        /* training subjects, 0 = all */
    double *rcell; /* (NT, nv, NFEAT, nn, R, F, NREG) */
    double *rpred; /* (NT, nv, NFEAT, R, ns) out-of-fold predictions, n = all */
    double *neff;  /* (NT, nn) mean training subjects (pooled view) */
    double *alphas; /* (nv, NFEAT, RIDGE_GRID) the grids */
    double *edim;  /* (A, NFEAT) participation ratio per atlas (rank 0) */
    double *sshare; /* (A, NFEAT) subject share of variance per atlas (rank 0) */
    double *lshare; /* (A, NFEAT) label share (labelled samples; rank 0) */
    double *tshare; /* (A, NFEAT) site share (samples with a known site; rank 0) */
} probe_results;

double *probe_cell_at(const probe_results *p, int v, int t, int ki, int r, int f);
double *probe_rcell_at(const probe_results *p, int tg, int v, int t, int ni, int r, int f);
double *probe_rpred_at(const probe_results *p, int tg, int v, int t, int r);

/* ---- data.c (every function here is collective over r->ctx->comm unless noted) ---- */
void probe_data_free(probe_data *d);
/* Not collective: the participants table and the target columns' indices; every value
 * of those columns must be a number, n/a or empty (BGFM_EDATA naming file, row, column). */
int probe_targets_open(const char *path, char *const *names, int NT, bids_table *t, int *col,
                       bgfm_err *e);
/* Not collective: the subject key of store graph g: "<dataset>/<participant_id>" (the
 * participant alone for the unnamed dataset, "row-<subject>" without one), mapped by
 * inputs.subject_map onto its subject's canonical key. */
void probe_subject_key(graphs_store *gs, const corpus_map *map, int64_t g, char *buf, size_t n);
/* Not collective: the index of key s in the ascending (strcmp) list l[0..n), or -1. */
int64_t probe_find_key(char *const *l, int64_t n, const char *s);
/* Not collective: v[0..n) sorted ascending with repeats removed, in place; the count
 * left (class codes: collect_classes here, the meta pool's in finetune/meta.c). */
int64_t probe_distinct_i64(int64_t *v, int64_t n);
/* Not collective: probed graphs, subjects (sorted ids), classes (sorted label values),
 * target values. tab may be NULL when NT == 0; all_targets: subjects with a target but
 * no label are probed too. */
int probe_collect(graphs_store *gs, const char *gpath, const bids_table *tab, const int *tcol,
                  char *const *tnames, int NT, int all_targets, probe_data *d, bgfm_err *e);
/* Not collective: protocol and /pretrain_graphs of checkpoint ckpt, checked against a store
 * of G graphs; overlap with the probed subjects (strict: overlap > 0 is BGFM_EDATA). */
int probe_protocol(const char *ckpt, graphs_store *gs, probe_data *d, bgfm_err *e);
/* With d->external: the subjects the checkpoint's pretraining read (its /pretrain_subjects,
 * "<dataset>/<participant_id>") into pre_keys, every graph of gs into pre (fc_pca's fit),
 * and the overlap with the probed subjects through the subject map. */
int probe_protocol_external(const char *ckpt, graphs_store *gs, probe_data *d, bgfm_err *e);
/* Embeddings (pretrained, random) and FC triangles of the probed graphs. */
int probe_embed_all(bgfm_stage_run *r, graphs_store *gs, model *mp, model *mr, const int *amap,
                    probe_data *d);
/* fc_pca: per atlas, PCA (n_comp components, capped) fitted by rank 0 on the FC triangles of
 * the graphs pretraining read, scores of the probed graphs broadcast to every rank. */
int probe_pca_features(bgfm_stage_run *r, graphs_store *gs, probe_data *d, int n_comp,
                       const char *ckpt);
/* Not collective: view of atlas `atlas` (-1: pooled). */
int probe_view_make(const probe_data *d, graphs_store *gs, int atlas, probe_view *v, bgfm_err *e);
void probe_view_free(probe_view *v);
/* Not collective: the feature matrix (v->n, v->D[t]) of feature set t; NULL on ENOMEM. */
double *probe_view_matrix(const probe_data *d, const probe_view *v, int t, bgfm_err *e);
/* Not collective: subject means (ns, D) of the rows of X (v->n, D) (zero rows for subjects
 * absent from the view); NULL on ENOMEM. */
double *probe_subject_means(const probe_view *v, int64_t ns, const double *X, int64_t D,
                            bgfm_err *e);
/* Allreduce (sum, in place) of a double array of any length. */
int probe_allreduce_sum(bgfm_ctx *ctx, double *v, int64_t n);

/* ---- stage.c ---------------------------------------------------------------------- */
/* The stage's fold_file resolved against the pipeline file's folder (NULL when unset or
 * on ENOMEM): shared with the adaptation stages (docs/adapt.md). */
char *probe_fold_file_path(const bgfm_pipeline *p, const bgfm_stage_cfg *s, bgfm_err *e);

/* ---- show.c (bgfm report) ------------------------------------------------------------ */
/* Print a probe report (report/probe.json of stage `stage`) as tables on stdout;
 * BGFM_EDATA naming the file when it is not a probe report. Not collective. */
int probe_report_print(const char *path, const char *stage, bgfm_err *e);
/* The labelled subjects per site and label of a parsed probe.json ("label_site"), as
 * "(0 / 1): site-1 10/6, site-2 3/13" (the class values, then each site's counts), for
 * `bgfm report` and the HTML page; malloc'd, NULL when the report has no sites (or on
 * ENOMEM). */
struct json_node;
char *probe_label_site_text(const struct json_node *root);

/* ---- write.c (rank 0 only) ---------------------------------------------------------- */
typedef struct probe_report_ctx {
    const bgfm_stage_run *r;
    const probe_opts *o;
    const probe_data *d;
    const probe_results *p;
    const probe_view *views;
    graphs_store *gs;
    const char *ckpt, *gpath;
    int64_t H;         /* the encoder's width (hidden) */
    int pca_request;   /* pca_components asked for */
    int embed;         /* the model's enum model_embed, and its population head's rows */
    int pop_rank;
} probe_report_ctx;

int probe_write_json(const probe_report_ctx *c, const char *path, bgfm_err *e);
int probe_write_csvs(const probe_report_ctx *c, const char *dir, bgfm_err *e);
int probe_write_plot(bgfm_ctx *ctx, const probe_report_ctx *c, const char *dir);
int probe_write_embeddings(const probe_report_ctx *c, const char *path, bgfm_err *e);
/* Mean and sd over repeats x folds of metric q: classification (probe_met_name), or
 * regression (the cell's out[q] of regress_cell: REGRESS_R2, REGRESS_NULL_R2, ...).
 * 0, or BGFM_ENOMEM (recorded in e; mean and sd NaN). */
int probe_cls_mean_sd(const probe_results *p, int v, int t, int ki, int q, double *mean,
                      double *sd, bgfm_err *e);
int probe_reg_mean_sd(const probe_results *p, int tg, int v, int t, int ni, int q, double *mean,
                      double *sd, bgfm_err *e);

#endif
