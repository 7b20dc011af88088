/* test_submit.c: unit tests of the sbatch script writer (pipeline/commands/submit.c): directives,
 * merging of stage overrides, requeue settings, hostile YAML values, shell quoting checked
 * by /bin/sh itself, and `bash -n` on every generated script. Not a Slurm test (e2e). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bgfm/child.h"
#include "bgfm/config.h"
#include "bgfm/stage.h"
#include "bgfm/submit.h"

/* Stage kinds of our own: a plain one and one named like the checkpointing pretrain. */
static const bgfm_opt none_opts[] = {
    {"unused", BGFM_OPT_INT, "1", 0, 10, NULL, "unused"},
};
static const bgfm_stage_kind k_plain = {
    "plain", "a plain kind", none_opts, 1, BGFM_ART_BIDS, BGFM_ART_NONE, BGFM_ART_TIMESERIES,
    0, NULL, NULL, NULL, NULL, 0, NULL, NULL};
static const bgfm_stage_kind k_pretrain = {
    "pretrain", "checkpointing kind", none_opts, 1, BGFM_ART_TIMESERIES, BGFM_ART_NONE,
    BGFM_ART_CHECKPOINT, 1, NULL, NULL, NULL, NULL, 0, NULL, NULL};
static const bgfm_stage_kind *const kinds[] = {&k_plain, &k_pretrain, NULL};

#define FILE_ "/cfg/p.yaml"
#define HEAD                                                                                   \
    "name: demo\n"                                                                             \
    "workdir: /w/runs/demo\n"                                                                  \
    "inputs:\n"                                                                                \
    "  bids: data/demo\n"                                                                      \
    "atlases:\n"                                                                               \
    "  - {name: aal, path: /atl/aal.nii.gz}\n"

#define WORKDIR "/w/runs/demo"
#define EXE "/opt/bgfm dir/bin/bgfm's"
#define PIPE "/cfg/p.yaml"

/* Parse `yaml`, write stage i's script. Returns the status; *text gets the script
 * (caller frees) when it is 0. */
static int gen(const char *yaml, int i, char **text, bgfm_err *e) {
    bgfm_pipeline p;
    memset(&p, 0, sizeof p);
    bgfm_err_clear(e);
    *text = NULL;
    int rc = config_parse_kinds(FILE_, yaml, strlen(yaml), kinds, &p, e);
    if (!rc) {
        size_t len = 0;
        FILE *f = open_memstream(text, &len);
        assert_non_null(f);
        rc = submit_script_write(&p, i, WORKDIR, EXE, PIPE, f, e);
        fclose(f);
        if (rc) {
            free(*text);
            *text = NULL;
        }
    }
    config_free(&p);
    return rc;
}

static void has_line(const char *text, const char *line) {
    char buf[512];
    snprintf(buf, sizeof buf, "\n%s\n", line);
    if (!strstr(text, buf)) {
        print_error("missing line '%s' in:\n%s\n", line, text);
        fail();
    }
}

static void lacks(const char *text, const char *what) {
    if (strstr(text, what)) {
        print_error("unexpected '%s' in:\n%s\n", what, text);
        fail();
    }
}

