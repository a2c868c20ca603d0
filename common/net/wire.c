/* wire.c - encoding and validation of the parameter-server message header
 * and of the STATS reply's payload (see wire.h and docs/PROTOCOL.md).
 *
 * Encoding goes through msgpack-c's packer, writing into the caller's fixed
 * buffer. Decoding does not use msgpack-c's unpacker, on purpose: it mallocs
 * a zone per call (8 KiB), and it allocates an array's element table as soon
 * as it reads the array's length, before the elements, so a 5-byte frame
 * "dd ff ff ff ff" (array32 of 2^32-1) makes it ask malloc for 128 GiB. The
 * header is a flat array of 10 integers, so the decoder here reads just that
 * subset of msgpack, bounds-checked byte by byte, with no allocation; any
 * other msgpack value is recognised by its first byte and refused with its
 * name. The tests check that msgpack-c reads whatever this accepts alike.
 * The STATS payload (a map of named integers) is read the same way.
 */
#include "common/net/wire.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <msgpack.h>

void wire_hdr_init(wire_hdr_t *h, int type, int sender)
{
    memset(h, 0, sizeof *h);
    h->version = WIRE_VERSION;
    h->type = type;
    h->sender = sender;
    h->elem = WIRE_F32;
}

/* ---------------------------------------------------------------- encode */

/* The packer's output: a fixed buffer that refuses to overflow. */
typedef struct {
    uint8_t *buf;
    size_t cap, len;
} fixbuf_t;

/* msgpack_packer_write callback: appends n bytes; returns 0, or -1 (nothing
 * written) if they do not fit. */
static int fixbuf_write(void *data, const char *src, size_t n)
{
    fixbuf_t *b = data;
    if (n > b->cap - b->len)
        return -1;
    memcpy(b->buf + b->len, src, n);
    b->len += n;
    return 0;
}

int wire_encode(const wire_hdr_t *h, uint8_t *buf, size_t cap)
{
    fixbuf_t b = {buf, cap, 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, fixbuf_write);
    /* each pack returns the callback's status; stop at the first overflow */
    if (msgpack_pack_array(&pk, WIRE_HDR_FIELDS) != 0 || msgpack_pack_int(&pk, h->version) != 0 ||
        msgpack_pack_int(&pk, h->type) != 0 || msgpack_pack_int(&pk, h->sender) != 0 ||
        msgpack_pack_int64(&pk, h->clock) != 0 || msgpack_pack_uint64(&pk, h->begin) != 0 ||
        msgpack_pack_uint64(&pk, h->end) != 0 || msgpack_pack_int(&pk, h->elem) != 0 ||
        msgpack_pack_uint64(&pk, h->count) != 0 || msgpack_pack_uint32(&pk, h->req) != 0 ||
        msgpack_pack_int(&pk, h->status) != 0)
        return -1;
    return (int)b.len;
}

/* ---------------------------------------------------------------- decode */

/* A read cursor over [p, end). */
typedef struct {
    const uint8_t *p, *end;
} rd_t;

/* A msgpack integer: neg ? i (< 0) : u. */
typedef struct {
    int neg;
    uint64_t u;
    int64_t i;
} mpint_t;

/* What rd_int found. */
enum { RD_INT, RD_SHORT, RD_OTHER };

/* Big-endian unsigned of n bytes at p. */
static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int k = 0; k < n; k++)
        v = v << 8 | p[k];
    return v;
}

/* The kind of msgpack value whose first byte is b, for messages ("a string");
 * NULL for the integer formats. */
static const char *mp_kind(uint8_t b)
{
    if (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3))
        return NULL;
    if (b <= 0x8f || b == 0xde || b == 0xdf)
        return "a map";
    if (b <= 0x9f || b == 0xdc || b == 0xdd)
        return "an array";
    if (b <= 0xbf || (b >= 0xd9 && b <= 0xdb))
        return "a string";
    switch (b) {
    case 0xc0:
        return "nil";
    case 0xc1:
        return "the never-used byte 0xc1";
    case 0xc2:
    case 0xc3:
        return "a boolean";
    case 0xc4:
    case 0xc5:
    case 0xc6:
        return "binary data";
    case 0xca:
    case 0xcb:
        return "a float";
    default: /* 0xc7..0xc9, 0xd4..0xd8 */
        return "an extension";
    }
}

