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
 * does the same).
 *
 * A pass reads 4 KiB of weights and 1 KiB of rows per step of k, and both
 * come from L2, whose bandwidth is what bounds the kernel (a probe on one
 * Emerald Rapids core: 1.27 TFLOPS so, 1.55 with the rows in L1). So where a
 * pass's rows fit in L1 (16 × K × 2 bytes, K <= 1024: 32 KiB of 48) and the
 * product has rows to spare, each pass runs over a group of GROUP blocks in
 * turn, the weights read by TILELOADDT1 (kept out of L1): the rows come
 * from L2 once per group, the group's blocks (512 KiB at K = 1024) stay in
 * L2 for its passes.
 *
 * Where K is larger (the MLP's second product, K = 4096: 128 KiB of rows
 * a pass), the passes run over K in chunks of GROUP_K instead (chunk_rows):
 * a pass's rows of one chunk stay in L1 over the group's blocks, the
 * group's weights of one chunk in L2 over the passes, and the sums wait in
 * memory between chunks.
 *
 * The threads claim runs of a group's passes by their learnt speeds
 * (balance.h), or whole groups where K is chunked. Each sum runs over k in
 * steps of 32 in order, whatever the rows, the pass, the group, the chunk
 * or the thread (a sum stored between chunks is loaded back exactly): a
 * row's result does not depend on the other rows of the call, nor on
 * their count. */
#include <omp.h>
#include <stdint.h>

#include "amx.h"
#include "backend.h"
#include "balance.h"
#include "bf16.h"
#include "linear_amx.h"
#include "scratch.h"
#include "vmath_poly.h"

#ifdef VQ_AMX_BUILD
#include <immintrin.h>

static struct vq_balance tiles_balance;
static unsigned long chunked_calls;   /* products run over K in chunks, for the tests */

/* The rows of a finished pass whose epilogue is still to run: their sums
 * c[16][64], where they go, their block's bias (or NULL). */
struct pending {
    const float *c;
    int m;
    size_t o;
    const float *b;
};

