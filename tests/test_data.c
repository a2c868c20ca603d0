/* test_data.c - suite "data": loading images and labels, the validation
 * split, normalisation, the epoch permutation and the cutting of global
 * batches into per-trainer slices. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/data/data.h"
#include "common/util/rng.h"
#include "tests.h"

/* Records a failure with a formatted message (the case that failed) when
 * cond is false; used inside loops over many cases. */
#define CHECK_CASE(cond, ...)                                                          \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            char m_[256];                                                              \
            snprintf(m_, sizeof m_, __VA_ARGS__);                                      \
            CU_assertImplementation(CU_FALSE, __LINE__, m_, __FILE__, "", CU_FALSE);   \
        }                                                                              \
    } while (0)

/* Joins tests_tmp_dir() and name into buf. */
static const char *tmp_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tests_tmp_dir(), name);
    return buf;
}

/* Writes an unsigned-byte IDX file (gzip if gz) with ndim dims and the given
 * data (product(dims) bytes). Returns 0 or -1. */
static int write_idx(const char *path, int gz, int ndim, const uint32_t *dims,
                     const uint8_t *data)
{
    uint8_t head[4 + 16] = {0, 0, 0x08, (uint8_t)ndim};
    size_t len = 1;
    for (int d = 0; d < ndim; d++) {
        head[4 + 4 * d] = (uint8_t)(dims[d] >> 24);
        head[5 + 4 * d] = (uint8_t)(dims[d] >> 16);
        head[6 + 4 * d] = (uint8_t)(dims[d] >> 8);
        head[7 + 4 * d] = (uint8_t)dims[d];
        len *= dims[d];
    }
    size_t hlen = 4 + 4 * (size_t)ndim;
    int ok;
    if (gz) {
        gzFile f = gzopen(path, "wb");
        if (!f)
            return -1;
        ok = gzwrite(f, head, (unsigned)hlen) == (int)hlen &&
             gzwrite(f, data, (unsigned)len) == (int)len;
        ok = (gzclose(f) == Z_OK) && ok;
    } else {
        FILE *f = fopen(path, "wb");
        if (!f)
            return -1;
        ok = fwrite(head, 1, hlen, f) == hlen && fwrite(data, 1, len, f) == len;
        ok = (fclose(f) == 0) && ok;
    }
    return ok ? 0 : -1;
}

/* Small generated set: N images of R x C, pixel (i, j) = (i * 31 + j * 7) & 0xff,
 * label i = (i * 5 + 1) % 7 (so the max label is 6). */
enum { SM_N = 12, SM_R = 4, SM_C = 5, SM_D = SM_R * SM_C };

static uint8_t sm_pixel(size_t i, size_t j)
{
    return (uint8_t)((i * 31 + j * 7) & 0xff);
}

static uint8_t sm_label(size_t i)
{
    return (uint8_t)((i * 5 + 1) % 7);
}

/* Writes the small set as images/labels files named PREFIX-images.idx(.gz)
 * and PREFIX-labels.idx(.gz), with n_labels labels. Returns 0 or -1. */
static int write_small(const char *prefix, int gz, size_t n_labels, char *images,
                       char *labels, size_t len)
{
    uint8_t pix[SM_N * SM_D], lab[SM_N + 8];
    for (size_t i = 0; i < SM_N; i++)
        for (size_t j = 0; j < SM_D; j++)
            pix[i * SM_D + j] = sm_pixel(i, j);
    for (size_t i = 0; i < sizeof lab; i++)
        lab[i] = sm_label(i);
    char name[128];
    snprintf(name, sizeof name, "%s-images.idx%s", prefix, gz ? ".gz" : "");
    tmp_path(images, len, name);
    snprintf(name, sizeof name, "%s-labels.idx%s", prefix, gz ? ".gz" : "");
    tmp_path(labels, len, name);
    const uint32_t idims[3] = {SM_N, SM_R, SM_C};
    const uint32_t ldims[1] = {(uint32_t)n_labels};
    if (write_idx(images, gz, 3, idims, pix) != 0)
        return -1;
    return write_idx(labels, gz, 1, ldims, lab);
}

