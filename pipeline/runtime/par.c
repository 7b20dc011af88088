/* par.c: the thread team of par.h (pthreads, one mutex and two condition variables).
 * A loop is published as a generation number; each worker runs its part of every
 * generation once and the last one to finish wakes the caller. */
#include "bgfm/par.h"

#include <pthread.h>
#include <string.h>

struct par_pool {
    int threads; /* team size, caller included */
    pthread_t *tid;
    int started; /* workers created */
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    uint64_t gen; /* loop generation, bumped per par_for */
    int pending;  /* workers still running the current loop */
    int stop;
    /* the current loop */
    par_body body;
    void *arg;
    int64_t n;
    int k; /* parts */
};

typedef struct worker_arg {
    par_pool *p;
    int t;
} worker_arg;

static void run_part(const par_pool *p, int t) {
    int64_t b = p->n * t / p->k, e = p->n * (t + 1) / p->k;
    if (b < e) p->body(p->arg, b, e, t);
}

static void *worker(void *v) {
    par_pool *p = ((worker_arg *)v)->p;
    int t = ((worker_arg *)v)->t;
    free(v);
    uint64_t seen = 0;
    for (;;) {
        BGFM_ASSERT_ZERO(pthread_mutex_lock(&p->mu));
        while (p->gen == seen && !p->stop) BGFM_ASSERT_ZERO(pthread_cond_wait(&p->go, &p->mu));
        if (p->stop) {
            BGFM_ASSERT_ZERO(pthread_mutex_unlock(&p->mu));
            return NULL;
        }
        seen = p->gen;
        BGFM_ASSERT_ZERO(pthread_mutex_unlock(&p->mu));
        if (t < p->k) run_part(p, t);
        BGFM_ASSERT_ZERO(pthread_mutex_lock(&p->mu));
        if (--p->pending == 0) BGFM_ASSERT_ZERO(pthread_cond_signal(&p->done));
        BGFM_ASSERT_ZERO(pthread_mutex_unlock(&p->mu));
    }
}

int par_pool_create(par_pool **out, int threads, bgfm_err *e) {
    *out = NULL;
    if (threads < 1) threads = 1;
    par_pool *p = bgfm_calloc(e, 1, sizeof *p, "thread team");
    if (!p) return BGFM_ENOMEM;
    p->threads = threads;
    if (threads == 1) {
        *out = p;
        return 0;
    }
    int rc;
    if ((rc = pthread_mutex_init(&p->mu, NULL))) goto fail_mu;
    if ((rc = pthread_cond_init(&p->go, NULL))) goto fail_go;
    if ((rc = pthread_cond_init(&p->done, NULL))) goto fail_done;
    p->tid = bgfm_calloc(e, (size_t)threads, sizeof *p->tid, "thread ids");
    if (!p->tid) {
        rc = -1;
        goto fail_tid;
    }
    for (int t = 1; t < threads; t++) {
        worker_arg *wa = bgfm_malloc(e, sizeof *wa, "thread argument");
        if (!wa) {
            rc = -1;
            break;
        }
        wa->p = p;
        wa->t = t;
        if ((rc = bgfm_thread_start(&p->tid[t], worker, wa))) {
            free(wa);
            break;
        }
        p->started++;
    }
    if (p->started == threads - 1) {
        *out = p;
        return 0;
    }
    par_pool_free(&p); /* joins the ones that started, frees everything */
    if (rc > 0)
        return bgfm_fail(e, BGFM_ENOMEM, "cannot start %d compute threads: pthread_create: %s; "
                         "lower OPENBLAS_NUM_THREADS", threads, strerror(rc));
    return e->code ? e->code : BGFM_ENOMEM;
fail_tid:
    pthread_cond_destroy(&p->done);
fail_done:
    pthread_cond_destroy(&p->go);
fail_go:
    pthread_mutex_destroy(&p->mu);
fail_mu:
    free(p);
    if (rc > 0)
        return bgfm_fail(e, BGFM_ENOMEM, "cannot set up the thread team: %s", strerror(rc));
    return e->code ? e->code : BGFM_ENOMEM;
}

void par_pool_free(par_pool **pp) {
    par_pool *p = pp ? *pp : NULL;
    if (!p) return;
    *pp = NULL;
    if (p->threads > 1) {
        BGFM_ASSERT_ZERO(pthread_mutex_lock(&p->mu));
        p->stop = 1;
        BGFM_ASSERT_ZERO(pthread_cond_broadcast(&p->go));
        BGFM_ASSERT_ZERO(pthread_mutex_unlock(&p->mu));
        for (int t = 1; t <= p->started; t++) BGFM_ASSERT_ZERO(pthread_join(p->tid[t], NULL));
        pthread_cond_destroy(&p->done);
        pthread_cond_destroy(&p->go);
        pthread_mutex_destroy(&p->mu);
    }
    free(p->tid);
    free(p);
}

int par_threads(const par_pool *p) { return p ? p->threads : 1; }

void par_for(par_pool *p, int64_t n, par_body body, void *arg) {
    if (n <= 0) return;
    if (!p || p->threads == 1 || n < 2) {
        body(arg, 0, n, 0);
        return;
    }
    BGFM_ASSERT_ZERO(pthread_mutex_lock(&p->mu));
    p->body = body;
    p->arg = arg;
    p->n = n;
    p->k = n < p->threads ? (int)n : p->threads;
    p->pending = p->threads - 1;
    p->gen++;
    BGFM_ASSERT_ZERO(pthread_cond_broadcast(&p->go));
    BGFM_ASSERT_ZERO(pthread_mutex_unlock(&p->mu));
    run_part(p, 0);
    BGFM_ASSERT_ZERO(pthread_mutex_lock(&p->mu));
    while (p->pending > 0) BGFM_ASSERT_ZERO(pthread_cond_wait(&p->done, &p->mu));
    BGFM_ASSERT_ZERO(pthread_mutex_unlock(&p->mu));
}
