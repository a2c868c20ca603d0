/* client.h - the parameter servers' client, the counterpart of server.h: it
 * connects to the S servers of a job and speaks the wire protocol
 * (docs/PROTOCOL.md) for a trainer: pulls and pushes of key ranges in
 * pieces, with compression, barriers with sums, STATS, checkpoints, stops
 * and goodbyes, and rows of sparse embedding tables routed to the servers
 * that own them (rows_hash % S). It knows nothing of models or training: keys are the flat
 * index [0, n_params), cut into shards as ps/shard.h says, and values live
 * in the caller's float buffers.
 *
 * Every wait has the job's timeout: a server silent that long is named
 * (index, rank and host) in the error, and while it waits the client sends
 * heartbeats (CLOCK) so that the servers do not give this trainer up. A
 * server that refuses a request because the job halts (ERROR stopping or
 * lost) makes the call fail with client_halt() saying so; the other servers
 * are heard out first.
 */
#ifndef PST_CLIENT_H
#define PST_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "common/net/transport.h"
#include "common/util/err.h"

typedef struct client_t client_t;

typedef struct {
    int sender;                    /* this trainer's index: the sender of every request */
    int n_servers;                 /* S, 1..SHARD_SERVERS_MAX */
    const char *const *endpoints;  /* S: server s's endpoint (copied) */
    const char *const *hosts;      /* S: server s's host, for messages (copied; NULL, or a
                                    * NULL entry: "an unknown host") */
    const int *ranks;              /* S: server s's MPI rank, for messages (copied; NULL: s) */
    const transport_auth_t *auth;  /* the job's CURVE keys; NULL: plain ZeroMQ */
    int timeout_ms;                /* a server silent for this long has failed (> 0) */
    size_t n_params;               /* keys of the whole model */
    int push_elem;                 /* pushes as WIRE_F32, WIRE_F16, WIRE_BF16 or WIRE_TOPK */
    double topk_ratio;             /* WIRE_TOPK: the share of each range sent, (0, 1] */
} client_opts_t;

/* Why requests are refused: the job halts (a server answered ERROR). */
typedef enum {
    CLIENT_RUNNING = 0,
    CLIENT_STOPPING,   /* ERROR stopping: trainer 0 stops the job at a step */
    CLIENT_LOST,       /* ERROR lost: a trainer was lost (BSP), the step cannot complete */
} client_halt_t;

/* Values client_reduce sums at most. */
#define CLIENT_REDUCE_MAX 16

/* What the STATS replies of every server say, together. */
typedef struct {
    uint64_t pushes, pulls, errors, updates; /* summed over the servers */
    double busy_s;                 /* seconds the servers spent on requests, summed */
    int64_t version_min, version_max; /* the servers' versions (steps applied) */
    int lost, first_lost;          /* trainers lost on the server that lost most (its first) */
    int partial;                   /* a server applied part of the step under way */
    int lead_done;                 /* a server has trainer 0's goodbye */
    int lead_lost_on;              /* servers that gave trainer 0 up for lost */
    int next_lead;                 /* the lowest trainer not lost (the highest any says) */
    uint64_t rows, rows_created;   /* sparse rows held now and created, summed */
    uint64_t rows_bytes;           /* bytes of the servers' row stores, summed */
    uint64_t rows_bytes_max;       /* the largest row store of one server */
} client_stats_t;

/* Connects to the servers of o (nothing is sent yet). Returns the client
 * (the caller owns it), or NULL with err (a bad option, out of memory, an
 * endpoint the transport refuses). */
client_t *client_new(const client_opts_t *o, err_t *err);

/* Closes the connections and frees the client; accepts NULL and sets
 * *self_p to NULL. */
void client_destroy(client_t **self_p);

/* The trainer's step, which pushes, barriers and heartbeats carry. */
void client_set_step(client_t *c, long step);

/* Asks every server for its shard's parameters of step `clock` (a BSP
 * server answers once that step is complete) as elem (WIRE_F32, or WIRE_F16
 * / WIRE_BF16 to halve the bytes). Returns 0, or -1 with err. */
int client_pull_send(client_t *c, long clock, int elem, err_t *err);

/* Waits for the pull client_pull_send asked for and writes the parameters
 * into params[0, n_params), each piece as it arrives. Returns 0, or -1 with
 * err (a server silent for the timeout, a bad reply, a refusal, a halt). */
int client_pull_wait(client_t *c, float *params, err_t *err);

/* client_pull_send, then client_pull_wait. */
int client_pull(client_t *c, long clock, int elem, float *params, err_t *err);

/* 1 between client_pull_send and the end of its client_pull_wait. */
int client_pull_in_flight(const client_t *c);

/* Pushes grad[b, e) (grad indexes the whole key space) to the servers that
 * own those keys, for the step client_set_step gave, in pieces of
 * wire_piece_floats(shard length) (every trainer cuts a range alike), as
 * o.push_elem says; top-k picks the largest values of gradient + residual
 * over each server's part of the range, sends it whole, and keeps the rest
 * in its residual. Nothing is waited for. The bytes of grad[b, e) travel
 * without a copy: they must not change until the next pull's replies have
 * arrived. Returns 0, or -1 with err. */
int client_push_range(client_t *c, const float *grad, size_t b, size_t e, err_t *err);

