/* run.c: the collective parcellate stage: dataset scan, subjects split across ranks by
 * image size, one-pass extraction per subject, timeseries.h5 written collectively.
 * Not the extraction kernel (extract.c) and not the engine (pipeline/engine/run.c). */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "bgfm/bids.h"
#include "bgfm/corpus.h"
#include "bgfm/fsutil.h"
#include "bgfm/h5io.h"
#include "bgfm/json.h"
#include "bgfm/log.h"
#include "bgfm/mline.h"
#include "bgfm/nifti.h"
#include "bgfm/parcellate.h"
#include "bgfm/strlist.h"

/* Image i's share of the work: its file size (at least 1 byte); 1 when it is read from a
 * reused part (u, per dataset), which costs next to nothing. */
static double image_weight(const corpus *c, const parcellate_units *u, int64_t i) {
    if (u->n && u->reuse[c->set[i]]) return 1;
    return (double)(c->all.images[i].file_size > 0 ? c->all.images[i].file_size : 1);
}

/* Contiguous split of the path-ordered images by weight (image_weight): image i goes to
 * rank floor(P * (c_i + s_i / 2) / total), c_i the weight of images before it.
 * Deterministic, monotone (so each rank's rows are one block of the output) and balanced
 * to within one image. */
static void split_by_size(const corpus *cp, const parcellate_units *u, int P, int64_t *lo,
                          int64_t *hi, int rank) {
    const bids_dataset *d = &cp->all;
    double total = 0;
    for (int64_t i = 0; i < d->n_images; i++) total += image_weight(cp, u, i);
    double c = 0;
    *lo = *hi = -1;
    int64_t first = d->n_images, last = d->n_images;
    for (int64_t i = 0; i < d->n_images; i++) {
        double s = image_weight(cp, u, i);
        int owner = (int)floor((double)P * (c + s / 2) / total);
        if (owner >= P) owner = P - 1;
        if (owner == rank && first == d->n_images) first = i;
        if (owner > rank && last == d->n_images) last = i;
        c += s;
    }
    *lo = first;
    *hi = first == d->n_images ? first : last;
}

/* Everything the writer needs, identical on every rank after the exchange. */
typedef struct prun {
    bgfm_ctx *ctx;
    const bgfm_pipeline *pipe;
    parcellate_opts o;
    const char *std_name;
    int A;
    parcellate_atlas *atlases;
    corpus cp;                /* the images of every dataset (cp.all) */
    int64_t lo, hi;           /* this rank's images */
    parcellate_out *outs;     /* (hi - lo) * A */
    int64_t *T;               /* n_images (0 = failed/skipped) */
    double *tr;
    int64_t *row;             /* n_images: output row or -1 */
    int64_t S, sumT;
    int64_t *offsets;         /* S + 1 */
} prun;

