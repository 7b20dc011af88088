/* ridge.h: ridge regression with an unpenalised intercept on standardised features, its
 * strength chosen on the training rows alone by exact leave-one-out error over a grid.
 * Model: minimise sum_i (y_i - b0 - z_i . beta)^2 + alpha |beta|^2, z = (x - mu) / sd with
 * the training mean and population sd (a constant feature is only centred, as logreg.h).
 * With Z = U S V^T (thin SVD of the centred training rows, from the smaller of Z Z^T and
 * Z^T Z), the hat matrix is H = 11^T/n + U diag(s^2/(s^2+alpha)) U^T, so every alpha's
 * leave-one-out residuals e_i / (1 - H_ii) cost O(n rank) (Allen's PRESS; refitting the
 * intercept on the n - 1 rows, the standardisation held fixed).
 * Not the cross-validation protocol (regress.h). Non-collective. */
#ifndef BGFM_RIDGE_H
#define BGFM_RIDGE_H

#include <stdint.h>

#include "bgfm/ctx.h"

#define RIDGE_GRID 33 /* alphas of ridge_alpha_grid: 4 per decade over 8 decades */

typedef struct ridge_model {
    int64_t D;
    double *mu, *sd; /* (D) standardisation */
    double *beta;    /* (D) coefficients in standardised units */
    double b0;       /* intercept: the training mean of y */
    double alpha;    /* chosen strength */
    int ia;          /* its index in the grid */
    double loo_mse;  /* its leave-one-out mean squared error */
    int64_t rank;    /* singular values kept (s^2 > 1e-10 s_max^2) */
} ridge_model;

/* alphas[i] = D * 10^(-3 + 8 i / (n - 1)), i = 0..n-1 (n >= 2): 1e-3 D .. 1e5 D. With
 * standardised features the mean eigenvalue of Z^T Z scales with D (wide data) or n, so
 * the grid spans interpolation to the intercept-only model in both regimes. */
void ridge_alpha_grid(int64_t D, int n, double *alphas);

/* Fit on X (n, D), y (n), n >= 2. Evaluates every alpha of the grid (ascending, > 0) by
 * leave-one-out mean squared error (written to loo_mse[0..n_alpha-1] when not NULL) and
 * keeps the smallest error, the larger alpha on exact ties. Returns 0, BGFM_EUSAGE (bad
 * arguments), BGFM_ENOMEM or BGFM_ENUMERIC (eigensolver failure). Deterministic. */
int ridge_fit(ridge_model *m, const double *X, int64_t n, int64_t D, const double *y,
              const double *alphas, int n_alpha, double *loo_mse, bgfm_err *e);
/* Predictions out (n) for rows X (n, D). Returns 0 or BGFM_ENOMEM. */
int ridge_predict(const ridge_model *m, const double *X, int64_t n, double *out, bgfm_err *e);
void ridge_free(ridge_model *m); /* accepts a zeroed/freed model */

#endif
