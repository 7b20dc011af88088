/* run.c: `bgfm run` and `bgfm validate`: what is up to date (manifest fingerprints),
 * each stage run in a temporary folder renamed into place, its manifest and metrics line.
 * Not the plan (plan.c), the input hashing (inputs.c), any stage's work (stages/<kind>/)
 * nor the YAML parser (config.c). */
#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "bgfm/cli.h"
#include "bgfm/config.h"
#include "bgfm/fsutil.h"
#include "bgfm/log.h"
#include "bgfm/manifest.h"
#include "bgfm/mline.h"
#include "bgfm/optvalue.h"
#include "bgfm/run.h"
#include "bgfm/stage.h"
#include "bgfm/yamlout.h"

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
    char *old = bgfm_malloc(e, n, "old output folder path");
    if (!old) {
        manifest_files_free(&outs);
        return BGFM_ENOMEM;
    }
    snprintf(old, n, "%s/.%s.old", p->workdir, ps->cfg->name);
    rc = fs_remove_tree(p->workdir, old, e);
    if (!rc && fs_exists(ps->final_dir) && rename(ps->final_dir, old) != 0)
        rc = bgfm_fail(e, BGFM_EIO, "cannot move old output '%s' aside: %s", ps->final_dir,
                       strerror(errno));
    if (!rc && rename(ps->tmp_dir, ps->final_dir) != 0)
        rc = bgfm_fail(e, BGFM_EIO, "cannot rename '%s' to '%s': %s", ps->tmp_dir, ps->final_dir,
                       strerror(errno));
    if (!rc) {
        manifest_info mi = {ps->cfg->name, ps->cfg->kind->name, p->file, fp, fptext, outs_sha,
                            inputs, &outs, ctx->size, partial, started, wall, r->bytes_read,
                            r->items, r->items_unit, r->n_skipped, r->skipped_item,
                            r->skipped_reason};
        rc = manifest_write(ps->final_dir, &mi, e);
    }
    if (!rc) rc = fs_remove_tree(p->workdir, old, e);
    free(old);
    manifest_files_free(&outs);
    return rc;
}

/* Rank 0: the engine's "stage" line of metrics.jsonl (docs/formats.md). */
static void metrics_line(bgfm_ctx *ctx, const char *metrics, const run_plan_stage *ps, int status,
                         double wall, double bytes, double items, const char *unit,
                         const double *rss) {
    char now[32];
    log_utc_now(now, sizeof now);
    mline m;
    mline_begin(&m, "stage", ps->cfg->name, ps->cfg->kind->name);
    mline_str(&m, "time", now);
    mline_int(&m, "status", status);
    mline_int(&m, "ranks", ctx->size);
    mline_int(&m, "threads", openblas_get_num_threads());
    mline_num(&m, "wall_s", wall);
    mline_num(&m, "bytes_read", bytes);
    mline_num(&m, "items", items);
    mline_str(&m, "items_unit", unit);
    mline_num(&m, "items_per_s", wall > 0 ? items / wall : 0);
    mline_nums(&m, "peak_rss_mib", rss, ctx->size, 1);
    mline_append(&m, ctx, metrics);
}

