/* units.c: the parcellate stage's per-dataset units (parcellate.h, parts.h): each
 * dataset's key, the units of the previous output reused (hard-linked, then read instead
 * of the dataset's images), the others written from this run's results. Not the
 * extraction (extract.c) nor the collective run (run.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bgfm/confounds.h"
#include "bgfm/corpus.h"
#include "bgfm/log.h"
#include "bgfm/manifest.h"
#include "bgfm/parcellate.h"
#include "bgfm/parts.h"
#include "bgfm/sha256.h"
#include "bgfm/yamlout.h"

#define META_HEAD "bgfm-part-parcellate 1"

static int cmp_path(const void *a, const void *b) {
    const manifest_file *const *x = a, *const *y = b;
    return strcmp((*x)->path, (*y)->path);
}

/* The SHA-256 of path among the stage's inputs (sorted), or NULL. */
static const char *input_sha(manifest_file *const *sorted, int n, const char *path) {
    int lo = 0, hi = n; /* the first entry not below path */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(sorted[mid]->path, path) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && !strcmp(sorted[lo]->path, path) && strcmp(sorted[lo]->sha, "missing")
               ? sorted[lo]->sha : NULL;
}

static int64_t record_bytes(const parcellate_atlas *at, int A, int64_t T) {
    int64_t b = 0;
    for (int a = 0; T > 0 && a < A; a++) b += T * at[a].n_regions * 4 + at[a].n_regions * 5;
    return b;
}

/* Every dataset's key (u->key[d], "" when an image's or atlas's hash is unknown). */
static int unit_keys(bgfm_stage_run *r, const corpus *c, double stage_t_r, parcellate_units *u) {
    bgfm_err *e = &r->ctx->err;
    const bgfm_pipeline *p = r->pipe;
    int n = r->inputs ? r->inputs->n : 0;
    manifest_file **sorted = bgfm_calloc(e, (size_t)n + 1, sizeof *sorted, "input index");
    if (!sorted) return BGFM_ENOMEM;
    for (int i = 0; i < n; i++) sorted[i] = &r->inputs->f[i];
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_path);
    char *params = NULL, *atl = NULL;
    size_t pl = 0, al = 0;
    FILE *f = open_memstream(&params, &pl);
    if (f) {
        params_write(&r->stage->with, f, 0);
        fclose(f);
    }
    f = params ? open_memstream(&atl, &al) : NULL;
    int known = 1, rc = 0;
    for (int a = 0; f && a < p->n_atlases; a++) {
        const bgfm_atlas_cfg *ac = &p->atlases[a];
        char *guess = ac->labels ? NULL : parcellate_names_guess(ac->path, e);
        const char *names = ac->labels ? ac->labels : guess;
        const char *s1 = input_sha(sorted, n, ac->path), *s2 = names ? input_sha(sorted, n, names) : NULL;
        known &= s1 != NULL;
        fprintf(f, "  %s %s %s %s %s\n", ac->name, ac->path, s1 ? s1 : "-", names ? names : "-",
                s2 ? s2 : "-");
        free(guess);
    }
    if (f) fclose(f);
    if (!params || !atl) rc = bgfm_fail(e, BGFM_ENOMEM, "out of memory keying the parts");
    for (int d = 0; !rc && d < u->n; d++) {
        sha256_ctx h;
        sha256_init(&h);
        char line[4096];
        int len = snprintf(line, sizeof line, "bgfm-part parcellate 1\ncode_version: %s\n"
                           "on_error: %s\ndataset: %s\nparams:\n", BGFM_VERSION,
                           p->on_error == BGFM_ON_ERROR_SKIP ? "skip" : "fail", c->cfg[d].name);
        sha256_update(&h, line, (size_t)len);
        sha256_update(&h, params, pl);
        sha256_update(&h, "atlases:\n", 9);
        sha256_update(&h, atl, al);
        int ok = known;
        for (int64_t i = 0; i < c->all.n_images && !rc; i++) {
            if (c->set[i] != d) continue;
            /* the image, and its confounds file (read for head motion if for nothing else):
             * its hash, or "none" when it has none */
            bgfm_err le;
            bgfm_err_clear(&le);
            char *cp = confounds_path(c->all.images[i].path, 1, &le);
            const char *s = input_sha(sorted, n, c->all.images[i].path);
            const char *sc = cp ? input_sha(sorted, n, cp) : "none";
            ok &= s != NULL && sc != NULL;
            if (!cp && le.code == BGFM_ENOMEM) rc = bgfm_fail(e, BGFM_ENOMEM, "%s", le.msg);
            free(cp);
            len = snprintf(line, sizeof line, "  %s %s %.17g ", s ? s : "-", sc ? sc : "-",
                           corpus_t_r(c, i, stage_t_r));
            sha256_update(&h, line, (size_t)len);
            sha256_update(&h, c->all.images[i].path, strlen(c->all.images[i].path) + 1);
        }
        uint8_t dg[32];
        sha256_final(&h, dg);
        u->key[d][0] = '\0';
        for (int k = 0; ok && k < 32; k++) snprintf(u->key[d] + 2 * k, 3, "%02x", dg[k]);
    }
    free(params);
    free(atl);
    free(sorted);
    return rc;
}

