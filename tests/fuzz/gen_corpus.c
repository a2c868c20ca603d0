/* gen_corpus.c - writes the seed corpus of the fuzz targets: valid headers
 * of every message type (requests and replies, in every integer encoding
 * width) for fuzz_wire, and for fuzz_server whole sessions of valid
 * messages (BSP, ASP and SSP; each shard; 1, 2 and 3 trainers; every
 * optimizer) with a few malformed ones mixed in.
 * Usage: gen_corpus DIR (writes DIR/wire/seed-* and DIR/server/seed-*). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "common/net/wire.h"
#include "common/nn/rows.h"

static const char *out_dir;
static int n_written;

/* Writes f as DIR/kind/seed-NNN and empties it. */
static void emit(const char *kind, fuzz_buf_t *f)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/seed-%03d", out_dir, kind, n_written++);
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(f->b, 1, f->n, fp) != f->n || fclose(fp) != 0) {
        fprintf(stderr, "gen_corpus: cannot write %s\n", path);
        exit(1);
    }
    f->n = 0;
}

static void mkdir_p(const char *d)
{
    if (mkdir(d, 0777) != 0 && errno != EEXIST) {
        perror(d);
        exit(1);
    }
}

static wire_hdr_t hdr(int type, int sender, int64_t clock, uint64_t b, uint64_t e, uint64_t count,
                      uint32_t req, int status)
{
    wire_hdr_t h;
    wire_hdr_init(&h, type, sender);
    h.clock = clock;
    h.begin = b;
    h.end = e;
    h.count = count;
    h.req = req;
    h.status = status;
    return h;
}

static void wire_seed(const wire_hdr_t *h, uint64_t payload_len)
{
    uint8_t b[WIRE_HDR_MAX];
    int n = wire_encode(h, b, sizeof b);
    fuzz_buf_t f = {0};
    fuzz_wire_input(&f, b, (size_t)n, payload_len);
    emit("wire", &f);
    fuzz_buf_free(&f);
}

/* STATS payloads: as servers write them (typical values, the extremes of
 * every field), a key of a later version, the widest encodings, and a few
 * malformed ones (cut short, a value out of range, a field missing). */
static void stats_seeds(void)
{
    const wire_stats_t st[3] = {
        {123456, 7890, 3, 1719, 2500000, 1719, 0, -1, 0, 1, 0, 4000, 4100, 1 << 20},
        {0, 0, 0, 0, 0, 0, 0, -1, 0, 0, 0, 0, 0, 0},
        {UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX, INT64_MAX, 2147483647,
         2147483647, 1, 1, 2147483647, UINT64_MAX, UINT64_MAX, UINT64_MAX},
    };
    fuzz_buf_t f = {0};
    uint8_t b[WIRE_STATS_MAX + 128];
    for (int j = 0; j < 3; j++) {
        int n = wire_stats_encode(&st[j], b, sizeof b);
        fuzz_wire_stats_input(&f, b, (size_t)n);
        emit("wire", &f);
        if (j == 0) {
            fuzz_wire_stats_input(&f, b, (size_t)n / 2); /* cut short */
            emit("wire", &f);
            b[0] = 0x8f; /* one more entry: a key of a later version */
            memcpy(b + n, "\xa5later\x07", 7);
            fuzz_wire_stats_input(&f, b, (size_t)n + 7);
            emit("wire", &f);
        }
    }
    /* map16, keys as str8 and values as uint64: every field, in reverse */
    static const char *const keys[14] = {"next_lead", "lead_done", "partial", "first_lost",
                                         "lost",      "version",   "busy_us", "updates",
                                         "errors",    "pulls",     "pushes",  "rows",
                                         "rows_created", "rows_bytes"};
    size_t n = 0;
    b[n++] = 0xde, b[n++] = 0, b[n++] = 14;
    for (int k = 0; k < 14; k++) {
        b[n++] = 0xd9;
        b[n++] = (uint8_t)strlen(keys[k]);
        memcpy(b + n, keys[k], strlen(keys[k]));
        n += strlen(keys[k]);
        b[n++] = 0xcf;
        memset(b + n, 0, 8);
        b[n + 7] = (uint8_t)(k == 3 ? 0 : 1);
        n += 8;
    }
    fuzz_wire_stats_input(&f, b, n);
    emit("wire", &f);
    b[3 + 2 + 9 + 1] = 0x80; /* next_lead 2^63 + 1: out of its range */
    fuzz_wire_stats_input(&f, b, n);
    emit("wire", &f);
    fuzz_buf_free(&f);
}

