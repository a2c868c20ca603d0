/* server.c - the parameter server's front (see server.h): its lifecycle,
 * the validation of every request, one handler per message type in one
 * table, the reply path, and server_run's loop over a transport. The rules
 * the handlers apply are in consistency.c, liveness.c and store.c
 * (server_int.h says which is where). */
#include "ps/server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ps/server_int.h"

double srv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------ lifecycle */

server_t *server_new(const server_opts_t *o, err_t *err)
{
    server_t *s = calloc(1, sizeof *s);
    if (!s) {
        err_set(err, "server: out of memory");
        return NULL;
    }
    s->o = *o;
    s->o.table = NULL; /* the store keeps its own copy */
    s->o.init_params = s->o.init_state = NULL;
    s->store = store_new(o, err);
    /* sparse_init copies the tables; o.row_tables is the caller's */
    if (!s->store || sparse_init(s, err) != 0 || cons_init(s, store_len(s->store), err) != 0 ||
        live_init(s, err) != 0) {
        server_destroy(&s);
        return NULL;
    }
    s->o.row_tables = NULL; /* sparse.c keeps its own copy */
    return s;
}

void server_destroy(server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    server_t *s = *self_p;
    store_destroy(&s->store);
    sparse_free(&s->sparse);
    cons_free(&s->cons);
    live_free(&s->live);
    free(s);
    *self_p = NULL;
}

const float *server_params(const server_t *s, size_t *begin, size_t *end)
{
    return store_params(s->store, begin, end);
}

size_t server_n_params(const server_t *s)
{
    return store_n_params(s->store);
}

int server_threads(const server_t *s)
{
    return store_threads(s->store);
}

long server_version(const server_t *s)
{
    return s->cons.version;
}

void server_get_stats(const server_t *s, server_stats_t *st)
{
    *st = s->stats;
    sparse_stats(s, st);
}

/* ------------------------------------------------------------ replies */

int srv_send(server_t *s, const uint8_t *peer, size_t peer_len, const wire_hdr_t *h,
             const void *payload, size_t len, int zero_copy)
{
    int hl = wire_encode(h, s->hbuf, sizeof s->hbuf);
    tframe_t f[3] = {{peer, peer_len}, {s->hbuf, (size_t)hl}, {payload, len}};
    if (hl < 0 || s->send(s->send_ctx, f, payload ? 3 : 2, zero_copy ? 2 : 3) != 0) {
        s->send_failed = 1;
        return -1;
    }
    return 0;
}

int srv_ack(server_t *s, const uint8_t *peer, size_t peer_len, uint32_t req, int type, int status)
{
    wire_hdr_t h;
    wire_hdr_init(&h, type, s->o.rank);
    h.req = req;
    h.clock = s->cons.version;
    h.status = status;
    return srv_send(s, peer, peer_len, &h, NULL, 0, 0);
}

int srv_error(server_t *s, const uint8_t *peer, size_t peer_len, const wire_hdr_t *req, int code,
              const char *msg)
{
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_ERROR, s->o.rank);
    h.status = code;
    h.req = req->req;
    h.clock = s->cons.version;
    h.elem = WIRE_TEXT;
    h.count = strlen(msg);
    s->stats.errors++;
    return srv_send(s, peer, peer_len, &h, msg, h.count, 0);
}

void srv_keep(waiter_t *w, const req_t *r)
{
    memcpy(w->peer, r->peer, r->peer_len);
    w->peer_len = r->peer_len;
    w->hdr = r->h;
}

/* ------------------------------------------------------------ handlers */

/* A handler answers request r (now, or later through what it keeps), and
 * returns 0; or it refuses r: -1 with *code (WIRE_E_*) and err, having
 * changed nothing, and the dispatcher answers ERROR. */
typedef int (*handler_fn)(server_t *s, const req_t *r, int *code, err_t *err);

