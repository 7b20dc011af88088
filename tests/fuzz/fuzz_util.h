/* fuzz_util.h: helpers shared by the libFuzzer targets in tests/fuzz: a per-process
 * scratch folder on tmpfs, file writing and a byte reader that turns the fuzz input into
 * choices. Not a fuzz target itself and not part of libbgfm. */
#ifndef BGFM_FUZZ_UTIL_H
#define BGFM_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Scratch folder of this process (created once, removed at exit). /dev/shm when it
 * exists (no disk traffic), else /tmp. */
static char fz_dir_buf[256];

static inline void fz_rmdir(void) {
    char cmd[300];
    if (!fz_dir_buf[0]) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fz_dir_buf);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", fz_dir_buf);
}

static inline const char *fz_dir(void) {
    if (!fz_dir_buf[0]) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(fz_dir_buf, sizeof fz_dir_buf, "%s/bgfm-fuzz.XXXXXX", base);
        if (!mkdtemp(fz_dir_buf)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(fz_rmdir);
    }
    return fz_dir_buf;
}

/* path = scratch/name */
static inline void fz_path(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", fz_dir(), name);
}

/* mkdir that accepts an existing folder; returns 0 or -1. */
static inline int fz_mkdir(const char *path) {
    struct stat st;
    if (mkdir(path, 0700) == 0) return 0;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

static inline void fz_write(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

static inline void fz_copy(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    if (!a || !b) {
        perror("fuzz: copy");
        abort();
    }
    char buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, a)) > 0)
        if (fwrite(buf, 1, k, b) != k) abort();
    fclose(a);
    if (fclose(b) != 0) abort();
}

/* Reads choices from the fuzz input; past the end every read gives zeros. */
typedef struct fz_in {
    const uint8_t *p;
    size_t n;
} fz_in;

static inline uint8_t fz_u8(fz_in *in) {
    if (!in->n) return 0;
    in->n--;
    return *in->p++;
}

/* Copy up to n bytes into dst (zero-padded when the input runs out). */
static inline void fz_bytes(fz_in *in, void *dst, size_t n) {
    size_t k = n < in->n ? n : in->n;
    if (k) memcpy(dst, in->p, k);
    if (k < n) memset((uint8_t *)dst + k, 0, n - k);
    in->p += k;
    in->n -= k;
}

#endif
