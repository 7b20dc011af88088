/* units.c: the connectivity stage's per-dataset units (connectivity.h, parts.h): each
 * dataset's key from its parcellate unit's, the units of the previous output reused
 * (hard-linked, their graphs read instead of computed), the others filled shard by shard
 * by the shards' owners. Not the driver (exec.c) nor the math (kernels.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bgfm/connectivity.h"
#include "bgfm/log.h"
#include "bgfm/parts.h"
#include "bgfm/sha256.h"

static int units_alloc(connectivity_units *u, int64_t S, int64_t G, bgfm_err *e) {
    u->name = bgfm_calloc(e, (size_t)S + 1, sizeof *u->name, "parts");
    u->key = bgfm_calloc(e, (size_t)S + 1, sizeof *u->key, "parts");
    u->reuse = bgfm_calloc(e, (size_t)S + 1, sizeof *u->reuse, "parts");
    u->fd = bgfm_calloc(e, (size_t)S + 1, sizeof *u->fd, "parts");
    u->bytes = bgfm_calloc(e, (size_t)S + 1, sizeof *u->bytes, "parts");
    u->unit = bgfm_calloc(e, (size_t)S + 1, sizeof *u->unit, "parts");
    u->off = bgfm_calloc(e, (size_t)G + 1, sizeof *u->off, "parts");
    return u->name && u->key && u->reuse && u->fd && u->bytes && u->unit && u->off ? 0
                                                                                : BGFM_ENOMEM;
}

int connectivity_units_open(bgfm_ctx *ctx, const connectivity_opts *o, const char *outdir,
                            char *const *ds, int64_t S, int64_t G, const int64_t *subj,
                            const int64_t *gbytes, connectivity_units *u) {
    bgfm_err *e = &ctx->err;
    memset(u, 0, sizeof *u);
    if (!ds || !o->units_upstream || !o->units_salt) return 0;
    int rc = units_alloc(u, S, G, e);
    /* units: the runs of equal dataset names, in subject order */
    for (int64_t s = 0; !rc && s < S; s++) {
        if (!u->n || strcmp(ds[s], u->name[u->n - 1])) {
            u->name[u->n] = ds[s];
            u->fd[u->n++] = -1;
        }
        u->unit[s] = u->n - 1;
    }
    for (int64_t i = 0; !rc && i < G; i++) {
        int d = u->unit[subj[i]];
        u->off[i] = u->bytes[d];
        u->bytes[d] += gbytes[i];
    }
    for (int d = 0; !rc && d < u->n; d++) {
        char up[65], line[512];
        u->key[d][0] = '\0';
        if (!parts_key_read(o->units_upstream, u->name[d], up)) continue;
        int len = snprintf(line, sizeof line, "bgfm-part connectivity 1\ncode_version: %s\n"
                           "on_error: %s\ndataset: %s\nparcellate unit: %s\noptions:\n",
                           BGFM_VERSION, o->skip_bad ? "skip" : "fail", u->name[d], up);
        sha256_ctx h;
        uint8_t dg[32];
        sha256_init(&h);
        sha256_update(&h, line, (size_t)len);
        sha256_update(&h, o->units_salt, strlen(o->units_salt));
        sha256_final(&h, dg);
        for (int k = 0; k < 32; k++) snprintf(u->key[d] + 2 * k, 3, "%02x", dg[k]);
    }
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) return rc;
    /* rank 0: reuse what is today's, create the rest */
    for (int d = 0; ctx->rank == 0 && !rc && d < u->n; d++) {
        if (!u->key[d][0]) continue;
        bgfm_err ignore = {0};
        if (parts_match(o->units_prev, u->name[d], u->key[d], u->bytes[d])) {
            if (!parts_link(o->units_prev, outdir, u->name[d], &ignore)) {
                u->reuse[d] = 1;
                continue;
            }
            log_warn(ctx, "connectivity: dataset '%s' is computed again: %s", u->name[d],
                     ignore.msg);
        }
        rc = parts_create(outdir, u->name[d], u->bytes[d], e);
    }
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc) rc = bgfm_ctx_agree(ctx, BGFM_MPI(e, MPI_Bcast(u->reuse, u->n, MPI_INT, 0, ctx->comm)));
    for (int d = 0; !rc && d < u->n; d++)
        if (u->key[d][0] && (u->fd[d] = parts_open(outdir, u->name[d], !u->reuse[d], e)) < 0)
            rc = e->code;
    return bgfm_ctx_agree(ctx, rc);
}

int connectivity_units_reused(const connectivity_units *u, int64_t s) {
    return u->n > 0 && u->reuse[u->unit[s]];
}

int connectivity_units_read(connectivity_units *u, int64_t s, int64_t i, void *buf, int64_t n,
                            bgfm_err *e) {
    int d = u->unit[s];
    return parts_pread(u->fd[d], buf, n, u->off[i], u->name[d], e);
}

int connectivity_units_put(connectivity_units *u, const int64_t *subj, int64_t g0, int64_t g1,
                           const char *buf, const int64_t *gbytes, bgfm_err *e) {
    for (int64_t i = g0; u->n && i < g1; i++) {
        int d = u->unit[subj[i]];
        if (!u->reuse[d] && u->key[d][0]) {
            int rc = parts_pwrite(u->fd[d], buf, gbytes[i], u->off[i], u->name[d], e);
            if (rc) return rc;
        }
        buf += gbytes[i];
    }
    return 0;
}

int connectivity_units_commit(bgfm_ctx *ctx, const char *outdir, connectivity_units *u) {
    bgfm_err *e = &ctx->err;
    int rc = 0;
    for (int d = 0; d < u->n; d++) { /* every rank closes what it wrote */
        if (u->fd[d] >= 0 && close(u->fd[d]) != 0 && !u->reuse[d] && !rc)
            rc = bgfm_fail(e, BGFM_EIO, "cannot close parts/%s/data.bin of %s", u->name[d], outdir);
        u->fd[d] = -1;
    }
    rc = bgfm_ctx_agree(ctx, rc);
    for (int d = 0; ctx->rank == 0 && !rc && d < u->n; d++) {
        if (u->reuse[d] || !u->key[d][0]) continue;
        char meta[128];
        snprintf(meta, sizeof meta, "bgfm-part-connectivity 1\t%lld bytes\n",
                 (long long)u->bytes[d]);
        rc = parts_commit(outdir, u->name[d], meta, u->key[d], e);
    }
    return bgfm_ctx_agree(ctx, rc);
}

void connectivity_units_free(connectivity_units *u) {
    for (int d = 0; u->fd && d < u->n; d++)
        if (u->fd[d] >= 0) close(u->fd[d]);
    free(u->name);
    free(u->key);
    free(u->reuse);
    free(u->fd);
    free(u->bytes);
    free(u->unit);
    free(u->off);
    memset(u, 0, sizeof *u);
}
