#!/usr/bin/env python3
"""Label videos for the temporal modes of vqgan_synth (issue 7, samples/README.md).

    /usr/bin/python3 tools/make_label_videos.py [--data DIR] [--ffmpeg build/ffmpeg] [--out samples]

builds, from the S-FLCKR segmentation maps (8-bit class ids 0..181), four
gray8 label videos of 512x320 at 8 fps, stored losslessly (FFV1 in Matroska;
PNG sequences under OUT/NAME/%03d.png when the FFmpeg cannot write them):

  labels_pan.mkv     a slow pan across one map in whole steps of 16 px (the
                     default model's factor): 16 px right every frame, 16 px
                     down every third frame, 24 frames
  labels_moving.mkv  a static map with one disc (class 'rock', radius 20 px)
                     rolling along its bottom edge, 14 px right a frame (not
                     a whole token), 24 frames
  labels_morph.mkv   a map whose regions change: the sea (class 'sea') rises
                     from the bottom 6 px a frame, drowning what was there,
                     24 frames
  labels_static.mkv  8 identical frames of one map

Everything is deterministic (no random numbers; FFmpeg runs with -bitexact).
Also writes OUT/labels_videos.json: per video the size, frame count and the
per-frame camera offset (pan) or disc centre (moving), for the benchmark.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

W, H, FPS, N = 512, 320, 8, 24
SKY, TREE, SEA, ROCK = 156, 168, 154, 149
PAN_MAP = "canada_256743165_9f130ba95b_b"
MOVING_MAP = "black_forest_44974691685_8e7372e2b1_b"
MORPH_MAP = "ireland_15570753471_74db396d14_b"
STATIC_MAP = "swiss_mountains_33509672006_bf4c416afd_b"


def load(data, name):
    m = np.array(Image.open(os.path.join(data, "segmentations", name + ".png")))
    if m.ndim != 2 or m.max() > 181:
        sys.exit(f"{name}: not an 8-bit class-id map (0..181)")
    return m


def fit(m, w, h):
    """Scale (nearest, no new ids) so that the map covers w x h, then crop the centre."""
    s = max(w / m.shape[1], h / m.shape[0])
    im = Image.fromarray(m).resize((max(w, round(m.shape[1] * s)), max(h, round(m.shape[0] * s))), Image.NEAREST)
    a = np.array(im)
    y0, x0 = (a.shape[0] - h) // 2, (a.shape[1] - w) // 2
    return a[y0:y0 + h, x0:x0 + w]


def pan(data):
    m = load(data, PAN_MAP)
    frames, path = [], []
    for t in range(N):
        x0, y0 = 16 * t, 16 * (t // 3)
        assert x0 + W <= m.shape[1] and y0 + H <= m.shape[0], "map too small for the pan"
        frames.append(m[y0:y0 + H, x0:x0 + W].copy())
        path.append([x0, y0])
    return frames, {"camera": path}


def moving(data):
    bg = fit(load(data, MOVING_MAP), W, H)
    yy, xx = np.mgrid[0:H, 0:W]
    frames, centres = [], []
    for t in range(N):
        cx, cy, r = 40 + 14 * t, 298, 20
        f = bg.copy()
        f[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = ROCK
        frames.append(f)
        centres.append([cx, cy, r])
    return frames, {"disc": centres}


def morph(data):
    bg = fit(load(data, MORPH_MAP), W, H)
    frames, levels = [], []
    for t in range(N):
        level = H - 6 * t          # rows >= level are sea
        f = bg.copy()
        f[level:, :] = SEA
        frames.append(f)
        levels.append(level)
    return frames, {"sea_from_row": levels}


def static(data):
    f = fit(load(data, STATIC_MAP), W, H)
    return [f.copy() for _ in range(8)], {}


def write(ffmpeg, out, name, frames):
    raw = b"".join(np.ascontiguousarray(f, dtype=np.uint8).tobytes() for f in frames)
    path = os.path.join(out, name + ".mkv")
    if ffmpeg:
        # through files: a minimal FFmpeg build may lack the pipe protocol
        with tempfile.TemporaryDirectory() as tmp:
            src, back = os.path.join(tmp, "in.raw"), os.path.join(tmp, "back.raw")
            with open(src, "wb") as f:
                f.write(raw)
            cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "gray",
                   "-s", f"{W}x{H}", "-r", str(FPS), "-i", src, "-c:v", "ffv1", "-level", "3", "-pix_fmt", "gray",
                   "-g", "1", "-fflags", "+bitexact", "-flags", "+bitexact", "-map_metadata", "-1", path]
            ok = subprocess.run(cmd).returncode == 0
            # round trip: the video must hold exactly these ids
            ok = ok and subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", path, "-f",
                                        "rawvideo", "-pix_fmt", "gray", back]).returncode == 0
            if ok and open(back, "rb").read() == raw:
                shutil.rmtree(os.path.join(out, name), ignore_errors=True)
                return path
        print(f"{path}: FFmpeg could not write it losslessly, writing PNGs instead", file=sys.stderr)
        if os.path.exists(path):
            os.remove(path)
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    for k, f in enumerate(frames):
        Image.fromarray(f).save(os.path.join(d, f"{k:03d}.png"), optimize=True)
    return os.path.join(d, "%03d.png")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_data = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "sflckr"))
    if not os.path.isdir(default_data):
        default_data = "/work/shared/data/sflckr"
    ap.add_argument("--data", default=default_data)
    ap.add_argument("--ffmpeg", default=os.path.join(ROOT, "build", "ffmpeg"))
    ap.add_argument("--out", default=os.path.join(ROOT, "samples"))
    a = ap.parse_args()
    ffmpeg = a.ffmpeg if a.ffmpeg and (os.path.exists(a.ffmpeg) or shutil.which(a.ffmpeg)) else None
    os.makedirs(a.out, exist_ok=True)
    meta = {}
    for name, make in (("labels_pan", pan), ("labels_moving", moving), ("labels_morph", morph),
                       ("labels_static", static)):
        frames, info = make(a.data)
        path = write(ffmpeg, a.out, name, frames)
        meta[name] = dict(file=os.path.relpath(path, a.out), width=W, height=H, fps=FPS, frames=len(frames), **info)
        print(f"{path}: {len(frames)} frames {W}x{H}, classes {sorted(set(np.unique(np.stack(frames)).tolist()))}")
    with open(os.path.join(a.out, "labels_videos.json"), "w") as f:
        f.write("{\n" + ",\n".join(" %s: %s" % (json.dumps(k), json.dumps(v)) for k, v in meta.items()) + "\n}\n")


if __name__ == "__main__":
    main()
