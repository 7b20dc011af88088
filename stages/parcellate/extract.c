/* extract.c: atlas loading and the one-pass ROI-mean extraction of all atlases from
 * one 4D image (streamed volume by volume), with the non-constant mask, coverage,
 * flags and cleaning. Not collective and not a writer: run.c distributes and writes. */
#include <ctype.h>
#include <math.h>
#include <string.h>

#include "bgfm/nifti.h"
#include "bgfm/parcellate.h"
#include "bgfm/prefetch.h"

void parcellate_atlas_free(parcellate_atlas *a) {
    if (!a) return;
    free(a->region_of_vox);
    free(a->region_labels);
    if (a->region_names)
        for (int r = 0; r < a->n_regions; r++) free(a->region_names[r]);
    free(a->region_names);
    memset(a, 0, sizeof *a);
}

static int cmp_i32(const void *x, const void *y) {
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    return (a > b) - (a < b);
}

char *parcellate_names_guess(const char *atlas_path, bgfm_err *e) {
    size_t n = strlen(atlas_path);
    char *g = bgfm_malloc(e, n + 8, "path");
    if (!g) return NULL;
    memcpy(g, atlas_path, n + 1);
    if (n > 3 && !strcmp(g + n - 3, ".gz")) g[n - 3] = '\0';
    strcat(g, ".txt");
    return g;
}

/* Region names from a "<label> <name> ..." text table; labels missing from the table
 * (or no table) get "label_<v>". */
static int atlas_names(parcellate_atlas *a, const char *names_path, bgfm_err *e) {
    a->region_names = bgfm_calloc(e, (size_t)a->n_regions, sizeof *a->region_names, "names");
    if (!a->region_names) return e->code;
    char *guess = NULL;
    if (!names_path) {
        guess = parcellate_names_guess(a->path, e);
        if (!guess) return e->code;
        names_path = guess;
    }
    FILE *f = fopen(names_path, "r");
    int rc = 0;
    if (f) {
        char line[1024];
        while (fgets(line, sizeof line, f)) {
            char *p = line, *end = NULL;
            long v = strtol(p, &end, 10);
            if (end == p) continue;
            p = end;
            while (*p && isspace((unsigned char)*p)) p++;
            size_t l = 0;
            while (p[l] && !isspace((unsigned char)p[l])) l++;
            if (!l) continue;
            int32_t key = (int32_t)v;
            int32_t *hit = bsearch(&key, a->region_labels, (size_t)a->n_regions, sizeof key, cmp_i32);
            if (!hit) continue;
            int r = (int)(hit - a->region_labels);
            if (a->region_names[r]) continue;
            a->region_names[r] = bgfm_malloc(e, l + 1, "region name");
            if (!a->region_names[r]) {
                rc = e->code;
                break;
            }
            memcpy(a->region_names[r], p, l);
            a->region_names[r][l] = '\0';
        }
        fclose(f);
    } else if (guess == NULL) {
        rc = bgfm_fail(e, BGFM_EDATA, "cannot open the region name table %s of atlas '%s'",
                       names_path, a->name);
    }
    for (int r = 0; r < a->n_regions && !rc; r++) {
        if (a->region_names[r]) continue;
        char buf[32];
        snprintf(buf, sizeof buf, "label_%d", (int)a->region_labels[r]);
        a->region_names[r] = bgfm_strdup(e, buf);
        if (!a->region_names[r]) rc = e->code;
    }
    free(guess);
    return rc;
}

/* Labels are read as float32 (exact up to 2^24). Distinct labels are marked in a bitmap
 * of 2^24 bits; a label's region index is the number of marked labels below it
 * (per-word prefix counts + popcount). The float volume is then turned into the uint16
 * region map in place (element v is written at byte 2v after it was read from byte 4v),
 * so loading a 1 mm atlas peaks at one float volume. */
#define ATLAS_MAX_LABEL (1 << 24)

