/* test_nifti.c: unit tests of the NIfTI reader/writer (hand-built headers in both byte
 * orders, NIfTI-2, every error case, gzip streams, nifticlib on the mricron atlases).
 * Not the nibabel comparison: tests/reference/nifti_*.sh drives the hidden modes below
 * (--dump, --write-pattern, --stream) and compares in Python. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <nifti2_io.h>
#include <zlib.h>

#include "bgfm/nifti.h"
#include "tmpdir.h"


/* ------------------------------------------------------------ header builders */

typedef struct hspec {
    int version, swap;
    int64_t dim[8];
    double pixdim[8];
    int datatype, bitpix; /* bitpix 0 = derive */
    double vox_offset;    /* 0 = header size (+4 for v1) */
    double slope, inter;
    int qcode, scode, xyzt;
    double quat[6];
    double srow[3][4];
    const char *magic;    /* NULL = single-file magic */
} hspec;

static void put(uint8_t *b, int off, const void *v, int n, int sw) {
    uint8_t t[8];
    memcpy(t, v, (size_t)n);
    if (sw)
        for (int i = 0; i < n / 2; i++) {
            uint8_t x = t[i];
            t[i] = t[n - 1 - i];
            t[n - 1 - i] = x;
        }
    memcpy(b + off, t, (size_t)n);
}
static void p16(uint8_t *b, int off, int v, int sw) { int16_t x = (int16_t)v; put(b, off, &x, 2, sw); }
static void p32(uint8_t *b, int off, int32_t v, int sw) { put(b, off, &v, 4, sw); }
static void p64(uint8_t *b, int off, int64_t v, int sw) { put(b, off, &v, 8, sw); }
static void pf(uint8_t *b, int off, double v, int sw) { float x = (float)v; put(b, off, &x, 4, sw); }
static void pd(uint8_t *b, int off, double v, int sw) { put(b, off, &v, 8, sw); }

static int dt_bytes(int dt) {
    switch (dt) {
    case 2: case 256: return 1;
    case 4: case 512: return 2;
    case 8: case 768: case 16: return 4;
    default: return 8;
    }
}

/* Returns header length (352 or 544, with the 4-byte extension flag). */
static int build(const hspec *s, uint8_t *b) {
    int sw = s->swap;
    int bitpix = s->bitpix ? s->bitpix : 8 * dt_bytes(s->datatype);
    if (s->version == 1) {
        memset(b, 0, 352);
        p32(b, 0, 348, sw);
        for (int i = 0; i < 8; i++) p16(b, 40 + 2 * i, (int)s->dim[i], sw);
        p16(b, 70, s->datatype, sw);
        p16(b, 72, bitpix, sw);
        for (int i = 0; i < 8; i++) pf(b, 76 + 4 * i, s->pixdim[i], sw);
        pf(b, 108, s->vox_offset ? s->vox_offset : 352, sw);
        pf(b, 112, s->slope, sw);
        pf(b, 116, s->inter, sw);
        b[123] = (uint8_t)s->xyzt;
        p16(b, 252, s->qcode, sw);
        p16(b, 254, s->scode, sw);
        for (int i = 0; i < 6; i++) pf(b, 256 + 4 * i, s->quat[i], sw);
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 4; c++) pf(b, 280 + 16 * r + 4 * c, s->srow[r][c], sw);
        memcpy(b + 344, s->magic ? s->magic : "n+1", 4);
        return 352;
    }
    memset(b, 0, 544);
    p32(b, 0, 540, sw);
    memcpy(b + 4, s->magic ? s->magic : "n+2\0\r\n\032\n", 8);
    p16(b, 12, s->datatype, sw);
    p16(b, 14, bitpix, sw);
    for (int i = 0; i < 8; i++) p64(b, 16 + 8 * i, s->dim[i], sw);
    for (int i = 0; i < 8; i++) pd(b, 104 + 8 * i, s->pixdim[i], sw);
    p64(b, 168, s->vox_offset ? (int64_t)s->vox_offset : 544, sw);
    pd(b, 176, s->slope, sw);
    pd(b, 184, s->inter, sw);
    p32(b, 344, s->qcode, sw);
    p32(b, 348, s->scode, sw);
    for (int i = 0; i < 6; i++) pd(b, 352 + 8 * i, s->quat[i], sw);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++) pd(b, 400 + 32 * r + 8 * c, s->srow[r][c], sw);
    p32(b, 500, s->xyzt, sw);
    return 544;
}

static hspec base_spec(int version, int dt) {
    hspec s;
    memset(&s, 0, sizeof s);
    s.version = version;
    s.datatype = dt;
    s.dim[0] = 4; s.dim[1] = 4; s.dim[2] = 3; s.dim[3] = 2; s.dim[4] = 3;
    for (int i = 5; i < 8; i++) s.dim[i] = 1;
    s.pixdim[0] = 1; s.pixdim[1] = 2; s.pixdim[2] = 2.5; s.pixdim[3] = 3; s.pixdim[4] = 2;
    s.xyzt = 2 | 8;
    return s;
}

/* Value of voxel i of volume t in the test pattern (representable in every dtype). */
static double pattern(int64_t i, int64_t t) { return (double)((i * 7 + t * 13) % 100); }

