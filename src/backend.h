/* Matrix-product provider. Every convolution and linear layer goes through
 * vq_gemm, so the provider (oneDNN, OpenBLAS, the portable C loop) can change
 * without touching the layers.
 *
 * Threading: vq_gemm splits the output into column (or row) panels whose
 * boundaries depend only on the shape, never on the thread count, and runs
 * the provider single-threaded on each panel inside one OpenMP region. Every
 * output element is therefore computed by the same instruction sequence
 * whatever the number of threads: results are bit-identical for 1..n threads.
 */
#ifndef VQ_BACKEND_H
#define VQ_BACKEND_H

#include <stddef.h>
#include <stdint.h>

enum vq_backend_kind {
    VQ_BACKEND_REF   = 0, /* portable C, the scalar reference             */
    VQ_BACKEND_BLAS  = 1, /* OpenBLAS cblas_sgemm                          */
    VQ_BACKEND_DNNL  = 2, /* oneDNN dnnl_sgemm                             */
};

/* Row-major C[M×N] = op(A)[M×K] · op(B)[K×N] + beta·C.
 * op(X) = X, or Xᵀ when trans is nonzero (lda/ldb are the leading dims of the
 * stored matrices). */
void vq_gemm(int transA, int transB, int M, int N, int K,
             const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc);

/* The scalar reference product (same contract), for tests. */
void vq_gemm_ref(int transA, int transB, int M, int N, int K,
                 const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc);

/* Floating-point operations (2·M·N·K) issued through vq_gemm since start,
 * process-wide; benchmarks read it to report GFLOPS. */
unsigned long long vq_gemm_flops(void);
void vq_flops_add(unsigned long long n);

/* Select the provider (tests, benchmarks). Returns 0, or -1 when the kind is
 * not available in this build. Default: the fastest available. */
int vq_backend_select(int kind);
int vq_backend_current(void);
const char *vq_backend_name(int kind);
/* The kernel set OpenBLAS chose for this CPU at load time ("Prescott" is its
 * generic fallback), or NULL without OpenBLAS. OpenBLAS is only the fallback
 * provider (docs/precision.md, "Backends"): oneDNN is used whenever built in. */
const char *vq_blas_corename(void);

/* Arithmetic for the calling thread's next products and convolutions:
 * 0 fp32, 1 bf16 inputs with fp32 accumulation (where the CPU has native
 * bf16; fp32 otherwise). Set from the model's precision by each session call. */
void vq_backend_set_bf16(int on);
int  vq_backend_bf16(void);

/* oneDNN direct convolution (backend_dnnl.c); nonzero when unavailable. */
int vq_dnnl_conv2d(const float *in, int C, int H, int W, const float *weight, const float *bias,
                   int Cout, int k, int s, int pt, int pl, int pb, int pr, float *out, int bf16);
int vq_dnnl_bf16_native(void);
/* Hot loops are compiled for several instruction sets and picked at run time
 * (GCC's ifunc clones; not under clang or the sanitizers, whose run-time is
 * not ready when the loader calls the resolvers). */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define VQ_HOT __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define VQ_HOT
#endif

void vq_f32_to_bf16(const float *x, uint16_t *y, size_t n);
/* Columns (rows) per panel when a product of n columns (rows) is split over
 * the threads; from the shape alone, so results do not depend on threads. */
int vq_panel_size(int n);

/* A weight matrix W[N][K] (torch Linear layout) in bf16, repacked once per
 * column panel into oneDNN's preferred layout (backend_dnnl.c); NULL when
 * out of memory or without native bf16. */
struct vq_bf16_weight;
struct vq_bf16_weight *vq_dnnl_pack_bf16(const float *W, int N, int K);
void vq_dnnl_pack_free(struct vq_bf16_weight *w);
/* y[T×N] = x[T×K] · Wᵀ + b: x converted to bf16 once, fp32 accumulation and
 * output, panels over the threads; nonzero when unavailable. */
int vq_linear_bf16(const float *x, int T, int K, const struct vq_bf16_weight *W, const float *b, int N, float *y);

/* y[T×N] = x[T×K] · Wᵀ + b (b may be NULL) for T <= VQ_SMALL_ROWS, streaming
 * W once (linear_small.c): the sampler's small chunks. Each element's sum is
 * in a fixed order, independent of T and of the threads. Nonzero (nothing
 * done) without AVX2+FMA or beyond VQ_SMALL_ROWS rows. */
#define VQ_SMALL_ROWS 24
int vq_linear_small(const float *x, int T, int K, const float *W, const float *b, int N, float *y);
/* The same in bf16 (fp32 accumulation, vdpbf16ps) from weights repacked as
 * N/64 blocks of 64 columns one after the other, each [K/2][64][2] (k pairs;
 * oneDNN's 16a64b2a blocking). Nonzero (nothing done) without AVX512_BF16 or
 * for other shapes. */
int vq_linear_small_bf16(const uint16_t *xb, int T, int K, const uint16_t *blocks, const float *b, int N,
                         float *y);

/* Tests: caps the instruction set of the two above (0 off, 1 AVX2+FMA, 2
 * AVX-512, 3 AVX-512 with bf16; -1 whatever the CPU has, the default). */
void vq_linear_small_force(int level);

/* Weights repacked once at load for the bf16 path, found again by their f32
 * address: layers keep passing f32 pointers and stay precision-agnostic. */
int  vq_packed_register(const float *w, int N, int K);   /* 0 or VQGAN_ERR_NOMEM */
void vq_packed_unregister(const float *w);
const struct vq_bf16_weight *vq_packed_bf16(const float *w);

/* Threads for the calling thread's next parallel regions (0: all cores). */
void vq_threads_set(int n);
int  vq_threads_get(void);
int  vq_threads_available(void);

#endif
