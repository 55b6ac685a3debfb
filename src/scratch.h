/* Large working buffers reused within a call: the VQGAN stages' layers
 * (encoder, decoder, oneDNN's blocked copies) and the sampler's placement
 * caches and transformer buffers. Each VQGAN layer allocates buffers of tens
 * to hundreds of MiB and frees its input, and every window placement a cache
 * of about 75 MiB: from malloc, each is a fresh mapping, faulted in and
 * zeroed page by page (about a fifth of a 512x512 decode; blocks now come
 * from vq_alloc_large, on huge pages, which cuts the faults 512x where the
 * kernel allows them, but not the zeroing; on this project's virtual
 * machines a fresh huge page costs about 0.7 s of CPU time a GB). A block
 * freed between vq_scratch_begin and the matching vq_scratch_end on the same
 * thread is kept (at most VQ_SCRATCH_KEEP_MAX, per thread) for the next
 * allocation it can hold; the outermost end frees them. An allocation no
 * free block can hold frees the free blocks too small for it, smallest
 * first, only while the call would otherwise hold more than an eighth over
 * the most it has had out at once: a stage's growing layers hold little
 * more than they use, and the sampler's passing forward buffers stay for
 * its next forward instead of being mapped afresh after every new
 * placement cache (the placement caches themselves are all one size,
 * gpt.c). Otherwise these are malloc and free.
 *
 * Between calls: a call begun with vq_scratch_begin_kept starts with the
 * process's kept set of free blocks (when no other call holds it), and its
 * outermost end hands its free blocks back as the kept set, except those
 * that came from the set and no allocation of the call could use (freed).
 * The sessions' encode and decode calls run so (session.h): the next frame
 * of a stream reuses pages already faulted in instead of zeroing fresh ones,
 * and the calls of every session share one set, so a process holds at most
 * about one call's buffers between calls. vq_scratch_release frees the set
 * (sampling calls, whose buffers are others, do so first; so does freeing
 * the last session).
 *
 * Any thread may free a buffer, but only with vq_scratch_free. */
#ifndef VQ_SCRATCH_H
#define VQ_SCRATCH_H

#include <stddef.h>

#define VQ_SCRATCH_KEEP_MAX 64

void  vq_scratch_begin(void);
/* As vq_scratch_begin, and the outermost begin takes the kept set. */
void  vq_scratch_begin_kept(void);
void  vq_scratch_end(void);
void *vq_scratch_alloc(size_t bytes);    /* 64-byte aligned; NULL: out of memory */
void  vq_scratch_free(void *p);          /* NULL is a no-op */
/* Frees the kept set (not while a call holds it); the bytes it held. */
size_t vq_scratch_release(void);
/* The bytes of the kept set (0 while a call holds it). */
size_t vq_scratch_kept_bytes(void);

#endif
