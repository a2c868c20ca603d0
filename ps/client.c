/* client.c - the parameter servers' client (see client.h): requests to
 * every server, and one wait loop (collect) that takes their replies, sends
 * heartbeats, and names the server that fails. */
#include "ps/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/net/compress.h"
#include "common/net/wire.h"
#include "common/nn/rows.h"
#include "common/util/le.h"
#include "ps/shard.h"

struct client_t {
    int sender, S, timeout_ms;
    size_t n_params;
    int push_elem;
    double topk_ratio;
    char **endpoints, **hosts;     /* S each, owned */
    int *ranks;                    /* S */
    transport_t **sock;            /* S */
    size_t *sb, *se;               /* S: server s's shard [sb, se) */
    /* the wait loop's per-server state, allocated once */
    int *want;                     /* a reply of server s is due */
    int *ready;                    /* server s's socket can be read */
    double *heard;                 /* when server s was last heard from */
    size_t *pulled;                /* keys of the current pull received from server s */
    uint64_t *rpos;                /* S: row ids pushed to server s in this step (PUSH_ROWS) */
    float *pull_dst;               /* where the current pull's parameters go */
    int pull_out;                  /* a pull request is in flight */
    uint8_t hbuf[WIRE_HDR_MAX];
    uint32_t req;
    long step;
    /* compressed pushes, by key (the frames are sent without a copy) */
    uint16_t *enc16;               /* n_params: float16 / bfloat16 */
    float *residual;               /* n_params: top-k's unsent gradient (error feedback) */
    uint8_t *topk;                 /* 8 * n_params: top-k (index, value) pairs */
    uint32_t *tk_idx;              /* n_params: top-k scratch */
    float *tk_val, *tk_scratch;
    int stop_requested;            /* a pull reply said: somebody asked the job to stop */
    int take_lead;                 /* a pull reply said: trainer 0 was lost, this one leads */
    client_halt_t halt;
    char halt_msg[ERR_LEN];
};

/* Seconds on a monotonic clock. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* "server S (rank R on HOST)" into buf; returns buf. */
static const char *server_name(const client_t *c, int s, char *buf, size_t len)
{
    snprintf(buf, len, "server %d (rank %d on %s)", s, c->ranks[s],
             c->hosts[s] ? c->hosts[s] : "an unknown host");
    return buf;
}

/* ------------------------------------------------------------ lifecycle */

/* Copies o's per-server tables and allocates the rest. Returns 0 or -1. */
static int client_alloc(client_t *c, const client_opts_t *o)
{
    const size_t S = (size_t)o->n_servers, n = o->n_params ? o->n_params : 1;
    c->endpoints = calloc(S, sizeof *c->endpoints);
    c->hosts = calloc(S, sizeof *c->hosts);
    c->ranks = calloc(S, sizeof *c->ranks);
    c->sock = calloc(S, sizeof *c->sock);
    c->sb = calloc(S, sizeof *c->sb);
    c->se = calloc(S, sizeof *c->se);
    c->want = calloc(S, sizeof *c->want);
    c->ready = calloc(S, sizeof *c->ready);
    c->heard = calloc(S, sizeof *c->heard);
    c->pulled = calloc(S, sizeof *c->pulled);
    c->rpos = calloc(S, sizeof *c->rpos);
    if (!c->endpoints || !c->hosts || !c->ranks || !c->sock || !c->sb || !c->se || !c->want ||
        !c->ready || !c->heard || !c->pulled || !c->rpos)
        return -1;
    for (size_t s = 0; s < S; s++) {
        c->endpoints[s] = strdup(o->endpoints[s]);
        c->hosts[s] = o->hosts && o->hosts[s] ? strdup(o->hosts[s]) : NULL;
        c->ranks[s] = o->ranks ? o->ranks[s] : (int)s;
        if (!c->endpoints[s] || (o->hosts && o->hosts[s] && !c->hosts[s]))
            return -1;
    }
    if (o->push_elem == WIRE_F16 || o->push_elem == WIRE_BF16) {
        if (!(c->enc16 = calloc(n, sizeof *c->enc16)))
            return -1;
    } else if (o->push_elem == WIRE_TOPK) {
        c->residual = calloc(n, sizeof *c->residual);
        c->topk = calloc(n, 8);
        c->tk_idx = calloc(n, sizeof *c->tk_idx);
        c->tk_val = calloc(n, sizeof *c->tk_val);
        c->tk_scratch = calloc(n, sizeof *c->tk_scratch);
        if (!c->residual || !c->topk || !c->tk_idx || !c->tk_val || !c->tk_scratch)
            return -1;
    }
    return 0;
}

