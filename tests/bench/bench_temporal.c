/* Temporal modes on the label videos of samples/ (tools/make_label_videos.py):
 *
 *  - labels_moving.mkv (static background, one moving disc): per frame, the
 *    fraction of positions resampled with temporal=reuse, the seconds of the
 *    frame (labels -> condition tokens -> tokens -> picture) with reuse and
 *    with off, the speed-up; that reuse frames are identical to off frames;
 *    how many output pixels change between frames outside the cells whose
 *    windows saw a change (the decoder's convolutions and its attention
 *    block reach further than a token);
 *  - labels_static.mkv: every frame's time against the first one's, and that
 *    consecutive frames are identical;
 *  - labels_pan.mkv with follow and with off: the mean absolute difference
 *    between consecutive output frames after undoing the pan.
 *
 * Model: $VQ_BENCH_MODEL, else samples/models/default.gguf when it exists,
 * else build/test-models/conditional.gguf (8 labels: class ids are taken
 * modulo 8). Frames are read with $BUILD/ffmpeg (build/ffmpeg). At most
 * $VQ_BENCH_FRAMES frames per video (default: as many as fit in about 80 s). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"
#include "vqgan.h"
#include "window.h"

#define VW 512
#define VH 320
#define FAR 4       /* tokens: beyond the decoder's convolutions at the token level */

static int n_labels, top_k;

/* All frames of a gray8 video, decoded by the build's FFmpeg. */
static uint8_t *read_video(const char *path, int *frames)
{
    const char *b = getenv("BUILD");
    char tmp[] = "/tmp/vqbenchXXXXXX", cmd[2048];
    int fd = mkstemp(tmp);
    if (fd < 0) return NULL;
    close(fd);
    snprintf(cmd, sizeof(cmd), "%s/ffmpeg -hide_banner -loglevel error -y -i %s -f rawvideo -pix_fmt gray %s",
             b ? b : "build", path, tmp);
    uint8_t *v = NULL;
    if (system(cmd) == 0) {
        FILE *f = fopen(tmp, "rb");
        if (f) {
            fseek(f, 0, SEEK_END);
            long n = ftell(f);
            fseek(f, 0, SEEK_SET);
            *frames = (int)(n / (VW * VH));
            v = malloc((size_t)n + 1);
            if (v && fread(v, 1, (size_t)n, f) != (size_t)n) { free(v); v = NULL; }
            fclose(f);
        }
    }
    unlink(tmp);
    if (v)
        for (long k = 0; k < (long)*frames * VW * VH; k++) v[k] = (uint8_t)(v[k] % n_labels);
    return v;
}

struct frame_out {
    int32_t *cond, *tok;
    uint8_t *rgb;
    double seconds;
    struct vqgan_sample_stats st;
};

struct pipeline {
    struct vqgan_session *s;
    int gw, gh, f;
};

static int pipeline_new(struct pipeline *p, struct vqgan_model *m, int temporal, int f)
{
    struct vqgan_session_params sp = vqgan_session_default_params();
    sp.top_k = top_k;
    sp.seed = 7;
    sp.temporal = temporal;
    p->f = f;
    p->gw = VW / f;
    p->gh = VH / f;
    return vqgan_session_new(m, &sp, &p->s);
}

/* One frame: labels -> condition tokens -> tokens -> picture. */
static int run_frame(struct pipeline *p, const uint8_t *lab, struct frame_out *o)
{
    const int n = p->gw * p->gh;
    if (!o->cond) {
        o->cond = malloc(sizeof(int32_t) * n);
        o->tok = malloc(sizeof(int32_t) * n);
        o->rgb = malloc((size_t)VW * VH * 3);
    }
    const double t0 = now_s();
    int rc = vqgan_encode_labels(p->s, lab, VW, VW, VH, o->cond, NULL);
    rc = rc ? rc : vqgan_sample_conditional(p->s, o->cond, p->gw, p->gh, o->tok);
    rc = rc ? rc : vqgan_session_get_stats(p->s, &o->st);
    rc = rc ? rc : vqgan_decode(p->s, o->tok, p->gw, p->gh, o->rgb, VW * 3);
    o->seconds = now_s() - t0;
    if (rc) fprintf(stderr, "frame failed: %s\n", vqgan_last_error());
    return rc;
}

