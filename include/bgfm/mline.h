/* mline.h: the one writer of WORKDIR/metrics.jsonl lines. Every line is one JSON object
 * that starts {"event": E, "stage": NAME, "kind": KIND, ...} and then the caller's
 * fields in the order added (docs/formats.md, "metrics.jsonl"). The engine writes the
 * "stage" event of every stage run; stages add their own events ("parcellate",
 * "connectivity", "train_step", "probe").
 * Not a JSON library (json.h) and not the manifest (manifest.h). */
#ifndef BGFM_MLINE_H
#define BGFM_MLINE_H

#include <stdint.h>
#include <stdio.h>

#include "bgfm/ctx.h"

typedef struct mline {
    char *text; /* the line so far (open_memstream) */
    size_t len;
    FILE *f;    /* NULL when out of memory: every call is then a no-op */
} mline;

/* Start a line. */
void mline_begin(mline *m, const char *event, const char *stage, const char *kind);
void mline_num(mline *m, const char *key, double v); /* shortest round-trip; NaN/Inf: null */
void mline_int(mline *m, const char *key, int64_t v);
void mline_str(mline *m, const char *key, const char *v);
/* An array of numbers rounded to `decimals` places (e.g. the peak RSS per rank). */
void mline_nums(mline *m, const char *key, const double *v, int n, int decimals);
/* Close the object and append it (one line) to `path`, or write it to `f` (flushed);
 * frees the line either way. Failures are warnings (log.h), never errors: metrics must
 * not stop a run. */
void mline_append(mline *m, bgfm_ctx *ctx, const char *path);
void mline_write(mline *m, bgfm_ctx *ctx, FILE *f);
/* Drop a line without writing it. */
void mline_discard(mline *m);

/* Collective over ctx->comm: every rank's peak resident set size (MiB), gathered on
 * rank 0 into all[0..size-1] (other ranks may pass NULL). Returns 0 or BGFM_EMPI with
 * e set (ctx->err, or a record of the caller's for a warning); the caller agrees. */
int mline_gather_rss(bgfm_ctx *ctx, double *all, bgfm_err *e);

#endif
