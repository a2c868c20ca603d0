/* rng.c - Philox4x32-10 counter-based generator (see rng.h). */
#include "common/util/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void rng_philox(uint64_t seed, uint64_t stream, uint64_t counter, uint32_t out[4])
{
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32);
    uint32_t c2 = (uint32_t)stream, c3 = (uint32_t)(stream >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

double rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter)
{
    uint32_t w[4];
    rng_philox(seed, stream, counter, w);
    uint64_t bits = ((uint64_t)w[0] << 21) ^ (uint64_t)w[1]; /* 53 random bits */
    bits &= (1ull << 53) - 1;
    return (double)bits * (1.0 / 9007199254740992.0);
}

double rng_normal(uint64_t seed, uint64_t stream, uint64_t counter)
{
    uint32_t w[4];
    rng_philox(seed, stream, counter, w);
    /* u1 in (0,1], u2 in [0,1) */
    double u1 = ((double)w[0] + 1.0) * (1.0 / 4294967296.0);
    double u2 = (double)w[1] * (1.0 / 4294967296.0);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

uint32_t rng_below(uint64_t seed, uint64_t stream, uint64_t counter, uint32_t bound)
{
    uint32_t w[4];
    rng_philox(seed, stream, counter, w);
    uint64_t r = ((uint64_t)w[0] << 32) | w[1];
    /* Multiply-shift (Lemire): bias at most bound / 2^64, far below anything
     * a shuffle could show. */
    return (uint32_t)(((unsigned __int128)r * bound) >> 64);
}
