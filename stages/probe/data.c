/* data.c: the probe stage's data (probe_stage.h): the probed graphs and subjects, the
 * target columns of participants.tsv, the checkpoint's protocol and pretraining graphs,
 * the embeddings and FC triangles, the fc_pca scores, and the views.
 * Not the cross-validation (stage.c, probe.c, regress.c) and not the report (write.c). */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/h5io.h"
#include "bgfm/pca.h"
#include "bgfm/probe_stage.h"

void probe_data_free(probe_data *d) {
    free(d->g);
    free(d->atl);
    free(d->subj);
    free(d->win);
    if (d->sid)
        for (int64_t s = 0; s < d->ns; s++) free(d->sid[s]);
    free(d->sid);
    free(d->cls);
    free(d->site);
    if (d->site_name)
        for (int64_t q = 0; q < d->n_sites; q++) free(d->site_name[q]);
    free(d->site_name);
    free(d->site_cls);
    free(d->fd);
    free(d->labels);
    free(d->fold);
    free(d->emb[0]);
    free(d->emb[1]);
    free(d->tri);
    free(d->fcoff);
    free(d->fcv);
    free(d->pk);
    free(d->pcoff);
    free(d->pcv);
    free(d->pca_nfit);
    free(d->pca_share);
    free(d->y);
    free(d->rfold);
    free(d->pre);
    corpus_map_free(&d->map);
    for (int64_t i = 0; d->pre_keys && i < d->n_pre_keys; i++) free(d->pre_keys[i]);
    free(d->pre_keys);
    probe_audit_free(&d->audit);
    memset(d, 0, sizeof *d);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}
static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts the strings v[0..n) and keeps each once at the front; returns the count. With
 * owned, the dropped copies are freed and the slots past the count set to NULL. */
static int64_t distinct_str(char **v, int64_t n, int owned) {
    qsort(v, (size_t)n, sizeof *v, cmp_str);
    int64_t u = 0;
    for (int64_t i = 0; i < n; i++) {
        if (u && !strcmp(v[i], v[u - 1])) {
            if (owned) free(v[i]);
        } else {
            v[u++] = v[i];
        }
    }
    for (int64_t i = u; owned && i < n; i++) v[i] = NULL;
    return u;
}

int64_t probe_distinct_i64(int64_t *v, int64_t n) {
    qsort(v, (size_t)n, sizeof *v, cmp_i64);
    int64_t u = 0;
    for (int64_t i = 0; i < n; i++)
        if (!u || v[i] != v[u - 1]) v[u++] = v[i];
    return u;
}

/* Dataset names hold no '/', so the same id in two datasets is two subjects for folds
 * and the protocol check, unless the subject map names them as one. */
void probe_subject_key(graphs_store *gs, const corpus_map *map, int64_t g, char *buf, size_t n) {
    const char *p = graphs_participant(gs, g), *ds = graphs_dataset(gs, g);
    char raw[512];
    if (p && *p) snprintf(raw, sizeof raw, "%s%s%s", ds, *ds ? "/" : "", p);
    else snprintf(raw, sizeof raw, "row-%lld", (long long)graphs_get_meta(gs, g)->subject);
    snprintf(buf, n, "%s", corpus_map_canon(map, raw));
}

