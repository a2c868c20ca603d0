/* test_client.c - suite "client": ps/client.h against real servers
 * (server_run in threads, over inproc:// as a singleton job runs them; no
 * mpirun): a pull equals the servers' shards (several servers, in pieces,
 * float32 and float16); pushes cut in pieces are applied (BSP with 2
 * trainers, bit-identical to whole pushes); barriers sum; STATS; checkpoints
 * gathered and written through a saver; a server that stops answering is
 * named within the timeout; halts (ERROR stopping, ERROR lost) are reported
 * as such; a malformed STATS reply names its server. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/net/compress.h"
#include "common/net/transport.h"
#include "common/net/wire.h"
#include "common/util/le.h"
#include "common/nn/rows.h"
#include "ps/client.h"
#include "ps/server.h"
#include "ps/shard.h"
#include "tests.h"

#define P WIRE_PIECE_FLOATS

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A model of one tensor of n parameters. */
static param_table_t table_of(size_t n)
{
    param_table_t t;
    memset(&t, 0, sizeof t);
    int shape[1] = {(int)n};
    err_t err;
    param_spec_t *p = params_add(&t, "w", 1, shape, INIT_GLOROT_UNIFORM, &err);
    p->fan_in = p->fan_out = 64;
    return t;
}

static server_opts_t opts_of(const param_table_t *t, int index, int S, int T, consistency_t c)
{
    return (server_opts_t){.index = index, .n_servers = S, .n_trainers = T, .rank = 10 + index,
                           .consistency = c, .staleness = 1, .total_steps = 100, .seed = 5,
                           .table = t,
                           .optim = {.kind = optim_find("adam"), .lr = 0.01, .beta1 = 0.9,
                                     .beta2 = 0.999, .eps = 1e-8}};
}

/* A server run in a thread behind an inproc:// socket. */
typedef struct {
    server_t *s;
    transport_t *t;
    char ep[256];
    int timeout_ms;
    pthread_t th;
    int rc;
    err_t err;
} srv_t;

static void *srv_main(void *arg)
{
    srv_t *v = arg;
    v->rc = server_run(v->s, v->t, v->timeout_ms, NULL, NULL, &v->err);
    return NULL;
}

/* A socket bound to a fresh inproc:// endpoint (in v->ep). */
static transport_t *listen_inproc(char *ep, size_t len)
{
    static int n;
    char where[64];
    snprintf(where, sizeof where, "inproc://test-client-%d", n++);
    err_t err;
    transport_t *t = transport_listen(where, ep, len, &err);
    if (!t)
        fprintf(stderr, "\n  %s\n", err.msg);
    return t;
}

/* Starts the server of o; returns 0 or -1. */
static int srv_start(srv_t *v, const server_opts_t *o, int timeout_ms)
{
    memset(v, 0, sizeof *v);
    err_t err;
    v->timeout_ms = timeout_ms;
    v->s = server_new(o, &err);
    if (!v->s || !(v->t = listen_inproc(v->ep, sizeof v->ep)))
        return -1;
    return pthread_create(&v->th, NULL, srv_main, v) == 0 ? 0 : -1;
}

/* Waits for the server to end; returns server_run's status. */
static int srv_join(srv_t *v)
{
    pthread_join(v->th, NULL);
    if (v->rc != 0)
        fprintf(stderr, "\n  server: %s\n", v->err.msg);
    transport_destroy(&v->t);
    server_destroy(&v->s);
    return v->rc;
}

/* A client of trainer `who` to the S servers at eps. */
static client_t *cli(int who, int S, const char *const *eps, size_t n, int push_elem,
                     int timeout_ms)
{
    static const char *const hosts[3] = {"host-a", "host-b", "host-c"};
    static const int ranks[3] = {5, 7, 9};
    client_opts_t co = {.sender = who, .n_servers = S, .endpoints = eps, .hosts = hosts,
                        .ranks = ranks, .timeout_ms = timeout_ms, .n_params = n,
                        .push_elem = push_elem, .topk_ratio = 0.1};
    err_t err;
    client_t *c = client_new(&co, &err);
    if (!c)
        fprintf(stderr, "\n  %s\n", err.msg);
    return c;
}

static int has(const char *s, const char *what)
{
    if (strstr(s, what))
        return 1;
    fprintf(stderr, "\n  expected \"%s\" in \"%s\"\n", what, s);
    return 0;
}

/* 3 servers, shards of P + 2 and P + 3 keys (2 pieces each): a pull
 * writes exactly every server's shard, in float32; in float16 each value
 * as float16 rounds it. */
static void test_pull(void)
{
    const size_t n = 3 * P + 7;
    param_table_t t = table_of(n);
    srv_t v[3];
    const char *eps[3];
    for (int s = 0; s < 3; s++) {
        server_opts_t o = opts_of(&t, s, 3, 1, CONS_ASP);
        CU_ASSERT_FATAL(srv_start(&v[s], &o, 10000) == 0);
        eps[s] = v[s].ep;
    }
    client_t *c = cli(0, 3, eps, n, WIRE_F32, 5000);
    CU_ASSERT_FATAL(c != NULL);
    float *got = malloc(n * sizeof *got), *want = malloc(n * sizeof *want);
    CU_ASSERT_FATAL(got && want);
    for (int s = 0; s < 3; s++) {
        size_t b, e;
        const float *p = server_params(v[s].s, &b, &e);
        CU_ASSERT(b == shard_begin(n, 3, s) && e == shard_end(n, 3, s) && e - b > P);
        memcpy(want + b, p, (e - b) * sizeof *p);
    }
    err_t err;
    memset(got, 0xff, n * sizeof *got);
    CU_ASSERT_EQUAL(client_pull(c, 0, WIRE_F32, got, &err), 0);
    CU_ASSERT(memcmp(got, want, n * sizeof *got) == 0);
    CU_ASSERT_EQUAL(client_pull_in_flight(c), 0);
    memset(got, 0xff, n * sizeof *got);
    CU_ASSERT_EQUAL(client_pull_send(c, 0, WIRE_F16, &err), 0);
    CU_ASSERT_EQUAL(client_pull_in_flight(c), 1);
    CU_ASSERT_EQUAL(client_pull_wait(c, got, &err), 0);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += got[i] != compress_f16_to_f32(compress_f32_to_f16(want[i]));
    CU_ASSERT_EQUAL(bad, 0);
    uint64_t sent, recvd;
    client_bytes(c, &sent, &recvd);
    CU_ASSERT(recvd > n * 6 && sent > 0);
    int lost = -1;
    CU_ASSERT_EQUAL(client_goodbye(c, &lost, &err), 0);
    CU_ASSERT_EQUAL(lost, 0);
    for (int s = 0; s < 3; s++)
        CU_ASSERT_EQUAL(srv_join(&v[s]), 0);
    client_destroy(&c);
    CU_ASSERT_PTR_NULL(c);
    free(got);
    free(want);
}

/* Sends one request (header h, payload) to s and throws the replies away. */
static int discard(void *ctx, const tframe_t *f, int n, int zc)
{
    (void)ctx, (void)f, (void)n, (void)zc;
    return 0;
}

