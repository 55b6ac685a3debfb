/* Concurrency: many sessions in parallel threads of one process sharing one
 * model (vqgan_model_acquire), with results identical to a single-threaded
 * run; acquire/ref/unref races on the shared cache; per-thread errors; the
 * log callback changed while other threads log; several processes loading
 * one model file at once.
 *
 * Also built under ThreadSanitizer by `make check-tsan` (VQ_TSAN_BUILD: no
 * OpenMP, see mk/hardening.mk). VQ_TEST_QUICK=1 runs fewer rounds (valgrind). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_common.h"
#include "vqgan.h"

static void quiet(void *o, int l, const char *m) { (void)o; (void)l; (void)m; }

static int quick;
/* this program, for the child processes (argv[0]: under valgrind
 * /proc/self/exe is valgrind itself) */
static const char *self_exe = "/proc/self/exe";

/* ---- the work a filter does, and its single-threaded reference --------------- */

#define IMG_W 64
#define IMG_H 48
#define LAB_W 32
#define LAB_H 32
#define UNC_GW 4
#define UNC_GH 4

static uint8_t image[IMG_H * IMG_W * 3];
static uint8_t labels[LAB_H * LAB_W];

struct results {
    int32_t tok[(IMG_W / 8) * (IMG_H / 8)];
    uint8_t rgb[IMG_H * IMG_W * 3];
    int32_t cond[(LAB_W / 8) * (LAB_H / 8)];
    int32_t samp[(LAB_W / 8) * (LAB_H / 8)];
    int32_t cls[UNC_GW * UNC_GH];
    int status;                 /* first failing status, 0 if none */
    char err[256];
};

static struct results ref;
/* model_path() is not thread-safe (static buffers): resolved once in main */
static char path_vq[1024], path_cond[1024], path_cls[1024], path_gpt[1024];
static struct vqgan_model *m_vq, *m_cond, *m_cls;   /* the main thread's references */

static void make_inputs(void)
{
    for (int y = 0; y < IMG_H; y++)
        for (int x = 0; x < IMG_W; x++) {
            uint8_t *p = image + (y * IMG_W + x) * 3;
            p[0] = (uint8_t)(x * 4);
            p[1] = (uint8_t)(y * 5);
            p[2] = (uint8_t)((x * y) ^ (x + 3 * y));
        }
    for (int y = 0; y < LAB_H; y++)
        for (int x = 0; x < LAB_W; x++)
            labels[y * LAB_W + x] = (uint8_t)(((x / 6) + (y / 5) * 3) % 8);
}

static void note(struct results *r, int st)
{
    if (st && !r->status) {
        r->status = st;
        snprintf(r->err, sizeof(r->err), "%s", vqgan_last_error());
    }
}

/* Encode, decode, label encode + conditional sampling, class-conditional
 * sampling, each with its own session on the given models. */
static void run_pipeline(struct vqgan_model *vq, struct vqgan_model *cond, struct vqgan_model *cls,
                         int n_threads, struct results *r)
{
    struct vqgan_session_params p = vqgan_session_default_params();
    struct vqgan_session *s = NULL;
    p.n_threads = n_threads;
    p.seed = 1234;
    p.temperature = 0.9f;
    p.top_k = 20;
    p.top_p = 0.95f;

    note(r, vqgan_session_new(vq, &p, &s));
    if (s) {
        note(r, vqgan_encode_image(s, image, IMG_W * 3, IMG_W, IMG_H, r->tok));
        note(r, vqgan_decode(s, r->tok, IMG_W / 8, IMG_H / 8, r->rgb, IMG_W * 3));
        vqgan_session_free(s);
        s = NULL;
    }
    note(r, vqgan_session_new(cond, &p, &s));
    if (s) {
        note(r, vqgan_encode_labels(s, labels, LAB_W, LAB_W, LAB_H, r->cond, NULL));
        note(r, vqgan_sample_conditional(s, r->cond, LAB_W / 8, LAB_H / 8, r->samp));
        vqgan_session_free(s);
        s = NULL;
    }
    note(r, vqgan_session_new(cls, &p, &s));
    if (s) {
        note(r, vqgan_sample_unconditional(s, 3, UNC_GW, UNC_GH, r->cls));
        vqgan_session_free(s);
    }
}

static int same_results(const struct results *a, const struct results *b)
{
    return !memcmp(a->tok, b->tok, sizeof(a->tok)) && !memcmp(a->rgb, b->rgb, sizeof(a->rgb)) &&
           !memcmp(a->cond, b->cond, sizeof(a->cond)) && !memcmp(a->samp, b->samp, sizeof(a->samp)) &&
           !memcmp(a->cls, b->cls, sizeof(a->cls));
}

