/* Layers shared by the VQGAN stages and the transformer. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_int8.h"
#include "error.h"
#include "linear_small.h"
#include "ops.h"
#include "vmath.h"
#include "vqgan.h"

/* Rows of the im2col matrix are kept under this many bytes per band. */
#define VQ_IM2COL_BAND_BYTES ((size_t)32 << 20)

/* col[(c·k + ky)·k + kx][y·Wo + x] = in[c][y·s + ky - pad_t][x·s + kx - pad_l] for
 * output rows y0..y0+rows-1, zero outside the image. */
static void im2col(const struct vq_exec *ex, const float *in, int C, int H, int W, int k, int s, int pad_t, int pad_l,
                   int y0, int rows, int Wo, float *col)
{
    VQ_OMP_ONLY(ex);
    const int n = rows * Wo;
#pragma omp parallel for schedule(static) num_threads(vq_nt(ex))
    for (int r = 0; r < C * k * k; r++) {
        const int c = r / (k * k), ky = (r / k) % k, kx = r % k;
        float *dst = col + (size_t)r * n;
        const float *src = in + (size_t)c * H * W;
        for (int y = 0; y < rows; y++) {
            const int iy = (y0 + y) * s + ky - pad_t;
            float *d = dst + (size_t)y * Wo;
            if (iy < 0 || iy >= H) {
                memset(d, 0, sizeof(float) * Wo);
                continue;
            }
            const float *srow = src + (size_t)iy * W;
            for (int x = 0; x < Wo; x++) {
                const int ix = x * s + kx - pad_l;
                d[x] = (ix >= 0 && ix < W) ? srow[ix] : 0.0f;
            }
        }
    }
}

int vq_conv2d(const struct vq_exec *ex, const float *in, int C, int H, int W,
              const float *weight, const float *bias, int Cout, int k, int s,
              int pad_t, int pad_l, int pad_b, int pad_r, float *out)
{
    const int Ho = (H + pad_t + pad_b - k) / s + 1;
    const int Wo = (W + pad_l + pad_r - k) / s + 1;
    const int K = C * k * k;
    const size_t HWo = (size_t)Ho * Wo;

    const struct vq_exec e = vq_exec_of(ex);
    ex = &e;
    if (e.be->conv2d && !e.be->conv2d(ex, in, C, H, W, weight, bias, Cout, k, s, pad_t, pad_l, pad_b, pad_r, out)) {
        vq_flops_add(2ull * Cout * HWo * K);
        return 0;
    }
    if (k == 1 && s == 1 && !pad_t && !pad_l && !pad_b && !pad_r) {
        vq_gemm(ex, 0, 0, Cout, (int)HWo, C, weight, C, in, (int)HWo, 0.0f, out, (int)HWo);
    } else {
        size_t row_bytes = (size_t)K * Wo * sizeof(float);
        int band = (int)(VQ_IM2COL_BAND_BYTES / (row_bytes ? row_bytes : 1));
        if (band < 1) band = 1;
        if (band > Ho) band = Ho;
        float *col = malloc((size_t)band * row_bytes);
        if (!col)
            return vq_error(VQGAN_ERR_NOMEM, "out of memory for the convolution's im2col buffer "
                            "(%zu bytes; %d -> %d channels, %dx%d kernel, %dx%d output)",
                            (size_t)band * row_bytes, C, Cout, k, k, Wo, Ho);
        for (int y0 = 0; y0 < Ho; y0 += band) {
            const int rows = Ho - y0 < band ? Ho - y0 : band;
            const int n = rows * Wo;
            im2col(ex, in, C, H, W, k, s, pad_t, pad_l, y0, rows, Wo, col);
            vq_gemm(ex, 0, 0, Cout, n, K, weight, K, col, n, 0.0f, out + (size_t)y0 * Wo, (int)HWo);
        }
        free(col);
    }
    if (bias) {
#pragma omp parallel for schedule(static) num_threads(vq_nt(ex))
        for (int c = 0; c < Cout; c++) {
            float *o = out + (size_t)c * HWo;
            for (size_t i = 0; i < HWo; i++)
                o[i] += bias[c];
        }
    }
    return 0;
}

