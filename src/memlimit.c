/* Process and machine memory limits (memlimit.h). */
#include <sys/resource.h>
#include <unistd.h>

#include "memlimit.h"
#include "vqgan.h"

double vq_process_memory_limit(const char **which)
{
    static const int res[2] = { RLIMIT_AS, RLIMIT_DATA };
    static const char *names[2] = { "RLIMIT_AS", "RLIMIT_DATA" };
    double lim = 0.0;
    for (int i = 0; i < 2; i++) {
        struct rlimit rl;
        if (getrlimit(res[i], &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
            (lim == 0.0 || (double)rl.rlim_cur < lim)) {
            lim = (double)rl.rlim_cur;
            if (which) *which = names[i];
        }
    }
    return lim;
}

double vq_physical_memory(void)
{
    const long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (double)pages * (double)size : 0.0;
}

size_t vq_default_cache_bytes(void)
{
    double cap = (double)VQGAN_DEFAULT_CACHE_BYTES;
    const double ram = vq_physical_memory(), lim = vq_process_memory_limit(NULL);
    if (ram > 0.0 && ram / 4 < cap) cap = ram / 4;
    if (lim > 0.0 && lim / 4 < cap) cap = lim / 4;
    return (size_t)cap;
}
