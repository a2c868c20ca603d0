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
#include <unistd.h>

#include "launch/console.h"
#include "trainer/dist.h"
#include "common/data/data.h"
#include "common/util/fsutil.h"
#include "trainer/jobdata.h"
#include "common/nn/model.h"
#include "ps/server.h"
#include "ps/shard.h"
#include "common/net/transport.h"

typedef struct {
    int role; /* 0 server, 1 trainer */
    int index;
    int pid;
    char host[128];
    char endpoint[256];
    unsigned long long key_begin, key_end;
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

static server_t *make_server(const job_config_t *cfg, const cluster_opts_t *o, int index, int S,
                             int T, int rank, err_t *err)
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
    if (job_data_train_size(cfg, &n_train, err) != 0) {
        model_destroy(&m);
        return NULL;
    }
    long total = train_total_steps(cfg, n_train, NULL);
    server_opts_t so = {.index = index, .n_servers = S, .n_trainers = T, .rank = rank,
                        .consistency = cfg->cluster.consistency,
                        .staleness = cfg->cluster.staleness, .total_steps = total,
                        .seed = cfg->train.seed, .table = tab, .optim = op,
                        .config_text = o->config_text,
                        .continue_on_loss = cfg->cluster.on_trainer_loss == LOSS_CONTINUE,
                        .stop_flag = &train_stop_signal};
    char root[CFG_PATH_LEN + 32];
    snprintf(root, sizeof root, "%s/checkpoints", o->out_dir);
    so.ckpt_root = root; /* server_new copies it */
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
    printf("test accuracy %.2f%%  test loss %.4f  (%d epoch%s, %ld steps, %.0f samples/s, "
           "%s%.1f s)  -> %s/\n",
           100 * res->test_acc, res->test_loss, res->epochs, res->epochs == 1 ? "" : "s",
           res->steps, res->samples_per_s, ranks, res->wall_s, out_dir);
}

