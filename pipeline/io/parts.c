/* parts.c: a stage's per-dataset work units under <stage folder>/parts/<name>/ (parts.h):
 * paths, key check, hard links from the previous output, raw positioned reads and writes,
 * the key written last. Not what a unit holds (the stages). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bgfm/fsutil.h"
#include "bgfm/parts.h"

static const char *const unit_files[] = {"data.bin", "meta.tsv", "key"};

char *parts_path(const char *dir, const char *name, const char *file, bgfm_err *e) {
    size_t n = strlen(dir) + strlen(name) + (file ? strlen(file) : 0) + 16;
    char *p = bgfm_malloc(e, n, "a part's path");
    if (p) snprintf(p, n, "%s/parts/%s%s%s", dir, name, file ? "/" : "", file ? file : "");
    return p;
}

int parts_key_read(const char *dir, const char *name, char key[65]) {
    bgfm_err ignore = {0};
    char *path = parts_path(dir, name, "key", &ignore), *txt = NULL;
    size_t len = 0;
    int ok = path && !fs_read_all(path, &txt, &len, &ignore) && len >= 64;
    for (int i = 0; ok && i < 64; i++)
        ok = (txt[i] >= '0' && txt[i] <= '9') || (txt[i] >= 'a' && txt[i] <= 'f');
    if (ok) {
        memcpy(key, txt, 64);
        key[64] = '\0';
    }
    free(txt);
    free(path);
    return ok;
}

int parts_match(const char *prev, const char *name, const char *key, int64_t bytes) {
    char have[65];
    if (!prev || !parts_key_read(prev, name, have) || strcmp(have, key) != 0) return 0;
    bgfm_err ignore = {0};
    char *data = parts_path(prev, name, "data.bin", &ignore);
    struct stat st;
    int ok = data && stat(data, &st) == 0 && S_ISREG(st.st_mode) &&
             (bytes < 0 || (int64_t)st.st_size == bytes);
    free(data);
    return ok;
}

int parts_link(const char *prev, const char *out, const char *name, bgfm_err *e) {
    char *dir = parts_path(out, name, NULL, e);
    int rc = dir ? fs_mkdirs(dir, e) : BGFM_ENOMEM;
    for (int i = 0; !rc && i < 3; i++) {
        char *from = parts_path(prev, name, unit_files[i], e);
        char *to = parts_path(out, name, unit_files[i], e);
        if (!from || !to) rc = BGFM_ENOMEM;
        else if (fs_exists(from) && link(from, to) != 0)
            rc = bgfm_fail(e, BGFM_EIO, "cannot link '%s' to '%s': %s", from, to,
                           strerror(errno));
        free(from);
        free(to);
    }
    if (rc && dir) {
        for (int i = 0; i < 3; i++) {
            bgfm_err ignore = {0};
            char *to = parts_path(out, name, unit_files[i], &ignore);
            if (to) unlink(to);
            free(to);
        }
    }
    free(dir);
    return rc;
}

int parts_create(const char *out, const char *name, int64_t bytes, bgfm_err *e) {
    char *dir = parts_path(out, name, NULL, e);
    char *data = dir ? parts_path(out, name, "data.bin", e) : NULL;
    int rc = data ? fs_mkdirs(dir, e) : BGFM_ENOMEM;
    if (!rc) {
        int fd = open(data, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        if (fd < 0 || ftruncate(fd, (off_t)bytes) != 0)
            rc = bgfm_fail(e, BGFM_EIO, "cannot create '%s': %s", data, strerror(errno));
        if (fd >= 0 && close(fd) != 0 && !rc)
            rc = bgfm_fail(e, BGFM_EIO, "cannot create '%s': %s", data, strerror(errno));
    }
    free(data);
    free(dir);
    return rc;
}

int parts_open(const char *dir, const char *name, int write, bgfm_err *e) {
    char *data = parts_path(dir, name, "data.bin", e);
    if (!data) return -1;
    int fd = open(data, write ? O_WRONLY : O_RDONLY);
    if (fd < 0) bgfm_fail(e, BGFM_EIO, "cannot open '%s': %s", data, strerror(errno));
    free(data);
    return fd;
}

int parts_pread(int fd, void *buf, int64_t n, int64_t off, const char *name, bgfm_err *e) {
    char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, (size_t)n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return bgfm_fail(e, BGFM_EIO, "cannot read the part of '%s' (parts/%s/data.bin): %s",
                             name, name, r < 0 ? strerror(errno) : "file too short");
        p += r;
        n -= r;
        off += r;
    }
    return 0;
}

int parts_pwrite(int fd, const void *buf, int64_t n, int64_t off, const char *name,
                 bgfm_err *e) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = pwrite(fd, p, (size_t)n, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            return bgfm_fail(e, BGFM_EIO, "cannot write the part of '%s' (parts/%s/data.bin): "
                             "%s (disk full?)", name, name, w < 0 ? strerror(errno) : "no progress");
        p += w;
        n -= w;
        off += w;
    }
    return 0;
}

int parts_commit(const char *out, const char *name, const char *meta, const char *key,
                 bgfm_err *e) {
    int rc = 0;
    if (meta) {
        char *mp = parts_path(out, name, "meta.tsv", e);
        rc = mp ? fs_write_atomic(mp, meta, strlen(meta), e) : BGFM_ENOMEM;
        free(mp);
    }
    char *kp = rc ? NULL : parts_path(out, name, "key", e);
    if (!rc) rc = kp ? fs_write_atomic(kp, key, 64, e) : BGFM_ENOMEM;
    free(kp);
    return rc;
}

int parts_meta_read(const char *dir, const char *name, char **text, bgfm_err *e) {
    char *mp = parts_path(dir, name, "meta.tsv", e);
    size_t len = 0;
    int rc = mp ? fs_read_all(mp, text, &len, e) : BGFM_ENOMEM;
    free(mp);
    return rc;
}
