/* wire.h - the parameter-server wire protocol: the msgpack header frame of
 * every message, and its validation against the payload frame that follows.
 *
 * A message is a ZeroMQ multipart message: frame 1 is the header (a msgpack
 * array of 10 integers, see wire_hdr_t), frame 2 (optional) the payload, raw
 * little-endian elements. This module encodes and decodes the header and
 * checks the payload's size; it never copies the payload and never allocates.
 * The transport (transport.h) moves frames; docs/PROTOCOL.md is the spec.
 */
#ifndef PST_WIRE_H
#define PST_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "common/util/err.h"

#define WIRE_VERSION 1
/* Enough for any header wire_encode writes (the longest is 67 bytes). */
#define WIRE_HDR_MAX 128
/* Number of elements in the header array. */
#define WIRE_HDR_FIELDS 10
/* Large vectors travel in pieces of at most this many float32 (1 MiB):
 * ZeroMQ hands over a message only once all of it has arrived, so one 16 MiB
 * message leaves the receiver idle for the whole transfer and the wire idle
 * while the receiver applies or copies it. In pieces, the server applies
 * piece k while piece k + 1 is on the wire, and the trainer copies the
 * parameters it pulled the same way (bench_proto measures the gain). */
#define WIRE_PIECE_FLOATS (1u << 18)
/* A server takes at most this many pieces of one step from one trainer
 * (BSP sums each piece once every trainer has sent it, so it tracks them). */
#define WIRE_PIECES_MAX 1024

/* Message types (header element 1). */
enum {
    WIRE_PUSH = 1,       /* gradient of [begin, end) for step clock; payload */
    WIRE_PULL = 2,       /* parameters of [begin, end) for step clock; no payload */
    WIRE_PULL_REPLY = 3, /* answer to PULL: the parameters of [begin, end) */
    WIRE_CLOCK = 4,      /* the sender finished step clock */
    WIRE_BARRIER = 5,    /* answered once every trainer has sent one */
    WIRE_STATS = 6,      /* answered with the server's counters */
    WIRE_CHECKPOINT = 7, /* send, write or stop at a checkpoint (WIRE_CKPT_*) */
    WIRE_SHUTDOWN = 8,   /* goodbye, failure or a request to stop (WIRE_SHUTDOWN_*); a
                          * goodbye is answered at the end of the job, status = trainers lost */
    WIRE_ERROR = 9,      /* answer to a bad request: status says why, payload a text */
    WIRE_PULL_ROWS = 10, /* rows of a sparse table (status: table id) for step clock: the
                          * request carries row ids (elem WIRE_ROWS), the reply the rows (F32) */
    WIRE_PUSH_ROWS = 11, /* row ids and their gradients (elem WIRE_ROWS) for step clock; an
                          * empty one ends the trainer's row pushes of the step */
    WIRE_PEEK_ROWS = 12, /* as a PULL_ROWS request, read-only (evaluation): a row not held
                          * reads as its initial value and is not made; the reply is a
                          * PULL_ROWS */
};
/* The highest message type. */
#define WIRE_TYPE_MAX WIRE_PEEK_ROWS

/* Element types of the payload (header element 6). */
enum {
    WIRE_F32 = 1,   /* IEEE float32, little-endian */
    WIRE_F16 = 2,   /* IEEE float16, little-endian (cluster.compression = fp16) */
    WIRE_BF16 = 3,  /* bfloat16, little-endian (cluster.compression = bf16) */
    WIRE_ROWS = 5,  /* PULL_ROWS / PUSH_ROWS requests: end - begin uint64 row ids, then
                     * count float32 (n x dim gradients; none in a PULL_ROWS), little-endian */
    WIRE_TOPK = 4,  /* PUSH only: uint32 index into [begin, end), then float32 value,
                     * little-endian, indices ascending (cluster.compression = topk) */
    WIRE_TEXT = 10, /* UTF-8 bytes, not NUL-terminated (ERROR payloads) */
    WIRE_MSGPACK = 11, /* one msgpack value, count = its bytes (STATS replies: a map) */
};

/* Error codes: the status of an ERROR reply, and wire_decode's *code. */
enum {
    WIRE_E_VERSION = 1,   /* header version is not WIRE_VERSION */
    WIRE_E_TYPE = 2,      /* unknown message type, or not a request */
    WIRE_E_RANGE = 3,     /* end < begin, keys outside the server's shard, an unknown
                           * sparse table, a row id beyond it or not this server's */
    WIRE_E_LENGTH = 4,    /* count / payload size do not match */
    WIRE_E_MALFORMED = 5, /* not a well-formed header */
    WIRE_E_STATE = 6,     /* valid, but not now (e.g. a push for another step) */
    WIRE_E_INTERNAL = 7,  /* the server failed (e.g. out of memory) */
    WIRE_E_STOPPING = 8,  /* the job stops at step clock (a signal): no pulls from there */
    WIRE_E_LOST = 9,      /* a trainer was lost: the step can never complete (BSP) */
};

