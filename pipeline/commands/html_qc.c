/* html_qc.c: the report's parcellation QC: head motion when the scans have confounds files
 * (mean framewise displacement, scrubbed volumes, how well motion alone separates the
 * labels); per atlas of timeseries.h5 the regions under min_coverage and how often, a
 * coverage-by-scan heat map (scans binned, so the figure is the same size for 10,000
 * subjects), one scan's ROI time series as a carpet plot.
 * Not the parcellation (stages/parcellate) nor the connectivity QC (html_conn.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/fsutil.h"
#include "bgfm/graphs.h"
#include "bgfm/h5io.h"
#include "bgfm/metrics.h"
#include "bgfm/strlist.h"
#include "html_int.h"

#define HEAT_ROWS 400   /* scan bins of the coverage heat map */
#define TABLE_ROWS 30   /* regions listed under min_coverage */

/* ---- parcellation ----------------------------------------------------------------------- */

typedef struct atl {
    int64_t S, N;
    float *cov;      /* S x N */
    uint8_t *flag;   /* S x N */
    int32_t *labels; /* N */
    char **names;    /* N */
    int64_t *off;    /* S + 1 */
} atl;

static void atl_free(atl *a) {
    free(a->cov);
    free(a->flag);
    free(a->labels);
    strlist_free(a->names, a->N);
    free(a->off);
    memset(a, 0, sizeof *a);
}

static int atl_read(hid_t f, const char *name, atl *a, bgfm_err *e) {
    memset(a, 0, sizeof *a);
    char p[600];
    int r = 0;
    /* the arrays are read whole: S x N bytes and floats, 5 MB for 10,000 scans x 116 */
    hsize_t d[8];
    snprintf(p, sizeof p, "/atlases/%s/coverage", name);
    int rc = h5io_dims(f, p, &r, d, e);
    if (!rc && r != 2) rc = bgfm_fail(e, BGFM_EDATA, "%s is not 2-D", p);
    if (rc) return rc;
    a->S = (int64_t)d[0];
    a->N = (int64_t)d[1];
    size_t SN = (size_t)(a->S * a->N) + 1;
    a->cov = bgfm_malloc(e, SN * sizeof *a->cov, "coverage");
    a->flag = bgfm_malloc(e, SN, "flags");
    a->labels = bgfm_malloc(e, (size_t)a->N * sizeof *a->labels + 1, "labels");
    a->off = bgfm_malloc(e, (size_t)(a->S + 1) * sizeof *a->off, "offsets");
    if (!a->cov || !a->flag || !a->labels || !a->off) rc = BGFM_ENOMEM;
    if (!rc) rc = h5io_read_all(f, p, H5T_NATIVE_FLOAT, a->S * a->N, a->cov, e);
    snprintf(p, sizeof p, "/atlases/%s/flagged", name);
    if (!rc) rc = h5io_read_all(f, p, H5T_NATIVE_UINT8, a->S * a->N, a->flag, e);
    snprintf(p, sizeof p, "/atlases/%s/region_labels", name);
    if (!rc) rc = h5io_read_all(f, p, H5T_NATIVE_INT32, a->N, a->labels, e);
    snprintf(p, sizeof p, "/atlases/%s/offsets", name);
    if (!rc) rc = h5io_read_all(f, p, H5T_NATIVE_INT64, a->S + 1, a->off, e);
    snprintf(p, sizeof p, "/atlases/%s/region_names", name);
    int64_t nn = 0;
    if (!rc && h5io_exists(f, p)) {
        rc = h5io_read_strings(f, p, &a->names, &nn, e);
        if (!rc && nn != a->N) {
            strlist_free(a->names, nn);
            a->names = NULL;
        }
    }
    if (rc) atl_free(a);
    return rc;
}

static const char *region(const atl *a, int64_t r, char *buf, size_t n) {
    if (a->names && a->names[r][0]) return a->names[r];
    snprintf(buf, n, "label_%d", a->labels[r]);
    return buf;
}

