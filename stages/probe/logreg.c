/* logreg.c: L2-regularised logistic regression by L-BFGS (logreg.h), with the exact
 * row-space reduction for D > n (Gram matrix eigendecomposition, LAPACKE_dsyevd).
 * Not the cross-validation protocol (probe.c) and not the metrics (metrics.c). */
#include "bgfm/logreg.h"

#include <cblas.h>
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "bgfm/metrics.h"

#define LBFGS_HIST 10

typedef struct lr_prob {
    const double *Z; /* (n, p) */
    int64_t n, p;
    const int *y;
    int K, nr;
    double C;
    double *S; /* (n, nr) scratch */
} lr_prob;

static double softplus(double s) { return s > 0 ? s + log1p(exp(-s)) : log1p(exp(s)); }

/* Objective and gradient at th = [W (nr, p) | b (nr)]. */
static double lr_fg(const lr_prob *pb, const double *th, double *g) {
    int64_t n = pb->n, p = pb->p;
    int nr = pb->nr;
    const double *W = th, *b = th + (int64_t)nr * p;
    double *S = pb->S;
    if (n > 0)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, nr, (int)p, 1.0, pb->Z,
                    (int)p, W, (int)p, 0.0, S, nr);
    double loss = 0;
    for (int64_t i = 0; i < n; i++) {
        double *s = S + i * nr;
        int yi = pb->y[i];
        if (nr == 1) {
            double v = s[0] + b[0];
            loss += softplus(v) - (yi == 1 ? v : 0.0);
            double sg = v >= 0 ? 1.0 / (1.0 + exp(-v)) : exp(v) / (1.0 + exp(v));
            s[0] = pb->C * (sg - (yi == 1));
        } else {
            double mx = -INFINITY;
            for (int k = 0; k < nr; k++) {
                s[k] += b[k];
                if (s[k] > mx) mx = s[k];
            }
            double z = 0;
            for (int k = 0; k < nr; k++) z += exp(s[k] - mx);
            double lse = mx + log(z);
            loss += lse - s[yi];
            for (int k = 0; k < nr; k++) s[k] = pb->C * (exp(s[k] - lse) - (k == yi));
        }
    }
    double reg = 0;
    for (int64_t j = 0; j < (int64_t)nr * p; j++) reg += W[j] * W[j];
    /* gW = W + R^T Z, gb = colsum R */
    memcpy(g, W, (size_t)((int64_t)nr * p) * sizeof *g);
    if (n > 0)
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nr, (int)p, (int)n, 1.0, S, nr,
                    pb->Z, (int)p, 1.0, g, (int)p);
    double *gb = g + (int64_t)nr * p;
    for (int k = 0; k < nr; k++) gb[k] = 0;
    for (int64_t i = 0; i < n; i++)
        for (int k = 0; k < nr; k++) gb[k] += S[i * nr + k];
    return 0.5 * reg + pb->C * loss;
}

