/* corpus.c: the pipeline's dataset(s) as one image list (inputs.bids, or every entry of
 * inputs.datasets scanned, filtered and selected by entities) and the /subjects group of
 * timeseries.h5 written from it. Not the folder scan (bids.c) nor the run (run.c). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/corpus.h"
#include "bgfm/h5io.h"
#include "bgfm/log.h"

const bids_table *corpus_table(const corpus *c, int d) {
    return c->tabs ? &c->tabs[d] : &c->all.participants;
}

double corpus_t_r(const corpus *c, int64_t i, double stage_t_r) {
    if (c->cfg && c->cfg[c->set[i]].t_r > 0) return c->cfg[c->set[i]].t_r;
    return stage_t_r;
}

void corpus_free(corpus *c) {
    if (!c) return;
    bids_dataset_free(&c->all);
    for (int d = 0; c->tabs && d < c->n_sets; d++) bids_table_free(&c->tabs[d]);
    free(c->tabs);
    free(c->set);
    memset(c, 0, sizeof *c);
}

/* A filter "COLUMN OP VALUE" split into its parts (trimmed, in buffers of size n). */
static int filter_split(const char *f, char *col, char *val, size_t n, int *neq) {
    const char *op = strstr(f, "!=");
    *neq = op != NULL;
    if (!op) op = strstr(f, "==");
    if (!op) return -1;
    const char *a = f, *b = op;
    while (*a == ' ') a++;
    while (b > a && b[-1] == ' ') b--;
    snprintf(col, n, "%.*s", (int)(b - a), a);
    const char *v = op + 2;
    while (*v == ' ') v++;
    snprintf(val, n, "%s", v);
    size_t k = strlen(val);
    while (k && val[k - 1] == ' ') val[--k] = '\0';
    return 0;
}

/* Does row r of t pass the dataset's filter? -1 (error recorded) when the column is absent. */
static int filter_pass(const bgfm_dataset_cfg *d, const bids_table *t, int64_t r, bgfm_err *e) {
    if (!d->filter) return 1;
    char col[256], val[256];
    int neq = 0;
    int ok = filter_split(d->filter, col, val, sizeof col, &neq);
    BGFM_ASSERT(ok == 0); /* config.c checked the syntax */
    for (int k = 0; k < t->n_cols; k++) {
        if (strcmp(t->cols[k], col)) continue;
        const char *s = t->cells[r * t->n_cols + k];
        int eq = !strcmp(val, "n/a") ? bids_cell_missing(s) : !strcmp(s, val);
        return eq != neq;
    }
    bgfm_fail(e, BGFM_EDATA, "dataset '%s': the filter's column '%s' is not a column of %s; "
              "fix the dataset's filter", d->name, col, t->path);
    return -1;
}

/* Does the image's file name carry every selected entity (_key-value_ or _key-value.)? */
static int entities_pass(const bgfm_dataset_cfg *d, const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (int k = 0; k < BGFM_N_ENTITIES; k++) {
        if (!d->entity[k]) continue;
        char want[160];
        snprintf(want, sizeof want, "_%s-%s_", bgfm_entity_name(k), d->entity[k]);
        if (!strstr(base, want)) return 0;
    }
    return 1;
}

/* Move the kept images and the skip records of one dataset's scan into c. */
static int corpus_add(corpus *c, int d, bids_dataset *one, bgfm_err *e) {
    const bgfm_dataset_cfg *cfg = &c->cfg[d];
    int64_t n0 = c->all.n_images, add = one->n_images, kept = 0;
    bids_image *ni = bgfm_realloc(e, c->all.images, (size_t)(n0 + add + 1) * sizeof *ni,
                                  "corpus images");
    int32_t *ns = ni ? bgfm_realloc(e, c->set, (size_t)(n0 + add + 1) * sizeof *ns,
                                    "corpus image datasets")
                     : NULL;
    if (ni) c->all.images = ni;
    if (ns) c->set = ns;
    if (!ni || !ns) return BGFM_ENOMEM;
    int rc = 0;
    for (int64_t i = 0; i < one->n_images && !rc; i++) {
        bids_image *im = &one->images[i];
        int pass = filter_pass(cfg, &one->participants, im->row, e);
        if (pass < 0) rc = e->code;
        if (pass <= 0 || !entities_pass(cfg, im->path)) continue;
        c->all.images[n0 + kept] = *im;
        c->set[n0 + kept] = d;
        memset(im, 0, sizeof *im); /* moved */
        kept++;
    }
    c->all.n_images = n0 + kept;
    for (int64_t k = 0; k < one->n_skipped && !rc; k++)
        rc = bids_skip_add(&c->all, one->skipped[k].image, one->skipped[k].reason, e);
    if (!rc && kept == 0)
        rc = bgfm_fail(e, BGFM_EDATA, "dataset '%s' (%s): none of its %lld image(s) passes the "
                       "dataset's filter and entity selection (filter %s, task %s, space %s, desc "
                       "%s, run %s); fix the selection or remove the dataset", cfg->name,
                       cfg->bids, (long long)one->n_images, cfg->filter ? cfg->filter : "unset",
                       cfg->entity[0] ? cfg->entity[0] : "any", cfg->entity[1] ? cfg->entity[1] : "any",
                       cfg->entity[2] ? cfg->entity[2] : "any", cfg->entity[3] ? cfg->entity[3] : "any");
    if (!rc) {
        c->tabs[d] = one->participants;
        memset(&one->participants, 0, sizeof one->participants);
    }
    return rc;
}

