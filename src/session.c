/* Sessions, and the public tokenizer calls (encode, decode). */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "error.h"
#include "grid.h"
#include "scratch.h"
#include "session.h"
#include "vqgan_stage.h"
#include "window.h"

struct vqgan_session_params vqgan_session_default_params(void)
{
    struct vqgan_session_params p;
    memset(&p, 0, sizeof(p));
    p.temperature = 1.0f;
    p.top_p = 1.0f;
    return p;
}

static int check_params(const struct vqgan_model *m, const struct vqgan_session_params *p)
{
    if (p->n_threads < 0 || p->n_threads > 1024)
        return vq_error(VQGAN_ERR_INVALID, "threads = %d is outside 0..1024 (0: all cores)", p->n_threads);
    if (!(p->temperature > 0.0f) || !isfinite(p->temperature))
        return vq_error(VQGAN_ERR_INVALID, "temperature = %g must be a finite value > 0", p->temperature);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return vq_error(VQGAN_ERR_INVALID, "top_p = %g is outside (0, 1]", p->top_p);
    if (p->top_k < 0)
        return vq_error(VQGAN_ERR_INVALID, "top_k = %d must be >= 0 (0 disables it, 1 is greedy)", p->top_k);
    if (p->fast_step < 0 || p->fast_step > VQGAN_MAX_FAST_STEP)
        return vq_error(VQGAN_ERR_INVALID, "fast_step = %d is outside 0..%d (0 or 1: exact)", p->fast_step,
                        VQGAN_MAX_FAST_STEP);
    if (p->temporal < VQGAN_TEMPORAL_OFF || p->temporal > VQGAN_TEMPORAL_STEADY)
        return vq_error(VQGAN_ERR_INVALID, "temporal = %d is not off (0), reuse (1), follow (2) or steady (3)",
                        p->temporal);
    if (p->origin_x < -VQGAN_MAX_ORIGIN || p->origin_x > VQGAN_MAX_ORIGIN ||
        p->origin_y < -VQGAN_MAX_ORIGIN || p->origin_y > VQGAN_MAX_ORIGIN)
        return vq_error(VQGAN_ERR_INVALID, "origin = %d, %d is outside -%d..%d", (int)p->origin_x,
                        (int)p->origin_y, VQGAN_MAX_ORIGIN, VQGAN_MAX_ORIGIN);
    if (m->gpt.present && p->top_k > m->gpt.vocab)
        return vq_error(VQGAN_ERR_INVALID, "top_k = %d is above the model's vocabulary size %d (accepted: 0..%d)",
                        p->top_k, m->gpt.vocab, m->gpt.vocab);
    return 0;
}

/* Sessions alive: the last one freed frees the kept working buffers. */
static atomic_int sessions_live;

int vqgan_session_new(struct vqgan_model *model, const struct vqgan_session_params *params,
                      struct vqgan_session **out)
{
    struct vqgan_session_params p = params ? *params : vqgan_session_default_params();
    int r;
    if (!out) return vq_error(VQGAN_ERR_INVALID, "vqgan_session_new: out is NULL");
    *out = NULL;
    vq_clear_error();
    if (!model) return vq_error(VQGAN_ERR_INVALID, "vqgan_session_new: no model");
    if ((r = check_params(model, &p))) return r;
    struct vqgan_session *s = calloc(1, sizeof(*s));
    if (!s) return vq_error(VQGAN_ERR_NOMEM, "out of memory");
    s->model = vqgan_model_ref(model);
    s->params = p;
    s->n_threads = p.n_threads ? p.n_threads : vq_threads_available();
    atomic_fetch_add(&sessions_live, 1);
    *out = s;
    return 0;
}

int vqgan_session_set_params(struct vqgan_session *s, const struct vqgan_session_params *p)
{
    int r;
    if (!s || !p) return vq_error(VQGAN_ERR_INVALID, "vqgan_session_set_params: NULL argument");
    vq_clear_error();
    /* the new parameters' log target reports their own refusal */
    vq_log_push(p->log_callback, p->log_opaque);
    r = check_params(s->model, p);
    vq_log_pop();
    if (r) return r;
    /* a decode memo of another mode is not this mode's picture (steady's is
     * a blend of frames): a new mode starts afresh */
    if (p->temporal != s->params.temporal) vq_memo_clear(&s->memos);
    s->params = *p;
    s->n_threads = p->n_threads ? p->n_threads : vq_threads_available();
    return 0;
}

