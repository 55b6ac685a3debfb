/* bf16 attention's two products on AMX tiles (attention_amx.c), for
 * vq_attention_bf16 on CPUs with AMX-BF16 (Intel Xeon since Sapphire
 * Rapids), where one TDPBF16PS does the work of 64 vdpbf16ps and the
 * AVX-512 kernels run at a third of the fp32 FMA rate (vdpbf16ps takes about
 * two cycles there; one on a Zen 4 or 5).
 *
 * Groups of up to 16 rows (a tile's rows) of one head, the cache in its bf16
 * layout (gpt.h: keys [hd/2][ldk][2], values [ldk/2][D][2]). Each sum runs
 * in the tile unit's order: per 32 terms one TDPBF16PS, the steps in order
 * of k. An element's bits depend only on its own row and column of the
 * operands, so a row's result does not depend on the other rows of its
 * group, call or thread; the bits are not those of the AVX-512 kernels (the
 * tile unit rounds inside a step in its own way). */
#ifndef VQ_ATTENTION_AMX_H
#define VQ_ATTENTION_AMX_H

#include <stdint.h>

/* Tests and benchmarks: 0 keeps vq_attention_bf16 on the AVX-512 kernels
 * where AMX is ready, 1 or -1 (the default) lets it use AMX. */
void vq_attention_amx_force(int on);
/* 1 when vq_attention_bf16 takes the AMX kernels for heads of width hd:
 * vq_amx_bf16_ready (amx.h), hd a multiple of 32 up to 128, not forced off. */
int vq_attention_amx(int hd);

/* Loads the kernels' tile configuration on this thread (before a run of
 * calls below) and releases the tiles (after it). */
void vq_amx_attention_begin(void);
void vq_amx_attention_end(void);

/* S[r][t] = scale · Σ_d qb[r][d] k[t][d] for rows r < m (m <= 16) and keys
 * t < T, S's row stride lds floats. qb's rows have stride ldq halves; the
 * keys are k2[hd/2][ldk][2]. Reads no key at or past T, no row at or past m.
 * Returns the flops (2·m·T·hd). */
uint64_t vq_amx_scores(int m, int hd, const uint16_t *qb, int ldq, const uint16_t *k2, int ldk, int T, float scale,
                       float *S, int lds);
/* y[r][e] = Σ_t P[r][t] v[t][e] for rows r < m (m <= 16), e < hd, keys
 * t < T rounded up to even (P holds zero from each row's last key to there;
 * P's row stride ldp halves); the values v2 + [t/2][D][2], the head's
 * columns first. To y (fp32, row stride ldy) or, y NULL, rounded to bf16
 * (nearest even) to yb. Returns the flops (2·m·T·hd). */
uint64_t vq_amx_output(int m, int hd, const uint16_t *P, int ldp, const uint16_t *v2, int D, int T, float *y,
                       uint16_t *yb, int ldy);

#endif
