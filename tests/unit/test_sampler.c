/* Token choice: the generator's documented values, keying by position,
 * greedy / top-k / top-p / temperature semantics (frequencies against the
 * distribution they should follow). */
#include <math.h>
#include <string.h>

#include "sampler.h"
#include "test_common.h"
#include "vqgan.h"

static void test_rng_values(void)
{
    /* the values docs/sampling.md lists (computed independently in Python) */
    CHECK(vq_mix64(0) == 0xe220a8397b1dcdafull, "mix64(0) is splitmix64's first output for state 0");
    static const struct { uint64_t seed; struct vq_draw_key key; uint64_t bits; double u; } v[] = {
        { 0, { 0, 0, 0 }, 0x238275bc38fcbe91ull, 0.13870941014555427 },
        { 1, { 0, 0, 0 }, 0xb18a02f46d8d86c3ull, 0.6935121390102292 },
        { 42, { 0, 3, 5 }, 0xab42d4dbfa539645ull, 0.6689885174803989 },
        { 42, { 1, 3, 5 }, 0x6bb2145728775cb6ull, 0.4206860268390903 },
        { 42, { 0, 5, 3 }, 0x0e1a061f61c749f3ull, 0.05508459345017258 },
        { 12345, { 9, -1, -2 }, 0x8a63b80cf3685ecaull, 0.5405840903871718 },
    };
    for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++) {
        const uint64_t b = vq_rng_bits(v[k].seed, v[k].key);
        const double u = vq_rng_uniform(v[k].seed, v[k].key);
        CHECK(b == v[k].bits && u == v[k].u, "seed %llu, stream %u, (%d, %d): bits %016llx, u %.17g",
              (unsigned long long)v[k].seed, v[k].key.stream, v[k].key.i, v[k].key.j, (unsigned long long)b, u);
    }

    /* uniformity: 20 bins over 200000 keys, every bin within 5 sigma */
    int bins[20] = { 0 };
    const int N = 200000;
    double lo = 1, hi = 0;
    for (int n = 0; n < N; n++) {
        const struct vq_draw_key key = { 0, n / 500, n % 500 };
        const double u = vq_rng_uniform(7, key);
        if (u < lo) lo = u;
        if (u > hi) hi = u;
        bins[(int)(u * 20)]++;
    }
    int worst = 0;
    for (int b = 0; b < 20; b++)
        if (abs(bins[b] - N / 20) > worst) worst = abs(bins[b] - N / 20);
    const double sigma = sqrt(N * 0.05 * 0.95);
    CHECK(lo >= 0 && hi < 1 && worst < 5 * sigma, "uniform in [0, 1): 20 bins within %.0f of %d (worst %d)",
          5 * sigma, N / 20, worst);
}

static double freq_err(const int *count, const double *p, int n, int N)
{
    /* largest deviation from the expected count, in standard deviations */
    double worst = 0;
    for (int k = 0; k < n; k++) {
        const double mu = N * p[k], sd = sqrt(N * p[k] * (1 - p[k])) + 1e-9;
        const double z = fabs(count[k] - mu) / sd;
        if (p[k] == 0 && count[k]) return INFINITY;
        if (z > worst) worst = z;
    }
    return worst;
}

/* Draws N tokens with keys (stream 0, n/1000, n%1000). */
static int draw_counts(const float *logits, int n, struct vq_sampler_params sp, int N, int *count)
{
    struct vq_sampler s;
    if (vq_sampler_init(&s, &sp, n)) return -1;
    memset(count, 0, sizeof(int) * n);
    for (int k = 0; k < N; k++) {
        const struct vq_draw_key key = { 0, k / 1000, k % 1000 };
        const int t = vq_sample_token(&s, logits, key);
        if (t < 0 || t >= n) { vq_sampler_free(&s); return -1; }
        count[t]++;
    }
    vq_sampler_free(&s);
    return 0;
}

