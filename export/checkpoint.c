/* checkpoint.c - writes and reads the one-file model checkpoint (format in
 * checkpoint.h). The reader trusts nothing in the file: every length is
 * checked against what is left of the buffer before it is used. */
#include "export/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "common/util/fsutil.h"
#include "common/util/le.h"

static const uint8_t MAGIC[8] = "PSTCKPT"; /* 7 letters and the NUL */

enum { SEC_META = 1, SEC_CONFIG, SEC_TENSORS, SEC_PARAMS, SEC_OPTSTATE, SEC_DATAORDER, SEC_NORM,
       SEC_SHARD, SEC_N };

static const char *const SEC_NAME[SEC_N] = {
    NULL, "META", "CONFIG", "TENSORS", "PARAMS", "OPTSTATE", "DATAORDER", "NORM", "SHARD",
};

#define FILE_HEAD 16u /* magic, version, number of sections */
#define SEC_HEAD 16u  /* id, length, CRC */
#define META_LEN 44u  /* 8 + 4 + 8 + 8 + 8 + 4 + 4 */

/* ---- little-endian encoding: common/util/le.h ---------------------------- */

static void put_bytes(uint8_t **p, const void *src, size_t n)
{
    if (n)
        memcpy(*p, src, n);
    *p += n;
}

/* A read position inside one section: get_* return -1 when fewer bytes are
 * left than asked for, and then move nothing. */
typedef struct {
    const uint8_t *p;
    size_t left;
} rd_t;

static int get_u16(rd_t *r, uint16_t *v)
{
    if (r->left < 2)
        return -1;
    *v = le_load16(r->p);
    r->p += 2;
    r->left -= 2;
    return 0;
}

static int get_u32(rd_t *r, uint32_t *v)
{
    if (r->left < 4)
        return -1;
    *v = le_load32(r->p);
    r->p += 4;
    r->left -= 4;
    return 0;
}

static int get_u64(rd_t *r, uint64_t *v)
{
    if (r->left < 8)
        return -1;
    *v = le_load64(r->p);
    r->p += 8;
    r->left -= 8;
    return 0;
}

/* zlib's crc32 takes a 32-bit length; feed it in pieces. */
static uint32_t crc_of(const uint8_t *p, uint64_t n)
{
    uLong c = crc32(0L, Z_NULL, 0);
    while (n > 0) {
        uInt piece = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, piece);
        p += piece;
        n -= piece;
    }
    return (uint32_t)c;
}

/* ---- the tensor table ------------------------------------------------------ */

/* Checks that tab can be stored and read back: 1..PARAMS_MAX tensors with
 * unique non-empty names, ranks 1..4, non-negative dims whose product is the
 * size, laid out one after the other from offset 0 to exactly n_params > 0.
 * Returns 0, or -1 with err naming the tensor. */
static int table_check(const param_table_t *tab, uint64_t n_params, err_t *err)
{
    if (tab->n < 1 || tab->n > PARAMS_MAX)
        return err_set(err, "%d tensors, not in 1..%d", tab->n, PARAMS_MAX);
    uint64_t next = 0;
    for (int i = 0; i < tab->n; i++) {
        const param_spec_t *p = &tab->t[i];
        size_t nl = strnlen(p->name, PARAM_NAME_LEN);
        if (nl == 0 || nl == PARAM_NAME_LEN)
            return err_set(err, "tensor %d: name empty or not under %d bytes", i,
                           PARAM_NAME_LEN);
        if (p->ndim < 1 || p->ndim > 4)
            return err_set(err, "%s: rank %d not in 1..4", p->name, p->ndim);
        uint64_t size = 1;
        for (int d = 0; d < p->ndim; d++) {
            if (p->shape[d] < 0)
                return err_set(err, "%s: dimension %d is %d", p->name, d, p->shape[d]);
            if (p->shape[d] > 0 && size > UINT64_MAX / (uint64_t)p->shape[d])
                return err_set(err, "%s: shape overflows", p->name);
            size *= (uint64_t)p->shape[d];
        }
        if (size != (uint64_t)p->size)
            return err_set(err, "%s: shape holds %llu floats, size says %llu", p->name,
                           (unsigned long long)size, (unsigned long long)p->size);
        if ((uint64_t)p->offset != next)
            return err_set(err, "%s: offset %llu, expected %llu (tensors lie end to end)",
                           p->name, (unsigned long long)p->offset, (unsigned long long)next);
        if (size > n_params - next)
            return err_set(err, "%s: [%llu, +%llu) runs past the %llu parameters", p->name,
                           (unsigned long long)next, (unsigned long long)size,
                           (unsigned long long)n_params);
        next += size;
        for (int j = 0; j < i; j++)
            if (strcmp(tab->t[j].name, p->name) == 0)
                return err_set(err, "tensor name %s appears twice", p->name);
    }
    if (next != n_params)
        return err_set(err, "tensors cover %llu of the %llu parameters", (unsigned long long)next,
                       (unsigned long long)n_params);
    if (n_params == 0)
        return err_set(err, "no parameters");
    return 0;
}

