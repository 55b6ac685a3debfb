/* The backend: an object that carries out a model's products.
 *
 * A backend is a table of functions (matrix product, convolution, linear
 * layer with and without weights packed for it, packing) chosen once, when a
 * model is loaded, from the precision asked for and what the CPU and the
 * build offer (vq_backend_choose). The model keeps a pointer to it; weights
 * packed for it are held by the model next to the weights they pack
 * (gpt.h). Nothing about which kernel runs is kept in globals.
 *
 * A call runs with an execution context, struct vq_exec: the backend and the
 * number of threads the session gives the call. Every parallel region of a
 * call is sized from it (num_threads), never from the caller's OpenMP setting.
 *
 * The other concerns of the backend layer have their own headers:
 *   gemm.h          the product providers, their panels over the threads, the
 *                   scalar reference, the operation counter, bf16 rounding;
 *   backend_dnnl.h  oneDNN's convolution and its bf16 packed products;
 *   backend_int8.h  int8 packed products (per-channel weight scales, rows of
 *                   activations quantized at run time);
 *   linear_small.h  products of a few rows that stream the weights once;
 *   linear_bf16.h   bf16 products of more rows by our own kernel, its tiles
 *                   claimed by the threads at their measured speeds. */
#ifndef VQ_BACKEND_H
#define VQ_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "gemm.h"

/* The rows up to which a product takes the few-rows kernels (linear_small.h),
 * unless its exec says more (struct vq_exec, small_rows). */
#define VQ_SMALL_ROWS 24

/* The arithmetic of the products whose weights the backend packs (the
 * transformer's linear layers) and of its convolutions. */
enum vq_backend_precision {
    VQ_PREC_FP32 = 0,
    VQ_PREC_BF16 = 1,   /* bf16 inputs, fp32 sums: packed products and convolutions */
    VQ_PREC_INT8 = 2,   /* int8 packed products (exact int32 sums); convolutions,
                           attention and its cache as in VQ_PREC_BF16 */
};

/* What a packed product from bf16 input does with its result
 * (linear_packed_bf16_epi, ops.h vq_linear_bf16_gelu / vq_linear_bf16_add). */
enum vq_epilogue {
    VQ_EPI_GELU_BF16 = 1,   /* y (bf16) = gelu(x·Wᵀ + b), rounded to bf16          */
    VQ_EPI_ADD = 2,         /* y (fp32) += x·Wᵀ + b: the product (bias included)
                               rounded, then added: vq_linear and vq_add's bits */
    VQ_EPI_GELU = 3,        /* y (fp32) = gelu(x·Wᵀ + b): vq_linear's bits, then
                               the backend's GELU (linear_packed_epi only; int8:
                               vq_vgelu_poly)                                     */
};

struct vq_exec;
/* Weights packed for one backend: each backend's own struct begins with this
 * header (its precision and the shape of W[N][K]). */
struct vq_packed {
    int precision;                    /* enum vq_backend_precision           */
    int N, K;
};