static void frame_free(struct frame_out *o)
{
    free(o->cond); free(o->tok); free(o->rgb);
    memset(o, 0, sizeof(*o));
}

/* Cells whose window (condition tokens and image tokens before the cell)
 * shows the same as in the previous frame: the library's reuse rule, for
 * grids at least w a side. */
static void same_windows(const int32_t *pc, const int32_t *pt, const int32_t *c, const int32_t *t,
                         int gw, int gh, int w, uint8_t *same)
{
    for (int i = 0; i < gh; i++)
        for (int j = 0; j < gw; j++) {
            const int r0 = i - vq_window_offset(i, gh, w), c0 = j - vq_window_offset(j, gw, w);
            int ok = 1;
            for (int a = 0; a < w && ok; a++)
                for (int b = 0; b < w && ok; b++) {
                    const size_t k = (size_t)(r0 + a) * gw + c0 + b;
                    ok = c[k] == pc[k];
                    if (ok && (r0 + a < i || (r0 + a == i && c0 + b < j))) ok = t[k] == pt[k];
                }
            same[i * gw + j] = (uint8_t)ok;
        }
}

static int budget_frames(double first_off_seconds, int videos_frames)
{
    const char *e = getenv("VQ_BENCH_FRAMES");
    if (e) return atoi(e);
    /* per frame: moving (reuse + off) and pan (follow + off), about 4 full frames */
    int n = (int)(80.0 / (4.0 * (first_off_seconds > 1e-3 ? first_off_seconds : 1e-3)));
    if (n > videos_frames) n = videos_frames;
    if (n < 4) n = 4;
    return n;
}

