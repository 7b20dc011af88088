/* html_int.h: what the files of the HTML run report share (pipeline/commands/html*.c,
 * docs/report.md): the page being built (escaped text, number cells, figures queued for
 * one gnuplot run), the workdir as read (stages, manifests, metrics lines), and the
 * section builders. Not a public API (include/bgfm/html.h is) and not a plotting library.
 *
 * Layers, so that no two files use each other: html_page.c (the page) and html_wd.c (the
 * workdir) use nothing of the report; the section files (html_run.c, html_train.c,
 * html_qc.c, html_conn.c, html_probe.c, html_adapt.c) use both (and html_run.c's html_skipped); html.c
 * puts the sections in order and writes. */
#ifndef BGFM_HTML_INT_H
#define BGFM_HTML_INT_H

#include <stdint.h>
#include <stdio.h>

#include "bgfm/ctx.h"
#include "bgfm/json.h"

/* ---- the page (html_page.c) --------------------------------------------------------- */
typedef struct hp_figure {
    char *caption;  /* escaped into a <figcaption> */
    char *png;      /* the PNG to inline: a scratch file gnuplot writes, or an existing file */
    size_t gp0, gp1; /* its part of the gnuplot script (gp0 == gp1: an existing PNG) */
} hp_figure;

typedef struct html_page {
    FILE *f;          /* the body (open_memstream) */
    char *text;
    size_t len;
    FILE *gp;         /* the gnuplot script (open_memstream) */
    char *gptext;
    size_t gplen;
    char *tmp;        /* scratch folder: data files, PNGs, the script and its log */
    int nfig, capfig;
    hp_figure *fig;
    int ndata;        /* data files made */
    int problems;
    bgfm_err first;   /* the first problem */
    bgfm_err *e;      /* hard failures (allocation) */
    int failed;       /* 1 after a write failure e does not hold: the page is abandoned, as
                       * after any failure recorded in *e (hp_failed) */
    int nsec;         /* stage sections */
} html_page;

int hp_open(html_page *p, const char *tmp, bgfm_err *e);
/* The page is abandoned: a failure recorded in *e (every allocation through the mechanism,
 * a file that cannot be written), or p->failed. */
