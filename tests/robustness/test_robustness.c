/* Robustness (docs/hardening.md): bad arguments to every public function,
 * documented limits refused before allocation, a model file changed,
 * truncated or removed after loading and during loading, special files, the
 * fuzzer's regression inputs and seed corpus. Nothing may crash, hang or
 * abort: every refusal comes with a status and a message.
 *
 * Tests that need a memory limit (RLIMIT_DATA) or a child that may run long
 * run in a child process (fork + exec of this program) so a failure is a
 * "not ok" line, not a dead test run. They are skipped under AddressSanitizer
 * (its shadow memory does not fit under RLIMIT_DATA) and with
 * VQ_TEST_QUICK=1 (valgrind). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_common.h"
#include "vqgan.h"
/* the fuzzer's target (LLVMFuzzerTestOneInput): regressions are replayed
 * through exactly the calls the fuzzer made */
#include "../fuzz/fuzz_model_load.c"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

static void quiet(void *o, int l, const char *m) { (void)o; (void)l; (void)m; }
static int quick;
/* this program, for running children (argv[0]: under valgrind
 * /proc/self/exe is valgrind itself) */
static const char *self_exe = "/proc/self/exe";

/* ---- helpers ------------------------------------------------------------------ */

static struct vqgan_session *scratch;   /* a valid session: a good call clears the error */

static void reset_error(void)
{
    struct vqgan_session_params p = vqgan_session_default_params();
    if (scratch) vqgan_session_set_params(scratch, &p);
}

/* r must be `want`, with a message containing `word` (NULL: any message). */
static void refused(int r, int want, const char *word, const char *what)
{
    const char *e = vqgan_last_error();
    CHECK(r == want && e[0] && (!word || strstr(e, word)),
          "%s: refused with %s (got %d, %s): %s", what, vqgan_status_string(want), r,
          vqgan_status_string(r), e);
    reset_error();
}

/* Either status is fine (e.g. two checks that may come in either order). */
static void refused2(int r, int want1, int want2, const char *what)
{
    const char *e = vqgan_last_error();
    CHECK((r == want1 || r == want2) && e[0], "%s: refused with %s or %s (got %s): %s", what,
          vqgan_status_string(want1), vqgan_status_string(want2), vqgan_status_string(r), e);
    reset_error();
}

static char tmpdir[64];
static const char *tmp_path(const char *name)
{
    static char buf[4][256];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, sizeof(buf[0]), "%s/%s", tmpdir, name);
    return b;
}

#define IMG_W 64
#define IMG_H 48
#define GW (IMG_W / 8)
#define GH (IMG_H / 8)
static uint8_t image[IMG_H * IMG_W * 3];

static void make_image(void)
{
    for (int y = 0; y < IMG_H; y++)
        for (int x = 0; x < IMG_W; x++) {
            uint8_t *p = image + (y * IMG_W + x) * 3;
            p[0] = (uint8_t)(x * 4);
            p[1] = (uint8_t)(y * 5);
            p[2] = (uint8_t)((x * y) ^ (x + 3 * y));
        }
}

/* Runs this program with the given arguments in a child, waits at most
 * `seconds`. Returns the wait status; *out gets the child's stdout. */
static int run_child(char *const argv[], int seconds, char *out, size_t out_size)
{
    int pfd[2];
    if (pipe(pfd)) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        alarm((unsigned)seconds);         /* survives exec: a hang dies by SIGALRM */
        execv(self_exe, argv);
        _exit(127);
    }
    close(pfd[1]);
    size_t got = 0;
    ssize_t k;
    while ((k = read(pfd[0], out + got, out_size - 1 - got)) > 0) got += (size_t)k;
    out[got] = 0;
    close(pfd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return st;
}

static const char *describe(int st, char *buf, size_t n)
{
    if (WIFSIGNALED(st))
        snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        snprintf(buf, n, "exit status %d", WEXITSTATUS(st));
    return buf;
}

/* ---- 1. the file changes after loading ---------------------------------------- */

static void test_file_changed_after_load(void)
{
    const char *p = tmp_path("changing.gguf");
    struct vqgan_model *ml = NULL, *ma = NULL, *mb = NULL;
    struct vqgan_session *sl = NULL, *sa = NULL;
    int32_t tok0[GW * GH], tok[GW * GH];
    static uint8_t rgb0[IMG_W * IMG_H * 3], rgb[IMG_W * IMG_H * 3];
    struct vqgan_session_params sp = vqgan_session_default_params();
    sp.n_threads = 1;

    if (copy_file(model_path("vqgan"), p)) { CHECK(0, "copy %s", model_path("vqgan")); return; }
    int r = vqgan_model_load(p, NULL, &ml);
    if (!r) r = vqgan_model_acquire(p, NULL, &ma);
    if (!r) r = vqgan_session_new(ml, &sp, &sl);
    if (!r) r = vqgan_session_new(ma, &sp, &sa);
    if (!r) r = vqgan_encode_image(sl, image, IMG_W * 3, IMG_W, IMG_H, tok0);
    if (!r) r = vqgan_decode(sl, tok0, GW, GH, rgb0, IMG_W * 3);
    CHECK(r == 0, "file changes after load: load, acquire, encode, decode a copy (%s)", vqgan_last_error());
    if (r) goto end;

    static const char *stage[] = { "truncated to 100 bytes", "overwritten with garbage (same size)",
                                   "removed" };
    for (int k = 0; k < 3; k++) {
        struct stat st;
        stat(p, &st);
        if (k == 0) {
            r = truncate(p, 100);
        } else if (k == 1) {
            FILE *f = fopen(p, "wb");    /* same size as the model, new content */
            r = f ? 0 : -1;
            static char junk[65536];
            memset(junk, 0xAB, sizeof(junk));
            for (off_t left = st.st_size; f && left > 0; left -= (off_t)sizeof(junk))
                fwrite(junk, 1, left < (off_t)sizeof(junk) ? (size_t)left : sizeof(junk), f);
            if (f && fclose(f)) r = -1;
        } else {
            r = unlink(p);
        }
        CHECK(r == 0, "file changes after load: file %s", stage[k]);
        for (int which = 0; which < 2; which++) {
            struct vqgan_session *s = which ? sa : sl;
            memset(tok, 0xff, sizeof(tok));
            memset(rgb, 0, sizeof(rgb));
            r = vqgan_encode_image(s, image, IMG_W * 3, IMG_W, IMG_H, tok);
            int r2 = vqgan_decode(s, tok0, GW, GH, rgb, IMG_W * 3);
            CHECK(r == 0 && r2 == 0 && !memcmp(tok, tok0, sizeof(tok)) && !memcmp(rgb, rgb0, sizeof(rgb)),
                  "file %s after %s: the session still works, same tokens and picture", stage[k],
                  which ? "vqgan_model_acquire" : "vqgan_model_load");
        }
        if (k == 0) {
            struct vqgan_model *m = NULL;
            r = vqgan_model_load(p, NULL, &m);
            refused(r, VQGAN_ERR_FORMAT, "truncated", "file truncated to 100 bytes, loaded again");
            vqgan_model_unref(m);
        }
        if (k == 1) {
            /* the shared cache must not hand out the model of the old content */
            r = vqgan_model_acquire(p, NULL, &mb);
            refused(r, VQGAN_ERR_FORMAT, "magic", "file overwritten with garbage, acquired again");
            CHECK(mb == NULL, "file overwritten: acquire leaves *out NULL");
            vqgan_model_unref(mb);
            mb = NULL;
        }
    }
    /* the content comes back (new mtime): a new model, the old one lives on */
    if (!copy_file(model_path("vqgan"), p)) {
        r = vqgan_model_acquire(p, NULL, &mb);
        CHECK(r == 0 && mb && mb != ma, "file restored: acquire loads it afresh (%s)", vqgan_last_error());
        vqgan_model_unref(mb);
    }
    unlink(p);
end:
    vqgan_session_free(sl);
    vqgan_session_free(sa);
    vqgan_model_unref(ml);
    vqgan_model_unref(ma);
}

/* ---- 2. the file is truncated while it is being loaded --------------------------- */

struct truncator {
    const char *path;
    volatile int stop;
    int hit;
};

