/* Seconds per 256x256 frame for every released taming-transformers family at
 * its real shape, with random weights (tools/configs/NAME.yaml, written by
 * tools/make_random_model.py into $VQ_FAMILY_MODELS, default build/families):
 * the condition (labels, depth, coordinates, class, start token), sampling
 * with the sliding window, decoding; the tokenizers encode and decode.
 * Also the nearest-code search of the 16384-code codebook against the rest
 * of the encoder.
 *
 *   bench_families [NAME...]     (default: every family whose file exists)
 */
#include <math.h>
#include <string.h>
#include <sys/resource.h>

#include "bench_common.h"
#include "model.h"
#include "vqgan.h"
#include "vqgan_stage.h"

#define SIDE 256

static const char *const families[] = { "drin", "faceshq", "coco", "ade20k", "ffhq", "celebahq",
                                        "gumbel_f8", "f16_16384", "cin" };

static double peak_rss_gib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / (1024.0 * 1024.0);
}

/* A smooth picture (and depth map, and label map) of the frame size. */
static void fill_inputs(uint8_t *rgb, float *depth, uint8_t *labels, int n_labels)
{
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++) {
            const float u = (float)x / SIDE, v = (float)y / SIDE;
            for (int c = 0; c < 3; c++)
                rgb[(y * SIDE + x) * 3 + c] = (uint8_t)(127.5f + 120.0f * sinf(6.0f * u + 2.0f * c + 4.0f * v));
            depth[y * SIDE + x] = 2.0f * v - 1.0f + 0.2f * sinf(8.0f * u);
            labels[y * SIDE + x] = (uint8_t)((y < SIDE / 2 ? 0 : 1 + (x * 3) / SIDE) % (n_labels ? n_labels : 1));
        }
}

