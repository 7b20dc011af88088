/* test_probe.c: unit tests of the probe protocol's parts (probe.h, regress.h): folds
 * grouped by subject, stratified, balanced and reproducible, seed- and repeat-dependent
 * (repeat 0 = the single draw of earlier versions), unlabelled subjects left out, the
 * few-shot subsets (k per class, training subjects only, nested in k), the error for too
 * few subjects per class; the regression folds (subjects with the target dealt evenly,
 * the others out, per repeat) and their nested few-shot subsets; a constant feature set
 * scores exactly AUC 0.5 whatever the subjects' window counts.
 * Not the stage (tests/e2e/probe_pipeline.sh). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bgfm/probe.h"
#include "bgfm/regress.h"
#include "bgfm/rng.h"

#define NS 23

static void classes(int *cls) {
    for (int s = 0; s < NS; s++) cls[s] = s % 3 == 0 ? 2 : s % 2; /* 3 unbalanced classes */
}

static void test_folds_stratified_balanced(void **st) {
    (void)st;
    int cls[NS], fold[NS], again[NS], other[NS];
    classes(cls);
    bgfm_err e = {0};
    assert_int_equal(probe_folds(NS, cls, 3, 4, 77, 0, fold, &e), 0);
    int size[4] = {0}, per[4][3];
    memset(per, 0, sizeof per);
    int ncls[3] = {0};
    for (int s = 0; s < NS; s++) {
        assert_true(fold[s] >= 0 && fold[s] < 4);
        size[fold[s]]++;
        per[fold[s]][cls[s]]++;
        ncls[cls[s]]++;
    }
    for (int f = 0; f < 4; f++) {
        assert_true(size[f] == NS / 4 || size[f] == NS / 4 + 1); /* sizes differ by <= 1 */
        for (int c = 0; c < 3; c++) /* each class spread evenly over the folds */
            assert_true(per[f][c] == ncls[c] / 4 || per[f][c] == ncls[c] / 4 + 1);
    }
    assert_int_equal(probe_folds(NS, cls, 3, 4, 77, 0, again, &e), 0);
    assert_memory_equal(fold, again, sizeof fold);
    assert_int_equal(probe_folds(NS, cls, 3, 4, 78, 0, other, &e), 0);
    assert_memory_not_equal(fold, other, sizeof fold);
    /* another repeat is another draw, as balanced */
    assert_int_equal(probe_folds(NS, cls, 3, 4, 77, 1, other, &e), 0);
    assert_memory_not_equal(fold, other, sizeof fold);
    int size1[4] = {0};
    for (int s = 0; s < NS; s++) size1[other[s]]++;
    for (int f = 0; f < 4; f++) assert_true(size1[f] == NS / 4 || size1[f] == NS / 4 + 1);
    /* repeat 0 is the draw of format 1: rng(seed, RNG_PROBE, 1, class, 0) dealt in turn */
    int64_t list[NS], deal = 0;
    for (int c = 0; c < 3; c++) {
        int64_t m = 0;
        for (int s = 0; s < NS; s++)
            if (cls[s] == c) list[m++] = s;
        rng_stream r;
        rng_init(&r, 77, RNG_PROBE, 1, (uint64_t)c, 0);
        rng_shuffle_i64(&r, list, m);
        for (int64_t j = 0; j < m; j++) assert_int_equal(fold[list[j]], (int)(deal++ % 4));
    }
}

static void test_folds_unlabelled(void **st) {
    (void)st;
    int cls[NS], fold[NS];
    classes(cls);
    cls[4] = cls[9] = -1; /* no label: never in a fold, never trains */
    bgfm_err e = {0};
    assert_int_equal(probe_folds(NS, cls, 3, 4, 3, 2, fold, &e), 0);
    assert_int_equal(fold[4], -1);
    assert_int_equal(fold[9], -1);
    uint8_t use[NS];
    for (int f = 0; f < 4; f++) {
        assert_int_equal(probe_few_shot(NS, cls, fold, 3, f, 0, 3, 2, use, &e), 0);
        assert_int_equal(use[4] + use[9], 0);
    }
}

