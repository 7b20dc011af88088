/* regress.h: the regression side of the probe protocol (docs/probe.md "Regression"):
 * subject folds for a numeric target, few-shot training subsets, one cross-validation
 * cell (ridge.h on subject-level features, strength chosen on the training subjects
 * only), and the scores R2 and Pearson r.
 * Not the classifier side (probe.h), not the ridge solver (ridge.h). Non-collective. */
#ifndef BGFM_REGRESS_H
#define BGFM_REGRESS_H

#include <stdint.h>

#include "bgfm/ctx.h"

/* Folds of the subjects that have the target (has[s] != 0), given in canonical order
 * (sorted participant ids): they are shuffled with rng(seed, RNG_PROBE, 3, repeat, 0) and
 * dealt to folds round-robin, so fold sizes differ by at most one. fold[s] = -1 for the
 * others. Targets with the same subjects get the same folds. Fails (BGFM_EDATA) when
 * fewer subjects than folds have the target, naming `what` (the target). */
int regress_folds(int64_t n_subj, const uint8_t *has, int folds, uint64_t seed, int repeat,
                  const char *what, int *fold, bgfm_err *e);

/* Training subjects of fold f used at few-shot size n: the subjects with fold >= 0 and
 * fold != f, in canonical order, shuffled with rng(seed, RNG_PROBE, 4, f + 2^32 repeat, 0);
 * the first n kept (all when n == 0 or n exceeds the count), so the sets are nested in n.
 * use[s] = 1 when subject s trains. 0, or BGFM_ENOMEM (recorded in e). */
int regress_few_shot(int64_t n_subj, const int *fold, int f, int64_t n, uint64_t seed,
                     int repeat, uint8_t *use, bgfm_err *e);

#define REGRESS_NOUT 4    /* the numbers regress_cell writes into out */
#define REGRESS_R2 0      /* out[]: the features' R2 */
#define REGRESS_NULL_R2 3 /* out[]: the null model's R2 */

/* One cell: ridge (alpha chosen by leave-one-out over `alphas` on the training subjects)
 * fitted on the subjects with use[s] (and present[s], when present != NULL), predicting
 * the subjects with fold[s] == f (and present). X (n_subj, D) subject-level features,
 * C (n_subj, q) their confounds, regressed out on the training subjects first
 * (deconfound.h; q == 0: none, C may be NULL), y (n_subj). Writes the test subjects' predictions into pred[s] (when pred != NULL),
 * out[0] = R2 on the test subjects (their own mean in SST), out[1] = the chosen alpha,
 * out[2] = the number of training subjects, out[3] = the R2 of predicting every test
 * subject by the training subjects' mean (the null model: features below it predict
 * worse than ignoring them). BGFM_EDATA when fewer than 2 training or no test subjects. */
int regress_cell(const double *X, int64_t n_subj, int64_t D, const double *C, int q,
                 const double *y, const int *fold, int f, const uint8_t *use,
                 const uint8_t *present, const double *alphas, int n_alpha, double *pred,
                 double out[REGRESS_NOUT], bgfm_err *e);

/* 1 - sum (y - p)^2 / sum (y - mean y)^2 over n values; NaN when n < 2 or y is constant. */
double regress_r2(const double *y, const double *p, int64_t n);
/* Pearson correlation of y and p; NaN when n < 2 or either is constant. */
double regress_pearson(const double *y, const double *p, int64_t n);

#endif