static void fill_data(const hspec *s, uint8_t *d, int64_t nvox, int64_t nvol) {
    int nb = dt_bytes(s->datatype);
    for (int64_t t = 0; t < nvol; t++)
        for (int64_t i = 0; i < nvox; i++) {
            double v = pattern(i, t);
            uint8_t *p = d + (t * nvox + i) * nb;
            union { uint8_t u8; int8_t i8; int16_t i16; uint16_t u16; int32_t i32; uint32_t u32;
                    int64_t i64; uint64_t u64; float f; double g; } u;
            switch (s->datatype) {
            case 2: u.u8 = (uint8_t)v; break;
            case 256: u.i8 = (int8_t)v; break;
            case 4: u.i16 = (int16_t)v; break;
            case 512: u.u16 = (uint16_t)v; break;
            case 8: u.i32 = (int32_t)v; break;
            case 768: u.u32 = (uint32_t)v; break;
            case 1024: u.i64 = (int64_t)v; break;
            case 1280: u.u64 = (uint64_t)v; break;
            case 16: u.f = (float)v; break;
            default: u.g = v; break;
            }
            put(p, 0, &u, nb, s->swap);
        }
}

/* Write header + data (nvol volumes, or `trunc_bytes` of it when >= 0), gzip if gz. */
static void write_nifti(const char *path, const hspec *s, int gz, long trunc_bytes) {
    uint8_t hb[600];
    int hl = build(s, hb);
    int64_t nvox = 0, nvol = 0; /* header only when trunc_bytes <= 600 */
    if (trunc_bytes < 0 || trunc_bytes > 600) {
        nvox = s->dim[1] * s->dim[2] * s->dim[3];
        nvol = s->dim[4];
        for (int i = 1; i <= 3; i++)
            if (i > s->dim[0]) nvox /= s->dim[i] > 0 ? s->dim[i] : 1;
    }
    size_t nd = (size_t)(nvox * nvol * dt_bytes(s->datatype));
    size_t total = (size_t)hl + nd;
    if (trunc_bytes > hl && nd == 0) total = (size_t)trunc_bytes;
    uint8_t *all = calloc(total, 1);
    assert_non_null(all);
    memcpy(all, hb, (size_t)(total < (size_t)hl ? total : (size_t)hl));
    if (nd) fill_data(s, all + hl, nvox, nvol);
    if (trunc_bytes >= 0 && (size_t)trunc_bytes < total) total = (size_t)trunc_bytes;
    if (gz) {
        gzFile f = gzopen(path, "wb6");
        assert_non_null(f);
        assert_int_equal(gzwrite(f, all, (unsigned)total), (int)total);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(all, 1, total, f), total);
        fclose(f);
    }
    free(all);
}

static void check_pattern(niftiio_reader *r, int64_t nvox, int64_t nvol, double slope,
                          double inter) {
    float *v = malloc((size_t)nvox * sizeof *v);
    double *w = malloc((size_t)nvox * sizeof *w);
    assert_non_null(v);
    assert_non_null(w);
    bgfm_err e = {0};
    for (int64_t t = 0; t < nvol; t++) {
        int rc = (t % 2) ? niftiio_read_volume(r, v, &e) : niftiio_read_volume_f64(r, w, &e);
        if (rc) fprintf(stderr, "%s\n", e.msg);
        assert_int_equal(rc, 0);
        for (int64_t i = 0; i < nvox; i++) {
            double want = pattern(i, t) * slope + inter;
            double got = (t % 2) ? (double)v[i] : w[i];
            if (fabs(got - want) > 1e-6 * (1 + fabs(want))) {
                fprintf(stderr, "voxel %lld vol %lld: got %g want %g\n", (long long)i,
                        (long long)t, got, want);
                fail();
            }
        }
    }
    free(v);
    free(w);
}

static int setup(void **state) {
    (void)state;
    assert_int_equal(tmpdir_make("nifti"), 0);
    return 0;
}
static int teardown(void **state) {
    (void)state;
    return tmpdir_remove();
}

/* ------------------------------------------------------------ tests */

static void t_v1_sform_float32(void **state) {
    (void)state;
    hspec s = base_spec(1, NIFTIIO_FLOAT32);
    s.scode = 1; s.qcode = 0;
    double srow[3][4] = {{-2, 0.1, 0, 90}, {0, 2.5, 0.2, -126}, {0.3, 0, 3, -72}};
    memcpy(s.srow, srow, sizeof srow);
    s.pixdim[4] = 1500; s.xyzt = 2 | 16; /* ms */
    for (int gz = 0; gz < 2; gz++) {
        const char *p = tpath(gz ? "a.nii.gz" : "a.nii");
        write_nifti(p, &s, gz, -1);
        niftiio_reader *r = NULL;
        bgfm_err e = {0};
        assert_int_equal(niftiio_open(p, &r, &e), 0);
        const niftiio_header *h = niftiio_hdr(r);
        assert_int_equal(h->version, 1);
        assert_int_equal(h->swapped, 0);
        assert_int_equal(h->ndim, 4);
        assert_int_equal(h->nvox, 24);
        assert_int_equal(h->nvol, 3);
        assert_true(fabs(h->tr_seconds - 1.5) < 1e-9);
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 4; j++)
                assert_true(fabs(h->affine[i][j] - (double)(float)srow[i][j]) < 1e-12);
        assert_true(h->affine[3][3] == 1 && h->affine[3][0] == 0);
        check_pattern(r, 24, 3, 1, 0);
        assert_true(niftiio_bytes_read(r) > 0);
        niftiio_close(&r);
        assert_null(r);
    }
}

