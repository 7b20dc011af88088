/* plan.c: the plan behind `bgfm run` / `bgfm validate` (run.h): each stage's upstream
 * (the nearest earlier stage producing what it consumes), its folders, and its
 * fingerprint (the canonical text of everything its outputs depend on, hashed).
 * Not the running of stages (run.c) and not the hashing of inputs (inputs.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/fsutil.h"
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
    plan->s = bgfm_calloc(e, (size_t)(p->n_stages ? p->n_stages : 1), sizeof *plan->s,
                          "planned stages");
    if (!plan->s) return BGFM_ENOMEM;
    for (int i = 0; i < p->n_stages; i++) {
        const bgfm_stage_cfg *s = &p->stages[i];
        run_plan_stage *ps = &plan->s[i];
        ps->cfg = s;
        ps->upstream = ps->upstream2 = -1;
        BGFM_ASSERT(s->kind != NULL);
        const bgfm_artifact need[2] = {s->kind->consumes, s->kind->consumes2};
        int *up[2] = {&ps->upstream, &ps->upstream2};
        for (int u = 0; u < 2; u++) {
            if (need[u] == BGFM_ART_NONE || need[u] == BGFM_ART_BIDS) continue;
            if (s->kind->supplies && s->kind->supplies(s, need[u])) continue;
            *up[u] = find_producer(p, i, need[u]);
            if (*up[u] < 0)
                return bgfm_fail(e, BGFM_EUSAGE,
                                 "%s:%d:%d: stage '%s' (uses: %s) needs %s, but no earlier stage "
                                 "produces it; add a stage that does before it",
                                 p->file, s->line, s->col, s->name, s->kind->name,
                                 artifact_name(need[u]));
        }
        ps->final_dir = fs_join(p->workdir, s->name, e);
        size_t n = strlen(p->workdir) + strlen(s->name) + 16;
        ps->tmp_dir = ps->final_dir ? bgfm_malloc(e, n, "stage temp folder path") : NULL;
        if (!ps->tmp_dir) return BGFM_ENOMEM;
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

/* ---- fingerprints ---- */

static char *params_text(const bgfm_params *pp) {
    char *txt = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&txt, &len);
    if (!f) return NULL;
    params_write(pp, f, 0);
    fclose(f);
    return txt;
}

int run_fingerprint(bgfm_ctx *ctx, const bgfm_pipeline *p, const run_plan *plan, int i,
                    const manifest_files *inputs, int ranks, char out[65], char **text) {
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
    if (k->rank_sensitive) fprintf(f, "ranks: %d\n", ranks);
    const char *rev = k->revision ? k->revision(ps->cfg) : NULL;
    if (rev) fprintf(f, "revision: %s\n", rev);
    fprintf(f, "on_error: %s\nlabel_column: %s\n",
            p->on_error == BGFM_ON_ERROR_SKIP ? "skip" : "fail", p->label_column);
    /* the datasets; their roles only where they choose graphs (pretrain, probe), so that
     * a changed role reruns those and not parcellate or connectivity */
    int roles = k->consumes == BGFM_ART_GRAPHS || k->consumes == BGFM_ART_CHECKPOINT;
    /* a kind reading only some roles' graphs lists only those datasets, and the digest of
     * what it reads of its upstream (stage.h, upstream_digest) */
    char dg[65] = "";
    int narrow = k->upstream_digest && k->reads_roles && p->n_datasets > 0 && ps->upstream >= 0 &&
                 k->upstream_digest(p, ps->cfg, plan->s[ps->upstream].final_dir, dg) == 1;
    for (int d = 0; d < p->n_datasets; d++) {
        const bgfm_dataset_cfg *ds = &p->datasets[d];
        if (narrow && !(ds->role & k->reads_roles)) continue;
        fprintf(f, "dataset %s: role %d, bids %s, participants %s, label_column %s, site_column "
                "%s, t_r %.17g, filter %s", ds->name, roles ? ds->role : 0, ds->bids,
                ds->participants, ds->label_column, ds->site_column ? ds->site_column : "-",
                ds->t_r, ds->filter ? ds->filter : "-");
        for (int q = 0; q < BGFM_N_ENTITIES; q++)
            fprintf(f, ", %s %s", bgfm_entity_name(q), ds->entity[q] ? ds->entity[q] : "-");
        for (int q = 0; q < ds->n_label_map; q++) fprintf(f, ", label_map %s", ds->label_map[q]);
        fputc('\n', f);
    }
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
        const int got = manifest_read(plan->s[ups[u]].final_dir, fp, outs, &ctx->err);
        if (got <= 0) {
            fclose(f);
            free(t);
            free(params);
            if (got < 0) return ctx->err.code;
            return bgfm_fail(&ctx->err, BGFM_EUSAGE,
                             "stage '%s' needs the outputs of stage '%s', which is not complete "
                             "(no %s/manifest.json); run it first (bgfm run without --only)",
                             ps->cfg->name, plan->s[ups[u]].cfg->name, plan->s[ups[u]].final_dir);
        }
        if (narrow && ups[u] == ps->upstream)
            fprintf(f, "upstream %s, what it reads: %s\n", plan->s[ups[u]].cfg->name, dg);
        else
            fprintf(f, "upstream %s: %s\n", plan->s[ups[u]].cfg->name, outs);
    }
    fclose(f);
    free(params);
    sha256_buf_hex(t, tl, out);
    *text = t;
    return 0;
}

