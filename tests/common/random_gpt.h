/* tests/common/random_gpt.h: a transformer with seeded random weights (no model
 * file), for the sampler tests; and the tests' small random generator. */
#ifndef VQ_TESTS_RANDOM_GPT_H
#define VQ_TESTS_RANDOM_GPT_H
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpt.h"

struct rgpt {
    struct vq_gpt g;
    float *mem;
};

static uint64_t rng_state;
static inline float frand(void) /* uniform in [-1, 1) */
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) * (1.0 / 8388608.0)) - 1.0f;
}
static inline int irand(int n) { return (int)((frand() + 1.0f) * 0.5f * n) % n; }

static inline float *fill(float **p, size_t n, float scale, float offset)
{
    float *a = *p;
    for (size_t i = 0; i < n; i++)
        a[i] = offset + scale * frand();
    *p += n;
    return a;
}

/* n_unmasked: the leading positions that see each other (mingpt.py) */
static inline int rgpt_init_unmasked(struct rgpt *r, int vocab, int block, int n_layer, int n_head, int D,
                                     int n_unmasked, uint64_t seed)
{
    const size_t per_layer = 4 * (size_t)D + 4 * ((size_t)D * D + D) + (4 * (size_t)D * D + 4 * D) + (4 * (size_t)D * D + D);
    const size_t total = (size_t)vocab * D + (size_t)block * D + n_layer * per_layer + 2 * (size_t)D + (size_t)vocab * D;
    memset(r, 0, sizeof(*r));
    r->mem = malloc(sizeof(float) * total);
    r->g.blocks = calloc((size_t)n_layer, sizeof(*r->g.blocks));
    if (!r->mem || !r->g.blocks) return -1;
    rng_state = seed;
    float *p = r->mem;
    const float a = 1.0f / sqrtf((float)D), a4 = 1.0f / sqrtf(4.0f * D);
    struct vq_gpt *g = &r->g;
    g->present = 1;
    g->vocab = vocab; g->block = block; g->n_layer = n_layer; g->n_head = n_head; g->n_embd = D;
    g->n_unmasked = n_unmasked;
    g->tok_emb = fill(&p, (size_t)vocab * D, 1.0f, 0.0f);
    g->pos_emb = fill(&p, (size_t)block * D, 0.5f, 0.0f);
    for (int l = 0; l < n_layer; l++) {
        struct vq_gpt_block *b = &g->blocks[l];
        b->ln1_w = fill(&p, D, 0.2f, 1.0f); b->ln1_b = fill(&p, D, 0.1f, 0.0f);
        b->ln2_w = fill(&p, D, 0.2f, 1.0f); b->ln2_b = fill(&p, D, 0.1f, 0.0f);
        b->q_w = fill(&p, (size_t)D * D, 2.5f * a, 0.0f); b->q_b = fill(&p, D, 0.1f, 0.0f);
        b->k_w = fill(&p, (size_t)D * D, 2.5f * a, 0.0f); b->k_b = fill(&p, D, 0.1f, 0.0f);
        b->v_w = fill(&p, (size_t)D * D, 1.7f * a, 0.0f); b->v_b = fill(&p, D, 0.1f, 0.0f);
        b->proj_w = fill(&p, (size_t)D * D, 1.7f * a, 0.0f); b->proj_b = fill(&p, D, 0.1f, 0.0f);
        b->fc_w = fill(&p, 4 * (size_t)D * D, 1.7f * a, 0.0f); b->fc_b = fill(&p, 4 * (size_t)D, 0.1f, 0.0f);
        b->fc2_w = fill(&p, 4 * (size_t)D * D, 1.7f * a4, 0.0f); b->fc2_b = fill(&p, D, 0.1f, 0.0f);
    }
    g->lnf_w = fill(&p, D, 0.2f, 1.0f);
    g->lnf_b = fill(&p, D, 0.1f, 0.0f);
    g->head_w = fill(&p, (size_t)vocab * D, 6.0f * a, 0.0f);
    return 0;
}

static inline int rgpt_init(struct rgpt *r, int vocab, int block, int n_layer, int n_head, int D, uint64_t seed)
{
    return rgpt_init_unmasked(r, vocab, block, n_layer, n_head, D, 0, seed);
}

static inline void rgpt_free(struct rgpt *r)
{
    free(r->mem);
    free(r->g.blocks);
}

#endif
