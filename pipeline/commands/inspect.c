/* inspect.c: `bgfm inspect FILE.h5 [--json]`: what is in a timeseries, graph or
 * checkpoint file: its format, root attributes, every dataset with type and shape,
 * and a per-format summary. Not a validator of the numbers. Rank 0 does the work. */
#include <string.h>

#include "bgfm/cli.h"
#include "bgfm/graphs.h"
#include "bgfm/h5io.h"
#include "bgfm/json.h"

typedef struct dset_info {
    char path[512];
    char type[32];
    int rank;
    hsize_t dims[8];
} dset_info;

typedef struct walk {
    dset_info *v;
    int n, cap;
    bgfm_err *e; /* where running out of memory is recorded */
} walk;

static void type_name(hid_t t, char *buf, size_t n) {
    H5T_class_t c = H5Tget_class(t);
    size_t sz = H5Tget_size(t);
    if (c == H5T_INTEGER)
        snprintf(buf, n, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", sz * 8);
    else if (c == H5T_FLOAT)
        snprintf(buf, n, "float%zu", sz * 8);
    else if (c == H5T_STRING)
        snprintf(buf, n, "string%zu", sz);
    else
        snprintf(buf, n, "other");
}

static herr_t visit_cb(hid_t obj, const char *name, const H5O_info_t *info, void *data) {
    walk *w = data;
    if (info->type != H5O_TYPE_DATASET) return 0;
    if (w->n == w->cap) {
        int nc = w->cap ? 2 * w->cap : 64;
        dset_info *nv = bgfm_realloc(w->e, w->v, (size_t)nc * sizeof *nv, "dataset list");
        if (!nv) return -1; /* stops the visit */
        w->v = nv;
        w->cap = nc;
    }
    dset_info *d = &w->v[w->n];
    memset(d, 0, sizeof *d);
    snprintf(d->path, sizeof d->path, "/%s", name);
    hid_t ds = H5Dopen2(obj, name, H5P_DEFAULT);
    if (ds < 0) return 0;
    hid_t t = H5Dget_type(ds), sp = H5Dget_space(ds);
    if (t >= 0) type_name(t, d->type, sizeof d->type);
    if (sp >= 0) {
        d->rank = H5Sget_simple_extent_ndims(sp);
        if (d->rank >= 0 && d->rank <= 8) H5Sget_simple_extent_dims(sp, d->dims, NULL);
        else d->rank = 0;
    }
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    H5Dclose(ds);
    w->n++;
    return 0;
}

typedef struct attr_walk {
    FILE *out;
    int json, count;
} attr_walk;

static herr_t attr_cb(hid_t loc, const char *name, const H5A_info_t *ai, void *data) {
    (void)ai;
    attr_walk *aw = data;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return 0;
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : 0;
    H5T_class_t c = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    FILE *f = aw->out;
    if (aw->json) fprintf(f, "%s\n    ", aw->count ? "," : "");
    if (aw->json) {
        json_write_str(f, name);
        fputs(": ", f);
    } else {
        fprintf(f, "  @%s = ", name);
    }
    bgfm_err e = {0};
    if (c == H5T_STRING) {
        char *s = NULL;
        if (!h5io_attr_get_str(loc, ".", name, &s, &e) && s) {
            if (aw->json)
                json_write_str(f, s);
            else if (!strcmp(name, "corpus"))
                fputs("(the model card, below)", f);
            else
                fprintf(f, "%.200s%s", s, strlen(s) > 200 ? "..." : "");
        } else {
            fputs(aw->json ? "null" : "?", f);
        }
        free(s);
    } else if ((c == H5T_INTEGER || c == H5T_FLOAT) && np >= 1 && np <= 64) {
        double v[64];
        int n = 64;
        if (H5Aread(a, H5T_NATIVE_DOUBLE, v) >= 0) {
            n = (int)np;
            if (n > 1) fputs("[", f);
            for (int i = 0; i < n; i++) {
                if (i) fputs(", ", f);
                json_write_num(f, v[i]);
            }
            if (n > 1) fputs("]", f);
        } else {
            fputs(aw->json ? "null" : "?", f);
        }
    } else {
        fputs(aw->json ? "null" : "(not shown)", f);
    }
    if (!aw->json) fputc('\n', f);
    aw->count++;
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return 0;
}

static int cmp_dset(const void *a, const void *b) {
    return strcmp(((const dset_info *)a)->path, ((const dset_info *)b)->path);
}

/* Per-atlas summary of a timeseries.h5: subjects, nodes, volumes, flagged regions; 0, or
 * BGFM_ENOMEM (in w->e) with the summary cut short. */
static int timeseries_summary(hid_t f, const walk *w, int json, FILE *out) {
    int first = 1;
    if (json) fputs(",\n  \"atlases\": {", out);
    else fputs("atlases:\n", out);
    for (int i = 0; i < w->n; i++) {
        const char *p = w->v[i].path;
        const char *suffix = "/flagged";
        size_t pl = strlen(p), sl = strlen(suffix);
        if (strncmp(p, "/atlases/", 9) || pl <= sl || strcmp(p + pl - sl, suffix) || w->v[i].rank != 2)
            continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(pl - sl - 9), p + 9);
        int64_t S = (int64_t)w->v[i].dims[0], N = (int64_t)w->v[i].dims[1];
        uint8_t *fl = bgfm_malloc(w->e, (size_t)(S * N > 0 ? S * N : 1), "flagged regions");
        int64_t *off = fl ? bgfm_malloc(w->e, (size_t)(S + 1) * sizeof *off, "subject offsets")
                          : NULL;
        if (!off) {
            free(fl);
            return BGFM_ENOMEM;
        }
        bgfm_err e = {0};
        char dpath[600];
        int64_t nflag = 0, tmin = 0, tmax = 0;
        snprintf(dpath, sizeof dpath, "/atlases/%s/offsets", name);
        if (!h5io_read_all(f, p, H5T_NATIVE_UINT8, S * N, fl, &e) &&
            !h5io_read_all(f, dpath, H5T_NATIVE_INT64, S + 1, off, &e)) {
            for (int64_t k = 0; k < S * N; k++) nflag += fl[k] != 0;
            for (int64_t s = 0; s < S; s++) {
                int64_t t = off[s + 1] - off[s];
                if (s == 0 || t < tmin) tmin = t;
                if (s == 0 || t > tmax) tmax = t;
            }
        }
        if (json) {
            fprintf(out, "%s\n    ", first ? "" : ",");
            json_write_str(out, name);
            fprintf(out, ": {\"subjects\": %lld, \"regions\": %lld, \"volumes_min\": %lld, "
                         "\"volumes_max\": %lld, \"flagged\": %lld}",
                    (long long)S, (long long)N, (long long)tmin, (long long)tmax,
                    (long long)nflag);
        } else {
            fprintf(out, "  %-24s %lld subjects x %lld regions, %lld..%lld volumes, %lld "
                         "flagged (subject, region) pairs\n",
                    name, (long long)S, (long long)N, (long long)tmin, (long long)tmax,
                    (long long)nflag);
        }
        first = 0;
        free(fl);
        free(off);
    }
    if (json) fputs("\n  }", out);
    return 0;
}

