/* prefetch.c: a reader thread inflating the next volumes of a niftiio_reader into a
 * ring of buffers while the caller uses the current one (docs/parcellate.md,
 * "Read-ahead"). Not a reader (nifti.c) and not general: one producer, one consumer.
 *
 * Ring protocol, all counters under `mu`: volume i lives in slot i % depth. The thread
 * may write volume i once the caller has given back volume i - depth (i - released <
 * depth); it publishes it by setting produced = i + 1. The caller takes volume `handed`
 * once produced > handed, and gives back the volume it holds when it asks for the next
 * one (or closes). Buffer contents are written outside the lock and published by the
 * counter update under it, so every read of a slot happens after its write. */
#include "bgfm/prefetch.h"

#include <pthread.h>
#include <string.h>

struct prefetch_reader {
    niftiio_reader *rd;
    int64_t nvox, nvol;
    int depth;
    float *buf;        /* depth x nvox floats, one allocation */
    int64_t handed;    /* volumes handed to the caller (caller only) */
    int threaded;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t filled; /* thread -> caller: produced or done changed */
    pthread_cond_t freed;  /* caller -> thread: released or stop changed */
    /* under mu */
    int64_t produced;  /* volumes completely read */
    int64_t released;  /* volumes the caller gave back */
    int stop;          /* prefetch_close: leave now */
    int done;          /* the thread read its last volume, failed or stopped */
    int rc;            /* the thread's read error, for volume `produced` */
    bgfm_err err;      /* its message; written by the thread before rc is published */
};

static float *slot(const prefetch_reader *p, int64_t i) {
    return p->buf + (size_t)(i % p->depth) * (size_t)p->nvox;
}

static void *reader_main(void *arg) {
    prefetch_reader *p = arg;
    int rc = 0;
    for (int64_t i = 0; i < p->nvol && !rc; i++) {
        BGFM_ASSERT_ZERO(pthread_mutex_lock(&p->mu));
        while (!p->stop && i - p->released >= p->depth)
            BGFM_ASSERT_ZERO(pthread_cond_wait(&p->freed, &p->mu));
        int stop = p->stop;
        BGFM_ASSERT_ZERO(pthread_mutex_unlock(&p->mu));
        if (stop) break;
        rc = niftiio_read_volume(p->rd, slot(p, i), &p->err);
        BGFM_ASSERT_ZERO(pthread_mutex_lock(&p->mu));
        if (rc)
            p->rc = p->err.code ? p->err.code : rc;
        else
            p->produced = i + 1;
        BGFM_ASSERT_ZERO(pthread_cond_signal(&p->filled));
        BGFM_ASSERT_ZERO(pthread_mutex_unlock(&p->mu));
    }
    BGFM_ASSERT_ZERO(pthread_mutex_lock(&p->mu));
    p->done = 1;
    BGFM_ASSERT_ZERO(pthread_cond_signal(&p->filled));
    BGFM_ASSERT_ZERO(pthread_mutex_unlock(&p->mu));
    return NULL;
}

/* Start the thread; 0 when it runs. On any failure (EAGAIN: thread limit, ENOMEM)
 * nothing is left initialised and the caller reads synchronously. */
static int start_thread(prefetch_reader *p) {
    if (pthread_mutex_init(&p->mu, NULL) != 0) return -1;
    if (pthread_cond_init(&p->filled, NULL) != 0) {
        BGFM_ASSERT_ZERO(pthread_mutex_destroy(&p->mu));
        return -1;
    }
    if (pthread_cond_init(&p->freed, NULL) != 0) {
        BGFM_ASSERT_ZERO(pthread_cond_destroy(&p->filled));
        BGFM_ASSERT_ZERO(pthread_mutex_destroy(&p->mu));
        return -1;
    }
    if (bgfm_thread_start(&p->th, reader_main, p) != 0) {
        BGFM_ASSERT_ZERO(pthread_cond_destroy(&p->freed));
        BGFM_ASSERT_ZERO(pthread_cond_destroy(&p->filled));
        BGFM_ASSERT_ZERO(pthread_mutex_destroy(&p->mu));
        return -1;
    }
    return 0;
}

int prefetch_open(niftiio_reader *r, int depth, prefetch_reader **out, bgfm_err *e) {
    *out = NULL;
    BGFM_ASSERT(r != NULL && depth >= 1);
    const niftiio_header *h = niftiio_hdr(r);
    prefetch_reader *p = bgfm_calloc(e, 1, sizeof *p, "volume prefetcher");
    if (!p) return e->code;
    p->rd = r;
    p->nvox = h->nvox;
    p->nvol = h->nvol;
    p->depth = (int64_t)depth > h->nvol ? (int)(h->nvol > 0 ? h->nvol : 1) : depth;
    /* nvox is overflow-checked by the header parser; depth is small */
    p->buf = bgfm_malloc(e, (size_t)p->depth * (size_t)p->nvox * sizeof *p->buf,
                         "volume read-ahead buffers");
    if (!p->buf) {
        free(p);
        return e->code;
    }
    p->threaded = p->depth >= 2 && start_thread(p) == 0;
    *out = p;
    return 0;
}

int prefetch_threaded(const prefetch_reader *p) { return p ? p->threaded : 0; }

int prefetch_next(prefetch_reader *p, const float **vol, bgfm_err *e) {
    *vol = NULL;
    if (p->handed >= p->nvol)
        return bgfm_fail(e, BGFM_EINTERNAL, "volume prefetcher: all %lld volumes were already "
                         "handed out", (long long)p->nvol);
    if (!p->threaded) {
        int rc = niftiio_read_volume(p->rd, p->buf, e);
        if (rc) return rc;
        p->handed++;
        *vol = p->buf;
        return 0;
    }
    BGFM_ASSERT_ZERO(pthread_mutex_lock(&p->mu));
    if (p->released < p->handed) { /* give back the volume the caller held */
        p->released = p->handed;
        BGFM_ASSERT_ZERO(pthread_cond_signal(&p->freed));
    }
    while (p->produced == p->handed && !p->done) BGFM_ASSERT_ZERO(pthread_cond_wait(&p->filled, &p->mu));
    int have = p->produced > p->handed, rc = p->rc;
    BGFM_ASSERT_ZERO(pthread_mutex_unlock(&p->mu));
    if (!have) {
        /* done without this volume: only a read error stops the thread early (stop is
         * set by prefetch_close alone), and p->err was written before rc was published */
        BGFM_ASSERT(rc != 0);
        bgfm_fail(e, rc, "%s", p->err.msg);
        return rc;
    }
    *vol = slot(p, p->handed);
    p->handed++;
    return 0;
}

void prefetch_close(prefetch_reader **pp) {
    if (!pp || !*pp) return;
    prefetch_reader *p = *pp;
    if (p->threaded) {
        BGFM_ASSERT_ZERO(pthread_mutex_lock(&p->mu));
        p->stop = 1;
        BGFM_ASSERT_ZERO(pthread_cond_signal(&p->freed));
        BGFM_ASSERT_ZERO(pthread_mutex_unlock(&p->mu));
        BGFM_ASSERT_ZERO(pthread_join(p->th, NULL));
        BGFM_ASSERT_ZERO(pthread_cond_destroy(&p->freed));
        BGFM_ASSERT_ZERO(pthread_cond_destroy(&p->filled));
        BGFM_ASSERT_ZERO(pthread_mutex_destroy(&p->mu));
    }
    free(p->buf);
    free(p);
    *pp = NULL;
}
