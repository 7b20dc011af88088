/* inputs.c: what the parcellate stage reads from the pipeline's paths: the check that
 * they exist (with the YAML position of each in its message) and the list of files the
 * manifest hashes (the stage kind's extra_inputs hook: BIDS image naming, the atlas name
 * tables). Not the dataset scan itself (bids.c) and not the run (run.c). */
#include <stdlib.h>
#include <string.h>

#include "bgfm/bids.h"
#include "bgfm/confounds.h"
#include "bgfm/corpus.h"
#include "bgfm/fsutil.h"
#include "bgfm/parcellate.h"
#include "bgfm/strlist.h"

static int atlases_check(const bgfm_pipeline *pp, bgfm_err *e);

/* A dataset entry's folder and table exist, and its table has the columns the entry
 * names (label_column when written or when the role includes downstream, site_column,
 * the filter's column): checked before any work, the error at the entry's key. */
static int dataset_check(const bgfm_pipeline *pp, const bgfm_dataset_cfg *d, bgfm_err *e) {
    char key[300];
    snprintf(key, sizeof key, "inputs.datasets.%s.bids", d->name);
    if (!fs_is_dir(d->bids))
        return config_path_fail(e, pp, key, d->bids_at, BGFM_EDATA,
                                "dataset '%s': the folder '%s' does not exist or is not a folder; "
                                "fix the path or create the dataset (bgfm synth --out DIR)",
                                d->name, d->bids);
    bgfm_pos at = d->participants_at.line ? d->participants_at : d->bids_at;
    snprintf(key, sizeof key, "inputs.datasets.%s.%s", d->name,
             d->participants_at.line ? "participants" : "bids");
    if (!fs_exists(d->participants))
        return config_path_fail(e, pp, key, at, BGFM_EDATA,
                                "dataset '%s': the participants table '%s' does not exist; add it "
                                "(tab-separated, first column participant_id) or set the entry's "
                                "participants", d->name, d->participants);
    bids_table t;
    bgfm_err le;
    bgfm_err_clear(&le);
    if (bids_table_read(d->participants, &t, &le))
        return config_path_fail(e, pp, key, at, le.code, "dataset '%s': %s", d->name, le.msg);
    const char *need[3] = {d->label_column, d->site_column, NULL};
    const char *what[3] = {"label_column", "site_column", "filter"};
    bgfm_pos where[3] = {d->label_at.line ? d->label_at : (bgfm_pos){d->line, d->col},
                         {d->line, d->col}, d->filter_at};
    char fcol[256] = "";
    if (d->filter) {
        size_t k = strcspn(d->filter, "=!");
        while (k && d->filter[k - 1] == ' ') k--;
        const char *f0 = d->filter + strspn(d->filter, " ");
        snprintf(fcol, sizeof fcol, "%.*s", (int)(k - (size_t)(f0 - d->filter)), f0);
        need[2] = fcol;
    }
    int rc = 0;
    for (int q = 0; q < 3 && !rc; q++) {
        if (!need[q] || (q == 0 && !d->label_given && !(d->role & BGFM_ROLE_DOWNSTREAM))) continue;
        if (bids_table_col(&t, need[q]) >= 0) continue;
        char have[1024];
        bids_table_cols_text(&t, have, sizeof have);
        snprintf(key, sizeof key, "inputs.datasets.%s.%s", d->name, what[q]);
        rc = config_path_fail(e, pp, key, where[q], BGFM_EDATA,
                              "dataset '%s': %s has no column '%s' (its columns: %s); name one of "
                              "them%s", d->name, d->participants, need[q], have,
                              q == 0 ? " in the entry's label_column (a downstream dataset needs "
                                       "its labels)" : "");
    }
    bids_table_free(&t);
    return rc;
}

/* The subject map names only participants of the datasets' tables (corpus_map_read). */
static int map_check(const bgfm_pipeline *pp, bgfm_err *e) {
    bids_table *tabs = NULL;
    corpus_map m;
    bgfm_err le;
    bgfm_err_clear(&le);
    int rc = corpus_tables_read(pp, &tabs, &le);
    if (!rc) rc = corpus_map_read(pp->subject_map, pp, tabs, &m, &le);
    if (!rc) corpus_map_free(&m);
    corpus_tables_free(tabs, pp->n_datasets);
    if (rc)
        return config_path_fail(e, pp, "inputs.subject_map", pp->subject_map_at, rc, "%s",
                                le.msg);
    return 0;
}

