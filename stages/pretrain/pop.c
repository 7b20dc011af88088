/* pop.c: fitting the population head (pop.h; docs/model.md section 11). The principal
 * subspace comes from the leading eigenvectors of the Gram matrix of the centred rows (n
 * graphs are far fewer than the triangle's T entries; pca_gram_top, exact or, for many
 * graphs, randomised); the discriminant is one symmetric-definite
 * eigenproblem (LAPACK dsygvd) in that subspace; one product maps its directions back to
 * the triangle. */
#include "bgfm/pop.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/log.h"
#include "bgfm/pca.h"
#include "bgfm/pop_scan.h"
#include "bgfm/rng.h"

/* ---- pop_rank: auto (pop.h) ---- */

typedef struct keyed {
    uint64_t key;
    int64_t scan;
} keyed;

static int keyed_cmp(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->scan < y->scan ? -1 : x->scan > y->scan;
}

static const double ladder[POP_HO_STEPS] = POP_HO_LADDER; /* the thresholds, pop.h */

/* side[i] (0 or 1) of every row for split k: the scans ordered by
 * rng_splitmix64(scan + k 0x9e3779b97f4a7c15), the first half of them 0. *hmin: the
 * smaller half's scans. */
static int split_rows(const int64_t *scan, int64_t n, int k, signed char *side, int64_t *hmin,
                      bgfm_err *e) {
    int64_t *u = bgfm_malloc(e, (size_t)n * sizeof *u, "population head halves");
    keyed *kv = bgfm_malloc(e, (size_t)n * sizeof *kv, "population head halves");
    if (!u || !kv) {
        free(u), free(kv);
        return -1;
    }
    memcpy(u, scan, (size_t)n * sizeof *u);
    qsort(u, (size_t)n, sizeof *u, pop_i64_cmp);
    int64_t S = 0;
    for (int64_t i = 0; i < n; i++)
        if (i == 0 || u[i] != u[i - 1]) u[S++] = u[i];
    for (int64_t j = 0; j < S; j++)
        kv[j] = (keyed){rng_splitmix64((uint64_t)u[j] + (uint64_t)k * 0x9e3779b97f4a7c15ULL), u[j]};
    qsort(kv, (size_t)S, sizeof *kv, keyed_cmp);
    for (int64_t j = 0; j < S / 2; j++) u[j] = kv[j].scan; /* the first half, sorted */
    qsort(u, (size_t)(S / 2), sizeof *u, pop_i64_cmp);
    for (int64_t i = 0; i < n; i++)
        side[i] = bsearch(&scan[i], u, (size_t)(S / 2), sizeof *u, pop_i64_cmp) ? 0 : 1;
    *hmin = S / 2;
    free(u), free(kv);
    return 0;
}

/* One half's scatter (scatter, recentred) and its scans' mean rows: computed once per
 * split, read by both fits and by the reproducibility. */
typedef struct half_cov {
    double *Sb, *Sw, *G;
    int64_t scans;
} half_cov;

/* The held-out counts of one fit at each threshold of the ladder (cnt): the discriminant of
 * half a (r0 axes) scored on half b; its POP_RP_DIRS leading directions into lead (r0 x
 * POP_RP_DIRS, column j the j-th). 0, -1 on ENOMEM / a solver failure (e set), -2 when not
 * measurable. */
static int held_out_count(const half_cov *a, const half_cov *b, int r0, int D, double shrink,
                          int cnt[POP_HO_STEPS], double *lead, bgfm_err *e) {
    const size_t rr = (size_t)r0 * (size_t)r0;
    double *Sa = bgfm_malloc(e, rr * sizeof *Sa, "population head halves");
    double *Wa = bgfm_malloc(e, rr * sizeof *Wa, "population head halves");
    double *ev = bgfm_malloc(e, (size_t)r0 * sizeof *ev, "population head halves");
    double *rho = bgfm_malloc(e, (size_t)D * sizeof *rho, "population head halves");
    double *u = bgfm_malloc(e, (size_t)r0 * sizeof *u, "population head halves");
    const double *Sb = b->Sb, *Wb = b->Sw;
    int out = Sa && Wa && ev && rho && u ? 0 : -1;
    if (!out) { /* the solver overwrites its operands */
        memcpy(Sa, a->Sb, rr * sizeof *Sa);
        memcpy(Wa, a->Sw, rr * sizeof *Wa);
    }
    if (!out && pop_shrink_within(Wa, r0, shrink)) out = -2;
    if (!out) {
        lapack_int info = LAPACKE_dsygvd(LAPACK_ROW_MAJOR, 1, 'V', 'U', r0, Sa, r0, Wa, r0, ev);
        if (info) {
            (void)bgfm_fail(e, BGFM_ENUMERIC, "population head (pop_rank: auto): the generalised "
                            "eigensolver (dsygvd) failed (info %d) in %d dimensions", (int)info, r0);
            out = -1;
        }
    }
    for (int c = 0; !out && c < r0; c++)
        for (int j = 0; j < POP_RP_DIRS; j++) lead[c * POP_RP_DIRS + j] = Sa[c * r0 + (r0 - 1 - j)];
    for (int k = 0; !out && k < D; k++) { /* v: the k-th largest eigenvector, a column of Sa */
        const int col = r0 - 1 - k;
        double q[2];
        for (int c = 0; c < 2; c++) { /* v'Sb v, v'Sw v on the other half */
            cblas_dgemv(CblasRowMajor, CblasNoTrans, r0, r0, 1.0, c ? Wb : Sb, r0, Sa + col, r0,
                        0.0, u, 1);
            q[c] = cblas_ddot(r0, Sa + col, r0, u, 1);
        }
        const double num = q[0], den = q[1];
        if (!(den > 0) || !isfinite(num)) out = -2;
        else rho[k] = num / den;
    }
    if (!out) {
        double *bulk = Sa; /* the eigenvectors are read: reuse as scratch */
        const int nb = D - POP_HO_LEAD;
        memcpy(bulk, rho + POP_HO_LEAD, (size_t)nb * sizeof *bulk);
        const double med = pop_median(bulk, nb);
        if (!(med > 0)) out = -2;
        for (int t = 0; !out && t < POP_HO_STEPS; t++)
            for (cnt[t] = 0; cnt[t] < POP_HO_LEAD && rho[cnt[t]] >= ladder[t] * med; cnt[t]++) {}
    }
    free(Sa), free(Wa), free(ev), free(rho), free(u);
    return out;
}

int pop_plateau_rank(const int sum[POP_HO_STEPS], int *step) {
    const int F = POP_HO_FITS;
    *step = -1;
    for (int t = 0; t + 1 < POP_HO_STEPS; t++) {
        const int lo = sum[t], hi = sum[t + 1];
        const int r = (2 * hi + F) / (2 * F); /* the mean at the upper one, rounded half up */
        if (lo - hi <= POP_HO_FLAT && lo <= POP_HO_CAP * F && r >= 2) {
            *step = t;
            return r;
        }
    }
    return 0;
}

