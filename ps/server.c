/* server.c - parameter-server logic (see server.h). */
#include "ps/server.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/net/compress.h"
#include "export/checkpoint.h"
#include "export/ckptdir.h"
#include "common/util/fsutil.h"
#include "common/util/le.h"
#include "ps/shard.h"
#include "common/net/wire.h"

#define PEER_MAX 256
#define BAR_MAX 16     /* values a BARRIER reduces */
#define RANGES_MAX WIRE_PIECES_MAX /* pieces per step (layers, cut in WIRE_PIECE_FLOATS) */

/* A key range of the current BSP step and how many trainers pushed it. */
typedef struct {
    size_t b, e;
    int count;
    int applied;             /* summed and applied (every live trainer pushed it) */
} range_t;

/* A pull that must wait (BSP: for the step's update; SSP: for the slowest
 * trainer). */
typedef struct {
    uint8_t peer[PEER_MAX];
    size_t peer_len;
    wire_hdr_t hdr;
    uint64_t sent[RANGES_MAX / 64]; /* BSP: pieces of its step already sent (bit per range) */
} pending_t;

struct server_t {
    server_opts_t o;
    param_table_t table;
    size_t begin, end, len;
    float *params;           /* len */
    float *state;            /* slots * len */
    float *sum;              /* len: BSP sum of the trainers' gradients */
    float *piece;            /* len: an unaligned or compressed payload, as floats */
    uint16_t *enc;           /* len: a float16 / bfloat16 pull reply */
    float *tgrad;            /* T * len: each trainer's gradient of the current step */
    size_t *tgot;            /* T: floats of the current step received */
    int64_t *tclock;         /* T: steps each trainer has completed (pushed in full) */
    char *ckpt_root, *config_text; /* owned copies of o.ckpt_root, o.config_text */
    char (*thosts)[64];      /* T: each trainer's host, for messages ("" unknown) */
    long version;            /* updates applied */
    range_t ranges[RANGES_MAX]; /* BSP: the step's pieces so far */
    int n_ranges;
    int range_hint;          /* BSP: where the next piece's range is likely to be */
    pending_t *pending;      /* waiting pulls */
    int n_pending, cap_pending;
    pending_t *barrier;      /* T: BARRIER waiters, by trainer */
    uint8_t *bar_in;         /* T: trainer t waits in the barrier */
    double *bar_vals;        /* T * BAR_MAX: what each waiter brought to the reduction */
    int bar_n;               /* values of this round (-1: none came yet) */
    uint8_t *rgot;           /* RANGES_MAX * T: trainer t pushed piece r of the step */
    double *tseen;           /* T: when trainer t was last heard from (heartbeat) */
    uint8_t *lost;           /* T: trainer t is gone (no message for the timeout) */
    uint8_t *tdone;          /* T: trainer t sent SHUTDOWN */
    pending_t *shut;         /* T: SHUTDOWNs waiting for the end of the job */
    uint8_t *shut_in;        /* T: trainer t waits in shut[t] */
    int n_lost;
    double tseen_start;      /* when the server started waiting for its trainers */
    int halt;                /* 0, WIRE_E_STOPPING or WIRE_E_LOST: pulls are refused */
    char halt_msg[ERR_LEN];
    long stop_step;          /* WIRE_E_STOPPING: pulls for this step on are refused */
    int stop_requested;      /* a signal or a trainer asked the job to stop */
    pending_t save;          /* a BSP checkpoint waiting for its step (save_wait) */
    int save_wait;
    int shutdowns;
    int stop;
    server_stats_t stats;
    server_send_fn send;     /* the current request's reply path */
    void *send_ctx;
    uint8_t hbuf[WIRE_HDR_MAX];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

server_t *server_new(const server_opts_t *o, err_t *err)
{
    server_t *s = calloc(1, sizeof *s);
    if (!s) {
        err_set(err, "server: out of memory");
        return NULL;
    }
    s->o = *o;
    /* the strings are the server's own: the caller's may be on its stack */
    s->o.ckpt_root = s->ckpt_root = o->ckpt_root ? strdup(o->ckpt_root) : NULL;
    s->o.config_text = s->config_text = o->config_text ? strdup(o->config_text) : NULL;
    if ((o->ckpt_root && !s->ckpt_root) || (o->config_text && !s->config_text)) {
        err_set(err, "server: out of memory");
        server_destroy(&s);
        return NULL;
    }
    s->table = *o->table;
    s->o.table = &s->table;
    size_t n = s->table.n_params;
    int T = o->n_trainers;
    s->begin = shard_begin(n, o->n_servers, o->index);
    s->end = shard_end(n, o->n_servers, o->index);
    s->len = s->end - s->begin;
    size_t len = s->len ? s->len : 1;
    int slots = optim_slots(&o->optim);
    s->params = calloc(len, sizeof *s->params);
    s->state = calloc(slots ? (size_t)slots * len : 1, sizeof *s->state);
    s->sum = calloc(len, sizeof *s->sum);
    s->piece = calloc(len, sizeof *s->piece);
    s->enc = calloc(len, sizeof *s->enc);
    s->tgrad = calloc((size_t)T * len, sizeof *s->tgrad);
    s->tgot = calloc((size_t)T, sizeof *s->tgot);
    s->tclock = calloc((size_t)T, sizeof *s->tclock);
    s->barrier = calloc((size_t)T, sizeof *s->barrier);
    s->bar_in = calloc((size_t)T, 1);
    s->bar_vals = calloc((size_t)T * BAR_MAX, sizeof *s->bar_vals);
    s->bar_n = -1;
    s->rgot = calloc((size_t)RANGES_MAX * T, 1);
    s->tseen = calloc((size_t)T, sizeof *s->tseen);
    s->lost = calloc((size_t)T, 1);
    s->tdone = calloc((size_t)T, 1);
    s->shut = calloc((size_t)T, sizeof *s->shut);
    s->shut_in = calloc((size_t)T, 1);
    s->thosts = calloc((size_t)T, sizeof *s->thosts);
    s->cap_pending = 2 * T + 4;
    s->pending = calloc((size_t)s->cap_pending, sizeof *s->pending);
    if (!s->params || !s->state || !s->sum || !s->piece || !s->enc || !s->tgrad || !s->tgot || !s->tclock ||
        !s->barrier || !s->pending || !s->bar_in || !s->bar_vals || !s->rgot || !s->tseen ||
        !s->lost || !s->tdone || !s->thosts || !s->shut || !s->shut_in) {
        err_set(err, "server %d: out of memory for a shard of %zu parameters", o->index, s->len);
        server_destroy(&s);
        return NULL;
    }
    if (o->init_params) {
        memcpy(s->params, o->init_params + s->begin, s->len * sizeof *s->params);
        for (int k = 0; k < slots; k++)
            memcpy(s->state + (size_t)k * s->len, o->init_state + (size_t)k * n + s->begin,
                   s->len * sizeof *s->state);
        s->version = o->start_step;
        for (int t = 0; t < T; t++)
            s->tclock[t] = o->start_step;
        return s;
    }
    if (params_init_slice(&s->table, o->seed, s->begin, s->end, s->params, err) != 0) {
        server_destroy(&s);
        return NULL;
    }
    optim_state_init(&o->optim, s->state, s->len);
    return s;
}

void server_destroy(server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    server_t *s = *self_p;
    free(s->ckpt_root);
    free(s->config_text);
    free(s->params);
    free(s->state);
    free(s->sum);
    free(s->piece);
    free(s->enc);
    free(s->tgrad);
    free(s->tgot);
    free(s->tclock);
    free(s->barrier);
    free(s->bar_in);
    free(s->bar_vals);
    free(s->rgot);
    free(s->tseen);
    free(s->lost);
    free(s->tdone);
    free(s->shut);
    free(s->shut_in);
    free(s->thosts);
    free(s->pending);
    free(s);
    *self_p = NULL;
}

int server_finished(const server_t *s)
{
    return s->stop || s->shutdowns + s->n_lost >= s->o.n_trainers;
}

int server_lost(const server_t *s, int *first)
{
    if (first) {
        *first = -1;
        for (int t = 0; t < s->o.n_trainers && *first < 0; t++)
            if (s->lost[t])
                *first = t;
    }
    return s->n_lost;
}

void server_set_trainer_hosts(server_t *s, const char *const *hosts)
{
    for (int t = 0; t < s->o.n_trainers; t++)
        snprintf(s->thosts[t], sizeof s->thosts[t], "%s", hosts[t] ? hosts[t] : "");
}

void server_request_stop(server_t *s)
{
    s->stop_requested = 1;
}

const float *server_params(const server_t *s, size_t *begin, size_t *end)
{
    *begin = s->begin;
    *end = s->end;
    return s->params;
}

size_t server_n_params(const server_t *s)
{
    return s->table.n_params;
}

long server_version(const server_t *s)
{
    return s->version;
}

void server_get_stats(const server_t *s, server_stats_t *st)
{
    *st = s->stats;
}

/* Sends header h (and optionally a payload) to peer. */
static int reply(server_t *s, const uint8_t *peer, size_t peer_len, const wire_hdr_t *h,
                 const void *payload, size_t payload_len, int zero_copy, server_send_fn send,
                 void *ctx)
{
    int hl = wire_encode(h, s->hbuf, sizeof s->hbuf);
    if (hl < 0)
        return -1;
    tframe_t f[3] = {{peer, peer_len}, {s->hbuf, (size_t)hl}, {payload, payload_len}};
    return send(ctx, f, payload ? 3 : 2, zero_copy ? 2 : 3);
}

/* Answers request number req with a header alone: type, the server's
 * version as clock, and status. Returns reply()'s result. */
static int reply_ack(server_t *s, const uint8_t *peer, size_t peer_len, int type, uint32_t req,
                     int status, server_send_fn send, void *ctx)
{
    wire_hdr_t h;
    wire_hdr_init(&h, type, s->o.rank);
    h.req = req;
    h.clock = s->version;
    h.status = status;
    return reply(s, peer, peer_len, &h, NULL, 0, 0, send, ctx);
}

/* Answers req with ERROR code and a text; fills err with the log line. */
static int reply_error(server_t *s, const uint8_t *peer, size_t peer_len, const wire_hdr_t *req,
                       int code, server_send_fn send, void *ctx, err_t *err)
{
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_ERROR, s->o.rank);
    h.status = code;
    h.req = req ? req->req : 0;
    h.clock = s->version;
    h.elem = WIRE_TEXT;
    h.count = strlen(err->msg);
    s->stats.errors++;
    return reply(s, peer, peer_len, &h, err->msg, h.count, 0, send, ctx);
}

