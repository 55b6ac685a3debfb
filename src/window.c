/* Sampling token grids: the reference's sliding window with per-placement KV
 * caches, and the cached sequence of class-conditional / unconditional models.
 * docs/sampling.md describes the schedule, the caches and the cap. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "session.h"
#include "window.h"

/* ---- schedule ---------------------------------------------------------------- */

int vq_window_side(int block)
{
    int w = 1;
    while (2 * (w + 1) * (w + 1) <= block)
        w++;
    return 2 * w * w == block ? w : 0;
}

/* First row (column) of the window that predicts row i of an n-long grid. */
static int window_start(int i, int n, int w)
{
    int s = i - w / 2;
    if (s > n - w) s = n - w;
    if (s < 0) s = 0;
    return s;
}

int vq_window_offset(int i, int n, int w)
{
    return i - window_start(i, n, w);
}

/* Rows (columns) whose window starts at s: a contiguous range [*lo, *hi]. */
static void visit_range(int s, int n, int w, int *lo, int *hi)
{
    *lo = s == 0 ? 0 : s + w / 2;
    *hi = s == n - w ? n - 1 : s + w / 2;
}

/* ---- state ----------------------------------------------------------------------- */

/* The cache of one window placement (top-left corner r0, c0 on the padded
 * grid). Every position it holds was computed from condition tokens and final
 * image tokens only, so it stays valid for the whole frame. */
struct placement {
    struct vq_kv_cache cache;        /* dry run: kv stays NULL, len/cap tracked */
    int r0, c0;
    int row_lo, row_hi, col_lo, col_hi;  /* the grid positions it predicts   */
    size_t bytes;
    struct placement *newer, *older; /* LRU list                               */
};

struct vq_window_state {
    /* per call */
    const struct vq_gpt *gpt;
    int dry_run;
    void (*trace)(void *opaque, int r0, int c0, int len, int n);
    void *trace_opaque;
    int w, Hp, Wp, Hs;               /* window, padded grid, rows sampled       */
    int n_c0;                        /* placements per row: Wp - w + 1          */
    struct placement **table;        /* [(Hp - w + 1) * n_c0], NULL: not cached */
    struct placement *newest, *oldest;
    size_t bytes, cap_bytes;
    int64_t fed, evictions;
    struct vq_sampler sampler;
    /* buffers, kept between calls */
    int32_t *cond, *img;             /* padded grids [Hp][Wp]                   */
    size_t grid_cap;
    int32_t *seq;                    /* [block]                                 */
    float *logits;                   /* [vocab]                                 */
    int seq_cap, logits_cap;
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

static void placement_drop(struct vq_window_state *st, struct placement *P)
{
    lru_unlink(st, P);
    st->table[(size_t)P->r0 * st->n_c0 + P->c0] = NULL;
    st->bytes -= P->bytes;
    vq_kv_cache_free(&P->cache);
    free(P);
}

/* Frees every placement of the call (the buffers stay). */
static void release_call(struct vq_window_state *st)
{
    while (st->newest)
        placement_drop(st, st->newest);
    free(st->table);
    st->table = NULL;
    vq_sampler_free(&st->sampler);
}

void vq_window_state_free(struct vq_window_state *st)
{
    if (!st) return;
    release_call(st);
    free(st->cond);
    free(st->img);
    free(st->seq);
    free(st->logits);
    free(st);
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
        size_t c2 = gc;
        if ((r = grow((void **)&st->cond, &gc, grid, sizeof(int32_t)))) return r;
        if ((r = grow((void **)&st->img, &c2, grid, sizeof(int32_t)))) return r;
        st->grid_cap = grid;
    }
    if ((r = grow((void **)&st->seq, &sc, (size_t)gpt->block, sizeof(int32_t)))) return r;
    st->seq_cap = (int)sc;
    if ((r = grow((void **)&st->logits, &lc, (size_t)gpt->vocab, sizeof(float)))) return r;
    st->logits_cap = (int)lc;
    return 0;
}

/* ---- placements ------------------------------------------------------------ */

/* Positions fed to placement P to predict grid cell (i, j): the w·w condition
 * tokens, then the window's image tokens before (i, j). */
static int prefix_len(const struct vq_window_state *st, const struct placement *P, int i, int j)
{
    return st->w * st->w + (i - P->r0) * st->w + (j - P->c0);
}

