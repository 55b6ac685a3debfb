/* Element-wise exp and GELU through glibc's vector math library (libmvec:
 * AVX-512 or AVX2 expf/erff, a few ulp from the scalar functions), chosen at
 * run time; the scalar libm loop elsewhere. Every element of an array goes
 * through the same routine (a short tail is padded to a whole vector), so a
 * result never depends on how callers split the work between threads. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "vmath.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define VQ_VMATH_X86 1
#include <immintrin.h>

__attribute__((target("avx512f"))) __m512 _ZGVeN16v_expf(__m512);
__attribute__((target("avx512f"))) __m512 _ZGVeN16v_erff(__m512);
__attribute__((target("avx2,fma"))) __m256 _ZGVdN8v_expf(__m256);
__attribute__((target("avx2,fma"))) __m256 _ZGVdN8v_erff(__m256);

int vq_simd_level(void)
{
    static int l = -1;
    int v = __atomic_load_n(&l, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        v = !__builtin_cpu_supports("avx512f") ? __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
            : __builtin_cpu_supports("avx512bf16") ? 3 : 2;
        __atomic_store_n(&l, v, __ATOMIC_RELAXED);
    }
    return v;
}

/* The kernels take whole vectors only (n a multiple of their width; exp
 * with AVX-512 is exp_sum_512 below, which takes any n). */
__attribute__((target("avx2,fma")))
static void exp_256(float *x, size_t n, float sub)
{
    for (size_t i = 0; i < n; i += 8)
        _mm256_storeu_ps(x + i, _ZGVdN8v_expf(_mm256_sub_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(sub))));
}

__attribute__((target("avx512f")))
static void gelu_512(float *x, size_t n, float unused)
{
    (void)unused;
    for (size_t i = 0; i < n; i += 16) {
        const __m512 v = _mm512_loadu_ps(x + i);
        const __m512 e = _ZGVeN16v_erff(_mm512_mul_ps(v, _mm512_set1_ps(0.70710678118654752f)));
        _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v),
                                              _mm512_add_ps(_mm512_set1_ps(1.0f), e)));
    }
}

__attribute__((target("avx2,fma")))
static void gelu_256(float *x, size_t n, float unused)
{
    (void)unused;
    for (size_t i = 0; i < n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256 e = _ZGVdN8v_erff(_mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752f)));
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v),
                                              _mm256_add_ps(_mm256_set1_ps(1.0f), e)));
    }
}
#else
int vq_simd_level(void) { return 0; }
static void exp_256(float *x, size_t n, float sub) { (void)x; (void)n; (void)sub; }
static void gelu_512(float *x, size_t n, float u) { (void)x; (void)n; (void)u; }
static void gelu_256(float *x, size_t n, float u) { (void)x; (void)n; (void)u; }
#endif

/* Runs kernel k (width w) over x[0..n): the whole vectors in place, the tail
 * through a zero-padded vector. Returns 0 when the CPU has neither. */
static int run(float *x, size_t n, float arg, void (*k512)(float *, size_t, float),
               void (*k256)(float *, size_t, float))
{
    const int l = vq_simd_level();
    if (!l) return 0;
    void (*k)(float *, size_t, float) = l >= 2 ? k512 : k256;
    const size_t w = l >= 2 ? 16 : 8, bulk = n - n % w;
    k(x, bulk, arg);
    if (bulk < n) {
        float buf[16] = { 0 };
        memcpy(buf, x + bulk, sizeof(float) * (n - bulk));
        k(buf, w, arg);
        memcpy(x + bulk, buf, sizeof(float) * (n - bulk));
    }
    return 1;
}

#if VQ_VMATH_X86
/* exp and the sum in one pass: 16 double lanes (two vectors) summed in a fixed
 * order, then reduced in a fixed order. */
__attribute__((target("avx512f")))
static double exp_sum_512(float *x, int n, float sub)
{
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    const __m512 vs = _mm512_set1_ps(sub);
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        const __m512 e = _mm512_maskz_mov_ps(m, _ZGVeN16v_expf(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vs)));
        _mm512_mask_storeu_ps(x + i, m, e);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
}

__attribute__((target("avx512f")))
static float max_512(const float *x, int n)
{
    __m512 m = _mm512_set1_ps(-INFINITY);
    for (int i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        m = _mm512_max_ps(m, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), k, x + i));
    }
    return _mm512_reduce_max_ps(m);
}

/* One row of layer norm: the mean and the variance summed in double, 16
 * lanes in a fixed order; the output with the scalar loop's float operations
 * (separate multiplies and adds, no FMA), so with the same mean and inverse
 * deviation every element is the scalar loop's. D a multiple of 16. */
