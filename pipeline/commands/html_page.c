/* html_page.c: the report page being built: escaped text, number cells, problem notes,
 * figures queued as parts of ONE gnuplot script (one process draws them all; a figure
 * that fails is then retried alone), and the final page with every PNG inlined as a
 * base64 data: URI, written through a temporary file. Not the sections (html_run.c,
 * html_train.c, html_qc.c, html_probe.c) and not a reader of the workdir (html_wd.c). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/child.h"
#include "bgfm/fsutil.h"
#include "bgfm/json.h"
#include "html_int.h"

const char *const hp_palette_seq =
    "(0 '#440154', 0.14 '#46327e', 0.29 '#365c8d', 0.43 '#277f8e', 0.57 '#1fa187', "
    "0.71 '#4ac16d', 0.86 '#a0da39', 1 '#fde725')";
const char *const hp_palette_div =
    "(0 '#2166ac', 0.25 '#67a9cf', 0.5 '#f7f7f7', 0.75 '#ef8a62', 1 '#b2182b')";

/* Okabe & Ito's eight colours (the first is blue, not black, for the single curves) */
static const char *const okabe_ito[] = {"#0072B2", "#E69F00", "#009E73", "#CC79A7",
                                        "#56B4E9", "#D55E00", "#F0E442", "#000000"};

int hp_open(html_page *p, const char *tmp, bgfm_err *e) {
    memset(p, 0, sizeof *p);
    p->e = e;
    p->tmp = bgfm_strdup(e, tmp);
    if (!p->tmp) return BGFM_ENOMEM;
    p->f = open_memstream(&p->text, &p->len);
    p->gp = p->f ? open_memstream(&p->gptext, &p->gplen) : NULL;
    if (!p->f || !p->gp) {
        hp_free(p);
        return bgfm_fail(e, BGFM_ENOMEM, "report: out of memory starting the page");
    }
    return 0;
}

void hp_free(html_page *p) {
    if (p->f) fclose(p->f);
    if (p->gp) fclose(p->gp);
    free(p->text);
    free(p->gptext);
    for (int i = 0; i < p->nfig; i++) {
        free(p->fig[i].caption);
        free(p->fig[i].png);
    }
    free(p->fig);
    free(p->tmp);
    memset(p, 0, sizeof *p);
}

void hp_raw(html_page *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->f, fmt, ap);
    va_end(ap);
}

