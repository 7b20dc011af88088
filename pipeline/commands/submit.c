/* submit.c: `bgfm submit`: one sbatch script per stage from the pipeline's slurm: blocks,
 * submitted in order with afterok dependencies (sbatch is spawned from an argv array).
 * Not the stages' work (`bgfm run --only STAGE` inside the job does that). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bgfm/child.h"
#include "bgfm/cli.h"
#include "bgfm/config.h"
#include "bgfm/fsutil.h"
#include "bgfm/run.h"
#include "bgfm/stage.h"
#include "bgfm/submit.h"


#define SUBMIT_VALUE_MAX 256 /* longest accepted Slurm value from the file */

/* ------------------------------------------------------------------ value patterns */

static int is_alnum(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

/* Non-empty, at most SUBMIT_VALUE_MAX bytes, only letters, digits and `allowed`. */
static int word_ok(const char *s, const char *allowed) {
    size_t n = strlen(s);
    if (n == 0 || n > SUBMIT_VALUE_MAX) return 0;
    for (; *s; s++)
        if (!is_alnum(*s) && !strchr(allowed, *s)) return 0;
    return 1;
}

static int mem_ok(const char *s) {
    int digits = 0;
    while (*s >= '0' && *s <= '9') s++, digits++;
    if (!digits || digits > 15) return 0;
    if (*s && strchr("KMGTkmgt", *s)) s++;
    return *s == '\0';
}

static int time_ok(const char *s) {
    if (!strcmp(s, "UNLIMITED") || !strcmp(s, "INFINITE")) return 1;
    return word_ok(s, ":-") && strspn(s, "0123456789:-") == strlen(s) && is_alnum(s[0]);
}

/* "--name" or "--name=value": name [A-Za-z0-9-], value [A-Za-z0-9_.,:=/@%+-]. No blanks,
 * quotes, '$', '`', ';', '|', '&', '<', '>', '\\', '#' or control characters. */
static int extra_ok(const char *s) {
    if (strlen(s) > SUBMIT_VALUE_MAX || strncmp(s, "--", 2) != 0) return 0;
    const char *p = s + 2;
    int name = 0;
    while (is_alnum(*p) || *p == '-') p++, name++;
    if (!name || p[-1] == '-') return 0;
    if (*p == '\0') return 1;
    if (*p != '=') return 0;
    return p[1] == '\0' || word_ok(p + 1, "_.,:=/@%+-");
}

int submit_path_ok(const char *s) {
    return s[0] == '/' && strlen(s) < PATH_MAX && word_ok(s, "_./+,@=:~-");
}

void submit_shell_quote(FILE *f, const char *s) {
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'')
            fputs("'\\''", f);
        else
            fputc(*s, f);
    }
    fputc('\'', f);
}

/* ------------------------------------------------------------------ resolving a job */

int submit_stage_requeues(const bgfm_stage_cfg *s) {
    if (s->uses && !strcmp(s->uses, "pretrain")) return 1;
    return s->kind && s->kind->produces == BGFM_ART_CHECKPOINT;
}

/* The effective value of KEY for stage i, and the key path naming where it was given. */
static const bgfm_value *slurm_get(const bgfm_pipeline *p, int i, const char *key, char *path,
                                   size_t n) {
    const bgfm_value *v = config_slurm_value(p, i, key);
    if (v && i >= 0 && params_value(&p->stage_slurm[i], key)->state)
        snprintf(path, n, "stages.%s.slurm.%s", p->stages[i].name, key);
    else
        snprintf(path, n, "slurm.%s", key);
    return v;
}

