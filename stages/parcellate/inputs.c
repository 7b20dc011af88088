/* inputs.c: what the parcellate stage reads from the pipeline's paths: the check that
 * they exist (with the YAML position of each in its message) and the list of files the
 * manifest hashes (the stage kind's extra_inputs hook: BIDS image naming, the atlas name
 * tables). Not the dataset scan itself (bids.c) and not the run (run.c). */
#include <stdlib.h>
#include <string.h>

#include "bgfm/bids.h"
#include "bgfm/fsutil.h"
#include "bgfm/parcellate.h"
#include "bgfm/strlist.h"

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
char **parcellate_extra_inputs(const bgfm_pipeline *p, const bgfm_stage_cfg *s,
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

