/* Large buffers on transparent huge pages. A buffer of tens to hundreds of
 * MiB (weights, the VQGAN stages' activations, window caches) is a fresh
 * mapping that the kernel faults in and zeroes 4 KiB at a time: on a virtual
 * machine each fault is a trap to the hypervisor, and a 1024x672 label encode
 * spent about half its time in them (Zen 5, 4 Dec 2026). Asking for huge
 * pages (madvise MADV_HUGEPAGE; the kernel's default for anonymous memory is
 * often "madvise") faults 2 MiB at a time instead, and the same pages need
 * 512x fewer TLB entries. Where the kernel has no huge pages the advice is
 * ignored and the buffer is an ordinary one. */
#ifndef VQ_LARGEALLOC_H
#define VQ_LARGEALLOC_H

#include <stddef.h>

/* bytes (0 allowed) 64-byte aligned, freed with free(); from 2 MiB up,
 * advised onto huge pages, and from 32 MiB up also 2 MiB aligned. Aligning
 * reserves up to 2 MiB of address space more per buffer, which counts
 * against RLIMIT_AS and RLIMIT_DATA: for every buffer it added 18 % to a
 * load of the S-FLCKR-shape model (730 MiB); from 32 MiB it is at most 1/16
 * of a buffer. An unaligned buffer loses at most its two partial huge pages
 * at the ends. NULL: out of memory. */
void *vq_alloc_large(size_t bytes);

#endif
