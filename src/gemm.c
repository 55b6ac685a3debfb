/* Matrix-product providers: shape-determined panels, one OpenMP region of
 * the call's threads, a single-threaded provider call per panel (gemm.h). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <omp.h>
#include <pthread.h>

#include "bf16.h"
#include "gemm.h"

#ifdef VQ_HAVE_DNNL
#include <dnnl.h>
#endif
#ifdef VQ_HAVE_OPENBLAS
#include <cblas.h>
void openblas_set_num_threads(int);
char *openblas_get_corename(void);
#endif

#ifdef VQ_HAVE_OPENBLAS
/* OpenBLAS's own threads would split a panel's sums by their count. */
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_init(void) { openblas_set_num_threads(1); }
static void blas_single_thread(void) { pthread_once(&blas_once, blas_init); }
#endif

const char *vq_blas_corename(void)
{
#ifdef VQ_HAVE_OPENBLAS
    const char *c = openblas_get_corename();
    return c ? c : "unknown";
#else
    return NULL;
#endif
}

const char *vq_backend_name(int kind)
{
    switch (kind) {
    case VQ_BACKEND_REF:  return "c-reference";
    case VQ_BACKEND_BLAS: return "openblas";
    case VQ_BACKEND_DNNL: return "onednn";
    }
    return "unknown";
}

int vq_gemm_provider_built(int kind)
{
    switch (kind) {
    case VQ_BACKEND_REF: return 1;
#ifdef VQ_HAVE_OPENBLAS
    case VQ_BACKEND_BLAS: return 1;
#endif
#ifdef VQ_HAVE_DNNL
    case VQ_BACKEND_DNNL: return 1;
#endif
    default: return 0;
    }
}

int vq_threads_available(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* vq_bf16_round (bf16.h): nearest even, NaN kept; the integer form
 * vectorizes (VQ_HOT clones). */
VQ_HOT
void vq_f32_to_bf16(const float *x, uint16_t *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = vq_bf16_round(x[i]);
}

void vq_f32_to_bf16_par(int n_threads, const float *x, uint16_t *y, size_t n)
{
    const size_t chunk = 1 << 14;
#pragma omp parallel for schedule(static) if (n >= 2 * chunk) num_threads(n_threads > 0 ? n_threads : 1)
    for (size_t i = 0; i < n; i += chunk)
        vq_f32_to_bf16(x + i, y + i, n - i < chunk ? n - i : chunk);
}

void vq_gemm_ref(int transA, int transB, int M, int N, int K,
                 const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float acc = 0.0f;
            for (int k = 0; k < K; k++) {
                float a = transA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = transB ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                acc += a * b;
            }
            float *c = &C[(size_t)i * ldc + j];
            *c = beta == 0.0f ? acc : acc + beta * *c;
        }
}

#ifndef DNNL_SPLIT_STEP
#define DNNL_SPLIT_STEP 15
#endif
#ifndef DNNL_SPLIT_ROWS
#define DNNL_SPLIT_ROWS 64
#endif

/* One panel through the provider, on the calling thread's OpenMP setting. */
static void provider_panel(int kind, int transA, int transB, int M, int N, int K, const float *A, int lda,
                           const float *B, int ldb, float beta, float *C, int ldc)
{
    switch (kind) {
#ifdef VQ_HAVE_DNNL
    case VQ_BACKEND_DNNL:
        /* oneDNN's sgemm with a transposed B (every linear layer: weights are
         * [out][in]) packs B first once M reaches 16 rows, which costs several
         * times the product when B is streamed from memory and M is small
         * (the sampler's chunks of w = 16 positions): below DNNL_SPLIT_ROWS
         * rows, run it as calls of at most DNNL_SPLIT_STEP = 15 rows (balanced),
         * which stream B directly (4x faster at 16 rows on 2 cores of a Zen 4).
         * The split depends on the shape only. */
        if (transB && !transA && M >= 16 && M < DNNL_SPLIT_ROWS) {
            const int parts = (M + DNNL_SPLIT_STEP - 1) / DNNL_SPLIT_STEP;
            for (int q = 0, m0 = 0; q < parts; q++) {
                const int mm = (M - m0) / (parts - q);
                const float *Aq = A + (size_t)m0 * lda;
                float *Cq = C + (size_t)m0 * ldc;
                if (dnnl_sgemm('N', 'T', mm, N, K, 1.0f, Aq, lda, B, ldb, beta, Cq, ldc) != dnnl_success)
                    vq_gemm_ref(0, 1, mm, N, K, Aq, lda, B, ldb, beta, Cq, ldc);
                m0 += mm;
            }
            return;
        } else if (dnnl_sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', M, N, K, 1.0f, A, lda,
                              B, ldb, beta, C, ldc) == dnnl_success) {
            return;
        }
        break;
#endif
#ifdef VQ_HAVE_OPENBLAS
    case VQ_BACKEND_BLAS:
        blas_single_thread();
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb,
                    beta, C, ldc);
        return;