/* Parse dataset d's meta.tsv (text, modified) into u->T/tr/reason/off for its images;
 * 0 when it lists exactly those images, *bytes the data.bin size it implies; -1 when it
 * does not, BGFM_ENOMEM (recorded in e) when a reason cannot be copied. */
static int meta_parse(char *text, const corpus *c, int d, const parcellate_atlas *at, int A,
                      parcellate_units *u, int64_t *bytes, bgfm_err *e) {
    char *s = text, *nl = strchr(s, '\n');
    if (!nl || strncmp(s, META_HEAD "\t", strlen(META_HEAD) + 1)) return -1;
    s = nl + 1;
    int64_t off = 0;
    for (int64_t i = 0; i < c->all.n_images; i++) {
        if (c->set[i] != d) continue;
        nl = strchr(s, '\n');
        if (!nl) return -1;
        *nl = '\0';
        char *t1 = strchr(s, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        char *t3 = t2 ? strchr(t2 + 1, '\t') : NULL;
        if (!t3) return -1;
        *t1 = *t2 = *t3 = '\0';
        char *end = NULL;
        long long T = strtoll(s, &end, 10);
        if (*end || T < 0) return -1;
        double tr = strtod(t1 + 1, &end);
        if (*end || strcmp(t2 + 1, c->all.images[i].path)) return -1;
        if ((T == 0) != (t3[1] != '\0')) return -1; /* skipped <=> a reason */
        u->T[i] = T;
        u->tr[i] = tr;
        u->off[i] = off;
        free(u->reason[i]);
        u->reason[i] = T == 0 ? bgfm_strdup(e, t3 + 1) : NULL;
        if (T == 0 && !u->reason[i]) return BGFM_ENOMEM;
        off += record_bytes(at, A, T);
        s = nl + 1;
    }
    *bytes = off;
    return *s ? -1 : 0;
}

int parcellate_units_open(bgfm_stage_run *r, const corpus *c, const parcellate_atlas *at, int A,
                          double stage_t_r, parcellate_units *u) {
    bgfm_ctx *ctx = r->ctx;
    bgfm_err *e = &ctx->err;
    memset(u, 0, sizeof *u);
    if (!c->cfg) return 0; /* inputs.bids: no units */
    int64_t n = c->all.n_images;
    u->n = c->n_sets;
    u->key = bgfm_calloc(e, (size_t)u->n, sizeof *u->key, "parts");
    u->reuse = bgfm_calloc(e, (size_t)u->n, sizeof *u->reuse, "parts");
    u->fd = bgfm_calloc(e, (size_t)u->n, sizeof *u->fd, "parts");
    u->off = bgfm_calloc(e, (size_t)n + 1, sizeof *u->off, "parts");
    u->T = bgfm_calloc(e, (size_t)n + 1, sizeof *u->T, "parts");
    u->tr = bgfm_calloc(e, (size_t)n + 1, sizeof *u->tr, "parts");
    u->reason = bgfm_calloc(e, (size_t)n + 1, sizeof *u->reason, "parts");
    int rc = u->key && u->reuse && u->fd && u->off && u->T && u->tr && u->reason ? 0 : BGFM_ENOMEM;
    for (int d = 0; !rc && d < u->n; d++) u->fd[d] = -1;
    if (!rc) rc = unit_keys(r, c, stage_t_r, u);
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) return rc;
    /* rank 0: which units of the previous output are today's, linked into outdir */
    for (int d = 0; ctx->rank == 0 && d < u->n; d++) {
        const char *name = c->cfg[d].name;
        char *meta = NULL;
        int64_t bytes = -1;
        bgfm_err ignore = {0};
        if (r->force || !u->key[d][0] || !parts_match(r->final_dir, name, u->key[d], -1) ||
            parts_meta_read(r->final_dir, name, &meta, &ignore) ||
            meta_parse(meta, c, d, at, A, u, &bytes, &ignore) ||
            !parts_match(r->final_dir, name, u->key[d], bytes)) {
            free(meta);
            continue;
        }
        free(meta);
        if (parts_link(r->final_dir, r->outdir, name, &ignore))
            log_warn(ctx, "parcellate: dataset '%s' is extracted again: %s", name, ignore.msg);
        else
            u->reuse[d] = 1;
    }
    rc = bgfm_ctx_agree(ctx, BGFM_MPI(e, MPI_Bcast(u->reuse, u->n, MPI_INT, 0, ctx->comm)));
    /* every rank: the reused units' image lists from the linked meta.tsv */
    for (int d = 0; !rc && d < u->n; d++) {
        if (!u->reuse[d]) continue;
        char *meta = NULL;
        int64_t bytes = 0;
        rc = parts_meta_read(r->outdir, c->cfg[d].name, &meta, e);
        if (!rc && (rc = meta_parse(meta, c, d, at, A, u, &bytes, e)) < 0)
            rc = bgfm_fail(e, BGFM_EIO, "parcellate: parts/%s/meta.tsv of %s changed while "
                           "it was read", c->cfg[d].name, r->outdir);
        free(meta);
        if (!rc && (u->fd[d] = parts_open(r->outdir, c->cfg[d].name, 0, e)) < 0) rc = e->code;
    }
    return bgfm_ctx_agree(ctx, rc);
}

