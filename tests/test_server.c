/* test_server.c - the parameter server's logic through an in-memory
 * transport (a send callback that records replies): BSP sums in trainer
 * order and holds pulls until the step's update, ASP applies every push at
 * once, SSP blocks a fast trainer's pull and releases it when the slowest
 * catches up; malformed requests get ERROR and change nothing. Then a live
 * server over TCP, driven through the transport module. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ps/server.h"
#include "tests.h"
#include "common/net/transport.h"
#include "common/net/wire.h"

#define MAXR 32

typedef struct {
    int n;
    char peer[MAXR][16];
    wire_hdr_t h[MAXR];
    float payload[MAXR][64];
    size_t plen[MAXR];
} capture_t;

static int capture_send(void *ctx, const tframe_t *f, int n, int zc)
{
    (void)zc;
    capture_t *c = ctx;
    if (c->n == MAXR)
        return -1;
    int i = c->n++;
    snprintf(c->peer[i], sizeof c->peer[i], "%.*s", (int)f[0].size, (const char *)f[0].data);
    int code;
    err_t err;
    if (wire_decode(f[1].data, f[1].size, &c->h[i], &code, &err) != 0)
        return -1;
    c->plen[i] = n > 2 ? f[2].size : 0;
    if (n > 2 && f[2].size <= sizeof c->payload[i])
        memcpy(c->payload[i], f[2].data, f[2].size);
    return 0;
}

static param_table_t table_of(size_t n)
{
    param_table_t t;
    memset(&t, 0, sizeof t);
    int shape[1] = {(int)n};
    err_t err;
    param_spec_t *p = params_add(&t, "w", 1, shape, INIT_GLOROT_UNIFORM, &err);
    p->fan_in = p->fan_out = 4;
    return t;
}

static server_t *mk(param_table_t *t, int T, consistency_t c, int K)
{
    server_opts_t o = {.index = 0, .n_servers = 1, .n_trainers = T, .consistency = c,
                       .staleness = K, .total_steps = 100, .seed = 3, .table = t,
                       .optim = {.kind = optim_find("sgd"), .lr = 1.0}};
    err_t err;
    return server_new(&o, &err);
}

/* Sends header h and payload (len bytes) from trainer h->sender (peer
 * name "tN"); the server answers through fn(ctx, ...). */
static int send_to(server_t *s, server_send_fn fn, void *ctx, const wire_hdr_t *h,
                   const void *payload, size_t len)
{
    uint8_t buf[WIRE_HDR_MAX];
    int n = wire_encode(h, buf, sizeof buf);
    char peer[8];
    snprintf(peer, sizeof peer, "t%d", (int)h->sender);
    err_t err;
    return server_handle(s, (const uint8_t *)peer, strlen(peer), buf, (size_t)n, payload, len, 0,
                         fn, ctx, &err);
}

/* Sends one request of keys [b, e) from trainer `who`. */
static int req_to(server_t *s, server_send_fn fn, void *ctx, int who, int type, int64_t clock,
                  uint64_t b, uint64_t e, const float *payload)
{
    wire_hdr_t h;
    wire_hdr_init(&h, type, who);
    h.clock = clock;
    h.begin = b;
    h.end = e;
    h.count = payload ? e - b : 0;
    return send_to(s, fn, ctx, &h, payload, payload ? (e - b) * sizeof(float) : 0);
}

/* The same, with the answers recorded in cap. */
static int req(server_t *s, capture_t *cap, int who, int type, int64_t clock, uint64_t b,
               uint64_t e, const float *payload)
{
    return req_to(s, capture_send, cap, who, type, clock, b, e, payload);
}

