/* consistency.c - the parameter server's consistency rules (see
 * server_int.h): when pushes are applied and pulls answered under BSP, ASP
 * and SSP. BSP keeps each trainer's pieces of a step and applies a piece
 * once every live trainer has pushed it, summed in trainer order (never
 * arrival order: the result is deterministic); a pull of the step under way
 * gets each piece as soon as it is final. ASP applies every piece at once;
 * SSP does too, but holds a pull until the slowest live trainer is within
 * the staleness bound. Barriers (with their sums) and checkpoints that wait
 * for their step live here too. */
#include <stdlib.h>
#include <string.h>

#include "ps/server_int.h"

int cons_init(server_t *s, size_t len, err_t *err)
{
    cons_t *c = &s->cons;
    const int T = s->o.n_trainers;
    const size_t n = len ? len : 1;
    c->version = s->o.start_step;
    c->sum = calloc(n, sizeof *c->sum);
    c->tgrad = calloc((size_t)T * n, sizeof *c->tgrad);
    c->tgot = calloc((size_t)T, sizeof *c->tgot);
    c->tclock = calloc((size_t)T, sizeof *c->tclock);
    c->ranges = calloc(RANGES_MAX, sizeof *c->ranges);
    c->rgot = calloc((size_t)RANGES_MAX * T, 1);
    c->cap_pending = 2 * T + 4;
    c->pending = calloc((size_t)c->cap_pending, sizeof *c->pending);
    c->barrier = calloc((size_t)T, sizeof *c->barrier);
    c->bar_in = calloc((size_t)T, 1);
    c->bar_vals = calloc((size_t)T * BAR_MAX, sizeof *c->bar_vals);
    c->bar_n = -1;
    if (!c->sum || !c->tgrad || !c->tgot || !c->tclock || !c->ranges || !c->rgot ||
        !c->pending || !c->barrier || !c->bar_in || !c->bar_vals)
        return err_set(err, "server %d: out of memory for %d trainers and a shard of %zu keys",
                       s->o.index, T, len);
    for (int t = 0; t < T; t++)
        c->tclock[t] = s->o.start_step;
    return 0;
}

void cons_free(cons_t *c)
{
    free(c->sum);
    free(c->tgrad);
    free(c->tgot);
    free(c->tclock);
    free(c->ranges);
    free(c->rgot);
    free(c->pending);
    free(c->barrier);
    free(c->bar_in);
    free(c->bar_vals);
    memset(c, 0, sizeof *c);
}

/* ------------------------------------------------------------ pulls */

/* Sends h (a PULL_REPLY) with the parameters from key b on, as the pull w
 * asked: float32 (zero_copy allowed) or encoded to float16 / bfloat16 (a
 * copy). */
static void reply_params(server_t *s, const waiter_t *w, wire_hdr_t *h, size_t b, int zero_copy)
{
    size_t sb, se;
    const float *src = store_params(s->store, &sb, &se) + (b - sb);
    if (w->hdr.elem == WIRE_F16 || w->hdr.elem == WIRE_BF16) {
        h->elem = w->hdr.elem;
        const uint16_t *enc = store_encode16(s->store, b - sb, h->count, w->hdr.elem == WIRE_BF16);
        srv_send(s, w->peer, w->peer_len, h, enc, h->count * 2, 0);
        return;
    }
    srv_send(s, w->peer, w->peer_len, h, src, h->count * sizeof(float), zero_copy);
}

/* A PULL_REPLY header for pull w: keys [b, e) at version clock. */
static void reply_hdr(const server_t *s, const waiter_t *w, wire_hdr_t *h, size_t b, size_t e,
                      int64_t clock)
{
    wire_hdr_init(h, WIRE_PULL_REPLY, s->o.rank);
    h->req = w->hdr.req;
    h->clock = clock;
    h->begin = b;
    h->end = e;
    h->count = e - b;
    h->status = live_pull_status(s, w->hdr.sender);
}

/* Answers pull w in full, in pieces of WIRE_PIECE_FLOATS, so the trainer
 * copies one while the next is on the wire. BSP: the shard cannot change
 * before every trainer has this reply, so it goes out without a copy;
 * ASP / SSP copy, since a push may land while the reply is being sent. */