static void wire_seeds(void)
{
    /* requests */
    wire_hdr_t h = hdr(WIRE_PUSH, 3, 300, 0, 1000, 1000, 0xffffffffu, 0);
    wire_seed(&h, 4000);
    h = hdr(WIRE_PUSH, 1, 7, 1ull << 40, (1ull << 40) + 3, 3, 70000, 0);
    h.elem = WIRE_F16;
    wire_seed(&h, 6);
    h.elem = WIRE_BF16;
    wire_seed(&h, 6);
    h = hdr(WIRE_PULL, 0, 5, 0, 9, 0, 1, 0);
    wire_seed(&h, 0);
    h = hdr(WIRE_CLOCK, 2, 1ll << 33, 0, 0, 0, 2, 0);
    wire_seed(&h, 0);
    h = hdr(WIRE_BARRIER, 1, 0, 0, 0, 0, 3, 0);
    wire_seed(&h, 0);
    h = hdr(WIRE_STATS, 2147483647, 0, 0, 0, 0, 4, 0);
    wire_seed(&h, 0);
    h = hdr(WIRE_CHECKPOINT, 0, 12, 0, 0, 0, 5, 1);
    wire_seed(&h, 0);
    h = hdr(WIRE_SHUTDOWN, 1, 0, 0, 0, 0, 6, 1);
    wire_seed(&h, 0);
    /* replies */
    h = hdr(WIRE_PULL_REPLY, 0, INT64_MAX, 9, 17, 8, 7, 0);
    wire_seed(&h, 32);
    h = hdr(WIRE_STATS, 0, 3, 0, 0, 100, 8, 0);
    h.elem = WIRE_MSGPACK;
    wire_seed(&h, 100);
    h = hdr(WIRE_CHECKPOINT, 0, 3, 0, 9, 27, 9, 0);
    wire_seed(&h, 108);
    h = hdr(WIRE_BARRIER, 0, 3, 0, 0, 0, 10, 0);
    wire_seed(&h, 0);
    h = hdr(WIRE_ERROR, 0, 3, 0, 0, 25, 11, WIRE_E_RANGE);
    h.elem = WIRE_TEXT;
    wire_seed(&h, 25);
    h = hdr(WIRE_ERROR, 0, 3, 0, 0, 0, 12, WIRE_E_INTERNAL);
    wire_seed(&h, 0);
    /* the widest encodings: every element in a 64-bit int */
    uint8_t wide[1 + 10 * 9];
    const int64_t v[10] = {1, WIRE_PUSH, 1, 2, 3, 5, WIRE_F32, 2, 9, 0};
    wide[0] = 0x9a;
    for (int k = 0; k < 10; k++) {
        wide[1 + 9 * k] = k % 2 ? 0xcf : 0xd3;
        for (int j = 0; j < 8; j++)
            wide[2 + 9 * k + j] = (uint8_t)((uint64_t)v[k] >> (8 * (7 - j)));
    }
    fuzz_buf_t f = {0};
    fuzz_wire_input(&f, wide, sizeof wide, 8);
    emit("wire", &f);
    /* an array16 and an array32 header, and negative fixints */
    const uint8_t a16[] = {0xdc, 0x00, 0x0a, 1, 2, 0, 0, 0, 4, 1, 0, 0xd0, 0x05, 0};
    fuzz_wire_input(&f, a16, sizeof a16, 0);
    emit("wire", &f);
    const uint8_t a32[] = {0xdd, 0, 0, 0, 0x0a, 1, 8, 0xd1, 0, 1,   0,
                           0,    0, 1, 0, 0xce, 0, 0, 1,    0, 0xff};
    fuzz_wire_input(&f, a32, sizeof a32, 0);
    emit("wire", &f);
    fuzz_buf_free(&f);
    stats_seeds();
}

/* A server session under construction. */
typedef struct {
    fuzz_buf_t f;
    size_t b, e; /* the shard */
    int T;
    uint32_t req;
} sess_t;

