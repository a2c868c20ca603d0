/* cluster.c - MPI start-up, roles and rendezvous of a distributed job (see
 * cluster.h). Like main.c, this is launcher code: it prints and decides the
 * exit status. */
#include "launch/cluster.h"

#include <cjson/cJSON.h>
#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/data/data.h"
#include "common/net/transport.h"
#include "common/nn/model.h"
#include "common/util/fsutil.h"
#include "export/checkpoint.h"
#include "export/ckptdir.h"
#include "export/tables.h"
#include "common/util/cpus.h"
#include "launch/console.h"
#include "launch/sizing.h"
#include "ps/server.h"
#include "ps/shard.h"
#include "trainer/ctr_feed.h"
#include "trainer/dist.h"
#include "trainer/jobdata.h"

typedef struct {
    int role; /* 0 server, 1 trainer */
    int index;
    int pid;
    char host[128];
    char endpoint[256];
    unsigned long long key_begin, key_end;
    int threads;       /* a trainer's worker threads, a server's optimizer threads */
    int io_threads;    /* ZeroMQ I/O threads */
} rank_info_t;

static int write_cluster_json(const char *dir, const rank_info_t *ri, int N, const job_config_t *cfg,
                              err_t *err)
{
    cJSON *o = cJSON_CreateObject(), *ranks = cJSON_AddArrayToObject(o, "ranks");
    for (int r = 0; r < N; r++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "rank", r);
        cJSON_AddStringToObject(x, "role", ri[r].role == 0 ? "server" : "trainer");
        cJSON_AddNumberToObject(x, "index", ri[r].index);
        cJSON_AddStringToObject(x, "host", ri[r].host);
        cJSON_AddNumberToObject(x, "pid", ri[r].pid);
        cJSON_AddNumberToObject(x, "threads", ri[r].threads);
        cJSON_AddNumberToObject(x, "io_threads", ri[r].io_threads);
        if (ri[r].role == 0) {
            cJSON_AddStringToObject(x, "endpoint", ri[r].endpoint);
            cJSON *k = cJSON_AddArrayToObject(x, "keys");
            cJSON_AddItemToArray(k, cJSON_CreateNumber((double)ri[r].key_begin));
            cJSON_AddItemToArray(k, cJSON_CreateNumber((double)ri[r].key_end));
        }
        cJSON_AddItemToArray(ranks, x);
    }
    cJSON_AddStringToObject(o, "consistency", config_consistency_name(cfg->cluster.consistency));
    cJSON_AddNumberToObject(o, "staleness", cfg->cluster.staleness);
    cJSON_AddNumberToObject(o, "servers", cfg->cluster.servers);
    cJSON_AddNumberToObject(o, "trainers", N - cfg->cluster.servers);
    cJSON_AddStringToObject(o, "auth", cfg->cluster.auth == AUTH_CURVE ? "curve" : "none");
    cJSON_AddStringToObject(o, "config", cfg->source);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text)
        return err_set(err, "cluster.json: out of memory");
    char path[CFG_PATH_LEN + 32];
    snprintf(path, sizeof path, "%s/cluster.json", dir);
    int rc = fs_write_atomic(path, text, strlen(text), err);
    cJSON_free(text);
    return rc;
}

/* Replaces the host of a tcp://HOST:PORT endpoint with adv. */
static void advertise(char *ep, size_t len, const char *adv)
{
    const char *colon = strrchr(ep, ':');
    if (!adv[0] || strncmp(ep, "tcp://", 6) != 0 || !colon)
        return;
    char port[32];
    snprintf(port, sizeof port, "%s", colon + 1);
    snprintf(ep, len, "tcp://%s:%s", adv, port);
}

/* The saver's write: the shard as ROOT/step-N/shard-S-of-N.ckpt (ckptdir.h),
 * with the job's config text. Returns 0, or -1 with err. */
static int saver_write(void *ctx, const server_shard_t *sh, err_t *err)
{
    const cluster_saver_t *cs = ctx;
    char dir[CFG_PATH_LEN + 96], path[CFG_PATH_LEN + 160];
    if (ckptdir_step_dir(dir, sizeof dir, cs->root, sh->step, err) != 0 ||
        ckptdir_part_path(path, sizeof path, cs->root, sh->step, sh->index, sh->n_servers,
                          err) != 0 ||
        fs_mkdirs(dir, err) != 0)
        return -1;
    checkpoint_t ck = {
        .step = (uint64_t)sh->step, .clock = (uint64_t)sh->version, .seed = sh->seed,
        .opt_kind = sh->optim->kind->id, .n_slots = sh->n_slots,
        .config_text = (char *)(cs->config_text ? cs->config_text : ""),
        .table = *sh->table, .params = (float *)sh->params, .opt_state = (float *)sh->state,
        .n_shards = sh->n_servers, .shard_index = sh->index,
        .shard_begin = sh->begin, .shard_end = sh->end,
    };
    return checkpoint_write(path, &ck, err);
}

