/* nifti_write.c: the NIfTI-1 writer of nifti.h (.nii, or .nii.gz via ISA-L deflate),
 * volume by volume into a temporary file renamed into place on close. Used by
 * `bgfm synth` and tests. Not the reader (nifti.c). */
#include "bgfm/nifti.h"

#include <errno.h>
#include <fcntl.h>
#include <isa-l.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NIFTIIO_CHUNK ((size_t)4 << 20) /* compressed bytes written per write() call */
/* Deflate reads its input through a copy followed by zeros, so that what ISA-L reads past
 * avail_in is always the same. The compressed bytes are still not always the same for
 * the same input on this machine: a 60-line program calling ISA-L alone as this file
 * does (bench/deflate_repeat.sh) writes another stream, one that inflates to the same
 * bytes, in 1 run in 1,000 to 2,000 when the processes are switched often
 * (docs/reliability.md).
 * So files are compared by what they decompress to (tests/lib/tap.sh content_sum). */
#define NIFTIIO_IN ((size_t)1 << 20)
#define NIFTIIO_PAD 64
#define NIFTI1_HDR 348

struct niftiio_writer {
    char *path, *tmp;
    int fd;
    int gz;
    niftiio_write_spec spec;
    int64_t nvox, vol_written;
    struct isal_zstream *z;
    uint8_t *level_buf;
    uint8_t *outbuf;   /* compressed output buffer (NIFTIIO_CHUNK) */
    uint8_t *inbuf;    /* deflate's input, copied: NIFTIIO_IN bytes and NIFTIIO_PAD zeros */
    uint8_t *conv;     /* converted volume (int16/uint8/scaled float) */
    int failed;
};

