/* bf16 products of many rows (linear_bf16.h): our own vdpbf16ps kernel over
 * the weights' blocks of 64 columns, [K/2][64][2] bf16 (the few-rows
 * kernel's layout, oneDNN's 16a64b2a blocking), with its epilogue on the
 * registers, its tiles shared between the threads by their measured speed.
 *
 * A tile is 6 rows x 64 columns, 24 accumulators: for each pair of k, 4
 * vectors of weights (16 columns x 2 k) and each row's pair broadcast, 24
 * vdpbf16ps. A tile runs over the whole of K, each sum from zero in the
 * order of k, then the bias: the few-rows kernel's arithmetic (its passes
 * store and reload the sums exactly), so a row's product has the same bits
 * whichever kernel, call or thread computes it. A block's weights (128 KiB
 * at K = 1024, 512 KiB at 4096) stay in L2 while a thread's run of its
 * tiles reads them. */
#include <stdint.h>
#include <string.h>

#include "balance.h"
#include "bf16.h"
#include "gemm.h"
#include "linear_amx.h"
#include "linear_bf16.h"
#include "linear_small.h"
#include "vmath_poly.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define VQ_BF16_X86 1
#endif

#define BLK 64    /* columns per block                          */
#define ROWS 6    /* rows per tile (6 x 4 accumulators)         */

static int forced = -1;
void vq_linear_bf16_force(int on) { __atomic_store_n(&forced, on, __ATOMIC_RELAXED); }

/* the tiles' shares of the threads, as measured */
static struct vq_balance tiles_balance;
struct vq_balance *vq_linear_bf16_balance(void) { return &tiles_balance; }

int vq_linear_bf16_ready(void)
{
    return __atomic_load_n(&forced, __ATOMIC_RELAXED) != 0 && vq_linear_small_ready(1);
}

#ifdef VQ_BF16_X86
#define BF16 __attribute__((target("avx512f,avx512bw,avx512bf16,prfchw")))

/* M rows (a constant 1..ROWS: the accumulators stay in registers) of one
 * block: the sums, the bias, then the epilogue (enum vq_epilogue, 0: the
 * fp32 result) on the registers, GELU on the tile's copy in L1. */
BF16 __attribute__((always_inline)) static inline void tile(const uint16_t *xb, int K, const int M,
                                                            const uint16_t *blk, const uint16_t *pf, int n_pf,
                                                            const float *b, int epi, void *y, int ldy)
{
    __m512 acc[ROWS][4];
#pragma GCC unroll 6
    for (int i = 0; i < M; i++)
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) acc[i][q] = _mm512_setzero_ps();
    /* the tile's fp32 output lines requested for writing now, so that the
     * epilogue finds them in L1 when the sums are done: in the frame the
     * residual's rows that VQ_EPI_ADD reads most likely lie in L3 or
     * memory, last touched a whole attention earlier (a 768x512
     * bf16 frame, with and without chosen at random per call, products of
     * 256 rows and more: the projection 714 -> 751 GFLOPS, the MLP's
     * second 755 -> 762, k, v and q 770 -> 777; GELU's bf16 output gained
     * nothing and is left out) */
    if (epi != VQ_EPI_GELU_BF16)
#pragma GCC unroll 6
        for (int i = 0; i < M; i++)
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) __builtin_prefetch((const float *)y + (size_t)i * ldy + 16 * q, 1, 3);
    /* n_pf cache lines from pf, one every `gap` pairs */
    const int P = K / 2, gap = n_pf > 0 ? (P + n_pf - 1) / n_pf : P;
    for (int g0 = 0; g0 < P; g0 += gap) {
        if (n_pf-- > 0) {
            _mm_prefetch((const char *)pf, _MM_HINT_T1);
            pf += 32;
        }
        const int g1 = g0 + gap < P ? g0 + gap : P;
        for (int p = g0; p < g1; p++) {
            const uint16_t *w = blk + (size_t)p * 128;
            const __m512bh w0 = (__m512bh)_mm512_load_si512(w), w1 = (__m512bh)_mm512_load_si512(w + 32);
            const __m512bh w2 = (__m512bh)_mm512_load_si512(w + 64), w3 = (__m512bh)_mm512_load_si512(w + 96);
#pragma GCC unroll 6
            for (int i = 0; i < M; i++) {
                uint32_t pair;
                memcpy(&pair, xb + (size_t)i * K + 2 * p, sizeof(pair));
                const __m512bh a = (__m512bh)_mm512_set1_epi32((int)pair);
                acc[i][0] = _mm512_dpbf16_ps(acc[i][0], a, w0);
                acc[i][1] = _mm512_dpbf16_ps(acc[i][1], a, w1);
                acc[i][2] = _mm512_dpbf16_ps(acc[i][2], a, w2);
                acc[i][3] = _mm512_dpbf16_ps(acc[i][3], a, w3);
            }
        }
    }
    /* GELU's sums leave the registers first, for GELU's temporaries and
     * constants: inlined onto the 24 live accumulators, it spilled them */
    float s[ROWS][BLK] __attribute__((aligned(64)));
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
        const __m512 bv = b ? _mm512_loadu_ps(b + 16 * q) : _mm512_setzero_ps();
