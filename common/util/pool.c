/* pool.c - a fixed team of threads (see pool.h). Every wait spins on an
 * atomic generation counter for a while, then sleeps on a condition
 * variable; whoever moves the generation on wakes the sleepers. */
#include "common/util/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* Spins of a wait before it sleeps: some tens of microseconds. */
#define SPINS 20000

/* A meeting point of n threads that can be used again and again: the last
 * to arrive moves gen on. */
typedef struct {
    atomic_int arrived;
    atomic_uint gen;
    int sleepers;            /* under lock */
    pthread_mutex_t lock;
    pthread_cond_t cond;
} meet_t;

struct pool_t {
    int n;
    pthread_t *threads;      /* n - 1 */
    int started;             /* threads running */
    meet_t start;            /* gen moves on when a run (or the end) begins */
    meet_t done;             /* all workers finished the run */
    meet_t bar;              /* pool_barrier */
    pool_fn fn;
    void *ctx;
    atomic_int quit;
};

/* Waits until m->gen is no longer `seen`: spins (up to `spins` times),
 * then sleeps. */
static void meet_wait(meet_t *m, unsigned seen, int spins)
{
    for (int i = 0; i < spins; i++) {
        if (atomic_load_explicit(&m->gen, memory_order_acquire) != seen)
            return;
        CPU_RELAX();
    }
    pthread_mutex_lock(&m->lock);
    m->sleepers++;
    while (atomic_load_explicit(&m->gen, memory_order_acquire) == seen)
        pthread_cond_wait(&m->cond, &m->lock);
    m->sleepers--;
    pthread_mutex_unlock(&m->lock);
}

/* Moves m->gen on and wakes whoever sleeps on it. */
static void meet_release(meet_t *m)
{
    pthread_mutex_lock(&m->lock);
    atomic_fetch_add_explicit(&m->gen, 1, memory_order_release);
    if (m->sleepers)
        pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

/* One of `of` threads arrives: the last one releases the others, who
 * spin up to `spins` times before they sleep. */
static void meet_arrive(meet_t *m, int of, int spins)
{
    unsigned seen = atomic_load_explicit(&m->gen, memory_order_acquire);
    if (atomic_fetch_add_explicit(&m->arrived, 1, memory_order_acq_rel) + 1 == of) {
        atomic_store_explicit(&m->arrived, 0, memory_order_relaxed);
        meet_release(m);
        return;
    }
    meet_wait(m, seen, spins);
}

static int meet_init(meet_t *m)
{
    atomic_init(&m->arrived, 0);
    atomic_init(&m->gen, 0);
    m->sleepers = 0;
    if (pthread_mutex_init(&m->lock, NULL) != 0)
        return -1;
    if (pthread_cond_init(&m->cond, NULL) != 0) {
        pthread_mutex_destroy(&m->lock);
        return -1;
    }
    return 0;
}

static void meet_fini(meet_t *m)
{
    pthread_mutex_destroy(&m->lock);
    pthread_cond_destroy(&m->cond);
}

typedef struct {
    pool_t *p;
    int worker;
} arg_t;

/* A worker thread: waits for each run, does it, says it is done. */
static void *worker_main(void *arg)
{
    arg_t a = *(arg_t *)arg;
    free(arg);
    pool_t *p = a.p;
    unsigned seen = 0;
    for (;;) {
        meet_wait(&p->start, seen, SPINS);
        seen = atomic_load_explicit(&p->start.gen, memory_order_acquire);
        if (atomic_load_explicit(&p->quit, memory_order_acquire))
            return NULL;
        p->fn(p->ctx, a.worker);
        meet_arrive(&p->done, p->n, SPINS);
    }
}

pool_t *pool_new(int n, err_t *err)
{
    if (n < 1) {
        err_set(err, "pool: %d workers", n);
        return NULL;
    }
    pool_t *p = calloc(1, sizeof *p);
    if (!p || !(p->threads = calloc((size_t)(n > 1 ? n - 1 : 1), sizeof *p->threads))) {
        free(p);
        err_set(err, "pool: out of memory");
        return NULL;
    }
    p->n = n;
    atomic_init(&p->quit, 0);
    if (meet_init(&p->start) != 0 || meet_init(&p->done) != 0 || meet_init(&p->bar) != 0) {
        free(p->threads);
        free(p);
        err_set(err, "pool: cannot make its locks");
        return NULL;
    }
    for (int w = 1; w < n; w++) {
        arg_t *a = malloc(sizeof *a);
        if (a)
            *a = (arg_t){p, w};
        if (!a || pthread_create(&p->threads[w - 1], NULL, worker_main, a) != 0) {
            free(a);
            err_set(err, "pool: cannot start thread %d of %d", w, n - 1);
            pool_destroy(&p);
            return NULL;
        }
        p->started++;
    }
    return p;
}

void pool_destroy(pool_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pool_t *p = *self_p;
    atomic_store_explicit(&p->quit, 1, memory_order_release);
    meet_release(&p->start);
    for (int w = 0; w < p->started; w++)
        pthread_join(p->threads[w], NULL);
    meet_fini(&p->start);
    meet_fini(&p->done);
    meet_fini(&p->bar);
    free(p->threads);
    free(p);
    *self_p = NULL;
}

int pool_size(const pool_t *p)
{
    return p->n;
}

void pool_run(pool_t *p, pool_fn fn, void *ctx)
{
    if (p->n == 1) {
        fn(ctx, 0);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    meet_release(&p->start);
    fn(ctx, 0);
    meet_arrive(&p->done, p->n, SPINS);
}

void pool_barrier(pool_t *p)
{
    if (p->n > 1)
        meet_arrive(&p->bar, p->n, SPINS);
}

void pool_barrier_sleep(pool_t *p)
{
    if (p->n > 1)
        meet_arrive(&p->bar, p->n, 0);
}