static void handle(server_t *s, const wire_hdr_t *h, const void *payload, size_t len)
{
    uint8_t hb[WIRE_HDR_MAX];
    int hl = wire_encode(h, hb, sizeof hb);
    err_t err;
    CU_ASSERT_EQUAL(server_handle(s, (const uint8_t *)"t", 1, hb, (size_t)hl, payload, len, 0,
                                  discard, NULL, &err), 0);
}

/* The shard of reference server s as a CHECKPOINT reply carries it:
 * parameters then optimizer state, into out (the whole model's layout). */
typedef struct {
    float *params, *state;
    size_t n;
} whole_t;

static int keep_shard(void *ctx, const tframe_t *f, int n, int zc)
{
    (void)zc;
    whole_t *w = ctx;
    wire_hdr_t h;
    int code;
    err_t err;
    if (n < 3 || wire_decode(f[1].data, f[1].size, &h, &code, &err) != 0)
        return -1;
    const size_t len = h.end - h.begin;
    const float *p = f[2].data;
    memcpy(w->params + h.begin, p, len * sizeof *p);
    memcpy(w->state + h.begin, p + len, len * sizeof *p);             /* Adam's m */
    memcpy(w->state + w->n + h.begin, p + 2 * len, len * sizeof *p);  /* and v */
    return 0;
}

/* BSP, 2 servers, 2 trainers: each client pushes its gradient as two
 * layers, cut in pieces of wire_piece_floats(); the servers apply the step
 * bit for bit as reference servers given each trainer's gradient whole;
 * the pulls, STATS and the gathered checkpoint say so. */
static void test_push_pieces(void)
{
    const size_t n = 2 * (2 * P + 5) + 1, layer = P + 3;
    param_table_t t = table_of(n);
    srv_t v[2];
    server_t *ref[2];
    const char *eps[2];
    err_t err;
    for (int s = 0; s < 2; s++) {
        server_opts_t o = opts_of(&t, s, 2, 2, CONS_BSP);
        CU_ASSERT_FATAL(srv_start(&v[s], &o, 10000) == 0);
        CU_ASSERT_FATAL((ref[s] = server_new(&o, &err)) != NULL);
        eps[s] = v[s].ep;
    }
    client_t *c[2] = {cli(0, 2, eps, n, WIRE_F32, 5000), cli(1, 2, eps, n, WIRE_F32, 5000)};
    CU_ASSERT_FATAL(c[0] && c[1]);
    float *g[2], *got[2];
    for (int k = 0; k < 2; k++) {
        g[k] = malloc(n * sizeof(float));
        got[k] = malloc(n * sizeof(float));
        CU_ASSERT_FATAL(g[k] && got[k]);
        for (size_t i = 0; i < n; i++)
            g[k][i] = (float)(((i + 31 * k) * 7919) % 1000) * 1e-3f - 0.5f + (k ? 1e-7f : 1e3f);
    }
    for (int k = 0; k < 2; k++) { /* the step in pieces, as a trainer's layers come */
        client_set_step(c[k], 0);
        CU_ASSERT_EQUAL(client_push_range(c[k], g[k], layer, n, &err), 0);
        CU_ASSERT_EQUAL(client_push_range(c[k], g[k], 0, layer, &err), 0);
        for (int s = 0; s < 2; s++) { /* the reference: whole */
            wire_hdr_t h;
            wire_hdr_init(&h, WIRE_PUSH, k);
            h.begin = shard_begin(n, 2, s);
            h.end = shard_end(n, 2, s);
            h.count = h.end - h.begin;
            handle(ref[s], &h, g[k] + h.begin, h.count * sizeof(float));
        }
    }
    for (int k = 0; k < 2; k++)
        CU_ASSERT_EQUAL(client_pull_send(c[k], 1, WIRE_F32, &err), 0);
    for (int k = 0; k < 2; k++)
        CU_ASSERT_EQUAL(client_pull_wait(c[k], got[k], &err), 0);
    whole_t w = {malloc(n * sizeof(float)), malloc(2 * n * sizeof(float)), n};
    CU_ASSERT_FATAL(w.params && w.state);
    for (int s = 0; s < 2; s++) {
        CU_ASSERT_EQUAL(server_version(ref[s]), 1);
        wire_hdr_t h;
        wire_hdr_init(&h, WIRE_CHECKPOINT, 0);
        uint8_t hb[WIRE_HDR_MAX];
        int hl = wire_encode(&h, hb, sizeof hb);
        CU_ASSERT(server_handle(ref[s], (const uint8_t *)"t", 1, hb, (size_t)hl, NULL, 0, 0,
                                keep_shard, &w, &err) == 0);
    }
    CU_ASSERT(memcmp(got[0], w.params, n * sizeof(float)) == 0);
    CU_ASSERT(memcmp(got[1], w.params, n * sizeof(float)) == 0);
    /* STATS: pieces pushed (2 layers of 2 trainers, cut at P), pulls, one step */
    client_stats_t st;
    CU_ASSERT_EQUAL(client_stats(c[0], &st, &err), 0);
    size_t pieces = 0;
    for (int s = 0; s < 2; s++) {
        size_t sb = shard_begin(n, 2, s), se = shard_end(n, 2, s);
        size_t piece = wire_piece_floats(se - sb);
        const size_t cut[3] = {0, layer, n};
        for (int l = 0; l < 2; l++) {
            size_t lo = cut[l] > sb ? cut[l] : sb, hi = cut[l + 1] < se ? cut[l + 1] : se;
            if (hi > lo)
                pieces += (hi - lo + piece - 1) / piece;
        }
    }
    CU_ASSERT_EQUAL(st.pushes, 2 * pieces);
    CU_ASSERT_EQUAL(st.pulls, 4);
    CU_ASSERT_EQUAL(st.updates, 2);
    CU_ASSERT(st.version_min == 1 && st.version_max == 1 && st.errors == 0);
    CU_ASSERT(st.lost == 0 && st.lead_lost_on == 0 && st.next_lead == 0 && !st.partial &&
              !st.lead_done);
    CU_ASSERT(st.busy_s > 0);
    /* the gathered checkpoint: parameters and optimizer state */
    float *params = malloc(n * sizeof(float)), *state = malloc(2 * n * sizeof(float));
    CU_ASSERT_FATAL(params && state);
    long version = -1;
    CU_ASSERT_EQUAL(client_checkpoint_gather(c[1], params, state, 2, &version, &err), 0);
    CU_ASSERT_EQUAL(version, 1);
    CU_ASSERT(memcmp(params, w.params, n * sizeof(float)) == 0);
    CU_ASSERT(memcmp(state, w.state, 2 * n * sizeof(float)) == 0);
    /* no saver: a checkpoint write is refused, naming the server (the first to answer) */
    CU_ASSERT_EQUAL(client_checkpoint_write(c[0], 1, 0, &err), -1);
    CU_ASSERT(strstr(err.msg, "server 0 (rank 5 on host-a) refused a request (internal)") ||
              has(err.msg, "server 1 (rank 7 on host-b) refused a request (internal)"));
    CU_ASSERT(has(err.msg, "keeps no checkpoints"));
    client_fail(c[0]); /* the servers end the job */
    for (int s = 0; s < 2; s++) {
        CU_ASSERT_EQUAL(srv_join(&v[s]), 0);
        server_destroy(&ref[s]);
    }
    for (int k = 0; k < 2; k++) {
        client_destroy(&c[k]);
        free(g[k]);
        free(got[k]);
    }
    free(w.params);
    free(w.state);
    free(params);
    free(state);
}

