/* The transformer: a plain scalar forward written here from mingpt.py is the
 * reference; prefill and one-at-a-time decode agree; the golden `gpt` case. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "attention.h"
#include "backend.h"
#include "gpt.h"
#include "model.h"
#include "npy.h"
#include "test_common.h"
#include "vqgan.h"

/* ---- a random GPT ----------------------------------------------------------- */

#include "random_gpt.h"

/* ---- the scalar reference (double accumulation, whole sequence) ------------- */

static void ref_ln(const double *x, int D, const float *g, const float *b, double *y)
{
    double m = 0, v = 0;
    for (int i = 0; i < D; i++) m += x[i];
    m /= D;
    for (int i = 0; i < D; i++) v += (x[i] - m) * (x[i] - m);
    v /= D;
    for (int i = 0; i < D; i++) y[i] = (x[i] - m) / sqrt(v + 1e-5) * g[i] + b[i];
}

static void ref_lin(const double *x, int Din, const float *W, const float *b, int Dout, double *y)
{
    for (int o = 0; o < Dout; o++) {
        double acc = b ? b[o] : 0.0;
        for (int i = 0; i < Din; i++) acc += (double)W[(size_t)o * Din + i] * x[i];
        y[o] = acc;
    }
}

static void ref_forward(const struct vq_gpt *g, const int32_t *idx, int T, float *logits)
{
    const int D = g->n_embd, nh = g->n_head, hd = D / nh, V = g->vocab;
    double *x = malloc(sizeof(double) * T * D), *xn = malloc(sizeof(double) * T * D);
    double *q = malloc(sizeof(double) * T * D), *k = malloc(sizeof(double) * T * D);
    double *v = malloc(sizeof(double) * T * D), *y = malloc(sizeof(double) * T * D);
    double *h = malloc(sizeof(double) * 4 * D), *t = malloc(sizeof(double) * 4 * D), *att = malloc(sizeof(double) * T);
    for (int p = 0; p < T; p++)
        for (int i = 0; i < D; i++)
            x[p * D + i] = (double)g->tok_emb[(size_t)idx[p] * D + i] + g->pos_emb[(size_t)p * D + i];
    for (int l = 0; l < g->n_layer; l++) {
        const struct vq_gpt_block *b = &g->blocks[l];
        for (int p = 0; p < T; p++) {
            ref_ln(x + p * D, D, b->ln1_w, b->ln1_b, xn + p * D);
            ref_lin(xn + p * D, D, b->q_w, b->q_b, D, q + p * D);
            ref_lin(xn + p * D, D, b->k_w, b->k_b, D, k + p * D);
            ref_lin(xn + p * D, D, b->v_w, b->v_b, D, v + p * D);
        }
        for (int hh = 0; hh < nh; hh++)
            for (int p = 0; p < T; p++) {
                double mx = -1e300, sum = 0;
                for (int s = 0; s < T; s++) {
                    const int visible = s <= p || (p < g->n_unmasked && s < g->n_unmasked);
                    double d = 0;
                    for (int i = 0; i < hd; i++) d += q[p * D + hh * hd + i] * k[s * D + hh * hd + i];
                    att[s] = visible ? d / sqrt((double)hd) : -INFINITY;
                    if (att[s] > mx) mx = att[s];
                }
                for (int s = 0; s < T; s++) { att[s] = exp(att[s] - mx); sum += att[s]; }
                for (int i = 0; i < hd; i++) {
                    double acc = 0;
                    for (int s = 0; s < T; s++) acc += att[s] / sum * v[s * D + hh * hd + i];
                    y[p * D + hh * hd + i] = acc;
                }
            }
        for (int p = 0; p < T; p++) {
            ref_lin(y + p * D, D, b->proj_w, b->proj_b, D, t);
            for (int i = 0; i < D; i++) x[p * D + i] += t[i];
            ref_ln(x + p * D, D, b->ln2_w, b->ln2_b, xn + p * D);
            ref_lin(xn + p * D, D, b->fc_w, b->fc_b, 4 * D, h);
            for (int i = 0; i < 4 * D; i++) h[i] = 0.5 * h[i] * (1.0 + erf(h[i] / sqrt(2.0)));
            ref_lin(h, 4 * D, b->fc2_w, b->fc2_b, D, t);
            for (int i = 0; i < D; i++) x[p * D + i] += t[i];
        }
    }
    for (int p = 0; p < T; p++) {
        ref_ln(x + p * D, D, g->lnf_w, g->lnf_b, xn + p * D);
        for (int o = 0; o < V; o++) {
            double acc = 0;
            for (int i = 0; i < D; i++) acc += (double)g->head_w[(size_t)o * D + i] * xn[p * D + i];
            logits[(size_t)p * V + o] = (float)acc;
        }
    }
    free(x); free(xn); free(q); free(k); free(v); free(y); free(h); free(t); free(att);
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN propagates */
    }
    return m;
}

