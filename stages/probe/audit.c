/* audit.c: the probe's leakage audit (audit.h): (dataset, participant) pairs of the graphs
 * pretraining read and of the graphs the probe labelled, grouped into subjects through the
 * subject map, and the subjects in both. Not the refusal (stage.c). */
#include <stdlib.h>
#include <string.h>

#include "bgfm/audit.h"
#include "bgfm/fsutil.h"
#include "bgfm/json.h"

void probe_audit_free(probe_audit *a) {
    if (!a) return;
    for (int64_t i = 0; a->rows && i < a->n; i++) {
        free(a->rows[i].dataset);
        free(a->rows[i].participant);
        free(a->keys[i]);
    }
    free(a->rows);
    free(a->keys);
    memset(a, 0, sizeof *a);
}

static int cmp_row(const void *x, const void *y) {
    const audit_row *a = x, *b = y;
    int c = strcmp(a->subject, b->subject);
    if (!c) c = strcmp(a->dataset, b->dataset);
    return c ? c : strcmp(a->participant, b->participant);
}

static int cmp_pair(const void *x, const void *y) {
    const audit_row *a = x, *b = y;
    int c = strcmp(a->dataset, b->dataset);
    return c ? c : strcmp(a->participant, b->participant);
}

/* Every pair of the two graph lists (or, for pretraining, of its keys), one row each
 * (flags OR-ed), sorted by pair. */
static int collect(graphs_store *gs, const int64_t *const lists[2], const int64_t n[2],
                   char *const *keys, int64_t nk, probe_audit *a, bgfm_err *e) {
    int64_t tot = n[0] + n[1] + nk;
    a->rows = bgfm_calloc(e, (size_t)tot + 1, sizeof *a->rows, "audit");
    a->keys = bgfm_calloc(e, (size_t)tot + 1, sizeof *a->keys, "audit");
    if (!a->rows || !a->keys) return BGFM_ENOMEM;
    for (int64_t i = 0; i < nk; i++) { /* "<dataset>/<participant_id>", or an id alone */
        audit_row *r = &a->rows[a->n++];
        const char *sl = strchr(keys[i], '/');
        r->dataset = bgfm_strdup(e, keys[i]);
        if (r->dataset) r->dataset[sl ? sl - keys[i] : 0] = '\0';
        r->participant = bgfm_strdup(e, sl ? sl + 1 : keys[i]);
        if (!r->dataset || !r->participant) return BGFM_ENOMEM;
        r->pretrain = 1;
    }
    for (int side = 0; side < 2; side++)
        for (int64_t i = 0; i < n[side]; i++) {
            audit_row *r = &a->rows[a->n];
            r->dataset = bgfm_strdup(e, graphs_dataset(gs, lists[side][i]));
            r->participant = bgfm_strdup(e, graphs_participant(gs, lists[side][i]));
            a->n++;
            if (!r->dataset || !r->participant) return BGFM_ENOMEM;
            r->pretrain = side == 0;
            r->probe = side == 1;
        }
    qsort(a->rows, (size_t)a->n, sizeof *a->rows, cmp_pair);
    int64_t u = 0;
    for (int64_t i = 0; i < a->n; i++) {
        if (u && !cmp_pair(&a->rows[i], &a->rows[u - 1])) {
            a->rows[u - 1].pretrain |= a->rows[i].pretrain;
            a->rows[u - 1].probe |= a->rows[i].probe;
            free(a->rows[i].dataset);
            free(a->rows[i].participant);
            continue;
        }
        a->rows[u++] = a->rows[i];
    }
    a->n = u;
    return 0;
}

