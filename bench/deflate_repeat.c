/* deflate_repeat.c: is ISA-L's gzip output the same bytes every time on this machine?
 * Compresses one file exactly as pipeline/io/nifti_write.c does (level 1, gzip framing,
 * a 352-byte first call, then CHUNK bytes per call through a zero-padded 1 MB copy) and
 * prints a 64-bit FNV-1a hash of the compressed stream, and whether zlib inflates it back
 * to the input ("same" or "DIFFERENT"). bench/deflate_repeat.sh runs it many times at
 * once and counts the distinct lines (docs/reliability.md).
 *
 *   deflate_repeat FILE CHUNK */
#include <isa-l.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IN ((size_t)1 << 20)
#define OUT ((size_t)4 << 20)

int main(int argc, char **argv) {
    if (argc != 3) return fprintf(stderr, "usage: deflate_repeat FILE CHUNK\n"), 2;
    FILE *f = fopen(argv[1], "rb");
    if (!f || fseek(f, 0, SEEK_END)) return perror(argv[1]), 2;
    long n = ftell(f);
    const long chunk = atol(argv[2]);
    uint8_t *d = malloc((size_t)n), *out = malloc(OUT), *in = malloc(IN + 64);
    struct isal_zstream *z = calloc(1, sizeof *z);
    uint8_t *lb = calloc(1, ISAL_DEF_LVL1_DEFAULT);
    if (n < 0 || chunk < 1 || !d || !out || !in || !z || !lb) return fprintf(stderr, "bad input\n"), 2;
    rewind(f);
    if (fread(d, 1, (size_t)n, f) != (size_t)n) return perror(argv[1]), 2;
    fclose(f);
    isal_deflate_init(z);
    z->level = 1, z->level_buf = lb, z->level_buf_size = ISAL_DEF_LVL1_DEFAULT;
    z->gzip_flag = IGZIP_GZIP, z->flush = NO_FLUSH;
    uint64_t h = 1469598103934665603ULL;
    size_t zn = 0, zcap = (size_t)n / 2 + OUT;
    uint8_t *zb = malloc(zcap);
    if (!zb) return fprintf(stderr, "out of memory\n"), 2;
    for (long off = 0, call = 0; off < n || call == 0; call++) {
        long len = call == 0 ? 352 : chunk;
        if (len > n - off) len = n - off;
        const int last = off + len >= n;
        for (long done = 0; done < len || last;) {
            size_t part = (size_t)(len - done) > IN ? IN : (size_t)(len - done);
            memcpy(in, d + off + done, part);
            memset(in + part, 0, 64);
            z->next_in = in, z->avail_in = (uint32_t)part;
            z->end_of_stream = (uint16_t)(last && done + (long)part == len);
            do {
                z->next_out = out, z->avail_out = (uint32_t)OUT;
                if (isal_deflate(z) != COMP_OK) return fprintf(stderr, "isal_deflate failed\n"), 1;
                const size_t made = OUT - z->avail_out;
                for (size_t i = 0; i < made; i++) h = (h ^ out[i]) * 1099511628211ULL;
                if (zn + made > zcap && !(zb = realloc(zb, zcap = 2 * (zn + made))))
                    return fprintf(stderr, "out of memory\n"), 2;
                memcpy(zb + zn, out, made);
                zn += made;
            } while (z->avail_in > 0 || z->avail_out == 0 ||
                     (z->end_of_stream && z->internal_state.state != ZSTATE_END));
            done += (long)part;
            if (last && done == len) break;
        }
        off += len;
    }
    /* inflate with zlib (gzip framing) and compare with the input */
    uint8_t *back = malloc((size_t)n + 1);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    int same = back && inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK;
    if (same) {
        zs.next_in = zb, zs.avail_in = (uInt)zn, zs.next_out = back, zs.avail_out = (uInt)n + 1;
        same = inflate(&zs, Z_FINISH) == Z_STREAM_END && zs.total_out == (uLong)n &&
               !memcmp(back, d, (size_t)n);
        inflateEnd(&zs);
    }
    printf("%016llx %s\n", (unsigned long long)h, same ? "same" : "DIFFERENT");
    free(d), free(out), free(in), free(z), free(lb), free(zb), free(back);
    return 0;
}
