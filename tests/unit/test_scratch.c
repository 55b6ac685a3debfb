/* Working buffers (scratch.h): reuse within a call, the blocks a session
 * keeps between its calls of one kind, and that pictures and tokens do not
 * depend on what the kept buffers held before. */
#include <stdint.h>
#include <string.h>

#include "scratch.h"
#include "session.h"
#include "test_common.h"
#include "vqgan.h"

#define MIB ((size_t)1 << 20)

/* The blocks a call leaves go to its keep; the next call of it gets them
 * back; one that none of its allocations could use is freed at its end. */
static void keep_blocks(void)
{
    struct vq_scratch_keep k = { 0 };
    vq_scratch_begin_keep(&k);
    char *a = vq_scratch_alloc(3 * MIB), *b = vq_scratch_alloc(MIB);
    memset(a, 1, 3 * MIB);
    memset(b, 2, MIB);
    vq_scratch_free(a);
    vq_scratch_free(b);
    vq_scratch_end();
    CHECK(k.n == 2 && vq_scratch_keep_bytes(&k) == 4 * MIB, "scratch: a call's two free blocks kept (%d, %zu bytes)",
          k.n, vq_scratch_keep_bytes(&k));

    vq_scratch_begin_keep(&k);
    CHECK(k.n == 0, "scratch: the next call takes the kept blocks");
    char *a2 = vq_scratch_alloc(3 * MIB);
    char *c = vq_scratch_alloc(64 * MIB);   /* frees the 1 MiB block, too small for it */
    CHECK(a2 == a, "scratch: the next call's allocation of that size gets the kept block back");
    vq_scratch_free(c);
    vq_scratch_free(a2);
    vq_scratch_end();
    CHECK(k.n == 2 && vq_scratch_keep_bytes(&k) == 67 * MIB, "scratch: kept after the second call: 3 + 64 MiB (%zu MiB)",
          vq_scratch_keep_bytes(&k) / MIB);

    /* nesting: only the outermost begin and end take and hand back */
    vq_scratch_begin_keep(&k);
    vq_scratch_begin();
    char *d = vq_scratch_alloc(3 * MIB);
    vq_scratch_end();
    vq_scratch_free(d);
    vq_scratch_end();
    CHECK(k.n == 1 && vq_scratch_keep_bytes(&k) == 3 * MIB,
          "scratch: a call that used only the 3 MiB block frees the unused 64 MiB one (%zu MiB kept)",
          vq_scratch_keep_bytes(&k) / MIB);

    /* a call without a keep frees everything at its end, and leaves k alone */
    vq_scratch_begin();
    vq_scratch_free(vq_scratch_alloc(5 * MIB));
    vq_scratch_end();
    CHECK(k.n == 1, "scratch: a call without a keep leaves the kept blocks alone");
    CHECK(vq_scratch_keep_free(&k) == 3 * MIB && k.n == 0 && vq_scratch_keep_free(&k) == 0,
          "scratch: freeing the keep reports its bytes once");
}

static uint64_t hash(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t x = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) x = (x ^ b[i]) * 1099511628211ull;
    return x;
}

/* With the default model: decoding frame A, then B, then A again on one
 * session (the third call on buffers that held B's layers) gives A's bits,
 * 8-bit and float; encoding likewise; the session keeps only its last kind
 * of call's buffers, and vqgan_session_trim frees them. */
