/* resample.c: nearest-neighbour mapping of atlas label grids onto data grids through
 * the affines, and the per-grid cache of compact voxel plans used by the extraction.
 * Not an interpolator of intensities and not an image reader. */
#include <math.h>
#include <string.h>

#include "bgfm/resample.h"

double resample_round(double x) { return round(x); }

int resample_affine_inv(const resample_grid *g, double inv[4][4]) {
    /* Inverse of [R t; 0 1] = [R^-1, -R^-1 t; 0 1], R^-1 by the adjugate. */
    const double(*m)[4] = g->affine;
    double c00 = m[1][1] * m[2][2] - m[1][2] * m[2][1];
    double c01 = m[1][2] * m[2][0] - m[1][0] * m[2][2];
    double c02 = m[1][0] * m[2][1] - m[1][1] * m[2][0];
    double det = m[0][0] * c00 + m[0][1] * c01 + m[0][2] * c02;
    if (!(fabs(det) > 0) || !isfinite(det)) return -1;
    double r[3][3];
    r[0][0] = c00 / det;
    r[1][0] = c01 / det;
    r[2][0] = c02 / det;
    r[0][1] = (m[0][2] * m[2][1] - m[0][1] * m[2][2]) / det;
    r[1][1] = (m[0][0] * m[2][2] - m[0][2] * m[2][0]) / det;
    r[2][1] = (m[0][1] * m[2][0] - m[0][0] * m[2][1]) / det;
    r[0][2] = (m[0][1] * m[1][2] - m[0][2] * m[1][1]) / det;
    r[1][2] = (m[0][2] * m[1][0] - m[0][0] * m[1][2]) / det;
    r[2][2] = (m[0][0] * m[1][1] - m[0][1] * m[1][0]) / det;
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) inv[i][j] = r[i][j];
        inv[i][3] = -(r[i][0] * m[0][3] + r[i][1] * m[1][3] + r[i][2] * m[2][3]);
    }
    inv[3][0] = inv[3][1] = inv[3][2] = 0.0;
    inv[3][3] = 1.0;
    return 0;
}

int resample_grid_equal(const resample_grid *a, const resample_grid *b) {
    for (int d = 0; d < 3; d++)
        if (a->dim[d] != b->dim[d]) return 0;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            if (a->affine[i][j] != b->affine[i][j]) return 0;
    return 1;
}

/* round(v) (halves away from zero), exactly, without the libm call the build does not
 * inline: v - trunc(v) is exact, and trunc is one instruction with SSE4.1. */
static inline double round_half_away(double v) {
    double t = trunc(v);
    return fabs(v - t) >= 0.5 ? t + copysign(1.0, v) : t;
}

int resample_map(const resample_grid *data, const resample_grid *atlas, const uint16_t *src,
                 uint16_t fill, uint16_t *out, const char *what, bgfm_err *e) {
    int64_t nx = data->dim[0], ny = data->dim[1], nz = data->dim[2];
    if (resample_grid_equal(data, atlas)) {
        memcpy(out, src, (size_t)(nx * ny * nz) * sizeof *out);
        return 0;
    }
    double ainv[4][4], m[4][4];
    if (resample_affine_inv(atlas, ainv))
        return bgfm_fail(e, BGFM_EDATA,
                         "%s: the atlas affine (sform/qform) is singular; fix the atlas header",
                         what);
    /* m = inv(A_atlas) A_data: data voxel -> atlas voxel coordinates */
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            double s = 0.0;
            for (int k = 0; k < 4; k++) s += ainv[i][k] * data->affine[k][j];
            m[i][j] = s;
        }
    int64_t ax = atlas->dim[0], ay = atlas->dim[1], az = atlas->dim[2];
    double dax = (double)ax, day = (double)ay, daz = (double)az;
    int64_t idx = 0;
    for (int64_t k = 0; k < nz; k++) {
        double fk = (double)k;
        for (int64_t j = 0; j < ny; j++) {
            double fj = (double)j;
            /* per-row constant part, then the i term: the same sums for every voxel */
            double c0 = m[0][1] * fj + m[0][2] * fk + m[0][3];
            double c1 = m[1][1] * fj + m[1][2] * fk + m[1][3];
            double c2 = m[2][1] * fj + m[2][2] * fk + m[2][3];
            for (int64_t i = 0; i < nx; i++, idx++) {
                double fi = (double)i;
                double x = round_half_away(m[0][0] * fi + c0);
                double y = round_half_away(m[1][0] * fi + c1);
                double z = round_half_away(m[2][0] * fi + c2);
                if (x >= 0 && x < dax && y >= 0 && y < day && z >= 0 && z < daz)
                    out[idx] = src[(int64_t)x + ax * ((int64_t)y + ay * (int64_t)z)];
                else
                    out[idx] = fill;
            }
        }
    }
    return 0;
}

