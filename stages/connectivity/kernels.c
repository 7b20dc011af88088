/* kernels.c: the per-graph math of the connectivity stage: standardise + one SSYRK,
 * Ledoit-Wolf shrinkage, partial correlation, Fisher z, adjacency rules, RWSE.
 * Not I/O and not MPI: every function here works on caller-owned arrays. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/connectivity.h"

int64_t connectivity_n_windows(int64_t T, int64_t length, int64_t stride) {
    if (length <= 0) return T >= 2 ? 1 : 0;
    if (T < length || stride < 1) return 0;
    return (T - length) / stride + 1;
}

static int is_flagged(const uint8_t *f, int i) { return f && f[i]; }

/* 8 floats in one vector register (GCC vector extension): the build's -O2 does not
 * auto-vectorise loops of unknown length, and the standardisation must keep up
 * with SSYRK. Loads/stores through memcpy: no alignment assumed. */
typedef float kern_v8 __attribute__((vector_size(32)));
typedef int32_t kern_i8 __attribute__((vector_size(32)));
static inline kern_v8 v8_load(const float *p) {
    kern_v8 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void v8_store(float *p, kern_v8 v) { memcpy(p, &v, sizeof v); }

int connectivity_check(const float *X, int64_t T, int N, int64_t ldx, const uint8_t *flagged,
                       int *region) {
    int constant = -1;
    for (int i = 0; i < N; i++) {
        if (is_flagged(flagged, i)) continue;
        float lo = X[i], hi = X[i];
        for (int64_t t = 0; t < T; t++) {
            float v = X[t * ldx + i];
            if (!isfinite(v)) {
                *region = i;
                return 1;
            }
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        if (lo == hi && constant < 0) constant = i;
    }
    if (constant >= 0) {
        *region = constant;
        return 2;
    }
    *region = -1;
    return 0;
}

void connectivity_standardise(float *Z, const float *X, int64_t T, int N, int64_t ldx,
                              const uint8_t *flagged, double *work) {
    /* Shifted sums (shift = the first row, which keeps the one-pass variance accurate
     * for any offset): float partial sums over blocks of 32 rows (vectorised), added
     * into double totals; then one scaled copy. */
    double *sum = work, *ss = work + N;
    float *bs = (float *)(void *)(work + 2 * (size_t)N), *bss = bs + N;
    memset(sum, 0, (size_t)N * 2 * sizeof *sum);
    const float *x0 = X;
    for (int64_t t0 = 1; t0 < T; t0 += 32) {
        int64_t t1 = t0 + 32 < T ? t0 + 32 : T;
        memset(bs, 0, (size_t)N * 2 * sizeof *bs);
        for (int64_t t = t0; t < t1; t++) {
            const float *x = X + t * ldx;
            int i = 0;
            for (; i + 8 <= N; i += 8) {
                kern_v8 d = v8_load(x + i) - v8_load(x0 + i);
                v8_store(bs + i, v8_load(bs + i) + d);
                v8_store(bss + i, v8_load(bss + i) + d * d);
            }
            for (; i < N; i++) {
                float d = x[i] - x0[i];
                bs[i] += d;
                bss[i] += d * d;
            }
        }
        for (int i = 0; i < N; i++) {
            sum[i] += (double)bs[i];
            ss[i] += (double)bss[i];
        }
    }
    float *mf = bs, *sf = bss;
    for (int i = 0; i < N; i++) {
        double mean = sum[i] / (double)T;   /* mean of the shifted series */
        double var = ss[i] - mean * sum[i]; /* sum of squared deviations */
        mf[i] = (float)(mean + (double)x0[i]);
        sf[i] = (is_flagged(flagged, i) || !(var > 0)) ? 0.0f : (float)(1.0 / sqrt(var));
    }
    for (int64_t t = 0; t < T; t++) {
        const float *x = X + t * ldx;
        float *z = Z + t * N;
        int i = 0;
        for (; i + 8 <= N; i += 8)
            v8_store(z + i, (v8_load(x + i) - v8_load(mf + i)) * v8_load(sf + i));
        for (; i < N; i++) z[i] = (x[i] - mf[i]) * sf[i];
    }
}

void connectivity_pearson(float *C, const float *Z, int64_t T, int N, const uint8_t *flagged) {
    /* Z is T x N row-major: C = Z^T Z, upper triangle by one SSYRK. */
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, N, (int)T, 1.0f, Z, N, 0.0f, C, N);
    /* clip the upper triangle to [-1, 1] row by row (contiguous, 8 wide), then mirror it
     * in 32 x 32 tiles */
    const kern_v8 one = {1, 1, 1, 1, 1, 1, 1, 1}, mone = -one;
    for (int i = 0; i < N; i++) {
        float *c = C + (size_t)i * N;
        int j = i + 1;
        for (; j + 8 <= N; j += 8) {
            kern_v8 v = v8_load(c + j);
            kern_i8 hi = v > one, lo = v < mone; /* lanes: -1 where true */
            kern_i8 r = ((kern_i8)one & hi) | ((kern_i8)mone & lo) | ((kern_i8)v & ~(hi | lo));
            v8_store(c + j, (kern_v8)r);
        }
        for (; j < N; j++) c[j] = c[j] > 1.0f ? 1.0f : (c[j] < -1.0f ? -1.0f : c[j]);
    }
    enum { B = 32 };
    for (int ib = 0; ib < N; ib += B)
        for (int jb = ib; jb < N; jb += B) {
            int ie = ib + B < N ? ib + B : N, je = jb + B < N ? jb + B : N;
            for (int i = ib; i < ie; i++)
                for (int j = (jb > i + 1 ? jb : i + 1); j < je; j++)
                    C[(size_t)j * N + i] = C[(size_t)i * N + j];
        }
    for (int i = 0; i < N; i++) C[(size_t)i * N + i] = 1.0f;
    if (!flagged) return;
    for (int i = 0; i < N; i++)
        if (flagged[i]) {
            for (int j = 0; j < N; j++) C[(size_t)i * N + j] = C[(size_t)j * N + i] = 0.0f;
        }
}

double connectivity_lw_shrinkage(const float *Z, const float *C, int64_t T, int N,
                                 const uint8_t *flagged) {
    /* X = sqrt(T) Z are the z-scored series (population std), S = X^T X / T = C.
     * Ledoit & Wolf (2004), the estimator of sklearn.covariance.LedoitWolf:
     *   mu = tr(S)/p = 1,  d2 = ||S - mu I||_F^2 / p = (||C||_F^2 - p) / p,
     *   b2 = sum_t ||x_t x_t^T - S||_F^2 / (T^2 p) = (T sum_t q_t^2 - ||C||_F^2) / (T p)
     *   with q_t = sum_i Z_ti^2;  s = min(b2, d2) / d2  (0 when b2 = 0). */
    int p = 0;
    for (int i = 0; i < N; i++) p += !is_flagged(flagged, i);
    if (p <= 1) return 0.0;
    double fro = 0.0;
    for (int i = 0; i < N; i++) {
        if (is_flagged(flagged, i)) continue;
        for (int j = 0; j < N; j++) {
            if (is_flagged(flagged, j)) continue;
            double c = (double)C[(size_t)i * N + j];
            fro += c * c;
        }
    }
    double q2 = 0.0;
    for (int64_t t = 0; t < T; t++) {
        double q = 0.0;
        for (int i = 0; i < N; i++) {
            double z = (double)Z[t * N + i];
            q += z * z;
        }
        q2 += q * q;
    }
    double d2 = (fro - p) / p;
    double b2 = ((double)T * q2 - fro) / ((double)T * p);
    if (b2 > d2) b2 = d2;
    if (!(b2 > 0.0) || !(d2 > 0.0)) return 0.0;
    return b2 / d2;
}

void connectivity_shrink(float *C, int N, double s) {
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            if (i != j) C[(size_t)i * N + j] = (float)((1.0 - s) * (double)C[(size_t)i * N + j]);
}

int connectivity_partial(float *C, int N, const uint8_t *flagged, double *work) {
    int p = 0;
    for (int i = 0; i < N; i++) p += !is_flagged(flagged, i);
    if (p == 0) return 0;
    /* compact the non-flagged sub-matrix (column-major = row-major: symmetric) */
    int a = 0;
    for (int i = 0; i < N; i++) {
        if (is_flagged(flagged, i)) continue;
        int b = 0;
        for (int j = 0; j < N; j++) {
            if (is_flagged(flagged, j)) continue;
            work[(size_t)a * p + b] = (double)C[(size_t)i * N + j];
            b++;
        }
        a++;
    }
    if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', p, work, p) != 0) return 1;
    if (LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'U', p, work, p) != 0) return 1;
    /* upper triangle holds P = C^-1 */
    a = 0;
    for (int i = 0; i < N; i++) {
        if (is_flagged(flagged, i)) continue;
        int b = 0;
        for (int j = 0; j < N; j++) {
            if (is_flagged(flagged, j)) continue;
            if (i == j) {
                C[(size_t)i * N + j] = 1.0f;
            } else {
                int lo = a < b ? a : b, hi = a < b ? b : a;
                double pij = work[(size_t)lo * p + hi];
                double pii = work[(size_t)a * p + a], pjj = work[(size_t)b * p + b];
                double r = -pij / sqrt(pii * pjj);
                r = r > 1.0 ? 1.0 : (r < -1.0 ? -1.0 : r);
                C[(size_t)i * N + j] = (float)r;
            }
            b++;
        }
        a++;
    }
    return 0;
}