client_t *client_new(const client_opts_t *o, err_t *err)
{
    if (o->n_servers < 1 || o->n_servers > SHARD_SERVERS_MAX || !o->endpoints ||
        o->timeout_ms <= 0) {
        err_set(err, "client: %d server(s) (1 to %d), a timeout of %d ms", o->n_servers,
                SHARD_SERVERS_MAX, o->timeout_ms);
        return NULL;
    }
    if (o->push_elem != WIRE_F32 && o->push_elem != WIRE_F16 && o->push_elem != WIRE_BF16 &&
        o->push_elem != WIRE_TOPK) {
        err_set(err, "client: pushes as element type %d: float32, float16, bfloat16 or top-k",
                o->push_elem);
        return NULL;
    }
    client_t *c = calloc(1, sizeof *c);
    if (!c || client_alloc(c, o) != 0) {
        err_set(err, "client: out of memory for %d servers and %zu keys", o->n_servers,
                o->n_params);
        goto err;
    }
    c->sender = o->sender;
    c->S = o->n_servers;
    c->timeout_ms = o->timeout_ms;
    c->n_params = o->n_params;
    c->push_elem = o->push_elem;
    c->topk_ratio = o->topk_ratio;
    for (int s = 0; s < c->S; s++) {
        c->sb[s] = shard_begin(c->n_params, c->S, s);
        c->se[s] = shard_end(c->n_params, c->S, s);
        c->sock[s] = transport_connect_auth(c->endpoints[s], o->auth, err);
        if (!c->sock[s])
            goto err;
    }
    return c;
err:
    client_destroy(&c);
    return NULL;
}

void client_destroy(client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    client_t *c = *self_p;
    for (int s = 0; s < c->S; s++) {
        if (c->sock)
            transport_destroy(&c->sock[s]);
        if (c->endpoints)
            free(c->endpoints[s]);
        if (c->hosts)
            free(c->hosts[s]);
    }
    free(c->endpoints);
    free(c->hosts);
    free(c->ranks);
    free(c->sock);
    free(c->sb);
    free(c->se);
    free(c->want);
    free(c->ready);
    free(c->heard);
    free(c->pulled);
    free(c->rpos);
    free(c->enc16);
    free(c->residual);
    free(c->topk);
    free(c->tk_idx);
    free(c->tk_val);
    free(c->tk_scratch);
    free(c);
    *self_p = NULL;
}

void client_set_step(client_t *c, long step)
{
    c->step = step;
}

client_halt_t client_halt(const client_t *c)
{
    return c->halt;
}

const char *client_halt_msg(const client_t *c)
{
    return c->halt_msg;
}

int client_stop_requested(const client_t *c)
{
    return c->stop_requested;
}

int client_take_lead(const client_t *c)
{
    return c->take_lead;
}

int client_pull_in_flight(const client_t *c)
{
    return c->pull_out;
}

void client_bytes(const client_t *c, uint64_t *sent, uint64_t *received)
{
    *sent = *received = 0;
    for (int s = 0; s < c->S; s++) {
        *sent += transport_bytes_sent(c->sock[s]);
        *received += transport_bytes_received(c->sock[s]);
    }
}

/* ------------------------------------------------------------ sending */

/* Sends server s header h and payload (len bytes, NULL: none), which
 * travels without a copy. Returns 0, or -1 with err naming the server. */
static int send_hdr(client_t *c, int s, const wire_hdr_t *h, const void *payload, size_t len,
                    err_t *err)
{
    int hl = wire_encode(h, c->hbuf, sizeof c->hbuf);
    tframe_t f[2] = {{c->hbuf, (size_t)hl}, {payload, len}};
    if (transport_send(c->sock[s], f, payload ? 2 : 1, 1, err) != 0) {
        char name[200];
        return err_prefix(err, "trainer %d: to %s", c->sender, server_name(c, s, name, sizeof name));
    }
    return 0;
}

/* Sends server s header h and payload (len bytes), copied: the caller may
 * reuse its buffer at once. Returns 0, or -1 with err naming the server. */
static int send_copy(client_t *c, int s, const wire_hdr_t *h, const void *payload, size_t len,
                     err_t *err)
{
    int hl = wire_encode(h, c->hbuf, sizeof c->hbuf);
    tframe_t f[2] = {{c->hbuf, (size_t)hl}, {payload, len}};
    if (transport_send(c->sock[s], f, payload ? 2 : 1, 2, err) != 0) {
        char name[200];
        return err_prefix(err, "trainer %d: to %s", c->sender, server_name(c, s, name, sizeof name));
    }
    return 0;
}

/* Sends every server a request of type with status and clock (no payload),
 * and marks its reply as due. Returns 0, or -1 with err. */
