/* pca.h: principal component analysis of wide data (n rows, D up to ~1e5 columns) through
 * the n x n Gram matrix of the centred rows (never a D x D covariance), and the cheap
 * representation diagnostics the probe reports beside it: the participation ratio of a
 * covariance and the share of variance explained by a grouping (docs/probe.md).
 * Not the probe protocol (probe.h) and not a whitening transform. Non-collective. */
#ifndef BGFM_PCA_H
#define BGFM_PCA_H

#include <stdint.h>

#include "bgfm/ctx.h"

typedef struct pca_model {
    int64_t D;       /* features */
    int64_t n_fit;   /* fitting rows */
    int k;           /* components kept */
    double *mean;    /* (D) mean of the fitting rows */
    double *comp;    /* (k, D) unit principal axes, by decreasing variance */
    double *var;     /* (k) variance of each component over the fitting rows (/ (n-1)) */
    double total_var; /* trace of the fitting rows' covariance (/ (n-1)) */
} pca_model;

/* Fit on X (n, D) row-major float (the graph store's precision; all arithmetic in
 * double): centre with the rows' mean, Gram G = Xc Xc^T (DSYRK over column blocks),
 * G = U L U^T (LAPACKE_dsyevd), axes v_j = Xc^T u_j / sqrt(l_j) for the k largest l_j.
 * Components beyond the numerical rank (l_j <= 1e-10 l_max) are dropped, so m->k may be
 * below k. Sign convention: each axis's largest-magnitude entry (first on ties) is
 * positive. Needs n >= 2 and 1 <= k <= n - 1 (BGFM_EUSAGE). Returns 0, BGFM_ENOMEM or
 * BGFM_ENUMERIC (eigensolver failure). */
int pca_fit(pca_model *m, const float *X, int64_t n, int64_t D, int k, bgfm_err *e);
/* Scores S (n, m->k) = (X - mean) V^T of rows X (n, D) in double. Returns 0 or
 * BGFM_ENOMEM. */
int pca_transform(const pca_model *m, const double *X, int64_t n, double *S, bgfm_err *e);
void pca_free(pca_model *m); /* accepts a zeroed/freed model */
/* The sign convention of pca_fit's axes, for any set of directions (the population head's,
 * pop.h, too): each of the k rows (length D) of rows is negated when its largest-magnitude
 * entry (first on ties) is negative. */
void pca_fix_signs(double *rows, int k, int64_t D);

/* Participation ratio (sum l)^2 / sum l^2 of the eigenvalues l of the covariance of the
 * rows of X (n, D), computed without eigenvalues as tr(C)^2 / ||C||_F^2 on the smaller
 * of Xc^T Xc and Xc Xc^T (same non-zero spectrum). 1 = all variance on one axis,
 * min(n-1, D) = spread evenly. NaN when the rows do not vary. *pr is written; returns 0
 * or BGFM_ENOMEM. */
int pca_participation_ratio(const double *X, int64_t n, int64_t D, double *pr, bgfm_err *e);
/* Share of the total variance of X (n, D) explained by the group means:
 * sum_g n_g |m_g - m|^2 / sum_i |x_i - m|^2, group[i] in 0..n_groups-1; a row with
 * group[i] < 0 is left out (m and the sums are over the other rows). NaN when fewer than
 * 2 rows are kept or they do not vary. Returns 0 or BGFM_ENOMEM. */
int pca_group_share(const double *X, int64_t n, int64_t D, const int64_t *group,
                    int64_t n_groups, double *share, bgfm_err *e);

#endif
