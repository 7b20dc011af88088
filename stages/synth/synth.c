/* synth.c: `bgfm synth`: a synthetic BIDS cohort (MNI152 2/3 mm grid, brain mask from a
 * label atlas, band-limited latent networks whose coupling depends on the subject's traits
 * and fingerprint or on the group, parcel mixing, site effects, i.i.d. noise), subjects
 * shared by rank, written complete-or-absent. Not a pipeline stage and not a realistic
 * fMRI simulator; the population model is traits.c, the whole model docs/synth.md. */
#include "bgfm/synth.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bgfm/fsutil.h"
#include "bgfm/log.h"
#include "bgfm/nifti.h"
#include "bgfm/rng.h"
#include "bgfm/synth_motion.h"
#include "bgfm/synth_traits.h"

/* Model constants (docs/synth.md, "Parameters"). */
#define SYNTH_BASELINE 1000.0    /* B: mean intensity */
#define SYNTH_BASE_SD 0.10       /* relative spatial sd of the baseline */
#define SYNTH_AMP 10.0           /* A: network signal amplitude */
#define SYNTH_AMP_SD 0.20        /* relative spatial sd of the amplitude */
#define SYNTH_GLOBAL 0.20        /* lambda: weight of the global (mean network) signal */
#define SYNTH_NOISE 20.0         /* sigma0: voxel noise sd */
#define SYNTH_SITE_GAIN_SD 0.20  /* site gain = exp(0.2 xi) */
#define SYNTH_SITE_OFFSET_SD 50.0
#define SYNTH_F_LO 0.01
#define SYNTH_F_HI 0.10
#define SYNTH_VORONOI 96         /* parcels of the ellipsoid mask */
#define SYNTH_INT16_SLOPE 0.1

/* RNG keys (SYNTH_COHORT, SYNTH_R_*): include/bgfm/synth_traits.h. */

int synth_subject_group(int64_t s) { return (int)(s % 2); }
int64_t synth_subject_site(int64_t s, int64_t sites) { return (s / 2) % sites; }

/* ------------------------------------------------------------------ the grid + maps */

typedef struct synth_grid {
    int64_t dim[3], nvox;
    double affine[4][4];
    int32_t *parcel;       /* nvox: 0 outside the mask, else 1..n_parcels */
    int n_parcels;
    int32_t *parcel_label; /* n_parcels + 1: atlas label of each parcel (index = parcel) */
    uint8_t *parcel_net;   /* n_parcels + 1: network 0..N-1 */
    int64_t n_brain;
    int64_t *brain;        /* n_brain voxel indices in the mask, increasing */
} synth_grid;

static void grid_free(synth_grid *g) {
    free(g->parcel);
    free(g->parcel_label);
    free(g->parcel_net);
    free(g->brain);
    memset(g, 0, sizeof *g);
}

