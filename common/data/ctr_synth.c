/* ctr_synth.c - the synthetic click-log generator (see ctr_synth.h). Every
 * random value is a Philox block of (seed, stream, counter): a stream per
 * column and the line index as counter for the data, a stream per field and
 * the id as counter for the planted weights. */
#include "common/data/ctr_synth.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/util/fsutil.h"
#include "common/util/rng.h"

const uint32_t CTR_CRITEO_ROWS[CRITEO_CAT] = {
    1460,   583,  10131227, 2202608, 305,   24,      12517, 633, 3,      93145, 5683,   8351593, 3194,
    27,     14992, 5461306, 10,      5652,  2173,    4,     7046547, 18,   15,    286181, 105,   142572,
};

/* Criteo-like share of empty values of C1..C26 and I1..I13. */
static const float CAT_MISSING[CRITEO_CAT] = {
    0, 0, 0.03f, 0.03f, 0, 0.12f, 0, 0, 0, 0, 0, 0.03f, 0,
    0, 0, 0.03f, 0, 0, 0.44f, 0.44f, 0.03f, 0.76f, 0, 0.03f, 0.44f, 0.44f,
};
static const float NUM_MISSING[CRITEO_NUM] = {
    0.45f, 0, 0.21f, 0.22f, 0.03f, 0.22f, 0.04f, 0.0005f, 0.04f, 0.45f, 0.04f, 0.76f, 0.22f,
};
/* Largest typical value of I1..I13 (the tail of the log-uniform-like law). */
static const double NUM_MAX[CRITEO_NUM] = {
    1500, 25000, 65535, 500, 2500000, 200000, 10000, 5000, 10000, 10, 200, 1000, 5000,
};

#define S_NUM 0x44454E5300000000ull    /* "DENS" + j: dense column j of line i */
#define S_CAT 0x4341540000000000ull    /* "CAT" + f: categorical f of line i */
#define S_LABEL 0x4C41424C00000000ull  /* "LABL": the label draw of line i */
#define S_WEIGHT 0x5747485400000000ull /* "WGHT" + f: w_f(id) */
#define S_KEY 0x4B45590000000000ull    /* "KEY": per-field keys and dense weights */
#define NEG_NUM 1                      /* I2 (index 1) takes a few negative values */
#define NEG_SHARE 0.05                 /* ... this share of its values */
#define CAT_SIGMA 0.35                 /* std of a categorical weight */
#define NUM_SIGMA 0.4                  /* std of a dense weight times its log range */
#define CALIB_LINES 8192               /* lines the bias is calibrated on */
#define CALIB_ITERS 60                 /* bisection steps */
#define CALIB_LO (-20.0)
#define CALIB_HI 20.0
#define AUC_BINS (1u << 16)            /* logit histogram of the planted AUC */
#define AUC_RANGE 16.0                 /* ... over [-AUC_RANGE, AUC_RANGE] */
#define WRITE_CHUNK (1u << 20)         /* bytes formatted before each write */
#define U32 4294967296.0               /* 2^32 */
#define IRWIN_HALL_SCALE 1.7320508075688772 /* sqrt(3): std 1 for a sum of 4 uniforms */

struct ctr_synth_t {
    ctr_synth_opts_t o;
    uint32_t rows[CRITEO_CAT];
    uint32_t key[CRITEO_CAT];       /* of the id -> hex bijection */
    double zipf_a[CRITEO_CAT];      /* (rows + 1)^(1 - s) - 1, or log(rows + 1) for s = 1 */
    double num_w[CRITEO_NUM];       /* a_j */
    double num_l[CRITEO_NUM];       /* log(1 + NUM_MAX[j]) */
    double bias;
};

/* A 32-bit bijection (MurmurHash3's finaliser): distinct ids, distinct hex. */
static uint32_t mix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

/* An approximately standard normal value from four 32-bit words (the
 * Irwin-Hall sum of four uniforms, centred and scaled): cheap, and no table. */
static double normal4(const uint32_t w[4])
{
    double s = ((double)w[0] + w[1] + w[2] + w[3]) / U32;
    return (s - 2.0) * IRWIN_HALL_SCALE;
}

