/* idx.c - reader for IDX files, raw or gzip (see idx.h). zlib reads both
 * transparently; whatever the range asked for, the file's length is checked
 * against its header so that a truncated or padded download is never used. */
#include "common/data/idx.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_TYPE_UBYTE 0x08
#define IDX_GZ_BUFFER (128u << 10)  /* zlib's input/output buffer */
#define IDX_SCRATCH (64u << 10)     /* skipped and counted bytes land here */
#define IDX_MAX_READ (1u << 30)     /* gzread takes an unsigned, returns an int */
#define IDX_TO_END SIZE_MAX
#define IDX_GROW_MIN (1u << 20)     /* first allocation of a gzip read */

/* An open IDX file positioned just after its header. */
typedef struct {
    gzFile gz;
    char tag[32];        /* how zlib names the file in gzerror: "<fd:N>" */
    int direct;          /* 1: raw file, 0: gzip */
    int regular;         /* a regular file, so its size is known from fstat */
    off_t file_size;
    size_t header_len;
    size_t data_bytes;   /* count * record_size, as the header announces */
} idx_file_t;

/* Returns the name of IDX type code `code`. */
static const char *idx_type_name(unsigned code)
{
    switch (code) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return "unknown type";
    }
}

/* Fills err with zlib's message for the last error on f ("PATH: ..."),
 * without zlib's own "<fd:N>: " prefix. Returns -1. */
static int idx_gz_error(const idx_file_t *f, const char *path, err_t *err)
{
    int errnum = Z_OK;
    const char *msg = gzerror(f->gz, &errnum);
    size_t tag_len = strlen(f->tag);
    if (msg && strncmp(msg, f->tag, tag_len) == 0 && strncmp(msg + tag_len, ": ", 2) == 0)
        msg += tag_len + 2;
    if (!msg || !*msg)
        msg = "unknown zlib error";
    if (errnum == Z_BUF_ERROR)
        return err_set(err, "%s: gzip stream truncated: %s", path, msg);
    if (errnum == Z_ERRNO)
        return err_set(err, "%s: read error: %s", path, msg);
    if (errnum == Z_MEM_ERROR)
        return err_set(err, "%s: %s", path, msg);
    return err_set(err, "%s: corrupt gzip data: %s", path, msg);
}

/* Reads up to len bytes of f (len = IDX_TO_END: to the end of the file) into
 * dst, or into scratch (IDX_SCRATCH bytes, reused) when dst is NULL. Sets *got
 * to the number of bytes read, fewer than len only at the end of the file.
 * Returns 0, or -1 with err set on a read or decompression error. */
static int idx_pull(const idx_file_t *f, uint8_t *dst, size_t len, uint8_t *scratch,
                    size_t *got, const char *path, err_t *err)
{
    *got = 0;
    while (*got < len) {
        size_t want = len - *got;
        size_t cap = dst ? IDX_MAX_READ : IDX_SCRATCH;
        unsigned chunk = (unsigned)(want < cap ? want : cap);
        int r = gzread(f->gz, dst ? dst + *got : scratch, chunk);
        if (r < 0)
            return idx_gz_error(f, path, err);
        *got += (size_t)r;
        if ((unsigned)r < chunk) {
            int errnum = Z_OK;
            gzerror(f->gz, &errnum);
            if (errnum != Z_OK)
                return idx_gz_error(f, path, err);
            break; /* end of file */
        }
    }
    return 0;
}

/* Reads up to len bytes of f into *buf, which it (re)allocates as data
 * arrives, from IDX_GROW_MIN bytes doubling up to len. Sets *got as idx_pull
 * does. Returns 0 (*buf holds len bytes if *got == len), or -1 with err set;
 * *buf is the caller's to free either way. */
static int idx_pull_grow(const idx_file_t *f, uint8_t **buf, size_t len, size_t *got,
                         const char *path, err_t *err)
{
    size_t cap = 0;
    *got = 0;
    while (*got < len) {
        if (*got == cap) {
            size_t next = cap ? (cap > len / 2 ? len : 2 * cap)
                              : (len < IDX_GROW_MIN ? len : IDX_GROW_MIN);
            uint8_t *p = realloc(*buf, next);
            if (!p)
                return err_set(err, "%s: out of memory for %zu bytes", path, next);
            *buf = p;
            cap = next;
        }
        size_t r;
        if (idx_pull(f, *buf + *got, cap - *got, NULL, &r, path, err) != 0)
            return -1;
        *got += r;
        if (*got < cap)
            break; /* end of file */
    }
    return 0;
}

