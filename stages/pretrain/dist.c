/* dist.c: data-parallel helpers of the pretrain stage (dist.h): batch slices, gradient
 * all-reduce, global-batch NT-Xent, parameter identity check. Not the training loop. */
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

int dist_ntx_init(dist_ntx *d, const bgfm_ctx *ctx, int64_t B_max, int64_t P, bgfm_err *e) {
    memset(d, 0, sizeof *d);
    d->B_max = B_max;
    d->P = P;
    size_t zp = (size_t)(B_max * P);
    d->za = bgfm_malloc(e, zp * sizeof(float), "global projections");
    d->zb = bgfm_malloc(e, zp * sizeof(float), "global projections");
    d->dza = bgfm_malloc(e, zp * sizeof(float), "global projection gradients");
    d->dzb = bgfm_malloc(e, zp * sizeof(float), "global projection gradients");
    d->scratch = bgfm_malloc(e, (size_t)(4 * B_max * B_max) * sizeof(float), "NT-Xent scratch");
    d->cnt = bgfm_calloc(e, (size_t)ctx->size, sizeof(int), "gather counts");
    d->displ = bgfm_calloc(e, (size_t)ctx->size, sizeof(int), "gather offsets");
    if (!d->za || !d->zb || !d->dza || !d->dzb || !d->scratch || !d->cnt || !d->displ) {
        dist_ntx_free(d);
        return BGFM_ENOMEM;
    }
    return 0;
}

void dist_ntx_free(dist_ntx *d) {
    free(d->za);
    free(d->zb);
    free(d->dza);
    free(d->dzb);
    free(d->scratch);
    free(d->cnt);
    free(d->displ);
    memset(d, 0, sizeof *d);
}

int dist_ntxent(bgfm_ctx *ctx, dist_ntx *d, const float *z, float *dz, int64_t n, int64_t P,
                double tau, double scale, double *loss) {
    BGFM_ASSERT(n <= d->B_max && P == d->P && n * P < ((int64_t)1 << 31));
    int64_t lo = 0, b = 0;
    dist_slice(n, ctx->size, ctx->rank, &lo, &b);
    for (int r = 0; r < ctx->size; r++) {
        int64_t l, c;
        dist_slice(n, ctx->size, r, &l, &c);
        d->cnt[r] = (int)(c * P);
        d->displ[r] = (int)(l * P);
    }
    const float *za = z, *zb = z + b * P;
    if (ctx->size == 1) {
        memcpy(d->za, za, (size_t)(n * P) * sizeof(float));
        memcpy(d->zb, zb, (size_t)(n * P) * sizeof(float));
    } else { /* both gathers on every rank; a failure is returned after them */
        int rc = BGFM_MPI(&ctx->err, MPI_Allgatherv(za, (int)(b * P), MPI_FLOAT, d->za, d->cnt,
                                                    d->displ, MPI_FLOAT, ctx->comm));
        int rc2 = BGFM_MPI(&ctx->err, MPI_Allgatherv(zb, (int)(b * P), MPI_FLOAT, d->zb, d->cnt,
                                                     d->displ, MPI_FLOAT, ctx->comm));
        if (rc || rc2) return rc ? rc : rc2;
    }
    if (bgfm_test_fault(ctx, "dist_ntxent"))
        return bgfm_fail(&ctx->err, BGFM_EMPI, "the global NT-Xent gather failed (injected by "
                         "the test hook BGFM_TEST_FAIL=dist_ntxent)");
    memset(d->dza, 0, (size_t)(n * P) * sizeof(float));
    memset(d->dzb, 0, (size_t)(n * P) * sizeof(float));
    *loss = layer_ntxent(d->dza, d->dzb, d->za, d->zb, n, P, tau, scale, d->scratch);
    /* this rank's rows of the gradient of the global loss */
    for (int64_t i = 0; i < b * P; i++) {
        dz[i] += d->dza[lo * P + i];
        dz[b * P + i] += d->dzb[lo * P + i];
    }
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
