/* cluster.h - a distributed job under mpirun: MPI start-up, roles,
 * rendezvous (each server binds a ZeroMQ ROUTER on an ephemeral port,
 * MPI_Allgather hands every rank every endpoint, a barrier keeps trainers
 * from sending before the servers listen), cluster.json, and the reductions
 * trainers need. Ranks [0, S) are servers, [S, N) trainers. A singleton
 * start (no mpirun) runs one trainer with a server in a thread of the same
 * process, over inproc://. All parameter traffic goes over ZeroMQ, with
 * CURVE security unless cluster.auth = "none": rank 0 makes the job's key
 * pairs (or reads them from --keys DIR) and MPI_Bcast hands them out. */
#ifndef PST_CLUSTER_H
#define PST_CLUSTER_H

#include "common/config/config.h"
#include "ps/server.h"
#include "trainer/train.h"

typedef struct {
    int servers;             /* from --servers (0: use cluster.servers) */
    const char *bind;        /* from --bind (NULL: cluster.bind) */
    const char *out_dir;
    const char *config_text;
    int no_plot, no_export, quiet;
    const checkpoint_t *resume;  /* continue from this checkpoint (NULL: start anew) */
    const char *resume_path;     /* its file, for messages */
    const char *resume_dir;      /* the run folder it continues (its metrics.csv) */
    const char *keys_dir;        /* --keys DIR: the job's CURVE keys are kept here (NULL: made
                                  * anew for each job and never written) */
} cluster_opts_t;

/* Runs this rank's part of the job. Returns the process exit status (0 on
 * success); errors are printed here, in main's stead, with the rank and role. */
int cluster_main(int *argc, char ***argv, const job_config_t *cfg, const cluster_opts_t *o);

/* Where a job's servers write their shard checkpoints:
 * ROOT/step-N/shard-S-of-N.ckpt under ROOT = RUN/checkpoints, with the job's
 * config text (export/ckptdir.h, export/checkpoint.h). */
typedef struct {
    char root[CFG_PATH_LEN + 32];
    const char *config_text;     /* borrowed; NULL is written as "" */
} cluster_saver_t;

/* Fills *cs for the run folder out_dir and config_text (borrowed) and
 * returns the saver (server_opts_t.saver) that writes through it; cs and
 * config_text must outlive the server. */
server_saver_t cluster_saver(cluster_saver_t *cs, const char *out_dir, const char *config_text);

/* Prints the result line of a finished job to stdout: test accuracy and loss,
 * epochs, steps, training speed, the ranks of a distributed job (servers > 0;
 * 0 for a job in one process), wall time and the run folder. */
void cluster_print_result(const train_result_t *res, int servers, int trainers,
                          const char *out_dir);

#endif
