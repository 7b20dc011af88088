/* test_config.c: unit tests of the pipeline file loader (pipeline/engine/config.c) and the
 * generated reference (pipeline/engine/doc.c). Not an MPI test: config_load is run by e2e. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bgfm/config.h"
#include "bgfm/optvalue.h"
#include "bgfm/stage.h"
#include "bgfm/yamlout.h"

/* ---- a stage kind of our own, so these tests do not depend on the registry ---- */

static const bgfm_opt toy_opts[] = {
    {"flag", BGFM_OPT_BOOL, "true", 1, -1, NULL, "a flag"},
    {"count", BGFM_OPT_INT, "3", 1, 100, NULL, "a count"},
    {"rate", BGFM_OPT_REAL, "0.1", 0, 1, NULL, "a rate"},
    {"mode", BGFM_OPT_ENUM, "fast", 1, -1, "fast|slow|exact", "a mode"},
    {"label", BGFM_OPT_STR, NULL, 1, -1, NULL, "a label"},
    {"tags", BGFM_OPT_LIST, "[a, b]", 1, -1, NULL, "tags"},
    {"adjacency.threshold", BGFM_OPT_REAL, "0.3", -1, 1, NULL, "threshold"},
    {"big", BGFM_OPT_INT, NULL, 1, 9.2233720368547758e18, NULL, "no upper bound"},
    {"adjacency.rule", BGFM_OPT_ENUM, "abs", 1, -1, "abs|pos", "rule"},
    {"lr", BGFM_OPT_REAL, "1e-3", 1, -1, NULL, "learning rate"},
    {"rank", BGFM_OPT_INT, "4", 0, 16, "auto", "an integer, or the word auto"},
};

static int toy_validate(const bgfm_pipeline *p, const bgfm_stage_cfg *s, bgfm_err *e) {
    if (params_int(&s->with, "count") > 50 && !strcmp(params_str(&s->with, "mode"), "fast"))
        return config_stage_fail(e, p, s, "count", "count above 50 needs mode: slow");
    return 0;
}

static const bgfm_stage_kind toy = {
    "toy", "a test kind", toy_opts, (int)(sizeof toy_opts / sizeof toy_opts[0]),
    BGFM_ART_BIDS, BGFM_ART_NONE, BGFM_ART_TIMESERIES, 0, toy_validate, NULL, NULL, NULL, 0, NULL, NULL};

static const bgfm_opt toy2_opts[] = {
    {"need", BGFM_OPT_INT, bgfm_opt_required, 0, 10, NULL, "required"},
};
static const bgfm_stage_kind toy2 = {
    "toy2", "another", toy2_opts, 1, BGFM_ART_TIMESERIES, BGFM_ART_NONE, BGFM_ART_GRAPHS, 1,
    NULL, NULL, NULL, NULL, 0, NULL, NULL};

static const bgfm_stage_kind *const test_kinds[] = {&toy, &toy2, NULL};

#define FILE_ "/cfg/p.yaml"
#define HEAD                                                                                   \
    "name: demo\n"                                                                             \
    "inputs:\n"                                                                                \
    "  bids: data/demo\n"                                                                      \
    "atlases:\n"                                                                               \
    "  - {name: aal, path: /atl/aal.nii.gz}\n"

static int parse(const char *yaml, bgfm_pipeline *p, bgfm_err *e) {
    bgfm_err_clear(e);
    return config_parse_kinds(FILE_, yaml, strlen(yaml), test_kinds, p, e);
}

static void expect_err(const char *yaml, const char *msg) {
    bgfm_pipeline p;
    bgfm_err e;
    int rc = parse(yaml, &p, &e);
    if (rc != BGFM_EUSAGE || strcmp(e.msg, msg))
        print_error("file:\n%s\ngot rc %d: %s\nwant: %s\n", yaml, rc, e.msg, msg);
    assert_int_equal(rc, BGFM_EUSAGE);
    assert_string_equal(e.msg, msg);
    assert_null(p.stages); /* freed on failure */
}

/* ---------------------------------------------------------------- success paths */

static void test_defaults_filled(void **st) {
    (void)st;
    bgfm_pipeline p;
    bgfm_err e;
    assert_int_equal(parse(HEAD "stages:\n  - {name: s1, uses: toy}\n", &p, &e), 0);
    assert_string_equal(p.name, "demo");
    assert_string_equal(p.basedir, "/cfg");
    assert_string_equal(p.workdir, "/cfg/runs/demo");
    assert_int_equal(p.seed, 0);
    assert_int_equal(p.on_error, BGFM_ON_ERROR_FAIL);
    assert_string_equal(p.bids, "/cfg/data/demo");
    assert_string_equal(p.label_column, "diagnosis");
    assert_string_equal(p.participants, "/cfg/data/demo/participants.tsv");
    assert_int_equal(p.n_atlases, 1);
    assert_string_equal(p.atlases[0].name, "aal");
    assert_string_equal(p.atlases[0].path, "/atl/aal.nii.gz");
    assert_null(p.atlases[0].labels);
    assert_int_equal(p.n_stages, 1);
    const bgfm_stage_cfg *s = config_stage_find(&p, "s1");
    assert_non_null(s);
    assert_ptr_equal(s->kind, &toy);
    assert_int_equal(s->line, 7);
    assert_int_equal(s->col, 5);
    assert_true(params_bool(&s->with, "flag"));
    assert_int_equal(params_int(&s->with, "count"), 3);
    assert_true(params_real(&s->with, "rate") == 0.1);
    assert_true(params_real(&s->with, "lr") == 1e-3);
    assert_string_equal(params_str(&s->with, "mode"), "fast");
    assert_true(params_real(&s->with, "adjacency.threshold") == 0.3);
    assert_string_equal(params_str(&s->with, "adjacency.rule"), "abs");
    assert_false(params_has(&s->with, "label"));
    assert_null(params_str(&s->with, "label"));
    assert_false(params_has(&s->with, "big"));
    const bgfm_value *tags = params_value(&s->with, "tags");
    assert_int_equal(tags->state, 1);
    assert_int_equal(tags->n_list, 2);
    assert_string_equal(tags->list[0], "a");
    assert_string_equal(tags->list[1], "b");
    assert_int_equal(params_int(&p.slurm, "signal_grace"), 300);
    assert_string_equal(params_str(&p.slurm, "launcher"), "auto");
    assert_false(params_has(&p.slurm, "partition"));
    assert_false(params_has(&p.stage_slurm[0], "signal_grace"));
    assert_null(config_stage_find(&p, "nope"));
    config_free(&p);
    config_free(&p); /* idempotent */
}