/* The smallest canonical correlation between the first k columns of X and of Y (m x p,
 * row-major, centred in place), for k = 1 .. p, added to acc[k-1]. X and Y are
 * overwritten. 0, -1 with e set. */
static int min_canon_add(double *X, double *Y, int64_t m, int p, double *acc, bgfm_err *e) {
    double tau[POP_RP_DIRS], B[POP_RP_DIRS * POP_RP_DIRS], Bk[POP_RP_DIRS * POP_RP_DIRS],
        sv[POP_RP_DIRS], U[POP_RP_DIRS * POP_RP_DIRS], Vt[POP_RP_DIRS * POP_RP_DIRS];
    for (int s = 0; s < 2; s++) { /* Householder QR: the first k columns of Q span X's first k */
        double *A = s ? Y : X;
        for (int j = 0; j < p; j++) {
            double mu = 0;
            for (int64_t i = 0; i < m; i++) mu += A[i * p + j];
            for (int64_t i = 0; i < m; i++) A[i * p + j] -= mu / (double)m;
        }
        lapack_int info = LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, (lapack_int)m, p, A, p, tau);
        if (!info) info = LAPACKE_dorgqr(LAPACK_ROW_MAJOR, (lapack_int)m, p, p, A, p, tau);
        if (info) {
            (void)bgfm_fail(e, BGFM_ENUMERIC, "population head (pop_rank: auto): the QR "
                            "factorisation failed (info %d) on %lld x %d scores", (int)info,
                            (long long)m, p);
            return -1;
        }
    }
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, p, p, (int)m, 1.0, X, p, Y, p, 0.0, B, p);
    for (int k = 1; k <= p; k++) {
        for (int a = 0; a < k; a++) memcpy(Bk + a * k, B + a * p, (size_t)k * sizeof *Bk);
        lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'N', k, k, Bk, k, sv, U, k, Vt, k);
        if (info) {
            (void)bgfm_fail(e, BGFM_ENUMERIC, "population head (pop_rank: auto): the SVD "
                            "(dgesdd) failed (info %d) in %d dimensions", (int)info, k);
            return -1;
        }
        acc[k - 1] += sv[k - 1];
    }
    return 0;
}

/* One split's reproducibility (pop.h): for each half, its scans' mean rows (h[].G, recentred:
 * the canonical correlations do not see a shift) scored by both halves' leading directions
 * (lead[0], lead[1]), the smallest canonical correlations added to acc. 0, -1 with e set. */
static int split_repro(const half_cov h[2], int r0, double *const lead[2], double *acc,
                       bgfm_err *e) {
    const int p = POP_RP_DIRS;
    const int64_t most = h[0].scans > h[1].scans ? h[0].scans : h[1].scans;
    double *X = bgfm_malloc(e, (size_t)most * (size_t)p * sizeof *X, "population head halves");
    double *Y = bgfm_malloc(e, (size_t)most * (size_t)p * sizeof *Y, "population head halves");
    int rc = X && Y ? 0 : -1;
    for (int k = 0; k < 2 && !rc; k++) {
        const int S = (int)h[k].scans;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, S, p, r0, 1.0, h[k].G, r0, lead[0],
                    p, 0.0, X, p);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, S, p, r0, 1.0, h[k].G, r0, lead[1],
                    p, 0.0, Y, p);
        rc = min_canon_add(X, Y, S, p, acc, e);
    }
    free(X), free(Y);
    return rc;
}

int pop_repro_rank(const double curve[POP_RP_DIRS]) {
    int best = 2;
    for (int k = 3; k <= POP_RP_DIRS; k++)
        if (curve[k - 1] > curve[best - 1]) best = k;
    return curve[best - 1] >= POP_RP_MIN ? best : 0;
}

/* The held-out rule (pop.h) on the scores Q (n, r0): the rank, or 0 when there is no
 * bulk to measure against (out->measured = 0) or no plateau; the mean counts and the
 * halves' reproducibility in out. -1 with e set. */
static int held_out_rank(const double *Q, int64_t n, int r0, const int64_t *scan, double shrink,
                         pop_rows_out *out, bgfm_err *e) {
    out->measured = 0, out->held_step = -1, out->repro_rank = 0;
    const size_t rr = (size_t)r0 * (size_t)r0;
    const char *what = "population head halves";
    signed char *side = bgfm_malloc(e, (size_t)n, what);
    double *lead[2];
    half_cov h[2];
    int sum[POP_HO_STEPS] = {0}, rc = side ? 0 : -1;
    for (int k = 0; k < 2; k++) {
        lead[k] = bgfm_malloc(e, (size_t)r0 * POP_RP_DIRS * sizeof(double), what);
        h[k] = (half_cov){bgfm_malloc(e, rr * sizeof(double), what),
                          bgfm_malloc(e, rr * sizeof(double), what),
                          bgfm_malloc(e, (size_t)n * (size_t)r0 * sizeof(double), what), 0};
        if (!lead[k] || !h[k].Sb || !h[k].Sw || !h[k].G) rc = -1;
    }
    double acc[POP_RP_DIRS] = {0};
    for (int k = 0; k < POP_HO_FITS / 2 && !rc; k++) {
        int64_t hmin = 0;
        if (split_rows(scan, n, k, side, &hmin, e)) {
            rc = -1;
            break;
        }
        int D = POP_HO_DIRS;
        if (D > r0) D = r0;
        if ((int64_t)D > hmin - 1) D = (int)(hmin - 1);
        if (D < 2 * POP_HO_LEAD) rc = -2;
        for (int w = 0; w < 2 && !rc; w++)
            if (pop_scatter(Q, n, r0, scan, side, w, 1, h[w].Sb, h[w].Sw, h[w].G, &h[w].scans, e) < 0)
                rc = -1;
        for (int fit = 0; fit < 2 && !rc; fit++) {
            int c[POP_HO_STEPS];
            if (!(rc = held_out_count(&h[fit], &h[1 - fit], r0, D, shrink, c, lead[fit], e)))
                for (int t = 0; t < POP_HO_STEPS; t++) sum[t] += c[t];
        }
        if (!rc) rc = split_repro(h, r0, lead, acc, e);
    }
    free(side);
    for (int k = 0; k < 2; k++) free(lead[k]), free(h[k].Sb), free(h[k].Sw), free(h[k].G);
    if (rc == -1) return -1;
    if (rc == -2) return 0;
    for (int t = 0; t < POP_HO_STEPS; t++) out->held_at[t] = sum[t] / (double)POP_HO_FITS;
    for (int k = 0; k < POP_RP_DIRS; k++) out->repro[k] = acc[k] / (double)POP_HO_FITS;
    out->repro_rank = pop_repro_rank(out->repro);
    out->measured = 1;
    return pop_plateau_rank(sum, &out->held_step);
}

/* Zc = Z less each row's site mean (mu, the mean of all rows, when there is one site);
 * mu the mean of all rows. -1 on ENOMEM. */