static void serve_pull(server_t *s, const waiter_t *w)
{
    const int zc = s->o.consistency == CONS_BSP;
    for (size_t b = w->hdr.begin; b < w->hdr.end && !s->send_failed; b += WIRE_PIECE_FLOATS) {
        size_t e = w->hdr.end - b > WIRE_PIECE_FLOATS ? b + WIRE_PIECE_FLOATS : w->hdr.end;
        wire_hdr_t h;
        reply_hdr(s, w, &h, b, e, s->cons.version);
        reply_params(s, w, &h, b, zc);
    }
    s->stats.pulls++;
}

/* BSP: sends waiting pull p the part of piece r (complete: its parameters
 * are final for the step under way) that it asked for, once. */
static void serve_piece(server_t *s, pull_t *p, int r, int64_t clock)
{
    if (p->sent[r / 64] & (1ull << (r % 64)))
        return;
    p->sent[r / 64] |= 1ull << (r % 64);
    const range_t *q = &s->cons.ranges[r];
    size_t b = q->b > p->w.hdr.begin ? q->b : p->w.hdr.begin;
    size_t e = q->e < p->w.hdr.end ? q->e : p->w.hdr.end;
    if (b >= e)
        return;
    wire_hdr_t h;
    reply_hdr(s, &p->w, &h, b, e, clock);
    reply_params(s, &p->w, &h, b, 1);
}

/* The slowest live trainer's clock (a lost trainer holds no one back). */
static int64_t min_clock(const server_t *s)
{
    int64_t m = INT64_MAX;
    for (int t = 0; t < s->o.n_trainers; t++)
        if (!s->live.lost[t] && s->cons.tclock[t] < m)
            m = s->cons.tclock[t];
    return m == INT64_MAX ? 0 : m;
}

/* May the pull of a trainer at clock c be answered now? */
static int pull_ready(const server_t *s, int64_t c)
{
    switch (s->o.consistency) {
    case CONS_BSP:
        return s->cons.version >= c;
    case CONS_SSP:
        return min_clock(s) >= c - s->o.staleness;
    case CONS_ASP:
        return 1;
    }
    return 1;
}

/* 1 when pull p has been sent some pieces of its step already. */
static int any_sent(const pull_t *p)
{
    for (size_t i = 0; i < sizeof p->sent / sizeof p->sent[0]; i++)
        if (p->sent[i])
            return 1;
    return 0;
}

void cons_flush(server_t *s)
{
    cons_t *c = &s->cons;
    int keep = 0;
    for (int i = 0; i < c->n_pending; i++) {
        pull_t *p = &c->pending[i];
        if (live_pull_halted(s, p->w.hdr.clock)) {
            live_refuse(s, &p->w);
        } else if (!pull_ready(s, p->w.hdr.clock)) {
            c->pending[keep++] = *p;
        } else if (any_sent(p)) {
            /* BSP: it has some pieces of the step just completed; the rest
             * (the ranges still describe that step) */
            for (int r = 0; r < c->n_ranges; r++)
                serve_piece(s, p, r, c->version);
            s->stats.pulls++;
        } else {
            serve_pull(s, &p->w);
        }
    }
    c->n_pending = keep;
    sparse_flush(s); /* the row pulls that wait: sparse.c */
}

int cons_pull(server_t *s, const req_t *r, int *code, err_t *err)
{
    cons_t *c = &s->cons;
    const int halted = live_pull_halted(s, r->h.clock);
    if (halted || pull_ready(s, r->h.clock)) { /* answered now */
        waiter_t w;
        srv_keep(&w, r);
        if (halted)
            live_refuse(s, &w);
        else
            serve_pull(s, &w);
        return 0;
    }
    if (c->n_pending == c->cap_pending) {
        *code = WIRE_E_STATE;
        return err_set(err, "more than %d pulls waiting", c->cap_pending);
    }
    pull_t *p = &c->pending[c->n_pending++];
    srv_keep(&p->w, r);
    memset(p->sent, 0, sizeof p->sent);
    /* BSP, a trainer ahead: the pieces of the step under way that are final */
    if (s->o.consistency == CONS_BSP && r->h.clock == c->version + 1)
        for (int q = 0; q < c->n_ranges; q++)
            if (c->ranges[q].count == s->o.n_trainers)
                serve_piece(s, p, q, c->version + 1);
    return 0;
}

/* ------------------------------------------------------------ pushes */

/* BSP: sums and applies piece r once every live trainer has pushed it (a
 * trainer lost in mid-step adds what it pushed before it was lost), and
 * sends it to the pulls already waiting for the next step, so that it
 * travels while the trainers are still in backward. */
