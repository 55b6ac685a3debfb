/* Temporal modes: the previous frame and follow's shift detection (temporal.h). */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "grid.h"
#include "temporal.h"

int vq_prev_same_grid(const struct vq_prev_frame *f, const struct vq_gpt *gpt, int gw, int gh, int step, int np)
{
    return f->grid && f->gw == gw && f->gh == gh && f->gpt == gpt && f->block == gpt->block &&
           f->vocab == gpt->vocab && f->unmasked == gpt->n_unmasked && f->step == step && f->np == np;
}

void vq_prev_set_grid(struct vq_prev_frame *f, int mode, const struct vq_gpt *gpt, int gw, int gh, int step, int np)
{
    f->have = 0;
    f->grid = mode != 0;
    f->gw = gw; f->gh = gh; f->gpt = gpt;
    f->block = gpt->block; f->vocab = gpt->vocab; f->unmasked = gpt->n_unmasked;
    f->step = step;
    f->np = np;
}

int vq_prev_reserve(struct vq_prev_frame *f, size_t n)
{
    if (n <= f->cap) return 0;
    f->have = 0;                         /* (a larger grid resets the state anyway) */
    int32_t *c = realloc(f->cond, sizeof(int32_t) * n);
    if (c) f->cond = c;
    int32_t *i = c ? realloc(f->img, sizeof(int32_t) * n) : NULL;
    if (i) f->img = i;
    uint8_t *k = i ? realloc(f->keep, n) : NULL;
    if (!k) return vq_error(VQGAN_ERR_NOMEM, "sampler buffers: out of memory");
    f->keep = k;
    f->cap = n;
    return 0;
}

void vq_prev_save(struct vq_prev_frame *f, const int32_t *cond, const int32_t *img, const uint8_t *keep, size_t n,
                  int mode, const struct vq_sampler_params *sp, int32_t oi, int32_t oj)
{
    memcpy(f->cond, cond, sizeof(int32_t) * n);
    memcpy(f->img, img, sizeof(int32_t) * n);
    memcpy(f->keep, keep, n);
    f->have = 1;
    f->mode = mode;
    f->sp = *sp;
    f->oi = oi;
    f->oj = oj;
}

void vq_prev_free(struct vq_prev_frame *f)
{
    free(f->cond);
    free(f->img);
    free(f->keep);
    memset(f, 0, sizeof(*f));
}

int vq_prev_reusable(const struct vq_prev_frame *f, const struct vq_placements *pc, int i, int j, int dy, int dx)
{
    const int w = pc->w, Wp = pc->Wp, Hp = pc->Hp, step = pc->step;
    const int pi = i + dy, pj = j + dx;
    if (pi < 0 || pi >= pc->Hs || pj < 0 || pj >= Wp) return 0;
    const int r0 = vq_window_start(i, Hp, w, step), c0 = vq_window_start(j, Wp, w, step);
    const int pr0 = vq_window_start(pi, Hp, w, step), pc0 = vq_window_start(pj, Wp, w, step);
    const int li = i - r0, lj = j - c0;
    if (pi - pr0 != li || pj - pc0 != lj) return 0;
    if (f->keep[(size_t)pi * Wp + pj]) return 0;   /* kept there: not a draw */
    const size_t row = sizeof(int32_t) * (size_t)w;
    for (int a = 0; a < w; a++)
        if (memcmp(pc->cond + (size_t)(r0 + a) * Wp + c0, f->cond + (size_t)(pr0 + a) * Wp + pc0, row))
            return 0;
    for (int a = 0; a < li; a++)
        if (memcmp(pc->img + (size_t)(r0 + a) * Wp + c0, f->img + (size_t)(pr0 + a) * Wp + pc0, row))
            return 0;
    return !memcmp(pc->img + (size_t)i * Wp + c0, f->img + (size_t)pi * Wp + pc0,
                   sizeof(int32_t) * (size_t)lj);
}

/* Agreement of cur against prev shifted by (sy, sx) over their overlap, both
 * kept b cells away from the grid's edges (the condition encoder's zero
 * padding gives the border cells tokens of their own, which stay in place
 * when the content moves); -1 when the overlap is less than half of that
 * inner region. */
static double shift_agreement(const int32_t *cur, const int32_t *prev, int gw, int gh, int b, int sy, int sx)
{
    const int lo_i = b > b - sy ? b : b - sy, hi_i = gh - b < gh - b - sy ? gh - b : gh - b - sy;
    const int lo_j = b > b - sx ? b : b - sx, hi_j = gw - b < gw - b - sx ? gw - b : gw - b - sx;
    if (hi_i <= lo_i || hi_j <= lo_j) return -1;
    const int64_t overlap = (int64_t)(hi_i - lo_i) * (hi_j - lo_j);
    if (2 * overlap < (int64_t)(gw - 2 * b) * (gh - 2 * b)) return -1;
    int64_t agree = 0;
    for (int i = lo_i; i < hi_i; i++) {
        const int32_t *a = cur + (size_t)i * gw, *p = prev + (size_t)(i + sy) * gw + sx;
        for (int j = lo_j; j < hi_j; j++) agree += a[j] == p[j];
    }
    return (double)agree / (double)overlap;
}

double vq_detect_shift(const int32_t *cur, const int32_t *prev, int gw, int gh, int radius,
                       int *dy, int *dx)
{
    const int side = gw < gh ? gw : gh, b = side / 6 < 2 ? side / 6 : 2;
    const double still = shift_agreement(cur, prev, gw, gh, b, 0, 0);
    double best = still;
    int by = 0, bx = 0;
    *dy = *dx = 0;
    for (int sy = -radius; sy <= radius; sy++)
        for (int sx = -radius; sx <= radius; sx++) {
            const double f = shift_agreement(cur, prev, gw, gh, b, sy, sx);
            const int d = abs(sy) + abs(sx), bd = abs(by) + abs(bx);
            if (f > best + 1e-12 || (f > best - 1e-12 && d < bd)) {
                best = f;
                by = sy;
                bx = sx;
            }
        }
    /* a shift is taken when the shifted grids agree on 90 % of the overlap, or
     * on half of it while removing at least a quarter of the disagreement of
     * no shift (the condition encoder's borders and attention make a panned
     * map's tokens agree only approximately); otherwise none (still, or a cut) */
    if ((by || bx) && (best >= 0.9 || (best >= 0.5 && 1.0 - best <= 0.75 * (1.0 - still)))) {
        *dy = by;
        *dx = bx;
        return best;
    }
    return still;
}
