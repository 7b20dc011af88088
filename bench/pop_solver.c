/* pop_solver.c: benchmark driver for pop_solver (pca.h, pca_gram_top; docs/model.md
 * section 11): the population head's principal subspace found exactly (the n x n Gram
 * matrix and dsyevd) and by randomised subspace iteration, on the same rows, in the same
 * run. Prints, per solver, the time of pca_gram_top and of the whole head's fit
 * (pop_fit_rows with pop_rank: auto's rule, pop_site centre), the bytes the solver holds
 * beyond the rows, and how far the randomised answers lie from the exact ones: the
 * largest relative error of the 150 leading eigenvalues, the sine of the largest
 * principal angle between the two k-dimensional subspaces for k = 8, 16, 50 and 150, the
 * rank the rule counts with each, and the cosine between the heads' leading directions.
 * With EXACT=0 in the environment only the randomised solver runs (sizes where the exact
 * one would not fit). The process's peak resident memory closes the output. The rows: either a raw float32 file of n rows of T entries, with a
 * raw int64 file of their scans (bench/pop_solver.sh writes them from a study's graph
 * store), or S people of W windows with K planted person-level factors whose strengths
 * fall off as 1/k, a fingerprint per person and noise.
 * Not a test and not part of libbgfm: bench/pop_solver.sh builds it.
 *   pop_solver rows.f32 scans.i64 T
 *   pop_solver S W T */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include <cblas.h>
#include <lapacke.h>

#include "bgfm/pca.h"
#include "bgfm/pop.h"
#include "bgfm/rng.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *must(void *p) {
    if (!p) {
        fprintf(stderr, "pop_solver: out of memory\n");
        exit(5);
    }
    return p;
}

/* sine of the largest principal angle between span(A[:, :k]) and span(B[:, :k]), A and B
 * (n, m) row-major with orthonormal columns */
static double max_sine(const double *A, const double *B, int64_t n, int m, int k) {
    double *M = must(malloc((size_t)k * (size_t)k * sizeof *M));
    double *s = must(malloc((size_t)k * sizeof *s)), *sup = must(malloc((size_t)k * sizeof *sup));
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, k, (int)n, 1.0, A, m, B, m, 0.0, M, k);
    lapack_int info = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'N', 'N', k, k, M, k, s, NULL, 1, NULL, 1,
                                     sup);
    double c = info ? (double)NAN : s[k - 1]; /* the smallest cosine */
    free(M), free(s), free(sup);
    return sqrt(fmax(0.0, 1.0 - c * c));
}

static int read_file(const char *path, void *buf, size_t bytes) {
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(buf, 1, bytes, f) : 0;
    if (f) fclose(f);
    return got == bytes ? 0 : -1;
}

