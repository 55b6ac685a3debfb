/* Sampling token grids: the reference's sliding window with per-placement KV
 * caches, and the cached sequence of class-conditional / unconditional models.
 * docs/sampling.md describes the schedule, the caches and the cap. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "memlimit.h"
#include "ops.h"
#include "scratch.h"
#include "window.h"

/* ---- schedule ---------------------------------------------------------------- */

int vq_window_side(int block)
{
    int w = 1;
    while (2 * (w + 1) * (w + 1) <= block)
        w++;
    return 2 * w * w == block ? w : 0;
}

/* First row (column) of the window that predicts row i of an n-long grid.
 * step 1 is the reference's schedule. Fast mode (step > 1, at most w - w/2;
 * docs/sampling.md, "Fast mode") rounds the start down to a multiple of step,
 * so that one placement predicts up to step consecutive rows (columns), at
 * offsets w/2 .. w/2 + step - 1 instead of w/2. */
static int window_start(int i, int n, int w, int step)
{
    int s = i - w / 2;
    if (step > 1 && s > 0) s -= s % step;
    if (s > n - w) s = n - w;
    if (s < 0) s = 0;
    return s;
}

int vq_window_side_token(int block)
{
    if (block < 1) return 0;
    int w = 1;
    while ((w + 1) * (w + 1) <= block)
        w++;
    return w;
}

int vq_window_offset(int i, int n, int w)
{
    return i - window_start(i, n, w, 1);
}

/* Rows (columns) whose window starts at s: a contiguous range [*lo, *hi]
 * (empty, lo > hi, for a start the schedule never uses). */
static void visit_range(int s, int n, int w, int step, int *lo, int *hi)
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

/* ---- state ----------------------------------------------------------------------- */

/* The cache of one window placement (top-left corner r0, c0 on the padded
 * grid). Every position it holds was computed from condition tokens and final
 * image tokens only, so it stays valid for the whole frame; toks records
 * them, so that a later frame can check how much of it still holds. */
struct placement {
    struct vq_kv_cache cache;        /* dry run: kv stays NULL, len/cap tracked */
    int32_t *toks;                   /* [cache.cap]: the tokens fed (cache.len) */
    int r0, c0;
    int row_lo, row_hi, col_lo, col_hi;  /* the grid positions it predicts   */
    size_t bytes;
    int kept;                        /* temporal: done for this frame, kept for the next */
    int64_t next_use;                /* kept: when it is needed next (eviction: largest first) */
    struct placement *newer, *older; /* LRU list of the placements in use     */
};

struct vq_window_state {
    /* per call */
    const struct vq_gpt *gpt;
    const struct vq_exec *exec;  /* this call's (vq_window_params)              */
    int dry_run;
    void (*trace)(void *opaque, int r0, int c0, int len, int n);
    void *trace_opaque;
    int w, Hp, Wp, Hs;               /* window, padded grid, rows sampled       */
    int np;                          /* condition positions of a window: w·w
                                        (spatial) or 1 (class / start token)    */
    uint32_t stream;                 /* draw stream of this call                */
    int n_c0;                        /* placements per row: Wp - w + 1          */
    struct placement **table;        /* [(Hp - w + 1) * n_c0], NULL: not cached */
    struct placement *newest, *oldest;
    int n_kept;
    size_t bytes, cap_bytes;
    int64_t fed, evictions, shared;
    int share;                       /* condition prefixes copied between placements */
    struct placement *donor;         /* the last placement dropped, kept for its prefix */
    int cur_i, cur_j;                /* the cell being sampled (eviction order) */
    struct vq_sampler sampler;
    int temporal;                    /* this call's mode                        */
    int gumbel;                      /* tokens by the Gumbel-max rule (follow)  */
    int step;                        /* schedule step: 1 exact, > 1 fast mode   */
    const int32_t *forced;           /* benches: tokens imposed (gh x gw), or NULL */
    int forced_gw;
    void (*on_logits)(void *opaque, int i, int j, const float *logits, int vocab);
    void *on_logits_opaque;
    /* buffers, kept between calls */
    int32_t *cond, *img;             /* padded grids [Hp][Wp]; a non-spatial
                                        condition fills cond with its token     */
    uint8_t *keep;                   /* [Hp][Wp]: 1 = kept (completion)         */
    size_t grid_cap;
    int32_t *seq;                    /* [block]                                 */
    float *logits;                   /* [vocab]                                 */
    int seq_cap, logits_cap;
    /* temporal: the previous frame (docs/sampling.md, "Temporal modes") */
    int t_grid;                      /* table and placements belong to this grid: */
    int t_gw, t_gh, t_block, t_vocab, t_unmasked, t_step, t_np;
    const struct vq_gpt *t_gpt;
    int t_prev;                      /* prev_cond / prev_img hold a frame       */
    int t_mode;                      /* the mode it was sampled in              */
    struct vq_sampler_params t_sp;
    int32_t t_oi, t_oj;              /* its key origin                          */
    int32_t *prev_cond, *prev_img;   /* padded grids [Hp][Wp]                   */
    uint8_t *prev_keep;
    size_t prev_cap;
    int64_t frame;
};

