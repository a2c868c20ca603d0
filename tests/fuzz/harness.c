/* harness.c - the fuzz harnesses of the wire decoder and of the server's
 * request handler (see harness.h), with the oracles they check:
 *
 * wire:   wire_decode agrees with a reference decoder built on msgpack-c
 *         (element by element, so that no length it reads can make msgpack-c
 *         allocate much) and the rules of docs/PROTOCOL.md; what it accepts
 *         survives encode + decode; wire_check_payload agrees with the
 *         spec's size rules.
 * server: every reply is a well-formed message from this server; a zero-copy
 *         payload lies in the shard; a message the spec says is malformed is
 *         answered with exactly one ERROR (with the decoder's code); any
 *         ERROR comes alone and leaves parameters, optimizer state, version
 *         and counters as they were; an accepted PULL is answered in full
 *         (once, in pieces or whole) as soon as its consistency model allows
 *         (BSP and ASP: from the server's version; SSP: from a shadow of the
 *         trainers' clocks) and never before (SSP).
 *
 * Every frame handed to the code under test sits in a heap block of exactly
 * its size, so ASan sees any read past it.
 */
#include "harness.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#include "common/net/wire.h"
#include "common/util/fsutil.h"
#include "export/checkpoint.h"
#include "export/ckptdir.h"
#include "ps/server.h"

/* ------------------------------------------------------------ input */

/* A read cursor over the fuzz input; past its end every byte reads 0. */
typedef struct {
    const uint8_t *p;
    size_t n;
} in_t;

static unsigned get8(in_t *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

static uint64_t get_le(in_t *in, int bytes)
{
    uint64_t v = 0;
    for (int k = 0; k < bytes; k++)
        v |= (uint64_t)get8(in) << (8 * k);
    return v;
}

/* A heap copy of exactly n bytes of the input (zeros past its end) at
 * offset `off` of the block; *blk is the block to free. */
static uint8_t *take(in_t *in, size_t n, size_t off, uint8_t **blk)
{
    uint8_t *b = malloc(n + off ? n + off : 1);
    if (!b)
        abort();
    size_t k = n < in->n ? n : in->n;
    memset(b, 0, n + off);
    memcpy(b + off, in->p, k);
    in->p += k;
    in->n -= k;
    *blk = b;
    return b + off;
}

/* ------------------------------------------------------------ builders */

void fuzz_buf_put(fuzz_buf_t *f, const void *p, size_t n)
{
    if (f->n + n > f->cap) {
        size_t cap = f->cap ? f->cap : 256;
        while (cap < f->n + n)
            cap *= 2;
        uint8_t *b = realloc(f->b, cap);
        if (!b)
            abort();
        f->b = b;
        f->cap = cap;
    }
    if (n)
        memcpy(f->b + f->n, p, n);
    f->n += n;
}

void fuzz_buf_free(fuzz_buf_t *f)
{
    free(f->b);
    memset(f, 0, sizeof *f);
}

static void put_le(fuzz_buf_t *f, uint64_t v, int bytes)
{
    for (int k = 0; k < bytes; k++) {
        uint8_t b = (uint8_t)(v >> (8 * k));
        fuzz_buf_put(f, &b, 1);
    }
}

void fuzz_wire_input(fuzz_buf_t *f, const uint8_t *hdr, size_t hdr_len, uint64_t payload_len)
{
    uint8_t flags = payload_len > 0xffff;
    fuzz_buf_put(f, &flags, 1);
    put_le(f, payload_len, flags ? 8 : 2);
    fuzz_buf_put(f, hdr, hdr_len);
}

void fuzz_wire_stats_input(fuzz_buf_t *f, const uint8_t *payload, size_t len)
{
    uint8_t flags = FUZZ_WIRE_STATS;
    fuzz_buf_put(f, &flags, 1);
    fuzz_buf_put(f, payload, len);
}

void fuzz_server_msg(fuzz_buf_t *f, int flags, int peer, const uint8_t *raw_peer, size_t raw_len,
                     const uint8_t *hdr, size_t hdr_len, const void *payload, size_t payload_len)
{
    flags &= ~(FUZZ_PEER_RAW | FUZZ_PAYLOAD);
    flags |= (peer < 0 ? 3 : peer) << 6;
    if (payload)
        flags |= FUZZ_PAYLOAD;
    uint8_t fl = (uint8_t)flags;
    fuzz_buf_put(f, &fl, 1);
    if (peer < 0) { /* 255 and more: 257 bytes, too long an identity */
        uint8_t l = raw_len > 254 ? 255 : (uint8_t)raw_len, zero = 0;
        size_t n = raw_len > 254 ? 257 : raw_len;
        fuzz_buf_put(f, &l, 1);
        for (size_t k = 0; k < n; k++)
            fuzz_buf_put(f, k < raw_len ? raw_peer + k : &zero, 1);
    }
    if (!(flags & FUZZ_FIELDS_HDR)) {
        uint8_t l = (uint8_t)hdr_len;
        fuzz_buf_put(f, &l, 1);
    }
    fuzz_buf_put(f, hdr, hdr_len);
    if (payload) {
        put_le(f, payload_len, 2);
        fuzz_buf_put(f, payload, payload_len);
    }
}

void fuzz_server_op(fuzz_buf_t *f, int op)
{
    uint8_t b[2] = {FUZZ_OP, (uint8_t)op};
    fuzz_buf_put(f, b, 2);
}

/* ------------------------------------------------------------ failures */

/* Formats the broken promise into msg and returns -1. */
__attribute__((format(printf, 3, 4))) static int broken(char *msg, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (msg && len)
        vsnprintf(msg, len, fmt, ap);
    va_end(ap);
    return -1;
}

/* ------------------------------------------------------------ wire oracle */

static int elem_numeric(int e)
{
    return e == WIRE_F32 || e == WIRE_F16 || e == WIRE_BF16;
}

/* Length of the msgpack integer whose first byte is b, or 0 if b starts
 * another kind of value. */
static size_t int_len(uint8_t b)
{
    if (b <= 0x7f || b >= 0xe0)
        return 1;
    if (b >= 0xcc && b <= 0xd3)
        return 1 + ((size_t)1 << ((b - 0xcc) & 3));
    return 0;
}

/* One reference element: msgpack-c's reading of an integer. */
typedef struct {
    int neg;
    uint64_t u;
    int64_t i;
} refint_t;

/* Reads the integer at b[0..n) with msgpack-c; returns 0, or -1 if msgpack-c
 * does not read exactly one integer there. */
static int ref_int(const uint8_t *b, size_t n, refint_t *v)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int rc = msgpack_unpack_next(&up, (const char *)b, n, &off);
    int ok = rc == MSGPACK_UNPACK_SUCCESS && off == n &&
             (up.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
              up.data.type == MSGPACK_OBJECT_NEGATIVE_INTEGER);
    if (ok) {
        v->neg = up.data.type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
        v->u = v->neg ? 0 : up.data.via.u64;
        v->i = v->neg ? up.data.via.i64 : 0;
    }
    msgpack_unpacked_destroy(&up);
    return ok ? 0 : -1;
}

/* Does v fit in [0, max]? */
static int fits(const refint_t *v, uint64_t max)
{
    return !v->neg && v->u <= max;
}

/* An enum field as wire_decode stores it: out of int is -1. */
static int as_enum(const refint_t *v)
{
    if (v->neg)
        return v->i >= INT_MIN ? (int)v->i : -1;
    return v->u <= INT_MAX ? (int)v->u : -1;
}

/* The spec's verdict on header frame b[0..len): returns the WIRE_E_* code
 * (0: valid, *h filled) or -2 if msgpack-c disagrees with the walk. */
