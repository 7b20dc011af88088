/* confounds.c: find and read an image's fMRIPrep confounds file into the regressor
 * matrix the cleaning projects out (confounds.h). Not the projection (clean.c). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/bids.h"
#include "bgfm/confounds.h"
#include "bgfm/fsutil.h"
#include "bgfm/strlist.h"

static const char *const MOTION6[6] = {"trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"};
static const char *const MOTION_SUFFIX[4] = {"", "_derivative1", "_power2", "_derivative1_power2"};

int confounds_on(const confounds_spec *s) { return s && (s->n_names > 0 || s->scrub > 0); }

/* Entities fMRIPrep adds to a derived image's name that its confounds file does not carry. */
static int dropped_entity(const char *ent, size_t n) {
    static const char *const drop[] = {"space-", "res-", "den-", "desc-", "cohort-"};
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++) {
        size_t l = strlen(drop[i]);
        if (n >= l && !strncmp(ent, drop[i], l)) return 1;
    }
    return 0;
}

char *confounds_path(const char *image, int must_exist, bgfm_err *e) {
    size_t n = strlen(image);
    const char *base = strrchr(image, '/');
    base = base ? base + 1 : image;
    size_t stem = n;
    if (n >= 12 && !strcmp(image + n - 12, "_bold.nii.gz")) stem = n - 12;
    else if (n >= 9 && !strcmp(image + n - 9, "_bold.nii")) stem = n - 9;
    char *cand[2] = {NULL, NULL};
    static const char *const tail[2] = {"_desc-confounds_timeseries.tsv",
                                        "_desc-confounds_regressors.tsv"};
    for (int c = 0; c < 2; c++) {
        cand[c] = bgfm_malloc(e, n + strlen(tail[c]) + 1, "confounds path");
        if (!cand[c]) {
            free(cand[0]);
            return NULL;
        }
        size_t o = (size_t)(base - image);
        memcpy(cand[c], image, o);
        const char *p = base, *end = image + stem;
        while (p < end) { /* entities key-value, separated by '_' */
            const char *q = memchr(p, '_', (size_t)(end - p));
            size_t l = q ? (size_t)(q - p) : (size_t)(end - p);
            if (!dropped_entity(p, l)) {
                if (o > (size_t)(base - image)) cand[c][o++] = '_';
                memcpy(cand[c] + o, p, l);
                o += l;
            }
            p += l + (q != NULL);
        }
        strcpy(cand[c] + o, tail[c]);
    }
    if (!must_exist || fs_exists(cand[0])) {
        free(cand[1]);
        return cand[0];
    }
    if (fs_exists(cand[1])) {
        free(cand[0]);
        return cand[1];
    }
    bgfm_fail(e, BGFM_EDATA,
              "%s: confounds were asked for (the parcellate stage's confounds or scrub) but "
              "the image has no confounds file: neither %s nor %s exists; write it beside the "
              "image (fMRIPrep does), or drop confounds and scrub",
              image, cand[0], cand[1]);
    free(cand[0]);
    free(cand[1]);
    return NULL;
}

/* Append `name` to v (owned copies) unless it is there. */
static int push_unique(char **v, int *k, const char *name, bgfm_err *e) {
    for (int j = 0; j < *k; j++)
        if (!strcmp(v[j], name)) return 0;
    if (!(v[*k] = bgfm_strdup(e, name))) return e->code;
    (*k)++;
    return 0;
}

/* The named columns with the shorthands expanded (motion6: the six realignment
 * parameters; motion12: + their derivative1; motion24: + the squares of both), repeats
 * dropped: *out a malloc'ed list of *n malloc'ed names (strlist_free). */
static int column_list(const confounds_spec *s, char ***out, int *n, bgfm_err *e) {
    char **v = bgfm_calloc(e, (size_t)s->n_names * 24 + 1, sizeof *v, "confound columns");
    if (!v) return e->code;
    int k = 0, rc = 0;
    for (int i = 0; i < s->n_names && !rc; i++) {
        const char *w = s->names[i];
        int ns = !strcmp(w, "motion6") ? 1 : !strcmp(w, "motion12") ? 2 : !strcmp(w, "motion24") ? 4 : 0;
        if (!ns) rc = push_unique(v, &k, w, e);
        for (int sf = 0; sf < ns && !rc; sf++)
            for (int m = 0; m < 6 && !rc; m++) {
                char buf[64];
                snprintf(buf, sizeof buf, "%s%s", MOTION6[m], MOTION_SUFFIX[sf]);
                rc = push_unique(v, &k, buf, e);
            }
    }
    if (rc) {
        strlist_free(v, k);
        return rc;
    }
    *out = v;
    *n = k;
    return 0;
}

/* A cell as a number: "n/a" or empty -> 0; otherwise the whole cell must parse to a
 * finite double. */
static int cell_value(const char *c, double *x) {
    if (bids_cell_missing(c)) {
        *x = 0.0;
        return 1;
    }
    char *end = NULL;
    errno = 0;
    *x = strtod(c, &end);
    while (end && (*end == ' ' || *end == '\r')) end++;
    return end != c && end && !*end && isfinite(*x);
}

