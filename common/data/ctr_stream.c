/* ctr_stream.c - the click-log reader thread and its bounded queue (see
 * ctr_stream.h). The reader owns the read buffer, the shuffle buffer and the
 * queue slot it is filling; the queue (head, count, the slots counted in it)
 * belongs to the mutex. A slot outside [head, head + count) is the reader's. */
#include "common/data/ctr_stream.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "common/util/rng.h"

/* Stream of the shuffle buffer's draws ("SHUF"), xor-ed with epoch and rank. */
#define CTR_SHUFFLE_STREAM 0x5348554600000000ull
#define CTR_EPOCH_SHIFT 24        /* epoch << this, then xor rank */
#define CTR_TO_END UINT64_MAX     /* a part that runs to the end of its file */
#define CTR_META_SUFFIX ".meta.json" /* the generator's sidecar: not data */
#define CTR_MAX_SHUFFLE (UINT32_MAX / 2)

/* One piece of a file this reader reads: the lines whose first byte lies
 * in [begin, end). */
typedef struct {
    char *path;
    uint64_t begin, end;
    int gz;
} ctr_part_t;

/* The reader thread's own state. */
typedef struct {
    char *buf;                 /* CTR_READ_BUFFER bytes */
    size_t have, pos;          /* bytes in buf, bytes consumed */
    uint64_t buf_off;          /* file offset of buf[0] */
    int eof;
    int fd;                    /* plain file, or -1 */
    gzFile gz;                 /* gzip file, or NULL */
    criteo_sample_t *shuf;     /* the shuffle buffer */
    size_t shuf_n;
    uint64_t draws, stream;    /* Philox counter and stream of the shuffle */
    ctr_batch_t *slot;         /* the queue slot being filled, or NULL */
    uint64_t parsed_local, bad_local;
    err_t err;
} reader_t;

struct ctr_stream_t {
    char name[64];
    int rank, ranks;
    uint32_t rows[CRITEO_CAT];
    int has_rows;
    uint64_t seed;
    size_t shuffle;
    ctr_bad_lines_t bad_lines;
    int batch, depth;
    ctr_part_t *parts;
    int n_parts;

    pthread_mutex_t mu;
    pthread_cond_t can_put, can_get;
    ctr_batch_t *slots;        /* depth slots of batch samples */
    int head, count, get_pos;  /* next slot to take, slots queued, samples taken of head */
    int done, failed;          /* reader finished; with an error */
    _Atomic int stop;          /* the reader is asked to stop (read without the lock too) */
    err_t error;
    int peak;
    pthread_t thread;
    int running;

    uint64_t epoch, delivered, delivered_total, bad_total;
    _Atomic uint64_t parsed, bad;
    reader_t r;
};

/* ------------------------------------------------------------------ files */

/* 1 when name ends with suffix. */
static int ends_with(const char *name, const char *suffix)
{
    size_t n = strlen(name), m = strlen(suffix);
    return n >= m && strcmp(name + n - m, suffix) == 0;
}

/* 1 when path is a regular file that is data (not a generator sidecar). */
static int is_data_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && !ends_with(path, CTR_META_SUFFIX);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends a copy of path to *files (n of them, room *cap). Returns 0 or -1. */
static int files_add(char ***files, int *n, int *cap, const char *path)
{
    if (*n == *cap) {
        int next = *cap ? 2 * *cap : 16;
        char **p = realloc(*files, (size_t)next * sizeof *p);
        if (!p)
            return -1;
        *files = p;
        *cap = next;
    }
    if (!((*files)[*n] = strdup(path)))
        return -1;
    (*n)++;
    return 0;
}

/* The data files of folder dir (hidden ones left out), sorted. Returns
 * their number (maybe 0), or -1 with err. */