void vqgan_session_free(struct vqgan_session *s)
{
    if (!s) return;
    vq_window_state_free(s->window);
    vq_memo_clear(&s->memos);
    vqgan_model_unref(s->model);
    free(s);
    /* the kept working buffers outlive no session (scratch.h) */
    if (atomic_fetch_sub(&sessions_live, 1) == 1) vq_scratch_release();
}

size_t vqgan_release_buffers(void)
{
    return vq_scratch_release();
}

int vqgan_session_get_stats(const struct vqgan_session *s, struct vqgan_sample_stats *st)
{
    if (!s || !st) return vq_error(VQGAN_ERR_INVALID, "vqgan_session_get_stats: NULL argument");
    *st = s->stats;
    st->threads = s->threads_used;
    return 0;
}

/* The process's cores are shared by the calls computing at the same time
 * (filter instances in parallel graphs, an application's threads): a call
 * uses at most its session's n_threads, and at most the online cores
 * divided by the number of calls running when it starts, so concurrent calls
 * never multiply into many more runnable threads than cores. Results do not
 * depend on the thread count (shape-determined panels, position-keyed draws). */
static atomic_int calls_running;

void vq_session_enter(struct vqgan_session *s, int buffers)
{
    vq_clear_error();
    const int running = atomic_fetch_add(&calls_running, 1) + 1;
    int share = vq_threads_available() / running;
    if (share < 1) share = 1;
    s->threads_used = s->n_threads < share ? s->n_threads : share;
    s->exec = vq_exec_make(s->model->backend, s->threads_used);   /* the call's backend and threads */
    s->exec.keep = buffers == VQ_BUFFERS_KEPT;
    if (buffers == VQ_BUFFERS_RELEASE) vq_scratch_release();
    vq_log_push(s->params.log_callback, s->params.log_opaque);
}

void vq_session_leave(void)
{
    vq_log_pop();
    atomic_fetch_sub(&calls_running, 1);
}

int vq_session_progress(struct vqgan_session *s, int64_t done, int64_t total)
{
    if (s->params.progress && s->params.progress(s->params.progress_opaque, done, total))
        return 1;
    return 0;
}

/* ---- tokenizer ------------------------------------------------------------- */

static int check_frame(const struct vq_stage *st, const char *what, int width, int height)
{
    if (width <= 0 || height <= 0)
        return vq_error(VQGAN_ERR_INVALID, "%s: size %dx%d is empty", what, width, height);
    if (width % st->factor || height % st->factor)
        return vq_error(VQGAN_ERR_INVALID, "%s: size %dx%d is not a multiple of the downsampling factor %d",
                        what, width, height, st->factor);
    char grid[64];
    snprintf(grid, sizeof(grid), "%s: token grid", what);
    return vq_check_grid(grid, width / st->factor, height / st->factor);
}

static int need_first_stage(struct vqgan_session *s)
{
    if (!s) return vq_error(VQGAN_ERR_INVALID, "no session");
    if (!s->model->first.present)
        return vq_error(VQGAN_ERR_UNSUPPORTED, "%s: the model has no image tokenizer (first stage)", s->model->path);
    return 0;
}

/* Encoder output -> tokens (and optionally the pre-quantization values). */
static int finish_encode(struct vqgan_session *s, const struct vq_stage *st, float *h, int n, int32_t *tokens,
                         float *pre_quant)
{
    int r = vq_quantize(&s->exec, st, h, n, tokens);
    if (!r && pre_quant) memcpy(pre_quant, h, sizeof(float) * (size_t)st->embed_dim * n);
    free(h);
    return r;
}

static int vqgan_encode_image_f32_impl(struct vqgan_session *s, const float *chw, int width, int height,
                           int32_t *tokens, float *pre_quant)
{
    int r;
    float *h;
    if ((r = need_first_stage(s))) return r;
    const struct vq_stage *st = &s->model->first;
    if ((r = check_frame(st, "image", width, height))) return r;
    if (!chw || !tokens) return vq_error(VQGAN_ERR_INVALID, "encode: NULL buffer");
    if ((r = vq_stage_check_work(st, VQ_WORK_ENCODE, width, height, 0.0, "encode"))) return r;
    if ((r = vq_stage_encode(&s->exec, st, chw, height, width, &h))) return r;
    return finish_encode(s, st, h, (height / st->factor) * (width / st->factor), tokens, pre_quant);
}