static int bad_value(const bgfm_pipeline *p, const bgfm_value *v, const char *path,
                     const char *val, const char *want, bgfm_err *e) {
    /* Show the value with control characters made visible, never raw. */
    char shown[96];
    size_t k = 0;
    for (const char *s = val; *s && k + 5 < sizeof shown; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 32 || ch == 127) k += (size_t)snprintf(shown + k, sizeof shown - k, "\\x%02x", ch);
        else shown[k++] = (char)ch;
    }
    shown[k] = '\0';
    return config_fail_at(e, p, v->line, v->col, path,
                          "refusing Slurm value '%s%s': %s; bgfm writes it into a batch script, so "
                          "only safe characters are accepted (docs/slurm.md, \"Hostile values\")",
                          shown, val[k] && strlen(val) > k ? "..." : "", want);
}

static int str_key(const bgfm_pipeline *p, int i, const char *key, int (*ok)(const char *),
                   const char *allowed, const char *want, const char **out, bgfm_err *e) {
    char path[300];
    const bgfm_value *v = slurm_get(p, i, key, path, sizeof path);
    *out = NULL;
    if (!v || !v->s) return 0;
    if (ok ? !ok(v->s) : !word_ok(v->s, allowed)) return bad_value(p, v, path, v->s, want, e);
    *out = v->s;
    return 0;
}

static int64_t int_key(const bgfm_pipeline *p, int i, const char *key) {
    char path[300];
    const bgfm_value *v = slurm_get(p, i, key, path, sizeof path);
    return v ? v->i : 0;
}

int submit_job_resolve(const bgfm_pipeline *p, int i, submit_job *j, bgfm_err *e) {
    BGFM_ASSERT(i >= 0 && i < p->n_stages);
    memset(j, 0, sizeof *j);
    const bgfm_stage_cfg *s = &p->stages[i];
    j->job_name_pipeline = p->name ? p->name : "bgfm";
    j->stage = s->name;
    if (!word_ok(j->job_name_pipeline, "_.-") || !word_ok(j->stage, "_.-"))
        return config_fail_at(e, p, s->line, s->col, "name",
                              "pipeline name '%s' and stage name '%s' must be letters, digits, "
                              "'_', '.' or '-' to name a Slurm job",
                              j->job_name_pipeline, j->stage);
    int rc = str_key(p, i, "partition", NULL, "_.,-",
                     "a partition is letters, digits, '_', '.', '-' (',' between several)",
                     &j->partition, e);
    if (!rc) rc = str_key(p, i, "account", NULL, "_.-",
                          "an account is letters, digits, '_', '.' or '-'", &j->account, e);
    if (!rc) rc = str_key(p, i, "qos", NULL, "_.,-",
                          "a QOS is letters, digits, '_', '.', '-' (',' between several)",
                          &j->qos, e);
    if (!rc) rc = str_key(p, i, "mem", mem_ok, NULL,
                          "memory is digits with an optional K, M, G or T suffix", &j->mem, e);
    if (!rc) rc = str_key(p, i, "time", time_ok, NULL,
                          "a time limit is digits separated by ':' and '-' (e.g. \"1-12:00:00\")",
                          &j->time, e);
    if (!rc) rc = str_key(p, i, "constraint", NULL, "_.,:&|*()[]-",
                          "a constraint is feature names (letters, digits, '_', '.', '-') joined "
                          "by & | , * : ( ) [ ]", &j->constraint, e);
    if (!rc) rc = str_key(p, i, "launcher", NULL, "",
                          "the launcher is auto, srun or mpirun", &j->launcher, e);
    if (rc) return rc;
    if (!j->launcher) j->launcher = "auto";
    if (strcmp(j->launcher, "auto") && strcmp(j->launcher, "srun") && strcmp(j->launcher, "mpirun")) {
        char path[300];
        const bgfm_value *v = slurm_get(p, i, "launcher", path, sizeof path);
        return bad_value(p, v, path, j->launcher, "the launcher is auto, srun or mpirun", e);
    }
    char path[300];
    const bgfm_value *x = slurm_get(p, i, "extra", path, sizeof path);
    if (x) {
        for (int k = 0; k < x->n_list; k++)
            if (!extra_ok(x->list[k]))
                return bad_value(p, x, path, x->list[k],
                                 "an extra line is one long sbatch option, \"--name\" or "
                                 "\"--name=value\" with a value of letters, digits and _ . , : = / "
                                 "@ % + -", e);
        j->extra = x->list;
        j->n_extra = x->n_list;
    }
    j->nodes = int_key(p, i, "nodes");
    j->ntasks_per_node = int_key(p, i, "ntasks_per_node");
    j->cpus_per_task = int_key(p, i, "cpus_per_task");
    const bgfm_value *g = config_slurm_value(p, i, "signal_grace");
    j->signal_grace = g ? g->i : 300;
    if (j->signal_grace < 0) j->signal_grace = 0;
    j->requeue = submit_stage_requeues(s);
    return 0;
}