static void test_bsp_order(void)
{
    param_table_t t = table_of(4);
    server_t *s = mk(&t, 3, CONS_BSP, 0);
    CU_ASSERT_FATAL(s != NULL);
    size_t b, e;
    float p0[4];
    memcpy(p0, server_params(s, &b, &e), sizeof p0);
    capture_t cap = {0};
    /* float addition is not associative: 1e8 + (-1e8) + 1 = 1 in trainer
     * order, but 1 + 1e8 - 1e8 = 0 in this arrival order */
    float g0[4] = {1e8f, 0, 0, 0}, g1[4] = {-1e8f, 0, 0, 0}, g2[4] = {1, 2, 3, 4};
    /* every trainer pushes the step in the same two pieces, [0,2) and [2,4) */
    CU_ASSERT(req(s, &cap, 2, WIRE_PUSH, 0, 0, 2, g2) == 0);
    CU_ASSERT(req(s, &cap, 2, WIRE_PUSH, 0, 2, 4, g2 + 2) == 0);
    CU_ASSERT(req(s, &cap, 0, WIRE_PUSH, 0, 2, 4, g0 + 2) == 0);
    CU_ASSERT(req(s, &cap, 0, WIRE_PUSH, 0, 0, 2, g0) == 0);
    /* trainer 2 already wants step 1: it must wait for the update */
    CU_ASSERT(req(s, &cap, 2, WIRE_PULL, 1, 0, 4, NULL) == 0);
    CU_ASSERT_EQUAL(cap.n, 0);
    CU_ASSERT_EQUAL(server_version(s), 0);
    /* a push for another step is refused */
    CU_ASSERT(req(s, &cap, 1, WIRE_PUSH, 1, 0, 2, g1) == 0);
    CU_ASSERT_EQUAL(cap.n, 1);
    CU_ASSERT_EQUAL(cap.h[0].type, WIRE_ERROR);
    CU_ASSERT_EQUAL(cap.h[0].status, WIRE_E_STATE);
    /* so is a piece that cuts across the others' pieces */
    CU_ASSERT(req(s, &cap, 1, WIRE_PUSH, 0, 1, 3, g1) == 0);
    CU_ASSERT_EQUAL(cap.n, 2);
    CU_ASSERT_EQUAL(cap.h[1].type, WIRE_ERROR);
    CU_ASSERT_EQUAL(cap.h[1].status, WIRE_E_STATE);
    size_t bb, ee;
    CU_ASSERT(memcmp(server_params(s, &bb, &ee), p0, sizeof p0) == 0);
    CU_ASSERT(req(s, &cap, 1, WIRE_PUSH, 0, 0, 2, g1) == 0);
    CU_ASSERT_EQUAL(server_version(s), 0);
    /* [0,2) is complete and already applied, before the step is, and the
     * waiting pull gets that piece at once */
    CU_ASSERT(server_params(s, &bb, &ee)[0] == p0[0] - 1.0f);
    CU_ASSERT_EQUAL_FATAL(cap.n, 3);
    CU_ASSERT_EQUAL(cap.h[2].type, WIRE_PULL_REPLY);
    CU_ASSERT(cap.h[2].begin == 0 && cap.h[2].end == 2 && cap.h[2].clock == 1);
    CU_ASSERT(cap.payload[2][0] == p0[0] - 1.0f);
    CU_ASSERT(req(s, &cap, 1, WIRE_PUSH, 0, 2, 4, g1 + 2) == 0);
    CU_ASSERT_EQUAL(server_version(s), 1);
    /* ... and the rest of its step when the step completes */
    CU_ASSERT_EQUAL_FATAL(cap.n, 4);
    CU_ASSERT_EQUAL(cap.h[3].type, WIRE_PULL_REPLY);
    CU_ASSERT_STRING_EQUAL(cap.peer[3], "t2");
    CU_ASSERT(cap.h[3].begin == 2 && cap.h[3].end == 4 && cap.h[3].clock == 1);
    const float *p = server_params(s, &b, &e);
    CU_ASSERT_EQUAL(p[0], p0[0] - 1.0f); /* trainer order: exactly 1 */
    CU_ASSERT_EQUAL(p[3], p0[3] - 4.0f);
    CU_ASSERT(memcmp(cap.payload[3], p + 2, 2 * sizeof(float)) == 0);
    /* a pull for the current step is answered at once, whole */
    CU_ASSERT(req(s, &cap, 0, WIRE_PULL, 1, 0, 4, NULL) == 0);
    CU_ASSERT_EQUAL_FATAL(cap.n, 5);
    CU_ASSERT(cap.h[4].begin == 0 && cap.h[4].end == 4);
    server_destroy(&s);
}

static void test_asp(void)
{
    param_table_t t = table_of(4);
    server_t *s = mk(&t, 2, CONS_ASP, 0);
    capture_t cap = {0};
    float g[4] = {1, 1, 1, 1};
    CU_ASSERT(req(s, &cap, 0, WIRE_PUSH, 0, 0, 4, g) == 0);
    CU_ASSERT_EQUAL(server_version(s), 1);
    CU_ASSERT(req(s, &cap, 0, WIRE_PUSH, 1, 0, 4, g) == 0);
    CU_ASSERT_EQUAL(server_version(s), 2);
    CU_ASSERT(req(s, &cap, 0, WIRE_PULL, 7, 0, 4, NULL) == 0); /* never waits */
    CU_ASSERT_EQUAL(cap.n, 1);
    CU_ASSERT_EQUAL(cap.h[0].type, WIRE_PULL_REPLY);
    server_destroy(&s);
}

