/* mline.c: the one writer of metrics.jsonl lines (mline.h): {"event", "stage", "kind",
 * then the caller's fields}, appended whole, and the peak-RSS gather they report.
 * Not the decision of what a stage measures (the stages and run.c). */
#include "bgfm/mline.h"

#include <math.h>
#include <stdlib.h>

#include "bgfm/fsutil.h"
#include "bgfm/json.h"
#include "bgfm/log.h"

void mline_begin(mline *m, const char *event, const char *stage, const char *kind) {
    m->text = NULL;
    m->len = 0;
    m->f = open_memstream(&m->text, &m->len);
    if (!m->f) return;
    fputs("{\"event\": ", m->f);
    json_write_str(m->f, event);
    fputs(", \"stage\": ", m->f);
    json_write_str(m->f, stage ? stage : "");
    fputs(", \"kind\": ", m->f);
    json_write_str(m->f, kind ? kind : "");
}

static void key(mline *m, const char *k) {
    fputs(", ", m->f);
    json_write_str(m->f, k);
    fputs(": ", m->f);
}

void mline_num(mline *m, const char *k, double v) {
    if (!m->f) return;
    key(m, k);
    json_write_num(m->f, v);
}

void mline_int(mline *m, const char *k, int64_t v) {
    if (!m->f) return;
    key(m, k);
    fprintf(m->f, "%lld", (long long)v);
}

void mline_str(mline *m, const char *k, const char *v) {
    if (!m->f) return;
    key(m, k);
    json_write_str(m->f, v ? v : "");
}

void mline_nums(mline *m, const char *k, const double *v, int n, int decimals) {
    if (!m->f) return;
    key(m, k);
    double scale = pow(10.0, decimals);
    fputc('[', m->f);
    for (int i = 0; i < n; i++) {
        if (i) fputs(", ", m->f);
        json_write_num(m->f, isfinite(v[i]) ? (double)(int64_t)(v[i] * scale + 0.5) / scale : v[i]);
    }
    fputc(']', m->f);
}

/* Close the object; the line's text, or NULL (out of memory). */
static char *finish(mline *m) {
    if (!m->f) return NULL;
    fputc('}', m->f);
    int bad = fclose(m->f) != 0;
    m->f = NULL;
    if (bad) {
        free(m->text);
        m->text = NULL;
    }
    return m->text;
}

void mline_append(mline *m, bgfm_ctx *ctx, const char *path) {
    char *t = finish(m);
    bgfm_err e = {0};
    if (!t) log_warn(ctx, "out of memory writing a metrics line");
    else if (path && fs_append_line(path, t, &e)) log_warn(ctx, "%s", e.msg);
    free(t);
    m->text = NULL;
}

void mline_write(mline *m, bgfm_ctx *ctx, FILE *f) {
    char *t = finish(m);
    if (!t) log_warn(ctx, "out of memory writing a metrics line");
    else if (fputs(t, f) < 0 || fputc('\n', f) == EOF || fflush(f) != 0)
        log_warn(ctx, "cannot write a metrics line (disk full?)");
    free(t);
    m->text = NULL;
}

void mline_discard(mline *m) {
    if (m->f) fclose(m->f);
    free(m->text);
    m->f = NULL;
    m->text = NULL;
}

int mline_gather_rss(bgfm_ctx *ctx, double *all, bgfm_err *e) {
    double rss = fs_peak_rss_mib();
    return BGFM_MPI(e, MPI_Gather(&rss, 1, MPI_DOUBLE, all, 1, MPI_DOUBLE, 0, ctx->comm));
}
