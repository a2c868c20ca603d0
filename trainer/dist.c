/* dist.c - the trainer rank of a distributed job (see dist.h). */
#include "trainer/dist.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/net/compress.h"
#include "trainer/evaluate.h"
#include "export/checkpoint.h"
#include "export/ckptdir.h"
#include "common/util/fsutil.h"
#include "common/util/le.h"
#include "trainer/jobdata.h"
#include "common/nn/model.h"
#include "common/nn/optim.h"
#include "trainer/progress.h"
#include "trainer/report.h"
#include "ps/shard.h"
#include "common/net/transport.h"
#include "common/net/wire.h"

typedef struct {
    const dist_opts_t *d;
    int timeout_ms;
    int S;
    transport_t *sock[64];
    size_t sb[64], se[64];
    float *params, *grads;
    size_t n_params;
    uint8_t hbuf[WIRE_HDR_MAX];
    uint32_t req;
    long step;
    int pull_out;            /* a pull request is in flight */
    size_t pulled[64];       /* floats of the current pull received per server */
    int failed;
    err_t perr;
    double push_s, pull_s, compute_s;
    int comp;                /* cluster.compression of the pushes (compression_t) */
    double topk_ratio;
    int pull_elem;           /* WIRE_F32, or WIRE_F16 / WIRE_BF16 (cluster.pull_compression) */
    uint16_t *enc16;         /* n_params: float16 / bfloat16 pushes, by key */
    float *residual;         /* n_params: top-k's unsent gradient (error feedback) */
    uint8_t *topk;           /* 8 * n_params: top-k pushes, by key */
    uint32_t *tk_idx;        /* n_params: top-k scratch */
    float *tk_val, *tk_scratch;
    int stop_requested;      /* a pull reply said: someone asked the job to stop */
    int take_lead;           /* a pull reply said: trainer 0 was lost, this one leads */
    int halt;                /* WIRE_E_STOPPING or WIRE_E_LOST: a server refused to go on */
    int64_t halt_clock[64];  /* each refusing server's step (-1: did not refuse) */
    char halt_msg[ERR_LEN];
} client_t;

static int send_hdr(client_t *c, int s, const wire_hdr_t *h, const void *payload, size_t len,
                    err_t *err)
{
    int hl = wire_encode(h, c->hbuf, sizeof c->hbuf);
    tframe_t f[2] = {{c->hbuf, (size_t)hl}, {payload, len}};
    if (transport_send(c->sock[s], f, payload ? 2 : 1, 1, err) != 0)
        return err_prefix(err, "trainer %d: to server %d (rank %d on %s)", c->d->trainer, s,
                          c->d->server_ranks[s], c->d->hosts[s]);
    return 0;
}

/* Waits for the replies of each server whose want[s] is set; hands each to
 * fn(ctx, s, header, payload, len), which returns 1 when that server has
 * answered in full (a BSP pull may come in pieces), 0 when more is due, -1 on
 * error. Returns 0, or -1 with err naming the server that answered wrong or
 * not at all. */
typedef int (*reply_fn)(client_t *c, int s, const wire_hdr_t *h, const uint8_t *p, size_t len,
                        void *ctx, err_t *err);

