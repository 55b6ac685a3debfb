/* Linear layers of a few rows that stream the weights from memory once
 * (linear_small.c): the sampler's chunks of one to w = 16 positions. */
#ifndef VQ_LINEAR_SMALL_H
#define VQ_LINEAR_SMALL_H

#include <stdint.h>

#include "backend.h"

/* y[T×N] = x[T×K] · Wᵀ + b (b may be NULL) on n_threads threads. Each
 * element's sum is in a fixed order, independent of T and of the threads:
 * the products use them for T <= VQ_SMALL_ROWS (backend.h), where they beat
 * the general providers, and for batches of several sequences of that many rows at most
 * (struct vq_exec, small_rows), which then get the bits of their own calls.
 * Nonzero (nothing done) without AVX2+FMA. */
int vq_linear_small(int n_threads, const float *x, int T, int K, const float *W, const float *b, int N, float *y);
/* The same in bf16 (fp32 accumulation, vdpbf16ps) from weights repacked as
 * N/64 blocks of 64 columns one after the other, each [K/2][64][2] (k pairs;
 * oneDNN's 16a64b2a blocking); on AMX tiles where the CPU has them
 * (linear_amx.h: other bits) unless forced below 4. Nonzero (nothing done)
 * without AVX512_BF16 or for other shapes. */
int vq_linear_small_bf16(int n_threads, const uint16_t *xb, int T, int K, const uint16_t *blocks, const float *b,
                         int N, float *y);

/* 1 when the kernel above runs on this CPU (bf16: the bf16 one). */
int vq_linear_small_ready(int bf16);

/* Tests: caps the instruction set of the two above (0 off, 1 AVX2+FMA, 2
 * AVX-512, 3 AVX-512 with bf16, 4 AMX tiles for bf16; -1 whatever the CPU
 * has, the default). */
void vq_linear_small_force(int level);

#endif
