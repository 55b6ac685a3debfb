/* Element-wise exp and GELU through glibc's vector math library (libmvec:
 * AVX-512 or AVX2 expf/erff, a few ulp from the scalar functions), chosen at
 * run time; the scalar libm loop elsewhere. Every element of an array goes
 * through the same routine (a short tail is padded to a whole vector), so a
 * result never depends on how callers split the work between threads. Also
 * our own exp (the bf16 softmax's) and GELU (int8's), whose scalar and
 * AVX-512 forms give the same bits, and layer-norm rows. The row kernels
 * (layer norm, max, exp and its sum) also have AVX2 forms (vmath_avx2.c)
 * that sum as the AVX-512 ones do. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "bf16.h"
#include "vmath.h"
#include "vmath_avx2.h"
#include "vmath_poly.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define VQ_VMATH_X86 1
#include <immintrin.h>

__attribute__((target("avx512f"))) __m512 _ZGVeN16v_expf(__m512);
__attribute__((target("avx512f"))) __m512 _ZGVeN16v_erff(__m512);
__attribute__((target("avx2,fma"))) __m256 _ZGVdN8v_erff(__m256);

static int forced_level = -1;
void vq_simd_force(int level) { __atomic_store_n(&forced_level, level, __ATOMIC_RELAXED); }

int vq_simd_level(void)
{
    static int l = -1;
    const int f = __atomic_load_n(&forced_level, __ATOMIC_RELAXED);
    if (f >= 0) return f;
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
 * is exp_sum_512 below, or vmath_avx2.c's, which take any n). */
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
void vq_simd_force(int level) { (void)level; }
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
 * deviation every element is the scalar loop's. D a multiple of 16. The
 * output in fp32 (y), or rounded to bf16 (yb, nearest even as
 * vq_f32_to_bf16) when y is NULL. */
__attribute__((target("avx512f"), always_inline))
static inline void layer_norm_512_body(const float *x, int D, const float *g, const float *b, float eps, float *y,
                                       uint16_t *yb)
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
        const __m512 o = _mm512_add_ps(t, _mm512_loadu_ps(b + i));
        if (y) {
            _mm512_storeu_ps(y + i, o);
        } else {
            _mm256_storeu_si256((__m256i *)(yb + i), _mm512_cvtepi32_epi16(vq_bf16_round_512(o)));
        }
    }
}

__attribute__((target("avx512f")))
static void layer_norm_512(const float *x, int D, const float *g, const float *b, float eps, float *y)
{
    layer_norm_512_body(x, D, g, b, eps, y, NULL);
}

__attribute__((target("avx512f")))
static void layer_norm_bf16_512(const float *x, int D, const float *g, const float *b, float eps, uint16_t *yb)
{
    layer_norm_512_body(x, D, g, b, eps, NULL, yb);
}
#endif

/* exp(x) as the bf16 attention computes it (vq_exp_bf16): vmath_poly.h. */
float vq_exp_bf16(float x)
{
    x = x > VQ_EXP_LO ? x : VQ_EXP_LO;
    const float n = rintf(x * VQ_EXP_LOG2E);
    const float r = fmaf(-n, VQ_EXP_LN2_LO, fmaf(-n, VQ_EXP_LN2_HI, x));
    float p = VQ_EXP_P7;
    VQ_EXP_POLY(fmaf, p, r)
    return ldexpf(p, (int)n);
}

/* The sum of 16 lanes in a fixed tree: halves, then quarters, ... */
static inline float lanes_sum(float *lane)
{
    for (int w = 8; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) lane[i] += lane[i + w];
    return lane[0];
}

#if VQ_VMATH_X86
/* lanes_sum of a vector's lanes, in registers: the same tree (x + y is y + x
 * bit for bit) */
__attribute__((target("avx512f"), always_inline)) static inline float lanes_sum_512(__m512 v)
{
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v),
                                   _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    const __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    const __m128 e = _mm_add_ps(q, _mm_movehl_ps(q, q));   /* lanes 0, 1: q0 + q2, q1 + q3 */
    return _mm_cvtss_f32(_mm_add_ss(e, _mm_movehdup_ps(e)));
}