/* w_f(id): the planted weight of id in field f (id = rows: the missing value). */
static double cat_weight(const ctr_synth_t *g, int f, uint64_t id)
{
    uint32_t w[4];
    rng_philox(g->o.seed, S_WEIGHT + (uint64_t)f, id, w);
    return CAT_SIGMA * normal4(w);
}

/* A Zipf-distributed rank in [0, rows) of field f from u in [0, 1): the
 * inverse of the continuous law's distribution over [1, rows + 1). */
static uint32_t zipf_rank(const ctr_synth_t *g, int f, double u)
{
    double s1 = 1.0 - g->o.zipf, x;
    if (fabs(s1) < 1e-9)
        x = exp(u * g->zipf_a[f]);
    else
        x = pow(1.0 + u * g->zipf_a[f], 1.0 / s1);
    double r = floor(x) - 1.0;
    return r < 0 ? 0 : r >= g->rows[f] ? g->rows[f] - 1 : (uint32_t)r;
}

/* Writes v in decimal at p. Returns the characters written. */
static size_t put_int(char *p, int64_t v)
{
    char tmp[24];
    size_t n = 0, k = 0;
    uint64_t u = v < 0 ? (uint64_t)(-v) : (uint64_t)v;
    if (v < 0)
        p[k++] = '-';
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    while (n)
        p[k++] = tmp[--n];
    return k;
}

/* Writes v as 8 lowercase hex digits at p. Returns 8. */
static size_t put_hex8(char *p, uint32_t v)
{
    static const char D[] = "0123456789abcdef";
    for (int k = 7; k >= 0; k--, v >>= 4)
        p[k] = D[v & 15];
    return 8;
}

/* Dense column j of line i: 1 and *v, or 0 when empty. */
static int num_value(const ctr_synth_t *g, int j, uint64_t i, int64_t *v)
{
    uint32_t w[4];
    rng_philox(g->o.seed, S_NUM + (uint64_t)j, i, w);
    if (w[0] < NUM_MISSING[j] * U32)
        return 0;
    if (j == NEG_NUM && w[3] < NEG_SHARE * U32) {
        *v = -1 - (int64_t)(w[2] % 3);
        return 1;
    }
    double u = w[1] / U32;
    *v = (int64_t)floor(expm1(g->num_l[j] * u * u)); /* most values small, a long tail */
    return 1;
}

/* Categorical column f of line i: 1 and *id, or 0 when empty. */
static int cat_value(const ctr_synth_t *g, int f, uint64_t i, uint32_t *id)
{
    uint32_t w[4];
    rng_philox(g->o.seed, S_CAT + (uint64_t)f, i, w);
    if (w[0] < CAT_MISSING[f] * U32)
        return 0;
    double u = (((uint64_t)w[1] << 21) ^ w[2]) * (1.0 / 9007199254740992.0) /* 2^53 */;
    *id = zipf_rank(g, f, u);
    return 1;
}

size_t ctr_synth_line(const ctr_synth_t *g, uint64_t i, char *buf, double *logit)
{
    char *p = buf + 2; /* the label and its tab go first, once known */
    double z = g->bias;
    for (int j = 0; j < CRITEO_NUM; j++) {
        int64_t v;
        if (num_value(g, j, i, &v)) {
            p += put_int(p, v);
            z += g->num_w[j] * (v > 0 ? log1p((double)v) : 0.0);
        }
        *p++ = '\t';
    }
    for (int f = 0; f < CRITEO_CAT; f++) {
        uint32_t id;
        if (cat_value(g, f, i, &id)) {
            p += put_hex8(p, mix32(id ^ g->key[f]));
            z += cat_weight(g, f, id);
        } else {
            z += cat_weight(g, f, g->rows[f]);
        }
        *p++ = f + 1 < CRITEO_CAT ? '\t' : '\n';
    }
    double prob = 1.0 / (1.0 + exp(-z));
    buf[0] = rng_uniform(g->o.seed, S_LABEL, i) < prob ? '1' : '0';
    buf[1] = '\t';
    if (logit)
        *logit = z;
    return (size_t)(p - buf);
}

uint32_t ctr_synth_rows(const ctr_synth_t *g, int f)
{
    return g->rows[f];
}

double ctr_synth_bias(const ctr_synth_t *g)
{
    return g->bias;
}

/* Sets g->bias so that the mean planted probability over the first
 * CALIB_LINES lines is CTR_SYNTH_RATE (bisection). Returns 0 or -1 (memory). */