int corpus_scan(const bgfm_pipeline *p, int skip, corpus *c, bgfm_err *e) {
    memset(c, 0, sizeof *c);
    if (p->n_datasets == 0) {
        int rc = bids_scan(p->bids, p->participants, skip, &c->all, e);
        if (rc) return rc;
        c->n_sets = 1;
        c->set = bgfm_calloc(e, (size_t)c->all.n_images + 1, sizeof *c->set, "image datasets");
        if (!c->set) {
            corpus_free(c);
            return BGFM_ENOMEM;
        }
        return 0;
    }
    c->cfg = p->datasets;
    c->tabs = bgfm_calloc(e, (size_t)p->n_datasets, sizeof *c->tabs, "participants tables");
    c->all.root = bgfm_strdup(e, "inputs.datasets");
    int rc = c->tabs && c->all.root ? 0 : BGFM_ENOMEM;
    if (!rc) c->n_sets = p->n_datasets;
    for (int d = 0; d < p->n_datasets && !rc; d++) {
        bids_dataset one;
        bgfm_err le;
        bgfm_err_clear(&le);
        rc = bids_scan(p->datasets[d].bids, p->datasets[d].participants, skip, &one, &le);
        if (rc) {
            bgfm_fail(e, rc, "dataset '%s': %s", p->datasets[d].name, le.msg);
            break;
        }
        rc = corpus_add(c, d, &one, e);
        bids_dataset_free(&one);
    }
    if (rc) corpus_free(c);
    return rc;
}

/* ---- /subjects ---- */

static int parse_num(const char *s, double *v) {
    char *end = NULL;
    errno = 0;
    *v = strtod(s, &end);
    return end != s && *end == '\0' && errno == 0 && isfinite(*v);
}

static int cmp_cstr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int col_find(const bids_table *t, const char *name) {
    for (int k = 0; name && k < t->n_cols; k++)
        if (!strcmp(t->cols[k], name)) return k;
    return -1;
}

/* Output rows of the S kept images: their dataset and table row. */
typedef struct srows {
    int64_t S;
    int32_t *set;
    int64_t *trow;
} srows;

static const char *cell(const corpus *c, const srows *w, int64_t r, int col) {
    const bids_table *t = corpus_table(c, w->set[r]);
    return col >= 0 ? t->cells[w->trow[r] * t->n_cols + col] : "";
}

static const char *label_name(const corpus *c, const bgfm_pipeline *p, int d) {
    return c->cfg ? c->cfg[d].label_column : p->label_column;
}

/* A label cell of dataset d through its label_map ("VALUE=LABEL"; unlisted values kept). */
static const char *label_value(const corpus *c, int d, const char *s) {
    size_t n = strlen(s);
    for (int k = 0; c->cfg && k < c->cfg[d].n_label_map; k++) {
        const char *m = c->cfg[d].label_map[k], *eq = strchr(m, '=');
        if ((size_t)(eq - m) == n && !strncmp(m, s, n)) return eq + 1;
    }
    return s;
}

/* /subjects/label: integer-valued numeric columns as they are, else the index into the
 * sorted unique non-missing values of every table's label column; missing -> -1. */
