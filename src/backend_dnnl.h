/* oneDNN: direct convolutions, bf16 products through weights repacked
 * once, and int8 sums (backend_dnnl.c). Every function returns nonzero (or
 * NULL) when oneDNN is not built in or cannot do it; callers then fall
 * back. */
#ifndef VQ_BACKEND_DNNL_H
#define VQ_BACKEND_DNNL_H

#include <stdint.h>

#include "backend.h"

/* 1 when oneDNN runs bf16 natively on this CPU (AVX512_BF16 or AMX). */
int vq_dnnl_bf16_native(void);

/* Direct convolution on n_threads threads (vq_conv2d's contract), bf16
 * inputs with fp32 sums when bf16 is nonzero. */
int vq_dnnl_conv2d(int n_threads, const float *in, int C, int H, int W, const float *weight, const float *bias,
                   int Cout, int k, int s, int pt, int pl, int pb, int pr, float *out, int bf16);

/* A weight matrix W[N][K] (torch Linear layout) in bf16, repacked once per
 * column panel into oneDNN's preferred layout; NULL when out of memory or
 * without native bf16. */
struct vq_packed *vq_dnnl_pack_bf16(const float *W, int N, int K);
void vq_dnnl_pack_free(struct vq_packed *w);
/* y[T×N] = x[T×K] · Wᵀ + b: x converted to bf16 once, fp32 accumulation and
 * output on n_threads threads: up to small_rows rows the few-rows kernel of
 * linear_small.h, past them our own kernel of linear_bf16.h (the same bits
 * for a row whatever T; both on AMX tiles where the CPU has them), where
 * the packing is its blocks; oneDNN's matmul for other packings. Nonzero
 * when unavailable. */
int vq_dnnl_linear_bf16(int n_threads, int small_rows, const struct vq_packed *w, const float *x, int T,
                        const float *b, float *y);
/* The same from xb = x rounded to bf16 (vq_f32_to_bf16): the same bits. */
int vq_dnnl_linear_bf16_in(int n_threads, int small_rows, const struct vq_packed *w, const uint16_t *xb, int T,
                           const float *b, float *y);
/* The same with an epilogue (enum vq_epilogue) fused into the product, for
 * more than small_rows rows through weights stored as one blocked matrix:
 * our kernel's (GELU: vq_gelu_poly, the bits of the product followed by
 * vq_vgelu_poly and the rounding, as ops.c completes the few-rows
 * products), or, with our kernel forced off (tests, the bench), oneDNN's
 * (GELU: its gelu_erf); the add gives the bits of the product followed by
 * a sum. Nonzero (nothing done) otherwise. */
int vq_dnnl_linear_bf16_epi(int n_threads, int small_rows, const struct vq_packed *w, const uint16_t *xb, int T,
                            const float *b, int epi, void *y);
/* 1 when w's products of up to small_rows rows take the few-rows kernel. */
int vq_dnnl_small_ok(const struct vq_packed *w);
/* 1 when oneDNN runs bf16 and int8 products on AMX tiles here: the int8
 * backend takes its sums from oneDNN (backend_int8.c); the bf16 backend's
 * products whose weights are whole blocks run on our own tiles' kernel
 * (linear_amx.h), the others oneDNN's. */
int vq_dnnl_amx(void);
/* acc[T×N] (int32, dense) = xq[T×K] (uint8, dense) · Wq, the exact sums of
 * int8 weights in oneDNN's BA16a64b4a layout (blocks of 64 columns of
 * [K/4][64][4]: the int8 packing's own), on n_threads threads; K and N
 * multiples of 64. Nonzero when oneDNN cannot, or would run its reference
 * code (then for the rest of the process). */
int vq_dnnl_int8_sums(int n_threads, const uint8_t *xq, int T, int K, const int8_t *wq, int N, int32_t *acc);
/* 1 when the bf16 products past the few-rows kernel's rows run our own
 * kernel (linear_bf16.h: the CPU has AVX512_BF16, the kernel is not forced
 * off; on AMX tiles where the CPU has them), for weights packed as its
 * blocks. */
int vq_dnnl_bf16_own(void);
/* Tests: 1 runs every bf16 product panel by panel (each into a dense block,
 * copied into place), 0 (the default) runs a product whose panels form one
 * blocked matrix as one call writing y directly. */
void vq_dnnl_whole_force_off(int off);

#endif