int parcellate_atlas_load(parcellate_atlas *a, const char *name, const char *path,
                          const char *names_path, bgfm_err *e) {
    memset(a, 0, sizeof *a);
    a->name = name;
    a->path = path;
    niftiio_reader *rd = NULL;
    unsigned char *buf = NULL;
    uint64_t *bits = NULL;
    int32_t *below = NULL;
    const int64_t nwords = ATLAS_MAX_LABEL / 64 + 1;
    int rc = niftiio_open(path, &rd, e);
    if (rc) return rc;
    const niftiio_header *h = niftiio_hdr(rd);
    if (h->nvol != 1) {
        rc = bgfm_fail(e, BGFM_EDATA, "atlas '%s' (%s) has %lld volumes; give a 3D label image",
                       name, path, (long long)h->nvol);
        goto out;
    }
    for (int i = 0; i < 3; i++) a->grid.dim[i] = h->dim[i + 1];
    memcpy(a->grid.affine, h->affine, sizeof a->grid.affine);
    int64_t nvox = h->nvox;
    buf = bgfm_malloc(e, (size_t)nvox * sizeof(float), "atlas volume");
    bits = bgfm_calloc(e, (size_t)nwords, sizeof *bits, "atlas label bitmap");
    below = bgfm_malloc(e, (size_t)nwords * sizeof *below, "atlas label counts");
    if (!buf || !bits || !below) {
        rc = e->code;
        goto out;
    }
    float *vol = (float *)(void *)buf;
    if ((rc = niftiio_read_volume(rd, vol, e))) goto out;
    niftiio_close(&rd);
    float prev = 0.0f; /* most voxels are background or repeat their neighbour's label */
    for (int64_t v = 0; v < nvox; v++) {
        float x = vol[v];
        if (x == prev) continue; /* prev is 0 or a label already checked and marked */
        /* x >= 0 checked first, so truncating x + 0.5 rounds (half up = away from 0) */
        float r = x >= 0 && x < (float)ATLAS_MAX_LABEL ? (float)(int32_t)(x + 0.5f) : -1.0f;
        if (!isfinite(x) || r < 0 || fabsf(x - r) > 1e-3f) {
            rc = bgfm_fail(e, BGFM_EDATA,
                           "atlas '%s' (%s): voxel %lld has value %g; a label atlas needs "
                           "integer labels in [0, 2^24) (0 = background)",
                           name, path, (long long)v, (double)x);
            goto out;
        }
        int32_t l = (int32_t)r;
        if (l) bits[l >> 6] |= (uint64_t)1 << (l & 63);
        prev = x;
    }
    int64_t nu = 0;
    for (int64_t w = 0; w < nwords; w++) {
        below[w] = (int32_t)nu;
        nu += __builtin_popcountll(bits[w]);
    }
    if (nu == 0) {
        rc = bgfm_fail(e, BGFM_EDATA, "atlas '%s' (%s) has no nonzero label", name, path);
        goto out;
    }
    if (nu >= RESAMPLE_NONE) {
        rc = bgfm_fail(e, BGFM_EDATA, "atlas '%s' (%s) has %lld regions; at most %d are supported",
                       name, path, (long long)nu, RESAMPLE_NONE - 1);
        goto out;
    }
    a->n_regions = (int)nu;
    a->region_labels = bgfm_malloc(e, (size_t)nu * sizeof *a->region_labels, "region labels");
    if (!a->region_labels) {
        rc = e->code;
        goto out;
    }
    for (int64_t w = 0, k = 0; w < nwords; w++)
        for (uint64_t m = bits[w]; m; m &= m - 1) a->region_labels[k++] = (int32_t)(w * 64 + __builtin_ctzll(m));
    float px = 0.0f;
    uint16_t preg = RESAMPLE_NONE; /* region of px */
    for (int64_t v = 0; v < nvox; v++) {
        float x;
        memcpy(&x, buf + 4 * v, sizeof x);
        if (x != px) {
            int32_t l = (int32_t)(x + 0.5f);
            preg = RESAMPLE_NONE;
            if (l) {
                uint64_t lower = bits[l >> 6] & (((uint64_t)1 << (l & 63)) - 1);
                preg = (uint16_t)(below[l >> 6] + __builtin_popcountll(lower));
            }
            px = x;
        }
        memcpy(buf + 2 * v, &preg, sizeof preg);
    }
    free(bits);
    bits = NULL;
    free(below);
    below = NULL;
    bgfm_err keep = {0}; /* the shrink is best effort: the larger buffer serves as well */
    unsigned char *shrunk = bgfm_realloc(&keep, buf, (size_t)nvox * sizeof(uint16_t),
                                         "atlas region map");
    if (shrunk) buf = shrunk;
    a->region_of_vox = (uint16_t *)(void *)buf;
    buf = NULL;
    rc = atlas_names(a, names_path, e);
out:
    niftiio_close(&rd);
    free(buf);
    free(bits);
    free(below);
    if (rc) parcellate_atlas_free(a);
    return rc;
}

void parcellate_out_free(parcellate_out *o) {
    if (!o) return;
    free(o->ts);
    free(o->coverage);
    free(o->flagged);
    memset(o, 0, sizeof *o);
}

