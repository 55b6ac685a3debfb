/* The sliding-window sampler (docs/sampling.md): one call samples a grid
 * cell by cell in raster order, each cell from the window placement the
 * schedule gives it (grid.c), through that placement's KV cache
 * (placements.c, fed by prefix.c), reusing the previous frame's tokens in
 * temporal modes (temporal.c). window_sample below reads as its steps:
 * check the call, set up the state, pad the grids, compare with the previous
 * frame, walk the grid, keep the frame. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "memlimit.h"
#include "ops.h"
#include "placements.h"
#include "prefix.h"
#include "scratch.h"
#include "temporal.h"
#include "window.h"
#include "window_test.h"

struct vq_window_state {
    struct vq_placements pc;         /* the placement caches, this call's grid  */
    struct vq_prev_frame prev;       /* temporal: the previous frame            */
    /* this call */
    int temporal;                    /* its mode                                */
    int gumbel;                      /* tokens by the Gumbel-max rule (follow)  */
    uint32_t stream;                 /* its draw stream                         */
    int gw;                          /* its grid's width (forced tokens)        */
    struct vq_sampler sampler;
    const struct vq_window_hooks *hooks;
    /* buffers, kept between calls */
    int32_t *cond, *img;             /* padded grids [Hp][Wp]; a non-spatial
                                        condition fills cond with its token     */
    uint8_t *keep;                   /* [Hp][Wp]: 1 = kept (completion)         */
    size_t grid_cap;
    float *logits;                   /* [vocab]                                 */
    int logits_cap;
    float *batch;                    /* [cells][vocab]: a batch's logits        */
    size_t batch_cap;
};

/* The condition of a call: a gh x gw grid of tokens (spatial), or one token
 * (class / start token) with the draw stream it keys. */
struct window_cond {
    const int32_t *grid;
    int32_t token;
    uint32_t stream;
};

/* The window of a call: side w, np condition positions, schedule step. */
struct window_shape {
    int w, np, step;
};

static const struct vq_window_hooks no_hooks;

/* Forgets the previous frame and its caches. */
static void temporal_reset(struct vq_window_state *st)
{
    vq_placements_clear(&st->pc);
    st->prev.grid = 0;
    st->prev.have = 0;
}

void vq_window_state_free(struct vq_window_state *st)
{
    if (!st) return;
    temporal_reset(st);
    vq_sampler_free(&st->sampler);
    vq_prev_free(&st->prev);
    free(st->cond);
    free(st->img);
    free(st->keep);
    free(st->logits);
    free(st->batch);
    free(st);
}

void vq_window_origin(const struct vq_window_state *st, int32_t *oi, int32_t *oj)
{
    *oi = st && st->prev.have ? st->prev.oi : 0;
    *oj = st && st->prev.have ? st->prev.oj : 0;
}

int vq_check_given(const struct vq_gpt *gpt, const struct vq_window_params *p, int gw, int gh)
{
    if (!p->mask) return 0;
    if (!p->given)
        return vq_error(VQGAN_ERR_INVALID, "completion: a cell mask without given tokens");
    return vq_check_tokens("completion: kept token", "vocabulary", p->given, p->mask, gw, gh, gpt->vocab);
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
    size_t gc = st->grid_cap, lc = (size_t)st->logits_cap;
    int r;
    if (grid > gc) {
        size_t c2 = gc, c3 = gc;
        if ((r = grow((void **)&st->cond, &gc, grid, sizeof(int32_t)))) return r;
        if ((r = grow((void **)&st->img, &c2, grid, sizeof(int32_t)))) return r;
        if ((r = grow((void **)&st->keep, &c3, grid, 1))) return r;
        st->grid_cap = grid;
    }
    if (st->temporal && (r = vq_prev_reserve(&st->prev, grid))) return r;
    if ((r = grow((void **)&st->logits, &lc, (size_t)gpt->vocab, sizeof(float)))) return r;
    st->logits_cap = (int)lc;
    st->pc.cond = st->cond;
    st->pc.img = st->img;
    return 0;
}

/* ---- the steps of a call -------------------------------------------------------- */

