/* test_ctr.c - suite "ctr": the Criteo line parser (good lines, every kind of
 * bad line, empty fields, log(1 + x), % rows), the click-log stream (byte
 * ranges and whole files per trainer cover every line once, folders, globs,
 * gzip, shuffle determinism, the bounded queue, bad lines stopped or skipped,
 * epochs) and the synthetic generator (determinism, lines generated alone,
 * the planted model's AUC, the gen-ctr command). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>

#include "common/data/criteo.h"
#include "common/data/ctr_stream.h"
#include "common/data/ctr_synth.h"
#include "launch/gen_ctr.h"
#include "tests.h"

/* Records a failure with a formatted message when cond is false (in loops). */
#define CHECK_CASE(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            char m_[1024];                                                                         \
            snprintf(m_, sizeof m_, __VA_ARGS__);                                                  \
            CU_assertImplementation(CU_FALSE, __LINE__, m_, __FILE__, "", CU_FALSE);               \
        }                                                                                          \
    } while (0)

/* Fails the current test, showing msg, unless msg contains needle. */
#define LINE_CAP 1024
#define MAX_IDS 100000

/* Joins tests_tmp_dir() and name into buf. */
static const char *tmp_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tests_tmp_dir(), name);
    return buf;
}

/* Writes a good line with id i (C1 = hex i) and tag (C2 = hex tag) into buf;
 * its length varies with i (empty and long values). Returns its length. */
static size_t good_line(char *buf, unsigned i, unsigned tag)
{
    int n = snprintf(buf, LINE_CAP, "%u", i % 2);
    for (int j = 0; j < CRITEO_NUM; j++) {
        if ((i + (unsigned)j) % 5 == 0)
            n += snprintf(buf + n, LINE_CAP - (size_t)n, "\t");
        else
            n += snprintf(buf + n, LINE_CAP - (size_t)n, "\t%u", (i * (unsigned)(j + 7)) %
                                                                     (j == 2 ? 1000003u : 10u));
    }
    n += snprintf(buf + n, LINE_CAP - (size_t)n, "\t%x\t%x", i, tag);
    for (unsigned f = 2; f < CRITEO_CAT; f++) {
        if ((i + f) % 3 == 0)
            n += snprintf(buf + n, LINE_CAP - (size_t)n, "\t");
        else
            n += snprintf(buf + n, LINE_CAP - (size_t)n, "\t%08x", (i * 2654435761u) ^ f);
    }
    n += snprintf(buf + n, LINE_CAP - (size_t)n, "\n");
    return (size_t)n;
}

/* Writes lines with ids [first, first + n) and tag to path (gzip if gz);
 * bad_every > 0 makes every bad_every-th line (1-based) bad; final_nl 0
 * leaves the last line without its '\n'. Returns 0 or -1. */
static int write_log(const char *path, unsigned first, unsigned n, unsigned tag, int gz,
                     unsigned bad_every, int final_nl)
{
    char line[LINE_CAP];
    gzFile z = gz ? gzopen(path, "wb") : NULL;
    FILE *f = gz ? NULL : fopen(path, "wb");
    if (!z && !f)
        return -1;
    int ok = 1;
    for (unsigned k = 0; k < n && ok; k++) {
        size_t len = good_line(line, first + k, tag);
        if (bad_every && (k + 1) % bad_every == 0) { /* C26 = zz: not hex */
            len = (size_t)(strrchr(line, '\t') - line) + 1;
            memcpy(line + len, "zz\n", 3);
            len += 3;
        }
        if (k + 1 == n && !final_nl)
            len--;
        ok = gz ? gzwrite(z, line, (unsigned)len) == (int)len : fwrite(line, 1, len, f) == len;
    }
    ok = (gz ? gzclose(z) == Z_OK : fclose(f) == 0) && ok;
    return ok ? 0 : -1;
}

/* Reads the rest of the epoch of s: counts ids (C1) into seen[] (and tags
 * into *tags if not NULL, by id), and the order into order[] (up to max).
 * Returns the samples read, or -1 with err. */
static long drain(ctr_stream_t *s, int *seen, unsigned *tags, unsigned *order, long max,
                  err_t *err)
{
    ctr_batch_t b;
    long total = 0;
    if (ctr_batch_alloc(&b, 37, err) != 0)
        return -1;
    int got;
    while ((got = ctr_stream_next(s, &b, 37, err)) > 0) {
        for (int k = 0; k < got; k++) {
            uint64_t id = b.cat[(size_t)k * CRITEO_CAT];
            if (id < MAX_IDS && seen)
                seen[id]++;
            if (id < MAX_IDS && tags)
                tags[id] = (unsigned)b.cat[(size_t)k * CRITEO_CAT + 1];
            if (order && total < max)
                order[total] = (unsigned)id;
            total++;
        }
    }
    ctr_batch_free(&b);
    return got < 0 ? -1 : total;
}

/* ------------------------------------------------------------------ parser */

