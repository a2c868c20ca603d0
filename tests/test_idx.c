/* test_idx.c - suite "idx": the IDX reader on the real Fashion-MNIST files and
 * on small generated files, raw and gzip, whole and in part, and its refusal
 * of every kind of broken file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/data/idx.h"
#include "tests.h"

/* Asserts that err holds a message containing `what` and the file's path. */
#define ASSERT_ERR_HAS(err, path, what)                            \
    do {                                                           \
        CU_ASSERT_PTR_NOT_NULL(strstr((err).msg, (path)));         \
        CU_ASSERT_PTR_NOT_NULL(strstr((err).msg, (what)));         \
    } while (0)

/* Joins tests_tmp_dir() and name into buf. */
static const char *tmp_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tests_tmp_dir(), name);
    return buf;
}

/* Writes len bytes to path; returns 0 or -1. */
static int write_raw(const char *path, const void *bytes, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(bytes, 1, len, f);
    int rc = fclose(f);
    return (w == len && rc == 0) ? 0 : -1;
}

/* Writes len bytes to path, gzip-compressed; returns 0 or -1. */
static int write_gz(const char *path, const void *bytes, size_t len)
{
    gzFile gz = gzopen(path, "wb");
    if (!gz)
        return -1;
    int w = len ? gzwrite(gz, bytes, (unsigned)len) : 0;
    int rc = gzclose(gz);
    return ((size_t)w == len && rc == Z_OK) ? 0 : -1;
}

/* Reads the whole of path into a malloc'd buffer; returns it (size in *len)
 * or NULL. */
static uint8_t *read_raw(const char *path, size_t *len)
{
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long sz = ftell(f);
        if (sz >= 0 && fseek(f, 0, SEEK_SET) == 0) {
            buf = malloc((size_t)sz + 1);
            if (buf && fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
                free(buf);
                buf = NULL;
            }
            *len = (size_t)sz;
        }
    }
    fclose(f);
    return buf;
}

/* Builds an IDX image in memory: header (type, ndim, dims) followed by
 * `extra` bytes beyond product(dims) (negative: fewer). The data bytes are
 * a fixed pattern, data[i] = (i * 7 + i / 13) & 0xff. Returns the malloc'd
 * buffer and its length in *len, or NULL. */
static uint8_t *make_idx(uint8_t type, int ndim, const uint32_t *dims, long extra, size_t *len)
{
    *len = 0;
    size_t data = 1;
    for (int d = 0; d < ndim; d++)
        data *= dims[d];
    size_t head = 4 + 4 * (size_t)ndim;
    size_t total = (size_t)((long)(head + data) + extra);
    uint8_t *buf = malloc(total ? total : 1);
    if (!buf)
        return NULL;
    buf[0] = 0;
    buf[1] = 0;
    buf[2] = type;
    buf[3] = (uint8_t)ndim;
    for (int d = 0; d < ndim; d++) {
        buf[4 + 4 * d] = (uint8_t)(dims[d] >> 24);
        buf[5 + 4 * d] = (uint8_t)(dims[d] >> 16);
        buf[6 + 4 * d] = (uint8_t)(dims[d] >> 8);
        buf[7 + 4 * d] = (uint8_t)dims[d];
    }
    for (size_t i = head; i < total; i++) {
        size_t k = i - head;
        buf[i] = (uint8_t)((k * 7 + k / 13) & 0xff);
    }
    *len = total;
    return buf;
}

/* Writes an IDX file from make_idx() to path (raw, or gzip if gz); returns
 * 0 or -1. */
static int write_idx(const char *path, int gz, uint8_t type, int ndim, const uint32_t *dims,
                     long extra)
{
    size_t len;
    uint8_t *buf = make_idx(type, ndim, dims, extra, &len);
    if (!buf)
        return -1;
    int rc = gz ? write_gz(path, buf, len) : write_raw(path, buf, len);
    free(buf);
    return rc;
}