/* A saver that records what it was given. */
typedef struct {
    int calls;
    long step, version;
    size_t begin, end;
    int index, n_servers, n_slots;
    float first;
} saved_t;

static int save_fake(void *ctx, const server_shard_t *sh, err_t *err)
{
    (void)err;
    saved_t *sv = ctx;
    sv->calls++;
    sv->step = sh->step;
    sv->version = sh->version;
    sv->begin = sh->begin;
    sv->end = sh->end;
    sv->index = sh->index;
    sv->n_servers = sh->n_servers;
    sv->n_slots = sh->n_slots;
    sv->first = sh->params[0];
    return 0;
}

typedef struct {
    client_t *c;
    double vals[4];
    int rc, lost;
    err_t err;
} reducer_t;

static void *reducer(void *arg)
{
    reducer_t *r = arg;
    r->rc = client_reduce(r->c, r->vals, 4, &r->err);
    if (r->rc == 0)
        r->rc = client_goodbye(r->c, &r->lost, &r->err);
    return NULL;
}

/* 3 trainers reduce 4 values each through server 0 of 2: each gets the
 * sums over the three (double, kept to 48 bits by the float32 pairs), and
 * the goodbyes end the job together; the saver writes each shard once. */
static void test_barrier(void)
{
    const size_t n = 40;
    param_table_t t = table_of(n);
    srv_t v[2];
    saved_t sv[2] = {{0}, {0}};
    const char *eps[2];
    for (int s = 0; s < 2; s++) {
        server_opts_t o = opts_of(&t, s, 2, 3, CONS_ASP);
        o.saver = (server_saver_t){.write = save_fake, .ctx = &sv[s]};
        CU_ASSERT_FATAL(srv_start(&v[s], &o, 10000) == 0);
        eps[s] = v[s].ep;
    }
    reducer_t r[3];
    pthread_t th[3];
    double sum[4] = {0, 0, 0, 0}, want[4];
    for (int k = 0; k < 3; k++) {
        memset(&r[k], 0, sizeof r[k]);
        r[k].c = cli(k, 2, eps, n, WIRE_F32, 5000);
        CU_ASSERT_FATAL(r[k].c != NULL);
        const double x[4] = {1e8 + 0.25 * k, -3.5 * (k + 1), 1.0 / 3.0 * k, (double)k};
        for (int i = 0; i < 4; i++) { /* each travels as a pair, summed in trainer order */
            r[k].vals[i] = x[i];
            float hi = (float)x[i], lo = (float)(x[i] - (double)hi);
            sum[i] += (double)hi + (double)lo;
        }
    }
    for (int i = 0; i < 4; i++) { /* and the sum comes back as a pair */
        float hi = (float)sum[i], lo = (float)(sum[i] - (double)hi);
        want[i] = (double)hi + (double)lo;
    }
    CU_ASSERT(want[0] > 3e8 + 0.5 && want[0] < 3e8 + 1.0); /* 48 bits: the quarters stay */
    err_t err;
    CU_ASSERT_EQUAL(client_checkpoint_write(r[0].c, 0, 0, &err), 0);
    for (int s = 0; s < 2; s++) {
        CU_ASSERT_EQUAL(sv[s].calls, 1);
        CU_ASSERT(sv[s].step == 0 && sv[s].version == 0 && sv[s].index == s &&
                  sv[s].n_servers == 2 && sv[s].n_slots == 2);
        CU_ASSERT(sv[s].begin == shard_begin(n, 2, s) && sv[s].end == shard_end(n, 2, s));
        size_t b, e;
        CU_ASSERT_EQUAL(sv[s].first, server_params(v[s].s, &b, &e)[0]);
    }
    for (int k = 0; k < 3; k++)
        CU_ASSERT_FATAL(pthread_create(&th[k], NULL, reducer, &r[k]) == 0);
    for (int k = 0; k < 3; k++) {
        pthread_join(th[k], NULL);
        CU_ASSERT_EQUAL(r[k].rc, 0);
        if (r[k].rc)
            fprintf(stderr, "\n  %s\n", r[k].err.msg);
        for (int i = 0; i < 4; i++)
            CU_ASSERT_EQUAL(r[k].vals[i], want[i]);
        CU_ASSERT_EQUAL(r[k].lost, 0);
        client_destroy(&r[k].c);
    }
    for (int s = 0; s < 2; s++)
        CU_ASSERT_EQUAL(srv_join(&v[s]), 0);
}

/* Server 1 of 2 is a bare socket that never answers: the pull fails within
 * the timeout (plus a margin) naming it by index, rank and host. */
static void test_silent_server(void)
{
    const size_t n = 20;
    param_table_t t = table_of(n);
    srv_t v;
    server_opts_t o = opts_of(&t, 0, 2, 1, CONS_ASP);
    CU_ASSERT_FATAL(srv_start(&v, &o, 10000) == 0);
    char ep[256];
    transport_t *mute = listen_inproc(ep, sizeof ep);
    CU_ASSERT_FATAL(mute != NULL);
    const char *eps[2] = {v.ep, ep};
    client_t *c = cli(0, 2, eps, n, WIRE_F32, 300);
    CU_ASSERT_FATAL(c != NULL);
    float got[20];
    err_t err;
    double t0 = now_s();
    CU_ASSERT_EQUAL(client_pull(c, 0, WIRE_F32, got, &err), -1);
    double waited = now_s() - t0;
    CU_ASSERT(waited >= 0.29 && waited < 2.0);
    CU_ASSERT(has(err.msg, "trainer 0: server 1 (rank 7 on host-b) did not answer within 0.3 s"));
    CU_ASSERT_EQUAL(client_halt(c), CLIENT_RUNNING);
    client_fail(c);
    CU_ASSERT_EQUAL(srv_join(&v), 0);
    client_destroy(&c);
    transport_destroy(&mute);
}

/* BSP, 2 trainers: trainer 0 stops the job at step 0, so trainer 1's pull
 * of step 0 is refused (ERROR stopping) and reported as a halt. */
static void test_halt_stopping(void)
{
    const size_t n = 20;
    param_table_t t = table_of(n);
    srv_t v;
    server_opts_t o = opts_of(&t, 0, 1, 2, CONS_BSP);
    CU_ASSERT_FATAL(srv_start(&v, &o, 10000) == 0);
    const char *eps[1] = {v.ep};
    client_t *c0 = cli(0, 1, eps, n, WIRE_F32, 5000), *c1 = cli(1, 1, eps, n, WIRE_F32, 5000);
    CU_ASSERT_FATAL(c0 && c1);
    err_t err;
    CU_ASSERT_EQUAL(client_stop_at(c0, 0, &err), 0);
    float got[20];
    CU_ASSERT_EQUAL(client_pull(c1, 0, WIRE_F32, got, &err), -1);
    CU_ASSERT_EQUAL(client_halt(c1), CLIENT_STOPPING);
    CU_ASSERT(has(err.msg, "trainer 1: the job halts: the job stops at step 0 (asked to stop)"));
    CU_ASSERT(has(client_halt_msg(c1), "stops at step 0"));
    CU_ASSERT_EQUAL(client_halt(c0), CLIENT_RUNNING);
    client_fail(c0);
    CU_ASSERT_EQUAL(srv_join(&v), 0);
    client_destroy(&c0);
    client_destroy(&c1);
}

