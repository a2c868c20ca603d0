/* transport.c - ZeroMQ ROUTER/DEALER sockets behind transport.h. */
#include "transport.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

_Static_assert(sizeof(zmq_msg_t) <= TMSG_IMPL, "tmsg_t.impl cannot hold a zmq_msg_t");

struct transport_t {
    void *sock;
    int router;
    uint64_t sent, received;
};

static void *g_ctx;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static void *context(void)
{
    pthread_mutex_lock(&g_lock);
    if (!g_ctx)
        g_ctx = zmq_ctx_new();
    void *c = g_ctx;
    pthread_mutex_unlock(&g_lock);
    return c;
}

void transport_shutdown(void)
{
    pthread_mutex_lock(&g_lock);
    if (g_ctx)
        zmq_ctx_term(g_ctx);
    g_ctx = NULL;
    pthread_mutex_unlock(&g_lock);
}

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

transport_t *transport_listen(const char *where, char *endpoint, size_t len, err_t *err)
{
    char addr[512];
    if (strstr(where, "://"))
        snprintf(addr, sizeof addr, "%s", where);
    else
        snprintf(addr, sizeof addr, "tcp://%s:*", where);
    transport_t *t = socket_new(ZMQ_ROUTER, err);
    if (!t)
        return NULL;
    if (zmq_bind(t->sock, addr) != 0) {
        err_set(err, "cannot bind %s: %s", addr, zmq_strerror(errno));
        transport_destroy(&t);
        return NULL;
    }
    size_t n = len;
    if (zmq_getsockopt(t->sock, ZMQ_LAST_ENDPOINT, endpoint, &n) != 0) {
        err_set(err, "cannot read the endpoint bound at %s: %s", addr, zmq_strerror(errno));
        transport_destroy(&t);
        return NULL;
    }
    return t;
}

transport_t *transport_connect(const char *endpoint, err_t *err)
{
    transport_t *t = socket_new(ZMQ_DEALER, err);
    if (!t)
        return NULL;
    if (zmq_connect(t->sock, endpoint) != 0) {
        err_set(err, "cannot connect to %s: %s", endpoint, zmq_strerror(errno));
        transport_destroy(&t);
        return NULL;
    }
    return t;
}

void transport_destroy(transport_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zmq_close((*self_p)->sock);
    free(*self_p);
    *self_p = NULL;
}

int transport_send(transport_t *t, const tframe_t *frames, int n, int zero_copy_from, err_t *err)
{
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
            return err_set(err, "send failed at frame %d: %s", i, zmq_strerror(errno));
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
        zmq_pollitem_t it = {.socket = t->sock, .events = ZMQ_POLLIN};
        int rc;
        do
            rc = zmq_poll(&it, 1, timeout_ms);
        while (rc < 0 && errno == EINTR);
        if (rc < 0)
            return err_set(err, "poll failed: %s", zmq_strerror(errno));
        if (rc == 0)
            return 0;
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
    zmq_pollitem_t items[64];
    if (n > 64)
        return err_set(err, "poll over %d sockets (at most 64)", n);
    for (int i = 0; i < n; i++)
        items[i] = (zmq_pollitem_t){.socket = ts[i]->sock, .events = ZMQ_POLLIN};
    int rc;
    do
        rc = zmq_poll(items, n, timeout_ms);
    while (rc < 0 && errno == EINTR);
    if (rc < 0)
        return err_set(err, "poll failed: %s", zmq_strerror(errno));
    for (int i = 0; i < n; i++)
        ready[i] = (items[i].revents & ZMQ_POLLIN) != 0;
    return rc;
}

uint64_t transport_bytes_sent(const transport_t *t)
{
    return t->sent;
}

uint64_t transport_bytes_received(const transport_t *t)
{
    return t->received;
}