static int exchange(prun *p, char **reasons_local, bgfm_err *e) {
    bgfm_ctx *ctx = p->ctx;
    int64_t n = p->cp.all.n_images;
    int64_t *Tl = bgfm_calloc(e, (size_t)n, sizeof *Tl, "T");
    double *trl = bgfm_calloc(e, (size_t)n, sizeof *trl, "TR");
    /* every rank returns here together, or makes the same collective calls below */
    int rc = bgfm_ctx_agree(ctx, Tl && trl ? 0 : e->code);
    if (rc) {
        free(Tl);
        free(trl);
        return rc;
    }
    for (int64_t i = p->lo; i < p->hi; i++) {
        Tl[i] = p->T[i];
        trl[i] = p->tr[i];
    }
    /* every image's T and TR: all zero except at the owner, so the sums are exact */
    rc = BGFM_MPI(e, MPI_Allreduce(Tl, p->T, (int)n, MPI_INT64_T, MPI_SUM, ctx->comm));
    int rc2 = BGFM_MPI(e, MPI_Allreduce(trl, p->tr, (int)n, MPI_DOUBLE, MPI_SUM, ctx->comm));
    rc = bgfm_ctx_agree(ctx, rc ? rc : rc2);
    free(Tl);
    free(trl);
    if (rc) return rc;
    /* skip reasons: "<index>\t<reason>\n" text gathered on every rank */
    size_t len = 0;
    for (int64_t i = p->lo; i < p->hi; i++)
        if (reasons_local[i - p->lo]) len += strlen(reasons_local[i - p->lo]) + 32;
    char *buf = bgfm_malloc(e, len + 1, "skip reasons");
    rc = bgfm_ctx_agree(ctx, buf ? 0 : e->code);
    if (rc) return rc;
    size_t w = 0;
    for (int64_t i = p->lo; i < p->hi; i++)
        if (reasons_local[i - p->lo])
            w += (size_t)snprintf(buf + w, len + 1 - w, "%lld\t%s\n", (long long)i,
                                  reasons_local[i - p->lo]);
    int mylen = (int)w, *lens = bgfm_calloc(e, (size_t)ctx->size, sizeof *lens, "lengths");
    int *displs = bgfm_calloc(e, (size_t)ctx->size, sizeof *displs, "displacements");
    char *all = NULL;
    if (!lens || !displs) rc = e->code;
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc) rc = bgfm_ctx_agree(ctx, BGFM_MPI(e, MPI_Allgather(&mylen, 1, MPI_INT, lens, 1, MPI_INT,
                                                                ctx->comm)));
    int64_t tot = 0;
    for (int k = 0; !rc && k < ctx->size; k++) {
        displs[k] = (int)tot;
        tot += lens[k];
    }
    if (!rc && tot > 1 << 30) rc = bgfm_fail(e, BGFM_EDATA, "too many skip reasons");
    if (!rc && !(all = bgfm_malloc(e, (size_t)tot + 1, "skip reasons"))) rc = e->code;
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc) rc = bgfm_ctx_agree(ctx, BGFM_MPI(e, MPI_Allgatherv(buf, mylen, MPI_CHAR, all, lens,
                                                                 displs, MPI_CHAR, ctx->comm)));
    if (!rc) {
        all[tot] = '\0';
        char *s = all;
        while (!rc && *s) {
            char *nl = strchr(s, '\n'), *tab = strchr(s, '\t');
            BGFM_ASSERT(nl && tab && tab < nl);
            *nl = '\0';
            long long idx = strtoll(s, NULL, 10);
            BGFM_ASSERT(idx >= 0 && idx < n);
            rc = bids_skip_add(&p->cp.all, p->cp.all.images[idx].path, tab + 1, e);
            s = nl + 1;
        }
    }
    free(buf);
    free(all);
    free(lens);
    free(displs);
    if (rc) return rc;
    /* rows in path order over the images that succeeded */
    p->S = 0;
    for (int64_t i = 0; i < n; i++) p->row[i] = p->T[i] > 0 ? p->S++ : -1;
    if (p->S == 0)
        return bgfm_fail(e, BGFM_EDATA, "every image of %s failed (see the skipped list); "
                         "nothing to write", p->cp.all.root);
    p->offsets = bgfm_calloc(e, (size_t)p->S + 1, sizeof *p->offsets, "offsets");
    if (!p->offsets) return e->code;
    for (int64_t i = 0; i < n; i++)
        if (p->row[i] >= 0) p->offsets[p->row[i] + 1] = p->offsets[p->row[i]] + p->T[i];
    p->sumT = p->offsets[p->S];
    return 0;
}

