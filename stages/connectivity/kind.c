/* kind.c: the `connectivity` stage kind: its options table (the documentation of its
 * `with:` keys), cross-key checks, and run() mapping the resolved options onto
 * connectivity_stage_exec. Not the math (kernels.c) nor the driver (exec.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/connectivity.h"
#include "bgfm/fsutil.h"
#include "bgfm/json.h"
#include "bgfm/log.h"
#include "bgfm/mline.h"
#include "bgfm/yamlout.h"

static const bgfm_opt connectivity_opts_table[] = {
    {"measure", BGFM_OPT_ENUM, "pearson", 1, 0, "pearson|shrunk_pearson|partial",
     "pearson (diagonal 1); shrunk_pearson (Ledoit-Wolf as sklearn's LedoitWolf on z-scored "
     "series); partial (-P_ij/sqrt(P_ii P_jj) of the shrunk covariance's inverse)"},
    {"fisher_z", BGFM_OPT_BOOL, "false", 1, 0, NULL,
     "store atanh(r) (|r| clipped to 1-1e-7, diagonal 0) instead of r"},
    {"adjacency.threshold", BGFM_OPT_REAL, "0.3", -1, 1, NULL,
     "A_ij = 1[C_ij > threshold], i != j (on r, before Fisher z); ignored when "
     "adjacency.density is given"},
    {"adjacency.density", BGFM_OPT_REAL, NULL, 0, 1, NULL,
     "instead of a threshold: keep this fraction of the unordered region pairs with the "
     "largest |C_ij| (ties broken by (i, j) order)"},
    {"rwse_steps", BGFM_OPT_INT, "5", 1, 64, NULL,
     "k: random-walk structural encoding (P^s)_ii for s = 1..k (model.md section 1)"},
    {"windows.length", BGFM_OPT_INT, NULL, 2, 1e9, NULL,
     "sliding windows of this many TRs, one graph per window; unset: one graph per scan"},
    {"windows.stride", BGFM_OPT_INT, NULL, 1, 1e9, NULL,
     "TRs between window starts (default: windows.length, i.e. no overlap)"},
    {"windows.length_s", BGFM_OPT_REAL, NULL, 1e-3, 1e7, NULL,
     "instead of windows.length: windows of this many seconds, round(length_s / TR) volumes "
     "of each scan's own TR (datasets with different TRs); at least 2"},
    {"windows.stride_s", BGFM_OPT_REAL, NULL, 1e-3, 1e7, NULL,
     "seconds between window starts, round(stride_s / TR) volumes, at least 1 (default: "
     "windows.length_s)"},
    {"constant_regions", BGFM_OPT_ENUM, "error", 1, 0, "error|flag",
     "a region constant in a scan/window but not flagged by parcellate: error (exit 3, or "
     "skipped with on_error: skip) or flag it in that graph"},
    {"graphs_per_shard", BGFM_OPT_INT, "256", 1, 1e7, NULL,
     "graphs per shard file (shard boundaries do not depend on the rank count)"},
    {"compress", BGFM_OPT_INT, "0", 0, 9, NULL,
     "deflate level of the shard datasets (with shuffle); 0 = uncompressed"},
    {"site_column", BGFM_OPT_STR, "site", 1, 0, NULL,
     "participants.tsv column stored as each graph's site (\"\" when the column is absent)"},
};

static int connectivity_validate(const bgfm_pipeline *p, const bgfm_stage_cfg *s, bgfm_err *e) {
    const bgfm_value *th = params_value(&s->with, "adjacency.threshold");
    const bgfm_value *de = params_value(&s->with, "adjacency.density");
    if (th->state == 2 && de->state == 2)
        return bgfm_fail(e, BGFM_EUSAGE,
                         "%s:%d:%d: stage '%s': give exactly one of adjacency.threshold and "
                         "adjacency.density, not both",
                         p->file, de->line, de->col, s->name);
    if (de->state == 2 && !(de->r > 0))
        return bgfm_fail(e, BGFM_EUSAGE,
                         "%s:%d:%d: stage '%s': adjacency.density must be in (0, 1], got %g",
                         p->file, de->line, de->col, s->name, de->r);
    const bgfm_value *wl = params_value(&s->with, "windows.length");
    const bgfm_value *ws = params_value(&s->with, "windows.stride");
    if (ws->state == 2 && wl->state != 2)
        return bgfm_fail(e, BGFM_EUSAGE,
                         "%s:%d:%d: stage '%s': windows.stride needs windows.length (the window "
                         "size in TRs)",
                         p->file, ws->line, ws->col, s->name);
    const bgfm_value *ls = params_value(&s->with, "windows.length_s");
    const bgfm_value *ss = params_value(&s->with, "windows.stride_s");
    if (ls->state == 2 && wl->state == 2)
        return bgfm_fail(e, BGFM_EUSAGE, "%s:%d:%d: stage '%s': give windows.length (TRs) or "
                         "windows.length_s (seconds), not both", p->file, ls->line, ls->col,
                         s->name);
    if (ss->state == 2 && ls->state != 2)
        return bgfm_fail(e, BGFM_EUSAGE, "%s:%d:%d: stage '%s': windows.stride_s needs "
                         "windows.length_s (the window in seconds)", p->file, ss->line, ss->col,
                         s->name);
    return 0;
}

/* Resolved `with:` values -> options. */
static void opts_from_params(const bgfm_params *w, const bgfm_pipeline *pipe,
                             connectivity_opts *o) {
    memset(o, 0, sizeof *o);
    const char *m = params_str(w, "measure");
    o->p.measure = !strcmp(m, "partial")          ? CONNECTIVITY_PARTIAL
                   : !strcmp(m, "shrunk_pearson") ? CONNECTIVITY_SHRUNK
                                                  : CONNECTIVITY_PEARSON;
    o->p.fisher_z = params_bool(w, "fisher_z");
    const bgfm_value *de = params_value(w, "adjacency.density");
    if (de->state) {
        o->p.adj_rule = CONNECTIVITY_ADJ_DENSITY;
        o->p.adj_value = de->r;
    } else {
        o->p.adj_rule = CONNECTIVITY_ADJ_THRESHOLD;
        o->p.adj_value = params_real(w, "adjacency.threshold");
    }
    o->p.rwse_steps = (int)params_int(w, "rwse_steps");
    const bgfm_value *wl = params_value(w, "windows.length");
    const bgfm_value *ws = params_value(w, "windows.stride");
    o->p.window_length = wl->state ? wl->i : 0;
    o->p.window_stride = wl->state ? (ws->state ? ws->i : wl->i) : 0;
    const bgfm_value *ls = params_value(w, "windows.length_s");
    const bgfm_value *ss = params_value(w, "windows.stride_s");
    o->p.window_length_s = ls->state ? ls->r : 0;
    o->p.window_stride_s = ls->state ? (ss->state ? ss->r : ls->r) : 0;
    o->p.constant = !strcmp(params_str(w, "constant_regions"), "flag")
                        ? CONNECTIVITY_CONSTANT_FLAG
                        : CONNECTIVITY_CONSTANT_ERROR;
    o->graphs_per_shard = params_int(w, "graphs_per_shard");
    o->compress = (int)params_int(w, "compress");
    o->site_column = params_str(w, "site_column");
    o->skip_bad = pipe->on_error == BGFM_ON_ERROR_SKIP;
    o->max_memory = pipe->max_memory_per_rank;
    o->pipeline_file = pipe->file;
}

