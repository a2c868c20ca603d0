/* transport.h - the only place that knows ZeroMQ (ps-lite's "van").
 *
 * A transport_t is one socket: a server's ROUTER (transport_listen) or a
 * client's DEALER (transport_connect). Messages are multipart; frames are
 * sent without a copy when asked (the caller keeps the bytes alive until the
 * peer has answered), and received frames are read in place. Endpoints are
 * tcp://HOST:PORT or inproc://NAME; one ZeroMQ context per process.
 * The key-value logic above (ps/server.c, trainer/dist.c) never sees a
 * socket: it exchanges frames through this interface.
 */
#ifndef PST_TRANSPORT_H
#define PST_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define TMSG_MAX 4        /* frames kept per received message; more are dropped */
#define TMSG_IMPL 64      /* room for one zmq_msg_t */

typedef struct transport_t transport_t;

/* A frame to send. */
typedef struct {
    const void *data;
    size_t size;
} tframe_t;

/* A received message: frames [0, n) read in place until tmsg_close. */
typedef struct {
    int n;
    int extra;                            /* frames beyond TMSG_MAX were dropped */
    const uint8_t *data[TMSG_MAX];
    size_t size[TMSG_MAX];
    _Alignas(16) unsigned char impl[TMSG_MAX][TMSG_IMPL];
} tmsg_t;

/* Binds a ROUTER socket. `where` is an endpoint (tcp://..., inproc://...) or
 * a bare host/address, which binds tcp://HOST:* on an ephemeral port. The
 * bound endpoint (with the port the system chose) is written to endpoint.
 * Returns the socket, or NULL with err naming the address. */
transport_t *transport_listen(const char *where, char *endpoint, size_t len, err_t *err);

/* Connects a DEALER socket to endpoint. Returns it, or NULL with err. */
transport_t *transport_connect(const char *endpoint, err_t *err);

/* Closes the socket (pending messages get linger_ms to leave); accepts NULL
 * and sets *self_p to NULL. */
void transport_destroy(transport_t **self_p);

/* Sends n frames as one message. Frames with index >= zero_copy_from are
 * sent without copying: their bytes must stay valid and unchanged until the
 * receiver has them (in pstrain: until the peer's reply to a later request
 * arrives). Returns 0, or -1 with err (e.g. an unknown ROUTER peer). */
int transport_send(transport_t *t, const tframe_t *frames, int n, int zero_copy_from, err_t *err);

/* Receives one message, waiting at most timeout_ms (-1: no limit). Returns 1
 * with *msg filled (release it with tmsg_close), 0 on timeout, -1 on error. */
int transport_recv(transport_t *t, tmsg_t *msg, int timeout_ms, err_t *err);

/* Releases the frames of msg. */
void tmsg_close(tmsg_t *msg);

/* Waits until one of ts[0..n) can be read or timeout_ms passed; sets
 * ready[i] to 1 for the readable ones. Returns the number readable (0 on
 * timeout), or -1 with err. */
int transport_poll(transport_t **ts, int n, int timeout_ms, int *ready, err_t *err);

/* Bytes sent and received through t so far. */
uint64_t transport_bytes_sent(const transport_t *t);
uint64_t transport_bytes_received(const transport_t *t);

/* Ends the process's ZeroMQ context after every socket is closed. */
void transport_shutdown(void);

#endif