/* Sends h (a PULL_REPLY) with the parameters from key b on, as the pull p
 * asked: float32 (zero_copy allowed) or encoded to float16 / bfloat16 (a
 * copy). Returns 0 or -1. */
static int reply_params(server_t *s, const pending_t *p, wire_hdr_t *h, size_t b, int zero_copy,
                        server_send_fn send, void *ctx)
{
    const float *src = s->params + (b - s->begin);
    if (p->hdr.elem == WIRE_F16 || p->hdr.elem == WIRE_BF16) {
        h->elem = p->hdr.elem;
        compress_encode16(s->enc, src, h->count, p->hdr.elem == WIRE_BF16);
        return reply(s, p->peer, p->peer_len, h, s->enc, h->count * 2, 0, send, ctx);
    }
    return reply(s, p->peer, p->peer_len, h, src, h->count * sizeof(float), zero_copy, send, ctx);
}

/* The lowest trainer not lost: the one that leads the job (progress,
 * checkpoints, metrics, the final model) when trainer 0 is gone; T when
 * none is left. */
static int next_lead(const server_t *s)
{
    int t = 0;
    while (t < s->o.n_trainers && s->lost[t])
        t++;
    return t;
}

/* The status of a pull reply to trainer t: 1 when the job is asked to stop
 * (the leading trainer stops it at its next step), plus 2 when trainer 0
 * was lost and t is the lowest trainer left, which leads from now on. */
static int pull_status(const server_t *s, int t)
{
    return (s->stop_requested ? 1 : 0) | (s->lost[0] && next_lead(s) == t ? 2 : 0);
}

