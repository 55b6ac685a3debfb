/* libFuzzer target for the model loader (make check-fuzz, make fuzz-long).
 *
 * Each input is written to an in-memory file (memfd) and loaded through the
 * public API, by its /proc/self/fd path, exactly as a file on disk would be.
 * When the loader accepts it, the model is used the way a filter would: info,
 * label names, a session, and on small models one cheap call of every stage
 * it has (decode, encode, label encode, sampling). Any crash, sanitizer
 * report, leak (LeakSanitizer at exit) or hang is a bug; the input then goes
 * to tests/fuzz/regressions/, which tests/robustness/test_robustness.c loads every run.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined (see mk/hardening.mk).
 * With -DVQ_FUZZ_STANDALONE it is a plain program that runs the target once
 * over each file named on the command line (for reproducing without clang). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vqgan.h"

static int fuzz_fd = -1;
static char fuzz_path[64];

static void fuzz_quiet(void *o, int l, const char *m) { (void)o; (void)l; (void)m; }

static int fuzz_setup(void)
{
    if (fuzz_fd >= 0) return 0;
    vqgan_set_log_callback(fuzz_quiet, NULL);
    fuzz_fd = memfd_create("vqgan-fuzz", MFD_CLOEXEC);
    if (fuzz_fd < 0) {
        char tmpl[] = "/tmp/vqgan-fuzz-XXXXXX";
        fuzz_fd = mkstemp(tmpl);
        if (fuzz_fd < 0) { perror("vqgan fuzz: no scratch file"); abort(); }
        unlink(tmpl);
    }
    snprintf(fuzz_path, sizeof(fuzz_path), "/proc/self/fd/%d", fuzz_fd);
    return 0;
}

static int fuzz_write_input(const uint8_t *data, size_t size)
{
    if (ftruncate(fuzz_fd, 0) < 0) return -1;
    size_t off = 0;
    while (off < size) {
        ssize_t n = pwrite(fuzz_fd, data + off, size - off, (off_t)off);
        if (n <= 0) return -1;
        off += (size_t)n;
    }
    return 0;
}

/* Every status must be OK or one of the documented negative codes, and a
 * failure must come with a message. */
static void fuzz_expect_status(int r)
{
    if (r > 0 || r < VQGAN_ERR_CANCELLED) {
        fprintf(stderr, "undocumented status %d\n", r);
        abort();
    }
    if (r < 0 && !vqgan_last_error()[0]) {
        fprintf(stderr, "status %d (%s) without a message\n", r, vqgan_status_string(r));
        abort();
    }
}

static void fuzz_exercise(struct vqgan_model *m)
{
    struct vqgan_model_info info;
    struct vqgan_session *s = NULL;
    int r = vqgan_model_get_info(m, &info);
    fuzz_expect_status(r);
    if (r) return;
    for (int l = -1; l <= info.n_labels; l++) {
        const char *n = vqgan_model_label_name(m, l);
        if (n && strlen(n) > (1u << 20)) abort();
    }
    struct vqgan_session_params sp = vqgan_session_default_params();
    sp.n_threads = 1;
    sp.top_k = 1;                     /* greedy: deterministic, no NaN draws */
    sp.cache_bytes = 1 << 20;
    r = vqgan_session_new(m, &sp, &s);
    fuzz_expect_status(r);
    if (r) return;
    struct vqgan_sample_stats st;
    fuzz_expect_status(vqgan_session_get_stats(s, &st));

    /* one small call per stage; sizes bounded so that a mutated file cannot
     * make an iteration slow (the weights are bounded by the input size) */
    int32_t tok[16] = { 0 };
    if (info.has_first_stage && info.factor >= 1 && info.factor <= 4) {
        const int f = info.factor;
        uint8_t rgb[4 * 4 * 3] = { 0 };
        for (int i = 0; i < f * f * 3; i++) rgb[i] = (uint8_t)(i * 37);
        fuzz_expect_status(vqgan_encode_image(s, rgb, 3 * f, f, f, tok));
        tok[0] = 0;
        fuzz_expect_status(vqgan_decode(s, tok, 1, 1, rgb, 3 * f));
    }
    if (info.cond_kind == VQGAN_COND_SEGMENTATION && info.cond_factor >= 1 && info.cond_factor <= 4 &&
        info.n_labels >= 1) {
        const int f = info.cond_factor;
        uint8_t ids[16] = { 0 };
        for (int i = 0; i < f * f; i++) ids[i] = (uint8_t)(i % info.n_labels);
        r = vqgan_encode_labels(s, ids, f, f, f, tok, NULL);
        fuzz_expect_status(r);
        if (!r && info.has_transformer && info.block_size <= 64)
            fuzz_expect_status(vqgan_sample_conditional(s, tok, 1, 1, tok + 1));
    }
    if ((info.cond_kind == VQGAN_COND_CLASS || info.cond_kind == VQGAN_COND_SOS) && info.has_transformer &&
        info.block_size >= 2 && info.block_size <= 64)
        fuzz_expect_status(vqgan_sample_unconditional(s, 0, 1, 1, tok));
    fuzz_expect_status(vqgan_session_get_stats(s, &st));
    vqgan_session_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vqgan_model *m = NULL;
    fuzz_setup();
    if (fuzz_write_input(data, size)) return 0;
    struct vqgan_model_params p = vqgan_model_default_params();
    if (size && (data[size - 1] & 1)) p.check_finite = 0;   /* both paths */
    int r = vqgan_model_load(fuzz_path, &p, &m);
    fuzz_expect_status(r);
    if (r) {
        if (m) abort();               /* a refused load leaves *out NULL */
        return 0;
    }
    fuzz_exercise(m);
    vqgan_model_unref(m);
    return 0;
}

#ifdef VQ_FUZZ_STANDALONE
int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) { perror(argv[i]); return 1; }
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
        if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) { fclose(f); return 1; }
        fclose(f);
        LLVMFuzzerTestOneInput(b, (size_t)n);
        free(b);
        printf("ok - %s\n", argv[i]);
    }
    return 0;
}
#endif