/* "[32,1,3,3]" into buf (at least 64 bytes). */
static void shape_str(char *buf, size_t len, const param_spec_t *p)
{
    size_t n = 0;
    buf[n++] = '[';
    for (int d = 0; d < p->ndim && d < 4; d++) {
        int w = snprintf(buf + n, len - n, d ? ",%d" : "%d", p->shape[d]);
        if (w < 0 || (size_t)w >= len - n - 1)
            break;
        n += (size_t)w;
    }
    buf[n++] = ']';
    buf[n] = '\0';
}

/* ---- writing ----------------------------------------------------------------- */

/* Bytes of each section's payload (0 where the section is absent, see have[]).
 * Returns 0, or -1 with err when ck cannot be written. */
static int plan(const checkpoint_t *ck, uint64_t len[SEC_N], int have[SEC_N], err_t *err)
{
    const param_table_t *tab = &ck->table;
    if (tab->n_params > CHECKPOINT_MAX_BYTES / 4)
        return err_set(err, "%zu parameters are over the %llu-byte checkpoint limit",
                       tab->n_params, CHECKPOINT_MAX_BYTES);
    if (table_check(tab, tab->n_params, err) != 0)
        return err_prefix(err, "tensor table");
    if (!ck->params)
        return err_set(err, "no parameter values");
    if (ck->n_slots < 0)
        return err_set(err, "%d optimizer slots", ck->n_slots);
    if (ck->opt_kind < 0)
        return err_set(err, "optimizer kind %d", ck->opt_kind);
    if (ck->n_slots > 0 && !ck->opt_state)
        return err_set(err, "%d optimizer slots but no optimizer state", ck->n_slots);
    if (ck->data_order_len > 0 && !ck->data_order)
        return err_set(err, "data order of %zu bytes but no buffer", ck->data_order_len);

    memset(have, 0, SEC_N * sizeof *have);
    memset(len, 0, SEC_N * sizeof *len);
    have[SEC_META] = have[SEC_CONFIG] = have[SEC_TENSORS] = have[SEC_PARAMS] = 1;
    len[SEC_META] = META_LEN;
    len[SEC_CONFIG] = ck->config_text ? strlen(ck->config_text) : 0;
    len[SEC_TENSORS] = 4;
    for (int i = 0; i < tab->n; i++)
        len[SEC_TENSORS] += 2 + strlen(tab->t[i].name) + 4 + 4 * (uint64_t)tab->t[i].ndim + 16;
    const size_t held = checkpoint_len(ck);
    if (ck->n_shards != 0) {
        if (ck->n_shards < 0 || ck->shard_index < 0 || ck->shard_index >= ck->n_shards ||
            ck->shard_begin > ck->shard_end || ck->shard_end > tab->n_params)
            return err_set(err, "shard %d of %d, [%zu, %zu) of %zu parameters", ck->shard_index,
                           ck->n_shards, ck->shard_begin, ck->shard_end, tab->n_params);
        have[SEC_SHARD] = 1;
        len[SEC_SHARD] = 24;
    }
    len[SEC_PARAMS] = 4 * (uint64_t)held;
    if (ck->n_slots > 0) {
        have[SEC_OPTSTATE] = 1;
        if ((uint64_t)ck->n_slots > CHECKPOINT_MAX_BYTES / 4 / (held ? held : 1))
            return err_set(err, "%d optimizer slots of %zu parameters are over the %llu-byte "
                           "checkpoint limit", ck->n_slots, held, CHECKPOINT_MAX_BYTES);
        len[SEC_OPTSTATE] = 4 * (uint64_t)ck->n_slots * held;
    }
    if (ck->data_order_len > 0) {
        have[SEC_DATAORDER] = 1;
        if (ck->data_order_len > CHECKPOINT_MAX_BYTES)
            return err_set(err, "data order of %zu bytes is over the checkpoint limit",
                           ck->data_order_len);
        len[SEC_DATAORDER] = ck->data_order_len;
    }
    if (ck->norm_kind != 0) {
        if (ck->norm_kind < 0 || ck->norm_kind > 2)
            return err_set(err, "normalisation kind %d", ck->norm_kind);
        if (!ck->norm_mean || !ck->norm_inv_std || ck->norm_dim == 0 ||
            ck->norm_dim > CHECKPOINT_MAX_BYTES / 8)
            return err_set(err, "normalisation of %zu features without its statistics",
                           ck->norm_dim);
        have[SEC_NORM] = 1;
        len[SEC_NORM] = 12 + 8 * (uint64_t)ck->norm_dim;
    }
    /* each term is at most the limit, so the sum cannot wrap */
    uint64_t total = FILE_HEAD;
    for (int id = 1; id < SEC_N; id++)
        if (have[id])
            total += SEC_HEAD + len[id];
    if (total > CHECKPOINT_MAX_BYTES || total > SIZE_MAX)
        return err_set(err, "checkpoint of %llu bytes is over the %llu-byte limit",
                       (unsigned long long)total, CHECKPOINT_MAX_BYTES);
    return 0;
}

