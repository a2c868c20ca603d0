/* shard.h - which parameter server owns which keys.
 *
 * The flat parameter index [0, n) is cut into S contiguous shards whose
 * sizes differ by at most one (the first n % S shards are one larger); a
 * tensor may span shards. Server s owns [shard_begin(n,S,s), shard_end(n,S,s)).
 */
#ifndef PST_SHARD_H
#define PST_SHARD_H

#include <stddef.h>

/* The most parameter servers (shards) a job can have: a checkpoint folder
 * holds at most this many shard files (export/ckptdir.c, checkpoint.c).
 * --servers, cluster.servers and the client (ps/client.h) are held to it. */
#define SHARD_SERVERS_MAX 1024

size_t shard_begin(size_t n, int S, int s);
size_t shard_end(size_t n, int S, int s);
/* The server that owns key k (k < n). */
int shard_owner(size_t n, int S, size_t k);

#endif
