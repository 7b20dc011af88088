/* meta.c: the prompt stage's meta-learned initialisation (`meta: reptile`; finetune.h,
 * docs/adapt.md "Meta-learned prompts"): tasks are (column, atlas) pairs of categorical
 * participants.tsv columns with the label's number of classes and the store's atlases,
 * or (dataset, atlas) pairs of other datasets' labels (meta_datasets); first-order
 * Reptile learns the prompts and the head from episodes of `shots` subjects per class
 * drawn from a pool of subjects the cell's adaptation never reads.
 * Not the fit (train.c) and not the stage (stage.c). */
#include <stdlib.h>
#include <string.h>

#include "bgfm/finetune.h"
#include "bgfm/rng.h"

void ft_meta_free(ft_meta *m) {
    for (int i = 0; i < m->n_cols; i++) free(m->col[i]);
    free(m->cls);
    probe_data_free(&m->pool);
    free(m->seen);
    free(m->ord);
    free(m->gbuf);
    memset(m, 0, sizeof *m);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* the table row of subject id (a "<dataset>/<id>" key also by its id) */
static int64_t find_row(const bids_table *t, const char *id) {
    int64_t r = bids_table_find(t, id);
    const char *sl = strrchr(id, '/');
    return r < 0 && sl ? bids_table_find(t, sl + 1) : r;
}

/* classes of column c (0..K-1 in sorted value order) per subject; the value count */
static int column_classes(const bids_table *t, int c, const probe_data *d, int *cls,
                          const char **vals) {
    int nv = 0;
    for (int64_t s = 0; s < d->ns; s++) {
        int64_t r = find_row(t, d->sid[s]);
        const char *v = r < 0 ? "" : t->cells[r * t->n_cols + c];
        cls[s] = -1;
        if (!*v || !strcmp(v, "n/a")) continue;
        int k = 0;
        while (k < nv && strcmp(vals[k], v)) k++;
        if (k == nv && nv < 256) vals[nv++] = v;
        cls[s] = 0;
    }
    qsort(vals, (size_t)nv, sizeof *vals, cmp_str);
    for (int64_t s = 0; s < d->ns; s++) {
        if (cls[s] < 0) continue;
        int64_t r = find_row(t, d->sid[s]);
        const char *v = t->cells[r * t->n_cols + c];
        int k = 0;
        while (k < nv && strcmp(vals[k], v)) k++;
        cls[s] = k;
    }
    return nv;
}

int ft_meta_prepare(const char *path, const char *const *cols, int n_cols, const probe_data *d,
                    ft_meta *m, bgfm_err *e) {
    bids_table t;
    memset(&t, 0, sizeof t);
    int rc = bids_table_read(path, &t, e);
    if (rc) return rc;
    m->n_atl = d->A;
    m->cls = bgfm_malloc(e, (size_t)(n_cols * d->ns + 1) * sizeof *m->cls, "meta tasks");
    const char **vals = bgfm_malloc(e, 256 * sizeof *vals, "meta tasks");
    if (!m->cls || !vals) rc = BGFM_ENOMEM;
    for (int i = 0; i < n_cols && !rc; i++) {
        int c = 0;
        while (c < t.n_cols && strcmp(t.cols[c], cols[i])) c++;
        if (c == t.n_cols) {
            rc = bgfm_fail(e, BGFM_EDATA, "prompt: meta_tasks column '%s' is not in %s", cols[i],
                           path);
            break;
        }
        int nv = column_classes(&t, c, d, m->cls + (int64_t)i * d->ns, vals);
        if (nv != d->K)
            rc = bgfm_fail(e, BGFM_EDATA, "prompt: meta_tasks column '%s' of %s has %d value(s) "
                           "among the subjects, the label %d; a task's classes must match the "
                           "head's", cols[i], path, nv, d->K);
        else if (!(m->col[m->n_cols++] = bgfm_strdup(e, cols[i])))
            rc = BGFM_ENOMEM;
    }
    if (!rc && (int64_t)m->n_cols * m->n_atl < 2)
        rc = bgfm_fail(e, BGFM_EDATA, "prompt: meta needs at least two tasks; %d column(s) x %d "
                       "atlas(es) of the graph store make %d; add meta_tasks columns or atlases",
                       m->n_cols, m->n_atl, m->n_cols * m->n_atl);
    free(vals);
    bids_table_free(&t);
    return rc;
}

/* The pool's classes: per meta dataset i, its label codes among the pool's graphs in
 * ascending order are the classes 0..K-1 of column i. */
static int pool_classes(const ft_meta *m, const int64_t *lab, const int *dsi, int K,
                        const char *gpath, int64_t *ul, bgfm_err *e) {
    const probe_data *P = &m->pool;
    for (int i = 0; i < m->n_cols; i++) {
        int64_t nv = 0;
        for (int64_t q = 0; q < P->nl; q++)
            if (dsi[q] == i) ul[nv++] = lab[q];
        int64_t u = probe_distinct_i64(ul, nv);
        if (u != K)
            return bgfm_fail(e, BGFM_EDATA, "prompt: meta_datasets '%s' has %lld label value(s) "
                             "among its labelled subjects in %s (those who are not probed), the "
                             "evaluated label %d; a task's classes must match the head's",
                             m->col[i], (long long)u, gpath, K);
        int *cls = m->cls + (int64_t)i * P->ns;
        for (int64_t q = 0; q < P->nl; q++) {
            if (dsi[q] != i) continue;
            int c = 0;
            while (ul[c] != lab[q]) c++;
            cls[P->subj[q]] = c;
        }
    }
    return 0;
}

int ft_meta_prepare_datasets(graphs_store *gs, const char *gpath, const char *const *names,
                             int n, const probe_data *d, ft_meta *m, bgfm_err *e) {
    probe_data *P = &m->pool;
    int64_t G = graphs_count(gs), nl = 0;
    size_t z = (size_t)(G ? G : 1);
    char buf[512];
    m->ext = 1;
    m->n_atl = P->A = d->A;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++)
        if (!(m->col[m->n_cols++] = bgfm_strdup(e, names[i]))) rc = BGFM_ENOMEM;
    int *dsi = bgfm_malloc(e, z * sizeof *dsi, "meta pool");
    int64_t *lab = bgfm_malloc(e, z * sizeof *lab, "meta pool");
    char **key = bgfm_calloc(e, z, sizeof *key, "meta pool");
    P->g = bgfm_malloc(e, z * sizeof *P->g, "meta pool");
    P->atl = bgfm_malloc(e, z * sizeof *P->atl, "meta pool");
    P->subj = bgfm_malloc(e, z * sizeof *P->subj, "meta pool");
    if (!rc && (!dsi || !lab || !key || !P->g || !P->atl || !P->subj)) rc = BGFM_ENOMEM;
    /* the graphs: a meta dataset's, labelled, of a subject the stage does not probe */
    for (int64_t g = 0; g < G && !rc; g++) {
        const graphs_meta *gm = graphs_get_meta(gs, g);
        const char *ds = graphs_dataset(gs, g);
        int i = 0;
        while (i < n && strcmp(names[i], ds ? ds : "")) i++;
        if (i == n || gm->label < 0) continue;
        probe_subject_key(gs, &d->map, g, buf, sizeof buf);
        if (probe_find_key(d->sid, d->ns, buf) >= 0) continue; /* the same person, probed */
        if (!(key[nl] = bgfm_strdup(e, buf))) rc = BGFM_ENOMEM;
        P->g[nl] = g, P->atl[nl] = gm->atlas, dsi[nl] = i, lab[nl++] = gm->label;
    }
    P->nl = nl;
    /* subjects: the distinct keys, sorted */
    P->sid = rc ? NULL : bgfm_calloc(e, (size_t)(nl ? nl : 1), sizeof *P->sid, "meta pool");
    if (!rc && !P->sid) rc = BGFM_ENOMEM;
    if (!rc) {
        memcpy(P->sid, key, (size_t)nl * sizeof *key);
        qsort(P->sid, (size_t)nl, sizeof *P->sid, cmp_str);
        int64_t u = 0;
        for (int64_t q = 0; q < nl; q++)
            if (!u || strcmp(P->sid[q], P->sid[u - 1])) P->sid[u++] = P->sid[q];
        P->ns = u;
        for (int64_t q = 0; q < nl; q++) { /* the kept copy, the others freed */
            P->subj[q] = probe_find_key(P->sid, u, key[q]);
            if (P->sid[P->subj[q]] != key[q]) free(key[q]);
        }
    } else
        for (int64_t q = 0; q < nl; q++) free(key[q]);
    m->cls = rc ? NULL : bgfm_malloc(e, (size_t)(n * P->ns + 1) * sizeof *m->cls, "meta pool");
    int64_t *ul = rc ? NULL : bgfm_malloc(e, (size_t)(nl + 1) * sizeof *ul, "meta pool");
    if (!rc && (!m->cls || !ul)) rc = BGFM_ENOMEM;
    for (int64_t q = 0; !rc && q < (int64_t)n * P->ns; q++) m->cls[q] = -1;
    if (!rc) rc = pool_classes(m, lab, dsi, d->K, gpath, ul, e);
    free(ul);
    if (!rc && (int64_t)m->n_cols * m->n_atl < 2)
        rc = bgfm_fail(e, BGFM_EDATA, "prompt: meta needs at least two tasks; %d dataset(s) x %d "
                       "atlas(es) of the graph store make %d; add meta_datasets or atlases",
                       m->n_cols, m->n_atl, m->n_cols * m->n_atl);
    /* the trainer's scratch for the pool (train.c: seen 2 ns, ord 2 nl + 2, gbuf nl) */
    if (!rc) {
        m->seen = bgfm_calloc(e, 2 * (size_t)(P->ns + 1), 1, "meta pool");
        m->ord = bgfm_malloc(e, (size_t)(2 * nl + 2) * sizeof *m->ord, "meta pool");
        m->gbuf = bgfm_malloc(e, (size_t)(nl + 1) * sizeof *m->gbuf, "meta pool");
        if (!m->seen || !m->ord || !m->gbuf) rc = BGFM_ENOMEM;
    }
    free(dsi);
    free(lab);
    free(key);
    return rc;
}

