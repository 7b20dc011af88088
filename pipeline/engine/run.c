/* run.c: `bgfm run` and `bgfm validate`: stage order, upstream resolution, what is up
 * to date (manifest fingerprints), temp folders renamed into place, metrics.
 * Not any stage's work (stages/<kind>/) and not the YAML parser (config.c). */
#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "bgfm/cli.h"
#include "bgfm/config.h"
#include "bgfm/fsutil.h"
#include "bgfm/json.h"
#include "bgfm/log.h"
#include "bgfm/manifest.h"
#include "bgfm/run.h"
#include "bgfm/sha256.h"
#include "bgfm/stage.h"
#include "bgfm/yamlout.h"

static const char *artifact_name(bgfm_artifact a) {
    switch (a) {
    case BGFM_ART_BIDS: return "bids";
    case BGFM_ART_TIMESERIES: return "timeseries";
    case BGFM_ART_GRAPHS: return "graphs";
    case BGFM_ART_CHECKPOINT: return "checkpoint";
    case BGFM_ART_REPORT: return "report";
    default: return "nothing";
    }
}

/* Nearest earlier stage (before index i) producing artifact a; -1 if none. */
static int find_producer(const bgfm_pipeline *p, int i, bgfm_artifact a) {
    for (int j = i - 1; j >= 0; j--)
        if (p->stages[j].kind && p->stages[j].kind->produces == a) return j;
    return -1;
}

int run_plan_build(const bgfm_pipeline *p, run_plan *plan, bgfm_err *e) {
    plan->n = p->n_stages;
    plan->s = calloc((size_t)(p->n_stages ? p->n_stages : 1), sizeof *plan->s);
    if (!plan->s) return bgfm_fail(e, BGFM_ENOMEM, "out of memory planning stages");
    for (int i = 0; i < p->n_stages; i++) {
        const bgfm_stage_cfg *s = &p->stages[i];
        run_plan_stage *ps = &plan->s[i];
        ps->cfg = s;
        ps->upstream = ps->upstream2 = -1;
        BGFM_ASSERT(s->kind != NULL);
        bgfm_artifact c1 = s->kind->consumes, c2 = s->kind->consumes2;
        if (c1 != BGFM_ART_NONE && c1 != BGFM_ART_BIDS) {
            ps->upstream = find_producer(p, i, c1);
            if (ps->upstream < 0)
                return bgfm_fail(e, BGFM_EUSAGE,
                                 "%s:%d:%d: stage '%s' (uses: %s) needs %s, but no earlier stage "
                                 "produces it; add a stage that does before it",
                                 p->file, s->line, s->col, s->name, s->kind->name,
                                 artifact_name(c1));
        }
        if (c2 != BGFM_ART_NONE) {
            ps->upstream2 = find_producer(p, i, c2);
            if (ps->upstream2 < 0)
                return bgfm_fail(e, BGFM_EUSAGE,
                                 "%s:%d:%d: stage '%s' (uses: %s) needs %s, but no earlier stage "
                                 "produces it",
                                 p->file, s->line, s->col, s->name, s->kind->name,
                                 artifact_name(c2));
        }
        ps->final_dir = fs_join(p->workdir, s->name, e);
        size_t n = strlen(p->workdir) + strlen(s->name) + 16;
        ps->tmp_dir = malloc(n);
        if (!ps->final_dir || !ps->tmp_dir) return bgfm_fail(e, BGFM_ENOMEM, "out of memory");
        snprintf(ps->tmp_dir, n, "%s/.%s.partial", p->workdir, s->name);
    }
    return 0;
}

void run_plan_free(run_plan *plan) {
    if (!plan->s) return;
    for (int i = 0; i < plan->n; i++) {
        free(plan->s[i].final_dir);
        free(plan->s[i].tmp_dir);
    }
    free(plan->s);
    plan->s = NULL;
    plan->n = 0;
}

/* --- inputs of a stage that reads the BIDS dataset ----------------------- */

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* Atlas name tables that the parcellate stage may read beside the atlas file. */
static void push_if_exists(char ***v, int *n, const char *path) {
    if (!fs_exists(path)) return;
    char **nv = realloc(*v, (size_t)(*n + 1) * sizeof *nv);
    if (!nv) return;
    *v = nv;
    (*v)[*n] = strdup(path);
    if ((*v)[*n]) (*n)++;
}