/* ------------------------------------------------------------------ the script */

/* Launcher choice, made when the job runs (the login node may differ from the compute
 * nodes). Shared by every stage script. */
static const char script_launch[] =
    "# Launcher. auto: srun when this runs inside a Slurm job and srun offers PMIx (what\n"
    "# Open MPI needs), else mpirun (which reads the Slurm allocation itself).\n"
    "if [ \"$launcher\" = auto ]; then\n"
    "  launcher=mpirun\n"
    "  if [ -n \"${SLURM_JOB_ID:-}\" ] && command -v srun >/dev/null 2>&1 &&\n"
    "     srun --mpi=list 2>&1 | grep -qw pmix; then\n"
    "    launcher=srun\n"
    "  fi\n"
    "fi\n"
    "case \"$launcher\" in\n"
    "  srun)   launch=(srun --mpi=pmix) ;;\n"
    "  mpirun) launch=(mpirun -np \"${SLURM_NTASKS:-$ntasks}\") ;;\n"
    "  *) echo \"bgfm-job: unknown launcher '$launcher'\" >&2; exit 2 ;;\n"
    "esac\n"
    "# Slurm 22.05+ no longer passes --cpus-per-task from sbatch to srun by itself.\n"
    "if [ -n \"${SLURM_CPUS_PER_TASK:-}\" ]; then export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK; fi\n"
    "echo \"bgfm-job: job ${SLURM_JOB_ID:-none} stage $stage launcher $launcher restart "
    "${SLURM_RESTART_COUNT:-0} host $(hostname) $(date -u +%Y-%m-%dT%H:%M:%SZ)\"\n";

static const char script_plain[] =
    "\"${launch[@]}\" \"$bgfm\" run \"$pipeline\" --only \"$stage\"\n"
    "rc=$?\n"
    "echo \"bgfm-job: stage $stage exited with $rc\"\n"
    "exit \"$rc\"\n";

