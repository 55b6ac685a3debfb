/* bf16 attention's products on AMX tiles (attention_amx.h).
 *
 * One configuration for every tile: 16 rows of 64 bytes (16 fp32 sums, or
 * 32 bf16, or 16 pairs of bf16). Scores: the group's query in tiles 4..7
 * (32 dimensions each), the 16 × 16 sums of 4 tiles of 16 keys in tiles
 * 0..3, their keys' pairs through tiles 6 and 7 (heads up to 64 wide; else
 * 3 tiles of keys in 0..2, through tile 3). Output: the probabilities of 32
 * keys in tile 4, 16 pairs of values' rows (16 columns) in tile 5, the sums
 * of 64 columns in tiles 0..3. Operands that would reach past the rows,
 * keys or buffers a call owns go through zero-padded copies on the stack:
 * the last key tile, a group of fewer than 16 rows. */
#include <stdint.h>

#include "amx.h"
#include "attention_amx.h"

#ifdef VQ_AMX_BUILD
#include <immintrin.h>

#include "bf16.h"

static int forced = -1;

void vq_attention_amx_force(int on) { __atomic_store_n(&forced, on, __ATOMIC_RELAXED); }

int vq_attention_amx(int hd)
{
    return __atomic_load_n(&forced, __ATOMIC_RELAXED) != 0 && hd % 32 == 0 && hd <= 128 && vq_amx_bf16_ready();
}

void vq_amx_attention_begin(void)
{
    static const uint8_t rows[8] = { 16, 16, 16, 16, 16, 16, 16, 16 };
    vq_amx_configure(rows);
}

void vq_amx_attention_end(void) { vq_amx_release(); }

/* rows r < m of src (stride lds halves), n halves each, into a 16-row tile
 * of 32 halves a row, zeros elsewhere; masked loads read nothing past the n
 * halves (a call of memcpy a row took most of a short product's time) */
__attribute__((target("avx512f,avx512bw")))
static inline void pad_rows(uint16_t dst[16 * 32], const uint16_t *src, size_t lds, int m, int n)
{
    const __mmask32 k = n >= 32 ? ~0u : (1u << n) - 1;
    int r = 0;
    for (; r < m; r++)
        _mm512_store_si512(dst + r * 32, _mm512_maskz_loadu_epi16(k, src + r * lds));
    for (; r < 16; r++)
        _mm512_store_si512(dst + r * 32, _mm512_setzero_si512());
}

/* The sums of key tile J of a step (keys t + 16·J on, if any) with the
 * query's tile A, into tile J; the keys' pairs through tile B (padded when
 * fewer than 16 keys are left). In vq_amx_scores: its t, T, k2, ldk and
 * kpad. */
#define KEY_TILE(J, A, B)                                                          \
    do {                                                                           \
        const int t_ = t + 16 * (J);                                               \
        if (t_ < T) {                                                              \
            const uint16_t *b_ = k2 + ((size_t)(16 * ((A) - 4)) * ldk + t_) * 2;   \
            size_t sb_ = 4 * (size_t)ldk;                                          \
            if (T - t_ < 16) {                                                     \
                pad_rows(kpad, b_, 2 * (size_t)ldk, 16, 2 * (T - t_));            \
                b_ = kpad;                                                         \
                sb_ = 64;                                                          \
            }                                                                      \
            _tile_loadd(B, b_, sb_);                                               \
            _tile_dpbf16ps(J, A, B);                                               \
        }                                                                          \
    } while (0)

__attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw")))
uint64_t vq_amx_scores(int m, int hd, const uint16_t *qb, int ldq, const uint16_t *k2, int ldk, int T, float scale,
                       float *S, int lds)
{
    _Alignas(64) uint16_t qpad[4][16 * 32], kpad[16 * 32];
    _Alignas(64) float c[4][16 * 16];
    const int nk = hd / 32;
    /* the query's tiles: straight from qb when the group has 16 rows */
    const uint16_t *a[4] = { qb, qb, qb, qb };
    size_t sa = 2 * (size_t)ldq;
    for (int i = 0; i < nk; i++) {
        a[i] = qb + 32 * i;
        if (m < 16) {
            pad_rows(qpad[i], a[i], (size_t)ldq, m, 32);
            a[i] = qpad[i];
        }
    }
    if (m < 16) sa = 64;
    _tile_loadd(4, a[0], sa);
    if (nk > 1) _tile_loadd(5, a[1], sa);
    if (nk > 2) _tile_loadd(6, a[2], sa);
    if (nk > 3) _tile_loadd(7, a[3], sa);
    /* several key tiles' sums in flight, each over the query's tiles in
     * order (so the same sums as one tile at a time): 4 tiles (keys' pairs
     * through tiles 6 and 7) when the query takes tiles 4 and 5, else 3
     * (through tile 3) */
    const int step = nk <= 2 ? 64 : 48;
    const __m512 vs = _mm512_set1_ps(scale);
    for (int t = 0; t < T; t += step) {
        const int nt = (T - t + 15) / 16 < step / 16 ? (T - t + 15) / 16 : step / 16;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        if (nk <= 2) {
            _tile_zero(3);
            KEY_TILE(0, 4, 6); KEY_TILE(1, 4, 7); KEY_TILE(2, 4, 6); KEY_TILE(3, 4, 7);
            if (nk > 1) { KEY_TILE(0, 5, 6); KEY_TILE(1, 5, 7); KEY_TILE(2, 5, 6); KEY_TILE(3, 5, 7); }
        } else {
            KEY_TILE(0, 4, 3); KEY_TILE(1, 4, 3); KEY_TILE(2, 4, 3);
            KEY_TILE(0, 5, 3); KEY_TILE(1, 5, 3); KEY_TILE(2, 5, 3);
            KEY_TILE(0, 6, 3); KEY_TILE(1, 6, 3); KEY_TILE(2, 6, 3);
            if (nk > 3) { KEY_TILE(0, 7, 3); KEY_TILE(1, 7, 3); KEY_TILE(2, 7, 3); }
        }
        _tile_stored(0, c[0], 64);
        if (nt > 1) _tile_stored(1, c[1], 64);
        if (nt > 2) _tile_stored(2, c[2], 64);
        if (nt > 3) _tile_stored(3, c[3], 64);
        for (int j = 0; j < nt; j++) {
            const int tn = T - t - 16 * j < 16 ? T - t - 16 * j : 16;
            const __mmask16 k = (__mmask16)((1u << tn) - 1);
            for (int r = 0; r < m; r++)
                _mm512_mask_storeu_ps(S + (size_t)r * lds + t + 16 * j, k, _mm512_mul_ps(_mm512_load_ps(c[j] + 16 * r), vs));
        }
    }
    return 2ull * m * T * hd;
}

