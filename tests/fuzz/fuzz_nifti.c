/* fuzz_nifti.c: libFuzzer target for the streaming NIfTI reader (pipeline/io/nifti.c):
 * header parser, extension skipping, gzip (ISA-L) inflate, volume conversion, for
 * .nii, .nii.gz (compressed here, optionally as two members), raw bytes named .nii.gz
 * and .hdr/.img pairs. Not a test of the writer (tests/unit/test_nifti.c).
 *
 * Input: byte 0 chooses the container, the rest is the file:
 *   mode & 3 == 0  the bytes as FILE.nii
 *   mode & 3 == 1  the bytes gzip-compressed (zlib) as FILE.nii.gz; mode & 4: two members
 *   mode & 3 == 2  a pair: the first 348 (or 540, by sizeof_hdr) bytes as FILE.hdr, the
 *                  rest as FILE.img (mode & 4: FILE.img gzip-compressed as FILE.img.gz)
 *   mode & 3 == 3  the bytes as FILE.nii.gz (corrupt gzip streams reach ISA-L as they are)
 * Volumes are read when one volume has at most 2^16 voxels (the harness allocates the
 * output buffer; the reader's own allocations are bounded by the same size). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "bgfm/nifti.h"
#include "fuzz_util.h"

#define FZ_MAX_VOX (1 << 16)
#define FZ_MAX_VOLS 6

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* gzip-compress src (level 1) into *out (malloc'ed); returns its length. */
static size_t gz_member(const uint8_t *src, size_t n, uint8_t **out) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
    size_t cap = deflateBound(&z, (uLong)n) + 32;
    *out = malloc(cap);
    if (!*out) abort();
    z.next_in = (Bytef *)(uintptr_t)src;
    z.avail_in = (uInt)n;
    z.next_out = *out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) abort();
    size_t len = cap - z.avail_out;
    deflateEnd(&z);
    return len;
}

static void write_gz(const char *path, const uint8_t *src, size_t n, int two_members) {
    size_t cut = two_members ? n / 2 : n;
    uint8_t *a = NULL, *b = NULL;
    size_t la = gz_member(src, cut, &a), lb = 0;
    if (two_members) lb = gz_member(src + cut, n - cut, &b);
    uint8_t *all = malloc(la + lb + 1);
    if (!all) abort();
    memcpy(all, a, la);
    if (lb) memcpy(all + la, b, lb);
    fz_write(path, all, la + lb);
    free(all);
    free(a);
    free(b);
}

/* Read what the header promises (bounded), checking the reader's invariants. */
static void exercise(const char *path) {
    niftiio_reader *r = NULL;
    bgfm_err e;
    bgfm_err_clear(&e);
    int rc = niftiio_open(path, &r, &e);
    if (rc) {
        if (r != NULL || e.code == 0 || !e.msg[0]) abort(); /* an error must say what */
        return;
    }
    const niftiio_header *h = niftiio_hdr(r);
    if (h->nvox != h->dim[1] * h->dim[2] * h->dim[3] || h->nvox < 1 || h->nvol < 1) abort();
    if (h->nvox <= FZ_MAX_VOX) {
        float *f = malloc((size_t)h->nvox * sizeof *f);
        double *d = malloc((size_t)h->nvox * sizeof *d);
        if (!f || !d) abort();
        for (int64_t v = 0; v < h->nvol && v < FZ_MAX_VOLS; v++) {
            bgfm_err_clear(&e);
            rc = (v & 1) ? niftiio_read_volume_f64(r, d, &e) : niftiio_read_volume(r, f, &e);
            if (rc) {
                if (!e.msg[0]) abort();
                break;
            }
        }
        free(f);
        free(d);
    }
    (void)niftiio_bytes_read(r);
    niftiio_close(&r);
    if (r) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0];
    const uint8_t *b = data + 1;
    size_t n = size - 1;
    char p1[300], p2[300];
    switch (mode & 3) {
    case 0:
        fz_path(p1, sizeof p1, "f.nii");
        fz_write(p1, b, n);
        exercise(p1);
        break;
    case 1:
        fz_path(p1, sizeof p1, "f.nii.gz");
        write_gz(p1, b, n, mode & 4);
        exercise(p1);
        break;
    case 2: {
        size_t hs = 348;
        if (n >= 4) {
            uint32_t sz;
            memcpy(&sz, b, 4);
            if (sz == 540 || __builtin_bswap32(sz) == 540) hs = 540;
        }
        if (hs > n) hs = n;
        fz_path(p1, sizeof p1, "p.hdr");
        fz_write(p1, b, hs);
        char img[300], imggz[300];
        fz_path(img, sizeof img, "p.img");
        fz_path(imggz, sizeof imggz, "p.img.gz");
        remove(img);
        remove(imggz);
        if (mode & 4) write_gz(imggz, b + hs, n - hs, 0);
        else fz_write(img, b + hs, n - hs);
        exercise(p1);
        break;
    }
    default:
        fz_path(p2, sizeof p2, "r.nii.gz");
        fz_write(p2, b, n);
        exercise(p2);
        break;
    }
    /* the 3D convenience reader on the same bytes (plain file) */
    if ((mode & 3) == 0 && (mode & 8)) {
        niftiio_header h;
        double *d = NULL;
        bgfm_err e;
        bgfm_err_clear(&e);
        if (niftiio_read_3d(p1, &h, &d, &e) == 0) {
            if (!d || h.nvol != 1) abort();
        } else if (d) {
            abort();
        }
        free(d);
    }
    return 0;
}
