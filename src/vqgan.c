/* Encoder, decoder and quantizer, layer by layer as in
 * taming/modules/diffusionmodules/model.py and taming/modules/vqvae/quantize.py. */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "error.h"
#include "memlimit.h"
#include "ops.h"
#include "scratch.h"
#include "vqgan_stage.h"

#define GN_GROUPS 32
#define GN_EPS 1e-6f

static int nomem(void) { return vq_error(VQGAN_ERR_NOMEM, "out of memory in the VQGAN stage"); }

static int conv(const struct vq_exec *ex, const struct vq_conv *c, const float *x, int H, int W, float *y)
{
    const int pad = c->k / 2;
    return vq_conv2d(ex, x, c->cin, H, W, c->w, c->b, c->cout, c->k, 1, pad, pad, pad, pad, y);
}

/* swish(GroupNorm(x)) */
static void norm_swish(const struct vq_exec *ex, const struct vq_norm *n, const float *x, int HW, float *y)
{
    vq_group_norm_swish(ex, x, n->c, HW, GN_GROUPS, GN_EPS, n->g, n->b, y);
}

/* x (cin×H×W) -> y (cout×H×W): y = shortcut(x) + conv2(swish(norm2(conv1(swish(norm1(x)))))) */
static int resblock(const struct vq_exec *ex, const struct vq_resblock *b, const float *x, int H, int W, float *y)
{
    const int HW = H * W, cin = b->conv1.cin, cout = b->conv1.cout;
    float *t = vq_scratch_alloc(sizeof(float) * (size_t)(cin > cout ? cin : cout) * HW);
    float *h = vq_scratch_alloc(sizeof(float) * (size_t)cout * HW);
    int r = 0;
    if (!t || !h) { r = nomem(); goto done; }
    norm_swish(ex, &b->norm1, x, HW, t);
    if ((r = conv(ex, &b->conv1, t, H, W, h))) goto done;
    norm_swish(ex, &b->norm2, h, HW, t);
    if ((r = conv(ex, &b->conv2, t, H, W, h))) goto done;
    if (b->nin_shortcut.w) {
        if ((r = conv(ex, &b->nin_shortcut, x, H, W, y))) goto done;
    } else {
        memcpy(y, x, sizeof(float) * (size_t)cout * HW);
    }
    vq_add(ex, y, h, (size_t)cout * HW);
done:
    vq_scratch_free(t);
    vq_scratch_free(h);
    return r ? r : 0;
}

/* Single-head spatial self-attention, in place: x += proj_out(v · softmax(qᵀk / √C)ᵀ) */
static int attnblock(const struct vq_exec *ex, const struct vq_attnblock *a, float *x, int H, int W)
{
    const int C = a->norm.c, HW = H * W;
    float *hn = vq_scratch_alloc(sizeof(float) * (size_t)C * HW);
    float *q = vq_scratch_alloc(sizeof(float) * (size_t)C * HW);
    float *k = vq_scratch_alloc(sizeof(float) * (size_t)C * HW);
    float *v = vq_scratch_alloc(sizeof(float) * (size_t)C * HW);
    float *w = vq_scratch_alloc(sizeof(float) * (size_t)HW * HW);
    int r = 0;
    if (!hn || !q || !k || !v || !w) { r = nomem(); goto done; }
    vq_group_norm(ex, x, C, HW, GN_GROUPS, GN_EPS, a->norm.g, a->norm.b, hn);
    if ((r = conv(ex, &a->q, hn, H, W, q)) || (r = conv(ex, &a->k, hn, H, W, k)) || (r = conv(ex, &a->v, hn, H, W, v)))
        goto done;
    /* w[i][j] = Σc q[c][i] k[c][j] */
    vq_gemm(ex, 1, 0, HW, HW, C, q, HW, k, HW, 0.0f, w, HW);
    const float scale = 1.0f / sqrtf((float)C);
#pragma omp parallel for schedule(static) num_threads(vq_nt(ex))
    for (int i = 0; i < HW; i++) {
        float *row = w + (size_t)i * HW;
        for (int j = 0; j < HW; j++) row[j] *= scale;
        vq_softmax(row, HW);
    }
    /* hn[c][i] = Σj v[c][j] w[i][j] */
    vq_gemm(ex, 0, 1, C, HW, HW, v, HW, w, HW, 0.0f, hn, HW);
    if ((r = conv(ex, &a->proj_out, hn, H, W, q))) goto done;
    vq_add(ex, x, q, (size_t)C * HW);
done:
    vq_scratch_free(hn); vq_scratch_free(q); vq_scratch_free(k); vq_scratch_free(v); vq_scratch_free(w);
    return r;
}