int vqgan_encode_image_f32(struct vqgan_session *s, const float *chw, int width, int height,
                           int32_t *tokens, float *pre_quant)
{
    if (!s) return vq_error(VQGAN_ERR_INVALID, "vqgan_encode_image_f32: no session");
    vq_session_enter(s, VQ_BUFFERS_KEPT);
    const int r = vqgan_encode_image_f32_impl(s, chw, width, height, tokens, pre_quant);
    vq_session_leave();
    return r;
}

static int vqgan_encode_image_impl(struct vqgan_session *s, const uint8_t *rgb, ptrdiff_t stride,
                                   int width, int height, int32_t *tokens);

/* A row stride holds a row either way: a negative one walks the rows upwards
 * from the first (a bottom-up buffer, FFmpeg's vertically flipped frames). */
static int stride_too_small(ptrdiff_t stride, ptrdiff_t row)
{
    return stride > -row && stride < row;
}

/* Its checks run before vqgan_encode_image_f32 enters the session: the
 * session's log target covers them too. */
int vqgan_encode_image(struct vqgan_session *s, const uint8_t *rgb, ptrdiff_t stride,
                       int width, int height, int32_t *tokens)
{
    if (!s) return vq_error(VQGAN_ERR_INVALID, "vqgan_encode_image: no session");
    vq_log_push(s->params.log_callback, s->params.log_opaque);
    const int r = vqgan_encode_image_impl(s, rgb, stride, width, height, tokens);
    vq_log_pop();
    return r;
}

static int vqgan_encode_image_impl(struct vqgan_session *s, const uint8_t *rgb, ptrdiff_t stride,
                                   int width, int height, int32_t *tokens)
{
    int r;
    if ((r = need_first_stage(s))) return r;
    if ((r = check_frame(&s->model->first, "image", width, height))) return r;
    if (!rgb || !tokens) return vq_error(VQGAN_ERR_INVALID, "encode: NULL image or tokens");
    if (s->model->first.in_channels != 3)
        return vq_error(VQGAN_ERR_UNSUPPORTED, "image tokenizer takes %d channels, not RGB (vqgan_encode_image_f32 "
                        "takes them as planes)", s->model->first.in_channels);
    if (stride_too_small(stride, (ptrdiff_t)3 * width))
        return vq_error(VQGAN_ERR_INVALID, "encode: stride %td is smaller than a row of %d RGB pixels (%td bytes)",
                        stride, width, (ptrdiff_t)3 * width);
    if ((r = vq_stage_check_work(&s->model->first, VQ_WORK_ENCODE, width, height, 0.0, "encode"))) return r;
    const size_t plane = (size_t)width * height;
    float *x = malloc(sizeof(float) * 3 * plane);
    if (!x) return vq_error(VQGAN_ERR_NOMEM, "out of memory");
    for (int y = 0; y < height; y++)
        for (int i = 0; i < width; i++)
            for (int c = 0; c < 3; c++)
                x[c * plane + (size_t)y * width + i] = rgb[y * stride + 3 * i + c] / 127.5f - 1.0f;
    r = vqgan_encode_image_f32(s, x, width, height, tokens, NULL);
    free(x);
    return r;
}

/* Temporal memo keys: a header of sizes, then the input's bytes. */
static unsigned char *memo_key(const int32_t hdr[2], const void *data, size_t row, ptrdiff_t stride, int rows,
                               size_t *len)
{
    unsigned char *k = malloc(2 * sizeof(int32_t) + row * (size_t)rows);
    if (!k) return NULL;
    memcpy(k, hdr, 2 * sizeof(int32_t));
    for (int y = 0; y < rows; y++)
        memcpy(k + 2 * sizeof(int32_t) + row * y, (const unsigned char *)data + stride * y, row);
    *len = 2 * sizeof(int32_t) + row * (size_t)rows;
    return k;
}

