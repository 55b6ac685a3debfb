/* Choosing a token from logits: temperature, top-k, top-p, and a counter-based
 * random generator keyed to where the token goes (docs/sampling.md).
 *
 * The random number behind a token is a pure function of (seed, key): it does
 * not depend on how many draws came before, in which order positions are
 * computed, or on the thread count. */
#ifndef VQ_SAMPLER_H
#define VQ_SAMPLER_H

#include <stdint.h>

/* What a draw is for. stream names the kind of grid being sampled, (i, j) the
 * cell (row, column). Callers may key draws to any coordinates they like
 * (a video filter can use content coordinates); negative values are fine. */
struct vq_draw_key {
    uint32_t stream;
    int32_t i, j;
};

/* Streams used by the library. */
#define VQ_STREAM_WINDOW   0u              /* segmentation-conditional grid   */
#define VQ_STREAM_SOS      1u              /* unconditional (start token)     */
#define VQ_STREAM_CLASS(c) (2u + (uint32_t)(c)) /* class-conditional, class c */

/* splitmix64's finaliser applied to x + 0x9e3779b97f4a7c15. */
uint64_t vq_mix64(uint64_t x);
/* 64 random bits for (seed, key):
 *   h = mix64(seed); h = mix64(h ^ stream); h = mix64(h ^ ((u32)i << 32 | (u32)j)) */
uint64_t vq_rng_bits(uint64_t seed, struct vq_draw_key key);
/* Uniform in [0, 1): the top 53 bits of vq_rng_bits times 2^-53. */
double vq_rng_uniform(uint64_t seed, struct vq_draw_key key);

struct vq_sampler_params {
    float temperature;   /* > 0                                          */
    int top_k;           /* 0: off; 1: greedy argmax; k: the k best      */
    float top_p;         /* (0, 1]; 1: off                               */
    uint64_t seed;
};

struct vq_ranked { float logit; int index; };

/* Scratch for one vocabulary size; one per thread. */
struct vq_sampler {
    struct vq_sampler_params p;
    int n;                    /* vocabulary size */
    struct vq_ranked *rank;   /* [n] */
    double *cum;              /* [n] */
};

/* Validates the parameters (VQGAN_ERR_INVALID) and allocates the scratch. */
int  vq_sampler_init(struct vq_sampler *s, const struct vq_sampler_params *p, int n_vocab);
void vq_sampler_free(struct vq_sampler *s);

/* Index of the largest value; the lowest index among equal ones. */
int vq_argmax(const float *x, int n);

/* The token for one position. Logits are not modified. The candidates are
 * ranked by logit (descending, ties by lower index); top-k keeps the first k;
 * the probabilities softmax(logit / temperature) over those are renormalised;
 * top-p keeps the ranked tokens up to and including the first whose cumulative
 * probability exceeds top_p; the token is the first ranked one whose
 * cumulative (renormalised) probability exceeds u = vq_rng_uniform(seed, key).
 * top_k == 1 returns vq_argmax without drawing. */
int vq_sample_token(struct vq_sampler *s, const float *logits, struct vq_draw_key key);

/* The token for one position by the Gumbel-max rule (follow mode): the kept
 * set and distribution of vq_sample_token (top-k, softmax(logit / T), top-p),
 * the token the kept one with the largest logit / T - log(-log(u_t)), u_t
 * uniform in (0, 1) from mix64(vq_rng_bits(seed, key) ^ t). top_k == 1 is the
 * argmax. */
int vq_gumbel_token(struct vq_sampler *s, const float *logits, struct vq_draw_key key);

#endif
