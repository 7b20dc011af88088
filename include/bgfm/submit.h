/* submit.h: the sbatch scripts of `bgfm submit`: one per stage, from the pipeline's
 * global `slurm:` block merged with the stage's own, every YAML value checked against a
 * strict per-key pattern before it reaches a script. Not a Slurm client: running sbatch
 * (posix_spawn, never a shell) is cmd_submit's job (pipeline/commands/submit.c). Non-collective. */
#ifndef BGFM_SUBMIT_H
#define BGFM_SUBMIT_H

#include <stdint.h>
#include <stdio.h>

#include "bgfm/config.h"
#include "bgfm/ctx.h"

/* The effective Slurm settings of one stage (global block, overridden key by key by the
 * stage's block). Strings point into the pipeline (not owned); unset: NULL / 0. */
typedef struct submit_job {
    const char *job_name_pipeline; /* pipeline name; the job is "<pipeline>-<stage>" */
    const char *stage;
    const char *partition, *account, *qos, *mem, *time, *constraint;
    int64_t nodes, ntasks_per_node, cpus_per_task;
    char **extra; /* extra #SBATCH options, each "--name[=value]" */
    int n_extra;
    int64_t signal_grace; /* seconds (default 300) */
    const char *launcher; /* "auto", "srun" or "mpirun" */
    int requeue;          /* 1: checkpointing stage (pretrain): --signal, --requeue, loop */
} submit_job;

/* 1 if stage kind `s` checkpoints and resumes (uses: pretrain, or any kind producing
 * checkpoints), so its job gets --signal=B:USR1@grace, --requeue and the requeue loop. */
int submit_stage_requeues(const bgfm_stage_cfg *s);

/* Resolve and check the settings of stage `i` of `p`. Every value taken from the file is
 * matched against its pattern (docs/slurm.md "Hostile values"); a value that does not
 * match is BGFM_EUSAGE with "FILE:LINE:COL: ... (key 'stages.S.slurm.K')". */
int submit_job_resolve(const bgfm_pipeline *p, int i, submit_job *j, bgfm_err *e);

/* 1 if `s` may appear in a generated script: absolute, no control characters, and only
 * [A-Za-z0-9_./+,@=:~-] (paths go unquoted into #SBATCH --output lines). */
int submit_path_ok(const char *s);

/* Write `s` to f as one single-quoted shell word ('it'\''s'). */
void submit_shell_quote(FILE *f, const char *s);

/* Write the batch script of stage `i` to f. `workdir` (absolute) holds slurm/ for the
 * logs; `exe` and `pipeline` are the absolute paths of the bgfm binary and the pipeline
 * file. Resolves and checks the job first; returns 0, BGFM_EUSAGE or BGFM_EIO. */
int submit_script_write(const bgfm_pipeline *p, int i, const char *workdir, const char *exe,
                        const char *pipeline, FILE *f, bgfm_err *e);

/* Parse sbatch --parsable output ("JOBID" or "JOBID;CLUSTER", then a newline) into a
 * job id. Returns 0, or -1 if the text is not that. */
int submit_parse_jobid(const char *out, int64_t *jobid);

#endif
