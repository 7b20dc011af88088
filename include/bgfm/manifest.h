/* manifest.h: what makes a stage's outputs reproducible: content hashes of its
 * inputs (with a stat-keyed hash cache), its fingerprint, and manifest.json.
 * Not the decision of what runs (run.c) and not the stages themselves. */
#ifndef BGFM_MANIFEST_H
#define BGFM_MANIFEST_H

#include <stdint.h>

#include "bgfm/ctx.h"

typedef struct manifest_file {
    char *path;   /* as listed (absolute for inputs, relative to the stage folder for outputs) */
    char sha[65];
    int64_t bytes;
} manifest_file;

typedef struct manifest_files {
    int n;
    manifest_file *f;
} manifest_files;

void manifest_files_free(manifest_files *l);

/* Collective: hash the given files (same list on every rank), ranks sharing the work,
 * reusing workdir/.bgfm/hashcache.tsv entries whose (size, mtime, inode) match; rank 0
 * rewrites the cache with the new hashes only when `write_cache` (not for validate and
 * --dry-run, which write nothing). The result is the same on every rank; the agreed
 * status is returned. */
int manifest_hash_inputs(bgfm_ctx *ctx, const char *workdir, char **paths, int n,
                         int write_cache, manifest_files *out);

/* Rank-local: hash every file below dir (outputs), sorted, excluding manifest.json. */
int manifest_hash_outputs(const char *workdir, const char *dir, manifest_files *out, bgfm_err *e);

/* Hash of a file list (paths and hashes, in order): the "outputs_sha256". */
void manifest_list_digest(const manifest_files *l, int relative_names, char out[65]);

/* What manifest.json records of one stage run (docs/formats.md, "manifest.json"). */
typedef struct manifest_info {
    const char *stage, *kind, *pipeline_file;
    const char *fingerprint, *resolved, *outputs_sha256; /* resolved: the fingerprint's text */
    const manifest_files *inputs, *outputs;
    int ranks, partial;          /* partial: inputs left out under on_error: skip */
    const char *started;         /* UTC ISO 8601 */
    double wall_s, bytes_read, items;
    const char *items_unit;
    int64_t n_skipped;
    char *const *skipped_item, *const *skipped_reason;
} manifest_info;

/* Rank-local: write dir/manifest.json (atomically: temp file + rename). */
int manifest_write(const char *dir, const manifest_info *m, bgfm_err *e);

/* Read the fingerprint and outputs digest of dir/manifest.json: 1; 0 if absent or not a
 * complete manifest; -1 with e set when it could not be read (memory, a read error). */
int manifest_read(const char *dir, char fingerprint[65], char outputs_sha[65], bgfm_err *e);
/* The rank count recorded in dir/manifest.json ("ranks"); 0 if absent or unreadable. */
int manifest_read_ranks(const char *dir);
/* 1 if dir/manifest.json says "status": "partial" (subjects left out under on_error: skip),
 * else 0; -1 with e set when it exists and could not be read (memory, a read error). */
int manifest_is_partial(const char *dir, bgfm_err *e);

#endif