static void coverage_table(html_page *p, const wd_stage *s, const char *an, const atl *a,
                           double minc) {
    int64_t *cnt = bgfm_calloc(p->e, (size_t)a->N + 1, sizeof *cnt, "report coverage counts");
    int64_t *ord = bgfm_malloc(p->e, (size_t)a->N * sizeof *ord + 1, "report coverage order");
    double *mean = bgfm_calloc(p->e, (size_t)a->N + 1, sizeof *mean, "report coverage means");
    if (!cnt || !ord || !mean) {
        free(cnt);
        free(ord);
        free(mean);
        p->failed = 1;
        return;
    }
    int64_t scans_flagged = 0, nreg = 0;
    for (int64_t s_ = 0; s_ < a->S; s_++) {
        int any = 0;
        for (int64_t r = 0; r < a->N; r++) {
            cnt[r] += a->flag[s_ * a->N + r] != 0;
            mean[r] += (double)a->cov[s_ * a->N + r];
            any |= a->flag[s_ * a->N + r] != 0;
        }
        scans_flagged += any;
    }
    for (int64_t r = 0; r < a->N; r++) {
        if (cnt[r]) ord[nreg++] = r;
        mean[r] /= a->S > 0 ? (double)a->S : 1.0;
    }
    for (int64_t i = 1; i < nreg; i++) /* by count, descending; then atlas order */
        for (int64_t j = i; j > 0 && cnt[ord[j]] > cnt[ord[j - 1]]; j--) {
            int64_t t = ord[j];
            ord[j] = ord[j - 1];
            ord[j - 1] = t;
        }
    hp_raw(p, "<p>%lld regions; %lld of them below min_coverage = %g in at least one scan; "
              "%lld of %lld scans have at least one such region (its series is all zeros and "
              "its row and column of FC are 0).</p>\n", (long long)a->N, (long long)nreg, minc,
           (long long)scans_flagged, (long long)a->S);
    if (nreg) {
        hp_raw(p, "<table id=\"coverage-%s-", s->name);
        hp_text(p, an);
        hp_raw(p, "\"><tr><th>region</th><th>label</th><th>scans under min_coverage</th>"
                  "<th>share of scans</th><th>mean coverage</th></tr>\n");
        for (int64_t i = 0; i < nreg && i < TABLE_ROWS; i++) {
            char b[32];
            int64_t r = ord[i];
            hp_raw(p, "<tr>");
            hp_cell(p, region(a, r, b, sizeof b));
            hp_num(p, a->labels[r], 0);
            hp_num(p, (double)cnt[r], 0);
            hp_num(p, (double)cnt[r] / (double)a->S, 3);
            hp_num(p, mean[r], 3);
            hp_raw(p, "</tr>\n");
        }
        hp_raw(p, "</table>\n");
        if (nreg > TABLE_ROWS) hp_raw(p, "<p class=\"note\">and %lld more regions</p>\n",
                                      (long long)(nreg - TABLE_ROWS));
    }
    free(cnt);
    free(ord);
    free(mean);
}

/* scans binned into at most HEAT_ROWS rows, each the minimum coverage in its bin */
static void coverage_heat(html_page *p, const wd_stage *s, const char *an, const atl *a, double minc) {
    int64_t rows = a->S < HEAT_ROWS ? a->S : HEAT_ROWS;
    if (rows <= 0 || a->N <= 0) return;
    float lo = 1;
    for (int64_t i = 0; i < a->S * a->N; i++) lo = a->cov[i] < lo ? a->cov[i] : lo;
    if (lo >= 0.999f) { /* a flat map says nothing the sentence does not */
        hp_raw(p, "<p class=\"note\">Every region has a coverage of at least %.3f in every scan "
                  "(no heat map).</p>\n", (double)lo);
        return;
    }
    char dn[32], cap[700];
    FILE *f = hp_data(p, dn, sizeof dn);
    for (int64_t b = 0; f && b < rows; b++) {
        int64_t s0 = b * a->S / rows, s1 = (b + 1) * a->S / rows;
        for (int64_t r = 0; r < a->N; r++) {
            float m = 1e30f;
            for (int64_t q = s0; q < s1; q++) m = a->cov[q * a->N + r] < m ? a->cov[q * a->N + r] : m;
            fprintf(f, "%s%.4g", r ? " " : "", (double)m);
        }
        fputc('\n', f);
    }
    hp_data_close(p, f, dn);
    snprintf(cap, sizeof cap, "Stage %s, atlas %s: region coverage (fraction of the region's "
             "voxels with signal) per scan%s; regions in atlas-label order. Dark: below "
             "min_coverage = %g.", s->name, an,
             a->S > HEAT_ROWS ? ", scans binned (each row the minimum over its bin)" : "", minc);
    hp_fig(p, 760, 380, cap, "set palette defined %s\nset cbrange [0:1]\nset cblabel 'coverage "
           "(fraction)'\nset xlabel 'region (atlas-label order)'\nset ylabel '%s'\nset xrange "
           "[-0.5:%.1f]\nset yrange [-0.5:%.1f]\nunset grid\nplot '%s' matrix with image",
           hp_palette_seq, a->S > HEAT_ROWS ? "scan bin (timeseries.h5 row order)"
                                            : "scan (timeseries.h5 row)",
           (double)a->N - 0.5, (double)rows - 0.5, dn);
}