/* The saver's write_rows: the server's rows as
 * ROOT/step-N/tables-S-of-N.rows, or the rows changed since its last write
 * as ROOT/step-N/delta-S-of-N.rows (ckptdir.h), after its shard, with their
 * counters. Returns 0, or -1 with err. */
static int saver_write_rows(void *ctx, rows_t *rows, int index, int n_servers, long step,
                            int delta, err_t *err)
{
    const cluster_saver_t *cs = ctx;
    char dir[CFG_PATH_LEN + 96], path[CFG_PATH_LEN + 160];
    if (ckptdir_step_dir(dir, sizeof dir, cs->root, step, err) != 0 ||
        ckptdir_tables_path(path, sizeof path, dir, index, n_servers, delta, err) != 0 ||
        fs_mkdirs(dir, err) != 0 ||
        (delta ? rows_save_delta(rows, path, err) : rows_save(rows, path, err)) != 0)
        return -1;
    return train_tables_counts_write(rows, path, err);
}

server_saver_t cluster_saver(cluster_saver_t *cs, const char *out_dir, const char *config_text)
{
    snprintf(cs->root, sizeof cs->root, "%s/checkpoints", out_dir);
    cs->config_text = config_text;
    return (server_saver_t){.write = saver_write, .write_rows = saver_write_rows, .ctx = cs};
}

/* ckptdir_tables_load's loader for a resumed job's server ctx: the rows it
 * owns of a tables file (written by any number of servers). */
static int load_server_rows(void *ctx, const char *path, err_t *err)
{
    return server_load_rows(ctx, path, err);
}

/* The server of shard `index` of S for T trainers of cfg's job, writing its
 * checkpoints through *cs (which must outlive it). Returns it, or NULL with
 * err. */
static server_t *make_server(const job_config_t *cfg, const cluster_opts_t *o, int index, int S,
                             int T, int rank, cluster_saver_t *cs, err_t *err)
{
    model_t *m = model_new(cfg, 1, err);
    if (!m)
        return NULL;
    const param_table_t *tab = model_params(m);
    optim_params_t op;
    optim_params_from_config(&op, cfg);
    /* every trainer runs the same number of steps; the server needs the
     * total for the lr schedule: epochs x batches of the training part */
    size_t n_train;
    long per_epoch = 0;
    uint64_t lines = 0;
    if (job_data_train_size(cfg, &n_train, err) != 0 ||
        (cfg->data.format == FORMAT_CRITEO &&
         ctr_feed_plan(cfg, T, NULL, &per_epoch, &lines, err) != 0)) {
        model_destroy(&m);
        return NULL;
    }
    if (cfg->data.format == FORMAT_CRITEO)
        n_train = (size_t)lines; /* the data order's samples, as the trainers count them */
    long total = per_epoch ? train_steps_capped(cfg, per_epoch)  /* click logs: T parts */
                           : train_total_steps(cfg, n_train, NULL);
    rows_table_t tables[CFG_MAX_FIELDS];
    server_opts_t so = {.index = index, .n_servers = S, .n_trainers = T, .rank = rank,
                        .consistency = cfg->cluster.consistency,
                        .staleness = cfg->cluster.staleness, .total_steps = total,
                        .seed = cfg->train.seed, .table = tab, .optim = op,
                        .saver = cluster_saver(cs, o->out_dir, o->config_text),
                        .continue_on_loss = cfg->cluster.on_trainer_loss == LOSS_CONTINUE,
                        .stop_flag = &train_stop_signal, .threads = cfg->server.threads,
                        .row_tables = tables, .n_row_tables = tables_of_config(cfg, tables)};
    if (o->resume) {
        /* the trainers check the data order; a server needs its tensors and state */
        long step = train_resume_check(o->resume, o->resume_path, cfg, m, n_train,
                                       optim_slots(&op), total, err);
        if (step < 0) {
            model_destroy(&m);
            return NULL;
        }
        so.init_params = o->resume->params;
        so.init_state = o->resume->opt_state;
        so.start_step = step;
    }
    server_t *s = server_new(&so, err);
    model_destroy(&m);
    if (s && o->resume && so.n_row_tables > 0 && ckptdir_tables_load(o->resume_path, load_server_rows, s, err) != 0)
        server_destroy(&s);
    return s;
}

