/* probe.h: the `probe` stage (docs/probe.md): what pretraining buys, measured by
 * linear probes on frozen graph embeddings (pretrained encoder, randomly initialised
 * encoder of the same shape) and on the classic FC upper triangle and its PCA, with
 * folds grouped by subject and stratified by label, repeated fold draws, few-shot
 * curves, and report/probe.json. Not the classifier (logreg.h), not the regression
 * side (regress.h), not the metrics (metrics.h), not `bgfm report`. */
#ifndef BGFM_PROBE_H
#define BGFM_PROBE_H

#include <stdint.h>

#include "bgfm/ctx.h"
#include "bgfm/logreg.h"
#include "bgfm/model.h"

#define PROBE_MAX_K 16 /* few-shot points */

typedef struct probe_opts {
    int folds;
    uint64_t seed;
    logreg_opts lr;
    int n_k;
    int64_t k[PROBE_MAX_K]; /* labelled subjects per class in the training fold; 0 = all */
    int repeats;            /* fold draws */
    int pca_components;     /* fc_pca components asked for (capped by the data) */
    int n_targets;
    char *const *targets;   /* numeric participants.tsv columns (the options' strings) */
    int all_targets;        /* target_subjects: all (else labelled subjects only) */
    int n_n;
    int64_t n[PROBE_MAX_K]; /* training subjects of the regression few-shot curve; 0 = all */
    int transductive;       /* accept probed subjects that pretraining read (inputs.datasets) */
    int regress_motion;     /* regress_out: head motion (mean FD) out of every feature set */
    int regress_site;       /* regress_out: the site (one-hot) out of every feature set */
} probe_opts;

/* Folds grouped by subject and stratified by class. Subjects are given in a canonical
 * order (the stage sorts them by participant id); cls[s] in 0..K-1, or -1 for a subject
 * without a label (fold[s] = -1). Repeat r: the subjects of each class are shuffled with
 * rng(seed, RNG_PROBE, 1, class, r) and dealt to folds round-robin, the deal continuing
 * across classes (class 0 first) so fold sizes differ by at most one. fold[s] in
 * 0..folds-1. Fails (BGFM_EDATA) when a class has fewer subjects than folds, naming both
 * counts. */
int probe_folds(int64_t n_subj, const int *cls, int K, int folds, uint64_t seed, int repeat,
                int *fold, bgfm_err *e);

/* Folds from a file (`fold_file`, docs/probe.md): a TSV with the columns participant_id
 * and fold (an integer from 0; n/a or empty leaves the subject out). Subjects sid[0..ns)
 * in canonical order; every subject with need[s] must have a fold (fold[s]; -1 for the
 * others); *F = the largest fold + 1, at least 2, with no empty fold. BGFM_EDATA naming
 * the file and the participant otherwise. The same folds serve every repeat. */
int probe_fold_file(const char *path, int64_t ns, char *const *sid, const uint8_t *need,
                    int *fold, int *F, bgfm_err *e);

/* Training subjects of fold f used at few-shot level k: for each class, the training
 * subjects (fold != f, fold >= 0) in canonical order shuffled with rng(seed, RNG_PROBE,
 * 2, f + 2^32 repeat, class), the first k kept (all when k == 0 or k exceeds the count),
 * so smaller k give subsets of larger k. use[s] = 1 when subject s trains. 0, or
 * BGFM_ENOMEM (recorded in e). */
int probe_few_shot(int64_t n_subj, const int *cls, const int *fold, int K, int f, int64_t k,
                   uint64_t seed, int repeat, uint8_t *use, bgfm_err *e);

/* Graph embedding of one graph in eval mode (model.md section 2: mean of the
 * encoder's region-node outputs over the full graph; no dropout, masking or
 * corruption). atlas = model atlas index, N its node count, fc/adj (N, N), rwse
 * (N, k). ws must come from model_ws_init(ws, m, 1 or more). out: model_feature_dim(m)
 * floats: under the model's `embedding`, the encoder's readout, then the population
 * head's pop_rank numbers (model.md section 11). */
void probe_embed(model *m, model_ws *ws, int atlas, int N, const float *fc, const uint8_t *adj,
                 const float *rwse, int64_t gidx, float *out);

/* One cross-validation cell: fit on the samples of the training subjects selected by
 * `use` (probe_few_shot), predict the samples of fold f's test subjects, average each
 * test subject's class probabilities over its samples, and score at subject level.
 * X (n, D), subj[i] = subject of sample i; C (n, q) the samples' confounds, regressed
 * out of the features on the training samples first (deconfound.h; q == 0: none, C may
 * be NULL). Writes auc, accuracy, balanced accuracy into m3[0..2] and, when oof != NULL,
 * the test subjects' averaged probabilities into oof (n_subj, K) rows. */
int probe_cell(const double *X, int64_t n, int64_t D, const double *C, int q,
               const int64_t *subj, int64_t n_subj, const int *cls, int K, const int *fold,
               int f, const uint8_t *use, const logreg_opts *lr, double m3[3], double *oof,
               bgfm_err *e);

#endif