static int write_labels(const corpus *c, const bgfm_pipeline *p, bgfm_ctx *ctx, hid_t f,
                        const srows *w, const char **strs, int64_t *lab, bgfm_err *e) {
    int lc[256], is_int = 0, same = 1;
    BGFM_ASSERT(c->n_sets <= 256);
    for (int d = 0; d < c->n_sets; d++) {
        lc[d] = col_find(corpus_table(c, d), label_name(c, p, d));
        if (lc[d] >= 0) is_int = 1;
        if (d && strcmp(label_name(c, p, d) ? label_name(c, p, d) : "",
                        label_name(c, p, 0) ? label_name(c, p, 0) : ""))
            same = 0;
    }
    int64_t nclass = 0;
    for (int d = 0; d < c->n_sets; d++) {
        const bids_table *t = corpus_table(c, d);
        for (int64_t r = 0; lc[d] >= 0 && r < t->n_rows; r++) {
            const char *s = label_value(c, d, t->cells[r * t->n_cols + lc[d]]);
            double v;
            if (bids_cell_missing(s)) continue;
            if (!parse_num(s, &v) || v != floor(v) || fabs(v) > 9.0e15) is_int = 0;
            strs[nclass++] = s;
        }
    }
    if (!is_int) {
        qsort(strs, (size_t)nclass, sizeof *strs, cmp_cstr);
        int64_t u = 0;
        for (int64_t k = 0; k < nclass; k++)
            if (u == 0 || strcmp(strs[k], strs[u - 1])) strs[u++] = strs[k];
        nclass = u;
    }
    int any = 0;
    for (int d = 0; d < c->n_sets; d++) any |= lc[d] >= 0;
    for (int64_t r = 0; r < w->S; r++) {
        lab[r] = -1;
        const char *s = label_value(c, w->set[r], cell(c, w, r, lc[w->set[r]]));
        if (lc[w->set[r]] < 0 || bids_cell_missing(s)) continue;
        double v = 0;
        if (is_int && parse_num(s, &v)) {
            lab[r] = (int64_t)v;
        } else {
            const char **hit = bsearch(&s, strs, (size_t)nclass, sizeof *strs, cmp_cstr);
            BGFM_ASSERT(hit != NULL);
            lab[r] = hit - strs;
        }
    }
    hsize_t dims[1] = {(hsize_t)w->S};
    int rc = h5io_write_small(f, "/subjects/label", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, dims, lab,
                              0, e);
    if (!rc && any && !is_int) {
        size_t len = 1;
        for (int64_t k = 0; k < nclass; k++) len += strlen(strs[k]) + 1;
        char *cl = bgfm_calloc(e, len, 1, "classes");
        rc = bgfm_ctx_agree(ctx, cl ? 0 : e->code); /* together into the attribute's write */
        for (int64_t k = 0; !rc && k < nclass; k++) {
            if (k) strcat(cl, ",");
            strcat(cl, strs[k]);
        }
        if (!rc) rc = h5io_attr_set_str(f, "/subjects/label", "classes", cl, e);
        free(cl);
    }
    char colattr[4096] = "";
    for (int d = 0; d < (same ? 1 : c->n_sets); d++) {
        size_t o = strlen(colattr);
        if (same) snprintf(colattr, sizeof colattr, "%s", label_name(c, p, 0) ? label_name(c, p, 0) : "");
        else snprintf(colattr + o, sizeof colattr - o, "%s%s:%s", d ? "," : "", c->cfg[d].name,
                      c->cfg[d].label_column);
    }
    if (!rc) rc = h5io_attr_set_str(f, "/subjects/label", "column", colattr, e);
    for (int d = 0; d < c->n_sets; d++)
        if (lc[d] < 0) {
            if (c->cfg)
                log_warn(ctx, "parcellate: dataset '%s': %s has no column '%s' (label_column); "
                         "its labels are -1", c->cfg[d].name, corpus_table(c, d)->path,
                         c->cfg[d].label_column);
            else
                log_warn(ctx, "parcellate: %s has no column '%s' (inputs.label_column); every "
                         "label is -1", corpus_table(c, d)->path,
                         p->label_column ? p->label_column : "");
        }
    return rc;
}

