/* test_core.c: unit tests of the small core modules: SHA-256 (NIST vectors),
 * Philox4x32-10 (Random123 known-answer vectors), rng distributions, JSON, fsutil. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <stdlib.h>

#include "bgfm/ctx.h"
#include "bgfm/fsutil.h"
#include "bgfm/json.h"
#include "bgfm/rng.h"
#include "bgfm/sha256.h"
#include "bgfm/strlist.h"

static void test_sha256_nist(void **st) {
    (void)st;
    char hex[65];
    sha256_buf_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256_buf_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_buf_hex(m, strlen(m), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* one million 'a', fed in uneven pieces to exercise the buffering */
    sha256_ctx c;
    uint8_t d[32];
    char a[997];
    memset(a, 'a', sizeof a);
    sha256_init(&c);
    size_t left = 1000000;
    while (left) {
        size_t k = left < sizeof a ? left : sizeof a;
        sha256_update(&c, a, k);
        left -= k;
    }
    sha256_final(&c, d);
    sha256_hex(d, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* The accelerated and portable block functions agree on random messages of every
 * length around the block boundaries. */
static void test_sha256_impls_agree(void **st) {
    (void)st;
    uint8_t msg[300];
    rng_stream r;
    rng_init(&r, 5, RNG_USER, 0, 0, 0);
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)rng_u32(&r);
    for (size_t n = 0; n <= sizeof msg; n++) {
        sha256_ctx a, b;
        uint8_t da[32], db[32];
        sha256_init(&a);
        sha256_init_portable(&b);
        sha256_update(&a, msg, n);
        sha256_update(&b, msg, n);
        sha256_final(&a, da);
        sha256_final(&b, db);
        assert_memory_equal(da, db, 32);
    }
    sha256_ctx a;
    sha256_init(&a);
    print_message("# sha256 block function: %s\n", a.accel ? "x86 SHA extensions" : "portable");
}

static void test_sha256_file(void **st) {
    (void)st;
    char path[] = "/tmp/bgfm-sha-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "abc", 3), 3);
    close(fd);
    char hex[65];
    int64_t bytes = 0;
    bgfm_err e = {0};
    assert_int_equal(sha256_file_hex(path, hex, &bytes, &e), 0);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(bytes, 3);
    unlink(path);
    assert_int_equal(sha256_file_hex(path, hex, &bytes, &e), BGFM_EIO);
    assert_non_null(strstr(e.msg, path));
}