int parcellate_units_load(parcellate_units *u, const corpus *c, int64_t i,
                          const parcellate_atlas *at, int A, parcellate_out *out, bgfm_err *e) {
    int d = c->set[i];
    int64_t T = u->T[i], off = u->off[i];
    const char *name = c->cfg[d].name;
    for (int a = 0; a < A; a++) {
        int N = at[a].n_regions;
        out[a].n_regions = N;
        out[a].ts = bgfm_malloc(e, (size_t)(T * N + 1) * sizeof(float), "time series");
        out[a].coverage = bgfm_malloc(e, (size_t)N * sizeof(float), "coverage");
        out[a].flagged = bgfm_malloc(e, (size_t)N, "flags");
        if (!out[a].ts || !out[a].coverage || !out[a].flagged) return BGFM_ENOMEM;
        if (u->fd[d] < 0) {
            /* the linked unit (outdir), so a unit that vanished fails loudly */
            return bgfm_fail(e, BGFM_EIO, "parcellate: parts/%s is not open", name);
        }
        int rc = parts_pread(u->fd[d], out[a].ts, T * N * 4, off, name, e);
        off += T * N * 4;
        if (!rc) rc = parts_pread(u->fd[d], out[a].coverage, (int64_t)N * 4, off, name, e);
        off += (int64_t)N * 4;
        if (!rc) rc = parts_pread(u->fd[d], out[a].flagged, N, off, name, e);
        off += N;
        if (rc) return rc;
    }
    return 0;
}

/* The reason image i was skipped (c->all.skipped), or "". */
static const char *skip_reason(const corpus *c, int64_t i) {
    const char *why = "";
    for (int64_t k = 0; k < c->all.n_skipped; k++)
        if (!strcmp(c->all.skipped[k].image, c->all.images[i].path)) why = c->all.skipped[k].reason;
    return why;
}

