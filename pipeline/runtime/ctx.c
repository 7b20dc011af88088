/* ctx.c: process-wide context, error records, rank agreement on failures.
 * Not the logger: messages are formatted here, printed by log.c or by the caller. */
#include "bgfm/ctx.h"

#include <cblas.h>
#include <hdf5.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int bgfm_vfail(bgfm_err *e, int code, const char *fmt, va_list ap) {
    if (e == NULL || e->code != 0) return code;
    e->code = code;
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    return code;
}

int bgfm_fail(bgfm_err *e, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    bgfm_vfail(e, code, fmt, ap);
    va_end(ap);
    return code;
}

void bgfm_err_clear(bgfm_err *e) {
    e->code = 0;
    e->msg[0] = '\0';
}

const char *bgfm_status_name(int code) {
    switch (code) {
    case BGFM_OK: return "ok";
    case BGFM_EINTERNAL: return "internal error";
    case BGFM_EUSAGE: return "usage or configuration error";
    case BGFM_EDATA: return "bad input data";
    case BGFM_EIO: return "I/O error";
    case BGFM_ENOMEM: return "out of memory";
    case BGFM_ENUMERIC: return "numerical failure";
    case BGFM_EMPI: return "MPI failure";
    case BGFM_PARTIAL: return "finished with skipped subjects";
    case BGFM_SIGNALLED: return "stopped by signal (requeue)";
    default: return "error";
    }
}

int bgfm_ctx_fail(bgfm_ctx *ctx, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    bgfm_vfail(&ctx->err, code, fmt, ap);
    va_end(ap);
    return code;
}

_Noreturn void bgfm_assert_fail(const char *what, const char *file, int line) {
    fprintf(stderr, "bgfm: internal error: assertion '%s' failed at %s:%d; please report\n",
            what, file, line);
    fflush(stderr);
    abort();
}

void bgfm_mpi_errstr(int mpierr, char *buf, size_t n) {
    char tmp[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(mpierr, tmp, &len) != MPI_SUCCESS) snprintf(tmp, sizeof tmp, "MPI error %d", mpierr);
    snprintf(buf, n, "%s", tmp);
}

int bgfm_mpi_check(bgfm_err *e, int mpi_rc, const char *call, const char *file, int line) {
    if (mpi_rc == MPI_SUCCESS) return 0;
    char why[MPI_MAX_ERROR_STRING];
    bgfm_mpi_errstr(mpi_rc, why, sizeof why);
    return bgfm_fail(e, BGFM_EMPI, "%s failed at %s:%d: %s", call, file, line, why);
}

int bgfm_test_fault(bgfm_ctx *ctx, const char *site) {
    bgfm_test_hooks *h = ctx->hooks;
    if (!h || !h->fail_site || h->fail_rank != ctx->rank || strcmp(h->fail_site, site)) return 0;
    return ++h->calls == (h->fail_call > 0 ? h->fail_call : 1);
}

typedef struct h5walk {
    char *buf;
    size_t n, used;
} h5walk;

static herr_t h5_walk_cb(unsigned idx, const H5E_error2_t *d, void *data) {
    h5walk *w = data;
    (void)idx;
    if (w->used + 1 >= w->n) return 0;
    int k = snprintf(w->buf + w->used, w->n - w->used, "%s%s()", w->used ? " <- " : "",
                     d->func_name ? d->func_name : "?");
    if (k > 0) w->used += (size_t)k;
    if (d->desc && d->desc[0] && w->used + 1 < w->n) {
        k = snprintf(w->buf + w->used, w->n - w->used, ": %s", d->desc);
        if (k > 0) w->used += (size_t)k;
    }
    if (w->used >= w->n) w->used = w->n - 1;
    return 0;
}

void bgfm_h5_errstr(char *buf, size_t n) {
    h5walk w = {buf, n, 0};
    buf[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, h5_walk_cb, &w);
    if (!buf[0]) snprintf(buf, n, "no HDF5 error detail");
}

/* Threads per rank (OpenBLAS's count, which the training step's team follows) when
 * none of OPENBLAS_NUM_THREADS, GOTO_NUM_THREADS, OMP_NUM_THREADS is set: OpenBLAS would
 * give every rank all the CPUs of its affinity mask, so ranks sharing a node would
 * oversubscribe it; they share those CPUs out instead (docs/pretrain.md, "Running").
 * Best effort: if the node's ranks cannot be counted, OpenBLAS's default stays. */
