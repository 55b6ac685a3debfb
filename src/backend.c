/* The backends (backend.h): one table of functions per provider and
 * precision, and the choice made when a model is loaded. */
#include <stddef.h>

#include "backend.h"
#include "backend_dnnl.h"
#include "backend_int8.h"
#include "linear_small.h"

/* ---- the entries, each a thin adapter to its provider -------------------------- */

#define GEMM_FN(NAME, KIND)                                                                              \
    static void NAME(const struct vq_exec *ex, int transA, int transB, int M, int N, int K, const float *A, \
                     int lda, const float *B, int ldb, float beta, float *C, int ldc)                      \
    {                                                                                                    \
        vq_gemm_run(KIND, vq_nt(ex), transA, transB, M, N, K, A, lda, B, ldb, beta, C, ldc);             \
    }
GEMM_FN(gemm_ref, VQ_BACKEND_REF)
GEMM_FN(gemm_blas, VQ_BACKEND_BLAS)
GEMM_FN(gemm_dnnl, VQ_BACKEND_DNNL)

static int conv_dnnl(const struct vq_exec *ex, const float *in, int C, int H, int W, const float *weight,
                     const float *bias, int Cout, int k, int s, int pt, int pl, int pb, int pr, float *out)
{
    return vq_dnnl_conv2d(vq_nt(ex), in, C, H, W, weight, bias, Cout, k, s, pt, pl, pb, pr, out, 0);
}

static int conv_dnnl_bf16(const struct vq_exec *ex, const float *in, int C, int H, int W, const float *weight,
                          const float *bias, int Cout, int k, int s, int pt, int pl, int pb, int pr, float *out)
{
    return vq_dnnl_conv2d(vq_nt(ex), in, C, H, W, weight, bias, Cout, k, s, pt, pl, pb, pr, out, 1);
}

static int small_f32(const struct vq_exec *ex, const float *x, int T, int K, const float *W, const float *b, int N,
                     float *y)
{
    return vq_linear_small(vq_nt(ex), x, T, K, W, b, N, y);
}

static int packed_bf16(const struct vq_exec *ex, const struct vq_packed *p, const float *x, int T, const float *b,
                       float *y)
{
    return vq_dnnl_linear_bf16(vq_nt(ex), vq_small_rows(ex), p, x, T, b, y);
}

static int packed_bf16_in(const struct vq_exec *ex, const struct vq_packed *p, const uint16_t *xb, int T,
                          const float *b, float *y)
{
    return vq_dnnl_linear_bf16_in(vq_nt(ex), vq_small_rows(ex), p, xb, T, b, y);
}

static int packed_bf16_epi(const struct vq_exec *ex, const struct vq_packed *p, const uint16_t *xb, int T,
                           const float *b, int epi, void *y)
{
    return vq_dnnl_linear_bf16_epi(vq_nt(ex), vq_small_rows(ex), p, xb, T, b, epi, y);
}

static int packed_int8(const struct vq_exec *ex, const struct vq_packed *p, const float *x, int T, const float *b,
                       float *y)
{
    return vq_int8_linear(vq_nt(ex), p, x, T, b, 0, y);
}

static int packed_int8_epi(const struct vq_exec *ex, const struct vq_packed *p, const float *x, int T,
                           const float *b, int epi, float *y)
{
    return vq_int8_linear(vq_nt(ex), p, x, T, b, epi, y);
}

static int int8_small_any(const struct vq_packed *p)
{
    (void)p;
    return 1;   /* backend_int8.c: one kernel for every row count */
}

/* ---- the tables ------------------------------------------------------------------ */

static const struct vq_backend ref_fp32 = {
    .name = "c-reference", .kind = VQ_BACKEND_REF, .precision = VQ_PREC_FP32, .gemm = gemm_ref,
};
static const struct vq_backend blas_fp32 = {
    .name = "openblas", .kind = VQ_BACKEND_BLAS, .precision = VQ_PREC_FP32, .gemm = gemm_blas,
    .linear_small = small_f32,
};
static const struct vq_backend dnnl_fp32 = {
    .name = "onednn", .kind = VQ_BACKEND_DNNL, .precision = VQ_PREC_FP32, .gemm = gemm_dnnl,
    .conv2d = conv_dnnl, .linear_small = small_f32,
};
/* bf16: the transformer's weights repacked once; products without packed
 * weights (the VQGAN's attention, the quantizer) stay fp32 */
