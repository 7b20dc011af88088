/* html_conn.c: the report's connectivity QC, per atlas of the graph store: the mean FC
 * matrix (regions in atlas-label order, and in the leaf order of an average-linkage
 * clustering on 1 - mean FC), the distributions of edge density and of FC values per site,
 * the graphs with flagged regions, the participants left out. At most MAX_GRAPHS graphs
 * per atlas are read (evenly spread over the store) so a large cohort stays quick.
 * Not the connectivity math (stages/connectivity) nor the graph store (io/graphs.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/fsutil.h"
#include "bgfm/graphs.h"
#include "html_int.h"

#define MAX_GRAPHS 4000 /* graphs per atlas read for the summaries */
#define MAX_SITES 8     /* sites drawn separately; the others together */
#define FC_BINS 60
#define CHUNK 32        /* graphs per read */
#define FLAG_ROWS 20    /* graphs with flagged regions listed */

typedef struct acc {
    int N;
    int64_t n;         /* graphs read */
    double *mean;      /* N x N */
    double *dens;      /* n edge densities */
    int *site;         /* n site indices */
    double *fch;       /* (MAX_SITES + 1) x FC_BINS value counts */
    double lo, hi;     /* FC histogram range */
    int64_t *gi;       /* n store indices */
    int *nflag;        /* n flagged regions per graph */
} acc;

/* site index of a graph: its site among the first MAX_SITES names seen, else "other" */
static int site_of(const char *s, char names[][64], int *ns) {
    for (int i = 0; i < *ns; i++)
        if (!strcmp(names[i], s)) return i;
    if (*ns < MAX_SITES) {
        snprintf(names[*ns], 64, "%s", s);
        return (*ns)++;
    }
    return MAX_SITES;
}

static void acc_free(acc *a) {
    free(a->mean);
    free(a->dens);
    free(a->site);
    free(a->fch);
    free(a->gi);
    free(a->nflag);
    memset(a, 0, sizeof *a);
}

/* the chosen graphs of atlas `at` read in chunks, accumulated */
static int acc_read(graphs_store *gs, int at, acc *a, char sites[][64], int *ns, bgfm_err *e) {
    int64_t G = graphs_count(gs), n = 0;
    int N = graphs_atlas_nodes(gs, at);
    for (int64_t g = 0; g < G; g++) n += graphs_get_meta(gs, g)->atlas == at;
    int64_t take = n < MAX_GRAPHS ? n : MAX_GRAPHS;
    memset(a, 0, sizeof *a);
    a->N = N;
    a->fch = bgfm_calloc(e, (MAX_SITES + 1) * FC_BINS, sizeof *a->fch, "histogram");
    a->mean = bgfm_calloc(e, (size_t)N * (size_t)N, sizeof *a->mean, "mean FC");
    a->dens = bgfm_malloc(e, (size_t)take * sizeof *a->dens + 1, "densities");
    a->site = bgfm_malloc(e, (size_t)take * sizeof *a->site + 1, "sites");
    a->gi = bgfm_malloc(e, (size_t)take * sizeof *a->gi + 1, "graphs");
    a->nflag = bgfm_malloc(e, (size_t)take * sizeof *a->nflag + 1, "flags");
    float *fc = bgfm_malloc(e, (size_t)CHUNK * (size_t)N * (size_t)N * sizeof *fc + 1, "FC chunk");
    uint8_t *adj = bgfm_malloc(e, (size_t)CHUNK * (size_t)N * (size_t)N + 1, "adjacency chunk");
    uint8_t *fl = bgfm_malloc(e, (size_t)CHUNK * (size_t)N + 1, "flags chunk");
    if (!a->fch || !a->mean || !a->dens || !a->site || !a->gi || !a->nflag || !fc || !adj || !fl) {
        free(fc);
        free(adj);
        free(fl);
        return BGFM_ENOMEM;
    }
    /* the k-th graph of the atlas is taken when floor(k * take / n) steps up */
    for (int64_t g = 0, k = 0; g < G && a->n < take; g++) {
        if (graphs_get_meta(gs, g)->atlas != at) continue;
        if ((k + 1) * take / n > k * take / n) a->gi[a->n++] = g;
        k++;
    }
    a->lo = graphs_fisher_z(gs) ? -2.5 : -1.0;
    a->hi = -a->lo;
    int rc = 0;
    for (int64_t c = 0; !rc && c < a->n; c += CHUNK) {
        int m = (int)(a->n - c < CHUNK ? a->n - c : CHUNK);
        rc = graphs_read(gs, a->gi + c, m, fc, adj, NULL, e);
        if (!rc) rc = graphs_read_flagged(gs, a->gi + c, m, fl, e);
        for (int j = 0; !rc && j < m; j++) {
            int64_t q = c + j;
            const float *x = fc + (size_t)j * (size_t)N * (size_t)N;
            const uint8_t *y = adj + (size_t)j * (size_t)N * (size_t)N;
            int st = site_of(graphs_site(gs, a->gi[q]), sites, ns);
            double edges = 0;
            for (int u = 0; u < N; u++)
                for (int v = 0; v < N; v++) {
                    a->mean[u * N + v] += (double)x[u * N + v];
                    if (v <= u) continue;
                    edges += y[u * N + v] != 0;
                    double z = (double)x[u * N + v];
                    int b = (int)((z - a->lo) / (a->hi - a->lo) * FC_BINS);
                    b = b < 0 ? 0 : b >= FC_BINS ? FC_BINS - 1 : b;
                    a->fch[st * FC_BINS + b] += 1;
                }
            a->dens[q] = N > 1 ? edges / (0.5 * N * (N - 1)) : 0;
            a->site[q] = st;
            int nf = 0;
            for (int u = 0; u < N; u++) nf += fl[(size_t)j * (size_t)N + (size_t)u] != 0;
            a->nflag[q] = nf;
        }
    }
    for (int64_t i = 0; a->n && i < (int64_t)N * N; i++) a->mean[i] /= (double)a->n;
    free(fc);
    free(adj);
    free(fl);
    return rc;
}

