/* config.c: the pipeline file loader: the node tree of yamltree.c -> typed, validated
 * structs; every error carries FILE:LINE:COL, the key and the nearest key.
 * Not the plan or the runner (run.c) and not the YAML reference text (doc.c). */
#include "bgfm/config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "bgfm/optvalue.h"
#include "bgfm/stage.h"
#include "bgfm/yamlout.h"
#include "bgfm/yamltree.h"
#include "config_parse.h"

const char bgfm_opt_required[] = "(required)";

#define UNB 1.0, -1.0 /* min > max: unbounded */
#define I64MAX 9.2233720368547758e18

/* ------------------------------------------------------------------ schema tables */

static const bgfm_opt top_opts[] = {
    {"name", BGFM_OPT_STR, bgfm_opt_required, UNB, NULL,
     "pipeline name: letters, digits, '_', '.', '-' (not starting with '.')"},
    {"workdir", BGFM_OPT_STR, "runs/<name>", UNB, NULL,
     "directory of stage outputs, manifests and metrics.jsonl (relative to the pipeline "
     "file's directory)"},
    {"seed", BGFM_OPT_INT, "0", 0, I64MAX, NULL,
     "seed of every random choice (counter-based, so results do not depend on the rank count)"},
    {"on_error", BGFM_OPT_ENUM, "fail", UNB, "fail|skip",
     "a subject whose data cannot be used stops the run (fail) or is left out, the run then "
     "exiting with 9 (skip)"},
    {"max_memory_per_rank", BGFM_OPT_STR, NULL, UNB, NULL,
     "memory limit per MPI rank, e.g. \"4GiB\" (units B, KiB, MiB, GiB, TiB = K, M, G, T; KB, "
     "MB, GB, TB decimal): a stage whose own estimate exceeds it stops with exit 5 before its "
     "big allocations; unset: no limit"},
};

static const bgfm_opt inputs_opts[] = {
    {"bids", BGFM_OPT_STR, NULL, UNB, NULL,
     "BIDS dataset directory: sub-*/func/*_bold.nii[.gz] (relative to the pipeline file's "
     "directory); required unless `datasets` is given (one of the two)"},
    {"label_column", BGFM_OPT_STR, "diagnosis", UNB, NULL,
     "column of participants.tsv holding the class label used by the probe (with `datasets`: "
     "the default of each entry's label_column)"},
    {"participants", BGFM_OPT_STR, "<bids>/participants.tsv", UNB, NULL,
     "participants table (tab-separated, first column participant_id); not with `datasets`"},
    {"subject_map", BGFM_OPT_STR, NULL, UNB, NULL,
     "with `datasets`: tab-separated pairs DATASET/PARTICIPANT_ID of the same person in two "
     "datasets (a header row, then one pair per row); such subjects count as one for the "
     "probe's folds and the leakage audit (docs/corpus.md)"},
};

static const bgfm_opt dataset_opts[] = {
    {"name", BGFM_OPT_STR, bgfm_opt_required, UNB, NULL,
     "dataset name, unique: letters, digits, '_', '-'; part of every subject's identity "
     "(`dataset` beside `participant_id` in every output)"},
    {"bids", BGFM_OPT_STR, bgfm_opt_required, UNB, NULL,
     "BIDS dataset directory (relative to the pipeline file's directory)"},
    {"role", BGFM_OPT_ENUM, bgfm_opt_required, UNB, "pretrain|downstream|both",
     "pretrain: pretraining reads its graphs; downstream: the probe labels its subjects; "
     "both: both (a subject in both is refused by the probe unless it says transductive)"},
    {"participants", BGFM_OPT_STR, "<bids>/participants.tsv", UNB, NULL,
     "participants table of this dataset (tab-separated, first column participant_id)"},
    {"label_column", BGFM_OPT_STR, "<inputs.label_column>", UNB, NULL,
     "column of this dataset's participants table holding the class label; must exist when "
     "written or when the role includes downstream"},
    {"label_map", BGFM_OPT_LIST, NULL, UNB, NULL,
     "this dataset's label coding mapped onto the others', items \"VALUE=LABEL\" (e.g. "
     "[\"1=patient\", \"2=control\"]): the value VALUE of its label column counts as LABEL; "
     "values not listed are kept"},
    {"site_column", BGFM_OPT_STR, NULL, UNB, NULL,
     "column of this dataset's participants table holding the site (graph store `site`); "
     "unset: no site"},
    {"t_r", BGFM_OPT_REAL, NULL, 0, 1e4, NULL,
     "repetition time in seconds of this dataset's images, overriding their headers (and the "
     "parcellate stage's t_r); unset: from the headers"},
    {"filter", BGFM_OPT_STR, NULL, UNB, NULL,
     "participants kept: \"COLUMN != VALUE\" or \"COLUMN == VALUE\" (n/a for a missing "
     "cell, e.g. \"diagnosis != n/a\"); unset: every participant"},
    {"task", BGFM_OPT_STR, NULL, UNB, NULL,
     "only images whose file name has _task-VALUE_ (BIDS entity); unset: any"},
    {"space", BGFM_OPT_STR, NULL, UNB, NULL, "only images with _space-VALUE_; unset: any"},
    {"desc", BGFM_OPT_STR, NULL, UNB, NULL, "only images with _desc-VALUE_; unset: any"},
    {"run", BGFM_OPT_STR, NULL, UNB, NULL, "only images with _run-VALUE_; unset: any"},
};

static const bgfm_opt atlas_opts[] = {
    {"name", BGFM_OPT_STR, bgfm_opt_required, UNB, NULL,
     "atlas name, unique: letters, digits, '_', '-' (names HDF5 groups)"},
    {"path", BGFM_OPT_STR, bgfm_opt_required, UNB, NULL,
     "3D label image (NIfTI-1/2, .nii or .nii.gz); 0 is background"},
    {"labels", BGFM_OPT_STR, NULL, UNB, NULL,
     "optional region name table: lines 'INDEX NAME ...' (FSL .txt or mricron .lut style)"},
};

static const bgfm_opt stage_opts[] = {
    {"name", BGFM_OPT_STR, bgfm_opt_required, UNB, NULL,
     "stage name, unique: letters, digits, '_', '.', '-' (not starting with '.'); names the "
     "output directory <workdir>/<name>; not 'report' or 'slurm' (the run report page, bgfm "
     "submit's scripts)"},
    {"uses", BGFM_OPT_STR, bgfm_opt_required, UNB, NULL,
     "stage kind (see 'Stage kinds' below)"},
};