static double dot(const double *a, const double *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static double amax(const double *a, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        if (fabs(a[i]) > s) s = fabs(a[i]);
    return s;
}

/* L-BFGS with Armijo backtracking from th = 0. Writes th; returns 0 or ENOMEM. */
static int lbfgs(const lr_prob *pb, double *th, int max_iter, double tol, logreg_model *out,
                 bgfm_err *e) {
    int64_t d = (int64_t)pb->nr * (pb->p + 1);
    int m = LBFGS_HIST;
    double *buf = bgfm_calloc(e, (size_t)(d * (2 * m + 4)), sizeof *buf, "L-BFGS");
    if (!buf) return BGFM_ENOMEM;
    double *g = buf, *gn = g + d, *xn = gn + d, *dir = xn + d, *S = dir + d, *Y = S + m * d;
    double rho[LBFGS_HIST], al[LBFGS_HIST];
    int hn = 0, hs = 0; /* history count, start slot */
    memset(th, 0, (size_t)d * sizeof *th);
    double f = lr_fg(pb, th, g);
    out->converged = 0;
    int it = 0;
    for (; it < max_iter; it++) {
        if (amax(g, d) <= tol) {
            out->converged = 1;
            break;
        }
        /* two-loop recursion: dir = -H g */
        for (int64_t j = 0; j < d; j++) dir[j] = -g[j];
        for (int q = hn - 1; q >= 0; q--) {
            int s = (hs + q) % m;
            al[s] = rho[s] * dot(S + s * d, dir, d);
            for (int64_t j = 0; j < d; j++) dir[j] -= al[s] * Y[s * d + j];
        }
        if (hn > 0) {
            int s = (hs + hn - 1) % m;
            double gam = dot(S + s * d, Y + s * d, d) / dot(Y + s * d, Y + s * d, d);
            for (int64_t j = 0; j < d; j++) dir[j] *= gam;
        }
        for (int q = 0; q < hn; q++) {
            int s = (hs + q) % m;
            double be = rho[s] * dot(Y + s * d, dir, d);
            for (int64_t j = 0; j < d; j++) dir[j] += (al[s] - be) * S[s * d + j];
        }
        double gd = dot(g, dir, d);
        if (!(gd < 0)) { /* not a descent direction: restart from steepest descent */
            hn = 0;
            for (int64_t j = 0; j < d; j++) dir[j] = -g[j];
            gd = -dot(g, g, d);
        }
        double step = 1.0;
        if (hn == 0) {
            double gnorm = sqrt(dot(g, g, d));
            if (gnorm > 1.0) step = 1.0 / gnorm;
        }
        double fn = f;
        int ok = 0;
        for (int ls = 0; ls < 60; ls++) {
            for (int64_t j = 0; j < d; j++) xn[j] = th[j] + step * dir[j];
            fn = lr_fg(pb, xn, gn);
            if (isfinite(fn) && fn <= f + 1e-4 * step * gd) {
                ok = 1;
                break;
            }
            /* at the rounding floor of f, Armijo cannot see the decrease: accept a step
             * that leaves f unchanged to rounding and shrinks the gradient */
            if (isfinite(fn) && fabs(fn - f) <= 8 * DBL_EPSILON * fabs(f) &&
                amax(gn, d) < amax(g, d)) {
                ok = 1;
                break;
            }
            step *= 0.5;
        }
        if (!ok) break; /* no progress possible at this precision */
        /* history update */
        int s = hn < m ? (hs + hn) % m : hs;
        double sy = 0, yy = 0;
        for (int64_t j = 0; j < d; j++) {
            double sj = xn[j] - th[j], yj = gn[j] - g[j];
            S[s * d + j] = sj;
            Y[s * d + j] = yj;
            sy += sj * yj;
            yy += yj * yj;
        }
        if (sy > 1e-12 * yy && yy > 0) {
            rho[s] = 1.0 / sy;
            if (hn < m) hn++;
            else hs = (hs + 1) % m;
        }
        memcpy(th, xn, (size_t)d * sizeof *th);
        memcpy(g, gn, (size_t)d * sizeof *g);
        f = fn;
    }
    if (!out->converged && amax(g, d) <= tol) out->converged = 1;
    out->iters = it;
    out->objective = f;
    free(buf);
    return 0;
}

void logreg_free(logreg_model *m) {
    free(m->W);
    free(m->b);
    free(m->mu);
    free(m->sd);
    memset(m, 0, sizeof *m);
}

int logreg_fit(logreg_model *m, const double *X, int64_t n, int64_t D, const int *y, int K,
               const logreg_opts *o, bgfm_err *e) {
    memset(m, 0, sizeof *m);
    if (K < 2 || D < 1 || n < 1 || !(o->C > 0) || o->max_iter < 0)
        return bgfm_fail(e, BGFM_EUSAGE, "logreg: need K >= 2 classes, D >= 1 features, n >= 1 "
                         "samples and C > 0 (got K %d, D %lld, n %lld, C %g)", K, (long long)D,
                         (long long)n, o->C);
    for (int64_t i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= K)
            return bgfm_fail(e, BGFM_EUSAGE, "logreg: label %d of sample %lld is outside 0..%d",
                             y[i], (long long)i, K - 1);
    int nr = K == 2 ? 1 : K;
    m->K = K;
    m->nr = nr;
    m->D = D;
    m->W = bgfm_calloc(e, (size_t)(nr * D), sizeof *m->W, "logreg weights");
    m->b = bgfm_calloc(e, (size_t)nr, sizeof *m->b, "logreg weights");
    m->mu = bgfm_calloc(e, (size_t)D, sizeof *m->mu, "logreg scaling");
    m->sd = bgfm_calloc(e, (size_t)D, sizeof *m->sd, "logreg scaling");
    double *Xs = bgfm_malloc(e, (size_t)(n * D) * sizeof *Xs, "logreg data");
    double *Zr = NULL, *G = NULL, *lam = NULL, *th = NULL, *Sc = NULL, *A = NULL;
    int rc = 0;
    if (!m->W || !m->b || !m->mu || !m->sd || !Xs) {
        rc = BGFM_ENOMEM;
        goto done;
    }
    for (int64_t j = 0; j < D; j++) m->sd[j] = 1.0;
    if (o->standardize) metrics_col_scale(X, n, D, m->mu, m->sd);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < D; j++) Xs[i * D + j] = (X[i * D + j] - m->mu[j]) / m->sd[j];
    lr_prob pb = {Xs, n, D, y, K, nr, o->C, NULL};
    int64_t r = D;
    if (D > n) { /* exact reduction to the row space: Z = U_r Lambda_r^1/2 */
        G = bgfm_calloc(e, (size_t)(n * n), sizeof *G, "logreg Gram");
        lam = bgfm_calloc(e, (size_t)n, sizeof *lam, "logreg Gram");
        Zr = bgfm_calloc(e, (size_t)(n * n), sizeof *Zr, "logreg Gram");
        if (!G || !lam || !Zr) {
            rc = BGFM_ENOMEM;
            goto done;
        }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)n, (int)D, 1.0, Xs, (int)D, 0.0,
                    G, (int)n);
        lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)n, G,
                                         (lapack_int)n, lam);
        if (info != 0) {
            rc = bgfm_fail(e, BGFM_ENUMERIC, "logreg: eigendecomposition of the %lld x %lld Gram "
                           "matrix failed (LAPACK info %d)", (long long)n, (long long)n, (int)info);
            goto done;
        }
        /* eigenvalues ascending; keep those above a relative floor (columns first..n-1) */
        double lmax = lam[n - 1] > 0 ? lam[n - 1] : 0;
        int64_t first = 0;
        while (first < n && !(lam[first] > 1e-10 * lmax)) first++;
        r = n - first;
        for (int64_t i = 0; i < n; i++)
            for (int64_t c = 0; c < r; c++)
                Zr[i * r + c] = G[i * n + first + c] * sqrt(lam[first + c]);
        pb.Z = Zr;
        pb.p = r;
        /* keep U_r, Lambda_r in G's first columns for the back-map: G[i*n + first + c] */
        if (r == 0) { /* all-constant data: intercept-only fit on a zero feature */
            pb.p = 1;
            memset(Zr, 0, (size_t)n * sizeof *Zr);
        }
        int64_t p = pb.p, dth = (int64_t)nr * (p + 1);
        th = bgfm_calloc(e, (size_t)dth, sizeof *th, "logreg");
        Sc = bgfm_calloc(e, (size_t)(n * nr), sizeof *Sc, "logreg");
        A = bgfm_calloc(e, (size_t)(nr * n), sizeof *A, "logreg");
        if (!th || !Sc || !A) {
            rc = BGFM_ENOMEM;
            goto done;
        }
        pb.S = Sc;
        if ((rc = lbfgs(&pb, th, o->max_iter, o->tol, m, e))) goto done;
        /* W = (beta Lambda^-1/2) U_r^T Xs: A (nr, n) = sum_c beta[k,c]/sqrt(lam) U[i, c] */
        for (int k = 0; k < nr; k++)
            for (int64_t i = 0; i < n; i++) {
                double s = 0;
                for (int64_t c = 0; c < r; c++)
                    s += th[k * p + c] / sqrt(lam[first + c]) * G[i * n + first + c];
                A[k * n + i] = s;
            }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, (int)D, (int)n, 1.0, A, (int)n,
                    Xs, (int)D, 0.0, m->W, (int)D);
        memcpy(m->b, th + (int64_t)nr * p, (size_t)nr * sizeof *m->b);
    } else {
        int64_t dth = (int64_t)nr * (D + 1);
        th = bgfm_calloc(e, (size_t)dth, sizeof *th, "logreg");
        Sc = bgfm_calloc(e, (size_t)(n * nr), sizeof *Sc, "logreg");
        if (!th || !Sc) {
            rc = BGFM_ENOMEM;
            goto done;
        }
        pb.S = Sc;
        if ((rc = lbfgs(&pb, th, o->max_iter, o->tol, m, e))) goto done;
        memcpy(m->W, th, (size_t)(nr * D) * sizeof *m->W);
        memcpy(m->b, th + (int64_t)nr * D, (size_t)nr * sizeof *m->b);
    }
