/* nifti.c: streaming NIfTI-1/2 reader (.nii, .nii.gz via ISA-L inflate, volume by
 * volume). Not the writer (nifti_write.c), not a resampler and not a general NIfTI
 * library: extensions are skipped, never interpreted. */
#include "bgfm/nifti.h"

#include <errno.h>
#include <fcntl.h>
#include <isa-l.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NIFTIIO_CHUNK ((size_t)4 << 20) /* compressed bytes read per read() call */
#define NIFTI1_HDR 348
#define NIFTI2_HDR 540

/* ------------------------------------------------------------------ byte order */

static uint16_t rd_u16(const uint8_t *p, int sw) {
    uint16_t v;
    memcpy(&v, p, 2);
    return sw ? __builtin_bswap16(v) : v;
}
static uint32_t rd_u32(const uint8_t *p, int sw) {
    uint32_t v;
    memcpy(&v, p, 4);
    return sw ? __builtin_bswap32(v) : v;
}
static uint64_t rd_u64(const uint8_t *p, int sw) {
    uint64_t v;
    memcpy(&v, p, 8);
    return sw ? __builtin_bswap64(v) : v;
}
static int16_t rd_i16(const uint8_t *p, int sw) { return (int16_t)rd_u16(p, sw); }
static int32_t rd_i32(const uint8_t *p, int sw) { return (int32_t)rd_u32(p, sw); }
static int64_t rd_i64(const uint8_t *p, int sw) { return (int64_t)rd_u64(p, sw); }
static double rd_f32(const uint8_t *p, int sw) {
    uint32_t u = rd_u32(p, sw);
    float f;
    memcpy(&f, &u, 4);
    return (double)f;
}
static double rd_f64(const uint8_t *p, int sw) {
    uint64_t u = rd_u64(p, sw);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static void swap_inplace(uint8_t *buf, int64_t n, int size) {
    if (size == 2) {
        for (int64_t i = 0; i < n; i++) {
            uint16_t v;
            memcpy(&v, buf + 2 * i, 2);
            v = __builtin_bswap16(v);
            memcpy(buf + 2 * i, &v, 2);
        }
    } else if (size == 4) {
        for (int64_t i = 0; i < n; i++) {
            uint32_t v;
            memcpy(&v, buf + 4 * i, 4);
            v = __builtin_bswap32(v);
            memcpy(buf + 4 * i, &v, 4);
        }
    } else if (size == 8) {
        for (int64_t i = 0; i < n; i++) {
            uint64_t v;
            memcpy(&v, buf + 8 * i, 8);
            v = __builtin_bswap64(v);
            memcpy(buf + 8 * i, &v, 8);
        }
    }
}

/* ------------------------------------------------------------------ datatypes */

int niftiio_dtype_bytes(int dt) {
    switch (dt) {
    case NIFTIIO_UINT8: case NIFTIIO_INT8: return 1;
    case NIFTIIO_INT16: case NIFTIIO_UINT16: return 2;
    case NIFTIIO_INT32: case NIFTIIO_UINT32: case NIFTIIO_FLOAT32: return 4;
    case NIFTIIO_INT64: case NIFTIIO_UINT64: case NIFTIIO_FLOAT64: return 8;
    default: return 0;
    }
}

static const char *dtype_name(int dt) {
    switch (dt) {
    case 1: return "binary (1 bit)";
    case 32: return "complex64";
    case 128: return "rgb24";
    case 1536: return "float128";
    case 1792: return "complex128";
    case 2048: return "complex256";
    case 2304: return "rgba32";
    default: return "unknown";
    }
}

/* ------------------------------------------------------------------ the reader */

struct niftiio_reader {
    char *path;      /* the header file, for messages */
    char *datapath;  /* the file the voxels come from (== path unless a .hdr/.img pair) */
    int fd;
    int gz;
    struct inflate_state *inf;
    uint8_t *inbuf;
    int in_eof;       /* read() returned 0 on the current file */
    int member_done;  /* last gzip member finished and nothing (valid) follows */
    int64_t bytes_read;
    int64_t vol_next;
    int64_t vol_bytes;
    uint8_t *raw;     /* one raw volume, for conversions */
    niftiio_header h;
};

/* The file bytes come from, for messages: the data file once the header is parsed,
 * the header file before (a damaged .nii.gz fails while its header is inflated). */
static const char *src_name(const niftiio_reader *r) {
    return r->datapath ? r->datapath : r->path;
}

static int plain_read(niftiio_reader *r, uint8_t *dst, size_t n, size_t *got, bgfm_err *e) {
    *got = 0;
    while (*got < n) {
        size_t want = n - *got;
        if (want > ((size_t)1 << 30)) want = (size_t)1 << 30;
        ssize_t k = read(r->fd, dst + *got, want);
        if (k < 0) {
            if (errno == EINTR) continue;
            return bgfm_fail(e, BGFM_EIO, "%s: read failed: %s; check the file and the disk",
                             src_name(r), strerror(errno));
        }
        if (k == 0) break;
        *got += (size_t)k;
        r->bytes_read += k;
    }
    return 0;
}

/* Move the unread input to the front of inbuf and read more after it. */
static int gz_refill(niftiio_reader *r, bgfm_err *e) {
    struct inflate_state *s = r->inf;
    if (r->in_eof) return 0;
    if (s->avail_in > 0 && s->next_in != r->inbuf) memmove(r->inbuf, s->next_in, s->avail_in);
    s->next_in = r->inbuf;
    size_t have = s->avail_in, got = 0;
    int rc = plain_read(r, r->inbuf + have, NIFTIIO_CHUNK - have, &got, e);
    if (rc) return rc;
    if (got == 0) r->in_eof = 1;
    s->avail_in = (uint32_t)(have + got);
    return 0;
}

static const char *isal_errname(int rc) {
    switch (rc) {
    case ISAL_INVALID_BLOCK: return "invalid deflate block";
    case ISAL_INVALID_SYMBOL: return "invalid deflate symbol";
    case ISAL_INVALID_LOOKBACK: return "invalid lookback distance";
    case ISAL_INVALID_WRAPPER: return "invalid gzip header";
    case ISAL_UNSUPPORTED_METHOD: return "unsupported compression method";
    case ISAL_INCORRECT_CHECKSUM: return "CRC mismatch";
    case ISAL_NEED_DICT: return "stream needs a preset dictionary";
    default: return "inflate error";
    }
}

/* Inflate up to n bytes of the decompressed stream into dst (multi-member aware).
 * *got < n only at the end of the compressed data. `what` names the part being read
 * for messages ("the header", "volume 3 of 20"). */
static int gz_read(niftiio_reader *r, uint8_t *dst, size_t n, size_t *got, const char *what,
                   bgfm_err *e) {
    struct inflate_state *s = r->inf;
    *got = 0;
    while (*got < n) {
        if (r->member_done) return 0;
        if (s->block_state == ISAL_BLOCK_FINISH) {
            /* End of one gzip member: another may follow (concatenated .gz). */
            if (s->avail_in < 2 && !r->in_eof) {
                int rc = gz_refill(r, e);
                if (rc) return rc;
                continue;
            }
            if (s->avail_in >= 2 && s->next_in[0] == 0x1f && s->next_in[1] == 0x8b) {
                uint8_t *ni = s->next_in;
                uint32_t ai = s->avail_in;
                isal_inflate_init(s);
                s->crc_flag = ISAL_GZIP;
                s->next_in = ni;
                s->avail_in = ai;
                continue;
            }
            r->member_done = 1; /* trailing bytes that are not a gzip member are ignored */
            return 0;
        }
        if (s->avail_in == 0 && !r->in_eof) {
            int rc = gz_refill(r, e);
            if (rc) return rc;
            continue;
        }
        size_t want = n - *got;
        if (want > ((size_t)1 << 30)) want = (size_t)1 << 30;
        s->next_out = dst + *got;
        s->avail_out = (uint32_t)want;
        uint32_t in_before = s->avail_in;
        enum isal_block_state st_before = s->block_state;
        int rc = isal_inflate(s);
        size_t made = want - s->avail_out;
        *got += made;
        if (rc < 0)
            return bgfm_fail(e, BGFM_EDATA,
                             "%s: corrupt gzip data while reading %s (%s); the file is "
                             "damaged: re-copy or re-create it (gzip -t FILE checks it)",
                             src_name(r), what, isal_errname(rc));
        int stalled = made == 0 && s->avail_in == in_before && s->block_state == st_before &&
                      s->block_state != ISAL_BLOCK_FINISH;
        if (stalled && r->in_eof)
            return bgfm_fail(e, BGFM_EDATA,
                             "%s: the compressed data ends in the middle of %s (file "
                             "truncated, e.g. an interrupted copy or download); re-copy or "
                             "re-create the file",
                             src_name(r), what);
        if (stalled) { /* needs more input than is buffered: append to it */
            BGFM_ASSERT(s->avail_in < NIFTIIO_CHUNK);
            int rc2 = gz_refill(r, e);
            if (rc2) return rc2;
        }
    }
    return 0;
}

static int stream_read(niftiio_reader *r, void *dst, size_t n, size_t *got, const char *what,
                       bgfm_err *e) {
    if (r->gz) return gz_read(r, dst, n, got, what, e);
    return plain_read(r, dst, n, got, e);
}

/* Open `path` as the byte source of r (gzip detected by magic bytes). */
static int stream_open(niftiio_reader *r, const char *path, bgfm_err *e) {
    if (r->fd >= 0) close(r->fd);
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        int err = errno;
        return bgfm_fail(e, err == ENOENT ? BGFM_EDATA : BGFM_EIO,
                         "%s: cannot open: %s; check the path (inputs.bids / atlases in the "
                         "pipeline file) and its permissions",
                         path, strerror(err));
    }
    struct stat st;
    if (fstat(r->fd, &st) == 0 && S_ISDIR(st.st_mode))
        return bgfm_fail(e, BGFM_EDATA, "%s: is a directory, not a NIfTI file", path);
#ifdef POSIX_FADV_SEQUENTIAL
    (void)posix_fadvise(r->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
    uint8_t magic[2] = {0, 0};
    ssize_t k = pread(r->fd, magic, 2, 0);
    if (k < 0)
        return bgfm_fail(e, BGFM_EIO, "%s: read failed: %s", path, strerror(errno));
    r->gz = k == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    r->in_eof = 0;
    r->member_done = 0;
    if (r->gz) {
        if (!r->inf) {
            r->inf = bgfm_malloc(e, sizeof *r->inf, "inflate state");
            r->inbuf = bgfm_malloc(e, NIFTIIO_CHUNK, "gzip input buffer");
            if (!r->inf || !r->inbuf) return BGFM_ENOMEM;
        }
        isal_inflate_init(r->inf);
        r->inf->crc_flag = ISAL_GZIP; /* parse the gzip header, verify the CRC trailer */
        r->inf->next_in = r->inbuf;
        r->inf->avail_in = 0;
    }
    return 0;
}

/* Skip n bytes of the stream (extensions between header and vox_offset). */
static int stream_skip(niftiio_reader *r, int64_t n, const char *what, bgfm_err *e) {
    if (n <= 0) return 0;
    if (!r->gz) {
        if (lseek(r->fd, (off_t)n, SEEK_CUR) < 0)
            return bgfm_fail(e, BGFM_EIO, "%s: seek failed: %s", src_name(r), strerror(errno));
        return 0;
    }
    uint8_t tmp[16384];
    while (n > 0) {
        size_t want = n < (int64_t)sizeof tmp ? (size_t)n : sizeof tmp, got = 0;
        int rc = stream_read(r, tmp, want, &got, what, e);
        if (rc) return rc;
        if (got < want)
            return bgfm_fail(e, BGFM_EDATA,
                             "%s: the file ends before the voxel data starts (vox_offset "
                             "beyond the end of the file); the file is truncated or its "
                             "header is wrong",
                             src_name(r));
        n -= (int64_t)got;
    }
    return 0;
}

static int has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static void set_scaled_affine_fallback(niftiio_header *h) {
    /* nibabel AnalyzeHeader.get_base_affine: shape_zoom_affine(dim[1:ndim+1],
     * pixdim[1:ndim+1], x_flip=True): diagonal (-dx, dy, dz), origin at the centre. */
    double shape[3] = {1, 1, 1}, zoom[3] = {1, 1, 1};
    int n = h->ndim < 3 ? h->ndim : 3;
    for (int i = 0; i < n; i++) {
        shape[i] = (double)h->dim[i + 1];
        zoom[i] = h->pixdim[i + 1];
    }
    zoom[0] = -zoom[0];
    memset(h->affine, 0, sizeof h->affine);
    for (int i = 0; i < 3; i++) {
        h->affine[i][i] = zoom[i];
        h->affine[i][3] = -((shape[i] - 1.0) / 2.0) * zoom[i];
    }
    h->affine[3][3] = 1.0;
}

/* Parse the raw header bytes (348 or 540) into h. */
static int parse_header(const uint8_t *b, int version, int sw, const char *path, niftiio_header *h,
                        double quat[6], bgfm_err *e) {
    memset(h, 0, sizeof *h);
    h->version = version;
    h->swapped = sw;
    int64_t dim[8];
    if (version == 1) {
        for (int i = 0; i < 8; i++) dim[i] = rd_i16(b + 40 + 2 * i, sw);
        h->datatype = rd_i16(b + 70, sw);
        h->bitpix = rd_i16(b + 72, sw);
        for (int i = 0; i < 8; i++) h->pixdim[i] = rd_f32(b + 76 + 4 * i, sw);
        double vo = rd_f32(b + 108, sw);
        if (!isfinite(vo) || vo < 0 || vo > 9.0e15)
            return bgfm_fail(e, BGFM_EDATA, "%s: invalid vox_offset %g in the header; the file "
                             "is damaged", path, vo);
        h->vox_offset = (int64_t)vo;
        h->scl_slope = rd_f32(b + 112, sw);
        h->scl_inter = rd_f32(b + 116, sw);
        h->xyzt_units = b[123];
        h->qform_code = rd_i16(b + 252, sw);
        h->sform_code = rd_i16(b + 254, sw);
        for (int i = 0; i < 6; i++) quat[i] = rd_f32(b + 256 + 4 * i, sw);
        if (h->sform_code != 0) {
            for (int r = 0; r < 3; r++)
                for (int c = 0; c < 4; c++) h->affine[r][c] = rd_f32(b + 280 + 16 * r + 4 * c, sw);
        }
    } else {
        h->datatype = rd_i16(b + 12, sw);
        h->bitpix = rd_i16(b + 14, sw);
        for (int i = 0; i < 8; i++) dim[i] = rd_i64(b + 16 + 8 * i, sw);
        for (int i = 0; i < 8; i++) h->pixdim[i] = rd_f64(b + 104 + 8 * i, sw);
        h->vox_offset = rd_i64(b + 168, sw);
        if (h->vox_offset < 0)
            return bgfm_fail(e, BGFM_EDATA, "%s: negative vox_offset %lld in the header; the "
                             "file is damaged", path, (long long)h->vox_offset);
        h->scl_slope = rd_f64(b + 176, sw);
        h->scl_inter = rd_f64(b + 184, sw);
        h->qform_code = rd_i32(b + 344, sw);
        h->sform_code = rd_i32(b + 348, sw);
        for (int i = 0; i < 6; i++) quat[i] = rd_f64(b + 352 + 8 * i, sw);
        if (h->sform_code != 0) {
            for (int r = 0; r < 3; r++)
                for (int c = 0; c < 4; c++) h->affine[r][c] = rd_f64(b + 400 + 32 * r + 8 * c, sw);
        }
        h->xyzt_units = rd_i32(b + 500, sw);
    }
    /* dims */
    if (dim[0] < 1 || dim[0] > 7)
        return bgfm_fail(e, BGFM_EDATA, "%s: dim[0] = %lld, expected 1..7 (number of "
                         "dimensions); the header is damaged or not NIfTI", path,
                         (long long)dim[0]);
    h->ndim = (int)dim[0];
    for (int i = 1; i < 8; i++) {
        if (i <= h->ndim && dim[i] <= 0)
            return bgfm_fail(e, BGFM_EDATA, "%s: dim[%d] = %lld, every used dimension must "
                             "be >= 1; the header is damaged", path, i, (long long)dim[i]);
        h->dim[i] = i <= h->ndim ? dim[i] : 1;
    }
    h->dim[0] = h->ndim;
    /* datatype / bitpix */
    int nb = niftiio_dtype_bytes(h->datatype);
    if (nb == 0)
        return bgfm_fail(e, BGFM_EDATA, "%s: unsupported datatype code %d (%s); supported: "
                         "uint8, int8, int16, uint16, int32, uint32, int64, uint64, float32, "
                         "float64. Convert the image, e.g. with nibabel: "
                         "img.set_data_dtype('float32')", path, h->datatype,
                         dtype_name(h->datatype));
    if (h->bitpix != 8 * nb)
        return bgfm_fail(e, BGFM_EDATA, "%s: bitpix = %d is inconsistent with datatype %d "
                         "(%d bits); the header is damaged", path, h->bitpix, h->datatype,
                         8 * nb);
    /* sizes, with overflow checks */
    int64_t nvox = 1, nvol = 1, total;
    for (int i = 1; i <= 3; i++)
        if (__builtin_mul_overflow(nvox, h->dim[i], &nvox)) goto overflow;
    for (int i = 4; i <= 7; i++)
        if (__builtin_mul_overflow(nvol, h->dim[i], &nvol)) goto overflow;
    if (__builtin_mul_overflow(nvox, nvol, &total) || __builtin_mul_overflow(total, nb, &total))
        goto overflow;
    if (__builtin_add_overflow(total, h->vox_offset, &total)) goto overflow;
    h->nvox = nvox;
    h->nvol = nvol;
    /* spatial voxel sizes */
    int nsp = h->ndim < 3 ? h->ndim : 3;
    for (int i = 1; i <= nsp; i++)
        if (!(h->pixdim[i] > 0) || !isfinite(h->pixdim[i]))
            return bgfm_fail(e, BGFM_EDATA, "%s: pixdim[%d] = %g, voxel sizes must be positive "
                             "and finite; fix the header (e.g. nibabel: "
                             "img.header.set_zooms(...))", path, i, h->pixdim[i]);
    /* scaling, as nibabel: slope 0 or non-finite = no scaling */
    if (h->scl_slope != 0 && isfinite(h->scl_slope) && !isfinite(h->scl_inter))
        return bgfm_fail(e, BGFM_EDATA, "%s: valid scl_slope %g but non-finite scl_inter; fix "
                         "the header", path, h->scl_slope);
    /* TR */
    int tunit = h->xyzt_units & 0x38;
    double tscale = tunit == 16 ? 1e-3 : tunit == 24 ? 1e-6 : (tunit == 8 || tunit == 0) ? 1 : 0;
    h->tr_seconds = (h->ndim >= 4 && isfinite(h->pixdim[4]) && h->pixdim[4] > 0)
                        ? h->pixdim[4] * tscale : 0.0;
    return 0;
overflow:
    return bgfm_fail(e, BGFM_EDATA, "%s: the dimensions in the header (%lld x %lld x %lld x "
                     "%lld ...) overflow a 64-bit size; the header is damaged", path,
                     (long long)h->dim[1], (long long)h->dim[2], (long long)h->dim[3],
                     (long long)h->dim[4]);
}

/* qform -> affine, as nibabel Nifti1Header.get_qform (fillpositive + quat2mat). */
static int qform_affine(niftiio_header *h, const double q[6], const char *path, bgfm_err *e) {
    double b = q[0], c = q[1], d = q[2];
    double w2 = 1.0 - (b * b + c * c + d * d), a;
    double thresh = h->version == 1 ? -3.0 * (double)1.1920929e-07f : -3.0 * 2.220446049250313e-16;
    if (w2 < 0) {
        if (w2 < thresh)
            return bgfm_fail(e, BGFM_EDATA, "%s: qform quaternion (%g, %g, %g) is not a unit "
                             "quaternion; fix the header's qform", path, b, c, d);
        a = 0;
    } else {
        a = sqrt(w2);
    }
    double nq = a * a + b * b + c * c + d * d, R[3][3];
    if (nq < 2.220446049250313e-16) {
        memset(R, 0, sizeof R);
        R[0][0] = R[1][1] = R[2][2] = 1;
    } else {
        double s = 2.0 / nq, X = b * s, Y = c * s, Z = d * s;
        double wX = a * X, wY = a * Y, wZ = a * Z, xX = b * X, xY = b * Y, xZ = b * Z;
        double yY = c * Y, yZ = c * Z, zZ = d * Z;
        R[0][0] = 1.0 - (yY + zZ); R[0][1] = xY - wZ; R[0][2] = xZ + wY;
        R[1][0] = xY + wZ; R[1][1] = 1.0 - (xX + zZ); R[1][2] = yZ - wX;
        R[2][0] = xZ - wY; R[2][1] = yZ + wX; R[2][2] = 1.0 - (xX + yY);
    }
    double vox[3] = {h->pixdim[1], h->pixdim[2], h->pixdim[3]};
    double qfac = h->pixdim[0] == -1.0 ? -1.0 : 1.0; /* nibabel fixes other values to 1 */
    vox[2] *= qfac;
    memset(h->affine, 0, sizeof h->affine);
    for (int r = 0; r < 3; r++)
        for (int k = 0; k < 3; k++) h->affine[r][k] = R[r][k] * vox[k];
    h->affine[0][3] = q[3];
    h->affine[1][3] = q[4];
    h->affine[2][3] = q[5];
    h->affine[3][3] = 1;
    return 0;
}

/* Can the file hold the voxel data its header promises? Sizes from a header are checked
 * here, at open, before any caller allocates by them (a volume buffer, a resampled atlas
 * map of the image's grid): a plain file needs every volume after vox_offset; deflate
 * expands at most 1032:1, so a .gz of S bytes holds at most about 1032 S. A damaged
 * header is a data error naming the file, never a giant allocation. */
static int data_possible(const niftiio_reader *r, bgfm_err *e) {
    struct stat st;
    if (fstat(r->fd, &st) != 0 || !S_ISREG(st.st_mode)) return 0; /* a pipe: read and see */
    const niftiio_header *h = &r->h;
    int64_t size = (int64_t)st.st_size, need = 0;
    BGFM_ASSERT(!__builtin_mul_overflow(r->vol_bytes, h->nvol, &need)); /* parse_header */
    if (r->gz) {
        if (need / 1032 <= size + 65536) return 0;
        return bgfm_fail(e, BGFM_EDATA, "%s: the header promises %lld bytes of voxel data "
                         "(%lld x %lld x %lld voxels x %lld volumes), more than this %lld-byte "
                         "compressed file can hold (deflate expands at most 1032:1); the header "
                         "is damaged", r->datapath, (long long)need, (long long)h->dim[1],
                         (long long)h->dim[2], (long long)h->dim[3], (long long)h->nvol,
                         (long long)size);
    }
    int64_t have = size - h->vox_offset;
    if (need <= have) return 0;
    return bgfm_fail(e, BGFM_EDATA, "%s: the file ends in the middle of volume %lld of %lld "
                     "(%lld bytes in the file, the header promises %lld bytes from offset %lld): "
                     "it is truncated or its header is damaged; re-copy or re-create it",
                     r->datapath, (long long)(have / (r->vol_bytes ? r->vol_bytes : 1)) + 1,
                     (long long)h->nvol, (long long)size, (long long)need,
                     (long long)h->vox_offset);
}

static int reader_open(const char *path, niftiio_reader *r, bgfm_err *e) {
    int rc = stream_open(r, path, e);
    if (rc) return rc;
    uint8_t hb[NIFTI2_HDR];
    size_t got = 0;
    rc = stream_read(r, hb, NIFTI1_HDR, &got, "the header", e);
    if (rc) return rc;
    if (got < 4)
        return bgfm_fail(e, BGFM_EDATA, "%s: %s (%zu bytes), not a NIfTI file", path,
                         got == 0 ? "empty" : "too short", got);
    int32_t sz = rd_i32(hb, 0);
    int version, sw;
    if (sz == NIFTI1_HDR || sz == NIFTI2_HDR) sw = 0;
    else if (__builtin_bswap32((uint32_t)sz) == NIFTI1_HDR ||
             __builtin_bswap32((uint32_t)sz) == NIFTI2_HDR) sw = 1;
    else
        return bgfm_fail(e, BGFM_EDATA, "%s: not a NIfTI file (sizeof_hdr = %d, expected 348 "
                         "or 540); give a .nii or .nii.gz image", path, (int)sz);
    version = rd_i32(hb, sw) == NIFTI1_HDR ? 1 : 2;
    size_t hsize = version == 1 ? NIFTI1_HDR : NIFTI2_HDR;
    if (got < NIFTI1_HDR)
        return bgfm_fail(e, BGFM_EDATA, "%s: truncated header (%zu of %zu bytes); the file is "
                         "damaged or incomplete", path, got, hsize);
    if (version == 2) {
        size_t got2 = 0;
        rc = stream_read(r, hb + NIFTI1_HDR, NIFTI2_HDR - NIFTI1_HDR, &got2, "the header", e);
        if (rc) return rc;
        if (got2 < NIFTI2_HDR - NIFTI1_HDR)
            return bgfm_fail(e, BGFM_EDATA, "%s: truncated NIfTI-2 header (%zu of 540 bytes); "
                             "the file is damaged or incomplete", path, NIFTI1_HDR + got2);
    }
    const uint8_t *mg = version == 1 ? hb + 344 : hb + 4;
    int single;
    if (mg[0] == 'n' && mg[1] == '+' && mg[2] == (version == 1 ? '1' : '2') && mg[3] == 0)
        single = 1;
    else if (mg[0] == 'n' && mg[1] == 'i' && mg[2] == (version == 1 ? '1' : '2') && mg[3] == 0)
        single = 0;
    else
        return bgfm_fail(e, BGFM_EDATA, "%s: bad NIfTI-%d magic \"%.3s\" (ANALYZE 7.5 and "
                         "damaged headers are not supported); convert the image to NIfTI, e.g. "
                         "with nibabel", path, version, (const char *)mg);
    double quat[6];
    rc = parse_header(hb, version, sw, path, &r->h, quat, e);
    if (rc) return rc;
    niftiio_header *h = &r->h;
    if (h->sform_code == 0) {
        if (h->qform_code != 0) {
            rc = qform_affine(h, quat, path, e);
            if (rc) return rc;
        } else {
            set_scaled_affine_fallback(h);
        }
    } else {
        h->affine[3][0] = h->affine[3][1] = h->affine[3][2] = 0;
        h->affine[3][3] = 1;
    }
    if (single && h->vox_offset < (int64_t)hsize)
        return bgfm_fail(e, BGFM_EDATA, "%s: vox_offset %lld lies inside the %zu-byte header; "
                         "the header is damaged", path, (long long)h->vox_offset, hsize);
    int64_t vb = 0;
    BGFM_ASSERT(!__builtin_mul_overflow(h->nvox, (int64_t)niftiio_dtype_bytes(h->datatype), &vb));
    r->vol_bytes = vb;
    if (single) {
        r->datapath = bgfm_strdup(e, path);
        if (!r->datapath) return BGFM_ENOMEM;
        rc = stream_skip(r, h->vox_offset - (int64_t)hsize, "the header extensions", e);
        if (rc) return rc;
    } else {
        /* A .hdr/.img pair: the voxels are in the sibling .img (optionally .gz). */
        size_t n = strlen(path);
        char *img = bgfm_malloc(e, n + 8, "path");
        if (!img) return BGFM_ENOMEM;
        memcpy(img, path, n + 1);
        char *dot = NULL;
        if (has_suffix(img, ".hdr.gz")) dot = img + n - 7;
        else if (has_suffix(img, ".hdr")) dot = img + n - 4;
        if (!dot) {
            free(img);
            return bgfm_fail(e, BGFM_EDATA, "%s: a NIfTI pair header (magic ni%d) but the name "
                             "does not end in .hdr; rename it or convert to a single .nii",
                             path, version);
        }
        memcpy(dot, ".img", 5);
        if (access(img, F_OK) != 0) memcpy(dot, ".img.gz", 8);
        r->datapath = img;
        rc = stream_open(r, img, e);
        if (rc) return rc;
        rc = stream_skip(r, h->vox_offset, "the image file", e);
        if (rc) return rc;
    }
    if (!r->gz) {
        struct stat st;
        if (fstat(r->fd, &st) == 0 && S_ISREG(st.st_mode) && (int64_t)st.st_size < h->vox_offset)
            return bgfm_fail(e, BGFM_EDATA, "%s: vox_offset %lld is beyond the end of the file "
                             "(%lld bytes); the file is truncated or its header is wrong",
                             r->datapath, (long long)h->vox_offset, (long long)st.st_size);
    }
    return data_possible(r, e);
}

int niftiio_open(const char *path, niftiio_reader **out, bgfm_err *e) {
    *out = NULL;
    niftiio_reader *r = bgfm_calloc(e, 1, sizeof *r, "NIfTI reader");
    if (!r) return BGFM_ENOMEM;
    r->fd = -1;
    r->path = bgfm_strdup(e, path);
    int rc = r->path ? reader_open(path, r, e) : BGFM_ENOMEM;
    if (rc) {
        niftiio_close(&r);
        return rc;
    }
    *out = r;
    return 0;
}

const niftiio_header *niftiio_hdr(const niftiio_reader *r) { return &r->h; }
int64_t niftiio_bytes_read(const niftiio_reader *r) { return r ? r->bytes_read : 0; }

void niftiio_close(niftiio_reader **rp) {
    if (!rp || !*rp) return;
    niftiio_reader *r = *rp;
    if (r->fd >= 0) close(r->fd);
    free(r->inf);
    free(r->inbuf);
    free(r->raw);
    free(r->path);
    free(r->datapath);
    free(r);
    *rp = NULL;
}

/* After the last volume of a .gz, inflate the rest so the CRC trailer(s) are checked:
 * a corrupted stream is reported even if the damage lies past the voxel data. */
static int gz_finish(niftiio_reader *r, bgfm_err *e) {
    uint8_t tmp[65536];
    for (;;) {
        size_t got = 0;
        int rc = gz_read(r, tmp, sizeof tmp, &got, "the end of the file", e);
        if (rc) return rc;
        if (got < sizeof tmp) return 0;
    }
}

/* Read the raw bytes of the next volume into dst (vol_bytes bytes). */
static int read_raw_volume(niftiio_reader *r, uint8_t *dst, bgfm_err *e) {
    if (r->vol_next >= r->h.nvol)
        return bgfm_fail(e, BGFM_EINTERNAL, "%s: all %lld volumes were already read", r->path,
                         (long long)r->h.nvol);
    char what[96];
    snprintf(what, sizeof what, "volume %lld of %lld", (long long)r->vol_next + 1,
             (long long)r->h.nvol);
    size_t got = 0;
    int rc = stream_read(r, dst, (size_t)r->vol_bytes, &got, what, e);
    if (rc) return rc;
    if ((int64_t)got < r->vol_bytes)
        return bgfm_fail(e, BGFM_EDATA, "%s: the file ends in the middle of %s (%zu of %lld "
                         "bytes; the header promises %lld volumes): it is truncated, re-copy "
                         "or re-create it", r->datapath, what, got, (long long)r->vol_bytes,
                         (long long)r->h.nvol);
    r->vol_next++;
    if (r->vol_next == r->h.nvol && r->gz) return gz_finish(r, e);
    return 0;
}

static int scaling(const niftiio_header *h, double *slope, double *inter) {
    if (h->scl_slope == 0 || !isfinite(h->scl_slope)) return 0;
    *slope = h->scl_slope;
    *inter = h->scl_inter;
    return !(*slope == 1.0 && *inter == 0.0);
}

#define CONVERT_LOOP(T, OT)                                                                  \
    do {                                                                                     \
        const T *p_ = (const T *)(const void *)raw;                                          \
        if (sc)                                                                              \
            for (int64_t i = 0; i < n; i++) out[i] = (OT)((double)p_[i] * slope + inter);    \
        else                                                                                 \
            for (int64_t i = 0; i < n; i++) out[i] = (OT)p_[i];                              \
    } while (0)

#define CONVERT_SWITCH(OT)                                                                   \
    switch (dt) {                                                                            \
    case NIFTIIO_UINT8: CONVERT_LOOP(uint8_t, OT); break;                                    \
    case NIFTIIO_INT8: CONVERT_LOOP(int8_t, OT); break;                                      \
    case NIFTIIO_INT16: CONVERT_LOOP(int16_t, OT); break;                                    \
    case NIFTIIO_UINT16: CONVERT_LOOP(uint16_t, OT); break;                                  \
    case NIFTIIO_INT32: CONVERT_LOOP(int32_t, OT); break;                                    \
    case NIFTIIO_UINT32: CONVERT_LOOP(uint32_t, OT); break;                                  \
    case NIFTIIO_INT64: CONVERT_LOOP(int64_t, OT); break;                                    \
    case NIFTIIO_UINT64: CONVERT_LOOP(uint64_t, OT); break;                                  \
    case NIFTIIO_FLOAT32: CONVERT_LOOP(float, OT); break;                                    \
    case NIFTIIO_FLOAT64: CONVERT_LOOP(double, OT); break;                                   \
    default: BGFM_ASSERT(0);                                                                 \
    }

static void convert_f32(const uint8_t *raw, int dt, int64_t n, int sc, double slope, double inter,
                        float *out) {
    CONVERT_SWITCH(float)
}

static void convert_f64(const uint8_t *raw, int dt, int64_t n, int sc, double slope, double inter,
                        double *out) {
    CONVERT_SWITCH(double)
}

static int ensure_raw(niftiio_reader *r, bgfm_err *e) {
    if (!r->raw) r->raw = bgfm_malloc(e, (size_t)r->vol_bytes, "NIfTI volume buffer");
    return r->raw ? 0 : BGFM_ENOMEM;
}

int niftiio_read_volume(niftiio_reader *r, float *out, bgfm_err *e) {
    const niftiio_header *h = &r->h;
    double slope = 1, inter = 0;
    int sc = scaling(h, &slope, &inter);
    int rc;
    if (h->datatype == NIFTIIO_FLOAT32 && !h->swapped) {
        /* Fast path: inflate straight into the caller's buffer. */
        rc = read_raw_volume(r, (uint8_t *)out, e);
        if (rc) return rc;
        if (sc)
            for (int64_t i = 0; i < h->nvox; i++) out[i] = (float)((double)out[i] * slope + inter);
        return 0;
    }
    if ((rc = ensure_raw(r, e)) != 0) return rc;
    if ((rc = read_raw_volume(r, r->raw, e)) != 0) return rc;
    if (h->swapped) swap_inplace(r->raw, h->nvox, niftiio_dtype_bytes(h->datatype));
    convert_f32(r->raw, h->datatype, h->nvox, sc, slope, inter, out);
    return 0;
}

int niftiio_read_volume_f64(niftiio_reader *r, double *out, bgfm_err *e) {
    const niftiio_header *h = &r->h;
    double slope = 1, inter = 0;
    int sc = scaling(h, &slope, &inter);
    int rc;
    if (h->datatype == NIFTIIO_FLOAT64 && !h->swapped) {
        rc = read_raw_volume(r, (uint8_t *)out, e);
        if (rc) return rc;
        if (sc)
            for (int64_t i = 0; i < h->nvox; i++) out[i] = out[i] * slope + inter;
        return 0;
    }
    if ((rc = ensure_raw(r, e)) != 0) return rc;
    if ((rc = read_raw_volume(r, r->raw, e)) != 0) return rc;
    if (h->swapped) swap_inplace(r->raw, h->nvox, niftiio_dtype_bytes(h->datatype));
    convert_f64(r->raw, h->datatype, h->nvox, sc, slope, inter, out);
    return 0;
}

int niftiio_read_3d(const char *path, niftiio_header *hdr, double **data, bgfm_err *e) {
    *data = NULL;
    niftiio_reader *r = NULL;
    int rc = niftiio_open(path, &r, e);
    if (rc) return rc;
    if (r->h.nvol != 1) {
        rc = bgfm_fail(e, BGFM_EDATA, "%s: expected a 3D image (one volume), found %lld "
                       "volumes; give a 3D label image", path, (long long)r->h.nvol);
        niftiio_close(&r);
        return rc;
    }
    double *d = bgfm_malloc(e, (size_t)r->h.nvox * sizeof *d, "3D image"); /* size checked at open */
    if (!d) {
        niftiio_close(&r);
        return BGFM_ENOMEM;
    }
    rc = niftiio_read_volume_f64(r, d, e);
    if (rc) {
        free(d);
    } else {
        *data = d;
        if (hdr) *hdr = r->h;
    }
    niftiio_close(&r);
    return rc;
}
