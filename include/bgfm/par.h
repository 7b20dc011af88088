/* par.h: a fixed team of threads running a loop over [0, n) split into contiguous,
 * equal parts, one per thread, the caller taking part 0. For the non-GEMM loops of
 * the model (docs/model.md, "threads"), whose results must not depend on the thread
 * count: a loop body writes disjoint outputs per index, never a shared sum.
 * Not a task queue, not dynamic scheduling, not nested: one loop at a time. */
#ifndef BGFM_PAR_H
#define BGFM_PAR_H

#include <stdint.h>

#include "bgfm/ctx.h"

typedef struct par_pool par_pool;

/* body(arg, begin, end, tid): the indices [begin, end) of thread tid (0..threads-1). */
typedef void (*par_body)(void *arg, int64_t begin, int64_t end, int tid);

/* A team of `threads` (>= 1; 1 starts no thread and par_for runs inline). */
int par_pool_create(par_pool **out, int threads, bgfm_err *e);
/* Stops and joins the threads; accepts NULL, sets *p = NULL. */
void par_pool_free(par_pool **p);
/* Team size (1 for a NULL pool). */
int par_threads(const par_pool *p);
/* Runs body over [0, n) on the team and returns when every part is done. Parts are
 * [n*t/k, n*(t+1)/k) for k = min(threads, n): a function of n and the team size only.
 * A NULL pool or n < 2 runs inline as tid 0. */
void par_for(par_pool *p, int64_t n, par_body body, void *arg);

#endif
