/* fixture.c - reads the PyTorch reference tensor files (format in fixture.h).
 * The file is read whole and parsed with a cursor that checks every length
 * against the bytes left, so a corrupt or truncated file is an error, never
 * an out-of-bounds read. */
#include "fixture.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURE_MAGIC "PSTFIXT\0"
#define FIXTURE_VERSION 1u
/* Fixtures are a few KB; anything beyond this is not one of ours. */
#define FIXTURE_MAX_BYTES ((size_t)256 << 20)

typedef struct {
    char *name;
    int ndim;
    int dims[FIXTURE_MAX_DIMS];
    size_t count;
    float *data;
} tensor_t;

struct fixture_t {
    size_t n;
    tensor_t *tensors;
};

/* Bounds-checked little-endian reader over a byte buffer. */
typedef struct {
    const unsigned char *p;
    size_t left;
} cursor_t;

static int take(cursor_t *c, size_t n, const unsigned char **out)
{
    if (n > c->left)
        return -1;
    *out = c->p;
    c->p += n;
    c->left -= n;
    return 0;
}

static int read_u16(cursor_t *c, uint16_t *v)
{
    const unsigned char *b;
    if (take(c, 2, &b) != 0)
        return -1;
    *v = (uint16_t)(b[0] | (b[1] << 8));
    return 0;
}

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static int read_u32(cursor_t *c, uint32_t *v)
{
    const unsigned char *b;
    if (take(c, 4, &b) != 0)
        return -1;
    *v = le32(b);
    return 0;
}

/* Reads all of PATH into a new buffer. Returns 0, or -1 with err set
 * (without the path prefix). */
static int read_file(const char *path, unsigned char **buf_p, size_t *len_p, err_t *err)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return err_set(err, "cannot open: %s", strerror(errno));
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            if (cap >= FIXTURE_MAX_BYTES) {
                err_set(err, "larger than %zu bytes", FIXTURE_MAX_BYTES);
                goto err;
            }
            size_t ncap = cap ? cap * 2 : 65536;
            unsigned char *nbuf = realloc(buf, ncap);
            if (!nbuf) {
                err_set(err, "out of memory");
                goto err;
            }
            buf = nbuf;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, fp);
        len += got;
        if (got == 0) {
            if (ferror(fp)) {
                err_set(err, "read error");
                goto err;
            }
            break;
        }
    }
    fclose(fp);
    *buf_p = buf;
    *len_p = len;
    return 0;
err:
    free(buf);
    fclose(fp);
    return -1;
}