static int files_in_dir(const char *dir, const char *name, char ***files, err_t *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return err_set(err, "%s: cannot open folder %s: %s", name, dir, strerror(errno));
    int n = 0, cap = 0, rc = 0;
    struct dirent *e;
    char path[4096];
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (is_data_file(path))
            rc = files_add(files, &n, &cap, path);
    }
    closedir(d);
    if (rc != 0) {
        ctr_files_free(files, n);
        return err_set(err, "%s: out of memory listing %s", name, dir);
    }
    if (n)
        qsort(*files, (size_t)n, sizeof **files, cmp_str);
    return n;
}

/* The data files that glob pattern matches, sorted. Returns their number
 * (maybe 0), or -1 with err. */
static int files_of_glob(const char *pattern, const char *name, char ***files, err_t *err)
{
    glob_t g;
    int n = 0, cap = 0, rc = 0;
    int grc = glob(pattern, 0, NULL, &g);
    if (grc == GLOB_NOMATCH)
        return 0;
    if (grc != 0)
        return err_set(err, "%s: cannot expand '%s'", name, pattern);
    for (size_t i = 0; rc == 0 && i < g.gl_pathc; i++)
        if (is_data_file(g.gl_pathv[i]))
            rc = files_add(files, &n, &cap, g.gl_pathv[i]);
    globfree(&g);
    if (rc != 0) {
        ctr_files_free(files, n);
        return err_set(err, "%s: out of memory expanding '%s'", name, pattern);
    }
    return n;
}

int ctr_files(const char *source, const char *name, char ***files, err_t *err)
{
    struct stat st;
    int n = 0, cap = 0;
    name = name ? name : "source";
    *files = NULL;
    if (!source || !source[0])
        return err_set(err, "%s: no file, folder or glob given", name);
    if (stat(source, &st) == 0 && S_ISDIR(st.st_mode))
        n = files_in_dir(source, name, files, err);
    else if (strpbrk(source, "*?["))
        n = files_of_glob(source, name, files, err);
    else if (stat(source, &st) != 0)
        return err_set(err, "%s: cannot open %s: %s", name, source, strerror(errno));
    else if (files_add(files, &n, &cap, source) != 0)
        return err_set(err, "%s: out of memory", name);
    if (n == 0)
        err_set(err, "%s: '%s' matches no file", name, source);
    return n > 0 ? n : -1;
}

void ctr_files_free(char ***files, int n)
{
    if (!files || !*files)
        return;
    for (int i = 0; i < n; i++)
        free((*files)[i]);
    free(*files);
    *files = NULL;
}

/* 1 when the file at path starts with the gzip magic, 0 if not, -1 with err
 * if it cannot be read. */
static int is_gzip(const char *path, uint64_t *size, err_t *err)
{
    unsigned char m[2] = {0, 0};
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        err_set(err, "%s: cannot open: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    ssize_t got = read(fd, m, sizeof m);
    close(fd);
    *size = (uint64_t)st.st_size;
    return got == 2 && m[0] == 0x1f && m[1] == 0x8b;
}

/* ------------------------------------------------------------------ split */

/* Adds part (path copied, [begin, end)) to s->parts. Returns 0 or -1. */
static int part_add(ctr_stream_t *s, const char *path, uint64_t begin, uint64_t end, int gz)
{
    ctr_part_t *p = realloc(s->parts, (size_t)(s->n_parts + 1) * sizeof *p);
    if (!p)
        return -1;
    s->parts = p;
    p += s->n_parts;
    p->path = strdup(path);
    p->begin = begin;
    p->end = end;
    p->gz = gz;
    if (!p->path)
        return -1;
    s->n_parts++;
    return 0;
}

/* Fewer files than trainers: this rank's byte range of the n plain files
 * taken end to end, as parts. Returns 0, or -1 with err. */
static int split_bytes(ctr_stream_t *s, char **files, int n, const uint64_t *size,
                       const int *gz, err_t *err)
{
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        if (gz[i])
            return err_set(err, "%s: %d file%s for %d trainers, and %s is gzip-compressed: a .gz "
                           "file cannot be cut at line boundaries, so each trainer needs whole "
                           "files; give at least %d files, or plain text",
                           s->name, n, n == 1 ? "" : "s", s->ranks, files[i], s->ranks);
        total += size[i];
    }
    /* [a, b) of the whole; 128-bit products: no overflow for any size */
    uint64_t a = (uint64_t)((unsigned __int128)total * (unsigned)s->rank / (unsigned)s->ranks);
    uint64_t b = (uint64_t)((unsigned __int128)total * (unsigned)(s->rank + 1) / (unsigned)s->ranks);
    uint64_t fo = 0;
    for (int i = 0; i < n; fo += size[i], i++) {
        uint64_t lo = a > fo ? a - fo : 0, hi = b - fo;
        if (b <= fo || a >= fo + size[i] || lo >= size[i])
            continue;
        if (part_add(s, files[i], lo, hi >= size[i] ? CTR_TO_END : hi, 0) != 0)
            return err_set(err, "%s: out of memory", s->name);
    }
    return 0;
}

