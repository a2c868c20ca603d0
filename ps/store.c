/* store.c - a parameter server's shard storage (see store.h). */
#include "ps/store.h"

#include <stdlib.h>
#include <string.h>

#include "common/net/compress.h"
#include "common/util/le.h"
#include "common/util/pool.h"
#include "ps/shard.h"

struct store_t {
    param_table_t table;    /* the whole model's tensors */
    optim_params_t optim;
    long total_steps;       /* for the lr schedule */
    uint64_t seed;
    int index, n_servers;
    int slots;              /* optimizer state floats per parameter */
    size_t begin, end, len;
    float *params;          /* len */
    float *state;           /* slots * len, slot-major */
    float *piece;           /* len: an unaligned or compressed push, as floats */
    uint16_t *enc;          /* len: a float16 / bfloat16 pull reply */
    pool_t *pool;           /* the optimizer's threads (large shards only), or NULL */
    /* the piece the pool applies */
    size_t a_off, a_n;
    const float *a_g;
    long a_t;
    double a_lr;
};

/* A shard this large (keys) gets the server's threads for its optimizer:
 * below it an update is too short for threads to pay (Adam's step over 1M
 * floats is about a millisecond on one core). */
#define STORE_THREADS_MIN_KEYS (1u << 20)
/* Pieces shorter than this are applied by one thread even then. */
#define STORE_SPLIT_MIN_KEYS (1u << 14)

store_t *store_new(const server_opts_t *o, err_t *err)
{
    store_t *st = calloc(1, sizeof *st);
    if (!st) {
        err_set(err, "server %d: out of memory", o->index);
        return NULL;
    }
    st->table = *o->table;
    st->optim = o->optim;
    st->total_steps = o->total_steps;
    st->seed = o->seed;
    st->index = o->index;
    st->n_servers = o->n_servers;
    st->slots = optim_slots(&o->optim);
    const size_t n = st->table.n_params;
    st->begin = shard_begin(n, o->n_servers, o->index);
    st->end = shard_end(n, o->n_servers, o->index);
    st->len = st->end - st->begin;
    const size_t len = st->len ? st->len : 1;
    st->params = calloc(len, sizeof *st->params);
    st->state = calloc(st->slots ? (size_t)st->slots * len : 1, sizeof *st->state);
    st->piece = calloc(len, sizeof *st->piece);
    st->enc = calloc(len, sizeof *st->enc);
    if (!st->params || !st->state || !st->piece || !st->enc) {
        err_set(err, "server %d: out of memory for a shard of %zu parameters", o->index, st->len);
        goto err;
    }
    if (o->threads > 1 && st->len >= STORE_THREADS_MIN_KEYS &&
        !(st->pool = pool_new(o->threads, err)))
        goto err;
    if (o->init_params) {
        memcpy(st->params, o->init_params + st->begin, st->len * sizeof *st->params);
        for (int k = 0; k < st->slots; k++)
            memcpy(st->state + (size_t)k * st->len, o->init_state + (size_t)k * n + st->begin,
                   st->len * sizeof *st->state);
        return st;
    }
    if (params_init_slice(&st->table, o->seed, st->begin, st->end, st->params, err) != 0)
        goto err;
    optim_state_init(&o->optim, st->state, st->len);
    return st;
err:
    store_destroy(&st);
    return NULL;
}

void store_destroy(store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    store_t *st = *self_p;
    free(st->params);
    free(st->state);
    free(st->piece);
    free(st->enc);
    pool_destroy(&st->pool);
    free(st);
    *self_p = NULL;
}

const float *store_params(const store_t *st, size_t *begin, size_t *end)
{
    *begin = st->begin;
    *end = st->end;
    return st->params;
}

size_t store_begin(const store_t *st)
{
    return st->begin;
}

size_t store_len(const store_t *st)
{
    return st->len;
}

size_t store_n_params(const store_t *st)
{
    return st->table.n_params;
}