/* PUSH: a piece of trainer r->t's gradient of a step. */
static int handle_push(server_t *s, const req_t *r, int *code, err_t *err)
{
    const float *g;
    if (cons_push_check(s, r->t, &r->h, code, err) != 0 ||
        store_decode_push(s->store, &r->h, r->payload, &g, code, err) != 0)
        return -1;
    return cons_push(s, r->t, &r->h, g, code, err);
}

/* PULL: the parameters of [begin, end) for step clock, when they may be. */
static int handle_pull(server_t *s, const req_t *r, int *code, err_t *err)
{
    const wire_hdr_t *h = &r->h;
    if (h->begin == h->end) { /* no PULL_REPLY can be empty */
        *code = WIRE_E_RANGE;
        return err_set(err, "PULL of the empty key range [%llu, %llu)",
                       (unsigned long long)h->begin, (unsigned long long)h->end);
    }
    if (h->elem != WIRE_F32 && h->elem != WIRE_F16 && h->elem != WIRE_BF16) {
        *code = WIRE_E_MALFORMED;
        return err_set(err, "PULL asks for element type %d: replies are float32, float16 or "
                       "bfloat16", h->elem);
    }
    return cons_pull(s, r, code, err);
}

/* CLOCK: a heartbeat (clocks advance with complete pushes): answered. */
static int handle_clock(server_t *s, const req_t *r, int *code, err_t *err)
{
    (void)code, (void)err;
    srv_ack(s, r->peer, r->peer_len, r->h.req, WIRE_CLOCK, 0);
    return 0;
}

/* BARRIER: answered once every live trainer is in, with the sums. */
static int handle_barrier(server_t *s, const req_t *r, int *code, err_t *err)
{
    return cons_barrier(s, r, code, err);
}

/* STATS: the server's counters, as a msgpack map of named fields. */
static int handle_stats(server_t *s, const req_t *r, int *code, err_t *err)
{
    (void)code, (void)err;
    wire_stats_t st = {
        .pushes = s->stats.pushes, .pulls = s->stats.pulls, .errors = s->stats.errors,
        .updates = s->stats.updates, .busy_us = (uint64_t)(s->stats.busy_s * 1e6),
        .version = s->cons.version, .partial = cons_partial(s), .lead_done = s->live.tdone[0],
        .next_lead = live_next_lead(s),
    };
    st.lost = server_lost(s, &st.first_lost);
    server_stats_t rs;
    sparse_stats(s, &rs);
    st.rows = rs.rows;
    st.rows_created = rs.rows_created;
    st.rows_bytes = rs.rows_bytes;
    uint8_t buf[WIRE_STATS_MAX];
    int n = wire_stats_encode(&st, buf, sizeof buf);
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_STATS, s->o.rank);
    h.req = r->h.req;
    h.clock = s->cons.version;
    h.elem = WIRE_MSGPACK;
    h.count = (uint64_t)n;
    srv_send(s, r->peer, r->peer_len, &h, buf, (size_t)n, 0);
    return 0;
}

/* CHECKPOINT send: the shard's parameters followed by its optimizer state. */
static int send_shard(server_t *s, const req_t *r, int *code, err_t *err)
{
    const size_t n = store_gather_len(s->store);
    float *buf = malloc(n ? n * sizeof *buf : 1);
    if (!buf) {
        *code = WIRE_E_INTERNAL;
        return err_set(err, "out of memory for a checkpoint of the shard");
    }
    store_gather(s->store, buf);
    size_t b, e;
    store_params(s->store, &b, &e);
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_CHECKPOINT, s->o.rank);
    h.req = r->h.req;
    h.clock = s->cons.version;
    h.begin = b;
    h.end = e;
    h.count = n;
    srv_send(s, r->peer, r->peer_len, &h, buf, n * sizeof *buf, 0);
    free(buf);
    return 0;
}

/* CHECKPOINT: send the shard, write it (through the saver), or stop the
 * job at a step, as its status (WIRE_CKPT_*) says; another is refused. */
