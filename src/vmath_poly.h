/* The polynomials behind vq_exp_bf16 and vq_gelu_poly (vmath.h), in one
 * place for their scalar forms (vmath.c) and their 16-lane forms, which are
 * inline here so that a kernel can apply them to a tile it has just
 * finished (the bf16 and int8 kernels' GELU epilogues). Both forms round
 * every step alike (fused multiply-adds, products, scalef = ldexpf, one
 * division), so they give the same bits. Header-only, like bf16.h. */
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

/* GELU from erf by Abramowitz and Stegun's 7.1.28,
 *   erf(z) = 1 - (1 + a1 z + ... + a6 z^6)^-16   (within 3e-7),
 * at z = |x|/√2 (the coefficients below carry the 1/√2^k):
 *   gelu(x) = max(x, 0) - h,  h = |x|/2 · erfc(|x|/√2) = (|x|/2) / p^16,
 * p by Horner's rule, p^16 by four squarings, one division: no exp, so
 * about half the operations of an exp-based Φ. Within 7.1e-7 absolute
 * everywhere and 7e-6 relative for x >= -2; below -3, where |gelu| < 4e-3,
 * the bound is the absolute one. |x| is clamped at 64: past a ~ 19.5, p^16
 * overflows to inf and h is 0, so ±inf give inf and 0, NaN stays NaN. */
#define VQ_GELU_CLAMP 64.0f
#define VQ_GELU_C6 5.382974905e-06f
#define VQ_GELU_POLY(FMA, p, a)                                                                \
    p = FMA(p, a, 4.889063712e-05f);                                                           \
    p = FMA(p, a, 3.800357445e-05f);                                                           \
    p = FMA(p, a, 3.277626354e-03f);                                                           \
    p = FMA(p, a, 2.114100568e-02f);                                                           \
    p = FMA(p, a, 4.986734688e-02f);                                                           \
    p = FMA(p, a, 1.0f);                                                                       \
    p = p * p;                                                                                 \
    p = p * p;                                                                                 \
    p = p * p;                                                                                 \
    p = p * p;

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

/* vq_gelu_poly of 16 lanes: vmaxps(0, v) is 0 > v ? 0 : v, so NaN passes */
__attribute__((target("avx512f"), always_inline)) static inline __m512 vq_gelu_poly_512(__m512 v)
{
    const __m512 a = _mm512_min_ps(_mm512_abs_ps(v), _mm512_set1_ps(VQ_GELU_CLAMP));
    __m512 p = _mm512_set1_ps(VQ_GELU_C6);
    VQ_GELU_POLY(VQ_FMA512, p, a)
    const __m512 h = _mm512_div_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), a), p);
    return _mm512_sub_ps(_mm512_max_ps(_mm512_setzero_ps(), v), h);
}
#endif

#endif
