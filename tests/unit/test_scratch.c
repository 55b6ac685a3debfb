/* Working buffers (scratch.h): reuse within a call, the set kept between
 * the encode and decode calls, and that pictures and tokens do not depend
 * on what the kept buffers held before. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "scratch.h"
#include "test_common.h"
#include "vqgan.h"

#define MIB ((size_t)1 << 20)

static void *other_call(void *arg)
{
    /* a call on another thread while the main thread's call holds the set */
    vq_scratch_begin_kept();
    vq_scratch_free(vq_scratch_alloc(*(size_t *)arg));
    vq_scratch_end();
    return NULL;
}

/* The blocks a call leaves become the kept set; the next call gets them
 * back; one that none of its allocations could use is freed at its end. */
static void keep_blocks(void)
{
    vq_scratch_release();
    vq_scratch_begin_kept();
    char *a = vq_scratch_alloc(3 * MIB), *b = vq_scratch_alloc(MIB);
    memset(a, 1, 3 * MIB);
    memset(b, 2, MIB);
    vq_scratch_free(a);
    vq_scratch_free(b);
    vq_scratch_end();
    CHECK(vq_scratch_kept_bytes() == 4 * MIB, "scratch: a call's two free blocks kept (%zu bytes)",
          vq_scratch_kept_bytes());

    vq_scratch_begin_kept();
    CHECK(vq_scratch_kept_bytes() == 0, "scratch: the next call takes the kept set");
    char *a2 = vq_scratch_alloc(3 * MIB);
    char *c = vq_scratch_alloc(64 * MIB);   /* frees the 1 MiB block, too small for it */
    CHECK(a2 == a, "scratch: the next call's allocation of that size gets the kept block back");
    vq_scratch_free(c);
    vq_scratch_free(a2);
    vq_scratch_end();
    CHECK(vq_scratch_kept_bytes() == 67 * MIB, "scratch: kept after the second call: 3 + 64 MiB (%zu MiB)",
          vq_scratch_kept_bytes() / MIB);

    /* nesting: only the outermost begin and end take and hand back */
    vq_scratch_begin_kept();
    vq_scratch_begin();
    char *d = vq_scratch_alloc(3 * MIB);
    vq_scratch_end();
    vq_scratch_free(d);
    vq_scratch_end();
    CHECK(vq_scratch_kept_bytes() == 3 * MIB,
          "scratch: a call that used only the 3 MiB block frees the unused 64 MiB one (%zu MiB kept)",
          vq_scratch_kept_bytes() / MIB);

    /* a call that does not keep frees everything at its end, and leaves the set alone */
    vq_scratch_begin();
    vq_scratch_free(vq_scratch_alloc(5 * MIB));
    vq_scratch_end();
    CHECK(vq_scratch_kept_bytes() == 3 * MIB, "scratch: a call that does not keep leaves the kept set alone");

    /* two calls at once: the one that ends first leaves its blocks, the
     * other's are freed */
    vq_scratch_begin_kept();
    char *e = vq_scratch_alloc(3 * MIB);
    size_t other = 7 * MIB;
    pthread_t t;
    const int started = pthread_create(&t, NULL, other_call, &other) == 0;
    if (started) pthread_join(t, NULL);
    vq_scratch_free(e);
    vq_scratch_end();
    CHECK(started && vq_scratch_kept_bytes() == 7 * MIB,
          "scratch: of two calls at once, the first to end leaves the kept set (%zu MiB)",
          vq_scratch_kept_bytes() / MIB);
    CHECK(vq_scratch_release() == 7 * MIB && vq_scratch_kept_bytes() == 0 && vq_scratch_release() == 0,
          "scratch: releasing the set reports its bytes once");
}

/* An allocation no free block holds frees the smaller free blocks only
 * while the call would hold more than an eighth over its most: a passing
 * buffer freed among many live ones stays for the next (the sampler's
 * forward between its placement caches); a call whose buffers grow frees
 * the ones it outgrew. */