static void test_semantics(void)
{
    enum { V = 6, N = 100000 };
    /* token 4 and 1 tie for best, 0 and 5 tie lower */
    const float logits[V] = { 0.5f, 2.0f, -1.0f, 1.0f, 2.0f, 0.5f };
    struct vq_sampler_params sp = { 1.0f, 0, 1.0f, 99 };
    int count[V];
    double p[V];

    CHECK(vq_argmax(logits, V) == 1, "argmax takes the lowest index among equal maxima");

    sp.top_k = 1;
    int rc = draw_counts(logits, V, sp, 1000, count);
    CHECK(rc == 0 && count[1] == 1000, "top_k = 1 is greedy: always token 1 (lowest index of the tie)");

    /* plain softmax at temperatures 1, 0.5, 2 */
    const float temps[] = { 1.0f, 0.5f, 2.0f };
    for (int t = 0; t < 3; t++) {
        sp.top_k = 0;
        sp.temperature = temps[t];
        double z = 0;
        for (int k = 0; k < V; k++) z += p[k] = exp(logits[k] / temps[t]);
        for (int k = 0; k < V; k++) p[k] /= z;
        rc = draw_counts(logits, V, sp, N, count);
        const double e = freq_err(count, p, V, N);
        CHECK(rc == 0 && e < 5, "temperature %.1f: frequencies follow softmax(logits / T) (worst %.1f sigma)",
              temps[t], e);
    }

    /* top-k = 3: tokens 1, 4 (tied best), 3; the tie at rank 4..5 (tokens 0, 5) is cut */
    sp.temperature = 1.0f;
    sp.top_k = 3;
    {
        double z = exp(2.0) * 2 + exp(1.0);
        for (int k = 0; k < V; k++) p[k] = 0;
        p[1] = p[4] = exp(2.0) / z;
        p[3] = exp(1.0) / z;
        rc = draw_counts(logits, V, sp, N, count);
        const double e = freq_err(count, p, V, N);
        CHECK(rc == 0 && e < 5, "top_k = 3 keeps tokens 1, 4, 3 renormalised (worst %.1f sigma)", e);
    }
    sp.top_k = 4;
    rc = draw_counts(logits, V, sp, N, count);
    CHECK(rc == 0 && count[0] > 0 && count[5] == 0 && count[2] == 0,
          "top_k = 4: of the tied tokens 0 and 5 only the lower index is kept");
}

static void test_top_p(void)
{
    enum { V = 4, N = 100000 };
    const double q[V] = { 0.05, 0.5, 0.15, 0.3 };   /* ranked: 1, 3, 2, 0 */
    float logits[V];
    for (int k = 0; k < V; k++) logits[k] = (float)log(q[k]);
    struct vq_sampler_params sp = { 1.0f, 0, 1.0f, 5 };
    int count[V];
    double p[V];
    static const struct { float top_p; int keep; } cases[] = {
        { 0.45f, 1 }, { 0.6f, 2 }, { 0.79f, 2 }, { 0.9f, 3 }, { 0.97f, 4 }, { 1.0f, 4 },
    };
    const int rank[V] = { 1, 3, 2, 0 };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        sp.top_p = cases[c].top_p;
        double z = 0;
        for (int k = 0; k < V; k++) p[k] = 0;
        for (int k = 0; k < cases[c].keep; k++) z += q[rank[k]];
        for (int k = 0; k < cases[c].keep; k++) p[rank[k]] = q[rank[k]] / z;
        int rc = draw_counts(logits, V, sp, N, count);
        const double e = freq_err(count, p, V, N);
        CHECK(rc == 0 && e < 5, "top_p = %.2f keeps the %d most likely tokens (through the first whose cumulative "
              "probability exceeds top_p), renormalised (worst %.1f sigma)", cases[c].top_p, cases[c].keep, e);
    }
    /* top-k first, then top-p over the renormalised top-k distribution:
     * top-2 gives 0.625 / 0.375, so top_p 0.6 keeps only token 1 */
    sp.top_k = 2;
    sp.top_p = 0.6f;
    int rc = draw_counts(logits, V, sp, 2000, count);
    CHECK(rc == 0 && count[1] == 2000, "top_k 2 then top_p 0.6 (on the renormalised 0.625/0.375) keeps token 1 only");
}

/* The token for a key is the first ranked token whose cumulative probability
 * exceeds u, whatever order keys are drawn in. */