static void test_folds_too_few(void **st) {
    (void)st;
    int cls[6] = {0, 1, 0, 1, 0, 1}, fold[6];
    bgfm_err e = {0};
    assert_int_equal(probe_folds(6, cls, 2, 4, 1, 0, fold, &e), BGFM_EDATA);
    assert_non_null(strstr(e.msg, "fewer than folds"));
}

static void test_few_shot(void **st) {
    (void)st;
    int cls[NS], fold[NS];
    classes(cls);
    bgfm_err e = {0};
    assert_int_equal(probe_folds(NS, cls, 3, 4, 5, 0, fold, &e), 0);
    uint8_t u2[NS], u3[NS], all[NS], r1[NS];
    int differ = 0;
    for (int f = 0; f < 4; f++) {
        assert_int_equal(probe_few_shot(NS, cls, fold, 3, f, 2, 9, 0, u2, &e), 0);
        assert_int_equal(probe_few_shot(NS, cls, fold, 3, f, 3, 9, 0, u3, &e), 0);
        assert_int_equal(probe_few_shot(NS, cls, fold, 3, f, 0, 9, 0, all, &e), 0);
        /* another repeat's subset */
        assert_int_equal(probe_few_shot(NS, cls, fold, 3, f, 2, 9, 1, r1, &e), 0);
        differ |= memcmp(u2, r1, sizeof u2) != 0;
        int n2[3] = {0}, n3[3] = {0};
        for (int s = 0; s < NS; s++) {
            assert_true(!u2[s] || u3[s]);                /* nested in k */
            assert_true(!u3[s] || all[s]);
            assert_int_equal(all[s], fold[s] != f);      /* all = the whole training fold */
            n2[cls[s]] += u2[s];
            n3[cls[s]] += u3[s];
        }
        for (int c = 0; c < 3; c++) assert_true(n2[c] == 2 && n3[c] == 3);
    }
    assert_true(differ);
    /* k larger than the training subjects of a class: all of them */
    uint8_t big[NS];
    assert_int_equal(probe_few_shot(NS, cls, fold, 3, 3, 1000, 9, 0, big, &e), 0);
    assert_memory_equal(big, all, sizeof big);
}

/* A constant feature set (nothing known: motion or site unknown, or regressed out of
 * itself) gives every test subject exactly the same probability whatever its window
 * count, so the AUC is exactly 0.5, not ties broken by rounding (1..7 windows each). */
static void test_cell_constant_feature(void **st) {
    (void)st;
    int cls[NS], fold[NS];
    for (int s = 0; s < NS; s++) cls[s] = s % 2;
    bgfm_err e = {0};
    assert_int_equal(probe_folds(NS, cls, 2, 3, 5, 0, fold, &e), 0);
    double X[NS * 7 * 2];
    int64_t subj[NS * 7], n = 0;
    for (int s = 0; s < NS; s++)
        for (int w = 0; w <= s % 7; w++, n++) {
            subj[n] = s;
            X[n * 2] = 0.3, X[n * 2 + 1] = -1.7;
        }
    uint8_t use[NS];
    logreg_opts lr = {1.0, 1000, 1e-6, 1};
    for (int f = 0; f < 3; f++) {
        assert_int_equal(probe_few_shot(NS, cls, fold, 2, f, 0, 9, 0, use, &e), 0);
        double m3[3], oof[NS * 2];
        assert_int_equal(probe_cell(X, n, 2, NULL, 0, subj, NS, cls, 2, fold, f, use, &lr, m3,
                                    oof, &e), 0);
        assert_true(m3[0] == 0.5);
        double p = -1;
        for (int s = 0; s < NS; s++) {
            if (fold[s] != f) continue;
            if (p < 0) p = oof[s * 2];
            assert_true(oof[s * 2] == p); /* bit for bit */
        }
    }
}