static void miss_policy(void)
{
    vq_scratch_release();
    vq_scratch_begin_kept();
    char *live[8];
    for (int i = 0; i < 8; i++) live[i] = vq_scratch_alloc(8 * MIB);
    vq_scratch_free(vq_scratch_alloc(4 * MIB));
    char *more = vq_scratch_alloc(8 * MIB);   /* no free block holds it: mapped */
    vq_scratch_free(more);
    for (int i = 0; i < 8; i++) vq_scratch_free(live[i]);
    vq_scratch_end();
    CHECK(vq_scratch_kept_bytes() == 76 * MIB,
          "scratch: a passing buffer freed among 64 MiB of live ones stays past a new block (%zu MiB kept, 76 expected)",
          vq_scratch_kept_bytes() / MIB);
    vq_scratch_release();

    vq_scratch_begin_kept();
    vq_scratch_free(vq_scratch_alloc(4 * MIB));
    vq_scratch_free(vq_scratch_alloc(16 * MIB));   /* outgrows the 4 MiB block: that is freed */
    vq_scratch_end();
    CHECK(vq_scratch_kept_bytes() == 16 * MIB, "scratch: a growing call keeps only the block it grew to (%zu MiB)",
          vq_scratch_kept_bytes() / MIB);
    vq_scratch_release();
}

static void *calls(void *arg)
{
    const size_t base = *(size_t *)arg;
    for (int i = 0; i < 200; i++) {
        vq_scratch_begin_kept();
        char *a = vq_scratch_alloc(base + (size_t)(i % 3) * MIB), *b = vq_scratch_alloc(MIB);
        a[0] = b[0] = (char)i;
        vq_scratch_free(b);
        vq_scratch_free(a);
        vq_scratch_end();
        if (i % 50 == 25) vq_scratch_release();
    }
    return NULL;
}

/* Calls on two threads at once taking and leaving the set (check-tsan runs
 * this: the set's lock is what orders them). */
static void keep_threads(void)
{
    size_t base[2] = { MIB, 2 * MIB };
    pthread_t t[2];
    int ok = 1;
    for (int k = 0; k < 2; k++) ok &= pthread_create(&t[k], NULL, calls, &base[k]) == 0;
    for (int k = 0; k < 2 && ok; k++) pthread_join(t[k], NULL);
    const size_t left = vq_scratch_kept_bytes();
    CHECK(ok && left <= 5 * MIB && vq_scratch_release() == left && vq_scratch_kept_bytes() == 0,
          "scratch: two threads' 400 calls leave one call's blocks at most (%zu MiB)", left / MIB);
}

static uint64_t hash(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t x = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) x = (x ^ b[i]) * 1099511628211ull;
    return x;
}

/* With the default model: decoding frame A, then B, then A again (the third
 * call on buffers that held B's layers) gives A's bits, 8-bit and float, as
 * on fresh buffers; encoding likewise, also after decodes; sampling frees
 * the kept set, and so do vqgan_release_buffers and freeing the last
 * session. */
