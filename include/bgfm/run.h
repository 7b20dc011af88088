/* run.h: the stage plan behind `bgfm run` / `bgfm validate`: stage order, each
 * stage's upstream, its output and temporary folders. Not the stages themselves. */
#ifndef BGFM_RUN_H
#define BGFM_RUN_H

#include "bgfm/config.h"

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

/* Resolve upstreams: the nearest earlier stage producing what a kind consumes. */
int run_plan_build(const bgfm_pipeline *p, run_plan *plan, bgfm_err *e);
void run_plan_free(run_plan *plan);

#endif