static void test_regress_folds(void **st) {
    (void)st;
    uint8_t has[NS];
    for (int s = 0; s < NS; s++) has[s] = s % 5 != 2; /* 18 subjects with the target */
    int fold[NS], again[NS], rep1[NS], size[4] = {0};
    bgfm_err e = {0};
    assert_int_equal(regress_folds(NS, has, 4, 11, 0, "age", fold, &e), 0);
    for (int s = 0; s < NS; s++) {
        if (!has[s]) {
            assert_int_equal(fold[s], -1);
            continue;
        }
        assert_true(fold[s] >= 0 && fold[s] < 4);
        size[fold[s]]++;
    }
    for (int f = 0; f < 4; f++) assert_true(size[f] == 4 || size[f] == 5);
    assert_int_equal(regress_folds(NS, has, 4, 11, 0, "age", again, &e), 0);
    assert_memory_equal(fold, again, sizeof fold);
    assert_int_equal(regress_folds(NS, has, 4, 11, 1, "age", rep1, &e), 0);
    assert_memory_not_equal(fold, rep1, sizeof fold);
    /* nested few-shot subsets inside the training fold, n subjects */
    uint8_t u3[NS], u6[NS], all[NS];
    for (int f = 0; f < 4; f++) {
        assert_int_equal(regress_few_shot(NS, fold, f, 3, 11, 0, u3, &e), 0);
        assert_int_equal(regress_few_shot(NS, fold, f, 6, 11, 0, u6, &e), 0);
        assert_int_equal(regress_few_shot(NS, fold, f, 0, 11, 0, all, &e), 0);
        int n3 = 0, n6 = 0;
        for (int s = 0; s < NS; s++) {
            assert_true(!u3[s] || u6[s]);
            assert_true(!u6[s] || all[s]);
            assert_int_equal(all[s], has[s] && fold[s] != f); /* no test subject trains */
            n3 += u3[s];
            n6 += u6[s];
        }
        assert_int_equal(n3, 3);
        assert_int_equal(n6, 6);
    }
    /* fewer subjects with the target than folds: a data error naming the target */
    memset(has, 0, sizeof has);
    has[1] = has[7] = has[8] = 1;
    assert_int_equal(regress_folds(NS, has, 4, 11, 0, "score", fold, &e), BGFM_EDATA);
    assert_non_null(strstr(e.msg, "'score'"));
}

/* The few-shot draw's subject list comes through the allocation mechanism: a failure
 * (injected by purpose: main sets BGFM_FAIL_ALLOC_WHAT before any allocation) is
 * BGFM_ENOMEM naming it, not an abort; the next draw succeeds. */
static void test_few_shot_alloc_fails(void **st) {
    (void)st;
    int cls[NS], fold[NS];
    classes(cls);
    for (int s = 0; s < NS; s++) fold[s] = s % 4;
    uint8_t use[NS];
    bgfm_err e = {0};
    assert_int_equal(probe_few_shot(NS, cls, fold, 3, 0, 0, 9, 0, use, &e), BGFM_ENOMEM);
    assert_int_equal(e.code, BGFM_ENOMEM);
    assert_non_null(strstr(e.msg, "bytes for few-shot subjects"));
    bgfm_err_clear(&e);
    assert_int_equal(probe_few_shot(NS, cls, fold, 3, 0, 0, 9, 0, use, &e), 0);
}

int main(void) {
    setenv("BGFM_FAIL_ALLOC_WHAT", "few-shot subjects", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_few_shot_alloc_fails),
        cmocka_unit_test(test_folds_stratified_balanced),
        cmocka_unit_test(test_folds_unlabelled),
        cmocka_unit_test(test_folds_too_few),
        cmocka_unit_test(test_regress_folds),
        cmocka_unit_test(test_few_shot),
        cmocka_unit_test(test_cell_constant_feature),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
