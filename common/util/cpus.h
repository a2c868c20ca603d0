/* cpus.h - how many CPUs this process may run on: the basis of every
 * "auto" thread count (train.threads, server.threads, cluster.io_threads). */
#ifndef PST_CPUS_H
#define PST_CPUS_H

/* The CPUs in this process's affinity mask (what taskset, cgroups' cpusets or
 * mpirun's binding leave it), at least 1. */
int cpus_available(void);

/* An "auto" count: cpus shared by `sharers` ranks of a node, at least 1. */
int cpus_share(int cpus, int sharers);

#endif