/* The requeue loop of checkpointing stages (docs/slurm.md "Requeue"). */
static const char script_requeue[] =
    "# Requeue loop. Slurm sends SIGUSR1 to this shell (--signal=B:USR1@grace) before the\n"
    "# time limit; the signal is passed on to bgfm (srun and mpirun forward USR1 and TERM to\n"
    "# every rank), bgfm writes a checkpoint and exits 75, and the job requeues itself: same\n"
    "# job id, rerun with SLURM_RESTART_COUNT+1, resumed from the checkpoint. Jobs waiting on\n"
    "# afterok:<this job> keep waiting (a requeued job is pending again, not finished).\n"
    "# SIGTERM alone (scancel, preemption, the limit itself) also checkpoints, but never\n"
    "# requeues: a cancelled job stays cancelled.\n"
    "max_restarts=${BGFM_MAX_RESTARTS:-100}\n"
    "child=\n"
    "got_usr1=0\n"
    "forward() { if [ -n \"$child\" ]; then kill -\"$1\" \"$child\" 2>/dev/null || true; fi; }\n"
    "trap 'echo \"bgfm-job: got SIGUSR1 (time limit near), asking bgfm to checkpoint\"; "
    "got_usr1=1; forward USR1' USR1\n"
    "trap 'echo \"bgfm-job: got SIGTERM, asking bgfm to checkpoint and stop\"; forward TERM' TERM\n"
    "\"${launch[@]}\" \"$bgfm\" run \"$pipeline\" --only \"$stage\" &\n"
    "child=$!\n"
    "# A trapped signal interrupts `wait` (status > 128) while bgfm is still running.\n"
    "while :; do\n"
    "  wait \"$child\"; rc=$?\n"
    "  kill -0 \"$child\" 2>/dev/null || break\n"
    "done\n"
    "trap '' USR1 TERM\n"
    "echo \"bgfm-job: stage $stage exited with $rc\"\n"
    "if [ \"$rc\" -eq 75 ]; then\n"
    "  if [ \"$got_usr1\" != 1 ] || [ -z \"${SLURM_JOB_ID:-}\" ]; then\n"
    "    echo \"bgfm-job: stopped by SIGTERM, not requeued; resubmit to resume from the checkpoint\"\n"
    "    exit 75\n"
    "  fi\n"
    "  if [ \"${SLURM_RESTART_COUNT:-0}\" -ge \"$max_restarts\" ]; then\n"
    "    echo \"bgfm-job: already requeued $max_restarts times (BGFM_MAX_RESTARTS); giving up\" >&2\n"
    "    exit 75\n"
    "  fi\n"
    "  echo \"bgfm-job: checkpoint written; requeueing job $SLURM_JOB_ID\"\n"
    "  if scontrol requeue \"$SLURM_JOB_ID\"; then exit 0; fi\n"
    "  echo \"bgfm-job: scontrol requeue failed; resubmit this script to resume\" >&2\n"
    "  exit 75\n"
    "fi\n"
    "exit \"$rc\"\n";

static void sbatch_str(FILE *f, const char *opt, const char *v) {
    if (v) fprintf(f, "#SBATCH --%s=%s\n", opt, v);
}

static void sbatch_int(FILE *f, const char *opt, int64_t v) {
    if (v > 0) fprintf(f, "#SBATCH --%s=%lld\n", opt, (long long)v);
}

static int text_ok(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 32 || *s == 127) return 0;
    return 1;
}

int submit_script_write(const bgfm_pipeline *p, int i, const char *workdir, const char *exe,
                        const char *pipeline, FILE *f, bgfm_err *e) {
    submit_job j;
    int rc = submit_job_resolve(p, i, &j, e);
    if (rc) return rc;
    if (!submit_path_ok(workdir))
        return bgfm_fail(e, BGFM_EUSAGE,
                         "%s: workdir '%s' cannot be written into #SBATCH --output lines: use an "
                         "absolute path of letters, digits and _ . / + , @ = : ~ - (no blanks or "
                         "quotes)", p->file, workdir);
    if (!text_ok(exe) || !text_ok(pipeline) || !text_ok(p->file))
        return bgfm_fail(e, BGFM_EUSAGE, "%s: the paths of bgfm and of the pipeline file must not "
                         "contain control characters (newlines, tabs)", p->file);
    const bgfm_stage_cfg *s = &p->stages[i];
    fprintf(f, "#!/bin/bash\n");
    fprintf(f, "# Written by `bgfm submit` from %s: stage '%s' (uses: %s).\n", pipeline, s->name,
            s->uses);
    fprintf(f, "# Submit alone with `sbatch THIS_FILE` once the stages before it are complete;\n"
               "# edit the pipeline and rerun `bgfm submit` rather than this file.\n");
    fprintf(f, "#SBATCH --job-name=%s-%s\n", j.job_name_pipeline, j.stage);
    sbatch_str(f, "partition", j.partition);
    sbatch_str(f, "account", j.account);
    sbatch_str(f, "qos", j.qos);
    sbatch_int(f, "nodes", j.nodes);
    sbatch_int(f, "ntasks-per-node", j.ntasks_per_node);
    sbatch_int(f, "cpus-per-task", j.cpus_per_task);
    sbatch_str(f, "mem", j.mem);
    sbatch_str(f, "time", j.time);
    sbatch_str(f, "constraint", j.constraint);
    fprintf(f, "#SBATCH --output=%s/slurm/%%x-%%j.out\n", workdir);
    fprintf(f, "#SBATCH --error=%s/slurm/%%x-%%j.out\n", workdir);
    if (j.requeue) {
        fprintf(f, "#SBATCH --signal=B:USR1@%lld\n", (long long)j.signal_grace);
        fprintf(f, "#SBATCH --requeue\n");
        fprintf(f, "#SBATCH --open-mode=append\n");
    }
    for (int k = 0; k < j.n_extra; k++) fprintf(f, "#SBATCH %s\n", j.extra[k]);
    fprintf(f, "\nset -u\n");
    fprintf(f, "export OPENBLAS_NUM_THREADS=%lld\n",
            (long long)(j.cpus_per_task > 0 ? j.cpus_per_task : 1));
    fputs("bgfm=", f);
    submit_shell_quote(f, exe);
    fputs("\npipeline=", f);
    submit_shell_quote(f, pipeline);
    fputs("\nstage=", f);
    submit_shell_quote(f, j.stage);
    fputs("\nlauncher=", f);
    submit_shell_quote(f, j.launcher);
    int64_t nodes = j.nodes > 0 ? j.nodes : 1, per = j.ntasks_per_node > 0 ? j.ntasks_per_node : 1;
    fprintf(f, "\nntasks=%lld  # nodes x ntasks-per-node, for mpirun outside Slurm\n\n",
            (long long)(nodes * per));
    fputs(script_launch, f);
    fputc('\n', f);
    fputs(j.requeue ? script_requeue : script_plain, f);
    if (fflush(f) || ferror(f))
        return bgfm_fail(e, BGFM_EIO, "cannot write the batch script of stage '%s': %s", s->name,
                         strerror(errno));
    return 0;
}