/* Reads one msgpack integer (any of its encodings) into *v. Returns RD_INT
 * (cursor advanced), RD_SHORT if the bytes end inside it, or RD_OTHER if it
 * is another kind of value (*kind names it; cursor not advanced). */
static int rd_int(rd_t *r, mpint_t *v, const char **kind)
{
    if (r->p >= r->end)
        return RD_SHORT;
    uint8_t b = *r->p;
    v->neg = 0;
    v->i = 0;
    if (b <= 0x7f) {
        v->u = b;
        r->p++;
        return RD_INT;
    }
    if (b >= 0xe0) {
        v->neg = 1;
        v->i = (int8_t)b;
        r->p++;
        return RD_INT;
    }
    if (b < 0xcc || b > 0xd3) {
        *kind = mp_kind(b);
        return RD_OTHER;
    }
    int n = 1 << ((b - 0xcc) & 3); /* 0xcc..0xcf: uint 8..64, 0xd0..0xd3: int 8..64 */
    if ((size_t)(r->end - r->p) < 1 + (size_t)n)
        return RD_SHORT;
    uint64_t raw = be(r->p + 1, n);
    r->p += 1 + n;
    if (b <= 0xcf) {
        v->u = raw;
        return RD_INT;
    }
    /* signed: sign-extend the n-byte two's complement value */
    int64_t s;
    if (n == 8)
        s = (raw >> 63) ? -(int64_t)(~raw) - 1 : (int64_t)raw;
    else {
        uint64_t sign = (uint64_t)1 << (8 * n - 1);
        s = (raw & sign) ? (int64_t)raw - (int64_t)(sign << 1) : (int64_t)raw;
    }
    if (s < 0) {
        v->neg = 1;
        v->i = s;
    } else {
        v->u = (uint64_t)s;
    }
    return RD_INT;
}

/* Writes v in decimal into buf (21 bytes are enough); returns buf. */
static const char *mpint_str(const mpint_t *v, char *buf, size_t len)
{
    if (v->neg)
        snprintf(buf, len, "%lld", (long long)v->i);
    else
        snprintf(buf, len, "%llu", (unsigned long long)v->u);
    return buf;
}

/* Header fields in wire order, with the largest value each accepts. ENUM
 * fields (version, type, elem) take any integer, judged once all are read. */
enum { F_ENUM, F_NUM };
static const struct {
    const char *name;
    int kind;
    uint64_t max;
} fields[WIRE_HDR_FIELDS] = {
    {"version", F_ENUM, 0},        {"type", F_ENUM, 0},
    {"sender", F_NUM, INT_MAX},    {"clock", F_NUM, INT64_MAX},
    {"begin", F_NUM, UINT64_MAX},  {"end", F_NUM, UINT64_MAX},
    {"elem", F_ENUM, 0},           {"count", F_NUM, UINT64_MAX},
    {"req", F_NUM, UINT32_MAX},    {"status", F_NUM, INT_MAX},
};

static int elem_known(int e)
{
    return e == WIRE_F32 || e == WIRE_F16 || e == WIRE_BF16 || e == WIRE_TOPK || e == WIRE_ROWS ||
           e == WIRE_TEXT || e == WIRE_MSGPACK;
}

/* Stores c in *code and returns -1 (err already set). */
static int fail(int *code, int c)
{
    if (code)
        *code = c;
    return -1;
}

/* The error of element k: rd_int's result rc (kind names a non-integer), or
 * an integer v out of the field's range. Returns -1 with *code and err. Kept
 * out of line so that rd_field's path for good headers stays short. */
__attribute__((cold, noinline)) static int field_error(int k, int rc, const char *kind,
                                                       const mpint_t *v, int *code, err_t *err)
{
    const char *name = fields[k].name;
    char num[32];
    if (rc == RD_SHORT)
        err_set(err, "header: truncated in element %d (%s)", k, name);
    else if (rc == RD_OTHER)
        err_set(err, "header: element %d (%s) is %s, not an integer", k, name, kind);
    else if (v->neg)
        err_set(err, "header: element %d (%s) is negative (%s)", k, name,
                mpint_str(v, num, sizeof num));
    else
        err_set(err, "header: element %d (%s) is %llu, more than %llu", k, name,
                (unsigned long long)v->u, (unsigned long long)fields[k].max);
    return fail(code, WIRE_E_MALFORMED);
}

