/* test_fuzz.c - suite "fuzz": replays the fuzz targets' regression inputs
 * (tests/fuzz/regress/) and a sample of their corpus (tests/fuzz/corpus/)
 * through the same harness (tests/fuzz/harness.c), which checks what the
 * protocol promises, not only that nothing crashed; and feeds a server a
 * run of malformed messages: each must get one ERROR and leave the shard
 * as it was. `make fuzz` runs the libFuzzer targets themselves. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fuzz/criteo_check.h"
#include "fuzz/harness.h"
#include "tests.h"
#include "common/net/wire.h"

/* tests/fuzz, or PST_FUZZ_DIR */
static const char *fuzz_dir(void)
{
    const char *d = getenv("PST_FUZZ_DIR");
    return d ? d : "tests/fuzz";
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The file names in dir, sorted; *n of them (0 if dir is missing). */
static char **list_dir(const char *dir, int *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    char **names = NULL;
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, (size_t)cap * sizeof *names);
            CU_ASSERT_FATAL(nn != NULL);
            names = nn;
        }
        names[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (*n)
        qsort(names, (size_t)*n, sizeof *names, cmp_str);
    return names;
}

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = n > 0 ? (size_t)n : 0;
    return b;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Runs target (wire or server) on the files of DIR/sub/target: all of them,
 * or (sample) about max_files spread over the sorted list, the first 20 of
 * them and then those that fit in max_s seconds. Returns the number run;
 * every one must pass. */
static int replay(const char *sub, const char *target, int sample, int max_files, double max_s)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s/%s", fuzz_dir(), sub, target);
    int n, ran = 0;
    char **names = list_dir(dir, &n);
    int step = sample && n > max_files ? (n + max_files - 1) / max_files : 1;
    double t0 = now_s();
    int is_wire = strcmp(target, "wire") == 0;
    for (int i = 0; i < n; i += step) {
        if (sample && ran >= 20 && now_s() - t0 > max_s)
            break; /* at least 20, then as many as max_s allows */
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        size_t len = 0;
        uint8_t *b = read_all(path, &len);
        CU_ASSERT_FATAL(b != NULL);
        int rc;
        char msg[640] = "";
        if (is_wire) {
            rc = fuzz_wire_run(b, len, msg, sizeof msg);
        } else {
            fuzz_report_t rep;
            rc = fuzz_server_run(b, len, &rep);
            snprintf(msg, sizeof msg, "message %d: %s", rep.messages, rep.msg);
        }
        if (rc != 0)
            fprintf(stderr, "\n  fuzz_%s %s: %s\n", target, path, msg);
        CU_ASSERT_EQUAL(rc, 0);
        free(b);
        ran++;
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return ran;
}

/* Regression inputs committed so far (tests/fuzz/regress/TARGET/): a replay
 * that finds fewer ran from the wrong folder or lost some, and must fail
 * rather than pass on nothing. */
#define WIRE_REGRESS_MIN 11
#define SERVER_REGRESS_MIN 9

static void test_wire_regress(void)
{
    int n = replay("regress", "wire", 0, 0, 0);
    if (n < WIRE_REGRESS_MIN)
        fprintf(stderr, "\n  %s/regress/wire: %d inputs, expected at least %d\n", fuzz_dir(), n,
                WIRE_REGRESS_MIN);
    CU_ASSERT(n >= WIRE_REGRESS_MIN);
    /* the corpus has every message type: at least the seeds are there */
    CU_ASSERT(replay("corpus", "wire", 1, 400, 10.0) >= 18);
}

/* The click-log parser's regression inputs (tests/fuzz/regress/criteo/):
 * every one keeps the parser's promises (criteo_check.h), and the lines
 * known good or bad are accepted or refused as they must be. */
