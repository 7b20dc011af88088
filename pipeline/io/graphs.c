/* graphs.c: the graph store: shard and index writers (one process per file), the
 * reader (any rank, any list of graphs, one hyperslab per run), prefetch, inspect.
 * Not the connectivity math (stages/connectivity/) and not collective: no MPI here. */
#include "bgfm/graphs.h"

#include <hdf5.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bgfm/h5io.h"
#include "bgfm/strlist.h"
#include "bgfm/json.h"

#define GRAPHS_FORMAT_VERSION 1
#define GRAPHS_SLOTS 8 /* shard files kept open by a reader (least recently used out) */

enum { DS_FC, DS_ADJ, DS_RWSE, DS_FLAG, DS_N };
static const char *const ds_names[DS_N] = {"fc", "adj", "rwse", "flagged"};

/* ---- writing: one process per file (h5io on MPI_COMM_SELF), no time stamps ------ */

/* A small dataset written whole (1-D, n elements). */
static int write_small(hid_t f, const char *path, hid_t ftype, hid_t mtype, hsize_t n,
                       const void *buf, bgfm_err *e) {
    hsize_t dims[1] = {n};
    return h5io_write_small(f, path, ftype, mtype, 1, dims, buf, 0, e);
}

static int write_info_attrs(hid_t f, const graphs_info *in, const char *format, bgfm_err *e) {
    int64_t v;
    double x;
    size_t len = 1;
    for (int a = 0; a < in->n_atlases; a++) len += strlen(in->atlas_names[a]) + 1;
    char *names = bgfm_calloc(e, len, 1, "atlas list");
    if (!names) return BGFM_ENOMEM;
    for (int a = 0; a < in->n_atlases; a++) {
        if (a) strcat(names, ",");
        strcat(names, in->atlas_names[a]);
    }
    int rc = h5io_attr_set_str(f, ".", "format", format, e);
    v = GRAPHS_FORMAT_VERSION;
    if (!rc) rc = h5io_attr_set_i64(f, ".", "format_version", &v, 1, e);
    if (!rc) rc = h5io_attr_set_str(f, ".", "atlases", names, e);
    if (!rc) rc = h5io_attr_set_str(f, ".", "measure", in->measure, e);
    v = in->fisher_z;
    if (!rc) rc = h5io_attr_set_i64(f, ".", "fisher_z", &v, 1, e);
    if (!rc) rc = h5io_attr_set_str(f, ".", "adjacency", in->adjacency, e);
    x = in->adjacency_value;
    if (!rc) rc = h5io_attr_set_f64(f, ".", "adjacency_value", &x, 1, e);
    v = in->rwse_steps;
    if (!rc) rc = h5io_attr_set_i64(f, ".", "rwse_steps", &v, 1, e);
    if (!rc) rc = h5io_attr_set_i64(f, ".", "window_length", &in->window_length, 1, e);
    if (!rc) rc = h5io_attr_set_i64(f, ".", "window_stride", &in->window_stride, 1, e);
    if (!rc && in->window_length_s > 0)
        rc = h5io_attr_set_f64(f, ".", "window_length_s", &in->window_length_s, 1, e);
    if (!rc && in->window_length_s > 0)
        rc = h5io_attr_set_f64(f, ".", "window_stride_s", &in->window_stride_s, 1, e);
    if (!rc) rc = h5io_attr_set_i64(f, ".", "graphs_per_shard", &in->graphs_per_shard, 1, e);
    free(names);
    return rc;
}

/* ---- shard writer ----------------------------------------------------------- */

struct graphs_writer {
    char *path;
    hid_t f;
    const graphs_info *info;
    int n_atlases;
    int64_t *n;           /* graphs per atlas */
    hid_t (*d)[DS_N];     /* per atlas datasets */
    int64_t *subject, *window, *label; /* per atlas blocks, offsets in off[] */
    double *fd;                        /* mean framewise displacement, same blocks */
    char **pid, **site, **dsn;         /* dsn: only with info->has_dataset */
    int64_t *off;         /* prefix sums of n */
};

void graphs_writer_abort(graphs_writer **pw) {
    if (!pw || !*pw) return;
    graphs_writer *w = *pw;
    if (w->d)
        for (int a = 0; a < w->n_atlases; a++)
            for (int k = 0; k < DS_N; k++)
                if (w->d[a][k] >= 0) H5Dclose(w->d[a][k]);
    if (w->f >= 0) H5Fclose(w->f);
    int64_t tot = w->off ? w->off[w->n_atlases] : 0;
    if (w->pid)
        for (int64_t i = 0; i < tot; i++) free(w->pid[i]);
    if (w->site)
        for (int64_t i = 0; i < tot; i++) free(w->site[i]);
    if (w->dsn)
        for (int64_t i = 0; i < tot; i++) free(w->dsn[i]);
    free(w->dsn);
    free(w->pid);
    free(w->site);
    free(w->subject);
    free(w->window);
    free(w->label);
    free(w->fd);
    free(w->off);
    free(w->n);
    free(w->d);
    free(w->path);
    free(w);
    *pw = NULL;
}