static void t_v1_swapped_qform_scaled(void **state) {
    (void)state;
    hspec s = base_spec(1, NIFTIIO_INT16);
    s.swap = 1;
    s.qcode = 1;
    s.scode = 0;
    s.slope = 2;
    s.inter = -1;
    s.pixdim[0] = -1; /* qfac */
    double sq = sqrt(0.5);
    s.quat[0] = 0; s.quat[1] = 0; s.quat[2] = sq; /* 90 degrees about z */
    s.quat[3] = 10; s.quat[4] = 20; s.quat[5] = 30;
    for (int gz = 0; gz < 2; gz++) {
        const char *p = tpath(gz ? "b.nii.gz" : "b.nii");
        write_nifti(p, &s, gz, -1);
        niftiio_reader *r = NULL;
        bgfm_err e = {0};
        assert_int_equal(niftiio_open(p, &r, &e), 0);
        const niftiio_header *h = niftiio_hdr(r);
        assert_int_equal(h->swapped, 1);
        /* R = [[0,-1,0],[1,0,0],[0,0,1]] times diag(2, 2.5, -3) */
        double want[3][4] = {{0, -2.5, 0, 10}, {2, 0, 0, 20}, {0, 0, -3, 30}};
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 4; j++) assert_true(fabs(h->affine[i][j] - want[i][j]) < 1e-6);
        assert_true(fabs(h->tr_seconds - 2) < 1e-12);
        check_pattern(r, 24, 3, 2, -1);
        niftiio_close(&r);
    }
}

static void t_v2_both_orders(void **state) {
    (void)state;
    int dts[3] = {NIFTIIO_INT64, NIFTIIO_UINT16, NIFTIIO_FLOAT64};
    for (int k = 0; k < 3; k++)
        for (int sw = 0; sw < 2; sw++) {
            hspec s = base_spec(2, dts[k]);
            s.swap = sw;
            s.scode = 2;
            double srow[3][4] = {{-1.5, 0, 0, 5}, {0, 1.5, 0, -6}, {0, 0, 1.5, 7}};
            memcpy(s.srow, srow, sizeof srow);
            s.slope = 0.5;
            s.inter = 3;
            const char *p = tpath("v2.nii.gz");
            write_nifti(p, &s, sw, -1);
            niftiio_reader *r = NULL;
            bgfm_err e = {0};
            int rc = niftiio_open(p, &r, &e);
            if (rc) fprintf(stderr, "%s\n", e.msg);
            assert_int_equal(rc, 0);
            const niftiio_header *h = niftiio_hdr(r);
            assert_int_equal(h->version, 2);
            assert_int_equal(h->swapped, sw);
            assert_int_equal(h->datatype, dts[k]);
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 4; j++) assert_true(h->affine[i][j] == srow[i][j]);
            check_pattern(r, 24, 3, 0.5, 3);
            niftiio_close(&r);
        }
}

static void t_all_datatypes(void **state) {
    (void)state;
    int dts[10] = {2, 256, 4, 512, 8, 768, 1024, 1280, 16, 64};
    for (int k = 0; k < 10; k++)
        for (int sw = 0; sw < 2; sw++) {
            hspec s = base_spec(1, dts[k]);
            s.swap = sw;
            s.slope = NAN; /* identity, as nibabel */
            s.inter = NAN;
            const char *p = tpath("dt.nii");
            write_nifti(p, &s, 0, -1);
            niftiio_reader *r = NULL;
            bgfm_err e = {0};
            assert_int_equal(niftiio_open(p, &r, &e), 0);
            check_pattern(r, 24, 3, 1, 0);
            niftiio_close(&r);
        }
}

static void t_fallback_affine_and_2d(void **state) {
    (void)state;
    hspec s = base_spec(1, NIFTIIO_UINT8);
    s.dim[0] = 2; /* 2D image: read as one volume of 4x3 */
    const char *p = tpath("c.nii");
    write_nifti(p, &s, 0, -1);
    niftiio_reader *r = NULL;
    bgfm_err e = {0};
    assert_int_equal(niftiio_open(p, &r, &e), 0);
    const niftiio_header *h = niftiio_hdr(r);
    assert_int_equal(h->nvox, 12);
    assert_int_equal(h->nvol, 1);
    assert_true(h->tr_seconds == 0);
    /* nibabel shape_zoom_affine((4,3,1), (2,2.5,1)) with x flip */
    double want[3][4] = {{-2, 0, 0, 3}, {0, 2.5, 0, -2.5}, {0, 0, 1, 0}};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) assert_true(fabs(h->affine[i][j] - want[i][j]) < 1e-12);
    check_pattern(r, 12, 1, 1, 0);
    niftiio_close(&r);
    /* 3D, codes 0 */
    s = base_spec(1, NIFTIIO_UINT8);
    s.dim[0] = 3;
    write_nifti(p, &s, 0, -1);
    assert_int_equal(niftiio_open(p, &r, &e), 0);
    h = niftiio_hdr(r);
    assert_int_equal(h->nvol, 1);
    double want3[3][4] = {{-2, 0, 0, 3}, {0, 2.5, 0, -2.5}, {0, 0, 3, -1.5}};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) assert_true(fabs(h->affine[i][j] - want3[i][j]) < 1e-12);
    niftiio_close(&r);
}

