/* bench_ps.c - a parameter server on a benchmark's thread (see bench_ps.h). */
#include "bench/bench_ps.h"

#include <stdio.h>

void *bench_ps_run(void *arg)
{
    bench_ps_t *p = arg;
    err_t err;
    if (server_run(p->s, p->t, 60000, NULL, NULL, &err) != 0)
        fprintf(stderr, "%s: server: %s\n", p->who, err.msg);
    return NULL;
}
