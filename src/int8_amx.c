/* The int8 backend's sums on AMX tiles (int8_amx.h).
 *
 * One TDPBUSD multiplies 16 rows × 64 bytes of activations (uint8) by 16
 * quads of k × 16 columns' 4 bytes (int8) into 16 × 16 int32 sums: 16 384
 * multiply-adds, twice a TDPBF16PS's. The packing's blocks of 64 columns,
 * [Kp/4][64][4], are the B operand as they lie: 16 quads of k (rows 256
 * bytes apart) × 16 columns' quads. Per pass of up to 16 rows: the rows'
 * 64 k at a time in tile 4, the 64 columns' sums in tiles 0..3, their
 * weights through tile 5 (linear_amx.c's bf16 loop, with bytes). The
 * threads share the blocks as for the VNNI kernel (backend_int8.c). */
#include "amx.h"
#include "int8_amx.h"

#ifdef VQ_AMX_BUILD
#include <immintrin.h>

/* The rows of a finished pass whose epilogue is still to run. */
struct pending {
    const int32_t *c;
    int i0, m;
};

/* the sums of m rows (the configured rows) of one block into c[16][64];
 * meanwhile the epilogue of the pass before, one of its rows a step of k,
 * so that the vector units work while the tiles multiply */
__attribute__((target("amx-tile,amx-int8")))
static void block_pass(const uint8_t *x, int ldx, int Kp, const int8_t *blk, int32_t *c, struct pending *p,
                       vq_int8_amx_fn fn, void *ctx)
{
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    int done = 0;
    for (int k = 0; k < Kp; k += 64) {
        const int8_t *w = blk + (size_t)(k / 4) * 256;   /* 16 quads of k, 64 columns' quads each */
        _tile_loadd(4, x + k, (size_t)ldx);
        _tile_loadd(5, w, 256);
        _tile_dpbusd(0, 4, 5);
        _tile_loadd(5, w + 64, 256);
        _tile_dpbusd(1, 4, 5);
        _tile_loadd(5, w + 128, 256);
        _tile_dpbusd(2, 4, 5);
        _tile_loadd(5, w + 192, 256);
        _tile_dpbusd(3, 4, 5);
        if (done < p->m) {
            fn(ctx, p->c + 64 * done, p->i0 + done, 1);
            done++;
        }
    }
    if (done < p->m) fn(ctx, p->c + 64 * done, p->i0 + done, p->m - done);
    _tile_stored(0, c, 256);
    _tile_stored(1, c + 16, 256);
    _tile_stored(2, c + 32, 256);
    _tile_stored(3, c + 48, 256);
}

int vq_int8_amx_rows(const uint8_t *xq, int ldx, int T, int Kp, const int8_t *blk, vq_int8_amx_fn fn, void *ctx)
{
    if (!vq_amx_int8_ready() || T < 1 || Kp < 64 || Kp % 64)
        return -1;
    _Alignas(64) int32_t c[2][16 * 64];
    struct pending p = { c[1], 0, 0 };
    int conf = 0;
    for (int r0 = 0, b = 0; r0 < T; r0 += 16, b ^= 1) {
        const int m = T - r0 < 16 ? T - r0 : 16;
        if (m != conf) vq_amx_configure_pass(conf = m);
        block_pass(xq + (size_t)r0 * ldx, ldx, Kp, blk, c[b], &p, fn, ctx);
        p = (struct pending){ c[b], r0, m };
    }
    fn(ctx, p.c, p.i0, p.m);
    vq_amx_release();
    return 0;
}

#else

int vq_int8_amx_rows(const uint8_t *xq, int ldx, int T, int Kp, const int8_t *blk, vq_int8_amx_fn fn, void *ctx)
{
    (void)xq; (void)ldx; (void)T; (void)Kp; (void)blk; (void)fn; (void)ctx;
    return -1;
}

#endif