/* The status of a PULL_REPLY: flags for the trainer that receives it. */
enum {
    WIRE_PULL_STOP_REQUESTED = 1, /* somebody asked the job to stop (a signal on a rank):
                                   * the leading trainer stops it at its next step */
    WIRE_PULL_TAKE_LEAD = 2,      /* trainer 0 was lost and the receiver is the lowest
                                   * trainer left: it leads the job from now on */
};

/* The status of a CHECKPOINT request (every other value is refused). */
enum {
    WIRE_CKPT_SEND = 0,    /* answer with the shard's parameters and optimizer state */
    WIRE_CKPT_WRITE = 1,   /* write the shard as step clock; answer once it is on disk */
    WIRE_CKPT_STOP_AT = 2, /* (trainer 0) the job stops at step clock: refuse its pulls */
    WIRE_CKPT_WRITE_DELTA = 3, /* as WRITE, with the sparse rows changed since the last write
                                * only (a delta of the last full or delta file) */
};

/* The status of a SHUTDOWN request (every other value is refused); the
 * answer's status is the number of trainers the server lost. */
enum {
    WIRE_SHUTDOWN_GOODBYE = 0,  /* the trainer is done: answered at the end of the job */
    WIRE_SHUTDOWN_FAIL = 1,     /* the trainer fails: the job ends at once */
    WIRE_SHUTDOWN_ASK_STOP = 2, /* asks for a graceful stop: answered at once, no goodbye */
};

/* The header, in wire order. */
typedef struct {
    int version;    /* WIRE_VERSION */
    int type;       /* WIRE_PUSH .. WIRE_TYPE_MAX */
    int sender;     /* rank of the sender, >= 0 */
    int64_t clock;  /* the sender's step / the version of the parameters, >= 0 */
    uint64_t begin; /* key range [begin, end) in the flat parameter index */
    uint64_t end;   /* >= begin */
    int elem;       /* WIRE_F32 .. WIRE_MSGPACK */
    uint64_t count; /* number of elements in the payload frame */
    uint32_t req;   /* request id, echoed in the reply */
    int status;     /* >= 0: a WIRE_E_* code in an ERROR; WIRE_PULL_* flags in a
                     * PULL_REPLY; WIRE_CKPT_* / WIRE_SHUTDOWN_* in those
                     * requests; the trainers lost in a SHUTDOWN answer; else 0 */
} wire_hdr_t;

/* Sets h to a header of the given type and sender: version WIRE_VERSION,
 * elem WIRE_F32, every other field 0. */
void wire_hdr_init(wire_hdr_t *h, int type, int sender);

/* Encodes h into buf (capacity cap) as a msgpack array of 10 integers, each
 * in its shortest msgpack form. The fields are written as they are, without
 * validation (the receiver's wire_decode validates), so a test can produce
 * any header. Allocates nothing. Returns the byte length (<= WIRE_HDR_MAX),
 * or -1 if cap is too small; then buf[0..cap) may have been written. */
int wire_encode(const wire_hdr_t *h, uint8_t *buf, size_t cap);

/* Decodes and validates the header frame buf[0..len). It must be exactly one
 * msgpack array (no trailing bytes) whose first element is the version:
 * another version gives WIRE_E_VERSION (whatever the rest looks like). Then
 * the array must have 10 elements, each an integer (any msgpack integer
 * encoding) in the range of its field, else WIRE_E_MALFORMED; an unknown
 * type gives WIRE_E_TYPE, an unknown elem WIRE_E_MALFORMED, end < begin
 * WIRE_E_RANGE. Never reads outside buf[0..len) and never allocates; safe on
 * arbitrary bytes.
 * Returns 0 with *h filled, or -1 with *code (may be NULL) set to the WIRE_E_*
 * code and err to a message such as "header: element 4 (begin) is a string,
 * not an integer". On -1, h holds the fields read before the fault (the rest
 * 0): after WIRE_E_TYPE, WIRE_E_RANGE or an unknown elem all of them, so an
 * ERROR reply can echo h->req. */
int wire_decode(const void *buf, size_t len, wire_hdr_t *h, int *code, err_t *err);

