#!/usr/bin/python3
"""Make the completion example's inputs in samples/complete/ from an S-FLCKR photo.

    /usr/bin/python3 tools/make_complete_sample.py [--data ../shared/data/sflckr]
        [--name carribean_14351041152_ef77484a1f_b] [--size 320x176]
        [--classes 156,105] [--out samples/complete]

Writes, at the given size (a multiple of the default model's factor, 16):
  picture.png  the photo, RGB (scaled with Lanczos)
  labels.png   its segmentation map, gray8 class ids (scaled, nearest)
  mask.png     gray8, 255 where the label is one of --classes (default: sky
               156 and clouds 105, labels.txt of the data set), 0 elsewhere

so that `vqgan_synth=complete=1` resynthesizes the sky from the photo's own
label map (README.md, docs/filters.md). Deterministic: the same inputs give
the same files.

With --figure FFMPEG it also runs that ffmpeg (with the filters and the
default model) on them and writes figure.png: picture | mask | completed
(seed 3, top_k 32, feather 6), the README's picture.
"""
import subprocess
import tempfile
import argparse
import os

import numpy as np
from PIL import Image


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--data", default=os.path.join(here, "..", "..", "shared", "data", "sflckr"))
    ap.add_argument("--name", default="carribean_14351041152_ef77484a1f_b")
    ap.add_argument("--size", default="320x176")
    ap.add_argument("--classes", default="156,105")
    ap.add_argument("--out", default=os.path.join(here, "..", "samples", "complete"))
    ap.add_argument("--figure", metavar="FFMPEG", help="also write figure.png with this ffmpeg")
    a = ap.parse_args()

    w, h = (int(v) for v in a.size.split("x"))
    classes = [int(v) for v in a.classes.split(",")]
    photo = Image.open(os.path.join(a.data, "images", a.name + ".jpg")).convert("RGB")
    seg = Image.open(os.path.join(a.data, "segmentations", a.name + ".png"))
    if seg.mode != "L":
        raise SystemExit(f"{a.name}: the segmentation map is {seg.mode}, expected 8-bit gray")
    picture = photo.resize((w, h), Image.LANCZOS)
    labels = np.array(seg.resize((w, h), Image.NEAREST))
    mask = np.where(np.isin(labels, classes), 255, 0).astype(np.uint8)
    if not mask.any():
        raise SystemExit(f"{a.name}: no pixel of the classes {classes}")

    os.makedirs(a.out, exist_ok=True)
    picture.save(os.path.join(a.out, "picture.png"), optimize=True)
    Image.fromarray(labels).save(os.path.join(a.out, "labels.png"), optimize=True)
    Image.fromarray(mask).save(os.path.join(a.out, "mask.png"), optimize=True)
    print(f"{a.out}: {w}x{h} picture, labels and mask of {a.name}; "
          f"{100.0 * (mask > 0).mean():.1f} % of the pixels masked (classes {classes})")
    if a.figure:
        figure(a.figure, a.out, w, h)


def figure(ffmpeg, out, w, h):
    with tempfile.TemporaryDirectory() as tmp:
        done = os.path.join(tmp, "completed.rgb")
        subprocess.run([ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                        "-i", os.path.join(out, "labels.png"), "-i", os.path.join(out, "picture.png"),
                        "-i", os.path.join(out, "mask.png"), "-filter_complex",
                        "[0][1][2]vqgan_synth=complete=1:seed=3:top_k=32:feather=6",
                        "-f", "rawvideo", "-pix_fmt", "rgb24", done], check=True)
        completed = np.fromfile(done, np.uint8).reshape(h, w, 3)
    picture = np.array(Image.open(os.path.join(out, "picture.png")).convert("RGB"))
    mask = np.array(Image.open(os.path.join(out, "mask.png")).convert("RGB"))
    gap = np.full((h, 4, 3), 255, np.uint8)
    Image.fromarray(np.hstack([picture, gap, mask, gap, completed])).save(
        os.path.join(out, "figure.png"), optimize=True)
    print(f"{out}/figure.png: picture | mask | completed")


if __name__ == "__main__":
    main()