static int write_atlas(prun *p, hid_t f, int a, bgfm_err *e) {
    const parcellate_atlas *at = &p->atlases[a];
    int N = at->n_regions, A = p->A;
    int64_t S = p->S;
    char path[512];
    int rc = 0;
    /* this rank's block of rows */
    int64_t r0 = -1, nr = 0, t0 = 0, nt = 0;
    for (int64_t i = p->lo; i < p->hi; i++) {
        if (p->row[i] < 0) continue;
        if (r0 < 0) {
            r0 = p->row[i];
            t0 = p->offsets[r0];
        }
        nr++;
        nt += p->T[i];
    }
    if (r0 < 0) r0 = 0;
    BGFM_ASSERT(nr == 0 || p->offsets[r0 + nr] - p->offsets[r0] == nt);
    float *ts = bgfm_malloc(e, (size_t)(nt * N + 1) * sizeof *ts, "time series block");
    float *cov = bgfm_malloc(e, (size_t)(nr * N + 1) * sizeof *cov, "coverage block");
    uint8_t *fl = bgfm_malloc(e, (size_t)(nr * N + 1), "flag block");
    /* together out, or together into the collective writes */
    rc = bgfm_ctx_agree(p->ctx, ts && cov && fl ? 0 : e->code);
    if (rc) {
        free(ts);
        free(cov);
        free(fl);
        return rc;
    }
    int64_t k = 0, tk = 0;
    for (int64_t i = p->lo; i < p->hi; i++) {
        if (p->row[i] < 0) continue;
        const parcellate_out *o = &p->outs[(i - p->lo) * A + a];
        memcpy(ts + tk * N, o->ts, (size_t)(p->T[i] * N) * sizeof *ts);
        memcpy(cov + k * N, o->coverage, (size_t)N * sizeof *cov);
        memcpy(fl + k * N, o->flagged, (size_t)N);
        tk += p->T[i];
        k++;
    }
    hsize_t d2[2] = {(hsize_t)p->sumT, (hsize_t)N}, s2[2] = {(hsize_t)S, (hsize_t)N};
    hsize_t dn[1] = {(hsize_t)N}, ds1[1] = {(hsize_t)S + 1};
    snprintf(path, sizeof path, "/atlases/%s/timeseries", at->name);
    rc = h5io_write_block(f, path, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d2, t0, nt, ts, e);
    snprintf(path, sizeof path, "/atlases/%s/coverage", at->name);
    if (!rc) rc = h5io_write_block(f, path, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, s2, r0, nr, cov, e);
    snprintf(path, sizeof path, "/atlases/%s/flagged", at->name);
    if (!rc) rc = h5io_write_block(f, path, H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, s2, r0, nr, fl, e);
    snprintf(path, sizeof path, "/atlases/%s/offsets", at->name);
    if (!rc)
        rc = h5io_write_small(f, path, H5T_STD_I64LE, H5T_NATIVE_INT64, 1, ds1, p->offsets, 0, e);
    snprintf(path, sizeof path, "/atlases/%s/region_labels", at->name);
    if (!rc)
        rc = h5io_write_small(f, path, H5T_STD_I32LE, H5T_NATIVE_INT32, 1, dn, at->region_labels,
                              0, e);
    snprintf(path, sizeof path, "/atlases/%s/region_names", at->name);
    if (!rc)
        rc = h5io_write_strings(f, path, (const char *const *)at->region_names, N, 0, e);
    snprintf(path, sizeof path, "/atlases/%s", at->name);
    int64_t nreg = N;
    if (!rc) rc = h5io_attr_set_str(f, path, "path", at->path, e);
    if (!rc) rc = h5io_attr_set_i64(f, path, "n_regions", &nreg, 1, e);
    free(ts);
    free(cov);
    free(fl);
    return rc;
}

/* One scan's mean framewise displacement when the stage regresses nothing: its confounds
 * file read for head motion alone, if it has one (NaN if not). A file that cannot be read
 * is a warning, not an error: the stage was not asked to use it. 0, or BGFM_ENOMEM. */
static int scan_motion(const bgfm_ctx *ctx, const char *image, int64_t T, double *fd,
                       bgfm_err *e) {
    static const confounds_spec none = {0};
    *fd = NAN;
    bgfm_err le = {0};
    confounds_set c = {.mean_fd = NAN};
    char *cp = confounds_path(image, 1, &le);
    const int have = cp != NULL; /* no file: le says so, and the scan's motion is unknown */
    int rc = have ? confounds_load(image, &none, T, 0, &c, &le) : le.code;
    free(cp);
    if (rc == BGFM_ENOMEM) {
        *e = le;
        return rc;
    }
    if (have && rc) {
        log_warn(ctx, "parcellate: %s; the scan's head motion is left unknown (nothing is "
                 "regressed, so the run goes on)", le.msg);
        return 0;
    }
    *fd = c.mean_fd; /* NaN without a file or without its framewise_displacement column */
    confounds_set_free(&c);
    return 0;
}

