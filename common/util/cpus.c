/* cpus.c - the CPUs this process may use (see cpus.h). */
#include "common/util/cpus.h"

#include <sched.h>
#include <unistd.h>

int cpus_available(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int cpus_share(int cpus, int sharers)
{
    int n = sharers > 0 ? cpus / sharers : cpus;
    return n > 0 ? n : 1;
}