static int ref_decode(const uint8_t *b, size_t len, wire_hdr_t *h)
{
    memset(h, 0, sizeof *h);
    if (len == 0)
        return WIRE_E_MALFORMED;
    uint64_t n;
    size_t pos;
    if (b[0] >= 0x90 && b[0] <= 0x9f) {
        n = b[0] & 0x0f;
        pos = 1;
    } else if (b[0] == 0xdc || b[0] == 0xdd) {
        size_t w = b[0] == 0xdc ? 2 : 4;
        if (len < 1 + w)
            return WIRE_E_MALFORMED;
        n = 0;
        for (size_t k = 0; k < w; k++)
            n = n << 8 | b[1 + k];
        pos = 1 + w;
    } else {
        return WIRE_E_MALFORMED;
    }
    if (n == 0)
        return WIRE_E_MALFORMED;
    refint_t v[WIRE_HDR_FIELDS];
    static const uint64_t max[WIRE_HDR_FIELDS] = {0,          0, INT_MAX,    INT64_MAX,  UINT64_MAX,
                                                  UINT64_MAX, 0, UINT64_MAX, UINT32_MAX, INT_MAX};
    int bad = 0; /* a fault after the version: malformed, once the version is known good */
    for (int k = 0; k < WIRE_HDR_FIELDS && !bad; k++) {
        size_t l = pos < len ? int_len(b[pos]) : 0;
        if (l == 0 || l > len - pos) {
            if (k == 0)
                return WIRE_E_MALFORMED;
            bad = 1;
            break;
        }
        if (ref_int(b + pos, l, &v[k]) != 0)
            return -2;
        pos += l;
        if (k == 0) {
            if (v[0].neg || v[0].u != WIRE_VERSION)
                return WIRE_E_VERSION;
            if (n != WIRE_HDR_FIELDS)
                return WIRE_E_MALFORMED;
        } else if (max[k] && !fits(&v[k], max[k])) {
            bad = 1;
        }
    }
    if (bad || pos != len)
        return WIRE_E_MALFORMED;
    h->version = WIRE_VERSION;
    h->type = as_enum(&v[1]);
    h->sender = (int)v[2].u;
    h->clock = (int64_t)v[3].u;
    h->begin = v[4].u;
    h->end = v[5].u;
    h->elem = as_enum(&v[6]);
    h->count = v[7].u;
    h->req = (uint32_t)v[8].u;
    h->status = (int)v[9].u;
    if (h->type < WIRE_PUSH || h->type > WIRE_PEEK_ROWS)
        return WIRE_E_TYPE;
    if (!(elem_numeric(h->elem) || h->elem == WIRE_TOPK || h->elem == WIRE_ROWS ||
          h->elem == WIRE_TEXT || h->elem == WIRE_MSGPACK))
        return WIRE_E_MALFORMED;
    if (h->end < h->begin)
        return WIRE_E_RANGE;
    return 0;
}

/* The spec's verdict on a PULL_ROWS, PEEK_ROWS or PUSH_ROWS
 * (docs/PROTOCOL.md): n = end - begin ids, then count floats (a PULL_ROWS
 * or PEEK_ROWS request: ids only; a PULL_ROWS reply: elem F32, n x dim
 * floats; an empty PUSH_ROWS: nothing at all). A bitmask of the codes that
 * apply. */
static unsigned ref_rows(const wire_hdr_t *h, uint64_t plen)
{
    const uint64_t n = h->end - h->begin;
    const int reply = h->type == WIRE_PULL_ROWS && h->elem == WIRE_F32;
    const int pull = h->type == WIRE_PULL_ROWS || h->type == WIRE_PEEK_ROWS;
    unsigned m = 0;
    if (!reply && h->elem != WIRE_ROWS)
        m |= 1u << WIRE_E_MALFORMED;
    const uint64_t ids = reply ? 0 : n;
    /* 8 ids + 4 count == plen, in 128 bits */
    const unsigned __int128 bytes = (unsigned __int128)ids * 8 + (unsigned __int128)h->count * 4;
    if (n == 0) {
        if (pull || h->count != 0 || plen != 0)
            m |= 1u << WIRE_E_LENGTH;
    } else if (pull && !reply) {
        if (h->count != 0 || bytes != plen)
            m |= 1u << WIRE_E_LENGTH;
    } else if (h->count == 0 || h->count % n != 0 || bytes != plen) {
        m |= 1u << WIRE_E_LENGTH;
    }
    return m;
}

/* The spec's verdict on a valid header with a payload of plen bytes: a
 * bitmask of the codes that apply (1 << code); 0: valid. The spec does not
 * order the checks, so any applicable code is right. */
static unsigned ref_payload(const wire_hdr_t *h, uint64_t plen)
{
    unsigned m = 0;
    size_t es = wire_elem_size(h->elem);
    /* count x elem size == plen, without overflow */
    int size_ok = es && h->count <= UINT64_MAX / es && h->count * es == plen;
    switch (h->type) {
    case WIRE_PUSH:
        if (h->elem == WIRE_TOPK) { /* k (index, value) pairs, 0 < k <= end - begin */
            if (h->count == 0 || h->count > h->end - h->begin || !size_ok)
                m |= 1u << WIRE_E_LENGTH;
            break;
        }
        /* fall through */
    case WIRE_PULL_REPLY:
        if (!elem_numeric(h->elem))
            m |= 1u << WIRE_E_MALFORMED;
        if (h->count != h->end - h->begin || plen == 0 || !size_ok)
            m |= 1u << WIRE_E_LENGTH;
        break;
    case WIRE_PULL:
    case WIRE_CLOCK:
    case WIRE_SHUTDOWN:
        if (h->count != 0 || plen != 0)
            m |= 1u << WIRE_E_LENGTH;
        break;
    case WIRE_BARRIER: /* optionally values to sum (F32 pairs) */
        if (h->count == 0 && plen == 0)
            break;
        if (!elem_numeric(h->elem))
            m |= 1u << WIRE_E_MALFORMED;
        if (plen == 0 || !size_ok)
            m |= 1u << WIRE_E_LENGTH;
        break;
    case WIRE_STATS: /* a reply: one msgpack value of count bytes */
        if (h->count == 0 && plen == 0)
            break;
        if (h->status != 0 || h->elem != WIRE_MSGPACK)
            m |= 1u << WIRE_E_MALFORMED;
        if (plen == 0 || !size_ok)
            m |= 1u << WIRE_E_LENGTH;
        break;
    case WIRE_CHECKPOINT:
        if (h->count == 0 && plen == 0)
            break;
        if (h->status != 0 || !elem_numeric(h->elem))
            m |= 1u << WIRE_E_MALFORMED;
        if (!size_ok)
            m |= 1u << WIRE_E_LENGTH;
        break;
    case WIRE_PULL_ROWS:
    case WIRE_PUSH_ROWS:
    case WIRE_PEEK_ROWS:
        m |= ref_rows(h, plen);
        break;
    case WIRE_ERROR:
        if (h->status <= 0)
            m |= 1u << WIRE_E_MALFORMED;
        if (h->count == 0 && plen == 0)
            break;
        if (h->elem != WIRE_TEXT)
            m |= 1u << WIRE_E_MALFORMED;
        if (h->count != plen)
            m |= 1u << WIRE_E_LENGTH;
        break;
    default:
        m |= 1u << WIRE_E_TYPE;
    }
    return m;
}

static int hdr_equal(const wire_hdr_t *a, const wire_hdr_t *b)
{
    return a->version == b->version && a->type == b->type && a->sender == b->sender &&
           a->clock == b->clock && a->begin == b->begin && a->end == b->end && a->elem == b->elem &&
           a->count == b->count && a->req == b->req && a->status == b->status;
}

/* Is err a message (non-empty, terminated)? */
static int err_ok(const err_t *e)
{
    size_t l = strnlen(e->msg, sizeof e->msg);
    return l > 0 && l < sizeof e->msg;
}

/* Checks one header frame (already in its own heap block) and payload length
 * against the reference; fills *h and returns wire_decode's result, or -2
 * with msg when a promise is broken. */
static int check_header(const uint8_t *hdr, size_t len, uint64_t plen, wire_hdr_t *h, int *code,
                        char *msg, size_t msg_len)
{
    err_t err;
    memset(&err, 0, sizeof err);
    *code = -7;
    int rc = wire_decode(hdr, len, h, code, &err);
    wire_hdr_t ref;
    int want = ref_decode(hdr, len, &ref);
    if (want == -2)
        return broken(msg, msg_len, "msgpack-c reads an integer element differently"), -2;
    if (rc != 0 && rc != -1)
        return broken(msg, msg_len, "wire_decode returned %d", rc), -2;
    if ((rc == 0) != (want == 0) || (rc != 0 && *code != want))
        return broken(msg, msg_len, "wire_decode: %d (code %d: %s), the spec says code %d", rc,
                      rc ? *code : 0, rc ? err.msg : "", want),
               -2;
    if (rc != 0) {
        if (!err_ok(&err))
            return broken(msg, msg_len, "wire_decode failed without a message"), -2;
        /* after type, range or elem every field was read: req can be echoed */
        if ((want == WIRE_E_TYPE || want == WIRE_E_RANGE) && h->req != ref.req)
            return broken(msg, msg_len, "refused header keeps req %u, not %u", h->req, ref.req), -2;
        return -1;
    }
    if (!hdr_equal(h, &ref))
        return broken(msg, msg_len, "wire_decode and msgpack-c read different fields"), -2;
    /* what is accepted survives encode + decode, in at most 67 bytes */
    uint8_t buf[WIRE_HDR_MAX];
    int n = wire_encode(h, buf, sizeof buf);
    if (n <= 0 || n > 67)
        return broken(msg, msg_len, "wire_encode wrote %d bytes", n), -2;
    if (wire_encode(h, buf, (size_t)n - 1) != -1)
        return broken(msg, msg_len, "wire_encode overflows a buffer of %d bytes", n - 1), -2;
    uint8_t *copy = malloc((size_t)n);
    if (!copy)
        abort();
    memcpy(copy, buf, (size_t)n);
    wire_hdr_t h2;
    int c2;
    int rc2 = wire_decode(copy, (size_t)n, &h2, &c2, &err);
    free(copy);
    if (rc2 != 0 || !hdr_equal(h, &h2))
        return broken(msg, msg_len, "an accepted header does not survive encode + decode"), -2;
    /* the payload rules */
    unsigned m = ref_payload(h, plen);
    if (plen <= SIZE_MAX) {
        memset(&err, 0, sizeof err);
        int pc = -7;
        int prc = wire_check_payload(h, (size_t)plen, &pc, &err);
        if ((prc == 0) != (m == 0) || (prc != 0 && (pc < 0 || pc > 31 || !(m & (1u << pc)))))
            return broken(msg, msg_len,
                          "wire_check_payload(%s, count %llu, elem %d, status %d, %llu bytes): %d "
                          "code %d (%s); the spec allows mask 0x%x",
                          wire_type_name(h->type), (unsigned long long)h->count, h->elem, h->status,
                          (unsigned long long)plen, prc, pc, err.msg, m),
                   -2;
        if (prc != 0 && !err_ok(&err))
            return broken(msg, msg_len, "wire_check_payload failed without a message"), -2;
    }
    return 0;
}

