/* Whether the products give a row the same bits whatever else its call
 * holds (ops.h, vq_linear_rows_independent): measured once per shape,
 * precision and backend, on the weights themselves. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "ops.h"

#define PROBE_ROWS 320      /* the full call                                  */
#define PROBE_KEEP 100      /* rows compared when the rows after them change  */
#define PROBE_CACHE 16

struct probe_entry { int N, K, packed; const struct vq_backend *be; int result; };
static struct probe_entry cache[PROBE_CACHE];
static int cache_len;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void fill(float *x, size_t n, uint64_t s)
{
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        x[i] = (float)((int64_t)(s >> 40) - (1 << 23)) / (float)(1 << 23);   /* [-1, 1) */
    }
}

/* Comparisons against one call of PROBE_ROWS rows:
 *  - its first PROBE_KEEP rows, when the rows after them hold other values;
 *  - runs of its rows as calls of their own (offs): from
 *    VQ_ROWS_INDEPENDENT_FROM on, its last VQ_ROWS_INDEPENDENT_FROM rows,
 *    and runs that start and end off every power of two. A product whose
 *    kernels or thread panels cut the rows by the call's row count (an
 *    unrolled kernel's remainder rows, panels of M / threads) gives a row
 *    other bits when it moves to another place in its panel: OpenBLAS 0.3.21's
 *    SSE3 and Haswell kernels (it takes the first on CPUs newer than it knows,
 *    Intel's Emerald Rapids among them) pass the first two splits and fail
 *    the odd ones. */
/* The product probed: a plain function, or vq_linear through an exec. */
struct probed {
    vq_linear_fn fn;
    const struct vq_exec *ex;
    const struct vq_packed *pk;
};
static void run(const struct probed *p, const float *x, int T, int K, const float *W, const float *b, int N, float *y)
{
    if (p->fn) p->fn(x, T, K, W, b, N, y);
    else vq_linear(p->ex, x, T, K, W, p->pk, b, N, y);
}

static int probe(const struct probed *linear, const float *W, const float *b, int N, int K)
{
    const int M = PROBE_ROWS;
    float *x = malloc(sizeof(float) * (size_t)M * K), *x2 = malloc(sizeof(float) * (size_t)M * K);
    float *y = malloc(sizeof(float) * (size_t)M * N), *y2 = malloc(sizeof(float) * (size_t)M * N);
    int same = x && x2 && y && y2;
    if (same) {
        fill(x, (size_t)M * K, 0x9e3779b97f4a7c15ull);
        memcpy(x2, x, sizeof(float) * (size_t)PROBE_KEEP * K);
        fill(x2 + (size_t)PROBE_KEEP * K, (size_t)(M - PROBE_KEEP) * K, 0x2545f4914f6cdd1dull);
        run(linear, x, M, K, W, b, N, y);
        run(linear, x2, M, K, W, b, N, y2);
        same = !memcmp(y, y2, sizeof(float) * (size_t)PROBE_KEEP * N);
        /* {offset, rows}: each run at least VQ_ROWS_INDEPENDENT_FROM rows */
        static const int offs[4][2] = { { VQ_ROWS_INDEPENDENT_FROM, PROBE_ROWS - VQ_ROWS_INDEPENDENT_FROM },
                                        { PROBE_ROWS - VQ_ROWS_INDEPENDENT_FROM, VQ_ROWS_INDEPENDENT_FROM },
                                        { 77, 243 }, { 101, 141 } };
        for (int i = 0; i < 4 && same; i++) {
            const size_t o = (size_t)offs[i][0], n = (size_t)offs[i][1];
            run(linear, x + o * K, (int)n, K, W, b, N, y2);
            same = !memcmp(y + o * N, y2, sizeof(float) * n * N);
        }
    }
    free(x); free(x2); free(y); free(y2);
    return same;
}

int vq_rows_probe(vq_linear_fn linear, const float *W, const float *b, int N, int K)
{
    const struct probed p = { linear, NULL, NULL };
    return probe(&p, W, b, N, K);
}

int vq_linear_rows_independent(const struct vq_exec *ex, const float *W, const struct vq_packed *pk, const float *b,
                               int N, int K)
{
    const struct vq_exec e = vq_exec_of(ex);
    const int packed = pk && e.be->linear_packed;
    int r = -1;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < cache_len && r < 0; i++)
        if (cache[i].N == N && cache[i].K == K && cache[i].packed == packed && cache[i].be == e.be)
            r = cache[i].result;
    if (r < 0) {
        const struct probed p = { NULL, &e, pk };
        r = probe(&p, W, b, N, K);
        struct probe_entry *en = &cache[cache_len < PROBE_CACHE ? cache_len++ : PROBE_CACHE - 1];
        *en = (struct probe_entry){ N, K, packed, e.be, r };
    }
    pthread_mutex_unlock(&lock);
    return r;
}
