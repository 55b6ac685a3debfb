/* Sharing a parallel loop's items between threads by their measured speed,
 * and handing them out as they are claimed.
 *
 * A loop shared evenly between threads ends when its slowest thread ends.
 * On a shared machine the threads need not run at one speed: on a 2-core
 * Zen 5 VM the int8 products' second thread spent 2-14 % longer than the
 * first on the same share of a 1024x672 frame's column blocks (varying from
 * run to run), and the first waited for it. A vq_balance remembers each
 * thread number's speed from the loops it timed and gives each thread a
 * contiguous range of the items in proportion to it (a contiguous range
 * keeps each thread's memory streams sequential, which a dynamic schedule
 * does not).
 *
 * Speeds also move within a loop; vq_claims lets a thread that is done
 * take items from the end of another's range.
 *
 * Only the split changes, never what an item computes: callers whose items
 * are independent get the same bits whatever the shares. */
#ifndef VQ_BALANCE_H
#define VQ_BALANCE_H

#define VQ_BALANCE_MAX 64   /* threads whose speed is remembered; more share evenly */

/* One loop's memory of its threads' speeds: zero-initialised (static
 * storage) means even shares. Safe to read and update from concurrent
 * calls (each share is one atomic word; the learning is a heuristic). */
struct vq_balance {
    unsigned int share[VQ_BALANCE_MAX];   /* thread i's relative speed x 2^16; 0 = 1 */
};

/* A copy of the shares of n_threads threads, each > 0, taken once per loop
 * so that all its threads compute their ranges from the same shares (even
 * shares when n_threads > VQ_BALANCE_MAX; w holds n_threads entries). */
void vq_balance_get(const struct vq_balance *b, int n_threads, float *w);

/* Thread id's range [*lo, *hi) of n items under shares w[n_threads]: the
 * ranges are contiguous, in thread order, and cover 0 .. n exactly once. */
void vq_balance_range(const float *w, int n_threads, int n, int id, int *lo, int *hi);

/* After the loop: thread i did done[i] items in sec[i] seconds. Moves each
 * share toward the thread's measured rate relative to the others' by a
 * step in proportion to the seconds timed (at most an eighth; speeds are
 * averaged over about 0.2 s of loops), each rate clamped to 0.5 .. 2 times
 * their mean, so that one preempted call moves little. */
void vq_balance_learn(struct vq_balance *b, const float *w, int n_threads, const int *done, const double *sec);

/* A loop's items handed out as they are claimed: each thread works through
 * its own range (vq_balance_range under the shares) from the front, then
 * takes items from the back of the range with the most left, so that the
 * threads end within about one item of each other however their speeds
 * moved during the loop. A claim is one atomic compare-and-swap, on a cache
 * line of the range's own, and takes an eighth of what is left of the range
 * (at least one item): a few dozen claims per range, single items at its
 * end. Set up by one thread before the parallel region; shared by its
 * threads. */
struct vq_claims {
    struct {
        _Alignas(64) unsigned long long front_back;   /* front << 32 | back */
    } range[VQ_BALANCE_MAX];
    int n_threads;
};
void vq_claims_init(struct vq_claims *c, const float *w, int n_threads, int n);
/* The next items for thread id (0 <= id < n_threads <= VQ_BALANCE_MAX):
 * returns the first, *count of them in a row; -1 when every item is
 * claimed. */
int vq_claims_next(struct vq_claims *c, int id, int *count);

/* Seconds from a monotonic clock, for timing a thread's range. */
double vq_balance_clock(void);

/* A product's tiles shared this way: n_blk column blocks, each cut into
 * tiles of `rows` of its T rows; item i is block i / n_tiles, tile
 * i % n_tiles (a thread's range runs through whole blocks in order, so
 * that it streams its own blocks' weights). On n_threads threads when par
 * is nonzero, each thread claiming items by b's learnt speeds, which the
 * loop's timings then update; else (or when the team is smaller than
 * asked) even static ranges. fn(ctx, block, i0, m) computes rows
 * i0 .. i0 + m of one block: a run of a block's tiles in one call. */
typedef void (*vq_tiles_fn)(void *ctx, int block, int i0, int m);
void vq_balance_tiles(struct vq_balance *b, int n_threads, int par, int n_blk, int T, int rows, vq_tiles_fn fn,
                      void *ctx);

/* Thread t of nt's contiguous share [*i0, *i1) of n items, in order (a
 * static split, for loops whose threads stream their own runs). */
static inline void vq_static_share(int n, int t, int nt, int *i0, int *i1)
{
    *i0 = (int)((int64_t)n * t / nt);
    *i1 = (int)((int64_t)n * (t + 1) / nt);
}

#endif
