/* test_layers.c: every layer kind's backward against central finite differences of
 * its float32 forward (loss = sum(R * out) in double, R random), relative L2 error
 * over sampled entries. Not a model test (test_model.c, tests/reference/). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <string.h>
#include <cmocka.h>
#include <cblas.h>
#include <stdlib.h>

#include "bgfm/layers.h"
#include "bgfm/rng.h"

#define MAXN 4096
typedef double (*loss_fn)(void);

static float bufs[16][MAXN], grads[16][MAXN], Rw[MAXN], outb[MAXN], scr[4 * MAXN];

static void fill(float *x, int n, uint64_t key, double sc) {
    rng_stream r;
    rng_init(&r, 99, RNG_USER, key, 0, 0);
    for (int i = 0; i < n; i++) x[i] = (float)(sc * rng_normal(&r));
}

static double dotR(const float *o, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)o[i] * (double)Rw[i];
    return s;
}

/* Compare grads[g] (analytic) with central differences of f over up to 60 entries. */
static double fd_check(loss_fn f, int g, int n, float eps) {
    double num2 = 0, err2 = 0;
    int step = n / 60 + 1;
    for (int i = 0; i < n; i += step) {
        float x = bufs[g][i];
        bufs[g][i] = x + eps;
        double lp = f();
        bufs[g][i] = x - eps;
        double lm = f();
        bufs[g][i] = x;
        double num = (lp - lm) / (2.0 * (double)eps), ana = (double)grads[g][i];
        num2 += num * num;
        err2 += (num - ana) * (num - ana);
    }
    return sqrt(err2 / (num2 > 1e-30 ? num2 : 1e-30));
}

/* ---- linear ---- */
enum { LN_ = 7, LC = 5, LO = 6 };
static double f_linear(void) {
    layer_linear_forward(NULL, outb, bufs[0], bufs[1], LC, bufs[2], LN_, LC, LO);
    return dotR(outb, LN_ * LO);
}
static void test_linear(void **st) {
    (void)st;
    fill(bufs[0], LN_ * LC, 1, 1), fill(bufs[1], LO * LC, 2, 1), fill(bufs[2], LO, 3, 1);
    fill(Rw, LN_ * LO, 4, 1);
    memset(grads, 0, sizeof grads);
    layer_linear_backward(NULL, grads[0], grads[1], grads[2], Rw, bufs[0], bufs[1], LC, LN_, LC, LO);
    for (int g = 0; g < 3; g++) assert_true(fd_check(f_linear, g, g == 0 ? LN_ * LC : g == 1 ? LO * LC : LO, 1e-2f) < 1e-3);
}

/* ---- layernorm ---- */
static float xh[MAXN], rs[MAXN];
static double f_ln(void) {
    layer_norm_forward(outb, xh, rs, bufs[0], bufs[1], bufs[2], 6, 16);
    return dotR(outb, 96);
}
static void test_layernorm(void **st) {
    (void)st;
    fill(bufs[0], 96, 5, 2), fill(bufs[1], 16, 6, 1), fill(bufs[2], 16, 7, 1), fill(Rw, 96, 8, 1);
    memset(grads, 0, sizeof grads);
    f_ln();
    layer_norm_backward(grads[0], grads[1], grads[2], Rw, xh, rs, bufs[1], 6, 16);
    for (int g = 0; g < 3; g++) assert_true(fd_check(f_ln, g, g ? 16 : 96, 1e-2f) < 5e-3);
}

/* ---- relu ---- */
static double f_relu(void) {
    layer_relu_forward(outb, bufs[0], 50);
    return dotR(outb, 50);
}
static void test_relu(void **st) {
    (void)st;
    fill(bufs[0], 50, 9, 1), fill(Rw, 50, 10, 1);
    for (int i = 0; i < 50; i++) /* keep away from the kink */
        if (fabsf(bufs[0][i]) < 0.05f) bufs[0][i] = 0.5f;
    memset(grads, 0, sizeof grads);
    layer_relu_backward(grads[0], Rw, bufs[0], 50);
    assert_true(fd_check(f_relu, 0, 50, 1e-2f) < 1e-4);
}

