/* stubs.c - what the fuzz targets link instead of the real thing:
 * - a clock of their own for the server (ps/, built with
 *   -Dclock_gettime=fuzz_clock_gettime), which only the harness advances,
 *   so that an input that loses trainers does the same on every run;
 * - the transport functions server_run calls: the targets drive
 *   server_handle directly and never call server_run, so neither libzmq nor
 *   common/net/transport.c is needed. */
#include <stdlib.h>
#include <time.h>

#include "common/net/transport.h"

int fuzz_clock_gettime(clockid_t id, struct timespec *ts);
void fuzz_clock_advance(int ms);

static long long fake_ns = 1000LL * 1000000000LL; /* 1000 s: never 0 */

int fuzz_clock_gettime(clockid_t id, struct timespec *ts)
{
    (void)id;
    ts->tv_sec = (time_t)(fake_ns / 1000000000LL);
    ts->tv_nsec = (long)(fake_ns % 1000000000LL);
    return 0;
}

void fuzz_clock_advance(int ms)
{
    fake_ns += (long long)ms * 1000000LL;
}

int transport_send(transport_t *t, const tframe_t *frames, int n, int zero_copy_from, err_t *err)
{
    (void)t, (void)frames, (void)n, (void)zero_copy_from, (void)err;
    abort();
}

int transport_recv(transport_t *t, tmsg_t *msg, int timeout_ms, err_t *err)
{
    (void)t, (void)msg, (void)timeout_ms, (void)err;
    abort();
}

void tmsg_close(tmsg_t *msg)
{
    (void)msg;
    abort();
}
