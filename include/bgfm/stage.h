/* stage.h: the interface every stage kind implements, and the registry of kinds.
 * Not the runner (plan.h/run in pipeline/) and not any stage's algorithm.
 *
 * A stage kind declares its options table, which artifact it consumes and which it
 * produces. The runner resolves each stage's upstream (the nearest earlier stage
 * producing what it consumes), hands it a temporary output directory, and renames
 * that directory into place only when the stage returns success on every rank. */
#ifndef BGFM_STAGE_H
#define BGFM_STAGE_H

#include "bgfm/config.h"
#include "bgfm/ctx.h"

struct manifest_files; /* manifest.h */

typedef enum bgfm_artifact {
    BGFM_ART_NONE = 0,
    BGFM_ART_BIDS,       /* the input dataset + atlases (parcellate) */
    BGFM_ART_TIMESERIES, /* timeseries.h5 */
    BGFM_ART_GRAPHS,     /* graphs/index.h5 + shards */
    BGFM_ART_CHECKPOINT, /* checkpoints/ckpt-<step>.h5, final.h5 */
    BGFM_ART_REPORT      /* report/ */
} bgfm_artifact;

/* What the runner hands a stage. All paths are absolute or relative to the cwd. */
typedef struct bgfm_stage_run {
    bgfm_ctx *ctx;
    const bgfm_pipeline *pipe;
    const bgfm_stage_cfg *stage;
    const char *outdir;      /* temporary output directory (exists, empty or resumable) */
    const char *final_dir;   /* where outdir will be renamed to on success */
    const char *upstream;    /* output directory of the upstream stage, NULL for BIDS */
    const char *upstream2;   /* secondary input (e.g. graphs for probe), or NULL */
    const char *metrics;     /* workdir/metrics.jsonl: rank 0 appends JSON lines */
    /* the files of the kind's extra_inputs with their SHA-256, the same on every rank
     * (the per-dataset keys of parcellate's parts, docs/corpus.md); NULL: none */
    const struct manifest_files *inputs;
    int force;               /* bgfm run --force: redo everything (no per-dataset part reused) */
    /* Filled by the stage with THIS RANK's share (the engine sums over ranks) and
     * written into the manifest's "stats" and the stage's metrics line: */
    double bytes_read;
    double items;            /* subjects, graphs, steps ... processed by this rank */
    const char *items_unit;
    /* Under on_error: skip, the inputs the stage left out (file or subject, and why),
     * filled on rank 0 at least (other ranks may leave it empty); malloc'ed arrays of
     * malloc'ed strings that the engine writes into the manifest's "skipped" list and
     * frees. Add entries with bgfm_stage_skip_add (pipeline/engine/stage.c). */
    int64_t n_skipped;
    char **skipped_item, **skipped_reason;
} bgfm_stage_run;

/* Append (item, reason) to r's skipped list (copies both). 0 or BGFM_ENOMEM. */
int bgfm_stage_skip_add(bgfm_stage_run *r, const char *item, const char *reason);

typedef struct bgfm_stage_kind {
    const char *name;      /* value of `uses:` */
    const char *summary;
    const bgfm_opt *opts;  /* options of `with:` */
    int n_opts;
    bgfm_artifact consumes, consumes2, produces;
    int rank_sensitive;    /* 1: outputs depend on the rank count (manifest includes it) */
    /* Cross-key checks after the table's own validation; NULL if none. */
    int (*validate)(const bgfm_pipeline *p, const bgfm_stage_cfg *s, bgfm_err *e);
    /* Collective over ctx->comm. Returns an agreed status (same on every rank). */
    int (*run)(bgfm_stage_run *r);
    /* Files (other than the upstream outputs) whose contents the manifest hashes;
     * NULL if none. Returns a malloc'ed NULL-terminated array of malloc'ed paths. */
    char **(*extra_inputs)(const bgfm_pipeline *p, const bgfm_stage_cfg *s, bgfm_err *e);
    /* 1 when the stage's own options name what it consumes as `a` (a probe's
     * `checkpoint: PATH`), so no earlier stage has to produce it; NULL: never. */
    int (*supplies)(const bgfm_stage_cfg *s, bgfm_artifact a);
    /* With inputs.datasets, a kind that reads only the graphs of some datasets (pretrain:
     * roles pretrain and both) names those roles here, and hashes what it reads of its
     * upstream's output folder into out (64 hex): its fingerprint then holds that digest
     * and only those datasets, in place of the upstream's outputs_sha256 and every
     * dataset, so that adding a dataset it does not read does not rerun it
     * (docs/corpus.md). Returns 1 with out set, 0 when it cannot tell (the whole upstream
     * counts then). NULL / 0: the whole upstream and every dataset. Rank-local. */
    int reads_roles;
    int (*upstream_digest)(const bgfm_pipeline *p, const bgfm_stage_cfg *s,
                           const char *upstream_dir, char out[65]);
    /* A line of the fingerprint ("revision: ..."), when a version computes the outputs of
     * these options differently from the versions before (so a folder they made runs
     * again, and only where the change applies); NULL, or NULL returned: none. */
    const char *(*revision)(const bgfm_stage_cfg *s);
} bgfm_stage_kind;

const bgfm_stage_kind *stage_kind_find(const char *name);
/* All kinds, NULL-terminated (for nearest-name suggestions and docs). */
const bgfm_stage_kind *const *stage_kinds(void);

/* The kinds, defined in stages/<kind>/ */
extern const bgfm_stage_kind bgfm_stage_parcellate;
extern const bgfm_stage_kind bgfm_stage_connectivity;
extern const bgfm_stage_kind bgfm_stage_pretrain;
extern const bgfm_stage_kind bgfm_stage_probe;
extern const bgfm_stage_kind bgfm_stage_finetune;
extern const bgfm_stage_kind bgfm_stage_prompt;

#endif