/* Is `path` open or mapped in this process right now? */
static int in_use(const char *path)
{
    char l[64], target[512];
    for (int fd = 3; fd < 64; fd++) {
        snprintf(l, sizeof(l), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(l, target, sizeof(target) - 1);
        if (n > 0) {
            target[n] = 0;
            if (!strcmp(target, path)) return 1;
        }
    }
    static char maps[1 << 17];
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n, got = 0;
    while (got < (ssize_t)sizeof(maps) - 1 && (n = read(fd, maps + got, sizeof(maps) - 1 - got)) > 0) got += n;
    close(fd);
    maps[got] = 0;
    return strstr(maps, path) != NULL;
}

static void *truncator_main(void *arg)
{
    struct truncator *t = arg;
    while (!t->stop) {
        if (in_use(t->path)) {
            if (truncate(t->path, 4096) == 0) t->hit = 1;
            return NULL;
        }
    }
    return NULL;
}

/* Child: load a copy of src while another thread truncates it as soon as the
 * loader has it open or mapped. Prints "hits refused loaded badmsg". */
static int child_truncate_during_load(const char *src, const char *copy)
{
    int hits = 0, refused_n = 0, loaded = 0, badmsg = 0;
    char real[PATH_MAX];
    vqgan_set_log_callback(quiet, NULL);
    for (int k = 0; k < 8; k++) {
        if (copy_file(src, copy)) return 3;
        if (!realpath(copy, real)) return 3;
        struct truncator t = { real, 0, 0 };
        pthread_t th;
        pthread_create(&th, NULL, truncator_main, &t);
        struct vqgan_model *m = NULL;
        int r = vqgan_model_load(copy, NULL, &m);
        t.stop = 1;
        pthread_join(th, NULL);
        hits += t.hit;
        if (r == 0) {
            loaded++;
        } else {
            refused_n++;
            if (!strstr(vqgan_last_error(), "truncat") && !strstr(vqgan_last_error(), "changed")) badmsg++;
        }
        vqgan_model_unref(m);
    }
    unlink(copy);
    printf("%d %d %d %d\n", hits, refused_n, loaded, badmsg);
    return 0;
}

static void test_truncated_during_load(void)
{
    char out[256], d[128];
    char *argv[] = { "test_robustness", "--truncate-during-load", (char *)model_path("conditional"),
                     (char *)tmp_path("truncating.gguf"), NULL };
    int st = run_child(argv, 60, out, sizeof(out));
    int hits = -1, ref = -1, loaded = -1, badmsg = -1;
    sscanf(out, "%d %d %d %d", &hits, &ref, &loaded, &badmsg);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
          "file truncated while being loaded (8 tries): the process survives (%s)", describe(st, d, sizeof(d)));
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        CHECK(hits >= 1, "file truncated while being loaded: the truncation hit a load in progress %d of 8 times",
              hits);
        CHECK(badmsg == 0, "file truncated while being loaded: %d refusals (%d loads completed first), each "
              "saying the file was truncated or changed", ref, loaded);
    }
}

/* ---- 3. special files -------------------------------------------------------------- */

static int child_load(const char *how, const char *path)
{
    struct vqgan_model *m = NULL;
    vqgan_set_log_callback(quiet, NULL);
    int r = !strcmp(how, "acquire") ? vqgan_model_acquire(path, NULL, &m) : vqgan_model_load(path, NULL, &m);
    printf("%d %s\n", r, vqgan_last_error());
    vqgan_model_unref(m);
    return 0;
}

static void test_special_files(void)
{
    struct vqgan_model *m = NULL;
    int r;
    r = vqgan_model_load("/dev/null", NULL, &m);
    refused2(r, VQGAN_ERR_IO, VQGAN_ERR_FORMAT, "load /dev/null (a character device)");
    r = vqgan_model_load("/dev/zero", NULL, &m);
    refused(r, VQGAN_ERR_IO, "regular", "load /dev/zero (endless character device)");
    r = vqgan_model_acquire("/dev/zero", NULL, &m);
    refused(r, VQGAN_ERR_IO, "regular", "acquire /dev/zero");
    FILE *f = fopen(tmp_path("empty.gguf"), "wb");
    if (f) fclose(f);
    r = vqgan_model_load(tmp_path("empty.gguf"), NULL, &m);
    refused(r, VQGAN_ERR_FORMAT, "truncated", "load an empty file");
    r = vqgan_model_load(tmpdir, NULL, &m);
    refused(r, VQGAN_ERR_IO, "directory", "load a directory");
    r = vqgan_model_load("/nonexistent-dir/x.gguf", NULL, &m);
    refused(r, VQGAN_ERR_IO, "/nonexistent-dir/x.gguf", "load a missing file (message names it)");
    CHECK(m == NULL, "refused loads leave *out NULL");

    /* a FIFO nobody writes to: open(O_RDONLY) would wait for a writer forever */
    const char *fifo = tmp_path("model.fifo");
    if (mkfifo(fifo, 0600) == 0) {
        static const char *how[] = { "load", "acquire" };
        for (int k = 0; k < 2; k++) {
            char out[1200], d[128];
            char *argv[] = { "test_robustness", "--load", (char *)how[k], (char *)fifo, NULL };
            int st = run_child(argv, 3, out, sizeof(out));
            int rr = 1;
            sscanf(out, "%d", &rr);
            CHECK(WIFEXITED(st) && rr == VQGAN_ERR_IO && strstr(out, "regular"),
                  "%s a FIFO: refused with I/O error, no hang (%s; %s)", how[k], describe(st, d, sizeof(d)),
                  out[0] ? out : "no output");
        }
        unlink(fifo);
    }
}

/* ---- 4. bad arguments to every public function ----------------------------------- */

static struct vqgan_model *m_vq, *m_cond, *m_cls, *m_gpt;
static struct vqgan_session *s_vq, *s_cond, *s_cls, *s_gpt;
static struct vqgan_model_info i_vq, i_cond, i_cls;

static void test_status_and_version(void)
{
    int ok = 1;
    for (int s = VQGAN_ERR_CANCELLED; s <= VQGAN_OK; s++)
        ok &= vqgan_status_string(s) && strcmp(vqgan_status_string(s), "unknown status") != 0;
    CHECK(ok, "vqgan_status_string names every status");
    const int odd[] = { 1, -8, INT_MIN, INT_MAX };
    ok = 1;
    for (int i = 0; i < 4; i++) ok &= vqgan_status_string(odd[i]) && !strcmp(vqgan_status_string(odd[i]), "unknown status");
    CHECK(ok, "vqgan_status_string of 1, -8, INT_MIN, INT_MAX: \"unknown status\"");
    char v[32];
    snprintf(v, sizeof(v), "%d.%d.%d", VQGAN_VERSION_MAJOR, VQGAN_VERSION_MINOR, VQGAN_VERSION_PATCH);
    CHECK(!strcmp(vqgan_version(), v), "vqgan_version() is %s", v);
    vqgan_set_log_callback(NULL, NULL);    /* back to stderr, then quiet again */
    vqgan_set_log_callback(quiet, NULL);
    CHECK(vqgan_last_error() != NULL, "vqgan_last_error() is never NULL");
}

