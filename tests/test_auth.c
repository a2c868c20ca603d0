/* test_auth.c - CURVE security of the parameter servers' sockets
 * (transport.h, docs/PROTOCOL.md "Security"): over TCP loopback with a
 * real server running server_run in a thread, a client holding the job's
 * keys pushes and pulls; a plain client, a client with a key pair of its
 * own and a client that expects another server key get no reply, fail with
 * a message that names authentication (later sends too, rather than block),
 * and change nothing; with auth none a
 * foreign malformed push gets ERROR and changes nothing. A trainer
 * (train_dist) with the wrong keys stops within cluster.timeout_ms saying
 * why. Key files: written 0600, read back, refused when loose or broken.
 * Config: cluster.auth defaults to curve, cluster.bind to 127.0.0.1. Under
 * mpirun: the default job runs with CURVE, --keys DIR stores and reuses the
 * keys, cluster.auth = "none" trains too. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/config/config.h"
#include "trainer/dist.h"
#include "common/util/fsutil.h"
#include "common/nn/model.h"
#include "launch/cluster.h"
#include "ps/server.h"
#include "tests.h"
#include "common/net/transport.h"
#include "common/net/wire.h"

#define N_PARAMS 6

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* A live ASP server with one trainer and SGD at lr 1: a push that gets
 * through changes the parameters at once. */
typedef struct {
    param_table_t tab;
    server_t *s;
    transport_t *t;
    char ep[256];
    pthread_t th;
    int rc;
    err_t err;
} live_t;

static void *live_run(void *arg)
{
    live_t *l = arg;
    l->rc = server_run(l->s, l->t, 20000, NULL, NULL, &l->err);
    return NULL;
}

static int live_start(live_t *l, const transport_auth_t *auth)
{
    memset(l, 0, sizeof *l);
    int shape[1] = {N_PARAMS};
    err_t err;
    param_spec_t *p = params_add(&l->tab, "w", 1, shape, INIT_GLOROT_UNIFORM, &err);
    if (!p)
        return -1;
    p->fan_in = p->fan_out = 4;
    server_opts_t o = {.index = 0, .n_servers = 1, .n_trainers = 1, .consistency = CONS_ASP,
                       .total_steps = 100, .seed = 3, .table = &l->tab,
                       .optim = {.kind = optim_find("sgd"), .lr = 1.0}};
    l->s = server_new(&o, &err);
    if (!l->s)
        return -1;
    l->t = transport_listen_auth("127.0.0.1", auth, l->ep, sizeof l->ep, &l->err);
    if (!l->t) {
        fprintf(stderr, "\n  %s\n", l->err.msg);
        server_destroy(&l->s);
        return -1;
    }
    return pthread_create(&l->th, NULL, live_run, l) == 0 ? 0 : -1;
}

/* Ends the server through c (a client it admits), then frees it. */
static void live_stop(live_t *l, transport_t *c)
{
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_SHUTDOWN, 0);
    uint8_t hb[WIRE_HDR_MAX];
    tframe_t f = {hb, (size_t)wire_encode(&h, hb, sizeof hb)};
    err_t err;
    CU_ASSERT(transport_send(c, &f, 1, 1, &err) == 0);
    tmsg_t m;
    if (transport_recv(c, &m, 5000, &err) == 1)
        tmsg_close(&m);
    pthread_join(l->th, NULL);
    CU_ASSERT_EQUAL(l->rc, 0);
    transport_destroy(&l->t);
    server_destroy(&l->s);
}

static int send_push(transport_t *c, const float *g, err_t *err)
{
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_PUSH, 0);
    h.end = N_PARAMS;
    h.count = N_PARAMS;
    uint8_t hb[WIRE_HDR_MAX];
    tframe_t f[2] = {{hb, (size_t)wire_encode(&h, hb, sizeof hb)}, {g, N_PARAMS * sizeof *g}};
    return transport_send(c, f, 2, 2, err);
}

/* PULLs the whole shard into out. Returns 1 on a PULL_REPLY, 0 on timeout,
 * -1 on error (err says why). */
