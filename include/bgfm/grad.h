/* grad.h: the gradient dump of model.md section 7 (`bgfm grad`): one deterministic
 * forward + backward (dropout off) on a batch of one atlas, with params, grads, losses,
 * inputs and every draw written to HDF5 so an independent implementation can check it.
 * Not training (pretrain.h). */
#ifndef BGFM_GRAD_H
#define BGFM_GRAD_H

#include "bgfm/ctx.h"
#include "bgfm/model.h"

/* Write the dump of the last model_step(m, ws, bt, hp, ...) to `path` (one process). */
int grad_dump_write(const char *path, const model *m, const model_ws *ws, const model_batch *bt,
                    const model_hp *hp, const model_losses *ls, bgfm_err *e);

#endif