static void test_ssp(void)
{
    param_table_t t = table_of(4);
    server_t *s = mk(&t, 2, CONS_SSP, 1);
    capture_t cap = {0};
    float g[4] = {1, 1, 1, 1};
    /* trainer 0 runs ahead: steps 0 and 1 done, trainer 1 at 0 */
    CU_ASSERT(req(s, &cap, 0, WIRE_PUSH, 0, 0, 4, g) == 0);
    CU_ASSERT(req(s, &cap, 0, WIRE_PULL, 1, 0, 4, NULL) == 0); /* 0 >= 1 - 1: served */
    CU_ASSERT_EQUAL(cap.n, 1);
    CU_ASSERT(req(s, &cap, 0, WIRE_PUSH, 1, 0, 4, g) == 0);
    CU_ASSERT(req(s, &cap, 0, WIRE_PULL, 2, 0, 4, NULL) == 0); /* 0 < 2 - 1: waits */
    CU_ASSERT_EQUAL(cap.n, 1);
    CU_ASSERT(req(s, &cap, 1, WIRE_PULL, 0, 0, 4, NULL) == 0); /* the slow one is served */
    CU_ASSERT_EQUAL(cap.n, 2);
    CU_ASSERT_STRING_EQUAL(cap.peer[1], "t1");
    CU_ASSERT(req(s, &cap, 1, WIRE_PUSH, 0, 0, 4, g) == 0); /* min clock 1: release */
    CU_ASSERT_EQUAL_FATAL(cap.n, 3);
    CU_ASSERT_STRING_EQUAL(cap.peer[2], "t0");
    CU_ASSERT_EQUAL(cap.h[2].type, WIRE_PULL_REPLY);
    CU_ASSERT_EQUAL(server_version(s), 3);
    server_destroy(&s);
}

/* Records the pull replies of a large shard: ranges, and whether each
 * payload equals the server's parameters there. */
typedef struct {
    const server_t *s;
    int n, errors, types_bad;
    uint64_t b[8], e[8];
    int same[8];
} pieces_t;

static int pieces_send(void *ctx, const tframe_t *f, int n, int zc)
{
    (void)zc;
    pieces_t *c = ctx;
    wire_hdr_t h;
    int code;
    err_t err;
    if (wire_decode(f[1].data, f[1].size, &h, &code, &err) != 0)
        return -1;
    if (h.type == WIRE_ERROR) {
        c->errors++;
        return 0;
    }
    if (h.type != WIRE_PULL_REPLY || c->n == 8) {
        c->types_bad++;
        return 0;
    }
    size_t b, e;
    const float *p = server_params(c->s, &b, &e);
    c->b[c->n] = h.begin;
    c->e[c->n] = h.end;
    c->same[c->n] = n > 2 && h.end <= e && f[2].size == (h.end - h.begin) * sizeof(float) &&
                    memcmp(f[2].data, p + h.begin, f[2].size) == 0;
    c->n++;
    return 0;
}

/* Large vectors in pieces: a pull of a shard above WIRE_PIECE_FLOATS is
 * answered in pieces that cover it in order; BSP takes a step pushed in
 * pieces by two trainers and gives the same parameters as whole pushes; a
 * step in more than WIRE_PIECES_MAX pieces is refused; wire_piece_floats
 * keeps any shard within that many pieces. */
