/* child.h: the one way bgfm starts another program (gnuplot, mpirun, sbatch): from an
 * argv, never through a shell, with posix_spawn, and waits for it. posix_spawn does not
 * fork() the caller's address space (glibc uses clone(CLONE_VM | CLONE_VFORK)), so it is
 * safe inside an MPI rank, where a fork() would duplicate the interconnect's registered
 * memory and its progress threads. The child's environment is ours without the variables
 * MPI put into this process (child_env_keep), so an mpirun or sbatch it starts is not
 * mistaken for a rank of our job. Not a job launcher: scale.c and submit.c decide what
 * to run. Non-collective. */
#ifndef BGFM_CHILD_H
#define BGFM_CHILD_H

#include <stddef.h>

#include "bgfm/ctx.h"

typedef struct child_opts {
    const char *dir;         /* the child's working folder; NULL: ours */
    const char *log;         /* stdout and stderr appended to this file; NULL: see `out` */
    char *out;               /* with log NULL: stdout captured here (NUL-terminated, cut at
                                out_size - 1 bytes); both NULL: stdout and stderr inherited */
    size_t out_size;
    int blas_one;            /* add OPENBLAS_NUM_THREADS=1 to the environment when unset */
} child_opts;

/* Run argv[0] (PATH lookup) with stdin from /dev/null and wait. *code is its exit status
 * (128 + signal when killed). Returns 0 when it ran (whatever its status); BGFM_EUSAGE
 * "cannot start 'PROG': ..." (naming PATH when not found), or BGFM_EIO / BGFM_ENOMEM. */
int child_run(char *const argv[], const child_opts *o, int *code, bgfm_err *e);

/* 1 when an environment entry ("NAME=value") is passed to children: 0 for the names
 * that MPI_Init (singleton) or mpirun/srun put into this process (PMIX_, PMI_, ORTE_,
 * OMPI_COMM_WORLD_, ...); a user's own settings stay. */
int child_env_keep(const char *entry);

#endif