static void lru_unlink(struct vq_window_state *st, struct placement *P)
{
    if (P->newer) P->newer->older = P->older; else if (st->newest == P) st->newest = P->older;
    if (P->older) P->older->newer = P->newer; else if (st->oldest == P) st->oldest = P->newer;
    P->newer = P->older = NULL;
}

static void lru_touch(struct vq_window_state *st, struct placement *P)
{
    lru_unlink(st, P);
    P->older = st->newest;
    if (st->newest) st->newest->newer = P;
    st->newest = P;
    if (!st->oldest) st->oldest = P;
}

static void placement_free(struct placement *P)
{
    if (!P) return;
    vq_kv_cache_free(&P->cache);
    free(P->toks);
    free(P);
}

/* Removes P from the table; with sharing on, a placement that holds the
 * condition positions stays as the donor (replacing the previous one). */
static void placement_drop(struct vq_window_state *st, struct placement *P)
{
    lru_unlink(st, P);
    if (P->kept) st->n_kept--;
    st->table[(size_t)P->r0 * st->n_c0 + P->c0] = NULL;
    st->bytes -= P->bytes;
    if (st->share && P->cache.len >= st->np) {
        placement_free(st->donor);
        st->donor = P;
    } else {
        placement_free(P);
    }
}

static size_t table_size(const struct vq_window_state *st)
{
    return (size_t)(st->Hp - st->w + 1) * st->n_c0;
}

/* Frees every placement and the table (the buffers stay). */
static void drop_placements(struct vq_window_state *st)
{
    const int share = st->share;
    st->share = 0;                       /* no donor out of these */
    if (st->table)
        for (size_t k = 0; k < table_size(st); k++)
            if (st->table[k]) placement_drop(st, st->table[k]);
    free(st->table);
    st->table = NULL;
    st->newest = st->oldest = NULL;
    st->n_kept = 0;
    st->bytes = 0;
    placement_free(st->donor);
    st->donor = NULL;
    st->share = share;
}

/* Forgets the previous frame and its caches. */
static void temporal_reset(struct vq_window_state *st)
{
    drop_placements(st);
    st->t_grid = 0;
    st->t_prev = 0;
}

void vq_window_state_free(struct vq_window_state *st)
{
    if (!st) return;
    temporal_reset(st);
    vq_sampler_free(&st->sampler);
    free(st->cond);
    free(st->img);
    free(st->prev_cond);
    free(st->prev_img);
    free(st->keep);
    free(st->prev_keep);
    free(st->seq);
    free(st->logits);
    free(st);
}

void vq_window_origin(const struct vq_window_state *st, int32_t *oi, int32_t *oj)
{
    *oi = st && st->t_prev ? st->t_oi : 0;
    *oj = st && st->t_prev ? st->t_oj : 0;
}

static int grow(void **buf, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    void *p = realloc(*buf, need * elem);
    if (!p) return vq_error(VQGAN_ERR_NOMEM, "sampler buffers: out of memory");
    *buf = p;
    *cap = need;
    return 0;
}

static int buffers(struct vq_window_state *st, const struct vq_gpt *gpt, size_t grid)
{
    size_t gc = st->grid_cap, sc = (size_t)st->seq_cap, lc = (size_t)st->logits_cap;
    int r;
    if (grid > gc) {
        size_t c2 = gc, c3 = gc;
        if ((r = grow((void **)&st->cond, &gc, grid, sizeof(int32_t)))) return r;
        if ((r = grow((void **)&st->img, &c2, grid, sizeof(int32_t)))) return r;
        if ((r = grow((void **)&st->keep, &c3, grid, 1))) return r;
        st->grid_cap = grid;
    }
    if (st->temporal && grid > st->prev_cap) {
        size_t pc = st->prev_cap, p2 = st->prev_cap, p3 = st->prev_cap;
        st->t_prev = 0;                 /* (a larger grid resets the state anyway) */
        if ((r = grow((void **)&st->prev_cond, &pc, grid, sizeof(int32_t)))) return r;
        if ((r = grow((void **)&st->prev_img, &p2, grid, sizeof(int32_t)))) return r;
        if ((r = grow((void **)&st->prev_keep, &p3, grid, 1))) return r;
        st->prev_cap = grid;
    }
    if ((r = grow((void **)&st->seq, &sc, (size_t)gpt->block, sizeof(int32_t)))) return r;
    st->seq_cap = (int)sc;
    if ((r = grow((void **)&st->logits, &lc, (size_t)gpt->vocab, sizeof(float)))) return r;
    st->logits_cap = (int)lc;
    return 0;
}

/* ---- placements ------------------------------------------------------------ */

/* Positions fed to placement P to predict grid cell (i, j): the np condition
 * tokens (the window's w·w, or the one class / start token), then the
 * window's image tokens before (i, j). */
static int prefix_len(const struct vq_window_state *st, const struct placement *P, int i, int j)
{
    return st->np + (i - P->r0) * st->w + (j - P->c0);
}

/* Token q of placement P's sequence in the current frame (a non-spatial
 * condition's token is cond at the placement's corner, as everywhere). */
static int32_t seq_token(const struct vq_window_state *st, const struct placement *P, int q)
{
    const int w = st->w, np = st->np;
    const int32_t *grid = q < np ? st->cond : st->img;
    const int k = q < np ? q : q - np;
    return grid[(size_t)(P->r0 + k / w) * st->Wp + P->c0 + k % w];
}