static const tensor_t *find(const fixture_t *f, const char *name)
{
    if (!f || !name)
        return NULL;
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

/* Parses tensor number IDX at the cursor into t (whose fields must be zero).
 * Returns 0, or -1 with err set; on error t may hold allocations that the
 * caller frees. */
static int parse_tensor(cursor_t *c, size_t idx, tensor_t *t, err_t *err)
{
    uint16_t name_len;
    const unsigned char *b;
    if (read_u16(c, &name_len) != 0 || take(c, name_len, &b) != 0)
        return err_set(err, "tensor %zu: truncated name", idx);
    if (name_len == 0)
        return err_set(err, "tensor %zu: empty name", idx);
    if (memchr(b, '\0', name_len))
        return err_set(err, "tensor %zu: NUL in name", idx);
    t->name = malloc((size_t)name_len + 1);
    if (!t->name)
        return err_set(err, "out of memory");
    memcpy(t->name, b, name_len);
    t->name[name_len] = '\0';

    uint32_t ndim;
    if (read_u32(c, &ndim) != 0)
        return err_set(err, "%s: truncated header", t->name);
    if (ndim > FIXTURE_MAX_DIMS)
        return err_set(err, "%s: %u dimensions (at most %d)", t->name, ndim, FIXTURE_MAX_DIMS);
    t->ndim = (int)ndim;
    size_t count = 1;
    for (int d = 0; d < FIXTURE_MAX_DIMS; d++) {
        t->dims[d] = 1;
        if (d >= t->ndim)
            continue;
        uint32_t dim;
        if (read_u32(c, &dim) != 0)
            return err_set(err, "%s: truncated dimensions", t->name);
        /* The data must fit in the bytes left, which bounds every product. */
        if (dim > INT_MAX || (dim != 0 && count > c->left / 4 / dim))
            return err_set(err, "%s: truncated, or dimensions too large for the %zu bytes left", t->name, c->left);
        t->dims[d] = (int)dim;
        count *= dim;
    }
    if (take(c, count * 4, &b) != 0)
        return err_set(err, "%s: truncated data (%zu values, %zu bytes left)", t->name, count,
                       c->left);
    t->count = count;
    /* At least one element so that an empty tensor still has a non-NULL pointer. */
    t->data = malloc((count ? count : 1) * sizeof(float));
    if (!t->data)
        return err_set(err, "out of memory");
    for (size_t i = 0; i < count; i++) {
        uint32_t u = le32(b + 4 * i);
        memcpy(&t->data[i], &u, sizeof u);
    }
    return 0;
}

fixture_t *fixture_load(const char *path, err_t *err)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    fixture_t *f = NULL;
    if (read_file(path, &buf, &len, err) != 0)
        goto err;

    cursor_t c = {buf, len};
    const unsigned char *magic;
    uint32_t version, n;
    if (take(&c, 8, &magic) != 0 || memcmp(magic, FIXTURE_MAGIC, 8) != 0) {
        err_set(err, "bad magic (not a pstrain fixture)");
        goto err;
    }
    if (read_u32(&c, &version) != 0 || read_u32(&c, &n) != 0) {
        err_set(err, "truncated header");
        goto err;
    }
    if (version != FIXTURE_VERSION) {
        err_set(err, "version %u (expected %u)", version, FIXTURE_VERSION);
        goto err;
    }
    /* The smallest tensor record (1-byte name, scalar) takes 2 + 1 + 4 + 4 bytes. */
    if (n > c.left / 11) {
        err_set(err, "%u tensors cannot fit in %zu bytes", n, c.left);
        goto err;
    }

    f = calloc(1, sizeof *f);
    if (!f || (n && !(f->tensors = calloc(n, sizeof *f->tensors)))) {
        err_set(err, "out of memory");
        goto err;
    }
    for (uint32_t i = 0; i < n; i++) {
        f->n = (size_t)i + 1; /* so that destroy frees tensor i's partial allocations */
        if (parse_tensor(&c, i, &f->tensors[i], err) != 0)
            goto err;
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(f->tensors[j].name, f->tensors[i].name) == 0) {
                err_set(err, "duplicate tensor %s", f->tensors[i].name);
                goto err;
            }
    }
    if (c.left != 0) {
        err_set(err, "%zu trailing bytes after %u tensors", c.left, n);
        goto err;
    }
    free(buf);
    return f;
err:
    err_prefix(err, "%s", path);
    fixture_destroy(&f);
    free(buf);
    return NULL;
}

const float *fixture_get(const fixture_t *f, const char *name, size_t *count)
{
    const tensor_t *t = find(f, name);
    if (!t)
        return NULL;
    if (count)
        *count = t->count;
    return t->data;
}

int fixture_shape(const fixture_t *f, const char *name, int *ndim, int dims[FIXTURE_MAX_DIMS])
{
    const tensor_t *t = find(f, name);
    if (!t)
        return -1;
    if (ndim)
        *ndim = t->ndim;
    if (dims)
        memcpy(dims, t->dims, sizeof t->dims);
    return 0;
}

size_t fixture_size(const fixture_t *f)
{
    return f ? f->n : 0;
}

const char *fixture_name(const fixture_t *f, size_t i)
{
    return f && i < f->n ? f->tensors[i].name : NULL;
}

void fixture_destroy(fixture_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fixture_t *f = *self_p;
    for (size_t i = 0; i < f->n; i++) {
        free(f->tensors[i].name);
        free(f->tensors[i].data);
    }
    free(f->tensors);
    free(f);
    *self_p = NULL;
}