/* Evicts the least recently used placements until `bytes` more fit under the
 * cap (or none is left: the placement in use is always allowed). */
static void make_room(struct vq_window_state *st, size_t bytes)
{
    while (st->oldest && st->bytes + bytes > st->cap_bytes) {
        placement_drop(st, st->oldest);
        st->evictions++;
    }
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
        visit_range(r0, st->Hp, st->w, &P->row_lo, &P->row_hi);
        visit_range(c0, st->Wp, st->w, &P->col_lo, &P->col_hi);
        if (P->row_hi > st->Hs - 1) P->row_hi = st->Hs - 1;  /* rows past the crop are not sampled */
        const int cap = prefix_len(st, P, P->row_hi, P->col_hi);
        P->bytes = vq_kv_cache_bytes(st->gpt, cap);
        make_room(st, P->bytes);
        if (st->dry_run) {
            P->cache.cap = cap;
        } else if ((r = vq_kv_cache_init(&P->cache, st->gpt, cap))) {
            free(P);
            return r;
        }
        *slot = P;
        st->bytes += P->bytes;
    }
    lru_touch(st, P);
    *out = P;
    return 0;
}

/* Feeds positions [P->len, end) of placement P's window. */
static int feed(struct vq_window_state *st, struct placement *P, int end, float *logits)
{
    const int w = st->w, ww = w * w, a = P->cache.len, n = end - a;
    st->fed += n;
    if (st->trace)
        st->trace(st->trace_opaque, P->r0, P->c0, a, n);
    if (st->dry_run) {
        P->cache.len = end;
        return 0;
    }
    for (int q = a; q < end; q++) {
        const int32_t *grid = q < ww ? st->cond : st->img;
        const int k = q < ww ? q : q - ww;
        st->seq[q - a] = grid[(size_t)(P->r0 + k / w) * st->Wp + P->c0 + k % w];
    }
    return vq_gpt_forward(st->gpt, &P->cache, st->seq, n, logits ? n - 1 : n, logits);
}

/* Brings placement P up to the prefix that predicts (i, j) and writes that
 * prediction's logits. P is extended in the chunks the schedule's earlier
 * visits used, so a placement recomputed after eviction gets the very same
 * numbers as one that was kept. */