static void complete_piece(server_t *s, range_t *r)
{
    cons_t *c = &s->cons;
    const int T = s->o.n_trainers;
    const size_t len = store_len(s->store);
    const uint8_t *got = c->rgot + (size_t)(r - c->ranges) * T;
    if (r->applied || s->live.halt == HALT_LOST) /* halted: the lost part never comes */
        return;
    for (int u = 0; u < T; u++)
        if (!got[u] && !s->live.lost[u])
            return;
    /* sum in trainer order, never arrival order: deterministic */
    const size_t off = r->b - store_begin(s->store), n = r->e - r->b;
    float *sum = c->sum + off;
    if (!got[0])
        memset(sum, 0, n * sizeof *sum);
    for (int u = 1; u < T; u++) {
        if (!got[u])
            continue;
        const float *gu = c->tgrad + (size_t)u * len + off;
        for (size_t i = 0; i < n; i++)
            sum[i] += gu[i];
    }
    store_apply(s->store, off, sum, n, c->version);
    r->applied = 1;
    for (int i = 0; i < c->n_pending; i++)
        if (c->pending[i].w.hdr.clock == c->version + 1 && !live_pull_halted(s, c->version + 1))
            serve_piece(s, &c->pending[i], (int)(r - c->ranges), c->version + 1);
}

/* The range of the current BSP step that piece [b, b + n) is: found, or
 * added. Returns it, or NULL with err (it cuts another trainer's piece, or
 * the step has too many pieces). */
static range_t *find_range(cons_t *c, int T, int t, size_t b, size_t n, err_t *err)
{
    /* the pieces come in the same order every step: look where the one
     * after the last piece was first (the ranges never overlap, so an exact
     * match there needs no further check) */
    int hint = c->range_hint < c->n_ranges ? c->range_hint : 0;
    if (c->n_ranges > 0 && c->ranges[hint].b == b && c->ranges[hint].e == b + n)
        return &c->ranges[hint];
    for (int i = 0; i < c->n_ranges; i++) {
        range_t *q = &c->ranges[i];
        if (q->b == b && q->e == b + n)
            return q;
        if (b < q->e && q->b < b + n) {
            err_set(err, "trainer %d pushed keys [%zu, %zu), which cut the piece [%zu, %zu) "
                    "another trainer pushed: in BSP all trainers push the same pieces",
                    t, b, b + n, q->b, q->e);
            return NULL;
        }
    }
    if (c->n_ranges == RANGES_MAX) {
        err_set(err, "more than %d pieces in one step", RANGES_MAX);
        return NULL;
    }
    range_t *r = &c->ranges[c->n_ranges++];
    r->b = b;
    r->e = b + n;
    r->count = 0;
    r->applied = 0;
    memset(c->rgot + (size_t)(r - c->ranges) * T, 0, (size_t)T);
    return r;
}

/* Takes the piece [b, b + n) of trainer t's gradient for the current step.
 * The optimizers are elementwise, so a piece can be applied on its own:
 * ASP / SSP apply each piece at once, read in place from the message, and
 * so does BSP with one trainer. BSP with several trainers keeps each
 * trainer's pieces (trainer 0's straight in the sum) until every trainer
 * has sent the piece (complete_piece). Every trainer pushes a step in the
 * same pieces (its layers, cut by wire_piece_floats()). Returns 0, or -1
 * with err if the piece is refused (nothing is taken). */
static int take_piece(server_t *s, int t, size_t b, const float *g, size_t n, err_t *err)
{
    cons_t *c = &s->cons;
    const int T = s->o.n_trainers;
    const size_t off = b - store_begin(s->store);
    if (s->o.consistency != CONS_BSP || T == 1) {
        store_apply(s->store, off, g, n, c->version);
        return 0;
    }
    range_t *r = find_range(c, T, t, b, n, err);
    if (!r)
        return -1;
    c->range_hint = (int)(r - c->ranges) + 1;
    uint8_t *got = c->rgot + (size_t)(r - c->ranges) * T;
    if (got[t])
        return err_set(err, "trainer %d pushed keys [%zu, %zu) twice in one step", t, b, b + n);
    float *dst = t == 0 ? c->sum : c->tgrad + (size_t)t * store_len(s->store);
    memcpy(dst + off, g, n * sizeof *dst);
    got[t] = 1;
    r->count++;
    complete_piece(s, r);
    return 0;
}

/* The step is complete once every live trainer has pushed it in full (BSP;
 * ASP / SSP count each trainer's steps). The pieces were applied as they
 * completed. */
