/* dist.h - a trainer rank of a distributed job: it pulls the parameters from
 * the servers, computes the gradient of its slice of each global batch, and
 * pushes each layer's gradient to the servers that own it as soon as
 * backward has produced it. The servers are behind ps/client.h; MPI stays in
 * launch/ (reductions across trainers go through server 0), so this module
 * runs (and is tested) without it.
 */
#ifndef PST_DIST_H
#define PST_DIST_H

#include "common/config/config.h"
#include "common/util/err.h"
#include "trainer/train.h"

/* The tables are the caller's, read (and copied by the client) during
 * train_dist. */
typedef struct {
    int trainer, n_trainers;       /* t of T */
    int n_servers;                 /* S, 1..SHARD_SERVERS_MAX (ps/shard.h) */
    int rank;                      /* this process's rank, for messages */
    const char *const *endpoints;  /* S: server s's endpoint */
    const char *const *hosts;      /* S: server s's host, for messages (NULL: unknown) */
    const int *server_ranks;       /* S: server s's rank, for messages (NULL: s) */
    const char *ckpt_path;         /* trainer 0 writes the assembled checkpoint here (may be NULL) */
    const struct transport_auth_t *auth; /* the job's CURVE keys (transport.h); NULL: plain */
    int server_threads;            /* the servers' optimizer threads (for the summary) */
    int io_threads;                /* this rank's ZeroMQ I/O threads (for the summary) */
} dist_opts_t;

/* Trains as trainer d->trainer. Trainer 0 prints progress through opts->log
 * and writes metrics.csv, summary.json and curves.png into opts->out_dir;
 * every trainer fills res. Returns 0, or -1 with err (a server that does not
 * answer within cluster.timeout_ms is named with its rank and host). */
int train_dist(const job_config_t *cfg, const dist_opts_t *d, const train_opts_t *opts,
               train_result_t *res, err_t *err);

#endif