/* ---- threads sharing one model --------------------------------------------- */

struct worker {
    pthread_t th;
    int id, n_threads, rounds;
    int same_model;             /* acquire gave the main thread's models   */
    int mismatches, failures;
    char err[256];
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct vqgan_model *vq = NULL, *cond = NULL, *cls = NULL;
    int r1 = vqgan_model_acquire(path_vq, NULL, &vq);
    int r2 = vqgan_model_acquire(path_cond, NULL, &cond);
    int r3 = vqgan_model_acquire(path_cls, NULL, &cls);
    w->same_model = !r1 && !r2 && !r3 && vq == m_vq && cond == m_cond && cls == m_cls;
    if (r1 || r2 || r3) {
        w->failures++;
        snprintf(w->err, sizeof(w->err), "acquire: %s", vqgan_last_error());
    } else {
        for (int k = 0; k < w->rounds; k++) {
            struct results *r = calloc(1, sizeof(*r));
            run_pipeline(vq, cond, cls, w->n_threads, r);
            if (r->status) {
                w->failures++;
                snprintf(w->err, sizeof(w->err), "%s", r->err);
            } else if (!same_results(r, &ref)) {
                w->mismatches++;
            }
            free(r);
        }
    }
    vqgan_model_unref(vq);
    vqgan_model_unref(cond);
    vqgan_model_unref(cls);
    return NULL;
}

static void test_shared_sessions(int n_workers, int n_threads, int rounds)
{
    struct worker w[16];
    memset(w, 0, sizeof(w));
    for (int i = 0; i < n_workers; i++) {
        w[i].id = i;
        w[i].n_threads = n_threads;
        w[i].rounds = rounds;
        pthread_create(&w[i].th, NULL, worker_main, &w[i]);
    }
    int same = 1, mism = 0, fail = 0;
    const char *err = "";
    for (int i = 0; i < n_workers; i++) {
        pthread_join(w[i].th, NULL);
        same &= w[i].same_model;
        mism += w[i].mismatches;
        fail += w[i].failures;
        if (w[i].err[0]) err = w[i].err;
    }
    CHECK(same, "%d threads: vqgan_model_acquire gives every thread the one shared model", n_workers);
    CHECK(fail == 0, "%d threads x %d rounds, %d OpenMP threads per session: every call succeeds %s",
          n_workers, rounds, n_threads, err);
    CHECK(mism == 0 && fail == 0,
          "%d threads x %d rounds, %d OpenMP threads per session: tokens, pictures and samples identical "
          "to the single-threaded run (%d differ)", n_workers, rounds, n_threads, mism);
}

/* ---- acquire / ref / unref races ------------------------------------------------ */

struct racer {
    pthread_t th;
    const char *paths[2];
    int iters, bad;
};

static void *racer_main(void *arg)
{
    struct racer *r = arg;
    for (int i = 0; i < r->iters; i++) {
        struct vqgan_model *m = NULL;
        struct vqgan_model_info info;
        if (vqgan_model_acquire(r->paths[i & 1], NULL, &m) || !m) { r->bad++; continue; }
        if (vqgan_model_get_info(m, &info) || info.vocab_size != 64) r->bad++;
        struct vqgan_model *extra = vqgan_model_ref(m);
        struct vqgan_session *s = NULL;
        if (!vqgan_session_new(m, NULL, &s)) vqgan_session_free(s); else r->bad++;
        vqgan_model_unref(extra);
        vqgan_model_unref(m);
    }
    return NULL;
}

static void test_acquire_races(int n_threads, int iters)
{
    char tmp[] = "/tmp/vqconcXXXXXX";
    char second[64];
    int n0 = vqgan_model_cache_count();
    if (!mkdtemp(tmp)) { CHECK(0, "acquire races: temp dir"); return; }
    snprintf(second, sizeof(second), "%s/gpt-copy.gguf", tmp);
    if (copy_file(path_gpt, second)) { CHECK(0, "acquire races: copy %s", path_gpt); return; }

    /* nobody holds the models between iterations: they are freed and loaded
     * again all the time, while other threads look them up */
    struct racer r[16];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < n_threads; i++) {
        r[i].paths[0] = path_gpt;
        r[i].paths[1] = second;
        r[i].iters = iters;
        pthread_create(&r[i].th, NULL, racer_main, &r[i]);
    }
    int bad = 0;
    for (int i = 0; i < n_threads; i++) {
        pthread_join(r[i].th, NULL);
        bad += r[i].bad;
    }
    CHECK(bad == 0, "acquire races: %d threads x %d acquire/ref/session/unref on 2 files, all succeed (%d failed)",
          n_threads, iters, bad);
    CHECK(vqgan_model_cache_count() == n0, "acquire races: the cache is back to %d models (has %d)", n0,
          vqgan_model_cache_count());

    /* a model held by one thread while the others ref and unref it */
    struct vqgan_model *held = NULL;
    vqgan_model_acquire(second, NULL, &held);
    for (int i = 0; i < n_threads; i++) pthread_create(&r[i].th, NULL, racer_main, &r[i]);
    for (int i = 0; i < n_threads; i++) pthread_join(r[i].th, NULL);
    struct vqgan_model *again = NULL;
    vqgan_model_acquire(second, NULL, &again);
    CHECK(held && again == held, "acquire races: a model held throughout stays the shared one");
    vqgan_model_unref(again);
    vqgan_model_unref(held);
    CHECK(vqgan_model_cache_count() == n0, "acquire races: released with the last reference");
    unlink(second);
    rmdir(tmp);
}

