/* Sharing a parallel loop's items between threads by their measured speed.
 *
 * A loop shared evenly between threads ends when its slowest thread ends.
 * On a shared machine the threads need not run at one speed: on a 2-core
 * Zen 5 VM the int8 products' second thread spent 2-14 % longer than the
 * first on the same share of a 1024x672 frame's column blocks (varying from
 * run to run), and the first waited for it. A vq_balance remembers each thread number's speed from the
 * loops it timed and gives each thread a contiguous range of the items in
 * proportion to it (a contiguous range keeps each thread's memory streams
 * sequential, which a dynamic schedule does not).
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

/* After the loop: thread i did its range (under w, of n items) in sec[i]
 * seconds. Moves each share toward the thread's measured rate relative to
 * the others' by a step in proportion to the seconds timed (at most an
 * eighth; speeds are averaged over about 0.2 s of loops), each rate clamped
 * to 0.5 .. 2 times their mean, so that one preempted call moves little. */
void vq_balance_learn(struct vq_balance *b, const float *w, int n_threads, int n, const double *sec);

/* Seconds from a monotonic clock, for timing a thread's range. */
double vq_balance_clock(void);

#endif