int64_t probe_find_key(char *const *l, int64_t n, const char *s) {
    int64_t lo = 0, hi = n - 1;
    while (lo <= hi) {
        int64_t mid = (lo + hi) / 2;
        int c = strcmp(l[mid], s);
        if (!c) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

static int parse_num(const char *s, double *v) {
    char *end = NULL;
    errno = 0;
    *v = strtod(s, &end);
    return end != s && *end == '\0' && errno == 0 && isfinite(*v);
}

/* ---- targets ---------------------------------------------------------------------- */
int probe_targets_open(const char *path, char *const *names, int NT, bids_table *t, int *col,
                       bgfm_err *e) {
    int rc = bids_table_read(path, t, e);
    if (rc) return rc;
    for (int q = 0; q < NT && !rc; q++) {
        col[q] = bids_table_col(t, names[q]);
        if (col[q] < 0) {
            char have[1024];
            bids_table_cols_text(t, have, sizeof have);
            rc = bgfm_fail(e, BGFM_EDATA, "probe: %s has no column '%s' (listed under the probe "
                           "stage's `targets`); its columns are: %s", path, names[q], have);
            break;
        }
        for (int64_t r = 0; r < t->n_rows; r++) {
            const char *s = t->cells[r * t->n_cols + col[q]];
            double v;
            if (bids_cell_missing(s) || parse_num(s, &v)) continue;
            rc = bgfm_fail(e, BGFM_EDATA, "probe: %s: row %lld (participant '%s'), column '%s': "
                           "'%s' is not a number; write a number, or n/a when unknown", path,
                           (long long)r + 1, t->cells[r * t->n_cols + t->id_col], names[q], s);
            break;
        }
    }
    if (rc) bids_table_free(t);
    return rc;
}

/* ---- probed graphs and subjects ---------------------------------------------------- */
typedef struct keyset {
    int64_t n;
    char **key;      /* (n) sorted unique subject keys of the store */
    uint8_t *target; /* (n) 1 when the subject has at least one target value */
    int64_t *row;    /* (n) its participants.tsv row, -1 */
} keyset;

static void keyset_free(keyset *k) {
    if (k->key)
        for (int64_t i = 0; i < k->n; i++) free(k->key[i]);
    free(k->key);
    free(k->target);
    free(k->row);
    memset(k, 0, sizeof *k);
}

/* The table row of a subject key: the id written exactly so (the "<dataset>/<id>" rows of
 * the table the probe builds from inputs.datasets), else as bids_table_find matches it. */
static int64_t table_row(const bids_table *t, const char *key) {
    for (int64_t r = 0; r < t->n_rows; r++)
        if (!strcmp(t->cells[r * t->n_cols + t->id_col], key)) return r;
    return bids_table_find(t, key);
}

/* Every subject key of the store, sorted, with its table row and whether it has a target. */
static int keyset_make(graphs_store *gs, const corpus_map *map, const bids_table *tab,
                       const int *tcol, int NT, keyset *k, bgfm_err *e) {
    int64_t G = graphs_count(gs);
    memset(k, 0, sizeof *k);
    char **all = bgfm_calloc(e, (size_t)(G ? G : 1), sizeof *all, "probe");
    if (!all) return BGFM_ENOMEM;
    char buf[512];
    int rc = 0;
    for (int64_t g = 0; g < G && !rc; g++) {
        probe_subject_key(gs, map, g, buf, sizeof buf);
        if (!(all[g] = bgfm_strdup(e, buf))) rc = BGFM_ENOMEM;
    }
    if (!rc) {
        int64_t u = distinct_str(all, G, 1);
        k->n = u;
        k->key = all;
        all = NULL;
        k->target = bgfm_calloc(e, (size_t)(u ? u : 1), 1, "probe");
        k->row = bgfm_malloc(e, (size_t)(u ? u : 1) * sizeof *k->row, "probe");
        if (!k->target || !k->row) rc = BGFM_ENOMEM;
    }
    for (int64_t i = 0; !rc && i < k->n; i++) {
        k->row[i] = tab ? table_row(tab, k->key[i]) : -1;
        for (int q = 0; q < NT && k->row[i] >= 0; q++)
            if (!bids_cell_missing(tab->cells[k->row[i] * tab->n_cols + tcol[q]])) k->target[i] = 1;
    }
    if (all)
        for (int64_t g = 0; g < G; g++) free(all[g]);
    free(all);
    if (rc) keyset_free(k);
    return rc;
}

/* Classes: sorted label values of the labelled probed graphs; one label per subject. */
static int collect_classes(probe_data *d, const int64_t *lv, const char *gpath, bgfm_err *e) {
    int64_t nl = d->nl;
    int64_t *ul = bgfm_malloc(e, (size_t)(nl ? nl : 1) * sizeof *ul, "probe");
    if (!ul) return BGFM_ENOMEM;
    int64_t m = 0;
    for (int64_t i = 0; i < nl; i++)
        if (lv[i] >= 0) ul[m++] = lv[i];
    int K = (int)probe_distinct_i64(ul, m);
    d->K = K;
    d->labels = ul;
    if (K == 0)
        return bgfm_fail(e, BGFM_EDATA, "probe: %s has no labelled graph (label >= 0); set "
                         "inputs.label_column to a column of participants.tsv", gpath);
    if (K < 2)
        return bgfm_fail(e, BGFM_EDATA, "probe: every labelled graph of %s has label %lld; a "
                         "probe needs at least 2 classes", gpath, (long long)ul[0]);
    for (int64_t s = 0; s < d->ns; s++) d->cls[s] = -1;
    for (int64_t i = 0; i < nl; i++) {
        if (lv[i] < 0) continue;
        int64_t s = d->subj[i];
        int c = 0;
        while (ul[c] != lv[i]) c++;
        if (d->cls[s] >= 0 && d->cls[s] != c)
            return bgfm_fail(e, BGFM_EDATA, "probe: subject '%s' has graphs with labels %lld and "
                             "%lld in %s; one label per participant is expected", d->sid[s],
                             (long long)ul[d->cls[s]], (long long)lv[i], gpath);
        d->cls[s] = c;
    }
    return 0;
}

/* Each probed subject's site: the site of its first probed graph ("dataset/site" when
 * the store has datasets, so site-1 of two studies is two sites), indexed in sorted
 * order (d->site_name); -1 when the store does not know it. */
static int collect_sites(probe_data *d, graphs_store *gs, bgfm_err *e) {
    size_t z = (size_t)(d->ns ? d->ns : 1);
    char **key = bgfm_calloc(e, z, sizeof *key, "probe sites");
    char **uniq = bgfm_calloc(e, z, sizeof *uniq, "probe sites");
    d->site = bgfm_malloc(e, z * sizeof *d->site, "probe sites");
    int rc = !key || !uniq || !d->site ? BGFM_ENOMEM : 0;
    for (int64_t j = 0; j < d->nl && !rc; j++) {
        int64_t s = d->subj[j];
        const char *st = graphs_site(gs, d->g[j]), *ds = graphs_dataset(gs, d->g[j]);
        if (key[s] || !st || !*st) continue;
        char buf[512];
        snprintf(buf, sizeof buf, "%s%s%s", ds ? ds : "", ds && *ds ? "/" : "", st);
        if (!(key[s] = bgfm_strdup(e, buf))) rc = BGFM_ENOMEM;
    }
    int64_t u = 0;
    for (int64_t s = 0; s < d->ns && !rc; s++)
        if (key[s]) uniq[u++] = key[s];
    if (!rc) {
        int64_t m = distinct_str(uniq, u, 0); /* uniq borrows key's strings */
        for (int64_t s = 0; s < d->ns; s++)
            d->site[s] = key[s] ? probe_find_key(uniq, m, key[s]) : -1;
        d->site_name = bgfm_calloc(e, (size_t)(m ? m : 1), sizeof *d->site_name, "probe sites");
        rc = d->site_name ? 0 : BGFM_ENOMEM;
        d->n_sites = rc ? 0 : m; /* names still NULL on failure are freed as NULL */
        for (int64_t q = 0; q < d->n_sites && !rc; q++)
            if (!(d->site_name[q] = bgfm_strdup(e, uniq[q]))) rc = BGFM_ENOMEM;
    }
    for (int64_t s = 0; key && s < d->ns; s++) free(key[s]);
    free(key);
    free(uniq);
    return rc;
}

/* The labelled subjects with a known site per site and class, and whether the label is
 * spread evenly over the sites (Pearson's chi-squared; docs/probe.md "Label and site"). */
static int count_label_sites(probe_data *d, bgfm_err *e) {
    size_t z = (size_t)(d->n_sites * d->K);
    d->site_cls = bgfm_calloc(e, z ? z : 1, sizeof *d->site_cls, "probe sites");
    if (!d->site_cls) return BGFM_ENOMEM;
    for (int64_t s = 0; s < d->ns; s++)
        if (d->cls[s] >= 0 && d->site[s] >= 0) d->site_cls[d->site[s] * d->K + d->cls[s]]++;
    metrics_chi2_table(d->site_cls, (int)d->n_sites, d->K, &d->label_site);
    return 0;
}

/* Each probed graph's mean framewise displacement (its scan's, from the graph store),
 * the fill for unknown ones, and how many probed subjects have one. */
static int collect_motion(probe_data *d, graphs_store *gs, bgfm_err *e) {
    d->fd = bgfm_malloc(e, (size_t)(d->nl ? d->nl : 1) * sizeof *d->fd, "probe motion");
    uint8_t *known = bgfm_calloc(e, (size_t)(d->ns ? d->ns : 1), 1, "probe motion");
    int rc = d->fd && known ? 0 : BGFM_ENOMEM;
    double sum = 0;
    int64_t n = 0;
    for (int64_t j = 0; j < d->nl && !rc; j++) {
        double v = graphs_get_meta(gs, d->g[j])->mean_fd;
        d->fd[j] = isfinite(v) ? v : (double)NAN;
        if (!isfinite(v)) continue;
        sum += v, n++;
        known[d->subj[j]] = 1;
    }
    d->fd_fill = n ? sum / (double)n : 0.0;
    d->n_motion = 0;
    for (int64_t s = 0; s < d->ns && !rc; s++) d->n_motion += known[s];
    free(known);
    return rc;
}

/* Target values per probed subject (NaN when missing). */
static int collect_targets(probe_data *d, const keyset *k, const bids_table *tab,
                           const int *tcol, bgfm_err *e) {
    d->y = bgfm_malloc(e, (size_t)(d->NT * d->ns + 1) * sizeof *d->y, "targets");
    if (!d->y) return BGFM_ENOMEM;
    for (int64_t s = 0; s < d->ns; s++) {
        int64_t row = k->row[probe_find_key(k->key, k->n, d->sid[s])];
        for (int q = 0; q < d->NT; q++) {
            double v = (double)NAN;
            const char *c = row >= 0 ? tab->cells[row * tab->n_cols + tcol[q]] : NULL;
            if (c && !bids_cell_missing(c)) parse_num(c, &v);
            d->y[(int64_t)q * d->ns + s] = v;
        }
    }
    return 0;
}

int probe_collect(graphs_store *gs, const char *gpath, const bids_table *tab, const int *tcol,
                  char *const *tnames, int NT, int all_targets, probe_data *d, bgfm_err *e) {
    int64_t G = graphs_count(gs);
    d->A = graphs_n_atlases(gs);
    d->NT = NT;
    d->tname = tnames;
    keyset k;
    int rc = keyset_make(gs, &d->map, tab, tcol, NT, &k, e);
    if (rc) return rc;
    char buf[512];
    uint8_t *inc = bgfm_calloc(e, (size_t)(G ? G : 1), 1, "probe");
    uint8_t *subj_in = bgfm_calloc(e, (size_t)(k.n ? k.n : 1), 1, "probe");
    int64_t *lv = NULL, *kidx = NULL;
    if (!inc || !subj_in) {
        rc = BGFM_ENOMEM;
        goto done;
    }
    int64_t nl = 0;
    for (int64_t g = 0; g < G; g++) {
        probe_subject_key(gs, &d->map, g, buf, sizeof buf);
        int64_t u = probe_find_key(k.key, k.n, buf);
        BGFM_ASSERT(u >= 0);
        if (!(config_dataset_role(d->pipe, graphs_dataset(gs, g)) & BGFM_ROLE_DOWNSTREAM))
            continue;
        if (graphs_get_meta(gs, g)->label >= 0 || (all_targets && k.target[u]))
            inc[g] = 1, subj_in[u] = 1, nl++;
    }
    d->nl = nl;
    size_t z = (size_t)(nl ? nl : 1);
    d->g = bgfm_malloc(e, z * sizeof *d->g, "probe");
    d->atl = bgfm_malloc(e, z * sizeof *d->atl, "probe");
    d->subj = bgfm_malloc(e, z * sizeof *d->subj, "probe");
    d->win = bgfm_malloc(e, z * sizeof *d->win, "probe");
    lv = bgfm_malloc(e, z * sizeof *lv, "probe");
    kidx = bgfm_malloc(e, (size_t)(k.n ? k.n : 1) * sizeof *kidx, "probe");
    if (!d->g || !d->atl || !d->subj || !d->win || !lv || !kidx) {
        rc = BGFM_ENOMEM;
        goto done;
    }
    int64_t ns = 0;
    for (int64_t u = 0; u < k.n; u++) kidx[u] = subj_in[u] ? ns++ : -1;
    d->ns = ns;
    d->sid = bgfm_calloc(e, (size_t)(ns ? ns : 1), sizeof *d->sid, "probe");
    d->cls = bgfm_malloc(e, (size_t)(ns ? ns : 1) * sizeof *d->cls, "probe");
    if (!d->sid || !d->cls) {
        rc = BGFM_ENOMEM;
        goto done;
    }
    for (int64_t u = 0; u < k.n && !rc; u++)
        if (kidx[u] >= 0 && !(d->sid[kidx[u]] = bgfm_strdup(e, k.key[u]))) rc = BGFM_ENOMEM;
    for (int64_t g = 0, j = 0; g < G && !rc; g++) {
        if (!inc[g]) continue;
        const graphs_meta *m = graphs_get_meta(gs, g);
        probe_subject_key(gs, &d->map, g, buf, sizeof buf);
        d->g[j] = g;
        d->atl[j] = m->atlas;
        d->win[j] = m->window;
        d->subj[j] = kidx[probe_find_key(k.key, k.n, buf)];
        lv[j++] = m->label;
    }
    if (!rc) rc = collect_classes(d, lv, gpath, e);
    if (!rc) rc = collect_sites(d, gs, e);
    if (!rc) rc = count_label_sites(d, e);
    if (!rc) rc = collect_motion(d, gs, e);
    if (!rc && NT > 0) rc = collect_targets(d, &k, tab, tcol, e);
done:
    free(inc);
    free(subj_in);
    free(lv);
    free(kidx);
    keyset_free(&k);
    return rc;
}

/* ---- protocol ------------------------------------------------------------------------ */
static int read_pretrain_graphs(hid_t f, const char *ckpt, int64_t G, probe_data *d, bgfm_err *e) {
    int rank = 0;
    hsize_t dims[8];
    int rc = h5io_dims(f, "/pretrain_graphs", &rank, dims, e);
    if (rc) return rc;
    if (rank != 1)
        return bgfm_fail(e, BGFM_EDATA, "probe: /pretrain_graphs of %s has %d dimensions, 1 "
                         "expected", ckpt, rank);
    d->n_pre = (int64_t)dims[0];
    d->pre = bgfm_malloc(e, (size_t)(d->n_pre ? d->n_pre : 1) * sizeof *d->pre, "probe");
    if (!d->pre) return BGFM_ENOMEM;
    if ((rc = h5io_read_all(f, "/pretrain_graphs", H5T_NATIVE_INT64, d->n_pre, d->pre, e)))
        return rc;
    for (int64_t i = 0; i < d->n_pre; i++)
        if (d->pre[i] < 0 || d->pre[i] >= G || (i && d->pre[i] <= d->pre[i - 1]))
            return bgfm_fail(e, BGFM_EDATA, "probe: /pretrain_graphs of %s is not an ascending "
                             "list of graph indices below %lld (entry %lld is %lld); was the "
                             "checkpoint pretrained on another graph store?", ckpt, (long long)G,
                             (long long)i, (long long)d->pre[i]);
    d->has_pre = 1;
    return 0;
}

int probe_protocol(const char *ckpt, graphs_store *gs, probe_data *d, bgfm_err *e) {
    int64_t G = graphs_count(gs);
    snprintf(d->protocol, sizeof d->protocol, "transductive");
    hid_t f = h5io_open(MPI_COMM_SELF, ckpt, e);
    if (f < 0) return e->code ? e->code : BGFM_EIO;
    int rc = 0;
    if (h5io_attr_exists(f, NULL, "protocol")) {
        char *s = NULL;
        rc = h5io_attr_get_str(f, NULL, "protocol", &s, e);
        if (!rc && strcmp(s, "transductive") && strcmp(s, "strict"))
            rc = bgfm_fail(e, BGFM_EDATA, "probe: checkpoint %s has protocol '%s'; "
                           "'transductive' or 'strict' expected", ckpt, s);
        if (!rc) snprintf(d->protocol, sizeof d->protocol, "%s", s);
        free(s);
    }
    if (!rc && h5io_exists(f, "/pretrain_graphs")) rc = read_pretrain_graphs(f, ckpt, G, d, e);
    int rc2 = h5io_close(&f, ckpt, e);
    if (rc || rc2) return rc ? rc : rc2;
    if (!d->has_pre) { /* older checkpoints: every graph of the store */
        d->n_pre = G;
        d->pre = bgfm_malloc(e, (size_t)(G ? G : 1) * sizeof *d->pre, "probe");
        if (!d->pre) return BGFM_ENOMEM;
        for (int64_t g = 0; g < G; g++) d->pre[g] = g;
    }
    uint8_t *seen = bgfm_calloc(e, (size_t)(d->ns ? d->ns : 1), 1, "probe");
    if (!seen) return BGFM_ENOMEM;
    char buf[512];
    for (int64_t i = 0; i < d->n_pre; i++) {
        probe_subject_key(gs, &d->map, d->pre[i], buf, sizeof buf);
        int64_t s = probe_find_key(d->sid, d->ns, buf);
        if (s >= 0) seen[s] = 1;
    }
    int64_t first = -1;
    d->overlap = 0;
    for (int64_t s = 0; s < d->ns; s++)
        if (seen[s]) {
            d->overlap++;
            if (first < 0) first = s;
        }
    free(seen);
    if (!strcmp(d->protocol, "strict") && d->overlap > 0)
        return bgfm_fail(e, BGFM_EDATA, "probe: checkpoint %s was pretrained under protocol "
                         "'strict' but read graphs of %lld probed subject(s), e.g. '%s'%s; "
                         "pretrain without the probed subjects (or probe other subjects)", ckpt,
                         (long long)d->overlap, d->sid[first],
                         d->has_pre ? "" : " (it does not list /pretrain_graphs, so every graph "
                         "of the store counts as read)");
    return 0;
}

int probe_protocol_external(const char *ckpt, graphs_store *gs, probe_data *d, bgfm_err *e) {
    int64_t G = graphs_count(gs);
    snprintf(d->protocol, sizeof d->protocol, "transductive");
    hid_t f = h5io_open(MPI_COMM_SELF, ckpt, e);
    if (f < 0) return e->code ? e->code : BGFM_EIO;
    int rc = 0;
    char *s = NULL;
    if (h5io_attr_exists(f, NULL, "protocol") && !(rc = h5io_attr_get_str(f, NULL, "protocol", &s, e)))
        snprintf(d->protocol, sizeof d->protocol, "%s", s);
    free(s);
    d->has_pre = h5io_exists(f, "/pretrain_subjects");
    if (!rc && d->has_pre)
        rc = h5io_read_strings(f, "/pretrain_subjects", &d->pre_keys, &d->n_pre_keys, e);
    int rc2 = h5io_close(&f, ckpt, e);
    if (rc || rc2) return rc ? rc : rc2;
    d->n_pre = G; /* fc_pca is fitted on this store's graphs: the model's are elsewhere */
    d->pre = bgfm_malloc(e, (size_t)(G ? G : 1) * sizeof *d->pre, "probe");
    char **canon = bgfm_calloc(e, (size_t)d->n_pre_keys + 1, sizeof *canon, "probe");
    if (!d->pre || !canon) {
        free(canon);
        return BGFM_ENOMEM;
    }
    for (int64_t g = 0; g < G; g++) d->pre[g] = g;
    for (int64_t i = 0; i < d->n_pre_keys; i++)
        canon[i] = (char *)(uintptr_t)corpus_map_canon(&d->map, d->pre_keys[i]);
    qsort(canon, (size_t)d->n_pre_keys, sizeof *canon, cmp_str);
    d->overlap = 0;
    for (int64_t u = 0; u < d->ns; u++) d->overlap += probe_find_key(canon, d->n_pre_keys, d->sid[u]) >= 0;
    free(canon);
    return 0;
}

/* ---- embeddings and FC triangles ----------------------------------------------------- */
int probe_allreduce_sum(bgfm_ctx *ctx, double *v, int64_t n) {
    const int64_t chunk = 1 << 26;
    int rc = 0; /* every piece on every rank, whatever failed; then one agreement */
    for (int64_t o = 0; o < n; o += chunk) {
        int c = (int)(n - o < chunk ? n - o : chunk);
        int prc = BGFM_MPI(&ctx->err, MPI_Allreduce(MPI_IN_PLACE, v + o, c, MPI_DOUBLE, MPI_SUM,
                                                     ctx->comm));
        if (!rc) rc = prc;
    }
    return bgfm_ctx_agree(ctx, rc);
}

/* This rank's share (j = rank mod size) is embedded and copied, then summed. */
int probe_embed_all(bgfm_stage_run *r, graphs_store *gs, model *mp, model *mr, const int *amap,
                    probe_data *d) {
    bgfm_ctx *ctx = r->ctx;
    bgfm_err *e = &ctx->err;
    int64_t E = d->E = model_feature_dim(mp);
    int k = graphs_rwse_steps(gs);
    int64_t nl = d->nl;
    d->tri = bgfm_calloc(e, (size_t)d->A, sizeof *d->tri, "probe");
    d->fcoff = bgfm_calloc(e, (size_t)(nl ? nl : 1), sizeof *d->fcoff, "probe offsets");
    const int arc = bgfm_ctx_agree(ctx, d->tri && d->fcoff ? 0 : BGFM_ENOMEM); /* before the sums */
    if (arc) return arc;
    int Nb = 1;
    for (int a = 0; a < d->A; a++) {
        int64_t N = graphs_atlas_nodes(gs, a);
        d->tri[a] = N * (N - 1) / 2;
        if (N > Nb) Nb = (int)N;
    }
    int64_t off = 0;
    for (int64_t j = 0; j < nl; j++) d->fcoff[j] = off, off += d->tri[d->atl[j]];
    d->fclen = off;
    d->emb[0] = bgfm_calloc(e, (size_t)(nl * E + 1), sizeof(double), "embeddings");
    d->emb[1] = bgfm_calloc(e, (size_t)(nl * E + 1), sizeof(double), "embeddings");
    d->fcv = bgfm_calloc(e, (size_t)(off ? off : 1), sizeof(double), "FC features");
    float *fc = bgfm_malloc(e, (size_t)Nb * (size_t)Nb * sizeof *fc, "graph");
    uint8_t *adj = bgfm_malloc(e, (size_t)Nb * (size_t)Nb, "graph");
    float *rw = bgfm_malloc(e, (size_t)Nb * (size_t)(k ? k : 1) * sizeof *rw, "graph");
    float *out = bgfm_malloc(e, (size_t)(E ? E : 1) * sizeof *out, "graph");
    model_ws ws;
    memset(&ws, 0, sizeof ws);
    int rc = 0;
    if (!d->emb[0] || !d->emb[1] || !d->fcv || !fc || !adj || !rw || !out) rc = BGFM_ENOMEM;
    if (!rc) rc = model_ws_init(&ws, mp, 1, e);
    double items = 0;
    for (int64_t j = ctx->rank; j < nl && !rc; j += ctx->size) {
        int a = d->atl[j];
        int N = graphs_atlas_nodes(gs, a);
        if ((rc = graphs_read(gs, &d->g[j], 1, fc, adj, rw, e))) break;
        r->bytes_read += (double)N * N * 5.0 + (double)N * k * 4.0;
        model *ms[2] = {mp, mr};
        for (int t = 0; t < 2; t++) {
            probe_embed(ms[t], &ws, amap[a], N, fc, adj, rw, d->g[j], out);
            for (int64_t h = 0; h < E; h++) d->emb[t][j * E + h] = out[h];
        }
        double *dst = d->fcv + d->fcoff[j];
        for (int i = 0; i < N; i++)
            for (int c = i + 1; c < N; c++) *dst++ = fc[(int64_t)i * N + c];
        items++;
    }
    r->items = items;
    r->items_unit = "graphs";
    model_ws_free(&ws);
    free(fc);
    free(adj);
    free(rw);
    free(out);
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) return rc;
    rc = probe_allreduce_sum(ctx, d->emb[0], nl * E);
    if (!rc) rc = probe_allreduce_sum(ctx, d->emb[1], nl * E);
    if (!rc) rc = probe_allreduce_sum(ctx, d->fcv, d->fclen);
    return bgfm_ctx_agree(ctx, rc);
}

/* ---- fc_pca ------------------------------------------------------------------------- */
/* FC upper triangles (n, N(N-1)/2) of graphs idx[0..n-1] (one atlas of N nodes), float. */
static int read_triangles(graphs_store *gs, const int64_t *idx, int64_t n, int N, float *out,
                          double *bytes, bgfm_err *e) {
    const int64_t chunk = 16;
    int64_t D = (int64_t)N * (N - 1) / 2;
    float *fc = bgfm_malloc(e, (size_t)(chunk * N * N) * sizeof *fc, "graph");
    if (!fc) return BGFM_ENOMEM;
    int rc = 0;
    for (int64_t i0 = 0; i0 < n && !rc; i0 += chunk) {
        int c = (int)(n - i0 < chunk ? n - i0 : chunk);
        if ((rc = graphs_read(gs, idx + i0, c, fc, NULL, NULL, e))) break;
        *bytes += (double)c * N * N * 4.0;
        for (int q = 0; q < c; q++) {
            float *dst = out + (i0 + q) * D;
            const float *m = fc + (int64_t)q * N * N;
            for (int i = 0; i < N; i++)
                for (int j = i + 1; j < N; j++) *dst++ = m[(int64_t)i * N + j];
        }
    }
    free(fc);
    return rc;
}

/* Rank 0: fit atlas a's PCA, scores of its probed graphs into S (allocated here). */
static int pca_atlas(graphs_store *gs, probe_data *d, int a, int n_comp, const char *ckpt,
                     double **S, double *bytes, bgfm_err *e) {
    int64_t D = d->tri[a], nfit = 0, np = 0;
    int N = graphs_atlas_nodes(gs, a);
    for (int64_t i = 0; i < d->n_pre; i++) nfit += graphs_get_meta(gs, d->pre[i])->atlas == a;
    for (int64_t j = 0; j < d->nl; j++) np += d->atl[j] == a;
    d->pca_nfit[a] = nfit;
    if (nfit < 2)
        return bgfm_fail(e, BGFM_EDATA, "probe: fc_pca needs at least 2 pretraining graphs of "
                         "atlas '%s'; checkpoint %s lists %lld", graphs_atlas_name(gs, a), ckpt,
                         (long long)nfit);
    int k = n_comp;
    if (k > nfit - 1) k = (int)(nfit - 1);
    if (k > D) k = (int)D;
    int64_t *idx = bgfm_malloc(e, (size_t)nfit * sizeof *idx, "PCA");
    float *X = bgfm_malloc(e, (size_t)(nfit * D) * sizeof *X, "PCA fitting graphs");
    double *P = bgfm_malloc(e, (size_t)((np ? np : 1) * D) * sizeof *P, "PCA");
    pca_model m;
    memset(&m, 0, sizeof m);
    int rc = 0;
    *S = NULL;
    if (!idx || !X || !P) {
        rc = BGFM_ENOMEM;
        goto done;
    }
    for (int64_t i = 0, q = 0; i < d->n_pre; i++)
        if (graphs_get_meta(gs, d->pre[i])->atlas == a) idx[q++] = d->pre[i];
    if ((rc = read_triangles(gs, idx, nfit, N, X, bytes, e))) goto done;
    if ((rc = pca_fit(&m, X, nfit, D, k, e))) goto done;
    if (m.k == 0) {
        rc = bgfm_fail(e, BGFM_EDATA, "probe: fc_pca: the FC of the %lld pretraining graphs of "
                       "atlas '%s' does not vary", (long long)nfit, graphs_atlas_name(gs, a));
        goto done;
    }
    for (int64_t j = 0, q = 0; j < d->nl; j++)
        if (d->atl[j] == a) memcpy(P + q++ * D, d->fcv + d->fcoff[j], (size_t)D * sizeof *P);
    *S = bgfm_malloc(e, (size_t)((np ? np : 1) * m.k) * sizeof **S, "PCA scores");
    if (!*S) {
        rc = BGFM_ENOMEM;
        goto done;
    }
    if ((rc = pca_transform(&m, P, np, *S, e))) goto done;
    double kept = 0;
    for (int c = 0; c < m.k; c++) kept += m.var[c];
    d->pk[a] = m.k;
    d->pca_share[a] = m.total_var > 0 ? kept / m.total_var : (double)NAN;
done:
    pca_free(&m);
    free(idx);
    free(X);
    free(P);
    return rc;
}

int probe_pca_features(bgfm_stage_run *r, graphs_store *gs, probe_data *d, int n_comp,
                       const char *ckpt) {
    bgfm_ctx *ctx = r->ctx;
    bgfm_err *e = &ctx->err;
    int A = d->A, rc = 0;
    d->pk = bgfm_calloc(e, (size_t)A, sizeof *d->pk, "PCA");
    d->pca_nfit = bgfm_calloc(e, (size_t)A, sizeof *d->pca_nfit, "PCA");
    d->pca_share = bgfm_calloc(e, (size_t)A, sizeof *d->pca_share, "PCA");
    d->pcoff = bgfm_calloc(e, (size_t)(d->nl ? d->nl : 1), sizeof *d->pcoff, "PCA");
    double **S = bgfm_calloc(e, (size_t)A, sizeof *S, "PCA");
    if (!d->pk || !d->pca_nfit || !d->pca_share || !d->pcoff || !S) rc = BGFM_ENOMEM;
    for (int a = 0; a < A && !rc && ctx->rank == 0; a++)
        rc = pca_atlas(gs, d, a, n_comp, ckpt, &S[a], &r->bytes_read, e);
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc) rc = BGFM_MPI(e, MPI_Bcast(d->pk, A, MPI_INT, 0, ctx->comm));
    if (!rc) {
        int64_t off = 0;
        for (int64_t j = 0; j < d->nl; j++) d->pcoff[j] = off, off += d->pk[d->atl[j]];
        d->pclen = off;
        d->pcv = bgfm_calloc(e, (size_t)(off ? off : 1), sizeof *d->pcv, "PCA scores");
        if (!d->pcv) rc = BGFM_ENOMEM;
    }
    if (!rc && ctx->rank == 0) {
        int64_t *q = bgfm_calloc(e, (size_t)A, sizeof *q, "PCA");
        if (!q) rc = BGFM_ENOMEM;
        for (int64_t j = 0; j < d->nl && !rc; j++) {
            int a = d->atl[j];
            memcpy(d->pcv + d->pcoff[j], S[a] + q[a]++ * d->pk[a], (size_t)d->pk[a] * sizeof(double));
        }
        free(q);
    }
    for (int a = 0; S && a < A; a++) free(S[a]);
    free(S);
    rc = bgfm_ctx_agree(ctx, rc);
    const int64_t chunk = 1 << 26;
    for (int64_t o = 0; !rc && o < d->pclen; o += chunk) {
        int c = (int)(d->pclen - o < chunk ? d->pclen - o : chunk);
        rc = bgfm_ctx_agree(ctx, BGFM_MPI(e, MPI_Bcast(d->pcv + o, c, MPI_DOUBLE, 0, ctx->comm)));
    }
    return bgfm_ctx_agree(ctx, rc);
}