static void test_pieces(void)
{
    const size_t P = WIRE_PIECE_FLOATS, N = 2 * P + 5;
    param_table_t t1 = table_of(N), t2 = table_of(N);
    server_t *whole = mk(&t1, 2, CONS_BSP, 0), *cut = mk(&t2, 2, CONS_BSP, 0);
    CU_ASSERT_FATAL(whole && cut);
    float *g = malloc(N * sizeof *g);
    CU_ASSERT_FATAL(g != NULL);
    for (size_t i = 0; i < N; i++)
        g[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
    pieces_t pw = {.s = whole}, pc = {.s = cut};
    for (int t = 0; t < 2; t++) {
        CU_ASSERT(req_to(whole, pieces_send, &pw, t, WIRE_PUSH, 0, 0, N, g) == 0);
        for (size_t b = 0; b < N; b += P)
            CU_ASSERT(req_to(cut, pieces_send, &pc, t, WIRE_PUSH, 0, b, b + P < N ? b + P : N,
                             g + b) == 0);
    }
    CU_ASSERT_EQUAL(server_version(whole), 1);
    CU_ASSERT_EQUAL(server_version(cut), 1);
    size_t b, e;
    CU_ASSERT(memcmp(server_params(whole, &b, &e), server_params(cut, &b, &e),
                     N * sizeof(float)) == 0);
    CU_ASSERT_EQUAL(pw.errors + pc.errors + pw.types_bad + pc.types_bad, 0);
    /* the pull of the whole shard comes in three pieces, in order */
    CU_ASSERT(req_to(cut, pieces_send, &pc, 0, WIRE_PULL, 1, 0, N, NULL) == 0);
    CU_ASSERT_EQUAL_FATAL(pc.n, 3);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(pc.b[i], i * P);
        CU_ASSERT_EQUAL(pc.e[i], i < 2 ? (i + 1) * P : N);
        CU_ASSERT(pc.same[i]);
    }
    server_destroy(&whole);
    server_destroy(&cut);
    /* one piece too many in a step */
    param_table_t t3 = table_of(WIRE_PIECES_MAX + 1);
    server_t *s = mk(&t3, 2, CONS_BSP, 0);
    pieces_t p3 = {.s = s};
    for (int i = 0; i < WIRE_PIECES_MAX; i++)
        CU_ASSERT(req_to(s, pieces_send, &p3, 0, WIRE_PUSH, 0, (uint64_t)i, (uint64_t)i + 1, g) == 0);
    CU_ASSERT_EQUAL(p3.errors, 0);
    CU_ASSERT(req_to(s, pieces_send, &p3, 0, WIRE_PUSH, 0, WIRE_PIECES_MAX, WIRE_PIECES_MAX + 1,
                     g) == 0);
    CU_ASSERT_EQUAL(p3.errors, 1);
    CU_ASSERT_EQUAL(server_version(s), 0);
    server_destroy(&s);
    free(g);
    /* the cut: 1 MiB pieces, larger ones only for a shard that would
     * otherwise need more than half the limit */
    CU_ASSERT_EQUAL(wire_piece_floats(0), P);
    CU_ASSERT_EQUAL(wire_piece_floats(N), P);
    CU_ASSERT_EQUAL(wire_piece_floats((size_t)P * WIRE_PIECES_MAX / 2), P);
    size_t big[] = {(size_t)P * WIRE_PIECES_MAX / 2 + 1, (size_t)1 << 31, ((size_t)1 << 33) + 3};
    for (int i = 0; i < 3; i++) {
        size_t piece = wire_piece_floats(big[i]);
        CU_ASSERT(piece > P);
        CU_ASSERT((big[i] + piece - 1) / piece <= WIRE_PIECES_MAX / 2);
    }
}

static void test_malformed(void)
{
    param_table_t t = table_of(6);
    server_t *s = mk(&t, 2, CONS_BSP, 0);
    size_t b, e;
    float before[6];
    memcpy(before, server_params(s, &b, &e), sizeof before);
    capture_t cap = {0};
    err_t err;
    const uint8_t junk[] = {0xc1, 0xff, 0x00, 0x13};
    CU_ASSERT(server_handle(s, (const uint8_t *)"t0", 2, junk, sizeof junk, NULL, 0, 0,
                            capture_send, &cap, &err) == 0);
    float g[8] = {9, 9, 9, 9, 9, 9, 9, 9};
    CU_ASSERT(req(s, &cap, 0, WIRE_PUSH, 0, 4, 8, g) == 0);  /* outside the shard */
    CU_ASSERT(req(s, &cap, 5, WIRE_PUSH, 0, 0, 6, g) == 0);  /* no such trainer */
    /* a payload shorter than the header says */
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_PUSH, 0);
    h.begin = 0;
    h.end = 6;
    h.count = 6;
    uint8_t hb[WIRE_HDR_MAX];
    int hl = wire_encode(&h, hb, sizeof hb);
    CU_ASSERT(server_handle(s, (const uint8_t *)"t0", 2, hb, (size_t)hl, (const uint8_t *)g,
                            5 * sizeof(float), 0, capture_send, &cap, &err) == 0);
    /* another protocol version */
    h.version = 2;
    hl = wire_encode(&h, hb, sizeof hb);
    CU_ASSERT(server_handle(s, (const uint8_t *)"t0", 2, hb, (size_t)hl, (const uint8_t *)g,
                            6 * sizeof(float), 0, capture_send, &cap, &err) == 0);
    /* a frame too many */
    h.version = 1;
    hl = wire_encode(&h, hb, sizeof hb);
    CU_ASSERT(server_handle(s, (const uint8_t *)"t0", 2, hb, (size_t)hl, (const uint8_t *)g,
                            6 * sizeof(float), 1, capture_send, &cap, &err) == 0);
    int want[] = {WIRE_E_MALFORMED, WIRE_E_RANGE, WIRE_E_RANGE, WIRE_E_LENGTH, WIRE_E_VERSION,
                  WIRE_E_MALFORMED};
    CU_ASSERT_EQUAL_FATAL(cap.n, 6);
    for (int i = 0; i < 6; i++) {
        CU_ASSERT_EQUAL(cap.h[i].type, WIRE_ERROR);
        CU_ASSERT_EQUAL(cap.h[i].status, want[i]);
        CU_ASSERT(cap.plen[i] > 0); /* with a text saying why */
    }
    CU_ASSERT(memcmp(before, server_params(s, &b, &e), sizeof before) == 0);
    CU_ASSERT_EQUAL(server_version(s), 0);
    server_destroy(&s);
}