static void test_values_given(void **st) {
    (void)st;
    bgfm_pipeline p;
    bgfm_err e;
    const char *y = "name: my.run-1\nseed: 42\non_error: skip\nworkdir: /scratch/w\n"
                    "inputs: {bids: /data/b, label_column: group, participants: p.tsv}\n"
                    "atlases:\n  - {name: a1, path: at/a1.nii, labels: at/a1.txt}\n"
                    "  - name: a_2\n    path: /x.nii\n"
                    "stages:\n"
                    "  - name: s1\n    uses: toy\n    with:\n"
                    "      flag: false\n      count: -0\n      rate: 1\n      mode: exact\n"
                    "      label: \"hello world\"\n      tags: [x, 'y z']\n"
                    "      adjacency:\n        threshold: -2.5e-1\n        rule: pos\n"
                    "      big: 9223372036854775807\n"
                    "      lr: .5\n"
                    "  - {name: s2, uses: toy2, with: {need: 10}}\n";
    int rc = parse(y, &p, &e);
    assert_int_equal(rc, BGFM_EUSAGE); /* count -0 < 1 */
    assert_string_equal(e.msg, "/cfg/p.yaml:15:14: 0 is out of range: must be between 1 and 100 "
                               "(key 'stages.s1.with.count')");
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", y);
    char *c0 = strstr(buf, "count: -0");
    memcpy(c0, "count: +7", 9);
    rc = parse(buf, &p, &e);
    if (rc) print_error("%s\n", e.msg);
    assert_int_equal(rc, 0);
    assert_string_equal(p.name, "my.run-1");
    assert_int_equal(p.seed, 42);
    assert_int_equal(p.on_error, BGFM_ON_ERROR_SKIP);
    assert_string_equal(p.workdir, "/scratch/w");
    assert_string_equal(p.bids, "/data/b");
    assert_string_equal(p.label_column, "group");
    assert_string_equal(p.participants, "/cfg/p.tsv");
    assert_string_equal(p.atlases[0].path, "/cfg/at/a1.nii");
    assert_string_equal(p.atlases[0].labels, "/cfg/at/a1.txt");
    assert_string_equal(p.atlases[1].name, "a_2");
    assert_int_equal(p.atlases[1].line, 8);
    assert_int_equal(p.atlases[1].col, 5);
    const bgfm_stage_cfg *s = &p.stages[0];
    assert_false(params_bool(&s->with, "flag"));
    assert_int_equal(params_int(&s->with, "count"), 7);
    assert_true(params_real(&s->with, "rate") == 1.0);
    assert_string_equal(params_str(&s->with, "mode"), "exact");
    assert_string_equal(params_str(&s->with, "label"), "hello world");
    const bgfm_value *t = params_value(&s->with, "tags");
    assert_int_equal(t->state, 2);
    assert_int_equal(t->n_list, 2);
    assert_string_equal(t->list[1], "y z");
    assert_true(params_real(&s->with, "adjacency.threshold") == -0.25);
    assert_string_equal(params_str(&s->with, "adjacency.rule"), "pos");
    assert_true(params_int(&s->with, "big") == INT64_MAX);
    assert_true(params_real(&s->with, "lr") == 0.5);
    const bgfm_value *v = params_value(&s->with, "adjacency.threshold");
    assert_int_equal(v->line, 21);
    assert_int_equal(v->col, 20);
    assert_int_equal(params_int(&p.stages[1].with, "need"), 10);
    config_free(&p);
}

static void test_relative_paths(void **st) {
    (void)st;
    char cwd[4096], want[4200];
    assert_non_null(getcwd(cwd, sizeof cwd));
    const char *y = "name: r\nworkdir: ../out/\ninputs: {bids: ./b//c/.}\n"
                    "atlases: [{name: a, path: 'x/./y.nii'}]\nstages: [{name: s, uses: toy}]\n";
    bgfm_pipeline p;
    bgfm_err e;
    bgfm_err_clear(&e);
    assert_int_equal(config_parse_kinds("sub/dir/p.yaml", y, strlen(y), test_kinds, &p, &e), 0);
    snprintf(want, sizeof want, "%s/sub/dir", cwd);
    assert_string_equal(p.basedir, want);
    snprintf(want, sizeof want, "%s/sub/dir/../out", cwd);
    assert_string_equal(p.workdir, want);
    snprintf(want, sizeof want, "%s/sub/dir/b/c", cwd);
    assert_string_equal(p.bids, want);
    snprintf(want, sizeof want, "%s/sub/dir/b/c/participants.tsv", cwd);
    assert_string_equal(p.participants, want);
    snprintf(want, sizeof want, "%s/sub/dir/x/y.nii", cwd);
    assert_string_equal(p.atlases[0].path, want);
    config_free(&p);
    /* a file in the current directory */
    assert_int_equal(config_parse_kinds("p.yaml", y, strlen(y), test_kinds, &p, &e), 0);
    assert_string_equal(p.basedir, cwd);
    snprintf(want, sizeof want, "%s/runs/r", cwd);
    config_free(&p);
    /* an existing directory reached through a symlink: the real directory is the base,
     * and leading ".." are folded into it */
    char tmp[] = "/tmp/bgfm-cfg.XXXXXX", real[64], link[64], file[80], rtmp[4096];
    assert_non_null(mkdtemp(tmp));
    assert_non_null(realpath(tmp, rtmp));
    snprintf(real, sizeof real, "%s/real", tmp);
    snprintf(link, sizeof link, "%s/link", tmp);
    snprintf(file, sizeof file, "%s/p.yaml", link);
    assert_int_equal(mkdir(real, 0755), 0);
    assert_int_equal(symlink(real, link), 0);
    assert_int_equal(config_parse_kinds(file, y, strlen(y), test_kinds, &p, &e), 0);
    snprintf(want, sizeof want, "%s/real", rtmp);
    assert_string_equal(p.basedir, want);
    snprintf(want, sizeof want, "%s/out", rtmp);
    assert_string_equal(p.workdir, want);
    snprintf(want, sizeof want, "%s/real/b/c/participants.tsv", rtmp);
    assert_string_equal(p.participants, want);
    config_free(&p);
    const char *y3 = "name: r\nworkdir: ../../../../../../../../../../w\ninputs: {bids: ./../b}\n"
                     "atlases: [{name: a, path: x/../y.nii}]\nstages: [{name: s, uses: toy}]\n";
    assert_int_equal(config_parse_kinds(file, y3, strlen(y3), test_kinds, &p, &e), 0);
    assert_string_equal(p.workdir, "/w");
    snprintf(want, sizeof want, "%s/b", rtmp);
    assert_string_equal(p.bids, want);
    snprintf(want, sizeof want, "%s/real/x/../y.nii", rtmp); /* inner ".." kept */
    assert_string_equal(p.atlases[0].path, want);
    config_free(&p);
    assert_int_equal(unlink(link), 0);
    assert_int_equal(rmdir(real), 0);
    assert_int_equal(rmdir(tmp), 0);
    /* default workdir is relative to the file too */
    const char *y2 = "name: r\ninputs: {bids: /b}\n"
                     "atlases: [{name: a, path: /a.nii}]\nstages: [{name: s, uses: toy}]\n";
    assert_int_equal(config_parse_kinds("/", y2, strlen(y2), test_kinds, &p, &e), 0);
    assert_string_equal(p.workdir, "/runs/r");
    config_free(&p);
    assert_int_equal(config_parse_kinds("/top.yaml", y2, strlen(y2), test_kinds, &p, &e), 0);
    assert_string_equal(p.basedir, "/");
    assert_string_equal(p.workdir, "/runs/r");
    config_free(&p);
}