static int inv_affine(double a[4][4], double o[4][4]) {
    double det = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) -
                 a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
                 a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
    if (fabs(det) < 1e-12) return 0;
    double m[3][3];
    m[0][0] = (a[1][1] * a[2][2] - a[1][2] * a[2][1]) / det;
    m[0][1] = (a[0][2] * a[2][1] - a[0][1] * a[2][2]) / det;
    m[0][2] = (a[0][1] * a[1][2] - a[0][2] * a[1][1]) / det;
    m[1][0] = (a[1][2] * a[2][0] - a[1][0] * a[2][2]) / det;
    m[1][1] = (a[0][0] * a[2][2] - a[0][2] * a[2][0]) / det;
    m[1][2] = (a[0][2] * a[1][0] - a[0][0] * a[1][2]) / det;
    m[2][0] = (a[1][0] * a[2][1] - a[1][1] * a[2][0]) / det;
    m[2][1] = (a[0][1] * a[2][0] - a[0][0] * a[2][1]) / det;
    m[2][2] = (a[0][0] * a[1][1] - a[0][1] * a[1][0]) / det;
    memset(o, 0, sizeof(double) * 16);
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) o[i][j] = m[i][j];
        o[i][3] = -(m[i][0] * a[0][3] + m[i][1] * a[1][3] + m[i][2] * a[2][3]);
    }
    o[3][3] = 1;
    return 1;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Parcels from a label atlas: nearest-neighbour resampling through the affines, then
 * one 6-neighbour dilation (so that other atlases' boundary voxels carry signal). */
static int parcels_from_atlas(const synth_params *p, synth_grid *g, bgfm_err *e) {
    niftiio_header h;
    double *lab = NULL;
    if (access(p->mask_atlas, R_OK) != 0)
        return bgfm_fail(e, BGFM_EDATA, "%s: cannot read the mask atlas (%s); install mricron's "
                         "templates, give --mask-atlas PATH (a 3D label image) or --mask-atlas "
                         "none (ellipsoid)", p->mask_atlas, strerror(errno));
    int rc = niftiio_read_3d(p->mask_atlas, &h, &lab, e);
    if (rc) return rc;
    double inv[4][4];
    if (!inv_affine(h.affine, inv)) {
        free(lab);
        return bgfm_fail(e, BGFM_EDATA, "%s: singular affine; give another --mask-atlas",
                         p->mask_atlas);
    }
    /* voxel of the grid -> voxel of the atlas: inv(A_atlas) * A_grid */
    double m[3][4];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) {
            double s = 0;
            for (int k = 0; k < 4; k++) s += inv[i][k] * g->affine[k][j];
            m[i][j] = s;
        }
    int32_t *raw = bgfm_calloc(e, (size_t)g->nvox, sizeof *raw, "synth label map");
    if (!raw) {
        free(lab);
        return BGFM_ENOMEM;
    }
    int64_t nx = g->dim[0], ny = g->dim[1], nz = g->dim[2];
    for (int64_t k = 0; k < nz; k++)
        for (int64_t j = 0; j < ny; j++)
            for (int64_t i = 0; i < nx; i++) {
                double v[3];
                for (int r = 0; r < 3; r++)
                    v[r] = m[r][0] * (double)i + m[r][1] * (double)j + m[r][2] * (double)k + m[r][3];
                int64_t a = (int64_t)floor(v[0] + 0.5), b = (int64_t)floor(v[1] + 0.5),
                        c = (int64_t)floor(v[2] + 0.5);
                if (a < 0 || b < 0 || c < 0 || a >= h.dim[1] || b >= h.dim[2] || c >= h.dim[3])
                    continue;
                double x = lab[a + h.dim[1] * (b + h.dim[2] * c)];
                if (x > 0 && x < 2147483647.0) raw[i + nx * (j + ny * k)] = (int32_t)x;
            }
    free(lab);
    /* dilation by one voxel (6-neighbourhood, first labelled neighbour in a fixed order) */
    int32_t *dil = bgfm_malloc(e, (size_t)g->nvox * sizeof *dil, "synth dilated label map");
    if (!dil) {
        free(raw);
        return BGFM_ENOMEM;
    }
    memcpy(dil, raw, (size_t)g->nvox * sizeof *dil);
    for (int64_t k = 0; k < nz; k++)
        for (int64_t j = 0; j < ny; j++)
            for (int64_t i = 0; i < nx; i++) {
                int64_t v = i + nx * (j + ny * k);
                if (raw[v]) continue;
                int32_t l = 0;
                if (!l && i > 0) l = raw[v - 1];
                if (!l && i + 1 < nx) l = raw[v + 1];
                if (!l && j > 0) l = raw[v - nx];
                if (!l && j + 1 < ny) l = raw[v + nx];
                if (!l && k > 0) l = raw[v - nx * ny];
                if (!l && k + 1 < nz) l = raw[v + nx * ny];
                dil[v] = l;
            }
    free(raw);
    /* atlas labels -> parcel indices 1..P (sorted labels) */
    int32_t *sorted = bgfm_malloc(e, (size_t)g->nvox * sizeof *sorted, "synth atlas labels");
    if (!sorted) {
        free(dil);
        return BGFM_ENOMEM;
    }
    int64_t n = 0;
    for (int64_t v = 0; v < g->nvox; v++)
        if (dil[v]) sorted[n++] = dil[v];
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_i32);
    int64_t u = 0;
    for (int64_t i = 0; i < n; i++)
        if (i == 0 || sorted[i] != sorted[i - 1]) sorted[u++] = sorted[i];
    if (u < p->networks) {
        free(dil);
        free(sorted);
        return bgfm_fail(e, BGFM_EDATA, "%s: only %lld labelled regions fall on the grid, "
                         "fewer than --networks %d; give another --mask-atlas",
                         p->mask_atlas, (long long)u, p->networks);
    }
    g->n_parcels = (int)u;
    g->parcel_label = bgfm_malloc(e, (size_t)(u + 1) * sizeof *g->parcel_label,
                                  "synth parcel labels");
    if (!g->parcel_label) {
        free(dil);
        free(sorted);
        return BGFM_ENOMEM;
    }
    g->parcel_label[0] = 0;
    memcpy(g->parcel_label + 1, sorted, (size_t)u * sizeof *sorted);
    for (int64_t v = 0; v < g->nvox; v++) {
        if (!dil[v]) continue;
        int32_t *hit = bsearch(&dil[v], sorted, (size_t)u, sizeof *sorted, cmp_i32);
        BGFM_ASSERT(hit != NULL);
        dil[v] = (int32_t)(hit - sorted) + 1;
    }
    free(sorted);
    g->parcel = dil;
    return 0;
}

/* Parcels of a smooth ellipsoid brain: Voronoi cells of centres drawn inside it. */
static int parcels_ellipsoid(const synth_params *p, synth_grid *g, bgfm_err *e) {
    const double c0[3] = {0, -18, 10}, ax[3] = {68, 88, 62};
    int P = SYNTH_VORONOI;
    double cen[SYNTH_VORONOI][3];
    rng_stream r;
    rng_init(&r, p->seed, RNG_SYNTH, SYNTH_COHORT, SYNTH_R_VORONOI, 0);
    for (int q = 0; q < P;) {
        double w[3], s = 0;
        for (int d = 0; d < 3; d++) {
            w[d] = 2 * rng_uniform(&r) - 1;
            s += w[d] * w[d];
        }
        if (s > 1) continue;
        for (int d = 0; d < 3; d++) cen[q][d] = c0[d] + ax[d] * w[d];
        q++;
    }
    g->parcel = bgfm_calloc(e, (size_t)g->nvox, sizeof *g->parcel, "synth parcel map");
    g->parcel_label = bgfm_malloc(e, (size_t)(P + 1) * sizeof *g->parcel_label,
                                  "synth parcel labels");
    if (!g->parcel || !g->parcel_label) return BGFM_ENOMEM;
    for (int q = 0; q <= P; q++) g->parcel_label[q] = q;
    g->n_parcels = P;
    int64_t nx = g->dim[0], ny = g->dim[1], nz = g->dim[2];
    for (int64_t k = 0; k < nz; k++)
        for (int64_t j = 0; j < ny; j++)
            for (int64_t i = 0; i < nx; i++) {
                double x[3], s = 0;
                for (int d = 0; d < 3; d++) {
                    x[d] = g->affine[d][0] * (double)i + g->affine[d][1] * (double)j +
                           g->affine[d][2] * (double)k + g->affine[d][3];
                    double t = (x[d] - c0[d]) / ax[d];
                    s += t * t;
                }
                if (s > 1) continue;
                int best = 0;
                double bd = INFINITY;
                for (int q = 0; q < P; q++) {
                    double d2 = 0;
                    for (int d = 0; d < 3; d++) d2 += (x[d] - cen[q][d]) * (x[d] - cen[q][d]);
                    if (d2 < bd) {
                        bd = d2;
                        best = q;
                    }
                }
                g->parcel[i + nx * (j + ny * k)] = best + 1;
            }
    return 0;
}

