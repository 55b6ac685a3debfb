/* The minGPT transformer, one sequence at a time, with a KV cache. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "backend.h"
#include "error.h"
#include "gpt.h"
#include "ops.h"
#include "scratch.h"

#define LN_EPS 1e-5f

int vq_kv_cache_bf16(const struct vq_gpt *gpt)
{
    return gpt->be && gpt->be->precision != VQ_PREC_FP32 && vq_attention_bf16_kernel(gpt->be, gpt->n_embd / gpt->n_head);
}

/* The products on the transformer's backend, with the call's threads. */
static struct vq_exec gpt_exec(const struct vq_gpt *gpt, const struct vq_exec *ex)
{
    return vq_exec_make(gpt->be, ex ? ex->n_threads : 0);
}

static size_t cache_bytes(const struct vq_gpt *gpt, int cap, int bf16)
{
    const struct vq_kv_cache shape = { .n_embd = gpt->n_embd, .cap = cap, .bf16 = bf16 };
    return 2 * (size_t)gpt->n_layer * vq_kv_cache_block(&shape);
}

size_t vq_kv_cache_bytes(const struct vq_gpt *gpt, int cap)
{
    return cache_bytes(gpt, cap, vq_kv_cache_bf16(gpt));
}

int vq_kv_cache_init(struct vq_kv_cache *c, const struct vq_gpt *gpt, int cap)
{
    memset(c, 0, sizeof(*c));
    if (cap < 1 || cap > gpt->block)
        return vq_error(VQGAN_ERR_INVALID, "transformer cache of %d positions (block size %d)", cap, gpt->block);
    c->bf16 = vq_kv_cache_bf16(gpt);
    c->kv = vq_scratch_alloc(cache_bytes(gpt, cap, c->bf16));   /* reused within a sampling call */
    if (!c->kv)
        return vq_error(VQGAN_ERR_NOMEM, "transformer cache of %d positions: out of memory", cap);
    c->n_layer = gpt->n_layer;
    c->n_embd = gpt->n_embd;
    c->cap = cap;
    return 0;
}

void vq_kv_cache_copy_prefix(struct vq_kv_cache *dst, const struct vq_kv_cache *src, int k)
{
    /* keys: k positions of every dimension (fp32, Kᵀ[D][rows]) or of every
     * pair of dimensions (bf16, [D/2][rows][2]): 4 bytes a position either
     * way; values: the first k rows (fp32) or pairs of rows (bf16), one block */
    const int bf = dst->bf16, D = dst->n_embd, lines = bf ? D / 2 : D;
    const size_t line = (size_t)k * 4, vbytes = (size_t)(bf ? (k + 1) & ~1 : k) * D * (bf ? 2 : 4);
    const size_t sld = (size_t)vq_kv_cache_rows(src) * 4, dld = (size_t)vq_kv_cache_rows(dst) * 4;
    for (int l = 0; l < dst->n_layer; l++) {
        const char *sk = vq_kv_cache_k(src, l);
        char *dk = vq_kv_cache_k(dst, l);
        for (int d = 0; d < lines; d++)
            memcpy(dk + d * dld, sk + d * sld, line);
        memcpy(vq_kv_cache_v(dst, l), vq_kv_cache_v(src, l), vbytes);
    }
}

void vq_kv_cache_free(struct vq_kv_cache *c)
{
    vq_scratch_free(c->kv);
    memset(c, 0, sizeof(*c));
}

