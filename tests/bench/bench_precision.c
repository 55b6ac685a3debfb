/* Precision and fast-mode benchmark (issue 6): how often bf16 picks the same
 * tokens as fp32, how far its pictures are from fp32's, and what the
 * approximate fast mode (vqgan_session_params.fast_step) gains and loses
 * against exact sampling.
 *
 *   build/tests/bench_precision [--grid RxC]      (make bench runs it)
 *
 * Models and data:
 *  - the golden cases, $VQ_TEST_MODELS/{conditional,classcond}.gguf (default
 *    build/test-models) with the inputs of $GOLDEN (default ../shared/golden):
 *    the reference's own greedy tokens are known there;
 *  - $VQ_BENCH_MODEL (default build/sflckr-random.gguf: the released S-FLCKR
 *    shapes, random weights) on an RxC token grid (default 16x16 = 256x256
 *    pixels, one window: a few minutes on 2 cores; 16x32 slides it and adds
 *    fast mode, about 15 minutes) of a synthetic landscape label map;
 *  - the trained default model (samples/models/default.gguf, or
 *    $VQ_DEFAULT_MODEL) on 20x32 tokens (320x512) of the same label map,
 *    greedy and top-k 100 sampling: real logits, not random ones.
 *
 * Agreement: tokens equal at the same cell. Once one token differs, every
 * later window that sees it is conditioned differently, so agreement after
 * the first difference measures drift, not per-step error; the first
 * differing cell (raster order) is reported too.
 * PSNR: 8-bit RGB, 10·log10(255² / MSE), "inf" when identical.
 * Sections whose files are missing are skipped with a note. */
#include <math.h>
#include <string.h>

#include "bench_common.h"
#include "landscape.h"
#include "model.h"
#include "npy.h"
#include "session.h"
#include "vqgan.h"
#include "window.h"
#include "window_test.h"

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

static double psnr_u8(const uint8_t *a, const uint8_t *b, size_t n)
{
    double se = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)a[i] - (double)b[i];
        se += d * d;
    }
    if (se == 0) return INFINITY;
    return 10.0 * log10(255.0 * 255.0 / (se / (double)n));
}

static const char *db(double v, char *buf)
{
    if (isinf(v)) return "inf (identical)";
    snprintf(buf, 32, "%.2f dB", v);
    return buf;
}

/* "n/total (p %), first difference at cell k" */
static void agreement(const char *what, const int32_t *a, const int32_t *b, int n)
{
    int same = 0, first = -1;
    for (int i = 0; i < n; i++) {
        if (a[i] == b[i]) same++;
        else if (first < 0) first = i;
    }
    printf("    %-52s %5d/%-5d (%5.1f %%)", what, same, n, 100.0 * same / n);
    if (first >= 0) printf(", first difference at cell %d", first);
    printf("\n");
    fflush(stdout);
}

struct pair {
    struct vqgan_model *m[2];          /* fp32, bf16 */
    struct vqgan_session *s[2];
};

static int pair_load(struct pair *P, const char *path)
{
    memset(P, 0, sizeof(*P));
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("  skipped: %s not found\n", path);
        return -1;
    }
    fclose(f);
    for (int p = 0; p < 2; p++) {
        struct vqgan_model_params mp = vqgan_model_default_params();
        mp.precision = p ? VQGAN_PRECISION_BF16 : VQGAN_PRECISION_FP32;
        if (vqgan_model_load(path, &mp, &P->m[p]) || vqgan_session_new(P->m[p], NULL, &P->s[p])) {
            printf("  skipped: %s: %s\n", path, vqgan_last_error());
            return -1;
        }
    }
    return 0;
}

static void pair_free(struct pair *P)
{
    for (int p = 0; p < 2; p++) {
        vqgan_session_free(P->s[p]);
        vqgan_model_unref(P->m[p]);
    }
}