/* Order of placement P's first visit in a frame (raster index of the cell). */
static int64_t first_visit(const struct vq_window_state *st, const struct placement *P)
{
    return (int64_t)P->row_lo * st->Wp + P->col_lo;
}

/* Raster index of placement P's next visit after the cell being sampled
 * (INT64_MAX: none left in this frame). Its visits are the rectangle of cells
 * [row_lo, row_hi] x [col_lo, col_hi], taken in raster order. */
static int64_t next_visit(const struct vq_window_state *st, const struct placement *P)
{
    int i = st->cur_i, j = st->cur_j + 1;
    if (i < P->row_lo) {
        i = P->row_lo;
        j = P->col_lo;
    } else if (j > P->col_hi) {
        i++;
        j = P->col_lo;
    } else if (j < P->col_lo) {
        j = P->col_lo;
    }
    return i > P->row_hi ? INT64_MAX : (int64_t)i * st->Wp + j;
}

/* Evicts placements until `bytes` more fit under the cap (or none is left: the
 * placement in use is always allowed). Kept placements go first, the one
 * needed last first (they serve a later frame, or later in this one); then,
 * of the placements in use, the one the schedule visits last (Belady's rule:
 * the schedule is known, and the raster order revisits a band of placements
 * cyclically, where evicting the least recently used would evict each one
 * just before its next visit). */
static void make_room(struct vq_window_state *st, size_t bytes)
{
    while (st->bytes + bytes > st->cap_bytes) {
        struct placement *victim = NULL;
        if (st->n_kept) {
            for (size_t k = 0; k < table_size(st); k++) {
                struct placement *P = st->table[k];
                if (P && P->kept && (!victim || P->next_use > victim->next_use)) victim = P;
            }
        } else {
            int64_t far = -1;
            for (struct placement *P = st->oldest; P; P = P->newer) {
                const int64_t v = next_visit(st, P);
                if (v > far) {
                    far = v;
                    victim = P;
                }
            }
        }
        if (!victim) break;
        placement_drop(st, victim);
        st->evictions++;
    }
}

static void placement_ranges(const struct vq_window_state *st, struct placement *P)
{
    visit_range(P->r0, st->Hp, st->w, st->step, &P->row_lo, &P->row_hi);
    visit_range(P->c0, st->Wp, st->w, st->step, &P->col_lo, &P->col_hi);
    if (P->row_hi > st->Hs - 1) P->row_hi = st->Hs - 1;  /* rows past the crop are not sampled */
}

static int placement_get(struct vq_window_state *st, int r0, int c0, struct placement **out)
{
    struct placement **slot = &st->table[(size_t)r0 * st->n_c0 + c0];
    struct placement *P = *slot;
    int r;
    if (!P) {
        P = calloc(1, sizeof(*P));
        if (!P) return vq_error(VQGAN_ERR_NOMEM, "window cache: out of memory");
        P->r0 = r0;
        P->c0 = c0;
        placement_ranges(st, P);
        const int cap = prefix_len(st, P, P->row_hi, P->col_hi);
        P->bytes = vq_kv_cache_bytes(st->gpt, cap);
        make_room(st, P->bytes);
        if (!(P->toks = malloc(sizeof(int32_t) * (size_t)cap))) {
            free(P);
            return vq_error(VQGAN_ERR_NOMEM, "window cache: out of memory");
        }
        if (st->dry_run) {
            P->cache.cap = cap;
        } else if ((r = vq_kv_cache_init(&P->cache, st->gpt, cap))) {
            free(P->toks);
            free(P);
            return r;
        }
        *slot = P;
        st->bytes += P->bytes;
    } else if (P->kept) {
        P->kept = 0;
        st->n_kept--;
    }
    lru_touch(st, P);
    *out = P;
    return 0;
}

/* After the last visit of a frame: dropped, or (temporal) kept for the next. */
static void placement_done(struct vq_window_state *st, int r0, int c0)
{
    struct placement *P = st->table[(size_t)r0 * st->n_c0 + c0];
    if (!P) return;
    if (!st->temporal) {
        placement_drop(st, P);
        return;
    }
    lru_unlink(st, P);
    if (!P->kept) st->n_kept++;
    P->kept = 1;
    P->next_use = ((st->frame + 1) << 32) + first_visit(st, P);
}

/* Feeds positions [P->len, end) of placement P's window. */
static int feed(struct vq_window_state *st, struct placement *P, int end, float *logits)
{
    const int a = P->cache.len, n = end - a;
    st->fed += n;
    if (st->trace)
        st->trace(st->trace_opaque, P->r0, P->c0, a, n);
    for (int q = a; q < end; q++)
        st->seq[q - a] = P->toks[q] = seq_token(st, P, q);
    if (st->dry_run) {
        P->cache.len = end;
        return 0;
    }
    return vq_gpt_forward(st->exec, st->gpt, &P->cache, st->seq, n, logits ? n - 1 : n, logits);
}

/* The chunks a placement is fed in, the same in every frame and mode so that
 * a cache kept, cut back or recomputed holds the very numbers of one computed
 * from scratch: the w·w condition positions first, then up to each visit. The
 * largest chunk boundary b <= limit with b < target. */