int vq_gpt_check(const struct vq_gpt *gpt)
{
    if (!gpt || !gpt->present)
        return vq_error(VQGAN_ERR_UNSUPPORTED, "the model has no transformer");
    if (gpt->vocab < 1 || gpt->block < 1 || gpt->n_layer < 1 || gpt->n_head < 1 || gpt->n_embd < 1 ||
        gpt->n_embd % gpt->n_head || gpt->n_unmasked < 0 || gpt->n_unmasked > gpt->block)
        return vq_error(VQGAN_ERR_INVALID, "transformer shape vocab %d, block %d, %d layers, %d heads, width %d, "
                        "n_unmasked %d is inconsistent", gpt->vocab, gpt->block, gpt->n_layer, gpt->n_head,
                        gpt->n_embd, gpt->n_unmasked);
    if (!gpt->tok_emb || !gpt->pos_emb || !gpt->blocks || !gpt->lnf_w || !gpt->lnf_b || !gpt->head_w)
        return vq_error(VQGAN_ERR_INVALID, "transformer weights missing");
    for (int l = 0; l < gpt->n_layer; l++) {
        const struct vq_gpt_block *b = &gpt->blocks[l];
        if (!b->ln1_w || !b->ln1_b || !b->ln2_w || !b->ln2_b || !b->q_w || !b->q_b || !b->k_w || !b->k_b ||
            !b->v_w || !b->v_b || !b->proj_w || !b->proj_b || !b->fc_w || !b->fc_b || !b->fc2_w || !b->fc2_b)
            return vq_error(VQGAN_ERR_INVALID, "transformer block %d: weights missing", l);
    }
    return 0;
}

int vq_gpt_pack(struct vq_gpt *gpt, const struct vq_backend *be)
{
    const int D = gpt->n_embd;
    int nomem = 0;
    vq_gpt_unpack(gpt);
    gpt->be = be;
    if (!be || !be->pack)
        return 0;
    for (int l = 0; l < gpt->n_layer && !nomem; l++) {
        struct vq_gpt_block *b = &gpt->blocks[l];
        b->q_p = vq_backend_pack(be, b->q_w, D, D, &nomem);
        if (!nomem) b->k_p = vq_backend_pack(be, b->k_w, D, D, &nomem);
        if (!nomem) b->v_p = vq_backend_pack(be, b->v_w, D, D, &nomem);
        if (!nomem) b->proj_p = vq_backend_pack(be, b->proj_w, D, D, &nomem);
        if (!nomem) b->fc_p = vq_backend_pack(be, b->fc_w, 4 * D, D, &nomem);
        if (!nomem) b->fc2_p = vq_backend_pack(be, b->fc2_w, D, 4 * D, &nomem);
    }
    if (!nomem) gpt->head_p = vq_backend_pack(be, gpt->head_w, gpt->vocab, D, &nomem);
    if (nomem) {
        vq_gpt_unpack(gpt);
        gpt->be = be;
        return VQGAN_ERR_NOMEM;
    }
    return 0;
}

void vq_gpt_unpack(struct vq_gpt *gpt)
{
    const struct vq_backend *be = gpt->be;
    for (int l = 0; gpt->blocks && l < gpt->n_layer; l++) {
        struct vq_gpt_block *b = &gpt->blocks[l];
        struct vq_packed **ps[6] = { &b->q_p, &b->k_p, &b->v_p, &b->proj_p, &b->fc_p, &b->fc2_p };
        for (int i = 0; i < 6; i++) {
            vq_backend_pack_free(be, *ps[i]);
            *ps[i] = NULL;
        }
    }
    vq_backend_pack_free(be, gpt->head_p);
    gpt->head_p = NULL;
    gpt->be = NULL;
}

int vq_gpt_rows_independent(const struct vq_exec *ex, const struct vq_gpt *gpt)
{
    const int D = gpt->n_embd;
    const struct vq_gpt_block *b = &gpt->blocks[0];
    const struct vq_exec e = gpt_exec(gpt, ex);
    if (e.be->kind == VQ_BACKEND_REF)
        return 1;
    /* every layer's products have one of these three shapes */
    return vq_attention_kernel(e.be, D / gpt->n_head) &&
           vq_linear_rows_independent(&e, b->k_w, b->k_p, b->k_b, D, D) &&
           vq_linear_rows_independent(&e, b->fc_w, b->fc_p, b->fc_b, 4 * D, D) &&
           vq_linear_rows_independent(&e, b->fc2_w, b->fc2_p, b->fc2_b, D, 4 * D);
}

/* Scratch for one call: n rows of activations, per-head score matrices;
 * xb: ln1's output rounded to bf16 once for the key, value and query
 * products (bf16 backends, vq_linear_bf16_input), [n][D]. */
