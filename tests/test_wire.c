/* test_wire.c - suite "wire": the message header's encoding (checked against
 * fixed bytes and msgpack-c's unpacker), its refusal of every kind of bad
 * header with the right WIRE_E_* code, truncated and random frames (run under
 * ASan: every decoded frame sits in a heap block of exactly its size), the
 * header/payload size rules, and the STATS payload's codec. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "tests.h"
#include "common/net/wire.h"

/* ------------------------------------------------------------ helpers */

/* A frame under construction. */
typedef struct {
    uint8_t b[512];
    size_t n;
} frame_t;

/* Kinds of msgpack values a header element can be made of. */
enum {
    EL_INT, EL_STR, EL_NIL, EL_TRUE, EL_F32, EL_F64, EL_BIN,
    EL_MAP, EL_ARR, EL_EXT, EL_FIXEXT, EL_C1, EL_KINDS
};

/* What mp_kind() in wire.c calls each kind (wire.c's words, checked in err). */
static const char *const el_words[EL_KINDS] = {
    NULL,          "a string", "nil",          "a boolean",    "a float",
    "a float",     "binary data", "a map",     "an array",     "an extension",
    "an extension", "0xc1",
};

/* One element: an integer (neg ? i : u) written in format fmt (0: the
 * shortest, else a format byte 0xcc..0xd3), or a value of another kind. */
typedef struct {
    int kind;
    int neg;
    uint64_t u;
    int64_t i;
    uint8_t fmt;
} el_t;

static el_t el_u(uint64_t u)
{
    return (el_t){EL_INT, 0, u, 0, 0};
}

static el_t el_s(int64_t v)
{
    return v < 0 ? (el_t){EL_INT, 1, 0, v, 0} : el_u((uint64_t)v);
}

/* The elements of h, each in its shortest form. */
static void hdr_els(const wire_hdr_t *h, el_t e[WIRE_HDR_FIELDS])
{
    e[0] = el_s(h->version);
    e[1] = el_s(h->type);
    e[2] = el_s(h->sender);
    e[3] = el_s(h->clock);
    e[4] = el_u(h->begin);
    e[5] = el_u(h->end);
    e[6] = el_s(h->elem);
    e[7] = el_u(h->count);
    e[8] = el_u(h->req);
    e[9] = el_s(h->status);
}

/* Appends raw bytes to f (the tests keep frames far below its size). */
static void put(frame_t *f, const void *p, size_t n)
{
    CU_ASSERT_FATAL(f->n + n <= sizeof f->b);
    memcpy(f->b + f->n, p, n);
    f->n += n;
}

/* msgpack_packer callback into a frame_t. */
static int frame_write(void *data, const char *buf, size_t len)
{
    put(data, buf, len);
    return 0;
}

/* Appends element e to f: our own bytes for the integer formats (any width
 * the caller asks), msgpack-c's packer for the rest. */
static void put_el(frame_t *f, const el_t *e)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, f, frame_write);
    switch (e->kind) {
    case EL_INT:
        if (!e->fmt) {
            if (e->neg)
                msgpack_pack_int64(&pk, e->i);
            else
                msgpack_pack_uint64(&pk, e->u);
        } else {
            uint8_t b[9] = {e->fmt};
            int n = 1 << ((e->fmt - 0xcc) & 3);
            uint64_t raw = e->neg ? (uint64_t)e->i : e->u;
            for (int k = 0; k < n; k++)
                b[1 + k] = (uint8_t)(raw >> (8 * (n - 1 - k)));
            put(f, b, 1 + (size_t)n);
        }
        break;
    case EL_STR:
        msgpack_pack_str_with_body(&pk, "12", 2);
        break;
    case EL_NIL:
        msgpack_pack_nil(&pk);
        break;
    case EL_TRUE:
        msgpack_pack_true(&pk);
        break;
    case EL_F32:
        msgpack_pack_float(&pk, 1.0f);
        break;
    case EL_F64:
        msgpack_pack_double(&pk, 1.0);
        break;
    case EL_BIN:
        msgpack_pack_bin_with_body(&pk, "\1\2\3", 3);
        break;
    case EL_MAP:
        msgpack_pack_map(&pk, 1);
        msgpack_pack_int(&pk, 1);
        msgpack_pack_int(&pk, 2);
        break;
    case EL_ARR:
        msgpack_pack_array(&pk, 1);
        msgpack_pack_int(&pk, 1);
        break;
    case EL_EXT:
        msgpack_pack_ext_with_body(&pk, "abc", 3, 5);
        break;
    case EL_FIXEXT:
        msgpack_pack_ext_with_body(&pk, "abcd", 4, 5);
        break;
    case EL_C1:
        put(f, "\xc1", 1);
        break;
    }
}

/* Builds a frame: an array of n elements, its header in format arr (0x90:
 * fixarray, 0xdc: array16, 0xdd: array32). */
static frame_t build(const el_t *e, int n, uint8_t arr)
{
    frame_t f = {.n = 0};
    uint8_t b[5] = {arr};
    size_t hl = 1;
    if (arr == 0x90) {
        b[0] = (uint8_t)(0x90 | n);
    } else {
        hl = arr == 0xdc ? 3 : 5;
        for (size_t k = 1; k < hl; k++)
            b[k] = (uint8_t)((unsigned)n >> (8 * (hl - 1 - k)));
    }
    put(&f, b, hl);
    for (int k = 0; k < n; k++)
        put_el(&f, &e[k]);
    return f;
}

static frame_t build_hdr(const wire_hdr_t *h)
{
    el_t e[WIRE_HDR_FIELDS];
    hdr_els(h, e);
    return build(e, WIRE_HDR_FIELDS, 0x90);
}

/* wire_decode on a heap copy of exactly n bytes, so that ASan catches any
 * read past the frame. */
static int decode_exact(const void *b, size_t n, wire_hdr_t *h, int *code, err_t *err)
{
    uint8_t *copy = malloc(n ? n : 1);
    CU_ASSERT_FATAL(copy != NULL);
    if (n)
        memcpy(copy, b, n);
    /* a 0-byte frame: a 0-byte block, so that reading even one byte is caught */
    uint8_t *p = copy;
    if (!n) {
        free(copy);
        p = malloc(0);
    }
    int rc = wire_decode(p, n, h, code, err);
    free(p);
    return rc;
}

static int hdr_eq(const wire_hdr_t *a, const wire_hdr_t *b)
{
    return a->version == b->version && a->type == b->type && a->sender == b->sender &&
           a->clock == b->clock && a->begin == b->begin && a->end == b->end &&
           a->elem == b->elem && a->count == b->count && a->req == b->req &&
           a->status == b->status;
}

/* Asserts (at the caller's line) that decoding b[0..n) fails with code want
 * and a message that contains what (NULL: any message). */
static void expect_fail_at(const void *b, size_t n, int want, const char *what, int line)
{
    wire_hdr_t h;
    int code = -100;
    err_t err = {{0}};
    int rc = decode_exact(b, n, &h, &code, &err);
    CU_assertImplementation(rc == -1, (unsigned)line, "decode fails", __FILE__, "", CU_FALSE);
    CU_assertImplementation(code == want, (unsigned)line, "decode code", __FILE__, "", CU_FALSE);
    CU_assertImplementation(err.msg[0] != '\0', (unsigned)line, "decode message", __FILE__, "",
                            CU_FALSE);
    if (what)
        CU_assertImplementation(strstr(err.msg, what) != NULL, (unsigned)line, err.msg, __FILE__,
                                "", CU_FALSE);
}
#define EXPECT_FAIL(f, want, what) expect_fail_at((f).b, (f).n, (want), (what), __LINE__)

/* A valid header with values in several msgpack widths. */
static wire_hdr_t sample(int type)
{
    wire_hdr_t h;
    wire_hdr_init(&h, type, 300);
    h.clock = 70000;
    h.begin = 5;
    h.end = (uint64_t)1 << 33;
    h.count = h.end - h.begin;
    h.req = 40000;
    return h;
}

/* xorshift64*: the suite's own seeded generator. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/* Reads frame b[0..n) with msgpack-c and asserts it is one array of 10
 * integers, nothing after it, equal to h. */