/* Reads element k into h; returns 0, or -1 with *code and err. */
static int rd_field(rd_t *r, int k, wire_hdr_t *h, mpint_t *v, int *code, err_t *err)
{
    const char *kind = NULL;
    int rc = rd_int(r, v, &kind);
    if (rc != RD_INT)
        return field_error(k, rc, kind, v, code, err);
    if (fields[k].kind == F_ENUM) {
        /* a value out of int cannot be a known one: stored as -1, unknown too */
        int ok = v->neg ? v->i >= INT_MIN : v->u <= INT_MAX;
        int val = ok ? (int)(v->neg ? v->i : (int64_t)v->u) : -1;
        if (k == 0)
            h->version = val;
        else if (k == 1)
            h->type = val;
        else
            h->elem = val;
        return 0;
    }
    if (v->neg || v->u > fields[k].max)
        return field_error(k, rc, kind, v, code, err);
    switch (k) {
    case 2:
        h->sender = (int)v->u;
        break;
    case 3:
        h->clock = (int64_t)v->u;
        break;
    case 4:
        h->begin = v->u;
        break;
    case 5:
        h->end = v->u;
        break;
    case 7:
        h->count = v->u;
        break;
    case 8:
        h->req = (uint32_t)v->u;
        break;
    default: /* 9 */
        h->status = (int)v->u;
        break;
    }
    return 0;
}

int wire_decode(const void *buf, size_t len, wire_hdr_t *h, int *code, err_t *err)
{
    memset(h, 0, sizeof *h);
    if (len == 0) {
        err_set(err, "header: empty frame");
        return fail(code, WIRE_E_MALFORMED);
    }
    rd_t r = {buf, (const uint8_t *)buf + len};
    uint8_t b = *r.p;
    uint64_t n;
    if (b >= 0x90 && b <= 0x9f) {
        n = b & 0x0f;
        r.p++;
    } else if (b == 0xdc || b == 0xdd) {
        int w = b == 0xdc ? 2 : 4;
        if (len < 1 + (size_t)w) {
            err_set(err, "header: truncated in the array length");
            return fail(code, WIRE_E_MALFORMED);
        }
        n = be(r.p + 1, w);
        r.p += 1 + w;
    } else {
        const char *kind = mp_kind(b);
        err_set(err, "header: not a msgpack array but %s (first byte 0x%02x)",
                kind ? kind : "an integer", b);
        return fail(code, WIRE_E_MALFORMED);
    }
    if (n == 0) {
        err_set(err, "header: empty array, expected %d elements", WIRE_HDR_FIELDS);
        return fail(code, WIRE_E_MALFORMED);
    }

    /* the version first: a header of another version may differ in the rest */
    mpint_t v[WIRE_HDR_FIELDS];
    if (rd_field(&r, 0, h, &v[0], code, err) != 0)
        return -1;
    if (v[0].neg || v[0].u != WIRE_VERSION) {
        char num[32];
        err_set(err, "header: protocol version %s, this build speaks %d",
                mpint_str(&v[0], num, sizeof num), WIRE_VERSION);
        return fail(code, WIRE_E_VERSION);
    }
    if (n != WIRE_HDR_FIELDS) {
        err_set(err, "header: array of %llu elements, expected %d", (unsigned long long)n,
                WIRE_HDR_FIELDS);
        return fail(code, WIRE_E_MALFORMED);
    }
    for (int k = 1; k < WIRE_HDR_FIELDS; k++)
        if (rd_field(&r, k, h, &v[k], code, err) != 0)
            return -1;
    if (r.p != r.end) {
        err_set(err, "header: %zu trailing bytes after the array", (size_t)(r.end - r.p));
        return fail(code, WIRE_E_MALFORMED);
    }

    char num[32];
    if (h->type < WIRE_PUSH || h->type > WIRE_TYPE_MAX) {
        err_set(err, "header: unknown message type %s", mpint_str(&v[1], num, sizeof num));
        return fail(code, WIRE_E_TYPE);
    }
    if (!elem_known(h->elem)) {
        err_set(err, "header: unknown element type %s", mpint_str(&v[6], num, sizeof num));
        return fail(code, WIRE_E_MALFORMED);
    }
    if (h->end < h->begin) {
        err_set(err, "header: key range end %llu < begin %llu", (unsigned long long)h->end,
                (unsigned long long)h->begin);
        return fail(code, WIRE_E_RANGE);
    }
    return 0;
}