static int collect(client_t *c, int *want, int expect_type, reply_fn fn, void *ctx, err_t *err)
{
    int left = 0, halted = 0;
    double heard[64]; /* when each server was last heard from */
    const double t0 = progress_now();
    for (int s = 0; s < c->S; s++) {
        left += want[s];
        c->halt_clock[s] = -1;
        heard[s] = t0;
    }
    /* While it waits (a BSP step waits for the slowest trainer), the trainer
     * sends the servers a heartbeat (CLOCK) and they answer one: a server
     * counts as gone only when it has been silent for the whole timeout, and
     * a lost trainer is reported by the servers before that. */
    const int beat = c->timeout_ms / 4 < 1000 ? c->timeout_ms / 4 : 1000;
    double last_beat = t0;
    while (left > 0) {
        int ready[64];
        double now = progress_now();
        int silent = -1;
        for (int s = 0; s < c->S; s++)
            if (want[s] && (silent < 0 || heard[s] < heard[silent]))
                silent = s;
        int remaining = c->timeout_ms - (int)((now - heard[silent]) * 1000);
        if (remaining <= 0)
            return err_set(err,
                           "trainer %d: server %d (rank %d on %s) did not answer within %.1f s: "
                           "it may have died or be unreachable", c->d->trainer, silent,
                           c->d->server_ranks[silent], c->d->hosts[silent],
                           c->timeout_ms / 1000.0);
        if ((now - last_beat) * 1000 >= beat) {
            last_beat = now;
            for (int s = 0; s < c->S; s++) {
                if (!want[s])
                    continue;
                wire_hdr_t h;
                wire_hdr_init(&h, WIRE_CLOCK, c->d->trainer);
                h.clock = c->step;
                if (send_hdr(c, s, &h, NULL, 0, err) != 0)
                    return -1;
            }
        }
        int n = transport_poll(c->sock, c->S, remaining < beat ? remaining : beat, ready, err);
        if (n < 0)
            return -1;
        for (int s = 0; s < c->S; s++) {
            if (!ready[s])
                continue;
            tmsg_t m;
            if (transport_recv(c->sock[s], &m, 0, err) <= 0)
                return -1;
            wire_hdr_t h;
            int code;
            int rc = 0;
            heard[s] = progress_now();
            if (m.n < 1 || wire_decode(m.data[0], m.size[0], &h, &code, err) != 0 ||
                wire_check_payload(&h, m.n > 1 ? m.size[1] : 0, &code, err) != 0) {
                if (m.n < 1)
                    err_set(err, "empty message");
                rc = err_prefix(err, "trainer %d: bad reply from server %d (rank %d on %s)",
                                c->d->trainer, s, c->d->server_ranks[s], c->d->hosts[s]);
            } else if (h.type == WIRE_CLOCK) {
                /* the answer to a heartbeat: the server is alive */
            } else if (h.type == WIRE_ERROR && want[s] &&
                       (h.status == WIRE_E_STOPPING || h.status == WIRE_E_LOST)) {
                /* the job halts: note it, and hear the other servers out */
                int len = m.n > 1 ? (int)m.size[1] : 0;
                if (!c->halt || h.status == WIRE_E_LOST)
                    c->halt = h.status;
                c->halt_clock[s] = h.clock;
                snprintf(c->halt_msg, sizeof c->halt_msg, "%.*s", len,
                         m.n > 1 ? (const char *)m.data[1] : "");
                want[s] = 0;
                left--;
                halted = 1;
            } else if (h.type == WIRE_ERROR) {
                int len = m.n > 1 ? (int)m.size[1] : 0;
                rc = err_set(err, "trainer %d: server %d (rank %d on %s) refused a request (%s): %.*s",
                             c->d->trainer, s, c->d->server_ranks[s], c->d->hosts[s],
                             wire_error_name(h.status), len, m.n > 1 ? (const char *)m.data[1] : "");
            } else if (h.type != expect_type || !want[s]) {
                rc = err_set(err, "trainer %d: unexpected %s from server %d (rank %d on %s)",
                             c->d->trainer, wire_type_name(h.type), s, c->d->server_ranks[s],
                             c->d->hosts[s]);
            } else {
                int done = fn ? fn(c, s, &h, m.n > 1 ? m.data[1] : NULL, m.n > 1 ? m.size[1] : 0,
                                   ctx, err)
                              : 1;
                if (done < 0) {
                    rc = -1;
                } else if (done) {
                    want[s] = 0;
                    left--;
                }
            }
            tmsg_close(&m);
            if (rc != 0)
                return -1;
        }
    }
    if (halted)
        return err_set(err, "trainer %d: the job halts: %s", c->d->trainer, c->halt_msg);
    return 0;
}

/* A piece of a pull reply: [begin, end) inside the server's shard. */
static int on_pull(client_t *c, int s, const wire_hdr_t *h, const uint8_t *p, size_t len,
                   void *ctx, err_t *err)
{
    (void)ctx;
    if (h->status & 1)
        c->stop_requested = 1; /* for the leading trainer: stop the job at the next step */
    if (h->status & 2)
        c->take_lead = 1;
    const int half = h->elem == WIRE_F16 || h->elem == WIRE_BF16;
    if (h->begin < c->sb[s] || h->end > c->se[s] ||
        len != (h->end - h->begin) * (half ? 2 : sizeof(float)) ||
        c->pulled[s] + (h->end - h->begin) > c->se[s] - c->sb[s])
        return err_set(err, "trainer %d: server %d answered keys [%llu, %llu) of [%zu, %zu)",
                       c->d->trainer, s, (unsigned long long)h->begin,
                       (unsigned long long)h->end, c->sb[s], c->se[s]);
    if (half)
        compress_decode16(c->params + h->begin, p, (size_t)(h->end - h->begin),
                          h->elem == WIRE_BF16);
    else
        memcpy(c->params + h->begin, p, len);
    c->pulled[s] += h->end - h->begin;
    return c->pulled[s] == c->se[s] - c->sb[s];
}

/* Asks every server at once for the parameters of step `clock`, as elem
 * (float32, or float16 / bfloat16 to save bandwidth). */