static void test_slurm(void **st) {
    (void)st;
    bgfm_pipeline p;
    bgfm_err e;
    const char *y = HEAD "stages:\n"
                    "  - {name: s1, uses: toy}\n"
                    "  - name: s2\n    uses: toy\n    slurm: {time: \"2-00:00:00\", nodes: 4, "
                    "extra: [\"--gres=gpu:1\"]}\n"
                    "slurm:\n  partition: compute\n  nodes: 1\n  ntasks_per_node: 2\n"
                    "  time: \"01:00:00\"\n  mem: 16G\n  launcher: srun\n  signal_grace: 120\n";
    int rc = parse(y, &p, &e);
    if (rc) print_error("%s\n", e.msg);
    assert_int_equal(rc, 0);
    assert_string_equal(params_str(&p.slurm, "partition"), "compute");
    assert_string_equal(params_str(&p.slurm, "launcher"), "srun");
    assert_int_equal(params_int(&p.slurm, "signal_grace"), 120);
    assert_string_equal(config_slurm_value(&p, 0, "time")->s, "01:00:00");
    assert_string_equal(config_slurm_value(&p, 1, "time")->s, "2-00:00:00");
    assert_int_equal(config_slurm_value(&p, 1, "nodes")->i, 4);
    assert_int_equal(config_slurm_value(&p, 0, "nodes")->i, 1);
    assert_int_equal(config_slurm_value(&p, 1, "signal_grace")->i, 120);
    assert_string_equal(config_slurm_value(&p, 1, "extra")->list[0], "--gres=gpu:1");
    assert_null(config_slurm_value(&p, 0, "extra"));
    assert_null(config_slurm_value(&p, -1, "account"));
    config_free(&p);
}

static void test_slurm_forms(void **st) {
    (void)st;
    static const char *const good_time[] = {"10", "\"10:30\"", "1:00:00", "2-12", "2-12:30",
                                            "\"2-12:30:00\"", "UNLIMITED"};
    static const char *const bad_time[] = {"1h", "-5", "1:2:3:4", "2-", "\":5\"", "1-2:3:4:5"};
    static const char *const good_mem[] = {"100", "16G", "512m", "2T"};
    static const char *const bad_mem[] = {"16GB", "G", "1.5G", "-1"};
    char y[1024];
    bgfm_pipeline p;
    bgfm_err e;
    for (int i = 0; i < 7; i++) {
        snprintf(y, sizeof y, HEAD "stages: [{name: s, uses: toy}]\nslurm: {time: %s}\n", good_time[i]);
        int rc = parse(y, &p, &e);
        if (rc) print_error("time %s: %s\n", good_time[i], e.msg);
        assert_int_equal(rc, 0);
        config_free(&p);
    }
    for (int i = 0; i < 6; i++) {
        snprintf(y, sizeof y, HEAD "stages: [{name: s, uses: toy}]\nslurm: {time: %s}\n", bad_time[i]);
        assert_int_equal(parse(y, &p, &e), BGFM_EUSAGE);
        assert_non_null(strstr(e.msg, "is not a Slurm time limit"));
    }
    for (int i = 0; i < 4; i++) {
        snprintf(y, sizeof y, HEAD "stages: [{name: s, uses: toy}]\nslurm: {mem: %s}\n", good_mem[i]);
        assert_int_equal(parse(y, &p, &e), 0);
        config_free(&p);
        snprintf(y, sizeof y, HEAD "stages: [{name: s, uses: toy}]\nslurm: {mem: %s}\n", bad_mem[i]);
        assert_int_equal(parse(y, &p, &e), BGFM_EUSAGE);
        assert_non_null(strstr(e.msg, "is not a Slurm memory size"));
    }
}

/* ---------------------------------------------------------------- resolved output */

static char *resolved_text(const bgfm_pipeline *p) {
    char *txt = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&txt, &n);
    assert_non_null(f);
    config_write_resolved(p, f);
    assert_int_equal(fclose(f), 0);
    return txt;
}

static void params_equal(const bgfm_params *a, const bgfm_params *b) {
    assert_ptr_equal(a->opts, b->opts);
    assert_int_equal(a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        const bgfm_value *x = &a->v[i], *y = &b->v[i];
        assert_int_equal(x->state != 0, y->state != 0);
        if (!x->state) continue;
        switch (x->opt->type) {
        case BGFM_OPT_BOOL: assert_int_equal(x->b, y->b); break;
        case BGFM_OPT_INT:
            assert_true(x->i == y->i);
            assert_int_equal(x->s != NULL, y->s != NULL);
            if (x->s) assert_string_equal(x->s, y->s);
            break;
        case BGFM_OPT_REAL: assert_memory_equal(&x->r, &y->r, sizeof x->r); break;
        case BGFM_OPT_STR:
        case BGFM_OPT_ENUM: assert_string_equal(x->s, y->s); break;
        case BGFM_OPT_LIST:
            assert_int_equal(x->n_list, y->n_list);
            for (int j = 0; j < x->n_list; j++) assert_string_equal(x->list[j], y->list[j]);
            break;
        }
    }
}

static void pipelines_equal(const bgfm_pipeline *a, const bgfm_pipeline *b) {
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->workdir, b->workdir);
    assert_true(a->seed == b->seed);
    assert_int_equal(a->on_error, b->on_error);
    assert_string_equal(a->bids, b->bids);
    assert_string_equal(a->label_column, b->label_column);
    assert_string_equal(a->participants, b->participants);
    assert_int_equal(a->n_atlases, b->n_atlases);
    for (int i = 0; i < a->n_atlases; i++) {
        assert_string_equal(a->atlases[i].name, b->atlases[i].name);
        assert_string_equal(a->atlases[i].path, b->atlases[i].path);
        assert_int_equal(a->atlases[i].labels == NULL, b->atlases[i].labels == NULL);
        if (a->atlases[i].labels) assert_string_equal(a->atlases[i].labels, b->atlases[i].labels);
    }
    assert_int_equal(a->n_stages, b->n_stages);
    for (int i = 0; i < a->n_stages; i++) {
        assert_string_equal(a->stages[i].name, b->stages[i].name);
        assert_ptr_equal(a->stages[i].kind, b->stages[i].kind);
        params_equal(&a->stages[i].with, &b->stages[i].with);
        params_equal(&a->stage_slurm[i], &b->stage_slurm[i]);
    }
    params_equal(&a->slurm, &b->slurm);
}

static void roundtrip(const char *file, const char *y, const bgfm_stage_kind *const *kinds) {
    bgfm_pipeline p, q;
    bgfm_err e;
    bgfm_err_clear(&e);
    int rc = config_parse_kinds(file, y, strlen(y), kinds, &p, &e);
    if (rc) print_error("%s\n", e.msg);
    assert_int_equal(rc, 0);
    char *txt = resolved_text(&p);
    /* re-parsed from elsewhere: every path is absolute, so nothing moves */
    rc = config_parse_kinds("/elsewhere/resolved.yaml", txt, strlen(txt), kinds, &q, &e);
    if (rc) print_error("%s\n---\n%s\n", e.msg, txt);
    assert_int_equal(rc, 0);
    pipelines_equal(&p, &q);
    char *txt2 = resolved_text(&q);
    /* a fixed point, apart from the header comment naming the file */
    assert_string_equal(strchr(txt, '\n'), strchr(txt2, '\n'));
    free(txt);
    free(txt2);
    config_free(&p);
    config_free(&q);
}