static void *server_thread(void *arg)
{
    thread_server_t *ts = arg;
    ts->rc = server_run(ts->s, ts->t, ts->timeout, console_server_line, &ts->log, &ts->err);
    return NULL;
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
    err_t err;
    int status = 0;
    int peer_lost = 0; /* this rank knows that a rank of the job died */
    transport_auth_t auth; /* the job's CURVE keys (curve = 0: plain) */
    memset(&auth, 0, sizeof auth);
    char ckpt[CFG_PATH_LEN + 32];
    snprintf(ckpt, sizeof ckpt, "%s/model.ckpt", o->out_dir);
    train_opts_t topts = {.out_dir = o->out_dir, .config_text = o->config_text,
                          .no_plot = o->no_plot, .resume = o->resume,
                          .resume_path = o->resume_path, .resume_dir = o->resume_dir};
    train_result_t res;

    if (N == 1) {
        /* singleton: one trainer, its server in a thread, over inproc://.
         * No CURVE: inproc:// never leaves the process (and ZeroMQ runs
         * no security handshake on it), so there is no one to keep out. */
        console_t lt;
        console_init(&lt, o->quiet, 0, "trainer");
        thread_server_t ts = {.timeout = cfg->cluster.timeout_ms};
        console_init(&ts.log, 0, 0, "server 0 (thread)");
        dist_opts_t d = {.trainer = 0, .n_trainers = 1, .n_servers = 1, .rank = 0,
                         .ckpt_path = ckpt};
        cfg->cluster.servers = 1;
        ts.s = make_server(cfg, o, 0, 1, 1, 0, &err);
        if (ts.s)
            ts.t = transport_listen("inproc://pstrain-server-0", d.endpoints[0],
                                    sizeof d.endpoints[0], &err);
        pthread_t th;
        if (!ts.s || !ts.t || pthread_create(&th, NULL, server_thread, &ts) != 0) {
            fprintf(stderr, "pstrain: %s\n", err.msg);
            status = 1;
        } else {
            snprintf(d.hosts[0], sizeof d.hosts[0], "this process");
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
        goto done;
    }

    const int S = cfg->cluster.servers, T = N - S;
    if (S < 1 || T < 1 || S > 64) {
        if (rank == 0)
            fprintf(stderr,
                    "pstrain: %d ranks cannot hold %d server(s) and at least one trainer "
                    "(set --servers or cluster.servers; at most 64 servers)\n",
                    N, S);
        status = 2;
        goto done;
    }
    if (o->keys_dir && cfg->cluster.auth != AUTH_CURVE) {
        if (rank == 0)
            fprintf(stderr, "pstrain: --keys %s: the job has cluster.auth = \"none\", which uses "
                    "no keys\n", o->keys_dir);
        status = 2;
        goto done;
    }
    if (cfg->cluster.auth == AUTH_CURVE && job_keys(rank, o->keys_dir, o->quiet, &auth) != 0) {
        status = 1;
        goto done;
    }
    const int is_server = rank < S, index = is_server ? rank : rank - S;
    /* each rank keeps only the secret its role uses */
    if (is_server)
        explicit_bzero(auth.client_secret, sizeof auth.client_secret);
    else
        explicit_bzero(auth.server_secret, sizeof auth.server_secret);
    console_t lc;
    console_init(&lc, o->quiet, rank, is_server ? "server" : "trainer");
    rank_info_t me, *all = calloc((size_t)N, sizeof *all);
    if (!all) { /* before the rendezvous: the others would wait for this rank for ever */
        fprintf(stderr, "rank %d: out of memory for the rank table of %d ranks\n", rank, N);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    memset(&me, 0, sizeof me);
    me.role = is_server ? 0 : 1;
    me.index = index;
    me.pid = (int)getpid();
    gethostname(me.host, sizeof me.host - 1);
    server_t *srv = NULL;
    transport_t *sock = NULL;
    int ok = 1;
    if (is_server) {
        srv = make_server(cfg, o, index, S, T, rank, &err);
        if (srv)
            sock = transport_listen_auth(cfg->cluster.bind, &auth, me.endpoint,
                                         sizeof me.endpoint, &err);
        if (!srv || !sock) {
            fprintf(stderr, "rank %d server %d: %s\n", rank, index, err.msg);
            ok = 0;
        } else {
            advertise(me.endpoint, sizeof me.endpoint,
                      cfg->cluster.advertise[0] ? cfg->cluster.advertise : "");
            size_t n = server_n_params(srv);
            me.key_begin = shard_begin(n, S, index);
            me.key_end = shard_end(n, S, index);
        }
    }
    /* rendezvous: every rank learns every endpoint */
    MPI_Allgather(&me, sizeof me, MPI_BYTE, all, sizeof me, MPI_BYTE, MPI_COMM_WORLD);
    if (srv) { /* the servers name a lost trainer's host */
        const char **hosts = calloc((size_t)T, sizeof *hosts);
        if (hosts) {
            for (int t = 0; t < T; t++)
                hosts[t] = all[S + t].host;
            server_set_trainer_hosts(srv, hosts);
            free(hosts);
        }
    }
    int all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_ok) {
        status = 1;
        goto cleanup;
    }
    for (int s = 0; s < S; s++) {
        if (strcmp(all[s].host, me.host) == 0)
            continue;
        if (strncmp(all[s].endpoint, "tcp://127.", 10) == 0) {
            fprintf(stderr,
                    "rank %d %s %d: server %d listens on loopback (%s) on host %s, which this host "
                    "(%s) cannot reach: set cluster.bind / --bind to an address or interface of "
                    "the cluster network\n",
                    rank, lc.role, index, s, all[s].endpoint, all[s].host, me.host);
            ok = 0;
        } else if (strncmp(all[s].endpoint, "tcp://0.0.0.0:", 14) == 0 ||
                   strncmp(all[s].endpoint, "tcp://[::]:", 11) == 0) {
            /* bound to every interface (cluster.bind "*" or "0.0.0.0"): the
             * endpoint names no address another host could dial */
            fprintf(stderr,
                    "rank %d %s %d: server %d on host %s listens on all interfaces (%s), which "
                    "names no address this host (%s) can dial: set cluster.advertise\n",
                    rank, lc.role, index, s, all[s].host, all[s].endpoint, me.host);
            ok = 0;
        }
    }
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_ok) {
        status = 1;
        goto cleanup;
    }
    if (rank == S) {
        if (fs_mkdirs(o->out_dir, &err) != 0 || write_cluster_json(o->out_dir, all, N, cfg, &err) != 0) {
            fprintf(stderr, "rank %d trainer 0: %s\n", rank, err.msg);
            ok = 0;
        }
    }
    /* no trainer sends before every server listens */
    MPI_Barrier(MPI_COMM_WORLD);
    if (is_server) {
        if (!o->quiet)
            fprintf(stderr, "rank %d server %d: keys [%llu, %llu) at %s\n", rank, index, me.key_begin,
                me.key_end, me.endpoint);
        if (server_run(srv, sock, cfg->cluster.timeout_ms, console_server_line, &lc, &err) != 0) {
            fprintf(stderr, "rank %d server %d: %s\n", rank, index, err.msg);
            status = 1;
        }
        peer_lost = server_lost(srv, NULL) > 0;
    } else {
        dist_opts_t *d = calloc(1, sizeof *d);
        if (!d) {
            fprintf(stderr, "rank %d trainer %d: out of memory\n", rank, index);
            status = 1;
            goto failed;
        }
        d->trainer = index;
        d->n_trainers = T;
        d->n_servers = S;
        d->rank = rank;
        d->ckpt_path = ckpt;
        d->auth = &auth;
        for (int s = 0; s < S; s++) {
            snprintf(d->endpoints[s], sizeof d->endpoints[s], "%s", all[s].endpoint);
            snprintf(d->hosts[s], sizeof d->hosts[s], "%s", all[s].host);
            d->server_ranks[s] = s;
        }
        /* trainer 0 logs the job; another trainer only if it has to lead the
         * end of the job in trainer 0's place (train_dist says so itself) */
        topts.log = console_line;
        topts.log_ctx = &lc;
        if (train_dist(cfg, d, &topts, &res, &err) != 0) {
            fprintf(stderr, "%srank %d trainer %d: %s\n", console_break(&lc), rank, index,
                    err.msg);
            status = 1;
        } else if (res.stopped == 2) { /* the job halts; trainer 0 has the checkpoint */
            fprintf(stderr, "%srank %d trainer %d: %s\n", console_break(&lc), rank, index,
                    err.msg);
        } else if (res.stopped) {
            if (res.led)
                printf("stopped at step %ld; continue with --resume %s\n", res.steps, o->out_dir);
        } else if (res.led) {
            if (res.plot_error[0])
                fprintf(stderr, "rank %d trainer %d: warning: curves.png not drawn: %s\n", rank, index,
                        res.plot_error);
            cluster_print_result(&res, S, T, o->out_dir);
        }
        peer_lost = res.lost_trainers > 0;
        free(d);
    }
failed:
    if (status != 0) {
        /* a rank that failed ends the job rather than leave others waiting;
         * said here too, since under --enable-recovery mpirun exits 0 and may
         * garble its own report */
        fprintf(stderr, "rank %d %s %d: exit status %d: ending the job\n", rank, lc.role, index,
                status);
        transport_destroy(&sock);
        server_destroy(&srv);
        free(all);
        free(cfg);
        transport_auth_wipe(&auth);
        MPI_Abort(MPI_COMM_WORLD, status);
    }
cleanup:
    transport_destroy(&sock);
    server_destroy(&srv);
    free(all);
done:
    transport_auth_wipe(&auth);
    free(cfg);
    transport_shutdown();
    finalize(peer_lost);
    return status;
}