static int handle_checkpoint(server_t *s, const req_t *r, int *code, err_t *err)
{
    switch (r->h.status) {
    case WIRE_CKPT_SEND:
        return send_shard(s, r, code, err);
    case WIRE_CKPT_WRITE: /* answered with CHECKPOINT, or ERROR internal (logged) */
    case WIRE_CKPT_WRITE_DELTA:
        err->msg[0] = '\0';
        cons_checkpoint(s, r, err);
        return 0;
    case WIRE_CKPT_STOP_AT: /* trainer 0: the job stops at step clock */
        live_stop_at(s, (long)r->h.clock);
        srv_ack(s, r->peer, r->peer_len, r->h.req, WIRE_CHECKPOINT, 0);
        if (!s->send_failed) /* the waiting pulls of that step on, and the barrier */
            cons_flush(s);
        if (!s->send_failed)
            cons_barrier_flush(s);
        return 0;
    default:
        *code = WIRE_E_MALFORMED;
        return err_set(err, "CHECKPOINT with status %d: %d sends the shard, %d writes it (%d "
                       "with a delta of the rows), %d stops the job", r->h.status, WIRE_CKPT_SEND,
                       WIRE_CKPT_WRITE, WIRE_CKPT_WRITE_DELTA, WIRE_CKPT_STOP_AT);
    }
}

/* SHUTDOWN: a goodbye (answered at the end of the job), a failure, or a
 * request to stop, as its status (WIRE_SHUTDOWN_*) says; another is
 * refused. */
static int handle_shutdown(server_t *s, const req_t *r, int *code, err_t *err)
{
    switch (r->h.status) {
    case WIRE_SHUTDOWN_ASK_STOP: /* answered at once; no goodbye */
        s->live.stop_requested = 1; /* passed on to trainer 0 with the next pulls */
        srv_ack(s, r->peer, r->peer_len, r->h.req, WIRE_SHUTDOWN, 0);
        return 0;
    case WIRE_SHUTDOWN_GOODBYE:
    case WIRE_SHUTDOWN_FAIL:
        live_goodbye(s, r, r->h.status == WIRE_SHUTDOWN_FAIL);
        return 0;
    default:
        *code = WIRE_E_MALFORMED;
        return err_set(err, "SHUTDOWN with status %d: %d says goodbye, %d fails the job, %d asks "
                       "it to stop", r->h.status, WIRE_SHUTDOWN_GOODBYE, WIRE_SHUTDOWN_FAIL,
                       WIRE_SHUTDOWN_ASK_STOP);
    }
}

/* PULL_ROWS (or PEEK_ROWS, read-only): rows of a sparse table for step
 * clock, when they may be. */
static int handle_pull_rows(server_t *s, const req_t *r, int *code, err_t *err)
{
    if (r->h.type == WIRE_PULL_ROWS && r->h.elem != WIRE_ROWS) {
        *code = WIRE_E_TYPE;
        return err_set(err, "PULL_ROWS with float32 rows is a reply, not a request");
    }
    return sparse_pull(s, r, code, err);
}

/* PUSH_ROWS: a piece of trainer r->t's row gradients, or the end of its step. */
static int handle_push_rows(server_t *s, const req_t *r, int *code, err_t *err)
{
    return sparse_push(s, r, code, err);
}

/* What the dispatcher checks before a handler runs. */
enum {
    H_TRAINER = 1, /* the sender is a trainer (not lost); the request is its heartbeat */
    H_KEYS = 2,    /* [begin, end) lies in the shard */
    H_PAYLOAD = 4, /* may carry a payload */
};

/* Every message type once: its handler (NULL: not a request, refused with
 * ERROR type once the checks before have passed) and its checks. */
