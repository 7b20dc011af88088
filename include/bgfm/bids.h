/* bids.h: the BIDS-like dataset scan (sub-* / [ses-* /] func / *_bold.nii[.gz]) and the
 * participants.tsv table (tab-separated, header row, participant_id required, "n/a"
 * missing). Not a full BIDS validator: only what parcellate needs. Non-collective. */
#ifndef BGFM_BIDS_H
#define BGFM_BIDS_H

#include <stddef.h>
#include <stdint.h>

#include "bgfm/ctx.h"

typedef struct bids_table {
    char *path;
    int n_cols;
    char **cols;        /* header names */
    int64_t n_rows;
    char **cells;       /* n_rows * n_cols, row-major; "" for short rows */
    int id_col;         /* index of participant_id */
} bids_table;

/* Parse TSV text (CRLF tolerated, trailing empty lines ignored). `path` names the file
 * in messages. Errors (BGFM_EDATA): no header, no participant_id column, duplicate or
 * empty/"n/a" participant ids, rows with more fields than the header. */
int bids_table_parse(const char *path, const char *buf, size_t len, bids_table *t, bgfm_err *e);
int bids_table_read(const char *path, bids_table *t, bgfm_err *e);
/* The same for any TSV whose id column is `id` (NULL: none required, no id checks, and
 * id_col stays -1), e.g. a confounds file (confounds.h). */
int bids_tsv_parse(const char *path, const char *buf, size_t len, const char *id, bids_table *t,
                   bgfm_err *e);
int bids_tsv_read(const char *path, const char *id, bids_table *t, bgfm_err *e);
void bids_table_free(bids_table *t);
/* Row of participant `id` ("sub-01"; a table value without the "sub-" prefix matches
 * after prepending it), or -1. */
int64_t bids_table_find(const bids_table *t, const char *id);
/* Index of the column `name`, or -1. */
int bids_table_col(const bids_table *t, const char *name);
/* The header as text for messages ("a, b, c"), truncated to fit buf. */
void bids_table_cols_text(const bids_table *t, char *buf, size_t n);
/* 1 if the cell is missing: empty or "n/a". */
int bids_cell_missing(const char *s);

typedef struct bids_image {
    char *path;            /* <root>/sub-X[/ses-Y]/func/<name>_bold.nii[.gz] */
    char *participant_id;  /* "sub-X" */
    int64_t row;           /* row in participants.tsv */
    int64_t file_size;     /* bytes on disk */
} bids_image;

/* Something left out under on_error: skip. */
typedef struct bids_skip {
    char *image;  /* image path, or the participant's folder */
    char *reason;
} bids_skip;

typedef struct bids_dataset {
    char *root;
    bids_table participants;
    int64_t n_images;
    bids_image *images;    /* sorted by path (byte order) */
    int64_t n_skipped;
    bids_skip *skipped;
} bids_dataset;

/* Scan `root`. participants_path NULL -> <root>/participants.tsv. skip = 0: a
 * participant without image or an image of an unlisted subject is BGFM_EDATA; skip = 1:
 * recorded in d->skipped and left out. No image at all is always BGFM_EDATA. */
int bids_scan(const char *root, const char *participants_path, int skip, bids_dataset *d,
              bgfm_err *e);
void bids_dataset_free(bids_dataset *d);
/* Every file below root whose path relative to root starts with "sub-" and ends with
 * "_bold.nii" or "_bold.nii.gz", as root/<path>, in byte order of the relative paths:
 * the images a scan may read, hashed into the parcellate stage's manifest. *out is a
 * malloc'ed array of *n malloc'ed paths (free with strlist_free, strlist.h). */
int bids_image_files(const char *root, char ***out, int *n, bgfm_err *e);
/* Append a skip record (strings copied). */
int bids_skip_add(bids_dataset *d, const char *image, const char *reason, bgfm_err *e);

#endif
