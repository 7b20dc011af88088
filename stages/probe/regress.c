/* regress.c: subject folds, few-shot subsets, one ridge cross-validation cell and the
 * regression scores of the probe (regress.h).
 * Not the ridge solver (ridge.c) and not the stage (stage.c). */
#include "bgfm/regress.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/deconfound.h"
#include "bgfm/ridge.h"
#include "bgfm/rng.h"

int regress_folds(int64_t n_subj, const uint8_t *has, int folds, uint64_t seed, int repeat,
                  const char *what, int *fold, bgfm_err *e) {
    int64_t *list = bgfm_malloc(e, (size_t)(n_subj ? n_subj : 1) * sizeof *list, "folds");
    if (!list) return BGFM_ENOMEM;
    int64_t m = 0;
    for (int64_t s = 0; s < n_subj; s++) {
        fold[s] = -1;
        if (has[s]) list[m++] = s;
    }
    if (m < folds) {
        free(list);
        return bgfm_fail(e, BGFM_EDATA, "probe: target '%s' is known for %lld probed subject(s), "
                         "fewer than folds (%d); lower `folds`, or check the column", what,
                         (long long)m, folds);
    }
    rng_stream r;
    rng_init(&r, seed, RNG_PROBE, 3, (uint64_t)repeat, 0);
    rng_shuffle_i64(&r, list, m);
    for (int64_t j = 0; j < m; j++) fold[list[j]] = (int)(j % folds);
    free(list);
    return 0;
}

int regress_few_shot(int64_t n_subj, const int *fold, int f, int64_t n, uint64_t seed,
                     int repeat, uint8_t *use, bgfm_err *e) {
    memset(use, 0, (size_t)n_subj);
    int64_t *list = bgfm_malloc(e, (size_t)(n_subj ? n_subj : 1) * sizeof *list,
                                "few-shot subjects");
    if (!list) return BGFM_ENOMEM;
    int64_t m = 0;
    for (int64_t s = 0; s < n_subj; s++)
        if (fold[s] >= 0 && fold[s] != f) list[m++] = s;
    rng_stream r;
    rng_init(&r, seed, RNG_PROBE, 4, (uint64_t)f + ((uint64_t)repeat << 32), 0);
    rng_shuffle_i64(&r, list, m);
    int64_t take = (n <= 0 || n > m) ? m : n;
    for (int64_t j = 0; j < take; j++) use[list[j]] = 1;
    free(list);
    return 0;
}

double regress_r2(const double *y, const double *p, int64_t n) {
    if (n < 2) return (double)NAN;
    double mu = 0, sse = 0, sst = 0;
    for (int64_t i = 0; i < n; i++) mu += y[i];
    mu /= (double)n;
    for (int64_t i = 0; i < n; i++) {
        sse += (y[i] - p[i]) * (y[i] - p[i]);
        sst += (y[i] - mu) * (y[i] - mu);
    }
    return sst > 0 ? 1.0 - sse / sst : (double)NAN;
}

double regress_pearson(const double *y, const double *p, int64_t n) {
    if (n < 2) return (double)NAN;
    double my = 0, mp = 0, syy = 0, spp = 0, syp = 0;
    for (int64_t i = 0; i < n; i++) my += y[i], mp += p[i];
    my /= (double)n;
    mp /= (double)n;
    for (int64_t i = 0; i < n; i++) {
        double a = y[i] - my, b = p[i] - mp;
        syy += a * a;
        spp += b * b;
        syp += a * b;
    }
    return syy > 0 && spp > 0 ? syp / sqrt(syy * spp) : (double)NAN;
}

int regress_cell(const double *X, int64_t n_subj, int64_t D, const double *C, int q,
                 const double *y, const int *fold, int f, const uint8_t *use,
                 const uint8_t *present, const double *alphas, int n_alpha, double *pred,
                 double out[REGRESS_NOUT], bgfm_err *e) {
    int64_t ntr = 0, nte = 0;
    for (int64_t s = 0; s < n_subj; s++) {
        if (present && !present[s]) continue;
        if (fold[s] == f) nte++;
        else if (fold[s] >= 0 && use[s]) ntr++;
    }
    if (ntr < 2 || nte == 0)
        return bgfm_fail(e, BGFM_EDATA, "probe: regression fold %d has %lld training and %lld "
                         "test subjects; every fold needs 2 and 1", f, (long long)ntr,
                         (long long)nte);
    double *Xtr = bgfm_malloc(e, (size_t)(ntr * D) * sizeof *Xtr, "regression train");
    double *Xte = bgfm_malloc(e, (size_t)(nte * D) * sizeof *Xte, "regression test");
    double *ytr = bgfm_malloc(e, (size_t)ntr * sizeof *ytr, "regression train");
    double *yte = bgfm_malloc(e, (size_t)nte * sizeof *yte, "regression test");
    double *pte = bgfm_malloc(e, (size_t)nte * sizeof *pte, "regression test");
    int64_t *ste = bgfm_malloc(e, (size_t)nte * sizeof *ste, "regression test");
    size_t zq = (size_t)(q > 0 ? q : 1);
    double *Ctr = bgfm_malloc(e, (size_t)ntr * zq * sizeof *Ctr, "regression confounds");
    double *Cte = bgfm_malloc(e, (size_t)nte * zq * sizeof *Cte, "regression confounds");
    ridge_model rm;
    memset(&rm, 0, sizeof rm);
    int rc = 0;
    if (!Xtr || !Xte || !ytr || !yte || !pte || !ste || !Ctr || !Cte) {
        rc = BGFM_ENOMEM;
        goto done;
    }
    int64_t a = 0, b = 0;
    for (int64_t s = 0; s < n_subj; s++) {
        if (present && !present[s]) continue;
        if (fold[s] == f) {
            memcpy(Xte + b * D, X + s * D, (size_t)D * sizeof *X);
            if (q > 0) memcpy(Cte + b * q, C + s * q, zq * sizeof *C);
            yte[b] = y[s];
            ste[b++] = s;
        } else if (fold[s] >= 0 && use[s]) {
            memcpy(Xtr + a * D, X + s * D, (size_t)D * sizeof *X);
            if (q > 0) memcpy(Ctr + a * q, C + s * q, zq * sizeof *C);
            ytr[a++] = y[s];
        }
    }
    if ((rc = deconfound(Xtr, ntr, Ctr, Xte, nte, Cte, D, q, e))) goto done;
    if ((rc = ridge_fit(&rm, Xtr, ntr, D, ytr, alphas, n_alpha, NULL, e))) goto done;
    if ((rc = ridge_predict(&rm, Xte, nte, pte, e))) goto done;
    if (pred)
        for (int64_t j = 0; j < nte; j++) pred[ste[j]] = pte[j];
    out[REGRESS_R2] = regress_r2(yte, pte, nte);
    out[1] = rm.alpha;
    out[2] = (double)ntr;
    double ym = 0;
    for (int64_t j = 0; j < ntr; j++) ym += ytr[j];
    for (int64_t j = 0; j < nte; j++) pte[j] = ym / (double)ntr;
    out[REGRESS_NULL_R2] = regress_r2(yte, pte, nte);
done:
    ridge_free(&rm);
    free(Xtr);
    free(Xte);
    free(ytr);
    free(yte);
    free(pte);
    free(ste);
    free(Ctr);
    free(Cte);
    return rc;
}