int parcellate_units_write(bgfm_stage_run *r, parcellate_units *u, const corpus *c,
                           const parcellate_atlas *at, int A, int64_t lo, int64_t hi,
                           const parcellate_out *outs, const int64_t *T, const double *tr) {
    bgfm_ctx *ctx = r->ctx;
    bgfm_err *e = &ctx->err;
    if (!u->n) return 0;
    int64_t n = c->all.n_images;
    int rc = 0;
    /* offsets of the units written here, every rank */
    int64_t *bytes = bgfm_calloc(e, (size_t)u->n, sizeof *bytes, "parts");
    rc = bgfm_ctx_agree(ctx, bytes ? 0 : BGFM_ENOMEM);
    if (rc) return rc;
    for (int64_t i = 0; i < n; i++) {
        int d = c->set[i];
        if (u->reuse[d] || !u->key[d][0]) continue;
        u->off[i] = bytes[d];
        bytes[d] += record_bytes(at, A, T[i]);
    }
    for (int d = 0; ctx->rank == 0 && !rc && d < u->n; d++)
        if (!u->reuse[d] && u->key[d][0]) rc = parts_create(r->outdir, c->cfg[d].name, bytes[d], e);
    rc = bgfm_ctx_agree(ctx, rc);
    /* every rank its records */
    for (int d = 0; !rc && d < u->n; d++) {
        if (u->reuse[d] || !u->key[d][0]) continue;
        const char *name = c->cfg[d].name;
        int fd = -1;
        for (int64_t i = lo; !rc && i < hi; i++) {
            if (c->set[i] != d || T[i] <= 0) continue;
            if (fd < 0 && (fd = parts_open(r->outdir, name, 1, e)) < 0) rc = e->code;
            int64_t off = u->off[i];
            for (int a = 0; !rc && a < A; a++) {
                const parcellate_out *o = &outs[(i - lo) * A + a];
                int N = at[a].n_regions;
                rc = parts_pwrite(fd, o->ts, T[i] * N * 4, off, name, e);
                off += T[i] * N * 4;
                if (!rc) rc = parts_pwrite(fd, o->coverage, (int64_t)N * 4, off, name, e);
                off += (int64_t)N * 4;
                if (!rc) rc = parts_pwrite(fd, o->flagged, N, off, name, e);
                off += N;
            }
        }
        if (fd >= 0 && close(fd) != 0 && !rc)
            rc = bgfm_fail(e, BGFM_EIO, "cannot close parts/%s/data.bin", name);
    }
    rc = bgfm_ctx_agree(ctx, rc);
    /* rank 0: meta.tsv and the key, last */
    for (int d = 0; ctx->rank == 0 && !rc && d < u->n; d++) {
        if (u->reuse[d] || !u->key[d][0]) continue;
        char *meta = NULL;
        size_t ml = 0;
        FILE *f = open_memstream(&meta, &ml);
        if (!f) {
            rc = bgfm_fail(e, BGFM_ENOMEM, "out of memory writing parts/%s", c->cfg[d].name);
            break;
        }
        fprintf(f, "%s\t%s\n", META_HEAD, c->cfg[d].name);
        for (int64_t i = 0; i < n; i++) {
            if (c->set[i] != d) continue;
            const char *why = T[i] > 0 ? "" : skip_reason(c, i);
            fprintf(f, "%lld\t%a\t%s\t", (long long)T[i], T[i] > 0 ? tr[i] : 0.0,
                    c->all.images[i].path);
            for (const char *q = why[0] || T[i] > 0 ? why : "skipped"; *q; q++)
                fputc(*q == '\n' || *q == '\t' ? ' ' : *q, f);
            fputc('\n', f);
        }
        fclose(f);
        rc = meta ? parts_commit(r->outdir, c->cfg[d].name, meta, u->key[d], e)
                  : bgfm_fail(e, BGFM_ENOMEM, "out of memory writing parts");
        free(meta);
    }
    free(bytes);
    return bgfm_ctx_agree(ctx, rc);
}

void parcellate_units_free(parcellate_units *u, int64_t n_images) {
    for (int d = 0; u->fd && d < u->n; d++)
        if (u->fd[d] >= 0) close(u->fd[d]);
    for (int64_t i = 0; u->reason && i < n_images; i++) free(u->reason[i]);
    free(u->key);
    free(u->reuse);
    free(u->fd);
    free(u->off);
    free(u->T);
    free(u->tr);
    free(u->reason);
    memset(u, 0, sizeof *u);
}
