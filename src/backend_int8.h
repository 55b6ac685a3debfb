/* int8 products (backend_int8.c): y[T×N] = x[T×K] · Wᵀ + b with
 *
 *   weights     int8, one scale per output channel: W[n][k] ≈ sw[n]·Wq[n][k],
 *               Wq in -127..127 (symmetric, quantized once at load);
 *   activations uint8, one scale and zero point per row, at run time:
 *               x[t][k] ≈ sx[t]·(Xq[t][k] − zx[t]), Xq in 0..255 (the row's
 *               range, widened to hold 0, in 255 steps);
 *   sums        int32, exact: acc = Σk Xq·Wq (AMX tiles' TDPBUSD where the
 *               CPU has them, AVX512_VNNI vpdpbusd, oneDNN's u8 × s8 → s32
 *               matmul, or the scalar loop), then
 *               y = (acc − zx·Σk Wq[n][k]) · (sx·sw) + b, computed as
 *               fma(acc, sx·sw, fma(csw, −zx·sx, b)) in fp32, with
 *               csw = Σk Wq[n][k] · sw rounded once at packing.
 *
 * Every sum is an exact integer and the float epilogue is the same
 * operations in the same order in every kernel: the VNNI kernel, the AMX
 * tiles' and oneDNN's sums and the scalar reference agree bit for bit, and
 * a row's result depends neither on the other rows of the call nor on the
 * threads. */
#ifndef VQ_BACKEND_INT8_H
#define VQ_BACKEND_INT8_H

#include <stdint.h>

#include "backend.h"

/* 1 when the CPU runs the VNNI kernel (AVX512F, AVX512BW, AVX512_VNNI). */
int vq_int8_native(void);

/* W[N][K] quantized per output channel and laid out for the kernel; NULL
 * when out of memory. */
struct vq_packed *vq_int8_pack(const float *W, int N, int K);
void vq_int8_pack_free(struct vq_packed *p);

/* y[T×N] = x[T×K] · Wᵀ + b (b may be NULL) on n_threads threads, with epi
 * 0, or VQ_EPI_ADD (y += ...) or VQ_EPI_GELU (y = gelu(...)) applied to
 * each tile as it is finished: the bits of the product followed by vq_add /
 * vq_vgelu_poly (vmath.h: the bf16 and int8 paths' GELU, within 7.1e-7 of
 * the exact one). Nonzero when p is not an int8 packing. */
int vq_int8_linear(int n_threads, const struct vq_packed *p, const float *x, int T, const float *b, int epi,
                   float *y);

/* Rows quantized for the int8 products (vq_int8_linear's first step, done
 * once where several products take the same input: the transformer's key,
 * value and query products from layer norm's output): T rows of K values
 * as bytes, row t at q + t·ld (zeros from K to ld), with their scales and
 * zero points. */
struct vq_int8_rows {
    uint8_t *q;
    float *sx;
    int32_t *zx;
    int T, K, ld;
};
/* Room for T rows in the layout of p's products (its K; dense rows where
 * its products of T rows take oneDNN's sums, else a cache line apart);
 * nonzero when p is not an int8 packing, T < 1 or out of memory. */
int vq_int8_rows_alloc(const struct vq_packed *p, int T, struct vq_int8_rows *r);
/* Row t from x[K] (vq_int8_quantize_row), its padding zeroed. */
void vq_int8_rows_set(const struct vq_int8_rows *r, int t, const float *x);
void vq_int8_rows_free(struct vq_int8_rows *r);
/* vq_int8_linear of rows r0 .. r0 + T - 1 of r, quantized for a packing of
 * the same K (of another layout too: then not through oneDNN's sums): the
 * same bits as vq_int8_linear of the rows they came from. Nonzero when p
 * is not an int8 packing, r does not fit it (its K, its rows, freed) or
 * epi is not 0, VQ_EPI_ADD or VQ_EPI_GELU. */
int vq_int8_linear_rows(int n_threads, const struct vq_packed *p, const struct vq_int8_rows *r, int r0, int T,
                        const float *b, int epi, float *y);

/* Tests: 0 forces the scalar kernel, 1 the VNNI kernel (where the CPU has
 * it), 2 oneDNN's sums with the VNNI kernel's epilogue (where oneDNN has an
 * int8 kernel for the shape), 3 the AMX tiles' sums with that epilogue
 * (where the CPU has AMX-INT8), -1 the automatic choice: the AMX tiles
 * where the CPU has them, else oneDNN from 32 rows where it runs int8 on
 * AMX tiles, else the VNNI kernel. */
void vq_int8_force(int kernel);
/* Tests: the memory of the threads' speeds by which the VNNI and scalar
 * kernels share their column blocks (balance.h), to skew it. */
struct vq_balance *vq_int8_blocks_balance(void);
/* The products' kernel as chosen now, in words ("AVX512_VNNI", "scalar",
 * "oneDNN on AMX tiles ..."). */
const char *vq_int8_kernel_name(void);

/* Tests: the quantized operands of a packing and of a row, to check the
 * kernels against a scalar reference: the weight Wq[n][k] and its scale, and
 * a row x[K] quantized as the products do (q[K], its scale and zero point). */
int vq_int8_weight(const struct vq_packed *p, int n, int k, float *scale);
void vq_int8_quantize_row(const float *x, int K, uint8_t *q, float *scale, int32_t *zero);

#endif