int graphs_writer_create(graphs_writer **pw, const char *path, int64_t shard,
                         const graphs_info *info, const int64_t *n_per_atlas, bgfm_err *e) {
    *pw = NULL;
    graphs_writer *w = bgfm_calloc(e, 1, sizeof *w, "shard writer");
    if (!w) return BGFM_ENOMEM;
    w->f = -1;
    w->info = info;
    w->n_atlases = info->n_atlases;
    int A = info->n_atlases;
    w->path = bgfm_strdup(e, path);
    w->n = bgfm_calloc(e, (size_t)A + 1, sizeof *w->n, "shard writer");
    w->off = bgfm_calloc(e, (size_t)A + 1, sizeof *w->off, "shard writer");
    w->d = bgfm_calloc(e, (size_t)A + 1, sizeof *w->d, "shard writer");
    if (!w->path || !w->n || !w->off || !w->d) goto fail;
    for (int a = 0; a < A; a++)
        for (int k = 0; k < DS_N; k++) w->d[a][k] = -1;
    for (int a = 0; a < A; a++) {
        w->n[a] = n_per_atlas[a];
        w->off[a + 1] = w->off[a] + n_per_atlas[a];
    }
    int64_t tot = w->off[A];
    size_t m = (size_t)(tot ? tot : 1);
    w->subject = bgfm_calloc(e, m, sizeof(int64_t), "shard rows");
    w->window = bgfm_calloc(e, m, sizeof(int64_t), "shard rows");
    w->label = bgfm_calloc(e, m, sizeof(int64_t), "shard rows");
    w->fd = bgfm_calloc(e, m, sizeof(double), "shard rows");
    w->pid = bgfm_calloc(e, m, sizeof(char *), "shard rows");
    w->site = bgfm_calloc(e, m, sizeof(char *), "shard rows");
    if (!w->subject || !w->window || !w->label || !w->fd || !w->pid || !w->site) goto fail;
    if (info->has_dataset && !(w->dsn = bgfm_calloc(e, m, sizeof(char *), "shard rows"))) goto fail;
    w->f = h5io_create(MPI_COMM_SELF, path, e);
    if (w->f < 0) goto fail;
    if (write_info_attrs(w->f, info, "bgfm-graphs-shard", e)) goto fail;
    if (h5io_attr_set_i64(w->f, ".", "shard", &shard, 1, e)) goto fail;
    if (h5io_attr_set_i64(w->f, ".", "n_graphs", &tot, 1, e)) goto fail;
    if (h5io_group_create(w->f, "/graphs", e)) goto fail;
    for (int a = 0; a < A; a++) {
        char p[512];
        hsize_t N = (hsize_t)info->atlas_nodes[a], k = (hsize_t)info->rwse_steps;
        hsize_t G = (hsize_t)w->n[a];
        snprintf(p, sizeof p, "/graphs/%s", info->atlas_names[a]);
        if (h5io_group_create(w->f, p, e)) goto fail;
        int64_t nn = (int64_t)N;
        if (h5io_attr_set_i64(w->f, p, "n_nodes", &nn, 1, e)) goto fail;
        hsize_t d3[3] = {G, N, N}, c3[3] = {1, N, N};
        hsize_t dr[3] = {G, N, k}, cr[3] = {1, N, k};
        hsize_t d2[2] = {G, N}, c2[2] = {1, N};
        const struct {
            hid_t type;
            int rank;
            const hsize_t *dims, *chunk;
        } spec[DS_N] = {{H5T_IEEE_F32LE, 3, d3, c3},
                        {H5T_STD_U8LE, 3, d3, c3},
                        {H5T_IEEE_F32LE, 3, dr, cr},
                        {H5T_STD_U8LE, 2, d2, c2}};
        for (int q = 0; q < DS_N; q++) {
            char dp[600];
            snprintf(dp, sizeof dp, "%s/%s", p, ds_names[q]);
            w->d[a][q] = h5io_dset_create(w->f, dp, spec[q].type, spec[q].rank, spec[q].dims,
                                     spec[q].chunk, info->compress, e);
            if (w->d[a][q] < 0) goto fail;
        }
        if (info->region_labels && info->region_labels[a]) {
            char dp[600];
            snprintf(dp, sizeof dp, "%s/region_labels", p);
            if (write_small(w->f, dp, H5T_STD_I32LE, H5T_NATIVE_INT32, N, info->region_labels[a],
                            e))
                goto fail;
        }
    }
    *pw = w;
    return 0;
fail:
    graphs_writer_abort(&w);
    return e->code ? e->code : BGFM_EIO;
}

int graphs_writer_put(graphs_writer *w, int atlas, int64_t row, const float *fc,
                      const uint8_t *adj, const float *rwse, const uint8_t *flagged,
                      int64_t subject, int64_t window, int64_t label, double mean_fd,
                      const char *participant, const char *dataset, const char *site,
                      bgfm_err *e) {
    BGFM_ASSERT(atlas >= 0 && atlas < w->n_atlases && row >= 0 && row < w->n[atlas]);
    int64_t i = w->off[atlas] + row;
    w->subject[i] = subject;
    w->window[i] = window;
    w->label[i] = label;
    w->fd[i] = mean_fd;
    free(w->pid[i]);
    free(w->site[i]);
    w->pid[i] = bgfm_strdup(e, participant ? participant : "");
    w->site[i] = bgfm_strdup(e, site ? site : "");
    if (!w->pid[i] || !w->site[i]) return BGFM_ENOMEM;
    if (w->dsn) {
        free(w->dsn[i]);
        if (!(w->dsn[i] = bgfm_strdup(e, dataset ? dataset : ""))) return BGFM_ENOMEM;
    }
    const void *bufs[DS_N] = {fc, adj, rwse, flagged};
    const hid_t mt[DS_N] = {H5T_NATIVE_FLOAT, H5T_NATIVE_UINT8, H5T_NATIVE_FLOAT, H5T_NATIVE_UINT8};
    for (int q = 0; q < DS_N; q++)
        if (h5io_write_rows(w->d[atlas][q], mt[q], row, 1, bufs[q], e)) return e->code;
    return 0;
}

