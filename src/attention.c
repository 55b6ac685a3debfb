/* Causal multi-head attention against the transformer's KV cache (attention.h).
 *
 * Keys are cached transposed, Kᵀ[D][cap], so that both products of a head
 * run along contiguous rows:
 *   scores  S[r][t] = Σ_d q[r][d] · Kᵀ[d][t]   (vectorized over keys t)
 *   output  y[r][e] = Σ_t S[r][t] · V[t][e]    (vectorized over the head's e)
 * The AVX-512 kernels keep a tile of rows × 32 keys (scores; 6 rows × 64
 * keys in bf16, a group's last tile only as many vectors of 16 keys as it
 * needs) or rows × 64 columns (output) in registers and accumulate with one
 * FMA per term, in the order d = 0, 1, ... (scores) and t = 0, 1, ...
 * (output): a row's result does not depend on the tile it shares, the
 * block, the task or the thread. Other CPUs and head widths that are not a
 * multiple of 16 go through vq_gemm with the same layout. Masked scores are
 * exact zeros, so a row whose block reads further keys only adds zero terms.
 *
 * With bf16 products on a CPU with AVX512_BF16, the cache holds bf16 in pairs
 * (gpt.h): keys [D/2][cap][2], so that one 32-bit lane holds a key's two
 * consecutive dimensions, and values [cap/2][D][2], two consecutive
 * positions of a column. One vdpbf16ps then adds two terms per lane: the
 * scores take the query in bf16, the output the probabilities in bf16, and
 * both sums run in fp32 in a fixed order as above. A partner slot past the
 * last position holds zero, so an odd count of keys reads no stale value.
 * Each task converts its own rows and head of the query to bf16, and each
 * row's softmax runs as one fused set of passes that writes the bf16
 * probabilities in place (vq_vsoftmax_bf16). */
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "attention.h"
#include "attention_amx.h"
#include "backend.h"
#include "bf16.h"
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

/* The scratch in which a task keeps the scores (and probabilities) of its
 * rows (`rows` rows of T floats): att holds n_head·n such rows, enough for
 * every task's own (row r0 of head h on), but a thread that keeps one slot
 * of its own (its index's rows) for all its tasks finds it in cache, where
 * a task's own rows, far apart from task to task, mostly are not. The same
 * results either way. In the 512x320 frame on an Emerald Rapids, the old
 * or the new code chosen at random per call: with the AMX kernels (int8
 * frame) attention of 256 rows and more 1.12-1.15x, of 7-16 rows
 * 1.06-1.10x, all 1.08-1.10x; fp32's 1.11x and 1.06x. */
static float *task_scores(float *att, int nh, int n, int T, int rows, int h, int r0)
{
    const int nt = omp_get_num_threads();
    if ((int64_t)nh * n >= (int64_t)rows * nt) return att + (size_t)omp_get_thread_num() * rows * T;
    return att + ((size_t)h * n + r0) * T;
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

#define AVX512BF16 __attribute__((target("avx512f,avx512bf16"), always_inline)) static inline

/* Two bf16 at p (a pair) broadcast to every 32-bit lane. */
AVX512 __m512i pair_at(const uint16_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof(v));
    return _mm512_set1_epi32(v);
}

/* S[M rows][tn <= 16 NK keys] = scale · qb[M][hd] · keys, from pairs
 * k2[hd/2][ldk][2] starting at the tile's first key: per pair of dimensions
 * NK (1..4) key vectors and M broadcasts for NK·M vdpbf16ps (M <= 6: up to
 * 24 accumulators) */