#pragma GCC unroll 6
        for (int i = 0; i < M; i++) {
            __m512 v = b ? _mm512_add_ps(acc[i][q], bv) : acc[i][q];
            if (epi == VQ_EPI_GELU_BF16) {
                _mm512_store_ps(&s[i][16 * q], v);
                continue;
            }
            float *o = (float *)y + (size_t)i * ldy + 16 * q;
            if (epi == VQ_EPI_ADD) v = _mm512_add_ps(_mm512_loadu_ps(o), v);   /* vq_add's y + x */
            _mm512_storeu_ps(o, v);
        }
    }
    if (epi != VQ_EPI_GELU_BF16) return;
#pragma GCC unroll 1
    for (int i = 0; i < M; i++)
#pragma GCC unroll 2
        for (int q = 0; q < 4; q++) {   /* vq_vgelu_poly, then vq_bf16_round */
            const __m512 g = vq_gelu_poly_512(_mm512_load_ps(&s[i][16 * q]));
            uint16_t *o = (uint16_t *)y + (size_t)i * ldy + 16 * q;
            _mm256_storeu_si256((__m256i *)o, _mm512_cvtepi32_epi16(vq_bf16_round_512(g)));
        }
}

/* Rows i0 .. i0 + m of T of one block; next, when not NULL, is the block
 * the thread goes on to (the next in its range), whose weights the tiles
 * prefetch meanwhile, each tile its rows' share of them (lines
 * i·L/T .. (i + 6)·L/T of the L for tile rows i .. i + 6): spread over the
 * whole block's tiles, whichever thread runs them, so that no tile waits
 * for memory at the start of a block. */
BF16 static void rows_of_block(const uint16_t *xb, int K, int T, int i0, int m, const uint16_t *blk,
                               const uint16_t *next, const float *b, int epi, void *y, int ldy)
{
    const size_t out = epi == VQ_EPI_GELU_BF16 ? sizeof(uint16_t) : sizeof(float);
    const long L = (long)K * BLK * 2 / 64;   /* the block's cache lines */
    for (int i = i0; i < i0 + m; i += ROWS) {
        const int r = i0 + m - i < ROWS ? i0 + m - i : ROWS;
        const long l0 = next ? L * i / T : 0, l1 = next ? L * (i + r) / T : 0;
        const uint16_t *xi = xb + (size_t)i * K, *pf = next ? next + l0 * 32 : blk;
        void *yi = (char *)y + out * (size_t)(i - i0) * ldy;
        const int n = (int)(l1 - l0);
        switch (r) {
        case 6: tile(xi, K, 6, blk, pf, n, b, epi, yi, ldy); break;
        case 5: tile(xi, K, 5, blk, pf, n, b, epi, yi, ldy); break;
        case 4: tile(xi, K, 4, blk, pf, n, b, epi, yi, ldy); break;
        case 3: tile(xi, K, 3, blk, pf, n, b, epi, yi, ldy); break;
        case 2: tile(xi, K, 2, blk, pf, n, b, epi, yi, ldy); break;
        default: tile(xi, K, 1, blk, pf, n, b, epi, yi, ldy); break;
        }
    }
}

/* One product's operands, for its tiles (vq_balance_tiles). */
struct bf16_call {
    const uint16_t *xb, *blocks;
    int T, K, N, epi;
    const float *b;
    void *y;
};

/* Rows i0 .. i0 + m of column block j. */
static void tile_rows(void *ctx, int j, int i0, int m)
{
    const struct bf16_call *c = ctx;
    const size_t out = c->epi == VQ_EPI_GELU_BF16 ? sizeof(uint16_t) : sizeof(float), blk = (size_t)BLK * c->K;
    const uint16_t *next = (j + 1) * BLK < c->N ? c->blocks + (j + 1) * blk : NULL;
    rows_of_block(c->xb, c->K, c->T, i0, m, c->blocks + j * blk, next, c->b ? c->b + BLK * j : NULL, c->epi,
                  (char *)c->y + out * ((size_t)i0 * c->N + (size_t)BLK * j), c->N);
}
#endif

int vq_linear_bf16_rows(int n_threads, const uint16_t *xb, int T, int K, const uint16_t *blocks, const float *b,
                        int N, int epi, void *y)
{
    /* on AMX tiles where the CPU has them and the shape suits them: the
     * few-rows products take them too (linear_amx.h) */
    if (vq_linear_bf16_ready() && !vq_linear_bf16_amx(n_threads, xb, T, K, blocks, b, N, epi, y))
        return 0;
#ifdef VQ_BF16_X86
    if (!vq_linear_bf16_ready() || T < 1 || K < 2 || K % 2 || N < BLK || N % BLK ||
        (epi && epi != VQ_EPI_GELU_BF16 && epi != VQ_EPI_ADD) || ((uintptr_t)blocks & 63))
        return -1;
    struct bf16_call c = { xb, blocks, T, K, N, epi, b, y };
    vq_balance_tiles(&tiles_balance, n_threads, (int64_t)T * N * K >= (1 << 18), N / BLK, T, ROWS, tile_rows, &c);
    return 0;
#else
    (void)n_threads; (void)xb; (void)T; (void)K; (void)blocks; (void)b; (void)N; (void)epi; (void)y;
    return -1;
#endif
}