static void planted(int S, int W, int T, float *Z, int64_t *scan) {
    const int K = 12;
    rng_stream g;
    rng_init(&g, 11, RNG_USER, 0, 0, 0);
    double *dir = must(malloc((size_t)K * (size_t)T * sizeof *dir));
    double *f = must(malloc((size_t)T * sizeof *f));
    for (int k = 0; k < K; k++)
        for (int q = 0; q < T; q++) dir[(int64_t)k * T + q] = rng_normal(&g) / sqrt((double)T);
    for (int p = 0; p < S; p++) {
        double s[12];
        for (int k = 0; k < K; k++) s[k] = rng_normal(&g) * 6.0 / (k + 1);
        for (int q = 0; q < T; q++) f[q] = 0.4 * rng_normal(&g);
        for (int j = 0; j < W; j++) {
            const int64_t i = (int64_t)p * W + j;
            scan[i] = p;
            for (int q = 0; q < T; q++) {
                double x = f[q] + rng_normal(&g);
                for (int k = 0; k < K; k++) x += s[k] * dir[(int64_t)k * T + q] * sqrt((double)T);
                Z[i * T + q] = (float)(x / 3.0);
            }
        }
    }
    free(dir), free(f);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: pop_solver rows.f32 scans.i64 T | pop_solver S W T\n");
        return 2;
    }
    const int64_t T = atoll(argv[3]);
    const int exact = !getenv("EXACT") || strcmp(getenv("EXACT"), "0");
    int64_t n;
    float *Z;
    int64_t *scan;
    struct stat st;
    if (stat(argv[1], &st) == 0) {
        n = (int64_t)st.st_size / (T * (int64_t)sizeof(float));
        Z = must(malloc((size_t)(n * T) * sizeof *Z));
        scan = must(malloc((size_t)n * sizeof *scan));
        if (read_file(argv[1], Z, (size_t)(n * T) * sizeof *Z) ||
            read_file(argv[2], scan, (size_t)n * sizeof *scan)) {
            fprintf(stderr, "pop_solver: cannot read %s and %s as %lld rows\n", argv[1], argv[2],
                    (long long)n);
            return 4;
        }
        printf("rows %lld from %s, T %lld\n", (long long)n, argv[1], (long long)T);
    } else {
        const int S = atoi(argv[1]), W = atoi(argv[2]);
        n = (int64_t)S * W;
        Z = must(malloc((size_t)(n * T) * sizeof *Z));
        scan = must(malloc((size_t)n * sizeof *scan));
        planted(S, W, (int)T, Z, scan);
        printf("rows %lld (%d people x %d windows, 12 planted factors falling off as 1/k), T %lld\n",
               (long long)n, S, W, (long long)T);
    }
    /* the rows centred, in double, as pop_fit_rows centres them (one site) */
    double *Zc = must(malloc((size_t)(n * T) * sizeof *Zc)), *mu = must(calloc((size_t)T, sizeof *mu));
    for (int64_t i = 0; i < n; i++)
        for (int64_t q = 0; q < T; q++) mu[q] += (double)Z[i * T + q];
    for (int64_t q = 0; q < T; q++) mu[q] /= (double)n;
    for (int64_t i = 0; i < n; i++)
        for (int64_t q = 0; q < T; q++) Zc[i * T + q] = (double)Z[i * T + q] - mu[q];
    const int m = (int)(n < POP_PCA ? n : POP_PCA), r = POP_RANK_AUTO_MAX;
    double *U[2], *lam[2], t_top[2] = {0}, t_fit[2] = {0};
    float *Wh[2], b[POP_RANK_AUTO_MAX];
    int rank[2] = {0}, dims[2] = {0};
    pca_top_info ti[2];
    bgfm_err e = {0};
    for (int s = exact ? 0 : 1; s < 2; s++) {
        const int solver = s ? PCA_SOLVER_RANDOMISED : PCA_SOLVER_EXACT;
        U[s] = must(malloc((size_t)n * (size_t)m * sizeof *U[s]));
        lam[s] = must(malloc((size_t)m * sizeof *lam[s]));
        Wh[s] = must(malloc((size_t)r * (size_t)T * sizeof *Wh[s]));
        double t0 = now();
        if (pca_gram_top(Zc, n, T, m, solver, U[s], lam[s], &ti[s], "pop_solver", &e)) {
            fprintf(stderr, "pop_solver: %s\n", e.msg);
            return 6;
        }
        t_top[s] = now() - t0;
        const pop_fit_opts o = {.r = r, .auto_rank = 1, .shrink = 0.1, .site_mode = POP_SITE_CENTRE,
                                .solver = solver};
        pop_rows_out ro;
        t0 = now();
        if ((dims[s] = pop_fit_rows(Z, n, T, scan, NULL, 0, &o, Wh[s], b, NULL, NULL, &ro, &e)) < 0) {
            fprintf(stderr, "pop_solver: %s\n", e.msg);
            return 6;
        }
        t_fit[s] = now() - t0;
        rank[s] = ro.rank;
        const double bytes = s ? 8.0 * (double)ti[s].block * (double)(n + T + ti[s].block)
                               : 8.0 * (double)n * (double)n;
        printf("%-10s principal subspace %8.3f s, head (with the rule) %8.3f s, %9.1f MB beyond "
               "the rows; the rule counts %d, %d directions fitted",
               s ? "randomised" : "exact", t_top[s], t_fit[s], bytes / 1e6, rank[s], dims[s]);
        if (s) printf(" (block %d, %d iterations, last change %.1e)", ti[s].block, ti[s].iters,
                      ti[s].change);
        printf("\n");
    }
    if (exact) {
        double err = 0;
        for (int j = 0; j < m; j++) err = fmax(err, fabs(lam[1][j] - lam[0][j]) / lam[0][j]);
        printf("eigenvalues: largest relative error of the %d leading %.2e\n", m, err);
        const int ks[4] = {8, 16, 50, 150};
        printf("subspaces: sine of the largest principal angle");
        for (int q = 0; q < 4; q++)
            if (ks[q] <= m) printf("  k=%d %.2e", ks[q], max_sine(U[0], U[1], n, m, ks[q]));
        printf("\nhead directions, |cosine| exact vs randomised:");
        const int d = dims[0] < dims[1] ? dims[0] : dims[1];
        for (int k = 0; k < d && k < 8; k++) {
            double xy = 0, xx = 0, yy = 0;
            for (int64_t q = 0; q < T; q++) {
                xy += (double)Wh[0][k * T + q] * (double)Wh[1][k * T + q];
                xx += (double)Wh[0][k * T + q] * (double)Wh[0][k * T + q];
                yy += (double)Wh[1][k * T + q] * (double)Wh[1][k * T + q];
            }
            printf(" %.6f", fabs(xy) / sqrt(xx * yy));
        }
        printf("\nrandomised_over_exact: principal subspace %.3f, head %.3f\n",
               t_top[1] / t_top[0], t_fit[1] / t_fit[0]);
    }
    struct rusage ru;
    if (!getrusage(RUSAGE_SELF, &ru))
        printf("peak resident memory %.0f MB (the rows: %.0f MB as float, %.0f MB centred in "
               "double here and again in the head's fit)\n", (double)ru.ru_maxrss / 1024.0,
               4e-6 * (double)n * (double)T, 8e-6 * (double)n * (double)T);
    for (int s = exact ? 0 : 1; s < 2; s++) free(U[s]), free(lam[s]), free(Wh[s]);
    free(Z), free(scan), free(Zc), free(mu);
    return 0;
}