/* The statuses of CHECKPOINT and SHUTDOWN are named (wire.h): any other
 * is refused with ERROR malformed and changes nothing. STATS counts in 64
 * bits what happened, errors too. */
static void test_bad_status(void)
{
    param_table_t t = table_of(4);
    server_t *s = mk(&t, 2, CONS_ASP, 0);
    capture_t cap = {0};
    static const int types[] = {WIRE_CHECKPOINT, WIRE_SHUTDOWN};
    for (int j = 0; j < 2; j++) {
        wire_hdr_t h;
        wire_hdr_init(&h, types[j], 0);
        h.status = types[j] == WIRE_CHECKPOINT ? WIRE_CKPT_WRITE_DELTA + 1 : 3;
        CU_ASSERT(send_to(s, capture_send, &cap, &h, NULL, 0) == 0);
        CU_ASSERT_EQUAL_FATAL(cap.n, j + 1);
        CU_ASSERT_EQUAL(cap.h[j].type, WIRE_ERROR);
        CU_ASSERT_EQUAL(cap.h[j].status, WIRE_E_MALFORMED);
    }
    CU_ASSERT(!server_finished(s));
    float g[4] = {1, 1, 1, 1};
    CU_ASSERT(req(s, &cap, 0, WIRE_PUSH, 0, 0, 4, g) == 0);
    CU_ASSERT(req(s, &cap, 1, WIRE_PUSH, 0, 0, 4, g) == 0);
    CU_ASSERT(req(s, &cap, 1, WIRE_STATS, 0, 0, 0, NULL) == 0);
    CU_ASSERT_EQUAL_FATAL(cap.n, 3);
    wire_stats_t st;
    err_t err;
    CU_ASSERT_FATAL(wire_stats_decode(cap.payload[2], cap.plen[2], &st, &err) == 0);
    CU_ASSERT(st.pushes == 2 && st.updates == 2 && st.version == 2 && st.errors == 2);
    CU_ASSERT(st.lost == 0 && st.first_lost == -1 && st.next_lead == 0 && st.partial == 0);
    CU_ASSERT_EQUAL(cap.h[2].clock, 2);
    server_destroy(&s);
}

typedef struct {
    server_t *s;
    transport_t *t;
    int rc;
    err_t err;
} live_t;

/* SHUTDOWN waits for the end of the job: it is answered once every trainer
 * said goodbye or was lost, with the number lost as its status; a request
 * to stop (status 2) is answered at once. */
