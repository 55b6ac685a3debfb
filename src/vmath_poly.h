/* The polynomials behind vq_exp_bf16 and vq_gelu_poly (vmath.h), in one
 * place for their scalar forms (vmath.c) and their 16-lane forms, which are
 * inline here so that a kernel can apply them to values still in registers
 * (the int8 kernel's GELU epilogue). Both forms round every step alike
 * (fused multiply-adds, scalef = ldexpf, one division), so they give the
 * same bits. Header-only, like bf16.h. */
#ifndef VQ_VMATH_POLY_H
#define VQ_VMATH_POLY_H

/* exp(x): x = n·ln 2 + r with n = rint(x·log2 e) and |r| <= ln 2 / 2 (ln 2
 * in two parts, so n·ln 2 is exact enough), e^r by its Taylor polynomial of
 * degree 7 (truncation below 1e-8 relative: the error is the steps'
 * rounding), times 2^n. x is clamped at -104 (below it the result is 0 in
 * fp32 anyway), so -inf and NaN give 0. */
#define VQ_EXP_LO -104.0f
#define VQ_EXP_LOG2E 1.44269504088896341f
#define VQ_EXP_LN2_HI 0.693145751953125f          /* 0x3f317200: n·VQ_EXP_LN2_HI exact for |n| < 2^8 */
#define VQ_EXP_LN2_LO 1.42860682030941723e-6f
#define VQ_EXP_P7 (1.0f / 5040)
#define VQ_EXP_POLY(FMA, p, r)                                                                 \
    p = FMA(p, r, 1.0f / 720);                                                                 \
    p = FMA(p, r, 1.0f / 120);                                                                 \
    p = FMA(p, r, 1.0f / 24);                                                                  \
    p = FMA(p, r, 1.0f / 6);                                                                   \
    p = FMA(p, r, 0.5f);                                                                       \
    p = FMA(p, r, 1.0f);                                                                       \
    p = FMA(p, r, 1.0f);

/* GELU as x·Φ(x): for a = min(|x|, 16), Φ(-a) = t·e^(-a²/2)·P(t),
 * t = 1 / (1 + 0.304·a), P of degree 7 fitted to the relative error of erfc
 * over 0 <= a <= 13.5 (8.4e-8 before rounding); a² as the sum of two floats
 * (the low part through 1 - l/2), so that the exponent's rounding does not
 * grow with a. Φ(x) = 1 - Φ(-x) for x >= 0. Past a = 16 the result is x
 * (x > 0) or -0 in fp32 anyway. */
#define VQ_PHI_T 0.304f
#define VQ_PHI_P7 3.685804405e-02f
#define VQ_PHI_POLY(FMA, p, t)                                                                 \
    p = FMA(p, t, -1.552971757e-01f);                                                          \
    p = FMA(p, t, 1.921861601e-01f);                                                           \
    p = FMA(p, t, -4.312775812e-02f);                                                          \
    p = FMA(p, t, 1.235526322e-01f);                                                           \
    p = FMA(p, t, 1.024227346e-01f);                                                           \
    p = FMA(p, t, 1.221707272e-01f);                                                           \
    p = FMA(p, t, 1.212346765e-01f);

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define VQ_FMA512(a, b, c) _mm512_fmadd_ps(a, b, _mm512_set1_ps(c))

__attribute__((target("avx512f"), always_inline)) static inline __m512 vq_exp_bf16_512(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(VQ_EXP_LO));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(VQ_EXP_LOG2E)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(VQ_EXP_LN2_LO),
                                      _mm512_fnmadd_ps(n, _mm512_set1_ps(VQ_EXP_LN2_HI), x));
    __m512 p = _mm512_set1_ps(VQ_EXP_P7);
    VQ_EXP_POLY(VQ_FMA512, p, r)
    return _mm512_scalef_ps(p, n);
}

/* vq_gelu_poly of 16 lanes. */
__attribute__((target("avx512f"), always_inline)) static inline __m512 vq_gelu_poly_512(__m512 v)
{
    const __m512 one = _mm512_set1_ps(1.0f), mhalf = _mm512_set1_ps(-0.5f);
    const __m512 a = _mm512_min_ps(_mm512_abs_ps(v), _mm512_set1_ps(16.0f));
    const __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_set1_ps(VQ_PHI_T), a, one));
    __m512 p = _mm512_set1_ps(VQ_PHI_P7);
    VQ_PHI_POLY(VQ_FMA512, p, t)
    const __m512 h = _mm512_mul_ps(a, a), l = _mm512_fmsub_ps(a, a, h);
    const __m512 e = _mm512_mul_ps(vq_exp_bf16_512(_mm512_mul_ps(mhalf, h)), _mm512_fmadd_ps(mhalf, l, one));
    const __m512 E = _mm512_mul_ps(_mm512_mul_ps(t, p), e);
    const __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
    return _mm512_mul_ps(v, _mm512_mask_mov_ps(_mm512_sub_ps(one, E), neg, E));
}
#endif

#endif
