/* nifti.h: streaming NIfTI-1/NIfTI-2 reader (.nii and .nii.gz, gzip inflated with
 * Intel ISA-L as a stream, one volume at a time) and a writer for synthetic data.
 * Not a resampler (parcellate/resample.h) and not a general NIfTI library: no
 * extensions are interpreted, only skipped. Non-collective: one rank, one file. */
#ifndef BGFM_NIFTI_H
#define BGFM_NIFTI_H

#include <stdint.h>

#include "bgfm/ctx.h"

/* NIfTI datatype codes we read (others are rejected with a clear message). */
enum {
    NIFTIIO_UINT8 = 2,
    NIFTIIO_INT16 = 4,
    NIFTIIO_INT32 = 8,
    NIFTIIO_FLOAT32 = 16,
    NIFTIIO_FLOAT64 = 64,
    NIFTIIO_INT8 = 256,
    NIFTIIO_UINT16 = 512,
    NIFTIIO_UINT32 = 768,
    NIFTIIO_INT64 = 1024,
    NIFTIIO_UINT64 = 1280
};
/* Bytes per voxel of a datatype code above; 0 for any other code. */
int niftiio_dtype_bytes(int datatype);

typedef struct niftiio_header {
    int version;          /* 1 or 2 */
    int swapped;          /* file is opposite-endian to this machine */
    int ndim;             /* dim[0] */
    int64_t dim[8];       /* dim[1..7]; dims beyond ndim are 1 */
    double pixdim[8];
    int datatype, bitpix;
    double scl_slope, scl_inter; /* as in the file; slope 0 or non-finite means identity */
    int64_t vox_offset;
    int sform_code, qform_code;
    int xyzt_units;
    double affine[4][4];  /* voxel (i,j,k,1) -> world mm: sform if sform_code > 0, else
                             qform if qform_code > 0, else the pixdim fallback; exactly as
                             nibabel's img.affine */
    double tr_seconds;    /* pixdim[4] converted with xyzt_units (ms, us -> s); 0 if unknown */
    int64_t nvox;         /* dim[1]*dim[2]*dim[3] (checked for overflow) */
    int64_t nvol;         /* product of dim[4..7] (1 for 3D) */
} niftiio_header;

typedef struct niftiio_reader niftiio_reader; /* opaque */

/* Open and parse the header. The file is detected as gzip by its magic bytes, not
 * its name. Errors (missing file, not NIfTI, bad dims, overflow, unknown datatype,
 * negative pixdim of a used axis...) return BGFM_EDATA / BGFM_EIO with e naming the
 * file and what to do. */
int niftiio_open(const char *path, niftiio_reader **out, bgfm_err *e);
const niftiio_header *niftiio_hdr(const niftiio_reader *r);
/* Read the next volume (nvox values), scaled by scl_slope/scl_inter, converted to
 * float32 in NIfTI (Fortran) voxel order: index = i + nx*(j + ny*k). A truncated
 * file fails with BGFM_EDATA naming the volume. */
int niftiio_read_volume(niftiio_reader *r, float *out, bgfm_err *e);
/* Same, as float64 (for atlases and exact label values). */
int niftiio_read_volume_f64(niftiio_reader *r, double *out, bgfm_err *e);
/* Bytes read from disk so far (compressed size for .gz). */
int64_t niftiio_bytes_read(const niftiio_reader *r);
void niftiio_close(niftiio_reader **r); /* accepts NULL, sets *r = NULL */

/* Convenience: read a whole 3D image (atlases). *data is malloc'ed (nvox doubles). */
int niftiio_read_3d(const char *path, niftiio_header *hdr, double **data, bgfm_err *e);

/* Write a NIfTI-1 file (gzip-compressed when the name ends in .gz), sform and qform
 * set from `affine` (qform only if it is a rotation+zoom), datatype FLOAT32 or
 * INT16 (values rounded, scl_slope applied: stored = round((v - inter) / slope)).
 * `data` holds nvox * nvol float32 values, volume after volume. */
typedef struct niftiio_write_spec {
    int64_t dim[4];       /* nx, ny, nz, nt (nt = 1 for 3D) */
    double pixdim[4];     /* dx, dy, dz (mm), TR (s) */
    double affine[4][4];
    int datatype;         /* NIFTIIO_FLOAT32 or NIFTIIO_INT16 or NIFTIIO_UINT8 */
    double scl_slope, scl_inter;
    int gzip_level;       /* 0..9, used for .gz: ISA-L levels 0..3, values above 3 mean 3 */
    int xform_code;       /* sform/qform code; 0 means 2 (aligned anat); 4 = MNI152 */
} niftiio_write_spec;

/* Streaming writer: open, write volumes in order, close (which completes the file
 * under its final name: written to PATH.tmp-<pid> and renamed). */
typedef struct niftiio_writer niftiio_writer;
int niftiio_writer_open(const char *path, const niftiio_write_spec *spec, niftiio_writer **out,
                        bgfm_err *e);
int niftiio_writer_volume(niftiio_writer *w, const float *vol, bgfm_err *e);
int niftiio_writer_close(niftiio_writer **w, bgfm_err *e); /* finishes + renames; NULL ok */
void niftiio_writer_abort(niftiio_writer **w);             /* removes the temp file */

#endif