static void session_keep(void)
{
    const char *path = getenv("VQ_DEFAULT_MODEL") ? getenv("VQ_DEFAULT_MODEL") : "samples/models/default.gguf";
    struct vqgan_model *m = NULL;
    struct vqgan_session *s = NULL, *fresh = NULL;
    int r = vqgan_model_load(path, NULL, &m);
    CHECK(r == 0, "scratch: load %s (%s)", path, r ? vqgan_last_error() : "ok");
    if (r) return;
    struct vqgan_model_info info;
    vqgan_model_get_info(m, &info);
    const int W = 128, H = 96, gw = W / info.factor, gh = H / info.factor, n = gw * gh;
    struct vqgan_session_params sp = vqgan_session_default_params();
    sp.n_threads = 2;
    r = vqgan_session_new(m, &sp, &s) | vqgan_session_new(m, &sp, &fresh);
    int32_t *ta = malloc(sizeof(int32_t) * n), *tb = malloc(sizeof(int32_t) * n), *tc = malloc(sizeof(int32_t) * n);
    uint8_t *pa = malloc((size_t)W * H * 3), *pb = malloc((size_t)W * H * 3), *pc = malloc((size_t)W * H * 3);
    float *fa = malloc(sizeof(float) * 3 * W * H), *fc = malloc(sizeof(float) * 3 * W * H);
    for (int i = 0; i < n; i++) {
        ta[i] = (i * 7 + i / gw) % info.image_codes;
        tb[i] = (i * 13 + 5) % info.image_codes;
    }
    r |= vqgan_decode(fresh, ta, gw, gh, pa, W * 3) | vqgan_decode_f32(fresh, ta, gw, gh, fa);
    r |= vqgan_decode(s, tb, gw, gh, pb, W * 3) | vqgan_decode(s, ta, gw, gh, pc, W * 3);
    CHECK(r == 0 && !memcmp(pa, pc, (size_t)W * H * 3),
          "scratch: decode A after B on one session gives a fresh session's A (8-bit, %016llx)",
          (unsigned long long)hash(pc, (size_t)W * H * 3));
    r = vqgan_decode_f32(s, tb, gw, gh, fc) | vqgan_decode_f32(s, ta, gw, gh, fc);
    CHECK(r == 0 && !memcmp(fa, fc, sizeof(float) * 3 * W * H),
          "scratch: decode_f32 A after B on one session gives a fresh session's A");
    const size_t kept = vq_scratch_keep_bytes(&s->keep);
    CHECK(s->keep_kind == VQ_KEEP_DECODE && kept > 0, "scratch: the session keeps its decodes' buffers (%.1f MiB)",
          kept / (double)MIB);

    /* encode: pb (B's picture) then pa on s, against pa on a fresh session */
    r = vqgan_encode_image(fresh, pa, W * 3, W, H, ta) | vqgan_encode_image(s, pb, W * 3, W, H, tb) |
        vqgan_encode_image(s, pa, W * 3, W, H, tc);
    CHECK(r == 0 && !memcmp(ta, tc, sizeof(int32_t) * n), "scratch: encode A after B on one session gives a fresh "
          "session's tokens (%016llx)", (unsigned long long)hash(tc, sizeof(int32_t) * n));
    CHECK(s->keep_kind == VQ_KEEP_ENCODE && vq_scratch_keep_bytes(&s->keep) > 0,
          "scratch: an encode frees the decodes' buffers and keeps its own (%.1f MiB)",
          vq_scratch_keep_bytes(&s->keep) / (double)MIB);
    const size_t held = vq_scratch_keep_bytes(&s->keep);
    CHECK(vqgan_session_trim(s) == held && vqgan_session_trim(s) == 0 && vqgan_session_trim(NULL) == 0,
          "scratch: vqgan_session_trim frees the kept buffers once (%zu bytes)", held);
    r = vqgan_encode_image(s, pa, W * 3, W, H, tc);
    CHECK(r == 0 && !memcmp(ta, tc, sizeof(int32_t) * n), "scratch: a trimmed session encodes alike");

    free(ta); free(tb); free(tc); free(pa); free(pb); free(pc); free(fa); free(fc);
    vqgan_session_free(s);
    vqgan_session_free(fresh);
    vqgan_model_unref(m);
}

static const struct test_case cases[] = {
    { "keep_blocks", keep_blocks, 0 },
    { "session_keep", session_keep, 0 },
};

int main(int argc, char **argv)
{
    (void)golden_path;
    (void)model_path;
    return TEST_RUN_CASES(argc, argv, cases);
}