/* Collective: the stage's "connectivity" line of metrics.jsonl (rank 0 writes it). */
static void metrics_line(bgfm_stage_run *r, const connectivity_stats *st, double wall) {
    bgfm_ctx *ctx = r->ctx;
    double mine[5] = {(double)st->n_graphs, st->seconds_compute, st->seconds_write,
                      st->bytes_read, (double)st->n_reused};
    double sum[5] = {0, 0, 0, 0, 0};
    bgfm_err me = {0}; /* metrics are best effort: a failure is a warning */
    if (BGFM_MPI(&me, MPI_Reduce(mine, sum, 5, MPI_DOUBLE, MPI_SUM, 0, ctx->comm))) {
        log_warn(ctx, "%s", me.msg);
        return;
    }
    if (ctx->rank != 0 || !r->metrics) return;
    mline m;
    mline_begin(&m, "connectivity", r->stage->name, "connectivity");
    mline_int(&m, "ranks", ctx->size);
    mline_num(&m, "wall_s", wall);
    mline_int(&m, "graphs", (int64_t)sum[0]);
    mline_int(&m, "shards", st->n_shards);
    mline_int(&m, "skipped_subjects", st->n_skipped);
    mline_num(&m, "graphs_per_s", wall > 0 ? sum[0] / wall : 0);
    mline_num(&m, "graphs_per_s_per_rank", wall > 0 ? sum[0] / wall / ctx->size : 0);
    mline_num(&m, "compute_s_sum", sum[1]);
    mline_num(&m, "write_s_sum", sum[2]);
    mline_num(&m, "bytes_read", sum[3]);
    mline_int(&m, "graphs_reused", (int64_t)sum[4]);
    mline_append(&m, ctx, r->metrics);
}