/* ---- views -------------------------------------------------------------------------- */
void probe_view_free(probe_view *v) {
    free(v->subj);
    free(v->rows);
    free(v->present);
    memset(v, 0, sizeof *v);
}

typedef struct swa {
    int64_t subj, win, j;
    int32_t atl;
} swa;
static int cmp_swa(const void *a, const void *b) {
    const swa *x = a, *y = b;
    if (x->subj != y->subj) return x->subj < y->subj ? -1 : 1;
    if (x->win != y->win) return x->win < y->win ? -1 : 1;
    return (x->atl > y->atl) - (x->atl < y->atl);
}

int probe_view_make(const probe_data *d, graphs_store *gs, int atlas, probe_view *v, bgfm_err *e) {
    memset(v, 0, sizeof *v);
    int64_t nl = d->nl;
    swa *l = bgfm_malloc(e, (size_t)(nl ? nl : 1) * sizeof *l, "views");
    if (!l) return BGFM_ENOMEM;
    int64_t m = 0;
    for (int64_t j = 0; j < nl; j++)
        if (atlas < 0 || d->atl[j] == atlas) l[m++] = (swa){d->subj[j], d->win[j], j, d->atl[j]};
    qsort(l, (size_t)m, sizeof *l, cmp_swa);
    v->nrow = atlas < 0 ? d->A : 1;
    v->subj = bgfm_malloc(e, (size_t)(m ? m : 1) * sizeof *v->subj, "views");
    v->rows = bgfm_malloc(e, (size_t)(m ? m : 1) * (size_t)v->nrow * sizeof *v->rows, "views");
    v->present = bgfm_calloc(e, (size_t)(d->ns ? d->ns : 1), 1, "views");
    if (!v->subj || !v->rows || !v->present) {
        free(l);
        return BGFM_ENOMEM;
    }
    snprintf(v->name, sizeof v->name, "%s", atlas < 0 ? "pooled" : graphs_atlas_name(gs, atlas));
    int64_t n = 0;
    for (int64_t i = 0; i < m;) {
        int64_t b = i;
        while (b < m && l[b].subj == l[i].subj && l[b].win == l[i].win) b++;
        /* a pooled sample needs exactly one graph of every atlas */
        int full = (b - i) == v->nrow;
        for (int64_t q = i; full && q < b; q++) full = l[q].atl == (atlas < 0 ? q - i : atlas);
        if (full) {
            v->subj[n] = l[i].subj;
            v->present[l[i].subj] = 1;
            for (int q = 0; q < v->nrow; q++) v->rows[n * v->nrow + q] = l[i + q].j;
            n++;
        }
        i = b;
    }
    v->n = n;
    free(l);
    v->D[0] = v->D[1] = d->E * v->nrow;
    v->D[2] = v->D[3] = 0;
    v->D[PROBE_FEAT_SITE] = d->n_sites > 0 ? d->n_sites : 1; /* once per sample, any view */
    v->D[PROBE_FEAT_MOTION] = 1;
    for (int a = 0; a < d->A; a++)
        if (atlas < 0 || a == atlas) v->D[2] += d->tri[a], v->D[3] += d->pk[a];
    return 0;
}