static int vqgan_encode_labels_impl(struct vqgan_session *s, const uint8_t *ids, ptrdiff_t stride,
                        int width, int height, int32_t *tokens, float *pre_quant)
{
    int r;
    float *h;
    if (!s) return vq_error(VQGAN_ERR_INVALID, "no session");
    const struct vq_stage *st = &s->model->cond;
    if (!st->present || s->model->info.cond_kind != VQGAN_COND_SEGMENTATION)
        return vq_error(VQGAN_ERR_UNSUPPORTED, "%s: the model has no segmentation condition stage%s", s->model->path,
                        s->model->info.cond_kind == VQGAN_COND_DEPTH ? " (its condition is a depth map)" : "");
    if ((r = check_frame(st, "label map", width, height))) return r;
    if (!ids || !tokens) return vq_error(VQGAN_ERR_INVALID, "encode: NULL buffer");
    if (stride_too_small(stride, (ptrdiff_t)width))
        return vq_error(VQGAN_ERR_INVALID, "label encode: stride %td is smaller than a row of %d label ids",
                        stride, width);
    if ((r = vq_stage_check_work(st, VQ_WORK_LABELS, width, height, 0.0, "label encode"))) return r;
    const int n = (height / st->factor) * (width / st->factor);
    /* temporal: the same label map as the previous call gives its tokens */
    unsigned char *key = NULL;
    size_t key_len = 0;
    if (!s->params.temporal) {
        vq_memo_clear(&s->memos);
    } else {
        const int32_t hdr[2] = { width, height };
        key = memo_key(hdr, ids, (size_t)width, stride, height, &key_len);
        size_t vl = 0;
        const void *v = key && !pre_quant ? vq_memo_find(&s->memos, VQ_MEMO_LABELS, key, key_len, &vl) : NULL;
        if (v && vl == sizeof(int32_t) * (size_t)n) {
            memcpy(tokens, v, vl);
            free(key);
            return 0;
        }
    }
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
            if (ids[y * stride + x] >= st->in_channels) {
                free(key);
                return vq_error(VQGAN_ERR_INVALID,
                                "label id %d at (%d, %d) is outside the model's labels 0..%d",
                                ids[y * stride + x], x, y, st->in_channels - 1);
            }
    if ((r = vq_stage_encode_labels(&s->exec, st, ids, stride, height, width, &h))) {
        free(key);
        return r;
    }
    r = finish_encode(s, st, h, n, tokens, pre_quant);
    if (!r && key)
        vq_memo_store(&s->memos, VQ_MEMO_LABELS, key, key_len, tokens, sizeof(int32_t) * (size_t)n);
    free(key);
    return r;
}

int vqgan_encode_labels(struct vqgan_session *s, const uint8_t *ids, ptrdiff_t stride,
                        int width, int height, int32_t *tokens, float *pre_quant)
{
    if (!s) return vq_error(VQGAN_ERR_INVALID, "vqgan_encode_labels: no session");
    vq_session_enter(s, VQ_BUFFERS_KEPT);
    const int r = vqgan_encode_labels_impl(s, ids, stride, width, height, tokens, pre_quant);
    vq_session_leave();
    return r;
}

static int check_tokens(const struct vq_stage *st, const int32_t *tokens, int gw, int gh)
{
    int r;
    if ((r = vq_check_grid("decode: token grid", gw, gh))) return r;
    if (!tokens) return vq_error(VQGAN_ERR_INVALID, "decode: NULL tokens");
    return vq_check_tokens("token", "codebook", tokens, NULL, gw, gh, st->n_embed);
}

/* Temporal: the previous decode's picture when the tokens are the same
 * (decoding is deterministic). NULL when off or different; *key receives the
 * memo key to store after decoding (NULL when off). */
static const void *decode_memo(struct vqgan_session *s, int kind, const int32_t *tokens, int gw, int gh,
                               size_t want, unsigned char **key, size_t *key_len)
{
    *key = NULL;
    if (!s->params.temporal) {
        vq_memo_clear(&s->memos);
        return NULL;
    }
    const int32_t hdr[2] = { gw, gh };
    const size_t row = sizeof(int32_t) * (size_t)gw;
    if (!(*key = memo_key(hdr, tokens, row, (ptrdiff_t)row, gh, key_len))) return NULL;
    size_t vl = 0;
    const void *v = vq_memo_find(&s->memos, kind, *key, *key_len, &vl);
    return v && vl == want ? v : NULL;
}

