/* Matrix-product providers (oneDNN's sgemm, OpenBLAS, the portable C loop)
 * and how a product is split over the threads.
 *
 * Threading: a product is split into column (or row) panels whose boundaries
 * depend only on the shape, never on the thread count, and the provider runs
 * single-threaded on each panel inside one OpenMP region of n_threads. Every
 * output element is therefore computed by the same instruction sequence
 * whatever the number of threads: results are bit-identical for 1..n threads. */
#ifndef VQ_GEMM_H
#define VQ_GEMM_H

#include <stddef.h>
#include <stdint.h>

enum vq_backend_kind {
    VQ_BACKEND_REF   = 0, /* portable C, the scalar reference             */
    VQ_BACKEND_BLAS  = 1, /* OpenBLAS cblas_sgemm                          */
    VQ_BACKEND_DNNL  = 2, /* oneDNN dnnl_sgemm                             */
};
const char *vq_backend_name(int kind);
/* 1 when provider kind is built in. */
int vq_gemm_provider_built(int kind);

/* Row-major C[M×N] = op(A)[M×K] · op(B)[K×N] + beta·C by provider kind on
 * n_threads threads. op(X) = X, or Xᵀ when trans is nonzero (lda/ldb are the
 * leading dims of the stored matrices). */
void vq_gemm_run(int kind, int n_threads, int transA, int transB, int M, int N, int K,
                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* The scalar reference product (same contract), for tests. */
void vq_gemm_ref(int transA, int transB, int M, int N, int K,
                 const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc);

/* Floating-point (or integer) operations (2·M·N·K) issued through the
 * products since start, process-wide; benchmarks read it to report GFLOPS. */
unsigned long long vq_gemm_flops(void);
void vq_flops_add(unsigned long long n);

/* The kernel set OpenBLAS chose for this CPU at load time ("Prescott" is its
 * generic fallback), or NULL without OpenBLAS. OpenBLAS is only the fallback
 * provider (docs/precision.md, "Backends"): oneDNN is used whenever built in. */
const char *vq_blas_corename(void);

/* Hot loops are compiled for several instruction sets and picked at run time
 * (GCC's ifunc clones; not under clang or the sanitizers, whose run-time is
 * not ready when the loader calls the resolvers). */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define VQ_HOT __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define VQ_HOT
#endif

/* Round to nearest even, as the CPU's own conversion does. */
void vq_f32_to_bf16(const float *x, uint16_t *y, size_t n);
/* The same on n_threads threads, in fixed chunks (the bits do not depend on
 * the threads). */
void vq_f32_to_bf16_par(int n_threads, const float *x, uint16_t *y, size_t n);
/* Columns (rows) per panel when a product of n columns (rows) is split over
 * the threads; from the shape alone, so results do not depend on threads. */
int vq_panel_size(int n);
/* The panels of a product of len columns (rows: rows nonzero): n of them,
 * panel t < n - 1 starting at t * size, the last at last (the one before it
 * ends there). Every row panel holds at least 64 rows unless n is 1. */
struct vq_panels {
    int n, size, last, len;
};
struct vq_panels vq_panels_of(int len, int rows);
/* Panel t of q: its first column (row) in *off, its width returned. */
int vq_panel_at(const struct vq_panels *q, int t, int *off);

/* For a parameter whose only use is a num_threads clause: builds without
 * OpenMP (the TSan and fuzzing builds, mk/hardening.mk) drop the clause. */
#ifdef _OPENMP
#define VQ_OMP_ONLY(x) ((void)0)
#else
#define VQ_OMP_ONLY(x) ((void)(x))
#endif

/* Online cores: what a thread count of 0 means. */
int vq_threads_available(void);

#endif
