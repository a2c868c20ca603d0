/* server_int.h - what the files of the parameter server share, not for use
 * outside ps/: the server's state, one struct per concept, and the
 * functions each file offers the others.
 *
 *   server.c       lifecycle, request validation, the handler table and the
 *                  reply path (every reply goes through srv_send);
 *   consistency.c  BSP / ASP / SSP: pieces and their sums in trainer order,
 *                  steps, waiting pulls and when they may be answered,
 *                  barriers, checkpoints that wait for their step;
 *   liveness.c     heartbeats, lost trainers, the lead, halts, goodbyes;
 *   store.c        the shard (its own module, store.h);
 *   sparse.c       sparse embedding tables: PULL_ROWS / PUSH_ROWS on the
 *                  rows this server owns (a rows_t), BSP sums of a step's
 *                  row gradients in trainer order, row pulls that wait.
 *
 * A send that fails marks the current request (send_failed) and the rest of
 * its work goes on, so no function returns a send's failure: server_handle
 * and server_check_trainers report it at the end.
 */
#ifndef PST_SERVER_INT_H
#define PST_SERVER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common/net/wire.h"
#include "ps/server.h"
#include "ps/store.h"

#define PEER_MAX 256               /* longer peer identities are ignored */
#define BAR_MAX 16                 /* values a BARRIER reduces */
#define RANGES_MAX WIRE_PIECES_MAX /* pieces per step (layers, cut in WIRE_PIECE_FLOATS) */

/* The request being handled, read in place. */
typedef struct {
    const uint8_t *peer;
    size_t peer_len;
    wire_hdr_t h;               /* decoded (as far as it could be) */
    const uint8_t *payload;     /* NULL: none */
    size_t payload_len;         /* 0 when payload is NULL */
    int t;                      /* the sender as a trainer, once validated */
} req_t;

/* A request kept to be answered later: its peer and header. */
typedef struct {
    uint8_t peer[PEER_MAX];
    size_t peer_len;
    wire_hdr_t hdr;
} waiter_t;

/* A pull that waits (BSP: for its step; SSP: for the slowest trainer). */
typedef struct {
    waiter_t w;
    uint64_t sent[RANGES_MAX / 64]; /* BSP: pieces of its step already sent (bit per range) */
} pull_t;

/* A key range of the current BSP step and how many trainers pushed it. */
typedef struct {
    size_t b, e;
    int count;
    int applied;               /* summed and applied (every live trainer pushed it) */
} range_t;

/* consistency.c's state. */
typedef struct {
    long version;              /* updates applied */
    float *sum;                /* len: BSP sum of the trainers' gradients */
    float *tgrad;              /* T * len: each trainer's gradient of the current step */
    size_t *tgot;              /* T: floats of the current step received */
    int64_t *tclock;           /* T: steps each trainer has completed (pushed in full) */
    range_t *ranges;           /* RANGES_MAX: BSP, the step's pieces so far */
    int n_ranges;
    int range_hint;            /* BSP: where the next piece's range is likely to be */
    uint8_t *rgot;             /* RANGES_MAX * T: trainer t pushed piece r of the step */
    pull_t *pending;           /* waiting pulls, in arrival order */
    int n_pending, cap_pending;
    waiter_t *barrier;         /* T: BARRIER waiters, by trainer */
    uint8_t *bar_in;           /* T: trainer t waits in the barrier */
    double *bar_vals;          /* T * BAR_MAX: what each waiter brought to the reduction */
    int bar_n;                 /* values of this round (-1: none came yet) */
    waiter_t save;             /* a BSP checkpoint waiting for its step (save_wait) */
    int save_wait;
} cons_t;

/* Why the job halts (liveness.c): pulls (of the stop step on) and barriers
 * are refused. */
typedef enum {
    HALT_NONE = 0,
    HALT_STOPPING, /* trainer 0 stops the job at stop_step: ERROR stopping */
    HALT_LOST,     /* BSP lost a trainer: ERROR lost, and no step completes */
} halt_t;

/* liveness.c's state. */
typedef struct {
    double *tseen;             /* T: when trainer t was last heard from (heartbeat) */
    uint8_t *lost;             /* T: trainer t is gone (no message for the timeout) */
    uint8_t *tdone;            /* T: trainer t said goodbye */
    waiter_t *shut;            /* T: goodbyes waiting for the end of the job */
    uint8_t *shut_in;          /* T: trainer t waits in shut[t] */
    char (*thosts)[64];        /* T: each trainer's host, for messages ("" unknown) */
    int n_lost;
    double tseen_start;        /* when the server started waiting for its trainers */
    halt_t halt;
    char halt_msg[ERR_LEN];    /* the text of the refusals */
    long stop_step;            /* HALT_STOPPING: pulls of this step on are refused */
    int stop_requested;        /* a signal or a trainer asked the job to stop */
    int shutdowns;             /* goodbyes so far */
    int failed;                /* a trainer failed (SHUTDOWN fail): the job ends */
} live_t;

