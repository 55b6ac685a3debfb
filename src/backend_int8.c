/* int8 products: weights quantized per output channel once, activations per
 * row at run time, exact int32 sums (backend_int8.h).
 *
 * Layout: the N columns and K padded to multiples of 64; each block of 64
 * columns is [K/4][64][4] bytes, so that one 64-byte load holds 16 columns
 * × 4 consecutive k, what vpdpbusd multiplies by 4 bytes of a row broadcast
 * to every lane, and 16 such rows are an AMX tile of 64 k (int8_amx.c).
 * Padding weights are 0. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "amx.h"
#include "backend_dnnl.h"
#include "backend_int8.h"
#include "balance.h"
#include "gemm.h"
#include "int8_amx.h"
#include "largealloc.h"
#include "scratch.h"
#include "vmath.h"
#include "vmath_poly.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define VQ_INT8_X86 1
#endif

#define BLK 64              /* columns per block                         */
#define ROWS 6              /* rows per register tile (6 x 4 accumulators) */

struct vq_int8_weight {
    struct vq_packed hdr;   /* precision VQ_PREC_INT8, N, K */
    int Np, Kp;
    int8_t *q;              /* Np/64 blocks of [Kp/4][64][4]            */
    float *scale;           /* [Np] sw; 0 on padding                    */
    float *csw;             /* [Np] (float)Σk Wq[n][k] · sw, rounded    */
};

static int forced = -1;
/* the VNNI and scalar kernels' column blocks: each thread's speed as measured */
static struct vq_balance blocks_balance;
struct vq_balance *vq_int8_blocks_balance(void) { return &blocks_balance; }
void vq_int8_force(int kernel) { __atomic_store_n(&forced, kernel, __ATOMIC_RELAXED); }

int vq_int8_native(void)
{
#ifdef VQ_INT8_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
#else
    return 0;
#endif
}

static int use_vnni(void)
{
    const int f = __atomic_load_n(&forced, __ATOMIC_RELAXED);
    return f != 0 && vq_int8_native();
}

/* Nearest integer, ties to even, for |v| < 2^22 (vectorises, unlike lrintf). */
static inline float round_even(float v) { return (v + 12582912.0f) - 12582912.0f; }

static inline size_t at(int Kp, int n, int k)
{
    return ((size_t)(n / BLK) * (Kp / 4) + k / 4) * (BLK * 4) + (size_t)(n % BLK) * 4 + k % 4;
}

void vq_int8_pack_free(struct vq_packed *p)
{
    struct vq_int8_weight *w = (struct vq_int8_weight *)p;
    if (!w) return;
    free(w->q);
    free(w->scale);
    free(w->csw);
    free(w);
}

struct vq_packed *vq_int8_pack(const float *W, int N, int K)
{
    if (N < 1 || K < 1) return NULL;
    struct vq_int8_weight *w = calloc(1, sizeof(*w));
    if (!w) return NULL;
    w->hdr = (struct vq_packed){ VQ_PREC_INT8, N, K };
    w->Np = (N + BLK - 1) / BLK * BLK;
    w->Kp = (K + 63) / 64 * 64;
    w->q = vq_alloc_large((size_t)w->Np * w->Kp);
    w->scale = calloc((size_t)w->Np, sizeof(float));
    w->csw = calloc((size_t)w->Np, sizeof(float));
    if (!w->q || !w->scale || !w->csw) {
        vq_int8_pack_free(&w->hdr);
        return NULL;
    }
    memset(w->q, 0, (size_t)w->Np * w->Kp);
    for (int n = 0; n < N; n++) {
        const float *row = W + (size_t)n * K;
        float amax = 0.0f;
        for (int k = 0; k < K; k++) {
            const float a = row[k] < 0 ? -row[k] : row[k];
            if (a > amax) amax = a;
        }
        const float s = amax > 0.0f ? amax / 127.0f : 1.0f, inv = 1.0f / s;
        int32_t sum = 0;
        for (int k = 0; k < K; k++) {
            float v = round_even(row[k] * inv);
            v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
            w->q[at(w->Kp, n, k)] = (int8_t)v;
            sum += (int32_t)v;
        }
        w->scale[n] = s;
        w->csw[n] = (float)sum * s;
    }
    return &w->hdr;
}

