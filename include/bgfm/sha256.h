/* sha256.h: SHA-256 (FIPS 180-4) of buffers and files, for manifests and checkpoint
 * checksums. Not a MAC and not a general crypto API. Non-collective. */
#ifndef BGFM_SHA256_H
#define BGFM_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "bgfm/ctx.h"

typedef struct sha256_ctx {
    uint32_t h[8];
    uint64_t len;     /* bytes hashed so far */
    uint8_t buf[64];
    size_t nbuf;
    int accel;        /* 1: x86 SHA extensions (chosen by sha256_init) */
} sha256_ctx;

void sha256_init(sha256_ctx *c);
/* Same, forcing the portable block function (tests compare the two). */
void sha256_init_portable(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t n);
void sha256_final(sha256_ctx *c, uint8_t out[32]);
/* Lower-case hex of a digest: out must hold 65 bytes. */
void sha256_hex(const uint8_t d[32], char out[65]);
/* Hash a whole buffer to hex. */
void sha256_buf_hex(const void *data, size_t n, char out[65]);
/* Hash a file's contents to hex; BGFM_EIO with e naming the file on failure.
 * *bytes gets the file size (may be NULL). */
int sha256_file_hex(const char *path, char out[65], int64_t *bytes, bgfm_err *e);

#endif