static const bgfm_opt slurm_opts[] = {
    {"partition", BGFM_OPT_STR, NULL, UNB, NULL, "#SBATCH --partition"},
    {"account", BGFM_OPT_STR, NULL, UNB, NULL, "#SBATCH --account"},
    {"qos", BGFM_OPT_STR, NULL, UNB, NULL, "#SBATCH --qos"},
    {"nodes", BGFM_OPT_INT, NULL, 1, 1048576, NULL, "#SBATCH --nodes"},
    {"ntasks_per_node", BGFM_OPT_INT, NULL, 1, 1048576, NULL,
     "#SBATCH --ntasks-per-node (MPI ranks per node)"},
    {"cpus_per_task", BGFM_OPT_INT, NULL, 1, 1048576, NULL, "#SBATCH --cpus-per-task"},
    {"mem", BGFM_OPT_STR, NULL, UNB, NULL,
     "#SBATCH --mem: memory per node, digits with an optional K, M, G or T suffix"},
    {"time", BGFM_OPT_STR, NULL, UNB, NULL,
     "#SBATCH --time: MINUTES, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (quote it)"},
    {"constraint", BGFM_OPT_STR, NULL, UNB, NULL, "#SBATCH --constraint"},
    {"extra", BGFM_OPT_LIST, NULL, UNB, NULL,
     "additional #SBATCH lines, each an sbatch option such as \"--gres=gpu:1\""},
    {"signal_grace", BGFM_OPT_INT, "300", 0, 86400, NULL,
     "seconds before the time limit at which Slurm sends SIGUSR1 so a stage can checkpoint "
     "and exit with 75"},
    {"launcher", BGFM_OPT_ENUM, "auto", UNB, "auto|srun|mpirun",
     "how the job script starts the MPI ranks (auto: srun inside Slurm, else mpirun)"},
};

#define NOPTS(t) ((int)(sizeof(t) / sizeof((t)[0])))

const bgfm_opt *config_table_opts(config_table t, int *n) {
    switch (t) {
    case CONFIG_TABLE_TOP: *n = NOPTS(top_opts); return top_opts;
    case CONFIG_TABLE_INPUTS: *n = NOPTS(inputs_opts); return inputs_opts;
    case CONFIG_TABLE_ATLAS: *n = NOPTS(atlas_opts); return atlas_opts;
    case CONFIG_TABLE_DATASET: *n = NOPTS(dataset_opts); return dataset_opts;
    case CONFIG_TABLE_STAGE: *n = NOPTS(stage_opts); return stage_opts;
    case CONFIG_TABLE_SLURM: *n = NOPTS(slurm_opts); return slurm_opts;
    case CONFIG_TABLE_COUNT: break;
    }
    BGFM_ASSERT(!"unknown config table");
}

/* ------------------------------------------------------------------ messages */

#define fail_pos yamltree_fail


/* ------------------------------------------------------------------ typed values */


static int fail_node(const cfgp *c, const ynode *n, const char *key, const char *near,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int fail_node(const cfgp *c, const ynode *n, const char *key, const char *near,
                     const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = yamltree_vfail(c->e, c->file, n->line, n->col, key, near, fmt, ap);
    va_end(ap);
    return rc;
}

static const char *node_what(const ynode *n) {
    return n->kind == YN_MAP ? "a mapping" : n->kind == YN_SEQ ? "a list" : "a scalar";
}

/* Set v (option o) from a node of the file. */
static int value_set(const cfgp *c, const bgfm_opt *o, const ynode *n, const char *key,
                     bgfm_value *v) {
    char why[600], near[128];
    v->opt = o;
    if (ynode_is_null(n))
        return fail_node(c, n, key, NULL, "no value given (%s)",
                         o->def && o->def != bgfm_opt_required
                             ? "write one, or remove the key to use the default"
                             : "write one, or remove the key");
    if (o->type == BGFM_OPT_LIST) {
        if (n->kind != YN_SEQ)
            return fail_node(c, n, key, NULL,
                             "expected a list ([a, b] or one '- item' per line), got %s",
                             node_what(n));
        optvalue_clear(v);
        for (int i = 0; i < n->nk; i++) {
            const ynode *it = n->kids[i];
            if (it->kind != YN_SCALAR || ynode_is_null(it))
                return fail_node(c, it, key, NULL, "list items must be non-empty scalars, "
                                 "got %s", ynode_is_null(it) ? "an empty item" : node_what(it));
            if (optvalue_has_control(it->s))
                return fail_node(c, it, key, NULL,
                                 "control characters (newline, tab, ...) are not allowed in "
                                 "values");
            int rc = optvalue_list_add(v, it->s, c->e);
            if (rc) return rc;
        }
    } else {
        if (n->kind != YN_SCALAR) {
            if (o->type == BGFM_OPT_ENUM) {
                char ch[512];
                optvalue_choices_text(o->choices, ch, sizeof ch);
                return fail_node(c, n, key, NULL, "expected one of: %s, got %s", ch,
                                 node_what(n));
            }
            return fail_node(c, n, key, NULL, "expected %s, got %s", optvalue_type_want(o),
                             node_what(n));
        }
        int rc = optvalue_parse(o, n->s, n->quoted, v, why, sizeof why, near, sizeof near, c->e);
        if (rc == 1) return fail_node(c, n, key, near[0] ? near : NULL, "%s", why);
        if (rc) return rc;
    }
    v->state = 2;
    v->line = n->line;
    v->col = n->col;
    return 0;
}

/* Default text of an option (a bug in a table if it does not parse). */
static int value_default(const cfgp *c, const bgfm_opt *o, bgfm_value *v, const char *table) {
    char why[600], near[128];
    v->opt = o;
    if (o->type == BGFM_OPT_LIST) {
        const char *d = o->def;
        size_t n = strlen(d);
        if (n < 2 || d[0] != '[' || d[n - 1] != ']')
            return bgfm_fail(c->e, BGFM_EINTERNAL, "internal error: default '%s' of list option "
                             "'%s' (%s) is not written [a, b]", d, o->key, table);
        char buf[1024];
        snprintf(buf, sizeof buf, "%.*s", (int)(n - 2), d + 1);
        optvalue_clear(v);
        char *save = NULL;
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ') tok++;
            size_t k = strlen(tok);
            while (k && tok[k - 1] == ' ') tok[--k] = '\0';
            if (!k) continue;
            int rc = optvalue_list_add(v, tok, c->e);
            if (rc) return rc;
        }
    } else {
        int rc = optvalue_parse(o, o->def, 0, v, why, sizeof why, near, sizeof near, c->e);
        if (rc == 1)
            return bgfm_fail(c->e, BGFM_EINTERNAL, "internal error: default '%s' of option '%s' "
                             "(%s) is invalid: %s", o->def, o->key, table, why);
        if (rc) return rc;
    }
    v->state = 1;
    return 0;
}