/* 1. The call's arguments against the transformer; the window it slides. */
static int check_call(const struct vq_gpt *gpt, const struct vq_window_params *p, const struct window_cond *c,
                      int gw, int gh, struct window_shape *ws)
{
    const int32_t *cond = c->grid;
    int r;
    if ((r = vq_gpt_check(gpt))) return r;
    if ((r = vq_check_grid("token grid", gw, gh))) return r;
    if ((r = vq_check_given(gpt, p, gw, gh))) return r;
    if (p->temporal < VQGAN_TEMPORAL_OFF || p->temporal > VQGAN_TEMPORAL_FOLLOW)
        return vq_error(VQGAN_ERR_INVALID, "temporal = %d is not off (0), reuse (1) or follow (2)", p->temporal);
    if (p->fast_step < 0 || p->fast_step > VQGAN_MAX_FAST_STEP)
        return vq_error(VQGAN_ERR_INVALID, "fast_step = %d is outside 0..%d (0 or 1: exact)", p->fast_step,
                        VQGAN_MAX_FAST_STEP);
    const int w = cond ? vq_window_side(gpt->block) : vq_window_side_token(gpt->block);
    if (!w)
        return vq_error(VQGAN_ERR_UNSUPPORTED, "transformer block size %d is not %s: no sliding window",
                        gpt->block, cond ? "2*w*w" : "1 + w*w");
    ws->w = w;
    ws->np = cond ? w * w : 1;
    /* fast mode: a placement predicts up to step rows and columns, at offsets
     * up to w/2 + step - 1, which must stay inside the window */
    ws->step = p->fast_step > 1 ? p->fast_step : 1;
    if (ws->step > w - w / 2) ws->step = w - w / 2;
    if (gpt->n_unmasked > ws->np)
        return vq_error(VQGAN_ERR_UNSUPPORTED, "n_unmasked %d reaches past the %d condition tokens of the window",
                        gpt->n_unmasked, ws->np);
    if (!cond && (c->token < 0 || c->token >= gpt->vocab))
        return vq_error(VQGAN_ERR_INVALID, "condition token %d is outside the vocabulary 0..%d", c->token,
                        gpt->vocab - 1);
    if (cond && (r = vq_check_tokens("condition token", "vocabulary", cond, NULL, gw, gh, gpt->vocab)))
        return r;
    return 0;
}

/* 2. The state for this call: what the previous call left is kept only for
 * the same grid and model in a temporal mode; the call's configuration, the
 * buffers, the sampler and the placement table. */
static int begin_call(struct vq_window_state *st, const struct vq_gpt *gpt, const struct vq_window_params *p,
                      const struct vq_window_hooks *h, const struct window_cond *c, int gw, int gh,
                      const struct window_shape *ws)
{
    struct vq_placements *pc = &st->pc;
    const int mode = p->temporal;
    int r;
    if (pc->table && (!mode || !vq_prev_same_grid(&st->prev, gpt, gw, gh, ws->step, ws->np)))
        temporal_reset(st);
    if (!mode) temporal_reset(st);
    st->temporal = mode;
    st->gumbel = mode == VQGAN_TEMPORAL_FOLLOW || p->gumbel;
    st->stream = c->stream;
    st->gw = gw;
    st->hooks = h;
    pc->gpt = gpt;
    pc->dry_run = h->dry_run;
    pc->trace = h->trace;
    pc->trace_opaque = h->trace_opaque;
    pc->w = ws->w;
    pc->np = ws->np;
    pc->step = ws->step;
    pc->Hp = gh > ws->w ? gh : ws->w;   /* grids smaller than the window: pad */
    pc->Wp = gw > ws->w ? gw : ws->w;
    pc->Hs = gh;
    pc->cap_bytes = p->cache_bytes ? p->cache_bytes : vq_default_cache_bytes();
    pc->fed = pc->evictions = pc->shared = 0;
    pc->exec = p->exec;
    pc->share = !h->no_share && vq_gpt_rows_independent(p->exec, gpt);
    if ((r = buffers(st, gpt, (size_t)pc->Hp * pc->Wp))) return r;
    vq_sampler_free(&st->sampler);
    if ((r = vq_sampler_init(&st->sampler, &p->sampling, gpt->vocab))) return r;
    if (!pc->table) {
        if ((r = vq_placements_begin(pc))) return r;
        vq_prev_set_grid(&st->prev, mode, gpt, gw, gh, ws->step, ws->np);
    }
    if (mode) vq_placements_keep_all(pc);
    return 0;
}