static int send_all(client_t *c, int type, int status, int64_t clock, err_t *err)
{
    for (int s = 0; s < c->S; s++) {
        wire_hdr_t h;
        wire_hdr_init(&h, type, c->sender);
        h.req = ++c->req;
        h.status = status;
        h.clock = clock;
        if (send_hdr(c, s, &h, NULL, 0, err) != 0)
            return -1;
        c->want[s] = 1;
    }
    return 0;
}

int client_heartbeat(client_t *c, err_t *err)
{
    for (int s = 0; s < c->S; s++) {
        wire_hdr_t h;
        wire_hdr_init(&h, WIRE_CLOCK, c->sender);
        h.clock = c->step;
        if (send_hdr(c, s, &h, NULL, 0, err) != 0)
            return -1;
    }
    return 0;
}

void client_fail(client_t *c)
{
    err_t ignore;
    for (int s = 0; s < c->S; s++) {
        wire_hdr_t h;
        wire_hdr_init(&h, WIRE_SHUTDOWN, c->sender);
        h.status = WIRE_SHUTDOWN_FAIL;
        send_hdr(c, s, &h, NULL, 0, &ignore);
    }
}

/* ------------------------------------------------------------ waiting */

/* Takes the reply h of server s (whose want[s] is set) with payload p of
 * len bytes; returns 1 when that server has answered in full (a pull may
 * come in pieces), 0 when more is due, -1 with err on a bad reply. */
typedef int (*reply_fn)(client_t *c, int s, const wire_hdr_t *h, const uint8_t *p, size_t len,
                        void *ctx, err_t *err);

/* Handles message m from server s while replies of type expect are due.
 * Returns 0 (*halted set when the server refused because the job halts),
 * or -1 with err. */
static int take(client_t *c, int s, const tmsg_t *m, int expect, reply_fn fn, void *ctx,
                int *halted, err_t *err)
{
    wire_hdr_t h;
    int code;
    char name[200]; /* filled when an error needs it */
    const uint8_t *p = m->n > 1 ? m->data[1] : NULL;
    const size_t len = m->n > 1 ? m->size[1] : 0;
    if (m->n < 1 || wire_decode(m->data[0], m->size[0], &h, &code, err) != 0 ||
        wire_check_payload(&h, len, &code, err) != 0) {
        if (m->n < 1)
            err_set(err, "empty message");
        return err_prefix(err, "trainer %d: bad reply from %s", c->sender,
                          server_name(c, s, name, sizeof name));
    }
    if (h.type == WIRE_CLOCK) /* the answer to a heartbeat: the server is alive */
        return 0;
    if (h.type == WIRE_ERROR && c->want[s] &&
        (h.status == WIRE_E_STOPPING || h.status == WIRE_E_LOST)) {
        /* the job halts: note it, and hear the other servers out */
        if (!c->halt || h.status == WIRE_E_LOST)
            c->halt = h.status == WIRE_E_LOST ? CLIENT_LOST : CLIENT_STOPPING;
        snprintf(c->halt_msg, sizeof c->halt_msg, "%.*s", (int)len, p ? (const char *)p : "");
        c->want[s] = 0;
        *halted = 1;
        return 0;
    }
    if (h.type == WIRE_ERROR)
        return err_set(err, "trainer %d: %s refused a request (%s): %.*s", c->sender,
                       server_name(c, s, name, sizeof name), wire_error_name(h.status), (int)len,
                       p ? (const char *)p : "");
    if (h.type != expect || !c->want[s])
        return err_set(err, "trainer %d: unexpected %s from %s", c->sender,
                       wire_type_name(h.type), server_name(c, s, name, sizeof name));
    int done = fn ? fn(c, s, &h, p, len, ctx, err) : 1;
    if (done < 0)
        return -1;
    if (done)
        c->want[s] = 0;
    return 0;
}

/* The due server silent for longest; -1 when none is due. */
static int most_silent(const client_t *c)
{
    int silent = -1;
    for (int s = 0; s < c->S; s++)
        if (c->want[s] && (silent < 0 || c->heard[s] < c->heard[silent]))
            silent = s;
    return silent;
}

/* Waits for the replies of type expect of every server whose want[s] is
 * set, handing each to fn (NULL: a reply without payload ends the wait for
 * its server). While it waits (a BSP step waits for the slowest trainer),
 * the trainer sends the due servers a heartbeat (CLOCK) and they answer
 * one: a server counts as gone only when it has been silent for the whole
 * timeout, and a lost trainer is reported by the servers before that.
 * Returns 0, or -1 with err naming the server that answered wrong or not
 * at all, or saying that the job halts. */
