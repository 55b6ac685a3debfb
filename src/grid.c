/* Token grids: limits, window sides and the window schedule (grid.h). */
#include <stddef.h>

#include "error.h"
#include "grid.h"
#include "vqgan.h"

int vq_check_grid(const char *what, int gw, int gh)
{
    if (gw <= 0 || gh <= 0)
        return vq_error(VQGAN_ERR_INVALID, "%s %dx%d is empty", what, gw, gh);
    if (gw > VQGAN_MAX_GRID || gh > VQGAN_MAX_GRID)
        return vq_error(VQGAN_ERR_LIMIT, "%s %dx%d is larger than %dx%d", what, gw, gh,
                        VQGAN_MAX_GRID, VQGAN_MAX_GRID);
    return 0;
}

int vq_window_side(int block)
{
    int w = 1;
    while (2 * (w + 1) * (w + 1) <= block)
        w++;
    return 2 * w * w == block ? w : 0;
}

int vq_window_side_token(int block)
{
    if (block < 1) return 0;
    int w = 1;
    while ((w + 1) * (w + 1) <= block)
        w++;
    return w;
}

/* Fast mode (step > 1, at most w - w/2) rounds the start down to a multiple
 * of step, so that one placement predicts up to step consecutive rows
 * (columns), at offsets w/2 .. w/2 + step - 1 instead of w/2. */
int vq_window_start(int i, int n, int w, int step)
{
    int s = i - w / 2;
    if (step > 1 && s > 0) s -= s % step;
    if (s > n - w) s = n - w;
    if (s < 0) s = 0;
    return s;
}

int vq_window_offset(int i, int n, int w)
{
    return i - vq_window_start(i, n, w, 1);
}

void vq_window_visits(int s, int n, int w, int step, int *lo, int *hi)
{
    if (step <= 1) {
        *lo = s == 0 ? 0 : s + w / 2;
        *hi = s == n - w ? n - 1 : s + w / 2;
        return;
    }
    *lo = s == 0 ? 0 : w / 2 + (s + step - 1) / step * step;
    *hi = s == n - w ? n - 1 : w / 2 + s + step - 1;
    if (*hi > n - 1) *hi = n - 1;
}

int vq_check_tokens(const char *what, const char *range, const int32_t *tokens, const uint8_t *mask, int gw,
                    int gh, int n)
{
    for (int i = 0; i < gh; i++)
        for (int j = 0; j < gw; j++) {
            const size_t k = (size_t)i * gw + j;
            if ((!mask || !mask[k]) && (tokens[k] < 0 || tokens[k] >= n))
                return vq_error(VQGAN_ERR_INVALID, "%s %d at grid (%d, %d) is outside the %s 0..%d", what, tokens[k],
                                j, i, range, n - 1);
        }
    return 0;
}