/* Reads and checks the header of f into hdr (ndim, dims, count, record_size;
 * data stays NULL) and sets f->header_len and f->data_bytes. Returns 0, or -1
 * with err saying what is wrong. */
static int idx_read_header(idx_file_t *f, const char *path, idx_t *hdr, err_t *err)
{
    uint8_t head[4 + 4 * IDX_MAX_DIMS];
    size_t got;

    if (idx_pull(f, head, 4, NULL, &got, path, err) != 0)
        return -1;
    if (got < 4)
        return err_set(err, "%s: truncated: the file ends inside the IDX header (%zu bytes)",
                       path, got);
    if (head[0] != 0 || head[1] != 0)
        return err_set(err, "%s: not an IDX file: magic bytes are %02x %02x, expected 00 00",
                       path, head[0], head[1]);
    if (head[2] != IDX_TYPE_UBYTE)
        return err_set(err, "%s: unsupported IDX type code 0x%02x (%s): only 0x08 (unsigned "
                       "byte) is read", path, head[2], idx_type_name(head[2]));
    int ndim = head[3];
    if (ndim < 1 || ndim > IDX_MAX_DIMS)
        return err_set(err, "%s: the IDX header announces %d dimensions; 1 to %d are supported",
                       path, ndim, IDX_MAX_DIMS);
    size_t dims_len = 4 * (size_t)ndim;
    if (idx_pull(f, head + 4, dims_len, NULL, &got, path, err) != 0)
        return -1;
    if (got < dims_len)
        return err_set(err, "%s: truncated: the file ends inside the IDX header (%zu bytes)",
                       path, 4 + got);

    hdr->ndim = ndim;
    size_t record_size = 1;
    int overflow = 0;
    for (int d = 0; d < ndim; d++) {
        const uint8_t *p = head + 4 + 4 * d;
        hdr->dims[d] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (hdr->dims[d] == 0)
            return err_set(err, "%s: dimension %d of %d in the IDX header is 0", path, d + 1,
                           ndim);
        if (d > 0) {
            if (record_size > SIZE_MAX / hdr->dims[d])
                overflow = 1;
            else
                record_size *= hdr->dims[d];
        }
    }
    hdr->count = hdr->dims[0];
    if (overflow || record_size > SIZE_MAX / hdr->count)
        return err_set(err, "%s: the IDX dimensions announce more data than fits in memory "
                       "(size_t overflow)", path);
    hdr->record_size = record_size;
    hdr->data = NULL;
    f->header_len = 4 + dims_len;
    f->data_bytes = hdr->count * record_size;
    return 0;
}

/* Closes f (if open). */
static void idx_close(idx_file_t *f)
{
    if (f->gz)
        gzclose(f->gz);
    f->gz = NULL;
}

/* Opens PATH and reads its header into hdr. Returns 0 with f open just after
 * the header, or -1 with err set and nothing left open. */
static int idx_open(idx_file_t *f, const char *path, idx_t *hdr, err_t *err)
{
    memset(f, 0, sizeof *f);
    memset(hdr, 0, sizeof *hdr);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return err_set(err, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return err_set(err, "%s: is a directory", path);
    }
    snprintf(f->tag, sizeof f->tag, "<fd:%d>", fd);
    f->gz = gzdopen(fd, "rb");
    if (!f->gz) {
        close(fd);
        return err_set(err, "%s: cannot open: out of memory", path);
    }
    if (gzbuffer(f->gz, IDX_GZ_BUFFER) != 0) {
        err_set(err, "%s: cannot set the zlib buffer size", path);
        goto err_close;
    }
    f->direct = gzdirect(f->gz); /* looks at the first bytes: gzip or raw */
    f->regular = S_ISREG(st.st_mode);
    f->file_size = st.st_size;
    if (idx_read_header(f, path, hdr, err) != 0)
        goto err_close;
    return 0;

err_close:
    idx_close(f);
    return -1;
}