/* Checks that ds holds samples [first, first + ds->n) of the small set. */
static void check_small(const dataset_t *ds, size_t first)
{
    CU_ASSERT_EQUAL(ds->dim, SM_D);
    CU_ASSERT_EQUAL(ds->rows, SM_R);
    CU_ASSERT_EQUAL(ds->cols, SM_C);
    for (size_t i = 0; i < ds->n; i++) {
        CHECK_CASE(ds->y[i] == sm_label(first + i), "label %zu", first + i);
        for (size_t j = 0; j < SM_D; j++)
            CHECK_CASE(ds->x[i * SM_D + j] == (float)sm_pixel(first + i, j) / 255.0f,
                       "pixel %zu,%zu", first + i, j);
    }
}

static void test_data_load_small(void)
{
    char images[1024], labels[1024];
    for (int gz = 0; gz < 2; gz++) {
        CU_ASSERT_EQUAL_FATAL(write_small("small", gz, SM_N, images, labels, sizeof images), 0);
        err_t err = {{0}};
        dataset_t *ds = dataset_load(images, labels, 0, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
        CU_ASSERT_EQUAL(ds->n, SM_N);
        CU_ASSERT_EQUAL(ds->n_classes, 7);
        check_small(ds, 0);
        dataset_destroy(&ds);
        CU_ASSERT_PTR_NULL(ds);

        ds = dataset_load(images, labels, 5, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
        CU_ASSERT_EQUAL(ds->n, 5);
        CU_ASSERT_EQUAL(ds->n_classes, 7); /* labels 1 6 4 2 0 */
        check_small(ds, 0);
        dataset_destroy(&ds);

        ds = dataset_load(images, labels, 2, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
        CU_ASSERT_EQUAL(ds->n, 2);
        CU_ASSERT_EQUAL(ds->n_classes, 7); /* labels 1 6 */
        dataset_destroy(&ds);

        ds = dataset_load(images, labels, 1, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
        CU_ASSERT_EQUAL(ds->n_classes, 2); /* label 1 */
        dataset_destroy(&ds);

        /* More than the file holds. */
        err.msg[0] = 0;
        ds = dataset_load(images, labels, SM_N + 1, &err);
        CU_ASSERT_PTR_NULL(ds);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, images));
    }
    dataset_destroy(NULL);
}

static void test_data_load_fashion(void)
{
    char images[1024], labels[1024];
    snprintf(images, sizeof images, "%s/train-images-idx3-ubyte.gz", tests_data_dir());
    snprintf(labels, sizeof labels, "%s/train-labels-idx1-ubyte.gz", tests_data_dir());
    err_t err = {{0}};
    dataset_t *ds = dataset_load(images, labels, 1000, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    CU_ASSERT_EQUAL(ds->n, 1000);
    CU_ASSERT_EQUAL(ds->dim, 784);
    CU_ASSERT_EQUAL(ds->rows, 28);
    CU_ASSERT_EQUAL(ds->cols, 28);
    const int32_t first[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
    CU_ASSERT_EQUAL(memcmp(ds->y, first, sizeof first), 0);
    int32_t max = 0;
    for (size_t i = 0; i < ds->n; i++)
        max = ds->y[i] > max ? ds->y[i] : max;
    CU_ASSERT_EQUAL(ds->n_classes, max + 1);
    CU_ASSERT_EQUAL(ds->n_classes, 10);
    float lo = 1, hi = 0;
    double sum = 0;
    for (size_t i = 0; i < ds->n * ds->dim; i++) {
        lo = ds->x[i] < lo ? ds->x[i] : lo;
        hi = ds->x[i] > hi ? ds->x[i] : hi;
        sum += ds->x[i];
    }
    CU_ASSERT_EQUAL(lo, 0.0f);
    CU_ASSERT_EQUAL(hi, 1.0f);
    double mean = sum / (double)(ds->n * ds->dim);
    CU_ASSERT(mean > 0.2 && mean < 0.4); /* Fashion-MNIST's mean pixel is about 0.286 */
    dataset_destroy(&ds);

    /* Test set's images with the train set's labels: counts differ. */
    char test_images[1024];
    snprintf(test_images, sizeof test_images, "%s/t10k-images-idx3-ubyte.gz", tests_data_dir());
    err.msg[0] = 0;
    ds = dataset_load(test_images, labels, 100, &err);
    CU_ASSERT_PTR_NULL(ds);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, test_images));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, labels));
}

