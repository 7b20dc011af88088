/* probe.c: the probe protocol's parts (probe.h): grouped stratified folds (per repeat),
 * few-shot subsets, eval-mode graph embeddings, and one cross-validation cell.
 * Not the stage (stage.c: I/O, rank distribution, report) and not the classifier. */
#include "bgfm/probe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/bids.h"
#include "bgfm/deconfound.h"
#include "bgfm/metrics.h"
#include "bgfm/rng.h"

int probe_folds(int64_t n_subj, const int *cls, int K, int folds, uint64_t seed, int repeat,
                int *fold, bgfm_err *e) {
    int64_t *list = bgfm_malloc(e, (size_t)(n_subj ? n_subj : 1) * sizeof *list, "folds");
    if (!list) return BGFM_ENOMEM;
    for (int64_t s = 0; s < n_subj; s++) fold[s] = -1;
    int64_t deal = 0;
    for (int c = 0; c < K; c++) {
        int64_t m = 0;
        for (int64_t s = 0; s < n_subj; s++)
            if (cls[s] == c) list[m++] = s;
        if (m < folds) {
            free(list);
            return bgfm_fail(e, BGFM_EDATA, "probe: class %d has %lld labelled subject(s), fewer "
                             "than folds (%d); lower `folds` or add subjects", c, (long long)m,
                             folds);
        }
        rng_stream r;
        rng_init(&r, seed, RNG_PROBE, 1, (uint64_t)c, (uint64_t)repeat);
        rng_shuffle_i64(&r, list, m);
        for (int64_t j = 0; j < m; j++) fold[list[j]] = (int)(deal++ % folds);
    }
    free(list);
    return 0;
}

int probe_fold_file(const char *path, int64_t ns, char *const *sid, const uint8_t *need,
                    int *fold, int *F, bgfm_err *e) {
    bids_table t;
    int rc = bids_table_read(path, &t, e);
    if (rc) return rc;
    int fc = -1;
    for (int c = 0; c < t.n_cols; c++)
        if (!strcmp(t.cols[c], "fold")) fc = c;
    if (fc < 0) {
        bids_table_free(&t);
        return bgfm_fail(e, BGFM_EDATA, "%s: no column 'fold' (fold_file needs the columns "
                         "participant_id and fold)", path);
    }
    int mx = -1;
    for (int64_t s = 0; s < ns && !rc; s++) {
        fold[s] = -1;
        int64_t row = bids_table_find(&t, sid[s]);
        const char *v = row >= 0 ? t.cells[row * t.n_cols + fc] : "";
        if (bids_cell_missing(v)) {
            if (need[s])
                rc = bgfm_fail(e, BGFM_EDATA, "%s: participant %s has no fold; give every "
                               "labelled subject (with the target, for regression) a fold", path,
                               sid[s]);
            continue;
        }
        char *end = NULL;
        long x = strtol(v, &end, 10);
        if (!end || *end || end == v || x < 0 || x > 999)
            rc = bgfm_fail(e, BGFM_EDATA, "%s: row %lld (participant %s): fold '%s' is not an "
                           "integer 0..999", path, (long long)row + 1, sid[s], v);
        else if (need[s]) {
            fold[s] = (int)x;
            mx = x > mx ? (int)x : mx;
        }
    }
    bids_table_free(&t);
    if (rc) return rc;
    if (mx < 1)
        return bgfm_fail(e, BGFM_EDATA, "%s: the subjects fall into %d fold(s); at least 2 are "
                         "needed (folds are numbered from 0)", path, mx + 1);
    for (int f = 0; f <= mx; f++) {
        int64_t c = 0;
        for (int64_t s = 0; s < ns; s++) c += fold[s] == f;
        if (!c)
            return bgfm_fail(e, BGFM_EDATA, "%s: fold %d has no subject; number the folds "
                             "0..%d without gaps", path, f, mx);
    }
    *F = mx + 1;
    return 0;
}

int probe_few_shot(int64_t n_subj, const int *cls, const int *fold, int K, int f, int64_t k,
                   uint64_t seed, int repeat, uint8_t *use, bgfm_err *e) {
    memset(use, 0, (size_t)n_subj);
    int64_t *list = bgfm_malloc(e, (size_t)(n_subj ? n_subj : 1) * sizeof *list,
                                "few-shot subjects");
    if (!list) return BGFM_ENOMEM;
    for (int c = 0; c < K; c++) {
        int64_t m = 0;
        for (int64_t s = 0; s < n_subj; s++)
            if (cls[s] == c && fold[s] >= 0 && fold[s] != f) list[m++] = s;
        rng_stream r;
        rng_init(&r, seed, RNG_PROBE, 2, (uint64_t)f + ((uint64_t)repeat << 32), (uint64_t)c);
        rng_shuffle_i64(&r, list, m);
        int64_t take = (k <= 0 || k > m) ? m : k;
        for (int64_t j = 0; j < take; j++) use[list[j]] = 1;
    }
    free(list);
    return 0;
}

void probe_embed(model *m, model_ws *ws, int atlas, int N, const float *fc, const uint8_t *adj,
                 const float *rwse, int64_t gidx, float *out) {
    const int pcs = m->cfg.embed == MODEL_EMBED_PCS;
    const int enc = m->cfg.embed == MODEL_EMBED_POP ? 0 : pcs ? m->cfg.pcs : m->cfg.H;
    if (enc) {
        const float *r = model_graph_readout(m, ws, atlas, N, fc, adj, rwse, gidx);
        if (pcs) model_pcs_apply(m, atlas, r, out);
        else memcpy(out, r, (size_t)m->cfg.H * sizeof *out);
    }
    if (m->cfg.embed != MODEL_EMBED_ENCODER) model_pop_apply(m, atlas, N, fc, out + enc);
}

