/* Linear layers of a few rows, y[T×N] = x[T×K] · Wᵀ + b with W[N][K] in
 * torch's layout: the sampler's chunks (one position, or w = 16 of them).
 * Such a product is bound by streaming W from memory once, but the general
 * providers either pack W first (oneDNN's sgemm, from 16 rows on) or read it
 * once per few rows; here each tile of 4 weight rows is read from memory once
 * and reused from cache for every row of x.
 *
 * Each output element is one dot product, accumulated in a fixed order
 * (16-wide partial sums over K, then a fixed reduction), whatever the tile,
 * the panel or the thread that computes it: results do not depend on the
 * thread count, nor on which other rows share the call. */
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "balance.h"
#include "gemm.h"
#include "linear_amx.h"
#include "linear_small.h"
#include "vmath.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define VQ_SMALL_X86 1
#endif

/* Columns per task: panels of the output, a fixed size (load balance only). */
#define SMALL_PANEL 64

#ifdef VQ_SMALL_X86
/* M rows of x (a constant 1..4: the accumulators stay in registers) against 4
 * rows of W (nw of them real: the others repeat row 0 and are not stored);
 * pf, when not NULL, is prefetched alongside (the next 4 rows of W). */
#define TILE_BODY(VEC, WIDTH, ZERO, LOAD, FMA)                                               \
    VEC acc[M][4];                                                                         \
    _Pragma("GCC unroll 4") for (int i = 0; i < M; i++)                                    \
        _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) acc[i][j] = ZERO();            \
    const float *w0 = W, *w1 = W + (size_t)(nw > 1) * K;                                   \
    const float *w2 = W + (size_t)(nw > 2 ? 2 : 0) * K, *w3 = W + (size_t)(nw > 3 ? 3 : 0) * K; \
    int k = 0;                                                                             \
    if (pf) {                                                                              \
        for (; k + WIDTH <= K; k += WIDTH) {                                               \
            _mm_prefetch((const char *)(pf + k), _MM_HINT_T1);                             \
            _mm_prefetch((const char *)(pf + K + k), _MM_HINT_T1);                         \
            _mm_prefetch((const char *)(pf + 2 * (size_t)K + k), _MM_HINT_T1);             \
            _mm_prefetch((const char *)(pf + 3 * (size_t)K + k), _MM_HINT_T1);             \
            STEP(VEC, LOAD, FMA)                                                           \
        }                                                                                  \
    } else {                                                                               \
        for (; k + WIDTH <= K; k += WIDTH) {                                               \
            STEP(VEC, LOAD, FMA)                                                           \
        }                                                                                  \
    }

/* One step of WIDTH along K: 4 weight vectors, M rows of x, 4 M FMAs. */
#define STEP(VEC, LOAD, FMA)                                                                 \
    {                                                                                      \
        const VEC b0 = LOAD(w0 + k), b1 = LOAD(w1 + k), b2 = LOAD(w2 + k), b3 = LOAD(w3 + k); \
        _Pragma("GCC unroll 4") for (int i = 0; i < M; i++) {                              \
            const VEC a = LOAD(x + (size_t)i * ldx + k);                                   \
            acc[i][0] = FMA(a, b0, acc[i][0]);                                             \
            acc[i][1] = FMA(a, b1, acc[i][1]);                                             \
            acc[i][2] = FMA(a, b2, acc[i][2]);                                             \
            acc[i][3] = FMA(a, b3, acc[i][3]);                                             \
        }                                                                                  \
    }

/* The K % WIDTH last products, in order, after the vector sum. */
static inline float tail(const float *x, const float *w, int k, int K, float s)
{
    for (; k < K; k++) s += x[k] * w[k];
    return s;
}

/* The tile as a function for one instruction set: TILE_BODY, then each dot
 * product's vector reduced by HSUM, the tail added, and the bias. */
#define TILE_FN(NAME, TARGET, VEC, WIDTH, ZERO, LOAD, FMA, HSUM)                              \
    __attribute__((target(TARGET), always_inline))                                          \
    static inline void NAME(const float *x, int ldx, int K, const int M, const float *W,    \
                            int nw, const float *pf, const float *b, float *y, int ldy)     \
    {                                                                                       \
        TILE_BODY(VEC, WIDTH, ZERO, LOAD, FMA)                                              \
        _Pragma("GCC unroll 4") for (int i = 0; i < M; i++)                                 \
            _Pragma("GCC unroll 4") for (int j = 0; j < nw; j++)                            \
                y[(size_t)i * ldy + j] = tail(x + (size_t)i * ldx, W + (size_t)j * K, k, K, \
                                              HSUM(acc[i][j])) + (b ? b[j] : 0.0f);         \
    }

