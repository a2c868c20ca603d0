/* transport.h - the only place that knows ZeroMQ (ps-lite's "van").
 *
 * A transport_t is one socket: a server's ROUTER (transport_listen) or a
 * client's DEALER (transport_connect). Messages are multipart; frames are
 * sent without a copy when asked (the caller keeps the bytes alive until the
 * peer has answered), and received frames are read in place. Endpoints are
 * tcp://HOST:PORT or inproc://NAME; one ZeroMQ context per process.
 * The key-value logic above (ps/server.c, trainer/dist.c) never sees a
 * socket: it exchanges frames through this interface.
 *
 * Security (docs/PROTOCOL.md, "Security"): with a transport_auth_t whose
 * curve is set, a listener is a ZeroMQ CURVE server that admits only
 * clients holding the job's client key pair (checked by a ZAP handler that
 * runs in a thread of this process while any such listener is open), and a
 * client is a CURVE client that knows the server's public key. Every
 * message is then encrypted and authenticated. inproc:// runs no security
 * handshake at all, so CURVE is refused there.
 */
#ifndef PST_TRANSPORT_H
#define PST_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "common/util/err.h"

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

/* Key length in Z85 text: 40 characters and the NUL. */
#define TRANSPORT_KEY_LEN 41

/* A job's keys, Z85 text: one CURVE key pair that every server of the job
 * uses and one that every trainer uses. A rank may wipe the secret it does
 * not need (servers need server_secret and client_public, trainers
 * server_public and the client pair). curve = 0: plain ZeroMQ (the NULL
 * mechanism), the keys are not looked at. */
typedef struct transport_auth_t {
    int curve;
    char server_public[TRANSPORT_KEY_LEN], server_secret[TRANSPORT_KEY_LEN];
    char client_public[TRANSPORT_KEY_LEN], client_secret[TRANSPORT_KEY_LEN];
} transport_auth_t;

/* Returns 0 if this process's libzmq has CURVE (zmq_has("curve")), or -1
 * with err saying that it does not and what to do. */
int transport_curve_check(err_t *err);

/* Fills *a with two fresh key pairs (zmq_curve_keypair) and sets a->curve.
 * Returns 0, or -1 with err (no CURVE in libzmq). */
int transport_auth_generate(transport_auth_t *a, err_t *err);

/* Reads the key pairs kept in dir (dir/server.key and dir/client.key,
 * czmq's secret certificate format, Z85). Returns 1 with *a filled and
 * a->curve set, 0 when dir holds neither file (or does not exist), -1 with
 * err when only one is there, a file is readable by other users (mode
 * beyond 0600), unreadable or malformed, or a public key is not its secret
 * key's. */
int transport_auth_load(transport_auth_t *a, const char *dir, err_t *err);

/* Writes both key pairs into dir (created, mode 0700, if missing), each
 * file atomically with mode 0600. Returns 0, or -1 with err naming the
 * file. */
int transport_auth_save(const transport_auth_t *a, const char *dir, err_t *err);

/* Overwrites *a with zeros in a way the compiler keeps. */
void transport_auth_wipe(transport_auth_t *a);

/* Binds a ROUTER socket. `where` is an endpoint (tcp://..., inproc://...) or
 * a bare host/address, which binds tcp://HOST:* on an ephemeral port. The
 * bound endpoint (with the port the system chose) is written to endpoint.
 * Returns the socket, or NULL with err naming the address. */
transport_t *transport_listen(const char *where, char *endpoint, size_t len, err_t *err);

/* As transport_listen, secured by auth (NULL or auth->curve = 0: plain).
 * With CURVE the socket uses auth->server_secret, and the process's ZAP
 * handler (started here, before the bind, for the first such socket)
 * admits a peer only when its public key is auth->client_public; anyone
 * else gets ZAP status 400 and never reaches the socket. Returns the
 * socket, or NULL with err (no CURVE in libzmq, an inproc:// endpoint,
 * bad keys, another ZAP handler already bound in this process). */
transport_t *transport_listen_auth(const char *where, const transport_auth_t *auth,
                                   char *endpoint, size_t len, err_t *err);

/* Connects a DEALER socket to endpoint. Returns it, or NULL with err. */
transport_t *transport_connect(const char *endpoint, err_t *err);

/* As transport_connect, secured by auth (NULL or auth->curve = 0: plain):
 * a CURVE client with the client key pair that expects auth->server_public.
 * A tcp:// client watches its handshakes (zmq_socket_monitor): when the
 * server refuses it (ZAP status 4xx, or the peer speaks another security
 * mechanism) the next transport_poll / transport_recv / transport_send on
 * it fails with err saying so (a send would otherwise wait for ever: libzmq
 * drops such a connection), and a wait that times out while a CURVE client
 * has never completed a handshake fails with err naming authentication as
 * a possible cause. Returns the socket, or NULL with err. */
transport_t *transport_connect_auth(const char *endpoint, const transport_auth_t *auth,
                                    err_t *err);

/* Closes the socket (pending messages get linger_ms to leave); accepts NULL
 * and sets *self_p to NULL. */
void transport_destroy(transport_t **self_p);

/* transport_send's answer when a ROUTER's peer is gone (disconnected):
 * nothing was sent, and the caller may go on. */
#define TRANSPORT_GONE 1

/* Sends n frames as one message. Frames with index >= zero_copy_from are
 * sent without copying: their bytes must stay valid and unchanged until the
 * receiver has them (in pstrain: until the peer's reply to a later request
 * arrives). Returns 0, TRANSPORT_GONE (with err) when a ROUTER's peer (the
 * first frame) is no longer connected, or -1 with err. */
int transport_send(transport_t *t, const tframe_t *frames, int n, int zero_copy_from, err_t *err);

/* Receives one message, waiting at most timeout_ms (-1: no limit). Returns 1
 * with *msg filled (release it with tmsg_close), 0 on timeout, -1 on error
 * (including a refused handshake, see transport_connect_auth). */
int transport_recv(transport_t *t, tmsg_t *msg, int timeout_ms, err_t *err);

/* Releases the frames of msg. */
void tmsg_close(tmsg_t *msg);

/* Waits until one of ts[0..n) can be read or timeout_ms passed; sets
 * ready[i] to 1 for the readable ones. Returns the number readable (0 on
 * timeout), or -1 with err (including a refused handshake, or a timeout
 * while a CURVE client has never completed one: see
 * transport_connect_auth). */
int transport_poll(transport_t **ts, int n, int timeout_ms, int *ready, err_t *err);

/* Bytes sent and received through t so far. */
uint64_t transport_bytes_sent(const transport_t *t);
uint64_t transport_bytes_received(const transport_t *t);

/* Handshakes the process's ZAP handler has refused so far (status 400). */
uint64_t transport_auth_refused(void);

/* ZeroMQ's I/O threads (they move the bytes, and run CURVE's encryption) for
 * the process's context, made with the first socket: call it before. Each
 * connection is served by one I/O thread, so more than one pays once a
 * process has several connections (a server of several trainers, a trainer
 * of several servers). Returns 0, or -1 with err (n < 1, or too late). */
int transport_set_io_threads(int n, err_t *err);

/* The I/O threads of the process's context (or of the next one). */
int transport_io_threads(void);

/* Ends the process's ZeroMQ context after every socket is closed. */
void transport_shutdown(void);

#endif