/* e^x for swish: 2^k · p(r), r = x - k·ln2 in [-ln2/2, ln2/2], degree-6
 * polynomial; within 2 ulp of expf on the clamped range, and vectorisable. */
static inline float exp_approx(float x)
{
    /* written so that NaN fails the first test and becomes -87 (maxss /
     * minss semantics, still vectorised): k below is then always in
     * -126..127 and the conversion and shift are defined */
    x = x > -87.0f ? x : -87.0f;
    x = x < 88.0f ? x : 88.0f;
    /* nearest integer by the 1.5·2^23 trick (|x·log2 e| < 2^22 here): unlike
     * roundf, which is a library call, it vectorises */
    const float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const float r = (x - k * 0.693145751953125f) - k * 1.428606765330187e-06f;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union { uint32_t i; float f; } s = { .i = (uint32_t)((int32_t)k + 127) << 23 };
    return p * s.f;
}

/* A group's mean and variance: float partial sums in GS_LANES lanes over
 * runs of GS_RUN elements (lane j takes elements j, j + GS_LANES, ...; the
 * lanes are independent chains, so the loop vectorises and keeps several
 * additions in flight), each run's lanes added in a fixed tree, and the
 * runs summed in double: the accuracy of a double sum, in an order that does
 * not depend on the instruction set the clone was built for. */
#define GS_LANES 64
#define GS_RUN 1024

/* One run's sum in GS_LANES lanes added in a fixed tree: of the values
 * (sq 0), or of their squared distances to mu (sq 1; a constant where it is
 * inlined, so the loop has no branch). */
static inline __attribute__((always_inline)) float run_sum(const float *r, size_t m, float mu, const int sq)
{
    float a[GS_LANES];
    for (int j = 0; j < GS_LANES; j++) a[j] = 0.0f;
    size_t i = 0;
    for (; i + GS_LANES <= m; i += GS_LANES)
        for (int j = 0; j < GS_LANES; j++) {
            const float d = r[i + j] - mu;
            a[j] += sq ? d * d : r[i + j];
        }
    for (int j = 0; i + j < m; j++) {
        const float d = r[i + j] - mu;
        a[j] += sq ? d * d : r[i + j];
    }
    for (int w = GS_LANES / 2; w > 0; w /= 2)
        for (int j = 0; j < w; j++)
            a[j] += a[j + w];
    return a[0];
}

VQ_HOT static void group_stats(const float *x, size_t n, double *mean, double *var)
{
    double sum = 0.0, sq = 0.0;
    for (size_t i0 = 0; i0 < n; i0 += GS_RUN)
        sum += run_sum(x + i0, n - i0 < GS_RUN ? n - i0 : GS_RUN, 0.0f, 0);
    const double mu = sum / (double)n;
    for (size_t i0 = 0; i0 < n; i0 += GS_RUN)
        sq += run_sum(x + i0, n - i0 < GS_RUN ? n - i0 : GS_RUN, (float)mu, 1);
    *mean = mu;
    *var = sq / (double)n;
}

VQ_HOT static void scale_shift(const float *x, float *y, int n, float m, float a, float b, int swish)
{
    if (swish) {
        for (int i = 0; i < n; i++) {
            const float t = (x[i] - m) * a + b;
            y[i] = t / (1.0f + exp_approx(-t));
        }
    } else {
        for (int i = 0; i < n; i++)
            y[i] = (x[i] - m) * a + b;
    }
}

static void group_norm(const struct vq_exec *ex, const float *x, int C, int HW, int G, float eps,
                       const float *gamma, const float *beta, float *y, int swish)
{
    VQ_OMP_ONLY(ex);
    const int cpg = C / G;
#pragma omp parallel for schedule(static) num_threads(vq_nt(ex))
    for (int g = 0; g < G; g++) {
        double mean, var;
        group_stats(x + (size_t)g * cpg * HW, (size_t)cpg * HW, &mean, &var);
        const float inv = (float)(1.0 / sqrt(var + eps));
        for (int c = g * cpg; c < (g + 1) * cpg; c++)
            scale_shift(x + (size_t)c * HW, y + (size_t)c * HW, HW, (float)mean, inv * gamma[c], beta[c], swish);
    }
}