__attribute__((target("avx2,fma"), always_inline))
static inline float hsum256(__m256 v)
{
    float l[8];
    memcpy(l, &v, sizeof(l));
    return ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
}

TILE_FN(tile512, "avx512f", __m512, 16, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_fmadd_ps, _mm512_reduce_add_ps)
TILE_FN(tile256, "avx2,fma", __m256, 8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_fmadd_ps, hsum256)

/* One panel of columns [n0, n1) for all T rows: 4 weight rows at a time, read
 * from memory once (the next 4 prefetched meanwhile), then from cache for
 * each group of up to 4 rows of x. */
#define PANEL(NAME, TARGET, TILE)                                                          \
    __attribute__((target(TARGET)))                                                        \
    static void NAME(const float *x, int ldx, int T, int K, const float *W, const float *b, \
                     int N, int n0, int n1, float *y)                                      \
    {                                                                                      \
        for (int n = n0; n < n1; n += 4) {                                                 \
            const int nw = n1 - n < 4 ? n1 - n : 4;                                        \
            const float *Wn = W + (size_t)n * K, *bn = b ? b + n : NULL;                   \
            const float *pf = n + 8 <= N ? Wn + 4 * (size_t)K : NULL;                      \
            int i = 0;                                                                     \
            for (; i + 4 <= T; i += 4)                                                     \
                TILE(x + (size_t)i * ldx, ldx, K, 4, Wn, nw, i ? NULL : pf, bn,            \
                     y + (size_t)i * N + n, N);                                            \
            const float *xi = x + (size_t)i * ldx, *pfi = i ? NULL : pf;                   \
            float *yi = y + (size_t)i * N + n;                                             \
            switch (T - i) {                                                               \
            case 3: TILE(xi, ldx, K, 3, Wn, nw, pfi, bn, yi, N); break;                    \
            case 2: TILE(xi, ldx, K, 2, Wn, nw, pfi, bn, yi, N); break;                    \
            case 1: TILE(xi, ldx, K, 1, Wn, nw, pfi, bn, yi, N); break;                    \
            default: break;                                                                \
            }                                                                              \
        }                                                                                  \
    }
PANEL(panel512, "avx512f", tile512)
PANEL(panel256, "avx2,fma", tile256)

typedef void (*panel_fn)(const float *, int, int, int, const float *, const float *, int, int, int, float *);

#endif

static int forced_level = -1;
void vq_linear_small_force(int level) { __atomic_store_n(&forced_level, level, __ATOMIC_RELAXED); }

#ifdef VQ_SMALL_X86
static int small_level(void)
{
    const int f = __atomic_load_n(&forced_level, __ATOMIC_RELAXED), d = vq_simd_level();
    return f >= 0 && f < d ? f : d;
}
#endif

int vq_linear_small_ready(int bf16)
{
#ifdef VQ_SMALL_X86
    return small_level() >= (bf16 ? 3 : 1);
#else
    (void)bf16;
    return 0;
#endif
}

#ifdef VQ_SMALL_X86
static panel_fn pick_panel(void)
{
    const int v = small_level();
    return v >= 2 ? panel512 : v == 1 ? panel256 : NULL;
}
#endif