static void plan_free(resample_plan *p) {
    free(p->vox);
    free(p->gidx);
    free(p->n_vox);
    free(p->rstart);
    free(p->ridx);
    free(p->cstart);
    free(p->cidx);
    free(p->cgid);
    memset(p, 0, sizeof *p);
}

/* Group the in-atlas voxels by their region tuple (open-addressing hash of the gidx
 * rows; cells numbered in order of first appearance, so the layout is deterministic). */
static int plan_cells(resample_plan *p, bgfm_err *e) {
    const int A = p->n_atlases;
    const int64_t n = p->n_in;
    int64_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    int32_t *table = bgfm_malloc(e, (size_t)cap * sizeof *table, "cell hash table");
    int32_t *cell_of = bgfm_malloc(e, (size_t)(n ? n : 1) * sizeof *cell_of, "voxel cells");
    int64_t *rep = bgfm_malloc(e, (size_t)(n ? n : 1) * sizeof *rep, "cell representatives");
    int rc = (table && cell_of && rep) ? 0 : e->code;
    int64_t nc = 0;
    if (!rc) {
        memset(table, 0xff, (size_t)cap * sizeof *table);
        for (int64_t w = 0; w < n; w++) {
            const int32_t *row = p->gidx + w * A;
            uint64_t h = 1469598103934665603ull;
            for (int a = 0; a < A; a++) h = (h ^ (uint32_t)row[a]) * 1099511628211ull;
            int64_t slot = (int64_t)(h & (uint64_t)(cap - 1));
            for (;;) {
                int32_t c = table[slot];
                if (c < 0) {
                    table[slot] = (int32_t)nc;
                    rep[nc] = w;
                    cell_of[w] = (int32_t)nc++;
                    break;
                }
                if (!memcmp(p->gidx + rep[c] * A, row, (size_t)A * sizeof *row)) {
                    cell_of[w] = c;
                    break;
                }
                slot = (slot + 1) & (cap - 1);
            }
        }
        p->n_cells = nc;
        p->cstart = bgfm_calloc(e, (size_t)nc + 1, sizeof *p->cstart, "cell starts");
        p->cidx = bgfm_malloc(e, (size_t)(n ? n : 1) * sizeof *p->cidx, "cell voxels");
        p->cgid = bgfm_malloc(e, (size_t)(nc ? nc : 1) * (size_t)A * sizeof *p->cgid, "cell regions");
        if (!p->cstart || !p->cidx || !p->cgid) rc = e->code;
    }
    if (!rc) {
        for (int64_t w = 0; w < n; w++) p->cstart[cell_of[w] + 1]++;
        for (int64_t c = 0; c < nc; c++) {
            p->cstart[c + 1] += p->cstart[c];
            memcpy(p->cgid + c * A, p->gidx + rep[c] * A, (size_t)A * sizeof *p->cgid);
        }
        /* rep doubles as the fill pointer now */
        for (int64_t c = 0; c < nc; c++) rep[c] = p->cstart[c];
        for (int64_t w = 0; w < n; w++) p->cidx[rep[cell_of[w]]++] = (uint32_t)p->vox[w];
    }
    free(table);
    free(cell_of);
    free(rep);
    return rc;
}