static int pull(transport_t *c, float *out, int timeout_ms, err_t *err)
{
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_PULL, 0);
    h.end = N_PARAMS;
    uint8_t hb[WIRE_HDR_MAX];
    tframe_t f = {hb, (size_t)wire_encode(&h, hb, sizeof hb)};
    if (transport_send(c, &f, 1, 1, err) != 0)
        return -1;
    tmsg_t m;
    int rc = transport_recv(c, &m, timeout_ms, err);
    if (rc != 1)
        return rc;
    wire_hdr_t r;
    int code;
    rc = m.n == 2 && wire_decode(m.data[0], m.size[0], &r, &code, err) == 0 &&
                 r.type == WIRE_PULL_REPLY && m.size[1] == N_PARAMS * sizeof(float)
             ? 1
             : -1;
    if (rc == 1)
        memcpy(out, m.data[1], m.size[1]);
    tmsg_close(&m);
    return rc;
}

static int has(const char *text, const char *needle)
{
    if (strstr(text, needle))
        return 1;
    fprintf(stderr, "\n  \"%s\" does not say \"%s\"\n", text, needle);
    return 0;
}

/* The job's client pushes and pulls through CURVE. */
static void test_curve_push_pull(void)
{
    transport_auth_t job;
    err_t err;
    CU_ASSERT_FATAL(transport_auth_generate(&job, &err) == 0);
    live_t l;
    CU_ASSERT_FATAL(live_start(&l, &job) == 0);
    size_t b, e;
    float before[N_PARAMS], got[N_PARAMS], g[N_PARAMS] = {1, 2, 3, 4, 5, 6};
    memcpy(before, server_params(l.s, &b, &e), sizeof before);
    uint64_t refused = transport_auth_refused();
    transport_t *c = transport_connect_auth(l.ep, &job, &err);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT(send_push(c, g, &err) == 0);
    CU_ASSERT_EQUAL(pull(c, got, 5000, &err), 1);
    for (int i = 0; i < N_PARAMS; i++)
        CU_ASSERT(fabsf(got[i] - (before[i] - g[i])) < 1e-6f);
    CU_ASSERT_EQUAL(transport_auth_refused(), refused);
    live_stop(&l, c);
    transport_destroy(&c);
    transport_auth_wipe(&job);
}

/* An intruder's PUSH and PULL get nothing back: transport_recv fails with a
 * message holding `says`, within timeout_ms and a second; then the job's
 * client finds the parameters unchanged. */
static void check_refused(const transport_auth_t *job, const transport_auth_t *intruder,
                          const char *says, int zap_refuses)
{
    live_t l;
    CU_ASSERT_FATAL(live_start(&l, job) == 0);
    size_t b, e;
    float before[N_PARAMS], got[N_PARAMS], g[N_PARAMS] = {9, 9, 9, 9, 9, 9};
    memcpy(before, server_params(l.s, &b, &e), sizeof before);
    uint64_t refused = transport_auth_refused();
    err_t err;
    transport_t *x = transport_connect_auth(l.ep, intruder, &err);
    CU_ASSERT_FATAL(x != NULL);
    /* queued (it never leaves), or refused already if the handshake was quick */
    int sent = send_push(x, g, &err);
    CU_ASSERT(sent == 0 || has(err.msg, says));
    const int timeout_ms = 1000;
    double t0 = now_s();
    int rc = pull(x, got, timeout_ms, &err);
    double waited = now_s() - t0;
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT(rc != -1 || has(err.msg, says));
    CU_ASSERT(rc != -1 || has(err.msg, "authentication"));
    CU_ASSERT(waited < timeout_ms / 1000.0 + 1.0);
    if (zap_refuses)
        CU_ASSERT(transport_auth_refused() > refused);
    /* libzmq drops a refused connection: a later send fails at once, saying
     * why, instead of waiting for ever for a connection that will not come */
    if (strstr(err.msg, "refused") || strstr(err.msg, "mechanism"))
        CU_ASSERT(send_push(x, g, &err) == -1 && has(err.msg, says));
    transport_destroy(&x);
    CU_ASSERT(memcmp(before, server_params(l.s, &b, &e), sizeof before) == 0);
    transport_t *c = transport_connect_auth(l.ep, job, &err);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL(pull(c, got, 5000, &err), 1);
    CU_ASSERT(memcmp(before, got, sizeof got) == 0);
    CU_ASSERT_EQUAL(server_version(l.s), 0);
    live_stop(&l, c);
    transport_destroy(&c);
}

/* A plain client (no CURVE) cannot talk to a CURVE server. */
static void test_plain_refused(void)
{
    transport_auth_t job;
    err_t err;
    CU_ASSERT_FATAL(transport_auth_generate(&job, &err) == 0);
    check_refused(&job, NULL, "another security mechanism", 0);
    transport_auth_wipe(&job);
}

/* A client with a CURVE key pair of its own (but the server's public key)
 * is refused by the ZAP handler, status 400. */