int vq_linear_small(int n_threads, const float *x, int T, int K, const float *W, const float *b, int N, float *y)
{
    VQ_OMP_ONLY(n_threads);
#ifdef VQ_SMALL_X86
    const panel_fn panel = pick_panel();
    if (!panel || T < 1 || K < 1 || N < 1)
        return -1;
    /* rows of x 4 KiB apart (K = 1024) would fall in the same L1 sets as
     * each other and as the weight rows: copied with one more cache line a row */
    const int ldx = ((K + 15) & ~15) + 16;
    float *xp = malloc(sizeof(float) * (size_t)T * ldx);
    if (!xp)
        return -1;
    for (int i = 0; i < T; i++)
        memcpy(xp + (size_t)i * ldx, x + (size_t)i * K, sizeof(float) * K);
    vq_flops_add(2ull * T * N * K);
    const int n_panel = (N + SMALL_PANEL - 1) / SMALL_PANEL;
#pragma omp parallel for schedule(static) if (n_panel > 1 && (int64_t)T * N * K >= (1 << 18)) \
    num_threads(n_threads > 0 ? n_threads : 1)
    for (int p = 0; p < n_panel; p++)
        panel(xp, ldx, T, K, W, b, N, p * SMALL_PANEL, (p + 1) * SMALL_PANEL < N ? (p + 1) * SMALL_PANEL : N, y);
    free(xp);
    return 0;
#else
    (void)n_threads; (void)x; (void)T; (void)K; (void)W; (void)b; (void)N; (void)y;
    return -1;
#endif
}

/* ---- bf16 ---------------------------------------------------------------------- */

#ifdef VQ_SMALL_X86
/* Pairs of k a pass covers: a block's 64 columns x 256 pairs of k are 64 KiB
 * of weights, which stay in L2 (1 MiB a core on Zen 4 and 5) while every
 * group of rows reads them, next to the part prefetched for the pass after. */
#define SMALL_BF16_PASS 256

/* M rows (a constant 1..6) against pairs [p0, p1) of one block of 64 columns
 * stored as k pairs, [K/2][64][2] bf16: for each pair, 4 vectors of 16
 * columns are multiplied by the row's pair broadcast (vdpbf16ps) into 4 M
 * accumulators, which start from zero (p0 == 0) or from y (the pass before
 * stored them there; a store and a load are exact, so the sum runs over k in
 * the same order whatever the passes); the last pass (p1 == K/2) adds the
 * bias. Meanwhile every `gap` pairs one pair (4 cache lines) of pf is
 * prefetched, n_pf pairs in all: the weights the next pass reads. */
__attribute__((target("avx512f,avx512bf16"), always_inline))
static inline void block_bf16(const uint16_t *xb, int K, const int M, const uint16_t *blk, int p0, int p1,
                              const uint16_t *pf, int n_pf, int gap, const float *b, float *y, int ldy)
{
    __m512 acc[6][4];
#pragma GCC unroll 6
    for (int i = 0; i < M; i++)
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++)
            acc[i][q] = p0 ? _mm512_loadu_ps(y + (size_t)i * ldy + 16 * q) : _mm512_setzero_ps();
    for (int g0 = p0; g0 < p1; g0 += gap) {
        if (n_pf-- > 0) {
            _mm_prefetch((const char *)pf, _MM_HINT_T1);
            _mm_prefetch((const char *)(pf + 32), _MM_HINT_T1);
            _mm_prefetch((const char *)(pf + 64), _MM_HINT_T1);
            _mm_prefetch((const char *)(pf + 96), _MM_HINT_T1);
            pf += 128;
        }
        const int g1 = g0 + gap < p1 ? g0 + gap : p1;
        for (int p = g0; p < g1; p++) {
            const uint16_t *w = blk + (size_t)p * 128;
            const __m512i w0 = _mm512_loadu_si512(w), w1 = _mm512_loadu_si512(w + 32);
            const __m512i w2 = _mm512_loadu_si512(w + 64), w3 = _mm512_loadu_si512(w + 96);
#pragma GCC unroll 6
            for (int i = 0; i < M; i++) {
                uint32_t pair;
                memcpy(&pair, xb + (size_t)i * K + 2 * p, sizeof(pair));
                const __m512bh a = (__m512bh)_mm512_set1_epi32((int)pair);
                acc[i][0] = _mm512_dpbf16_ps(acc[i][0], a, (__m512bh)w0);
                acc[i][1] = _mm512_dpbf16_ps(acc[i][1], a, (__m512bh)w1);
                acc[i][2] = _mm512_dpbf16_ps(acc[i][2], a, (__m512bh)w2);
                acc[i][3] = _mm512_dpbf16_ps(acc[i][3], a, (__m512bh)w3);
            }
        }
    }
    const int last = p1 == K / 2;
