/* test_hardening.c: regression tests for the reader bugs the fuzzers found
 * (docs/reliability.md): valid graph stores and checkpoints are written, damaged with
 * the HDF5 API exactly as the crashing fuzz inputs did (and a NIfTI header promising
 * more than its file holds), and must be rejected with BGFM_EDATA and a message, not
 * overflow a buffer or allocate without bound.
 * Not the fuzzers themselves (tests/fuzz/). One process; calls MPI_Init for ckpt_save. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bgfm/ckpt.h"
#include "bgfm/graphs.h"
#include "bgfm/nifti.h"
#include "graphs_fixture.h"

static char dir[256];

/* ---- a two-atlas, one-shard store ------------------------------------------- */
enum { NA = 2, K = 2, G = 5 };
static const int32_t nodes[NA] = {4, 3};

static int atlas_alt(int64_t g) { return (int)(g % NA); }
static float zero(int64_t g, int q, int64_t v) {
    (void)g, (void)q, (void)v;
    return 0.0f;
}
static void meta_of(int64_t g, int64_t *subject, int64_t *window, int64_t *label, char pid[32],
                    const char **site) {
    *subject = g;
    *window = 0;
    *label = -1;
    snprintf(pid, 32, "sub-01");
    *site = "A";
}

static void write_store(void) {
    static const char *const names[NA] = {"alpha", "beta"};
    gfix_spec x = {NA, nodes, names, K, G, G, 0, atlas_alt, zero, meta_of};
    bgfm_err e = {0};
    assert_int_equal(gfix_write(&x, dir, &e), 0);
}

