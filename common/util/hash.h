/* hash.h - a 64-bit integer mix for hash tables (MurmurHash3's finaliser:
 * every bit of x reaches every bit of the result), shared by the row store
 * and the sparse input's deduplication. Not the key of anything stored:
 * rows_hash (common/nn/rows.h), which places rows on servers, is its own. */
#ifndef PST_HASH_H
#define PST_HASH_H

#include <stdint.h>

static inline uint64_t hash_mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

#endif
