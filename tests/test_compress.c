/* test_compress.c - float16 / bfloat16 conversions (every float16, rounding
 * against the nearest representable value, error bounds) and top-k with
 * error feedback (nothing lost: sent + residual equals the accumulated
 * gradient, element for element). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/net/compress.h"
#include "common/util/rng.h"
#include "tests.h"

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Every float16 value survives the trip through float, bit for bit. */
static void test_f16_exhaustive(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = compress_f16_to_f32((uint16_t)h);
        uint16_t back = compress_f32_to_f16(f);
        int nan = (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu);
        if (nan ? !isnan(f) || (back & 0x7c00u) != 0x7c00u || !(back & 0x3ffu) : back != h)
            bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(compress_f32_to_f16(1.0f), 0x3c00);
    CU_ASSERT_EQUAL(compress_f32_to_f16(-2.0f), 0xc000);
    CU_ASSERT_EQUAL(compress_f32_to_f16(65504.0f), 0x7bff);  /* largest */
    CU_ASSERT_EQUAL(compress_f32_to_f16(65520.0f), 0x7c00);  /* rounds to infinity */
    CU_ASSERT_EQUAL(compress_f32_to_f16(5.9604645e-8f), 0x0001); /* smallest subnormal */
    CU_ASSERT_EQUAL(compress_f32_to_f16(2.9802322e-8f), 0x0000); /* half of it: to even, 0 */
    CU_ASSERT_EQUAL(compress_f32_to_f16(1e-10f), 0x0000);
    CU_ASSERT_EQUAL(compress_f32_to_f16(-0.0f), 0x8000);
    CU_ASSERT_EQUAL(compress_f32_to_f16(INFINITY), 0x7c00);
    CU_ASSERT(isnan(compress_f16_to_f32(compress_f32_to_f16(NAN))));
    /* 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even, 1 */
    CU_ASSERT_EQUAL(compress_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
    CU_ASSERT_EQUAL(compress_f32_to_f16(1.0f + 0x1p-10f + 0x1p-11f), 0x3c02);
}

/* For random floats: the float16 (bfloat16) chosen is the nearest, ties to
 * the even one, and the relative error is within half an ulp. */
static void check_nearest(int bf16)
{
    int bad = 0;
    for (int i = 0; i < 200000; i++) {
        /* magnitudes across the normal range of the format and beyond */
        float x = (float)(rng_uniform(99, (uint64_t)bf16, 2 * (uint64_t)i) - 0.5) *
                  ldexpf(1.0f, (int)(rng_uniform(99, (uint64_t)bf16, 2 * (uint64_t)i + 1) * 40) - 20);
        uint16_t h = bf16 ? compress_f32_to_bf16(x) : compress_f32_to_f16(x);
        double got = bf16 ? compress_bf16_to_f32(h) : compress_f16_to_f32(h);
        if (isinf(got)) { /* past the largest float16 (65504 + half an ulp) */
            if (fabsf(x) < 65520.0f)
                bad++;
            continue;
        }
        double e = fabs((double)x - got);
        for (int d = -1; d <= 1; d += 2) {
            uint16_t n = (uint16_t)(h + d);
            if ((n & 0x7fffu) == 0x7fffu || ((h ^ n) & 0x8000u))
                continue; /* across the sign or past the largest */
            double other = bf16 ? compress_bf16_to_f32(n) : compress_f16_to_f32(n);
            if (isinf(other) || isnan(other))
                continue;
            double eo = fabs((double)x - other);
            if (eo < e || (eo == e && (n & 1) == 0 && (h & 1)))
                bad++;
        }
        double rel = bf16 ? 0x1p-8 : 0x1p-11;
        if (fabsf(x) >= (bf16 ? 1e-30f : 6.2e-5f) && fabsf(x) < 60000.0f && e > rel * fabs(x))
            bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
}

static void test_f16_nearest(void) { check_nearest(0); }
static void test_bf16_nearest(void) { check_nearest(1); }

static void test_bf16_values(void)
{
    CU_ASSERT_EQUAL(compress_f32_to_bf16(1.0f), 0x3f80);
    CU_ASSERT_EQUAL(bits(compress_bf16_to_f32(0x3f80)), bits(1.0f));
    CU_ASSERT_EQUAL(compress_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);  /* tie: even */
    CU_ASSERT_EQUAL(compress_f32_to_bf16(1.0f + 0x1p-7f + 0x1p-8f), 0x3f82);
    CU_ASSERT_EQUAL(compress_f32_to_bf16(3.0e38f), 0x7f62);
    CU_ASSERT(isnan(compress_bf16_to_f32(compress_f32_to_bf16(NAN))));
    CU_ASSERT(isinf(compress_bf16_to_f32(compress_f32_to_bf16(INFINITY))));
    /* the buffer forms: little-endian words */
    float src[3] = {1.0f, -2.5f, 1e-3f}, back[3];
    uint16_t w[3];
    for (int bf = 0; bf <= 1; bf++) {
        compress_encode16(w, src, 3, bf);
        compress_decode16(back, (const uint8_t *)w, 3, bf);
        for (int i = 0; i < 3; i++)
            CU_ASSERT(fabsf(back[i] - src[i]) <= fabsf(src[i]) * (bf ? 0x1p-8f : 0x1p-11f));
    }
}

/* The buffer forms (vectorised where the CPU converts) agree with the
 * scalar conversions on every float16 value and on random floats. */
static void test_buffers(void)
{
    enum { N = 65536 + 1003 };
    float *src = malloc(N * sizeof *src), *back = malloc(N * sizeof *back);
    uint16_t *w = malloc(N * sizeof *w);
    for (int i = 0; i < 65536; i++)
        src[i] = compress_f16_to_f32((uint16_t)i);
    for (int i = 65536; i < N; i++)
        src[i] = (float)(rng_normal(3, 0, (uint64_t)i) * 100.0);
    int bad = 0;
    for (int bf = 0; bf <= 1; bf++) {
        compress_encode16(w, src, N, bf);
        for (int i = 0; i < N; i++) {
            uint16_t one = bf ? compress_f32_to_bf16(src[i]) : compress_f32_to_f16(src[i]);
            if (w[i] != one && !isnan(src[i]))
                bad++;
        }
        compress_decode16(back, (const uint8_t *)w, N, bf);
        for (int i = 0; i < N; i++) {
            float one = bf ? compress_bf16_to_f32(w[i]) : compress_f16_to_f32(w[i]);
            if (bits(back[i]) != bits(one) && !isnan(one))
                bad++;
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    free(src);
    free(back);
    free(w);
}

/* Top-k: k elements of the largest magnitude, in index order, and what is
 * not sent stays in the residual: over many steps, the sum of what was sent
 * plus the residual equals the sum of the gradients. */
static void test_topk(void)
{
    enum { N = 1000, STEPS = 50 };
    CU_ASSERT_EQUAL(compress_topk_count(100000, 0.01), 1000);
    CU_ASSERT_EQUAL(compress_topk_count(N, 0.01), COMPRESS_TOPK_MIN);
    CU_ASSERT_EQUAL(compress_topk_count(N, 0.1), 100);
    CU_ASSERT_EQUAL(compress_topk_count(5, 1.0), 5);
    CU_ASSERT_EQUAL(compress_topk_count(0, 0.5), 0);
    float *g = malloc(N * sizeof *g), *res = calloc(N, sizeof *res), *scratch = malloc(N * 4);
    double *sent = calloc(N, sizeof *sent), *total = calloc(N, sizeof *total);
    uint32_t idx[N];
    float val[N];
    int bad = 0;
    for (int s = 0; s < STEPS; s++) {
        for (int i = 0; i < N; i++) {
            float v = (float)rng_normal(5, 0, (uint64_t)(s * N + i)) * (i % 7 == 0 ? 10.0f : 1.0f);
            g[i] = s == 3 ? 0.5f : (float)(int)(v * 64) / 64; /* sums exact in float */
            total[i] += g[i];
        }
        float before[N];
        memcpy(before, res, sizeof before);
        size_t k = compress_topk(g, res, N, 0.01, idx, val, scratch);
        CU_ASSERT_EQUAL(k, COMPRESS_TOPK_MIN);
        float lowest_sent = INFINITY;
        for (size_t j = 0; j < k; j++) {
            if (j && idx[j] <= idx[j - 1])
                bad++;
            sent[idx[j]] += val[j];
            if (val[j] != before[idx[j]] + g[idx[j]] || res[idx[j]] != 0)
                bad++;
            lowest_sent = fminf(lowest_sent, fabsf(val[j]));
        }
        for (int i = 0; i < N; i++) /* nothing unsent beats what was sent */
            if (fabsf(res[i]) > lowest_sent)
                bad++;
    }
    /* nothing lost: what was sent plus what is left is every gradient */
    for (int i = 0; i < N; i++)
        if (sent[i] + res[i] != total[i])
            bad++;
    CU_ASSERT_EQUAL(bad, 0);
    free(g);
    free(res);
    free(scratch);
    free(sent);
    free(total);
}

/* A large piece (the sampled threshold): the same k largest as a full sort. */
static void test_topk_large(void)
{
    enum { N = 60000 };
    float *g = malloc(N * 4), *res = calloc(N, 4), *scratch = malloc(N * 4), *val = malloc(N * 4),
          *sorted = malloc(N * 4);
    uint32_t *idx = malloc(N * 4);
    int bad = 0;
    for (int s = 0; s < 5; s++) {
        for (int i = 0; i < N; i++)
            g[i] = (float)rng_normal(8, (uint64_t)s, (uint64_t)i) * (s == 2 && i < 100 ? 1e3f : 1);
        float acc[N];
        for (int i = 0; i < N; i++) {
            acc[i] = res[i] + g[i];
            sorted[i] = fabsf(acc[i]);
        }
        /* the k-th largest by a plain insertion of the top: a reference */
        size_t k = compress_topk(g, res, N, 0.01, idx, val, scratch);
        CU_ASSERT_EQUAL(k, 600);
        float kth = INFINITY;
        for (size_t j = 0; j < k; j++)
            kth = fminf(kth, fabsf(val[j]));
        size_t above = 0;
        for (int i = 0; i < N; i++)
            above += sorted[i] > kth;
        if (above >= k) /* more than k values beat the smallest sent one */
            bad++;
        for (size_t j = 0; j < k; j++)
            if (val[j] != acc[idx[j]])
                bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    free(g);
    free(res);
    free(scratch);
    free(val);
    free(sorted);
    free(idx);
}

int test_compress_register(void)
{
    CU_pSuite s = CU_add_suite("compress", NULL, NULL);
    if (!s || !CU_add_test(s, "f16_exhaustive", test_f16_exhaustive) ||
        !CU_add_test(s, "f16_nearest", test_f16_nearest) ||
        !CU_add_test(s, "bf16_nearest", test_bf16_nearest) ||
        !CU_add_test(s, "bf16_values", test_bf16_values) ||
        !CU_add_test(s, "buffers", test_buffers) || !CU_add_test(s, "topk", test_topk) ||
        !CU_add_test(s, "topk_large", test_topk_large))
        return -1;
    return 0;
}