/* Replace *x (c×H×W) by resblock(*x), reallocating for the new channel count. */
static int step_resblock(const struct vq_exec *ex, const struct vq_resblock *b, float **x, int H, int W)
{
    float *y = vq_scratch_alloc(sizeof(float) * (size_t)b->conv1.cout * H * W);
    if (!y) return nomem();
    int r = resblock(ex, b, *x, H, W, y);
    vq_scratch_free(*x);
    *x = y;
    return r;
}

static int step_conv(const struct vq_exec *ex, const struct vq_conv *c, float **x, int H, int W)
{
    float *y = vq_scratch_alloc(sizeof(float) * (size_t)c->cout * H * W);
    if (!y) return nomem();
    int r = conv(ex, c, *x, H, W, y);
    vq_scratch_free(*x);
    *x = y;
    return r;
}

/* Pad right and bottom by one, 3×3 convolution with stride 2. */
static int step_downsample(const struct vq_exec *ex, const struct vq_conv *c, float **x, int *H, int *W)
{
    const int Ho = (*H + 1 - 3) / 2 + 1, Wo = (*W + 1 - 3) / 2 + 1;
    float *y = vq_scratch_alloc(sizeof(float) * (size_t)c->cout * Ho * Wo);
    if (!y) return nomem();
    int r = vq_conv2d(ex, *x, c->cin, *H, *W, c->w, c->b, c->cout, 3, 2, 0, 0, 1, 1, y);
    vq_scratch_free(*x);
    *x = y;
    *H = Ho;
    *W = Wo;
    return r;
}

/* Nearest ×2, then 3×3 convolution. */
static int step_upsample(const struct vq_exec *ex, const struct vq_conv *c, float **x, int *H, int *W)
{
    float *u = vq_scratch_alloc(sizeof(float) * (size_t)c->cin * 4 * *H * *W);
    if (!u) return nomem();
    vq_upsample2x(ex, *x, c->cin, *H, *W, u);
    vq_scratch_free(*x);
    *x = u;
    *H *= 2;
    *W *= 2;
    return step_conv(ex, c, x, *H, *W);
}

static int step_norm_out(const struct vq_exec *ex, const struct vq_norm *n, float *x, int HW)
{
    norm_swish(ex, n, x, HW, x);
    return 0;
}

/* Encoder from after conv_in, then quant_conv. *x is ch×H×W. */
/* *n: the floats of the result (quant_conv's channels x the last H x W) */
static int encode_rest(const struct vq_exec *ex, const struct vq_stage *s, float **x, int H, int W, size_t *n)
{
    const struct vq_coder *e = &s->enc;
    int r = 0;
    for (int l = 0; l < e->n_level && !r; l++) {
        const struct vq_level *lv = &e->level[l];
        for (int b = 0; b < lv->n_block && !r; b++) {
            r = step_resblock(ex, &lv->block[b], x, H, W);
            if (!r && lv->has_attn) r = attnblock(ex, &lv->attn[b], *x, H, W);
        }
        if (!r && lv->has_resample) r = step_downsample(ex, &lv->resample, x, &H, &W);
    }
    if (!r) r = step_resblock(ex, &e->mid_block_1, x, H, W);
    if (!r) r = attnblock(ex, &e->mid_attn_1, *x, H, W);
    if (!r) r = step_resblock(ex, &e->mid_block_2, x, H, W);
    if (!r) r = step_norm_out(ex, &e->norm_out, *x, H * W);
    if (!r) r = step_conv(ex, &e->conv_out, x, H, W);
    if (!r) r = step_conv(ex, &s->quant_conv, x, H, W);
    *n = (size_t)s->quant_conv.cout * H * W;
    return r;
}