static int centre_rows(const float *Z, int64_t n, int64_t T, const int32_t *site, int sites,
                       double *mu, double *Zc, bgfm_err *e) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t q = 0; q < T; q++) mu[q] += (double)Z[i * T + q];
    for (int64_t q = 0; q < T; q++) mu[q] /= (double)n;
    const double *c = mu;
    double *sm = NULL;
    int64_t *cnt = NULL;
    if (site && sites > 1) {
        sm = bgfm_calloc(e, (size_t)sites * (size_t)T, sizeof *sm, "population head site means");
        cnt = bgfm_calloc(e, (size_t)sites, sizeof *cnt, "population head site means");
        if (!sm || !cnt) {
            free(sm), free(cnt);
            return -1;
        }
        for (int64_t i = 0; i < n; i++) {
            cnt[site[i]]++;
            for (int64_t q = 0; q < T; q++) sm[site[i] * T + q] += (double)Z[i * T + q];
        }
        for (int k = 0; k < sites; k++)
            for (int64_t q = 0; cnt[k] && q < T; q++) sm[k * T + q] /= (double)cnt[k];
    }
    for (int64_t i = 0; i < n; i++) {
        if (sm) c = sm + site[i] * T;
        for (int64_t q = 0; q < T; q++) Zc[i * T + q] = (double)Z[i * T + q] - c[q];
    }
    free(sm), free(cnt);
    return 0;
}

/* Rows V (k, T) fitted in double, as the model stores them: signs fixed (pca_fix_signs),
 * W = V in float and b = -V mu (the rows centred over the data of mean mu). */
static void store_rows(double *V, int k, int64_t T, const double *mu, float *W, float *b) {
    pca_fix_signs(V, k, T);
    for (int c = 0; c < k; c++) {
        double s = 0;
        for (int64_t q = 0; q < T; q++) {
            W[(int64_t)c * T + q] = (float)V[(int64_t)c * T + q];
            s += V[(int64_t)c * T + q] * mu[q];
        }
        b[c] = (float)-s;
    }
}

/* The npc leading principal axes of the centred rows Zc (n, T) as rows of Wp (npc, T):
 * unit variance over the rows (from the Gram matrix's m leading eigenvectors, columns of
 * K (n, m), eigenvalues lam largest first), signs fixed as pca_fix_signs does;
 * bp = -Wp mu. Axes of a negligible variance stay zero. -1 on ENOMEM. */
static int principal_rows(const double *Zc, const double *K, int m, const double *lam, int64_t n,
                          int64_t T, const double *mu, int npc, float *Wp, float *bp, bgfm_err *e) {
    int k = 0;
    while (k < npc && k < m && lam[k] > 1e-10 * lam[0] && lam[0] > 0) k++;
    if (k < 1) return 0;
    double *U = bgfm_malloc(e, (size_t)k * (size_t)n * sizeof *U, "population head axes");
    double *V = bgfm_malloc(e, (size_t)k * (size_t)T * sizeof *V, "population head axes");
    if (!U || !V) {
        free(U), free(V);
        return -1;
    }
    /* row c of V = Zc^T u_c sqrt(n) / lam_c: the axis Zc^T u_c / sqrt(lam_c) over the sd
     * sqrt(lam_c / n) of its scores */
    for (int c = 0; c < k; c++)
        for (int64_t i = 0; i < n; i++)
            U[c * n + i] = K[i * m + c] * sqrt((double)n) / lam[c];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k, (int)T, (int)n, 1.0, U, (int)n, Zc,
                (int)T, 0.0, V, (int)T);
    store_rows(V, k, T, mu, Wp, bp);
    free(U), free(V);
    return 0;
}

static const char *const site_words[] = {"none", "centre", "harmonise", "auto"}; /* POP_SITE_* */

const char *pop_site_name(int mode) {
    return mode >= 0 && mode < (int)(sizeof site_words / sizeof *site_words) ? site_words[mode]
                                                                             : NULL;
}

int pop_site_parse(const char *word) {
    for (int k = 0; k < (int)(sizeof site_words / sizeof *site_words); k++)
        if (!strcmp(word, site_words[k])) return k;
    return -1;
}

int pop_site_fit_parse(const char *word) {
    const int m = pop_site_parse(word);
    return m == POP_SITE_AUTO ? -1 : m;
}

int pop_site_own(const pop_rows_out *f, int r) {
    for (int k = 0; k < f->site_dirs && k < r; k++)
        if (f->site_share[k] >= POP_SITE_OWN && f->site_scans[k] <= 0.5) return k;
    return -1;
}

/* A = U f(lam) U^T for the symmetric r0 x r0 S (overwritten by its eigenvectors), f(x) =
 * x^p of the eigenvalues (0 where not positive). -1 with e set. */
static int sym_power(double *S, int r0, double p, double *A, double *lam, bgfm_err *e) {
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', r0, S, r0, lam);
    if (info)
        return bgfm_fail(e, BGFM_ENUMERIC, "population head (pop_site: harmonise): the "
                         "eigensolver (dsyevd) failed (info %d) in %d dimensions", (int)info, r0);
    memset(A, 0, (size_t)r0 * r0 * sizeof *A);
    for (int k = 0; k < r0; k++) {
        if (!(lam[k] > 0)) continue;
        const double f = pow(lam[k], p);
        for (int i = 0; i < r0; i++)
            for (int j = 0; j < r0; j++) A[i * r0 + j] += S[i * r0 + k] * f * S[j * r0 + k];
    }
    return 0;
}

/* pop_site: harmonise (pop.h): each site's rows of the scores Q (n, r0) times
 * S_k^-1/2 S^1/2, S = Q^T Q / n the pooled covariance and S_k its site's, shrunk by
 * site_shrink (a site whose rows have no variance is left as it is). -1 with e set. */
static int harmonise_scores(double *Q, int64_t n, int r0, const int32_t *site, int sites,
                            double site_shrink, bgfm_err *e) {
    const size_t rr = (size_t)r0 * (size_t)r0;
    const char *what = "population head (pop_site: harmonise)";
    double *S = bgfm_malloc(e, rr * sizeof *S, what), *half = bgfm_malloc(e, rr * sizeof *half, what);
    double *Si = bgfm_malloc(e, rr * sizeof *Si, what), *M = bgfm_malloc(e, rr * sizeof *M, what);
    double *lam = bgfm_malloc(e, (size_t)r0 * sizeof *lam, what);
    double *q = bgfm_malloc(e, (size_t)r0 * sizeof *q, what);
    int rc = S && half && Si && M && lam && q ? 0 : -1;
    if (!rc) {
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r0, r0, (int)n, 1.0 / (double)n, Q,
                    r0, Q, r0, 0.0, S, r0);
        rc = sym_power(S, r0, 0.5, half, lam, e);
    }
    for (int k = 0; k < sites && !rc; k++) {
        int64_t nk = 0;
        memset(S, 0, rr * sizeof *S);
        for (int64_t i = 0; i < n; i++)
            if (site[i] == k) nk++, cblas_dger(CblasRowMajor, r0, r0, 1.0, Q + i * r0, 1, Q + i * r0, 1, S, r0);
        for (size_t x = 0; nk && x < rr; x++) S[x] /= (double)nk;
        if (!nk || pop_shrink_within(S, r0, site_shrink)) continue;
        if ((rc = sym_power(S, r0, -0.5, Si, lam, e))) break;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r0, r0, r0, 1.0, Si, r0, half, r0,
                    0.0, M, r0);
        for (int64_t i = 0; i < n; i++) {
            if (site[i] != k) continue;
            cblas_dgemv(CblasRowMajor, CblasTrans, r0, r0, 1.0, M, r0, Q + i * r0, 1, 0.0, q, 1);
            memcpy(Q + i * r0, q, (size_t)r0 * sizeof *q);
        }
    }
    free(S), free(half), free(Si), free(M), free(lam), free(q);
    return rc ? -1 : 0;
}