static void test_parse_good(void)
{
    char line[LINE_CAP];
    criteo_sample_t x;
    criteo_where_t w = {"t.txt", 3};
    err_t err = {{0}};
    /* label 1; I1 = 5, I2 empty, I3 = -3, I4 = 0, I5 = 1000000, I6..I13 = 1; C1 = 68fd1e64,
     * C2 empty, C3 = ABCDEF01 (upper case), C4..C26 = 1 */
    int n = snprintf(line, sizeof line, "1\t5\t\t-3\t0\t1000000");
    for (int j = 5; j < CRITEO_NUM; j++)
        n += snprintf(line + n, sizeof line - (size_t)n, "\t1");
    n += snprintf(line + n, sizeof line - (size_t)n, "\t68fd1e64\t\tABCDEF01");
    for (int f = 3; f < CRITEO_CAT; f++)
        n += snprintf(line + n, sizeof line - (size_t)n, "\t1");
    CU_ASSERT_EQUAL_FATAL(criteo_parse(line, (size_t)n, NULL, &x, &w, &err), 0);
    CU_ASSERT_EQUAL(x.label, 1.0f);
    CU_ASSERT_DOUBLE_EQUAL(x.num[0], log(6.0), 1e-6);
    CU_ASSERT_EQUAL(x.num[1], 0.0f);  /* empty */
    CU_ASSERT_EQUAL(x.num[2], 0.0f);  /* negative: clamped */
    CU_ASSERT_EQUAL(x.num[3], 0.0f);
    CU_ASSERT_DOUBLE_EQUAL(x.num[4], log(1000001.0), 1e-5);
    CU_ASSERT_DOUBLE_EQUAL(x.num[12], log(2.0), 1e-6);
    CU_ASSERT_EQUAL(x.cat[0], 0x68fd1e64u);
    CU_ASSERT_EQUAL(x.cat[1], CRITEO_MISSING);
    CU_ASSERT_EQUAL(x.cat[2], 0xABCDEF01u);
    CU_ASSERT_EQUAL(x.cat[25], 1u);
    CU_ASSERT_EQUAL(x.missing, 1u << 1);

    /* a Windows line end; label 0; every field empty */
    n = snprintf(line, sizeof line, "0");
    for (int c = 1; c < CRITEO_COLS; c++)
        n += snprintf(line + n, sizeof line - (size_t)n, "\t");
    n += snprintf(line + n, sizeof line - (size_t)n, "\r");
    CU_ASSERT_EQUAL_FATAL(criteo_parse(line, (size_t)n, NULL, &x, &w, &err), 0);
    CU_ASSERT_EQUAL(x.label, 0.0f);
    CU_ASSERT_EQUAL(x.missing, (1u << CRITEO_CAT) - 1);
    for (int j = 0; j < CRITEO_NUM; j++)
        CHECK_CASE(x.num[j] == 0.0f, "I%d of an empty line", j + 1);
    for (int f = 0; f < CRITEO_CAT; f++)
        CHECK_CASE(x.cat[f] == CRITEO_MISSING, "C%d of an empty line", f + 1);
}

static void test_parse_rows(void)
{
    char line[LINE_CAP];
    criteo_sample_t x;
    criteo_where_t w = {"t.txt", 1};
    err_t err = {{0}};
    uint32_t rows[CRITEO_CAT];
    for (int f = 0; f < CRITEO_CAT; f++)
        rows[f] = 1000u + (uint32_t)f;
    rows[5] = 0; /* no reduction for C6 */
    size_t n = good_line(line, 12345, 0xfffffff0u);
    CU_ASSERT_EQUAL_FATAL(criteo_parse(line, n - 1, rows, &x, &w, &err), 0);
    CU_ASSERT_EQUAL(x.cat[0], 12345u % 1000u);
    CU_ASSERT_EQUAL(x.cat[1], 0xfffffff0u % 1001u);
    criteo_sample_t raw;
    CU_ASSERT_EQUAL_FATAL(criteo_parse(line, n - 1, NULL, &raw, &w, &err), 0);
    for (int f = 0; f < CRITEO_CAT; f++)
        CHECK_CASE(x.cat[f] == (rows[f] ? raw.cat[f] % rows[f] : raw.cat[f]),
                   "C%d: %llu against raw %llu", f + 1, (unsigned long long)x.cat[f],
                   (unsigned long long)raw.cat[f]);
    CU_ASSERT_EQUAL(x.missing, raw.missing);
    CU_ASSERT_NOT_EQUAL(raw.missing, 0u); /* good_line leaves some empty */
    for (int f = 0; f < CRITEO_CAT; f++)
        if (raw.missing & (1u << f))
            CHECK_CASE(x.cat[f] == (rows[f] ? CRITEO_MISSING % rows[f] : CRITEO_MISSING),
                       "missing C%d", f + 1);
}

/* Expects line (a good line with column c replaced by value, or the whole
 * line text when c < 0) to be refused with "t.txt:42: " + what. */
