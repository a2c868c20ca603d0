/* dist_job.h - what the two files of a distributed trainer share (not for
 * other modules): dist.c runs the steps as the epoch driver's backend
 * (pulls, pushes, periodic checkpoints, shared evaluation); lead.c decides
 * who leads the job and how it ends (a stop on request, a halt after a lost
 * trainer or server, the end of the job with its outputs). */
#ifndef PST_DIST_JOB_H
#define PST_DIST_JOB_H

#include "common/util/err.h"
#include "ps/client.h"
#include "trainer/dist.h"
#include "trainer/epoch.h"
#include "trainer/jobdata.h"
#include "trainer/train.h"

/* A trainer's job: the epoch driver's state (ep, whose backend this file
 * is) and what the distributed steps and the end of the job add to it. */
typedef struct {
    epoch_t ep;                  /* the loop; ep.lead: this trainer leads the job (see
                                  * client_take_lead) */
    const dist_opts_t *d;
    train_opts_t own;            /* the options as this trainer uses them: it logs only
                                  * when it leads (trainer 0, or the one in its place) */
    const train_opts_t *given;   /* the caller's */
    train_result_t *res;
    job_data_t data;
    client_t *ps;
    size_t n_params;
    int pull_elem;               /* WIRE_F32, or WIRE_F16 / WIRE_BF16 (cluster.pull_compression) */
    int asked_stop;              /* this trainer passed a signal on to the servers */
    int stop_rc;                 /* stop_job's status after EPOCH_STOPPED */
    int failed;                  /* a push failed (perr says why) */
    err_t perr;
    double push_s, pull_s;
    double rows_fetch_s;       /* of pull_s, the training batches' rows: inside ep.compute_s */
} dist_t;

/* dist.c */

/* Says goodbye to every server and waits for the end of the job. Raises
 * res->lost_trainers to what the servers report. Returns 0, or -1 with err. */
int dist_goodbye(dist_t *j, train_result_t *res, err_t *err);

/* The leader: a checkpoint of the job after `step` steps (every server
 * writes its shard and a sparse model's tables, full or, when periodic, as
 * deltas every checkpoint.full_every; then this trainer the manifest). Returns 0, or -1 with
 * err. */
int dist_checkpoint_job(dist_t *j, long step, int periodic, err_t *err);

/* lead.c */

/* Trainer 0, asked to stop at the start of `step`: the job ends with a
 * checkpoint of that step. Returns 0, or -1 with err. */
int dist_stop_job(dist_t *j, long step, train_result_t *res, err_t *err);

/* This trainer leads from now on (trainer 0 was lost): its log is switched
 * on and `what` it does in trainer 0's place is said. Returns 0, or -1 with
 * err (the run folder cannot be made). */
int dist_take_lead(dist_t *j, const char *what, err_t *err);

/* The end of the job after the last epoch: the leader writes it, every
 * trainer says goodbye. Returns 0, or -1 with err. */
int dist_end_job(dist_t *j, train_result_t *res, err_t *err);

/* A request failed in the loop: when the job halts, its leader writes the
 * halt's checkpoint. Returns 0 (a stop, or a trainer that does not lead),
 * or -1 with err (what happened and where the checkpoint is; err as it was
 * when the job does not halt). */
int dist_on_halt(dist_t *j, train_result_t *res, err_t *err);

#endif