/* The paths of the pipeline file that this stage reads exist, or the error names the
 * pipeline file, the line and the key (config_path_fail). */
int parcellate_paths_check(const bgfm_pipeline *pp, bgfm_err *e) {
    for (int d = 0; d < pp->n_datasets; d++) {
        int rc = dataset_check(pp, &pp->datasets[d], e);
        if (rc) return rc;
    }
    if (pp->subject_map) {
        int rc = map_check(pp, e);
        if (rc) return rc;
    }
    if (pp->n_datasets > 0) return atlases_check(pp, e);
    if (!fs_is_dir(pp->bids))
        return config_path_fail(e, pp, "inputs.bids", pp->bids_at, BGFM_EDATA,
                                "the dataset folder '%s' does not exist or is not a folder; "
                                "fix the path or create the dataset (bgfm synth --out DIR)",
                                pp->bids);
    if (!fs_exists(pp->participants))
        return config_path_fail(e, pp, "inputs.participants", pp->participants_at, BGFM_EDATA,
                                "the participants table '%s' does not exist; add it to the "
                                "dataset or set inputs.participants", pp->participants);
    return atlases_check(pp, e);
}

/* Every atlas file and `labels` table exists. */
static int atlases_check(const bgfm_pipeline *pp, bgfm_err *e) {
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

/* The images of every entry of inputs.datasets, dataset by dataset (each in the order
 * of bids_image_files). */
static int dataset_images(const bgfm_pipeline *p, char ***out, int *n, bgfm_err *e) {
    char **all = NULL;
    int na = 0;
    for (int d = 0; d < p->n_datasets; d++) {
        char **img = NULL;
        int ni = 0;
        if (bids_image_files(p->datasets[d].bids, &img, &ni, e)) {
            strlist_free(all, na);
            return e->code;
        }
        char **nv = bgfm_realloc(e, all, (size_t)(na + ni + 1) * sizeof *nv, "image list");
        if (!nv) {
            strlist_free(img, ni);
            strlist_free(all, na);
            return BGFM_ENOMEM;
        }
        all = nv;
        for (int i = 0; i < ni; i++) all[na++] = img[i];
        all[na] = NULL;
        free(img);
    }
    *out = all;
    *n = na;
    return 0;
}

/* What the manifest hashes (rank 0, through the engine's extra_inputs hook): every
 * image of the dataset (sub-*...*_bold.nii[.gz]), each image's confounds file where it
 * has one (read for head motion whether or not confounds are regressed), the
 * participants table, each atlas and its `labels` table, then the name tables found
 * beside atlases without `labels` (the ones the stage reads). The order is the
 * fingerprint's. */
char **parcellate_extra_inputs(const bgfm_pipeline *p, const bgfm_stage_cfg *s,
                                      bgfm_err *e) {
    (void)s; /* the stage's options do not change what it reads */
    if (parcellate_paths_check(p, e)) return NULL;
    char **img = NULL;
    int ni = 0, k = 0, nd = p->n_datasets ? p->n_datasets : 1;
    if (!p->n_datasets && bids_image_files(p->bids, &img, &ni, e)) return NULL;
    if (p->n_datasets && dataset_images(p, &img, &ni, e)) return NULL;
    char **out = bgfm_calloc(e, 2 * (size_t)ni + 3 * (size_t)p->n_atlases +
                             (size_t)nd + 1, sizeof *out, "parcellate input list");
    if (!out) {
        strlist_free(img, ni);
        return NULL;
    }
    int ok = 1;
    for (int i = 0; i < ni; i++) out[k++] = img[i];
    /* each image's confounds file, if any: read for head motion even when nothing is
     * regressed (run.c, write_confound_summary) */
    for (int i = 0; ok && i < ni; i++) {
        bgfm_err le;
        bgfm_err_clear(&le);
        char *c = confounds_path(img[i], 1, &le);
        if (c) out[k++] = c;
        if (!c && le.code == BGFM_ENOMEM) {
            *e = le;
            ok = 0;
        }
    }
    free(img);
    for (int d = 0; ok && d < nd; d++)
        ok = (out[k++] = bgfm_strdup(e, p->n_datasets ? p->datasets[d].participants
                                                      : p->participants)) != NULL;
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