static void test_resolved_reparses(void **st) {
    (void)st;
    roundtrip(FILE_, HEAD "stages:\n  - {name: s1, uses: toy}\n", test_kinds);
    roundtrip("rel/p.yaml",
              "name: x\nseed: 18446744073709551\non_error: skip\ninputs: {bids: 'a b/c', "
              "participants: \"q\\\"uote.tsv\"}\n"
              "atlases: [{name: a, path: '#odd:name', labels: null.txt}]\n"
              "stages:\n  - name: s.1\n    uses: toy\n    with:\n      rate: 0.30000000000000004\n"
              "      lr: 1e-300\n      label: \"null\"\n      tags: []\n      big: 123\n"
              "      adjacency.threshold: -0.1\n"
              "    slurm: {account: '~', extra: ['--x=\"y\"', --mail-type=END], time: 90}\n"
              "  - {name: s2, uses: toy2, with: {need: 0}}\n"
              "slurm: {qos: 'yes', constraint: 'a&b|c', mem: 1000}\n",
              test_kinds);
    /* an integer option's word, and a number after it */
    roundtrip(FILE_, HEAD "stages:\n  - {name: s1, uses: toy, with: {rank: auto}}\n"
              "  - {name: s2, uses: toy, with: {rank: 0}}\n", test_kinds);
    bgfm_pipeline p;
    bgfm_err e;
    assert_int_equal(parse(HEAD "stages:\n  - {name: s1, uses: toy, with: {rank: auto}}\n"
                           "  - {name: s2, uses: toy, with: {rank: 12}}\n  - {name: s3, uses: toy}\n",
                           &p, &e), 0);
    assert_string_equal(params_word(&p.stages[0].with, "rank"), "auto");
    assert_int_equal(params_int(&p.stages[0].with, "rank"), 0);
    assert_null(params_word(&p.stages[1].with, "rank"));
    assert_int_equal(params_int(&p.stages[1].with, "rank"), 12);
    assert_null(params_word(&p.stages[2].with, "rank"));
    assert_int_equal(params_int(&p.stages[2].with, "rank"), 4);
    config_free(&p);
}

static void test_params_write_canonical(void **st) {
    (void)st;
    bgfm_pipeline p;
    bgfm_err e;
    assert_int_equal(parse(HEAD "stages:\n  - name: s1\n    uses: toy\n    with:\n"
                                "      adjacency.rule: pos\n      rate: 0.25\n"
                                "      label: 'a: b'\n      tags: [\"x\"]\n      rank: auto\n",
                           &p, &e),
                     0);
    char *txt = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&txt, &n);
    assert_int_equal(params_write(&p.stages[0].with, f, 2), 0);
    fclose(f);
    assert_string_equal(txt, "  flag: true\n"
                             "  count: 3\n"
                             "  rate: 0.25\n"
                             "  mode: fast\n"
                             "  label: \"a: b\"\n"
                             "  tags: [\"x\"]\n"
                             "  adjacency:\n"
                             "    threshold: 0.3\n"
                             "    rule: pos\n"
                             "  lr: 0.001\n"
                             "  rank: auto\n");
    free(txt);
    config_free(&p);
}

/* ---------------------------------------------------------------- error classes */

static void test_syntax_errors(void **st) {
    (void)st;
    expect_err(HEAD "stages: [{name: s1, uses: toy}\n",
               "/cfg/p.yaml:7:1: YAML syntax error: did not find expected ',' or ']' (while "
               "parsing a flow sequence at line 6, column 9)");
    expect_err("name: demo\n  bad: 1\n",
               "/cfg/p.yaml:2:6: YAML syntax error: mapping values are not allowed in this "
               "context");
    expect_err("name: demo\n\tinputs: {}\n",
               "/cfg/p.yaml:2:1: YAML syntax error: found a tab character that violates "
               "indentation (while scanning a plain scalar at line 1, column 7)");
    expect_err("name: \"d\xff\"\n", "/cfg/p.yaml:1:9: YAML syntax error: invalid leading UTF-8 "
                                   "octet (the file must be UTF-8 text)");
}

static void test_unknown_keys(void **st) {
    (void)st;
    expect_err("nmae: demo\n", "/cfg/p.yaml:1:1: unknown key (key 'nmae'); did you mean 'name'?");
    expect_err("name: d\nstagse: []\n",
               "/cfg/p.yaml:2:1: unknown key (key 'stagse'); did you mean 'stages'?");
    expect_err("name: d\ninputs: {bids: x, label_colum: y}\n",
               "/cfg/p.yaml:2:19: unknown key (key 'inputs.label_colum'); did you mean "
               "'label_column'?");
    expect_err("name: d\nzzzzzzzzzz: 1\n",
               "/cfg/p.yaml:2:1: unknown key (accepted here: name, workdir, seed, on_error, "
               "max_memory_per_rank, inputs, atlases, stages, slurm) (key 'zzzzzzzzzz')");
    expect_err(HEAD "stages:\n  - {name: s1, uses: toy, with: {adjacency: {treshold: 0.2}}}\n",
               "/cfg/p.yaml:7:46: unknown key (key 'stages.s1.with.adjacency.treshold'); did "
               "you mean 'threshold'?");
    expect_err(HEAD "stages:\n  - {name: s1, uses: toy, with: {coutn: 2}}\n",
               "/cfg/p.yaml:7:34: unknown key (key 'stages.s1.with.coutn'); did you mean "
               "'count'?");
    expect_err(HEAD "stages:\n  - {name: s1, uses: toy, wiht: {}}\n",
               "/cfg/p.yaml:7:27: unknown key (key 'stages.s1.wiht'); did you mean 'with'?");
    expect_err(HEAD "stages:\n  - {uses: toy, nmae: s}\n",
               "/cfg/p.yaml:7:17: unknown key (key 'stages[0].nmae'); did you mean 'name'?");
    expect_err("name: d\natlases:\n  - {name: a, paht: x}\n",
               "/cfg/p.yaml:3:15: unknown key (key 'atlases.a.paht'); did you mean 'path'?");
    expect_err("name: d\nslurm: {ntasks_per_nod: 2}\n",
               "/cfg/p.yaml:2:9: unknown key (key 'slurm.ntasks_per_nod'); did you mean "
               "'ntasks_per_node'?");
    expect_err(HEAD "stages:\n  - {name: s1, uses: toy, slurm: {partion: x}}\n",
               "/cfg/p.yaml:7:35: unknown key (key 'stages.s1.slurm.partion'); did you mean "
               "'partition'?");
    /* a map where the table has a scalar, and a scalar where it has a group */
    expect_err(HEAD "stages:\n  - {name: s1, uses: toy, with: {adjacency: 0.3}}\n",
               "/cfg/p.yaml:7:45: expected a mapping of keys (adjacency: {key: value}), got a "
               "scalar (key 'stages.s1.with.adjacency')");
    expect_err(HEAD "stages:\n  - {name: s1, uses: toy, with: {rate: {x: 1}}}\n",
               "/cfg/p.yaml:7:40: expected a number, got a mapping (key 'stages.s1.with.rate')");
}