static int plan_build(resample_plan *p, const resample_grid *grid, const resample_src *atlases,
                      int n_atlases, bgfm_err *e) {
    memset(p, 0, sizeof *p);
    p->grid = *grid;
    p->n_atlases = n_atlases;
    int64_t nvox = grid->dim[0] * grid->dim[1] * grid->dim[2];
    int64_t *off = bgfm_calloc(e, (size_t)n_atlases + 1, sizeof *off, "region offsets");
    uint16_t *maps = off ? bgfm_malloc(e, (size_t)nvox * (size_t)n_atlases * sizeof *maps,
                                      "resampled atlas maps")
                        : NULL;
    if (!maps) {
        free(off);
        return e->code;
    }
    int rc = 0;
    for (int a = 0; a < n_atlases && !rc; a++) {
        off[a + 1] = off[a] + atlases[a].n_regions;
        rc = resample_map(grid, atlases[a].grid, atlases[a].region_of_vox, RESAMPLE_NONE,
                          maps + (int64_t)a * nvox, atlases[a].name, e);
    }
    p->n_total = off[n_atlases];
    int64_t n_in = 0;
    for (int64_t v = 0; v < nvox && !rc; v++) {
        int any = 0;
        for (int a = 0; a < n_atlases; a++) any |= maps[(int64_t)a * nvox + v] != RESAMPLE_NONE;
        n_in += any;
    }
    if (!rc) {
        p->vox = bgfm_malloc(e, (size_t)(n_in ? n_in : 1) * sizeof *p->vox, "voxel list");
        p->gidx = bgfm_malloc(e, (size_t)(n_in ? n_in : 1) * (size_t)n_atlases * sizeof *p->gidx,
                              "voxel regions");
        p->n_vox = bgfm_calloc(e, (size_t)(p->n_total ? p->n_total : 1), sizeof *p->n_vox,
                               "region sizes");
        if (!p->vox || !p->gidx || !p->n_vox) rc = e->code;
    }
    if (!rc) {
        int64_t w = 0;
        for (int64_t v = 0; v < nvox; v++) {
            int any = 0;
            for (int a = 0; a < n_atlases; a++) any |= maps[(int64_t)a * nvox + v] != RESAMPLE_NONE;
            if (!any) continue;
            p->vox[w] = v;
            for (int a = 0; a < n_atlases; a++) {
                uint16_t r = maps[(int64_t)a * nvox + v];
                int32_t g = r != RESAMPLE_NONE ? (int32_t)(off[a] + r) : -1;
                p->gidx[w * n_atlases + a] = g;
                if (g >= 0) p->n_vox[g]++;
            }
            w++;
        }
        p->n_in = n_in;
    }
    /* per-region voxel lists: the per-volume sums read them contiguously */
    if (!rc) {
        BGFM_ASSERT(nvox <= (int64_t)UINT32_MAX);
        p->rstart = bgfm_calloc(e, (size_t)p->n_total + 1, sizeof *p->rstart, "region starts");
        if (!p->rstart) rc = e->code;
    }
    if (!rc) {
        for (int64_t g = 0; g < p->n_total; g++) p->rstart[g + 1] = p->rstart[g] + p->n_vox[g];
        int64_t tot = p->rstart[p->n_total];
        p->ridx = bgfm_malloc(e, (size_t)(tot ? tot : 1) * sizeof *p->ridx, "region voxels");
        int64_t *fill = bgfm_malloc(e, (size_t)(p->n_total ? p->n_total : 1) * sizeof *fill,
                                    "region fill");
        if (!p->ridx || !fill) {
            rc = e->code;
        } else {
            memcpy(fill, p->rstart, (size_t)p->n_total * sizeof *fill);
            for (int64_t w = 0; w < n_in; w++)
                for (int a = 0; a < n_atlases; a++) {
                    int32_t g = p->gidx[w * n_atlases + a];
                    if (g >= 0) p->ridx[fill[g]++] = (uint32_t)p->vox[w];
                }
        }
        free(fill);
    }
    if (!rc) rc = plan_cells(p, e);
    free(maps);
    free(off);
    if (rc) plan_free(p);
    return rc;
}

int resample_plan_get(resample_cache *c, const resample_grid *grid, const resample_src *atlases,
                      int n_atlases, const resample_plan **out, bgfm_err *e) {
    for (int i = 0; i < c->n; i++)
        if (resample_grid_equal(&c->plans[i].grid, grid) && c->plans[i].n_atlases == n_atlases) {
            *out = &c->plans[i];
            return 0;
        }
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 4;
        resample_plan *np = bgfm_realloc(e, c->plans, (size_t)cap * sizeof *np,
                                         "resampling cache");
        if (!np) return BGFM_ENOMEM;
        c->plans = np;
        c->cap = cap;
    }
    int rc = plan_build(&c->plans[c->n], grid, atlases, n_atlases, e);
    if (rc) return rc;
    *out = &c->plans[c->n++];
    return 0;
}

void resample_cache_free(resample_cache *c) {
    for (int i = 0; i < c->n; i++) plan_free(&c->plans[i]);
    free(c->plans);
    memset(c, 0, sizeof *c);
}