static int bids_inputs(const bgfm_pipeline *p, char ***out, int *nout, bgfm_err *e) {
    char **names = NULL, **v = NULL;
    int n = 0, k = 0;
    *out = NULL;
    *nout = 0;
    if (!fs_is_dir(p->bids))
        return bgfm_fail(e, BGFM_EDATA,
                         "%s: inputs.bids folder '%s' does not exist; fix the path or create the "
                         "dataset (bgfm synth --out DIR)",
                         p->file, p->bids);
    int rc = fs_list_files(p->bids, &names, &n, e);
    if (rc) return rc;
    v = calloc((size_t)n + 2 * (size_t)p->n_atlases + 9, sizeof *v);
    if (!v) {
        fs_list_free(names, n);
        return bgfm_fail(e, BGFM_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        const char *nm = names[i];
        int is_img = (ends_with(nm, "_bold.nii") || ends_with(nm, "_bold.nii.gz")) &&
                     !strncmp(nm, "sub-", 4);
        if (is_img) v[k++] = fs_join(p->bids, nm, e);
        if (k && !v[k - 1]) {
            fs_list_free(v, k - 1);
            fs_list_free(names, n);
            return BGFM_ENOMEM;
        }
    }
    fs_list_free(names, n);
    /* a missing participants table is reported by the stage, which knows the rules */
    if (p->participants && fs_exists(p->participants)) v[k++] = strdup(p->participants);
    for (int a = 0; a < p->n_atlases; a++) {
        v[k++] = strdup(p->atlases[a].path);
        if (p->atlases[a].labels) v[k++] = strdup(p->atlases[a].labels);
    }
    for (int a = 0; a < p->n_atlases; a++) {
        /* aal.nii.gz -> aal.nii.txt and aal.txt, the name tables mricron ships */
        char buf[4096];
        snprintf(buf, sizeof buf, "%s", p->atlases[a].path);
        char *gz = strstr(buf, ".gz");
        if (gz && !gz[3]) *gz = '\0';
        size_t bl = strlen(buf);
        if (bl + 5 < sizeof buf) {
            memcpy(buf + bl, ".txt", 5);
            push_if_exists(&v, &k, buf);
            buf[bl] = '\0';
        }
        char *nii = strstr(buf, ".nii");
        if (nii && !nii[4]) {
            memcpy(nii, ".txt", 5);
            push_if_exists(&v, &k, buf);
        }
    }
    for (int i = 0; i < k; i++)
        if (!v[i]) {
            fs_list_free(v, k);
            return bgfm_fail(e, BGFM_ENOMEM, "out of memory");
        }
    *out = v;
    *nout = k;
    return 0;
}

/* --- fingerprints -------------------------------------------------------- */

static char *params_text(const bgfm_params *pp) {
    char *txt = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&txt, &len);
    if (!f) return NULL;
    params_write(pp, f, 0);
    fclose(f);
    return txt;
}

/* The canonical text whose SHA-256 is the stage's fingerprint. */
static int fingerprint(bgfm_ctx *ctx, const bgfm_pipeline *p, const run_plan *plan, int i,
                       const manifest_files *inputs, char out[65], char **text) {
    const run_plan_stage *ps = &plan->s[i];
    const bgfm_stage_kind *k = ps->cfg->kind;
    char *params = params_text(&ps->cfg->with);
    char *t = NULL;
    size_t tl = 0;
    FILE *f = params ? open_memstream(&t, &tl) : NULL;
    if (!f) {
        free(params);
        return bgfm_fail(&ctx->err, BGFM_ENOMEM, "out of memory");
    }
    fprintf(f, "bgfm-stage 1\nkind: %s\nname: %s\ncode_version: %s\nseed: %llu\n", k->name,
            ps->cfg->name, BGFM_VERSION, (unsigned long long)p->seed);
    if (k->rank_sensitive) fprintf(f, "ranks: %d\n", ctx->size);
    fprintf(f, "on_error: %s\nlabel_column: %s\n",
            p->on_error == BGFM_ON_ERROR_SKIP ? "skip" : "fail", p->label_column);
    fprintf(f, "params:\n%s", params);
    if (k->consumes == BGFM_ART_BIDS) {
        fprintf(f, "atlases:\n");
        for (int a = 0; a < p->n_atlases; a++)
            fprintf(f, "  %s %s\n", p->atlases[a].name, p->atlases[a].path);
    }
    fprintf(f, "inputs:\n");
    for (int j = 0; inputs && j < inputs->n; j++)
        fprintf(f, "  %s %s\n", inputs->f[j].sha, inputs->f[j].path);
    const int ups[2] = {ps->upstream, ps->upstream2};
    for (int u = 0; u < 2; u++) {
        if (ups[u] < 0) continue;
        char fp[65], outs[65];
        if (!manifest_read(plan->s[ups[u]].final_dir, fp, outs)) {
            fclose(f);
            free(t);
            free(params);
            return bgfm_fail(&ctx->err, BGFM_EUSAGE,
                             "stage '%s' needs the outputs of stage '%s', which is not complete "
                             "(no %s/manifest.json); run it first (bgfm run without --only)",
                             ps->cfg->name, plan->s[ups[u]].cfg->name, plan->s[ups[u]].final_dir);
        }
        fprintf(f, "upstream %s: %s\n", plan->s[ups[u]].cfg->name, outs);
    }
    fclose(f);
    free(params);
    sha256_buf_hex(t, tl, out);
    *text = t;
    return 0;
}

/* --- the manifest -------------------------------------------------------- */

static void iso_now(char *buf, size_t n) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void write_files(FILE *f, const char *key, const manifest_files *l) {
    fprintf(f, "  \"%s\": [", key);
    for (int i = 0; l && i < l->n; i++) {
        fprintf(f, "%s\n    {\"path\": ", i ? "," : "");
        json_write_str(f, l->f[i].path);
        fprintf(f, ", \"sha256\": \"%s\", \"bytes\": %lld}", l->f[i].sha, (long long)l->f[i].bytes);
    }
    fprintf(f, "%s],\n", (l && l->n) ? "\n  " : "");
}