static void set_sampling(struct vqgan_session *s, int top_k, uint64_t seed, int fast_step)
{
    struct vqgan_session_params sp = vqgan_session_default_params();
    sp.top_k = top_k;
    sp.seed = seed;
    sp.fast_step = fast_step;
    vqgan_session_set_params(s, &sp);
}

static int64_t *i64(struct npy *a) { return (int64_t *)a->data; }

/* ---- the golden segmentation-conditional case ------------------------------ */

static void golden_conditional(void)
{
    printf("[golden conditional: reference greedy tokens known; 72x128 labels, 9x16 tokens, window 4]\n");
    struct pair P;
    char mp[1024], gp[3][1024];
    snprintf(mp, sizeof(mp), "%s/conditional.gguf", env_or("VQ_TEST_MODELS", "build/test-models"));
    const char *g = env_or("GOLDEN", "../shared/golden");
    snprintf(gp[0], sizeof(gp[0]), "%s/conditional/labels.npy", g);
    snprintf(gp[1], sizeof(gp[1]), "%s/conditional/cond_indices.npy", g);
    snprintf(gp[2], sizeof(gp[2]), "%s/conditional/indices.npy", g);
    struct npy lab, ci, ii;
    if (npy_load(gp[0], &lab) || npy_load(gp[1], &ci) || npy_load(gp[2], &ii)) {
        printf("  skipped: golden inputs not found under %s\n", g);
        return;
    }
    if (pair_load(&P, mp)) return;
    const int H = (int)lab.shape[0], W = (int)lab.shape[1], gh = H / 8, gw = W / 8, n = gw * gh;
    int32_t *cond[2], *tok[2], *tokx = malloc(sizeof(int32_t) * n), *ref = malloc(sizeof(int32_t) * n),
            *refc = malloc(sizeof(int32_t) * n);
    uint8_t *rgb[2], *rgbx = malloc((size_t)W * H * 3);
    for (int i = 0; i < n; i++) {
        ref[i] = (int32_t)i64(&ii)[i];
        refc[i] = (int32_t)i64(&ci)[i];
    }
    for (int p = 0; p < 2; p++) {
        cond[p] = malloc(sizeof(int32_t) * n);
        tok[p] = malloc(sizeof(int32_t) * n);
        rgb[p] = malloc((size_t)W * H * 3);
        set_sampling(P.s[p], 1, 0, 0);
        if (vqgan_encode_labels(P.s[p], lab.data, W, W, H, cond[p], NULL) ||
            vqgan_sample_conditional(P.s[p], cond[p], gw, gh, tok[p])) {
            printf("  failed: %s\n", vqgan_last_error());
            goto out;
        }
    }
    agreement("condition tokens, fp32 = reference", cond[0], refc, n);
    agreement("condition tokens, bf16 = fp32", cond[1], cond[0], n);
    agreement("image tokens greedy, fp32 = reference", tok[0], ref, n);
    agreement("image tokens greedy, bf16 pipeline = fp32", tok[1], tok[0], n);
    vqgan_sample_conditional(P.s[1], cond[0], gw, gh, tokx);
    agreement("image tokens greedy, bf16 transformer, fp32 cond", tokx, tok[0], n);
    char b1[32], b2[32];
    vqgan_decode(P.s[0], tok[0], gw, gh, rgb[0], W * 3);
    vqgan_decode(P.s[1], tok[0], gw, gh, rgbx, W * 3);
    vqgan_decode(P.s[1], tok[1], gw, gh, rgb[1], W * 3);
    printf("    decode, same tokens (fp32's), bf16 vs fp32: PSNR %s\n", db(psnr_u8(rgbx, rgb[0], (size_t)W * H * 3), b1));
    printf("    each precision's own tokens, bf16 vs fp32:    PSNR %s\n",
           db(psnr_u8(rgb[1], rgb[0], (size_t)W * H * 3), b2));
out:
    for (int p = 0; p < 2; p++) { free(cond[p]); free(tok[p]); free(rgb[p]); }
    free(tokx); free(ref); free(refc); free(rgbx);
    npy_free(&lab); npy_free(&ci); npy_free(&ii);
    pair_free(&P);
}