static void test_goodbye(void)
{
    param_table_t t = table_of(4);
    server_t *s = mk(&t, 3, CONS_ASP, 0);
    capture_t cap = {0};
    err_t err;
    CU_ASSERT(req(s, &cap, 1, WIRE_SHUTDOWN, 0, 0, 0, NULL) == 0);
    CU_ASSERT_EQUAL(cap.n, 0);
    CU_ASSERT(!server_finished(s));
    /* trainer 2 asks the job to stop: answered now, and it is no goodbye */
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_SHUTDOWN, 2);
    h.status = WIRE_SHUTDOWN_ASK_STOP;
    uint8_t buf[WIRE_HDR_MAX];
    int n = wire_encode(&h, buf, sizeof buf);
    CU_ASSERT(server_handle(s, (const uint8_t *)"t2", 2, buf, (size_t)n, NULL, 0, 0, capture_send,
                            &cap, &err) == 0);
    CU_ASSERT_EQUAL_FATAL(cap.n, 1);
    CU_ASSERT_STRING_EQUAL(cap.peer[0], "t2");
    CU_ASSERT_EQUAL(cap.h[0].type, WIRE_SHUTDOWN);
    CU_ASSERT(!server_finished(s));
    /* trainer 0 says goodbye; trainer 2 falls silent and is lost */
    CU_ASSERT(req(s, &cap, 0, WIRE_SHUTDOWN, 0, 0, 0, NULL) == 0);
    CU_ASSERT_EQUAL(cap.n, 1);
    CU_ASSERT(server_check_trainers(s, 1000, capture_send, &cap, &err) == 0); /* not yet */
    CU_ASSERT_EQUAL(cap.n, 1);
    usleep(30 * 1000);
    CU_ASSERT(server_check_trainers(s, 20, capture_send, &cap, &err) == 1);
    CU_ASSERT(server_finished(s));
    CU_ASSERT_EQUAL_FATAL(cap.n, 3);
    for (int i = 1; i < 3; i++) {
        CU_ASSERT_EQUAL(cap.h[i].type, WIRE_SHUTDOWN);
        CU_ASSERT_EQUAL(cap.h[i].status, 1); /* one trainer lost */
    }
    CU_ASSERT(strcmp(cap.peer[1], "t0") == 0 || strcmp(cap.peer[2], "t0") == 0);
    CU_ASSERT(strcmp(cap.peer[1], "t1") == 0 || strcmp(cap.peer[2], "t1") == 0);
    /* a late goodbye is answered at once */
    CU_ASSERT(req(s, &cap, 1, WIRE_SHUTDOWN, 0, 0, 0, NULL) == 0);
    CU_ASSERT_EQUAL_FATAL(cap.n, 4);
    CU_ASSERT_EQUAL(cap.h[3].status, 1);
    server_destroy(&s);
}

/* Sends BARRIER from trainer `who` with one value (a float32 hi, lo pair). */
static int barrier(server_t *s, capture_t *cap, int who, float v)
{
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_BARRIER, who);
    h.count = 2;
    float pair[2] = {v, 0};
    return send_to(s, capture_send, cap, &h, pair, sizeof pair);
}

/* A stop while a trainer waits in the epoch's barrier: trainer 0 stops at
 * the start of a step and enters no barrier after that, so the trainer that
 * ran one step ahead into the barrier is answered ERROR stopping (it would
 * otherwise wait for ever, and trainer 0 for its goodbye); so is a barrier
 * entered later. Without a stop, the barrier waits for both and sums. */
static void test_stop_barrier(void)
{
    param_table_t t = table_of(4);
    server_t *s = mk(&t, 2, CONS_BSP, 0);
    capture_t cap = {0};
    float g[4] = {1, 1, 1, 1};
    CU_ASSERT(barrier(s, &cap, 1, 2.0f) == 0);
    CU_ASSERT_EQUAL(cap.n, 0); /* waits for trainer 0 */
    CU_ASSERT(barrier(s, &cap, 0, 3.0f) == 0);
    CU_ASSERT_EQUAL_FATAL(cap.n, 2);
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL(cap.h[i].type, WIRE_BARRIER);
        CU_ASSERT_EQUAL(cap.payload[i][0], 5.0f);
    }
    /* step 0 done by both; trainer 1 runs step 1 and enters the barrier */
    CU_ASSERT(req(s, &cap, 0, WIRE_PUSH, 0, 0, 4, g) == 0);
    CU_ASSERT(req(s, &cap, 1, WIRE_PUSH, 0, 0, 4, g) == 0);
    CU_ASSERT(req(s, &cap, 1, WIRE_PULL, 1, 0, 4, NULL) == 0);
    CU_ASSERT(req(s, &cap, 1, WIRE_PUSH, 1, 0, 4, g) == 0);
    CU_ASSERT(barrier(s, &cap, 1, 2.0f) == 0);
    CU_ASSERT_EQUAL_FATAL(cap.n, 3); /* the pull's reply only */
    /* trainer 0, asked to stop, stops the job at step 1 */
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_CHECKPOINT, 0);
    h.status = WIRE_CKPT_STOP_AT;
    h.clock = 1;
    CU_ASSERT(send_to(s, capture_send, &cap, &h, NULL, 0) == 0);
    CU_ASSERT_EQUAL_FATAL(cap.n, 5);
    int answered = 0;
    for (int i = 3; i < 5; i++)
        if (strcmp(cap.peer[i], "t1") == 0) {
            answered = 1;
            CU_ASSERT_EQUAL(cap.h[i].type, WIRE_ERROR);
            CU_ASSERT_EQUAL(cap.h[i].status, WIRE_E_STOPPING);
            CU_ASSERT_EQUAL(cap.h[i].clock, 1);
        } else {
            CU_ASSERT_EQUAL(cap.h[i].type, WIRE_CHECKPOINT);
        }
    CU_ASSERT(answered);
    /* a barrier entered after the stop is refused at once */
    CU_ASSERT(barrier(s, &cap, 1, 2.0f) == 0);
    CU_ASSERT_EQUAL_FATAL(cap.n, 6);
    CU_ASSERT_EQUAL(cap.h[5].type, WIRE_ERROR);
    CU_ASSERT_EQUAL(cap.h[5].status, WIRE_E_STOPPING);
    server_destroy(&s);
}

