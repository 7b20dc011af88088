/* test_ckpt.c: parallel checkpoints (round trip, checksums independent of the rank
 * count, a flipped byte detected) and the data-parallel helpers (batch slices, the
 * global NT-Xent against layer_ntxent on the whole batch), /model's word attributes
 * read back or refused. Runs on 1 rank from the unit
 * suite and on 2-4 ranks from tests/mpi/pretrain_ckpt.sh. */
#include <cblas.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "bgfm/ckpt.h"
#include "bgfm/dist.h"
#include "bgfm/h5io.h"
#include "bgfm/layers.h"
#include "bgfm/pop.h"
#include "bgfm/rng.h"
#include "bgfm/sha256.h"

static char path[256];
static bgfm_ctx ctx;

static void small_model(model *m, optim *o) {
    model_cfg c;
    memset(&c, 0, sizeof c);
    c.H = 8, c.nh = 2, c.F = 16, c.k = 3, c.L = 1, c.Ld = 1, c.P = 4, c.N_max = 7;
    c.n_atlases = 2;
    snprintf(c.atlas[0], sizeof c.atlas[0], "a");
    snprintf(c.atlas[1], sizeof c.atlas[1], "b");
    c.atlas_nodes[0] = 5;
    c.atlas_nodes[1] = 7;
    bgfm_err e = {0};
    assert_int_equal(model_init(m, &c, &e), 0);
    model_init_params(m, 11);
    assert_int_equal(optim_init(o, m, &e), 0);
    rng_stream r;
    rng_init(&r, 3, RNG_USER, 1, 0, 0);
    for (int64_t i = 0; i < m->n_params; i++) {
        o->m[i] = (float)rng_normal(&r);
        o->v[i] = (float)rng_uniform(&r);
    }
    o->t = 7;
}

static void flip_byte_here(const char *dset) { /* this process, no barrier */
    {
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        assert_true(f >= 0);
        hid_t d = H5Dopen2(f, dset, H5P_DEFAULT);
        assert_true(d >= 0);
        haddr_t off = H5Dget_offset(d);
        assert_true(off != HADDR_UNDEF);
        H5Dclose(d);
        H5Fclose(f);
        FILE *fp = fopen(path, "r+b");
        assert_non_null(fp);
        assert_int_equal(fseek(fp, (long)off + 13, SEEK_SET), 0);
        int c = fgetc(fp);
        assert_int_equal(fseek(fp, (long)off + 13, SEEK_SET), 0);
        fputc(c ^ 0x5a, fp);
        fclose(fp);
    }
}

static void flip_byte(const char *dset) {
    if (ctx.rank == 0) flip_byte_here(dset);
    MPI_Barrier(MPI_COMM_WORLD);
}

static void test_roundtrip_and_corruption(void **unused) {
    (void)unused;
    model m, m2;
    optim o, o2;
    small_model(&m, &o);
    bgfm_err e = {0};
    ckpt_state st = {.step = 42, .epoch = 3, .pos = 5, .seed = 77, .config = "stage: x\n"}, st2 = {0};
    assert_int_equal(ckpt_save_par(MPI_COMM_WORLD, path, &m, &o, &st, &e), 0);
    /* checksums do not depend on how many ranks hash */
    char a1[65], b1[65], a2[65], b2[65];
    for (int ver = 2; ver <= 3; ver++) {
        assert_int_equal(ckpt_checksums(MPI_COMM_WORLD, &m, &o, &st, ver, a1, b1, &e), 0);
        assert_int_equal(ckpt_checksums(MPI_COMM_SELF, &m, &o, &st, ver, a2, b2, &e), 0);
        assert_string_equal(a1, a2);
        assert_string_equal(b1, b2);
    }
    assert_true(ckpt_is_complete(path));
    assert_int_equal(ckpt_load(path, &m2, &o2, &st2, &e), 0);
    assert_int_equal(m2.n_params, m.n_params);
    assert_memory_equal(m2.w, m.w, (size_t)m.n_params * sizeof(float));
    assert_memory_equal(o2.m, o.m, (size_t)m.n_params * sizeof(float));
    assert_memory_equal(o2.v, o.v, (size_t)m.n_params * sizeof(float));
    assert_true(o2.t == 7 && st2.step == 42 && st2.epoch == 3 && st2.pos == 5 && st2.seed == 77);
    assert_string_equal(st2.config, "stage: x\n");
    /* the kernel that wrote it: this process's OpenBLAS build and kernel (rank 0's) */
    assert_string_equal(st2.blas, openblas_get_config());
    free(st2.config);
    optim_free(&o2);
    model_free(&m2);
    /* a flipped byte in the moments: the full load fails naming the file; the model alone
     * still loads (its own checksum holds) */
    MPI_Barrier(MPI_COMM_WORLD);
    flip_byte("/optim/v/enc/0/ffn/W1");
    bgfm_err_clear(&e);
    assert_int_equal(ckpt_load(path, &m2, &o2, NULL, &e), BGFM_EDATA);
    assert_non_null(strstr(e.msg, path));
    assert_non_null(strstr(e.msg, "checksum mismatch"));
    optim_free(&o2);
    model_free(&m2);
    bgfm_err_clear(&e);
    assert_int_equal(ckpt_load(path, &m2, NULL, NULL, &e), 0);
    model_free(&m2);
    MPI_Barrier(MPI_COMM_WORLD);
    flip_byte("/model/in/W");
    bgfm_err_clear(&e);
    assert_int_equal(ckpt_load(path, &m2, NULL, NULL, &e), BGFM_EDATA);
    assert_non_null(strstr(e.msg, "checksum mismatch"));
    model_free(&m2);
    optim_free(&o);
    model_free(&m);
    MPI_Barrier(MPI_COMM_WORLD);
}