/* ------------------------------------------------------------ STATS oracle */

/* The fields of a STATS payload as docs/PROTOCOL.md lists them: name and
 * range. */
static const struct {
    const char *name;
    int64_t min;
    uint64_t max;
} ref_fields[14] = {
    {"pushes", 0, UINT64_MAX},   {"pulls", 0, UINT64_MAX},     {"errors", 0, UINT64_MAX},
    {"updates", 0, UINT64_MAX},  {"busy_us", 0, UINT64_MAX},   {"version", 0, INT64_MAX},
    {"lost", 0, INT_MAX},        {"first_lost", -1, INT_MAX},  {"partial", 0, 1},
    {"lead_done", 0, 1},         {"next_lead", 0, INT_MAX},    {"rows", 0, UINT64_MAX},
    {"rows_created", 0, UINT64_MAX}, {"rows_bytes", 0, UINT64_MAX},
};
#define REF_FIELDS 14

/* Stores field k's value v into st. */
static void ref_store(wire_stats_t *st, int k, const refint_t *v)
{
    int64_t i = v->neg ? v->i : (int64_t)v->u;
    switch (k) {
    case 0: st->pushes = v->u; break;
    case 1: st->pulls = v->u; break;
    case 2: st->errors = v->u; break;
    case 3: st->updates = v->u; break;
    case 4: st->busy_us = v->u; break;
    case 5: st->version = i; break;
    case 6: st->lost = (int)i; break;
    case 7: st->first_lost = (int)i; break;
    case 8: st->partial = (int)i; break;
    case 9: st->lead_done = (int)i; break;
    case 10: st->next_lead = (int)i; break;
    case 11: st->rows = v->u; break;
    case 12: st->rows_created = v->u; break;
    default: st->rows_bytes = v->u; break;
    }
}

/* Reads the key at b[*pos..len) with msgpack-c (after its length is known
 * to fit, so that msgpack-c allocates nothing much): returns the field's
 * index, REF_FIELDS for a key of no field, -1 if it is no string or cut
 * short. */
static int ref_key(const uint8_t *b, size_t len, size_t *pos)
{
    uint8_t kb = b[*pos];
    size_t hl = kb >= 0xa0 && kb <= 0xbf ? 1 : kb == 0xd9 ? 2 : kb == 0xda ? 3 : kb == 0xdb ? 5 : 0;
    if (!hl || hl > len - *pos)
        return -1;
    uint64_t l = hl == 1 ? (uint64_t)(kb & 0x1f) : 0;
    for (size_t k = 1; k < hl; k++)
        l = l << 8 | b[*pos + k];
    if (l > len - *pos - hl)
        return -1;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int ok = msgpack_unpack_next(&up, (const char *)b + *pos, hl + (size_t)l, &off) ==
                 MSGPACK_UNPACK_SUCCESS &&
             up.data.type == MSGPACK_OBJECT_STR && up.data.via.str.size == l;
    int k = REF_FIELDS;
    for (int f = 0; ok && f < REF_FIELDS; f++)
        if (strlen(ref_fields[f].name) == l && memcmp(ref_fields[f].name, up.data.via.str.ptr, l) == 0)
            k = f;
    msgpack_unpacked_destroy(&up);
    *pos += hl + (size_t)l;
    return ok ? k : -1;
}

/* The spec's verdict on a STATS payload b[0..len): 0 with *st filled, -1
 * if it is malformed, -2 if msgpack-c disagrees with the walk. */
static int ref_stats(const uint8_t *b, size_t len, wire_stats_t *st)
{
    memset(st, 0, sizeof *st);
    if (len == 0)
        return -1;
    uint64_t n;
    size_t pos;
    if (b[0] >= 0x80 && b[0] <= 0x8f) {
        n = b[0] & 0x0f;
        pos = 1;
    } else if (b[0] == 0xde || b[0] == 0xdf) {
        size_t w = b[0] == 0xde ? 2 : 4;
        if (len < 1 + w)
            return -1;
        n = 0;
        for (size_t k = 0; k < w; k++)
            n = n << 8 | b[1 + k];
        pos = 1 + w;
    } else {
        return -1;
    }
    unsigned seen = 0;
    for (uint64_t e = 0; e < n; e++) {
        if (pos >= len)
            return -1;
        int k = ref_key(b, len, &pos);
        size_t l = pos < len ? int_len(b[pos]) : 0;
        if (k < 0 || l == 0 || l > len - pos)
            return -1;
        refint_t v;
        if (ref_int(b + pos, l, &v) != 0)
            return -2;
        pos += l;
        if (k == REF_FIELDS)
            continue;
        if ((seen & (1u << k)) || (v.neg ? v.i < ref_fields[k].min : v.u > ref_fields[k].max))
            return -1;
        seen |= 1u << k;
        ref_store(st, k, &v);
    }
    return pos == len && seen == (1u << REF_FIELDS) - 1 ? 0 : -1;
}

static int stats_equal(const wire_stats_t *a, const wire_stats_t *b)
{
    return a->pushes == b->pushes && a->pulls == b->pulls && a->errors == b->errors &&
           a->updates == b->updates && a->busy_us == b->busy_us && a->version == b->version &&
           a->lost == b->lost && a->first_lost == b->first_lost && a->partial == b->partial &&
           a->lead_done == b->lead_done && a->next_lead == b->next_lead && a->rows == b->rows &&
           a->rows_created == b->rows_created && a->rows_bytes == b->rows_bytes;
}

/* Checks wire_stats_decode on payload p[0..len) (in its own heap block)
 * against the reference, and that what it accepts encodes back to a
 * payload that decodes the same. Returns 0, or -1 with msg. */
static int check_stats(const uint8_t *p, size_t len, char *msg, size_t msg_len)
{
    wire_stats_t st, ref;
    err_t err;
    memset(&err, 0, sizeof err);
    int rc = wire_stats_decode(p, len, &st, &err);
    int want = ref_stats(p, len, &ref);
    if (want == -2)
        return broken(msg, msg_len, "STATS: msgpack-c reads an integer differently");
    if (rc != 0 && rc != -1)
        return broken(msg, msg_len, "wire_stats_decode returned %d", rc);
    if ((rc == 0) != (want == 0))
        return broken(msg, msg_len, "wire_stats_decode: %d (%s), the spec says %s", rc, err.msg,
                      want == 0 ? "valid" : "malformed");
    if (rc != 0)
        return err_ok(&err) && strncmp(err.msg, "STATS: ", 7) == 0
                   ? 0
                   : broken(msg, msg_len, "wire_stats_decode failed without a STATS message");
    if (!stats_equal(&st, &ref))
        return broken(msg, msg_len, "wire_stats_decode and msgpack-c read different fields");
    uint8_t buf[WIRE_STATS_MAX];
    int n = wire_stats_encode(&st, buf, sizeof buf);
    if (n <= 0 || wire_stats_encode(&st, buf, (size_t)n - 1) != -1)
        return broken(msg, msg_len, "wire_stats_encode wrote %d bytes, or overflows", n);
    uint8_t *copy = malloc((size_t)n);
    if (!copy)
        abort();
    memcpy(copy, buf, (size_t)n);
    wire_stats_t st2;
    rc = wire_stats_decode(copy, (size_t)n, &st2, &err);
    free(copy);
    if (rc != 0 || !stats_equal(&st, &st2))
        return broken(msg, msg_len, "an accepted STATS payload does not survive encode + decode");
    return 0;
}