static void threads_default(bgfm_ctx *ctx) {
    if (getenv("OPENBLAS_NUM_THREADS") || getenv("GOTO_NUM_THREADS") || getenv("OMP_NUM_THREADS"))
        return;
    MPI_Comm node;
    int local = 1;
    bgfm_err ignore = {0}; /* best effort: a failure keeps OpenBLAS's default */
    if (BGFM_MPI(&ignore, MPI_Comm_split_type(ctx->comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL,
                                              &node)))
        return;
    int ok = !BGFM_MPI(&ignore, MPI_Comm_size(node, &local));
    if (BGFM_MPI(&ignore, MPI_Comm_free(&node)) || !ok || local < 1) return;
    int avail = openblas_get_num_threads(); /* the CPUs this process may run on */
    int n = avail / local;
    if (n < 1) n = 1;
    if (n != avail) openblas_set_num_threads(n);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail with this clock */
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int bgfm_ctx_init(bgfm_ctx *ctx, int *argc, char ***argv) {
    memset(ctx, 0, sizeof *ctx);
    int provided = 0;
    bgfm_err *e = &ctx->err;
    int rc = BGFM_MPI(e, MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
    if (!rc) rc = BGFM_MPI(e, MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    if (!rc) rc = BGFM_MPI(e, MPI_Comm_dup(MPI_COMM_WORLD, &ctx->comm));
    if (!rc) rc = BGFM_MPI(e, MPI_Comm_set_errhandler(ctx->comm, MPI_ERRORS_RETURN));
    if (!rc) rc = BGFM_MPI(e, MPI_Comm_rank(ctx->comm, &ctx->rank));
    if (!rc) rc = BGFM_MPI(e, MPI_Comm_size(ctx->comm, &ctx->size));
    if (rc) {
        fprintf(stderr, "bgfm: error: cannot set up MPI: %s\n", e->msg);
        return rc;
    }
    /* HDF5 errors are reported through our own messages (bgfm_h5_errstr). */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    threads_default(ctx);
    ctx->t_start = now_s();
    return BGFM_OK;
}

int bgfm_ctx_init_local(bgfm_ctx *ctx) {
    memset(ctx, 0, sizeof *ctx);
    ctx->comm = MPI_COMM_NULL; /* a handle constant, usable before MPI_Init */
    ctx->size = 1;
    ctx->local = 1;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    ctx->t_start = now_s();
    return BGFM_OK;
}

void bgfm_ctx_finalize(bgfm_ctx *ctx) {
    /* HDF5 1.10.8 crashes (SIGSEGV in H5F__close_cb) in the clean-up that MPI_Finalize
     * runs when a file close failed earlier, e.g. on a full disk, which would turn exit
     * 4 into a signal. So when any rank ends with an I/O error, every rank leaves here
     * with its own code, without MPI_Finalize (mpirun passes the code on). The engine has
     * already removed the partial output; nothing is left to write. Without MPI
     * (bgfm_ctx_init_local) there is nothing to finalize. */
    if (ctx->local) return;
    int eio = ctx->err.code == BGFM_EIO, any = 0;
    bgfm_err fin = {0}; /* the exit code is decided; a failure here is only reported */
    int have = ctx->comm != MPI_COMM_NULL && ctx->comm != 0;
    if (have && !BGFM_MPI(&fin, MPI_Allreduce(&eio, &any, 1, MPI_INT, MPI_MAX, ctx->comm)) && any) {
        fflush(stdout);
        fflush(stderr);
        _exit(ctx->err.code);
    }
    if (have) BGFM_MPI(&fin, MPI_Comm_free(&ctx->comm));
    BGFM_MPI(&fin, MPI_Finalize());
    if (fin.code) fprintf(stderr, "bgfm: warning: rank %d: %s\n", ctx->rank, fin.msg);
}

int bgfm_err_agree(MPI_Comm comm, bgfm_err *e, int local_status) {
    int rank = 0, size = 1;
    if (BGFM_MPI(e, MPI_Comm_rank(comm, &rank)) || BGFM_MPI(e, MPI_Comm_size(comm, &size)))
        return e->code;
    if (local_status != 0 && e->code == 0) {
        e->code = local_status;
        snprintf(e->msg, sizeof e->msg, "%s", bgfm_status_name(local_status));
    }
    int mine = local_status != 0 ? rank : size;
    int first = size;
    if (BGFM_MPI(e, MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm))) return e->code;
    if (first == size) return BGFM_OK;
    struct {
        int code;
        char msg[BGFM_ERRMSG_MAX];
    } pkt;
    memset(&pkt, 0, sizeof pkt);
    if (rank == first) {
        pkt.code = e->code;
        memcpy(pkt.msg, e->msg, sizeof pkt.msg);
    }
    if (BGFM_MPI(e, MPI_Bcast(&pkt, (int)sizeof pkt, MPI_BYTE, first, comm))) return e->code;
    e->code = pkt.code;
    if (size > 1 && strncmp(pkt.msg, "rank ", 5) != 0)
        snprintf(e->msg, sizeof e->msg, "rank %d: %.*s", first, (int)(sizeof e->msg - 16),
                 pkt.msg);
    else
        memcpy(e->msg, pkt.msg, sizeof pkt.msg);
    return pkt.code;
}

int bgfm_ctx_agree(bgfm_ctx *ctx, int local_status) {
    if (ctx->local) { /* one process, no MPI: what bgfm_err_agree returns on one rank */
        if (local_status == 0) return BGFM_OK;
        if (ctx->err.code == 0) bgfm_fail(&ctx->err, local_status, "%s", bgfm_status_name(local_status));
        return ctx->err.code;
    }
    return bgfm_err_agree(ctx->comm, &ctx->err, local_status);
}

void bgfm_ctx_report(const bgfm_ctx *ctx) {
    if (ctx->rank != 0 || ctx->err.code == 0) return;
    if (ctx->err.code == BGFM_SIGNALLED)
        fprintf(stderr, "bgfm: stopped: %s\n", ctx->err.msg);
    else if (ctx->err.code == BGFM_PARTIAL)
        fprintf(stderr, "bgfm: finished, but some subjects were skipped (exit 9): %s\n",
                ctx->err.msg);
    else
        fprintf(stderr, "bgfm: error: %s\n", ctx->err.msg);
    fflush(stderr);
}

/* Allocation-failure injection: process-wide counter, the one piece of state the
 * test build needs; it lives here next to the context, read-only after first use
 * except for the countdown. */
static long alloc_countdown = -2; /* -2 unread, -1 disabled */
static const char *alloc_named = NULL; /* BGFM_FAIL_ALLOC_WHAT, until it has failed once */

static int alloc_should_fail(const char *what) {
    if (alloc_countdown == -2) {
        const char *s = getenv("BGFM_FAIL_ALLOC_AFTER");
        alloc_countdown = s ? strtol(s, NULL, 10) : -1;
        if (alloc_countdown < 1) alloc_countdown = -1;
        alloc_named = getenv("BGFM_FAIL_ALLOC_WHAT");
    }
    if (alloc_named && !strcmp(what, alloc_named)) {
        alloc_named = NULL;
        return 1;
    }
    if (alloc_countdown < 0) return 0;
    if (--alloc_countdown == 0) return 1;
    return 0;
}

void *bgfm_malloc(bgfm_err *e, size_t n, const char *what) {
    void *p = alloc_should_fail(what) ? NULL : malloc(n ? n : 1);
    if (!p) bgfm_fail(e, BGFM_ENOMEM, "out of memory allocating %zu bytes for %s", n, what);
    return p;
}

void *bgfm_calloc(bgfm_err *e, size_t count, size_t size, const char *what) {
    void *p = alloc_should_fail(what) ? NULL : calloc(count ? count : 1, size ? size : 1);
    if (!p)
        bgfm_fail(e, BGFM_ENOMEM, "out of memory allocating %zu x %zu bytes for %s", count, size,
                  what);
    return p;
}

char *bgfm_strdup(bgfm_err *e, const char *s) {
    size_t n = strlen(s) + 1;
    char *p = bgfm_malloc(e, n, "a string");
    if (p) memcpy(p, s, n);
    return p;
}

void *bgfm_realloc(bgfm_err *e, void *p, size_t n, const char *what) {
    void *q = alloc_should_fail(what) ? NULL : realloc(p, n ? n : 1);
    if (!q) bgfm_fail(e, BGFM_ENOMEM, "out of memory allocating %zu bytes for %s", n, what);
    return q;
}

/* ---- stop requests (SIGTERM / SIGUSR1) ------------------------------------------ */
/* The one justified mutable global: written by the signal handler, read by polls. */
static volatile sig_atomic_t stop_flag = 0;

static void stop_handler(int sig) {
    (void)sig;
    stop_flag = 1;
}

/* The actions bgfm_signals_install replaced, put back by bgfm_signals_restore (signal
 * dispositions are process-wide state already; these only remember them). */
static struct sigaction saved_term, saved_usr1;

static void stop_action(struct sigaction *sa) {
    memset(sa, 0, sizeof *sa);
    sa->sa_handler = stop_handler;
    sigemptyset(&sa->sa_mask);
    sa->sa_flags = SA_RESTART; /* interrupted reads/writes restart: a checkpoint write goes on */
}

void bgfm_signals_install(void) {
    struct sigaction sa;
    stop_action(&sa);
    sigaction(SIGTERM, &sa, &saved_term);
    sigaction(SIGUSR1, &sa, &saved_usr1);
}

void bgfm_signals_restore(void) {
    sigaction(SIGTERM, &saved_term, NULL);
    sigaction(SIGUSR1, &saved_usr1, NULL);
}

void bgfm_signals_between_stages(void) {
    struct sigaction sa;
    stop_action(&sa);
    sigaction(SIGUSR1, &sa, NULL);
}

int bgfm_signal_pending(void) { return stop_flag != 0; }

int bgfm_thread_start(pthread_t *t, void *(*fn)(void *), void *arg) {
    sigset_t all, old;
    sigfillset(&all);
    int rc = pthread_sigmask(SIG_BLOCK, &all, &old); /* the new thread inherits the mask */
    if (rc) return rc;
    rc = pthread_create(t, NULL, fn, arg);
    int restored = pthread_sigmask(SIG_SETMASK, &old, NULL); /* cannot fail: valid set */
    BGFM_ASSERT(restored == 0);
    return rc;
}

int bgfm_ctx_stop_requested(bgfm_ctx *ctx) {
    int mine = stop_flag != 0, any = 0;
    if (BGFM_MPI(&ctx->err, MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, ctx->comm))) return -1;
    return any;
}