/* ---- the streamed load (ckpt_stream_*, what bgfm export reads with) ----------------
 * A model of several hash blocks (tensors crossing block boundaries): every float comes
 * through exactly once, in pieces of at most one block, equal to the saved model; in
 * format 3 (CRC-32 blocks) and 2 (SHA-256 blocks, the digests rewritten as format 2
 * stores them); with a tensor stored chunked and deflated and one big-endian (read
 * through HDF5, not mapped); a flipped byte is a checksum mismatch naming the file. */
typedef struct collect {
    float *w;
    unsigned char *seen;
    int64_t pieces, max_bytes;
} collect;

static int collect_piece(void *arg, const model_tensor *t, int64_t first, int64_t n,
                         const float *x, bgfm_err *e) {
    (void)e;
    collect *c = arg;
    if (first < 0 || n <= 0 || first + n > t->rows * (t->cols ? t->cols : 1)) return BGFM_EINTERNAL;
    memcpy(c->w + t->off + first, x, (size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) c->seen[t->off + first + i]++;
    c->pieces++;
    if (n * 4 > c->max_bytes) c->max_bytes = n * 4;
    return 0;
}

static int stream_all(const model *ref, collect *c, bgfm_err *e) {
    ckpt_stream s = {.f = -1, .fd = -1};
    ckpt_state st = {0};
    model m;
    memset(c, 0, sizeof *c);
    int rc = ckpt_stream_open(&s, path, &m, &st, e);
    if (!rc) {
        assert_int_equal(m.n_params, ref->n_params);
        assert_true(st.step == 1 && st.seed == 9);
        c->w = calloc((size_t)m.n_params, sizeof *c->w);
        c->seen = calloc((size_t)m.n_params, 1);
        assert_true(c->w && c->seen);
        rc = ckpt_stream_read(&s, &m, collect_piece, c, e);
    }
    int crc = ckpt_stream_close(&s, e);
    free(st.config);
    model_free(&m);
    return rc ? rc : crc;
}

static void stream_check(const model *m, const char *what) {
    collect c;
    bgfm_err e = {0};
    int rc = stream_all(m, &c, &e);
    if (rc) fail_msg("%s: %s", what, e.msg);
    for (int64_t i = 0; i < m->n_params; i++)
        if (c.seen[i] != 1) fail_msg("%s: float %lld came %d times", what, (long long)i, c.seen[i]);
    assert_memory_equal(c.w, m->w, (size_t)m->n_params * sizeof(float));
    assert_true(c.max_bytes <= CKPT_HASH_BLOCK && c.pieces >= m->n_tensors);
    free(c.w);
    free(c.seen);
}

/* Replace dataset `name` by one with the same values, chunked + deflated, or big-endian. */
static void restore_as(hid_t f, const model *m, const char *name, int chunked) {
    const model_tensor *t = model_find(m, name + strlen("/model/"));
    assert_non_null(t);
    int rank = t->cols ? 2 : 1;
    hsize_t dims[2] = {(hsize_t)t->rows, (hsize_t)t->cols}, chunk[2] = {3, (hsize_t)t->cols};
    assert_true(H5Ldelete(f, name, H5P_DEFAULT) >= 0);
    hid_t sp = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    assert_true(sp >= 0 && dcpl >= 0);
    if (chunked) assert_true(H5Pset_chunk(dcpl, rank, chunk) >= 0 && H5Pset_deflate(dcpl, 4) >= 0);
    hid_t d = H5Dcreate2(f, name, chunked ? H5T_IEEE_F32LE : H5T_IEEE_F32BE, sp, H5P_DEFAULT, dcpl,
                         H5P_DEFAULT);
    assert_true(d >= 0);
    assert_true(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, m->w + t->off) >= 0);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(sp);
}