/* ---- the golden class-conditional case: every class ------------------------- */

static void golden_classcond(void)
{
    printf("[golden classcond: every class, greedy 4x4 tokens (one cached sequence)]\n");
    struct pair P;
    char mp[1024], gp[2][1024];
    snprintf(mp, sizeof(mp), "%s/classcond.gguf", env_or("VQ_TEST_MODELS", "build/test-models"));
    const char *g = env_or("GOLDEN", "../shared/golden");
    snprintf(gp[0], sizeof(gp[0]), "%s/classcond/class_id.npy", g);
    snprintf(gp[1], sizeof(gp[1]), "%s/classcond/indices.npy", g);
    struct npy cid, ii;
    if (npy_load(gp[0], &cid) || npy_load(gp[1], &ii)) {
        printf("  skipped: golden inputs not found under %s\n", g);
        return;
    }
    if (pair_load(&P, mp)) return;
    struct vqgan_model_info info;
    vqgan_model_get_info(P.m[0], &info);
    const int gw = 4, gh = 4, n = 16, W = gw * info.factor, H = gh * info.factor;
    int32_t t0[16], t1[16];
    uint8_t *a = malloc((size_t)W * H * 3), *b = malloc((size_t)W * H * 3), *c = malloc((size_t)W * H * 3);
    long same = 0, total = 0, classes_same = 0;
    double mse_same = 0, mse_own = 0;
    for (int p = 0; p < 2; p++) set_sampling(P.s[p], 1, 0, 0);
    for (int k = 0; k < info.n_classes; k++) {
        if (vqgan_sample_unconditional(P.s[0], k, gw, gh, t0) || vqgan_sample_unconditional(P.s[1], k, gw, gh, t1)) {
            printf("  failed: %s\n", vqgan_last_error());
            goto out;
        }
        int s = 0;
        for (int i = 0; i < n; i++) s += t0[i] == t1[i];
        same += s;
        total += n;
        classes_same += s == n;
        if (k == (int)i64(&cid)[0]) {
            int r = 0;
            for (int i = 0; i < n; i++) r += t0[i] == (int32_t)i64(&ii)[i];
            printf("    class %d: fp32 = reference on %d/16 tokens\n", k, r);
        }
        vqgan_decode(P.s[0], t0, gw, gh, a, W * 3);
        vqgan_decode(P.s[1], t0, gw, gh, b, W * 3);
        vqgan_decode(P.s[1], t1, gw, gh, c, W * 3);
        const double pa = psnr_u8(a, b, (size_t)W * H * 3), pb = psnr_u8(a, c, (size_t)W * H * 3);
        mse_same += isinf(pa) ? 0 : 65025.0 / pow(10, pa / 10);
        mse_own += isinf(pb) ? 0 : 65025.0 / pow(10, pb / 10);
    }
    printf("    image tokens greedy, bf16 = fp32: %ld/%ld (%.1f %%); all 16 equal for %ld of %d classes\n", same, total,
           100.0 * same / total, classes_same, info.n_classes);
    char b1[32], b2[32];
    printf("    decode, same tokens, bf16 vs fp32: PSNR %s; each precision's own tokens: PSNR %s (over all classes)\n",
           db(mse_same ? 10 * log10(65025.0 / (mse_same / info.n_classes)) : INFINITY, b1),
           db(mse_own ? 10 * log10(65025.0 / (mse_own / info.n_classes)) : INFINITY, b2));
out:
    free(a); free(b); free(c);
    npy_free(&cid); npy_free(&ii);
    pair_free(&P);
}

/* ---- a model on a landscape label map ------------------------------------- */

struct frame {
    int gw, gh, W, H, n;
    uint8_t *ids;
    int32_t *cond;                     /* fp32's condition tokens, used by every run */
};

