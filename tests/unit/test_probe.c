/* test_probe.c: unit tests of the probe protocol's parts (probe.h): folds grouped by
 * subject, stratified, balanced and reproducible, seed-dependent, the few-shot subsets
 * (k per class, training subjects only, nested in k), and the error for too few
 * subjects per class. Not the stage (tests/e2e/probe_pipeline.sh). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bgfm/probe.h"

#define NS 23

static void classes(int *cls) {
    for (int s = 0; s < NS; s++) cls[s] = s % 3 == 0 ? 2 : s % 2; /* 3 unbalanced classes */
}

static void test_folds_stratified_balanced(void **st) {
    (void)st;
    int cls[NS], fold[NS], again[NS], other[NS];
    classes(cls);
    bgfm_err e = {0};
    assert_int_equal(probe_folds(NS, cls, 3, 4, 77, fold, &e), 0);
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
    assert_int_equal(probe_folds(NS, cls, 3, 4, 77, again, &e), 0);
    assert_memory_equal(fold, again, sizeof fold);
    assert_int_equal(probe_folds(NS, cls, 3, 4, 78, other, &e), 0);
    assert_memory_not_equal(fold, other, sizeof fold);
}

static void test_folds_too_few(void **st) {
    (void)st;
    int cls[6] = {0, 1, 0, 1, 0, 1}, fold[6];
    bgfm_err e = {0};
    assert_int_equal(probe_folds(6, cls, 2, 4, 1, fold, &e), BGFM_EDATA);
    assert_non_null(strstr(e.msg, "fewer than folds"));
}

static void test_few_shot(void **st) {
    (void)st;
    int cls[NS], fold[NS];
    classes(cls);
    bgfm_err e = {0};
    assert_int_equal(probe_folds(NS, cls, 3, 4, 5, fold, &e), 0);
    uint8_t u2[NS], u3[NS], all[NS];
    for (int f = 0; f < 4; f++) {
        probe_few_shot(NS, cls, fold, 3, f, 2, 9, u2);
        probe_few_shot(NS, cls, fold, 3, f, 3, 9, u3);
        probe_few_shot(NS, cls, fold, 3, f, 0, 9, all);
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
    /* k larger than the training subjects of a class: all of them */
    uint8_t big[NS];
    probe_few_shot(NS, cls, fold, 3, 3, 1000, 9, big);
    assert_memory_equal(big, all, sizeof big);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_folds_stratified_balanced),
        cmocka_unit_test(test_folds_too_few),
        cmocka_unit_test(test_few_shot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