int graphs_writer_close(graphs_writer **pw, bgfm_err *e) {
    graphs_writer *w = *pw;
    int rc = 0;
    for (int a = 0; a < w->n_atlases && !rc; a++) {
        char p[600];
        int64_t o = w->off[a];
        hsize_t n = (hsize_t)w->n[a];
        const char *an = w->info->atlas_names[a];
        snprintf(p, sizeof p, "/graphs/%s/subject", an);
        rc = write_small(w->f, p, H5T_STD_I64LE, H5T_NATIVE_INT64, n, w->subject + o, e);
        snprintf(p, sizeof p, "/graphs/%s/window", an);
        if (!rc) rc = write_small(w->f, p, H5T_STD_I64LE, H5T_NATIVE_INT64, n, w->window + o, e);
        snprintf(p, sizeof p, "/graphs/%s/label", an);
        if (!rc) rc = write_small(w->f, p, H5T_STD_I64LE, H5T_NATIVE_INT64, n, w->label + o, e);
        snprintf(p, sizeof p, "/graphs/%s/mean_fd", an);
        if (!rc) rc = write_small(w->f, p, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, n, w->fd + o, e);
        snprintf(p, sizeof p, "/graphs/%s/participant_id", an);
        if (!rc) rc = h5io_write_strings(w->f, p, (const char *const *)(w->pid + o), (int64_t)n, 0, e);
        snprintf(p, sizeof p, "/graphs/%s/site", an);
        if (!rc) rc = h5io_write_strings(w->f, p, (const char *const *)(w->site + o), (int64_t)n, 0, e);
        snprintf(p, sizeof p, "/graphs/%s/dataset", an);
        if (!rc && w->dsn)
            rc = h5io_write_strings(w->f, p, (const char *const *)(w->dsn + o), (int64_t)n, 0, e);
    }
    for (int a = 0; a < w->n_atlases; a++)
        for (int k = 0; k < DS_N; k++) {
            if (w->d[a][k] >= 0 && H5Dclose(w->d[a][k]) < 0 && !rc)
                rc = h5io_fail(e, BGFM_EIO, "closing a dataset of", w->path);
            w->d[a][k] = -1;
        }
    int crc = h5io_close(&w->f, w->path, e);
    if (!rc) rc = crc;
    graphs_writer_abort(pw);
    return rc;
}

/* ---- index writer ------------------------------------------------------------ */

int graphs_index_write(const char *path, const graphs_info *info, int n_shards,
                       const char *const *shard_names, int64_t n, const graphs_meta *meta,
                       const char *const *participant, const char *const *dataset,
                       const char *const *site, bgfm_err *e) {
    hid_t f = h5io_create(MPI_COMM_SELF, path, e);
    if (f < 0) return e->code;
    size_t m = (size_t)(n ? n : 1);
    int32_t *i32 = bgfm_malloc(e, m * sizeof(int32_t), "index column");
    int64_t *i64 = bgfm_malloc(e, m * sizeof(int64_t), "index column");
    double *f64 = bgfm_malloc(e, m * sizeof(double), "index column");
    int rc = (!i32 || !i64 || !f64) ? BGFM_ENOMEM : 0;
    int64_t v;
    if (!rc) rc = write_info_attrs(f, info, "bgfm-graphs-index", e);
    v = n;
    if (!rc) rc = h5io_attr_set_i64(f, ".", "n_graphs", &v, 1, e);
    v = n_shards;
    if (!rc) rc = h5io_attr_set_i64(f, ".", "n_shards", &v, 1, e);
    if (!rc) rc = h5io_write_strings(f, "/shards", shard_names, n_shards, 0, e);
    if (!rc) rc = h5io_write_strings(f, "/atlases", info->atlas_names, info->n_atlases, 0, e);
    if (!rc)
        rc = write_small(f, "/atlas_nodes", H5T_STD_I32LE, H5T_NATIVE_INT32,
                         (hsize_t)info->n_atlases, info->atlas_nodes, e);
    if (!rc && info->region_labels) {
        rc = h5io_group_create(f, "/regions", e);
        for (int a = 0; a < info->n_atlases && !rc; a++) {
            char p[512];
            snprintf(p, sizeof p, "/regions/%s", info->atlas_names[a]);
            if (info->region_labels[a])
                rc = write_small(f, p, H5T_STD_I32LE, H5T_NATIVE_INT32,
                                 (hsize_t)info->atlas_nodes[a], info->region_labels[a], e);
        }
    }
    if (!rc) rc = h5io_group_create(f, "/graphs", e);
#define COL32(name, field)                                                                     \
    if (!rc) {                                                                                 \
        for (int64_t i = 0; i < n; i++) i32[i] = meta[i].field;                                \
        rc = write_small(f, "/graphs/" name, H5T_STD_I32LE, H5T_NATIVE_INT32, (hsize_t)n, i32, e); \
    }
#define COL64(name, field)                                                                     \
    if (!rc) {                                                                                 \
        for (int64_t i = 0; i < n; i++) i64[i] = meta[i].field;                                \
        rc = write_small(f, "/graphs/" name, H5T_STD_I64LE, H5T_NATIVE_INT64, (hsize_t)n, i64, e); \
    }
    COL32("atlas", atlas)
    COL32("shard", shard)
    COL64("row", row)
    COL64("subject", subject)
    COL64("window", window)
    COL64("label", label)
    COL32("n_nodes", n_nodes)
#undef COL32
#undef COL64
    if (!rc) {
        for (int64_t i = 0; i < n; i++) f64[i] = meta[i].mean_fd;
        rc = write_small(f, "/graphs/mean_fd", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, (hsize_t)n, f64, e);
    }
    if (!rc) rc = h5io_write_strings(f, "/graphs/participant_id", participant, n, 0, e);
    if (!rc) rc = h5io_write_strings(f, "/graphs/site", site, n, 0, e);
    if (!rc && dataset) rc = h5io_write_strings(f, "/graphs/dataset", dataset, n, 0, e);
    free(i32);
    free(i64);
    free(f64);
    int crc = h5io_close(&f, path, e);
    return rc ? rc : crc;
}