static void test_idx_fashion_train(void)
{
    char images[1024], labels[1024];
    snprintf(images, sizeof images, "%s/train-images-idx3-ubyte.gz", tests_data_dir());
    snprintf(labels, sizeof labels, "%s/train-labels-idx1-ubyte.gz", tests_data_dir());
    err_t err = {{0}};

    idx_t *lab = idx_load(labels, 0, 0, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(lab);
    CU_ASSERT_EQUAL(lab->ndim, 1);
    CU_ASSERT_EQUAL(lab->dims[0], 60000);
    CU_ASSERT_EQUAL(lab->count, 60000);
    CU_ASSERT_EQUAL(lab->record_size, 1);
    const uint8_t first[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
    CU_ASSERT_EQUAL(memcmp(lab->data, first, sizeof first), 0);
    int max = 0;
    for (size_t i = 0; i < lab->count; i++)
        max = lab->data[i] > max ? lab->data[i] : max;
    CU_ASSERT_EQUAL(max, 9);

    idx_t *img = idx_load(images, 0, 0, &err);
    CU_ASSERT_PTR_NOT_NULL(img);
    if (img) {
        CU_ASSERT_EQUAL(img->ndim, 3);
        CU_ASSERT_EQUAL(img->dims[0], 60000);
        CU_ASSERT_EQUAL(img->dims[1], 28);
        CU_ASSERT_EQUAL(img->dims[2], 28);
        CU_ASSERT_EQUAL(img->count, 60000);
        CU_ASSERT_EQUAL(img->record_size, 784);

        /* A partial read of the same gzip file equals the slice. */
        idx_t *part = idx_load(images, 59990, 10, &err);
        CU_ASSERT_PTR_NOT_NULL(part);
        if (part) {
            CU_ASSERT_EQUAL(part->count, 10);
            CU_ASSERT_EQUAL(part->dims[0], 10);
            CU_ASSERT_EQUAL(part->dims[1], 28);
            CU_ASSERT_EQUAL(part->record_size, 784);
            CU_ASSERT_EQUAL(memcmp(part->data, img->data + 59990 * 784, 10 * 784), 0);
        }
        idx_destroy(&part);
    }
    idx_destroy(&img);
    CU_ASSERT_PTR_NULL(img);

    idx_t *head = idx_load(labels, 0, 10, &err);
    CU_ASSERT_PTR_NOT_NULL(head);
    if (head)
        CU_ASSERT_EQUAL(memcmp(head->data, first, sizeof first), 0);
    idx_destroy(&head);
    idx_destroy(&lab);
}

static void test_idx_fashion_test(void)
{
    char images[1024], labels[1024];
    snprintf(images, sizeof images, "%s/t10k-images-idx3-ubyte.gz", tests_data_dir());
    snprintf(labels, sizeof labels, "%s/t10k-labels-idx1-ubyte.gz", tests_data_dir());
    err_t err = {{0}};
    idx_t hdr;
    CU_ASSERT_EQUAL_FATAL(idx_probe(images, &hdr, &err), 0);
    CU_ASSERT_EQUAL(hdr.ndim, 3);
    CU_ASSERT_EQUAL(hdr.count, 10000);
    CU_ASSERT_EQUAL(hdr.record_size, 784);
    CU_ASSERT_PTR_NULL(hdr.data);
    idx_t *lab = idx_load(labels, 0, 0, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(lab);
    CU_ASSERT_EQUAL(lab->count, 10000);
    idx_destroy(&lab);
}

/* Writes dims as raw and gzip, loads both whole and compares with the
 * generated bytes. */
static void roundtrip(int ndim, const uint32_t *dims, const char *name)
{
    char raw[1024], gzp[1024], tmp[256];
    snprintf(tmp, sizeof tmp, "%s.idx", name);
    tmp_path(raw, sizeof raw, tmp);
    snprintf(tmp, sizeof tmp, "%s.idx.gz", name);
    tmp_path(gzp, sizeof gzp, tmp);
    CU_ASSERT_EQUAL_FATAL(write_idx(raw, 0, 0x08, ndim, dims, 0), 0);
    CU_ASSERT_EQUAL_FATAL(write_idx(gzp, 1, 0x08, ndim, dims, 0), 0);
    size_t len;
    uint8_t *want = make_idx(0x08, ndim, dims, 0, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(want);
    size_t head = 4 + 4 * (size_t)ndim;
    size_t rec = 1;
    for (int d = 1; d < ndim; d++)
        rec *= dims[d];

    const char *paths[2] = {raw, gzp};
    for (int k = 0; k < 2; k++) {
        err_t err = {{0}};
        idx_t *idx = idx_load(paths[k], 0, 0, &err);
        CU_ASSERT_PTR_NOT_NULL(idx);
        if (!idx)
            continue;
        CU_ASSERT_EQUAL(idx->ndim, ndim);
        for (int d = 0; d < ndim; d++)
            CU_ASSERT_EQUAL(idx->dims[d], dims[d]);
        CU_ASSERT_EQUAL(idx->count, dims[0]);
        CU_ASSERT_EQUAL(idx->record_size, rec);
        CU_ASSERT_EQUAL(memcmp(idx->data, want + head, len - head), 0);
        idx_destroy(&idx);
    }
    free(want);
}

static void test_idx_roundtrip(void)
{
    const uint32_t d1[1] = {1000};
    const uint32_t d2[2] = {17, 3};
    const uint32_t d3[3] = {23, 7, 5};
    const uint32_t d4[4] = {5, 2, 3, 4};
    const uint32_t one[3] = {1, 1, 1};
    roundtrip(1, d1, "rt1");
    roundtrip(2, d2, "rt2");
    roundtrip(3, d3, "rt3");
    roundtrip(4, d4, "rt4");
    roundtrip(3, one, "rt_one");
}

static void test_idx_partial(void)
{
    const uint32_t dims[3] = {40, 6, 5};
    const size_t rec = 30;
    char raw[1024], gzp[1024];
    tmp_path(raw, sizeof raw, "part.idx");
    tmp_path(gzp, sizeof gzp, "part.idx.gz");
    CU_ASSERT_EQUAL_FATAL(write_idx(raw, 0, 0x08, 3, dims, 0), 0);
    CU_ASSERT_EQUAL_FATAL(write_idx(gzp, 1, 0x08, 3, dims, 0), 0);
    const char *paths[2] = {raw, gzp};
    const size_t ranges[][2] = {{0, 0}, {0, 1}, {0, 40}, {39, 1}, {39, 0}, {5, 10},
                                {17, 0}, {1, 38}, {20, 20}};
    for (int k = 0; k < 2; k++) {
        err_t err = {{0}};
        idx_t *full = idx_load(paths[k], 0, 0, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(full);
        for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
            size_t first = ranges[r][0], n = ranges[r][1];
            size_t want_n = n ? n : 40 - first;
            idx_t *part = idx_load(paths[k], first, n, &err);
            CU_ASSERT_PTR_NOT_NULL(part);
            if (!part)
                continue;
            CU_ASSERT_EQUAL(part->count, want_n);
            CU_ASSERT_EQUAL(part->dims[0], want_n);
            CU_ASSERT_EQUAL(part->dims[1], 6);
            CU_ASSERT_EQUAL(part->dims[2], 5);
            CU_ASSERT_EQUAL(part->record_size, rec);
            CU_ASSERT_EQUAL(memcmp(part->data, full->data + first * rec, want_n * rec), 0);
            idx_destroy(&part);
        }
        /* Ranges past the end are refused with the path. */
        const size_t bad[][2] = {{0, 41}, {40, 1}, {40, 0}, {41, 0}, {30, 11},
                                 {1, (size_t)-1}};
        for (size_t r = 0; r < sizeof bad / sizeof bad[0]; r++) {
            err.msg[0] = 0;
            idx_t *part = idx_load(paths[k], bad[r][0], bad[r][1], &err);
            CU_ASSERT_PTR_NULL(part);
            idx_destroy(&part);
            ASSERT_ERR_HAS(err, paths[k], "40");
        }
        idx_destroy(&full);
    }
}

static void test_idx_truncated(void)
{
    const uint32_t dims[3] = {10, 4, 4};
    char raw[1024], gzp[1024];
    tmp_path(raw, sizeof raw, "trunc.idx");
    tmp_path(gzp, sizeof gzp, "trunc.idx.gz");
    /* Data one record and a bit short (a gzip of a truncated file is a
     * valid gzip stream: only the IDX length check can catch it). */
    CU_ASSERT_EQUAL_FATAL(write_idx(raw, 0, 0x08, 3, dims, -21), 0);
    CU_ASSERT_EQUAL_FATAL(write_idx(gzp, 1, 0x08, 3, dims, -21), 0);
    const char *paths[2] = {raw, gzp};
    for (int k = 0; k < 2; k++) {
        err_t err = {{0}};
        idx_t *idx = idx_load(paths[k], 0, 0, &err);
        CU_ASSERT_PTR_NULL(idx);
        idx_destroy(&idx);
        ASSERT_ERR_HAS(err, paths[k], "truncated");
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "10 records of 16 bytes (160 bytes)"));
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "holds 139"));
        /* Even a read of the intact first records checks the length. */
        err.msg[0] = 0;
        idx = idx_load(paths[k], 0, 2, &err);
        CU_ASSERT_PTR_NULL(idx);
        idx_destroy(&idx);
        ASSERT_ERR_HAS(err, paths[k], "truncated");
    }

    /* Files that end inside the header. */
    char hp[1024];
    tmp_path(hp, sizeof hp, "trunc_head.idx");
    const uint8_t head[] = {0, 0, 8, 3, 0, 0, 0, 10, 0, 0};
    const size_t cuts[] = {0, 2, 4, 9};
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        for (int gz = 0; gz < 2; gz++) {
            CU_ASSERT_EQUAL_FATAL(gz ? write_gz(hp, head, cuts[c]) : write_raw(hp, head, cuts[c]),
                                  0);
            err_t err = {{0}};
            idx_t *idx = idx_load(hp, 0, 0, &err);
            CU_ASSERT_PTR_NULL(idx);
            idx_destroy(&idx);
            ASSERT_ERR_HAS(err, hp, "truncated");
        }
    }
}