/* /subjects/n_scrubbed and /subjects/mean_fd: each rank reads its own images' confounds
 * files again (small, and hashed into the manifest, so the same bytes the extraction
 * read); the sums over ranks are exact (one owner per row). When the stage regresses
 * nothing, each scan's file is read for its head motion alone, where there is one, and the
 * two datasets are written only if some scan had a mean FD (docs/parcellate.md). */
static int write_confound_summary(prun *p, hid_t f, bgfm_err *e) {
    bgfm_ctx *ctx = p->ctx;
    const int asked = confounds_on(&p->o.conf);
    int64_t S = p->S, *ns = bgfm_calloc(e, (size_t)S + 1, sizeof *ns, "scrubbed counts");
    double *fd = bgfm_calloc(e, (size_t)S + 1, sizeof *fd, "mean FD");
    int rc = ns && fd ? 0 : e->code;
    int64_t known = 0;
    for (int64_t i = p->lo; !rc && i < p->hi; i++) {
        int64_t r = p->row[i];
        if (r < 0) continue;
        if (!asked) {
            rc = scan_motion(ctx, p->cp.all.images[i].path, p->T[i], &fd[r], e);
        } else {
            confounds_set c;
            rc = confounds_load(p->cp.all.images[i].path, &p->o.conf, p->T[i], 0, &c, e);
            ns[r] = c.n_scrubbed;
            fd[r] = c.mean_fd;
            confounds_set_free(&c);
        }
        known += isfinite(fd[r]);
    }
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc) {
        rc = BGFM_MPI(e, MPI_Allreduce(MPI_IN_PLACE, ns, (int)S, MPI_INT64_T, MPI_SUM, ctx->comm));
        int rc2 = BGFM_MPI(e, MPI_Allreduce(MPI_IN_PLACE, fd, (int)S, MPI_DOUBLE, MPI_SUM, ctx->comm));
        int rc3 = BGFM_MPI(e, MPI_Allreduce(MPI_IN_PLACE, &known, 1, MPI_INT64_T, MPI_SUM, ctx->comm));
        rc = bgfm_ctx_agree(ctx, rc ? rc : rc2 ? rc2 : rc3);
    }
    hsize_t dims[1] = {(hsize_t)S};
    if (!rc && (asked || known > 0))
        rc = h5io_write_small(f, "/subjects/n_scrubbed", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, dims,
                              ns, 0, e);
    if (!rc && (asked || known > 0))
        rc = h5io_write_small(f, "/subjects/mean_fd", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, dims,
                              fd, 0, e);
    free(ns);
    free(fd);
    return rc;
}