static int vqgan_decode_f32_impl(struct vqgan_session *s, const int32_t *tokens, int gw, int gh, float *chw)
{
    int r;
    float *x;
    if ((r = need_first_stage(s))) return r;
    const struct vq_stage *st = &s->model->first;
    if ((r = check_tokens(st, tokens, gw, gh))) return r;
    if (!chw) return vq_error(VQGAN_ERR_INVALID, "decode: NULL output");
    if ((r = vq_stage_check_work(st, VQ_WORK_DECODE, gw, gh, 0.0, "decode"))) return r;
    const size_t bytes = sizeof(float) * (size_t)st->out_ch * gw * st->factor * gh * st->factor;
    unsigned char *key;
    size_t key_len = 0;
    const void *v = decode_memo(s, VQ_MEMO_DECODE_F32, tokens, gw, gh, bytes, &key, &key_len);
    if (v) {
        memcpy(chw, v, bytes);
        free(key);
        return 0;
    }
    if ((r = vq_stage_decode(&s->exec, st, tokens, gw, gh, &x))) {
        free(key);
        return r;
    }
    memcpy(chw, x, bytes);
    if (key) vq_memo_store(&s->memos, VQ_MEMO_DECODE_F32, key, key_len, x, bytes);
    free(key);
    free(x);
    return 0;
}

int vqgan_decode_f32(struct vqgan_session *s, const int32_t *tokens, int gw, int gh, float *chw)
{
    if (!s) return vq_error(VQGAN_ERR_INVALID, "vqgan_decode_f32: no session");
    vq_session_enter(s, VQ_BUFFERS_KEPT);
    const int r = vqgan_decode_f32_impl(s, tokens, gw, gh, chw);
    vq_session_leave();
    return r;
}

static uint8_t to_u8(float v)
{
    /* NaN fails the first test and becomes -1 (0): no NaN-to-integer conversion */
    v = v > -1.0f ? v : -1.0f;
    v = v < 1.0f ? v : 1.0f;
    return (uint8_t)floorf((v + 1.0f) * 127.5f + 0.5f);
}

/* temporal = steady: the cells of rgb at least VQGAN_STEADY_RADIUS cells away
 * from every token that differs from the previous decode's (same grid) get
 * the previous picture's pixels. Nothing happens without a previous decode
 * of the same grid or when memory is short (the picture stays the fresh one). */
static void steady_composite(const struct vqgan_session *s, const int32_t *tokens, int gw, int gh, int f,
                             uint8_t *rgb, ptrdiff_t stride)
{
    const void *pk;
    size_t pk_len, pv_len;
    const uint8_t *prev = vq_memo_peek(&s->memos, VQ_MEMO_DECODE_U8, &pk, &pk_len, &pv_len);
    const size_t n = (size_t)gw * gh, row = (size_t)gw * f * 3;
    if (!prev || pk_len != 2 * sizeof(int32_t) + n * sizeof(int32_t) || pv_len != row * gh * f) return;
    int32_t hdr[2];
    memcpy(hdr, pk, sizeof(hdr));
    if (hdr[0] != gw || hdr[1] != gh) return;
    const unsigned char *ptok = (const unsigned char *)pk + sizeof(hdr);
    /* near[i] = some changed token within the radius (separable dilation) */
    unsigned char *chg = calloc(n, 1), *rowd = calloc(n, 1);
    if (!chg || !rowd) { free(chg); free(rowd); return; }
    for (size_t i = 0; i < n; i++) {
        int32_t t;
        memcpy(&t, ptok + i * sizeof(int32_t), sizeof(t));
        chg[i] = t != tokens[i];
    }
    const int R = VQGAN_STEADY_RADIUS;
    for (int y = 0; y < gh; y++)
        for (int x = 0; x < gw; x++) {
            unsigned char a = 0;
            for (int d = x - R < 0 ? 0 : x - R; d <= x + R && d < gw && !a; d++) a = chg[(size_t)y * gw + d];
            rowd[(size_t)y * gw + x] = a;
        }
    for (int y = 0; y < gh; y++)
        for (int x = 0; x < gw; x++) {
            unsigned char a = 0;
            for (int d = y - R < 0 ? 0 : y - R; d <= y + R && d < gh && !a; d++) a = rowd[(size_t)d * gw + x];
            if (a) continue;
            for (int py = y * f; py < (y + 1) * f; py++)
                memcpy(rgb + py * stride + (size_t)x * f * 3, prev + py * row + (size_t)x * f * 3, (size_t)f * 3);
        }
    free(chg);
    free(rowd);
}