/* Worker w's share of the piece under way (st->a_*). */
static void apply_share(void *ctx, int w)
{
    store_t *st = ctx;
    size_t b, e;
    pool_share(st->a_n, w, pool_size(st->pool), &b, &e);
    const size_t off = st->a_off + b;
    optim_update_slice(&st->optim, st->params + off, st->a_g + b, st->state + off, st->len, e - b,
                       st->a_t, st->a_lr);
}

int store_threads(const store_t *st)
{
    return st->pool ? pool_size(st->pool) : 1;
}

void store_apply(store_t *st, size_t off, const float *g, size_t n, long version)
{
    const double lr = optim_lr(&st->optim, version, st->total_steps);
    if (!st->pool || n < STORE_SPLIT_MIN_KEYS) {
        /* the shard's state slots are len apart; this piece is at off in each */
        optim_update_slice(&st->optim, st->params + off, g, st->state + off, st->len, n,
                           version + 1, lr);
        return;
    }
    /* elementwise: each thread a slice, the same result as one thread */
    st->a_off = off;
    st->a_n = n;
    st->a_g = g;
    st->a_t = version + 1;
    st->a_lr = lr;
    pool_run(st->pool, apply_share, st);
}

int store_decode_push(store_t *st, const wire_hdr_t *h, const uint8_t *payload, const float **g,
                      int *code, err_t *err)
{
    const size_t n = (size_t)(h->end - h->begin);
    *g = st->piece;
    switch (h->elem) {
    case WIRE_F32:
        if (((uintptr_t)payload % sizeof(float)) == 0)
            *g = (const float *)(const void *)payload;
        else /* ZeroMQ frames are not promised to be float-aligned */
            memcpy(st->piece, payload, n * sizeof(float));
        return 0;
    case WIRE_F16:
    case WIRE_BF16:
        compress_decode16(st->piece, payload, n, h->elem == WIRE_BF16);
        return 0;
    case WIRE_TOPK: {
        uint32_t prev = 0;
        for (uint64_t j = 0; j < h->count; j++) {
            uint32_t i = le_load32(payload + 8 * j);
            if (i >= n || (j > 0 && i <= prev)) {
                *code = WIRE_E_MALFORMED;
                return err_set(err, "top-k PUSH: index %u after %u in a range of %zu keys", i,
                               prev, n);
            }
            prev = i;
        }
        memset(st->piece, 0, n * sizeof(float));
        for (uint64_t j = 0; j < h->count; j++) {
            const uint8_t *e = payload + 8 * j;
            st->piece[le_load32(e)] = le_loadf(e + 4);
        }
        return 0;
    }
    default:
        *code = WIRE_E_MALFORMED;
        return err_set(err, "PUSH with element type %d: float32, float16, bfloat16 or top-k",
                       h->elem);
    }
}

const uint16_t *store_encode16(store_t *st, size_t off, size_t n, int bf16)
{
    compress_encode16(st->enc, st->params + off, n, bf16);
    return st->enc;
}

size_t store_gather_len(const store_t *st)
{
    return st->len * (1 + (size_t)st->slots);
}

void store_gather(const store_t *st, float *buf)
{
    memcpy(buf, st->params, st->len * sizeof *buf);
    memcpy(buf + st->len, st->state, (size_t)st->slots * st->len * sizeof *buf);
}

int store_save(const store_t *st, const server_saver_t *saver, long step, long version,
               err_t *err)
{
    if (!saver || !saver->write)
        return err_set(err, "this server keeps no checkpoints (no run folder)");
    server_shard_t sh = {
        .index = st->index, .n_servers = st->n_servers, .step = step, .version = version,
        .seed = st->seed, .table = &st->table, .optim = &st->optim, .n_slots = st->slots,
        .begin = st->begin, .end = st->end, .params = st->params,
        .state = st->slots ? st->state : NULL,
    };
    return saver->write(saver->ctx, &sh, err);
}