/* ---- gcn ---- */
static int32_t rp[64], cl[1024];
static float vl[1024];
static layer_csr csr;
static double f_gcn(void) {
    layer_gcn_propagate(outb, bufs[0], &csr, 8, 8, 0);
    return dotR(outb, csr.n * 8);
}
static void test_gcn(void **st) {
    (void)st;
    enum { N = 12 };
    uint8_t adj[N * N], keep[N * N];
    rng_stream r;
    rng_init(&r, 1, RNG_USER, 11, 0, 0);
    for (int i = 0; i < N; i++)
        for (int j = 0; j <= i; j++) {
            adj[i * N + j] = adj[j * N + i] = i != j && rng_uniform(&r) < 0.3;
            keep[i * N + j] = keep[j * N + i] = rng_uniform(&r) < 0.8;
        }
    int32_t idx[9] = {0, 1, 3, 4, 5, 7, 8, 10, 11};
    csr.rowptr = rp, csr.col = cl, csr.val = vl;
    layer_csr_build(&csr, adj, keep, N, idx, 9);
    /* Ahat against a dense construction */
    double D[9] = {0};
    for (int i = 0; i < 9; i++) {
        D[i] = 1;
        for (int j = 0; j < 9; j++)
            D[i] += i != j && adj[idx[i] * N + idx[j]] && keep[idx[i] * N + idx[j]];
    }
    for (int i = 0; i < 9; i++)
        for (int p = rp[i]; p < rp[i + 1]; p++) {
            int j = cl[p];
            assert_true(i == j || (adj[idx[i] * N + idx[j]] && keep[idx[i] * N + idx[j]]));
            assert_true(fabs((double)vl[p] - 1.0 / sqrt(D[i] * D[j])) < 1e-6);
        }
    fill(bufs[0], 72, 12, 1), fill(Rw, 72, 13, 1);
    memset(grads, 0, sizeof grads);
    layer_gcn_propagate(grads[0], Rw, &csr, 8, 8, 1);
    assert_true(fd_check(f_gcn, 0, 72, 1e-2f) < 1e-3);
}

/* ---- attention (with and without weight dropout) ---- */
static layer_attn_drop adrop;
static float lse[256];
enum { AT = 9, AH = 8, ANH = 2 };
static double f_attn(void) {
    layer_attn_forward(outb, lse, bufs[0], AT, AH, ANH, &adrop, scr);
    return dotR(outb, AT * AH);
}
static void attn_case(float p) {
    adrop = (layer_attn_drop){p, 3, 4, 5, 6};
    fill(bufs[0], AT * 3 * AH, 14, 1), fill(Rw, AT * AH, 15, 1);
    memset(grads, 0, sizeof grads);
    f_attn();
    memcpy(bufs[1], outb, sizeof(float) * AT * AH);
    layer_attn_backward(grads[0], Rw, bufs[0], bufs[1], lse, AT, AH, ANH, &adrop, scr);
    assert_true(fd_check(f_attn, 0, AT * 3 * AH, 1e-2f) < 5e-3);
}
static void test_attention(void **st) {
    (void)st;
    attn_case(0.0f);
    attn_case(0.3f);
}

/* ---- meanpool, l2norm ---- */
static double f_pool(void) {
    layer_meanpool_forward(outb, bufs[0], 7, 5, 6);
    return dotR(outb, 5);
}
static float nrm[64];
static double f_l2(void) {
    layer_l2norm_forward(outb, nrm, bufs[0], 4, 6);
    return dotR(outb, 24);
}
static void test_pool_l2norm(void **st) {
    (void)st;
    fill(bufs[0], 42, 16, 1), fill(Rw, 24, 17, 1);
    memset(grads, 0, sizeof grads);
    layer_meanpool_backward(grads[0], Rw, 7, 5, 6);
    assert_true(fd_check(f_pool, 0, 42, 1e-2f) < 1e-3);
    memset(grads, 0, sizeof grads);
    f_l2();
    layer_l2norm_backward(grads[0], Rw, outb, nrm, 4, 6);
    assert_true(fd_check(f_l2, 0, 24, 1e-2f) < 5e-3);
}

/* ---- dropout: the mask is a pure function of the stream key ---- */
static void test_dropout(void **st) {
    (void)st;
    float a[101], b[101];
    for (int i = 0; i < 101; i++) a[i] = b[i] = 1.0f;
    rng_stream r1, r2;
    rng_init(&r1, 1, RNG_DROPOUT, 2, 3, 4);
    rng_init(&r2, 1, RNG_DROPOUT, 2, 3, 4);
    layer_dropout(a, 101, 0.25f, &r1);
    layer_dropout(b, 101, 0.25f, &r2);
    int zeros = 0;
    for (int i = 0; i < 101; i++) {
        assert_true(a[i] == b[i]);
        assert_true(a[i] == 0.0f || fabsf(a[i] - 1.0f / 0.75f) < 1e-6f);
        zeros += a[i] == 0.0f;
    }
    assert_true(zeros > 10 && zeros < 45);
}

