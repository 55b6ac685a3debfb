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
 * Between calls: a call begun with vq_scratch_begin_keep(k) starts with the
 * blocks k holds, keeps up to VQ_SCRATCH_KEEP_MAX free blocks, and its
 * outermost end hands the free blocks back to k, except those that came from
 * k and no allocation of this call could use (they are freed). A session
 * keeps its stage calls' buffers so (session.h): the next frame of a stream
 * reuses pages already faulted in instead of zeroing them again.
 *
 * Any thread may free a buffer, but only with vq_scratch_free. */
#ifndef VQ_SCRATCH_H
#define VQ_SCRATCH_H

#include <stddef.h>

#define VQ_SCRATCH_KEPT 6
#define VQ_SCRATCH_KEEP_MAX 64

/* Free blocks kept between calls; zero-initialized is empty. */
struct vq_scratch_keep {
    int n;
    void *block[VQ_SCRATCH_KEEP_MAX];    /* bases (header first) */
    size_t cap[VQ_SCRATCH_KEEP_MAX];
};

void  vq_scratch_begin(void);
/* k NULL: vq_scratch_begin. Only the outermost begin takes k's blocks. */
void  vq_scratch_begin_keep(struct vq_scratch_keep *k);
void  vq_scratch_end(void);
void *vq_scratch_alloc(size_t bytes);    /* 64-byte aligned; NULL: out of memory */
void  vq_scratch_free(void *p);          /* NULL is a no-op */
/* Frees what k holds (k is then empty); bytes held before, for reports. */
size_t vq_scratch_keep_free(struct vq_scratch_keep *k);
/* The bytes k holds. */
size_t vq_scratch_keep_bytes(const struct vq_scratch_keep *k);

#endif