/* With o->apart_z: the scans that stand apart on the scores Q (pop_scans_apart); then with
 * o->apart_share, those of the others that hold a leading direction (pop_scans_holding).
 * None: 0. Else 1, and the fit of pop_fit_rows on the other rows written (*dirs its number
 * of directions), out->apart_* and out->held_* kept; the caller's centred rows *Zc, which
 * that fit does not read, freed first (NULL). -1 with e set. */
static int refit_apart(const float *Z, int64_t n, int64_t T, const int64_t *scan,
                       const int32_t *site, int sites, const pop_fit_opts *o, const double *Q,
                       int r0, double **Zc, float *W, float *b, float *Wp, float *bp,
                       pop_rows_out *out, int *dirs, bgfm_err *e) {
    unsigned char *keep = bgfm_malloc(e, (size_t)n, "population head people kept");
    int64_t apart = keep ? 0 : -1;
    if (keep) memset(keep, 1, (size_t)n);
    if (keep && o->apart_z > 0) apart = pop_scans_apart(Q, n, r0, scan, o->shrink, o->apart_z, keep, out, e);
    if (apart >= 0 && o->apart_share > 0) {
        const int64_t held = pop_scans_holding(Q, n, r0, scan, o->shrink, o->apart_share, keep, out, e);
        apart = held < 0 ? -1 : apart + held;
    }
    if (apart <= 0) {
        free(keep);
        return apart < 0 ? -1 : 0;
    }
    free(*Zc), *Zc = NULL;
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) m += keep[i];
    float *Zk = bgfm_malloc(e, (size_t)m * (size_t)T * sizeof *Zk, "population head rows kept");
    int64_t *sk = bgfm_malloc(e, (size_t)m * sizeof *sk, "population head rows kept");
    int32_t *tk = site ? bgfm_malloc(e, (size_t)m * sizeof *tk, "population head rows kept") : NULL;
    int got = -1;
    if (Zk && sk && (tk || !site)) {
        for (int64_t i = 0, j = 0; i < n; i++) {
            if (!keep[i]) continue;
            memcpy(Zk + j * T, Z + i * T, (size_t)T * sizeof *Zk);
            sk[j] = scan[i];
            if (site) tk[j] = site[i];
            j++;
        }
        pop_rows_out a = *out;
        pop_fit_opts ok = *o;
        ok.apart_z = 0, ok.apart_share = 0;
        *dirs = pop_fit_rows(Zk, m, T, sk, tk, sites, &ok, W, b, Wp, bp, out, e);
        out->apart = a.apart, out->apart_of = a.apart_of, out->held = a.held;
        memcpy(out->apart_scan, a.apart_scan, sizeof a.apart_scan);
        memcpy(out->apart_z, a.apart_z, sizeof a.apart_z);
        memcpy(out->held_scan, a.held_scan, sizeof a.held_scan);
        memcpy(out->held_share, a.held_share, sizeof a.held_share);
        memcpy(out->held_dir, a.held_dir, sizeof a.held_dir);
        got = *dirs < 0 ? -1 : 1;
    }
    free(keep), free(Zk), free(sk), free(tk);
    return got;
}