int submit_parse_jobid(const char *out, int64_t *jobid) {
    const char *s = out;
    int64_t v = 0;
    int digits = 0;
    while (*s >= '0' && *s <= '9') {
        if (v > (INT64_MAX - 9) / 10) return -1;
        v = v * 10 + (*s - '0');
        s++, digits++;
    }
    if (!digits) return -1;
    if (*s == ';') s += strcspn(s, "\n");
    if (*s == '\n') s++;
    if (*s) return -1;
    *jobid = v;
    return 0;
}

/* ------------------------------------------------------------------ `bgfm submit` */

typedef struct submit_opts {
    const char *file;
    const char *stage;
    int dry_run;
} submit_opts;

/* Run sbatch with argv (no shell; child.h), capture its stdout. Returns 0 and the job
 * id, or BGFM_EUSAGE (sbatch's own message went to stderr). */
static int sbatch_run(char *const argv[], int64_t *jobid, bgfm_err *e) {
    char out[512];
    child_opts co = {.out = out, .out_size = sizeof out};
    int code = 0;
    bgfm_err m = {0};
    if (child_run(argv, &co, &code, &m))
        return bgfm_fail(e, BGFM_EUSAGE, "%s (is Slurm installed here? submit from a login node, "
                         "or use --dry-run)", m.msg);
    int last = 0;
    while (argv[last + 1]) last++;
    if (code != 0)
        return bgfm_fail(e, BGFM_EUSAGE, "%s rejected %s (exit %d; its message is above)",
                         argv[0], argv[last], code);
    if (submit_parse_jobid(out, jobid))
        return bgfm_fail(e, BGFM_EUSAGE, "%s printed '%.80s', not a job id (--parsable)", argv[0],
                         out);
    return 0;
}

static int stage_selected(const submit_opts *o, const bgfm_pipeline *p, int i) {
    return !o->stage || !strcmp(o->stage, p->stages[i].name);
}

/* Generate every selected script in memory first (so one refused value anywhere writes
 * nothing), then write them to WORKDIR/slurm/<stage>.sbatch. */
