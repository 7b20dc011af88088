/* test_synth.c: unit tests of bgfm synth's argument parsing, cohort design and coupling
 * matrices. Not the dataset tests (tests/e2e/synth.sh, tests/mpi/synth_ranks.sh). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bgfm/nifti.h"
#include "bgfm/synth.h"

static int parse(int argc, const char **argv, synth_params *p, bgfm_err *e) {
    int help = 0;
    bgfm_err_clear(e);
    return synth_parse_args(argc, (char **)(uintptr_t)argv, p, &help, e);
}

static void t_parse(void **state) {
    (void)state;
    synth_params p;
    bgfm_err e;
    const char *ok[] = {"synth", "--out", "d", "--subjects", "8", "--volumes", "50", "--tr",
                        "0.72", "--voxel-size", "2", "--sites", "4", "--seed", "5",
                        "--gzip-level", "3", "--datatype", "int16", "--force"};
    assert_int_equal(parse(20, ok, &p, &e), 0);
    assert_string_equal(p.out, "d");
    assert_int_equal(p.subjects, 8);
    assert_int_equal(p.volumes, 50);
    assert_true(fabs(p.tr - 0.72) < 1e-12);
    assert_int_equal(p.voxel_size, 2);
    assert_int_equal(p.sites, 4);
    assert_int_equal(p.seed, 5);
    assert_int_equal(p.gzip_level, 3);
    assert_int_equal(p.datatype, NIFTIIO_INT16);
    assert_int_equal(p.force, 1);
    const char *one[] = {"synth", "--out", "d", "--subjects", "1"};
    assert_int_equal(parse(5, one, &p, &e), 0);
    assert_int_equal(p.sites, 1); /* default 2 clipped to S */
    const char *bad[][3] = {{"--voxel-size", "1", "--voxel-size"}, {"--volumes", "5", "--volumes"},
                            {"--tr", "0", "--tr"}, {"--datatype", "uint8", "--datatype"},
                            {"--bogus", "1", "unknown option"}, {"--seed", "-1", "--seed"},
                            {"--effect", "0.9", "--effect"}, {"--networks", "3", "--networks"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *argv[] = {"synth", "--out", "d", bad[i][0], bad[i][1]};
        assert_int_equal(parse(5, argv, &p, &e), BGFM_EUSAGE);
        assert_non_null(strstr(e.msg, bad[i][2]));
    }
    const char *noout[] = {"synth", "--subjects", "4"};
    assert_int_equal(parse(3, noout, &p, &e), BGFM_EUSAGE);
    assert_non_null(strstr(e.msg, "--out"));
    const char *sites[] = {"synth", "--out", "d", "--subjects", "3", "--sites", "4"};
    assert_int_equal(parse(7, sites, &p, &e), BGFM_EUSAGE);
    const char *help[] = {"synth", "--help"};
    int h = 0;
    bgfm_err_clear(&e);
    assert_int_equal(synth_parse_args(2, (char **)(uintptr_t)help, &p, &h, &e), 0);
    assert_int_equal(h, 1);
}

static void t_design(void **state) {
    (void)state;
    /* groups balanced and every site holds both groups */
    int64_t S = 24, K = 3, count[3][2] = {{0}};
    for (int64_t s = 0; s < S; s++) count[synth_subject_site(s, K)][synth_subject_group(s)]++;
    for (int k = 0; k < K; k++) {
        assert_int_equal(count[k][0], 4);
        assert_int_equal(count[k][1], 4);
    }
    /* couplings: symmetric, unit diagonal, designed pairs differ, others equal */
    double c0[49], c1[49];
    synth_coupling(7, 0.4, 0, c0);
    synth_coupling(7, 0.4, 1, c1);
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < 7; j++) {
            assert_true(c0[i * 7 + j] == c0[j * 7 + i]);
            if (i == j) assert_true(c0[i * 7 + j] == 1 && c1[i * 7 + j] == 1);
        }
    assert_true(fabs(c0[0 * 7 + 1] - c1[0 * 7 + 1] - 0.4) < 1e-12);
    assert_true(fabs(c1[2 * 7 + 3] - c0[2 * 7 + 3] - 0.4) < 1e-12);
    assert_true(c0[4 * 7 + 5] == c1[4 * 7 + 5]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_parse),
        cmocka_unit_test(t_design),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