static void serve_pull(server_t *s, const pending_t *p, server_send_fn send, void *ctx, int *fail)
{
    /* BSP: the shard cannot change before every trainer has this reply, so
     * it goes out without a copy; ASP/SSP copy, since a push may land while
     * the reply is still being sent. In pieces of WIRE_PIECE_FLOATS, so the
     * trainer copies one while the next is on the wire. */
    int zc = s->o.consistency == CONS_BSP;
    for (size_t b = p->hdr.begin; b < p->hdr.end && !*fail; b += WIRE_PIECE_FLOATS) {
        size_t e = p->hdr.end - b > WIRE_PIECE_FLOATS ? b + WIRE_PIECE_FLOATS : p->hdr.end;
        wire_hdr_t h;
        wire_hdr_init(&h, WIRE_PULL_REPLY, s->o.rank);
        h.req = p->hdr.req;
        h.clock = s->version;
        h.begin = b;
        h.end = e;
        h.count = e - b;
        h.status = pull_status(s, p->hdr.sender);
        if (reply_params(s, p, &h, b, zc, send, ctx) != 0)
            *fail = 1;
    }
    s->stats.pulls++;
}

/* BSP: sends pending pull p the part of piece r (complete: its parameters
 * are final for the step under way) that it asked for, once. */
static void serve_piece(server_t *s, pending_t *p, int r, int64_t clock, int *fail)
{
    if (p->sent[r / 64] & (1ull << (r % 64)))
        return;
    p->sent[r / 64] |= 1ull << (r % 64);
    size_t b = s->ranges[r].b > p->hdr.begin ? s->ranges[r].b : p->hdr.begin;
    size_t e = s->ranges[r].e < p->hdr.end ? s->ranges[r].e : p->hdr.end;
    if (b >= e)
        return;
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_PULL_REPLY, s->o.rank);
    h.req = p->hdr.req;
    h.clock = clock;
    h.begin = b;
    h.end = e;
    h.count = e - b;
    h.status = pull_status(s, p->hdr.sender);
    if (reply_params(s, p, &h, b, 1, s->send, s->send_ctx) != 0)
        *fail = 1;
}

/* The slowest live trainer's clock (a lost trainer holds no one back). */
static int64_t min_clock(const server_t *s)
{
    int64_t m = INT64_MAX;
    for (int t = 0; t < s->o.n_trainers; t++)
        if (!s->lost[t] && s->tclock[t] < m)
            m = s->tclock[t];
    return m == INT64_MAX ? 0 : m;
}

/* Answers pull p with ERROR: the job halts (s->halt says why). */
static int refuse_halted(server_t *s, const pending_t *p, server_send_fn send, void *ctx)
{
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_ERROR, s->o.rank);
    h.status = s->halt;
    h.req = p->hdr.req;
    h.clock = s->halt == WIRE_E_STOPPING ? s->stop_step : s->version;
    h.elem = WIRE_TEXT;
    h.count = strlen(s->halt_msg);
    return reply(s, p->peer, p->peer_len, &h, s->halt_msg, h.count, 0, send, ctx);
}

/* 1 when a pull of step c must be refused because the job halts. */
static int pull_halted(const server_t *s, int64_t c)
{
    return s->halt == WIRE_E_LOST || (s->halt == WIRE_E_STOPPING && c >= s->stop_step);
}

/* May the pull of a trainer at clock c be answered now? */
static int pull_ready(const server_t *s, int64_t c)
{
    switch (s->o.consistency) {
    case CONS_BSP:
        return s->version >= c;
    case CONS_SSP:
        return min_clock(s) >= c - s->o.staleness;
    case CONS_ASP:
        return 1;
    }
    return 1;
}

/* 1 when pull p has been sent some pieces of its step already. */
static int any_sent(const pending_t *p)
{
    for (size_t i = 0; i < sizeof p->sent / sizeof p->sent[0]; i++)
        if (p->sent[i])
            return 1;
    return 0;
}

/* Answers every waiting pull whose condition now holds, in arrival order. */
static int flush_pending(server_t *s, server_send_fn send, void *ctx)
{
    int fail = 0, keep = 0;
    for (int i = 0; i < s->n_pending; i++) {
        pending_t *p = &s->pending[i];
        if (pull_halted(s, p->hdr.clock)) {
            if (refuse_halted(s, p, send, ctx) != 0)
                fail = 1;
        } else if (!pull_ready(s, p->hdr.clock)) {
            s->pending[keep++] = *p;
        } else if (any_sent(p)) {
            /* BSP: it has some pieces of the step just completed; the rest
             * (the ranges array still describes that step) */
            for (int r = 0; r < s->n_ranges; r++)
                serve_piece(s, p, r, s->version, &fail);
            s->stats.pulls++;
        } else {
            serve_pull(s, p, send, ctx, &fail);
        }
    }
    s->n_pending = keep;
    return fail ? -1 : 0;
}

/* BSP: sums and applies piece r once every live trainer has pushed it (a
 * trainer lost in mid-step adds what it pushed before it was lost). Returns
 * 0, or -2 with err when a waiting pull cannot be sent its part (the piece
 * is applied all the same). */
static int complete_piece(server_t *s, range_t *r, err_t *err)
{
    const int T = s->o.n_trainers;
    const uint8_t *got = s->rgot + (size_t)(r - s->ranges) * T;
    if (r->applied || s->halt == WIRE_E_LOST) /* halted: the lost trainer's part never comes */
        return 0;
    for (int u = 0; u < T; u++)
        if (!got[u] && !s->lost[u])
            return 0;
    /* sum in trainer order, never arrival order: deterministic */
    const size_t off = r->b - s->begin, n = r->e - r->b;
    float *sum = s->sum + off;
    if (!got[0])
        memset(sum, 0, n * sizeof *sum);
    for (int u = 1; u < T; u++) {
        if (!got[u])
            continue;
        const float *gu = s->tgrad + (size_t)u * s->len + off;
        for (size_t i = 0; i < n; i++)
            sum[i] += gu[i];
    }
    optim_update_slice(&s->o.optim, s->params + off, sum, s->state + off, s->len, n,
                       s->version + 1, optim_lr(&s->o.optim, s->version, s->o.total_steps));
    r->applied = 1;
    /* pulls already waiting for the next step get this piece now, so
     * it travels while the trainers are still in backward */
    int fail = 0;
    for (int i = 0; i < s->n_pending; i++)
        if (s->pending[i].hdr.clock == s->version + 1 && !pull_halted(s, s->version + 1))
            serve_piece(s, &s->pending[i], (int)(r - s->ranges), s->version + 1, &fail);
    if (fail)
        return err_set(err, "cannot send a piece of the parameters"), -2;
    return 0;
}