static int write_manifest(bgfm_ctx *ctx, const bgfm_pipeline *p, const run_plan_stage *ps,
                          const char *fp, const char *fptext, const manifest_files *inputs,
                          const manifest_files *outputs, const char *outs_sha, double wall,
                          const bgfm_stage_run *r, const char *started, int partial) {
    char *t = NULL;
    size_t tl = 0;
    FILE *f = open_memstream(&t, &tl);
    if (!f) return bgfm_fail(&ctx->err, BGFM_ENOMEM, "out of memory");
    fprintf(f, "{\n  \"format\": \"bgfm-manifest\",\n  \"format_version\": 1,\n  \"stage\": ");
    json_write_str(f, ps->cfg->name);
    fprintf(f, ",\n  \"kind\": ");
    json_write_str(f, ps->cfg->kind->name);
    fprintf(f, ",\n  \"fingerprint\": \"%s\",\n  \"outputs_sha256\": \"%s\",\n", fp, outs_sha);
    fprintf(f, "  \"status\": \"%s\",\n", partial ? "partial" : "complete");
    fprintf(f, "  \"code_version\": \"%s\",\n  \"code_rev\": \"%s\",\n  \"ranks\": %d,\n",
            BGFM_VERSION, BGFM_GITREV, ctx->size);
    fprintf(f, "  \"pipeline\": ");
    json_write_str(f, p->file);
    fprintf(f, ",\n  \"resolved\": ");
    json_write_str(f, fptext);
    fprintf(f, ",\n");
    write_files(f, "inputs", inputs);
    write_files(f, "outputs", outputs);
    fprintf(f, "  \"timings\": {\"started\": \"%s\", \"wall_s\": ", started);
    json_write_num(f, wall);
    fprintf(f, "},\n  \"stats\": {\"bytes_read\": ");
    json_write_num(f, r->bytes_read);
    fprintf(f, ", \"items\": ");
    json_write_num(f, r->items);
    fprintf(f, ", \"items_unit\": ");
    json_write_str(f, r->items_unit ? r->items_unit : "");
    fprintf(f, "},\n  \"skipped\": [");
    for (int64_t i = 0; i < r->n_skipped; i++) {
        fprintf(f, "%s\n    {\"item\": ", i ? "," : "");
        json_write_str(f, r->skipped_item[i]);
        fprintf(f, ", \"reason\": ");
        json_write_str(f, r->skipped_reason[i]);
        fprintf(f, "}");
    }
    fprintf(f, "%s]\n}\n", r->n_skipped ? "\n  " : "");
    fclose(f);
    char *path = fs_join(ps->final_dir, "manifest.json", &ctx->err);
    int rc = path ? fs_write_atomic(path, t, tl, &ctx->err) : BGFM_ENOMEM;
    free(path);
    free(t);
    return rc;
}

/* --- skipped inputs (on_error: skip) ------------------------------------- */

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

static void skip_list_free(bgfm_stage_run *r) {
    for (int64_t i = 0; i < r->n_skipped; i++) {
        free(r->skipped_item[i]);
        free(r->skipped_reason[i]);
    }
    free(r->skipped_item);
    free(r->skipped_reason);
    r->skipped_item = r->skipped_reason = NULL;
    r->n_skipped = 0;
}

/* --- running one stage --------------------------------------------------- */

typedef struct run_opts {
    const char *file, *from, *only;
    int force, dry_run;
} run_opts;

/* Rank 0: put the finished temp folder in place (old output moved aside first, then
 * removed), hash the outputs and write the manifest last. */
static int finalize_stage(bgfm_ctx *ctx, const bgfm_pipeline *p, const run_plan_stage *ps,
                          const char *fp, const char *fptext, const manifest_files *inputs,
                          double wall, const bgfm_stage_run *r, const char *started,
                          int partial) {
    bgfm_err *e = &ctx->err;
    manifest_files outs = {0};
    char outs_sha[65];
    int rc = manifest_hash_outputs(p->workdir, ps->tmp_dir, &outs, e);
    if (rc) return rc;
    manifest_list_digest(&outs, 1, outs_sha);
    size_t n = strlen(p->workdir) + strlen(ps->cfg->name) + 16;
    char *old = malloc(n);
    if (!old) {
        manifest_files_free(&outs);
        return bgfm_fail(e, BGFM_ENOMEM, "out of memory");
    }
    snprintf(old, n, "%s/.%s.old", p->workdir, ps->cfg->name);
    rc = fs_remove_tree(p->workdir, old, e);
    if (!rc && fs_exists(ps->final_dir) && rename(ps->final_dir, old) != 0)
        rc = bgfm_fail(e, BGFM_EIO, "cannot move old output '%s' aside: %s", ps->final_dir,
                       strerror(errno));
    if (!rc && rename(ps->tmp_dir, ps->final_dir) != 0)
        rc = bgfm_fail(e, BGFM_EIO, "cannot rename '%s' to '%s': %s", ps->tmp_dir, ps->final_dir,
                       strerror(errno));
    if (!rc)
        rc = write_manifest(ctx, p, ps, fp, fptext, inputs, &outs, outs_sha, wall, r, started,
                            partial);
    if (!rc) rc = fs_remove_tree(p->workdir, old, e);
    free(old);
    manifest_files_free(&outs);
    return rc;
}