/* tiles 0..nc-1 += the probabilities (tile 4) × 16 columns of values each */
__attribute__((target("amx-tile,amx-bf16")))
static void output_step(int nc, const uint16_t *v, size_t sv, int pairs, uint16_t *vpad, size_t ldv)
{
    for (int j = 0; j < nc; j++) {
        const uint16_t *b = v + 32 * (size_t)j;
        size_t sb = sv;
        if (pairs < 16) {
            pad_rows(vpad, b, ldv, pairs, 32);
            b = vpad;
            sb = 64;
        }
        _tile_loadd(5, b, sb);
        switch (j) {
        case 0: _tile_dpbf16ps(0, 4, 5); break;
        case 1: _tile_dpbf16ps(1, 4, 5); break;
        case 2: _tile_dpbf16ps(2, 4, 5); break;
        default: _tile_dpbf16ps(3, 4, 5); break;
        }
    }
}

__attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw")))
uint64_t vq_amx_output(int m, int hd, const uint16_t *P, int ldp, const uint16_t *v2, int D, int T, float *y,
                       uint16_t *yb, int ldy)
{
    _Alignas(64) uint16_t ppad[16 * 32], vpad[16 * 32];
    _Alignas(64) float c[4][16 * 16];
    const int Te = (T + 1) & ~1;   /* keys read: to an even count */
    for (int c0 = 0; c0 < hd; c0 += 64) {
        const int nc = hd - c0 < 64 ? (hd - c0) / 16 : 4;
        _tile_zero(0);
        if (nc > 1) _tile_zero(1);
        if (nc > 2) _tile_zero(2);
        if (nc > 3) _tile_zero(3);
        for (int t = 0; t < Te; t += 32) {
            const int tn = Te - t < 32 ? Te - t : 32;
            if (m < 16 || tn < 32) {
                pad_rows(ppad, P + t, (size_t)ldp, m, tn);
                _tile_loadd(4, ppad, 64);
            } else
                _tile_loadd(4, P + t, 2 * (size_t)ldp);
            /* 16 pairs of keys (rows) × 16 columns' pairs */
            output_step(nc, v2 + ((size_t)(t / 2) * D + c0) * 2, 4 * (size_t)D, tn / 2, vpad, 2 * (size_t)D);
        }
        _tile_stored(0, c[0], 64);
        if (nc > 1) _tile_stored(1, c[1], 64);
        if (nc > 2) _tile_stored(2, c[2], 64);
        if (nc > 3) _tile_stored(3, c[3], 64);
        for (int r = 0; r < m; r++)
            for (int j = 0; j < nc; j++) {
                const __m512 s = _mm512_load_ps(c[j] + 16 * r);
                const size_t o = (size_t)r * ldy + c0 + 16 * j;
                if (y)
                    _mm512_storeu_ps(y + o, s);
                else
                    _mm256_storeu_si256((__m256i *)(yb + o), _mm512_cvtepi32_epi16(vq_bf16_round_512(s)));
            }
    }
    return 2ull * m * T * hd;
}

#else

void vq_attention_amx_force(int on) { (void)on; }
int vq_attention_amx(int hd) { (void)hd; return 0; }
void vq_amx_attention_begin(void) {}
void vq_amx_attention_end(void) {}
uint64_t vq_amx_scores(int m, int hd, const uint16_t *qb, int ldq, const uint16_t *k2, int ldk, int T, float scale,
                       float *S, int lds)
{
    (void)m; (void)hd; (void)qb; (void)ldq; (void)k2; (void)ldk; (void)T; (void)scale; (void)S; (void)lds;
    return 0;
}
uint64_t vq_amx_output(int m, int hd, const uint16_t *P, int ldp, const uint16_t *v2, int D, int T, float *y,
                       uint16_t *yb, int ldy)
{
    (void)m; (void)hd; (void)P; (void)ldp; (void)v2; (void)D; (void)T; (void)y; (void)yb; (void)ldy;
    return 0;
}

#endif