/* ---- reader ------------------------------------------------------------------ */

typedef struct graphs_slot {
    int shard;         /* -1: free */
    hid_t f;
    hid_t *d;          /* n_atlases x DS_N, -1 until opened */
    uint64_t used;
} graphs_slot;

typedef struct graphs_prefetch_job {
    int active;
    pthread_t th;
    int64_t *idx;
    int n;
    float *fc;
    uint8_t *adj;
    float *rwse;
    int rc;
    bgfm_err err;
} graphs_prefetch_job;

struct graphs_store {
    char *path;
    int is_index;
    int n_atlases;
    char **atlas;
    int32_t *nodes;
    int k;
    char *measure, *adjacency;
    int fisher_z;
    double adj_value;
    int64_t window_length;
    int n_shards;
    char **shard_path;
    int64_t G;
    graphs_meta *meta;
    char **pid, **site, **dsn; /* dsn: NULL when the store has no datasets */
    graphs_slot slot[GRAPHS_SLOTS];
    uint64_t tick;
    graphs_prefetch_job pf;
};

static void store_close_slot(graphs_store *s, graphs_slot *sl) {
    if (sl->d)
        for (int i = 0; i < s->n_atlases * DS_N; i++)
            if (sl->d[i] >= 0) H5Dclose(sl->d[i]);
    free(sl->d);
    if (sl->f >= 0) H5Fclose(sl->f);
    sl->d = NULL;
    sl->f = -1;
    sl->shard = -1;
}

void graphs_close(graphs_store **ps) {
    if (!ps || !*ps) return;
    graphs_store *s = *ps;
    if (s->pf.active) {
        bgfm_err e2;
        bgfm_err_clear(&e2);
        graphs_wait(s, &e2);
    }
    for (int i = 0; i < GRAPHS_SLOTS; i++) store_close_slot(s, &s->slot[i]);
    strlist_free(s->atlas, s->n_atlases);
    strlist_free(s->shard_path, s->n_shards);
    strlist_free(s->pid, s->G);
    strlist_free(s->site, s->G);
    if (s->dsn) strlist_free(s->dsn, s->G);
    free(s->nodes);
    free(s->measure);
    free(s->adjacency);
    free(s->meta);
    free(s->pf.idx);
    free(s->path);
    free(s);
    *ps = NULL;
}

static int read_common_attrs(graphs_store *s, hid_t f, bgfm_err *e) {
    int64_t v = 0;
    double x = 0;
    int one = 1;
    if (h5io_attr_get_i64(f, ".", "rwse_steps", &v, &one, e)) return e->code;
    s->k = (int)v;
    one = 1;
    if (h5io_attr_get_i64(f, ".", "fisher_z", &v, &one, e)) return e->code;
    s->fisher_z = (int)v;
    one = 1;
    if (h5io_attr_get_i64(f, ".", "window_length", &v, &one, e)) return e->code;
    s->window_length = v;
    one = 1;
    if (h5io_attr_get_f64(f, ".", "adjacency_value", &x, &one, e)) return e->code;
    s->adj_value = x;
    if (h5io_attr_get_str(f, ".", "measure", &s->measure, e)) return e->code;
    if (h5io_attr_get_str(f, ".", "adjacency", &s->adjacency, e)) return e->code;
    return 0;
}

/* n graphs' mean framewise displacement from the 1-D dataset `name` into meta[0..n-1]:
 * NaN for all when the dataset is absent (a store written before it, docs/formats.md). */
static int read_fd(hid_t f, const char *name, int64_t n, graphs_meta *meta, bgfm_err *e) {
    for (int64_t i = 0; i < n; i++) meta[i].mean_fd = NAN;
    if (!n || !h5io_exists(f, name)) return 0;
    double *v = bgfm_malloc(e, (size_t)n * sizeof *v, "mean FD");
    if (!v) return BGFM_ENOMEM;
    int rc = h5io_read_all(f, name, H5T_NATIVE_DOUBLE, n, v, e);
    for (int64_t i = 0; i < n && !rc; i++) meta[i].mean_fd = v[i];
    free(v);
    return rc;
}