static double max_abs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(a[i]) > m) m = fabs(a[i]);
    return m;
}

/* Feeds idx[0..T) in chunks of the given sizes (repeating the list), keeping
 * every row's logits. */
static int chunked(const struct vq_gpt *g, const int32_t *idx, int T, const int *sizes, int n_sizes,
                   float *logits)
{
    struct vq_kv_cache c;
    int r = vq_kv_cache_init(&c, g, T);
    for (int p = 0, k = 0; !r && p < T; k++) {
        int n = sizes[k % n_sizes];
        if (n > T - p) n = T - p;
        r = vq_gpt_forward(NULL, g, &c, idx + p, n, 0, logits + (size_t)p * g->vocab);
        p += n;
    }
    vq_kv_cache_free(&c);
    return r;
}

static void test_random(int vocab, int block, int n_layer, int n_head, int D, int n_unmasked, uint64_t seed)
{
    struct rgpt r;
    char name[128];
    snprintf(name, sizeof(name), "vocab %d, block %d, %d layers, %d heads, width %d, n_unmasked %d",
             vocab, block, n_layer, n_head, D, n_unmasked);
    if (rgpt_init_unmasked(&r, vocab, block, n_layer, n_head, D, n_unmasked, seed)) {
        CHECK(0, "%s: allocation", name);
        return;
    }
    const struct vq_gpt *g = &r.g;
    const int T = block;
    int32_t *idx = malloc(sizeof(int32_t) * T);
    float *ref = malloc(sizeof(float) * T * vocab), *all = malloc(sizeof(float) * T * vocab);
    float *dec = malloc(sizeof(float) * T * vocab), *mix = malloc(sizeof(float) * T * vocab);
    float *last = malloc(sizeof(float) * vocab);
    for (int p = 0; p < T; p++)
        idx[p] = (int32_t)((frand() + 1.0f) * 0.5f * vocab) % vocab;
    ref_forward(g, idx, T, ref);

    int rc = vq_gpt_logits_all(NULL, g, idx, T, all);
    double e = max_abs_diff(all, ref, (size_t)T * vocab);
    CHECK(rc == 0 && e < 1e-4, "%s: prefill vs scalar reference, max |diff| %.2e (logits up to %.1f)", name, e,
          max_abs(ref, (size_t)T * vocab));

    /* decode and chunks sum in other orders than the prefill (few-rows
     * kernels, other attention tiles), so they agree to rounding: within
     * 2e-6 of the largest logit, about 30 units of fp32's roundoff there
     * (on AVX2 the odd widths here differ by 1.3e-5 at logits of 12) */
    const double tol = 2e-6 * (1.0 + max_abs(all, (size_t)T * vocab));

    /* decode: the n_unmasked block first (it must go together), then one at a time */
    int first = n_unmasked > 1 ? n_unmasked : 1;
    struct vq_kv_cache c;
    rc = vq_kv_cache_init(&c, g, T);
    if (!rc) rc = vq_gpt_forward(NULL, g, &c, idx, first, 0, dec);
    for (int p = first; !rc && p < T; p++)
        rc = vq_gpt_forward(NULL, g, &c, idx + p, 1, 0, dec + (size_t)p * vocab);
    vq_kv_cache_free(&c);
    e = max_abs_diff(dec, all, (size_t)T * vocab);
    CHECK(rc == 0 && e <= tol, "%s: one-at-a-time decode vs prefill, max |diff| %.2e <= %.2e", name, e, tol);

    const int sizes[] = { first > 5 ? first : 5, 1, 3, 7, 2 };
    rc = chunked(g, idx, T, sizes, 5, mix);
    e = max_abs_diff(mix, all, (size_t)T * vocab);
    CHECK(rc == 0 && e <= tol, "%s: chunks of 5,1,3,7,2 vs prefill, max |diff| %.2e <= %.2e", name, e, tol);

    /* only the last row's logits */
    rc = vq_kv_cache_init(&c, g, T);
    if (!rc) rc = vq_gpt_forward(NULL, g, &c, idx, T, T - 1, last);
    e = max_abs_diff(last, all + (size_t)(T - 1) * vocab, vocab);
    CHECK(rc == 0 && c.len == T && e <= tol, "%s: last-row-only logits match the full prefill's last row (%.2e)",
          name, e);
    /* the cache is full now */
    rc = vq_gpt_forward(NULL, g, &c, idx, 1, 0, last);
    CHECK(rc == VQGAN_ERR_LIMIT && c.len == T, "%s: feeding past the cache is refused (VQGAN_ERR_LIMIT)", name);
    vq_kv_cache_free(&c);

    /* thread count does not change a bit */
    const struct vq_exec one = vq_exec_make(NULL, 1), two = vq_exec_make(NULL, 2);
    rc = vq_gpt_logits_all(&one, g, idx, T, dec);
    rc |= vq_gpt_logits_all(&two, g, idx, T, mix);
    CHECK(rc == 0 && !memcmp(dec, mix, sizeof(float) * T * vocab), "%s: 1 and 2 threads bit-identical", name);

    free(idx); free(ref); free(all); free(dec); free(mix); free(last);
    rgpt_free(&r);
}