static int run_stage(bgfm_ctx *ctx, const bgfm_pipeline *p, const run_plan *plan, int i,
                     const char *fp, const char *fptext, const manifest_files *inputs,
                     const char *metrics, int force) {
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
    r.inputs = inputs;
    r.force = force;
    char started[32];
    log_utc_now(started, sizeof started);
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
    double *all_rss = bgfm_calloc(&ctx->err, (size_t)ctx->size, sizeof *all_rss,
                                  "peak RSS of the ranks");
    int mrc = bgfm_ctx_agree(ctx, all_rss ? 0 : BGFM_ENOMEM);
    if (!mrc) { /* the same two collectives on every rank, then one agreement */
        mrc = BGFM_MPI(&ctx->err, MPI_Allreduce(mine, sum, 2, MPI_DOUBLE, MPI_SUM, ctx->comm));
        int grc = mline_gather_rss(ctx, all_rss, &ctx->err);
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

static int stage_index(const bgfm_pipeline *p, const char *name, const char *opt, bgfm_err *e) {
    for (int i = 0; i < p->n_stages; i++)
        if (!strcmp(p->stages[i].name, name)) return i;
    const char **names = bgfm_calloc(e, (size_t)p->n_stages + 1, sizeof *names, "stage names");
    for (int i = 0; names && i < p->n_stages; i++) names[i] = p->stages[i].name;
    const char *near = names ? optvalue_nearest(name, (const char *const *)names, p->n_stages) : NULL;
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

/* Append a partial stage's message to the run's summary (one exit 9 for the whole run,
 * naming every stage that left inputs out, in order). */
static void partial_note(bgfm_err *sum, const char *msg) {
    size_t w = strlen(sum->msg), add = strlen(msg);
    if (w + add + 3 < sizeof sum->msg)
        snprintf(sum->msg + w, sizeof sum->msg - w, "%s%s", w ? "; " : "", msg);
    sum->code = BGFM_PARTIAL;
}

enum run_why { WHY_NONE, WHY_FORCE, WHY_FROM, WHY_ABSENT, WHY_CHANGED, WHY_RANKS };

/* Collective: why stage i must run (WHY_NONE: its manifest matches). Rank 0 reads the
 * manifest and decides for everyone. A rank-sensitive stage whose manifest matches the
 * fingerprint recomputed with the manifest's rank count changed only in its rank count
 * (*old_ranks). */
static int stage_why(bgfm_ctx *ctx, const bgfm_pipeline *p, const run_plan *plan, int i,
                     const run_opts *o, int forced_from, const manifest_files *inputs,
                     const char *fp, int why[2]) {
    const run_plan_stage *ps = &plan->s[i];
    why[0] = WHY_NONE;
    why[1] = 0;
    int rc = 0;
    if (ctx->rank == 0) {
        char have[65], outs[65];
        const int complete = manifest_read(ps->final_dir, have, outs, &ctx->err);
        if (complete < 0) rc = ctx->err.code;
        why[0] = o->force ? WHY_FORCE : i >= forced_from ? WHY_FROM : !complete ? WHY_ABSENT
                 : strcmp(have, fp) ? WHY_CHANGED : WHY_NONE;
        int old = !rc && why[0] == WHY_CHANGED && ps->cfg->kind->rank_sensitive
                      ? manifest_read_ranks(ps->final_dir) : 0;
        if (old > 0 && old != ctx->size) {
            char fpo[65], *t = NULL;
            rc = run_fingerprint(ctx, p, plan, i, inputs, old, fpo, &t);
            if (!rc && !strcmp(fpo, have)) {
                why[0] = WHY_RANKS;
                why[1] = old;
            }
            free(t);
        }
    }
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc) rc = bgfm_ctx_agree(ctx, BGFM_MPI(&ctx->err, MPI_Bcast(why, 2, MPI_INT, 0, ctx->comm)));
    return rc;
}

static void why_text(const int why[2], int ranks, char *buf, size_t n) {
    switch (why[0]) {
    case WHY_FORCE: snprintf(buf, n, "--force"); break;
    case WHY_FROM: snprintf(buf, n, "--from"); break;
    case WHY_ABSENT: snprintf(buf, n, "no complete output"); break;
    case WHY_CHANGED: snprintf(buf, n, "inputs or parameters changed"); break;
    case WHY_RANKS:
        snprintf(buf, n, "the rank count changed: %d -> %d ranks, and this stage's outputs "
                 "depend on it", why[1], ranks);
        break;
    default: buf[0] = '\0';
    }
}

/* Collective, --dry-run / validate: 1 when an input of stage i lies in the output of an
 * earlier stage of this plan that runs (the checkpoint a chained pretrain stage starts
 * from), so this stage runs too. */
static int input_rewritten(const run_plan *plan, int i, const manifest_files *inputs) {
    for (int j = 0; j < i; j++) {
        size_t dl = strlen(plan->s[j].final_dir);
        for (int k = 0; plan->s[j].will_run && k < inputs->n; k++)
            if (!strncmp(inputs->f[k].path, plan->s[j].final_dir, dl) &&
                inputs->f[k].path[dl] == '/')
                return 1;
    }
    return 0;
}

/* Collective: one stage of the loop: decide, then run, skip or (plan_only) print. */
static int do_stage(bgfm_ctx *ctx, const bgfm_pipeline *p, run_plan *plan, int i,
                    const run_opts *o, int plan_only, int forced_from, const char *metrics,
                    bgfm_err *partial) {
    run_plan_stage *ps = &plan->s[i];
    const char *name = ps->cfg->name, *kind = ps->cfg->kind->name;
    int up_running = (ps->upstream >= 0 && plan->s[ps->upstream].will_run) ||
                     (ps->upstream2 >= 0 && plan->s[ps->upstream2].will_run);
    if (plan_only && up_running) {
        ps->will_run = 1;
        if (ctx->rank == 0) printf("  %-16s %-13s run (its upstream runs first)\n", name, kind);
        return 0;
    }
    manifest_files inputs = {0};
    int rc = run_stage_inputs(ctx, p, ps, !plan_only, &inputs);
    if (!rc && plan_only && input_rewritten(plan, i, &inputs)) {
        ps->will_run = 1;
        if (ctx->rank == 0)
            printf("  %-16s %-13s run (an input is rewritten by an earlier stage)\n", name, kind);
        manifest_files_free(&inputs);
        return 0;
    }
    char fp[65] = {0}, *fptext = NULL, why[200];
    int w[2] = {WHY_NONE, 0};
    if (!rc) rc = bgfm_ctx_agree(ctx, run_fingerprint(ctx, p, plan, i, &inputs, ctx->size, fp,
                                                      &fptext));
    if (!rc) rc = stage_why(ctx, p, plan, i, o, forced_from, &inputs, fp, w);
    why_text(w, ctx->size, why, sizeof why);
    ps->will_run = w[0] != WHY_NONE;
    if (rc) {
    } else if (plan_only) {
        if (ctx->rank == 0)
            printf("  %-16s %-13s %s%s%s\n", name, kind, ps->will_run ? "run (" : "up to date",
                   why, ps->will_run ? ")" : "");
    } else if (!ps->will_run) {
        log_info(ctx, "  up to date, skipped (%s)", ps->final_dir);
        /* a complete stage that left subjects out keeps saying so (exit 9) */
        int was_partial = ctx->rank == 0 ? manifest_is_partial(ps->final_dir, &ctx->err) : 0;
        rc = bgfm_ctx_agree(ctx, was_partial < 0 ? ctx->err.code : 0);
        if (!rc)
            rc = bgfm_ctx_agree(ctx, BGFM_MPI(&ctx->err, MPI_Bcast(&was_partial, 1, MPI_INT, 0,
                                                                   ctx->comm)));
        if (!rc && was_partial) {
            char m[512];
            snprintf(m, sizeof m, "stage '%s' is up to date but left subjects out (see "
                     "\"skipped\" in %s/manifest.json)", name, ps->final_dir);
            partial_note(partial, m);
        }
    } else {
        log_info(ctx, "  running: %s", why);
        rc = run_stage(ctx, p, plan, i, fp, fptext, &inputs, metrics, o->force);
        if (rc == BGFM_PARTIAL) {
            partial_note(partial, ctx->err.msg);
            bgfm_err_clear(&ctx->err);
            rc = 0;
        }
    }
    free(fptext);
    manifest_files_free(&inputs);
    return rc;
}

/* Every rank's OpenBLAS kernel (its choice for the CPU it runs on, or OPENBLAS_CORETYPE);
 * rank 0 warns when they differ: float32 products then round differently from rank to
 * rank, so the results, correct either way, depend on which rank ran where (docs/
 * pretrain.md, "Another machine"). A heterogeneous allocation is where this happens. */
#define BLAS_NAME 32
static int blas_kernels_check(bgfm_ctx *ctx) {
    char mine[BLAS_NAME] = {0};
    snprintf(mine, sizeof mine, "%s", openblas_get_corename());
    char *all = bgfm_malloc(&ctx->err, (size_t)ctx->size * BLAS_NAME, "the ranks' BLAS kernels");
    int rc = bgfm_ctx_agree(ctx, all ? 0 : BGFM_ENOMEM);
    if (!rc)
        rc = BGFM_MPI(&ctx->err, MPI_Allgather(mine, BLAS_NAME, MPI_CHAR, all, BLAS_NAME,
                                               MPI_CHAR, ctx->comm));
    if (!rc && ctx->rank == 0) {
        int other = 0, first = -1;
        for (int r = 1; r < ctx->size; r++)
            if (strcmp(all + (size_t)r * BLAS_NAME, all)) {
                other++;
                if (first < 0) first = r;
            }
        if (other)
            log_warn(ctx, "the ranks run different OpenBLAS kernels (%s on rank 0, %s on rank %d; "
                     "%d of %d ranks differ from rank 0): the results are correct, but their bits "
                     "depend on which rank ran where; set OPENBLAS_CORETYPE to one kernel every "
                     "node runs, e.g. mpirun -x OPENBLAS_CORETYPE=Haswell (docs/pretrain.md, "
                     "\"Another machine\")", all, all + (size_t)first * BLAS_NAME, first, other,
                     ctx->size);
    }
    free(all);
    return rc;
}

static int do_run(bgfm_ctx *ctx, const run_opts *o, int validate_only, char **workdir) {
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
    /* validate and --dry-run write nothing: no workdir, no lock, no hash cache */
    int lockfd = -1, plan_only = validate_only || o->dry_run;
    if (!rc && !plan_only) {
        int lrc = 0;
        if (ctx->rank == 0) lrc = config_workdir_make(&p, &ctx->err);
        if (!lrc) lrc = lock_workdir(ctx, &p, &lockfd);
        /* the workdir exists and was ours on every rank: the report may describe it,
         * whatever follows (its copy made before the agreement, which covers its failure) */
        char *wd = NULL;
        if (!lrc && workdir && !(wd = bgfm_strdup(&ctx->err, p.workdir))) lrc = BGFM_ENOMEM;
        rc = bgfm_ctx_agree(ctx, lrc);
        if (!rc && workdir) *workdir = wd;
        else free(wd);
        if (!rc) rc = blas_kernels_check(ctx);
    }
    char *metrics = rc ? NULL : fs_join(p.workdir, "metrics.jsonl", &ctx->err);
    if (!rc && !metrics) rc = BGFM_ENOMEM;
    if (!rc && plan_only && ctx->rank == 0) printf("# plan (%d ranks)\n", ctx->size);
    bgfm_err partial = {0};
    if (!rc && !plan_only) bgfm_signals_between_stages(); /* SIGUSR1: stop at a stage's end */
    for (int i = first; !rc && i <= last; i++) {
        if (i == first || !plan_only)
            log_info(ctx, "[%d/%d] %s (uses: %s)", i + 1, p.n_stages, plan.s[i].cfg->name,
                     plan.s[i].cfg->kind->name);
        rc = do_stage(ctx, &p, &plan, i, o, plan_only, forced_from, metrics, &partial);
        int stop = !rc && !plan_only && i < last ? bgfm_ctx_stop_requested(ctx) : 0;
        if (stop < 0) rc = BGFM_EMPI;
        else if (stop)
            rc = bgfm_fail(&ctx->err, BGFM_SIGNALLED, "stopped by SIGUSR1 (the time limit is "
                           "near) after stage '%s' completed; rerun the pipeline to continue "
                           "with stage '%s'", plan.s[i].cfg->name, plan.s[i + 1].cfg->name);
    }
    if (!rc && partial.code) {
        memcpy(&ctx->err, &partial, sizeof partial);
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

int run_command(bgfm_ctx *ctx, int argc, char **argv, char **workdir) {
    *workdir = NULL;
    if (cli_wants_help(argc, argv)) {
        if (ctx->rank == 0)
            printf("usage: bgfm run PIPELINE.yaml [--from STAGE] [--only STAGE] [--force] "
                   "[--dry-run] [--quiet] [--verbose]\n\n"
                   "Runs the pipeline's stages in order, skipping every stage whose manifest\n"
                   "matches (same input contents, parameters, code version; same rank count for\n"
                   "rank-sensitive stages). Outputs go to WORKDIR/<stage>/ and appear only when\n"
                   "complete; WORKDIR/metrics.jsonl gets one line per stage. At the end\n"
                   "(also after a failed stage) rank 0 writes the run report\n"
                   "WORKDIR/report/index.html (docs/report.md); a problem with it is a warning.\n\n"
                   "  --from STAGE  rerun STAGE and every stage after it\n"
                   "  --only STAGE  run only STAGE (its upstream must be complete)\n"
                   "  --force       rerun every stage\n"
                   "  --dry-run     print what would run, and why, then stop (writes nothing)\n"
                   "  --no-report   do not write WORKDIR/report/index.html\n"
                   "  --quiet       no progress output\n");
        return 0;
    }
    run_opts o;
    int rc = parse_run_args(ctx, argc, argv, &o, 0);
    if (rc) return rc;
    return do_run(ctx, &o, 0, o.dry_run ? NULL : workdir);
}

int cmd_validate(bgfm_ctx *ctx, int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        if (ctx->rank == 0)
            printf("usage: bgfm validate PIPELINE.yaml\n\nChecks the pipeline file and prints "
                   "it resolved, every default filled in,\nthen the plan: which stages would "
                   "run and why. Writes nothing (not even the\nworkdir's hash cache).\n");
        return 0;
    }
    run_opts o;
    int rc = parse_run_args(ctx, argc, argv, &o, 1);
    if (rc) return rc;
    return do_run(ctx, &o, 1, NULL);
}