/* Is some option of the table inside the group `prefix` (i.e. "prefix.x...")? */
static int opt_group(const bgfm_opt *opts, int n, const char *prefix) {
    size_t k = strlen(prefix);
    for (int i = 0; i < n; i++)
        if (!strncmp(opts[i].key, prefix, k) && opts[i].key[k] == '.') return 1;
    return 0;
}

/* "unknown key", suggesting the nearest key valid at this level (options under
 * `prefix`, plus `extra` structural keys). */
static int unknown_key(const cfgp *c, const bgfm_opt *opts, int n, const char *prefix,
                       const char *const *extra, int n_extra, const ynode *k, const char *path) {
    enum { MAXC = 160 };
    char names[MAXC][64];
    const char *cands[MAXC];
    int nc = 0;
    size_t pl = prefix ? strlen(prefix) : 0;
    for (int i = 0; i < n && nc < MAXC; i++) {
        const char *key = opts[i].key;
        if (pl) {
            if (strncmp(key, prefix, pl) || key[pl] != '.') continue;
            key += pl + 1;
        }
        size_t len = strcspn(key, ".");
        if (len >= 64) continue;
        int dup = 0;
        for (int j = 0; j < nc; j++)
            if (strlen(cands[j]) == len && !strncmp(cands[j], key, len)) dup = 1;
        if (dup) continue;
        memcpy(names[nc], key, len);
        names[nc][len] = '\0';
        cands[nc] = names[nc];
        nc++;
    }
    for (int i = 0; i < n_extra && nc < MAXC; i++) cands[nc++] = extra[i];
    char full[512];
    cfg_key_join(full, sizeof full, path, k->s);
    const char *near = optvalue_nearest(k->s, cands, nc);
    if (near) return fail_node(c, k, full, near, "unknown key");
    char list[1024];
    size_t used = 0;
    list[0] = '\0';
    for (int i = 0; i < nc && used + 80 < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                 cands[i]);
    if (nc == 0) return fail_node(c, k, full, NULL, "unknown key (no keys are accepted here)");
    return fail_node(c, k, full, NULL, "unknown key (accepted here: %s)", list);
}

/* Keys of a mapping must be non-empty scalars and unique. Key i is checked against
 * keys 0..i-1 (callers stop at the first unknown key, so this stays small). */
static int map_key_check(const cfgp *c, const ynode *map, int i, const char *path) {
    const ynode *k = map->kids[2 * i];
    if (k->kind != YN_SCALAR)
        return fail_node(c, k, path[0] ? path : NULL, NULL, "keys must be plain words, got %s",
                         node_what(k));
    if (ynode_is_null(k) || !k->s[0])
        return fail_node(c, k, path[0] ? path : NULL, NULL, "empty key");
    for (int j = 0; j < i; j++) {
        const ynode *o = map->kids[2 * j];
        if (!strcmp(o->s, k->s)) {
            char full[512];
            cfg_key_join(full, sizeof full, path, k->s);
            return fail_node(c, k, full, NULL, "duplicate key (first given at line %d, column %d)",
                             o->line, o->col);
        }
    }
    return 0;
}

static int params_map(const cfgp *c, bgfm_params *p, const ynode *map, const char *prefix,
                      const char *path, const char *const *extra, int n_extra);

/* One key/value pair of a mapping read into the table. Returns 0, 1 when the key
 * is not in the table (no message yet), or an error code. */
static int params_pair(const cfgp *c, bgfm_params *p, const ynode *k, const ynode *v,
                       const char *prefix, const char *path) {
    char full[512], where[512];
    cfg_key_join(full, sizeof full, prefix, k->s);
    cfg_key_join(where, sizeof where, path, k->s);
    int i = cfg_opt_index(p->opts, p->n, full);
    if (i >= 0) {
        if (p->v[i].state == 2)
            return fail_node(c, k, where, NULL, "key given twice (first at line %d, column %d)",
                             p->v[i].line, p->v[i].col);
        return value_set(c, &p->opts[i], v, where, &p->v[i]);
    }
    if (strlen(full) < 400 && opt_group(p->opts, p->n, full)) {
        if (v->kind != YN_MAP)
            return fail_node(c, v, where, NULL, "expected a mapping of keys (%s: {key: value}), "
                             "got %s", k->s, ynode_is_null(v) ? "nothing" : node_what(v));
        return params_map(c, p, v, full, where, NULL, 0);
    }
    return 1;
}

static int params_map(const cfgp *c, bgfm_params *p, const ynode *map, const char *prefix,
                      const char *path, const char *const *extra, int n_extra) {
    for (int i = 0; 2 * i < map->nk; i++) {
        int rc = map_key_check(c, map, i, path);
        if (rc) return rc;
        const ynode *k = map->kids[2 * i], *v = map->kids[2 * i + 1];
        rc = params_pair(c, p, k, v, prefix, path);
        if (rc == 1) return unknown_key(c, p->opts, p->n, prefix, extra, n_extra, k, path);
        if (rc) return rc;
    }
    return 0;
}

/* After reading a block: required keys present, defaults filled (if `defaults`). */
static int params_finish(const cfgp *c, bgfm_params *p, const ynode *pos, const char *path,
                         int defaults, const char *table) {
    for (int i = 0; i < p->n; i++) {
        bgfm_value *v = &p->v[i];
        if (v->state) continue;
        const bgfm_opt *o = &p->opts[i];
        if (o->def == bgfm_opt_required) {
            char full[512];
            cfg_key_join(full, sizeof full, path, o->key);
            return fail_node(c, pos, full, NULL, "missing required key");
        }
        if (!defaults || !o->def) continue;
        int rc = value_default(c, o, v, table);
        if (rc) return rc;
    }
    return 0;
}

