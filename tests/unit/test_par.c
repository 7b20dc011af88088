/* test_par.c: the thread team of par.h: every index of every loop is run exactly
 * once, by the documented part, for teams of 1-4 threads and loops shorter and
 * longer than the team; many loops in a row (no lost wake-up); NULL pool inline; the
 * threads it starts block SIGTERM/SIGUSR1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <cmocka.h>

#include "bgfm/par.h"

typedef struct hits {
    int64_t n;
    int k;
    int *count;
    int *who;
} hits;

static void body(void *v, int64_t b, int64_t e, int tid) {
    hits *h = v;
    for (int64_t i = b; i < e; i++) {
        h->count[i]++;
        h->who[i] = tid;
    }
}

static void test_cover(void **st) {
    (void)st;
    static int count[1000], who[1000];
    const int64_t ns[] = {0, 1, 2, 3, 5, 7, 64, 1000};
    for (int th = 1; th <= 4; th++) {
        par_pool *p = NULL;
        bgfm_err e = {0};
        assert_int_equal(par_pool_create(&p, th, &e), 0);
        assert_int_equal(par_threads(p), th);
        for (size_t q = 0; q < sizeof ns / sizeof *ns; q++) {
            int64_t n = ns[q];
            memset(count, 0, sizeof count);
            hits h = {n, th, count, who};
            par_for(p, n, body, &h);
            int k = n < th ? (int)n : th;
            for (int64_t i = 0; i < n; i++) {
                assert_int_equal(count[i], 1);
                /* part t is [n t / k, n (t + 1) / k) */
                int t = who[i];
                assert_true(n * t / k <= i && i < n * (t + 1) / k);
            }
            for (int64_t i = n; i < 1000; i++) assert_int_equal(count[i], 0);
        }
        par_pool_free(&p);
        assert_null(p);
    }
}

static void test_many_loops(void **st) {
    (void)st;
    static int count[8], who[8];
    par_pool *p = NULL;
    bgfm_err e = {0};
    assert_int_equal(par_pool_create(&p, 3, &e), 0);
    memset(count, 0, sizeof count);
    hits h = {8, 3, count, who};
    for (int r = 0; r < 20000; r++) par_for(p, 8, body, &h);
    for (int i = 0; i < 8; i++) assert_int_equal(count[i], 20000);
    par_pool_free(&p);
    par_pool_free(&p); /* NULL: no-op */
    memset(count, 0, sizeof count);
    par_for(NULL, 8, body, &h);
    for (int i = 0; i < 8; i++) assert_int_equal(count[i], 1), assert_int_equal(who[i], 0);
    assert_int_equal(par_threads(NULL), 1);
}

/* Threads started by bgfm_thread_start (the team's, the read-ahead's, the graph
 * prefetch's) block SIGTERM and SIGUSR1, so Slurm's signals are handled by the main
 * thread; the caller's own mask is left as it was. */
static void *read_mask(void *v) {
    sigset_t *m = v;
    if (pthread_sigmask(SIG_BLOCK, NULL, m)) sigemptyset(m);
    return NULL;
}

static void test_threads_block_signals(void **st) {
    (void)st;
    sigset_t in_thread, mine;
    sigemptyset(&in_thread);
    pthread_t t;
    assert_int_equal(bgfm_thread_start(&t, read_mask, &in_thread), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(sigismember(&in_thread, SIGTERM) == 1 && sigismember(&in_thread, SIGUSR1) == 1);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, NULL, &mine), 0);
    assert_true(sigismember(&mine, SIGTERM) == 0 && sigismember(&mine, SIGUSR1) == 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cover),
        cmocka_unit_test(test_many_loops),
        cmocka_unit_test(test_threads_block_signals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