static void test_criteo_regress(void)
{
    static const struct {
        const char *name;
        int accepted; /* lines accepted */
    } expect[] = {
        {"good_rows", 3},    {"good_plain", 3},   {"cols_39", 0},     {"cols_41", 0},
        {"label_2", 0},      {"label_empty", 0},  {"int_overflow", 0}, {"int_not_number", 0},
        {"hex_9_digits", 0}, {"hex_not_hex", 0},  {"all_empty", 1},   {"crlf", 2},
        {"tabs_only", 0},    {"huge_line", 0},
    };
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/regress/criteo", fuzz_dir());
    int n;
    char **names = list_dir(dir, &n);
    int checked = 0;
    for (int i = 0; i < n; i++) {
        char path[2048], msg[640] = "";
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        size_t len = 0;
        uint8_t *b = read_all(path, &len);
        CU_ASSERT_FATAL(b != NULL);
        int accepted = -1;
        const int rc = fuzz_criteo_run(b, len, &accepted, msg, sizeof msg);
        if (rc != 0)
            fprintf(stderr, "\n  fuzz_criteo %s: %s\n", path, msg);
        CU_ASSERT_EQUAL(rc, 0);
        for (size_t k = 0; k < sizeof expect / sizeof expect[0]; k++)
            if (strcmp(names[i], expect[k].name) == 0) {
                if (accepted != expect[k].accepted)
                    fprintf(stderr, "\n  %s: %d lines accepted, expected %d\n", path, accepted,
                            expect[k].accepted);
                CU_ASSERT_EQUAL(accepted, expect[k].accepted);
                checked++;
            }
        free(b);
        free(names[i]);
    }
    free(names);
    CU_ASSERT_EQUAL(checked, (int)(sizeof expect / sizeof expect[0]));
    CU_ASSERT(n >= 18);
}

/* CHECKPOINT status 1 (config bit) writes under the test run's folder. */
static void use_ckpt_root(void)
{
    static char root[512];
    if (!root[0]) {
        snprintf(root, sizeof root, "%s/fuzz-ckpt", tests_tmp_dir());
        fuzz_set_ckpt_root(root);
    }
}

static void test_server_corpus(void)
{
    use_ckpt_root();
    CU_ASSERT(replay("corpus", "server", 1, 80, 8.0) >= 20);
}

/* Inputs that found bugs in server_handle / server_check_trainers. */
static void test_server_regress(void)
{
    use_ckpt_root();
    int n = replay("regress", "server", 0, 0, 0);
    if (n < SERVER_REGRESS_MIN)
        fprintf(stderr, "\n  %s/regress/server: %d inputs, expected at least %d\n", fuzz_dir(), n,
                SERVER_REGRESS_MIN);
    CU_ASSERT(n >= SERVER_REGRESS_MIN);
}

/* The sparse-table sessions of regress/server reach the server's row
 * handlers: the BSP one with malformed row messages has each of its 8 bad
 * row messages a step refused (2 steps; and the lost trainer's goodbye),
 * every refusal checked to have changed nothing; the clean one refuses
 * nothing; under SSP the server has no tables and refuses every row
 * message. */
static void test_server_rows(void)
{
    static const struct {
        const char *name;
        int refused;
    } runs[] = {{"rows-bsp-malformed-then-lost", 17}, {"rows-bsp-two-trainers", 0},
                {"rows-ssp-no-tables", 18}};
    for (size_t j = 0; j < sizeof runs / sizeof runs[0]; j++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/regress/server/%s", fuzz_dir(), runs[j].name);
        size_t len = 0;
        uint8_t *b = read_all(path, &len);
        CU_ASSERT_FATAL(b != NULL);
        fuzz_report_t rep;
        CU_ASSERT_EQUAL(fuzz_server_run(b, len, &rep), 0);
        if (rep.refused != runs[j].refused)
            fprintf(stderr, "\n  %s: %d refused, expected %d\n", runs[j].name, rep.refused,
                    runs[j].refused);
        CU_ASSERT_EQUAL(rep.refused, runs[j].refused);
        CU_ASSERT_EQUAL(rep.refused_checked, rep.refused);
        free(b);
    }
}

/* The header frame of h. */
static size_t enc(const wire_hdr_t *h, uint8_t *b)
{
    int n = wire_encode(h, b, WIRE_HDR_MAX);
    CU_ASSERT_FATAL(n > 0);
    return (size_t)n;
}

static wire_hdr_t mk(int type, int sender, int64_t clock, uint64_t b, uint64_t e, uint64_t count,
                     uint32_t req)
{
    wire_hdr_t h;
    wire_hdr_init(&h, type, sender);
    h.clock = clock;
    h.begin = b;
    h.end = e;
    h.count = count;
    h.req = req;
    return h;
}

/* A BSP server of shard [0, 9) with 2 trainers: trainer 0 pushes a piece
 * (held until trainer 1 pushes it too), then every kind of malformed
 * message. Each is answered with exactly one ERROR of the right code and
 * changes nothing: the harness compares parameters, optimizer state,
 * version and counters after each; the shard's parameters (server_params)
 * are the initial ones at the end. */
