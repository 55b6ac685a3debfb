/* The bf16 backend's products on AMX tiles (linear_amx.c): the few-rows
 * products (linear_small.c) and those of more rows (linear_bf16.c) take it
 * on CPUs with AMX (amx.h), where vdpbf16ps is slow and oneDNN's products,
 * tried first, fed the sampler's chunks far below the tiles' rate. */
#ifndef VQ_LINEAR_AMX_H
#define VQ_LINEAR_AMX_H

#include <stdint.h>

/* y[T×N] = xb[T×K] · Wᵀ + b (b may be NULL) on n_threads threads, from
 * weights stored as N/64 blocks of 64 columns, each [K/2][64][2] bf16
 * (vq_linear_small_bf16's layout), with epilogue epi as
 * vq_linear_bf16_rows's (0, VQ_EPI_ADD, VQ_EPI_GELU_BF16: the bits of the
 * product followed by vq_add, or by vq_vgelu_poly and the rounding). Each
 * sum in steps of 32 k in order, then the bias: other bits than
 * vdpbf16ps's, a row's result independent of the other rows, their count
 * and the threads. Nonzero (nothing done) without AMX, or K not a multiple
 * of 32, or N of 64. */
int vq_linear_bf16_amx(int n_threads, const uint16_t *xb, int T, int K, const uint16_t *blocks, const float *b, int N,
                       int epi, void *y);

/* 1 when vq_linear_bf16_amx would run a product of this shape over K in
 * chunks (K > 1024, at least 48 rows and 4 blocks of 64 columns a thread:
 * the MLP's second product), given memory for its sums (else it runs one
 * sweep over K), with the same bits as one sweep; and how many products
 * ran so since the process started. For the tests. */
int vq_linear_bf16_amx_chunked(int n_threads, int T, int K, int N);
unsigned long vq_linear_bf16_amx_chunked_calls(void);

/* The threads' learnt speeds for these products (balance.h): the tests
 * skew them. */
struct vq_balance *vq_linear_bf16_amx_balance(void);

#endif
