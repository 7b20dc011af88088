/* clean.h: signal cleaning of ROI time series: linear detrend, zero-phase Butterworth
 * filtering (scipy's butter(..., output='sos') + sosfiltfilt with odd padding), removal
 * of confounds (projection on their orthogonal complement), and standardisation (z-score
 * or percent signal change). Order: detrend, filter, confounds, standardize (as nilearn).
 * Not the extraction (parcellate.h) nor the reading of confounds (confounds.h). Pure
 * functions. */
#ifndef BGFM_CLEAN_H
#define BGFM_CLEAN_H

#include <stdint.h>

#include "bgfm/ctx.h"

typedef enum clean_standardize {
    CLEAN_STD_NONE = 0,
    CLEAN_STD_ZSCORE,
    CLEAN_STD_PSC
} clean_standardize;

typedef struct clean_opts {
    int detrend;         /* 1: remove least-squares line a + b t */
    double high_pass;    /* Hz, 0 = off */
    double low_pass;     /* Hz, 0 = off */
    int filter_order;    /* Butterworth order N (band-pass: 2N poles, like scipy) */
    clean_standardize standardize;
} clean_opts;

/* Second-order sections, each {b0 b1 b2 a0 a1 a2} with a0 = 1 (scipy's layout). */
#define CLEAN_MAX_SECTIONS 32
typedef struct clean_sos {
    int n;
    double s[CLEAN_MAX_SECTIONS][6];
    int padlen; /* sosfiltfilt's default: 3 * (2n + 1 - min(#b2==0, #a2==0)) */
} clean_sos;

/* Design the digital Butterworth filter of `order` for sampling rate fs (Hz):
 * high_pass only -> high-pass, low_pass only -> low-pass, both -> band-pass.
 * Each edge must satisfy 0 < f < fs/2 (and high_pass < low_pass): else BGFM_EDATA
 * with a message naming `what` (the image) and the Nyquist frequency. */
int clean_butter(int order, double high_pass, double low_pass, double fs, clean_sos *out,
                 const char *what, bgfm_err *e);
/* Zero-phase forward-backward filtering in place (n > padlen required, asserted).
 * work: 2 * (n + 2 * padlen) doubles. */
void clean_sosfiltfilt(const clean_sos *f, double *x, int64_t n, double *work);
/* x -= least-squares line over t = 0..n-1. */
void clean_detrend(double *x, int64_t n);
/* zscore: (x - mean) / std (ddof 0; std < DBL_EPSILON -> divide by 1).
 * psc: 100 (x - mean(x)) / |raw_mean| (raw_mean = mean of the raw series; |raw_mean|
 * < DBL_EPSILON -> all zeros). */
void clean_standardize_series(clean_standardize how, double *x, int64_t n, double raw_mean);
/* Confounds (nilearn's signal.clean order): each of the K columns of X (n x K,
 * column-major) is detrended (o->detrend) or else centred, filtered with f (may be NULL)
 * exactly as the series are, then orthonormalised in order (Gram-Schmidt, twice); a
 * column whose norm falls below CLEAN_RANK_TOL of its own after removing the earlier
 * ones is dropped. The first r columns of X become the basis; r is returned. */
#define CLEAN_RANK_TOL 1e-10
int clean_basis(const clean_opts *o, const clean_sos *f, double *X, int64_t n, int K,
                double *work);
/* x -= Q Q' x for the r orthonormal columns of Q (n x r, column-major). */
void clean_project(const double *Q, int r, double *x, int64_t n);
/* Censored volumes (censor[t] != 0) replaced by the natural cubic spline through the
 * others (scipy's CubicSpline(bc_type='natural') between the first and last kept
 * volumes; before the first and after the last the nearest kept value; fewer than 2 kept:
 * x unchanged). As Power et al. 2014 and nilearn's sample_mask do before filtering, so a
 * filter spreads no censored volume over its neighbours. work: 5 n doubles. */
void clean_interpolate(double *x, int64_t n, const uint8_t *censor, double *work);
/* The whole chain on one series: detrend, filter (`f` NULL: none), remove the span of
 * the confound basis Q (r columns from clean_basis; r = 0: none), standardize. */
void clean_series(const clean_opts *o, const clean_sos *f, const double *Q, int r, double *x,
                  int64_t n, double *work);

#endif