/* Works out this rank's parts of source (see ctr_stream.h). Returns 0, or
 * -1 with err. */
static int split(ctr_stream_t *s, const char *source, err_t *err)
{
    char **files = NULL;
    int n = ctr_files(source, s->name, &files, err), rc = -1;
    if (n < 0)
        return -1;
    uint64_t *size = calloc((size_t)n, sizeof *size);
    int *gz = calloc((size_t)n, sizeof *gz);
    if (!size || !gz) {
        err_set(err, "%s: out of memory", s->name);
        goto out;
    }
    for (int i = 0; i < n; i++)
        if ((gz[i] = is_gzip(files[i], &size[i], err)) < 0)
            goto out;
    if (n >= s->ranks) {
        for (int i = s->rank; i < n; i += s->ranks)
            if (part_add(s, files[i], 0, CTR_TO_END, gz[i]) != 0) {
                err_set(err, "%s: out of memory", s->name);
                goto out;
            }
        rc = 0;
    } else {
        rc = split_bytes(s, files, n, size, gz, err);
    }
out:
    free(size);
    free(gz);
    ctr_files_free(&files, n);
    return rc;
}

/* ------------------------------------------------------------------ queue */

/* Takes a free slot for the reader to fill, waiting while the queue is
 * full. Returns 0, or -1 if the stream is stopping. */
static int slot_acquire(ctr_stream_t *s)
{
    pthread_mutex_lock(&s->mu);
    while (s->count == s->depth && !s->stop)
        pthread_cond_wait(&s->can_put, &s->mu);
    int stop = s->stop;
    if (!stop) {
        s->r.slot = &s->slots[(s->head + s->count) % s->depth];
        s->r.slot->n = 0;
    }
    pthread_mutex_unlock(&s->mu);
    return stop ? -1 : 0;
}

/* Queues the slot being filled, if it holds anything. */
static void slot_publish(ctr_stream_t *s)
{
    if (!s->r.slot)
        return;
    if (s->r.slot->n > 0) {
        pthread_mutex_lock(&s->mu);
        s->count++;
        if (s->count > s->peak)
            s->peak = s->count;
        pthread_cond_signal(&s->can_get);
        pthread_mutex_unlock(&s->mu);
    }
    s->r.slot = NULL;
}

/* Copies sample x into the slot being filled (taking one first), queueing
 * it when full. Returns 0, or -1 if the stream is stopping. */
static int emit(ctr_stream_t *s, const criteo_sample_t *x)
{
    if (!s->r.slot && slot_acquire(s) != 0)
        return -1;
    ctr_batch_t *b = s->r.slot;
    size_t i = (size_t)b->n++;
    b->label[i] = x->label;
    memcpy(b->num + i * CRITEO_NUM, x->num, sizeof x->num);
    memcpy(b->cat + i * CRITEO_CAT, x->cat, sizeof x->cat);
    b->missing[i] = x->missing;
    if (b->n == s->batch)
        slot_publish(s);
    return 0;
}