static void expect_bad(int c, const char *value, const char *what)
{
    char good[LINE_CAP], line[LINE_CAP], needle[256];
    size_t n = good_line(good, 7, 9) - 1;
    good[n] = '\0';
    if (c < 0) {
        snprintf(line, sizeof line, "%s", value);
    } else { /* cut good at its tabs and put value in column c */
        char *col[CRITEO_COLS], *p = good;
        for (int k = 0; k < CRITEO_COLS; k++) {
            col[k] = p;
            p = strchr(p, '\t');
            if (p)
                *p++ = '\0';
        }
        size_t used = 0;
        for (int k = 0; k < CRITEO_COLS; k++)
            used += (size_t)snprintf(line + used, sizeof line - used, "%s%s", k ? "\t" : "",
                                     k == c ? value : col[k]);
    }
    criteo_sample_t x;
    criteo_where_t w = {"t.txt", 42};
    err_t err = {{0}};
    CU_ASSERT_EQUAL(criteo_parse(line, strlen(line), NULL, &x, &w, &err), -1);
    snprintf(needle, sizeof needle, "t.txt:42: %s", what);
    TESTS_ASSERT_HAS(err.msg, needle);
}

static void test_parse_bad(void)
{
    char line[LINE_CAP];
    size_t n = good_line(line, 3, 4) - 1;
    line[n] = '\0';
    char *last_tab = strrchr(line, '\t');
    *last_tab = '\0'; /* 39 columns */
    expect_bad(-1, line, "39 columns, a Criteo line has 40");
    *last_tab = '\t';
    strcat(line, "\tff"); /* 41 columns */
    expect_bad(-1, line, "41 columns, a Criteo line has 40");
    expect_bad(-1, "", "1 column, a Criteo line has 40");
    expect_bad(0, "2", "label: '2' is not 0 or 1");
    expect_bad(0, "", "label: '' is not 0 or 1");
    expect_bad(0, "01", "label: '01' is not 0 or 1");
    expect_bad(3, "1.5", "I3: '1.5' is not an integer");
    expect_bad(1, "abc", "I1: 'abc' is not an integer");
    expect_bad(13, "-", "I13: '-' is not an integer");
    expect_bad(5, "1234567890123456789", "I5: '1234567890123456789' is not an integer");
    expect_bad(20, "zz12", "C7: 'zz12' is not hexadecimal");
    expect_bad(14, "68fd 1e6", "C1: '68fd 1e6' is not hexadecimal");
    expect_bad(39, "123456789", "C26: '123456789' has more than 8 hex digits");
    expect_bad(39, "-1", "C26: '-1' is not hexadecimal");
}

/* ------------------------------------------------------------------ stream */

/* Opens a stream of source for rank of ranks with the given shuffle and
 * bad-line rule (batches of 50, 3 in the queue). Returns it, or NULL with err. */
static ctr_stream_t *try_stream(const char *source, int rank, int ranks, size_t shuffle,
                                uint64_t seed, ctr_bad_lines_t bad, err_t *err)
{
    ctr_stream_opts_t o = {.source = source, .name = "data.train", .rank = rank, .ranks = ranks,
                           .seed = seed, .shuffle_buffer = shuffle, .bad_lines = bad,
                           .batch = 50, .queue_depth = 3};
    return ctr_stream_new(&o, err);
}

/* As try_stream, showing the message when it fails (the caller asserts). */
static ctr_stream_t *open_stream(const char *source, int rank, int ranks, size_t shuffle,
                                 uint64_t seed, ctr_bad_lines_t bad, err_t *err)
{
    ctr_stream_t *s = try_stream(source, rank, ranks, shuffle, seed, bad, err);
    if (!s)
        fprintf(stderr, "\n    %s\n", err->msg);
    return s;
}

/* Checks that ids [0, n) were each seen exactly once and nothing else. */
static void check_once(const int *seen, unsigned n, const char *what)
{
    for (unsigned i = 0; i < MAX_IDS; i++)
        CHECK_CASE(seen[i] == (i < n), "%s: id %u read %d times", what, i, seen[i]);
}

static void test_stream_ranges(void)
{
    char path[1024];
    const unsigned n = 2000;
    static int seen[MAX_IDS];
    err_t err = {{0}};
    for (int nl = 0; nl < 2; nl++) {
        tmp_path(path, sizeof path, nl ? "ranges.txt" : "ranges_nonl.txt");
        CU_ASSERT_EQUAL_FATAL(write_log(path, 0, n, 0, 0, 0, nl), 0);
        for (int T = 1; T <= 3; T++) {
            memset(seen, 0, sizeof seen);
            long total = 0, least = n;
            for (int t = 0; t < T; t++) {
                ctr_stream_t *s = open_stream(path, t, T, 0, 0, CTR_BAD_STOP, &err);
                CU_ASSERT_PTR_NOT_NULL_FATAL(s);
                long got = drain(s, seen, NULL, NULL, 0, &err);
                CHECK_CASE(got > 0, "T=%d t=%d: %ld samples (%s)", T, t, got, err.msg);
                uint64_t counted = 0; /* what the trainers count before they start */
                CU_ASSERT_EQUAL(ctr_count_part_lines(path, NULL, t, T, &counted, &err), 0);
                CHECK_CASE((long)counted == got, "T=%d t=%d: %llu lines counted, %ld read", T,
                           t, (unsigned long long)counted, got);
                total += got;
                least = got < least ? got : least;
                ctr_stream_destroy(&s);
                CU_ASSERT_PTR_NULL(s);
            }
            char what[64];
            snprintf(what, sizeof what, "T=%d%s", T, nl ? "" : ", no final newline");
            CHECK_CASE(total == (long)n, "%s: %ld samples", what, total);
            CHECK_CASE(least > (long)n / T / 2, "%s: a trainer got only %ld", what, least);
            check_once(seen, n, what);
        }
    }
}