AVX512BF16 void scores_tile_bf16(const int M, const int NK, const uint16_t *qb, int ldq, const uint16_t *k2, int ldk,
                                 int hd, int tn, float scale, float *S, int lds)
{
    __mmask16 mk[4];
    _Pragma("GCC unroll 4") for (int v = 0; v < NK; v++) {
        const int c = tn - 16 * v;
        mk[v] = c >= 16 ? 0xffff : c <= 0 ? 0 : (__mmask16)((1u << c) - 1);
    }
    __m512 acc[6][4];
    _Pragma("GCC unroll 6") for (int r = 0; r < M; r++)
        _Pragma("GCC unroll 4") for (int v = 0; v < NK; v++) acc[r][v] = _mm512_setzero_ps();
    for (int dp = 0; dp < hd / 2; dp++) {
        const uint16_t *k = k2 + (size_t)dp * ldk * 2;
        __m512bh kv[4];
        _Pragma("GCC unroll 4") for (int v = 0; v < NK; v++)
            kv[v] = (__m512bh)_mm512_maskz_loadu_epi32(mk[v], k + 32 * v);
        _Pragma("GCC unroll 6") for (int r = 0; r < M; r++) {
            const __m512bh a = (__m512bh)pair_at(qb + (size_t)r * ldq + 2 * dp);
            _Pragma("GCC unroll 4") for (int v = 0; v < NK; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], a, kv[v]);
        }
    }
    /* scaled as they are stored: the softmax's own multiply */
    const __m512 vsc = _mm512_set1_ps(scale);
    _Pragma("GCC unroll 6") for (int r = 0; r < M; r++)
        _Pragma("GCC unroll 4") for (int v = 0; v < NK; v++)
            _mm512_mask_storeu_ps(S + (size_t)r * lds + 16 * v, mk[v], _mm512_mul_ps(acc[r][v], vsc));
}

/* y[M rows][16·NV columns] = P[M][0 .. T) · values, from probabilities in
 * bf16 (row stride ldp) and value pairs v2[T/2][D][2] at the tile's first
 * column; P holds zero past each row's keys and at index T when T is odd */