/* Passes sample x through the shuffle buffer: with room it is kept, else it
 * takes the place of a random one, which is emitted. Returns emit's status. */
static int shuffle_push(ctr_stream_t *s, const criteo_sample_t *x)
{
    reader_t *r = &s->r;
    if (s->shuffle <= 1)
        return emit(s, x);
    if (r->shuf_n < s->shuffle) {
        r->shuf[r->shuf_n++] = *x;
        return 0;
    }
    uint32_t j = rng_below(s->seed, r->stream, r->draws++, (uint32_t)s->shuffle);
    int rc = emit(s, &r->shuf[j]);
    r->shuf[j] = *x;
    return rc;
}

/* Emits what the shuffle buffer holds, in random order. Returns 0 or -1. */
static int shuffle_drain(ctr_stream_t *s)
{
    reader_t *r = &s->r;
    while (r->shuf_n > 0) {
        uint32_t j = rng_below(s->seed, r->stream, r->draws++, (uint32_t)r->shuf_n);
        if (emit(s, &r->shuf[j]) != 0)
            return -1;
        r->shuf[j] = r->shuf[--r->shuf_n];
    }
    return 0;
}

/* ------------------------------------------------------------------ reader */

/* Opens part p for reading at its first line: a plain file at p->begin - 1
 * (the rest of the line there is skipped by the caller), a gzip file at 0.
 * Returns 0, or -1 with r->err. */
static int part_open(reader_t *r, const ctr_part_t *p)
{
    r->have = r->pos = 0;
    r->eof = 0;
    r->buf_off = p->begin ? p->begin - 1 : 0;
    if (p->gz) {
        r->gz = gzopen(p->path, "rb");
        if (!r->gz)
            return err_set(&r->err, "%s: cannot open: %s", p->path, strerror(errno));
        gzbuffer(r->gz, CTR_READ_BUFFER / 4);
        return 0;
    }
    r->fd = open(p->path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0)
        return err_set(&r->err, "%s: cannot open: %s", p->path, strerror(errno));
    if (r->buf_off && lseek(r->fd, (off_t)r->buf_off, SEEK_SET) < 0)
        return err_set(&r->err, "%s: cannot seek to %llu: %s", p->path,
                       (unsigned long long)r->buf_off, strerror(errno));
    return 0;
}

static void part_close(reader_t *r)
{
    if (r->gz)
        gzclose(r->gz);
    if (r->fd >= 0)
        close(r->fd);
    r->gz = NULL;
    r->fd = -1;
}

/* Moves the unread bytes to the front of the buffer and reads more after
 * them. Returns 0 (r->eof at the end of the file), or -1 with r->err (a read
 * error, or a line longer than the buffer). */
static int part_fill(reader_t *r, const ctr_part_t *p)
{
    if (r->pos == 0 && r->have == CTR_READ_BUFFER)
        return err_set(&r->err, "%s: a line at byte %llu is longer than %u bytes", p->path,
                       (unsigned long long)r->buf_off, CTR_READ_BUFFER);
    memmove(r->buf, r->buf + r->pos, r->have - r->pos);
    r->buf_off += r->pos;
    r->have -= r->pos;
    r->pos = 0;
    size_t room = CTR_READ_BUFFER - r->have;
    ssize_t got;
    if (r->gz) {
        got = gzread(r->gz, r->buf + r->have, (unsigned)room);
        if (got < 0) {
            int e;
            return err_set(&r->err, "%s: corrupt or unreadable gzip data: %s", p->path,
                           gzerror(r->gz, &e));
        }
    } else {
        do
            got = read(r->fd, r->buf + r->have, room);
        while (got < 0 && errno == EINTR);
        if (got < 0)
            return err_set(&r->err, "%s: read error: %s", p->path, strerror(errno));
    }
    r->have += (size_t)got;
    r->eof = got == 0;
    return 0;
}