/* ---------------------------------------------------------------- payload */

/* Is elem a numeric element type? */
static int elem_numeric(int elem)
{
    return elem == WIRE_F32 || elem == WIRE_F16 || elem == WIRE_BF16;
}

/* Checks payload_len == count * wire_elem_size(h->elem), with a payload of at
 * least one element; returns 0 or -1 with err. */
static int check_numeric(const wire_hdr_t *h, size_t payload_len, const char *name, int *code,
                         err_t *err)
{
    if (!elem_numeric(h->elem)) {
        err_set(err, "%s: payload element type %d is not numeric", name, h->elem);
        return fail(code, WIRE_E_MALFORMED);
    }
    size_t es = wire_elem_size(h->elem);
    if (payload_len == 0) {
        err_set(err, "%s: no payload, expected %llu elements", name,
                (unsigned long long)h->count);
        return fail(code, WIRE_E_LENGTH);
    }
    if (h->count > SIZE_MAX / es || h->count * es != payload_len) {
        err_set(err, "%s: payload of %zu bytes, expected count %llu x %zu bytes", name,
                payload_len, (unsigned long long)h->count, es);
        return fail(code, WIRE_E_LENGTH);
    }
    return 0;
}

/* PULL_ROWS and PUSH_ROWS (wire.h says what each holds): n = end - begin
 * row ids, count floats. Returns 0, or -1 with *code and err. */
static int check_rows(const wire_hdr_t *h, size_t payload_len, int *code, err_t *err)
{
    const char *name = wire_type_name(h->type);
    const uint64_t n = h->end - h->begin;
    const int reply = h->type == WIRE_PULL_ROWS && h->elem == WIRE_F32;
    const int pull = h->type == WIRE_PULL_ROWS || h->type == WIRE_PEEK_ROWS;
    if (!reply && h->elem != WIRE_ROWS) {
        err_set(err, "%s: payload element type %d, expected row ids (%d)%s", name, h->elem,
                WIRE_ROWS, h->type == WIRE_PULL_ROWS ? " or, in a reply, float32 rows" : "");
        return fail(code, WIRE_E_MALFORMED);
    }
    if (n == 0 && (pull || h->count != 0 || payload_len != 0)) {
        err_set(err, "%s: no row ids ([%llu, %llu)) but count %llu and %zu bytes of payload",
                name, (unsigned long long)h->begin, (unsigned long long)h->end,
                (unsigned long long)h->count, payload_len);
        return fail(code, WIRE_E_LENGTH);
    }
    if (n == 0)
        return 0; /* an empty PUSH_ROWS: the end of a trainer's step */
    if ((pull && !reply) ? h->count != 0 : (h->count == 0 || h->count % n)) {
        err_set(err, "%s: count %llu for %llu rows (%s)", name, (unsigned long long)h->count,
                (unsigned long long)n, reply || h->type == WIRE_PUSH_ROWS
                                           ? "expected a positive multiple: n x dim"
                                           : "a request carries ids only: expected 0");
        return fail(code, WIRE_E_LENGTH);
    }
    const uint64_t ids = reply ? 0 : n;
    if (ids > SIZE_MAX / 8 || h->count > (SIZE_MAX - 8 * ids) / 4 ||
        8 * ids + 4 * h->count != payload_len) {
        err_set(err, "%s: payload of %zu bytes, expected %llu row ids and %llu floats", name,
                payload_len, (unsigned long long)ids, (unsigned long long)h->count);
        return fail(code, WIRE_E_LENGTH);
    }
    return 0;
}