static void test_duplicates(void **st) {
    (void)st;
    expect_err("name: a\nseed: 1\nname: b\n",
               "/cfg/p.yaml:3:1: duplicate key (first given at line 1, column 1) (key 'name')");
    expect_err(HEAD "stages:\n  - {name: s1, uses: toy, with: {rate: 0.1, rate: 0.2}}\n",
               "/cfg/p.yaml:7:45: duplicate key (first given at line 7, column 34) (key "
               "'stages.s1.with.rate')");
    expect_err(HEAD "stages:\n  - {name: s1, uses: toy, with: {adjacency: {rule: pos}, "
                    "adjacency.rule: abs}}\n",
               "/cfg/p.yaml:7:58: key given twice (first at line 7, column 52) (key "
               "'stages.s1.with.adjacency.rule')");
    expect_err(HEAD "stages:\n  - {name: s1, uses: toy}\n  - {name: s1, uses: toy}\n",
               "/cfg/p.yaml:8:12: duplicate stage name 's1' (first at line 7) (key "
               "'stages.s1.name')");
    expect_err("name: d\natlases:\n  - {name: a, path: x}\n  - {name: a, path: y}\n",
               "/cfg/p.yaml:4:12: duplicate atlas name 'a' (first at line 3) (key "
               "'atlases.a.name')");
    expect_err("name: d\ninputs: {bids: x, bids: y}\n",
               "/cfg/p.yaml:2:19: duplicate key (first given at line 2, column 10) (key "
               "'inputs.bids')");
}

static void test_missing_required(void **st) {
    (void)st;
    expect_err("seed: 1\n", "/cfg/p.yaml:1:1: missing required key (key 'name')");
    expect_err("name: d\n", "/cfg/p.yaml:1:1: missing required key (key 'inputs')");
    expect_err("name: d\ninputs: {label_column: g}\n",
               "/cfg/p.yaml:2:9: missing required key (key 'inputs.bids')");
    expect_err("name: d\ninputs: {bids: b}\n",
               "/cfg/p.yaml:1:1: missing required key (key 'atlases')");
    expect_err("name: d\ninputs: {bids: b}\natlases: [{name: a, path: p}]\n",
               "/cfg/p.yaml:1:1: missing required key (key 'stages')");
    expect_err("name: d\natlases: [{name: a}]\n",
               "/cfg/p.yaml:2:11: missing required key (key 'atlases.a.path')");
    expect_err(HEAD "stages:\n  - name: s\n",
               "/cfg/p.yaml:7:5: missing required key (key 'stages.s.uses')");
    expect_err(HEAD "stages:\n  - {name: s, uses: toy2}\n",
               "/cfg/p.yaml:7:5: missing required key (key 'stages.s.with.need')");
    expect_err(HEAD "stages:\n  - {name: s, uses: toy2, with: {}}\n",
               "/cfg/p.yaml:7:33: missing required key (key 'stages.s.with.need')");
    expect_err("name: d\natlases: []\n",
               "/cfg/p.yaml:2:10: expected a list of at least one atlas ({name: ..., path: "
               "...}) (key 'atlases')");
    expect_err(HEAD "stages: {name: s}\n",
               "/cfg/p.yaml:6:9: expected a list of at least one stage ({name: ..., uses: ...}) "
               "(key 'stages')");
}

static void test_stage_kinds(void **st) {
    (void)st;
    expect_err(HEAD "stages:\n  - {name: s, uses: tyo}\n",
               "/cfg/p.yaml:7:21: unknown stage kind 'tyo' (known kinds: toy, toy2) (key "
               "'stages.s.uses'); did you mean 'toy'?");
    expect_err(HEAD "stages:\n  - {name: s, uses: connectivity}\n",
               "/cfg/p.yaml:7:21: unknown stage kind 'connectivity' (known kinds: toy, toy2) "
               "(key 'stages.s.uses')");
    /* the real registry, whatever it holds right now */
    const char *y = HEAD "stages:\n  - {name: s, uses: no_such_kind}\n";
    bgfm_pipeline p;
    bgfm_err e;
    bgfm_err_clear(&e);
    assert_int_equal(config_parse(FILE_, y, strlen(y), &p, &e), BGFM_EUSAGE);
    assert_non_null(strstr(e.msg, "/cfg/p.yaml:7:21: unknown stage kind 'no_such_kind' (known "
                                  "kinds: "));
    assert_non_null(strstr(e.msg, "(key 'stages.s.uses')"));
}

