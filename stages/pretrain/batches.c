/* batches.c: the epoch plan of pretraining (batches.h): the graphs training reads, their
 * one-atlas batches, each epoch's order and each graph's positive partner.
 * Not the training loop (pretrain.c). */
#include "bgfm/batches.h"

#include <stdlib.h>
#include <string.h>

#include "bgfm/rng.h"

void batch_plan_free(batch_plan *p) {
    if (p->list)
        for (int a = 0; a < p->A; a++) free(p->list[a]);
    free(p->list);
    free(p->cnt);
    free(p->nb);
    free(p->perm);
    free(p->off);
    free(p->ord_atlas);
    free(p->ord_batch);
    free(p->used);
    free(p->mem), free(p->gstart), free(p->glen);
    memset(p, 0, sizeof *p);
}

static int graph_used(graphs_store *gs, int64_t g, const pretrain_opts *o) {
    return (!o->strict || graphs_get_meta(gs, g)->label < 0) &&
           (config_dataset_role(o->pipe, graphs_dataset(gs, g)) & BGFM_ROLE_PRETRAIN);
}

/* A batch: batch_size graphs of one atlas (a last partial batch kept when it has 2 or more:
 * NT-Xent needs negatives). Read (graph_used): unlabelled ones under `strict`, and with
 * inputs.datasets those of pretrain-role datasets, in one stream (docs/corpus.md). */
int batch_plan_make(batch_plan *p, graphs_store *gs, const pretrain_opts *o, bgfm_err *e) {
    memset(p, 0, sizeof *p);
    int A = p->A = graphs_n_atlases(gs);
    int64_t G = graphs_count(gs), bs = o->batch_size;
    p->cnt = bgfm_calloc(e, (size_t)A, sizeof *p->cnt, "plan");
    p->list = bgfm_calloc(e, (size_t)A, sizeof *p->list, "plan");
    p->nb = bgfm_calloc(e, (size_t)A, sizeof *p->nb, "plan");
    p->off = bgfm_calloc(e, (size_t)A + 1, sizeof *p->off, "plan");
    p->perm = bgfm_calloc(e, (size_t)(G ? G : 1), sizeof *p->perm, "plan");
    p->used = bgfm_malloc(e, (size_t)(G ? G : 1) * sizeof *p->used, "plan");
    if (!p->cnt || !p->list || !p->nb || !p->off || !p->perm || !p->used) return BGFM_ENOMEM;
    for (int64_t g = 0; g < G; g++)
        if (graph_used(gs, g, o)) p->used[p->n_used++] = g, p->cnt[graphs_get_meta(gs, g)->atlas]++;
    for (int a = 0; a < A; a++) {
        p->list[a] = bgfm_calloc(e, (size_t)(p->cnt[a] ? p->cnt[a] : 1), sizeof(int64_t), "plan");
        if (!p->list[a]) return BGFM_ENOMEM;
        p->off[a + 1] = p->off[a] + p->cnt[a];
        p->nb[a] = p->cnt[a] / bs + (p->cnt[a] % bs >= 2);
        p->spe += p->nb[a];
        p->cnt[a] = 0;
    }
    for (int64_t i = 0; i < p->n_used; i++) {
        const graphs_meta *gm = graphs_get_meta(gs, p->used[i]);
        p->list[gm->atlas][p->cnt[gm->atlas]++] = p->used[i];
    }
    p->ord_atlas = bgfm_calloc(e, (size_t)(p->spe ? p->spe : 1), sizeof *p->ord_atlas, "plan");
    p->ord_batch = bgfm_calloc(e, (size_t)(p->spe ? p->spe : 1), sizeof *p->ord_batch, "plan");
    return p->ord_atlas && p->ord_batch ? 0 : BGFM_ENOMEM;
}

typedef struct scan_key {
    int64_t atlas, scan, g;
} scan_key;

static int scan_key_cmp(const void *a, const void *b) {
    const scan_key *x = a, *y = b;
    if (x->atlas != y->atlas) return x->atlas < y->atlas ? -1 : 1;
    if (x->scan != y->scan) return x->scan < y->scan ? -1 : 1;
    return (x->g > y->g) - (x->g < y->g);
}

