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
#define BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))

/* M rows (a constant 1..ROWS: the accumulators stay in registers) of one
 * block: the sums, the bias, then the epilogue (enum vq_epilogue, 0: the
 * fp32 result) on the registers. */
BF16 __attribute__((always_inline)) static inline void tile(const uint16_t *xb, int K, const int M,
                                                            const uint16_t *blk, const float *b, int epi, void *y,
                                                            int ldy)
{
    __m512 acc[ROWS][4];
#pragma GCC unroll 6
    for (int i = 0; i < M; i++)
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) acc[i][q] = _mm512_setzero_ps();
    for (int p = 0; p < K / 2; p++) {
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
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
        const __m512 bv = b ? _mm512_loadu_ps(b + 16 * q) : _mm512_setzero_ps();
#pragma GCC unroll 6
        for (int i = 0; i < M; i++) {
            __m512 v = b ? _mm512_add_ps(acc[i][q], bv) : acc[i][q];
            if (epi == VQ_EPI_GELU_BF16) {   /* vq_vgelu_poly, then vq_bf16_round */
                uint16_t *o = (uint16_t *)y + (size_t)i * ldy + 16 * q;
                _mm256_storeu_si256((__m256i *)o, _mm512_cvtepi32_epi16(vq_bf16_round_512(vq_gelu_poly_512(v))));
                continue;
            }
            float *o = (float *)y + (size_t)i * ldy + 16 * q;
            if (epi == VQ_EPI_ADD) v = _mm512_add_ps(_mm512_loadu_ps(o), v);   /* vq_add's y + x */
            _mm512_storeu_ps(o, v);
        }
    }
}

BF16 static void rows_of_block(const uint16_t *xb, int K, int m, const uint16_t *blk, const float *b, int epi,
                               void *y, int ldy)
{
    const size_t out = epi == VQ_EPI_GELU_BF16 ? sizeof(uint16_t) : sizeof(float);
    int i = 0;
    for (; i + ROWS <= m; i += ROWS)
        tile(xb + (size_t)i * K, K, ROWS, blk, b, epi, (char *)y + out * i * ldy, ldy);
    const uint16_t *xi = xb + (size_t)i * K;
    void *yi = (char *)y + out * i * ldy;
    switch (m - i) {
    case 5: tile(xi, K, 5, blk, b, epi, yi, ldy); break;
    case 4: tile(xi, K, 4, blk, b, epi, yi, ldy); break;
    case 3: tile(xi, K, 3, blk, b, epi, yi, ldy); break;
    case 2: tile(xi, K, 2, blk, b, epi, yi, ldy); break;
    case 1: tile(xi, K, 1, blk, b, epi, yi, ldy); break;
    default: break;
    }
}

/* One product's operands, for its tiles (vq_balance_tiles). */
struct bf16_call {
    const uint16_t *xb, *blocks;
    int K, N, epi;
    const float *b;
    void *y;
};

/* Rows i0 .. i0 + m of column block j. */
static void tile_rows(void *ctx, int j, int i0, int m)
{
    const struct bf16_call *c = ctx;
    const size_t out = c->epi == VQ_EPI_GELU_BF16 ? sizeof(uint16_t) : sizeof(float);
    rows_of_block(c->xb + (size_t)i0 * c->K, c->K, m, c->blocks + (size_t)j * BLK * c->K, c->b ? c->b + BLK * j : NULL,
                  c->epi, (char *)c->y + out * ((size_t)i0 * c->N + (size_t)BLK * j), c->N);
}
#endif

int vq_linear_bf16_rows(int n_threads, const uint16_t *xb, int T, int K, const uint16_t *blocks, const float *b,
                        int N, int epi, void *y)
{
#ifdef VQ_BF16_X86
    if (!vq_linear_bf16_ready() || T < 1 || K < 2 || K % 2 || N < BLK || N % BLK ||
        (epi && epi != VQ_EPI_GELU_BF16 && epi != VQ_EPI_ADD) || ((uintptr_t)blocks & 63))
        return -1;
    struct bf16_call c = { xb, blocks, K, N, epi, b, y };
    vq_balance_tiles(&tiles_balance, n_threads, (int64_t)T * N * K >= (1 << 18), N / BLK, T, ROWS, tile_rows, &c);
    return 0;
#else
    (void)n_threads; (void)xb; (void)T; (void)K; (void)blocks; (void)b; (void)N; (void)epi; (void)y;
    return -1;
#endif
}
