/* Large working buffers reused within a call: the VQGAN stages' layers
 * (encoder, decoder, oneDNN's blocked copies) and the sampler's placement
 * caches and transformer buffers. Each VQGAN layer allocates buffers of tens
 * to hundreds of MiB and frees its input, and every window placement a cache
 * of about 75 MiB: from malloc, each is a fresh mapping, faulted in and
 * zeroed page by page (about a fifth of a 512x512 decode; blocks now come
 * from vq_alloc_large, on huge pages, which cuts the faults 512x where the
 * kernel allows them, but not the zeroing). A block freed
 * between vq_scratch_begin and the matching vq_scratch_end on the same thread
 * is kept (at most VQ_SCRATCH_KEPT, per thread) for the next allocation it can
 * hold; the outermost end frees them. Otherwise these are malloc and free.
 *
 * Any thread may free a buffer, but only with vq_scratch_free. */
#ifndef VQ_SCRATCH_H
#define VQ_SCRATCH_H

#include <stddef.h>

#define VQ_SCRATCH_KEPT 6

void  vq_scratch_begin(void);
void  vq_scratch_end(void);
void *vq_scratch_alloc(size_t bytes);    /* 64-byte aligned; NULL: out of memory */
void  vq_scratch_free(void *p);          /* NULL is a no-op */

#endif
