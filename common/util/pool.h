/* pool.h - a fixed team of threads that run one function together: the
 * caller is worker 0 and n - 1 threads are the others. pool_run hands every
 * worker the same function and returns when all of them are done; inside
 * it, pool_barrier makes them wait for each other.
 *
 * A training step runs a few of these per step, so waiting spins briefly
 * before it sleeps: on cores of their own the workers meet within
 * microseconds, and with more threads than cores nobody burns a core for
 * long. The pool allocates nothing after pool_new. */
#ifndef PST_POOL_H
#define PST_POOL_H

#include <stddef.h>

#include "common/util/err.h"

typedef struct pool_t pool_t;

/* The work of one worker (0 .. n-1). */
typedef void (*pool_fn)(void *ctx, int worker);

/* Starts a pool of n workers (n - 1 threads). Returns it, or NULL with err
 * (n < 1, out of memory, or a thread that could not start). */
pool_t *pool_new(int n, err_t *err);

/* Stops the threads, frees *self_p (may be NULL) and sets it to NULL. */
void pool_destroy(pool_t **self_p);

/* Number of workers. */
int pool_size(const pool_t *p);

/* [*b, *e): part `part` of n items cut into `parts` contiguous parts of
 * sizes differing by at most one (part < parts). The one cut every split
 * of work among workers uses, so that a result depends only on `parts`. */
static inline void pool_share(size_t n, int part, int parts, size_t *b, size_t *e)
{
    *b = n * (size_t)part / (size_t)parts;
    *e = n * (size_t)(part + 1) / (size_t)parts;
}

/* Runs fn(ctx, w) on every worker w at once (w = 0 on the calling thread)
 * and returns when all have returned. Not reentrant: fn must not call
 * pool_run. */
void pool_run(pool_t *p, pool_fn fn, void *ctx);

/* Inside fn: returns once every worker has called it (as often). */
void pool_barrier(pool_t *p);

/* The same, for a wait known to be long (another worker runs a multi-threaded
 * GEMM meanwhile): it sleeps at once instead of spinning, so that the core is
 * free for that work. */
void pool_barrier_sleep(pool_t *p);

#endif