static void sess_start(sess_t *s, unsigned cfg, unsigned cfg2)
{
    static const int trainers[4] = {2, 1, 3, 2};
    memset(s, 0, sizeof *s);
    uint8_t c[2] = {(uint8_t)cfg, (uint8_t)cfg2};
    fuzz_buf_put(&s->f, c, 2);
    int index = (cfg >> 2) & 1;
    size_t half = (FUZZ_N_PARAMS + 1) / 2;
    s->b = index ? half : 0;
    s->e = index ? FUZZ_N_PARAMS : half;
    s->T = trainers[(cfg >> 5) & 3];
}

/* Appends a message from trainer `who` with header h (raw frame). */
static void sess_msg(sess_t *s, int flags, int who, const wire_hdr_t *h, const void *payload,
                     size_t plen)
{
    uint8_t b[WIRE_HDR_MAX];
    int n = wire_encode(h, b, sizeof b);
    fuzz_server_msg(&s->f, flags, who % 3, NULL, 0, b, (size_t)n, payload, plen);
}

static void sess_req(sess_t *s, int who, int type, int64_t clock, size_t b, size_t e, int status)
{
    wire_hdr_t h = hdr(type, who, clock, b, e, 0, ++s->req, status);
    sess_msg(s, 0, who, &h, NULL, 0);
}

static void sess_push(sess_t *s, int flags, int who, int64_t clock, size_t b, size_t e)
{
    float g[FUZZ_N_PARAMS];
    for (size_t k = 0; k < e - b; k++)
        g[k] = 0.25f * (float)(k + 1) * (who + 1);
    wire_hdr_t h = hdr(WIRE_PUSH, who, clock, b, e, e - b, ++s->req, 0);
    sess_msg(s, flags, who, &h, g, (e - b) * sizeof(float));
}

/* A well-behaved job: barrier, pulls, every trainer pushes steps in two
 * pieces, a trainer that runs ahead pulls early, stats, checkpoints,
 * shutdown. */
static void session(unsigned cfg, unsigned cfg2, int malformed)
{
    sess_t s;
    sess_start(&s, cfg, cfg2);
    size_t mid = s.b + (s.e - s.b) / 2;
    for (int t = 0; t < s.T; t++)
        sess_req(&s, t, WIRE_BARRIER, 0, 0, 0, 0);
    for (int t = 0; t < s.T; t++)
        sess_req(&s, t, WIRE_PULL, 0, s.b, s.e, 0);
    for (int step = 0; step < 2; step++) {
        for (int t = 0; t < s.T; t++) {
            sess_push(&s, t == 1 ? FUZZ_UNALIGNED : 0, t, step, mid, s.e);
            if (t == 0) /* trainer 0 is ahead: it wants the next step already */
                sess_req(&s, 0, WIRE_PULL, step + 1, s.b, s.e, 0);
            sess_push(&s, 0, t, step, s.b, mid);
            sess_req(&s, t, WIRE_CLOCK, step, 0, 0, 0);
            if (malformed && t == 0) {
                /* a push for another step, one that cuts the pieces, and a
                 * reply sent to the server */
                sess_push(&s, 0, t, step + 5, s.b, mid);
                sess_push(&s, 0, t, step, s.b, s.b + 1);
                wire_hdr_t h = hdr(WIRE_PULL_REPLY, 0, 0, s.b, s.b + 1, 1, 77, 0);
                float one = 1;
                sess_msg(&s, 0, 0, &h, &one, sizeof one);
            }
        }
        for (int t = 1; t < s.T; t++)
            sess_req(&s, t, WIRE_PULL, step + 1, s.b, mid, 0);
    }
    sess_req(&s, 0, WIRE_STATS, 0, 0, 0, 0);
    sess_req(&s, 0, WIRE_CHECKPOINT, 2, 0, 0, WIRE_CKPT_SEND);
    sess_req(&s, 0, WIRE_CHECKPOINT, 2, 0, 0, WIRE_CKPT_WRITE);
    if (malformed) {
        /* extra frames, a bad peer, an ERROR sent to the server, a field
         * header, junk */
        wire_hdr_t h = hdr(WIRE_PULL, 0, 0, s.b, s.e, 0, 90, 0);
        sess_msg(&s, 2, 0, &h, NULL, 0);
        uint8_t hb[WIRE_HDR_MAX];
        int n = wire_encode(&h, hb, sizeof hb);
        fuzz_server_msg(&s.f, 0, -1, (const uint8_t *)"", 0, hb, (size_t)n, NULL, 0);
        fuzz_server_msg(&s.f, 0, -1, (const uint8_t *)"a-long-peer", 11, hb, (size_t)n, NULL, 0);
        h = hdr(WIRE_ERROR, 0, 0, 0, 0, 3, 91, WIRE_E_STATE);
        h.elem = WIRE_TEXT;
        sess_msg(&s, 0, 1, &h, "bad", 3);
        const uint8_t fields[FUZZ_FIELDS] = {
            WIRE_PULL, 1, 0, (uint8_t)s.b, (uint8_t)(s.b + 2), WIRE_F32, 0, 92, 0};
        fuzz_server_msg(&s.f, FUZZ_FIELDS_HDR, 1, NULL, 0, fields, sizeof fields, NULL, 0);
        const uint8_t junk[] = {0x9a, 0x02, 0xc1};
        fuzz_server_msg(&s.f, 0, 2, NULL, 0, junk, sizeof junk, NULL, 0);
    }
    for (int t = 0; t < s.T; t++)
        sess_req(&s, t, WIRE_SHUTDOWN, 0, 0, 0, 0);
    emit("server", &s.f);
    fuzz_buf_free(&s.f);
}