/* The rows' softmax (vq_vsoftmax_bf16): the max, exp and the sum in 16
 * float lanes (then lanes_sum_512), times the inverse sum rounded to bf16;
 * each pass over every row before the next pass, so that a row's pass does
 * not wait for the reduction that ends its previous one. Each pass runs its
 * row's whole vectors unmasked, then the last partial one masked: a mask
 * built at every vector cost the passes a quarter of their time. The max
 * and the sum keep their one chain each, lane by lane in the vector's
 * order, as before: with two running maxima a NaN score would give other
 * bits (vmaxps returns its second operand where either is NaN). */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
static void softmax_bf16_512(float *S, int lds, int rows, const int *vis, int tb)
{
    float mx[VQ_SOFTMAX_ROWS], inv[VQ_SOFTMAX_ROWS];
    for (int r = 0; r < rows; r++) {
        const float *s = S + (size_t)r * lds;
        const int n = vis[r], nf = n & ~15;
        __m512 v = _mm512_set1_ps(-INFINITY);
        for (int i = 0; i < nf; i += 16)
            v = _mm512_max_ps(v, _mm512_loadu_ps(s + i));
        if (nf < n) {
            const __mmask16 m = (__mmask16)((1u << (n - nf)) - 1);
            v = _mm512_mask_max_ps(v, m, v, _mm512_maskz_loadu_ps(m, s + nf));
        }
        mx[r] = _mm512_reduce_max_ps(v);
    }
    for (int r = 0; r < rows; r++) {
        float *s = S + (size_t)r * lds;
        const int n = vis[r], nf = n & ~15;
        const __m512 vs = _mm512_set1_ps(mx[r]);
        __m512 sum = _mm512_setzero_ps();
        for (int i = 0; i < nf; i += 16) {
            const __m512 e = vq_exp_bf16_512(_mm512_sub_ps(_mm512_loadu_ps(s + i), vs));
            _mm512_storeu_ps(s + i, e);
            sum = _mm512_add_ps(sum, e);
        }
        if (nf < n) {
            const __mmask16 m = (__mmask16)((1u << (n - nf)) - 1);
            const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + nf), vs);
            const __m512 e = _mm512_maskz_mov_ps(m, vq_exp_bf16_512(d));
            _mm512_mask_storeu_ps(s + nf, m, e);
            sum = _mm512_add_ps(sum, e);
        }
        inv[r] = 1.0f / lanes_sum_512(sum);
    }
    /* in place, forward: the 16 halves stored at i cover floats i/2 .. i/2+7,
     * already read; vcvtneps2bf16 rounds to nearest even and flushes
     * subnormals to zero. Past a row's keys (up to te) zeros. */
    const int te = (tb + 1) & ~1;
    for (int r = 0; r < rows; r++) {
        const float *s = S + (size_t)r * lds;
        uint16_t *p = (uint16_t *)(S + (size_t)r * lds);
        const int n = vis[r], nf = n & ~15;
        const __m512 vi = _mm512_set1_ps(inv[r]);
        int i = 0;
        for (; i < nf; i += 16)
            _mm256_storeu_si256((__m256i *)(p + i),
                                (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_loadu_ps(s + i), vi)));
        for (; i < te; i += 16) {
            const __mmask16 m = te - i >= 16 ? 0xffff : (__mmask16)((1u << (te - i)) - 1);
            const __mmask16 mv = n - i >= 16 ? 0xffff : n <= i ? 0 : (__mmask16)((1u << (n - i)) - 1);
            const __m256bh b = _mm512_cvtneps_pbh(_mm512_maskz_mul_ps(mv, _mm512_maskz_loadu_ps(mv, s + i), vi));
            _mm256_mask_storeu_epi16(p + i, m, (__m256i)b);
        }
    }
}
#endif

/* vcvtneps2bf16's rounding of a probability (finite, >= 0): nearest even,
 * subnormals to zero */