/* A checkpoint's model card (root attribute `corpus`, JSON written by the pretrain stage:
 * docs/corpus.md): as it is under --json, else indented after a title line. */
static void model_card(hid_t f, int json, FILE *out) {
    char *card = NULL;
    bgfm_err e = {0};
    if (!h5io_attr_exists(f, ".", "corpus") || h5io_attr_get_str(f, ".", "corpus", &card, &e)) {
        if (json) fputs(",\n  \"model_card\": null", out);
        else fputs("model card: none (a checkpoint written before model cards)\n", out);
        free(card);
        return;
    }
    size_t n = strlen(card);
    while (n && card[n - 1] == '\n') card[--n] = '\0';
    if (json) {
        fprintf(out, ",\n  \"model_card\": %s", card);
    } else {
        fputs("model card (what the model was pretrained on):\n  ", out);
        for (const char *c = card; *c; c++) {
            fputc(*c, out);
            if (*c == '\n') fputs("  ", out);
        }
        fputc('\n', out);
    }
    free(card);
}

/* The root attribute `format`; NULL when the file has none or it cannot be read (inspect
 * shows any HDF5 file): only running out of memory stops it. */
static int inspect_format(hid_t f, char **format, bgfm_err *e) {
    const int rc = h5io_root_format(f, format, e);
    if (rc == BGFM_ENOMEM) return rc;
    if (rc) bgfm_err_clear(e);
    return 0;
}