static int grid_build(const synth_params *p, synth_grid *g, bgfm_err *e) {
    memset(g, 0, sizeof *g);
    double vs = p->voxel_size;
    if (p->voxel_size == 2) {
        g->dim[0] = 91; g->dim[1] = 109; g->dim[2] = 91;
    } else {
        g->dim[0] = 61; g->dim[1] = 73; g->dim[2] = 61;
    }
    g->nvox = g->dim[0] * g->dim[1] * g->dim[2];
    double aff[4][4] = {{-vs, 0, 0, 90}, {0, vs, 0, -126}, {0, 0, vs, -72}, {0, 0, 0, 1}};
    memcpy(g->affine, aff, sizeof aff);
    int rc = strcmp(p->mask_atlas, "none") ? parcels_from_atlas(p, g, e)
                                            : parcels_ellipsoid(p, g, e);
    if (rc) return rc;
    /* parcel -> network: a seeded shuffle of the parcels, dealt round-robin */
    int P = g->n_parcels;
    g->parcel_net = bgfm_calloc(e, (size_t)P + 1, 1, "synth parcel networks");
    int64_t *ord = bgfm_malloc(e, (size_t)P * sizeof *ord, "synth parcel order");
    if (!g->parcel_net || !ord) {
        free(ord);
        return BGFM_ENOMEM;
    }
    for (int q = 0; q < P; q++) ord[q] = q + 1;
    rng_stream r;
    rng_init(&r, p->seed, RNG_SYNTH, SYNTH_COHORT, SYNTH_R_PARCEL_ORDER, 0);
    rng_shuffle_i64(&r, ord, P);
    for (int q = 0; q < P; q++) g->parcel_net[ord[q]] = (uint8_t)(q % p->networks);
    free(ord);
    for (int64_t v = 0; v < g->nvox; v++) g->n_brain += g->parcel[v] != 0;
    g->brain = bgfm_malloc(e, (size_t)(g->n_brain > 0 ? g->n_brain : 1) * sizeof *g->brain,
                           "synth brain voxels");
    if (!g->brain) return BGFM_ENOMEM;
    int64_t b = 0;
    for (int64_t v = 0; v < g->nvox; v++)
        if (g->parcel[v]) g->brain[b++] = v;
    return 0;
}

/* ------------------------------------------------------------------ sites, subjects */

typedef struct synth_site {
    double gain, offset, noise;
} synth_site;

static void site_params(const synth_params *p, int64_t k, synth_site *s) {
    rng_stream r;
    rng_init(&r, p->seed, RNG_SYNTH, SYNTH_COHORT, SYNTH_R_SITE, (uint64_t)k);
    s->gain = exp(SYNTH_SITE_GAIN_SD * rng_normal(&r));
    s->offset = SYNTH_SITE_OFFSET_SD * rng_normal(&r);
    s->noise = SYNTH_NOISE * (0.75 + 0.5 * rng_uniform(&r));
}

/* Two standard normals from one Philox draw pair (Box-Muller, both outputs used). */
static inline void normal_pair(rng_stream *r, double *z0, double *z1) {
    uint32_t a = rng_u32(r), b = rng_u32(r);
    double u1 = ((double)a + 0.5) * 0x1.0p-32, u2 = (double)b * 0x1.0p-32;
    double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
    *z0 = rad * cos(th);
    *z1 = rad * sin(th);
}

/* Latent network signals x (N x T, row-major) of subject s: band-limited Gaussian
 * sources, standardised, mixed by the Cholesky factor of the group's coupling. */
static int latent_signals(const synth_params *p, int64_t s, const double *L, double *x,
                          bgfm_err *e) {
    int N = p->networks;
    int64_t T = p->volumes;
    double dur = (double)T * p->tr;
    int64_t jlo = (int64_t)ceil(SYNTH_F_LO * dur - 1e-9), jhi = (int64_t)floor(SYNTH_F_HI * dur + 1e-9);
    if (jlo < 1) jlo = 1;
    if (jhi > T / 2) jhi = T / 2;
    if (jhi < jlo) { /* series too short for the band: use every frequency */
        jlo = 1;
        jhi = T / 2;
    }
    double *u = bgfm_malloc(e, sizeof(double) * (size_t)(N * T), "synth latent sources");
    if (!u) return BGFM_ENOMEM;
    rng_stream r;
    rng_init(&r, p->seed, RNG_SYNTH, (uint64_t)(s + p->first_subject), SYNTH_R_LATENT, 0);
    for (int n = 0; n < N; n++) {
        double *un = u + (int64_t)n * T;
        memset(un, 0, sizeof(double) * (size_t)T);
        for (int64_t j = jlo; j <= jhi; j++) {
            double a = rng_normal(&r), b = rng_normal(&r);
            double w = 6.283185307179586 * (double)j / (double)T;
            for (int64_t t = 0; t < T; t++) un[t] += a * cos(w * (double)t) + b * sin(w * (double)t);
        }
        double m = 0, v = 0;
        for (int64_t t = 0; t < T; t++) m += un[t];
        m /= (double)T;
        for (int64_t t = 0; t < T; t++) v += (un[t] - m) * (un[t] - m);
        double sd = sqrt(v / (double)(T - 1));
        for (int64_t t = 0; t < T; t++) un[t] = (un[t] - m) / (sd > 0 ? sd : 1);
    }
    for (int n = 0; n < N; n++)
        for (int64_t t = 0; t < T; t++) {
            double acc = 0;
            for (int k = 0; k <= n; k++) acc += L[n * N + k] * u[(int64_t)k * T + t];
            x[(int64_t)n * T + t] = acc;
        }
    free(u);
    return 0;
}

