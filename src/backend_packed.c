/* The registry of weights repacked to bf16 at load time (see backend.h). */
#include <pthread.h>
#include <stdlib.h>

#include "backend.h"
#include "vqgan.h"

struct packed { const float *key; struct vq_bf16_weight *bf16; };

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static struct packed *table;      /* sorted by key */
static size_t count, cap;

static size_t lower_bound(const float *key)
{
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((uintptr_t)table[mid].key < (uintptr_t)key) lo = mid + 1; else hi = mid;
    }
    return lo;
}

int vq_packed_register(const float *w, int N, int K)
{
    struct vq_bf16_weight *b = vq_dnnl_pack_bf16(w, N, K);
    if (!b) return VQGAN_ERR_NOMEM;
    pthread_rwlock_wrlock(&lock);
    if (count == cap) {
        size_t nc = cap ? 2 * cap : 256;
        struct packed *t = realloc(table, nc * sizeof(*t));
        if (!t) {
            pthread_rwlock_unlock(&lock);
            vq_dnnl_pack_free(b);
            return VQGAN_ERR_NOMEM;
        }
        table = t;
        cap = nc;
    }
    size_t i = lower_bound(w);
    for (size_t j = count; j > i; j--) table[j] = table[j - 1];
    table[i].key = w;
    table[i].bf16 = b;
    count++;
    pthread_rwlock_unlock(&lock);
    return 0;
}

void vq_packed_unregister(const float *w)
{
    pthread_rwlock_wrlock(&lock);
    size_t i = lower_bound(w);
    if (i < count && table[i].key == w) {
        vq_dnnl_pack_free(table[i].bf16);
        for (size_t j = i; j + 1 < count; j++) table[j] = table[j + 1];
        count--;
    }
    if (!count) {
        free(table);
        table = NULL;
        cap = 0;
    }
    pthread_rwlock_unlock(&lock);
}

const struct vq_bf16_weight *vq_packed_bf16(const float *w)
{
    const struct vq_bf16_weight *r = NULL;
    pthread_rwlock_rdlock(&lock);
    size_t i = lower_bound(w);
    if (i < count && table[i].key == w) r = table[i].bf16;
    pthread_rwlock_unlock(&lock);
    return r;
}