static int open_index(graphs_store *s, hid_t f, const char *path, bgfm_err *e) {
    int64_t n = 0, na = 0;
    if (read_common_attrs(s, f, e)) return e->code;
    char **shards = NULL;
    int64_t ns = 0;
    if (h5io_read_strings(f, "/shards", &shards, &ns, e)) return e->code;
    s->n_shards = (int)ns;
    s->shard_path = bgfm_calloc(e, (size_t)(ns ? ns : 1), sizeof(char *), "shard paths");
    if (!s->shard_path) {
        strlist_free(shards, ns);
        return BGFM_ENOMEM;
    }
    /* shard names are relative to the index's folder */
    const char *slash = strrchr(path, '/');
    size_t dl = slash ? (size_t)(slash - path) + 1 : 0;
    for (int64_t i = 0; i < ns; i++) {
        size_t l = dl + strlen(shards[i]) + 1;
        s->shard_path[i] = bgfm_malloc(e, l, "shard path");
        if (!s->shard_path[i]) {
            strlist_free(shards, ns);
            return BGFM_ENOMEM;
        }
        snprintf(s->shard_path[i], l, "%.*s%s", (int)dl, path, shards[i]);
    }
    strlist_free(shards, ns);
    if (h5io_read_strings(f, "/atlases", &s->atlas, &na, e)) return e->code;
    s->n_atlases = (int)na;
    s->nodes = bgfm_calloc(e, (size_t)(na ? na : 1), sizeof(int32_t), "atlas nodes");
    if (!s->nodes) return BGFM_ENOMEM;
    if (h5io_read_all(f, "/atlas_nodes", H5T_NATIVE_INT32, na, s->nodes, e)) return e->code;
    for (int64_t a = 0; a < na; a++)
        if (s->nodes[a] < 1)
            return bgfm_fail(e, BGFM_EDATA, "graph index '%s': atlas %lld has %d nodes", path,
                             (long long)a, (int)s->nodes[a]);
    int rank = 0;
    hsize_t dims[8];
    if (h5io_dims(f, "/graphs/subject", &rank, dims, e)) return e->code;
    if (rank != 1)
        return bgfm_fail(e, BGFM_EDATA, "graph index '%s': /graphs/subject has %d dimensions, 1 "
                         "expected; the file is damaged", path, rank);
    n = (int64_t)dims[0];
    s->G = n;
    size_t m = (size_t)(n ? n : 1);
    s->meta = bgfm_calloc(e, m, sizeof *s->meta, "graph index");
    int32_t *i32 = bgfm_malloc(e, m * sizeof(int32_t), "index column");
    int64_t *i64 = bgfm_malloc(e, m * sizeof(int64_t), "index column");
    int rc = (!s->meta || !i32 || !i64) ? BGFM_ENOMEM : 0;
#define RD32(name, field)                                                                      \
    if (!rc && !(rc = h5io_read_all(f, "/graphs/" name, H5T_NATIVE_INT32, n, i32, e)))      \
        for (int64_t i = 0; i < n; i++) s->meta[i].field = i32[i];
#define RD64(name, field)                                                                      \
    if (!rc && !(rc = h5io_read_all(f, "/graphs/" name, H5T_NATIVE_INT64, n, i64, e)))      \
        for (int64_t i = 0; i < n; i++) s->meta[i].field = i64[i];
    RD32("atlas", atlas)
    RD32("shard", shard)
    RD64("row", row)
    RD64("subject", subject)
    RD64("window", window)
    RD64("label", label)
    RD32("n_nodes", n_nodes)
#undef RD32
#undef RD64
    free(i32);
    free(i64);
    if (rc) return rc;
    if ((rc = read_fd(f, "/graphs/mean_fd", n, s->meta, e))) return rc;
    int64_t np = 0, nsite = 0;
    if (h5io_read_strings(f, "/graphs/participant_id", &s->pid, &np, e)) return e->code;
    if (h5io_read_strings(f, "/graphs/site", &s->site, &nsite, e)) return e->code;
    if (np != n || nsite != n) {
        /* graphs_close frees s->G entries of each list: free these with their own counts */
        strlist_free(s->pid, np);
        strlist_free(s->site, nsite);
        s->pid = s->site = NULL;
        return bgfm_fail(e, BGFM_EDATA, "graph index '%s' is inconsistent (%lld graphs, %lld ids, "
                         "%lld sites)", path, (long long)n, (long long)np, (long long)nsite);
    }
    if (h5io_exists(f, "/graphs/dataset")) {
        int64_t nd = 0;
        if (h5io_read_strings(f, "/graphs/dataset", &s->dsn, &nd, e)) return e->code;
        if (nd != n) {
            strlist_free(s->dsn, nd);
            s->dsn = NULL;
            return bgfm_fail(e, BGFM_EDATA, "graph index '%s' is inconsistent (%lld graphs, %lld "
                             "dataset names)", path, (long long)n, (long long)nd);
        }
    }
    for (int64_t i = 0; i < n; i++) {
        const graphs_meta *g = &s->meta[i];
        if (g->atlas < 0 || g->atlas >= s->n_atlases || g->shard < 0 || g->shard >= s->n_shards ||
            g->row < 0 || g->n_nodes != s->nodes[g->atlas])
            return bgfm_fail(e, BGFM_EDATA, "graph index '%s': graph %lld points outside the store",
                             path, (long long)i);
    }
    return 0;
}