/* snprintf into a path buffer; a name that does not fit is a usage error. */
static int fmt_path(char *buf, size_t n, bgfm_err *e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fmt_path(char *buf, size_t n, bgfm_err *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= n)
        return bgfm_fail(e, BGFM_EUSAGE, "synth: path too long: %.200s...", buf);
    return 0;
}

static const char *res_tag(const synth_params *p) { return p->voxel_size == 2 ? "2" : "3"; }

/* The subject's latent network signals x (N x T, row-major) and parcel mixing alpha
 * (P + 1): the group's coupling factor and alpha = 0 in the group-only design (co == NULL),
 * else the subject's own coupling and mixing from its traits (traits.c). */
static int subject_signals(const synth_params *p, const synth_cohort *co, const double *Lc,
                           const double *Lp, int64_t s, int P, double *x, double *alpha,
                           bgfm_err *e) {
    if (!co) {
        for (int q = 0; q <= P; q++) alpha[q] = 0;
        return latent_signals(p, s, synth_subject_group(s) ? Lp : Lc, x, e);
    }
    double c[32 * 32], l[32 * 32], mineig;
    const double *z = co->person[s].z;
    synth_subject_coupling(p, &co->d, s, z, c, &mineig);
    BGFM_ASSERT(synth_cholesky(p->networks, c, l)); /* the eigenvalue floor keeps c PD */
    synth_subject_mixing(p, &co->d, s, z, alpha);
    return latent_signals(p, s, l, x, e);
}

/* Subject s's diagnosis class: the group-only design's, else its liability against the
 * labelled subjects' threshold (the unlabelled ones' class is not written anywhere). */
static int subject_patient(const synth_cohort *co, int64_t s) {
    if (!co) return synth_subject_group(s);
    const synth_person *o = &co->person[s];
    return o->labelled ? o->patient : o->liability > co->threshold;
}

/* Write sub-XX/func/<bold>.nii.gz and its .json sidecar under `root`; with head motion
 * (mm != NULL) the artifact in the image and the confounds file beside it. */