static void metrics_line(bgfm_ctx *ctx, const char *metrics, const run_plan_stage *ps, int status,
                         double wall, double bytes, double items, const char *unit,
                         const double *rss) {
    char *t = NULL;
    size_t tl = 0;
    FILE *f = open_memstream(&t, &tl);
    if (!f) return;
    char now[32];
    iso_now(now, sizeof now);
    fprintf(f, "{\"event\": \"stage\", \"stage\": ");
    json_write_str(f, ps->cfg->name);
    fprintf(f, ", \"kind\": ");
    json_write_str(f, ps->cfg->kind->name);
    fprintf(f, ", \"time\": \"%s\", \"status\": %d, \"ranks\": %d, \"threads\": %d, \"wall_s\": ",
            now, status, ctx->size, openblas_get_num_threads());
    json_write_num(f, wall);
    fprintf(f, ", \"bytes_read\": ");
    json_write_num(f, bytes);
    fprintf(f, ", \"items\": ");
    json_write_num(f, items);
    fprintf(f, ", \"items_unit\": ");
    json_write_str(f, unit ? unit : "");
    fprintf(f, ", \"items_per_s\": ");
    json_write_num(f, wall > 0 ? items / wall : 0);
    fprintf(f, ", \"peak_rss_mib\": [");
    for (int i = 0; i < ctx->size; i++) {
        if (i) fputs(", ", f);
        json_write_num(f, (double)(int64_t)(rss[i] * 10 + 0.5) / 10);
    }
    fprintf(f, "]}");
    fclose(f);
    bgfm_err e = {0};
    if (fs_append_line(metrics, t, &e)) log_warn(ctx, "%s", e.msg);
    free(t);
}

static int run_stage(bgfm_ctx *ctx, const bgfm_pipeline *p, const run_plan *plan, int i,
                     const char *fp, const char *fptext, const manifest_files *inputs,
                     const char *metrics) {
    const run_plan_stage *ps = &plan->s[i];
    const bgfm_stage_kind *k = ps->cfg->kind;
    int rc = 0;
    /* A rank-sensitive stage (pretrain) may resume from its partial folder when the
     * fingerprint it was started with is the same. */
    if (ctx->rank == 0) {
        char *intent = fs_join(ps->tmp_dir, ".fingerprint", &ctx->err);
        int resumable = 0;
        if (intent && k->rank_sensitive && fs_exists(intent)) {
            char *txt = NULL;
            size_t len = 0;
            bgfm_err ignore = {0};
            if (!fs_read_all(intent, &txt, &len, &ignore)) resumable = len >= 64 && !strncmp(txt, fp, 64);
            free(txt);
        }
        if (!intent) rc = BGFM_ENOMEM;
        if (!rc && !resumable && fs_exists(ps->tmp_dir))
            rc = fs_remove_tree(p->workdir, ps->tmp_dir, &ctx->err);
        if (!rc) rc = fs_mkdirs(ps->tmp_dir, &ctx->err);
        if (!rc && !resumable) rc = fs_write_atomic(intent, fp, 64, &ctx->err);
        if (!rc && resumable) log_info(ctx, "  resuming from %s", ps->tmp_dir);
        free(intent);
    }
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) return rc;
    bgfm_stage_run r = {0};
    r.ctx = ctx;
    r.pipe = p;
    r.stage = ps->cfg;
    r.outdir = ps->tmp_dir;
    r.final_dir = ps->final_dir;
    r.upstream = ps->upstream >= 0 ? plan->s[ps->upstream].final_dir : NULL;
    r.upstream2 = ps->upstream2 >= 0 ? plan->s[ps->upstream2].final_dir : NULL;
    r.metrics = metrics;
    char started[32];
    iso_now(started, sizeof started);
    double t0 = MPI_Wtime();
    rc = k->run(&r);
    /* the stage promised an agreed status; make sure, cheaply */
    rc = bgfm_ctx_agree(ctx, rc);
    /* BGFM_PARTIAL: complete outputs without the subjects skipped under on_error: skip;
     * the stage is finalised like a success and the run ends with exit code 9 */
    char partial_msg[BGFM_ERRMSG_MAX] = "";
    int partial = rc == BGFM_PARTIAL;
    if (partial) {
        snprintf(partial_msg, sizeof partial_msg, "%s", ctx->err.msg);
        bgfm_err_clear(&ctx->err);
        rc = 0;
    }
    double wall = MPI_Wtime() - t0;
    double mine[2] = {r.bytes_read, r.items}, sum[2] = {0, 0};
    double rss = fs_peak_rss_mib();
    double *all_rss = calloc((size_t)ctx->size, sizeof *all_rss);
    int mrc = bgfm_ctx_agree(ctx, all_rss ? 0 : bgfm_fail(&ctx->err, BGFM_ENOMEM, "out of memory "
                                                          "gathering stage metrics"));
    if (!mrc) { /* the same two collectives on every rank, then one agreement */
        mrc = BGFM_MPI(&ctx->err, MPI_Allreduce(mine, sum, 2, MPI_DOUBLE, MPI_SUM, ctx->comm));
        int grc = BGFM_MPI(&ctx->err, MPI_Gather(&rss, 1, MPI_DOUBLE, all_rss, 1, MPI_DOUBLE, 0,
                                                 ctx->comm));
        mrc = bgfm_ctx_agree(ctx, mrc ? mrc : grc);
    }
    if (!rc) rc = mrc;
    if (ctx->rank == 0 && all_rss)
        metrics_line(ctx, metrics, ps, rc, wall, sum[0], sum[1], r.items_unit, all_rss);
    free(all_rss);
    if (rc) {
        /* nothing half-written is left looking complete: the temp folder is removed,
         * except where a rank-sensitive stage keeps it to resume */
        if (ctx->rank == 0 && !k->rank_sensitive) {
            bgfm_err ignore = {0};
            fs_remove_tree(p->workdir, ps->tmp_dir, &ignore);
        }
        skip_list_free(&r);
        return rc;
    }
    r.bytes_read = sum[0];
    r.items = sum[1];
    int frc = 0;
    if (ctx->rank == 0)
        frc = finalize_stage(ctx, p, ps, fp, fptext, inputs, wall, &r, started, partial);
    rc = bgfm_ctx_agree(ctx, frc);
    if (!rc)
        log_info(ctx, "  done in %.2f s%s%.0f %s", wall, r.items > 0 ? ", " : "", r.items,
                 r.items > 0 && r.items_unit ? r.items_unit : "");
    if (!rc && partial) {
        log_warn(ctx, "stage '%s' finished without some subjects: %s", ps->cfg->name,
                 partial_msg[0] ? partial_msg : "see its outputs");
        if (ctx->rank == 0) fflush(stderr);
        /* the summary names what was left out (rank 0's list is the one printed) */
        size_t w = (size_t)snprintf(ctx->err.msg, sizeof ctx->err.msg,
                                    "stage '%s': %lld input(s) skipped", ps->cfg->name,
                                    (long long)r.n_skipped);
        for (int64_t j = 0; j < r.n_skipped && w + 8 < sizeof ctx->err.msg; j++)
            w += (size_t)snprintf(ctx->err.msg + w, sizeof ctx->err.msg - w, "%s%s",
                                  j ? ", " : ": ", r.skipped_item[j]);
        if (w + 8 < sizeof ctx->err.msg)
            snprintf(ctx->err.msg + w, sizeof ctx->err.msg - w,
                     " (reasons in %s/manifest.json \"skipped\")", ps->final_dir);
        if (!r.n_skipped) snprintf(ctx->err.msg, sizeof ctx->err.msg, "%s", partial_msg);
        ctx->err.code = BGFM_PARTIAL;
        skip_list_free(&r);
        return BGFM_PARTIAL;
    }
    skip_list_free(&r);
    return rc;
}

