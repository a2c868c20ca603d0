/* bench_ps.h - a parameter server run on a thread of a benchmark (bench_proto,
 * bench_calib): server_run behind its ROUTER until the clients say goodbye. */
#ifndef PST_BENCH_PS_H
#define PST_BENCH_PS_H

#include "common/net/transport.h"
#include "ps/server.h"

typedef struct {
    server_t *s;
    transport_t *t;
    const char *who;   /* the benchmark's name, for its error line */
} bench_ps_t;

/* pthread entry: server_run(p->s, p->t) with a 60 s silence limit; prints
 * "WHO: server: what failed" on failure. arg is a bench_ps_t. */
void *bench_ps_run(void *arg);

#endif
