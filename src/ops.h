/* The numerical layers, each a short function that reads like its equation.
 * Activations are float, batch 1. Images and feature maps are planar CHW;
 * token sequences are row-major T×D. Functions that allocate return 0 or
 * VQGAN_ERR_NOMEM. */
#ifndef VQ_OPS_H
#define VQ_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

/* Every layer that computes in parallel takes the call's execution context
 * (backend.h: the model's backend and the call's threads); NULL means the
 * default fp32 backend on every core (tests). */

/* 2-D convolution, weight [Cout][Cin][k][k], optional bias [Cout].
 * Zero padding pad_t/pad_l/pad_b/pad_r, stride s. Output Cout×Ho×Wo with
 * Ho = (H + pad_t + pad_b - k)/s + 1. */
int vq_conv2d(const struct vq_exec *ex, const float *in, int C, int H, int W,
              const float *weight, const float *bias, int Cout, int k, int s,
              int pad_t, int pad_l, int pad_b, int pad_r,
              float *out);

/* GroupNorm over CHW with G groups, affine gamma/beta [C]; in place allowed. */
void vq_group_norm(const struct vq_exec *ex, const float *x, int C, int HW, int G, float eps,
                   const float *gamma, const float *beta, float *y);
/* swish(GroupNorm(x)) in one pass. */
void vq_group_norm_swish(const struct vq_exec *ex, const float *x, int C, int HW, int G, float eps,
                         const float *gamma, const float *beta, float *y);
/* x * sigmoid(x), in place. */
void vq_swish(const struct vq_exec *ex, float *x, size_t n);
/* Nearest-neighbour ×2 upsampling: C×H×W -> C×2H×2W. */
void vq_upsample2x(const struct vq_exec *ex, const float *x, int C, int H, int W, float *y);
/* y += x */
void vq_add(const struct vq_exec *ex, float *y, const float *x, size_t n);

/* LayerNorm over the last dimension of a T×D matrix. */
void vq_layer_norm(const struct vq_exec *ex, const float *x, int T, int D, const float *gamma, const float *beta,
                   float eps, float *y);
/* The same rounded to bf16 (the bits of vq_layer_norm then vq_f32_to_bf16),
 * without the fp32 rows: the input of the products that take bf16. */
void vq_layer_norm_bf16(const struct vq_exec *ex, const float *x, int T, int D, const float *gamma,
                        const float *beta, float eps, uint16_t *yb);
/* The same quantized for int8 products (backend_int8.h: each row's bytes,
 * scale and zero point, vq_int8_quantize_row of vq_layer_norm's row),
 * without the fp32 rows: the input of the products of int8 weights pk
 * (vq_linear_int8_input), once for all those that take it. r is
 * allocated here (vq_int8_rows_free). 0, VQGAN_ERR_INVALID (pk not int8
 * products of D inputs) or VQGAN_ERR_NOMEM. */
struct vq_int8_rows;
int vq_layer_norm_int8(const struct vq_exec *ex, const float *x, int T, int D, const float *gamma,
                       const float *beta, float eps, const struct vq_packed *pk, struct vq_int8_rows *r);
/* y[T×Dout] = x[T×Din] · Wᵀ + b, W stored [Dout][Din] (torch Linear). b may
 * be NULL. pk (may be NULL) is W packed for ex's backend (vq_backend_pack):
 * when given, the product runs from it (bf16), else from W (fp32). */
void vq_linear(const struct vq_exec *ex, const float *x, int T, int Din, const float *W, const struct vq_packed *pk,
               const float *b, int Dout, float *y);
/* vq_linear followed by vq_add (y[T×Dout] += x · Wᵀ + b; tmp: T·Dout floats
 * of scratch) or by GELU (y = gelu(x · Wᵀ + b)), fused into the product
 * where ex's backend does so for pk (linear_packed_epi: the int8 kernel).
 * The add has the same bits either way; GELU is vq_gelu's unfused, the
 * backend's own fused (int8: vq_vgelu_poly, vmath.h). */
void vq_linear_add(const struct vq_exec *ex, const float *x, int T, int Din, const float *W,
                   const struct vq_packed *pk, const float *b, int Dout, float *tmp, float *y);
void vq_linear_gelu(const struct vq_exec *ex, const float *x, int T, int Din, const float *W,
                    const struct vq_packed *pk, const float *b, int Dout, float *y);