/* Collective: inputs of stage i (BIDS files for stages reading the dataset). */
static int bids_stage_inputs(bgfm_ctx *ctx, const bgfm_pipeline *p, const run_plan_stage *ps,
                             manifest_files *inputs) {
    char **paths = NULL;
    int n = 0, rc = 0;
    inputs->n = 0;
    inputs->f = NULL;
    if (ps->cfg->kind->consumes != BGFM_ART_BIDS) return 0;
    /* rank 0 lists the dataset; everybody gets the same list */
    char *blob = NULL;
    int64_t blen = 0;
    if (ctx->rank == 0) {
        rc = bids_inputs(p, &paths, &n, &ctx->err);
        if (!rc) {
            for (int i = 0; i < n; i++) blen += (int64_t)strlen(paths[i]) + 1;
            blob = malloc((size_t)blen + 1);
            if (!blob) rc = bgfm_fail(&ctx->err, BGFM_ENOMEM, "out of memory");
            int64_t off = 0;
            for (int i = 0; blob && i < n; i++) {
                size_t l = strlen(paths[i]) + 1;
                memcpy(blob + off, paths[i], l);
                off += (int64_t)l;
            }
        }
    }
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc) rc = BGFM_MPI(&ctx->err, MPI_Bcast(&blen, 1, MPI_INT64_T, 0, ctx->comm));
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc) rc = bgfm_ctx_agree(ctx, BGFM_MPI(&ctx->err, MPI_Bcast(&n, 1, MPI_INT, 0, ctx->comm)));
    if (!rc && ctx->rank != 0) {
        blob = malloc((size_t)blen + 1);
        paths = calloc((size_t)n + 1, sizeof *paths);
        if (!blob || !paths) rc = bgfm_fail(&ctx->err, BGFM_ENOMEM, "out of memory");
    }
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc && blen > 0) rc = BGFM_MPI(&ctx->err, MPI_Bcast(blob, (int)blen, MPI_CHAR, 0, ctx->comm));
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc && ctx->rank != 0) {
        int64_t off = 0;
        for (int i = 0; i < n && !rc; i++) {
            paths[i] = strdup(blob + off);
            if (!paths[i]) rc = bgfm_fail(&ctx->err, BGFM_ENOMEM, "out of memory");
            off += (int64_t)strlen(blob + off) + 1;
        }
    }
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc) rc = manifest_hash_inputs(ctx, p->workdir, paths, n, inputs);
    if (paths) fs_list_free(paths, n);
    free(blob);
    return rc;
}

