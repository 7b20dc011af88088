/* html.c: the run report page (html.h; docs/report.md): the workdir read, the sections of
 * the stages that ran put in order, the page drawn and written complete-or-absent; and
 * `bgfm run`, which runs the pipeline (engine/run.c) and then writes the page, a problem
 * with it being a warning, never the run's failure.
 * Not the sections' contents (html_run.c, html_train.c, ...) and not the page mechanics
 * (html_page.c). */
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bgfm/cli.h"
#include "bgfm/fsutil.h"
#include "bgfm/html.h"
#include "bgfm/log.h"
#include "bgfm/run.h"
#include "html_int.h"

typedef struct sec {
    const char *id, *title, *kind;
    void (*one)(html_page *, const wd *, const wd_stage *);
    void (*after)(html_page *, const wd *); /* once after the stages of `kind`: the stages of
                                               further kinds (adaptation), or NULL */
} sec;

/* the stage sections in reading order: what went in, what came out of each step */
static const sec secs[] = {
    {"dataset", "Dataset", "parcellate", html_sec_dataset, NULL},
    {"parcellation", "Parcellation QC", "parcellate", html_sec_parcqc, NULL},
    {"connectivity", "Connectivity", "connectivity", html_sec_conn, NULL},
    {"pretraining", "Pretraining", "pretrain", html_sec_pretrain, NULL},
    {"probe", "Probe and adaptation", "probe", html_sec_probe, html_sec_adapt},
};
#define NSEC ((int)(sizeof secs / sizeof secs[0]))

static int has_kind(const wd *w, const char *kind) {
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->s[i].kind, kind)) return 1;
    return 0;
}

static int has_sec(const wd *w, const sec *s) {
    return has_kind(w, s->kind) || (s->after && html_adapt_present(w));
}

static void page_top(html_page *p, const wd *w, const char *title) {
    char now[40];
    log_utc_now(now, sizeof now);
    hp_raw(p, "<h1>");
    hp_text(p, title);
    hp_raw(p, "</h1>\n<p class=\"note\">Written %s by bgfm %s from <code>", now, BGFM_VERSION);
    hp_text(p, w->root);
    hp_raw(p, "</code>. One file, readable offline: figures are inlined PNGs (gnuplot), "
              "no script.</p>\n<nav><a href=\"#run\">Run</a>");
    for (int k = 0; k < NSEC; k++)
        if (has_sec(w, &secs[k])) hp_raw(p, "<a href=\"#%s\">%s</a>", secs[k].id, secs[k].title);
    hp_raw(p, "<a href=\"#provenance\">Provenance</a></nav>\n");
}

static void page_body(html_page *p, const wd *w) {
    hp_head(p, 2, "run", "Run");
    html_sec_status(p, w);
    for (int k = 0; k < NSEC; k++) {
        if (!has_sec(w, &secs[k])) continue;
        hp_head(p, 2, secs[k].id, secs[k].title);
        for (int i = 0; i < w->n; i++)
            if (!strcmp(w->s[i].kind, secs[k].kind)) {
                secs[k].one(p, w, &w->s[i]);
                p->nsec++;
            }
        if (secs[k].after) secs[k].after(p, w);
    }
    html_sec_scaling(p, w);
    hp_head(p, 2, "provenance", "Provenance");
    html_sec_provenance(p, w);
}