static int collect(client_t *c, int expect, reply_fn fn, void *ctx, err_t *err)
{
    int halted = 0;
    const double t0 = now_s();
    for (int s = 0; s < c->S; s++)
        c->heard[s] = t0;
    const int beat = c->timeout_ms / 4 < 1000 ? c->timeout_ms / 4 : 1000;
    double last_beat = t0;
    for (int silent; (silent = most_silent(c)) >= 0;) {
        double now = now_s();
        int remaining = c->timeout_ms - (int)((now - c->heard[silent]) * 1000);
        if (remaining <= 0) {
            char name[200];
            return err_set(err, "trainer %d: %s did not answer within %.1f s: it may have died "
                           "or be unreachable", c->sender, server_name(c, silent, name, sizeof name),
                           c->timeout_ms / 1000.0);
        }
        if ((now - last_beat) * 1000 >= beat) {
            last_beat = now;
            for (int s = 0; s < c->S; s++) {
                wire_hdr_t h;
                wire_hdr_init(&h, WIRE_CLOCK, c->sender);
                h.clock = c->step;
                if (c->want[s] && send_hdr(c, s, &h, NULL, 0, err) != 0)
                    return -1;
            }
        }
        int n = transport_poll(c->sock, c->S, remaining < beat ? remaining : beat, c->ready, err);
        if (n < 0)
            return -1;
        for (int s = 0; s < c->S; s++) {
            if (!c->ready[s])
                continue;
            tmsg_t m;
            if (transport_recv(c->sock[s], &m, 0, err) <= 0)
                return -1;
            c->heard[s] = now_s();
            int rc = take(c, s, &m, expect, fn, ctx, &halted, err);
            tmsg_close(&m);
            if (rc != 0)
                return -1;
        }
    }
    if (halted)
        return err_set(err, "trainer %d: the job halts: %s", c->sender, c->halt_msg);
    return 0;
}

/* Sends every server a request (send_all) and collects the replies. */
static int ask_all(client_t *c, int type, int status, int64_t clock, reply_fn fn, void *ctx,
                   err_t *err)
{
    if (send_all(c, type, status, clock, err) != 0)
        return -1;
    return collect(c, type, fn, ctx, err);
}

/* ------------------------------------------------------------ pulls */

/* A piece of a pull reply: [begin, end) inside the server's shard. */
static int on_pull(client_t *c, int s, const wire_hdr_t *h, const uint8_t *p, size_t len,
                   void *ctx, err_t *err)
{
    (void)ctx;
    if (h->status & WIRE_PULL_STOP_REQUESTED)
        c->stop_requested = 1; /* for the leading trainer: stop the job at the next step */
    if (h->status & WIRE_PULL_TAKE_LEAD)
        c->take_lead = 1;
    const int half = h->elem == WIRE_F16 || h->elem == WIRE_BF16;
    if (h->begin < c->sb[s] || h->end > c->se[s] ||
        len != (h->end - h->begin) * (half ? 2 : sizeof(float)) ||
        c->pulled[s] + (h->end - h->begin) > c->se[s] - c->sb[s])
        return err_set(err, "trainer %d: server %d answered keys [%llu, %llu) of [%zu, %zu)",
                       c->sender, s, (unsigned long long)h->begin, (unsigned long long)h->end,
                       c->sb[s], c->se[s]);
    if (half)
        compress_decode16(c->pull_dst + h->begin, p, (size_t)(h->end - h->begin),
                          h->elem == WIRE_BF16);
    else
        memcpy(c->pull_dst + h->begin, p, len);
    c->pulled[s] += h->end - h->begin;
    return c->pulled[s] == c->se[s] - c->sb[s];
}

int client_pull_send(client_t *c, long clock, int elem, err_t *err)
{
    for (int s = 0; s < c->S; s++) {
        wire_hdr_t h;
        wire_hdr_init(&h, WIRE_PULL, c->sender);
        h.clock = clock;
        h.elem = elem;
        h.begin = c->sb[s];
        h.end = c->se[s];
        h.req = ++c->req;
        if (send_hdr(c, s, &h, NULL, 0, err) != 0)
            return -1;
    }
    c->pull_out = 1;
    return 0;
}

int client_pull_wait(client_t *c, float *params, err_t *err)
{
    for (int s = 0; s < c->S; s++) {
        c->want[s] = 1;
        c->pulled[s] = 0;
    }
    c->pull_dst = params;
    int rc = collect(c, WIRE_PULL_REPLY, on_pull, NULL, err);
    c->pull_out = 0;
    return rc;
}

int client_pull(client_t *c, long clock, int elem, float *params, err_t *err)
{
    if (client_pull_send(c, clock, elem, err) != 0)
        return -1;
    return client_pull_wait(c, params, err);
}

/* ------------------------------------------------------------ pushes */

/* Pushes server s the gradient grad[lo, hi) for the current step, encoded
 * as push_elem says. Returns 0, or -1 with err. */
