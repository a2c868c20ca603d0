/* transport.c - ZeroMQ ROUTER/DEALER sockets behind transport.h, with
 * optional CURVE security: a ZAP handler (RFC 27) in a thread of this
 * process admits only the job's client key, and client sockets watch their
 * handshakes so that a refused trainer fails with a message instead of
 * waiting in silence. */
#include "common/net/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/util/fsutil.h"

_Static_assert(sizeof(zmq_msg_t) <= TMSG_IMPL, "tmsg_t.impl cannot hold a zmq_msg_t");

struct transport_t {
    void *sock;
    void *mon;               /* PAIR receiving sock's handshake events (tcp clients), or NULL */
    int router;
    int curve;               /* a CURVE client or server */
    int zap_slot;            /* CURVE listener: its entry in the ZAP table; else -1 */
    int handshakes;          /* client: handshakes completed */
    int auth_status;         /* client: ZAP status of a refused handshake (0: none) */
    int proto_error;         /* client: last ZMQ_PROTOCOL_ERROR_* of a failed handshake */
    int failed_last;         /* client: its last handshake failed (libzmq may then have
                              * ended the connection for good: sends would wait for ever) */
    char endpoint[256];      /* client: what it dials, for messages */
    uint64_t sent, received;
};

static void *g_ctx;
static unsigned g_mon_next;  /* names of monitor endpoints */
static int g_io_threads = 1; /* of the next context (transport_set_io_threads) */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

/* The process's ZeroMQ context, made (with g_io_threads I/O threads) on
 * first use. */
static void *context(void)
{
    pthread_mutex_lock(&g_lock);
    if (!g_ctx && (g_ctx = zmq_ctx_new()) && g_io_threads > 1)
        zmq_ctx_set(g_ctx, ZMQ_IO_THREADS, g_io_threads);
    void *c = g_ctx;
    pthread_mutex_unlock(&g_lock);
    return c;
}

int transport_set_io_threads(int n, err_t *err)
{
    if (n < 1)
        return err_set(err, "transport: %d I/O threads", n);
    pthread_mutex_lock(&g_lock);
    int made = g_ctx != NULL;
    if (!made)
        g_io_threads = n;
    pthread_mutex_unlock(&g_lock);
    if (made)
        return err_set(err, "transport: the I/O threads are set before the first socket");
    return 0;
}

int transport_io_threads(void)
{
    pthread_mutex_lock(&g_lock);
    int n = g_ctx ? zmq_ctx_get(g_ctx, ZMQ_IO_THREADS) : g_io_threads;
    pthread_mutex_unlock(&g_lock);
    return n;
}

/* Monotonic time in milliseconds. */
static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

/* ------------------------------------------------------------------ ZAP
 * The ZAP handler (RFC 27, "ZMQ Authentication Protocol"): libzmq asks
 * whoever is bound to inproc://zeromq.zap.01 in the socket's context
 * whether a peer may complete its handshake. Each CURVE listener has a ZAP
 * domain of its own ("pstrain-N") and one admitted client key; the handler
 * answers 200 for that key and 400 for anything else. It runs while at
 * least one CURVE listener is open and is bound before that listener's
 * ROUTER, so no handshake can happen without it (libzmq would otherwise
 * admit any client that knows the server's public key). */
#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_SLOTS 64

typedef struct {
    int used;
    char domain[32];
    uint8_t client[32];      /* the admitted client public key, binary */
} zap_slot_t;

static struct {
    pthread_t thread;
    void *rep, *stop_rd;     /* the handler thread's sockets */
    void *stop_wr;           /* our end of its stop pipe */
    int users;               /* CURVE listeners open */
    unsigned next;           /* domain and pipe names */
    zap_slot_t slot[ZAP_SLOTS];
    uint64_t refused;
} g_zap;
static pthread_mutex_t g_zap_lock = PTHREAD_MUTEX_INITIALIZER; /* the table */
static pthread_mutex_t g_zap_life = PTHREAD_MUTEX_INITIALIZER; /* starting and stopping */

/* 1 if frame m holds exactly the bytes of string s, else 0. */
static int frame_is(zmq_msg_t *m, const char *s)
{
    size_t n = strlen(s);
    return zmq_msg_size(m) == n && memcmp(zmq_msg_data(m), s, n) == 0;
}