/* One volume: each cell's sum over its voxels (four partial sums in a fixed order) into
 * csum, each region's sum (the sum of its cells' sums in cell order) into row (G), and
 * the voxels that differ from their first value marked in varies (cell order). Returns 0
 * when a sum is not finite (a NaN or Inf voxel). */
static int volume_sums(const float *vol, const resample_plan *plan, int A, const float *first,
                       uint8_t *varies, double *csum, double *row) {
    const int64_t C = plan->n_cells, *cstart = plan->cstart;
    const uint32_t *cidx = plan->cidx;
    const int32_t *cgid = plan->cgid;
    for (int64_t c = 0; c < C; c++) {
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int64_t k = cstart[c], end = cstart[c + 1];
        for (; k + 4 <= end; k += 4) {
            float v0 = vol[cidx[k]], v1 = vol[cidx[k + 1]], v2 = vol[cidx[k + 2]],
                  v3 = vol[cidx[k + 3]];
            s0 += (double)v0;
            s1 += (double)v1;
            s2 += (double)v2;
            s3 += (double)v3;
            varies[k] |= (uint8_t)(v0 != first[k]);
            varies[k + 1] |= (uint8_t)(v1 != first[k + 1]);
            varies[k + 2] |= (uint8_t)(v2 != first[k + 2]);
            varies[k + 3] |= (uint8_t)(v3 != first[k + 3]);
        }
        for (; k < end; k++) {
            float v = vol[cidx[k]];
            s0 += (double)v;
            varies[k] |= (uint8_t)(v != first[k]);
        }
        csum[c] = (s0 + s1) + (s2 + s3);
    }
    memset(row, 0, (size_t)plan->n_total * sizeof *row);
    int finite = 1;
    for (int64_t c = 0; c < C; c++) {
        finite &= isfinite(csum[c]) != 0;
        for (int a = 0; a < A; a++) {
            int32_t g = cgid[c * A + a];
            if (g >= 0) row[g] += csum[c];
        }
    }
    return finite;
}

/* The data error of volume t holding a NaN or Inf, naming its first such voxel. */
static int nonfinite_fail(const char *image, const float *vol, const resample_plan *plan,
                          const resample_grid *grid, int64_t t, bgfm_err *e) {
    int64_t bad = 0;
    for (int64_t k = 0; k < plan->n_in; k++)
        if (!isfinite(vol[plan->cidx[k]])) {
            bad = plan->cidx[k];
            break;
        }
    int64_t nx = grid->dim[0], ny = grid->dim[1];
    return bgfm_fail(e, BGFM_EDATA,
                     "%s: volume %lld (0-based) has a NaN or Inf value at voxel "
                     "(%lld, %lld, %lld); fix the image or leave it out (on_error: skip)",
                     image, (long long)t, (long long)(bad % nx), (long long)((bad / nx) % ny),
                     (long long)(bad / (nx * ny)));
}

/* One atlas's output from the region sums: coverage, flags, and each kept region's mean
 * over its non-constant voxels, cleaned (x, work: T-long scratch). Regions off..off+N-1
 * of the plan. */
static int atlas_series(const char *image, const parcellate_atlas *at, const resample_plan *plan,
                        int64_t off, int64_t T, const double *S, const double *cs,
                        const int64_t *nconst, const parcellate_opts *o, const clean_sos *filt,
                        const double *Q, int nq, const uint8_t *censor, double *x, double *work,
                        parcellate_out *po, bgfm_err *e) {
    const int64_t G = plan->n_total;
    int N = at->n_regions;
    po->n_regions = N;
    po->ts = bgfm_calloc(e, (size_t)(T * N), sizeof *po->ts, "time series");
    po->coverage = bgfm_calloc(e, (size_t)N, sizeof *po->coverage, "coverage");
    po->flagged = bgfm_calloc(e, (size_t)N, sizeof *po->flagged, "flags");
    if (!po->ts || !po->coverage || !po->flagged) return e->code;
    int any = 0;
    for (int r = 0; r < N; r++) {
        int64_t g = off + r, nv = plan->n_vox[g], nm = nv - nconst[g];
        double cov = nv > 0 ? (double)nm / (double)nv : 0.0;
        po->coverage[r] = (float)cov;
        any |= nm > 0;
        if (nm <= 0 || cov < o->min_coverage) {
            po->flagged[r] = 1;
            continue;
        }
        for (int64_t t = 0; t < T; t++) x[t] = (S[t * G + g] - cs[g]) / (double)nm;
        if (censor) clean_interpolate(x, T, censor, work);
        clean_series(&o->clean, filt, Q, nq, x, T, work);
        for (int64_t t = 0; t < T; t++) po->ts[t * N + r] = (float)x[t];
    }
    if (!any)
        return bgfm_fail(e, BGFM_EDATA,
                         "atlas '%s' (%s) does not overlap the non-constant voxels of %s at all; "
                         "check that both are in the same space (affines)",
                         at->name, at->path, image);
    return 0;
}