/* Takes the piece [b, b + n) of trainer t's gradient for the current step.
 * The optimizers are elementwise, so a piece can be applied on its own:
 * ASP / SSP apply each piece at once, read in place from the message, and so
 * does BSP with one trainer. BSP with several trainers keeps each trainer's
 * pieces (trainer 0's straight in the sum) until the step is complete, then
 * adds them in trainer order, never arrival order, so the result is
 * deterministic. Returns 0; -1 with err if the piece is refused (nothing is
 * taken); -2 with err if it was taken but a waiting pull could not be sent
 * its part. */
static int take_piece(server_t *s, int t, size_t b, const float *g, size_t n, err_t *err)
{
    size_t off = b - s->begin;
    if (s->o.consistency != CONS_BSP || s->o.n_trainers == 1) {
        /* the shard's state slots are len apart; this piece is at off in each */
        optim_update_slice(&s->o.optim, s->params + off, g, s->state + off, s->len, n,
                           s->version + 1, optim_lr(&s->o.optim, s->version, s->o.total_steps));
        return 0;
    }
    /* BSP: every trainer pushes a step in the same pieces (its layers, cut
     * by wire_piece_floats()); a piece is summed and applied as soon as
     * every trainer has sent it, while the rest of backward is still running
     * on the trainers */
    range_t *r = NULL;
    /* the pieces come in the same order every step: look where the one
     * after the last piece was first (the ranges never overlap, so an exact
     * match there needs no further check) */
    int hint = s->range_hint < s->n_ranges ? s->range_hint : 0;
    if (s->n_ranges > 0 && s->ranges[hint].b == b && s->ranges[hint].e == b + n)
        r = &s->ranges[hint];
    for (int i = 0; i < s->n_ranges && !r; i++) {
        range_t *q = &s->ranges[i];
        if (q->b == b && q->e == b + n) {
            r = q;
            break;
        }
        if (b < q->e && q->b < b + n)
            return err_set(err, "trainer %d pushed keys [%zu, %zu), which cut the piece [%zu, %zu) "
                           "another trainer pushed: in BSP all trainers push the same pieces",
                           t, b, b + n, q->b, q->e);
    }
    if (!r) {
        if (s->n_ranges == RANGES_MAX)
            return err_set(err, "more than %d pieces in one step", RANGES_MAX);
        r = &s->ranges[s->n_ranges++];
        r->b = b;
        r->e = b + n;
        r->count = 0;
        r->applied = 0;
        memset(s->rgot + (size_t)(r - s->ranges) * s->o.n_trainers, 0, (size_t)s->o.n_trainers);
    }
    s->range_hint = (int)(r - s->ranges) + 1;
    uint8_t *got = s->rgot + (size_t)(r - s->ranges) * s->o.n_trainers;
    if (got[t])
        return err_set(err, "trainer %d pushed keys [%zu, %zu) twice in one step", t, b, b + n);
    float *dst = t == 0 ? s->sum : s->tgrad + (size_t)t * s->len;
    memcpy(dst + off, g, n * sizeof *dst);
    got[t] = 1;
    r->count++;
    return complete_piece(s, r, err);
}

/* The step is complete once every live trainer has pushed it in full (BSP;
 * ASP / SSP count each trainer's steps). */
static void step_maybe_done(server_t *s)
{
    if (s->halt == WIRE_E_LOST)
        return; /* BSP halted: the servers stay at the last complete step */
    if (s->o.consistency == CONS_BSP) {
        int live = 0;
        for (int u = 0; u < s->o.n_trainers; u++) {
            if (s->lost[u])
                continue;
            live++;
            if (s->tclock[u] <= s->version)
                return; /* someone has not pushed this step yet */
        }
        if (!live)
            return;
    }
    /* the pieces were applied as they completed */
    s->version++;
    s->stats.updates++;
}

/* One trainer's gradient for a step is complete. */
static void trainer_step_done(server_t *s, int t)
{
    s->tgot[t] = 0;
    s->tclock[t]++;
    step_maybe_done(s);
}

/* Writes the shard, its optimizer state and the job's tensor table and
 * config as ckpt_root/step-<step>/shard-<index>-of-<S>.ckpt. In BSP the
 * server must be at that step. Returns 0, or -1 with err. */
static int save_shard(server_t *s, int64_t step, err_t *err)
{
    if (!s->o.ckpt_root)
        return err_set(err, "this server keeps no checkpoints (no run folder)");
    if (s->o.consistency == CONS_BSP && step != s->version)
        return err_set(err, "checkpoint of step %lld asked, the server is at step %ld",
                       (long long)step, s->version);
    char dir[4200], path[4400];
    if (ckptdir_step_dir(dir, sizeof dir, s->o.ckpt_root, (long)step, err) != 0 ||
        ckptdir_part_path(path, sizeof path, s->o.ckpt_root, (long)step, s->o.index,
                          s->o.n_servers, err) != 0 ||
        fs_mkdirs(dir, err) != 0)
        return -1;
    int slots = optim_slots(&s->o.optim);
    checkpoint_t ck = {
        .step = (uint64_t)step, .clock = (uint64_t)s->version, .seed = s->o.seed,
        .opt_kind = s->o.optim.kind->id, .n_slots = slots,
        .config_text = (char *)(s->o.config_text ? s->o.config_text : ""),
        .table = s->table, .params = s->params, .opt_state = slots ? s->state : NULL,
        .n_shards = s->o.n_servers, .shard_index = s->o.index,
        .shard_begin = s->begin, .shard_end = s->end,
    };
    return checkpoint_write(path, &ck, err);
}

/* A BSP checkpoint that waited for its step: written (and answered) once
 * the server is there. Returns 0 or -1 (a reply could not be sent). */
/* Writes the shard as step p->hdr.clock (save_shard) and answers request p:
 * CHECKPOINT without payload once the file is on disk, or ERROR internal
 * (err says why). Returns 0 or -1 (a reply could not be sent). */