int vq_int8_weight(const struct vq_packed *p, int n, int k, float *scale)
{
    const struct vq_int8_weight *w = (const struct vq_int8_weight *)p;
    if (scale) *scale = w->scale[n];
    return w->q[at(w->Kp, n, k)];
}

#ifdef VQ_INT8_X86
/* quantize_row_scalar's arithmetic 16 lanes at a time (min and max are exact
 * in any order; the rounding is the same nearest-even), so the same bytes,
 * scale and zero point. Whole groups of 64 round in the conversion to int32
 * (nearest even, as its rounding), add the zero point as integers and clamp
 * to 0..255 in the two saturating packs, then one lane permutation: the
 * float path's bytes in 0.6x its time. */
__attribute__((target("avx512f,avx512bw")))
static void quantize_row_512(const float *x, int K, uint8_t *q, float *scale, int32_t *zero)
{
    __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
    int k = 0;
    for (; k + 32 <= K; k += 32) {
        const __m512 a = _mm512_loadu_ps(x + k), b = _mm512_loadu_ps(x + k + 16);
        lo = _mm512_min_ps(lo, _mm512_min_ps(a, b));
        hi = _mm512_max_ps(hi, _mm512_max_ps(a, b));
    }
    for (; k < K; k += 16) {
        const __mmask16 m = K - k >= 16 ? 0xffff : (__mmask16)((1u << (K - k)) - 1);
        const __m512 v = _mm512_maskz_loadu_ps(m, x + k);   /* padding lanes 0: the range holds 0 anyway */
        lo = _mm512_min_ps(lo, v);
        hi = _mm512_max_ps(hi, v);
    }
    const float l = _mm512_reduce_min_ps(lo), h = _mm512_reduce_max_ps(hi);
    const float s = h > l ? (h - l) / 255.0f : 1.0f, inv = 1.0f / s;
    const float z = round_even(-l * inv);
    const __m512 vi = _mm512_set1_ps(inv), vz = _mm512_set1_ps(z), top = _mm512_set1_ps(255.0f);
    const __m512i zi = _mm512_set1_epi32((int32_t)z);
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
#define QUANT16(o)                                                                             \
    _mm512_add_epi32(_mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + k + (o)), vi),            \
                                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zi)
    for (k = 0; k + 64 <= K; k += 64) {
        const __m512i w01 = _mm512_packus_epi32(QUANT16(0), QUANT16(16));
        const __m512i w23 = _mm512_packus_epi32(QUANT16(32), QUANT16(48));
        _mm512_storeu_si512(q + k, _mm512_permutexvar_epi32(order, _mm512_packus_epi16(w01, w23)));
    }
#undef QUANT16
    for (; k < K; k += 16) {
        const __mmask16 m = K - k >= 16 ? 0xffff : (__mmask16)((1u << (K - k)) - 1);
        const __m512 r = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + k), vi),
                                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(r, vz), _mm512_setzero_ps()), top);
        _mm512_mask_cvtepi32_storeu_epi8(q + k, m, _mm512_cvtps_epi32(v));
    }
    *scale = s;
    *zero = (int32_t)z;
}
#endif

/* One row: its range widened to hold 0, 255 steps; q = round(x / s) + z. */
static void quantize_row_scalar(const float *x, int K, uint8_t *q, float *scale, int32_t *zero)
{
    float lo = 0.0f, hi = 0.0f;
    for (int k = 0; k < K; k++) {
        lo = x[k] < lo ? x[k] : lo;
        hi = x[k] > hi ? x[k] : hi;
    }
    const float s = hi > lo ? (hi - lo) / 255.0f : 1.0f, inv = 1.0f / s;
    const float z = round_even(-lo * inv);
    for (int k = 0; k < K; k++) {
        float v = round_even(x[k] * inv) + z;
        v = v > 255.0f ? 255.0f : v < 0.0f ? 0.0f : v;
        q[k] = (uint8_t)v;
    }
    *scale = s;
    *zero = (int32_t)z;
}

void vq_int8_quantize_row(const float *x, int K, uint8_t *q, float *scale, int32_t *zero)
{
#ifdef VQ_INT8_X86
    if (use_vnni()) {
        quantize_row_512(x, K, q, scale, zero);
        return;
    }
#endif
    quantize_row_scalar(x, K, q, scale, zero);
}