__attribute__((target("avx512f")))
static void layer_norm_512(const float *x, int D, const float *g, const float *b, float eps, float *y)
{
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int i = 0; i < D; i += 16) {
        const __m512 v = _mm512_loadu_ps(x + i);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
    }
    const double mean = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1)) / D;
    const __m512d md = _mm512_set1_pd(mean);
    __m512d q0 = _mm512_setzero_pd(), q1 = _mm512_setzero_pd();
    for (int i = 0; i < D; i += 16) {
        const __m512 v = _mm512_loadu_ps(x + i);
        const __m512d d0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(v)), md);
        const __m512d d1 = _mm512_sub_pd(
            _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))), md);
        q0 = _mm512_add_pd(q0, _mm512_mul_pd(d0, d0));
        q1 = _mm512_add_pd(q1, _mm512_mul_pd(d1, d1));
    }
    const double sq = _mm512_reduce_add_pd(_mm512_add_pd(q0, q1));
    const __m512 inv = _mm512_set1_ps((float)(1.0 / sqrt(sq / D + eps)));
    const __m512 m = _mm512_set1_ps((float)mean);
    for (int i = 0; i < D; i += 16) {
        const __m512 t = _mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), m), inv),
                                       _mm512_loadu_ps(g + i));
        _mm512_storeu_ps(y + i, _mm512_add_ps(t, _mm512_loadu_ps(b + i)));
    }
}
#endif

#if VQ_VMATH_X86
/* The row's softmax in the three passes of attention.c's scalar path
 * (scale, vq_vmax, vq_vexp_sum, times the inverse sum, zeros up to tb, then
 * nearest-even bf16), fused: the same float operations in the same order and
 * the same 16-lane double sums, so the same bits. */
__attribute__((target("avx512f,avx512bw")))
static void softmax_bf16_512(float *s, int vis, int tb, float scale)
{
    const __m512 vsc = _mm512_set1_ps(scale);
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int i = 0; i < vis; i += 16) {
        const __mmask16 m = vis - i >= 16 ? 0xffff : (__mmask16)((1u << (vis - i)) - 1);
        mx = _mm512_mask_max_ps(mx, m, mx, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + i), vsc));
    }
    const __m512 vs = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int i = 0; i < vis; i += 16) {
        const __mmask16 m = vis - i >= 16 ? 0xffff : (__mmask16)((1u << (vis - i)) - 1);
        const __m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + i), vsc);
        const __m512 e = _mm512_maskz_mov_ps(m, _ZGVeN16v_expf(_mm512_sub_ps(x, vs)));
        _mm512_mask_storeu_ps(s + i, m, e);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    }
    const __m512 inv = _mm512_set1_ps((float)(1.0 / _mm512_reduce_add_pd(_mm512_add_pd(s0, s1))));
    /* in place, forward: the 16 halves stored at i cover floats i/2 .. i/2+7, already read */
    uint16_t *p = (uint16_t *)s;
    const int te = (tb + 1) & ~1;
    for (int i = 0; i < te; i += 16) {
        const __mmask16 m = te - i >= 16 ? 0xffff : (__mmask16)((1u << (te - i)) - 1);
        const __mmask16 mv = vis - i >= 16 ? 0xffff : vis <= i ? 0 : (__mmask16)((1u << (vis - i)) - 1);
        const __m512i u = _mm512_castps_si512(_mm512_maskz_mul_ps(mv, _mm512_maskz_loadu_ps(mv, s + i), inv));
        const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
        const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
        _mm512_mask_cvtepi32_storeu_epi16(p + i, m, r);
    }
}
#endif

int vq_vsoftmax_bf16(float *s, int vis, int tb, float scale)
{
#if VQ_VMATH_X86
    if (vis > 0 && vq_simd_level() >= 2) {
        softmax_bf16_512(s, vis, tb, scale);
        return 1;
    }
#else
    (void)s; (void)vis; (void)tb; (void)scale;
#endif
    return 0;
}

int vq_vlayer_norm(const float *x, int D, const float *gamma, const float *beta, float eps, float *y)
{
#if VQ_VMATH_X86
    if (D > 0 && D % 16 == 0 && vq_simd_level() >= 2) {
        layer_norm_512(x, D, gamma, beta, eps, y);
        return 1;
    }
#else
    (void)x; (void)D; (void)gamma; (void)beta; (void)eps; (void)y;
#endif
    return 0;
}

float vq_vmax(const float *x, int n)
{
#if VQ_VMATH_X86
    if (n > 0 && vq_simd_level() >= 2) return max_512(x, n);
#endif
    float mx = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > mx) mx = x[i];
    return mx;
}

double vq_vexp_sum(float *x, int n, float sub)
{
#if VQ_VMATH_X86
    if (n > 0 && vq_simd_level() >= 2) return exp_sum_512(x, n, sub);
#endif
    /* AVX2 only here (AVX-512 returned above): exp_256 in both slots */
    const int vec = n > 0 && run(x, (size_t)n, sub, exp_256, exp_256);
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        if (!vec) x[i] = expf(x[i] - sub);
        sum += x[i];
    }
    return sum;
}

void vq_vgelu(float *x, size_t n)
{
    if (run(x, n, 0.0f, gelu_512, gelu_256))
        return;
    for (size_t i = 0; i < n; i++)
        x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}
