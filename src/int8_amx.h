/* The int8 backend's sums on AMX tiles (int8_amx.c), on CPUs where
 * vq_amx_int8_ready: oneDNN's int8 matmul ran the sampler's chunks at 1.1x
 * the bf16 tiles' rate, and the few-rows products stayed on AVX512_VNNI. */
#ifndef VQ_INT8_AMX_H
#define VQ_INT8_AMX_H

#include <stdint.h>

/* Called with the exact int32 sums of rows i0 .. i0+m-1 (m <= 16) of block
 * b of the call's: c[i][col] = Σk xq[i0+i][k] · Wq[col][k], 64 to a row. */
typedef void (*vq_int8_amx_fn)(void *ctx, int b, const int32_t *c, int i0, int m);

/* The sums of the rows xq[T][ldx] (uint8, zero from K on) against n_blk
 * consecutive blocks of 64 columns of int8 weights, each [Kp/4][64][4]
 * (backend_int8.c's packing, Kp a multiple of 64), on this thread: passes
 * of 16 rows, each over the blocks in turn (with more than one block the
 * weights are read by TILELOADDT1, so that the pass's rows stay in L1), fn
 * called as each block's pass leaves the tiles. The sums are exact
 * integers: the same as any other kernel's. Nonzero (nothing done) without
 * AMX-INT8 or with Kp not a multiple of 64. */
int vq_int8_amx_rows(const uint8_t *xq, int ldx, int T, int Kp, const int8_t *blk, int n_blk, vq_int8_amx_fn fn,
                     void *ctx);

#endif
