/* Sharing a parallel loop's items between threads by their measured speed
 * (balance.h). */
#include <omp.h>
#include <stdint.h>
#include <time.h>

#include "balance.h"

#define ONE 65536.0f
#define TAU 0.2          /* seconds of loops over which speeds are averaged */

void vq_balance_get(const struct vq_balance *b, int n_threads, float *w)
{
    for (int i = 0; i < n_threads; i++) {
        const unsigned int s = i < VQ_BALANCE_MAX ? __atomic_load_n(&b->share[i], __ATOMIC_RELAXED) : 0;
        w[i] = n_threads > VQ_BALANCE_MAX || !s ? 1.0f : (float)s / ONE;
    }
}

/* the first item of thread id: n times the shares before it over all */
static int boundary(const float *w, int n_threads, int n, int id)
{
    if (id <= 0) return 0;
    if (id >= n_threads) return n;
    double before = 0, all = 0;
    for (int i = 0; i < n_threads; i++) {
        all += w[i];
        if (i < id) before += w[i];
    }
    const int at = (int)(n * before / all + 0.5);
    return at < 0 ? 0 : at > n ? n : at;
}

void vq_balance_range(const float *w, int n_threads, int n, int id, int *lo, int *hi)
{
    /* each boundary computed the same way by both of its neighbours: the
     * ranges neither overlap nor leave a gap; doubles rounded once keep
     * them in order */
    *lo = boundary(w, n_threads, n, id);
    *hi = boundary(w, n_threads, n, id + 1);
    if (*hi < *lo) *hi = *lo;
}

void vq_balance_learn(struct vq_balance *b, const float *w, int n_threads, const int *done, const double *sec)
{
    if (n_threads < 2 || n_threads > VQ_BALANCE_MAX) return;
    double rate[VQ_BALANCE_MAX], sum = 0, fastest = 0;
    int timed = 0;
    for (int i = 0; i < n_threads; i++) {
        rate[i] = done[i] > 0 && sec[i] > 0 ? done[i] / sec[i] : 0;
        if (rate[i] > 0) {
            sum += rate[i];
            if (!timed || sec[i] < fastest) fastest = sec[i];
            timed++;
        }
    }
    if (timed < 2) return;
    /* a step in proportion to the time measured (the fastest thread's: a
     * preempted one's does not count): many short loops, whose timings are
     * noisy, move the shares as much as one long loop */
    const double step = fastest / TAU > 1.0 / 8 ? 1.0 / 8 : fastest / TAU;
    const double mean = sum / timed;
    double next[VQ_BALANCE_MAX], wsum = 0, ws = 0, all = 0;
    for (int i = 0; i < n_threads; i++)
        if (rate[i] > 0) {
            const double r = rate[i] / mean;
            rate[i] = r < 0.5 ? 0.5 : r > 2.0 ? 2.0 : r;
            ws += w[i];
            wsum += rate[i];
        }
    /* the timed threads move that step of the way to shares in proportion
     * to their rates, keeping their total (ws); an untimed thread (no items
     * this time) stays; then all are scaled to a mean of 1, so that
     * rounding never drifts them */
    for (int i = 0; i < n_threads; i++) {
        next[i] = rate[i] > 0 ? w[i] + (rate[i] * ws / wsum - w[i]) * step : w[i];
        if (next[i] < 1.0 / 64) next[i] = 1.0 / 64;
        if (next[i] > 64) next[i] = 64;
        all += next[i];
    }
    for (int i = 0; i < n_threads; i++)
        __atomic_store_n(&b->share[i], (unsigned int)(next[i] * n_threads / all * ONE + 0.5), __ATOMIC_RELAXED);
}

#define FRONT(v) ((unsigned int)((v) >> 32))
#define BACK(v) ((unsigned int)(v))

void vq_claims_init(struct vq_claims *c, const float *w, int n_threads, int n)
{
    c->n_threads = n_threads;
    for (int i = 0; i < n_threads; i++) {
        int lo, hi;
        vq_balance_range(w, n_threads, n, i, &lo, &hi);
        c->range[i].front_back = (unsigned long long)lo << 32 | (unsigned int)hi;
    }
}