void vq_group_norm(const struct vq_exec *ex, const float *x, int C, int HW, int G, float eps,
                   const float *gamma, const float *beta, float *y)
{
    group_norm(ex, x, C, HW, G, eps, gamma, beta, y, 0);
}

void vq_group_norm_swish(const struct vq_exec *ex, const float *x, int C, int HW, int G, float eps,
                         const float *gamma, const float *beta, float *y)
{
    group_norm(ex, x, C, HW, G, eps, gamma, beta, y, 1);
}

VQ_HOT static void swish_run(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] / (1.0f + exp_approx(-x[i]));
}

void vq_swish(const struct vq_exec *ex, float *x, size_t n)
{
    VQ_OMP_ONLY(ex);
#pragma omp parallel for schedule(static) num_threads(vq_nt(ex))
    for (size_t i0 = 0; i0 < n; i0 += 4096)
        swish_run(x + i0, n - i0 < 4096 ? n - i0 : 4096);
}

void vq_upsample2x(const struct vq_exec *ex, const float *x, int C, int H, int W, float *y)
{
    VQ_OMP_ONLY(ex);
#pragma omp parallel for schedule(static) num_threads(vq_nt(ex))
    for (int c = 0; c < C; c++)
        for (int yy = 0; yy < 2 * H; yy++) {
            const float *src = x + ((size_t)c * H + yy / 2) * W;
            float *dst = y + ((size_t)c * 2 * H + yy) * 2 * W;
            for (int xx = 0; xx < W; xx++)
                dst[2 * xx] = dst[2 * xx + 1] = src[xx];
        }
}