/* ------------------------------------------------------------------ the pipeline */

static const bgfm_stage_kind *kind_lookup(const cfgp *c, const char *name) {
    for (int i = 0; c->kinds[i]; i++)
        if (!strcmp(c->kinds[i]->name, name)) return c->kinds[i];
    return NULL;
}

/* Position label of a list entry in messages: "stages.NAME" or "stages[i]". */
static void entry_path(char *out, size_t n, const char *list, const ynode *entry, int i,
                       int dots) {
    if (entry->kind == YN_MAP)
        for (int j = 0; 2 * j < entry->nk; j++) {
            const ynode *k = entry->kids[2 * j], *v = entry->kids[2 * j + 1];
            if (k->kind == YN_SCALAR && !strcmp(k->s, "name") && v->kind == YN_SCALAR &&
                cfg_name_ok(v->s, dots)) {
                snprintf(out, n, "%s.%s", list, v->s);
                return;
            }
        }
    snprintf(out, n, "%s[%d]", list, i);
}

/* Where v is written (line 0: the default). */
static bgfm_pos value_pos(const bgfm_value *v) {
    bgfm_pos at = {0, 0};
    if (v->state == 2) {
        at.line = v->line;
        at.col = v->col;
    }
    return at;
}

static int parse_atlases(const cfgp *c, const ynode *seq, const char *base, bgfm_pipeline *out) {
    if (seq->kind != YN_SEQ || seq->nk == 0)
        return fail_node(c, seq, "atlases", NULL,
                         "expected a list of at least one atlas ({name: ..., path: ...})");
    out->atlases = bgfm_calloc(c->e, (size_t)seq->nk, sizeof *out->atlases, "atlases");
    if (!out->atlases) return BGFM_ENOMEM;
    for (int i = 0; i < seq->nk; i++) {
        const ynode *m = seq->kids[i];
        char path[256];
        entry_path(path, sizeof path, "atlases", m, i, 0);
        if (m->kind != YN_MAP)
            return fail_node(c, m, path, NULL, "expected an atlas mapping {name: ..., path: ...}, "
                             "got %s", node_what(m));
        bgfm_params ap;
        int rc = cfg_params_init(&ap, atlas_opts, NOPTS(atlas_opts), c->e);
        if (!rc) rc = params_map(c, &ap, m, "", path, NULL, 0);
        if (!rc) rc = params_finish(c, &ap, m, path, 1, "atlas");
        bgfm_atlas_cfg *a = &out->atlases[out->n_atlases];
        a->line = m->line;
        a->col = m->col;
        if (!rc) {
            const bgfm_value *nv = params_value(&ap, "name");
            char key[300];
            cfg_key_join(key, sizeof key, path, "name");
            if (!cfg_name_ok(nv->s, 0))
                rc = cfg_value_fail(c, nv, key, "atlas name '%s' may only hold letters, digits, "
                                "'_' and '-'", nv->s);
            for (int j = 0; !rc && j < out->n_atlases; j++)
                if (!strcmp(out->atlases[j].name, nv->s))
                    rc = cfg_value_fail(c, nv, key, "duplicate atlas name '%s' (first at line %d)",
                                    nv->s, out->atlases[j].line);
        }
        if (!rc) {
            out->n_atlases++;
            a->name = bgfm_strdup(c->e, params_str(&ap, "name"));
            if (!a->name) rc = BGFM_ENOMEM;
        }
        if (!rc) {
            a->path_at = value_pos(params_value(&ap, "path"));
            a->labels_at = value_pos(params_value(&ap, "labels"));
        }
        if (!rc) rc = cfg_path_resolve(c, base, params_str(&ap, "path"), 1, &a->path);
        if (!rc && params_has(&ap, "labels"))
            rc = cfg_path_resolve(c, base, params_str(&ap, "labels"), 1, &a->labels);
        params_free(&ap);
        if (rc) return rc;
    }
    return 0;
}

