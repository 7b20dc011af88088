/* allreduce.c: MPI microbenchmark for the scaling model (docs/scaling.md): ping-pong
 * between ranks 0 and 1, MPI_Allreduce (sum, float) and MPI_Allgather over message sizes,
 * then alpha = the time of the smallest message (64 B) and beta = the slope between the
 * two largest messages (inverse bandwidth), i.e. t(n) ~ alpha + n beta.
 * Not a test and not a general MPI benchmark suite (no non-blocking or topology cases).
 *
 *   mpirun -np P allreduce [MAX_BYTES] [REPS]
 * prints "op bytes seconds" lines (median over REPS of the max over ranks), then
 *   "fit pingpong alpha_s ... beta_s_per_byte ..." and the same for allreduce/allgather. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One timed repetition of `op` on n bytes; returns the max over ranks. */
static double once(int op, char *buf, char *buf2, long n, int rank, int size) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    if (op == 0) { /* ping-pong, one-way time */
        if (rank == 0) {
            MPI_Send(buf, (int)n, MPI_BYTE, 1, 7, MPI_COMM_WORLD);
            MPI_Recv(buf, (int)n, MPI_BYTE, 1, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else if (rank == 1) {
            MPI_Recv(buf, (int)n, MPI_BYTE, 0, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(buf, (int)n, MPI_BYTE, 0, 7, MPI_COMM_WORLD);
        }
    } else if (op == 1) {
        MPI_Allreduce(MPI_IN_PLACE, buf, (int)(n / 4), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    } else {
        MPI_Allgather(buf, (int)(n / size), MPI_BYTE, buf2, (int)(n / size), MPI_BYTE,
                      MPI_COMM_WORLD);
    }
    double t = MPI_Wtime() - t0, tmax = 0;
    if (op == 0) t /= 2;
    MPI_Allreduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return tmax;
}

int main(int argc, char **argv) {
    if (MPI_Init(&argc, &argv) != MPI_SUCCESS) return 1;
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    long maxb = argc > 1 ? atol(argv[1]) : 16L << 20;
    int reps = argc > 2 ? atoi(argv[2]) : 30;
    if (size < 2 || maxb < 64 || reps < 3) {
        if (rank == 0) fprintf(stderr, "allreduce: needs >= 2 ranks, MAX_BYTES >= 64, REPS >= 3\n");
        MPI_Finalize();
        return 2;
    }
    char *buf = calloc((size_t)maxb, 1), *buf2 = calloc((size_t)maxb * 2, 1);
    double *t = calloc((size_t)reps, sizeof *t);
    if (!buf || !buf2 || !t) {
        fprintf(stderr, "allreduce: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 5);
    }
    static const char *const names[3] = {"pingpong", "allreduce", "allgather"};
    for (int op = 0; op < 3; op++) {
        double t_small = -1, t_prev = 0, t_last = 0;
        long n_prev = 0, n_last = 0;
        for (long n = 64; n <= maxb; n *= 4) {
            long nn = op == 2 ? n - n % size : n;
            once(op, buf, buf2, nn, rank, size); /* warm-up */
            for (int r = 0; r < reps; r++) t[r] = once(op, buf, buf2, nn, rank, size);
            qsort(t, (size_t)reps, sizeof *t, cmp_double);
            double med = t[reps / 2];
            if (rank == 0) printf("%s %ld %.9g\n", names[op], nn, med);
            if (t_small < 0) t_small = med;
            t_prev = t_last, n_prev = n_last, t_last = med, n_last = nn;
        }
        double a = t_small, b = (t_last - t_prev) / (double)(n_last - n_prev);
        if (rank == 0)
            printf("fit %s ranks %d alpha_s %.6g beta_s_per_byte %.6g\n", names[op], size, a, b);
    }
    free(buf);
    free(buf2);
    free(t);
    MPI_Finalize();
    return 0;
}