static const struct {
    handler_fn fn;
    unsigned checks;
} handlers[WIRE_TYPE_MAX + 1] = {
    [WIRE_PUSH] = {handle_push, H_TRAINER | H_KEYS | H_PAYLOAD},
    [WIRE_PULL] = {handle_pull, H_TRAINER | H_KEYS},
    [WIRE_PULL_REPLY] = {NULL, H_TRAINER},
    [WIRE_CLOCK] = {handle_clock, H_TRAINER},
    [WIRE_BARRIER] = {handle_barrier, H_TRAINER | H_PAYLOAD},
    [WIRE_STATS] = {handle_stats, 0},
    [WIRE_CHECKPOINT] = {handle_checkpoint, H_TRAINER},
    [WIRE_SHUTDOWN] = {handle_shutdown, H_TRAINER},
    [WIRE_ERROR] = {NULL, H_TRAINER},
    [WIRE_PULL_ROWS] = {handle_pull_rows, H_TRAINER | H_PAYLOAD},
    [WIRE_PUSH_ROWS] = {handle_push_rows, H_TRAINER | H_PAYLOAD},
    [WIRE_PEEK_ROWS] = {handle_pull_rows, H_TRAINER | H_PAYLOAD},
};

/* ------------------------------------------------------------ dispatch */

/* Decodes r's header frame hdr and checks r as its type's table row says
 * (in this order: frames, header, payload, sender, heartbeat, keys, type).
 * Returns 0, or -1 with *code and err; r->h holds what could be read, so
 * that the ERROR can echo its req. */
static int req_check(server_t *s, req_t *r, const uint8_t *hdr, size_t hdr_len, int extra_frames,
                     double now, int *code, err_t *err)
{
    wire_hdr_t *h = &r->h;
    memset(h, 0, sizeof *h);
    if (extra_frames > 0) {
        *code = WIRE_E_MALFORMED;
        return err_set(err, "%d frames more than header and payload", extra_frames);
    }
    if (wire_decode(hdr, hdr_len, h, code, err) != 0 ||
        wire_check_payload(h, r->payload_len, code, err) != 0)
        return -1;
    const unsigned checks = handlers[h->type].checks;
    *code = WIRE_E_LENGTH;
    if (r->payload_len > 0 && !(checks & H_PAYLOAD))
        return err_set(err, "%s carries a payload of %zu bytes", wire_type_name(h->type),
                       r->payload_len);
    *code = WIRE_E_RANGE;
    r->t = h->sender;
    if ((checks & H_TRAINER) && (r->t < 0 || r->t >= s->o.n_trainers))
        return err_set(err, "%s from sender %d: trainers are 0..%d", wire_type_name(h->type),
                       r->t, s->o.n_trainers - 1);
    if ((checks & H_TRAINER) && live_heard(s, r->t, h->type, now, code, err) != 0)
        return -1;
    size_t b, e;
    store_params(s->store, &b, &e);
    if ((checks & H_KEYS) && (h->begin < b || h->end > e || h->begin > h->end))
        return err_set(err, "%s of keys [%llu, %llu) outside this server's shard [%zu, %zu)",
                       wire_type_name(h->type), (unsigned long long)h->begin,
                       (unsigned long long)h->end, b, e);
    *code = WIRE_E_TYPE;
    if (!handlers[h->type].fn)
        return err_set(err, "%s is not a request", wire_type_name(h->type));
    *code = 0;
    return 0;
}

int server_handle(server_t *s, const uint8_t *peer, size_t peer_len, const uint8_t *hdr,
                  size_t hdr_len, const uint8_t *payload, size_t payload_len, int extra_frames,
                  server_send_fn send, void *ctx, err_t *err)
{
    const double t0 = srv_now();
    s->send = send;
    s->send_ctx = ctx;
    s->send_failed = 0;
    if (peer_len == 0 || peer_len > PEER_MAX) {
        err_set(err, "request with a peer identity of %zu bytes ignored", peer_len);
        s->stats.errors++;
        return 0; /* nobody to answer */
    }
    req_t r = {.peer = peer, .peer_len = peer_len, .payload = payload,
               .payload_len = payload ? payload_len : 0};
    int code = 0;
    if (req_check(s, &r, hdr, hdr_len, extra_frames, t0, &code, err) != 0 ||
        handlers[r.h.type].fn(s, &r, &code, err) != 0)
        srv_error(s, peer, peer_len, &r.h, code, err->msg);
    s->stats.busy_s += srv_now() - t0;
    return s->send_failed ? -1 : 0;
}