static void assert_msgpack_reads(const void *b, size_t n, const wire_hdr_t *h)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int rc = msgpack_unpack_next(&up, b, n, &off);
    CU_ASSERT_EQUAL(rc, MSGPACK_UNPACK_SUCCESS);
    CU_ASSERT_EQUAL(off, n);
    if (rc == MSGPACK_UNPACK_SUCCESS && up.data.type == MSGPACK_OBJECT_ARRAY &&
        up.data.via.array.size == WIRE_HDR_FIELDS) {
        const msgpack_object *o = up.data.via.array.ptr;
        int64_t want_s[WIRE_HDR_FIELDS] = {h->version, h->type,  h->sender, h->clock, 0,
                                           0,          h->elem,  0,         0,        h->status};
        uint64_t want_u[WIRE_HDR_FIELDS] = {0, 0, 0, 0, h->begin, h->end, 0, h->count, h->req, 0};
        for (int k = 0; k < WIRE_HDR_FIELDS; k++) {
            int is_u = k == 4 || k == 5 || k == 7 || k == 8;
            if (is_u || want_s[k] >= 0) {
                CU_ASSERT_EQUAL(o[k].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
                CU_ASSERT_EQUAL(o[k].via.u64, is_u ? want_u[k] : (uint64_t)want_s[k]);
            } else {
                CU_ASSERT_EQUAL(o[k].type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
                CU_ASSERT_EQUAL(o[k].via.i64, want_s[k]);
            }
        }
    } else {
        CU_FAIL("msgpack-c does not read an array of 10");
    }
    msgpack_unpacked_destroy(&up);
}

/* ------------------------------------------------------------ encode */

/* Every type, with extreme and boundary values, survives encode + decode. */
static void test_wire_roundtrip(void)
{
    static const int elems[] = {WIRE_F32, WIRE_F16, WIRE_BF16, WIRE_TEXT};
    static const uint64_t edges[] = {0,      1,          127,        128,
                                     255,    256,        65535,      65536,
                                     0xffffffffULL, 0x100000000ULL, (uint64_t)INT64_MAX,
                                     UINT64_MAX};
    int n_edges = (int)(sizeof edges / sizeof edges[0]);
    for (int type = WIRE_PUSH; type <= WIRE_ERROR; type++) {
        for (int c = 0; c < 4 + n_edges; c++) {
            wire_hdr_t h;
            wire_hdr_init(&h, type, 0);
            if (c == 1) { /* everything at its maximum */
                h.sender = INT_MAX;
                h.clock = INT64_MAX;
                h.begin = 0;
                h.end = UINT64_MAX;
                h.count = UINT64_MAX;
                h.req = 0xffffffffu;
                h.status = INT_MAX;
            } else if (c == 2) { /* an empty range at the top of the key space */
                h.sender = 1;
                h.clock = (int64_t)1 << 40;
                h.begin = h.end = UINT64_MAX;
                h.req = 0x80000000u;
                h.status = WIRE_E_INTERNAL;
            } else if (c == 3) {
                h = sample(type);
            } else if (c >= 4) { /* every field on one encoding boundary */
                uint64_t x = edges[c - 4];
                h.sender = x > INT_MAX ? INT_MAX : (int)x;
                h.clock = x > INT64_MAX ? INT64_MAX : (int64_t)x;
                h.begin = x / 2;
                h.end = x;
                h.count = x;
                h.req = x > UINT32_MAX ? UINT32_MAX : (uint32_t)x;
                h.status = x > INT_MAX ? INT_MAX : (int)x;
            }
            h.elem = elems[(type + c) % 4];
            uint8_t buf[WIRE_HDR_MAX];
            int n = wire_encode(&h, buf, sizeof buf);
            CU_ASSERT(n > 0 && n <= WIRE_HDR_MAX);
            if (n <= 0)
                continue;
            wire_hdr_t d;
            int code = 0;
            err_t err = {{0}};
            CU_ASSERT_EQUAL(decode_exact(buf, (size_t)n, &d, &code, &err), 0);
            CU_ASSERT(hdr_eq(&h, &d));
            assert_msgpack_reads(buf, (size_t)n, &h);
        }
    }
}

/* The bytes on the wire are fixed: shortest msgpack integers in field order. */
static void test_wire_encode_bytes(void)
{
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_PUSH, 3);
    h.clock = 300;
    h.end = 1000;
    h.count = 1000;
    h.req = 0xffffffffu;
    static const uint8_t want[] = {0x9a, 0x01, 0x01, 0x03, 0xcd, 0x01, 0x2c, 0x00, 0xcd, 0x03, 0xe8,
                                   0x01, 0xcd, 0x03, 0xe8, 0xce, 0xff, 0xff, 0xff, 0xff, 0x00};
    uint8_t buf[WIRE_HDR_MAX];
    int n = wire_encode(&h, buf, sizeof buf);
    CU_ASSERT_EQUAL(n, (int)sizeof want);
    CU_ASSERT(n == (int)sizeof want && memcmp(buf, want, sizeof want) == 0);

    /* the longest header (every field at its widest) fits WIRE_HDR_MAX */
    wire_hdr_t w = {INT_MIN, INT_MIN, INT_MIN, INT64_MIN, UINT64_MAX, UINT64_MAX,
                    INT_MIN, UINT64_MAX, UINT32_MAX, INT_MIN};
    n = wire_encode(&w, buf, sizeof buf);
    CU_ASSERT_EQUAL(n, 67);
    CU_ASSERT(n <= WIRE_HDR_MAX);
    if (n > 0)
        assert_msgpack_reads(buf, (size_t)n, &w);
}

/* A buffer one byte short, or any shorter, gives -1 and is not overrun. */
static void test_wire_encode_small(void)
{
    wire_hdr_t hs[2];
    wire_hdr_init(&hs[0], WIRE_BARRIER, 0);
    hs[1] = sample(WIRE_PUSH);
    hs[1].req = UINT32_MAX;
    for (int j = 0; j < 2; j++) {
        uint8_t full[WIRE_HDR_MAX];
        int len = wire_encode(&hs[j], full, sizeof full);
        CU_ASSERT_FATAL(len > 0);
        for (int cap = 0; cap < len; cap++) {
            uint8_t buf[WIRE_HDR_MAX + 8];
            memset(buf, 0xaa, sizeof buf);
            CU_ASSERT_EQUAL(wire_encode(&hs[j], buf, (size_t)cap), -1);
            for (size_t k = (size_t)cap; k < sizeof buf; k++)
                CU_ASSERT_EQUAL_FATAL(buf[k], 0xaa);
        }
        uint8_t *exact = malloc((size_t)len); /* ASan: no byte written past len */
        CU_ASSERT_FATAL(exact != NULL);
        CU_ASSERT_EQUAL(wire_encode(&hs[j], exact, (size_t)len), len);
        CU_ASSERT(memcmp(exact, full, (size_t)len) == 0);
        free(exact);
    }
    CU_ASSERT_EQUAL(wire_encode(&hs[0], NULL, 0), -1);
}

/* ------------------------------------------------------------ decode */

static void test_wire_not_array(void)
{
    frame_t f = {.n = 0};
    EXPECT_FAIL(f, WIRE_E_MALFORMED, "empty frame");
    CU_ASSERT_EQUAL(wire_decode(NULL, 0, &(wire_hdr_t){0}, NULL, NULL), -1);
    for (int kind = 0; kind < EL_KINDS; kind++) {
        if (kind == EL_ARR)
            continue; /* [1] is an array: see array_size */
        el_t e = {kind, 0, 7, 0, 0};
        f = (frame_t){.n = 0};
        put_el(&f, &e);
        EXPECT_FAIL(f, WIRE_E_MALFORMED, "not a msgpack array");
        if (kind != EL_INT)
            EXPECT_FAIL(f, WIRE_E_MALFORMED, el_words[kind]);
    }
    /* a whole header inside a map is not a header either */
    wire_hdr_t h = sample(WIRE_PULL);
    frame_t inner = build_hdr(&h);
    f = (frame_t){.n = 0};
    put(&f, "\x81\x01", 2);
    put(&f, inner.b, inner.n);
    EXPECT_FAIL(f, WIRE_E_MALFORMED, "a map");
}

static void test_wire_array_size(void)
{
    wire_hdr_t h = sample(WIRE_PUSH);
    el_t e[WIRE_HDR_FIELDS + 1];
    hdr_els(&h, e);
    e[WIRE_HDR_FIELDS] = el_u(0);
    frame_t f = build(e, 0, 0x90);
    EXPECT_FAIL(f, WIRE_E_MALFORMED, "empty array");
    f = build(e, 9, 0x90);
    EXPECT_FAIL(f, WIRE_E_MALFORMED, "array of 9 elements");
    f = build(e, 11, 0x90);
    EXPECT_FAIL(f, WIRE_E_MALFORMED, "array of 11 elements");
    f = build(e, 1, 0x90);
    EXPECT_FAIL(f, WIRE_E_MALFORMED, "array of 1 elements");
    /* 10 elements declared, 9 present: truncated */
    f = build(e, 9, 0x90);
    f.b[0] = 0x9a;
    EXPECT_FAIL(f, WIRE_E_MALFORMED, "truncated in element 9 (status)");
    /* array16 and array32 headers of 10 are fine, of 2^32-1 refused */
    static const uint8_t arrs[] = {0xdc, 0xdd};
    for (int k = 0; k < 2; k++) {
        f = build(e, WIRE_HDR_FIELDS, arrs[k]);
        wire_hdr_t d;
        CU_ASSERT_EQUAL(decode_exact(f.b, f.n, &d, NULL, NULL), 0);
        CU_ASSERT(hdr_eq(&h, &d));
    }
    f = build(e, WIRE_HDR_FIELDS, 0xdd);
    memset(f.b + 1, 0xff, 4);
    EXPECT_FAIL(f, WIRE_E_MALFORMED, "array of 4294967295 elements");
    /* another version wins over the length: a v2 header may be longer */
    e[0] = el_u(2);
    f = build(e, 11, 0x90);
    EXPECT_FAIL(f, WIRE_E_VERSION, "version 2");
    f = build(e, 11, 0xdc);
    EXPECT_FAIL(f, WIRE_E_VERSION, "version 2");
}