/* Trainer 0 lost: a pull reply tells the lowest trainer left that it leads
 * now (status bit 2) and nobody else; STATS says who leads and whether
 * trainer 0 said goodbye. */
static void test_lead_lost(void)
{
    param_table_t t = table_of(4);
    server_t *s = mk(&t, 3, CONS_ASP, 0);
    capture_t cap = {0};
    err_t err;
    for (int who = 0; who < 3; who++)
        CU_ASSERT(req(s, &cap, who, WIRE_PULL, 0, 0, 4, NULL) == 0);
    CU_ASSERT_EQUAL_FATAL(cap.n, 3);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(cap.h[i].status, 0);
    usleep(300 * 1000);
    /* trainers 1 and 2 speak; trainer 0 stays silent and is lost (a timeout
     * of 150 ms: room for a slow machine between the two steps) */
    CU_ASSERT(req(s, &cap, 1, WIRE_CLOCK, 0, 0, 0, NULL) == 0);
    CU_ASSERT(req(s, &cap, 2, WIRE_CLOCK, 0, 0, 0, NULL) == 0);
    CU_ASSERT(server_check_trainers(s, 150, capture_send, &cap, &err) == 1);
    cap.n = 0;
    CU_ASSERT(req(s, &cap, 2, WIRE_PULL, 0, 0, 4, NULL) == 0);
    CU_ASSERT(req(s, &cap, 1, WIRE_PULL, 0, 0, 4, NULL) == 0);
    CU_ASSERT_EQUAL_FATAL(cap.n, 2);
    CU_ASSERT_STRING_EQUAL(cap.peer[0], "t2");
    CU_ASSERT_EQUAL(cap.h[0].status, 0);
    CU_ASSERT_STRING_EQUAL(cap.peer[1], "t1");
    CU_ASSERT_EQUAL(cap.h[1].status, WIRE_PULL_TAKE_LEAD);
    CU_ASSERT(req(s, &cap, 1, WIRE_STATS, 0, 0, 0, NULL) == 0);
    CU_ASSERT_EQUAL_FATAL(cap.n, 3);
    CU_ASSERT_EQUAL(cap.h[2].elem, WIRE_MSGPACK);
    CU_ASSERT_EQUAL(cap.h[2].count, cap.plen[2]);
    wire_stats_t st;
    CU_ASSERT_FATAL(wire_stats_decode(cap.payload[2], cap.plen[2], &st, &err) == 0);
    CU_ASSERT_EQUAL(st.lost, 1);       /* trainers lost */
    CU_ASSERT_EQUAL(st.first_lost, 0); /* the first: trainer 0 */
    CU_ASSERT_EQUAL(st.lead_done, 0);  /* trainer 0 said no goodbye */
    CU_ASSERT_EQUAL(st.next_lead, 1);  /* trainer 1 leads */
    CU_ASSERT_EQUAL(st.pulls, 5);
    CU_ASSERT_EQUAL(st.pushes, 0);
    CU_ASSERT_EQUAL(st.version, 0);
    server_destroy(&s);
}

static void *live_run(void *arg)
{
    live_t *l = arg;
    l->rc = server_run(l->s, l->t, 10000, NULL, NULL, &l->err);
    return NULL;
}