static int open_shard(graphs_store *s, hid_t f, const char *path, bgfm_err *e) {
    if (read_common_attrs(s, f, e)) return e->code;
    char *csv = NULL;
    if (h5io_attr_get_str(f, ".", "atlases", &csv, e)) return e->code;
    int rc = strlist_split(csv, ',', &s->atlas, &s->n_atlases, e);
    free(csv);
    if (rc) return rc;
    s->n_shards = 1;
    s->shard_path = bgfm_calloc(e, 1, sizeof(char *), "shard paths");
    if (!s->shard_path || !(s->shard_path[0] = bgfm_strdup(e, path))) return BGFM_ENOMEM;
    s->nodes = bgfm_calloc(e, (size_t)(s->n_atlases ? s->n_atlases : 1), sizeof(int32_t), "nodes");
    int64_t *cnt = bgfm_calloc(e, (size_t)s->n_atlases + 1, sizeof(int64_t), "counts");
    if (!s->nodes || !cnt) {
        free(cnt);
        return BGFM_ENOMEM;
    }
    int64_t n = 0;
    for (int a = 0; a < s->n_atlases && !rc; a++) {
        char p[600];
        int rank = 0;
        hsize_t dims[8];
        snprintf(p, sizeof p, "/graphs/%s/fc", s->atlas[a]);
        rc = h5io_dims(f, p, &rank, dims, e);
        if (!rc && rank != 3) rc = bgfm_fail(e, BGFM_EDATA, "'%s' in '%s' is not G x N x N", p, path);
        if (!rc) {
            cnt[a] = (int64_t)dims[0];
            s->nodes[a] = (int32_t)dims[1];
            n += cnt[a];
        }
    }
    s->G = n;
    size_t m = (size_t)(n ? n : 1);
    s->meta = rc ? NULL : bgfm_calloc(e, m, sizeof *s->meta, "graph list");
    s->pid = rc ? NULL : bgfm_calloc(e, m, sizeof(char *), "graph list");
    s->site = rc ? NULL : bgfm_calloc(e, m, sizeof(char *), "graph list");
    int64_t *col = rc ? NULL : bgfm_calloc(e, m * 3, sizeof(int64_t), "graph list");
    if (!rc && (!s->meta || !s->pid || !s->site || !col)) rc = BGFM_ENOMEM;
    int64_t g0 = 0;
    for (int a = 0; a < s->n_atlases && !rc; a++) {
        char p[600];
        const char *what[3] = {"subject", "window", "label"};
        for (int q = 0; q < 3 && !rc; q++) {
            snprintf(p, sizeof p, "/graphs/%s/%s", s->atlas[a], what[q]);
            if (cnt[a])
                rc = h5io_read_all(f, p, H5T_NATIVE_INT64, cnt[a], col + m * (size_t)q, e);
        }
        char **ids = NULL, **sites = NULL, **dsn = NULL;
        int64_t ni = 0, nsi = 0, nd = 0;
        snprintf(p, sizeof p, "/graphs/%s/participant_id", s->atlas[a]);
        if (!rc) rc = h5io_read_strings(f, p, &ids, &ni, e);
        snprintf(p, sizeof p, "/graphs/%s/site", s->atlas[a]);
        if (!rc) rc = h5io_read_strings(f, p, &sites, &nsi, e);
        snprintf(p, sizeof p, "/graphs/%s/dataset", s->atlas[a]);
        if (!rc && h5io_exists(f, p) && !(rc = h5io_read_strings(f, p, &dsn, &nd, e)) && !s->dsn &&
            !(s->dsn = bgfm_calloc(e, m, sizeof(char *), "graph list")))
            rc = BGFM_ENOMEM;
        if (!rc && (ni != cnt[a] || nsi != cnt[a] || (dsn && nd != cnt[a])))
            rc = bgfm_fail(e, BGFM_EDATA, "shard '%s': atlas '%s' has inconsistent row counts",
                           path, s->atlas[a]);
        for (int64_t r = 0; r < cnt[a] && !rc; r++) {
            graphs_meta *g = &s->meta[g0 + r];
            g->atlas = a;
            g->shard = 0;
            g->row = r;
            g->subject = col[r];
            g->window = col[m + (size_t)r];
            g->label = col[2 * m + (size_t)r];
            g->n_nodes = s->nodes[a];
            s->pid[g0 + r] = ids[r];
            s->site[g0 + r] = sites[r];
            ids[r] = sites[r] = NULL;
            if (dsn) s->dsn[g0 + r] = dsn[r], dsn[r] = NULL;
        }
        snprintf(p, sizeof p, "/graphs/%s/mean_fd", s->atlas[a]);
        if (!rc) rc = read_fd(f, p, cnt[a], s->meta + g0, e);
        strlist_free(ids, ni);
        strlist_free(sites, nsi);
        if (dsn) strlist_free(dsn, nd);
        g0 += cnt[a];
    }
    free(col);
    free(cnt);
    return rc;
}

int graphs_open(const char *path, graphs_store **out, bgfm_err *e) {
    *out = NULL;
    graphs_store *s = bgfm_calloc(e, 1, sizeof *s, "graph store");
    if (!s) return BGFM_ENOMEM;
    for (int i = 0; i < GRAPHS_SLOTS; i++) {
        s->slot[i].shard = -1;
        s->slot[i].f = -1;
    }
    /* a folder means its index.h5 */
    size_t l = strlen(path);
    char *p = bgfm_malloc(e, l + 16, "path");
    if (!p) {
        free(s);
        return BGFM_ENOMEM;
    }
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(p, l + 16, "%s%sindex.h5", path, (l && path[l - 1] == '/') ? "" : "/");
    else
        snprintf(p, l + 16, "%s", path);
    s->path = p;
    int rc = 0;
    hid_t f = -1;
    if (stat(p, &st) != 0) {
        rc = bgfm_fail(e, BGFM_EIO,
                       "graph store '%s' not found: give index.h5, its folder or a shard file "
                       "written by the connectivity stage",
                       path);
        goto done;
    }
    f = h5io_open(MPI_COMM_SELF, p, e);
    if (f < 0) {
        rc = e->code;
        goto done;
    }
    char *fmt = NULL;
    if ((rc = h5io_root_format(f, &fmt, e))) {
        if (rc != BGFM_ENOMEM) { /* out of memory says so; anything else is a damaged file */
            bgfm_err_clear(e);
            rc = bgfm_fail(e, BGFM_EDATA, "'%s' is not a bgfm graph store (its root attribute "
                           "'format' cannot be read)", p);
        }
        goto done;
    }
    if (!fmt) {
        rc = bgfm_fail(e, BGFM_EDATA, "'%s' is not a bgfm graph store (no root attribute 'format')",
                       p);
        goto done;
    }
    s->is_index = !strcmp(fmt, "bgfm-graphs-index");
    if (s->is_index)
        rc = open_index(s, f, p, e);
    else if (!strcmp(fmt, "bgfm-graphs-shard"))
        rc = open_shard(s, f, p, e);
    else
        rc = bgfm_fail(e, BGFM_EDATA,
                       "'%s' has format '%s', not a graph store (bgfm-graphs-index or "
                       "bgfm-graphs-shard)",
                       p, fmt);
    free(fmt);
done:
    if (f >= 0) h5io_close(&f, p, e);
    if (rc) {
        graphs_close(&s);
        return rc;
    }
    *out = s;
    return 0;
}