/* leaf order of an average-linkage agglomerative clustering on d = 1 - mean FC:
 * clusters are kept as linked runs of leaves, a merge concatenates two runs. BGFM_ENOMEM
 * (in e) when out of memory, -1 when the runs do not cover every region. */
static int cluster_order(const acc *a, int *order, bgfm_err *e) {
    int N = a->N;
    double *d = bgfm_malloc(e, (size_t)N * (size_t)N * sizeof *d, "report FC distances");
    int *size = bgfm_malloc(e, (size_t)N * sizeof *size, "report cluster sizes"),
        *next = bgfm_malloc(e, (size_t)N * sizeof *next, "report cluster links"),
        *tail = bgfm_malloc(e, (size_t)N * sizeof *tail, "report cluster tails"),
        *alive = bgfm_malloc(e, (size_t)N * sizeof *alive, "report cluster flags");
    if (!d || !size || !next || !tail || !alive) {
        free(d), free(size), free(next), free(tail), free(alive);
        return BGFM_ENOMEM;
    }
    for (int i = 0; i < N; i++) {
        size[i] = 1, next[i] = -1, tail[i] = i, alive[i] = 1;
        for (int j = 0; j < N; j++) d[i * N + j] = 1.0 - a->mean[i * N + j];
    }
    for (int step = 0; step < N - 1; step++) {
        int bi = -1, bj = -1;
        double best = INFINITY;
        for (int i = 0; i < N; i++)
            for (int j = i + 1; alive[i] && j < N; j++)
                if (alive[j] && d[i * N + j] < best) best = d[i * N + j], bi = i, bj = j;
        if (bi < 0) break;
        for (int k = 0; k < N; k++) /* average linkage: size-weighted mean of the distances */
            if (alive[k] && k != bi && k != bj) {
                double v = (size[bi] * d[bi * N + k] + size[bj] * d[bj * N + k]) / (size[bi] + size[bj]);
                d[bi * N + k] = d[k * N + bi] = v;
            }
        next[tail[bi]] = bj;
        tail[bi] = tail[bj];
        size[bi] += size[bj];
        alive[bj] = 0;
    }
    int k = 0;
    for (int i = 0; i < N; i++)
        if (alive[i])
            for (int v = i; v >= 0 && k < N; v = next[v]) order[k++] = v;
    free(d), free(size), free(next), free(tail), free(alive);
    return k == N ? 0 : -1;
}

