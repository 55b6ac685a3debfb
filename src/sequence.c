/* The sequence sampler of class-conditional and unconditional models: grids
 * that fit the transformer's block are one cached sequence [condition token,
 * image tokens...], as the reference's sample_with_past (window.h). Larger
 * grids slide the window (window.c). */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "window.h"
#include "window_test.h"

int vq_sequence_sample_hooked(const struct vq_gpt *gpt, const struct vq_window_params *p,
                              const struct vq_window_hooks *h, int32_t first_token, uint32_t stream, int gw, int gh,
                              int32_t *tokens, struct vqgan_sample_stats *stats)
{
    static const struct vq_window_hooks none;
    const double t0 = omp_get_wtime();
    struct vq_kv_cache cache;
    struct vq_sampler smp;
    float *logits = NULL;
    int64_t done = 0, fed = 0, kept = 0;
    int r;

    if (!h) h = &none;
    memset(&cache, 0, sizeof(cache));
    memset(&smp, 0, sizeof(smp));
    vq_stats_fill(stats, 0, 0, 0, 0, t0);
    if (!gpt || !p || !tokens)
        return vq_error(VQGAN_ERR_INVALID, "sampling: NULL argument");
    if ((r = vq_gpt_check(gpt))) return r;
    if ((r = vq_check_grid("token grid", gw, gh))) return r;
    const int n = gw * gh;
    if (n > gpt->block)
        return vq_error(VQGAN_ERR_LIMIT, "grid %dx%d holds %d tokens; the transformer's block %d predicts at most %d "
                        "(the condition token and all but the last token fed)", gw, gh, n, gpt->block, gpt->block);
    if (gpt->n_unmasked > 1)
        return vq_error(VQGAN_ERR_UNSUPPORTED, "n_unmasked %d is more than the one condition token", gpt->n_unmasked);
    if (first_token < 0 || first_token >= gpt->vocab)
        return vq_error(VQGAN_ERR_INVALID, "condition token %d is outside the vocabulary 0..%d",
                        first_token, gpt->vocab - 1);
    if ((r = vq_check_given(gpt, p, gw, gh))) return r;
    if ((r = vq_sampler_init(&smp, &p->sampling, gpt->vocab))) return r;
    /* kept cells after the last sampled one predict nothing: they are copied,
     * not fed (an all-zero mask feeds nothing) */
    int last = n - 1;
    if (p->mask)
        while (last >= 0 && !p->mask[last]) last--;
    if (!h->dry_run && last >= 0 && (r = vq_kv_cache_init(&cache, gpt, last + 1))) goto end;
    if (!(logits = malloc(sizeof(float) * (size_t)gpt->vocab))) {
        r = vq_error(VQGAN_ERR_NOMEM, "sampling: out of memory");
        goto end;
    }

    /* [c], then each sampled token in turn; the logits of the last position fed
     * predict the next cell */
    int32_t in = first_token;
    for (int k = 0; k < n; k++) {
        const struct vq_draw_key key = { stream, k / gw, k % gw };
        const int keep = p->mask && !p->mask[k];
        if (k <= last) {                  /* (every cell after last is kept) */
            fed++;
            if (h->trace)
                h->trace(h->trace_opaque, 0, 0, k, 1);
            if (h->dry_run) {
                tokens[k] = 0;
            } else if (keep) {
                /* a kept cell's token is fed after it, its logits are not needed */
                if ((r = vq_gpt_forward(p->exec, gpt, &cache, &in, 1, 1, NULL))) goto end;
            } else {
                if ((r = vq_gpt_forward(p->exec, gpt, &cache, &in, 1, 0, logits))) goto end;
                tokens[k] = vq_sample_token(&smp, logits, key);
            }
        }
        if (keep) {
            tokens[k] = p->given[k];
            kept++;
        }
        in = tokens[k];
        done++;
        if (p->progress && p->progress(p->progress_opaque, done, n)) {
            r = vq_error(VQGAN_ERR_CANCELLED, "sampling cancelled after %lld of %d positions", (long long)done, n);
            goto end;
        }
    }
    r = 0;
end:
    vq_stats_fill(stats, done - kept, 0, fed, 0, t0);
    if (stats) stats->positions_kept = kept;
    free(logits);
    vq_kv_cache_free(&cache);
    vq_sampler_free(&smp);
    return r;
}

int vq_sequence_sample(const struct vq_gpt *gpt, const struct vq_window_params *p,
                       int32_t first_token, uint32_t stream, int gw, int gh,
                       int32_t *tokens, struct vqgan_sample_stats *stats)
{
    return vq_sequence_sample_hooked(gpt, p, NULL, first_token, stream, gw, gh, tokens, stats);
}
