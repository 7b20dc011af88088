/* dist.c: data-parallel helpers of the pretrain stage (dist.h): batch slices, gradient
 * all-reduce, row-sharded global-batch NT-Xent (its local kernels are layers.c's),
 * parameter identity check. Not the training loop. */
#include "bgfm/dist.h"

#include <string.h>

#include "bgfm/layers.h"
#include "bgfm/sha256.h"

void dist_slice(int64_t n, int size, int rank, int64_t *lo, int64_t *cnt) {
    int64_t q = n / size, r = n % size;
    *lo = (int64_t)rank * q + (rank < r ? rank : r);
    *cnt = q + (rank < r ? 1 : 0);
}

int dist_allreduce_sum(bgfm_ctx *ctx, float *g, int64_t n) {
    if (ctx->size == 1) return 0;
    const int64_t piece = (int64_t)1 << 30;
    int rc = 0; /* every piece on every rank whatever failed: the caller agrees */
    for (int64_t o = 0; o < n; o += piece) {
        int c = (int)(n - o < piece ? n - o : piece);
        int prc = BGFM_MPI(&ctx->err, MPI_Allreduce(MPI_IN_PLACE, g + o, c, MPI_FLOAT, MPI_SUM,
                                                     ctx->comm));
        if (!rc) rc = prc;
    }
    return rc;
}

void dist_bucket_init(dist_bucket *b, bgfm_ctx *ctx, float *g) {
    memset(b, 0, sizeof *b);
    b->ctx = ctx;
    b->g = g;
    b->req = MPI_REQUEST_NULL;
}

void dist_bucket_hook(void *arg, int64_t off, int64_t n) {
    dist_bucket *b = arg;
    BGFM_ASSERT(!b->posted && n < ((int64_t)1 << 31));
    b->off = off;
    b->posted = 1;
    if (b->ctx->size == 1) return;
    b->rc = BGFM_MPI(&b->ctx->err, MPI_Iallreduce(MPI_IN_PLACE, b->g + off, (int)n, MPI_FLOAT,
                                                  MPI_SUM, b->ctx->comm, &b->req));
}

int dist_bucket_finish(dist_bucket *b) {
    BGFM_ASSERT(b->posted);
    /* the head's reduction and the wait happen on every rank whatever failed before, so
     * the ranks leave with the same collective calls made; the caller agrees */
    int rc = dist_allreduce_sum(b->ctx, b->g, b->off);
    if (b->rc) rc = b->rc;
    if (b->req != MPI_REQUEST_NULL) {
        int wrc = BGFM_MPI(&b->ctx->err, MPI_Wait(&b->req, MPI_STATUS_IGNORE));
        if (!rc) rc = wrc;
    }
    if (!rc && bgfm_test_fault(b->ctx, "dist_bucket"))
        rc = bgfm_fail(&b->ctx->err, BGFM_EMPI, "the bucketed gradient all-reduce failed "
                       "(injected by the test hook BGFM_TEST_FAIL=dist_bucket)");
    return rc;
}

/* bgfm_malloc of n elements of sz bytes, counted into d->bytes */
static void *ntx_alloc(dist_ntx *d, bgfm_err *e, int64_t n, size_t sz, const char *what) {
    d->bytes += n * (int64_t)sz;
    return bgfm_malloc(e, (size_t)n * sz, what);
}