static int save_and_answer(server_t *s, const pending_t *p, server_send_fn send, void *ctx,
                           err_t *err)
{
    if (save_shard(s, p->hdr.clock, err) != 0)
        return reply_error(s, p->peer, p->peer_len, &p->hdr, WIRE_E_INTERNAL, send, ctx, err);
    wire_hdr_t r;
    wire_hdr_init(&r, WIRE_CHECKPOINT, s->o.rank);
    r.req = p->hdr.req;
    r.clock = s->version;
    r.begin = s->begin;
    r.end = s->end;
    return reply(s, p->peer, p->peer_len, &r, NULL, 0, 0, send, ctx);
}

static int save_if_due(server_t *s, server_send_fn send, void *ctx)
{
    if (!s->save_wait || s->save.hdr.clock > s->version)
        return 0;
    s->save_wait = 0;
    err_t e;
    return save_and_answer(s, &s->save, send, ctx, &e);
}

/* Answers every trainer waiting in the barrier, with the sums of what they
 * brought (pairs of float32 hi, lo per value, summed in trainer order in
 * double), when every live trainer is in; or with ERROR when the job halts,
 * for a lost trainer or because it stops. A stop comes from trainer 0 at
 * the start of a step, so trainer 0 enters no barrier after it, and a
 * trainer one step ahead that waits in the epoch's barrier would otherwise
 * wait for ever (and trainer 0 for its goodbye). Returns 0 or -1 (a reply
 * could not be sent). */
static int barrier_flush(server_t *s, server_send_fn send, void *ctx)
{
    const int T = s->o.n_trainers;
    int in = 0, live = 0;
    for (int u = 0; u < T; u++) {
        live += !s->lost[u];
        in += s->bar_in[u];
    }
    if (in == 0)
        return 0;
    int halted = s->halt == WIRE_E_LOST || s->halt == WIRE_E_STOPPING;
    if (!halted && in < live)
        return 0;
    int n = s->bar_n > 0 ? s->bar_n : 0, rc = 0;
    float out[2 * BAR_MAX];
    for (int i = 0; i < n; i++) {
        double v = 0;
        for (int u = 0; u < T; u++)
            if (s->bar_in[u])
                v += s->bar_vals[(size_t)u * BAR_MAX + i];
        out[2 * i] = (float)v;
        out[2 * i + 1] = (float)(v - (double)out[2 * i]);
    }
    for (int u = 0; u < T; u++) {
        if (!s->bar_in[u])
            continue;
        pending_t *p = &s->barrier[u];
        if (halted) {
            if (refuse_halted(s, p, send, ctx) != 0)
                rc = -1;
        } else {
            wire_hdr_t r;
            wire_hdr_init(&r, WIRE_BARRIER, s->o.rank);
            r.req = p->hdr.req;
            r.clock = s->version;
            r.count = (uint64_t)(2 * n);
            if (reply(s, p->peer, p->peer_len, &r, n ? out : NULL, (size_t)(2 * n) * sizeof(float),
                      0, send, ctx) != 0)
                rc = -1;
        }
        s->bar_in[u] = 0;
    }
    s->bar_n = -1;
    return rc;
}

/* Trainer t enters the barrier with payload (h->count float32, pairs).
 * Returns 0, -1 when a reply failed, or a WIRE_E_* code (with err) to
 * refuse the request. */
static int barrier_enter(server_t *s, int t, const uint8_t *peer, size_t peer_len,
                         const wire_hdr_t *h, const uint8_t *payload, err_t *err)
{
    if (s->halt == WIRE_E_LOST) {
        snprintf(err->msg, sizeof err->msg, "%s", s->halt_msg);
        return WIRE_E_LOST;
    }
    if (s->bar_in[t])
        return err_set(err, "trainer %d is in the barrier already", t), WIRE_E_STATE;
    if (h->count % 2 != 0 || h->count / 2 > BAR_MAX || (h->count && h->elem != WIRE_F32))
        return err_set(err, "BARRIER with %llu values: it takes up to %d float32 pairs",
                       (unsigned long long)h->count, BAR_MAX), WIRE_E_LENGTH;
    int n = (int)(h->count / 2);
    if (s->bar_n >= 0 && n != s->bar_n)
        return err_set(err, "BARRIER with %d values from trainer %d, the others brought %d", n,
                       t, s->bar_n), WIRE_E_LENGTH;
    for (int i = 0; i < n; i++) {
        float hi, lo;
        memcpy(&hi, payload + 8 * i, 4);
        memcpy(&lo, payload + 8 * i + 4, 4);
        s->bar_vals[(size_t)t * BAR_MAX + i] = (double)hi + (double)lo;
    }
    s->bar_n = n;
    pending_t *p = &s->barrier[t];
    p->peer_len = peer_len;
    memcpy(p->peer, peer, peer_len);
    p->hdr = *h;
    s->bar_in[t] = 1;
    return barrier_flush(s, s->send, s->send_ctx);
}

/* Answers the waiting SHUTDOWNs once the job is over for this server
 * (server_finished: every trainer said goodbye or was lost, or one stopped
 * the job). The answer's status is the number of trainers lost, so that
 * every survivor learns of a dead rank (launch/cluster.c must then not wait
 * for it in MPI_Finalize). Returns 0, or -1 if a send failed. */
static int shutdown_flush(server_t *s, server_send_fn send, void *ctx)
{
    if (!server_finished(s))
        return 0;
    int rc = 0;
    for (int t = 0; t < s->o.n_trainers; t++) {
        if (!s->shut_in[t])
            continue;
        pending_t *p = &s->shut[t];
        if (reply_ack(s, p->peer, p->peer_len, WIRE_SHUTDOWN, p->hdr.req, s->n_lost, send,
                      ctx) != 0)
            rc = -1;
        s->shut_in[t] = 0;
    }
    return rc;
}