static void zero_moments(ft_trainer *t) {
    memset(t->pm, 0, (size_t)t->pn * sizeof(float));
    memset(t->pv, 0, (size_t)t->pn * sizeof(float));
    memset(t->h.m, 0, (size_t)t->h.n * sizeof(float));
    memset(t->h.v, 0, (size_t)t->h.n * sizeof(float));
    t->h.t = 0;
}

/* Episode e's graphs into t->ord: task (column c, atlas a) and `shots` pool subjects per
 * class drawn with rng(seed, RNG_ADAPT, 2^61 + e, key, 0); 0 when a class has none. */
static int64_t episode(ft_trainer *t, const uint8_t *role, uint64_t key, int64_t ep, int *col,
                       int64_t *subj) {
    const ft_meta *m = t->meta;
    const probe_data *d = t->d;
    rng_stream r;
    rng_init(&r, t->o->seed, RNG_ADAPT, ((uint64_t)1 << 61) + (uint64_t)ep, key, 0);
    int task = (int)rng_below(&r, (uint64_t)m->n_cols * (uint64_t)m->n_atl);
    int c = task / m->n_atl, a = task % m->n_atl;
    const int *cls = m->cls + (int64_t)c * d->ns;
    uint8_t *pick = t->seen + d->ns; /* the second half of seen: this episode's subjects */
    memset(pick, 0, (size_t)d->ns);
    for (int q = 0; q < t->h.K; q++) {
        int64_t n = 0;
        for (int64_t s = 0; s < d->ns; s++)
            if ((!role || role[s] == FT_OUT) && cls[s] == q) subj[n++] = s;
        if (n == 0) return 0;
        rng_shuffle_i64(&r, subj, n);
        for (int64_t i = 0; i < n && i < m->shots; i++) pick[subj[i]] = 1;
    }
    int64_t n = 0;
    for (int64_t q = 0; q < d->nl; q++)
        if (d->atl[q] == a && pick[d->subj[q]]) t->ord[n++] = q;
    rng_shuffle_i64(&r, t->ord, n);
    *col = c;
    return n < t->o->batch_size ? n : t->o->batch_size;
}