static int push_piece(client_t *c, int s, const float *grad, size_t lo, size_t hi, err_t *err)
{
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_PUSH, c->sender);
    h.clock = c->step;
    h.begin = lo;
    h.end = hi;
    h.count = hi - lo;
    h.req = ++c->req;
    const void *payload = grad + lo;
    size_t bytes = (hi - lo) * sizeof(float);
    if (c->push_elem == WIRE_F16 || c->push_elem == WIRE_BF16) {
        compress_encode16(c->enc16 + lo, grad + lo, hi - lo, c->push_elem == WIRE_BF16);
        h.elem = c->push_elem;
        payload = c->enc16 + lo;
        bytes = (hi - lo) * 2;
    } else if (c->push_elem == WIRE_TOPK) {
        /* the largest of gradient + residual; the rest waits in the residual */
        size_t k = compress_topk(grad + lo, c->residual + lo, hi - lo, c->topk_ratio, c->tk_idx,
                                 c->tk_val, c->tk_scratch);
        uint8_t *o = c->topk + 8 * lo;
        for (size_t j = 0; j < k; j++) {
            le_store32(o + 8 * j, c->tk_idx[j]);
            le_storef(o + 8 * j + 4, c->tk_val[j]);
        }
        h.elem = WIRE_TOPK;
        h.count = k;
        payload = o;
        bytes = 8 * k;
    }
    /* zero copy: the gradient (and encoded) buffers are not touched again
     * before the next pull's replies, which come after this push on each
     * socket */
    return send_hdr(c, s, &h, payload, bytes, err);
}