static void test_model_args(void)
{
    struct vqgan_model *m = (struct vqgan_model *)1;
    struct vqgan_model_params p = vqgan_model_default_params();
    int r;
    r = vqgan_model_load(NULL, NULL, &m);
    refused(r, VQGAN_ERR_INVALID, "no model file", "vqgan_model_load(path NULL)");
    CHECK(m == NULL, "vqgan_model_load(path NULL) sets *out to NULL");
    r = vqgan_model_load("", NULL, &m);
    refused(r, VQGAN_ERR_INVALID, "no model file", "vqgan_model_load(path \"\")");
    r = vqgan_model_load(model_path("gpt"), NULL, NULL);
    refused(r, VQGAN_ERR_INVALID, "NULL", "vqgan_model_load(out NULL)");
    r = vqgan_model_acquire(NULL, NULL, &m);
    refused(r, VQGAN_ERR_INVALID, "no model file", "vqgan_model_acquire(path NULL)");
    r = vqgan_model_acquire(model_path("gpt"), NULL, NULL);
    refused(r, VQGAN_ERR_INVALID, "NULL", "vqgan_model_acquire(out NULL)");
    const int bad_prec[] = { -1, 4, INT_MAX, INT_MIN };
    for (int i = 0; i < 4; i++) {
        char what[96];
        p.precision = bad_prec[i];
        r = vqgan_model_load(model_path("gpt"), &p, &m);
        snprintf(what, sizeof(what), "vqgan_model_load(precision %d)", bad_prec[i]);
        refused(r, VQGAN_ERR_INVALID, "precision", what);
        r = vqgan_model_acquire(model_path("gpt"), &p, &m);
        snprintf(what, sizeof(what), "vqgan_model_acquire(precision %d)", bad_prec[i]);
        refused(r, VQGAN_ERR_INVALID, "precision", what);
    }
    struct vqgan_model_info info;
    r = vqgan_model_get_info(NULL, &info);
    refused(r, VQGAN_ERR_INVALID, "NULL", "vqgan_model_get_info(model NULL)");
    r = vqgan_model_get_info(m_vq, NULL);
    refused(r, VQGAN_ERR_INVALID, "NULL", "vqgan_model_get_info(info NULL)");
    CHECK(vqgan_model_label_name(NULL, 0) == NULL && vqgan_model_label_name(m_cond, -1) == NULL &&
          vqgan_model_label_name(m_cond, i_cond.n_labels) == NULL &&
          vqgan_model_label_name(m_cond, INT_MAX) == NULL && vqgan_model_label_name(m_cond, INT_MIN) == NULL &&
          vqgan_model_label_name(m_vq, 0) == NULL,
          "vqgan_model_label_name: NULL model, label -1, n_labels, INT_MAX, INT_MIN, a model without labels: NULL");
    CHECK(vqgan_model_ref(NULL) == NULL, "vqgan_model_ref(NULL) is NULL");
    vqgan_model_unref(NULL);
    vqgan_session_free(NULL);
    CHECK(1, "vqgan_model_unref(NULL), vqgan_session_free(NULL): no-ops");
}

struct bad_param {
    const char *what, *word;
    void (*set)(struct vqgan_session_params *);
};
static void p_thr_neg(struct vqgan_session_params *p) { p->n_threads = -1; }
static void p_thr_min(struct vqgan_session_params *p) { p->n_threads = INT_MIN; }
static void p_thr_big(struct vqgan_session_params *p) { p->n_threads = 1025; }
static void p_temp_0(struct vqgan_session_params *p) { p->temperature = 0.0f; }
static void p_temp_neg(struct vqgan_session_params *p) { p->temperature = -1.0f; }
static void p_temp_nan(struct vqgan_session_params *p) { p->temperature = NAN; }
static void p_temp_inf(struct vqgan_session_params *p) { p->temperature = INFINITY; }
static void p_topp_0(struct vqgan_session_params *p) { p->top_p = 0.0f; }
static void p_topp_neg(struct vqgan_session_params *p) { p->top_p = -0.5f; }
static void p_topp_big(struct vqgan_session_params *p) { p->top_p = 1.0001f; }
static void p_topp_nan(struct vqgan_session_params *p) { p->top_p = NAN; }
static void p_topk_neg(struct vqgan_session_params *p) { p->top_k = -1; }
static void p_topk_big(struct vqgan_session_params *p) { p->top_k = 65; }   /* vocab is 64 */
static void p_topk_max(struct vqgan_session_params *p) { p->top_k = INT_MAX; }

static const struct bad_param bad_params[] = {
    { "n_threads -1", "threads", p_thr_neg },     { "n_threads INT_MIN", "threads", p_thr_min },
    { "n_threads 1025", "threads", p_thr_big },   { "temperature 0", "temperature", p_temp_0 },
    { "temperature -1", "temperature", p_temp_neg }, { "temperature NaN", "temperature", p_temp_nan },
    { "temperature +Inf", "temperature", p_temp_inf }, { "top_p 0", "top_p", p_topp_0 },
    { "top_p -0.5", "top_p", p_topp_neg },        { "top_p 1.0001", "top_p", p_topp_big },
    { "top_p NaN", "top_p", p_topp_nan },         { "top_k -1", "top_k", p_topk_neg },
    { "top_k 65 > vocab 64", "top_k", p_topk_big }, { "top_k INT_MAX", "top_k", p_topk_max },
};

static void test_session_args(void)
{
    struct vqgan_session *s = (struct vqgan_session *)1;
    struct vqgan_session_params p = vqgan_session_default_params();
    struct vqgan_sample_stats st;
    int r;
    r = vqgan_session_new(NULL, NULL, &s);
    refused(r, VQGAN_ERR_INVALID, "model", "vqgan_session_new(model NULL)");
    CHECK(s == NULL, "vqgan_session_new(model NULL) sets *out to NULL");
    r = vqgan_session_new(m_vq, NULL, NULL);
    refused(r, VQGAN_ERR_INVALID, "NULL", "vqgan_session_new(out NULL)");
    r = vqgan_session_set_params(NULL, &p);
    refused(r, VQGAN_ERR_INVALID, "NULL", "vqgan_session_set_params(session NULL)");
    r = vqgan_session_set_params(s_cond, NULL);
    refused(r, VQGAN_ERR_INVALID, "NULL", "vqgan_session_set_params(params NULL)");
    r = vqgan_session_get_stats(NULL, &st);
    refused(r, VQGAN_ERR_INVALID, "NULL", "vqgan_session_get_stats(session NULL)");
    r = vqgan_session_get_stats(s_cond, NULL);
    refused(r, VQGAN_ERR_INVALID, "NULL", "vqgan_session_get_stats(stats NULL)");

    /* the conditional model has a transformer (vocab 64): top_k is checked too */
    int32_t cond[GW * GH], before[GW * GH], after[GW * GH];
    for (int i = 0; i < GW * GH; i++) cond[i] = (i * 7) % i_cond.cond_codes;
    p.seed = 99;
    vqgan_session_set_params(s_cond, &p);
    int r0 = vqgan_sample_conditional(s_cond, cond, GW, GH, before);
    for (size_t i = 0; i < sizeof(bad_params) / sizeof(bad_params[0]); i++) {
        char what[128];
        struct vqgan_session_params q = vqgan_session_default_params();
        bad_params[i].set(&q);
        s = (struct vqgan_session *)1;
        r = vqgan_session_new(m_cond, &q, &s);
        snprintf(what, sizeof(what), "vqgan_session_new(%s)", bad_params[i].what);
        refused(r, VQGAN_ERR_INVALID, bad_params[i].word, what);
        if (s) { vqgan_session_free(s == (struct vqgan_session *)1 ? NULL : s); }
        r = vqgan_session_set_params(s_cond, &q);
        snprintf(what, sizeof(what), "vqgan_session_set_params(%s)", bad_params[i].what);
        refused(r, VQGAN_ERR_INVALID, bad_params[i].word, what);
    }
    int r1 = vqgan_sample_conditional(s_cond, cond, GW, GH, after);
    CHECK(r0 == 0 && r1 == 0 && !memcmp(before, after, sizeof(before)),
          "refused vqgan_session_set_params leave the session's parameters as they were (same samples)");
    p.top_k = 64;
    r = vqgan_session_set_params(s_cond, &p);
    CHECK(r == 0, "top_k = vocab size (64) accepted (%s)", vqgan_last_error());
    p = vqgan_session_default_params();
    vqgan_session_set_params(s_cond, &p);
}