int pop_fit_rows(const float *Z, int64_t n, int64_t T, const int64_t *scan, const int32_t *site,
                 int sites, const pop_fit_opts *o, float *W, float *b, float *Wp, float *bp,
                 pop_rows_out *out_info, bgfm_err *e) {
    const int r = o->r, npc = o->npc;
    const double shrink = o->shrink;
    if (o->site_mode == POP_SITE_NONE) site = NULL, sites = 0;
    memset(W, 0, (size_t)r * (size_t)T * sizeof *W);
    memset(b, 0, (size_t)r * sizeof *b);
    if (npc > 0) {
        memset(Wp, 0, (size_t)npc * (size_t)T * sizeof *Wp);
        memset(bp, 0, (size_t)npc * sizeof *bp);
    }
    *out_info = (pop_rows_out){.held_step = -1};
    if (n < 3 || T < 1 || r < 1) return 0;
    double *mu = bgfm_calloc(e, (size_t)T, sizeof *mu, "population head mean");
    double *Zc = bgfm_malloc(e, (size_t)(n * T) * sizeof *Zc, "population head rows");
    /* the m leading eigenpairs of the centred rows' Gram matrix: K (n, m), lam (m) */
    const int want = npc > POP_PCA ? npc : POP_PCA, m = (int)(n < want ? n : want);
    double *K = bgfm_malloc(e, (size_t)n * (size_t)m * sizeof *K, "population head subspace");
    double *lam = bgfm_malloc(e, (size_t)m * sizeof *lam, "population head eigenvalues");
    double *Q = NULL, *Qr = NULL, *Sb = NULL, *Sw = NULL, *ev = NULL, *P = NULL, *C = NULL,
           *Wd = NULL;
    int rc = mu && Zc && K && lam ? 0 : -1, out = 0;
    if (!rc) rc = centre_rows(Z, n, T, site, sites, mu, Zc, e);
    if (rc) goto done;
    if (pca_gram_top(Zc, n, T, m, o->solver, K, lam, &out_info->solve, "population head", e)) {
        rc = -1;
        goto done;
    }
    if (npc > 0 && principal_rows(Zc, K, m, lam, n, T, mu, npc, Wp, bp, e)) {
        rc = -1;
        goto done;
    }
    /* the leading components with a non-negligible variance, largest first */
    int r0 = 0;
    const int64_t cap = n - 1 < T ? n - 1 : T;
    while (r0 < POP_PCA && r0 < cap && lam[r0] > 1e-10 * lam[0] && lam[0] > 0) r0++;
    if (r0 < 1) goto done;
    Q = bgfm_malloc(e, (size_t)(n * r0) * sizeof *Q, "population head scores");
    Sb = bgfm_malloc(e, (size_t)r0 * r0 * sizeof *Sb, "population head covariances");
    Sw = bgfm_malloc(e, (size_t)r0 * r0 * sizeof *Sw, "population head covariances");
    ev = bgfm_malloc(e, (size_t)r0 * sizeof *ev, "population head eigenvalues");
    if (!Q || !Sb || !Sw || !ev) {
        rc = -1;
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        for (int c = 0; c < r0; c++) Q[i * r0 + c] = K[i * m + c] * sqrt(lam[c]);
    if (o->apart_z > 0 || o->apart_share > 0) { /* people apart left out: the fit without them */
        const int refit = refit_apart(Z, n, T, scan, site, sites, o, Q, r0, &Zc, W, b, Wp, bp,
                                      out_info, &out, e);
        if (refit != 0) {
            rc = refit < 0 ? -1 : 0;
            out = refit < 0 ? 0 : out;
            goto done;
        }
    }
    /* harmonised scores choose the directions; the map below applies them to the rows' own
     * scores, which the site shares read too (Qr: a copy only when Q is harmonised) */
    const int harm = o->site_mode == POP_SITE_HARMONISE && site && sites > 1;
    if (harm) {
        if (!(Qr = bgfm_malloc(e, (size_t)(n * r0) * sizeof *Qr, "population head scores"))) {
            rc = -1;
            goto done;
        }
        memcpy(Qr, Q, (size_t)(n * r0) * sizeof *Qr);
        if (harmonise_scores(Q, n, r0, site, sites, o->site_shrink, e)) {
            rc = -1;
            goto done;
        }
    }
    if ((out_info->multi = pop_scatter(Q, n, r0, scan, NULL, 0, 0, Sb, Sw, NULL, NULL, e)) < 0) {
        out_info->multi = 0;
        rc = -1;
        goto done;
    }
    if (out_info->multi == 0 || pop_shrink_within(Sw, r0, shrink)) goto done; /* no person seen twice */
    if (o->auto_rank && (out_info->rank = held_out_rank(Q, n, r0, scan, shrink, out_info, e)) < 0) {
        out_info->rank = 0;
        rc = -1;
        goto done;
    }
    lapack_int info = LAPACKE_dsygvd(LAPACK_ROW_MAJOR, 1, 'V', 'U', r0, Sb, r0, Sw, r0, ev);
    if (info) {
        rc = bgfm_fail(e, BGFM_ENUMERIC, "population head: the generalised eigensolver (dsygvd) "
                       "failed (info %d) in %d dimensions", (int)info, r0);
        goto done;
    }
    /* directions with no between-scan variance (Sb has rank < r with few scans) are an
     * arbitrary basis of a null space: not fitted */
    int rr = 0;
    while (rr < r && rr < r0 && ev[r0 - 1 - rr] > 1e-9 * ev[r0 - 1] && ev[r0 - 1] > 0) rr++;
    if (rr < 1) goto done;
    if (site && sites > 1 && pop_site_shares(harm ? Qr : Q, n, r0, scan, site, sites, Sb,
                          rr < POP_RANK_AUTO_MAX ? rr : POP_RANK_AUTO_MAX, out_info, e)) {
        rc = -1;
        goto done;
    }
    /* P (r0, n) = diag(lam^-1/2) U^T; C (rr, n) = A^T P with A the rr leading eigenvectors */
    P = bgfm_malloc(e, (size_t)(r0 * n) * sizeof *P, "population head map");
    C = bgfm_calloc(e, (size_t)(rr * n), sizeof *C, "population head map");
    Wd = bgfm_malloc(e, (size_t)rr * (size_t)T * sizeof *Wd, "population head map");
    if (!P || !C || !Wd) {
        rc = -1;
        goto done;
    }
    for (int c = 0; c < r0; c++)
        for (int64_t i = 0; i < n; i++) P[c * n + i] = K[i * m + c] / sqrt(lam[c]);
    for (int k = 0; k < rr; k++)
        for (int c = 0; c < r0; c++) {
            double a = Sb[c * r0 + (r0 - 1 - k)];
            for (int64_t i = 0; i < n; i++) C[k * n + i] += a * P[c * n + i];
        }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rr, (int)T, (int)n, 1.0, C, (int)n, Zc,
                (int)T, 0.0, Wd, (int)T);
    store_rows(Wd, rr, T, mu, W, b);
    out_info->ratio = ev[r0 - 1];
    out = rr;
done:
    free(mu), free(Zc), free(K), free(lam), free(Q), free(Qr), free(Sb), free(Sw), free(ev), free(P),
        free(C), free(Wd);
    return rc ? -1 : out;
}

/* This rank's block [lo, hi) of the atlas's list, as the model sees each graph. */
static int read_rows(const model *m, graphs_store *gs, int ma, const int64_t *idx, int64_t lo,
                     int64_t hi, int N, float *Z, bgfm_err *e) {
    const int64_t T = (int64_t)N * (N - 1) / 2;
    float *fc = bgfm_malloc(e, (size_t)N * (size_t)N * sizeof *fc, "population head graph");
    int rc = fc ? 0 : BGFM_ENOMEM;
    for (int64_t g = lo; g < hi && !rc; g++) {
        if ((rc = graphs_read(gs, &idx[g], 1, fc, NULL, NULL, e))) break; /* FC only */
        float *z = Z + (g - lo) * T;
        for (int i = 0; i < N; i++)
            for (int j = i + 1; j < N; j++) {
                double x = model_input_entry(m, ma, fc, (int64_t)i * N + j);
                *z++ = isfinite(x) ? (float)x : 0.0f;
            }
    }
    free(fc);
    return rc;
}

typedef struct site_key {
    const char *dataset, *site;
    int64_t j;
} site_key;

/* (dataset, site) in byte order: 0 for the same site */
static int site_of_cmp(const site_key *x, const site_key *y) {
    int c = strcmp(x->dataset, y->dataset);
    return c ? c : strcmp(x->site, y->site);
}

static int site_key_cmp(const void *a, const void *b) {
    const site_key *x = a, *y = b;
    int c = site_of_cmp(x, y);
    return c ? c : (x->j > y->j) - (x->j < y->j);
}

/* site[j] of each of the n graphs idx[]: the rank of its (dataset, site) among the
 * distinct pairs, in byte order (the same on every rank); the number of pairs, -1 on
 * ENOMEM. A graph without a site ("") is one site of its dataset. */
static int site_ids(graphs_store *gs, const int64_t *idx, int64_t n, int32_t *site, bgfm_err *e) {
    site_key *k = bgfm_malloc(e, (size_t)n * sizeof *k, "population head sites");
    if (!k) return -1;
    for (int64_t j = 0; j < n; j++)
        k[j] = (site_key){graphs_dataset(gs, idx[j]), graphs_site(gs, idx[j]), j};
    qsort(k, (size_t)n, sizeof *k, site_key_cmp);
    int sites = 0;
    for (int64_t j = 0; j < n; j++) {
        if (j && site_of_cmp(&k[j], &k[j - 1])) sites++;
        site[k[j].j] = sites;
    }
    free(k);
    return n ? sites + 1 : 0;
}

