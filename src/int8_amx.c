/* The int8 backend's sums on AMX tiles (int8_amx.h).
 *
 * One TDPBUSD multiplies 16 rows × 64 bytes of activations (uint8) by 16
 * quads of k × 16 columns' 4 bytes (int8) into 16 × 16 int32 sums: 16 384
 * multiply-adds, twice a TDPBF16PS's. The packing's blocks of 64 columns,
 * [Kp/4][64][4], are the B operand as they lie: 16 quads of k (rows 256
 * bytes apart) × 16 columns' quads. Per pass of up to 16 rows: the rows'
 * 64 k at a time in tile 4, the 64 columns' sums in tiles 0..3, their
 * weights through tile 5 (linear_amx.c's bf16 loop, with bytes). Given
 * more than one block, each pass runs over them in turn with the weights
 * read by TILELOADDT1, so that its rows stay in L1 (linear_amx.c's groups).
 * The threads share the blocks as for the VNNI kernel (backend_int8.c). */
#include "amx.h"
#include "int8_amx.h"

#ifdef VQ_AMX_BUILD
#include <immintrin.h>

/* The rows of a finished pass whose epilogue is still to run. */
struct pending {
    const int32_t *c;
    int b, i0, m;
};

/* the sums of m rows (the configured rows) of one block into c[16][64];
 * meanwhile the epilogue of the pass before, one of its rows a step of k,
 * so that the vector units work while the tiles multiply; the weights by
 * TILELOADDT1 when stream (a constant where it is inlined) */
__attribute__((target("amx-tile,amx-int8"), always_inline))
static inline void block_pass(const uint8_t *x, int ldx, int Kp, const int8_t *blk, int32_t *c, struct pending *p,
                              vq_int8_amx_fn fn, void *ctx, const int stream)
{
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    int done = 0;
    for (int k = 0; k < Kp; k += 64) {
        const int8_t *w = blk + (size_t)(k / 4) * 256;   /* 16 quads of k, 64 columns' quads each */
        _tile_loadd(4, x + k, (size_t)ldx);
        vq_amx_load_weights(w, stream);
        _tile_dpbusd(0, 4, 5);
        vq_amx_load_weights(w + 64, stream);
        _tile_dpbusd(1, 4, 5);
        vq_amx_load_weights(w + 128, stream);
        _tile_dpbusd(2, 4, 5);
        vq_amx_load_weights(w + 192, stream);
        _tile_dpbusd(3, 4, 5);
        if (done < p->m) {
            fn(ctx, p->b, p->c + 64 * done, p->i0 + done, 1);
            done++;
        }
    }
    if (done < p->m) fn(ctx, p->b, p->c + 64 * done, p->i0 + done, p->m - done);
    _tile_stored(0, c, 256);
    _tile_stored(1, c + 16, 256);
    _tile_stored(2, c + 32, 256);
    _tile_stored(3, c + 48, 256);
}

/* One pass of the configured m rows from row r0 over the blocks, the sum
 * buffers alternating from *h. */
__attribute__((target("amx-tile,amx-int8")))
static void group_pass(const uint8_t *x, int ldx, int Kp, const int8_t *blk, int n_blk, int r0, int m,
                       int32_t c[2][16 * 64], int *h, struct pending *p, vq_int8_amx_fn fn, void *ctx)
{
    for (int b = 0; b < n_blk; b++, *h ^= 1) {
        const int8_t *w = blk + (size_t)b * Kp * 64;
        if (n_blk > 1) block_pass(x, ldx, Kp, w, c[*h], p, fn, ctx, 1);
        else block_pass(x, ldx, Kp, w, c[*h], p, fn, ctx, 0);
        *p = (struct pending){ c[*h], b, r0, m };
    }
}

int vq_int8_amx_rows(const uint8_t *xq, int ldx, int T, int Kp, const int8_t *blk, int n_blk, vq_int8_amx_fn fn,
                     void *ctx)
{
    if (!vq_amx_int8_ready() || T < 1 || Kp < 64 || Kp % 64 || n_blk < 1)
        return -1;
    _Alignas(64) int32_t c[2][16 * 64];
    struct pending p = { c[1], 0, 0, 0 };
    int conf = 0, h = 0;
    for (int r0 = 0; r0 < T; r0 += 16) {
        const int m = T - r0 < 16 ? T - r0 : 16;
        if (m != conf) vq_amx_configure_pass(conf = m);
        group_pass(xq + (size_t)r0 * ldx, ldx, Kp, blk, n_blk, r0, m, c, &h, &p, fn, ctx);
    }
    fn(ctx, p.b, p.c, p.i0, p.m);
    vq_amx_release();
    return 0;
}

#else

int vq_int8_amx_rows(const uint8_t *xq, int ldx, int T, int Kp, const int8_t *blk, int n_blk, vq_int8_amx_fn fn,
                     void *ctx)
{
    (void)xq; (void)ldx; (void)T; (void)Kp; (void)blk; (void)n_blk; (void)fn; (void)ctx;
    return -1;
}

#endif
