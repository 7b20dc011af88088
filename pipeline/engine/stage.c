/* stage.c: what the engine offers a running stage (stage.h) beyond its parameters:
 * the list of inputs it left out under on_error: skip.
 * Not the registry of kinds (kinds.c) and not the runner (run.c). */
#include <stdlib.h>
#include <string.h>

#include "bgfm/stage.h"

int bgfm_stage_skip_add(bgfm_stage_run *r, const char *item, const char *reason) {
    bgfm_err *e = &r->ctx->err;
    size_t n = (size_t)r->n_skipped + 1;
    char **it = bgfm_malloc(e, n * sizeof *it, "skipped list");
    char **re = it ? bgfm_malloc(e, n * sizeof *re, "skipped list") : NULL;
    char *a = re ? bgfm_strdup(e, item ? item : "") : NULL;
    char *b = a ? bgfm_strdup(e, reason ? reason : "") : NULL;
    if (!b) {
        free(it);
        free(re);
        free(a);
        return BGFM_ENOMEM;
    }
    if (r->n_skipped) {
        memcpy(it, r->skipped_item, (size_t)r->n_skipped * sizeof *it);
        memcpy(re, r->skipped_reason, (size_t)r->n_skipped * sizeof *re);
    }
    free(r->skipped_item);
    free(r->skipped_reason);
    it[r->n_skipped] = a;
    re[r->n_skipped] = b;
    r->skipped_item = it;
    r->skipped_reason = re;
    r->n_skipped++;
    return 0;
}

