/* Working buffers of a stage call, reused (scratch.h). */
#include <stdint.h>
#include <stdlib.h>

#include "largealloc.h"
#include "scratch.h"

#define HEADER 64                        /* keeps the buffer 64-byte aligned */
#define MAGIC 0x5653435241544348ull      /* "VSCRATCH" */
#define CACHED VQ_SCRATCH_KEPT           /* free blocks kept during a call */
#define SMALL ((size_t)1 << 16)          /* below: malloc's own free lists do well */

struct header {
    uint64_t magic;
    size_t cap;
};

static _Thread_local struct {
    int depth;
    int n;
    void *block[CACHED];                 /* bases of free blocks (header first) */
    size_t cap[CACHED];
} pool;

void vq_scratch_begin(void)
{
    pool.depth++;
}

void vq_scratch_end(void)
{
    if (pool.depth > 0 && --pool.depth == 0) {
        for (int i = 0; i < pool.n; i++) free(pool.block[i]);
        pool.n = 0;
    }
}

void *vq_scratch_alloc(size_t bytes)
{
    if (bytes == 0) bytes = 1;
    if (bytes > SIZE_MAX - HEADER) return NULL;
    /* the smallest free block that holds it without wasting most of itself */
    int best = -1;
    if (bytes >= SMALL)
        for (int i = 0; i < pool.n; i++)
            if (pool.cap[i] >= bytes && pool.cap[i] / 4 <= bytes && (best < 0 || pool.cap[i] < pool.cap[best]))
                best = i;
    void *base;
    size_t cap;
    if (best >= 0) {
        base = pool.block[best];
        cap = pool.cap[best];
        pool.block[best] = pool.block[--pool.n];
        pool.cap[best] = pool.cap[pool.n];
    } else {
        /* none fits: the free blocks too small for it go back first, so that
         * the call holds little more than it uses */
        for (int i = 0; i < pool.n;)
            if (pool.cap[i] < bytes) {
                free(pool.block[i]);
                pool.block[i] = pool.block[--pool.n];
                pool.cap[i] = pool.cap[pool.n];
            } else {
                i++;
            }
        if (!(base = vq_alloc_large(HEADER + bytes))) return NULL;
        cap = bytes;
    }
    struct header *h = base;
    h->magic = MAGIC;
    h->cap = cap;
    return (char *)base + HEADER;
}

void vq_scratch_free(void *p)
{
    if (!p) return;
    void *base = (char *)p - HEADER;
    struct header *h = base;
    if (h->magic != MAGIC) abort();      /* not a scratch buffer: a bug */
    if (pool.depth == 0 || h->cap < SMALL) {
        h->magic = 0;
        free(base);
        return;
    }
    if (pool.n == CACHED) {
        /* full: keep the larger ones */
        int small = 0;
        for (int i = 1; i < CACHED; i++)
            if (pool.cap[i] < pool.cap[small]) small = i;
        if (pool.cap[small] >= h->cap) {
            h->magic = 0;
            free(base);
            return;
        }
        free(pool.block[small]);
        pool.block[small] = pool.block[--pool.n];
        pool.cap[small] = pool.cap[pool.n];
    }
    pool.block[pool.n] = base;
    pool.cap[pool.n] = h->cap;
    pool.n++;
}
