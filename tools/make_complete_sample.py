#!/usr/bin/python3
"""Make the completion example's inputs in samples/complete/ from an S-FLCKR photo.

    /usr/bin/python3 tools/make_complete_sample.py [--data ../shared/data/sflckr]
        [--name black_forest_44974691685_8e7372e2b1_b] [--size 288x192]
        [--classes 156,105] [--out samples/complete]

Writes, at the given size (a multiple of the default model's factor, 16):
  picture.png  the photo, RGB (scaled with Lanczos)
  labels.png   its segmentation map, gray8 class ids (scaled, nearest)
  mask.png     gray8, 255 where the label is one of --classes (default: sky
               156 and clouds 105, labels.txt of the data set), 0 elsewhere

so that `vqgan_synth=complete=1` resynthesizes the sky from the photo's own
label map (README.md, docs/filters.md). Deterministic: the same inputs give
the same files.
"""
import argparse
import os

import numpy as np
from PIL import Image


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--data", default=os.path.join(here, "..", "..", "shared", "data", "sflckr"))
    ap.add_argument("--name", default="black_forest_44974691685_8e7372e2b1_b")
    ap.add_argument("--size", default="288x192")
    ap.add_argument("--classes", default="156,105")
    ap.add_argument("--out", default=os.path.join(here, "..", "samples", "complete"))
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


if __name__ == "__main__":
    main()
