/* bids.c: scan of sub-* [/ses-*] /func/ *_bold.nii[.gz] images and the participants.tsv
 * table. Not a BIDS validator: other files and folders are ignored. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "bgfm/bids.h"
#include "bgfm/fsutil.h"
#include "bgfm/strlist.h"

int bids_cell_missing(const char *s) { return !s || !s[0] || !strcmp(s, "n/a"); }

void bids_table_free(bids_table *t) {
    if (!t) return;
    for (int c = 0; c < t->n_cols; c++) free(t->cols[c]);
    free(t->cols);
    for (int64_t i = 0; i < t->n_rows * t->n_cols; i++) free(t->cells[i]);
    free(t->cells);
    free(t->path);
    memset(t, 0, sizeof *t);
}

/* Split one line (no newline, CR stripped) at tabs into a fresh array. */
static int split_tabs(const char *line, size_t len, char ***out, int *n, bgfm_err *e) {
    int cnt = 1;
    for (size_t i = 0; i < len; i++) cnt += line[i] == '\t';
    char **f = bgfm_calloc(e, (size_t)cnt, sizeof *f, "participants.tsv fields");
    if (!f) return e->code;
    size_t start = 0;
    int k = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || line[i] == '\t') {
            size_t l = i - start;
            f[k] = bgfm_malloc(e, l + 1, "participants.tsv field");
            if (!f[k]) {
                for (int j = 0; j < k; j++) free(f[j]);
                free(f);
                return e->code;
            }
            memcpy(f[k], line + start, l);
            f[k][l] = '\0';
            k++;
            start = i + 1;
        }
    }
    *out = f;
    *n = cnt;
    return 0;
}

static void free_fields(char **f, int n) {
    for (int i = 0; i < n; i++) free(f[i]);
    free(f);
}

/* Canonical id: the value itself if it starts with "sub-", else "sub-" + value. */
static int id_matches(const char *cell, const char *id) {
    if (!strncmp(cell, "sub-", 4)) return !strcmp(cell, id);
    return !strncmp(id, "sub-", 4) && !strcmp(cell, id + 4);
}

int64_t bids_table_find(const bids_table *t, const char *id) {
    for (int64_t r = 0; r < t->n_rows; r++)
        if (id_matches(t->cells[r * t->n_cols + t->id_col], id)) return r;
    return -1;
}

int bids_table_col(const bids_table *t, const char *name) {
    for (int c = 0; c < t->n_cols; c++)
        if (!strcmp(t->cols[c], name)) return c;
    return -1;
}

void bids_table_cols_text(const bids_table *t, char *buf, size_t n) {
    size_t o = 0;
    if (n) buf[0] = '\0';
    for (int c = 0; c < t->n_cols && o + 1 < n; c++)
        o += (size_t)snprintf(buf + o, n - o, "%s%s", c ? ", " : "", t->cols[c]);
}

int bids_table_parse(const char *path, const char *buf, size_t len, bids_table *t, bgfm_err *e) {
    return bids_tsv_parse(path, buf, len, "participant_id", t, e);
}