int server_check_trainers(server_t *s, int timeout_ms, server_send_fn send, void *ctx,
                          err_t *err)
{
    const int T = s->o.n_trainers;
    const double now = now_s();
    int newly = 0;
    err->msg[0] = '\0';
    if (timeout_ms <= 0)
        return 0;
    /* complete_piece answers waiting pulls through s->send: this call's */
    s->send = send;
    s->send_ctx = ctx;
    if (s->tseen_start == 0)
        s->tseen_start = now;
    for (int t = 0; t < T; t++) {
        double seen = s->tseen[t] > 0 ? s->tseen[t] : s->tseen_start;
        if (s->lost[t] || s->tdone[t] || now - seen < timeout_ms / 1000.0)
            continue;
        s->lost[t] = 1;
        s->n_lost++;
        newly++;
        /* its waiting requests go: nobody is there to answer */
        int keep = 0;
        for (int i = 0; i < s->n_pending; i++)
            if (s->pending[i].hdr.sender != t)
                s->pending[keep++] = s->pending[i];
        s->n_pending = keep;
        s->bar_in[t] = 0;
        err_set(err, "trainer %d (rank %d on %s) lost: nothing heard from it for %.1f s", t,
                s->o.n_servers + t, s->thosts[t][0] ? s->thosts[t] : "an unknown host", now - seen);
        if (s->o.consistency == CONS_BSP && !s->o.continue_on_loss && s->halt != WIRE_E_LOST) {
            s->halt = WIRE_E_LOST;
            snprintf(s->halt_msg, sizeof s->halt_msg, "%s", err->msg);
        }
    }
    if (!newly)
        return 0;
    if (s->o.consistency == CONS_BSP && s->halt != WIRE_E_LOST) {
        /* go on without it: pieces and the step may now be complete */
        long before = s->version;
        for (int r = 0; r < s->n_ranges; r++)
            if (complete_piece(s, &s->ranges[r], err) != 0)
                return -1;
        step_maybe_done(s);
        if (s->version != before)
            s->n_ranges = 0;
    }
    if (flush_pending(s, send, ctx) != 0 || barrier_flush(s, send, ctx) != 0 ||
        save_if_due(s, send, ctx) != 0 || shutdown_flush(s, send, ctx) != 0)
        return err_set(err, "cannot reply after losing a trainer");
    return newly;
}

/* The gradient of PUSH h as floats: *g points into the payload (float32,
 * aligned) or is the piece buffer, decoded from float16, bfloat16 or top-k
 * pairs (checked: indices ascending inside the range; nothing is changed
 * when they are not). Returns 0, or a WIRE_E_* code with err. */
static int decode_push(server_t *s, const wire_hdr_t *h, const uint8_t *payload, float **g,
                       err_t *err)
{
    const size_t n = (size_t)(h->end - h->begin);
    switch (h->elem) {
    case WIRE_F32:
        if (((uintptr_t)payload % sizeof(float)) == 0)
            *g = (float *)(uintptr_t)payload;
        else /* ZeroMQ frames are not promised to be float-aligned */
            memcpy(s->piece, payload, n * sizeof(float));
        return 0;
    case WIRE_F16:
    case WIRE_BF16:
        compress_decode16(s->piece, payload, n, h->elem == WIRE_BF16);
        return 0;
    case WIRE_TOPK: {
        uint32_t prev = 0;
        for (uint64_t j = 0; j < h->count; j++) {
            uint32_t i = le_load32(payload + 8 * j);
            if (i >= n || (j > 0 && i <= prev))
                return err_set(err, "top-k PUSH: index %u after %u in a range of %zu keys", i,
                               prev, n),
                       WIRE_E_MALFORMED;
            prev = i;
        }
        memset(s->piece, 0, n * sizeof(float));
        for (uint64_t j = 0; j < h->count; j++) {
            const uint8_t *e = payload + 8 * j;
            s->piece[le_load32(e)] = le_loadf(e + 4);
        }
        return 0;
    }
    default:
        return err_set(err, "PUSH with element type %d: float32, float16, bfloat16 or top-k",
                       h->elem),
               WIRE_E_MALFORMED;
    }
}