/* A PULL_ROWS kept until its step is applied (BSP), with its ids. */
typedef struct {
    waiter_t w;
    uint64_t *ids;             /* end - begin, owned */
} rpull_t;

/* What one trainer pushed of the current BSP step's rows, in its order. */
typedef struct {
    int *tab;                  /* n: the entry's table (index into sparse_t.tables) */
    uint64_t *id;              /* n: its row id */
    size_t n, cap;
    float *g;                  /* ng: the rows' gradients, dim floats each, in entry order */
    size_t ng, capg;
} rbuf_t;

/* sparse.c's state. */
typedef struct {
    rows_t *rows;              /* NULL: the server holds no sparse tables */
    rows_table_t *tables;      /* n_tables, each .optim pointing into optims */
    optim_params_t *optims;    /* n_tables */
    int n_tables;
    long version;              /* row steps applied (BSP; ASP: every trainer ended one more) */
    uint64_t *tpos;            /* T: ids trainer t pushed in its step so far */
    int64_t *tstep;            /* T: row steps trainer t ended */
    uint8_t *tend;             /* T: BSP, trainer t ended the step under way */
    rbuf_t *tbuf;              /* T: BSP, what trainer t pushed of it */
    int n_trainers;            /* T, once tbuf is allocated */
    rpull_t *pending;          /* waiting row pulls, in arrival order */
    int n_pending, cap_pending;
    float *rowbuf;             /* WIRE_PIECE_FLOATS: a piece's rows or gradients */
    uint64_t *idbuf;           /* WIRE_PIECE_FLOATS: a piece's ids */
    uint64_t *sorted;          /* WIRE_PIECE_FLOATS: the same, sorted (duplicates) */
} sparse_t;

struct server_t {
    server_opts_t o;           /* o.table and o.row_tables are NULL: the stores keep them */
    store_t *store;
    sparse_t sparse;
    cons_t cons;
    live_t live;
    server_stats_t stats;
    server_send_fn send;       /* the current request's reply path */
    void *send_ctx;
    int send_failed;           /* a reply of the current request could not be sent */
    uint8_t hbuf[WIRE_HDR_MAX];
};

/* ---- server.c */

/* Seconds on a monotonic clock. */
double srv_now(void);
/* Sends header h and payload (len bytes, NULL: none) to peer; zero_copy:
 * the payload is the server's memory, valid until the shard's next update.
 * Returns 0, or -1 (send_failed is then set). */
int srv_send(server_t *s, const uint8_t *peer, size_t peer_len, const wire_hdr_t *h,
             const void *payload, size_t len, int zero_copy);
/* Answers request number req of peer with a header alone: type, the
 * version as clock, and status. */
int srv_ack(server_t *s, const uint8_t *peer, size_t peer_len, uint32_t req, int type, int status);
/* Answers the request with header req (its req echoed) with ERROR code and
 * the text msg, and counts an error. */
int srv_error(server_t *s, const uint8_t *peer, size_t peer_len, const wire_hdr_t *req, int code,
              const char *msg);
/* Keeps request r in w, to answer it later. */
void srv_keep(waiter_t *w, const req_t *r);

/* ---- consistency.c */

/* Allocates cons_t for o.n_trainers trainers and a shard of len keys, at
 * version start_step. Returns 0, or -1 with err; cons_free frees it. */
int cons_init(server_t *s, size_t len, err_t *err);
void cons_free(cons_t *c);
/* Refuses a PUSH that cannot be taken now (BSP: another step; more keys
 * than the shard in one step). Returns 0, or -1 with *code and err. */
int cons_push_check(const server_t *s, int t, const wire_hdr_t *h, int *code, err_t *err);
/* Takes trainer t's piece g of PUSH h (its keys in floats): applies it, or
 * keeps it for the step's sum; completes the step when it is the last, and
 * answers what waits for that. Returns 0, or -1 with *code and err when the
 * piece is refused (BSP: a cut across other trainers' pieces, the same
 * piece twice, too many pieces); nothing is taken then. */
int cons_push(server_t *s, int t, const wire_hdr_t *h, const float *g, int *code, err_t *err);
/* Answers the PULL r now (or refuses it, the job halting), or keeps it
 * until its consistency model allows. Returns 0, or -1 with *code and err
 * (too many pulls waiting). */