/* Plain loads of one file from several threads: separate, equal models. */
struct loader { pthread_t th; struct vqgan_model *m; int r; };
static void *loader_main(void *arg)
{
    struct loader *l = arg;
    l->r = vqgan_model_load(path_vq, NULL, &l->m);
    return NULL;
}

static void test_parallel_loads(int n)
{
    struct loader l[8];
    memset(l, 0, sizeof(l));
    for (int i = 0; i < n; i++) pthread_create(&l[i].th, NULL, loader_main, &l[i]);
    int ok = 1;
    for (int i = 0; i < n; i++) {
        pthread_join(l[i].th, NULL);
        struct vqgan_model_info a, b;
        ok &= !l[i].r && l[i].m && !vqgan_model_get_info(l[i].m, &a) && !vqgan_model_get_info(m_vq, &b) &&
              a.identity == b.identity && (i == 0 || l[i].m != l[0].m);
    }
    CHECK(ok, "%d threads load one file with vqgan_model_load: %d separate models, same identity", n, n);
    for (int i = 0; i < n; i++) vqgan_model_unref(l[i].m);
}

/* ---- per-thread errors, log callback ------------------------------------------------ */

static pthread_barrier_t barrier;
static int log_calls_a, log_calls_b;
static void log_a(void *o, int l, const char *m) { (void)o; (void)l; (void)m; __atomic_add_fetch(&log_calls_a, 1, __ATOMIC_RELAXED); }
static void log_b(void *o, int l, const char *m) { (void)o; (void)l; (void)m; __atomic_add_fetch(&log_calls_b, 1, __ATOMIC_RELAXED); }

struct errthread { pthread_t th; int id, ok; };
static void *err_main(void *arg)
{
    struct errthread *e = arg;
    char path[64], want[64];
    snprintf(path, sizeof(path), "/nonexistent/thread-%d.gguf", e->id);
    snprintf(want, sizeof(want), "thread-%d.gguf", e->id);
    e->ok = 1;
    for (int k = 0; k < 50; k++) {
        struct vqgan_model *m = NULL;
        int r = vqgan_model_load(path, NULL, &m);
        pthread_barrier_wait(&barrier);          /* every thread has failed ... */
        e->ok &= r == VQGAN_ERR_IO && !m && strstr(vqgan_last_error(), want) != NULL;
        pthread_barrier_wait(&barrier);          /* ... and read its own message */
    }
    return NULL;
}

static int toggling = 1;
static void *toggle_main(void *arg)
{
    (void)arg;
    for (int k = 0; __atomic_load_n(&toggling, __ATOMIC_ACQUIRE); k++)
        vqgan_set_log_callback(k & 1 ? log_a : log_b, NULL);
    return NULL;
}

static void test_errors_and_log(int n)
{
    struct errthread e[8];
    pthread_t tog;
    pthread_barrier_init(&barrier, NULL, (unsigned)n);
    __atomic_store_n(&toggling, 1, __ATOMIC_RELEASE);
    vqgan_set_log_callback(log_a, NULL);
    pthread_create(&tog, NULL, toggle_main, NULL);
    for (int i = 0; i < n; i++) {
        e[i].id = i;
        pthread_create(&e[i].th, NULL, err_main, &e[i]);
    }
    int ok = 1;
    for (int i = 0; i < n; i++) {
        pthread_join(e[i].th, NULL);
        ok &= e[i].ok;
    }
    __atomic_store_n(&toggling, 0, __ATOMIC_RELEASE);
    pthread_join(tog, NULL);
    vqgan_set_log_callback(quiet, NULL);
    pthread_barrier_destroy(&barrier);
    CHECK(ok, "%d threads failing at once: each sees its own message in vqgan_last_error()", n);
    CHECK(log_calls_a + log_calls_b == n * 50,
          "log callback replaced %s while %d threads log: every message delivered once (%d of %d)",
          "continuously", n, log_calls_a + log_calls_b, n * 50);
}

