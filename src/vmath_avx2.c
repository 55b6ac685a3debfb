/* vmath.c's row kernels with AVX2 (vmath_avx2.h). */
#include <math.h>

#include "vmath_avx2.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma"), always_inline)) static inline

__attribute__((target("avx2,fma"))) __m256 _ZGVdN8v_expf(__m256);

/* The AVX-512 kernels' two vectors of 8 double lanes (elements 0-7 and
 * 8-15 of each 16), as four vectors of 4. */
struct sum16 { __m256d a0, a1, b0, b1; };

AVX2 struct sum16 sum16_zero(void)
{
    const __m256d z = _mm256_setzero_pd();
    return (struct sum16){ z, z, z, z };
}

/* 16 floats, lo (elements 0-7) and hi (8-15), in double, as the lanes */
AVX2 struct sum16 widen16(__m256 lo, __m256 hi)
{
    return (struct sum16){ _mm256_cvtps_pd(_mm256_castps256_ps128(lo)), _mm256_cvtps_pd(_mm256_extractf128_ps(lo, 1)),
                           _mm256_cvtps_pd(_mm256_castps256_ps128(hi)), _mm256_cvtps_pd(_mm256_extractf128_ps(hi, 1)) };
}

/* lanes += v */
AVX2 void sum16_add(struct sum16 *s, struct sum16 v)
{
    s->a0 = _mm256_add_pd(s->a0, v.a0);
    s->a1 = _mm256_add_pd(s->a1, v.a1);
    s->b0 = _mm256_add_pd(s->b0, v.b0);
    s->b1 = _mm256_add_pd(s->b1, v.b1);
}

/* _mm512_reduce_add_pd(s0 + s1): the upper half of 4 lanes onto the lower,
 * then the upper pair onto the lower, then the two (x + y is y + x) */
AVX2 double sum16_reduce(const struct sum16 *s)
{
    const __m256d t = _mm256_add_pd(_mm256_add_pd(s->a1, s->b1), _mm256_add_pd(s->a0, s->b0));
    const __m128d h = _mm_add_pd(_mm256_extractf128_pd(t, 1), _mm256_castpd256_pd128(t));
    return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}

/* lanes 0 .. n-1 set (n clamped to 0 .. 8), for maskload / maskstore */
AVX2 __m256i lanes_below(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Layer norm as layer_norm_512_body: mean and variance in double, 16 lanes;
 * the output with separate multiplies and adds. */
__attribute__((target("avx2,fma")))
void vq_layer_norm_avx2(const float *x, int D, const float *g, const float *b, float eps, float *y)
{
    struct sum16 s = sum16_zero();
    for (int i = 0; i < D; i += 16)
        sum16_add(&s, widen16(_mm256_loadu_ps(x + i), _mm256_loadu_ps(x + i + 8)));
    const double mean = sum16_reduce(&s) / D;
    const __m256d md = _mm256_set1_pd(mean);
    struct sum16 q = sum16_zero();
    for (int i = 0; i < D; i += 16) {
        struct sum16 d = widen16(_mm256_loadu_ps(x + i), _mm256_loadu_ps(x + i + 8));
        d.a0 = _mm256_sub_pd(d.a0, md);
        d.a1 = _mm256_sub_pd(d.a1, md);
        d.b0 = _mm256_sub_pd(d.b0, md);
        d.b1 = _mm256_sub_pd(d.b1, md);
        sum16_add(&q, (struct sum16){ _mm256_mul_pd(d.a0, d.a0), _mm256_mul_pd(d.a1, d.a1),
                                      _mm256_mul_pd(d.b0, d.b0), _mm256_mul_pd(d.b1, d.b1) });
    }
    const double sq = sum16_reduce(&q);
    const __m256 inv = _mm256_set1_ps((float)(1.0 / sqrt(sq / D + eps)));
    const __m256 m = _mm256_set1_ps((float)mean);
    for (int i = 0; i < D; i += 8) {
        const __m256 t = _mm256_mul_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), m), inv),
                                       _mm256_loadu_ps(g + i));
        _mm256_storeu_ps(y + i, _mm256_add_ps(t, _mm256_loadu_ps(b + i)));
    }
}

/* One running maximum per lane of 16 (two vectors), the tail's missing
 * lanes -inf, then the lanes' maximum. */
__attribute__((target("avx2,fma")))
float vq_max_avx2(const float *x, int n)
{
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 m0 = ninf, m1 = ninf;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + i));
        m1 = _mm256_max_ps(m1, _mm256_loadu_ps(x + i + 8));
    }
    if (i < n) {
        const __m256i k0 = lanes_below(n - i), k1 = lanes_below(n - i - 8);
        m0 = _mm256_max_ps(m0, _mm256_blendv_ps(ninf, _mm256_maskload_ps(x + i, k0), _mm256_castsi256_ps(k0)));
        m1 = _mm256_max_ps(m1, _mm256_blendv_ps(ninf, _mm256_maskload_ps(x + i + 8, k1), _mm256_castsi256_ps(k1)));
    }
    const __m256 t = _mm256_max_ps(m1, m0);
    __m128 h = _mm_max_ps(_mm256_extractf128_ps(t, 1), _mm256_castps256_ps128(t));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
}

/* exp and the sum in one pass, the sum as exp_sum_512's: 16 double lanes,
 * the tail's missing lanes zero. */
__attribute__((target("avx2,fma")))
double vq_exp_sum_avx2(float *x, int n, float sub)
{
    const __m256 vs = _mm256_set1_ps(sub);
    struct sum16 s = sum16_zero();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 lo = _ZGVdN8v_expf(_mm256_sub_ps(_mm256_loadu_ps(x + i), vs));
        const __m256 hi = _ZGVdN8v_expf(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vs));
        _mm256_storeu_ps(x + i, lo);
        _mm256_storeu_ps(x + i + 8, hi);
        sum16_add(&s, widen16(lo, hi));
    }
    if (i < n) {
        const __m256i k0 = lanes_below(n - i), k1 = lanes_below(n - i - 8);
        const __m256 lo = _mm256_and_ps(_ZGVdN8v_expf(_mm256_sub_ps(_mm256_maskload_ps(x + i, k0), vs)),
                                        _mm256_castsi256_ps(k0));
        const __m256 hi = _mm256_and_ps(_ZGVdN8v_expf(_mm256_sub_ps(_mm256_maskload_ps(x + i + 8, k1), vs)),
                                        _mm256_castsi256_ps(k1));
        _mm256_maskstore_ps(x + i, k0, lo);
        _mm256_maskstore_ps(x + i + 8, k1, hi);
        sum16_add(&s, widen16(lo, hi));
    }
    return sum16_reduce(&s);
}
#else
void vq_layer_norm_avx2(const float *x, int D, const float *g, const float *b, float eps, float *y)
{
    (void)x; (void)D; (void)g; (void)b; (void)eps; (void)y;
}
float vq_max_avx2(const float *x, int n) { (void)n; return x[0]; }
double vq_exp_sum_avx2(float *x, int n, float sub) { (void)x; (void)n; (void)sub; return 0.0; }
#endif
