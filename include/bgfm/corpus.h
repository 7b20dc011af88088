/* corpus.h: the images and participants of a pipeline's dataset(s) as one list, for the
 * parcellate stage: inputs.bids (one unnamed dataset) or inputs.datasets (each dataset
 * scanned, its participants filtered, its images selected by BIDS entities; datasets in
 * file order, images in path order within each), and the /subjects group of
 * timeseries.h5 written from it. Not the scan of one folder (bids.h), not the extraction
 * (parcellate.h) and not the collective run (stages/parcellate/run.c). */
#ifndef BGFM_CORPUS_H
#define BGFM_CORPUS_H

#include <hdf5.h>
#include <stdint.h>

#include "bgfm/bids.h"
#include "bgfm/config.h"
#include "bgfm/ctx.h"

typedef struct corpus {
    bids_dataset all;             /* every image (image.row: row in ITS dataset's table) and
                                     every skip record; all.participants is the table of
                                     inputs.bids (empty with inputs.datasets) */
    int n_sets;                   /* 1 with inputs.bids */
    bids_table *tabs;             /* n_sets tables with inputs.datasets, NULL with inputs.bids */
    const bgfm_dataset_cfg *cfg;  /* the pipeline's n_sets entries, NULL with inputs.bids */
    int32_t *set;                 /* all.n_images: the dataset of each image */
} corpus;

/* Scan the pipeline's dataset(s). skip: as bids_scan's (on_error: skip). Errors name the
 * dataset. Non-collective (every rank scans the same folders). */
int corpus_scan(const bgfm_pipeline *p, int skip, corpus *c, bgfm_err *e);
void corpus_free(corpus *c);
/* The participants table of dataset d. */
const bids_table *corpus_table(const corpus *c, int d);
/* TR override for image i: its dataset's t_r when set, else stage_t_r (0: headers). */
double corpus_t_r(const corpus *c, int64_t i, double stage_t_r);

/* The /subjects group of timeseries.h5 (docs/formats.md) for the S images with
 * row[i] >= 0 (T[i] volumes, TR tr[i] seconds): participant_id, image, n_volumes, t_r,
 * label (the pipeline's label column, or each dataset's), every participants column
 * (the union over datasets), and with inputs.datasets `dataset` and `site`.
 * Collective over the file's communicator (every rank passes the same values). */
int corpus_write_subjects(const corpus *c, const bgfm_pipeline *p, bgfm_ctx *ctx, hid_t f,
                          int64_t S, const int64_t *row, const int64_t *T, const double *tr,
                          bgfm_err *e);

/* The subject map (inputs.subject_map, docs/corpus.md): the same person in several
 * datasets. Keys are "<dataset>/<participant_id>" with the participant id as its dataset's
 * table writes it; every key of a group maps to the group's smallest key. */
typedef struct corpus_map {
    int64_t n;
    char **key;   /* (n) sorted */
    char **canon; /* (n) the smallest key of its group (points into key[]) */
} corpus_map;

/* Read the participants tables of the pipeline's datasets (n_datasets of them, pipeline
 * order) into *tabs (free with corpus_tables_free). */
int corpus_tables_read(const bgfm_pipeline *p, bids_table **tabs, bgfm_err *e);
void corpus_tables_free(bids_table *tabs, int n);
/* Read the map at `path`: a tab-separated file, a header row of two column names, then
 * rows "DATASET/PARTICIPANT<TAB>DATASET/PARTICIPANT". Every side must name a dataset of
 * the pipeline and a participant of its table (tabs, from corpus_tables_read). Errors
 * (BGFM_EDATA) name the map's file and line. Non-collective. */
int corpus_map_read(const char *path, const bgfm_pipeline *p, const bids_table *tabs,
                    corpus_map *m, bgfm_err *e);
/* The canonical key of `key` (key itself when the map does not name it; m may be NULL). */
const char *corpus_map_canon(const corpus_map *m, const char *key);
void corpus_map_free(corpus_map *m);

#endif
