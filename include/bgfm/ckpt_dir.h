/* ckpt_dir.h: the checkpoints folder of a training run: the complete checkpoints it holds
 * (ckpt-<step>.h5; ckpt.h says which are complete), the ones to resume from, and pruning
 * to the newest few. Not the checkpoint format (ckpt.h). */
#ifndef BGFM_CKPT_DIR_H
#define BGFM_CKPT_DIR_H

#include <stdint.h>

#include "bgfm/ctx.h"

/* Steps of the complete checkpoints in dir, descending (*n of them, malloc'ed; none when
 * dir does not exist). With clean_tmp, leftovers of interrupted writes (ckpt-<step>.h5.tmp)
 * are removed. */
int ckpt_dir_list(const char *dir, int64_t **steps, int *n, int clean_tmp, bgfm_err *e);

/* Removes all but the keep newest complete checkpoints of dir (keep <= 0: none). */
int ckpt_dir_prune(const char *dir, int64_t keep, bgfm_err *e);

/* Collective: candidate checkpoints to resume from, newest first, the same list on every
 * rank (rank 0 lists dir, removing leftovers of interrupted writes, ckpt-<step>.h5.tmp).
 * When dir has none and resume_from is set: that file, or the complete checkpoints of that
 * folder. *out (*nout paths) malloc'ed, each path too. */
int ckpt_dir_resume_candidates(bgfm_ctx *ctx, const char *dir, const char *resume_from,
                               char ***out, int *nout);

#endif