static int frame_init(struct frame *F, struct pair *P, int gh, int gw)
{
    struct vqgan_model_info info;
    vqgan_model_get_info(P->m[0], &info);
    F->gw = gw; F->gh = gh; F->n = gw * gh;
    F->W = gw * info.factor; F->H = gh * info.factor;
    F->ids = malloc((size_t)F->W * F->H);
    F->cond = malloc(sizeof(int32_t) * F->n);
    landscape(F->ids, F->W, F->H, 0.0);
    int32_t *c1 = malloc(sizeof(int32_t) * F->n);
    int r = vqgan_encode_labels(P->s[0], F->ids, F->W, F->W, F->H, F->cond, NULL);
    if (!r) r = vqgan_encode_labels(P->s[1], F->ids, F->W, F->W, F->H, c1, NULL);
    if (r) printf("  failed: %s\n", vqgan_last_error());
    else agreement("condition tokens, bf16 = fp32", c1, F->cond, F->n);
    free(c1);
    return r;
}

static void frame_free(struct frame *F) { free(F->ids); free(F->cond); }

/* Samples F's grid on session s (its current parameters) and decodes it. */
static int run(struct vqgan_session *s, const struct frame *F, int32_t *tok, uint8_t *rgb, double *sec,
               long long *fed)
{
    double t0 = now_s();
    int r = vqgan_sample_conditional(s, F->cond, F->gw, F->gh, tok);
    *sec = now_s() - t0;
    struct vqgan_sample_stats st;
    vqgan_session_get_stats(s, &st);
    *fed = (long long)st.transformer_tokens;
    if (!r && rgb) r = vqgan_decode(s, tok, F->gw, F->gh, rgb, F->W * 3);
    if (r) printf("  failed: %s\n", vqgan_last_error());
    return r;
}

/* An exact run kept for the fast-mode comparison. */
struct exact_run { int32_t *tok; uint8_t *rgb; double sec; long long fed; };

/* bf16 against fp32 on F: greedy (and top-k sampled when topk > 1); keep
 * (may be NULL) receives bf16's greedy run. */
static void precision_frame(struct pair *P, const struct frame *F, int topk, struct exact_run *keep)
{
    const size_t px = (size_t)F->W * F->H * 3;
    int32_t *t0 = malloc(sizeof(int32_t) * F->n), *t1 = malloc(sizeof(int32_t) * F->n);
    uint8_t *a = malloc(px), *b = malloc(px), *c = malloc(px);
    for (int pass = 0; pass < (topk > 1 ? 2 : 1); pass++) {
        const int k = pass ? topk : 1;
        double s0, s1;
        long long f0, f1;
        for (int p = 0; p < 2; p++) set_sampling(P->s[p], k, 7, 0);
        if (run(P->s[0], F, t0, a, &s0, &f0) || run(P->s[1], F, t1, c, &s1, &f1)) break;
        vqgan_decode(P->s[1], t0, F->gw, F->gh, b, F->W * 3);
        char what[96], b1[32], b2[32];
        snprintf(what, sizeof(what), "image tokens %s, bf16 = fp32 (same cond)", k == 1 ? "greedy" : "top-k 100");
        if (k != 1) snprintf(what, sizeof(what), "image tokens top-k %d seed 7, bf16 = fp32 (same cond)", k);
        agreement(what, t1, t0, F->n);
        int distinct = 0;
        for (int i = 0; i < F->n; i++) {
            int seen = 0;
            for (int j = 0; j < i && !seen; j++) seen = t0[j] == t0[i];
            distinct += !seen;
        }
        printf("      (fp32's grid holds %d distinct tokens)\n", distinct);
        printf("      sampling: fp32 %.1f s, bf16 %.1f s (%.2fx); decode same tokens bf16 vs fp32 PSNR %s; "
               "own tokens PSNR %s\n", s0, s1, s0 / s1, db(psnr_u8(a, b, px), b1), db(psnr_u8(a, c, px), b2));
        fflush(stdout);
        if (keep && k == 1) {
            keep->tok = malloc(sizeof(int32_t) * F->n);
            keep->rgb = malloc(px);
            memcpy(keep->tok, t1, sizeof(int32_t) * F->n);
            memcpy(keep->rgb, c, px);
            keep->sec = s1;
            keep->fed = f1;
        }
    }
    free(t0); free(t1); free(a); free(b); free(c);
}

