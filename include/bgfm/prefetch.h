/* prefetch.h: read-ahead over a NIfTI reader: a reader thread inflates the next volumes
 * of an open niftiio_reader into a small ring of float32 buffers while the caller works
 * on the current one; volumes are handed out in order, errors at the volume they hit.
 * Not a reader itself (nifti.h parses and inflates) and not a thread pool: one file,
 * one reader thread, one consumer. Non-collective, no MPI. */
#ifndef BGFM_PREFETCH_H
#define BGFM_PREFETCH_H

#include "bgfm/ctx.h"
#include "bgfm/nifti.h"

typedef struct prefetch_reader prefetch_reader; /* opaque */

/* Hand out the nvol volumes of `r` (freshly opened: no volume read yet) through `depth`
 * volume buffers of nvox floats each (depth >= 1, capped at nvol). depth >= 2 starts a
 * reader thread that stays up to depth - 1 volumes ahead of the volume the caller
 * holds; depth 1 (or a thread that cannot be started) reads synchronously inside
 * prefetch_next, exactly as a loop of niftiio_read_volume. Until prefetch_close, `r`
 * belongs to the prefetcher: the caller must not read from it (niftiio_hdr is fine).
 * Errors: BGFM_ENOMEM (the buffers). */
int prefetch_open(niftiio_reader *r, int depth, prefetch_reader **out, bgfm_err *e);

/* The next volume, as niftiio_read_volume gives it (scaled, float32, NIfTI voxel
 * order), in a buffer owned by the prefetcher that stays valid until the next
 * prefetch_next or prefetch_close; *vol = NULL on error. A read error (truncated or
 * corrupt file, CRC mismatch found after the last volume, EIO) is returned at the
 * volume where the plain reader would return it, with its code and message unchanged.
 * Asking beyond the last volume is BGFM_EINTERNAL. */
int prefetch_next(prefetch_reader *p, const float **vol, bgfm_err *e);

/* 1 when a reader thread serves the volumes, 0 when they are read synchronously. */
int prefetch_threaded(const prefetch_reader *p);

/* Stop the reader thread (it finishes at most the volume it is inflating), join it and
 * free the buffers. Afterwards the caller owns `r` again (niftiio_bytes_read,
 * niftiio_close). Accepts NULL and sets *p = NULL. */
void prefetch_close(prefetch_reader **p);

#endif