/* /subjects/columns/<col>: the union of the tables' columns, in order of first appearance. */
static int write_columns(const corpus *c, hid_t f, const srows *w, const char **strs,
                         double *num, bgfm_err *e) {
    hsize_t dims[1] = {(hsize_t)w->S};
    int rc = 0;
    for (int d = 0; d < c->n_sets && !rc; d++) {
        const bids_table *t = corpus_table(c, d);
        for (int k = 0; k < t->n_cols && !rc; k++) {
            int seen = 0;
            for (int q = 0; q < d && !seen; q++) seen = col_find(corpus_table(c, q), t->cols[k]) >= 0;
            if (seen) continue;
            int numeric = 1;
            for (int64_t r = 0; r < w->S; r++) {
                const char *s = cell(c, w, r, col_find(corpus_table(c, w->set[r]), t->cols[k]));
                double v;
                if (bids_cell_missing(s)) num[r] = NAN;
                else if (parse_num(s, &v)) num[r] = v;
                else numeric = 0;
                strs[r] = s;
            }
            char path[600], name[512];
            snprintf(name, sizeof name, "%s", t->cols[k]);
            for (char *q = name; *q; q++)
                if (*q == '/' || *q == '.') *q = '_';
            snprintf(path, sizeof path, "/subjects/columns/%s", name);
            if (numeric)
                rc = h5io_write_small(f, path, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, dims, num, 0, e);
            else
                rc = h5io_write_strings(f, path, strs, w->S, 0, e);
        }
    }
    return rc;
}

/* With inputs.datasets: /subjects/dataset, /subjects/site and the root attribute datasets. */
static int write_sets(const corpus *c, hid_t f, const srows *w, const char **strs, bgfm_err *e) {
    for (int64_t r = 0; r < w->S; r++) strs[r] = c->cfg[w->set[r]].name;
    int rc = h5io_write_strings(f, "/subjects/dataset", strs, w->S, 0, e);
    for (int64_t r = 0; r < w->S; r++) {
        const bgfm_dataset_cfg *d = &c->cfg[w->set[r]];
        const char *s = cell(c, w, r, col_find(corpus_table(c, w->set[r]), d->site_column));
        strs[r] = bids_cell_missing(s) ? "" : s;
    }
    if (!rc) rc = h5io_write_strings(f, "/subjects/site", strs, w->S, 0, e);
    char names[4096] = "";
    for (int d = 0; d < c->n_sets; d++) {
        size_t o = strlen(names);
        snprintf(names + o, sizeof names - o, "%s%s", d ? "," : "", c->cfg[d].name);
    }
    if (!rc) rc = h5io_attr_set_str(f, NULL, "datasets", names, e);
    return rc;
}

int corpus_write_subjects(const corpus *c, const bgfm_pipeline *p, bgfm_ctx *ctx, hid_t f,
                          int64_t S, const int64_t *row, const int64_t *T, const double *tr,
                          bgfm_err *e) {
    int64_t n = c->all.n_images, rows_all = S + 1;
    for (int d = 0; d < c->n_sets; d++) rows_all += corpus_table(c, d)->n_rows;
    srows w = {S, NULL, NULL};
    const char **ids = bgfm_calloc(e, (size_t)S + 1, sizeof *ids, "ids");
    const char **img = bgfm_calloc(e, (size_t)S + 1, sizeof *img, "paths");
    int64_t *nv = bgfm_calloc(e, (size_t)S + 1, sizeof *nv, "n_volumes");
    double *trs = bgfm_calloc(e, (size_t)S + 1, sizeof *trs, "t_r");
    int64_t *lab = bgfm_calloc(e, (size_t)S + 1, sizeof *lab, "labels");
    double *num = bgfm_calloc(e, (size_t)S + 1, sizeof *num, "column");
    const char **strs = bgfm_calloc(e, (size_t)rows_all, sizeof *strs, "column");
    w.set = bgfm_calloc(e, (size_t)S + 1, sizeof *w.set, "rows");
    w.trow = bgfm_calloc(e, (size_t)S + 1, sizeof *w.trow, "rows");
    /* a rank short of memory here must not leave the others in the collective writes */
    int rc = bgfm_ctx_agree(ctx, ids && img && nv && trs && lab && num && strs && w.set && w.trow
                                     ? 0 : e->code);
    for (int64_t i = 0; i < n && !rc; i++) {
        int64_t r = row[i];
        if (r < 0) continue;
        const bids_table *t = corpus_table(c, c->set[i]);
        ids[r] = t->cells[c->all.images[i].row * t->n_cols + t->id_col];
        img[r] = c->all.images[i].path;
        nv[r] = T[i];
        trs[r] = tr[i];
        w.set[r] = c->set[i];
        w.trow[r] = c->all.images[i].row;
    }
    hsize_t dims[1] = {(hsize_t)S};
    if (!rc) rc = h5io_write_strings(f, "/subjects/participant_id", ids, S, 0, e);
    if (!rc) rc = h5io_write_strings(f, "/subjects/image", img, S, 0, e);
    if (!rc)
        rc = h5io_write_small(f, "/subjects/n_volumes", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, dims,
                              nv, 0, e);
    if (!rc)
        rc = h5io_write_small(f, "/subjects/t_r", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, dims, trs,
                              0, e);
    if (!rc) rc = write_labels(c, p, ctx, f, &w, strs, lab, e);
    if (!rc) rc = write_columns(c, f, &w, strs, num, e);
    if (!rc && c->cfg) rc = write_sets(c, f, &w, strs, e);
    free(ids);
    free(img);
    free(nv);
    free(trs);
    free(lab);
    free(num);
    free(strs);
    free(w.set);
    free(w.trow);
    return rc;
}