/* an eighth of what is left, at least one: a few claims per range (each
 * compare-and-swap waits for the thread's stores to drain), single items
 * near the end */
static unsigned int portion(unsigned long long v)
{
    const unsigned int left = BACK(v) - FRONT(v);
    return left >= 16 ? left / 8 : 1;
}

int vq_claims_next(struct vq_claims *c, int id, int *count)
{
    /* the front of our own range */
    unsigned long long *own = &c->range[id].front_back, v = __atomic_load_n(own, __ATOMIC_RELAXED);
    while (FRONT(v) < BACK(v)) {
        const unsigned int take = portion(v);
        if (__atomic_compare_exchange_n(own, &v, v + ((unsigned long long)take << 32), 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED)) {
            *count = (int)take;
            return (int)FRONT(v);
        }
    }
    /* then the back of the range with the most left, until none has any */
    for (;;) {
        int victim = -1;
        unsigned int most = 0;
        for (int i = 0; i < c->n_threads; i++) {
            const unsigned long long u = __atomic_load_n(&c->range[i].front_back, __ATOMIC_RELAXED);
            if (FRONT(u) < BACK(u) && BACK(u) - FRONT(u) > most) most = BACK(u) - FRONT(u), victim = i;
        }
        if (victim < 0) return -1;
        unsigned long long *r = &c->range[victim].front_back, u = __atomic_load_n(r, __ATOMIC_RELAXED);
        while (FRONT(u) < BACK(u)) {
            const unsigned int take = portion(u);
            if (__atomic_compare_exchange_n(r, &u, u - take, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
                *count = (int)take;
                return (int)(BACK(u) - take);
            }
        }
    }
}

double vq_balance_clock(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Items it .. it + count of the tiles' grid, a block's tiles in a row in
 * one call. */
static void tiles(int n_tiles, int T, int rows, int it, int count, vq_tiles_fn fn, void *ctx)
{
    for (const int end = it + count; it < end;) {
        const int j = it / n_tiles, r0 = it % n_tiles, r1 = end - it < n_tiles - r0 ? r0 + end - it : n_tiles;
        const int i0 = r0 * rows;
        fn(ctx, j, i0, (r1 * rows < T ? r1 * rows : T) - i0);
        it += r1 - r0;
    }
}

void vq_balance_tiles(struct vq_balance *b, int n_threads, int par, int n_blk, int T, int rows, vq_tiles_fn fn,
                      void *ctx)
{
    const int n_tiles = (T + rows - 1) / rows, n_items = n_blk * n_tiles, nt = n_threads > 0 ? n_threads : 1;
    par = par && n_items > 1 && nt > 1;
    const int bal = par && nt <= VQ_BALANCE_MAX;
    float share[VQ_BALANCE_MAX];
    double sec[VQ_BALANCE_MAX];
    int done[VQ_BALANCE_MAX], team = 1;
    struct vq_claims claims;
    if (bal) {
        vq_balance_get(b, nt, share);
        vq_claims_init(&claims, share, nt, n_items);
    }
#pragma omp parallel if (par) num_threads(nt)
    {
        const int nth = omp_get_num_threads(), id = omp_get_thread_num(), claim = bal && nth == nt;
        const double t0 = claim ? vq_balance_clock() : 0;
        int k = 0;
        if (claim)
            for (int it, count; (it = vq_claims_next(&claims, id, &count)) >= 0; k += count)
                tiles(n_tiles, T, rows, it, count, fn, ctx);
        else {   /* one thread, or a smaller team than asked: even static ranges */
            const int lo = (int)((int64_t)n_items * id / nth), hi = (int)((int64_t)n_items * (id + 1) / nth);
            tiles(n_tiles, T, rows, lo, hi - lo, fn, ctx);
        }
        if (claim) sec[id] = vq_balance_clock() - t0, done[id] = k;
        if (id == 0) team = nth;
    }
    if (bal && team == nt) vq_balance_learn(b, share, nt, done, sec);
}