static void test_tokenizer_args(void)
{
    static int32_t tok[GW * GH], big[4];
    static uint8_t rgb[IMG_W * IMG_H * 3];
    static float chw[3 * IMG_W * IMG_H];
    static uint8_t ids[IMG_W * IMG_H];
    const int f = i_vq.factor;
    int r;

    /* encode_image */
    r = vqgan_encode_image(NULL, image, IMG_W * 3, IMG_W, IMG_H, tok);
    refused(r, VQGAN_ERR_INVALID, "session", "vqgan_encode_image(session NULL)");
    r = vqgan_encode_image(s_gpt, image, IMG_W * 3, IMG_W, IMG_H, tok);
    refused(r, VQGAN_ERR_UNSUPPORTED, "tokenizer", "vqgan_encode_image on a transformer-only model");
    r = vqgan_encode_image(s_vq, NULL, IMG_W * 3, IMG_W, IMG_H, tok);
    refused(r, VQGAN_ERR_INVALID, "NULL", "vqgan_encode_image(rgb NULL)");
    r = vqgan_encode_image(s_vq, image, IMG_W * 3, IMG_W, IMG_H, NULL);
    refused(r, VQGAN_ERR_INVALID, "NULL", "vqgan_encode_image(tokens NULL)");
    const struct { int w, h, st; const char *word, *what; } sz[] = {
        { 0, IMG_H, VQGAN_ERR_INVALID, "empty", "width 0" },
        { IMG_W, 0, VQGAN_ERR_INVALID, "empty", "height 0" },
        { -8, IMG_H, VQGAN_ERR_INVALID, "empty", "width -8" },
        { IMG_W, INT_MIN, VQGAN_ERR_INVALID, "empty", "height INT_MIN" },
        { IMG_W - 1, IMG_H, VQGAN_ERR_INVALID, "multiple", "width 63 (factor 8)" },
        { IMG_W, 12, VQGAN_ERR_INVALID, "multiple", "height 12 (factor 8)" },
        { 8 * (VQGAN_MAX_GRID + 1), 8, VQGAN_ERR_LIMIT, "larger", "width 8*(VQGAN_MAX_GRID+1)" },
        { 8, 8 * (VQGAN_MAX_GRID + 1), VQGAN_ERR_LIMIT, "larger", "height 8*(VQGAN_MAX_GRID+1)" },
        { INT_MAX - 7, INT_MAX - 7, VQGAN_ERR_LIMIT, "larger", "width = height = INT_MAX-7" },
    };
    for (size_t i = 0; i < sizeof(sz) / sizeof(sz[0]); i++) {
        char what[128];
        snprintf(what, sizeof(what), "vqgan_encode_image(%s)", sz[i].what);
        r = vqgan_encode_image(s_vq, image, IMG_W * 3, sz[i].w, sz[i].h, tok);
        refused(r, sz[i].st, sz[i].word, what);
        snprintf(what, sizeof(what), "vqgan_encode_image_f32(%s)", sz[i].what);
        r = vqgan_encode_image_f32(s_vq, chw, sz[i].w, sz[i].h, tok, NULL);
        refused(r, sz[i].st, sz[i].word, what);
    }
    r = vqgan_encode_image(s_vq, image, 0, IMG_W, IMG_H, tok);
    refused(r, VQGAN_ERR_INVALID, "stride", "vqgan_encode_image(stride 0)");
    r = vqgan_encode_image(s_vq, image, IMG_W * 3 - 1, IMG_W, IMG_H, tok);
    refused(r, VQGAN_ERR_INVALID, "stride", "vqgan_encode_image(stride 3*width-1)");
    r = vqgan_encode_image_f32(NULL, chw, IMG_W, IMG_H, tok, NULL);
    refused(r, VQGAN_ERR_INVALID, "session", "vqgan_encode_image_f32(session NULL)");
    r = vqgan_encode_image_f32(s_vq, NULL, IMG_W, IMG_H, tok, NULL);
    refused(r, VQGAN_ERR_INVALID, "NULL", "vqgan_encode_image_f32(chw NULL)");
    r = vqgan_encode_image_f32(s_vq, chw, IMG_W, IMG_H, NULL, NULL);
    refused(r, VQGAN_ERR_INVALID, "NULL", "vqgan_encode_image_f32(tokens NULL)");
    /* non-finite input: in a child, so that a sanitizer stopping it is one "not ok" */
    {
        char out[1200], d[128];
        char *argv[] = { "test_robustness", "--nan-encode", NULL };
        int st = run_child(argv, 60, out, sizeof(out));
        int rr = 1, in_range = 0;
        sscanf(out, "%d %d", &rr, &in_range);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && ((rr == 0 && in_range) || rr == VQGAN_ERR_INVALID),
              "vqgan_encode_image_f32 of NaN/Inf pixels: refused, or tokens inside the codebook, no undefined "
              "behaviour (%s, status %d)", describe(st, d, sizeof(d)), rr);
    }

    /* encode_labels */
    const int cf = i_cond.cond_factor;
    for (int i = 0; i < IMG_W * IMG_H; i++) ids[i] = (uint8_t)(i % i_cond.n_labels);
    r = vqgan_encode_labels(NULL, ids, IMG_W, IMG_W, IMG_H, tok, NULL);
    refused(r, VQGAN_ERR_INVALID, "session", "vqgan_encode_labels(session NULL)");
    r = vqgan_encode_labels(s_vq, ids, IMG_W, IMG_W, IMG_H, tok, NULL);
    refused(r, VQGAN_ERR_UNSUPPORTED, "condition", "vqgan_encode_labels on a model without condition stage");
    r = vqgan_encode_labels(s_cond, NULL, IMG_W, IMG_W, IMG_H, tok, NULL);
    refused(r, VQGAN_ERR_INVALID, "NULL", "vqgan_encode_labels(ids NULL)");
    r = vqgan_encode_labels(s_cond, ids, IMG_W, IMG_W, IMG_H, NULL, NULL);
    refused(r, VQGAN_ERR_INVALID, "NULL", "vqgan_encode_labels(tokens NULL)");
    r = vqgan_encode_labels(s_cond, ids, IMG_W, 0, IMG_H, tok, NULL);
    refused(r, VQGAN_ERR_INVALID, "empty", "vqgan_encode_labels(width 0)");
    r = vqgan_encode_labels(s_cond, ids, IMG_W, IMG_W + 1, IMG_H, tok, NULL);
    refused(r, VQGAN_ERR_INVALID, "multiple", "vqgan_encode_labels(width not a multiple of the factor)");
    r = vqgan_encode_labels(s_cond, ids, IMG_W, cf * (VQGAN_MAX_GRID + 1), cf, tok, NULL);
    refused(r, VQGAN_ERR_LIMIT, "larger", "vqgan_encode_labels(grid wider than VQGAN_MAX_GRID)");
    r = vqgan_encode_labels(s_cond, ids, IMG_W - 1, IMG_W, IMG_H, tok, NULL);
    refused(r, VQGAN_ERR_INVALID, "stride", "vqgan_encode_labels(stride width-1)");
    ids[IMG_W * 5 + 7] = (uint8_t)i_cond.n_labels;
    r = vqgan_encode_labels(s_cond, ids, IMG_W, IMG_W, IMG_H, tok, NULL);
    refused(r, VQGAN_ERR_INVALID, "label id", "vqgan_encode_labels(label id = n_labels)");
    ids[IMG_W * 5 + 7] = 255;
    r = vqgan_encode_labels(s_cond, ids, IMG_W, IMG_W, IMG_H, tok, NULL);
    refused(r, VQGAN_ERR_INVALID, "label id", "vqgan_encode_labels(label id 255)");

    /* decode */
    for (int i = 0; i < GW * GH; i++) tok[i] = i % i_vq.image_codes;
    r = vqgan_decode(NULL, tok, GW, GH, rgb, IMG_W * 3);
    refused(r, VQGAN_ERR_INVALID, "session", "vqgan_decode(session NULL)");
    r = vqgan_decode(s_gpt, tok, GW, GH, rgb, IMG_W * 3);
    refused(r, VQGAN_ERR_UNSUPPORTED, "tokenizer", "vqgan_decode on a transformer-only model");
    r = vqgan_decode(s_vq, NULL, GW, GH, rgb, IMG_W * 3);
    refused(r, VQGAN_ERR_INVALID, "NULL", "vqgan_decode(tokens NULL)");
    r = vqgan_decode(s_vq, tok, GW, GH, NULL, IMG_W * 3);
    refused(r, VQGAN_ERR_INVALID, "NULL", "vqgan_decode(rgb NULL)");
    r = vqgan_decode_f32(s_vq, tok, GW, GH, NULL);
    refused(r, VQGAN_ERR_INVALID, "NULL", "vqgan_decode_f32(chw NULL)");
    r = vqgan_decode_f32(NULL, tok, GW, GH, chw);
    refused(r, VQGAN_ERR_INVALID, "session", "vqgan_decode_f32(session NULL)");
    const struct { int gw, gh; } empty[] = { { 0, GH }, { GW, 0 }, { -1, GH }, { GW, INT_MIN } };
    for (int i = 0; i < 4; i++) {
        char what[96];
        snprintf(what, sizeof(what), "vqgan_decode(grid %dx%d)", empty[i].gw, empty[i].gh);
        r = vqgan_decode(s_vq, tok, empty[i].gw, empty[i].gh, rgb, IMG_W * 3);
        refused(r, VQGAN_ERR_INVALID, "grid", what);
        snprintf(what, sizeof(what), "vqgan_decode_f32(grid %dx%d)", empty[i].gw, empty[i].gh);
        r = vqgan_decode_f32(s_vq, tok, empty[i].gw, empty[i].gh, chw);
        refused(r, VQGAN_ERR_INVALID, "grid", what);
    }
    /* a grid side above VQGAN_MAX_GRID is a documented limit, refused before
     * the tokens are even read (big[] holds only 4) */
    r = vqgan_decode(s_vq, big, VQGAN_MAX_GRID + 1, 1, rgb, 3 * f * (VQGAN_MAX_GRID + 1));
    refused(r, VQGAN_ERR_LIMIT, "grid", "vqgan_decode(grid (VQGAN_MAX_GRID+1)x1)");
    r = vqgan_decode_f32(s_vq, big, 1, INT_MAX, chw);
    refused(r, VQGAN_ERR_LIMIT, "grid", "vqgan_decode_f32(grid 1xINT_MAX)");
    const int32_t bad_tok[] = { -1, i_vq.image_codes, INT_MAX, INT_MIN };
    for (int i = 0; i < 4; i++) {
        char what[96];
        tok[GW * GH - 1] = bad_tok[i];
        snprintf(what, sizeof(what), "vqgan_decode(token %d, codebook %d)", bad_tok[i], i_vq.image_codes);
        r = vqgan_decode(s_vq, tok, GW, GH, rgb, IMG_W * 3);
        refused(r, VQGAN_ERR_INVALID, "token", what);
        snprintf(what, sizeof(what), "vqgan_decode_f32(token %d)", bad_tok[i]);
        r = vqgan_decode_f32(s_vq, tok, GW, GH, chw);
        refused(r, VQGAN_ERR_INVALID, "token", what);
    }
    tok[GW * GH - 1] = 0;
    r = vqgan_decode(s_vq, tok, GW, GH, rgb, 0);
    refused(r, VQGAN_ERR_INVALID, "stride", "vqgan_decode(stride 0)");
    r = vqgan_decode(s_vq, tok, GW, GH, rgb, IMG_W * 3 - 3);
    refused(r, VQGAN_ERR_INVALID, "stride", "vqgan_decode(stride 3*width-3)");
}