static int write_all(niftiio_writer *w, const uint8_t *p, size_t n, bgfm_err *e) {
    while (n > 0) {
        ssize_t k = write(w->fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            w->failed = 1;
            return bgfm_fail(e, BGFM_EIO, "%s: write failed: %s; check free disk space and "
                             "permissions", w->tmp, strerror(errno));
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Push bytes through the sink (deflate for .gz); finish=1 ends the gzip stream. */
static int sink(niftiio_writer *w, const uint8_t *p, size_t n, int finish, bgfm_err *e) {
    if (!w->gz) return write_all(w, p, n, e);
    struct isal_zstream *z = w->z;
    while (n > 0 || finish) {
        size_t part = n > NIFTIIO_IN ? NIFTIIO_IN : n;
        if (part) memcpy(w->inbuf, p, part); /* p is NULL when only finishing */
        memset(w->inbuf + part, 0, NIFTIIO_PAD);
        z->next_in = w->inbuf;
        z->avail_in = (uint32_t)part;
        z->end_of_stream = (uint16_t)(finish && part == n);
        do {
            z->next_out = w->outbuf;
            z->avail_out = (uint32_t)NIFTIIO_CHUNK;
            int rc = isal_deflate(z);
            if (rc != COMP_OK) {
                w->failed = 1;
                return bgfm_fail(e, BGFM_EINTERNAL, "%s: isal_deflate failed (%d)", w->tmp, rc);
            }
            size_t made = NIFTIIO_CHUNK - z->avail_out;
            if (made && write_all(w, w->outbuf, made, e)) return e->code;
        } while (z->avail_in > 0 || z->avail_out == 0 ||
                 (z->end_of_stream && z->internal_state.state != ZSTATE_END));
        p += part;
        n -= part;
        if (finish && n == 0) break;
    }
    return 0;
}

static void wr_i16(uint8_t *b, int off, int v) { int16_t x = (int16_t)v; memcpy(b + off, &x, 2); }
static void wr_i32(uint8_t *b, int off, int32_t v) { memcpy(b + off, &v, 4); }
static void wr_f32(uint8_t *b, int off, double v) { float x = (float)v; memcpy(b + off, &x, 4); }

/* Quaternion + qfac + zooms from the 3x3 part if it is a rotation times a zoom
 * (columns orthogonal); returns 0 otherwise (then no qform is written). */
static int affine_to_quatern(const double A[4][4], double quat[3], double zoom[3], double *qfac) {
    double M[3][3];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++) M[r][c] = A[r][c];
    for (int c = 0; c < 3; c++) {
        zoom[c] = sqrt(M[0][c] * M[0][c] + M[1][c] * M[1][c] + M[2][c] * M[2][c]);
        if (!(zoom[c] > 0)) return 0;
        for (int r = 0; r < 3; r++) M[r][c] /= zoom[c];
    }
    for (int a = 0; a < 3; a++)
        for (int b = a + 1; b < 3; b++) {
            double dot = M[0][a] * M[0][b] + M[1][a] * M[1][b] + M[2][a] * M[2][b];
            if (fabs(dot) > 1e-6) return 0;
        }
    double det = M[0][0] * (M[1][1] * M[2][2] - M[1][2] * M[2][1]) -
                 M[0][1] * (M[1][0] * M[2][2] - M[1][2] * M[2][0]) +
                 M[0][2] * (M[1][0] * M[2][1] - M[1][1] * M[2][0]);
    *qfac = 1;
    if (det < 0) {
        *qfac = -1;
        for (int r = 0; r < 3; r++) M[r][2] = -M[r][2];
    }
    /* Rotation matrix -> unit quaternion (a, b, c, d) with a >= 0. */
    double a = M[0][0] + M[1][1] + M[2][2] + 1, b, c, d;
    if (a > 0.5) {
        a = 0.5 * sqrt(a);
        b = 0.25 * (M[2][1] - M[1][2]) / a;
        c = 0.25 * (M[0][2] - M[2][0]) / a;
        d = 0.25 * (M[1][0] - M[0][1]) / a;
    } else {
        double xd = 1 + M[0][0] - (M[1][1] + M[2][2]);
        double yd = 1 + M[1][1] - (M[0][0] + M[2][2]);
        double zd = 1 + M[2][2] - (M[0][0] + M[1][1]);
        if (xd > 1) {
            b = 0.5 * sqrt(xd);
            c = 0.25 * (M[0][1] + M[1][0]) / b;
            d = 0.25 * (M[0][2] + M[2][0]) / b;
            a = 0.25 * (M[2][1] - M[1][2]) / b;
        } else if (yd > 1) {
            c = 0.5 * sqrt(yd);
            b = 0.25 * (M[0][1] + M[1][0]) / c;
            d = 0.25 * (M[1][2] + M[2][1]) / c;
            a = 0.25 * (M[0][2] - M[2][0]) / c;
        } else {
            d = 0.5 * sqrt(zd);
            b = 0.25 * (M[0][2] + M[2][0]) / d;
            c = 0.25 * (M[1][2] + M[2][1]) / d;
            a = 0.25 * (M[1][0] - M[0][1]) / d;
        }
        if (a < 0) {
            b = -b;
            c = -c;
            d = -d;
        }
    }
    quat[0] = b;
    quat[1] = c;
    quat[2] = d;
    return 1;
}

static void build_header(const niftiio_write_spec *s, uint8_t hb[352]) {
    memset(hb, 0, 352);
    wr_i32(hb, 0, NIFTI1_HDR);
    hb[39] = 0;
    int nd = s->dim[3] > 1 ? 4 : 3;
    wr_i16(hb, 40, nd);
    for (int i = 0; i < 4; i++) wr_i16(hb, 42 + 2 * i, (int)(i < nd ? s->dim[i] : 1));
    for (int i = 4; i < 7; i++) wr_i16(hb, 42 + 2 * i, 1);
    int nb = niftiio_dtype_bytes(s->datatype);
    wr_i16(hb, 70, s->datatype);
    wr_i16(hb, 72, 8 * nb);
    double quat[3] = {0, 0, 0}, zoom[3], qfac = 1;
    int has_q = affine_to_quatern(s->affine, quat, zoom, &qfac);
    wr_f32(hb, 76, qfac);
    for (int i = 0; i < 3; i++) wr_f32(hb, 80 + 4 * i, s->pixdim[i]);
    wr_f32(hb, 92, nd == 4 ? s->pixdim[3] : 0.0);
    for (int i = 5; i < 8; i++) wr_f32(hb, 76 + 4 * i, 1.0);
    wr_f32(hb, 108, 352.0);
    int scaled = s->scl_slope != 0 && isfinite(s->scl_slope);
    wr_f32(hb, 112, scaled ? s->scl_slope : 1.0);
    wr_f32(hb, 116, scaled ? s->scl_inter : 0.0);
    hb[123] = 2 | 8; /* mm, seconds */
    snprintf((char *)hb + 148, 80, "bgfm %s", BGFM_VERSION);
    int code = s->xform_code > 0 ? s->xform_code : 2;
    wr_i16(hb, 252, has_q ? code : 0);
    wr_i16(hb, 254, code);
    for (int i = 0; i < 3; i++) wr_f32(hb, 256 + 4 * i, quat[i]);
    for (int i = 0; i < 3; i++) wr_f32(hb, 268 + 4 * i, s->affine[i][3]);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++) wr_f32(hb, 280 + 16 * r + 4 * c, s->affine[r][c]);
    memcpy(hb + 344, "n+1", 4);
}

int niftiio_writer_open(const char *path, const niftiio_write_spec *spec, niftiio_writer **out,
                        bgfm_err *e) {
    *out = NULL;
    int nb = niftiio_dtype_bytes(spec->datatype);
    if (spec->datatype != NIFTIIO_FLOAT32 && spec->datatype != NIFTIIO_INT16 &&
        spec->datatype != NIFTIIO_UINT8)
        return bgfm_fail(e, BGFM_EUSAGE, "%s: the writer supports float32, int16 and uint8, "
                         "not datatype %d", path, spec->datatype);
    for (int i = 0; i < 4; i++)
        if (spec->dim[i] < 1 || spec->dim[i] > 32767)
            return bgfm_fail(e, BGFM_EUSAGE, "%s: dimension %d = %lld is outside 1..32767 "
                             "(NIfTI-1 limit)", path, i + 1, (long long)spec->dim[i]);
    niftiio_writer *w = bgfm_calloc(e, 1, sizeof *w, "NIfTI writer");
    if (!w) return BGFM_ENOMEM;
    w->fd = -1;
    w->spec = *spec;
    w->nvox = spec->dim[0] * spec->dim[1] * spec->dim[2];
    size_t pl = strlen(path);
    w->gz = pl >= 3 && !strcmp(path + pl - 3, ".gz");
    size_t n = strlen(path);
    w->path = bgfm_strdup(e, path);
    w->tmp = bgfm_malloc(e, n + 32, "path");
    if (!w->path || !w->tmp) goto fail;
    snprintf(w->tmp, n + 32, "%s.tmp-%ld", path, (long)getpid());
    if (spec->datatype != NIFTIIO_FLOAT32 ||
        (spec->scl_slope != 0 && isfinite(spec->scl_slope) &&
         !(spec->scl_slope == 1.0 && spec->scl_inter == 0.0))) {
        w->conv = bgfm_malloc(e, (size_t)(w->nvox * nb), "converted volume");
        if (!w->conv) goto fail;
    }
    if (w->gz) {
        w->z = bgfm_calloc(e, 1, sizeof *w->z, "deflate state");
        w->outbuf = bgfm_malloc(e, NIFTIIO_CHUNK, "deflate output buffer");
        w->inbuf = bgfm_malloc(e, NIFTIIO_IN + NIFTIIO_PAD, "deflate input buffer");
        if (!w->z || !w->outbuf || !w->inbuf) goto fail;
        isal_deflate_init(w->z);
        int lvl = spec->gzip_level < 0 ? 0 : spec->gzip_level > 3 ? 3 : spec->gzip_level;
        static const uint32_t lbsz[4] = {ISAL_DEF_LVL0_DEFAULT, ISAL_DEF_LVL1_DEFAULT,
                                         ISAL_DEF_LVL2_DEFAULT, ISAL_DEF_LVL3_DEFAULT};
        w->z->level = (uint32_t)lvl;
        if (lbsz[lvl] > 0) {
            w->level_buf = bgfm_calloc(e, 1, lbsz[lvl], "deflate level buffer");
            if (!w->level_buf) goto fail;
            w->z->level_buf = w->level_buf;
            w->z->level_buf_size = lbsz[lvl];
        }
        w->z->gzip_flag = IGZIP_GZIP;
        w->z->flush = NO_FLUSH;
    }
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        bgfm_fail(e, BGFM_EIO, "%s: cannot create: %s; check that the folder exists and is "
                  "writable", w->tmp, strerror(errno));
        goto fail;
    }
    uint8_t hb[352];
    build_header(spec, hb);
    if (sink(w, hb, sizeof hb, 0, e)) goto fail;
    *out = w;
    return 0;
fail:
    niftiio_writer_abort(&w);
    return e->code ? e->code : BGFM_ENOMEM;
}

