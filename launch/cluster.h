/* cluster.h - a distributed job under mpirun: MPI start-up, roles,
 * rendezvous (each server binds a ZeroMQ ROUTER on an ephemeral port,
 * MPI_Allgather hands every rank every endpoint, a barrier keeps trainers
 * from sending before the servers listen), cluster.json, and the reductions
 * trainers need. Ranks [0, S) are servers, [S, N) trainers. A singleton
 * start (no mpirun) runs one trainer with a server in a thread of the same
 * process, over inproc://. All parameter traffic goes over ZeroMQ. */
#ifndef PST_CLUSTER_H
#define PST_CLUSTER_H

#include "config.h"
#include "train.h"

typedef struct {
    int servers;             /* from --servers (0: use cluster.servers) */
    const char *bind;        /* from --bind (NULL: cluster.bind) */
    const char *out_dir;
    const char *config_text;
    int no_plot, quiet;
    const checkpoint_t *resume;  /* continue from this checkpoint (NULL: start anew) */
    const char *resume_path;     /* its file, for messages */
} cluster_opts_t;

/* Runs this rank's part of the job. Returns the process exit status (0 on
 * success); errors are printed here, in main's stead, with the rank and role. */
int cluster_main(int *argc, char ***argv, const job_config_t *cfg, const cluster_opts_t *o);

#endif