/* bf16 (or int8) products with the bf16 cache layout (gpt.h): half the bytes; logits
 * near fp32's; one-at-a-time decode and chunks near the prefill (other
 * summation orders), a row computed in a later chunk of 64 rows or more
 * bit-identical; an odd number of positions fed, then more. */
static void test_reduced(int prec)
{
    struct rgpt r;
    if (rgpt_init_unmasked(&r, 48, 72, 2, 2, 64, 3, 21)) { CHECK(0, "allocation"); return; }
    struct vq_gpt *g = &r.g;
    const struct vq_backend *bf16 = vq_backend_get(VQ_BACKEND_DNNL, prec);
    const char *name = prec == VQ_PREC_INT8 ? "int8" : "bf16";
    if (!bf16 || !vq_attention_bf16_kernel(bf16, 32)) {
        printf("ok - transformer %s: no %s here (skipped)\n", name,
               prec == VQ_PREC_INT8 ? "AVX512_VNNI with AVX512_BF16" : "AVX512_BF16");
        rgpt_free(&r);
        return;
    }
    const int T = 71, V = g->vocab;
    int32_t idx[72];
    for (int p = 0; p < T; p++) idx[p] = (int32_t)((frand() + 1.0f) * 0.5f * V) % V;
    float *f32 = malloc(sizeof(float) * T * V), *all = malloc(sizeof(float) * T * V),
          *dec = malloc(sizeof(float) * T * V), *tail = malloc(sizeof(float) * T * V);
    int rc = vq_gpt_logits_all(NULL, g, idx, T, f32);
    const size_t fp32_bytes = vq_kv_cache_bytes(g, T);
    rc |= vq_gpt_pack(g, bf16);
    const size_t bf16_bytes = vq_kv_cache_bytes(g, T);
    CHECK(vq_kv_cache_bf16(g) && bf16_bytes == fp32_bytes / T * (T + 1) / 2,
          "transformer %s: the cache takes the bf16 layout, %zu bytes for %d positions (fp32: %zu)", name, bf16_bytes, T,
          fp32_bytes);
    rc |= vq_gpt_logits_all(NULL, g, idx, T, all);
    const double scale = max_abs(f32, (size_t)T * V);
    double e = max_abs_diff(all, f32, (size_t)T * V);
    CHECK(rc == 0 && e < 0.05 * scale, "transformer %s: prefill logits within %.2g of fp32's (5 %% of their "
          "largest, %.1f)", name, e, scale);

    struct vq_kv_cache c;
    rc = vq_kv_cache_init(&c, g, T);
    if (!rc) rc = vq_gpt_forward(NULL, g, &c, idx, 3, 0, dec);
    for (int p = 3; !rc && p < T; p++)
        rc = vq_gpt_forward(NULL, g, &c, idx + p, 1, 0, dec + (size_t)p * V);
    e = max_abs_diff(dec, all, (size_t)T * V);
    CHECK(rc == 0 && c.bf16 && e < 0.02 * scale, "transformer %s: one-at-a-time decode (odd and even ends) within "
          "%.2g of the prefill", name, e);
    /* positions 7..70 (64 rows) after a first call of 7: bit-identical rows */
    c.len = 0;
    rc = vq_gpt_forward(NULL, g, &c, idx, 7, 7, NULL);
    if (!rc) rc = vq_gpt_forward(NULL, g, &c, idx + 7, T - 7, 0, tail);
    vq_kv_cache_free(&c);
    CHECK(rc == 0 && !memcmp(tail, all + (size_t)7 * V, sizeof(float) * (T - 7) * V),
          "transformer %s: 64 rows fed after 7 bit-identical to the same rows of the prefill", name);
    vq_gpt_unpack(g);
    free(f32); free(all); free(dec); free(tail);
    rgpt_free(&r);
}

