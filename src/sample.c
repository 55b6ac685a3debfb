/* The public sampling calls (vqgan.h): a session's parameters and condition
 * to the sampler (window.c), by the model's condition kind. */
#include <string.h>

#include "error.h"
#include "model.h"
#include "sampler.h"
#include "session.h"
#include "window.h"

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
    /* steady samples as reuse; only its decoding differs (session.c) */
    p.temporal = s->params.temporal == VQGAN_TEMPORAL_STEADY ? VQGAN_TEMPORAL_REUSE : s->params.temporal;
    p.fast_step = s->params.fast_step;
    p.origin_i = s->params.origin_y;    /* the farm's parts start at their origin */
    p.origin_j = s->params.origin_x;
    p.progress = session_progress;
    p.progress_opaque = s;
    p.exec = &s->exec;
    return p;
}

static const char *model_name(const struct vqgan_model *m)
{
    return m->path ? m->path : m->info.name;
}

static int spatial_kind(int kind)
{
    return kind == VQGAN_COND_SEGMENTATION || kind == VQGAN_COND_DEPTH || kind == VQGAN_COND_COORD;
}

/* Every sampling call: the spatial condition grid (cond, spatial models) or
 * the one token (class_id for class-conditional models), completion's
 * given / mask (may be NULL), through the sliding window or, for non-spatial
 * conditions on grids that fit the block, the one cached sequence. */
static int sample_any(struct vqgan_session *s, const char *what, const int32_t *cond, int class_id,
                      const int32_t *given, const uint8_t *mask, int gw, int gh, int32_t *tokens)
{
    memset(&s->stats, 0, sizeof(s->stats));
    const struct vqgan_model *m = s->model;
    const int kind = m->info.cond_kind;
    if (!m->gpt.present)
        return vq_error(VQGAN_ERR_UNSUPPORTED, "%s: the model has no transformer", model_name(m));
    if (!tokens)
        return vq_error(VQGAN_ERR_INVALID, "%s: NULL output token buffer", what);
    struct vq_window_params p = session_params(s);
    p.given = given;
    p.mask = mask;
    if (spatial_kind(kind)) {
        if (!cond)
            return vq_error(VQGAN_ERR_INVALID, "%s: %s: a model with a spatial condition needs condition tokens",
                            what, model_name(m));
        return vq_window_sample(&s->window, &m->gpt, &p, cond, gw, gh, tokens, &s->stats);
    }
    int32_t first;
    uint32_t stream;
    if (kind == VQGAN_COND_CLASS) {
        if (class_id < 0 || class_id >= m->info.n_classes)
            return vq_error(VQGAN_ERR_INVALID, "class id %d is outside the model's classes 0..%d",
                            class_id, m->info.n_classes - 1);
        first = class_id;               /* the class id is its own token */
        stream = VQ_STREAM_CLASS(class_id);
    } else if (kind == VQGAN_COND_SOS) {
        first = m->info.sos_token;
        stream = VQ_STREAM_SOS;
    } else {
        return vq_error(VQGAN_ERR_UNSUPPORTED, "%s: %s: the model has no condition (no class or start token, "
                        "no condition stage) to sample from", what, model_name(m));
    }
    if (gw > 0 && gh > 0 && (int64_t)gw * gh <= m->gpt.block)
        return vq_sequence_sample(&m->gpt, &p, first, stream, gw, gh, tokens, &s->stats);
    return vq_window_sample_token(&s->window, &m->gpt, &p, first, stream, gw, gh, tokens, &s->stats);
}

static int vqgan_sample_conditional_impl(struct vqgan_session *s, const int32_t *cond_tokens,
                             int gw, int gh, int32_t *tokens)
{
    const struct vqgan_model *m = s->model;
    if (m->gpt.present && !spatial_kind(m->info.cond_kind)) {
        memset(&s->stats, 0, sizeof(s->stats));
        return vq_error(VQGAN_ERR_UNSUPPORTED, "%s: not a model with a spatial condition (segmentation, depth, "
                        "coordinates; use vqgan_sample_unconditional for class-conditional and unconditional ones)",
                        model_name(m));
    }
    if (!cond_tokens) {
        memset(&s->stats, 0, sizeof(s->stats));
        return vq_error(VQGAN_ERR_INVALID, "vqgan_sample_conditional: NULL condition tokens");
    }
    return sample_any(s, "vqgan_sample_conditional", cond_tokens, 0, NULL, NULL, gw, gh, tokens);
}

int vqgan_sample_conditional(struct vqgan_session *s, const int32_t *cond_tokens,
                             int gw, int gh, int32_t *tokens)
{
    if (!s) return vq_error(VQGAN_ERR_INVALID, "vqgan_sample_conditional: no session");
    vq_session_enter(s, VQ_BUFFERS_RELEASE);
    const int r = vqgan_sample_conditional_impl(s, cond_tokens, gw, gh, tokens);
    vq_session_leave();
    return r;
}

static int vqgan_sample_unconditional_impl(struct vqgan_session *s, int class_id, int gw, int gh,
                               int32_t *tokens)
{
    const struct vqgan_model *m = s->model;
    if (m->gpt.present && spatial_kind(m->info.cond_kind)) {
        memset(&s->stats, 0, sizeof(s->stats));
        return vq_error(VQGAN_ERR_UNSUPPORTED, "%s: not a class-conditional or unconditional model (use "
                        "vqgan_sample_conditional for models with a spatial condition)", model_name(m));
    }
    return sample_any(s, "vqgan_sample_unconditional", NULL, class_id, NULL, NULL, gw, gh, tokens);
}

int vqgan_sample_unconditional(struct vqgan_session *s, int class_id, int gw, int gh,
                               int32_t *tokens)
{
    if (!s) return vq_error(VQGAN_ERR_INVALID, "vqgan_sample_unconditional: no session");
    vq_session_enter(s, VQ_BUFFERS_RELEASE);
    const int r = vqgan_sample_unconditional_impl(s, class_id, gw, gh, tokens);
    vq_session_leave();
    return r;
}

int vqgan_sample_masked(struct vqgan_session *s, const int32_t *cond_tokens, int class_id,
                        const int32_t *given, const uint8_t *cell_mask, int gw, int gh,
                        int32_t *tokens)
{
    if (!s) return vq_error(VQGAN_ERR_INVALID, "vqgan_sample_masked: no session");
    vq_session_enter(s, VQ_BUFFERS_RELEASE);
    int r;
    if (!given || !cell_mask) {
        memset(&s->stats, 0, sizeof(s->stats));
        r = vq_error(VQGAN_ERR_INVALID, "vqgan_sample_masked: NULL %s", given ? "cell mask" : "given tokens");
    } else {
        r = sample_any(s, "vqgan_sample_masked", cond_tokens, class_id, given, cell_mask, gw, gh, tokens);
    }
    vq_session_leave();
    return r;
}