/* Collective: the files a kind names through its extra_inputs hook (e.g. the checkpoint a
 * chained pretrain stage starts from), hashed and appended to `inputs` unless already
 * listed. The hook is a pure function of the pipeline, so every rank gets the same list;
 * rank 0's view of which files exist decides. A file that does not exist yet (an earlier
 * stage will write it, as in --dry-run) enters the fingerprint as "missing". */
static int extra_stage_inputs(bgfm_ctx *ctx, const bgfm_pipeline *p, const run_plan_stage *ps,
                              manifest_files *inputs) {
    const bgfm_stage_kind *k = ps->cfg->kind;
    if (!k->extra_inputs) return 0;
    char **l = k->extra_inputs(p, ps->cfg, &ctx->err);
    int rc = bgfm_ctx_agree(ctx, l ? 0 : (ctx->err.code ? ctx->err.code : BGFM_ENOMEM));
    if (rc) return rc;
    int n = 0, m = 0;
    while (l[n]) n++;
    char **todo = calloc((size_t)n + 1, sizeof *todo);
    int *exists = calloc((size_t)n + 1, sizeof *exists);
    rc = (todo && exists) ? 0 : bgfm_fail(&ctx->err, BGFM_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < n; i++) {
        int dup = 0;
        for (int j = 0; j < inputs->n && !dup; j++) dup = !strcmp(inputs->f[j].path, l[i]);
        if (!dup) todo[m++] = l[i];
    }
    if (ctx->rank == 0)
        for (int i = 0; !rc && i < m; i++) exists[i] = fs_exists(todo[i]);
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc && m) rc = BGFM_MPI(&ctx->err, MPI_Bcast(exists, m, MPI_INT, 0, ctx->comm));
    rc = bgfm_ctx_agree(ctx, rc);
    char **present = rc ? NULL : calloc((size_t)m + 1, sizeof *present);
    int np = 0;
    for (int i = 0; present && i < m; i++)
        if (exists[i]) present[np++] = todo[i];
    manifest_files h = {0};
    if (!rc && !present) rc = bgfm_ctx_agree(ctx, bgfm_fail(&ctx->err, BGFM_ENOMEM, "out of memory"));
    if (!rc && np) rc = manifest_hash_inputs(ctx, p->workdir, present, np, &h);
    if (!rc) {
        manifest_file *nf = realloc(inputs->f, (size_t)(inputs->n + m + 1) * sizeof *nf);
        int lrc = nf ? 0 : bgfm_fail(&ctx->err, BGFM_ENOMEM, "out of memory");
        if (nf) inputs->f = nf;
        for (int i = 0, hi = 0; !lrc && i < m; i++) {
            manifest_file *f = &inputs->f[inputs->n];
            memset(f, 0, sizeof *f);
            if (exists[i]) {
                *f = h.f[hi];
                h.f[hi++].path = NULL;
            } else {
                f->path = strdup(todo[i]);
                snprintf(f->sha, sizeof f->sha, "missing");
                if (!f->path) lrc = bgfm_fail(&ctx->err, BGFM_ENOMEM, "out of memory");
            }
            if (f->path) inputs->n++;
        }
        rc = bgfm_ctx_agree(ctx, lrc);
    }
    manifest_files_free(&h);
    free(present);
    free(exists);
    free(todo);
    fs_list_free(l, n);
    return rc;
}

static int stage_inputs(bgfm_ctx *ctx, const bgfm_pipeline *p, const run_plan_stage *ps,
                        manifest_files *inputs) {
    int rc = bids_stage_inputs(ctx, p, ps, inputs);
    if (!rc) rc = extra_stage_inputs(ctx, p, ps, inputs);
    return rc;
}

static int stage_index(const bgfm_pipeline *p, const char *name, const char *opt, bgfm_err *e) {
    for (int i = 0; i < p->n_stages; i++)
        if (!strcmp(p->stages[i].name, name)) return i;
    const char **names = calloc((size_t)p->n_stages + 1, sizeof *names);
    for (int i = 0; names && i < p->n_stages; i++) names[i] = p->stages[i].name;
    const char *near = names ? config_nearest(name, (const char *const *)names, p->n_stages) : NULL;
    bgfm_fail(e, BGFM_EUSAGE, "%s %s: no stage named '%s' in %s%s%s%s", opt, name, name, p->file,
              near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "");
    free(names);
    return -1;
}

/* Rank 0 holds an exclusive lock on workdir/.bgfm/lock for the whole run, so two
 * runs never write the same workdir. */
static int lock_workdir(bgfm_ctx *ctx, const bgfm_pipeline *p, int *fd) {
    *fd = -1;
    if (ctx->rank != 0) return 0;
    char *dir = fs_join(p->workdir, ".bgfm", &ctx->err);
    char *lock = dir ? fs_join(dir, "lock", &ctx->err) : NULL;
    int rc = lock ? fs_mkdirs(dir, &ctx->err) : BGFM_ENOMEM;
    if (!rc) {
        *fd = open(lock, O_RDWR | O_CREAT, 0666);
        if (*fd < 0)
            rc = bgfm_fail(&ctx->err, BGFM_EIO, "cannot create lock file '%s': %s", lock,
                           strerror(errno));
        else if (flock(*fd, LOCK_EX | LOCK_NB) != 0)
            rc = bgfm_fail(&ctx->err, BGFM_EUSAGE,
                           "another bgfm run is using workdir '%s' (lock %s held); wait for it "
                           "or use another workdir",
                           p->workdir, lock);
    }
    free(lock);
    free(dir);
    return rc;
}