static void test_types(void **st) {
    (void)st;
#define W(x) HEAD "stages:\n  - {name: s, uses: toy, with: {" x "}}\n"
    /* column 36 is where the value of the first `with` key starts in W("k: v") */
    expect_err(W("flag: yes"), "/cfg/p.yaml:7:39: expected true or false, got 'yes' (YAML 1.1 "
                               "spellings such as yes/no/on/off are not accepted: write true) "
                               "(key 'stages.s.with.flag')");
    expect_err(W("flag: Off"), "/cfg/p.yaml:7:39: expected true or false, got 'Off' (YAML 1.1 "
                               "spellings such as yes/no/on/off are not accepted: write false) "
                               "(key 'stages.s.with.flag')");
    expect_err(W("flag: \"true\""), "/cfg/p.yaml:7:39: expected true or false, got the quoted "
                                    "string \"true\" (remove the quotes) (key "
                                    "'stages.s.with.flag')");
    expect_err(W("flag: 1"), "/cfg/p.yaml:7:39: expected true or false, got '1' (key "
                             "'stages.s.with.flag')");
    expect_err(W("count: \"5\""), "/cfg/p.yaml:7:40: expected an integer, got the quoted string "
                                  "\"5\" (remove the quotes) (key 'stages.s.with.count')");
    expect_err(W("count: 0x10"), "/cfg/p.yaml:7:40: expected a decimal integer, got '0x10' (key "
                                 "'stages.s.with.count')");
    expect_err(W("count: 1.5"), "/cfg/p.yaml:7:40: expected a decimal integer, got '1.5' (key "
                                "'stages.s.with.count')");
    expect_err(W("count: 1e3"), "/cfg/p.yaml:7:40: expected a decimal integer, got '1e3' (key "
                                "'stages.s.with.count')");
    expect_err(W("count: 010"), "/cfg/p.yaml:7:40: expected a decimal integer, got '010' "
                                "(leading zeros are not allowed: YAML 1.1 reads them as octal) "
                                "(key 'stages.s.with.count')");
    expect_err(W("count: 101"), "/cfg/p.yaml:7:40: 101 is out of range: must be between 1 and "
                                "100 (key 'stages.s.with.count')");
    expect_err(W("big: 0"), "/cfg/p.yaml:7:38: 0 is out of range: must be at least 1 (key "
                            "'stages.s.with.big')");
    expect_err(W("big: 9223372036854775808"),
               "/cfg/p.yaml:7:38: integer '9223372036854775808' does not fit in 64 bits (key "
               "'stages.s.with.big')");
    expect_err(W("rate: \"0.1\""), "/cfg/p.yaml:7:39: expected a number, got the quoted string "
                                   "\"0.1\" (remove the quotes) (key 'stages.s.with.rate')");
    expect_err(W("rate: .nan"), "/cfg/p.yaml:7:39: expected a finite decimal number, got '.nan' "
                                "(key 'stages.s.with.rate')");
    expect_err(W("rate: .inf"), "/cfg/p.yaml:7:39: expected a finite decimal number, got '.inf' "
                                "(key 'stages.s.with.rate')");
    expect_err(W("lr: 1e999"), "/cfg/p.yaml:7:37: '1e999' is too large (not a finite double) "
                               "(key 'stages.s.with.lr')");
    expect_err(W("rate: 1.5"), "/cfg/p.yaml:7:39: 1.5 is out of range: must be between 0 and 1 "
                               "(key 'stages.s.with.rate')");
    expect_err(W("rate: 0x1p-3"), "/cfg/p.yaml:7:39: expected a finite decimal number, got "
                                  "'0x1p-3' (key 'stages.s.with.rate')");
    expect_err(W("rank: atuo"), "/cfg/p.yaml:7:39: expected a decimal integer or one of: auto; "
                                "got 'atuo' (key 'stages.s.with.rank'); did you mean 'auto'?");
    expect_err(W("rank: 17"), "/cfg/p.yaml:7:39: 17 is out of range: must be between 0 and 16 "
                              "(key 'stages.s.with.rank')");
    expect_err(W("rank: 1.5"), "/cfg/p.yaml:7:39: expected a decimal integer or one of: auto; "
                               "got '1.5' (key 'stages.s.with.rank')");
    expect_err(W("mode: slo"), "/cfg/p.yaml:7:39: 'slo' is not one of: fast, slow, exact (key "
                               "'stages.s.with.mode'); did you mean 'slow'?");
    expect_err(W("mode: [fast]"), "/cfg/p.yaml:7:39: expected one of: fast, slow, exact, got a "
                                  "list (key 'stages.s.with.mode')");
    expect_err(W("label: ''"), "/cfg/p.yaml:7:40: empty string (key 'stages.s.with.label')");
    expect_err(W("label: \"a\\nb\""), "/cfg/p.yaml:7:40: control characters (newline, tab, ...) "
                                      "are not allowed in values (key 'stages.s.with.label')");
    expect_err(W("tags: x"), "/cfg/p.yaml:7:39: expected a list ([a, b] or one '- item' per "
                             "line), got a scalar (key 'stages.s.with.tags')");
    expect_err(W("tags: [a, {b: 1}]"), "/cfg/p.yaml:7:43: list items must be non-empty scalars, "
                                       "got a mapping (key 'stages.s.with.tags')");
    expect_err(W("rate: "), "/cfg/p.yaml:7:39: no value given (write one, or remove the key to "
                            "use the default) (key 'stages.s.with.rate')");
    expect_err(W("label: ~"), "/cfg/p.yaml:7:40: no value given (write one, or remove the key) "
                              "(key 'stages.s.with.label')");
    expect_err("name: d\nseed: -1\n", "/cfg/p.yaml:2:7: -1 is out of range: must be at least 0 "
                                      "(key 'seed')");
    expect_err("name: d\non_error: ignore\n",
               "/cfg/p.yaml:2:11: 'ignore' is not one of: fail, skip (key 'on_error')");
    expect_err("name: d\nslurm: {launcher: srn}\n",
               "/cfg/p.yaml:2:19: 'srn' is not one of: auto, srun, mpirun (key "
               "'slurm.launcher'); did you mean 'srun'?");
    expect_err("name: d\nslurm: {nodes: 0}\n",
               "/cfg/p.yaml:2:16: 0 is out of range: must be between 1 and 1048576 (key "
               "'slurm.nodes')");
    expect_err("name: d\nslurm: {time: 1:00:00:00}\n",
               "/cfg/p.yaml:2:15: '1:00:00:00' is not a Slurm time limit (write MINUTES, "
               "\"HH:MM:SS\" or \"D-HH:MM:SS\") (key 'slurm.time')");
    expect_err("name: d\nslurm: {mem: 16 GB}\n",
               "/cfg/p.yaml:2:14: '16 GB' is not a Slurm memory size (digits with an optional K, "
               "M, G or T suffix, e.g. 16G) (key 'slurm.mem')");
    expect_err("name: d\nslurm: {extra: [\"#SBATCH --x\"]}\n",
               "/cfg/p.yaml:2:16: '#SBATCH --x' is not an sbatch option (items look like "
               "\"--gres=gpu:1\") (key 'slurm.extra')");
    expect_err("name: d\nslurm: {extra: [\"--a\\nb\"]}\n",
               "/cfg/p.yaml:2:17: control characters (newline, tab, ...) are not allowed in "
               "values (key 'slurm.extra')");
#undef W
}

static void test_names(void **st) {
    (void)st;
    expect_err("name: 'a b'\n", "/cfg/p.yaml:1:7: pipeline name 'a b' may only hold letters, "
                                "digits, '_', '-' and '.' (not first) (key 'name')");
    expect_err("name: .hidden\n", "/cfg/p.yaml:1:7: pipeline name '.hidden' may only hold "
                                  "letters, digits, '_', '-' and '.' (not first) (key 'name')");
    expect_err("name: d\natlases: [{name: a.b, path: x}]\n",
               "/cfg/p.yaml:2:18: atlas name 'a.b' may only hold letters, digits, '_' and '-' "
               "(key 'atlases[0].name')");
    expect_err(HEAD "stages: [{name: ../up, uses: toy}]\n",
               "/cfg/p.yaml:6:17: stage name '../up' may only hold letters, digits, '_', '-' and "
               "'.' (not first): it names a directory (key 'stages[0].name')");
}

static void test_validate_hook(void **st) {
    (void)st;
    expect_err(HEAD "stages:\n  - name: s\n    uses: toy\n    with: {count: 60}\n",
               "/cfg/p.yaml:9:19: count above 50 needs mode: slow (key 'stages.s.with.count')");
    bgfm_pipeline p;
    bgfm_err e;
    assert_int_equal(parse(HEAD "stages:\n  - {name: s, uses: toy, with: {count: 60, mode: "
                                "slow}}\n", &p, &e), 0);
    config_free(&p);
}

static void test_yaml_features_rejected(void **st) {
    (void)st;
    expect_err("name: &n demo\n", "/cfg/p.yaml:1:7: YAML anchor '&n' is not allowed: anchors "
                                  "and aliases are rejected (they can expand a small file into a "
                                  "huge one); write the value out");
    expect_err("name: d\nseed: *s\n", "/cfg/p.yaml:2:7: YAML alias '*s' is not allowed: anchors "
                                      "and aliases are rejected (they can expand a small file "
                                      "into a huge one); write the value out");
    expect_err("name: !custom d\n", "/cfg/p.yaml:1:7: YAML tag '!custom' is not allowed (only "
                                    "the standard scalar tags !!str, !!int, !!float, !!bool and "
                                    "!!null are)");
    expect_err("name: d\ninputs: !!set {bids: x}\n",
               "/cfg/p.yaml:2:9: YAML tag 'tag:yaml.org,2002:set' is not allowed (only the "
               "standard scalar tags !!str, !!int, !!float, !!bool and !!null are)");
    expect_err(HEAD "seed: !!str 5\n", "/cfg/p.yaml:6:7: expected an integer, got the quoted "
                                       "string \"5\" (remove the quotes) (key 'seed')");
    expect_err("name: d\n---\nname: e\n",
               "/cfg/p.yaml:2:1: a second YAML document: a pipeline file holds exactly one "
               "(remove the '---' line and what follows it)");
    expect_err("", "/cfg/p.yaml:1:1: the pipeline file is empty (it needs name:, inputs:, "
                   "atlases: and stages:)");
    expect_err("# only a comment\n", "/cfg/p.yaml:1:1: the pipeline file is empty (it needs "
                                     "name:, inputs:, atlases: and stages:)");
    expect_err("- a\n- b\n", "/cfg/p.yaml:1:1: the pipeline file must be a mapping of keys "
                             "(name:, inputs:, atlases:, stages:, ...)");
    expect_err("name: d\n[a]: 1\n", "/cfg/p.yaml:2:1: keys must be plain words, got a list");
    /* a standard tag is fine */
    bgfm_pipeline p;
    bgfm_err e;
    assert_int_equal(parse(HEAD "seed: !!int 5\nstages: [{name: s, uses: toy}]\n", &p, &e), 0);
    assert_int_equal(p.seed, 5);
    config_free(&p);
}