/* Quality yardstick for a grid of tokens: the mean negative log-likelihood
 * (nats per token) of its tokens under the exact schedule, temperature 1,
 * the full distribution: each cell scored in the reference's window with the
 * grid's own tokens before it (teacher forcing). Lower: more what the model
 * expects there. */
struct nll { double sum; long n; int gw, gh; const int32_t *tok; };

static void nll_add(void *opaque, int i, int j, const float *logits, int vocab)
{
    struct nll *a = opaque;
    if (i >= a->gh || j >= a->gw) return;
    double mx = logits[0], z = 0;
    for (int k = 1; k < vocab; k++) if (logits[k] > mx) mx = logits[k];
    for (int k = 0; k < vocab; k++) z += exp((double)logits[k] - mx);
    a->sum += log(z) + mx - logits[a->tok[(size_t)i * a->gw + j]];
    a->n++;
}

static double nll_exact(struct vqgan_session *s, const struct frame *F, const int32_t *tok)
{
    struct nll a = { 0, 0, F->gw, F->gh, tok };
    struct vq_window_state *st = NULL;
    struct vq_window_params p;
    memset(&p, 0, sizeof(p));
    p.sampling.temperature = 1.0f;
    p.sampling.top_p = 1.0f;
    const struct vq_window_hooks h = { .forced = tok, .on_logits = nll_add, .on_logits_opaque = &a };
    int32_t *out = malloc(sizeof(int32_t) * F->n);
    vq_session_enter(s, VQ_BUFFERS_LOCAL);
    int r = vq_window_sample_hooked(&st, &s->model->gpt, &p, &h, F->cond, F->gw, F->gh, out, NULL);
    vq_session_leave();
    vq_window_state_free(st);
    free(out);
    return r || !a.n ? NAN : a.sum / a.n;
}

/* Fast mode against exact on session s (its precision), greedy or top-k;
 * ex (may be NULL): the exact run, already done. */
static void fast_frame(struct vqgan_session *s, const struct frame *F, int topk, const int *steps, int n_steps,
                       const struct exact_run *ex)
{
    const size_t px = (size_t)F->W * F->H * 3;
    int32_t *te = malloc(sizeof(int32_t) * F->n), *tf = malloc(sizeof(int32_t) * F->n);
    uint8_t *a = malloc(px), *b = malloc(px);
    double se;
    long long fe;
    set_sampling(s, topk, 7, 0);
    if (ex && ex->tok) {
        memcpy(te, ex->tok, sizeof(int32_t) * F->n);
        memcpy(a, ex->rgb, px);
        se = ex->sec;
        fe = ex->fed;
    } else if (run(s, F, te, a, &se, &fe)) {
        goto out;
    }
    const int score = ex == NULL;      /* small models only: one more exact pass per grid */
    printf("    exact      %7.2f s  %7lld positions through the transformer", se, fe);
    if (score) printf("; NLL under the exact schedule %.3f nats/token", nll_exact(s, F, te));
    printf("\n");
    if (topk != 1) {
        /* the yardstick: another exact sample, seed 8 instead of 7 */
        double s8;
        long long f8;
        set_sampling(s, topk, 8, 0);
        if (run(s, F, tf, b, &s8, &f8)) goto out;
        int same = 0;
        for (int i = 0; i < F->n; i++) same += te[i] == tf[i];
        char b1[32];
        printf("    (exact with seed 8 instead of 7: tokens = seed 7's %5.1f %%, PSNR %s, NLL %.3f: what a different "
               "sample looks like)\n", 100.0 * same / F->n, db(psnr_u8(a, b, px), b1), nll_exact(s, F, tf));
    }
    for (int k = 0; k < n_steps; k++) {
        double sf;
        long long ff;
        set_sampling(s, topk, 7, steps[k]);
        if (run(s, F, tf, b, &sf, &ff)) break;
        int same = 0;
        for (int i = 0; i < F->n; i++) same += te[i] == tf[i];
        char b1[32];
        printf("    fast_step=%d %6.2f s  %7lld positions  %5.2fx faster; tokens = exact %5.1f %%; "
               "PSNR vs exact frame %s", steps[k], sf, ff, se / sf, 100.0 * same / F->n, db(psnr_u8(a, b, px), b1));
        if (score) printf("; NLL %.3f", nll_exact(s, F, tf));
        printf("\n");
        fflush(stdout);
    }
    set_sampling(s, topk, 7, 0);
out:
    free(te); free(tf); free(a); free(b);
}