static void test_server_malformed(void)
{
    fuzz_buf_t f = {0};
    const uint8_t cfg[2] = {0x00 | 2 << 3, 0}; /* BSP, shard 0 of 2, Adam, 2 trainers */
    fuzz_buf_put(&f, cfg, 2);
    uint8_t hb[WIRE_HDR_MAX];
    float g[16];
    for (int i = 0; i < 16; i++)
        g[i] = 0.5f + (float)i;
    wire_hdr_t h = mk(WIRE_PUSH, 0, 0, 0, 4, 4, 1);
    fuzz_server_msg(&f, 0, 0, NULL, 0, hb, enc(&h, hb), g, 16); /* valid: held */
    int refused = 0;
    /* bytes that are not msgpack, a truncated header, another version */
    const uint8_t junk[] = {0xc1, 0xff, 0x00};
    fuzz_server_msg(&f, 0, 0, NULL, 0, junk, sizeof junk, NULL, 0), refused++;
    size_t n = enc(&h, hb);
    fuzz_server_msg(&f, 0, 0, NULL, 0, hb, n - 1, g, 16), refused++;
    h.version = 2;
    fuzz_server_msg(&f, 0, 0, NULL, 0, hb, enc(&h, hb), g, 16), refused++;
    h.version = 1;
    /* extra frames; a payload shorter than count; keys outside the shard;
     * no such trainer; top-k with more values than keys; a step the server is not at; a piece that
     * cuts trainer 0's; trainer 0's piece twice */
    fuzz_server_msg(&f, 2, 0, NULL, 0, hb, enc(&h, hb), g, 16), refused++;
    fuzz_server_msg(&f, 0, 1, NULL, 0, hb, enc(&h, hb), g, 12), refused++;
    h = mk(WIRE_PUSH, 0, 0, 8, 12, 4, 2);
    fuzz_server_msg(&f, 0, 0, NULL, 0, hb, enc(&h, hb), g, 16), refused++;
    h = mk(WIRE_PUSH, 5, 0, 0, 4, 4, 3);
    fuzz_server_msg(&f, 0, 2, NULL, 0, hb, enc(&h, hb), g, 16), refused++;
    h = mk(WIRE_PUSH, 1, 0, 0, 4, 5, 4);
    h.elem = WIRE_TOPK;
    fuzz_server_msg(&f, 0, 1, NULL, 0, hb, enc(&h, hb), g, 40), refused++;
    h = mk(WIRE_PUSH, 1, 3, 0, 4, 4, 5);
    fuzz_server_msg(&f, 0, 1, NULL, 0, hb, enc(&h, hb), g, 16), refused++;
    h = mk(WIRE_PUSH, 1, 0, 2, 6, 4, 6);
    fuzz_server_msg(&f, FUZZ_UNALIGNED, 1, NULL, 0, hb, enc(&h, hb), g, 16), refused++;
    h = mk(WIRE_PUSH, 0, 0, 0, 4, 4, 7);
    fuzz_server_msg(&f, 0, 0, NULL, 0, hb, enc(&h, hb), g, 16), refused++;
    /* replies sent to a server; a PULL with a payload; unknown type */
    h = mk(WIRE_PULL_REPLY, 1, 0, 0, 4, 4, 8);
    fuzz_server_msg(&f, 0, 1, NULL, 0, hb, enc(&h, hb), g, 16), refused++;
    h = mk(WIRE_ERROR, 1, 0, 0, 0, 3, 9);
    h.elem = WIRE_TEXT;
    h.status = WIRE_E_STATE;
    fuzz_server_msg(&f, 0, 1, NULL, 0, hb, enc(&h, hb), "bad", 3), refused++;
    h = mk(WIRE_PULL, 1, 0, 0, 4, 0, 10);
    fuzz_server_msg(&f, 0, 1, NULL, 0, hb, enc(&h, hb), g, 4), refused++;
    h = mk(12, 1, 0, 0, 4, 0, 11);
    fuzz_server_msg(&f, 0, 1, NULL, 0, hb, enc(&h, hb), NULL, 0), refused++;
    /* identities of 0, 2 ("t1": the PULL is served) and 257 bytes (nobody
     * to answer) */
    h = mk(WIRE_PULL, 1, 0, 0, 4, 0, 12);
    fuzz_server_msg(&f, 0, -1, (const uint8_t *)"", 0, hb, enc(&h, hb), NULL, 0);
    fuzz_server_msg(&f, 0, -1, (const uint8_t *)"t1", 2, hb, enc(&h, hb), NULL, 0);
    uint8_t long_peer[257];
    memset(long_peer, 'x', sizeof long_peer);
    fuzz_server_msg(&f, 0, -1, long_peer, sizeof long_peer, hb, enc(&h, hb), NULL, 0);

    fuzz_report_t rep;
    int rc = fuzz_server_run(f.b, f.n, &rep);
    if (rc != 0)
        fprintf(stderr, "\n  message %d: %s\n", rep.messages, rep.msg);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(rep.messages, 1 + refused + 3);
    CU_ASSERT_EQUAL(rep.refused, refused);
    CU_ASSERT_EQUAL(rep.refused_checked, refused); /* parameters and state compared */
    CU_ASSERT(rep.expected_refusals >= 10); /* the harness knew most in advance */
    CU_ASSERT_EQUAL(rep.replies, refused + 1);
    CU_ASSERT_EQUAL(rep.pulls_covered, 1);
    CU_ASSERT_EQUAL(rep.params_changed, 0);
    CU_ASSERT_EQUAL(rep.version, 0);

    /* the same server, then trainer 1's piece and the rest of the step from
     * both: the step is applied and a PULL is answered in full */
    h = mk(WIRE_PUSH, 1, 0, 0, 4, 4, 20);
    fuzz_server_msg(&f, 0, 1, NULL, 0, hb, enc(&h, hb), g, 16);
    h = mk(WIRE_PULL, 1, 1, 0, 9, 0, 21);
    fuzz_server_msg(&f, 0, 1, NULL, 0, hb, enc(&h, hb), NULL, 0);
    for (int t = 0; t < 2; t++) {
        h = mk(WIRE_PUSH, t, 0, 4, 9, 5, 22);
        fuzz_server_msg(&f, 0, t, NULL, 0, hb, enc(&h, hb), g, 20);
    }
    rc = fuzz_server_run(f.b, f.n, &rep);
    if (rc != 0)
        fprintf(stderr, "\n  message %d: %s\n", rep.messages, rep.msg);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(rep.refused, refused);
    CU_ASSERT_EQUAL(rep.params_changed, 1);
    CU_ASSERT_EQUAL(rep.version, 1);
    CU_ASSERT_EQUAL(rep.pulls_covered, 2);
    fuzz_buf_free(&f);
}

