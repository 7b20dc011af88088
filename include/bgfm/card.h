/* card.h: the model card a checkpoint carries (root attribute `corpus`, docs/corpus.md):
 * the datasets pretraining read (name, role, subjects, scans, graphs), its atlases (node
 * counts, graphs), the RWSE steps, the protocol and the training options, as JSON text.
 * Not the checkpoint writer (ckpt.h) and not its printing (`bgfm inspect`). */
#ifndef BGFM_CARD_H
#define BGFM_CARD_H

#include <stdint.h>

#include "bgfm/config.h"
#include "bgfm/ctx.h"
#include "bgfm/graphs.h"

/* The card of a model trained on graphs[0..n) of store gs (p: the pipeline, for the
 * datasets' roles and folders; may be NULL). malloc'ed JSON text, NULL on failure. */
char *card_make(const graphs_store *gs, const int64_t *graphs, int64_t n,
                const bgfm_pipeline *p, const char *protocol, const char *config, bgfm_err *e);

/* The distinct "<dataset>/<participant_id>" keys ("<participant_id>" without a dataset)
 * of graphs[0..n), sorted: the checkpoint's /pretrain_subjects, which a probe of another
 * pipeline audits against. *keys: malloc'ed array of malloc'ed strings (strlist_free). */
int card_subject_keys(const graphs_store *gs, const int64_t *graphs, int64_t n, char ***keys,
                      int64_t *nk, bgfm_err *e);

#endif