static void mean_fc_fig(html_page *p, const wd_stage *s, const char *an, const acc *a, int fz) {
    int N = a->N, *ord = bgfm_malloc(p->e, (size_t)N * sizeof *ord + 1, "report cluster order");
    int crc = ord ? cluster_order(a, ord, p->e) : BGFM_ENOMEM;
    if (crc == BGFM_ENOMEM) { /* the page is abandoned, not drawn in label order */
        free(ord);
        p->failed = 1;
        return;
    }
    if (crc) {
        for (int i = 0; i < N; i++) ord[i] = i;
    }
    double m = 0;
    for (int u = 0; u < N; u++)
        for (int v = 0; v < N; v++)
            if (u != v && fabs(a->mean[u * N + v]) > m) m = fabs(a->mean[u * N + v]);
    m = m > 0 ? m : 1;
    char d1[32], d2[32], cap[800];
    FILE *f = hp_data(p, d1, sizeof d1), *g = f ? hp_data(p, d2, sizeof d2) : NULL;
    for (int u = 0; g && ord && u < N; u++) {
        for (int v = 0; v < N; v++) {
            fprintf(f, "%s%.5g", v ? " " : "", a->mean[u * N + v]);
            fprintf(g, "%s%.5g", v ? " " : "", a->mean[ord[u] * N + ord[v]]);
        }
        fputc('\n', f);
        fputc('\n', g);
    }
    hp_data_close(p, f, d1);
    hp_data_close(p, g, d2);
    free(ord);
    snprintf(cap, sizeof cap, "Stage %s, atlas %s: mean FC over %lld graphs, regions in "
             "atlas-label order (left) and in the leaf order of an average-linkage clustering "
             "on 1 - mean FC (right); colour range +-%.3g (off-diagonal maximum).",
             s->name, an, (long long)a->n, m);
    hp_fig(p, 900, 420, cap, "set palette defined %s\nset cbrange [-%.6g:%.6g]\nset cblabel '%s'\n"
           "unset grid\nset size ratio -1\nset xrange [-0.5:%.1f]\nset yrange [%.1f:-0.5]\n"
           "set multiplot layout 1,2\nset xlabel 'region (atlas-label order)'\nset ylabel "
           "'region (atlas-label order)'\nset colorbox\nplot '%s' matrix with image\n"
           "set xlabel 'region (clustered order)'\nset ylabel 'region (clustered order)'\n"
           "plot '%s' matrix with image\nunset multiplot",
           hp_palette_div, m, m, fz ? "mean FC (Fisher z)" : "mean FC (correlation)",
           N - 0.5, N - 0.5, d1, d2);
}

static void fc_hist_fig(html_page *p, const wd_stage *s, const char *an, const acc *a,
                        char sites[][64], int ns, int fz) {
    char dn[32], cap[600];
    double tot[MAX_SITES + 1] = {0};
    for (int g = 0; g <= MAX_SITES; g++)
        for (int b = 0; b < FC_BINS; b++) tot[g] += a->fch[g * FC_BINS + b];
    int G = ns + (tot[MAX_SITES] > 0); /* "other sites" is column MAX_SITES = ns */
    FILE *f = hp_data(p, dn, sizeof dn);
    double w = (a->hi - a->lo) / FC_BINS;
    for (int b = 0; f && b < FC_BINS; b++) {
        fprintf(f, "%.6g", a->lo + (b + 0.5) * w);
        for (int g = 0; g < G; g++)
            fprintf(f, " %.6g", tot[g] > 0 ? a->fch[g * FC_BINS + b] / tot[g] : 0.0);
        fputc('\n', f);
    }
    hp_data_close(p, f, dn);
    char plot[4000];
    size_t k = (size_t)snprintf(plot, sizeof plot, "plot ");
    for (int g = 0; g < G && k < sizeof plot - 200; g++) {
        k += (size_t)snprintf(plot + k, sizeof plot - k, "%s'%s' u 1:%d with steps lt %d title '",
                              g ? ", " : "", dn, g + 2, g + 1);
        const char *nm = g == MAX_SITES ? "other sites" : sites[g][0] ? sites[g] : "(no site)";
        for (; *nm && k < sizeof plot - 8; nm++) plot[k++] = *nm == '\'' ? '`' : *nm;
        plot[k++] = '\'';
        plot[k] = '\0';
    }
    snprintf(cap, sizeof cap, "Stage %s, atlas %s: distribution of the FC values (upper "
             "triangle) per site, as the share of the site's values per bin; a site whose curve "
             "is shifted has a site effect.", s->name, an);
    hp_fig(p, 560, 330, cap, "set xlabel '%s'\nset ylabel 'share of the site''s FC values per bin'\n"
           "set key top left\nset yrange [0:*]\n%s", fz ? "FC value (Fisher z)" : "FC value (correlation)",
           plot);
}