static int stage_encode(const struct vq_exec *ex, const struct vq_stage *s, const float *in, int H, int W, float **out, size_t *n)
{
    float *x = vq_scratch_alloc(sizeof(float) * (size_t)s->ch * H * W);
    int r;
    *out = NULL;
    if (!x) return nomem();
    r = conv(ex, &s->enc.conv_in, in, H, W, x);
    if (!r) r = encode_rest(ex, s, &x, H, W, n);
    if (r) { vq_scratch_free(x); return r; }
    *out = x;
    return 0;
}

static int stage_encode_labels(const struct vq_exec *ex, const struct vq_stage *s, const uint8_t *ids, ptrdiff_t stride,
                               int H, int W, float **out, size_t *n)
{
    const struct vq_conv *c = &s->enc.conv_in;
    const int C = c->cout, L = c->cin;
    /* lut[(l·3 + ky)·3 + kx][o] = weight[o][l][ky][kx] */
    float *lut = vq_scratch_alloc(sizeof(float) * (size_t)L * 9 * C);
    float *x = vq_scratch_alloc(sizeof(float) * (size_t)C * H * W);
    /* one accumulator row per thread, allocated up front: a failure is an
     * error, not rows silently left out */
    const int nt = vq_nt(ex);
    float *accs = vq_scratch_alloc(sizeof(float) * (size_t)C * nt);
    *out = NULL;
    if (!lut || !x || !accs) { vq_scratch_free(lut); vq_scratch_free(x); vq_scratch_free(accs); return nomem(); }
    for (int o = 0; o < C; o++)
        for (int t = 0; t < L * 9; t++)
            lut[(size_t)t * C + o] = c->w[(size_t)o * L * 9 + t];
#pragma omp parallel num_threads(nt)
    {
        float *acc = accs + (size_t)C * omp_get_thread_num();
#pragma omp for schedule(static)
        for (int y = 0; y < H; y++) {
            for (int xx = 0; xx < W; xx++) {
                memset(acc, 0, sizeof(float) * C);
                for (int ky = 0; ky < 3; ky++) {
                    const int iy = y + ky - 1;
                    if (iy < 0 || iy >= H) continue;
                    for (int kx = 0; kx < 3; kx++) {
                        const int ix = xx + kx - 1;
                        if (ix < 0 || ix >= W) continue;
                        const float *wv = lut + ((size_t)(ids[iy * stride + ix] * 3 + ky) * 3 + kx) * C;
                        for (int o = 0; o < C; o++) acc[o] += wv[o];
                    }
                }
                for (int o = 0; o < C; o++)
                    x[((size_t)o * H + y) * W + xx] = acc[o] + c->b[o];
            }
        }
    }
    vq_scratch_free(accs);
    vq_scratch_free(lut);
    int r = encode_rest(ex, s, &x, H, W, n);
    if (r) { vq_scratch_free(x); return r; }
    *out = x;
    return 0;
}

#define VQ_QUANT_BAND 1024

/* GumbelQuantize without its noise: logits = proj(z) (a 1x1 convolution),
 * token = argmax, lowest index on ties; logits (K x n) kept when asked. */
static int quantize_gumbel(const struct vq_exec *ex, const struct vq_stage *s, const float *z, int n, int32_t *idx, float *logits)
{
    const int D = s->embed_dim, K = s->n_embed;
    float *dot = malloc(sizeof(float) * (size_t)VQ_QUANT_BAND * K);
    if (!dot) return nomem();
    for (int i0 = 0; i0 < n; i0 += VQ_QUANT_BAND) {
        const int m = n - i0 < VQ_QUANT_BAND ? n - i0 : VQ_QUANT_BAND;
        /* dot[i][k] = Σd z[d][i0+i] proj[k][d] */
        vq_gemm(ex, 1, 1, m, K, D, z + i0, n, s->proj.w, D, 0.0f, dot, K);
#pragma omp parallel for schedule(static) num_threads(vq_nt(ex))
        for (int i = 0; i < m; i++) {
            const float *row = dot + (size_t)i * K;
            float best = -FLT_MAX;
            int arg = 0;
            for (int k = 0; k < K; k++) {
                const float l = row[k] + s->proj.b[k];
                if (logits) logits[(size_t)k * n + i0 + i] = l;
                if (l > best) { best = l; arg = k; }
            }
            idx[i0 + i] = arg;
        }
    }
    free(dot);
    return 0;
}