/* The job's CURVE keys on every rank: rank 0 reads them from keys_dir when
 * it holds them, or makes new ones (kept in keys_dir when given, else
 * nowhere but in memory), and MPI_Bcast hands them to every rank. Every
 * rank checks that its libzmq has CURVE. Prints what fails; returns 0 on
 * every rank, or nonzero on every rank. */
static int job_keys(int rank, const char *keys_dir, int quiet, transport_auth_t *auth)
{
    err_t err;
    int ok = 1, all_ok = 0;
    if (transport_curve_check(&err) != 0) {
        fprintf(stderr, "rank %d: cluster.auth = \"curve\": %s\n", rank, err.msg);
        ok = 0;
    }
    if (rank == 0 && ok) {
        int got = keys_dir ? transport_auth_load(auth, keys_dir, &err) : 0;
        const char *how = "from ";
        if (got == 0) {
            got = transport_auth_generate(auth, &err) == 0 ? 1 : -1;
            how = keys_dir ? "made for this job, stored in " : "made for this job (not stored)";
            if (got == 1 && keys_dir && transport_auth_save(auth, keys_dir, &err) != 0)
                got = -1;
        }
        if (got < 0) {
            fprintf(stderr, "rank 0: CURVE keys%s: %s\n", keys_dir ? " (--keys)" : "", err.msg);
            ok = 0;
        } else if (!quiet) {
            fprintf(stderr, "rank 0: CURVE: key pairs %s%s\n", how, keys_dir ? keys_dir : "");
        }
    }
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_ok)
        return -1;
    /* MPI's own channels carry the keys: they are as private as the launch */
    MPI_Bcast(auth, sizeof *auth, MPI_BYTE, 0, MPI_COMM_WORLD);
    return 0;
}

typedef struct {
    server_t *s;
    transport_t *t;
    int timeout;
    int rc;
    err_t err;
    console_t log;
} thread_server_t;

/* MPI_Finalize is collective: Open MPI 4.1 runs a PMIx fence over every
 * rank, and with a rank killed under --enable-recovery that fence now and
 * then never completes. A rank that knows a peer died therefore leaves
 * without it (its outputs are written and flushed by now). */
static void finalize(int peer_lost)
{
    fflush(stdout);
    fflush(stderr);
    if (!peer_lost)
        MPI_Finalize();
}

void cluster_print_result(const train_result_t *res, int servers, int trainers,
                          const char *out_dir)
{
    char ranks[64] = "";
    if (servers > 0)
        snprintf(ranks, sizeof ranks, "%d server(s), %d trainer(s), ", servers, trainers);
    char auc[32] = ""; /* a binary model's */
    if (res->binary)
        snprintf(auc, sizeof auc, "  test auc %.4f", res->test_auc);
    printf("test accuracy %.2f%%  test loss %.4f%s  (%d epoch%s, %ld steps, %.0f samples/s, "
           "%s%.1f s)  -> %s/\n",
           100 * res->test_acc, res->test_loss, auc, res->epochs, res->epochs == 1 ? "" : "s",
           res->steps, res->samples_per_s, ranks, res->wall_s, out_dir);
}

static void *server_thread(void *arg)
{
    thread_server_t *ts = arg;
    ts->rc = server_run(ts->s, ts->t, ts->timeout, console_server_line, &ts->log, &ts->err);
    return NULL;
}

/* The options of a trainer of the job o describes; ckpt (the caller's)
 * receives the path of its model.ckpt. */
static train_opts_t trainer_opts(const cluster_opts_t *o, char *ckpt, size_t len)
{
    snprintf(ckpt, len, "%s/model.ckpt", o->out_dir);
    return (train_opts_t){.out_dir = o->out_dir, .config_text = o->config_text,
                          .no_plot = o->no_plot, .no_export = o->no_export, .resume = o->resume,
                          .resume_path = o->resume_path, .resume_dir = o->resume_dir};
}

/* A singleton start (no mpirun): one trainer, its server in a thread, over
 * inproc://. No CURVE: inproc:// never leaves the process (and ZeroMQ runs
 * no security handshake on it), so there is no one to keep out. Prints
 * what fails; returns the exit status. */