/* A BARRIER round that sums values (float32 pairs). */
static void barrier_values(sess_t *s)
{
    for (int t = 0; t < s->T; t++) {
        float v[4] = {1.5f * (t + 1), 0, -2.0f, 1e-9f};
        wire_hdr_t h = hdr(WIRE_BARRIER, t, 0, 0, 0, 4, ++s->req, 0);
        sess_msg(s, 0, t, &h, v, sizeof v);
    }
}

/* Jobs that end early: a trainer is lost (halting BSP, or going on without
 * it), or the job is asked to stop (a signal; CHECKPOINT WIRE_CKPT_STOP_AT; SHUTDOWN
 * WIRE_SHUTDOWN_ASK_STOP), with pulls and barriers waiting. */
static void session_stop(unsigned cfg, unsigned cfg2, int how)
{
    sess_t s;
    sess_start(&s, cfg, cfg2);
    size_t mid = s.b + (s.e - s.b) / 2;
    barrier_values(&s);
    sess_push(&s, 0, 0, 0, s.b, mid);
    sess_req(&s, 0, WIRE_PULL, 1, s.b, s.e, 0);
    sess_req(&s, 0, WIRE_BARRIER, 0, 0, 0, 0);
    sess_req(&s, 0, WIRE_CHECKPOINT, 1, 0, 0, WIRE_CKPT_WRITE);
    switch (how) {
    case 0:
        fuzz_server_op(&s.f, FUZZ_OP_LOSE | 2 << 2); /* trainer 1 */
        break;
    case 1:
        sess_req(&s, 0, WIRE_CHECKPOINT, 1, 0, 0, WIRE_CKPT_STOP_AT);
        break;
    case 2:
        fuzz_server_op(&s.f, FUZZ_OP_STOP);
        break;
    default:
        sess_req(&s, 1, WIRE_SHUTDOWN, 0, 0, 0, WIRE_SHUTDOWN_ASK_STOP);
        break;
    }
    for (int t = 0; t < s.T; t++) {
        sess_push(&s, 0, t, 0, mid, s.e);
        if (t)
            sess_push(&s, 0, t, 0, s.b, mid);
        sess_req(&s, t, WIRE_PULL, 1, s.b, s.e, 0);
        sess_req(&s, t, WIRE_BARRIER, 0, 0, 0, 0);
    }
    fuzz_server_op(&s.f, FUZZ_OP_LOSE | 7 << 2);
    sess_req(&s, 0, WIRE_STATS, 0, 0, 0, 0);
    emit("server", &s.f);
    fuzz_buf_free(&s.f);
}

/* PULL_ROWS and PUSH_ROWS headers: requests (ids; ids and gradients; the
 * end of a step), a reply, and a few that break the payload rules. */