static void test_alias_bomb_fast(void **st) {
    (void)st;
    char y[4096];
    size_t n = (size_t)snprintf(y, sizeof y, "a0: &a0 [lol, lol, lol, lol, lol, lol, lol]\n");
    for (int i = 1; i < 10; i++)
        n += (size_t)snprintf(y + n, sizeof y - n, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, "
                              "*a%d, *a%d, *a%d, *a%d]\n", i, i, i - 1, i - 1, i - 1, i - 1,
                              i - 1, i - 1, i - 1, i - 1, i - 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect_err(y, "/cfg/p.yaml:1:5: YAML anchor '&a0' is not allowed: anchors and aliases are "
                  "rejected (they can expand a small file into a huge one); write the value out");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    assert_true(dt < 0.5);
}

static void test_limits(void **st) {
    (void)st;
    /* nesting: 32 levels are fine for the reader (rejected later as a wrong type),
     * 33 are refused while reading */
    char y[512];
    int n = snprintf(y, sizeof y, "name: d\nseed: ");
    for (int i = 0; i < 31; i++) y[n++] = '[';
    for (int i = 0; i < 31; i++) y[n++] = ']';
    snprintf(y + n, sizeof y - (size_t)n, "\n");
    expect_err(y, "/cfg/p.yaml:2:7: expected an integer, got a list (key 'seed')");
    n = snprintf(y, sizeof y, "name: d\nseed: ");
    for (int i = 0; i < 40; i++) y[n++] = '[';
    for (int i = 0; i < 40; i++) y[n++] = ']';
    snprintf(y + n, sizeof y - (size_t)n, "\n");
    expect_err(y, "/cfg/p.yaml:2:38: YAML nesting deeper than 32 levels");
    /* size */
    size_t big = (size_t)CONFIG_MAX_BYTES + 1;
    char *b = malloc(big + 1);
    assert_non_null(b);
    memset(b, ' ', big);
    memcpy(b, "name: d\n#", 9);
    b[big] = '\0';
    bgfm_pipeline p;
    bgfm_err e;
    bgfm_err_clear(&e);
    assert_int_equal(config_parse_kinds(FILE_, b, big, test_kinds, &p, &e), BGFM_EUSAGE);
    assert_string_equal(e.msg, "/cfg/p.yaml: the pipeline file has 1048577 bytes; at most 1048576 "
                               "(1 MiB) are accepted");
    free(b);
}

static void test_nearest(void **st) {
    (void)st;
    const char *const c[] = {"threshold", "rule", "measure", "rwse_steps", "lr"};
    assert_string_equal(optvalue_nearest("treshold", c, 5), "threshold");
    assert_string_equal(optvalue_nearest("thresohld", c, 5), "threshold"); /* transposition */
    assert_string_equal(optvalue_nearest("THRESHOLD", c, 5), "threshold");
    assert_string_equal(optvalue_nearest("rwse_step", c, 5), "rwse_steps");
    assert_string_equal(optvalue_nearest("rul", c, 5), "rule");
    assert_null(optvalue_nearest("epochs", c, 5));
    assert_null(optvalue_nearest("x", c, 5)); /* 'lr' is 2 edits from 'x': too far for its size */
    assert_null(optvalue_nearest("anything", c, 0));
}

/* Every registered kind parses with its defaults (or fails as a user error, e.g. a
 * required option), and its resolved output re-parses identically: this checks the
 * defaults of every kind's table. Skips nothing: an empty registry checks nothing. */
static void test_registered_kinds(void **st) {
    (void)st;
    const bgfm_stage_kind *const *k = stage_kinds();
    for (int i = 0; k[i]; i++) {
        char y[1024];
        snprintf(y, sizeof y, HEAD "stages:\n  - {name: s, uses: %s}\n", k[i]->name);
        bgfm_pipeline p;
        bgfm_err e;
        bgfm_err_clear(&e);
        int rc = config_parse(FILE_, y, strlen(y), &p, &e);
        if (rc && rc != BGFM_EUSAGE) print_error("kind %s: %s\n", k[i]->name, e.msg);
        assert_true(rc == 0 || rc == BGFM_EUSAGE);
        if (rc) {
            assert_true(!strncmp(e.msg, "/cfg/p.yaml:", 12));
            continue;
        }
        assert_ptr_equal(p.stages[0].kind, k[i]);
        assert_ptr_equal(stage_kind_find(k[i]->name), k[i]);
        for (int j = 0; j < k[i]->n_opts; j++)
            if (k[i]->opts[j].def && k[i]->opts[j].def != bgfm_opt_required)
                assert_int_equal(p.stages[0].with.v[j].state, 1);
        config_free(&p);
        roundtrip(FILE_, y, NULL);
    }
}

/* inputs.datasets: entries resolved (defaults, inherited label column, paths), written
 * back and parsed again to the same values, and each refusal with its position. */
static void test_datasets(void **st) {
    (void)st;
    const char *y =
        "name: d\ninputs:\n  label_column: dx\n  datasets:\n"
        "    - {name: a, bids: /da, role: pretrain}\n"
        "    - {name: b-2, bids: rel/b, role: downstream, label_column: group, site_column: site,\n"
        "       t_r: 0.72, filter: \"qc != n/a\", task: rest, run: \"1\", participants: p.tsv,\n"
        "       label_map: [\"1=patient\", \"2=control\"]}\n"
        "atlases: [{name: x, path: /x.nii}]\nstages: [{name: s, uses: toy}]\n";
    bgfm_pipeline p, q;
    bgfm_err e;
    assert_int_equal(parse(y, &p, &e), 0);
    assert_int_equal(p.n_datasets, 2);
    assert_null(p.bids);
    assert_null(p.participants);
    const bgfm_dataset_cfg *a = &p.datasets[0], *b = &p.datasets[1];
    assert_string_equal(a->name, "a");
    assert_int_equal(a->role, BGFM_ROLE_PRETRAIN);
    assert_string_equal(a->participants, "/da/participants.tsv");
    assert_string_equal(a->label_column, "dx");
    assert_int_equal(a->label_given, 1);
    assert_null(a->site_column);
    assert_null(a->filter);
    assert_true(a->t_r == 0.0);
    assert_string_equal(b->bids, "/cfg/rel/b");
    assert_string_equal(b->participants, "/cfg/p.tsv");
    assert_string_equal(b->label_column, "group");
    assert_string_equal(b->site_column, "site");
    assert_string_equal(b->filter, "qc != n/a");
    assert_string_equal(b->entity[0], "rest");
    assert_null(b->entity[1]);
    assert_string_equal(b->entity[3], "1");
    assert_true(b->t_r == 0.72);
    assert_int_equal(b->role, BGFM_ROLE_DOWNSTREAM);
    assert_int_equal(config_dataset_role(&p, "b-2"), BGFM_ROLE_DOWNSTREAM);
    assert_int_equal(config_dataset_role(&p, ""), BGFM_ROLE_BOTH);
    assert_int_equal(config_dataset_role(NULL, "a"), BGFM_ROLE_BOTH);
    char *txt = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&txt, &n);
    config_write_resolved(&p, f);
    fclose(f);
    assert_int_equal(parse(txt, &q, &e), 0);
    assert_int_equal(q.n_datasets, 2);
    for (int i = 0; i < 2; i++) {
        assert_string_equal(p.datasets[i].name, q.datasets[i].name);
        assert_string_equal(p.datasets[i].bids, q.datasets[i].bids);
        assert_string_equal(p.datasets[i].participants, q.datasets[i].participants);
        assert_string_equal(p.datasets[i].label_column, q.datasets[i].label_column);
        assert_int_equal(p.datasets[i].role, q.datasets[i].role);
        assert_true(p.datasets[i].t_r == q.datasets[i].t_r);
    }
    assert_string_equal(q.datasets[1].filter, "qc != n/a");
    assert_string_equal(q.datasets[1].entity[3], "1");
    assert_int_equal(q.datasets[1].n_label_map, 2);
    assert_string_equal(q.datasets[1].label_map[1], "2=control");
    free(txt);
    config_free(&q);
    config_free(&p);
    /* an entry without label_column and no inputs.label_column: the default, not given */
    assert_int_equal(parse("name: d\ninputs: {datasets: [{name: a, bids: /a, role: both}]}\n"
                           "atlases: [{name: x, path: /x.nii}]\nstages: [{name: s, uses: toy}]\n",
                           &p, &e), 0);
    assert_string_equal(p.datasets[0].label_column, "diagnosis");
    assert_int_equal(p.datasets[0].label_given, 0);
    config_free(&p);
#define DS_TAIL "atlases: [{name: x, path: /x.nii}]\nstages: [{name: s, uses: toy}]\n"
    expect_err("name: d\ninputs:\n  datasets:\n    - {name: a, bids: /a, role: pretrain}\n"
               "    - {name: a, bids: /b, role: both}\n" DS_TAIL,
               "/cfg/p.yaml:5:14: duplicate dataset name 'a' (first at line 4); every dataset "
               "needs its own name (key 'inputs.datasets.a.name')");
    expect_err("name: d\ninputs:\n  datasets:\n    - {name: a, bids: /a, role: }\n" DS_TAIL,
               "/cfg/p.yaml:4:33: no value given (write one, or remove the key) (key "
               "'inputs.datasets.a.role')");
    expect_err("name: d\ninputs:\n  datasets:\n    - {name: a, bids: /a}\n" DS_TAIL,
               "/cfg/p.yaml:4:7: missing required key (key 'inputs.datasets.a.role')");
    expect_err("name: d\ninputs:\n  datasets:\n    - {name: a, bids: /a, role: both, filter: qc}\n"
               DS_TAIL, "/cfg/p.yaml:4:47: 'qc' is not a filter; write \"COLUMN != VALUE\" or "
               "\"COLUMN == VALUE\" (e.g. \"diagnosis != n/a\") (key 'inputs.datasets.a.filter')");
    expect_err("name: d\ninputs:\n  datasets:\n    - {name: a, bids: /a, role: both, task: re_st}\n"
               DS_TAIL, "/cfg/p.yaml:4:45: a BIDS entity value holds only letters and digits "
               "(the X of _task-X_), got 're_st' (key 'inputs.datasets.a.task')");
    expect_err("name: d\ninputs:\n  bids: /b\n  datasets: [{name: a, bids: /a, role: both}]\n"
               DS_TAIL, "/cfg/p.yaml:3:9: give either inputs.bids (one dataset) or "
               "inputs.datasets (several), not both; move this folder into a datasets entry "
               "(key 'inputs.bids')");
    expect_err("name: d\ninputs: {datasets: []}\n" DS_TAIL,
               "/cfg/p.yaml:2:20: expected a list of at least one dataset ({name: ..., bids: ..., "
               "role: pretrain|downstream|both}) (key 'inputs.datasets')");
    expect_err("name: d\ninputs: {datasets: [{name: a, bids: /a, role: both, rol: x}]}\n" DS_TAIL,
               "/cfg/p.yaml:2:53: unknown key (key 'inputs.datasets.a.rol'); did you mean 'role'?");
    expect_err("name: d\ninputs:\n  datasets:\n    - {name: a, bids: /a, role: both, label_map: [x]}\n"
               DS_TAIL, "/cfg/p.yaml:4:50: item 'x' is not VALUE=LABEL (e.g. \"1=patient\") (key "
               "'inputs.datasets.a.label_map')");
#undef DS_TAIL
}