static void t_gzip_detection_and_members(void **state) {
    (void)state;
    hspec s = base_spec(1, NIFTIIO_FLOAT32);
    /* gzip content under a .nii name, plain content under a .nii.gz name */
    const char *p1 = tpath("gz_named.nii"), *p2 = tpath("plain_named.nii.gz");
    write_nifti(p1, &s, 1, -1);
    write_nifti(p2, &s, 0, -1);
    const char *ps[2] = {p1, p2};
    for (int k = 0; k < 2; k++) {
        niftiio_reader *r = NULL;
        bgfm_err e = {0};
        assert_int_equal(niftiio_open(ps[k], &r, &e), 0);
        check_pattern(r, 24, 3, 1, 0);
        niftiio_close(&r);
    }
    /* multi-member: split the file bytes into three gzip members */
    const char *pp = tpath("plain.nii");
    write_nifti(pp, &s, 0, -1);
    FILE *f = fopen(pp, "rb");
    assert_non_null(f);
    uint8_t buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    const char *pm = tpath("multi.nii.gz");
    size_t cuts[4] = {0, 100, 400, n};
    FILE *o = fopen(pm, "wb");
    assert_non_null(o);
    for (int m = 0; m < 3; m++) {
        const char *pt = tpath("member.gz");
        gzFile g = gzopen(pt, "wb");
        assert_non_null(g);
        gzwrite(g, buf + cuts[m], (unsigned)(cuts[m + 1] - cuts[m]));
        gzclose(g);
        FILE *gi = fopen(pt, "rb");
        uint8_t gb[8192];
        size_t gn = fread(gb, 1, sizeof gb, gi);
        fclose(gi);
        fwrite(gb, 1, gn, o);
    }
    fclose(o);
    niftiio_reader *r = NULL;
    bgfm_err e = {0};
    assert_int_equal(niftiio_open(pm, &r, &e), 0);
    check_pattern(r, 24, 3, 1, 0);
    niftiio_close(&r);
}

static void expect_open_fail(const char *path, int code, const char *needle) {
    niftiio_reader *r = NULL;
    bgfm_err e = {0};
    int rc = niftiio_open(path, &r, &e);
    if (rc != code || !strstr(e.msg, path) || (needle && !strstr(e.msg, needle)))
        fprintf(stderr, "rc %d (want %d), msg: %s (want '%s')\n", rc, code, e.msg,
                needle ? needle : "");
    assert_int_equal(rc, code);
    assert_null(r);
    assert_non_null(strstr(e.msg, path));
    if (needle) assert_non_null(strstr(e.msg, needle));
}

