/* harness.h - the fuzz harnesses of the wire decoder and of the parameter
 * server's request handler, shared by the libFuzzer targets (fuzz_wire.c,
 * fuzz_server.c), the seed generator (gen_corpus.c) and the CUnit suite
 * "fuzz" (tests/test_fuzz.c), which replays the regression inputs.
 *
 * A harness does not only survive its input: it checks what the protocol
 * promises (docs/PROTOCOL.md) and returns -1 on the first broken promise,
 * with a message; the libFuzzer targets abort on it, the tests assert 0.
 *
 * Wire input:   flags (1 byte), payload_len (2 bytes LE, or 8 bytes LE if
 *               flags & 1), then the header frame (the rest); or, if flags &
 *               FUZZ_WIRE_STATS, a STATS reply's payload (the rest), checked
 *               by wire_stats_decode against a reference on msgpack-c.
 * Server input: config (2 bytes), then records: a message or an operation.
 *   config: bits 0-1 consistency (0 BSP, 1 ASP, 2 SSP, 3 BSP); bit 2 server
 *           1 of 2 (else 0 of 2); bits 3-4 optimizer (SGD, momentum, Adam,
 *           Adagrad); bits 5-6 trainers (0: 2, 1: 1, 2: 3, 3: 2); bit 7
 *           SSP staleness 0 (else 1). Second byte: bit 0 checkpoints are
 *           written (CHECKPOINT WIRE_CKPT_WRITE), bit 1 BSP goes on when a trainer
 *           is lost (continue_on_loss).
 *   message: flags (1 byte), [peer], header, [payload]
 *     flags: bits 0-1 extra frames beyond header and payload (0..2; 3: an
 *            operation instead); bit 2 a payload frame follows; bit 3 the
 *            payload is not float-aligned; bit 4 the header is FUZZ_FIELDS
 *            bytes of fields (type, sender, clock, begin, end, elem, count,
 *            req, status) that wire_encode writes (version 1), else a
 *            length byte and the raw frame; bit 5 the send callback fails on
 *            this message (the run ends there, as server_run would); bits
 *            6-7 the peer: "t0", "t1", "t2", or a length byte (255: 257
 *            bytes, over the limit) and the identity bytes.
 *     payload: a 2-byte LE length, then the bytes (zeros past the input).
 *   operation: flags with bits 0-1 = 3, then one byte: bits 0-1 = 0: the
 *     trainers in bits 2-4 fall silent (the server's clock moves on) and
 *     server_check_trainers gives them up for lost, the others having sent
 *     a heartbeat (4 such operations per input at most); 1:
 *     server_request_stop (a signal); 2, 3: nothing.
 */
#ifndef PST_FUZZ_HARNESS_H
#define PST_FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>

/* Flag of a wire input: the rest is a STATS payload. */
#define FUZZ_WIRE_STATS 2

/* Flags of a server input message. */
enum {
    FUZZ_PAYLOAD = 1 << 2,
    FUZZ_UNALIGNED = 1 << 3,
    FUZZ_FIELDS_HDR = 1 << 4,
    FUZZ_SEND_FAILS = 1 << 5,
    FUZZ_PEER_RAW = 3 << 6,
};
#define FUZZ_FIELDS 9
#define FUZZ_OP 3
enum { FUZZ_OP_LOSE = 0, FUZZ_OP_STOP = 1 };

/* The model the server harness shards: its number of parameters. */
#define FUZZ_N_PARAMS 17

/* What a server run saw, for the tests. */
typedef struct {
    int messages; /* messages handled */
    int refused; /* answered with one ERROR */
    int refused_checked; /* of those, checked to have changed nothing */
    int expected_refusals; /* messages the harness knew must be refused */
    int replies; /* replies sent, ERRORs included */
    int pulls_covered; /* PULLs whose range the replies covered in full */
    int params_changed; /* the shard's parameters differ from the start */
    long version; /* the server's version at the end */
    char msg[512]; /* the broken promise, when -1 is returned */
} fuzz_report_t;

/* Runs one wire input; returns 0, or -1 (msg, if not NULL, of msg_len
 * bytes says why). */
int fuzz_wire_one(const uint8_t *data, size_t size);
int fuzz_wire_run(const uint8_t *data, size_t size, char *msg, size_t msg_len);

/* Runs one server input on a fresh server; returns 0, or -1. rep may be
 * NULL. */
int fuzz_server_one(const uint8_t *data, size_t size);
int fuzz_server_run(const uint8_t *data, size_t size, fuzz_report_t *rep);

/* Where the server harness writes checkpoints (config bit 7); NULL (the
 * default): CHECKPOINT WIRE_CKPT_WRITE is refused. The string must outlive the
 * runs. */
void fuzz_set_ckpt_root(const char *dir);

/* Builders of inputs, for the seed generator and the tests: a growable
 * byte buffer (abort()s when out of memory). */
typedef struct {
    uint8_t *b;
    size_t n, cap;
} fuzz_buf_t;

void fuzz_buf_put(fuzz_buf_t *f, const void *p, size_t n);
void fuzz_buf_free(fuzz_buf_t *f);
/* A wire input: header frame hdr[0..hdr_len) and a payload length. */
void fuzz_wire_input(fuzz_buf_t *f, const uint8_t *hdr, size_t hdr_len, uint64_t payload_len);
/* A wire input of a STATS payload payload[0..len). */
void fuzz_wire_stats_input(fuzz_buf_t *f, const uint8_t *payload, size_t len);
/* A server message. peer: 0..2 for "t0".."t2", or -1 with
 * raw_peer[0..raw_len) (raw_len > 254: 257 bytes, zero-padded). hdr: the
 * raw header frame, or FUZZ_FIELDS bytes with flags FUZZ_FIELDS_HDR.
 * payload NULL: no payload frame. */
void fuzz_server_msg(fuzz_buf_t *f, int flags, int peer, const uint8_t *raw_peer, size_t raw_len,
                     const uint8_t *hdr, size_t hdr_len, const void *payload, size_t payload_len);

/* An operation record: FUZZ_OP_LOSE | trainer mask << 2, or FUZZ_OP_STOP. */
void fuzz_server_op(fuzz_buf_t *f, int op);

/* Lets time pass for the server (lost trainers): the fuzz targets advance a
 * clock of their own (stubs.c); elsewhere this sleeps. */
void fuzz_clock_advance(int ms);

#endif