/* Reads one ZAP request from rep and answers it: 200 when the domain is a
 * listener's and the mechanism is CURVE with that listener's client key;
 * 200 for a plain (NULL mechanism) socket outside our domains, which libzmq
 * only asks about if it set a domain (ours never do: such sockets are not
 * pstrain's to police); 400 otherwise; 500 for a malformed request. */
static void zap_answer(void *rep)
{
    zmq_msg_t f[8];
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t extra, *m = n < 8 ? &f[n] : &extra;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, rep, 0) < 0) {
            zmq_msg_close(m);
            for (int i = 0; i < n; i++)
                zmq_msg_close(&f[i]);
            return; /* the context is ending */
        }
        more = zmq_msg_more(m);
        if (m == &extra)
            zmq_msg_close(m);
        else
            n++;
    }
    const char *status = "500", *text = "malformed ZAP request";
    if (n >= 6 && frame_is(&f[0], "1.0")) {
        status = "400";
        text = "not a key of this job";
        pthread_mutex_lock(&g_zap_lock);
        int found = 0;
        for (int i = 0; i < ZAP_SLOTS; i++) {
            zap_slot_t *z = &g_zap.slot[i];
            if (!z->used || !frame_is(&f[2], z->domain))
                continue;
            found = 1;
            if (frame_is(&f[5], "CURVE") && n == 7 && zmq_msg_size(&f[6]) == 32 &&
                memcmp(zmq_msg_data(&f[6]), z->client, 32) == 0) {
                status = "200";
                text = "OK";
            }
            break;
        }
        if (!found && frame_is(&f[5], "NULL")) {
            status = "200";
            text = "OK";
        }
        if (status[0] == '4')
            g_zap.refused++;
        pthread_mutex_unlock(&g_zap_lock);
    }
    /* reply: version, request id, status code, status text, user id, metadata */
    zmq_send(rep, "1.0", 3, ZMQ_SNDMORE);
    if (n >= 2)
        zmq_send(rep, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
    else
        zmq_send(rep, "", 0, ZMQ_SNDMORE);
    zmq_send(rep, status, 3, ZMQ_SNDMORE);
    zmq_send(rep, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(rep, status[0] == '2' ? "trainer" : "", status[0] == '2' ? 7 : 0, ZMQ_SNDMORE);
    zmq_send(rep, "", 0, 0);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
}

/* The handler thread: answers ZAP requests until a message on its stop pipe
 * (or the context's end), then closes its sockets. */
static void *zap_thread(void *arg)
{
    (void)arg;
    for (;;) {
        zmq_pollitem_t it[2] = {{.socket = g_zap.rep, .events = ZMQ_POLLIN},
                                {.socket = g_zap.stop_rd, .events = ZMQ_POLLIN}};
        if (zmq_poll(it, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break; /* ETERM */
        }
        if (it[1].revents & ZMQ_POLLIN)
            break;
        if (it[0].revents & ZMQ_POLLIN)
            zap_answer(g_zap.rep);
    }
    zmq_close(g_zap.rep);
    zmq_close(g_zap.stop_rd);
    return NULL;
}

/* Binds the handler and starts its thread (g_zap_lock held). Returns 0 or
 * -1 with err, nothing left open. */
static int zap_start(err_t *err)
{
    void *ctx = context();
    int zero = 0;
    char stop_ep[64];
    snprintf(stop_ep, sizeof stop_ep, "inproc://pstrain-zap-stop-%u", g_zap.next++);
    g_zap.rep = zmq_socket(ctx, ZMQ_REP);
    g_zap.stop_rd = zmq_socket(ctx, ZMQ_PAIR);
    g_zap.stop_wr = zmq_socket(ctx, ZMQ_PAIR);
    if (!g_zap.rep || !g_zap.stop_rd || !g_zap.stop_wr) {
        err_set(err, "ZAP handler: zmq_socket: %s", zmq_strerror(errno));
        goto fail;
    }
    zmq_setsockopt(g_zap.rep, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(g_zap.stop_rd, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(g_zap.stop_wr, ZMQ_LINGER, &zero, sizeof zero);
    /* a handler stopped just before may still hold the name for a moment:
     * libzmq frees an inproc endpoint when its reaper has closed the socket */
    int rc;
    for (int tries = 0; (rc = zmq_bind(g_zap.rep, ZAP_ENDPOINT)) != 0 && errno == EADDRINUSE &&
                        tries < 2000;
         tries++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    if (rc != 0) {
        err_set(err, "cannot start the ZAP handler on %s: %s (is another ZAP handler running "
                "in this process?)", ZAP_ENDPOINT, zmq_strerror(errno));
        goto fail;
    }
    if (zmq_bind(g_zap.stop_rd, stop_ep) != 0 || zmq_connect(g_zap.stop_wr, stop_ep) != 0) {
        err_set(err, "ZAP handler: %s: %s", stop_ep, zmq_strerror(errno));
        goto fail;
    }
    /* pthread_create is the memory barrier that lets the thread take over
     * the sockets made here */
    if (pthread_create(&g_zap.thread, NULL, zap_thread, NULL) != 0) {
        err_set(err, "ZAP handler: cannot start its thread");
        goto fail;
    }
    return 0;
fail:
    if (g_zap.rep)
        zmq_close(g_zap.rep);
    if (g_zap.stop_rd)
        zmq_close(g_zap.stop_rd);
    if (g_zap.stop_wr)
        zmq_close(g_zap.stop_wr);
    g_zap.rep = g_zap.stop_rd = g_zap.stop_wr = NULL;
    return -1;
}

/* Stops the handler thread (g_zap_lock not held: the thread takes it). */
static void zap_stop(void)
{
    zmq_send(g_zap.stop_wr, "", 0, 0);
    pthread_join(g_zap.thread, NULL);
    zmq_close(g_zap.stop_wr);
    g_zap.rep = g_zap.stop_rd = g_zap.stop_wr = NULL;
}

/* Admits client (32 bytes) on a new domain, starting the handler for the
 * first listener. Returns the slot (its domain is g_zap.slot[i].domain),
 * or -1 with err. */
static int zap_register(const uint8_t *client, err_t *err)
{
    pthread_mutex_lock(&g_zap_life);
    pthread_mutex_lock(&g_zap_lock);
    int i = 0;
    while (i < ZAP_SLOTS && g_zap.slot[i].used)
        i++;
    if (i == ZAP_SLOTS || (g_zap.users == 0 && zap_start(err) != 0)) {
        if (i == ZAP_SLOTS)
            err_set(err, "more than %d CURVE listeners in one process", ZAP_SLOTS);
        pthread_mutex_unlock(&g_zap_lock);
        pthread_mutex_unlock(&g_zap_life);
        return -1;
    }
    g_zap.users++;
    zap_slot_t *z = &g_zap.slot[i];
    z->used = 1;
    snprintf(z->domain, sizeof z->domain, "pstrain-%u", g_zap.next++);
    memcpy(z->client, client, 32);
    pthread_mutex_unlock(&g_zap_lock);
    pthread_mutex_unlock(&g_zap_life);
    return i;
}

/* Forgets slot i; the last listener's release stops the handler. */
static void zap_release(int i)
{
    pthread_mutex_lock(&g_zap_life);
    pthread_mutex_lock(&g_zap_lock);
    memset(&g_zap.slot[i], 0, sizeof g_zap.slot[i]);
    int last = g_zap.users > 0 && --g_zap.users == 0;
    pthread_mutex_unlock(&g_zap_lock);
    if (last)
        zap_stop(); /* the thread may take g_zap_lock until it stops */
    pthread_mutex_unlock(&g_zap_life);
}

uint64_t transport_auth_refused(void)
{
    pthread_mutex_lock(&g_zap_lock);
    uint64_t n = g_zap.refused;
    pthread_mutex_unlock(&g_zap_lock);
    return n;
}

void transport_shutdown(void)
{
    /* a listener left open would keep the handler's socket, and with it
     * zmq_ctx_term, waiting for ever */
    pthread_mutex_lock(&g_zap_life);
    pthread_mutex_lock(&g_zap_lock);
    int running = g_zap.users > 0;
    g_zap.users = 0;
    memset(g_zap.slot, 0, sizeof g_zap.slot);
    pthread_mutex_unlock(&g_zap_lock);
    if (running)
        zap_stop();
    pthread_mutex_unlock(&g_zap_life);
    pthread_mutex_lock(&g_lock);
    if (g_ctx)
        zmq_ctx_term(g_ctx);
    g_ctx = NULL;
    g_io_threads = 1;
    pthread_mutex_unlock(&g_lock);
}

/* ------------------------------------------------------------------ keys */

int transport_curve_check(err_t *err)
{
    if (zmq_has("curve"))
        return 0;
    int major, minor, patch;
    zmq_version(&major, &minor, &patch);
    return err_set(err,
                   "this libzmq (%d.%d.%d) has no CURVE security (zmq_has(\"curve\") is 0): "
                   "install a libzmq built with libsodium (Debian's libzmq5 is), or set "
                   "cluster.auth = \"none\" on a network you trust",
                   major, minor, patch);
}

void transport_auth_wipe(transport_auth_t *a)
{
    explicit_bzero(a, sizeof *a);
}

int transport_auth_generate(transport_auth_t *a, err_t *err)
{
    if (transport_curve_check(err) != 0)
        return -1;
    memset(a, 0, sizeof *a);
    if (zmq_curve_keypair(a->server_public, a->server_secret) != 0 ||
        zmq_curve_keypair(a->client_public, a->client_secret) != 0) {
        transport_auth_wipe(a);
        return err_set(err, "zmq_curve_keypair: %s", zmq_strerror(errno));
    }
    a->curve = 1;
    return 0;
}

/* Checks that pub and sec are Z85 keys and that pub is sec's public key.
 * Returns 0 or -1 with err naming what. */
static int key_pair_check(const char *pub, const char *sec, const char *what, err_t *err)
{
    uint8_t bin[32];
    char derived[TRANSPORT_KEY_LEN];
    if (strlen(pub) != 40 || !zmq_z85_decode(bin, pub))
        return err_set(err, "%s: the public key is not 40 characters of Z85", what);
    if (strlen(sec) != 40 || !zmq_z85_decode(bin, sec)) {
        explicit_bzero(bin, sizeof bin);
        return err_set(err, "%s: the secret key is not 40 characters of Z85", what);
    }
    explicit_bzero(bin, sizeof bin);
    if (zmq_curve_public(derived, sec) != 0)
        return err_set(err, "%s: zmq_curve_public: %s", what, zmq_strerror(errno));
    if (strcmp(derived, pub) != 0)
        return err_set(err, "%s: the public key is not the secret key's", what);
    return 0;
}

/* Finds `NAME = "VALUE"` on a line of text and copies VALUE (at most 40
 * characters) into out. Returns 0, or -1 when it is not there. */
static int key_field(const char *text, const char *name, char *out)
{
    size_t nl = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, name, nl) != 0)
            continue;
        const char *q = p + nl;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q++ != '=')
            continue;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q++ != '"')
            continue;
        const char *end = strchr(q, '"');
        if (!end || end - q > 40)
            return -1;
        memcpy(out, q, (size_t)(end - q));
        out[end - q] = '\0';
        return 0;
    }
    return -1;
}