static int write_file(prun *p, const char *file, bgfm_err *e) {
    bgfm_ctx *ctx = p->ctx;
    /* A disk that is already too full is reported before any rank enters HDF5's
     * collective writes (a write failing inside them on one rank only can leave the
     * ranks in different internal barriers). Size: series + coverage + flags, plus
     * 1 MiB for metadata and strings. */
    int64_t need = 1 << 20;
    for (int a = 0; a < p->A; a++)
        need += (p->sumT + 2 * p->S) * (int64_t)p->atlases[a].n_regions * 4;
    int rc = 0;
    if (ctx->rank == 0) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", file);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
        rc = fs_check_space(slash ? dir : ".", need, file, e);
    }
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) return rc;
    hid_t f = h5io_create(ctx->comm, file, e);
    rc = f < 0 ? (e->code ? e->code : BGFM_EIO) : 0;
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) return rc;
    char atl[4096] = "";
    for (int a = 0; a < p->A; a++) strlist_append(atl, sizeof atl, p->atlases[a].name, ',');
    int64_t one = 1, det = p->o.clean.detrend, ford = p->o.clean.filter_order;
    double hp = p->o.clean.high_pass, lp = p->o.clean.low_pass, mc = p->o.min_coverage;
    double tro = p->o.t_r;
    if (!rc) rc = h5io_attr_set_str(f, NULL, "format", "bgfm-timeseries", e);
    if (!rc) rc = h5io_attr_set_i64(f, NULL, "format_version", &one, 1, e);
    if (!rc) rc = h5io_attr_set_i64(f, NULL, "n_subjects", &p->S, 1, e);
    if (!rc) rc = h5io_attr_set_str(f, NULL, "atlases", atl, e);
    if (!rc) rc = h5io_attr_set_i64(f, NULL, "detrend", &det, 1, e);
    if (!rc) rc = h5io_attr_set_f64(f, NULL, "high_pass", &hp, 1, e);
    if (!rc) rc = h5io_attr_set_f64(f, NULL, "low_pass", &lp, 1, e);
    if (!rc) rc = h5io_attr_set_str(f, NULL, "standardize", p->std_name, e);
    if (!rc) rc = h5io_attr_set_i64(f, NULL, "filter_order", &ford, 1, e);
    if (!rc) rc = h5io_attr_set_f64(f, NULL, "min_coverage", &mc, 1, e);
    if (!rc) rc = h5io_attr_set_f64(f, NULL, "t_r_override", &tro, 1, e);
    char conf[4096] = "";
    for (int k = 0; k < p->o.conf.n_names; k++) strlist_append(conf, sizeof conf, p->o.conf.names[k], ',');
    double scrub[2] = {p->o.conf.scrub, p->o.conf.max_scrubbed};
    if (!rc) rc = h5io_attr_set_str(f, NULL, "confounds", conf, e);
    if (!rc) rc = h5io_attr_set_f64(f, NULL, "scrub", &scrub[0], 1, e);
    if (!rc) rc = h5io_attr_set_f64(f, NULL, "max_scrubbed", &scrub[1], 1, e);
    if (!rc) rc = corpus_write_subjects(&p->cp, p->pipe, ctx, f, p->S, p->row, p->T, p->tr, e);
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc) rc = write_confound_summary(p, f, e);
    for (int a = 0; a < p->A && !rc; a++) rc = write_atlas(p, f, a, e);
    if (!rc && p->cp.all.n_skipped > 0) {
        const char **im = bgfm_calloc(e, (size_t)p->cp.all.n_skipped, sizeof *im, "skipped");
        const char **re = bgfm_calloc(e, (size_t)p->cp.all.n_skipped, sizeof *re, "skipped");
        if (!im || !re) rc = e->code;
        for (int64_t k = 0; !rc && k < p->cp.all.n_skipped; k++) {
            im[k] = p->cp.all.skipped[k].image;
            re[k] = p->cp.all.skipped[k].reason;
        }
        if (!rc) rc = h5io_write_strings(f, "/skipped/image", im, p->cp.all.n_skipped, 0, e);
        if (!rc) rc = h5io_write_strings(f, "/skipped/reason", re, p->cp.all.n_skipped, 0, e);
        free(im);
        free(re);
    }
    int crc = h5io_close(&f, file, e);
    if (!rc) rc = crc;
    return bgfm_ctx_agree(ctx, rc);
}

/* Image i (this rank's) from its dataset's reused unit: its series, or its skip reason. */
static int from_unit(prun *p, parcellate_units *u, int64_t i, char **reasons, bgfm_err *e) {
    if (u->reason[i]) {
        reasons[i - p->lo] = bgfm_strdup(e, u->reason[i]);
        return reasons[i - p->lo] ? 0 : e->code;
    }
    int rc = parcellate_units_load(u, &p->cp, i, p->atlases, p->A, p->outs + (i - p->lo) * p->A, e);
    if (!rc) {
        p->T[i] = u->T[i];
        p->tr[i] = u->tr[i];
    }
    return rc;
}

/* This rank's memory estimate in bytes (docs/reliability.md, "Resource limits"): the
 * atlases (kept, plus the largest one's load buffers), the largest image's working set
 * (the read-ahead volumes, the voxel plan of its grid, region sums) and the time series
 * it keeps for its subjects until the collective write (plus the write block of the
 * largest atlas). Headers only are read; an unreadable image counts as nothing here and
 * fails in the extraction. */