/* BSP, 2 trainers, trainer 1 never speaks: the server gives it up after its
 * timeout and refuses trainer 0's waiting pull (ERROR lost), which the
 * client reports as a halt; STATS then says who was lost, and the goodbye
 * ends the job with the number lost. */
static void test_halt_lost(void)
{
    const size_t n = 20;
    param_table_t t = table_of(n);
    srv_t v;
    server_opts_t o = opts_of(&t, 0, 1, 2, CONS_BSP);
    CU_ASSERT_FATAL(srv_start(&v, &o, 500) == 0);
    const char *eps[1] = {v.ep};
    client_t *c = cli(0, 1, eps, n, WIRE_F32, 800); /* heartbeats every 200 ms */
    CU_ASSERT_FATAL(c != NULL);
    float g[20], got[20];
    for (int i = 0; i < 20; i++)
        g[i] = 0.5f;
    err_t err;
    client_set_step(c, 0);
    CU_ASSERT_EQUAL(client_push_range(c, g, 0, n, &err), 0);
    CU_ASSERT_EQUAL(client_pull(c, 1, WIRE_F32, got, &err), -1);
    CU_ASSERT_EQUAL(client_halt(c), CLIENT_LOST);
    CU_ASSERT(has(err.msg, "the job halts: trainer 1 (rank 2 on an unknown host) lost"));
    client_stats_t st;
    CU_ASSERT_EQUAL(client_stats(c, &st, &err), 0);
    CU_ASSERT(st.lost == 1 && st.first_lost == 1 && st.lead_lost_on == 0 && st.next_lead == 0);
    CU_ASSERT(st.version_min == 0 && st.version_max == 0 && !st.partial && st.pushes == 1);
    int lost = 0;
    CU_ASSERT_EQUAL(client_goodbye(c, &lost, &err), 0);
    CU_ASSERT_EQUAL(lost, 1);
    CU_ASSERT_EQUAL(srv_join(&v), 0);
    client_destroy(&c);
}

typedef struct {
    transport_t *t;
    const uint8_t *payload;
    size_t len;
} fake_t;

/* A fake server: answers one request with a STATS reply of f->payload. */
static void *fake_stats(void *arg)
{
    fake_t *f = arg;
    tmsg_t m;
    err_t err;
    if (transport_recv(f->t, &m, 5000, &err) != 1)
        return NULL;
    wire_hdr_t h, r;
    int code;
    if (wire_decode(m.data[1], m.size[1], &h, &code, &err) == 0) {
        wire_hdr_init(&r, WIRE_STATS, 9);
        r.req = h.req;
        r.elem = WIRE_MSGPACK;
        r.count = f->len;
        uint8_t hb[WIRE_HDR_MAX];
        tframe_t fr[3] = {{m.data[0], m.size[0]},
                          {hb, (size_t)wire_encode(&r, hb, sizeof hb)},
                          {f->payload, f->len}};
        transport_send(f->t, fr, 3, 3, &err);
    }
    tmsg_close(&m);
    return NULL;
}

/* A STATS reply without the field "lost" is an error naming the server; a
 * client of no servers, or of more than SHARD_SERVERS_MAX, is refused. */
static void test_bad_stats(void)
{
    wire_stats_t st = {0};
    uint8_t buf[WIRE_STATS_MAX];
    int n = wire_stats_encode(&st, buf, sizeof buf);
    CU_ASSERT_FATAL(n > 0);
    /* drop the entry "lost" (the 7th) and say 13 entries */
    const uint8_t key[] = {0xa4, 'l', 'o', 's', 't', 0x00};
    uint8_t *at = memmem(buf, (size_t)n, key, sizeof key);
    CU_ASSERT_FATAL(at != NULL);
    memmove(at, at + sizeof key, (size_t)(buf + n - (at + sizeof key)));
    n -= (int)sizeof key;
    buf[0] = 0x8d;
    char ep[256];
    fake_t f = {listen_inproc(ep, sizeof ep), buf, (size_t)n};
    CU_ASSERT_FATAL(f.t != NULL);
    pthread_t th;
    CU_ASSERT_FATAL(pthread_create(&th, NULL, fake_stats, &f) == 0);
    const char *eps[1] = {ep};
    client_t *c = cli(2, 1, eps, 10, WIRE_F32, 5000);
    CU_ASSERT_FATAL(c != NULL);
    client_stats_t cs;
    err_t err;
    CU_ASSERT_EQUAL(client_stats(c, &cs, &err), -1);
    CU_ASSERT(has(err.msg, "trainer 2: server 0 (rank 5 on host-a): STATS: no field \"lost\""));
    pthread_join(th, NULL);
    client_destroy(&c);
    transport_destroy(&f.t);
    const char *many[1] = {ep};
    client_opts_t co = {.n_servers = 0, .endpoints = many, .timeout_ms = 100, .n_params = 1,
                        .push_elem = WIRE_F32};
    CU_ASSERT_PTR_NULL(client_new(&co, &err));
    co.n_servers = SHARD_SERVERS_MAX + 1;
    CU_ASSERT_PTR_NULL(client_new(&co, &err));
    CU_ASSERT(has(err.msg, "1 to 1024"));
}


/* ------------------------------------------------------------ sparse rows */

#define TB 7     /* a bounded table of 1000 rows of dim 4 */
#define TB_DIM 4
#define TW 9     /* an unbounded table of wide rows: 4 rows a piece */
#define TW_DIM (WIRE_PIECE_FLOATS / 4)

static const rows_table_t row_tables[2] = {{.id = TB, .dim = TB_DIM, .rows = 1000},
                                           {.id = TW, .dim = TW_DIM, .rows = 0}};

/* opts_of with the two sparse tables and the optimizer `optim` at lr 0.1. */
static server_opts_t rows_opts(const param_table_t *t, int index, int S, int T, consistency_t c,
                               const char *optim)
{
    server_opts_t o = opts_of(t, index, S, T, c);
    o.optim.kind = optim_find(optim);
    o.optim.lr = 0.1;
    o.row_tables = row_tables;
    o.n_row_tables = 2;
    return o;
}

/* A row store as the servers of o hold theirs, holding every row. */
static rows_t *rows_ref(const server_opts_t *o)
{
    rows_opts_t ro = {.seed = o->seed, .optim = &o->optim};
    err_t err;
    rows_t *r = rows_new(row_tables, 2, &ro, &err);
    if (!r)
        fprintf(stderr, "\n  %s\n", err.msg);
    return r;
}

/* 1 when rows[0, n) (dim floats each) are bit for bit the rows of ids in
 * ref (pulled from it: created there when new). */
