/* metrics.h: classification metrics of the probe: ROC AUC from scores (Mann-Whitney
 * with mid-ranks for ties), macro one-vs-rest AUC, accuracy, balanced accuracy, a
 * NaN-skipping mean / sample standard deviation, and Pearson's chi-squared test of a
 * contingency table (is the label spread evenly over the sites?).
 * Not the run metrics (metrics.jsonl is written by the engine and the stages). */
#ifndef BGFM_METRICS_H
#define BGFM_METRICS_H

#include <stdint.h>

#include "bgfm/ctx.h"

/* AUC of score for the positives (pos[i] != 0) against the negatives: the probability
 * that a random positive scores above a random negative, ties counting 1/2. NaN when
 * either class is empty, and when its sort buffer cannot be allocated (BGFM_ENOMEM then
 * recorded in e). */
double metrics_auc(const double *score, const int *pos, int64_t n, bgfm_err *e);
/* Macro one-vs-rest AUC over the classes that have both positives and negatives, into
 * *auc: P (n, K) class scores, y in 0..K-1. For K == 2 this is metrics_auc of column 1.
 * 0, or BGFM_ENOMEM (recorded in e; *auc NaN). */
int metrics_auc_ovr(const double *P, const int *y, int64_t n, int K, double *auc, bgfm_err *e);
/* Fraction of pred[i] == y[i] (NaN for n == 0). */
double metrics_accuracy(const int *pred, const int *y, int64_t n);
/* Mean over the classes present in y of the recall of that class. */
double metrics_balanced_accuracy(const int *pred, const int *y, int64_t n, int K);
/* Mean and sample standard deviation (n - 1) of the finite values of v; NaN if none
 * (sd 0 with one value). Returns the count of finite values. */
int metrics_mean_sd(const double *v, int n, double *mean, double *sd);
/* Column means mu (D) and standard deviations sd (D; ddof 0) of X (n, D) row-major, for
 * standardising features; a column whose sd is at most 1e-12 max(1, |mu|) (constant)
 * gets sd 1, so (x - mu) / sd stays finite. */
void metrics_col_scale(const double *X, int64_t n, int64_t D, double *mu, double *sd);

/* Upper tail P(X > x) of the chi-squared distribution with dof >= 1 degrees of freedom,
 * by the closed forms of the regularised incomplete gamma function at integer and
 * half-integer order (finite sums; erfc for odd dof). 1 for x <= 0; NaN for dof < 1 or
 * x NaN. */
double metrics_chi2_sf(double x, int dof);
/* Pearson's chi-squared test of independence of the rows and columns of the table n
 * (r, c) row-major (counts): rows and columns whose total is 0 are left out; with r', c'
 * those left, chi2 = sum (n_ij - e_ij)^2 / e_ij (e_ij = row_i col_j / N, no continuity
 * correction), dof = (r' - 1)(c' - 1), p = metrics_chi2_sf(chi2, dof), Cramer's V =
 * sqrt(chi2 / (N min(r' - 1, c' - 1))). Returns dof (0: fewer than two rows or columns
 * left; chi2, p and v are then NaN). */
typedef struct metrics_chi2 {
    double chi2, p, cramers_v;
    int dof;
} metrics_chi2;
int metrics_chi2_table(const int64_t *n, int r, int c, metrics_chi2 *out);

#endif