int bids_tsv_parse(const char *path, const char *buf, size_t len, const char *id, bids_table *t,
                   bgfm_err *e) {
    memset(t, 0, sizeof *t);
    t->id_col = -1;
    t->path = bgfm_strdup(e, path);
    if (!t->path) return e->code;
    size_t pos = 0;
    int64_t line_no = 0, cap = 0;
    int rc = 0;
    /* Skip a UTF-8 byte-order mark. */
    if (len >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3)) pos = 3;
    while (pos < len && !rc) {
        size_t end = pos;
        while (end < len && buf[end] != '\n') end++;
        size_t l = end - pos;
        if (l > 0 && buf[pos + l - 1] == '\r') l--;
        line_no++;
        const char *line = buf + pos;
        pos = end + 1;
        int blank = 1;
        for (size_t i = 0; i < l; i++)
            if (line[i] != ' ' && line[i] != '\t') blank = 0;
        if (blank) continue;
        char **f = NULL;
        int nf = 0;
        if ((rc = split_tabs(line, l, &f, &nf, e))) break;
        if (!t->cols) {
            t->cols = f;
            t->n_cols = nf;
            for (int c = 0; c < nf; c++) {
                if (!f[c][0]) {
                    rc = bgfm_fail(e, BGFM_EDATA, "%s:1: column %d has an empty name", path,
                                   c + 1);
                    break;
                }
                for (int d = 0; d < c; d++)
                    if (!strcmp(f[c], f[d]))
                        rc = bgfm_fail(e, BGFM_EDATA, "%s:1: column '%s' appears twice", path,
                                       f[c]);
                if (id && !strcmp(f[c], id)) t->id_col = c;
            }
            if (!rc && id && t->id_col < 0)
                rc = bgfm_fail(e, BGFM_EDATA,
                               "%s:1: no 'participant_id' column in the header (tab-separated); "
                               "add it (values like sub-01)", path);
            continue;
        }
        if (nf > t->n_cols) {
            rc = bgfm_fail(e, BGFM_EDATA,
                           "%s:%lld: %d tab-separated fields but the header has %d columns",
                           path, (long long)line_no, nf, t->n_cols);
            free_fields(f, nf);
            break;
        }
        if (t->n_rows == cap) {
            cap = cap ? 2 * cap : 16;
            char **nc = bgfm_realloc(e, t->cells, (size_t)(cap * t->n_cols) * sizeof *nc,
                                     "table cells");
            if (!nc) {
                free_fields(f, nf);
                rc = BGFM_ENOMEM;
                break;
            }
            t->cells = nc;
        }
        char **row = t->cells + t->n_rows * t->n_cols;
        for (int c = 0; c < t->n_cols; c++) {
            row[c] = c < nf ? f[c] : bgfm_strdup(e, "");
            if (c >= nf && !row[c]) rc = e->code;
        }
        free(f);
        t->n_rows++;
        if (rc) break;
        if (!id) continue; /* no id column to check */
        const char *pid = row[t->id_col];
        if (bids_cell_missing(pid)) {
            rc = bgfm_fail(e, BGFM_EDATA, "%s:%lld: participant_id is empty or n/a", path,
                           (long long)line_no);
            break;
        }
        const char *canon = strncmp(pid, "sub-", 4) ? NULL : pid;
        for (int64_t r = 0; r + 1 < t->n_rows; r++) {
            const char *o = t->cells[r * t->n_cols + t->id_col];
            if (!strcmp(o, pid) || (canon && id_matches(o, canon)) || (!canon && id_matches(pid, o))) {
                rc = bgfm_fail(e, BGFM_EDATA, "%s:%lld: participant '%s' is listed twice", path,
                               (long long)line_no, pid);
                break;
            }
        }
    }
    if (!rc && !t->cols)
        rc = bgfm_fail(e, BGFM_EDATA, "%s: empty file; it needs a header row%s", path,
                       id ? " with participant_id" : "");
    if (rc) {
        char *keep = t->path;
        t->path = NULL;
        bids_table_free(t);
        free(keep);
    }
    return rc;
}

int bids_table_read(const char *path, bids_table *t, bgfm_err *e) {
    return bids_tsv_read(path, "participant_id", t, e);
}

