#!/usr/bin/python3
"""Long-run soak of vqgan_synth (issue 21, docs/farm.md "Soak"): memory stays
flat and speed steady over a long render.

    /usr/bin/python3 tests/robustness/soak.py [--ffmpeg build/ffmpeg] [--frames 500]
        [--size 128x96] [--temporal follow,reuse] [--out build/soak]
        [--model PATH] [--label-mod N] [--synth seed=7:top_k=32:threads=1]
        [--valgrind-frames 0]

Builds a moving label video (OUT/soak_labels.mkv, gray8 FFV1, deterministic:
a camera ping-ponging across the S-FLCKR pan map of samples/labels_pan.mkv in
whole 16-px token steps every 4th frame, with a disc of class 'rock' rolling
along the bottom 6 px a frame; --label-mod N takes the ids modulo N, for
models with N labels), renders it once per temporal mode with
`nice ffmpeg ... vqgan_synth=SYNTH:temporal=MODE` (the default model), samples
the process's resident memory (VmRSS, /proc) every 0.5 s, and takes every
frame's time from vqgan_synth's log. Writes OUT/MODE.rss.csv (seconds,
frames done, RSS KiB), OUT/MODE.frames.csv (frame, seconds, sampled, reused)
and prints a summary: RSS after the first frames and at the end, the growth
past frame 20, and seconds per frame by stretch of 50 frames.

--valgrind-frames N also runs the first N frames of each mode under valgrind
memcheck (no definite or indirect leak, ERROR SUMMARY 0), at --valgrind-size.
Exit status 1 when RSS grows past frame 20 by more than --max-growth-mib or
valgrind finds an error.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PAN_MAP = "canada_256743165_9f130ba95b_b"
ROCK = 149
FPS = 8


def make_video(ffmpeg, data, path, frames, w, h, mod):
    m = np.array(Image.open(os.path.join(data, "segmentations", PAN_MAP + ".png")))
    rock = ROCK
    if mod:
        m, rock = m % mod, (m.max() + 1) % mod
    # the camera moves in whole tokens (16 px) every 4th frame, back and forth
    # across the map's width and a little down and up
    span_x, span_y = (m.shape[1] - w) // 16, min(4, (m.shape[0] - h) // 16)
    if span_x < 2 or span_y < 0:
        sys.exit(f"the map {m.shape[1]}x{m.shape[0]} is too small for {w}x{h}")
    yy, xx = np.mgrid[0:h, 0:w]
    raw = bytearray()
    for t in range(frames):
        step = t // 4
        px = step % (2 * span_x)
        px = px if px < span_x else 2 * span_x - px
        py = (step // 3) % (2 * span_y) if span_y else 0
        py = py if py < span_y else 2 * span_y - py
        f = m[16 * py:16 * py + h, 16 * px:16 * px + w].copy()
        cx, r = (20 + 6 * t) % (w + 40) - 20, 12
        f[(xx - cx) ** 2 + (yy - (h - 16)) ** 2 <= r * r] = rock
        raw += f.tobytes()
    tmp = path + ".raw"
    with open(tmp, "wb") as fh:
        fh.write(raw)
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "gray",
                    "-s", f"{w}x{h}", "-r", str(FPS), "-i", tmp, "-c:v", "ffv1", "-pix_fmt", "gray", "-g", "1",
                    "-fflags", "+bitexact", "-flags", "+bitexact", path], check=True)
    os.unlink(tmp)


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


FRAME_RE = re.compile(r"\] frame (\d+): (\d+) tokens sampled(?:, (\d+) reused)?.*? in ([0-9.]+) s")


def soak(ffmpeg, video, out, mode, synth, max_seconds):
    log = os.path.join(out, f"{mode}.log")
    cmd = ["nice", ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "info", "-nostats", "-y", "-i", video,
           "-vf", f"vqgan_synth={synth}:temporal={mode}", "-c:v", "ffv1", os.path.join(out, f"{mode}.mkv")]
    t0 = time.time()
    samples = []
    stopped = False
    with open(log, "w") as lf:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=lf, stderr=lf)
        # nice execs ffmpeg in place: p.pid is ffmpeg's pid
        while p.poll() is None:
            if max_seconds and time.time() - t0 > max_seconds and not stopped:
                p.send_signal(signal.SIGINT)     # ffmpeg finishes the file and exits
                stopped = True
            r = rss_kib(p.pid)
            if r is not None:
                with open(log, errors="replace") as f:
                    done = len(FRAME_RE.findall(f.read()))
                samples.append((time.time() - t0, done, r))
            time.sleep(0.5)
    if p.returncode != 0 and not stopped:
        sys.exit(f"{mode}: ffmpeg failed (exit {p.returncode}), see {log}")
    if stopped:
        print(f"   temporal={mode}: stopped after --max-seconds {max_seconds}")
    with open(log, errors="replace") as f:
        frames = [(int(a), float(d), int(b), int(c or 0)) for a, b, c, d in FRAME_RE.findall(f.read())]
    with open(os.path.join(out, f"{mode}.rss.csv"), "w") as f:
        f.write("seconds,frames_done,rss_kib\n")
        f.writelines(f"{t:.1f},{d},{r}\n" for t, d, r in samples)
    with open(os.path.join(out, f"{mode}.frames.csv"), "w") as f:
        f.write("frame,seconds,sampled,reused\n")
        f.writelines(f"{n},{s:.3f},{a},{b}\n" for n, s, a, b in frames)
    return samples, frames, time.time() - t0


def summary(mode, samples, frames, wall, max_growth):
    def rss_at(n):      # the highest RSS while frame n-1 was the last one done
        v = [r for _, d, r in samples if d <= n]
        return max(v) / 1024 if v else float("nan")
    peak = max(r for _, _, r in samples) / 1024
    after20 = [r for _, d, r in samples if d >= 20]
    growth = (max(after20) - min(after20)) / 1024 if after20 else float("nan")
    print(f"== temporal={mode}: {len(frames)} frames in {wall:.0f} s wall, {len(samples)} RSS samples")
    print(f"   RSS (MiB): after frame 1 {rss_at(1):.1f}, 20 {rss_at(20):.1f}, 100 {rss_at(100):.1f}, "
          f"250 {rss_at(250):.1f}, end {samples[-1][2] / 1024:.1f}; peak {peak:.1f}; "
          f"spread from frame 20 on {growth:.1f}")
    line = []
    for b in range(0, len(frames), 50):
        s = [x[1] for x in frames[b:b + 50]]
        line.append(f"{b}-{b + len(s) - 1}: {sum(s) / len(s):.2f}")
    print("   s/frame by stretch: " + ", ".join(line))
    sampled = sum(x[2] for x in frames)
    reused = sum(x[3] for x in frames)
    print(f"   positions: {sampled} sampled, {reused} reused ({100.0 * reused / max(1, sampled + reused):.0f} %)")
    return growth <= max_growth


def valgrind(ffmpeg, video, out, mode, synth, n, size):
    vlog = os.path.join(out, f"{mode}.valgrind.log")
    w, h = size.split("x")
    cmd = ["nice", "valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
           "--show-leak-kinds=definite,indirect", "--smc-check=all-non-file", "--num-callers=30",
           f"--log-file={vlog}", ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", video,
           "-frames:v", str(n), "-vf", f"crop={w}:{h}:0:0,vqgan_synth={synth}:temporal={mode}:threads=1",
           "-f", "null", "-"]
    t0 = time.time()
    rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, env=dict(os.environ, OMP_NUM_THREADS="1")).returncode
    text = open(vlog, errors="replace").read()
    errs = re.findall(r"ERROR SUMMARY: (\d+) errors", text)
    lost = re.findall(r"(definitely|indirectly) lost: ([0-9,]+) bytes", text)
    in_use = re.findall(r"in use at exit: ([0-9,]+) bytes", text)
    # memory errors whose innermost frame is JIT-generated code (valgrind
    # prints ???): oneDNN's AVX2 kernels reading up to 32 bytes past the end
    # of buffers oneDNN itself allocated (dnnl_sgemm's packing); told apart
    # from every other error, which fails the run
    blocks = re.split(r"==\d+== \n", text)
    jit = sum(1 for b in blocks if re.search(r"Invalid read of size \d+\n==\d+==    at 0x[0-9A-F]+: \?\?\?", b))
    other = sum(1 for b in blocks if re.search(r"^==\d+== (Invalid|Conditional|Use of uninit|Syscall param|Mismatched)",
                                               b, re.M)) - jit
    ok = rc == 0 and errs and other == 0 and all(b == "0" for _, b in lost)
    print(f"== valgrind, temporal={mode}, {n} frames {size}: exit {rc}, ERROR SUMMARY {errs[-1] if errs else '?'} "
          f"({jit} reads in oneDNN's JIT code past its own buffers, {other} other), "
          f"lost {', '.join(f'{k} {b}' for k, b in lost) or 'none'}, in use at exit "
          f"{in_use[-1] if in_use else '?'} bytes ({time.time() - t0:.0f} s) -> {'ok' if ok else 'FAILED'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_data = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "sflckr"))
    if not os.path.isdir(default_data):
        default_data = "/work/shared/data/sflckr"
    ap.add_argument("--data", default=default_data)
    ap.add_argument("--ffmpeg", default=os.path.join(ROOT, "build", "ffmpeg"))
    ap.add_argument("--frames", type=int, default=500)
    ap.add_argument("--size", default="128x96")
    ap.add_argument("--temporal", default="follow,reuse")
    ap.add_argument("--synth", default="seed=7:top_k=32:threads=1")
    ap.add_argument("--model", help="model file (default: the filters' default model)")
    ap.add_argument("--label-mod", type=int, default=0, help="label ids modulo N (a model with N labels)")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "soak"))
    ap.add_argument("--max-seconds", type=float, default=0, help="stop each render after this long (0: never)")
    ap.add_argument("--valgrind-frames", type=int, default=0)
    ap.add_argument("--valgrind-size", default="64x48")
    ap.add_argument("--max-growth-mib", type=float, default=16.0,
                    help="largest RSS spread allowed from frame 20 on")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    w, h = (int(x) for x in a.size.split("x"))
    n = max(a.frames, a.valgrind_frames)
    video = os.path.join(a.out, f"soak_labels_{n}_{w}x{h}_mod{a.label_mod}.mkv")
    if not os.path.exists(video):
        make_video(a.ffmpeg, a.data, video, n, w, h, a.label_mod)
    if a.model:
        a.synth = f"model={os.path.abspath(a.model)}:{a.synth}"
    print(f"soak: {video} ({n} frames {w}x{h}), vqgan_synth={a.synth}, {os.cpu_count()} CPUs, "
          f"{open('/proc/loadavg').read().split()[0]} load at start")
    ok = True
    for mode in a.temporal.split(","):
        if a.frames:
            samples, frames, wall = soak(a.ffmpeg, video, a.out, mode, a.synth, a.max_seconds)
            ok &= summary(mode, samples, frames, wall, a.max_growth_mib)
        if a.valgrind_frames:
            ok &= valgrind(a.ffmpeg, video, a.out, mode, a.synth, a.valgrind_frames, a.valgrind_size)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