int fuzz_wire_run(const uint8_t *data, size_t size, char *msg, size_t msg_len)
{
    in_t in = {data, size};
    unsigned flags = get8(&in);
    if (flags & FUZZ_WIRE_STATS) {
        uint8_t *blk;
        size_t len = in.n;
        uint8_t *p = take(&in, len, 0, &blk);
        int rc = check_stats(p, len, msg, msg_len);
        free(blk);
        return rc;
    }
    uint64_t plen = get_le(&in, flags & 1 ? 8 : 2);
    uint8_t *blk;
    size_t len = in.n;
    uint8_t *hdr = take(&in, len, 0, &blk);
    wire_hdr_t h;
    int code;
    int rc = check_header(hdr, len, plen, &h, &code, msg, msg_len);
    free(blk);
    if (wire_type_name(h.type) == NULL || wire_error_name(code) == NULL)
        return broken(msg, msg_len, "a name is NULL");
    return rc == -2 ? -1 : 0;
}

int fuzz_wire_one(const uint8_t *data, size_t size)
{
    return fuzz_wire_run(data, size, NULL, 0);
}

/* ------------------------------------------------------------ server */

#define PEER_LIMIT 256 /* PEER_MAX in server.c: longer identities are ignored */
#define TRACK_MAX 64
#define WAIT_MAX 16
#define SERVER_RANK 40 /* the server's MPI rank, its replies' sender */
#define T_MAX 3
/* A lost trainer: silent for LOSE_AFTER_MS, with a timeout of half that. */
#define LOSE_AFTER_MS 200
#define LOSE_OPS_MAX 4 /* per input */

static const char *ckpt_root;
static int trace = -1; /* FUZZ_TRACE=1: print every message and reply */

static int tracing(void)
{
    if (trace < 0)
        trace = getenv("FUZZ_TRACE") != NULL;
    return trace;
}

static void trace_hdr(const char *what, const uint8_t *peer, size_t peer_len, const wire_hdr_t *h,
                      size_t plen)
{
    if (!tracing())
        return;
    fprintf(stderr,
            "%s %.*s: %s sender %d clock %lld [%llu, %llu) count %llu req %u status %d"
            " elem %d, %zu bytes\n",
            what, (int)(peer_len > 16 ? 16 : peer_len), (const char *)peer, wire_type_name(h->type),
            h->sender, (long long)h->clock, (unsigned long long)h->begin,
            (unsigned long long)h->end, (unsigned long long)h->count, h->req, h->status, h->elem,
            plen);
}

void fuzz_set_ckpt_root(const char *dir)
{
    ckpt_root = dir;
}

