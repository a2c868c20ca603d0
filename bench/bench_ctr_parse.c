/* bench_ctr_parse.c - how fast a core parses Criteo click logs: generates a
 * synthetic log (common/data/ctr_synth.h), then measures, alternating, over
 * the same plain-text file (in the page cache after the first round):
 *   - raw read: read() in 1 MiB chunks, nothing else (the bandwidth reference);
 *   - parse: the same reads, lines cut with memchr and parsed by criteo_parse
 *     on this one core;
 *   - stream: ctr_stream (its reader thread parses, this thread takes batches).
 * Prints the median of ROUNDS rounds of each and the ratio parse / raw read.
 *
 *   build/bench_ctr_parse [LINES (default 2000000)] [ROUNDS (default 5)]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/data/criteo.h"
#include "common/data/ctr_stream.h"
#include "common/data/ctr_synth.h"

#define CHUNK (1u << 20)
#define MAX_ROUNDS 15

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* Reads path through buf; parse 1 cuts and parses its lines. Returns the
 * seconds taken, or -1; *lines gets the lines seen. */
static double pass(const char *path, char *buf, int parse, long *lines)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    double t0 = now();
    size_t have = 0;
    long n = 0;
    ssize_t got;
    criteo_sample_t x;
    criteo_where_t w = {path, 0};
    err_t err;
    volatile unsigned sink = 0;
    while ((got = read(fd, buf + have, CHUNK - have)) > 0) {
        have += (size_t)got;
        if (!parse) {
            sink += (unsigned char)buf[0];
            have = 0;
            continue;
        }
        char *p = buf, *end = buf + have, *nl;
        while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
            w.line = (uint64_t)++n;
            if (criteo_parse(p, (size_t)(nl - p), NULL, &x, &w, &err) != 0) {
                fprintf(stderr, "bench_ctr_parse: %s\n", err.msg);
                close(fd);
                return -1;
            }
            p = nl + 1;
        }
        have = (size_t)(end - p);
        memmove(buf, p, have);
    }
    double t = now() - t0;
    close(fd);
    *lines = n;
    return t;
}

/* Reads path through a ctr_stream. Returns the seconds taken, or -1. */
static double pass_stream(const char *path, long *lines)
{
    err_t err;
    ctr_batch_t b;
    double t0 = now();
    ctr_stream_opts_t o = {.source = path};
    ctr_stream_t *s = ctr_stream_new(&o, &err);
    if (!s || ctr_batch_alloc(&b, CTR_BATCH_DEFAULT, &err) != 0) {
        fprintf(stderr, "bench_ctr_parse: %s\n", err.msg);
        ctr_stream_destroy(&s);
        return -1;
    }
    long n = 0;
    int got;
    while ((got = ctr_stream_next(s, &b, CTR_BATCH_DEFAULT, &err)) > 0)
        n += got;
    double t = now() - t0;
    ctr_batch_free(&b);
    ctr_stream_destroy(&s);
    *lines = n;
    return got < 0 ? -1 : t;
}

int main(int argc, char **argv)
{
    long lines = argc > 1 ? atol(argv[1]) : 2000000;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    if (lines < 1 || rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "usage: bench_ctr_parse [LINES] [ROUNDS (1-%d)]\n", MAX_ROUNDS);
        return 2;
    }
    char path[] = "/tmp/bench_ctr_XXXXXX", file[64], meta[80];
    if (!mkdtemp(path))
        return 1;
    snprintf(file, sizeof file, "%s/log.txt", path);
    snprintf(meta, sizeof meta, "%s.meta.json", file);
    err_t err;
    ctr_synth_opts_t so = {.seed = 1, .rows_scale = 1.0};
    ctr_synth_t *g = ctr_synth_new(&so, &err);
    ctr_synth_result_t res;
    double tg = now();
    if (!g || ctr_synth_write(g, file, (uint64_t)lines, 0, &res, &err) != 0) {
        fprintf(stderr, "bench_ctr_parse: %s\n", err.msg);
        return 1;
    }
    tg = now() - tg;
    ctr_synth_destroy(&g);
    char *buf = malloc(CHUNK);
    double raw[MAX_ROUNDS], parse[MAX_ROUNDS], stream[MAX_ROUNDS];
    long n_raw = 0, n_parse = 0, n_stream = 0;
    int rc = buf ? 0 : 1;
    pass(file, buf, 0, &n_raw); /* warm the page cache */
    for (int r = 0; rc == 0 && r < rounds; r++) {
        raw[r] = pass(file, buf, 0, &n_raw);
        parse[r] = pass(file, buf, 1, &n_parse);
        stream[r] = pass_stream(file, &n_stream);
        rc = raw[r] < 0 || parse[r] < 0 || stream[r] < 0 || n_parse != lines || n_stream != lines;
    }
    if (rc == 0) {
        FILE *f = fopen(file, "rb");
        fseek(f, 0, SEEK_END);
        double mb = (double)ftell(f) / 1e6;
        fclose(f);
        double tr = median(raw, rounds), tp = median(parse, rounds), ts = median(stream, rounds);
        printf("click-log parse: %ld lines, %.0f MB of plain text (page cache), median of %d "
               "rounds; generated at %.0f lines/s\n", lines, mb, rounds, (double)lines / tg);
        printf("%-44s %9.0f MB/s %12.0f lines/s\n", "raw read (read(), 1 MiB chunks)", mb / tr,
               (double)lines / tr);
        printf("%-44s %9.0f MB/s %12.0f lines/s\n", "parse, 1 core (memchr + criteo_parse)",
               mb / tp, (double)lines / tp);
        printf("%-44s %9.0f MB/s %12.0f lines/s\n", "ctr_stream (reader thread + consumer)",
               mb / ts, (double)lines / ts);
        printf("parse / raw read: %.3fx of the bandwidth (%.1f ns a line parsing, %.1f reading)\n",
               tr / tp, 1e9 * tp / (double)lines, 1e9 * tr / (double)lines);
    } else {
        fprintf(stderr, "bench_ctr_parse: a round failed\n");
    }
    free(buf);
    unlink(file);
    unlink(meta);
    rmdir(path);
    return rc;
}
