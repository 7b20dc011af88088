/* synth_motion.h: head motion of `bgfm synth --motion`: each subject's motion level, the
 * head's displacement volume by volume, the artifact it leaves in the images (at the
 * brain's edge, and a global one at spikes), and the confounds file preprocessing such as
 * fMRIPrep writes beside each image (docs/synth.md "Head motion"). Not the images
 * themselves (synth.c). */
#ifndef BGFM_SYNTH_MOTION_H
#define BGFM_SYNTH_MOTION_H

#include <stdint.h>

#include "bgfm/ctx.h"
#include "bgfm/synth.h"

#define SYNTH_MOTION_SPREAD 0.5   /* sd of the log motion level between subjects */
#define SYNTH_MOTION_EDGE 2.0     /* percent of the baseline per mm, at full edge weight */
#define SYNTH_MOTION_SPIN 2.0     /* percent of the baseline per mm of a spike, global */
#define SYNTH_MOTION_EDGE_MM 8.0  /* radius of the neighbourhood that gives the edge weight */
#define SYNTH_MOTION_HEAD_MM 50.0 /* rotations in mm at this radius (Power et al. 2012) */

/* Per brain voxel (synth.c's order), the displacement's weights: the artifact of voxel b
 * at volume t is -EDGE % x h[b] . x_t, x_t = (trans mm, rot rad). */
typedef struct synth_motion_map {
    int64_t nb;
    float *h; /* nb x 6: edge weight x (outward normal, position x normal) */
} synth_motion_map;

/* dim/affine: the grid; inside: nvox, nonzero in the brain; brain: nb voxel indices. */
int synth_motion_map_build(const int64_t dim[3], const double affine[4][4],
                           const int32_t *inside, const int64_t *brain, int64_t nb,
                           synth_motion_map *m, bgfm_err *e);
void synth_motion_map_free(synth_motion_map *m);

/* One subject's head motion (its own random stream: the images' draws do not change). */
typedef struct synth_motion {
    int64_t T;
    double level;   /* M exp(0.5 z + R patient) */
    int64_t spikes; /* spike events */
    double *x;      /* T x 6: true displacement from the reference (mm, rad) */
    double *est;    /* T x 6: the realignment's estimate of it */
    double *spin;   /* T: global artifact (percent of the baseline, a drop) */
    double mean_fd; /* of est, volumes 2..T (Power et al. 2012) */
} synth_motion;

/* Draw subject s's motion (p->motion > 0); patient: its diagnosis class. */
int synth_motion_draw(const synth_params *p, int64_t s, int patient, synth_motion *mo,
                      bgfm_err *e);
void synth_motion_free(synth_motion *mo);

/* Artifact of brain voxel b at volume t, as a fraction of its baseline. */
static inline double synth_motion_artifact(const synth_motion_map *m, const synth_motion *mo,
                                           int64_t b, int64_t t) {
    const float *h = m->h + 6 * b;
    const double *x = mo->x + 6 * t;
    double d = 0;
    for (int j = 0; j < 6; j++) d += (double)h[j] * x[j];
    return -0.01 * (SYNTH_MOTION_EDGE * d + mo->spin[t]);
}

/* Write fMRIPrep's confounds table for mo to `path` (atomically): trans_x..rot_z, their
 * _derivative1, _power2, _derivative1_power2, framewise_displacement, global_signal (gs:
 * T values); n/a in the first row of differences. */
int synth_motion_write_confounds(const char *path, const synth_motion *mo, const double *gs,
                                 bgfm_err *e);

#endif