static void session_keep(void)
{
    const char *path = getenv("VQ_DEFAULT_MODEL") ? getenv("VQ_DEFAULT_MODEL") : "samples/models/default.gguf";
    struct vqgan_model *m = NULL;
    struct vqgan_session *s = NULL, *s2 = NULL;
    int r = vqgan_model_load(path, NULL, &m);
    CHECK(r == 0, "scratch: load %s (%s)", path, r ? vqgan_last_error() : "ok");
    if (r) return;
    struct vqgan_model_info info;
    vqgan_model_get_info(m, &info);
    const int W = 128, H = 96, gw = W / info.factor, gh = H / info.factor, n = gw * gh;
    const size_t px = (size_t)W * H * 3;
    struct vqgan_session_params sp = vqgan_session_default_params();
    sp.n_threads = 2;
    r = vqgan_session_new(m, &sp, &s) | vqgan_session_new(m, &sp, &s2);
    int32_t *ta = malloc(sizeof(int32_t) * n), *tb = malloc(sizeof(int32_t) * n), *tc = malloc(sizeof(int32_t) * n),
            *te = malloc(sizeof(int32_t) * n);
    uint8_t *pa = malloc(px), *pb = malloc(px), *pc = malloc(px), *lab = malloc((size_t)W * H);
    float *fa = malloc(sizeof(float) * px), *fc = malloc(sizeof(float) * px);
    for (int i = 0; i < n; i++) {
        ta[i] = (i * 7 + i / gw) % info.image_codes;
        tb[i] = (i * 13 + 5) % info.image_codes;
    }
    vqgan_release_buffers();
    r |= vqgan_decode(s, ta, gw, gh, pa, W * 3);          /* fresh buffers */
    const size_t kept = vq_scratch_kept_bytes();
    CHECK(r == 0 && kept > 0, "scratch: a decode leaves its buffers kept (%.1f MiB)", kept / (double)MIB);
    r = vqgan_decode(s2, tb, gw, gh, pb, W * 3) | vqgan_decode(s, ta, gw, gh, pc, W * 3);
    CHECK(r == 0 && !memcmp(pa, pc, px), "scratch: decode A after B (another session's) gives A on fresh buffers "
          "(8-bit, %016llx)", (unsigned long long)hash(pc, px));
    vqgan_release_buffers();
    r = vqgan_decode_f32(s, ta, gw, gh, fa) | vqgan_decode_f32(s, tb, gw, gh, fc) |
        vqgan_decode_f32(s, ta, gw, gh, fc);
    CHECK(r == 0 && !memcmp(fa, fc, sizeof(float) * px), "scratch: decode_f32 A after B gives A on fresh buffers");

    /* encode: pa on fresh buffers; then pb, and pa again after a decode */
    vqgan_release_buffers();
    r = vqgan_encode_image(s, pa, W * 3, W, H, ta) | vqgan_encode_image(s, pb, W * 3, W, H, tb) |
        vqgan_decode(s2, tb, gw, gh, pc, W * 3) | vqgan_encode_image(s2, pa, W * 3, W, H, tc);
    CHECK(r == 0 && !memcmp(ta, tc, sizeof(int32_t) * n), "scratch: encode A after encode B and a decode gives A's "
          "tokens on fresh buffers (%016llx)", (unsigned long long)hash(tc, sizeof(int32_t) * n));

    /* sampling frees the set first */
    for (int i = 0; i < W * H; i++) lab[i] = (uint8_t)((i % W / 32 + i / W / 24) % info.n_labels);
    r = vqgan_encode_labels(s, lab, W, W, H, te, NULL);
    CHECK(r == 0 && vq_scratch_kept_bytes() > 0, "scratch: a label encode keeps its buffers (%.1f MiB)",
          vq_scratch_kept_bytes() / (double)MIB);
    r = vqgan_sample_conditional(s, te, gw, gh, tc);
    CHECK(r == 0 && vq_scratch_kept_bytes() == 0, "scratch: a sampling call frees the kept set (%s)",
          r ? vqgan_last_error() : "ok");
    r = vqgan_decode(s, ta, gw, gh, pc, W * 3);
    const size_t held = vq_scratch_kept_bytes();
    CHECK(r == 0 && held > 0 && vqgan_release_buffers() == held && vqgan_release_buffers() == 0,
          "scratch: vqgan_release_buffers frees the kept set once (%zu bytes)", held);
    r = vqgan_decode(s, ta, gw, gh, pc, W * 3);
    vqgan_session_free(s);
    CHECK(r == 0 && vq_scratch_kept_bytes() > 0, "scratch: freeing a session, not the last, leaves the set");
    vqgan_session_free(s2);
    CHECK(vq_scratch_kept_bytes() == 0, "scratch: freeing the last session frees the set");

    free(ta); free(tb); free(tc); free(te); free(pa); free(pb); free(pc); free(lab); free(fa); free(fc);
    vqgan_model_unref(m);
}

static const struct test_case cases[] = {
    { "keep_blocks", keep_blocks, 0 },
    { "keep_threads", keep_threads, 0 },
    { "miss_policy", miss_policy, 0 },
    { "session_keep", session_keep, 0 },
};

int main(int argc, char **argv)
{
    (void)golden_path;
    (void)model_path;
    return TEST_RUN_CASES(argc, argv, cases);
}
