/* ctx.h: the process-wide context (communicator, rank, verbosity), status codes,
 * error records and the check macros for MPI / HDF5 / allocation.
 * Not a logger (log.h) and not a config holder (config.h). */
#ifndef BGFM_CTX_H
#define BGFM_CTX_H

#include <mpi.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Exit codes: a contract, documented in docs/errors.md. */
enum bgfm_status {
    BGFM_OK = 0,
    BGFM_EINTERNAL = 1, /* a bug: broken invariant */
    BGFM_EUSAGE = 2,    /* bad command line or pipeline file */
    BGFM_EDATA = 3,     /* bad input data (NIfTI, participants.tsv, graphs) */
    BGFM_EIO = 4,       /* I/O failure: cannot read/write/rename, disk full */
    BGFM_ENOMEM = 5,    /* allocation failed or memory limit exceeded */
    BGFM_ENUMERIC = 6,  /* NaN/Inf loss or divergence during training */
    BGFM_EMPI = 7,      /* MPI failure */
    BGFM_PARTIAL = 9,   /* finished, but some subjects were skipped (on_error: skip) */
    BGFM_SIGNALLED = 75 /* stopped early by SIGTERM/SIGUSR1 after checkpointing; requeue */
};

#define BGFM_ERRMSG_MAX 2048

/* An error record: the first failure wins; later ones are ignored so the root
 * cause is what the user sees. Usable without MPI (fuzz targets, unit tests). */
typedef struct bgfm_err {
    int code;
    char msg[BGFM_ERRMSG_MAX];
} bgfm_err;

/* Record an error (printf-style message naming the file and the fix) unless one is
 * already recorded; returns `code` so callers can `return bgfm_fail(...)`. */
int bgfm_fail(bgfm_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int bgfm_vfail(bgfm_err *e, int code, const char *fmt, va_list ap);
void bgfm_err_clear(bgfm_err *e);
const char *bgfm_status_name(int code);

/* The process-wide context: the only mutable state shared across modules. */
typedef struct bgfm_ctx {
    MPI_Comm comm; /* duplicated from MPI_COMM_WORLD, errors returned */
    int rank, size;
    int quiet;     /* 1: no progress output */
    int verbose;   /* 1: debug messages */
    int progress_tty; /* stderr is a terminal: redraw progress in place */
    double t_start;   /* MPI_Wtime at init */
    bgfm_err err;     /* this rank's first error */
} bgfm_ctx;

/* Collective over MPI_COMM_WORLD: MPI_Init, duplicate the communicator, set
 * MPI_ERRORS_RETURN, silence HDF5's automatic error printing. */
int bgfm_ctx_init(bgfm_ctx *ctx, int *argc, char ***argv);
/* Collective: MPI_Finalize. */
void bgfm_ctx_finalize(bgfm_ctx *ctx);

/* Collective phase boundary: every rank passes its local status (0 or a code with
 * ctx->err set). Returns the same code on every rank: that of the lowest failing
 * rank, whose message is copied into every rank's ctx->err (prefixed with the rank
 * when size > 1). Never hangs as long as every live rank calls it. */
int bgfm_ctx_agree(bgfm_ctx *ctx, int local_status);
/* The same on any communicator, for modules that hold one (h5io: the file's). */
int bgfm_err_agree(MPI_Comm comm, bgfm_err *e, int local_status);

/* Print ctx->err on rank 0 as "bgfm: error: ..." */
void bgfm_ctx_report(const bgfm_ctx *ctx);

/* Record into ctx->err; returns code. */
int bgfm_ctx_fail(bgfm_ctx *ctx, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Turn an MPI error code / HDF5 error stack into text for messages. */
void bgfm_mpi_errstr(int mpierr, char *buf, size_t n);
void bgfm_h5_errstr(char *buf, size_t n);

/* Always-on assertion for broken invariants (not for user errors). */
#define BGFM_ASSERT(cond)                                                              \
    do {                                                                               \
        if (!(cond)) bgfm_assert_fail(#cond, __FILE__, __LINE__);                      \
    } while (0)
_Noreturn void bgfm_assert_fail(const char *what, const char *file, int line);
/* A call that returns 0 unless the code is wrong (pthread calls on initialised mutexes
 * and condition variables: EINVAL, EDEADLK, EPERM): a broken invariant, asserted in
 * every build rather than run on unsynchronised. */
#define BGFM_ASSERT_ZERO(call) BGFM_ASSERT((call) == 0)

/* Check macros: record call, file and line into an error record and jump to a
 * cleanup label or return. `e` is a bgfm_err*. */
#define BGFM_MPI_CHECK(e, call)                                                        \
    do {                                                                               \
        int mpi_rc_ = (call);                                                          \
        if (mpi_rc_ != MPI_SUCCESS) {                                                  \
            char mpi_buf_[MPI_MAX_ERROR_STRING];                                       \
            bgfm_mpi_errstr(mpi_rc_, mpi_buf_, sizeof mpi_buf_);                       \
            return bgfm_fail((e), BGFM_EMPI, "%s failed (%s:%d): %s", #call, __FILE__,  \
                             __LINE__, mpi_buf_);                                      \
        }                                                                              \
    } while (0)

/* malloc/calloc that never return NULL silently: on failure record BGFM_ENOMEM. */
void *bgfm_malloc(bgfm_err *e, size_t n, const char *what);
void *bgfm_calloc(bgfm_err *e, size_t count, size_t size, const char *what);
char *bgfm_strdup(bgfm_err *e, const char *s);

/* Stop requests from the batch system (Slurm): SIGTERM and SIGUSR1 set ONE
 * process-wide `volatile sig_atomic_t` flag (the only justified mutable global: a
 * signal handler cannot reach a context) and nothing else, so a second signal is
 * harmless. Only stages that poll install the handlers (the pretrain stage). */
void bgfm_signals_install(void);
/* Back to the default actions (the stage that installed the handlers is done). */
void bgfm_signals_restore(void);
/* 1 when this process received SIGTERM or SIGUSR1 since bgfm_signals_install. */
int bgfm_signal_pending(void);
/* pthread_create with every signal blocked in the new thread (the caller's mask is
 * restored), so SIGTERM/SIGUSR1 from Slurm are handled by the main thread. Returns
 * pthread_create's result (0 or an errno value). */
int bgfm_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);
/* Collective over ctx->comm: 1 on every rank when any rank has a signal pending
 * (MPI_Allreduce MAX of the flag), else 0; -1 on MPI failure (ctx->err set to BGFM_EMPI). */
int bgfm_ctx_stop_requested(bgfm_ctx *ctx);

/* Allocation-failure injection for tests: BGFM_FAIL_ALLOC_AFTER=N makes the N-th
 * bgfm_malloc/bgfm_calloc of the process fail. Read once at first use. */

#endif