/* 3. The condition, padded by repeating its last row and column (a token
 * fills the grid); the image grid starts as a copy (those cells are never
 * read before being sampled), with the kept cells' given tokens, padded
 * alike. */
static void pad_grids(struct vq_window_state *st, const struct vq_window_params *p, const struct window_cond *c,
                      int gw, int gh)
{
    const int Hp = st->pc.Hp, Wp = st->pc.Wp;
    for (int i = 0; i < Hp; i++)
        for (int j = 0; j < Wp; j++) {
            const size_t k = (size_t)i * Wp + j;
            const size_t sk = (size_t)(i < gh ? i : gh - 1) * gw + (j < gw ? j : gw - 1);
            st->cond[k] = c->grid ? c->grid[sk] : c->token;
            st->keep[k] = p->mask && !p->mask[sk];
            st->img[k] = st->keep[k] ? p->given[sk] : st->cond[k];
        }
}

/* What a frame takes from the previous one: the content's shift (follow), the
 * key origin, and whether the previous tokens were drawn alike (reuse). */
struct frame_link {
    int dy, dx;
    int32_t oi, oj;
    int reuse;
};

/* 4. The frame against the previous one (temporal modes): follow detects the
 * shift of the condition, moves the placements with it and carries the key
 * origin on. */
static int link_frame(struct vq_window_state *st, const struct vq_window_params *p, int gw, int gh,
                      struct frame_link *L)
{
    const struct vq_prev_frame *f = &st->prev;
    const int mode = st->temporal, Wp = st->pc.Wp;
    int r;
    L->dy = L->dx = 0;
    L->oi = p->origin_i;
    L->oj = p->origin_j;
    L->reuse = 0;
    if (!mode || !f->have) return 0;
    if (mode == VQGAN_TEMPORAL_FOLLOW) {
        int32_t *a = malloc(sizeof(int32_t) * (size_t)gw * gh * 2);
        if (!a) return vq_error(VQGAN_ERR_NOMEM, "shift detection: out of memory");
        for (int i = 0; i < gh; i++) {
            memcpy(a + (size_t)i * gw, st->cond + (size_t)i * Wp, sizeof(int32_t) * gw);
            memcpy(a + (size_t)(gh + i) * gw, f->cond + (size_t)i * Wp, sizeof(int32_t) * gw);
        }
        vq_detect_shift(a, a + (size_t)gw * gh, gw, gh, st->pc.w / 2, &L->dy, &L->dx);
        free(a);
        if (f->mode == VQGAN_TEMPORAL_FOLLOW) {
            L->oi = f->oi + L->dy;
            L->oj = f->oj + L->dx;
        }
        if ((L->dy || L->dx) && (r = vq_placements_move(&st->pc, L->dy, L->dx)))
            return r;
    }
    const struct vq_sampler_params *a = &f->sp, *b = &p->sampling;
    const int same_sampling = a->temperature == b->temperature && a->top_k == b->top_k && a->top_p == b->top_p &&
                              a->seed == b->seed;
    L->reuse = f->mode == mode && same_sampling &&
               (mode == VQGAN_TEMPORAL_FOLLOW || (f->oi == L->oi && f->oj == L->oj));
    return 0;
}

/* The token of cell (i, j) from its logits, drawn with key (ki, kj): a
 * function of the seed, the key and the window's content before (i, j). */
static void draw_cell(struct vq_window_state *st, int i, int j, int32_t ki, int32_t kj, const float *logits,
                      int32_t *token)
{
    const struct vq_window_hooks *h = st->hooks;
    if (h->dry_run) {
        *token = 0;
        return;
    }
    if (h->on_logits) h->on_logits(h->on_logits_opaque, i, j, logits, st->pc.gpt->vocab);
    if (h->forced && j < st->gw) {
        *token = h->forced[(size_t)i * st->gw + j];
    } else {
        const struct vq_draw_key key = { st->stream, ki, kj };
        *token = st->gumbel ? vq_gumbel_token(&st->sampler, logits, key) : vq_sample_token(&st->sampler, logits, key);
    }
}

