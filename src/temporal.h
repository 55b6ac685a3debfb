/* Temporal modes (docs/sampling.md, "Temporal modes"): the previous frame a
 * sampler state keeps, which of its tokens a new frame may reuse, and
 * follow's shift detection. */
#ifndef VQ_TEMPORAL_H
#define VQ_TEMPORAL_H

#include <stddef.h>
#include <stdint.h>

#include "gpt.h"
#include "placements.h"
#include "sampler.h"

/* The previous frame: its padded grids, how it was sampled, and the grid and
 * model its placement caches belong to. */
struct vq_prev_frame {
    int grid;                        /* the placements belong to this grid:     */
    int gw, gh, block, vocab, unmasked, step, np;
    const struct vq_gpt *gpt;
    int have;                        /* cond / img hold a frame                  */
    int mode;                        /* the mode it was sampled in              */
    struct vq_sampler_params sp;
    int32_t oi, oj;                  /* its key origin                          */
    int32_t *cond, *img;             /* padded grids [Hp][Wp]                   */
    uint8_t *keep;
    size_t cap;
};

/* 1 when placement caches left by the previous call serve a call of this
 * grid, model and schedule. */
int vq_prev_same_grid(const struct vq_prev_frame *f, const struct vq_gpt *gpt, int gw, int gh, int step, int np);
/* The placements now belong to this grid (temporal: mode != 0). */
void vq_prev_set_grid(struct vq_prev_frame *f, int mode, const struct vq_gpt *gpt, int gw, int gh, int step, int np);
/* Room for a padded grid of n cells (forgets the frame held when it grows). */
int vq_prev_reserve(struct vq_prev_frame *f, size_t n);
/* Records the frame just sampled (padded grids of n cells). */
void vq_prev_save(struct vq_prev_frame *f, const int32_t *cond, const int32_t *img, const uint8_t *keep, size_t n,
                  int mode, const struct vq_sampler_params *sp, int32_t oi, int32_t oj);
void vq_prev_free(struct vq_prev_frame *f);

/* Temporal reuse: cell (i, j) of the grids in pc shows the same window
 * content as cell (i + dy, j + dx) of the previous frame (same offset in the
 * window, same condition tokens, same image tokens before it), so its token
 * is that one. */
int vq_prev_reusable(const struct vq_prev_frame *f, const struct vq_placements *pc, int i, int j, int dy, int dx);

/* The shift (dy, dx) of the condition grid cur against prev (both gh x gw, row
 * stride gw), cur[i][j] == prev[i + dy][j + dx]: the shift with |dy|, |dx| <=
 * radius whose overlap agrees best, ties to the smallest (compared away from
 * the edges: min(2, side / 6) cells; overlaps of at least half that region),
 * taken when it agrees on >= 90 % of the overlap, or on >= 50 % while leaving
 * at most 3/4 of the disagreement of no shift; else 0, 0 (still, or a cut).
 * Returns the agreement of the result in [0, 1]. */
double vq_detect_shift(const int32_t *cur, const int32_t *prev, int gw, int gh, int radius,
                       int *dy, int *dx);

#endif