static double memory_estimate(const prun *p, const parcellate_units *u, double *work,
                              double *kept) {
    int64_t ntot = 0, nmax = 0;
    double atl = 0, load = 0;
    for (int a = 0; a < p->A; a++) {
        ntot += p->atlases[a].n_regions;
        if (p->atlases[a].n_regions > nmax) nmax = p->atlases[a].n_regions;
        const int64_t *d = p->atlases[a].grid.dim;
        double nv = (double)d[0] * (double)d[1] * (double)d[2];
        atl += nv * 2.0 + (double)p->atlases[a].n_regions * 64.0;
        if (nv * 6.0 > load) load = nv * 6.0; /* float volume + raw bytes while loading */
    }
    double maxw = 0, sumT = 0;
    for (int64_t i = p->lo; i < p->hi; i++) {
        if (u->n && u->reuse[p->cp.set[i]]) { /* from its part: its series, no image */
            sumT += (double)u->T[i];
            continue;
        }
        niftiio_reader *rd = NULL;
        bgfm_err ignore = {0};
        if (niftiio_open(p->cp.all.images[i].path, &rd, &ignore)) continue;
        const niftiio_header *h = niftiio_hdr(rd);
        double nvox = (double)h->nvox, T = (double)h->nvol;
        /* read-ahead volumes (float) + raw (up to 8 bytes), grid plan (maps, voxel
         * lists), masks */
        double w = nvox * (25.0 + 4.0 * PARCELLATE_PREFETCH_DEPTH + 6.0 * p->A) +
                   T * (double)ntot * 8.0;
        if (w > maxw) maxw = w;
        sumT += T;
        niftiio_close(&rd);
    }
    *work = maxw;
    *kept = sumT * (double)(ntot + nmax) * 4.0;
    return atl + load + maxw + *kept;
}

/* Collective: the stage's "parcellate" line of metrics.jsonl (rank 0 writes it):
 * the extraction's own wall time and rate, and every rank's peak RSS. */
static void metrics_line(prun *p, bgfm_stage_run *r, double wall, double bytes, double items,
                         double reused) {
    bgfm_ctx *ctx = p->ctx;
    bgfm_err me = {0}; /* metrics are best effort: a failure is a warning */
    double *all = ctx->rank == 0 ? bgfm_calloc(&me, (size_t)ctx->size, sizeof *all,
                                               "parcellate peak RSS of the ranks")
                                 : NULL;
    /* rank 0 gathers into `all`: without it no rank enters the gather */
    int rc = bgfm_err_agree(ctx->comm, &me, me.code);
    if (!rc) rc = mline_gather_rss(ctx, all, &me);
    if (rc) log_warn(ctx, "%s", me.msg);
    if (!rc && ctx->rank == 0 && all && r->metrics) {
        mline m;
        mline_begin(&m, "parcellate", r->stage->name, "parcellate");
        mline_int(&m, "ranks", ctx->size);
        mline_num(&m, "wall_s", wall);
        mline_num(&m, "bytes_read", bytes);
        mline_num(&m, "subjects", items);
        mline_num(&m, "subjects_per_s", wall > 0 ? items / wall : 0);
        mline_num(&m, "images_reused", reused);
        mline_nums(&m, "peak_rss_mib", all, ctx->size, 1);
        mline_append(&m, ctx, r->metrics);
    }
    free(all);
}

/* The stage's `with:` keys as extraction options. */
static void resolve_opts(prun *p, const bgfm_params *w) {
    p->o.clean.detrend = params_bool(w, "detrend");
    p->o.clean.high_pass = params_real(w, "high_pass");
    p->o.clean.low_pass = params_real(w, "low_pass");
    p->o.clean.filter_order = (int)params_int(w, "filter_order");
    p->std_name = params_str(w, "standardize");
    p->o.clean.standardize = !strcmp(p->std_name, "zscore") ? CLEAN_STD_ZSCORE
                             : !strcmp(p->std_name, "psc")  ? CLEAN_STD_PSC
                                                            : CLEAN_STD_NONE;
    const bgfm_value *cv = params_value(w, "confounds");
    p->o.conf.names = cv->list;
    p->o.conf.n_names = cv->n_list;
    p->o.conf.scrub = params_real(w, "scrub");
    p->o.conf.max_scrubbed = params_real(w, "max_scrubbed");
    p->o.t_r = params_has(w, "t_r") ? params_real(w, "t_r") : 0.0;
    p->o.min_coverage = params_real(w, "min_coverage");
}