static void esc(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

void hp_text(html_page *p, const char *s) { esc(p->f, s); }

void hp_stage_problem(html_page *p, const wd_stage *s, const char *why, const char *tail) {
    char st[512];
    if (!why) {
        wd_status_text(s, st, sizeof st);
        why = st;
    }
    hp_raw(p, "<p class=\"problem\">stage ");
    hp_text(p, s->name);
    hp_raw(p, ": ");
    hp_text(p, why);
    hp_raw(p, ".%s%s</p>\n", *tail ? " " : "", tail);
}

void hp_textf(html_page *p, const char *fmt, ...) {
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    esc(p->f, buf);
}

void hp_head(html_page *p, int level, const char *id, const char *text) {
    fprintf(p->f, "<h%d id=\"", level);
    esc(p->f, id);
    fputs("\">", p->f);
    esc(p->f, text);
    fprintf(p->f, "</h%d>\n", level);
}

void hp_num(html_page *p, double v, int dec) {
    if (!isfinite(v)) {
        fputs("<td class=\"n\" data-v=\"nan\">n/a</td>", p->f);
        return;
    }
    fputs("<td class=\"n\" data-v=\"", p->f);
    json_write_num(p->f, v);
    if (v != 0 && fabs(v) < 1e-3 && dec > 0) fprintf(p->f, "\">%.3g</td>", v); /* a learning rate */
    else fprintf(p->f, "\">%.*f</td>", dec, v);
}

void hp_cell(html_page *p, const char *s) {
    fputs("<td>", p->f);
    esc(p->f, s);
    fputs("</td>", p->f);
}

void hp_problem(html_page *p, int code, const char *fmt, ...) {
    char buf[BGFM_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fputs("<p class=\"problem\">", p->f);
    esc(p->f, buf);
    fputs("</p>\n", p->f);
    if (!p->problems++) bgfm_fail(&p->first, code, "%s", buf);
    if (code == BGFM_ENOMEM) /* out of memory is not a part missing: the page is abandoned */
        bgfm_fail(p->e, code, "%s", buf);
}

FILE *hp_data(html_page *p, char *name, size_t n) {
    snprintf(name, n, "d%d.dat", p->ndata++);
    char *path = fs_join(p->tmp, name, p->e);
    FILE *f = path ? fopen(path, "w") : NULL;
    if (path && !f)
        bgfm_fail(p->e, BGFM_EIO, "report: cannot write %s: %s", path, strerror(errno));
    if (!f) p->failed = 1;
    free(path);
    return f;
}

void hp_data_close(html_page *p, FILE *f, const char *name) {
    if (!f) return;
    int bad = ferror(f);
    if (fclose(f) || bad) {
        bgfm_fail(p->e, BGFM_EIO, "report: cannot write %s/%s (disk full?)", p->tmp, name);
        p->failed = 1;
    }
}

static hp_figure *fig_push(html_page *p, const char *caption) {
    if (p->nfig == p->capfig) {
        int cap = p->capfig ? 2 * p->capfig : 16;
        hp_figure *t = bgfm_realloc(p->e, p->fig, (size_t)cap * sizeof *t, "report figure list");
        if (!t) {
            p->failed = 1;
            return NULL;
        }
        p->fig = t;
        p->capfig = cap;
    }
    hp_figure *g = &p->fig[p->nfig];
    memset(g, 0, sizeof *g);
    g->caption = bgfm_strdup(p->e, caption);
    if (!g->caption) {
        p->failed = 1;
        return NULL;
    }
    p->nfig++;
    fprintf(p->f, "<!--bgfm-fig %d-->\n", p->nfig - 1);
    return g;
}

void hp_fig(html_page *p, int w, int h, const char *caption, const char *fmt, ...) {
    hp_figure *g = fig_push(p, caption);
    if (!g) return;
    char name[32];
    snprintf(name, sizeof name, "fig-%d.png", p->nfig - 1);
    g->png = fs_join(p->tmp, name, p->e);
    if (!g->png) {
        p->failed = 1;
        return;
    }
    fflush(p->gp);
    g->gp0 = p->gplen;
    fprintf(p->gp, "reset\nset terminal pngcairo size %d,%d font 'DejaVu Sans,10' noenhanced\n"
            "set output '%s'\nset grid lc rgb '#dddddd'\nset key noautotitle\nset border lc rgb '#444444'\n",
            w, h, name);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->gp, fmt, ap);
    va_end(ap);
    fputs("\nunset output\n", p->gp);
    fflush(p->gp);
    g->gp1 = p->gplen;
}

void hp_fig_png(html_page *p, const char *png, const char *caption) {
    hp_figure *g = fig_push(p, caption);
    if (!g) return;
    g->png = bgfm_strdup(p->e, png);
    if (!g->png) p->failed = 1;
}

static int dbl_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double hp_quantile(double *v, int64_t n, double q) {
    if (n <= 0) return NAN;
    qsort(v, (size_t)n, sizeof *v, dbl_cmp);
    double x = q * (double)(n - 1);
    int64_t i = (int64_t)floor(x);
    if (i >= n - 1) return v[n - 1];
    return v[i] + (x - (double)i) * (v[i + 1] - v[i]);
}

/* ---- drawing and writing -------------------------------------------------------------- */

static void prologue(FILE *f) {
    for (int i = 0; i < 8; i++)
        fprintf(f, "set linetype %d lc rgb '%s' lw 1.5 pt 7 ps 0.5\n", i + 1, okabe_ito[i]);
    fputs("set linetype cycle 8\n", f);
}

/* 1 when the file is a whole PNG (signature first, IEND chunk last) */
static int png_whole(const char *path, char **data, size_t *len) {
    bgfm_err ignore = {0};
    *data = NULL;
    *len = 0;
    if (!fs_exists(path) || fs_read_all(path, data, len, &ignore)) return 0;
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const unsigned char iend[8] = {'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    if (*len >= 20 && !memcmp(*data, sig, 8) && !memcmp(*data + *len - 8, iend, 8)) return 1;
    free(*data);
    *data = NULL;
    return 0;
}

/* Run gnuplot on `script` (a file name in p->tmp); log appended to gnuplot.log.
 * Returns 0 when it ran (status in *code), else the child_run status (gnuplot missing). */
static int gnuplot(html_page *p, const char *script, int *code, bgfm_err *e) {
    char *log = fs_join(p->tmp, "gnuplot.log", e);
    if (!log) return BGFM_ENOMEM;
    char prog[] = "gnuplot", arg[64];
    snprintf(arg, sizeof arg, "%s", script);
    char *const argv[] = {prog, arg, NULL};
    child_opts co = {p->tmp, log, NULL, 0, 0};
    int rc = child_run(argv, &co, code, e);
    free(log);
    return rc;
}

static int write_script(html_page *p, const char *name, size_t a, size_t b) {
    char *path = fs_join(p->tmp, name, p->e);
    FILE *f = path ? fopen(path, "w") : NULL;
    int rc = 0;
    if (!f) rc = path ? bgfm_fail(p->e, BGFM_EIO, "report: cannot write %s: %s", path, strerror(errno))
                      : BGFM_ENOMEM;
    if (f) {
        prologue(f);
        fwrite(p->gptext + a, 1, b - a, f);
        if (fclose(f)) rc = bgfm_fail(p->e, BGFM_EIO, "report: cannot write %s", path);
    }
    free(path);
    return rc;
}

/* The first line of gnuplot.log that says what went wrong, for the problem note. */
static void gnuplot_reason(html_page *p, char *buf, size_t n) {
    bgfm_err ignore = {0};
    char *log = fs_join(p->tmp, "gnuplot.log", &ignore), *t = NULL;
    size_t len = 0;
    snprintf(buf, n, "see gnuplot's messages");
    if (log && !fs_read_all(log, &t, &len, &ignore)) {
        const char *l = t, *best = NULL;
        while (l && *l) {
            if (strstr(l, "rror") && (!strchr(l, '\n') || strstr(l, "rror") < strchr(l, '\n'))) best = l;
            l = strchr(l, '\n');
            if (l) l++;
        }
        if (best) snprintf(buf, n, "%.*s", (int)strcspn(best, "\n"), best);
    }
    free(t);
    free(log);
}

/* Draw every queued figure: one gnuplot for all; when it fails (or a PNG is not whole),
 * each figure without a whole PNG alone. Returns a hard failure only (gnuplot missing is
 * a problem per figure, not a failure). */
static int draw(html_page *p) {
    int any = 0;
    for (int i = 0; i < p->nfig; i++) any |= p->fig[i].gp1 > p->fig[i].gp0;
    if (!any) return 0;
    fflush(p->gp);
    int rc = write_script(p, "report.gp", 0, p->gplen), code = 0;
    if (rc) return rc;
    bgfm_err ge = {0};
    if (gnuplot(p, "report.gp", &code, &ge)) {
        for (int i = 0; i < p->nfig; i++)
            if (p->fig[i].gp1 > p->fig[i].gp0) {
                free(p->fig[i].png);
                p->fig[i].png = NULL; /* not drawn */
            }
        if (!p->problems) bgfm_fail(&p->first, ge.code, "report: figures not drawn: %s (install "
                                    "gnuplot: scripts/deps.sh run)", ge.msg);
        p->problems++;
        return 0;
    }
    for (int i = 0; i < p->nfig; i++) {
        hp_figure *g = &p->fig[i];
        if (g->gp1 == g->gp0) continue;
        char *d = NULL;
        size_t l = 0;
        int whole = png_whole(g->png, &d, &l);
        free(d);
        if (whole && code == 0) continue;
        /* alone: the figures before a failure are whole, the failing one and those after
         * it are drawn again one by one */
        char name[32];
        snprintf(name, sizeof name, "fig-%d.gp", i);
        if (fs_exists(g->png)) remove(g->png);
        if ((rc = write_script(p, name, g->gp0, g->gp1))) return rc;
        int c1 = 0;
        if (gnuplot(p, name, &c1, &ge) || c1 || !png_whole(g->png, &d, &l)) {
            char why[300];
            gnuplot_reason(p, why, sizeof why);
            free(g->png);
            g->png = NULL;
            if (!p->problems++)
                bgfm_fail(&p->first, BGFM_EIO, "report: gnuplot could not draw figure '%s': %s "
                          "(rerun it: cd %s && gnuplot %s)", g->caption, why, p->tmp, name);
        }
        free(d);
    }
    return 0;
}

static void base64(FILE *f, const unsigned char *d, size_t n) {
    static const char b[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        char q[4] = {b[v >> 18], b[(v >> 12) & 63], b[(v >> 6) & 63], b[v & 63]};
        fwrite(q, 1, 4, f);
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)d[i] << 16;
        fprintf(f, "%c%c==", b[v >> 18], b[(v >> 12) & 63]);
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8;
        fprintf(f, "%c%c%c=", b[v >> 18], b[(v >> 12) & 63], b[(v >> 6) & 63]);
    }
}

static void figure_out(html_page *p, FILE *out, int i) {
    hp_figure *g = &p->fig[i];
    char *d = NULL;
    size_t l = 0;
    fputs("<figure>", out);
    if (g->png && png_whole(g->png, &d, &l)) {
        fputs("<img alt=\"", out);
        esc(out, g->caption);
        fputs("\" src=\"data:image/png;base64,", out);
        base64(out, (const unsigned char *)d, l);
        fputs("\">", out);
    } else {
        fputs("<p class=\"problem\">figure not drawn (gnuplot failed or is missing; see the "
              "warning of the run or rerun `bgfm report WORKDIR --html`)</p>", out);
        if (g->png && g->gp1 == g->gp0 && !p->problems++) /* an existing PNG that is not whole */
            bgfm_fail(&p->first, BGFM_EDATA, "report: %s is not a whole PNG", g->png);
    }
    free(d);
    fputs("<figcaption>", out);
    esc(out, g->caption);
    fputs("</figcaption></figure>\n", out);
}

static const char *const style =
    "body{font:15px/1.45 'DejaVu Sans',Arial,sans-serif;color:#222;max-width:1100px;"
    "margin:0 auto;padding:0 1.2em 3em}h1{font-size:1.6em;margin:.8em 0 .2em}"
    "h2{border-bottom:2px solid #0072B2;padding-bottom:.15em;margin-top:2em}"
    "h3{margin-top:1.4em}table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}"
    "th,td{border:1px solid #ccc;padding:.2em .55em;text-align:left;vertical-align:top}"
    "th{background:#eef3f8}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    "figure{margin:.8em 0;display:inline-block;vertical-align:top}img{max-width:100%;"
    "border:1px solid #ddd}figcaption{font-size:.85em;color:#555;max-width:760px}"
    ".problem{background:#fdecea;border-left:4px solid #D55E00;padding:.4em .7em}"
    ".ok{color:#009E73;font-weight:bold}.bad{color:#D55E00;font-weight:bold}"
    "pre{background:#f6f6f6;padding:.6em;overflow:auto;font-size:.8em;max-height:30em}"
    "nav a{margin-right:1em}details{margin:.4em 0}.note{color:#555;font-size:.9em}";

int hp_failed(const html_page *p) { return p->failed || p->e->code; }

int hp_finish(html_page *p, const char *title, const char *out, int strict, long long *bytes) {
    fflush(p->f);
    int rc = hp_failed(p) ? (p->e->code ? p->e->code : BGFM_EIO) : draw(p);
    if (rc) return rc;
    if (strict && p->problems) /* before the existing PNGs are checked: those are checked below */
        return bgfm_fail(p->e, p->first.code, "%s", p->first.msg);
    fflush(p->f);
    char *page = NULL;
    size_t plen = 0;
    FILE *o = open_memstream(&page, &plen);
    if (!o) return bgfm_fail(p->e, BGFM_ENOMEM, "report: out of memory assembling the page");
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>", o);
    esc(o, title);
    fprintf(o, "</title>\n<style>%s</style>\n</head><body>\n", style);
    const char *s = p->text, *end = p->text + p->len;
    while (s < end) {
        const char *m = strstr(s, "<!--bgfm-");
        if (!m) m = end;
        fwrite(s, 1, (size_t)(m - s), o);
        if (m == end) break;
        int k = -1;
        if (sscanf(m, "<!--bgfm-fig %d-->", &k) == 1 && k >= 0 && k < p->nfig) figure_out(p, o, k);
        const char *close = strstr(m, "-->");
        s = close ? close + 3 : end;
    }
    fputs("</body></html>\n", o);
    if (strict && p->problems) {
        fclose(o);
        free(page);
        return bgfm_fail(p->e, p->first.code, "%s", p->first.msg);
    }
    if (fclose(o)) {
        free(page);
        return bgfm_fail(p->e, BGFM_ENOMEM, "report: out of memory assembling the page");
    }
    rc = fs_write_atomic(out, page, plen, p->e);
    if (!rc && bytes) *bytes = (long long)plen;
    free(page);
    return rc;
}

/* ---- histograms ------------------------------------------------------------------------ */

void hp_hist(html_page *p, const double *v, const int *group, int ngroups,
             const char *const *gname, int64_t n, int bins, double lo, double hi,
             const char *xlabel, const char *caption) {
    if (n <= 0 || hp_failed(p)) return;
    if (!(lo < hi)) { /* the range of the finite values */
        lo = INFINITY;
        hi = -INFINITY;
        for (int64_t i = 0; i < n; i++)
            if (isfinite(v[i])) {
                lo = v[i] < lo ? v[i] : lo;
                hi = v[i] > hi ? v[i] : hi;
            }
        if (!(lo <= hi)) return;
        if (hi - lo < 1e-12 * (fabs(lo) > 1 ? fabs(lo) : 1)) { /* nothing to draw */
            fputs("<p class=\"note\">", p->f);
            esc(p->f, xlabel);
            fprintf(p->f, ": every value is %g (no histogram).</p>\n", lo);
            return;
        }
    }
    int G = group ? ngroups : 1;
    double *c = bgfm_calloc(p->e, (size_t)bins * (size_t)G, sizeof *c, "report histogram bins");
    double *tot = bgfm_calloc(p->e, (size_t)G, sizeof *tot, "report histogram group totals");
    if (!c || !tot) {
        free(c);
        free(tot);
        p->failed = 1;
        return;
    }
    double w = (hi - lo) / bins;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(v[i])) continue;
        int b = (int)((v[i] - lo) / w), g = group ? group[i] : 0;
        if (g < 0 || g >= G) continue;
        b = b < 0 ? 0 : b >= bins ? bins - 1 : b;
        c[(size_t)g * (size_t)bins + (size_t)b] += 1;
        tot[g] += 1;
    }
    char dn[32];
    FILE *f = hp_data(p, dn, sizeof dn);
    for (int b = 0; f && b < bins; b++) {
        fprintf(f, "%.9g", lo + (b + 0.5) * w);
        for (int g = 0; g < G; g++)
            fprintf(f, " %.9g", G > 1 ? (tot[g] > 0 ? c[(size_t)g * (size_t)bins + (size_t)b] / tot[g] : 0.0)
                                      : c[b]);
        fputc('\n', f);
    }
    hp_data_close(p, f, dn);
    free(c);
    free(tot);
    if (!f) return;
    char *plot = NULL;
    size_t pl = 0;
    FILE *q = open_memstream(&plot, &pl);
    if (!q) {
        p->failed = 1;
        return;
    }
    if (G == 1) {
        fprintf(q, "set style fill solid 0.8 border lc rgb '#ffffff'\nset boxwidth %.9g absolute\n"
                "set ylabel 'count'\nplot '%s' u 1:2 with boxes lt 1", w * 0.95, dn);
    } else {
        fprintf(q, "set key outside right top\nset ylabel 'share of the group per bin'\nplot ");
        for (int g = 0; g < G; g++) {
            fprintf(q, "%s'%s' u 1:%d with steps lt %d title '", g ? ", " : "", dn, g + 2, g + 1);
            for (const char *s = gname[g]; *s; s++) /* a gnuplot string: no quote */
                fputc(*s == '\'' ? '`' : *s, q);
            fputc('\'', q);
        }
    }
    fclose(q);
    hp_fig(p, 700, 330, caption, "set xlabel '%s'\nset yrange [0:*]\n%s", xlabel, plot ? plot : "");
    free(plot);
}