/* Pulls the rows ids[0, n) (unique) of sparse table `table` (dim floats a
 * row) for step `clock` (a BSP server answers once the step before it is
 * applied) into rows (n x dim floats, in the order of ids): each id goes to
 * the server that owns it (rows_hash(table, id) % S), every server gets its
 * requests (PULL_ROWS, in pieces of at most WIRE_PIECE_FLOATS floats of
 * rows) before any reply is waited for, and the replies are scattered back
 * as they arrive. Returns 0, or -1 with err (a bad dim or table id, a
 * server's refusal, a bad reply or a silent server, named; a halt). */
int client_pull_rows(client_t *c, uint32_t table, size_t dim, const uint64_t *ids, size_t n,
                     long clock, float *rows, err_t *err);

/* The same, read-only (PEEK_ROWS, for evaluation): a row the servers do
 * not hold reads as its initial value and is not made (no sighting, no
 * stamp). Returns 0, or -1 with err. */
int client_peek_rows(client_t *c, uint32_t table, size_t dim, const uint64_t *ids, size_t n,
                     long clock, float *rows, err_t *err);

/* One table's part of a row request: the rows ids[0, n) (unique) of
 * `table`, dim floats each, into rows (n x dim floats, in the order of ids). */
typedef struct {
    uint32_t table;
    size_t dim;
    const uint64_t *ids;
    size_t n;
    float *rows;
} client_rows_t;

/* client_pull_rows (peek 0) or client_peek_rows (peek 1) of k tables at
 * once (a table at most once): every server gets its pieces of every table
 * before any reply is waited for, so the request costs one round trip.
 * Returns 0, or -1 with err. */
int client_pull_tables(client_t *c, const client_rows_t *t, int k, long clock, int peek,
                       err_t *err);

/* Pushes the gradients grads (n x dim floats, in the order of ids) of the
 * rows ids[0, n) (unique) of sparse table `table` for the step
 * client_set_step gave, to the servers that own them, in pieces (PUSH_ROWS;
 * copied: the buffers may change at once). Nothing is waited for: a refusal
 * comes back as an ERROR at the next wait. A step's row pushes end with
 * client_push_rows_end. Returns 0, or -1 with err. */
int client_push_rows(client_t *c, uint32_t table, size_t dim, const uint64_t *ids, size_t n,
                     const float *grads, err_t *err);

/* Ends this trainer's row pushes of the step: an empty PUSH_ROWS to every
 * server (also those it pushed no row to), so that a BSP server applies the
 * step's rows once every trainer has ended it. Returns 0, or -1 with err. */
int client_push_rows_end(client_t *c, err_t *err);

/* Sums vals[0, n) (n <= CLIENT_REDUCE_MAX) over every live trainer, in
 * place, through a BARRIER at server 0 (each double travels as a float32
 * pair hi + lo: 48 bits kept); returns once every live trainer has entered.
 * Returns 0, or -1 with err. */
int client_reduce(client_t *c, double *vals, int n, err_t *err);

/* Asks every server for STATS and sums them up into *st. Returns 0, or -1
 * with err (a malformed reply names its server). */
int client_stats(client_t *c, client_stats_t *st, err_t *err);

/* Asks every server to write its shard (and its sparse tables: full, or
 * with delta the rows changed since its last write) as a checkpoint of step
 * `step` (BSP: once that step is complete) and waits until all are on disk.
 * Returns 0, or -1 with err. */
int client_checkpoint_write(client_t *c, long step, int delta, err_t *err);

/* Gathers every server's shard: the parameters into params[0, n_params),
 * the optimizer state (n_slots floats per parameter, slot-major) into
 * state[0, n_slots * n_params), and the servers' version into *version.
 * Returns 0, or -1 with err (a shard of the wrong size names its server). */
int client_checkpoint_gather(client_t *c, float *params, float *state, int n_slots, long *version,
                             err_t *err);

/* Trainer 0: the job stops at step `step`; every server refuses pulls of
 * it on (and barriers). Returns once all have agreed: 0, or -1 with err. */
int client_stop_at(client_t *c, long step, err_t *err);

/* Asks the job to stop gracefully (a signal reached this trainer, which
 * does not lead): the servers pass it on to trainer 0. Returns 0, or -1. */
int client_ask_stop(client_t *c, err_t *err);

/* Says goodbye to every server and waits for the end of the job (a server
 * answers once every trainer said goodbye or was lost); *lost gets the
 * most trainers any server lost. Returns 0, or -1 with err. */
int client_goodbye(client_t *c, int *lost, err_t *err);

/* Tells every server that this trainer fails, so the job ends now rather
 * than at a timeout; waits for nothing and reports nothing. */
void client_fail(client_t *c);

/* Sends every server a heartbeat (CLOCK); the answers are taken by the
 * next wait. Returns 0, or -1 with err. */
int client_heartbeat(client_t *c, err_t *err);

/* Whether a server refused a request because the job halts, and its text. */
client_halt_t client_halt(const client_t *c);
const char *client_halt_msg(const client_t *c);

/* 1 once a pull reply said that somebody asked the job to stop. */
int client_stop_requested(const client_t *c);
/* 1 once a pull reply said that trainer 0 was lost and this trainer leads. */
int client_take_lead(const client_t *c);

/* Bytes sent to and received from all servers so far. */
void client_bytes(const client_t *c, uint64_t *sent, uint64_t *received);

#endif
