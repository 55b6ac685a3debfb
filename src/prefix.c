/* Feeding a window placement (prefix.h). */
#include <string.h>

#include "error.h"
#include "ops.h"
#include "prefix.h"

/* The tokens of positions [P->len, end) of placement P's window into
 * P->toks, counted and traced as fed; returns P->len. */
static int take_tokens(struct vq_placements *pc, struct vq_placement *P, int end)
{
    const int a = P->cache.len;
    pc->fed += end - a;
    if (pc->trace)
        pc->trace(pc->trace_opaque, P->r0, P->c0, a, end - a);
    for (int q = a; q < end; q++)
        P->toks[q] = vq_placement_token(pc, P, q);
    return a;
}

/* Feeds positions [P->len, end) of placement P's window. */
static int feed(struct vq_placements *pc, struct vq_placement *P, int end, float *logits)
{
    const int a = take_tokens(pc, P, end), n = end - a;
    if (pc->dry_run) {
        P->cache.len = end;
        return 0;
    }
    return vq_gpt_forward(pc->exec, pc->gpt, &P->cache, P->toks + a, n, logits ? n - 1 : n, logits);
}

/* The chunks a placement is fed in, the same in every frame and mode so that
 * a cache kept, cut back or recomputed holds the very numbers of one computed
 * from scratch: the w·w condition positions first, then up to each visit. The
 * largest chunk boundary b <= limit with b < target. */
static int boundary_below(const struct vq_placements *pc, const struct vq_placement *P, int limit, int target)
{
    const int ww = pc->np;
    int b = 0;
    if (ww <= limit && ww < target) b = ww;
    for (int vi = P->row_lo; vi <= P->row_hi; vi++)
        for (int vj = P->col_lo; vj <= P->col_hi; vj++) {
            const int e = vq_prefix_len(pc, P, vi, vj);
            if (e > limit || e >= target) return b;
            if (e > b) b = e;
        }
    return b;
}

/* Condition-prefix sharing (docs/sampling.md, "Shared condition prefixes").
 * Two placements whose condition windows agree on their first k tokens (in
 * the window's raster order) hold the same keys and values for positions
 * 0..k-1: a position's keys and values depend on the tokens up to it only.
 * A new placement copies them from the donor (the placement dropped last) or
 * from a placement in use, whichever agrees longest, and computes the rest
 * of its condition chunk. The numbers are those it would
 * compute itself when a row's result does not depend on the other rows of
 * its chunk (vq_gpt_rows_independent; test_window compares every logit): the
 * chunk left to compute keeps at least SHARE_MIN_ROWS rows, so every product
 * goes through the kernel it would use for the whole chunk. */
#define SHARE_MIN_ROWS VQ_ROWS_INDEPENDENT_FROM
#define SHARE_MIN_PREFIX 16

static int agree(const struct vq_placements *pc, const struct vq_placement *Q, const struct vq_placement *P, int ww)
{
    if (!Q || Q == P || Q->cache.len < ww || Q->cache.bf16 != P->cache.bf16) return 0;
    int k = 0;
    while (k < ww && Q->toks[k] == vq_placement_token(pc, P, k)) k++;
    return k;
}

static void share_prefix(struct vq_placements *pc, struct vq_placement *P)
{
    const int ww = pc->np;
    if (!pc->share || P->cache.len || P->cache.cap < ww) return;
    /* the donor, then every placement in use, newest first: the longest
     * agreement wins, the first found among equals */
    const struct vq_placement *Q = pc->donor;
    int k = agree(pc, Q, P, ww);
    for (const struct vq_placement *O = P->older; O && k < ww; O = O->older) {
        const int ko = agree(pc, O, P, ww);
        if (ko > k) {
            k = ko;
            Q = O;
        }
    }
    if (k < ww && k > ww - SHARE_MIN_ROWS) k = ww - SHARE_MIN_ROWS;
    if (k < SHARE_MIN_PREFIX || k < pc->gpt->n_unmasked) return;
    if (!pc->dry_run)
        vq_kv_cache_copy_prefix(pc->exec, &P->cache, &Q->cache, k);
    memcpy(P->toks, Q->toks, sizeof(int32_t) * (size_t)k);
    P->cache.len = k;
    pc->shared += k;
}

/* A cache that holds tokens the grids no longer have, or more than the
 * target, is cut back to the chunk boundary below the first difference. */
