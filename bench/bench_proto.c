/* bench_proto.c - push + pull round trips of a parameter vector through
 * pstrain's protocol (the real server logic behind a ROUTER, the trainers'
 * client ps/client.h behind a DEALER: PUSH the gradient, PULL the
 * parameters into its buffer; both in pieces, as trainers send them), with
 * CURVE security (cluster.auth = "curve", the default) and
 * without ("none"), against raw ZeroMQ DEALER/ROUTER echoing the same bytes,
 * side by side over TCP loopback, for 1, 16 and 256 MiB. Reports the medians
 * of alternating rounds in GB/s of payload moved (2 x size per round trip).
 * The raw baseline uses ZeroMQ directly; pstrain itself keeps it in
 * common/net/transport.c. */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "common/nn/optim.h"
#include "common/nn/params.h"
#include "ps/client.h"
#include "ps/server.h"
#include "bench/bench_ps.h"
#include "common/net/transport.h"
#include "common/net/wire.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- raw ZeroMQ: a ROUTER that echoes every message ---- */
typedef struct {
    void *ctx;
    char ep[256];
    volatile int ready;
} raw_t;

static void *raw_server(void *arg)
{
    raw_t *r = arg;
    void *s = zmq_socket(r->ctx, ZMQ_ROUTER);
    zmq_bind(s, "tcp://127.0.0.1:*");
    size_t n = sizeof r->ep;
    zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, r->ep, &n);
    r->ready = 1;
    for (;;) {
        zmq_msg_t id, data;
        zmq_msg_init(&id);
        zmq_msg_init(&data);
        if (zmq_msg_recv(&id, s, 0) < 0)
            break;
        zmq_msg_recv(&data, s, 0);
        int stop = zmq_msg_size(&data) == 0;
        zmq_msg_send(&id, s, ZMQ_SNDMORE);
        zmq_msg_send(&data, s, 0);
        if (stop)
            break;
    }
    zmq_close(s);
    return NULL;
}

/* Round trips of one message of `bytes` (pieces == 0), or of the same bytes
 * as messages of `pieces` bytes, all sent before the echoes are read. */
static double raw_rounds(void *c, float *buf, size_t bytes, size_t pieces, int iters)
{
    size_t step = pieces ? pieces : bytes;
    double t0 = now();
    for (int i = 0; i < iters; i++) {
        for (size_t off = 0; off < bytes; off += step) {
            zmq_msg_t m;
            size_t len = bytes - off > step ? step : bytes - off;
            zmq_msg_init_data(&m, (char *)buf + off, len, NULL, NULL);
            zmq_msg_send(&m, c, 0);
        }
        for (size_t off = 0; off < bytes; off += step) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            zmq_msg_recv(&m, c, 0);
            zmq_msg_close(&m);
        }
    }
    return 2.0 * bytes * iters / (now() - t0) / 1e9;
}

/* ---- pstrain: server_run behind a ROUTER, a trainer-like client ---- */
/* Round trips as a trainer makes them (trainer/dist.c): the gradient pushed
 * in pieces of wire_piece_floats(), then one PULL whose reply comes in
 * pieces, each copied into the parameters as it arrives. */