/* The token of grid cell (i, j) through its placement. */
static int sample_cell(struct vq_window_state *st, int i, int j, int32_t ki, int32_t kj, int32_t *token)
{
    struct vq_placements *pc = &st->pc;
    const int r0 = vq_window_start(i, pc->Hp, pc->w, pc->step);
    const int c0 = vq_window_start(j, pc->Wp, pc->w, pc->step);
    struct vq_placement *P = NULL;
    int r;
    pc->cur_i = i;
    pc->cur_j = j;
    if ((r = vq_placements_get(pc, r0, c0, &P))) return r;
    if ((r = vq_prefix_bring(pc, P, i, j, st->temporal, st->logits))) return r;
    draw_cell(st, i, j, ki, kj, st->logits, token);
    return 0;
}

/* The cells of a call by how they got their token. */
struct walk_counts {
    int64_t sampled, reused, kept;
};

/* After cell (i, j) has its token: its placement is done after its last
 * visit; progress is told. */
static int cell_done(struct vq_window_state *st, const struct vq_window_params *p, const struct walk_counts *n,
                     int i, int j)
{
    struct vq_placements *pc = &st->pc;
    const int w = pc->w, Wp = pc->Wp, Hp = pc->Hp, step = pc->step;
    const int r0 = vq_window_start(i, Hp, w, step), c0 = vq_window_start(j, Wp, w, step);
    int lo, hi;
    vq_window_visits(r0, Hp, w, step, &lo, &hi);
    if (i == hi || i == pc->Hs - 1) {
        vq_window_visits(c0, Wp, w, step, &lo, &hi);
        if (j == hi) vq_placements_done(pc, r0, c0, st->temporal);
    }
    const int64_t done = n->sampled + n->reused + n->kept, total = (int64_t)pc->Hs * Wp;
    if (p->progress && p->progress(p->progress_opaque, done, total))
        return vq_error(VQGAN_ERR_CANCELLED, "sampling cancelled after %lld of %lld positions", (long long)done,
                        (long long)total);
    return 0;
}

/* Whether cell (i, j) takes its token without the transformer: kept, or
 * reused from the previous frame (then set). */
static int cell_free(struct vq_window_state *st, const struct frame_link *L, struct walk_counts *n, int i, int j)
{
    const int Wp = st->pc.Wp;
    if (st->keep[(size_t)i * Wp + j]) {
        n->kept++;
        return 1;
    }
    if (L->reuse && vq_prev_reusable(&st->prev, &st->pc, i, j, L->dy, L->dx)) {
        st->img[(size_t)i * Wp + j] = st->prev.img[(size_t)(i + L->dy) * Wp + j + L->dx];
        n->reused++;
        return 1;
    }
    return 0;
}

/* One cell, alone: kept, reused or sampled, then done. */
static int visit_cell(struct vq_window_state *st, const struct vq_window_params *p, const struct frame_link *L,
                      struct walk_counts *n, int i, int j)
{
    int r;
    if (!cell_free(st, L, n, i, j)) {
        if ((r = sample_cell(st, i, j, L->oi + i, L->oj + j, &st->img[(size_t)i * st->pc.Wp + j])))
            return r;
        n->sampled++;
    }
    return cell_done(st, p, n, i, j);
}

/* 5. The grid in raster order: a kept cell stays, a reusable one takes the
 * previous frame's token, the others are sampled; a placement is done after
 * its last visit. */
static int walk_raster(struct vq_window_state *st, const struct vq_window_params *p, const struct frame_link *L,
                       struct walk_counts *n)
{
    int r;
    for (int i = 0; i < st->pc.Hs; i++)
        for (int j = 0; j < st->pc.Wp; j++)
            if ((r = visit_cell(st, p, L, n, i, j)))
                return r;
    return 0;
}

/* 5'. The same cells in another order, where the transformer's products can
 * be shared (vq_gpt_batchable): a cell's token depends only on its
 * placement's window before it, so several rows advance together, each
 * behind the one above by the window, and the cells whose placement needs
 * one small feed (a single position at the left and right edges, a row of
 * the window in the top and bottom bands) are fed together, up to
 * WAVE_ROWS rows at once. The tokens are those of the raster order: every
 * draw is keyed to its cell, every sequence of a batch gets the bits of its
 * own forward. A cell is taken in this order of preference: several small
 * feeds of different rows together; else, where products' rows are
 * independent (pc->share), several large feeds of different rows together
 * (each one call of VQ_ROWS_INDEPENDENT_FROM positions or more: the middle
 * of a large frame, one new placement a cell); else a lower row's small feed
 * when the first row's large feed could go with others (that row then
 * reaches the large feeds); else the first row's large feed; else one small
 * feed. */