static void flagged_table(html_page *p, graphs_store *gs, const wd_stage *s, const char *an,
                          const acc *a) {
    int64_t nf = 0;
    for (int64_t i = 0; i < a->n; i++) nf += a->nflag[i] > 0;
    hp_raw(p, "<p>%lld of the %lld graphs read have flagged regions (no usable signal: their rows "
              "and columns of FC and adjacency are 0).</p>\n", (long long)nf, (long long)a->n);
    if (!nf) return;
    hp_raw(p, "<table id=\"flagged-%s-", s->name);
    hp_text(p, an);
    hp_raw(p, "\"><tr><th>graph</th><th>participant</th><th>window</th><th>flagged regions</th></tr>\n");
    int shown = 0;
    for (int64_t i = 0; i < a->n && shown < FLAG_ROWS; i++) {
        if (!a->nflag[i]) continue;
        hp_raw(p, "<tr>");
        hp_num(p, (double)a->gi[i], 0);
        hp_cell(p, graphs_participant(gs, a->gi[i]));
        hp_num(p, (double)graphs_get_meta(gs, a->gi[i])->window, 0);
        hp_num(p, a->nflag[i], 0);
        hp_raw(p, "</tr>\n");
        shown++;
    }
    hp_raw(p, "</table>\n");
    if (nf > shown) hp_raw(p, "<p class=\"note\">and %lld more</p>\n", (long long)(nf - shown));
}

static void one_atlas(html_page *p, graphs_store *gs, const wd_stage *s, int at, int64_t total) {
    const char *an = graphs_atlas_name(gs, at);
    acc a;
    char sites[MAX_SITES][64];
    int ns = 0;
    bgfm_err e = {0};
    hp_raw(p, "<h4>Atlas ");
    hp_text(p, an);
    hp_raw(p, "</h4>\n");
    if (acc_read(gs, at, &a, sites, &ns, &e)) {
        hp_problem(p, e.code, "cannot read the graphs of atlas %s in %s: %s", an, s->dir, e.msg);
        acc_free(&a);
        return;
    }
    double meand = 0;
    for (int64_t i = 0; i < a.n; i++) meand += a.dens[i];
    hp_raw(p, "<table id=\"conn-%s-", s->name);
    hp_text(p, an);
    hp_raw(p, "\" class=\"kv\"><tr><th>graphs of this atlas</th>");
    hp_num(p, (double)total, 0);
    hp_raw(p, "</tr><tr><th>graphs read for this summary</th>");
    hp_num(p, (double)a.n, 0);
    hp_raw(p, "</tr><tr><th>regions (nodes)</th>");
    hp_num(p, a.N, 0);
    hp_raw(p, "</tr><tr><th>mean edge density</th>");
    hp_num(p, a.n ? meand / (double)a.n : (double)NAN, 4);
    hp_raw(p, "</tr></table>\n");
    if (a.n > 0 && a.N > 1) {
        int fz = graphs_fisher_z(gs);
        mean_fc_fig(p, s, an, &a, fz);
        const char *gn[MAX_SITES + 1];
        for (int g = 0; g < ns; g++) gn[g] = sites[g][0] ? sites[g] : "(no site)";
        gn[MAX_SITES] = "other sites";
        int G = ns > 1 ? ns + (ns == MAX_SITES) : 0;
        char cap[600];
        snprintf(cap, sizeof cap, "Stage %s, atlas %s: edge density per graph (edges / possible "
                 "edges)%s.", s->name, an, G ? ", per site (share of the site's graphs per bin)" : "");
        hp_hist(p, a.dens, G ? a.site : NULL, G, gn, a.n, 30, 0, 0, "edge density (fraction)", cap);
        fc_hist_fig(p, s, an, &a, sites, ns, fz);
    }
    flagged_table(p, gs, s, an, &a);
    acc_free(&a);
}

void html_sec_conn(html_page *p, const wd *w, const wd_stage *s) {
    hp_raw(p, "<h3 id=\"connectivity-%s\">Stage ", s->name);
    hp_text(p, s->name);
    hp_raw(p, "</h3>\n");
    if (!s->complete) {
        hp_stage_problem(p, s, NULL, "No QC.");
        return;
    }
    char *path = fs_join(s->dir, "index.h5", p->e);
    graphs_store *gs = NULL;
    bgfm_err e = {0};
    if (!path) {
        p->failed = 1;
        return;
    }
    if (graphs_open(path, &gs, &e)) {
        hp_problem(p, e.code, "cannot open the graph store %s: %s", path, e.msg);
        free(path);
        return;
    }
    hp_raw(p, "<p>%lld graphs; measure %s%s; adjacency by %s %g; %s.</p>\n",
           (long long)graphs_count(gs), graphs_measure(gs), graphs_fisher_z(gs) ? " (Fisher z)" : "",
           graphs_adjacency(gs), graphs_adjacency_value(gs),
           graphs_window_length(gs) ? "sliding windows" : "one graph per scan");
    for (int at = 0; at < graphs_n_atlases(gs); at++) {
        int64_t total = 0;
        for (int64_t g = 0; g < graphs_count(gs); g++) total += graphs_get_meta(gs, g)->atlas == at;
        one_atlas(p, gs, s, at, total);
    }
    html_skipped(p, s, "participant");
    graphs_close(&gs);
    free(path);
    (void)w;
}