static int bench_one(const char *dir, const char *name)
{
    char path[1024];
    struct vqgan_model *m = NULL;
    struct vqgan_session *s = NULL;
    struct vqgan_model_info in;
    snprintf(path, sizeof(path), "%s/%s.gguf", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("  %-10s (no %s: make bench-families-models)\n", name, path);
        return 0;
    }
    fclose(f);
    double t0 = now_s();
    if (vqgan_model_load(path, NULL, &m)) {
        printf("  %-10s load failed: %s\n", name, vqgan_last_error());
        return 1;
    }
    const double t_load = now_s() - t0;
    vqgan_model_get_info(m, &in);
    struct vqgan_session_params sp = vqgan_session_default_params();
    sp.top_k = 100;
    sp.seed = 1;
    if (vqgan_session_new(m, &sp, &s)) {
        printf("  %-10s session failed: %s\n", name, vqgan_last_error());
        vqgan_model_unref(m);
        return 1;
    }
    const int f_ = in.factor, gw = SIDE / f_, gh = SIDE / f_;
    uint8_t *rgb = malloc(SIDE * SIDE * 3), *labels = malloc(SIDE * SIDE), *out = malloc(SIDE * SIDE * 3);
    float *depth = malloc(sizeof(float) * SIDE * SIDE);
    int32_t *cond = calloc((size_t)gw * gh, sizeof(int32_t)), *tok = calloc((size_t)gw * gh, sizeof(int32_t));
    fill_inputs(rgb, depth, labels, in.n_labels);
    int r = 0;
    double t_cond = 0, t_sample = 0, t_enc = 0;
    t0 = now_s();
    switch (in.cond_kind) {
    case VQGAN_COND_SEGMENTATION: r = vqgan_encode_labels(s, labels, SIDE, SIDE, SIDE, cond, NULL); break;
    case VQGAN_COND_DEPTH:        r = vqgan_encode_depth(s, depth, SIDE, SIDE, cond, NULL); break;
    case VQGAN_COND_COORD:        r = vqgan_encode_coord(s, SIDE, SIDE, cond); break;
    default: break;
    }
    t_cond = now_s() - t0;
    t0 = now_s();
    if (!r && in.has_transformer) {
        if (in.cond_kind == VQGAN_COND_CLASS || in.cond_kind == VQGAN_COND_SOS)
            r = vqgan_sample_unconditional(s, 0, gw, gh, tok);
        else
            r = vqgan_sample_conditional(s, cond, gw, gh, tok);
    } else if (!r) {
        r = vqgan_encode_image(s, rgb, SIDE * 3, SIDE, SIDE, tok);
        t_enc = now_s() - t0;
    }
    t_sample = now_s() - t0;
    t0 = now_s();
    if (!r) r = vqgan_decode(s, tok, gw, gh, out, SIDE * 3);
    const double t_dec = now_s() - t0;
    if (r) {
        printf("  %-10s failed: %s\n", name, vqgan_last_error());
    } else if (in.has_transformer) {
        printf("  %-10s %s, %d layers x %d, vocab %d, window %d: %.1f s/frame (condition %.2f s, sampling "
               "%.1f s for %d tokens, decode %.2f s); load %.1f s, peak RSS %.1f GiB\n", name,
               in.cond_kind == VQGAN_COND_SEGMENTATION ? "segmentation" : in.cond_kind == VQGAN_COND_DEPTH ?
               "depth" : in.cond_kind == VQGAN_COND_COORD ? "coordinates" : in.cond_kind == VQGAN_COND_CLASS ?
               "class" : "unconditional", in.n_layer, in.n_embd, in.vocab_size, in.window,
               t_cond + t_sample + t_dec, t_cond, t_sample, gw * gh, t_dec, t_load, peak_rss_gib());
    } else {
        printf("  %-10s tokenizer, f=%d, %d codes (%s): encode %.2f s + decode %.2f s = %.2f s/frame; load "
               "%.1f s\n", name, f_, in.image_codes, in.image_quantizer ? "gumbel" : "nearest code", t_enc, t_dec,
               t_enc + t_dec, t_load);
        /* the quantizer alone on the encoder's output shape, against the whole encode */
        const struct vq_stage *st = &m->first;
        for (int side = SIDE / f_; side <= 4 * SIDE / f_; side *= 4) {
            const int n = side * side;
            float *z = malloc(sizeof(float) * (size_t)st->embed_dim * n);
            int32_t *idx = malloc(sizeof(int32_t) * n);
            for (long i = 0; i < (long)st->embed_dim * n; i++) z[i] = sinf(0.37f * (float)i);
            vq_quantize(NULL, st, z, n, idx);
            double best = 1e30;
            for (int rep = 0; rep < 3; rep++) {
                double q0 = now_s();
                vq_quantize(NULL, st, z, n, idx);
                best = fmin(best, now_s() - q0);
            }
            printf("  %-10s   quantizer on %dx%d positions x %d codes x %d dims: %.1f ms%s\n", name, side, side,
                   st->n_embed, st->embed_dim, best * 1e3,
                   side == SIDE / f_ ? "" : " (a 1024x1024 picture)");
            if (side == SIDE / f_)
                printf("  %-10s   = %.1f %% of the %dx%d encode\n", name, 100.0 * best / t_enc, SIDE, SIDE);
            free(z);
            free(idx);
        }
    }
    free(rgb); free(labels); free(out); free(depth); free(cond); free(tok);
    vqgan_session_free(s);
    vqgan_model_unref(m);
    return r != 0;
}

int main(int argc, char **argv)
{
    const char *dir = getenv("VQ_FAMILY_MODELS") ? getenv("VQ_FAMILY_MODELS") : "build/families";
    int bad = 0, named = 0;
    (void)bench_peak_gflops;
    printf("released model families at their real shapes, random weights, one %dx%d frame each "
           "(fp32, top_k=100):\n", SIDE, SIDE);
    for (int i = 1; i < argc; i++)          /* make bench passes its BENCH_FLAGS to every bench */
        if (argv[i][0] != '-') {
            bad |= bench_one(dir, argv[i]);
            named = 1;
        }
    if (!named) {
        for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) bad |= bench_one(dir, families[i]);
    }
    return bad;
}