/* The number of the line that starts at byte off of path (1-based), found
 * by counting the newlines before it: only for messages. 0 if unreadable. */
static uint64_t line_number(const char *path, uint64_t off)
{
    char buf[1 << 16];
    uint64_t lines = 1, done = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    while (done < off) {
        size_t want = off - done < sizeof buf ? (size_t)(off - done) : sizeof buf;
        ssize_t got = read(fd, buf, want);
        if (got <= 0)
            break;
        for (ssize_t i = 0; i < got; i++)
            lines += buf[i] == '\n';
        done += (uint64_t)got;
    }
    close(fd);
    return done == off ? lines : 0;
}

/* Parses the line [line, line + len) that starts at byte off of part p (the
 * line_no-th of the part) and passes it on, or counts it as bad. Returns 0,
 * or -1 (r->err set, unless the stream is stopping). */
static int line_handle(ctr_stream_t *s, const ctr_part_t *p, const char *line, size_t len,
                       uint64_t off, uint64_t line_no)
{
    reader_t *r = &s->r;
    criteo_sample_t x;
    criteo_where_t w = {p->path, p->begin ? 0 : line_no};
    if (criteo_parse(line, len, s->has_rows ? s->rows : NULL, &x, &w, &r->err) != 0) {
        if (s->bad_lines == CTR_BAD_SKIP) {
            atomic_store_explicit(&s->bad, ++r->bad_local, memory_order_relaxed);
            return 0;
        }
        if (p->begin) { /* a piece of a file: count the lines before it for the message */
            w.line = line_number(p->path, off);
            criteo_parse(line, len, s->has_rows ? s->rows : NULL, &x, &w, &r->err);
        }
        return -1;
    }
    atomic_store_explicit(&s->parsed, ++r->parsed_local, memory_order_relaxed);
    return shuffle_push(s, &x);
}

/* Reads the lines of part p (those whose first byte lies in [begin, end))
 * and passes them on. Returns 0, or -1 with r->err (or when stopping). */
static int part_read(ctr_stream_t *s, const ctr_part_t *p)
{
    reader_t *r = &s->r;
    int skip = p->begin > 0, rc = part_open(r, p);
    uint64_t line_no = 0;
    while (rc == 0) {
        char *start = r->buf + r->pos;
        char *nl = memchr(start, '\n', r->have - r->pos);
        if (!nl && !r->eof) {
            rc = part_fill(r, p);
            if (rc == 0 && s->stop)
                rc = -1;
            continue;
        }
        if (!nl && r->pos == r->have)
            break; /* end of file */
        size_t len = nl ? (size_t)(nl - start) : r->have - r->pos;
        uint64_t off = r->buf_off + r->pos;
        r->pos += len + (nl != NULL);
        if (skip) { /* the end of a line that started before the part */
            skip = 0;
            continue;
        }
        if (off >= p->end)
            break;
        rc = line_handle(s, p, start, len, off, ++line_no);
    }
    part_close(r);
    return rc;
}

/* The reader thread: this rank's parts, then what the shuffle buffer holds;
 * its end (or its error) is marked for the consumer. */