static int write_scripts(const bgfm_pipeline *p, const submit_opts *o, const char *workdir,
                         const char *exe, const char *pipeline, char **paths, bgfm_err *e) {
    char **texts = bgfm_calloc(e, (size_t)p->n_stages, sizeof *texts, "batch script texts");
    size_t *lens = texts ? bgfm_calloc(e, (size_t)p->n_stages, sizeof *lens,
                                       "batch script lengths")
                         : NULL;
    int rc = texts && lens ? 0 : BGFM_ENOMEM;
    for (int i = 0; !rc && i < p->n_stages; i++) {
        if (!stage_selected(o, p, i)) continue;
        FILE *f = open_memstream(&texts[i], &lens[i]);
        if (!f) {
            rc = bgfm_fail(e, BGFM_ENOMEM, "cannot buffer a batch script: %s", strerror(errno));
            break;
        }
        rc = submit_script_write(p, i, workdir, exe, pipeline, f, e);
        if (fclose(f) && !rc) rc = bgfm_fail(e, BGFM_EIO, "cannot buffer a batch script");
    }
    char *slurmdir = rc ? NULL : fs_join(workdir, "slurm", e);
    if (!rc && !slurmdir) rc = e->code;
    if (!rc) rc = fs_mkdirs(slurmdir, e);
    for (int i = 0; !rc && i < p->n_stages; i++) {
        if (!texts[i]) continue;
        char name[300];
        snprintf(name, sizeof name, "%s.sbatch", p->stages[i].name);
        paths[i] = fs_join(slurmdir, name, e);
        if (!paths[i]) rc = e->code;
        if (!rc) rc = fs_write_atomic(paths[i], texts[i], lens[i], e);
        if (!rc && chmod(paths[i], 0755))
            rc = bgfm_fail(e, BGFM_EIO, "chmod %s: %s", paths[i], strerror(errno));
    }
    for (int i = 0; texts && i < p->n_stages; i++) free(texts[i]);
    free(texts);
    free(lens);
    free(slurmdir);
    return rc;
}

/* Rank 0: check, write the scripts, then submit (or print the commands). */
static int submit_rank0(bgfm_ctx *ctx, const bgfm_pipeline *p, const submit_opts *o) {
    bgfm_err *e = &ctx->err;
    char exe[PATH_MAX], pipeline[PATH_MAX];
    if (!realpath("/proc/self/exe", exe))
        return bgfm_fail(e, BGFM_EIO, "cannot find the path of the bgfm binary: %s",
                         strerror(errno));
    if (!realpath(o->file, pipeline))
        return bgfm_fail(e, BGFM_EIO, "%s: %s", o->file, strerror(errno));
    /* A stage without a producer of its input would fail only once queued and started. */
    run_plan plan = {0};
    int prc = run_plan_build(p, &plan, e);
    run_plan_free(&plan);
    if (prc) return prc;
    char *workdir = fs_absolute(p->workdir, e);
    if (!workdir) return e->code;
    char **paths = bgfm_calloc(e, (size_t)p->n_stages, sizeof *paths, "batch script paths");
    int rc = paths ? 0 : BGFM_ENOMEM;
    if (!rc) rc = write_scripts(p, o, workdir, exe, pipeline, paths, e);
    const char *sbatch = getenv("BGFM_SBATCH");
    if (!sbatch || !*sbatch) sbatch = "sbatch";
    if (!rc && o->dry_run) {
        printf("# dry run: scripts written to %s/slurm/; these commands would submit them:\n",
               workdir);
        int prev = -1;
        for (int i = 0; i < p->n_stages; i++) {
            if (!paths[i]) continue;
            printf("j%d=$(%s --parsable", i + 1, sbatch);
            if (prev >= 0) printf(" --dependency=afterok:$j%d --kill-on-invalid-dep=yes", prev + 1);
            putchar(' ');
            submit_shell_quote(stdout, paths[i]);
            printf(")   # %s\n", p->stages[i].name);
            prev = i;
        }
    } else if (!rc) {
        int64_t prev_id = -1;
        for (int i = 0; !rc && i < p->n_stages; i++) {
            if (!paths[i]) continue;
            char dep[64];
            snprintf(dep, sizeof dep, "--dependency=afterok:%lld", (long long)prev_id);
            char *argv[7];
            int n = 0;
            argv[n++] = (char *)(uintptr_t)sbatch;
            argv[n++] = (char *)(uintptr_t)"--parsable";
            if (prev_id >= 0) {
                argv[n++] = dep;
                argv[n++] = (char *)(uintptr_t)"--kill-on-invalid-dep=yes";
            }
            argv[n++] = paths[i];
            argv[n] = NULL;
            int64_t id = 0;
            fflush(stdout);
            rc = sbatch_run(argv, &id, e);
            if (rc && prev_id >= 0)
                fprintf(stderr, "bgfm: note: the stages before '%s' were submitted (last job "
                        "%lld); cancel them with scancel if you do not want them\n",
                        p->stages[i].name, (long long)prev_id);
            if (rc) break;
            printf("%s %lld\n", p->stages[i].name, (long long)id);
            fflush(stdout);
            prev_id = id;
        }
    }
    for (int i = 0; paths && i < p->n_stages; i++) free(paths[i]);
    free(paths);
    free(workdir);
    return rc;
}

