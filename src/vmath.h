/* Element-wise exp and GELU over arrays, vectorized where the CPU allows. */
#ifndef VQ_VMATH_H
#define VQ_VMATH_H

#include <stddef.h>

/* The vector instructions this CPU has, for the hand-vectorized kernels:
 * 0 none, 1 AVX2 + FMA, 2 AVX-512, 3 AVX-512 with AVX512_BF16. */
int vq_simd_level(void);
/* The largest of x[0..n), n >= 1. */
float vq_vmax(const float *x, int n);
/* x[i] = expf(x[i] - sub) for i < n; returns their sum (in double; with
 * AVX-512 as 16 partial sums in a fixed order). */
double vq_vexp_sum(float *x, int n, float sub);
/* y = layer norm of the row x[0..D) (gamma, beta; the variance plus eps)
 * where the CPU has AVX-512 and D is a multiple of 16, with the scalar
 * loop's arithmetic but its double sums in 16 lanes; returns 0 (nothing
 * written) otherwise, for the caller's scalar loop. */
int vq_vlayer_norm(const float *x, int D, const float *gamma, const float *beta, float eps, float *y);
/* One row of attention probabilities: softmax(s[0..vis) · scale) written
 * in place as bf16 (nearest even) in the row's first 2·tb bytes, zeros from
 * vis to tb rounded up to even; the same bits as the scale, vq_vmax,
 * vq_vexp_sum, normalize and round loops. Returns 0 (nothing written) where
 * the CPU lacks AVX-512, for the caller's loops. */
int vq_vsoftmax_bf16(float *s, int vis, int tb, float scale);
/* x[i] = 0.5·x·(1 + erf(x/√2)) for i < n (the exact, erf form of GELU). */
void vq_vgelu(float *x, size_t n);

#endif