#pragma GCC unroll 6
    for (int i = 0; i < M; i++)
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
            __m512 v = acc[i][q];
            if (b && last) v = _mm512_add_ps(v, _mm512_loadu_ps(b + 16 * q));
            _mm512_storeu_ps(y + (size_t)i * ldy + 16 * q, v);
        }
}

/* A block's columns for all T rows, pass by pass over k (SMALL_BF16_PASS
 * pairs): each pass's weights come from memory once, prefetched during the
 * pass before (next: the block after this one, whose first pass the last
 * pass prefetches; NULL for none), and serve every group of 6 rows from L2.
 * The groups of a pass share the prefetch, one pair every `gap` pairs. */
__attribute__((target("avx512f,avx512bf16")))
static void column_block_bf16(const uint16_t *xb, int T, int K, const uint16_t *blk, const uint16_t *next,
                              const float *b, float *y, int ldy)
{
    /* one group of rows reads the weights once: the hardware's prefetch
     * streams them better than ours (measured: 1 and 4 rows 5-20 % slower
     * with it), so it runs as one pass without */
    const int P = K / 2, groups = (T + 5) / 6, pass = groups > 1 ? SMALL_BF16_PASS : P;
    if (groups == 1) next = NULL;
    for (int p0 = 0; p0 < P; p0 += pass) {
        const int p1 = P - p0 < pass ? P : p0 + pass;
        /* the next pass's weights: this block's, or the next block's first */
        const uint16_t *nb = p1 < P ? blk + (size_t)p1 * 128 : next;
        const int np = p1 < P ? (P - p1 < pass ? P - p1 : pass) : (P < pass ? P : pass);
        /* np pairs over groups x (p1 - p0) iterations */
        const int gap = nb ? ((p1 - p0) * groups + np - 1) / np : P;
        int done = 0;   /* pairs of the next pass already prefetched */
        for (int i = 0; i < T; i += 6) {
            const int m = T - i < 6 ? T - i : 6;
            const uint16_t *pf = nb ? nb + (size_t)done * 128 : NULL;
            const int share = nb ? ((p1 - p0) + gap - 1) / gap : 0;
            const int n_pf = share < np - done ? share : np - done;
            done += n_pf;
            const uint16_t *xi = xb + (size_t)i * K;
            float *yi = y + (size_t)i * ldy;
#define BLOCK(M) block_bf16(xi, K, M, blk, p0, p1, pf, n_pf, gap, b, yi, ldy)
            switch (m) {
            case 6: BLOCK(6); break;
            case 5: BLOCK(5); break;
            case 4: BLOCK(4); break;
            case 3: BLOCK(3); break;
            case 2: BLOCK(2); break;
            default: BLOCK(1); break;
            }
#undef BLOCK
        }
    }
}
#endif

int vq_linear_small_bf16(int n_threads, const uint16_t *xb, int T, int K, const uint16_t *blocks, const float *b,
                         int N, float *y)
{
    VQ_OMP_ONLY(n_threads);
#ifdef VQ_SMALL_X86
    if (small_level() < 3 || T < 1 || K < 2 || K % 2 || N % 64)
        return -1;
    /* on AMX tiles where the CPU has them (linear_amx.h) */
    const int f = __atomic_load_n(&forced_level, __ATOMIC_RELAXED);
    if ((f < 0 || f >= 4) && !vq_linear_bf16_amx(n_threads, xb, T, K, blocks, b, N, 0, y))
        return 0;
    const int n_blk = N / 64;
    const size_t blk = (size_t)64 * K;
    const int par = n_blk > 1 && (int64_t)T * N * K >= (1 << 18), nt = par ? (n_threads > 0 ? n_threads : 1) : 1;
    /* each thread a run of blocks (schedule static), so that its prefetch of
     * the block after the current one is its own next */
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        const int t = omp_get_thread_num(), n = omp_get_num_threads();
        int j0, j1;
        vq_static_share(n_blk, t, n, &j0, &j1);
        for (int j = j0; j < j1; j++)
            column_block_bf16(xb, T, K, blocks + j * blk, j + 1 < j1 ? blocks + (j + 1) * blk : NULL,
                              b ? b + 64 * j : NULL, y + 64 * j, N);
    }
    return 0;
#else
    (void)n_threads; (void)xb; (void)T; (void)K; (void)blocks; (void)b; (void)N; (void)y;
    return -1;
#endif
}
