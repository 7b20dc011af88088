/* test_resample.c: unit tests of the nearest-neighbour atlas mapping (index math on
 * known affines, ties, identity fast path, plan cache). With arguments
 *   test_resample --map ATLAS.nii[.gz] GRID.nii[.gz] OUT.raw
 * it writes the atlas labels mapped onto GRID's voxels (uint16, Fortran order) for
 * tests/reference/resample_aal.sh. Not a test of the NIfTI reader. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bgfm/nifti.h"
#include "bgfm/resample.h"

static void grid_set(resample_grid *g, int64_t nx, int64_t ny, int64_t nz, double a[4][4]) {
    g->dim[0] = nx;
    g->dim[1] = ny;
    g->dim[2] = nz;
    memcpy(g->affine, a, sizeof g->affine);
}

static void test_round_half_away(void **st) {
    (void)st;
    assert_true(resample_round(0.5) == 1.0);
    assert_true(resample_round(1.5) == 2.0);
    assert_true(resample_round(2.5) == 3.0);
    assert_true(resample_round(-0.5) == -1.0);
    assert_true(resample_round(-2.5) == -3.0);
    assert_true(resample_round(2.4999999) == 2.0);
}

static void test_inverse(void **st) {
    (void)st;
    double a[4][4] = {{0.5, -2.9, 0.1, 10}, {2.8, 0.4, -0.2, -20}, {0.05, 0.3, 3.1, 5}, {0, 0, 0, 1}};
    double inv[4][4];
    resample_grid g;
    grid_set(&g, 1, 1, 1, a);
    assert_int_equal(resample_affine_inv(&g, inv), 0);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            double s = 0;
            for (int k = 0; k < 4; k++) s += a[i][k] * inv[k][j];
            assert_true(fabs(s - (i == j ? 1.0 : 0.0)) < 1e-12);
        }
    double sing[4][4] = {{1, 2, 3, 0}, {2, 4, 6, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
    grid_set(&g, 1, 1, 1, sing);
    assert_int_equal(resample_affine_inv(&g, inv), -1);
}

/* 1 mm atlas 8x8x8 with label = 1 + i + 8 j + 64 k (wrapped to uint16), data 2 mm grid
 * offset by +1 mm: data (i,j,k) -> world (2i+1, 2j+1, 2k+1) -> atlas voxel same. */