/* The tests' fuzz_clock_advance (the fuzz targets link stubs.c's instead). */
__attribute__((weak)) void fuzz_clock_advance(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* An accepted PULL and which of its keys the replies have covered. */
typedef struct {
    uint8_t peer[PEER_LIMIT];
    size_t peer_len;
    wire_hdr_t h;
    uint64_t covered; /* bit k: key h.begin + k */
    int refused; /* answered with ERROR stopping / lost */
    int ambiguous; /* another tracked PULL has its peer and req */
    int answered_now; /* got a reply during the current call */
} track_t;

/* A request that waits for its answer (BARRIER, a BSP CHECKPOINT): only its
 * peer, req and type, to tell its answer from a refusal of the current
 * message (a trainer may give two requests of different types one req). */
typedef struct {
    uint8_t peer[PEER_LIMIT];
    size_t peer_len;
    uint32_t req;
    int type;
} waiter_t;

typedef struct {
    server_t *s;
    size_t begin, end, len;
    int T, cons, staleness, slots, cont;
    int rows; /* the server holds the sparse tables fuzz_row_tables */
    /* the current message */
    const uint8_t *peer;
    size_t peer_len;
    uint32_t req; /* its req, when req_known */
    int req_known;
    int fail_send; /* the next send fails */
    int sends_failed;
    int own_errors; /* ERROR replies to the current message */
    int own_status;
    int other_errors; /* ERROR replies to waiting requests */
    int others; /* other replies */
    /* accepted PULLs, waiting BARRIERs and CHECKPOINTs */
    track_t track[TRACK_MAX];
    int n_track;
    int track_off; /* PULLs are tracked, not checked (the shadows below are unsure) */
    int track_full; /* too many to track */
    waiter_t wait[WAIT_MAX];
    int n_wait;
    /* shadows: floats of the step received, steps completed, SHUTDOWN
     * sent, lost; the stop step (CHECKPOINT WIRE_CKPT_STOP_AT) */
    uint64_t tgot[T_MAX];
    int64_t tclock[T_MAX];
    int tdone[T_MAX], tlost[T_MAX];
    int stopping;
    int64_t stop_step;
    /* the shard's parameters + optimizer state, from CHECKPOINT */
    float *snap, *snap2;
    size_t snap_n;
    int snap_ok; /* snap holds the state after the last message */
    int no_observer; /* mask of trainers the observer must not speak for */
    int lose_ops; /* op_lose calls so far */
    fuzz_report_t *rep;
    int bad; /* a promise was broken (rep->msg says which) */
} ctx_t;

static void fail_at(ctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_at(ctx_t *c, const char *fmt, ...)
{
    if (c->bad)
        return;
    c->bad = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->rep->msg, sizeof c->rep->msg, fmt, ap);
    va_end(ap);
}

static int same_peer(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    return al == bl && memcmp(a, b, al) == 0;
}

static int n_lost(const ctx_t *c)
{
    int n = 0;
    for (int t = 0; t < c->T; t++)
        n += c->tlost[t];
    return n;
}

/* BSP halts for good once a trainer is lost, unless it goes on without. */
static int halted_lost(const ctx_t *c)
{
    return c->cons == CONS_BSP && !c->cont && n_lost(c) > 0;
}

static int64_t shadow_min_clock(const ctx_t *c)
{
    int64_t m = INT64_MAX;
    for (int t = 0; t < c->T; t++)
        if (!c->tlost[t] && c->tclock[t] < m)
            m = c->tclock[t];
    return m == INT64_MAX ? 0 : m;
}

/* May a PULL for clock k be answered now (SSP from the shadow clocks, BSP
 * from the version)? */
static int ready(const ctx_t *c, int64_t k)
{
    if (c->cons == CONS_ASP)
        return 1;
    if (c->cons == CONS_SSP)
        return shadow_min_clock(c) >= k - c->staleness;
    return server_version(c->s) >= k;
}

/* Must a PULL for clock k be refused (the job halts)? */
static int halted_for(const ctx_t *c, int64_t k)
{
    return halted_lost(c) || (c->stopping && k >= c->stop_step);
}

/* The tracked PULL of peer and req: NULL if none; *n how many. */
static track_t *find_pull(ctx_t *c, const uint8_t *peer, size_t peer_len, uint32_t req, int *n)
{
    track_t *t = NULL;
    *n = 0;
    for (int i = 0; i < c->n_track; i++)
        if (c->track[i].h.req == req &&
            same_peer(c->track[i].peer, c->track[i].peer_len, peer, peer_len)) {
            t = &c->track[i];
            ++*n;
        }
    return t;
}

/* The waiting request of peer and req of type (0: any), or -1. */
static int find_wait(const ctx_t *c, const uint8_t *peer, size_t peer_len, uint32_t req, int type)
{
    for (int i = 0; i < c->n_wait; i++)
        if (c->wait[i].req == req && (!type || c->wait[i].type == type) &&
            same_peer(c->wait[i].peer, c->wait[i].peer_len, peer, peer_len))
            return i;
    return -1;
}

static void add_wait(ctx_t *c, const uint8_t *peer, size_t peer_len, uint32_t req, int type)
{
    if (c->n_wait == WAIT_MAX) /* forget the oldest: only ever less checking */
        memmove(c->wait, c->wait + 1, (WAIT_MAX - 1) * sizeof *c->wait);
    else
        c->n_wait++;
    waiter_t *w = &c->wait[c->n_wait - 1];
    memcpy(w->peer, peer, peer_len);
    w->peer_len = peer_len;
    w->req = req;
    w->type = type;
}

/* Forgets the waiting request of peer and req of type (0: any): answered. */
static void drop_wait(ctx_t *c, const uint8_t *peer, size_t peer_len, uint32_t req, int type)
{
    int i = find_wait(c, peer, peer_len, req, type);
    if (i >= 0) {
        memmove(c->wait + i, c->wait + i + 1, (size_t)(c->n_wait - i - 1) * sizeof *c->wait);
        c->n_wait--;
    }
}

/* A PULL_REPLY [b, e) to peer: the piece of a tracked PULL. */
static void cover(ctx_t *c, const uint8_t *peer, size_t peer_len, const wire_hdr_t *h)
{
    int n;
    track_t *t = find_pull(c, peer, peer_len, h->req, &n);
    if (c->track_off) { /* keep the books, check nothing */
        if (n == 1 && !t->ambiguous)
            for (uint64_t k = h->begin; k < h->end && k - t->h.begin < 64; k++)
                if (k >= t->h.begin)
                    t->covered |= 1ull << (k - t->h.begin);
        return;
    }
    if (n == 0) {
        fail_at(c, "PULL_REPLY of [%llu, %llu) req %u that no waiting PULL asked for",
                (unsigned long long)h->begin, (unsigned long long)h->end, h->req);
        return;
    }
    if (n > 1 || t->ambiguous)
        return;
    if (h->begin < t->h.begin || h->end > t->h.end) {
        fail_at(c, "PULL_REPLY of [%llu, %llu) for a PULL of [%llu, %llu)",
                (unsigned long long)h->begin, (unsigned long long)h->end,
                (unsigned long long)t->h.begin, (unsigned long long)t->h.end);
        return;
    }
    if (c->cons == CONS_BSP && h->clock < t->h.clock) {
        fail_at(c, "BSP PULL for step %lld answered with version %lld", (long long)t->h.clock,
                (long long)h->clock);
        return;
    }
    if (t->refused) {
        fail_at(c, "PULL_REPLY to a PULL already refused");
        return;
    }
    for (uint64_t k = h->begin; k < h->end; k++) {
        uint64_t bit = 1ull << (k - t->h.begin);
        if (t->covered & bit) {
            fail_at(c, "key %llu sent twice to one PULL of [%llu, %llu)", (unsigned long long)k,
                    (unsigned long long)t->h.begin, (unsigned long long)t->h.end);
            return;
        }
        t->covered |= bit;
    }
    t->answered_now = 1;
}

/* The sparse tables of a server with config bit 2 of the second byte (not
 * under SSP, which refuses them): a bounded one and an unbounded one. */
static const rows_table_t fuzz_row_tables[2] = {{.id = 3, .dim = 2, .rows = 40},
                                                {.id = 5, .dim = 3, .rows = 0}};

/* The dim of the fuzz server's table id, or 0 when it has none such. */
static size_t fuzz_row_dim(const ctx_t *c, int id)
{
    for (int k = 0; c->rows && k < 2; k++)
        if (fuzz_row_tables[k].id == (uint32_t)id)
            return fuzz_row_tables[k].dim;
    return 0;
}

/* An ERROR to a waiting request (not the current message). */
static void waiter_error(ctx_t *c, const uint8_t *peer, size_t peer_len, const wire_hdr_t *h)
{
    c->other_errors++;
    if (h->status != WIRE_E_STOPPING && h->status != WIRE_E_LOST && h->status != WIRE_E_INTERNAL) {
        fail_at(c, "ERROR %d (%s) to a waiting request", h->status, wire_error_name(h->status));
        return;
    }
    drop_wait(c, peer, peer_len, h->req, 0);
    int n;
    track_t *t = find_pull(c, peer, peer_len, h->req, &n);
    if (n != 1 || t->ambiguous)
        return;
    if (c->track_off) /* the shadows are unsure: keep the books only */
        t->refused = 1;
    else if (h->status == WIRE_E_INTERNAL)
        fail_at(c, "ERROR internal to a waiting PULL");
    else if (h->status == WIRE_E_LOST && !halted_lost(c))
        fail_at(c, "ERROR lost to a PULL, but no trainer is lost (or BSP goes on)");
    else if (h->status == WIRE_E_STOPPING && !(c->stopping && t->h.clock >= c->stop_step))
        fail_at(c, "ERROR stopping to a PULL for step %lld, the job stops at %lld%s",
                (long long)t->h.clock, (long long)c->stop_step, c->stopping ? "" : " (not asked)");
    t->refused = 1;
    t->answered_now = 1;
}

/* A STATS reply: named counters that must say what the server says of
 * itself; a mismatch is a failure. */
static void check_stats_reply(ctx_t *c, const uint8_t *pb, size_t plen)
{
    wire_stats_t st;
    server_stats_t ss;
    err_t err;
    server_get_stats(c->s, &ss);
    int first;
    int lost = server_lost(c->s, &first);
    if (wire_stats_decode(pb, plen, &st, &err) != 0)
        fail_at(c, "the server sent a STATS reply it cannot decode: %s", err.msg);
    else if (st.version != server_version(c->s) || st.pushes != ss.pushes ||
             st.pulls != ss.pulls || st.updates != ss.updates || st.errors != ss.errors ||
             st.lost != lost || st.first_lost != first || st.lost != n_lost(c) ||
             st.rows != ss.rows || st.rows_created != ss.rows_created ||
             st.rows_bytes != ss.rows_bytes)
        fail_at(c, "STATS says version %lld, %llu pushes, %d lost; the server has %ld, %llu, %d",
                (long long)st.version, (unsigned long long)st.pushes, st.lost,
                server_version(c->s), (unsigned long long)ss.pushes, lost);
}

/* One decoded reply h (payload pb, plen bytes) to peer pe: checked for its
 * type and, when it answers the current request, tracked. */
static void check_reply(ctx_t *c, const uint8_t *pe, size_t peer_len, const wire_hdr_t *h,
                        const uint8_t *pb, size_t plen, const float *params)
{
    int own = same_peer(pe, peer_len, c->peer, c->peer_len) &&
              (!c->req_known || h->req == c->req);
    switch (h->type) {
    case WIRE_ERROR:
        if (h->status < WIRE_E_VERSION || h->status > WIRE_E_LOST || plen == 0)
            fail_at(c, "ERROR with status %d and %zu bytes of text", h->status, plen);
        if (own) {
            c->own_errors++;
            c->own_status = h->status;
            int np;
            track_t *t = find_pull(c, pe, peer_len, h->req, &np);
            if (np == 1 && t->ambiguous == 0 && t == &c->track[c->n_track - 1] &&
                (h->status == WIRE_E_STOPPING || h->status == WIRE_E_LOST))
                t->answered_now = 1; /* the current PULL, refused */
        } else {
            waiter_error(c, pe, peer_len, h);
        }
        break;
    case WIRE_PULL_REPLY:
        c->others++;
        if (h->begin < c->begin || h->end > c->end)
            fail_at(c, "PULL_REPLY of [%llu, %llu) outside the shard [%zu, %zu)",
                    (unsigned long long)h->begin, (unsigned long long)h->end, c->begin, c->end);
        else if (h->elem == WIRE_F32 && memcmp(pb, params + (h->begin - c->begin), plen) != 0)
            fail_at(c, "PULL_REPLY of [%llu, %llu) is not the shard's parameters",
                    (unsigned long long)h->begin, (unsigned long long)h->end);
        else
            cover(c, pe, peer_len, h);
        break;
    case WIRE_PULL_ROWS: { /* rows of a table it holds, as many as the ids asked */
        size_t dim = fuzz_row_dim(c, h->status);
        drop_wait(c, pe, peer_len, h->req, WIRE_PULL_ROWS);
        if (h->elem != WIRE_F32 || !dim || h->count != (h->end - h->begin) * dim)
            fail_at(c, "PULL_ROWS reply of table %d (dim %zu), elem %d, [%llu, %llu), count %llu",
                    h->status, dim, h->elem, (unsigned long long)h->begin,
                    (unsigned long long)h->end, (unsigned long long)h->count);
        c->others++;
        break;
    }
    case WIRE_STATS:
        check_stats_reply(c, pb, plen);
        c->others++;
        break;
    case WIRE_BARRIER:
    case WIRE_CHECKPOINT:
        drop_wait(c, pe, peer_len, h->req, h->type);
        /* fall through */
    case WIRE_CLOCK: /* a heartbeat may be answered */
    case WIRE_SHUTDOWN:
        c->others++;
        break;
    default:
        fail_at(c, "the server sent a %s", wire_type_name(h->type));
    }
}

/* The send callback: checks and records one reply. */
static int on_send(void *vctx, const tframe_t *f, int n, int zc)
{
    ctx_t *c = vctx;
    if (c->fail_send) {
        c->fail_send = 0;
        c->sends_failed++;
        return -1;
    }
    c->rep->replies++;
    if (n != 2 && n != 3) {
        fail_at(c, "reply of %d frames", n);
        return 0;
    }
    if (f[0].size == 0 || f[0].size > PEER_LIMIT) {
        fail_at(c, "reply to a peer of %zu bytes", f[0].size);
        return 0;
    }
    size_t plen = n == 3 ? f[2].size : 0;
    /* read every byte of every frame (ASan checks them), from exact copies */
    uint8_t *pe = malloc(f[0].size), *hb = malloc(f[1].size ? f[1].size : 1),
            *pb = malloc(plen ? plen : 1);
    if (!pe || !hb || !pb)
        abort();
    memcpy(pe, f[0].data, f[0].size);
    memcpy(hb, f[1].data, f[1].size);
    if (plen)
        memcpy(pb, f[2].data, plen);
    size_t peer_len = f[0].size;
    wire_hdr_t h;
    int code;
    err_t err;
    if (wire_decode(hb, f[1].size, &h, &code, &err) != 0) {
        fail_at(c, "the server sent a header it cannot decode: %s", err.msg);
        goto out;
    }
    if (wire_check_payload(&h, plen, &code, &err) != 0) {
        fail_at(c, "the server sent a bad %s reply (keys [%llu, %llu), count %llu): %s",
                wire_type_name(h.type), (unsigned long long)h.begin, (unsigned long long)h.end,
                (unsigned long long)h.count, err.msg);
        goto out;
    }
    if (h.sender != SERVER_RANK)
        fail_at(c, "reply from sender %d, the server is rank %d", h.sender, SERVER_RANK);
    size_t sb, se;
    const float *params = server_params(c->s, &sb, &se);
    if (n == 3 && zc <= 2 && plen && h.type == WIRE_PULL_REPLY && h.elem == WIRE_F32 &&
        ((const uint8_t *)f[2].data < (const uint8_t *)params ||
         (const uint8_t *)f[2].data + plen > (const uint8_t *)(params + c->len)))
        fail_at(c, "a zero-copy %s payload outside the shard's parameters", wire_type_name(h.type));
    trace_hdr("  <-", pe, peer_len, &h, plen);
    check_reply(c, pe, peer_len, &h, pb, plen, params);
out:
    free(pe);
    free(hb);
    free(pb);
    return 0;
}

/* The observer's send callback: keeps a CHECKPOINT reply's payload. */
static int on_snap(void *vctx, const tframe_t *f, int n, int zc)
{
    (void)zc;
    ctx_t *c = vctx;
    if (n != 3 || f[2].size != c->snap_n * sizeof(float)) {
        fail_at(c, "CHECKPOINT reply of %d frames, %zu bytes", n, n == 3 ? f[2].size : 0);
        return 0;
    }
    memcpy(c->snap2, f[2].data, f[2].size);
    return 0;
}

/* Reads the shard's parameters and optimizer state into c->snap2 through a
 * CHECKPOINT request (which changes nothing but the sender's heartbeat), on
 * behalf of a live trainer outside c->no_observer. Returns 0, or -1 if
 * there is none. */
static int snapshot(ctx_t *c)
{
    int who = -1;
    for (int t = 0; t < c->T && who < 0; t++)
        if (!c->tlost[t] && !(c->no_observer & (1 << t)))
            who = t;
    if (who < 0)
        return -1;
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_CHECKPOINT, who);
    uint8_t hb[WIRE_HDR_MAX];
    int hl = wire_encode(&h, hb, sizeof hb);
    err_t err;
    if (server_handle(c->s, (const uint8_t *)"observer", 8, hb, (size_t)hl, NULL, 0, 0, on_snap, c,
                      &err) != 0)
        fail_at(c, "CHECKPOINT for the observer failed: %s", err.msg);
    return 0;
}