static int run_singleton(job_config_t *cfg, const cluster_opts_t *o)
{
    err_t err;
    int status = 0;
    console_t lt;
    console_init(&lt, o->quiet, 0, "trainer");
    thread_server_t ts = {.timeout = cfg->cluster.timeout_ms};
    console_init(&ts.log, 0, 0, "server 0 (thread)");
    char ckpt[CFG_PATH_LEN + 32], ep[256];
    const char *eps[1] = {ep}, *hosts[1] = {"this process"};
    train_opts_t topts = trainer_opts(o, ckpt, sizeof ckpt);
    dist_opts_t d = {.trainer = 0, .n_trainers = 1, .n_servers = 1, .rank = 0, .endpoints = eps,
                     .hosts = hosts, .ckpt_path = ckpt, .io_threads = 1};
    train_result_t res;
    cluster_saver_t saver;
    cfg->cluster.servers = 1;
    /* the trainer and its server share this process's CPUs; the server
     * mostly waits while the trainer computes */
    if (cfg->train.threads == CFG_AUTO)
        cfg->train.threads = cpus_available();
    if (cfg->server.threads == CFG_AUTO)
        cfg->server.threads = cpus_share(cpus_available(), 2);
    ts.s = make_server(cfg, o, 0, 1, 1, 0, &saver, &err);
    d.server_threads = ts.s ? server_threads(ts.s) : 1;
    if (ts.s)
        ts.t = transport_listen("inproc://pstrain-server-0", ep, sizeof ep, &err);
    pthread_t th;
    if (!ts.s || !ts.t || pthread_create(&th, NULL, server_thread, &ts) != 0) {
        fprintf(stderr, "pstrain: %s\n", err.msg);
        status = 1;
    } else {
        topts.log = console_line;
        topts.log_ctx = &lt;
        if (train_dist(cfg, &d, &topts, &res, &err) != 0) {
            fprintf(stderr, "%spstrain: %s\n", console_break(&lt), err.msg);
            status = 1;
        }
        pthread_join(th, NULL);
        if (ts.rc != 0 && status == 0) {
            fprintf(stderr, "pstrain: %s\n", ts.err.msg);
            status = 1;
        }
    }
    transport_destroy(&ts.t);
    server_destroy(&ts.s);
    if (status == 0)
        cluster_print_result(&res, 0, 1, o->out_dir);
    return status;
}

/* This rank's place in an mpirun job: ranks [0, S) are servers, [S, N)
 * trainers. */
typedef struct {
    int rank, N, S, T;
    int is_server, index;          /* server or trainer number index */
    rank_info_t me, *all;          /* this rank; every rank (N), after the rendezvous */
    console_t lc;
    server_t *srv;                 /* a server rank's server and socket */
    transport_t *sock;
    cluster_saver_t saver;
    train_result_t res;            /* a trainer rank's result, for its report */
} ranks_t;

/* Checks that every server's endpoint can be dialled from this host (a
 * loopback or wildcard address of another host cannot). Prints what
 * cannot; returns 1 when all can, else 0. */
static int endpoints_reachable(const ranks_t *r)
{
    int ok = 1;
    for (int s = 0; s < r->S; s++) {
        const rank_info_t *a = &r->all[s];
        if (strcmp(a->host, r->me.host) == 0)
            continue;
        if (strncmp(a->endpoint, "tcp://127.", 10) == 0) {
            fprintf(stderr,
                    "rank %d %s %d: server %d listens on loopback (%s) on host %s, which this host "
                    "(%s) cannot reach: set cluster.bind / --bind to an address or interface of "
                    "the cluster network\n",
                    r->rank, r->lc.role, r->index, s, a->endpoint, a->host, r->me.host);
            ok = 0;
        } else if (strncmp(a->endpoint, "tcp://0.0.0.0:", 14) == 0 ||
                   strncmp(a->endpoint, "tcp://[::]:", 11) == 0) {
            /* bound to every interface (cluster.bind "*" or "0.0.0.0"): the
             * endpoint names no address another host could dial */
            fprintf(stderr,
                    "rank %d %s %d: server %d on host %s listens on all interfaces (%s), which "
                    "names no address this host (%s) can dial: set cluster.advertise\n",
                    r->rank, r->lc.role, r->index, s, a->host, a->endpoint, r->me.host);
            ok = 0;
        }
    }
    return ok;
}

/* The rendezvous: each server builds its shard and binds its socket,
 * MPI_Allgather hands every rank every endpoint, trainer 0 writes
 * cluster.json, and a barrier keeps trainers from sending before every
 * server listens. Prints what fails; returns 0 on every rank, or 1 on
 * every rank (all of them agree). */
