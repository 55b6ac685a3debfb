/* How far bf16 and int8 products move the transformer's next-token
 * distributions from fp32's (issue 20): docs/precision.md, "int8".
 *
 *   build/tests/bench_drift [--seqs N] [MODEL.gguf ...]
 *
 * Models (default): samples/models/default.gguf (trained), build/sflckr-
 * random.gguf (the S-FLCKR shapes, random weights at std 0.02) and
 * $VQ_TEST_MODELS/conditional.gguf (the golden conditional case), each loaded
 * three times: fp32, bf16, int8.
 *
 * Sequences: one window placement, [w·w condition tokens][w·w image tokens],
 * the condition from a landscape label map (N phases of it) encoded in fp32,
 * so every precision sees the same condition and only the transformer is
 * compared. For each sequence:
 *  - same positions: the image tokens are drawn (temperature 1, the full
 *    distribution) from fp32's model; the w·w next-token distributions of
 *    every precision on that same sequence are compared with fp32's:
 *    KL(p_fp32 ‖ p_q) (nats) at every position, mean and 99th percentile,
 *    greedy agreement (the argmax equal), and the NLL that a draw from the
 *    precision's distribution has under fp32's in expectation, less fp32's
 *    own (Σ p_q·(−log p_fp32) − H(p_fp32): "expected NLL excess", free of
 *    sampling noise);
 *  - own samples: each precision draws its own image tokens (same seed) and
 *    fp32's model scores them: NLL per token (nats). fp32's own figure is
 *    the baseline (about the distributions' entropy); a precision whose
 *    samples score worse draws from a distribution fp32 finds less likely.
 *    Differences of a few hundredths of a nat between precisions are
 *    sampling noise at these counts (± is one standard error). 
 * Figures are over all positions of all sequences. */
#include <math.h>
#include <string.h>

#include "backend_int8.h"
#include "bench_common.h"
#include "gpt.h"
#include "landscape.h"
#include "model.h"
#include "session.h"
#include "vqgan.h"

#define N_PREC 3
static const char *prec_name[N_PREC] = { "fp32", "bf16", "int8" };
static const int prec_value[N_PREC] = { VQGAN_PRECISION_FP32, VQGAN_PRECISION_BF16, VQGAN_PRECISION_INT8 };

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* log-softmax of n logits, in double */
static void log_softmax(const float *l, int n, double *out)
{
    double m = -INFINITY, s = 0;
    for (int i = 0; i < n; i++) m = l[i] > m ? l[i] : m;
    for (int i = 0; i < n; i++) s += exp((double)l[i] - m);
    const double lse = m + log(s);
    for (int i = 0; i < n; i++) out[i] = (double)l[i] - lse;
}

static int argmax(const float *l, int n)
{
    int a = 0;
    for (int i = 1; i < n; i++) if (l[i] > l[a]) a = i;
    return a;
}

