/* parcellate.c: the `parcellate` stage kind: its options table (the documentation of
 * its `with:` keys) and cross-key checks; its inputs are listed by inputs.c.
 * Not the extraction (extract.c) nor the collective run (run.c). */
#include <string.h>

#include "bgfm/parcellate.h"

static const bgfm_opt parcellate_opts_table[] = {
    {"detrend", BGFM_OPT_BOOL, "true", 1, 0, NULL,
     "remove the least-squares line from every ROI series (first step)"},
    {"high_pass", BGFM_OPT_REAL, "0", 0, 1e6, NULL,
     "high-pass cut-off in Hz (Butterworth, zero-phase); 0 = off"},
    {"low_pass", BGFM_OPT_REAL, "0", 0, 1e6, NULL,
     "low-pass cut-off in Hz (Butterworth, zero-phase); 0 = off; both set = band-pass"},
    {"filter_order", BGFM_OPT_INT, "5", 1, 16, NULL,
     "Butterworth order (as scipy.signal.butter; band-pass has twice as many poles)"},
    {"t_r", BGFM_OPT_REAL, NULL, 0, 1e4, NULL,
     "repetition time in seconds; unset or 0: from each image's header (pixdim[4])"},
    {"standardize", BGFM_OPT_ENUM, "none", 1, 0, "none|zscore|psc",
     "last step: none, zscore (ddof 0) or psc (percent of the raw series' mean)"},
    {"confounds", BGFM_OPT_LIST, "[]", 1, 0, NULL,
     "columns of each image's fMRIPrep confounds file (<name>_desc-confounds_timeseries.tsv "
     "beside it) regressed out of every ROI series after the filter; motion6 / motion12 / "
     "motion24: the realignment parameters, + derivatives, + squares"},
    {"scrub", BGFM_OPT_REAL, "0", 0, 1e3, NULL,
     "framewise displacement threshold in mm: every volume above it is censored (without a "
     "filter by its own spike regressor, with one by cubic-spline interpolation before "
     "filtering); 0 = off"},
    {"max_scrubbed", BGFM_OPT_REAL, "0.5", 0, 1, NULL,
     "an image with a larger fraction of its volumes above scrub is an error (on_error: skip "
     "leaves it out)"},
    {"min_coverage", BGFM_OPT_REAL, "0.5", 0, 1, NULL,
     "regions whose fraction of voxels in the non-constant mask is below this are flagged "
     "and set to zero"},
};

static int parcellate_validate(const bgfm_pipeline *p, const bgfm_stage_cfg *s, bgfm_err *e) {
    double hp = params_real(&s->with, "high_pass"), lp = params_real(&s->with, "low_pass");
    if (hp > 0 && lp > 0 && hp >= lp)
        return bgfm_fail(e, BGFM_EUSAGE,
                         "%s:%d:%d: stage '%s': high_pass (%g Hz) must be below low_pass (%g Hz) "
                         "for a band-pass; set one of them to 0 for a one-sided filter",
                         p->file, s->line, s->col, s->name, hp, lp);
    if (p->n_atlases < 1)
        return bgfm_fail(e, BGFM_EUSAGE,
                         "%s: stage '%s' (parcellate) needs at least one entry in `atlases:`",
                         p->file, s->name);
    if ((!p->bids || !p->bids[0]) && p->n_datasets == 0)
        return bgfm_fail(e, BGFM_EUSAGE, "%s: stage '%s' (parcellate) needs inputs.bids", p->file,
                         s->name);
    return 0;
}

/* Since session 31 a scrubbed volume meeting a filter is interpolated before filtering,
 * where spike regressors were filtered and regressed before (docs/parcellate.md). */
static const char *parcellate_revision(const bgfm_stage_cfg *s) {
    int filtered = params_real(&s->with, "high_pass") > 0 || params_real(&s->with, "low_pass") > 0;
    return filtered && params_real(&s->with, "scrub") > 0 ? "scrub censors by interpolation"
                                                            : NULL;
}

const bgfm_stage_kind bgfm_stage_parcellate = {
    .name = "parcellate",
    .summary = "read every 4D image once, ROI mean time series for all atlases, cleaned "
               "-> timeseries.h5",
    .opts = parcellate_opts_table,
    .n_opts = (int)(sizeof parcellate_opts_table / sizeof parcellate_opts_table[0]),
    .consumes = BGFM_ART_BIDS,
    .consumes2 = BGFM_ART_NONE,
    .produces = BGFM_ART_TIMESERIES,
    .rank_sensitive = 0,
    .validate = parcellate_validate,
    .run = parcellate_stage_run,
    .extra_inputs = parcellate_extra_inputs,
    .revision = parcellate_revision,
};
