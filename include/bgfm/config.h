/* config.h: the pipeline file (YAML, via libyaml) turned into typed structs, with
 * every error carrying FILE:LINE:COL, the key, and the nearest valid key for typos.
 * Not the plan (plan.h decides what runs) and not the stage implementations.
 *
 * Options are declared ONCE, in tables of bgfm_opt (one per stage kind and one for
 * the top-level blocks); validation, defaults, `bgfm validate` output and
 * docs/yaml.md all come from those tables. */
#ifndef BGFM_CONFIG_H
#define BGFM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "bgfm/ctx.h"

typedef enum bgfm_opt_type {
    BGFM_OPT_BOOL,
    BGFM_OPT_INT,  /* int64 */
    BGFM_OPT_REAL, /* double */
    BGFM_OPT_STR,
    BGFM_OPT_ENUM, /* one of `choices`, "a|b|c" */
    BGFM_OPT_LIST  /* a YAML sequence of scalars, kept as strings */
} bgfm_opt_type;

/* One option. Nested maps use dotted keys: "adjacency.threshold" is the key
 * `threshold` inside the map `adjacency`. */
typedef struct bgfm_opt {
    const char *key;
    bgfm_opt_type type;
    const char *def;     /* default, as YAML scalar text; NULL: optional, unset by default */
    double min, max;     /* inclusive range for INT/REAL (min > max: unbounded) */
    const char *choices; /* ENUM: the words "a|b|c"; INT: words accepted instead of a number */
    const char *help;    /* one line, used by docs/yaml.md and `bgfm validate` */
} bgfm_opt;

typedef struct bgfm_value {
    const bgfm_opt *opt;
    int state;      /* 0 unset, 1 default, 2 given in the file */
    int line, col;  /* position in the file when given (1-based) */
    bool b;
    int64_t i;
    double r;
    char *s;        /* STR and ENUM (owned) */
    char **list;    /* LIST (owned), n_list entries */
    int n_list;
} bgfm_value;

/* Resolved values of one options table, in table order. */
typedef struct bgfm_params {
    const bgfm_opt *opts;
    int n;
    bgfm_value *v;
} bgfm_params;

/* Accessors; the key must exist in the table (asserted: a typo in code is a bug). */
bool params_has(const bgfm_params *p, const char *key); /* set or defaulted */
bool params_bool(const bgfm_params *p, const char *key);
int64_t params_int(const bgfm_params *p, const char *key);   /* 0 when the value is a word */
const char *params_word(const bgfm_params *p, const char *key); /* INT: the word, else NULL */
double params_real(const bgfm_params *p, const char *key);
const char *params_str(const bgfm_params *p, const char *key); /* NULL when unset */
const bgfm_value *params_value(const bgfm_params *p, const char *key);
/* Canonical text "key: value" lines of every set/defaulted value (manifest, validate). */
void params_free(bgfm_params *p);

/* Where a value is in the pipeline file (1-based); line 0: not written (the default). */
typedef struct bgfm_pos {
    int line, col;
} bgfm_pos;

typedef struct bgfm_atlas_cfg {
    char *name;
    char *path;   /* resolved: absolute, or relative to the pipeline file's directory */
    char *labels; /* optional region name table (text), NULL if none */
    int line, col;
    bgfm_pos path_at, labels_at; /* where `path` and `labels` are written */
} bgfm_atlas_cfg;

struct bgfm_stage_kind;

typedef struct bgfm_stage_cfg {
    char *name;
    char *uses;
    const struct bgfm_stage_kind *kind;
    bgfm_params with;
    int line, col;
} bgfm_stage_cfg;

typedef enum bgfm_on_error { BGFM_ON_ERROR_FAIL, BGFM_ON_ERROR_SKIP } bgfm_on_error;

/* What a dataset of inputs.datasets is for (bits): pretraining reads the graphs of the
 * pretrain ones, the probe those of the downstream ones (docs/corpus.md). */
enum { BGFM_ROLE_PRETRAIN = 1, BGFM_ROLE_DOWNSTREAM = 2, BGFM_ROLE_BOTH = 3 };

