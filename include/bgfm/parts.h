/* parts.h: a stage's per-dataset work units (docs/corpus.md, "Adding or removing a
 * dataset"): the folder <stage folder>/parts/<name>/ holding data.bin (raw records laid
 * out by the stage, native byte order), meta.tsv (the stage's text) and key (the SHA-256
 * hex of everything the unit's records depend on), the key written last: a unit without
 * its key is incomplete. A unit of the stage's previous output whose key equals the one
 * computed today is hard-linked into the new folder instead of being recomputed.
 * Non-collective. Not what a unit holds, nor its key's text (the stages). */
#ifndef BGFM_PARTS_H
#define BGFM_PARTS_H

#include <stdint.h>

#include "bgfm/ctx.h"

/* malloc'ed "<dir>/parts/<name>/<file>" (file NULL: the unit's folder). */
char *parts_path(const char *dir, const char *name, const char *file, bgfm_err *e);
/* 1 when <dir>/parts/<name>/key exists and holds a 64-hex key, copied into key. */
int parts_key_read(const char *dir, const char *name, char key[65]);
/* 1 when the unit of `prev` is complete, its key is `key` and its data.bin has `bytes`
 * bytes (bytes < 0: any size); 0 otherwise (a missing folder included). */
int parts_match(const char *prev, const char *name, const char *key, int64_t bytes);
/* Hard-link prev's unit into out (out/parts/<name>/ created). 0, or nonzero when a
 * link fails (then nothing of the unit is left in out; the caller recomputes it). */
int parts_link(const char *prev, const char *out, const char *name, bgfm_err *e);
/* out/parts/<name>/ with a data.bin of `bytes` bytes (holes), no meta, no key. */
int parts_create(const char *out, const char *name, int64_t bytes, bgfm_err *e);
/* fd of <dir>/parts/<name>/data.bin for reading, or for writing (write != 0); -1 with e
 * set on failure. */
int parts_open(const char *dir, const char *name, int write, bgfm_err *e);
/* Whole reads and writes at an offset; errors name the unit's file. */
int parts_pread(int fd, void *buf, int64_t n, int64_t off, const char *name, bgfm_err *e);
int parts_pwrite(int fd, const void *buf, int64_t n, int64_t off, const char *name,
                 bgfm_err *e);
/* Finish out's unit: meta.tsv (may be NULL: none), then key, each written atomically. */
int parts_commit(const char *out, const char *name, const char *meta, const char *key,
                 bgfm_err *e);
/* The unit's meta.tsv, NUL-terminated (malloc'ed). */
int parts_meta_read(const char *dir, const char *name, char **text, bgfm_err *e);

#endif