static int missing_column(const bids_table *t, const char *name, const char *why, bgfm_err *e) {
    char have[1024];
    bids_table_cols_text(t, have, sizeof have);
    return bgfm_fail(e, BGFM_EDATA, "%s: no column '%s' (%s); its columns are: %s", t->path,
                     name, why, have);
}

void confounds_set_free(confounds_set *c) {
    free(c->X);
    free(c->censor);
    c->X = NULL;
    c->censor = NULL;
}

/* c->censor and c->n_scrubbed from the framewise_displacement column `fd` (scrub > 0),
 * and c->mean_fd over its cells given. */
static int read_fd(const bids_table *t, int fd, const confounds_spec *s, int64_t T,
                   confounds_set *c, bgfm_err *e) {
    int nfd = 0;
    double sfd = 0.0;
    if (fd >= 0 && s->scrub > 0) {
        c->censor = bgfm_calloc(e, (size_t)T, 1, "scrubbed volumes");
        if (!c->censor) return e->code;
    }
    for (int64_t r = 0; fd >= 0 && r < T; r++) {
        double v;
        const char *cell = t->cells[r * t->n_cols + fd];
        if (!cell_value(cell, &v))
            return bgfm_fail(e, BGFM_EDATA, "%s:%lld: column 'framewise_displacement': '%s' "
                             "is not a number", t->path, (long long)r + 2, cell);
        if (c->censor && v > s->scrub) {
            c->censor[r] = 1;
            c->n_scrubbed++;
        }
        if (!bids_cell_missing(cell)) {
            sfd += v;
            nfd++;
        }
    }
    if (nfd > 0) c->mean_fd = sfd / nfd;
    if (!c->n_scrubbed) {
        free(c->censor);
        c->censor = NULL;
    }
    return 0;
}

int confounds_load(const char *image, const confounds_spec *s, int64_t T, int spikes,
                   confounds_set *c, bgfm_err *e) {
    *c = (confounds_set){.mean_fd = NAN};
    char *path = confounds_path(image, 1, e);
    if (!path) return e->code;
    bids_table t;
    char **names = NULL;
    int nn = 0, *col = NULL;
    int rc = bids_tsv_read(path, NULL, &t, e);
    free(path);
    if (rc) return rc;
    if (t.n_rows != T) {
        rc = bgfm_fail(e, BGFM_EDATA,
                       "%s: %lld rows, but the image %s has %lld volumes; a confounds file "
                       "has one row per volume (header row apart): is it the image's own?",
                       t.path, (long long)t.n_rows, image, (long long)T);
        goto out;
    }
    if ((rc = column_list(s, &names, &nn, e))) goto out;
    col = bgfm_calloc(e, (size_t)nn + 1, sizeof *col, "confound columns");
    if (!col) {
        rc = e->code;
        goto out;
    }
    for (int k = 0; k < nn && !rc; k++)
        if ((col[k] = bids_table_col(&t, names[k])) < 0)
            rc = missing_column(&t, names[k], "named by the parcellate stage's confounds", e);
    int fd = rc ? -1 : bids_table_col(&t, "framewise_displacement");
    if (!rc && s->scrub > 0 && fd < 0)
        rc = missing_column(&t, "framewise_displacement", "scrub needs it", e);
    if (rc || (rc = read_fd(&t, fd, s, T, c, e))) goto out;
    int ns = c->n_scrubbed;
    if ((double)ns > s->max_scrubbed * (double)T) {
        rc = bgfm_fail(e, BGFM_EDATA,
                       "%s: %d of %lld volumes have a framewise displacement above scrub (%g mm), "
                       "more than max_scrubbed (%g) allows; leave the image out (on_error: "
                       "skip) or raise max_scrubbed", image, ns, (long long)T, s->scrub,
                       s->max_scrubbed);
        goto out;
    }
    if ((int64_t)(nn + ns) + 2 > T) {
        rc = bgfm_fail(e, BGFM_EDATA,
                       "%s: %d confound regressors (%d columns, %d scrubbed volumes) leave "
                       "nothing of its %lld volumes; name fewer columns or scrub less",
                       image, nn + ns, nn, ns, (long long)T);
        goto out;
    }
    int K = nn + (spikes ? ns : 0);
    if (K > 0 && !(c->X = bgfm_calloc(e, (size_t)(T * K), sizeof *c->X, "confounds"))) {
        rc = e->code;
        goto out;
    }
    for (int k = 0; k < nn && !rc; k++)
        for (int64_t r = 0; r < T && !rc; r++) {
            const char *cell = t.cells[r * t.n_cols + col[k]];
            if (!cell_value(cell, &c->X[k * T + r]))
                rc = bgfm_fail(e, BGFM_EDATA, "%s:%lld: column '%s': '%s' is not a number",
                               t.path, (long long)r + 2, names[k], cell);
        }
    for (int64_t r = 0, q = nn; spikes && c->censor && r < T; r++)
        if (c->censor[r]) c->X[(q++) * T + r] = 1.0;
    c->K = K;
out:
    if (rc) {
        confounds_set_free(c);
        *c = (confounds_set){.mean_fd = NAN};
    }
    free(col);
    strlist_free(names, nn);
    bids_table_free(&t);
    return rc;
}