static double ps_rounds(client_t *c, float *grads, float *params, size_t n, long *step, int iters)
{
    err_t err;
    double t0 = now();
    for (int i = 0; i < iters; i++) {
        client_set_step(c, *step);
        if (client_push_range(c, grads, 0, n, &err) != 0 ||
            client_pull(c, ++*step, WIRE_F32, params, &err) != 0) {
            fprintf(stderr, "bench_proto: %s\n", err.msg);
            exit(1);
        }
    }
    return 2.0 * n * sizeof(float) * iters / (now() - t0) / 1e9;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    int io = argc > 2 ? atoi(argv[2]) : 1; /* ZeroMQ I/O threads of pstrain's context */
    err_t ierr;
    if (transport_set_io_threads(io, &ierr) != 0) {
        fprintf(stderr, "bench_proto: %s\n", ierr.msg);
        return 2;
    }
    /* as pstrain's main does: large buffers come back to malloc for reuse
     * instead of being unmapped, so no round trip pays for fresh pages (both
     * sides of the comparison run in this process and share the setting) */
    mallopt(M_MMAP_THRESHOLD, 512 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    size_t mib[] = {1, 16, 256};
    int iters[] = {200, 20, 2};
    printf("# push+pull round trips over TCP loopback, GB/s of payload (2 x size per round "
           "trip), median of %d alternating rounds, %d ZeroMQ I/O thread(s)\n",
           rounds, io);
    printf("%8s %14s %14s %12s %14s %8s %9s %9s\n", "size", "pstrain none", "pstrain curve",
           "raw zmq", "raw in pieces", "none/raw", "none/pcs", "curve/none");
    for (int k = 0; k < 3; k++) {
        size_t bytes = mib[k] << 20, n = bytes / sizeof(float);
        float *grads = malloc(bytes), *params = malloc(bytes), *echo = malloc(bytes);
        memset(grads, 0, bytes);
        memset(params, 0, bytes);
        memset(echo, 0, bytes);
        /* raw */
        raw_t r = {.ctx = zmq_ctx_new()};
        pthread_t rt;
        pthread_create(&rt, NULL, raw_server, &r);
        while (!r.ready)
            ;
        void *rc = zmq_socket(r.ctx, ZMQ_DEALER);
        zmq_connect(rc, r.ep);
        /* pstrain */
        param_table_t tab;
        memset(&tab, 0, sizeof tab);
        int shape[1] = {(int)n};
        err_t err;
        params_add(&tab, "v", 1, shape, INIT_ZEROS, &err);
        server_opts_t so = {.n_servers = 1, .n_trainers = 1, .consistency = CONS_BSP,
                            .total_steps = 1 << 30, .table = &tab,
                            .optim = {.kind = optim_find("sgd"), .lr = 0.0}};
        /* [0]: plain, [1]: CURVE with the job's keys (a fresh pair per size) */
        transport_auth_t auth[2] = {{.curve = 0}};
        if (transport_auth_generate(&auth[1], &err) != 0) {
            fprintf(stderr, "bench_proto: %s\n", err.msg);
            return 1;
        }
        bench_ps_t p[2];
        pthread_t pt[2];
        client_t *pc[2];
        long step[2] = {0, 0};
        for (int v = 0; v < 2; v++) {
            char ep[256];
            const char *eps[1] = {ep};
            client_opts_t co = {.n_servers = 1, .endpoints = eps, .auth = &auth[v],
                                .timeout_ms = 60000, .n_params = n, .push_elem = WIRE_F32};
            p[v].who = "bench_proto";
            p[v].s = server_new(&so, &err);
            p[v].t = p[v].s ? transport_listen_auth("127.0.0.1", &auth[v], ep, sizeof ep, &err)
                            : NULL;
            pc[v] = p[v].t ? client_new(&co, &err) : NULL;
            if (!pc[v]) {
                fprintf(stderr, "bench_proto: %s\n", err.msg);
                return 1;
            }
            pthread_create(&pt[v], NULL, bench_ps_run, &p[v]);
        }
        /* warm up all three */
        const size_t pcs = wire_piece_floats(n) * sizeof(float);
        raw_rounds(rc, echo, bytes, 0, 1);
        raw_rounds(rc, echo, bytes, pcs, 1);
        for (int v = 0; v < 2; v++)
            ps_rounds(pc[v], grads, params, n, &step[v], 1);
        double a[16], c[16], b[16], d[16];
        for (int i = 0; i < rounds && i < 16; i++) {
            a[i] = ps_rounds(pc[0], grads, params, n, &step[0], iters[k]);
            c[i] = ps_rounds(pc[1], grads, params, n, &step[1], iters[k]);
            b[i] = raw_rounds(rc, echo, bytes, 0, iters[k]);
            d[i] = raw_rounds(rc, echo, bytes, pcs, iters[k]);
        }
        qsort(a, (size_t)rounds, sizeof *a, cmp);
        qsort(c, (size_t)rounds, sizeof *c, cmp);
        qsort(b, (size_t)rounds, sizeof *b, cmp);
        qsort(d, (size_t)rounds, sizeof *d, cmp);
        const int mid = rounds / 2;
        printf("%5zu MiB %9.2f GB/s %9.2f GB/s %7.2f GB/s %9.2f GB/s %7.2fx %8.2fx %9.2fx\n",
               mib[k], a[mid], c[mid], b[mid], d[mid], a[mid] / b[mid], a[mid] / d[mid],
               c[mid] / a[mid]);
        fflush(stdout);
        /* stop both servers */
        zmq_send(rc, "", 0, 0);
        char tmp[1];
        zmq_recv(rc, tmp, 1, 0);
        zmq_close(rc);
        pthread_join(rt, NULL);
        zmq_ctx_term(r.ctx);
        for (int v = 0; v < 2; v++) {
            int lost;
            client_goodbye(pc[v], &lost, &err);
            pthread_join(pt[v], NULL);
            client_destroy(&pc[v]);
            transport_destroy(&p[v].t);
            server_destroy(&p[v].s);
        }
        transport_auth_wipe(&auth[1]);
        free(grads);
        free(params);
        free(echo);
    }
    transport_shutdown();
    return 0;
}