/* ------------------------------------------------------------ run */

typedef struct {
    transport_t *t;
    err_t *err;
} run_ctx_t;

/* server_run's send callback: a reply to a peer that is gone is dropped
 * (returns 0); returns -1 when the transport fails. */
static int run_send(void *ctx, const tframe_t *frames, int n, int zero_copy_from)
{
    run_ctx_t *c = ctx;
    int rc = transport_send(c->t, frames, n, zero_copy_from, c->err);
    /* a trainer that went away (killed, or given up for lost) misses its
     * answer; the others must not: the heartbeat check deals with it */
    return rc == TRANSPORT_GONE ? 0 : rc;
}

/* Logs line through log (if any), prefixed with the server's number. */
static void run_log(const server_t *s, server_log_fn log, void *log_ctx, const char *fmt,
                    const char *text)
{
    if (!log)
        return;
    char line[ERR_LEN + 128];
    int n = snprintf(line, sizeof line, "server %d: ", s->o.index);
    snprintf(line + n, sizeof line - (size_t)n, fmt, text);
    log(log_ctx, line);
}

/* Looks at the stop flag (a signal): the next pull replies say so. */
static void run_stop_flag(server_t *s, server_log_fn log, void *log_ctx)
{
    if (!s->o.stop_flag || !*s->o.stop_flag || s->live.stop_requested)
        return;
    server_request_stop(s);
    run_log(s, log, log_ctx, "%s", "asked to stop: trainer 0 will write a checkpoint and end the "
            "job");
}

/* Looks for lost trainers, and logs them. Returns 0, or -1 with err (a
 * reply could not be sent). */
static int run_lost(server_t *s, int timeout_ms, run_ctx_t *rc, server_log_fn log, void *log_ctx,
                    err_t *err)
{
    int lost = server_check_trainers(s, timeout_ms, run_send, rc, rc->err);
    if (lost < 0)
        return err_set(err, "server %d: %s", s->o.index, rc->err->msg);
    if (lost > 0)
        run_log(s, log, log_ctx,
                s->live.halt == HALT_LOST ? "%s; the job stops (BSP)" : "%s; going on without it",
                rc->err->msg);
    return 0;
}

int server_run(server_t *s, transport_t *t, int timeout_ms, server_log_fn log, void *log_ctx,
               err_t *err)
{
    err_t serr;
    run_ctx_t rc = {t, &serr};
    tmsg_t msg;
    double last_msg = srv_now(), last_check = last_msg;
    /* short waits, so that lost trainers and signals are noticed in time */
    const int slice = timeout_ms < 200 ? timeout_ms : 200;
    while (!server_finished(s)) {
        run_stop_flag(s, log, log_ctx);
        int got = transport_recv(t, &msg, slice, err);
        if (got < 0)
            return -1;
        double now = srv_now();
        if (now - last_check >= slice / 1000.0) {
            last_check = now;
            if (run_lost(s, timeout_ms, &rc, log, log_ctx, err) != 0) {
                if (got > 0)
                    tmsg_close(&msg);
                return -1;
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
            char n[16];
            snprintf(n, sizeof n, "%d", msg.n);
            run_log(s, log, log_ctx, "message of %s frame(s) ignored", n);
            tmsg_close(&msg);
            continue;
        }
        int r = server_handle(s, msg.data[0], msg.size[0], msg.data[1], msg.size[1],
                              msg.n > 2 ? msg.data[2] : NULL, msg.n > 2 ? msg.size[2] : 0,
                              (msg.n > 3 ? msg.n - 3 : 0) + msg.extra, run_send, &rc, &serr);
        tmsg_close(&msg);
        if (serr.msg[0])
            run_log(s, log, log_ctx, "refused a request: %s", serr.msg);
        if (r != 0)
            return err_set(err, "server %d: cannot reply: %s", s->o.index, serr.msg);
    }
    return 0;
}
