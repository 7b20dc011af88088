/* parcellate.c: the `parcellate` stage kind: its options table (the documentation of
 * its `with:` keys), cross-key checks and the inputs whose contents the manifest hashes.
 * Not the extraction (extract.c) nor the collective run (run.c). */
#include <string.h>

#include "bgfm/bids.h"
#include "bgfm/fsutil.h"
#include "bgfm/parcellate.h"
#include "bgfm/strlist.h"

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
    if (!p->bids || !p->bids[0])
        return bgfm_fail(e, BGFM_EUSAGE, "%s: stage '%s' (parcellate) needs inputs.bids", p->file,
                         s->name);
    return 0;
}

/* The paths of the pipeline file that this stage reads exist, or the error names the
 * pipeline file, the line and the key (config_path_fail). */
int parcellate_paths_check(const bgfm_pipeline *pp, bgfm_err *e) {
    if (!fs_is_dir(pp->bids))
        return config_path_fail(e, pp, "inputs.bids", pp->bids_at, BGFM_EDATA,
                                "the dataset folder '%s' does not exist or is not a folder; "
                                "fix the path or create the dataset (bgfm synth --out DIR)",
                                pp->bids);
    if (!fs_exists(pp->participants))
        return config_path_fail(e, pp, "inputs.participants", pp->participants_at, BGFM_EDATA,
                                "the participants table '%s' does not exist; add it to the "
                                "dataset or set inputs.participants", pp->participants);
    char key[300];
    for (int a = 0; a < pp->n_atlases; a++) {
        const bgfm_atlas_cfg *at = &pp->atlases[a];
        snprintf(key, sizeof key, "atlases.%s.path", at->name);
        if (!fs_exists(at->path) || fs_is_dir(at->path))
            return config_path_fail(e, pp, key, at->path_at, BGFM_EDATA,
                                    "atlas '%s': '%s' is not a file; fix the path", at->name,
                                    at->path);
        snprintf(key, sizeof key, "atlases.%s.labels", at->name);
        if (at->labels && !fs_exists(at->labels))
            return config_path_fail(e, pp, key, at->labels_at, BGFM_EDATA,
                                    "atlas '%s': the name table '%s' does not exist; fix the "
                                    "path or remove `labels`", at->name, at->labels);
    }
    return 0;
}

/* What the manifest hashes (rank 0, through the engine's extra_inputs hook): every
 * image of the dataset (sub-*...*_bold.nii[.gz]), the participants table, each atlas
 * and its `labels` table, then the name tables found beside atlases without `labels`
 * (the ones the stage reads). The order is the fingerprint's. */
static char **parcellate_extra_inputs(const bgfm_pipeline *p, const bgfm_stage_cfg *s,
                                      bgfm_err *e) {
    (void)s;
    if (parcellate_paths_check(p, e)) return NULL;
    char **img = NULL;
    int ni = 0, k = 0;
    if (bids_image_files(p->bids, &img, &ni, e)) return NULL;
    char **out = bgfm_calloc(e, (size_t)ni + 3 * (size_t)p->n_atlases + 2, sizeof *out,
                             "parcellate input list");
    if (!out) {
        strlist_free(img, ni);
        return NULL;
    }
    for (int i = 0; i < ni; i++) out[k++] = img[i];
    free(img);
    int ok = (out[k++] = bgfm_strdup(e, p->participants)) != NULL;
    for (int a = 0; ok && a < p->n_atlases; a++) {
        ok = (out[k++] = bgfm_strdup(e, p->atlases[a].path)) != NULL;
        if (ok && p->atlases[a].labels) ok = (out[k++] = bgfm_strdup(e, p->atlases[a].labels)) != NULL;
    }
    for (int a = 0; ok && a < p->n_atlases; a++) { /* the tables found beside the atlases */
        if (p->atlases[a].labels) continue;
        char *g = parcellate_names_guess(p->atlases[a].path, e);
        ok = g != NULL;
        if (g && fs_exists(g)) out[k++] = g;
        else free(g);
    }
    if (!ok) {
        strlist_free(out, k);
        return NULL;
    }
    return out;
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
};