/* Writes the payload of section id at *p (len[id] bytes). */
static void put_section(uint8_t **p, int id, const checkpoint_t *ck)
{
    const param_table_t *tab = &ck->table;
    switch (id) {
    case SEC_META:
        le_write64(p, ck->step);
        le_write32(p, ck->epoch);
        le_write64(p, ck->clock);
        le_write64(p, ck->seed);
        le_write64(p, tab->n_params);
        le_write32(p, (uint32_t)ck->n_slots);
        le_write32(p, (uint32_t)ck->opt_kind);
        break;
    case SEC_CONFIG:
        if (ck->config_text)
            put_bytes(p, ck->config_text, strlen(ck->config_text));
        break;
    case SEC_TENSORS:
        le_write32(p, (uint32_t)tab->n);
        for (int i = 0; i < tab->n; i++) {
            const param_spec_t *t = &tab->t[i];
            size_t nl = strlen(t->name);
            le_write16(p, (uint16_t)nl);
            put_bytes(p, t->name, nl);
            le_write32(p, (uint32_t)t->ndim);
            for (int d = 0; d < t->ndim; d++)
                le_write32(p, (uint32_t)t->shape[d]);
            le_write64(p, t->offset);
            le_write64(p, t->size);
        }
        break;
    case SEC_PARAMS:
        le_write_floats(p, ck->params, checkpoint_len(ck));
        break;
    case SEC_OPTSTATE:
        le_write_floats(p, ck->opt_state, (size_t)ck->n_slots * checkpoint_len(ck));
        break;
    case SEC_SHARD:
        le_write64(p, ck->shard_begin);
        le_write64(p, ck->shard_end);
        le_write32(p, (uint32_t)ck->shard_index);
        le_write32(p, (uint32_t)ck->n_shards);
        break;
    case SEC_DATAORDER:
        put_bytes(p, ck->data_order, ck->data_order_len);
        break;
    case SEC_NORM:
        le_write32(p, (uint32_t)ck->norm_kind);
        le_write64(p, ck->norm_dim);
        le_write_floats(p, ck->norm_mean, ck->norm_dim);
        le_write_floats(p, ck->norm_inv_std, ck->norm_dim);
        break;
    }
}

int checkpoint_write(const char *path, const checkpoint_t *ck, err_t *err)
{
    if (!path)
        return err_set(err, "checkpoint_write: no path");
    if (!ck)
        return err_set(err, "%s: no checkpoint to write", path);
    uint64_t len[SEC_N];
    int have[SEC_N];
    if (plan(ck, len, have, err) != 0)
        return err_prefix(err, "%s", path);
    size_t total = FILE_HEAD, n_sec = 0;
    for (int id = 1; id < SEC_N; id++)
        if (have[id]) {
            total += SEC_HEAD + (size_t)len[id];
            n_sec++;
        }
    uint8_t *buf = malloc(total);
    if (!buf)
        return err_set(err, "%s: out of memory for %zu bytes", path, total);
    uint8_t *p = buf;
    put_bytes(&p, MAGIC, sizeof MAGIC);
    le_write32(&p, CHECKPOINT_VERSION);
    le_write32(&p, (uint32_t)n_sec);
    for (int id = 1; id < SEC_N; id++) {
        if (!have[id])
            continue;
        uint8_t *head = p, *body = p + SEC_HEAD;
        p = body;
        put_section(&p, id, ck);
        uint64_t n = (uint64_t)(p - body);
        if (n != len[id]) { /* plan() and put_section() disagree: a bug here */
            free(buf);
            return err_set(err, "%s: section %s: wrote %llu bytes, planned %llu", path,
                           SEC_NAME[id], (unsigned long long)n, (unsigned long long)len[id]);
        }
        le_write32(&head, (uint32_t)id);
        le_write64(&head, n);
        le_write32(&head, crc_of(body, n));
    }
    int rc = fs_write_atomic(path, buf, total, err);
    free(buf);
    return rc;
}