/* cnt/dsp of R contiguous blocks of n rows (rank q: [n q / R, n (q+1) / R)). */
static void row_blocks(int64_t n, int R, int *cnt, int *dsp) {
    for (int q = 0; q < R; q++) {
        int64_t lo = n * q / R, hi = n * (q + 1) / R;
        cnt[q] = (int)(hi - lo), dsp[q] = (int)lo;
    }
}

/* Collective: every rank's block of rows of `width` floats gathered into X in place: on
 * every rank (root < 0), or on rank root only (X there holds all rows; elsewhere X is this
 * rank's block alone). The same status everywhere. */
static int gather_rows(bgfm_ctx *ctx, float *X, int64_t width, const int *cnt, const int *dsp,
                       int root) {
    bgfm_err *e = &ctx->err;
    MPI_Datatype row = MPI_DATATYPE_NULL;
    int rc = BGFM_MPI(e, MPI_Type_contiguous((int)width, MPI_FLOAT, &row));
    if (!rc) rc = BGFM_MPI(e, MPI_Type_commit(&row));
    if (!rc && root < 0)
        rc = BGFM_MPI(e, MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, X, cnt, dsp, row,
                                        ctx->comm));
    else if (!rc && root == ctx->rank)
        rc = BGFM_MPI(e, MPI_Gatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, X, cnt, dsp, row, root,
                                     ctx->comm));
    else if (!rc)
        rc = BGFM_MPI(e, MPI_Gatherv(X, cnt[ctx->rank], row, NULL, NULL, NULL, row, root, ctx->comm));
    if (row != MPI_DATATYPE_NULL) {
        const int frc = BGFM_MPI(e, MPI_Type_free(&row));
        if (!rc) rc = frc;
    }
    return bgfm_ctx_agree(ctx, rc);
}

/* Collective, after an agreed successful fit on rank `owner` (job_fit): what it fitted (the
 * head's rows, the FC's principal rows, what the fit found, the directions' count) sent to
 * every rank. */
static int share_fit(bgfm_ctx *ctx, int owner, float *W, float *b, int r, float *Wp, float *bp,
                     int npc, int64_t T, pop_rows_out *fit, int *got) {
    bgfm_err *e = &ctx->err;
    int rc = BGFM_MPI(e, MPI_Bcast(W, (int)(r * T), MPI_FLOAT, owner, ctx->comm));
    if (!rc) rc = BGFM_MPI(e, MPI_Bcast(b, r, MPI_FLOAT, owner, ctx->comm));
    if (!rc && npc) rc = BGFM_MPI(e, MPI_Bcast(Wp, (int)(npc * T), MPI_FLOAT, owner, ctx->comm));
    if (!rc && npc) rc = BGFM_MPI(e, MPI_Bcast(bp, npc, MPI_FLOAT, owner, ctx->comm));
    if (!rc) rc = BGFM_MPI(e, MPI_Bcast(fit, (int)sizeof *fit, MPI_BYTE, owner, ctx->comm));
    if (!rc) rc = BGFM_MPI(e, MPI_Bcast(got, 1, MPI_INT, owner, ctx->comm));
    return bgfm_ctx_agree(ctx, rc);
}

/* idx (na): the graphs of store atlas sa among graphs[0..n), in list order (malloc'ed;
 * NULL and na 0 when there are none). BGFM_ENOMEM, or BGFM_EUSAGE past MPI's counts. */
static int atlas_list(graphs_store *gs, int sa, const int64_t *graphs, int64_t n, int64_t **idx,
                      int64_t *na, bgfm_err *e) {
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++) c += graphs_get_meta(gs, graphs[i])->atlas == sa;
    *idx = NULL;
    *na = c;
    if (c == 0) return 0;
    if (c > INT32_MAX)
        return bgfm_fail(e, BGFM_EUSAGE, "population head: %lld graphs of one atlas are more "
                         "than MPI counts hold", (long long)c);
    if (!(*idx = bgfm_malloc(e, (size_t)c * sizeof **idx, "population head list"))) return BGFM_ENOMEM;
    for (int64_t i = 0, j = 0; i < n; i++)
        if (graphs_get_meta(gs, graphs[i])->atlas == sa) (*idx)[j++] = graphs[i];
    return 0;
}

/* names[k]: the participant of scans[k] (its first of the na graphs idx, scan[j] each
 * graph's scan), for the first count of them (at most POP_APART_LOG). */
static void name_scans(graphs_store *gs, const int64_t *idx, const int64_t *scan, int64_t na,
                       const int64_t *scans, int64_t count, const char **names) {
    for (int64_t k = 0; k < count && k < POP_APART_LOG; k++)
        for (int64_t j = 0; j < na; j++)
            if (scan[j] == scans[k]) {
                names[k] = graphs_participant(gs, idx[j]);
                break;
            }
}

/* One atlas's head, fitted on rank `owner` alone: the other ranks read their blocks of its
 * rows and send them there (only the owner holds all of them: docs/model.md section 11,
 * "Cost"), and receive what the owner fitted. */
typedef struct atlas_job {
    int sa, ma, owner, sites, got;
    int64_t na, T;
    int64_t *idx, *scan; /* the atlas's training graphs in list order, and their scans */
    int32_t *site;       /* with pop_site: their sites (0 .. sites-1) */
    float *Z;            /* the owner: all na rows; another rank: its block, until sent */
} atlas_job;

static void job_free(atlas_job *j) {
    free(j->idx), free(j->scan), free(j->site), free(j->Z);
    *j = (atlas_job){0};
}

/* Collective: the job's list and sites on every rank, its rows gathered on its owner, the
 * FC's principal rows allocated in info. The same status everywhere. */
