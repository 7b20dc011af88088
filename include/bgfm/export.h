/* export.h: the model in the safetensors format (docs/export.md, docs/formats.md
 * "safetensors"): `bgfm export` writes a checkpoint's encoder (or the whole pretraining
 * model) under the names of the PyTorch module python/bgfm_torch, with the architecture
 * and the training corpus as metadata; the strict reader brings such a file back into a
 * model (`init: FILE.safetensors` of a pretrain stage). Not the checkpoint format
 * (ckpt.h) and not the PyTorch module. One process; nothing here is collective. */
#ifndef BGFM_EXPORT_H
#define BGFM_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "bgfm/ctx.h"
#include "bgfm/graphs.h"
#include "bgfm/model.h"

#define EXPORT_FORMAT_VERSION 1            /* metadata `format_version` */
#define EXPORT_MAX_HEADER (100u << 20)     /* header bytes (the safetensors limit) */

/* The PyTorch state_dict name of a bgfm tensor (model.md section 6), e.g.
 * enc/0/attn/Wq -> enc.0.attn.q.weight, and back. 0, or -1 when the name has no
 * counterpart (or does not fit in n bytes). The two are inverse on every name either
 * accepts (tests/unit/test_export.c). */
int export_torch_name(const char *bgfm, char *out, size_t n);
int export_bgfm_name(const char *torch, char *out, size_t n);
/* 1 for the tensors of the encoder (every tensor but the decoder dec/ and the
 * projection head proj/; the input normalisation buffers norm/ included). */
int export_is_encoder(const char *bgfm);

/* The corpus keys of the metadata: what the model was trained on. NULL members and
 * n_graphs < 0 are left out. */
typedef struct export_corpus {
    const char *config;     /* the checkpoint's /state config text */
    const char *protocol;   /* transductive | strict */
    int64_t n_graphs;       /* graphs pretraining read (/pretrain_graphs) */
    int64_t step, epoch;
    uint64_t seed;
    const char *source;     /* the checkpoint's file name */
    const char *sha256_model;
} export_corpus;

/* Write m (the encoder, or every tensor when full) to `path` as safetensors: through
 * path.tmp-<pid>, fsync, rename, fsync of the folder; on failure nothing is left. */
int export_write(const char *path, const model *m, const export_corpus *cp, int full,
                 bgfm_err *e);

/* Read a bgfm safetensors file strictly into *m (model_init from its metadata): every
 * tensor of the file must be a tensor of that model with its shape and F32 data inside
 * the file, without gaps or overlaps; an encoder-only file (metadata contents =
 * encoder) leaves the decoder and projection head at model_init_params(seed). Errors
 * name the file and the tensor: BGFM_EDATA for anything in the file, BGFM_EIO when it
 * cannot be read. *full (may be NULL) = 1 when the file held the whole model. */
int export_load(const char *path, uint64_t seed, model *m, int *full, bgfm_err *e);
/* BGFM_EDATA (naming the file and the tensor) unless every atlas of the graph store is
 * an atlas of m with the same node count, and m's RWSE width is the store's. */
int export_check_graphs(const char *path, const model *m, const graphs_store *gs, bgfm_err *e);
/* 1 when path names a safetensors file (ends in ".safetensors"). */
int export_is_safetensors(const char *path);

#endif
