/* Working buffers of a stage call, reused (scratch.h). */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "largealloc.h"
#include "scratch.h"

#define HEADER 64                        /* keeps the buffer 64-byte aligned */
#define MAGIC 0x5653435241544348ull      /* "VSCRATCH" */
#define SMALL ((size_t)1 << 16)          /* below: malloc's own free lists do well */

struct header {
    uint64_t magic;
    size_t cap;
};

static _Thread_local struct {
    int depth;
    int n;
    int kept;                            /* the free blocks become the kept set */
    size_t out, peak;                    /* bytes of blocks handed out here and not
                                            freed here yet; the most so far */
    void *block[VQ_SCRATCH_KEEP_MAX];    /* bases of free blocks (header first) */
    size_t cap[VQ_SCRATCH_KEEP_MAX];
    unsigned char old[VQ_SCRATCH_KEEP_MAX]; /* from the kept set, unused so far */
} pool;

/* The kept set: free blocks between calls, process-wide. */
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int n;
    void *block[VQ_SCRATCH_KEEP_MAX];
    size_t cap[VQ_SCRATCH_KEEP_MAX];
} kept;

/* Removes free block i (the last one takes its place). */
static void take(int i)
{
    pool.n--;
    pool.block[i] = pool.block[pool.n];
    pool.cap[i] = pool.cap[pool.n];
    pool.old[i] = pool.old[pool.n];
}

static void put(void *base, size_t cap, int old)
{
    pool.block[pool.n] = base;
    pool.cap[pool.n] = cap;
    pool.old[pool.n] = (unsigned char)old;
    pool.n++;
}

static void begin(int keep)
{
    if (pool.depth++ > 0) return;
    pool.kept = keep;
    pool.n = 0;
    pool.out = pool.peak = 0;
    if (!keep) return;
    pthread_mutex_lock(&kept_lock);
    for (int i = 0; i < kept.n; i++) put(kept.block[i], kept.cap[i], 1);
    kept.n = 0;
    pthread_mutex_unlock(&kept_lock);
}

void vq_scratch_begin(void) { begin(0); }
void vq_scratch_begin_kept(void) { begin(1); }

void vq_scratch_end(void)
{
    if (pool.depth <= 0 || --pool.depth > 0) return;
    /* the free blocks this call used become the kept set, unless another
     * call handed its own back in the meantime */
    int give = 0;
    if (pool.kept) {
        pthread_mutex_lock(&kept_lock);
        if (kept.n == 0) {
            for (int i = 0; i < pool.n; i++)
                if (!pool.old[i]) {
                    kept.block[kept.n] = pool.block[i];
                    kept.cap[kept.n] = pool.cap[i];
                    kept.n++;
                }
            give = 1;
        }
        pthread_mutex_unlock(&kept_lock);
    }
    for (int i = 0; i < pool.n; i++)
        if (!give || pool.old[i]) free(pool.block[i]);
    pool.n = 0;
    pool.kept = 0;
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
        take(best);
    } else {
        /* none fits: the free blocks too small for it go back first, the
         * smallest first, while the call would hold more than an eighth
         * over the most it has had out. So a call whose buffers only grow
         * (a stage's layers) holds little more than it uses, and one that
         * alternates a passing buffer with growing ones (the sampler's
         * forward and its placement caches) keeps the passing one */
        size_t held = pool.out + bytes;
        for (int i = 0; i < pool.n; i++) held += pool.cap[i];
        while (held > pool.peak + pool.peak / 8) {
            int small = -1;
            for (int i = 0; i < pool.n; i++)
                if (pool.cap[i] < bytes && (small < 0 || pool.cap[i] < pool.cap[small])) small = i;
            if (small < 0) break;
            held -= pool.cap[small];
            free(pool.block[small]);
            take(small);
        }
        if (!(base = vq_alloc_large(HEADER + bytes))) {
            /* out of memory (a process limit): without the free blocks */
            while (pool.n > 0) {
                free(pool.block[0]);
                take(0);
            }
            if (!(base = vq_alloc_large(HEADER + bytes))) return NULL;
        }
        cap = bytes;
    }
    struct header *h = base;
    h->magic = MAGIC;
    h->cap = cap;
    if (pool.depth > 0 && cap >= SMALL) {
        pool.out += cap;
        if (pool.out > pool.peak) pool.peak = pool.out;
    }
    return (char *)base + HEADER;
}

void vq_scratch_free(void *p)
{
    if (!p) return;
    void *base = (char *)p - HEADER;
    struct header *h = base;
    if (h->magic != MAGIC) abort();      /* not a scratch buffer: a bug */
    /* (a block another thread handed out leaves this thread's count at 0) */
    if (pool.depth > 0 && h->cap >= SMALL) pool.out = pool.out > h->cap ? pool.out - h->cap : 0;
    if (pool.depth == 0 || h->cap < SMALL) {
        h->magic = 0;
        free(base);
        return;
    }
    if (pool.n == VQ_SCRATCH_KEEP_MAX) {
        /* full: keep the larger ones */
        int small = 0;
        for (int i = 1; i < pool.n; i++)
            if (pool.cap[i] < pool.cap[small]) small = i;
        if (pool.cap[small] >= h->cap) {
            h->magic = 0;
            free(base);
            return;
        }
        free(pool.block[small]);
        take(small);
    }
    put(base, h->cap, 0);
}

size_t vq_scratch_kept_bytes(void)
{
    size_t b = 0;
    pthread_mutex_lock(&kept_lock);
    for (int i = 0; i < kept.n; i++) b += kept.cap[i];
    pthread_mutex_unlock(&kept_lock);
    return b;
}

size_t vq_scratch_release(void)
{
    size_t b = 0;
    pthread_mutex_lock(&kept_lock);
    for (int i = 0; i < kept.n; i++) {
        b += kept.cap[i];
        free(kept.block[i]);
    }
    kept.n = 0;
    pthread_mutex_unlock(&kept_lock);
    return b;
}
