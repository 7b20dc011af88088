/* motion.c: head motion of `bgfm synth --motion` (synth_motion.h; the model is
 * docs/synth.md "Head motion"): the edge map of the grid, each subject's displacement
 * trace, its realignment estimate, and the confounds table. */
#include "bgfm/synth_motion.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/fsutil.h"
#include "bgfm/rng.h"
#include "bgfm/synth_traits.h"

#define EST_SD 0.005      /* the realignment's estimation noise, mm (rad x 50) */
#define DRIFT_SHARE 0.6   /* part of the level's FD that comes from the slow drift */
#define SPIKE_RATE 0.05   /* spikes per volume at a level of 0.2 mm (x level / 0.2) */
#define SPIKE_CAP 0.15    /* at most this share of the volumes starts a spike */
#define L1_UNIT6 2.0376   /* E|u|_1 of a unit vector uniform on the sphere in 6-D */

void synth_motion_map_free(synth_motion_map *m) {
    free(m->h);
    memset(m, 0, sizeof *m);
}

/* The head: the brain mask with its interior holes filled (a voxel lies inside when the
 * mask has voxels on both sides of it along each of the three axes), so the edge is the
 * brain's outer surface, not the border between grey and white matter of a label atlas. */
static uint8_t *head_mask(const int64_t dim[3], const int32_t *inside, bgfm_err *e) {
    int64_t nx = dim[0], ny = dim[1], nz = dim[2], n = nx * ny * nz;
    uint8_t *m = bgfm_malloc(e, (size_t)n, "synth head mask"),
            *c = bgfm_calloc(e, (size_t)n, 1, "synth head mask axis");
    if (!m || !c) {
        free(m);
        free(c);
        return NULL;
    }
    memset(m, 1, (size_t)n);
    int64_t stride[3] = {1, nx, nx * ny};
    for (int ax = 0; ax < 3; ax++) {
        memset(c, 0, (size_t)n);
        int a1 = (ax + 1) % 3, a2 = (ax + 2) % 3;
        for (int64_t u = 0; u < dim[a1]; u++)
            for (int64_t w = 0; w < dim[a2]; w++) {
                int64_t base = u * stride[a1] + w * stride[a2], lo = -1, hi = -1;
                for (int64_t k = 0; k < dim[ax]; k++)
                    if (inside[base + k * stride[ax]]) {
                        if (lo < 0) lo = k;
                        hi = k;
                    }
                for (int64_t k = lo; lo >= 0 && k <= hi; k++) c[base + k * stride[ax]] = 1;
            }
        for (int64_t v = 0; v < n; v++) m[v] &= c[v];
    }
    for (int64_t v = 0; v < n; v++) m[v] |= inside[v] != 0;
    free(c);
    return m;
}

/* Voxel v's grid indices (i fastest) and its position in mm through the affine. */
static void vox_pos(const int64_t dim[3], const double affine[4][4], int64_t v, int64_t ijk[3],
                    double mm[3]) {
    ijk[0] = v % dim[0];
    ijk[1] = (v / dim[0]) % dim[1];
    ijk[2] = v / (dim[0] * dim[1]);
    for (int a = 0; a < 3; a++)
        mm[a] = affine[a][0] * (double)ijk[0] + affine[a][1] * (double)ijk[1] +
                affine[a][2] * (double)ijk[2] + affine[a][3];
}