static void t_header_errors(void **state) {
    (void)state;
    const char *p = tpath("bad.nii");
    expect_open_fail(tpath("does-not-exist.nii.gz"), BGFM_EDATA, "cannot open");
    FILE *f = fopen(p, "wb");
    fputs("this is not an image, just some text that is long enough to be read", f);
    fclose(f);
    expect_open_fail(p, BGFM_EDATA, "not a NIfTI");
    f = fopen(p, "wb");
    fclose(f);
    expect_open_fail(p, BGFM_EDATA, "empty");

    for (int v = 1; v <= 2; v++) {
        for (int gz = 0; gz < 2; gz++) {
            hspec s = base_spec(v, NIFTIIO_FLOAT32);
            write_nifti(p, &s, gz, 200); /* header cut short */
            expect_open_fail(p, BGFM_EDATA, gz ? "header" : "truncated");
        }
        hspec s = base_spec(v, NIFTIIO_FLOAT32);
        s.dim[2] = 0;
        write_nifti(p, &s, 0, -1);
        expect_open_fail(p, BGFM_EDATA, "dim[2]");
        s = base_spec(v, NIFTIIO_FLOAT32);
        s.dim[4] = -3;
        write_nifti(p, &s, 0, 600);
        expect_open_fail(p, BGFM_EDATA, "dim[4]");
        s = base_spec(v, NIFTIIO_FLOAT32);
        s.dim[0] = 9;
        write_nifti(p, &s, 0, 600);
        expect_open_fail(p, BGFM_EDATA, "dim[0]");
        s = base_spec(v, 32); /* complex64 */
        s.bitpix = 64;
        write_nifti(p, &s, 0, 600);
        expect_open_fail(p, BGFM_EDATA, "unsupported datatype");
        s = base_spec(v, NIFTIIO_FLOAT32);
        s.bitpix = 16;
        write_nifti(p, &s, 0, -1);
        expect_open_fail(p, BGFM_EDATA, "bitpix");
        double bad[3] = {0, -1, NAN};
        for (int k = 0; k < 3; k++) {
            s = base_spec(v, NIFTIIO_FLOAT32);
            s.pixdim[2] = bad[k];
            write_nifti(p, &s, 0, -1);
            expect_open_fail(p, BGFM_EDATA, "pixdim[2]");
        }
        s = base_spec(v, NIFTIIO_FLOAT32);
        s.vox_offset = 100;
        write_nifti(p, &s, 0, -1);
        expect_open_fail(p, BGFM_EDATA, "inside");
        s = base_spec(v, NIFTIIO_FLOAT32);
        s.vox_offset = 100000;
        write_nifti(p, &s, 0, -1);
        expect_open_fail(p, BGFM_EDATA, "beyond");
        write_nifti(tpath("bad.nii.gz"), &s, 1, -1);
        expect_open_fail(tpath("bad.nii.gz"), BGFM_EDATA, "vox_offset");
        s = base_spec(v, NIFTIIO_FLOAT32);
        s.magic = v == 1 ? "abc" : "xyz\0\0\0\0";
        write_nifti(p, &s, 0, -1);
        expect_open_fail(p, BGFM_EDATA, "magic");
        s = base_spec(v, NIFTIIO_FLOAT32);
        s.slope = 2;
        s.inter = INFINITY;
        write_nifti(p, &s, 0, -1);
        expect_open_fail(p, BGFM_EDATA, "scl_inter");
    }
    /* dims whose product overflows int64 (NIfTI-2 allows 64-bit dims) */
    hspec s = base_spec(2, NIFTIIO_FLOAT32);
    s.dim[1] = (int64_t)1 << 31;
    s.dim[2] = (int64_t)1 << 31;
    s.dim[3] = (int64_t)1 << 10;
    write_nifti(p, &s, 0, 600);
    expect_open_fail(p, BGFM_EDATA, "overflow");
    s = base_spec(2, NIFTIIO_FLOAT64);
    s.dim[1] = (int64_t)1 << 30;
    s.dim[2] = (int64_t)1 << 30;
    s.dim[3] = 4;
    write_nifti(p, &s, 0, 600); /* nvox fits, nvox*8 bytes does not */
    expect_open_fail(p, BGFM_EDATA, "overflow");
    /* dims that multiply to far more than the file holds (32767^4 float32 voxels in a few
     * kB): refused at open, naming the file, before any allocation by the header */
    s = base_spec(1, NIFTIIO_FLOAT32);
    s.dim[1] = s.dim[2] = s.dim[3] = s.dim[4] = 32767;
    write_nifti(p, &s, 1, 590); /* the header and zeros */
    expect_open_fail(p, BGFM_EDATA, "more than this");
    write_nifti(p, &s, 0, 590);
    expect_open_fail(p, BGFM_EDATA, "the header promises");
    /* bad quaternion */
    s = base_spec(1, NIFTIIO_FLOAT32);
    s.qcode = 1;
    s.quat[0] = 0.9; s.quat[1] = 0.9;
    write_nifti(p, &s, 0, -1);
    expect_open_fail(p, BGFM_EDATA, "quaternion");
}

static void expect_volume_fail(const char *path, int ok_volumes, const char *needle) {
    niftiio_reader *r = NULL;
    bgfm_err e = {0};
    int rc = niftiio_open(path, &r, &e);
    if (rc) fprintf(stderr, "open: %s\n", e.msg);
    assert_int_equal(rc, 0);
    int64_t nvox = niftiio_hdr(r)->nvox, nvol = niftiio_hdr(r)->nvol;
    float *v = malloc((size_t)nvox * sizeof *v);
    int t = 0;
    for (; t < nvol; t++)
        if ((rc = niftiio_read_volume(r, v, &e)) != 0) break;
    free(v);
    niftiio_close(&r);
    if (rc != BGFM_EDATA || !strstr(e.msg, path) || (needle && !strstr(e.msg, needle)))
        fprintf(stderr, "after %d volumes rc %d: %s\n", t, rc, e.msg);
    assert_int_equal(rc, BGFM_EDATA);
    assert_non_null(strstr(e.msg, path));
    if (needle) assert_non_null(strstr(e.msg, needle));
    if (ok_volumes >= 0) assert_int_equal(t, ok_volumes);
}