static int cancel_after(void *opaque, int64_t done, int64_t total)
{
    (void)total;
    return done >= *(int *)opaque;
}

static void test_sampling_args(void)
{
    int32_t cond[GW * GH], tok[GW * GH], tok2[GW * GH];
    for (int i = 0; i < GW * GH; i++) cond[i] = (i * 5) % i_cond.cond_codes;
    int r;
    r = vqgan_sample_conditional(NULL, cond, GW, GH, tok);
    refused(r, VQGAN_ERR_INVALID, "session", "vqgan_sample_conditional(session NULL)");
    r = vqgan_sample_conditional(s_vq, cond, GW, GH, tok);
    refused(r, VQGAN_ERR_UNSUPPORTED, "transformer", "vqgan_sample_conditional on a model without transformer");
    r = vqgan_sample_conditional(s_cls, cond, GW, GH, tok);
    refused(r, VQGAN_ERR_UNSUPPORTED, "spatial condition", "vqgan_sample_conditional on a class-conditional model");
    r = vqgan_sample_conditional(s_gpt, cond, GW, GH, tok);
    refused(r, VQGAN_ERR_UNSUPPORTED, "spatial condition", "vqgan_sample_conditional on a transformer without condition");
    r = vqgan_sample_conditional(s_cond, NULL, GW, GH, tok);
    refused(r, VQGAN_ERR_INVALID, "NULL", "vqgan_sample_conditional(cond NULL)");
    r = vqgan_sample_conditional(s_cond, cond, GW, GH, NULL);
    refused(r, VQGAN_ERR_INVALID, "NULL", "vqgan_sample_conditional(tokens NULL)");
    r = vqgan_sample_conditional(s_cond, cond, 0, GH, tok);
    refused(r, VQGAN_ERR_INVALID, "empty", "vqgan_sample_conditional(grid 0 wide)");
    r = vqgan_sample_conditional(s_cond, cond, GW, -3, tok);
    refused(r, VQGAN_ERR_INVALID, "empty", "vqgan_sample_conditional(grid -3 high)");
    r = vqgan_sample_conditional(s_cond, cond, VQGAN_MAX_GRID + 1, 1, tok);
    refused(r, VQGAN_ERR_LIMIT, "larger", "vqgan_sample_conditional(grid wider than VQGAN_MAX_GRID)");
    const int32_t bad[] = { -1, i_cond.vocab_size, INT_MAX };
    for (int i = 0; i < 3; i++) {
        char what[96];
        cond[3] = bad[i];
        snprintf(what, sizeof(what), "vqgan_sample_conditional(condition token %d, vocab %d)", bad[i],
                 i_cond.vocab_size);
        r = vqgan_sample_conditional(s_cond, cond, GW, GH, tok);
        refused(r, VQGAN_ERR_INVALID, "condition token", what);
    }
    cond[3] = 0;

    /* cancelled by the progress callback, then the session works again */
    struct vqgan_session_params p = vqgan_session_default_params();
    int stop_at = 3;
    p.progress = cancel_after;
    p.progress_opaque = &stop_at;
    vqgan_session_set_params(s_cond, &p);
    r = vqgan_sample_conditional(s_cond, cond, GW, GH, tok);
    refused(r, VQGAN_ERR_CANCELLED, "cancelled", "vqgan_sample_conditional cancelled by the progress callback");
    p.progress = NULL;
    vqgan_session_set_params(s_cond, &p);
    r = vqgan_sample_conditional(s_cond, cond, GW, GH, tok);
    /* the cache cap: 1 byte keeps only the placement in use, same tokens */
    p.cache_bytes = 1;
    vqgan_session_set_params(s_cond, &p);
    int r2 = vqgan_sample_conditional(s_cond, cond, GW, GH, tok2);
    CHECK(r == 0 && r2 == 0 && !memcmp(tok, tok2, sizeof(tok)),
          "after a cancel the session samples again; cache_bytes = 1 gives the same tokens (%s)", vqgan_last_error());
    p.cache_bytes = 0;
    vqgan_session_set_params(s_cond, &p);

    r = vqgan_sample_unconditional(NULL, 0, 4, 4, tok);
    refused(r, VQGAN_ERR_INVALID, "session", "vqgan_sample_unconditional(session NULL)");
    r = vqgan_sample_unconditional(s_vq, 0, 4, 4, tok);
    refused(r, VQGAN_ERR_UNSUPPORTED, "transformer", "vqgan_sample_unconditional on a model without transformer");
    r = vqgan_sample_unconditional(s_cond, 0, 4, 4, tok);
    refused(r, VQGAN_ERR_UNSUPPORTED, "class", "vqgan_sample_unconditional on a segmentation-conditional model");
    r = vqgan_sample_unconditional(s_gpt, 0, 4, 4, tok);
    refused(r, VQGAN_ERR_UNSUPPORTED, "class", "vqgan_sample_unconditional on a transformer without condition");
    r = vqgan_sample_unconditional(s_cls, 0, 4, 4, NULL);
    refused(r, VQGAN_ERR_INVALID, "NULL", "vqgan_sample_unconditional(tokens NULL)");
    const int bad_cls[] = { -1, i_cls.n_classes, INT_MAX, INT_MIN };
    for (int i = 0; i < 4; i++) {
        char what[96];
        snprintf(what, sizeof(what), "vqgan_sample_unconditional(class %d of %d)", bad_cls[i], i_cls.n_classes);
        r = vqgan_sample_unconditional(s_cls, bad_cls[i], 4, 4, tok);
        refused(r, VQGAN_ERR_INVALID, "class id", what);
    }
    r = vqgan_sample_unconditional(s_cls, 0, 0, 4, tok);
    refused(r, VQGAN_ERR_INVALID, "empty", "vqgan_sample_unconditional(grid 0x4)");
    r = vqgan_sample_unconditional(s_cls, 0, 5, 4, tok);
    CHECK(r == VQGAN_OK, "vqgan_sample_unconditional(grid 5x4 > block_size-1 = 16) slides the 4x4 window (got %d)", r);
    r = vqgan_sample_unconditional(s_cls, 0, VQGAN_MAX_GRID + 1, 1, tok);
    refused(r, VQGAN_ERR_LIMIT, NULL, "vqgan_sample_unconditional(grid wider than VQGAN_MAX_GRID)");
    r = vqgan_sample_unconditional(s_cls, 0, INT_MAX, INT_MAX, tok);
    refused(r, VQGAN_ERR_LIMIT, NULL, "vqgan_sample_unconditional(grid INT_MAX x INT_MAX)");
}