static void test_data_load_mismatch(void)
{
    char images[1024], labels[1024];
    for (int gz = 0; gz < 2; gz++) {
        const size_t counts[] = {SM_N - 1, SM_N + 1};
        for (size_t c = 0; c < 2; c++) {
            CU_ASSERT_EQUAL_FATAL(
                write_small("mismatch", gz, counts[c], images, labels, sizeof images), 0);
            const size_t limits[] = {0, 3};
            for (size_t l = 0; l < 2; l++) {
                err_t err = {{0}};
                dataset_t *ds = dataset_load(images, labels, limits[l], &err);
                CU_ASSERT_PTR_NULL(ds);
                dataset_destroy(&ds);
                CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, images));
                CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, labels));
            }
        }
    }

    /* Images and labels swapped: wrong number of dimensions. */
    CU_ASSERT_EQUAL_FATAL(write_small("swap", 0, SM_N, images, labels, sizeof images), 0);
    err_t err = {{0}};
    dataset_t *ds = dataset_load(labels, images, 0, &err);
    CU_ASSERT_PTR_NULL(ds);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, labels));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "3 dimensions"));

    /* A missing file is named. */
    char missing[1024];
    tmp_path(missing, sizeof missing, "missing-labels.idx");
    err.msg[0] = 0;
    ds = dataset_load(images, missing, 0, &err);
    CU_ASSERT_PTR_NULL(ds);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, missing));
}