int64_t graphs_count(const graphs_store *s) { return s->G; }
int graphs_n_atlases(const graphs_store *s) { return s->n_atlases; }
const char *graphs_atlas_name(const graphs_store *s, int atlas) {
    BGFM_ASSERT(atlas >= 0 && atlas < s->n_atlases);
    return s->atlas[atlas];
}
int graphs_atlas_nodes(const graphs_store *s, int atlas) {
    BGFM_ASSERT(atlas >= 0 && atlas < s->n_atlases);
    return s->nodes[atlas];
}
int graphs_atlas_find(const graphs_store *s, const char *name) {
    for (int a = 0; a < s->n_atlases; a++)
        if (!strcmp(s->atlas[a], name)) return a;
    return -1;
}
int graphs_rwse_steps(const graphs_store *s) { return s->k; }
const graphs_meta *graphs_get_meta(const graphs_store *s, int64_t g) {
    BGFM_ASSERT(g >= 0 && g < s->G);
    return &s->meta[g];
}
const char *graphs_participant(const graphs_store *s, int64_t g) {
    BGFM_ASSERT(g >= 0 && g < s->G);
    return s->pid && s->pid[g] ? s->pid[g] : "";
}
const char *graphs_dataset(const graphs_store *s, int64_t g) {
    BGFM_ASSERT(g >= 0 && g < s->G);
    return s->dsn && s->dsn[g] ? s->dsn[g] : "";
}
const char *graphs_site(const graphs_store *s, int64_t g) {
    BGFM_ASSERT(g >= 0 && g < s->G);
    return s->site && s->site[g] ? s->site[g] : "";
}
const char *graphs_measure(const graphs_store *s) { return s->measure; }
int graphs_fisher_z(const graphs_store *s) { return s->fisher_z; }
const char *graphs_adjacency(const graphs_store *s) { return s->adjacency; }
double graphs_adjacency_value(const graphs_store *s) { return s->adj_value; }
int64_t graphs_window_length(const graphs_store *s) { return s->window_length; }
int graphs_n_shards(const graphs_store *s) { return s->n_shards; }
const char *graphs_file(const graphs_store *s) { return s->path; }
int graphs_is_index(const graphs_store *s) { return s->is_index; }

/* The open slot of `shard` (opened now, evicting the least recently used). */
static graphs_slot *store_slot(graphs_store *s, int shard, bgfm_err *e) {
    graphs_slot *lru = &s->slot[0];
    for (int i = 0; i < GRAPHS_SLOTS; i++) {
        if (s->slot[i].shard == shard) {
            s->slot[i].used = ++s->tick;
            return &s->slot[i];
        }
        if (s->slot[i].used < lru->used) lru = &s->slot[i];
    }
    store_close_slot(s, lru);
    lru->d = bgfm_malloc(e, sizeof(hid_t) * (size_t)s->n_atlases * DS_N, "shard handles");
    if (!lru->d) return NULL;
    for (int i = 0; i < s->n_atlases * DS_N; i++) lru->d[i] = -1;
    lru->f = h5io_open(MPI_COMM_SELF, s->shard_path[shard], e);
    if (lru->f < 0) {
        free(lru->d);
        lru->d = NULL;
        return NULL;
    }
    lru->shard = shard;
    lru->used = ++s->tick;
    return lru;
}

static hid_t slot_dset(graphs_store *s, graphs_slot *sl, int atlas, int q, bgfm_err *e) {
    hid_t *d = &sl->d[atlas * DS_N + q];
    if (*d >= 0) return *d;
    char p[600];
    snprintf(p, sizeof p, "/graphs/%s/%s", s->atlas[atlas], ds_names[q]);
    *d = H5Dopen2(sl->f, p, H5P_DEFAULT);
    if (*d < 0) h5io_fail(e, BGFM_EDATA, "opening dataset", p);
    return *d;
}

