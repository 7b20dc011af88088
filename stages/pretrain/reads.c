/* reads.c: what the pretrain stage reads of its graph store, hashed for its fingerprint
 * (pretrain.h, pretrain_upstream_digest; docs/corpus.md "Adding or removing a dataset").
 * Not the training (pretrain.c) nor the store (graphs.h). */
#include <stdio.h>
#include <string.h>

#include "bgfm/graphs.h"
#include "bgfm/parts.h"
#include "bgfm/pretrain.h"
#include "bgfm/sha256.h"

int pretrain_upstream_digest(const bgfm_pipeline *p, const bgfm_stage_cfg *s,
                             const char *upstream_dir, char out[65]) {
    (void)s;
    bgfm_err ignore = {0};
    graphs_store *gs = NULL;
    if (graphs_open(upstream_dir, &gs, &ignore)) return 0;
    sha256_ctx h;
    sha256_init(&h);
    char line[1024];
    int len = snprintf(line, sizeof line, "bgfm-pretrain-reads 1\nrwse_steps %d\n",
                       graphs_rwse_steps(gs));
    sha256_update(&h, line, (size_t)len);
    for (int a = 0; a < graphs_n_atlases(gs); a++) {
        len = snprintf(line, sizeof line, "atlas %s %d\n", graphs_atlas_name(gs, a),
                       graphs_atlas_nodes(gs, a));
        sha256_update(&h, line, (size_t)len);
    }
    int ok = 1;
    const char *last = NULL; /* datasets come in runs: one key read per run */
    for (int64_t g = 0; ok && g < graphs_count(gs); g++) {
        const char *ds = graphs_dataset(gs, g);
        if (!(config_dataset_role(p, ds) & BGFM_ROLE_PRETRAIN)) continue;
        if (!last || strcmp(last, ds)) {
            char key[65];
            ok = ds[0] && parts_key_read(upstream_dir, ds, key);
            len = snprintf(line, sizeof line, "dataset %s unit %s\n", ds, ok ? key : "-");
            sha256_update(&h, line, (size_t)len);
            last = ds;
        }
        const graphs_meta *m = graphs_get_meta(gs, g);
        len = snprintf(line, sizeof line, "%lld %d %lld %lld %lld %d %s\n", (long long)g,
                       m->atlas, (long long)m->subject, (long long)m->window,
                       (long long)m->label, m->n_nodes, graphs_participant(gs, g));
        sha256_update(&h, line, (size_t)len);
    }
    graphs_close(&gs);
    if (!ok) return 0;
    uint8_t d[32];
    sha256_final(&h, d);
    for (int k = 0; k < 32; k++) snprintf(out + 2 * k, 3, "%02x", d[k]);
    return 1;
}
