/* Row kernels of vmath.c with AVX2 (vmath_avx2.c), for CPUs without
 * AVX-512: the same sums as the AVX-512 forms, in the same order (16 double
 * lanes as four vectors of 4, reduced as _mm512_reduce_add_pd reduces), so
 * where the element-wise functions agree the bits are theirs. Called by
 * vmath.c only where the CPU has AVX2 (vq_simd_level() == 1). */
#ifndef VQ_VMATH_AVX2_H
#define VQ_VMATH_AVX2_H

/* One row of layer norm into y (vq_vlayer_norm), D a multiple of 16. */
void vq_layer_norm_avx2(const float *x, int D, const float *g, const float *b, float eps, float *y);
/* max of x[0..n), n > 0 (vq_vmax). */
float vq_max_avx2(const float *x, int n);
/* x[i] = expf(x[i] - sub) through libmvec's AVX2 expf, and their sum
 * (vq_vexp_sum), n > 0. */
double vq_exp_sum_avx2(float *x, int n, float sub);

#endif