int client_push_range(client_t *c, const float *grad, size_t b, size_t e, err_t *err)
{
    for (int s = 0; s < c->S; s++) {
        size_t lo = b > c->sb[s] ? b : c->sb[s], hi = e < c->se[s] ? e : c->se[s];
        size_t piece = c->push_elem == WIRE_TOPK ? hi - lo : wire_piece_floats(c->se[s] - c->sb[s]);
        for (size_t p = lo; p < hi; p += piece)
            if (push_piece(c, s, grad, p, hi - p > piece ? p + piece : hi, err) != 0)
                return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ rows */

/* A request of sparse rows cut by server: order[off[s], off[s] + cnt[s])
 * are the caller's positions of the ids server s owns, in the caller's
 * order. */
typedef struct {
    uint32_t table;
    size_t dim;
    size_t *order;             /* n */
    size_t *off, *cnt;         /* S each */
    float *rows;               /* PULL_ROWS: the caller's n x dim floats */
} route_t;

/* Routes ids[0, n) of table to the servers that own them (rows_hash % S)
 * into r (allocated: route_free frees it). Returns 0, or -1 with err. */
static int route(const client_t *c, uint32_t table, size_t dim, const uint64_t *ids, size_t n,
                 route_t *r, err_t *err)
{
    memset(r, 0, sizeof *r);
    r->table = table;
    r->dim = dim;
    if (dim == 0 || dim > ROWS_DIM_MAX || table > INT32_MAX)
        return err_set(err, "trainer %d: rows of dim %zu (1..%d) of table %u (0..%d)", c->sender,
                       dim, ROWS_DIM_MAX, table, INT32_MAX);
    r->order = malloc((n ? n : 1) * sizeof *r->order);
    r->off = calloc((size_t)c->S, sizeof *r->off);
    r->cnt = calloc((size_t)c->S, sizeof *r->cnt);
    int *owner = malloc((n ? n : 1) * sizeof *owner);
    size_t *at = malloc((size_t)c->S * sizeof *at); /* the next place of each server */
    if (!r->order || !r->off || !r->cnt || !owner || !at) {
        free(owner);
        free(at);
        return err_set(err, "trainer %d: out of memory to route %zu rows", c->sender, n);
    }
    for (size_t i = 0; i < n; i++) {
        owner[i] = (int)(rows_hash(table, ids[i]) % (uint64_t)c->S);
        r->cnt[owner[i]]++;
    }
    for (int s = 1; s < c->S; s++)
        r->off[s] = r->off[s - 1] + r->cnt[s - 1];
    for (int s = 0; s < c->S; s++)
        at[s] = r->off[s];
    for (size_t i = 0; i < n; i++)
        r->order[at[owner[i]]++] = i;
    free(owner);
    free(at);
    return 0;
}

static void route_free(route_t *r)
{
    free(r->order);
    free(r->off);
    free(r->cnt);
}

/* Sends server s the pieces of a PULL_ROWS (ids) or PUSH_ROWS (ids and
 * gradients: grads non-NULL) of route r: at most WIRE_PIECE_FLOATS floats
 * of rows each, [begin, end) the positions among the ids sent to s (from
 * base on). Returns 0, or -1 with err. */
static int send_rows(client_t *c, int s, int type, const route_t *r, const uint64_t *ids,
                     const float *grads, long clock, uint64_t base, uint8_t *buf, err_t *err)
{
    const size_t piece = WIRE_PIECE_FLOATS / r->dim, n = r->cnt[s];
    const size_t *ord = r->order + r->off[s];
    for (size_t b = 0; b < n; b += piece) {
        const size_t m = n - b < piece ? n - b : piece;
        wire_hdr_t h;
        wire_hdr_init(&h, type, c->sender);
        h.elem = WIRE_ROWS;
        h.clock = clock;
        h.begin = base + b;
        h.end = base + b + m;
        h.status = (int)r->table;
        h.count = grads ? m * r->dim : 0;
        h.req = ++c->req;
        for (size_t i = 0; i < m; i++) {
            le_store64(buf + 8 * i, ids[ord[b + i]]);
            if (grads) /* little-endian host (le.h) */
                memcpy(buf + 8 * m + 4 * i * r->dim, grads + ord[b + i] * r->dim,
                       r->dim * sizeof(float));
        }
        if (send_copy(c, s, &h, buf, 8 * m + 4 * h.count, err) != 0)
            return -1;
    }
    return 0;
}

/* A row request over several tables: their routes, and per table and
 * server the rows received. */
typedef struct {
    route_t *r;                /* k */
    int k, S;
    size_t *got;               /* k x S */
    size_t *total;             /* S: rows due from each server */
} rows_batch_t;

/* A PULL_ROWS reply from server s: rows of positions [begin, end) of the
 * ids of its table sent to s, scattered to the caller's places. */
static int on_pull_rows(client_t *c, int s, const wire_hdr_t *h, const uint8_t *p, size_t len,
                        void *ctx, err_t *err)
{
    rows_batch_t *q = ctx;
    int i = 0;
    while (i < q->k && h->status != (int)q->r[i].table)
        i++;
    const route_t *r = i < q->k ? &q->r[i] : NULL;
    const size_t n = r ? r->cnt[s] : 0;
    size_t *got = r ? &q->got[(size_t)i * (size_t)q->S + (size_t)s] : NULL;
    if (!r || h->elem != WIRE_F32 || h->end > n || h->count != (h->end - h->begin) * r->dim ||
        *got + (h->end - h->begin) > n || len != h->count * sizeof(float))
        return err_set(err, "trainer %d: server %d answered rows [%llu, %llu) of table %d with "
                       "%llu floats, which this request did not ask for", c->sender, s,
                       (unsigned long long)h->begin, (unsigned long long)h->end, h->status,
                       (unsigned long long)h->count);
    const size_t *ord = r->order + r->off[s];
    for (uint64_t j = h->begin; j < h->end; j++)
        memcpy(r->rows + ord[j] * r->dim, p + (j - h->begin) * r->dim * sizeof(float),
               r->dim * sizeof(float));
    *got += h->end - h->begin;
    c->pulled[s] += h->end - h->begin;
    return c->pulled[s] == q->total[s];
}

/* Routes and sends every table's requests of q (type PULL_ROWS or
 * PEEK_ROWS) to every server. Returns 0, or -1 with err. */
static int send_tables(client_t *c, rows_batch_t *q, int type, const client_rows_t *t, long clock,
                       err_t *err)
{
    size_t most = 1;
    for (int i = 0; i < q->k; i++) {
        if (route(c, t[i].table, t[i].dim, t[i].ids, t[i].n, &q->r[i], err) != 0)
            return -1;
        q->r[i].rows = t[i].rows;
        for (int j = 0; j < i; j++)
            if (t[j].table == t[i].table)
                return err_set(err, "trainer %d: table %u twice in one row request", c->sender,
                               t[i].table);
        if (WIRE_PIECE_FLOATS / t[i].dim > most)
            most = WIRE_PIECE_FLOATS / t[i].dim;
    }
    uint8_t *buf = malloc(8 * most);
    if (!buf)
        return err_set(err, "trainer %d: out of memory for a row request", c->sender);
    int rc = 0;
    for (int s = 0; s < c->S && rc == 0; s++) {
        c->pulled[s] = 0;
        for (int i = 0; i < q->k && rc == 0; i++) {
            q->total[s] += q->r[i].cnt[s];
            if (q->r[i].cnt[s])
                rc = send_rows(c, s, type, &q->r[i], t[i].ids, NULL, clock, 0, buf, err);
        }
        c->want[s] = q->total[s] > 0;
    }
    free(buf);
    return rc;
}

int client_pull_tables(client_t *c, const client_rows_t *t, int k, long clock, int peek,
                       err_t *err)
{
    rows_batch_t q = {.k = k, .S = c->S};
    q.r = calloc((size_t)(k > 0 ? k : 1), sizeof *q.r);
    q.got = calloc((size_t)(k > 0 ? k : 1) * (size_t)c->S, sizeof *q.got);
    q.total = calloc((size_t)c->S, sizeof *q.total);
    int rc = -1;
    if (!q.r || !q.got || !q.total)
        err_set(err, "trainer %d: out of memory for a row request of %d tables", c->sender, k);
    else if (send_tables(c, &q, peek ? WIRE_PEEK_ROWS : WIRE_PULL_ROWS, t, clock, err) == 0)
        rc = collect(c, WIRE_PULL_ROWS, on_pull_rows, &q, err);
    for (int i = 0; q.r && i < k; i++)
        route_free(&q.r[i]);
    free(q.r);
    free(q.got);
    free(q.total);
    return rc;
}

int client_pull_rows(client_t *c, uint32_t table, size_t dim, const uint64_t *ids, size_t n,
                     long clock, float *rows, err_t *err)
{
    const client_rows_t t = {table, dim, ids, n, rows};
    return client_pull_tables(c, &t, 1, clock, 0, err);
}

int client_peek_rows(client_t *c, uint32_t table, size_t dim, const uint64_t *ids, size_t n,
                     long clock, float *rows, err_t *err)
{
    const client_rows_t t = {table, dim, ids, n, rows};
    return client_pull_tables(c, &t, 1, clock, 1, err);
}

int client_push_rows(client_t *c, uint32_t table, size_t dim, const uint64_t *ids, size_t n,
                     const float *grads, err_t *err)
{
    route_t r;
    uint8_t *buf = NULL;
    int rc = -1;
    if (route(c, table, dim, ids, n, &r, err) != 0)
        goto done;
    const size_t piece = WIRE_PIECE_FLOATS / dim;
    if (!(buf = malloc(8 * piece + 4 * piece * dim))) {
        err_set(err, "trainer %d: out of memory for a row push", c->sender);
        goto done;
    }
    for (int s = 0; s < c->S; s++) {
        if (r.cnt[s] &&
            send_rows(c, s, WIRE_PUSH_ROWS, &r, ids, grads, c->step, c->rpos[s], buf, err) != 0)
            goto done;
        c->rpos[s] += r.cnt[s];
    }
    rc = 0;
done:
    free(buf);
    route_free(&r);
    return rc;
}

int client_push_rows_end(client_t *c, err_t *err)
{
    for (int s = 0; s < c->S; s++) {
        wire_hdr_t h;
        wire_hdr_init(&h, WIRE_PUSH_ROWS, c->sender);
        h.elem = WIRE_ROWS;
        h.clock = c->step;
        h.begin = h.end = c->rpos[s];
        h.req = ++c->req;
        if (send_hdr(c, s, &h, NULL, 0, err) != 0)
            return -1;
        c->rpos[s] = 0;
    }
    return 0;
}

/* ------------------------------------------------------------ barriers */

typedef struct {
    double *vals;
    int n;
} reduce_t;

/* A BARRIER answer: the sums, as float32 pairs, into the caller's values. */
static int on_reduce(client_t *c, int s, const wire_hdr_t *h, const uint8_t *p, size_t len,
                     void *ctx, err_t *err)
{
    reduce_t *r = ctx;
    (void)h;
    if (len != (size_t)r->n * 2 * sizeof(float))
        return err_set(err, "trainer %d: server %d returned %zu bytes for %d sums", c->sender, s,
                       len, r->n);
    for (int i = 0; i < r->n; i++) {
        float hi, lo;
        memcpy(&hi, p + 8 * i, 4);
        memcpy(&lo, p + 8 * i + 4, 4);
        r->vals[i] = (double)hi + (double)lo;
    }
    return 1;
}

int client_reduce(client_t *c, double *vals, int n, err_t *err)
{
    if (n < 0 || n > CLIENT_REDUCE_MAX)
        return err_set(err, "trainer %d: %d values to sum, at most %d", c->sender, n,
                       CLIENT_REDUCE_MAX);
    /* over ZeroMQ, so that a lost trainer cannot hang the others as an MPI
     * collective would */
    float pairs[2 * CLIENT_REDUCE_MAX];
    for (int i = 0; i < n; i++) {
        pairs[2 * i] = (float)vals[i];
        pairs[2 * i + 1] = (float)(vals[i] - (double)pairs[2 * i]);
    }
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_BARRIER, c->sender);
    h.req = ++c->req;
    h.clock = c->step;
    h.count = (uint64_t)(2 * n);
    if (send_hdr(c, 0, &h, pairs, (size_t)(2 * n) * sizeof(float), err) != 0)
        return -1;
    memset(c->want, 0, (size_t)c->S * sizeof *c->want);
    c->want[0] = 1;
    reduce_t r = {vals, n};
    return collect(c, WIRE_BARRIER, on_reduce, &r, err);
}

/* ------------------------------------------------------------ STATS */

/* A STATS answer: decoded (a malformed one names its server) and added to
 * the sums. */
static int on_stats(client_t *c, int s, const wire_hdr_t *h, const uint8_t *p, size_t len,
                    void *ctx, err_t *err)
{
    (void)h;
    client_stats_t *st = ctx;
    wire_stats_t w;
    if (wire_stats_decode(p, len, &w, err) != 0) {
        char name[200];
        return err_prefix(err, "trainer %d: %s", c->sender, server_name(c, s, name, sizeof name));
    }
    st->pushes += w.pushes;
    st->pulls += w.pulls;
    st->errors += w.errors;
    st->updates += w.updates;
    st->busy_s += (double)w.busy_us * 1e-6;
    if (s == 0 || w.version < st->version_min)
        st->version_min = w.version;
    if (s == 0 || w.version > st->version_max)
        st->version_max = w.version;
    st->partial |= w.partial;
    if (w.lost > st->lost) {
        st->lost = w.lost;
        st->first_lost = w.first_lost;
    }
    st->lead_done |= w.lead_done;
    st->lead_lost_on += w.lost > 0 && w.first_lost == 0; /* the first lost is the lowest */
    if (w.next_lead > st->next_lead)
        st->next_lead = w.next_lead;
    st->rows += w.rows;
    st->rows_created += w.rows_created;
    st->rows_bytes += w.rows_bytes;
    if (w.rows_bytes > st->rows_bytes_max)
        st->rows_bytes_max = w.rows_bytes;
    return 1;
}

int client_stats(client_t *c, client_stats_t *st, err_t *err)
{
    memset(st, 0, sizeof *st);
    st->first_lost = -1;
    return ask_all(c, WIRE_STATS, 0, 0, on_stats, st, err);
}

/* ------------------------------------------------------------ checkpoints */

typedef struct {
    float *params, *state;
    int slots;
    long version;
} gather_t;

/* A CHECKPOINT answer: server s's shard, parameters then optimizer state,
 * into the whole model's buffers. */
static int on_checkpoint(client_t *c, int s, const wire_hdr_t *h, const uint8_t *p, size_t len,
                         void *ctx, err_t *err)
{
    gather_t *g = ctx;
    const size_t shard = c->se[s] - c->sb[s];
    if (h->begin != c->sb[s] || h->end != c->se[s] || h->elem != WIRE_F32 ||
        len != shard * (1 + (size_t)g->slots) * sizeof(float))
        return err_set(err, "trainer %d: checkpoint of server %d has the wrong size", c->sender, s);
    memcpy(g->params + c->sb[s], p, shard * sizeof(float));
    for (int k = 0; k < g->slots; k++)
        memcpy(g->state + (size_t)k * c->n_params + c->sb[s], p + shard * (1 + (size_t)k) * 4,
               shard * sizeof(float));
    g->version = (long)h->clock;
    return 1;
}

int client_checkpoint_write(client_t *c, long step, int delta, err_t *err)
{
    return ask_all(c, WIRE_CHECKPOINT, delta ? WIRE_CKPT_WRITE_DELTA : WIRE_CKPT_WRITE, step,
                   NULL, NULL, err);
}

int client_checkpoint_gather(client_t *c, float *params, float *state, int n_slots, long *version,
                             err_t *err)
{
    gather_t g = {params, state, n_slots, 0};
    int rc = ask_all(c, WIRE_CHECKPOINT, WIRE_CKPT_SEND, 0, on_checkpoint, &g, err);
    *version = g.version;
    return rc;
}

/* ------------------------------------------------------------ the end */

int client_stop_at(client_t *c, long step, err_t *err)
{
    return ask_all(c, WIRE_CHECKPOINT, WIRE_CKPT_STOP_AT, step, NULL, NULL, err);
}

int client_ask_stop(client_t *c, err_t *err)
{
    return ask_all(c, WIRE_SHUTDOWN, WIRE_SHUTDOWN_ASK_STOP, c->step, NULL, NULL, err);
}

/* A SHUTDOWN answer: its status is the number of trainers that server lost. */
static int on_goodbye(client_t *c, int s, const wire_hdr_t *h, const uint8_t *p, size_t len,
                      void *ctx, err_t *err)
{
    (void)c, (void)s, (void)p, (void)len, (void)err;
    int *lost = ctx;
    if (h->status > *lost)
        *lost = h->status;
    return 1;
}

int client_goodbye(client_t *c, int *lost, err_t *err)
{
    *lost = 0;
    return ask_all(c, WIRE_SHUTDOWN, WIRE_SHUTDOWN_GOODBYE, 0, on_goodbye, lost, err);
}