static const char *const field_names[WIRE_HDR_FIELDS] = {
    "element 0 (version)", "element 1 (type)", "element 2 (sender)", "element 3 (clock)",
    "element 4 (begin)",   "element 5 (end)",  "element 6 (elem)",   "element 7 (count)",
    "element 8 (req)",     "element 9 (status)",
};

/* Any non-integer in any position: malformed, naming the element and kind. */
static void test_wire_wrong_kind(void)
{
    wire_hdr_t h = sample(WIRE_PUSH);
    for (int k = 0; k < WIRE_HDR_FIELDS; k++)
        for (int kind = EL_STR; kind < EL_KINDS; kind++) {
            el_t e[WIRE_HDR_FIELDS];
            hdr_els(&h, e);
            e[k] = (el_t){kind, 0, 0, 0, 0};
            frame_t f = build(e, WIRE_HDR_FIELDS, 0x90);
            EXPECT_FAIL(f, WIRE_E_MALFORMED, field_names[k]);
            EXPECT_FAIL(f, WIRE_E_MALFORMED, el_words[kind]);
        }
    /* the very message of the spec */
    el_t e[WIRE_HDR_FIELDS];
    hdr_els(&h, e);
    e[4] = (el_t){EL_STR, 0, 0, 0, 0};
    frame_t f = build(e, WIRE_HDR_FIELDS, 0x90);
    EXPECT_FAIL(f, WIRE_E_MALFORMED, "header: element 4 (begin) is a string, not an integer");
}

/* Negative values: malformed where the field is unsigned; a negative
 * version, type or elem is an unknown one. */
static void test_wire_negative(void)
{
    wire_hdr_t h = sample(WIRE_PULL);
    static const int64_t negs[] = {-1, -32, -33, -128, -129, -32768, INT32_MIN, INT64_MIN};
    /* 0: the shortest form; then int 8, 16, 32, 64 with their minimum */
    static const uint8_t wide[] = {0, 0xd0, 0xd1, 0xd2, 0xd3};
    static const int64_t wmin[] = {INT64_MIN, INT8_MIN, INT16_MIN, INT32_MIN, INT64_MIN};
    for (size_t j = 0; j < sizeof negs / sizeof negs[0]; j++)
        for (size_t w = 0; w < sizeof wide / sizeof wide[0]; w++) {
            if (negs[j] < wmin[w])
                continue; /* does not fit that width */
            for (int k = 0; k < WIRE_HDR_FIELDS; k++) {
                el_t e[WIRE_HDR_FIELDS];
                hdr_els(&h, e);
                e[k] = el_s(negs[j]);
                e[k].fmt = wide[w];
                frame_t f = build(e, WIRE_HDR_FIELDS, 0x90);
                if (k == 0)
                    EXPECT_FAIL(f, WIRE_E_VERSION, "version -");
                else if (k == 1)
                    EXPECT_FAIL(f, WIRE_E_TYPE, "unknown message type -");
                else if (k == 6)
                    EXPECT_FAIL(f, WIRE_E_MALFORMED, "unknown element type -");
                else {
                    EXPECT_FAIL(f, WIRE_E_MALFORMED, field_names[k]);
                    EXPECT_FAIL(f, WIRE_E_MALFORMED, "is negative");
                }
            }
        }
}

/* Values above a field's range are refused, never cut to fit. */
static void test_wire_too_big(void)
{
    wire_hdr_t h = sample(WIRE_PUSH);
    struct {
        int k;
        uint64_t v;
        int code;
        const char *what;
    } cases[] = {
        {2, (uint64_t)INT_MAX + 1, WIRE_E_MALFORMED, "element 2 (sender) is 2147483648"},
        {9, (uint64_t)INT_MAX + 1, WIRE_E_MALFORMED, "element 9 (status)"},
        {8, (uint64_t)UINT32_MAX + 1, WIRE_E_MALFORMED, "element 8 (req) is 4294967296"},
        {3, (uint64_t)INT64_MAX + 1, WIRE_E_MALFORMED, "element 3 (clock)"},
        {3, UINT64_MAX, WIRE_E_MALFORMED, "element 3 (clock)"},
        /* 2^32 + 1 would be 1 (a valid version / PUSH / F32) if cut to 32 bits */
        {0, ((uint64_t)1 << 32) + 1, WIRE_E_VERSION, "version 4294967297"},
        {1, ((uint64_t)1 << 32) + 1, WIRE_E_TYPE, "type 4294967297"},
        {6, ((uint64_t)1 << 32) + 1, WIRE_E_MALFORMED, "element type 4294967297"},
        {1, UINT64_MAX, WIRE_E_TYPE, "type 18446744073709551615"},
        {6, UINT64_MAX, WIRE_E_MALFORMED, "element type 18446744073709551615"},
    };
    for (size_t j = 0; j < sizeof cases / sizeof cases[0]; j++) {
        el_t e[WIRE_HDR_FIELDS];
        hdr_els(&h, e);
        e[cases[j].k] = el_u(cases[j].v);
        frame_t f = build(e, WIRE_HDR_FIELDS, 0x90);
        EXPECT_FAIL(f, cases[j].code, cases[j].what);
    }
}

/* Every msgpack integer format that holds a value is accepted for it. */
static void test_wire_int_widths(void)
{
    wire_hdr_t h = sample(WIRE_PUSH);
    h.status = 0;
    el_t base[WIRE_HDR_FIELDS];
    hdr_els(&h, base);
    static const uint8_t fmts[] = {0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3};
    static const uint64_t umax[] = {0xff,      0xffff,    0xffffffff, UINT64_MAX,
                                    INT8_MAX,  INT16_MAX, INT32_MAX,  INT64_MAX};
    int tried = 0;
    for (int k = 0; k < WIRE_HDR_FIELDS; k++)
        for (int j = 0; j < 8; j++) {
            if (base[k].u > umax[j])
                continue;
            el_t e[WIRE_HDR_FIELDS];
            memcpy(e, base, sizeof e);
            e[k].fmt = fmts[j];
            frame_t f = build(e, WIRE_HDR_FIELDS, 0x90);
            wire_hdr_t d;
            int code = 0;
            err_t err = {{0}};
            CU_ASSERT_EQUAL(decode_exact(f.b, f.n, &d, &code, &err), 0);
            CU_ASSERT(hdr_eq(&h, &d));
            tried++;
        }
    CU_ASSERT(tried > 50);
    /* all fields at their widest at once, in an array32 */
    el_t e[WIRE_HDR_FIELDS];
    memcpy(e, base, sizeof e);
    for (int k = 0; k < WIRE_HDR_FIELDS; k++)
        e[k].fmt = (k & 1) ? 0xcf : 0xd3;
    frame_t f = build(e, WIRE_HDR_FIELDS, 0xdd);
    CU_ASSERT_EQUAL(f.n, 5 + 10 * 9);
    wire_hdr_t d;
    CU_ASSERT_EQUAL(decode_exact(f.b, f.n, &d, NULL, NULL), 0);
    CU_ASSERT(hdr_eq(&h, &d));
}

static void test_wire_version(void)
{
    static const int64_t vs[] = {0, 2, 127, 255, 65536};
    for (size_t j = 0; j < sizeof vs / sizeof vs[0]; j++) {
        wire_hdr_t h = sample(WIRE_PUSH);
        h.version = (int)vs[j];
        uint8_t buf[WIRE_HDR_MAX];
        int n = wire_encode(&h, buf, sizeof buf);
        CU_ASSERT_FATAL(n > 0);
        char what[64];
        snprintf(what, sizeof what, "version %lld", (long long)vs[j]);
        expect_fail_at(buf, (size_t)n, WIRE_E_VERSION, what, __LINE__);
    }
    /* a version that is not an integer: malformed */
    wire_hdr_t h = sample(WIRE_PUSH);
    el_t e[WIRE_HDR_FIELDS];
    hdr_els(&h, e);
    e[0] = (el_t){EL_STR, 0, 0, 0, 0};
    frame_t f = build(e, WIRE_HDR_FIELDS, 0x90);
    EXPECT_FAIL(f, WIRE_E_MALFORMED, "element 0 (version) is a string");
}

/* Unknown types give WIRE_E_TYPE, with the rest of the header decoded so that
 * the ERROR reply can echo req. */