static void test_stream(void **unused) {
    (void)unused;
    model m;
    model_cfg c;
    memset(&c, 0, sizeof c);
    c.H = 128, c.nh = 2, c.F = 640, c.k = 3, c.L = 2, c.Ld = 1, c.P = 16, c.N_max = 40;
    c.n_atlases = 1;
    snprintf(c.atlas[0], sizeof c.atlas[0], "a");
    c.atlas_nodes[0] = 40;
    bgfm_err e = {0};
    assert_int_equal(model_init(&m, &c, &e), 0);
    model_init_params(&m, 5);
    assert_true(m.n_params * 4 > 2 * CKPT_HASH_BLOCK); /* several blocks */
    ckpt_state st = {.step = 1, .epoch = 0, .pos = 1, .seed = 9, .config = "x: 1\n"};
    assert_int_equal(ckpt_save_par(MPI_COMM_WORLD, path, &m, NULL, &st, &e), 0);
    if (ctx.rank == 0) {
        stream_check(&m, "format 3");
        /* format 2: the same file with SHA-256 block digests */
        char hm[65], ha[65];
        assert_int_equal(ckpt_checksums(MPI_COMM_SELF, &m, NULL, &st, 2, hm, ha, &e), 0);
        hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        assert_true(f >= 0);
        int64_t two = 2;
        assert_true(H5Adelete(f, "format_version") >= 0 && H5Adelete(f, "sha256_model") >= 0);
        assert_int_equal(h5io_attr_set_i64(f, NULL, "format_version", &two, 1, &e), 0);
        assert_int_equal(h5io_attr_set_str(f, NULL, "sha256_model", hm, &e), 0);
        restore_as(f, &m, "/model/enc/1/ffn/W1", 1);
        restore_as(f, &m, "/model/in/b", 0);
        assert_true(H5Fclose(f) >= 0);
        stream_check(&m, "format 2, one tensor chunked and deflated, one big-endian");
        flip_byte_here("/model/enc/0/attn/Wv");
        collect cl;
        bgfm_err_clear(&e);
        assert_int_equal(stream_all(&m, &cl, &e), BGFM_EDATA);
        assert_non_null(strstr(e.msg, path));
        assert_non_null(strstr(e.msg, "checksum mismatch"));
        free(cl.w);
        free(cl.seen);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    model_free(&m);
}

/* /model's word attributes: pop_site (how the head was fitted) written and read back, a
 * word that names nothing (or auto, which names a choice) refused naming the file, the
 * attribute and the words it may be; absent (an older file): not known. */
static void test_arch_words(void **unused) {
    (void)unused;
    if (ctx.rank != 0) return;
    model m;
    optim o;
    small_model(&m, &o);
    optim_free(&o);
    m.cfg.pop_site_fit = 1 + POP_SITE_HARMONISE;
    char p[300];
    snprintf(p, sizeof p, "%s.words.h5", path);
    bgfm_err e = {0};
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0 && H5Gclose(H5Gcreate2(f, "model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) >= 0);
    m.cfg.pop_rank = 1; /* pop_site is written with a head only */
    assert_int_equal(ckpt_write_arch(f, "/model", &m, &e), 0);
    model_cfg c;
    assert_int_equal(ckpt_read_arch(f, "/model", &c, p, &e), 0);
    assert_int_equal(c.pop_site_fit, 1 + POP_SITE_HARMONISE);
    const char *bad[][3] = {{"pop_site", "auto", "none, centre or harmonise"},
                            {"readout", "max", "mean or region"},
                            {"input_norm", "batch", "population or none"},
                            {"embedding", "pop+", "encoder, encoder+pop, pop or pcs+pop"}};
    for (int i = 0; i < 4; i++) {
        char *was = NULL;
        assert_int_equal(h5io_attr_get_str(f, "/model", bad[i][0], &was, &e), 0);
        assert_true(H5Adelete_by_name(f, "/model", bad[i][0], H5P_DEFAULT) >= 0);
        assert_int_equal(h5io_attr_set_str(f, "/model", bad[i][0], bad[i][1], &e), 0);
        bgfm_err_clear(&e);
        assert_int_equal(ckpt_read_arch(f, "/model", &c, p, &e), BGFM_EDATA);
        if (!strstr(e.msg, p) || !strstr(e.msg, bad[i][0]) || !strstr(e.msg, bad[i][2]))
            fail_msg("%s %s: '%s'", bad[i][0], bad[i][1], e.msg);
        assert_true(H5Adelete_by_name(f, "/model", bad[i][0], H5P_DEFAULT) >= 0);
        assert_int_equal(h5io_attr_set_str(f, "/model", bad[i][0], was, &e), 0);
        free(was);
    }
    assert_true(H5Adelete_by_name(f, "/model", "pop_site", H5P_DEFAULT) >= 0);
    assert_int_equal(ckpt_read_arch(f, "/model", &c, p, &e), 0);
    assert_int_equal(c.pop_site_fit, 0);
    assert_true(H5Fclose(f) >= 0);
    unlink(p);
    model_free(&m);
}

/* The fast checkpoint hash equals sha256.h (and the FIPS 180-4 "abc" vector) at every
 * padding boundary. */
static void test_fast_sha256(void **unused) {
    (void)unused;
    uint8_t d1[32], d2[32];
    char hex[65];
    ckpt_sha256("abc", 3, d1);
    sha256_hex(d1, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    size_t big = ((size_t)1 << 20) + 77;
    unsigned char *b = malloc(big);
    assert_non_null(b);
    rng_stream r;
    rng_init(&r, 5, RNG_USER, 2, 0, 0);
    for (size_t i = 0; i < big; i++) b[i] = (unsigned char)rng_u32(&r);
    size_t sizes[] = {0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 4096, big};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        ckpt_sha256(b, sizes[i], d1);
        sha256_ctx c;
        sha256_init(&c);
        sha256_update(&c, b, sizes[i]);
        sha256_final(&c, d2);
        assert_memory_equal(d1, d2, 32);
    }
    free(b);
}

static void test_slices(void **unused) {
    (void)unused;
    for (int size = 1; size <= 7; size++)
        for (int64_t n = 0; n <= 20; n++) {
            int64_t next = 0, mx = 0, mn = n;
            for (int r = 0; r < size; r++) {
                int64_t lo, c;
                dist_slice(n, size, r, &lo, &c);
                assert_true(lo == next && c >= 0);
                next = lo + c;
                if (c > mx) mx = c;
                if (c < mn) mn = c;
            }
            assert_true(next == n && mx - mn <= 1);
        }
}

/* The global NT-Xent on this rank's slice equals layer_ntxent on the whole batch, row-
 * sharded (default) or replicated (the benchmark's test hook): the loss to 1e-6 (|loss| + 1)
 * and identical on every rank; the gradient of this rank's rows to 2e-7 scale / tau, a
 * few float roundings of the terms it sums (each |M_kw z_w| / tau, at most scale / tau
 * over a row): the similarity products and sums run in another order. */
static void check_ntxent(int64_t n, int64_t P, int replicated) {
    float *za = calloc((size_t)(n * P), sizeof(float)), *zb = calloc((size_t)(n * P), sizeof(float));
    float *ga = calloc((size_t)(n * P), sizeof(float)), *gb = calloc((size_t)(n * P), sizeof(float));
    float *sc = calloc((size_t)(4 * n * n), sizeof(float));
    assert_true(za && zb && ga && gb && sc);
    rng_stream r;
    rng_init(&r, 9, RNG_USER, (uint64_t)n, 0, 0);
    for (int64_t i = 0; i < n; i++) { /* unit rows, as after the L2 normalisation */
        double s1 = 0, s2 = 0;
        for (int64_t j = 0; j < P; j++) {
            za[i * P + j] = (float)rng_normal(&r);
            zb[i * P + j] = za[i * P + j] + 0.3f * (float)rng_normal(&r);
            s1 += (double)za[i * P + j] * (double)za[i * P + j];
            s2 += (double)zb[i * P + j] * (double)zb[i * P + j];
        }
        for (int64_t j = 0; j < P; j++) {
            za[i * P + j] = (float)((double)za[i * P + j] / sqrt(s1));
            zb[i * P + j] = (float)((double)zb[i * P + j] / sqrt(s2));
        }
    }
    double ref = layer_ntxent(ga, gb, za, zb, n, P, 0.2, 0.5, sc);
    float gmax = 0;
    for (int64_t i = 0; i < n * P; i++) gmax = fmaxf(gmax, fmaxf(fabsf(ga[i]), fabsf(gb[i])));
    int64_t lo, b;
    dist_slice(n, ctx.size, ctx.rank, &lo, &b);
    float *z = calloc((size_t)(2 * (b ? b : 1) * P), sizeof(float));
    float *dz = calloc((size_t)(2 * (b ? b : 1) * P), sizeof(float));
    assert_true(z && dz);
    memcpy(z, za + lo * P, (size_t)(b * P) * sizeof(float));
    memcpy(z + b * P, zb + lo * P, (size_t)(b * P) * sizeof(float));
    for (int64_t i = 0; i < 2 * b * P; i++) dz[i] = 0x1p-12f; /* dist_ntxent adds */
    bgfm_test_hooks hk;
    memset(&hk, 0, sizeof hk);
    hk.desync_rank = -1;
    hk.ntxent_replicated = replicated;
    ctx.hooks = &hk;
    dist_ntx d;
    double loss = 0, lmin, lmax;
    assert_int_equal(dist_ntx_init(&d, &ctx, n, P, &ctx.err), 0);
    /* memory: the sharded workspace is linear in the global batch */
    const int64_t R = ctx.size, Bl = (n + R - 1) / R;
    int64_t want = replicated ? (4 * n * P + 4 * n * n) * 4
                              : (R > 1 ? 2 * n * P * 4 : 0) + 4 * Bl * n * 4 + 4 * n * (8 + 4);
    assert_int_equal(d.bytes, want);
    assert_int_equal(dist_ntxent(&ctx, &d, z, dz, n, P, 0.2, 0.5, &loss), 0);
    ctx.hooks = NULL;
    /* every check agreed over the ranks first, so a failure fails every rank, not hangs */
    float tol = 2e-7f * 0.5f / 0.2f, err = 0, emax = 0;
    for (int64_t i = 0; i < b * P; i++) {
        err = fmaxf(err, fabsf(dz[i] - 0x1p-12f - ga[lo * P + i]));
        err = fmaxf(err, fabsf(dz[b * P + i] - 0x1p-12f - gb[lo * P + i]));
    }
    MPI_Allreduce(&loss, &lmin, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&loss, &lmax, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(&err, &emax, 1, MPI_FLOAT, MPI_MAX, MPI_COMM_WORLD);
    if (ctx.rank == 0)
        print_message("# n %lld P %lld %s on %d ranks: loss %.9g (reference %.9g), largest "
                      "gradient error %.3g (largest entry %.3g, tolerance %.3g)\n", (long long)n,
                      (long long)P, replicated ? "replicated" : "sharded", ctx.size, lmax, ref,
                      (double)emax, (double)gmax, (double)tol);
    assert_true(lmin == lmax);
    assert_true(fabs(lmax - ref) <= 1e-6 * (fabs(ref) + 1.0));
    assert_true(emax <= tol);
    dist_ntx_free(&d);
    free(z);
    free(dz);
    free(za);
    free(zb);
    free(ga);
    free(gb);
    free(sc);
}

static void test_global_ntxent(void **unused) {
    (void)unused;
    for (int rep = 0; rep < 2; rep++) {
        check_ntxent(7, 5, rep);  /* uneven slices */
        check_ntxent(2, 3, rep);  /* more ranks than graphs: some ranks hold none */
        check_ntxent(1, 4, rep);  /* one graph: each anchor's only other is its positive */
        check_ntxent(12, 8, rep);
        check_ntxent(64, 48, rep); /* GEMMs past OpenBLAS's small-matrix paths */
    }
}

int main(int argc, char **argv) {
    memset(&ctx, 0, sizeof ctx);
    MPI_Init(&argc, &argv);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    ctx.comm = MPI_COMM_WORLD;
    MPI_Comm_rank(MPI_COMM_WORLD, &ctx.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ctx.size);
    long pid = ctx.rank == 0 ? (long)getpid() : 0;
    MPI_Bcast(&pid, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    snprintf(path, sizeof path, "/tmp/bgfm-ckpt-%ld.h5", pid);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_roundtrip_and_corruption),
                                       cmocka_unit_test(test_fast_sha256),
                                       cmocka_unit_test(test_stream),
                                       cmocka_unit_test(test_slices),
                                       cmocka_unit_test(test_global_ntxent),
                                       cmocka_unit_test(test_arch_words)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    MPI_Barrier(MPI_COMM_WORLD);
    if (ctx.rank == 0) unlink(path);
    MPI_Finalize();
    return rc;
}
