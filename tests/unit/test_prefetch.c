/* test_prefetch.c: unit tests of the volume read-ahead (prefetch.h): every volume of
 * written and real .nii.gz files bit-for-bit equal to niftiio_read_volume for every ring
 * depth, read errors (truncated, corrupt, CRC mismatch) at the same volume with the same
 * code and message as the plain reader, early close in every state without a hang.
 * Not the reader's own tests (test_nifti.c) nor the extraction (tests/reference). */
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
#include <zlib.h>

#include "bgfm/nifti.h"
#include "bgfm/prefetch.h"
#include "tmpdir.h"

#define NX 40
#define NY 36
#define NZ 30
#define NVOX (NX * NY * NZ) /* 169 kB per float32 volume */
#define NT 9

static const char *NITIME = "/usr/lib/python3/dist-packages/nitime/data/fmri1.nii.gz";


static void nap_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* splitmix64: test data only */
static uint64_t mix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A NX x NY x NZ x nt image: float32 (values of every magnitude and sign, -0.0 too) or
 * int16 with scl_slope 0.5 / scl_inter 3 (the conversion path). */
static void write_image(const char *path, int datatype, int nt) {
    niftiio_write_spec ws;
    memset(&ws, 0, sizeof ws);
    ws.dim[0] = NX; ws.dim[1] = NY; ws.dim[2] = NZ; ws.dim[3] = nt;
    ws.pixdim[0] = 2; ws.pixdim[1] = 2; ws.pixdim[2] = 2; ws.pixdim[3] = 2;
    double aff[4][4] = {{-2, 0, 0, 40}, {0, 2, 0, -36}, {0, 0, 2, -30}, {0, 0, 0, 1}};
    memcpy(ws.affine, aff, sizeof aff);
    ws.datatype = datatype;
    ws.scl_slope = datatype == NIFTIIO_INT16 ? 0.5 : 0;
    ws.scl_inter = datatype == NIFTIIO_INT16 ? 3 : 0;
    ws.gzip_level = 1;
    niftiio_writer *w = NULL;
    bgfm_err e = {0};
    assert_int_equal(niftiio_writer_open(path, &ws, &w, &e), 0);
    float *vol = malloc(NVOX * sizeof *vol);
    assert_non_null(vol);
    uint64_t s = 12345;
    for (int t = 0; t < nt; t++) {
        for (int i = 0; i < NVOX; i++) {
            uint64_t r = mix(&s);
            if (datatype == NIFTIIO_INT16)
                vol[i] = (float)((double)((int)(r % 60001) - 30000) * 0.5 + 3);
            else if (i % 97 == 0)
                vol[i] = -0.0f;
            else
                vol[i] = (float)ldexp((double)(r >> 40) / 16777216.0 - 0.5, (int)(r % 41) - 20);
        }
        assert_int_equal(niftiio_writer_volume(w, vol, &e), 0);
    }
    assert_int_equal(niftiio_writer_close(&w, &e), 0);
    free(vol);
}

/* What the plain reader gives: all volumes it could read (nvol x nvox, malloc'ed),
 * the 0-based volume of the first error (nvol if none), its code and message. */
typedef struct plain_run {
    int64_t nvox, nvol, fail_at;
    float *vols;
    int rc;
    bgfm_err e;
} plain_run;

static void plain_read_all(const char *path, plain_run *pr) {
    memset(pr, 0, sizeof *pr);
    niftiio_reader *r = NULL;
    assert_int_equal(niftiio_open(path, &r, &pr->e), 0);
    pr->nvox = niftiio_hdr(r)->nvox;
    pr->nvol = niftiio_hdr(r)->nvol;
    pr->vols = malloc((size_t)(pr->nvox * pr->nvol) * sizeof *pr->vols);
    assert_non_null(pr->vols);
    for (pr->fail_at = 0; pr->fail_at < pr->nvol; pr->fail_at++)
        if ((pr->rc = niftiio_read_volume(r, pr->vols + pr->fail_at * pr->nvox, &pr->e))) break;
    niftiio_close(&r);
}

/* Read `path` through a prefetcher of `depth`, sleeping `consumer_us` per volume (a
 * slow consumer lets the thread run ahead to a full ring or to the error), and check
 * volume for volume against the plain reader: same bits, error at the same volume with
 * the same code and message. */