int probe_cell(const double *X, int64_t n, int64_t D, const double *C, int q,
               const int64_t *subj, int64_t n_subj, const int *cls, int K, const int *fold,
               int f, const uint8_t *use, const logreg_opts *lr, double m3[3], double *oof,
               bgfm_err *e) {
    int64_t ntr = 0, nte = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t s = subj[i];
        if (fold[s] == f) nte++;
        else if (use[s]) ntr++;
    }
    double *Xtr = bgfm_malloc(e, (size_t)((ntr ? ntr : 1) * D) * sizeof *Xtr, "probe train");
    double *Xte = bgfm_malloc(e, (size_t)((nte ? nte : 1) * D) * sizeof *Xte, "probe test");
    double *P = bgfm_malloc(e, (size_t)((nte ? nte : 1) * K) * sizeof *P, "probe test");
    int *ytr = bgfm_malloc(e, (size_t)(ntr ? ntr : 1) * sizeof *ytr, "probe train");
    int64_t *ste = bgfm_malloc(e, (size_t)(nte ? nte : 1) * sizeof *ste, "probe test");
    double *agg = bgfm_calloc(e, (size_t)((n_subj ? n_subj : 1) * K), sizeof *agg, "probe");
    int64_t *cnt = bgfm_calloc(e, (size_t)(n_subj ? n_subj : 1), sizeof *cnt, "probe");
    int64_t *first = bgfm_calloc(e, (size_t)(n_subj ? n_subj : 1), sizeof *first, "probe");
    int *ys = bgfm_malloc(e, (size_t)(n_subj ? n_subj : 1) * sizeof *ys, "probe");
    size_t zq = (size_t)(q > 0 ? q : 1);
    double *Ctr = bgfm_malloc(e, (size_t)(ntr ? ntr : 1) * zq * sizeof *Ctr, "probe confounds");
    double *Cte = bgfm_malloc(e, (size_t)(nte ? nte : 1) * zq * sizeof *Cte, "probe confounds");
    int *pr = bgfm_malloc(e, (size_t)(n_subj ? n_subj : 1) * sizeof *pr, "probe");
    double *Ps = bgfm_malloc(e, (size_t)((n_subj ? n_subj : 1) * K) * sizeof *Ps, "probe");
    logreg_model lm;
    memset(&lm, 0, sizeof lm);
    int rc = 0;
    if (!Xtr || !Xte || !P || !ytr || !ste || !agg || !cnt || !first || !ys || !pr || !Ps ||
        !Ctr || !Cte) {
        rc = BGFM_ENOMEM;
        goto done;
    }
    int64_t a = 0, b = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t s = subj[i];
        if (fold[s] == f) {
            memcpy(Xte + b * D, X + i * D, (size_t)D * sizeof *X);
            if (q > 0) memcpy(Cte + b * q, C + i * q, zq * sizeof *C);
            ste[b++] = s;
        } else if (use[s]) {
            memcpy(Xtr + a * D, X + i * D, (size_t)D * sizeof *X);
            if (q > 0) memcpy(Ctr + a * q, C + i * q, zq * sizeof *C);
            ytr[a++] = cls[s];
        }
    }
    if (ntr == 0 || nte == 0) {
        rc = bgfm_fail(e, BGFM_EDATA, "probe: fold %d has %lld training and %lld test samples; "
                       "every fold needs both", f, (long long)ntr, (long long)nte);
        goto done;
    }
    if ((rc = deconfound(Xtr, ntr, Ctr, Xte, nte, Cte, D, q, e))) goto done;
    if ((rc = logreg_fit(&lm, Xtr, ntr, D, ytr, K, lr, e))) goto done;
    if ((rc = logreg_predict_proba(&lm, Xte, nte, P, e))) goto done;
    /* each subject's mean as its first sample's value plus the mean of the differences
     * from it: samples with one probability (a constant feature set) give exactly that
     * probability, not one that differs in the last bits with the window count and
     * breaks the AUC's ties at random */
    for (int64_t j = 0; j < nte; j++) {
        int64_t s = ste[j];
        if (!cnt[s]) first[s] = j;
        cnt[s]++;
        for (int k = 0; k < K; k++) agg[s * K + k] += P[j * K + k] - P[first[s] * K + k];
    }
    int64_t ns = 0;
    for (int64_t s = 0; s < n_subj; s++) {
        if (!cnt[s]) continue;
        int best = 0;
        for (int k = 0; k < K; k++) {
            double v = P[first[s] * K + k] + agg[s * K + k] / (double)cnt[s];
            Ps[ns * K + k] = v;
            if (oof) oof[s * K + k] = v;
            if (v > Ps[ns * K + best]) best = k;
        }
        ys[ns] = cls[s];
        pr[ns] = best;
        ns++;
    }
    if ((rc = metrics_auc_ovr(Ps, ys, ns, K, &m3[0], e))) goto done;
    m3[1] = metrics_accuracy(pr, ys, ns);
    m3[2] = metrics_balanced_accuracy(pr, ys, ns, K);
done:
    logreg_free(&lm);
    free(Xtr);
    free(Xte);
    free(P);
    free(ytr);
    free(ste);
    free(agg);
    free(cnt);
    free(first);
    free(ys);
    free(pr);
    free(Ps);
    free(Ctr);
    free(Cte);
    return rc;
}
