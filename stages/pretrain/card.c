/* card.c: the model card of a checkpoint (card.h): what pretraining read, counted per
 * dataset and atlas, as JSON. Not the checkpoint writer (ckpt.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/card.h"
#include "bgfm/json.h"

typedef struct gkey {
    const char *ds, *pid;
    int64_t subject;
} gkey;

static int cmp_gkey(const void *x, const void *y) {
    const gkey *a = x, *b = y;
    int c = strcmp(a->ds, b->ds);
    if (!c) c = strcmp(a->pid, b->pid);
    return c ? c : (a->subject > b->subject) - (a->subject < b->subject);
}

static const char *role_name(int r) {
    return r == BGFM_ROLE_PRETRAIN ? "pretrain" : r == BGFM_ROLE_DOWNSTREAM ? "downstream" : "both";
}

/* One dataset's counts over keys k[i0..i1) (sorted, all of that dataset). */
static void write_dataset(FILE *f, const gkey *k, int64_t i0, int64_t i1,
                          const bgfm_pipeline *p) {
    int64_t subj = 0, scans = 0;
    for (int64_t i = i0; i < i1; i++) {
        if (i == i0 || strcmp(k[i].pid, k[i - 1].pid)) subj++;
        if (i == i0 || strcmp(k[i].pid, k[i - 1].pid) || k[i].subject != k[i - 1].subject) scans++;
    }
    const bgfm_dataset_cfg *d = p ? config_dataset_find(p, k[i0].ds) : NULL;
    fputs("{\"name\": ", f);
    json_write_str(f, k[i0].ds);
    fprintf(f, ", \"role\": \"%s\", \"bids\": ", role_name(config_dataset_role(p, k[i0].ds)));
    if (d) json_write_str(f, d->bids);
    else if (p && p->bids && !k[i0].ds[0]) json_write_str(f, p->bids);
    else fputs("null", f);
    fprintf(f, ", \"subjects\": %lld, \"scans\": %lld, \"graphs\": %lld}", (long long)subj,
            (long long)scans, (long long)(i1 - i0));
}

char *card_make(const graphs_store *gs, const int64_t *graphs, int64_t n,
                const bgfm_pipeline *p, const char *protocol, const char *config, bgfm_err *e) {
    gkey *k = bgfm_malloc(e, (size_t)(n + 1) * sizeof *k, "model card");
    int A = graphs_n_atlases(gs);
    int64_t *per_atlas = bgfm_calloc(e, (size_t)A + 1, sizeof *per_atlas, "model card");
    char *t = NULL;
    size_t tl = 0;
    FILE *f = k && per_atlas ? open_memstream(&t, &tl) : NULL;
    if (!f) {
        free(k);
        free(per_atlas);
        bgfm_fail(e, BGFM_ENOMEM, "out of memory writing the model card");
        return NULL;
    }
    for (int64_t i = 0; i < n; i++) {
        const graphs_meta *m = graphs_get_meta(gs, graphs[i]);
        k[i] = (gkey){graphs_dataset(gs, graphs[i]), graphs_participant(gs, graphs[i]), m->subject};
        per_atlas[m->atlas]++;
    }
    qsort(k, (size_t)n, sizeof *k, cmp_gkey);
    int64_t subj = 0, scans = 0;
    for (int64_t i = 0; i < n; i++) {
        int same_pair = i && !strcmp(k[i].ds, k[i - 1].ds) && !strcmp(k[i].pid, k[i - 1].pid);
        subj += !same_pair;
        scans += !same_pair || k[i].subject != k[i - 1].subject;
    }
    fputs("{\n  \"format\": \"bgfm-model-card\",\n  \"format_version\": 1,\n  \"protocol\": ", f);
    json_write_str(f, protocol ? protocol : "transductive");
    fprintf(f, ",\n  \"graphs\": %lld,\n  \"subjects\": %lld,\n  \"scans\": %lld,\n"
            "  \"datasets\": [", (long long)n, (long long)subj, (long long)scans);
    for (int64_t i = 0, j, q = 0; i < n; i = j, q++) {
        for (j = i; j < n && !strcmp(k[j].ds, k[i].ds); j++) continue;
        fputs(q ? ",\n    " : "\n    ", f);
        write_dataset(f, k, i, j, p);
    }
    fputs("\n  ],\n  \"atlases\": [", f);
    for (int a = 0; a < A; a++) {
        fputs(a ? ",\n    {\"name\": " : "\n    {\"name\": ", f);
        json_write_str(f, graphs_atlas_name(gs, a));
        fprintf(f, ", \"nodes\": %d, \"graphs\": %lld}", graphs_atlas_nodes(gs, a),
                (long long)per_atlas[a]);
    }
    fprintf(f, "\n  ],\n  \"rwse_steps\": %d,\n  \"options\": ", graphs_rwse_steps(gs));
    json_write_str(f, config ? config : "");
    fputs("\n}\n", f);
    int bad = fclose(f) != 0;
    free(k);
    free(per_atlas);
    if (bad) {
        free(t);
        bgfm_fail(e, BGFM_ENOMEM, "out of memory writing the model card");
        return NULL;
    }
    return t;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int card_subject_keys(const graphs_store *gs, const int64_t *graphs, int64_t n, char ***keys,
                      int64_t *nk, bgfm_err *e) {
    char **k = bgfm_calloc(e, (size_t)n + 1, sizeof *k, "pretrain subjects");
    if (!k) return BGFM_ENOMEM;
    int64_t m = 0;
    int rc = 0;
    for (int64_t i = 0; i < n && !rc; i++) {
        const char *d = graphs_dataset(gs, graphs[i]), *p = graphs_participant(gs, graphs[i]);
        size_t l = strlen(d) + strlen(p) + 2;
        if (!(k[m] = bgfm_malloc(e, l, "pretrain subjects"))) rc = BGFM_ENOMEM;
        else snprintf(k[m++], l, "%s%s%s", d, *d ? "/" : "", p);
    }
    if (!rc) {
        qsort(k, (size_t)m, sizeof *k, cmp_str);
        int64_t u = 0;
        for (int64_t i = 0; i < m; i++) {
            if (u && !strcmp(k[i], k[u - 1])) free(k[i]);
            else k[u++] = k[i];
        }
        m = u;
    }
    if (rc) {
        for (int64_t i = 0; i < m; i++) free(k[i]);
        free(k);
        return rc;
    }
    *keys = k;
    *nk = m;
    return 0;
}
