#!/usr/bin/env python3
"""Side-by-side picture of label maps and their synthesis.

    make_demo_picture.py -o OUT.png LABELS.png SYNTH.png [LABELS2.png SYNTH2.png ...]

Each pair becomes one row: the label map (gray8 class ids, colourised with
libvqgan's fixed palette, tools/colorize_labels.py) | the synthesised
picture. Rows are stacked top to bottom, separated by a white gap. Used by
tools/render_demo.sh (`make demo`) for build/demo.png.
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from colorize_labels import colorize  # noqa: E402

GAP = 4


def row(labels_png, synth_png):
    seg = Image.open(labels_png)
    if seg.mode not in ("L", "P"):
        raise SystemExit("%s: not a gray8 label map (mode %s)" % (labels_png, seg.mode))
    seg = np.asarray(seg)
    img = np.asarray(Image.open(synth_png).convert("RGB"))
    if seg.shape != img.shape[:2]:
        raise SystemExit("%s is %dx%d, %s is %dx%d" % (labels_png, seg.shape[1], seg.shape[0],
                                                       synth_png, img.shape[1], img.shape[0]))
    gap = np.full((img.shape[0], GAP, 3), 255, np.uint8)
    return np.concatenate([colorize(seg), gap, img], 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("pairs", nargs="+", help="LABELS.png SYNTH.png, one pair per row")
    a = ap.parse_args()
    if len(a.pairs) % 2:
        ap.error("give the pictures in pairs: LABELS.png SYNTH.png")
    rows = [row(a.pairs[i], a.pairs[i + 1]) for i in range(0, len(a.pairs), 2)]
    if len({r.shape[1] for r in rows}) != 1:
        raise SystemExit("rows of different widths")
    out = []
    for i, r in enumerate(rows):
        if i:
            out.append(np.full((GAP, r.shape[1], 3), 255, np.uint8))
        out.append(r)
    Image.fromarray(np.concatenate(out, 0)).save(a.out, optimize=True)
    print("make_demo_picture: wrote %s (%dx%d, %d rows: labels | synthesis)"
          % (a.out, out[0].shape[1], sum(o.shape[0] for o in out), len(rows)))


if __name__ == "__main__":
    main()