static int vqgan_decode_impl(struct vqgan_session *s, const int32_t *tokens, int gw, int gh,
                 uint8_t *rgb, ptrdiff_t stride)
{
    int r;
    float *x;
    if ((r = need_first_stage(s))) return r;
    const struct vq_stage *st = &s->model->first;
    if ((r = check_tokens(st, tokens, gw, gh))) return r;
    if (!rgb) return vq_error(VQGAN_ERR_INVALID, "decode: NULL output");
    if (st->out_ch != 3)
        return vq_error(VQGAN_ERR_UNSUPPORTED, "decoder gives %d channels, not RGB", st->out_ch);
    const int W = gw * st->factor, H = gh * st->factor;
    const size_t row = (size_t)W * 3;
    if (stride_too_small(stride, (ptrdiff_t)row))
        return vq_error(VQGAN_ERR_INVALID, "decode: stride %td is smaller than a row of %d RGB pixels (%zu bytes)",
                        stride, W, row);
    if ((r = vq_stage_check_work(st, VQ_WORK_DECODE, gw, gh, 2.0 * (double)row * H, "decode"))) return r;
    unsigned char *key;
    size_t key_len = 0;
    const uint8_t *v = decode_memo(s, VQ_MEMO_DECODE_U8, tokens, gw, gh, row * H, &key, &key_len);
    if (v) {
        for (int y = 0; y < H; y++)
            memcpy(rgb + y * stride, v + row * y, row);
        free(key);
        return 0;
    }
    if ((r = vq_stage_decode(&s->exec, st, tokens, gw, gh, &x))) {
        free(key);
        return r;
    }
    const size_t plane = (size_t)W * H;
    for (int y = 0; y < H; y++)
        for (int i = 0; i < W; i++)
            for (int c = 0; c < 3; c++)
                rgb[y * stride + 3 * i + c] = to_u8(x[c * plane + (size_t)y * W + i]);
    free(x);
    if (s->params.temporal == VQGAN_TEMPORAL_STEADY)
        steady_composite(s, tokens, gw, gh, st->factor, rgb, stride);
    if (key) {
        uint8_t *c = malloc(row * H);
        if (c) {
            for (int y = 0; y < H; y++)
                memcpy(c + row * y, rgb + y * stride, row);
            vq_memo_store(&s->memos, VQ_MEMO_DECODE_U8, key, key_len, c, row * H);
            free(c);
        }
    }
    free(key);
    return 0;
}

int vqgan_decode(struct vqgan_session *s, const int32_t *tokens, int gw, int gh,
                 uint8_t *rgb, ptrdiff_t stride)
{
    if (!s) return vq_error(VQGAN_ERR_INVALID, "vqgan_decode: no session");
    vq_session_enter(s, VQ_BUFFERS_KEPT);
    const int r = vqgan_decode_impl(s, tokens, gw, gh, rgb, stride);
    vq_session_leave();
    return r;
}

/* ---- depth and coordinate conditions ----------------------------------------- */

/* A range wider than the largest float (lo near -FLT_MAX, hi near FLT_MAX):
 * the float span overflows, so these few maps are scaled in double (any
 * other range keeps the reference's float arithmetic, bit for bit). */
static int depth_span_wide(const float *depth, size_t n, float lo, float hi, int invert, float *out)
{
    const double span = (double)hi - lo;
    for (size_t i = 0; i < n; i++) {
        double d = 2.0 * (((double)depth[i] - lo) / span) - 1.0;
        d = d < -1.0 ? -1.0 : d > 1.0 ? 1.0 : d;
        out[i] = (float)(invert ? -d : d);
    }
    return 0;
}

