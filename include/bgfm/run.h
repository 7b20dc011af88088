/* run.h: the stage plan behind `bgfm run` / `bgfm validate`: stage order, each
 * stage's upstream, its output and temporary folders. Not the stages themselves. */
#ifndef BGFM_RUN_H
#define BGFM_RUN_H

#include "bgfm/config.h"
#include "bgfm/manifest.h"

typedef struct run_plan_stage {
    const bgfm_stage_cfg *cfg;
    int upstream, upstream2; /* stage indices, -1 if none */
    char *final_dir;         /* WORKDIR/<name> */
    char *tmp_dir;           /* WORKDIR/.<name>.partial */
    int will_run;
} run_plan_stage;

typedef struct run_plan {
    int n;
    run_plan_stage *s;
} run_plan;

/* Resolve upstreams: the nearest earlier stage producing what a kind consumes (plan.c). */
int run_plan_build(const bgfm_pipeline *p, run_plan *plan, bgfm_err *e);
void run_plan_free(run_plan *plan);

/* Stage i's fingerprint (plan.c): SHA-256 (hex) of the canonical text (*text, malloc'ed)
 * of its kind, name, code version, seed, on_error, label_column, resolved parameters,
 * atlases (stages reading the dataset), input hashes, the upstreams' outputs_sha256, and
 * `ranks` for rank-sensitive kinds. Fails (BGFM_EUSAGE) when an upstream is not complete.
 * Rank-local; every rank computes the same. */
int run_fingerprint(bgfm_ctx *ctx, const bgfm_pipeline *p, const run_plan *plan, int i,
                    const manifest_files *inputs, int ranks, char out[65], char **text);

/* Collective (inputs.c): the files stage i reads besides its upstreams' outputs, named by
 * its kind's extra_inputs hook on rank 0 and broadcast, hashed by the ranks together
 * (manifest_hash_inputs; the hash cache is written only when `write_cache`); a listed
 * file that does not exist yet enters as "missing". Returns an agreed status. */
int run_stage_inputs(bgfm_ctx *ctx, const bgfm_pipeline *p, const run_plan_stage *ps,
                     int write_cache, manifest_files *inputs);

/* Collective: `bgfm run`'s work (pipeline/engine/run.c): argv as cmd_run's (--no-report
 * already taken out), the agreed status returned. *workdir (malloc'ed, every rank) is the
 * pipeline's workdir once the run locked it, whatever happened after (NULL for --help,
 * --dry-run, a pipeline file that does not load, or out of memory): cmd_run
 * (pipeline/commands/html.c) writes the run report there. */
int run_command(bgfm_ctx *ctx, int argc, char **argv, char **workdir);

#endif