static int calibrate(ctr_synth_t *g)
{
    double *z = malloc(CALIB_LINES * sizeof *z);
    char line[CTR_SYNTH_LINE_MAX];
    if (!z)
        return -1;
    g->bias = 0;
    for (uint64_t i = 0; i < CALIB_LINES; i++)
        ctr_synth_line(g, i, line, &z[i]);
    double lo = CALIB_LO, hi = CALIB_HI;
    for (int it = 0; it < CALIB_ITERS; it++) {
        double b = 0.5 * (lo + hi), mean = 0;
        for (size_t i = 0; i < CALIB_LINES; i++)
            mean += 1.0 / (1.0 + exp(-(z[i] + b)));
        if (mean / CALIB_LINES < CTR_SYNTH_RATE)
            lo = b;
        else
            hi = b;
    }
    g->bias = 0.5 * (lo + hi);
    free(z);
    return 0;
}

ctr_synth_t *ctr_synth_new(const ctr_synth_opts_t *o, err_t *err)
{
    ctr_synth_t *g = calloc(1, sizeof *g);
    if (!g) {
        err_set(err, "out of memory");
        return NULL;
    }
    g->o = *o;
    if (g->o.rows_scale == 0)
        g->o.rows_scale = 1.0;
    if (g->o.zipf == 0)
        g->o.zipf = CTR_SYNTH_ZIPF;
    if (!(g->o.rows_scale > 0 && g->o.rows_scale <= 1e3) || !(g->o.zipf > 0 && g->o.zipf <= 10)) {
        err_set(err, "rows scale %g (must be in (0, 1000]) or Zipf exponent %g (in (0, 10])",
                g->o.rows_scale, g->o.zipf);
        ctr_synth_destroy(&g);
        return NULL;
    }
    for (int f = 0; f < CRITEO_CAT; f++) {
        double r = floor(CTR_CRITEO_ROWS[f] * g->o.rows_scale + 0.5);
        g->rows[f] = r < 1 ? 1 : r > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)r;
        double s1 = 1.0 - g->o.zipf, n1 = (double)g->rows[f] + 1.0;
        g->zipf_a[f] = fabs(s1) < 1e-9 ? log(n1) : pow(n1, s1) - 1.0;
        uint32_t w[4];
        rng_philox(g->o.seed, S_KEY, (uint64_t)f, w);
        g->key[f] = w[0];
    }
    for (int j = 0; j < CRITEO_NUM; j++) {
        uint32_t w[4];
        rng_philox(g->o.seed, S_KEY, (uint64_t)(CRITEO_CAT + j), w);
        g->num_l[j] = log1p(NUM_MAX[j]);
        g->num_w[j] = NUM_SIGMA * normal4(w) / g->num_l[j];
    }
    if (calibrate(g) != 0) {
        err_set(err, "out of memory");
        ctr_synth_destroy(&g);
    }
    return g;
}

