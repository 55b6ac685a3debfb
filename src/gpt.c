/* The minGPT transformer, one sequence at a time, with a KV cache. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "backend.h"
#include "backend_int8.h"
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
    /* room for a whole window whatever cap is (a cache touches only its
     * first cache_bytes(cap), and the rest is never faulted in), so that
     * any placement's cache can take the block another one freed in the
     * same sampling call: placements at a frame's top edge need fewer
     * positions than those below them, whose caches would otherwise all
     * be fresh mappings, faulted in and zeroed (scratch.h) */
    const size_t used = cache_bytes(gpt, cap, c->bf16), whole = cache_bytes(gpt, gpt->block, c->bf16);
    c->kv = vq_scratch_alloc(whole);
    if (!c->kv && whole > used) c->kv = vq_scratch_alloc(used);
    if (!c->kv)
        return vq_error(VQGAN_ERR_NOMEM, "transformer cache of %d positions: out of memory", cap);
    c->n_layer = gpt->n_layer;
    c->n_embd = gpt->n_embd;
    c->cap = cap;
    return 0;
}

void vq_kv_cache_copy_prefix(const struct vq_exec *ex, struct vq_kv_cache *dst, const struct vq_kv_cache *src, int k)
{
    VQ_OMP_ONLY(ex);
    /* keys: k positions of every dimension (fp32, Kᵀ[D][rows]) or of every
     * pair of dimensions (bf16, [D/2][rows][2]): 4 bytes a position either
     * way; values: the first k rows (fp32) or pairs of rows (bf16), one block.
     * The layers' copies shared by the threads: one thread alone left the
     * other waiting 0.6-0.9 % of a frame (the copy's pages fresh each time). */
    const int bf = dst->bf16, D = dst->n_embd, lines = bf ? D / 2 : D;
    const size_t line = (size_t)k * 4, vbytes = (size_t)(bf ? (k + 1) & ~1 : k) * D * (bf ? 2 : 4);
    const size_t sld = (size_t)vq_kv_cache_rows(src) * 4, dld = (size_t)vq_kv_cache_rows(dst) * 4;
#pragma omp parallel for schedule(static) if (dst->n_layer > 1 && (line * lines + vbytes) * dst->n_layer >= (1 << 20)) \
    num_threads(vq_nt(ex))
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

int vq_gpt_batchable(const struct vq_exec *ex, const struct vq_gpt *gpt)
{
    const struct vq_gpt_block *b = &gpt->blocks[0];
    const struct vq_exec e = gpt_exec(gpt, ex);
    const struct vq_packed *pk[7] = { b->q_p, b->k_p, b->v_p, b->proj_p, b->fc_p, b->fc2_p, gpt->head_p };
    if (e.be->kind == VQ_BACKEND_REF)
        return 0;
    for (int i = 0; i < 7; i++)
        if (!vq_linear_small_any(&e, pk[i]))
            return 0;
    return 1;
}

/* Scratch for one call: n rows of activations, per-head score matrices;
 * xb: ln1's output rounded to bf16 once for the key, value and query
 * products (bf16 backends, vq_linear_bf16_input), [n][D]. */
struct gpt_scratch {
    float *x, *xn, *q, *y, *tmp, *h, *att, *lg;
    uint16_t *xb;
};

/* ln1's output as the key, value and query products take it: fp32 rows
 * (xn), rounded to bf16 (xb: the bf16 backends, vq_linear_bf16_input) or
 * quantized (x8: int8 products, vq_linear_int8_input), [n][D] each. */
enum { IN_F32, IN_BF16, IN_INT8 };
struct rows_in {
    int kind;
    const float *xn;
    const uint16_t *xb;
    const struct vq_int8_rows *x8;
};

/* y = x · Wᵀ + b for rows r0 .. r0 + T - 1 of the input in its form. */
static int linear_in(const struct vq_exec *ex, const struct rows_in *in, int r0, int T, int Din, const float *W,
                     const struct vq_packed *pk, const float *b, int Dout, float *y)
{
    switch (in->kind) {
    case IN_INT8:
        return vq_linear_int8(ex, in->x8, r0, T, pk, b, 0, y);
    case IN_BF16:
        if (vq_linear_bf16(ex, in->xb + (size_t)r0 * Din, T, pk, b, y))
            return vq_error(VQGAN_ERR_NOMEM, "product of %d rows, %d -> %d: out of memory", T, Din, Dout);
        return 0;
    default:
        vq_linear(ex, in->xn + (size_t)r0 * Din, T, Din, W, pk, b, Dout, y);
        return 0;
    }
}

static int check_tokens(const struct vq_gpt *gpt, const int32_t *tokens, int n)
{
    for (int r = 0; r < n; r++)
        if (tokens[r] < 0 || tokens[r] >= gpt->vocab)
            return vq_error(VQGAN_ERR_INVALID, "transformer input token %d (at %d) is outside the vocabulary 0..%d",
                            tokens[r], r, gpt->vocab - 1);
    return 0;
}

static int check_seq(const struct vq_gpt *gpt, const struct vq_gpt_seq *q)
{
    const struct vq_kv_cache *cache = q->cache;
    const int D = gpt->n_embd, n = q->n, L0 = cache->len, T = L0 + n;
    if (n < 1 || q->first_row < 0 || q->first_row > n)
        return vq_error(VQGAN_ERR_INVALID, "transformer forward of %d positions, logits from row %d", n, q->first_row);
    if (cache->n_layer != gpt->n_layer || cache->n_embd != D || !cache->kv ||
        (cache->bf16 && !vq_attention_bf16_kernel(gpt->be, D / gpt->n_head)))
        return vq_error(VQGAN_ERR_INVALID, "transformer cache does not match the model");
    if (T > cache->cap)
        return vq_error(VQGAN_ERR_LIMIT, "transformer cache full: %d + %d positions, room for %d (block %d)",
                        L0, n, cache->cap, gpt->block);
    if (L0 < gpt->n_unmasked && T < gpt->n_unmasked)
        return vq_error(VQGAN_ERR_INVALID, "the first %d positions see each other (n_unmasked) and must be fed "
                        "together; got positions %d..%d", gpt->n_unmasked, L0, T - 1);
    return check_tokens(gpt, q->tokens, n);
}

/* Where a sequence's rows sit in the call: its rows start at row0 (every
 * layer but the last), its output rows at out0 (the last layer: the rows of
 * every sequence's logits, one after the other); the last layer runs its
 * rows from skip on. */
struct seq_rows {
    int row0, out0, skip;
};

/* Moves each sequence's output rows (its rows from skip on) of a row-major
 * array of width d next to the previous sequence's: the last layer's rows. */
static void compact_rows(void *a, size_t d, const struct vq_gpt_seq *seq, const struct seq_rows *at, int n_seq)
{
    for (int i = 0; i < n_seq; i++) {
        const int m = seq[i].n - at[i].skip;
        if (m > 0 && at[i].out0 != at[i].row0 + at[i].skip)
            memmove((char *)a + at[i].out0 * d, (char *)a + (at[i].row0 + at[i].skip) * d, (size_t)m * d);
    }
}

/* 1 when n_seq sequences (n_out output rows in all) can share products of
 * many rows: each of at least VQ_ROWS_INDEPENDENT_FROM rows, products whose
 * rows are independent from there on, and at most VQ_SMALL_ROWS output rows,
 * which then take the few-rows kernels alone or together. */
static int batch_large(const struct vq_exec *ex, const struct vq_gpt *gpt, const struct vq_gpt_seq *seq, int n_seq,
                       int n_out)
{
    for (int i = 0; i < n_seq; i++)
        if (seq[i].n < VQ_ROWS_INDEPENDENT_FROM) return 0;
    return n_out <= VQ_SMALL_ROWS && vq_gpt_rows_independent(ex, gpt);
}

/* The forward of n_seq sequences whose rows go through the products
 * together (vq_gpt_forward_batch; one sequence: vq_gpt_forward). */
static int forward(const struct vq_exec *exec, const struct vq_gpt *gpt, const struct vq_gpt_seq *seq, int n_seq)
{
    const int D = gpt->n_embd;
    struct vq_exec e = gpt_exec(gpt, exec);
    const struct vq_exec *ex = &e;
    struct seq_rows at[VQ_GPT_MAX_BATCH];
    int n = 0, n_out = 0, att_rows = 0, att_keys = 0, r, err = 0;

    if (n_seq < 1 || n_seq > VQ_GPT_MAX_BATCH)
        return vq_error(VQGAN_ERR_INVALID, "transformer forward of %d sequences (1..%d)", n_seq, VQ_GPT_MAX_BATCH);
    for (int i = 0; i < n_seq; i++) {
        if ((r = check_seq(gpt, &seq[i])))
            return r;
        for (int k = 0; k < i; k++)
            if (seq[k].cache == seq[i].cache)
                return vq_error(VQGAN_ERR_INVALID, "transformer forward: one cache fed twice in a call");
        at[i].skip = seq[i].logits ? seq[i].first_row : seq[i].n;
        at[i].row0 = n;
        at[i].out0 = n_out;
        n += seq[i].n;
        n_out += seq[i].n - at[i].skip;
        if (seq[i].n > att_rows) att_rows = seq[i].n;
        if (seq[i].cache->len + seq[i].n > att_keys) att_keys = seq[i].cache->len + seq[i].n;
    }
    if (n_seq > 1) {
        /* each product gives every row the bits it has in a call of its
         * own sequence: small sequences, the few-rows kernels whatever the
         * call's rows; large ones, products of at least
         * VQ_ROWS_INDEPENDENT_FROM rows in both, whose rows are independent
         * (vq_gpt_rows_independent), and the last layer's few output rows on
         * the few-rows kernels in both */
        const int large = batch_large(exec, gpt, seq, n_seq, n_out);
        if ((!large && att_rows > VQ_SMALL_ROWS) || !vq_gpt_batchable(exec, gpt))
            return vq_error(VQGAN_ERR_INVALID, "transformer forward: these %d sequences cannot share the products",
                            n_seq);
        if (!large) e.small_rows = n;
    }
    struct gpt_scratch s;
    const size_t nd = (size_t)n * D;
    const size_t n_lg = n_seq > 1 ? (size_t)n_out * gpt->vocab : 0;   /* the batch's logits */
    const size_t nf = 5 * nd + 4 * nd + (size_t)gpt->n_head * att_rows * att_keys + n_lg;
    float *buf = vq_scratch_alloc(sizeof(float) * nf + sizeof(uint16_t) * nd);
    if (!buf)
        return vq_error(VQGAN_ERR_NOMEM, "transformer forward of %d positions: out of memory", n);
    s.x = buf;
    s.xn = s.x + nd;
    s.q = s.xn + nd;
    s.y = s.q + nd;
    s.tmp = s.y + nd;
    s.h = s.tmp + nd;            /* [n][4D] */
    s.att = s.h + 4 * nd;        /* [n_head][rows][keys] of one sequence */
    s.lg = s.att + (size_t)gpt->n_head * att_rows * att_keys;   /* [n_out][vocab] */
    s.xb = (uint16_t *)(buf + nf);

    /* embeddings */
    for (int i = 0; i < n_seq; i++)
        for (int t = 0; t < seq[i].n; t++) {
            const float *te = gpt->tok_emb + (size_t)seq[i].tokens[t] * D;
            const float *pe = gpt->pos_emb + (size_t)(seq[i].cache->len + t) * D;
            float *x = s.x + (size_t)(at[i].row0 + t) * D;
            for (int k = 0; k < D; k++)
                x[k] = te[k] + pe[k];
        }

    /* int8 products' quantized input, held from a layer norm to its last
     * product; freed there, or after the loop where an error cut it short */
    struct vq_int8_rows x8 = { 0 };
    for (int l = 0; l < gpt->n_layer; l++) {
        const struct vq_gpt_block *b = &gpt->blocks[l];
        /* the last layer needs every row's keys and values (for the cache),
         * but queries, attention and MLP for the output rows only: one
         * sequence's last rows (x from row r0), or every sequence's, moved
         * together (compact_rows); q and y hold them from row 0 */
        const int last = l == gpt->n_layer - 1, m = last ? n_out : n, r0 = last && n_seq == 1 ? at[0].skip : 0;
        const size_t md = (size_t)m * D;
        float *x = s.x + (size_t)r0 * D, *xn = s.xn + (size_t)r0 * D;

        /* x += proj(attention(ln1(x))); new keys/values go to the caches;
         * with bf16 products, ln1(x) is written in bf16 only, once for k, v
         * and q */
        const int qkv_bf16 = vq_linear_bf16_input(ex, b->k_p) && vq_linear_bf16_input(ex, b->v_p) &&
                             vq_linear_bf16_input(ex, b->q_p);
        const int mlp_bf16 = vq_linear_bf16_input(ex, b->proj_p) && vq_linear_bf16_input(ex, b->fc_p) &&
                             vq_linear_bf16_input(ex, b->fc2_p);
        /* with int8 products, ln1(x) is quantized once for k, v and q */
        const int qkv_int8 = vq_linear_int8_input(ex, b->k_p) && vq_linear_int8_input(ex, b->v_p) &&
                             vq_linear_int8_input(ex, b->q_p);
        if (qkv_bf16) vq_layer_norm_bf16(ex, s.x, n, D, b->ln1_w, b->ln1_b, LN_EPS, s.xb);
        else if (qkv_int8) err = vq_layer_norm_int8(ex, s.x, n, D, b->ln1_w, b->ln1_b, LN_EPS, b->k_p, &x8);
        else vq_layer_norm(ex, s.x, n, D, b->ln1_w, b->ln1_b, LN_EPS, s.xn);
        if (err) break;
        const struct rows_in in = { qkv_bf16 ? IN_BF16 : qkv_int8 ? IN_INT8 : IN_F32, s.xn, s.xb, &x8 };
        if ((err = linear_in(ex, &in, 0, n, D, b->k_w, b->k_p, b->k_b, D, s.tmp))) break;
        for (int i = 0; i < n_seq; i++) {
            const struct vq_kv_cache *c = seq[i].cache;
            const float *ki = s.tmp + (size_t)at[i].row0 * D;
            if (c->bf16) vq_store_keys_bf16(ex, ki, seq[i].n, D, vq_kv_cache_k(c, l), vq_kv_cache_rows(c), c->len);
            else vq_transpose_keys(ex, ki, seq[i].n, D, (float *)vq_kv_cache_k(c, l) + c->len, vq_kv_cache_rows(c));
        }
        /* one fp32 cache takes its values straight from the product */
        const struct vq_kv_cache *c0 = seq[0].cache;
        float *v_out = n_seq == 1 && !c0->bf16 ? (float *)vq_kv_cache_v(c0, l) + (size_t)c0->len * D : s.tmp;
        if ((err = linear_in(ex, &in, 0, n, D, b->v_w, b->v_p, b->v_b, D, v_out))) break;
        for (int i = 0; i < n_seq && v_out == s.tmp; i++) {
            const struct vq_kv_cache *c = seq[i].cache;
            const float *vi = s.tmp + (size_t)at[i].row0 * D;
            if (c->bf16) vq_store_values_bf16(ex, vi, seq[i].n, D, vq_kv_cache_v(c, l), c->len);
            else memcpy((float *)vq_kv_cache_v(c, l) + (size_t)c->len * D, vi, sizeof(float) * (size_t)seq[i].n * D);
        }
        if (!m)
            break;
        if (last && n_seq > 1) {
            compact_rows(s.x, sizeof(float) * D, seq, at, n_seq);
            if (qkv_bf16) {
                compact_rows(s.xb, sizeof(uint16_t) * D, seq, at, n_seq);
            } else if (qkv_int8) {
                compact_rows(x8.q, (size_t)x8.ld, seq, at, n_seq);
                compact_rows(x8.sx, sizeof(float), seq, at, n_seq);
                compact_rows(x8.zx, sizeof(int32_t), seq, at, n_seq);
            } else {
                compact_rows(s.xn, sizeof(float) * D, seq, at, n_seq);
            }
        }
        err = linear_in(ex, &in, r0, m, D, b->q_w, b->q_p, b->q_b, D, s.q);
        vq_int8_rows_free(&x8);
        if (err) break;
        /* attention's output rounded to bf16 by the bf16 kernel itself when
         * it is the projection's input (into xb: free once q is done) */
        int y_bf16 = mlp_bf16;
        for (int i = 0; i < n_seq; i++)
            y_bf16 &= seq[i].cache->bf16;
        for (int i = 0; i < n_seq; i++) {
            const struct vq_kv_cache *c = seq[i].cache;
            const int skip = last ? at[i].skip : 0, mi = seq[i].n - skip;
            const size_t o = (size_t)(last ? at[i].out0 : at[i].row0) * D;
            if (mi <= 0) continue;
            if (c->bf16)
                vq_attention_bf16(ex, s.q + o, (uint16_t *)s.h, vq_kv_cache_k(c, l), vq_kv_cache_rows(c),
                                  vq_kv_cache_v(c, l), D, gpt->n_head, gpt->n_unmasked, c->len + skip, mi, s.att,
                                  y_bf16 ? NULL : s.y + o, s.xb + o);   /* s.h: free until the MLP */
            else
                vq_attention(ex, s.q + o, vq_kv_cache_k(c, l), vq_kv_cache_rows(c), vq_kv_cache_v(c, l), D,
                             gpt->n_head, gpt->n_unmasked, c->len + skip, mi, s.att, s.y + o);
        }
        /* x += mlp.2(gelu(mlp.0(ln2(x)))) after x += proj(y); with bf16
         * products, each input is rounded once, the hidden layer leaves its
         * product in bf16 (GELU fused) and both sums into x are the
         * products' own (vq_linear_bf16_add) */
        if (mlp_bf16) {
            uint16_t *hb = (uint16_t *)s.h;
            if (!y_bf16) vq_f32_to_bf16_par(vq_nt(ex), s.y, s.xb, md);
            if ((err = vq_linear_bf16_add(ex, s.xb, m, b->proj_p, b->proj_b, x))) break;
            vq_layer_norm_bf16(ex, x, m, D, b->ln2_w, b->ln2_b, LN_EPS, s.xb);
            if ((err = vq_linear_bf16_gelu(ex, s.xb, m, b->fc_p, b->fc_b, hb))) break;
            if ((err = vq_linear_bf16_add(ex, hb, m, b->fc2_p, b->fc2_b, x))) break;
            continue;
        }
        /* fp32 or int8 products: the adds and GELU fused where the backend
         * does (int8) */
        vq_linear_add(ex, s.y, m, D, b->proj_w, b->proj_p, b->proj_b, D, s.tmp, x);
        if (vq_linear_int8_input(ex, b->fc_p)) {   /* ln2(x) quantized as it is computed */
            if ((err = vq_layer_norm_int8(ex, x, m, D, b->ln2_w, b->ln2_b, LN_EPS, b->fc_p, &x8))) break;
            err = vq_linear_int8(ex, &x8, 0, m, b->fc_p, b->fc_b, VQ_EPI_GELU, s.h);
            vq_int8_rows_free(&x8);
            if (err) break;
        } else {
            vq_layer_norm(ex, x, m, D, b->ln2_w, b->ln2_b, LN_EPS, xn);
            vq_linear_gelu(ex, xn, m, D, b->fc_w, b->fc_p, b->fc_b, 4 * D, s.h);
        }
        vq_linear_add(ex, s.h, m, 4 * D, b->fc2_w, b->fc2_p, b->fc2_b, D, s.tmp, x);
    }
    vq_int8_rows_free(&x8);
    if (err) {
        vq_scratch_free(buf);
        return err;
    }
    for (int i = 0; i < n_seq; i++)
        seq[i].cache->len += seq[i].n;

    /* head(ln_f(x)) for the rows asked for only */
    const float *xr = s.x + (size_t)(n_seq == 1 ? at[0].skip : 0) * D;
    if (n_out > 0) {
        vq_layer_norm(ex, xr, n_out, D, gpt->lnf_w, gpt->lnf_b, LN_EPS, s.xn);
        float *lg = n_seq == 1 ? seq[0].logits : s.lg;
        vq_linear(ex, s.xn, n_out, D, gpt->head_w, gpt->head_p, NULL, gpt->vocab, lg);
        for (int i = 0; n_seq > 1 && i < n_seq; i++)
            if (seq[i].n > at[i].skip)
                memcpy(seq[i].logits, lg + (size_t)at[i].out0 * gpt->vocab,
                       sizeof(float) * (size_t)(seq[i].n - at[i].skip) * gpt->vocab);
    }
    vq_scratch_free(buf);
    return 0;
}

int vq_gpt_forward(const struct vq_exec *exec, const struct vq_gpt *gpt, struct vq_kv_cache *cache,
                   const int32_t *tokens, int n_new, int first_row, float *logits)
{
    const struct vq_gpt_seq q = { cache, tokens, n_new, first_row, logits };
    return forward(exec, gpt, &q, 1);
}

int vq_gpt_forward_batch(const struct vq_exec *exec, const struct vq_gpt *gpt, const struct vq_gpt_seq *seq,
                         int n_seq)
{
    return forward(exec, gpt, seq, n_seq);
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
