/* The slow oracle of the sliding-window sampler: the reference's loop, one
 * full forward of the whole window per sampled cell, no cache. Shared by
 * test_window.c (segmentation condition) and test_complete.c (one-token
 * conditions, kept cells). */
#ifndef VQ_WINDOW_ORACLE_H
#define VQ_WINDOW_ORACLE_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpt.h"
#include "sampler.h"
#include "window.h"

/* The window's first row for grid row i, literally as the golden README states
 * the reference's rule (even w); for odd w, our documented generalisation. */
static int oracle_offset(int i, int n, int w)
{
    if (w % 2 == 0) {
        if (i <= w / 2) return i;
        if (n - i < w / 2) return w - (n - i);
        return w / 2;
    }
    int s = i - w / 2;
    if (s > n - w) s = n - w;
    if (s < 0) s = 0;
    return i - s;
}

/* What the oracle samples: cond (gh x gw) for a spatial condition, else the
 * one token; given / mask (may be NULL) as in struct vq_window_params. */
struct oracle_input {
    const int32_t *cond;
    int32_t token;
    uint32_t stream;
    const int32_t *given;
    const uint8_t *mask;
};

/* The reference's loop over the (padded) grid: for every sampled cell, the
 * window's condition (w·w tokens, or the one token) and image tokens minus
 * the last go through one full forward; the logits at the cell's window
 * position are sampled. Kept cells hold their given token from the start and
 * are skipped. min_margin (may be NULL): the smallest greedy lead seen. */
static int oracle_sample(const struct vq_gpt *g, const struct vq_sampler_params *sp, const struct oracle_input *in,
                         int gw, int gh, int32_t *out, double *min_margin)
{
    const int w = in->cond ? vq_window_side(g->block) : vq_window_side_token(g->block);
    const int ww = w * w, np = in->cond ? ww : 1, T = np + ww - 1;
    const int Hp = gh > w ? gh : w, Wp = gw > w ? gw : w;
    int32_t *c = malloc(sizeof(int32_t) * Hp * Wp), *img = malloc(sizeof(int32_t) * Hp * Wp);
    uint8_t *keep = malloc((size_t)Hp * Wp);
    int32_t *seq = malloc(sizeof(int32_t) * T);
    float *logits = malloc(sizeof(float) * (size_t)T * g->vocab);
    struct vq_sampler s;
    int rc = !c || !img || !keep || !seq || !logits ? -1 : vq_sampler_init(&s, sp, g->vocab);
    if (min_margin) *min_margin = INFINITY;
    for (int i = 0; !rc && i < Hp; i++)   /* pad by repeating the last row / column */
        for (int j = 0; j < Wp; j++) {
            const int k = i * Wp + j, sk = (i < gh ? i : gh - 1) * gw + (j < gw ? j : gw - 1);
            c[k] = in->cond ? in->cond[sk] : in->token;
            keep[k] = in->mask && !in->mask[sk];
            img[k] = keep[k] ? in->given[sk] : c[k];
        }
    for (int i = 0; !rc && i < gh; i++)
        for (int j = 0; !rc && j < Wp; j++) {
            if (keep[i * Wp + j]) continue;
            const int li = oracle_offset(i, Hp, w), lj = oracle_offset(j, Wp, w);
            const int r0 = i - li, c0 = j - lj;
            for (int q = 0; q < T; q++) {
                const int32_t *src = q < np ? c : img;
                const int k = q < np ? q : q - np;
                seq[q] = src[(r0 + k / w) * Wp + c0 + k % w];
            }
            rc = vq_gpt_logits_all(NULL, g, seq, T, logits);
            const float *l = logits + (size_t)(np - 1 + li * w + lj) * g->vocab;
            const struct vq_draw_key key = { in->stream, i, j };
            img[i * Wp + j] = vq_sample_token(&s, l, key);
            /* how close the greedy choice was (rounding could only flip a near-tie) */
            const int best = vq_argmax(l, g->vocab);
            for (int v = 0; min_margin && v < g->vocab; v++)
                if (v != best && l[best] - l[v] < *min_margin) *min_margin = l[best] - l[v];
        }
    for (int i = 0; !rc && i < gh; i++)
        memcpy(out + i * gw, img + i * Wp, sizeof(int32_t) * gw);
    if (c && img && keep && seq && logits) vq_sampler_free(&s);
    free(c); free(img); free(keep); free(seq); free(logits);
    return rc;
}

#endif
