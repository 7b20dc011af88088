/* ckpt_dir.c: the checkpoints folder of a training run (ckpt_dir.h). */
#include "bgfm/ckpt_dir.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/ckpt.h"
#include "bgfm/fsutil.h"
int ckpt_dir_list(const char *dir, int64_t **steps, int *n, int clean_tmp, bgfm_err *e) {
    *steps = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    int cap = 0;
    struct dirent *de;
    char path[4200];
    while ((de = readdir(d)) != NULL) {
        long long s = 0;
        char tail[8] = "";
        if (sscanf(de->d_name, "ckpt-%lld.%7s", &s, tail) != 2) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (!strcmp(tail, "h5.tmp")) {
            if (clean_tmp) remove(path);
            continue;
        }
        if (strcmp(tail, "h5") || !ckpt_is_complete(path)) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            int64_t *t = bgfm_realloc(e, *steps, (size_t)cap * sizeof *t, "checkpoint steps");
            if (!t) {
                closedir(d);
                return BGFM_ENOMEM;
            }
            *steps = t;
        }
        (*steps)[(*n)++] = s;
    }
    closedir(d);
    for (int i = 1; i < *n; i++) /* insertion sort, descending */
        for (int j = i; j > 0 && (*steps)[j] > (*steps)[j - 1]; j--) {
            int64_t t = (*steps)[j];
            (*steps)[j] = (*steps)[j - 1];
            (*steps)[j - 1] = t;
        }
    return 0;
}

int ckpt_dir_prune(const char *dir, int64_t keep, bgfm_err *e) {
    if (keep <= 0) return 0;
    int64_t *st = NULL;
    int n = 0;
    int rc = ckpt_dir_list(dir, &st, &n, 0, e);
    char path[4200];
    for (int i = (int)keep; i < n && !rc; i++) {
        snprintf(path, sizeof path, "%s/ckpt-%lld.h5", dir, (long long)st[i]);
        remove(path);
    }
    free(st);
    return rc;
}

/* Collective: candidate checkpoints to resume from, newest first, the same list on
 * every rank (rank 0 lists `dir`, removing interrupted writes). When dir has none and
 * resume_from is set: that file, or the complete checkpoints of that folder. */
int ckpt_dir_resume_candidates(bgfm_ctx *ctx, const char *dir, const char *resume_from,
                                char ***out, int *nout) {
    bgfm_err *e = &ctx->err;
    *out = NULL;
    *nout = 0;
    int64_t *steps = NULL;
    int n = 0, rc = 0, from_dir = 1;
    const char *where = dir;
    if (ctx->rank == 0) {
        rc = ckpt_dir_list(dir, &steps, &n, 1, e);
        if (!rc && n == 0 && resume_from) {
            if (fs_is_dir(resume_from)) {
                where = resume_from;
                rc = ckpt_dir_list(resume_from, &steps, &n, 0, e);
                if (!rc && n == 0)
                    rc = bgfm_fail(e, BGFM_EUSAGE, "resume_from: %s holds no complete checkpoint "
                                   "(ckpt-<step>.h5); point it at a checkpoint file or folder",
                                   resume_from);
            } else if (fs_exists(resume_from)) {
                from_dir = 0;
                n = 1;
            } else {
                rc = bgfm_fail(e, BGFM_EUSAGE, "resume_from: %s does not exist; copy the "
                               "checkpoint out of the old .<stage>.partial folder first",
                               resume_from);
            }
        }
    }
    rc = bgfm_ctx_agree(ctx, rc);
    int hdr[2] = {n, from_dir};
    if (!rc) rc = BGFM_MPI(e, MPI_Bcast(hdr, 2, MPI_INT, 0, ctx->comm));
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) {
        free(steps);
        return rc;
    }
    n = hdr[0];
    from_dir = hdr[1];
    if (ctx->rank != 0 && from_dir && n > 0) {
        steps = bgfm_calloc(e, (size_t)n, sizeof *steps, "checkpoint list");
        if (!steps) rc = BGFM_ENOMEM;
    }
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc && from_dir && n > 0)
        rc = bgfm_ctx_agree(ctx, BGFM_MPI(e, MPI_Bcast(steps, n, MPI_INT64_T, 0, ctx->comm)));
    /* every rank must use the same folder: resume_from applies when dir had none */
    int use_dir = 0;
    if (!rc && ctx->rank == 0) use_dir = where != dir;
    if (!rc) rc = bgfm_ctx_agree(ctx, BGFM_MPI(e, MPI_Bcast(&use_dir, 1, MPI_INT, 0, ctx->comm)));
    if (!rc && n > 0) {
        *out = bgfm_calloc(e, (size_t)n, sizeof **out, "checkpoint list");
        for (int i = 0; *out && i < n && !rc; i++) {
            size_t len = strlen(dir) + (resume_from ? strlen(resume_from) : 0) + 48;
            (*out)[i] = bgfm_malloc(e, len, "path");
            if (!(*out)[i]) break;
            if (!from_dir)
                snprintf((*out)[i], len, "%s", resume_from);
            else
                snprintf((*out)[i], len, "%s/ckpt-%lld.h5", use_dir ? resume_from : dir,
                         (long long)steps[i]);
            *nout = i + 1;
        }
        if (*nout < n) rc = BGFM_ENOMEM;
    }
    free(steps);
    return bgfm_ctx_agree(ctx, rc);
}