static void test_wire_type(void)
{
    static const int types[] = {0, 13, 42, 127, 255, 1000000};
    for (size_t j = 0; j < sizeof types / sizeof types[0]; j++) {
        wire_hdr_t h = sample(WIRE_PUSH);
        h.type = types[j];
        h.req = 0xfeedbeef;
        uint8_t buf[WIRE_HDR_MAX];
        int n = wire_encode(&h, buf, sizeof buf);
        CU_ASSERT_FATAL(n > 0);
        char what[64];
        snprintf(what, sizeof what, "unknown message type %d", types[j]);
        expect_fail_at(buf, (size_t)n, WIRE_E_TYPE, what, __LINE__);
        wire_hdr_t d;
        int code = 0;
        CU_ASSERT_EQUAL(decode_exact(buf, (size_t)n, &d, &code, NULL), -1);
        CU_ASSERT_EQUAL(code, WIRE_E_TYPE);
        CU_ASSERT(hdr_eq(&h, &d));
    }
}

static void test_wire_elem(void)
{
    static const int bad[] = {0, 6, 9, 12, 255, 65536};
    for (size_t j = 0; j < sizeof bad / sizeof bad[0]; j++) {
        wire_hdr_t h = sample(WIRE_PULL);
        h.elem = bad[j];
        uint8_t buf[WIRE_HDR_MAX];
        int n = wire_encode(&h, buf, sizeof buf);
        char what[64];
        snprintf(what, sizeof what, "unknown element type %d", bad[j]);
        expect_fail_at(buf, (size_t)n, WIRE_E_MALFORMED, what, __LINE__);
    }
    static const int good[] = {WIRE_F32, WIRE_F16, WIRE_BF16, WIRE_TOPK, WIRE_ROWS, WIRE_TEXT,
                               WIRE_MSGPACK};
    for (size_t j = 0; j < sizeof good / sizeof good[0]; j++) {
        wire_hdr_t h = sample(WIRE_PULL), d;
        h.elem = good[j];
        uint8_t buf[WIRE_HDR_MAX];
        int n = wire_encode(&h, buf, sizeof buf);
        CU_ASSERT_EQUAL(decode_exact(buf, (size_t)n, &d, NULL, NULL), 0);
        CU_ASSERT_EQUAL(d.elem, good[j]);
    }
}

static void test_wire_range(void)
{
    static const uint64_t be[][2] = {{10, 9}, {1, 0}, {UINT64_MAX, 0}, {UINT64_MAX, UINT64_MAX - 1}};
    for (size_t j = 0; j < sizeof be / sizeof be[0]; j++) {
        wire_hdr_t h = sample(WIRE_PULL), d;
        h.begin = be[j][0];
        h.end = be[j][1];
        uint8_t buf[WIRE_HDR_MAX];
        int n = wire_encode(&h, buf, sizeof buf);
        expect_fail_at(buf, (size_t)n, WIRE_E_RANGE, "end", __LINE__);
        int code = 0;
        CU_ASSERT_EQUAL(decode_exact(buf, (size_t)n, &d, &code, NULL), -1);
        CU_ASSERT(hdr_eq(&h, &d)); /* every field is there for the reply */
    }
    wire_hdr_t h = sample(WIRE_PULL), d;
    h.begin = h.end = 77;
    uint8_t buf[WIRE_HDR_MAX];
    int n = wire_encode(&h, buf, sizeof buf);
    CU_ASSERT_EQUAL(decode_exact(buf, (size_t)n, &d, NULL, NULL), 0);
}

static void test_wire_trailing(void)
{
    wire_hdr_t h = sample(WIRE_CLOCK);
    frame_t one = build_hdr(&h);
    frame_t f = one;
    put(&f, "\0", 1);
    EXPECT_FAIL(f, WIRE_E_MALFORMED, "1 trailing bytes");
    f = one;
    put(&f, one.b, one.n); /* two headers in one frame */
    EXPECT_FAIL(f, WIRE_E_MALFORMED, "trailing bytes");
    f = one;
    put(&f, "\xc1", 1);
    EXPECT_FAIL(f, WIRE_E_MALFORMED, "trailing bytes");
}

/* Every proper prefix of a header is refused, and read only within itself. */
static void test_wire_truncated(void)
{
    wire_hdr_t hs[3];
    wire_hdr_init(&hs[0], WIRE_SHUTDOWN, 0);
    hs[1] = sample(WIRE_PUSH);
    hs[1].clock = INT64_MAX;
    hs[1].end = UINT64_MAX;
    hs[1].count = UINT64_MAX - 5;
    hs[1].req = UINT32_MAX;
    frame_t fs[4];
    for (int j = 0; j < 2; j++)
        fs[j] = build_hdr(&hs[j]);
    /* widest encodings, array32 header */
    el_t e[WIRE_HDR_FIELDS];
    hs[2] = sample(WIRE_PULL_REPLY);
    hdr_els(&hs[2], e);
    for (int k = 0; k < WIRE_HDR_FIELDS; k++)
        e[k].fmt = (k & 1) ? 0xd3 : 0xcf;
    fs[2] = build(e, WIRE_HDR_FIELDS, 0xdd);
    fs[3] = build(e, WIRE_HDR_FIELDS, 0xdc);
    for (int j = 0; j < 4; j++) {
        wire_hdr_t d;
        CU_ASSERT_EQUAL(decode_exact(fs[j].b, fs[j].n, &d, NULL, NULL), 0);
        for (size_t len = 0; len < fs[j].n; len++)
            expect_fail_at(fs[j].b, len, WIRE_E_MALFORMED, NULL, __LINE__);
    }
    EXPECT_FAIL(((frame_t){{0xdd, 0, 0}, 3}), WIRE_E_MALFORMED, "truncated in the array length");
}

/* A random header frame: pure noise, an array-of-10 byte then noise, or a
 * valid header with a few random edits. Writes it to f. */
static void random_frame(uint64_t *s, int round, frame_t *f)
{
    f->n = 0;
    if (round % 3 != 2) {
        size_t n = rnd(s) % 96;
        for (size_t k = 0; k < n; k++)
            f->b[k] = (uint8_t)rnd(s);
        if (round % 3 == 1 && n > 0)
            f->b[0] = 0x9a;
        f->n = n;
        return;
    }
    wire_hdr_t h;
    wire_hdr_init(&h, 1 + (int)(rnd(s) % 9), (int)(rnd(s) % 1000));
    h.clock = (int64_t)(rnd(s) >> (1 + rnd(s) % 63));
    h.begin = rnd(s) >> (rnd(s) % 64);
    h.end = h.begin + (rnd(s) >> (rnd(s) % 64 | 1));
    h.count = rnd(s) % 3 ? h.end - h.begin : 0;
    h.req = (uint32_t)rnd(s);
    int n = wire_encode(&h, f->b, sizeof f->b);
    CU_ASSERT_FATAL(n > 0);
    f->n = (size_t)n;
    int edits = 1 + (int)(rnd(s) % 4);
    for (int k = 0; k < edits && f->n > 0; k++) {
        size_t at = rnd(s) % f->n;
        switch (rnd(s) % 6) {
        case 0: /* set a byte */
            f->b[at] = (uint8_t)rnd(s);
            break;
        case 1: /* flip a bit */
            f->b[at] ^= (uint8_t)(1u << (rnd(s) % 8));
            break;
        case 2: /* a small value (keeps some frames valid) */
            f->b[at] = (uint8_t)(rnd(s) % 12);
            break;
        case 3: /* delete a byte */
            memmove(f->b + at, f->b + at + 1, f->n - at - 1);
            f->n--;
            break;
        case 4: /* insert a byte */
            if (f->n < sizeof f->b) {
                memmove(f->b + at + 1, f->b + at, f->n - at);
                f->b[at] = (uint8_t)rnd(s);
                f->n++;
            }
            break;
        default: /* cut */
            f->n = at;
            break;
        }
    }
}

/* Seeded random frames: decode returns 0 or -1 with a valid code, never
 * crashes or reads out of the frame (ASan); what it accepts msgpack-c reads
 * as the same header, and it encodes back to a header that decodes alike. */