static void cut_back(const struct vq_placements *pc, struct vq_placement *P, int target, int temporal)
{
    if (P->cache.len > 0 && (temporal || P->cache.len >= target)) {
        const int n = P->cache.len < target ? P->cache.len : target;
        int same = 0;
        while (same < n && P->toks[same] == vq_placement_token(pc, P, same))
            same++;
        if (same < P->cache.len || P->cache.len >= target)
            P->cache.len = boundary_below(pc, P, same, target);
    }
}

/* Brings placement P up to the prefix that predicts (i, j) and writes that
 * prediction's logits, in the chunks of boundary_below(). */
static int extend(struct vq_placements *pc, struct vq_placement *P, int i, int j, float *logits)
{
    const int ww = pc->np, target = vq_prefix_len(pc, P, i, j);
    int r;
    share_prefix(pc, P);
    if (P->cache.len < ww && target > ww) {
        /* row-independent products (pc->share): the rest of the condition
         * and a first visit of VQ_ROWS_INDEPENDENT_FROM positions or more go
         * in one call, the numbers of two such calls */
        if (pc->share && ww - P->cache.len >= VQ_ROWS_INDEPENDENT_FROM &&
            target - ww >= VQ_ROWS_INDEPENDENT_FROM && boundary_below(pc, P, target, target) <= ww)
            return feed(pc, P, target, logits);
        if ((r = feed(pc, P, ww, NULL)))
            return r;
    }
    for (int vi = P->row_lo; vi <= P->row_hi; vi++)
        for (int vj = P->col_lo; vj <= P->col_hi; vj++) {
            const int end = vq_prefix_len(pc, P, vi, vj);
            if (end <= P->cache.len)
                continue;
            if ((r = feed(pc, P, end, end == target ? logits : NULL)))
                return r;
            if (end == target)
                return 0;
        }
    return vq_error(VQGAN_ERR_INVALID, "window schedule: (%d, %d) is not a visit of placement (%d, %d)",
                    i, j, P->r0, P->c0);
}

int vq_prefix_bring(struct vq_placements *pc, struct vq_placement *P, int i, int j, int temporal, float *logits)
{
    cut_back(pc, P, vq_prefix_len(pc, P, i, j), temporal);
    return extend(pc, P, i, j, logits);
}

int vq_prefix_single(struct vq_placements *pc, struct vq_placement *P, int i, int j, int temporal, int max)
{
    const int target = vq_prefix_len(pc, P, i, j);
    cut_back(pc, P, target, temporal);
    const int len = P->cache.len;
    /* extend() feeds up to the first visit past len: no chunk boundary
     * may lie between len and (i, j) */
    return len >= pc->np && len < target && target - len <= max && boundary_below(pc, P, target, target) <= len;
}

int vq_prefix_large(struct vq_placements *pc, struct vq_placement *P, int i, int j, int temporal)
{
    const int ww = pc->np, target = vq_prefix_len(pc, P, i, j);
    cut_back(pc, P, target, temporal);
    share_prefix(pc, P);
    const int len = P->cache.len;
    /* the one call of extend(): the condition's rest with the first visit,
     * or the positions since the previous visit */
    if (!pc->share || target - len < VQ_ROWS_INDEPENDENT_FROM) return 0;
    if (len >= ww) return boundary_below(pc, P, target, target) <= len;
    return ww - len >= VQ_ROWS_INDEPENDENT_FROM && target - ww >= VQ_ROWS_INDEPENDENT_FROM &&
           boundary_below(pc, P, target, target) <= ww;
}

int vq_prefix_bring_batch(struct vq_placements *pc, struct vq_placement *const *P, const int *i, const int *j, int n,
                          float *const *logits)
{
    struct vq_gpt_seq seq[VQ_GPT_MAX_BATCH];
    if (n < 1 || n > VQ_GPT_MAX_BATCH)
        return vq_error(VQGAN_ERR_INVALID, "window: a batch of %d placements (1..%d)", n, VQ_GPT_MAX_BATCH);
    for (int k = 0; k < n; k++) {
        struct vq_placement *Q = P[k];
        const int end = vq_prefix_len(pc, Q, i[k], j[k]), a = take_tokens(pc, Q, end);
        seq[k] = (struct vq_gpt_seq){ &Q->cache, Q->toks + a, end - a, end - a - 1, logits[k] };
    }
    if (pc->dry_run) {
        for (int k = 0; k < n; k++)
            P[k]->cache.len += seq[k].n;
        return 0;
    }
    return vq_gpt_forward_batch(pc->exec, pc->gpt, seq, n);
}