/* The wire harness refuses what it must: a header the spec calls malformed
 * is one, and a valid one decodes (its oracle agrees on both). */
static void test_wire_oracle(void)
{
    fuzz_buf_t f = {0};
    uint8_t hb[WIRE_HDR_MAX];
    wire_hdr_t h = mk(WIRE_PUSH, 3, 300, 0, 1000, 1000, 0xffffffffu);
    fuzz_wire_input(&f, hb, enc(&h, hb), 4000);
    char msg[512] = "";
    CU_ASSERT_EQUAL(fuzz_wire_run(f.b, f.n, msg, sizeof msg), 0);
    f.n = 0;
    const uint8_t arr32[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
    fuzz_wire_input(&f, arr32, sizeof arr32, 0);
    CU_ASSERT_EQUAL(fuzz_wire_run(f.b, f.n, msg, sizeof msg), 0);
    /* STATS payloads: a server's, cut short, and a map of 2^32-1 entries */
    wire_stats_t st = {.pushes = 1ull << 40, .version = 7, .first_lost = -1, .next_lead = 2};
    uint8_t sb[WIRE_STATS_MAX];
    int n = wire_stats_encode(&st, sb, sizeof sb);
    CU_ASSERT_FATAL(n > 0);
    const size_t cuts[3] = {(size_t)n, (size_t)n - 3, 0};
    for (int j = 0; j < 3; j++) {
        f.n = 0;
        fuzz_wire_stats_input(&f, sb, cuts[j]);
        CU_ASSERT_EQUAL(fuzz_wire_run(f.b, f.n, msg, sizeof msg), 0);
    }
    const uint8_t map32[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa4, 'l', 'o', 's', 't', 0x01};
    f.n = 0;
    fuzz_wire_stats_input(&f, map32, sizeof map32);
    CU_ASSERT_EQUAL(fuzz_wire_run(f.b, f.n, msg, sizeof msg), 0);
    if (msg[0])
        fprintf(stderr, "\n  %s\n", msg);
    fuzz_buf_free(&f);
}

int test_fuzz_register(void)
{
    CU_pSuite s = CU_add_suite("fuzz", NULL, NULL);
    if (!s || !CU_add_test(s, "wire_oracle", test_wire_oracle) ||
        !CU_add_test(s, "wire_regress", test_wire_regress) ||
        !CU_add_test(s, "server_malformed", test_server_malformed) ||
        !CU_add_test(s, "server_corpus", test_server_corpus) ||
        !CU_add_test(s, "server_regress", test_server_regress) ||
        !CU_add_test(s, "server_rows", test_server_rows) ||
        !CU_add_test(s, "criteo_regress", test_criteo_regress))
        return -1;
    return 0;
}
