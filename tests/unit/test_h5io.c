/* test_h5io.c: parallel HDF5 helpers: collective row writes where some ranks have no
 * rows, small metadata from one writer, strings, attributes, partial reads. Runs on 1
 * rank from the unit suite and on 3 ranks from tests/mpi/h5io.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "bgfm/h5io.h"
#include "bgfm/strlist.h"

static char path[256];

static void test_rows_and_metadata(void **st) {
    (void)st;
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    bgfm_err e = {0};
    hid_t f = h5io_create(MPI_COMM_WORLD, path, &e);
    assert_true(f >= 0);
    /* rank r owns r rows (rank 0 none), each row [r*100 + i, -r] */
    int64_t total = (int64_t)size * (size - 1) / 2, row0 = (int64_t)rank * (rank - 1) / 2;
    hsize_t dims[2] = {(hsize_t)(total ? total : 1), 2};
    hid_t d = h5io_dset_create(f, "/a/b/x", H5T_IEEE_F32LE, 2, dims, NULL, 0, &e);
    assert_true(d >= 0);
    float buf[64][2];
    for (int i = 0; i < rank; i++) {
        buf[i][0] = (float)(rank * 100 + i);
        buf[i][1] = (float)-rank;
    }
    assert_int_equal(h5io_write_rows(d, H5T_NATIVE_FLOAT, row0, rank, buf, &e), 0);
    H5Dclose(d);
    hsize_t cd[3] = {(hsize_t)size, 3, 3}, ch[3] = {1, 3, 3};
    d = h5io_dset_create(f, "/c/chunked", H5T_STD_U8LE, 3, cd, ch, 4, &e);
    assert_true(d >= 0);
    uint8_t m[9];
    for (int i = 0; i < 9; i++) m[i] = (uint8_t)(rank * 9 + i);
    assert_int_equal(h5io_write_rows(d, H5T_NATIVE_UINT8, rank, 1, m, &e), 0);
    H5Dclose(d);
    int64_t small[4] = {1, 2, 3, 4};
    hsize_t sd[1] = {4};
    assert_int_equal(h5io_write_small(f, "/meta/ints", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, sd,
                                      small, size - 1, &e), 0);
    const char *names[3] = {"sub-01", "sub-0002", ""};
    assert_int_equal(h5io_write_strings(f, "/meta/names", names, 3, 0, &e), 0);
    int64_t v = 42;
    double w[2] = {0.5, -1.25};
    assert_int_equal(h5io_attr_set_str(f, ".", "format", "bgfm-test", &e), 0);
    assert_int_equal(h5io_attr_set_i64(f, NULL, "answer", &v, 1, &e), 0);
    assert_int_equal(h5io_attr_set_f64(f, "/a/b/x", "w", w, 2, &e), 0);
    assert_int_equal(h5io_close(&f, path, &e), 0);
    assert_int_equal(e.code, 0);
    MPI_Barrier(MPI_COMM_WORLD);

    /* every rank reads everything back independently */
    f = h5io_open(MPI_COMM_SELF, path, &e);
    assert_true(f >= 0);
    int r = 0;
    hsize_t got[8];
    assert_int_equal(h5io_dims(f, "/a/b/x", &r, got, &e), 0);
    assert_int_equal(r, 2);
    float all[128][2];
    assert_int_equal(h5io_read_all(f, "/a/b/x", H5T_NATIVE_FLOAT, (int64_t)(got[0] * got[1]), all, &e),
                     0);
    for (int q = 1; q < size; q++)
        for (int i = 0; i < q; i++) {
            int64_t row = (int64_t)q * (q - 1) / 2 + i;
            assert_true(all[row][0] == (float)(q * 100 + i));
            assert_true(all[row][1] == (float)-q);
        }
    uint8_t mm[9];
    assert_int_equal(h5io_read_rows(f, "/c/chunked", H5T_NATIVE_UINT8, size - 1, 1, mm, &e), 0);
    for (int i = 0; i < 9; i++) assert_int_equal(mm[i], (size - 1) * 9 + i);
    assert_int_equal(h5io_read_rows(f, "/c/chunked", H5T_NATIVE_UINT8, size, 1, mm, &e), BGFM_EDATA);
    bgfm_err_clear(&e);
    int64_t s2[4] = {0};
    assert_int_equal(h5io_read_all(f, "/meta/ints", H5T_NATIVE_INT64, 4, s2, &e), 0);
    assert_memory_equal(s2, small, sizeof small);
    /* a buffer of another length than the dataset is refused before anything is read,
     * the message naming the file, the dataset and both counts */
    int64_t s3[5] = {-7, -7, -7, -7, -7};
    assert_int_equal(h5io_read_all(f, "/meta/ints", H5T_NATIVE_INT64, 3, s3, &e), BGFM_EDATA);
    assert_non_null(strstr(e.msg, path));
    assert_non_null(strstr(e.msg, "'/meta/ints' holds 4 values, expected 3"));
    for (int i = 0; i < 5; i++) assert_int_equal(s3[i], -7);
    bgfm_err_clear(&e);
    assert_int_equal(h5io_read_all(f, "/meta/ints", H5T_NATIVE_INT64, 5, s3, &e), BGFM_EDATA);
    assert_int_equal(s3[0], -7);
    bgfm_err_clear(&e);
    char **str = NULL;
    int64_t ns = 0;
    assert_int_equal(h5io_read_strings(f, "/meta/names", &str, &ns, &e), 0);
    assert_int_equal(ns, 3);
    assert_string_equal(str[0], "sub-01");
    assert_string_equal(str[1], "sub-0002");
    assert_string_equal(str[2], "");
    strlist_free(str, ns);
    char *fmt = NULL;
    assert_int_equal(h5io_attr_get_str(f, ".", "format", &fmt, &e), 0);
    assert_string_equal(fmt, "bgfm-test");
    free(fmt);
    int64_t a = 0;
    int n = 1;
    assert_int_equal(h5io_attr_get_i64(f, ".", "answer", &a, &n, &e), 0);
    assert_int_equal(a, 42);
    double ww[2];
    n = 2;
    assert_int_equal(h5io_attr_get_f64(f, "/a/b/x", "w", ww, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_true(ww[0] == 0.5 && ww[1] == -1.25);
    assert_false(h5io_exists(f, "/nope/x"));
    assert_int_equal(h5io_read_all(f, "/nope/x", H5T_NATIVE_INT64, 4, s2, &e), BGFM_EDATA);
    assert_non_null(strstr(e.msg, "/nope/x"));
    h5io_close(&f, path, &e);
    MPI_Barrier(MPI_COMM_WORLD);
}

static void test_errors(void **st) {
    (void)st;
    bgfm_err e = {0};
    hid_t f = h5io_open(MPI_COMM_SELF, "/nonexistent/dir/x.h5", &e);
    assert_true(f < 0);
    assert_int_equal(e.code, BGFM_EIO);
    assert_non_null(strstr(e.msg, "/nonexistent/dir/x.h5"));
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    long pid = rank == 0 ? (long)getpid() : 0;
    MPI_Bcast(&pid, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    snprintf(path, sizeof path, "/tmp/bgfm-h5io-%ld.h5", pid);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_rows_and_metadata),
                                       cmocka_unit_test(test_errors)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) unlink(path);
    MPI_Finalize();
    return rc;
}