static void *reader_main(void *arg)
{
    ctr_stream_t *s = arg;
    reader_t *r = &s->r;
    int rc = 0;
    r->err.msg[0] = '\0';
    for (int i = 0; i < s->n_parts && rc == 0; i++)
        rc = part_read(s, &s->parts[i]);
    if (rc == 0)
        rc = shuffle_drain(s);
    if (!s->stop) /* at the end, or before the error: what the slot holds is good */
        slot_publish(s);
    pthread_mutex_lock(&s->mu);
    s->done = 1;
    if (rc != 0 && !s->stop) {
        s->failed = 1;
        s->error = r->err;
    }
    pthread_cond_broadcast(&s->can_get);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ------------------------------------------------------------------ public */

int ctr_batch_alloc(ctr_batch_t *b, int cap, err_t *err)
{
    memset(b, 0, sizeof *b);
    if (cap < 1)
        return err_set(err, "ctr_batch_alloc: capacity %d, must be >= 1", cap);
    size_t n = (size_t)cap;
    b->label = malloc(n * sizeof *b->label);
    b->num = malloc(n * CRITEO_NUM * sizeof *b->num);
    b->cat = malloc(n * CRITEO_CAT * sizeof *b->cat);
    b->missing = malloc(n * sizeof *b->missing);
    if (!b->label || !b->num || !b->cat || !b->missing) {
        ctr_batch_free(b);
        return err_set(err, "out of memory for a batch of %d click-log samples", cap);
    }
    b->cap = cap;
    return 0;
}

void ctr_batch_free(ctr_batch_t *b)
{
    if (!b)
        return;
    free(b->label);
    free(b->num);
    free(b->cat);
    free(b->missing);
    memset(b, 0, sizeof *b);
}

/* Asks the reader thread to stop and waits for it. */
static void reader_stop(ctr_stream_t *s)
{
    if (!s->running)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->can_put);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->running = 0;
}

int ctr_stream_rewind(ctr_stream_t *s, uint64_t epoch, err_t *err)
{
    reader_stop(s);
    s->head = s->count = s->get_pos = 0;
    s->done = s->failed = 0;
    s->stop = 0;
    s->peak = 0;
    s->epoch = epoch;
    s->delivered = 0;
    s->bad_total += s->r.bad_local;
    s->parsed = s->bad = 0;
    reader_t *r = &s->r;
    r->shuf_n = 0;
    r->draws = 0;
    r->stream = CTR_SHUFFLE_STREAM ^ (epoch << CTR_EPOCH_SHIFT) ^ (uint64_t)s->rank;
    r->slot = NULL;
    r->parsed_local = r->bad_local = 0;
    int e = pthread_create(&s->thread, NULL, reader_main, s);
    if (e != 0) {
        s->done = 1;
        return err_set(err, "%s: cannot start the reader thread: %s", s->name, strerror(e));
    }
    s->running = 1;
    return 0;
}

/* Copies the options into s and checks them. Returns 0, or -1 with err. */
static int opts_take(ctr_stream_t *s, const ctr_stream_opts_t *o, err_t *err)
{
    snprintf(s->name, sizeof s->name, "%s", o->name ? o->name : "source");
    s->ranks = o->ranks > 0 ? o->ranks : 1;
    s->rank = o->rank;
    s->seed = o->seed;
    s->shuffle = o->shuffle_buffer;
    s->bad_lines = o->bad_lines;
    s->batch = o->batch > 0 ? o->batch : CTR_BATCH_DEFAULT;
    s->depth = o->queue_depth > 0 ? o->queue_depth : CTR_QUEUE_DEFAULT;
    if (s->rank < 0 || s->rank >= s->ranks)
        return err_set(err, "%s: trainer %d of %d does not exist", s->name, s->rank, s->ranks);
    if (s->shuffle > CTR_MAX_SHUFFLE)
        return err_set(err, "%s: a shuffle buffer of %zu samples is more than %u", s->name,
                       s->shuffle, CTR_MAX_SHUFFLE);
    if (o->rows) {
        memcpy(s->rows, o->rows, sizeof s->rows);
        s->has_rows = 1;
    }
    return 0;
}

/* Allocates the queue's slots, the read buffer and the shuffle buffer.
 * Returns 0, or -1 with err. */
static int buffers_alloc(ctr_stream_t *s, err_t *err)
{
    s->slots = calloc((size_t)s->depth, sizeof *s->slots);
    s->r.buf = malloc(CTR_READ_BUFFER);
    if (s->shuffle > 1)
        s->r.shuf = malloc(s->shuffle * sizeof *s->r.shuf);
    if (!s->slots || !s->r.buf || (s->shuffle > 1 && !s->r.shuf))
        return err_set(err, "%s: out of memory for the reader's buffers", s->name);
    for (int i = 0; i < s->depth; i++)
        if (ctr_batch_alloc(&s->slots[i], s->batch, err) != 0)
            return err_prefix(err, "%s", s->name);
    return 0;
}

