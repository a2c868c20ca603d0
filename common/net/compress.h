/* compress.h - gradient and parameter compression for the wire:
 * float16 (IEEE binary16) and bfloat16 conversions, and top-k selection with
 * error feedback.
 *
 * Conversions round to nearest, ties to even, keep infinities and NaNs
 * (a NaN stays a NaN) and flush nothing: float16 subnormals are produced and
 * read. Top-k keeps the residual (what was not sent) on the sender and adds
 * it to the next gradient, so nothing is lost, only delayed:
 * sent + residual_after == gradient + residual_before, exactly, for every
 * element (the sent values are the accumulated values themselves).
 */
#ifndef PST_COMPRESS_H
#define PST_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

uint16_t compress_f32_to_f16(float f);
float compress_f16_to_f32(uint16_t h);
uint16_t compress_f32_to_bf16(float f);
float compress_bf16_to_f32(uint16_t h);

/* dst[i] = the 16-bit form of src[i], i < n (bf16: bfloat16, else float16). */
void compress_encode16(uint16_t *dst, const float *src, size_t n, int bf16);
/* dst[i] = the float of src[i] (16-bit little-endian words, any alignment). */
void compress_decode16(float *dst, const uint8_t *src, size_t n, int bf16);

/* Top-k sends at least this many values of a piece (all of a smaller one). */
#define COMPRESS_TOPK_MIN 32

/* The number of elements top-k keeps of n at ratio r (0 < r <= 1): ceil(r n),
 * but at least COMPRESS_TOPK_MIN, and at most n. */
size_t compress_topk_count(size_t n, double ratio);

/* Top-k with error feedback over n elements: acc = g + residual; the k
 * elements of largest |acc| (k = compress_topk_count(n, ratio), ties to the
 * lower index) go to idx[] (ascending, positions in [0, n)) and val[] (their
 * acc values); residual becomes acc with those k set to 0. scratch holds n
 * floats. Returns k. */
size_t compress_topk(const float *g, float *residual, size_t n, double ratio, uint32_t *idx,
                     float *val, float *scratch);

#endif
