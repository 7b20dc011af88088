/* config_parse.h: private to the pipeline loader (config.c, config_values.c, params.c): the parse
 * context and the checks of paths, names, Slurm values and memory sizes that both use.
 * Not a public header: the loader's interface is include/bgfm/config.h. The three files
 * depend one way: config.c -> config_values.c -> params.c (no circle). */
#ifndef BGFM_CONFIG_PARSE_H
#define BGFM_CONFIG_PARSE_H

#include "bgfm/config.h"
#include "bgfm/stage.h"

typedef struct cfgp {
    const char *file;
    bgfm_err *e;
    const bgfm_stage_kind *const *kinds;
    int base_real; /* basedir came from realpath(): leading ".." may be folded into it */
} cfgp;

/* params.c: an empty block of n options (values unset), and a key's index (-1). */
int cfg_params_init(bgfm_params *p, const bgfm_opt *opts, int n, bgfm_err *e);
int cfg_opt_index(const bgfm_opt *opts, int n, const char *key);
/* "path.key" (or "key" at the top level) for messages. */
void cfg_key_join(char *out, size_t n, const char *a, const char *b);
/* Record "FILE:LINE:COL: key: message" at value v's position; returns BGFM_EUSAGE. */
int cfg_value_fail(const cfgp *c, const bgfm_value *v, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The pipeline file's folder, absolute (symlinks resolved when it exists). */
int cfg_base_dir(cfgp *c, char **out);
/* rel against base (fold: leading "../" folded into a real base), tidied, malloc'ed. */
int cfg_path_resolve(const cfgp *c, const char *base, const char *rel, int fold, char **out);
/* [A-Za-z0-9_-]+, plus '.' (not first) when dots is set: names that name folders. */
int cfg_name_ok(const char *s, int dots);
/* An inputs.datasets filter: "COLUMN == VALUE" or "COLUMN != VALUE" (1 when it is one). */
int cfg_filter_ok(const char *f);
/* The Slurm block's values that the table cannot check: time, mem, extra. */
int cfg_slurm_check(const cfgp *c, const bgfm_params *sl, const char *path);

#endif
