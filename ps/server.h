/* server.h - a parameter server's key-value logic: its shard of the flat
 * parameters and optimizer state, the server-side optimizer, and the BSP /
 * ASP / SSP rules for when pushes are applied and pulls answered.
 *
 * It knows nothing of sockets (ps-lite's KVServer apart from its van) nor
 * of files: server_handle() takes one request as frames and answers through
 * a send callback, now or later (a BSP pull waits for the step's last push,
 * an SSP pull for the slowest trainer); shard checkpoints go through a saver
 * the launcher provides. server_run() drives it from a transport. Every
 * malformed request gets an ERROR reply and changes nothing.
 *
 * Inside ps/: server.c validates and dispatches requests (one handler per
 * message type), consistency.c holds the BSP / ASP / SSP rules, liveness.c
 * heartbeats, lost trainers, the lead and halts, store.c the shard.
 */
#ifndef PST_SERVER_H
#define PST_SERVER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config/config.h"
#include "common/util/err.h"
#include "common/nn/optim.h"
#include "common/nn/params.h"
#include "common/nn/rows.h"
#include "common/net/transport.h"

typedef struct server_t server_t;

/* A shard as a saver writes it, borrowed for the call: what a shard
 * checkpoint holds, but the job's config text (the saver knows it). */
typedef struct {
    int index, n_servers;          /* shard index of n_servers */
    long step;                     /* the step the checkpoint is of */
    long version;                  /* the updates applied (BSP: equal to step) */
    uint64_t seed;
    const param_table_t *table;    /* the whole model's tensors */
    const optim_params_t *optim;   /* the optimizer (its kind) */
    int n_slots;                   /* optimizer state floats per parameter */
    size_t begin, end;             /* the shard's keys */
    const float *params;           /* end - begin floats */
    const float *state;            /* n_slots * (end - begin), slot-major; NULL if n_slots = 0 */
} server_shard_t;

/* Writes shard checkpoints (CHECKPOINT with status WIRE_CKPT_WRITE), so
 * that nothing in ps/ knows files: launch/cluster.c provides one that
 * writes RUN/checkpoints/step-N/shard-S-of-N.ckpt (export/ckptdir.h). */
typedef struct {
    /* Writes shard; returns 0 once it is on disk, or -1 with err. */
    int (*write)(void *ctx, const server_shard_t *shard, err_t *err);
    /* Writes the rows of the sparse tables server `index` of n_servers
     * holds (a full file, rows_save; delta: rows_save_delta, the rows
     * changed since its last write) as part of the checkpoint of `step`,
     * after its shard. NULL: a server with sparse tables refuses to write
     * checkpoints. Returns 0 once it is on disk, or -1 with err. */
    int (*write_rows)(void *ctx, rows_t *rows, int index, int n_servers, long step, int delta,
                      err_t *err);
    void *ctx;                     /* the saver's, kept as long as the server */
} server_saver_t;

typedef struct {
    int index;                 /* server number s in [0, S) */
    int n_servers;             /* S */
    int n_trainers;            /* T */
    int rank;                  /* MPI rank, for log lines */
    consistency_t consistency;
    int staleness;             /* SSP K */
    long total_steps;          /* for the lr schedule */
    uint64_t seed;
    const param_table_t *table; /* the model's tensors (copied) */
    optim_params_t optim;
    /* To resume: the whole model's parameters and optimizer state (n_slots
     * floats per parameter, slot-major, as in a checkpoint) after
     * start_step updates; NULL: initialise as params_init_slice gives. */
    const float *init_params, *init_state;
    long start_step;
    /* Writes the shard for CHECKPOINT requests with status WIRE_CKPT_WRITE
     * (write NULL: such requests are refused with ERROR internal). */
    server_saver_t saver;
    /* BSP: a lost trainer halts the job (0), or the step goes on with the
     * survivors (1, cluster.on_trainer_loss = "continue") */
    int continue_on_loss;
    /* Set (to nonzero) by a signal handler to ask for a graceful stop; may be NULL. */
    const volatile sig_atomic_t *stop_flag;
    /* Threads that apply the optimizer to a large shard (>= 1M keys) over
     * disjoint slices of each piece; 0 or 1: the server's own thread. */
    int threads;
    /* Sparse embedding tables (common/nn/rows.h, PULL_ROWS / PUSH_ROWS in
     * docs/PROTOCOL.md): the server holds the rows it owns, those with
     * rows_hash(table, row) % n_servers == index, created at first touch.
     * n_row_tables 0: none, and the server is as it was without them. The
     * tables (and the optimizers they name) are copied; a table without an
     * optimizer of its own takes o.optim, which needs a row form. Table ids
     * travel in the header's status: 0..2^31-1. BSP and ASP only: SSP with
     * sparse tables is refused. */
    const rows_table_t *row_tables;
    int n_row_tables;
    size_t row_max;            /* rows held at most (LRU eviction); 0: no bound */
} server_opts_t;