static int boundary_below(const struct vq_window_state *st, const struct placement *P, int limit, int target)
{
    const int ww = st->np;
    int b = 0;
    if (ww <= limit && ww < target) b = ww;
    for (int vi = P->row_lo; vi <= P->row_hi; vi++)
        for (int vj = P->col_lo; vj <= P->col_hi; vj++) {
            const int e = prefix_len(st, P, vi, vj);
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

static int agree(const struct vq_window_state *st, const struct placement *Q, const struct placement *P, int ww)
{
    if (!Q || Q == P || Q->cache.len < ww || Q->cache.bf16 != P->cache.bf16) return 0;
    int k = 0;
    while (k < ww && Q->toks[k] == seq_token(st, P, k)) k++;
    return k;
}

static void share_prefix(struct vq_window_state *st, struct placement *P)
{
    const int ww = st->np;
    if (!st->share || P->cache.len || P->cache.cap < ww) return;
    /* the donor, then every placement in use, newest first: the longest
     * agreement wins, the first found among equals */
    const struct placement *Q = st->donor;
    int k = agree(st, Q, P, ww);
    for (const struct placement *O = P->older; O && k < ww; O = O->older) {
        const int ko = agree(st, O, P, ww);
        if (ko > k) {
            k = ko;
            Q = O;
        }
    }
    if (k < ww && k > ww - SHARE_MIN_ROWS) k = ww - SHARE_MIN_ROWS;
    if (k < SHARE_MIN_PREFIX || k < st->gpt->n_unmasked) return;
    if (!st->dry_run)
        vq_kv_cache_copy_prefix(&P->cache, &Q->cache, k);
    memcpy(P->toks, Q->toks, sizeof(int32_t) * (size_t)k);
    P->cache.len = k;
    st->shared += k;
}

/* Brings placement P up to the prefix that predicts (i, j) and writes that
 * prediction's logits, in the chunks of boundary_below(). */
static int extend(struct vq_window_state *st, struct placement *P, int i, int j, float *logits)
{
    const int ww = st->np, target = prefix_len(st, P, i, j);
    int r;
    share_prefix(st, P);
    if (P->cache.len < ww && target > ww && (r = feed(st, P, ww, NULL)))
        return r;
    for (int vi = P->row_lo; vi <= P->row_hi; vi++)
        for (int vj = P->col_lo; vj <= P->col_hi; vj++) {
            const int end = prefix_len(st, P, vi, vj);
            if (end <= P->cache.len)
                continue;
            if ((r = feed(st, P, end, end == target ? logits : NULL)))
                return r;
            if (end == target)
                return 0;
        }
    return vq_error(VQGAN_ERR_INVALID, "window schedule: (%d, %d) is not a visit of placement (%d, %d)",
                    i, j, P->r0, P->c0);
}

/* The token of grid cell (i, j), drawn with key (ki, kj): a function of the
 * seed, the key and the window's content before (i, j) only. A kept cache is
 * first cut back to the chunk boundary below the first token that differs
 * from what it holds. */
static int sample_position(struct vq_window_state *st, int i, int j, int32_t ki, int32_t kj, int32_t *token)
{
    const int r0 = window_start(i, st->Hp, st->w, st->step);
    const int c0 = window_start(j, st->Wp, st->w, st->step);
    struct placement *P = NULL;
    int r;
    st->cur_i = i;
    st->cur_j = j;
    if ((r = placement_get(st, r0, c0, &P))) return r;
    const int target = prefix_len(st, P, i, j);
    if (P->cache.len > 0 && (st->temporal || P->cache.len >= target)) {
        const int n = P->cache.len < target ? P->cache.len : target;
        int same = 0;
        while (same < n && P->toks[same] == seq_token(st, P, same))
            same++;
        if (same < P->cache.len || P->cache.len >= target)
            P->cache.len = boundary_below(st, P, same, target);
    }
    if ((r = extend(st, P, i, j, st->logits))) return r;
    if (st->dry_run) {
        *token = 0;
    } else if (st->forced && j < st->forced_gw) {
        if (st->on_logits) st->on_logits(st->on_logits_opaque, i, j, st->logits, st->gpt->vocab);
        *token = st->forced[(size_t)i * st->forced_gw + j];
    } else {
        if (st->on_logits) st->on_logits(st->on_logits_opaque, i, j, st->logits, st->gpt->vocab);
        const struct vq_draw_key key = { st->stream, ki, kj };
        *token = st->gumbel ? vq_gumbel_token(&st->sampler, st->logits, key)
                            : vq_sample_token(&st->sampler, st->logits, key);
    }
    return 0;
}

/* Temporal reuse: cell (i, j) showed the same window content as cell
 * (i + dy, j + dx) of the previous frame (same offset in the window, same
 * condition tokens, same image tokens before it), so its token is that one. */
static int reusable(const struct vq_window_state *st, int i, int j, int dy, int dx)
{
    const int w = st->w, Wp = st->Wp;
    const int pi = i + dy, pj = j + dx;
    if (pi < 0 || pi >= st->Hs || pj < 0 || pj >= Wp) return 0;
    const int r0 = window_start(i, st->Hp, w, st->step), c0 = window_start(j, Wp, w, st->step);
    const int pr0 = window_start(pi, st->Hp, w, st->step), pc0 = window_start(pj, Wp, w, st->step);
    const int li = i - r0, lj = j - c0;
    if (pi - pr0 != li || pj - pc0 != lj) return 0;
    if (st->prev_keep[(size_t)pi * Wp + pj]) return 0;   /* kept there: not a draw */
    const size_t row = sizeof(int32_t) * (size_t)w;
    for (int a = 0; a < w; a++)
        if (memcmp(st->cond + (size_t)(r0 + a) * Wp + c0, st->prev_cond + (size_t)(pr0 + a) * Wp + pc0, row))
            return 0;
    for (int a = 0; a < li; a++)
        if (memcmp(st->img + (size_t)(r0 + a) * Wp + c0, st->prev_img + (size_t)(pr0 + a) * Wp + pc0, row))
            return 0;
    return !memcmp(st->img + (size_t)i * Wp + c0, st->prev_img + (size_t)pi * Wp + pc0,
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

/* Follow: the placements move with the content; a cache follows when its
 * placement predicts the same cells relative to itself (its chunks are then
 * the same), else it is dropped. */
static int move_placements(struct vq_window_state *st, int dy, int dx)
{
    const size_t n = table_size(st);
    struct placement **t = calloc(n, sizeof(*t));
    if (!t) return vq_error(VQGAN_ERR_NOMEM, "window cache table: out of memory");
    for (size_t k = 0; k < n; k++) {
        struct placement *P = st->table[k];
        if (!P) continue;
        struct placement Q = *P;
        Q.r0 -= dy;
        Q.c0 -= dx;
        int ok = Q.r0 >= 0 && Q.r0 <= st->Hp - st->w && Q.c0 >= 0 && Q.c0 < st->n_c0;
        if (ok) {
            placement_ranges(st, &Q);
            ok = Q.row_lo - Q.r0 == P->row_lo - P->r0 && Q.row_hi - Q.r0 == P->row_hi - P->r0 &&
                 Q.col_lo - Q.c0 == P->col_lo - P->c0 && Q.col_hi - Q.c0 == P->col_hi - P->c0;
        }
        if (!ok) {
            placement_drop(st, P);      /* clears st->table[k] */
            continue;
        }
        st->table[k] = NULL;
        P->r0 = Q.r0; P->c0 = Q.c0;
        P->row_lo = Q.row_lo; P->row_hi = Q.row_hi; P->col_lo = Q.col_lo; P->col_hi = Q.col_hi;
        P->next_use = (st->frame << 32) + first_visit(st, P);
        t[(size_t)P->r0 * st->n_c0 + P->c0] = P;
    }
    free(st->table);
    st->table = t;
    return 0;
}

static void fill_stats(struct vqgan_sample_stats *stats, int64_t sampled, int64_t reused, int64_t fed, int64_t ev,
                       double t0)
{
    if (!stats) return;
    memset(stats, 0, sizeof(*stats));
    stats->positions_sampled = sampled;
    stats->positions_reused = reused;
    stats->transformer_tokens = fed;
    stats->cache_evictions = ev;
    stats->seconds = omp_get_wtime() - t0;
}

static int check_grid(int gw, int gh)
{
    if (gw <= 0 || gh <= 0)
        return vq_error(VQGAN_ERR_INVALID, "token grid %dx%d is empty", gw, gh);
    if (gw > VQGAN_MAX_GRID || gh > VQGAN_MAX_GRID)
        return vq_error(VQGAN_ERR_LIMIT, "token grid %dx%d is larger than %dx%d", gw, gh,
                        VQGAN_MAX_GRID, VQGAN_MAX_GRID);
    return 0;
}

static int same_sampling(const struct vq_sampler_params *a, const struct vq_sampler_params *b)
{
    return a->temperature == b->temperature && a->top_k == b->top_k && a->top_p == b->top_p && a->seed == b->seed;
}

/* The condition of a call: a gh x gw grid of tokens (spatial), or one token
 * (class / start token) with the draw stream it keys. */
struct window_cond {
    const int32_t *grid;
    int32_t token;
    uint32_t stream;
};

static int window_sample(struct vq_window_state **state, const struct vq_gpt *gpt,
                         const struct vq_window_params *p, const struct window_cond *c, int gw, int gh,
                         int32_t *tokens, struct vqgan_sample_stats *stats);

/* Placement caches and the transformer's buffers are reused within the call
 * (scratch.h): a placement dropped after its last visit gives its memory to
 * the next one instead of a fresh mapping faulted in page by page. */
int vq_window_sample(struct vq_window_state **state, const struct vq_gpt *gpt,
                     const struct vq_window_params *p, const int32_t *cond, int gw, int gh,
                     int32_t *tokens, struct vqgan_sample_stats *stats)
{
    const struct window_cond c = { cond, 0, VQ_STREAM_WINDOW };
    if (!cond) {
        fill_stats(stats, 0, 0, 0, 0, omp_get_wtime());
        return vq_error(VQGAN_ERR_INVALID, "conditional sampling: NULL argument");
    }
    vq_scratch_begin();
    int r = window_sample(state, gpt, p, &c, gw, gh, tokens, stats);
    vq_scratch_end();
    return r;
}

int vq_window_sample_token(struct vq_window_state **state, const struct vq_gpt *gpt,
                           const struct vq_window_params *p, int32_t token, uint32_t stream, int gw, int gh,
                           int32_t *tokens, struct vqgan_sample_stats *stats)
{
    const struct window_cond c = { NULL, token, stream };
    vq_scratch_begin();
    int r = window_sample(state, gpt, p, &c, gw, gh, tokens, stats);
    vq_scratch_end();
    return r;
}

/* Completion's inputs: every given token of a kept cell inside the vocabulary. */
static int check_given(const struct vq_gpt *gpt, const struct vq_window_params *p, int gw, int gh)
{
    if (!p->mask) return 0;
    if (!p->given)
        return vq_error(VQGAN_ERR_INVALID, "completion: a cell mask without given tokens");
    for (int i = 0; i < gh; i++)
        for (int j = 0; j < gw; j++) {
            const size_t k = (size_t)i * gw + j;
            if (!p->mask[k] && (p->given[k] < 0 || p->given[k] >= gpt->vocab))
                return vq_error(VQGAN_ERR_INVALID, "completion: kept token %d at grid (%d, %d) is outside the "
                                "vocabulary 0..%d", p->given[k], j, i, gpt->vocab - 1);
        }
    return 0;
}

static int window_sample(struct vq_window_state **state, const struct vq_gpt *gpt,
                         const struct vq_window_params *p, const struct window_cond *c, int gw, int gh,
                         int32_t *tokens, struct vqgan_sample_stats *stats)
{
    const double t0 = omp_get_wtime();
    int64_t sampled = 0, reused = 0, kept = 0;
    const int32_t *cond = c->grid;
    int r;

    fill_stats(stats, 0, 0, 0, 0, t0);
    if (!state || !gpt || !p || !tokens)
        return vq_error(VQGAN_ERR_INVALID, "conditional sampling: NULL argument");
    if ((r = vq_gpt_check(gpt))) return r;
    if ((r = check_grid(gw, gh))) return r;
    if ((r = check_given(gpt, p, gw, gh))) return r;
    if (p->temporal < VQGAN_TEMPORAL_OFF || p->temporal > VQGAN_TEMPORAL_FOLLOW)
        return vq_error(VQGAN_ERR_INVALID, "temporal = %d is not off (0), reuse (1) or follow (2)", p->temporal);
    if (p->fast_step < 0 || p->fast_step > VQGAN_MAX_FAST_STEP)
        return vq_error(VQGAN_ERR_INVALID, "fast_step = %d is outside 0..%d (0 or 1: exact)", p->fast_step,
                        VQGAN_MAX_FAST_STEP);
    const int w = cond ? vq_window_side(gpt->block) : vq_window_side_token(gpt->block);
    if (!w)
        return vq_error(VQGAN_ERR_UNSUPPORTED, "transformer block size %d is not %s: no sliding window",
                        gpt->block, cond ? "2*w*w" : "1 + w*w");
    const int np = cond ? w * w : 1;
    /* fast mode: a placement predicts up to step rows and columns, at offsets
     * up to w/2 + step - 1, which must stay inside the window */
    int step = p->fast_step > 1 ? p->fast_step : 1;
    if (step > w - w / 2) step = w - w / 2;
    if (gpt->n_unmasked > np)
        return vq_error(VQGAN_ERR_UNSUPPORTED, "n_unmasked %d reaches past the %d condition tokens of the window",
                        gpt->n_unmasked, np);
    if (!cond && (c->token < 0 || c->token >= gpt->vocab))
        return vq_error(VQGAN_ERR_INVALID, "condition token %d is outside the vocabulary 0..%d", c->token,
                        gpt->vocab - 1);
    for (int i = 0; cond && i < gh; i++)
        for (int j = 0; j < gw; j++) {
            const int32_t t = cond[(size_t)i * gw + j];
            if (t < 0 || t >= gpt->vocab)
                return vq_error(VQGAN_ERR_INVALID, "condition token %d at grid (%d, %d) is outside the vocabulary 0..%d",
                                t, j, i, gpt->vocab - 1);
        }

    if (!*state && !(*state = calloc(1, sizeof(**state))))
        return vq_error(VQGAN_ERR_NOMEM, "sampler state: out of memory");
    struct vq_window_state *st = *state;
    const int mode = p->temporal;
    /* what the previous call left is usable only for the same grid and model */
    if (st->table && (!mode || !st->t_grid || st->t_gw != gw || st->t_gh != gh || st->t_gpt != gpt ||
                      st->t_block != gpt->block || st->t_vocab != gpt->vocab || st->t_unmasked != gpt->n_unmasked ||
                      st->t_step != step || st->t_np != np))
        temporal_reset(st);
    if (!mode) temporal_reset(st);
    st->gpt = gpt;
    st->exec = p->exec;
    st->dry_run = p->dry_run;
    st->trace = p->trace;
    st->trace_opaque = p->trace_opaque;
    st->temporal = mode;
    st->gumbel = mode == VQGAN_TEMPORAL_FOLLOW || p->gumbel;
    st->w = w;
    st->np = np;
    st->stream = c->stream;
    st->step = step;
    st->forced = p->forced;
    st->forced_gw = gw;
    st->on_logits = p->on_logits;
    st->on_logits_opaque = p->on_logits_opaque;
    st->Hp = gh > w ? gh : w;           /* grids smaller than the window: pad */
    st->Wp = gw > w ? gw : w;
    st->Hs = gh;
    st->n_c0 = st->Wp - w + 1;
    st->cap_bytes = p->cache_bytes ? p->cache_bytes : vq_default_cache_bytes();
    st->fed = st->evictions = st->shared = 0;
    st->share = !p->no_share && vq_gpt_rows_independent(p->exec, gpt);
    if ((r = buffers(st, gpt, (size_t)st->Hp * st->Wp))) return r;
    vq_sampler_free(&st->sampler);
    if ((r = vq_sampler_init(&st->sampler, &p->sampling, gpt->vocab))) return r;
    if (!st->table) {
        st->table = calloc(table_size(st), sizeof(*st->table));
        if (!st->table) {
            r = vq_error(VQGAN_ERR_NOMEM, "window cache table: out of memory");
            goto end;
        }
        st->newest = st->oldest = NULL;
        st->n_kept = 0;
        st->bytes = 0;
        st->t_prev = 0;
        st->t_grid = mode != 0;
        st->t_gw = gw; st->t_gh = gh; st->t_gpt = gpt;
        st->t_block = gpt->block; st->t_vocab = gpt->vocab; st->t_unmasked = gpt->n_unmasked;
        st->t_step = step;
        st->t_np = np;
    }
    if (mode) {
        /* a call that stopped half-way leaves placements in use: keep them */
        while (st->newest) {
            struct placement *P = st->newest;
            lru_unlink(st, P);
            P->kept = 1;
            st->n_kept++;
            P->next_use = (st->frame << 32) + first_visit(st, P);
        }
        make_room(st, 0);               /* the cap may have shrunk */
    }

    /* the condition, padded by repeating its last row and column (a token
     * fills the grid); the image grid starts as a copy (those cells are never
     * read before being sampled), with the kept cells' given tokens, padded
     * alike */
    for (int i = 0; i < st->Hp; i++)
        for (int j = 0; j < st->Wp; j++) {
            const size_t k = (size_t)i * st->Wp + j;
            const size_t sk = (size_t)(i < gh ? i : gh - 1) * gw + (j < gw ? j : gw - 1);
            st->cond[k] = cond ? cond[sk] : c->token;
            st->keep[k] = p->mask && !p->mask[sk];
            st->img[k] = st->keep[k] ? p->given[sk] : st->cond[k];
        }

    /* temporal: the shift against the previous frame (follow), the key origin,
     * and whether the previous frame's tokens were drawn alike */
    int dy = 0, dx = 0;
    int32_t oi = p->origin_i, oj = p->origin_j;
    int reuse = 0;
    if (mode && st->t_prev) {
        if (mode == VQGAN_TEMPORAL_FOLLOW) {
            int32_t *a = malloc(sizeof(int32_t) * (size_t)gw * gh * 2);
            if (!a) {
                r = vq_error(VQGAN_ERR_NOMEM, "shift detection: out of memory");
                goto end;
            }
            for (int i = 0; i < gh; i++) {
                memcpy(a + (size_t)i * gw, st->cond + (size_t)i * st->Wp, sizeof(int32_t) * gw);
                memcpy(a + (size_t)(gh + i) * gw, st->prev_cond + (size_t)i * st->Wp, sizeof(int32_t) * gw);
            }
            vq_detect_shift(a, a + (size_t)gw * gh, gw, gh, w / 2, &dy, &dx);
            free(a);
            if (st->t_mode == VQGAN_TEMPORAL_FOLLOW) {
                oi = st->t_oi + dy;
                oj = st->t_oj + dx;
            }
            if ((dy || dx) && (r = move_placements(st, dy, dx)))
                goto end;
        }
        reuse = st->t_mode == mode && same_sampling(&st->t_sp, &p->sampling) &&
                (mode == VQGAN_TEMPORAL_FOLLOW || (st->t_oi == oi && st->t_oj == oj));
    }
    if (stats) {
        stats->shift_y = dy;
        stats->shift_x = dx;
    }

    const int64_t total = (int64_t)st->Hs * st->Wp;
    for (int i = 0; i < st->Hs; i++) {
        const int r0 = window_start(i, st->Hp, w, st->step);
        int lo, hi;
        visit_range(r0, st->Hp, w, st->step, &lo, &hi);
        const int last_row = i == hi || i == st->Hs - 1;
        for (int j = 0; j < st->Wp; j++) {
            int32_t *t = &st->img[(size_t)i * st->Wp + j];
            if (st->keep[(size_t)i * st->Wp + j]) {
                kept++;
            } else if (reuse && reusable(st, i, j, dy, dx)) {
                *t = st->prev_img[(size_t)(i + dy) * st->Wp + j + dx];
                reused++;
            } else {
                if ((r = sample_position(st, i, j, oi + i, oj + j, t)))
                    goto end;
                sampled++;
            }
            const int c0 = window_start(j, st->Wp, w, st->step);
            if (last_row) {
                visit_range(c0, st->Wp, w, st->step, &lo, &hi);
                if (j == hi) placement_done(st, r0, c0);
            }
            if (p->progress && p->progress(p->progress_opaque, sampled + reused + kept, total)) {
                r = vq_error(VQGAN_ERR_CANCELLED, "sampling cancelled after %lld of %lld positions",
                             (long long)(sampled + reused + kept), (long long)total);
                goto end;
            }
        }
    }
    for (int i = 0; i < gh; i++)
        memcpy(tokens + (size_t)i * gw, st->img + (size_t)i * st->Wp, sizeof(int32_t) * gw);
    if (mode) {
        const size_t n = (size_t)st->Hp * st->Wp;
        memcpy(st->prev_cond, st->cond, sizeof(int32_t) * n);
        memcpy(st->prev_img, st->img, sizeof(int32_t) * n);
        memcpy(st->prev_keep, st->keep, n);
        st->t_prev = 1;
        st->t_mode = mode;
        st->t_sp = p->sampling;
        st->t_oi = oi;
        st->t_oj = oj;
    }
    r = 0;
end:
    if (stats) {
        const int sy = stats->shift_y, sx = stats->shift_x;
        fill_stats(stats, sampled, reused, st->fed, st->evictions, t0);
        stats->positions_shared = st->shared;
        stats->positions_kept = kept;
        stats->shift_y = sy;
        stats->shift_x = sx;
    }
    st->frame++;
    if (!mode) drop_placements(st);
    placement_free(st->donor);
    st->donor = NULL;
    vq_sampler_free(&st->sampler);
    return r;
}

/* ---- class-conditional / unconditional -------------------------------------- */

int vq_sequence_sample(const struct vq_gpt *gpt, const struct vq_window_params *p,
                       int32_t first_token, uint32_t stream, int gw, int gh,
                       int32_t *tokens, struct vqgan_sample_stats *stats)
{
    const double t0 = omp_get_wtime();
    struct vq_kv_cache cache;
    struct vq_sampler smp;
    float *logits = NULL;
    int64_t done = 0, fed = 0, kept = 0;
    int r;

    memset(&cache, 0, sizeof(cache));
    memset(&smp, 0, sizeof(smp));
    fill_stats(stats, 0, 0, 0, 0, t0);
    if (!gpt || !p || !tokens)
        return vq_error(VQGAN_ERR_INVALID, "sampling: NULL argument");
    if ((r = vq_gpt_check(gpt))) return r;
    if ((r = check_grid(gw, gh))) return r;
    const int n = gw * gh;
    if (n > gpt->block)
        return vq_error(VQGAN_ERR_LIMIT, "grid %dx%d holds %d tokens; the transformer's block %d predicts at most %d "
                        "(the condition token and all but the last token fed)", gw, gh, n, gpt->block, gpt->block);
    if (gpt->n_unmasked > 1)
        return vq_error(VQGAN_ERR_UNSUPPORTED, "n_unmasked %d is more than the one condition token", gpt->n_unmasked);
    if (first_token < 0 || first_token >= gpt->vocab)
        return vq_error(VQGAN_ERR_INVALID, "condition token %d is outside the vocabulary 0..%d",
                        first_token, gpt->vocab - 1);
    if ((r = check_given(gpt, p, gw, gh))) return r;
    if ((r = vq_sampler_init(&smp, &p->sampling, gpt->vocab))) return r;
    if (!p->dry_run && (r = vq_kv_cache_init(&cache, gpt, n))) goto end;
    if (!(logits = malloc(sizeof(float) * (size_t)gpt->vocab))) {
        r = vq_error(VQGAN_ERR_NOMEM, "sampling: out of memory");
        goto end;
    }

    /* [c], then each sampled token in turn; the logits of the last position fed
     * predict the next cell */
    int32_t in = first_token;
    for (int k = 0; k < n; k++) {
        const struct vq_draw_key key = { stream, k / gw, k % gw };
        const int keep = p->mask && !p->mask[k];
        fed++;
        if (p->trace)
            p->trace(p->trace_opaque, 0, 0, k, 1);
        if (p->dry_run) {
            tokens[k] = 0;
        } else if (keep) {
            /* a kept cell's token is fed after it, its logits are not needed */
            if ((r = vq_gpt_forward(p->exec, gpt, &cache, &in, 1, 1, NULL))) goto end;
        } else {
            if ((r = vq_gpt_forward(p->exec, gpt, &cache, &in, 1, 0, logits))) goto end;
            tokens[k] = vq_sample_token(&smp, logits, key);
        }
        if (keep) {
            tokens[k] = p->given[k];
            kept++;
        }
        in = tokens[k];
        done++;
        if (p->progress && p->progress(p->progress_opaque, done, n)) {
            r = vq_error(VQGAN_ERR_CANCELLED, "sampling cancelled after %lld of %d positions", (long long)done, n);
            goto end;
        }
    }
    r = 0;
end:
    fill_stats(stats, done - kept, 0, fed, 0, t0);
    if (stats) stats->positions_kept = kept;
    free(logits);
    vq_kv_cache_free(&cache);
    vq_sampler_free(&smp);
    return r;
}
