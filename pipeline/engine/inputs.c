/* inputs.c: the files a stage reads besides its upstreams' outputs (run.h): named by its
 * kind's extra_inputs hook on rank 0 (rank 0's view of the file system decides for
 * everyone), broadcast, and hashed by the ranks together.
 * Not which files they are: each stage kind knows its own (stages/<kind>/). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/fsutil.h"
#include "bgfm/run.h"
#include "bgfm/stage.h"
#include "bgfm/strlist.h"

/* Rank 0: the hook's list without repeats, packed as NUL-terminated strings, and whether
 * each file exists. */
static int rank0_list(bgfm_ctx *ctx, const bgfm_pipeline *p, const run_plan_stage *ps,
                      char **blob, int64_t *blen, int **exists, int *n) {
    bgfm_err *e = &ctx->err;
    char **l = ps->cfg->kind->extra_inputs(p, ps->cfg, e);
    if (!l) return e->code ? e->code : bgfm_fail(e, BGFM_ENOMEM, "out of memory listing inputs");
    int m = 0, rc = 0;
    while (l[m]) m++;
    int64_t len = 0;
    for (int i = 0; i < m; i++) len += (int64_t)strlen(l[i]) + 1;
    *blob = bgfm_malloc(e, (size_t)len + 1, "input list");
    *exists = bgfm_calloc(e, (size_t)m + 1, sizeof **exists, "input list");
    if (!*blob || !*exists) rc = BGFM_ENOMEM;
    *n = 0;
    *blen = 0;
    for (int i = 0; !rc && i < m; i++) {
        int dup = 0;
        for (int j = 0; j < i && !dup; j++) dup = !strcmp(l[i], l[j]);
        if (dup) continue;
        size_t k = strlen(l[i]) + 1;
        memcpy(*blob + *blen, l[i], k);
        *blen += (int64_t)k;
        (*exists)[(*n)++] = fs_exists(l[i]);
    }
    strlist_free(l, m);
    return rc;
}

/* Every rank: rank 0's list. */
static int share_list(bgfm_ctx *ctx, char **blob, int64_t *blen, int **exists, int *n) {
    bgfm_err *e = &ctx->err;
    int64_t hdr[2] = {*blen, *n};
    int rc = bgfm_ctx_agree(ctx, BGFM_MPI(e, MPI_Bcast(hdr, 2, MPI_INT64_T, 0, ctx->comm)));
    if (rc) return rc;
    if (ctx->rank != 0) {
        *blen = hdr[0];
        *n = (int)hdr[1];
        *blob = bgfm_malloc(e, (size_t)*blen + 1, "input list");
        *exists = bgfm_calloc(e, (size_t)*n + 1, sizeof **exists, "input list");
        rc = *blob && *exists ? 0 : BGFM_ENOMEM;
    }
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc && *blen > 0) rc = BGFM_MPI(e, MPI_Bcast(*blob, (int)*blen, MPI_CHAR, 0, ctx->comm));
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc && *n > 0) rc = BGFM_MPI(e, MPI_Bcast(*exists, *n, MPI_INT, 0, ctx->comm));
    return bgfm_ctx_agree(ctx, rc);
}

int run_stage_inputs(bgfm_ctx *ctx, const bgfm_pipeline *p, const run_plan_stage *ps,
                     int write_cache, manifest_files *inputs) {
    inputs->n = 0;
    inputs->f = NULL;
    if (!ps->cfg->kind->extra_inputs) return 0;
    bgfm_err *e = &ctx->err;
    char *blob = NULL;
    int64_t blen = 0;
    int *exists = NULL, n = 0;
    int rc = ctx->rank == 0 ? rank0_list(ctx, p, ps, &blob, &blen, &exists, &n) : 0;
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc) rc = share_list(ctx, &blob, &blen, &exists, &n);
    char **all = rc ? NULL : bgfm_calloc(e, (size_t)n + 1, sizeof *all, "input list");
    char **present = all ? bgfm_calloc(e, (size_t)n + 1, sizeof *present, "input list") : NULL;
    if (!rc) rc = bgfm_ctx_agree(ctx, present ? 0 : BGFM_ENOMEM);
    int np = 0;
    for (int64_t i = 0, off = 0; !rc && i < n; i++) {
        all[i] = blob + off;
        off += (int64_t)strlen(blob + off) + 1;
        if (exists[i]) present[np++] = all[i];
    }
    /* the existing files hashed together; a missing one enters as "missing" */
    manifest_files h = {0};
    if (!rc && np) rc = manifest_hash_inputs(ctx, p->workdir, present, np, write_cache, &h);
    if (!rc) {
        inputs->f = bgfm_calloc(e, (size_t)n + 1, sizeof *inputs->f, "input list");
        int lrc = inputs->f ? 0 : BGFM_ENOMEM;
        for (int i = 0, hi = 0; !lrc && i < n; i++) {
            manifest_file *f = &inputs->f[inputs->n];
            if (exists[i]) {
                *f = h.f[hi];
                h.f[hi++].path = NULL;
            } else {
                f->path = bgfm_strdup(e, all[i]);
                snprintf(f->sha, sizeof f->sha, "missing");
                if (!f->path) lrc = BGFM_ENOMEM;
            }
            if (f->path) inputs->n++;
        }
        rc = bgfm_ctx_agree(ctx, lrc);
    }
    if (rc) manifest_files_free(inputs);
    manifest_files_free(&h);
    free(present);
    free(all);
    free(exists);
    free(blob);
    return rc;
}
