/* Causal multi-head attention against the transformer's KV cache (attention.h).
 *
 * Keys are cached transposed, Kᵀ[D][cap], so that both products of a head
 * run along contiguous rows:
 *   scores  S[r][t] = Σ_d q[r][d] · Kᵀ[d][t]   (vectorized over keys t)
 *   output  y[r][e] = Σ_t S[r][t] · V[t][e]    (vectorized over the head's e)
 * The AVX-512 kernels keep a tile of rows × 32 keys (scores) or rows × 64
 * columns (output) in registers and accumulate with one FMA per term, in the
 * order d = 0, 1, ... (scores) and t = 0, 1, ... (output): a row's result does
 * not depend on the tile it shares, the block, the task or the thread. Other
 * CPUs and head widths that are not a multiple of 16 go through vq_gemm with
 * the same layout. Masked scores are exact zeros, so a row whose block reads
 * further keys only adds zero terms. */
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>

#include "attention.h"
#include "backend.h"
#include "ops.h"
#include "vmath.h"

/* Rows of the new positions handled per task. */
#define ATT_ROWS 64

#if defined(__x86_64__) && defined(__GNUC__)
#define VQ_ATT_X86 1
#endif

/* Keys row `pos` sees: 0 .. vis-1. */
static inline int visible(int pos, int n_unmasked)
{
    return pos < n_unmasked && n_unmasked > pos + 1 ? n_unmasked : pos + 1;
}

#ifdef VQ_ATT_X86
#define AVX512 __attribute__((target("avx512f"), always_inline)) static inline

