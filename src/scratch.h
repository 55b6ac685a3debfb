/* Working buffers of a stage call (encoder, decoder, convolution copies),
 * reused within the call. Each layer of the VQGAN allocates buffers of tens to
 * hundreds of MiB and frees its input: from malloc, each is a fresh mapping,
 * faulted in and zeroed page by page (about a fifth of a 512x512 decode). A
 * block freed between vq_scratch_begin and the matching vq_scratch_end is kept
 * (a few, per thread) for the next allocation it can hold; the outermost end
 * frees them. Outside a begin/end pair these are malloc and free.
 *
 * A buffer must be allocated and freed on the same thread, and freed with
 * vq_scratch_free only. */
#ifndef VQ_SCRATCH_H
#define VQ_SCRATCH_H

#include <stddef.h>

void  vq_scratch_begin(void);
void  vq_scratch_end(void);
void *vq_scratch_alloc(size_t bytes);    /* 64-byte aligned; NULL: out of memory */
void  vq_scratch_free(void *p);          /* NULL is a no-op */

#endif