/* Reads one key pair from path into pub and sec. Returns 0 or -1 with err. */
static int key_file_read(const char *path, char *pub, char *sec, err_t *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return err_set(err, "%s: %s", path, strerror(errno));
    if (st.st_mode & 077)
        return err_set(err, "%s: other users may read it (mode %04o): keep a secret key at mode "
                       "0600 (chmod 600 %s)", path, (unsigned)(st.st_mode & 07777), path);
    size_t len;
    char *text = fs_read_all(path, &len, err);
    if (!text)
        return -1;
    int rc = 0;
    if (key_field(text, "public-key", pub) != 0 || key_field(text, "secret-key", sec) != 0)
        rc = err_set(err, "%s: no public-key = \"...\" and secret-key = \"...\" lines (Z85)", path);
    else
        rc = key_pair_check(pub, sec, path, err);
    explicit_bzero(text, len);
    free(text);
    return rc;
}

int transport_auth_load(transport_auth_t *a, const char *dir, err_t *err)
{
    char sp[4200], cp[4200];
    snprintf(sp, sizeof sp, "%s/server.key", dir);
    snprintf(cp, sizeof cp, "%s/client.key", dir);
    int has_s = access(sp, F_OK) == 0, has_c = access(cp, F_OK) == 0;
    if (!has_s && !has_c)
        return 0;
    if (!has_s || !has_c)
        return err_set(err, "%s holds %s but not %s: keep both key files, or remove the other "
                       "to have new ones made", dir, has_s ? "server.key" : "client.key",
                       has_s ? "client.key" : "server.key");
    memset(a, 0, sizeof *a);
    if (key_file_read(sp, a->server_public, a->server_secret, err) != 0 ||
        key_file_read(cp, a->client_public, a->client_secret, err) != 0) {
        transport_auth_wipe(a);
        return -1;
    }
    a->curve = 1;
    return 1;
}