static void test_wire_random(void)
{
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    int accepted = 0, refused = 0;
    for (int round = 0; round < 12000; round++) {
        frame_t f;
        random_frame(&s, round, &f);
        wire_hdr_t d;
        int code = 0;
        err_t err = {{0}};
        int rc = decode_exact(f.b, f.n, &d, &code, &err);
        CU_ASSERT_FATAL(rc == 0 || rc == -1);
        if (rc == -1) {
            CU_ASSERT(code == WIRE_E_VERSION || code == WIRE_E_TYPE || code == WIRE_E_RANGE ||
                      code == WIRE_E_MALFORMED);
            CU_ASSERT(err.msg[0] != '\0');
            refused++;
            continue;
        }
        accepted++;
        CU_ASSERT(d.version == WIRE_VERSION && d.type >= WIRE_PUSH && d.type <= WIRE_TYPE_MAX);
        CU_ASSERT(d.sender >= 0 && d.clock >= 0 && d.end >= d.begin && d.status >= 0);
        CU_ASSERT(wire_elem_size(d.elem) > 0);
        assert_msgpack_reads(f.b, f.n, &d);
        uint8_t buf[WIRE_HDR_MAX];
        wire_hdr_t d2;
        int n = wire_encode(&d, buf, sizeof buf);
        CU_ASSERT_EQUAL(decode_exact(buf, (size_t)n, &d2, NULL, NULL), 0);
        CU_ASSERT(hdr_eq(&d, &d2));
        /* check_payload must cope with whatever decode accepts */
        rc = wire_check_payload(&d, (size_t)rnd(&s) % 64, &code, &err);
        CU_ASSERT(rc == 0 || rc == -1);
    }
    /* the edits leave some frames valid, and refuse most */
    CU_ASSERT(accepted > 100);
    CU_ASSERT(refused > 8000);
}

/* code and err may be NULL. */
static void test_wire_null_outputs(void)
{
    wire_hdr_t h = sample(WIRE_PUSH), d;
    uint8_t buf[WIRE_HDR_MAX];
    int n = wire_encode(&h, buf, sizeof buf);
    CU_ASSERT_EQUAL(wire_decode(buf, (size_t)n, &d, NULL, NULL), 0);
    CU_ASSERT_EQUAL(wire_decode(buf, (size_t)n - 1, &d, NULL, NULL), -1);
    CU_ASSERT_EQUAL(wire_check_payload(&h, 3, NULL, NULL), -1);
}

/* ------------------------------------------------------------ payload */

/* Asserts wire_check_payload(h, len) returns want_rc and, on -1, want_code. */
static void expect_payload_at(const wire_hdr_t *h, size_t len, int want_code, int line)
{
    int code = -100;
    err_t err = {{0}};
    int rc = wire_check_payload(h, len, &code, &err);
    if (want_code == 0) {
        CU_assertImplementation(rc == 0, (unsigned)line, err.msg, __FILE__, "", CU_FALSE);
    } else {
        CU_assertImplementation(rc == -1, (unsigned)line, "check fails", __FILE__, "", CU_FALSE);
        CU_assertImplementation(code == want_code, (unsigned)line, err.msg, __FILE__, "",
                                CU_FALSE);
        CU_assertImplementation(strstr(err.msg, wire_type_name(h->type)) != NULL ||
                                    h->type < WIRE_PUSH || h->type > WIRE_ERROR,
                                (unsigned)line, "message names the type", __FILE__, "",
                                CU_FALSE);
    }
}
#define EXPECT_PAYLOAD(h, len, code) expect_payload_at(&(h), (len), (code), __LINE__)

static void test_wire_payload_push(void)
{
    static const int types[] = {WIRE_PUSH, WIRE_PULL_REPLY};
    for (int j = 0; j < 2; j++) {
        wire_hdr_t h;
        wire_hdr_init(&h, types[j], 2);
        h.begin = 100;
        h.end = 110;
        h.count = 10;
        EXPECT_PAYLOAD(h, 40, 0);
        EXPECT_PAYLOAD(h, 36, WIRE_E_LENGTH);
        EXPECT_PAYLOAD(h, 44, WIRE_E_LENGTH);
        EXPECT_PAYLOAD(h, 10, WIRE_E_LENGTH);
        EXPECT_PAYLOAD(h, 0, WIRE_E_LENGTH); /* payload missing */
        h.count = 9;                         /* count != end - begin */
        EXPECT_PAYLOAD(h, 36, WIRE_E_LENGTH);
        EXPECT_PAYLOAD(h, 40, WIRE_E_LENGTH);
        h.count = 11;
        EXPECT_PAYLOAD(h, 44, WIRE_E_LENGTH);
        h.count = 10;
        h.elem = WIRE_F16;
        EXPECT_PAYLOAD(h, 20, 0);
        EXPECT_PAYLOAD(h, 40, WIRE_E_LENGTH);
        h.elem = WIRE_BF16;
        EXPECT_PAYLOAD(h, 20, 0);
        h.elem = WIRE_TEXT;
        EXPECT_PAYLOAD(h, 10, WIRE_E_MALFORMED);
        h.elem = 77;
        EXPECT_PAYLOAD(h, 40, WIRE_E_MALFORMED);
        /* an empty range has no payload to carry */
        h.elem = WIRE_F32;
        h.begin = h.end = 5;
        h.count = 0;
        EXPECT_PAYLOAD(h, 0, WIRE_E_LENGTH);
        /* count * 4 wraps around 2^64 to 4: still a mismatch */
        h.begin = 0;
        h.end = h.count = ((uint64_t)1 << 62) + 1;
        EXPECT_PAYLOAD(h, 4, WIRE_E_LENGTH);
        h.end = h.count = UINT64_MAX;
        EXPECT_PAYLOAD(h, SIZE_MAX - 3, WIRE_E_LENGTH);
        /* a header that skipped wire_decode */
        h.begin = 10;
        h.end = 9;
        h.count = 0;
        EXPECT_PAYLOAD(h, 4, WIRE_E_RANGE);
    }
}

static void test_wire_payload_requests(void)
{
    static const int types[] = {WIRE_PULL, WIRE_CLOCK, WIRE_SHUTDOWN};
    for (int j = 0; j < 3; j++) {
        wire_hdr_t h;
        wire_hdr_init(&h, types[j], 1);
        h.clock = 12;
        if (types[j] == WIRE_PULL)
            h.end = 100;
        EXPECT_PAYLOAD(h, 0, 0);
        EXPECT_PAYLOAD(h, 4, WIRE_E_LENGTH);   /* a payload on a request */
        EXPECT_PAYLOAD(h, 400, WIRE_E_LENGTH);
        h.count = 100;
        EXPECT_PAYLOAD(h, 0, WIRE_E_LENGTH);   /* a count on a request */
        EXPECT_PAYLOAD(h, 400, WIRE_E_LENGTH);
        h.count = 0;
        h.status = 1; /* e.g. SHUTDOWN's "stop the job": not the wire's business */
        EXPECT_PAYLOAD(h, 0, 0);
    }
}

/* A top-k PUSH: 1..(end - begin) pairs of 8 bytes. */
static void test_wire_payload_topk(void)
{
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_PUSH, 1);
    h.begin = 100;
    h.end = 200;
    h.elem = WIRE_TOPK;
    h.count = 3;
    EXPECT_PAYLOAD(h, 24, 0);
    EXPECT_PAYLOAD(h, 12, WIRE_E_LENGTH);
    EXPECT_PAYLOAD(h, 0, WIRE_E_LENGTH);
    h.count = 100;
    EXPECT_PAYLOAD(h, 800, 0);
    h.count = 101; /* more than the range holds */
    EXPECT_PAYLOAD(h, 808, WIRE_E_LENGTH);
    h.count = 0;
    EXPECT_PAYLOAD(h, 0, WIRE_E_LENGTH);
    /* a pull reply is never top-k */
    wire_hdr_init(&h, WIRE_PULL_REPLY, 0);
    h.end = 4;
    h.count = 4;
    h.elem = WIRE_TOPK;
    EXPECT_PAYLOAD(h, 32, WIRE_E_MALFORMED);
}

/* A BARRIER carries nothing, or float32 values to sum over the trainers. */
static void test_wire_payload_barrier(void)
{
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_BARRIER, 1);
    EXPECT_PAYLOAD(h, 0, 0);
    EXPECT_PAYLOAD(h, 4, WIRE_E_LENGTH);   /* a payload without its count */
    h.count = 6;
    EXPECT_PAYLOAD(h, 24, 0);
    EXPECT_PAYLOAD(h, 0, WIRE_E_LENGTH);
    EXPECT_PAYLOAD(h, 20, WIRE_E_LENGTH);
    h.elem = WIRE_TEXT;
    EXPECT_PAYLOAD(h, 6, WIRE_E_MALFORMED);
}

/* CHECKPOINT: nothing (the request), or numbers (the shard). */
static void test_wire_payload_checkpoint(void)
{
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_CHECKPOINT, 0);
    EXPECT_PAYLOAD(h, 0, 0); /* the request */
    EXPECT_PAYLOAD(h, 8, WIRE_E_LENGTH);
    h.count = 6; /* the reply: count elements, unrelated to [begin, end) */
    h.begin = 10;
    h.end = 12;
    EXPECT_PAYLOAD(h, 24, 0);
    EXPECT_PAYLOAD(h, 20, WIRE_E_LENGTH);
    EXPECT_PAYLOAD(h, 0, WIRE_E_LENGTH);
    h.elem = WIRE_TEXT;
    EXPECT_PAYLOAD(h, 6, WIRE_E_MALFORMED);
    h.elem = WIRE_MSGPACK;
    EXPECT_PAYLOAD(h, 6, WIRE_E_MALFORMED);
    h.elem = WIRE_F32;
    h.status = WIRE_E_STATE;
    EXPECT_PAYLOAD(h, 24, WIRE_E_MALFORMED);
}