/* the example scan: the first with no flagged region (else the first) */
static void carpet(html_page *p, hid_t f, const wd_stage *s, const char *an, const atl *a,
                   char *const *pid) {
    int64_t ex = 0;
    for (int64_t q = 0; q < a->S; q++) {
        int any = 0;
        for (int64_t r = 0; r < a->N; r++) any |= a->flag[q * a->N + r];
        if (!any) {
            ex = q;
            break;
        }
    }
    int64_t T = a->S ? a->off[ex + 1] - a->off[ex] : 0;
    if (T <= 0 || a->N <= 0) return;
    float *x = bgfm_malloc(p->e, (size_t)(T * a->N) * sizeof *x, "report carpet plot");
    if (!x) { /* out of memory: the page is abandoned, not written without the plot */
        p->failed = 1;
        return;
    }
    char path[600], dn[32], cap[700];
    snprintf(path, sizeof path, "/atlases/%s/timeseries", an);
    bgfm_err e = {0};
    double tr = 1;
    if (h5io_read_rows(f, path, H5T_NATIVE_FLOAT, a->off[ex], T, x, &e) ||
        h5io_read_rows(f, "/subjects/t_r", H5T_NATIVE_DOUBLE, ex, 1, &tr, &e)) {
        free(x);
        hp_problem(p, e.code ? e.code : BGFM_EDATA, "carpet plot: cannot read %s of "
                   "%s/timeseries.h5: %s", path, s->name, e.msg);
        return;
    }
    double m = 0;
    for (int64_t i = 0; i < T * a->N; i++) m = fabs((double)x[i]) > m ? fabs((double)x[i]) : m;
    m = m > 3 ? 3 : m > 0 ? m : 1;
    tr = tr > 0 ? tr : 1;
    FILE *d = hp_data(p, dn, sizeof dn);
    for (int64_t r = 0; d && r < a->N; r++) {
        for (int64_t t = 0; t < T; t++) fprintf(d, "%s%.4g", t ? " " : "", (double)x[t * a->N + r]);
        fputc('\n', d);
    }
    hp_data_close(p, d, dn);
    free(x);
    snprintf(cap, sizeof cap, "Stage %s, atlas %s: carpet plot of scan %lld (%s), its cleaned ROI "
             "time series, one row per region (atlas-label order); colour clipped at +-%.3g.",
             s->name, an, (long long)ex, pid[ex], m);
    hp_fig(p, 760, 360, cap, "set palette defined %s\nset cbrange [-%.6g:%.6g]\nset cblabel "
           "'cleaned signal (z with zscore)'\nset xlabel 'time (s)'\n"
           "set ylabel 'region (atlas-label order)'\nunset grid\nset xrange [%.6g:%.6g]\n"
           "set yrange [-0.5:%lld.5]\nplot '%s' matrix u ($1*%.9g):2:3 with image",
           hp_palette_div, m, m, -0.5 * tr, ((double)T - 0.5) * tr, (long long)a->N - 1, dn, tr);
}

static int cmp_dbl(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Head motion, when the stage read the scans' confounds files (/subjects/mean_fd exists:
 * to regress confounds, or for head motion alone). */
