/* shard.c - balanced contiguous key ranges (see shard.h). */
#include "ps/shard.h"

size_t shard_begin(size_t n, int S, int s)
{
    size_t base = n / (size_t)S, rem = n % (size_t)S, us = (size_t)s;
    return us * base + (us < rem ? us : rem);
}

size_t shard_end(size_t n, int S, int s)
{
    return shard_begin(n, S, s + 1);
}

int shard_owner(size_t n, int S, size_t k)
{
    size_t base = n / (size_t)S, rem = n % (size_t)S;
    /* the first rem shards hold base + 1 keys */
    if (k < rem * (base + 1))
        return (int)(k / (base + 1));
    return (int)(rem + (k - rem * (base + 1)) / base);
}