/* One entry of inputs.datasets into d (paths resolved, checks of its values). */
static int parse_dataset(const cfgp *c, const ynode *m, const char *path, const char *base,
                         const bgfm_params *in, bgfm_dataset_cfg *d) {
    bgfm_params dp;
    char key[300];
    int rc = cfg_params_init(&dp, dataset_opts, NOPTS(dataset_opts), c->e);
    if (!rc) rc = params_map(c, &dp, m, "", path, NULL, 0);
    if (!rc) rc = params_finish(c, &dp, m, path, 1, "dataset");
    const bgfm_value *nv = rc ? NULL : params_value(&dp, "name");
    if (!rc && !cfg_name_ok(nv->s, 0)) {
        cfg_key_join(key, sizeof key, path, "name");
        rc = cfg_value_fail(c, nv, key, "dataset name '%s' may only hold letters, digits, '_' "
                            "and '-'", nv->s);
    }
    const bgfm_value *fv = rc ? NULL : params_value(&dp, "filter");
    if (!rc && fv->state == 2 && !cfg_filter_ok(fv->s)) {
        cfg_key_join(key, sizeof key, path, "filter");
        rc = cfg_value_fail(c, fv, key, "'%s' is not a filter; write \"COLUMN != VALUE\" or "
                            "\"COLUMN == VALUE\" (e.g. \"diagnosis != n/a\")", fv->s);
    }
    const bgfm_value *mv = rc ? NULL : params_value(&dp, "label_map");
    for (int k = 0; !rc && mv->state == 2 && k < mv->n_list; k++) {
        const char *eq = strchr(mv->list[k], '=');
        if (!eq || eq == mv->list[k] || !eq[1]) {
            cfg_key_join(key, sizeof key, path, "label_map");
            rc = cfg_value_fail(c, mv, key, "item '%s' is not VALUE=LABEL (e.g. \"1=patient\")",
                                mv->list[k]);
        }
    }
    if (!rc && mv->state == 2) {
        d->label_map = bgfm_calloc(c->e, (size_t)mv->n_list, sizeof *d->label_map, "label_map");
        for (int k = 0; d->label_map && k < mv->n_list; k++, d->n_label_map++)
            if (!(d->label_map[k] = bgfm_strdup(c->e, mv->list[k]))) break;
        if (!d->label_map || d->n_label_map < mv->n_list) rc = BGFM_ENOMEM;
    }
    for (int k = 0; !rc && k < BGFM_N_ENTITIES; k++) {
        const bgfm_value *ev = params_value(&dp, bgfm_entity_name(k));
        if (ev->state != 2) continue;
        for (const char *q = ev->s; !rc && *q; q++)
            if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9'))) {
                cfg_key_join(key, sizeof key, path, bgfm_entity_name(k));
                rc = cfg_value_fail(c, ev, key, "a BIDS entity value holds only letters and "
                                    "digits (the X of _%s-X_), got '%s'", bgfm_entity_name(k),
                                    ev->s);
            }
        if (!rc && !(d->entity[k] = bgfm_strdup(c->e, ev->s))) rc = BGFM_ENOMEM;
    }
    if (!rc) {
        d->name_at = value_pos(nv);
        d->bids_at = value_pos(params_value(&dp, "bids"));
        d->participants_at = value_pos(params_value(&dp, "participants"));
        const bgfm_value *lv = params_value(&dp, "label_column");
        d->label_at = value_pos(lv);
        d->filter_at = value_pos(fv);
        d->label_given = lv->state == 2 || params_value(in, "label_column")->state == 2;
        const char *role = params_str(&dp, "role");
        d->role = !strcmp(role, "pretrain") ? BGFM_ROLE_PRETRAIN
                  : !strcmp(role, "downstream") ? BGFM_ROLE_DOWNSTREAM : BGFM_ROLE_BOTH;
        d->t_r = params_has(&dp, "t_r") ? params_real(&dp, "t_r") : 0.0;
        d->name = bgfm_strdup(c->e, nv->s);
        d->label_column = bgfm_strdup(c->e, lv->state == 2 ? lv->s
                                                            : params_str(in, "label_column"));
        if (params_has(&dp, "site_column"))
            d->site_column = bgfm_strdup(c->e, params_str(&dp, "site_column"));
        if (fv->state == 2) d->filter = bgfm_strdup(c->e, fv->s);
        if (!d->name || !d->label_column || (params_has(&dp, "site_column") && !d->site_column) ||
            (fv->state == 2 && !d->filter))
            rc = BGFM_ENOMEM;
    }
    if (!rc) rc = cfg_path_resolve(c, base, params_str(&dp, "bids"), 1, &d->bids);
    if (!rc) {
        if (params_value(&dp, "participants")->state == 2)
            rc = cfg_path_resolve(c, base, params_str(&dp, "participants"), 1, &d->participants);
        else
            rc = cfg_path_resolve(c, d->bids, "participants.tsv", 0, &d->participants);
    }
    params_free(&dp);
    return rc;
}

/* inputs.datasets: a non-empty list of dataset entries with unique names. */
static int parse_datasets(const cfgp *c, const ynode *seq, const bgfm_params *in,
                          bgfm_pipeline *out) {
    if (seq->kind != YN_SEQ || seq->nk == 0)
        return fail_node(c, seq, "inputs.datasets", NULL, "expected a list of at least one "
                         "dataset ({name: ..., bids: ..., role: pretrain|downstream|both})");
    if (seq->nk > 256)
        return fail_node(c, seq, "inputs.datasets", NULL, "%d datasets; at most 256 are "
                         "accepted (merge small studies into one dataset)", seq->nk);
    out->datasets = bgfm_calloc(c->e, (size_t)seq->nk, sizeof *out->datasets, "datasets");
    if (!out->datasets) return BGFM_ENOMEM;
    for (int i = 0; i < seq->nk; i++) {
        const ynode *m = seq->kids[i];
        char path[256];
        entry_path(path, sizeof path, "inputs.datasets", m, i, 0);
        if (m->kind != YN_MAP)
            return fail_node(c, m, path, NULL, "expected a dataset mapping {name: ..., bids: ..., "
                             "role: ...}, got %s", node_what(m));
        bgfm_dataset_cfg *d = &out->datasets[i];
        out->n_datasets = i + 1; /* freed by config_free */
        d->line = m->line;
        d->col = m->col;
        int rc = parse_dataset(c, m, path, out->basedir, in, d);
        for (int j = 0; !rc && j < i; j++)
            if (!strcmp(out->datasets[j].name, d->name)) {
                char key[300];
                cfg_key_join(key, sizeof key, path, "name");
                rc = fail_pos(c->e, c->file, d->name_at.line, d->name_at.col, key, NULL,
                              "duplicate dataset name '%s' (first at line %d); every dataset "
                              "needs its own name", d->name, out->datasets[j].line);
            }
        if (rc) return rc;
    }
    return 0;
}

/* inputs: the table's keys plus the list `datasets` (node returned in *ds). */
static int parse_inputs(const cfgp *c, const ynode *v, bgfm_params *in, const ynode **ds) {
    static const char *const extra[] = {"datasets"};
    if (v->kind != YN_MAP)
        return fail_node(c, v, "inputs", NULL, "expected a mapping (inputs: {bids: DIR} or "
                         "inputs: {datasets: [...]}), got %s",
                         ynode_is_null(v) ? "nothing" : node_what(v));
    for (int i = 0; 2 * i < v->nk; i++) {
        int rc = map_key_check(c, v, i, "inputs");
        if (rc) return rc;
        const ynode *k = v->kids[2 * i], *val = v->kids[2 * i + 1];
        if (!strcmp(k->s, "datasets")) {
            *ds = val;
            continue;
        }
        rc = params_pair(c, in, k, val, "", "inputs");
        if (rc == 1) rc = unknown_key(c, inputs_opts, NOPTS(inputs_opts), "", extra, 1, k, "inputs");
        if (rc) return rc;
    }
    return 0;
}