struct vq_backend {
    const char *name;                 /* "onednn", "onednn-bf16", ...        */
    int kind;                         /* enum vq_backend_kind (the provider) */
    int precision;                    /* enum vq_backend_precision           */
    /* Row-major C[M×N] = op(A)[M×K] · op(B)[K×N] + beta·C (gemm.h). */
    void (*gemm)(const struct vq_exec *ex, int transA, int transB, int M, int N, int K, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc);
    /* Direct convolution (ops.h, vq_conv2d's contract); nonzero when not
     * handled: the caller then runs im2col and gemm. May be NULL. */
    int (*conv2d)(const struct vq_exec *ex, const float *in, int C, int H, int W, const float *weight,
                  const float *bias, int Cout, int k, int s, int pt, int pl, int pb, int pr, float *out);
    /* y[T×N] = x[T×K] · Wᵀ + b from the f32 weights W[N][K] for a few rows
     * (T <= vq_small_rows); nonzero (nothing done) when not handled. May be NULL. */
    int (*linear_small)(const struct vq_exec *ex, const float *x, int T, int K, const float *W, const float *b,
                        int N, float *y);
    /* Packs W[N][K] (torch Linear layout) for linear_packed; NULL when out of
     * memory or when the backend has no packed products (pack is then NULL). */
    struct vq_packed *(*pack)(const float *W, int N, int K);
    void (*pack_free)(struct vq_packed *p);
    /* y[T×N] = x[T×K] · Wᵀ + b through weights from pack (b may be NULL);
     * nonzero (nothing done) when it cannot: the caller falls back to W. */
    int (*linear_packed)(const struct vq_exec *ex, const struct vq_packed *p, const float *x, int T, const float *b,
                         float *y);
    /* The same product from x already rounded to bf16 (xb = vq_f32_to_bf16
     * of x): the same bits as linear_packed on x, without converting x again
     * (one conversion serves products that share an input). May be NULL. */
    int (*linear_packed_bf16)(const struct vq_exec *ex, const struct vq_packed *p, const uint16_t *xb, int T,
                              const float *b, float *y);
    /* The bf16-input product with an epilogue (enum vq_epilogue) fused into
     * it, for the calls where the backend has such a kernel; nonzero (nothing
     * done) for the others, which ops.c completes itself. May be NULL. */
    int (*linear_packed_bf16_epi)(const struct vq_exec *ex, const struct vq_packed *p, const uint16_t *xb, int T,
                                  const float *b, int epi, void *y);
    /* linear_packed with an epilogue, VQ_EPI_ADD or VQ_EPI_GELU, fused into
     * it: the bits of linear_packed followed by vq_add / the backend's GELU
     * (int8: vq_vgelu_poly); nonzero (nothing done) when it cannot. May be
     * NULL. */
    int (*linear_packed_epi)(const struct vq_exec *ex, const struct vq_packed *p, const float *x, int T,
                             const float *b, int epi, float *y);
    /* 1 when linear_packed through p takes a few-rows kernel, whose rows do
     * not depend on each other, for every call of up to vq_small_rows rows.
     * May be NULL (never). */
    int (*packed_small_any)(const struct vq_packed *p);
};

/* One call's execution: the model's backend and the threads the session
 * gives the call (at least 1). */
struct vq_exec {
    const struct vq_backend *be;
    int n_threads;
    /* 0, or the rows up to which products take the few-rows kernels
     * (linear_small.h) instead of VQ_SMALL_ROWS: a call whose rows are
     * several sequences of at most VQ_SMALL_ROWS rows each, batched
     * (vq_gpt_forward_batch), so that every row gets its own call's bits */
    int small_rows;
    /* 1: a stage call's working buffers come from and go back to the
     * process's kept set (scratch.h, session.h) */
    int keep;
};

/* The backend for a model loaded with precision (enum vqgan_precision):
 * fp32 for AUTO and FP32; bf16 where oneDNN runs bf16 natively, else fp32
 * (*downgraded set to 1); int8 where the CPU also has AVX512_VNNI, else
 * bf16 or fp32 (*downgraded set). downgraded may be NULL. */
const struct vq_backend *vq_backend_choose(int precision, int *downgraded);
/* A provider at a precision (tests, benches: the reference against the
 * others); NULL when not built or not runnable on this CPU. */
const struct vq_backend *vq_backend_get(int kind, int precision);
/* The fastest fp32 backend built: what a NULL exec means. */
const struct vq_backend *vq_backend_default(void);

/* An exec of backend be (NULL: vq_backend_default) with n threads (0: every
 * online core). */
struct vq_exec vq_exec_make(const struct vq_backend *be, int n_threads);
/* The exec a call runs with: ex itself, or for NULL the default backend on
 * every core. */
static inline struct vq_exec vq_exec_of(const struct vq_exec *ex)
{
    return ex ? *ex : vq_exec_make(NULL, 0);
}
/* Rows up to which ex's products take the few-rows kernels. */
static inline int vq_small_rows(const struct vq_exec *ex)
{
    return ex && ex->small_rows > 0 ? ex->small_rows : VQ_SMALL_ROWS;
}
/* Threads for a parallel region of a call (num_threads clause). */
static inline int vq_nt(const struct vq_exec *ex)
{
    return ex && ex->n_threads > 0 ? ex->n_threads : vq_threads_available();
}

/* Products through an exec (NULL: the default backend, every core). */
void vq_gemm(const struct vq_exec *ex, int transA, int transB, int M, int N, int K, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc);

/* Weights packed for backend be, or NULL when be packs nothing or out of
 * memory (*nomem set then). */
struct vq_packed *vq_backend_pack(const struct vq_backend *be, const float *W, int N, int K, int *nomem);
void vq_backend_pack_free(const struct vq_backend *be, struct vq_packed *p);

#endif