int wire_check_payload(const wire_hdr_t *h, size_t payload_len, int *code, err_t *err)
{
    const char *name = wire_type_name(h->type);
    if (h->end < h->begin) {
        err_set(err, "%s: key range end %llu < begin %llu", name, (unsigned long long)h->end,
                (unsigned long long)h->begin);
        return fail(code, WIRE_E_RANGE);
    }
    switch (h->type) {
    case WIRE_PUSH:
        if (h->elem == WIRE_TOPK) { /* k (index, value) pairs of the range, k <= its size */
            if (h->count == 0 || h->count > h->end - h->begin) {
                err_set(err, "PUSH: %llu top-k elements for [%llu, %llu)",
                        (unsigned long long)h->count, (unsigned long long)h->begin,
                        (unsigned long long)h->end);
                return fail(code, WIRE_E_LENGTH);
            }
            if (h->count > SIZE_MAX / 8 || h->count * 8 != payload_len) {
                err_set(err, "PUSH: payload of %zu bytes, expected %llu top-k elements of 8 bytes",
                        payload_len, (unsigned long long)h->count);
                return fail(code, WIRE_E_LENGTH);
            }
            return 0;
        }
        /* fall through */
    case WIRE_PULL_REPLY:
        if (h->count != h->end - h->begin) {
            err_set(err, "%s: count %llu, but [%llu, %llu) holds %llu keys", name,
                    (unsigned long long)h->count, (unsigned long long)h->begin,
                    (unsigned long long)h->end, (unsigned long long)(h->end - h->begin));
            return fail(code, WIRE_E_LENGTH);
        }
        return check_numeric(h, payload_len, name, code, err);
    case WIRE_STATS:
    case WIRE_CHECKPOINT:
        if (h->count == 0 && payload_len == 0)
            return 0; /* the request */
        if (h->status != 0) {
            err_set(err, "%s: a reply with status %d carries no payload", name, h->status);
            return fail(code, WIRE_E_MALFORMED);
        }
        if (h->type == WIRE_CHECKPOINT)
            return check_numeric(h, payload_len, name, code, err);
        if (h->elem != WIRE_MSGPACK) { /* STATS: one msgpack map */
            err_set(err, "STATS: payload element type %d, expected msgpack (%d)", h->elem,
                    WIRE_MSGPACK);
            return fail(code, WIRE_E_MALFORMED);
        }
        if (payload_len == 0 || h->count != payload_len) {
            err_set(err, "STATS: payload of %zu bytes, but count %llu", payload_len,
                    (unsigned long long)h->count);
            return fail(code, WIRE_E_LENGTH);
        }
        return 0;
    case WIRE_BARRIER:
        /* a BARRIER may carry values to sum over the trainers (F32 pairs) */
        if (h->count == 0 && payload_len == 0)
            return 0;
        return check_numeric(h, payload_len, name, code, err);
    case WIRE_PULL:
    case WIRE_CLOCK:
    case WIRE_SHUTDOWN:
        if (h->count != 0) {
            err_set(err, "%s: count %llu, but a %s carries no payload", name,
                    (unsigned long long)h->count, name);
            return fail(code, WIRE_E_LENGTH);
        }
        if (payload_len != 0) {
            err_set(err, "%s: payload of %zu bytes, but a %s carries none", name, payload_len,
                    name);
            return fail(code, WIRE_E_LENGTH);
        }
        return 0;
    case WIRE_PULL_ROWS:
    case WIRE_PUSH_ROWS:
    case WIRE_PEEK_ROWS:
        return check_rows(h, payload_len, code, err);
    case WIRE_ERROR:
        if (h->status <= 0) {
            err_set(err, "ERROR: status %d, expected an error code", h->status);
            return fail(code, WIRE_E_MALFORMED);
        }
        if (h->count == 0 && payload_len == 0)
            return 0;
        if (h->elem != WIRE_TEXT) {
            err_set(err, "ERROR: payload element type %d, expected text (%d)", h->elem,
                    WIRE_TEXT);
            return fail(code, WIRE_E_MALFORMED);
        }
        if (h->count != payload_len) {
            err_set(err, "ERROR: text of %zu bytes, but count %llu", payload_len,
                    (unsigned long long)h->count);
            return fail(code, WIRE_E_LENGTH);
        }
        return 0;
    default:
        err_set(err, "unknown message type %d", h->type);
        return fail(code, WIRE_E_TYPE);
    }
}

/* ---------------------------------------------------------------- STATS */

/* The fields of a STATS reply, in the order wire_stats_encode writes them,
 * with where each goes in wire_stats_t and the range it accepts. */