/* Groups of the graphs training reads that share atlas and scan (the windows of one
 * scan through one atlas): the candidates for a graph's GCL positive partner. */
int batch_plan_partners(batch_plan *p, graphs_store *gs, bgfm_err *e) {
    int64_t G = graphs_count(gs), n = p->n_used;
    scan_key *k = bgfm_malloc(e, (size_t)(n ? n : 1) * sizeof *k, "partner plan");
    p->mem = bgfm_malloc(e, (size_t)(n ? n : 1) * sizeof *p->mem, "partner plan");
    p->gstart = bgfm_calloc(e, (size_t)(G ? G : 1), sizeof *p->gstart, "partner plan");
    p->glen = bgfm_calloc(e, (size_t)(G ? G : 1), sizeof *p->glen, "partner plan");
    if (!k || !p->mem || !p->gstart || !p->glen) {
        free(k);
        return BGFM_ENOMEM;
    }
    for (int64_t i = 0; i < n; i++) {
        const graphs_meta *gm = graphs_get_meta(gs, p->used[i]);
        k[i] = (scan_key){gm->atlas, gm->subject, p->used[i]};
    }
    qsort(k, (size_t)n, sizeof *k, scan_key_cmp);
    for (int64_t i = 0, j; i < n; i = j) {
        for (j = i; j < n && k[j].atlas == k[i].atlas && k[j].scan == k[i].scan; j++) p->mem[j] = k[j].g;
        for (int64_t q = i; q < j; q++) p->gstart[k[q].g] = i, p->glen[k[q].g] = j - i;
    }
    free(k);
    return 0;
}

/* Graph g's positive partner in epoch ep: uniform over the other windows of its scan
 * (rng(seed, RNG_PARTNER, ep, g)), g itself when the scan has one graph. */
int64_t batch_plan_partner(const batch_plan *p, uint64_t seed, int64_t ep, int64_t g) {
    int64_t len = p->glen[g];
    if (len < 2) return g;
    rng_stream r;
    rng_init(&r, seed, RNG_PARTNER, (uint64_t)ep, (uint64_t)g, 0);
    int64_t j = (int64_t)rng_below(&r, (uint64_t)(len - 1));
    const int64_t *m = p->mem + p->gstart[g];
    return m[j] < g ? m[j] : m[j + 1]; /* the j-th member other than g (ascending order) */
}

/* Order of epoch `ep`: each atlas's graphs shuffled (RNG_SHUFFLE, i0 = epoch, i1 =
 * atlas + 1), then the sequence of (atlas, batch) pairs shuffled (i1 = 0). */
void batch_plan_epoch(batch_plan *p, uint64_t seed, int64_t ep) {
    int64_t k = 0;
    for (int a = 0; a < p->A; a++) {
        memcpy(p->perm + p->off[a], p->list[a], (size_t)p->cnt[a] * sizeof(int64_t));
        rng_stream r;
        rng_init(&r, seed, RNG_SHUFFLE, (uint64_t)ep, (uint64_t)a + 1, 0);
        rng_shuffle_i64(&r, p->perm + p->off[a], p->cnt[a]);
        for (int64_t j = 0; j < p->nb[a]; j++) {
            p->ord_atlas[k] = a;
            p->ord_batch[k++] = j;
        }
    }
    rng_stream r;
    rng_init(&r, seed, RNG_SHUFFLE, (uint64_t)ep, 0, 0);
    for (int64_t i = p->spe - 1; i > 0; i--) {
        int64_t j = (int64_t)rng_below(&r, (uint64_t)i + 1);
        int32_t ta = p->ord_atlas[i];
        int64_t tb = p->ord_batch[i];
        p->ord_atlas[i] = p->ord_atlas[j];
        p->ord_batch[i] = p->ord_batch[j];
        p->ord_atlas[j] = ta;
        p->ord_batch[j] = tb;
    }
}