/* The epilogue of one element, the same in every kernel:
 * (acc − zx·colsum)·(sx·sw) + b, colsum = Σk Wq[n][k], as acc·(sx·sw) +
 * (b − zx·sx·csw), two fused multiply-adds on floats. The exact integer
 * acc − zx·colsum took a 32-bit multiply and a subtraction more per
 * element: beside the AMX tiles, where the epilogue's vector instructions
 * cost their whole time (precision.md, the twentieth round), the K = 1024
 * products ran 1.06-1.11x faster without them. The two terms cancel in
 * part, so the result is within a few units of 2^-24 of the terms' size
 * (test_ops bounds it), where the operands' 8-bit steps are about 10^5
 * times coarser. */
static inline float zero_term(int32_t zx, float sx)
{
    return -((float)zx * sx);
}

static inline float finish(int32_t acc, float zs, float sx, float sw, float csw, const float *b, int n)
{
    const float c = b ? fmaf(csw, zs, b[n]) : csw * zs;
    return fmaf((float)acc, sx * sw, c);
}

/* GELU of a tile's rows (columns n0 .. n1), in place, with vq_vgelu_poly:
 * an element's bits do not depend on the span it comes in (vmath.h). Its
 * few ulp of difference from vq_gelu's erff are far below the 8-bit steps
 * that the next product quantizes the hidden layer to, and it takes 0.8x
 * the time (the hidden layer's GELU was 4 % of an int8 frame). */
static void gelu_rows(float *y, int N, int M, int n0, int n1)
{
    if (n1 > n0)
        for (int i = 0; i < M; i++) vq_vgelu_poly(y + (size_t)i * N + n0, (size_t)(n1 - n0));
}

/* ---- the scalar reference kernel: one block of columns for all rows ------ */
static void block_scalar(const struct vq_int8_weight *w, const uint8_t *xq, int ldx, int T, const float *sx,
                         const int32_t *zx, int n0, const float *b, int epi, float *y)
{
    const int N = w->hdr.N, n1 = n0 + BLK < N ? n0 + BLK : N, Kp = w->Kp;
    for (int t = 0; t < T; t++)
        for (int n = n0; n < n1; n++) {
            int32_t acc = 0;
            for (int k = 0; k < Kp; k++) acc += (int32_t)xq[(size_t)t * ldx + k] * w->q[at(Kp, n, k)];
            const float v = finish(acc, zero_term(zx[t], sx[t]), sx[t], w->scale[n], w->csw[n], b, n);
            float *o = &y[(size_t)t * N + n];
            *o = epi == VQ_EPI_ADD ? *o + v : v;
        }
    if (epi == VQ_EPI_GELU) gelu_rows(y, N, T, n0, n1);
}

#ifdef VQ_INT8_X86
#define VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))

/* finish() of 16 columns of one row from their terms (zs, sx the row's;
 * cv, sv the columns' csw and sw, bv their bias where bias is set): the
 * column term b − zx·sx·csw, then acc·(sx·sw) + it; the one place the
 * vector kernels make these bits. */
VNNI __attribute__((always_inline)) static inline __m512 finish_16(__m512i acc, __m512 zs, __m512 sx, __m512 cv,
                                                                  __m512 sv, int bias, __m512 bv)
{
    const __m512 c = bias ? _mm512_fmadd_ps(cv, zs, bv) : _mm512_mul_ps(cv, zs);
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_mul_ps(sx, sv), c);
}

/* finish_16 of columns c0 .. from the packing's arrays csw, sw and the bias
 * b (may be NULL); mk: the columns below N. */
VNNI __attribute__((always_inline)) static inline __m512 finish_512(const float *csw, const float *sw, __m512i acc,
                                                                   __m512 zs, __m512 sx, int c0, const float *b,
                                                                   __mmask16 mk)
{
    const __m512 bv = b ? _mm512_maskz_loadu_ps(mk, b + c0) : _mm512_setzero_ps();
    return finish_16(acc, zs, sx, _mm512_loadu_ps(csw + c0), _mm512_loadu_ps(sw + c0), b != NULL, bv);
}