/* ---- several processes ------------------------------------------------------------------- */

/* Child: load the model (plain or shared), encode the test image, write the
 * tokens to stdout. */
static int child_main(const char *how, const char *path)
{
    struct vqgan_model *m = NULL;
    struct vqgan_session *s = NULL;
    struct vqgan_session_params p = vqgan_session_default_params();
    int32_t tok[(IMG_W / 8) * (IMG_H / 8)];
    p.n_threads = 1;
    vqgan_set_log_callback(quiet, NULL);
    make_inputs();
    int r = !strcmp(how, "acquire") ? vqgan_model_acquire(path, NULL, &m) : vqgan_model_load(path, NULL, &m);
    if (!r) r = vqgan_session_new(m, &p, &s);
    if (!r) r = vqgan_encode_image(s, image, IMG_W * 3, IMG_W, IMG_H, tok);
    if (r) {
        fprintf(stderr, "child: %s\n", vqgan_last_error());
        return 2;
    }
    if (write(1, tok, sizeof(tok)) != (ssize_t)sizeof(tok)) return 3;
    vqgan_session_free(s);
    vqgan_model_unref(m);
    return 0;
}

static void test_processes(int n)
{
    pid_t pid[8];
    int fds[8];
    for (int i = 0; i < n; i++) {
        int pfd[2];
        if (pipe(pfd)) { CHECK(0, "processes: pipe: %s", strerror(errno)); return; }
        pid[i] = fork();
        if (pid[i] == 0) {
            dup2(pfd[1], 1);
            close(pfd[0]);
            close(pfd[1]);
            char *argv[] = { "test_concurrency", "--child", i & 1 ? "acquire" : "load",
                             path_vq, NULL };
            execv(self_exe, argv);
            _exit(127);
        }
        close(pfd[1]);
        fds[i] = pfd[0];
    }
    int same = 0, clean = 0;
    for (int i = 0; i < n; i++) {
        int32_t tok[(IMG_W / 8) * (IMG_H / 8)];
        size_t got = 0;
        ssize_t k;
        while (got < sizeof(tok) && (k = read(fds[i], (char *)tok + got, sizeof(tok) - got)) > 0) got += (size_t)k;
        close(fds[i]);
        int st = 0;
        waitpid(pid[i], &st, 0);
        clean += WIFEXITED(st) && WEXITSTATUS(st) == 0;
        same += got == sizeof(tok) && !memcmp(tok, ref.tok, sizeof(tok));
    }
    CHECK(clean == n, "%d processes load one model file at once: all exit cleanly (%d did)", n, clean);
    CHECK(same == n, "%d processes load one model file at once: all give the reference tokens (%d did)", n, same);
}


/* ---- the cores are shared by concurrent calls --------------------------------- */
/* Two threads sample at the same time, each session asking for every core
 * (n_threads = 0); their progress callbacks meet at a barrier, so both calls
 * are running at once. The call that started second may use only its share
 * (cores / 2, at least 1): together they never ask for much more than the
 * cores. Alone, a call uses every core. */