/* ---- the subject map ---- */

int corpus_tables_read(const bgfm_pipeline *p, bids_table **tabs, bgfm_err *e) {
    *tabs = bgfm_calloc(e, (size_t)p->n_datasets + 1, sizeof **tabs, "participants tables");
    if (!*tabs) return BGFM_ENOMEM;
    for (int d = 0; d < p->n_datasets; d++) {
        int rc = bids_table_read(p->datasets[d].participants, &(*tabs)[d], e);
        if (rc) {
            corpus_tables_free(*tabs, d);
            *tabs = NULL;
            return rc;
        }
    }
    return 0;
}

void corpus_tables_free(bids_table *tabs, int n) {
    for (int d = 0; tabs && d < n; d++) bids_table_free(&tabs[d]);
    free(tabs);
}

void corpus_map_free(corpus_map *m) {
    if (!m) return;
    for (int64_t i = 0; m->key && i < m->n; i++) free(m->key[i]);
    free(m->key);
    free(m->canon);
    memset(m, 0, sizeof *m);
}

static int cmp_key(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

const char *corpus_map_canon(const corpus_map *m, const char *key) {
    if (!m || m->n == 0) return key;
    char *const *hit = bsearch(&key, m->key, (size_t)m->n, sizeof *m->key, cmp_key);
    return hit ? m->canon[hit - m->key] : key;
}

/* One side of a row, "DATASET/PARTICIPANT", as "<dataset>/<id as its table writes it>". */
static int map_side(const char *path, int64_t line, const char *s, const bgfm_pipeline *p,
                    const bids_table *tabs, char **out, bgfm_err *e) {
    const char *slash = strchr(s, '/');
    int d = -1;
    for (int k = 0; slash && k < p->n_datasets; k++)
        if (strlen(p->datasets[k].name) == (size_t)(slash - s) &&
            !strncmp(p->datasets[k].name, s, (size_t)(slash - s)))
            d = k;
    if (!slash || d < 0) {
        char names[1024] = "";
        for (int k = 0; k < p->n_datasets; k++) {
            size_t o = strlen(names);
            snprintf(names + o, sizeof names - o, "%s%s", k ? ", " : "", p->datasets[k].name);
        }
        return bgfm_fail(e, BGFM_EDATA, "%s:%lld: '%s' names no dataset of inputs.datasets "
                         "(write DATASET/PARTICIPANT_ID with DATASET one of: %s)", path,
                         (long long)line, s, names);
    }
    const bids_table *t = &tabs[d];
    int64_t r = bids_table_find(t, slash + 1);
    if (r < 0)
        return bgfm_fail(e, BGFM_EDATA, "%s:%lld: '%s': dataset '%s' has no participant '%s' in "
                         "%s; fix the map or the table", path, (long long)line, s,
                         p->datasets[d].name, slash + 1, t->path);
    const char *id = t->cells[r * t->n_cols + t->id_col];
    size_t n = strlen(p->datasets[d].name) + strlen(id) + 2;
    *out = bgfm_malloc(e, n, "subject map");
    if (!*out) return BGFM_ENOMEM;
    snprintf(*out, n, "%s/%s", p->datasets[d].name, id);
    return 0;
}

static int64_t uf_find(int64_t *par, int64_t i) {
    while (par[i] != i) i = par[i] = par[par[i]];
    return i;
}

/* Groups of the keys: union by the smaller index, so a root is its group's smallest key. */
static int map_groups(corpus_map *m, char **pairs, int64_t np, bgfm_err *e) {
    int64_t n = 2 * np, u = 0;
    char **k = bgfm_malloc(e, (size_t)(n + 1) * sizeof *k, "subject map");
    int64_t *par = bgfm_malloc(e, (size_t)(n + 1) * sizeof *par, "subject map");
    if (!k || !par) {
        free(k);
        free(par);
        return BGFM_ENOMEM;
    }
    memcpy(k, pairs, (size_t)n * sizeof *k);
    qsort(k, (size_t)n, sizeof *k, cmp_key);
    for (int64_t i = 0; i < n; i++)
        if (!u || strcmp(k[i], k[u - 1])) k[u++] = k[i];
    for (int64_t i = 0; i < u; i++) par[i] = i;
    for (int64_t q = 0; q < np; q++) {
        char *const *a = bsearch(&pairs[2 * q], k, (size_t)u, sizeof *k, cmp_key);
        char *const *b = bsearch(&pairs[2 * q + 1], k, (size_t)u, sizeof *k, cmp_key);
        BGFM_ASSERT(a && b);
        int64_t ra = uf_find(par, a - k), rb = uf_find(par, b - k);
        if (ra < rb) par[rb] = ra;
        else par[ra] = rb;
    }
    m->canon = bgfm_malloc(e, (size_t)(u + 1) * sizeof *m->canon, "subject map");
    m->key = bgfm_malloc(e, (size_t)(u + 1) * sizeof *m->key, "subject map");
    int rc = m->canon && m->key ? 0 : BGFM_ENOMEM;
    for (int64_t i = 0; !rc && i < u; i++) {
        m->key[i] = bgfm_strdup(e, k[i]);
        if (!m->key[i]) rc = BGFM_ENOMEM;
        m->n = i + 1;
    }
    for (int64_t i = 0; !rc && i < u; i++) m->canon[i] = m->key[uf_find(par, i)];
    free(k);
    free(par);
    return rc;
}

int corpus_map_read(const char *path, const bgfm_pipeline *p, const bids_table *tabs,
                    corpus_map *m, bgfm_err *e) {
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "r");
    if (!f)
        return bgfm_fail(e, errno == ENOENT ? BGFM_EDATA : BGFM_EIO, "cannot open the subject "
                         "map %s: %s", path, strerror(errno));
    char line[4096];
    int64_t ln = 0, np = 0, cap = 0;
    char **pairs = NULL;
    int rc = 0, header = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        ln++;
        size_t l = strcspn(line, "\r\n");
        line[l] = '\0';
        if (l == 0 || line[0] == '#') continue;
        char *tab = strchr(line, '\t');
        if (!tab || strchr(tab + 1, '\t') || tab == line || !tab[1]) {
            rc = bgfm_fail(e, BGFM_EDATA, "%s:%lld: expected two tab-separated fields "
                           "(DATASET/PARTICIPANT_ID, DATASET/PARTICIPANT_ID)", path, (long long)ln);
            break;
        }
        *tab = '\0';
        if (!header) { /* the first row names the two columns */
            header = 1;
            continue;
        }
        if (np == cap) {
            cap = cap ? 2 * cap : 16;
            char **nv = bgfm_realloc(e, pairs, (size_t)(2 * cap) * sizeof *nv, "subject map pairs");
            if (!nv) {
                rc = BGFM_ENOMEM;
                break;
            }
            pairs = nv;
        }
        pairs[2 * np] = pairs[2 * np + 1] = NULL;
        rc = map_side(path, ln, line, p, tabs, &pairs[2 * np], e);
        if (!rc) rc = map_side(path, ln, tab + 1, p, tabs, &pairs[2 * np + 1], e);
        np++;
    }
    if (!rc && ferror(f)) rc = bgfm_fail(e, BGFM_EIO, "read error on %s", path);
    fclose(f);
    if (!rc && !header)
        rc = bgfm_fail(e, BGFM_EDATA, "%s: empty; it needs a header row of two column names and "
                       "one row per pair of the same person", path);
    if (!rc) rc = map_groups(m, pairs, np, e);
    for (int64_t i = 0; pairs && i < 2 * np; i++) free(pairs[i]);
    free(pairs);
    if (rc) corpus_map_free(m);
    return rc;
}