static int pull_send(client_t *c, long clock, int elem, err_t *err)
{
    for (int s = 0; s < c->S; s++) {
        wire_hdr_t h;
        wire_hdr_init(&h, WIRE_PULL, c->d->trainer);
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

/* Waits for the parameters asked for by pull_send (whole, or in pieces). */
static int pull_collect(client_t *c, err_t *err)
{
    double t0 = progress_now();
    int want[64];
    for (int s = 0; s < c->S; s++) {
        want[s] = 1;
        c->pulled[s] = 0;
    }
    int rc = collect(c, want, WIRE_PULL_REPLY, on_pull, NULL, err);
    c->pull_out = 0;
    c->pull_s += progress_now() - t0;
    return rc;
}

/* The parameters of step `clock`, asking for them unless a request is out. */
static int pull_all(client_t *c, long clock, err_t *err)
{
    if (!c->pull_out && pull_send(c, clock, c->pull_elem, err) != 0)
        return -1;
    return pull_collect(c, err);
}

/* The parameters of step `clock` in full precision (for evaluation). */
static int pull_exact(client_t *c, long clock, err_t *err)
{
    if (pull_send(c, clock, WIRE_F32, err) != 0)
        return -1;
    return pull_collect(c, err);
}

/* Pushes server s the gradient of [lo, hi) for the current step, encoded as
 * cluster.compression says. Returns 0, or -1 with c->perr. */
static int push_piece(client_t *c, int s, size_t lo, size_t hi)
{
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_PUSH, c->d->trainer);
    h.clock = c->step;
    h.begin = lo;
    h.end = hi;
    h.count = hi - lo;
    h.req = ++c->req;
    const void *payload = c->grads + lo;
    size_t bytes = (hi - lo) * sizeof(float);
    if (c->comp == COMP_FP16 || c->comp == COMP_BF16) {
        compress_encode16(c->enc16 + lo, c->grads + lo, hi - lo, c->comp == COMP_BF16);
        h.elem = c->comp == COMP_BF16 ? WIRE_BF16 : WIRE_F16;
        payload = c->enc16 + lo;
        bytes = (hi - lo) * 2;
    } else if (c->comp == COMP_TOPK) {
        /* the largest of gradient + residual; the rest waits in the residual */
        size_t k = compress_topk(c->grads + lo, c->residual + lo, hi - lo, c->topk_ratio,
                                 c->tk_idx, c->tk_val, c->tk_scratch);
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
    return send_hdr(c, s, &h, payload, bytes, &c->perr);
}

/* The model's hook: pushes the gradient of [b, e) to its servers. A large
 * range goes in pieces of wire_piece_floats() (the same cut on every
 * trainer, as BSP needs), so the server applies one while the next is on
 * the wire; top-k picks its largest values over the whole range, so it goes
 * whole. */
static void push_range(void *ctx, size_t b, size_t e)
{
    client_t *c = ctx;
    if (c->failed)
        return;
    double t0 = progress_now();
    for (int s = 0; s < c->S && !c->failed; s++) {
        size_t lo = b > c->sb[s] ? b : c->sb[s], hi = e < c->se[s] ? e : c->se[s];
        size_t piece = c->comp == COMP_TOPK ? hi - lo : wire_piece_floats(c->se[s] - c->sb[s]);
        for (size_t p = lo; p < hi; p += piece)
            if (push_piece(c, s, p, hi - p > piece ? p + piece : hi) != 0) {
                c->failed = 1;
                break;
            }
    }
    c->push_s += progress_now() - t0;
}

static int simple_all(client_t *c, int type, int status, int64_t clock, reply_fn fn, void *ctx,
                      err_t *err)
{
    int want[64];
    for (int s = 0; s < c->S; s++) {
        wire_hdr_t h;
        wire_hdr_init(&h, type, c->d->trainer);
        h.req = ++c->req;
        h.status = status;
        h.clock = clock;
        if (send_hdr(c, s, &h, NULL, 0, err) != 0)
            return -1;
        want[s] = 1;
    }
    return collect(c, want, type, fn, ctx, err);
}

/* A SHUTDOWN answer: its status is the number of trainers that server lost. */
static int on_shutdown(client_t *c, int s, const wire_hdr_t *h, const uint8_t *p, size_t len,
                       void *ctx, err_t *err)
{
    (void)c, (void)s, (void)p, (void)len, (void)err;
    int *lost = ctx;
    if (h->status > *lost)
        *lost = h->status;
    return 1;
}

/* Says goodbye to every server and waits for the end of the job: a server
 * answers once all trainers said goodbye or were lost. Raises
 * res->lost_trainers to what the servers report. Returns 0, or -1 with err. */
static int goodbye(client_t *c, train_result_t *res, err_t *err)
{
    int lost = 0;
    int rc = simple_all(c, WIRE_SHUTDOWN, 0, 0, on_shutdown, &lost, err);
    if (lost > res->lost_trainers)
        res->lost_trainers = lost;
    return rc;
}

/* Trainer 0: a checkpoint of the job after `step` steps: every server
 * writes its shard (CHECKPOINT with status 1), then trainer 0 the manifest
 * with the data order and normalisation (ckptdir.h), last. */
static int checkpoint_job(client_t *c, const job_config_t *cfg, const train_opts_t *opts,
                          const job_data_t *data, long step, long per_epoch, err_t *err)
{
    if (simple_all(c, WIRE_CHECKPOINT, 1, step, NULL, NULL, err) != 0)
        return err_prefix(err, "checkpoint of step %ld", step);
    char root[4200];
    snprintf(root, sizeof root, "%s/checkpoints", opts->out_dir);
    uint8_t order[TRAIN_ORDER_LEN];
    train_order_record(order, cfg, data->train->n, step);
    const norm_stats_t *nm = &data->norm;
    int kind = nm->kind != NORM_NONE && nm->mean ? (int)nm->kind : 0;
    return ckptdir_commit(root, step, (int)(step / per_epoch), c->S, order, sizeof order, kind,
                          nm->dim, nm->mean, nm->inv_std, cfg->checkpoint.keep, err);
}

typedef struct {
    float *params, *state;
    size_t n;
    int slots;
    long version;
} gather_t;

static int on_checkpoint(client_t *c, int s, const wire_hdr_t *h, const uint8_t *p, size_t len,
                         void *ctx, err_t *err)
{
    gather_t *g = ctx;
    size_t shard = c->se[s] - c->sb[s];
    (void)err;
    if (h->begin != c->sb[s] || h->end != c->se[s] ||
        len != shard * (1 + (size_t)g->slots) * sizeof(float))
        return err_set(err, "trainer %d: checkpoint of server %d has the wrong size", c->d->trainer, s);
    const float *f = (const float *)p;
    memcpy(g->params + c->sb[s], f, shard * sizeof(float));
    for (int k = 0; k < g->slots; k++)
        memcpy(g->state + (size_t)k * g->n + c->sb[s], f + shard * (1 + (size_t)k),
               shard * sizeof(float));
    g->version = (long)h->clock;
    return 1;
}

typedef struct {
    double pushes, pulls, errors, updates, busy;
    double version_min, version_max; /* the servers' steps */
    int lost, first_lost;             /* trainers the servers gave up (the most any saw) */
    int partial;                      /* a server applied part of the step under way */
    int lead_done;                    /* a server has trainer 0's goodbye */
    int lead_lost_on;                 /* servers that gave trainer 0 up for lost */
    int next_lead;                    /* the lowest trainer not lost (the most any saw) */
} sstats_t;

static int on_stats(client_t *c, int s, const wire_hdr_t *h, const uint8_t *p, size_t len,
                    void *ctx, err_t *err)
{
    (void)c;
    (void)s;
    (void)h;
    (void)err;
    sstats_t *st = ctx;
    if (len >= 6 * sizeof(float)) {
        float v[11] = {0, 0, 0, 0, 0, 0, 0, -1, 0, 0, 0};
        memcpy(v, p, len < sizeof v ? len : sizeof v);
        st->pushes += v[0];
        st->pulls += v[1];
        st->errors += v[2];
        st->updates += v[3];
        st->busy += v[4];
        if (s == 0 || v[5] < st->version_min)
            st->version_min = v[5];
        if (s == 0 || v[5] > st->version_max)
            st->version_max = v[5];
        st->partial |= v[8] != 0;
        if ((int)v[6] > st->lost) {
            st->lost = (int)v[6];
            st->first_lost = (int)v[7];
        }
        st->lead_done |= v[9] != 0;
        st->lead_lost_on += v[6] > 0 && v[7] == 0; /* the first lost is the lowest index */
        if ((int)v[10] > st->next_lead)
            st->next_lead = (int)v[10];
    }
    return 1;
}

/* A trainer other than 0 that has finished its steps: trainer 0 leads the
 * end of the job (final checkpoint, model files, metrics, summary), so this
 * one waits, polling STATS with heartbeats, until trainer 0 has said goodbye
 * to a server (it has written all that) or every server gave it up for lost.
 * In the second case the lowest trainer left leads in its place: *take is
 * set to 1 on that trainer. Returns 0, or -1 with err. */
static int wait_for_lead(client_t *c, int *take, err_t *err)
{
    *take = 0;
    for (;;) {
        for (int s = 0; s < c->S; s++) { /* a heartbeat; collect takes the answers */
            wire_hdr_t h;
            wire_hdr_init(&h, WIRE_CLOCK, c->d->trainer);
            h.clock = c->step;
            if (send_hdr(c, s, &h, NULL, 0, err) != 0)
                return -1;
        }
        sstats_t ss;
        memset(&ss, 0, sizeof ss);
        if (simple_all(c, WIRE_STATS, 0, 0, on_stats, &ss, err) != 0)
            return -1;
        if (ss.lead_done)
            return 0;
        if (ss.lead_lost_on == c->S) {
            *take = ss.next_lead == c->d->trainer;
            return 0;
        }
        usleep(100 * 1000);
    }
}

typedef struct {
    double *vals;
    int n;
} reduce_t;

static int on_reduce(client_t *c, int s, const wire_hdr_t *h, const uint8_t *p, size_t len,
                     void *ctx, err_t *err)
{
    reduce_t *r = ctx;
    (void)h;
    if (len != (size_t)r->n * 2 * sizeof(float))
        return err_set(err, "trainer %d: server %d returned %zu bytes for %d sums", c->d->trainer,
                       s, len, r->n);
    for (int i = 0; i < r->n; i++) {
        float hi, lo;
        memcpy(&hi, p + 8 * i, 4);
        memcpy(&lo, p + 8 * i + 4, 4);
        r->vals[i] = (double)hi + (double)lo;
    }
    return 1;
}

/* Sums vals[0..n) (n <= 16) over all live trainers, in place, through a
 * BARRIER at server 0 (each double as a float32 pair hi + lo, which keeps
 * 48 bits): over ZeroMQ, so that a lost trainer cannot hang the others as
 * an MPI collective would. Returns 0, or -1 with err. */
static int reduce_all(client_t *c, double *vals, int n, err_t *err)
{
    float pairs[32];
    for (int i = 0; i < n; i++) {
        pairs[2 * i] = (float)vals[i];
        pairs[2 * i + 1] = (float)(vals[i] - (double)pairs[2 * i]);
    }
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_BARRIER, c->d->trainer);
    h.req = ++c->req;
    h.clock = c->step;
    h.count = (uint64_t)(2 * n);
    if (send_hdr(c, 0, &h, pairs, (size_t)(2 * n) * sizeof(float), err) != 0)
        return -1;
    int want[64] = {0};
    want[0] = 1;
    reduce_t r = {vals, n};
    return collect(c, want, WIRE_BARRIER, on_reduce, &r, err);
}

/* Evaluates this trainer's share of ds and sums over trainers. */
static int eval_shared(client_t *c, const dist_opts_t *d, model_t *m, const float *params,
                       const dataset_t *ds, double *loss, double *acc, err_t *err)
{
    if (!ds || ds->n == 0) {
        *loss = *acc = NAN;
        return 0;
    }
    size_t lo, hi;
    data_batch_slice(ds->n, ds->n, 0, d->trainer, d->n_trainers, &lo, &hi);
    double v[3] = {0, 0, 1}; /* loss sum, right, trainers that took part */
    long right = 0;
    evaluate_range(m, params, ds, lo, hi, &v[0], &right);
    v[1] = (double)right;
    if (reduce_all(c, v, 3, err) != 0)
        return -1;
    if (v[2] < d->n_trainers) {
        /* a trainer was lost (ASP / SSP go on without it): its share went
         * unevaluated, so each trainer evaluates the whole set (any of them
         * may have to report: trainer 0 may be the one lost) */
        v[0] = 0;
        right = 0;
        evaluate_range(m, params, ds, 0, ds->n, &v[0], &right);
        v[1] = (double)right;
    }
    *loss = v[0] / (double)ds->n;
    *acc = v[1] / (double)ds->n;
    return 0;
}

/* Trainer 0, asked to stop (a signal here, or a flag from a server) at
 * the start of `step`: every server refuses pulls from this step on, writes
 * its shard once the step before is complete, and the job ends with that
 * checkpoint. Returns 0, or -1 with err. */
static int stop_job(client_t *c, const job_config_t *cfg, const train_opts_t *opts,
                    const job_data_t *data, long step, long per_epoch, train_result_t *res,
                    err_t *err)
{
    if (simple_all(c, WIRE_CHECKPOINT, 2, step, NULL, NULL, err) != 0 ||
        checkpoint_job(c, cfg, opts, data, step, per_epoch, err) != 0)
        return -1;
    train_logf(opts, 0, "rank %d trainer %d: stopped at step %ld on request: checkpoint written "
               "to %s/checkpoints/step-%09ld; continue with --resume %s", c->d->rank,
               c->d->trainer, step, opts->out_dir, step, opts->out_dir);
    res->stopped = 1;
    res->steps = step;
    return goodbye(c, res, err);
}

/* The job halts (a server refused a request with ERROR stopping or lost):
 * the leading trainer (lead: trainer 0, or the lowest one left when trainer
 * 0 is the one lost) writes a checkpoint of the last step every server
 * completed, when they all agree on it, and every trainer says goodbye.
 * Returns 0 (stopped on request; or a trainer that does not lead,
 * res->stopped = 2), or -1 with err saying what happened and where the
 * checkpoint is. */
static int halt_job(client_t *c, const job_config_t *cfg, const train_opts_t *opts,
                    const job_data_t *data, long step, long per_epoch, int lead,
                    train_result_t *res, err_t *err)
{
    err_t e;
    char why[ERR_LEN];
    snprintf(why, sizeof why, "%s", c->halt_msg);
    res->steps = step;
    if (c->halt == WIRE_E_STOPPING) {
        res->stopped = 1;
        goodbye(c, res, &e);
        return 0;
    }
    res->stopped = 2;
    if (!lead) { /* trainer 0 writes the checkpoint; this one leaves quietly */
        goodbye(c, res, &e);
        snprintf(err->msg, sizeof err->msg, "the job halts: %.400s", why);
        return 0;
    }
    /* the step the servers stand at: complete on every one of them */
    sstats_t ss;
    memset(&ss, 0, sizeof ss);
    char done[ERR_LEN + 200];
    if (simple_all(c, WIRE_STATS, 0, 0, on_stats, &ss, &e) != 0) {
        snprintf(done, sizeof done, "no checkpoint (%s)", e.msg);
    } else if (ss.version_min != ss.version_max || ss.partial) {
        snprintf(done, sizeof done, "the servers stand between steps %.0f and %.0f%s, so no "
                 "consistent checkpoint could be written; continue from the last periodic one "
                 "with --resume %s", ss.version_min, ss.version_max + ss.partial,
                 ss.partial ? " (part of a step applied)" : "", opts->out_dir);
    } else {
        long k = (long)ss.version_min;
        if (checkpoint_job(c, cfg, opts, data, k, per_epoch, &e) != 0)
            snprintf(done, sizeof done, "the checkpoint failed: %s", e.msg);
        else
            snprintf(done, sizeof done, "checkpoint of step %ld written to %s/checkpoints; "
                     "continue with --resume %s", k, opts->out_dir, opts->out_dir);
    }
    goodbye(c, res, &e);
    return err_set(err, "the job stops: %.200s; %.280s", why, done);
}

int train_dist(const job_config_t *cfg, const dist_opts_t *d, const train_opts_t *opts,
               train_result_t *res, err_t *err)
{
    int rc = -1;
    int lead = d->trainer == 0; /* this trainer leads the job (see take_lead) */
    /* only the trainer that leads logs: trainer 0, or the one that takes its
     * place when it is lost (the log is switched on then) */
    train_opts_t own = *opts;
    if (!lead)
        own.log = NULL;
    const train_opts_t *const given = opts;
    opts = &own;
    job_data_t data;
    memset(&data, 0, sizeof data);
    memset(res, 0, sizeof *res);
    model_t *m = NULL;
    client_t c;
    memset(&c, 0, sizeof c);
    float *xb = NULL, *state = NULL;
    int32_t *yb = NULL;
    uint32_t *perm = NULL;
    epoch_row_t *rows = NULL;
    c.d = d;
    c.S = d->n_servers;
    c.timeout_ms = cfg->cluster.timeout_ms;

    if (lead && fs_mkdirs(opts->out_dir, err) != 0)
        return -1;
    if (train_prepare(cfg, &m, &data, err) != 0)
        goto out;
    c.n_params = model_n_params(m);
    for (int s = 0; s < c.S; s++) {
        c.sb[s] = shard_begin(c.n_params, c.S, s);
        c.se[s] = shard_end(c.n_params, c.S, s);
        c.sock[s] = transport_connect_auth(d->endpoints[s], d->auth, err);
        if (!c.sock[s])
            goto out;
    }
    const size_t n_train = data.train->n, dim = data.train->dim;
    const int batch = cfg->train.batch;
    c.params = calloc(c.n_params, sizeof *c.params);
    c.grads = calloc(c.n_params, sizeof *c.grads);
    c.comp = cfg->cluster.compression;
    c.topk_ratio = cfg->cluster.topk_ratio;
    c.pull_elem = cfg->cluster.pull_compression == COMP_FP16   ? WIRE_F16
                  : cfg->cluster.pull_compression == COMP_BF16 ? WIRE_BF16
                                                               : WIRE_F32;
    if (c.comp == COMP_FP16 || c.comp == COMP_BF16)
        c.enc16 = calloc(c.n_params, sizeof *c.enc16);
    if (c.comp == COMP_TOPK) {
        c.residual = calloc(c.n_params, sizeof *c.residual);
        c.topk = calloc(c.n_params, 8);
        c.tk_idx = calloc(c.n_params, sizeof *c.tk_idx);
        c.tk_val = calloc(c.n_params, sizeof *c.tk_val);
        c.tk_scratch = calloc(c.n_params, sizeof *c.tk_scratch);
    }
    if (((c.comp == COMP_FP16 || c.comp == COMP_BF16) && !c.enc16) ||
        (c.comp == COMP_TOPK &&
         (!c.residual || !c.topk || !c.tk_idx || !c.tk_val || !c.tk_scratch))) {
        err_set(err, "out of memory for the compression buffers");
        goto out;
    }
    xb = calloc((size_t)batch * dim, sizeof *xb);
    yb = calloc((size_t)batch, sizeof *yb);
    perm = malloc(n_train * sizeof *perm);
    rows = calloc((size_t)cfg->train.epochs, sizeof *rows);
    if (!c.params || !c.grads || !xb || !yb || !perm || !rows) {
        err_set(err, "out of memory");
        goto out;
    }
    model_set_grad_hook(m, push_range, &c);

    long per_epoch;
    const long total = train_total_steps(cfg, n_train, &per_epoch);
    long step0 = 0;
    if (opts->resume) { /* the servers load the parameters; trainers take the step */
        optim_params_t op;
        optim_params_from_config(&op, cfg);
        step0 = train_resume_check(opts->resume, opts->resume_path, cfg, m, n_train,
                                   optim_slots(&op), total, err);
        if (step0 < 0)
            goto out;
    }
    if (lead)
        train_logf(opts, 0,
              "rank %d trainer 0: %s, %zu parameters on %d server(s), %d trainer(s), %s, "
              "%zu training samples, global batch %d, %ld steps",
              d->rank, cfg->name, c.n_params, c.S, d->n_trainers,
              config_consistency_name(cfg->cluster.consistency),
              n_train, batch, total);

    char prefix[64];
    snprintf(prefix, sizeof prefix, "rank %d trainer %d: ", d->rank, d->trainer);
    /* every trainer keeps the rows (they are the same); only trainer 0 logs */
    int epochs_done = train_resume_begin(opts, prefix, step0, per_epoch, rows, cfg->train.epochs);

    int asked_stop = 0;
    const double t0 = progress_now();
    double train_s = 0, last_ckpt_s = t0;
    long step = step0, samples = 0;
    for (int epoch = (int)(step0 / per_epoch); epoch < cfg->train.epochs && step < total;
         epoch++) {
        data_permutation(perm, n_train, cfg->train.seed, (uint64_t)epoch);
        double ep_t0 = progress_now(), ep_train_s = 0;
        double sums[3] = {0, 0, 0}; /* loss, right, seen (this trainer) */
        long ep_global = 0;
        for (long b = step % per_epoch; b < per_epoch && step < total; b++) {
            double s0 = progress_now();
            c.step = step;
            if (lead && !c.pull_out && (train_stop_signal || c.stop_requested)) {
                res->led = 1;
                rc = stop_job(&c, cfg, opts, &data, step, per_epoch, res, err);
                goto out;
            }
            if (!lead && train_stop_signal && !asked_stop) {
                /* pass the request on: the servers flag it to trainer 0 */
                asked_stop = 1;
                if (simple_all(&c, WIRE_SHUTDOWN, 2, step, NULL, NULL, err) != 0)
                    goto halt;
            }
            if (pull_all(&c, step, err) != 0)
                goto halt;
            if (!lead && c.take_lead) { /* trainer 0 is gone: this one leads from here */
                lead = 1;
                own.log = given->log;
                train_logf(opts, 0, "rank %d trainer %d: trainer 0 (rank %d) was lost: this trainer "
                           "leads the job from step %ld (progress, checkpoints, metrics, the "
                           "model)", d->rank, d->trainer, d->n_servers, step);
                if (fs_mkdirs(opts->out_dir, err) != 0)
                    goto out;
            }
            /* the servers are at this step (in BSP exactly: trainer 0 has not pushed it) */
            if (lead && step > step0 && train_checkpoint_due(cfg, step, &last_ckpt_s)) {
                if (checkpoint_job(&c, cfg, opts, &data, step, per_epoch, err) != 0)
                    goto out;
                train_logf(opts, 0, "rank %d trainer %d: checkpoint of step %ld written",
                           d->rank, d->trainer, step);
            }
            /* The pull for the next step goes out after this step's pushes.
             * (Sending it now, so that each layer's piece could travel
             * during backward, was measured slower on 2 cores: the transfer
             * competes with compute for the same CPUs.) A trainer that is
             * ahead still gets each piece as soon as it is final. */
            size_t glo, ghi, lo, hi;
            data_batch_slice(n_train, (size_t)batch, (size_t)b, 0, 1, &glo, &ghi);
            data_batch_slice(n_train, (size_t)batch, (size_t)b, d->trainer, d->n_trainers, &lo, &hi);
            const int gB = (int)(ghi - glo), B = (int)(hi - lo);
            memset(c.grads, 0, c.n_params * sizeof *c.grads);
            double c0 = progress_now(), push0 = c.push_s;
            if (B > 0) {
                data_gather(data.train, perm, lo, hi, xb, yb);
                int ok = 0;
                /* 1/(global batch): the trainers' pushes add up to the batch mean */
                const model_run_t run = {.training = 1, .step = step, .first = (long)(lo - glo)};
                sums[0] += model_train_step(m, &run, c.params, c.grads, xb, yb, B, 1.0f / (float)gB, &ok);
                sums[1] += ok;
                sums[2] += B;
            } else {
                model_emit_grad_ranges(m); /* an empty slice still owes its (zero) push */
            }
            if (c.failed) {
                *err = c.perr;
                goto out;
            }
            c.compute_s += (progress_now() - c0) - (c.push_s - push0);
            step++;
            ep_global += gB;
            ep_train_s += progress_now() - s0;
            if (lead && (step % cfg->train.log_every == 0 || b + 1 == per_epoch || step == total)) {
                double sps = ep_global / (ep_train_s > 0 ? ep_train_s : 1e-9);
                double eta = (double)(total - step) * (train_s + ep_train_s) / (double)(step - step0);
                char line[256];
                progress_format(line, sizeof line, epoch + 1, cfg->train.epochs, b + 1, per_epoch,
                                sums[2] > 0 ? sums[0] / sums[2] : 0, sums[2] > 0 ? sums[1] / sums[2] : 0,
                                sps, eta);
                train_logf(opts, 1, "rank %d trainer %d: %s", d->rank, d->trainer, line);
            }
        }
        train_s += ep_train_s;
        samples += ep_global;
        /* the model after this epoch's last update, in full precision: the
         * reduction is a barrier, after which every trainer's pushes of the
         * epoch are in (ASP: a trainer that finished early would otherwise
         * evaluate, and report, a model without the others' last pushes) */
        if (reduce_all(&c, sums, 3, err) != 0)
            goto halt;
        if (pull_exact(&c, step, err) != 0)
            goto halt;
        epoch_row_t *r = &rows[epochs_done];
        r->epoch = epoch + 1;
        r->step = step;
        r->train_loss = sums[0] / sums[2];
        r->train_acc = sums[1] / sums[2];
        r->samples_per_s = ep_global / (ep_train_s > 0 ? ep_train_s : 1e-9);
        if (eval_shared(&c, d, m, c.params, data.val, &r->val_loss, &r->val_acc, err) != 0 ||
            eval_shared(&c, d, m, c.params, data.test, &r->test_loss, &r->test_acc, err) != 0)
            goto halt;
        r->wall_s = progress_now() - t0;
        epochs_done++;
        if (lead) {
            train_log_epoch(opts, prefix, r, cfg->train.epochs, data.val != NULL,
                            progress_now() - ep_t0);
            if (report_write_metrics(opts->out_dir, rows, epochs_done, err) != 0)
                goto out;
        }
    }

    train_result_fill(res, rows, epochs_done, step, c.n_params, progress_now() - t0, train_s,
                      samples);

    int leads = lead; /* this trainer leads the end of the job */
    if (!lead && wait_for_lead(&c, &leads, err) != 0)
        goto out;
    if (leads && !lead) {
        own.log = given->log;
        train_logf(opts, 0, "rank %d trainer %d: trainer 0 (rank %d) was lost: this trainer "
                   "writes the job's checkpoint, model and metrics in its place", d->rank,
                   d->trainer, d->n_servers);
        if (fs_mkdirs(opts->out_dir, err) != 0 ||
            report_write_metrics(opts->out_dir, rows, epochs_done, err) != 0)
            goto out;
    }
    res->led = leads;
    if (leads) {
        /* the end of the job: each server writes its shard, as periodically */
        if (checkpoint_job(&c, cfg, opts, &data, step, per_epoch, err) != 0)
            goto out;
        optim_params_t op;
        optim_params_from_config(&op, cfg);
        gather_t g = {.params = c.params, .n = c.n_params, .slots = optim_slots(&op)};
        state = calloc(g.slots ? (size_t)g.slots * c.n_params : 1, sizeof *state);
        g.state = state;
        if (!state) {
            err_set(err, "out of memory");
            goto out;
        }
        if (simple_all(&c, WIRE_CHECKPOINT, 0, 0, on_checkpoint, &g, err) != 0)
            goto out;
        sstats_t ss;
        memset(&ss, 0, sizeof ss);
        if (simple_all(&c, WIRE_STATS, 0, 0, on_stats, &ss, err) != 0)
            goto out;
        res->lost_trainers = ss.lost;
        res->first_lost = ss.lost ? ss.first_lost : -1;
        if (ss.lost)
            train_logf(opts, 0, "rank %d trainer %d: the job lost %d trainer(s), the first trainer "
                       "%d (rank %d), and finished with the survivors", d->rank, d->trainer,
                       ss.lost, ss.first_lost, d->n_servers + ss.first_lost);
        uint64_t sent = 0, recvd = 0;
        for (int s = 0; s < c.S; s++) {
            sent += transport_bytes_sent(c.sock[s]);
            recvd += transport_bytes_received(c.sock[s]);
        }
        run_summary_t s;
        train_summary_init(&s, cfg, opts, res, samples, "distributed");
        s.dist = 1;
        s.n_servers = c.S;
        s.n_trainers = d->n_trainers;
        s.consistency = config_consistency_name(cfg->cluster.consistency);
        s.trainer0_compute_s = c.compute_s;
        s.trainer0_pull_wait_s = c.pull_s;
        s.trainer0_push_s = c.push_s;
        s.trainer0_bytes_sent = sent;
        s.trainer0_bytes_received = recvd;
        s.servers_busy_s = ss.busy;
        s.servers_updates = ss.updates;
        s.servers_pushes = ss.pushes;
        s.servers_pulls = ss.pulls;
        checkpoint_t ck;
        uint8_t order[TRAIN_ORDER_LEN];
        train_checkpoint_init(&ck, cfg, opts, m, &data, step, g.version, (int)(step / per_epoch),
                              c.params, state, g.slots, order);
        if (train_write_outputs(opts, &s, d->ckpt_path, &ck, res, err) != 0)
            goto out;
    }
    if (opts->final_params)
        memcpy(opts->final_params, c.params, c.n_params * sizeof *c.params);
    if (goodbye(&c, res, err) != 0)
        goto out;
    rc = 0;
    goto out;
halt:
    if (c.halt) {
        /* trainer 0 writes the halt's checkpoint; if it is the trainer lost,
         * the lowest one left does */
        int leads = lead;
        sstats_t ss;
        memset(&ss, 0, sizeof ss);
        err_t e;
        if (!lead && c.halt == WIRE_E_LOST &&
            simple_all(&c, WIRE_STATS, 0, 0, on_stats, &ss, &e) == 0 && ss.lead_lost_on > 0 &&
            !ss.lead_done && ss.next_lead == d->trainer) {
            leads = 1;
            own.log = given->log;
            train_logf(opts, 0, "rank %d trainer %d: trainer 0 (rank %d) was lost: this trainer "
                       "writes the job's checkpoint in its place", d->rank, d->trainer,
                       d->n_servers);
        }
        rc = halt_job(&c, cfg, opts, &data, step, per_epoch, leads, res, err);
    }
out:
    if (rc != 0 && !c.halt && c.sock[0]) {
        /* tell the servers to stop the job rather than wait for a timeout */
        err_t ignore;
        for (int s = 0; s < c.S; s++) {
            wire_hdr_t h;
            wire_hdr_init(&h, WIRE_SHUTDOWN, d->trainer);
            h.status = 1;
            if (c.sock[s])
                send_hdr(&c, s, &h, NULL, 0, &ignore);
        }
    }
    for (int s = 0; s < c.S; s++)
        transport_destroy(&c.sock[s]);
    free(c.params);
    free(c.grads);
    free(c.enc16);
    free(c.residual);
    free(c.topk);
    free(c.tk_idx);
    free(c.tk_val);
    free(c.tk_scratch);
    free(state);
    free(xb);
    free(yb);
    free(perm);
    free(rows);
    model_destroy(&m);
    job_data_free(&data);
    return rc;
}