static void test_foreign_key_refused(void)
{
    transport_auth_t job, other;
    err_t err;
    CU_ASSERT_FATAL(transport_auth_generate(&job, &err) == 0);
    CU_ASSERT_FATAL(transport_auth_generate(&other, &err) == 0);
    memcpy(other.server_public, job.server_public, sizeof other.server_public);
    check_refused(&job, &other, "ZAP status 400", 1);
    /* the job's client public key with another secret key cannot pass either:
     * the handshake proves the secret, the ZAP handler checks the public key */
    memcpy(other.client_public, job.client_public, sizeof other.client_public);
    check_refused(&job, &other, "CURVE", 0);
    transport_auth_wipe(&job);
    transport_auth_wipe(&other);
}

/* A client that expects another server key never gets a session: the wait
 * ends at its timeout with a message naming authentication. */
static void test_wrong_server_key(void)
{
    transport_auth_t job, other;
    err_t err;
    CU_ASSERT_FATAL(transport_auth_generate(&job, &err) == 0);
    CU_ASSERT_FATAL(transport_auth_generate(&other, &err) == 0);
    check_refused(&job, &other, "no CURVE session", 0);
    transport_auth_wipe(&job);
    transport_auth_wipe(&other);
}

/* With auth none a foreign malformed push gets ERROR and changes nothing. */
static void test_none_malformed(void)
{
    transport_auth_t none = {.curve = 0};
    live_t l;
    CU_ASSERT_FATAL(live_start(&l, &none) == 0);
    size_t b, e;
    float before[N_PARAMS], got[N_PARAMS];
    memcpy(before, server_params(l.s, &b, &e), sizeof before);
    err_t err;
    transport_t *c = transport_connect_auth(l.ep, &none, &err);
    CU_ASSERT_FATAL(c != NULL);
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_PUSH, 0);
    h.end = N_PARAMS;
    h.count = N_PARAMS + 1; /* lies about its length */
    uint8_t hb[WIRE_HDR_MAX];
    float g[N_PARAMS + 1] = {5, 5, 5, 5, 5, 5, 5};
    tframe_t f[2] = {{hb, (size_t)wire_encode(&h, hb, sizeof hb)}, {g, sizeof g}};
    CU_ASSERT(transport_send(c, f, 2, 2, &err) == 0);
    tmsg_t m;
    CU_ASSERT_FATAL(transport_recv(c, &m, 5000, &err) == 1);
    wire_hdr_t r;
    int code;
    CU_ASSERT(wire_decode(m.data[0], m.size[0], &r, &code, &err) == 0);
    CU_ASSERT_EQUAL(r.type, WIRE_ERROR);
    CU_ASSERT_EQUAL(r.status, WIRE_E_LENGTH);
    tmsg_close(&m);
    CU_ASSERT_EQUAL(pull(c, got, 5000, &err), 1);
    CU_ASSERT(memcmp(before, got, sizeof got) == 0);
    live_stop(&l, c);
    transport_destroy(&c);
}

/* CURVE is refused on inproc://, which runs no handshake. */
static void test_inproc_refused(void)
{
    transport_auth_t job;
    err_t err;
    char ep[256];
    CU_ASSERT_FATAL(transport_auth_generate(&job, &err) == 0);
    transport_t *t = transport_listen_auth("inproc://pstrain-auth-test", &job, ep, sizeof ep, &err);
    CU_ASSERT(t == NULL);
    CU_ASSERT(t != NULL || has(err.msg, "only tcp://"));
    transport_destroy(&t);
    t = transport_connect_auth("inproc://pstrain-auth-test", &job, &err);
    CU_ASSERT(t == NULL);
    transport_destroy(&t);
    transport_auth_wipe(&job);
}

/* Key files: 0600 in a 0700 folder, read back equal; a folder without them
 * loads nothing; loose modes, a missing half, broken or mismatched keys are
 * refused with the file named. */
