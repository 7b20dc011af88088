/* h5io.h: thin checked helpers over (parallel) HDF5: files through MPI-IO, datasets
 * written by rows collectively, attributes, whole/partial reads.
 * Not a format: the layouts of timeseries.h5, graph shards and checkpoints live with
 * their stages and in docs/formats.md.
 *
 * Every function returns 0 or a bgfm status with `e` set (the HDF5 error stack
 * summarised); hid_t results are negative on failure. "Collective" means every rank
 * of the file's communicator must call it, with the same arguments unless noted. */
#ifndef BGFM_H5IO_H
#define BGFM_H5IO_H

#include <hdf5.h>
#include <stdint.h>

#include "bgfm/ctx.h"

/* Record an HDF5 failure: "WHAT 'PATH' failed: <HDF5's error stack summarised>". */
int h5io_fail(bgfm_err *e, int code, const char *what, const char *path);

/* Collective over comm: create (truncate) a file, through MPI-IO on any communicator but
 * MPI_COMM_SELF (one process, the POSIX driver). Object time stamps are off everywhere:
 * equal contents give byte-identical files. */
hid_t h5io_create(MPI_Comm comm, const char *path, bgfm_err *e);
/* Collective over comm: open for reading (MPI_COMM_SELF for a one-rank reader, which
 * uses the plain POSIX driver). */
hid_t h5io_open(MPI_Comm comm, const char *path, bgfm_err *e);
/* Collective over comm: open read-write. */
hid_t h5io_open_rw(MPI_Comm comm, const char *path, bgfm_err *e);
/* Close; accepts a negative id (no-op) and sets *f = -1. */
int h5io_close(hid_t *f, const char *path, bgfm_err *e);

/* Collective: create the group `path` (and missing parents), without time stamps. */
int h5io_group_create(hid_t f, const char *path, bgfm_err *e);
/* Collective: create the dataset `path` (intermediate groups created) of `type` and
 * shape dims[0..rank-1]. chunk NULL: contiguous (in MPI-IO files allocated at creation,
 * so collective writes of empty selections work). Chunked datasets have an unlimited
 * first dimension (they may hold 0 rows); deflate > 0: shuffle + deflate at that
 * level. */
hid_t h5io_dset_create(hid_t f, const char *path, hid_t type, int rank, const hsize_t *dims,
                       const hsize_t *chunk, int deflate, bgfm_err *e);
/* Close a dataset (negative id: no-op) and set *d = -1. `rc` is the caller's status
 * so far; returns it, else the close's. In a collective file every rank of the file's
 * communicator calls it and gets the same status (a close failing on one rank does not
 * leave the others in the next collective call). */
int h5io_dset_close(hid_t *d, int rc, const char *path, bgfm_err *e);
/* Collective: write rows [row0, row0+nrows) of a dataset (all other dims full) from
 * buf (memtype). Ranks with nrows == 0 still call it. */
int h5io_write_rows(hid_t dset, hid_t memtype, int64_t row0, int64_t nrows, const void *buf,
                    bgfm_err *e);
/* Collective: create the contiguous dataset `path` (filetype, shape dims[0..rank-1]),
 * write this rank's rows [row0, row0+nrows) from buf (memtype; nrows may be 0) and close
 * it (h5io_dset_close). */
int h5io_write_block(hid_t f, const char *path, hid_t filetype, hid_t memtype, int rank,
                     const hsize_t *dims, int64_t row0, int64_t nrows, const void *buf,
                     bgfm_err *e);
/* Collective: create `path` and write all of buf from rank `writer` (the others pass
 * any buf, even NULL). For small metadata arrays. */
int h5io_write_small(hid_t f, const char *path, hid_t filetype, hid_t memtype, int rank,
                     const hsize_t *dims, const void *buf, int writer, bgfm_err *e);
/* Collective: a 1-D dataset of fixed-length strings (NUL-padded, length = longest+1;
 * a NULL entry is written as ""). */
int h5io_write_strings(hid_t f, const char *path, const char *const *s, int64_t n, int writer,
                       bgfm_err *e);

/* Independent reads (any rank, any time). */
int h5io_dims(hid_t f, const char *path, int *rank, hsize_t dims[8], bgfm_err *e);
int h5io_exists(hid_t f, const char *path); /* 1 yes, 0 no (intermediate groups checked) */
/* The whole dataset into buf, which holds n values of memtype: a dataset that does not
 * hold exactly n values (all dimensions multiplied) is refused, naming the file, before
 * anything is read (n == 0: nothing is read, buf may be NULL). */
int h5io_read_all(hid_t f, const char *path, hid_t memtype, int64_t n, void *buf, bgfm_err *e);
int h5io_read_rows(hid_t f, const char *path, hid_t memtype, int64_t row0, int64_t nrows,
                   void *buf, bgfm_err *e);
/* Strings: returns a malloc'ed array of n malloc'ed strings (free with strlist_free, strlist.h). */
int h5io_read_strings(hid_t f, const char *path, char ***out, int64_t *n, bgfm_err *e);

/* Attributes on an object (file, group or dataset id) or on `path` below it
 * (path NULL or "." for obj itself). Setting is collective in parallel files. */
int h5io_attr_set_str(hid_t obj, const char *path, const char *name, const char *val, bgfm_err *e);
int h5io_attr_set_i64(hid_t obj, const char *path, const char *name, const int64_t *v, int n,
                      bgfm_err *e);
int h5io_attr_set_f64(hid_t obj, const char *path, const char *name, const double *v, int n,
                      bgfm_err *e);
/* Getting: *val malloc'ed. n is the element count in/out (in: capacity for arrays). */
int h5io_attr_get_str(hid_t obj, const char *path, const char *name, char **val, bgfm_err *e);
int h5io_attr_get_i64(hid_t obj, const char *path, const char *name, int64_t *v, int *n,
                      bgfm_err *e);
int h5io_attr_get_f64(hid_t obj, const char *path, const char *name, double *v, int *n,
                      bgfm_err *e);
int h5io_attr_exists(hid_t obj, const char *path, const char *name);
/* The file's root attribute `format` (what wrote it: bgfm-timeseries, bgfm-checkpoint, ...):
 * 0 with *fmt malloc'ed, or NULL when the file has none; BGFM_ENOMEM when memory ran out;
 * BGFM_EDATA (e set) when the attribute is there but not one readable string. */
int h5io_root_format(hid_t f, char **fmt, bgfm_err *e);

#endif