/* the sessions still work after all of the above */
static void test_still_working(void)
{
    int32_t tok[GW * GH];
    static uint8_t rgb[IMG_W * IMG_H * 3];
    int r = vqgan_encode_image(s_vq, image, IMG_W * 3, IMG_W, IMG_H, tok);
    if (!r) r = vqgan_decode(s_vq, tok, GW, GH, rgb, IMG_W * 3);
    int r2 = vqgan_sample_unconditional(s_cls, 1, 4, 4, tok);
    CHECK(r == 0 && r2 == 0 && vqgan_last_error()[0] == 0,
          "after every refusal the sessions still encode, decode and sample, with no error left over (%s)",
          vqgan_last_error());
}

/* Child: encode an image of NaN and Inf pixels; prints "status in_range". */
static int child_nan_encode(void)
{
    static float chw[3 * IMG_W * IMG_H];
    int32_t tok[GW * GH];
    struct vqgan_model *m = NULL;
    struct vqgan_session *s = NULL;
    vqgan_set_log_callback(quiet, NULL);
    for (size_t i = 0; i < sizeof(chw) / sizeof(chw[0]); i++) chw[i] = i % 3 ? NAN : INFINITY;
    memset(tok, 0xff, sizeof(tok));
    int r = vqgan_model_load(model_path("vqgan"), NULL, &m);
    if (!r) r = vqgan_session_new(m, NULL, &s);
    if (!r) r = vqgan_encode_image_f32(s, chw, IMG_W, IMG_H, tok, NULL);
    int in_range = 1;
    for (int i = 0; i < GW * GH; i++) in_range &= tok[i] >= 0 && tok[i] < 64;
    printf("%d %d\n", r, in_range);
    vqgan_session_free(s);
    vqgan_model_unref(m);
    return 0;
}

/* ---- 5. limits enforced before allocation ------------------------------------------ */

/* A minimal GGUF writer for hand-made files. */
struct gw { FILE *f; };
static void w_u32(FILE *f, uint32_t v) { fwrite(&v, 4, 1, f); }
static void w_u64(FILE *f, uint64_t v) { fwrite(&v, 8, 1, f); }
static void w_str(FILE *f, const char *s) { w_u64(f, strlen(s)); fwrite(s, 1, strlen(s), f); }
static void kv_str(FILE *f, const char *k, const char *v) { w_str(f, k); w_u32(f, 8); w_str(f, v); }
static void kv_u32(FILE *f, const char *k, uint32_t v) { w_str(f, k); w_u32(f, 4); w_u32(f, v); }
static void kv_bool(FILE *f, const char *k, int v) { w_str(f, k); w_u32(f, 7); fputc(v ? 1 : 0, f); }

/* A transformer-only model whose tensors take about 200 GiB as f32 (each
 * under the 2^31-element limit of one tensor): the file is sparse (the
 * tensor data is never written). */
static int write_huge_model(const char *path)
{
    const uint64_t V = 1u << 17, D = 16384, L = 16, B = 16;
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    struct { char name[64]; int nd; uint64_t ne[3]; } t;
    uint64_t n_tensors = 2 + 1 + 16 * L + 2;
    fwrite("GGUF", 1, 4, f);
    w_u32(f, 3);
    w_u64(f, n_tensors);
    w_u64(f, 12);
    kv_str(f, "general.architecture", "vqgan");
    kv_str(f, "general.name", "huge");
    kv_u32(f, "vqgan.format_version", 1);
    kv_bool(f, "vqgan.has_first_stage", 0);
    kv_bool(f, "vqgan.has_transformer", 1);
    kv_str(f, "vqgan.cond_stage.kind", "none");
    kv_str(f, "vqgan.transformer.tensor_prefix", "");
    kv_u32(f, "vqgan.transformer.vocab_size", (uint32_t)V);
    kv_u32(f, "vqgan.transformer.block_size", (uint32_t)B);
    kv_u32(f, "vqgan.transformer.n_layer", (uint32_t)L);
    kv_u32(f, "vqgan.transformer.n_head", 16);
    kv_u32(f, "vqgan.transformer.n_embd", (uint32_t)D);
    uint64_t off = 0;
#define T(nm, n0, n1, n2, ndims) do { \
        snprintf(t.name, sizeof(t.name), "%s", nm); t.nd = ndims; \
        t.ne[0] = n0; t.ne[1] = n1; t.ne[2] = n2; \
        w_str(f, t.name); w_u32(f, (uint32_t)t.nd); \
        for (int i_ = 0; i_ < t.nd; i_++) w_u64(f, t.ne[i_]); \
        w_u32(f, 0); w_u64(f, off); \
        uint64_t nb_ = 4; for (int i_ = 0; i_ < t.nd; i_++) nb_ *= t.ne[i_]; \
        off += (nb_ + 31) / 32 * 32; } while (0)
    /* the largest first: a loader that allocates as it goes fails at once */
    T("tok_emb.weight", D, V, 0, 2);
    T("head.weight", D, V, 0, 2);
    T("pos_emb", D, B, 1, 3);
    char n[64];
    static const char *vec[] = { "ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias", "attn.query.bias",
                                 "attn.key.bias", "attn.value.bias", "attn.proj.bias", "mlp.2.bias" };
    static const char *mat[] = { "attn.query.weight", "attn.key.weight", "attn.value.weight", "attn.proj.weight" };
    for (uint64_t l = 0; l < L; l++) {
        for (int i = 0; i < 9; i++) { snprintf(n, sizeof(n), "blocks.%d.%s", (int)l, vec[i]); T(n, D, 0, 0, 1); }
        for (int i = 0; i < 4; i++) { snprintf(n, sizeof(n), "blocks.%d.%s", (int)l, mat[i]); T(n, D, D, 0, 2); }
        snprintf(n, sizeof(n), "blocks.%d.mlp.0.weight", (int)l); T(n, D, 4 * D, 0, 2);
        snprintf(n, sizeof(n), "blocks.%d.mlp.0.bias", (int)l); T(n, 4 * D, 0, 0, 1);
        snprintf(n, sizeof(n), "blocks.%d.mlp.2.weight", (int)l); T(n, 4 * D, D, 0, 2);
    }
    T("ln_f.weight", D, 0, 0, 1);
    T("ln_f.bias", D, 0, 0, 1);
#undef T
    long pos = ftell(f);
    long data_start = (pos + 31) / 32 * 32;
    int r = fclose(f);
    if (!r) r = truncate(path, data_start + (off_t)off);   /* sparse: nothing written */
    return r;
}

/* Child: under RLIMIT_DATA = limit MiB, run one big request and print the
 * status and message. The limit makes a request that allocates as it goes
 * fail safely instead of taking the machine's memory. */
