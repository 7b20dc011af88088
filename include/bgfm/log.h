/* log.h: rank-0 messages, per-rank warnings and the progress line (done/total,
 * rate, ETA) on stderr. Not for errors (ctx.h records them; main prints them). */
#ifndef BGFM_LOG_H
#define BGFM_LOG_H

#include "bgfm/ctx.h"

/* Rank 0 only, unless ctx->quiet. Adds a trailing newline. */
void log_info(const bgfm_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Rank 0 only, only with ctx->verbose. */
void log_debug(const bgfm_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Any rank, always (prefixed with the rank when size > 1). */
void log_warn(const bgfm_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The current UTC time as ISO 8601 ("2024-05-01T12:00:00Z"), for manifests and metrics. */
void log_utc_now(char *buf, size_t n);

/* Progress of a phase whose total is known. Rank 0 prints; the caller passes the
 * global count (e.g. after a cheap reduction, or rank 0's own estimate). */
typedef struct log_progress {
    const char *what;  /* "parcellate", "subjects" ... */
    const char *unit;  /* "subj", "graphs", "steps" */
    int64_t total;
    double t0, t_last;
    int printed;
} log_progress;

void log_progress_start(const bgfm_ctx *ctx, log_progress *p, const char *what, const char *unit,
                        int64_t total);
/* Throttled to about 2 lines/s on a non-tty, redrawn in place on a tty. */
void log_progress_update(const bgfm_ctx *ctx, log_progress *p, int64_t done);
void log_progress_end(const bgfm_ctx *ctx, log_progress *p, int64_t done);

#endif
