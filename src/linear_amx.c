/* The bf16 backend's products on AMX tiles (linear_amx.h), at every row
 * count, on CPUs where vq_amx_bf16_ready.
 *
 * On Intel's Xeons with AMX, vdpbf16ps takes about two cycles (one on a Zen
 * 4 or 5): the AVX-512 few-rows kernel ran the sampler's chunks of 16 rows
 * at 172 GFLOPS on 2 cores. One TDPBF16PS does 16 × 16 × 32 terms. The
 * weights' blocks of 64 columns, [K/2][64][2], are the tiles' B operand as
 * they lie: 16 pairs of k (rows, 256 bytes apart) × 16 columns' pairs.
 *
 * Per block, per pass of up to 16 rows: the rows' 32 k at a time in tile 4
 * (the rows as they lie in x: the tile has only the pass's rows), the 64
 * columns' sums in tiles 0..3, their weights through tile 5; the pass's
 * epilogue runs during the next pass, a row between each step's tile
 * instructions, on the vector units that the tiles leave idle (int8_amx.c
 * does the same). The threads claim runs of a block's passes by their
 * learnt speeds (balance.h). Each sum runs over k in steps of 32 in
 * order, whatever the rows, the pass or the thread: a row's result does not
 * depend on the other rows of the call, nor on their count. */
#include <stdint.h>

#include "amx.h"
#include "backend.h"
#include "balance.h"
#include "bf16.h"
#include "linear_amx.h"
#include "vmath_poly.h"

#ifdef VQ_AMX_BUILD
#include <immintrin.h>

static struct vq_balance tiles_balance;

/* The rows of a finished pass whose epilogue is still to run: their sums
 * c[16][64], where they go. */
struct pending {
    const float *c;
    int m;
    size_t o;
};

/* the epilogue of rows i0 .. i1-1 of a pass */
__attribute__((target("avx512f")))
static void finish(const struct pending *p, int i0, int i1, const float *b, int epi, void *y, int ldy)
{
    for (int i = i0; i < i1; i++)
        for (int q = 0; q < 4; q++) {
            __m512 v = _mm512_load_ps(p->c + 64 * i + 16 * q);
            if (b) v = _mm512_add_ps(v, _mm512_loadu_ps(b + 16 * q));
            const size_t at = p->o + (size_t)i * ldy + 16 * q;
            if (epi == VQ_EPI_GELU_BF16)   /* vq_vgelu_poly, then vq_bf16_round */
                _mm256_storeu_si256((__m256i *)((uint16_t *)y + at),
                                    _mm512_cvtepi32_epi16(vq_bf16_round_512(vq_gelu_poly_512(v))));
            else if (epi == VQ_EPI_ADD)    /* vq_add's y + x */
                _mm512_storeu_ps((float *)y + at, _mm512_add_ps(_mm512_loadu_ps((float *)y + at), v));
            else
                _mm512_storeu_ps((float *)y + at, v);
        }
}

/* the sums of m rows (the configured rows) of one block into c[16][64];
 * meanwhile the epilogue of the pass before, one of its rows a step of k,
 * so that the vector units work while the tiles multiply */
__attribute__((target("amx-tile,amx-bf16,avx512f")))
static void block_pass(const uint16_t *x, int K, const uint16_t *blk, float *c, const struct pending *p,
                       const float *b, int epi, void *y, int ldy)
{
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    int done = 0;
    for (int k = 0; k < K; k += 32) {
        const uint16_t *w = blk + (size_t)(k / 2) * 128;   /* 16 pairs of k, 64 columns' pairs each */
        _tile_loadd(4, x + k, 2 * (size_t)K);
        _tile_loadd(5, w, 256);
        _tile_dpbf16ps(0, 4, 5);
        _tile_loadd(5, w + 32, 256);
        _tile_dpbf16ps(1, 4, 5);
        _tile_loadd(5, w + 64, 256);
        _tile_dpbf16ps(2, 4, 5);
        _tile_loadd(5, w + 96, 256);
        _tile_dpbf16ps(3, 4, 5);
        if (done < p->m) {
            finish(p, done, done + 1, b, epi, y, ldy);
            done++;
        }
    }
    finish(p, done, p->m, b, epi, y, ldy);
    _tile_stored(0, c, 256);
    _tile_stored(1, c + 16, 256);
    _tile_stored(2, c + 32, 256);
    _tile_stored(3, c + 48, 256);
}

/* One product's operands, for its tiles (vq_balance_tiles). */
struct amx_call {
    const uint16_t *xb, *blocks;
    int K, N, epi;
    const float *b;
    void *y;
};

/* Rows i0 .. i0 + m of column block j: passes of up to 16 rows, each one's
 * epilogue during the next, the last one's after it. The tiles are
 * configured for the call and released after it (as int8_amx.c's). */
static void tile_rows(void *ctx, int j, int i0, int m)
{
    const struct amx_call *c = ctx;
    const float *bj = c->b ? c->b + 64 * j : NULL;
    const uint16_t *blk = c->blocks + (size_t)j * 64 * c->K;
    _Alignas(64) float sums[2][16 * 64];
    struct pending p = { sums[1], 0, 0 };
    int conf = 0;
    for (int r0 = i0, h = 0; r0 < i0 + m; r0 += 16, h ^= 1) {
        const int n = i0 + m - r0 < 16 ? i0 + m - r0 : 16;
        if (n != conf) vq_amx_configure_pass(conf = n);
        block_pass(c->xb + (size_t)r0 * c->K, c->K, blk, sums[h], &p, bj, c->epi, c->y, c->N);
        p = (struct pending){ sums[h], n, (size_t)r0 * c->N + 64 * j };
    }
    finish(&p, 0, p.m, bj, c->epi, c->y, c->N);
    vq_amx_release();
}

struct vq_balance *vq_linear_bf16_amx_balance(void) { return &tiles_balance; }

int vq_linear_bf16_amx(int n_threads, const uint16_t *xb, int T, int K, const uint16_t *blocks, const float *b, int N,
                       int epi, void *y)
{
    if (!vq_amx_bf16_ready() || T < 1 || K < 32 || K % 32 || N < 64 || N % 64 ||
        (epi && epi != VQ_EPI_GELU_BF16 && epi != VQ_EPI_ADD))
        return -1;
    /* the threads share the blocks' passes by their learnt speeds and claim
     * them as they go (balance.h), as the other kernels' tiles */
    struct amx_call c = { xb, blocks, K, N, epi, b, y };
    vq_balance_tiles(&tiles_balance, n_threads, (int64_t)T * N * K >= (1 << 18), N / 64, T, 16, tile_rows, &c);
    return 0;
}

#else

struct vq_balance *vq_linear_bf16_amx_balance(void)
{
    static struct vq_balance none;
    return &none;
}

int vq_linear_bf16_amx(int n_threads, const uint16_t *xb, int T, int K, const uint16_t *blocks, const float *b, int N,
                       int epi, void *y)
{
    (void)n_threads; (void)xb; (void)T; (void)K; (void)blocks; (void)b; (void)N; (void)epi; (void)y;
    return -1;
}

#endif