static void step_maybe_done(server_t *s)
{
    cons_t *c = &s->cons;
    if (s->live.halt == HALT_LOST)
        return; /* BSP halted: the servers stay at the last complete step */
    if (s->o.consistency == CONS_BSP) {
        int live = 0;
        for (int u = 0; u < s->o.n_trainers; u++) {
            if (s->live.lost[u])
                continue;
            live++;
            if (c->tclock[u] <= c->version)
                return; /* someone has not pushed this step yet */
        }
        if (!live)
            return;
    }
    c->version++;
    s->stats.updates++;
}

int cons_push_check(const server_t *s, int t, const wire_hdr_t *h, int *code, err_t *err)
{
    const cons_t *c = &s->cons;
    /* BSP accepts the pushes of the current step only */
    if (s->o.consistency == CONS_BSP && h->clock != c->version) {
        *code = WIRE_E_STATE;
        return err_set(err, "PUSH for step %lld from trainer %d, but the server is at step %ld",
                       (long long)h->clock, t, c->version);
    }
    const size_t n = (size_t)(h->end - h->begin), len = store_len(s->store);
    if (c->tgot[t] + n > len) {
        *code = WIRE_E_LENGTH;
        return err_set(err, "trainer %d pushed %zu values for a step of a %zu-value shard", t,
                       c->tgot[t] + n, len);
    }
    return 0;
}

int cons_push(server_t *s, int t, const wire_hdr_t *h, const float *g, int *code, err_t *err)
{
    cons_t *c = &s->cons;
    const size_t n = (size_t)(h->end - h->begin);
    if (take_piece(s, t, (size_t)h->begin, g, n, err) != 0) {
        *code = WIRE_E_STATE;
        return -1;
    }
    c->tgot[t] += n;
    s->stats.pushes++;
    if (c->tgot[t] < store_len(s->store))
        return 0;
    /* trainer t's gradient of the step is complete */
    const long before = c->version;
    c->tgot[t] = 0;
    c->tclock[t]++;
    step_maybe_done(s);
    cons_flush(s);
    if (c->version != before) {
        c->n_ranges = 0; /* a new step starts with no pieces */
        if (!s->send_failed)
            cons_save_if_due(s);
    }
    return 0;
}

void cons_drop_trainer(server_t *s, int t)
{
    cons_t *c = &s->cons;
    int keep = 0;
    for (int i = 0; i < c->n_pending; i++)
        if (c->pending[i].w.hdr.sender != t)
            c->pending[keep++] = c->pending[i];
    c->n_pending = keep;
    c->bar_in[t] = 0;
    sparse_drop_trainer(s, t);
}

void cons_go_on(server_t *s)
{
    cons_t *c = &s->cons;
    const long before = c->version;
    for (int r = 0; r < c->n_ranges; r++)
        complete_piece(s, &c->ranges[r]);
    step_maybe_done(s);
    if (c->version != before)
        c->n_ranges = 0;
    sparse_go_on(s);
}

int cons_partial(const server_t *s)
{
    int partial = 0;
    for (int i = 0; i < s->cons.n_ranges; i++)
        partial |= s->cons.ranges[i].applied;
    return partial;
}

/* ------------------------------------------------------------ barriers */

void cons_barrier_flush(server_t *s)
{
    cons_t *c = &s->cons;
    const int T = s->o.n_trainers;
    int in = 0, live = 0;
    for (int u = 0; u < T; u++) {
        live += !s->live.lost[u];
        in += c->bar_in[u];
    }
    if (in == 0)
        return;
    /* A stop comes from trainer 0 at the start of a step, so trainer 0
     * enters no barrier after it, and a trainer one step ahead that waits in
     * the epoch's barrier would otherwise wait for ever (and trainer 0 for
     * its goodbye): the halt answers it. */
    const int halted = s->live.halt != HALT_NONE;
    if (!halted && in < live)
        return;
    const int n = c->bar_n > 0 ? c->bar_n : 0;
    float out[2 * BAR_MAX];
    for (int i = 0; i < n; i++) { /* in trainer order, in double, sent as pairs */
        double v = 0;
        for (int u = 0; u < T; u++)
            if (c->bar_in[u])
                v += c->bar_vals[(size_t)u * BAR_MAX + i];
        out[2 * i] = (float)v;
        out[2 * i + 1] = (float)(v - (double)out[2 * i]);
    }
    for (int u = 0; u < T; u++) {
        if (!c->bar_in[u])
            continue;
        const waiter_t *w = &c->barrier[u];
        if (halted) {
            live_refuse(s, w);
        } else {
            wire_hdr_t r;
            wire_hdr_init(&r, WIRE_BARRIER, s->o.rank);
            r.req = w->hdr.req;
            r.clock = c->version;
            r.count = (uint64_t)(2 * n);
            srv_send(s, w->peer, w->peer_len, &r, n ? out : NULL, (size_t)(2 * n) * sizeof(float),
                     0);
        }
        c->bar_in[u] = 0;
    }
    c->bar_n = -1;
}

