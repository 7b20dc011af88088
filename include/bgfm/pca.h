/* pca.h: principal component analysis of wide data (n rows, D up to ~1e5 columns) through
 * the n x n Gram matrix of the centred rows (never a D x D covariance; past PCA_EXACT_MAX
 * rows its leading eigenpairs without forming it, pca_gram_top), and the cheap
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
 * positive. Past PCA_EXACT_MAX rows the Gram matrix is not formed: the rows are centred
 * in double once and its k leading eigenpairs found by pca_gram_top's randomised solver.
 * Needs n >= 2 and 1 <= k <= n - 1 (BGFM_EUSAGE). Returns 0, BGFM_ENOMEM or
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

/* The k leading eigenpairs of the Gram matrix G = Xc Xc^T of n rows Xc (n, D) in double,
 * row-major (centred or not: G is taken as it is), for callers that need a principal
 * subspace of many rows (pop.c's population head). Two solvers:
 *  - exact (PCA_SOLVER_EXACT): G by DSYRK, then LAPACK's dsyevd on it: 8 n^2 bytes and
 *    O(n^2 D + n^3) work;
 *  - randomised (PCA_SOLVER_RANDOMISED): block subspace iteration on the rows, never
 *    forming G (Halko, Martinsson and Tropp 2011: randomised subspace iteration, then
 *    Rayleigh-Ritz on the subspace found): a block of
 *    l = min(n, 2k + PCA_RAND_OVER) columns, started from X times a Gaussian sketch
 *    (Philox, RNG_SKETCH, a fixed key: the same bits on every rank and run), then
 *    repeatedly Q <- orth(Xc Xc^T Q) with Rayleigh-Ritz on span(Q) after each product, until
 *    the k leading Ritz values change by at most PCA_RAND_TOL of the largest between two
 *    iterations (at most PCA_RAND_ITERS): O(n l) bytes and O(n D l) work per iteration;
 *  - PCA_SOLVER_AUTO: exact for n <= PCA_EXACT_MAX rows, else randomised.
 * U (n, k) row-major: column j the j-th leading unit eigenvector (sign as the solver leaves
 * it); lam (k): the eigenvalues (exact) or Ritz values (randomised), largest first. info
 * (may be NULL): the solver used, its iterations and the last change. what names the
 * caller's problem in messages. Needs 1 <= k <= n. Returns 0, BGFM_EUSAGE, BGFM_ENOMEM or
 * BGFM_ENUMERIC (a LAPACK failure). */
enum { PCA_SOLVER_AUTO = 0, PCA_SOLVER_EXACT = 1, PCA_SOLVER_RANDOMISED = 2 };
#define PCA_EXACT_MAX 4096
#define PCA_RAND_OVER 16
#define PCA_RAND_TOL 1e-10
#define PCA_RAND_ITERS 60
typedef struct pca_top_info {
    int solver;    /* PCA_SOLVER_EXACT or PCA_SOLVER_RANDOMISED: the one used */
    int block;     /* randomised: the block's columns l */
    int iters;     /* randomised: products with Xc Xc^T after the start */
    double change; /* randomised: the last change of the k leading Ritz values / the largest */
} pca_top_info;
int pca_gram_top(const double *Xc, int64_t n, int64_t D, int k, int solver, double *U,
                 double *lam, pca_top_info *info, const char *what, bgfm_err *e);
/* The option's word of a PCA_SOLVER_* (auto, exact, randomised; NULL for another value) and
 * the solver of a word (-1 for another word). */
const char *pca_solver_name(int solver);
int pca_solver_parse(const char *word);

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
