/* bf16 products of many rows by our own AVX512_BF16 kernel (linear_bf16.c),
 * for the bf16 backend's products above the few-rows kernel's rows
 * (backend_dnnl.c): weights read from L2 by 6-row tiles, the epilogue on
 * the registers, the tiles claimed by the threads at their measured speeds
 * (balance.h), so that a thread slowed by the host does not hold up the
 * other. */
#ifndef VQ_LINEAR_BF16_H
#define VQ_LINEAR_BF16_H

#include <stdint.h>

#include "backend.h"

/* y[T×N] = xb[T×K] · Wᵀ + b (b may be NULL) on n_threads threads, from
 * weights stored as N/64 blocks of 64 columns, each [K/2][64][2] bf16,
 * 64-byte aligned (vq_linear_small_bf16's layout), with epilogue epi:
 * 0 (y fp32), VQ_EPI_ADD (y fp32 += the product) or VQ_EPI_GELU_BF16 (y
 * bf16 = vq_bf16_round(vq_gelu_poly(the product))). Each element's sum has
 * vq_linear_small_bf16's bits (fp32 sums of vdpbf16ps in the order of k
 * from zero, then the bias), whatever T, the threads or their shares; the
 * epilogues give the bits of the product followed by vq_add, or by
 * vq_vgelu_poly and vq_f32_to_bf16. On CPUs with AMX, the tiles' kernel
 * instead (linear_amx.h: the few-rows products' bits there too). Nonzero
 * (nothing done) without AVX512_BF16, when forced off, or for other shapes. */
int vq_linear_bf16_rows(int n_threads, const uint16_t *xb, int T, int K, const uint16_t *blocks, const float *b,
                        int N, int epi, void *y);

/* 1 when the kernel runs here (AVX512_BF16, not forced off). */
int vq_linear_bf16_ready(void);

/* Tests and benches: 0 turns the kernel off (the bf16 backend's products
 * of many rows go to oneDNN), -1 (the default) on where the CPU has it. */
void vq_linear_bf16_force(int on);

/* The tiles' shares of the threads (tests: skewing them must not change
 * a bit). */
struct vq_balance *vq_linear_bf16_balance(void);

#endif
