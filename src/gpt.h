/* The transformer (taming/modules/transformer/mingpt.py) with a KV cache.
 *
 *   x = tok_emb[idx] + pos_emb[pos]
 *   per block:  x += proj(attention(ln1(x)));  x += mlp.2(gelu(mlp.0(ln2(x))))
 *   logits = head(ln_f(x))
 *
 * Attention is causal; the first n_unmasked positions also see each other.
 * A cache holds every layer's keys and values of the positions fed so far;
 * vq_gpt_forward appends positions to it. Feeding a sequence in one call
 * (prefill) or in several (decode) gives the same numbers within fp32
 * rounding, and the same call gives bit-identical results for any thread
 * count. */
#ifndef VQ_GPT_H
#define VQ_GPT_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "model.h"

/* Per layer, the keys then the values of every position fed, in one of two
 * layouts (attention.h):
 *  - fp32: keys transposed Kᵀ[n_embd][cap], values V[cap][n_embd];
 *  - bf16 (bf16 products with the AVX512_BF16 attention kernels): keys
 *    [n_embd/2][cap][2] (pairs of dimensions), values [cap/2][n_embd][2]
 *    (pairs of positions), cap rounded up to even; half the memory. */
struct vq_kv_cache {
    int n_layer, n_embd;
    int cap;            /* positions the buffers hold (<= block)      */
    int len;            /* positions fed so far                        */
    int bf16;           /* the layout                                  */
    void *kv;
};

/* 1 when the transformer's caches take the bf16 layout: a backend with bf16
 * (or int8) products and the bf16 attention kernels for the model's head
 * width. */
int vq_kv_cache_bf16(const struct vq_gpt *gpt);
/* Bytes a cache of cap positions made now takes. */
size_t vq_kv_cache_bytes(const struct vq_gpt *gpt, int cap);
/* Allocates an empty cache for up to cap positions (1..block), in the
 * layout vq_kv_cache_bf16 gives. */
int  vq_kv_cache_init(struct vq_kv_cache *c, const struct vq_gpt *gpt, int cap);
void vq_kv_cache_free(struct vq_kv_cache *c);
/* Positions the buffers are laid out for: cap, rounded up to even in bf16. */
static inline int vq_kv_cache_rows(const struct vq_kv_cache *c) { return c->bf16 ? (c->cap + 1) & ~1 : c->cap; }
/* Bytes of one layer's keys (its values take as many). */
static inline size_t vq_kv_cache_block(const struct vq_kv_cache *c)
{
    return (size_t)vq_kv_cache_rows(c) * c->n_embd * (c->bf16 ? 2 : 4);
}
/* A layer's keys, and its values, which follow them. */
static inline void *vq_kv_cache_k(const struct vq_kv_cache *c, int layer)
{
    return (char *)c->kv + (size_t)layer * 2 * vq_kv_cache_block(c);
}
static inline void *vq_kv_cache_v(const struct vq_kv_cache *c, int layer)
{
    return (char *)vq_kv_cache_k(c, layer) + vq_kv_cache_block(c);
}
/* Copies the keys and values of positions 0..k-1 (k <= src->len) from src
 * into dst, a cache of the same model and layout (len is left to the
 * caller), the layers shared by ex's threads. In bf16 the pair holding
 * position k-1 is copied whole: its partner (position k) is written again
 * when fed. */
void vq_kv_cache_copy_prefix(const struct vq_exec *ex, struct vq_kv_cache *dst, const struct vq_kv_cache *src, int k);

/* Feeds n_new tokens at positions cache->len .. cache->len + n_new - 1 and
 * appends them to the cache. logits (may be NULL) receives the vocab-wide
 * logits of the new rows first_row .. n_new - 1 only (first_row = n_new - 1:
 * just the last; n_new: none). The first call on an empty cache must cover the
 * n_unmasked positions that see each other. Errors: VQGAN_ERR_INVALID (token
 * out of range, bad sizes), VQGAN_ERR_LIMIT (cache full), VQGAN_ERR_NOMEM. */
int vq_gpt_forward(const struct vq_exec *ex, const struct vq_gpt *gpt, struct vq_kv_cache *cache,
                   const int32_t *tokens, int n_new, int first_row, float *logits);
/* The products run on the transformer's own backend (gpt->be) with ex's
 * threads; ex may be NULL (every core). */

/* One sequence of a batched forward: vq_gpt_forward's arguments. */
struct vq_gpt_seq {
    struct vq_kv_cache *cache;
    const int32_t *tokens;
    int n, first_row;
    float *logits;
};
#define VQ_GPT_MAX_BATCH 16
/* vq_gpt_forward of n_seq (1..VQ_GPT_MAX_BATCH) sequences, each with its
 * own cache, in one pass whose products take every sequence's rows at once
 * (the weights are read once for all of them). Every sequence gets the very
 * bits of its own vq_gpt_forward: more than one sequence needs
 * vq_gpt_batchable and either at most VQ_SMALL_ROWS rows each (every product
 * then runs the few-rows kernels, whose rows do not depend on each other), or
 * at least VQ_ROWS_INDEPENDENT_FROM rows each with vq_gpt_rows_independent
 * and at most VQ_SMALL_ROWS rows of logits in all (the products of many rows
 * then give each row the bits of any call of that many rows, and the last
 * layer's output rows take the few-rows kernels alone or together);
 * VQGAN_ERR_INVALID otherwise. Errors as vq_gpt_forward; a cache may appear
 * once. */
int vq_gpt_forward_batch(const struct vq_exec *ex, const struct vq_gpt *gpt, const struct vq_gpt_seq *seq,
                         int n_seq);
/* 1 when ex's backend runs every product of the transformer through the
 * few-rows kernels at any row count (ops.h, vq_linear_small_any): sequences
 * of at most VQ_SMALL_ROWS rows can then be batched. */
int vq_gpt_batchable(const struct vq_exec *ex, const struct vq_gpt *gpt);

/* Logits of every position of one sequence of n tokens (n <= block):
 * logits[n][vocab]. */
int vq_gpt_logits_all(const struct vq_exec *ex, const struct vq_gpt *gpt, const int32_t *tokens, int n, float *logits);

/* 1 when the keys and values of a row do not depend on the other rows fed
 * in the same call, for calls of at least VQ_ROWS_INDEPENDENT_FROM rows, at
 * the calling thread's precision: the reference backend; or the AVX-512
 * attention kernels with products that a probe of the model's three product
 * shapes found row-independent (ops.h, vq_linear_rows_independent; measured
 * once per process; on Zen 4, oneDNN's are from 64 rows in fp32 and from 25
 * in bf16). test_window checks it through every logit of the sampler. The
 * sampler then shares condition prefixes between window placements. */
int vq_gpt_rows_independent(const struct vq_exec *ex, const struct vq_gpt *gpt);

/* Checks the hyperparameters and that every weight is present. */
int vq_gpt_check(const struct vq_gpt *gpt);
/* Gives the transformer backend be and packs its linear layers' weights for
 * it (kept in the blocks next to the f32 weights; nothing for a backend
 * without packed products); 0 or VQGAN_ERR_NOMEM (nothing left packed).
 * Unpack frees them and returns the transformer to the default backend. */
int vq_gpt_pack(struct vq_gpt *gpt, const struct vq_backend *be);
void vq_gpt_unpack(struct vq_gpt *gpt);

#endif