static int rendezvous(ranks_t *r, const job_config_t *cfg, const cluster_opts_t *o,
                      const transport_auth_t *auth)
{
    err_t err;
    int ok = 1, all_ok = 0;
    if (r->is_server) {
        r->srv = make_server(cfg, o, r->index, r->S, r->T, r->rank, &r->saver, &err);
        if (r->srv)
            r->sock = transport_listen_auth(cfg->cluster.bind, auth, r->me.endpoint,
                                            sizeof r->me.endpoint, &err);
        if (!r->srv || !r->sock) {
            fprintf(stderr, "rank %d server %d: %s\n", r->rank, r->index, err.msg);
            ok = 0;
        } else {
            advertise(r->me.endpoint, sizeof r->me.endpoint,
                      cfg->cluster.advertise[0] ? cfg->cluster.advertise : "");
            size_t n = server_n_params(r->srv);
            r->me.key_begin = shard_begin(n, r->S, r->index);
            r->me.key_end = shard_end(n, r->S, r->index);
            r->me.threads = server_threads(r->srv);
        }
    }
    MPI_Allgather(&r->me, sizeof r->me, MPI_BYTE, r->all, sizeof r->me, MPI_BYTE, MPI_COMM_WORLD);
    if (r->srv) { /* the servers name a lost trainer's host */
        const char **hosts = calloc((size_t)r->T, sizeof *hosts);
        if (hosts) {
            for (int t = 0; t < r->T; t++)
                hosts[t] = r->all[r->S + t].host;
            server_set_trainer_hosts(r->srv, hosts);
            free(hosts);
        }
    }
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_ok)
        return 1;
    ok = endpoints_reachable(r);
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_ok)
        return 1;
    if (r->rank == r->S && (fs_mkdirs(o->out_dir, &err) != 0 ||
                            write_cluster_json(o->out_dir, r->all, r->N, cfg, &err) != 0))
        fprintf(stderr, "rank %d trainer 0: %s\n", r->rank, err.msg);
    /* no trainer sends before every server listens */
    MPI_Barrier(MPI_COMM_WORLD);
    return 0;
}

/* A server rank serves until the job ends. Prints what fails; returns the
 * exit status. *peer_lost is set when a trainer was lost. */
static int run_server(ranks_t *r, const job_config_t *cfg, const cluster_opts_t *o,
                      int *peer_lost)
{
    err_t err;
    int status = 0;
    if (!o->quiet)
        fprintf(stderr, "rank %d server %d: keys [%llu, %llu) at %s, %d optimizer thread(s), "
                "%d I/O thread(s)\n", r->rank, r->index, r->me.key_begin, r->me.key_end,
                r->me.endpoint, r->me.threads, r->me.io_threads);
    if (server_run(r->srv, r->sock, cfg->cluster.timeout_ms, console_server_line, &r->lc,
                   &err) != 0) {
        fprintf(stderr, "rank %d server %d: %s\n", r->rank, r->index, err.msg);
        status = 1;
    }
    *peer_lost = server_lost(r->srv, NULL) > 0;
    return status;
}

/* Prints a trainer's outcome: the result line (when it led the job), a
 * stop, a halt or an error. Returns the exit status. */
static int trainer_outcome(const ranks_t *r, int rc, const train_result_t *res, const err_t *err,
                           const char *out_dir)
{
    if (rc != 0) {
        fprintf(stderr, "%srank %d trainer %d: %s\n", console_break(&r->lc), r->rank, r->index,
                err->msg);
        return 1;
    }
    if (res->stopped == 2) { /* the job halts; trainer 0 has the checkpoint */
        fprintf(stderr, "%srank %d trainer %d: %s\n", console_break(&r->lc), r->rank, r->index,
                err->msg);
    } else if (res->stopped) {
        if (res->led)
            printf("stopped at step %ld; continue with --resume %s\n", res->steps, out_dir);
    } else if (res->led) {
        if (res->plot_error[0])
            fprintf(stderr, "rank %d trainer %d: warning: curves.png not drawn: %s\n", r->rank,
                    r->index, res->plot_error);
        cluster_print_result(res, r->S, r->T, out_dir);
    }
    return 0;
}

/* A trainer rank trains. Trainer 0 logs the job; another trainer only if it
 * has to lead the end of the job in trainer 0's place (train_dist says so
 * itself). Prints what fails; returns the exit status. *peer_lost is set
 * when the job lost a trainer. */