/* The BIDS entities a dataset entry may select images by (file name `_<key>-<value>_`). */
#define BGFM_N_ENTITIES 4
static inline const char *bgfm_entity_name(int k) { /* task, space, desc, run */
    static const char *const names[BGFM_N_ENTITIES] = {"task", "space", "desc", "run"};
    return names[k];
}

/* One entry of inputs.datasets. Its name is part of every subject's identity from
 * parcellate on (timeseries.h5, graph store, probe report: `dataset` beside
 * `participant_id`). */
typedef struct bgfm_dataset_cfg {
    char *name;         /* unique; letters, digits, '_', '-' */
    char *bids;         /* resolved */
    char *participants; /* resolved; default <bids>/participants.tsv */
    char *label_column; /* default: inputs.label_column */
    char **label_map;   /* "VALUE=LABEL" items: this dataset's label coding mapped onto the
                           corpus's (label_map), n_label_map of them */
    int n_label_map;
    char *site_column;  /* NULL: no site */
    double t_r;         /* > 0: TR of this dataset's images (seconds), else their headers */
    char *filter;       /* "COLUMN == VALUE" or "COLUMN != VALUE", NULL: every participant */
    char *entity[BGFM_N_ENTITIES]; /* selected entity values, NULL: any */
    int role;           /* BGFM_ROLE_* bits */
    int line, col;
    bgfm_pos name_at, bids_at, participants_at, label_at, filter_at;
    int label_given;    /* label_column written in the entry or in inputs */
} bgfm_dataset_cfg;

typedef struct bgfm_pipeline {
    char *file;    /* path of the pipeline file as given */
    char *basedir; /* directory of the pipeline file: relative paths resolve here */
    char *name;
    char *workdir; /* resolved */
    uint64_t seed;
    char *bids;         /* resolved */
    char *label_column; /* default "diagnosis" */
    bgfm_on_error on_error;
    int n_atlases;
    bgfm_atlas_cfg *atlases;
    int n_stages;
    bgfm_stage_cfg *stages;
    bgfm_params slurm;  /* global slurm defaults; per-stage overrides live in stage `slurm:` */
    bgfm_params *stage_slurm; /* n_stages entries (values only where given) */
    char *participants; /* resolved; default <bids>/participants.tsv */
    int64_t max_memory_per_rank; /* bytes; 0 = no limit (top-level max_memory_per_rank) */
    /* where the paths are written, for errors found after parsing (config_path_fail) */
    bgfm_pos workdir_at, bids_at, participants_at;
    /* inputs.datasets (then bids and participants are NULL); 0 with inputs.bids */
    int n_datasets;
    bgfm_dataset_cfg *datasets;
    char *subject_map;         /* inputs.subject_map, resolved; NULL when not given */
    bgfm_pos subject_map_at;
} bgfm_pipeline;

/* The dataset named `name` (NULL when absent or when the pipeline has no datasets). */
const bgfm_dataset_cfg *config_dataset_find(const bgfm_pipeline *p, const char *name);
/* Role bits of the dataset named `name`: BGFM_ROLE_BOTH for the unnamed dataset of
 * inputs.bids (name "" or NULL) and for names the pipeline does not list. */
int config_dataset_role(const bgfm_pipeline *p, const char *name);

/* Parse a pipeline from a buffer (rank 0 reads the file and broadcasts the bytes,
 * every rank calls this identically). `file` is used for messages and to resolve
 * relative paths. Returns 0 or BGFM_EUSAGE with e set to "FILE:LINE:COL: ...". */
int config_parse(const char *file, const char *buf, size_t len, bgfm_pipeline *out, bgfm_err *e);
void config_free(bgfm_pipeline *p);

/* A problem with one of the pipeline's paths found after parsing (a workdir that is a
 * file, a dataset folder that does not exist, an atlas that cannot be read): records
 * "FILE:LINE:COL: message (key 'KEY')" with the given code, or "FILE: message (key 'KEY',
 * default value)" when the path was not written (pos.line 0). Returns code. */