double *probe_view_matrix(const probe_data *d, const probe_view *v, int t, bgfm_err *e) {
    int64_t D = v->D[t];
    double *X = bgfm_malloc(e, (size_t)((v->n ? v->n : 1) * (D ? D : 1)) * sizeof *X, "features");
    if (!X) return NULL;
    for (int64_t i = 0; i < v->n; i++) {
        double *x = X + i * D;
        if (t == PROBE_FEAT_SITE) { /* one-hot of the subject's site; zeros when unknown */
            int64_t k = d->site[v->subj[i]];
            for (int64_t c = 0; c < D; c++) x[c] = c == k ? 1.0 : 0.0;
            continue;
        }
        if (t == PROBE_FEAT_MOTION) { /* every graph of a sample is of one scan */
            double fd = d->fd[v->rows[i * v->nrow]];
            x[0] = isnan(fd) ? d->fd_fill : fd;
            continue;
        }
        for (int q = 0; q < v->nrow; q++) {
            int64_t j = v->rows[i * v->nrow + q], len;
            const double *src;
            if (t < 2) src = d->emb[t] + j * d->E, len = d->E;
            else if (t == 2) src = d->fcv + d->fcoff[j], len = d->tri[d->atl[j]];
            else src = d->pcv + d->pcoff[j], len = d->pk[d->atl[j]];
            memcpy(x, src, (size_t)len * sizeof *x);
            x += len;
        }
    }
    return X;
}

double *probe_subject_means(const probe_view *v, int64_t ns, const double *X, int64_t D,
                            bgfm_err *e) {
    double *M = bgfm_calloc(e, (size_t)((ns ? ns : 1) * (D ? D : 1)), sizeof *M, "subject means");
    int64_t *cnt = bgfm_calloc(e, (size_t)(ns ? ns : 1), sizeof *cnt, "subject means");
    if (!M || !cnt) {
        free(M);
        free(cnt);
        return NULL;
    }
    for (int64_t i = 0; i < v->n; i++) {
        int64_t s = v->subj[i];
        cnt[s]++;
        for (int64_t c = 0; c < D; c++) M[s * D + c] += X[i * D + c];
    }
    for (int64_t s = 0; s < ns; s++)
        if (cnt[s])
            for (int64_t c = 0; c < D; c++) M[s * D + c] /= (double)cnt[s];
    free(cnt);
    return M;
}