static void rows_wire_seeds(void)
{
    wire_hdr_t h = hdr(WIRE_PULL_ROWS, 1, 4, 0, 3, 0, 20, 3);
    h.elem = WIRE_ROWS;
    wire_seed(&h, 24);
    wire_seed(&h, 28); /* floats in a pull request */
    h = hdr(WIRE_PULL_ROWS, 0, 4, 0, 3, 6, 20, 3); /* the reply: 3 rows of dim 2 */
    wire_seed(&h, 24);
    h = hdr(WIRE_PEEK_ROWS, 1, 4, 0, 3, 0, 22, 3); /* a read-only pull */
    h.elem = WIRE_ROWS;
    wire_seed(&h, 24);
    wire_seed(&h, 20);
    h = hdr(WIRE_PUSH_ROWS, 2, 4, 5, 7, 6, 21, 5);
    h.elem = WIRE_ROWS;
    wire_seed(&h, 16 + 24);
    h.count = 5; /* not n x dim */
    wire_seed(&h, 16 + 20);
    h = hdr(WIRE_PUSH_ROWS, 2, 4, 7, 7, 0, 22, 0); /* the end of a step */
    h.elem = WIRE_ROWS;
    wire_seed(&h, 0);
}

/* Row ids of table `table` that server `index` of 2 owns, from `from` on. */
static void owned_ids(uint32_t table, int index, uint64_t from, uint64_t *ids, int n)
{
    for (uint64_t id = from; n > 0; id++)
        if ((int)(rows_hash(table, id) % 2) == index) {
            *ids++ = id;
            n--;
        }
}

/* A row message from trainer `who`: type, step, table, positions
 * [begin, begin + n), the ids and (PUSH_ROWS) n x dim gradients. */
static void sess_rows(sess_t *s, int flags, int who, int type, int64_t clock, int table,
                      uint64_t begin, const uint64_t *ids, int n, size_t dim)
{
    uint8_t pay[8 * 8 + 4 * 8 * 3];
    size_t count = type == WIRE_PUSH_ROWS ? (size_t)n * dim : 0;
    for (int i = 0; i < n; i++)
        memcpy(pay + 8 * i, &ids[i], 8); /* little-endian host */
    for (size_t k = 0; k < count; k++) {
        float g = 0.5f * (float)(k + 1) * (float)(who + 1);
        memcpy(pay + 8 * n + 4 * k, &g, 4);
    }
    wire_hdr_t h = hdr(type, who, clock, begin, begin + (uint64_t)n, count, ++s->req, table);
    h.elem = WIRE_ROWS;
    sess_msg(s, flags, who, &h, n ? pay : NULL, 8 * (size_t)n + 4 * count);
}

/* A job with sparse tables (config byte 2, bit 2): each trainer pulls
 * rows, pushes rows of both tables in two pieces and ends its steps; a
 * trainer ahead pulls rows of the next step early; with malformed row
 * messages mixed in (an unknown table, an id beyond the table, another
 * server's id, a duplicate, a count that is not n x dim, a piece out of
 * order, another step, a reply sent to the server). */