int niftiio_writer_volume(niftiio_writer *w, const float *vol, bgfm_err *e) {
    if (w->vol_written >= w->spec.dim[3])
        return bgfm_fail(e, BGFM_EINTERNAL, "%s: more volumes written than the %lld declared",
                         w->path, (long long)w->spec.dim[3]);
    const niftiio_write_spec *s = &w->spec;
    int scaled = s->scl_slope != 0 && isfinite(s->scl_slope);
    double slope = scaled ? s->scl_slope : 1.0, inter = scaled ? s->scl_inter : 0.0;
    double inv = 1.0 / slope;
    int64_t n = w->nvox;
    const uint8_t *bytes = (const uint8_t *)vol;
    size_t nbytes = (size_t)n * (size_t)niftiio_dtype_bytes(s->datatype);
    if (s->datatype == NIFTIIO_FLOAT32) {
        if (w->conv) {
            float *o = (float *)(void *)w->conv;
            for (int64_t i = 0; i < n; i++) o[i] = (float)(((double)vol[i] - inter) * inv);
            bytes = w->conv;
        }
    } else {
        double lo = s->datatype == NIFTIIO_INT16 ? -32768.0 : 0.0;
        double hi = s->datatype == NIFTIIO_INT16 ? 32767.0 : 255.0;
        int bad = 0;
        int64_t bad_i = 0;
        if (s->datatype == NIFTIIO_INT16) {
            int16_t *o = (int16_t *)(void *)w->conv;
            for (int64_t i = 0; i < n; i++) {
                double v = nearbyint(((double)vol[i] - inter) * inv);
                if (!(v >= lo && v <= hi)) { bad = 1; bad_i = i; v = 0; }
                o[i] = (int16_t)v;
            }
        } else {
            uint8_t *o = w->conv;
            for (int64_t i = 0; i < n; i++) {
                double v = nearbyint(((double)vol[i] - inter) * inv);
                if (!(v >= lo && v <= hi)) { bad = 1; bad_i = i; v = 0; }
                o[i] = (uint8_t)v;
            }
        }
        if (bad) {
            w->failed = 1;
            return bgfm_fail(e, BGFM_EDATA, "%s: value %g (voxel %lld of volume %lld) does not "
                             "fit the %s datatype with scl_slope %g; use float32 or a larger "
                             "slope", w->path, (double)vol[bad_i], (long long)bad_i,
                             (long long)w->vol_written + 1,
                             s->datatype == NIFTIIO_INT16 ? "int16" : "uint8", slope);
        }
        bytes = w->conv;
    }
    int rc = sink(w, bytes, nbytes, 0, e);
    if (rc) return rc;
    w->vol_written++;
    return 0;
}