/* Replace dataset `name` of file `file` (in dir) by a float32 one of the given dims. */
static void replace_dset(const char *file, const char *name, int rank, const hsize_t *dims) {
    char path[400];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_true(H5Ldelete(f, name, H5P_DEFAULT) >= 0);
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(d >= 0);
    hsize_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    float *buf = calloc(n ? n : 1, sizeof *buf);
    assert_non_null(buf);
    assert_true(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    free(buf);
    H5Dclose(d);
    H5Sclose(sp);
    H5Fclose(f);
}

/* Replace attribute `name` on `obj` of `file` by a 1-D array of n variable-length strings. */
static void attr_vlen_array(const char *file, const char *obj, const char *name, hsize_t n) {
    char path[400];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    if (H5Aexists_by_name(f, obj, name, H5P_DEFAULT) > 0)
        H5Adelete_by_name(f, obj, name, H5P_DEFAULT);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t a = H5Acreate_by_name(f, obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    const char *v[8] = {"bgfm-graphs-index", "x", "y", "z", "a", "b", "c", "d"};
    assert_true(H5Awrite(a, t, v) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    H5Fclose(f);
}

static void expect_open_fails(const char *what) {
    graphs_store *s = NULL;
    bgfm_err e;
    bgfm_err_clear(&e);
    int rc = graphs_open(dir, &s, &e);
    if (rc == 0) fail_msg("%s: graphs_open accepted a damaged store", what);
    assert_int_equal(rc, BGFM_EDATA);
    assert_null(s);
    assert_true(e.msg[0] != 0);
}

/* Shard datasets whose per-graph shape disagrees with the index's node count: reading
 * must fail, not write N'xN' values into an NxN buffer. */
static void test_graphs_shard_shape(void **unused) {
    (void)unused;
    write_store();
    hsize_t dims[3] = {3, 6, 6}; /* alpha has 3 graphs of N = 4 */
    replace_dset("shard-00000.h5", "/graphs/alpha/fc", 3, dims);
    graphs_store *s = NULL;
    bgfm_err e;
    bgfm_err_clear(&e);
    assert_int_equal(graphs_open(dir, &s, &e), 0);
    int64_t idx[3] = {0, 2, 4};
    float fc[3 * 16];
    uint8_t adj[3 * 16];
    float rw[3 * 4 * K];
    int rc = graphs_read(s, idx, 3, fc, adj, rw, &e);
    assert_int_equal(rc, BGFM_EDATA);
    assert_non_null(strstr(e.msg, "values per graph"));
    graphs_close(&s);
}

/* Index columns longer than the graph count / atlas list. */
static void test_graphs_index_columns(void **unused) {
    (void)unused;
    write_store();
    hsize_t n = 9;
    replace_dset("index.h5", "/atlas_nodes", 1, &n);
    expect_open_fails("atlas_nodes with 9 values for 2 atlases");
    write_store();
    replace_dset("index.h5", "/graphs/shard", 1, &n);
    expect_open_fails("graphs/shard with 9 values for 5 graphs");
}

/* A string attribute holding an array: one string is read, not eight. */
static void test_graphs_attr_array(void **unused) {
    (void)unused;
    write_store();
    attr_vlen_array("index.h5", "/", "format", 8);
    expect_open_fails("format attribute as an array of 8 strings");
}

/* ---- NIfTI: a 352-byte file whose header promises a 2000^3 uint8 volume ----- */
static void test_nifti_huge_header(void **unused) {
    (void)unused;
    uint8_t h[352];
    memset(h, 0, sizeof h);
    int32_t sz = 348;
    int16_t dim[8] = {3, 2000, 2000, 2000, 1, 1, 1, 1}, dt = 2, bp = 8;
    float pix[8] = {1, 1, 1, 1, 1, 1, 1, 1}, vo = 352;
    memcpy(h, &sz, 4);
    memcpy(h + 40, dim, sizeof dim);
    memcpy(h + 70, &dt, 2);
    memcpy(h + 72, &bp, 2);
    memcpy(h + 76, pix, sizeof pix);
    memcpy(h + 108, &vo, 4);
    memcpy(h + 344, "n+1", 4);
    char path[400];
    snprintf(path, sizeof path, "%s/huge.nii", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(h, 1, sizeof h, f), sizeof h);
    assert_int_equal(fclose(f), 0);
    niftiio_header hdr;
    double *d = NULL;
    bgfm_err e;
    bgfm_err_clear(&e);
    assert_int_equal(niftiio_read_3d(path, &hdr, &d, &e), BGFM_EDATA); /* not 8 GB + ENOMEM */
    assert_null(d);
    assert_non_null(strstr(e.msg, "ends in the middle of volume 1"));
}

/* ---- checkpoints ------------------------------------------------------------ */
static void write_ckpt(const char *path) {
    model m;
    optim o;
    memset(&m, 0, sizeof m);
    memset(&o, 0, sizeof o);
    model_cfg c;
    memset(&c, 0, sizeof c);
    c.H = 4, c.nh = 2, c.F = 4, c.k = 2, c.L = 1, c.Ld = 1, c.P = 2, c.N_max = 4;
    c.n_atlases = 1;
    snprintf(c.atlas[0], sizeof c.atlas[0], "a");
    c.atlas_nodes[0] = 3;
    bgfm_err e;
    bgfm_err_clear(&e);
    assert_int_equal(model_init(&m, &c, &e), 0);
    assert_int_equal(optim_init(&o, &m, &e), 0);
    ckpt_state st = {.step = 1, .epoch = 0, .pos = 1, .seed = 7, .config = (char *)"x: 1\n"};
    assert_int_equal(ckpt_save(path, &m, &o, &st, &e), 0);
    optim_free(&o);
    model_free(&m);
}

/* Replace a scalar int64 attribute (delete + create: HDF5 1.10 cannot always rewrite
 * an attribute in place in these files). */
static void set_i64_attr(hid_t f, const char *obj, const char *name, int64_t v) {
    assert_true(H5Adelete_by_name(f, obj, name, H5P_DEFAULT) >= 0);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate_by_name(f, obj, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                                H5P_DEFAULT);
    assert_true(a >= 0 && H5Awrite(a, H5T_NATIVE_INT64, &v) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
}

static void expect_load_fails(const char *path, const char *what) {
    model m;
    optim o;
    ckpt_state st;
    memset(&m, 0, sizeof m);
    memset(&o, 0, sizeof o);
    memset(&st, 0, sizeof st);
    bgfm_err e;
    bgfm_err_clear(&e);
    int rc = ckpt_load(path, &m, &o, &st, &e);
    free(st.config);
    optim_free(&o);
    model_free(&m);
    if (rc == 0) fail_msg("%s: ckpt_load accepted a damaged checkpoint", what);
    assert_int_equal(rc, BGFM_EDATA);
    assert_true(e.msg[0] != 0);
}

static void test_ckpt_damaged(void **unused) {
    (void)unused;
    char path[400];
    snprintf(path, sizeof path, "%s/ckpt.h5", dir);
    /* /state/step with 6 values: read into one int64 before the fix */
    write_ckpt(path);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    H5Ldelete(f, "/state/step", H5P_DEFAULT);
    hsize_t six = 6;
    hid_t sp = H5Screate_simple(1, &six, NULL);
    hid_t d = H5Dcreate2(f, "/state/step", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                         H5P_DEFAULT);
    int64_t v[6] = {1, 2, 3, 4, 5, 6};
    assert_true(d >= 0 && H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
    H5Fclose(f);
    expect_load_fails(path, "/state/step with 6 values");

    /* hidden width 2^20 in the attributes: rejected before allocating H x H tensors */
    write_ckpt(path);
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    set_i64_attr(f, "/model", "H", (int64_t)1 << 20);
    set_i64_attr(f, "/model", "nh", 1);
    H5Fclose(f);
    expect_load_fails(path, "H = 2^20 in the attributes");

    /* the sha256 attribute as an array of strings */
    write_ckpt(path);
    attr_vlen_array("ckpt.h5", "/", "sha256", 4);
    expect_load_fails(path, "sha256 as an array of 4 strings");
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    snprintf(dir, sizeof dir, "/tmp/bgfm-test-hardening.XXXXXX");
    if (!mkdtemp(dir)) return 1;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_graphs_shard_shape),
                                       cmocka_unit_test(test_graphs_index_columns),
                                       cmocka_unit_test(test_graphs_attr_array),
                                       cmocka_unit_test(test_nifti_huge_header),
                                       cmocka_unit_test(test_ckpt_damaged)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) rc = 1;
    MPI_Finalize();
    return rc;
}