/* The epilogue of a whole block (64 columns below N) for M rows (a constant
 * 1..ROWS), the epilogue epi a constant too: the 24 sums leave the
 * registers first (stored to L1), then each row's 4 vectors are finished
 * one at a time by finish_16, the row's terms broadcast once, then the
 * sum into y or GELU
 * (vq_gelu_poly_512: gelu_rows' bits). Finished on the 24 registers, the
 * compiler spilled them and, since a store to y may alias the packing's
 * terms, reloaded those for every vector and tested epi each time: in
 * one process, old and new code alternating (the same bits), hot, the
 * products with VQ_EPI_ADD took 0.87-0.97x the time, the others
 * 0.95-1.00x; in the 512x320 int8 frame those of 256 rows and more 0.96x
 * (precision.md, the twenty-fifth round). */
VNNI __attribute__((always_inline)) static inline void epilogue_block(const struct vq_int8_weight *w, const int M,
                                                                      __m512i acc[ROWS][4], const float *sx,
                                                                      const int32_t *zx, int n0, const float *b,
                                                                      const int epi, float *y)
{
    const int N = w->hdr.N;
    const float *csw = w->csw + n0, *sw = w->scale + n0, *bn = b ? b + n0 : NULL;
    int32_t t[ROWS][64] __attribute__((aligned(64)));
#pragma GCC unroll 6
    for (int i = 0; i < M; i++)
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) _mm512_store_si512(&t[i][16 * q], acc[i][q]);
#pragma GCC unroll 1
    for (int i = 0; i < M; i++) {
        const __m512 z = _mm512_set1_ps(zero_term(zx[i], sx[i])), sr = _mm512_set1_ps(sx[i]);
        float *o = y + (size_t)i * N + n0;
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
            const __m512 bv = bn ? _mm512_loadu_ps(bn + 16 * q) : _mm512_setzero_ps();
            __m512 v = finish_16(_mm512_load_si512(&t[i][16 * q]), z, sr, _mm512_loadu_ps(csw + 16 * q),
                                 _mm512_loadu_ps(sw + 16 * q), bn != NULL, bv);
            if (epi == VQ_EPI_GELU) v = vq_gelu_poly_512(v);                                   /* gelu_rows' bits */
            else if (epi == VQ_EPI_ADD) v = _mm512_add_ps(_mm512_loadu_ps(o + 16 * q), v);    /* vq_add's y + x */
            _mm512_storeu_ps(o + 16 * q, v);
        }
    }
}

/* The epilogue of M rows x one block of 64 columns from their int32 sums
 * in registers: epilogue_block where the block is whole, else (the last
 * block of an N that is not a multiple of 64) finish_512 for each vector,
 * masked, and the sum into y or GELU (on a copy of the tile in L1). */
VNNI __attribute__((always_inline)) static inline void epilogue_vnni(const struct vq_int8_weight *w, const int M,
                                                                     __m512i acc[ROWS][4], const float *sx,
                                                                     const int32_t *zx, int n0, const float *b,
                                                                     int epi, float *y)
{
    const int N = w->hdr.N;
    if (N - n0 >= BLK) {   /* the epilogue a constant in each copy */
        switch (epi) {
        case VQ_EPI_ADD: epilogue_block(w, M, acc, sx, zx, n0, b, VQ_EPI_ADD, y); return;
        case VQ_EPI_GELU: epilogue_block(w, M, acc, sx, zx, n0, b, VQ_EPI_GELU, y); return;
        default: epilogue_block(w, M, acc, sx, zx, n0, b, 0, y); return;
        }
    }
    float g[ROWS][64] __attribute__((aligned(64)));
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
        const int c0 = n0 + 16 * q, nv = N - c0 < 0 ? 0 : N - c0 > 16 ? 16 : N - c0;
        if (!nv) break;
        const __mmask16 mk = (__mmask16)((1u << nv) - 1);
#pragma GCC unroll 6
        for (int i = 0; i < M; i++) {
            const __m512 zs = _mm512_set1_ps(zero_term(zx[i], sx[i])), s = _mm512_set1_ps(sx[i]);
            __m512 v = finish_512(w->csw, w->scale, acc[i][q], zs, s, c0, b, mk);
            float *o = y + (size_t)i * N + c0;
            if (epi == VQ_EPI_GELU) {
                _mm512_store_ps(&g[i][16 * q], v);
                continue;
            }
            if (epi == VQ_EPI_ADD) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, o), v);   /* vq_add's y + x */
            _mm512_mask_storeu_ps(o, mk, v);
        }
    }
    if (epi != VQ_EPI_GELU) return;
