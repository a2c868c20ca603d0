/* ctr_stream.h - Criteo click logs streamed from disk: a reader thread
 * parses this trainer's part of the data into a bounded queue of batches,
 * so memory stays the same whatever the size of the files.
 *
 * Source: a file, a folder (every regular file in it, sorted by name, except
 * hidden ones and the generator's *.meta.json) or a glob (sorted); each file
 * plain text or gzip (recognised by its first bytes, whatever its name).
 *
 * Split among T trainers (rank t of T):
 *   - at least T files: whole files, round robin (t, t + T, t + 2T, ...);
 *   - fewer files than T: the files' bytes taken end to end are cut into T
 *     equal ranges and a line belongs to the range its first byte is in, so
 *     every line is read by exactly one trainer. This needs plain files: a
 *     .gz file cannot be cut, and is refused with a message that says so.
 *
 * Order: file order, or through a shuffle buffer of K samples (a sample
 * read replaces a random one of the buffer, which goes out; at the end the
 * rest goes out in random order), driven by Philox from (seed, epoch, rank):
 * the same seed and layout give the same order. K = 0 or 1: file order.
 *
 * Bad lines (criteo.h): CTR_BAD_STOP ends the epoch with "FILE:LINE: what"
 * delivered to the consumer (in a byte range that starts inside a file, the
 * line number is found by counting the file's newlines before the line,
 * only then); CTR_BAD_SKIP skips and counts them.
 */
#ifndef PST_CTR_STREAM_H
#define PST_CTR_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "common/data/criteo.h"
#include "common/util/err.h"

#define CTR_BATCH_DEFAULT 4096   /* samples per queued batch */
#define CTR_QUEUE_DEFAULT 4      /* batches in the queue */
#define CTR_READ_BUFFER (1u << 20) /* bytes read at a time; also the longest line */

typedef enum { CTR_BAD_STOP = 0, CTR_BAD_SKIP } ctr_bad_lines_t;

typedef struct {
    const char *source;        /* a file, a folder or a glob */
    const char *name;          /* what messages call it ("data.train"); NULL: "source" */
    int rank, ranks;           /* this reader is trainer rank of ranks; ranks 0 means 1 */
    const uint32_t *rows;      /* CRITEO_CAT table sizes: cat[f] %= rows[f]; NULL: none */
    uint64_t seed;             /* of the shuffle buffer */
    size_t shuffle_buffer;     /* samples held for shuffling; 0 or 1: file order */
    ctr_bad_lines_t bad_lines;
    int batch;                 /* samples per queued batch (0: CTR_BATCH_DEFAULT) */
    int queue_depth;           /* batches queued at most (0: CTR_QUEUE_DEFAULT) */
} ctr_stream_opts_t;

/* A batch of samples, one array per part (row-major where a sample has
 * several values). Allocated by ctr_batch_alloc, freed by ctr_batch_free. */
typedef struct {
    int n, cap;                /* samples held, room */
    float *label;              /* n: 0 or 1 */
    float *num;                /* n x CRITEO_NUM dense features: log(1 + max(I, 0)) */
    uint64_t *cat;             /* n x CRITEO_CAT ids (see criteo.h for missing ones) */
    uint32_t *missing;         /* n: bit f set when C(f+1) was empty */
} ctr_batch_t;

typedef struct {
    uint64_t epoch;            /* the epoch running (ctr_stream_rewind) */
    uint64_t samples;          /* delivered by ctr_stream_next this epoch */
    uint64_t parsed;           /* good lines the reader has parsed this epoch */
    uint64_t bad_lines;        /* lines skipped this epoch (CTR_BAD_SKIP) */
    uint64_t samples_total;    /* ... and since ctr_stream_new */
    uint64_t bad_lines_total;
    int parts;                 /* files or pieces of files this reader reads */
    int queued_peak;           /* most batches queued at once (at most queue_depth) */
    size_t memory;             /* bytes of queue, shuffle buffer and read buffer */
} ctr_stream_stats_t;

typedef struct ctr_stream_t ctr_stream_t;

/* Opens the source of o, works out this rank's part and starts reading
 * epoch 0. Returns a new stream the caller destroys, or NULL with err
 * ("NAME: 'SOURCE' matches no file", a .gz file that would have to be cut,
 * bad options, out of memory). */
ctr_stream_t *ctr_stream_new(const ctr_stream_opts_t *o, err_t *err);

/* Moves up to max samples (at most b->cap) of the epoch into b (b->n).
 * Returns how many: fewer than max only at the end of the epoch, 0 once it
 * has ended; or -1 with err when the reader failed (a bad line with
 * CTR_BAD_STOP: "FILE:LINE: what", a read error). The samples that had
 * left the shuffle buffer before the failure are delivered first (those
 * still in it are dropped). Never waits for a reader that has stopped. */
int ctr_stream_next(ctr_stream_t *s, ctr_batch_t *b, int max, err_t *err);

/* Starts epoch `epoch` from the beginning of the data (its own shuffle
 * order), abandoning what is left of the current one. Returns 0, or -1 with
 * err (the thread could not start). */
int ctr_stream_rewind(ctr_stream_t *s, uint64_t epoch, err_t *err);

/* Fills *st with the stream's counts (see ctr_stream_stats_t). */
void ctr_stream_stats(ctr_stream_t *s, ctr_stream_stats_t *st);

/* Stops the reader, frees *self_p (may be NULL) and sets it to NULL. */
void ctr_stream_destroy(ctr_stream_t **self_p);

/* Allocates room for cap samples in *b (n = 0). Returns 0, or -1 with err. */
int ctr_batch_alloc(ctr_batch_t *b, int cap, err_t *err);
/* Frees the arrays of *b and zeroes it. */
void ctr_batch_free(ctr_batch_t *b);

/* The files source names, as the stream reads them: *files gets a malloc'd
 * array of malloc'd paths (ctr_files_free). Returns their number (>= 1), or
 * -1 with err "NAME: 'SOURCE' matches no file" (name NULL: "source"). */
int ctr_files(const char *source, const char *name, char ***files, err_t *err);
void ctr_files_free(char ***files, int n);

/* The lines of part `rank` of `ranks` of source, split as a stream with
 * those options splits it (whole files, or the lines whose first byte lies
 * in a byte range): what that trainer's stream reads in an epoch, bad lines
 * included. Returns 0 with *lines, or -1 with err. */
int ctr_count_part_lines(const char *source, const char *name, int rank, int ranks,
                         uint64_t *lines, err_t *err);

#endif