/* bash -n: the script must be syntactically valid. */
static void bash_syntax_ok(const char *text) {
    char path[] = "/tmp/bgfm-submit-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "bash -n %s", path);
    int st = system(cmd);
    unlink(path);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_directives(void **st) {
    (void)st;
    const char *y = HEAD
        "stages:\n"
        "  - {name: parc, uses: plain}\n"
        "slurm:\n"
        "  partition: compute\n"
        "  account: proj-1\n"
        "  qos: normal\n"
        "  nodes: 2\n"
        "  ntasks_per_node: 4\n"
        "  cpus_per_task: 3\n"
        "  mem: 16G\n"
        "  time: \"1-12:00:00\"\n"
        "  constraint: \"intel&(ib|opa)\"\n"
        "  extra: [\"--gres=gpu:1\", \"--exclusive\", \"--mail-type=END,FAIL\"]\n";
    char *t;
    bgfm_err e;
    assert_int_equal(gen(y, 0, &t, &e), 0);
    assert_true(!strncmp(t, "#!/bin/bash\n", 12));
    has_line(t, "#SBATCH --job-name=demo-parc");
    has_line(t, "#SBATCH --partition=compute");
    has_line(t, "#SBATCH --account=proj-1");
    has_line(t, "#SBATCH --qos=normal");
    has_line(t, "#SBATCH --nodes=2");
    has_line(t, "#SBATCH --ntasks-per-node=4");
    has_line(t, "#SBATCH --cpus-per-task=3");
    has_line(t, "#SBATCH --mem=16G");
    has_line(t, "#SBATCH --time=1-12:00:00");
    has_line(t, "#SBATCH --constraint=intel&(ib|opa)");
    has_line(t, "#SBATCH --gres=gpu:1");
    has_line(t, "#SBATCH --exclusive");
    has_line(t, "#SBATCH --mail-type=END,FAIL");
    has_line(t, "#SBATCH --output=" WORKDIR "/slurm/%x-%j.out");
    has_line(t, "#SBATCH --error=" WORKDIR "/slurm/%x-%j.out");
    has_line(t, "export OPENBLAS_NUM_THREADS=3");
    has_line(t, "stage='parc'");
    has_line(t, "bgfm='/opt/bgfm dir/bin/bgfm'\\''s'");
    has_line(t, "pipeline='" PIPE "'");
    has_line(t, "launcher='auto'");
    assert_non_null(strstr(t, "ntasks=8 "));
    assert_non_null(strstr(t, "\"${launch[@]}\" \"$bgfm\" run \"$pipeline\" --only \"$stage\""));
    assert_non_null(strstr(t, "srun --mpi=list"));
    lacks(t, "--signal");
    lacks(t, "--requeue");
    lacks(t, "scontrol requeue");
    /* every #SBATCH line comes before the first command (sbatch stops reading there) */
    const char *last = NULL, *s = t;
    while ((s = strstr(s, "\n#SBATCH")) != NULL) last = ++s;
    assert_non_null(last);
    assert_true(last < strstr(t, "\nset -u\n"));
    bash_syntax_ok(t);
    free(t);
}

static void test_defaults(void **st) {
    (void)st;
    /* no slurm: block at all: only the job name, the logs, one thread */
    const char *y = HEAD "stages:\n  - {name: parc, uses: plain}\n";
    char *t;
    bgfm_err e;
    assert_int_equal(gen(y, 0, &t, &e), 0);
    has_line(t, "#SBATCH --job-name=demo-parc");
    has_line(t, "export OPENBLAS_NUM_THREADS=1");
    lacks(t, "--partition");
    lacks(t, "--nodes");
    lacks(t, "--mem");
    lacks(t, "--time");
    assert_non_null(strstr(t, "ntasks=1 "));
    bash_syntax_ok(t);
    free(t);
}

static void test_merge(void **st) {
    (void)st;
    const char *y = HEAD
        "stages:\n"
        "  - {name: parc, uses: plain}\n"
        "  - name: pre\n"
        "    uses: pretrain\n"
        "    slurm: {partition: gpu, time: \"2-00:00:00\", cpus_per_task: 8, "
        "extra: [\"--gres=gpu:4\"], signal_grace: 120, launcher: mpirun}\n"
        "slurm: {partition: cpu, account: acc, time: \"00:30:00\", ntasks_per_node: 2, "
        "extra: [\"--exclusive\"]}\n";
    char *t;
    bgfm_err e;
    assert_int_equal(gen(y, 0, &t, &e), 0);
    has_line(t, "#SBATCH --partition=cpu");
    has_line(t, "#SBATCH --account=acc");
    has_line(t, "#SBATCH --time=00:30:00");
    has_line(t, "#SBATCH --exclusive");
    has_line(t, "export OPENBLAS_NUM_THREADS=1");
    has_line(t, "launcher='auto'");
    lacks(t, "gpu");
    free(t);

    assert_int_equal(gen(y, 1, &t, &e), 0);
    has_line(t, "#SBATCH --job-name=demo-pre");
    has_line(t, "#SBATCH --partition=gpu");
    has_line(t, "#SBATCH --account=acc");         /* inherited */
    has_line(t, "#SBATCH --ntasks-per-node=2");  /* inherited */
    has_line(t, "#SBATCH --time=2-00:00:00");
    has_line(t, "#SBATCH --cpus-per-task=8");
    has_line(t, "#SBATCH --gres=gpu:4");
    lacks(t, "--exclusive");                     /* a list replaces, it does not append */
    has_line(t, "export OPENBLAS_NUM_THREADS=8");
    has_line(t, "launcher='mpirun'");
    has_line(t, "#SBATCH --signal=B:USR1@120");
    has_line(t, "#SBATCH --requeue");
    has_line(t, "#SBATCH --open-mode=append");
    assert_non_null(strstr(t, "scontrol requeue \"$SLURM_JOB_ID\""));
    assert_non_null(strstr(t, "\"$rc\" -eq 75"));
    assert_non_null(strstr(t, "trap "));
    /* only SIGUSR1 (the time-limit warning) leads to a requeue; scancel's TERM does not */
    assert_non_null(strstr(t, "got_usr1=1"));
    assert_non_null(strstr(t, "[ \"$got_usr1\" != 1 ]"));
    bash_syntax_ok(t);
    free(t);
}

static void test_pretrain_default_grace(void **st) {
    (void)st;
    const char *y = HEAD "stages:\n  - {name: p, uses: pretrain}\n";
    char *t;
    bgfm_err e;
    assert_int_equal(gen(y, 0, &t, &e), 0);
    has_line(t, "#SBATCH --signal=B:USR1@300");
    has_line(t, "#SBATCH --requeue");
    free(t);
    /* the global block's grace applies when the stage sets none */
    const char *y2 = HEAD "stages:\n  - {name: p, uses: pretrain}\nslurm: {signal_grace: 600}\n";
    assert_int_equal(gen(y2, 0, &t, &e), 0);
    has_line(t, "#SBATCH --signal=B:USR1@600");
    free(t);
}

/* A hostile value must fail with exit 2 and a FILE:LINE:COL message naming the key,
 * either when the file is parsed or when the script is written. */
static void expect_refused(const char *slurm_block, const char *key) {
    char y[2048];
    snprintf(y, sizeof y, HEAD "stages:\n  - {name: parc, uses: plain}\nslurm:\n%s", slurm_block);
    char *t;
    bgfm_err e;
    int rc = gen(y, 0, &t, &e);
    if (rc != BGFM_EUSAGE) {
        print_error("accepted (rc %d) hostile block:\n%s\nscript:\n%s\n", rc, slurm_block,
                    t ? t : "");
        free(t);
        fail();
    }
    assert_null(t);
    assert_true(!strncmp(e.msg, FILE_ ":", strlen(FILE_ ":")));
    if (!strstr(e.msg, key)) {
        print_error("message does not name '%s': %s\n", key, e.msg);
        fail();
    }
    if (strchr(e.msg, '\n')) {
        print_error("message contains a raw newline: %s\n", e.msg);
        fail();
    }
}

static void test_hostile(void **st) {
    (void)st;
    expect_refused("  partition: \"x; rm -rf /\"\n", "slurm.partition");
    expect_refused("  partition: \"$(reboot)\"\n", "slurm.partition");
    expect_refused("  partition: \"`reboot`\"\n", "slurm.partition");
    expect_refused("  partition: \"a\\nb\"\n", "slurm.partition");
    expect_refused("  partition: \"compute\\n#SBATCH --uid=0\"\n", "slurm.partition");
    expect_refused("  partition: \"a b\"\n", "slurm.partition");
    expect_refused("  partition: \"\"\n", "slurm.partition");
    expect_refused("  account: \"'acc'\"\n", "slurm.account");
    expect_refused("  account: \"acc|x\"\n", "slurm.account");
    expect_refused("  qos: \"q>/etc/passwd\"\n", "slurm.qos");
    expect_refused("  constraint: \"a;b\"\n", "slurm.constraint");
    expect_refused("  constraint: \"$(x)\"\n", "slurm.constraint");
    expect_refused("  time: \"1:00; reboot\"\n", "slurm.time");
    expect_refused("  time: \"$(date)\"\n", "slurm.time");
    expect_refused("  mem: \"4G`id`\"\n", "slurm.mem");
    expect_refused("  extra: [\"--gres=gpu:1; reboot\"]\n", "slurm.extra");
    expect_refused("  extra: [\"--comment=$(id)\"]\n", "slurm.extra");
    expect_refused("  extra: [\"--comment=`id`\"]\n", "slurm.extra");
    expect_refused("  extra: [\"--x\\n#!/bin/sh\"]\n", "slurm.extra");
    expect_refused("  extra: [\"-A acct\"]\n", "slurm.extra");
    expect_refused("  extra: [\"--a b\"]\n", "slurm.extra");
    expect_refused("  extra: [\"--comment=a|b\"]\n", "slurm.extra");
    expect_refused("  extra: [\"--\"]\n", "slurm.extra");
    expect_refused("  extra: [\"gres=gpu\"]\n", "slurm.extra");
    expect_refused("  launcher: \"srun; id\"\n", "slurm.launcher");
    /* 300 characters: too long for any Slurm name */
    char big[400];
    memset(big, 'a', 300);
    big[300] = '\0';
    char blk[512];
    snprintf(blk, sizeof blk, "  partition: %s\n", big);
    expect_refused(blk, "slurm.partition");
}

static void test_hostile_stage_override(void **st) {
    (void)st;
    const char *y = HEAD
        "stages:\n"
        "  - {name: parc, uses: plain}\n"
        "  - name: pre\n"
        "    uses: pretrain\n"
        "    slurm:\n"
        "      partition: \"x; rm -rf /\"\n"
        "slurm: {partition: ok}\n";
    char *t;
    bgfm_err e;
    assert_int_equal(gen(y, 0, &t, &e), 0); /* stage 0 uses the clean global value */
    free(t);
    assert_int_equal(gen(y, 1, &t, &e), BGFM_EUSAGE);
    assert_non_null(strstr(e.msg, FILE_ ":12:18:"));
    assert_non_null(strstr(e.msg, "stages.pre.slurm.partition"));
}

static void test_workdir_refused(void **st) {
    (void)st;
    bgfm_pipeline p;
    memset(&p, 0, sizeof p);
    bgfm_err e;
    bgfm_err_clear(&e);
    const char *y = HEAD "stages:\n  - {name: parc, uses: plain}\n";
    assert_int_equal(config_parse_kinds(FILE_, y, strlen(y), kinds, &p, &e), 0);
    const char *bad[] = {"/w/my runs", "/w/a'b", "/w/$(id)", "/w/a\nb", "relative/dir", "/w/%j"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        bgfm_err_clear(&e);
        assert_int_equal(submit_script_write(&p, 0, bad[k], EXE, PIPE, f, &e), BGFM_EUSAGE);
        assert_non_null(strstr(e.msg, "workdir"));
        fclose(f);
        free(text);
    }
    assert_true(submit_path_ok("/scratch/u_1/runs/braingfm-8atlas.v2"));
    config_free(&p);
}

/* The quoting is checked by a shell: printf %s <quoted> must print the string back. */
static void test_shell_quote(void **st) {
    (void)st;
    const char *cases[] = {"plain", "it's", "$(reboot)", "`id`", "a b\tc", "''", "\"q\"",
                           "a\nb", "x; rm -rf /", "\\", "!bang", "*?[a]", "~root", ""};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char path[] = "/tmp/bgfm-quote-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        FILE *f = fdopen(fd, "w");
        assert_non_null(f);
        fputs("printf %s ", f);
        submit_shell_quote(f, cases[k]);
        fputc('\n', f);
        fclose(f);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "/bin/sh %s", path);
        FILE *pp = popen(cmd, "r");
        assert_non_null(pp);
        char out[256];
        size_t n = fread(out, 1, sizeof out - 1, pp);
        out[n] = '\0';
        int stt = pclose(pp);
        unlink(path);
        assert_true(WIFEXITED(stt) && WEXITSTATUS(stt) == 0);
        assert_string_equal(out, cases[k]);
    }
}