void connectivity_fisher_z(float *C, int N) {
    const double lim = 1.0 - CONNECTIVITY_Z_CLIP;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            size_t k = (size_t)i * N + j;
            if (i == j) {
                C[k] = 0.0f;
                continue;
            }
            double r = (double)C[k];
            r = r > lim ? lim : (r < -lim ? -lim : r);
            C[k] = (float)atanh(r);
        }
}

int64_t connectivity_adj_threshold(uint8_t *A, const float *C, int N, double tau,
                                   const uint8_t *flagged) {
    /* compared in float32, as the stored C against tau rounded to float32 (what numpy
     * does with `C > 0.3` on the float32 array) */
    const float t = (float)tau;
    int64_t m = 0;
    memset(A, 0, (size_t)N * N);
    for (int i = 0; i < N; i++) {
        if (is_flagged(flagged, i)) continue;
        for (int j = i + 1; j < N; j++) {
            if (is_flagged(flagged, j)) continue;
            if (C[(size_t)i * N + j] > t) {
                A[(size_t)i * N + j] = A[(size_t)j * N + i] = 1;
                m++;
            }
        }
    }
    return m;
}

/* k-th largest (0-based) of v[0..n-1] by quickselect (reorders v). Deterministic:
 * middle-element pivot, no randomness. */