int dist_ntx_init(dist_ntx *d, const bgfm_ctx *ctx, int64_t B_max, int64_t P, bgfm_err *e) {
    memset(d, 0, sizeof *d);
    d->B_max = B_max;
    d->P = P;
    d->replicated = ctx->hooks && ctx->hooks->ntxent_replicated;
    const int64_t R = ctx->size, Bl = (B_max + R - 1) / R, zp = B_max * P;
    int ok = 1;
    if (d->replicated) {
        ok = (d->za = ntx_alloc(d, e, zp, sizeof(float), "global projections")) &&
             (d->zb = ntx_alloc(d, e, zp, sizeof(float), "global projections")) &&
             (d->dza = ntx_alloc(d, e, zp, sizeof(float), "global projection gradients")) &&
             (d->dzb = ntx_alloc(d, e, zp, sizeof(float), "global projection gradients")) &&
             (d->scratch = ntx_alloc(d, e, 4 * B_max * B_max, sizeof(float), "NT-Xent scratch"));
    } else {
        /* one rank: its rows are the whole batch, nothing to gather */
        ok = (R == 1 || (d->zg = ntx_alloc(d, e, 2 * zp, sizeof(float), "gathered projections"))) &&
             (d->s = ntx_alloc(d, e, 4 * Bl * B_max, sizeof(float), "NT-Xent similarity rows")) &&
             (d->st = ntx_alloc(d, e, 4 * B_max, sizeof(double), "NT-Xent anchor terms")) &&
             (d->work = ntx_alloc(d, e, 4 * B_max, sizeof(float), "NT-Xent anchor terms"));
    }
    ok = ok && (d->cnt = bgfm_calloc(e, (size_t)R, sizeof(int), "gather counts")) &&
         (d->displ = bgfm_calloc(e, (size_t)R, sizeof(int), "gather offsets")) &&
         (d->cnt2 = bgfm_calloc(e, (size_t)R, sizeof(int), "gather counts")) &&
         (d->displ2 = bgfm_calloc(e, (size_t)R, sizeof(int), "gather offsets"));
    if (!ok) {
        dist_ntx_free(d);
        return BGFM_ENOMEM;
    }
    return 0;
}

void dist_ntx_free(dist_ntx *d) {
    free(d->zg);
    free(d->s);
    free(d->st);
    free(d->work);
    free(d->cnt);
    free(d->displ);
    free(d->cnt2);
    free(d->displ2);
    free(d->za);
    free(d->zb);
    free(d->dza);
    free(d->dzb);
    free(d->scratch);
    memset(d, 0, sizeof *d);
}

/* The previous scheme, kept for bench/ntxent_scaling.sh (test hook): both views gathered
 * in global order, the whole (2n)^2 loss on every rank, this rank's rows kept. */
static int ntx_replicated(bgfm_ctx *ctx, dist_ntx *d, const float *z, float *dz, int64_t n,
                          int64_t P, double tau, double scale, double *loss) {
    int64_t lo = 0, b = 0;
    dist_slice(n, ctx->size, ctx->rank, &lo, &b);
    for (int r = 0; r < ctx->size; r++) {
        int64_t l, c;
        dist_slice(n, ctx->size, r, &l, &c);
        d->cnt[r] = (int)(c * P);
        d->displ[r] = (int)(l * P);
    }
    const float *za = z, *zb = z + b * P;
    int rc = BGFM_MPI(&ctx->err, MPI_Allgatherv(za, (int)(b * P), MPI_FLOAT, d->za, d->cnt,
                                                d->displ, MPI_FLOAT, ctx->comm));
    int rc2 = BGFM_MPI(&ctx->err, MPI_Allgatherv(zb, (int)(b * P), MPI_FLOAT, d->zb, d->cnt,
                                                 d->displ, MPI_FLOAT, ctx->comm));
    if (rc || rc2) return rc ? rc : rc2;
    double t0 = MPI_Wtime();
    memset(d->dza, 0, (size_t)(n * P) * sizeof(float));
    memset(d->dzb, 0, (size_t)(n * P) * sizeof(float));
    *loss = layer_ntxent(d->dza, d->dzb, d->za, d->zb, n, P, tau, scale, d->scratch);
    for (int64_t i = 0; i < b * P; i++) {
        dz[i] += d->dza[lo * P + i];
        dz[b * P + i] += d->dzb[lo * P + i];
    }
    d->compute_s = MPI_Wtime() - t0;
    return 0;
}