int synth_motion_map_build(const int64_t dim[3], const double affine[4][4],
                           const int32_t *inside, const int64_t *brain, int64_t nb,
                           synth_motion_map *m, bgfm_err *e) {
    memset(m, 0, sizeof *m);
    uint8_t *head = head_mask(dim, inside, e);
    if (!head) return e->code;
    m->h = bgfm_calloc(e, (size_t)(nb > 0 ? nb : 1) * 6, sizeof *m->h, "synth motion map");
    if (!m->h) {
        free(head);
        return BGFM_ENOMEM;
    }
    m->nb = nb;
    double vs = fabs(affine[0][0]) + fabs(affine[0][1]) + fabs(affine[0][2]);
    int rad = (int)lround(SYNTH_MOTION_EDGE_MM / (vs > 0 ? vs : 1));
    if (rad < 1) rad = 1;
    /* the brain's centre (mm): positions are taken from it */
    double ctr[3] = {0, 0, 0};
    for (int64_t b = 0; b < nb; b++) {
        int64_t ijk[3];
        double pos[3];
        vox_pos(dim, affine, brain[b], ijk, pos);
        for (int a = 0; a < 3; a++) ctr[a] += pos[a];
    }
    for (int a = 0; a < 3 && nb > 0; a++) ctr[a] /= (double)nb;
    int64_t box = (int64_t)(2 * rad + 1) * (2 * rad + 1) * (2 * rad + 1) - 1;
    for (int64_t b = 0; b < nb; b++) {
        int64_t ijk[3];
        double pos[3];
        vox_pos(dim, affine, brain[b], ijk, pos);
        /* edge weight: the share of the neighbourhood outside the head; outward normal:
         * the mean offset (mm) towards those voxels */
        double nrm[3] = {0, 0, 0};
        int64_t out = 0;
        for (int dk = -rad; dk <= rad; dk++)
            for (int dj = -rad; dj <= rad; dj++)
                for (int di = -rad; di <= rad; di++) {
                    int64_t i = ijk[0] + di, j = ijk[1] + dj, k = ijk[2] + dk;
                    int o = i < 0 || j < 0 || k < 0 || i >= dim[0] || j >= dim[1] || k >= dim[2] ||
                            !head[i + dim[0] * (j + dim[1] * k)];
                    if (!o) continue;
                    out++;
                    for (int a = 0; a < 3; a++)
                        nrm[a] += affine[a][0] * di + affine[a][1] * dj + affine[a][2] * dk;
                }
        double len = sqrt(nrm[0] * nrm[0] + nrm[1] * nrm[1] + nrm[2] * nrm[2]);
        if (!out || len == 0) continue;
        double w = (double)out / (double)box, n[3], r[3];
        for (int a = 0; a < 3; a++) {
            n[a] = nrm[a] / len;
            r[a] = pos[a] - ctr[a];
        }
        /* displacement of the voxel along n: n . (t + omega x r) = n . t + omega . (r x n) */
        float *h = m->h + 6 * b;
        for (int a = 0; a < 3; a++) h[a] = (float)(w * n[a]);
        h[3] = (float)(w * (r[1] * n[2] - r[2] * n[1]));
        h[4] = (float)(w * (r[2] * n[0] - r[0] * n[2]));
        h[5] = (float)(w * (r[0] * n[1] - r[1] * n[0]));
    }
    free(head);
    return 0;
}

void synth_motion_free(synth_motion *mo) {
    free(mo->x);
    free(mo->est);
    free(mo->spin);
    memset(mo, 0, sizeof *mo);
}

/* Framewise displacement of rows t-1 -> t of a T x 6 trace (mm, rad). */
static double fd_at(const double *x, int64_t t) {
    double d = 0;
    for (int j = 0; j < 6; j++)
        d += fabs(x[6 * t + j] - x[6 * (t - 1) + j]) * (j < 3 ? 1.0 : SYNTH_MOTION_HEAD_MM);
    return d;
}