static int do_run(bgfm_ctx *ctx, const run_opts *o, int validate_only) {
    bgfm_pipeline p;
    memset(&p, 0, sizeof p);
    int rc = config_load(ctx, o->file, &p);
    if (rc) return rc;
    run_plan plan = {0};
    rc = bgfm_ctx_agree(ctx, run_plan_build(&p, &plan, &ctx->err));
    int first = 0, last = p.n_stages - 1, forced_from = p.n_stages;
    if (!rc && o->only) {
        int i = stage_index(&p, o->only, "--only", &ctx->err);
        rc = i < 0 ? BGFM_EUSAGE : 0;
        first = last = i;
    }
    if (!rc && o->from) {
        int i = stage_index(&p, o->from, "--from", &ctx->err);
        rc = i < 0 ? BGFM_EUSAGE : 0;
        first = forced_from = i;
    }
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc && validate_only && ctx->rank == 0) {
        printf("# resolved pipeline (every default filled in)\n");
        config_write_resolved(&p, stdout);
    }
    int lockfd = -1;
    if (!rc && !validate_only && !o->dry_run) {
        int lrc = 0;
        if (ctx->rank == 0) lrc = fs_mkdirs(p.workdir, &ctx->err);
        if (!lrc) lrc = lock_workdir(ctx, &p, &lockfd);
        rc = bgfm_ctx_agree(ctx, lrc);
    }
    char *metrics = rc ? NULL : fs_join(p.workdir, "metrics.jsonl", &ctx->err);
    if (!rc && !metrics) rc = BGFM_ENOMEM;
    int plan_only = validate_only || o->dry_run;
    if (!rc && plan_only && ctx->rank == 0) printf("# plan (%d ranks)\n", ctx->size);
    int upstream_will_run = 0, partial = 0;
    bgfm_err partial_err = {0};
    for (int i = first; !rc && i <= last; i++) {
        run_plan_stage *ps = &plan.s[i];
        if (i == first || !plan_only)
            log_info(ctx, "[%d/%d] %s (uses: %s)", i + 1, p.n_stages, ps->cfg->name,
                     ps->cfg->kind->name);
        int up_running = (ps->upstream >= 0 && plan.s[ps->upstream].will_run) ||
                         (ps->upstream2 >= 0 && plan.s[ps->upstream2].will_run);
        if (plan_only && up_running) {
            ps->will_run = 1;
            if (ctx->rank == 0) printf("  %-16s %-13s run (its upstream runs first)\n", ps->cfg->name, ps->cfg->kind->name);
            continue;
        }
        manifest_files inputs = {0};
        rc = stage_inputs(ctx, &p, ps, &inputs);
        /* --dry-run: an input that an earlier stage of this plan rewrites (the checkpoint
         * a chained pretrain stage starts from) makes this stage run too */
        int input_rewritten = 0;
        for (int j = 0; plan_only && !rc && j < i; j++) {
            size_t dl = strlen(plan.s[j].final_dir);
            for (int k = 0; plan.s[j].will_run && k < inputs.n; k++)
                input_rewritten |= !strncmp(inputs.f[k].path, plan.s[j].final_dir, dl) &&
                                   inputs.f[k].path[dl] == '/';
        }
        if (input_rewritten) {
            ps->will_run = 1;
            if (ctx->rank == 0)
                printf("  %-16s %-13s run (an input is rewritten by an earlier stage)\n",
                       ps->cfg->name, ps->cfg->kind->name);
            manifest_files_free(&inputs);
            continue;
        }
        char fp[65] = {0}, *fptext = NULL;
        if (!rc) rc = bgfm_ctx_agree(ctx, fingerprint(ctx, &p, &plan, i, &inputs, fp, &fptext));
        if (rc) {
            manifest_files_free(&inputs);
            break;
        }
        char have[65], outs[65];
        int complete = manifest_read(ps->final_dir, have, outs);
        int same = complete && !strcmp(have, fp);
        /* rank 0's view of the file system decides, for everyone */
        rc = bgfm_ctx_agree(ctx, BGFM_MPI(&ctx->err, MPI_Bcast(&same, 1, MPI_INT, 0, ctx->comm)));
        if (rc) {
            free(fptext);
            manifest_files_free(&inputs);
            break;
        }
        const char *why = o->force ? "--force" : i >= forced_from ? "--from" : !complete ? "no complete output" : !same ? "inputs or parameters changed" : NULL;
        ps->will_run = why != NULL;
        if (plan_only) {
            if (ctx->rank == 0)
                printf("  %-16s %-13s %s%s%s\n", ps->cfg->name, ps->cfg->kind->name,
                       why ? "run (" : "up to date", why ? why : "", why ? ")" : "");
        } else if (!why) {
            log_info(ctx, "  up to date, skipped (%s)", ps->final_dir);
            /* a complete stage that left subjects out keeps saying so (exit 9) */
            int was_partial = ctx->rank == 0 && manifest_is_partial(ps->final_dir);
            rc = bgfm_ctx_agree(ctx, BGFM_MPI(&ctx->err, MPI_Bcast(&was_partial, 1, MPI_INT, 0,
                                                                   ctx->comm)));
            if (!rc && was_partial) {
                char m[512];
                snprintf(m, sizeof m, "stage '%s' is up to date but left subjects out (see \"skipped\" in %s/manifest.json)",
                         ps->cfg->name, ps->final_dir);
                size_t w = strlen(partial_err.msg);
                if (w + strlen(m) + 3 < sizeof partial_err.msg)
                    snprintf(partial_err.msg + w, sizeof partial_err.msg - w, "%s%s", w ? "; " : "", m);
                partial_err.code = BGFM_PARTIAL;
                partial = 1;
            }
        } else {
            log_info(ctx, "  running: %s", why);
            rc = run_stage(ctx, &p, &plan, i, fp, fptext, &inputs, metrics);
            if (rc == BGFM_PARTIAL) {
                /* one summary for the whole run: every partial stage, in order */
                if (partial) {
                    size_t w = strlen(partial_err.msg), add = strlen(ctx->err.msg);
                    if (w + add + 3 < sizeof partial_err.msg) {
                        memcpy(partial_err.msg + w, "; ", 2);
                        memcpy(partial_err.msg + w + 2, ctx->err.msg, add + 1);
                    }
                } else {
                    memcpy(&partial_err, &ctx->err, sizeof partial_err);
                }
                partial = 1;
                bgfm_err_clear(&ctx->err);
                rc = 0;
            }
        }
        (void)upstream_will_run;
        free(fptext);
        manifest_files_free(&inputs);
    }
    if (!rc && partial) {
        memcpy(&ctx->err, &partial_err, sizeof partial_err);
        rc = BGFM_PARTIAL;
    }
    if (lockfd >= 0) close(lockfd);
    free(metrics);
    run_plan_free(&plan);
    config_free(&p);
    return rc;
}

