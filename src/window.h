/* Sampling token grids with the transformer (docs/sampling.md):
 *  - the reference's sliding window for segmentation-conditional models, with
 *    a KV cache per window placement under a memory cap;
 *  - one cached sequence for class-conditional and unconditional models.
 *
 * The public calls vqgan_sample_conditional / vqgan_sample_unconditional wrap
 * the functions below, which take the transformer directly (tests, benches). */
#ifndef VQ_WINDOW_H
#define VQ_WINDOW_H

#include <stddef.h>
#include <stdint.h>

#include "gpt.h"
#include "sampler.h"
#include "vqgan.h"

struct vq_window_state;
void vq_window_state_free(struct vq_window_state *w);  /* NULL is a no-op */

struct vq_window_params {
    const struct vq_exec *exec;  /* the call's threads (backend.h); NULL: every core */
    struct vq_sampler_params sampling;
    size_t cache_bytes;          /* cap on kept placement caches; 0: vq_default_cache_bytes() */
    vqgan_progress_callback progress;   /* may be NULL; nonzero return cancels */
    void *progress_opaque;
    int no_share;                /* 1: no condition prefixes shared between
                                    placements (tests: the same tokens) */
    int dry_run;                 /* 1: run the schedule and count the work, no
                                    transformer (tokens come out 0); benches */
    /* may be NULL: told of every transformer call, placement (r0, c0), cache
     * length before the call, positions fed (benches, tests) */
    void (*trace)(void *opaque, int r0, int c0, int len, int n);
    void *trace_opaque;
    /* enum vqgan_temporal (docs/sampling.md, "Temporal modes"): with reuse or
     * follow the state keeps the previous call's grids, tokens and placement
     * caches, and a call is a frame of a sequence */
    int temporal;
    /* draws of cell (i, j) are keyed to (origin_i + i, origin_j + j); follow
     * adds the content origin it accumulates (tests: a follow frame equals a
     * from-scratch frame with the same origin) */
    int32_t origin_i, origin_j;
    /* 1: tokens by the Gumbel-max rule, as follow does (tests: a follow frame
     * equals a from-scratch frame with gumbel = 1 and the same origin) */
    int gumbel;
    /* fast mode (docs/sampling.md, "Fast mode"): 0 or 1 exact (the
     * reference's schedule); s > 1 lets one placement predict up to s x s
     * cells (s capped at w - w/2), approximate. 0..VQGAN_MAX_FAST_STEP. */
    int fast_step;
    /* benches (scoring a grid under a schedule): when forced is not NULL,
     * cell (i, j) of the gh x gw grid takes forced[i * gw + j] instead of a
     * drawn token (padded columns are drawn as usual); on_logits, when not
     * NULL, is shown the logits of every cell computed (vocab values) */
    const int32_t *forced;
    void (*on_logits)(void *opaque, int i, int j, const float *logits, int vocab);
    void *on_logits_opaque;
    /* completion (docs/sampling.md, "Completion"): when mask is not NULL,
     * cell (i, j) of the gh x gw grid is sampled only where mask[i * gw + j]
     * is nonzero and otherwise holds given[i * gw + j] from the start (given
     * must then be non-NULL, its tokens inside the vocabulary). Padding cells
     * (grids smaller than the window) take the mask and token of the nearest
     * cell, as the condition is padded. */
    const int32_t *given;
    const uint8_t *mask;
};

/* Window side w of a segmentation-conditional transformer: block = 2·w·w
 * (w·w condition tokens, then w·w image tokens). 0 when block is not of that
 * form. */
int vq_window_side(int block);
/* Window side w of a class-conditional or unconditional transformer: the
 * largest w with w·w <= block (a placement feeds the one token, then its w·w
 * image tokens but the last: w·w positions; 17 -> 4 as the golden classwin
 * case, 256 -> 16 as the released FFHQ / CelebA-HQ / cIN configs); 0 for an
 * empty block. */
int vq_window_side_token(int block);

/* The reference's schedule: row (or column) i of an n-long grid is predicted
 * from the window whose first row (column) is i - vq_window_offset(i, n, w):
 *     offset = i            if i <= w/2
 *            = w - (n - i)  if n - i < w - w/2
 *            = w/2          otherwise              (w/2 rounded down; n >= w) */
int vq_window_offset(int i, int n, int w);

/* Segmentation-conditional grid: cond and tokens are gh x gw, raster order.
 * *state is created on first use and kept (free with vq_window_state_free).
 * stats (may be NULL) is filled on success and on failure alike. */
int vq_window_sample(struct vq_window_state **state, const struct vq_gpt *gpt,
                     const struct vq_window_params *p, const int32_t *cond, int gw, int gh,
                     int32_t *tokens, struct vqgan_sample_stats *stats);

/* Class-conditional / unconditional grid of any size with the same schedule:
 * the condition is the one token (class id or start token), so every window
 * placement's sequence is [token] + its image tokens; draws are keyed to
 * (stream, row, column). Same state, caches, temporal modes and completion
 * as vq_window_sample (no prefix sharing: the common prefix is one position).
 * w = vq_window_side_token(block). */
int vq_window_sample_token(struct vq_window_state **state, const struct vq_gpt *gpt,
                           const struct vq_window_params *p, int32_t token, uint32_t stream, int gw, int gh,
                           int32_t *tokens, struct vqgan_sample_stats *stats);

/* Follow mode: the content origin of the last frame (the sum of the detected
 * shifts; 0, 0 in the other modes). */
void vq_window_origin(const struct vq_window_state *st, int32_t *oi, int32_t *oj);

/* The shift (dy, dx) of the condition grid cur against prev (both gh x gw, row
 * stride gw), cur[i][j] == prev[i + dy][j + dx]: the shift with |dy|, |dx| <=
 * radius whose overlap agrees best, ties to the smallest (compared away from
 * the edges: min(2, side / 6) cells; overlaps of at least half that region),
 * taken when it agrees on >= 90 % of the overlap, or on >= 50 % while leaving
 * at most 3/4 of the disagreement of no shift; else 0, 0 (still, or a cut).
 * Returns the agreement of the result in [0, 1]. */
double vq_detect_shift(const int32_t *cur, const int32_t *prev, int gw, int gh, int radius,
                       int *dy, int *dx);

/* Class-conditional / unconditional grid: the sequence [first_token] followed by
 * the gw*gh image tokens in raster order (gw*gh <= block: the last token is
 * never fed), one cache, one
 * new position per token, as the reference's sample_with_past. Draws are keyed
 * to (stream, row, column). p->given / p->mask keep cells as in
 * vq_window_sample (a kept token is fed, not drawn). */
int vq_sequence_sample(const struct vq_gpt *gpt, const struct vq_window_params *p,
                       int32_t first_token, uint32_t stream, int gw, int gh,
                       int32_t *tokens, struct vqgan_sample_stats *stats);

#endif