static void test_data_split(void)
{
    char images[1024], labels[1024];
    CU_ASSERT_EQUAL_FATAL(write_small("split", 0, SM_N, images, labels, sizeof images), 0);
    err_t err = {{0}};
    dataset_t *all = dataset_load(images, labels, 0, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(all);

    dataset_t *val = (dataset_t *)&err; /* must be overwritten */
    CU_ASSERT_EQUAL(dataset_split(all, 0, &val, &err), 0);
    CU_ASSERT_PTR_NULL(val);
    CU_ASSERT_EQUAL(all->n, SM_N);

    CU_ASSERT_EQUAL(dataset_split(all, 3, &val, &err), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(val);
    CU_ASSERT_EQUAL(all->n, SM_N - 3);
    CU_ASSERT_EQUAL(val->n, 3);
    CU_ASSERT_EQUAL(val->rows, SM_R);
    CU_ASSERT_EQUAL(val->n_classes, all->n_classes);
    check_small(all, 0);
    check_small(val, SM_N - 3);

    /* Splitting again takes from what is left. */
    dataset_t *val2 = NULL;
    CU_ASSERT_EQUAL(dataset_split(all, 8, &val2, &err), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(val2);
    CU_ASSERT_EQUAL(all->n, 1);
    check_small(all, 0);
    check_small(val2, 1);
    dataset_destroy(&val2);

    /* Nothing would be left to train on. */
    err.msg[0] = 0;
    val2 = (dataset_t *)&err;
    CU_ASSERT_EQUAL(dataset_split(all, 1, &val2, &err), -1);
    CU_ASSERT_PTR_NULL(val2);
    CU_ASSERT(strlen(err.msg) > 0);
    CU_ASSERT_EQUAL(dataset_split(all, 5, &val2, &err), -1);
    CU_ASSERT_EQUAL(all->n, 1);
    dataset_destroy(&val);
    dataset_destroy(&all);
}

/* Mean and population std of all values of ds. */
static void global_stats(const dataset_t *ds, double *mean, double *sd)
{
    size_t m = ds->n * ds->dim;
    double s = 0, ss = 0;
    for (size_t i = 0; i < m; i++)
        s += ds->x[i];
    *mean = s / (double)m;
    for (size_t i = 0; i < m; i++)
        ss += (ds->x[i] - *mean) * (ds->x[i] - *mean);
    *sd = sqrt(ss / (double)m);
}

/* Mean and population std of every feature of ds into mean[dim], sd[dim].
 * Returns 0, or -1 if out of memory. */
static int feature_stats(const dataset_t *ds, double *mean, double *sd)
{
    double *ss = calloc(ds->dim, sizeof *ss);
    if (!ss)
        return -1;
    for (size_t j = 0; j < ds->dim; j++)
        mean[j] = 0;
    for (size_t i = 0; i < ds->n; i++)
        for (size_t j = 0; j < ds->dim; j++)
            mean[j] += ds->x[i * ds->dim + j];
    for (size_t j = 0; j < ds->dim; j++)
        mean[j] /= (double)ds->n;
    for (size_t i = 0; i < ds->n; i++)
        for (size_t j = 0; j < ds->dim; j++) {
            double d = ds->x[i * ds->dim + j] - mean[j];
            ss[j] += d * d;
        }
    for (size_t j = 0; j < ds->dim; j++)
        sd[j] = sqrt(ss[j] / (double)ds->n);
    free(ss);
    return 0;
}

/* A generated data set of n samples of dim features (feature 0 constant)
 * with per-feature offsets and scales, or NULL. */
static dataset_t *make_set(size_t n, size_t dim)
{
    dataset_t *ds = calloc(1, sizeof *ds);
    if (!ds)
        return NULL;
    ds->n = n;
    ds->dim = dim;
    ds->rows = 1;
    ds->cols = (int)dim;
    ds->n_classes = 1;
    ds->x = malloc(n * dim * sizeof(float));
    ds->y = calloc(n, sizeof(int32_t));
    if (!ds->x || !ds->y) {
        dataset_destroy(&ds);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < dim; j++)
            ds->x[i * dim + j] = j == 0 ? 0.25f
                                        : (float)(0.1 * (double)j +
                                                  0.05 * (double)j * rng_normal(7, j, i));
    return ds;
}

static void test_data_norm_global(void)
{
    dataset_t *ds = make_set(500, 9);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    double m0, s0;
    global_stats(ds, &m0, &s0);
    norm_stats_t st;
    err_t err = {{0}};
    CU_ASSERT_EQUAL_FATAL(norm_stats_compute(&st, ds, NORM_GLOBAL, &err), 0);
    CU_ASSERT_EQUAL(st.kind, NORM_GLOBAL);
    CU_ASSERT_EQUAL(st.dim, 9);
    for (size_t j = 0; j < 9; j++) {
        CU_ASSERT_DOUBLE_EQUAL(st.mean[j], m0, 1e-5);
        CU_ASSERT_DOUBLE_EQUAL(st.inv_std[j], 1.0 / s0, 1e-4);
    }
    norm_stats_apply(&st, ds);
    double m, s;
    global_stats(ds, &m, &s);
    CU_ASSERT_DOUBLE_EQUAL(m, 0.0, 1e-5);
    CU_ASSERT_DOUBLE_EQUAL(s, 1.0, 1e-5);
    norm_stats_free(&st);
    CU_ASSERT_PTR_NULL(st.mean);
    norm_stats_free(&st);
    dataset_destroy(&ds);

    /* The real data: 0.286 / 0.353 are Fashion-MNIST's well-known mean/std. */
    char images[1024], labels[1024];
    snprintf(images, sizeof images, "%s/train-images-idx3-ubyte.gz", tests_data_dir());
    snprintf(labels, sizeof labels, "%s/train-labels-idx1-ubyte.gz", tests_data_dir());
    ds = dataset_load(images, labels, 5000, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    CU_ASSERT_EQUAL_FATAL(norm_stats_compute(&st, ds, NORM_GLOBAL, &err), 0);
    CU_ASSERT_DOUBLE_EQUAL(st.mean[0], 0.286, 0.01);
    CU_ASSERT_DOUBLE_EQUAL(1.0 / st.inv_std[0], 0.353, 0.01);
    norm_stats_apply(&st, ds);
    global_stats(ds, &m, &s);
    CU_ASSERT_DOUBLE_EQUAL(m, 0.0, 1e-4);
    CU_ASSERT_DOUBLE_EQUAL(s, 1.0, 1e-4);
    norm_stats_free(&st);
    dataset_destroy(&ds);
}

static void test_data_norm_per_pixel(void)
{
    dataset_t *ds = make_set(400, 6);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    norm_stats_t st;
    err_t err = {{0}};
    CU_ASSERT_EQUAL_FATAL(norm_stats_compute(&st, ds, NORM_PER_PIXEL, &err), 0);
    CU_ASSERT_EQUAL(st.dim, 6);
    CU_ASSERT_DOUBLE_EQUAL(st.mean[0], 0.25, 1e-7);
    CU_ASSERT_EQUAL(st.inv_std[0], 1.0f); /* constant feature: only centred */
    for (size_t j = 1; j < 6; j++)
        CU_ASSERT_DOUBLE_EQUAL(st.mean[j], 0.1 * (double)j, 0.02 * (double)j);
    norm_stats_apply(&st, ds);
    double fm[6], fs[6];
    CU_ASSERT_EQUAL_FATAL(feature_stats(ds, fm, fs), 0);
    for (size_t j = 0; j < 6; j++) {
        double m = fm[j], s = fs[j];
        CHECK_CASE(fabs(m) < 1e-5, "feature %zu mean %g", j, m);
        CHECK_CASE(fabs(s - (j == 0 ? 0.0 : 1.0)) < 1e-4, "feature %zu std %g", j, s);
        for (size_t i = 0; i < ds->n; i++)
            CHECK_CASE(isfinite(ds->x[i * ds->dim + j]), "x[%zu][%zu] not finite", i, j);
    }
    norm_stats_free(&st);
    dataset_destroy(&ds);

    /* The real data, where a small subset leaves border pixels constant. */
    char images[1024], labels[1024];
    snprintf(images, sizeof images, "%s/train-images-idx3-ubyte.gz", tests_data_dir());
    snprintf(labels, sizeof labels, "%s/train-labels-idx1-ubyte.gz", tests_data_dir());
    ds = dataset_load(images, labels, 2000, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    dataset_t *val = NULL;
    CU_ASSERT_EQUAL_FATAL(dataset_split(ds, 500, &val, &err), 0);
    CU_ASSERT_EQUAL_FATAL(norm_stats_compute(&st, ds, NORM_PER_PIXEL, &err), 0);
    static double mean_before[784], sd_before[784], mean_after[784], sd_after[784];
    CU_ASSERT_EQUAL_FATAL(feature_stats(ds, mean_before, sd_before), 0);
    for (size_t j = 0; j < 784; j++) {
        CHECK_CASE(fabs(st.mean[j] - mean_before[j]) < 1e-5, "pixel %zu mean", j);
        if (sd_before[j] >= 1e-6)
            CHECK_CASE(fabs(st.inv_std[j] * sd_before[j] - 1.0) < 1e-4, "pixel %zu inv_std", j);
    }
    norm_stats_apply(&st, ds);
    norm_stats_apply(&st, val);
    CU_ASSERT_EQUAL_FATAL(feature_stats(ds, mean_after, sd_after), 0);
    size_t constant = 0;
    for (size_t j = 0; j < 784; j++) {
        double m = mean_after[j], s = sd_after[j];
        CHECK_CASE(fabs(m) < 1e-4, "pixel %zu mean %g", j, m);
        if (sd_before[j] < 1e-6) {
            constant++;
            CHECK_CASE(s < 1e-6, "constant pixel %zu std %g", j, s);
        } else {
            CHECK_CASE(fabs(s - 1.0) < 1e-3, "pixel %zu std %g", j, s);
        }
    }
    for (size_t i = 0; i < val->n * val->dim; i++)
        CHECK_CASE(isfinite(val->x[i]), "val x[%zu] not finite", i);
    CU_ASSERT(constant > 0); /* a border pixel is 0 in all of the first 1500 images */
    norm_stats_free(&st);
    dataset_destroy(&val);
    dataset_destroy(&ds);
}

static void test_data_norm_none(void)
{
    dataset_t *ds = make_set(50, 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    float *copy = malloc(50 * 4 * sizeof(float));
    CU_ASSERT_PTR_NOT_NULL_FATAL(copy);
    memcpy(copy, ds->x, 50 * 4 * sizeof(float));
    norm_stats_t st;
    err_t err = {{0}};
    CU_ASSERT_EQUAL_FATAL(norm_stats_compute(&st, ds, NORM_NONE, &err), 0);
    for (size_t j = 0; j < 4; j++) {
        CU_ASSERT_EQUAL(st.mean[j], 0.0f);
        CU_ASSERT_EQUAL(st.inv_std[j], 1.0f);
    }
    norm_stats_apply(&st, ds);
    CU_ASSERT_EQUAL(memcmp(copy, ds->x, 50 * 4 * sizeof(float)), 0);
    norm_stats_free(&st);
    free(copy);
    dataset_destroy(&ds);
}

/* Returns 1 if perm[0..n) is a permutation of 0..n-1. */
static int is_permutation(const uint32_t *perm, size_t n)
{
    unsigned char *seen = calloc(n ? n : 1, 1);
    if (!seen)
        return 0;
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) {
        if (perm[i] >= n || seen[perm[i]])
            ok = 0;
        else
            seen[perm[i]] = 1;
    }
    free(seen);
    return ok;
}

static void test_data_permutation(void)
{
    enum { N = 1000 };
    static uint32_t a[N], b[N], ref[N];
    const size_t sizes[] = {0, 1, 2, 3, 10, 257, N};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        data_permutation(a, n, 42, 3);
        CHECK_CASE(is_permutation(a, n), "n=%zu not a permutation", n);
        data_permutation(b, n, 42, 3);
        CHECK_CASE(memcmp(a, b, n * sizeof a[0]) == 0, "n=%zu not deterministic", n);

        /* The contract every rank relies on: Fisher-Yates from the identity,
         * j = rng_below(seed, "PERM" ^ epoch, i, i + 1). */
        for (size_t i = 0; i < n; i++)
            ref[i] = (uint32_t)i;
        for (size_t i = n; i-- > 1;) {
            uint32_t j = rng_below(42, 0x5045524D00000000ull ^ 3, i, (uint32_t)(i + 1));
            uint32_t t = ref[i];
            ref[i] = ref[j];
            ref[j] = t;
        }
        CHECK_CASE(memcmp(a, ref, n * sizeof a[0]) == 0, "n=%zu differs from the reference", n);
    }

    data_permutation(a, N, 42, 0);
    data_permutation(b, N, 42, 1);
    CU_ASSERT(memcmp(a, b, sizeof a) != 0);
    data_permutation(b, N, 43, 0);
    CU_ASSERT(memcmp(a, b, sizeof a) != 0);
    size_t fixed = 0;
    for (size_t i = 0; i < N; i++)
        fixed += a[i] == i;
    CU_ASSERT(fixed < 10); /* a shuffle has about one fixed point */

    /* Every position gets every value about equally often (n = 4, 4000 draws). */
    unsigned hits[4][4] = {{0}};
    for (uint64_t e = 0; e < 4000; e++) {
        data_permutation(a, 4, 9, e);
        CU_ASSERT_FATAL(is_permutation(a, 4));
        for (int i = 0; i < 4; i++)
            hits[i][a[i]]++;
    }
    for (int i = 0; i < 4; i++)
        for (int v = 0; v < 4; v++)
            CHECK_CASE(hits[i][v] > 850 && hits[i][v] < 1150, "pos %d value %d: %u", i, v,
                       hits[i][v]);
}

static void test_data_batches_per_epoch(void)
{
    CU_ASSERT_EQUAL(data_batches_per_epoch(100, 10, 0), 10);
    CU_ASSERT_EQUAL(data_batches_per_epoch(100, 10, 1), 10);
    CU_ASSERT_EQUAL(data_batches_per_epoch(101, 10, 0), 11);
    CU_ASSERT_EQUAL(data_batches_per_epoch(101, 10, 1), 10);
    CU_ASSERT_EQUAL(data_batches_per_epoch(9, 10, 0), 1);
    CU_ASSERT_EQUAL(data_batches_per_epoch(9, 10, 1), 0);
    CU_ASSERT_EQUAL(data_batches_per_epoch(0, 10, 0), 0);
    CU_ASSERT_EQUAL(data_batches_per_epoch(60000, 64, 0), 938);
    CU_ASSERT_EQUAL(data_batches_per_epoch(60000, 64, 1), 937);
    CU_ASSERT_EQUAL(data_batches_per_epoch(5, 1, 0), 5);
    CU_ASSERT_EQUAL(data_batches_per_epoch(5, 0, 0), 0);
}

static void test_data_batch_slice(void)
{
    const size_t ns[] = {0, 1, 2, 7, 10, 64, 100, 101, 1000};
    const size_t batches[] = {1, 2, 3, 5, 7, 10, 32, 64, 1000, 2000};
    const int Ts[] = {1, 2, 3, 4, 5, 7, 8, 16, 33};
    unsigned char *cover = malloc(1000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cover);
    for (size_t in = 0; in < sizeof ns / sizeof ns[0]; in++)
        for (size_t ib = 0; ib < sizeof batches / sizeof batches[0]; ib++)
            for (size_t iT = 0; iT < sizeof Ts / sizeof Ts[0]; iT++) {
                size_t n = ns[in], batch = batches[ib];
                int T = Ts[iT];
                memset(cover, 0, 1000);
                size_t nb = data_batches_per_epoch(n, batch, 0);
                for (size_t b = 0; b < nb; b++) {
                    size_t gb = b * batch, ge = gb + batch < n ? gb + batch : n;
                    size_t pos = gb, max_size = 0, min_size = (size_t)-1, prev = (size_t)-1;
                    for (int t = 0; t < T; t++) {
                        size_t lo, hi;
                        data_batch_slice(n, batch, b, t, T, &lo, &hi);
                        CHECK_CASE(lo == pos && lo <= hi && hi <= ge,
                                   "n=%zu batch=%zu T=%d b=%zu t=%d: [%zu,%zu) not contiguous",
                                   n, batch, T, b, t, lo, hi);
                        size_t size = hi - lo;
                        CHECK_CASE(size <= prev, "n=%zu batch=%zu T=%d b=%zu t=%d: larger "
                                   "than the slice before", n, batch, T, b, t);
                        prev = size;
                        max_size = size > max_size ? size : max_size;
                        min_size = size < min_size ? size : min_size;
                        for (size_t p = lo; p < hi && p < n; p++)
                            cover[p]++;
                        pos = hi;
                    }
                    CHECK_CASE(pos == ge, "n=%zu batch=%zu T=%d b=%zu: slices end at %zu, "
                               "batch at %zu", n, batch, T, b, pos, ge);
                    CHECK_CASE(max_size - min_size <= 1, "n=%zu batch=%zu T=%d b=%zu: sizes "
                               "%zu..%zu", n, batch, T, b, min_size, max_size);
                }
                for (size_t p = 0; p < n; p++)
                    CHECK_CASE(cover[p] == 1, "n=%zu batch=%zu T=%d: position %zu covered "
                               "%u times", n, batch, T, p, cover[p]);

                /* drop_last: the first nb * batch positions exactly once. */
                size_t nd = data_batches_per_epoch(n, batch, 1);
                size_t covered = 0;
                for (size_t b = 0; b < nd; b++)
                    for (int t = 0; t < T; t++) {
                        size_t lo, hi;
                        data_batch_slice(n, batch, b, t, T, &lo, &hi);
                        covered += hi - lo;
                    }
                CHECK_CASE(covered == nd * batch, "n=%zu batch=%zu T=%d drop_last: %zu", n,
                           batch, T, covered);
            }
    free(cover);

    /* Concrete cases. */
    size_t lo, hi;
    data_batch_slice(100, 10, 3, 0, 3, &lo, &hi); /* 10 = 4 + 3 + 3 */
    CU_ASSERT(lo == 30 && hi == 34);
    data_batch_slice(100, 10, 3, 1, 3, &lo, &hi);
    CU_ASSERT(lo == 34 && hi == 37);
    data_batch_slice(100, 10, 3, 2, 3, &lo, &hi);
    CU_ASSERT(lo == 37 && hi == 40);
    data_batch_slice(23, 10, 2, 0, 2, &lo, &hi); /* last, short batch of 3 */
    CU_ASSERT(lo == 20 && hi == 22);
    data_batch_slice(23, 10, 2, 1, 2, &lo, &hi);
    CU_ASSERT(lo == 22 && hi == 23);
    data_batch_slice(100, 2, 0, 3, 4, &lo, &hi); /* T > batch: empty slice */
    CU_ASSERT(lo == hi);
    data_batch_slice(100, 10, 10, 0, 2, &lo, &hi); /* past the last batch */
    CU_ASSERT(lo == 100 && hi == 100);
}

static void test_data_gather(void)
{
    dataset_t *ds = make_set(20, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    for (size_t i = 0; i < 20; i++)
        ds->y[i] = (int32_t)(100 + i);
    uint32_t perm[20];
    data_permutation(perm, 20, 5, 1);
    float x[6 * 3];
    int32_t y[6];
    for (size_t k = 0; k < 6; k++)
        y[k] = -1;
    data_gather(ds, perm, 7, 13, x, y);
    for (size_t k = 0; k < 6; k++) {
        uint32_t s = perm[7 + k];
        CU_ASSERT_EQUAL(y[k], (int32_t)(100 + s));
        CU_ASSERT_EQUAL(memcmp(x + 3 * k, ds->x + 3 * s, 3 * sizeof(float)), 0);
    }
    /* An empty range writes nothing. */
    y[0] = -7;
    data_gather(ds, perm, 4, 4, x, y);
    CU_ASSERT_EQUAL(y[0], -7);
    dataset_destroy(&ds);
}

int test_data_register(void)
{
    CU_pSuite s = CU_add_suite("data", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "load_small", test_data_load_small) ||
        !CU_add_test(s, "load_fashion", test_data_load_fashion) ||
        !CU_add_test(s, "load_mismatch", test_data_load_mismatch) ||
        !CU_add_test(s, "split", test_data_split) ||
        !CU_add_test(s, "norm_global", test_data_norm_global) ||
        !CU_add_test(s, "norm_per_pixel", test_data_norm_per_pixel) ||
        !CU_add_test(s, "norm_none", test_data_norm_none) ||
        !CU_add_test(s, "permutation", test_data_permutation) ||
        !CU_add_test(s, "batches_per_epoch", test_data_batches_per_epoch) ||
        !CU_add_test(s, "batch_slice", test_data_batch_slice) ||
        !CU_add_test(s, "gather", test_data_gather))
        return -1;
    return 0;
}