ctr_stream_t *ctr_stream_new(const ctr_stream_opts_t *o, err_t *err)
{
    ctr_stream_t *s = calloc(1, sizeof *s);
    if (!s) {
        err_set(err, "out of memory");
        return NULL;
    }
    s->r.fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->can_put, NULL);
    pthread_cond_init(&s->can_get, NULL);
    if (opts_take(s, o, err) != 0 || split(s, o->source, err) != 0 ||
        buffers_alloc(s, err) != 0 || ctr_stream_rewind(s, 0, err) != 0)
        ctr_stream_destroy(&s);
    return s;
}

int ctr_stream_next(ctr_stream_t *s, ctr_batch_t *b, int max, err_t *err)
{
    if (max > b->cap)
        max = b->cap;
    if (max < 1)
        return err_set(err, "%s: ctr_stream_next wants room for at least one sample", s->name);
    int got = 0;
    pthread_mutex_lock(&s->mu);
    while (got < max) {
        while (s->count == 0 && !s->done)
            pthread_cond_wait(&s->can_get, &s->mu);
        if (s->count == 0)
            break; /* the reader has finished: end of epoch, or its error */
        ctr_batch_t *q = &s->slots[s->head];
        int take = q->n - s->get_pos < max - got ? q->n - s->get_pos : max - got;
        size_t from = (size_t)s->get_pos, to = (size_t)got, k = (size_t)take;
        memcpy(b->label + to, q->label + from, k * sizeof *b->label);
        memcpy(b->num + to * CRITEO_NUM, q->num + from * CRITEO_NUM,
               k * CRITEO_NUM * sizeof *b->num);
        memcpy(b->cat + to * CRITEO_CAT, q->cat + from * CRITEO_CAT,
               k * CRITEO_CAT * sizeof *b->cat);
        memcpy(b->missing + to, q->missing + from, k * sizeof *b->missing);
        got += take;
        s->get_pos += take;
        if (s->get_pos == q->n) {
            s->head = (s->head + 1) % s->depth;
            s->count--;
            s->get_pos = 0;
            pthread_cond_signal(&s->can_put);
        }
    }
    int failed = got == 0 && s->failed;
    if (failed && err)
        *err = s->error;
    pthread_mutex_unlock(&s->mu);
    b->n = got;
    s->delivered += (uint64_t)got;
    s->delivered_total += (uint64_t)got;
    return failed ? -1 : got;
}

void ctr_stream_stats(ctr_stream_t *s, ctr_stream_stats_t *st)
{
    memset(st, 0, sizeof *st);
    pthread_mutex_lock(&s->mu);
    st->queued_peak = s->peak;
    pthread_mutex_unlock(&s->mu);
    st->epoch = s->epoch;
    st->samples = s->delivered;
    st->samples_total = s->delivered_total;
    st->parsed = atomic_load(&s->parsed);
    st->bad_lines = atomic_load(&s->bad);
    st->bad_lines_total = s->bad_total + st->bad_lines;
    st->parts = s->n_parts;
    st->memory = (size_t)s->depth * (size_t)s->batch *
                     (sizeof(float) * (1 + CRITEO_NUM) + sizeof(uint64_t) * CRITEO_CAT +
                      sizeof(uint32_t)) +
                 (s->shuffle > 1 ? s->shuffle * sizeof(criteo_sample_t) : 0) + CTR_READ_BUFFER;
}