int transport_auth_save(const transport_auth_t *a, const char *dir, err_t *err)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (fs_mkdirs(dir, err) != 0)
            return -1;
        if (chmod(dir, 0700) != 0)
            return err_set(err, "%s: chmod 700: %s", dir, strerror(errno));
    }
    const char *names[2] = {"server", "client"};
    const char *keys[2][2] = {{a->server_public, a->server_secret},
                              {a->client_public, a->client_secret}};
    for (int i = 0; i < 2; i++) {
        char path[4200], text[512];
        snprintf(path, sizeof path, "%s/%s.key", dir, names[i]);
        /* czmq's secret certificate format (ZPL), so zcert_load reads it */
        snprintf(text, sizeof text,
                 "#   ****  pstrain job key pair for every %s: KEEP THIS FILE SECRET  ****\n"
                 "#   ZeroMQ CURVE Secret Certificate (Z85)\n"
                 "\n"
                 "metadata\n"
                 "    role = \"%s\"\n"
                 "curve\n"
                 "    public-key = \"%s\"\n"
                 "    secret-key = \"%s\"\n",
                 i == 0 ? "parameter server" : "trainer", i == 0 ? "server" : "trainer",
                 keys[i][0], keys[i][1]);
        int rc = fs_write_atomic_mode(path, text, strlen(text), 0600, err);
        explicit_bzero(text, sizeof text);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ sockets */

static transport_t *socket_new(int type, err_t *err)
{
    void *ctx = context();
    if (!ctx) {
        err_set(err, "zmq_ctx_new: %s", zmq_strerror(errno));
        return NULL;
    }
    transport_t *t = calloc(1, sizeof *t);
    if (!t) {
        err_set(err, "out of memory");
        return NULL;
    }
    t->zap_slot = -1;
    t->sock = zmq_socket(ctx, type);
    if (!t->sock) {
        err_set(err, "zmq_socket: %s", zmq_strerror(errno));
        free(t);
        return NULL;
    }
    t->router = type == ZMQ_ROUTER;
    int hwm = 100000, linger = 2000, one = 1;
    zmq_setsockopt(t->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(t->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(t->sock, ZMQ_LINGER, &linger, sizeof linger);
    if (t->router) /* an unknown peer is an error, never a silent drop */
        zmq_setsockopt(t->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    return t;
}

/* Sets a Z85 key option (40 characters and the NUL). Returns 0 or -1 with err. */
static int set_key(transport_t *t, int option, const char *z85, const char *what, err_t *err)
{
    if (strlen(z85) != 40 || zmq_setsockopt(t->sock, option, z85, 41) != 0)
        return err_set(err, "the %s is not a CURVE key in Z85 (%s)", what,
                       strlen(z85) != 40 ? "not 40 characters" : zmq_strerror(errno));
    return 0;
}

transport_t *transport_listen(const char *where, char *endpoint, size_t len, err_t *err)
{
    return transport_listen_auth(where, NULL, endpoint, len, err);
}

transport_t *transport_listen_auth(const char *where, const transport_auth_t *auth,
                                   char *endpoint, size_t len, err_t *err)
{
    char addr[512];
    /* a bare host binds that address only: all interfaces ("*", 0.0.0.0)
     * only when the caller (cluster.bind) says so */
    if (strstr(where, "://"))
        snprintf(addr, sizeof addr, "%s", where);
    else
        snprintf(addr, sizeof addr, "tcp://%s:*", where);
    int curve = auth && auth->curve;
    if (curve && strncmp(addr, "tcp://", 6) != 0) {
        err_set(err, "cannot bind %s with CURVE: only tcp:// runs a security handshake", addr);
        return NULL;
    }
    if (curve && transport_curve_check(err) != 0)
        return NULL;
    transport_t *t = socket_new(ZMQ_ROUTER, err);
    if (!t)
        return NULL;
    if (curve) {
        uint8_t client[32];
        int one = 1;
        if (strlen(auth->client_public) != 40 || !zmq_z85_decode(client, auth->client_public)) {
            err_set(err, "the client public key is not a CURVE key in Z85");
            goto fail;
        }
        if (set_key(t, ZMQ_CURVE_SECRETKEY, auth->server_secret, "server secret key", err) != 0)
            goto fail;
        if (zmq_setsockopt(t->sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0) {
            err_set(err, "ZMQ_CURVE_SERVER: %s", zmq_strerror(errno));
            goto fail;
        }
        /* the ZAP handler runs before the bind: no handshake without it */
        t->zap_slot = zap_register(client, err);
        if (t->zap_slot < 0)
            goto fail;
        const char *domain = g_zap.slot[t->zap_slot].domain;
        if (zmq_setsockopt(t->sock, ZMQ_ZAP_DOMAIN, domain, strlen(domain)) != 0) {
            err_set(err, "ZMQ_ZAP_DOMAIN: %s", zmq_strerror(errno));
            goto fail;
        }
        t->curve = 1;
    }
    if (zmq_bind(t->sock, addr) != 0) {
        err_set(err, "cannot bind %s: %s", addr, zmq_strerror(errno));
        goto fail;
    }
    size_t n = len;
    if (zmq_getsockopt(t->sock, ZMQ_LAST_ENDPOINT, endpoint, &n) != 0) {
        err_set(err, "cannot read the endpoint bound at %s: %s", addr, zmq_strerror(errno));
        goto fail;
    }
    return t;
fail:
    transport_destroy(&t);
    return NULL;
}

transport_t *transport_connect(const char *endpoint, err_t *err)
{
    return transport_connect_auth(endpoint, NULL, err);
}

/* Watches t's handshakes through a PAIR socket (zmq_socket_monitor), set
 * up before the connect so that no event is missed. Returns 0 or -1 with err. */
static int monitor_start(transport_t *t, err_t *err)
{
    char ep[64];
    pthread_mutex_lock(&g_lock);
    snprintf(ep, sizeof ep, "inproc://pstrain-monitor-%u", g_mon_next++);
    pthread_mutex_unlock(&g_lock);
    int events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    if (zmq_socket_monitor(t->sock, ep, events) != 0)
        return err_set(err, "zmq_socket_monitor: %s", zmq_strerror(errno));
    t->mon = zmq_socket(context(), ZMQ_PAIR);
    int zero = 0;
    if (!t->mon || zmq_setsockopt(t->mon, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_connect(t->mon, ep) != 0)
        return err_set(err, "monitor socket: %s", zmq_strerror(errno));
    return 0;
}

transport_t *transport_connect_auth(const char *endpoint, const transport_auth_t *auth,
                                    err_t *err)
{
    int curve = auth && auth->curve;
    if (curve && strncmp(endpoint, "tcp://", 6) != 0) {
        err_set(err, "cannot connect to %s with CURVE: only tcp:// runs a security handshake",
                endpoint);
        return NULL;
    }
    if (curve && transport_curve_check(err) != 0)
        return NULL;
    transport_t *t = socket_new(ZMQ_DEALER, err);
    if (!t)
        return NULL;
    snprintf(t->endpoint, sizeof t->endpoint, "%s", endpoint);
    if (curve) {
        if (set_key(t, ZMQ_CURVE_SERVERKEY, auth->server_public, "server public key", err) != 0 ||
            set_key(t, ZMQ_CURVE_PUBLICKEY, auth->client_public, "client public key", err) != 0 ||
            set_key(t, ZMQ_CURVE_SECRETKEY, auth->client_secret, "client secret key", err) != 0)
            goto fail;
        t->curve = 1;
    }
    /* inproc:// has no handshake to watch */
    if (strncmp(endpoint, "tcp://", 6) == 0 && monitor_start(t, err) != 0)
        goto fail;
    if (zmq_connect(t->sock, endpoint) != 0) {
        err_set(err, "cannot connect to %s: %s", endpoint, zmq_strerror(errno));
        goto fail;
    }
    return t;
fail:
    transport_destroy(&t);
    return NULL;
}

void transport_destroy(transport_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    transport_t *t = *self_p;
    if (t->mon) {
        zmq_socket_monitor(t->sock, NULL, 0);
        zmq_close(t->mon);
    }
    zmq_close(t->sock);
    if (t->zap_slot >= 0)
        zap_release(t->zap_slot);
    free(t);
    *self_p = NULL;
}

/* Reads the monitor events waiting on t->mon into t's handshake record. */
static void monitor_drain(transport_t *t)
{
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, t->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        int more = zmq_msg_more(&ev);
        if (zmq_msg_size(&ev) >= 6) {
            const uint8_t *d = zmq_msg_data(&ev);
            uint16_t id;
            uint32_t value;
            memcpy(&id, d, 2);
            memcpy(&value, d + 2, 4);
            t->failed_last = id != ZMQ_EVENT_HANDSHAKE_SUCCEEDED;
            if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
                t->handshakes++;
            else if (id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
                t->auth_status = (int)value;
            else if (id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
                t->proto_error = (int)value;
        }
        zmq_msg_close(&ev);
        if (more) { /* the second frame is the endpoint */
            zmq_msg_init(&addr);
            zmq_msg_recv(&addr, t->mon, 0);
            zmq_msg_close(&addr);
        }
    }
}

/* Returns -1 with err if t's server has refused it for good (ZAP said no,
 * or the two ends use different security mechanisms or keys), else 0. */
static int handshake_refused(const transport_t *t, err_t *err)
{
    if (t->auth_status)
        return err_set(err,
                       "the server at %s refused this client's CURVE key (ZAP status %d, "
                       "authentication failed): this process does not hold the job's client key",
                       t->endpoint, t->auth_status);
    if (t->proto_error == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
        return err_set(err,
                       "the server at %s uses another security mechanism than this client "
                       "(%s here, authentication failed): cluster.auth must be the same on "
                       "every rank",
                       t->endpoint, t->curve ? "CURVE" : "none");
    if (t->proto_error == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
        return err_set(err,
                       "the CURVE handshake with the server at %s failed (cryptographic error, "
                       "authentication failed): its key is not the one this client expects",
                       t->endpoint);
    return 0;
}

/* Waits until one of ts[0..n) is readable or timeout_ms (-1: no limit)
 * passed, reading the handshake events of the client sockets meanwhile.
 * Returns the number readable with ready[] set, 0 on timeout, or -1 with
 * err (poll failed, a server refused a client, or the wait timed out while
 * a CURVE client has never completed a handshake). */
static int wait_ready(transport_t **ts, int n, int timeout_ms, int *ready, err_t *err)
{
    zmq_pollitem_t items[128];
    int mon_of[64];
    if (n > 64)
        return err_set(err, "poll over %d sockets (at most 64)", n);
    for (int i = 0; i < n; i++)
        if (ts[i]->mon) {
            monitor_drain(ts[i]);
            if (handshake_refused(ts[i], err) != 0)
                return -1;
        }
    const double deadline = now_ms() + timeout_ms;
    for (;;) {
        int k = n;
        for (int i = 0; i < n; i++) {
            items[i] = (zmq_pollitem_t){.socket = ts[i]->sock, .events = ZMQ_POLLIN};
            if (ts[i]->mon) {
                mon_of[k - n] = i;
                items[k++] = (zmq_pollitem_t){.socket = ts[i]->mon, .events = ZMQ_POLLIN};
            }
        }
        long ms = -1;
        if (timeout_ms >= 0) {
            double left = deadline - now_ms();
            ms = left > 0 ? (long)left + (left > (long)left) : 0;
        }
        int rc = zmq_poll(items, k, ms);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return err_set(err, "poll failed: %s", zmq_strerror(errno));
        for (int j = n; j < k; j++)
            if (items[j].revents & ZMQ_POLLIN) {
                transport_t *t = ts[mon_of[j - n]];
                monitor_drain(t);
                if (handshake_refused(t, err) != 0)
                    return -1;
            }
        int count = 0;
        for (int i = 0; i < n; i++) {
            ready[i] = (items[i].revents & ZMQ_POLLIN) != 0;
            count += ready[i];
        }
        if (count > 0)
            return count;
        if (timeout_ms >= 0 && now_ms() >= deadline) {
            for (int i = 0; i < n && timeout_ms > 0; i++)
                if (ts[i]->curve && !ts[i]->router && ts[i]->handshakes == 0)
                    return err_set(err,
                                   "no CURVE session with the server at %s after %.1f s: it "
                                   "may be down or unreachable, or refuse this client's keys "
                                   "(authentication: every rank must hold the job's keys)",
                                   ts[i]->endpoint, timeout_ms / 1000.0);
            return 0;
        }
    }
}

/* Waits until client t can take a message. A refused client, or one whose
 * last handshake failed and that cannot send, has no connection left (libzmq
 * ends it after such a failure) and would wait for ever: returns -1 with err
 * saying why. Otherwise waits as a blocking send would (the peer's queue
 * full) and returns 0. */
static int send_ready(transport_t *t, err_t *err)
{
    for (;;) {
        monitor_drain(t);
        if (handshake_refused(t, err) != 0)
            return -1;
        int ev = 0;
        size_t sz = sizeof ev;
        if (zmq_getsockopt(t->sock, ZMQ_EVENTS, &ev, &sz) != 0)
            return err_set(err, "ZMQ_EVENTS: %s", zmq_strerror(errno));
        if (ev & ZMQ_POLLOUT)
            return 0;
        if (t->failed_last)
            return err_set(err,
                           "cannot send to the server at %s: its handshake failed and the "
                           "connection is gone (authentication or protocol error)",
                           t->endpoint);
        zmq_pollitem_t it[2] = {{.socket = t->sock, .events = ZMQ_POLLOUT},
                                {.socket = t->mon, .events = ZMQ_POLLIN}};
        if (zmq_poll(it, 2, 100) < 0 && errno != EINTR)
            return err_set(err, "poll failed: %s", zmq_strerror(errno));
    }
}

int transport_send(transport_t *t, const tframe_t *frames, int n, int zero_copy_from, err_t *err)
{
    if (t->mon && n > 0 && send_ready(t, err) != 0)
        return -1;
    for (int i = 0; i < n; i++) {
        int flags = i + 1 < n ? ZMQ_SNDMORE : 0;
        int rc;
        if (i >= zero_copy_from && frames[i].size > 0) {
            zmq_msg_t m;
            /* no free function: the caller owns the bytes */
            zmq_msg_init_data(&m, (void *)frames[i].data, frames[i].size, NULL, NULL);
            rc = zmq_msg_send(&m, t->sock, flags);
            if (rc < 0)
                zmq_msg_close(&m);
        } else {
            rc = zmq_send(t->sock, frames[i].data, frames[i].size, flags);
        }
        if (rc < 0) {
            /* a ROUTER aborts the rest of a message whose first frame failed */
            int gone = i == 0 && errno == EHOSTUNREACH;
            err_set(err, "send failed at frame %d: %s", i, zmq_strerror(errno));
            return gone ? TRANSPORT_GONE : -1;
        }
        t->sent += frames[i].size;
    }
    return 0;
}

int transport_recv(transport_t *t, tmsg_t *msg, int timeout_ms, err_t *err)
{
    msg->n = 0;
    msg->extra = 0;
    if (timeout_ms >= 0) {
        int ready, rc = wait_ready(&t, 1, timeout_ms, &ready, err);
        if (rc <= 0)
            return rc;
    }
    for (;;) {
        zmq_msg_t part, *m = &part;
        if (msg->n < TMSG_MAX)
            m = (zmq_msg_t *)msg->impl[msg->n];
        zmq_msg_init(m);
        int rc;
        do
            rc = zmq_msg_recv(m, t->sock, 0);
        while (rc < 0 && errno == EINTR);
        if (rc < 0) {
            zmq_msg_close(m);
            tmsg_close(msg);
            return err_set(err, "receive failed: %s", zmq_strerror(errno));
        }
        t->received += zmq_msg_size(m);
        int more = zmq_msg_more(m);
        if (m == &part) {
            msg->extra++;
            zmq_msg_close(m);
        } else {
            msg->data[msg->n] = zmq_msg_data(m);
            msg->size[msg->n] = zmq_msg_size(m);
            msg->n++;
        }
        if (!more)
            return 1;
    }
}

void tmsg_close(tmsg_t *msg)
{
    for (int i = 0; i < msg->n; i++)
        zmq_msg_close((zmq_msg_t *)msg->impl[i]);
    msg->n = 0;
}

int transport_poll(transport_t **ts, int n, int timeout_ms, int *ready, err_t *err)
{
    return wait_ready(ts, n, timeout_ms, ready, err);
}

uint64_t transport_bytes_sent(const transport_t *t)
{
    return t->sent;
}

uint64_t transport_bytes_received(const transport_t *t)
{
    return t->received;
}