enum { SF_U64, SF_I64, SF_INT };
#define SF(field, kind, min, max) {#field, offsetof(wire_stats_t, field), kind, min, max}
static const struct {
    const char *name;
    size_t off;
    int kind;
    int64_t min;
    uint64_t max;
} stats_fields[] = {
    SF(pushes, SF_U64, 0, UINT64_MAX),   SF(pulls, SF_U64, 0, UINT64_MAX),
    SF(errors, SF_U64, 0, UINT64_MAX),   SF(updates, SF_U64, 0, UINT64_MAX),
    SF(busy_us, SF_U64, 0, UINT64_MAX),  SF(version, SF_I64, 0, INT64_MAX),
    SF(lost, SF_INT, 0, INT_MAX),        SF(first_lost, SF_INT, -1, INT_MAX),
    SF(partial, SF_INT, 0, 1),           SF(lead_done, SF_INT, 0, 1),
    SF(next_lead, SF_INT, 0, INT_MAX),   SF(rows, SF_U64, 0, UINT64_MAX),
    SF(rows_created, SF_U64, 0, UINT64_MAX), SF(rows_bytes, SF_U64, 0, UINT64_MAX),
};
#undef SF
#define STATS_FIELDS ((int)(sizeof stats_fields / sizeof stats_fields[0]))

int wire_stats_encode(const wire_stats_t *st, uint8_t *buf, size_t cap)
{
    fixbuf_t b = {buf, cap, 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, fixbuf_write);
    if (msgpack_pack_map(&pk, STATS_FIELDS) != 0)
        return -1;
    for (int k = 0; k < STATS_FIELDS; k++) {
        const char *name = stats_fields[k].name;
        const char *at = (const char *)st + stats_fields[k].off;
        int rc = msgpack_pack_str(&pk, strlen(name)) || msgpack_pack_str_body(&pk, name, strlen(name));
        if (stats_fields[k].kind == SF_U64)
            rc = rc || msgpack_pack_uint64(&pk, *(const uint64_t *)at);
        else if (stats_fields[k].kind == SF_I64)
            rc = rc || msgpack_pack_int64(&pk, *(const int64_t *)at);
        else
            rc = rc || msgpack_pack_int(&pk, *(const int *)at);
        if (rc)
            return -1;
    }
    return (int)b.len;
}

/* Reads the length of the msgpack map at r into *n. Returns 0, or -1 with
 * err. */
static int rd_map(rd_t *r, uint64_t *n, err_t *err)
{
    if (r->p >= r->end)
        return err_set(err, "STATS: empty payload, expected a msgpack map");
    uint8_t b = *r->p;
    if (b >= 0x80 && b <= 0x8f) {
        *n = b & 0x0f;
        r->p++;
        return 0;
    }
    if (b == 0xde || b == 0xdf) {
        int w = b == 0xde ? 2 : 4;
        if (r->end - r->p < 1 + w)
            return err_set(err, "STATS: truncated in the map length");
        *n = be(r->p + 1, w);
        r->p += 1 + w;
        return 0;
    }
    const char *kind = mp_kind(b);
    return err_set(err, "STATS: not a msgpack map but %s (first byte 0x%02x)",
                   kind ? kind : "an integer", b);
}

/* Reads the msgpack string at r (key number i, for messages): *s points at
 * its *len bytes, inside r's bytes. Returns 0, or -1 with err. */
static int rd_str(rd_t *r, int64_t i, const uint8_t **s, size_t *len, err_t *err)
{
    if (r->p >= r->end)
        return err_set(err, "STATS: truncated before key %lld", (long long)i);
    uint8_t b = *r->p;
    int w = b == 0xd9 ? 1 : b == 0xda ? 2 : b == 0xdb ? 4 : 0;
    if (!w && (b < 0xa0 || b > 0xbf)) {
        const char *kind = mp_kind(b);
        return err_set(err, "STATS: key %lld is %s, not a string", (long long)i,
                       kind ? kind : "an integer");
    }
    if (r->end - r->p < 1 + w)
        return err_set(err, "STATS: truncated in the length of key %lld", (long long)i);
    uint64_t n = w ? be(r->p + 1, w) : (uint64_t)(b & 0x1f);
    r->p += 1 + w;
    if (n > (uint64_t)(r->end - r->p))
        return err_set(err, "STATS: key %lld is cut short (%llu bytes, %zu left)", (long long)i,
                       (unsigned long long)n, (size_t)(r->end - r->p));
    *s = r->p;
    *len = (size_t)n;
    r->p += n;
    return 0;
}

/* The index in stats_fields of the key s[0..len), or -1 if none. */
static int stats_field(const uint8_t *s, size_t len)
{
    for (int k = 0; k < STATS_FIELDS; k++)
        if (strlen(stats_fields[k].name) == len && memcmp(stats_fields[k].name, s, len) == 0)
            return k;
    return -1;
}

