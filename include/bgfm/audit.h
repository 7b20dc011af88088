/* audit.h: the probe's leakage audit (docs/corpus.md): which (dataset, participant) pairs
 * pretraining read, which the probe labelled, and the subjects in both, subjects of the
 * subject map counting as one. Not the refusal of an overlap (stages/probe/stage.c) and
 * not the checkpoint's protocol (stages/probe/data.c). Non-collective. */
#ifndef BGFM_AUDIT_H
#define BGFM_AUDIT_H

#include <stdint.h>
#include <stdio.h>

#include "bgfm/corpus.h"
#include "bgfm/ctx.h"
#include "bgfm/graphs.h"

typedef struct audit_row {
    char *dataset, *participant; /* the pair as the graph store writes it ("" dataset with
                                    inputs.bids) */
    const char *subject;         /* the subject it belongs to: its key through the map */
    int pretrain, probe;         /* pretraining read a graph of it / the probe labelled it */
    int overlap;                 /* its subject has pairs on both sides */
} audit_row;

typedef struct probe_audit {
    int64_t n;
    audit_row *rows;             /* sorted by subject, then pair */
    char **keys;                 /* (n) owned key strings the rows' subjects point into */
    int64_t n_pretrain, n_probe, n_overlap; /* distinct subjects */
    const char *first_overlap;   /* a subject in both, NULL when none */
} probe_audit;

/* The audit of what pretraining read, the graphs pre[0..n_pre) of store gs or (a
 * checkpoint from elsewhere) the keys pre_keys[0..n_keys) ("<dataset>/<participant_id>"),
 * against the graphs the probe labelled (probed[0..n_probed)); map may be NULL. */
int probe_audit_build(graphs_store *gs, const int64_t *pre, int64_t n_pre,
                      char *const *pre_keys, int64_t n_keys, const int64_t *probed,
                      int64_t n_probed, const corpus_map *map, probe_audit *a, bgfm_err *e);
void probe_audit_free(probe_audit *a);
/* report/audit.tsv: dataset, participant_id, subject, pretrain, probe, overlap (0/1). */
int probe_audit_write_tsv(const probe_audit *a, const char *path, bgfm_err *e);
/* The value of probe.json's "audit" key (a JSON object, `ind` the indent of its keys). */
void probe_audit_write_json(FILE *f, const probe_audit *a, int transductive,
                            const char *subject_map, const char *ind);

#endif