int probe_audit_build(graphs_store *gs, const int64_t *pre, int64_t n_pre,
                      char *const *pre_keys, int64_t n_keys, const int64_t *probed,
                      int64_t n_probed, const corpus_map *map, probe_audit *a, bgfm_err *e) {
    memset(a, 0, sizeof *a);
    const int64_t *const lists[2] = {pre, probed};
    const int64_t n[2] = {n_pre, n_probed};
    int rc = collect(gs, lists, n, pre_keys, n_keys, a, e);
    for (int64_t i = 0; !rc && i < a->n; i++) {
        audit_row *r = &a->rows[i];
        size_t l = strlen(r->dataset) + strlen(r->participant) + 2;
        char *k = bgfm_malloc(e, l, "audit");
        if (!k) {
            rc = BGFM_ENOMEM;
            break;
        }
        snprintf(k, l, "%s%s%s", r->dataset, *r->dataset ? "/" : "", r->participant);
        const char *c = corpus_map_canon(map, k);
        a->keys[i] = c == k ? k : bgfm_strdup(e, c);
        if (c != k) free(k);
        if (!a->keys[i]) rc = BGFM_ENOMEM;
        r->subject = a->keys[i];
    }
    if (rc) {
        probe_audit_free(a);
        return rc;
    }
    /* keys[] stays in pair order (rows point into it); rows sorted by subject */
    qsort(a->rows, (size_t)a->n, sizeof *a->rows, cmp_row);
    for (int64_t i = 0, j; i < a->n; i = j) {
        int pre_s = 0, probe_s = 0;
        for (j = i; j < a->n && !strcmp(a->rows[j].subject, a->rows[i].subject); j++)
            pre_s |= a->rows[j].pretrain, probe_s |= a->rows[j].probe;
        for (int64_t q = i; q < j; q++) a->rows[q].overlap = pre_s && probe_s;
        a->n_pretrain += pre_s;
        a->n_probe += probe_s;
        a->n_overlap += pre_s && probe_s;
        if (pre_s && probe_s && !a->first_overlap) a->first_overlap = a->rows[i].subject;
    }
    return 0;
}

int probe_audit_write_tsv(const probe_audit *a, const char *path, bgfm_err *e) {
    char *t = NULL;
    size_t tl = 0;
    FILE *f = open_memstream(&t, &tl);
    if (!f) return bgfm_fail(e, BGFM_ENOMEM, "out of memory writing %s", path);
    fputs("dataset\tparticipant_id\tsubject\tpretrain\tprobe\toverlap\n", f);
    for (int64_t i = 0; i < a->n; i++) {
        const audit_row *r = &a->rows[i];
        fprintf(f, "%s\t%s\t%s\t%d\t%d\t%d\n", r->dataset[0] ? r->dataset : "n/a", r->participant,
                r->subject, r->pretrain, r->probe, r->overlap);
    }
    if (fclose(f)) {
        free(t);
        return bgfm_fail(e, BGFM_ENOMEM, "out of memory writing %s", path);
    }
    int rc = fs_write_atomic(path, t, tl, e);
    free(t);
    return rc;
}

void probe_audit_write_json(FILE *f, const probe_audit *a, int transductive,
                            const char *subject_map, const char *ind) {
    fprintf(f, "{\n%s\"file\": \"audit.tsv\",\n%s\"transductive\": %s,\n%s\"subject_map\": ", ind,
            ind, transductive ? "true" : "false", ind);
    if (subject_map) json_write_str(f, subject_map);
    else fputs("null", f);
    int64_t np = 0, nq = 0;
    for (int64_t i = 0; i < a->n; i++) np += a->rows[i].pretrain, nq += a->rows[i].probe;
    fprintf(f, ",\n%s\"pretrain_pairs\": %lld,\n%s\"probe_pairs\": %lld,\n", ind,
            (long long)np, ind, (long long)nq);
    fprintf(f, "%s\"pretrain_subjects\": %lld,\n%s\"probe_subjects\": %lld,\n"
            "%s\"overlap_subjects\": %lld,\n%s\"overlap\": [", ind, (long long)a->n_pretrain, ind,
            (long long)a->n_probe, ind, (long long)a->n_overlap, ind);
    int64_t k = 0;
    for (int64_t i = 0; i < a->n; i++) {
        if (!a->rows[i].overlap || (i && !strcmp(a->rows[i].subject, a->rows[i - 1].subject)))
            continue;
        fputs(k++ ? ", " : "", f);
        json_write_str(f, a->rows[i].subject);
    }
    fputs("]}", f);
}