/* ---- reading ------------------------------------------------------------------ */

/* Reads the whole of path (a regular file of at most CHECKPOINT_MAX_BYTES)
 * into a malloc'd buffer. Returns it, or NULL with err naming the path. */
static uint8_t *read_file(const char *path, size_t *len, err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block us */
    if (fd < 0) {
        err_set(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        err_set(err, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        err_set(err, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    if ((unsigned long long)st.st_size > CHECKPOINT_MAX_BYTES ||
        (unsigned long long)st.st_size > SIZE_MAX) {
        err_set(err, "%s: %lld bytes, over the %llu-byte checkpoint limit", path,
                (long long)st.st_size, CHECKPOINT_MAX_BYTES);
        close(fd);
        return NULL;
    }
    size_t want = (size_t)st.st_size, got = 0;
    uint8_t *buf = malloc(want ? want : 1);
    if (!buf) {
        err_set(err, "%s: out of memory for %zu bytes", path, want);
        close(fd);
        return NULL;
    }
    while (got < want) {
        ssize_t n = read(fd, buf + got, want - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err_set(err, "%s: read failed: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return NULL;
        }
        if (n == 0) /* the file shrank: parse what there is, which reports it */
            break;
        got += (size_t)n;
    }
    close(fd);
    *len = got;
    return buf;
}

/* Where each section lies in the file buffer. */
typedef struct {
    int have[SEC_N];
    const uint8_t *data[SEC_N];
    uint64_t len[SEC_N];
} sections_t;

/* Checks the file header and the section framing (order, lengths, CRCs) of
 * buf and fills s. Returns 0, or -1 with err (without the path). */
static int parse_frame(const uint8_t *buf, size_t len, sections_t *s, err_t *err)
{
    memset(s, 0, sizeof *s);
    if (len < sizeof MAGIC && memcmp(buf, MAGIC, len) == 0)
        return err_set(err, "truncated in the file header (%zu of %u bytes)", len, FILE_HEAD);
    if (len < sizeof MAGIC || memcmp(buf, MAGIC, sizeof MAGIC) != 0)
        return err_set(err, "not a pstrain checkpoint (bad magic)");
    if (len < FILE_HEAD)
        return err_set(err, "truncated in the file header (%zu of %u bytes)", len, FILE_HEAD);
    uint32_t version = le_load32(buf + 8), n_sec = le_load32(buf + 12);
    if (version != CHECKPOINT_VERSION)
        return err_set(err, "format version %u, this pstrain reads %d", version,
                       CHECKPOINT_VERSION);
    size_t pos = FILE_HEAD;
    int last = 0;
    for (uint32_t k = 0; k < n_sec; k++) {
        size_t left = len - pos;
        if (left == 0)
            return err_set(err, "truncated after section %s (%u of %u sections present)",
                           last ? SEC_NAME[last] : "(none)", k, n_sec);
        if (left < 4)
            return err_set(err, "truncated in the header of section %u of %u", k + 1, n_sec);
        uint32_t id = le_load32(buf + pos);
        if (id == 0 || id >= SEC_N)
            return err_set(err, "unknown section id %u (format version %d has 1..%d)", id,
                           CHECKPOINT_VERSION, SEC_N - 1);
        if (s->have[id])
            return err_set(err, "section %s appears twice", SEC_NAME[id]);
        if ((int)id < last)
            return err_set(err, "section %s after section %s (out of order)", SEC_NAME[id],
                           SEC_NAME[last]);
        if (left < SEC_HEAD)
            return err_set(err, "truncated in section %s (its header)", SEC_NAME[id]);
        uint64_t n = le_load64(buf + pos + 4);
        uint32_t crc = le_load32(buf + pos + 12);
        pos += SEC_HEAD;
        left -= SEC_HEAD;
        if (n > left)
            return err_set(err, "truncated in section %s (%llu bytes declared, %zu present)",
                           SEC_NAME[id], (unsigned long long)n, left);
        if (crc_of(buf + pos, n) != crc)
            return err_set(err, "section %s: CRC mismatch", SEC_NAME[id]);
        s->have[id] = 1;
        s->data[id] = buf + pos;
        s->len[id] = n;
        pos += (size_t)n;
        last = (int)id;
    }
    if (pos != len)
        return err_set(err, "%zu bytes after the last of the %u sections", len - pos, n_sec);
    static const int required[] = {SEC_META, SEC_CONFIG, SEC_TENSORS, SEC_PARAMS};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!s->have[required[i]])
            return err_set(err, "missing section %s", SEC_NAME[required[i]]);
    return 0;
}

/* Decodes TENSORS into tab (n_params set by the caller). Returns 0, or -1
 * with err. */
static int parse_tensors(const uint8_t *data, uint64_t len, param_table_t *tab, err_t *err)
{
    rd_t r = {data, (size_t)len};
    uint32_t count;
    if (get_u32(&r, &count) != 0)
        return err_set(err, "no tensor count");
    if (count < 1 || count > PARAMS_MAX)
        return err_set(err, "%u tensors, not in 1..%d", count, PARAMS_MAX);
    for (uint32_t i = 0; i < count; i++) {
        param_spec_t *p = &tab->t[i];
        uint16_t nl;
        uint32_t ndim;
        uint64_t off, size;
        if (get_u16(&r, &nl) != 0)
            goto short_read;
        if (nl < 1 || nl >= PARAM_NAME_LEN)
            return err_set(err, "tensor %u: name of %u bytes, not in 1..%d", i, nl,
                           PARAM_NAME_LEN - 1);
        if (r.left < nl)
            goto short_read;
        if (memchr(r.p, '\0', nl))
            return err_set(err, "tensor %u: NUL byte in its name", i);
        memcpy(p->name, r.p, nl);
        p->name[nl] = '\0';
        r.p += nl;
        r.left -= nl;
        if (get_u32(&r, &ndim) != 0)
            goto short_read;
        if (ndim < 1 || ndim > 4)
            return err_set(err, "%s: rank %u not in 1..4", p->name, ndim);
        p->ndim = (int)ndim;
        for (uint32_t d = 0; d < ndim; d++) {
            uint32_t dim;
            if (get_u32(&r, &dim) != 0)
                goto short_read;
            if (dim > INT_MAX)
                return err_set(err, "%s: dimension %u is %u", p->name, d, dim);
            p->shape[d] = (int)dim;
        }
        if (get_u64(&r, &off) != 0 || get_u64(&r, &size) != 0)
            goto short_read;
        if (off > SIZE_MAX || size > SIZE_MAX)
            return err_set(err, "%s: offset or size does not fit in memory", p->name);
        p->offset = (size_t)off;
        p->size = (size_t)size;
        tab->n = (int)i + 1;
        continue;
    short_read:
        return err_set(err, "tensor %u runs past the end of the section", i);
    }
    if (r.left)
        return err_set(err, "%zu bytes after the last tensor", r.left);
    return 0;
}

/* Decodes NORM, if present, into ck. Returns 0, or -1 with err. */
static int parse_norm(const sections_t *s, checkpoint_t *ck, err_t *err)
{
    if (!s->have[SEC_NORM])
        return 0;
    uint64_t len = s->len[SEC_NORM];
    if (len < 12)
        return err_set(err, "section NORM: %llu bytes, fewer than its 12-byte head",
                       (unsigned long long)len);
    const uint8_t *d = s->data[SEC_NORM];
    uint32_t kind = le_load32(d);
    uint64_t dim = le_load64(d + 4);
    if (kind < 1 || kind > 2)
        return err_set(err, "section NORM: kind %u, not 1 (global) or 2 (per pixel)", kind);
    if (dim == 0 || dim > (len - 12) / 8 || 12 + 8 * dim != len)
        return err_set(err, "section NORM: %llu bytes do not hold %llu means and scales",
                       (unsigned long long)len, (unsigned long long)dim);
    ck->norm_kind = (int)kind;
    ck->norm_dim = (size_t)dim;
    ck->norm_mean = malloc(ck->norm_dim * sizeof(float));
    ck->norm_inv_std = malloc(ck->norm_dim * sizeof(float));
    if (!ck->norm_mean || !ck->norm_inv_std)
        return err_set(err, "out of memory");
    le_load_floats(ck->norm_mean, d + 12, ck->norm_dim);
    le_load_floats(ck->norm_inv_std, d + 12 + 4 * dim, ck->norm_dim);
    return 0;
}

/* Checks the contents of the framed sections s against each other and fills
 * ck (whose buffers checkpoint_free releases on error). Returns 0, or -1 with
 * err (without the path). */
static int parse_sections(const sections_t *s, checkpoint_t *ck, err_t *err)
{
    if (s->len[SEC_META] != META_LEN)
        return err_set(err, "section META: %llu bytes, expected %u",
                       (unsigned long long)s->len[SEC_META], META_LEN);
    const uint8_t *m = s->data[SEC_META];
    ck->step = le_load64(m);
    ck->epoch = le_load32(m + 8);
    ck->clock = le_load64(m + 12);
    ck->seed = le_load64(m + 20);
    uint64_t n_params = le_load64(m + 28);
    uint32_t n_slots = le_load32(m + 36), kind = le_load32(m + 40);
    if (n_slots > INT_MAX)
        return err_set(err, "section META: %u optimizer slots", n_slots);
    if (kind > INT_MAX)
        return err_set(err, "section META: optimizer kind %u", kind);
    ck->n_slots = (int)n_slots;
    ck->opt_kind = (int)kind;

    /* SHARD: the range this file holds, within the n_params of META */
    uint64_t held = n_params;
    if (s->have[SEC_SHARD]) {
        if (s->len[SEC_SHARD] != 24)
            return err_set(err, "section SHARD: %llu bytes, expected 24",
                           (unsigned long long)s->len[SEC_SHARD]);
        const uint8_t *d = s->data[SEC_SHARD];
        uint64_t b = le_load64(d), e = le_load64(d + 8);
        uint32_t idx = le_load32(d + 16), cnt = le_load32(d + 20);
        if (cnt < 1 || cnt > 65536 || idx >= cnt)
            return err_set(err, "section SHARD: shard %u of %u", idx, cnt);
        if (b > e || e > n_params)
            return err_set(err, "section SHARD: range [%llu, %llu) is not within the %llu "
                           "parameters of META", (unsigned long long)b, (unsigned long long)e,
                           (unsigned long long)n_params);
        ck->n_shards = (int)cnt;
        ck->shard_index = (int)idx;
        ck->shard_begin = (size_t)b;
        ck->shard_end = (size_t)e;
        held = e - b;
    }
    /* PARAMS first: its length (within the file) bounds n_params */
    uint64_t pl = s->len[SEC_PARAMS];
    if (pl % 4 != 0 || pl / 4 != held)
        return err_set(err, "section PARAMS: %llu bytes, but META%s says %llu parameters of 4 bytes",
                       (unsigned long long)pl, s->have[SEC_SHARD] ? " and SHARD" : "",
                       (unsigned long long)held);
    if (n_slots == 0 && s->have[SEC_OPTSTATE])
        return err_set(err, "section OPTSTATE present, but META says 0 optimizer slots");
    if (n_slots > 0 && !s->have[SEC_OPTSTATE])
        return err_set(err, "missing section OPTSTATE (META says %u optimizer slots)", n_slots);
    if (n_slots > 0) {
        uint64_t ol = s->len[SEC_OPTSTATE], q = ol / 4;
        if (ol % 4 != 0 || q % n_slots != 0 || q / n_slots != held)
            return err_set(err, "section OPTSTATE: %llu bytes, but META says %u slots of %llu "
                           "parameters of 4 bytes", (unsigned long long)ol, n_slots,
                           (unsigned long long)held);
    }

    if (parse_tensors(s->data[SEC_TENSORS], s->len[SEC_TENSORS], &ck->table, err) != 0 ||
        table_check(&ck->table, n_params, err) != 0)
        return err_prefix(err, "section TENSORS");
    ck->table.n_params = (size_t)n_params;

    const uint8_t *cfg = s->data[SEC_CONFIG];
    size_t cl = (size_t)s->len[SEC_CONFIG];
    const uint8_t *nul = cl ? memchr(cfg, '\0', cl) : NULL;
    if (nul)
        return err_set(err, "section CONFIG: NUL byte at offset %zu", (size_t)(nul - cfg));

    size_t np = (size_t)held, ns = (size_t)n_slots * np;
    ck->config_text = malloc(cl + 1);
    ck->params = malloc((np ? np : 1) * sizeof *ck->params);
    if (ns)
        ck->opt_state = malloc(ns * sizeof *ck->opt_state);
    if (s->len[SEC_DATAORDER]) {
        ck->data_order_len = (size_t)s->len[SEC_DATAORDER];
        ck->data_order = malloc(ck->data_order_len);
    }
    if (!ck->config_text || !ck->params || (ns && !ck->opt_state) ||
        (ck->data_order_len && !ck->data_order))
        return err_set(err, "out of memory");
    if (cl)
        memcpy(ck->config_text, cfg, cl);
    ck->config_text[cl] = '\0';
    le_load_floats(ck->params, s->data[SEC_PARAMS], np);
    if (ns)
        le_load_floats(ck->opt_state, s->data[SEC_OPTSTATE], ns);
    if (ck->data_order_len)
        memcpy(ck->data_order, s->data[SEC_DATAORDER], ck->data_order_len);
    return parse_norm(s, ck, err);
}

checkpoint_t *checkpoint_read(const char *path, err_t *err)
{
    if (!path) {
        err_set(err, "checkpoint_read: no path");
        return NULL;
    }
    size_t len = 0;
    uint8_t *buf = read_file(path, &len, err);
    if (!buf)
        return NULL;
    checkpoint_t *ck = calloc(1, sizeof *ck);
    sections_t s;
    if (!ck) {
        err_set(err, "%s: out of memory", path);
        goto err;
    }
    if (parse_frame(buf, len, &s, err) != 0 || parse_sections(&s, ck, err) != 0) {
        err_prefix(err, "%s", path);
        goto err;
    }
    free(buf);
    return ck;
err:
    free(buf);
    checkpoint_free(&ck);
    return NULL;
}

/* ---- matching and freeing ------------------------------------------------------ */

int checkpoint_match(const checkpoint_t *ck, const param_table_t *tab, const char *path,
                     err_t *err)
{
    /* "PATH: " before each message, nothing without a path */
    const char *where = path ? path : "", *colon = path ? ": " : "";
    char a[64], b[64];
    const param_table_t *have = &ck->table;
    /* the model's tensors first: a wrong shape says most */
    for (int i = 0; i < tab->n; i++) {
        const param_spec_t *want = &tab->t[i];
        shape_str(b, sizeof b, want);
        int j = params_find(have, want->name);
        if (j < 0)
            return err_set(err, "%s%scheckpoint has no tensor %s, the model wants %s %s", where,
                           colon, want->name, want->name, b);
        const param_spec_t *got = &have->t[j];
        shape_str(a, sizeof a, got);
        if (got->ndim != want->ndim ||
            memcmp(got->shape, want->shape, (size_t)want->ndim * sizeof want->shape[0]) != 0)
            return err_set(err, "%s%scheckpoint holds %s %s, the model wants %s", where, colon,
                           got->name, a, b);
    }
    for (int j = 0; j < have->n; j++)
        if (params_find(tab, have->t[j].name) < 0) {
            shape_str(a, sizeof a, &have->t[j]);
            return err_set(err, "%s%scheckpoint holds %s %s, which the model does not have",
                           where, colon, have->t[j].name, a);
        }
    for (int i = 0; i < tab->n; i++) {
        const param_spec_t *want = &tab->t[i];
        const param_spec_t *got = &have->t[params_find(have, want->name)];
        if (got->offset != want->offset)
            return err_set(err, "%s%s%s is at offset %zu in the checkpoint, %zu in the model",
                           where, colon, want->name, got->offset, want->offset);
    }
    if (have->n_params != tab->n_params)
        return err_set(err, "%s%scheckpoint holds %zu parameters, the model %zu", where, colon,
                       have->n_params, tab->n_params);
    return 0;
}

size_t checkpoint_len(const checkpoint_t *ck)
{
    return ck->n_shards ? ck->shard_end - ck->shard_begin : ck->table.n_params;
}

/* Compares what every shard of one checkpoint must share; -1 with err. */
static int same_job(const checkpoint_t *a, const char *an, const checkpoint_t *b, const char *bn,
                    err_t *err)
{
    const char *what = NULL;
    if (a->step != b->step || a->epoch != b->epoch)
        what = "step";
    else if (a->seed != b->seed)
        what = "seed";
    else if (a->opt_kind != b->opt_kind || a->n_slots != b->n_slots)
        what = "optimizer";
    else if (strcmp(a->config_text ? a->config_text : "", b->config_text ? b->config_text : ""))
        what = "config";
    else if (a->data_order_len != b->data_order_len ||
             (a->data_order_len && memcmp(a->data_order, b->data_order, a->data_order_len)))
        what = "data order";
    else if (a->norm_kind != b->norm_kind || a->norm_dim != b->norm_dim ||
             (a->norm_kind && (memcmp(a->norm_mean, b->norm_mean, a->norm_dim * 4) ||
                               memcmp(a->norm_inv_std, b->norm_inv_std, a->norm_dim * 4))))
        what = "normalisation";
    else if (a->n_shards != b->n_shards)
        what = "number of shards";
    else if (checkpoint_match(b, &a->table, NULL, err) != 0)
        return err_prefix(err, "%s and %s: tensors differ", an, bn);
    if (what)
        return err_set(err, "%s and %s: not shards of one checkpoint (%s differs)", an, bn, what);
    return 0;
}

checkpoint_t *checkpoint_assemble(checkpoint_t *const *shards, const char *const *names, int n,
                                  err_t *err)
{
    if (n < 1) {
        err_set(err, "no shards to assemble");
        return NULL;
    }
    const checkpoint_t *first = shards[0];
    const size_t np = first->table.n_params;
    const int slots = first->n_slots;
    if (n > 1024) {
        err_set(err, "%d shards: more than the 1024 a job can have", n);
        return NULL;
    }
    const checkpoint_t *by_index[1024] = {0};
    for (int i = 0; i < n; i++) {
        const checkpoint_t *c = shards[i];
        if (c->n_shards != n) {
            err_set(err, "%s: %s of %d, but %d shard files are given", names[i],
                    c->n_shards ? "a shard" : "the whole model, not a shard", c->n_shards, n);
            return NULL;
        }
        if (i > 0 && same_job(first, names[0], c, names[i], err) != 0)
            return NULL;
        if (by_index[c->shard_index]) {
            err_set(err, "%s: shard %d given twice", names[i], c->shard_index);
            return NULL;
        }
        by_index[c->shard_index] = c;
    }
    size_t next = 0;
    for (int k = 0; k < n; k++) {
        if (by_index[k]->shard_begin != next) {
            err_set(err, "shard %d starts at %zu, expected %zu (the shards must tile the "
                    "parameters)", k, by_index[k]->shard_begin, next);
            return NULL;
        }
        next = by_index[k]->shard_end;
    }
    if (next != np) {
        err_set(err, "the shards cover %zu of %zu parameters", next, np);
        return NULL;
    }
    checkpoint_t *w = calloc(1, sizeof *w);
    if (!w)
        goto oom;
    *w = (checkpoint_t){.step = first->step, .clock = first->clock, .seed = first->seed,
                        .epoch = first->epoch, .opt_kind = first->opt_kind, .n_slots = slots,
                        .table = first->table, .data_order_len = first->data_order_len,
                        .norm_kind = first->norm_kind, .norm_dim = first->norm_dim};
    w->config_text = strdup(first->config_text ? first->config_text : "");
    w->params = malloc(np * sizeof *w->params);
    w->opt_state = slots ? malloc((size_t)slots * np * sizeof *w->opt_state) : NULL;
    w->data_order = w->data_order_len ? malloc(w->data_order_len) : NULL;
    w->norm_mean = w->norm_kind ? malloc(w->norm_dim * sizeof(float)) : NULL;
    w->norm_inv_std = w->norm_kind ? malloc(w->norm_dim * sizeof(float)) : NULL;
    if (!w->config_text || !w->params || (slots && !w->opt_state) ||
        (w->data_order_len && !w->data_order) ||
        (w->norm_kind && (!w->norm_mean || !w->norm_inv_std)))
        goto oom;
    if (w->data_order_len)
        memcpy(w->data_order, first->data_order, w->data_order_len);
    if (w->norm_kind) {
        memcpy(w->norm_mean, first->norm_mean, w->norm_dim * sizeof(float));
        memcpy(w->norm_inv_std, first->norm_inv_std, w->norm_dim * sizeof(float));
    }
    for (int k = 0; k < n; k++) {
        const checkpoint_t *c = by_index[k];
        size_t len = c->shard_end - c->shard_begin;
        memcpy(w->params + c->shard_begin, c->params, len * sizeof(float));
        for (int j = 0; j < slots; j++) /* slot-major, as optim.h lays it out */
            memcpy(w->opt_state + (size_t)j * np + c->shard_begin, c->opt_state + (size_t)j * len,
                   len * sizeof(float));
    }
    return w;
oom:
    checkpoint_free(&w);
    err_set(err, "out of memory assembling %zu parameters", np);
    return NULL;
}

void checkpoint_free(checkpoint_t **ck_p)
{
    if (!ck_p || !*ck_p)
        return;
    checkpoint_t *ck = *ck_p;
    free(ck->config_text);
    free(ck->params);
    free(ck->opt_state);
    free(ck->data_order);
    free(ck->norm_mean);
    free(ck->norm_inv_std);
    free(ck);
    *ck_p = NULL;
}
