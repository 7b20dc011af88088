/* params.c: a stage's (or block's) typed parameter values (bgfm_params, config.h): the
 * accessors stages read their options with, and the messages that point at a value's
 * place in the pipeline file (config_fail_at, config_stage_fail), and the look-up of an
 * inputs.datasets entry and its role (config_dataset_find, config_dataset_role).
 * Not the parser that fills them (config.c) and not one value's syntax (optvalue.c). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/optvalue.h"
#include "bgfm/yamltree.h"
#include "config_parse.h"

int cfg_params_init(bgfm_params *p, const bgfm_opt *opts, int n, bgfm_err *e) {
    memset(p, 0, sizeof *p);
    p->opts = opts;
    p->n = n;
    p->v = bgfm_calloc(e, (size_t)(n > 0 ? n : 1), sizeof *p->v, "option values");
    if (!p->v) return BGFM_ENOMEM;
    for (int i = 0; i < n; i++) p->v[i].opt = &opts[i];
    return 0;
}

void params_free(bgfm_params *p) {
    if (!p) return;
    if (p->v)
        for (int i = 0; i < p->n; i++) optvalue_clear(&p->v[i]);
    free(p->v);
    memset(p, 0, sizeof *p);
}

int cfg_opt_index(const bgfm_opt *opts, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (!strcmp(opts[i].key, key)) return i;
    return -1;
}

const bgfm_value *params_value(const bgfm_params *p, const char *key) {
    int i = cfg_opt_index(p->opts, p->n, key);
    BGFM_ASSERT(i >= 0 && "params: key not in the options table");
    return &p->v[i];
}

bool params_has(const bgfm_params *p, const char *key) { return params_value(p, key)->state != 0; }

bool params_bool(const bgfm_params *p, const char *key) {
    const bgfm_value *v = params_value(p, key);
    BGFM_ASSERT(v->opt->type == BGFM_OPT_BOOL);
    return v->state ? v->b : false;
}

int64_t params_int(const bgfm_params *p, const char *key) {
    const bgfm_value *v = params_value(p, key);
    BGFM_ASSERT(v->opt->type == BGFM_OPT_INT);
    return v->state ? v->i : 0;
}

const char *params_word(const bgfm_params *p, const char *key) {
    const bgfm_value *v = params_value(p, key);
    BGFM_ASSERT(v->opt->type == BGFM_OPT_INT);
    return v->state ? v->s : NULL;
}

double params_real(const bgfm_params *p, const char *key) {
    const bgfm_value *v = params_value(p, key);
    BGFM_ASSERT(v->opt->type == BGFM_OPT_REAL);
    return v->state ? v->r : 0.0;
}

const char *params_str(const bgfm_params *p, const char *key) {
    const bgfm_value *v = params_value(p, key);
    BGFM_ASSERT(v->opt->type == BGFM_OPT_STR || v->opt->type == BGFM_OPT_ENUM);
    return v->state ? v->s : NULL;
}

void cfg_key_join(char *out, size_t n, const char *a, const char *b) {
    if (a && a[0])
        snprintf(out, n, "%s.%s", a, b);
    else
        snprintf(out, n, "%s", b);
}

int config_fail_at(bgfm_err *e, const bgfm_pipeline *p, int line, int col, const char *key,
                   const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = yamltree_vfail(e, p->file, line, col, key, NULL, fmt, ap);
    va_end(ap);
    return rc;
}

int config_stage_fail(bgfm_err *e, const bgfm_pipeline *p, const bgfm_stage_cfg *s,
                      const char *key, const char *fmt, ...) {
    char full[512];
    int line = s->line, col = s->col;
    if (key) {
        snprintf(full, sizeof full, "stages.%s.with.%s", s->name, key);
        int i = cfg_opt_index(s->with.opts, s->with.n, key);
        if (i >= 0 && s->with.v[i].state == 2) {
            line = s->with.v[i].line;
            col = s->with.v[i].col;
        }
    } else {
        snprintf(full, sizeof full, "stages.%s", s->name);
    }
    va_list ap;
    va_start(ap, fmt);
    int rc = yamltree_vfail(e, p->file, line, col, full, NULL, fmt, ap);
    va_end(ap);
    return rc;
}

const bgfm_value *config_slurm_value(const bgfm_pipeline *p, int i, const char *key) {
    BGFM_ASSERT(i >= -1 && i < p->n_stages);
    if (i >= 0) {
        const bgfm_value *v = params_value(&p->stage_slurm[i], key);
        if (v->state) return v;
    }
    const bgfm_value *g = params_value(&p->slurm, key);
    return g->state ? g : NULL;
}

const bgfm_dataset_cfg *config_dataset_find(const bgfm_pipeline *p, const char *name) {
    for (int i = 0; name && i < p->n_datasets; i++)
        if (!strcmp(p->datasets[i].name, name)) return &p->datasets[i];
    return NULL;
}

int config_dataset_role(const bgfm_pipeline *p, const char *name) {
    const bgfm_dataset_cfg *d = p ? config_dataset_find(p, name) : NULL;
    return d ? d->role : BGFM_ROLE_BOTH;
}
