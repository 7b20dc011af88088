/* ckpt.h: model checkpoints in HDF5 (docs/formats.md "checkpoints"): /model/<name>
 * with the architecture as attributes of /model, /optim/{m,v}/<name>, /state/..., a
 * completion mark, written under a temporary name and renamed. Also the tensor and
 * attribute helpers the gradient dump shares. Single-process I/O (MPI_COMM_SELF):
 * the caller decides which rank writes. Not the training loop. */
#ifndef BGFM_CKPT_H
#define BGFM_CKPT_H

#include <hdf5.h>
#include <stdint.h>

#include "bgfm/ctx.h"
#include "bgfm/model.h"
#include "bgfm/optim.h"

#define CKPT_FORMAT_VERSION 1

/* Everything besides the tensors that a bit-exact resume needs. Every draw is a pure
 * function of (seed, purpose, epoch/step, global graph index), so (seed, step, epoch,
 * pos) IS the generator state. */
typedef struct ckpt_state {
    int64_t step;   /* optimiser steps done */
    int64_t epoch;  /* epoch of the next step */
    int64_t pos;    /* batches of that epoch already done */
    uint64_t seed;
    char *config;   /* resolved configuration text (owned when loaded) */
} ckpt_state;

/* Write every tensor of buf (model layout) as group/<name>. */
int ckpt_write_tensors(hid_t f, const model *m, const char *group, const float *buf, bgfm_err *e);
/* Read group/<name> for every tensor into buf; shapes must match. */
int ckpt_read_tensors(hid_t f, const model *m, const char *group, float *buf, const char *path,
                      bgfm_err *e);
/* Architecture attributes on `group` (atlases as one comma-separated string, atlas_nodes,
 * H, nh, F, k, L, Ld, P, N_max, D_in) and back. */
int ckpt_write_arch(hid_t f, const char *group, const model *m, bgfm_err *e);
int ckpt_read_arch(hid_t f, const char *group, model_cfg *c, const char *path, bgfm_err *e);

/* Save model (+ optimiser moments when o != NULL) and state to `path` atomically:
 * written to path.tmp, completion attribute `complete` = 1 written last, renamed. */
int ckpt_save(const char *path, const model *m, const optim *o, const ckpt_state *st,
              bgfm_err *e);
/* Load: initialises *m from the file's architecture (model_init) and its parameters;
 * when o != NULL also initialises *o with the moments and step count; st may be NULL. */
int ckpt_load(const char *path, model *m, optim *o, ckpt_state *st, bgfm_err *e);
/* 1 when path is a checkpoint with the completion mark. */
int ckpt_is_complete(const char *path);

#endif
