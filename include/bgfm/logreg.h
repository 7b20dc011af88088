/* logreg.h: L2-regularised logistic regression (binary and multinomial) fitted by
 * deterministic L-BFGS in double precision, with feature standardisation from the
 * training data only. Objective (sklearn's convention, intercepts unpenalised):
 *     0.5 ||W||_F^2 + C * sum_i CE(softmax(W z_i + b), y_i)
 * binary (K = 2): one weight row, s = w.z + b, p(class 1) = sigmoid(s);
 * K > 2: K rows (symmetric softmax), intercepts kept summing to 0.
 * When D > n the problem is solved exactly in the n-dimensional row space of the
 * standardised data (the optimum lies there) and W is mapped back.
 * Not a model selector (no search over C) and not the probe protocol (probe.h). */
#ifndef BGFM_LOGREG_H
#define BGFM_LOGREG_H

#include <stdint.h>

#include "bgfm/ctx.h"

typedef struct logreg_opts {
    double C;        /* inverse regularisation strength (> 0) */
    int max_iter;    /* L-BFGS iterations */
    double tol;      /* stop when max |gradient| <= tol */
    int standardize; /* 1: z = (x - mean) / sd with the training mean and population sd
                        (sd 0 -> feature left centred, scale 1) */
} logreg_opts;

typedef struct logreg_model {
    int K;          /* classes (labels 0..K-1) */
    int nr;         /* weight rows: 1 when K == 2, else K */
    int64_t D;      /* features */
    double *W;      /* (nr, D), in standardised units when standardize */
    double *b;      /* (nr) */
    double *mu, *sd; /* (D) standardisation (mu 0, sd 1 without) */
    int iters;      /* iterations used */
    int converged;  /* 1 when the gradient criterion was met */
    double objective;
} logreg_model;

/* Fit on X (n, D) row-major, labels y[i] in 0..K-1 (K >= 2). Returns 0 or BGFM_ENOMEM /
 * BGFM_EUSAGE (bad arguments) with e set. Deterministic for a given input. */
int logreg_fit(logreg_model *m, const double *X, int64_t n, int64_t D, const int *y, int K,
               const logreg_opts *o, bgfm_err *e);
/* Class probabilities P (n, K) of rows X (n, D). Returns 0 or BGFM_ENOMEM. */
int logreg_predict_proba(const logreg_model *m, const double *X, int64_t n, double *P,
                         bgfm_err *e);
void logreg_free(logreg_model *m); /* accepts a zeroed/freed model */

#endif
