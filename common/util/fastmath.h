/* fastmath.h - vectorisable exp, sigmoid and tanh over arrays.
 *
 * glibc's expf/tanhf are scalar calls that keep the LSTM's gate loops from
 * vectorising; these are the Cephes single-precision approximations
 * (S. Moshier), accurate to a few ulp over the whole float range, written so
 * that `#pragma omp simd` (-fopenmp-simd) turns each loop into AVX code.
 * Named as libm names float functions (tanhf); _vec: over an array. */
#ifndef PST_FASTMATH_H
#define PST_FASTMATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* e^x, Cephes expf: range reduction x = n ln2 + r, degree-6 polynomial on r. */
static inline float fast_expf(float x)
{
    x = x > 88.3762626647949f ? 88.3762626647949f : x;
    x = x < -87.3365447504f ? -87.3365447504f : x;
    /* n = round(x / ln 2) by the 1.5 * 2^23 trick: the add rounds to an
     * integer in the current (nearest) mode, and unlike floorf it needs no
     * libm call, so the loop vectorises */
    float fx = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    x -= fx * 0.693359375f;
    x -= fx * -2.12194440e-4f;
    float z = x * x;
    float y = ((((1.9875691500e-4f * x + 1.3981999507e-3f) * x + 8.3334519073e-3f) * x +
                4.1665795894e-2f) * x + 1.6666665459e-1f) * x + 5.0000001201e-1f;
    y = y * z + x + 1.0f;
    int32_t n = (int32_t)fx + 127;
    uint32_t bits = (uint32_t)n << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return y * scale;
}

static inline float fast_sigmoidf(float x)
{
    return 1.0f / (1.0f + fast_expf(-x));
}

/* Cephes tanhf: an odd polynomial for |x| < 0.625, 1 - 2 / (e^{2|x|} + 1) beyond. */
static inline float fast_tanhf(float x)
{
    float ax = fabsf(x);
    float z = x * x;
    float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
                    1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
    float e = fast_expf(2.0f * (ax > 44.0f ? 44.0f : ax));
    float large = 1.0f - 2.0f / (e + 1.0f);
    large = x < 0.0f ? -large : large;
    return ax < 0.625f ? small : large;
}

static inline void fast_sigmoidf_vec(float *y, const float *x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        y[i] = fast_sigmoidf(x[i]);
}

static inline void fast_tanhf_vec(float *y, const float *x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        y[i] = fast_tanhf(x[i]);
}

#endif
