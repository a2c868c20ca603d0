/* compress.c - float16 / bfloat16 conversions and top-k with error feedback
 * (see compress.h). */
#include "common/net/compress.h"
#include "common/util/le.h"

#include <math.h>
#include <string.h>
#ifdef __F16C__
#include <immintrin.h>
#endif

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float float_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t compress_f32_to_f16(float f)
{
    uint32_t x = bits_of(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t exp = (x >> 23) & 0xffu;
    uint32_t man = x & 0x7fffffu;
    if (exp == 0xff) /* inf, or NaN kept a (quiet) NaN */
        return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31) /* too large: infinity */
        return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) { /* a float16 subnormal, or zero */
        if (e < -10)
            return (uint16_t)sign;
        man |= 0x800000u; /* the implicit bit */
        int shift = 14 - e;
        uint32_t h = man >> shift, rest = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rest > half || (rest == half && (h & 1)))
            h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (man >> 13), rest = man & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1)))
        h++; /* may carry into the exponent, up to infinity: right */
    return (uint16_t)(sign | h);
}

float compress_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1f)
        return float_of(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0)
            return float_of(sign);
        /* subnormal: man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return float_of(sign | ((exp - 15 + 127) << 23) | (man << 13));
}

uint16_t compress_f32_to_bf16(float f)
{
    uint32_t x = bits_of(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) /* NaN: stays a quiet NaN */
        return (uint16_t)((x >> 16) | 0x40u);
    uint32_t rest = x & 0xffffu, h = x >> 16;
    if (rest > 0x8000u || (rest == 0x8000u && (h & 1)))
        h++;
    return (uint16_t)h;
}

float compress_bf16_to_f32(uint16_t h)
{
    return float_of((uint32_t)h << 16);
}

/* bfloat16 of x's bits without branches (so that the loop vectorises): a
 * NaN becomes a quiet NaN, everything else rounds to nearest even. */
static inline uint16_t bf16_of_bits(uint32_t x)
{
    uint32_t nan = (x & 0x7fffffffu) > 0x7f800000u;
    uint32_t r = (x + 0x7fffu + ((x >> 16) & 1)) >> 16;
    return (uint16_t)(nan ? (x >> 16) | 0x40u : r);
}

void compress_encode16(uint16_t *dst, const float *src, size_t n, int bf16)
{
    size_t i = 0;
    if (bf16) {
        for (; i < n; i++) {
            uint32_t x;
            memcpy(&x, &src[i], 4);
            dst[i] = bf16_of_bits(x);
        }
        return;
    }
#ifdef __F16C__
    /* the CPU's conversion: round to nearest even, as compress_f32_to_f16 */
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
#endif
    for (; i < n; i++)
        dst[i] = compress_f32_to_f16(src[i]);
}

void compress_decode16(float *dst, const uint8_t *src, size_t n, int bf16)
{
    size_t i = 0;
    if (bf16) {
        for (; i < n; i++) {
            uint32_t x = (uint32_t)le_load16(src + 2 * i) << 16;
            memcpy(&dst[i], &x, 4);
        }
        return;
    }
#if defined(__F16C__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + 2 * i))));
#endif
    for (; i < n; i++)
        dst[i] = compress_f16_to_f32(le_load16(src + 2 * i));
}

size_t compress_topk_count(size_t n, double ratio)
{
    if (n == 0)
        return 0;
    double k = ceil((double)n * ratio);
    /* a small piece (a bias, a small conv) still sends a few values each
     * step: starved of updates it would hold the whole model back, and it
     * costs next to nothing next to the large pieces */
    if (!(k >= COMPRESS_TOPK_MIN))
        k = COMPRESS_TOPK_MIN;
    return k >= (double)n ? n : (size_t)k;
}

/* The value of rank k (0-based, descending) of a[0..n), which it reorders
 * (Hoare quickselect with the middle element as pivot). */
static float kth_largest(float *a, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = a[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] > pivot)
                i++;
            while (a[j] < pivot)
                j--;
            if (i <= j) {
                float t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return a[k];
    }
    return a[k];
}

size_t compress_topk(const float *g, float *residual, size_t n, double ratio, uint32_t *idx,
                     float *val, float *scratch)
{
    size_t k = compress_topk_count(n, ratio);
    if (k == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        residual[i] += g[i];
    /* The threshold: the k-th largest |acc|. For a large piece a sample
     * first gives a lower bound that about 2k values pass, and the exact
     * selection runs on those only (on all of them when the bound fails). */
    size_t m = 0;
    if (n >= 8192 && k < n / 16) {
        enum { SAMPLE = 1024 };
        const size_t stride = n / SAMPLE;
        for (size_t j = 0; j < SAMPLE; j++)
            scratch[j] = fabsf(residual[j * stride]);
        size_t rank = (size_t)((double)k * SAMPLE / (double)n * 2.0) + 4;
        float bound = kth_largest(scratch, SAMPLE, rank < SAMPLE ? rank : SAMPLE - 1);
        for (size_t i = 0; i < n; i++) {
            float a = fabsf(residual[i]);
            if (a >= bound)
                scratch[m++] = a;
        }
        if (m < k)
            m = 0; /* the sample misled: select over everything */
    }
    if (m == 0) {
        for (size_t i = 0; i < n; i++)
            scratch[i] = fabsf(residual[i]);
        m = n;
    }
    float t = kth_largest(scratch, m, k - 1);
    /* those above the threshold, then ties at it in index order, up to k */
    size_t above = 0;
    for (size_t i = 0; i < n; i++)
        above += fabsf(residual[i]) > t;
    size_t ties = k - above, got = 0;
    for (size_t i = 0; i < n && got < k; i++) {
        float a = fabsf(residual[i]);
        if (a > t || (a == t && ties > 0)) {
            if (!(a > t))
                ties--;
            idx[got] = (uint32_t)i;
            val[got] = residual[i];
            residual[i] = 0;
            got++;
        }
    }
    return got;
}