static void test_errors(void)
{
    struct rgpt r;
    if (rgpt_init_unmasked(&r, 16, 8, 1, 2, 8, 3, 7)) { CHECK(0, "allocation"); return; }
    struct vq_kv_cache c;
    float logits[16 * 8];
    int32_t idx[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    int rc = vq_kv_cache_init(&c, &r.g, 8);
    CHECK(rc == 0, "cache of 8 positions");
    rc = vq_gpt_forward(NULL, &r.g, &c, idx, 2, 0, logits);
    CHECK(rc == VQGAN_ERR_INVALID && c.len == 0, "a first chunk shorter than n_unmasked = 3 is refused");
    idx[1] = 16;
    rc = vq_gpt_forward(NULL, &r.g, &c, idx, 3, 0, logits);
    CHECK(rc == VQGAN_ERR_INVALID && c.len == 0, "token 16 with vocabulary 16 is refused");
    idx[1] = -1;
    rc = vq_gpt_forward(NULL, &r.g, &c, idx, 3, 0, logits);
    CHECK(rc == VQGAN_ERR_INVALID && c.len == 0, "token -1 is refused");
    idx[1] = 2;
    rc = vq_gpt_forward(NULL, &r.g, &c, idx, 3, 2, logits);
    CHECK(rc == 0 && c.len == 3, "a first chunk of n_unmasked positions is accepted");
    vq_kv_cache_free(&c);
    rc = vq_kv_cache_init(&c, &r.g, 9);
    CHECK(rc == VQGAN_ERR_INVALID, "a cache longer than the block is refused");
    rgpt_free(&r);
}

static void test_golden(void)
{
    struct vqgan_model *m = NULL;
    struct npy idx, ref;
    int rc = vqgan_model_load(model_path("gpt"), NULL, &m);
    CHECK(rc == 0, "load %s", model_path("gpt"));
    if (rc) return;
    if (npy_load(golden_path("gpt/idx.npy"), &idx) || npy_load(golden_path("gpt/logits.npy"), &ref)) {
        CHECK(0, "read golden gpt/idx.npy and gpt/logits.npy");
        vqgan_model_unref(m);
        return;
    }
    const struct vq_gpt *g = &m->gpt;
    const int B = (int)idx.shape[0], T = (int)idx.shape[1], V = g->vocab;
    CHECK(g->present && ref.shape[2] == V && ref.shape[1] == T, "golden shapes: %dx%d tokens, vocabulary %d", B, T, V);
    float *out = malloc(sizeof(float) * T * V), *dec = malloc(sizeof(float) * T * V);
    int32_t *tok = malloc(sizeof(int32_t) * T);
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++)
            tok[t] = (int32_t)((const int64_t *)idx.data)[b * T + t];
        const float *want = (const float *)ref.data + (size_t)b * T * V;
        rc = vq_gpt_logits_all(NULL, g, tok, T, out);
        double e = max_abs_diff(out, want, (size_t)T * V);
        CHECK(rc == 0 && e <= 1e-4, "golden gpt, sequence %d: logits of all %d positions within 1e-4 (max |diff| %.2e)",
              b, T, e);
        const int one[] = { 1 };
        rc = chunked(g, tok, T, one, 1, dec);
        e = max_abs_diff(dec, want, (size_t)T * V);
        CHECK(rc == 0 && e <= 1e-4, "golden gpt, sequence %d: one-at-a-time decode within 1e-4 (max |diff| %.2e)", b, e);
    }
    free(out); free(dec); free(tok);
    npy_free(&idx);
    npy_free(&ref);
    vqgan_model_unref(m);
}

static void test_random_shapes(void)
{
    test_random(32, 24, 2, 4, 32, 0, 1);
    test_random(50, 37, 3, 3, 24, 0, 2);      /* odd sizes, head width 8 */
    test_random(40, 30, 2, 2, 16, 9, 3);      /* n_unmasked > 0 */
    test_random(64, 64, 1, 8, 64, 1, 4);
}

static void test_bf16(void) { test_reduced(VQ_PREC_BF16); }
static void test_int8(void) { test_reduced(VQ_PREC_INT8); }

static const struct test_case cases[] = {
    { "random", test_random_shapes, 0 },
    { "bf16", test_bf16, 0 },
    { "int8", test_int8, 0 },
    { "errors", test_errors, 0 },
    { "golden", test_golden, 1 },
};

int main(int argc, char **argv)
{
    return TEST_RUN_CASES(argc, argv, cases);
}