static inline uint16_t round_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if (x < 1.17549435e-38f) return (uint16_t)(u >> 16 & 0x8000);
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

void vq_vsoftmax_bf16(float *S, int lds, int rows, const int *vis, int tb)
{
#if VQ_VMATH_X86
    if (vq_simd_level() >= 3) {
        for (int r = 0; r < rows; r += VQ_SOFTMAX_ROWS)
            softmax_bf16_512(S + (size_t)r * lds, lds, rows - r < VQ_SOFTMAX_ROWS ? rows - r : VQ_SOFTMAX_ROWS, vis + r,
                             tb);
        return;
    }
#endif
    /* the same operations one value at a time: the sum in the vector's 16
     * lanes, each lane in the vector's order */
    for (int r = 0; r < rows; r++) {
        float *s = S + (size_t)r * lds;
        const int n = vis[r];
        float mx = -INFINITY;
        for (int i = 0; i < n; i++)
            mx = s[i] > mx ? s[i] : mx;
        float lane[16] = { 0 };
        for (int i = 0; i < n; i++) {
            s[i] = vq_exp_bf16(s[i] - mx);
            lane[i % 16] += s[i];
        }
        const float inv = 1.0f / lanes_sum(lane);
        uint16_t *p = (uint16_t *)s;
        const int te = (tb + 1) & ~1;
        for (int i = 0; i < te; i++)
            p[i] = i < n ? round_bf16(s[i] * inv) : 0;
    }
}

int vq_vlayer_norm(const float *x, int D, const float *gamma, const float *beta, float eps, float *y, uint16_t *yb)
{
#if VQ_VMATH_X86
    if (D > 0 && D % 16 == 0 && vq_simd_level() >= 2) {
        if (y) layer_norm_512(x, D, gamma, beta, eps, y);
        else layer_norm_bf16_512(x, D, gamma, beta, eps, yb);
        return 1;
    }
    if (D > 0 && D % 16 == 0 && y && vq_simd_level() == 1) {
        vq_layer_norm_avx2(x, D, gamma, beta, eps, y);
        return 1;
    }
#else
    (void)x; (void)D; (void)gamma; (void)beta; (void)eps; (void)y; (void)yb;
#endif
    return 0;
}

float vq_vmax(const float *x, int n)
{
#if VQ_VMATH_X86
    if (n > 0 && vq_simd_level() >= 2) return max_512(x, n);
    if (n > 0 && vq_simd_level() == 1) return vq_max_avx2(x, n);
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
    if (n > 0 && vq_simd_level() == 1) return vq_exp_sum_avx2(x, n, sub);
#endif
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += x[i] = expf(x[i] - sub);
    return sum;
}

/* GELU from Abramowitz and Stegun's erf (vq_gelu_poly): vmath_poly.h. */
float vq_gelu_poly(float x)
{
    float a = fabsf(x);
    a = a < VQ_GELU_CLAMP ? a : VQ_GELU_CLAMP;   /* vminps: NaN gives the clamp */
    float p = VQ_GELU_C6;
    VQ_GELU_POLY(fmaf, p, a)
    const float h = 0.5f * a / p;
    return (0.0f > x ? 0.0f : x) - h;   /* vmaxps(0, x): NaN and -0 pass */
}

#if VQ_VMATH_X86
__attribute__((target("avx512f")))
static void gelu_poly_512(float *x, size_t n)
{
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(x + i, m, vq_gelu_poly_512(_mm512_maskz_loadu_ps(m, x + i)));
    }
}
#endif

void vq_vgelu_poly(float *x, size_t n)
{
#if VQ_VMATH_X86
    if (vq_simd_level() >= 2) {
        gelu_poly_512(x, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        x[i] = vq_gelu_poly(x[i]);
}

void vq_vgelu(float *x, size_t n)
{
    if (run(x, n, 0.0f, gelu_512, gelu_256))
        return;
    for (size_t i = 0; i < n; i++)
        x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}
