/* The sampler's test and bench hooks: for tests/ and benches only, never the
 * library's own calls. The entry points are those of window.h with a hooks
 * argument (NULL: none, the same as the plain calls). */
#ifndef VQ_WINDOW_TEST_H
#define VQ_WINDOW_TEST_H

#include "window.h"

struct vq_window_hooks {
    /* 1: no condition prefixes shared between placements (tests: the same
     * tokens and logits) */
    int no_share;
    /* 1: the cells in raster order, one transformer call each (tests: the
     * same tokens and logits as the batched order) */
    int no_batch;
    /* 1: run the schedule and count the work, no transformer (tokens come
     * out 0); benches */
    int dry_run;
    /* may be NULL: told of every transformer call, placement (r0, c0), cache
     * length before the call, positions fed */
    void (*trace)(void *opaque, int r0, int c0, int len, int n);
    void *trace_opaque;
    /* scoring a grid under a schedule: when forced is not NULL, cell (i, j)
     * of the gh x gw grid takes forced[i * gw + j] instead of a drawn token
     * (padded columns are drawn as usual); on_logits, when not NULL, is shown
     * the logits of every cell computed (vocab values) */
    const int32_t *forced;
    void (*on_logits)(void *opaque, int i, int j, const float *logits, int vocab);
    void *on_logits_opaque;
};

int vq_window_sample_hooked(struct vq_window_state **state, const struct vq_gpt *gpt,
                            const struct vq_window_params *p, const struct vq_window_hooks *h,
                            const int32_t *cond, int gw, int gh, int32_t *tokens, struct vqgan_sample_stats *stats);
int vq_window_sample_token_hooked(struct vq_window_state **state, const struct vq_gpt *gpt,
                                  const struct vq_window_params *p, const struct vq_window_hooks *h, int32_t token,
                                  uint32_t stream, int gw, int gh, int32_t *tokens, struct vqgan_sample_stats *stats);
/* dry_run and trace apply (one placement at (0, 0)); the others are ignored. */
int vq_sequence_sample_hooked(const struct vq_gpt *gpt, const struct vq_window_params *p,
                              const struct vq_window_hooks *h, int32_t first_token, uint32_t stream, int gw, int gh,
                              int32_t *tokens, struct vqgan_sample_stats *stats);

#endif