/* ---- losses ---- */
static double f_sl1(void) { return layer_smoothl1(NULL, bufs[0], bufs[1], 40, 1.0); }
static uint8_t badj[100];
static int32_t bidx[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
static double f_bce(void) { return layer_bce_struct(NULL, bufs[0], 10, 6, 6, badj, 10, bidx, 1.0, scr); }
static double f_ntx(void) {
    float dza[64], dzb[64];
    memset(dza, 0, sizeof dza), memset(dzb, 0, sizeof dzb);
    return layer_ntxent(dza, dzb, bufs[0], bufs[1], 4, 5, 0.5, 1.0, scr);
}
/* layer_gemm over a team of 2 and 3 threads: the same bits as with no team, for every
 * transpose combination, cut by rows (M >= N) and by columns, sizes that are not
 * multiples of the 16-row blocks; the linear layer's bias fill too. Each product is
 * also checked against a double-precision one. */
static void test_gemm_team(void **st) {
    (void)st;
    const int64_t shapes[3][3] = {{333, 77, 129}, {45, 517, 96}, {4096, 128, 128}};
    int nt0 = openblas_get_num_threads();
    openblas_set_num_threads(1);
    for (int sh = 0; sh < 3; sh++) {
        int64_t M = shapes[sh][0], N = shapes[sh][1], K = shapes[sh][2];
        float *A = malloc(sizeof(float) * (size_t)(M * K)), *B = malloc(sizeof(float) * (size_t)(K * N));
        float *C1 = malloc(sizeof(float) * (size_t)(M * N)), *C2 = malloc(sizeof(float) * (size_t)(M * N));
        float *bias = malloc(sizeof(float) * (size_t)N);
        assert_true(A && B && C1 && C2 && bias);
        rng_stream r;
        rng_init(&r, 3, RNG_USER, (uint64_t)sh, 0, 0);
        for (int64_t i = 0; i < M * K; i++) A[i] = (float)rng_normal(&r);
        for (int64_t i = 0; i < K * N; i++) B[i] = (float)rng_normal(&r);
        for (int64_t i = 0; i < N; i++) bias[i] = (float)rng_normal(&r);
        for (int th = 2; th <= 3; th++) {
            par_pool *p = NULL;
            bgfm_err e = {0};
            assert_int_equal(par_pool_create(&p, th, &e), 0);
            for (int ta = 0; ta < 2; ta++)
                for (int tb = 0; tb < 2; tb++) {
                    int64_t lda = ta ? M : K, ldb = tb ? K : N;
                    for (int64_t i = 0; i < M * N; i++) C1[i] = C2[i] = (float)(i % 13) * 0.5f;
                    layer_gemm(NULL, ta, tb, M, N, K, 0.7f, A, lda, B, ldb, 0.5f, C1, N);
                    layer_gemm(p, ta, tb, M, N, K, 0.7f, A, lda, B, ldb, 0.5f, C2, N);
                    assert_memory_equal(C1, C2, sizeof(float) * (size_t)(M * N));
                    /* one element against a double-precision dot product */
                    int64_t i = M / 3, j = N / 2;
                    double d = 0.5 * (double)((i * N + j) % 13) * 0.5;
                    for (int64_t k = 0; k < K; k++)
                        d += 0.7 * (double)(ta ? A[k * M + i] : A[i * K + k]) *
                             (double)(tb ? B[j * K + k] : B[k * N + j]);
                    assert_true(fabs((double)C2[i * N + j] - d) < 1e-3 * (1.0 + fabs(d)));
                }
            /* linear forward: out = inp W^T + b, W (N, K) */
            layer_linear_forward(NULL, C1, A, B, K, bias, M, K, N);
            layer_linear_forward(p, C2, A, B, K, bias, M, K, N);
            assert_memory_equal(C1, C2, sizeof(float) * (size_t)(M * N));
            par_pool_free(&p);
        }
        free(A), free(B), free(C1), free(C2), free(bias);
    }
    openblas_set_num_threads(nt0);
}

static void test_losses(void **st) {
    (void)st;
    fill(bufs[0], 40, 18, 2), fill(bufs[1], 40, 19, 1);
    for (int i = 0; i < 40; i++)
        if (fabsf(fabsf(bufs[0][i] - bufs[1][i]) - 1.0f) < 0.05f) bufs[0][i] += 0.2f;
    memset(grads, 0, sizeof grads);
    layer_smoothl1(grads[0], bufs[0], bufs[1], 40, 1.0);
    assert_true(fd_check(f_sl1, 0, 40, 1e-3f) < 1e-3);
    for (int i = 0; i < 100; i++) badj[i] = (uint8_t)((i * 7 + i / 10) % 3 == 0);
    for (int i = 0; i < 10; i++) badj[i * 11] = 0;
    fill(bufs[0], 60, 20, 1);
    memset(grads, 0, sizeof grads);
    layer_bce_struct(grads[0], bufs[0], 10, 6, 6, badj, 10, bidx, 1.0, scr);
    assert_true(fd_check(f_bce, 0, 60, 1e-2f) < 2e-3);
    /* NT-Xent on unit vectors; the gradient is checked for both views */
    fill(bufs[0], 20, 21, 1), fill(bufs[1], 20, 22, 1);
    memset(grads, 0, sizeof grads);
    layer_ntxent(grads[0], grads[1], bufs[0], bufs[1], 4, 5, 0.5, 1.0, scr);
    assert_true(fd_check(f_ntx, 0, 20, 1e-2f) < 2e-3);
    assert_true(fd_check(f_ntx, 1, 20, 1e-2f) < 2e-3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),    cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_relu),      cmocka_unit_test(test_gcn),
        cmocka_unit_test(test_attention), cmocka_unit_test(test_pool_l2norm),
        cmocka_unit_test(test_dropout),   cmocka_unit_test(test_losses),
        cmocka_unit_test(test_gemm_team),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
