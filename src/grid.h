/* Token grids: the limits every call checks, the window side of a
 * transformer, and the reference's window schedule (docs/sampling.md). The one
 * place that computes them: the loader (model.c), the sampler (window.c,
 * sequence.c), the tokenizer calls (session.c) and follow (follow.c) all ask
 * here. */
#ifndef VQ_GRID_H
#define VQ_GRID_H

#include <stdint.h>

/* 0 when 1 <= gw, gh <= VQGAN_MAX_GRID; else VQGAN_ERR_INVALID (empty) or
 * VQGAN_ERR_LIMIT (too large) with a message beginning with `what`. */
int vq_check_grid(const char *what, int gw, int gh);
/* 0 when every token of the gh x gw grid (skipping the cells where mask, when
 * not NULL, is nonzero) is in 0..n-1; else VQGAN_ERR_INVALID with
 * "<what> <token> at grid (x, y) is outside the <range> 0..n-1". */
int vq_check_tokens(const char *what, const char *range, const int32_t *tokens, const uint8_t *mask, int gw,
                    int gh, int n);

/* Window side w of a transformer with a spatial condition: block = 2·w·w
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

/* First row (column) of the window that predicts row i of an n-long grid.
 * step 1 is the reference's schedule; step > 1 is fast mode (docs/sampling.md,
 * "Fast mode"). */
int vq_window_start(int i, int n, int w, int step);

/* Rows (columns) whose window starts at s: a contiguous range [*lo, *hi]
 * (empty, lo > hi, for a start the schedule never uses). */
void vq_window_visits(int s, int n, int w, int step, int *lo, int *hi);

#endif
