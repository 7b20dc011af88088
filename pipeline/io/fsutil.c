/* fsutil.c: mkdir -p, confined rm -r, atomic writes, recursive listings, peak RSS.
 * Not a path policy: callers decide what is inside the workdir. */
#include "bgfm/fsutil.h"
#include "bgfm/strlist.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

int fs_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int fs_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int fs_mkdirs(const char *path, bgfm_err *e) {
    size_t n = strlen(path);
    char *p = bgfm_malloc(e, n + 1, "a path");
    if (!p) return BGFM_ENOMEM;
    memcpy(p, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] == '/' || p[i] == '\0') {
            char c = p[i];
            p[i] = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                int err = errno;
                bgfm_fail(e, BGFM_EIO, "cannot create folder '%s': %s", p, strerror(err));
                free(p);
                return BGFM_EIO;
            }
            p[i] = c;
        }
    }
    free(p);
    if (!fs_is_dir(path))
        return bgfm_fail(e, BGFM_EIO, "'%s' exists but is not a folder", path);
    return 0;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p) != 0 ? -1 : 0;
}

int fs_remove_tree(const char *root, const char *path, bgfm_err *e) {
    size_t rl = strlen(root);
    BGFM_ASSERT(rl > 0 && strncmp(root, path, rl) == 0 && path[rl] == '/' && path[rl + 1]);
    struct stat st;
    if (lstat(path, &st) != 0) return 0;
    if (nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return bgfm_fail(e, BGFM_EIO, "cannot remove '%s': %s", path, strerror(errno));
    return 0;
}

int fs_write_atomic(const char *path, const void *data, size_t len, bgfm_err *e) {
    size_t n = strlen(path) + 32;
    char *tmp = bgfm_malloc(e, n, "a path");
    if (!tmp) return BGFM_ENOMEM;
    snprintf(tmp, n, "%s.tmp-%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) {
        bgfm_fail(e, BGFM_EIO, "cannot write '%s': %s", tmp, strerror(errno));
        free(tmp);
        return BGFM_EIO;
    }
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            bgfm_fail(e, BGFM_EIO, "cannot write '%s': %s (disk full?)", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            free(tmp);
            return BGFM_EIO;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        bgfm_fail(e, BGFM_EIO, "cannot complete '%s': %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return BGFM_EIO;
    }
    free(tmp);
    return 0;
}

int fs_read_all(const char *path, char **data, size_t *len, bgfm_err *e) {
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return bgfm_fail(e, BGFM_EIO, "cannot open '%s': %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = bgfm_malloc(e, cap, "file contents");
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
        if (n + 1 == cap) {
            char *nb = bgfm_realloc(e, buf, cap * 2, "more file contents");
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) return BGFM_ENOMEM;
    if (bad) {
        free(buf);
        return bgfm_fail(e, BGFM_EIO, "read error on '%s'", path);
    }
    buf[n] = '\0';
    *data = buf;
    if (len) *len = n;
    return 0;
}

typedef struct flist {
    char **v;
    int n, cap;
} flist;

static int flist_push(flist *l, char *s, bgfm_err *e) {
    if (l->n == l->cap) {
        int nc = l->cap ? 2 * l->cap : 16;
        char **nv = bgfm_realloc(e, l->v, (size_t)nc * sizeof *nv, "file list");
        if (!nv) {
            free(s);
            return BGFM_ENOMEM;
        }
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = s;
    return 0;
}

static int list_rec(const char *base, const char *rel, flist *l, bgfm_err *e) {
    char *dir = rel[0] ? fs_join(base, rel, e) : bgfm_strdup(e, base);
    if (!dir) return BGFM_ENOMEM;
    DIR *d = opendir(dir);
    if (!d) {
        bgfm_fail(e, BGFM_EIO, "cannot list folder '%s': %s", dir, strerror(errno));
        free(dir);
        return BGFM_EIO;
    }
    int rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char *r = rel[0] ? fs_join(rel, de->d_name, e) : bgfm_strdup(e, de->d_name);
        char *full = r ? fs_join(base, r, e) : NULL;
        if (!r || !full) {
            free(r);
            free(full);
            rc = BGFM_ENOMEM;
            break;
        }
        struct stat st;
        if (stat(full, &st) != 0) {
            rc = bgfm_fail(e, BGFM_EIO, "cannot stat '%s': %s", full, strerror(errno));
            free(r);
        } else if (S_ISDIR(st.st_mode)) {
            rc = list_rec(base, r, l, e);
            free(r);
        } else if (S_ISREG(st.st_mode)) {
            rc = flist_push(l, r, e);
        } else {
            free(r);
        }
        free(full);
    }
    closedir(d);
    free(dir);
    return rc;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int fs_list_files(const char *dir, char ***out, int *n, bgfm_err *e) {
    flist l = {0};
    int rc = list_rec(dir, "", &l, e);
    if (rc) {
        strlist_free(l.v, l.n);
        return rc;
    }
    if (l.n) qsort(l.v, (size_t)l.n, sizeof *l.v, cmp_str);
    *out = l.v;
    *n = l.n;
    return 0;
}

char *fs_join(const char *a, const char *b, bgfm_err *e) {
    size_t la = strlen(a), lb = strlen(b);
    char *p = bgfm_malloc(e, la + lb + 2, "a path");
    if (!p) return NULL;
    memcpy(p, a, la);
    size_t k = la;
    if (k && p[k - 1] != '/') p[k++] = '/';
    memcpy(p + k, b, lb + 1);
    return p;
}

char *fs_absolute(const char *path, bgfm_err *e) {
    if (path[0] == '/') return bgfm_strdup(e, path);
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) {
        bgfm_fail(e, BGFM_EIO, "cannot get the current folder: %s", strerror(errno));
        return NULL;
    }
    const char *p = path;
    while (p[0] == '.' && p[1] == '/') p += 2;
    if (!strcmp(p, ".")) return bgfm_strdup(e, cwd);
    return fs_join(cwd, p, e);
}

double fs_peak_rss_mib(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
    return (double)ru.ru_maxrss / 1024.0; /* Linux: KiB */
}

FILE *fs_create_in(const char *dir, const char *name, const char *who, char *path, size_t n,
                   bgfm_err *e) {
    snprintf(path, n, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) bgfm_fail(e, BGFM_EIO, "%s: cannot write %s: %s", who, path, strerror(errno));
    return f;
}

int fs_append_line(const char *path, const char *line, bgfm_err *e) {
    FILE *f = fopen(path, "a");
    if (!f) return bgfm_fail(e, BGFM_EIO, "cannot append to '%s': %s", path, strerror(errno));
    int bad = fputs(line, f) < 0 || fputc('\n', f) == EOF;
    if (fclose(f) != 0) bad = 1;
    if (bad) return bgfm_fail(e, BGFM_EIO, "cannot append to '%s' (disk full?)", path);
    return 0;
}

int fs_check_space(const char *dir, int64_t bytes, const char *what, bgfm_err *e) {
    struct statvfs sv;
    if (statvfs(dir, &sv) != 0)
        return bgfm_fail(e, BGFM_EIO, "cannot query free space of '%s': %s", dir, strerror(errno));
    double avail = (double)sv.f_bavail * (double)sv.f_frsize;
    if (avail < (double)bytes)
        return bgfm_fail(e, BGFM_EIO,
                         "not enough space for %s in '%s': about %.1f MiB needed, %.1f MiB free "
                         "(disk full?); free space or move the workdir",
                         what, dir, (double)bytes / 1048576.0, avail / 1048576.0);
    return 0;
}