#endif
    default:
        break;
    }
    vq_gemm_ref(transA, transB, M, N, K, A, lda, B, ldb, beta, C, ldc);
}

/* One panel, single-threaded: the provider must not split the product
 * itself, since its own threading may reorder the K sum with the thread
 * count. Inside a parallel region of one thread (num_threads(1)) OpenMP
 * still offers the provider every core, and on an AVX2 CPU (a Zen 3)
 * oneDNN's sgemm then gave other bits than on one thread: the first stage's
 * attention, and with it the pictures, changed with the session's thread
 * count. One thread for the provider call, the calling thread's setting
 * restored after it. */
static void gemm_panel(int kind, int transA, int transB, int M, int N, int K,
                       const float *A, int lda, const float *B, int ldb,
                       float beta, float *C, int ldc)
{
    const int saved = omp_get_max_threads();
    if (saved != 1) omp_set_num_threads(1);
    provider_panel(kind, transA, transB, M, N, K, A, lda, B, ldb, beta, C, ldc);
    if (saved != 1) omp_set_num_threads(saved);
}

/* Panel size from the shape alone: about 16 panels on big products, at
 * least two on small ones, 64 to 256 columns (rows) wide at the least.
 * Narrow panels repack the whole other operand once each: at 64 columns a
 * 512x1024x1024 product ran at 80% of its 256-column speed (fp32, 2 cores of
 * a Zen 4), 65% at 136 rows; but one panel leaves a core idle. */
static int round64(int n) { return (n + 63) & ~63; }
int vq_panel_size(int n)
{
    int p = round64((n + 15) / 16), half = round64((n + 1) / 2);
    const int floor = half < 256 ? half : 256;
    if (p < floor) p = floor;
    return p < 64 ? 64 : p;
}

/* Row panels hold at least DNNL_SPLIT_ROWS rows, so that every row goes
 * through the kernel its whole call would use (oneDNN's rows do not depend
 * on the rows beside them from 64 on; gpt.h, vq_gpt_rows_independent). A
 * last panel of fewer rows shares the rows of the one before it evenly when
 * both then hold enough, else joins it: 150 rows were one panel of 128 and
 * one of 22, joined into a single one on one thread, and are now two of 75
 * (the projections of a small model's feeds: 1.7-1.8x faster on 2 cores of a
 * Zen 3). Columns split anywhere. */
struct vq_panels vq_panels_of(int len, int rows)
{
    struct vq_panels q = { .size = vq_panel_size(len), .len = len };
    q.n = (len + q.size - 1) / q.size;
    q.last = (q.n - 1) * q.size;
    const int tail = len - q.last;
    if (rows && q.n > 1 && tail < DNNL_SPLIT_ROWS) {
        if (q.size + tail >= 2 * DNNL_SPLIT_ROWS) {
            q.last -= (q.size - tail) / 2;
        } else {
            q.n--;
            q.last -= q.size;
        }
    }
    return q;
}

int vq_panel_at(const struct vq_panels *q, int t, int *off)
{
    *off = t == q->n - 1 ? q->last : t * q->size;
    return (t == q->n - 1 ? q->len : t == q->n - 2 ? q->last : *off + q->size) - *off;
}

static unsigned long long gemm_flops;
unsigned long long vq_gemm_flops(void) { return __atomic_load_n(&gemm_flops, __ATOMIC_RELAXED); }
void vq_flops_add(unsigned long long n) { __atomic_add_fetch(&gemm_flops, n, __ATOMIC_RELAXED); }

void vq_gemm_run(int kind, int n_threads, int transA, int transB, int M, int N, int K,
                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    VQ_OMP_ONLY(n_threads);
    if (M <= 0 || N <= 0)
        return;
    __atomic_add_fetch(&gemm_flops, 2ull * M * N * (K > 0 ? K : 0), __ATOMIC_RELAXED);
    if (K <= 0) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
        return;
    }
    const int split_n = N >= M;
    const int len = split_n ? N : M;
    const struct vq_panels q = vq_panels_of(len, !split_n);
    if (q.n == 1 || (int64_t)M * N * K < (1 << 18)) {
        gemm_panel(kind, transA, transB, M, N, K, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_threads > 0 ? n_threads : 1)
    for (int t = 0; t < q.n; t++) {
        int off;
        const int n = vq_panel_at(&q, t, &off);
        if (split_n) {
            const float *Bp = transB ? B + (size_t)off * ldb : B + off;
            gemm_panel(kind, transA, transB, M, n, K, A, lda, Bp, ldb, beta, C + off, ldc);
        } else {
            const float *Ap = transA ? A + off : A + (size_t)off * lda;
            gemm_panel(kind, transA, transB, n, N, K, Ap, lda, B, ldb, beta,
                       C + (size_t)off * ldc, ldc);
        }
    }
}
