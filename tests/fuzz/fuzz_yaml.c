/* fuzz_yaml.c: libFuzzer target for the pipeline-file parser (pipeline/engine/config.c):
 * config_parse on arbitrary bytes (libyaml events, the node tree, option tables,
 * stage validate hooks, path resolution), then the resolved-YAML and canonical
 * params writers on what parsed. Not a test of the messages' wording. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/config.h"
#include "bgfm/yamlout.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char file[300];
    fz_path(file, sizeof file, "pipeline.yaml"); /* only named: config_parse reads the buffer */
    bgfm_pipeline p;
    bgfm_err e;
    bgfm_err_clear(&e);
    int rc = config_parse(file, (const char *)data, size, &p, &e);
    if (rc) {
        if (e.code == 0 || !e.msg[0] || !memchr(e.msg, 0, sizeof e.msg)) abort();
        if (p.stages || p.atlases || p.name) abort(); /* freed and zeroed on failure */
        return 0;
    }
    FILE *null = fopen("/dev/null", "w");
    if (!null) abort();
    config_write_resolved(&p, null);
    if (params_write(&p.slurm, null, 2)) abort();
    for (int i = 0; i < p.n_stages; i++) {
        const bgfm_stage_cfg *s = &p.stages[i];
        if (params_write(&s->with, null, 4)) abort();
        if (config_stage_find(&p, s->name) == NULL) abort();
        (void)config_slurm_value(&p, i, "time");
    }
    fclose(null);
    config_free(&p);
    return 0;
}
