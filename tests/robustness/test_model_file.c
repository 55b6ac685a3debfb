/* The loader against one hand-broken model file per field (made by
 * tests/robustness/make_broken_models.py): each is refused with a message naming the
 * field, none crashes. Also: missing file, a directory, the shared cache. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "test_common.h"
#include "vqgan.h"

static void quiet(void *o, int l, const char *m) { (void)o; (void)l; (void)m; }

static void test_broken_set(const char *dir)
{
    char path[2400], line[1200];
    snprintf(path, sizeof(path), "%s/expect.tsv", dir);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "broken-model set: %s exists", path);
    if (!f) return;
    int n = 0;
    while (fgets(line, sizeof(line), f)) {
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = 0;
        char *want = tab + 1;
        want[strcspn(want, "\r\n")] = 0;
        snprintf(path, sizeof(path), "%s/%s", dir, line);
        struct vqgan_model *m = NULL;
        int r = vqgan_model_load(path, NULL, &m);
        if (!strcmp(want, "OK")) {
            CHECK(r == 0 && m, "%s: loads", line);
        } else {
            CHECK(r < 0 && !m && strstr(vqgan_last_error(), want),
                  "%s: refused naming '%s': %s", line, want, vqgan_last_error());
        }
        vqgan_model_unref(m);
        n++;
    }
    fclose(f);
    CHECK(n >= 25, "broken-model set: %d files tried", n);
}

static void test_paths(void)
{
    struct vqgan_model *m = NULL;
    int r = vqgan_model_load("/nonexistent/model.gguf", NULL, &m);
    CHECK(r == VQGAN_ERR_IO && strstr(vqgan_last_error(), "/nonexistent/model.gguf"),
          "missing file refused: %s", vqgan_last_error());
    r = vqgan_model_load("/tmp", NULL, &m);
    CHECK(r == VQGAN_ERR_IO && strstr(vqgan_last_error(), "directory"), "directory refused: %s", vqgan_last_error());
    r = vqgan_model_load("", NULL, &m);
    CHECK(r == VQGAN_ERR_INVALID, "empty path refused: %s", vqgan_last_error());
}

static void test_cache(void)
{
    struct vqgan_model *a = NULL, *b = NULL, *c = NULL;
    const char *p = model_path("vqgan");
    int n0 = vqgan_model_cache_count();
    int r1 = vqgan_model_acquire(p, NULL, &a);
    int r2 = vqgan_model_acquire(p, NULL, &b);
    CHECK(!r1 && !r2 && a == b && vqgan_model_cache_count() == n0 + 1,
          "shared cache: two acquires of one file give one model");
    /* a changed file (new mtime) is loaded afresh */
    char tmp[] = "/tmp/vqtestXXXXXX";
    int fd = mkstemp(tmp);
    FILE *in = fopen(p, "rb");
    char buf[65536];
    size_t k;
    while (in && (k = fread(buf, 1, sizeof(buf), in)) > 0) { if (write(fd, buf, k) != (ssize_t)k) break; }
    if (in) fclose(in);
    close(fd);
    struct vqgan_model *d = NULL, *e = NULL;
    vqgan_model_acquire(tmp, NULL, &d);
    struct timespec ts[2] = { { 1, 0 }, { 1, 0 } };
    utimensat(AT_FDCWD, tmp, ts, 0);
    vqgan_model_acquire(tmp, NULL, &e);
    CHECK(d && e && d != e, "shared cache: a file changed on disk is loaded again");
    vqgan_model_unref(d); vqgan_model_unref(e);
    unlink(tmp);
    vqgan_model_unref(a);
    vqgan_model_unref(b);
    CHECK(vqgan_model_cache_count() == n0, "shared cache: released with the last reference");
    r1 = vqgan_model_acquire(p, NULL, &c);
    CHECK(!r1 && c, "shared cache: reload after release");

    /* the parameters are part of the key, as they resolve on this CPU */
    struct vqgan_model_params mp = vqgan_model_default_params();
    struct vqgan_model *f32 = NULL, *bf = NULL, *raw = NULL;
    mp.precision = VQGAN_PRECISION_FP32;
    vqgan_model_acquire(p, &mp, &f32);
    mp.precision = VQGAN_PRECISION_BF16;
    vqgan_model_acquire(p, &mp, &bf);
    mp.precision = VQGAN_PRECISION_AUTO;
    mp.check_finite = 0;
    vqgan_model_acquire(p, &mp, &raw);
    const int native = vq_backend_get(VQ_BACKEND_DNNL, VQ_PREC_BF16) != NULL;
    CHECK(f32 == c && bf && (native ? bf != c : bf == c) && raw && raw != c,
          "shared cache: fp32 shares auto's model, bf16 %s, check_finite 0 is another model",
          native ? "is another (native bf16 here)" : "shares it too (no native bf16: it resolves to fp32)");
    vqgan_model_unref(f32); vqgan_model_unref(bf); vqgan_model_unref(raw);
    vqgan_model_unref(c);
}

/* The hand-broken set, in the folder VQ_BROKEN_MODELS names. */
static void test_broken(void)
{
    const char *dir = getenv("VQ_BROKEN_MODELS");
    if (dir) test_broken_set(dir);
    else CHECK(0, "broken-model set: VQ_BROKEN_MODELS not set");
}

static const struct test_case cases[] = {
    { "paths", test_paths, 0 },
    { "cache", test_cache, 0 },
    { "broken", test_broken, 0 },
};

int main(int argc, char **argv)
{
    vqgan_set_log_callback(quiet, NULL);
    return TEST_RUN_CASES(argc, argv, cases);
}