/* PULL_ROWS and PUSH_ROWS: (end - begin) uint64 ids then count float32 in
 * a request (elem ROWS), float32 rows in a PULL_ROWS reply; an empty
 * PUSH_ROWS ends a step; everything else refused with its code. */
static void test_wire_payload_rows(void)
{
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_PULL_ROWS, 1);
    h.elem = WIRE_ROWS;
    h.begin = 10;
    h.end = 13; /* 3 ids */
    EXPECT_PAYLOAD(h, 24, 0);
    EXPECT_PAYLOAD(h, 16, WIRE_E_LENGTH);
    EXPECT_PAYLOAD(h, 0, WIRE_E_LENGTH);
    h.count = 3; /* a request carries no floats */
    EXPECT_PAYLOAD(h, 24 + 12, WIRE_E_LENGTH);
    h.elem = WIRE_F32; /* the reply: 3 rows of dim 4 */
    h.count = 12;
    EXPECT_PAYLOAD(h, 48, 0);
    EXPECT_PAYLOAD(h, 44, WIRE_E_LENGTH);
    h.count = 13; /* not a multiple of 3 rows */
    EXPECT_PAYLOAD(h, 52, WIRE_E_LENGTH);
    h.count = 0;
    EXPECT_PAYLOAD(h, 0, WIRE_E_LENGTH);
    h.elem = WIRE_F16;
    h.count = 12;
    EXPECT_PAYLOAD(h, 24, WIRE_E_MALFORMED);
    wire_hdr_init(&h, WIRE_PEEK_ROWS, 1); /* a read-only pull: ids only, never rows */
    h.elem = WIRE_ROWS;
    h.begin = 10;
    h.end = 13;
    EXPECT_PAYLOAD(h, 24, 0);
    EXPECT_PAYLOAD(h, 16, WIRE_E_LENGTH);
    h.count = 3;
    EXPECT_PAYLOAD(h, 24 + 12, WIRE_E_LENGTH);
    h.elem = WIRE_F32;
    h.count = 12;
    EXPECT_PAYLOAD(h, 48, WIRE_E_MALFORMED);
    wire_hdr_init(&h, WIRE_PULL_ROWS, 1);
    h.begin = 10;
    h.elem = WIRE_ROWS; /* no ids: nothing to pull */
    h.end = h.begin;
    h.count = 0;
    EXPECT_PAYLOAD(h, 0, WIRE_E_LENGTH);

    wire_hdr_init(&h, WIRE_PUSH_ROWS, 1);
    h.elem = WIRE_ROWS;
    h.begin = 0;
    h.end = 2; /* 2 ids of dim 3 */
    h.count = 6;
    EXPECT_PAYLOAD(h, 16 + 24, 0);
    EXPECT_PAYLOAD(h, 16 + 20, WIRE_E_LENGTH);
    EXPECT_PAYLOAD(h, 24, WIRE_E_LENGTH);
    h.count = 5;
    EXPECT_PAYLOAD(h, 16 + 20, WIRE_E_LENGTH);
    h.count = 0;
    EXPECT_PAYLOAD(h, 16, WIRE_E_LENGTH);
    h.count = UINT64_MAX - 1; /* a multiple of 2 whose bytes overflow */
    EXPECT_PAYLOAD(h, 16, WIRE_E_LENGTH);
    h.elem = WIRE_F32;
    h.count = 6;
    EXPECT_PAYLOAD(h, 16 + 24, WIRE_E_MALFORMED);
    h.elem = WIRE_ROWS; /* the end of a step: no ids, no floats, no payload */
    h.begin = h.end = 7;
    h.count = 0;
    EXPECT_PAYLOAD(h, 0, 0);
    EXPECT_PAYLOAD(h, 8, WIRE_E_LENGTH);
    h.count = 4;
    EXPECT_PAYLOAD(h, 16, WIRE_E_LENGTH);
}

/* STATS: nothing (the request), or one msgpack value of count bytes. */
static void test_wire_payload_stats(void)
{
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_STATS, 0);
    EXPECT_PAYLOAD(h, 0, 0); /* the request */
    EXPECT_PAYLOAD(h, 8, WIRE_E_MALFORMED); /* not msgpack */
    h.elem = WIRE_MSGPACK;
    EXPECT_PAYLOAD(h, 8, WIRE_E_LENGTH);   /* a payload without its count */
    h.count = 90;
    EXPECT_PAYLOAD(h, 90, 0);
    EXPECT_PAYLOAD(h, 89, WIRE_E_LENGTH);
    EXPECT_PAYLOAD(h, 0, WIRE_E_LENGTH);
    h.elem = WIRE_F32; /* the counters as floats, as before: refused */
    h.count = 11;
    EXPECT_PAYLOAD(h, 44, WIRE_E_MALFORMED);
    h.elem = WIRE_TEXT;
    EXPECT_PAYLOAD(h, 11, WIRE_E_MALFORMED);
    h.elem = WIRE_MSGPACK;
    h.status = WIRE_E_STATE;
    EXPECT_PAYLOAD(h, 11, WIRE_E_MALFORMED);
}

/* ------------------------------------------------------------ STATS payload */

static wire_stats_t stats_sample(void)
{
    return (wire_stats_t){.pushes = 1ull << 40, .pulls = 17, .errors = 0, .updates = 300,
                          .busy_us = 123456789, .version = 300, .lost = 1, .first_lost = 2,
                          .partial = 1, .lead_done = 0, .next_lead = 0, .rows = 12345,
                          .rows_created = 99999, .rows_bytes = 1ull << 33};
}

static int stats_eq(const wire_stats_t *a, const wire_stats_t *b)
{
    return a->pushes == b->pushes && a->pulls == b->pulls && a->errors == b->errors &&
           a->updates == b->updates && a->busy_us == b->busy_us && a->version == b->version &&
           a->lost == b->lost && a->first_lost == b->first_lost && a->partial == b->partial &&
           a->lead_done == b->lead_done && a->next_lead == b->next_lead && a->rows == b->rows &&
           a->rows_created == b->rows_created && a->rows_bytes == b->rows_bytes;
}

/* Decodes buf[0..n) from a heap block of exactly n bytes (ASan sees any
 * read past it). */
static int stats_decode_exact(const uint8_t *buf, size_t n, wire_stats_t *st, err_t *err)
{
    uint8_t *copy = malloc(n ? n : 1);
    CU_ASSERT_FATAL(copy != NULL);
    memcpy(copy, buf, n);
    int rc = wire_stats_decode(copy, n, st, err);
    free(copy);
    return rc;
}

/* Encoding: a map of the 14 fields by name in the shortest forms, which
 * msgpack-c reads alike, and which decodes to what was encoded, at the
 * extremes of every range too; nothing is written past a small buffer. */
static void test_wire_stats_roundtrip(void)
{
    wire_stats_t in[3] = {stats_sample(), {0}, {0}};
    in[1].first_lost = -1;
    in[2] = (wire_stats_t){UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX, INT64_MAX,
                           INT_MAX, INT_MAX, 1, 1, INT_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX};
    for (int j = 0; j < 3; j++) {
        uint8_t buf[WIRE_STATS_MAX];
        int n = wire_stats_encode(&in[j], buf, sizeof buf);
        CU_ASSERT_FATAL(n > 0 && n <= WIRE_STATS_MAX);
        wire_stats_t out;
        err_t err = {{0}};
        CU_ASSERT_EQUAL(stats_decode_exact(buf, (size_t)n, &out, &err), 0);
        CU_ASSERT(stats_eq(&in[j], &out));
        /* msgpack-c: a map of 14 string keys and integer values */
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        size_t off = 0;
        CU_ASSERT_EQUAL_FATAL(msgpack_unpack_next(&up, (const char *)buf, (size_t)n, &off),
                              MSGPACK_UNPACK_SUCCESS);
        CU_ASSERT_EQUAL(off, (size_t)n);
        CU_ASSERT_EQUAL_FATAL(up.data.type, MSGPACK_OBJECT_MAP);
        CU_ASSERT_EQUAL_FATAL(up.data.via.map.size, 14);
        const msgpack_object_kv *kv = up.data.via.map.ptr;
        CU_ASSERT(kv[0].key.type == MSGPACK_OBJECT_STR && kv[0].key.via.str.size == 6 &&
                  memcmp(kv[0].key.via.str.ptr, "pushes", 6) == 0);
        CU_ASSERT_EQUAL(kv[0].val.via.u64, in[j].pushes);
        CU_ASSERT(kv[7].key.via.str.size == 10 && memcmp(kv[7].key.via.str.ptr, "first_lost", 10) == 0);
        CU_ASSERT_EQUAL(kv[7].val.type, in[j].first_lost < 0 ? MSGPACK_OBJECT_NEGATIVE_INTEGER
                                                             : MSGPACK_OBJECT_POSITIVE_INTEGER);
        msgpack_unpacked_destroy(&up);
        for (int cap = 0; cap < n; cap++) {
            uint8_t small[WIRE_STATS_MAX + 8];
            memset(small, 0xee, sizeof small);
            CU_ASSERT_EQUAL(wire_stats_encode(&in[j], small, (size_t)cap), -1);
            CU_ASSERT_EQUAL(small[cap], 0xee);
        }
    }
}