int vqgan_depth_normalize(const float *depth, int width, int height, float lo, float hi, int invert,
                          float *out)
{
    if (!depth || !out) return vq_error(VQGAN_ERR_INVALID, "depth normalize: NULL buffer");
    if (width <= 0 || height <= 0)
        return vq_error(VQGAN_ERR_INVALID, "depth normalize: size %dx%d is empty", width, height);
    if (!isfinite(lo) || !isfinite(hi) || lo > hi)
        return vq_error(VQGAN_ERR_INVALID, "depth range %g:%g: both ends must be finite, the low one not above the high one", lo, hi);
    const size_t n = (size_t)width * height;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(depth[i]))
            return vq_error(VQGAN_ERR_INVALID, "depth value %g at (%zu, %zu) is not finite", depth[i],
                            i % (size_t)width, i / (size_t)width);
    if (lo == hi) {
        /* the reference's per-image min-max (D-RIN's data pipeline):
         * d = (d - min) / max(1e-8, max - min); d = 2 d - 1 */
        float mn = depth[0], mx = depth[0];
        for (size_t i = 1; i < n; i++) {
            mn = depth[i] < mn ? depth[i] : mn;
            mx = depth[i] > mx ? depth[i] : mx;
        }
        if (isinf(mx - mn)) return depth_span_wide(depth, n, mn, mx, invert, out);
        const float span = mx - mn > 1e-8f ? mx - mn : 1e-8f;
        for (size_t i = 0; i < n; i++) {
            const float d = 2.0f * ((depth[i] - mn) / span) - 1.0f;
            out[i] = invert ? -d : d;
        }
        return 0;
    }
    if (isinf(hi - lo)) return depth_span_wide(depth, n, lo, hi, invert, out);
    /* a fixed range for a whole stream: the same depth gives the same input
     * in every frame; values outside the range are clamped */
    const float span = hi - lo > 1e-8f ? hi - lo : 1e-8f;
    for (size_t i = 0; i < n; i++) {
        float d = 2.0f * ((depth[i] - lo) / span) - 1.0f;
        d = d < -1.0f ? -1.0f : d > 1.0f ? 1.0f : d;
        out[i] = invert ? -d : d;
    }
    return 0;
}

static int vqgan_encode_depth_impl(struct vqgan_session *s, const float *depth, int width, int height,
                                   int32_t *tokens, float *pre_quant)
{
    int r;
    float *h;
    const struct vq_stage *st = &s->model->cond;
    if (s->model->info.cond_kind != VQGAN_COND_DEPTH)
        return vq_error(VQGAN_ERR_UNSUPPORTED, "%s: the model has no depth condition stage (its condition: %s)",
                        s->model->path, s->model->info.cond_kind == VQGAN_COND_SEGMENTATION ? "segmentation labels"
                        : s->model->info.cond_kind == VQGAN_COND_COORD ? "coordinates, no input"
                        : s->model->info.cond_kind == VQGAN_COND_CLASS ? "a class id" : "none");
    if ((r = check_frame(st, "depth map", width, height))) return r;
    if (!depth || !tokens) return vq_error(VQGAN_ERR_INVALID, "depth encode: NULL buffer");
    const size_t n_px = (size_t)width * height;
    for (size_t i = 0; i < n_px; i++)
        if (!isfinite(depth[i]))
            return vq_error(VQGAN_ERR_INVALID, "depth value %g at (%zu, %zu) is not finite", depth[i],
                            i % (size_t)width, i / (size_t)width);
    if ((r = vq_stage_check_work(st, VQ_WORK_ENCODE, width, height, 0.0, "depth encode"))) return r;
    if ((r = vq_stage_encode(&s->exec, st, depth, height, width, &h))) return r;
    return finish_encode(s, st, h, (height / st->factor) * (width / st->factor), tokens, pre_quant);
}

int vqgan_encode_depth(struct vqgan_session *s, const float *depth, int width, int height,
                       int32_t *tokens, float *pre_quant)
{
    if (!s) return vq_error(VQGAN_ERR_INVALID, "vqgan_encode_depth: no session");
    vq_session_enter(s, VQ_BUFFERS_KEPT);
    const int r = vqgan_encode_depth_impl(s, depth, width, height, tokens, pre_quant);
    vq_session_leave();
    return r;
}

/* CoordStage.encode on the frame's raster-position map, as the reference
 * computes it in float32: c[p] = p / (H W) (computed in double, stored as
 * float, as get_input casts it), area interpolation by down_factor (a
 * float sum over the block in raster order, divided by its height and then
 * its width, as torch's adaptive average pooling does), clamp to [0, 1],
 * times n_embed, rounded half to even (torch.round). */