static int child_big(const char *what, const char *arg, const char *limit_mib)
{
    struct rlimit rl;
    rl.rlim_cur = rl.rlim_max = (rlim_t)atol(limit_mib) << 20;
    vqgan_set_log_callback(quiet, NULL);
    if (setrlimit(RLIMIT_DATA, &rl)) { printf("-100 setrlimit: %s\n", strerror(errno)); return 0; }
    struct vqgan_model *m = NULL;
    struct vqgan_session *s = NULL;
    struct vqgan_session_params sp = vqgan_session_default_params();
    sp.n_threads = 2;
    int r;
    if (!strcmp(what, "model")) {
        r = vqgan_model_load(arg, NULL, &m);
    } else {
        r = vqgan_model_load(model_path("vqgan"), NULL, &m);
        if (!r) r = vqgan_session_new(m, &sp, &s);
        const int g = atoi(arg);
        if (!r && !strcmp(what, "decode")) {
            int32_t *tok = calloc((size_t)g * g, sizeof(int32_t));
            uint8_t *px = malloc((size_t)3 * 64 * g * g);
            r = tok && px ? vqgan_decode(s, tok, g, g, px, (ptrdiff_t)3 * 8 * g) : -100;
            free(tok);
            free(px);
        } else if (!r) {
            /* an all-black image of g*8 x g*8 pixels */
            size_t W = (size_t)g * 8;
            uint8_t *rgb = calloc(W * 3, W);
            int32_t *tok = calloc((size_t)g * g, sizeof(int32_t));
            r = rgb && tok ? vqgan_encode_image(s, rgb, (ptrdiff_t)W * 3, (int)W, (int)W, tok) : -100;
            free(rgb);
            free(tok);
        }
    }
    printf("%d %s\n", r, vqgan_last_error());
    vqgan_session_free(s);
    vqgan_model_unref(m);
    return 0;
}

static void big_case(const char *what, const char *arg, const char *limit, int seconds, const char *title)
{
    char out[1200], d[128];
    char *argv[] = { "test_robustness", "--big", (char *)what, (char *)arg, (char *)limit, NULL };
    int st = run_child(argv, seconds, out, sizeof(out));
    int r = 1;
    sscanf(out, "%d", &r);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && (r == VQGAN_ERR_LIMIT || r == VQGAN_OK),
          "%s: refused with \"limit exceeded\" before allocating, or done, under RLIMIT_DATA %s MiB "
          "within %d s (%s; status %d: %s)", title, limit, seconds, describe(st, d, sizeof(d)), r,
          out[0] ? strchr(out, ' ') ? strchr(out, ' ') + 1 : out : "no output");
}

static void test_limits_before_allocation(void)
{
    if (UNDER_ASAN || quick) {
        CHECK(1, "# SKIP limits under RLIMIT_DATA (not under AddressSanitizer or VQ_TEST_QUICK)");
        return;
    }
    const char *huge = tmp_path("huge.gguf");
    if (write_huge_model(huge)) {
        CHECK(0, "write a sparse 200 GiB model file: %s", strerror(errno));
    } else {
        big_case("model", huge, "2048", 30, "a model of 52 G f32 weights (208 GiB, sparse file)");
        unlink(huge);
    }
    /* grids inside VQGAN_MAX_GRID whose activations cannot fit: the decoder's
     * attention alone is (gw*gh)^2 floats (256 GiB at 512x512) */
    big_case("decode", "512", "4096", 30, "vqgan_decode of a 512x512 grid (attention needs 256 GiB)");
    big_case("encode", "512", "4096", 30, "vqgan_encode_image of 4096x4096 pixels (512x512 grid)");
}

/* ---- 6. the fuzzer's regressions and seed corpus --------------------------------- */

/* Child: every file of dir through the fuzz target; prints the count. A
 * crash, abort or sanitizer report ends the child. */
static int child_replay(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    char path[1200];
    if (!d) { printf("0\n"); return 0; }
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "README.md")) continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fseek(f, 0, SEEK_SET);
        uint8_t *b = malloc(size > 0 ? (size_t)size : 1);
        if (b && fread(b, 1, (size_t)size, f) == (size_t)size) {
            fprintf(stderr, "replay %s\n", path);
            LLVMFuzzerTestOneInput(b, (size_t)size);
            n++;
        }
        free(b);
        fclose(f);
    }
    closedir(d);
    printf("%d\n", n);
    return 0;
}

static void test_fuzz_regressions(const char *dir)
{
    char out[256], d[128];
    char *argv[] = { "test_robustness", "--replay", (char *)dir, NULL };
    int st = run_child(argv, 120, out, sizeof(out));
    int n = -1;
    sscanf(out, "%d", &n);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && n >= 0,
          "fuzz regressions %s: %d files through the fuzzer's calls, each refused with a status and a message "
          "or loaded and run cleanly (%s)", dir, n, describe(st, d, sizeof(d)));
}

static void test_fuzz_corpus(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) { CHECK(0, "%s exists", dir); return; }
    struct dirent *e;
    int n = 0, bad = 0;
    char path[1200], first_bad[1300] = "";
    while ((e = readdir(d))) {
        const char *nm = e->d_name;
        if (nm[0] == '.' || !strcmp(nm, "README.md")) continue;
        snprintf(path, sizeof(path), "%s/%s", dir, nm);
        const int should_load = !strncmp(nm, "tiny_", 5);
        struct vqgan_model *m = NULL;
        int r = vqgan_model_load(path, NULL, &m);
        int ok;
        if (should_load) {
            struct vqgan_session *s = NULL;
            struct vqgan_model_info info;
            ok = r == 0 && m && !vqgan_model_get_info(m, &info) && !vqgan_session_new(m, NULL, &s);
            if (ok && info.has_first_stage) {
                int32_t t = 0;
                uint8_t px[3 * 64];
                ok = !vqgan_decode(s, &t, 1, 1, px, 3 * info.factor);
            }
            if (ok && info.cond_kind == VQGAN_COND_CLASS) {
                int32_t t[4];
                ok = !vqgan_sample_unconditional(s, info.n_classes - 1, 2, 2, t);
            }
            vqgan_session_free(s);
        } else {
            ok = r < 0 && r >= VQGAN_ERR_CANCELLED && m == NULL && vqgan_last_error()[0];
        }
        vqgan_model_unref(m);
        n++;
        if (!ok && !bad++) snprintf(first_bad, sizeof(first_bad), "%s: status %d %s", nm, r, vqgan_last_error());
    }
    closedir(d);
    CHECK(n > 0 && bad == 0, "fuzz corpus %s: %d files, the tiny_* models load and run, the broken_* ones are "
          "refused with a message (%d wrong%s%s)", dir, n, bad, bad ? ": " : "", first_bad);
}

/* ---- main ----------------------------------------------------------------------------- */

static void test_fuzz_regression_files(void)
{
    const char *reg = getenv("VQ_FUZZ_REGRESSIONS");
    test_fuzz_regressions(reg ? reg : "tests/fuzz/regressions");
}

static void test_fuzz_corpus_files(void)
{
    const char *cor = getenv("VQ_FUZZ_CORPUS");
    test_fuzz_corpus(cor ? cor : "tests/fuzz/corpus");
}

/* Depth maps whose values span more than the largest float: the float span
 * overflows to infinity, and (d - lo) / span was NaN (0/inf·inf) or mapped
 * 0 and 1 both to -1. Every output must be finite, in [-1, 1], in order. */
static void test_depth_wide_range(void)
{
    const float d[6] = { -3e38f, -1.0f, 0.0f, 1.0f, 2e38f, 3e38f };
    float out[6];
    for (int fixed = 0; fixed < 2; fixed++)
        for (int inv = 0; inv < 2; inv++) {
            const int r = fixed ? vqgan_depth_normalize(d, 6, 1, -3e38f, 3e38f, inv, out)
                                : vqgan_depth_normalize(d, 6, 1, 0.0f, 0.0f, inv, out);
            int ok = r == 0;
            for (int i = 0; i < 6 && ok; i++) {
                const float v = inv ? -out[i] : out[i];
                ok = isfinite(v) && v >= -1.0f && v <= 1.0f && (i == 0 || v >= (inv ? -out[i - 1] : out[i - 1]));
            }
            ok = ok && (inv ? -out[0] : out[0]) == -1.0f && (inv ? -out[5] : out[5]) == 1.0f &&
                 fabsf(out[2]) < 1e-6f;
            CHECK(ok, "depth_normalize, values -3e38..3e38 (%s%s): finite, in [-1, 1], in order, the ends at -1 "
                  "and 1, 0 in the middle (%g %g %g %g %g %g)", fixed ? "range -3e38:3e38" : "per-image min-max",
                  inv ? ", inverted" : "", out[0], out[1], out[2], out[3], out[4], out[5]);
        }
}

