/* Feeding a window placement: bringing its KV cache up to the prefix that
 * predicts a cell, in chunks that are the same in every frame and mode, with
 * condition prefixes copied from other placements where they agree
 * (docs/sampling.md, "Shared condition prefixes"). */
#ifndef VQ_PREFIX_H
#define VQ_PREFIX_H

#include "placements.h"

/* Placement P's cache made to hold the prefix that predicts grid cell (i, j),
 * and that prediction's logits written to `logits` (vocab values; untouched in
 * a dry run). A cache holding tokens that no longer match the grids (a kept
 * one, a later frame) is first cut back to the chunk boundary below the
 * first token that differs. */
int vq_prefix_bring(struct vq_placements *pc, struct vq_placement *P, int i, int j, int temporal, float *logits);

/* 1 when bringing P to (i, j) is one feed of at most max positions after
 * its condition (the chunk from its cache, cut back as vq_prefix_bring does,
 * to the visit (i, j)); 0 when it takes anything else. */
int vq_prefix_single(struct vq_placements *pc, struct vq_placement *P, int i, int j, int temporal, int max);
/* 1 when bringing P to (i, j) is one feed of at least
 * VQ_ROWS_INDEPENDENT_FROM positions with row-independent products
 * (pc->share): the rest of its condition with its first visit, or the
 * positions since its previous visit, after cutting back as vq_prefix_bring
 * does and sharing a condition prefix; 0 when it takes anything else. */
int vq_prefix_large(struct vq_placements *pc, struct vq_placement *P, int i, int j, int temporal);
/* vq_prefix_bring of n placements (distinct) to cells (i[k], j[k]), each a
 * single feed (vq_prefix_single, all of them, or vq_prefix_large, all of
 * them), in one batched forward
 * (vq_gpt_forward_batch): the same caches and logits, logits[k] for each. */
int vq_prefix_bring_batch(struct vq_placements *pc, struct vq_placement *const *P, const int *i, const int *j, int n,
                          float *const *logits);

#endif
