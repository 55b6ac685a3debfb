/* Token choice: temperature, top-k, top-p and the position-keyed generator. */
#include <math.h>
#include <stdlib.h>

#include "error.h"
#include "sampler.h"

/* ---- random numbers ------------------------------------------------------ */

uint64_t vq_mix64(uint64_t x)
{
    uint64_t z = x + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t vq_rng_bits(uint64_t seed, struct vq_draw_key key)
{
    uint64_t h = vq_mix64(seed);
    h = vq_mix64(h ^ key.stream);
    return vq_mix64(h ^ ((uint64_t)(uint32_t)key.i << 32 | (uint32_t)key.j));
}

double vq_rng_uniform(uint64_t seed, struct vq_draw_key key)
{
    return (double)(vq_rng_bits(seed, key) >> 11) * 0x1.0p-53;
}

/* ---- sampler --------------------------------------------------------------- */

int vq_sampler_init(struct vq_sampler *s, const struct vq_sampler_params *p, int n_vocab)
{
    s->rank = NULL;
    s->cum = NULL;
    if (n_vocab <= 0)
        return vq_error(VQGAN_ERR_INVALID, "sampler: vocabulary size %d", n_vocab);
    if (!(p->temperature > 0.0f) || !isfinite(p->temperature))
        return vq_error(VQGAN_ERR_INVALID, "temperature = %g must be a finite value > 0", p->temperature);
    if (p->top_k < 0 || p->top_k > n_vocab)
        return vq_error(VQGAN_ERR_INVALID, "top_k = %d is outside 0..%d", p->top_k, n_vocab);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return vq_error(VQGAN_ERR_INVALID, "top_p = %g is outside (0, 1]", p->top_p);
    s->p = *p;
    s->n = n_vocab;
    s->rank = malloc(sizeof(*s->rank) * (size_t)n_vocab);
    s->cum = malloc(sizeof(*s->cum) * (size_t)n_vocab);
    if (!s->rank || !s->cum) {
        vq_sampler_free(s);
        return vq_error(VQGAN_ERR_NOMEM, "sampler: out of memory");
    }
    return 0;
}

void vq_sampler_free(struct vq_sampler *s)
{
    free(s->rank);
    free(s->cum);
    s->rank = NULL;
    s->cum = NULL;
}

int vq_argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* Logit descending, then index ascending: a total order, so the ranking does
 * not depend on the sort algorithm. */
static int cmp_ranked(const void *pa, const void *pb)
{
    const struct vq_ranked *a = pa, *b = pb;
    if (a->logit != b->logit)
        return a->logit > b->logit ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

/* Ranks the logits (NaN as -inf, ties to the smaller index), keeps the top-k,
 * accumulates softmax(logit / T) over them in ranked order (unnormalised, in
 * s->cum) and keeps the top-p share: returns the number of tokens kept,
 * s->rank[0..m), or 0 when even the best logit is not finite. */
static int keep(struct vq_sampler *s, const float *logits)
{
    const int n = s->n;
    for (int i = 0; i < n; i++) {
        s->rank[i].logit = isnan(logits[i]) ? -INFINITY : logits[i];
        s->rank[i].index = i;
    }
    qsort(s->rank, (size_t)n, sizeof(*s->rank), cmp_ranked);
    int m = s->p.top_k > 0 ? s->p.top_k : n;
    const double inv_t = 1.0 / (double)s->p.temperature;
    const double top = s->rank[0].logit;
    if (!isfinite(top))
        return 0;
    double acc = 0.0;
    for (int k = 0; k < m; k++) {
        acc += exp(((double)s->rank[k].logit - top) * inv_t);
        s->cum[k] = acc;
    }
    /* top-p: through the first token whose cumulative share exceeds top_p */
    if (s->p.top_p < 1.0f) {
        const double limit = (double)s->p.top_p * acc;
        for (int k = 0; k < m; k++)
            if (s->cum[k] > limit) {
                m = k + 1;
                break;
            }
    }
    return m;
}

int vq_sample_token(struct vq_sampler *s, const float *logits, struct vq_draw_key key)
{
    if (s->p.top_k == 1)
        return vq_argmax(logits, s->n);
    const int m = keep(s, logits);
    if (!m)
        return s->rank[0].index;

    /* inverse CDF */
    const double target = vq_rng_uniform(s->p.seed, key) * s->cum[m - 1];
    for (int k = 0; k < m; k++)
        if (s->cum[k] > target)
            return s->rank[k].index;
    return s->rank[m - 1].index;
}

/* The Gumbel-max rule (follow; docs/sampling.md, "Temporal modes"): the same
 * kept set and distribution as vq_sample_token, but the token is the kept one
 * with the largest logit / T + g, g = -log(-log(u_t)) with u_t uniform, keyed
 * to the cell and the token id. A small change of the logits then rarely
 * changes the token, where inverse-CDF sampling over the ranking often does. */
int vq_gumbel_token(struct vq_sampler *s, const float *logits, struct vq_draw_key key)
{
    if (s->p.top_k == 1)
        return vq_argmax(logits, s->n);
    const int m = keep(s, logits);
    if (!m)
        return s->rank[0].index;
    const double inv_t = 1.0 / (double)s->p.temperature;
    const double top = s->rank[0].logit;
    const uint64_t h = vq_rng_bits(s->p.seed, key);
    int best = s->rank[0].index;
    double best_score = -INFINITY;
    for (int k = 0; k < m; k++) {
        const int t = s->rank[k].index;
        const double u = ((double)(vq_mix64(h ^ (uint64_t)t) >> 11) + 0.5) * 0x1p-53;   /* (0, 1) */
        const double score = ((double)s->rank[k].logit - top) * inv_t - log(-log(u));
        if (score > best_score || (score == best_score && t < best)) {
            best_score = score;
            best = t;
        }
    }
    return best;
}
