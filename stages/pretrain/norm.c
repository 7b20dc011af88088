/* norm.c: fitting the population input normalisation (norm.h). Each FC entry x (clipped
 * to +-NORM_CLIP) adds round(x 2^32) and round(x^2 2^26) to int64 sums: integer sums
 * are exact in any order, so MPI_Allreduce gives the same sums, and the model the same
 * buffers, for any rank count. The bounds hold for up to 2^27 graphs per atlas. */
#include "bgfm/norm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SCALE_X 4294967296.0 /* 2^32 */
#define SCALE_Q 67108864.0   /* 2^26 */

static int fit_atlas(MPI_Comm comm, bgfm_err *e, model *m, graphs_store *gs, int sa, int ma,
                     const int64_t *graphs, int64_t n, int rank, int size) {
    int64_t N = graphs_atlas_nodes(gs, sa), NN = N * N;
    int64_t *acc = bgfm_calloc(e, (size_t)(2 * NN + 1), sizeof *acc, "input normalisation sums");
    float *fc = bgfm_malloc(e, (size_t)NN * sizeof *fc, "input normalisation graph");
    int rc = acc && fc ? 0 : BGFM_ENOMEM;
    int64_t seen = 0;
    for (int64_t i = 0; i < n && !rc; i++) {
        if (graphs_get_meta(gs, graphs[i])->atlas != sa) continue;
        if (seen++ % size != rank) continue;
        if ((rc = graphs_read(gs, &graphs[i], 1, fc, NULL, NULL, e))) break;
        for (int64_t q = 0; q < NN; q++) {
            double x = fc[q];
            /* a non-finite entry adds 0 here (llround of NaN is undefined); training then
             * stops at that graph's first step with exit 6 naming it */
            if (!isfinite(x)) x = 0;
            x = x > NORM_CLIP ? NORM_CLIP : x < -NORM_CLIP ? -NORM_CLIP : x;
            acc[q] += llround(x * SCALE_X);
            acc[NN + q] += llround(x * x * SCALE_Q);
        }
        acc[2 * NN]++;
    }
    rc = bgfm_err_agree(comm, e, rc);
    if (!rc) rc = BGFM_MPI(e, MPI_Allreduce(MPI_IN_PLACE, acc, (int)(2 * NN + 1), MPI_INT64_T,
                                            MPI_SUM, comm));
    if (!rc && acc[2 * NN] > 0) {
        double cnt = (double)acc[2 * NN];
        float *mu = m->w + m->nm_mean[ma], *sd = m->w + m->nm_std[ma];
        for (int64_t q = 0; q < NN; q++) {
            double mean = (double)acc[q] / SCALE_X / cnt;
            double var = (double)acc[NN + q] / SCALE_Q / cnt - mean * mean;
            double s = sqrt(var > 0 ? var : 0);
            mu[q] = (float)mean;
            sd[q] = (float)(s > NORM_SD_FLOOR ? s : NORM_SD_FLOOR);
        }
    }
    free(acc);
    free(fc);
    return rc;
}

int norm_fit(MPI_Comm comm, bgfm_err *e, model *m, graphs_store *gs, const int64_t *graphs,
             int64_t n) {
    if (!m->cfg.norm) return 0;
    int rank = 0, size = 1;
    int rc = BGFM_MPI(e, MPI_Comm_rank(comm, &rank));
    if (!rc) rc = BGFM_MPI(e, MPI_Comm_size(comm, &size));
    for (int sa = 0; sa < graphs_n_atlases(gs) && !rc; sa++) {
        int ma = model_atlas_find(m, graphs_atlas_name(gs, sa));
        if (ma < 0 || m->cfg.atlas_nodes[ma] != graphs_atlas_nodes(gs, sa)) continue;
        rc = fit_atlas(comm, e, m, gs, sa, ma, graphs, n, rank, size);
    }
    return rc;
}
