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
    struct vq_sampler_params sampling;
    size_t cache_bytes;          /* cap on kept placement caches; 0: VQGAN_DEFAULT_CACHE_BYTES */
    vqgan_progress_callback progress;   /* may be NULL; nonzero return cancels */
    void *progress_opaque;
    int dry_run;                 /* 1: run the schedule and count the work, no
                                    transformer (tokens come out 0); benches */
    /* may be NULL: told of every transformer call, placement (r0, c0), cache
     * length before the call, positions fed (benches, tests) */
    void (*trace)(void *opaque, int r0, int c0, int len, int n);
    void *trace_opaque;
};

/* Window side w of a segmentation-conditional transformer: block = 2·w·w
 * (w·w condition tokens, then w·w image tokens). 0 when block is not of that
 * form. */
int vq_window_side(int block);

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

/* Class-conditional / unconditional grid: the sequence [first_token] followed by
 * the gw*gh image tokens in raster order (gw*gh <= block - 1), one cache, one
 * new position per token, as the reference's sample_with_past. Draws are keyed
 * to (stream, row, column). */
int vq_sequence_sample(const struct vq_gpt *gpt, const struct vq_window_params *p,
                       int32_t first_token, uint32_t stream, int gw, int gh,
                       int32_t *tokens, struct vqgan_sample_stats *stats);

#endif
