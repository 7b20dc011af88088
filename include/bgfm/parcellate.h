/* parcellate.h: the `parcellate` stage kind (BIDS 4D images + label atlases ->
 * timeseries.h5) and its one-pass ROI-mean extraction for several atlases at once.
 * Not the dataset scan (bids.h), the atlas resampling (resample.h) nor the signal
 * cleaning (clean.h); see docs/parcellate.md for the method and formats.md for output. */
#ifndef BGFM_PARCELLATE_H
#define BGFM_PARCELLATE_H

#include <stdint.h>

#include "bgfm/clean.h"
#include "bgfm/confounds.h"
#include "bgfm/ctx.h"
#include "bgfm/resample.h"
#include "bgfm/stage.h"

/* One atlas as loaded from its file: label values and names of its regions. */
typedef struct parcellate_atlas {
    const char *name;          /* pipeline name (not owned) */
    const char *path;          /* file (not owned) */
    resample_grid grid;        /* the atlas's own grid */
    uint16_t *region_of_vox;   /* nvox region index (position in region_labels) or
                                  RESAMPLE_NONE for label 0; owned */
    int n_regions;
    int32_t *region_labels;    /* ascending nonzero labels, owned */
    char **region_names;       /* owned */
} parcellate_atlas;

/* Read an atlas file (3D label image of non-negative integer labels, at most 65534
 * distinct nonzero ones; read as float32, so labels up to 2^24 are exact) and its name table: `names_path` if not NULL, else <file>.txt beside it
 * with the .gz/.nii stripped (e.g. aal.nii.txt). Non-collective. */
int parcellate_atlas_load(parcellate_atlas *a, const char *name, const char *path,
                          const char *names_path, bgfm_err *e);
void parcellate_atlas_free(parcellate_atlas *a);
/* The dataset folder, participants table, atlases and their `labels` tables of the
 * pipeline exist, or BGFM_EDATA with a message naming the pipeline file, the line and the
 * key (config_path_fail). Checked when the stage's inputs are listed and when it runs. */
int parcellate_paths_check(const bgfm_pipeline *p, bgfm_err *e);
/* The stage kind's extra_inputs hook (stage.h): every image of the dataset
 * (sub-*...*_bold.nii[.gz]), each image's confounds file where it has one, the
 * participants table, each atlas and its `labels`, then the name tables found beside
 * atlases without `labels`; NULL with e set on failure. */
char **parcellate_extra_inputs(const bgfm_pipeline *p, const bgfm_stage_cfg *s, bgfm_err *e);
/* The name table read beside an atlas file when none is given: <file> with .gz
 * stripped, + ".txt" (aal.nii.gz -> aal.nii.txt, the tables mricron ships); malloc'ed. */
char *parcellate_names_guess(const char *atlas_path, bgfm_err *e);

/* Per subject result for one atlas. */
typedef struct parcellate_out {
    int n_regions;
    float *ts;        /* T x N, row-major, after cleaning; flagged regions all zero */
    float *coverage;  /* N */
    uint8_t *flagged; /* N */
} parcellate_out;

/* Options of one extraction (the stage's `with:` keys, resolved). */
typedef struct parcellate_opts {
    clean_opts clean;    /* detrend, filter, standardize */
    confounds_spec conf; /* regressors read beside each image (confounds.h); none: n_names 0, scrub 0 */
    double t_r;          /* > 0: override header TR; 0: from the header */
    double min_coverage;
} parcellate_opts;

/* Read-ahead of the extraction (docs/parcellate.md, "Read-ahead"): an image whose voxel
 * data (nvox x T float32) is at least PARCELLATE_PREFETCH_MIN_BYTES is read by a
 * reader thread through PARCELLATE_PREFETCH_DEPTH volume buffers; smaller ones are
 * read synchronously through one buffer. */
#define PARCELLATE_PREFETCH_DEPTH 3
#define PARCELLATE_PREFETCH_MIN_BYTES (256.0 * 1024.0)

/* Extract ROI means of ALL atlases from one 4D image read once, volume by volume.
 * `cache` holds resampled label maps keyed by data grid (reused across calls).
 * out[a] is filled for each atlas (arrays malloc'ed; free with parcellate_out_free).
 * *T and *tr get the volume count and repetition time; *bytes the bytes read.
 * Non-collective. Errors name the image (BGFM_EDATA / BGFM_EIO). */
int parcellate_extract(const char *image, const parcellate_atlas *atlases, int n_atlases,
                       resample_cache *cache, const parcellate_opts *o, parcellate_out *out,
                       int64_t *T, double *tr, int64_t *bytes, bgfm_err *e);
void parcellate_out_free(parcellate_out *o);

/* ---- per-dataset units (units.c, docs/corpus.md "Adding or removing a dataset") ----
 * With inputs.datasets, each dataset's extraction results are kept in
 * <stage folder>/parts/<dataset>/ (parts.h): data.bin holds, image by image (images that
 * failed under on_error: skip hold nothing), per atlas the T x N series (float32), the N
 * coverages (float32) and the N flags (uint8); meta.tsv one line per image:
 * "T<TAB>TR (C hex float)<TAB>path<TAB>skip reason". Its key hashes the code version, the
 * stage's options, on_error, the atlases and name tables with their SHA-256, and each
 * image's path, SHA-256 and TR override. A dataset whose key is the previous output's is
 * read from there instead of from its images. */
struct corpus;
typedef struct parcellate_units {
    int n;              /* datasets; 0 with inputs.bids (no units) */
    char (*key)[65];    /* n; "" when an image's hash is unknown (never reused nor kept) */
    int *reuse;         /* n: 1 = linked from the previous output, read from there */
    int *fd;            /* n: this rank's open data.bin of a reused unit, -1 */
    int64_t *off;       /* n_images: record offset in its dataset's data.bin */
    int64_t *T;         /* n_images: reused units' volume counts (0: skipped) */
    double *tr;         /* n_images: reused units' TRs */
    char **reason;      /* n_images: reused units' skip reasons, NULL when none */
} parcellate_units;

/* Collective: the keys of every dataset (every rank), then rank 0 links the units of
 * the previous output (prev, may not exist) whose key and image list match into outdir,
 * and every rank reads the linked units' meta.tsv. */
int parcellate_units_open(bgfm_stage_run *r, const struct corpus *c,
                          const parcellate_atlas *at, int A, double stage_t_r,
                          parcellate_units *u);
/* Image i's records from its reused unit (this rank's read). */
int parcellate_units_load(parcellate_units *u, const struct corpus *c, int64_t i,
                          const parcellate_atlas *at, int A, parcellate_out *out, bgfm_err *e);
/* Collective, after every rank knows every image's T, TR and skip reason (T[i] == 0 for a
 * skipped image, reason in c->all.skipped): the units not reused are written (every rank
 * its images lo..hi, outs[(i - lo) * A + a]), then rank 0 writes their meta.tsv and key. */
int parcellate_units_write(bgfm_stage_run *r, parcellate_units *u, const struct corpus *c,
                           const parcellate_atlas *at, int A, int64_t lo, int64_t hi,
                           const parcellate_out *outs, const int64_t *T, const double *tr);
void parcellate_units_free(parcellate_units *u, int64_t n_images);

/* The stage run function (collective over r->ctx->comm). */
int parcellate_stage_run(bgfm_stage_run *r);

#endif