static void test_known_affines(void **st) {
    (void)st;
    double aa[4][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
    double ad[4][4] = {{2, 0, 0, 1}, {0, 2, 0, 1}, {0, 0, 2, 1}, {0, 0, 0, 1}};
    resample_grid ga, gd;
    grid_set(&ga, 8, 8, 8, aa);
    grid_set(&gd, 5, 4, 4, ad);
    uint16_t src[512], out[80];
    for (int v = 0; v < 512; v++) src[v] = (uint16_t)(v + 1);
    bgfm_err e = {0};
    assert_int_equal(resample_map(&gd, &ga, src, 0, out, "t", &e), 0);
    for (int k = 0; k < 4; k++)
        for (int j = 0; j < 4; j++)
            for (int i = 0; i < 5; i++) {
                int ai = 2 * i + 1, aj = 2 * j + 1, ak = 2 * k + 1;
                uint16_t want = ai < 8 ? (uint16_t)(1 + ai + 8 * aj + 64 * ak) : 0;
                assert_int_equal(out[i + 5 * (j + 4 * k)], want);
            }
    /* a flipped x axis: world x = -i + 7 -> atlas i' = 7 - i */
    double af[4][4] = {{-1, 0, 0, 7}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
    resample_grid gf;
    grid_set(&gf, 8, 8, 8, af);
    uint16_t out2[512];
    assert_int_equal(resample_map(&gf, &ga, src, 0, out2, "t", &e), 0);
    for (int v = 0; v < 512; v++) {
        int i = v % 8, rest = v / 8;
        assert_int_equal(out2[v], src[(7 - i) + 8 * rest]);
    }
}

/* Ties: data at half-voxel offsets round away from zero: world 0.5 -> atlas 1,
 * world -0.5 -> -1 (outside -> fill). */
static void test_ties(void **st) {
    (void)st;
    double aa[4][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
    double ad[4][4] = {{1, 0, 0, -0.5}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
    resample_grid ga, gd;
    grid_set(&ga, 4, 1, 1, aa);
    grid_set(&gd, 4, 1, 1, ad);
    uint16_t src[4] = {10, 11, 12, 13}, out[4];
    bgfm_err e = {0};
    assert_int_equal(resample_map(&gd, &ga, src, 99, out, "t", &e), 0);
    /* x = -0.5 -> -1 (outside), 0.5 -> 1, 1.5 -> 2, 2.5 -> 3 */
    assert_int_equal(out[0], 99);
    assert_int_equal(out[1], 11);
    assert_int_equal(out[2], 12);
    assert_int_equal(out[3], 13);
}

static void test_identity_and_plan(void **st) {
    (void)st;
    double a[4][4] = {{-2, 0, 0, 90}, {0, 2, 0, -126}, {0, 0, 2, -72}, {0, 0, 0, 1}};
    resample_grid g;
    grid_set(&g, 3, 2, 2, a);
    uint16_t r1[12] = {0, 1, 1, RESAMPLE_NONE, 0, 2, 2, 2, RESAMPLE_NONE, RESAMPLE_NONE, 0, 1};
    uint16_t r2[12] = {RESAMPLE_NONE, 0, 0, 0, 0, 0, RESAMPLE_NONE, RESAMPLE_NONE, RESAMPLE_NONE,
                       RESAMPLE_NONE, RESAMPLE_NONE, 0};
    uint16_t out[12];
    bgfm_err e = {0};
    assert_int_equal(resample_map(&g, &g, r1, 7, out, "t", &e), 0);
    assert_memory_equal(out, r1, sizeof r1);
    resample_src src[2] = {{&g, r1, 3, "a"}, {&g, r2, 1, "b"}};
    resample_cache c = {0};
    const resample_plan *p = NULL, *p2 = NULL;
    assert_int_equal(resample_plan_get(&c, &g, src, 2, &p, &e), 0);
    assert_int_equal(p->n_in, 10); /* all voxels but 8 and 9 */
    assert_int_equal(p->n_total, 4);
    assert_int_equal(p->n_vox[0], 3); /* atlas a region 0: voxels 0, 4, 10 */
    assert_int_equal(p->n_vox[1], 3);
    assert_int_equal(p->n_vox[2], 3);
    assert_int_equal(p->n_vox[3], 6); /* atlas b region 0 -> global 3 */
    assert_int_equal(p->vox[0], 0);
    assert_int_equal(p->gidx[0], 0);
    assert_int_equal(p->gidx[1], -1);
    /* cells: distinct (region of a, region of b) tuples, numbered by first appearance:
     * (0,-) {0,10}, (1,3) {1,2,11}, (-,3) {3}, (0,3) {4}, (2,3) {5}, (2,-) {6,7} */
    assert_int_equal(p->n_cells, 6);
    const int64_t cs[7] = {0, 2, 5, 6, 7, 8, 10};
    const uint32_t ci[10] = {0, 10, 1, 2, 11, 3, 4, 5, 6, 7};
    const int32_t cg[12] = {0, -1, 1, 3, -1, 3, 0, 3, 2, 3, 2, -1};
    assert_memory_equal(p->cstart, cs, sizeof cs);
    assert_memory_equal(p->cidx, ci, sizeof ci);
    assert_memory_equal(p->cgid, cg, sizeof cg);
    assert_int_equal(resample_plan_get(&c, &g, src, 2, &p2, &e), 0);
    assert_ptr_equal(p, p2); /* cached: same grid, no rebuild */
    assert_int_equal(c.n, 1);
    resample_grid g2 = g;
    g2.affine[0][3] += 1e-9; /* any difference is a different grid */
    assert_int_equal(resample_plan_get(&c, &g2, src, 2, &p2, &e), 0);
    assert_int_equal(c.n, 2);
    resample_cache_free(&c);
}

static int map_cli(const char *atlas, const char *grid, const char *out) {
    bgfm_err e = {0};
    niftiio_reader *ra = NULL, *rg = NULL;
    if (niftiio_open(atlas, &ra, &e) || niftiio_open(grid, &rg, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    const niftiio_header *ha = niftiio_hdr(ra), *hg = niftiio_hdr(rg);
    resample_grid ga, gg;
    ga.dim[0] = ha->dim[1], ga.dim[1] = ha->dim[2], ga.dim[2] = ha->dim[3];
    gg.dim[0] = hg->dim[1], gg.dim[1] = hg->dim[2], gg.dim[2] = hg->dim[3];
    memcpy(ga.affine, ha->affine, sizeof ga.affine);
    memcpy(gg.affine, hg->affine, sizeof gg.affine);
    float *v = malloc((size_t)ha->nvox * sizeof *v);
    uint16_t *lab = malloc((size_t)ha->nvox * sizeof *lab);
    uint16_t *o = malloc((size_t)hg->nvox * sizeof *o);
    if (!v || !lab || !o || niftiio_read_volume(ra, v, &e)) {
        fprintf(stderr, "read failed: %s\n", e.msg);
        return 1;
    }
    for (int64_t i = 0; i < ha->nvox; i++) lab[i] = (uint16_t)lroundf(v[i]);
    if (resample_map(&gg, &ga, lab, 0, o, atlas, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    FILE *f = fopen(out, "wb");
    if (!f || fwrite(o, sizeof *o, (size_t)hg->nvox, f) != (size_t)hg->nvox || fclose(f)) return 1;
    niftiio_close(&ra);
    niftiio_close(&rg);
    free(v);
    free(lab);
    free(o);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "--map")) return map_cli(argv[2], argv[3], argv[4]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_half_away),
        cmocka_unit_test(test_inverse),
        cmocka_unit_test(test_known_affines),
        cmocka_unit_test(test_ties),
        cmocka_unit_test(test_identity_and_plan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