/* Read rows [row0, row0+cnt) of dataset q into buf. */
static int read_run(graphs_store *s, int shard, int atlas, int q, int64_t row0, int64_t cnt,
                    size_t row_elems, void *buf, bgfm_err *e) {
    graphs_slot *sl = store_slot(s, shard, e);
    if (!sl) return e->code ? e->code : BGFM_EIO;
    hid_t d = slot_dset(s, sl, atlas, q, e);
    if (d < 0) return e->code;
    hid_t fs = H5Dget_space(d);
    hsize_t dims[3] = {0}, start[3] = {0}, count[3] = {0};
    int rank = fs >= 0 ? H5Sget_simple_extent_ndims(fs) : -1;
    if (rank < 1 || rank > 3 || H5Sget_simple_extent_dims(fs, dims, NULL) != rank) rank = -1;
    size_t per = 1; /* values per graph in the file: must be what the caller's buffer holds */
    for (int i = 1; i < rank; i++)
        if (__builtin_mul_overflow(per, (size_t)dims[i], &per)) per = 0;
    int rc = 0;
    if (rank < 1 || (hsize_t)(row0 + cnt) > dims[0]) {
        rc = bgfm_fail(e, BGFM_EDATA, "shard '%s': rows [%lld, %lld) of %s/%s are missing",
                       s->shard_path[shard], (long long)row0, (long long)(row0 + cnt),
                       s->atlas[atlas], ds_names[q]);
    } else if (per != row_elems) {
        rc = bgfm_fail(e, BGFM_EDATA, "shard '%s': %s/%s holds %zu values per graph, the store "
                       "expects %zu (N = %d); the shard does not match its index or is damaged: "
                       "rerun the connectivity stage", s->shard_path[shard], s->atlas[atlas],
                       ds_names[q], per, row_elems, s->nodes[atlas]);
    } else {
        for (int i = 0; i < rank; i++) count[i] = dims[i];
        start[0] = (hsize_t)row0;
        count[0] = (hsize_t)cnt;
        hid_t ms = H5Screate_simple(rank, count, NULL);
        hid_t mt = (q == DS_FC || q == DS_RWSE) ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8;
        if (ms < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dread(d, mt, ms, fs, H5P_DEFAULT, buf) < 0)
            rc = h5io_fail(e, BGFM_EIO, "reading graphs from", s->shard_path[shard]);
        if (ms >= 0) H5Sclose(ms);
    }
    if (fs >= 0) H5Sclose(fs);
    return rc;
}

static int read_impl(graphs_store *s, const int64_t *idx, int n, void *const bufs[DS_N],
                     bgfm_err *e) {
    if (n <= 0) return 0;
    for (int i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= s->G)
            return bgfm_fail(e, BGFM_EUSAGE, "graph index %lld outside the store '%s' (%lld graphs)",
                             (long long)idx[i], s->path, (long long)s->G);
    int atlas = s->meta[idx[0]].atlas;
    for (int i = 1; i < n; i++)
        if (s->meta[idx[i]].atlas != atlas)
            return bgfm_fail(e, BGFM_EUSAGE,
                             "graphs_read: graphs %lld and %lld belong to different atlases",
                             (long long)idx[0], (long long)idx[i]);
    size_t N = (size_t)s->nodes[atlas], k = (size_t)s->k;
    const size_t per[DS_N] = {N * N * sizeof(float), N * N, N * k * sizeof(float), N};
    /* runs: consecutive requests that are consecutive rows of one shard */
    int i = 0;
    while (i < n) {
        const graphs_meta *g = &s->meta[idx[i]];
        int j = i + 1;
        while (j < n && s->meta[idx[j]].shard == g->shard &&
               s->meta[idx[j]].row == g->row + (j - i))
            j++;
        for (int q = 0; q < DS_N; q++) {
            if (!bufs[q]) continue;
            char *dst = (char *)bufs[q] + per[q] * (size_t)i;
            size_t esz = (q == DS_FC || q == DS_RWSE) ? sizeof(float) : 1;
            int rc = read_run(s, g->shard, atlas, q, g->row, j - i, per[q] / esz, dst, e);
            if (rc) return rc;
        }
        i = j;
    }
    return 0;
}

int graphs_read(graphs_store *s, const int64_t *idx, int n, float *fc, uint8_t *adj,
                float *rwse, bgfm_err *e) {
    BGFM_ASSERT(!s->pf.active);
    void *const bufs[DS_N] = {fc, adj, rwse, NULL};
    return read_impl(s, idx, n, bufs, e);
}

int graphs_read_flagged(graphs_store *s, const int64_t *idx, int n, uint8_t *flagged,
                        bgfm_err *e) {
    BGFM_ASSERT(!s->pf.active);
    void *const bufs[DS_N] = {NULL, NULL, NULL, flagged};
    return read_impl(s, idx, n, bufs, e);
}

static void *prefetch_main(void *arg) {
    graphs_store *s = arg;
    graphs_prefetch_job *j = &s->pf;
    void *const bufs[DS_N] = {j->fc, j->adj, j->rwse, NULL};
    j->rc = read_impl(s, j->idx, j->n, bufs, &j->err);
    return NULL;
}

int graphs_prefetch(graphs_store *s, const int64_t *idx, int n, float *fc, uint8_t *adj,
                    float *rwse, bgfm_err *e) {
    BGFM_ASSERT(!s->pf.active);
    graphs_prefetch_job *j = &s->pf;
    free(j->idx);
    j->idx = bgfm_malloc(e, sizeof(int64_t) * (size_t)(n > 0 ? n : 1), "prefetch list");
    if (!j->idx) return BGFM_ENOMEM;
    memcpy(j->idx, idx, sizeof(int64_t) * (size_t)(n > 0 ? n : 0));
    j->n = n;
    j->fc = fc;
    j->adj = adj;
    j->rwse = rwse;
    j->rc = 0;
    bgfm_err_clear(&j->err);
    if (bgfm_thread_start(&j->th, prefetch_main, s) != 0) {
        /* no thread: read now, so graphs_wait still returns the result */
        prefetch_main(s);
        j->active = 2;
        return 0;
    }
    j->active = 1;
    return 0;
}

int graphs_wait(graphs_store *s, bgfm_err *e) {
    graphs_prefetch_job *j = &s->pf;
    if (!j->active) return 0;
    if (j->active == 1) pthread_join(j->th, NULL);
    j->active = 0;
    free(j->idx);
    j->idx = NULL;
    if (j->rc) {
        bgfm_fail(e, j->err.code ? j->err.code : j->rc, "%s", j->err.msg);
        return j->rc;
    }
    return 0;
}