#pragma GCC unroll 1
    for (int i = 0; i < M; i++)
#pragma GCC unroll 2
        for (int q = 0; q < 4; q++) {   /* gelu_rows' bits */
            const int c0 = n0 + 16 * q, nv = N - c0 < 0 ? 0 : N - c0 > 16 ? 16 : N - c0;
            if (!nv) break;
            _mm512_mask_storeu_ps(y + (size_t)i * N + c0, (__mmask16)((1u << nv) - 1),
                                  vq_gelu_poly_512(_mm512_load_ps(&g[i][16 * q])));
        }
}

/* M rows (a constant 1..ROWS: the accumulators stay in registers) against one
 * block of 64 columns: per group of 4 k, 4 weight vectors and one broadcast
 * of each row's 4 bytes, 4 M vpdpbusd. */
VNNI __attribute__((always_inline)) static inline void tile_vnni(const struct vq_int8_weight *w, const uint8_t *xq,
                                                                 int ldx, const int M, const float *sx,
                                                                 const int32_t *zx, int n0, const float *b, int epi,
                                                                 float *y)
{
    const int Kp = w->Kp;
    const int8_t *blk = w->q + (size_t)(n0 / BLK) * Kp * BLK;
    __m512i acc[ROWS][4];
#pragma GCC unroll 6
    for (int i = 0; i < M; i++)
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) acc[i][q] = _mm512_setzero_si512();
    for (int p = 0; p < Kp / 4; p++) {
        const int8_t *bp = blk + (size_t)p * BLK * 4;
        const __m512i w0 = _mm512_load_si512(bp), w1 = _mm512_load_si512(bp + 64);
        const __m512i w2 = _mm512_load_si512(bp + 128), w3 = _mm512_load_si512(bp + 192);
#pragma GCC unroll 6
        for (int i = 0; i < M; i++) {
            int32_t four;
            memcpy(&four, xq + (size_t)i * ldx + 4 * p, 4);
            const __m512i a = _mm512_set1_epi32(four);
            acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], a, w0);
            acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], a, w1);
            acc[i][2] = _mm512_dpbusd_epi32(acc[i][2], a, w2);
            acc[i][3] = _mm512_dpbusd_epi32(acc[i][3], a, w3);
        }
    }
    epilogue_vnni(w, M, acc, sx, zx, n0, b, epi, y);
}

VNNI static void block_vnni(const struct vq_int8_weight *w, const uint8_t *xq, int ldx, int T, const float *sx,
                            const int32_t *zx, int n0, const float *b, int epi, float *y)
{
    const int N = w->hdr.N;
    int i = 0;
    for (; i + ROWS <= T; i += ROWS)
        tile_vnni(w, xq + (size_t)i * ldx, ldx, ROWS, sx + i, zx + i, n0, b, epi, y + (size_t)i * N);
    const uint8_t *xi = xq + (size_t)i * ldx;
    float *yi = y + (size_t)i * N;
    switch (T - i) {
    case 5: tile_vnni(w, xi, ldx, 5, sx + i, zx + i, n0, b, epi, yi); break;
    case 4: tile_vnni(w, xi, ldx, 4, sx + i, zx + i, n0, b, epi, yi); break;
    case 3: tile_vnni(w, xi, ldx, 3, sx + i, zx + i, n0, b, epi, yi); break;
    case 2: tile_vnni(w, xi, ldx, 2, sx + i, zx + i, n0, b, epi, yi); break;
    case 1: tile_vnni(w, xi, ldx, 1, sx + i, zx + i, n0, b, epi, yi); break;
    default: break;
    }
}

/* One block of 64 columns for T rows from sums computed elsewhere (oneDNN's
 * or the AMX tiles'): acc[t][0..63], lda apart, are the sums of row t and
 * columns n0 ..; epilogue_vnni's bits a row at a time, its four vectors'
 * sums read as they are needed. The AMX tiles' passes call it for one row
 * a step of k, beside the tile instructions, where each instruction costs
 * its time (precision.md, the twentieth round): a whole block, the common
 * case, takes a path without masks or per-vector bounds. */