static int run_trainer(ranks_t *r, const job_config_t *cfg, const cluster_opts_t *o,
                       const transport_auth_t *auth, int *peer_lost)
{
    const char **eps = calloc((size_t)r->S, sizeof *eps), **hosts = calloc((size_t)r->S,
                                                                             sizeof *hosts);
    int *ranks = calloc((size_t)r->S, sizeof *ranks);
    int status = 1;
    if (!eps || !hosts || !ranks) {
        fprintf(stderr, "rank %d trainer %d: out of memory\n", r->rank, r->index);
        goto out;
    }
    for (int s = 0; s < r->S; s++) {
        eps[s] = r->all[s].endpoint;
        hosts[s] = r->all[s].host;
        ranks[s] = s;
    }
    char ckpt[CFG_PATH_LEN + 32];
    train_opts_t topts = trainer_opts(o, ckpt, sizeof ckpt);
    topts.log = console_line;
    topts.log_ctx = &r->lc;
    dist_opts_t d = {.trainer = r->index, .n_trainers = r->T, .n_servers = r->S,
                     .rank = r->rank, .endpoints = eps, .hosts = hosts, .server_ranks = ranks,
                     .ckpt_path = ckpt, .auth = auth, .io_threads = cfg->cluster.io_threads};
    for (int s = 0; s < r->S; s++)
        if (r->all[s].threads > d.server_threads)
            d.server_threads = r->all[s].threads;
    err_t err;
    int rc = train_dist(cfg, &d, &topts, &r->res, &err);
    status = trainer_outcome(r, rc, &r->res, &err, o->out_dir);
    *peer_lost = r->res.lost_trainers > 0;
out:
    free(eps);
    free(hosts);
    free(ranks);
    return status;
}

/* Trainer 0, after the rendezvous: when servers and trainers are on
 * different hosts, warns when the network may limit the job
 * (launch/sizing.h: a step's bytes through the busiest host link at
 * cluster.link_gbps take longer than its compute: first against a lower
 * bound from the model's size, then, if that says maybe, against one step
 * timed on this trainer). */
static void sizing_warn(const ranks_t *r, const job_config_t *cfg)
{
    int *host = calloc((size_t)r->N, sizeof *host), n_hosts = 0;
    err_t err;
    model_t *m = host ? model_new(cfg, 1, &err) : NULL;
    if (!m) {
        free(host);
        return;
    }
    for (int i = 0; i < r->N; i++) {
        host[i] = n_hosts;
        for (int k = 0; k < i; k++)
            if (strcmp(r->all[k].host, r->all[i].host) == 0) {
                host[i] = host[k];
                break;
            }
        if (host[i] == n_hosts)
            n_hosts++;
    }
    const compression_t c = cfg->cluster.compression;
    sizing_job_t j = {.params = model_n_params(m), .batch = cfg->train.batch, .servers = r->S,
                      .trainers = r->T, .threads = cfg->train.threads,
                      .bsp = cfg->cluster.consistency == CONS_BSP,
                      .push_bytes = c == COMP_NONE   ? 4.0
                                    : c == COMP_TOPK ? 8.0 * cfg->cluster.topk_ratio
                                                     : 2.0,
                      .pull_bytes = cfg->cluster.pull_compression == COMP_NONE ? 4.0 : 2.0,
                      .link_gbps = cfg->cluster.link_gbps,
                      .core_gflops = cfg->cluster.core_gflops, .host = host, .n_hosts = n_hosts};
    model_destroy(&m);
    sizing_t z;
    /* the lower bound of the compute says "maybe": one step of this trainer's
     * batch, timed, says whether */
    if (n_hosts > 1 && sizing_eval(&j, &z) &&
        (j.compute_s = sizing_measure(cfg, cfg->train.batch / r->T, j.threads)) > 0 &&
        sizing_eval(&j, &z)) {
        const char *name = "?";
        for (int i = 0; i < r->N; i++)
            if (host[i] == z.busiest) {
                name = r->all[i].host;
                break;
            }
        fprintf(stderr,
                "%srank %d trainer 0: warning: the network may limit this job: a step moves "
                "%.1f MB each way through the link of host %s, %.3g s at cluster.link_gbps = "
                "%g, against %.3g s of compute (one step of %d samples on %d thread(s), timed "
                "here); more server hosts, cluster.compression = \"fp16\" or a faster link "
                "would help (README, \"Sizing a cluster\")\n",
                console_break(&r->lc), r->rank, z.bytes / 1e6, name, z.net_s,
                cfg->cluster.link_gbps, z.compute_s, j.batch / j.trainers, j.threads);
    }
    free(host);
}