/* The image's confound basis (*Q, *nq columns; clean_basis) and, when scrubbed volumes
 * meet a filter, their censoring mask (*censor, T; NULL otherwise): with a filter they are
 * censored by interpolation, not by spike regressors, since a filtered spike regressor is
 * a band-passed wavelet that takes a share of every region's in-band signal with it
 * (docs/parcellate.md "Confounds"). */
static int image_confounds(const char *image, const parcellate_opts *o, const clean_sos *filt,
                           int64_t T, double *work, double **Q, int *nq, uint8_t **censor,
                           bgfm_err *e) {
    confounds_set c;
    int rc = confounds_load(image, &o->conf, T, filt == NULL, &c, e);
    if (rc) return rc;
    if (filt && c.censor)
        for (int k = 0; k < c.K; k++) clean_interpolate(c.X + (int64_t)k * T, T, c.censor, work);
    *nq = clean_basis(&o->clean, filt, c.X, T, c.K, work);
    *Q = c.X;
    *censor = filt ? c.censor : NULL;
    if (!filt) free(c.censor);
    return 0;
}

int parcellate_extract(const char *image, const parcellate_atlas *atlases, int n_atlases,
                       resample_cache *cache, const parcellate_opts *o, parcellate_out *out,
                       int64_t *T_out, double *tr_out, int64_t *bytes, bgfm_err *e) {
    niftiio_reader *rd = NULL;
    prefetch_reader *pf = NULL;
    float *first = NULL;
    uint8_t *varies = NULL, *censor = NULL;
    double *S = NULL, *cs = NULL, *x = NULL, *work = NULL, *csum = NULL, *Q = NULL;
    int64_t *nconst = NULL;
    int nq = 0;
    int rc = niftiio_open(image, &rd, e);
    if (rc) return rc;
    memset(out, 0, (size_t)n_atlases * sizeof *out);
    const niftiio_header *h = niftiio_hdr(rd);
    if (h->ndim < 4 || h->dim[4] < 2 || h->nvol != h->dim[4]) {
        rc = bgfm_fail(e, BGFM_EDATA,
                       "%s: not a 4D time series (dim = %lld x %lld x %lld x %lld, %d dims); "
                       "parcellate needs x*y*z*T with T >= 2",
                       image, (long long)h->dim[1], (long long)h->dim[2], (long long)h->dim[3],
                       (long long)h->dim[4], h->ndim);
        goto out;
    }
    int64_t T = h->dim[4], nvox = h->nvox;
    double tr = o->t_r > 0 ? o->t_r : h->tr_seconds;
    clean_sos sos, *filt = NULL;
    if (o->clean.high_pass > 0 || o->clean.low_pass > 0) {
        if ((rc = clean_butter(o->clean.filter_order, o->clean.high_pass, o->clean.low_pass,
                               tr > 0 ? 1.0 / tr : 0.0, &sos, image, e)))
            goto out;
        if (T <= sos.padlen) {
            rc = bgfm_fail(e, BGFM_EDATA,
                           "%s: %lld volumes are too few for the order-%d filter (forward-"
                           "backward filtering pads %d volumes on each side and needs more "
                           "than that); lower filter_order or drop the filter",
                           image, (long long)T, o->clean.filter_order, sos.padlen);
            goto out;
        }
        filt = &sos;
    }
    int64_t nwork = 2 * (T + 2 * (filt ? filt->padlen : 0));
    work = bgfm_malloc(e, (size_t)(nwork > 5 * T ? nwork : 5 * T) * sizeof *work, "filter work");
    if (!work) {
        rc = e->code;
        goto out;
    }
    /* read before the image: a bad file costs no pass */
    if (confounds_on(&o->conf) &&
        (rc = image_confounds(image, o, filt, T, work, &Q, &nq, &censor, e)))
        goto out;
    resample_grid grid;
    for (int i = 0; i < 3; i++) grid.dim[i] = h->dim[i + 1];
    memcpy(grid.affine, h->affine, sizeof grid.affine);
    resample_src src[64];
    BGFM_ASSERT(n_atlases >= 1 && n_atlases <= 64);
    for (int a = 0; a < n_atlases; a++) {
        src[a].grid = &atlases[a].grid;
        src[a].region_of_vox = atlases[a].region_of_vox;
        src[a].n_regions = atlases[a].n_regions;
        src[a].name = atlases[a].path;
    }
    const resample_plan *plan = NULL;
    if ((rc = resample_plan_get(cache, &grid, src, n_atlases, &plan, e))) goto out;
    const int64_t n_in = plan->n_in, G = plan->n_total;
    const int A = n_atlases;
    first = bgfm_malloc(e, (size_t)(n_in + 1) * sizeof *first, "first values");
    varies = bgfm_calloc(e, (size_t)(n_in + 1), 1, "mask flags");
    S = bgfm_calloc(e, (size_t)(T * G), sizeof *S, "region sums");
    cs = bgfm_calloc(e, (size_t)G, sizeof *cs, "constant sums");
    nconst = bgfm_calloc(e, (size_t)G, sizeof *nconst, "constant counts");
    x = bgfm_malloc(e, (size_t)T * sizeof *x, "series");
    if (!first || !varies || !S || !cs || !nconst || !x) {
        rc = e->code;
        goto out;
    }
    const int64_t C = plan->n_cells;
    const int64_t *cstart = plan->cstart;
    const uint32_t *cidx = plan->cidx;
    const int32_t *cgid = plan->cgid;
    csum = bgfm_malloc(e, (size_t)(C ? C : 1) * sizeof *csum, "cell sums");
    if (!csum) {
        rc = e->code;
        goto out;
    }
    /* One pass: for every volume, each cell's sum over its voxels (four partial sums in
     * a fixed order), then each region's sum as the sum of its cells' sums in cell
     * order, so results depend on nothing but the data. first/varies are kept in cell
     * order (position k of cidx). Voxels whose value never differs from their first
     * value are constant and are subtracted at the end (docs/parcellate.md,
     * "non-constant mask"). Volumes come from the read-ahead ring ("Read-ahead" there),
     * started after this thread's last allocation and closed before its next one: the
     * reader thread's allocations never interleave with ours (BGFM_FAIL_ALLOC_AFTER
     * counts allocations process-wide, so injected failures stay deterministic). */
    int depth = (double)nvox * (double)T * (double)sizeof(float) >= PARCELLATE_PREFETCH_MIN_BYTES
                    ? PARCELLATE_PREFETCH_DEPTH
                    : 1;
    if ((rc = prefetch_open(rd, depth, &pf, e))) goto out;
    for (int64_t t = 0; t < T; t++) {
        const float *vol = NULL;
        if ((rc = prefetch_next(pf, &vol, e))) goto out;
        if (t == 0)
            for (int64_t k = 0; k < n_in; k++) first[k] = vol[cidx[k]];
        /* A NaN or Inf in any voxel of any region makes its cell's sum non-finite
         * (finite float32 values cannot overflow a double sum). */
        if (!volume_sums(vol, plan, A, first, varies, csum, S + t * G)) {
            rc = nonfinite_fail(image, vol, plan, &grid, t, e);
            goto out;
        }
    }
    prefetch_close(&pf); /* joins the reader thread: rd is ours again */
    *bytes = niftiio_bytes_read(rd);
    for (int64_t c = 0; c < C; c++)
        for (int64_t k = cstart[c]; k < cstart[c + 1]; k++) {
            if (varies[k]) continue;
            for (int a = 0; a < A; a++) {
                int32_t g = cgid[c * A + a];
                if (g >= 0) {
                    cs[g] += (double)first[k];
                    nconst[g]++;
                }
            }
        }
    int64_t off = 0;
    for (int a = 0; a < A && !rc; a++) {
        rc = atlas_series(image, &atlases[a], plan, off, T, S, cs, nconst, o, filt, Q, nq, censor,
                          x, work, &out[a], e);
        off += atlases[a].n_regions;
    }
    if (rc) goto out;
    *T_out = T;
    *tr_out = tr;
out:
    if (rc)
        for (int a = 0; a < n_atlases; a++) parcellate_out_free(&out[a]);
    prefetch_close(&pf);
    niftiio_close(&rd);
    free(first);
    free(varies);
    free(S);
    free(csum);
    free(cs);
    free(nconst);
    free(x);
    free(work);
    free(Q);
    free(censor);
    return rc;
}