static void compare(const char *path, const plain_run *pr, int depth, long consumer_us) {
    niftiio_reader *r = NULL;
    prefetch_reader *p = NULL;
    bgfm_err e = {0};
    assert_int_equal(niftiio_open(path, &r, &e), 0);
    assert_int_equal(prefetch_open(r, depth, &p, &e), 0);
    assert_int_equal(prefetch_threaded(p), depth >= 2 && pr->nvol >= 2);
    int64_t t = 0;
    int rc = 0;
    for (; t < pr->nvol; t++) {
        const float *v = NULL;
        if ((rc = prefetch_next(p, &v, &e))) {
            assert_null(v);
            break;
        }
        assert_non_null(v);
        if (memcmp(v, pr->vols + t * pr->nvox, (size_t)pr->nvox * sizeof *v) != 0) {
            fprintf(stderr, "%s depth %d: volume %lld differs\n", path, depth, (long long)t);
            fail();
        }
        if (consumer_us) nap_us(consumer_us);
    }
    if (t != pr->fail_at || rc != pr->rc || strcmp(e.msg, pr->e.msg) != 0)
        fprintf(stderr, "%s depth %d: stopped at %lld rc %d '%s'; plain reader: %lld rc %d '%s'\n",
                path, depth, (long long)t, rc, e.msg, (long long)pr->fail_at, pr->rc, pr->e.msg);
    assert_int_equal(t, pr->fail_at);
    assert_int_equal(rc, pr->rc);
    assert_int_equal(e.code, pr->e.code);
    assert_string_equal(e.msg, pr->e.msg);
    if (!rc) { /* past the end: an internal error, not a volume */
        const float *v = (const float *)1;
        assert_int_equal(prefetch_next(p, &v, &e), BGFM_EINTERNAL);
        assert_null(v);
        assert_non_null(strstr(e.msg, "already handed out"));
    }
    prefetch_close(&p);
    assert_null(p);
    if (!rc) assert_true(niftiio_bytes_read(r) > 0); /* the reader is ours again */
    niftiio_close(&r);
}

static void compare_all_depths(const char *path) {
    plain_run pr;
    plain_read_all(path, &pr);
    const int depths[] = {1, 2, 3, 4, 64};
    for (size_t k = 0; k < sizeof depths / sizeof *depths; k++) {
        compare(path, &pr, depths[k], 0);
        compare(path, &pr, depths[k], 300);
    }
    free(pr.vols);
}

static int setup(void **state) {
    (void)state;
    assert_int_equal(tmpdir_make("prefetch"), 0);
    write_image(tpath("f32.nii.gz"), NIFTIIO_FLOAT32, NT);
    write_image(tpath("i16.nii.gz"), NIFTIIO_INT16, NT);
    write_image(tpath("f32.nii"), NIFTIIO_FLOAT32, NT);
    return 0;
}
static int teardown(void **state) {
    (void)state;
    return tmpdir_remove();
}

/* ------------------------------------------------------------ tests */

static void t_float32_gz_bit_identical(void **state) {
    (void)state;
    compare_all_depths(tpath("f32.nii.gz"));
}

static void t_int16_scaled_and_plain_file(void **state) {
    (void)state;
    compare_all_depths(tpath("i16.nii.gz")); /* conversion buffer used in the thread */
    compare_all_depths(tpath("f32.nii"));    /* uncompressed */
}

/* A real file written by other software (int16, 20 volumes). */
static void t_real_file(void **state) {
    (void)state;
    if (access(NITIME, R_OK) != 0) skip();
    compare_all_depths(NITIME);
}

/* Copy `src` to `dst` with `len` bytes (len < 0: all) and the byte at `flip` (if >= 0)
 * inverted. */
static void copy_damaged(const char *src, const char *dst, long len, long flip) {
    FILE *in = fopen(src, "rb");
    assert_non_null(in);
    fseek(in, 0, SEEK_END);
    long n = ftell(in);
    fseek(in, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, in), (size_t)n);
    fclose(in);
    if (len >= 0 && len < n) n = len;
    if (flip >= 0 && flip < n) b[flip] ^= 0xff;
    FILE *out = fopen(dst, "wb");
    assert_non_null(out);
    assert_int_equal(fwrite(b, 1, (size_t)n, out), (size_t)n);
    fclose(out);
    free(b);
}