int parcellate_stage_run(bgfm_stage_run *r) {
    bgfm_ctx *ctx = r->ctx;
    bgfm_err *e = &ctx->err;
    const bgfm_params *w = &r->stage->with;
    double t_start = MPI_Wtime();
    prun p;
    memset(&p, 0, sizeof p);
    p.ctx = ctx;
    p.pipe = r->pipe;
    p.A = r->pipe->n_atlases;
    resolve_opts(&p, w);
    int skip = r->pipe->on_error == BGFM_ON_ERROR_SKIP;
    char **reasons = NULL;
    resample_cache cache = {0};
    char *file = fs_join(r->outdir, "timeseries.h5", e);
    int rc = file ? 0 : e->code;
    if (!rc && (p.A < 1 || p.A > 64))
        rc = bgfm_fail(e, BGFM_EUSAGE, "parcellate needs 1 to 64 atlases (got %d)", p.A);
    /* phase 1: every rank scans the dataset and loads the atlases */
    if (!rc) rc = parcellate_paths_check(r->pipe, e);
    if (!rc) rc = corpus_scan(r->pipe, skip, &p.cp, e);
    if (!rc && !(p.atlases = bgfm_calloc(e, (size_t)p.A, sizeof *p.atlases, "atlases")))
        rc = e->code;
    for (int a = 0; a < p.A && !rc; a++)
        rc = parcellate_atlas_load(&p.atlases[a], r->pipe->atlases[a].name,
                                   r->pipe->atlases[a].path, r->pipe->atlases[a].labels, e);
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc) {
        /* every rank must have seen the same dataset */
        int64_t mm[2] = {p.cp.all.n_images, -p.cp.all.n_images}, g[2];
        rc = BGFM_MPI(e, MPI_Allreduce(mm, g, 2, MPI_INT64_T, MPI_MAX, ctx->comm));
        if (!rc && g[0] != -g[1])
            rc = bgfm_fail(e, BGFM_EIO, "ranks see different image counts in %s (%lld vs %lld); "
                           "is the dataset on a shared file system and not being modified?",
                           p.cp.all.root, (long long)-g[1], (long long)g[0]);
        rc = bgfm_ctx_agree(ctx, rc);
    }
    /* phase 2: this rank's images, each read once */
    /* the datasets whose previous results are today's (inputs.datasets) */
    parcellate_units units;
    memset(&units, 0, sizeof units);
    if (!rc) rc = parcellate_units_open(r, &p.cp, p.atlases, p.A, p.o.t_r, &units);
    int64_t n = p.cp.all.n_images, mine_done = 0, ok_local = 0, reused_local = 0;
    double bytes_local = 0;
    if (!rc) {
        split_by_size(&p.cp, &units, ctx->size, &p.lo, &p.hi, ctx->rank);
        int64_t nm = p.hi - p.lo;
        p.T = bgfm_calloc(e, (size_t)n, sizeof *p.T, "T");
        p.tr = bgfm_calloc(e, (size_t)n, sizeof *p.tr, "TR");
        p.row = bgfm_calloc(e, (size_t)n, sizeof *p.row, "rows");
        p.outs = bgfm_calloc(e, (size_t)(nm * p.A + 1), sizeof *p.outs, "outputs");
        reasons = bgfm_calloc(e, (size_t)(nm + 1), sizeof *reasons, "reasons");
        if (!p.T || !p.tr || !p.row || !p.outs || !reasons) rc = e->code;
        if (!rc && r->pipe->max_memory_per_rank > 0) {
            double work = 0, kept = 0, est = memory_estimate(&p, &units, &work, &kept);
            char what[200];
            snprintf(what, sizeof what, "largest image %.0f MiB of working set + %.0f MiB of "
                     "time series for %lld subject(s)", work / 1048576.0, kept / 1048576.0,
                     (long long)nm);
            rc = config_mem_check(r->pipe->max_memory_per_rank, r->pipe->file, r->stage->name,
                                  est, what, "use more ranks (subjects are split across them)",
                                  e);
        }
        log_progress pg;
        log_progress_start(ctx, &pg, "parcellate", "subj", n);
        for (int64_t i = p.lo; i < p.hi && !rc; i++) {
            int64_t T = 0, bytes = 0;
            double tr = 0;
            bgfm_err le = {0};
            parcellate_opts oi = p.o; /* a dataset's own TR wins over the stage's */
            oi.t_r = corpus_t_r(&p.cp, i, p.o.t_r);
            if (units.n && units.reuse[p.cp.set[i]]) { /* from its dataset's reused unit */
                rc = from_unit(&p, &units, i, reasons, e);
                reused_local++;
                mine_done++;
                continue;
            }
            int lrc = parcellate_extract(p.cp.all.images[i].path, p.atlases, p.A, &cache, &oi,
                                     p.outs + (i - p.lo) * p.A, &T, &tr, &bytes, &le);
            bytes_local += (double)bytes;
            if (lrc && skip && (lrc == BGFM_EDATA || lrc == BGFM_EIO)) {
                log_warn(ctx, "parcellate: skipping %s", le.msg);
                reasons[i - p.lo] = bgfm_strdup(e, le.msg);
                if (!reasons[i - p.lo]) rc = e->code;
            } else if (lrc) {
                rc = bgfm_fail(e, lrc, "%s", le.msg);
            } else {
                p.T[i] = T;
                p.tr[i] = tr;
                ok_local++;
            }
            mine_done++;
            /* rank 0's own share extrapolated: no collective inside this loop */
            if (ctx->rank == 0 && nm > 0) log_progress_update(ctx, &pg, mine_done * n / nm);
        }
        rc = bgfm_ctx_agree(ctx, rc);
        if (!rc) log_progress_end(ctx, &pg, n);
    }
    /* phase 3: exchange lengths and skip reasons, then write collectively */
    if (!rc) rc = bgfm_ctx_agree(ctx, exchange(&p, reasons, e));
    if (!rc)
        rc = parcellate_units_write(r, &units, &p.cp, p.atlases, p.A, p.lo, p.hi, p.outs, p.T,
                                    p.tr);
    if (!rc) rc = write_file(&p, file, e);
    if (rc && ctx->rank == 0 && file) unlink(file); /* no partial output */
    r->bytes_read = bytes_local;
    r->items = (double)ok_local;
    r->items_unit = "subjects";
    double sums[3] = {bytes_local, (double)ok_local, (double)reused_local}, tot[3] = {0, 0, 0};
    bgfm_err me = {0}; /* metrics are best effort: a failure is a warning */
    if (!BGFM_MPI(&me, MPI_Allreduce(sums, tot, 3, MPI_DOUBLE, MPI_SUM, ctx->comm)))
        metrics_line(&p, r, MPI_Wtime() - t_start, tot[0], tot[1], tot[2]);
    else
        log_warn(ctx, "%s", me.msg);
    if (!rc && p.cp.all.n_skipped > 0) {
        log_info(ctx, "parcellate: %lld image(s)/participant(s) skipped; reasons in %s "
                 "(/skipped)", (long long)p.cp.all.n_skipped, file);
        rc = BGFM_PARTIAL;
        bgfm_fail(e, BGFM_PARTIAL, "parcellate: %lld image(s) or participant(s) skipped "
                  "(on_error: skip); see /skipped in timeseries.h5", (long long)p.cp.all.n_skipped);
        /* the same list goes into the manifest (rank 0 writes it) */
        for (int64_t k = 0; ctx->rank == 0 && k < p.cp.all.n_skipped; k++)
            if (bgfm_stage_skip_add(r, p.cp.all.skipped[k].image, p.cp.all.skipped[k].reason))
                log_warn(ctx, "parcellate: out of memory listing skipped images");
    }
    for (int64_t i = 0; p.outs && i < (p.hi - p.lo) * p.A; i++) parcellate_out_free(&p.outs[i]);
    for (int64_t i = 0; reasons && i < p.hi - p.lo; i++) free(reasons[i]);
    free(reasons);
    parcellate_units_free(&units, n);
    free(p.outs);
    free(p.T);
    free(p.tr);
    free(p.row);
    free(p.offsets);
    for (int a = 0; p.atlases && a < p.A; a++) parcellate_atlas_free(&p.atlases[a]);
    free(p.atlases);
    corpus_free(&p.cp);
    resample_cache_free(&cache);
    free(file);
    return rc;
}