static int rows_match(rows_t *ref, uint32_t table, size_t dim, const uint64_t *ids, size_t n,
                      const float *rows)
{
    float *want = malloc(n * dim * sizeof *want);
    err_t err;
    int ok = want && rows_pull(ref, table, ids, n, want, &err) == 0 &&
             memcmp(want, rows, n * dim * sizeof *want) == 0;
    free(want);
    return ok;
}

/* 1 server, ASP, SGD: a pull gives the rows' pure initial values
 * (rows_initial); a push of two of them changes exactly those by -lr * g
 * (bit for bit as the row store's own push); STATS counts the rows. */
static void test_rows_pull_push(void)
{
    param_table_t t = table_of(10);
    server_opts_t o = rows_opts(&t, 0, 1, 1, CONS_ASP, "sgd");
    srv_t v;
    CU_ASSERT_FATAL(srv_start(&v, &o, 10000) == 0);
    const char *eps[1] = {v.ep};
    client_t *c = cli(0, 1, eps, 10, WIRE_F32, 5000);
    rows_t *ref = rows_ref(&o);
    CU_ASSERT_FATAL(c != NULL && ref != NULL);
    const uint64_t ids[4] = {5, 900, 3, 0};
    float got[4 * TB_DIM], init[4 * TB_DIM], g[2 * TB_DIM];
    err_t err;
    CU_ASSERT_EQUAL_FATAL(client_pull_rows(c, TB, TB_DIM, ids, 4, 0, got, &err), 0);
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL(rows_initial(ref, TB, ids[i], init + i * TB_DIM, &err), 0);
        CU_ASSERT(memcmp(got + i * TB_DIM, init + i * TB_DIM, sizeof(float) * TB_DIM) == 0);
    }
    for (int i = 0; i < 2 * TB_DIM; i++)
        g[i] = 0.25f * (float)(i + 1) * (i % 2 ? -1.f : 1.f);
    client_set_step(c, 0);
    CU_ASSERT_EQUAL(client_push_rows(c, TB, TB_DIM, ids, 2, g, &err), 0);
    CU_ASSERT_EQUAL(client_push_rows_end(c, &err), 0);
    CU_ASSERT_EQUAL_FATAL(client_pull_rows(c, TB, TB_DIM, ids, 4, 1, got, &err), 0);
    for (int i = 0; i < 2 * TB_DIM; i++) /* the two pushed rows: -lr * g */
        CU_ASSERT(fabsf(got[i] - (init[i] - 0.1f * g[i])) < 1e-6f);
    CU_ASSERT(memcmp(got + 2 * TB_DIM, init + 2 * TB_DIM, sizeof(float) * 2 * TB_DIM) == 0);
    CU_ASSERT_EQUAL(rows_push(ref, TB, ids, 2, g, 1, optim_lr(&o.optim, 0, 100), &err), 0);
    CU_ASSERT(rows_match(ref, TB, TB_DIM, ids, 4, got));
    /* a read-only pull (PEEK_ROWS): held rows as they are, the others at
     * their initial values, and no row made */
    const uint64_t peek[3] = {900, 7, 5};
    float pk[3 * TB_DIM], want[TB_DIM];
    CU_ASSERT_EQUAL_FATAL(client_peek_rows(c, TB, TB_DIM, peek, 3, 1, pk, &err), 0);
    CU_ASSERT(memcmp(pk, got + TB_DIM, sizeof(float) * TB_DIM) == 0);
    CU_ASSERT(memcmp(pk + 2 * TB_DIM, got, sizeof(float) * TB_DIM) == 0);
    CU_ASSERT_EQUAL(rows_initial(ref, TB, 7, want, &err), 0);
    CU_ASSERT(memcmp(pk + TB_DIM, want, sizeof want) == 0);
    client_stats_t st;
    CU_ASSERT_EQUAL_FATAL(client_stats(c, &st, &err), 0);
    CU_ASSERT_EQUAL(st.rows, 4);
    CU_ASSERT_EQUAL(st.rows_created, 4);
    CU_ASSERT(st.rows_bytes > 4 * TB_DIM * sizeof(float) && st.rows_bytes == st.rows_bytes_max);
    /* an unknown table: the server's refusal, named */
    CU_ASSERT_EQUAL(client_pull_rows(c, 8, TB_DIM, ids, 4, 1, got, &err), -1);
    CU_ASSERT(has(err.msg, "server 0 (rank 5 on host-a) refused a request (range): PULL_ROWS of "
                  "table 8: no such sparse table"));
    int lost = -1;
    CU_ASSERT_EQUAL(client_goodbye(c, &lost, &err), 0);
    CU_ASSERT_EQUAL(srv_join(&v), 0);
    client_destroy(&c);
    rows_destroy(&ref);
}


/* 2 servers, ASP, SGD: ids in a scrambled order are routed by rows_hash (a
 * server refuses ids it does not own, so the pulls succeed only when every
 * id went to its owner) and the replies come back in the caller's order,
 * for narrow rows and for wide ones (4 a piece: several pieces per server,
 * 64-bit ids of an unbounded table); a push and a pull again agree with a
 * row store holding every row. */
static void test_rows_routed(void)
{
    param_table_t t = table_of(10);
    srv_t v[2];
    const char *eps[2];
    server_opts_t o;
    for (int s = 0; s < 2; s++) {
        o = rows_opts(&t, s, 2, 1, CONS_ASP, "sgd");
        CU_ASSERT_FATAL(srv_start(&v[s], &o, 10000) == 0);
        eps[s] = v[s].ep;
    }
    client_t *c = cli(0, 2, eps, 10, WIRE_F32, 5000);
    rows_t *ref = rows_ref(&o);
    CU_ASSERT_FATAL(c != NULL && ref != NULL);
    enum { N = 100, NW = 11 };
    uint64_t ids[N], wide[NW];
    int on[2] = {0, 0};
    for (int i = 0; i < N; i++) {
        ids[i] = (uint64_t)(i * 37 % N) * 9 + 1;
        on[rows_hash(TB, ids[i]) % 2]++;
    }
    for (int i = 0; i < NW; i++)
        wide[i] = 0xfedcba9876543210ull - (uint64_t)i * 1000003;
    CU_ASSERT(on[0] > 10 && on[1] > 10); /* both servers have some */
    float *got = malloc(sizeof(float) * NW * TW_DIM), *g = malloc(sizeof(float) * NW * TW_DIM);
    CU_ASSERT_FATAL(got != NULL && g != NULL);
    err_t err;
    CU_ASSERT_EQUAL_FATAL(client_pull_rows(c, TB, TB_DIM, ids, N, 0, got, &err), 0);
    CU_ASSERT(rows_match(ref, TB, TB_DIM, ids, N, got));
    CU_ASSERT_EQUAL_FATAL(client_pull_rows(c, TW, TW_DIM, wide, NW, 0, got, &err), 0);
    CU_ASSERT(rows_match(ref, TW, TW_DIM, wide, NW, got));
    for (size_t i = 0; i < (size_t)NW * TW_DIM; i++)
        g[i] = (float)((int)(i % 13) - 6) * 0.125f;
    client_set_step(c, 0);
    CU_ASSERT_EQUAL(client_push_rows(c, TB, TB_DIM, ids, N, g, &err), 0);
    CU_ASSERT_EQUAL(client_push_rows(c, TW, TW_DIM, wide, NW, g, &err), 0);
    CU_ASSERT_EQUAL(client_push_rows_end(c, &err), 0);
    const double lr = optim_lr(&o.optim, 0, 100);
    CU_ASSERT_EQUAL(rows_push(ref, TB, ids, N, g, 1, lr, &err), 0);
    CU_ASSERT_EQUAL(rows_push(ref, TW, wide, NW, g, 1, lr, &err), 0);
    CU_ASSERT_EQUAL_FATAL(client_pull_rows(c, TB, TB_DIM, ids, N, 1, got, &err), 0);
    CU_ASSERT(rows_match(ref, TB, TB_DIM, ids, N, got));
    CU_ASSERT_EQUAL_FATAL(client_pull_rows(c, TW, TW_DIM, wide, NW, 1, got, &err), 0);
    CU_ASSERT(rows_match(ref, TW, TW_DIM, wide, NW, got));
    client_stats_t st;
    CU_ASSERT_EQUAL_FATAL(client_stats(c, &st, &err), 0);
    CU_ASSERT_EQUAL(st.rows, N + NW);
    CU_ASSERT(st.rows_bytes_max < st.rows_bytes); /* both servers hold rows */
    int lost = -1;
    CU_ASSERT_EQUAL(client_goodbye(c, &lost, &err), 0);
    for (int s = 0; s < 2; s++)
        CU_ASSERT_EQUAL(srv_join(&v[s]), 0);
    client_destroy(&c);
    rows_destroy(&ref);
    free(got);
    free(g);
}

