/* Element-wise exp and GELU over arrays, vectorized where the CPU allows. */
#ifndef VQ_VMATH_H
#define VQ_VMATH_H

#include <stddef.h>
#include <stdint.h>

/* The vector instructions this CPU has, for the hand-vectorized kernels:
 * 0 none, 1 AVX2 + FMA, 2 AVX-512, 3 AVX-512 with AVX512_BF16. */
int vq_simd_level(void);
/* Tests: vq_simd_level answers level from now on (-1: the CPU's again). */
void vq_simd_force(int level);
/* The largest of x[0..n), n >= 1. */
float vq_vmax(const float *x, int n);
/* x[i] = expf(x[i] - sub) for i < n; returns their sum (in double; with
 * AVX-512 as 16 partial sums in a fixed order). */
double vq_vexp_sum(float *x, int n, float sub);
/* y = layer norm of the row x[0..D) (gamma, beta; the variance plus eps)
 * where the CPU has AVX-512 and D is a multiple of 16, with the scalar
 * loop's arithmetic but its double sums in 16 lanes; with y NULL, the row
 * rounded to bf16 into yb (nearest even, vq_f32_to_bf16's bits). Returns 0
 * (nothing written) otherwise, for the caller's scalar loop. */
int vq_vlayer_norm(const float *x, int D, const float *gamma, const float *beta, float eps, float *y, uint16_t *yb);
/* exp(x) of the bf16 attention's softmax: a degree-7 polynomial after
 * reduction by ln 2, within 2 ulp of expf over the range that matters
 * (x <= 0), 0 below -104; scalar and vector forms give the same bits. */
float vq_exp_bf16(float x);
/* Rows of attention probabilities: row r, at S + r·lds, becomes
 * softmax(s[0..vis[r])) (the scores already scaled) with vq_exp_bf16 and
 * the sum in 16 float lanes, written in place as bf16 in the row's first
 * 2·tb bytes (nearest even, subnormals flushed to zero as vcvtneps2bf16
 * does), zeros from vis[r] to tb rounded up to even; every vis[r] >= 1.
 * AVX-512 with AVX512_BF16 where the CPU has it (VQ_SOFTMAX_ROWS rows at a
 * time, pass by pass), else one value at a time with the same bits. */
#define VQ_SOFTMAX_ROWS 8
void vq_vsoftmax_bf16(float *S, int lds, int rows, const int *vis, int tb);
/* x[i] = 0.5·x·(1 + erf(x/√2)) for i < n (the exact, erf form of GELU). */
void vq_vgelu(float *x, size_t n);

/* GELU from Abramowitz and Stegun's erf, 1 - p(|x|/√2)^-16 with p of degree
 * 6 (vmath_poly.h): within 7.1e-7 absolute everywhere, 7e-6 relative for
 * x >= -2 (below -3 only the absolute bound: |gelu| < 4e-3 there), no exp:
 * the GELU of every bf16 and int8 path (their results are rounded to bf16
 * or quantized to int8, far coarser). Scalar and vector forms give the same
 * bits, whatever the span an element comes in. */
float vq_gelu_poly(float x);
void vq_vgelu_poly(float *x, size_t n);

#endif