static int write_subject(const synth_params *p, const synth_grid *g, const synth_cohort *co,
                         const double *Lc, const double *Lp, const synth_site *sites,
                         const synth_motion_map *mm, int64_t s, const char *root, int64_t *bytes,
                         bgfm_err *e) {
    int N = p->networks, P = g->n_parcels;
    int64_t T = p->volumes, nb = g->n_brain;
    char id[64], dir[4096], path[4096];
    int rc = fmt_path(id, sizeof id, e, "sub-%0*lld", synth_id_width(p->subjects + p->unlabelled),
                      (long long)s + 1);
    if (!rc) rc = fmt_path(dir, sizeof dir, e, "%s/%s/func", root, id);
    if (!rc) rc = fs_mkdirs(dir, e);
    if (rc) return rc;
    const synth_site *site = &sites[synth_cohort_site(p, s)];
    double *x = bgfm_malloc(e, sizeof(double) * (size_t)(N * T), "synth network signals");
    double *alpha = bgfm_malloc(e, sizeof(double) * (size_t)(P + 1), "synth parcel mixing");
    float *fpar = bgfm_malloc(e, sizeof(float) * (size_t)(P + 1), "synth parcel signals");
    float *mu = bgfm_malloc(e, sizeof(float) * (size_t)nb, "synth voxel baselines");
    float *aown = bgfm_malloc(e, sizeof(float) * (size_t)nb, "synth voxel amplitudes");
    float *aglob = bgfm_malloc(e, sizeof(float) * (size_t)nb, "synth voxel global weights");
    int32_t *par = bgfm_malloc(e, sizeof(int32_t) * (size_t)nb, "synth voxel parcels");
    float *vol = bgfm_calloc(e, (size_t)g->nvox, sizeof *vol, "synth volume");
    niftiio_writer *w = NULL;
    synth_motion mo;
    memset(&mo, 0, sizeof mo);
    double *gs = mm ? bgfm_calloc(e, (size_t)T, sizeof *gs, "synth global signal") : NULL;
    if (!rc && mm) rc = synth_motion_draw(p, s, subject_patient(co, s), &mo, e);
    if (rc) goto done;
    if (!x || !alpha || !fpar || !mu || !aown || !aglob || !par || !vol || (mm && !gs)) {
        rc = BGFM_ENOMEM;
        goto done;
    }
    rc = subject_signals(p, co, Lc, Lp, s, P, x, alpha, e);
    if (rc) goto done;
    /* per-voxel baseline and amplitude (fixed over time) */
    rng_stream r;
    rng_init(&r, p->seed, RNG_SYNTH, (uint64_t)(s + p->first_subject), SYNTH_R_VOXEL, 0);
    for (int64_t b = 0; b < nb; b++) {
        double z0, z1;
        normal_pair(&r, &z0, &z1);
        double amp = SYNTH_AMP * site->gain * (1.0 + SYNTH_AMP_SD * z1);
        mu[b] = (float)(SYNTH_BASELINE * (1.0 + SYNTH_BASE_SD * z0) + site->offset);
        aown[b] = (float)(amp * (1.0 - SYNTH_GLOBAL));
        aglob[b] = (float)(amp * SYNTH_GLOBAL);
        par[b] = g->parcel[g->brain[b]];
    }
    niftiio_write_spec ws;
    memset(&ws, 0, sizeof ws);
    for (int d = 0; d < 3; d++) ws.dim[d] = g->dim[d];
    ws.dim[3] = T;
    for (int d = 0; d < 3; d++) ws.pixdim[d] = p->voxel_size;
    ws.pixdim[3] = p->tr;
    memcpy(ws.affine, g->affine, sizeof ws.affine);
    ws.datatype = p->datatype;
    ws.scl_slope = p->datatype == NIFTIIO_INT16 ? SYNTH_INT16_SLOPE : 0;
    ws.scl_inter = 0;
    ws.gzip_level = p->gzip_level;
    ws.xform_code = 4; /* MNI152 */
    rc = fmt_path(path, sizeof path, e,
                  "%s/%s_task-rest_space-MNI152NLin6Asym_res-%s_desc-preproc_bold.nii.gz", dir,
                  id, res_tag(p));
    if (!rc) rc = niftiio_writer_open(path, &ws, &w, e);
    if (rc) goto done;
    double sig[64];
    const float sd = (float)site->noise;
    const uint8_t *prim = g->parcel_net, *sec = co ? co->d.secondary : NULL;
    for (int64_t t = 0; t < T; t++) {
        double xbar = 0;
        for (int n = 0; n < N; n++) {
            sig[n] = x[(int64_t)n * T + t];
            xbar += sig[n];
        }
        xbar /= N;
        /* parcel signal: (1 - alpha) x_primary + alpha x_secondary (alpha = 0: x_primary) */
        for (int q = 1; q <= P; q++) {
            double v = sig[prim[q]];
            if (alpha[q] != 0) v = (1 - alpha[q]) * v + alpha[q] * sig[sec[q]];
            fpar[q] = (float)v;
        }
        const float fx = (float)xbar;
        rng_init(&r, p->seed, RNG_SYNTH, (uint64_t)(s + p->first_subject), SYNTH_R_NOISE, (uint64_t)t);
        int64_t b = 0;
        for (; b + 1 < nb; b += 2) {
            double z0, z1;
            normal_pair(&r, &z0, &z1);
            vol[g->brain[b]] = mu[b] + aown[b] * fpar[par[b]] + aglob[b] * fx + sd * (float)z0;
            vol[g->brain[b + 1]] =
                mu[b + 1] + aown[b + 1] * fpar[par[b + 1]] + aglob[b + 1] * fx + sd * (float)z1;
        }
        if (b < nb) {
            double z0, z1;
            normal_pair(&r, &z0, &z1);
            vol[g->brain[b]] = mu[b] + aown[b] * fpar[par[b]] + aglob[b] * fx + sd * (float)z0;
        }
        if (mm) { /* the motion artifact, and the global signal of the confounds file */
            double acc = 0;
            for (b = 0; b < nb; b++) {
                float *v = &vol[g->brain[b]];
                *v += (float)((double)mu[b] * synth_motion_artifact(mm, &mo, b, t));
                acc += (double)*v;
            }
            gs[t] = nb ? acc / (double)nb : 0;
        }
        rc = niftiio_writer_volume(w, vol, e);
        if (rc) goto done;
    }
    rc = niftiio_writer_close(&w, e);
    if (rc) goto done;
    struct stat st;
    if (stat(path, &st) == 0) *bytes += (int64_t)st.st_size;
    if (mm) {
        rc = fmt_path(path, sizeof path, e, "%s/%s_task-rest_desc-confounds_timeseries.tsv", dir,
                      id);
        if (!rc) rc = synth_motion_write_confounds(path, &mo, gs, e);
    }
    if (!rc)
        rc = fmt_path(path, sizeof path, e,
                      "%s/%s_task-rest_space-MNI152NLin6Asym_res-%s_desc-preproc_bold.json", dir,
                      id, res_tag(p));
    if (rc) goto done;
    char js[256];
    int n = snprintf(js, sizeof js, "{\n  \"RepetitionTime\": %.17g,\n  \"TaskName\": \"rest\",\n"
                     "  \"SkullStripped\": true\n}\n", p->tr);
    rc = fs_write_atomic(path, js, (size_t)n, e);
done:
    niftiio_writer_abort(&w);
    synth_motion_free(&mo);
    free(gs);
    free(x);
    free(alpha);
    free(fpar);
    free(mu);
    free(aown);
    free(aglob);
    free(par);
    free(vol);
    return rc;
}

/* ------------------------------------------------------------------ cohort files */

static int write_text(const char *path, const char *text, bgfm_err *e) {
    return fs_write_atomic(path, text, strlen(text), e);
}

/* participant_id diagnosis site age sex, then (traits) score trait_1..trait_K; n/a for
 * the diagnosis, score and traits of unlabelled subjects. */
