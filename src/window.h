/* Sampling token grids with the transformer (docs/sampling.md):
 *  - the reference's sliding window for models with a spatial condition, with
 *    a KV cache per window placement under a memory cap (window.c, the
 *    placement caches in placements.c, their feeding in prefix.c, the
 *    previous frame of temporal modes in temporal.c, the schedule in grid.c);
 *  - one cached sequence for class-conditional and unconditional models
 *    (sequence.c).
 *
 * The public calls (sample.c) wrap the functions below, which take the
 * transformer directly (tests, benches: window_test.h adds their hooks). */
#ifndef VQ_WINDOW_H
#define VQ_WINDOW_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <omp.h>

#include "gpt.h"
#include "grid.h"
#include "sampler.h"
#include "temporal.h"
#include "vqgan.h"

struct vq_window_state;
void vq_window_state_free(struct vq_window_state *w);  /* NULL is a no-op */

struct vq_window_params {
    const struct vq_exec *exec;  /* the call's threads (backend.h); NULL: every core */
    struct vq_sampler_params sampling;
    size_t cache_bytes;          /* cap on kept placement caches; 0: vq_default_cache_bytes() */
    vqgan_progress_callback progress;   /* may be NULL; nonzero return cancels */
    void *progress_opaque;
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
    /* completion (docs/sampling.md, "Completion"): when mask is not NULL,
     * cell (i, j) of the gh x gw grid is sampled only where mask[i * gw + j]
     * is nonzero and otherwise holds given[i * gw + j] from the start (given
     * must then be non-NULL, its tokens inside the vocabulary). Padding cells
     * (grids smaller than the window) take the mask and token of the nearest
     * cell, as the condition is padded. */
    const int32_t *given;
    const uint8_t *mask;
};

/* Grid with a spatial condition: cond and tokens are gh x gw, raster order.
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

/* Class-conditional / unconditional grid: the sequence [first_token] followed by
 * the gw*gh image tokens in raster order (gw*gh <= block: the last token is
 * never fed), one cache, one new position per token, as the reference's
 * sample_with_past. Draws are keyed to (stream, row, column). p->given /
 * p->mask keep cells as in vq_window_sample (a kept token is fed, not drawn).
 * (sequence.c) */
int vq_sequence_sample(const struct vq_gpt *gpt, const struct vq_window_params *p,
                       int32_t first_token, uint32_t stream, int gw, int gh,
                       int32_t *tokens, struct vqgan_sample_stats *stats);

/* Completion's inputs: every given token of a kept cell inside the vocabulary
 * (shared by window.c and sequence.c). */
int vq_check_given(const struct vq_gpt *gpt, const struct vq_window_params *p, int gw, int gh);

/* The statistics of a call that started at t0 (omp_get_wtime). */
static inline void vq_stats_fill(struct vqgan_sample_stats *stats, int64_t sampled, int64_t reused, int64_t fed,
                                 int64_t ev, double t0)
{
    if (!stats) return;
    memset(stats, 0, sizeof(*stats));
    stats->positions_sampled = sampled;
    stats->positions_reused = reused;
    stats->transformer_tokens = fed;
    stats->cache_evictions = ev;
    stats->seconds = omp_get_wtime() - t0;
}

#endif