/* The replies server_handle sends, the last one kept. */
typedef struct {
    int n;                     /* replies so far */
    wire_hdr_t h;              /* the last */
    uint8_t p[4096];
    size_t len;
} cap_t;

static int capture(void *ctx, const tframe_t *f, int n, int zc)
{
    cap_t *c = ctx;
    int code;
    err_t err;
    (void)zc;
    if (n < 2 || wire_decode(f[1].data, f[1].size, &c->h, &code, &err) != 0)
        return -1;
    c->len = n > 2 ? f[2].size : 0;
    if (c->len > sizeof c->p)
        return -1;
    memcpy(c->p, n > 2 ? f[2].data : "", c->len);
    c->n++;
    return 0;
}

/* Hands s a PULL_ROWS or PUSH_ROWS of trainer `who` for step clock:
 * table, positions [begin, begin + n), the ids and `count` floats g. */
static void rows_req(server_t *s, cap_t *cap, int type, int who, long clock, int table,
                     uint64_t begin, const uint64_t *ids, size_t n, const float *g, size_t count)
{
    wire_hdr_t h;
    wire_hdr_init(&h, type, who);
    h.elem = WIRE_ROWS;
    h.clock = clock;
    h.status = table;
    h.begin = begin;
    h.end = begin + n;
    h.count = count;
    uint8_t pay[1024], hb[WIRE_HDR_MAX];
    for (size_t i = 0; i < n; i++)
        le_store64(pay + 8 * i, ids[i]);
    memcpy(pay + 8 * n, g ? (const void *)g : "", count * sizeof(float));
    int hl = wire_encode(&h, hb, sizeof hb);
    err_t err;
    const uint8_t peer[1] = {(uint8_t)('a' + who)};
    CU_ASSERT_EQUAL(server_handle(s, peer, 1, hb, (size_t)hl, n ? pay : NULL,
                                  8 * n + count * sizeof(float), 0, capture, cap, &err), 0);
}

/* Expects the last reply to be ERROR code with `what` in its text. */
static void expect_error_at(const cap_t *cap, int replies, int code, const char *what, int line)
{
    char text[4100];
    snprintf(text, sizeof text, "%.*s", (int)cap->len, (const char *)cap->p);
    if (cap->n != replies || cap->h.type != WIRE_ERROR || cap->h.status != code ||
        !strstr(text, what)) {
        fprintf(stderr, "\n  line %d: %d replies, type %d status %d \"%s\", expected ERROR %d "
                "with \"%s\"\n", line, cap->n, cap->h.type, cap->h.status, text, code, what);
        CU_FAIL("refusal");
    }
}
#define EXPECT_ERROR(cap, replies, code, what) expect_error_at(cap, replies, code, what, __LINE__)

/* Server 0 of 2, BSP, 1 trainer: every bad row request is answered with
 * ERROR naming what is wrong, and nothing changed: no row was created by
 * a refused pull, and the refused pushes add nothing to the step (the rows
 * pulled after the one good push equal a store given that push alone).
 * SSP with sparse tables, and rows asked of a server without tables, are
 * refused. */