static int parse_run_args(bgfm_ctx *ctx, int argc, char **argv, run_opts *o, int validate) {
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!validate && (!strcmp(a, "--from") || !strcmp(a, "--only"))) {
            if (i + 1 >= argc) return bgfm_ctx_fail(ctx, BGFM_EUSAGE, "%s needs a stage name", a);
            if (!strcmp(a, "--from")) o->from = argv[++i];
            else o->only = argv[++i];
        } else if (!validate && !strcmp(a, "--force")) {
            o->force = 1;
        } else if (!validate && !strcmp(a, "--dry-run")) {
            o->dry_run = 1;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            ctx->quiet = 1;
        } else if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) {
            ctx->verbose = 1;
        } else if (a[0] == '-') {
            return bgfm_ctx_fail(ctx, BGFM_EUSAGE, "unknown option '%s' (see bgfm %s --help)", a,
                                 argv[0]);
        } else if (!o->file) {
            o->file = a;
        } else {
            return bgfm_ctx_fail(ctx, BGFM_EUSAGE, "one pipeline file at a time ('%s' and '%s')",
                                 o->file, a);
        }
    }
    if (!o->file) return bgfm_ctx_fail(ctx, BGFM_EUSAGE, "missing PIPELINE.yaml (see bgfm %s --help)", argv[0]);
    if (o->from && o->only) return bgfm_ctx_fail(ctx, BGFM_EUSAGE, "use --from or --only, not both");
    return 0;
}

int cmd_run(bgfm_ctx *ctx, int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        if (ctx->rank == 0)
            printf("usage: bgfm run PIPELINE.yaml [--from STAGE] [--only STAGE] [--force] "
                   "[--dry-run] [--quiet] [--verbose]\n\n"
                   "Runs the pipeline's stages in order, skipping every stage whose manifest\n"
                   "matches (same input contents, parameters, code version; same rank count for\n"
                   "rank-sensitive stages). Outputs go to WORKDIR/<stage>/ and appear only when\n"
                   "complete; WORKDIR/metrics.jsonl gets one line per stage.\n\n"
                   "  --from STAGE  rerun STAGE and every stage after it\n"
                   "  --only STAGE  run only STAGE (its upstream must be complete)\n"
                   "  --force       rerun every stage\n"
                   "  --dry-run     print what would run, and why, then stop\n"
                   "  --quiet       no progress output\n");
        return 0;
    }
    run_opts o;
    int rc = parse_run_args(ctx, argc, argv, &o, 0);
    if (rc) return rc;
    return do_run(ctx, &o, 0);
}

int cmd_validate(bgfm_ctx *ctx, int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        if (ctx->rank == 0)
            printf("usage: bgfm validate PIPELINE.yaml\n\nChecks the pipeline file and prints "
                   "it resolved, every default filled in,\nthen the plan: which stages would "
                   "run and why. Writes nothing.\n");
        return 0;
    }
    run_opts o;
    int rc = parse_run_args(ctx, argc, argv, &o, 1);
    if (rc) return rc;
    return do_run(ctx, &o, 1);
}
