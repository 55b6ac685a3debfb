/* First-stage (and segmentation-stage) speed on the released S-FLCKR shapes
 * with random weights: encode/decode at 256x256 and 512x512, GFLOPS, and the
 * ratio to the backend's best matrix-multiply rate in the same run.
 * Model: $VQ_BENCH_MODEL (default build/sflckr-random.gguf, made by
 * tools/make_random_model.py tools/configs/sflckr.yaml). */
#include <string.h>

#include "bench_common.h"
#include "vqgan.h"

int main(void)
{
    const char *path = getenv("VQ_BENCH_MODEL") ? getenv("VQ_BENCH_MODEL") : "build/sflckr-random.gguf";
    struct vqgan_model *m;
    struct vqgan_session *s;
    if (vqgan_model_load(path, NULL, &m)) {
        fprintf(stderr, "bench_vqgan: %s\n", vqgan_last_error());
        return 1;
    }
    vqgan_session_new(m, NULL, &s);
    printf("backend %s, %d threads\n", vq_backend_default()->name, vq_threads_available());
    double peak = bench_peak_gflops(1);
    printf("peak fp32 matmul: %.1f GFLOPS\n", peak);
    struct vqgan_model_info info;
    vqgan_model_get_info(m, &info);
    static const int sizes[] = { 256, 512 };
    for (int k = 0; k < 2; k++) {
        const int S = sizes[k], g = S / info.factor;
        uint8_t *rgb = malloc((size_t)S * S * 3), *ids = malloc((size_t)S * S);
        int32_t *tok = malloc(sizeof(int32_t) * g * g);
        for (int i = 0; i < S * S * 3; i++) rgb[i] = (uint8_t)(i * 31 + (i >> 9));
        for (int i = 0; i < S * S; i++) ids[i] = (uint8_t)(((i % S) / 37 + (i / S) / 53) % (info.n_labels ? info.n_labels : 1));
        struct { const char *what; int run; } ops[] = { { "encode", 1 }, { "decode", 1 }, { "cond encode", info.n_labels > 0 } };
        for (int o = 0; o < 3; o++) {
            if (!ops[o].run) continue;
            unsigned long long f0 = vq_gemm_flops();
            double t0 = now_s();
            int r = o == 0 ? vqgan_encode_image(s, rgb, S * 3, S, S, tok)
                  : o == 1 ? vqgan_decode(s, tok, g, g, rgb, S * 3)
                           : vqgan_encode_labels(s, ids, S, S, S, tok, NULL);
            double t = now_s() - t0;
            double gf = (vq_gemm_flops() - f0) * 1e-9;
            if (r) { fprintf(stderr, "%s\n", vqgan_last_error()); return 1; }
            printf("%-12s %4dx%-4d %7.3f s  %7.1f GFLOP  %7.1f GFLOPS  %5.1f%% of peak\n", ops[o].what, S, S, t, gf,
                   gf / t, 100.0 * gf / t / peak);
        }
        free(rgb); free(ids); free(tok);
    }
    vqgan_session_free(s);
    vqgan_model_unref(m);
    return 0;
}