/* The harness's saver (server_saver_t): the shard as a checkpoint file
 * under the root in ctx, as launch/cluster.c writes it. */
static int fuzz_save(void *ctx, const server_shard_t *sh, err_t *err)
{
    const char *root = ctx;
    char dir[700], path[800];
    if (ckptdir_step_dir(dir, sizeof dir, root, sh->step, err) != 0 ||
        ckptdir_part_path(path, sizeof path, root, sh->step, sh->index, sh->n_servers, err) != 0 ||
        fs_mkdirs(dir, err) != 0)
        return -1;
    checkpoint_t ck = {
        .step = (uint64_t)sh->step, .clock = (uint64_t)sh->version, .seed = sh->seed,
        .opt_kind = sh->optim->kind->id, .n_slots = sh->n_slots, .config_text = "# fuzz",
        .table = *sh->table, .params = (float *)sh->params, .opt_state = (float *)sh->state,
        .n_shards = sh->n_servers, .shard_index = sh->index,
        .shard_begin = sh->begin, .shard_end = sh->end,
    };
    return checkpoint_write(path, &ck, err);
}

/* The harness's saver of sparse rows: full or delta files next to the
 * shard, as launch/cluster.c writes them. */
static int fuzz_save_rows(void *ctx, rows_t *rows, int index, int n_servers, long step, int delta,
                          err_t *err)
{
    const char *root = ctx;
    char dir[700], path[800];
    if (ckptdir_step_dir(dir, sizeof dir, root, step, err) != 0 ||
        ckptdir_tables_path(path, sizeof path, dir, index, n_servers, delta, err) != 0 ||
        fs_mkdirs(dir, err) != 0)
        return -1;
    return delta ? rows_save_delta(rows, path, err) : rows_save(rows, path, err);
}

/* The model: two tensors, 17 parameters (shards of 9 and 8). */
static const param_table_t *fuzz_table(void)
{
    static param_table_t t;
    static int done;
    if (!done) {
        err_t err;
        memset(&t, 0, sizeof t);
        int w[2] = {3, 4}, b[1] = {5};
        param_spec_t *p = params_add(&t, "w", 2, w, INIT_GLOROT_UNIFORM, &err);
        if (!p || !params_add(&t, "b", 1, b, INIT_ZEROS, &err))
            abort();
        p->fan_in = 3;
        p->fan_out = 4;
        done = 1;
    }
    return &t;
}

static server_t *fuzz_server_new(unsigned cfg, unsigned cfg2, ctx_t *c)
{
    static const int trainers[4] = {2, 1, 3, 2};
    server_opts_t o = {
        .index = (cfg >> 2) & 1,
        .n_servers = 2,
        .n_trainers = trainers[(cfg >> 5) & 3],
        .rank = SERVER_RANK,
        .consistency = (cfg & 3) == 3 ? CONS_BSP : (consistency_t)(cfg & 3),
        .staleness = (cfg & 0x80) ? 0 : 1,
        .total_steps = 100,
        .seed = 11,
        .table = fuzz_table(),
        .optim = {.kind = optim_by_id((int)((cfg >> 3) & 3)),
                  .lr = 0.1,
                  .beta1 = 0.9,
                  .beta2 = 0.999,
                  .eps = 1e-8,
                  .momentum = 0.9,
                  .initial_accumulator = 0.1},
        .saver = {.write = (cfg2 & 1) && ckpt_root ? fuzz_save : NULL,
                  .write_rows = (cfg2 & 1) && ckpt_root ? fuzz_save_rows : NULL,
                  .ctx = (void *)ckpt_root},
        .continue_on_loss = (cfg2 >> 1) & 1,
    };
    /* sparse tables: with the server's optimizer, or Adagrad where it has no
     * row form (momentum) */
    rows_table_t rt[2] = {fuzz_row_tables[0], fuzz_row_tables[1]};
    optim_params_t row_optim = o.optim;
    row_optim.kind = optim_find("adagrad");
    if ((cfg2 & 4) && o.consistency != CONS_SSP) {
        for (int k = 0; k < 2; k++)
            rt[k].optim = optim_has_rows(&o.optim) ? NULL : &row_optim;
        o.row_tables = rt;
        o.n_row_tables = 2;
        o.row_max = 24; /* evictions too */
        c->rows = 1;
    }
    err_t err;
    server_t *s = server_new(&o, &err);
    if (!s)
        return NULL;
    c->T = o.n_trainers;
    c->cons = o.consistency;
    c->staleness = o.staleness;
    c->cont = o.continue_on_loss;
    c->slots = optim_slots(&o.optim);
    server_params(s, &c->begin, &c->end);
    c->len = c->end - c->begin;
    /* the trainers' silence is counted from now */
    if (server_check_trainers(s, 1 << 30, on_send, c, &err) != 0)
        fail_at(c, "server_check_trainers at the start: %s", err.msg);
    return s;
}

/* What the spec makes of one message, before the server sees it. */
typedef struct {
    int silent; /* no reply at all (bad peer identity) */
    int must_refuse; /* an ERROR must come */
    int code; /* ... with this code (0: any) */
    int decoded; /* h is valid */
    int code_req; /* h.req was read: the ERROR must echo it */
    wire_hdr_t h;
} verdict_t;

static void judge(ctx_t *c, const uint8_t *hdr, size_t hdr_len, const uint8_t *payload, size_t plen,
                  int extra, verdict_t *v)
{
    memset(v, 0, sizeof *v);
    if (c->peer_len == 0 || c->peer_len > PEER_LIMIT) {
        v->silent = 1;
        return;
    }
    if (extra > 0) {
        v->must_refuse = 1;
        v->code = WIRE_E_MALFORMED;
        return;
    }
    int code;
    err_t err;
    if (wire_decode(hdr, hdr_len, &v->h, &code, &err) != 0) {
        v->must_refuse = 1;
        v->code = code;
        v->code_req = code == WIRE_E_TYPE || code == WIRE_E_RANGE;
        return;
    }
    v->code_req = 1;
    if (wire_check_payload(&v->h, payload ? plen : 0, &code, &err) != 0) {
        v->must_refuse = 1;
        v->code = code;
        return;
    }
    v->decoded = 1;
    const wire_hdr_t *h = &v->h;
    int request = h->type != WIRE_PULL_REPLY && h->type != WIRE_ERROR &&
                  !(h->type == WIRE_PULL_ROWS && h->elem != WIRE_ROWS);
    int trainer = h->type != WIRE_STATS;
    const int rows = h->type == WIRE_PULL_ROWS || h->type == WIRE_PUSH_ROWS ||
                     h->type == WIRE_PEEK_ROWS;
    int carries = h->type == WIRE_PUSH || h->type == WIRE_BARRIER || rows; /* may carry a payload */
    if (!request || (payload && plen > 0 && !carries) ||
        (trainer && h->sender >= c->T) || (trainer && c->tlost[h->sender]) ||
        (rows && !c->rows) ||
        ((h->type == WIRE_PUSH || h->type == WIRE_PULL) &&
         (h->begin < c->begin || h->end > c->end)))
        v->must_refuse = 1;
    if (trainer && h->sender < c->T && c->tlost[h->sender] && !(payload && plen > 0 && !carries))
        v->code = WIRE_E_LOST; /* checked right after the sender */
}

