/* fp32 to bf16, rounded to nearest even, a NaN kept a quiet NaN (its sign
 * and top payload, as vcvtneps2bf16 does; that instruction also flushes
 * subnormals, which this rounding keeps): the one rounding behind every
 * conversion of activations, keys and values (vq_f32_to_bf16, the layer
 * norm and attention writing bf16, the cache stores), so that they agree
 * bit for bit. Header-only: the kernels inline it. */
#ifndef VQ_BF16_H
#define VQ_BF16_H

#include <stdint.h>
#include <string.h>

static inline uint16_t vq_bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    const uint16_t nan = (uint16_t)(u >> 16 | 0x40);
    const uint16_t r = (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
    return (u & 0x7fffffffu) > 0x7f800000u ? nan : r;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* The same for 16 lanes: each 32-bit lane holds its bf16 in the low half. */
__attribute__((target("avx512f"), always_inline)) static inline __m512i vq_bf16_round_512(__m512 x)
{
    const __m512i u = _mm512_castps_si512(x), hi = _mm512_srli_epi32(u, 16);
    const __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
    const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_mask_or_epi32(r, nan, hi, _mm512_set1_epi32(0x40));
}
#endif

#endif
