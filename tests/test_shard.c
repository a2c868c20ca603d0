/* test_shard.c - shard arithmetic: for many n and S every key belongs to
 * exactly one shard, shards are contiguous and their sizes differ by <= 1. */
#include "ps/shard.h"
#include "tests.h"

static void test_cover(void)
{
    size_t ns[] = {1, 2, 3, 7, 10, 31, 100, 1000, 54410, 54411, 65536};
    int Ss[] = {1, 2, 3, 4, 5, 7, 8, 16, 33, 64};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t b = 0; b < sizeof Ss / sizeof Ss[0]; b++) {
            size_t n = ns[a];
            int S = Ss[b];
            size_t lo = (size_t)-1, hi = 0;
            CU_ASSERT_EQUAL(shard_begin(n, S, 0), 0);
            CU_ASSERT_EQUAL(shard_end(n, S, S - 1), n);
            for (int s = 0; s < S; s++) {
                size_t sz = shard_end(n, S, s) - shard_begin(n, S, s);
                lo = sz < lo ? sz : lo;
                hi = sz > hi ? sz : hi;
                if (s > 0)
                    CU_ASSERT_EQUAL(shard_begin(n, S, s), shard_end(n, S, s - 1));
            }
            CU_ASSERT(hi - lo <= 1);
            for (size_t k = 0; k < n; k++) {
                int o = shard_owner(n, S, k);
                if (!(o >= 0 && o < S && shard_begin(n, S, o) <= k && k < shard_end(n, S, o))) {
                    CU_FAIL("key owned by the wrong shard");
                    break;
                }
            }
        }
}

int test_shard_register(void)
{
    CU_pSuite s = CU_add_suite("shard", NULL, NULL);
    return (s && CU_add_test(s, "cover", test_cover)) ? 0 : -1;
}
