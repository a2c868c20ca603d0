/* sizing.h - a small performance model of a distributed job, evaluated at
 * its start from the config's size and the rank layout, to warn when the
 * network may limit the job (the full model, calibrated on a
 * machine, is bench/scale_model.py; README "Sizing a cluster"). */
#ifndef PSTRAIN_LAUNCH_SIZING_H
#define PSTRAIN_LAUNCH_SIZING_H

#include <stddef.h>

#include "common/config/config.h"

typedef struct {
    size_t params;         /* keys of the model */
    int batch;             /* the global batch (train.batch) */
    int servers, trainers; /* S, T */
    int threads;           /* a trainer's worker threads */
    int bsp;               /* 1: pushes and pulls of a step one after the other (BSP) */
    double push_bytes, pull_bytes; /* bytes per key on the wire, each way */
    double link_gbps;      /* each host's link, each direction (cluster.link_gbps) */
    double core_gflops;    /* one core's GEMM rate (cluster.core_gflops) */
    double compute_s;      /* a trainer's compute per step as measured (sizing_measure);
                            * 0: the lower bound below */
    /* the host of each rank: host[r] for ranks 0..S+T-1 (servers first), as
     * indexes 0..n_hosts-1 */
    const int *host;
    int n_hosts;
} sizing_job_t;

typedef struct {
    double net_s;          /* transfer time per step through the busiest link */
    double compute_s;      /* compute per step of one trainer, as estimated */
    double bytes;          /* bytes per step each way through the busiest link */
    int busiest;           /* the host whose link that is */
} sizing_t;

/* Evaluates the model: each step, trainer t pushes push_bytes x params / S
 * to each server and pulls pull_bytes x params / S from it; a pair on one
 * host does not use the link. The busiest host link, in the busier
 * direction, takes net_s (BSP: the push phase's plus the pull phase's, one
 * after the other; ASP / SSP: the larger, since trainers drift apart and the
 * pushes of some overlap the pulls of others). Compute is j->compute_s when
 * measured, else at least 6 flops per parameter per sample (a multiply-add
 * forward, two backward) over the trainer's share of the batch at
 * core_gflops per thread: a lower bound, far below the truth for
 * convolutions and recurrent layers, which reuse their weights. Returns 1
 * when net_s > compute_s, else 0. */
int sizing_eval(const sizing_job_t *j, sizing_t *out);

/* A trainer's compute per step of cfg's model: forward and backward of
 * `batch` samples (zeros) on `threads` worker threads, the second of two
 * steps timed. Returns the seconds, or -1 when the model or its buffers
 * cannot be made. */
double sizing_measure(const job_config_t *cfg, int batch, int threads);

#endif