/* After the inputs block is read: exactly one of bids and datasets. */
static int inputs_finish(const cfgp *c, const ynode *n_inputs, const ynode *ds,
                         const bgfm_params *in, bgfm_pipeline *out) {
    const bgfm_value *bv = params_value(in, "bids"), *pv = params_value(in, "participants");
    if (!ds && bv->state != 2) return fail_node(c, n_inputs, "inputs.bids", NULL, "missing required key");
    if (ds && bv->state == 2)
        return cfg_value_fail(c, bv, "inputs.bids", "give either inputs.bids (one dataset) or "
                              "inputs.datasets (several), not both; move this folder into a "
                              "datasets entry");
    if (ds && pv->state == 2)
        return cfg_value_fail(c, pv, "inputs.participants", "with inputs.datasets, each entry "
                              "has its own `participants`; move it there");
    const bgfm_value *mv = params_value(in, "subject_map");
    if (!ds && mv->state == 2)
        return cfg_value_fail(c, mv, "inputs.subject_map", "a subject map names subjects of "
                              "several datasets: it needs inputs.datasets");
    if (mv->state == 2) {
        out->subject_map_at = value_pos(mv);
        int rc = cfg_path_resolve(c, out->basedir, mv->s, 1, &out->subject_map);
        if (rc) return rc;
    }
    if (ds) return parse_datasets(c, ds, in, out);
    out->bids_at = value_pos(bv);
    out->participants_at = value_pos(pv);
    int rc = cfg_path_resolve(c, out->basedir, bv->s, 1, &out->bids);
    if (rc) return rc;
    if (pv->state == 2) return cfg_path_resolve(c, out->basedir, pv->s, 1, &out->participants);
    return cfg_path_resolve(c, out->bids, "participants.tsv", 0, &out->participants);
}

/* With inputs.datasets: a stage that trains a model needs a pretrain-role dataset, one
 * that labels subjects (a report) a downstream one. */
static int roles_check(const cfgp *c, const bgfm_pipeline *out) {
    int roles = 0;
    for (int d = 0; d < out->n_datasets; d++) roles |= out->datasets[d].role;
    for (int i = 0; i < out->n_stages; i++) {
        const bgfm_stage_cfg *s = &out->stages[i];
        int need = s->kind->produces == BGFM_ART_CHECKPOINT ? BGFM_ROLE_PRETRAIN
                   : s->kind->produces == BGFM_ART_REPORT   ? BGFM_ROLE_DOWNSTREAM : 0;
        if (need && !(roles & need))
            return fail_pos(c->e, c->file, s->line, s->col, s->name, NULL,
                            "stage '%s' (%s) needs a dataset with role %s or both, and no entry "
                            "of inputs.datasets has one; set the role of one", s->name, s->uses,
                            need == BGFM_ROLE_PRETRAIN ? "pretrain" : "downstream");
    }
    return 0;
}

static int parse_stage_with(const cfgp *c, bgfm_stage_cfg *s, const ynode *with,
                            const ynode *entry, const char *path) {
    const bgfm_stage_kind *k = s->kind;
    int rc = cfg_params_init(&s->with, k->opts, k->n_opts, c->e);
    if (rc) return rc;
    char wpath[300], table[200];
    snprintf(wpath, sizeof wpath, "%s.with", path);
    snprintf(table, sizeof table, "stage kind %s", k->name);
    if (with && !ynode_is_null(with)) {
        if (with->kind != YN_MAP)
            return fail_node(c, with, wpath, NULL,
                             "expected a mapping of the stage's options (with: {key: value}), "
                             "got %s", node_what(with));
        rc = params_map(c, &s->with, with, "", wpath, NULL, 0);
        if (rc) return rc;
    }
    return params_finish(c, &s->with, with && !ynode_is_null(with) ? with : entry, wpath, 1,
                         table);
}

static int parse_stages(const cfgp *c, const ynode *seq, bgfm_pipeline *out) {
    static const char *const extra[] = {"with", "slurm"};
    if (seq->kind != YN_SEQ || seq->nk == 0)
        return fail_node(c, seq, "stages", NULL,
                         "expected a list of at least one stage ({name: ..., uses: ...})");
    out->stages = bgfm_calloc(c->e, (size_t)seq->nk, sizeof *out->stages, "stages");
    out->stage_slurm = bgfm_calloc(c->e, (size_t)seq->nk, sizeof *out->stage_slurm, "stages");
    if (!out->stages || !out->stage_slurm) return BGFM_ENOMEM;
    for (int i = 0; i < seq->nk; i++) {
        const ynode *m = seq->kids[i];
        char path[256];
        entry_path(path, sizeof path, "stages", m, i, 1);
        if (m->kind != YN_MAP)
            return fail_node(c, m, path, NULL, "expected a stage mapping {name: ..., uses: ...}, "
                             "got %s", node_what(m));
        bgfm_stage_cfg *s = &out->stages[i];
        bgfm_params *sl = &out->stage_slurm[i];
        s->line = m->line;
        s->col = m->col;
        out->n_stages = i + 1; /* entries up to here are freed by config_free */
        bgfm_params sp;
        int rc = cfg_params_init(&sp, stage_opts, NOPTS(stage_opts), c->e);
        if (!rc) rc = cfg_params_init(sl, slurm_opts, NOPTS(slurm_opts), c->e);
        const ynode *with = NULL;
        for (int j = 0; !rc && 2 * j < m->nk; j++) {
            rc = map_key_check(c, m, j, path);
            if (rc) break;
            const ynode *k = m->kids[2 * j], *v = m->kids[2 * j + 1];
            if (!strcmp(k->s, "with")) {
                with = v;
            } else if (!strcmp(k->s, "slurm")) {
                char spath[300];
                snprintf(spath, sizeof spath, "%s.slurm", path);
                if (ynode_is_null(v)) continue;
                if (v->kind != YN_MAP)
                    rc = fail_node(c, v, spath, NULL, "expected a mapping of Slurm settings, "
                                   "got %s", node_what(v));
                else
                    rc = params_map(c, sl, v, "", spath, NULL, 0);
                if (!rc) rc = cfg_slurm_check(c, sl, spath);
            } else {
                rc = params_pair(c, &sp, k, v, "", path);
                if (rc == 1) rc = unknown_key(c, stage_opts, NOPTS(stage_opts), "", extra, 2, k, path);
            }
        }
        if (!rc) rc = params_finish(c, &sp, m, path, 1, "stage");
        if (!rc) {
            const bgfm_value *nv = params_value(&sp, "name");
            char key[300];
            cfg_key_join(key, sizeof key, path, "name");
            if (!cfg_name_ok(nv->s, 1))
                rc = cfg_value_fail(c, nv, key, "stage name '%s' may only hold letters, digits, '_', "
                                "'-' and '.' (not first): it names a directory", nv->s);
            else if (!strcmp(nv->s, "report") || !strcmp(nv->s, "slurm"))
                rc = cfg_value_fail(c, nv, key, "stage name '%s' is reserved: WORKDIR/%s/ holds %s; "
                                "choose another name", nv->s, nv->s,
                                nv->s[0] == 'r' ? "the run report page (docs/report.md)"
                                                : "bgfm submit's job scripts and logs (docs/slurm.md)");
            for (int j = 0; !rc && j < i; j++)
                if (!strcmp(out->stages[j].name, nv->s))
                    rc = cfg_value_fail(c, nv, key, "duplicate stage name '%s' (first at line %d)",
                                    nv->s, out->stages[j].line);
        }
        if (!rc) {
            s->name = bgfm_strdup(c->e, params_str(&sp, "name"));
            s->uses = bgfm_strdup(c->e, params_str(&sp, "uses"));
            if (!s->name || !s->uses) rc = BGFM_ENOMEM;
        }
        if (!rc) {
            s->kind = kind_lookup(c, s->uses);
            if (!s->kind) {
                const bgfm_value *uv = params_value(&sp, "uses");
                const char *cands[64];
                int nc = 0;
                char list[600];
                size_t used = 0;
                list[0] = '\0';
                for (int j = 0; c->kinds[j] && nc < 64; j++) {
                    cands[nc++] = c->kinds[j]->name;
                    if (used + 70 < sizeof list)
                        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
                                                 j ? ", " : "", c->kinds[j]->name);
                }
                char key[300];
                cfg_key_join(key, sizeof key, path, "uses");
                const char *near = optvalue_nearest(s->uses, cands, nc);
                rc = fail_pos(c->e, c->file, uv->line, uv->col, key, near,
                              "unknown stage kind '%s' (known kinds: %s)", s->uses,
                              nc ? list : "none registered");
            }
        }
        if (!rc) rc = parse_stage_with(c, s, with, m, path);
        params_free(&sp);
        if (rc) return rc;
    }
    return 0;
}