/* A draw from softmax(l) (temperature 1). */
static int draw(const float *l, int n, uint64_t *rng, double *lp)
{
    log_softmax(l, n, lp);
    const double u = (double)(rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
    double c = 0;
    for (int i = 0; i < n; i++) {
        c += exp(lp[i]);
        if (u < c) return i;
    }
    return n - 1;
}

/* Image tokens img[m] drawn autoregressively after the condition cond[m]. */
static int sample(const struct vq_gpt *g, const int32_t *cond, int m, uint64_t seed, int32_t *img, double *lp)
{
    struct vq_kv_cache c;
    float *logits = malloc(sizeof(float) * g->vocab);
    int r = vq_kv_cache_init(&c, g, 2 * m);
    if (!r) r = vq_gpt_forward(NULL, g, &c, cond, m, m - 1, logits);
    uint64_t rng = seed;
    for (int i = 0; !r && i < m; i++) {
        img[i] = draw(logits, g->vocab, &rng, lp);
        if (i + 1 < m) r = vq_gpt_forward(NULL, g, &c, &img[i], 1, 0, logits);
    }
    vq_kv_cache_free(&c);
    free(logits);
    return r;
}

/* The m next-token logits of the image positions: seq = cond + img[0..m-2]. */
static int image_logits(const struct vq_gpt *g, const int32_t *cond, const int32_t *img, int m, float *out)
{
    int32_t *seq = malloc(sizeof(int32_t) * 2 * m);
    float *all = malloc(sizeof(float) * (size_t)(2 * m - 1) * g->vocab);
    memcpy(seq, cond, sizeof(int32_t) * m);
    memcpy(seq + m, img, sizeof(int32_t) * (m - 1));
    int r = vq_gpt_logits_all(NULL, g, seq, 2 * m - 1, all);
    if (!r) memcpy(out, all + (size_t)(m - 1) * g->vocab, sizeof(float) * (size_t)m * g->vocab);
    free(seq);
    free(all);
    return r;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int run_model(const char *path, int n_seq)
{
    struct vqgan_model *m[N_PREC] = { 0 };
    struct vqgan_session *s = NULL;
    for (int p = 0; p < N_PREC; p++) {
        struct vqgan_model_params mp = vqgan_model_default_params();
        mp.precision = prec_value[p];
        if (vqgan_model_load(path, &mp, &m[p])) {
            printf("[%s: not loaded (%s): skipped]\n", path, vqgan_last_error());
            for (int q = 0; q < p; q++) vqgan_model_unref(m[q]);
            return 0;
        }
    }
    struct vqgan_model_info info;
    vqgan_model_get_info(m[0], &info);
    const int w = info.window, f = info.cond_factor, M = w * w, V = info.vocab_size;
    if (!w || info.cond_kind != VQGAN_COND_SEGMENTATION || vqgan_session_new(m[0], NULL, &s)) {
        printf("[%s: not a segmentation-conditional model with a window: skipped]\n", path);
        for (int p = 0; p < N_PREC; p++) vqgan_model_unref(m[p]);
        return 0;
    }
    printf("[%s: %s; %d layers, width %d, vocabulary %d, window %dx%d; backends %s / %s / %s]\n", path, info.name,
           info.n_layer, info.n_embd, V, w, w, m[0]->backend->name, m[1]->backend->name, m[2]->backend->name);
    const size_t n_pos = (size_t)n_seq * M;
    double *kl[N_PREC], nll[N_PREC] = { 0 }, nll2[N_PREC] = { 0 }, excess[N_PREC] = { 0 };
    long agree[N_PREC] = { 0 };
    for (int p = 0; p < N_PREC; p++) kl[p] = malloc(sizeof(double) * n_pos);
    uint8_t *ids = malloc((size_t)w * f * w * f);
    int32_t *cond = malloc(sizeof(int32_t) * M), *img = malloc(sizeof(int32_t) * M);
    float *lg[N_PREC];
    for (int p = 0; p < N_PREC; p++) lg[p] = malloc(sizeof(float) * (size_t)M * V);
    double *a = malloc(sizeof(double) * V), *b = malloc(sizeof(double) * V);
    const double t0 = now_s();
    int r = 0;
    for (int q = 0; q < n_seq && !r; q++) {
        landscape(ids, w * f, w * f, 0.7 * q);
        for (size_t i = 0; i < (size_t)w * f * w * f; i++) ids[i] %= info.n_labels;
        if ((r = vqgan_encode_labels(s, ids, w * f, w * f, w * f, cond, NULL))) break;
        /* same positions: fp32's draw, every precision's distributions */
        if ((r = sample(&m[0]->gpt, cond, M, 1000 + q, img, a))) break;
        for (int p = 0; p < N_PREC && !r; p++) r = image_logits(&m[p]->gpt, cond, img, M, lg[p]);
        for (int i = 0; i < M && !r; i++) {
            const float *l0 = lg[0] + (size_t)i * V;
            log_softmax(l0, V, a);
            for (int p = 0; p < N_PREC; p++) {
                const float *lq = lg[p] + (size_t)i * V;
                log_softmax(lq, V, b);
                double d = 0;
                double x = 0;
                for (int k = 0; k < V; k++) {
                    d += exp(a[k]) * (a[k] - b[k]);
                    x += (exp(a[k]) - exp(b[k])) * a[k];
                }
                kl[p][(size_t)q * M + i] = d > 0 ? d : 0;
                excess[p] += x;
                agree[p] += argmax(lq, V) == argmax(l0, V);
            }
        }
        /* own samples, scored by fp32 */
        for (int p = 0; p < N_PREC && !r; p++) {
            if ((r = sample(&m[p]->gpt, cond, M, 5000 + q, img, a))) break;
            if ((r = image_logits(&m[0]->gpt, cond, img, M, lg[0]))) break;
            for (int i = 0; i < M; i++) {
                log_softmax(lg[0] + (size_t)i * V, V, b);
                nll[p] -= b[img[i]];
                nll2[p] += b[img[i]] * b[img[i]];
            }
        }
    }
    if (r) {
        printf("  failed: %s\n", vqgan_last_error());
    } else {
        printf("  %d sequences x %d positions = %zu positions (%.0f s)\n", n_seq, M, n_pos, now_s() - t0);
        printf("  %-5s %11s %11s %16s %19s %26s\n", "", "KL mean", "KL p99", "greedy agreement",
               "expected NLL excess", "own samples' NLL (fp32)");
        for (int p = 0; p < N_PREC; p++) {
            double sum = 0;
            for (size_t i = 0; i < n_pos; i++) sum += kl[p][i];
            qsort(kl[p], n_pos, sizeof(double), cmp_double);
            const size_t i99 = (size_t)ceil(0.99 * (double)n_pos) - 1;
            const double mean = nll[p] / (double)n_pos, var = nll2[p] / (double)n_pos - mean * mean;
            printf("  %-5s %11.3e %11.3e %9ld/%-6zu %19.3e %17.4f ± %.4f\n", prec_name[p], sum / (double)n_pos,
                   kl[p][i99], agree[p], n_pos, excess[p] / (double)n_pos, mean, sqrt(var / (double)n_pos));
        }
        double s1 = 0, s2 = 0;
        for (size_t i = 0; i < n_pos; i++) { s1 += kl[1][i]; s2 += kl[2][i]; }
        printf("  int8 / bf16: KL mean %.2fx, KL p99 %.2fx, |expected NLL excess| %.2fx\n", s2 / s1,
               kl[2][(size_t)ceil(0.99 * (double)n_pos) - 1] / kl[1][(size_t)ceil(0.99 * (double)n_pos) - 1],
               fabs(excess[2]) / fabs(excess[1]));
    }
    for (int p = 0; p < N_PREC; p++) { free(kl[p]); free(lg[p]); }
    free(ids); free(cond); free(img); free(a); free(b);
    vqgan_session_free(s);
    for (int p = 0; p < N_PREC; p++) vqgan_model_unref(m[p]);
    return r;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    (void)bench_peak_gflops;
    int n_seq = 4, first = 1;
    if (argc > 2 && !strcmp(argv[1], "--seqs")) {
        n_seq = atoi(argv[2]);
        first = 3;
    }
    if (n_seq < 1) n_seq = 1;
    const char *tm = getenv("VQ_TEST_MODELS") ? getenv("VQ_TEST_MODELS") : "build/test-models";
    char golden[1024];
    snprintf(golden, sizeof(golden), "%s/conditional.gguf", tm);
    const char *defaults[] = { "samples/models/default.gguf", "build/sflckr-random.gguf", golden };
    printf("drift of the transformer's next-token distributions against fp32 (bf16, int8); %d threads, "
           "int8 products: %s\n", vq_threads_available(),
           vq_backend_get(VQ_BACKEND_DNNL, VQ_PREC_INT8) ? vq_int8_kernel_name() : "none (int8 falls back)");
    int r = 0;
    if (first < argc)
        for (int i = first; i < argc; i++) r |= run_model(argv[i], n_seq);
    else
        for (int i = 0; i < 3; i++) r |= run_model(defaults[i], n_seq);
    return r ? 1 : 0;
}