VNNI __attribute__((always_inline)) static inline void sums_row(const float *csw, const float *sw, const int32_t *a,
                                                                float sx, int32_t zx, int n0, int nb, const float *b,
                                                                int epi, float *o)
{
    const __m512 zs = _mm512_set1_ps(zero_term(zx, sx)), s = _mm512_set1_ps(sx);
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
        if (16 * q >= nb) break;
        const __mmask16 mk = nb >= 16 * q + 16 ? 0xffff : (__mmask16)((1u << (nb - 16 * q)) - 1);
        __m512 v = finish_512(csw, sw, _mm512_loadu_si512(a + 16 * q), zs, s, n0 + 16 * q, b, mk);
        if (epi == VQ_EPI_ADD) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, o + 16 * q), v);   /* vq_add's y + x */
        else if (epi == VQ_EPI_GELU) v = vq_gelu_poly_512(v);                                  /* gelu_rows' */
        _mm512_mask_storeu_ps(o + 16 * q, mk, v);
    }
}

VNNI static void block_sums(const struct vq_int8_weight *w, const int32_t *acc, int lda, int T, const float *sx,
                            const int32_t *zx, int n0, const float *b, int epi, float *y)
{
    const int N = w->hdr.N, nb = N - n0 < BLK ? N - n0 : BLK;
    const float *csw = w->csw, *sw = w->scale;
    if (nb == BLK)
        for (int i = 0; i < T; i++)
            sums_row(csw, sw, acc + (size_t)i * lda, sx[i], zx[i], n0, BLK, b, epi, y + (size_t)i * N + n0);
    else
        for (int i = 0; i < T; i++)
            sums_row(csw, sw, acc + (size_t)i * lda, sx[i], zx[i], n0, nb, b, epi, y + (size_t)i * N + n0);
}
#endif

/* Who computes the sums, beside the VNNI kernel's epilogue. On CPUs with
 * AMX-INT8, our tiles (int8_amx.c) from AMX_ROWS rows on: a pass of one
 * row takes nearly as long as a pass of six (the weights' tiles are loaded
 * whole either way), and on an Emerald Rapids the VNNI kernel was faster
 * at 1..5 rows (1 row: 227 against 127 GOPS; 6 rows: equal; 7: 0.8x the
 * tiles' rate). Else, where oneDNN runs int8 on AMX tiles (our kernel not
 * built), oneDNN from DNNL_ROWS rows on (fewer rows are bound by reading
 * the weights, which the VNNI kernel does as fast), for whole blocks of 64
 * columns (then the packing is oneDNN's layout). The tests force each.
 * Every sum is the same exact integer and the epilogue is epilogue_vnni's:
 * the same bits. */
#define DNNL_ROWS 32
#define AMX_ROWS 6
#define STR(x) #x
#define XSTR(x) STR(x)
enum sums { SUMS_OWN, SUMS_DNNL_AMX, SUMS_DNNL_FORCED, SUMS_AMX };

static enum sums sums_mode(void)
{
    const int f = __atomic_load_n(&forced, __ATOMIC_RELAXED);
    if (!use_vnni()) return SUMS_OWN;
    if (f == 2) return SUMS_DNNL_FORCED;
    if ((f == 3 || f < 0) && vq_amx_int8_ready()) return SUMS_AMX;
    return f < 0 && vq_dnnl_amx() ? SUMS_DNNL_AMX : SUMS_OWN;
}

static enum sums sums_for(const struct vq_int8_weight *w, int T)
{
    const enum sums mode = sums_mode();
    if (mode == SUMS_AMX && T < AMX_ROWS && __atomic_load_n(&forced, __ATOMIC_RELAXED) != 3) return SUMS_OWN;
    if (mode == SUMS_DNNL_FORCED || mode == SUMS_DNNL_AMX)
        return w->hdr.N % BLK || (mode == SUMS_DNNL_AMX && T < DNNL_ROWS) ? SUMS_OWN : mode;
    return mode;
}

const char *vq_int8_kernel_name(void)
{
    static const char *const name[4] = { "AVX512_VNNI", "oneDNN on AMX tiles (AVX512_VNNI below 32 rows)",
                                         "oneDNN (forced)", "AMX tiles (AVX512_VNNI below " XSTR(AMX_ROWS) " rows)" };
    return use_vnni() ? name[sums_mode()] : "scalar";
}