static const struct vq_backend dnnl_bf16 = {
    .name = "onednn-bf16", .kind = VQ_BACKEND_DNNL, .precision = VQ_PREC_BF16, .gemm = gemm_dnnl,
    .conv2d = conv_dnnl_bf16, .linear_small = small_f32,
    .pack = vq_dnnl_pack_bf16, .pack_free = vq_dnnl_pack_free, .linear_packed = packed_bf16,
    .linear_packed_bf16 = packed_bf16_in, .linear_packed_bf16_epi = packed_bf16_epi,
    .packed_small_any = vq_dnnl_small_ok,
};

/* int8: the transformer's linear layers in int8 (backend_int8.h); the
 * convolutions, the attention and its cache as in bf16 */
static const struct vq_backend dnnl_int8 = {
    .name = "onednn-int8", .kind = VQ_BACKEND_DNNL, .precision = VQ_PREC_INT8, .gemm = gemm_dnnl,
    .conv2d = conv_dnnl_bf16, .linear_small = small_f32,
    .pack = vq_int8_pack, .pack_free = vq_int8_pack_free, .linear_packed = packed_int8,
    .linear_packed_epi = packed_int8_epi,
    .packed_small_any = int8_small_any,
};

const struct vq_backend *vq_backend_get(int kind, int precision)
{
    if (!vq_gemm_provider_built(kind))
        return NULL;
    switch (precision) {
    case VQ_PREC_FP32:
        return kind == VQ_BACKEND_REF ? &ref_fp32 : kind == VQ_BACKEND_BLAS ? &blas_fp32 : &dnnl_fp32;
    case VQ_PREC_BF16:
        return kind == VQ_BACKEND_DNNL && vq_dnnl_bf16_native() ? &dnnl_bf16 : NULL;
    case VQ_PREC_INT8:
        return kind == VQ_BACKEND_DNNL && vq_dnnl_bf16_native() && vq_int8_native() ? &dnnl_int8 : NULL;
    }
    return NULL;
}

const struct vq_backend *vq_backend_default(void)
{
    const struct vq_backend *be = vq_backend_get(VQ_BACKEND_DNNL, VQ_PREC_FP32);
    if (!be) be = vq_backend_get(VQ_BACKEND_BLAS, VQ_PREC_FP32);
    return be ? be : &ref_fp32;
}

/* enum vqgan_precision: 0 auto, 1 fp32, 2 bf16, 3 int8 (vqgan.h) */
const struct vq_backend *vq_backend_choose(int precision, int *downgraded)
{
    const struct vq_backend *be = NULL;
    if (precision == 3) be = vq_backend_get(VQ_BACKEND_DNNL, VQ_PREC_INT8);
    if (!be && precision >= 2) be = vq_backend_get(VQ_BACKEND_DNNL, VQ_PREC_BF16);
    if (downgraded) *downgraded = precision >= 2 && (!be || (precision == 3) != (be->precision == VQ_PREC_INT8));
    return be ? be : vq_backend_default();
}

struct vq_exec vq_exec_make(const struct vq_backend *be, int n_threads)
{
    return (struct vq_exec){ be ? be : vq_backend_default(), n_threads > 0 ? n_threads : vq_threads_available(), 0, 0 };
}

void vq_gemm(const struct vq_exec *ex, int transA, int transB, int M, int N, int K, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc)
{
    const struct vq_exec e = vq_exec_of(ex);
    e.be->gemm(&e, transA, transB, M, N, K, A, lda, B, ldb, beta, C, ldc);
}

struct vq_packed *vq_backend_pack(const struct vq_backend *be, const float *W, int N, int K, int *nomem)
{
    if (nomem) *nomem = 0;
    if (!be || !be->pack) return NULL;
    struct vq_packed *p = be->pack(W, N, K);
    if (!p && nomem) *nomem = 1;
    return p;
}

void vq_backend_pack_free(const struct vq_backend *be, struct vq_packed *p)
{
    if (be && be->pack_free && p) be->pack_free(p);
}