int hp_failed(const html_page *p);
void hp_free(html_page *p);
/* Raw HTML (the caller's own markup; never user text). */
void hp_raw(html_page *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Text escaped for HTML (&, <, >, ", '). */
void hp_text(html_page *p, const char *s);
void hp_textf(html_page *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* <hL id="id">text</hL> (text escaped). */
void hp_head(html_page *p, int level, const char *id, const char *text);
/* A table cell holding a number: data-v has the value in shortest round-trip form (what a
 * test or a script reads back), the text shows it with `dec` decimals ("n/a" for NaN). */
void hp_num(html_page *p, double v, int dec);
/* A table cell with escaped text. */
void hp_cell(html_page *p, const char *s);
/* A problem: said on the page (class "problem", text escaped) and counted; the first is
 * kept (its code for a strict report). */
void hp_problem(html_page *p, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A data file for a figure: opens TMP/dK.dat for writing and puts its name ("dK.dat",
 * what the gnuplot script names) into name. NULL on failure (p->failed set). Close with
 * hp_data_close, which checks the write. */
FILE *hp_data(html_page *p, char *name, size_t n);
void hp_data_close(html_page *p, FILE *f, const char *name);
/* Queue a figure: the gnuplot commands (after the terminal and output are set; a blank
 * page's defaults, the Okabe-Ito line colours) draw it from data files made by hp_data;
 * its place in the body is here. w x h pixels. */
void hp_fig(html_page *p, int w, int h, const char *caption, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* An existing PNG inlined as a figure (bgfm scale's plots). */
void hp_fig_png(html_page *p, const char *png, const char *caption);
/* Run gnuplot once over every queued figure (each failed figure then alone, so one bad
 * figure costs only itself), then write the page: head, style, body with each figure
 * inlined as base64 PNG or, when not drawn, a problem note. `out` written atomically.
 * strict: any problem (p->first) is returned as the error and nothing is written. */
int hp_finish(html_page *p, const char *title, const char *out, int strict, long long *bytes);

/* Colour maps for gnuplot's `set palette`: viridis (sequential) and a blue-white-red
 * diverging map from ColorBrewer's RdBu, both readable with the common colour-vision
 * deficiencies. */
extern const char *const hp_palette_seq;
extern const char *const hp_palette_div;

/* ---- the workdir (html_wd.c) -------------------------------------------------------- */
enum { WD_STEP, WD_EPOCH, WD_LOSS, WD_REC, WD_ADJ, WD_CL, WD_GN, WD_LR, WD_GPS, WD_MASK,
       WD_COMP, WD_COMM, WD_IO, WD_RANKS, WD_NV };
extern const char *const wd_step_key[WD_NV]; /* the train_step fields, in that order */

typedef struct wd_stage {
    char *name, *kind;
    char *dir;        /* WORKDIR/<name> */
    int complete;     /* manifest.json read */
    json_node man;    /* the manifest (empty when absent) */
    int in_progress;  /* WORKDIR/.<name>.partial exists */
    int runs;         /* "stage" events of this stage */
    int last_status;  /* status of the last one, -1 when there is none */
    char last_time[40];
    double last_wall;
    int stops;        /* "stage" events with status 75 (stopped to requeue) */
    json_node ev;     /* the last event of the stage's own kind (parcellate, connectivity, probe) */
    int64_t nstep, capstep; /* train_step lines of the latest run (a resumed step replaces) */
    double *step;     /* nstep x WD_NV */
    char **step_atlas; /* nstep atlas names */
    int resumes;      /* steps that went back (a resume from a checkpoint) in that run */
} wd_stage;

typedef struct wd {
    char *root;
    int n;
    wd_stage *s;
    int64_t lines, bad_lines; /* metrics.jsonl lines read, lines not parsed */
    int has_metrics;
} wd;

/* Read WORKDIR: every stage folder with a manifest, every stage metrics.jsonl names,
 * in the order they first appear in metrics.jsonl (then by name). BGFM_EUSAGE when
 * WORKDIR is not a folder or holds neither. */
int wd_read(const char *root, wd *w, bgfm_err *e);
void wd_free(wd *w);
/* The stage that produced what stage s read: the nearest earlier stage of that kind. */
const wd_stage *wd_before(const wd *w, const wd_stage *s, const char *kind);
/* A manifest string field, or "". */
const char *wd_man_str(const wd_stage *s, const char *key);
/* "complete", "partial", "failed (exit N: NAME)", "not finished" */
void wd_status_text(const wd_stage *s, char *buf, size_t n);
int wd_stage_ok(const wd_stage *s); /* complete output */
/* <p class="problem">stage NAME: WHY. TAIL</p>; WHY NULL: the stage's status text. */
void hp_stage_problem(html_page *p, const wd_stage *s, const char *why, const char *tail);

/* A histogram figure of v[0..n) (non-finite values left out) in `bins` bins over
 * [lo, hi] (lo >= hi: the values' range): bars of counts, or with group (values
 * 0..ngroups-1 per value, names gname) one step curve per group of the share of that
 * group's values per bin, so groups of different sizes compare. */
void hp_hist(html_page *p, const double *v, const int *group, int ngroups,
             const char *const *gname, int64_t n, int bins, double lo, double hi,
             const char *xlabel, const char *caption);

/* ---- small numeric helpers (html_page.c) ---------------------------------------------- */
/* Quantile q of v[0..n) (sorted in place; linear interpolation); NaN when n == 0. */
double hp_quantile(double *v, int64_t n, double q);

/* ---- the sections (one file each group) ------------------------------------------------ */
void html_sec_status(html_page *p, const wd *w);              /* html_run.c */
void html_sec_dataset(html_page *p, const wd *w, const wd_stage *s);
void html_sec_provenance(html_page *p, const wd *w);
/* The manifest's "skipped" list of stage s as a table (first rows, then a count). */
void html_skipped(html_page *p, const wd_stage *s, const char *what);
void html_sec_pretrain(html_page *p, const wd *w, const wd_stage *s); /* html_train.c */
void html_sec_scaling(html_page *p, const wd *w);
void html_sec_parcqc(html_page *p, const wd *w, const wd_stage *s);   /* html_qc.c */
void html_sec_conn(html_page *p, const wd *w, const wd_stage *s);     /* html_conn.c */
void html_sec_probe(html_page *p, const wd *w, const wd_stage *s);    /* html_probe.c */
/* Each adaptation stage (finetune, prompt) and the tables of all methods (html_adapt.c). */
void html_sec_adapt(html_page *p, const wd *w);
int html_adapt_kind(const char *kind); /* a stage kind whose report has finetune.json's shape */
int html_adapt_present(const wd *w);   /* a stage of such a kind is in the workdir */

#endif
