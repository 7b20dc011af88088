/* methods.h: the adaptation results of a workdir beside the probe's. Every stage whose
 * report/<kind>.json has the shape of finetune.json (docs/adapt.md "Outputs": finetune,
 * prompt, ...) is read the same way, and the methods on the same folds are put in one
 * table: rows the probe's feature sets and each adapted encoder, columns the few-shot
 * levels (docs/report.md). What `bgfm report` prints and the run report page shows.
 * Non-collective (rank 0). Not the stages that write those files, nor their layout. */
#ifndef BGFM_METHODS_H
#define BGFM_METHODS_H

#include "bgfm/ctx.h"
#include "bgfm/json.h"

#define METHODS_MAXLEV 32 /* few-shot levels of one table */

typedef struct methods_report { /* one stage's report, parsed */
    char *stage, *dir, *path;
    char *kind;          /* the report's "kind" (finetune, prompt; "probe" for probe.json) */
    json_node j;
} methods_report;

/* An adaptation stage's per-level line of one encoder (its few_shot row and cells). */
typedef struct methods_level {
    long long k;         /* the level: subjects per class (regression: subjects); 0 = all */
    double keff;         /* k_effective */
    double mean, sd;     /* AUC or R2 over repeats x folds */
    double seconds;      /* the fits of this encoder at this level: sum of their seconds */
    int cells;           /* fits counted */
} methods_level;

typedef struct methods_row {
    const methods_report *src; /* the stage */
    const char *feat;    /* feature set (probe) or encoder (adaptation) */
    int adapt;           /* 1: an adaptation stage's encoder */
    double params;       /* trainable parameters (adaptation), NaN for the probe */
    double seconds;      /* the encoder's fits at every level (sum of cell seconds), NaN: probe */
    double mean[METHODS_MAXLEV], sd[METHODS_MAXLEV], keff[METHODS_MAXLEV]; /* NaN: no such level */
} methods_row;

/* Methods on the same folds and the same task: one table. */
typedef struct methods_table {
    const methods_report *probe; /* the probe whose folds these are; NULL: no probe shares them */
    const char *metric;  /* "auc" or "r2" */
    const char *target;  /* regression target, NULL for classification */
    int draws;           /* fold draws of the table (the adaptation stages' repeats) */
    int probe_draws;     /* the probe's; more than draws: its rows are over draws 0..draws-1
                            (from its report/cells.csv), not probe.json's means */
    int nl;
    long long level[METHODS_MAXLEV]; /* ascending, 0 (all) last */
    int nr;
    methods_row *row;
} methods_table;

typedef struct methods_set {
    int np, na, nt;
    methods_report *probe; /* probe.json of each probe stage */
    methods_report *ad;    /* each adaptation stage's report */
    char **note;           /* na: why ad[i] is in no table with a probe ("" when it is) */
    methods_table *t;      /* only tables with an adaptation stage */
} methods_set;

/* Read the stages named name[i] in folders dir[i] (in that order): a probe.json, an
 * adaptation report report/<kind>.json (a JSON object whose "kind" is the file's name
 * and that has "encoders"), and build the tables: an adaptation stage joins the first
 * probe with the same task (its target among the probe's targets), the same seed, at
 * least as many draws and the same folds (every (repeat, participant, fold) of the two
 * predictions files equal in the stage's draws); the others make tables of their own. A report that is not valid JSON: BGFM_EDATA naming
 * it (set half-read; methods_free frees it). Stages without reports are left out. */
int methods_read(methods_set *m, int n, char *const *name, char *const *dir, bgfm_err *e);
void methods_free(methods_set *m);

/* "auc" (classification) or "r2" (regression) of an adaptation report. */
const char *methods_metric(const methods_report *r);
/* The regression target of a report ("target"), or NULL. */
const char *methods_target(const methods_report *r);
/* Encoder enc's levels of adaptation report r: at most max into out; the count. */
int methods_levels(const methods_report *r, const json_node *enc, methods_level *out, int max);
/* "2", "all" */
void methods_level_text(long long k, char *buf, size_t n);

#endif
