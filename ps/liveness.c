/* liveness.c - which trainers a parameter server still counts on (see
 * server_int.h): every request is a heartbeat, and a trainer silent for the
 * timeout is lost (ASP / SSP go on without it; BSP halts, or goes on with
 * cluster.on_trainer_loss = "continue"); the lowest trainer left leads when
 * trainer 0 is lost; halts (a stop at a step, a lost trainer) refuse pulls
 * and barriers; goodbyes wait for the end of the job. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps/server_int.h"

int live_init(server_t *s, err_t *err)
{
    live_t *l = &s->live;
    const size_t T = (size_t)s->o.n_trainers;
    l->tseen = calloc(T, sizeof *l->tseen);
    l->lost = calloc(T, 1);
    l->tdone = calloc(T, 1);
    l->shut = calloc(T, sizeof *l->shut);
    l->shut_in = calloc(T, 1);
    l->thosts = calloc(T, sizeof *l->thosts);
    if (!l->tseen || !l->lost || !l->tdone || !l->shut || !l->shut_in || !l->thosts)
        return err_set(err, "server %d: out of memory for %zu trainers", s->o.index, T);
    return 0;
}

void live_free(live_t *l)
{
    free(l->tseen);
    free(l->lost);
    free(l->tdone);
    free(l->shut);
    free(l->shut_in);
    free(l->thosts);
    memset(l, 0, sizeof *l);
}

int live_heard(server_t *s, int t, int type, double now, int *code, err_t *err)
{
    if (s->live.lost[t]) { /* it was given up for lost: the job went on without it */
        *code = WIRE_E_LOST;
        return err_set(err, "%s from trainer %d, which was declared lost: %s",
                       wire_type_name(type), t, "it stayed silent for longer than the timeout");
    }
    s->live.tseen[t] = now;
    return 0;
}

int server_finished(const server_t *s)
{
    return s->live.failed || s->live.shutdowns + s->live.n_lost >= s->o.n_trainers;
}

int server_lost(const server_t *s, int *first)
{
    if (first) {
        *first = -1;
        for (int t = 0; t < s->o.n_trainers && *first < 0; t++)
            if (s->live.lost[t])
                *first = t;
    }
    return s->live.n_lost;
}

void server_set_trainer_hosts(server_t *s, const char *const *hosts)
{
    for (int t = 0; t < s->o.n_trainers; t++)
        snprintf(s->live.thosts[t], sizeof s->live.thosts[t], "%s", hosts[t] ? hosts[t] : "");
}

void server_request_stop(server_t *s)
{
    s->live.stop_requested = 1;
}

int live_next_lead(const server_t *s)
{
    int t = 0;
    while (t < s->o.n_trainers && s->live.lost[t])
        t++;
    return t;
}

int live_pull_status(const server_t *s, int t)
{
    int st = s->live.stop_requested ? WIRE_PULL_STOP_REQUESTED : 0;
    if (s->live.lost[0] && live_next_lead(s) == t)
        st |= WIRE_PULL_TAKE_LEAD;
    return st;
}

int live_pull_halted(const server_t *s, int64_t clock)
{
    return s->live.halt == HALT_LOST ||
           (s->live.halt == HALT_STOPPING && clock >= s->live.stop_step);
}

void live_refuse(server_t *s, const waiter_t *w)
{
    const live_t *l = &s->live;
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_ERROR, s->o.rank);
    h.status = l->halt == HALT_STOPPING ? WIRE_E_STOPPING : WIRE_E_LOST;
    h.req = w->hdr.req;
    h.clock = l->halt == HALT_STOPPING ? l->stop_step : s->cons.version;
    h.elem = WIRE_TEXT;
    h.count = strlen(l->halt_msg);
    srv_send(s, w->peer, w->peer_len, &h, l->halt_msg, h.count, 0);
}

void live_stop_at(server_t *s, long step)
{
    live_t *l = &s->live;
    if (l->halt == HALT_LOST)
        return;
    l->halt = HALT_STOPPING;
    l->stop_step = step;
    snprintf(l->halt_msg, sizeof l->halt_msg, "the job stops at step %ld (asked to stop)", step);
}

/* Answers the waiting goodbyes once the job is over for this server
 * (server_finished: every trainer said goodbye or was lost, or one failed).
 * The answer's status is the number of trainers lost, so that every
 * survivor learns of a dead rank (launch/cluster.c must then not wait for
 * it in MPI_Finalize). */
static void shutdown_flush(server_t *s)
{
    live_t *l = &s->live;
    if (!server_finished(s))
        return;
    for (int t = 0; t < s->o.n_trainers; t++) {
        if (!l->shut_in[t])
            continue;
        const waiter_t *w = &l->shut[t];
        srv_ack(s, w->peer, w->peer_len, w->hdr.req, WIRE_SHUTDOWN, l->n_lost);
        l->shut_in[t] = 0;
    }
}

void live_goodbye(server_t *s, const req_t *r, int fail)
{
    live_t *l = &s->live;
    if (!l->tdone[r->t]) {
        l->tdone[r->t] = 1;
        l->shutdowns++;
    }
    if (fail)
        l->failed = 1; /* a trainer stops the whole job */
    srv_keep(&l->shut[r->t], r);
    l->shut_in[r->t] = 1;
    shutdown_flush(s);
}

/* Gives trainer t up for lost, silent for `silent` seconds; err gets the
 * line that says so. BSP halts unless it goes on with the survivors. */
static void lose(server_t *s, int t, double silent, err_t *err)
{
    live_t *l = &s->live;
    l->lost[t] = 1;
    l->n_lost++;
    cons_drop_trainer(s, t); /* its waiting requests go: nobody is there to answer */
    err_set(err, "trainer %d (rank %d on %s) lost: nothing heard from it for %.1f s", t,
            s->o.n_servers + t, l->thosts[t][0] ? l->thosts[t] : "an unknown host", silent);
    if (s->o.consistency == CONS_BSP && !s->o.continue_on_loss && l->halt != HALT_LOST) {
        l->halt = HALT_LOST;
        snprintf(l->halt_msg, sizeof l->halt_msg, "%s", err->msg);
    }
}

int server_check_trainers(server_t *s, int timeout_ms, server_send_fn send, void *ctx,
                          err_t *err)
{
    live_t *l = &s->live;
    const double now = srv_now();
    int newly = 0;
    err->msg[0] = '\0';
    if (timeout_ms <= 0)
        return 0;
    s->send = send; /* the replies this causes go there */
    s->send_ctx = ctx;
    s->send_failed = 0;
    if (l->tseen_start == 0)
        l->tseen_start = now;
    for (int t = 0; t < s->o.n_trainers; t++) {
        double seen = l->tseen[t] > 0 ? l->tseen[t] : l->tseen_start;
        if (l->lost[t] || l->tdone[t] || now - seen < timeout_ms / 1000.0)
            continue;
        lose(s, t, now - seen, err);
        newly++;
    }
    if (!newly)
        return 0;
    if (s->o.consistency == CONS_BSP && l->halt != HALT_LOST)
        cons_go_on(s); /* without it: pieces and the step may now be complete */
    if (!s->send_failed)
        cons_flush(s);
    if (!s->send_failed)
        cons_barrier_flush(s);
    if (!s->send_failed)
        cons_save_if_due(s);
    if (!s->send_failed)
        shutdown_flush(s);
    if (s->send_failed)
        return err_set(err, "cannot reply after losing a trainer");
    return newly;
}