void ctr_synth_destroy(ctr_synth_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

double ctr_auc_from_bins(const uint64_t *pos, const uint64_t *neg, size_t bins)
{
    double below = 0, area = 0, p = 0, n = 0;
    for (size_t b = 0; b < bins; b++) {
        area += (double)pos[b] * (below + 0.5 * (double)neg[b]);
        below += (double)neg[b];
        p += (double)pos[b];
    }
    n = below;
    return p > 0 && n > 0 ? area / (p * n) : 0.5;
}

/* An open output: plain (FILE) or gzip. */
typedef struct {
    FILE *f;
    gzFile gz;
} out_t;

/* Writes len bytes of p to o. Returns 0 or -1. */
static int out_write(out_t *o, const char *p, size_t len)
{
    if (o->gz)
        return gzwrite(o->gz, p, (unsigned)len) == (int)len ? 0 : -1;
    return fwrite(p, 1, len, o->f) == len ? 0 : -1;
}

/* Closes o. Returns 0, or -1 if the data did not reach the file. */
static int out_close(out_t *o)
{
    if (o->gz)
        return gzclose(o->gz) == Z_OK ? 0 : -1;
    return o->f && fclose(o->f) == 0 ? 0 : -1;
}

/* Generates lines [0, lines) into o, counting positives and binning the
 * planted logits by label. Returns 0 or -1 (a write failed). */
static int write_lines(const ctr_synth_t *g, out_t *o, uint64_t lines, uint64_t *pos,
                       uint64_t *neg, uint64_t *positives)
{
    char *chunk = malloc(WRITE_CHUNK + CTR_SYNTH_LINE_MAX);
    size_t used = 0;
    int rc = chunk ? 0 : -1;
    for (uint64_t i = 0; rc == 0 && i < lines; i++) {
        double z;
        size_t n = ctr_synth_line(g, i, chunk + used, &z);
        double b = floor((z + AUC_RANGE) / (2 * AUC_RANGE) * AUC_BINS);
        size_t bin = b < 0 ? 0 : b >= AUC_BINS ? AUC_BINS - 1 : (size_t)b;
        if (chunk[used] == '1') {
            pos[bin]++;
            (*positives)++;
        } else {
            neg[bin]++;
        }
        used += n;
        if (used >= WRITE_CHUNK) {
            rc = out_write(o, chunk, used);
            used = 0;
        }
    }
    if (rc == 0 && used)
        rc = out_write(o, chunk, used);
    free(chunk);
    return rc;
}

/* Writes PATH.meta.json for g and res. Returns 0, or -1 with err. */
static int write_meta(const ctr_synth_t *g, const char *path, int gz,
                      const ctr_synth_result_t *res, err_t *err)
{
    char text[2048], meta[4096];
    int n = snprintf(text, sizeof text,
                     "{\n  \"format\": \"criteo\",\n  \"gzip\": %s,\n  \"lines\": %llu,\n"
                     "  \"seed\": %llu,\n  \"zipf\": %.10g,\n  \"rows_scale\": %.10g,\n"
                     "  \"cardinalities\": [",
                     gz ? "true" : "false", (unsigned long long)res->lines,
                     (unsigned long long)g->o.seed, g->o.zipf, g->o.rows_scale);
    for (int f = 0; f < CRITEO_CAT; f++)
        n += snprintf(text + n, sizeof text - (size_t)n, "%s%u", f ? ", " : "", g->rows[f]);
    n += snprintf(text + n, sizeof text - (size_t)n,
                  "],\n  \"bias\": %.17g,\n  \"positives\": %llu,\n  \"positive_rate\": %.6f,\n"
                  "  \"best_auc\": %.6f\n}\n",
                  g->bias, (unsigned long long)res->positives, res->positive_rate, res->best_auc);
    if (snprintf(meta, sizeof meta, "%s.meta.json", path) >= (int)sizeof meta)
        return err_set(err, "%s: path too long", path);
    return fs_write_atomic(meta, text, (size_t)n, err);
}

int ctr_synth_write(const ctr_synth_t *g, const char *path, uint64_t lines, int gz,
                    ctr_synth_result_t *res, err_t *err)
{
    char tmp[4096];
    ctr_synth_result_t r = {.lines = lines};
    out_t o = {NULL, NULL};
    uint64_t *pos = calloc(AUC_BINS, sizeof *pos), *neg = calloc(AUC_BINS, sizeof *neg);
    int rc = -1;
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        err_set(err, "%s: path too long", path);
        goto out;
    }
    if (!pos || !neg) {
        err_set(err, "%s: out of memory", path);
        goto out;
    }
    if (gz ? !(o.gz = gzopen(tmp, "wb1")) : !(o.f = fopen(tmp, "wb"))) {
        err_set(err, "%s: cannot create: %s", tmp, strerror(errno));
        goto out;
    }
    if (gz)
        gzbuffer(o.gz, WRITE_CHUNK);
    int wrc = write_lines(g, &o, lines, pos, neg, &r.positives);
    if (out_close(&o) != 0 || wrc != 0 || rename(tmp, path) != 0) {
        err_set(err, "%s: write failed: %s", tmp, strerror(errno));
        remove(tmp);
        goto out;
    }
    r.positive_rate = lines ? (double)r.positives / (double)lines : 0;
    r.best_auc = ctr_auc_from_bins(pos, neg, AUC_BINS);
    if (write_meta(g, path, gz, &r, err) != 0)
        goto out;
    if (res)
        *res = r;
    rc = 0;
out:
    free(pos);
    free(neg);
    return rc;
}