static void t_truncated_and_corrupt(void **state) {
    (void)state;
    hspec s = base_spec(1, NIFTIIO_FLOAT32);
    s.dim[1] = 40; s.dim[2] = 40; s.dim[3] = 20; s.dim[4] = 6; /* 128 kB per volume */
    /* cut inside volume 4 (0-based 3): header 352 + 3.5 volumes. A plain file is measured
     * at open (its size is known), before anything is allocated by its header; a .gz is
     * found out while reading, after 3 good volumes. */
    long cut = 352 + (long)(3.5 * 40 * 40 * 20 * 4);
    write_nifti(tpath("tr.nii"), &s, 0, cut);
    expect_open_fail(tpath("tr.nii"), BGFM_EDATA, "volume 4 of 6");
    write_nifti(tpath("tr.nii.gz"), &s, 1, cut);
    expect_volume_fail(tpath("tr.nii.gz"), 3, "volume 4 of 6");
    /* a complete .gz cut in the middle of its compressed bytes */
    write_nifti(tpath("full.nii.gz"), &s, 1, -1);
    struct stat st;
    assert_int_equal(stat(tpath("full.nii.gz"), &st), 0);
    assert_int_equal(truncate(tpath("full.nii.gz"), st.st_size / 2), 0);
    expect_volume_fail(tpath("full.nii.gz"), -1, "volume");
    /* cut just before the CRC trailer: all voxel bytes present, stream incomplete */
    write_nifti(tpath("trail.nii.gz"), &s, 1, -1);
    assert_int_equal(stat(tpath("trail.nii.gz"), &st), 0);
    assert_int_equal(truncate(tpath("trail.nii.gz"), st.st_size - 6), 0);
    expect_volume_fail(tpath("trail.nii.gz"), -1, NULL);
    /* corrupted bytes in the middle of the deflate stream */
    write_nifti(tpath("corrupt.nii.gz"), &s, 1, -1);
    assert_int_equal(stat(tpath("corrupt.nii.gz"), &st), 0);
    FILE *f = fopen(tpath("corrupt.nii.gz"), "r+b");
    assert_non_null(f);
    for (long off = st.st_size / 2; off < st.st_size / 2 + 64; off++) {
        fseek(f, off, SEEK_SET);
        fputc((int)((off * 131) & 0xff), f);
    }
    fclose(f);
    expect_volume_fail(tpath("corrupt.nii.gz"), -1, "gzip");
}

static void t_pair(void **state) {
    (void)state;
    hspec s = base_spec(1, NIFTIIO_INT16);
    s.magic = "ni1";
    s.vox_offset = 0;
    uint8_t hb[600];
    build(&s, hb);
    /* vox_offset 0 in the pair header */
    pf(hb, 108, 0, 0);
    FILE *f = fopen(tpath("pair.hdr"), "wb");
    fwrite(hb, 1, 348, f);
    fclose(f);
    uint8_t data[24 * 3 * 2];
    fill_data(&s, data, 24, 3);
    gzFile g = gzopen(tpath("pair.img.gz"), "wb");
    gzwrite(g, data, sizeof data);
    gzclose(g);
    niftiio_reader *r = NULL;
    bgfm_err e = {0};
    int rc = niftiio_open(tpath("pair.hdr"), &r, &e);
    if (rc) fprintf(stderr, "%s\n", e.msg);
    assert_int_equal(rc, 0);
    check_pattern(r, 24, 3, 1, 0);
    niftiio_close(&r);
}

static void t_writer_roundtrip(void **state) {
    (void)state;
    niftiio_write_spec ws;
    memset(&ws, 0, sizeof ws);
    ws.dim[0] = 5; ws.dim[1] = 4; ws.dim[2] = 3; ws.dim[3] = 4;
    ws.pixdim[0] = 2; ws.pixdim[1] = 2; ws.pixdim[2] = 2; ws.pixdim[3] = 0.8;
    double aff[4][4] = {{-2, 0, 0, 90}, {0, 2, 0, -126}, {0, 0, 2, -72}, {0, 0, 0, 1}};
    memcpy(ws.affine, aff, sizeof aff);
    ws.xform_code = 4;
    const char *names[4] = {"w.nii.gz", "w.nii", "w16.nii.gz", "w8.nii"};
    int dts[4] = {NIFTIIO_FLOAT32, NIFTIIO_FLOAT32, NIFTIIO_INT16, NIFTIIO_UINT8};
    float vol[60];
    for (int k = 0; k < 4; k++) {
        ws.datatype = dts[k];
        ws.scl_slope = dts[k] == NIFTIIO_INT16 ? 0.5 : 0;
        ws.scl_inter = dts[k] == NIFTIIO_INT16 ? 10 : 0;
        ws.gzip_level = k;
        niftiio_writer *w = NULL;
        bgfm_err e = {0};
        const char *p = tpath(names[k]);
        assert_int_equal(niftiio_writer_open(p, &ws, &w, &e), 0);
        for (int t = 0; t < 4; t++) {
            for (int i = 0; i < 60; i++) vol[i] = (float)(dts[k] == NIFTIIO_UINT8 ? (i + t) % 200
                                                          : (i - 30) * 1.5 + t * 0.5);
            assert_int_equal(niftiio_writer_volume(w, vol, &e), 0);
        }
        assert_int_equal(access(p, F_OK), -1); /* not visible before close */
        assert_int_equal(niftiio_writer_close(&w, &e), 0);
        assert_null(w);
        niftiio_reader *r = NULL;
        assert_int_equal(niftiio_open(p, &r, &e), 0);
        const niftiio_header *h = niftiio_hdr(r);
        assert_int_equal(h->nvox, 60);
        assert_int_equal(h->nvol, 4);
        assert_int_equal(h->sform_code, 4);
        assert_int_equal(h->qform_code, 4);
        assert_true(fabs(h->tr_seconds - 0.8) < 1e-6);
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) assert_true(fabs(h->affine[i][j] - aff[i][j]) < 1e-6);
        float got[60];
        for (int t = 0; t < 4; t++) {
            assert_int_equal(niftiio_read_volume(r, got, &e), 0);
            for (int i = 0; i < 60; i++) {
                double want = dts[k] == NIFTIIO_UINT8 ? (i + t) % 200 : (i - 30) * 1.5 + t * 0.5;
                assert_true(fabs((double)got[i] - want) < 1e-5);
            }
        }
        niftiio_close(&r);
    }
    /* out-of-range int16 fails; abort leaves nothing behind */
    ws.datatype = NIFTIIO_INT16;
    ws.scl_slope = 1;
    ws.scl_inter = 0;
    niftiio_writer *w = NULL;
    bgfm_err e = {0};
    const char *p = tpath("range.nii.gz");
    assert_int_equal(niftiio_writer_open(p, &ws, &w, &e), 0);
    for (int i = 0; i < 60; i++) vol[i] = 40000.0f;
    assert_int_equal(niftiio_writer_volume(w, vol, &e), BGFM_EDATA);
    assert_non_null(strstr(e.msg, "int16"));
    niftiio_writer_abort(&w);
    assert_null(w);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q range", tmpdir);
    assert_int_not_equal(system(cmd), 0);
    /* unwritable folder */
    bgfm_err e2 = {0};
    assert_int_equal(niftiio_writer_open("/nonexistent-dir/x.nii.gz", &ws, &w, &e2), BGFM_EIO);
    assert_non_null(strstr(e2.msg, "/nonexistent-dir/x.nii.gz"));
}