static void session_rows(unsigned cfg, unsigned cfg2, int malformed)
{
    sess_t s;
    sess_start(&s, cfg, cfg2 | 4);
    const int index = (cfg >> 2) & 1;
    uint64_t a[6], b[4], other[1];
    owned_ids(3, index, 0, a, 6);
    owned_ids(5, index, 1ull << 40, b, 4);
    owned_ids(3, !index, 0, other, 1);
    for (int t = 0; t < s.T; t++)
        sess_rows(&s, 0, t, WIRE_PULL_ROWS, 0, 3, 0, a, 6, 2);
    for (int step = 0; step < 2; step++) {
        for (int t = 0; t < s.T; t++) {
            sess_rows(&s, t == 1 ? FUZZ_UNALIGNED : 0, t, WIRE_PUSH_ROWS, step, 3, 0, a + t % 2,
                      4, 2);
            if (t == 0) { /* ahead: the rows of the next step, also read-only */
                sess_rows(&s, 0, 0, WIRE_PULL_ROWS, step + 1, 5, 0, b, 4, 3);
                sess_rows(&s, 0, 0, WIRE_PEEK_ROWS, step + 1, 3, 0, a, 3, 2);
            }
            sess_rows(&s, 0, t, WIRE_PUSH_ROWS, step, 5, 4, b + t % 2, 2, 3);
            if (malformed && t == 0) {
                const uint64_t dup[2] = {a[0], a[0]}, beyond = 40 + (uint64_t)index;
                sess_rows(&s, 0, t, WIRE_PUSH_ROWS, step, 4, 6, a, 1, 2);
                sess_rows(&s, 0, t, WIRE_PULL_ROWS, step, 3, 0, &beyond, 1, 2);
                sess_rows(&s, 0, t, WIRE_PULL_ROWS, step, 3, 0, other, 1, 2);
                sess_rows(&s, 0, t, WIRE_PUSH_ROWS, step, 3, 6, dup, 2, 2);
                sess_rows(&s, 0, t, WIRE_PUSH_ROWS, step, 3, 6, a, 2, 3);
                sess_rows(&s, 0, t, WIRE_PUSH_ROWS, step, 3, 9, a, 2, 2);
                sess_rows(&s, 0, t, WIRE_PUSH_ROWS, step + 3, 3, 6, a, 2, 2);
                wire_hdr_t h = hdr(WIRE_PULL_ROWS, 0, step, 0, 1, 2, 88, 3);
                float two[2] = {1, 2};
                sess_msg(&s, 0, 0, &h, two, sizeof two);
            }
            sess_rows(&s, 0, t, WIRE_PUSH_ROWS, step, 3, 6, NULL, 0, 2);
        }
        for (int t = 1; t < s.T; t++)
            sess_rows(&s, 0, t, WIRE_PULL_ROWS, step + 1, 3, 0, a, 6, 2);
    }
    sess_req(&s, 0, WIRE_STATS, 0, 0, 0, 0);
    if (malformed)
        fuzz_server_op(&s.f, FUZZ_OP_LOSE | 2 << 2); /* trainer 1, with a row pull waiting */
    for (int t = 0; t < s.T; t++)
        sess_req(&s, t, WIRE_SHUTDOWN, 0, 0, 0, 0);
    emit("server", &s.f);
    fuzz_buf_free(&s.f);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_corpus DIR\n");
        return 2;
    }
    out_dir = argv[1];
    char d[4096];
    mkdir_p(out_dir);
    snprintf(d, sizeof d, "%s/wire", out_dir);
    mkdir_p(d);
    snprintf(d, sizeof d, "%s/server", out_dir);
    mkdir_p(d);
    wire_seeds();
    /* consistency x shard x trainers (2, 1, 3) x optimizer, half with
     * malformed messages mixed in; bit 7: SSP staleness 0; the second byte: checkpoints on (odd
     * consistency + shard) */
    for (unsigned cons = 0; cons < 3; cons++)
        for (unsigned idx = 0; idx < 2; idx++)
            for (unsigned tr = 0; tr < 3; tr++) {
                unsigned opt = (cons + idx + tr) % 4;
                unsigned cfg = cons | idx << 2 | opt << 3 | tr << 5 | ((cons + tr) % 2) << 7;
                session(cfg, (cons + idx) % 2, (idx + tr) % 2);
            }
    for (unsigned cons = 0; cons < 3; cons++)
        for (int how = 0; how < 4; how++)
            session_stop(cons | (unsigned)(how % 2) << 2 | 3u << 5, (unsigned)how & 3, how);
    session_stop(0, 2, 0); /* BSP, 2 trainers, going on without a lost one */
    /* a send that fails */
    sess_t s;
    sess_start(&s, 0, 0);
    wire_hdr_t h = hdr(WIRE_STATS, 0, 0, 0, 0, 0, 1, 0);
    sess_msg(&s, FUZZ_SEND_FAILS, 0, &h, NULL, 0);
    emit("server", &s.f);
    fuzz_buf_free(&s.f);
    /* sparse tables (after the others, so that their seed numbers stay):
     * BSP and ASP (SSP refuses them: the server has none then), each shard,
     * 1 and 2 trainers, every optimizer (momentum's tables take Adagrad),
     * shard 1 with malformed messages */
    rows_wire_seeds();
    for (unsigned cons = 0; cons < 4; cons++)
        for (unsigned idx = 0; idx < 2; idx++) {
            unsigned tr = cons == 3 ? 1 : 3; /* 2 trainers, or 1 (the last BSP) */
            session_rows(cons | idx << 2 | ((cons + idx) % 4) << 3 | tr << 5, 0, idx);
        }
    printf("gen_corpus: %d seeds in %s\n", n_written, out_dir);
    return 0;
}
