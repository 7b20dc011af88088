/* metrics.c: ROC AUC (mid-rank Mann-Whitney), accuracy, balanced accuracy, mean and sd,
 * column scaling for standardised features, the chi-squared test of a table (metrics.h).
 * Not the probe protocol (probe.c). */
#include "bgfm/metrics.h"

#include <math.h>
#include <stdlib.h>

typedef struct sv {
    double s;
    int64_t i;
} sv;

static int sv_cmp(const void *a, const void *b) {
    const sv *x = a, *y = b;
    if (x->s < y->s) return -1;
    if (x->s > y->s) return 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* metrics_auc into *auc, its sort buffer through e: 0, or BGFM_ENOMEM (recorded) */
static int auc_e(const double *score, const int *pos, int64_t n, double *auc, bgfm_err *e) {
    int64_t np = 0;
    for (int64_t i = 0; i < n; i++) np += pos[i] != 0;
    int64_t nn = n - np;
    *auc = (double)NAN;
    if (np == 0 || nn == 0) return 0;
    sv *v = bgfm_malloc(e, (size_t)n * sizeof *v, "AUC ranks");
    if (!v) return BGFM_ENOMEM;
    for (int64_t i = 0; i < n; i++) v[i] = (sv){score[i], i};
    qsort(v, (size_t)n, sizeof *v, sv_cmp);
    double rsum = 0; /* sum of the positives' mid-ranks (1-based) */
    for (int64_t a = 0; a < n;) {
        int64_t b = a;
        while (b + 1 < n && v[b + 1].s == v[a].s) b++;
        double mid = 0.5 * (double)(a + b) + 1.0;
        for (int64_t j = a; j <= b; j++)
            if (pos[v[j].i]) rsum += mid;
        a = b + 1;
    }
    free(v);
    double u = rsum - 0.5 * (double)np * (double)(np + 1);
    *auc = u / ((double)np * (double)nn);
    return 0;
}

double metrics_auc(const double *score, const int *pos, int64_t n, bgfm_err *e) {
    double auc;
    auc_e(score, pos, n, &auc, e);
    return auc;
}

int metrics_auc_ovr(const double *P, const int *y, int64_t n, int K, double *auc, bgfm_err *e) {
    *auc = (double)NAN;
    double *s = bgfm_malloc(e, (size_t)(n ? n : 1) * sizeof *s, "AUC scores");
    int *p = bgfm_malloc(e, (size_t)(n ? n : 1) * sizeof *p, "AUC classes");
    int rc = s && p ? 0 : BGFM_ENOMEM;
    if (!rc && K == 2) {
        for (int64_t i = 0; i < n; i++) s[i] = P[i * 2 + 1], p[i] = y[i] == 1;
        rc = auc_e(s, p, n, auc, e);
    }
    double sum = 0;
    int cnt = 0;
    for (int k = 0; !rc && K != 2 && k < K; k++) {
        for (int64_t i = 0; i < n; i++) s[i] = P[i * K + k], p[i] = y[i] == k;
        double a;
        rc = auc_e(s, p, n, &a, e);
        if (!rc && !isnan(a)) sum += a, cnt++;
    }
    if (!rc && K != 2) *auc = cnt ? sum / cnt : (double)NAN;
    free(s);
    free(p);
    return rc;
}

double metrics_accuracy(const int *pred, const int *y, int64_t n) {
    if (n == 0) return (double)NAN;
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++) c += pred[i] == y[i];
    return (double)c / (double)n;
}

double metrics_balanced_accuracy(const int *pred, const int *y, int64_t n, int K) {
    double sum = 0;
    int cnt = 0;
    for (int k = 0; k < K; k++) {
        int64_t tot = 0, hit = 0;
        for (int64_t i = 0; i < n; i++)
            if (y[i] == k) tot++, hit += pred[i] == k;
        if (tot) sum += (double)hit / (double)tot, cnt++;
    }
    return cnt ? sum / cnt : (double)NAN;
}

int metrics_mean_sd(const double *v, int n, double *mean, double *sd) {
    int c = 0;
    double s = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) s += v[i], c++;
    if (!c) {
        *mean = *sd = (double)NAN;
        return 0;
    }
    double m = s / c, q = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) q += (v[i] - m) * (v[i] - m);
    *mean = m;
    *sd = c > 1 ? sqrt(q / (c - 1)) : 0.0;
    return c;
}

void metrics_col_scale(const double *X, int64_t n, int64_t D, double *mu, double *sd) {
    for (int64_t j = 0; j < D; j++) mu[j] = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < D; j++) mu[j] += X[i * D + j];
    for (int64_t j = 0; j < D; j++) mu[j] /= (double)n, sd[j] = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < D; j++) {
            double t = X[i * D + j] - mu[j];
            sd[j] += t * t;
        }
    for (int64_t j = 0; j < D; j++) {
        double s = sqrt(sd[j] / (double)n);
        sd[j] = s > 1e-12 * fmax(1.0, fabs(mu[j])) ? s : 1.0;
    }
}

double metrics_chi2_sf(double x, int dof) {
    if (dof < 1 || isnan(x)) return NAN;
    if (x <= 0) return 1.0;
    const double y = 0.5 * x;
    if (isinf(y)) return 0.0;
    double sum = 0, term;
    if (dof % 2 == 0) { /* Q(m, y) = e^-y sum_{k<m} y^k / k! */
        term = 1.0;
        for (int k = 0; k < dof / 2; k++) {
            sum += term;
            term *= y / (k + 1);
        }
        return exp(-y) * sum;
    }
    /* Q(m + 1/2, y) = erfc(sqrt y) + e^-y sum_{k=1..m} y^(k-1/2) / Gamma(k + 1/2) */
    term = sqrt(y) / (0.5 * sqrt(M_PI));
    for (int k = 1; k <= dof / 2; k++) {
        sum += term;
        term *= y / (k + 0.5);
    }
    return erfc(sqrt(y)) + exp(-y) * sum;
}

int metrics_chi2_table(const int64_t *n, int r, int c, metrics_chi2 *out) {
    *out = (metrics_chi2){NAN, NAN, NAN, 0};
    double N = 0;
    int rr = 0, cc = 0;
    for (int i = 0; i < r; i++) {
        int64_t t = 0;
        for (int j = 0; j < c; j++) t += n[(int64_t)i * c + j];
        rr += t > 0;
        N += (double)t;
    }
    for (int j = 0; j < c; j++) {
        int64_t t = 0;
        for (int i = 0; i < r; i++) t += n[(int64_t)i * c + j];
        cc += t > 0;
    }
    if (rr < 2 || cc < 2) return 0;
    double chi2 = 0;
    for (int i = 0; i < r; i++) {
        double ri = 0;
        for (int j = 0; j < c; j++) ri += (double)n[(int64_t)i * c + j];
        for (int j = 0; j < c && ri > 0; j++) {
            double cj = 0;
            for (int q = 0; q < r; q++) cj += (double)n[(int64_t)q * c + j];
            if (cj == 0) continue;
            double ex = ri * cj / N, d = (double)n[(int64_t)i * c + j] - ex;
            chi2 += d * d / ex;
        }
    }
    out->dof = (rr - 1) * (cc - 1);
    out->chi2 = chi2;
    out->p = metrics_chi2_sf(chi2, out->dof);
    out->cramers_v = sqrt(chi2 / (N * (double)(rr < cc ? rr - 1 : cc - 1)));
    return out->dof;
}