int vq_quantize_logits(const struct vq_exec *ex, const struct vq_stage *s, const float *z, int n, int32_t *idx, float *logits)
{
    if (!s->gumbel) return vq_error(VQGAN_ERR_UNSUPPORTED, "the stage's quantizer has no logits (not gumbel)");
    return quantize_gumbel(ex, s, z, n, idx, logits);
}

int vq_quantize(const struct vq_exec *ex, const struct vq_stage *s, const float *z, int n, int32_t *idx)
{
    const int D = s->embed_dim, K = s->n_embed;
    if (s->gumbel) return quantize_gumbel(ex, s, z, n, idx, NULL);
    float *dot = malloc(sizeof(float) * (size_t)VQ_QUANT_BAND * K);
    if (!dot) return nomem();
    for (int i0 = 0; i0 < n; i0 += VQ_QUANT_BAND) {
        const int m = n - i0 < VQ_QUANT_BAND ? n - i0 : VQ_QUANT_BAND;
        /* dot[i][k] = Σd z[d][i0+i] e[k][d] */
        vq_gemm(ex, 1, 1, m, K, D, z + i0, n, s->codebook, D, 0.0f, dot, K);
#pragma omp parallel for schedule(static) num_threads(vq_nt(ex))
        for (int i = 0; i < m; i++) {
            float zz = 0.0f;
            for (int d = 0; d < D; d++) zz += z[(size_t)d * n + i0 + i] * z[(size_t)d * n + i0 + i];
            const float *row = dot + (size_t)i * K;
            float best = FLT_MAX;
            int arg = 0;
            for (int k = 0; k < K; k++) {
                const float dist = zz + s->codebook_norm2[k] - 2.0f * row[k];
                if (dist < best) { best = dist; arg = k; }
            }
            idx[i0 + i] = arg;
        }
    }
    free(dot);
    return 0;
}

static int stage_decode(const struct vq_exec *ex, const struct vq_stage *s, const int32_t *tokens, int gw, int gh, float **out, size_t *n_out)
{
    const struct vq_coder *d = &s->dec;
    const int D = s->embed_dim, n = gw * gh;
    int H = gh, W = gw, r = 0;
    float *x = vq_scratch_alloc(sizeof(float) * (size_t)D * n);
    *out = NULL;
    if (!x) return nomem();
    for (int i = 0; i < n; i++)
        for (int c = 0; c < D; c++)
            x[(size_t)c * n + i] = s->codebook[(size_t)tokens[i] * D + c];
    r = step_conv(ex, &s->post_quant_conv, &x, H, W);
    if (!r) r = step_conv(ex, &d->conv_in, &x, H, W);
    if (!r) r = step_resblock(ex, &d->mid_block_1, &x, H, W);
    if (!r) r = attnblock(ex, &d->mid_attn_1, x, H, W);
    if (!r) r = step_resblock(ex, &d->mid_block_2, &x, H, W);
    for (int l = d->n_level - 1; l >= 0 && !r; l--) {
        const struct vq_level *lv = &d->level[l];
        for (int b = 0; b < lv->n_block && !r; b++) {
            r = step_resblock(ex, &lv->block[b], &x, H, W);
            if (!r && lv->has_attn) r = attnblock(ex, &lv->attn[b], x, H, W);
        }
        if (!r && lv->has_resample) r = step_upsample(ex, &lv->resample, &x, &H, &W);
    }
    if (!r) r = step_norm_out(ex, &d->norm_out, x, H * W);
    if (!r) r = step_conv(ex, &d->conv_out, &x, H, W);
    if (r) { vq_scratch_free(x); return r; }
    *n_out = (size_t)d->conv_out.cout * H * W;
    *out = x;
    return 0;
}

/* ---- entry points: working buffers reused within the call, and kept for
 * the next call where ex->keep says (scratch.h); the result is handed over
 * in memory of its own (the caller frees it) ---------------------------------- */

static void stage_begin(const struct vq_exec *ex)
{
    if (ex && ex->keep)
        vq_scratch_begin_kept();
    else
        vq_scratch_begin();
}

/* *out = a malloc copy of the scratch buffer x (n floats), x freed. */
static int hand_over(float *x, size_t n, float **out)
{
    *out = malloc(sizeof(float) * n);
    if (*out) memcpy(*out, x, sizeof(float) * n);
    vq_scratch_free(x);
    return *out ? 0 : nomem();
}