int server_handle(server_t *s, const uint8_t *peer, size_t peer_len, const uint8_t *hdr,
                  size_t hdr_len, const uint8_t *payload, size_t payload_len, int extra_frames,
                  server_send_fn send, void *ctx, err_t *err)
{
    double t0 = now_s();
    wire_hdr_t h;
    int code = 0, rc = 0;
    s->send = send;
    s->send_ctx = ctx;
    if (peer_len == 0 || peer_len > PEER_MAX) {
        err_set(err, "request with a peer identity of %zu bytes ignored", peer_len);
        s->stats.errors++;
        return 0; /* nobody to answer */
    }
    if (extra_frames > 0) {
        err_set(err, "%d frames more than header and payload", extra_frames);
        code = WIRE_E_MALFORMED;
        memset(&h, 0, sizeof h);
        rc = reply_error(s, peer, peer_len, NULL, code, send, ctx, err);
        goto out;
    }
    if (wire_decode(hdr, hdr_len, &h, &code, err) != 0) {
        /* h holds what could be read: its req, if that far, is echoed */
        rc = reply_error(s, peer, peer_len, &h, code, send, ctx, err);
        goto out;
    }
    if (wire_check_payload(&h, payload ? payload_len : 0, &code, err) != 0 ||
        (payload && payload_len > 0 && h.type != WIRE_PUSH && h.type != WIRE_BARRIER)) {
        if (!code) {
            code = WIRE_E_LENGTH;
            err_set(err, "%s carries a payload of %zu bytes", wire_type_name(h.type), payload_len);
        }
        rc = reply_error(s, peer, peer_len, &h, code, send, ctx, err);
        goto out;
    }
    const int T = s->o.n_trainers;
    int t = (int)h.sender;
    if (h.type != WIRE_STATS && (t < 0 || t >= T)) {
        err_set(err, "%s from sender %d: trainers are 0..%d", wire_type_name(h.type), t, T - 1);
        rc = reply_error(s, peer, peer_len, &h, WIRE_E_RANGE, send, ctx, err);
        goto out;
    }
    if (h.type != WIRE_STATS) {
        if (s->lost[t]) { /* it was given up for lost: the job went on without it */
            err_set(err, "%s from trainer %d, which was declared lost: %s", wire_type_name(h.type),
                    t, "it stayed silent for longer than the timeout");
            rc = reply_error(s, peer, peer_len, &h, WIRE_E_LOST, send, ctx, err);
            goto out;
        }
        s->tseen[t] = t0; /* every request is a heartbeat */
    }
    if ((h.type == WIRE_PUSH || h.type == WIRE_PULL) &&
        (h.begin < s->begin || h.end > s->end || h.begin > h.end)) {
        err_set(err, "%s of keys [%llu, %llu) outside this server's shard [%zu, %zu)",
                wire_type_name(h.type), (unsigned long long)h.begin, (unsigned long long)h.end,
                s->begin, s->end);
        rc = reply_error(s, peer, peer_len, &h, WIRE_E_RANGE, send, ctx, err);
        goto out;
    }
    if (h.type == WIRE_PULL && h.begin == h.end) { /* no PULL_REPLY can be empty */
        err_set(err, "PULL of the empty key range [%llu, %llu)", (unsigned long long)h.begin,
                (unsigned long long)h.end);
        rc = reply_error(s, peer, peer_len, &h, WIRE_E_RANGE, send, ctx, err);
        goto out;
    }
    if (h.type == WIRE_PULL && h.elem != WIRE_F32 && h.elem != WIRE_F16 && h.elem != WIRE_BF16) {
        err_set(err, "PULL asks for element type %d: replies are float32, float16 or bfloat16",
                h.elem);
        rc = reply_error(s, peer, peer_len, &h, WIRE_E_MALFORMED, send, ctx, err);
        goto out;
    }
    switch (h.type) {
    case WIRE_PUSH: {
        /* BSP accepts the pushes of the current step only */
        if (s->o.consistency == CONS_BSP && h.clock != s->version) {
            err_set(err, "PUSH for step %lld from trainer %d, but the server is at step %ld",
                    (long long)h.clock, t, s->version);
            rc = reply_error(s, peer, peer_len, &h, WIRE_E_STATE, send, ctx, err);
            goto out;
        }
        const size_t n = (size_t)(h.end - h.begin); /* keys of the piece */
        if (s->tgot[t] + n > s->len) {
            err_set(err, "trainer %d pushed %zu values for a step of a %zu-value shard", t,
                    s->tgot[t] + n, s->len);
            rc = reply_error(s, peer, peer_len, &h, WIRE_E_LENGTH, send, ctx, err);
            goto out;
        }
        /* float32 is read in place: applied, or kept for the step's sum;
         * compressed pushes are decoded into the piece buffer first */
        {
            float *g = s->piece;
            int code = decode_push(s, &h, payload, &g, err);
            if (code) {
                rc = reply_error(s, peer, peer_len, &h, code, send, ctx, err);
                goto out;
            }
            int took = take_piece(s, t, h.begin, g, n, err);
            if (took == -1) { /* refused: nothing was taken */
                rc = reply_error(s, peer, peer_len, &h, WIRE_E_STATE, send, ctx, err);
                goto out;
            }
            rc = took; /* -2: taken, but a piece could not be sent to a waiting pull */
        }
        s->tgot[t] += n;
        s->stats.pushes++;
        if (s->tgot[t] == s->len) {
            long before = s->version;
            trainer_step_done(s, t);
            if (flush_pending(s, send, ctx) != 0)
                rc = -1;
            if (s->version != before) {
                s->n_ranges = 0; /* a new step starts with no pieces */
                if (rc == 0)
                    rc = save_if_due(s, send, ctx);
            }
        }
        break;
    }
    case WIRE_PULL:
        if (pull_halted(s, h.clock)) {
            pending_t p = {.peer_len = peer_len, .hdr = h};
            memcpy(p.peer, peer, peer_len);
            rc = refuse_halted(s, &p, send, ctx);
        } else if (pull_ready(s, h.clock)) {
            pending_t p = {.peer_len = peer_len, .hdr = h};
            memcpy(p.peer, peer, peer_len);
            int fail = 0;
            serve_pull(s, &p, send, ctx, &fail);
            rc = fail ? -1 : 0;
        } else {
            if (s->n_pending == s->cap_pending) {
                err_set(err, "more than %d pulls waiting", s->cap_pending);
                rc = reply_error(s, peer, peer_len, &h, WIRE_E_STATE, send, ctx, err);
                goto out;
            }
            pending_t *p = &s->pending[s->n_pending++];
            p->peer_len = peer_len;
            memcpy(p->peer, peer, peer_len);
            p->hdr = h;
            memset(p->sent, 0, sizeof p->sent);
            if (s->o.consistency == CONS_BSP && h.clock == s->version + 1) {
                int fail = 0;
                for (int r = 0; r < s->n_ranges; r++)
                    if (s->ranges[r].count == s->o.n_trainers)
                        serve_piece(s, p, r, s->version + 1, &fail);
                rc = fail ? -1 : 0;
            }
        }
        break;
    case WIRE_CLOCK: /* a heartbeat (clocks advance with complete pushes): answered */
        rc = reply_ack(s, peer, peer_len, WIRE_CLOCK, h.req, 0, send, ctx);
        break;
    case WIRE_BARRIER:
        rc = barrier_enter(s, t, peer, peer_len, &h, payload, err);
        if (rc > 0) /* refused */
            rc = reply_error(s, peer, peer_len, &h, rc, send, ctx, err);
        break;
    case WIRE_STATS: {
        int first;
        int lost = server_lost(s, &first);
        /* BSP: pieces of the step under way already applied (a halt then
         * leaves no consistent step on this server) */
        int partial = 0;
        for (int i = 0; i < s->n_ranges; i++)
            partial |= s->ranges[i].applied;
        float v[11] = {(float)s->stats.pushes, (float)s->stats.pulls, (float)s->stats.errors,
                       (float)s->stats.updates, (float)s->stats.busy_s, (float)s->version,
                       (float)lost, (float)first, (float)partial, (float)s->tdone[0],
                       (float)next_lead(s)};
        wire_hdr_t r;
        wire_hdr_init(&r, WIRE_STATS, s->o.rank);
        r.req = h.req;
        r.clock = s->version;
        r.count = 11;
        rc = reply(s, peer, peer_len, &r, v, sizeof v, 0, send, ctx);
        break;
    }
    case WIRE_CHECKPOINT: {
        if (h.status == 2) { /* trainer 0: the job stops at step h.clock */
            if (s->halt != WIRE_E_LOST) {
                s->halt = WIRE_E_STOPPING;
                s->stop_step = (long)h.clock;
                snprintf(s->halt_msg, sizeof s->halt_msg,
                         "the job stops at step %lld (asked to stop)", (long long)h.clock);
            }
            rc = reply_ack(s, peer, peer_len, WIRE_CHECKPOINT, h.req, 0, send, ctx);
            if (rc == 0) /* waiting pulls of that step on, and the barrier */
                rc = flush_pending(s, send, ctx) != 0 || barrier_flush(s, send, ctx) != 0 ? -1 : 0;
            break;
        }
        if (h.status == 1 && s->o.consistency == CONS_BSP && h.clock > s->version &&
            !s->save_wait && s->halt != WIRE_E_LOST) {
            /* BSP: the step is still being pushed; saved once it is complete */
            s->save_wait = 1;
            s->save.peer_len = peer_len;
            memcpy(s->save.peer, peer, peer_len);
            s->save.hdr = h;
            break;
        }
        if (h.status == 1) { /* write the shard to disk as step h.clock */
            pending_t p = {.peer_len = peer_len, .hdr = h};
            memcpy(p.peer, peer, peer_len);
            err->msg[0] = '\0';
            rc = save_and_answer(s, &p, send, ctx, err);
            break;
        }
        /* the shard's parameters followed by its optimizer state */
        size_t n = s->len * (1 + (size_t)optim_slots(&s->o.optim));
        float *buf = malloc(n ? n * sizeof *buf : 1);
        if (!buf) {
            err_set(err, "out of memory for a checkpoint of the shard");
            rc = reply_error(s, peer, peer_len, &h, WIRE_E_INTERNAL, send, ctx, err);
            goto out;
        }
        memcpy(buf, s->params, s->len * sizeof *buf);
        memcpy(buf + s->len, s->state, (n - s->len) * sizeof *buf);
        wire_hdr_t r;
        wire_hdr_init(&r, WIRE_CHECKPOINT, s->o.rank);
        r.req = h.req;
        r.clock = s->version;
        r.begin = s->begin;
        r.end = s->end;
        r.count = n;
        rc = reply(s, peer, peer_len, &r, buf, n * sizeof *buf, 0, send, ctx);
        free(buf);
        break;
    }
    case WIRE_SHUTDOWN: {
        if (h.status == 2) { /* asks the job to stop: answered at once */
            s->stop_requested = 1; /* passed on to trainer 0 with the next pulls */
            rc = reply_ack(s, peer, peer_len, WIRE_SHUTDOWN, h.req, 0, send, ctx);
            break;
        }
        if (!s->tdone[t]) {
            s->tdone[t] = 1;
            s->shutdowns++;
        }
        if (h.status != 0)
            s->stop = 1; /* a trainer stops the whole job */
        /* goodbye: answered at the end of the job (shutdown_flush) */
        pending_t *p = &s->shut[t];
        p->peer_len = peer_len;
        memcpy(p->peer, peer, peer_len);
        p->hdr = h;
        s->shut_in[t] = 1;
        rc = shutdown_flush(s, send, ctx);
        break;
    }
    default:
        err_set(err, "%s is not a request", wire_type_name(h.type));
        rc = reply_error(s, peer, peer_len, &h, WIRE_E_TYPE, send, ctx, err);
        break;
    }
out:
    s->stats.busy_s += now_s() - t0;
    return rc < 0 ? -1 : 0;
}