/* Decides this rank's thread counts given as "auto": a trainer's train.threads are
 * the CPUs its affinity mask allows, shared among the trainer ranks of its
 * node (MPI's shared-memory communicator tells which ranks share it; the
 * servers are not counted: they mostly wait while trainers compute); a
 * server's server.threads are its CPUs shared among all ranks of the node.
 * A trainer limited to fewer CPUs than the node has (mpirun binds the ranks
 * of a small job to a core each) says so. Then the process's ZeroMQ I/O
 * threads (cluster.io_threads). Collective: every rank calls it, before
 * any socket is made. */
static void resolve_threads(job_config_t *cfg, const ranks_t *r)
{
    MPI_Comm node;
    int mine[2] = {!r->is_server, r->is_server}, on_node[2] = {1, 1};
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, r->rank, MPI_INFO_NULL,
                            &node) == MPI_SUCCESS) {
        MPI_Allreduce(mine, on_node, 2, MPI_INT, MPI_SUM, node);
        MPI_Comm_free(&node);
    }
    const int cpus = cpus_available();
    if (cfg->train.threads == CFG_AUTO) {
        cfg->train.threads = cpus_share(cpus, on_node[0]);
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        if (!r->is_server && !r->lc.quiet && online > cpus && r->index == 0)
            fprintf(stderr, "rank %d trainer %d: %d thread(s): its CPU affinity allows %d of "
                    "this node's %ld CPUs (mpirun binds the ranks of small jobs to a core each; "
                    "mpirun --bind-to none lets a rank use more)\n", r->rank, r->index,
                    cfg->train.threads, cpus, online);
    }
    /* the servers' optimizer runs while the trainers compute (a BSP step's
     * pieces are applied as they come in during backward): on a node shared
     * with trainers, its threads would take their cores (measured: 1 server
     * + 1 trainer of 2 threads on 2 cores, the bench MLP, 603 samples/s with 1
     * optimizer thread, 481 with 2) */
    if (cfg->server.threads == CFG_AUTO)
        cfg->server.threads = cpus_share(cpus, on_node[0] + on_node[1]);
    /* ZeroMQ runs each connection on one I/O thread, and CURVE's encryption
     * there: with CURVE, a thread per connection of this rank (a server's
     * trainers, a trainer's servers) as far as its CPUs go; plain TCP keeps
     * up with one */
    if (cfg->cluster.io_threads == CFG_AUTO) {
        int conns = r->is_server ? r->T : r->S;
        cfg->cluster.io_threads = cfg->cluster.auth == AUTH_CURVE
                                      ? (conns < cpus ? conns : cpus)
                                      : 1;
    }
    err_t err;
    if (transport_set_io_threads(cfg->cluster.io_threads, &err) != 0)
        fprintf(stderr, "rank %d: %s\n", r->rank, err.msg);
}

/* Each rank's report at its end: OUT/ranks/rank-R.json (role, index, host,
 * peak RSS from getrusage; a trainer's steps, the samples it trained on
 * itself and its seconds in training steps, whose ratio is its own rate:
 * in ASP the trainers go at their own paces and the job's rate is the sum)
 * and, unless quiet, the memory line. Prints what fails. */
static void report_rank(const ranks_t *r, const cluster_opts_t *o)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return;
    const double mib = (double)ru.ru_maxrss / 1024.0; /* Linux: KiB */
    if (!o->quiet)
        fprintf(stderr, "%srank %d %s %d: peak RSS %.1f MiB\n", console_break(&r->lc), r->rank,
                r->lc.role, r->index, mib);
    char dir[CFG_PATH_LEN + 16], path[CFG_PATH_LEN + 64], text[512];
    snprintf(dir, sizeof dir, "%s/ranks", o->out_dir);
    snprintf(path, sizeof path, "%s/rank-%d.json", dir, r->rank);
    int n = snprintf(text, sizeof text,
                     "{\"rank\": %d, \"role\": \"%s\", \"index\": %d, \"host\": \"%s\", "
                     "\"peak_rss_mib\": %.1f", r->rank, r->lc.role, r->index, r->me.host, mib);
    if (!r->is_server)
        n += snprintf(text + n, sizeof text - (size_t)n,
                      ", \"steps\": %ld, \"samples\": %ld, \"train_s\": %.6f, "
                      "\"samples_per_s\": %.3f", r->res.steps, r->res.own_samples,
                      r->res.train_s,
                      (double)r->res.own_samples / (r->res.train_s > 0 ? r->res.train_s : 1e-9));
    n += snprintf(text + n, sizeof text - (size_t)n, "}\n");
    err_t err;
    if (fs_mkdirs(dir, &err) != 0 || fs_write_atomic(path, text, (size_t)n, &err) != 0)
        fprintf(stderr, "rank %d %s %d: %s\n", r->rank, r->lc.role, r->index, err.msg);
}