static int job_gather(bgfm_ctx *ctx, const model *m, graphs_store *gs, const int64_t *graphs,
                      int64_t n, const pop_fit_opts *o, atlas_job *j, pop_fit_info *info) {
    bgfm_err *e = &ctx->err;
    const int N = graphs_atlas_nodes(gs, j->sa), R = ctx->size, me = ctx->rank, npc = o->npc;
    const int64_t T = j->T = (int64_t)N * (N - 1) / 2;
    int rc = atlas_list(gs, j->sa, graphs, n, &j->idx, &j->na, e);
    const int64_t na = j->na;
    if (rc || na == 0) return bgfm_ctx_agree(ctx, rc);
    int *cnt = bgfm_malloc(e, (size_t)R * sizeof *cnt, "population head counts");
    int *dsp = bgfm_malloc(e, (size_t)R * sizeof *dsp, "population head counts");
    if (cnt && dsp) row_blocks(na, R, cnt, dsp);
    const int64_t held = !cnt || !dsp ? 0 : me == j->owner ? na : cnt[me];
    const int by_site = o->site_mode != POP_SITE_NONE;
    j->scan = bgfm_malloc(e, (size_t)na * sizeof *j->scan, "population head list");
    j->Z = bgfm_malloc(e, (size_t)((held ? held : 1) * T) * sizeof *j->Z, "population head rows");
    j->site = by_site ? bgfm_malloc(e, (size_t)na * sizeof *j->site, "population head sites") : NULL;
    rc = j->scan && j->Z && cnt && dsp && (j->site || !by_site) ? 0 : BGFM_ENOMEM;
    for (int64_t k = 0; !rc && k < na; k++) j->scan[k] = graphs_get_meta(gs, j->idx[k])->subject;
    if (!rc && by_site && (j->sites = site_ids(gs, j->idx, na, j->site, e)) < 0) rc = BGFM_ENOMEM;
    if (!rc)
        rc = read_rows(m, gs, j->ma, j->idx, dsp[me], dsp[me] + cnt[me], N,
                       j->Z + (me == j->owner ? (int64_t)dsp[me] * T : 0), e);
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc) rc = gather_rows(ctx, j->Z, T, cnt, dsp, j->owner);
    if (me != j->owner) free(j->Z), j->Z = NULL;
    if (!rc && npc) {
        info->pc_W[j->ma] = bgfm_malloc(e, (size_t)npc * (size_t)T * sizeof(float), "population head axes");
        info->pc_b[j->ma] = bgfm_malloc(e, (size_t)npc * sizeof(float), "population head axes");
        rc = bgfm_ctx_agree(ctx, info->pc_W[j->ma] && info->pc_b[j->ma] ? 0 : BGFM_ENOMEM);
    }
    free(cnt), free(dsp);
    return rc;
}

/* The owner's fit of a gathered job (no communication; 0 elsewhere). */
static int job_fit(bgfm_ctx *ctx, model *m, const pop_fit_opts *o, atlas_job *j, pop_fit_info *info) {
    bgfm_err *e = &ctx->err;
    if (ctx->rank != j->owner || !j->Z) return 0;
    const int ma = j->ma;
    j->got = pop_fit_rows(j->Z, j->na, j->T, j->scan, j->site, j->sites, o, m->w + m->pop_W[ma],
                          m->w + m->pop_b[ma], info->pc_W[ma], info->pc_b[ma], &info->fit[ma], e);
    free(j->Z), j->Z = NULL; /* the rows, the stage's largest allocation, freed before sharing */
    return j->got < 0 ? (e->code ? e->code : BGFM_ENOMEM) : 0;
}

/* Collective, after every owner's fit succeeded: the job's fit on every rank, named. */
static int job_share(bgfm_ctx *ctx, model *m, graphs_store *gs, const pop_fit_opts *o, atlas_job *j,
                     pop_fit_info *info) {
    const int ma = j->ma;
    const int64_t na = j->na;
    if (na == 0) return 0;
    int rc = share_fit(ctx, j->owner, m->w + m->pop_W[ma], m->w + m->pop_b[ma], o->r,
                       info->pc_W[ma], info->pc_b[ma], o->npc, j->T, &info->fit[ma], &j->got);
    if (rc) return rc;
    info->graphs[ma] = na;
    info->dims[ma] = j->got;
    info->sites[ma] = j->sites > 1 ? j->sites : 0;
    for (int k = 0; k < info->fit[ma].site_dirs; k++)
        for (int64_t g = 0; g < na; g++)
            if (j->site[g] == info->fit[ma].site_at[k]) {
                info->site_dataset[ma][k] = graphs_dataset(gs, j->idx[g]);
                info->site_name[ma][k] = graphs_site(gs, j->idx[g]);
                break;
            }
    name_scans(gs, j->idx, j->scan, na, info->fit[ma].apart_scan, info->fit[ma].apart,
               info->apart_name[ma]);
    name_scans(gs, j->idx, j->scan, na, info->fit[ma].held_scan, info->fit[ma].held,
               info->held_name[ma]);
    if (j->got == 0)
        log_warn(ctx, "pretrain: no person of atlas '%s' has two or more windows among the %lld "
                 "graphs training read, so the population head of that atlas stays zero "
                 "(docs/model.md section 11: give windows in the connectivity stage, or set "
                 "pop_rank: 0)", graphs_atlas_name(gs, j->sa), (long long)na);
    return 0;
}

void pop_fit_info_free(pop_fit_info *info) {
    for (int a = 0; a < MODEL_MAX_ATLASES; a++) {
        free(info->pc_W[a]), free(info->pc_b[a]);
        info->pc_W[a] = info->pc_b[a] = NULL;
    }
}

int pop_rank_shared(const pop_fit_info *info, int n_atlases, int cap, int *how) {
    int r = 0, rp = 0;
    for (int a = 0; a < n_atlases; a++) {
        if (!info->graphs[a]) continue;
        if (info->fit[a].rank > r) r = info->fit[a].rank;
        if (info->fit[a].repro_rank > rp) rp = info->fit[a].repro_rank;
    }
    int h = r ? 1 : rp ? 2 : 0;
    r = r ? r : rp ? rp : POP_RANK_FALLBACK;
    if (how) *how = h;
    return r < cap ? r : cap;
}

int pop_head_alone(int r, int how) {
    return how == 1 || (how == 2 && r >= POP_RP_ALONE_MIN);
}

int pop_fit(bgfm_ctx *ctx, model *m, graphs_store *gs, const int64_t *graphs, int64_t n,
            const pop_fit_opts *opts, pop_fit_info *info) {
    memset(info, 0, sizeof *info);
    pop_fit_opts o = *opts;
    o.r = m->cfg.pop_rank;
    if (!m->cfg.pop_rank) return 0;
    /* the atlases in rounds of R: in a round, atlas k of the round is fitted on rank k while
     * the other ranks fit theirs, so a rank holds one atlas's rows at a time */
    atlas_job job[MODEL_MAX_ATLASES];
    int rc = 0, jobs = 0;
    for (int sa = 0; sa < graphs_n_atlases(gs) && jobs < MODEL_MAX_ATLASES; sa++) {
        int ma = model_atlas_find(m, graphs_atlas_name(gs, sa));
        if (ma < 0 || m->cfg.atlas_nodes[ma] != graphs_atlas_nodes(gs, sa)) continue;
        job[jobs] = (atlas_job){.sa = sa, .ma = ma};
        jobs++;
    }
    for (int lo = 0; lo < jobs && !rc; lo += ctx->size) {
        const int hi = lo + ctx->size < jobs ? lo + ctx->size : jobs;
        int k = lo;
        for (; k < hi && !rc; k++) {
            job[k].owner = k - lo;
            rc = job_gather(ctx, m, gs, graphs, n, &o, &job[k], info);
        }
        for (int q = lo; q < k && !rc; q++) rc = job_fit(ctx, m, &o, &job[q], info);
        rc = bgfm_ctx_agree(ctx, rc);
        for (int q = lo; q < k && !rc; q++) rc = job_share(ctx, m, gs, &o, &job[q], info);
        rc = bgfm_ctx_agree(ctx, rc);
        for (int q = lo; q < k; q++) job_free(&job[q]);
    }
    return rc;
}