int synth_motion_draw(const synth_params *p, int64_t s, int patient, synth_motion *mo,
                      bgfm_err *e) {
    memset(mo, 0, sizeof *mo);
    int64_t T = p->volumes;
    mo->T = T;
    mo->x = bgfm_calloc(e, (size_t)T * 6, sizeof *mo->x, "synth motion trace");
    mo->est = bgfm_calloc(e, (size_t)T * 6, sizeof *mo->est, "synth motion estimate");
    mo->spin = bgfm_calloc(e, (size_t)T, sizeof *mo->spin, "synth spin history");
    if (!mo->x || !mo->est || !mo->spin) {
        synth_motion_free(mo);
        return BGFM_ENOMEM;
    }
    rng_stream r;
    rng_init(&r, p->seed, RNG_SYNTH, (uint64_t)(s + p->first_subject), SYNTH_R_MOTION, 0);
    double lv = p->motion * exp(SYNTH_MOTION_SPREAD * rng_normal(&r) +
                                (patient ? p->motion_patient : 0.0));
    mo->level = lv;
    /* drift: a random walk whose steps give DRIFT_SHARE of the level as mean FD
     * (E|N(0, sd^2)| = sd sqrt(2/pi), six parameters); rotations in mm at 50 mm */
    double sd = DRIFT_SHARE * lv / (6.0 * sqrt(2.0 / 3.141592653589793));
    for (int64_t t = 1; t < T; t++)
        for (int j = 0; j < 6; j++) mo->x[6 * t + j] = mo->x[6 * (t - 1) + j] + sd * rng_normal(&r);
    /* spikes: the head moves at volume t and comes back at t + 1; the spin history of the
     * moved slices lowers the signal everywhere at t and, half as much, at t + 1 */
    double rate = SPIKE_RATE * lv / 0.2;
    if (rate > SPIKE_CAP) rate = SPIKE_CAP;
    /* mean size, so that the spikes (two volumes of FD each) give the rest of the level */
    double amean = (1.0 - DRIFT_SHARE) * lv / (2.0 * L1_UNIT6 * (rate > 0 ? rate : 1));
    double *disp = bgfm_calloc(e, (size_t)T * 6, sizeof *disp, "synth motion spikes");
    if (!disp) {
        synth_motion_free(mo);
        return BGFM_ENOMEM;
    }
    for (int64_t t = 1; t + 1 < T; t++) {
        if (rng_uniform(&r) >= rate) continue;
        double a = amean * (1.0 + fabs(rng_normal(&r))) / (1.0 + sqrt(2.0 / 3.141592653589793));
        double u[6], nu = 0;
        for (int j = 0; j < 6; j++) {
            u[j] = rng_normal(&r);
            nu += u[j] * u[j];
        }
        nu = sqrt(nu);
        for (int j = 0; j < 6; j++) disp[6 * t + j] += a * u[j] / nu;
        mo->spin[t] += SYNTH_MOTION_SPIN * a;
        mo->spin[t + 1] += 0.5 * SYNTH_MOTION_SPIN * a;
        mo->spikes++;
    }
    for (int64_t i = 0; i < T * 6; i++) mo->x[i] += disp[i];
    /* the realignment's estimate: noise on every volume, and a spike's displacement
     * misestimated (motion within a volume breaks the rigid-body model) */
    for (int64_t t = 0; t < T; t++) {
        int spike = 0;
        for (int j = 0; j < 6; j++) spike |= disp[6 * t + j] != 0;
        double a = 0;
        for (int j = 0; j < 6 && spike; j++) a += disp[6 * t + j] * disp[6 * t + j];
        a = sqrt(a);
        for (int j = 0; j < 6; j++)
            mo->est[6 * t + j] = mo->x[6 * t + j] + EST_SD * rng_normal(&r) +
                                 (spike ? 0.25 * a * rng_normal(&r) : 0.0);
    }
    free(disp);
    /* rotations: mm at 50 mm to radians */
    for (int64_t t = 0; t < T; t++)
        for (int j = 3; j < 6; j++) {
            mo->x[6 * t + j] /= SYNTH_MOTION_HEAD_MM;
            mo->est[6 * t + j] /= SYNTH_MOTION_HEAD_MM;
        }
    double sfd = 0;
    for (int64_t t = 1; t < T; t++) sfd += fd_at(mo->est, t);
    mo->mean_fd = T > 1 ? sfd / (double)(T - 1) : 0;
    return 0;
}

int synth_motion_write_confounds(const char *path, const synth_motion *mo, const double *gs,
                                 bgfm_err *e) {
    static const char *name[6] = {"trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"};
    int64_t T = mo->T;
    size_t cap = 1024 + (size_t)T * 27 * 24, n = 0;
    char *buf = bgfm_malloc(e, cap, "synth confounds table");
    if (!buf) return BGFM_ENOMEM;
    n += (size_t)snprintf(buf + n, cap - n, "global_signal\tframewise_displacement");
    for (int j = 0; j < 6; j++)
        n += (size_t)snprintf(buf + n, cap - n,
                              "\t%s\t%s_derivative1\t%s_derivative1_power2\t%s_power2", name[j],
                              name[j], name[j], name[j]);
    n += (size_t)snprintf(buf + n, cap - n, "\n");
    for (int64_t t = 0; t < T; t++) {
        n += (size_t)snprintf(buf + n, cap - n, "%.8g\t", gs[t]);
        if (t) n += (size_t)snprintf(buf + n, cap - n, "%.8g", fd_at(mo->est, t));
        else n += (size_t)snprintf(buf + n, cap - n, "n/a");
        for (int j = 0; j < 6; j++) {
            double x = mo->est[6 * t + j], d = t ? x - mo->est[6 * (t - 1) + j] : 0;
            if (t)
                n += (size_t)snprintf(buf + n, cap - n, "\t%.8g\t%.8g\t%.8g\t%.8g", x, d, d * d,
                                      x * x);
            else n += (size_t)snprintf(buf + n, cap - n, "\t%.8g\tn/a\tn/a\t%.8g", x, x * x);
        }
        n += (size_t)snprintf(buf + n, cap - n, "\n");
    }
    int rc = fs_write_atomic(path, buf, n, e);
    free(buf);
    return rc;
}
