/* resample.h: label atlases mapped onto a data grid by nearest neighbour through the
 * two images' affines, and a cache of the resulting compact voxel plans per data grid.
 * Not an interpolator (labels only) and not an image reader (nifti.h).
 *
 * Rule (docs/parcellate.md): data voxel (i,j,k) -> world w = A_data [i j k 1]^T ->
 * atlas voxel a = round(inv(A_atlas) w), round half away from zero (C round());
 * outside the atlas grid -> "no label". Identical grids (dims and every affine entry
 * equal) take an identity fast path. Non-collective. */
#ifndef BGFM_RESAMPLE_H
#define BGFM_RESAMPLE_H

#include <stdint.h>

#include "bgfm/ctx.h"

typedef struct resample_grid {
    int64_t dim[3];
    double affine[4][4]; /* voxel -> world (mm) */
} resample_grid;

/* Inverse of the grid's affine (last row 0 0 0 1); returns 0, or -1 if singular. */
int resample_affine_inv(const resample_grid *g, double inv[4][4]);
/* 1 if dims and all affine entries are exactly equal. */
int resample_grid_equal(const resample_grid *a, const resample_grid *b);
/* Round half away from zero (the documented tie rule). */
double resample_round(double x);

/* For every data voxel (Fortran order, i fastest), the value of `src` (one uint16 per
 * atlas voxel) at the nearest atlas voxel, or `fill` outside the atlas grid.
 * Returns 0, or BGFM_EDATA if the atlas affine is singular (`what` names the atlas). */
int resample_map(const resample_grid *data, const resample_grid *atlas, const uint16_t *src,
                 uint16_t fill, uint16_t *out, const char *what, bgfm_err *e);

/* Region index of "no region" in per-voxel region maps (so up to 65535 regions). */
#define RESAMPLE_NONE ((uint16_t)0xFFFF)

/* The compact extraction plan of one data grid for a list of atlases: the voxels that
 * have a region in at least one atlas (ascending index) and, per voxel and atlas, the
 * region's global index (region offset of the atlas + region index) or -1. */
typedef struct resample_plan {
    resample_grid grid;
    int n_atlases;
    int64_t n_in;      /* voxels in at least one atlas region */
    int64_t *vox;      /* n_in voxel indices */
    int32_t *gidx;     /* n_in * n_atlases, voxel-major */
    int64_t n_total;   /* regions over all atlases */
    int64_t *n_vox;    /* n_total: data voxels of each region */
    int64_t *rstart;   /* n_total + 1: region g's voxels are ridx[rstart[g] .. rstart[g+1]) */
    uint32_t *ridx;    /* data voxel indices grouped by global region, ascending within */
    /* Cells: the distinct tuples (region of atlas 0, ..., region of atlas A-1) that the
     * in-atlas voxels take. One pass over the voxels gives every cell's sum, and each
     * region's sum is the sum of its cells' sums: one gather per voxel per volume,
     * whatever the number of atlases. */
    int64_t n_cells;
    int64_t *cstart;   /* n_cells + 1: cell c's voxels are cidx[cstart[c] .. cstart[c+1]) */
    uint32_t *cidx;    /* n_in data voxel indices grouped by cell, ascending within */
    int32_t *cgid;     /* n_cells * n_atlases: the cell's global region per atlas, -1 none */
} resample_plan;

/* Atlas description for building plans: its grid and its per-voxel region index
 * (RESAMPLE_NONE for label 0), with n_regions regions. */
typedef struct resample_src {
    const resample_grid *grid;
    const uint16_t *region_of_vox;
    int n_regions;
    const char *name;
} resample_src;

typedef struct resample_cache {
    int n, cap;
    resample_plan *plans;
} resample_cache;

/* The plan for `grid` (built on first use, then reused while the cache lives). */
int resample_plan_get(resample_cache *c, const resample_grid *grid, const resample_src *atlases,
                      int n_atlases, const resample_plan **out, bgfm_err *e);
void resample_cache_free(resample_cache *c);

#endif
