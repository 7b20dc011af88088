/* ckpt.h: model checkpoints in HDF5 (docs/formats.md "checkpoints"): /model/<name>
 * with the architecture as attributes of /model, /optim/{m,v}/<name>, /state/...,
 * SHA-256 checksums, a completion mark, written under a temporary name and renamed.
 * Saving is collective over a communicator (each rank writes a row range of every
 * tensor: one parallel file); loading is per process, whole or streamed. Also the
 * tensor and attribute helpers the gradient dump shares. Not the training loop. */
#ifndef BGFM_CKPT_H
#define BGFM_CKPT_H

#include <hdf5.h>
#include <stdint.h>

#include "bgfm/config.h"
#include "bgfm/ctx.h"
#include "bgfm/graphs.h"
#include "bgfm/model.h"
#include "bgfm/optim.h"

#define CKPT_FORMAT_VERSION 3 /* 3: CRC-32 block digests under sha256 / sha256_model;
                                * 2: SHA-256 block digests; 1: no checksums (all load) */
#define CKPT_HASH_BLOCK (1 << 20) /* bytes per hashed block (part of the format) */
#define CKPT_BLAS_MAX 160         /* bytes of the `blas` attribute kept (openblas_get_config()) */

/* Everything besides the tensors that a bit-exact resume needs. Every draw is a pure
 * function of (seed, purpose, epoch/step, global graph index), so (seed, step, epoch,
 * pos) IS the generator state. */
typedef struct ckpt_state {
    int64_t step;   /* optimiser steps done */
    int64_t epoch;  /* epoch of the next step */
    int64_t pos;    /* batches of that epoch already done */
    uint64_t seed;
    char *config;   /* resolved configuration text (owned when loaded) */
    /* what training read (written when graphs != NULL; not loaded back): the root
     * attribute `protocol` and /pretrain_graphs, the store indices, ascending */
    const char *protocol;
    const int64_t *graphs;
    int64_t n_graphs;
    long pause_ms;  /* test hook (ctx.h, set only by the test driver): sleep this long before
                       the completion mark, to widen the window in which a kill lands */
    /* with graphs: their store and the pipeline (may be NULL), for the model card (root
     * attribute `corpus`, card.h) and /pretrain_subjects */
    const graphs_store *gs;
    const bgfm_pipeline *pipe;
    /* extra state (the adaptation stages, docs/adapt.md "Checkpoints"): n_extra float64
     * arrays, the same on every rank, written by rank 0 as /extra/<name> and covered by
     * the root attribute sha256_extra (SHA-256 over the arrays' SHA-256s, in order);
     * ckpt_load fills the same arrays back (a size that differs is BGFM_EDATA). */
    int n_extra;
    const char *const *extra_name;
    double *const *extra;
    const int64_t *extra_n;
    /* loaded: the root attribute `blas`, the OpenBLAS build and kernel of the rank 0 that
     * wrote the file ("" in files written before it was recorded) */
    char blas[CKPT_BLAS_MAX];
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

/* Collective over comm (every rank holds the same m, o, st): write `path` as one
 * parallel HDF5 file. Rank r of R writes rows [r rows/R, (r+1) rows/R) of every tensor
 * of /model, /optim/m, /optim/v (o may be NULL: model only); rank 0 the state. Written
 * to path.tmp; the checksums, then the attribute `complete` = 1 last; rank 0 fsyncs,
 * renames to path and fsyncs the folder. The same status is returned on every rank.
 * Test hook: BGFM_TEST_CKPT_PAUSE_MS sleeps before the completion mark. */
int ckpt_save_par(MPI_Comm comm, const char *path, const model *m, const optim *o,
                  const ckpt_state *st, bgfm_err *e);
/* ckpt_save_par on MPI_COMM_SELF (one process writes). */
int ckpt_save(const char *path, const model *m, const optim *o, const ckpt_state *st,
              bgfm_err *e);
/* Load (one process; no MPI call, so also in a process without MPI): initialises *m
 * from the file's architecture (model_init) and its parameters; when o != NULL also
 * initialises *o with the moments and step count; st may be NULL. *st is read as well
 * as written: its extra arrays (n_extra, extra_name, extra, extra_n) say which /extra
 * arrays to fill, so a caller that wants none passes a zeroed ckpt_state. Verifies the checksum
 * when the file has one (sha256 with o, sha256_model without): BGFM_EDATA naming the
 * file when it differs. */
int ckpt_load(const char *path, model *m, optim *o, ckpt_state *st, bgfm_err *e);
/* A checkpoint's parameters streamed to a reader that does not keep them (bgfm export):
 * one process, no MPI call. ckpt_stream_open makes the checks of ckpt_load (completion
 * mark, the architecture against the stored tensors, format version), initialises *m
 * (its parameter buffer stays zero: untouched) and reads *st with its config.
 * ckpt_stream_read passes every tensor of /model, in layout order, in consecutive pieces
 * of at most CKPT_HASH_BLOCK bytes (or one row) to fn(arg, tensor, first element, count,
 * floats): straight from the file's pages (mmap) where bgfm's layout allows, else through
 * HDF5; it verifies the checksum (sha256_model) on the way: BGFM_EDATA naming
 * the file when it differs, which it can only know after fn saw every piece, so the
 * caller must discard what it made of them then. A failing fn stops the stream with its
 * status. ckpt_stream_close accepts a stream whose open failed (s->f, s->fd < 0). */
typedef struct ckpt_stream {
    hid_t f;
    int fd;          /* the same file, for reading tensors straight from it */
    int64_t size;    /* its bytes */
    const char *path;
    int64_t version; /* format_version */
} ckpt_stream;
typedef int (*ckpt_piece_fn)(void *arg, const model_tensor *t, int64_t first, int64_t n,
                             const float *x, bgfm_err *e);
int ckpt_stream_open(ckpt_stream *s, const char *path, model *m, ckpt_state *st, bgfm_err *e);
int ckpt_stream_read(ckpt_stream *s, const model *m, ckpt_piece_fn fn, void *arg, bgfm_err *e);
int ckpt_stream_close(ckpt_stream *s, bgfm_err *e);
/* SHA-256 of a buffer (the same digest as sha256.h), with the x86 SHA extensions when
 * the build targets them (-march=native on a CPU with sha_ni: ~4x faster). */
void ckpt_sha256(const void *data, size_t n, uint8_t out[32]);
/* Collective over comm: block checksums of the state (hex, 64 chars + NUL): of the
 * parameters alone and of parameters, moments (o may be NULL) and st's record, as
 * format `version` defines them (2: SHA-256 block digests, 3: CRC-32; docs/formats.md).
 * Ranks do blocks i with i % size == rank; the result does not depend on size. */
int ckpt_checksums(MPI_Comm comm, const model *m, const optim *o, const ckpt_state *st,
                   int version, char model_hex[65], char all_hex[65], bgfm_err *e);
/* 1 when path is a checkpoint with the completion mark. */
int ckpt_is_complete(const char *path);

#endif