#define WAVE_ROWS 6
#define WAVE_MAX_POSITIONS 96

/* Cell (i, j)'s window before it is all sampled: every row above it in the
 * window is through the window's last column. */
static int cell_ready(const struct vq_placements *pc, const int *next, int i, int j)
{
    const int r0 = vq_window_start(i, pc->Hp, pc->w, pc->step);
    const int end = vq_window_start(j, pc->Wp, pc->w, pc->step) + pc->w;
    for (int r = r0; r < i; r++)
        if (next[r] < end) return 0;
    return 1;
}

static int batch_logits(struct vq_window_state *st, int n)
{
    const size_t need = (size_t)n * st->pc.gpt->vocab;
    if (need <= st->batch_cap) return 0;
    float *b = realloc(st->batch, sizeof(float) * need);
    if (!b) return vq_error(VQGAN_ERR_NOMEM, "sampler buffers: out of memory");
    st->batch = b;
    st->batch_cap = need;
    return 0;
}

/* The feeds of one round (small ones, or large ones), sampled together. */
static int run_batch(struct vq_window_state *st, const struct vq_window_params *p, const struct frame_link *L,
                     struct walk_counts *n, struct vq_placement *const *P, const int *bi, const int *bj, int nb)
{
    struct vq_placements *pc = &st->pc;
    float *lg[VQ_GPT_MAX_BATCH];
    int r;
    if ((r = batch_logits(st, nb))) return r;
    for (int k = 0; k < nb; k++) {
        struct vq_placement *Q = NULL;
        lg[k] = st->batch + (size_t)k * pc->gpt->vocab;
        pc->cur_i = bi[k];
        pc->cur_j = bj[k];
        if ((r = vq_placements_get(pc, P[k]->r0, P[k]->c0, &Q))) return r;   /* cached: only touched */
    }
    if ((r = vq_prefix_bring_batch(pc, P, bi, bj, nb, lg))) return r;
    for (int k = 0; k < nb; k++) {
        draw_cell(st, bi[k], bj[k], L->oi + bi[k], L->oj + bj[k], lg[k], &st->img[(size_t)bi[k] * pc->Wp + bj[k]]);
        n->sampled++;
        if ((r = cell_done(st, p, n, bi[k], bj[k]))) return r;
    }
    return 0;
}

/* Of the ready cells (li[k], lj[k]), each needing a large feed, those whose
 * placements each take one feed of many rows (vq_prefix_large), distinct,
 * into P, bi, bj (*nb of them), in order; the first placement that does not
 * fit under the cap beside those in use ends the list: a batch never evicts
 * a placement in use. */
static int take_large(struct vq_window_state *st, const int *li, const int *lj, int nl, struct vq_placement **P,
                      int *bi, int *bj, int *nb)
{
    struct vq_placements *pc = &st->pc;
    int r;
    *nb = 0;
    for (int k = 0; k < nl; k++) {
        const int i = li[k], j = lj[k];
        const int r0 = vq_window_start(i, pc->Hp, pc->w, pc->step), c0 = vq_window_start(j, pc->Wp, pc->w, pc->step);
        struct vq_placement *Q = NULL;
        if (!vq_placements_fits(pc, r0, c0)) break;
        pc->cur_i = i;
        pc->cur_j = j;
        if ((r = vq_placements_get(pc, r0, c0, &Q))) return r;
        for (int m = 0; m < *nb && Q; m++)
            if (P[m] == Q) Q = NULL;
        if (Q && vq_prefix_large(pc, Q, i, j, st->temporal)) {
            P[*nb] = Q;
            bi[*nb] = i;
            bj[(*nb)++] = j;
        }
    }
    return 0;
}

/* 1 when cell (i, j) surely takes one feed of many rows that can go with
 * others (vq_prefix_large), judged without touching its placement: products
 * whose rows are independent (pc->share), and VQ_ROWS_INDEPENDENT_FROM image
 * positions or more still to feed. */