/* Settles the tracked PULLs after a call: each must be answered in full or
 * refused as soon as it is ready or the job halts for it, and not before
 * (SSP). */
static void settle(ctx_t *c)
{
    int keep = 0;
    for (int i = 0; i < c->n_track; i++) {
        track_t *p = &c->track[i];
        uint64_t n = p->h.end - p->h.begin;
        uint64_t all = n == 64 ? ~0ull : (1ull << n) - 1;
        int done = p->refused || p->covered == all;
        if (!p->ambiguous && !c->track_off) {
            if (c->cons == CONS_SSP && p->answered_now && !p->refused && !ready(c, p->h.clock))
                fail_at(c, "SSP PULL for clock %lld answered while the slowest trainer is at %lld",
                        (long long)p->h.clock, (long long)shadow_min_clock(c));
            if (!done && (ready(c, p->h.clock) || halted_for(c, p->h.clock)) &&
                !c->tlost[p->h.sender])
                fail_at(c,
                        "%s PULL of [%llu, %llu) for clock %lld (req %u) not answered in full "
                        "at version %ld%s",
                        c->cons == CONS_BSP   ? "BSP"
                        : c->cons == CONS_ASP ? "ASP"
                                              : "SSP",
                        (unsigned long long)p->h.begin, (unsigned long long)p->h.end,
                        (long long)p->h.clock, p->h.req, server_version(c->s),
                        halted_for(c, p->h.clock) ? " (the job halts)" : "");
        }
        p->answered_now = 0;
        if (c->tlost[p->h.sender] && !done)
            done = 1; /* a lost trainer's waiting pulls are dropped */
        if (done)
            c->rep->pulls_covered += !p->refused;
        else
            c->track[keep++] = *p;
    }
    c->n_track = keep;
}

/* Checks the server after one message (replies already checked). */
static void after(ctx_t *c, const verdict_t *v, const server_stats_t *st0, long ver0, int rc,
                  int ambiguous, int frozen)
{
    server_stats_t st;
    server_get_stats(c->s, &st);
    long ver = server_version(c->s);
    if (rc != 0)
        fail_at(c, "server_handle returned %d, no send failed", rc);
    if (ver < ver0 || ver > ver0 + 1)
        fail_at(c, "version went from %ld to %ld in one message", ver0, ver);
    int fresh = snapshot(c) == 0;
    int have = c->snap_ok && fresh;
    if (v->silent) {
        if (c->own_errors || c->other_errors || c->others)
            fail_at(c, "a message from a bad peer identity was answered");
        if (st.errors != st0->errors + 1)
            fail_at(c, "a message from a bad peer identity was not counted as an error");
    } else if (ambiguous) {
        /* a waiting request has this peer and req: no telling the replies apart */
    } else if (c->own_errors > 1) {
        fail_at(c, "%d ERROR replies to one message", c->own_errors);
    } else if (c->own_errors == 1) {
        c->rep->refused++;
        if (c->others || c->other_errors)
            fail_at(c, "an ERROR and %d other replies to one message", c->others + c->other_errors);
        if (v->code && c->own_status != v->code)
            fail_at(c, "ERROR status %d (%s), the spec says %d (%s)", c->own_status,
                    wire_error_name(c->own_status), v->code, wire_error_name(v->code));
        if (ver != ver0 || st.pushes != st0->pushes || st.pulls != st0->pulls ||
            st.updates != st0->updates || st.rows != st0->rows ||
            st.rows_created != st0->rows_created || st.rows_bytes != st0->rows_bytes)
            fail_at(c, "a refused %s changed the version or the counters",
                    v->decoded ? wire_type_name(v->h.type) : "message");
        if (have) {
            if (memcmp(c->snap, c->snap2, c->snap_n * sizeof(float)) != 0)
                fail_at(c, "a refused %s changed the parameters or optimizer state",
                        v->decoded ? wire_type_name(v->h.type) : "message");
            c->rep->refused_checked++;
        }
    } else if (v->must_refuse) {
        fail_at(c, "a malformed message (%s, code %d) was accepted",
                v->decoded || v->code_req ? wire_type_name(v->h.type) : "?", v->code);
    }
    if (v->must_refuse)
        c->rep->expected_refusals++;
    /* BSP halted for a lost trainer: no step may complete, nothing change */
    if (frozen &&
        (ver != ver0 || (have && memcmp(c->snap, c->snap2, c->snap_n * sizeof(float)) != 0)))
        fail_at(c, "BSP halted for a lost trainer, but a %s changed the shard (version %ld -> %ld)",
                v->decoded ? wire_type_name(v->h.type) : "message", ver0, ver);
    c->snap_ok = fresh;
    float *t = c->snap;
    c->snap = c->snap2;
    c->snap2 = t;

    /* no ERROR to its peer and req at all: accepted for sure */
    int accepted = v->decoded && !v->silent && !c->own_errors;
    if (v->decoded && !v->silent && c->own_errors && ambiguous)
        c->track_off = 1; /* refused, or a waiting request's ERROR? the shadows cannot tell */
    if (accepted) {
        const wire_hdr_t *h = &v->h;
        int tr = h->sender;
        if (h->type == WIRE_PUSH) { /* the SSP shadow */
            c->tgot[tr] += h->end - h->begin; /* keys, whatever the encoding (top-k) */
            if (c->tgot[tr] == c->len) {
                c->tgot[tr] = 0;
                c->tclock[tr]++;
            }
        } else if (h->type == WIRE_SHUTDOWN && h->status != WIRE_SHUTDOWN_ASK_STOP) {
            c->tdone[tr] = 1;
        }
        /* a BARRIER, CHECKPOINT, PULL_ROWS or PEEK_ROWS not answered yet
         * waits (a PEEK_ROWS for a PULL_ROWS reply) */
        if ((h->type == WIRE_BARRIER || h->type == WIRE_CHECKPOINT || h->type == WIRE_PULL_ROWS ||
             h->type == WIRE_PEEK_ROWS) &&
            find_wait(c, c->peer, c->peer_len, h->req, 0) < 0 && !c->others)
            add_wait(c, c->peer, c->peer_len, h->req,
                     h->type == WIRE_PEEK_ROWS ? WIRE_PULL_ROWS : h->type);
    }
    settle(c);
}

/* Feeds one message to the server and checks what it does. Returns 0, or
 * -1 once a send failed (server_run would give up on the server). */