int vq_stage_encode(const struct vq_exec *ex, const struct vq_stage *s, const float *in, int H, int W, float **out)
{
    float *x = NULL;
    size_t n = 0;
    stage_begin(ex);
    int r = stage_encode(ex, s, in, H, W, &x, &n);
    if (!r) r = hand_over(x, n, out);
    vq_scratch_end();
    return r;
}

int vq_stage_encode_labels(const struct vq_exec *ex, const struct vq_stage *s, const uint8_t *ids, ptrdiff_t stride, int H, int W,
                           float **out)
{
    float *x = NULL;
    size_t n = 0;
    stage_begin(ex);
    int r = stage_encode_labels(ex, s, ids, stride, H, W, &x, &n);
    if (!r) r = hand_over(x, n, out);
    vq_scratch_end();
    return r;
}

int vq_stage_decode(const struct vq_exec *ex, const struct vq_stage *s, const int32_t *tokens, int gw, int gh, float **out)
{
    float *x = NULL;
    size_t n = 0;
    stage_begin(ex);
    int r = stage_decode(ex, s, tokens, gw, gh, &x, &n);
    if (!r) r = hand_over(x, n, out);
    vq_scratch_end();
    return r;
}

/* ---- working memory ----------------------------------------------------------- */

#define F ((double)sizeof(float))
/* as ops.c's VQ_IM2COL_BAND_BYTES */
#define IM2COL_BAND ((double)(32u << 20))

static void peak(double *p, double v) { if (v > *p) *p = v; }

/* What one k×k convolution allocates besides its input and output: the
 * im2col band (portable path), or oneDNN's copies of the input and output in
 * its blocked layouts (the larger of the two). Ho×Wo output. */
static double col_bytes(int cin, int cout, int k, int stride, double Ho, double Wo)
{
    const double Hi = (Ho - 1) * stride + 1, Wi = (Wo - 1) * stride + 1;
    const double dnnl = ((double)cin * Hi * Wi + (double)cout * Ho * Wo) * F;
    if (k == 1 && stride == 1) return dnnl;
    const double row = (double)cin * k * k * Wo * F;
    double band = row > IM2COL_BAND ? row : IM2COL_BAND;
    band = band < row * Ho ? band : row * Ho;
    return band > dnnl ? band : dnnl;
}

/* step_resblock: x (cin), y (cout), t (max), h (cout), an im2col band */
static double resblock_bytes(const struct vq_resblock *b, double H, double W)
{
    const int cin = b->conv1.cin, cout = b->conv1.cout, mx = cin > cout ? cin : cout;
    const double c1 = col_bytes(cin, cout, 3, 1, H, W), c2 = col_bytes(cout, cout, 3, 1, H, W);
    return ((double)cin + cout + mx + cout) * H * W * F + (c1 > c2 ? c1 : c2);
}

/* attnblock: x, hn, q, k, v (C×HW each), w (HW×HW), a 1×1 convolution's copies */
static double attn_bytes(const struct vq_attnblock *a, double HW, double *attn)
{
    peak(attn, HW * HW * F);
    return 7.0 * a->norm.c * HW * F + HW * HW * F;
}

/* Mirrors the allocations of vq_stage_encode / _labels / vq_quantize /
 * vq_stage_decode above, level by level; bytes held by the caller (the f32
 * input, the decoded picture) are included. */