/* A live server on TCP loopback: a malformed push gets ERROR and leaves the
 * parameters as they were; SHUTDOWN from every trainer ends it. */
static void test_live_tcp(void)
{
    param_table_t t = table_of(6);
    live_t l = {.s = mk(&t, 2, CONS_BSP, 0)};
    char ep[256];
    err_t err;
    l.t = transport_listen("127.0.0.1", ep, sizeof ep, &err);
    CU_ASSERT_FATAL(l.t != NULL);
    CU_ASSERT(strncmp(ep, "tcp://127.0.0.1:", 16) == 0);
    size_t b, e;
    float before[6];
    memcpy(before, server_params(l.s, &b, &e), sizeof before);
    pthread_t th;
    CU_ASSERT_FATAL(pthread_create(&th, NULL, live_run, &l) == 0);
    transport_t *c = transport_connect(ep, &err);
    CU_ASSERT_FATAL(c != NULL);
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_PUSH, 0);
    h.begin = 0;
    h.end = 6;
    h.count = 7; /* lies about its length */
    uint8_t hb[WIRE_HDR_MAX];
    float g[7] = {5, 5, 5, 5, 5, 5, 5};
    tframe_t f[2] = {{hb, (size_t)wire_encode(&h, hb, sizeof hb)}, {g, sizeof g}};
    CU_ASSERT(transport_send(c, f, 2, 2, &err) == 0);
    tmsg_t m;
    CU_ASSERT_FATAL(transport_recv(c, &m, 5000, &err) == 1);
    wire_hdr_t r;
    int code;
    CU_ASSERT(wire_decode(m.data[0], m.size[0], &r, &code, &err) == 0);
    CU_ASSERT_EQUAL(r.type, WIRE_ERROR);
    CU_ASSERT_EQUAL(r.status, WIRE_E_LENGTH);
    tmsg_close(&m);
    /* bytes that are not msgpack at all */
    tframe_t junk = {"hello", 5};
    CU_ASSERT(transport_send(c, &junk, 1, 1, &err) == 0);
    CU_ASSERT_FATAL(transport_recv(c, &m, 5000, &err) == 1);
    CU_ASSERT(wire_decode(m.data[0], m.size[0], &r, &code, &err) == 0);
    CU_ASSERT_EQUAL(r.type, WIRE_ERROR);
    CU_ASSERT_EQUAL(r.status, WIRE_E_MALFORMED);
    tmsg_close(&m);
    /* goodbyes are answered together, once both trainers said it */
    for (int who = 0; who < 2; who++) {
        wire_hdr_init(&h, WIRE_SHUTDOWN, who);
        h.req = (uint32_t)(10 + who);
        f[0].size = (size_t)wire_encode(&h, hb, sizeof hb);
        CU_ASSERT(transport_send(c, f, 1, 1, &err) == 0);
        if (who == 0)
            CU_ASSERT(transport_recv(c, &m, 300, &err) == 0);
    }
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_FATAL(transport_recv(c, &m, 5000, &err) == 1);
        CU_ASSERT(wire_decode(m.data[0], m.size[0], &r, &code, &err) == 0);
        CU_ASSERT_EQUAL(r.type, WIRE_SHUTDOWN);
        CU_ASSERT_EQUAL(r.req, (uint32_t)(10 + i));
        CU_ASSERT_EQUAL(r.status, 0);
        tmsg_close(&m);
    }
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(l.rc, 0);
    CU_ASSERT(memcmp(before, server_params(l.s, &b, &e), sizeof before) == 0);
    transport_destroy(&c);
    transport_destroy(&l.t);
    server_destroy(&l.s);
}

int test_server_register(void)
{
    CU_pSuite s = CU_add_suite("server", NULL, NULL);
    if (!s || !CU_add_test(s, "bsp_order", test_bsp_order) || !CU_add_test(s, "asp", test_asp) ||
        !CU_add_test(s, "ssp", test_ssp) || !CU_add_test(s, "malformed", test_malformed) ||
        !CU_add_test(s, "goodbye", test_goodbye) || !CU_add_test(s, "lead_lost", test_lead_lost) ||
        !CU_add_test(s, "stop_barrier", test_stop_barrier) ||
        !CU_add_test(s, "bad_status", test_bad_status) ||
        !CU_add_test(s, "pieces", test_pieces) || !CU_add_test(s, "live_tcp", test_live_tcp))
        return -1;
    return 0;
}
