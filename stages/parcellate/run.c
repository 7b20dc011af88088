/* run.c: the collective parcellate stage run (being written).
 * Not the extraction kernel. */
#include "bgfm/parcellate.h"

int parcellate_stage_run(bgfm_stage_run *r) {
    return bgfm_ctx_agree(r->ctx, bgfm_ctx_fail(r->ctx, BGFM_EINTERNAL,
                                                "parcellate: stage run not built yet"));
}