/* This rank's part of an mpirun job of N ranks. Prints what fails; returns
 * the exit status, and *abort_job = 1 when the rank failed on its own and
 * must end the job (MPI_Abort) rather than leave the others waiting. */
static int run_ranks(job_config_t *cfg, const cluster_opts_t *o, int rank, int N,
                     transport_auth_t *auth, int *peer_lost, int *abort_job)
{
    ranks_t r = {.rank = rank, .N = N, .S = cfg->cluster.servers, .T = N - cfg->cluster.servers};
    if (r.S < 1 || r.T < 1 || r.S > SHARD_SERVERS_MAX) {
        if (rank == 0)
            fprintf(stderr,
                    "pstrain: %d ranks cannot hold %d server(s) and at least one trainer "
                    "(set --servers or cluster.servers; at most %d servers)\n",
                    N, r.S, SHARD_SERVERS_MAX);
        return 2;
    }
    if (o->keys_dir && cfg->cluster.auth != AUTH_CURVE) {
        if (rank == 0)
            fprintf(stderr, "pstrain: --keys %s: the job has cluster.auth = \"none\", which uses "
                    "no keys\n", o->keys_dir);
        return 2;
    }
    if (cfg->cluster.auth == AUTH_CURVE && job_keys(rank, o->keys_dir, o->quiet, auth) != 0)
        return 1;
    r.is_server = rank < r.S;
    r.index = r.is_server ? rank : rank - r.S;
    /* each rank keeps only the secret its role uses */
    if (r.is_server)
        explicit_bzero(auth->client_secret, sizeof auth->client_secret);
    else
        explicit_bzero(auth->server_secret, sizeof auth->server_secret);
    console_init(&r.lc, o->quiet, rank, r.is_server ? "server" : "trainer");
    r.all = calloc((size_t)N, sizeof *r.all);
    if (!r.all) { /* before the rendezvous: the others would wait for this rank for ever */
        fprintf(stderr, "rank %d: out of memory for the rank table of %d ranks\n", rank, N);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    resolve_threads(cfg, &r);
    r.me.threads = r.is_server ? 1 : cfg->train.threads;
    r.me.io_threads = cfg->cluster.io_threads;
    r.me.role = r.is_server ? 0 : 1;
    r.me.index = r.index;
    r.me.pid = (int)getpid();
    gethostname(r.me.host, sizeof r.me.host - 1);
    int status = rendezvous(&r, cfg, o, auth);
    if (status == 0 && !r.is_server && r.index == 0)
        sizing_warn(&r, cfg);
    if (status == 0) {
        status = r.is_server ? run_server(&r, cfg, o, peer_lost)
                             : run_trainer(&r, cfg, o, auth, peer_lost);
        /* a rank that failed ends the job rather than leave others waiting;
         * said here too, since under --enable-recovery mpirun exits 0 and may
         * garble its own report */
        if (status != 0) {
            fprintf(stderr, "rank %d %s %d: exit status %d: ending the job\n", rank, r.lc.role,
                    r.index, status);
            *abort_job = 1;
        } else {
            report_rank(&r, o);
        }
    }
    transport_destroy(&r.sock);
    server_destroy(&r.srv);
    free(r.all);
    return status;
}

int cluster_main(int *argc, char ***argv, const job_config_t *cfg_in, const cluster_opts_t *o)
{
    int provided, rank = 0, N = 1;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "pstrain: MPI_Init failed\n");
        return 1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &N);
    job_config_t *cfg = malloc(sizeof *cfg);
    if (!cfg) {
        fprintf(stderr, "rank %d: out of memory\n", rank);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    *cfg = *cfg_in;
    if (o->servers > 0)
        cfg->cluster.servers = o->servers;
    if (o->bind)
        snprintf(cfg->cluster.bind, sizeof cfg->cluster.bind, "%s", o->bind);
    int status, peer_lost = 0, abort_job = 0; /* peer_lost: a rank of the job died */
    transport_auth_t auth; /* the job's CURVE keys (curve = 0: plain) */
    memset(&auth, 0, sizeof auth);
    if (N == 1)
        status = run_singleton(cfg, o);
    else
        status = run_ranks(cfg, o, rank, N, &auth, &peer_lost, &abort_job);
    transport_auth_wipe(&auth);
    free(cfg);
    if (abort_job)
        MPI_Abort(MPI_COMM_WORLD, status);
    transport_shutdown();
    finalize(peer_lost);
    return status;
}
