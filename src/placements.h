/* The placement caches of the sliding window (docs/sampling.md, "Caches"):
 * one KV cache per window placement, kept in a table by the placement's
 * corner, under a byte cap with eviction by the schedule's next visit, kept
 * across frames in temporal modes and moved with the content in follow. */
#ifndef VQ_PLACEMENTS_H
#define VQ_PLACEMENTS_H

#include <stddef.h>
#include <stdint.h>

#include "gpt.h"

/* The cache of one window placement (top-left corner r0, c0 on the padded
 * grid). Every position it holds was computed from condition tokens and final
 * image tokens only, so it stays valid for the whole frame; toks records
 * them, so that a later frame can check how much of it still holds. */
struct vq_placement {
    struct vq_kv_cache cache;        /* dry run: kv stays NULL, len/cap tracked */
    int32_t *toks;                   /* [cache.cap]: the tokens fed (cache.len) */
    int r0, c0;
    int row_lo, row_hi, col_lo, col_hi;  /* the grid positions it predicts   */
    size_t bytes;
    int kept;                        /* temporal: done for this frame, kept for the next */
    int64_t next_use;                /* kept: when it is needed next (eviction: largest first) */
    struct vq_placement *newer, *older; /* LRU list of the placements in use  */
};

/* The placements of one grid, and what feeding them needs. */
struct vq_placements {
    /* this call's transformer, grid and schedule (set by window.c) */
    const struct vq_gpt *gpt;
    const struct vq_exec *exec;      /* this call's backend and threads (vq_window_params) */
    int w, Hp, Wp, Hs;               /* window, padded grid, rows sampled       */
    int np;                          /* condition positions of a window: w·w
                                        (spatial) or 1 (class / start token)    */
    int step;                        /* schedule step: 1 exact, > 1 fast mode   */
    const int32_t *cond, *img;       /* the padded grids [Hp][Wp] fed from      */
    int share;                       /* condition prefixes copied between placements */
    int64_t frame;                   /* frames sampled with this state          */
    int cur_i, cur_j;                /* the cell being sampled (eviction order) */
    /* test hooks (window_test.h) */
    int dry_run;
    void (*trace)(void *opaque, int r0, int c0, int len, int n);
    void *trace_opaque;
    /* the store */
    int n_c0;                        /* placements per row: Wp - w + 1          */
    struct vq_placement **table;     /* [(Hp - w + 1) * n_c0], NULL: not cached */
    struct vq_placement *newest, *oldest;
    int n_kept;
    size_t bytes, cap_bytes;
    struct vq_placement *donor;      /* the last placement dropped, kept for its prefix */
    /* this call's counts */
    int64_t fed, evictions, shared;
};

/* Positions fed to placement P to predict grid cell (i, j): the np condition
 * tokens (the window's w·w, or the one class / start token), then the
 * window's image tokens before (i, j). */
static inline int vq_prefix_len(const struct vq_placements *pc, const struct vq_placement *P, int i, int j)
{
    return pc->np + (i - P->r0) * pc->w + (j - P->c0);
}

/* Token q of placement P's sequence in the current frame (a non-spatial
 * condition's token is cond at the placement's corner, as everywhere). */
static inline int32_t vq_placement_token(const struct vq_placements *pc, const struct vq_placement *P, int q)
{
    const int w = pc->w, np = pc->np;
    const int32_t *grid = q < np ? pc->cond : pc->img;
    const int k = q < np ? q : q - np;
    return grid[(size_t)(P->r0 + k / w) * pc->Wp + P->c0 + k % w];
}

/* A new table for the grid set in pc (the store must be empty). */
int vq_placements_begin(struct vq_placements *pc);
/* Frees every placement, the donor and the table. */
void vq_placements_clear(struct vq_placements *pc);
/* The placement at corner (r0, c0), created (evicting others to make room
 * under the cap) when not cached; a kept one is in use again. */
int vq_placements_get(struct vq_placements *pc, int r0, int c0, struct vq_placement **out);
/* 1 when the placement at corner (r0, c0) is cached, or fits under the cap
 * beside every placement in use (evicting kept ones only). */
int vq_placements_fits(const struct vq_placements *pc, int r0, int c0);
/* After the last visit of a frame: dropped, or (keep: temporal) kept for the
 * next frame. */
void vq_placements_done(struct vq_placements *pc, int r0, int c0, int keep);
/* Temporal, at the start of a frame: placements still in use (a call that
 * stopped half-way) are kept, and the cap is enforced (it may have shrunk). */
void vq_placements_keep_all(struct vq_placements *pc);
/* Follow: the content moved by (dy, dx); a cache follows when its placement
 * predicts the same cells relative to itself (its chunks are then the same),
 * else it is dropped. */
int vq_placements_move(struct vq_placements *pc, int dy, int dx);
/* The end of a call: the donor of shared prefixes is freed. */
void vq_placements_end(struct vq_placements *pc);

#endif