static void test_idx_trailing(void)
{
    const uint32_t dims[2] = {10, 4};
    char raw[1024], gzp[1024];
    tmp_path(raw, sizeof raw, "trail.idx");
    tmp_path(gzp, sizeof gzp, "trail.idx.gz");
    CU_ASSERT_EQUAL_FATAL(write_idx(raw, 0, 0x08, 2, dims, 3), 0);
    CU_ASSERT_EQUAL_FATAL(write_idx(gzp, 1, 0x08, 2, dims, 3), 0);
    const char *paths[2] = {raw, gzp};
    for (int k = 0; k < 2; k++) {
        err_t err = {{0}};
        idx_t *idx = idx_load(paths[k], 0, 0, &err);
        CU_ASSERT_PTR_NULL(idx);
        idx_destroy(&idx);
        ASSERT_ERR_HAS(err, paths[k], "trailing");
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "holds 43"));
        err.msg[0] = 0;
        idx = idx_load(paths[k], 3, 2, &err);
        CU_ASSERT_PTR_NULL(idx);
        idx_destroy(&idx);
        ASSERT_ERR_HAS(err, paths[k], "trailing");
    }
}

static void test_idx_bad_magic(void)
{
    char p[1024];
    tmp_path(p, sizeof p, "magic.idx");
    size_t len;
    const uint32_t dims[1] = {5};
    uint8_t *buf = make_idx(0x08, 1, dims, 0, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    buf[1] = 0x01;
    for (int gz = 0; gz < 2; gz++) {
        CU_ASSERT_EQUAL_FATAL(gz ? write_gz(p, buf, len) : write_raw(p, buf, len), 0);
        err_t err = {{0}};
        idx_t *idx = idx_load(p, 0, 0, &err);
        CU_ASSERT_PTR_NULL(idx);
        idx_destroy(&idx);
        ASSERT_ERR_HAS(err, p, "magic");
    }
    free(buf);

    /* A text file is not an IDX file either. */
    const char text[] = "hello, world\n";
    CU_ASSERT_EQUAL_FATAL(write_raw(p, text, sizeof text - 1), 0);
    err_t err = {{0}};
    idx_t *idx = idx_load(p, 0, 0, &err);
    CU_ASSERT_PTR_NULL(idx);
    idx_destroy(&idx);
    ASSERT_ERR_HAS(err, p, "magic");
}

static void test_idx_bad_type(void)
{
    char p[1024];
    tmp_path(p, sizeof p, "type.idx");
    const uint32_t dims[2] = {3, 2};
    const uint8_t types[] = {0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x42};
    const char *names[] = {"0x09", "0x0b", "0x0c", "0x0d (float)", "0x0e (double)", "0x42"};
    for (size_t i = 0; i < sizeof types; i++) {
        for (int gz = 0; gz < 2; gz++) {
            CU_ASSERT_EQUAL_FATAL(write_idx(p, gz, types[i], 2, dims, 0), 0);
            err_t err = {{0}};
            idx_t *idx = idx_load(p, 0, 0, &err);
            CU_ASSERT_PTR_NULL(idx);
            idx_destroy(&idx);
            ASSERT_ERR_HAS(err, p, names[i]);
        }
    }
}

static void test_idx_bad_dims(void)
{
    char p[1024];
    tmp_path(p, sizeof p, "dims.idx");
    err_t err = {{0}};
    idx_t *idx;

    /* 0 and 5 dimensions. */
    const uint32_t five[5] = {2, 2, 2, 2, 2};
    CU_ASSERT_EQUAL_FATAL(write_idx(p, 0, 0x08, 0, five, 0), 0);
    idx = idx_load(p, 0, 0, &err);
    CU_ASSERT_PTR_NULL(idx);
    idx_destroy(&idx);
    ASSERT_ERR_HAS(err, p, "0 dimensions");
    CU_ASSERT_EQUAL_FATAL(write_idx(p, 1, 0x08, 5, five, 0), 0);
    err.msg[0] = 0;
    idx = idx_load(p, 0, 0, &err);
    CU_ASSERT_PTR_NULL(idx);
    idx_destroy(&idx);
    ASSERT_ERR_HAS(err, p, "5 dimensions");

    /* A zero dimension, first or later. */
    const uint32_t zero_first[3] = {0, 28, 28};
    const uint32_t zero_last[3] = {10, 28, 0};
    CU_ASSERT_EQUAL_FATAL(write_idx(p, 0, 0x08, 3, zero_first, 0), 0);
    err.msg[0] = 0;
    idx = idx_load(p, 0, 0, &err);
    CU_ASSERT_PTR_NULL(idx);
    idx_destroy(&idx);
    ASSERT_ERR_HAS(err, p, "dimension 1 of 3");
    CU_ASSERT_EQUAL_FATAL(write_idx(p, 1, 0x08, 3, zero_last, 0), 0);
    err.msg[0] = 0;
    idx = idx_load(p, 0, 0, &err);
    CU_ASSERT_PTR_NULL(idx);
    idx_destroy(&idx);
    ASSERT_ERR_HAS(err, p, "dimension 3 of 3");

    /* Dimensions whose product overflows size_t: only the header is written. */
    const uint8_t huge[] = {0, 0, 8, 4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3};
    CU_ASSERT_EQUAL_FATAL(write_raw(p, huge, sizeof huge), 0);
    err.msg[0] = 0;
    idx = idx_load(p, 0, 1, &err);
    CU_ASSERT_PTR_NULL(idx);
    idx_destroy(&idx);
    ASSERT_ERR_HAS(err, p, "overflow");

    /* Large but representable dimensions with no data: truncated. */
    const uint8_t big[] = {0, 0, 8, 2, 0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 1};
    CU_ASSERT_EQUAL_FATAL(write_gz(p, big, sizeof big), 0);
    err.msg[0] = 0;
    idx = idx_load(p, 0, 1, &err);
    CU_ASSERT_PTR_NULL(idx);
    idx_destroy(&idx);
    ASSERT_ERR_HAS(err, p, "truncated");
}

/* Writes a gzip IDX of moderately compressible data to path and returns the
 * compressed bytes (length in *len), or NULL. */
static uint8_t *make_gz_file(const char *path, size_t *len)
{
    *len = 0;
    const uint32_t dims[3] = {200, 16, 16};
    size_t raw_len;
    uint8_t *buf = make_idx(0x08, 3, dims, 0, &raw_len);
    if (!buf)
        return NULL;
    uint32_t s = 12345;
    for (size_t i = 16; i < raw_len; i++) { /* a small alphabet: Huffman-coded blocks */
        s = s * 1103515245u + 12345u;
        buf[i] = (uint8_t)((s >> 16) % 11);
    }
    int rc = write_gz(path, buf, raw_len);
    free(buf);
    if (rc != 0)
        return NULL;
    return read_raw(path, len);
}

static void test_idx_corrupt_gzip(void)
{
    char p[1024], q[1024];
    tmp_path(p, sizeof p, "good.idx.gz");
    tmp_path(q, sizeof q, "corrupt.idx.gz");
    size_t len = 0;
    uint8_t *gz = make_gz_file(p, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(gz);
    CU_ASSERT_FATAL(len > 200);

    err_t err = {{0}};
    idx_t *idx = idx_load(p, 0, 0, &err);
    CU_ASSERT_PTR_NOT_NULL(idx);
    idx_destroy(&idx);

    /* Bytes flipped in the middle of the compressed data, at a few places;
     * also when only the first records are asked for. */
    const double where[] = {0.3, 0.5, 0.7, 0.9};
    for (size_t w = 0; w < sizeof where / sizeof where[0]; w++) {
        uint8_t *bad = malloc(len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(bad);
        memcpy(bad, gz, len);
        size_t at = (size_t)(where[w] * (double)len);
        for (size_t i = at; i < at + 4; i++)
            bad[i] ^= 0x5a;
        CU_ASSERT_EQUAL_FATAL(write_raw(q, bad, len), 0);
        free(bad);
        for (size_t n = 0; n <= 1; n++) {
            err.msg[0] = 0;
            idx = idx_load(q, 0, n, &err);
            CU_ASSERT_PTR_NULL(idx);
            idx_destroy(&idx);
            CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, q));
            CU_ASSERT(strlen(err.msg) > strlen(q) + 2);
        }
    }

    /* The CRC in the trailer is checked. */
    uint8_t *bad = malloc(len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bad);
    memcpy(bad, gz, len);
    bad[len - 8] ^= 0xff;
    CU_ASSERT_EQUAL_FATAL(write_raw(q, bad, len), 0);
    free(bad);
    err.msg[0] = 0;
    idx = idx_load(q, 0, 0, &err);
    CU_ASSERT_PTR_NULL(idx);
    idx_destroy(&idx);
    ASSERT_ERR_HAS(err, q, "incorrect data check");

    /* A .gz cut short: zlib reports the unexpected end. */
    const size_t cuts[] = {len / 2, len - 4, 12};
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        CU_ASSERT_EQUAL_FATAL(write_raw(q, gz, cuts[c]), 0);
        err.msg[0] = 0;
        idx = idx_load(q, 0, 0, &err);
        CU_ASSERT_PTR_NULL(idx);
        idx_destroy(&idx);
        ASSERT_ERR_HAS(err, q, "truncated");
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "unexpected end of file"));
        CU_ASSERT_PTR_NULL(strstr(err.msg, "<fd:"));
    }
    free(gz);
}