int bids_tsv_read(const char *path, const char *id, bids_table *t, bgfm_err *e) {
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (!f)
        return bgfm_fail(e, errno == ENOENT ? BGFM_EDATA : BGFM_EIO,
                         id ? "cannot open participants table %s: %s (set inputs.bids to the "
                              "dataset folder, or the stage's participants key)"
                            : "cannot open the table %s: %s",
                         path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = bgfm_malloc(e, cap, "table");
    int rc = buf ? 0 : e->code;
    while (!rc) {
        if (len == cap) {
            char *nb = bgfm_realloc(e, buf, cap * 2, "table text");
            if (!nb) {
                rc = BGFM_ENOMEM;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t k = fread(buf + len, 1, cap - len, f);
        len += k;
        if (k == 0) {
            if (ferror(f)) rc = bgfm_fail(e, BGFM_EIO, "read error on %s", path);
            break;
        }
    }
    fclose(f);
    if (!rc) rc = bids_tsv_parse(path, buf, len, id, t, e);
    free(buf);
    return rc;
}

/* ---- scan ---- */

typedef struct strvec {
    char **v;
    int64_t n, cap;
} strvec;

static int strvec_push(strvec *s, char *p, bgfm_err *e) {
    if (!p) return e->code;
    if (s->n == s->cap) {
        int64_t cap = s->cap ? 2 * s->cap : 16;
        char **nv = bgfm_realloc(e, s->v, (size_t)cap * sizeof *nv, "directory listing");
        if (!nv) {
            free(p);
            return BGFM_ENOMEM;
        }
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = p;
    return 0;
}

static char *join(const char *a, const char *b, bgfm_err *e) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = bgfm_malloc(e, n, "path");
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* Names in dir (sorted), filtered by prefix and/or suffixes. */
static int list_dir(const char *dir, const char *prefix, int want_dirs, int bold, strvec *out,
                    bgfm_err *e) {
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT || errno == ENOTDIR) return 0;
        return bgfm_fail(e, BGFM_EIO, "cannot list %s: %s", dir, strerror(errno));
    }
    struct dirent *de;
    int rc = 0;
    while (!rc && (de = readdir(d))) {
        const char *n = de->d_name;
        if (n[0] == '.') continue;
        if (prefix && strncmp(n, prefix, strlen(prefix))) continue;
        if (bold && !ends_with(n, "_bold.nii") && !ends_with(n, "_bold.nii.gz")) continue;
        char *full = join(dir, n, e);
        if (!full) {
            rc = e->code;
            break;
        }
        if (want_dirs != is_dir(full)) {
            free(full);
            continue;
        }
        rc = strvec_push(out, full, e);
    }
    closedir(d);
    return rc;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void strvec_free(strvec *s) {
    for (int64_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

int bids_skip_add(bids_dataset *d, const char *image, const char *reason, bgfm_err *e) {
    bids_skip *ns = bgfm_realloc(e, d->skipped, (size_t)(d->n_skipped + 1) * sizeof *ns,
                                 "skipped images");
    if (!ns) return BGFM_ENOMEM;
    d->skipped = ns;
    bids_skip *s = &d->skipped[d->n_skipped];
    s->image = bgfm_strdup(e, image);
    s->reason = bgfm_strdup(e, reason);
    if (!s->image || !s->reason) {
        free(s->image);
        free(s->reason);
        return e->code;
    }
    d->n_skipped++;
    return 0;
}

void bids_dataset_free(bids_dataset *d) {
    if (!d) return;
    for (int64_t i = 0; i < d->n_images; i++) {
        free(d->images[i].path);
        free(d->images[i].participant_id);
    }
    free(d->images);
    for (int64_t i = 0; i < d->n_skipped; i++) {
        free(d->skipped[i].image);
        free(d->skipped[i].reason);
    }
    free(d->skipped);
    bids_table_free(&d->participants);
    free(d->root);
    memset(d, 0, sizeof *d);
}

int bids_scan(const char *root, const char *participants_path, int skip, bids_dataset *d,
              bgfm_err *e) {
    memset(d, 0, sizeof *d);
    strvec subs = {0}, imgs = {0};
    char *tsv = NULL;
    int rc = 0;
    if (!is_dir(root))
        return bgfm_fail(e, BGFM_EDATA,
                         "inputs.bids: %s is not a folder; point it at a dataset with "
                         "sub-*/func/*_bold.nii[.gz] and participants.tsv", root);
    d->root = bgfm_strdup(e, root);
    tsv = participants_path ? bgfm_strdup(e, participants_path) : join(root, "participants.tsv", e);
    if (!d->root || !tsv) {
        rc = e->code;
        goto out;
    }
    if ((rc = bids_table_read(tsv, &d->participants, e))) goto out;
    if ((rc = list_dir(root, "sub-", 1, 0, &subs, e))) goto out;
    for (int64_t s = 0; s < subs.n && !rc; s++) {
        char *func = join(subs.v[s], "func", e);
        if (!func) {
            rc = e->code;
            break;
        }
        rc = list_dir(func, NULL, 0, 1, &imgs, e);
        free(func);
        strvec ses = {0};
        if (!rc) rc = list_dir(subs.v[s], "ses-", 1, 0, &ses, e);
        for (int64_t k = 0; k < ses.n && !rc; k++) {
            char *f2 = join(ses.v[k], "func", e);
            if (!f2) {
                rc = e->code;
                break;
            }
            rc = list_dir(f2, NULL, 0, 1, &imgs, e);
            free(f2);
        }
        strvec_free(&ses);
    }
    if (rc) goto out;
    if (imgs.n == 0) {
        rc = bgfm_fail(e, BGFM_EDATA,
                       "no images found in %s: expected sub-*/func/*_bold.nii[.gz] or "
                       "sub-*/ses-*/func/*_bold.nii[.gz]", root);
        goto out;
    }
    qsort(imgs.v, (size_t)imgs.n, sizeof *imgs.v, cmp_str);
    d->images = bgfm_calloc(e, (size_t)imgs.n, sizeof *d->images, "image list");
    if (!d->images) {
        rc = e->code;
        goto out;
    }
    size_t rl = strlen(root);
    char *has = bgfm_calloc(e, (size_t)(d->participants.n_rows + 1), 1, "participant flags");
    if (!has) {
        rc = e->code;
        goto out;
    }
    for (int64_t i = 0; i < imgs.n && !rc; i++) {
        const char *p = imgs.v[i] + rl + 1; /* "sub-X/..." */
        size_t idl = strcspn(p, "/");
        char *id = bgfm_malloc(e, idl + 1, "participant id");
        if (!id) {
            rc = e->code;
            break;
        }
        memcpy(id, p, idl);
        id[idl] = '\0';
        int64_t row = bids_table_find(&d->participants, id);
        if (row < 0) {
            if (skip) {
                char *msg = NULL;
                if (asprintf(&msg, "subject %s is not listed in %s", id, tsv) < 0)
                    rc = bgfm_fail(e, BGFM_ENOMEM, "out of memory");
                else
                    rc = bids_skip_add(d, imgs.v[i], msg, e);
                free(msg);
            } else {
                rc = bgfm_fail(e, BGFM_EDATA,
                               "%s: subject %s is not listed in %s; add a row for it or remove "
                               "the image (or set on_error: skip)", imgs.v[i], id, tsv);
            }
            free(id);
            continue;
        }
        has[row] = 1;
        struct stat st;
        bids_image *im = &d->images[d->n_images++];
        im->path = imgs.v[i];
        imgs.v[i] = NULL;
        im->participant_id = id;
        im->row = row;
        im->file_size = stat(im->path, &st) == 0 ? (int64_t)st.st_size : 0;
    }
    for (int64_t r = 0; r < d->participants.n_rows && !rc; r++) {
        if (has[r]) continue;
        const char *id = d->participants.cells[r * d->participants.n_cols + d->participants.id_col];
        char *folder = NULL, *msg = NULL;
        if (asprintf(&folder, "%s/%s%s", root, strncmp(id, "sub-", 4) ? "sub-" : "", id) < 0)
            folder = NULL;
        if (folder && asprintf(&msg, "participant %s (listed in %s) has no image: searched "
                                     "%s/func and %s/ses-*/func for *_bold.nii[.gz]",
                               id, tsv, folder, folder) < 0)
            msg = NULL;
        if (!folder || !msg)
            rc = bgfm_fail(e, BGFM_ENOMEM, "out of memory");
        else if (skip)
            rc = bids_skip_add(d, folder, msg, e);
        else
            rc = bgfm_fail(e, BGFM_EDATA, "%s; add the image, remove the row, or set on_error: skip",
                           msg);
        free(folder);
        free(msg);
    }
    free(has);
    if (!rc && d->n_images == 0)
        rc = bgfm_fail(e, BGFM_EDATA, "no usable images in %s: none of the subjects is listed in %s",
                       root, tsv);
out:
    strvec_free(&subs);
    strvec_free(&imgs);
    free(tsv);
    if (rc) bids_dataset_free(d);
    return rc;
}

int bids_image_files(const char *root, char ***out, int *n, bgfm_err *e) {
    char **names = NULL;
    int m = 0, k = 0;
    *out = NULL;
    *n = 0;
    int rc = fs_list_files(root, &names, &m, e);
    if (rc) return rc;
    char **v = bgfm_calloc(e, (size_t)m + 1, sizeof *v, "image list");
    if (!v) rc = e->code;
    for (int i = 0; !rc && i < m; i++) {
        const char *nm = names[i];
        if (strncmp(nm, "sub-", 4) || !(ends_with(nm, "_bold.nii") || ends_with(nm, "_bold.nii.gz")))
            continue;
        if (!(v[k] = fs_join(root, nm, e))) rc = e->code;
        else k++;
    }
    strlist_free(names, m);
    if (rc) {
        strlist_free(v, k);
        return rc;
    }
    *out = v;
    *n = k;
    return 0;
}