/* One product's operands, for its tiles (vq_balance_tiles) or the AMX
 * tiles' passes. */
struct int8_call {
    const struct vq_int8_weight *w;
    const uint8_t *xq;
    int ldx, epi, vnni, amx, group;
    const float *sx, *b;
    const int32_t *zx;
    float *y;
};

#ifdef VQ_INT8_X86
/* The AMX tiles' passes over blocks j .. of rows i0 ..: the epilogue. */
struct amx_pass {
    const struct int8_call *c;
    int j, i0;
};

static void amx_pass_done(void *ctx, int b, const int32_t *sums, int i, int m)
{
    const struct amx_pass *p = ctx;
    const struct int8_call *c = p->c;
    const int r = p->i0 + i, j = p->j + b;
    block_sums(c->w, sums, 64, m, c->sx + r, c->zx + r, j * BLK, c->b, c->epi, c->y + (size_t)r * c->w->hdr.N);
}
#endif

/* The AMX tiles' group of column blocks (int8_amx.h), where a pass's 16
 * rows (Kp + 64 bytes each) stay in L1 and the product has rows to spare:
 * linear_amx.c's groups, for the same reason (the kernel is bound by L2's
 * bandwidth). An int8 block is half a bf16 one (64 KiB at K = 1024), so
 * the group is twice as many. In the 512x320 frame on an Emerald Rapids,
 * calls chosen at random per product, the int8 products of 48 rows and
 * more at K = 1024 (their rows' quantizing included) against one block a
 * pass: groups of 4 blocks 1.05-1.07x, 8 blocks 1.08-1.09x, 16 blocks
 * 1.06-1.08x. */
#define AMX_GROUP 8
#define AMX_GROUP_KP 1024
#define AMX_GROUP_ROWS 48

/* Rows i0 .. i0 + m of group g of column blocks (groups of one block but on
 * the AMX tiles). */
static void tile_rows(void *ctx, int g, int i0, int m)
{
    const struct int8_call *c = ctx;
    const int n_blk = c->w->Np / BLK, j0 = g * c->group, j1 = j0 + c->group < n_blk ? j0 + c->group : n_blk;
    const uint8_t *xi = c->xq + (size_t)i0 * c->ldx;
    float *yi = c->y + (size_t)i0 * c->w->hdr.N;
#ifdef VQ_INT8_X86
    struct amx_pass pass = { c, j0, i0 };
    const int8_t *blk = c->w->q + (size_t)j0 * c->w->Kp * BLK;
    if (c->amx && !vq_int8_amx_rows(xi, c->ldx, m, c->w->Kp, blk, j1 - j0, amx_pass_done, &pass))
        return;
#endif
    for (int j = j0; j < j1; j++) {
#ifdef VQ_INT8_X86
        if (c->vnni) {
            block_vnni(c->w, xi, c->ldx, m, c->sx + i0, c->zx + i0, j * BLK, c->b, c->epi, yi);
            continue;
        }
#endif
        block_scalar(c->w, xi, c->ldx, m, c->sx + i0, c->zx + i0, j * BLK, c->b, c->epi, yi);
    }
}

static const struct vq_int8_weight *int8_of(const struct vq_packed *p)
{
    return p && p->precision == VQ_PREC_INT8 ? (const struct vq_int8_weight *)p : NULL;
}

int vq_int8_rows_alloc(const struct vq_packed *p, int T, struct vq_int8_rows *r)
{
    const struct vq_int8_weight *w = int8_of(p);
    if (!w || T < 1) return -1;
    /* rows padded to Kp with zeros (they meet zero weights) and a cache
     * line apart, or dense for oneDNN */
    const enum sums sums = sums_for(w, T);
    const int ld = sums == SUMS_DNNL_AMX || sums == SUMS_DNNL_FORCED ? w->Kp : w->Kp + 64;
    uint8_t *q = malloc((size_t)T * ld + (sizeof(float) + sizeof(int32_t)) * (size_t)T);
    if (!q) return -1;
    float *sx = (float *)(q + (size_t)T * ld);
    *r = (struct vq_int8_rows){ q, sx, (int32_t *)(sx + T), T, w->hdr.K, ld };
    return 0;
}