static float kth_largest(float *v, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = v[lo + (hi - lo) / 2];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] > pivot) i++;
            while (v[j] < pivot) j--;
            if (i <= j) {
                float t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return v[k];
    }
    return v[k];
}

int64_t connectivity_adj_density(uint8_t *A, const float *C, int N, double d,
                                 const uint8_t *flagged, float *work) {
    memset(A, 0, (size_t)N * N);
    int64_t M = 0;
    for (int i = 0; i < N; i++) {
        if (is_flagged(flagged, i)) continue;
        for (int j = i + 1; j < N; j++)
            if (!is_flagged(flagged, j)) work[M++] = fabsf(C[(size_t)i * N + j]);
    }
    int64_t K = (int64_t)floor(d * (double)M + 0.5);
    if (K > M) K = M;
    if (K <= 0) return 0;
    float cut = kth_largest(work, M, K - 1);
    /* every pair strictly above the cut, then pairs equal to it in (i, j) order */
    int64_t above = 0;
    for (int i = 0; i < N; i++) {
        if (is_flagged(flagged, i)) continue;
        for (int j = i + 1; j < N; j++)
            if (!is_flagged(flagged, j) && fabsf(C[(size_t)i * N + j]) > cut) {
                A[(size_t)i * N + j] = A[(size_t)j * N + i] = 1;
                above++;
            }
    }
    int64_t ties = K - above;
    for (int i = 0; i < N && ties > 0; i++) {
        if (is_flagged(flagged, i)) continue;
        for (int j = i + 1; j < N && ties > 0; j++)
            if (!is_flagged(flagged, j) && fabsf(C[(size_t)i * N + j]) == cut) {
                A[(size_t)i * N + j] = A[(size_t)j * N + i] = 1;
                ties--;
            }
    }
    return K;
}

int64_t connectivity_rwse_work(int N, int k) {
    int h = (k + 1) / 2;
    if (h < 1) h = 1;
    return (int64_t)h * N * N;
}