done:
    free(Xs);
    free(Zr);
    free(G);
    free(lam);
    free(th);
    free(Sc);
    free(A);
    if (rc) logreg_free(m);
    return rc;
}

int logreg_predict_proba(const logreg_model *m, const double *X, int64_t n, double *P,
                         bgfm_err *e) {
    int64_t D = m->D;
    int nr = m->nr, K = m->K;
    double *Z = bgfm_malloc(e, (size_t)((n ? n : 1) * D) * sizeof *Z, "logreg predict");
    double *S = bgfm_malloc(e, (size_t)((n ? n : 1) * nr) * sizeof *S, "logreg predict");
    if (!Z || !S) {
        free(Z);
        free(S);
        return BGFM_ENOMEM;
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < D; j++) Z[i * D + j] = (X[i * D + j] - m->mu[j]) / m->sd[j];
    if (n > 0)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, nr, (int)D, 1.0, Z, (int)D,
                    m->W, (int)D, 0.0, S, nr);
    for (int64_t i = 0; i < n; i++) {
        double *s = S + i * nr, *pi = P + i * K;
        if (nr == 1) {
            double v = s[0] + m->b[0];
            double sg = v >= 0 ? 1.0 / (1.0 + exp(-v)) : exp(v) / (1.0 + exp(v));
            pi[0] = 1.0 - sg;
            pi[1] = sg;
        } else {
            double mx = -INFINITY, z = 0;
            for (int k = 0; k < K; k++) {
                s[k] += m->b[k];
                if (s[k] > mx) mx = s[k];
            }
            for (int k = 0; k < K; k++) z += exp(s[k] - mx);
            for (int k = 0; k < K; k++) pi[k] = exp(s[k] - mx) / z;
        }
    }
    free(Z);
    free(S);
    return 0;
}