/* S[M rows][tn <= 32 keys] = q[M][hd] · Kᵀ[hd][t0 .. t0+tn) */
AVX512 void scores_tile(const int M, const float *q, int ldq, const float *kt, int ldk, int hd, int tn,
                        float *S, int lds)
{
    const __mmask16 m0 = tn >= 16 ? 0xffff : (__mmask16)((1u << tn) - 1);
    const __mmask16 m1 = tn >= 32 ? 0xffff : tn <= 16 ? 0 : (__mmask16)((1u << (tn - 16)) - 1);
    __m512 acc[8][2];
    _Pragma("GCC unroll 8") for (int r = 0; r < M; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int d = 0; d < hd; d++) {
        const float *k = kt + (size_t)d * ldk;
        const __m512 k0 = _mm512_maskz_loadu_ps(m0, k), k1 = _mm512_maskz_loadu_ps(m1, k + 16);
        _Pragma("GCC unroll 8") for (int r = 0; r < M; r++) {
            const __m512 a = _mm512_set1_ps(q[(size_t)r * ldq + d]);
            acc[r][0] = _mm512_fmadd_ps(a, k0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(a, k1, acc[r][1]);
        }
    }
    _Pragma("GCC unroll 8") for (int r = 0; r < M; r++) {
        _mm512_mask_storeu_ps(S + (size_t)r * lds, m0, acc[r][0]);
        _mm512_mask_storeu_ps(S + (size_t)r * lds + 16, m1, acc[r][1]);
    }
}

/* y[M rows][16·NV columns] = S[M][0 .. T) · V[0 .. T)[16·NV columns] */
AVX512 void output_tile(const int M, const int NV, const float *S, int lds, const float *v, int ldv, int T,
                        float *y, int ldy)
{
    __m512 acc[6][4];
    _Pragma("GCC unroll 6") for (int r = 0; r < M; r++)
        _Pragma("GCC unroll 4") for (int c = 0; c < NV; c++) acc[r][c] = _mm512_setzero_ps();
    for (int t = 0; t < T; t++) {
        const float *vt = v + (size_t)t * ldv;
        __m512 b[4];
        _Pragma("GCC unroll 4") for (int c = 0; c < NV; c++) b[c] = _mm512_loadu_ps(vt + 16 * c);
        _Pragma("GCC unroll 6") for (int r = 0; r < M; r++) {
            const __m512 a = _mm512_set1_ps(S[(size_t)r * lds + t]);
            _Pragma("GCC unroll 4") for (int c = 0; c < NV; c++) acc[r][c] = _mm512_fmadd_ps(a, b[c], acc[r][c]);
        }
    }
    _Pragma("GCC unroll 6") for (int r = 0; r < M; r++)
        _Pragma("GCC unroll 4") for (int c = 0; c < NV; c++) _mm512_storeu_ps(y + (size_t)r * ldy + 16 * c, acc[r][c]);
}

/* The switch cases calling CALL(m) with m = 6 .. 1 as a constant (the tiles
 * unroll over it). */
#define ROW_CASES_6_TO_1(CALL)                                                                 \
    case 6: CALL(6); break;                                                                    \
    case 5: CALL(5); break;                                                                    \
    case 4: CALL(4); break;                                                                    \
    case 3: CALL(3); break;                                                                    \
    case 2: CALL(2); break;                                                                    \
    default: CALL(1); break;

/* Rows pos0 .. pos0+rn-1; a group of rows stops at the keys its last row
 * sees (the rest of the block's T is masked: the caller zeroes it). */
__attribute__((target("avx512f")))
static uint64_t scores_avx512(int rn, int pos0, int n_unmasked, int hd, const float *q, int ldq, const float *kt,
                              int ldk, float *S, int lds)
{
    uint64_t flops = 0;
    for (int r = 0; r < rn; r += 8) {
        const int m = rn - r < 8 ? rn - r : 8;
        const int T = visible(pos0 + r + m - 1, n_unmasked);
        flops += 2ull * m * T * hd;
        for (int t = 0; t < T; t += 32) {
            const int tn = T - t < 32 ? T - t : 32;
            const float *qr = q + (size_t)r * ldq;
            float *s = S + (size_t)r * lds + t;
#define SCORES(M) scores_tile(M, qr, ldq, kt + t, ldk, hd, tn, s, lds)
            switch (m) {
            case 8: SCORES(8); break;
            case 7: SCORES(7); break;
            ROW_CASES_6_TO_1(SCORES)
            }
#undef SCORES
        }
    }
    return flops;
}

/* The output tile of m rows and nv vectors, both as constants. */
#define OUTPUT(M) output_tile(M, nvc, s, lds, vc, ldv, T, yc, ldy)
#define OUTPUT_ROWS(NV)                                                                        \
    {                                                                                          \
        const int nvc = NV;                                                                    \
        switch (m) { ROW_CASES_6_TO_1(OUTPUT) }                                                \
    }

/* Rows pos0 .. pos0+rn-1; a group of rows reads the keys its last row sees
 * (its other rows' scores are zero there). */
__attribute__((target("avx512f")))
static uint64_t output_avx512(int rn, int pos0, int n_unmasked, int hd, const float *S, int lds, const float *v,
                              int ldv, float *y, int ldy)
{
    uint64_t flops = 0;
    for (int r = 0; r < rn; r += 6) {
        const int m = rn - r < 6 ? rn - r : 6;
        const int T = visible(pos0 + r + m - 1, n_unmasked);
        flops += 2ull * m * T * hd;
        const float *s = S + (size_t)r * lds;
        for (int c = 0; c < hd; c += 64) {
            const int nv = hd - c < 64 ? (hd - c) / 16 : 4;
            const float *vc = v + c;
            float *yc = y + (size_t)r * ldy + c;
            switch (nv) {
            case 4: OUTPUT_ROWS(4) break;
            case 3: OUTPUT_ROWS(3) break;
            case 2: OUTPUT_ROWS(2) break;
            default: OUTPUT_ROWS(1) break;
            }
#undef OUTPUT_ROWS
#undef OUTPUT
        }
    }
    return flops;
}
#endif

static int forced_kernel = -1;
void vq_attention_force(int kernel) { __atomic_store_n(&forced_kernel, kernel, __ATOMIC_RELAXED); }

/* 1: the AVX-512 kernels, 0: vq_gemm */
int vq_attention_kernel(int hd)
{
#ifdef VQ_ATT_X86
    const int f = __atomic_load_n(&forced_kernel, __ATOMIC_RELAXED);
    if (f >= 0) return f && vq_simd_level() >= 2 && hd % 16 == 0;
    return vq_simd_level() >= 2 && hd % 16 == 0 && vq_backend_current() != VQ_BACKEND_REF;
#else
    (void)hd;
    return 0;
#endif
}

void vq_attention(const float *q, const float *Kt, int ldk, const float *V, int D, int n_head, int n_unmasked,
                  int L0, int n, float *att, float *y)
{
    const int nh = n_head, hd = D / nh, T = L0 + n;
    const float scale = (float)(1.0 / sqrt((double)hd));
    const int n_blocks = (n + ATT_ROWS - 1) / ATT_ROWS;
    const int kernel = vq_attention_kernel(hd);

    /* one new row still reads every key and value of the cache (T x D floats
     * each): spread over the heads once that is more than a little */
#pragma omp parallel for schedule(dynamic, 1) if ((int64_t)n * T * D >= (1 << 20) || (int64_t)T * D >= (1 << 17))
    for (int task = 0; task < nh * n_blocks; task++) {
        const int h = task / n_blocks, r0 = (task % n_blocks) * ATT_ROWS;
        const int rn = n - r0 < ATT_ROWS ? n - r0 : ATT_ROWS;
        /* keys 0..pos are visible; the first n_unmasked see each other */
        const int Tb = visible(L0 + r0 + rn - 1, n_unmasked);
        float *S = att + ((size_t)h * n + r0) * T;           /* [rn][Tb], row stride T */
        const float *qh = q + (size_t)r0 * D + h * hd, *kh = Kt + (size_t)h * hd * ldk, *vh = V + h * hd;
        float *yh = y + (size_t)r0 * D + h * hd;
#ifdef VQ_ATT_X86
        if (kernel) {
            vq_flops_add(scores_avx512(rn, L0 + r0, n_unmasked, hd, qh, D, kh, ldk, S, T));
        } else
#endif
            vq_gemm(0, 0, rn, Tb, hd, qh, D, kh, ldk, 0.0f, S, T);
        for (int r = 0; r < rn; r++) {
            const int vis = visible(L0 + r0 + r, n_unmasked);
            float *s = S + (size_t)r * T;
            for (int t = 0; t < vis; t++)
                s[t] *= scale;
            vq_softmax(s, vis);
            for (int t = vis; t < Tb; t++)
                s[t] = 0.0f;
        }
#ifdef VQ_ATT_X86
        if (kernel) {
            vq_flops_add(output_avx512(rn, L0 + r0, n_unmasked, hd, S, T, vh, D, yh, D));
        } else
#endif
            vq_gemm(0, 0, rn, hd, Tb, S, T, vh, D, 0.0f, yh, D);
    }
}

void vq_transpose_keys(const float *k, int n, int D, float *Kt, int ldk)
{
#pragma omp parallel for schedule(static) if ((int64_t)n * D >= (1 << 16))
    for (int d0 = 0; d0 < D; d0 += 16) {
        const int dn = D - d0 < 16 ? D - d0 : 16;
        for (int r = 0; r < n; r++)
            for (int d = d0; d < d0 + dn; d++)
                Kt[(size_t)d * ldk + r] = k[(size_t)r * D + d];
    }
}