void vq_add(const struct vq_exec *ex, float *y, const float *x, size_t n)
{
    VQ_OMP_ONLY(ex);
#pragma omp parallel for schedule(static) num_threads(vq_nt(ex))
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

/* One row of layer norm into y (fp32) or, with y NULL, yb (bf16). */
static void layer_norm_row(const float *x, int D, const float *gamma, const float *beta, float eps, float *y,
                           uint16_t *yb)
{
    if (vq_vlayer_norm(x, D, gamma, beta, eps, y, yb)) return;
    double sum = 0.0, sq = 0.0;
    for (int i = 0; i < D; i++)
        sum += x[i];
    const double mean = sum / D;
    for (int i = 0; i < D; i++) {
        double d = x[i] - mean;
        sq += d * d;
    }
    const float inv = (float)(1.0 / sqrt(sq / D + eps));
    const float m = (float)mean;
    for (int i = 0; i < D; i++) {
        const float v = (x[i] - m) * inv * gamma[i] + beta[i];
        if (y) y[i] = v;
        else vq_f32_to_bf16(&v, yb + i, 1);
    }
}

/* Rows of layer norm into y (fp32) or, with y NULL, yb (bf16). */
static void layer_norm_rows(const struct vq_exec *ex, const float *x, int T, int D, const float *gamma,
                            const float *beta, float eps, float *y, uint16_t *yb)
{
    VQ_OMP_ONLY(ex);
#pragma omp parallel for schedule(static) if (T > 1) num_threads(vq_nt(ex))
    for (int t = 0; t < T; t++)
        layer_norm_row(x + (size_t)t * D, D, gamma, beta, eps, y ? y + (size_t)t * D : NULL,
                       y ? NULL : yb + (size_t)t * D);
}

void vq_layer_norm(const struct vq_exec *ex, const float *x, int T, int D, const float *gamma, const float *beta,
                   float eps, float *y)
{
    layer_norm_rows(ex, x, T, D, gamma, beta, eps, y, NULL);
}

void vq_layer_norm_bf16(const struct vq_exec *ex, const float *x, int T, int D, const float *gamma,
                        const float *beta, float eps, uint16_t *yb)
{
    layer_norm_rows(ex, x, T, D, gamma, beta, eps, NULL, yb);
}

int vq_layer_norm_int8(const struct vq_exec *ex, const float *x, int T, int D, const float *gamma,
                       const float *beta, float eps, const struct vq_packed *pk, struct vq_int8_rows *r)
{
    if (!vq_linear_int8_input(ex, pk) || pk->K != D)
        return vq_error(VQGAN_ERR_INVALID, "layer norm into int8 rows: the weights are not int8 products of %d", D);
    if (vq_int8_rows_alloc(pk, T, r))
        return vq_error(VQGAN_ERR_NOMEM, "layer norm of %d rows into int8: out of memory", T);
    int nomem = 0;
    VQ_OMP_ONLY(ex);
#pragma omp parallel if (T > 1) num_threads(vq_nt(ex)) reduction(| : nomem)
    {
        float *row = malloc(sizeof(float) * (size_t)D);   /* the row in fp32, in L1 */
        nomem = !row;
#pragma omp for schedule(static)
        for (int t = 0; t < T; t++) {
            if (!row) continue;
            layer_norm_row(x + (size_t)t * D, D, gamma, beta, eps, row, NULL);
            vq_int8_rows_set(r, t, row);
        }
        free(row);
    }
    if (nomem) {
        vq_int8_rows_free(r);
        return vq_error(VQGAN_ERR_NOMEM, "layer norm of %d rows into int8: out of memory", T);
    }
    return 0;
}

int vq_linear_int8_input(const struct vq_exec *ex, const struct vq_packed *pk)
{
    (void)ex;   /* int8 packings come from the int8 backend only */
    return pk && pk->precision == VQ_PREC_INT8;
}

int vq_linear_int8(const struct vq_exec *ex, const struct vq_int8_rows *r, int r0, int T, const struct vq_packed *pk,
                   const float *b, int epi, float *y)
{
    if (!vq_linear_int8_input(ex, pk) || !r || pk->K != r->K)
        return vq_error(VQGAN_ERR_INVALID, "int8 product: the weights are not int8 products of the rows' %d inputs",
                        r ? r->K : 0);
    if (vq_int8_linear_rows(vq_nt(ex), pk, r, r0, T, b, epi, y))
        return vq_error(VQGAN_ERR_INVALID, "int8 product of rows %d .. %d of %d quantized rows (epilogue %d)", r0,
                        r0 + T - 1, r->T, epi);
    return 0;
}

void vq_linear(const struct vq_exec *ex, const float *x, int T, int Din, const float *W, const struct vq_packed *pk,
               const float *b, int Dout, float *y)
{
    const struct vq_exec e = vq_exec_of(ex);
    const struct vq_backend *be = e.be;
    ex = &e;
    /* weights packed for this backend (held by the model), else the f32
     * weights: a few rows streamed, more through the product */
    if (pk && be->linear_packed && !be->linear_packed(ex, pk, x, T, b, y))
        return;
    if (!pk && T <= vq_small_rows(ex) && be->linear_small && !be->linear_small(ex, x, T, Din, W, b, Dout, y))
        return;
    vq_gemm(ex, 0, 1, T, Dout, Din, x, Din, W, Din, 0.0f, y, Dout);
    if (b) {
#pragma omp parallel for schedule(static) if (T > 1) num_threads(vq_nt(ex))
        for (int t = 0; t < T; t++)
            for (int i = 0; i < Dout; i++)
                y[(size_t)t * Dout + i] += b[i];
    }
}

int vq_linear_small_any(const struct vq_exec *ex, const struct vq_packed *pk)
{
    const struct vq_exec e = vq_exec_of(ex);
    if (!pk)
        return e.be->linear_small && vq_linear_small_ready(0);
    return e.be->linear_packed && e.be->packed_small_any && e.be->packed_small_any(pk);
}

int vq_linear_bf16_input(const struct vq_exec *ex, const struct vq_packed *pk)
{
    const struct vq_exec e = vq_exec_of(ex);
    return pk && e.be->linear_packed_bf16 && pk->precision == VQ_PREC_BF16;
}

/* The backend's fused product and epilogue, when it has one for pk. */
static int linear_epi(const struct vq_exec *ex, const float *x, int T, const struct vq_packed *pk, const float *b,
                      int epi, float *y)
{
    const struct vq_exec e = vq_exec_of(ex);
    return pk && e.be->linear_packed_epi &&
           !e.be->linear_packed_epi(&e, pk, x, T, b, epi, y);
}

void vq_linear_add(const struct vq_exec *ex, const float *x, int T, int Din, const float *W,
                   const struct vq_packed *pk, const float *b, int Dout, float *tmp, float *y)
{
    if (linear_epi(ex, x, T, pk, b, VQ_EPI_ADD, y)) return;
    vq_linear(ex, x, T, Din, W, pk, b, Dout, tmp);
    vq_add(ex, y, tmp, (size_t)T * Dout);
}

void vq_linear_gelu(const struct vq_exec *ex, const float *x, int T, int Din, const float *W,
                    const struct vq_packed *pk, const float *b, int Dout, float *y)
{
    if (linear_epi(ex, x, T, pk, b, VQ_EPI_GELU, y)) return;
    vq_linear(ex, x, T, Din, W, pk, b, Dout, y);
    vq_gelu(ex, y, (size_t)T * Dout);
}

int vq_linear_bf16(const struct vq_exec *ex, const uint16_t *xb, int T, const struct vq_packed *pk, const float *b,
                   float *y)
{
    const struct vq_exec e = vq_exec_of(ex);
    if (!vq_linear_bf16_input(&e, pk)) return -1;
    return e.be->linear_packed_bf16(&e, pk, xb, T, b, y);
}

/* gelu (vq_vgelu or vq_vgelu_poly) over x[0 .. n) in fixed blocks of 4096,
 * shared by the threads: the split does not depend on the thread count. */
static void gelu_blocks(const struct vq_exec *ex, float *x, size_t n, void (*gelu)(float *, size_t))
{
    const size_t block = 4096;
#pragma omp parallel for schedule(static) if (n > block) num_threads(vq_nt(ex))
    for (size_t i = 0; i < n; i += block)
        gelu(x + i, n - i < block ? n - i : block);
}

/* The product with its epilogue fused by the backend, or else the product
 * into a buffer and the epilogue here. */
static int linear_bf16_epi(const struct vq_exec *ex, const uint16_t *xb, int T, const struct vq_packed *pk,
                           const float *b, int epi, void *y)
{
    const struct vq_exec e = vq_exec_of(ex);
    if (!vq_linear_bf16_input(&e, pk))
        return vq_error(VQGAN_ERR_INVALID, "product from bf16 input: the backend takes none for these weights");
    if (e.be->linear_packed_bf16_epi && !e.be->linear_packed_bf16_epi(&e, pk, xb, T, b, epi, y)) return 0;
    const size_t n = (size_t)T * pk->N;
    float *t = malloc(sizeof(float) * n);
    if (!t || e.be->linear_packed_bf16(&e, pk, xb, T, b, t)) {
        free(t);
        return vq_error(VQGAN_ERR_NOMEM, "product of %d rows, %d -> %d: out of memory", T, pk->K, pk->N);
    }
    if (epi == VQ_EPI_GELU_BF16) {
        /* the GELU of the bf16 kernels' epilogue (linear_bf16.h), so that a
         * row's bits do not depend on which path computed it */
        gelu_blocks(&e, t, n, vq_vgelu_poly);
        vq_f32_to_bf16_par(vq_nt(&e), t, y, n);
    } else {
        vq_add(&e, y, t, n);
    }
    free(t);
    return 0;
}

int vq_linear_bf16_gelu(const struct vq_exec *ex, const uint16_t *xb, int T, const struct vq_packed *pk,
                        const float *b, uint16_t *yb)
{
    return linear_bf16_epi(ex, xb, T, pk, b, VQ_EPI_GELU_BF16, yb);
}

int vq_linear_bf16_add(const struct vq_exec *ex, const uint16_t *xb, int T, const struct vq_packed *pk,
                       const float *b, float *y)
{
    return linear_bf16_epi(ex, xb, T, pk, b, VQ_EPI_ADD, y);
}

void vq_gelu(const struct vq_exec *ex, float *x, size_t n)
{
    VQ_OMP_ONLY(ex);
    gelu_blocks(ex, x, n, vq_vgelu);
}

void vq_softmax(float *x, int n)
{
    const float inv = (float)(1.0 / vq_vexp_sum(x, n, vq_vmax(x, n)));
    for (int i = 0; i < n; i++)
        x[i] *= inv;
}