/* Makes folder NAME in the test directory with `files` logs part-K.txt of
 * lines[K] lines each (tag K; ids consecutive from 0), a hidden file and a
 * .meta.json that must be ignored. Returns the total number of lines. */
static unsigned make_folder(char *dir, size_t len, const char *name, int files,
                            const unsigned *lines, int gz)
{
    char path[1200];
    tmp_path(dir, len, name);
    mkdir(dir, 0755);
    unsigned first = 0;
    for (int k = 0; k < files; k++) {
        snprintf(path, sizeof path, "%s/part-%d.txt%s", dir, k, gz ? ".gz" : "");
        CU_ASSERT_EQUAL(write_log(path, first, lines[k], (unsigned)k, gz, 0, 1), 0);
        first += lines[k];
    }
    snprintf(path, sizeof path, "%s/.hidden", dir);
    CU_ASSERT_EQUAL(write_log(path, 0, 3, 0, 0, 1, 1), 0);
    snprintf(path, sizeof path, "%s/part-0.txt.meta.json", dir);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("{\"lines\": 1}\n", f);
        fclose(f);
    }
    return first;
}

static void test_stream_files(void)
{
    char dir[1024], glob_src[1200];
    static int seen[MAX_IDS];
    static unsigned tags[MAX_IDS];
    const unsigned lines[5] = {120, 7, 300, 1, 55};
    err_t err = {{0}};
    unsigned n = make_folder(dir, sizeof dir, "folder", 5, lines, 0);
    snprintf(glob_src, sizeof glob_src, "%s/part-*.txt", dir);
    const char *sources[2] = {dir, glob_src};
    for (int g = 0; g < 2; g++) {
        memset(seen, 0, sizeof seen);
        for (int t = 0; t < 2; t++) {
            ctr_stream_t *s = open_stream(sources[g], t, 2, 0, 0, CTR_BAD_STOP, &err);
            CU_ASSERT_PTR_NOT_NULL_FATAL(s);
            memset(tags, 0xff, sizeof tags);
            long got = drain(s, seen, tags, NULL, 0, &err);
            ctr_stream_stats_t st;
            ctr_stream_stats(s, &st);
            CU_ASSERT_EQUAL(st.parts, t == 0 ? 3 : 2); /* files 0, 2, 4 and 1, 3 */
            CU_ASSERT_EQUAL(got, t == 0 ? 120 + 300 + 55 : 7 + 1);
            uint64_t counted = 0;
            CU_ASSERT_EQUAL(ctr_count_part_lines(sources[g], NULL, t, 2, &counted, &err), 0);
            CU_ASSERT_EQUAL((long)counted, got);
            for (unsigned i = 0; i < n; i++)
                if (tags[i] != 0xffffffffu)
                    CHECK_CASE((int)tags[i] % 2 == t, "%s: trainer %d read file %u", sources[g],
                               t, tags[i]);
            ctr_stream_destroy(&s);
        }
        check_once(seen, n, sources[g]);
    }
    /* fewer files than trainers: byte ranges over the files end to end */
    const unsigned two[2] = {500, 37};
    n = make_folder(dir, sizeof dir, "folder2", 2, two, 0);
    memset(seen, 0, sizeof seen);
    for (int t = 0; t < 3; t++) {
        ctr_stream_t *s = open_stream(dir, t, 3, 0, 0, CTR_BAD_STOP, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        const long got = drain(s, seen, NULL, NULL, 0, &err);
        CU_ASSERT(got > 100);
        uint64_t counted = 0;
        CU_ASSERT_EQUAL(ctr_count_part_lines(dir, NULL, t, 3, &counted, &err), 0);
        CU_ASSERT_EQUAL((long)counted, got);
        ctr_stream_destroy(&s);
    }
    check_once(seen, n, "2 files, 3 trainers");
}

static void test_stream_gzip(void)
{
    char dir[1024], path[1200];
    static int seen[MAX_IDS];
    static unsigned order_gz[MAX_IDS], order_txt[MAX_IDS];
    const unsigned lines[2] = {900, 101};
    err_t err = {{0}};
    unsigned n = make_folder(dir, sizeof dir, "gzfolder", 2, lines, 1);
    memset(seen, 0, sizeof seen);
    for (int t = 0; t < 2; t++) {
        ctr_stream_t *s = open_stream(dir, t, 2, 0, 0, CTR_BAD_STOP, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT_EQUAL(drain(s, seen, NULL, NULL, 0, &err), t == 0 ? 900 : 101);
        ctr_stream_destroy(&s);
    }
    check_once(seen, n, "2 gzip files, 2 trainers");

    /* the same lines plain and gzip (named without .gz: content decides) */
    tmp_path(path, sizeof path, "plain.txt");
    CU_ASSERT_EQUAL_FATAL(write_log(path, 0, 700, 3, 0, 0, 1), 0);
    ctr_stream_t *s = open_stream(path, 0, 1, 0, 0, CTR_BAD_STOP, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(drain(s, NULL, NULL, order_txt, MAX_IDS, &err), 700);
    ctr_stream_destroy(&s);
    tmp_path(path, sizeof path, "zipped.txt");
    CU_ASSERT_EQUAL_FATAL(write_log(path, 0, 700, 3, 1, 0, 1), 0);
    s = open_stream(path, 0, 1, 0, 0, CTR_BAD_STOP, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(drain(s, NULL, NULL, order_gz, MAX_IDS, &err), 700);
    ctr_stream_destroy(&s);
    CU_ASSERT_EQUAL(memcmp(order_gz, order_txt, 700 * sizeof *order_gz), 0);

    /* one gzip file cannot be cut for two trainers */
    s = try_stream(path, 1, 2, 0, 0, CTR_BAD_STOP, &err);
    CU_ASSERT_PTR_NULL(s);
    TESTS_ASSERT_HAS(err.msg, "data.train: 1 file for 2 trainers, and ");
    TESTS_ASSERT_HAS(err.msg, "zipped.txt is gzip-compressed: a .gz file cannot be cut");
}

/* Reads path (one file) with shuffle buffer k and seed into order[];
 * returns the number of samples. */
static long read_order(const char *path, size_t k, uint64_t seed, uint64_t epoch,
                       unsigned *order)
{
    err_t err = {{0}};
    ctr_stream_t *s = open_stream(path, 0, 1, k, seed, CTR_BAD_STOP, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    if (epoch)
        CU_ASSERT_EQUAL(ctr_stream_rewind(s, epoch, &err), 0);
    long got = drain(s, NULL, NULL, order, MAX_IDS, &err);
    ctr_stream_destroy(&s);
    return got;
}

static void test_stream_shuffle(void)
{
    char path[1024];
    const unsigned n = 3000;
    static unsigned a[MAX_IDS], b[MAX_IDS], c[MAX_IDS], e[MAX_IDS];
    static int seen[MAX_IDS];
    tmp_path(path, sizeof path, "shuffle.txt");
    CU_ASSERT_EQUAL_FATAL(write_log(path, 0, n, 0, 0, 0, 1), 0);
    for (size_t k = 0; k <= 1; k++) { /* 0 and 1: file order */
        CU_ASSERT_EQUAL(read_order(path, k, 5, 0, a), n);
        for (unsigned i = 0; i < n; i++)
            CHECK_CASE(a[i] == i, "buffer %zu: position %u holds %u", k, i, a[i]);
    }
    CU_ASSERT_EQUAL(read_order(path, 256, 1, 0, a), n);
    CU_ASSERT_EQUAL(read_order(path, 256, 1, 0, b), n);
    CU_ASSERT_EQUAL(read_order(path, 256, 2, 0, c), n);
    CU_ASSERT_EQUAL(read_order(path, 256, 1, 1, e), n); /* epoch 1 */
    CU_ASSERT_EQUAL(memcmp(a, b, n * sizeof *a), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(a, c, n * sizeof *a), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(a, e, n * sizeof *a), 0);
    unsigned in_place = 0;
    memset(seen, 0, sizeof seen);
    for (unsigned i = 0; i < n; i++) {
        in_place += a[i] == i;
        seen[a[i]]++;
    }
    check_once(seen, n, "shuffled");
    CU_ASSERT(in_place < n / 20);
    /* a buffer larger than the file: one random permutation */
    CU_ASSERT_EQUAL(read_order(path, 100000, 3, 0, a), n);
    memset(seen, 0, sizeof seen);
    for (unsigned i = 0; i < n; i++)
        seen[a[i]]++;
    check_once(seen, n, "buffer larger than the file");
}

/* Waits until the queue of s has been full (depth batches) and its parsed
 * count has stayed still for a few looks (the reader is blocked on the
 * full queue), at most a few seconds. Returns the count. */
static uint64_t parsed_when_still(ctr_stream_t *s, int depth)
{
    ctr_stream_stats_t st;
    uint64_t last = UINT64_MAX;
    int still = 0;
    struct timespec pause = {0, 20 * 1000 * 1000};
    for (int i = 0; i < 250 && still < 3; i++) {
        nanosleep(&pause, NULL);
        ctr_stream_stats(s, &st);
        still = st.queued_peak == depth && st.parsed == last ? still + 1 : 0;
        last = st.parsed;
    }
    return st.parsed;
}

static void test_stream_bounded(void)
{
    char path[1024];
    const unsigned n = 30000;
    err_t err = {{0}};
    tmp_path(path, sizeof path, "bounded.txt");
    CU_ASSERT_EQUAL_FATAL(write_log(path, 0, n, 0, 0, 0, 1), 0);
    for (size_t k = 0; k <= 100; k += 100) {
        ctr_stream_opts_t o = {.source = path, .shuffle_buffer = k, .batch = 16,
                               .queue_depth = 2};
        ctr_stream_t *s = ctr_stream_new(&o, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        uint64_t parsed = parsed_when_still(s, 2);
        /* 2 queued batches, the one being filled, the sample in hand, the buffer */
        CHECK_CASE(parsed >= 2 * 16 && parsed <= 3 * 16 + 1 + k,
                   "buffer %zu: %llu lines parsed ahead of the consumer", k,
                   (unsigned long long)parsed);
        ctr_stream_stats_t st;
        ctr_stream_stats(s, &st);
        CU_ASSERT_EQUAL(st.queued_peak, 2);
        CU_ASSERT(st.memory < (2u << 20) + k * sizeof(criteo_sample_t));
        CU_ASSERT_EQUAL(drain(s, NULL, NULL, NULL, 0, &err), n);
        ctr_stream_stats(s, &st);
        CU_ASSERT(st.queued_peak <= 2);
        CU_ASSERT_EQUAL(st.samples, n);
        CU_ASSERT_EQUAL(st.parsed, n);
        ctr_stream_destroy(&s);
    }
}

static void test_stream_bad_lines(void)
{
    char path[1024], needle[1200];
    const unsigned n = 100;
    err_t err = {{0}};
    tmp_path(path, sizeof path, "bad.txt");
    CU_ASSERT_EQUAL_FATAL(write_log(path, 0, n, 0, 0, 30, 1), 0); /* lines 30, 60, 90 */

    /* stop: the samples before line 30 come first, then the error */
    ctr_stream_t *s = open_stream(path, 0, 1, 0, 0, CTR_BAD_STOP, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    long got = drain(s, NULL, NULL, NULL, 0, &err);
    CU_ASSERT_EQUAL(got, -1);
    snprintf(needle, sizeof needle, "%s:30: C26: 'zz' is not hexadecimal", path);
    TESTS_ASSERT_HAS(err.msg, needle);
    ctr_stream_stats_t st;
    ctr_stream_stats(s, &st);
    CU_ASSERT_EQUAL(st.parsed, 29);
    CU_ASSERT_EQUAL(st.samples, 29);
    ctr_batch_t b;
    CU_ASSERT_EQUAL_FATAL(ctr_batch_alloc(&b, 8, &err), 0);
    CU_ASSERT_EQUAL(ctr_stream_next(s, &b, 8, &err), -1); /* and again: never hangs */
    ctr_stream_destroy(&s);

    /* stop, in a byte range that starts mid-file: the line number is the file's */
    int found = 0;
    for (int t = 0; t < 3; t++) {
        s = open_stream(path, t, 3, 0, 0, CTR_BAD_STOP, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        err.msg[0] = '\0';
        if (drain(s, NULL, NULL, NULL, 0, &err) < 0) {
            snprintf(needle, sizeof needle, "%s:%d: C26", path, t == 0 ? 30 : t == 1 ? 60 : 90);
            TESTS_ASSERT_HAS(err.msg, needle);
            found++;
        }
        ctr_stream_destroy(&s);
    }
    CU_ASSERT_EQUAL(found, 3);

    /* skip: counted */
    s = open_stream(path, 0, 1, 16, 0, CTR_BAD_SKIP, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(drain(s, NULL, NULL, NULL, 0, &err), n - 3);
    ctr_stream_stats(s, &st);
    CU_ASSERT_EQUAL(st.bad_lines, 3);
    CU_ASSERT_EQUAL(st.samples, n - 3);
    CU_ASSERT_EQUAL(ctr_stream_rewind(s, 1, &err), 0);
    CU_ASSERT_EQUAL(drain(s, NULL, NULL, NULL, 0, &err), n - 3);
    ctr_stream_stats(s, &st);
    CU_ASSERT_EQUAL(st.bad_lines, 3);
    CU_ASSERT_EQUAL(st.bad_lines_total, 6);
    ctr_batch_free(&b);
    ctr_stream_destroy(&s);
}

static void test_stream_epochs(void)
{
    char path[1024];
    const unsigned n = 500;
    err_t err = {{0}};
    static int seen[MAX_IDS];
    tmp_path(path, sizeof path, "epochs.txt");
    CU_ASSERT_EQUAL_FATAL(write_log(path, 0, n, 0, 0, 0, 1), 0);
    ctr_stream_t *s = open_stream(path, 0, 1, 64, 9, CTR_BAD_STOP, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    ctr_batch_t b;
    CU_ASSERT_EQUAL_FATAL(ctr_batch_alloc(&b, 64, &err), 0);
    CU_ASSERT_EQUAL(ctr_stream_next(s, &b, 64, &err), 64); /* full batches until the end */
    CU_ASSERT_EQUAL(b.n, 64);
    CU_ASSERT_EQUAL(drain(s, NULL, NULL, NULL, 0, &err), n - 64);
    CU_ASSERT_EQUAL(ctr_stream_next(s, &b, 64, &err), 0); /* the end stays the end */
    for (uint64_t e = 1; e <= 2; e++) {
        CU_ASSERT_EQUAL(ctr_stream_rewind(s, e, &err), 0);
        memset(seen, 0, sizeof seen);
        CU_ASSERT_EQUAL(drain(s, seen, NULL, NULL, 0, &err), n);
        check_once(seen, n, "epoch");
    }
    /* rewinding in the middle of an epoch abandons the rest */
    CU_ASSERT_EQUAL(ctr_stream_rewind(s, 3, &err), 0);
    CU_ASSERT_EQUAL(ctr_stream_next(s, &b, 10, &err), 10);
    CU_ASSERT_EQUAL(ctr_stream_rewind(s, 4, &err), 0);
    CU_ASSERT_EQUAL(drain(s, NULL, NULL, NULL, 0, &err), n);
    ctr_stream_stats_t st;
    ctr_stream_stats(s, &st);
    CU_ASSERT_EQUAL(st.epoch, 4);
    CU_ASSERT_EQUAL(st.samples, n);
    CU_ASSERT_EQUAL(st.samples_total, 4 * n + 10);
    ctr_batch_free(&b);
    ctr_stream_destroy(&s);
}

static void test_stream_refused(void)
{
    char path[1024];
    err_t err = {{0}};
    tmp_path(path, sizeof path, "nothing-*.txt");
    CU_ASSERT_PTR_NULL(try_stream(path, 0, 1, 0, 0, CTR_BAD_STOP, &err));
    TESTS_ASSERT_HAS(err.msg, "data.train: '");
    TESTS_ASSERT_HAS(err.msg, "nothing-*.txt' matches no file");
    tmp_path(path, sizeof path, "absent.txt");
    CU_ASSERT_PTR_NULL(try_stream(path, 0, 1, 0, 0, CTR_BAD_STOP, &err));
    TESTS_ASSERT_HAS(err.msg, "absent.txt: No such file");
    tmp_path(path, sizeof path, "epochs.txt");
    CU_ASSERT_EQUAL_FATAL(write_log(path, 0, 10, 0, 0, 0, 1), 0);
    CU_ASSERT_PTR_NULL(try_stream(path, 2, 2, 0, 0, CTR_BAD_STOP, &err));
    TESTS_ASSERT_HAS(err.msg, "trainer 2 of 2 does not exist");
    ctr_stream_destroy(NULL);
}

/* ------------------------------------------------------------------ generator */

/* Reads path into a malloc'd buffer (*len bytes), gunzipping if needed. */
static char *slurp(const char *path, size_t *len)
{
    gzFile z = gzopen(path, "rb");
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    int got;
    if (!z || !buf) {
        free(buf);
        return NULL;
    }
    while ((got = gzread(z, buf + n, (unsigned)(cap - n))) > 0) {
        n += (size_t)got;
        if (n == cap) {
            char *p = realloc(buf, cap *= 2);
            if (!p)
                break;
            buf = p;
        }
    }
    gzclose(z);
    *len = n;
    return buf;
}

static void test_synth_deterministic(void)
{
    char p1[1024], p2[1024], p3[1024], line[CTR_SYNTH_LINE_MAX];
    const uint64_t n = 20000;
    err_t err = {{0}};
    ctr_synth_opts_t o = {.seed = 7, .rows_scale = 0.001};
    ctr_synth_t *g = ctr_synth_new(&o, &err), *h = ctr_synth_new(&o, &err);
    o.seed = 8;
    ctr_synth_t *k = ctr_synth_new(&o, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    CU_ASSERT_EQUAL(ctr_synth_rows(g, 2), 10131u); /* 10131227 x 0.001 */
    CU_ASSERT_EQUAL(ctr_synth_rows(g, 8), 1u);     /* at least one row */
    ctr_synth_result_t r1, r2, r3;
    CU_ASSERT_EQUAL_FATAL(ctr_synth_write(g, tmp_path(p1, sizeof p1, "s1.txt"), n, 0, &r1, &err), 0);
    CU_ASSERT_EQUAL_FATAL(ctr_synth_write(h, tmp_path(p2, sizeof p2, "s2.gz"), n, 1, &r2, &err), 0);
    CU_ASSERT_EQUAL_FATAL(ctr_synth_write(k, tmp_path(p3, sizeof p3, "s3.txt"), n, 0, &r3, &err), 0);
    size_t l1 = 0, l2 = 0, l3 = 0;
    char *a = slurp(p1, &l1), *b = slurp(p2, &l2), *c = slurp(p3, &l3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT(l1 == l2 && memcmp(a, b, l1) == 0); /* same seed: the same bytes, gzip or not */
    CU_ASSERT(l1 != l3 || memcmp(a, c, l1) != 0);
    CU_ASSERT_EQUAL(r1.positives, r2.positives);
    CU_ASSERT_DOUBLE_EQUAL(r1.best_auc, r2.best_auc, 0);

    /* every line parses, and any line generated alone equals the file's */
    criteo_sample_t x;
    err.msg[0] = '\0';
    size_t off = 0, bad = 0, mismatched = 0, positives = 0;
    for (uint64_t i = 0; i < n && off < l1; i++) {
        const char *nl = memchr(a + off, '\n', l1 - off);
        size_t len = nl ? (size_t)(nl - (a + off)) : l1 - off;
        criteo_where_t w = {p1, i + 1};
        bad += criteo_parse(a + off, len, NULL, &x, &w, &err) != 0;
        positives += x.label == 1.0f;
        if (i % 997 == 0 || i + 1 == n)
            mismatched += ctr_synth_line(g, i, line, NULL) != len + 1 ||
                          memcmp(line, a + off, len + 1) != 0;
        off += len + 1;
    }
    CU_ASSERT_EQUAL(off, l1);
    CU_ASSERT_EQUAL(bad, 0);
    if (bad)
        fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT_EQUAL(mismatched, 0);
    CU_ASSERT_EQUAL(positives, r1.positives);
    CU_ASSERT_EQUAL(r1.lines, n);
    free(a);
    free(b);
    free(c);
    ctr_synth_destroy(&g);
    ctr_synth_destroy(&h);
    ctr_synth_destroy(&k);
    CU_ASSERT_PTR_NULL(g);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_synth_model(void)
{
    char path[1024], meta[1200];
    const uint64_t n = 50000;
    err_t err = {{0}};
    ctr_synth_opts_t o = {.seed = 3, .rows_scale = 0.01};
    ctr_synth_t *g = ctr_synth_new(&o, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    ctr_synth_result_t r;
    tmp_path(path, sizeof path, "model.txt");
    CU_ASSERT_EQUAL_FATAL(ctr_synth_write(g, path, n, 0, &r, &err), 0);
    /* the planted model's AUC is well above chance, and the rate near Criteo's */
    CU_ASSERT(r.best_auc > 0.7 && r.best_auc < 0.95);
    CU_ASSERT(r.positive_rate > 0.2 && r.positive_rate < 0.32);
    snprintf(meta, sizeof meta, "%s.meta.json", path);
    size_t len = 0;
    char *text = slurp(meta, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    text[len ? len - 1 : 0] = '\0';
    char want[128];
    snprintf(want, sizeof want, "\"best_auc\": %.6f", r.best_auc);
    TESTS_ASSERT_HAS(text, want);
    TESTS_ASSERT_HAS(text, "\"lines\": 50000");
    TESTS_ASSERT_HAS(text, "\"cardinalities\": [15, 6, 101312, 22026,");
    free(text);

    /* Zipf: of C3's 101312 ids, the most frequent holds a large share */
    ctr_stream_opts_t so = {.source = path};
    ctr_stream_t *s = ctr_stream_new(&so, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    ctr_batch_t b;
    uint64_t *ids = malloc(n * sizeof *ids);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ids);
    CU_ASSERT_EQUAL_FATAL(ctr_batch_alloc(&b, 1000, &err), 0);
    size_t present = 0, top = 0, run = 0;
    int got;
    while ((got = ctr_stream_next(s, &b, 1000, &err)) > 0)
        for (int k = 0; k < got; k++)
            if (b.cat[(size_t)k * CRITEO_CAT + 2] != CRITEO_MISSING && present < n)
                ids[present++] = b.cat[(size_t)k * CRITEO_CAT + 2];
    qsort(ids, present, sizeof *ids, cmp_u64);
    for (size_t i = 0; i < present; i++) {
        run = i && ids[i] == ids[i - 1] ? run + 1 : 1;
        top = run > top ? run : top;
    }
    CU_ASSERT(present > n * 9 / 10); /* C3 is empty in 3% of lines */
    CHECK_CASE(top > present / 20 && top < present * 3 / 10, "top id: %zu of %zu", top, present);
    free(ids);
    ctr_batch_free(&b);
    ctr_stream_destroy(&s);
    ctr_synth_destroy(&g);
}

static void test_gen_ctr_command(void)
{
    char path[1024], meta[1200];
    tmp_path(path, sizeof path, "cmd.txt.gz");
    char *argv[] = {"pstrain", "gen-ctr", "--out", path, "--lines", "3000", "--seed", "4",
                    "--gzip", "--rows-scale", "0.0001", NULL};
    FILE *keep = stdout;
    stdout = fopen("/dev/null", "w");
    int rc = cmd_gen_ctr(11, argv);
    fclose(stdout);
    stdout = keep;
    CU_ASSERT_EQUAL(rc, 0);
    snprintf(meta, sizeof meta, "%s.meta.json", path);
    struct stat st;
    CU_ASSERT_EQUAL(stat(meta, &st), 0);
    err_t err = {{0}};
    ctr_stream_opts_t o = {.source = path};
    ctr_stream_t *s = ctr_stream_new(&o, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(drain(s, NULL, NULL, NULL, 0, &err), 3000);
    ctr_stream_destroy(&s);
    char *bad[] = {"pstrain", "gen-ctr", "--out", path, "--lines", "x", NULL};
    FILE *keep_err = stderr;
    stderr = fopen("/dev/null", "w");
    rc = cmd_gen_ctr(6, bad);
    fclose(stderr);
    stderr = keep_err;
    CU_ASSERT_EQUAL(rc, 2);
}

int test_ctr_register(void)
{
    CU_pSuite s = CU_add_suite("ctr", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "parse_good", test_parse_good) ||
        !CU_add_test(s, "parse_rows", test_parse_rows) ||
        !CU_add_test(s, "parse_bad", test_parse_bad) ||
        !CU_add_test(s, "stream_ranges", test_stream_ranges) ||
        !CU_add_test(s, "stream_files", test_stream_files) ||
        !CU_add_test(s, "stream_gzip", test_stream_gzip) ||
        !CU_add_test(s, "stream_shuffle", test_stream_shuffle) ||
        !CU_add_test(s, "stream_bounded", test_stream_bounded) ||
        !CU_add_test(s, "stream_bad_lines", test_stream_bad_lines) ||
        !CU_add_test(s, "stream_epochs", test_stream_epochs) ||
        !CU_add_test(s, "stream_refused", test_stream_refused) ||
        !CU_add_test(s, "synth_deterministic", test_synth_deterministic) ||
        !CU_add_test(s, "synth_model", test_synth_model) ||
        !CU_add_test(s, "gen_ctr_command", test_gen_ctr_command))
        return -1;
    return 0;
}