int cons_barrier(server_t *s, const req_t *r, int *code, err_t *err)
{
    cons_t *c = &s->cons;
    const int t = r->t;
    const wire_hdr_t *h = &r->h;
    if (s->live.halt == HALT_LOST) {
        *code = WIRE_E_LOST;
        return err_set(err, "%s", s->live.halt_msg);
    }
    if (c->bar_in[t]) {
        *code = WIRE_E_STATE;
        return err_set(err, "trainer %d is in the barrier already", t);
    }
    const int n = (int)(h->count / 2);
    if (h->count % 2 != 0 || h->count / 2 > BAR_MAX || (h->count && h->elem != WIRE_F32)) {
        *code = WIRE_E_LENGTH;
        return err_set(err, "BARRIER with %llu values: it takes up to %d float32 pairs",
                       (unsigned long long)h->count, BAR_MAX);
    }
    if (c->bar_n >= 0 && n != c->bar_n) {
        *code = WIRE_E_LENGTH;
        return err_set(err, "BARRIER with %d values from trainer %d, the others brought %d", n, t,
                       c->bar_n);
    }
    for (int i = 0; i < n; i++) {
        float hi, lo;
        memcpy(&hi, r->payload + 8 * i, 4);
        memcpy(&lo, r->payload + 8 * i + 4, 4);
        c->bar_vals[(size_t)t * BAR_MAX + i] = (double)hi + (double)lo;
    }
    c->bar_n = n;
    srv_keep(&c->barrier[t], r);
    c->bar_in[t] = 1;
    cons_barrier_flush(s);
    return 0;
}

/* ------------------------------------------------------------ checkpoints */

/* Writes the shard as step w->hdr.clock and answers w: CHECKPOINT without
 * payload once the file is on disk, or ERROR internal (err says why). In
 * BSP the server must be at that step. */
static void save_and_answer(server_t *s, const waiter_t *w, err_t *err)
{
    const long step = (long)w->hdr.clock, version = s->cons.version;
    int rc;
    if (!s->o.saver.write)
        rc = err_set(err, "this server keeps no checkpoints (no run folder)");
    else if (s->o.consistency == CONS_BSP && step != version)
        rc = err_set(err, "checkpoint of step %ld asked, the server is at step %ld", step, version);
    else
        rc = store_save(s->store, &s->o.saver, step, version, err);
    if (rc == 0 && s->sparse.rows)
        rc = sparse_save(s, step, w->hdr.status == WIRE_CKPT_WRITE_DELTA, err);
    if (rc != 0) {
        srv_error(s, w->peer, w->peer_len, &w->hdr, WIRE_E_INTERNAL, err->msg);
        return;
    }
    size_t b, e;
    store_params(s->store, &b, &e);
    wire_hdr_t r;
    wire_hdr_init(&r, WIRE_CHECKPOINT, s->o.rank);
    r.req = w->hdr.req;
    r.clock = version;
    r.begin = b;
    r.end = e;
    srv_send(s, w->peer, w->peer_len, &r, NULL, 0, 0);
}

/* BSP: has the server applied every update before step `step`, of the
 * shard and of the sparse rows? */
static int step_complete(const server_t *s, long step)
{
    return step <= s->cons.version && (!s->sparse.rows || step <= s->sparse.version);
}

void cons_checkpoint(server_t *s, const req_t *r, err_t *err)
{
    cons_t *c = &s->cons;
    if (s->o.consistency == CONS_BSP && !step_complete(s, (long)r->h.clock) && !c->save_wait &&
        s->live.halt != HALT_LOST) {
        /* BSP: the step is still being pushed; saved once it is complete */
        c->save_wait = 1;
        srv_keep(&c->save, r);
        return;
    }
    waiter_t w;
    srv_keep(&w, r);
    save_and_answer(s, &w, err);
}

void cons_save_if_due(server_t *s)
{
    cons_t *c = &s->cons;
    if (!c->save_wait || !step_complete(s, (long)c->save.hdr.clock))
        return;
    c->save_wait = 0;
    err_t e;
    save_and_answer(s, &c->save, &e);
}