static void test_idx_missing(void)
{
    char p[1024];
    tmp_path(p, sizeof p, "no-such-file.idx.gz");
    err_t err = {{0}};
    idx_t *idx = idx_load(p, 0, 0, &err);
    CU_ASSERT_PTR_NULL(idx);
    ASSERT_ERR_HAS(err, p, strerror(ENOENT));
    idx_t hdr;
    err.msg[0] = 0;
    CU_ASSERT_EQUAL(idx_probe(p, &hdr, &err), -1);
    ASSERT_ERR_HAS(err, p, strerror(ENOENT));

    /* A directory is refused too. */
    err.msg[0] = 0;
    idx = idx_load(tests_tmp_dir(), 0, 0, &err);
    CU_ASSERT_PTR_NULL(idx);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, tests_tmp_dir()));

    /* A NULL err is allowed. */
    CU_ASSERT_PTR_NULL(idx_load(p, 0, 0, NULL));
}

static void test_idx_destroy_null(void)
{
    idx_t *idx = NULL;
    idx_destroy(&idx);
    idx_destroy(NULL);
    CU_ASSERT_PTR_NULL(idx);
}

int test_idx_register(void)
{
    CU_pSuite s = CU_add_suite("idx", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "fashion_train", test_idx_fashion_train) ||
        !CU_add_test(s, "fashion_test", test_idx_fashion_test) ||
        !CU_add_test(s, "roundtrip", test_idx_roundtrip) ||
        !CU_add_test(s, "partial", test_idx_partial) ||
        !CU_add_test(s, "truncated", test_idx_truncated) ||
        !CU_add_test(s, "trailing", test_idx_trailing) ||
        !CU_add_test(s, "bad_magic", test_idx_bad_magic) ||
        !CU_add_test(s, "bad_type", test_idx_bad_type) ||
        !CU_add_test(s, "bad_dims", test_idx_bad_dims) ||
        !CU_add_test(s, "corrupt_gzip", test_idx_corrupt_gzip) ||
        !CU_add_test(s, "missing", test_idx_missing) ||
        !CU_add_test(s, "destroy_null", test_idx_destroy_null))
        return -1;
    return 0;
}
