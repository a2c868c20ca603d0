/* rng.h - counter-based random numbers: every value is a pure function of
 * (seed, stream, counter), so any slice of a tensor's initial values or of an
 * epoch's permutation can be computed alone (Philox4x32-10, Salmon et al.,
 * "Parallel random numbers: as easy as 1, 2, 3", SC'11). */
#ifndef PST_RNG_H
#define PST_RNG_H

#include <stdint.h>

/* Four 32-bit random words for (seed, stream, counter). */
void rng_philox(uint64_t seed, uint64_t stream, uint64_t counter, uint32_t out[4]);

/* Uniform float in [0,1) from the counter-th value of (seed, stream). */
double rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter);

/* Standard normal from the counter-th value of (seed, stream) (Box-Muller on
 * one Philox block). */
double rng_normal(uint64_t seed, uint64_t stream, uint64_t counter);

/* Uniform integer in [0, bound) without modulo bias, from (seed, stream,
 * counter). */
uint32_t rng_below(uint64_t seed, uint64_t stream, uint64_t counter, uint32_t bound);

#endif