static void writer_free(niftiio_writer **wp) {
    niftiio_writer *w = *wp;
    free(w->z);
    free(w->level_buf);
    free(w->outbuf);
    free(w->inbuf);
    free(w->conv);
    free(w->path);
    free(w->tmp);
    free(w);
    *wp = NULL;
}

int niftiio_writer_close(niftiio_writer **wp, bgfm_err *e) {
    if (!wp || !*wp) return 0;
    niftiio_writer *w = *wp;
    int rc = 0;
    if (w->failed) {
        rc = bgfm_fail(e, BGFM_EIO, "%s: an earlier write failed", w->path);
    } else if (w->vol_written != w->spec.dim[3]) {
        rc = bgfm_fail(e, BGFM_EINTERNAL, "%s: closed after %lld of %lld volumes", w->path,
                       (long long)w->vol_written, (long long)w->spec.dim[3]);
    } else if (w->gz) {
        rc = sink(w, NULL, 0, 1, e);
    }
    if (!rc && close(w->fd) != 0)
        rc = bgfm_fail(e, BGFM_EIO, "%s: close failed: %s; check free disk space", w->tmp,
                       strerror(errno));
    if (!rc) w->fd = -1;
    if (!rc && rename(w->tmp, w->path) != 0)
        rc = bgfm_fail(e, BGFM_EIO, "%s: cannot rename %s into place: %s", w->path, w->tmp,
                       strerror(errno));
    if (rc) {
        niftiio_writer_abort(wp);
        return rc;
    }
    writer_free(wp);
    return 0;
}

void niftiio_writer_abort(niftiio_writer **wp) {
    if (!wp || !*wp) return;
    niftiio_writer *w = *wp;
    if (w->fd >= 0) close(w->fd);
    if (w->tmp) unlink(w->tmp);
    writer_free(wp);
}