double vq_stage_work_bytes(const struct vq_stage *s, int kind, int width, int height, double *attn_out)
{
    double p = 0.0, attn = 0.0, H, W, base;
    if (kind != VQ_WORK_DECODE) {
        const struct vq_coder *e = &s->enc;
        H = height;
        W = width;
        /* the input: f32 pixels held throughout; label ids are the caller's,
         * their lookup table lives only through the first layer */
        base = kind == VQ_WORK_ENCODE ? (double)s->in_channels * H * W * F : 0.0;
        if (kind == VQ_WORK_ENCODE)
            peak(&p, base + (double)e->conv_in.cout * H * W * F + col_bytes(e->conv_in.cin, e->conv_in.cout, 3, 1, H, W));
        else
            peak(&p, (double)e->conv_in.cin * 9 * e->conv_in.cout * F + (double)e->conv_in.cout * H * W * F);
        for (int l = 0; l < e->n_level; l++) {
            const struct vq_level *lv = &e->level[l];
            for (int b = 0; b < lv->n_block; b++) {
                peak(&p, base + resblock_bytes(&lv->block[b], H, W));
                if (lv->has_attn) peak(&p, base + attn_bytes(&lv->attn[b], H * W, &attn));
            }
            if (lv->has_resample) {
                const double Ho = floor((H + 1 - 3) / 2) + 1, Wo = floor((W + 1 - 3) / 2) + 1;
                peak(&p, base + ((double)lv->resample.cin * H * W + (double)lv->resample.cout * Ho * Wo) * F +
                             col_bytes(lv->resample.cin, lv->resample.cout, 3, 2, Ho, Wo));
                H = Ho;
                W = Wo;
            }
        }
        peak(&p, base + resblock_bytes(&e->mid_block_1, H, W));
        peak(&p, base + attn_bytes(&e->mid_attn_1, H * W, &attn));
        peak(&p, base + resblock_bytes(&e->mid_block_2, H, W));
        peak(&p, base + ((double)e->conv_out.cin + e->conv_out.cout) * H * W * F +
                     col_bytes(e->conv_out.cin, e->conv_out.cout, 3, 1, H, W));
        peak(&p, base + ((double)s->quant_conv.cin + s->quant_conv.cout) * H * W * F * 2.0);
        /* quantizer: the encoder output, a band of distances, the tokens */
        peak(&p, base + (double)s->embed_dim * H * W * F + (double)VQ_QUANT_BAND * s->n_embed * F + H * W * 4);
    } else {
        const struct vq_coder *d = &s->dec;
        H = height;
        W = width;
        peak(&p, ((double)s->embed_dim + s->post_quant_conv.cout) * H * W * F * 2.0);
        peak(&p, ((double)d->conv_in.cin + d->conv_in.cout) * H * W * F + col_bytes(d->conv_in.cin, d->conv_in.cout, 3, 1, H, W));
        peak(&p, resblock_bytes(&d->mid_block_1, H, W));
        peak(&p, attn_bytes(&d->mid_attn_1, H * W, &attn));
        peak(&p, resblock_bytes(&d->mid_block_2, H, W));
        for (int l = d->n_level - 1; l >= 0; l--) {
            const struct vq_level *lv = &d->level[l];
            for (int b = 0; b < lv->n_block; b++) {
                peak(&p, resblock_bytes(&lv->block[b], H, W));
                if (lv->has_attn) peak(&p, attn_bytes(&lv->attn[b], H * W, &attn));
            }
            if (lv->has_resample) {
                const int c = lv->resample.cin;
                peak(&p, (double)c * H * W * F * 5.0);         /* x and the ×2 copy */
                H *= 2;
                W *= 2;
                peak(&p, ((double)c + lv->resample.cout) * H * W * F + col_bytes(c, lv->resample.cout, 3, 1, H, W));
            }
        }
        peak(&p, ((double)d->conv_out.cin + d->conv_out.cout) * H * W * F + col_bytes(d->conv_out.cin, d->conv_out.cout, 3, 1, H, W));
    }
    if (attn_out) *attn_out = attn;
    return p;
}
#undef F

#define GIB(x) ((x) / (double)(1u << 30))

int vq_stage_check_work(const struct vq_stage *s, int kind, int width, int height, double extra, const char *what)
{
    double attn = 0.0;
    const double need = vq_stage_work_bytes(s, kind, width, height, &attn) + extra;
    double lim = (double)VQGAN_MAX_WORK_BYTES;
    const char *which = "VQGAN_MAX_WORK_BYTES", *rl = "";
    const double plim = vq_process_memory_limit(&rl);
    char rname[48];
    if (plim > 0.0 && plim < lim) {
        lim = plim;
        snprintf(rname, sizeof(rname), "this process's %s", rl);
        which = rname;
    }
    if (need <= lim) return 0;
    char a[160] = "";
    if (attn > 0.0)
        snprintf(a, sizeof(a), "; its largest self-attention matrix alone is %.1f GiB", GIB(attn));
    return vq_error(VQGAN_ERR_LIMIT, "%s: %s %dx%d needs about %.1f GiB of working memory%s, above the limit of "
                    "%.1f GiB (%s)", what, kind == VQ_WORK_DECODE ? "a token grid of" : "a frame of", width, height,
                    GIB(need), a, GIB(lim), which);
}