/* Stores v, the value of field k, into st if it is in the field's range.
 * Returns 0, or -1 with err. */
static int stats_store(wire_stats_t *st, int k, const mpint_t *v, err_t *err)
{
    char num[32];
    int ok = v->neg ? v->i >= stats_fields[k].min : v->u <= stats_fields[k].max;
    if (!ok)
        return err_set(err, "STATS: field \"%s\" is %s, outside [%lld, %llu]", stats_fields[k].name,
                       mpint_str(v, num, sizeof num), (long long)stats_fields[k].min,
                       (unsigned long long)stats_fields[k].max);
    char *at = (char *)st + stats_fields[k].off;
    if (stats_fields[k].kind == SF_U64)
        *(uint64_t *)at = v->u;
    else if (stats_fields[k].kind == SF_I64)
        *(int64_t *)at = (int64_t)v->u;
    else
        *(int *)at = v->neg ? (int)v->i : (int)v->u;
    return 0;
}

int wire_stats_decode(const void *buf, size_t len, wire_stats_t *st, err_t *err)
{
    memset(st, 0, sizeof *st);
    rd_t r = {buf, (const uint8_t *)buf + len};
    uint64_t n = 0;
    if (rd_map(&r, &n, err) != 0)
        return -1;
    uint32_t seen = 0;
    for (uint64_t i = 0; i < n; i++) {
        const uint8_t *key = NULL;
        size_t klen = 0;
        if (rd_str(&r, (int64_t)i, &key, &klen, err) != 0)
            return -1;
        int k = stats_field(key, klen);
        mpint_t v;
        const char *kind = NULL;
        int rc = rd_int(&r, &v, &kind);
        char what[48];
        if (k >= 0)
            snprintf(what, sizeof what, "field \"%s\"", stats_fields[k].name);
        else
            snprintf(what, sizeof what, "key %lld (unknown)", (long long)i);
        if (rc == RD_SHORT)
            return err_set(err, "STATS: truncated in the value of %s", what);
        if (rc == RD_OTHER)
            return err_set(err, "STATS: %s is %s, not an integer", what, kind);
        if (k < 0)
            continue; /* a field of a later version: skipped */
        if (seen & (1u << k))
            return err_set(err, "STATS: %s twice", what);
        if (stats_store(st, k, &v, err) != 0)
            return -1;
        seen |= 1u << k;
    }
    if (r.p != r.end)
        return err_set(err, "STATS: %zu trailing bytes after the map", (size_t)(r.end - r.p));
    for (int k = 0; k < STATS_FIELDS; k++)
        if (!(seen & (1u << k)))
            return err_set(err, "STATS: no field \"%s\"", stats_fields[k].name);
    return 0;
}

/* ---------------------------------------------------------------- names */

const char *wire_type_name(int type)
{
    static const char *const names[] = {NULL,       "PUSH",      "PULL",     "PULL_REPLY",
                                        "CLOCK",    "BARRIER",   "STATS",    "CHECKPOINT",
                                        "SHUTDOWN", "ERROR",     "PULL_ROWS", "PUSH_ROWS",
                                        "PEEK_ROWS"};
    return (type >= WIRE_PUSH && type <= WIRE_TYPE_MAX) ? names[type] : "?";
}

const char *wire_error_name(int code)
{
    static const char *const names[] = {"ok",     "version",   "type",  "range",
                                        "length", "malformed", "state", "internal",
                                        "stopping", "lost"};
    return (code >= 0 && code <= WIRE_E_LOST) ? names[code] : "?";
}

size_t wire_elem_size(int elem)
{
    switch (elem) {
    case WIRE_F32:
    case WIRE_ROWS:
        return 4;
    case WIRE_TOPK:
        return 8;
    case WIRE_F16:
    case WIRE_BF16:
        return 2;
    case WIRE_TEXT:
    case WIRE_MSGPACK:
        return 1;
    default:
        return 0;
    }
}

size_t wire_piece_floats(size_t shard_len)
{
    const size_t most = WIRE_PIECES_MAX / 2;
    size_t need = (shard_len + most - 1) / most;
    return need > WIRE_PIECE_FLOATS ? need : WIRE_PIECE_FLOATS;
}