void connectivity_rwse(float *R, const uint8_t *A, int N, int k, float *work) {
    const size_t NN = (size_t)N * N;
    int h = (k + 1) / 2;
    if (h < 1) h = 1;
    float *P = work; /* powers P^1..P^h, each N x N */
    for (int i = 0; i < N; i++) {
        double deg = 0.0;
        for (int j = 0; j < N; j++) deg += A[(size_t)i * N + j];
        float inv = (float)(1.0 / (deg > 1e-6 ? deg : 1e-6));
        for (int j = 0; j < N; j++) P[(size_t)i * N + j] = A[(size_t)i * N + j] ? inv : 0.0f;
    }
    for (int s = 2; s <= h; s++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f,
                    P + (size_t)(s - 2) * NN, N, P, N, 0.0f, P + (size_t)(s - 1) * NN, N);
    for (int s = 1; s <= k; s++) {
        if (s <= h) {
            const float *M = P + (size_t)(s - 1) * NN;
            for (int i = 0; i < N; i++) R[(size_t)i * k + (s - 1)] = M[(size_t)i * N + i];
        } else {
            /* (P^s)_ii = sum_j (P^h)_ij (P^(s-h))_ji */
            const float *X = P + (size_t)(h - 1) * NN, *Y = P + (size_t)(s - h - 1) * NN;
            for (int i = 0; i < N; i++) {
                double acc = 0.0;
                for (int j = 0; j < N; j++)
                    acc += (double)X[(size_t)i * N + j] * (double)Y[(size_t)j * N + i];
                R[(size_t)i * k + (s - 1)] = (float)acc;
            }
        }
    }
}

int connectivity_ws_init(connectivity_ws *w, int N, int64_t T, int k, bgfm_err *e) {
    memset(w, 0, sizeof *w);
    w->N = N;
    w->T = T;
    int64_t pairs = (int64_t)N * (N - 1) / 2;
    int64_t rw = connectivity_rwse_work(N, k);
    int64_t fw = pairs > rw ? pairs : rw;
    w->Z = bgfm_malloc(e, (size_t)(T > 0 ? T : 1) * (size_t)N * sizeof(float), "standardised series");
    w->fwork = bgfm_malloc(e, (size_t)(fw > 0 ? fw : 1) * sizeof(float), "connectivity workspace");
    size_t dw = (size_t)N * N > (size_t)N * 3 ? (size_t)N * N : (size_t)N * 3;
    w->dwork = bgfm_malloc(e, dw * sizeof(double), "partial correlation workspace");
    w->flag = bgfm_malloc(e, (size_t)N, "region flags");
    if (!w->Z || !w->fwork || !w->dwork || !w->flag) {
        connectivity_ws_free(w);
        return BGFM_ENOMEM;
    }
    return 0;
}

void connectivity_ws_free(connectivity_ws *w) {
    free(w->Z);
    free(w->fwork);
    free(w->dwork);
    free(w->flag);
    memset(w, 0, sizeof *w);
}

int connectivity_graph(const connectivity_params *p, const float *X, int64_t T, int N,
                       int64_t ldx, const uint8_t *flagged_in, float *fc, uint8_t *adj,
                       float *rwse, uint8_t *flag_out, connectivity_ws *w, int *region) {
    BGFM_ASSERT(w->N == N && w->T >= T);
    *region = -1;
    for (int i = 0; i < N; i++) w->flag[i] = flagged_in ? flagged_in[i] : 0;
    int bad = connectivity_check(X, T, N, ldx, w->flag, region);
    while (bad == 2 && p->constant == CONNECTIVITY_CONSTANT_FLAG) {
        w->flag[*region] = 1;
        bad = connectivity_check(X, T, N, ldx, w->flag, region);
    }
    if (bad) return bad;
    connectivity_standardise(w->Z, X, T, N, ldx, w->flag, w->dwork);
    connectivity_pearson(fc, w->Z, T, N, w->flag);
    if (p->measure != CONNECTIVITY_PEARSON) {
        double s = connectivity_lw_shrinkage(w->Z, fc, T, N, w->flag);
        connectivity_shrink(fc, N, s);
        if (p->measure == CONNECTIVITY_PARTIAL && connectivity_partial(fc, N, w->flag, w->dwork))
            return 3;
    }
    if (p->adj_rule == CONNECTIVITY_ADJ_THRESHOLD)
        connectivity_adj_threshold(adj, fc, N, p->adj_value, w->flag);
    else
        connectivity_adj_density(adj, fc, N, p->adj_value, w->flag, w->fwork);
    if (p->fisher_z) connectivity_fisher_z(fc, N);
    connectivity_rwse(rwse, adj, N, p->rwse_steps, w->fwork);
    if (flag_out) memcpy(flag_out, w->flag, (size_t)N);
    return 0;
}