static void test_rows_refused(void)
{
    param_table_t t = table_of(10);
    server_opts_t o = rows_opts(&t, 0, 2, 1, CONS_BSP, "sgd");
    err_t err;
    server_t *s = server_new(&o, &err);
    rows_t *ref = rows_ref(&o);
    CU_ASSERT_FATAL(s != NULL && ref != NULL);
    uint64_t mine[3], theirs = 0; /* ids of table TB that server 0, server 1 owns */
    int n_mine = 0, n_theirs = 0;
    for (uint64_t id = 0; n_mine < 3 || !n_theirs; id++) {
        if (rows_hash(TB, id) % 2 == 0 && n_mine < 3)
            mine[n_mine++] = id;
        else if (rows_hash(TB, id) % 2 == 1 && !n_theirs++)
            theirs = id;
    }
    uint64_t beyond = 1000;
    while (rows_hash(TB, beyond) % 2 != 0)
        beyond++;
    const uint64_t dup[2] = {mine[0], mine[0]}, mixed[2] = {mine[1], theirs};
    float g[4 * TB_DIM];
    for (int i = 0; i < 4 * TB_DIM; i++)
        g[i] = (float)(i + 1);
    cap_t cap = {0};
    rows_req(s, &cap, WIRE_PULL_ROWS, 0, 0, 8, 0, mine, 1, NULL, 0);
    EXPECT_ERROR(&cap, 1, WIRE_E_RANGE, "PULL_ROWS of table 8: no such sparse table");
    rows_req(s, &cap, WIRE_PULL_ROWS, 0, 0, TB, 0, &beyond, 1, NULL, 0);
    EXPECT_ERROR(&cap, 2, WIRE_E_RANGE, "of table 7 is beyond its 1000 rows");
    rows_req(s, &cap, WIRE_PULL_ROWS, 0, 0, TB, 0, mixed, 2, NULL, 0);
    EXPECT_ERROR(&cap, 3, WIRE_E_RANGE, "belongs to server 1, not 0");
    rows_req(s, &cap, WIRE_PULL_ROWS, 0, 0, TW, 0, (const uint64_t[5]){0}, 5, NULL, 0);
    EXPECT_ERROR(&cap, 4, WIRE_E_LENGTH, "a piece holds at most 4");
    rows_req(s, &cap, WIRE_PUSH_ROWS, 0, 0, TB, 0, dup, 2, g, 2 * TB_DIM);
    EXPECT_ERROR(&cap, 5, WIRE_E_RANGE, "twice in one push");
    rows_req(s, &cap, WIRE_PUSH_ROWS, 0, 0, TB, 0, mixed, 2, g, 2 * TB_DIM);
    EXPECT_ERROR(&cap, 6, WIRE_E_RANGE, "belongs to server 1");
    rows_req(s, &cap, WIRE_PUSH_ROWS, 0, 0, TB, 0, mine, 2, g, 4 * TB_DIM);
    EXPECT_ERROR(&cap, 7, WIRE_E_LENGTH, "with 16 floats, expected 8 (dim 4)");
    rows_req(s, &cap, WIRE_PUSH_ROWS, 0, 0, TB, 5, mine, 2, g, 2 * TB_DIM);
    EXPECT_ERROR(&cap, 8, WIRE_E_STATE, "at row position 5, but 0 came before");
    rows_req(s, &cap, WIRE_PUSH_ROWS, 0, 3, TB, 0, mine, 2, g, 2 * TB_DIM);
    EXPECT_ERROR(&cap, 9, WIRE_E_STATE, "PUSH_ROWS for step 3 from trainer 0, but the rows are "
                 "at step 0");
    rows_req(s, &cap, WIRE_PUSH_ROWS, 0, 0, TB, 0, mine, 2, g, 2 * TB_DIM - 1);
    EXPECT_ERROR(&cap, 10, WIRE_E_LENGTH, "PUSH_ROWS");
    rows_req(s, &cap, WIRE_PUSH_ROWS, 0, 0, TB, 0, mine, 1, g, TB_DIM); /* the end, late */
    rows_req(s, &cap, WIRE_PUSH_ROWS, 0, 0, TB, 0, NULL, 0, NULL, 0);
    EXPECT_ERROR(&cap, 11, WIRE_E_STATE, "at row position 0, but 1 came before");
    server_stats_t st;
    server_get_stats(s, &st);
    CU_ASSERT_EQUAL(st.rows, 0); /* no refused pull created a row */
    CU_ASSERT_EQUAL(st.errors, 11);
    CU_ASSERT_EQUAL(cap.n, 11);
    rows_req(s, &cap, WIRE_PUSH_ROWS, 0, 0, TB, 1, NULL, 0, NULL, 0); /* ends step 0 */
    rows_req(s, &cap, WIRE_PULL_ROWS, 0, 1, TB, 0, mine, 3, NULL, 0);
    CU_ASSERT_EQUAL_FATAL(cap.n, 12);
    CU_ASSERT(cap.h.type == WIRE_PULL_ROWS && cap.h.elem == WIRE_F32 && cap.h.status == TB &&
              cap.h.count == 3 * TB_DIM && cap.h.clock == 1);
    CU_ASSERT_EQUAL(rows_push(ref, TB, mine, 1, g, 1, optim_lr(&o.optim, 0, 100), &err), 0);
    CU_ASSERT(cap.len == 3 * TB_DIM * sizeof(float) &&
              rows_match(ref, TB, TB_DIM, mine, 3, (const float *)cap.p));
    server_destroy(&s);
    rows_destroy(&ref);
    o.consistency = CONS_SSP;
    CU_ASSERT_PTR_NULL(server_new(&o, &err));
    CU_ASSERT(has(err.msg, "sparse tables need BSP or ASP, not SSP"));
    o = opts_of(&t, 0, 1, 1, CONS_BSP);
    CU_ASSERT_FATAL((s = server_new(&o, &err)) != NULL);
    rows_req(s, &cap, WIRE_PULL_ROWS, 0, 0, TB, 0, mine, 1, NULL, 0);
    EXPECT_ERROR(&cap, 13, WIRE_E_RANGE, "this server holds no sparse tables");
    server_destroy(&s);
}


/* BSP, 1 server, 2 trainers, Adam (so that two updates differ from one):
 * trainer 1 pushes rows {2, 3} first, trainer 0 rows {1, 2}; pulls of
 * step 1 (21 pieces: more than the first room for waiting pulls) wait
 * until both have ended step 0, then are all answered in order; then the rows equal a store
 * given one push of the summed gradients (row 2: g0 + g1), and a row that
 * no trainer pushed keeps its value. A pull of step 0 is answered at once. */
static void test_rows_bsp(void)
{
    param_table_t t = table_of(10);
    server_opts_t o = rows_opts(&t, 0, 1, 2, CONS_BSP, "adam");
    err_t err;
    server_t *s = server_new(&o, &err);
    rows_t *ref = rows_ref(&o);
    CU_ASSERT_FATAL(s != NULL && ref != NULL);
    const uint64_t ids0[2] = {1, 2}, ids1[2] = {2, 3}, all[4] = {1, 2, 3, 4};
    float g0[2 * TB_DIM], g1[2 * TB_DIM], sum[3 * TB_DIM];
    for (int i = 0; i < 2 * TB_DIM; i++) {
        g0[i] = 0.5f + (float)i;
        g1[i] = -0.25f * (float)(i + 3);
    }
    memcpy(sum, g0, sizeof(float) * TB_DIM);                     /* row 1 */
    for (int j = 0; j < TB_DIM; j++)                             /* row 2: trainer order */
        sum[TB_DIM + j] = g0[TB_DIM + j] + g1[j];
    memcpy(sum + 2 * TB_DIM, g1 + TB_DIM, sizeof(float) * TB_DIM); /* row 3 */
    cap_t cap = {0};
    rows_req(s, &cap, WIRE_PULL_ROWS, 1, 0, TB, 0, all, 4, NULL, 0); /* step 0: now */
    CU_ASSERT_EQUAL(cap.n, 1);
    CU_ASSERT(rows_match(ref, TB, TB_DIM, all, 4, (const float *)cap.p));
    rows_req(s, &cap, WIRE_PUSH_ROWS, 1, 0, TB, 0, ids1, 2, g1, 2 * TB_DIM);
    rows_req(s, &cap, WIRE_PUSH_ROWS, 1, 0, TB, 2, NULL, 0, NULL, 0);
    for (int k = 0; k < 20; k++) /* more pieces wait than there is room for at first */
        rows_req(s, &cap, WIRE_PULL_ROWS, 1, 1, TB, (uint64_t)k, all + k % 4, 1, NULL, 0);
    rows_req(s, &cap, WIRE_PULL_ROWS, 1, 1, TB, 0, all, 4, NULL, 0); /* step 1: waits */
    rows_req(s, &cap, WIRE_PUSH_ROWS, 0, 0, TB, 0, ids0, 2, g0, 2 * TB_DIM);
    CU_ASSERT_EQUAL(cap.n, 1);
    rows_req(s, &cap, WIRE_PUSH_ROWS, 0, 0, TB, 2, NULL, 0, NULL, 0); /* the step is applied */
    CU_ASSERT_EQUAL_FATAL(cap.n, 22);
    CU_ASSERT(cap.h.type == WIRE_PULL_ROWS && cap.h.clock == 1 && cap.h.end == 4);
    const uint64_t once[3] = {1, 2, 3};
    CU_ASSERT_EQUAL(rows_push(ref, TB, once, 3, sum, 1, optim_lr(&o.optim, 0, 100), &err), 0);
    CU_ASSERT(rows_match(ref, TB, TB_DIM, all, 4, (const float *)cap.p));
    /* a push of step 0 now is one of a step that is over */
    rows_req(s, &cap, WIRE_PUSH_ROWS, 0, 0, TB, 0, ids0, 2, g0, 2 * TB_DIM);
    EXPECT_ERROR(&cap, 23, WIRE_E_STATE, "but the rows are at step 1");
    server_destroy(&s);
    rows_destroy(&ref);
}

