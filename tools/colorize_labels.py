#!/usr/bin/env python3
"""Colour 182-label segmentation maps with libvqgan's fixed label palette.

    colorize_labels.py [--palette SRC] MAP.png OUT.png [MAP2.png OUT2.png ...]
    colorize_labels.py [--palette SRC] --outdir DIR MAP.png [MAP2.png ...]
    colorize_labels.py --legend samples/legend.png --legend-txt samples/legend.txt

Maps are 8-bit grayscale PNGs whose pixel values are class ids 0..181
(COCO-Stuff id - 1, as ../shared/data/sflckr/labels.txt lists them).  Values
>= 182 (e.g. 255 "unlabeled") are drawn black.

The palette (palettes.coco182) is deterministic and fixed: the landscape classes get natural
colours (sky light blue, tree dark green, sea deep blue, ...); every other id
gets the PASCAL-VOC bit-interleaved colour of (id + 1), which is distinct for
all ids.  samples/legend.txt lists the whole palette (id, name, #rrggbb, and
whether the label occurs in the shared maps); samples/legend.png shows the
labels that occur in the shared maps.

--palette SRC colours maps of another label space instead: SRC is a model
file (.gguf; the palette it carries, vqgan.cond_stage.label_colors, as the
filters read colour labels with it: a 183-label COCO-Stuff model's ids are
COCO-Stuff's + 1, 0 unlabelled) or an "id name #rrggbb" file. Values the
palette does not cover are drawn black.
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import palettes  # noqa: E402

N_LABELS = palettes.COCO182_LABELS
# the name messages and --help give: the installed launcher's (vqgan-colorize-labels)
PROG = os.environ.get("VQGAN_PROG") or "colorize_labels.py"
ROOT = os.path.dirname(HERE)
# the checkout's neighbour ../shared/data/sflckr, for --legend; an installed
# copy has none (--data DIR then)
DEFAULT_DATA = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "sflckr"))


def palette():
    """(182, 3) uint8 RGB colour of every label id."""
    return np.array(palettes.coco182(), dtype=np.uint8)


def colorize(seg, pal=None):
    """(H, W) integer label map -> (H, W, 3) uint8 image, with pal (a list
    of (r, g, b) per id, at most 256) or the fixed palette; other ids black."""
    seg = np.asarray(seg)
    lut = np.zeros((256, 3), dtype=np.uint8)
    pal = palette() if pal is None else np.array(pal, dtype=np.uint8).reshape(-1, 3)[:256]
    lut[:len(pal)] = pal
    return lut[np.clip(seg, 0, 255).astype(np.int64)]


def read_labels(path):
    names = {}
    for line in open(path, encoding="utf-8"):
        if line.startswith("#") or not line.strip():
            continue
        k, v = line.rstrip("\n").split("\t", 1)
        names[int(k)] = v.strip()
    return names


def labels_present(data):
    from PIL import Image
    d = os.path.join(data, "segmentations")
    count = np.zeros(256, dtype=np.int64)
    for f in sorted(os.listdir(d)):
        if f.endswith(".png"):
            count += np.bincount(np.asarray(Image.open(os.path.join(d, f))).ravel(), minlength=256)
    return count


def write_legend(png, txt, data):
    from PIL import Image, ImageDraw, ImageFont
    names = read_labels(os.path.join(data, "labels.txt"))
    pal = palette()
    count = labels_present(data)
    total = count.sum()
    for i, (name, _) in palettes.NATURAL.items():
        assert names[i] == name, (i, names[i], name)
    if txt:
        with open(txt, "w") as f:
            f.write("# libvqgan label palette (tools/colorize_labels.py); id = pixel value of the\n"
                    "# segmentation maps (COCO-Stuff id - 1).  columns: id, name, colour,\n"
                    "# pixels of that label in ../shared/data/sflckr/segmentations (0 = absent)\n")
            for i in range(N_LABELS):
                f.write("%d\t%s\t#%02x%02x%02x\t%d\n" % (i, names.get(i, "?"), *pal[i],
                                                       count[i]))
    if png:
        present = [i for i in np.argsort(-count[:N_LABELS]) if count[i] > 0]
        font = ImageFont.load_default()
        row, sw, colw = 18, 28, 250
        ncol = 2
        nrow = (len(present) + ncol - 1) // ncol
        im = Image.new("RGB", (ncol * colw + 10, nrow * row + 34), (255, 255, 255))
        dr = ImageDraw.Draw(im)
        dr.text((8, 6), "labels in the sflckr maps (id name, by pixel share)", fill=(0, 0, 0), font=font)
        for k, i in enumerate(present):
            x = 8 + (k // nrow) * colw
            y = 26 + (k % nrow) * row
            dr.rectangle([x, y, x + sw, y + row - 4], fill=tuple(int(c) for c in pal[i]),
                         outline=(0, 0, 0))
            dr.text((x + sw + 6, y + 2), "%3d %s" % (i, names.get(i, "?")), fill=(0, 0, 0), font=font)
        im.save(png)
    return len([i for i in range(N_LABELS) if count[i] > 0])


def main():
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*")
    ap.add_argument("--outdir", help="write DIR/<name>.png for every input map")
    ap.add_argument("--legend", help="write the legend image (labels present in the shared maps)")
    ap.add_argument("--legend-txt", help="write the palette as text (all 182 labels)")
    ap.add_argument("--data", default=DEFAULT_DATA, help="sflckr folder (labels.txt, segmentations/)")
    ap.add_argument("--palette", metavar="SRC", help="colour with a model's palette (.gguf) or an "
                    "\"id name #rrggbb\" file instead of the fixed 182-label one")
    a = ap.parse_args()
    from PIL import Image
    pal = None
    if a.palette:
        try:
            pal = palettes.load_palette(a.palette)
        except palettes.PaletteError as e:
            sys.exit(PROG + ": %s" % e)
    if a.legend or a.legend_txt:
        if not os.path.isfile(os.path.join(a.data, "labels.txt")) or \
                not os.path.isdir(os.path.join(a.data, "segmentations")):
            sys.exit(PROG + ": --legend and --legend-txt count the labels of the sflckr maps: "
                     "%s has no labels.txt and segmentations/ (give --data DIR)" % a.data)
        n = write_legend(a.legend, a.legend_txt, a.data)
        print("legend: %d labels present in the shared maps" % n)
    if a.outdir:
        os.makedirs(a.outdir, exist_ok=True)
        pairs = [(f, os.path.join(a.outdir, os.path.basename(f))) for f in a.files]
    else:
        if len(a.files) % 2:
            ap.error("give MAP OUT pairs, or --outdir")
        pairs = list(zip(a.files[::2], a.files[1::2]))
    for src, dst in pairs:
        seg = Image.open(src)
        if seg.mode not in ("L", "P"):
            sys.exit("%s: not an 8-bit label map (mode %s)" % (src, seg.mode))
        Image.fromarray(colorize(np.asarray(seg), pal)).save(dst)
        print(src, "->", dst)


if __name__ == "__main__":
    main()