static void submit_usage(void) {
    printf("usage: bgfm submit PIPELINE.yaml [--dry-run] [--stage STAGE]\n\n"
           "Writes one sbatch script per stage into WORKDIR/slurm/<stage>.sbatch (from the\n"
           "pipeline's slurm: block merged with each stage's own) and submits them in order,\n"
           "each with --dependency=afterok:<previous job> --kill-on-invalid-dep=yes. Prints\n"
           "one line '<stage> <job id>' per job. Runs on rank 0 only.\n\n"
           "  --dry-run     write the scripts and print the sbatch commands, submit nothing\n"
           "  --stage S     write and submit only stage S, without a dependency\n\n"
           "Environment: BGFM_SBATCH names the sbatch program (default: sbatch from PATH).\n"
           "See docs/slurm.md.\n");
}

int cmd_submit(bgfm_ctx *ctx, int argc, char **argv) {
    /* (not cli_wants_help: it lives in main.c, outside libbgfm.a, which unit tests link) */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            if (ctx->rank == 0) submit_usage();
            return BGFM_OK;
        }
    submit_opts o = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--dry-run")) {
            o.dry_run = 1;
        } else if (!strcmp(a, "--stage")) {
            if (i + 1 >= argc)
                return bgfm_ctx_fail(ctx, BGFM_EUSAGE, "--stage needs a stage name");
            o.stage = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            return bgfm_ctx_fail(ctx, BGFM_EUSAGE, "submit: unknown option '%s' (see bgfm "
                                 "submit --help)", a);
        } else if (!o.file) {
            o.file = a;
        } else {
            return bgfm_ctx_fail(ctx, BGFM_EUSAGE, "submit: one pipeline file only ('%s' and "
                                 "'%s')", o.file, a);
        }
    }
    if (!o.file)
        return bgfm_ctx_fail(ctx, BGFM_EUSAGE, "usage: bgfm submit PIPELINE.yaml [--dry-run] "
                             "[--stage STAGE]");
    bgfm_pipeline p;
    memset(&p, 0, sizeof p);
    int rc = config_load(ctx, o.file, &p);
    if (rc) return rc;
    int local = 0;
    if (o.stage && !config_stage_find(&p, o.stage))
        local = bgfm_ctx_fail(ctx, BGFM_EUSAGE, "%s: --stage %s: no such stage in this pipeline",
                              o.file, o.stage);
    if (!local && ctx->rank == 0) local = submit_rank0(ctx, &p, &o);
    rc = bgfm_ctx_agree(ctx, local);
    config_free(&p);
    return rc;
}