static int inspect_file(const char *path, int json, FILE *out, bgfm_err *e) {
    hid_t f = h5io_open(MPI_COMM_SELF, path, e);
    if (f < 0) return e->code ? e->code : BGFM_EIO;
    char *format = NULL;
    if (inspect_format(f, &format, e)) {
        h5io_close(&f, path, e);
        return BGFM_ENOMEM;
    }
    walk w = {NULL, 0, 0, e};
    if (H5Ovisit2(f, H5_INDEX_NAME, H5_ITER_NATIVE, visit_cb, &w, H5O_INFO_BASIC) < 0 &&
        e->code == BGFM_ENOMEM) {
        free(w.v);
        free(format);
        h5io_close(&f, path, e);
        return BGFM_ENOMEM;
    }
    if (w.n) qsort(w.v, (size_t)w.n, sizeof *w.v, cmp_dset);
    if (json) {
        fputs("{\n  \"file\": ", out);
        json_write_str(out, path);
        fputs(",\n  \"format\": ", out);
        if (format) json_write_str(out, format);
        else fputs("null", out);
        fputs(",\n  \"attributes\": {", out);
    } else {
        fprintf(out, "%s: %s\n", path, format ? format : "(no bgfm format attribute)");
    }
    attr_walk aw = {out, json, 0};
    hsize_t idx = 0;
    H5Aiterate2(f, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, attr_cb, &aw);
    if (json) fputs("\n  },\n  \"datasets\": [", out);
    else fputs("datasets:\n", out);
    for (int i = 0; i < w.n; i++) {
        if (json) {
            fprintf(out, "%s\n    {\"path\": ", i ? "," : "");
            json_write_str(out, w.v[i].path);
            fprintf(out, ", \"dtype\": \"%s\", \"shape\": [", w.v[i].type);
            for (int k = 0; k < w.v[i].rank; k++)
                fprintf(out, "%s%llu", k ? ", " : "", (unsigned long long)w.v[i].dims[k]);
            fputs("]}", out);
        } else {
            fprintf(out, "  %-44s %-9s (", w.v[i].path, w.v[i].type);
            for (int k = 0; k < w.v[i].rank; k++)
                fprintf(out, "%s%llu", k ? " x " : "", (unsigned long long)w.v[i].dims[k]);
            fputs(")\n", out);
        }
    }
    if (json) fputs("\n  ]", out);
    int rc = 0;
    if (format && !strcmp(format, "bgfm-timeseries")) rc = timeseries_summary(f, &w, json, out);
    if (!rc && format && !strcmp(format, "bgfm-checkpoint")) model_card(f, json, out);
    if (!rc && json) fputs("\n}\n", out);
    free(w.v);
    free(format);
    const int crc = h5io_close(&f, path, e);
    return rc ? rc : crc;
}

int cmd_inspect(bgfm_ctx *ctx, int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        if (ctx->rank == 0)
            printf("usage: bgfm inspect FILE.h5 [--json]\n\nPrints a bgfm file's format, "
                   "root attributes, every dataset (type, shape)\nand a summary: per atlas for "
                   "timeseries.h5; count, N, density and labels for\ngraph shards and indexes. "
                   "--json prints the same as one JSON object.\n");
        return 0;
    }
    const char *file = NULL;
    int json = 0, rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (argv[i][0] == '-') rc = bgfm_ctx_fail(ctx, BGFM_EUSAGE, "unknown option '%s'", argv[i]);
        else if (!file) file = argv[i];
        else rc = bgfm_ctx_fail(ctx, BGFM_EUSAGE, "one file at a time");
    }
    if (!rc && !file) rc = bgfm_ctx_fail(ctx, BGFM_EUSAGE, "missing FILE.h5 (see bgfm inspect --help)");
    if (!rc && ctx->rank == 0) {
        char *format = NULL;
        hid_t f = h5io_open(MPI_COMM_SELF, file, &ctx->err);
        if (f < 0) rc = ctx->err.code ? ctx->err.code : BGFM_EIO;
        if (!rc) rc = inspect_format(f, &format, &ctx->err);
        if (f >= 0) {
            const int crc = h5io_close(&f, file, &ctx->err);
            if (!rc) rc = crc;
        }
        if (!rc && format && !strncmp(format, "bgfm-graphs", 11))
            rc = graphs_inspect(file, json, stdout, &ctx->err);
        else if (!rc)
            rc = inspect_file(file, json, stdout, &ctx->err);
        free(format);
    }
    return bgfm_ctx_agree(ctx, rc);
}
