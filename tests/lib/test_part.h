/* test_part.h: what tests/valgrind.sh tells a unit program. One part of a cmocka
 * program's tests, so that a long program runs under memcheck as several processes at
 * once: BGFM_TEST_PART="I/N" runs the tests whose place in the list, modulo N, is I
 * (0-based); unset, every test; a malformed value is an error (exit 2), not "all tests".
 * And BGFM_TEST_MEMCHECK: the program runs under memcheck, where a test may take a smaller
 * size that still checks what it checks (make test and the ASan suite run full size).
 * Header-only, for tests/unit only. */
#ifndef BGFM_TEST_PART_H
#define BGFM_TEST_PART_H

#include <stdio.h>
#include <stdlib.h>

/* 1 under tests/valgrind.sh's memcheck (BGFM_TEST_MEMCHECK set), else 0 */
static inline int test_memcheck(void) { return getenv("BGFM_TEST_MEMCHECK") != NULL; }

static inline int run_tests_part(const char *group, const struct CMUnitTest *t, size_t n) {
    const char *v = getenv("BGFM_TEST_PART");
    int i = 0, m = 1;
    char extra;
    if (v && (sscanf(v, "%d/%d%c", &i, &m, &extra) != 2 || m < 1 || i < 0 || i >= m)) {
        fprintf(stderr, "%s: BGFM_TEST_PART must be I/N with 0 <= I < N, not '%s'\n", group, v);
        return 2;
    }
    struct CMUnitTest *sub = malloc((n ? n : 1) * sizeof *sub);
    if (!sub) return 2;
    size_t k = 0;
    for (size_t j = 0; j < n; j++)
        if ((int)(j % (size_t)m) == i) sub[k++] = t[j];
    int rc = _cmocka_run_group_tests(group, sub, k, NULL, NULL);
    free(sub);
    return rc;
}

#endif