int main(int argc, char **argv)
{
    int gh = 16, gw = 16;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--grid") && i + 1 < argc && sscanf(argv[++i], "%dx%d", &gh, &gw) == 2) {
        } else {
            fprintf(stderr, "usage: %s [--grid ROWSxCOLS]\n", argv[0]);
            return 2;
        }
    (void)bench_peak_gflops;
    const int bf16 = vq_backend_get(VQ_BACKEND_DNNL, VQ_PREC_BF16) != NULL;
    printf("backend %s, %d threads, native bf16: %s\n", vq_backend_default()->name, vq_threads_available(),
           bf16 ? "yes" : "no (every bf16 figure below is fp32 against itself)");
    double t_start = now_s();
    golden_conditional();
    golden_classcond();

    struct pair P;
    struct frame F;
    const char *big = env_or("VQ_BENCH_MODEL", "build/sflckr-random.gguf");
    printf("[%s: S-FLCKR shapes, random weights; %dx%d tokens (%dx%d pixels), landscape labels]\n", big, gh, gw,
           gw * 16, gh * 16);
    if (!pair_load(&P, big)) {
        if (!frame_init(&F, &P, gh, gw)) {
            struct exact_run ex = { 0 };
            precision_frame(&P, &F, 0, &ex);
            if (gh > 17 || gw > 17) {
                printf("  fast mode (bf16, greedy; exact = the bf16 run above):\n");
                static const int steps[] = { 2, 4, 8 };
                fast_frame(P.s[1], &F, 1, steps, 3, &ex);
            } else {
                printf("  fast mode: a grid at most w + 1 = 17 tokens on each side is one placement or nearly;\n"
                       "  see --grid 16x32 and bench_speed's fast_step line\n");
            }
            free(ex.tok);
            free(ex.rgb);
        }
        frame_free(&F);
    }
    pair_free(&P);

    const char *def = env_or("VQ_DEFAULT_MODEL", "samples/models/default.gguf");
    printf("[%s: trained default model; 20x32 tokens (320x512 pixels), landscape labels]\n", def);
    if (!pair_load(&P, def)) {
        if (!frame_init(&F, &P, 20, 32)) {
            precision_frame(&P, &F, 100, NULL);
            static const int steps[] = { 2, 4, 8 };
            printf("  fast mode (fp32, greedy):\n");
            fast_frame(P.s[0], &F, 1, steps, 3, NULL);
            printf("  fast mode (fp32, top-k 100, seed 7):\n");
            fast_frame(P.s[0], &F, 100, steps, 3, NULL);
        }
        frame_free(&F);
        if (!frame_init(&F, &P, 32, 32)) {
            static const int steps[] = { 2, 4, 8 };
            printf("  fast mode (fp32, top-k 100, seed 7), 32x32 tokens:\n");
            fast_frame(P.s[0], &F, 100, steps, 3, NULL);
        }
        frame_free(&F);
    }
    pair_free(&P);
    printf("bench_precision: %.0f s\n", now_s() - t_start);
    return 0;
}