/* Fills err for a file whose data length `held` differs from what the header
 * announces. Returns -1. */
static int idx_length_error(const char *path, const idx_t *hdr, size_t data_bytes,
                            unsigned long long held, err_t *err)
{
    return err_set(err, "%s: %s: header announces %zu records of %zu bytes (%zu bytes) but "
                   "the file holds %llu bytes of data", path,
                   held < data_bytes ? "truncated" : "trailing data after the records",
                   hdr->count, hdr->record_size, data_bytes, held);
}

int idx_probe(const char *path, idx_t *hdr, err_t *err)
{
    idx_file_t f;
    if (idx_open(&f, path, hdr, err) != 0)
        return -1;
    idx_close(&f);
    return 0;
}

idx_t *idx_load(const char *path, size_t first, size_t n, err_t *err)
{
    idx_file_t f;
    idx_t hdr;
    idx_t *self = NULL;
    uint8_t *scratch = NULL;

    if (idx_open(&f, path, &hdr, err) != 0)
        return NULL;
    size_t count = hdr.count;
    if (first > count || n > count - first || (n == 0 && first == count)) {
        if (n == 0)
            err_set(err, "%s: no records from record %zu on: the file holds %zu", path, first,
                    count);
        else
            err_set(err, "%s: %zu records from record %zu requested but the file holds %zu",
                    path, n, first, count);
        goto err;
    }
    if (n == 0)
        n = count - first;

    self = calloc(1, sizeof *self);
    if (!self) {
        err_set(err, "%s: out of memory", path);
        goto err;
    }
    *self = hdr;
    self->dims[0] = (uint32_t)n; /* n <= count = dims[0] */
    self->count = n;
    size_t skip = first * hdr.record_size;
    size_t bytes = n * hdr.record_size; /* both <= data_bytes: no overflow */

    if (f.direct && f.regular) {
        /* Raw file: its size tells the length; seek and read only the range. */
        unsigned long long held = (unsigned long long)f.file_size - f.header_len;
        if (held != f.data_bytes) {
            idx_length_error(path, &hdr, f.data_bytes, held, err);
            goto err;
        }
        self->data = malloc(bytes);
        if (!self->data) {
            err_set(err, "%s: out of memory for %zu bytes", path, bytes);
            goto err;
        }
        z_off_t pos = (z_off_t)(f.header_len + skip);
        if (gzseek(f.gz, pos, SEEK_SET) != pos) {
            idx_gz_error(&f, path, err);
            goto err;
        }
        size_t got;
        if (idx_pull(&f, self->data, bytes, NULL, &got, path, err) != 0)
            goto err;
        if (got != bytes) {
            err_set(err, "%s: short read (%zu of %zu bytes): the file changed while being read",
                    path, got, bytes);
            goto err;
        }
    } else {
        /* gzip (or a pipe): the length is known only at the end of the stream,
         * and only the end of a gzip stream checks its CRC. The buffer grows
         * as data arrives, so a lying header cannot make us allocate more
         * than the file holds (about twice, at worst). */
        scratch = malloc(IDX_SCRATCH);
        if (!scratch) {
            err_set(err, "%s: out of memory", path);
            goto err;
        }
        size_t got, held = 0;
        if (idx_pull(&f, NULL, skip, scratch, &got, path, err) != 0)
            goto err;
        held += got;
        if (got == skip) {
            if (idx_pull_grow(&f, &self->data, bytes, &got, path, err) != 0)
                goto err;
            held += got;
            if (got == bytes) {
                if (idx_pull(&f, NULL, IDX_TO_END, scratch, &got, path, err) != 0)
                    goto err;
                held += got;
            }
        }
        if (held != f.data_bytes) {
            idx_length_error(path, &hdr, f.data_bytes, held, err);
            goto err;
        }
    }
    free(scratch);
    idx_close(&f);
    return self;

err:
    free(scratch);
    idx_close(&f);
    idx_destroy(&self);
    return NULL;
}

void idx_destroy(idx_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->data);
    free(*self_p);
    *self_p = NULL;
}