/* Checks a header (as wire_decode returns it) against its payload frame of
 * payload_len bytes (0: no payload frame):
 *   PUSH, PULL_REPLY: elem F32/F16/BF16, count == end - begin, count > 0 and
 *     payload_len == count * wire_elem_size(elem);
 *   PULL, CLOCK, BARRIER, SHUTDOWN: count == 0 and no payload;
 *   PULL_ROWS: as a request elem ROWS, end > begin, count == 0 and
 *     payload_len == 8 * (end - begin) (the ids); as a reply elem F32,
 *     end > begin, count a positive multiple of end - begin (n x dim) and
 *     payload_len == 4 * count;
 *   PEEK_ROWS: as a PULL_ROWS request;
 *   PUSH_ROWS: elem ROWS; with n = end - begin ids, either n == 0, count
 *     == 0 and no payload (the end of the trainer's step), or count a
 *     positive multiple of n and payload_len == 8 * n + 4 * count;
 *   STATS, CHECKPOINT: as a request count == 0 and no payload; as a reply,
 *     status == 0 and a payload: STATS elem MSGPACK and payload_len == count
 *     (wire_stats_decode reads it), CHECKPOINT elem F32/F16/BF16 and
 *     payload_len == count * elem size (the count need not be end - begin: a
 *     checkpoint carries parameters and optimizer state);
 *   ERROR: status > 0, and either no payload and count == 0, or elem
 *     WIRE_TEXT and payload_len == count.
 * Returns 0, or -1 with *code (may be NULL) = WIRE_E_LENGTH (sizes disagree),
 * WIRE_E_MALFORMED (wrong elem or status), WIRE_E_RANGE (end < begin) or
 * WIRE_E_TYPE (unknown type), and err saying which. */
int wire_check_payload(const wire_hdr_t *h, size_t payload_len, int *code, err_t *err);

/* What a STATS reply says about its server (docs/PROTOCOL.md, "STATS"):
 * named fields with 64-bit counters. */
typedef struct {
    uint64_t pushes;    /* PUSH messages taken */
    uint64_t pulls;     /* PULLs answered */
    uint64_t errors;    /* requests refused */
    uint64_t updates;   /* steps completed */
    uint64_t busy_us;   /* microseconds spent handling requests */
    int64_t version;    /* the parameters' version: steps applied (0..2^63-1) */
    int lost;           /* trainers given up for lost (0..2^31-1) */
    int first_lost;     /* the lowest of them, -1 when none (-1..2^31-1) */
    int partial;        /* 1: pieces of the step under way were applied (0 or 1) */
    int lead_done;      /* 1: trainer 0 has said goodbye (0 or 1) */
    int next_lead;      /* the lowest trainer not lost; T when none (0..2^31-1) */
    uint64_t rows;         /* sparse rows held now, all tables */
    uint64_t rows_created; /* sparse rows created so far */
    uint64_t rows_bytes;   /* bytes of the row store (rows_bytes) */
} wire_stats_t;

/* Bytes that wire_stats_encode writes at most. */
#define WIRE_STATS_MAX 256

/* Encodes st as the payload of a STATS reply: a msgpack map of its 14
 * fields by name (docs/PROTOCOL.md), each value in its shortest integer
 * form. Writes nothing past buf[cap). Returns the byte length, or -1 if cap
 * is too small (WIRE_STATS_MAX is always enough). */
int wire_stats_encode(const wire_stats_t *st, uint8_t *buf, size_t cap);

/* Decodes and validates a STATS reply's payload buf[0..len): one msgpack
 * map (nothing after it) whose keys are strings and values integers, each
 * of the 14 fields exactly once and in its range; keys it does not know are
 * skipped, so that a later server may add fields. Never reads outside buf
 * and never allocates. Returns 0 with *st filled, or -1 with err saying
 * what is wrong ("STATS: field \"lost\" is -3, ..."); *st is then
 * unspecified. */
int wire_stats_decode(const void *buf, size_t len, wire_stats_t *st, err_t *err);

/* "PUSH", "PULL", "PULL_REPLY", "CLOCK", "BARRIER", "STATS", "CHECKPOINT",
 * "SHUTDOWN", "ERROR", "PULL_ROWS", "PUSH_ROWS", or "?" for anything else. */
const char *wire_type_name(int type);

/* "version", "type", "range", "length", "malformed", "state", "internal"
 * for the WIRE_E_* codes, "ok" for 0, "?" for anything else. */
const char *wire_error_name(int code);

/* The largest piece, in elements, into which a trainer cuts the pushes to a
 * server that holds shard_len keys: WIRE_PIECE_FLOATS, or more for a shard
 * so large that its pieces, one layer after another, could pass
 * WIRE_PIECES_MAX (every layer adds at most one piece beyond
 * shard_len / piece, and a shard holds at most WIRE_PIECES_MAX / 2 layers). */
size_t wire_piece_floats(size_t shard_len);

/* Size in bytes of one payload element: 8 for TOPK, 4 for F32 and ROWS (its
 * floats; the ids come on top), 2 for F16 and BF16, 1 for TEXT and MSGPACK,
 * 0 for an unknown elem. */
size_t wire_elem_size(int elem);

#endif