int html_report_write(const char *workdir, int strict, html_report_stats *st, bgfm_err *e) {
    memset(st, 0, sizeof *st);
    wd w;
    int rc = wd_read(workdir, &w, e);
    if (rc) return rc;
    char tmp[4200], dir[4200], title[600];
    snprintf(tmp, sizeof tmp, "%s/.bgfm/report-%ld", w.root, (long)getpid());
    snprintf(dir, sizeof dir, "%s/report", w.root);
    snprintf(st->path, sizeof st->path, "%s/report/index.html", w.root);
    char *base = bgfm_strdup(e, w.root);
    if (!base) {
        wd_free(&w);
        return BGFM_ENOMEM;
    }
    snprintf(title, sizeof title, "bgfm run report: %s", basename(base));
    free(base);
    char man[4300];
    snprintf(man, sizeof man, "%s/report/manifest.json", w.root);
    rc = fs_exists(man) ? bgfm_fail(e, BGFM_EUSAGE, "report: %s/report is the output of a stage "
                                    "named 'report'; rename that stage so the page can be "
                                    "written there", w.root) : 0;
    if (!rc) rc = fs_remove_tree(w.root, tmp, e);
    if (!rc) rc = fs_mkdirs(tmp, e);
    if (!rc) rc = fs_mkdirs(dir, e);
    html_page p;
    if (!rc) rc = hp_open(&p, tmp, e);
    if (rc) {
        bgfm_err ignore = {0};
        fs_remove_tree(w.root, tmp, &ignore); /* the scratch folder, when it was made */
        wd_free(&w);
        return rc;
    }
    page_top(&p, &w, title);
    page_body(&p, &w);
    rc = hp_finish(&p, title, st->path, strict, &st->bytes);
    st->figures = p.nfig;
    st->problems = p.problems;
    st->first = p.first;
    st->sections = p.nsec;
    /* a figure gnuplot failed on, asked for strictly: its script and data stay for a rerun */
    int keep = strict && rc == BGFM_EIO && p.problems && strstr(e->msg, "could not draw");
    hp_free(&p);
    bgfm_err ignore = {0};
    if (!keep) fs_remove_tree(w.root, tmp, &ignore);
    wd_free(&w);
    return rc;
}

/* ---- bgfm run: the pipeline, then the page ------------------------------------------- */

/* 1 when WORKDIR/report/index.html is newer than metrics.jsonl, to which every stage run
 * (also a failed one) appends: nothing ran since the page was written */
static int page_current(const char *workdir) {
    char a[4200], b[4200];
    struct stat sa, sb;
    snprintf(a, sizeof a, "%s/report/index.html", workdir);
    snprintf(b, sizeof b, "%s/metrics.jsonl", workdir);
    if (stat(a, &sa) || stat(b, &sb)) return 0;
    return sa.st_mtim.tv_sec > sb.st_mtim.tv_sec ||
           (sa.st_mtim.tv_sec == sb.st_mtim.tv_sec && sa.st_mtim.tv_nsec > sb.st_mtim.tv_nsec);
}

int cmd_run(bgfm_ctx *ctx, int argc, char **argv) {
    int no_report = 0, n = 0;
    char **av = bgfm_calloc(&ctx->err, (size_t)argc + 1, sizeof *av, "run arguments");
    /* every rank enters the run's collectives, or none: a rank short of memory here alone
     * would leave the others waiting in them */
    int arc = bgfm_ctx_agree(ctx, av ? 0 : BGFM_ENOMEM);
    if (arc) {
        free(av);
        return arc;
    }
    for (int i = 0; i < argc; i++) {
        if (i > 0 && !strcmp(argv[i], "--no-report")) no_report = 1;
        else av[n++] = argv[i];
    }
    char *workdir = NULL;
    int rc = run_command(ctx, n, av, &workdir);
    free(av);
    /* the page: rank 0 alone, after the run's last agreement; a problem is a warning */
    if (workdir && !no_report && ctx->rank == 0 && page_current(workdir)) {
        log_info(ctx, "report: %s/report/index.html is up to date (nothing ran since it was "
                 "written)", workdir);
    } else if (workdir && !no_report && ctx->rank == 0) {
        double t0 = MPI_Wtime();
        html_report_stats st;
        bgfm_err e = {0};
        int hrc = html_report_write(workdir, 0, &st, &e);
        if (hrc)
            log_warn(ctx, "the run report was not written (the run's result stands): %s; "
                     "retry with `bgfm report %s --html`", e.msg, workdir);
        else if (st.problems)
            log_warn(ctx, "the run report %s lacks %d part(s): %s", st.path, st.problems,
                     st.first.msg);
        if (!hrc)
            log_info(ctx, "report: %s (%d figures, %.0f kB, %.1f s)", st.path, st.figures,
                     (double)st.bytes / 1024.0, MPI_Wtime() - t0);
    }
    free(workdir);
    return rc;
}
