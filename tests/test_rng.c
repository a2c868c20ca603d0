/* test_rng.c - the counter-based generator: Random123's known answers for
 * Philox4x32-10, determinism, and the shape of its distributions. */
#include <math.h>
#include <stdlib.h>

#include "common/util/rng.h"
#include "tests.h"

static void test_philox_kat(void)
{
    /* Random123 kat_vectors, philox4x32 with 10 rounds: counter words
     * (c0..c3) = (counter lo, counter hi, stream lo, stream hi), key
     * words (k0, k1) = (seed lo, seed hi). */
    uint32_t w[4];
    rng_philox(0, 0, 0, w);
    CU_ASSERT(w[0] == 0x6627e8d5u && w[1] == 0xe169c58du && w[2] == 0xbc57ac4cu && w[3] == 0x9b00dbd8u);
    rng_philox(~0ull, ~0ull, ~0ull, w);
    CU_ASSERT(w[0] == 0x408f276du && w[1] == 0x41c83b0eu && w[2] == 0xa20bc7c6u && w[3] == 0x6d5451fdu);
    rng_philox(0x299f31d0a4093822ull, 0x0370734413198a2eull, 0x85a308d3243f6a88ull, w);
    CU_ASSERT(w[0] == 0xd16cfe09u && w[1] == 0x94fdccebu && w[2] == 0x5001e420u && w[3] == 0x24126ea1u);
}

static void test_distributions(void)
{
    const int n = 200000;
    double su = 0, sn = 0, sn2 = 0, lo = 1, hi = 0;
    long counts[10] = {0};
    for (int i = 0; i < n; i++) {
        double u = rng_uniform(7, 3, i);
        lo = fmin(lo, u);
        hi = fmax(hi, u);
        su += u;
        double z = rng_normal(7, 4, i);
        sn += z;
        sn2 += z * z;
        uint32_t k = rng_below(7, 5, i, 10);
        CU_ASSERT_FATAL(k < 10);
        counts[k]++;
    }
    CU_ASSERT(lo >= 0 && hi < 1);
    CU_ASSERT(fabs(su / n - 0.5) < 0.005);
    CU_ASSERT(fabs(sn / n) < 0.01);
    CU_ASSERT(fabs(sn2 / n - 1.0) < 0.02);
    for (int k = 0; k < 10; k++)
        CU_ASSERT(labs(counts[k] - n / 10) < n / 100);
    /* pure function of (seed, stream, counter) */
    CU_ASSERT(rng_uniform(1, 2, 3) == rng_uniform(1, 2, 3));
    CU_ASSERT(rng_uniform(1, 2, 3) != rng_uniform(2, 2, 3));
    CU_ASSERT(rng_uniform(1, 2, 3) != rng_uniform(1, 3, 3));
    CU_ASSERT(rng_below(9, 9, 9, 1) == 0);
}

int test_rng_register(void)
{
    CU_pSuite s = CU_add_suite("rng", NULL, NULL);
    if (!s || !CU_add_test(s, "philox_kat", test_philox_kat) ||
        !CU_add_test(s, "distributions", test_distributions))
        return -1;
    return 0;
}