/* Answers a request: frames[0] is the peer's identity, then the message.
 * Frames with index >= zero_copy_from are the server's own memory, valid
 * until the next update of the shard. Returns 0 or -1. */
typedef int (*server_send_fn)(void *ctx, const tframe_t *frames, int n, int zero_copy_from);

/* Builds the server of shard o->index, initialised as params_init_slice
 * gives it, or from o->init_params / o->init_state at update o->start_step
 * (every trainer's clock too). o->table and the init buffers are copied;
 * o->saver.ctx and o->stop_flag are borrowed for the server's life.
 * Returns it (the caller owns it), or NULL with err. */
server_t *server_new(const server_opts_t *o, err_t *err);
/* Loads a tables file written by a checkpoint (of any number of servers:
 * rows_load) into the server's sparse tables, keeping the rows this server
 * owns (rows_hash % S == its index). For a resumed job, before it serves.
 * Returns 0, or -1 with err naming the file (the rows are then unchanged). */
int server_load_rows(server_t *s, const char *path, err_t *err);

/* Frees the server; accepts NULL and sets *self_p to NULL. */
void server_destroy(server_t **self_p);

/* Handles one request from peer (identity bytes): hdr is the msgpack header
 * frame, payload the data frame (NULL when there is none), extra_frames the
 * number of frames beyond those two. Replies go through send(ctx, ...).
 * Returns 0 when the request was handled or answered with ERROR (a line for
 * the log is then in err), -1 when the send callback failed. */
int server_handle(server_t *s, const uint8_t *peer, size_t peer_len, const uint8_t *hdr,
                  size_t hdr_len, const uint8_t *payload, size_t payload_len, int extra_frames,
                  server_send_fn send, void *ctx, err_t *err);

/* 1 once every trainer has sent SHUTDOWN or was lost (or one trainer asked
 * for the whole job to stop). */
int server_finished(const server_t *s);

/* Looks for trainers not heard from (no request, no heartbeat) for
 * timeout_ms and gives them up: ASP and SSP go on without them (an SSP pull
 * no longer waits for them), BSP halts (every waiting and later pull and
 * barrier is refused with ERROR lost, so trainer 0 can write a checkpoint of
 * the last complete step) or, with o.continue_on_loss, completes the step
 * with the survivors. Returns the number of trainers lost now (err holds a
 * line naming the last), 0, or -1 when a reply could not be sent. */
int server_check_trainers(server_t *s, int timeout_ms, server_send_fn send, void *ctx,
                          err_t *err);

/* Names the host of each trainer (n_trainers of them, copied, cut at 63
 * bytes) for the messages about lost trainers. */
void server_set_trainer_hosts(server_t *s, const char *const *hosts);

/* Number of trainers lost so far; *first (if not NULL) gets the first one's
 * index or -1. */
int server_lost(const server_t *s, int *first);

/* Asks for a graceful stop (a signal reached this server): every pull reply
 * from now on carries WIRE_PULL_STOP_REQUESTED, and trainer 0 stops the job
 * at its next step with a checkpoint. */
void server_request_stop(server_t *s);

/* The shard: [*begin, *end) of the flat index, its parameters and the
 * number of updates applied. */
const float *server_params(const server_t *s, size_t *begin, size_t *end);
long server_version(const server_t *s);
/* The number of parameters of the whole model. */
size_t server_n_params(const server_t *s);
/* The threads that apply its optimizer (server_opts_t.threads, for a large
 * shard; else 1). */
int server_threads(const server_t *s);

typedef struct {
    uint64_t pushes, pulls, errors, updates;
    double busy_s;             /* time spent handling requests */
    uint64_t rows, rows_created, rows_bytes; /* the row store: rows held, created, bytes */
} server_stats_t;
/* The server's counters (STATS replies carry them, and more), the row
 * store's too. */
void server_get_stats(const server_t *s, server_stats_t *st);

/* Log sink for server_run (main decides where lines go). */
typedef void (*server_log_fn)(void *ctx, const char *line);

/* Serves requests on t until server_finished() or no message arrived for
 * timeout_ms (then -1 with err saying so). Every 200 ms at most it looks for
 * lost trainers (server_check_trainers, the same timeout) and at
 * o.stop_flag. Malformed requests are answered with ERROR and logged
 * through log, and so are lost trainers. Returns 0 or -1. */
int server_run(server_t *s, transport_t *t, int timeout_ms, server_log_fn log, void *log_ctx,
               err_t *err);

#endif