typedef struct {
    transport_t *t;
    err_t *err;
} run_ctx_t;

static int run_send(void *ctx, const tframe_t *frames, int n, int zero_copy_from)
{
    run_ctx_t *c = ctx;
    int rc = transport_send(c->t, frames, n, zero_copy_from, c->err);
    /* a trainer that went away (killed, or given up for lost) misses its
     * answer; the others must not: the heartbeat check deals with it */
    return rc == TRANSPORT_GONE ? 0 : rc;
}

int server_run(server_t *s, transport_t *t, int timeout_ms, server_log_fn log, void *log_ctx,
               err_t *err)
{
    err_t serr;
    run_ctx_t rc = {t, &serr};
    tmsg_t msg;
    double last_msg = now_s(), last_check = last_msg;
    /* short waits, so that lost trainers and signals are noticed in time */
    const int slice = timeout_ms < 200 ? timeout_ms : 200;
    while (!server_finished(s)) {
        if (s->o.stop_flag && *s->o.stop_flag && !s->stop_requested) {
            server_request_stop(s);
            if (log) {
                char line[160];
                snprintf(line, sizeof line, "server %d: asked to stop: trainer 0 will write a "
                         "checkpoint and end the job", s->o.index);
                log(log_ctx, line);
            }
        }
        int got = transport_recv(t, &msg, slice, err);
        if (got < 0)
            return -1;
        double now = now_s();
        if (now - last_check >= slice / 1000.0) {
            last_check = now;
            int lost = server_check_trainers(s, timeout_ms, run_send, &rc, &serr);
            if (lost < 0) {
                if (got > 0)
                    tmsg_close(&msg);
                return err_set(err, "server %d: %s", s->o.index, serr.msg);
            }
            if (lost > 0 && log) {
                char line[ERR_LEN + 64];
                snprintf(line, sizeof line, "server %d: %s%s", s->o.index, serr.msg,
                         s->halt == WIRE_E_LOST ? "; the job stops (BSP)" : "; going on without it");
                log(log_ctx, line);
            }
        }
        if (got == 0) {
            if (now - last_msg >= timeout_ms / 1000.0)
                return err_set(err, "server %d: no request from any trainer for %.1f s",
                               s->o.index, timeout_ms / 1000.0);
            continue;
        }
        last_msg = now;
        serr.msg[0] = '\0';
        if (msg.n < 2) {
            if (log) {
                char line[128];
                snprintf(line, sizeof line, "server %d: message of %d frame(s) ignored",
                         s->o.index, msg.n);
                log(log_ctx, line);
            }
            tmsg_close(&msg);
            continue;
        }
        int r = server_handle(s, msg.data[0], msg.size[0], msg.data[1], msg.size[1],
                              msg.n > 2 ? msg.data[2] : NULL, msg.n > 2 ? msg.size[2] : 0,
                              (msg.n > 3 ? msg.n - 3 : 0) + msg.extra, run_send, &rc, &serr);
        tmsg_close(&msg);
        if (serr.msg[0] && log) {
            char line[ERR_LEN + 64];
            snprintf(line, sizeof line, "server %d: refused a request: %s", s->o.index, serr.msg);
            log(log_ctx, line);
        }
        if (r != 0)
            return err_set(err, "server %d: cannot reply: %s", s->o.index, serr.msg);
    }
    return 0;
}