void vq_int8_rows_set(const struct vq_int8_rows *r, int t, const float *x)
{
    uint8_t *q = r->q + (size_t)t * r->ld;
    vq_int8_quantize_row(x, r->K, q, &r->sx[t], &r->zx[t]);
    memset(q + r->K, 0, (size_t)(r->ld - r->K));
}

void vq_int8_rows_free(struct vq_int8_rows *r)
{
    free(r->q);
    r->q = NULL;
}

int vq_int8_linear(int n_threads, const struct vq_packed *p, const float *x, int T, const float *b, int epi,
                   float *y)
{
    struct vq_int8_rows r;
    if (!int8_of(p) || (epi && epi != VQ_EPI_ADD && epi != VQ_EPI_GELU) || vq_int8_rows_alloc(p, T, &r))
        return -1;
    const int K = r.K;
#pragma omp parallel for schedule(static) if ((int64_t)T * K >= (1 << 16)) num_threads(n_threads > 0 ? n_threads : 1)
    for (int t = 0; t < T; t++)
        vq_int8_rows_set(&r, t, x + (size_t)t * K);
    const int rc = vq_int8_linear_rows(n_threads, p, &r, 0, T, b, epi, y);
    vq_int8_rows_free(&r);
    return rc;
}

int vq_int8_linear_rows(int n_threads, const struct vq_packed *p, const struct vq_int8_rows *r, int r0, int T,
                        const float *b, int epi, float *y)
{
    const struct vq_int8_weight *w = int8_of(p);
    if (!w || !r || !r->q || r->K != w->hdr.K || r0 < 0 || T < 1 || r0 > r->T - T ||
        (epi && epi != VQ_EPI_ADD && epi != VQ_EPI_GELU))
        return -1;
    const int K = w->hdr.K, Kp = w->Kp, N = w->hdr.N, nt = n_threads > 0 ? n_threads : 1, ldx = r->ld;
    const uint8_t *xq = r->q + (size_t)r0 * ldx;
    const float *sx = r->sx + r0;
    const int32_t *zx = r->zx + r0;
    const enum sums sums = sums_for(w, T);
    vq_flops_add(2ull * T * N * K);
    const int n_blk = w->Np / BLK, vnni = use_vnni();
    VQ_OMP_ONLY(nt);
#ifdef VQ_INT8_X86
    /* oneDNN's sums where the rows are dense (else the same sums by our
     * kernels: the same bits) */
    if ((sums == SUMS_DNNL_AMX || sums == SUMS_DNNL_FORCED) && ldx == Kp) {
        int32_t *acc = vq_scratch_alloc(sizeof(int32_t) * (size_t)T * N);
        const int ok = acc && !vq_dnnl_int8_sums(nt, xq, T, Kp, w->q, N, acc);
        if (ok) {
#pragma omp parallel for schedule(static) if (n_blk > 1 && (int64_t)T * N >= (1 << 14)) num_threads(nt)
            for (int j = 0; j < n_blk; j++) block_sums(w, acc + j * BLK, N, T, sx, zx, j * BLK, b, epi, y);
        }
        vq_scratch_free(acc);
        if (ok) return 0;
    }
#endif
    /* the work shared by the threads' measured speeds and claimed as it is
     * done (balance.h), in items of one tile of ROWS rows (16 on the AMX
     * tiles) of one column block (or group of blocks on the AMX tiles), so
     * that a thread's work may end inside a block: the S-FLCKR
     * transformer's 1024-column products have only 16 blocks, 6 % each. A
     * thread does the tiles of a block it owns in one call, as one thread
     * alone does all of them. An element's bits depend neither on its
     * thread nor on the rows computed with it. */
    const int amx = sums == SUMS_AMX, group = amx && Kp <= AMX_GROUP_KP && T >= AMX_GROUP_ROWS ? AMX_GROUP : 1;
    struct int8_call c = { w, xq, ldx, epi, vnni, amx, group, sx, b, zx, y };
    vq_balance_tiles(&blocks_balance, nt, (int64_t)T * N * K >= (1 << 18), (n_blk + group - 1) / group, T,
                     amx ? 16 : ROWS, tile_rows, &c);
    return 0;
}