static int large_feed(const struct vq_placements *pc, int i, int j)
{
    const int r0 = vq_window_start(i, pc->Hp, pc->w, pc->step), c0 = vq_window_start(j, pc->Wp, pc->w, pc->step);
    const struct vq_placement *Q = pc->table[(size_t)r0 * pc->n_c0 + c0];
    const struct vq_placement at = { .r0 = r0, .c0 = c0 };
    const int target = vq_prefix_len(pc, &at, i, j);
    const int len = Q && Q->cache.len > pc->np ? Q->cache.len : pc->np;
    return pc->share && target - len >= VQ_ROWS_INDEPENDENT_FROM;
}

static int walk_wave(struct vq_window_state *st, const struct vq_window_params *p, const struct frame_link *L,
                     struct walk_counts *n)
{
    struct vq_placements *pc = &st->pc;
    const int Hs = pc->Hs, Wp = pc->Wp, w = pc->w, step = pc->step;
    int *next = calloc((size_t)Hs, sizeof(int));
    int first = 0, r = 0;
    if (!next) return vq_error(VQGAN_ERR_NOMEM, "sampler buffers: out of memory");
    while (!r) {
        while (first < Hs && next[first] == Wp) first++;
        if (first == Hs) break;
        struct vq_placement *P[VQ_GPT_MAX_BATCH];
        int bi[VQ_GPT_MAX_BATCH], bj[VQ_GPT_MAX_BATCH], nb = 0, rows = 0, freed = 0;
        int li[WAVE_ROWS], lj[WAVE_ROWS], nl = 0;   /* the cells that need a large feed */
        for (int i = first; i < Hs && i < first + WAVE_ROWS && !freed; i++) {
            const int j = next[i];
            if (j == Wp || !cell_ready(pc, next, i, j)) continue;
            if (cell_free(st, L, n, i, j)) {         /* no transformer: done at once */
                next[i]++;
                r = cell_done(st, p, n, i, j);
                freed = 1;
                break;
            }
            const int r0 = vq_window_start(i, pc->Hp, w, step), c0 = vq_window_start(j, Wp, w, step);
            struct vq_placement *Q = pc->table[(size_t)r0 * pc->n_c0 + c0];
            for (int k = 0; k < nb && Q; k++)
                if (P[k] == Q) Q = NULL;   /* one feed a placement a round */
            const int room = WAVE_MAX_POSITIONS - rows < VQ_SMALL_ROWS ? WAVE_MAX_POSITIONS - rows : VQ_SMALL_ROWS;
            if (Q && !Q->kept && nb < VQ_GPT_MAX_BATCH && room > 0 &&
                vq_prefix_single(pc, Q, i, j, st->temporal, room)) {
                P[nb] = Q;
                bi[nb] = i;
                bj[nb++] = j;
                rows += vq_prefix_len(pc, Q, i, j) - Q->cache.len;
            } else {
                li[nl] = i;
                lj[nl++] = j;
            }
        }
        if (freed) continue;
        if (nb < 2 && nl >= 2 && st->pc.share) {   /* large feeds of different rows together */
            if ((r = take_large(st, li, lj, nl, P, bi, bj, &nb))) break;
            if (nb < 2) nb = 0;
        }
        if (nb >= 2) {
            for (int k = 0; k < nb; k++) next[bi[k]]++;
            r = run_batch(st, p, L, n, P, bi, bj, nb);
        } else {
            /* a lower row's small feed before the first row's large one
             * where large feeds can go together: that row then reaches the
             * large feeds beside the first row's */
            const int lower = nb == 1 && nl && bi[0] > li[0] && large_feed(pc, li[0], lj[0]);
            const int i = nl && !lower ? li[0] : bi[0];
            r = visit_cell(st, p, L, n, i, next[i]++);
        }
    }
    free(next);
    return r;
}

/* 6. The tokens out, and (temporal) the frame kept for the next call. */
static void keep_frame(struct vq_window_state *st, const struct vq_window_params *p, const struct frame_link *L,
                       int gw, int gh, int32_t *tokens)
{
    const int Wp = st->pc.Wp;
    for (int i = 0; i < gh; i++)
        memcpy(tokens + (size_t)i * gw, st->img + (size_t)i * Wp, sizeof(int32_t) * gw);
    if (st->temporal)
        vq_prev_save(&st->prev, st->cond, st->img, st->keep, (size_t)st->pc.Hp * Wp, st->temporal, &p->sampling,
                     L->oi, L->oj);
}