static int dup_str(const cfgp *c, const char *s, char **out) {
    *out = bgfm_strdup(c->e, s);
    return *out ? 0 : BGFM_ENOMEM;
}

static int parse_pipeline(const cfgp *c, const ynode *root, bgfm_pipeline *out) {
    static const char *const blocks[] = {"inputs", "atlases", "stages", "slurm"};
    bgfm_params top, in;
    const ynode *n_inputs = NULL, *n_atlases = NULL, *n_stages = NULL, *n_datasets = NULL;
    memset(&top, 0, sizeof top);
    memset(&in, 0, sizeof in);
    int rc = cfg_params_init(&top, top_opts, NOPTS(top_opts), c->e);
    if (!rc) rc = cfg_params_init(&in, inputs_opts, NOPTS(inputs_opts), c->e);
    if (!rc) rc = cfg_params_init(&out->slurm, slurm_opts, NOPTS(slurm_opts), c->e);
    /* Blocks are read in file order, so the first problem in the file is reported. */
    for (int i = 0; !rc && 2 * i < root->nk; i++) {
        rc = map_key_check(c, root, i, "");
        if (rc) break;
        const ynode *k = root->kids[2 * i], *v = root->kids[2 * i + 1];
        if (!strcmp(k->s, "inputs")) {
            n_inputs = v;
            rc = parse_inputs(c, v, &in, &n_datasets);
        } else if (!strcmp(k->s, "atlases")) {
            n_atlases = v;
            rc = parse_atlases(c, v, out->basedir, out);
        } else if (!strcmp(k->s, "stages")) {
            n_stages = v;
            rc = parse_stages(c, v, out);
        } else if (!strcmp(k->s, "slurm")) {
            if (ynode_is_null(v)) continue;
            if (v->kind != YN_MAP)
                rc = fail_node(c, v, "slurm", NULL, "expected a mapping of Slurm settings, got %s",
                               node_what(v));
            else
                rc = params_map(c, &out->slurm, v, "", "slurm", NULL, 0);
            if (!rc) rc = cfg_slurm_check(c, &out->slurm, "slurm");
        } else {
            rc = params_pair(c, &top, k, v, "", "");
            if (rc == 1) rc = unknown_key(c, top_opts, NOPTS(top_opts), "", blocks, 4, k, "");
            const bgfm_value *nv = params_value(&top, "name");
            if (!rc && !strcmp(k->s, "name") && !cfg_name_ok(nv->s, 1))
                rc = cfg_value_fail(c, nv, "name", "pipeline name '%s' may only hold letters, "
                                "digits, '_', '-' and '.' (not first)", nv->s);
        }
    }
    if (!rc) rc = params_finish(c, &top, root, "", 1, "top level");
    if (!rc && !n_inputs) rc = fail_node(c, root, "inputs", NULL, "missing required key");
    if (!rc) rc = params_finish(c, &in, n_inputs, "inputs", 1, "inputs");
    if (!rc) rc = inputs_finish(c, n_inputs, n_datasets, &in, out);
    if (!rc && !n_atlases) rc = fail_node(c, root, "atlases", NULL, "missing required key");
    if (!rc && !n_stages) rc = fail_node(c, root, "stages", NULL, "missing required key");
    if (!rc) rc = params_finish(c, &out->slurm, root, "slurm", 1, "slurm");
    if (!rc) rc = dup_str(c, params_str(&top, "name"), &out->name);
    if (!rc) {
        const bgfm_value *wv = params_value(&top, "workdir");
        out->workdir_at = value_pos(wv);
        if (wv->state == 1) {
            size_t n = strlen(out->name) + 6;
            char *w = bgfm_malloc(c->e, n, "workdir");
            if (!w) {
                rc = BGFM_ENOMEM;
            } else {
                snprintf(w, n, "runs/%s", out->name);
                rc = cfg_path_resolve(c, out->basedir, w, 1, &out->workdir);
                free(w);
            }
        } else {
            rc = cfg_path_resolve(c, out->basedir, wv->s, 1, &out->workdir);
        }
    }
    if (!rc) {
        out->seed = (uint64_t)params_int(&top, "seed");
        out->on_error = !strcmp(params_str(&top, "on_error"), "skip") ? BGFM_ON_ERROR_SKIP
                                                                     : BGFM_ON_ERROR_FAIL;
        const bgfm_value *mv = params_value(&top, "max_memory_per_rank");
        if (mv->state == 2 && !(out->max_memory_per_rank = config_parse_bytes(mv->s)))
            rc = cfg_value_fail(c, mv, "max_memory_per_rank", "'%s' is not a memory size (write "
                            "e.g. \"4GiB\", \"512MiB\" or \"16G\"; at least 1 MiB)", mv->s);
    }
    if (!rc) rc = dup_str(c, params_str(&in, "label_column"), &out->label_column);
    params_free(&top);
    params_free(&in);
    if (!rc && out->n_datasets > 0) rc = roles_check(c, out);
    /* Cross-key checks of each stage kind, once the whole pipeline is known. */
    for (int i = 0; !rc && i < out->n_stages; i++) {
        const bgfm_stage_cfg *s = &out->stages[i];
        if (!s->kind->validate) continue;
        rc = s->kind->validate(out, s, c->e);
        if (rc && c->e->code == 0)
            rc = fail_pos(c->e, c->file, s->line, s->col, s->name, NULL,
                          "stage kind '%s' rejected this stage's options", s->uses);
    }
    return rc;
}