/* The bytes of a STATS payload of all zeros, first_lost -1 (the example of
 * docs/PROTOCOL.md). */
static void test_wire_stats_bytes(void)
{
    wire_stats_t st = {0};
    st.first_lost = -1;
    uint8_t buf[WIRE_STATS_MAX];
    int n = wire_stats_encode(&st, buf, sizeof buf);
    static const char *const keys[14] = {"pushes",    "pulls",     "errors",       "updates",
                                         "busy_us",   "version",   "lost",         "first_lost",
                                         "partial",   "lead_done", "next_lead",    "rows",
                                         "rows_created", "rows_bytes"};
    uint8_t want[WIRE_STATS_MAX];
    size_t w = 0;
    want[w++] = 0x8e;
    for (int k = 0; k < 14; k++) {
        size_t l = strlen(keys[k]);
        want[w++] = (uint8_t)(0xa0 | l);
        memcpy(want + w, keys[k], l);
        w += l;
        want[w++] = k == 7 ? 0xff : 0x00;
    }
    CU_ASSERT_EQUAL(n, (int)w);
    CU_ASSERT_EQUAL(n, 132); /* as docs/PROTOCOL.md says */
    CU_ASSERT(n == (int)w && memcmp(buf, want, w) == 0);
}

/* A STATS payload built by hand: `n` entries (key, value) in msgpack. */
typedef struct {
    uint8_t b[1024];
    size_t n;
} sbuf_t;

static void sb_put(sbuf_t *f, const void *p, size_t n)
{
    CU_ASSERT_FATAL(f->n + n <= sizeof f->b);
    memcpy(f->b + f->n, p, n);
    f->n += n;
}

static void sb_str(sbuf_t *f, const char *s)
{
    uint8_t h = (uint8_t)(0xa0 | strlen(s));
    sb_put(f, &h, 1);
    sb_put(f, s, strlen(s));
}

static void sb_u8(sbuf_t *f, uint8_t v)
{
    sb_put(f, &v, 1);
}

/* The sample's 14 entries, but entry `skip` (-1: none), with field
 * `bad` (-1: none) given the raw value bytes v[0..vn). */
static void sb_fields(sbuf_t *f, int skip, int bad, const uint8_t *v, size_t vn)
{
    static const char *const keys[14] = {"pushes",    "pulls",     "errors",       "updates",
                                         "busy_us",   "version",   "lost",         "first_lost",
                                         "partial",   "lead_done", "next_lead",    "rows",
                                         "rows_created", "rows_bytes"};
    for (int k = 0; k < 14; k++) {
        if (k == skip)
            continue;
        sb_str(f, keys[k]);
        if (k == bad)
            sb_put(f, v, vn);
        else /* a fixint in the field's range */
            sb_u8(f, (uint8_t)(k == 8 || k == 9 ? 1 : k));
    }
}

/* Expects wire_stats_decode to refuse f with a message containing what. */
static void stats_refused_at(const sbuf_t *f, const char *what, int line)
{
    wire_stats_t st;
    err_t err = {{0}};
    int rc = stats_decode_exact(f->b, f->n, &st, &err);
    CU_ASSERT_EQUAL(rc, -1);
    if (rc != -1 || !strstr(err.msg, what))
        fprintf(stderr, "\n  line %d: expected \"%s\", got %d \"%s\"\n", line, what, rc, err.msg);
    CU_ASSERT(strstr(err.msg, what) != NULL);
    CU_ASSERT(strncmp(err.msg, "STATS: ", 7) == 0);
}
#define STATS_REFUSED(f, what) stats_refused_at(&(f), (what), __LINE__)

/* Every malformed payload is refused with a message saying why: not a map,
 * truncated anywhere, a key that is not a string, a value that is not an
 * integer or out of its field's range, a field twice or missing, trailing
 * bytes. A key it does not know is skipped; the order and the encodings'
 * widths are free. */
static void test_wire_stats_refused(void)
{
    sbuf_t f = {.n = 0};
    sb_u8(&f, 0x9b); /* an array of 11 */
    STATS_REFUSED(f, "not a msgpack map but an array");
    f.n = 0;
    STATS_REFUSED(f, "empty payload");
    /* the sample, cut at every byte */
    uint8_t buf[WIRE_STATS_MAX];
    wire_stats_t s0 = stats_sample();
    int n = wire_stats_encode(&s0, buf, sizeof buf);
    for (int cut = 0; cut < n; cut++) {
        wire_stats_t st;
        err_t err = {{0}};
        CU_ASSERT_EQUAL(stats_decode_exact(buf, (size_t)cut, &st, &err), -1);
        CU_ASSERT(err.msg[0] != '\0');
    }
    /* trailing bytes */
    memcpy(f.b, buf, (size_t)n);
    f.n = (size_t)n;
    sb_u8(&f, 0x00);
    STATS_REFUSED(f, "1 trailing bytes");
    /* a key that is an integer */
    f.n = 0;
    sb_u8(&f, 0x81);
    sb_u8(&f, 0x01);
    sb_u8(&f, 0x01);
    STATS_REFUSED(f, "key 0 is an integer, not a string");
    /* values of the wrong kind or out of range */
    static const struct {
        int field;
        uint8_t v[9];
        size_t vn;
        const char *what;
    } bad[] = {
        {0, {0xc0}, 1, "field \"pushes\" is nil, not an integer"},
        {4, {0xcb, 0, 0, 0, 0, 0, 0, 0, 0}, 9, "field \"busy_us\" is a float"},
        {5, {0xff}, 1, "field \"version\" is -1, outside [0, 9223372036854775807]"},
        {5, {0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0}, 9, "field \"version\" is 9223372036854775808"},
        {6, {0xce, 0x80, 0, 0, 0}, 5, "field \"lost\" is 2147483648"},
        {7, {0xfe}, 1, "field \"first_lost\" is -2, outside [-1, 2147483647]"},
        {8, {0x02}, 1, "field \"partial\" is 2, outside [0, 1]"},
        {9, {0xa1, 'x'}, 2, "field \"lead_done\" is a string"},
        {10, {0xd0, 0xff}, 2, "field \"next_lead\" is -1"},
    };
    for (size_t j = 0; j < sizeof bad / sizeof bad[0]; j++) {
        f.n = 0;
        sb_u8(&f, 0x8e);
        sb_fields(&f, -1, bad[j].field, bad[j].v, bad[j].vn);
        STATS_REFUSED(f, bad[j].what);
    }
    /* a field missing, a field twice */
    f.n = 0;
    sb_u8(&f, 0x8d);
    sb_fields(&f, 3, -1, NULL, 0);
    STATS_REFUSED(f, "no field \"updates\"");
    f.n = 0;
    sb_u8(&f, 0x8f);
    sb_fields(&f, -1, -1, NULL, 0);
    sb_str(&f, "lost");
    sb_u8(&f, 0x00);
    STATS_REFUSED(f, "field \"lost\" twice");
    /* an unknown key, with a non-integer value, is refused; with an integer, skipped */
    f.n = 0;
    sb_u8(&f, 0x8f);
    sb_str(&f, "later");
    sb_u8(&f, 0xc3);
    sb_fields(&f, -1, -1, NULL, 0);
    STATS_REFUSED(f, "key 0 (unknown) is a boolean");
    f.n = 0;
    sb_u8(&f, 0xde); /* map16, keys as str8, values as uint64: wide but valid */
    sb_u8(&f, 0x00);
    sb_u8(&f, 0x0f);
    sb_str(&f, "later");
    sb_u8(&f, 0x07);
    static const char *const keys[14] = {"next_lead", "lead_done", "partial", "first_lost",
                                         "lost",      "version",   "busy_us", "updates",
                                         "errors",    "pulls",     "pushes",  "rows",
                                         "rows_created", "rows_bytes"};
    for (int k = 0; k < 14; k++) {
        uint8_t h[2] = {0xd9, (uint8_t)strlen(keys[k])};
        sb_put(&f, h, 2);
        sb_put(&f, keys[k], strlen(keys[k]));
        uint8_t v[9] = {0xcf, 0, 0, 0, 0, 0, 0, 0, (uint8_t)(k == 1 || k == 2 ? 1 : k)};
        sb_put(&f, v, 9);
    }
    wire_stats_t st;
    err_t err = {{0}};
    CU_ASSERT_EQUAL(stats_decode_exact(f.b, f.n, &st, &err), 0);
    CU_ASSERT(st.next_lead == 0 && st.lead_done == 1 && st.partial == 1 && st.first_lost == 3 &&
              st.lost == 4 && st.version == 5 && st.busy_us == 6 && st.updates == 7 &&
              st.errors == 8 && st.pulls == 9 && st.pushes == 10 && st.rows == 11 &&
              st.rows_created == 12 && st.rows_bytes == 13);
}

