/* confounds.h: the nuisance regressors of one image, read from its fMRIPrep confounds
 * file (<entities>_desc-confounds_timeseries.tsv beside the image): the columns a
 * parcellate stage names (with the motion6 / motion12 / motion24 shorthands) and the
 * volumes whose framewise displacement exceeds `scrub` (a mask, or one spike regressor
 * each). Not the regression or the interpolation itself (clean.h). Non-collective, no
 * state. */
#ifndef BGFM_CONFOUNDS_H
#define BGFM_CONFOUNDS_H

#include <stdint.h>

#include "bgfm/ctx.h"

typedef struct confounds_spec {
    char *const *names;  /* column names or shorthands, n_names of them (not owned) */
    int n_names;
    double scrub;        /* mm; > 0: spike regressors where framewise_displacement > scrub */
    double max_scrubbed; /* a larger fraction of scrubbed volumes is an error */
} confounds_spec;

/* 1 when the spec asks for any regressor. */
int confounds_on(const confounds_spec *s);

/* The confounds file of `image` (malloc'ed path): the image's name without _bold.nii[.gz]
 * and without its space-, res-, den-, desc- and cohort- entities, + 
 * "_desc-confounds_timeseries.tsv" (fMRIPrep >= 20.2), else + "_desc-confounds_regressors.tsv"
 * (older), in the image's folder. `must_exist` 0: the first candidate whether it exists or
 * not (NULL only when out of memory); 1: the existing one, else BGFM_EDATA naming both. */
char *confounds_path(const char *image, int must_exist, bgfm_err *e);

/* One image's regressors for T volumes, as confounds_load gives them. */
typedef struct confounds_set {
    double *X;       /* T x K doubles, column-major (column k at X + k T); NULL when K = 0 */
    int K;           /* columns of X */
    uint8_t *censor; /* T flags, 1 where framewise_displacement > scrub; NULL if none is */
    int n_scrubbed;  /* how many are */
    double mean_fd;  /* mean of framewise_displacement over its cells that are not n/a or
                      * empty; NaN without that column or such a cell */
} confounds_set;

/* Read `image`'s regressors for T volumes into *c: X holds the named columns in order
 * (shorthands expanded, repeats dropped), then, when `spikes` is 1, one spike regressor
 * per scrubbed volume (1 at the volume, 0 elsewhere) in volume order: censoring by
 * regression. With `spikes` 0 the scrubbed volumes are only in c->censor, for a caller
 * that censors by interpolation (docs/parcellate.md "Confounds"). "n/a" or empty cells
 * are 0 (fMRIPrep writes n/a in the first row of derivative and displacement columns).
 * Errors (BGFM_EDATA), naming the file: no file, a missing column (listing the file's
 * columns), a cell that is not a finite number (FILE:LINE), a row count other than T,
 * scrub without a framewise_displacement column, more than max_scrubbed x T volumes
 * scrubbed, T - 2 regressors or more (named columns plus scrubbed volumes, either way).
 * On error *c is empty (nothing to free); otherwise confounds_set_free releases it. */
int confounds_load(const char *image, const confounds_spec *s, int64_t T, int spikes,
                   confounds_set *c, bgfm_err *e);

void confounds_set_free(confounds_set *c);

#endif