void ctr_stream_destroy(ctr_stream_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ctr_stream_t *s = *self_p;
    reader_stop(s);
    for (int i = 0; s->slots && i < s->depth; i++)
        ctr_batch_free(&s->slots[i]);
    free(s->slots);
    for (int i = 0; i < s->n_parts; i++)
        free(s->parts[i].path);
    free(s->parts);
    free(s->r.buf);
    free(s->r.shuf);
    pthread_cond_destroy(&s->can_put);
    pthread_cond_destroy(&s->can_get);
    pthread_mutex_destroy(&s->mu);
    free(s);
    *self_p = NULL;
}

/* The lines of one file (gzip or plain: gzread reads both): the newlines,
 * plus a last line without one. Returns 0, or -1 with err naming the file. */
static int count_file(const char *path, uint64_t *lines, err_t *err)
{
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return err_set(err, "%s: cannot open: %s", path, strerror(errno));
    enum { CHUNK = 1 << 20 };
    char *buf = malloc(CHUNK);
    if (!buf) {
        gzclose(gz);
        return err_set(err, "%s: out of memory", path);
    }
    int n, last = '\n';
    while ((n = gzread(gz, buf, CHUNK)) > 0) {
        for (const char *p = buf; (p = memchr(p, '\n', (size_t)(buf + n - p))) != NULL; p++)
            (*lines)++;
        last = buf[n - 1];
    }
    int bad = n < 0;
    free(buf);
    gzclose(gz);
    if (bad)
        return err_set(err, "%s: read error", path);
    *lines += last != '\n';
    return 0;
}

/* The lines that start in [begin, end) of the plain file at path (end
 * CTR_TO_END: its end): a line starts at offset 0 and after every newline
 * but one that ends the file. Adds them to *lines. Returns 0, or -1 with
 * err naming the file. */
static int count_range(const char *path, uint64_t begin, uint64_t end, uint64_t *lines,
                       err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        return err_set(err, "%s: cannot open: %s", path, strerror(errno));
    }
    const uint64_t size = (uint64_t)st.st_size;
    if (end > size)
        end = size;
    if (begin == 0 && end > 0)
        (*lines)++;
    /* a newline at q starts a line at q + 1: q in [begin - 1, end - 1), q + 1 < size */
    uint64_t q = begin > 0 ? begin - 1 : 0, stop = end > 0 ? end - 1 : 0;
    enum { CHUNK = 1 << 20 };
    char *buf = malloc(CHUNK);
    int rc = buf ? 0 : err_set(err, "%s: out of memory", path);
    while (rc == 0 && q < stop) {
        size_t want = stop - q < CHUNK ? (size_t)(stop - q) : CHUNK;
        ssize_t got = pread(fd, buf, want, (off_t)q);
        if (got <= 0) {
            rc = err_set(err, "%s: read error at byte %llu", path, (unsigned long long)q);
            break;
        }
        for (const char *p = buf; (p = memchr(p, '\n', (size_t)(buf + got - p))) != NULL; p++)
            *lines += q + (uint64_t)(p - buf) + 1 < size;
        q += (uint64_t)got;
    }
    free(buf);
    close(fd);
    return rc;
}

int ctr_count_part_lines(const char *source, const char *name, int rank, int ranks,
                         uint64_t *lines, err_t *err)
{
    ctr_stream_t *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(err, "out of memory");
    snprintf(s->name, sizeof s->name, "%s", name ? name : "source");
    s->rank = rank;
    s->ranks = ranks > 0 ? ranks : 1;
    int rc = s->rank >= 0 && s->rank < s->ranks
                 ? split(s, source, err)
                 : err_set(err, "%s: trainer %d of %d does not exist", s->name, rank, ranks);
    *lines = 0;
    for (int i = 0; rc == 0 && i < s->n_parts; i++) {
        const ctr_part_t *p = &s->parts[i];
        rc = p->gz || (p->begin == 0 && p->end == CTR_TO_END)
                 ? count_file(p->path, lines, err)
                 : count_range(p->path, p->begin, p->end, lines, err);
    }
    for (int i = 0; i < s->n_parts; i++)
        free(s->parts[i].path);
    free(s->parts);
    free(s);
    return rc;
}