struct gpt_scratch {
    float *x, *xn, *q, *y, *tmp, *h, *att;
    uint16_t *xb;
};

/* y = x · Wᵀ + b, from xb (x rounded to bf16) when the block's products take
 * bf16 input, else from x: the same bits either way. */
static void linear_in(const struct vq_exec *ex, int bf16_in, const float *x, const uint16_t *xb, int T, int Din,
                      const float *W, const struct vq_packed *pk, const float *b, int Dout, float *y)
{
    if (!bf16_in || vq_linear_bf16(ex, xb, T, pk, b, y))
        vq_linear(ex, x, T, Din, W, pk, b, Dout, y);
}

static int check_tokens(const struct vq_gpt *gpt, const int32_t *tokens, int n)
{
    for (int r = 0; r < n; r++)
        if (tokens[r] < 0 || tokens[r] >= gpt->vocab)
            return vq_error(VQGAN_ERR_INVALID, "transformer input token %d (at %d) is outside the vocabulary 0..%d",
                            tokens[r], r, gpt->vocab - 1);
    return 0;
}

int vq_gpt_forward(const struct vq_exec *exec, const struct vq_gpt *gpt, struct vq_kv_cache *cache,
                   const int32_t *tokens, int n_new, int first_row, float *logits)
{
    const int D = gpt->n_embd, n = n_new, L0 = cache->len, T = L0 + n_new;
    const struct vq_exec e = gpt_exec(gpt, exec), *ex = &e;
    int r;

    if (n < 1 || first_row < 0 || first_row > n)
        return vq_error(VQGAN_ERR_INVALID, "transformer forward of %d positions, logits from row %d", n, first_row);
    if (cache->n_layer != gpt->n_layer || cache->n_embd != D || !cache->kv ||
        (cache->bf16 && !vq_attention_bf16_kernel(gpt->be, D / gpt->n_head)))
        return vq_error(VQGAN_ERR_INVALID, "transformer cache does not match the model");
    if (T > cache->cap)
        return vq_error(VQGAN_ERR_LIMIT, "transformer cache full: %d + %d positions, room for %d (block %d)",
                        L0, n, cache->cap, gpt->block);
    if (L0 < gpt->n_unmasked && T < gpt->n_unmasked)
        return vq_error(VQGAN_ERR_INVALID, "the first %d positions see each other (n_unmasked) and must be fed "
                        "together; got positions %d..%d", gpt->n_unmasked, L0, T - 1);
    if ((r = check_tokens(gpt, tokens, n)))
        return r;

    struct gpt_scratch s;
    const size_t nd = (size_t)n * D;
    const size_t nf = 5 * nd + 4 * nd + (size_t)gpt->n_head * n * T;
    float *buf = vq_scratch_alloc(sizeof(float) * nf + sizeof(uint16_t) * nd);
    if (!buf)
        return vq_error(VQGAN_ERR_NOMEM, "transformer forward of %d positions: out of memory", n);
    s.x = buf;
    s.xn = s.x + nd;
    s.q = s.xn + nd;
    s.y = s.q + nd;
    s.tmp = s.y + nd;
    s.h = s.tmp + nd;            /* [n][4D] */
    s.att = s.h + 4 * nd;        /* [n_head][n][T] */
    s.xb = (uint16_t *)(buf + nf);

    /* embeddings */
    for (int t = 0; t < n; t++) {
        const float *te = gpt->tok_emb + (size_t)tokens[t] * D;
        const float *pe = gpt->pos_emb + (size_t)(L0 + t) * D;
        float *x = s.x + (size_t)t * D;
        for (int i = 0; i < D; i++)
            x[i] = te[i] + pe[i];
    }

    /* rows whose output is used after the last layer: the logits' rows */
    const int out0 = logits ? first_row : n;
    for (int l = 0; l < gpt->n_layer; l++) {
        const struct vq_gpt_block *b = &gpt->blocks[l];
        void *K = vq_kv_cache_k(cache, l), *V = vq_kv_cache_v(cache, l);
        const int ldk = vq_kv_cache_rows(cache);
        /* the last layer needs every row's keys and values (for the cache),
         * but queries, attention and MLP for the output rows only */
        const int r0 = l == gpt->n_layer - 1 ? out0 : 0, m = n - r0;
        const size_t md = (size_t)m * D;
        float *x = s.x + (size_t)r0 * D, *xn = s.xn + (size_t)r0 * D;

        /* x += proj(attention(ln1(x))); new keys/values go to the cache;
         * with bf16 products, ln1(x) is rounded once for k, v and q */
        const int qkv_bf16 = vq_linear_bf16_input(ex, b->k_p) && vq_linear_bf16_input(ex, b->v_p) &&
                             vq_linear_bf16_input(ex, b->q_p);
        vq_layer_norm(ex, s.x, n, D, b->ln1_w, b->ln1_b, LN_EPS, s.xn);
        if (qkv_bf16) vq_f32_to_bf16_par(vq_nt(ex), s.xn, s.xb, nd);
        const uint16_t *xbr = s.xb + (size_t)r0 * D;
        linear_in(ex, qkv_bf16, s.xn, s.xb, n, D, b->k_w, b->k_p, b->k_b, D, s.tmp);
        if (cache->bf16) {
            vq_store_keys_bf16(ex, s.tmp, n, D, K, ldk, L0);
            linear_in(ex, qkv_bf16, s.xn, s.xb, n, D, b->v_w, b->v_p, b->v_b, D, s.tmp);
            vq_store_values_bf16(ex, s.tmp, n, D, V, L0);
        } else {
            vq_transpose_keys(ex, s.tmp, n, D, (float *)K + L0, ldk);
            linear_in(ex, qkv_bf16, s.xn, s.xb, n, D, b->v_w, b->v_p, b->v_b, D, (float *)V + (size_t)L0 * D);
        }
        if (!m)
            break;
        linear_in(ex, qkv_bf16, xn, xbr, m, D, b->q_w, b->q_p, b->q_b, D, s.q);
        if (cache->bf16)
            vq_attention_bf16(ex, s.q, (uint16_t *)s.h, K, ldk, V, D, gpt->n_head, gpt->n_unmasked, L0 + r0, m,
                              s.att, s.y);   /* s.h: free until the MLP */
        else
            vq_attention(ex, s.q, K, ldk, V, D, gpt->n_head, gpt->n_unmasked, L0 + r0, m, s.att, s.y);
        vq_linear(ex, s.y, m, D, b->proj_w, b->proj_p, b->proj_b, D, s.tmp);
        vq_add(ex, x, s.tmp, md);

        /* x += mlp.2(gelu(mlp.0(ln2(x)))) */
        vq_layer_norm(ex, x, m, D, b->ln2_w, b->ln2_b, LN_EPS, xn);
        vq_linear(ex, xn, m, D, b->fc_w, b->fc_p, b->fc_b, 4 * D, s.h);
        vq_gelu(ex, s.h, 4 * md);
        vq_linear(ex, s.h, m, 4 * D, b->fc2_w, b->fc2_p, b->fc2_b, D, s.tmp);
        vq_add(ex, x, s.tmp, md);
    }
    cache->len = T;

    /* head(ln_f(x)) for the rows asked for only */
    const int m = n - first_row;
    if (logits && m > 0) {
        const float *xr = s.x + (size_t)first_row * D;
        vq_layer_norm(ex, xr, m, D, gpt->lnf_w, gpt->lnf_b, LN_EPS, s.xn);
        vq_linear(ex, s.xn, m, D, gpt->head_w, gpt->head_p, NULL, gpt->vocab, logits);
    }
    vq_scratch_free(buf);
    return 0;
}

int vq_gpt_logits_all(const struct vq_exec *ex, const struct vq_gpt *gpt, const int32_t *tokens, int n, float *logits)
{
    struct vq_kv_cache c;
    int r;
    if ((r = vq_kv_cache_init(&c, gpt, n)))
        return r;
    r = vq_gpt_forward(ex, gpt, &c, tokens, n, 0, logits);
    vq_kv_cache_free(&c);
    return r;
}