int dist_ntxent(bgfm_ctx *ctx, dist_ntx *d, const float *z, float *dz, int64_t n, int64_t P,
                double tau, double scale, double *loss) {
    BGFM_ASSERT(n <= d->B_max && P == d->P && 2 * n * P < ((int64_t)1 << 31));
    if (d->replicated) {
        int rc = ntx_replicated(ctx, d, z, dz, n, P, tau, scale, loss);
        if (!rc && bgfm_test_fault(ctx, "dist_ntxent"))
            rc = bgfm_fail(&ctx->err, BGFM_EMPI, "the global NT-Xent gather failed (injected "
                           "by the test hook BGFM_TEST_FAIL=dist_ntxent)");
        return rc;
    }
    int64_t lo = 0, b = 0;
    dist_slice(n, ctx->size, ctx->rank, &lo, &b);
    /* rank-major order: rank r's 2 b_r anchors (its view-a rows, then its view-b rows)
     * at rows [2 lo_r, 2 lo_r + 2 b_r), which is its own z: one gather, no reordering */
    for (int r = 0; r < ctx->size; r++) {
        int64_t l, c;
        dist_slice(n, ctx->size, r, &l, &c);
        d->cnt[r] = (int)(2 * c * P);
        d->displ[r] = (int)(2 * l * P);
        d->cnt2[r] = (int)(4 * c);
        d->displ2[r] = (int)(4 * l);
    }
    const float *zg = z;
    int rc = 0, rc2 = 0;
    if (ctx->size > 1) { /* both gathers on every rank; a failure is returned after them */
        rc = BGFM_MPI(&ctx->err, MPI_Allgatherv(z, (int)(2 * b * P), MPI_FLOAT, d->zg, d->cnt,
                                                d->displ, MPI_FLOAT, ctx->comm));
        zg = d->zg;
    }
    const int64_t k = 2 * n, c0 = 2 * lo;
    double t0 = MPI_Wtime();
    layer_ntxent_rows(d->s, d->st + 2 * c0, z, zg, 2 * b, k, P, c0, tau);
    d->compute_s = MPI_Wtime() - t0;
    if (ctx->size > 1)
        rc2 = BGFM_MPI(&ctx->err, MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, d->st,
                                                 d->cnt2, d->displ2, MPI_DOUBLE, ctx->comm));
    if (rc || rc2) return rc ? rc : rc2;
    if (bgfm_test_fault(ctx, "dist_ntxent"))
        return bgfm_fail(&ctx->err, BGFM_EMPI, "the global NT-Xent gather failed (injected by "
                         "the test hook BGFM_TEST_FAIL=dist_ntxent)");
    /* the loss in global anchor order (every view a, then every view b), from the
     * gathered terms: the same sum, in the same order, on every rank */
    double sum = 0;
    for (int v = 0; v < 2; v++)
        for (int r = 0; r < ctx->size; r++) {
            int64_t l, c;
            dist_slice(n, ctx->size, r, &l, &c);
            for (int64_t i = 0; i < c; i++) sum += d->st[2 * (2 * l + v * c + i) + 1];
        }
    *loss = sum / (double)k;
    t0 = MPI_Wtime();
    layer_ntxent_rows_backward(dz, d->s, d->st, zg, 2 * b, k, P, c0, tau, scale, d->work);
    d->compute_s += MPI_Wtime() - t0;
    return 0;
}

int dist_check_identical(bgfm_ctx *ctx, const float *w, int64_t n, const char *what, int64_t step) {
    if (ctx->size == 1) return 0;
    /* rank 0's digest to everyone, then the lowest rank that differs: no allocation, so
     * every rank makes both calls */
    uint8_t mine[32], ref[32];
    sha256_ctx s;
    sha256_init(&s);
    sha256_update(&s, w, (size_t)n * sizeof(float));
    sha256_final(&s, mine);
    memcpy(ref, mine, sizeof ref);
    int rc = BGFM_MPI(&ctx->err, MPI_Bcast(ref, 32, MPI_BYTE, 0, ctx->comm));
    int differs = memcmp(ref, mine, 32) ? ctx->rank : ctx->size, bad = ctx->size;
    int rc2 = BGFM_MPI(&ctx->err, MPI_Allreduce(&differs, &bad, 1, MPI_INT, MPI_MIN, ctx->comm));
    if (rc || rc2) return rc ? rc : rc2;
    if (bad == ctx->size) return 0;
    return bgfm_fail(&ctx->err, BGFM_EINTERNAL,
                     "BGFM_DEBUG_SYNC: %s differ between rank 0 and rank %d after step %lld "
                     "(SHA-256 of the flat buffer); the data-parallel update is broken: report "
                     "this with the MPI library and rank count", what, bad, (long long)step);
}