static void t_read_3d(void **state) {
    (void)state;
    hspec s = base_spec(1, NIFTIIO_INT16);
    write_nifti(tpath("four.nii"), &s, 0, -1);
    niftiio_header h;
    double *d = NULL;
    bgfm_err e = {0};
    assert_int_equal(niftiio_read_3d(tpath("four.nii"), &h, &d, &e), BGFM_EDATA);
    assert_null(d);
    assert_non_null(strstr(e.msg, "3D"));
    s.dim[0] = 3;
    s.dim[4] = 1;
    write_nifti(tpath("three.nii.gz"), &s, 1, -1);
    bgfm_err e2 = {0};
    assert_int_equal(niftiio_read_3d(tpath("three.nii.gz"), &h, &d, &e2), 0);
    assert_int_equal(h.nvox, 24);
    for (int i = 0; i < 24; i++) assert_true(d[i] == pattern(i, 0));
    free(d);
}

/* Every voxel and the affine of the mricron atlases against nifticlib. */
static void t_nifticlib_atlases(void **state) {
    (void)state;
    const char *atl[3] = {"/usr/share/mricron/templates/aal.nii.gz",
                          "/usr/share/mricron/templates/AICHAmc.nii.gz",
                          "/usr/share/mricron/templates/HarvardOxford-cort-maxprob-thr0-1mm.nii.gz"};
    nifti_set_debug_level(0);
    for (int k = 0; k < 3; k++) {
        if (access(atl[k], R_OK) != 0) {
            fprintf(stderr, "# skipping %s (absent)\n", atl[k]);
            continue;
        }
        nifti_image *nim = nifti_image_read(atl[k], 1);
        assert_non_null(nim);
        niftiio_header h;
        double *d = NULL;
        bgfm_err e = {0};
        assert_int_equal(niftiio_read_3d(atl[k], &h, &d, &e), 0);
        assert_int_equal(h.dim[1], nim->nx);
        assert_int_equal(h.dim[2], nim->ny);
        assert_int_equal(h.dim[3], nim->nz);
        assert_int_equal(h.nvox, nim->nvox);
        const nifti_dmat44 *m = nim->sform_code > 0 ? &nim->sto_xyz : &nim->qto_xyz;
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) assert_true(fabs(h.affine[i][j] - m->m[i][j]) < 1e-5);
        assert_int_equal(nim->datatype, NIFTIIO_UINT8);
        const uint8_t *ref = nim->data;
        int64_t bad = 0;
        for (int64_t i = 0; i < h.nvox; i++) bad += d[i] != (double)ref[i];
        assert_int_equal(bad, 0);
        free(d);
        nifti_image_free(nim);
    }
}

/* ------------------------------------------------------------ hidden modes */

