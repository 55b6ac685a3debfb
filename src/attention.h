/* Causal multi-head attention of new rows against a KV cache (attention.c). */
#ifndef VQ_ATTENTION_H
#define VQ_ATTENTION_H

#include <stdint.h>

#include "backend.h"

/* y[n][D] = per head h (width hd = D / n_head):
 *   softmax(q_h K_hᵀ / √hd, masked) V_h
 * for the n new rows at absolute positions L0 .. L0+n-1, against keys and
 * values 0 .. L0+n-1. Row p sees keys 0..p; the first n_unmasked positions
 * also see each other. Kt holds the keys transposed, Kt[d][t] at
 * Kt[d * ldk + t]; V[t][D]; q[n][D]; att is scratch of n_head·n·(L0+n)
 * floats. The result does not depend on the thread count. */
void vq_attention(const struct vq_exec *ex, const float *q, const float *Kt, int ldk, const float *V, int D, int n_head, int n_unmasked,
                  int L0, int n, float *att, float *y);

/* The same against a cache in the bf16 layout (gpt.h): keys K2[D/2][ldk][2],
 * values V2[ldk/2][D][2], ldk even. The query (copied to the scratch qb,
 * n·D values) and the probabilities are rounded to bf16; the sums are fp32.
 * The output goes to y, or with y NULL rounded to bf16 (nearest even, as
 * vq_f32_to_bf16) to yb[n][D], the next product's input. Only where
 * vq_attention_bf16_kernel. */
void vq_attention_bf16(const struct vq_exec *ex, const float *q, uint16_t *qb, const void *K2, int ldk, const void *V2, int D, int n_head,
                       int n_unmasked, int L0, int n, float *att, float *y, uint16_t *yb);
/* Rows L0 .. L0+n-1 of the bf16 layout from n rows of keys / values [n][D]
 * (nearest even); after values, a zero in the partner slot of an odd end. */
void vq_store_keys_bf16(const struct vq_exec *ex, const float *k, int n, int D, void *K2, int ldk, int L0);
void vq_store_values_bf16(const struct vq_exec *ex, const float *v, int n, int D, void *V2, int L0);
/* 1 when vq_attention_bf16 runs here for heads of width hd with backend be
 * (NULL: the default): the AVX-512 kernels' conditions and AVX512_BF16. */
int vq_attention_bf16_kernel(const struct vq_backend *be, int hd);

/* Kt[d * ldk + r] = k[r * D + d] for the n rows of k. */
void vq_transpose_keys(const struct vq_exec *ex, const float *k, int n, int D, float *Kt, int ldk);

/* 1 when vq_attention runs the AVX-512 kernels for heads of width hd with
 * backend be (NULL: the default; the reference backend takes gemm); a row's
 * result then does not depend on the chunk of rows it comes in. */
int vq_attention_kernel(const struct vq_backend *be, int hd);

/* Tests: 1 forces the AVX-512 kernels (where the CPU has them), 0 vq_gemm,
 * -1 the automatic choice (the kernels unless the backend is the reference). */
void vq_attention_force(int kernel);

#endif