/* The reference names every key of every table. */
static void test_doc_complete(void **st) {
    (void)st;
    char *txt = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&txt, &n);
    assert_int_equal(config_doc_yaml(f), 0);
    fclose(f);
    char want[300];
    for (int t = 0; t < CONFIG_TABLE_COUNT; t++) {
        int no = 0;
        const bgfm_opt *o = config_table_opts((config_table)t, &no);
        for (int i = 0; i < no; i++) {
            snprintf(want, sizeof want, "| `%s` |", o[i].key);
            assert_non_null(strstr(txt, want));
        }
    }
    const bgfm_stage_kind *const *k = stage_kinds();
    for (int i = 0; k[i]; i++) {
        snprintf(want, sizeof want, "### `uses: %s`", k[i]->name);
        assert_non_null(strstr(txt, want));
        for (int j = 0; j < k[i]->n_opts; j++) {
            snprintf(want, sizeof want, "| `%s` |", k[i]->opts[j].key);
            assert_non_null(strstr(txt, want));
        }
    }
    free(txt);
}

/* `test_config --alloc-probe`: one parse + resolved write, for tests/e2e/config_alloc.sh,
 * which runs it with BGFM_FAIL_ALLOC_AFTER=1,2,...: every failing allocation must end
 * in BGFM_ENOMEM with a message, never a crash or another code. */
static int alloc_probe(void) {
    const char *y = HEAD "  - {name: b, path: b.nii, labels: l.txt}\n"
                    "stages:\n  - {name: s, uses: toy, with: {tags: [x, y], adjacency: {rule: "
                    "pos}}, slurm: {extra: [--a], time: 10}}\n  - {name: t, uses: toy2, with: "
                    "{need: 1}}\nslurm: {partition: x, extra: [--c]}\n";
    bgfm_pipeline p;
    bgfm_err e;
    bgfm_err_clear(&e);
    int rc = config_parse_kinds(FILE_, y, strlen(y), test_kinds, &p, &e);
    if (!rc) {
        FILE *f = fopen("/dev/null", "w");
        if (!f) return 1;
        config_write_resolved(&p, f);
        fclose(f);
        config_free(&p);
    }
    printf("rc=%d %s\n", rc, e.msg);
    return rc == 0 || (rc == BGFM_ENOMEM && strstr(e.msg, "out of memory")) ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--alloc-probe")) return alloc_probe();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_filled),
        cmocka_unit_test(test_values_given),
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_slurm),
        cmocka_unit_test(test_slurm_forms),
        cmocka_unit_test(test_resolved_reparses),
        cmocka_unit_test(test_params_write_canonical),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_stage_kinds),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_validate_hook),
        cmocka_unit_test(test_yaml_features_rejected),
        cmocka_unit_test(test_alias_bomb_fast),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_nearest),
        cmocka_unit_test(test_registered_kinds),
        cmocka_unit_test(test_doc_complete),
        cmocka_unit_test(test_datasets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