static void test_philox_kat(void **st) {
    (void)st;
    /* Known-answer vectors of Philox4x32-10 from Random123 (kat_vectors) */
    uint32_t out[4];
    const uint32_t c0[4] = {0, 0, 0, 0}, k0[2] = {0, 0};
    rng_philox4x32_10(c0, k0, out);
    assert_int_equal(out[0], 0x6627e8d5u);
    assert_int_equal(out[1], 0xe169c58du);
    assert_int_equal(out[2], 0xbc57ac4cu);
    assert_int_equal(out[3], 0x9b00dbd8u);
    const uint32_t c1[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                   k1[2] = {0xffffffffu, 0xffffffffu};
    rng_philox4x32_10(c1, k1, out);
    assert_int_equal(out[0], 0x408f276du);
    assert_int_equal(out[1], 0x41c83b0eu);
    assert_int_equal(out[2], 0xa20bc7c6u);
    assert_int_equal(out[3], 0x6d5451fdu);
    const uint32_t c2[4] = {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
                   k2[2] = {0xa4093822u, 0x299f31d0u};
    rng_philox4x32_10(c2, k2, out);
    assert_int_equal(out[0], 0xd16cfe09u);
    assert_int_equal(out[1], 0x94fdccebu);
    assert_int_equal(out[2], 0x5001e420u);
    assert_int_equal(out[3], 0x24126ea1u);
}

static void test_rng_streams(void **st) {
    (void)st;
    rng_stream a, b;
    /* same key -> same stream; any key component changes it */
    rng_init(&a, 7, RNG_MASK, 3, 11, 0);
    rng_init(&b, 7, RNG_MASK, 3, 11, 0);
    for (int i = 0; i < 100; i++) assert_int_equal(rng_u32(&a), rng_u32(&b));
    const uint64_t keys[5][4] = {{8, RNG_MASK, 3, 11}, {7, RNG_DROPOUT, 3, 11},
                                 {7, RNG_MASK, 4, 11}, {7, RNG_MASK, 3, 12}, {7, RNG_MASK, 3, 11}};
    rng_init(&a, 7, RNG_MASK, 3, 11, 0);
    uint32_t ref = rng_u32(&a);
    for (int k = 0; k < 4; k++) {
        rng_init(&b, keys[k][0], (uint32_t)keys[k][1], keys[k][2], keys[k][3], 0);
        assert_true(rng_u32(&b) != ref);
    }
    rng_init(&b, 7, RNG_MASK, 3, 11, 1);
    assert_true(rng_u32(&b) != ref);
}

static void test_rng_distributions(void **st) {
    (void)st;
    rng_stream r;
    rng_init(&r, 1, RNG_USER, 0, 0, 0);
    enum { N = 200000 };
    double s = 0, s2 = 0, u = 0, umin = 1, umax = 0;
    int64_t hist[7] = {0};
    for (int i = 0; i < N; i++) {
        double z = rng_normal(&r);
        s += z;
        s2 += z * z;
        double v = rng_uniform(&r);
        u += v;
        umin = v < umin ? v : umin;
        umax = v > umax ? v : umax;
        hist[rng_below(&r, 7)]++;
    }
    /* 5-sigma bounds: these fail for a broken generator, essentially never otherwise */
    assert_true(fabs(s / N) < 5.0 / sqrt(N));
    assert_true(fabs(s2 / N - 1.0) < 5.0 * sqrt(2.0 / N));
    assert_true(fabs(u / N - 0.5) < 5.0 * sqrt(1.0 / 12 / N));
    assert_true(umin >= 0.0 && umax < 1.0);
    for (int k = 0; k < 7; k++) assert_true(fabs((double)hist[k] - N / 7.0) < 5.0 * sqrt(N / 7.0));
    int64_t idx[50];
    for (int i = 0; i < 50; i++) idx[i] = i;
    rng_shuffle_i64(&r, idx, 50);
    int64_t seen[50] = {0};
    int moved = 0;
    for (int i = 0; i < 50; i++) {
        seen[idx[i]]++;
        moved += idx[i] != i;
    }
    for (int i = 0; i < 50; i++) assert_int_equal(seen[i], 1);
    assert_true(moved > 25);
}

static void test_json(void **st) {
    (void)st;
    char *t = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&t, &n);
    json_write_str(f, "a\"b\\c\nd\x01");
    fputc(' ', f);
    json_write_num(f, 0.1);
    fputc(' ', f);
    json_write_num(f, 3.0);
    fputc(' ', f);
    json_write_num(f, NAN);
    fclose(f);
    assert_string_equal(t, "\"a\\\"b\\\\c\\nd\\u0001\" 0.1 3 null");
    free(t);
    char out[65];
    assert_true(json_find_str("{\"x\": 1, \"fingerprint\": \"abc\"}", "fingerprint", out, sizeof out));
    assert_string_equal(out, "abc");
    assert_false(json_find_str("{\"x\": 1}", "fingerprint", out, sizeof out));
}

static void test_strlist(void **st) {
    (void)st;
    bgfm_err e = {0};
    char **l = NULL;
    int n = -1;
    assert_int_equal(strlist_split("aal,ho48,x", ',', &l, &n, &e), 0);
    assert_int_equal(n, 3);
    assert_string_equal(l[0], "aal");
    assert_string_equal(l[1], "ho48");
    assert_string_equal(l[2], "x");
    strlist_free(l, n);
    assert_int_equal(strlist_split("", ',', &l, &n, &e), 0);
    assert_int_equal(n, 0);
    strlist_free(l, n);
    assert_int_equal(strlist_split("a,", ',', &l, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_string_equal(l[0], "a");
    assert_string_equal(l[1], "");
    strlist_free(l, n);
    strlist_free(NULL, 3);
    /* the other way: appended with a separator after the first, truncated and terminated */
    char buf[12] = "";
    strlist_append(buf, sizeof buf, "aal", ',');
    assert_string_equal(buf, "aal");
    strlist_append(buf, sizeof buf, "ho48", ',');
    assert_string_equal(buf, "aal,ho48");
    strlist_append(buf, sizeof buf, "motion24", ',');
    assert_string_equal(buf, "aal,ho48,mo"); /* 11 characters and the terminator */
    strlist_append(buf, sizeof buf, "x", ',');
    assert_string_equal(buf, "aal,ho48,mo");
    assert_int_equal(strlist_split(buf, ',', &l, &n, &e), 0); /* and back */
    assert_int_equal(n, 3);
    assert_string_equal(l[1], "ho48");
    strlist_free(l, n);
}

static void test_fsutil(void **st) {
    (void)st;
    char root[] = "/tmp/bgfm-fs-XXXXXX";
    assert_non_null(mkdtemp(root));
    bgfm_err e = {0};
    char *d = fs_join(root, "a/b/c", &e);
    assert_int_equal(fs_mkdirs(d, &e), 0);
    char *f1 = fs_join(d, "x.txt", &e);
    assert_int_equal(fs_write_atomic(f1, "hello", 5, &e), 0);
    char *f2 = fs_join(root, "a/z.txt", &e);
    assert_int_equal(fs_write_atomic(f2, "z", 1, &e), 0);
    char **l = NULL;
    int n = 0;
    assert_int_equal(fs_list_files(root, &l, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_string_equal(l[0], "a/b/c/x.txt");
    assert_string_equal(l[1], "a/z.txt");
    strlist_free(l, n);
    char *txt = NULL;
    size_t len = 0;
    assert_int_equal(fs_read_all(f1, &txt, &len, &e), 0);
    assert_int_equal(len, 5);
    assert_string_equal(txt, "hello");
    free(txt);
    char *a = fs_join(root, "a", &e);
    assert_int_equal(fs_remove_tree(root, a, &e), 0);
    assert_false(fs_exists(a));
    assert_int_equal(fs_remove_tree(root, a, &e), 0); /* missing is fine */
    assert_int_equal(e.code, 0);
    rmdir(root);
    free(a);
    free(d);
    free(f1);
    free(f2);
}

/* bgfm_realloc: grows keeping the contents; a failure (injected by purpose: main sets
 * BGFM_FAIL_ALLOC_WHAT before any allocation) returns NULL, records ENOMEM naming the
 * purpose, and leaves the block valid. */
static void test_bgfm_realloc(void **st) {
    (void)st;
    bgfm_err e = {0};
    unsigned char *p = bgfm_realloc(&e, NULL, 8, "core realloc");
    assert_non_null(p);
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(i + 1);
    unsigned char *q = bgfm_realloc(&e, p, 1 << 16, "core realloc");
    assert_non_null(q);
    for (int i = 0; i < 8; i++) assert_int_equal(q[i], i + 1);
    assert_int_equal(e.code, 0);
    assert_null(bgfm_realloc(&e, q, 1 << 17, "core realloc probe"));
    assert_int_equal(e.code, BGFM_ENOMEM);
    assert_non_null(strstr(e.msg, "131072 bytes for core realloc probe"));
    for (int i = 0; i < 8; i++) assert_int_equal(q[i], i + 1);
    free(q);
}

int main(void) {
    setenv("BGFM_FAIL_ALLOC_WHAT", "core realloc probe", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bgfm_realloc),
        cmocka_unit_test(test_sha256_nist),   cmocka_unit_test(test_sha256_file),
        cmocka_unit_test(test_sha256_impls_agree),
        cmocka_unit_test(test_philox_kat),    cmocka_unit_test(test_rng_streams),
        cmocka_unit_test(test_rng_distributions), cmocka_unit_test(test_json),
        cmocka_unit_test(test_fsutil),        cmocka_unit_test(test_strlist),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