/* Random bytes and random mutations of a valid payload: never a crash or a
 * read past the frame (ASan), and whatever is accepted encodes back to
 * something that decodes the same. */
static void test_wire_stats_random(void)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    uint8_t valid[WIRE_STATS_MAX];
    wire_stats_t s0 = stats_sample();
    int n = wire_stats_encode(&s0, valid, sizeof valid);
    int accepted = 0;
    for (int round = 0; round < 20000; round++) {
        uint8_t b[WIRE_STATS_MAX];
        size_t len;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        if (round % 2) { /* a mutation: one byte changed */
            len = (size_t)n;
            memcpy(b, valid, len);
            b[x % len] = (uint8_t)(x >> 32);
        } else {
            len = x % 64;
            for (size_t k = 0; k < len; k++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                b[k] = (uint8_t)x;
            }
        }
        wire_stats_t st, st2;
        err_t err = {{0}};
        if (stats_decode_exact(b, len, &st, &err) != 0) {
            CU_ASSERT(err.msg[0] != '\0');
            continue;
        }
        accepted++;
        uint8_t again[WIRE_STATS_MAX];
        int m = wire_stats_encode(&st, again, sizeof again);
        CU_ASSERT(m > 0 && stats_decode_exact(again, (size_t)m, &st2, &err) == 0 &&
                  stats_eq(&st, &st2));
    }
    CU_ASSERT(accepted > 100); /* mutated values within range are accepted */
}

static void test_wire_payload_error(void)
{
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_ERROR, 0);
    h.status = WIRE_E_RANGE;
    EXPECT_PAYLOAD(h, 0, 0); /* no text */
    h.elem = WIRE_TEXT;
    h.count = 5;
    EXPECT_PAYLOAD(h, 5, 0);
    EXPECT_PAYLOAD(h, 4, WIRE_E_LENGTH);
    EXPECT_PAYLOAD(h, 0, WIRE_E_LENGTH);
    h.count = 0;
    EXPECT_PAYLOAD(h, 5, WIRE_E_LENGTH);
    h.count = 5;
    h.elem = WIRE_F32; /* a text must say it is one */
    EXPECT_PAYLOAD(h, 5, WIRE_E_MALFORMED);
    h.elem = WIRE_TEXT;
    h.status = 0; /* an ERROR without a reason */
    EXPECT_PAYLOAD(h, 5, WIRE_E_MALFORMED);
}

static void test_wire_payload_bad_type(void)
{
    wire_hdr_t h;
    wire_hdr_init(&h, 42, 0);
    EXPECT_PAYLOAD(h, 0, WIRE_E_TYPE);
    h.type = 0;
    EXPECT_PAYLOAD(h, 0, WIRE_E_TYPE);
}

/* A decoded request flows into the payload check (what a server does). */
static void test_wire_decode_then_check(void)
{
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_PUSH, 3);
    h.clock = 9;
    h.begin = 1000;
    h.end = 1256;
    h.count = 256;
    uint8_t buf[WIRE_HDR_MAX];
    int n = wire_encode(&h, buf, sizeof buf);
    wire_hdr_t d;
    int code = 0;
    err_t err = {{0}};
    CU_ASSERT_EQUAL(decode_exact(buf, (size_t)n, &d, &code, &err), 0);
    CU_ASSERT_EQUAL(wire_check_payload(&d, 1024, &code, &err), 0);
    CU_ASSERT_EQUAL(wire_check_payload(&d, 1020, &code, &err), -1);
    CU_ASSERT_EQUAL(code, WIRE_E_LENGTH);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "PUSH"));
}

static void test_wire_names(void)
{
    static const char *const types[] = {"PUSH",  "PULL",       "PULL_REPLY",
                                        "CLOCK", "BARRIER",    "STATS",
                                        "CHECKPOINT", "SHUTDOWN", "ERROR",
                                        "PULL_ROWS", "PUSH_ROWS", "PEEK_ROWS"};
    for (int t = WIRE_PUSH; t <= WIRE_TYPE_MAX; t++)
        CU_ASSERT_STRING_EQUAL(wire_type_name(t), types[t - 1]);
    CU_ASSERT_STRING_EQUAL(wire_type_name(0), "?");
    CU_ASSERT_STRING_EQUAL(wire_type_name(13), "?");
    CU_ASSERT_STRING_EQUAL(wire_type_name(-1), "?");
    CU_ASSERT_STRING_EQUAL(wire_type_name(INT_MIN), "?");
    static const char *const errs[] = {"version", "type",  "range",   "length",
                                       "malformed", "state", "internal", "stopping", "lost"};
    for (int c = WIRE_E_VERSION; c <= WIRE_E_LOST; c++)
        CU_ASSERT_STRING_EQUAL(wire_error_name(c), errs[c - 1]);
    CU_ASSERT_STRING_EQUAL(wire_error_name(0), "ok");
    CU_ASSERT_STRING_EQUAL(wire_error_name(10), "?");
    CU_ASSERT_STRING_EQUAL(wire_error_name(-1), "?");
    CU_ASSERT_EQUAL(wire_elem_size(WIRE_F32), 4);
    CU_ASSERT_EQUAL(wire_elem_size(WIRE_F16), 2);
    CU_ASSERT_EQUAL(wire_elem_size(WIRE_BF16), 2);
    CU_ASSERT_EQUAL(wire_elem_size(WIRE_TEXT), 1);
    CU_ASSERT_EQUAL(wire_elem_size(WIRE_MSGPACK), 1);
    CU_ASSERT_EQUAL(wire_elem_size(0), 0);
    CU_ASSERT_EQUAL(wire_elem_size(WIRE_TOPK), 8);
    CU_ASSERT_EQUAL(wire_elem_size(WIRE_ROWS), 4);
    CU_ASSERT_EQUAL(wire_elem_size(6), 0);
    wire_hdr_t h;
    memset(&h, 0x5a, sizeof h);
    wire_hdr_init(&h, WIRE_CLOCK, 7);
    wire_hdr_t want = {WIRE_VERSION, WIRE_CLOCK, 7, 0, 0, 0, WIRE_F32, 0, 0, 0};
    CU_ASSERT(hdr_eq(&h, &want));
}

int test_wire_register(void)
{
    CU_pSuite s = CU_add_suite("wire", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "roundtrip", test_wire_roundtrip) ||
        !CU_add_test(s, "encode_bytes", test_wire_encode_bytes) ||
        !CU_add_test(s, "encode_small", test_wire_encode_small) ||
        !CU_add_test(s, "not_array", test_wire_not_array) ||
        !CU_add_test(s, "array_size", test_wire_array_size) ||
        !CU_add_test(s, "wrong_kind", test_wire_wrong_kind) ||
        !CU_add_test(s, "negative", test_wire_negative) ||
        !CU_add_test(s, "too_big", test_wire_too_big) ||
        !CU_add_test(s, "int_widths", test_wire_int_widths) ||
        !CU_add_test(s, "version", test_wire_version) ||
        !CU_add_test(s, "type", test_wire_type) ||
        !CU_add_test(s, "elem", test_wire_elem) ||
        !CU_add_test(s, "range", test_wire_range) ||
        !CU_add_test(s, "trailing", test_wire_trailing) ||
        !CU_add_test(s, "truncated", test_wire_truncated) ||
        !CU_add_test(s, "random", test_wire_random) ||
        !CU_add_test(s, "null_outputs", test_wire_null_outputs) ||
        !CU_add_test(s, "payload_push", test_wire_payload_push) ||
        !CU_add_test(s, "payload_requests", test_wire_payload_requests) ||
        !CU_add_test(s, "payload_barrier", test_wire_payload_barrier) ||
        !CU_add_test(s, "payload_topk", test_wire_payload_topk) ||
        !CU_add_test(s, "payload_checkpoint", test_wire_payload_checkpoint) ||
        !CU_add_test(s, "payload_stats", test_wire_payload_stats) ||
        !CU_add_test(s, "payload_rows", test_wire_payload_rows) ||
        !CU_add_test(s, "stats_roundtrip", test_wire_stats_roundtrip) ||
        !CU_add_test(s, "stats_bytes", test_wire_stats_bytes) ||
        !CU_add_test(s, "stats_refused", test_wire_stats_refused) ||
        !CU_add_test(s, "stats_random", test_wire_stats_random) ||
        !CU_add_test(s, "payload_error", test_wire_payload_error) ||
        !CU_add_test(s, "payload_bad_type", test_wire_payload_bad_type) ||
        !CU_add_test(s, "decode_then_check", test_wire_decode_then_check) ||
        !CU_add_test(s, "names", test_wire_names))
        return -1;
    return 0;
}