int ft_meta_train(ft_trainer *t, const uint8_t *role, uint64_t key, double *read) {
    const ft_meta *m = t->meta;
    bgfm_err *e = &t->ctx->err;
    int64_t pn = t->pn, hn = t->h.n;
    /* an external pool: the trainer reads its graphs (pool indices) meanwhile */
    const probe_data *d0 = t->d;
    uint8_t *seen0 = t->seen;
    int64_t *ord0 = t->ord, *gbuf0 = t->gbuf;
    if (m->ext) {
        t->d = &m->pool, t->seen = m->seen, t->ord = m->ord, t->gbuf = m->gbuf;
        memset(t->seen, 0, (size_t)m->pool.ns);
        role = NULL;
    }
    int64_t *subj = bgfm_malloc(e, (size_t)(t->d->ns + 1) * sizeof *subj, "meta-training");
    int rc = bgfm_ctx_agree(t->ctx, subj ? 0 : BGFM_ENOMEM);
    float *th = t->theta;
    memcpy(th, t->pw, (size_t)pn * sizeof(float));
    memcpy(th + pn, t->h.w, (size_t)hn * sizeof(float));
    for (int64_t ep = 0; ep < m->steps && !rc; ep++) {
        int c = 0;
        int64_t n = episode(t, role, key, ep, &c, subj);
        if (n == 0) continue; /* a class without pool subjects: no episode */
        zero_moments(t);
        double ls = 0;
        for (int64_t i = 0; i < m->inner && !rc; i++)
            rc = ft_train_step(t, t->ord, n, m->cls + (int64_t)c * t->d->ns,
                               ((int64_t)1 << 40) + ep * m->inner + i, t->o->opt.lr, &ls);
        if (rc) break;
        /* theta += eps_e (phi - theta), eps annealed linearly to 0; phi becomes theta */
        float eps = (float)(m->eps * (1.0 - (double)ep / (double)m->steps));
        for (int64_t i = 0; i < pn; i++) th[i] += eps * (t->pw[i] - th[i]), t->pw[i] = th[i];
        for (int64_t i = 0; i < hn; i++) th[pn + i] += eps * (t->h.w[i] - th[pn + i]), t->h.w[i] = th[pn + i];
    }
    zero_moments(t);
    free(subj);
    if (m->ext) {
        if (!rc && read) rc = ft_mark_read(t, read + d0->ns, 1);
        t->d = d0, t->seen = seen0, t->ord = ord0, t->gbuf = gbuf0;
    }
    return rc;
}