/* Placement caches and the transformer's buffers are reused within the call
 * (scratch.h): a placement dropped after its last visit gives its memory to
 * the next one instead of a fresh mapping faulted in page by page. */
static int window_sample(struct vq_window_state **state, const struct vq_gpt *gpt,
                         const struct vq_window_params *p, const struct vq_window_hooks *h,
                         const struct window_cond *c, int gw, int gh, int32_t *tokens,
                         struct vqgan_sample_stats *stats)
{
    const double t0 = omp_get_wtime();
    struct walk_counts n = { 0, 0, 0 };
    struct frame_link L = { 0, 0, 0, 0, 0 };
    struct window_shape ws = { 0, 0, 0 };
    int r;

    vq_stats_fill(stats, 0, 0, 0, 0, t0);
    if (!h) h = &no_hooks;
    if (!state || !gpt || !p || !tokens)
        return vq_error(VQGAN_ERR_INVALID, "conditional sampling: NULL argument");
    if ((r = check_call(gpt, p, c, gw, gh, &ws))) return r;
    if (!*state && !(*state = calloc(1, sizeof(**state))))
        return vq_error(VQGAN_ERR_NOMEM, "sampler state: out of memory");
    struct vq_window_state *st = *state;

    vq_scratch_begin();
    if (!(r = begin_call(st, gpt, p, h, c, gw, gh, &ws))) {
        pad_grids(st, p, c, gw, gh);
        const int wave = !h->no_batch && vq_gpt_batchable(p->exec, gpt);
        if (!(r = link_frame(st, p, gw, gh, &L)) &&
            !(r = wave ? walk_wave(st, p, &L, &n) : walk_raster(st, p, &L, &n)))
            keep_frame(st, p, &L, gw, gh, tokens);
    }
    if (stats) {
        vq_stats_fill(stats, n.sampled, n.reused, st->pc.fed, st->pc.evictions, t0);
        stats->positions_shared = st->pc.shared;
        stats->positions_kept = n.kept;
        stats->shift_y = L.dy;
        stats->shift_x = L.dx;
    }
    st->pc.frame++;
    if (!st->temporal) vq_placements_clear(&st->pc);
    vq_placements_end(&st->pc);
    vq_sampler_free(&st->sampler);
    st->hooks = &no_hooks;
    vq_scratch_end();
    return r;
}

int vq_window_sample_hooked(struct vq_window_state **state, const struct vq_gpt *gpt,
                            const struct vq_window_params *p, const struct vq_window_hooks *h,
                            const int32_t *cond, int gw, int gh, int32_t *tokens, struct vqgan_sample_stats *stats)
{
    const struct window_cond c = { cond, 0, VQ_STREAM_WINDOW };
    if (!cond) {
        vq_stats_fill(stats, 0, 0, 0, 0, omp_get_wtime());
        return vq_error(VQGAN_ERR_INVALID, "conditional sampling: NULL argument");
    }
    return window_sample(state, gpt, p, h, &c, gw, gh, tokens, stats);
}

int vq_window_sample(struct vq_window_state **state, const struct vq_gpt *gpt,
                     const struct vq_window_params *p, const int32_t *cond, int gw, int gh,
                     int32_t *tokens, struct vqgan_sample_stats *stats)
{
    return vq_window_sample_hooked(state, gpt, p, NULL, cond, gw, gh, tokens, stats);
}

int vq_window_sample_token_hooked(struct vq_window_state **state, const struct vq_gpt *gpt,
                                  const struct vq_window_params *p, const struct vq_window_hooks *h, int32_t token,
                                  uint32_t stream, int gw, int gh, int32_t *tokens, struct vqgan_sample_stats *stats)
{
    const struct window_cond c = { NULL, token, stream };
    return window_sample(state, gpt, p, h, &c, gw, gh, tokens, stats);
}

int vq_window_sample_token(struct vq_window_state **state, const struct vq_gpt *gpt,
                           const struct vq_window_params *p, int32_t token, uint32_t stream, int gw, int gh,
                           int32_t *tokens, struct vqgan_sample_stats *stats)
{
    return vq_window_sample_token_hooked(state, gpt, p, NULL, token, stream, gw, gh, tokens, stats);
}
