/* html.h: the run report as one self-contained HTML page, WORKDIR/report/index.html
 * (docs/report.md): the sections of the stages that ran (dataset, parcellation QC,
 * connectivity, pretraining, probe, scaling studies, provenance), figures drawn by one
 * gnuplot process into PNGs and inlined as data: URIs, no script and no network.
 * `bgfm report WORKDIR --html` writes it on request; `bgfm run` writes it at its end.
 * Not the text tables of `bgfm report` (commands/report.c, stages/probe/show.c) and not
 * a plotting library: gnuplot draws. Non-collective: one process (rank 0) reads the
 * workdir and writes the page. */
#ifndef BGFM_HTML_H
#define BGFM_HTML_H

#include "bgfm/ctx.h"

typedef struct html_report_stats {
    int figures;        /* figures asked for */
    int problems;       /* figures not drawn and stage outputs not read (each said on the page) */
    bgfm_err first;     /* the first of them */
    int sections;       /* stage sections written */
    long long bytes;    /* size of the page written */
    char path[4096];    /* the page's path */
} html_report_stats;

/* Read WORKDIR and write WORKDIR/report/index.html through a temporary file renamed into
 * place (complete or absent). Scratch files go to WORKDIR/.bgfm/report-<pid>/ and are
 * removed. A problem (a figure gnuplot could not draw, a stage output that cannot be read)
 * is said on the page where the figure or table would be and counted in st; with
 * `strict` (asked for with `bgfm report --html`) the first problem is the error and no
 * page is written. Errors: BGFM_EUSAGE (WORKDIR is not a workdir; gnuplot missing),
 * BGFM_EDATA (an unreadable stage output), BGFM_EIO (gnuplot failed; the page cannot be
 * written), BGFM_ENOMEM. */
int html_report_write(const char *workdir, int strict, html_report_stats *st, bgfm_err *e);

#endif
