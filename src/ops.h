/* The numerical layers, each a short function that reads like its equation.
 * Activations are float, batch 1. Images and feature maps are planar CHW;
 * token sequences are row-major T×D. Functions that allocate return 0 or
 * VQGAN_ERR_NOMEM. */
#ifndef VQ_OPS_H
#define VQ_OPS_H

#include <stddef.h>
#include <stdint.h>

/* 2-D convolution, weight [Cout][Cin][k][k], optional bias [Cout].
 * Zero padding pad_t/pad_l/pad_b/pad_r, stride s. Output Cout×Ho×Wo with
 * Ho = (H + pad_t + pad_b - k)/s + 1. */
int vq_conv2d(const float *in, int C, int H, int W,
              const float *weight, const float *bias, int Cout, int k, int s,
              int pad_t, int pad_l, int pad_b, int pad_r,
              float *out);

/* GroupNorm over CHW with G groups, affine gamma/beta [C]; in place allowed. */
void vq_group_norm(const float *x, int C, int HW, int G, float eps,
                   const float *gamma, const float *beta, float *y);
/* swish(GroupNorm(x)) in one pass. */
void vq_group_norm_swish(const float *x, int C, int HW, int G, float eps,
                         const float *gamma, const float *beta, float *y);
/* x * sigmoid(x), in place. */
void vq_swish(float *x, size_t n);
/* Nearest-neighbour ×2 upsampling: C×H×W -> C×2H×2W. */
void vq_upsample2x(const float *x, int C, int H, int W, float *y);
/* y += x */
void vq_add(float *y, const float *x, size_t n);

/* LayerNorm over the last dimension of a T×D matrix. */
void vq_layer_norm(const float *x, int T, int D, const float *gamma, const float *beta,
                   float eps, float *y);
/* y[T×Dout] = x[T×Din] · Wᵀ + b, W stored [Dout][Din] (torch Linear). b may be NULL. */
void vq_linear(const float *x, int T, int Din, const float *W, const float *b, int Dout,
               float *y);
/* 1 when vq_linear, at the calling thread's precision on the current
 * backend, gives every row of a call of at least VQ_ROWS_INDEPENDENT_FROM
 * rows the same bits whatever the other rows of the call are and wherever the
 * row sits in it; 0 when a probe of these weights' shape found otherwise.
 * The probe (three products of up to 320 rows, against one of 320) runs once
 * per shape, precision and backend per process; later calls read its result.
 * vq_gemm keeps every row panel at VQ_ROWS_INDEPENDENT_FROM rows or more. */
#define VQ_ROWS_INDEPENDENT_FROM 64
int vq_linear_rows_independent(const float *W, const float *b, int N, int K);
/* The probe itself, uncached, of any product with vq_linear's contract
 * (tests give it products that are not row-independent). */
typedef void (*vq_linear_fn)(const float *x, int T, int Din, const float *W, const float *b, int Dout, float *y);
int vq_rows_probe(vq_linear_fn linear, const float *W, const float *b, int N, int K);
/* Exact GELU: 0.5·x·(1 + erf(x/√2)), in place. */
void vq_gelu(float *x, size_t n);
/* Numerically stable softmax of n values, in place. */
void vq_softmax(float *x, int n);

#endif