static void test_keyed(void)
{
    enum { V = 16, G = 24 };
    float logits[V];
    for (int k = 0; k < V; k++) logits[k] = (float)((k * 7) % V) * 0.3f;
    struct vq_sampler_params sp = { 0.8f, 0, 1.0f, 2024 };
    struct vq_sampler s;
    int fwd[G][G], bwd[G][G], ok_cdf = 1;
    if (vq_sampler_init(&s, &sp, V)) { CHECK(0, "sampler init"); return; }
    for (int i = 0; i < G; i++)
        for (int j = 0; j < G; j++) {
            const struct vq_draw_key key = { 0, i, j };
            fwd[i][j] = vq_sample_token(&s, logits, key);
            /* independent inverse CDF: ranked by logit (distinct here) */
            double z = 0, c = 0;
            for (int k = 0; k < V; k++) z += exp(logits[k] / 0.8);
            const double u = vq_rng_uniform(2024, key);
            int want = -1;
            for (int r = V - 1; r >= 0 && want < 0; r--)   /* logit (k*7 % V)*0.3: rank by value */
                for (int k = 0; k < V; k++)
                    if ((k * 7) % V == r) {
                        c += exp(logits[k] / 0.8) / z;
                        if (c > u) want = k;
                    }
            if (want != fwd[i][j]) ok_cdf = 0;
        }
    for (int i = G - 1; i >= 0; i--)
        for (int j = G - 1; j >= 0; j--) {
            const struct vq_draw_key key = { 0, i, j };
            bwd[i][j] = vq_sample_token(&s, logits, key);
        }
    CHECK(ok_cdf, "each token is the inverse CDF of u(seed, key) over the ranked distribution");
    CHECK(!memcmp(fwd, bwd, sizeof(fwd)), "draws keyed by position: raster and reverse order give the same tokens");

    int diff_seed = 0, diff_stream = 0, diff_swap = 0;
    struct vq_sampler s2, s3;
    sp.seed = 2025;
    if (vq_sampler_init(&s2, &sp, V)) { CHECK(0, "sampler init"); vq_sampler_free(&s); return; }
    sp.seed = 2024;
    if (vq_sampler_init(&s3, &sp, V)) { CHECK(0, "sampler init"); vq_sampler_free(&s); vq_sampler_free(&s2); return; }
    for (int i = 0; i < G; i++)
        for (int j = 0; j < G; j++) {
            const struct vq_draw_key key = { 0, i, j }, other = { 1, i, j };
            diff_seed += vq_sample_token(&s2, logits, key) != fwd[i][j];
            diff_stream += vq_sample_token(&s3, logits, other) != fwd[i][j];
            diff_swap += fwd[i][j] != fwd[j][i];
        }
    CHECK(diff_seed > G * G / 2, "another seed changes most tokens (%d of %d)", diff_seed, G * G);
    CHECK(diff_stream > G * G / 2, "another stream changes most tokens (%d of %d)", diff_stream, G * G);
    CHECK(diff_swap > G * G / 2, "(i, j) and (j, i) draw independently (%d of %d differ)", diff_swap, G * G);
    vq_sampler_free(&s);
    vq_sampler_free(&s2);
    vq_sampler_free(&s3);
}

static void test_invalid(void)
{
    struct vq_sampler s;
    const struct vq_sampler_params bad[] = {
        { 0.0f, 0, 1.0f, 0 }, { -1.0f, 0, 1.0f, 0 }, { INFINITY, 0, 1.0f, 0 }, { NAN, 0, 1.0f, 0 },
        { 1.0f, -1, 1.0f, 0 }, { 1.0f, 11, 1.0f, 0 }, { 1.0f, 0, 0.0f, 0 }, { 1.0f, 0, 1.5f, 0 },
        { 1.0f, 0, NAN, 0 },
    };
    int refused = 0;
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
        refused += vq_sampler_init(&s, &bad[k], 10) == VQGAN_ERR_INVALID;
    CHECK(refused == (int)(sizeof(bad) / sizeof(bad[0])),
          "temperature <= 0 / inf / NaN, top_k < 0 or > vocabulary, top_p outside (0, 1] are refused (%d of %d)",
          refused, (int)(sizeof(bad) / sizeof(bad[0])));
    const struct vq_sampler_params good = { 1.0f, 10, 1.0f, 0 };
    int rc = vq_sampler_init(&s, &good, 10);
    CHECK(rc == 0, "top_k equal to the vocabulary is accepted");
    if (!rc) vq_sampler_free(&s);
}

static void drop(void *o, int l, const char *m) { (void)o; (void)l; (void)m; }

static const struct test_case cases[] = {
    { "rng_values", test_rng_values, 0 },
    { "semantics", test_semantics, 0 },
    { "top_p", test_top_p, 0 },
    { "keyed", test_keyed, 0 },
    { "invalid", test_invalid, 0 },
};

int main(int argc, char **argv)
{
    (void)golden_path;
    (void)model_path;
    vqgan_set_log_callback(drop, NULL);
    return TEST_RUN_CASES(argc, argv, cases);
}
