/* test_checkpoint.c - CUnit suite "checkpoint": round trips of the one-file
 * model checkpoint (export/checkpoint.h) bit for bit, and every kind of
 * damaged or inconsistent file refused with a message naming the file and,
 * where there is one, the section. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <CUnit/CUnit.h>
#include <zlib.h>

#include "export/checkpoint.h"
#include "export/ckptdir.h"
#include "common/util/fsutil.h"
#include "common/nn/params.h"
#include "tests.h"

/* Fails the current test, showing msg, unless msg contains needle. */
#define FILE_MAX 8192 /* the test checkpoints are about 1 KB */

static const char *const SEC_NAME[] = {"?", "META", "CONFIG", "TENSORS", "PARAMS", "OPTSTATE",
                                       "DATAORDER", "NORM"};

static const char CONFIG_TEXT[] = "# Fashion-MNIST, M\xc3\xbcller's run \xe2\x9c\x93\n"
                                  "train = { epochs = 3; };\n";

/* ---- helpers ----------------------------------------------------------------- */

static void tmp_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tests_tmp_dir(), name);
}

/* conv1.weight [f,1,3,3], conv1.bias [f], fc.weight [3,f], fc.bias [3]:
 * 55 parameters for f = 4. */
static void make_table(param_table_t *tab, int f)
{
    err_t err;
    const int s0[] = {f, 1, 3, 3}, s1[] = {f}, s2[] = {3, f}, s3[] = {3};
    memset(tab, 0, sizeof *tab);
    CU_ASSERT_PTR_NOT_NULL_FATAL(params_add(tab, "conv1.weight", 4, s0, INIT_GLOROT_UNIFORM, &err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(params_add(tab, "conv1.bias", 1, s1, INIT_ZEROS, &err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(params_add(tab, "fc.weight", 2, s2, INIT_GLOROT_UNIFORM, &err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(params_add(tab, "fc.bias", 1, s3, INIT_ZEROS, &err));
}

/* Arbitrary 32-bit patterns read as floats: NaNs with payloads, infinities,
 * subnormals and -0 all occur, so only a bit-exact round trip passes. */
static float pattern(size_t i, uint32_t salt)
{
    uint32_t u = (uint32_t)(i * 2654435761u) ^ salt;
    if (i == 1)
        u = 0x7fc01234u; /* a quiet NaN with a payload */
    if (i == 2)
        u = 0x80000000u; /* -0 */
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* A calloc'd checkpoint of the f = 4 table with n_slots optimizer slots and
 * order_len bytes of data order (0: none). */
static checkpoint_t *make_ck(int n_slots, size_t order_len, const char *config)
{
    checkpoint_t *ck = calloc(1, sizeof *ck);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ck);
    make_table(&ck->table, 4);
    size_t n = ck->table.n_params;
    ck->step = 0x0123456789abcdefull;
    ck->clock = 77;
    ck->seed = 0xfedcba9876543210ull;
    ck->epoch = 0xdeadbeefu;
    ck->opt_kind = 2;
    ck->n_slots = n_slots;
    if (config) {
        ck->config_text = strdup(config);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ck->config_text);
    }
    ck->params = malloc(n * sizeof *ck->params);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ck->params);
    for (size_t i = 0; i < n; i++)
        ck->params[i] = pattern(i, 0x3f000000u);
    if (n_slots) {
        ck->opt_state = malloc((size_t)n_slots * n * sizeof *ck->opt_state);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ck->opt_state);
        for (size_t i = 0; i < (size_t)n_slots * n; i++)
            ck->opt_state[i] = pattern(i + 1000, 0x40000000u);
    }
    if (order_len) {
        ck->data_order = malloc(order_len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ck->data_order);
        for (size_t i = 0; i < order_len; i++)
            ck->data_order[i] = (uint8_t)(i * 37 + 5);
        ck->data_order_len = order_len;
    }
    return ck;
}

/* Gives ck a NORM section of kind (norm_t) over dim features: random means
 * in [0,1) and inverse deviations in [1,11), from seed. */
static void add_norm(checkpoint_t *ck, int kind, size_t dim, unsigned seed)
{
    ck->norm_kind = kind;
    ck->norm_dim = dim;
    ck->norm_mean = malloc(dim * sizeof(float));
    ck->norm_inv_std = malloc(dim * sizeof(float));
    CU_ASSERT_FATAL(ck->norm_mean && ck->norm_inv_std);
    for (size_t j = 0; j < dim; j++) {
        seed = seed * 1103515245u + 12345u;
        ck->norm_mean[j] = (float)(seed >> 8) / (float)(1u << 24);
        seed = seed * 1103515245u + 12345u;
        ck->norm_inv_std[j] = 1.0f + 10.0f * (float)(seed >> 8) / (float)(1u << 24);
    }
}

/* Reads path into buf (FILE_MAX bytes). Returns its length. */
static size_t slurp(const char *path, uint8_t *buf)
{
    FILE *f = fopen(path, "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    size_t n = fread(buf, 1, FILE_MAX, f);
    CU_ASSERT_FATAL(n < FILE_MAX && !ferror(f));
    fclose(f);
    return n;
}

/* Writes len bytes to path (plainly: corrupt files need no atomicity). */
static void spit(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    int ok = fwrite(data, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    CU_ASSERT_FATAL(ok);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void set_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void set_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* One section of a valid file, found by walk(). */
typedef struct {
    uint32_t id;
    size_t head, body, len; /* offsets of its header and payload, payload bytes */
} sec_t;

/* Lists the sections of a valid checkpoint file (written independently of
 * the reader, from the format in checkpoint.h). Returns how many. */
static int walk(const uint8_t *f, size_t len, sec_t *out)
{
    CU_ASSERT_FATAL(len >= 16 && memcmp(f, "PSTCKPT", 8) == 0 && le32(f + 8) == 1);
    int n = (int)le32(f + 12);
    CU_ASSERT_FATAL(n >= 4 && n <= 6);
    size_t pos = 16;
    for (int k = 0; k < n; k++) {
        out[k].id = le32(f + pos);
        out[k].head = pos;
        out[k].body = pos + 16;
        out[k].len = (size_t)(le32(f + pos + 4) | (uint64_t)le32(f + pos + 8) << 32);
        CU_ASSERT_FATAL(le32(f + pos + 12) == (uint32_t)crc32(0, f + pos + 16, (uInt)out[k].len));
        pos = out[k].body + out[k].len;
        CU_ASSERT_FATAL(pos <= len);
    }
    CU_ASSERT_FATAL(pos == len);
    return n;
}

/* One section for build(). */
typedef struct {
    uint32_t id;
    const uint8_t *data;
    size_t len;
} part_t;

/* Writes a checkpoint file of the given version and sections, with correct
 * CRCs, to out (FILE_MAX bytes). Returns its length. */
static size_t build(uint8_t *out, uint32_t version, const part_t *parts, int n)
{
    memcpy(out, "PSTCKPT", 8);
    set_le32(out + 8, version);
    set_le32(out + 12, (uint32_t)n);
    size_t pos = 16;
    for (int k = 0; k < n; k++) {
        CU_ASSERT_FATAL(pos + 16 + parts[k].len <= FILE_MAX);
        set_le32(out + pos, parts[k].id);
        set_le64(out + pos + 4, parts[k].len);
        set_le32(out + pos + 12, (uint32_t)crc32(0, parts[k].data, (uInt)parts[k].len));
        if (parts[k].len)
            memcpy(out + pos + 16, parts[k].data, parts[k].len);
        pos += 16 + parts[k].len;
    }
    return pos;
}

/* The sections of a valid file as parts (pointing into f). Returns how many. */
static int parts_of(const uint8_t *f, size_t len, part_t *parts)
{
    sec_t s[6];
    int n = walk(f, len, s);
    for (int k = 0; k < n; k++)
        parts[k] = (part_t){s[k].id, f + s[k].body, s[k].len};
    return n;
}

/* Writes a valid checkpoint (make_ck(n_slots, order_len)) to NAME and reads
 * its bytes into f. Returns the length. */
static size_t valid_file(const char *name, int n_slots, size_t order_len, uint8_t *f)
{
    char path[512];
    err_t err = {{0}};
    tmp_path(path, sizeof path, name);
    checkpoint_t *ck = make_ck(n_slots, order_len, CONFIG_TEXT);
    int rc = checkpoint_write(path, ck, &err);
    checkpoint_free(&ck);
    if (rc != 0)
        fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT_FATAL(rc == 0);
    return slurp(path, f);
}

/* Writes data to NAME, reads it as a checkpoint and checks that it is refused
 * with a message that begins with the path and contains needle. */
static void expect_refused(const char *name, const uint8_t *data, size_t len, const char *needle)
{
    char path[512], prefix[520];
    err_t err = {{0}};
    tmp_path(path, sizeof path, name);
    spit(path, data, len);
    checkpoint_t *ck = checkpoint_read(path, &err);
    CU_ASSERT_PTR_NULL(ck);
    checkpoint_free(&ck);
    snprintf(prefix, sizeof prefix, "%s: ", path);
    CU_ASSERT(strncmp(err.msg, prefix, strlen(prefix)) == 0);
    TESTS_ASSERT_HAS(err.msg, needle);
}

/* Reads path and checks that it equals ck in every field and byte. */
static void expect_equal(const char *path, const checkpoint_t *ck)
{
    err_t err = {{0}};
    checkpoint_t *got = checkpoint_read(path, &err);
    if (!got)
        fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    CU_ASSERT(got->step == ck->step && got->clock == ck->clock && got->seed == ck->seed);
    CU_ASSERT(got->epoch == ck->epoch && got->opt_kind == ck->opt_kind);
    CU_ASSERT(got->n_slots == ck->n_slots);
    CU_ASSERT_PTR_NOT_NULL(got->config_text);
    CU_ASSERT_STRING_EQUAL(got->config_text, ck->config_text ? ck->config_text : "");
    size_t n = ck->table.n_params;
    CU_ASSERT_FATAL(got->table.n_params == n && got->table.n == ck->table.n);
    for (int i = 0; i < ck->table.n; i++) {
        const param_spec_t *a = &got->table.t[i], *b = &ck->table.t[i];
        CU_ASSERT_STRING_EQUAL(a->name, b->name);
        CU_ASSERT(a->ndim == b->ndim && a->offset == b->offset && a->size == b->size);
        CU_ASSERT(memcmp(a->shape, b->shape, (size_t)b->ndim * sizeof b->shape[0]) == 0);
    }
    CU_ASSERT(memcmp(got->params, ck->params, n * sizeof *ck->params) == 0);
    if (ck->n_slots) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(got->opt_state);
        CU_ASSERT(memcmp(got->opt_state, ck->opt_state,
                         (size_t)ck->n_slots * n * sizeof *ck->opt_state) == 0);
    } else {
        CU_ASSERT_PTR_NULL(got->opt_state);
    }
    CU_ASSERT(got->data_order_len == ck->data_order_len);
    if (ck->data_order_len) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(got->data_order);
        CU_ASSERT(memcmp(got->data_order, ck->data_order, ck->data_order_len) == 0);
    } else {
        CU_ASSERT_PTR_NULL(got->data_order);
    }
    CU_ASSERT(got->norm_kind == ck->norm_kind);
    if (ck->norm_kind) {
        CU_ASSERT_FATAL(got->norm_dim == ck->norm_dim && got->norm_mean && got->norm_inv_std);
        CU_ASSERT(memcmp(got->norm_mean, ck->norm_mean, ck->norm_dim * sizeof(float)) == 0);
        CU_ASSERT(memcmp(got->norm_inv_std, ck->norm_inv_std, ck->norm_dim * sizeof(float)) == 0);
    } else {
        CU_ASSERT(got->norm_dim == 0 && !got->norm_mean && !got->norm_inv_std);
    }
    CU_ASSERT(checkpoint_match(got, &ck->table, path, &err) == 0);
    checkpoint_free(&got);
    CU_ASSERT_PTR_NULL(got);
}

/* Number of entries of dir whose name contains ".tmp.". */
static int count_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp."))
            n++;
    closedir(d);
    return n;
}

/* ---- round trips -------------------------------------------------------------- */

static void test_round_trip_full(void)
{
    char path[512];
    err_t err = {{0}};
    tmp_path(path, sizeof path, "full.ckpt");
    checkpoint_t *ck = make_ck(2, 37, CONFIG_TEXT);
    CU_ASSERT_FATAL(checkpoint_write(path, ck, &err) == 0);
    expect_equal(path, ck);
    uint8_t f[FILE_MAX];
    sec_t s[6];
    CU_ASSERT(walk(f, slurp(path, f), s) == 6);
    for (int k = 0; k < 6; k++)
        CU_ASSERT(s[k].id == (uint32_t)k + 1);
    CU_ASSERT(s[0].len == 44 && s[3].len == 55 * 4 && s[4].len == 2 * 55 * 4 && s[5].len == 37);
    /* META field by field, little-endian */
    CU_ASSERT(le32(f + s[0].body) == 0x89abcdefu && le32(f + s[0].body + 8) == 0xdeadbeefu);
    CU_ASSERT(le32(f + s[0].body + 28) == 55 && le32(f + s[0].body + 36) == 2);
    /* an overwrite replaces the file whole */
    ck->step = 99;
    ck->params[7] = 1.5f;
    CU_ASSERT_FATAL(checkpoint_write(path, ck, &err) == 0);
    expect_equal(path, ck);
    CU_ASSERT(count_temp_files(tests_tmp_dir()) == 0);
    checkpoint_free(&ck);
    CU_ASSERT_PTR_NULL(ck);
}

static void test_round_trip_minimal(void)
{
    char path[512];
    err_t err = {{0}};
    tmp_path(path, sizeof path, "minimal.ckpt");
    checkpoint_t *ck = make_ck(0, 0, NULL); /* no state, no order, no config text */
    CU_ASSERT_FATAL(checkpoint_write(path, ck, &err) == 0);
    expect_equal(path, ck);
    uint8_t f[FILE_MAX];
    sec_t s[6];
    CU_ASSERT(walk(f, slurp(path, f), s) == 4);
    CU_ASSERT(s[1].id == 2 && s[1].len == 0);
    checkpoint_free(&ck);

    /* state but no data order; data order but no state */
    ck = make_ck(1, 0, CONFIG_TEXT);
    CU_ASSERT_FATAL(checkpoint_write(path, ck, &err) == 0);
    expect_equal(path, ck);
    checkpoint_free(&ck);
    ck = make_ck(0, 1, "x");
    CU_ASSERT_FATAL(checkpoint_write(path, ck, &err) == 0);
    expect_equal(path, ck);
    checkpoint_free(&ck);

    /* an empty DATAORDER section from another writer reads as none */
    uint8_t g[FILE_MAX];
    part_t p[6];
    int n = parts_of(f, slurp(path, f), p);
    CU_ASSERT_FATAL(n == 5 && p[4].id == 6);
    p[4].len = 0;
    size_t len = build(g, 1, p, n);
    spit(path, g, len);
    ck = checkpoint_read(path, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ck);
    CU_ASSERT(ck->data_order == NULL && ck->data_order_len == 0);
    checkpoint_free(&ck);

    checkpoint_free(&ck); /* *ck_p == NULL */
    checkpoint_free(NULL);
}

/* NORM (per pixel, then global) written and read back bit for bit, laid out
 * as checkpoint.h says; a NORM whose length does not match its dim, or of
 * an unknown kind, is refused, and statistics without buffers are not
 * written. */
static void test_round_trip_norm(void)
{
    char path[512];
    err_t err = {{0}};
    tmp_path(path, sizeof path, "norm.ckpt");
    checkpoint_t *ck = make_ck(2, 0, CONFIG_TEXT);
    add_norm(ck, 2, 200, 11);
    CU_ASSERT_FATAL(checkpoint_write(path, ck, &err) == 0);
    expect_equal(path, ck);
    uint8_t f[FILE_MAX], g[FILE_MAX];
    sec_t s[6];
    size_t len = slurp(path, f);
    CU_ASSERT_FATAL(walk(f, len, s) == 6);
    CU_ASSERT_FATAL(s[5].id == 7 && s[5].len == 12 + 8 * 200);
    const uint8_t *d = f + s[5].body;
    CU_ASSERT(le32(d) == 2 && le32(d + 4) == 200 && le32(d + 8) == 0);
    float v;
    memcpy(&v, d + 12 + 4 * 17, 4); /* a little-endian host reads the floats as they are */
    CU_ASSERT(v == ck->norm_mean[17]);
    memcpy(&v, d + 12 + 4 * 200 + 4 * 199, 4);
    CU_ASSERT(v == ck->norm_inv_std[199]);
    checkpoint_free(&ck);
    ck = make_ck(0, 5, NULL);
    add_norm(ck, 1, 1, 3); /* global statistics of one feature */
    CU_ASSERT_FATAL(checkpoint_write(path, ck, &err) == 0);
    expect_equal(path, ck);

    /* NORM lengths that do not match its dim */
    part_t p[6], q[6];
    int n = parts_of(f, len, p);
    CU_ASSERT_FATAL(n == 6 && p[5].id == 7);
    uint8_t norm[12 + 8 * 200 + 8];
    memcpy(norm, p[5].data, p[5].len);
    memcpy(q, p, sizeof p);
    q[5].data = norm;
    q[5].len = p[5].len - 4; /* one float short */
    expect_refused("norm_short.ckpt", g, build(g, 1, q, n),
                   "section NORM: 1608 bytes do not hold 200 means and scales");
    q[5].len = p[5].len + 8; /* one feature too many */
    memset(norm + p[5].len, 0, 8);
    expect_refused("norm_long.ckpt", g, build(g, 1, q, n), "section NORM");
    q[5].len = p[5].len;
    set_le32(norm + 4, 201); /* dim one more than the floats */
    expect_refused("norm_dim.ckpt", g, build(g, 1, q, n),
                   "section NORM: 1612 bytes do not hold 201 means and scales");
    set_le64(norm + 4, 0xffffffffffffffffull);
    expect_refused("norm_dim2.ckpt", g, build(g, 1, q, n), "section NORM");
    set_le64(norm + 4, 0);
    expect_refused("norm_dim0.ckpt", g, build(g, 1, q, n), "section NORM");
    set_le64(norm + 4, 200);
    set_le32(norm, 3);
    expect_refused("norm_kind.ckpt", g, build(g, 1, q, n), "section NORM: kind 3");
    set_le32(norm, 2);
    CU_ASSERT(build(g, 1, q, n) == len && memcmp(g, f, len) == 0); /* the builder is exact */

    /* statistics announced without their buffers are not written */
    free(ck->norm_inv_std);
    ck->norm_inv_std = NULL;
    CU_ASSERT(checkpoint_write(path, ck, &err) == -1);
    TESTS_ASSERT_HAS(err.msg, path);
    TESTS_ASSERT_HAS(err.msg, "normalisation of 1 features without its statistics");
    checkpoint_free(&ck);
}

/* ---- damaged files ------------------------------------------------------------- */

/* Every prefix of a valid file is refused as truncated, inside a section's
 * header or payload with that section's name. */
static void test_truncation(void)
{
    static const struct {
        int slots;
        size_t order;
    } kinds[] = {{2, 37}, {0, 0}};
    for (size_t kind = 0; kind < 2; kind++) {
        uint8_t f[FILE_MAX];
        size_t len = valid_file("trunc_src.ckpt", kinds[kind].slots, kinds[kind].order, f);
        sec_t s[6];
        int n = walk(f, len, s);
        char path[512], prefix[520], needle[64];
        tmp_path(path, sizeof path, "trunc.ckpt");
        snprintf(prefix, sizeof prefix, "%s: ", path);
        int bad = 0;
        for (size_t cut = 0; cut < len; cut++) {
            spit(path, f, cut);
            err_t err = {{0}};
            checkpoint_t *ck = checkpoint_read(path, &err);
            snprintf(needle, sizeof needle, "truncated");
            for (int k = 0; k < n; k++)
                if (cut >= s[k].head + 4 && cut < s[k].body + s[k].len)
                    snprintf(needle, sizeof needle, "truncated in section %s", SEC_NAME[s[k].id]);
            if (ck || strncmp(err.msg, prefix, strlen(prefix)) != 0 || !strstr(err.msg, needle)) {
                if (bad++ < 5)
                    fprintf(stderr, "\n    cut at %zu: %s (wanted \"%s\")", cut,
                            ck ? "accepted" : err.msg, needle);
                checkpoint_free(&ck);
            }
        }
        CU_ASSERT(bad == 0);
    }
}

/* Any byte of a valid file changed (one bit, or all eight) is refused; in a
 * section's length, CRC or payload with that section's name. */
static void test_flipped_bytes(void)
{
    static const struct {
        int slots;
        size_t order;
    } kinds[] = {{2, 37}, {0, 0}};
    static const uint8_t masks[] = {0x01, 0x80, 0xff};
    for (size_t kind = 0; kind < 2; kind++) {
        uint8_t f[FILE_MAX];
        size_t len = valid_file("flip_src.ckpt", kinds[kind].slots, kinds[kind].order, f);
        sec_t s[6];
        int n = walk(f, len, s);
        char path[512], prefix[520], needle[64];
        tmp_path(path, sizeof path, "flip.ckpt");
        snprintf(prefix, sizeof prefix, "%s: ", path);
        int bad = 0;
        for (size_t at = 0; at < len; at++)
            for (size_t m = 0; m < sizeof masks; m++) {
                f[at] ^= masks[m];
                spit(path, f, len);
                f[at] ^= masks[m];
                err_t err = {{0}};
                checkpoint_t *ck = checkpoint_read(path, &err);
                needle[0] = '\0';
                if (at < 8)
                    snprintf(needle, sizeof needle, "(bad magic)");
                else if (at < 12)
                    snprintf(needle, sizeof needle, "format version");
                for (int k = 0; k < n; k++) {
                    if (at >= s[k].head + 4 && at < s[k].body + s[k].len)
                        snprintf(needle, sizeof needle, "section %s", SEC_NAME[s[k].id]);
                    if (at >= s[k].head + 12 && at < s[k].body + s[k].len)
                        snprintf(needle, sizeof needle, "section %s: CRC mismatch",
                                 SEC_NAME[s[k].id]);
                }
                if (ck || strncmp(err.msg, prefix, strlen(prefix)) != 0 ||
                    !strstr(err.msg, needle)) {
                    if (bad++ < 5)
                        fprintf(stderr, "\n    byte %zu ^ 0x%02x: %s (wanted \"%s\")", at,
                                masks[m], ck ? "accepted" : err.msg, needle);
                    checkpoint_free(&ck);
                }
            }
        CU_ASSERT(bad == 0);
    }
}

static void test_header(void)
{
    uint8_t f[FILE_MAX], g[FILE_MAX];
    size_t len = valid_file("header_src.ckpt", 0, 0, f);
    char path[512], want[600];
    err_t err = {{0}};

    memcpy(g, f, len);
    memcpy(g, "PSTCKPX", 8);
    expect_refused("magic.ckpt", g, len, "not a pstrain checkpoint (bad magic)");
    expect_refused("text.ckpt", (const uint8_t *)CONFIG_TEXT, strlen(CONFIG_TEXT), "(bad magic)");
    expect_refused("short.ckpt", (const uint8_t *)"PST", 3, "truncated in the file header");
    expect_refused("empty.ckpt", g, 0, "truncated in the file header");

    part_t p[6];
    int n = parts_of(f, len, p);
    size_t glen = build(g, 7, p, n);
    expect_refused("version.ckpt", g, glen, "format version");
    tmp_path(path, sizeof path, "version.ckpt");
    CU_ASSERT_PTR_NULL(checkpoint_read(path, &err));
    snprintf(want, sizeof want, "%s: format version 7, this pstrain reads 1", path);
    CU_ASSERT_STRING_EQUAL(err.msg, want);
    tmp_path(path, sizeof path, "magic.ckpt");
    CU_ASSERT_PTR_NULL(checkpoint_read(path, &err));
    snprintf(want, sizeof want, "%s: not a pstrain checkpoint (bad magic)", path);
    CU_ASSERT_STRING_EQUAL(err.msg, want);

    /* files that are not there, or not files */
    tmp_path(path, sizeof path, "absent.ckpt");
    CU_ASSERT_PTR_NULL(checkpoint_read(path, &err));
    TESTS_ASSERT_HAS(err.msg, path);
    TESTS_ASSERT_HAS(err.msg, "cannot open");
    CU_ASSERT_PTR_NULL(checkpoint_read(tests_tmp_dir(), &err));
    TESTS_ASSERT_HAS(err.msg, tests_tmp_dir());
    TESTS_ASSERT_HAS(err.msg, "not a regular file");
    tmp_path(path, sizeof path, "fifo.ckpt");
    CU_ASSERT_FATAL(mkfifo(path, 0644) == 0);
    CU_ASSERT_PTR_NULL(checkpoint_read(path, &err)); /* and does not wait for a writer */
    TESTS_ASSERT_HAS(err.msg, "not a regular file");
}

/* Sections that are each intact but do not make a file: wrong ids, order,
 * count, missing or extra. */
static void test_section_table(void)
{
    uint8_t f[FILE_MAX], g[FILE_MAX];
    size_t len = valid_file("table_src.ckpt", 0, 0, f);
    part_t p[6], q[8];
    int n = parts_of(f, len, p);
    CU_ASSERT_FATAL(n == 4);
    static const uint8_t junk[] = {1, 2, 3};

    memcpy(q, p, sizeof p); /* META CONFIG TENSORS PARAMS + id 9 */
    q[4] = (part_t){9, junk, sizeof junk};
    expect_refused("unknown.ckpt", g, build(g, 1, q, 5), "unknown section id 9");
    q[4].id = 8; /* SHARD, too short */
    expect_refused("shortshard.ckpt", g, build(g, 1, q, 5), "section SHARD: 3 bytes, expected 24");
    q[4].id = 7; /* NORM, too short for its head */
    expect_refused("shortnorm.ckpt", g, build(g, 1, q, 5), "section NORM: 3 bytes");
    q[4].id = 0;
    expect_refused("unknown0.ckpt", g, build(g, 1, q, 5), "unknown section id 0");
    q[0].id = 99;
    expect_refused("unknown99.ckpt", g, build(g, 1, q, 4), "unknown section id 99");

    q[0] = p[0], q[1] = p[1], q[2] = p[1], q[3] = p[2], q[4] = p[3];
    expect_refused("dup.ckpt", g, build(g, 1, q, 5), "section CONFIG appears twice");
    q[0] = p[0], q[1] = p[1], q[2] = p[2], q[3] = p[3], q[4] = p[0];
    expect_refused("dup2.ckpt", g, build(g, 1, q, 5), "section META appears twice");
    q[0] = p[0], q[1] = p[2], q[2] = p[1], q[3] = p[3];
    expect_refused("order.ckpt", g, build(g, 1, q, 4), "section CONFIG after section TENSORS");

    for (int drop = 0; drop < 4; drop++) {
        char needle[64];
        int m = 0;
        for (int k = 0; k < 4; k++)
            if (k != drop)
                q[m++] = p[k];
        snprintf(needle, sizeof needle, "missing section %s", SEC_NAME[p[drop].id]);
        expect_refused("missing.ckpt", g, build(g, 1, q, m), needle);
    }

    /* the header announces more or fewer sections than the file has */
    memcpy(g, f, len);
    set_le32(g + 12, 5);
    expect_refused("count_more.ckpt", g, len, "truncated after section PARAMS (4 of 5");
    set_le32(g + 12, 3);
    expect_refused("count_less.ckpt", g, len, "bytes after the last of the 3 sections");
    set_le32(g + 12, 0xffffffffu);
    expect_refused("count_huge.ckpt", g, len, "truncated after section PARAMS");
    memcpy(g, f, len);
    memcpy(g + len, junk, sizeof junk);
    expect_refused("trailing.ckpt", g, len + sizeof junk, "3 bytes after the last of the 4");

    /* a length field that points past the end of the file */
    sec_t s[6];
    walk(f, len, s);
    memcpy(g, f, len);
    set_le64(g + s[1].head + 4, 0xffffffffffffff00ull);
    expect_refused("length.ckpt", g, len, "truncated in section CONFIG");
}

/* META and the sections whose lengths it fixes. */
static void test_meta(void)
{
    uint8_t f[FILE_MAX], g[FILE_MAX], meta[64];
    size_t len = valid_file("meta_src.ckpt", 2, 5, f);
    part_t p[6], q[6];
    int n = parts_of(f, len, p);
    CU_ASSERT_FATAL(n == 6 && p[0].len == 44);

    memcpy(q, p, sizeof p);
    memcpy(meta, p[0].data, 44);
    q[0].data = meta;
    set_le64(meta + 28, 56); /* n_params one more than PARAMS holds */
    expect_refused("np.ckpt", g, build(g, 1, q, n),
                   "section PARAMS: 220 bytes, but META says 56 parameters");
    set_le64(meta + 28, 54);
    expect_refused("np2.ckpt", g, build(g, 1, q, n), "section PARAMS");
    set_le64(meta + 28, 0xffffffffffffffffull);
    expect_refused("np3.ckpt", g, build(g, 1, q, n), "section PARAMS");
    set_le64(meta + 28, 55);
    set_le32(meta + 36, 3); /* three slots, state for two */
    expect_refused("slots.ckpt", g, build(g, 1, q, n), "section OPTSTATE: 440 bytes");
    set_le32(meta + 36, 0xffffffffu);
    expect_refused("slots2.ckpt", g, build(g, 1, q, n), "section META");
    set_le32(meta + 36, 0); /* no slots, but a state section */
    expect_refused("slots3.ckpt", g, build(g, 1, q, n), "section OPTSTATE present");
    set_le32(meta + 36, 2);
    q[0].len = 43;
    expect_refused("metalen.ckpt", g, build(g, 1, q, n), "section META: 43 bytes, expected 44");
    q[0].len = 44;
    CU_ASSERT(build(g, 1, q, n) == len && memcmp(g, f, len) == 0); /* the builder is exact */

    /* one float more than two slots of 55: 111 / 2 would round down to 55 */
    uint8_t state[2 * 55 * 4 + 4] = {0};
    CU_ASSERT_FATAL(p[4].id == 5 && p[4].len == 2 * 55 * 4);
    memcpy(state, p[4].data, p[4].len);
    q[4] = (part_t){5, state, sizeof state};
    expect_refused("state1.ckpt", g, build(g, 1, q, n), "section OPTSTATE: 444 bytes");
    q[4] = p[4];

    /* two slots and no state section */
    q[4] = q[5];
    expect_refused("nostate.ckpt", g, build(g, 1, q, 5), "missing section OPTSTATE");

    /* a NUL inside the config text */
    static const uint8_t cfg[] = {'a', '=', 0, '1'};
    memcpy(q, p, sizeof p);
    q[1] = (part_t){2, cfg, sizeof cfg};
    expect_refused("nul.ckpt", g, build(g, 1, q, n), "section CONFIG: NUL byte at offset 2");
}

/* One tensor of the TENSORS section, for tensors_blob(). */
typedef struct {
    const char *name;
    uint32_t ndim, dims[4];
    uint64_t offset, size;
} tspec_t;

/* Encodes count and the tensors t[0..n) as a TENSORS payload into out.
 * Returns its length. */
static size_t tensors_blob(uint8_t *out, uint32_t count, const tspec_t *t, int n)
{
    size_t pos = 0;
    set_le32(out, count);
    pos += 4;
    for (int i = 0; i < n; i++) {
        size_t nl = strlen(t[i].name);
        out[pos] = (uint8_t)nl;
        out[pos + 1] = (uint8_t)(nl >> 8);
        memcpy(out + pos + 2, t[i].name, nl);
        pos += 2 + nl;
        set_le32(out + pos, t[i].ndim);
        pos += 4;
        for (uint32_t d = 0; d < t[i].ndim && d < 4; d++, pos += 4)
            set_le32(out + pos, t[i].dims[d]);
        set_le64(out + pos, t[i].offset);
        set_le64(out + pos + 8, t[i].size);
        pos += 16;
    }
    return pos;
}

/* A file whose TENSORS section holds the given tensors (55 parameters). */
static void expect_tensors_refused(const char *name, const part_t *p, uint32_t count,
                                   const tspec_t *t, int n, size_t trim, size_t extra,
                                   const char *needle)
{
    uint8_t blob[1024], g[FILE_MAX];
    size_t len = tensors_blob(blob, count, t, n);
    memset(blob + len, 0, extra);
    part_t q[4] = {p[0], p[1], {3, blob, len - trim + extra}, p[3]};
    expect_refused(name, g, build(g, 1, q, 4), "section TENSORS: ");
    expect_refused(name, g, build(g, 1, q, 4), needle);
}

static void test_tensor_table(void)
{
    uint8_t f[FILE_MAX], g[FILE_MAX], blob[1024];
    size_t len = valid_file("tensors_src.ckpt", 0, 0, f);
    part_t p[6];
    CU_ASSERT_FATAL(parts_of(f, len, p) == 4);
    const tspec_t good[4] = {
        {"conv1.weight", 4, {4, 1, 3, 3}, 0, 36},
        {"conv1.bias", 1, {4}, 36, 4},
        {"fc.weight", 2, {3, 4}, 40, 12},
        {"fc.bias", 1, {3}, 52, 3},
    };
    /* the encoder writes what the writer writes */
    size_t blen = tensors_blob(blob, 4, good, 4);
    CU_ASSERT(blen == p[2].len && memcmp(blob, p[2].data, blen) == 0);
    part_t q[4] = {p[0], p[1], {3, blob, blen}, p[3]};
    CU_ASSERT(build(g, 1, q, 4) == len && memcmp(g, f, len) == 0);

    tspec_t t[4];
    memcpy(t, good, sizeof t);
    t[2].name = "conv1.weight";
    expect_tensors_refused("t_dup.ckpt", p, 4, t, 4, 0, 0, "conv1.weight appears twice");
    memcpy(t, good, sizeof t);
    t[1].offset = 37;
    expect_tensors_refused("t_gap.ckpt", p, 4, t, 4, 0, 0, "conv1.bias: offset 37, expected 36");
    memcpy(t, good, sizeof t);
    t[0].size = 35;
    expect_tensors_refused("t_size.ckpt", p, 4, t, 4, 0, 0,
                           "conv1.weight: shape holds 36 floats, size says 35");
    expect_tensors_refused("t_short.ckpt", p, 3, good, 3, 0, 0,
                           "tensors cover 52 of the 55 parameters");
    memcpy(t, good, sizeof t);
    t[3].dims[0] = 4, t[3].size = 4;
    expect_tensors_refused("t_past.ckpt", p, 4, t, 4, 0, 0, "fc.bias: [52, +4) runs past");
    expect_tensors_refused("t_zero.ckpt", p, 0, good, 0, 0, 0, "0 tensors, not in 1..64");
    expect_tensors_refused("t_many.ckpt", p, 65, good, 4, 0, 0, "65 tensors");
    expect_tensors_refused("t_count.ckpt", p, 5, good, 4, 0, 0,
                           "tensor 4 runs past the end of the section");
    memcpy(t, good, sizeof t);
    t[1].name = "";
    expect_tensors_refused("t_noname.ckpt", p, 4, t, 4, 0, 0, "tensor 1: name of 0 bytes");
    t[1].name = "a_name_that_is_longer_than_the_forty_seven_bytes_allowed";
    expect_tensors_refused("t_longname.ckpt", p, 4, t, 4, 0, 0, "not in 1..47");
    memcpy(t, good, sizeof t);
    t[1].ndim = 5;
    expect_tensors_refused("t_rank.ckpt", p, 4, t, 4, 0, 0, "conv1.bias: rank 5 not in 1..4");
    t[1].ndim = 0;
    expect_tensors_refused("t_rank0.ckpt", p, 4, t, 4, 0, 0, "conv1.bias: rank 0 not in 1..4");
    memcpy(t, good, sizeof t);
    t[3].dims[0] = 0x80000003u;
    expect_tensors_refused("t_dim.ckpt", p, 4, t, 4, 0, 0, "fc.bias: dimension 0 is 2147483651");
    for (size_t trim = 1; trim <= 33; trim++) /* into each field of fc.bias */
        expect_tensors_refused("t_trunc.ckpt", p, 4, good, 4, trim, 0,
                               "tensor 3 runs past the end of the section");
    expect_tensors_refused("t_extra.ckpt", p, 4, good, 4, 0, 2, "2 bytes after the last tensor");
    /* a NUL inside a name */
    blen = tensors_blob(blob, 4, good, 4);
    blob[4 + 2 + 5] = '\0'; /* "conv1\0weight" */
    q[2].len = blen;
    expect_refused("t_nul.ckpt", g, build(g, 1, q, 4), "section TENSORS: tensor 0: NUL byte");
}

/* ---- matching and writing -------------------------------------------------------- */

static void test_match(void)
{
    checkpoint_t *ck = make_ck(0, 0, NULL);
    param_table_t tab;
    err_t err = {{0}};
    make_table(&tab, 4);
    CU_ASSERT(checkpoint_match(ck, &tab, "m.ckpt", &err) == 0);

    make_table(&tab, 8);
    CU_ASSERT(checkpoint_match(ck, &tab, "m.ckpt", &err) == -1);
    CU_ASSERT_STRING_EQUAL(err.msg,
                           "m.ckpt: checkpoint holds conv1.weight [4,1,3,3], "
                           "the model wants [8,1,3,3]");

    /* a tensor the checkpoint lacks; one the model lacks */
    const int s3[] = {3}, s4[] = {2, 5};
    make_table(&tab, 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(params_add(&tab, "fc2.weight", 2, s4, INIT_ZEROS, &err));
    CU_ASSERT(checkpoint_match(ck, &tab, "m.ckpt", &err) == -1);
    CU_ASSERT_STRING_EQUAL(err.msg,
                           "m.ckpt: checkpoint has no tensor fc2.weight, "
                           "the model wants fc2.weight [2,5]");
    tab.n = 3;
    tab.n_params = 52;
    CU_ASSERT(checkpoint_match(ck, &tab, NULL, &err) == -1);
    CU_ASSERT_STRING_EQUAL(err.msg,
                           "checkpoint holds fc.bias [3], which the model does not have");

    /* same tensors in another order */
    const int s0[] = {4, 1, 3, 3}, s1[] = {4}, s2[] = {3, 4};
    memset(&tab, 0, sizeof tab);
    CU_ASSERT_PTR_NOT_NULL_FATAL(params_add(&tab, "conv1.bias", 1, s1, INIT_ZEROS, &err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(params_add(&tab, "conv1.weight", 4, s0, INIT_ZEROS, &err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(params_add(&tab, "fc.weight", 2, s2, INIT_ZEROS, &err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(params_add(&tab, "fc.bias", 1, s3, INIT_ZEROS, &err));
    CU_ASSERT(checkpoint_match(ck, &tab, "m.ckpt", &err) == -1);
    CU_ASSERT_STRING_EQUAL(err.msg,
                           "m.ckpt: conv1.bias is at offset 36 in the checkpoint, 0 in the model");
    checkpoint_free(&ck);
}

static void test_write_errors(void)
{
    char path[600], dir[512];
    err_t err = {{0}};
    struct stat st;
    checkpoint_t *ck = make_ck(2, 3, CONFIG_TEXT);

    /* a folder that does not exist: nothing is created */
    tmp_path(dir, sizeof dir, "no_such_dir");
    snprintf(path, sizeof path, "%s/model.ckpt", dir);
    CU_ASSERT(checkpoint_write(path, ck, &err) == -1);
    TESTS_ASSERT_HAS(err.msg, path);
    CU_ASSERT(stat(dir, &st) != 0);

    /* the name is taken by a folder: the rename fails, the temporary file goes */
    tmp_path(dir, sizeof dir, "taken");
    CU_ASSERT_FATAL(mkdir(dir, 0755) == 0);
    snprintf(path, sizeof path, "%s/x", dir);
    CU_ASSERT_FATAL(mkdir(path, 0755) == 0); /* non-empty, so rename(2) cannot replace it */
    CU_ASSERT(checkpoint_write(dir, ck, &err) == -1);
    TESTS_ASSERT_HAS(err.msg, dir);
    CU_ASSERT(count_temp_files(tests_tmp_dir()) == 0);

    /* checkpoints the reader would refuse are not written; the old file stays */
    tmp_path(path, sizeof path, "keep.ckpt");
    CU_ASSERT_FATAL(checkpoint_write(path, ck, &err) == 0);
    checkpoint_t *bad = make_ck(2, 0, NULL);
    free(bad->opt_state);
    bad->opt_state = NULL;
    CU_ASSERT(checkpoint_write(path, bad, &err) == -1);
    TESTS_ASSERT_HAS(err.msg, path);
    TESTS_ASSERT_HAS(err.msg, "2 optimizer slots but no optimizer state");
    bad->n_slots = 0;
    bad->table.t[2].offset++;
    CU_ASSERT(checkpoint_write(path, bad, &err) == -1);
    TESTS_ASSERT_HAS(err.msg, "tensor table: fc.weight: offset 41, expected 40");
    bad->table.t[2].offset--;
    bad->table.n_params++;
    CU_ASSERT(checkpoint_write(path, bad, &err) == -1);
    TESTS_ASSERT_HAS(err.msg, "tensors cover 55 of the 56 parameters");
    bad->table.n_params--;
    bad->data_order_len = 4;
    CU_ASSERT(checkpoint_write(path, bad, &err) == -1);
    TESTS_ASSERT_HAS(err.msg, "data order of 4 bytes but no buffer");
    bad->data_order_len = 0;
    bad->n_slots = -1;
    CU_ASSERT(checkpoint_write(path, bad, &err) == -1);
    bad->n_slots = 0;
    CU_ASSERT(checkpoint_write(NULL, bad, &err) == -1);
    CU_ASSERT(checkpoint_write(path, NULL, &err) == -1);
    TESTS_ASSERT_HAS(err.msg, path);
    expect_equal(path, ck);
    CU_ASSERT(count_temp_files(tests_tmp_dir()) == 0);
    checkpoint_free(&bad);
    checkpoint_free(&ck);
}

/* Cuts whole (n_slots state) into k shards as servers would keep them:
 * shard i holds [b_i, b_{i+1}) with the optimizer slots of that range. */
static checkpoint_t *shard_of(const checkpoint_t *whole, int i, int k)
{
    size_t n = whole->table.n_params, b = n * (size_t)i / (size_t)k,
           e = n * (size_t)(i + 1) / (size_t)k, len = e - b;
    checkpoint_t *c = calloc(1, sizeof *c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    *c = *whole;
    c->config_text = strdup(whole->config_text);
    c->params = malloc((len ? len : 1) * sizeof(float));
    c->opt_state = whole->n_slots ? malloc((size_t)whole->n_slots * (len ? len : 1) * 4) : NULL;
    c->data_order = NULL;
    c->data_order_len = 0;
    c->norm_kind = 0;
    c->norm_mean = c->norm_inv_std = NULL;
    CU_ASSERT_FATAL(c->config_text && c->params);
    memcpy(c->params, whole->params + b, len * sizeof(float));
    for (int j = 0; j < whole->n_slots; j++)
        memcpy(c->opt_state + (size_t)j * len, whole->opt_state + (size_t)j * n + b,
               len * sizeof(float));
    c->n_shards = k;
    c->shard_index = i;
    c->shard_begin = b;
    c->shard_end = e;
    return c;
}

/* Shards written, read back and assembled give the whole model bit for bit;
 * shards that do not fit together are refused. */
static void test_shards(void)
{
    checkpoint_t *whole = make_ck(2, 0, "name = \"x\";");
    const size_t n = whole->table.n_params;
    enum { K = 3 };
    checkpoint_t *back[K];
    char names[K][512];
    const char *np[K];
    err_t err;
    for (int i = 0; i < K; i++) {
        checkpoint_t *c = shard_of(whole, K - 1 - i, K); /* any order */
        snprintf(names[i], sizeof names[i], "%s/shard%d.ckpt", tests_tmp_dir(), i);
        np[i] = names[i];
        CU_ASSERT_FATAL(checkpoint_write(names[i], c, &err) == 0);
        checkpoint_free(&c);
        back[i] = checkpoint_read(names[i], &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(back[i]);
        CU_ASSERT_EQUAL(back[i]->n_shards, K);
        CU_ASSERT_EQUAL(checkpoint_len(back[i]), back[i]->shard_end - back[i]->shard_begin);
    }
    checkpoint_t *a = checkpoint_assemble(back, np, K, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT(a->n_shards == 0 && a->table.n_params == n && a->step == whole->step);
    CU_ASSERT(memcmp(a->params, whole->params, n * 4) == 0);
    CU_ASSERT(memcmp(a->opt_state, whole->opt_state, 2 * n * 4) == 0);
    checkpoint_free(&a);

    /* a missing shard, a shard twice, a shard of another step */
    CU_ASSERT_PTR_NULL(checkpoint_assemble(back, np, K - 1, &err));
    TESTS_ASSERT_HAS(err.msg, "but 2 shard files are given");
    checkpoint_t *twice[K] = {back[0], back[0], back[2]};
    CU_ASSERT_PTR_NULL(checkpoint_assemble(twice, np, K, &err));
    TESTS_ASSERT_HAS(err.msg, "given twice");
    back[1]->step++;
    CU_ASSERT_PTR_NULL(checkpoint_assemble(back, np, K, &err));
    TESTS_ASSERT_HAS(err.msg, "not shards of one checkpoint (step differs)");
    back[1]->step--;
    back[1]->shard_begin++; /* a gap */
    CU_ASSERT_PTR_NULL(checkpoint_assemble(back, np, K, &err));
    TESTS_ASSERT_HAS(err.msg, "the shards must tile the parameters");
    back[1]->shard_begin--;
    for (int i = 0; i < K; i++)
        checkpoint_free(&back[i]);

    /* a shard range outside META's parameters is refused when read */
    checkpoint_t *c = shard_of(whole, 0, K);
    c->shard_end = n + 1;
    CU_ASSERT(checkpoint_write(names[0], c, &err) != 0);
    checkpoint_free(&c);
    checkpoint_free(&whole);
}

/* The checkpoint folders of a run: a step is used only once its manifest is
 * written; old ones beyond keep are removed; loading assembles the shards
 * with the manifest's data order and normalisation. */
static void test_ckptdir(void)
{
    char root[512];
    snprintf(root, sizeof root, "%s/run_ck/checkpoints", tests_tmp_dir());
    err_t err;
    checkpoint_t *whole = make_ck(1, 0, "name = \"x\";");
    const size_t n = whole->table.n_params;
    uint8_t order[32];
    for (int i = 0; i < 32; i++)
        order[i] = (uint8_t)(3 * i);
    float mean[5] = {0.1f, 0.2f, 0.3f, 0.4f, -0.5f}, inv[5] = {1, 2, 3, 4, 5.5f};
    CU_ASSERT(ckptdir_latest(root) == -1);
    for (long step = 10; step <= 40; step += 10) {
        char dir[600], path[700];
        CU_ASSERT_FATAL(ckptdir_step_dir(dir, sizeof dir, root, step, &err) == 0);
        CU_ASSERT_FATAL(fs_mkdirs(dir, &err) == 0);
        whole->step = (uint64_t)step;
        whole->params[0] = (float)step;
        for (int i = 0; i < 2; i++) {
            checkpoint_t *c = shard_of(whole, i, 2);
            CU_ASSERT_FATAL(ckptdir_part_path(path, sizeof path, root, step, i, 2, &err) == 0);
            CU_ASSERT_FATAL(checkpoint_write(path, c, &err) == 0);
            checkpoint_free(&c);
            if (step == 40) /* the last one never gets its manifest: a crash */
                break;
        }
        if (step == 40) {
            /* its manifest cannot be written while a part is missing */
            CU_ASSERT(ckptdir_commit(root, step, 1, 2, NULL, order, 32, 0, 0, NULL, NULL, 2, &err) != 0);
            TESTS_ASSERT_HAS(err.msg, "shard-1-of-2.ckpt: missing");
            break;
        }
        CU_ASSERT_FATAL(ckptdir_commit(root, step, (int)step / 10, 2, NULL, order, 32, 2, 5, mean, inv,
                                       2, &err) == 0);
    }
    /* keep = 2: step 10 went when 30 was committed; 40 is incomplete */
    CU_ASSERT_EQUAL(ckptdir_latest(root), 30);
    char dir[600];
    struct stat st;
    snprintf(dir, sizeof dir, "%s/step-000000010", root);
    CU_ASSERT(stat(dir, &st) != 0);
    snprintf(dir, sizeof dir, "%s/step-000000020", root);
    CU_ASSERT(stat(dir, &st) == 0);

    checkpoint_t *a = ckptdir_load(root, 30, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT(a->step == 30 && a->epoch == 3 && a->params[0] == 30.0f);
    CU_ASSERT(memcmp(a->params + 1, whole->params + 1, (n - 1) * 4) == 0);
    CU_ASSERT(a->data_order_len == 32 && memcmp(a->data_order, order, 32) == 0);
    CU_ASSERT(a->norm_kind == 2 && a->norm_dim == 5 && memcmp(a->norm_mean, mean, 20) == 0 &&
              memcmp(a->norm_inv_std, inv, 20) == 0);
    checkpoint_free(&a);

    /* --resume RUN_DIR takes the newest complete one */
    char run[600], used[4200];
    snprintf(run, sizeof run, "%s/run_ck", tests_tmp_dir());
    a = ckptdir_resume(run, used, sizeof used, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT(a->step == 30);
    TESTS_ASSERT_HAS(used, "step-000000030");
    checkpoint_free(&a);

    /* a damaged shard: the load names it */
    char path[700];
    CU_ASSERT_FATAL(ckptdir_part_path(path, sizeof path, root, 30, 1, 2, &err) == 0);
    FILE *f = fopen(path, "r+b");
    CU_ASSERT_FATAL(f != NULL);
    fseek(f, -3, SEEK_END);
    fputc(0x55, f);
    fclose(f);
    CU_ASSERT_PTR_NULL(ckptdir_load(root, 30, &err));
    TESTS_ASSERT_HAS(err.msg, "shard-1-of-2.ckpt: section SHARD: CRC mismatch");
    checkpoint_free(&whole);
}

/* The run folder --resume continues: a run folder itself, RUN for a file
 * in RUN/checkpoints/step-N/ and for that step folder (with or without a
 * trailing slash), a file's folder otherwise. */
static void test_run_dir(void)
{
    char run[600], step[700], file[800], buf[900];
    err_t err;
    snprintf(run, sizeof run, "%s/rd_run", tests_tmp_dir());
    snprintf(step, sizeof step, "%s/checkpoints/step-000000010", run);
    snprintf(file, sizeof file, "%s/model.ckpt", step);
    CU_ASSERT_FATAL(fs_mkdirs(step, &err) == 0);
    CU_ASSERT_FATAL(fs_write_atomic(file, "x", 1, &err) == 0);
    CU_ASSERT(ckptdir_run_dir(run, buf, sizeof buf, &err) == 0 && strcmp(buf, run) == 0);
    CU_ASSERT(ckptdir_run_dir(file, buf, sizeof buf, &err) == 0 && strcmp(buf, run) == 0);
    CU_ASSERT(ckptdir_run_dir(step, buf, sizeof buf, &err) == 0 && strcmp(buf, run) == 0);
    char slashed[720];
    snprintf(slashed, sizeof slashed, "%s/", step);
    CU_ASSERT(ckptdir_run_dir(slashed, buf, sizeof buf, &err) == 0 && strcmp(buf, run) == 0);
    snprintf(file, sizeof file, "%s/other.ckpt", run);
    CU_ASSERT(ckptdir_run_dir(file, buf, sizeof buf, &err) == 0 && strcmp(buf, run) == 0);
}

int test_checkpoint_register(void)
{
    CU_pSuite s = CU_add_suite("checkpoint", NULL, NULL);
    if (!s || !CU_add_test(s, "round_trip_full", test_round_trip_full) ||
        !CU_add_test(s, "round_trip_minimal", test_round_trip_minimal) ||
        !CU_add_test(s, "round_trip_norm", test_round_trip_norm) ||
        !CU_add_test(s, "truncation", test_truncation) ||
        !CU_add_test(s, "flipped_bytes", test_flipped_bytes) ||
        !CU_add_test(s, "header", test_header) ||
        !CU_add_test(s, "section_table", test_section_table) ||
        !CU_add_test(s, "meta", test_meta) ||
        !CU_add_test(s, "tensor_table", test_tensor_table) ||
        !CU_add_test(s, "match", test_match) ||
        !CU_add_test(s, "write_errors", test_write_errors) ||
        !CU_add_test(s, "shards", test_shards) || !CU_add_test(s, "ckptdir", test_ckptdir) ||
        !CU_add_test(s, "run_dir", test_run_dir))
        return -1;
    return 0;
}