static void motion_qc(html_page *p, hid_t f, const wd_stage *s, int64_t S) {
    double *fd = bgfm_calloc(p->e, (size_t)S + 1, sizeof *fd, "report mean FD");
    double *sorted = bgfm_calloc(p->e, (size_t)S + 1, sizeof *sorted, "report sorted FD");
    int64_t *ns = bgfm_calloc(p->e, (size_t)S + 1, sizeof *ns, "report scrubbed volumes");
    int64_t *nv = bgfm_calloc(p->e, (size_t)S + 1, sizeof *nv, "report scan volumes");
    int64_t *lab = bgfm_calloc(p->e, (size_t)S + 1, sizeof *lab, "report scan labels");
    int *pos = bgfm_calloc(p->e, (size_t)S + 1, sizeof *pos, "report FD AUC classes");
    char *conf = NULL, *classes = NULL, dn[32], cap[800];
    double scrub = 0, *sc = bgfm_calloc(p->e, (size_t)S + 1, sizeof *sc, "report FD AUC scores");
    int one = 1;
    bgfm_err e = {0};
    if (!fd || !sorted || !ns || !nv || !lab || !pos || !sc) {
        p->failed = 1;
        goto out;
    }
    if (h5io_read_all(f, "/subjects/mean_fd", H5T_NATIVE_DOUBLE, S, fd, &e) ||
        h5io_read_all(f, "/subjects/n_scrubbed", H5T_NATIVE_INT64, S, ns, &e) ||
        h5io_read_all(f, "/subjects/n_volumes", H5T_NATIVE_INT64, S, nv, &e) ||
        h5io_read_all(f, "/subjects/label", H5T_NATIVE_INT64, S, lab, &e) ||
        h5io_attr_get_str(f, NULL, "confounds", &conf, &e) ||
        h5io_attr_get_f64(f, NULL, "scrub", &scrub, &one, &e) ||
        h5io_attr_get_str(f, "/subjects/label", "classes", &classes, &e)) {
        hp_problem(p, e.code, "motion QC: cannot read %s/timeseries.h5: %s", s->name, e.msg);
        goto out;
    }
    int64_t nf = 0, scans_scrubbed = 0, vols = 0, scrubbed = 0;
    for (int64_t i = 0; i < S; i++) {
        if (!isnan(fd[i])) sorted[nf++] = fd[i];
        scans_scrubbed += ns[i] > 0;
        scrubbed += ns[i];
        vols += nv[i];
    }
    qsort(sorted, (size_t)nf, sizeof *sorted, cmp_dbl);
    hp_raw(p, "<h4>Head motion</h4>\n<table id=\"motion-%s\">", s->name);
    hp_raw(p, "<tr><td>confounds regressed</td>");
    hp_cell(p, conf[0] ? conf : scrub > 0 ? "(none: scrubbing only)"
                                          : "(none: the confounds files read for head motion only)");
    hp_raw(p, "</tr>\n<tr><td>scrub (mm of framewise displacement)</td>");
    hp_num(p, scrub, 3);
    hp_raw(p, "</tr>\n<tr><td>scans with a mean framewise displacement</td>");
    hp_num(p, (double)nf, 0);
    hp_raw(p, "</tr>\n<tr><td>median of the scans' mean framewise displacement (mm)</td>");
    hp_num(p, nf ? (nf % 2 ? sorted[nf / 2] : 0.5 * (sorted[nf / 2 - 1] + sorted[nf / 2])) : (double)NAN, 4);
    hp_raw(p, "</tr>\n<tr><td>largest (mm)</td>");
    hp_num(p, nf ? sorted[nf - 1] : (double)NAN, 4);
    hp_raw(p, "</tr>\n<tr><td>scans with scrubbed volumes</td>");
    hp_num(p, (double)scans_scrubbed, 0);
    hp_raw(p, "</tr>\n<tr><td>share of all volumes scrubbed</td>");
    hp_num(p, vols ? (double)scrubbed / (double)vols : (double)NAN, 4);
    hp_raw(p, "</tr>\n");
    /* two classes: the AUC of mean FD alone for the second class (scans with both) */
    char **cn = NULL;
    int ncls = 0;
    if (strlist_split(classes, ',', &cn, &ncls, &e)) ncls = 0;
    int64_t m = 0, n1 = 0;
    for (int64_t i = 0; ncls == 2 && i < S; i++)
        if (lab[i] >= 0 && lab[i] < 2 && !isnan(fd[i])) {
            sc[m] = fd[i];
            pos[m] = lab[i] == 1;
            n1 += pos[m++];
        }
    double auc = n1 > 0 && n1 < m ? metrics_auc(sc, pos, m, p->e) : (double)NAN;
    if (!isnan(auc)) {
        hp_raw(p, "<tr><td>AUC of mean framewise displacement alone for ");
        hp_text(p, cn[1]);
        hp_raw(p, " against ");
        hp_text(p, cn[0]);
        hp_raw(p, "</td>");
        hp_num(p, auc, 3);
        hp_raw(p, "</tr>\n");
    }
    hp_raw(p, "</table>\n");
    if (!isnan(auc) && fabs(auc - 0.5) >= 0.1)
        hp_raw(p, "<p class=\"note\">Motion alone separates the labels (AUC %.2f): %s can be "
                  "read as the label. Compare the probe's scores with the mean framewise "
                  "displacement before trusting a classifier.</p>\n", auc,
               conf[0] || scrub > 0 ? "motion left in the FC after regression"
                                    : "motion in the FC (nothing was regressed: the stage's "
                                      "confounds and scrub options)");
    FILE *d = hp_data(p, dn, sizeof dn);
    for (int64_t i = 0; d && i < S; i++) /* a strip plot: class index + a fixed jitter */
        if (!isnan(fd[i]))
            fprintf(d, "%.6g %.6g\n", (double)(lab[i] < 0 ? ncls : lab[i]) +
                                          0.6 * (fmod(0.6180339887 * (double)i, 1.0) - 0.5), fd[i]);
    hp_data_close(p, d, dn);
    int unl = 0;
    for (int64_t i = 0; i < S; i++) unl |= lab[i] < 0 && !isnan(fd[i]);
    char tics[600] = "";
    size_t o = 0;
    for (int c = 0; c < ncls + unl && o + 1 < sizeof tics; c++)
        o += (size_t)snprintf(tics + o, sizeof tics - o, "%s'%s' %d", c ? ", " : "",
                              c < ncls ? cn[c] : "unlabelled", c);
    snprintf(cap, sizeof cap, "Stage %s: each scan's mean framewise displacement (from its "
             "confounds file) by label%s.", s->name, scrub > 0 ? "; dashed: scrub" : "");
    char sl[120] = "";
    if (scrub > 0) snprintf(sl, sizeof sl, "set arrow from graph 0, first %.6g to graph 1, first "
                                           "%.6g nohead dt 2\n", scrub, scrub);
    double top = nf ? sorted[nf - 1] : 1.0;
    top = 1.1 * (scrub > top ? scrub : top);
    hp_fig(p, 560, 320, cap, "%sset xtics (%s)\nset xrange [-0.6:%d.6]\nset yrange [0:%.6g]\n"
           "set ylabel 'mean framewise displacement (mm)'\nplot '%s' u 1:2 with points pt 7 ps "
           "0.6 notitle", sl, tics, ncls + unl - 1, top > 0 ? top : 1.0, dn);
    strlist_free(cn, ncls);
out:
    free(fd);
    free(sorted);
    free(ns);
    free(nv);
    free(lab);
    free(pos);
    free(sc);
    free(conf);
    free(classes);
}

