/* progress.h - the progress line users watch during training. */
#ifndef PST_PROGRESS_H
#define PST_PROGRESS_H

#include <stddef.h>

/* Monotonic seconds. */
double progress_now(void);

/* "epoch 1/3  step 1200/1563  loss 0.4123  acc 85.21%  10234 samples/s (2 threads)
 * ETA 0:00:12" (on one line): threads are the trainer's worker threads. */
void progress_format(char *buf, size_t len, int epoch, int epochs, long step, long steps,
                     double loss, double acc, double samples_per_s, int threads, double eta_s);

/* "1:02:03" or "2:03" */
void progress_duration(char *buf, size_t len, double seconds);

#endif