/* A negative stride walks the rows upwards from the pointer (a bottom-up
 * buffer; FFmpeg's vflip hands the filters such frames): the last row of a
 * bottom-up copy with stride -row gives the upright picture's tokens, a
 * decode fills the rows upwards, a label map likewise; a stride smaller than
 * a row either way is refused. */
static void test_negative_strides(void)
{
    static uint8_t flip[IMG_W * IMG_H * 3], rgb[IMG_W * IMG_H * 3], rgbf[IMG_W * IMG_H * 3];
    static uint8_t ids[IMG_W * IMG_H], idsf[IMG_W * IMG_H];
    int32_t t0[GW * GH], t1[GW * GH];
    const ptrdiff_t row = IMG_W * 3;
    for (int y = 0; y < IMG_H; y++) memcpy(flip + (IMG_H - 1 - y) * row, image + y * row, (size_t)row);
    int r0 = vqgan_encode_image(s_vq, image, row, IMG_W, IMG_H, t0);
    int r1 = vqgan_encode_image(s_vq, flip + (IMG_H - 1) * row, -row, IMG_W, IMG_H, t1);
    CHECK(r0 == 0 && r1 == 0 && !memcmp(t0, t1, sizeof(t0)),
          "vqgan_encode_image: stride -3*width from a bottom-up copy's last row gives the upright tokens (%d, %d)", r0, r1);
    r0 = vqgan_decode(s_vq, t0, GW, GH, rgb, row);
    r1 = vqgan_decode(s_vq, t0, GW, GH, rgbf + (IMG_H - 1) * row, -row);
    int same = r0 == 0 && r1 == 0;
    for (int y = 0; y < IMG_H && same; y++) same = !memcmp(rgb + y * row, rgbf + (IMG_H - 1 - y) * row, (size_t)row);
    CHECK(same, "vqgan_decode: stride -3*width fills the rows upwards, the upright picture flipped (%d, %d)", r0, r1);
    refused(vqgan_encode_image(s_vq, flip + (IMG_H - 1) * row, -(row - 1), IMG_W, IMG_H, t1), VQGAN_ERR_INVALID,
            "stride", "vqgan_encode_image(stride -(3*width-1))");
    refused(vqgan_decode(s_vq, t0, GW, GH, rgbf + (IMG_H - 1) * row, -(row - 3)), VQGAN_ERR_INVALID, "stride",
            "vqgan_decode(stride -(3*width-3))");
    for (int y = 0; y < IMG_H; y++)
        for (int x = 0; x < IMG_W; x++) {
            ids[y * IMG_W + x] = (uint8_t)((x / 8 + 3 * (y / 8)) % i_cond.n_labels);
            idsf[(IMG_H - 1 - y) * IMG_W + x] = ids[y * IMG_W + x];
        }
    r0 = vqgan_encode_labels(s_cond, ids, IMG_W, IMG_W, IMG_H, t0, NULL);
    r1 = vqgan_encode_labels(s_cond, idsf + (IMG_H - 1) * IMG_W, -IMG_W, IMG_W, IMG_H, t1, NULL);
    CHECK(r0 == 0 && r1 == 0 && !memcmp(t0, t1, sizeof(int32_t) * (size_t)(IMG_W / i_cond.cond_factor) *
                                        (IMG_H / i_cond.cond_factor)),
          "vqgan_encode_labels: stride -width from a bottom-up copy's last row gives the upright tokens (%d, %d)", r0, r1);
    refused(vqgan_encode_labels(s_cond, idsf + (IMG_H - 1) * IMG_W, -(IMG_W - 1), IMG_W, IMG_H, t1, NULL),
            VQGAN_ERR_INVALID, "stride", "vqgan_encode_labels(stride -(width-1))");
}

/* The cases run after main's set-up (the test models and their sessions). */
static const struct test_case cases[] = {
    { "status_and_version", test_status_and_version, 0 },
    { "model_args", test_model_args, 0 },
    { "session_args", test_session_args, 0 },
    { "tokenizer_args", test_tokenizer_args, 0 },
    { "negative_strides", test_negative_strides, 0 },
    { "depth_wide_range", test_depth_wide_range, 0 },
    { "sampling_args", test_sampling_args, 0 },
    { "still_working", test_still_working, 0 },
    { "file_changed_after_load", test_file_changed_after_load, 0 },
    { "truncated_during_load", test_truncated_during_load, 0 },
    { "special_files", test_special_files, 0 },
    { "limits_before_allocation", test_limits_before_allocation, 0 },
    { "fuzz_regressions", test_fuzz_regression_files, 0 },
    { "fuzz_corpus", test_fuzz_corpus_files, 0 },
};

int main(int argc, char **argv)
{
    (void)golden_path;
    if (strchr(argv[0], '/') && access(argv[0], X_OK) == 0) self_exe = argv[0];
    if (argc == 3 && !strcmp(argv[1], "--replay"))
        return child_replay(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "--truncate-during-load"))
        return child_truncate_during_load(argv[2], argv[3]);
    if (argc == 4 && !strcmp(argv[1], "--load"))
        return child_load(argv[2], argv[3]);
    if (argc == 2 && !strcmp(argv[1], "--nan-encode"))
        return child_nan_encode();
    if (argc == 3 && !strcmp(argv[1], "--write-huge-model"))   /* for reproducing by hand */
        return write_huge_model(argv[2]) ? 1 : 0;
    if (argc == 5 && !strcmp(argv[1], "--big"))
        return child_big(argv[2], argv[3], argv[4]);

    vqgan_set_log_callback(quiet, NULL);
    quick = getenv("VQ_TEST_QUICK") && atoi(getenv("VQ_TEST_QUICK"));
    make_image();
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/vqrobustXXXXXX");
    if (!mkdtemp(tmpdir)) { CHECK(0, "temp dir: %s", strerror(errno)); return test_exit(); }

    int r = vqgan_model_load(model_path("vqgan"), NULL, &m_vq);
    if (!r) r = vqgan_model_load(model_path("conditional"), NULL, &m_cond);
    if (!r) r = vqgan_model_load(model_path("classcond"), NULL, &m_cls);
    if (!r) r = vqgan_model_load(model_path("gpt"), NULL, &m_gpt);
    struct vqgan_session_params sp = vqgan_session_default_params();
    sp.n_threads = 2;
    if (!r) r = vqgan_session_new(m_vq, &sp, &s_vq);
    if (!r) r = vqgan_session_new(m_cond, &sp, &s_cond);
    if (!r) r = vqgan_session_new(m_cls, &sp, &s_cls);
    if (!r) r = vqgan_session_new(m_gpt, &sp, &s_gpt);
    if (!r) r = vqgan_session_new(m_gpt, &sp, &scratch);
    CHECK(r == 0, "load the test models from %s (%s)", model_path("vqgan"), vqgan_last_error());
    if (r) return test_exit();
    vqgan_model_get_info(m_vq, &i_vq);
    vqgan_model_get_info(m_cond, &i_cond);
    vqgan_model_get_info(m_cls, &i_cls);

    const int ret = TEST_RUN_CASES(argc, argv, cases);

    vqgan_session_free(s_vq);
    vqgan_session_free(s_cond);
    vqgan_session_free(s_cls);
    vqgan_session_free(s_gpt);
    vqgan_session_free(scratch);
    vqgan_model_unref(m_vq);
    vqgan_model_unref(m_cond);
    vqgan_model_unref(m_cls);
    vqgan_model_unref(m_gpt);
    static const char *leftovers[] = { "changing.gguf", "truncating.gguf", "empty.gguf", "model.fifo",
                                       "huge.gguf" };
    for (size_t i = 0; i < sizeof(leftovers) / sizeof(leftovers[0]); i++) unlink(tmp_path(leftovers[i]));
    rmdir(tmpdir);
    return ret;
}