void html_sec_parcqc(html_page *p, const wd *w, const wd_stage *s) {
    hp_raw(p, "<h3 id=\"parcellation-%s\">Stage ", s->name);
    hp_text(p, s->name);
    hp_raw(p, "</h3>\n");
    if (!s->complete) {
        hp_stage_problem(p, s, NULL, "No QC.");
        return;
    }
    char *path = fs_join(s->dir, "timeseries.h5", p->e);
    if (!path) {
        p->failed = 1;
        return;
    }
    bgfm_err e = {0};
    hid_t f = h5io_open(MPI_COMM_SELF, path, &e);
    char *atlases = NULL, **an = NULL, **pid = NULL;
    int na = 0;
    int64_t S = 0;
    double minc = 0;
    int one = 1;
    int rc = f < 0 ? (e.code ? e.code : BGFM_EDATA) : 0;
    if (!rc) rc = h5io_attr_get_str(f, NULL, "atlases", &atlases, &e);
    if (!rc) rc = h5io_attr_get_f64(f, NULL, "min_coverage", &minc, &one, &e);
    if (!rc) rc = strlist_split(atlases, ',', &an, &na, &e);
    if (!rc) rc = h5io_read_strings(f, "/subjects/participant_id", &pid, &S, &e);
    if (rc) hp_problem(p, rc, "cannot read %s: %s", path, e.msg);
    if (!rc && h5io_exists(f, "/subjects/mean_fd")) motion_qc(p, f, s, S);
    for (int i = 0; !rc && i < na; i++) {
        atl a;
        hp_raw(p, "<h4>Atlas ");
        hp_text(p, an[i]);
        hp_raw(p, "</h4>\n");
        if (atl_read(f, an[i], &a, &e)) {
            hp_problem(p, e.code, "cannot read atlas %s of %s: %s", an[i], path, e.msg);
            bgfm_err_clear(&e);
            continue;
        }
        coverage_table(p, s, an[i], &a, minc);
        coverage_heat(p, s, an[i], &a, minc);
        if (a.S == S) carpet(p, f, s, an[i], &a, pid);
        atl_free(&a);
    }
    bgfm_err ignore = {0};
    h5io_close(&f, path, &ignore);
    free(atlases);
    strlist_free(an, na);
    strlist_free(pid, S);
    free(path);
    (void)w;
}