int config_path_fail(bgfm_err *e, const bgfm_pipeline *p, const char *key, bgfm_pos pos,
                     int code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Rank 0: create the workdir (and parents); a failure names the `workdir` key. */
int config_workdir_make(const bgfm_pipeline *p, bgfm_err *e);

/* Collective: rank 0 reads FILE, broadcasts it, all parse. Returns an agreed code. */
int config_load(bgfm_ctx *ctx, const char *file, bgfm_pipeline *out);

/* Parse one options table from a YAML mapping node (used by stage `with:` blocks
 * and the `slurm:` block). Exposed for tests. */
const bgfm_stage_cfg *config_stage_find(const bgfm_pipeline *p, const char *name);

/* ---- additions (pipeline/engine/config.c, pipeline/engine/doc.c) ---- */

/* Limits of the pipeline file: larger files and deeper nesting are rejected. */
#define CONFIG_MAX_BYTES (1 << 20)
#define CONFIG_MAX_DEPTH 32

/* Use as bgfm_opt.def of an option that has no default and must be given. */
extern const char bgfm_opt_required[];

/* The fixed schema of the pipeline file as option tables (docs/yaml.md and the
 * validator both read these). Structural keys (inputs, atlases, stages, with,
 * slurm) are not rows of these tables. */
typedef enum config_table {
    CONFIG_TABLE_TOP,    /* name, workdir, seed, on_error */
    CONFIG_TABLE_INPUTS, /* inputs: */
    CONFIG_TABLE_ATLAS,  /* one entry of atlases: */
    CONFIG_TABLE_DATASET, /* one entry of inputs.datasets: */
    CONFIG_TABLE_STAGE,  /* one entry of stages: (besides with: and slurm:) */
    CONFIG_TABLE_SLURM,  /* slurm: (global and per stage) */
    CONFIG_TABLE_COUNT
} config_table;
const bgfm_opt *config_table_opts(config_table t, int *n);

/* Like config_parse, but `uses:` is looked up in `kinds` (NULL-terminated) instead
 * of the registry of stage.h. For tests that need a stage kind of their own. */
int config_parse_kinds(const char *file, const char *buf, size_t len,
                       const struct bgfm_stage_kind *const *kinds, bgfm_pipeline *out,
                       bgfm_err *e);

/* Record "FILE:LINE:COL: problem (key 'KEY')" (key may be NULL). For validate hooks. */
int config_fail_at(bgfm_err *e, const bgfm_pipeline *p, int line, int col, const char *key,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* For a stage kind's validate hook: the error points at with.KEY when it was given in
 * the file, else at the stage entry; the key is shown as 'stages.NAME.with.KEY'. */
int config_stage_fail(bgfm_err *e, const bgfm_pipeline *p, const bgfm_stage_cfg *s,
                      const char *key, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The effective slurm value of stage i (its own slurm: if given there, else the
 * global slurm: block); i = -1 for the global block. NULL if the key is unset. */
const bgfm_value *config_slurm_value(const bgfm_pipeline *p, int i, const char *key);

/* Markdown reference of the pipeline file generated from the option tables and
 * every registered stage kind (`bgfm doc yaml`, docs/yaml.md). pipeline/engine/doc.c.
 * Returns 0 or BGFM_EIO. */
int config_doc_yaml(FILE *f);

/* "4GiB", "512MiB", "16G", "2.5GB", "1048576" -> bytes (K/M/G/T and KiB..TiB binary,
 * KB..TB decimal); 0 when the text is not a size of at least 1 MiB. */
int64_t config_parse_bytes(const char *s);
/* A stage's check before its big allocations: BGFM_ENOMEM with a message giving the
 * estimate (bytes per rank of the stage's own buffers, `what` they are, plus
 * CONFIG_MEM_RUNTIME), the limit, the pipeline `file` and
 * `fix` (what to change) when limit > 0 (max_memory_per_rank) and the estimate
 * exceeds it; else 0. */
#define CONFIG_MEM_RUNTIME (32.0 * 1048576.0) /* MPI, HDF5, BLAS, code: measured ~25 MiB */
int config_mem_check(int64_t limit, const char *file, const char *stage, double estimate,
                     const char *what, const char *fix, bgfm_err *e);

#endif
