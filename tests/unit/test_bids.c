/* test_bids.c: unit tests of participants.tsv parsing (edge cases) and of the dataset
 * scan on folders made in a temp dir. Not a test of image reading. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "bgfm/bids.h"

static int parse(const char *txt, bids_table *t, bgfm_err *e) {
    bgfm_err_clear(e);
    return bids_table_parse("p.tsv", txt, strlen(txt), t, e);
}

static void test_table_basic(void **st) {
    (void)st;
    bids_table t;
    bgfm_err e = {0};
    /* CRLF, BOM, blank trailing lines, short row padded, n/a */
    const char *txt = "\xEF\xBB\xBFparticipant_id\tage\tdiagnosis\r\nsub-01\t30\tctl\r\n"
                      "02\tn/a\r\n\r\n\n";
    assert_int_equal(parse(txt, &t, &e), 0);
    assert_int_equal(t.n_cols, 3);
    assert_int_equal(t.n_rows, 2);
    assert_int_equal(t.id_col, 0);
    assert_string_equal(t.cells[1 * 3 + 0], "02");
    assert_string_equal(t.cells[1 * 3 + 2], "");
    assert_true(bids_cell_missing(t.cells[1 * 3 + 1]));
    assert_true(bids_cell_missing(t.cells[1 * 3 + 2]));
    assert_false(bids_cell_missing(t.cells[0 * 3 + 1]));
    assert_int_equal(bids_table_find(&t, "sub-01"), 0);
    assert_int_equal(bids_table_find(&t, "sub-02"), 1); /* "02" matches sub-02 */
    assert_int_equal(bids_table_find(&t, "sub-03"), -1);
    bids_table_free(&t);
}

static void test_table_errors(void **st) {
    (void)st;
    bids_table t;
    bgfm_err e = {0};
    assert_int_equal(parse("id\tage\nsub-01\t3\n", &t, &e), BGFM_EDATA);
    assert_non_null(strstr(e.msg, "participant_id"));
    assert_int_equal(parse("participant_id\tage\nsub-01\t3\nsub-01\t4\n", &t, &e), BGFM_EDATA);
    assert_non_null(strstr(e.msg, "twice"));
    assert_int_equal(parse("participant_id\nsub-01\n01\n", &t, &e), BGFM_EDATA); /* same id */
    assert_int_equal(parse("participant_id\tage\nsub-01\t3\t4\n", &t, &e), BGFM_EDATA);
    assert_non_null(strstr(e.msg, "p.tsv:2"));
    assert_int_equal(parse("participant_id\tage\nn/a\t3\n", &t, &e), BGFM_EDATA);
    assert_int_equal(parse("", &t, &e), BGFM_EDATA);
    assert_int_equal(parse("participant_id\tage\tage\n", &t, &e), BGFM_EDATA);
}

static void touch(const char *root, const char *rel) {
    char p[512], cmd[1200];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\" && printf abc > '%s'", p, p);
    assert_int_equal(system(cmd), 0);
}

static void write_file(const char *root, const char *rel, const char *txt) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(txt, f);
    fclose(f);
}

static void test_scan(void **st) {
    (void)st;
    char root[] = "/tmp/bgfm-bids-XXXXXX";
    assert_non_null(mkdtemp(root));
    touch(root, "sub-02/func/sub-02_task-rest_bold.nii.gz");
    touch(root, "sub-01/ses-b/func/sub-01_ses-b_task-rest_bold.nii");
    touch(root, "sub-01/ses-a/func/sub-01_ses-a_task-rest_bold.nii.gz");
    touch(root, "sub-01/func/sub-01_task-rest_bold.json");          /* ignored */
    touch(root, "sub-01/anat/sub-01_T1w.nii.gz");                    /* ignored */
    touch(root, "derivatives/sub-09/func/sub-09_bold.nii.gz");       /* ignored */
    write_file(root, "participants.tsv", "participant_id\tdiagnosis\nsub-01\tctl\nsub-02\tasd\n");
    bids_dataset d;
    bgfm_err e = {0};
    assert_int_equal(bids_scan(root, NULL, 0, &d, &e), 0);
    assert_int_equal(d.n_images, 3);
    /* sorted by path bytes */
    assert_non_null(strstr(d.images[0].path, "sub-01/ses-a/"));
    assert_non_null(strstr(d.images[1].path, "sub-01/ses-b/"));
    assert_non_null(strstr(d.images[2].path, "sub-02/func/"));
    assert_string_equal(d.images[0].participant_id, "sub-01");
    assert_int_equal(d.images[2].row, 1);
    assert_int_equal(d.images[0].file_size, 3);
    bids_dataset_free(&d);

    /* a participant without image: error naming it and the folder searched */
    write_file(root, "participants.tsv",
               "participant_id\tdiagnosis\nsub-01\tctl\nsub-02\tasd\nsub-03\tctl\n");
    assert_int_equal(bids_scan(root, NULL, 0, &d, &e), BGFM_EDATA);
    assert_non_null(strstr(e.msg, "sub-03"));
    assert_non_null(strstr(e.msg, "/sub-03/func"));
    bgfm_err_clear(&e);
    /* ... skipped and recorded with on_error: skip */
    assert_int_equal(bids_scan(root, NULL, 1, &d, &e), 0);
    assert_int_equal(d.n_images, 3);
    assert_int_equal(d.n_skipped, 1);
    assert_non_null(strstr(d.skipped[0].image, "sub-03"));
    bids_dataset_free(&d);

    /* an image of an unlisted subject */
    write_file(root, "participants.tsv", "participant_id\tdiagnosis\nsub-01\tctl\n");
    assert_int_equal(bids_scan(root, NULL, 0, &d, &e), BGFM_EDATA);
    assert_non_null(strstr(e.msg, "sub-02"));
    assert_non_null(strstr(e.msg, "not listed"));
    bgfm_err_clear(&e);
    assert_int_equal(bids_scan(root, NULL, 1, &d, &e), 0);
    assert_int_equal(d.n_images, 2);
    assert_int_equal(d.n_skipped, 1);
    bids_dataset_free(&d);

    /* participants table elsewhere, missing table, no images, not a folder */
    char other[1100];
    snprintf(other, sizeof other, "%s/other.tsv", root);
    write_file(root, "other.tsv", "participant_id\nsub-01\nsub-02\n");
    assert_int_equal(bids_scan(root, other, 0, &d, &e), 0);
    bids_dataset_free(&d);
    snprintf(other, sizeof other, "%s/missing.tsv", root);
    assert_int_equal(bids_scan(root, other, 0, &d, &e), BGFM_EDATA);
    assert_non_null(strstr(e.msg, "missing.tsv"));
    bgfm_err_clear(&e);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'/sub-*", root);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(bids_scan(root, NULL, 0, &d, &e), BGFM_EDATA);
    assert_non_null(strstr(e.msg, "no images found"));
    bgfm_err_clear(&e);
    snprintf(other, sizeof other, "%s/nope", root);
    assert_int_equal(bids_scan(other, NULL, 0, &d, &e), BGFM_EDATA);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_basic),
        cmocka_unit_test(test_table_errors),
        cmocka_unit_test(test_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