AVX512BF16 void output_tile_bf16(const int M, const int NV, const uint16_t *P, int ldp, const uint16_t *v2, int D,
                                 int T, float *y, uint16_t *yb, int ldy)
{
    __m512 acc[6][4];
    _Pragma("GCC unroll 6") for (int r = 0; r < M; r++)
        _Pragma("GCC unroll 4") for (int c = 0; c < NV; c++) acc[r][c] = _mm512_setzero_ps();
    for (int tp = 0; tp < (T + 1) / 2; tp++) {
        const uint16_t *vt = v2 + (size_t)tp * D * 2;
        __m512bh b[4];
        _Pragma("GCC unroll 4") for (int c = 0; c < NV; c++) b[c] = (__m512bh)_mm512_loadu_si512(vt + 32 * c);
        _Pragma("GCC unroll 6") for (int r = 0; r < M; r++) {
            const __m512bh a = (__m512bh)pair_at(P + (size_t)r * ldp + 2 * tp);
            _Pragma("GCC unroll 4") for (int c = 0; c < NV; c++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], a, b[c]);
        }
    }
    if (yb) {   /* rounded as vq_f32_to_bf16 */
        _Pragma("GCC unroll 6") for (int r = 0; r < M; r++)
            _Pragma("GCC unroll 4") for (int c = 0; c < NV; c++)
                _mm256_storeu_si256((__m256i *)(yb + (size_t)r * ldy + 16 * c),
                                    _mm512_cvtepi32_epi16(vq_bf16_round_512(acc[r][c])));
        return;
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

/* The body of a scores driver: rows pos0 .. pos0+rn-1 in groups of 8; a
 * group stops at the keys its last row sees (the rest of the block's T is
 * masked: the caller zeroes it); the tile (SCORES(m), m a constant) at rows
 * r and keys t. */
#define SCORES_GROUPS                                                                          \
    uint64_t flops = 0;                                                                        \
    for (int r = 0; r < rn; r += 8) {                                                          \
        const int m = rn - r < 8 ? rn - r : 8;                                                 \
        const int T = visible(pos0 + r + m - 1, n_unmasked);                                   \
        flops += 2ull * m * T * hd;                                                            \
        for (int t = 0; t < T; t += 32) {                                                      \
            const int tn = T - t < 32 ? T - t : 32;                                            \
            float *s = S + (size_t)r * lds + t;                                                \
            switch (m) {                                                                       \
            case 8: SCORES(8); break;                                                          \
            case 7: SCORES(7); break;                                                          \
            ROW_CASES_6_TO_1(SCORES)                                                           \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    return flops;

__attribute__((target("avx512f")))
static uint64_t scores_avx512(int rn, int pos0, int n_unmasked, int hd, const float *q, int ldq, const float *kt,
                              int ldk, float *S, int lds)
{
#define SCORES(M) scores_tile(M, q + (size_t)r * ldq, ldq, kt + t, ldk, hd, tn, s, lds)
    SCORES_GROUPS
#undef SCORES
}

/* the same from bf16 pairs (the query qb[rn][hd], keys k2[hd/2][ldk][2]) in
 * groups of 6 rows and tiles of 64 keys: a broadcast feeds 4 products */
__attribute__((target("avx512f,avx512bf16")))
static uint64_t scores_bf16(int rn, int pos0, int n_unmasked, int hd, const uint16_t *qb, int ldq,
                            const uint16_t *k2, int ldk, float scale, float *S, int lds)
{
    uint64_t flops = 0;
    for (int r = 0; r < rn; r += 6) {
        const int m = rn - r < 6 ? rn - r : 6;
        const int T = visible(pos0 + r + m - 1, n_unmasked);
        flops += 2ull * m * T * hd;
        for (int t = 0; t < T; t += 64) {
            const int tn = T - t < 64 ? T - t : 64;
            float *s = S + (size_t)r * lds + t;
            /* a last tile of fewer keys takes only its 1..3 vectors of them */
#define SCORES_NK(M, NK) \
    scores_tile_bf16(M, NK, qb + (size_t)r * ldq, ldq, k2 + (size_t)t * 2, ldk, hd, tn, scale, s, lds)
#define SCORES(M)                                                                              \
    do {                                                                                       \
        if (tn > 48) SCORES_NK(M, 4);                                                          \
        else if (tn > 32) SCORES_NK(M, 3);                                                     \
        else if (tn > 16) SCORES_NK(M, 2);                                                     \
        else SCORES_NK(M, 1);                                                                  \
    } while (0)
            switch (m) { ROW_CASES_6_TO_1(SCORES) }
#undef SCORES
#undef SCORES_NK
        }
    }
    return flops;
}
#undef SCORES_GROUPS

/* The body of an output driver: rows pos0 .. pos0+rn-1 in groups of 6; a
 * group reads the keys its last row sees (its other rows' probabilities are
 * zero there); the tile (OUTPUT(m) with nvc vectors, both constants) at
 * rows r and columns c. */
#define OUTPUT_ROWS(NV)                                                                        \
    {                                                                                          \
        const int nvc = NV;                                                                    \
        switch (m) { ROW_CASES_6_TO_1(OUTPUT) }                                                \
    }
#define OUTPUT_GROUPS                                                                          \
    uint64_t flops = 0;                                                                        \
    for (int r = 0; r < rn; r += 6) {                                                          \
        const int m = rn - r < 6 ? rn - r : 6;                                                 \
        const int T = visible(pos0 + r + m - 1, n_unmasked);                                   \
        flops += 2ull * m * T * hd;                                                            \
        for (int c = 0; c < hd; c += 64) {                                                     \
            const int nv = hd - c < 64 ? (hd - c) / 16 : 4;                                    \
            float *yc = y ? y + (size_t)r * ldy + c : NULL;                                    \
            uint16_t *ybc = y ? NULL : yb + (size_t)r * ldy + c;                               \
            switch (nv) {                                                                      \
            case 4: OUTPUT_ROWS(4) break;                                                      \
            case 3: OUTPUT_ROWS(3) break;                                                      \
            case 2: OUTPUT_ROWS(2) break;                                                      \
            default: OUTPUT_ROWS(1) break;                                                     \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    return flops;

__attribute__((target("avx512f")))
static uint64_t output_avx512(int rn, int pos0, int n_unmasked, int hd, const float *S, int lds, const float *v,
                              int ldv, float *y, int ldy)
{
    uint16_t *const yb = NULL;
#define OUTPUT(M) (void)ybc, output_tile(M, nvc, S + (size_t)r * lds, lds, v + c, ldv, T, yc, ldy)
    OUTPUT_GROUPS
#undef OUTPUT
}

__attribute__((target("avx512f,avx512bf16")))
static uint64_t output_bf16(int rn, int pos0, int n_unmasked, int hd, const uint16_t *P, int ldp,
                            const uint16_t *v2, int D, float *y, uint16_t *yb, int ldy)
{
#define OUTPUT(M) output_tile_bf16(M, nvc, P + (size_t)r * ldp, ldp, v2 + (size_t)c * 2, D, T, yc, ybc, ldy)
    OUTPUT_GROUPS
#undef OUTPUT
}
#undef OUTPUT_GROUPS
#undef OUTPUT_ROWS

/* A task's rows and head of the query in bf16 (vq_f32_to_bf16's bits), hd a
 * multiple of 16 */
__attribute__((target("avx512f")))
static void query_bf16(const float *q, uint16_t *qb, int D, int rn, int hd)
{
    for (int r = 0; r < rn; r++)
        for (int d = 0; d < hd; d += 16)
            _mm256_storeu_si256((__m256i *)(qb + (size_t)r * D + d),
                                _mm512_cvtepi32_epi16(vq_bf16_round_512(_mm512_loadu_ps(q + (size_t)r * D + d))));
}
#endif

static int forced_kernel = -1;
void vq_attention_force(int kernel) { __atomic_store_n(&forced_kernel, kernel, __ATOMIC_RELAXED); }

/* 1: the AVX-512 kernels, 0: vq_gemm */
int vq_attention_kernel(const struct vq_backend *be, int hd)
{
#ifdef VQ_ATT_X86
    const int f = __atomic_load_n(&forced_kernel, __ATOMIC_RELAXED);
    if (f >= 0) return f && vq_simd_level() >= 2 && hd % 16 == 0;
    if (!be) be = vq_backend_default();
    return vq_simd_level() >= 2 && hd % 16 == 0 && be->kind != VQ_BACKEND_REF;
#else
    (void)be; (void)hd;
    return 0;
#endif
}

int vq_attention_bf16_kernel(const struct vq_backend *be, int hd)
{
    return vq_attention_kernel(be, hd) && vq_simd_level() >= 3;
}

/* Scale, mask and softmax of a task's rows: row r (position pos0 + r) keeps
 * its visible keys, zeros up to Tb. */
static void softmax_rows(float *S, int lds, int rn, int pos0, int n_unmasked, int Tb, float scale)
{
    for (int r = 0; r < rn; r++) {
        const int vis = visible(pos0 + r, n_unmasked);
        float *s = S + (size_t)r * lds;
        for (int t = 0; t < vis; t++)
            s[t] *= scale;
        vq_softmax(s, vis);
        for (int t = vis; t < Tb; t++)
            s[t] = 0.0f;
    }
}

/* Rows pos0 .. pos0+rn-1's probabilities in bf16 from their scaled scores,
 * in place (row stride 2·lds halves), zeros past each row's keys up to Tb
 * and at Tb when Tb is odd. */
static void probabilities_bf16(float *S, int lds, int rn, int pos0, int n_unmasked, int Tb)
{
    int vis[VQ_SOFTMAX_ROWS];
    for (int r0 = 0; r0 < rn; r0 += VQ_SOFTMAX_ROWS) {
        const int m = rn - r0 < VQ_SOFTMAX_ROWS ? rn - r0 : VQ_SOFTMAX_ROWS;
        for (int r = 0; r < m; r++)
            vis[r] = visible(pos0 + r0 + r, n_unmasked);
        vq_vsoftmax_bf16(S + (size_t)r0 * lds, lds, m, vis, Tb);
    }
}

void vq_attention_bf16(const struct vq_exec *ex, const float *q, uint16_t *qb, const void *K2, int ldk, const void *V2, int D, int n_head,
                       int n_unmasked, int L0, int n, float *att, float *y, uint16_t *yb)
{
    VQ_OMP_ONLY(ex);
#ifdef VQ_ATT_X86
    const int nh = n_head, hd = D / nh, T = L0 + n;
    const float scale = (float)(1.0 / sqrt((double)hd));
    const int n_blocks = (n + ATT_ROWS - 1) / ATT_ROWS, amx = vq_attention_amx(hd);
#pragma omp parallel for schedule(dynamic, 1) if ((int64_t)n * T * D >= (1 << 20) || (int64_t)T * D >= (1 << 17)) \
    num_threads(vq_nt(ex))
    for (int task = 0; task < nh * n_blocks; task++) {
        const int h = task / n_blocks, r0 = (task % n_blocks) * ATT_ROWS;
        const int rn = n - r0 < ATT_ROWS ? n - r0 : ATT_ROWS;
        /* a group's scores, row stride T: on the tiles 16 rows in the
         * thread's slot (task_scores; the task's own rows where att holds
         * no slot per thread), else the task's first 6 rows */
        float *S = amx ? task_scores(att, nh, n, T, 16, h, r0) : att + ((size_t)h * n + r0) * T;
        const uint16_t *kh = (const uint16_t *)K2 + (size_t)h * hd * ldk;   /* hd/2 pairs of [ldk][2] */
        query_bf16(q + (size_t)r0 * D + h * hd, qb + (size_t)r0 * D + h * hd, D, rn, hd);
        uint64_t flops = 0;
        if (amx) {
            /* groups of 16 rows on the tiles (attention_amx.h), each
             * group's scores and probabilities in S (task_scores) */
            vq_amx_attention_begin();
            for (int g = 0; g < rn; g += 16) {
                const int m = rn - g < 16 ? rn - g : 16, pos = L0 + r0 + g;
                const int Tg = visible(pos + m - 1, n_unmasked);
                const size_t o = (size_t)(r0 + g) * D + h * hd;
                flops += vq_amx_scores(m, hd, qb + o, D, kh, ldk, Tg, scale, S, T);
                probabilities_bf16(S, T, m, pos, n_unmasked, Tg);
                flops += vq_amx_output(m, hd, (const uint16_t *)S, 2 * T, (const uint16_t *)V2 + (size_t)h * hd * 2, D,
                                       Tg, y ? y + o : NULL, y ? NULL : yb + o, D);
            }
            vq_amx_attention_end();
            vq_flops_add(flops);
            continue;
        }
        /* a group of 6 rows at a time from scores to output, each group's
         * scores and probabilities (6 x Tg) in the task's first 6 rows of
         * scratch, which stay in cache (a thread's slot, task_scores,
         * measured 0.98-1.01x on the Emerald Rapids with AMX off) */
        for (int g = 0; g < rn; g += 6) {
            const int m = rn - g < 6 ? rn - g : 6, pos = L0 + r0 + g;
            const int Tg = visible(pos + m - 1, n_unmasked);
            float *Sg = S;
            flops += scores_bf16(m, pos, n_unmasked, hd, qb + (size_t)(r0 + g) * D + h * hd, D, kh, ldk, scale, Sg, T);
            probabilities_bf16(Sg, T, m, pos, n_unmasked, Tg);
            const size_t o = (size_t)(r0 + g) * D + h * hd;
            flops += output_bf16(m, pos, n_unmasked, hd, (const uint16_t *)Sg, 2 * T,
                                 (const uint16_t *)V2 + (size_t)h * hd * 2, D, y ? y + o : NULL, y ? NULL : yb + o, D);
        }
        vq_flops_add(flops);   /* once a task: the counter is shared by the threads */
    }
#else
    (void)q; (void)qb; (void)K2; (void)ldk; (void)V2; (void)D; (void)n_head; (void)n_unmasked; (void)L0; (void)n;
    (void)att; (void)y; (void)yb;
#endif
}

/* the caches' 32-bit lanes, written over memory that the kernels read as
 * bf16 halves */
typedef uint32_t lane32 __attribute__((may_alias));

#ifdef VQ_ATT_X86
/* A 16 x 16 transpose of 32-bit lanes in registers: v[i] lane j to lane i
 * of v[j]. Pairs of rows interleave lanes, then pairs of pairs 64-bit
 * halves (each 128-bit lane of a group of 4 rows holds a 4 x 4 transpose),
 * then the 128-bit lanes of the 4 groups trade places. */
AVX512 void transpose_16x16(__m512i v[16])
{
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(v[i], v[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(v[i], v[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {   /* v[i + c], 128-bit lane j: column 4j + c of rows i .. i + 3 */
        v[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        v[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        v[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        v[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int c = 0; c < 4; c++) {
        const __m512i a = _mm512_shuffle_i32x4(v[c], v[4 + c], 0x44), b = _mm512_shuffle_i32x4(v[c], v[4 + c], 0xee);
        const __m512i e = _mm512_shuffle_i32x4(v[8 + c], v[12 + c], 0x44);
        const __m512i f = _mm512_shuffle_i32x4(v[8 + c], v[12 + c], 0xee);
        t[c] = _mm512_shuffle_i32x4(a, e, 0x88);
        t[4 + c] = _mm512_shuffle_i32x4(a, e, 0xdd);
        t[8 + c] = _mm512_shuffle_i32x4(b, f, 0x88);
        t[12 + c] = _mm512_shuffle_i32x4(b, f, 0xdd);
    }
    for (int i = 0; i < 16; i++) v[i] = t[i];
}

/* A tile of 16 lanes (32 dimensions) x rn <= 16 positions of the keys: each
 * row rounded to bf16 (vq_bf16_round) and packed in registers, the tile
 * transposed there, then each lane's rn positions stored as one vector. */
__attribute__((target("avx512f")))
static void keys_tile_512(const float *k, int D, int rn, lane32 *dst, int ldk)
{
    __m512i rows[16];
    for (int r = 0; r < 16; r++) {
        if (r >= rn) {
            rows[r] = _mm512_setzero_si512();
            continue;
        }
        __m512i h[2];
        for (int half = 0; half < 2; half++)
            h[half] = vq_bf16_round_512(_mm512_loadu_ps(k + (size_t)r * D + 16 * half));
        rows[r] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(h[0])),
                                     _mm512_cvtepi32_epi16(h[1]), 1);
    }
    transpose_16x16(rows);
    const __mmask16 m = (__mmask16)((1u << rn) - 1);
    for (int q = 0; q < 16; q++) _mm512_mask_storeu_epi32(dst + (size_t)q * ldk, m, rows[q]);
}
#endif

/* The caches' keys are stored transposed (a key's dimensions land in as
 * many rows of the cache, ldk apart), so each store meets a line no
 * prefetcher brings: those of the rows STORE_AHEAD blocks of 16 on are read
 * for writing (prefetchw: every CPU with AVX-512 has it) while a block is
 * stored, and the blocks are shared by the threads from STORE_PAR elements
 * on (was 2^16). In the 512x320 int8 frame on an Emerald Rapids, the old or
 * the new code chosen at random per call: the bf16 keys' stores 1.45-1.67x
 * (1-15 rows 1.8-2.4x); in the fp32 frame, fp32's (vq_transpose_keys)
 * 2.36x; the same bits. */
#define STORE_AHEAD 2
#define STORE_PAR (1 << 10)

#ifdef VQ_ATT_X86
/* As a store into rows i0 .. i0 + 15 of n_rows begins (4-byte lanes, ld
 * lanes apart; the span stored, len bytes from lane off of each row): the
 * rows STORE_AHEAD blocks of 16 on, read for writing. */
static inline void store_ahead(const void *base, size_t ld, size_t off, int i0, int n_rows, size_t len)
{
    const int ia = i0 + 16 * STORE_AHEAD, rows = n_rows - ia < 16 ? n_rows - ia : 16;
    for (int q = 0; q < rows; q++) {
        const char *a = (const char *)base + 4 * ((size_t)(ia + q) * ld + off), *e = a + len;
        for (const char *c = (const char *)((uintptr_t)a & ~(uintptr_t)63); c < e; c += 64)
            __asm__ volatile("prefetchw %0" : : "m"(*c));
    }
}
#endif

/* Keys go to [D/2][ldk] 32-bit lanes, a lane holding dimensions 2p (low
 * half) and 2p + 1 of one position: a transpose of the rows' bf16 pairs,
 * done in tiles of 16 positions x 16 lanes so that reads and writes stay
 * contiguous (a lane's 16 positions are 64 bytes). */
void vq_store_keys_bf16(const struct vq_exec *ex, const float *k, int n, int D, void *K2, int ldk, int L0)
{
    VQ_OMP_ONLY(ex);
    lane32 *kp = K2;
    const int P = D / 2;
#ifdef VQ_ATT_X86
    const int tiles512 = vq_simd_level() >= 2;
#endif
#pragma omp parallel for schedule(static) if ((int64_t)n * D >= STORE_PAR) num_threads(vq_nt(ex))
    for (int p0 = 0; p0 < P; p0 += 16) {
        const int pn = P - p0 < 16 ? P - p0 : 16;
#ifdef VQ_ATT_X86
        if (tiles512) store_ahead(kp, (size_t)ldk, (size_t)L0, p0, P, 4 * (size_t)n);
#endif
        for (int r0 = 0; r0 < n; r0 += 16) {
            const int rn = n - r0 < 16 ? n - r0 : 16;
#ifdef VQ_ATT_X86
            if (pn == 16 && tiles512) {
                keys_tile_512(k + (size_t)r0 * D + 2 * p0, D, rn, kp + (size_t)p0 * ldk + L0 + r0, ldk);
                continue;
            }
#endif
            uint16_t rows[16][32];   /* row r's dimensions 2 p0 .. 2 (p0 + pn) - 1 in bf16 */
            uint32_t t[16][16];
            for (int r = 0; r < rn; r++)
                vq_f32_to_bf16(k + (size_t)(r0 + r) * D + 2 * p0, rows[r], (size_t)2 * pn);
            for (int r = 0; r < rn; r++)
                for (int q = 0; q < pn; q++)
                    t[q][r] = rows[r][2 * q] | (uint32_t)rows[r][2 * q + 1] << 16;
            for (int q = 0; q < pn; q++)
                memcpy(kp + (size_t)(p0 + q) * ldk + L0 + r0, t[q], sizeof(uint32_t) * rn);
        }
    }
}

/* Values go to [cap/2][D] 32-bit lanes, a lane holding one dimension of
 * positions 2u (low half) and 2u + 1: two rows interleaved. A position
 * without its partner in this call writes its half alone. */
static void store_value_half(uint16_t *vp, const float *v, int t, int D)
{
    uint16_t *row = vp + (size_t)(t / 2) * D * 2 + (t & 1);
    for (int c = 0; c < D; c++)
        row[2 * c] = vq_bf16_round(v[c]);
}

#ifdef VQ_ATT_X86
/* lane[c] = a[c] (low half) and b[c] (high half) in bf16, c < D */
__attribute__((target("avx512f")))
static void value_pairs_512(const float *a, const float *b, int D, lane32 *lane)
{
    for (int c = 0; c < D; c += 16) {
        const __mmask16 m = D - c >= 16 ? 0xffff : (__mmask16)((1u << (D - c)) - 1);
        const __m512i lo = vq_bf16_round_512(_mm512_maskz_loadu_ps(m, a + c));
        const __m512i hi = vq_bf16_round_512(_mm512_maskz_loadu_ps(m, b + c));
        _mm512_mask_storeu_epi32(lane + c, m, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
}
#endif

void vq_store_values_bf16(const struct vq_exec *ex, const float *v, int n, int D, void *V2, int L0)
{
    VQ_OMP_ONLY(ex);
    uint16_t *vp = V2;
    const int end = L0 + n, odd0 = L0 & 1;
    const int pairs = (n - odd0) / 2;    /* whole lanes: positions a, a + 1, a even */
#ifdef VQ_ATT_X86
    const int lanes512 = vq_simd_level() >= 2;
#endif
    if (odd0) store_value_half(vp, v, L0, D);
#pragma omp parallel for schedule(static) if ((int64_t)n * D >= (1 << 16)) \
    num_threads(vq_nt(ex))
    for (int u = 0; u < pairs; u++) {
        const int r = odd0 + 2 * u, t = L0 + r;
        const float *a = v + (size_t)r * D, *b = a + D;
        lane32 *lane = (lane32 *)(vp + (size_t)(t / 2) * D * 2);
#ifdef VQ_ATT_X86
        if (lanes512) {
            value_pairs_512(a, b, D, lane);
            continue;
        }
#endif
        for (int c = 0; c < D; c++)
            lane[c] = vq_bf16_round(a[c]) | (uint32_t)vq_bf16_round(b[c]) << 16;
    }
    if (odd0 + 2 * pairs < n) store_value_half(vp, v + (size_t)(n - 1) * D, end - 1, D);
    if (end & 1) {                     /* the partner of the last position */
        uint16_t *row = vp + (size_t)(end / 2) * D * 2 + 1;
        for (int c = 0; c < D; c++)
            row[2 * c] = 0;
    }
}

void vq_attention(const struct vq_exec *ex, const float *q, const float *Kt, int ldk, const float *V, int D, int n_head, int n_unmasked,
                  int L0, int n, float *att, float *y)
{
    const int nh = n_head, hd = D / nh, T = L0 + n;
    const float scale = (float)(1.0 / sqrt((double)hd));
    const int n_blocks = (n + ATT_ROWS - 1) / ATT_ROWS;
    const int kernel = vq_attention_kernel(ex ? ex->be : NULL, hd);

    /* one new row still reads every key and value of the cache (T x D floats
     * each): spread over the heads once that is more than a little */
#pragma omp parallel for schedule(dynamic, 1) if ((int64_t)n * T * D >= (1 << 20) || (int64_t)T * D >= (1 << 17)) \
    num_threads(vq_nt(ex))
    for (int task = 0; task < nh * n_blocks; task++) {
        const int h = task / n_blocks, r0 = (task % n_blocks) * ATT_ROWS;
        const int rn = n - r0 < ATT_ROWS ? n - r0 : ATT_ROWS;
        /* keys 0..pos are visible; the first n_unmasked see each other */
        const int Tb = visible(L0 + r0 + rn - 1, n_unmasked);
        float *S = task_scores(att, nh, n, T, ATT_ROWS, h, r0);   /* [rn][Tb], row stride T */
        const float *qh = q + (size_t)r0 * D + h * hd, *kh = Kt + (size_t)h * hd * ldk, *vh = V + h * hd;
        float *yh = y + (size_t)r0 * D + h * hd;
#ifdef VQ_ATT_X86
        if (kernel) {
            vq_flops_add(scores_avx512(rn, L0 + r0, n_unmasked, hd, qh, D, kh, ldk, S, T));
        } else
#endif
            vq_gemm(ex, 0, 0, rn, Tb, hd, qh, D, kh, ldk, 0.0f, S, T);
        softmax_rows(S, T, rn, L0 + r0, n_unmasked, Tb, scale);
#ifdef VQ_ATT_X86
        if (kernel) {
            vq_flops_add(output_avx512(rn, L0 + r0, n_unmasked, hd, S, T, vh, D, yh, D));
        } else
#endif
            vq_gemm(ex, 0, 0, rn, hd, Tb, S, T, vh, D, 0.0f, yh, D);
    }
}

#ifdef VQ_ATT_X86
/* Kt[d0 + d][r] = k[r][d0 + d] for d < 16 and rows r < n8 (a multiple of
 * 8), in blocks of 8 rows x 8 dimensions transposed in registers (AVX2):
 * 8 loads and 8 stores a block instead of 64 of each. */
__attribute__((target("avx2")))
static void transpose_keys_256(const float *k, int n8, int D, int d0, float *Kt, int ldk)
{
    for (int r = 0; r < n8; r += 8)
        for (int h = 0; h < 16; h += 8) {
            const float *src = k + (size_t)r * D + d0 + h;
            __m256 a[8], b[8];
            for (int i = 0; i < 8; i++) a[i] = _mm256_loadu_ps(src + (size_t)i * D);
            for (int i = 0; i < 8; i += 2) {   /* pairs of rows interleaved */
                b[i] = _mm256_unpacklo_ps(a[i], a[i + 1]);
                b[i + 1] = _mm256_unpackhi_ps(a[i], a[i + 1]);
            }
            for (int i = 0; i < 8; i += 4) {   /* then quads: 4 rows' dims in each 128-bit half */
                a[i] = _mm256_shuffle_ps(b[i], b[i + 2], 0x44);
                a[i + 1] = _mm256_shuffle_ps(b[i], b[i + 2], 0xee);
                a[i + 2] = _mm256_shuffle_ps(b[i + 1], b[i + 3], 0x44);
                a[i + 3] = _mm256_shuffle_ps(b[i + 1], b[i + 3], 0xee);
            }
            float *dst = Kt + (size_t)(d0 + h) * ldk + r;
            for (int i = 0; i < 4; i++) {      /* rows 0-3 and 4-7 of dimension i, i + 4 */
                _mm256_storeu_ps(dst + (size_t)i * ldk, _mm256_permute2f128_ps(a[i], a[i + 4], 0x20));
                _mm256_storeu_ps(dst + (size_t)(i + 4) * ldk, _mm256_permute2f128_ps(a[i], a[i + 4], 0x31));
            }
        }
}
#endif

void vq_transpose_keys(const struct vq_exec *ex, const float *k, int n, int D, float *Kt, int ldk)
{
    VQ_OMP_ONLY(ex);
#ifdef VQ_ATT_X86
    const int ahead = vq_simd_level() >= 2;   /* prefetchw: as vq_store_keys_bf16 */
    const int avx2 = vq_simd_level() == 1;
#endif
#pragma omp parallel for schedule(static) if ((int64_t)n * D >= STORE_PAR) num_threads(vq_nt(ex))
    for (int d0 = 0; d0 < D; d0 += 16) {
        const int dn = D - d0 < 16 ? D - d0 : 16;
        int r0 = 0;
#ifdef VQ_ATT_X86
        if (ahead) store_ahead(Kt, (size_t)ldk, 0, d0, D, 4 * (size_t)n);
        if (avx2 && dn == 16) {
            r0 = n & ~7;
            transpose_keys_256(k, r0, D, d0, Kt, ldk);
        }
#endif
        for (int r = r0; r < n; r++)
            for (int d = d0; d < d0 + dn; d++)
                Kt[(size_t)d * ldk + r] = k[(size_t)r * D + d];
    }
}
