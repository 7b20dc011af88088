/* deconfound.h: confound regression inside cross-validation (docs/probe.md "Regressing out
 * confounds"): every feature column less its least-squares fit on the confounds, the fit
 * made on the training rows only and applied to the training and test rows alike, so no
 * test row informs it (the cross-validated confound regression of Snoek, Miletic and
 * Scholte, NeuroImage 2019). Non-collective.
 * Not the classifier or the ridge (probe.h, regress.h), which call it per cell. */
#ifndef BGFM_DECONFOUND_H
#define BGFM_DECONFOUND_H

#include <stdint.h>

#include "bgfm/ctx.h"

/* Xtr (ntr, D) and Xte (nte, D) in place; Ctr (ntr, q) and Cte (nte, q) their confounds,
 * row-major. The confounds are centred and scaled on the training rows (a column
 * constant there is dropped), B = pinv(Z'Z) Z'Xtr with eigenvalues of Z'Z below 1e-10
 * of the largest dropped (so collinear confounds, such as a one-hot site, are fine), and
 * Z B is subtracted from every row: a column keeps its training mean. A column whose
 * training variation the confounds explain entirely (residual sum of squares at most
 * 1e-12 of the centred one, or none to begin with) becomes exactly its training mean in
 * every row, not rounding noise. Nothing changes when q == 0 or ntr < 2. 0 or BGFM_ENOMEM
 * / BGFM_ENUMERIC. */
int deconfound(double *Xtr, int64_t ntr, const double *Ctr, double *Xte, int64_t nte,
               const double *Cte, int64_t D, int q, bgfm_err *e);

#endif