static int extend(struct vq_window_state *st, struct placement *P, int i, int j, float *logits)
{
    const int target = prefix_len(st, P, i, j);
    int r;
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

/* The token of grid cell (i, j): a function of the seed, the cell and the
 * window's content before it only. (Temporal reuse can test that content
 * against the previous frame's here and skip the transformer.) */
static int sample_position(struct vq_window_state *st, int i, int j, int32_t *token)
{
    const int r0 = window_start(i, st->Hp, st->w);
    const int c0 = window_start(j, st->Wp, st->w);
    struct placement *P = NULL;
    int r;
    if ((r = placement_get(st, r0, c0, &P))) return r;
    if ((r = extend(st, P, i, j, st->logits))) return r;
    if (st->dry_run) {
        *token = 0;
    } else {
        const struct vq_draw_key key = { VQ_STREAM_WINDOW, i, j };
        *token = vq_sample_token(&st->sampler, st->logits, key);
    }
    if (i == P->row_hi && j == P->col_hi)   /* its last visit: never needed again */
        placement_drop(st, P);
    return 0;
}

static void fill_stats(struct vqgan_sample_stats *stats, int64_t done, int64_t fed, int64_t ev, double t0)
{
    if (!stats) return;
    memset(stats, 0, sizeof(*stats));
    stats->positions_sampled = done;
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

int vq_window_sample(struct vq_window_state **state, const struct vq_gpt *gpt,
                     const struct vq_window_params *p, const int32_t *cond, int gw, int gh,
                     int32_t *tokens, struct vqgan_sample_stats *stats)
{
    const double t0 = omp_get_wtime();
    int64_t done = 0;
    int r;

    fill_stats(stats, 0, 0, 0, t0);
    if (!state || !gpt || !p || !cond || !tokens)
        return vq_error(VQGAN_ERR_INVALID, "conditional sampling: NULL argument");
    if ((r = vq_gpt_check(gpt))) return r;
    if ((r = check_grid(gw, gh))) return r;
    const int w = vq_window_side(gpt->block);
    if (!w)
        return vq_error(VQGAN_ERR_UNSUPPORTED, "transformer block size %d is not 2*w*w: no sliding window",
                        gpt->block);
    if (gpt->n_unmasked > w * w)
        return vq_error(VQGAN_ERR_UNSUPPORTED, "n_unmasked %d reaches past the %d condition tokens of the window",
                        gpt->n_unmasked, w * w);
    for (int i = 0; i < gh; i++)
        for (int j = 0; j < gw; j++) {
            const int32_t c = cond[(size_t)i * gw + j];
            if (c < 0 || c >= gpt->vocab)
                return vq_error(VQGAN_ERR_INVALID, "condition token %d at grid (%d, %d) is outside the vocabulary 0..%d",
                                c, j, i, gpt->vocab - 1);
        }

    if (!*state && !(*state = calloc(1, sizeof(**state))))
        return vq_error(VQGAN_ERR_NOMEM, "sampler state: out of memory");
    struct vq_window_state *st = *state;
    st->gpt = gpt;
    st->dry_run = p->dry_run;
    st->trace = p->trace;
    st->trace_opaque = p->trace_opaque;
    st->w = w;
    st->Hp = gh > w ? gh : w;           /* grids smaller than the window: pad */
    st->Wp = gw > w ? gw : w;
    st->Hs = gh;
    st->n_c0 = st->Wp - w + 1;
    st->bytes = 0;
    st->cap_bytes = p->cache_bytes ? p->cache_bytes : VQGAN_DEFAULT_CACHE_BYTES;
    st->fed = st->evictions = 0;
    st->newest = st->oldest = NULL;
    if ((r = buffers(st, gpt, (size_t)st->Hp * st->Wp))) return r;
    if ((r = vq_sampler_init(&st->sampler, &p->sampling, gpt->vocab))) return r;
    st->table = calloc((size_t)(st->Hp - w + 1) * st->n_c0, sizeof(*st->table));
    if (!st->table) {
        r = vq_error(VQGAN_ERR_NOMEM, "window cache table: out of memory");
        goto end;
    }

    /* the condition, padded by repeating its last row and column; the image
     * grid starts as a copy (those cells are never read before being sampled) */
    for (int i = 0; i < st->Hp; i++)
        for (int j = 0; j < st->Wp; j++) {
            const int si = i < gh ? i : gh - 1, sj = j < gw ? j : gw - 1;
            st->cond[(size_t)i * st->Wp + j] = cond[(size_t)si * gw + sj];
        }
    memcpy(st->img, st->cond, sizeof(int32_t) * (size_t)st->Hp * st->Wp);

    const int64_t total = (int64_t)st->Hs * st->Wp;
    for (int i = 0; i < st->Hs; i++)
        for (int j = 0; j < st->Wp; j++) {
            if ((r = sample_position(st, i, j, &st->img[(size_t)i * st->Wp + j])))
                goto end;
            done++;
            if (p->progress && p->progress(p->progress_opaque, done, total)) {
                r = vq_error(VQGAN_ERR_CANCELLED, "sampling cancelled after %lld of %lld positions",
                             (long long)done, (long long)total);
                goto end;
            }
        }
    for (int i = 0; i < gh; i++)
        memcpy(tokens + (size_t)i * gw, st->img + (size_t)i * st->Wp, sizeof(int32_t) * gw);
    r = 0;
end:
    fill_stats(stats, done, st->fed, st->evictions, t0);
    release_call(st);
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
    int64_t done = 0, fed = 0;
    int r;

    memset(&cache, 0, sizeof(cache));
    memset(&smp, 0, sizeof(smp));
    fill_stats(stats, 0, 0, 0, t0);
    if (!gpt || !p || !tokens)
        return vq_error(VQGAN_ERR_INVALID, "sampling: NULL argument");
    if ((r = vq_gpt_check(gpt))) return r;
    if ((r = check_grid(gw, gh))) return r;
    const int n = gw * gh;
    if (n > gpt->block - 1)
        return vq_error(VQGAN_ERR_LIMIT, "grid %dx%d holds %d tokens; the transformer's block %d allows at most %d "
                        "after the condition token", gw, gh, n, gpt->block, gpt->block - 1);
    if (gpt->n_unmasked > 1)
        return vq_error(VQGAN_ERR_UNSUPPORTED, "n_unmasked %d is more than the one condition token", gpt->n_unmasked);
    if (first_token < 0 || first_token >= gpt->vocab)
        return vq_error(VQGAN_ERR_INVALID, "condition token %d is outside the vocabulary 0..%d",
                        first_token, gpt->vocab - 1);
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
        fed++;
        if (p->trace)
            p->trace(p->trace_opaque, 0, 0, k, 1);
        if (p->dry_run) {
            tokens[k] = 0;
        } else {
            if ((r = vq_gpt_forward(gpt, &cache, &in, 1, 0, logits))) goto end;
            tokens[k] = vq_sample_token(&smp, logits, key);
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
    fill_stats(stats, done, fed, 0, t0);
    free(logits);
    vq_kv_cache_free(&cache);
    vq_sampler_free(&smp);
    return r;
}

/* ---- public calls -------------------------------------------------------------- */

static int session_progress(void *opaque, int64_t done, int64_t total)
{
    return vq_session_progress(opaque, done, total);
}

static struct vq_window_params session_params(struct vqgan_session *s)
{
    struct vq_window_params p;
    memset(&p, 0, sizeof(p));
    p.sampling.temperature = s->params.temperature;
    p.sampling.top_k = s->params.top_k;
    p.sampling.top_p = s->params.top_p;
    p.sampling.seed = s->params.seed;
    p.cache_bytes = s->params.cache_bytes;
    p.progress = session_progress;
    p.progress_opaque = s;
    return p;
}

static const char *model_name(const struct vqgan_model *m)
{
    return m->path ? m->path : m->info.name;
}

int vqgan_sample_conditional(struct vqgan_session *s, const int32_t *cond_tokens,
                             int gw, int gh, int32_t *tokens)
{
    if (!s) return vq_error(VQGAN_ERR_INVALID, "vqgan_sample_conditional: no session");
    vq_session_enter(s);
    memset(&s->stats, 0, sizeof(s->stats));
    const struct vqgan_model *m = s->model;
    if (!m->gpt.present)
        return vq_error(VQGAN_ERR_UNSUPPORTED, "%s: the model has no transformer", model_name(m));
    if (m->info.cond_kind != VQGAN_COND_SEGMENTATION)
        return vq_error(VQGAN_ERR_UNSUPPORTED, "%s: not a segmentation-conditional model (use "
                        "vqgan_sample_unconditional for class-conditional and unconditional ones)", model_name(m));
    if (!cond_tokens || !tokens)
        return vq_error(VQGAN_ERR_INVALID, "vqgan_sample_conditional: NULL token buffer");
    const struct vq_window_params p = session_params(s);
    return vq_window_sample(&s->window, &m->gpt, &p, cond_tokens, gw, gh, tokens, &s->stats);
}

int vqgan_sample_unconditional(struct vqgan_session *s, int class_id, int gw, int gh,
                               int32_t *tokens)
{
    if (!s) return vq_error(VQGAN_ERR_INVALID, "vqgan_sample_unconditional: no session");
    vq_session_enter(s);
    memset(&s->stats, 0, sizeof(s->stats));
    const struct vqgan_model *m = s->model;
    int32_t first;
    uint32_t stream;
    if (!m->gpt.present)
        return vq_error(VQGAN_ERR_UNSUPPORTED, "%s: the model has no transformer", model_name(m));
    if (m->info.cond_kind == VQGAN_COND_CLASS) {
        if (class_id < 0 || class_id >= m->info.n_classes)
            return vq_error(VQGAN_ERR_INVALID, "class id %d is outside the model's classes 0..%d",
                            class_id, m->info.n_classes - 1);
        first = class_id;               /* the class id is its own token */
        stream = VQ_STREAM_CLASS(class_id);
    } else if (m->info.cond_kind == VQGAN_COND_SOS) {
        first = m->info.sos_token;
        stream = VQ_STREAM_SOS;
    } else {
        return vq_error(VQGAN_ERR_UNSUPPORTED, "%s: not a class-conditional or unconditional model (use "
                        "vqgan_sample_conditional for segmentation-conditional ones)", model_name(m));
    }
    if (!tokens)
        return vq_error(VQGAN_ERR_INVALID, "vqgan_sample_unconditional: NULL token buffer");
    const struct vq_window_params p = session_params(s);
    return vq_sequence_sample(&m->gpt, &p, first, stream, gw, gh, tokens, &s->stats);
}