/* vq_linear from its input already rounded to bf16 (xb, vq_f32_to_bf16 of
 * x), the same bits, where ex's backend runs pk's product from bf16 input;
 * nonzero (nothing done) otherwise. vq_linear_bf16_input: whether it does. */
int vq_linear_bf16_input(const struct vq_exec *ex, const struct vq_packed *pk);
int vq_linear_bf16(const struct vq_exec *ex, const uint16_t *xb, int T, const struct vq_packed *pk, const float *b,
                   float *y);
/* vq_linear (epi 0), vq_linear_add (VQ_EPI_ADD: into y) or vq_linear_gelu
 * (VQ_EPI_GELU) of int8 weights pk from rows r0 .. r0 + T - 1 already
 * quantized (vq_layer_norm_int8), with the bits of those functions from the
 * fp32 rows. vq_linear_int8_input: whether pk takes them. */
int vq_linear_int8_input(const struct vq_exec *ex, const struct vq_packed *pk);
int vq_linear_int8(const struct vq_exec *ex, const struct vq_int8_rows *r, int r0, int T, const struct vq_packed *pk,
                   const float *b, int epi, float *y);
/* The MLP's and the residual's products from bf16 input (vq_linear_bf16_input
 * must hold for pk), with what follows them fused where the backend can
 * (enum vq_epilogue; backend.h):
 *  - vq_linear_bf16_gelu: yb[T×N] = bf16(gelu(xb · Wᵀ + b)), the next
 *    product's input. GELU is vq_vgelu_poly's, here after the few-rows
 *    kernels and on each finished tile of the bf16 backend's own kernel past
 *    them (linear_bf16.h; both on AMX tiles where the CPU has them), whose
 *    sums are the same: a row's bits do not depend on its call; where
 *    oneDNN fuses it instead (our kernel forced off), its own erf
 *    approximation, and a row's bits depend on which kernel its call
 *    takes, like its product's (vq_linear_rows_independent).
 *  - vq_linear_bf16_add: y[T×N] += xb · Wᵀ + b, the bits of vq_linear_bf16
 *    into a buffer followed by vq_add.
 * Nonzero (VQGAN_ERR_NOMEM, y untouched) when out of memory. */
int vq_linear_bf16_gelu(const struct vq_exec *ex, const uint16_t *xb, int T, const struct vq_packed *pk,
                        const float *b, uint16_t *yb);
int vq_linear_bf16_add(const struct vq_exec *ex, const uint16_t *xb, int T, const struct vq_packed *pk,
                       const float *b, float *y);
/* 1 when vq_linear with ex's backend (and pk, which may be NULL) gives every
 * row of a call of at least VQ_ROWS_INDEPENDENT_FROM rows the same bits
 * whatever the other rows of the call are and wherever the row sits in it; 0
 * when a probe of these weights' shape found otherwise. The probe (five
 * products of 64 to 320 rows, some at odd places, against one of 320) runs once per shape,
 * backend and packing per process; later calls read its result. The
 * products keep every row panel at VQ_ROWS_INDEPENDENT_FROM rows or more. */
#define VQ_ROWS_INDEPENDENT_FROM 64
int vq_linear_rows_independent(const struct vq_exec *ex, const float *W, const struct vq_packed *pk, const float *b,
                               int N, int K);
/* 1 when vq_linear with ex's backend and pk (may be NULL) takes the
 * few-rows kernels (linear_small.h) for every call of up to vq_small_rows(ex)
 * rows, whose rows do not depend on each other: the products of sequences
 * batched together (vq_gpt_forward_batch). */
int vq_linear_small_any(const struct vq_exec *ex, const struct vq_packed *pk);
/* The probe itself, uncached, of any product with vq_linear's contract
 * (tests give it products that are not row-independent). */
typedef void (*vq_linear_fn)(const float *x, int T, int Din, const float *W, const float *b, int Dout, float *y);
int vq_rows_probe(vq_linear_fn linear, const float *W, const float *b, int N, int K);
/* Exact GELU: 0.5·x·(1 + erf(x/√2)), in place. */
void vq_gelu(const struct vq_exec *ex, float *x, size_t n);
/* Numerically stable softmax of n values, in place. */
void vq_softmax(float *x, int n);

#endif