int config_parse_kinds(const char *file, const char *buf, size_t len,
                       const struct bgfm_stage_kind *const *kinds, bgfm_pipeline *out,
                       bgfm_err *e) {
    memset(out, 0, sizeof *out);
    if (len > (size_t)CONFIG_MAX_BYTES)
        return bgfm_fail(e, BGFM_EUSAGE, "%s: the pipeline file has %zu bytes; at most %d "
                         "(1 MiB) are accepted", file, len, CONFIG_MAX_BYTES);
    cfgp c = {file, e, kinds ? kinds : stage_kinds(), 0};
    out->file = bgfm_strdup(e, file);
    if (!out->file) return BGFM_ENOMEM;
    ynode *root = NULL;
    int rc = yamltree_build(file, buf, len, &root, e);
    if (!rc) rc = cfg_base_dir(&c, &out->basedir);
    if (!rc) rc = parse_pipeline(&c, root, out);
    ynode_free(root);
    if (rc) config_free(out);
    return rc;
}

int config_parse(const char *file, const char *buf, size_t len, bgfm_pipeline *out, bgfm_err *e) {
    return config_parse_kinds(file, buf, len, NULL, out, e);
}

void config_free(bgfm_pipeline *p) {
    if (!p) return;
    free(p->file);
    free(p->basedir);
    free(p->name);
    free(p->workdir);
    free(p->bids);
    free(p->label_column);
    free(p->participants);
    for (int i = 0; p->atlases && i < p->n_atlases; i++) {
        free(p->atlases[i].name);
        free(p->atlases[i].path);
        free(p->atlases[i].labels);
    }
    free(p->atlases);
    for (int i = 0; p->datasets && i < p->n_datasets; i++) {
        bgfm_dataset_cfg *d = &p->datasets[i];
        free(d->name);
        free(d->bids);
        free(d->participants);
        free(d->label_column);
        free(d->site_column);
        free(d->filter);
        for (int k = 0; k < BGFM_N_ENTITIES; k++) free(d->entity[k]);
        for (int k = 0; k < d->n_label_map; k++) free(d->label_map[k]);
        free(d->label_map);
    }
    free(p->datasets);
    free(p->subject_map);
    for (int i = 0; p->stages && i < p->n_stages; i++) {
        free(p->stages[i].name);
        free(p->stages[i].uses);
        params_free(&p->stages[i].with);
        if (p->stage_slurm) params_free(&p->stage_slurm[i]);
    }
    free(p->stages);
    free(p->stage_slurm);
    params_free(&p->slurm);
    memset(p, 0, sizeof *p);
}

const bgfm_stage_cfg *config_stage_find(const bgfm_pipeline *p, const char *name) {
    for (int i = 0; i < p->n_stages; i++)
        if (!strcmp(p->stages[i].name, name)) return &p->stages[i];
    return NULL;
}



/* ------------------------------------------------------------------ collective load */

/* Rank 0: read the whole file (at most CONFIG_MAX_BYTES). */
static int read_file(const char *file, char **buf, int64_t *len, bgfm_err *e) {
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(file, "rb");
    if (!f)
        return bgfm_fail(e, errno == ENOENT || errno == ENOTDIR ? BGFM_EUSAGE : BGFM_EIO,
                         "cannot open pipeline file '%s': %s", file, strerror(errno));
    size_t cap = (size_t)CONFIG_MAX_BYTES + 1;
    char *b = bgfm_malloc(e, cap + 1, "pipeline file");
    if (!b) {
        fclose(f);
        return BGFM_ENOMEM;
    }
    size_t n = fread(b, 1, cap, f);
    int bad = ferror(f);
    int err = errno;
    fclose(f);
    if (bad) {
        free(b);
        return bgfm_fail(e, err == EISDIR ? BGFM_EUSAGE : BGFM_EIO,
                         "cannot read pipeline file '%s': %s", file, strerror(err));
    }
    if (n > (size_t)CONFIG_MAX_BYTES) {
        free(b);
        return bgfm_fail(e, BGFM_EUSAGE, "pipeline file '%s' is larger than 1 MiB (%d bytes); "
                         "a pipeline file only describes the run", file, CONFIG_MAX_BYTES);
    }
    b[n] = '\0';
    *buf = b;
    *len = (int64_t)n;
    return 0;
}

int config_load(bgfm_ctx *ctx, const char *file, bgfm_pipeline *out) {
    memset(out, 0, sizeof *out);
    char *buf = NULL;
    int64_t len = 0;
    int rc = ctx->rank == 0 ? read_file(file, &buf, &len, &ctx->err) : 0;
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) goto done;
    rc = bgfm_ctx_agree(ctx, BGFM_MPI(&ctx->err, MPI_Bcast(&len, 1, MPI_INT64_T, 0, ctx->comm)));
    if (rc) goto done;
    BGFM_ASSERT(len >= 0 && len <= CONFIG_MAX_BYTES);
    if (ctx->rank != 0) {
        buf = bgfm_malloc(&ctx->err, (size_t)len + 1, "pipeline file");
        rc = buf ? 0 : BGFM_ENOMEM;
    }
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) goto done;
    if (len > 0) rc = BGFM_MPI(&ctx->err, MPI_Bcast(buf, (int)len, MPI_BYTE, 0, ctx->comm));
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) goto done;
    buf[len] = '\0';
    bgfm_err e;
    bgfm_err_clear(&e);
    rc = config_parse(file, buf, (size_t)len, out, &e);
    if (rc) bgfm_fail(&ctx->err, rc, "%s", e.msg);
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) config_free(out);
done:
    free(buf);
    return rc;
}