static void test_parse_jobid(void **st) {
    (void)st;
    int64_t id = 0;
    assert_int_equal(submit_parse_jobid("123\n", &id), 0);
    assert_int_equal(id, 123);
    assert_int_equal(submit_parse_jobid("4567;cluster1\n", &id), 0);
    assert_int_equal(id, 4567);
    assert_int_equal(submit_parse_jobid("89", &id), 0);
    assert_int_equal(id, 89);
    assert_int_equal(submit_parse_jobid("", &id), -1);
    assert_int_equal(submit_parse_jobid("Submitted batch job 5\n", &id), -1);
    assert_int_equal(submit_parse_jobid("12 3\n", &id), -1);
    assert_int_equal(submit_parse_jobid("12\nextra", &id), -1);
    assert_int_equal(submit_parse_jobid("99999999999999999999999\n", &id), -1);
}

/* What MPI_Init / mpirun put into bgfm's environment must not reach the job. */
static void test_env_filter(void **st) {
    (void)st;
    const char *dropped[] = {"PMIX_RANK=0", "PMIX_SERVER_URI4=1.0;tcp4://127.0.0.1:1",
                             "PMI_FD=5", "OMPI_COMM_WORLD_SIZE=2", "OMPI_MCA_ess=singleton",
                             "OMPI_MCA_ess_base_jobid=1", "OMPI_MCA_orte_hnp_uri=x",
                             "OMPI_MCA_pmix=^s1", "OMPI_UNIVERSE_SIZE=2", "OMPI_FILE_LOCATION=/t",
                             "OMPI_ARGV=submit p.yaml", "ORTE_SCHIZO_DETECTION=ORTE",
                             "PSM2_DEVICES=self,shm"};
    const char *kept[] = {"PATH=/usr/bin", "HOME=/root", "OMPI_ALLOW_RUN_AS_ROOT=1",
                          "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1", "OMPI_MCA_btl=^openib",
                          "OMPI_MCA_rmaps_base_oversubscribe=1", "SLURM_CONF=/etc/slurm.conf",
                          "LD_LIBRARY_PATH=/opt/lib", "OPENBLAS_NUM_THREADS=1",
                          "PMIXNOT=1", "MY_PMIX_=1"};
    for (size_t k = 0; k < sizeof dropped / sizeof dropped[0]; k++)
        if (child_env_keep(dropped[k])) {
            print_error("kept %s\n", dropped[k]);
            fail();
        }
    for (size_t k = 0; k < sizeof kept / sizeof kept[0]; k++)
        if (!child_env_keep(kept[k])) {
            print_error("dropped %s\n", kept[k]);
            fail();
        }
}

static void test_requeue_kinds(void **st) {
    (void)st;
    bgfm_stage_cfg s;
    memset(&s, 0, sizeof s);
    s.uses = (char *)(uintptr_t) "pretrain";
    assert_true(submit_stage_requeues(&s));
    s.uses = (char *)(uintptr_t) "plain";
    s.kind = &k_plain;
    assert_false(submit_stage_requeues(&s));
    s.uses = (char *)(uintptr_t) "other";
    s.kind = &k_pretrain; /* produces checkpoints */
    assert_true(submit_stage_requeues(&s));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_directives),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_pretrain_default_grace),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_hostile_stage_override),
        cmocka_unit_test(test_workdir_refused),
        cmocka_unit_test(test_shell_quote),
        cmocka_unit_test(test_parse_jobid),
        cmocka_unit_test(test_requeue_kinds),
        cmocka_unit_test(test_env_filter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
