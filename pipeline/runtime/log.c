/* log.c: rank-0 messages and progress lines on stderr.
 * Not an error path: errors are recorded in bgfm_err and printed once by main. */
#include "bgfm/log.h"

#include <stdarg.h>
#include <time.h>
#include <unistd.h>

void log_info(const bgfm_ctx *ctx, const char *fmt, ...) {
    if (ctx->rank != 0 || ctx->quiet) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

void log_debug(const bgfm_ctx *ctx, const char *fmt, ...) {
    if (ctx->rank != 0 || !ctx->verbose) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("debug: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

void log_warn(const bgfm_ctx *ctx, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (ctx->size > 1)
        fprintf(stderr, "bgfm: warning (rank %d): ", ctx->rank);
    else
        fputs("bgfm: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

static void fmt_secs(double s, char *buf, size_t n) {
    if (s < 0 || s > 1e7) {
        snprintf(buf, n, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (t >= 60)
        snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, n, "%lds", t);
}

static void progress_print(const bgfm_ctx *ctx, log_progress *p, int64_t done, int final) {
    double now = MPI_Wtime(), el = now - p->t0;
    double rate = el > 0 ? (double)done / el : 0.0;
    char eta[32], elb[32];
    fmt_secs(rate > 0 ? (double)(p->total - done) / rate : -1, eta, sizeof eta);
    fmt_secs(el, elb, sizeof elb);
    int tty = ctx->progress_tty;
    fprintf(stderr, "%s[%s] %lld/%lld %s  %.2f %s/s  %s%s%s", tty ? "\r\033[K" : "", p->what,
            (long long)done, (long long)p->total, p->unit, rate, p->unit,
            final ? "elapsed " : "ETA ", final ? elb : eta, (tty && !final) ? "" : "\n");
    fflush(stderr);
    p->t_last = now;
    p->printed = 1;
}

void log_progress_start(const bgfm_ctx *ctx, log_progress *p, const char *what, const char *unit,
                        int64_t total) {
    p->what = what;
    p->unit = unit;
    p->total = total;
    p->t0 = p->t_last = MPI_Wtime();
    p->printed = 0;
    (void)ctx;
}

void log_progress_update(const bgfm_ctx *ctx, log_progress *p, int64_t done) {
    if (ctx->rank != 0 || ctx->quiet) return;
    double now = MPI_Wtime();
    double every = ctx->progress_tty ? 0.2 : 2.0;
    if (now - p->t_last < every && p->printed) return;
    if (!p->printed && now - p->t0 < 0.5) return;
    progress_print(ctx, p, done, 0);
}

void log_progress_end(const bgfm_ctx *ctx, log_progress *p, int64_t done) {
    if (ctx->rank != 0 || ctx->quiet) return;
    progress_print(ctx, p, done, 1);
}

void log_utc_now(char *buf, size_t n) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