/* The readouts (na, H) of this rank's block [lo, hi) of idx (one atlas of N nodes). */
static int read_readouts(model *m, graphs_store *gs, int ma, const int64_t *idx, int64_t lo,
                         int64_t hi, int N, float *X, bgfm_err *e) {
    const int k = graphs_rwse_steps(gs), H = m->cfg.H;
    float *fc = bgfm_malloc(e, (size_t)N * (size_t)N * sizeof *fc, "readout axes graph");
    uint8_t *adj = bgfm_malloc(e, (size_t)N * (size_t)N, "readout axes graph");
    float *rw = bgfm_malloc(e, (size_t)N * (size_t)(k ? k : 1) * sizeof *rw, "readout axes graph");
    model_ws ws;
    memset(&ws, 0, sizeof ws);
    int rc = fc && adj && rw ? 0 : BGFM_ENOMEM;
    if (!rc) rc = model_ws_init(&ws, m, 1, e);
    for (int64_t g = lo; g < hi && !rc; g++) {
        if ((rc = graphs_read(gs, &idx[g], 1, fc, adj, rw, e))) break;
        const float *r = model_graph_readout(m, &ws, ma, N, fc, adj, rw, idx[g]);
        memcpy(X + (g - lo) * H, r, (size_t)H * sizeof *X);
    }
    model_ws_free(&ws);
    free(fc), free(adj), free(rw);
    return rc;
}

/* W (p, H), b (p) from the readouts X (n, H): the leading eigenvectors of their covariance
 * over the square roots of the eigenvalues; b = -W mean. -1 with e set on failure. */
static int readout_axes(const float *X, int64_t n, int H, int p, float *W, float *b, bgfm_err *e) {
    double *mu = bgfm_calloc(e, (size_t)H, sizeof *mu, "readout axes");
    double *C = bgfm_calloc(e, (size_t)H * (size_t)H, sizeof *C, "readout axes");
    double *ev = bgfm_malloc(e, (size_t)H * sizeof *ev, "readout axes");
    double *V = bgfm_calloc(e, (size_t)p * (size_t)H, sizeof *V, "readout axes");
    int rc = mu && C && ev && V ? 0 : -1;
    memset(W, 0, (size_t)p * (size_t)H * sizeof *W);
    memset(b, 0, (size_t)p * sizeof *b);
    if (rc || n < 2) goto done;
    for (int64_t i = 0; i < n; i++)
        for (int h = 0; h < H; h++) mu[h] += (double)X[i * H + h];
    for (int h = 0; h < H; h++) mu[h] /= (double)n;
    for (int64_t i = 0; i < n; i++)
        for (int h = 0; h < H; h++) {
            const double dh = (double)X[i * H + h] - mu[h];
            for (int g = h; g < H; g++) C[h * H + g] += dh * ((double)X[i * H + g] - mu[g]);
        }
    for (int h = 0; h < H; h++)
        for (int g = h; g < H; g++) C[h * H + g] /= (double)n;
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', H, C, H, ev);
    if (info) {
        rc = bgfm_fail(e, BGFM_ENUMERIC, "readout axes: the eigensolver (dsyevd) failed (info %d) "
                       "on a %d x %d covariance", (int)info, H, H);
        goto done;
    }
    int k = 0;
    while (k < p && ev[H - 1 - k] > 1e-10 * ev[H - 1] && ev[H - 1] > 0) k++;
    for (int c = 0; c < k; c++)
        for (int h = 0; h < H; h++) V[c * H + h] = C[h * H + (H - 1 - c)] / sqrt(ev[H - 1 - c]);
    store_rows(V, k, H, mu, W, b);
done:
    free(mu), free(C), free(ev), free(V);
    return rc;
}

int pop_fit_pcs(bgfm_ctx *ctx, model *m, graphs_store *gs, const int64_t *graphs, int64_t n,
                const pop_fit_info *info, int r, const char *why) {
    bgfm_err *e = &ctx->err;
    const int R = ctx->size, me = ctx->rank, H = m->cfg.H;
    const int np = m->cfg.pop_rank - r; /* the FC's principal rows after the head's r */
    for (int a = 0; a < m->cfg.n_atlases; a++) {
        if (!info->graphs[a] || !info->pc_W[a] || np < 1) continue;
        const int64_t T = (int64_t)m->cfg.atlas_nodes[a] * (m->cfg.atlas_nodes[a] - 1) / 2;
        memcpy(m->w + m->pop_W[a] + (int64_t)r * T, info->pc_W[a], (size_t)np * (size_t)T * sizeof(float));
        memcpy(m->w + m->pop_b[a] + r, info->pc_b[a], (size_t)np * sizeof(float));
    }
    const double t0 = MPI_Wtime();
    int rc = 0;
    for (int sa = 0; m->cfg.pcs && sa < graphs_n_atlases(gs) && !rc; sa++) {
        const int ma = model_atlas_find(m, graphs_atlas_name(gs, sa));
        const int N = graphs_atlas_nodes(gs, sa);
        if (ma < 0 || m->cfg.atlas_nodes[ma] != N) continue;
        int64_t na = 0, *idx = NULL;
        if ((rc = bgfm_ctx_agree(ctx, atlas_list(gs, sa, graphs, n, &idx, &na, e))) || na == 0) continue;
        float *X = bgfm_malloc(e, (size_t)na * (size_t)H * sizeof *X, "readout axes rows");
        int *cnt = bgfm_malloc(e, (size_t)R * sizeof *cnt, "readout axes counts");
        int *dsp = bgfm_malloc(e, (size_t)R * sizeof *dsp, "readout axes counts");
        rc = X && cnt && dsp ? 0 : BGFM_ENOMEM;
        if (!rc) row_blocks(na, R, cnt, dsp);
        if (!rc) rc = read_readouts(m, gs, ma, idx, dsp[me], dsp[me] + cnt[me], N, X + (int64_t)dsp[me] * H, e);
        rc = bgfm_ctx_agree(ctx, rc);
        if (!rc) rc = gather_rows(ctx, X, H, cnt, dsp, -1);
        if (!rc && readout_axes(X, na, H, m->cfg.pcs, m->w + m->pcs_W[ma], m->w + m->pcs_b[ma], e))
            rc = e->code ? e->code : BGFM_ENOMEM;
        free(idx), free(X), free(cnt), free(dsp);
        rc = bgfm_ctx_agree(ctx, rc);
    }
    if (!rc)
        log_info(ctx, "pretrain: embedding %s: pcs+pop (%sthe encoder's readout on its %d leading "
                 "principal axes, then the head's %d directions and the FC's %d leading principal "
                 "axes; axes fitted in %.2f s)", why ? "auto" : "pcs+pop", why ? why : "",
                 m->cfg.pcs, r, np, MPI_Wtime() - t0);
    return rc;
}