static pthread_barrier_t share_barrier;
struct sharer { struct vqgan_session *s; int32_t cond[64 * 64]; int gw, gh; int met, status; };
static int share_progress(void *o, int64_t done, int64_t total)
{
    struct sharer *w = o;
    (void)done; (void)total;
    if (!w->met) { w->met = 1; pthread_barrier_wait(&share_barrier); }
    return 0;
}
static void *sharer_main(void *arg)
{
    struct sharer *w = arg;
    int32_t tokens[64 * 64];
    w->status = vqgan_sample_conditional(w->s, w->cond, w->gw, w->gh, tokens);
    return NULL;
}
static void test_core_sharing(void)
{
    const int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    struct sharer w[2];
    memset(w, 0, sizeof(w));
    int ok = 1;
    for (int i = 0; i < 2 && ok; i++) {
        struct vqgan_session_params p = vqgan_session_default_params();
        p.n_threads = 0;
        p.top_k = 1;
        p.progress = share_progress;
        p.progress_opaque = &w[i];
        ok = vqgan_session_new(m_cond, &p, &w[i].s) == 0 &&
             vqgan_encode_labels(w[i].s, labels, LAB_W, LAB_W, LAB_H, w[i].cond, NULL) == 0;
        struct vqgan_model_info info;
        vqgan_model_get_info(m_cond, &info);
        w[i].gw = LAB_W / info.factor;
        w[i].gh = LAB_H / info.factor;
    }
    CHECK(ok, "core sharing: sessions and condition tokens (%s)", vqgan_last_error());
    if (!ok) return;
    struct vqgan_sample_stats st0, st1;
    /* alone: every core */
    w[0].met = 1;
    int r = vqgan_sample_conditional(w[0].s, w[0].cond, w[0].gw, w[0].gh, (int32_t[64 * 64]){0});
    vqgan_session_get_stats(w[0].s, &st0);
    CHECK(r == 0 && st0.threads == cores, "core sharing: a call alone uses every core (%d of %d)", st0.threads, cores);
    /* two at once */
    w[0].met = w[1].met = 0;
    pthread_barrier_init(&share_barrier, NULL, 2);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, sharer_main, &w[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&share_barrier);
    vqgan_session_get_stats(w[0].s, &st0);
    vqgan_session_get_stats(w[1].s, &st1);
    const int lo = st0.threads < st1.threads ? st0.threads : st1.threads;
    const int hi = st0.threads > st1.threads ? st0.threads : st1.threads;
    const int share = cores / 2 > 1 ? cores / 2 : 1;
    CHECK(w[0].status == 0 && w[1].status == 0 && hi <= cores && lo <= share,
          "core sharing: two calls at once on %d cores use %d and %d threads (the later one at most %d)",
          cores, st0.threads, st1.threads, share);
    for (int i = 0; i < 2; i++) vqgan_session_free(w[i].s);
}

static void test_shared(void) { test_shared_sessions(quick ? 2 : 4, 1, quick ? 1 : 2); }
#ifndef VQ_TSAN_BUILD
/* sessions that run OpenMP regions of their own, from several threads */
static void test_shared_omp(void) { test_shared_sessions(2, 2, 1); }
#endif
static void test_loads(void) { test_parallel_loads(quick ? 2 : 3); }
static void test_races(void) { test_acquire_races(quick ? 3 : 4, quick ? 10 : 40); }
static void test_errors(void) { test_errors_and_log(quick ? 3 : 4); }
static void test_procs(void) { test_processes(quick ? 2 : 3); }

/* The cases run after main's set-up (the shared models, a reference run). */
static const struct test_case cases[] = {
    { "shared_sessions", test_shared, 0 },
#ifndef VQ_TSAN_BUILD
    { "shared_sessions_omp", test_shared_omp, 0 },
    { "core_sharing", test_core_sharing, 0 },
#endif
    { "parallel_loads", test_loads, 0 },
    { "acquire_races", test_races, 0 },
    { "errors_and_log", test_errors, 0 },
    { "processes", test_procs, 0 },
};

int main(int argc, char **argv)
{
    (void)golden_path;
    if (strchr(argv[0], '/') && access(argv[0], X_OK) == 0) self_exe = argv[0];
    if (argc == 4 && !strcmp(argv[1], "--child"))
        return child_main(argv[2], argv[3]);
    vqgan_set_log_callback(quiet, NULL);
    quick = getenv("VQ_TEST_QUICK") && atoi(getenv("VQ_TEST_QUICK"));
    make_inputs();
    snprintf(path_vq, sizeof(path_vq), "%s", model_path("vqgan"));
    snprintf(path_cond, sizeof(path_cond), "%s", model_path("conditional"));
    snprintf(path_cls, sizeof(path_cls), "%s", model_path("classcond"));
    snprintf(path_gpt, sizeof(path_gpt), "%s", model_path("gpt"));

    int n0 = vqgan_model_cache_count();
    int r = vqgan_model_acquire(path_vq, NULL, &m_vq);
    if (!r) r = vqgan_model_acquire(path_cond, NULL, &m_cond);
    if (!r) r = vqgan_model_acquire(path_cls, NULL, &m_cls);
    CHECK(r == 0, "acquire vqgan, conditional, classcond (%s): %s", path_vq, vqgan_last_error());
    if (r) return test_exit();

    run_pipeline(m_vq, m_cond, m_cls, 1, &ref);
    CHECK(ref.status == 0, "single-threaded reference run (%s)", ref.err);
    if (ref.status) return test_exit();

    const int unknown = TEST_RUN_CASES(argc, argv, cases) == 2;

    vqgan_model_unref(m_vq);
    vqgan_model_unref(m_cond);
    vqgan_model_unref(m_cls);
    CHECK(vqgan_model_cache_count() == n0, "every shared model released at the end (cache holds %d, had %d)",
          vqgan_model_cache_count(), n0);
    return unknown ? 2 : test_exit();
}
