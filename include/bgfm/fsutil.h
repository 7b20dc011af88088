/* fsutil.h: file-system helpers for complete-or-absent outputs: mkdir -p, rm -r
 * confined to a folder, atomic small-file writes, recursive listings, peak RSS.
 * Not HDF5 (h5io.h). Non-collective. */
#ifndef BGFM_FSUTIL_H
#define BGFM_FSUTIL_H

#include <stdint.h>
#include <stdio.h>

#include "bgfm/ctx.h"

int fs_mkdirs(const char *path, bgfm_err *e);
/* Remove a file or a folder tree; only paths strictly below `root` (a safety net
 * against removing anything outside the workdir). A missing path is not an error. */
int fs_remove_tree(const char *root, const char *path, bgfm_err *e);
int fs_exists(const char *path);
int fs_is_dir(const char *path);
/* Write `len` bytes to path via path.tmp-<pid> + fsync + rename. */
int fs_write_atomic(const char *path, const void *data, size_t len, bgfm_err *e);
/* Open DIR/NAME for writing (the full path into path[n]); NULL with "WHO: cannot write
 * PATH: reason" (BGFM_EIO) in e when it cannot be opened. */
FILE *fs_create_in(const char *dir, const char *name, const char *who, char *path, size_t n,
                   bgfm_err *e);
/* Read a whole file (NUL-terminated, *len excludes the NUL). */
int fs_read_all(const char *path, char **data, size_t *len, bgfm_err *e);
/* Regular files below dir (recursive), as paths relative to dir, sorted by bytes.
 * Names starting with '.' are skipped. Free with strlist_free (strlist.h). */
int fs_list_files(const char *dir, char ***out, int *n, bgfm_err *e);
/* malloc'ed "a/b" joined with one '/'. */
char *fs_join(const char *a, const char *b, bgfm_err *e);
/* Absolute form of path (relative to the cwd), without requiring it to exist. */
char *fs_absolute(const char *path, bgfm_err *e);
/* Peak resident set size of this process, MiB. */
double fs_peak_rss_mib(void);
/* Fail with BGFM_EIO (naming `what` and the folder) when the file system holding dir
 * has fewer than `bytes` bytes free. A check before collective writes: a disk that is
 * already full is reported before any rank enters HDF5's collective I/O. */
int fs_check_space(const char *dir, int64_t bytes, const char *what, bgfm_err *e);
/* Append one line (a '\n' is added) to path, creating it. */
int fs_append_line(const char *path, const char *line, bgfm_err *e);

#endif