int main(void)
{
    const char *mp = getenv("VQ_BENCH_MODEL");
    if (!mp) mp = access("samples/models/default.gguf", R_OK) == 0 ? "samples/models/default.gguf"
                                                                   : "build/test-models/conditional.gguf";
    struct vqgan_model *m = NULL;
    if (vqgan_model_load(mp, NULL, &m)) {
        printf("bench_temporal: cannot load %s: %s (skipped)\n", mp, vqgan_last_error());
        return 0;
    }
    struct vqgan_model_info info;
    vqgan_model_get_info(m, &info);
    n_labels = info.n_labels;
    top_k = info.vocab_size < 100 ? info.vocab_size / 2 : 100;
    (void)bench_peak_gflops;
    const int f = info.factor, w = info.window, gw = VW / f, gh = VH / f, n = gw * gh;
    printf("model %s: f = %d, window %d, %d labels%s; frames %dx%d -> %dx%d tokens; top_k %d, seed 7\n", mp, f, w,
           n_labels, n_labels < 182 ? " (class ids taken modulo the label count)" : "", VW, VH, gw, gh, top_k);

    int nm = 0, ns = 0, np_ = 0;
    uint8_t *mov = read_video("samples/labels_moving.mkv", &nm);
    uint8_t *sta = read_video("samples/labels_static.mkv", &ns);
    uint8_t *pan = read_video("samples/labels_pan.mkv", &np_);
    if (!mov || !sta || !pan) {
        printf("bench_temporal: cannot read samples/labels_*.mkv with build/ffmpeg "
               "(run tools/make_label_videos.py; skipped)\n");
        return 0;
    }

    /* ---- moving region: reuse vs off --------------------------------------- */
    struct pipeline off, reu, sty;
    if (pipeline_new(&off, m, VQGAN_TEMPORAL_OFF, f) || pipeline_new(&reu, m, VQGAN_TEMPORAL_REUSE, f) ||
        pipeline_new(&sty, m, VQGAN_TEMPORAL_STEADY, f)) return 1;
    struct frame_out a = { 0 }, b = { 0 }, prev = { 0 }, c = { 0 };
    uint8_t *prev_steady = malloc((size_t)VW * VH * 3);
    int64_t st_px = 0, st_px_changed = 0, st_far = 0, st_far_changed = 0;
    double t_steady = 0;
    prev.cond = malloc(sizeof(int32_t) * n);
    prev.tok = malloc(sizeof(int32_t) * n);
    prev.rgb = malloc((size_t)VW * VH * 3);
    uint8_t *same = malloc((size_t)n);
    if (run_frame(&off, mov, &b)) return 1;
    const int frames = budget_frames(b.seconds, nm);
    printf("\n== labels_moving.mkv (static background, one moving disc), %d of %d frames\n", frames, nm);
    printf("frame  resampled  reuse s   off s  speed-up  identical  px changed outside changed windows (max |d|)\n");
    double t_reuse = 0, t_off = 0, frac_sum = 0;
    int identical = 0;
    int64_t px_out = 0, px_out_changed = 0, px_far = 0, px_far_changed = 0, maxd = 0, maxd_far = 0;
    double sum_out = 0, sum_far = 0;
    for (int t = 0; t < frames; t++) {
        const uint8_t *lab = mov + (size_t)t * VW * VH;
        if (run_frame(&reu, lab, &a) || (t && run_frame(&off, lab, &b)) || run_frame(&sty, lab, &c)) return 1;
        const int64_t cells = a.st.positions_sampled + a.st.positions_reused;
        const double frac = (double)a.st.positions_sampled / (double)cells;
        const int same_frame = !memcmp(a.tok, b.tok, sizeof(int32_t) * n) && !memcmp(a.rgb, b.rgb, (size_t)VW * VH * 3);
        identical += same_frame;
        char extra[160] = "";
        if (t) {
            t_reuse += a.seconds;
            t_steady += c.seconds;
            t_off += b.seconds;
            frac_sum += frac;
            /* pixels of cells whose window saw no change, and of cells at
             * least FAR tokens from every changed token */
            same_windows(prev.cond, prev.tok, a.cond, a.tok, gw, gh, w, same);
            int64_t nsame = 0;
            for (int k = 0; k < n; k++) nsame += same[k];
            int64_t o = 0, oc = 0, fo = 0, fc = 0, md = 0, mdf = 0;
            for (int y = 0; y < VH; y++)
                for (int x = 0; x < VW; x++) {
                    const int ci = y / f, cj = x / f;
                    int d = 0;
                    for (int c = 0; c < 3; c++) {
                        const int dd = abs((int)a.rgb[((size_t)y * VW + x) * 3 + c] - prev.rgb[((size_t)y * VW + x) * 3 + c]);
                        if (dd > d) d = dd;
                    }
                    const int ds = memcmp(c.rgb + ((size_t)y * VW + x) * 3, prev_steady + ((size_t)y * VW + x) * 3, 3) != 0;
                    int far_s = 1;
                    for (int di = -VQGAN_STEADY_RADIUS; di <= VQGAN_STEADY_RADIUS && far_s; di++)
                        for (int dj = -VQGAN_STEADY_RADIUS; dj <= VQGAN_STEADY_RADIUS && far_s; dj++) {
                            const int ii = ci + di, jj = cj + dj;
                            if (ii >= 0 && ii < gh && jj >= 0 && jj < gw && a.tok[ii * gw + jj] != prev.tok[ii * gw + jj])
                                far_s = 0;
                        }
                    if (same[ci * gw + cj]) { st_px++; st_px_changed += ds; }
                    if (far_s) { st_far++; st_far_changed += ds; }
                    if (same[ci * gw + cj]) {
                        o++;
                        oc += d > 0;
                        sum_out += d;
                        if (d > md) md = d;
                    }
                    int far = 1;
                    for (int di = -FAR; di <= FAR && far; di++)
                        for (int dj = -FAR; dj <= FAR && far; dj++) {
                            const int ii = ci + di, jj = cj + dj;
                            if (ii >= 0 && ii < gh && jj >= 0 && jj < gw && a.tok[ii * gw + jj] != prev.tok[ii * gw + jj])
                                far = 0;
                        }
                    if (far) {
                        fo++;
                        fc += d > 0;
                        sum_far += d;
                        if (d > mdf) mdf = d;
                    }
                }
            px_out += o; px_out_changed += oc; px_far += fo; px_far_changed += fc;
            if (md > maxd) maxd = md;
            if (mdf > maxd_far) maxd_far = mdf;
            snprintf(extra, sizeof(extra), "%6.2f%% of %lld (%lld)%s", o ? 100.0 * oc / o : 0.0, (long long)o,
                     (long long)md, nsame != a.st.positions_reused ? "  [reuse count differs from the rule!]" : "");
        }
        printf("%5d  %8.1f%%  %7.3f %7.3f  %7.1fx  %9s  %s\n", t, 100 * frac, a.seconds, b.seconds,
               b.seconds / a.seconds, same_frame ? "yes" : "NO", extra);
        memcpy(prev.cond, a.cond, sizeof(int32_t) * n);
        memcpy(prev.tok, a.tok, sizeof(int32_t) * n);
        memcpy(prev.rgb, a.rgb, (size_t)VW * VH * 3);
        memcpy(prev_steady, c.rgb, (size_t)VW * VH * 3);
    }
    printf("frames 1..%d: %.1f%% of positions resampled on average; %.3f s vs %.3f s per frame: %.2fx faster "
           "than temporal=off; %d of %d frames identical to off\n",
           frames - 1, 100 * frac_sum / (frames - 1), t_reuse / (frames - 1), t_off / (frames - 1), t_off / t_reuse,
           identical, frames);
    printf("output pixels (RGB, 0..255) of cells whose window saw no change (same token) that changed anyway: "
           "%lld of %lld (%.1f%%), mean |diff| %.2f, max %lld; of cells >= %d tokens from every changed token: "
           "%lld of %lld (%.1f%%), mean |diff| %.2f, max %lld (the decoder's attention block reaches every pixel)\n",
           (long long)px_out_changed, (long long)px_out, px_out ? 100.0 * px_out_changed / px_out : 0.0,
           px_out ? sum_out / px_out : 0.0, (long long)maxd, FAR, (long long)px_far_changed, (long long)px_far,
           px_far ? 100.0 * px_far_changed / px_far : 0.0, px_far ? sum_far / px_far : 0.0, (long long)maxd_far);
    printf("temporal=steady (reuse's tokens, pixels kept >= %d tokens from every change): %.3f s per frame; output "
           "pixels of cells whose window saw no change that changed: %lld of %lld (%.1f%%); of cells >= %d tokens "
           "from every changed token: %lld of %lld\n", VQGAN_STEADY_RADIUS, t_steady / (frames - 1),
           (long long)st_px_changed, (long long)st_px, st_px ? 100.0 * st_px_changed / st_px : 0.0,
           VQGAN_STEADY_RADIUS, (long long)st_far_changed, (long long)st_far);
    free(prev_steady);
    frame_free(&c);
    vqgan_session_free(sty.s);
    vqgan_session_free(reu.s);
    vqgan_session_free(off.s);

    /* ---- static ---------------------------------------------------------------- */
    printf("\n== labels_static.mkv, %d frames, temporal=reuse\n", ns);
    if (pipeline_new(&reu, m, VQGAN_TEMPORAL_REUSE, f)) return 1;
    double first = 0, worst = 0;
    int same_all = 1;
    for (int t = 0; t < ns; t++) {
        if (run_frame(&reu, sta + (size_t)t * VW * VH, &a)) return 1;
        if (t == 0) first = a.seconds;
        else {
            if (a.seconds / first > worst) worst = a.seconds / first;
            if (memcmp(a.rgb, prev.rgb, (size_t)VW * VH * 3)) same_all = 0;
        }
        printf("frame %d: %.4f s (%.2f%% of the first), %lld positions sampled, %lld reused\n", t, a.seconds,
               100 * a.seconds / first, (long long)a.st.positions_sampled, (long long)a.st.positions_reused);
        memcpy(prev.rgb, a.rgb, (size_t)VW * VH * 3);
    }
    printf("static: every later frame at most %.2f%% of the first frame's time; consecutive frames identical: %s\n",
           100 * worst, same_all ? "yes" : "NO");
    vqgan_session_free(reu.s);

    /* ---- pan: follow vs off ------------------------------------------------------ */
    const int pf = frames < np_ ? frames : np_;
    printf("\n== labels_pan.mkv, %d of %d frames (camera 16 px right a frame, 16 px down every third)\n", pf, np_);
    struct pipeline fol;
    if (pipeline_new(&fol, m, VQGAN_TEMPORAL_FOLLOW, f) || pipeline_new(&off, m, VQGAN_TEMPORAL_OFF, f)) return 1;
    uint8_t *prev_off = malloc((size_t)VW * VH * 3);
    double mad_f = 0, mad_o = 0, tf = 0, to = 0, resf = 0, imad_f = 0, imad_o = 0;
    int shifts_ok = 0;
    printf("frame  shift (tokens) expected  resampled  follow s   off s  MAD follow  MAD off  (interior: follow  off)\n");
    for (int t = 0; t < pf; t++) {
        const uint8_t *lab = pan + (size_t)t * VW * VH;
        if (run_frame(&fol, lab, &a) || run_frame(&off, lab, &b)) return 1;
        const int ex = 16 * t, ey = 16 * (t / 3);
        if (t) {
            const int px = ex - 16 * (t - 1), py = ey - 16 * ((t - 1) / 3);   /* camera move, pixels */
            double sf = 0, so = 0, isf = 0, iso = 0;
            int64_t cnt = 0, icnt = 0;
            const int e = 2 * f;    /* interior: 2 tokens from every edge, in both frames */
            for (int y = 0; y + py < VH; y++)
                for (int x = 0; x + px < VW; x++)
                    for (int c = 0; c < 3; c++) {
                        const size_t k = ((size_t)y * VW + x) * 3 + c, kp = ((size_t)(y + py) * VW + x + px) * 3 + c;
                        const int df = abs((int)a.rgb[k] - prev.rgb[kp]), dof = abs((int)b.rgb[k] - prev_off[kp]);
                        sf += df;
                        so += dof;
                        cnt++;
                        if (y >= e && x >= e && y + py < VH - e && x + px < VW - e) {
                            isf += df;
                            iso += dof;
                            icnt++;
                        }
                    }
            imad_f += isf / icnt;
            imad_o += iso / icnt;
            const int ok = a.st.shift_x == px / f && a.st.shift_y == py / f;
            shifts_ok += ok;
            mad_f += sf / cnt;
            mad_o += so / cnt;
            tf += a.seconds;
            to += b.seconds;
            const double frac = (double)a.st.positions_sampled / (a.st.positions_sampled + a.st.positions_reused);
            resf += frac;
            printf("%5d  %3d,%3d  %8d,%d  %8.1f%%  %8.3f %7.3f  %10.2f  %7.2f  %17.2f %5.2f\n", t, a.st.shift_y,
                   a.st.shift_x, py / f, px / f, 100 * frac, a.seconds, b.seconds, sf / cnt, so / cnt, isf / icnt,
                   iso / icnt);
        }
        memcpy(prev.rgb, a.rgb, (size_t)VW * VH * 3);
        memcpy(prev_off, b.rgb, (size_t)VW * VH * 3);
    }
    printf("pan: mean absolute difference between consecutive frames after undoing the pan (0..255, RGB): "
           "follow %.2f, off %.2f (%.1fx lower; interior, 2 tokens from the edges: %.2f vs %.2f, %.1fx); shift "
           "detected right in %d of %d frames; %.1f%% of positions resampled; %.3f s vs %.3f s per frame\n",
           mad_f / (pf - 1), mad_o / (pf - 1), mad_o / mad_f, imad_f / (pf - 1), imad_o / (pf - 1), imad_o / imad_f,
           shifts_ok, pf - 1, 100 * resf / (pf - 1), tf / (pf - 1), to / (pf - 1));
    vqgan_session_free(fol.s);
    vqgan_session_free(off.s);

    frame_free(&a); frame_free(&b); frame_free(&prev);
    free(prev_off); free(same); free(mov); free(sta); free(pan);
    vqgan_model_unref(m);
    return 0;
}
