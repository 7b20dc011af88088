/* confounds.h: the nuisance regressors of one image, read from its fMRIPrep confounds
 * file (<entities>_desc-confounds_timeseries.tsv beside the image): the columns a
 * parcellate stage names (with the motion6 / motion12 / motion24 shorthands) and one
 * spike regressor per volume whose framewise displacement exceeds `scrub`. Not the
 * regression itself (clean.h projects them out). Non-collective, no state. */
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

/* Read `image`'s regressors for T volumes: *X gets T x *K doubles, column-major (column
 * k at X + k T): the named columns in order (shorthands expanded, repeats dropped), then
 * the spike regressors (1 at the volume, 0 elsewhere) in volume order; *n_scrubbed their
 * count; *mean_fd (may be NULL) the mean of framewise_displacement over its cells that
 * are not n/a or empty (NaN without that column or such a cell). "n/a" or empty cells are 0 (fMRIPrep writes n/a in the first row of derivative
 * and displacement columns). Errors (BGFM_EDATA), naming the file: no file, a missing
 * column (listing the file's columns), a cell that is not a finite number (FILE:LINE),
 * a row count other than T, scrub without a framewise_displacement column, more than
 * max_scrubbed x T volumes scrubbed, T - 2 regressors or more. */
int confounds_load(const char *image, const confounds_spec *s, int64_t T, double **X, int *K,
                   int *n_scrubbed, double *mean_fd, bgfm_err *e);

#endif