int cons_pull(server_t *s, const req_t *r, int *code, err_t *err);
/* Answers every waiting pull whose condition now holds, in arrival order,
 * or refuses it when the job halts for it. */
void cons_flush(server_t *s);
/* Trainer r->t enters the barrier with r's values (float32 pairs); answers
 * the round once every live trainer is in. Returns 0, or -1 with *code and
 * err (refused: the job halts, already in, a bad count). */
int cons_barrier(server_t *s, const req_t *r, int *code, err_t *err);
/* Answers the barrier's waiters when every live trainer is in (with the
 * sums), or with ERROR when the job halts. */
void cons_barrier_flush(server_t *s);
/* CHECKPOINT write r: the shard is written as step r->h.clock and r
 * answered (CHECKPOINT, or ERROR internal with err), now or, in BSP, once
 * the step is complete. */
void cons_checkpoint(server_t *s, const req_t *r, err_t *err);
/* Writes the checkpoint that waited for its step, when the server is there. */
void cons_save_if_due(server_t *s);
/* Forgets lost trainer t's waiting pulls and its place in the barrier. */
void cons_drop_trainer(server_t *s, int t);
/* BSP going on without lost trainers: pieces and the step may be complete. */
void cons_go_on(server_t *s);
/* 1 when pieces of the step under way were applied (BSP). */
int cons_partial(const server_t *s);

/* ---- sparse.c */

/* Builds the row store of o.row_tables (nothing when there are none).
 * Returns 0, or -1 with err (SSP, a table id above 2^31-1, what rows_new
 * refuses, out of memory); sparse_free frees it. */
int sparse_init(server_t *s, err_t *err);
void sparse_free(sparse_t *sp);
/* PULL_ROWS r: answered with the rows now, or (BSP) once the step before
 * r's is applied. Returns 0, or -1 with *code and err (refused: an unknown
 * table, an id out of its bound or not this server's, too many rows in one
 * piece, too many pulls waiting, the row store's failure); nothing changes
 * then. */
int sparse_pull(server_t *s, const req_t *r, int *code, err_t *err);
/* PUSH_ROWS r: a piece of trainer r->t's row gradients (ASP: applied now;
 * BSP: kept for the step's sum), or the end of its step (BSP: the step is
 * applied once every live trainer has ended it). Returns 0, or -1 with
 * *code and err (refused as sparse_pull, and: a duplicate id in the piece,
 * a piece out of order, a step not the server's); nothing changes then. */
int sparse_push(server_t *s, const req_t *r, int *code, err_t *err);
/* Answers the waiting row pulls whose step is applied, refuses them when
 * the job halts for them. */
void sparse_flush(server_t *s);
/* Forgets lost trainer t's waiting row pulls. */
void sparse_drop_trainer(server_t *s, int t);
/* BSP going on without lost trainers: the row step may be complete. */
void sparse_go_on(server_t *s);
/* Writes the rows this server holds (delta: those changed since its last
 * write) as part of the checkpoint of `step` (the saver's write_rows).
 * Returns 0, or -1 with err. */
int sparse_save(server_t *s, long step, int delta, err_t *err);
/* Fills the row store's counters into st (zeros without sparse tables). */
void sparse_stats(const server_t *s, server_stats_t *st);

/* ---- liveness.c */

/* Allocates live_t for o.n_trainers trainers. Returns 0, or -1 with err;
 * live_free frees it. */
int live_init(server_t *s, err_t *err);
void live_free(live_t *l);
/* A request (of type) from trainer t at time now counts as its heartbeat;
 * refused (-1, *code WIRE_E_LOST and err) when t was given up for lost. */
int live_heard(server_t *s, int t, int type, double now, int *code, err_t *err);
/* 1 when a pull of step clock must be refused: the job halts for it. */
int live_pull_halted(const server_t *s, int64_t clock);
/* Refuses w with ERROR stopping or lost (the halt's text). */
void live_refuse(server_t *s, const waiter_t *w);
/* The status of a pull reply to trainer t (WIRE_PULL_* flags). */
int live_pull_status(const server_t *s, int t);
/* The lowest trainer not lost (T when none is left). */
int live_next_lead(const server_t *s);
/* Trainer 0 stops the job at step: pulls of it on are refused (unless BSP
 * halted for a lost trainer already). */
void live_stop_at(server_t *s, long step);
/* Trainer r->t says goodbye (fail: it fails, and the job ends); answered
 * once the job is over for this server. */
void live_goodbye(server_t *s, const req_t *r, int fail);

#endif