/* --dump IN OUT: OUT.json (header) + OUT.f32 (every volume, float32, as read) */
static int mode_dump(const char *in, const char *out) {
    niftiio_reader *r = NULL;
    bgfm_err e = {0};
    if (niftiio_open(in, &r, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return e.code;
    }
    const niftiio_header *h = niftiio_hdr(r);
    char p[1024];
    snprintf(p, sizeof p, "%s.json", out);
    FILE *f = fopen(p, "w");
    if (!f) return 4;
    fprintf(f, "{\"version\": %d, \"swapped\": %d, \"ndim\": %d, \"dim\": [", h->version,
            h->swapped, h->ndim);
    for (int i = 0; i < 8; i++) fprintf(f, "%s%lld", i ? ", " : "", (long long)h->dim[i]);
    fprintf(f, "], \"pixdim\": [");
    for (int i = 0; i < 8; i++) fprintf(f, "%s%.17g", i ? ", " : "", h->pixdim[i]);
    fprintf(f, "], \"datatype\": %d, \"nvox\": %lld, \"nvol\": %lld, \"tr\": %.17g, "
               "\"affine\": [", h->datatype, (long long)h->nvox, (long long)h->nvol,
            h->tr_seconds);
    for (int i = 0; i < 4; i++) {
        fprintf(f, "%s[", i ? ", " : "");
        for (int j = 0; j < 4; j++) fprintf(f, "%s%.17g", j ? ", " : "", h->affine[i][j]);
        fprintf(f, "]");
    }
    fprintf(f, "]}\n");
    fclose(f);
    snprintf(p, sizeof p, "%s.f32", out);
    f = fopen(p, "wb");
    float *v = malloc((size_t)h->nvox * sizeof *v);
    int rc = 0;
    for (int64_t t = 0; t < h->nvol && !rc; t++) {
        rc = niftiio_read_volume(r, v, &e);
        if (!rc) fwrite(v, sizeof *v, (size_t)h->nvox, f);
    }
    fclose(f);
    free(v);
    if (rc) fprintf(stderr, "%s\n", e.msg);
    niftiio_close(&r);
    return rc;
}

/* --write-pattern OUT DTYPE(16|4|2) GZLEVEL: a 4D image with a rotated affine whose
 * voxels are pattern_w(i, t); tests/reference/nifti_writer.py recomputes them. */
static int mode_write_pattern(const char *out, int dt, int level) {
    niftiio_write_spec ws;
    memset(&ws, 0, sizeof ws);
    ws.dim[0] = 7; ws.dim[1] = 6; ws.dim[2] = 5; ws.dim[3] = 4;
    ws.pixdim[0] = 2; ws.pixdim[1] = 3; ws.pixdim[2] = 4; ws.pixdim[3] = 1.25;
    /* rotation by 0.3 rad about z times diag(-2, 3, 4), plus a translation */
    double c = cos(0.3), s = sin(0.3);
    double aff[4][4] = {{-2 * c, -3 * s, 0, 10}, {-2 * s, 3 * c, 0, -20}, {0, 0, 4, 30},
                        {0, 0, 0, 1}};
    memcpy(ws.affine, aff, sizeof aff);
    ws.datatype = dt;
    ws.scl_slope = dt == NIFTIIO_INT16 ? 0.25 : 0;
    ws.scl_inter = dt == NIFTIIO_INT16 ? -3 : 0;
    ws.gzip_level = level;
    niftiio_writer *w = NULL;
    bgfm_err e = {0};
    if (niftiio_writer_open(out, &ws, &w, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return e.code;
    }
    float v[210];
    for (int t = 0; t < 4; t++) {
        for (int i = 0; i < 210; i++)
            v[i] = dt == NIFTIIO_UINT8 ? (float)((i * 3 + t) % 256)
                                       : (float)(((i * 37 + t * 11) % 1000) * 0.25 - 100.0);
        if (niftiio_writer_volume(w, v, &e)) break;
    }
    if (e.code || niftiio_writer_close(&w, &e)) {
        niftiio_writer_abort(&w);
        fprintf(stderr, "%s\n", e.msg);
        return e.code;
    }
    return 0;
}

/* --stream IN: read every volume, print "seconds volumes checksum" */
static int mode_stream(const char *in) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    niftiio_reader *r = NULL;
    bgfm_err e = {0};
    if (niftiio_open(in, &r, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return e.code;
    }
    const niftiio_header *h = niftiio_hdr(r);
    float *v = malloc((size_t)h->nvox * sizeof *v);
    double sum = 0;
    int rc = 0;
    for (int64_t t = 0; t < h->nvol && !rc; t++) {
        rc = niftiio_read_volume(r, v, &e);
        sum += (double)v[t % h->nvox];
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc) fprintf(stderr, "%s\n", e.msg);
    printf("%.4f %lld %.6g\n", (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec),
           (long long)h->nvol, sum);
    free(v);
    niftiio_close(&r);
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "--dump")) return mode_dump(argv[2], argv[3]);
    if (argc == 5 && !strcmp(argv[1], "--write-pattern"))
        return mode_write_pattern(argv[2], atoi(argv[3]), atoi(argv[4]));
    if (argc == 3 && !strcmp(argv[1], "--stream")) return mode_stream(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_v1_sform_float32),
        cmocka_unit_test(t_v1_swapped_qform_scaled),
        cmocka_unit_test(t_v2_both_orders),
        cmocka_unit_test(t_all_datatypes),
        cmocka_unit_test(t_fallback_affine_and_2d),
        cmocka_unit_test(t_gzip_detection_and_members),
        cmocka_unit_test(t_header_errors),
        cmocka_unit_test(t_truncated_and_corrupt),
        cmocka_unit_test(t_pair),
        cmocka_unit_test(t_writer_roundtrip),
        cmocka_unit_test(t_read_3d),
        cmocka_unit_test(t_nifticlib_atlases),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