static int connectivity_run(bgfm_stage_run *r) {
    bgfm_ctx *ctx = r->ctx;
    double t0 = MPI_Wtime();
    if (!r->upstream)
        return bgfm_ctx_agree(ctx, bgfm_fail(&ctx->err, BGFM_EUSAGE,
                                             "stage '%s' (connectivity) needs an earlier "
                                             "parcellate stage producing timeseries.h5",
                                             r->stage->name));
    connectivity_opts o;
    opts_from_params(&r->stage->with, r->pipe, &o);
    o.stage_name = r->stage->name;
    char *ts = fs_join(r->upstream, "timeseries.h5", &ctx->err);
    /* per-dataset units: keyed by the options' text (every option, so any change
     * recomputes) and the parcellate units' keys */
    char *salt = NULL;
    size_t sl = 0;
    FILE *sf = r->pipe->n_datasets > 0 ? open_memstream(&salt, &sl) : NULL;
    if (sf) {
        params_write(&r->stage->with, sf, 0);
        fclose(sf);
    }
    o.units_prev = r->force ? NULL : r->final_dir; /* --force: nothing reused */
    o.units_upstream = r->upstream;
    o.units_salt = salt;
    int rc = ts ? 0 : BGFM_ENOMEM;
    if (!rc && r->pipe->n_datasets > 0 && !salt)
        rc = bgfm_fail(&ctx->err, BGFM_ENOMEM, "out of memory keying the parts");
    rc = bgfm_ctx_agree(ctx, rc);
    connectivity_stats st;
    memset(&st, 0, sizeof st);
    if (!rc) rc = connectivity_stage_exec(ctx, &o, ts, r->outdir, &st);
    free(ts);
    free(salt);
    r->bytes_read = st.bytes_read;
    r->items = (double)st.n_graphs;
    r->items_unit = "graphs";
    if (!rc) metrics_line(r, &st, MPI_Wtime() - t0);
    /* on_error: skip left subjects out: complete outputs, but the run ends with 9 and
     * the manifest lists them (as does index.h5 /skipped) */
    for (char *line = st.skipped_text; !rc && ctx->rank == 0 && line && *line;) {
        char *nl = strchr(line, '\n'), *tab = strchr(line, '\t');
        if (!nl || !tab || tab > nl) break;
        *nl = *tab = '\0';
        if (bgfm_stage_skip_add(r, line, tab + 1)) break;
        line = nl + 1;
    }
    free(st.skipped_text);
    if (!rc && st.n_skipped) {
        log_info(ctx, "connectivity: %lld subject(s) skipped (on_error: skip)",
                 (long long)st.n_skipped);
        rc = bgfm_fail(&ctx->err, BGFM_PARTIAL,
                       "connectivity: %lld subject(s) skipped (on_error: skip); see /skipped in "
                       "its index.h5", (long long)st.n_skipped);
    }
    return rc;
}

const bgfm_stage_kind bgfm_stage_connectivity = {
    .name = "connectivity",
    .summary = "Pearson / shrunk / partial correlation, adjacency, RWSE per subject, atlas "
               "and window -> graph shards + index.h5",
    .opts = connectivity_opts_table,
    .n_opts = (int)(sizeof connectivity_opts_table / sizeof connectivity_opts_table[0]),
    .consumes = BGFM_ART_TIMESERIES,
    .consumes2 = BGFM_ART_NONE,
    .produces = BGFM_ART_GRAPHS,
    .rank_sensitive = 0,
    .validate = connectivity_validate,
    .run = connectivity_run,
    .extra_inputs = NULL,
};
