/* The parts of the public API that make the library installable and usable
 * from other programs: the version from VERSION, the installed default model
 * path, the palette a model file carries, and the per-session log callback
 * (messages of a session's calls reach its own callback, not the process's). */
#include <string.h>

#include "vqgan.h"
#include "test_common.h"

struct log_rec { int n; int errors; char last[256]; };

static void rec_log(void *opaque, int level, const char *msg)
{
    struct log_rec *r = opaque;
    r->n++;
    if (level == VQGAN_LOG_ERROR) r->errors++;
    snprintf(r->last, sizeof(r->last), "%s", msg);
}

static void test_version(void)
{
    char want[32];
    snprintf(want, sizeof(want), "%d.%d.%d", VQGAN_VERSION_MAJOR, VQGAN_VERSION_MINOR, VQGAN_VERSION_PATCH);
    CHECK(!strcmp(vqgan_version(), VQGAN_VERSION_STRING) && !strcmp(want, VQGAN_VERSION_STRING),
          "vqgan_version() \"%s\" = VQGAN_VERSION_STRING \"%s\" = MAJOR.MINOR.PATCH", vqgan_version(),
          VQGAN_VERSION_STRING);
}

/* The ABI of this soname (Makefile: libvqgan.so.0.MINOR while the major
 * version is 0): the sizes of the structs a caller allocates or receives by
 * value, as this version was released with. A change of size breaks programs
 * built against the same soname: bump VERSION's minor (the soname follows),
 * then record the new version and sizes here. */
#define ABI_MAJOR 0
#define ABI_MINOR 3
static void test_abi_sizes(void)
{
    const size_t want[4] = { 8, 144, 88, 72 };
    const size_t got[4] = { sizeof(struct vqgan_model_params), sizeof(struct vqgan_model_info),
                            sizeof(struct vqgan_session_params), sizeof(struct vqgan_sample_stats) };
    const int same = !memcmp(want, got, sizeof(want));
    if (VQGAN_VERSION_MAJOR == ABI_MAJOR && VQGAN_VERSION_MINOR == ABI_MINOR)
        CHECK(same, "the public structs keep the sizes of ABI %d.%d (model_params %zu, model_info %zu, "
              "session_params %zu, sample_stats %zu; recorded %zu %zu %zu %zu): a change needs a new minor "
              "version", ABI_MAJOR, ABI_MINOR, got[0], got[1], got[2], got[3], want[0], want[1], want[2], want[3]);
    else
        CHECK(0, "VERSION %s is not the ABI recorded in test_api_install.c (%d.%d): record this version's "
              "struct sizes (%zu %zu %zu %zu)", VQGAN_VERSION_STRING, ABI_MAJOR, ABI_MINOR, got[0], got[1],
              got[2], got[3]);
}

static void test_default_model_path(void)
{
    const char *def = vqgan_default_model_path();
    const char *tail = "/libvqgan/models/default.gguf";
    CHECK(def && def[0] == '/' && strlen(def) > strlen(tail) && !strcmp(def + strlen(def) - strlen(tail), tail),
          "vqgan_default_model_path() is absolute and ends in %s (%s)", tail, def ? def : "NULL");
}

/* The default model (palette, log callback); its load is a check of the
 * palette case, and of the log case only when it fails. */
static struct vqgan_model *default_model(int check)
{
    const char *dm = getenv("VQ_DEFAULT_MODEL") ? getenv("VQ_DEFAULT_MODEL") : "samples/models/default.gguf";
    struct vqgan_model *m = NULL;
    int r = vqgan_model_load(dm, NULL, &m);
    if (check || r)
        CHECK(r == 0, "load %s (%s)", dm, r ? vqgan_last_error() : "ok");
    return m;
}

static void test_palette(void)
{
    /* The default model carries samples/legend.txt's colours: 156 sky-other #78b4f0. */
    struct vqgan_model *m = default_model(1);
    uint8_t rgb[3] = { 0 };
    if (m) {
        CHECK(vqgan_model_label_color(m, 156, rgb) == 1 && rgb[0] == 120 && rgb[1] == 180 && rgb[2] == 240,
              "default model: label 156 (sky-other) is #78b4f0 (#%02x%02x%02x)", rgb[0], rgb[1], rgb[2]);
        CHECK(vqgan_model_label_color(m, 182, rgb) == 0 && vqgan_model_label_color(m, -1, rgb) == 0,
              "label_color: labels outside 0..181 have none");
    }

    struct vqgan_model *c = NULL;
    int r = vqgan_model_load(model_path("conditional"), NULL, &c);
    CHECK(r == 0, "load the golden conditional model");
    if (c)
        CHECK(vqgan_model_label_color(c, 0, rgb) == 0, "a model without label_colors has no palette");
    int ci = 0, co = 0;
    if (m)
        CHECK(vqgan_model_image_channels(m, &ci, &co) == 0 && ci == 3 && co == 3,
              "default model: an RGB tokenizer (%d in, %d out)", ci, co);
    CHECK(vqgan_model_image_channels(NULL, &ci, &co) == VQGAN_ERR_INVALID &&
          (!c || vqgan_model_image_channels(c, NULL, &co) == VQGAN_ERR_INVALID),
          "vqgan_model_image_channels: a NULL argument is refused");
    vqgan_model_unref(m);
    vqgan_model_unref(c);
}

/* Per-session log callback. */
static void test_session_log(void)
{
    struct vqgan_model *m = default_model(0);
    int r;
    if (m) {
        struct log_rec global = { 0 }, mine = { 0 };
        struct vqgan_session_params p = vqgan_session_default_params();
        struct vqgan_session *s = NULL;
        int32_t tok[4];
        vqgan_set_log_callback(rec_log, &global);
        p.log_callback = rec_log;
        p.log_opaque = &mine;
        CHECK(vqgan_session_new(m, &p, &s) == 0, "session with its own log callback");
        /* 17 is not a multiple of the factor: the call fails with a message */
        uint8_t rgbimg[17 * 17 * 3] = { 0 };
        r = s ? vqgan_encode_image(s, rgbimg, 17 * 3, 17, 17, tok) : -1;
        CHECK(r < 0 && mine.errors == 1 && global.n == 0,
              "a failing session call logs once, through the session's callback (session %d, process %d: %s)",
              mine.errors, global.n, mine.last);
        CHECK(!strcmp(mine.last, vqgan_last_error()), "the message logged is vqgan_last_error()");
        struct vqgan_model *bad = NULL;
        r = vqgan_model_load("/nonexistent/model.gguf", NULL, &bad);
        CHECK(r < 0 && global.errors == 1 && mine.errors == 1,
              "outside session calls, messages go to the process-wide callback");
        vqgan_set_log_callback(NULL, NULL);
        vqgan_session_free(s);
    }
    vqgan_model_unref(m);
}

static const struct test_case cases[] = {
    { "version", test_version, 0 },
    { "abi_sizes", test_abi_sizes, 0 },
    { "default_model_path", test_default_model_path, 0 },
    { "palette", test_palette, 1 },
    { "session_log", test_session_log, 0 },
};

int main(int argc, char **argv)
{
    return TEST_RUN_CASES(argc, argv, cases);
}
