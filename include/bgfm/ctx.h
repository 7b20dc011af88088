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
    MPI_Comm comm; /* duplicated from MPI_COMM_WORLD, errors returned; MPI_COMM_NULL
                      when MPI is not initialised (bgfm_ctx_init_local) */
    int local;     /* 1: bgfm_ctx_init_local, no MPI: no MPI call may be made (0: MPI runs) */
    int rank, size;
    int quiet;     /* 1: no progress output */
    int verbose;   /* 1: debug messages */
    int progress_tty; /* stderr is a terminal: redraw progress in place */
    double t_start;   /* seconds (CLOCK_MONOTONIC) at init */
    bgfm_err err;     /* this rank's first error */
    struct bgfm_test_hooks *hooks; /* NULL except in the test driver (below) */
} bgfm_ctx;

/* Test hooks: fault injection and test-only behaviour. The production binary never
 * sets ctx->hooks (pipeline/engine/main.c); the test driver $(BUILD)/tests/bgfm-test
 * (tests/lib/bgfm_test.c, the same commands) fills them from BGFM_TEST_* variables, so
 * no production code path reads a test variable (docs/reliability.md, "Test hooks"). */
typedef struct bgfm_test_hooks {
    const char *fail_site; /* a site name passed to bgfm_test_fault, or NULL */
    int fail_rank;         /* the rank on which it fails */
    long fail_call;        /* ... at its fail_call-th call on that rank (1 = first) */
    long calls;            /* calls of fail_site seen so far on this rank */
    int desync_rank;       /* pretrain: this rank perturbs a weight after step 2 (-1 off) */
    int64_t stop_after;    /* pretrain: stop as if signalled after this step (0 off) */
    int ntxent_replicated; /* pretrain: the previous, replicated NT-Xent (dist.h; benchmarks) */
    long ckpt_pause_ms;    /* pretrain: sleep before a checkpoint's completion mark (0 off) */
} bgfm_test_hooks;

/* 1 when the test hooks make this rank fail at `site` now (counts the call); 0 in
 * production (ctx->hooks NULL). A caller records its own error and returns it as if
 * the operation had failed there, after the collective calls every rank makes. */
int bgfm_test_fault(bgfm_ctx *ctx, const char *site);

/* Collective over MPI_COMM_WORLD: MPI_Init, duplicate the communicator, set
 * MPI_ERRORS_RETURN, silence HDF5's automatic error printing. */
int bgfm_ctx_init(bgfm_ctx *ctx, int *argc, char ***argv);
/* A process without MPI (rank 0 of 1, comm MPI_COMM_NULL, local 1): for a command that
 * works in one process, started without a launcher (cli.h, cli_start). Makes no MPI call;
 * nothing that calls MPI may run in it (local = 1). Silences HDF5's error printing. */
int bgfm_ctx_init_local(bgfm_ctx *ctx);
/* Collective: MPI_Finalize (nothing without MPI). */
void bgfm_ctx_finalize(bgfm_ctx *ctx);

/* Collective phase boundary: every rank passes its local status (0 or a code with
 * ctx->err set). Returns the same code on every rank: that of the lowest failing
 * rank, whose message is copied into every rank's ctx->err (prefixed with the rank
 * when size > 1). Never hangs as long as every live rank calls it. Without MPI
 * (ctx->local) the one process agrees with itself: no MPI call. */
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

/* The one way to check an MPI call (every MPI call in pipeline/ and stages/ goes
 * through it). BGFM_MPI(e, call) runs `call`; when it returns anything but MPI_SUCCESS
 * it records "CALL failed at FILE:LINE: <MPI_Error_string>" into the error record `e`
 * (BGFM_EMPI; the first failure wins) and evaluates to BGFM_EMPI, else to 0:
 *     if (!rc) rc = BGFM_MPI(e, MPI_Bcast(buf, n, MPI_BYTE, 0, comm));
 * BGFM_MPI_CHECK(e, call) returns that status from the enclosing function. Neither
 * agrees across ranks: a collective sequence must be the same on every rank whatever
 * the local status, and the caller agrees (bgfm_ctx_agree) before the next one. */
#define BGFM_MPI(e, call) bgfm_mpi_check((e), (call), #call, __FILE__, __LINE__)
#define BGFM_MPI_CHECK(e, call)                                                        \
    do {                                                                               \
        int mpi_status_ = BGFM_MPI(e, call);                                           \
        if (mpi_status_) return mpi_status_;                                           \
    } while (0)
int bgfm_mpi_check(bgfm_err *e, int mpi_rc, const char *call, const char *file, int line);

/* malloc/calloc that never return NULL silently: on failure record BGFM_ENOMEM. */
void *bgfm_malloc(bgfm_err *e, size_t n, const char *what);
void *bgfm_calloc(bgfm_err *e, size_t count, size_t size, const char *what);
char *bgfm_strdup(bgfm_err *e, const char *s);
/* realloc through the same mechanism: NULL with BGFM_ENOMEM recorded on failure, p then
 * still valid (the caller frees it); n 0 is taken as 1. */
void *bgfm_realloc(bgfm_err *e, void *p, size_t n, const char *what);

/* Stop requests from the batch system (Slurm): SIGTERM and SIGUSR1 set ONE
 * process-wide `volatile sig_atomic_t` flag (the only justified mutable global: a
 * signal handler cannot reach a context) and nothing else, so a second signal is
 * harmless. Stages that poll (pretrain, finetune, prompt) install both handlers while
 * they run; `bgfm run` handles SIGUSR1 for the whole run (bgfm_signals_between_stages),
 * so the time-limit warning during a stage that cannot checkpoint lets that stage end
 * and stops the run before the next one (exit 75; docs/slurm.md). */
void bgfm_signals_install(void);
/* Back to the actions bgfm_signals_install replaced (the stage that installed them is
 * done). */
void bgfm_signals_restore(void);
/* SIGUSR1 sets the flag from now on; SIGTERM keeps its action (bgfm run). */
void bgfm_signals_between_stages(void);
/* 1 when this process received SIGTERM or SIGUSR1 since a handler was installed. */
int bgfm_signal_pending(void);
/* pthread_create with every signal blocked in the new thread (the caller's mask is
 * restored), so SIGTERM/SIGUSR1 from Slurm are handled by the main thread. Returns
 * pthread_create's result (0 or an errno value). */
int bgfm_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);
/* Collective over ctx->comm: 1 on every rank when any rank has a signal pending
 * (MPI_Allreduce MAX of the flag), else 0; -1 on MPI failure (ctx->err set to BGFM_EMPI). */
int bgfm_ctx_stop_requested(bgfm_ctx *ctx);

/* Allocation-failure injection for tests: BGFM_FAIL_ALLOC_AFTER=N makes the N-th
 * bgfm_malloc/bgfm_calloc of the process fail; BGFM_FAIL_ALLOC_WHAT=TEXT the first whose
 * purpose (its `what`) is TEXT. Read once at first use. */

#endif