static int vqgan_encode_coord_impl(struct vqgan_session *s, int width, int height, int32_t *tokens)
{
    const struct vqgan_model *m = s->model;
    if (m->info.cond_kind != VQGAN_COND_COORD)
        return vq_error(VQGAN_ERR_UNSUPPORTED, "%s: the model's condition is not coordinates (CoordStage)",
                        m->path);
    const int f = m->coord_down, K = m->coord_n_embed;
    if (width <= 0 || height <= 0)
        return vq_error(VQGAN_ERR_INVALID, "coordinates: size %dx%d is empty", width, height);
    if (width % f || height % f)
        return vq_error(VQGAN_ERR_INVALID, "coordinates: size %dx%d is not a multiple of the down_factor %d",
                        width, height, f);
    if (width / f > VQGAN_MAX_GRID || height / f > VQGAN_MAX_GRID)
        return vq_error(VQGAN_ERR_LIMIT, "coordinates: size %dx%d makes a token grid larger than %dx%d",
                        width, height, VQGAN_MAX_GRID, VQGAN_MAX_GRID);
    if (!tokens) return vq_error(VQGAN_ERR_INVALID, "coordinates: NULL tokens");
    const int gw = width / f, gh = height / f;
    const double hw = (double)width * height;
    const int vocab = m->gpt.present ? m->gpt.vocab : K + 1;
    for (int gy = 0; gy < gh; gy++)
        for (int gx = 0; gx < gw; gx++) {
            float sum = 0.0f;
            for (int y = gy * f; y < (gy + 1) * f; y++)
                for (int x = gx * f; x < (gx + 1) * f; x++)
                    sum += (float)(((double)y * width + x) / hw);
            float c = sum / (float)f / (float)f;
            c = c < 0.0f ? 0.0f : c > 1.0f ? 1.0f : c;
            const int t = (int)nearbyintf((float)K * c);
            if (t >= vocab)
                return vq_error(VQGAN_ERR_LIMIT, "coordinates: a %dx%d frame gives the token %d at grid (%d, %d), "
                                "outside the transformer's vocabulary 0..%d (the frame is too tall for this model)",
                                width, height, t, gx, gy, vocab - 1);
            tokens[gy * gw + gx] = t;
        }
    return 0;
}

int vqgan_encode_coord(struct vqgan_session *s, int width, int height, int32_t *tokens)
{
    if (!s) return vq_error(VQGAN_ERR_INVALID, "vqgan_encode_coord: no session");
    vq_session_enter(s, VQ_BUFFERS_LOCAL);
    const int r = vqgan_encode_coord_impl(s, width, height, tokens);
    vq_session_leave();
    return r;
}

static int vqgan_encode_image_logits_impl(struct vqgan_session *s, const float *chw, int width, int height,
                                          int32_t *tokens, float *logits)
{
    int r;
    float *h;
    if ((r = need_first_stage(s))) return r;
    const struct vq_stage *st = &s->model->first;
    if (!st->gumbel)
        return vq_error(VQGAN_ERR_UNSUPPORTED, "%s: the image tokenizer is not a gumbel quantizer (no logits)",
                        s->model->path);
    if ((r = check_frame(st, "image", width, height))) return r;
    if (!chw || !tokens || !logits) return vq_error(VQGAN_ERR_INVALID, "encode: NULL buffer");
    if ((r = vq_stage_check_work(st, VQ_WORK_ENCODE, width, height,
                                 (double)st->n_embed * (width / st->factor) * (height / st->factor) * 4.0,
                                 "encode"))) return r;
    if ((r = vq_stage_encode(&s->exec, st, chw, height, width, &h))) return r;
    r = vq_quantize_logits(&s->exec, st, h, (height / st->factor) * (width / st->factor), tokens, logits);
    free(h);
    return r;
}

int vqgan_encode_image_logits(struct vqgan_session *s, const float *chw, int width, int height,
                              int32_t *tokens, float *logits)
{
    if (!s) return vq_error(VQGAN_ERR_INVALID, "vqgan_encode_image_logits: no session");
    vq_session_enter(s, VQ_BUFFERS_KEPT);
    const int r = vqgan_encode_image_logits_impl(s, chw, width, height, tokens, logits);
    vq_session_leave();
    return r;
}