/* the epilogue of rows i0 .. i1-1 of a pass */
__attribute__((target("avx512f")))
static void finish(const struct pending *p, int i0, int i1, int epi, void *y, int ldy)
{
    const float *b = p->b;
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

/* the sums of m rows (the configured rows) of one block over k0 .. k1 - 1
 * into c[16][64], starting from the sums there when load (a chunk after
 * the first), else from 0; meanwhile the epilogue of the pass before, one
 * of its rows a step of k, so that the vector units work while the tiles
 * multiply; the weights by TILELOADDT1 when stream (load and stream
 * constants where it is inlined) */
__attribute__((target("amx-tile,amx-bf16,avx512f"), always_inline))
static inline void block_pass(const uint16_t *x, int K, int k0, int k1, const uint16_t *blk, float *c,
                              const int load, const struct pending *p, int epi, void *y, int ldy, const int stream)
{
    if (load) {
        _tile_loadd(0, c, 256);
        _tile_loadd(1, c + 16, 256);
        _tile_loadd(2, c + 32, 256);
        _tile_loadd(3, c + 48, 256);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    int done = 0;
    for (int k = k0; k < k1; k += 32) {
        const uint16_t *w = blk + (size_t)(k / 2) * 128;   /* 16 pairs of k, 64 columns' pairs each */
        _tile_loadd(4, x + k, 2 * (size_t)K);
        vq_amx_load_weights(w, stream);
        _tile_dpbf16ps(0, 4, 5);
        vq_amx_load_weights(w + 32, stream);
        _tile_dpbf16ps(1, 4, 5);
        vq_amx_load_weights(w + 64, stream);
        _tile_dpbf16ps(2, 4, 5);
        vq_amx_load_weights(w + 96, stream);
        _tile_dpbf16ps(3, 4, 5);
        if (done < p->m) {
            finish(p, done, done + 1, epi, y, ldy);
            done++;
        }
    }
    finish(p, done, p->m, epi, y, ldy);
    _tile_stored(0, c, 256);
    _tile_stored(1, c + 16, 256);
    _tile_stored(2, c + 32, 256);
    _tile_stored(3, c + 48, 256);
}

/* The group of blocks a pass runs over where its rows stay in L1 (above):
 * measured on an Emerald Rapids at 392 rows, K = 1024, 2 threads, against
 * one block a pass: groups of 2 blocks 1.09-1.11x, 4 blocks 1.19-1.22x,
 * 8 blocks 1.16-1.18x, 4 blocks without TILELOADDT1 1.08-1.09x; at K =
 * 4096 (128 KiB of rows a pass) groups ran at 0.63x. From GROUP_ROWS
 * rows on, so that a product of few rows keeps enough items to share.
 *
 * K = 4096 in chunks of GROUP_K (chunk_rows), groups of 4 blocks, the
 * threads claiming whole groups, against one sweep over K a pass (the old
 * or the new code chosen at random per call, 2 threads): in the 1024x672
 * frame the products of 256 rows and more 1.15x, 48-255 rows 1.03x (all
 * the tiles' bf16 products 1.04x); in the 512x320 frame 1.16x and 1.02x.
 * Claims of runs of rows instead, each run reading its group's weights
 * again (2 MiB, past L2): 0.68-0.78x in the frame; the weights loaded into
 * L1 (no TILELOADDT1), where they evict the rows: 0.71-0.94x (hot).
 * CHUNK_ROWS bounds the sums kept between chunks (a thread's slot:
 * CHUNK_ROWS x 64 x GROUP floats, 1 MiB). */
#define GROUP 4
#define GROUP_K 1024
#define GROUP_ROWS 48
#define CHUNK_ROWS 1024

/* One product's operands, for its tiles (vq_balance_tiles). */
struct amx_call {
    const uint16_t *xb, *blocks;
    int K, N, epi, group;
    const float *b;
    void *y;
    float *part;   /* chunk_rows' sums between chunks, a slot of part_rows x group x 64 a thread; or NULL */
    int part_rows; /* T rounded up to 16, at most CHUNK_ROWS: the rows of a run */
};

/* One pass of n rows from row r0 over blocks j0 .. j1 - 1, each block's
 * sums into the sum buffer that the pass before did not use; the weights
 * streamed past L1 where the call groups its blocks. */
__attribute__((target("amx-tile,amx-bf16,avx512f")))
static void group_pass(const struct amx_call *c, int j0, int j1, int r0, int n, float sums[2][16 * 64], int *h,
                       struct pending *p)
{
    for (int j = j0; j < j1; j++, *h ^= 1) {
        const uint16_t *x = c->xb + (size_t)r0 * c->K, *blk = c->blocks + (size_t)j * 64 * c->K;
        if (c->group > 1) block_pass(x, c->K, 0, c->K, blk, sums[*h], 0, p, c->epi, c->y, c->N, 1);
        else block_pass(x, c->K, 0, c->K, blk, sums[*h], 0, p, c->epi, c->y, c->N, 0);
        *p = (struct pending){ sums[*h], n, (size_t)r0 * c->N + 64 * j, c->b ? c->b + 64 * j : NULL };
    }
}

/* Rows i0 .. i0 + m of group g where K > GROUP_K: runs of up to
 * c->part_rows rows, each over K in chunks of GROUP_K, each chunk's passes
 * over the group's blocks in turn (the rows of a pass and chunk, 32 KiB,
 * stay in L1; the group's weights of a chunk, 512 KiB, in L2). A pass's
 * sums wait in the thread's slot of c->part between chunks; the last
 * chunk's epilogue runs during the next pass, as tile_rows'. */
__attribute__((target("amx-tile,amx-bf16,avx512f")))
static void chunk_rows(const struct amx_call *c, int g, int i0, int m)
{
    const int n_blk = c->N / 64, j0 = g * c->group, j1 = j0 + c->group < n_blk ? j0 + c->group : n_blk;
    float *part = c->part + (size_t)omp_get_thread_num() * c->part_rows * c->group * 64;
    static const struct pending none = { NULL, 0, 0, NULL };
    struct pending p = none;
    int conf = 0;
    for (int s0 = i0; s0 < i0 + m; s0 += c->part_rows) {
        const int s1 = s0 + c->part_rows < i0 + m ? s0 + c->part_rows : i0 + m;
        for (int k0 = 0; k0 < c->K; k0 += GROUP_K) {
            const int k1 = k0 + GROUP_K < c->K ? k0 + GROUP_K : c->K;
            for (int r0 = s0; r0 < s1; r0 += 16) {
                const int n = s1 - r0 < 16 ? s1 - r0 : 16;
                if (n != conf) vq_amx_configure_pass(conf = n);
                const uint16_t *x = c->xb + (size_t)r0 * c->K;
                for (int j = j0; j < j1; j++) {
                    float *slot = part + ((size_t)(r0 - s0) / 16 * c->group + (j - j0)) * 16 * 64;
                    const uint16_t *blk = c->blocks + (size_t)j * 64 * c->K;
                    if (k1 < c->K) {
                        if (k0) block_pass(x, c->K, k0, k1, blk, slot, 1, &none, c->epi, c->y, c->N, 1);
                        else block_pass(x, c->K, k0, k1, blk, slot, 0, &none, c->epi, c->y, c->N, 1);
                        continue;
                    }
                    /* the last chunk (never the first: K > GROUP_K) */
                    block_pass(x, c->K, k0, k1, blk, slot, 1, &p, c->epi, c->y, c->N, 1);
                    p = (struct pending){ slot, n, (size_t)r0 * c->N + 64 * j, c->b ? c->b + 64 * j : NULL };
                }
            }
        }
        /* the run's last epilogue before the next run's chunks reuse its slot */
        finish(&p, 0, p.m, c->epi, c->y, c->N);
        p = none;
    }
    vq_amx_release();
}

/* Rows i0 .. i0 + m of group g of column blocks (chunk_rows' where the
 * call runs over K in chunks): passes of up to 16 rows, each over the
 * group's blocks in turn, each pass's epilogue during the next, the last
 * one's after it. The tiles are configured for the call and released after
 * it (as int8_amx.c's). */
static void tile_rows(void *ctx, int g, int i0, int m)
{
    const struct amx_call *c = ctx;
    if (c->part) {
        chunk_rows(c, g, i0, m);
        return;
    }
    const int n_blk = c->N / 64, j0 = g * c->group, j1 = j0 + c->group < n_blk ? j0 + c->group : n_blk;
    _Alignas(64) float sums[2][16 * 64];
    struct pending p = { sums[1], 0, 0, NULL };
    int conf = 0, h = 0;
    for (int r0 = i0; r0 < i0 + m; r0 += 16) {
        const int n = i0 + m - r0 < 16 ? i0 + m - r0 : 16;
        if (n != conf) vq_amx_configure_pass(conf = n);
        group_pass(c, j0, j1, r0, n, sums, &h, &p);
    }
    finish(&p, 0, p.m, c->epi, c->y, c->N);
    vq_amx_release();
}

struct vq_balance *vq_linear_bf16_amx_balance(void) { return &tiles_balance; }

int vq_linear_bf16_amx_chunked(int n_threads, int T, int K, int N)
{
    return vq_amx_bf16_ready() && K > GROUP_K && T >= GROUP_ROWS && N / 64 >= GROUP * (n_threads > 0 ? n_threads : 1);
}

unsigned long vq_linear_bf16_amx_chunked_calls(void) { return __atomic_load_n(&chunked_calls, __ATOMIC_RELAXED); }

int vq_linear_bf16_amx(int n_threads, const uint16_t *xb, int T, int K, const uint16_t *blocks, const float *b, int N,
                       int epi, void *y)
{
    if (!vq_amx_bf16_ready() || T < 1 || K < 32 || K % 32 || N < 64 || N % 64 ||
        (epi && epi != VQ_EPI_GELU_BF16 && epi != VQ_EPI_ADD))
        return -1;
    /* the threads share the groups' passes by their learnt speeds and
     * claim them as they go (balance.h), as the other kernels' tiles;
     * where K is chunked, whole groups (each thread at least one; else,
     * or without memory for the sums, one block a pass). The sums' slots
     * (up to 1 MiB a thread) come from scratch: kept between calls inside
     * the sampler's vq_scratch_begin/end, a fresh mapping a call outside
     * it. */
    const int nt = n_threads > 0 ? n_threads : 1, rows = T < CHUNK_ROWS ? (T + 15) / 16 * 16 : CHUNK_ROWS;
    float *part = NULL;
    if (vq_linear_bf16_amx_chunked(n_threads, T, K, N) &&
        (part = vq_scratch_alloc(sizeof(float) * (size_t)nt * rows * GROUP * 64)))
        __atomic_add_fetch(&chunked_calls, 1, __ATOMIC_RELAXED);
    const int group = K <= GROUP_K ? (T >= GROUP_ROWS ? GROUP : 1) : part ? GROUP : 1;
    struct amx_call c = { xb, blocks, K, N, epi, group, b, y, part, rows };
    vq_balance_tiles(&tiles_balance, n_threads, (int64_t)T * N * K >= (1 << 18), (N / 64 + group - 1) / group, T,
                     part ? T : 16, tile_rows, &c);
    vq_scratch_free(part);
    return 0;
}

#else

struct vq_balance *vq_linear_bf16_amx_balance(void)
{
    static struct vq_balance none;
    return &none;
}

int vq_linear_bf16_amx_chunked(int n_threads, int T, int K, int N)
{
    (void)n_threads; (void)T; (void)K; (void)N;
    return 0;
}

unsigned long vq_linear_bf16_amx_chunked_calls(void) { return 0; }

int vq_linear_bf16_amx(int n_threads, const uint16_t *xb, int T, int K, const uint16_t *blocks, const float *b, int N,
                       int epi, void *y)
{
    (void)n_threads; (void)xb; (void)T; (void)K; (void)blocks; (void)b; (void)N; (void)epi; (void)y;
    return -1;
}

#endif