static void test_key_files(void)
{
    char dir[512], path[600], text[1024];
    snprintf(dir, sizeof dir, "%s/auth-keys/job", tests_tmp_dir());
    transport_auth_t a, b;
    err_t err;
    CU_ASSERT_EQUAL(transport_auth_load(&b, dir, &err), 0); /* not there yet */
    CU_ASSERT_FATAL(transport_auth_generate(&a, &err) == 0);
    CU_ASSERT_FATAL(transport_auth_save(&a, dir, &err) == 0);
    struct stat st;
    CU_ASSERT(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);
    snprintf(path, sizeof path, "%s/server.key", dir);
    CU_ASSERT(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    snprintf(path, sizeof path, "%s/client.key", dir);
    CU_ASSERT(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    CU_ASSERT_EQUAL(transport_auth_load(&b, dir, &err), 1);
    CU_ASSERT(b.curve == 1 && memcmp(&a, &b, sizeof a) == 0);
    /* the text is czmq's secret certificate: Z85 keys on their own lines */
    char *file = fs_read_all(path, NULL, &err);
    CU_ASSERT_FATAL(file != NULL);
    snprintf(text, sizeof text, "    public-key = \"%s\"\n", a.client_public);
    CU_ASSERT(strstr(file, text) != NULL);
    snprintf(text, sizeof text, "    secret-key = \"%s\"\n", a.client_secret);
    CU_ASSERT(strstr(file, text) != NULL);
    /* no temporary file left */
    snprintf(text, sizeof text, "ls -a '%s' | grep -c tmp > /dev/null", dir);
    CU_ASSERT(system(text) != 0);

    CU_ASSERT(chmod(path, 0644) == 0);
    CU_ASSERT_EQUAL(transport_auth_load(&b, dir, &err), -1);
    CU_ASSERT(has(err.msg, "client.key: other users may read it (mode 0644)"));
    CU_ASSERT(chmod(path, 0600) == 0);

    /* a public key that is not the secret key's */
    char *bad = strdup(file);
    CU_ASSERT_FATAL(bad != NULL);
    char *pk = strstr(bad, "public-key = \"");
    CU_ASSERT_FATAL(pk != NULL);
    pk += strlen("public-key = \"");
    memcpy(pk, a.server_public, 40);
    CU_ASSERT(unlink(path) == 0);
    FILE *fp = fopen(path, "w");
    CU_ASSERT_FATAL(fp != NULL);
    fputs(bad, fp);
    fclose(fp);
    CU_ASSERT(chmod(path, 0600) == 0);
    CU_ASSERT_EQUAL(transport_auth_load(&b, dir, &err), -1);
    CU_ASSERT(has(err.msg, "client.key: the public key is not the secret key's"));
    /* not Z85 */
    memcpy(pk, "~~~~", 4);
    fp = fopen(path, "w");
    CU_ASSERT_FATAL(fp != NULL);
    fputs(bad, fp);
    fclose(fp);
    CU_ASSERT_EQUAL(transport_auth_load(&b, dir, &err), -1);
    CU_ASSERT(has(err.msg, "not 40 characters of Z85"));
    free(bad);
    /* one file of two */
    CU_ASSERT(unlink(path) == 0);
    CU_ASSERT_EQUAL(transport_auth_load(&b, dir, &err), -1);
    CU_ASSERT(has(err.msg, "holds server.key but not client.key"));
    free(file);
    transport_auth_wipe(&a);
    transport_auth_wipe(&b);
}

static const char *CFG =
    "name = \"t_auth\";\n"
    "data = { limit = 1000; validation = 100; test_limit = 100; };\n"
    "model = { input = [1, 28, 28];\n"
    "  layers = ( { type = \"flatten\"; },\n"
    "             { type = \"dense\"; units = 10; activation = \"softmax\"; } ); };\n"
    "train = { epochs = 1; batch = 32; seed = 4; max_steps = 5; };\n"
    "cluster = { timeout_ms = 1500; };\n";

/* Loads CFG with the test data folder. Returns 0 or -1 (printed). */
static int load_cfg(job_config_t *cfg)
{
    char dirset[CFG_PATH_LEN + 16];
    snprintf(dirset, sizeof dirset, "data.dir=%s", tests_data_dir());
    const char *sets[] = {dirset};
    err_t err;
    if (config_load_text(cfg, "auth.cfg", CFG, sets, 1, 1, &err) != 0) {
        fprintf(stderr, "\n  %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* cluster.auth: curve unless the job says none; anything else is refused.
 * cluster.bind: 127.0.0.1 unless the job says otherwise, and a listener on
 * it binds loopback only. */
static void test_config_defaults(void)
{
    static job_config_t cfg, cfg2;
    CU_ASSERT_FATAL(load_cfg(&cfg) == 0);
    CU_ASSERT_EQUAL(cfg.cluster.auth, AUTH_CURVE);
    CU_ASSERT_STRING_EQUAL(cfg.cluster.bind, "127.0.0.1");
    err_t err;
    char dirset[CFG_PATH_LEN + 16];
    snprintf(dirset, sizeof dirset, "data.dir=%s", tests_data_dir());
    const char *sets[] = {dirset, "cluster.auth=none"};
    CU_ASSERT_EQUAL(config_load_text(&cfg2, "auth.cfg", CFG, sets, 2, 1, &err), 0);
    CU_ASSERT_EQUAL(cfg2.cluster.auth, AUTH_NONE);
    const char *bad[] = {dirset, "cluster.auth=tls"};
    CU_ASSERT_EQUAL(config_load_text(&cfg2, "auth.cfg", CFG, bad, 2, 1, &err), -1);
    CU_ASSERT(has(err.msg, "cluster.auth"));
    char ep[256];
    transport_t *t = transport_listen(cfg.cluster.bind, ep, sizeof ep, &err);
    CU_ASSERT_FATAL(t != NULL);
    CU_ASSERT(strncmp(ep, "tcp://127.0.0.1:", 16) == 0);
    transport_destroy(&t);
}

/* A server of the model in cfg, listening with auth, run in a thread. */
typedef struct {
    model_t *m;
    live_t l;
    cluster_saver_t saver; /* where the server writes its shard checkpoints */
} model_live_t;

static int model_live_start(model_live_t *ml, const job_config_t *cfg, const transport_auth_t *auth,
                            const char *out)
{
    memset(ml, 0, sizeof *ml);
    err_t err;
    ml->m = model_new(cfg, 1, &err);
    if (!ml->m)
        return -1;
    optim_params_t op;
    optim_params_from_config(&op, cfg);
    server_opts_t o = {.index = 0, .n_servers = 1, .n_trainers = 1, .consistency = CONS_BSP,
                       .total_steps = 5, .seed = cfg->train.seed, .table = model_params(ml->m),
                       .optim = op, .saver = cluster_saver(&ml->saver, out, CFG)};
    ml->l.s = server_new(&o, &err);
    if (!ml->l.s)
        return -1;
    ml->l.t = transport_listen_auth("127.0.0.1", auth, ml->l.ep, sizeof ml->l.ep, &err);
    if (!ml->l.t)
        return -1;
    return pthread_create(&ml->l.th, NULL, live_run, &ml->l) == 0 ? 0 : -1;
}

/* A trainer without the job's keys stops within cluster.timeout_ms (plus a
 * margin) with a message that names authentication. */
static void test_trainer_wrong_keys(void)
{
    static job_config_t cfg;
    CU_ASSERT_FATAL(load_cfg(&cfg) == 0);
    transport_auth_t job, other;
    err_t err;
    CU_ASSERT_FATAL(transport_auth_generate(&job, &err) == 0);
    CU_ASSERT_FATAL(transport_auth_generate(&other, &err) == 0);
    memcpy(other.server_public, job.server_public, sizeof other.server_public);
    char out[600];
    snprintf(out, sizeof out, "%s/auth-trainer", tests_tmp_dir());
    model_live_t ml;
    CU_ASSERT_FATAL(model_live_start(&ml, &cfg, &job, out) == 0);
    static dist_opts_t d;
    memset(&d, 0, sizeof d);
    d.n_trainers = 1;
    d.n_servers = 1;
    d.auth = &other;
    const char *eps[1] = {ml.l.ep}, *hosts[1] = {"localhost"};
    d.endpoints = eps;
    d.hosts = hosts;
    train_opts_t topts = {.out_dir = out, .config_text = CFG, .no_plot = 1};
    train_result_t res;
    double t0 = now_s();
    int rc = train_dist(&cfg, &d, &topts, &res, &err);
    double waited = now_s() - t0;
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT(rc != -1 || has(err.msg, "authentication"));
    CU_ASSERT(waited < cfg.cluster.timeout_ms / 1000.0 + 2.0);
    /* the job's own trainer then trains through the same server */
    d.auth = &job;
    rc = train_dist(&cfg, &d, &topts, &res, &err);
    if (rc != 0)
        fprintf(stderr, "\n  %s\n", err.msg);
    CU_ASSERT_EQUAL(rc, 0);
    pthread_join(ml.l.th, NULL);
    CU_ASSERT_EQUAL(ml.l.rc, 0);
    transport_destroy(&ml.l.t);
    server_destroy(&ml.l.s);
    model_destroy(&ml.m);
    transport_auth_wipe(&job);
    transport_auth_wipe(&other);
}

/* ---- under mpirun ---- */

static const char *bin(void)
{
    const char *b = getenv("PST_BIN");
    return b ? b : "build/pstrain";
}

/* Runs `mpirun -np 3 pstrain` on CFG with extra options into TMP/out;
 * returns the exit status, the log in TMP/out.log. */
static int mpirun_job(const char *extra, const char *out)
{
    char cfgp[600], cmd[4096];
    snprintf(cfgp, sizeof cfgp, "%s/auth.cfg", tests_tmp_dir());
    err_t err;
    if (fs_write_atomic(cfgp, CFG, strlen(CFG), &err) != 0)
        return -1;
    snprintf(cmd, sizeof cmd,
             "timeout 120 mpirun %s --oversubscribe -np 3 %s --config %s --set data.dir=%s "
             "--out %s/%s --no-plot %s > %s/%s.log 2>&1",
             getuid() == 0 ? "--allow-run-as-root" : "", bin(), cfgp, tests_data_dir(),
             tests_tmp_dir(), out, extra, tests_tmp_dir(), out);
    int rc = system(cmd);
    if (rc != 0 && !strstr(out, "bad_")) {
        char log[700];
        snprintf(log, sizeof log, "%s/%s.log", tests_tmp_dir(), out);
        char *t = fs_read_all(log, NULL, &err);
        fprintf(stderr, "\n  %s -> %d\n%s\n", cmd, rc, t ? t : "");
        free(t);
    }
    return rc;
}

static int log_has(const char *out, const char *needle)
{
    char log[700];
    snprintf(log, sizeof log, "%s/%s.log", tests_tmp_dir(), out);
    err_t err;
    char *t = fs_read_all(log, NULL, &err);
    int ok = t && has(t, needle);
    free(t);
    return ok;
}

/* The default job runs with CURVE; --keys DIR writes the keys once and the
 * next job uses them; cluster.auth = none trains and refuses --keys. */
static void test_mpirun(void)
{
    char keys[600], opt[700], path[700];
    snprintf(keys, sizeof keys, "%s/auth-mpi-keys", tests_tmp_dir());
    CU_ASSERT_EQUAL(mpirun_job("", "auth_default"), 0);
    CU_ASSERT(log_has("auth_default", "CURVE: key pairs made for this job (not stored)"));
    snprintf(opt, sizeof opt, "--keys %s", keys);
    CU_ASSERT_EQUAL(mpirun_job(opt, "auth_keys1"), 0);
    CU_ASSERT(log_has("auth_keys1", "stored in"));
    struct stat st;
    snprintf(path, sizeof path, "%s/server.key", keys);
    CU_ASSERT(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    transport_auth_t a, b;
    err_t err;
    CU_ASSERT_EQUAL(transport_auth_load(&a, keys, &err), 1);
    CU_ASSERT_EQUAL(mpirun_job(opt, "auth_keys2"), 0);
    CU_ASSERT(log_has("auth_keys2", "CURVE: key pairs from"));
    CU_ASSERT_EQUAL(transport_auth_load(&b, keys, &err), 1);
    CU_ASSERT(memcmp(&a, &b, sizeof a) == 0); /* used, not replaced */
    CU_ASSERT_EQUAL(mpirun_job("--set cluster.auth=none", "auth_none"), 0);
    snprintf(opt, sizeof opt, "--set cluster.auth=none --keys %s", keys);
    CU_ASSERT(mpirun_job(opt, "bad_auth_none_keys") != 0);
    CU_ASSERT(log_has("bad_auth_none_keys", "uses no keys"));
    transport_auth_wipe(&a);
    transport_auth_wipe(&b);
}

int test_auth_register(void)
{
    CU_pSuite s = CU_add_suite("auth", NULL, NULL);
    if (!s || !CU_add_test(s, "curve_push_pull", test_curve_push_pull) ||
        !CU_add_test(s, "plain_refused", test_plain_refused) ||
        !CU_add_test(s, "foreign_key_refused", test_foreign_key_refused) ||
        !CU_add_test(s, "wrong_server_key", test_wrong_server_key) ||
        !CU_add_test(s, "none_malformed", test_none_malformed) ||
        !CU_add_test(s, "inproc_refused", test_inproc_refused) ||
        !CU_add_test(s, "key_files", test_key_files) ||
        !CU_add_test(s, "config_defaults", test_config_defaults) ||
        !CU_add_test(s, "trainer_wrong_keys", test_trainer_wrong_keys) ||
        !CU_add_test(s, "mpirun", test_mpirun))
        return -1;
    return 0;
}