static long file_size(const char *path) {
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

static void expect_error_like_plain(const char *path, int64_t want_at, const char *needle) {
    plain_run pr;
    plain_read_all(path, &pr);
    if (pr.rc != BGFM_EDATA || (want_at >= 0 && pr.fail_at != want_at) ||
        (needle && !strstr(pr.e.msg, needle)))
        fprintf(stderr, "plain reader on %s: volume %lld rc %d '%s'\n", path,
                (long long)pr.fail_at, pr.rc, pr.e.msg);
    assert_int_equal(pr.rc, BGFM_EDATA);
    if (want_at >= 0) assert_int_equal(pr.fail_at, want_at);
    if (needle) assert_non_null(strstr(pr.e.msg, needle));
    const int depths[] = {1, 2, 3, 5};
    for (size_t k = 0; k < sizeof depths / sizeof *depths; k++) {
        compare(path, &pr, depths[k], 0);
        compare(path, &pr, depths[k], 2000); /* the thread reaches the error first */
    }
    free(pr.vols);
}

static void t_read_errors_at_their_volume(void **state) {
    (void)state;
    /* uncompressed stream cut inside volume 5 of 9 (0-based 4), then gzipped */
    long cut = 352 + (long)(4.5 * NVOX * 4);
    copy_damaged(tpath("f32.nii"), tpath("cut.nii"), cut, -1);
    {
        FILE *in = fopen(tpath("cut.nii"), "rb");
        assert_non_null(in);
        unsigned char *b = malloc((size_t)cut);
        assert_non_null(b);
        assert_int_equal(fread(b, 1, (size_t)cut, in), (size_t)cut);
        fclose(in);
        gzFile g = gzopen(tpath("cut.nii.gz"), "wb1");
        assert_non_null(g);
        assert_int_equal(gzwrite(g, b, (unsigned)cut), (int)cut);
        gzclose(g);
        free(b);
    }
    {   /* a plain file's size is checked at open: refused before any volume */
        niftiio_reader *r = NULL;
        bgfm_err e = {0};
        assert_int_equal(niftiio_open(tpath("cut.nii"), &r, &e), BGFM_EDATA);
        assert_null(r);
        assert_non_null(strstr(e.msg, "volume 5 of 9"));
    }
    expect_error_like_plain(tpath("cut.nii.gz"), 4, "volume 5 of 9");
    /* compressed bytes cut in the middle */
    const char *gz = tpath("f32.nii.gz");
    long n = file_size(gz);
    copy_damaged(gz, tpath("half.nii.gz"), n / 2, -1);
    expect_error_like_plain(tpath("half.nii.gz"), -1, "truncated");
    /* deflate data damaged in the middle */
    copy_damaged(gz, tpath("corrupt.nii.gz"), -1, n / 2);
    expect_error_like_plain(tpath("corrupt.nii.gz"), -1, "gzip");
    /* CRC-32 trailer damaged: every voxel arrives, the last volume reports it */
    copy_damaged(gz, tpath("crc.nii.gz"), -1, n - 8);
    expect_error_like_plain(tpath("crc.nii.gz"), NT - 1, "CRC mismatch");
}

/* Close in every state: before the first volume, with the ring full and the thread
 * waiting, while it inflates, after the last volume, after an error. Never hangs
 * (main() arms an alarm), never leaks (make check runs this under ASan and valgrind). */
static void t_early_close(void **state) {
    (void)state;
    const char *gz = tpath("f32.nii.gz");
    copy_damaged(gz, tpath("short.nii.gz"), file_size(gz) / 3, -1);
    const char *files[] = {gz, tpath("i16.nii.gz"), tpath("short.nii.gz")};
    const int takes[] = {0, 1, 2, NT - 1, NT, NT + 1}; /* NT + 1: one past an error/the end */
    for (int f = 0; f < 3; f++)
        for (int depth = 1; depth <= 4; depth++)
            for (size_t k = 0; k < sizeof takes / sizeof *takes; k++)
                for (int pause = 0; pause < 2; pause++) {
                    int take = takes[k];
                    niftiio_reader *r = NULL;
                    prefetch_reader *p = NULL;
                    bgfm_err e = {0};
                    assert_int_equal(niftiio_open(files[f], &r, &e), 0);
                    assert_int_equal(prefetch_open(r, depth, &p, &e), 0);
                    for (int t = 0; t < take; t++) {
                        const float *v = NULL;
                        if (prefetch_next(p, &v, &e)) break;
                    }
                    if (pause) nap_us(2000); /* the thread fills the ring or fails */
                    prefetch_close(&p);
                    assert_null(p);
                    prefetch_close(&p); /* NULL is fine */
                    niftiio_close(&r);
                }
}

int main(void) {
    alarm(600); /* a hang is a failure, not a stuck suite */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_float32_gz_bit_identical),
        cmocka_unit_test(t_int16_scaled_and_plain_file),
        cmocka_unit_test(t_real_file),
        cmocka_unit_test(t_read_errors_at_their_volume),
        cmocka_unit_test(t_early_close),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