/* ASP, 1 server, 2 trainers, SGD: each push is applied when it arrives
 * (row 2 gets -lr * g0, then -lr * g1, without any end of step), a pull
 * answers at once whatever its step. */
static void test_rows_asp(void)
{
    param_table_t t = table_of(10);
    server_opts_t o = rows_opts(&t, 0, 1, 2, CONS_ASP, "sgd");
    err_t err;
    server_t *s = server_new(&o, &err);
    rows_t *ref = rows_ref(&o);
    CU_ASSERT_FATAL(s != NULL && ref != NULL);
    const uint64_t id = 2;
    const float g0[TB_DIM] = {1, 2, 3, 4}, g1[TB_DIM] = {-8, 0.5f, 0, 16};
    const double lr = optim_lr(&o.optim, 0, 100);
    cap_t cap = {0};
    rows_req(s, &cap, WIRE_PUSH_ROWS, 0, 0, TB, 0, &id, 1, g0, TB_DIM);
    rows_req(s, &cap, WIRE_PULL_ROWS, 1, 5, TB, 0, &id, 1, NULL, 0);
    CU_ASSERT_EQUAL_FATAL(cap.n, 1);
    CU_ASSERT_EQUAL(rows_push(ref, TB, &id, 1, g0, 1, lr, &err), 0);
    CU_ASSERT(rows_match(ref, TB, TB_DIM, &id, 1, (const float *)cap.p));
    rows_req(s, &cap, WIRE_PUSH_ROWS, 1, 0, TB, 0, &id, 1, g1, TB_DIM);
    rows_req(s, &cap, WIRE_PULL_ROWS, 0, 0, TB, 0, &id, 1, NULL, 0);
    CU_ASSERT_EQUAL_FATAL(cap.n, 2);
    CU_ASSERT_EQUAL(rows_push(ref, TB, &id, 1, g1, 1, lr, &err), 0);
    CU_ASSERT(rows_match(ref, TB, TB_DIM, &id, 1, (const float *)cap.p));
    float init[TB_DIM];
    CU_ASSERT_EQUAL(rows_initial(ref, TB, id, init, &err), 0);
    for (int j = 0; j < TB_DIM; j++)
        CU_ASSERT(fabsf(((const float *)cap.p)[j] - (init[j] - 0.1f * (g0[j] + g1[j]))) < 1e-5f);
    server_destroy(&s);
    rows_destroy(&ref);
}

/* BSP over real servers: 2 servers, 2 trainers (clients) with overlapping
 * rows: after both push and end step 0, both pull step 1 and see rows
 * equal to a store given the trainers' summed gradients once; STATS
 * counts 1 push piece per trainer per server that got rows. */
static void test_rows_bsp_clients(void)
{
    param_table_t t = table_of(10);
    srv_t v[2];
    const char *eps[2];
    server_opts_t o;
    for (int s = 0; s < 2; s++) {
        o = rows_opts(&t, s, 2, 2, CONS_BSP, "rowwise_adagrad");
        CU_ASSERT_FATAL(srv_start(&v[s], &o, 10000) == 0);
        eps[s] = v[s].ep;
    }
    client_t *c[2] = {cli(0, 2, eps, 10, WIRE_F32, 5000), cli(1, 2, eps, 10, WIRE_F32, 5000)};
    rows_t *ref = rows_ref(&o);
    CU_ASSERT_FATAL(c[0] && c[1] && ref);
    enum { N = 40 };
    uint64_t ids[2][N], all[N + 20];
    float g[2][N * TB_DIM], sum[(N + 20) * TB_DIM] = {0};
    for (int i = 0; i < N + 20; i++)
        all[i] = (uint64_t)i * 7;
    for (int k = 0; k < 2; k++) /* trainer 0: all[0, 40), trainer 1: all[20, 60) backwards */
        for (int i = 0; i < N; i++) {
            int at = k ? N + 19 - i : i;
            ids[k][i] = all[at];
            for (int j = 0; j < TB_DIM; j++) {
                g[k][i * TB_DIM + j] = (float)((i + j + k) % 7) - 2.5f;
                sum[at * TB_DIM + j] += g[k][i * TB_DIM + j];
            }
        }
    err_t err;
    for (int k = 1; k >= 0; k--) {
        client_set_step(c[k], 0);
        CU_ASSERT_EQUAL(client_push_rows(c[k], TB, TB_DIM, ids[k], N, g[k], &err), 0);
        CU_ASSERT_EQUAL(client_push_rows_end(c[k], &err), 0);
    }
    CU_ASSERT_EQUAL(rows_push(ref, TB, all, N + 20, sum, 1, optim_lr(&o.optim, 0, 100), &err), 0);
    float got[(N + 20) * TB_DIM];
    for (int k = 0; k < 2; k++) {
        CU_ASSERT_EQUAL_FATAL(client_pull_rows(c[k], TB, TB_DIM, all, N + 20, 1, got, &err), 0);
        CU_ASSERT(rows_match(ref, TB, TB_DIM, all, N + 20, got));
    }
    client_stats_t st;
    CU_ASSERT_EQUAL(client_stats(c[0], &st, &err), 0);
    CU_ASSERT_EQUAL(st.rows, N + 20);
    CU_ASSERT_EQUAL(st.pushes, 4);
    client_fail(c[0]);
    for (int s = 0; s < 2; s++)
        CU_ASSERT_EQUAL(srv_join(&v[s]), 0);
    client_destroy(&c[0]);
    client_destroy(&c[1]);
    rows_destroy(&ref);
}

int test_client_register(void)
{
    CU_pSuite s = CU_add_suite("client", NULL, NULL);
    if (!s || !CU_add_test(s, "pull", test_pull) ||
        !CU_add_test(s, "push_pieces", test_push_pieces) ||
        !CU_add_test(s, "barrier", test_barrier) ||
        !CU_add_test(s, "silent_server", test_silent_server) ||
        !CU_add_test(s, "halt_stopping", test_halt_stopping) ||
        !CU_add_test(s, "halt_lost", test_halt_lost) || !CU_add_test(s, "bad_stats", test_bad_stats) ||
        !CU_add_test(s, "rows_pull_push", test_rows_pull_push) ||
        !CU_add_test(s, "rows_routed", test_rows_routed) ||
        !CU_add_test(s, "rows_refused", test_rows_refused) ||
        !CU_add_test(s, "rows_bsp", test_rows_bsp) || !CU_add_test(s, "rows_asp", test_rows_asp) ||
        !CU_add_test(s, "rows_bsp_clients", test_rows_bsp_clients))
        return -1;
    return 0;
}
