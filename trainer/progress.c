/* progress.c - progress line formatting (see progress.h). */
#include "trainer/progress.h"

#include <math.h>
#include <stdio.h>
#include <time.h>

double progress_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void progress_duration(char *buf, size_t len, double s)
{
    if (!isfinite(s) || s < 0) {
        snprintf(buf, len, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, len, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, len, "%ld:%02ld", t / 60, t % 60);
}

void progress_format(char *buf, size_t len, int epoch, int epochs, long step, long steps,
                     double loss, double acc, double samples_per_s, int threads, double eta_s)
{
    char eta[32];
    progress_duration(eta, sizeof eta, eta_s);
    snprintf(buf, len, "epoch %d/%d  step %ld/%ld  loss %.4f  acc %.2f%%  %.0f samples/s "
             "(%d thread%s)  ETA %s", epoch, epochs, step, steps, loss, 100.0 * acc,
             samples_per_s, threads, threads == 1 ? "" : "s", eta);
}
