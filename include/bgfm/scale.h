/* scale.h: `bgfm scale`, scaling studies of one pipeline stage over a list of rank counts
 * (strong: same data; weak: data per rank fixed), the metrics it reads back and the CSV.
 * Not a performance model (docs/scaling.md) and not a launcher of its own (it runs mpirun). */
#ifndef BGFM_SCALE_H
#define BGFM_SCALE_H

#include <stdint.h>
#include <stdio.h>

#include "bgfm/ctx.h"

#define SCALE_MAX_POINTS 64

/* One measured rank count. Times that a stage does not report are NaN (blank in the CSV). */
typedef struct scale_point {
    int ranks;
    int oversubscribed; /* 1: more ranks than online CPUs */
    double wall_s;      /* the engine's stage wall time (best of the repeats) */
    double items;       /* work done: subjects, graphs, or graphs seen by pretraining */
    char items_unit[32];
    double steps;       /* pretrain: optimiser steps (NaN otherwise) */
    double compute_s, comm_s, io_s;
    double items_per_s, speedup, efficiency; /* filled by scale_derive */
} scale_point;

/* Parse "1,2,4" into ascending distinct rank counts in 1..4096. Returns 0 or BGFM_EUSAGE. */
int scale_parse_ranks(const char *s, int *ranks, int max, int *n, bgfm_err *e);

/* Read WORKDIR/metrics.jsonl text of one or more runs of stage `stage` and fill `pt` with
 * the run of the smallest engine wall time: wall_s, items, items_unit from the engine's
 * `"event": "stage"` line; compute_s/comm_s/io_s summed over that run's per-step lines
 * (pretrain), or the stage's own per-rank sums divided by the rank count (connectivity
 * compute_s_sum, write_s_sum as io). Returns 0, or BGFM_EDATA if no successful run of the
 * stage is in the text. */
int scale_parse_metrics(const char *text, const char *stage, scale_point *pt, bgfm_err *e);

/* items_per_s = items / wall_s; speedup = R0 * (items_per_s / items_per_s of the first
 * point), R0 its rank count (strong: R0 * t0 / tR; weak: R * t0 / tR since items grow
 * with R); efficiency = speedup / ranks. */
void scale_derive(scale_point *pts, int n);

/* The CSV: header, then one row per point. Columns: stage, mode, ranks, oversubscribed,
 * items, items_unit, wall_s, items_per_s, speedup, efficiency, compute_s, comm_s, io_s,
 * steps. NaN is written as an empty field. */
void scale_write_csv(FILE *f, const char *stage, const char *mode, const scale_point *pts,
                     int n);

#endif