static int one_msg(ctx_t *c, const uint8_t *peer, size_t peer_len, const uint8_t *hdr,
                   size_t hdr_len, const uint8_t *payload, size_t plen, int extra, int fail_send)
{
    c->peer = peer;
    c->peer_len = peer_len;
    verdict_t v;
    judge(c, hdr, hdr_len, payload, plen, extra, &v);
    c->req_known = v.decoded || v.code_req;
    if (tracing()) {
        if (v.decoded || v.code_req)
            trace_hdr("->", peer, peer_len, &v.h, plen);
        else
            fprintf(stderr, "-> %zu-byte peer: malformed (code %d), %d extra frames\n", peer_len,
                    v.code, extra);
    }
    c->req = v.h.req;
    int ambiguous = c->req_known && (find_wait(c, peer, peer_len, v.h.req, 0) >= 0);
    int np;
    if (c->req_known && c->track_full)
        ambiguous = 1; /* a PULL with this peer and req may wait, untracked */
    if (c->req_known && find_pull(c, peer, peer_len, v.h.req, &np)) {
        ambiguous = 1;
        for (int i = 0; i < c->n_track; i++) /* no telling their replies apart */
            if (c->track[i].h.req == v.h.req &&
                same_peer(c->track[i].peer, c->track[i].peer_len, peer, peer_len))
                c->track[i].ambiguous = 1;
    }
    /* a PULL that may be accepted is tracked before its replies come */
    int tracked = 0;
    if (v.decoded && v.h.type == WIRE_PULL && !v.must_refuse) {
        if (c->n_track == TRACK_MAX || v.h.end - v.h.begin > 64) {
            c->track_off = c->track_full = 1;
        } else {
            track_t *p = &c->track[c->n_track++];
            memset(p, 0, sizeof *p);
            memcpy(p->peer, peer, peer_len);
            p->peer_len = peer_len;
            p->h = v.h;
            p->ambiguous = ambiguous;
            tracked = 1;
        }
    }
    /* CHECKPOINT WIRE_CKPT_STOP_AT stops the job at its clock before it flushes the
     * waiting pulls: the shadow stops first (and goes back if refused) */
    int stopping0 = c->stopping;
    int64_t stop_step0 = c->stop_step;
    if (v.decoded && !v.must_refuse && v.h.type == WIRE_CHECKPOINT && v.h.status == WIRE_CKPT_STOP_AT &&
        !halted_lost(c)) {
        c->stopping = 1;
        c->stop_step = v.h.clock;
    }
    server_stats_t st0;
    server_get_stats(c->s, &st0);
    long ver0 = server_version(c->s);
    int frozen = halted_lost(c);
    c->own_errors = c->other_errors = c->others = 0;
    c->fail_send = fail_send;
    err_t err;
    memset(&err, 0, sizeof err);
    int rc =
        server_handle(c->s, peer, peer_len, hdr, hdr_len, payload, plen, extra, on_send, c, &err);
    if (c->own_errors) {
        c->stopping = stopping0;
        c->stop_step = stop_step0;
    }
    if (tracked && c->own_errors == 1) {
        track_t *p = &c->track[c->n_track - 1];
        if (c->own_status == WIRE_E_STOPPING || c->own_status == WIRE_E_LOST)
            p->refused = 1; /* refused as the job halts: settle() checks it had to be */
        else
            c->n_track--; /* refused as a bad request: not waiting */
    }
    c->rep->messages++;
    if (c->sends_failed) {
        if (rc != -1)
            fail_at(c, "a send failed but server_handle returned %d", rc);
        return -1;
    }
    /* a refused request leaves a log line (a pull refused as the job halts
     * need not: that is no fault of the request) */
    if (c->own_errors && !err_ok(&err) && c->own_status != WIRE_E_STOPPING &&
        c->own_status != WIRE_E_LOST)
        fail_at(c, "an ERROR without a log line");
    after(c, &v, &st0, ver0, rc, ambiguous, frozen);
    return 0;
}

/* Operation: the trainers in mask fall silent and are given up for lost;
 * the others send a heartbeat (CLOCK) first. */
static void op_lose(ctx_t *c, int mask)
{
    if (++c->lose_ops > LOSE_OPS_MAX)
        return; /* the tests' clock is real: bound the sleeping */
    int lose = 0, expect = 0;
    for (int t = 0; t < c->T; t++)
        if ((mask & (1 << t)) && !c->tlost[t] && !c->tdone[t]) {
            lose |= 1 << t;
            expect++;
        }
    c->no_observer = mask;
    fuzz_clock_advance(LOSE_AFTER_MS);
    for (int t = 0; t < c->T; t++) {
        if (c->tlost[t] || (mask & (1 << t)))
            continue;
        wire_hdr_t h;
        wire_hdr_init(&h, WIRE_CLOCK, t);
        uint8_t hb[WIRE_HDR_MAX];
        int hl = wire_encode(&h, hb, sizeof hb);
        char peer[3] = {'t', (char)('0' + t), 0};
        if (one_msg(c, (const uint8_t *)peer, 2, hb, (size_t)hl, NULL, 0, 0, 0) != 0)
            return;
    }
    for (int t = 0; t < c->T; t++)
        if (lose & (1 << t))
            c->tlost[t] = 1;
    c->peer = (const uint8_t *)"";
    c->peer_len = 0; /* no request: every ERROR is to a waiting one */
    c->req_known = 1;
    c->own_errors = c->other_errors = c->others = 0;
    long ver0 = server_version(c->s);
    err_t err;
    if (tracing())
        fprintf(stderr, "== lose trainers 0x%x\n", lose);
    int got = server_check_trainers(c->s, LOSE_AFTER_MS / 2, on_send, c, &err);
    c->no_observer = 0;
    if (got != expect)
        fail_at(c, "server_check_trainers lost %d trainers, expected %d (%s)", got, expect,
                err.msg);
    if (server_lost(c->s, NULL) != n_lost(c))
        fail_at(c, "server_lost says %d, expected %d", server_lost(c->s, NULL), n_lost(c));
    long ver = server_version(c->s);
    if (ver < ver0 || ver > ver0 + 1)
        fail_at(c, "version went from %ld to %ld on losing trainers", ver0, ver);
    c->snap_ok = snapshot(c) == 0;
    float *t = c->snap;
    c->snap = c->snap2;
    c->snap2 = t;
    settle(c);
}

int fuzz_server_run(const uint8_t *data, size_t size, fuzz_report_t *rep)
{
    fuzz_report_t local;
    if (!rep)
        rep = &local;
    memset(rep, 0, sizeof *rep);
    in_t in = {data, size};
    ctx_t c;
    memset(&c, 0, sizeof c);
    c.rep = rep;
    unsigned cfg = get8(&in), cfg2 = get8(&in);
    if (tracing())
        fprintf(stderr, "== config 0x%02x 0x%02x\n", cfg, cfg2);
    c.s = fuzz_server_new(cfg, cfg2, &c);
    if (!c.s)
        return broken(rep->msg, sizeof rep->msg, "server_new failed");
    c.snap_n = c.len * (1 + (size_t)c.slots);
    c.snap = calloc(c.snap_n, sizeof(float));
    c.snap2 = calloc(c.snap_n, sizeof(float));
    float *start = malloc(c.len * sizeof(float));
    if (!c.snap || !c.snap2 || !start)
        abort();
    size_t b, e;
    memcpy(start, server_params(c.s, &b, &e), c.len * sizeof(float));
    c.snap_ok = snapshot(&c) == 0;
    float *t = c.snap;
    c.snap = c.snap2;
    c.snap2 = t;

    while (in.n > 0 && !c.bad) {
        unsigned fl = get8(&in);
        if ((fl & 3) == FUZZ_OP) {
            unsigned op = get8(&in);
            if ((op & 3) == FUZZ_OP_LOSE)
                op_lose(&c, (int)(op >> 2) & 7);
            else if ((op & 3) == FUZZ_OP_STOP && tracing())
                fprintf(stderr, "== stop requested\n");
            if ((op & 3) == FUZZ_OP_STOP)
                server_request_stop(c.s);
            continue;
        }
        uint8_t *peer_blk, *hdr_blk, *pay_blk = NULL;
        int who = fl >> 6;
        size_t peer_len;
        const uint8_t *peer;
        if (who < 3) {
            char name[3] = {'t', (char)('0' + who), 0};
            in_t pin = {(const uint8_t *)name, 2};
            peer = take(&pin, 2, 0, &peer_blk);
            peer_len = 2;
        } else {
            unsigned l = get8(&in);
            peer_len = l == 255 ? PEER_LIMIT + 1 : l;
            peer = take(&in, peer_len, 0, &peer_blk);
        }
        const uint8_t *hdr;
        size_t hdr_len;
        if (fl & FUZZ_FIELDS_HDR) {
            wire_hdr_t h;
            wire_hdr_init(&h, 0, 0);
            h.type = (int)get8(&in);
            h.sender = (int)get8(&in);
            h.clock = get8(&in);
            h.begin = get8(&in);
            h.end = get8(&in);
            h.elem = (int)get8(&in);
            h.count = get8(&in);
            h.req = get8(&in);
            h.status = (int)get8(&in);
            uint8_t hb[WIRE_HDR_MAX];
            hdr_len = (size_t)wire_encode(&h, hb, sizeof hb);
            in_t hin = {hb, hdr_len};
            hdr = take(&hin, hdr_len, 0, &hdr_blk);
        } else {
            hdr_len = get8(&in);
            hdr = take(&in, hdr_len, 0, &hdr_blk);
        }
        const uint8_t *payload = NULL;
        size_t plen = 0;
        if (fl & FUZZ_PAYLOAD) {
            plen = (size_t)get_le(&in, 2);
            payload = take(&in, plen, (fl & FUZZ_UNALIGNED) ? 1 : 0, &pay_blk);
        }
        int failed = one_msg(&c, peer, peer_len, hdr, hdr_len, payload, plen, fl & 3,
                             (fl & FUZZ_SEND_FAILS) != 0);
        free(peer_blk);
        free(hdr_blk);
        free(pay_blk);
        if (failed)
            break;
    }
    rep->params_changed = memcmp(start, server_params(c.s, &b, &e), c.len * sizeof(float)) != 0;
    rep->version = server_version(c.s);
    server_destroy(&c.s);
    free(start);
    free(c.snap);
    free(c.snap2);
    return c.bad ? -1 : 0;
}

int fuzz_server_one(const uint8_t *data, size_t size)
{
    return fuzz_server_run(data, size, NULL);
}
