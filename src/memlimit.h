/* What memory this process may use: its rlimits and the machine's RAM.
 * Used for the refusals of oversized models and frames (model.c, vqgan.c)
 * and for the default cap of the transformer's window caches (window.c). */
#ifndef VQ_MEMLIMIT_H
#define VQ_MEMLIMIT_H

#include <stddef.h>

/* The lower soft limit of RLIMIT_AS and RLIMIT_DATA in bytes, or 0 if neither
 * is set; *which (may be NULL) names it ("RLIMIT_AS" / "RLIMIT_DATA"). */
double vq_process_memory_limit(const char **which);

/* The machine's physical memory in bytes, or 0 if unknown. */
double vq_physical_memory(void);

/* The window-cache cap that cache_bytes = 0 selects: VQGAN_DEFAULT_CACHE_BYTES,
 * lowered to a quarter of the physical memory and of the process limit. */
size_t vq_default_cache_bytes(void);

#endif