static int write_participants(const synth_params *p, const synth_cohort *co, const char *root,
                              bgfm_err *e) {
    int K = co ? p->traits : 0;
    int64_t ns = p->subjects + p->unlabelled;
    size_t cap = 64 + (size_t)K * 16 + (size_t)ns * (64 + 24 * (size_t)(K + 1));
    char *buf = bgfm_malloc(e, cap, "synth participants table");
    if (!buf) return BGFM_ENOMEM;
    size_t n = (size_t)snprintf(buf, cap, "participant_id\tdiagnosis\tsite\tage\tsex");
    if (K) n += (size_t)snprintf(buf + n, cap - n, "\tscore");
    for (int k = 1; k <= K; k++) n += (size_t)snprintf(buf + n, cap - n, "\ttrait_%d", k);
    n += (size_t)snprintf(buf + n, cap - n, "\n");
    for (int64_t s = 0; s < ns; s++) {
        rng_stream r;
        rng_init(&r, p->seed, RNG_SYNTH, (uint64_t)(s + p->first_subject), SYNTH_R_DEMOGRAPHICS, 0);
        int age = 20 + (int)rng_below(&r, 51);
        const char *sex = rng_below(&r, 2) ? "F" : "M";
        const synth_person *o = co ? &co->person[s] : NULL;
        const char *diag = !o ? (synth_subject_group(s) ? "patient" : "control")
                           : !o->labelled ? "n/a"
                           : o->patient   ? "patient"
                                          : "control";
        n += (size_t)snprintf(buf + n, cap - n, "sub-%0*lld\t%s\tsite-%lld\t%d\t%s",
                              synth_id_width(ns), (long long)s + 1, diag,
                              (long long)synth_cohort_site(p, s) + 1, age, sex);
        if (o && o->labelled) n += (size_t)snprintf(buf + n, cap - n, "\t%.6f", o->score);
        else if (o) n += (size_t)snprintf(buf + n, cap - n, "\tn/a");
        for (int k = 0; o && k < K; k++)
            n += o->labelled ? (size_t)snprintf(buf + n, cap - n, "\t%.6f", o->z[k])
                             : (size_t)snprintf(buf + n, cap - n, "\tn/a");
        n += (size_t)snprintf(buf + n, cap - n, "\n");
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/participants.tsv", root);
    int rc = fs_write_atomic(path, buf, n, e);
    free(buf);
    return rc;
}

static void json_matrix(FILE *f, int n, const double *c) {
    fprintf(f, "[");
    for (int i = 0; i < n; i++) {
        fprintf(f, "%s[", i ? ", " : "");
        for (int j = 0; j < n; j++) fprintf(f, "%s%.6g", j ? ", " : "", c[i * n + j]);
        fprintf(f, "]");
    }
    fprintf(f, "]");
}

/* model.json's "motion": the model's constants and every subject's level, spikes and
 * mean framewise displacement (of the realignment estimate, as the confounds file). */
static int motion_json(FILE *f, const synth_params *p, const synth_cohort *co, bgfm_err *e) {
    int64_t ns = p->subjects + p->unlabelled;
    fprintf(f, ",\n  \"motion\": {\"level_median\": %.17g, \"patient_log_ratio\": %.17g, "
            "\"level_log_sd\": %g, \"edge_percent_per_mm\": %g, \"spin_percent_per_mm\": %g, "
            "\"edge_radius_mm\": %g,\n    \"subjects\": [",
            p->motion, p->motion_patient, SYNTH_MOTION_SPREAD, SYNTH_MOTION_EDGE, SYNTH_MOTION_SPIN,
            SYNTH_MOTION_EDGE_MM);
    for (int64_t s = 0; s < ns; s++) {
        synth_motion mo;
        int rc = synth_motion_draw(p, s, subject_patient(co, s), &mo, e);
        if (rc) return rc;
        fprintf(f, "%s\n      {\"participant_id\": \"sub-%0*lld\", \"patient\": %d, \"level\": "
                "%.6g, \"spikes\": %lld, \"mean_fd\": %.6g}", s ? "," : "",
                synth_id_width(ns), (long long)s + 1, subject_patient(co, s), mo.level,
                (long long)mo.spikes, mo.mean_fd);
        synth_motion_free(&mo);
    }
    fprintf(f, "]}");
    return 0;
}

static int write_truth(const synth_params *p, const synth_grid *g, const synth_cohort *co,
                       const double *Cc, const double *Cp, const synth_site *sites,
                       const char *root, bgfm_err *e) {
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/derivatives/synth", root);
    int rc = fs_mkdirs(dir, e);
    if (rc) return rc;
    /* label maps: parcels (int16) and networks (uint8, 1..N) */
    float *vol = bgfm_malloc(e, sizeof(float) * (size_t)g->nvox, "synth truth maps");
    if (!vol) return BGFM_ENOMEM;
    for (int which = 0; which < 2 && !rc; which++) {
        niftiio_write_spec ws;
        memset(&ws, 0, sizeof ws);
        for (int d = 0; d < 3; d++) ws.dim[d] = g->dim[d];
        ws.dim[3] = 1;
        for (int d = 0; d < 3; d++) ws.pixdim[d] = p->voxel_size;
        memcpy(ws.affine, g->affine, sizeof ws.affine);
        ws.datatype = which == 0 ? NIFTIIO_INT16 : NIFTIIO_UINT8;
        ws.gzip_level = 1;
        ws.xform_code = 4;
        for (int64_t v = 0; v < g->nvox; v++)
            vol[v] = g->parcel[v] == 0 ? 0.0f
                     : which == 0      ? (float)g->parcel[v]
                                       : (float)(g->parcel_net[g->parcel[v]] + 1);
        snprintf(path, sizeof path, "%s/space-MNI152NLin6Asym_res-%s_desc-%s_dseg.nii.gz", dir,
                 res_tag(p), which == 0 ? "parcels" : "networks");
        niftiio_writer *w = NULL;
        rc = niftiio_writer_open(path, &ws, &w, e);
        if (!rc) rc = niftiio_writer_volume(w, vol, e);
        if (!rc) rc = niftiio_writer_close(&w, e);
        niftiio_writer_abort(&w);
    }
    free(vol);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/model.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return bgfm_fail(e, BGFM_EIO, "%s: cannot create: %s", path, strerror(errno));
    int N = p->networks;
    fprintf(f, "{\n  \"model\": \"bgfm synth v%d (docs/synth.md)\",\n  \"seed\": %llu,\n",
            co ? 2 : 1, (unsigned long long)p->seed);
    fprintf(f, "  \"subjects\": %lld, \"volumes\": %lld, \"tr\": %.17g, \"voxel_size\": %d,\n",
            (long long)p->subjects, (long long)p->volumes, p->tr, p->voxel_size);
    if (p->first_subject) fprintf(f, "  \"first_subject\": %lld,\n", (long long)p->first_subject);
    if (co)
        fprintf(f, "  \"networks\": %d, \"mask_atlas\": \"%s\",\n", N, p->mask_atlas);
    else
        fprintf(f, "  \"networks\": %d, \"effect\": %.17g, \"mask_atlas\": \"%s\",\n", N,
                p->effect, p->mask_atlas);
    fprintf(f, "  \"band_hz\": [%g, %g], \"baseline\": %g, \"baseline_sd\": %g, \"amplitude\": %g, "
               "\"amplitude_sd\": %g, \"global_weight\": %g, \"noise\": %g, \"rho0\": %g,\n",
            SYNTH_F_LO, SYNTH_F_HI, SYNTH_BASELINE, SYNTH_BASE_SD, SYNTH_AMP, SYNTH_AMP_SD,
            SYNTH_GLOBAL, SYNTH_NOISE, SYNTH_RHO0);
    if (co) { /* Cc = Cp = the base coupling */
        fprintf(f, "  \"coupling_base\": ");
        json_matrix(f, N, Cc);
    } else {
        fprintf(f, "  \"effect_pairs\": {\"patient_lower\": [0, 1], \"patient_higher\": [2, 3], "
                   "\"control_pair\": [4, 5]},\n");
        fprintf(f, "  \"coupling_control\": ");
        json_matrix(f, N, Cc);
        fprintf(f, ",\n  \"coupling_patient\": ");
        json_matrix(f, N, Cp);
    }
    fprintf(f, ",\n  \"sites\": [");
    for (int64_t k = 0; k < p->sites; k++)
        fprintf(f, "%s{\"site\": \"site-%lld\", \"gain\": %.6g, \"offset\": %.6g, \"noise\": %.6g}",
                k ? ", " : "", (long long)k + 1, sites[k].gain, sites[k].offset, sites[k].noise);
    fprintf(f, "],\n  \"brain_voxels\": %lld,\n  \"parcels\": [", (long long)g->n_brain);
    for (int q = 1; q <= g->n_parcels; q++) {
        fprintf(f, "%s{\"parcel\": %d, \"atlas_label\": %d, \"network\": %d", q > 1 ? ", " : "", q,
                g->parcel_label[q], g->parcel_net[q]);
        if (co) fprintf(f, ", \"secondary\": %d", co->d.secondary[q]);
        fputc('}', f);
    }
    fputc(']', f);
    if (co) synth_cohort_json(f, p, co, g->parcel_label);
    int rc2 = p->motion > 0 ? motion_json(f, p, co, e) : 0;
    fprintf(f, "\n}\n");
    if (rc2) {
        fclose(f);
        return rc2;
    }
    if (fclose(f) != 0) return bgfm_fail(e, BGFM_EIO, "%s: write failed", path);
    snprintf(path, sizeof path, "%s/dataset_description.json", root);
    char design[256], desc[1024], sc[80] = "";
    if (co && p->site_coupling > 0)
        snprintf(sc, sizeof sc, " --site-coupling %g", p->site_coupling);
    if (co && p->site_spread > 0)
        snprintf(sc + strlen(sc), sizeof sc - strlen(sc), " --site-spread %g", p->site_spread);
    if (co)
        snprintf(design, sizeof design, "--traits %d --trait-effect %g --fingerprint %g "
                 "--topography %g --label-noise %g --unlabelled %lld%s", p->traits,
                 p->trait_effect, p->fingerprint, p->topography, p->label_noise,
                 (long long)p->unlabelled, sc);
    else
        snprintf(design, sizeof design, "--effect %g", p->effect);
    snprintf(desc, sizeof desc,
             "{\n  \"Name\": \"bgfm synthetic resting-state cohort\",\n  \"BIDSVersion\": "
             "\"1.8.0\",\n  \"DatasetType\": \"derivative\",\n  \"GeneratedBy\": [{\"Name\": "
             "\"bgfm synth\", \"Version\": \"%s\", \"Description\": \"bgfm synth --subjects %lld "
             "--volumes %lld --tr %g --voxel-size %d --sites %lld --seed %llu --networks %d "
             "%s\"}]\n}\n",
             BGFM_VERSION, (long long)p->subjects, (long long)p->volumes, p->tr, p->voxel_size,
             (long long)p->sites, (unsigned long long)p->seed, N, design);
    return write_text(path, desc, e);
}

/* ------------------------------------------------------------------ orchestration */

static int dir_is_empty(const char *path) {
    DIR *d = opendir(path);
    if (!d) return 0;
    int empty = 1;
    struct dirent *de;
    while (empty && (de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) empty = 0;
    closedir(d);
    return empty;
}

static char *parent_of(const char *abs, bgfm_err *e) {
    char *p = bgfm_strdup(e, abs);
    if (!p) return NULL;
    char *slash = strrchr(p, '/');
    if (slash && slash != p) *slash = '\0';
    else if (slash) slash[1] = '\0';
    return p;
}

/* Remove a sibling folder of --out (staging or the replaced dataset). fs_remove_tree only
 * removes below a root, so nothing is removed when --out sits directly under "/". */
static void remove_sibling(const bgfm_ctx *ctx, const char *parent, const char *path) {
    bgfm_err ign = {0};
    if (!strcmp(parent, "/") || fs_remove_tree(parent, path, &ign) != 0)
        log_warn(ctx, "synth: could not remove %s; remove it by hand", path);
}

int synth_run(bgfm_ctx *ctx, const synth_params *p) {
    bgfm_err *e = &ctx->err;
    char staging[4096] = {0};
    char *outabs = NULL, *parent = NULL;
    synth_grid g;
    memset(&g, 0, sizeof g);
    synth_site *sites = NULL;
    synth_cohort cohort, *co = NULL; /* NULL: the group-only design (--traits 0) */
    memset(&cohort, 0, sizeof cohort);
    int64_t ns = p->subjects + p->unlabelled;
    int N = p->networks;
    double Cc[32 * 32], Cp[32 * 32], Lc[32 * 32], Lp[32 * 32];
    int rc = 0;
    double t0 = MPI_Wtime();

    /* phase 0: rank 0 checks --out and creates the staging folder */
    outabs = fs_absolute(p->out, e);
    if (outabs) /* "data/demo/" names the folder data/demo */
        for (size_t n = strlen(outabs); n > 1 && outabs[n - 1] == '/'; n--) outabs[n - 1] = '\0';
    parent = outabs ? parent_of(outabs, e) : NULL;
    if (!outabs || !parent) rc = e->code ? e->code : BGFM_ENOMEM;
    if (!rc && ctx->rank == 0) {
        struct stat st;
        if (stat(outabs, &st) == 0) {
            if (!S_ISDIR(st.st_mode))
                rc = bgfm_fail(e, BGFM_EUSAGE, "synth: --out %s exists and is not a folder",
                               p->out);
            else if (!p->force && !dir_is_empty(outabs))
                rc = bgfm_fail(e, BGFM_EUSAGE, "synth: --out %s exists and is not empty; remove "
                               "it, pick another folder, or add --force to replace it", p->out);
        }
        if (!rc) {
            snprintf(staging, sizeof staging, "%s.tmp-%ld", outabs, (long)getpid());
            rc = fs_mkdirs(staging, e);
        }
    }
    if (!rc) {
        synth_coupling(N, p->traits ? 0.0 : p->effect, 0, Cc);
        synth_coupling(N, p->traits ? 0.0 : p->effect, 1, Cp);
        if (!synth_cholesky(N, Cc, Lc) || !synth_cholesky(N, Cp, Lp))
            rc = bgfm_fail(e, BGFM_EUSAGE, "synth: --effect %g makes the coupling matrix not "
                           "positive definite; use a smaller value", p->effect);
    }
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) goto out;
    rc = bgfm_ctx_agree(ctx, BGFM_MPI(e, MPI_Bcast(staging, (int)sizeof staging, MPI_CHAR, 0,
                                                   ctx->comm)));
    if (rc) goto out;

    /* phase 1: maps (identical on every rank), then each rank writes its subjects */
    rc = grid_build(p, &g, e);
    if (!rc) {
        sites = bgfm_malloc(e, sizeof *sites * (size_t)p->sites, "synth sites");
        if (!sites) rc = BGFM_ENOMEM;
        else
            for (int64_t k = 0; k < p->sites; k++) site_params(p, k, &sites[k]);
    }
    if (!rc && p->traits > 0) {
        rc = synth_cohort_build(p, g.n_parcels, g.parcel_net, &cohort, e);
        co = &cohort;
    }
    int64_t bytes = 0, mine = 0;
    log_progress prog;
    log_progress_start(ctx, &prog, "synth", "subj", ns);
    synth_motion_map mmap;
    memset(&mmap, 0, sizeof mmap);
    if (!rc && p->motion > 0)
        rc = synth_motion_map_build(g.dim, (const double(*)[4])g.affine, g.parcel, g.brain,
                                    g.n_brain, &mmap, e);
    for (int64_t s = ctx->rank; !rc && s < ns; s += ctx->size) {
        rc = write_subject(p, &g, co, Lc, Lp, sites, p->motion > 0 ? &mmap : NULL, s, staging,
                           &bytes, e);
        mine++;
        if (!rc) log_progress_update(ctx, &prog, mine * ctx->size < ns ? mine * ctx->size : ns);
    }
    if (!rc && ctx->rank == 0) rc = write_participants(p, co, staging, e);
    if (!rc && ctx->rank == 0) rc = write_truth(p, &g, co, Cc, Cp, sites, staging, e);
    synth_motion_map_free(&mmap);
    rc = bgfm_ctx_agree(ctx, rc);
    log_progress_end(ctx, &prog, rc ? mine : ns);
    int64_t total_bytes = bytes;
    if (!rc) rc = BGFM_MPI(e, MPI_Reduce(&bytes, &total_bytes, 1, MPI_INT64_T, MPI_SUM, 0, ctx->comm));
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) goto out;

    /* phase 2: rank 0 moves the complete dataset into place */
    if (ctx->rank == 0) {
        struct stat st;
        char old[4200] = {0};
        if (stat(outabs, &st) == 0) {
            if (rmdir(outabs) != 0) { /* non-empty: --force was checked in phase 0 */
                snprintf(old, sizeof old, "%s.old-%ld", outabs, (long)getpid());
                if (rename(outabs, old) != 0)
                    rc = bgfm_fail(e, BGFM_EIO, "synth: cannot move the old %s aside: %s",
                                   p->out, strerror(errno));
            }
        }
        if (!rc && rename(staging, outabs) != 0)
            rc = bgfm_fail(e, BGFM_EIO, "synth: cannot rename %s to %s: %s", staging, outabs,
                           strerror(errno));
        if (!rc && old[0]) remove_sibling(ctx, parent, old);
        if (!rc)
            log_info(ctx, "synth: wrote %lld subjects (%lld volumes of %lldx%lldx%lld, %d mm, TR "
                     "%g s; %.1f MB) to %s in %.1f s on %d rank%s", (long long)ns,
                     (long long)p->volumes, (long long)g.dim[0], (long long)g.dim[1],
                     (long long)g.dim[2], p->voxel_size, p->tr, (double)total_bytes / 1e6, p->out,
                     MPI_Wtime() - t0, ctx->size, ctx->size > 1 ? "s" : "");
    }
    rc = bgfm_ctx_agree(ctx, rc);
out:
    if (rc && ctx->rank == 0 && staging[0] && parent) remove_sibling(ctx, parent, staging);
    grid_free(&g);
    synth_cohort_free(&cohort);
    free(sites);
    free(outabs);
    free(parent);
    return rc;
}
