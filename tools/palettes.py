#!/usr/bin/python3
"""Label palettes for colour-coded segmentation maps (vqgan.cond_stage.label_colors).

The converter (tools/convert.py --palette) writes one into segmentation
models; the FFmpeg filters read colour label pictures with it when no
palette= file is given. A palette file has one label a line, "id name
#rrggbb" (tab-separated; further columns and '#' lines ignored), as
samples/legend.txt.

Default palettes by label count (--palette auto):
  182  COCO-Stuff ids (COCO-Stuff id - 1), the colours of samples/legend.txt
       (coco182(), the project's COCO-Stuff palette; tools/colorize_labels.py
       draws with it)
  183  the reference's shifted maps (COCO-Stuff id + 1; its 255 "unlabeled"
       wraps to 0): 0 black, 1..182 the colours of the 182-label ids 0..181
  151  ADE20K SceneParsing: 0 (other) black, 1..150 the standard 150-class
       palette (objectInfo150 order, as MMSegmentation's ADE20KDataset)
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

COCO182_LABELS = 182

# The standard ADE20K 150-class palette, classes 1..150 in objectInfo150 order.
ADE20K_150 = [
    (120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50), (4, 200, 3),
    (120, 120, 80), (140, 140, 140), (204, 5, 255), (230, 230, 230), (4, 250, 7),
    (224, 5, 255), (235, 255, 7), (150, 5, 61), (120, 120, 70), (8, 255, 51),
    (255, 6, 82), (143, 255, 140), (204, 255, 4), (255, 51, 7), (204, 70, 3),
    (0, 102, 200), (61, 230, 250), (255, 6, 51), (11, 102, 255), (255, 7, 71),
    (255, 9, 224), (9, 7, 230), (220, 220, 220), (255, 9, 92), (112, 9, 255),
    (8, 255, 214), (7, 255, 224), (255, 184, 6), (10, 255, 71), (255, 41, 10),
    (7, 255, 255), (224, 255, 8), (102, 8, 255), (255, 61, 6), (255, 194, 7),
    (255, 122, 8), (0, 255, 20), (255, 8, 41), (255, 5, 153), (6, 51, 255),
    (235, 12, 255), (160, 150, 20), (0, 163, 255), (140, 140, 140), (250, 10, 15),
    (20, 255, 0), (31, 255, 0), (255, 31, 0), (255, 224, 0), (153, 255, 0),
    (0, 0, 255), (255, 71, 0), (0, 235, 255), (0, 173, 255), (31, 0, 255),
    (11, 200, 200), (255, 82, 0), (0, 255, 245), (0, 61, 255), (0, 255, 112),
    (0, 255, 133), (255, 0, 0), (255, 163, 0), (255, 102, 0), (194, 255, 0),
    (0, 143, 255), (51, 255, 0), (0, 82, 255), (0, 255, 41), (0, 255, 173),
    (10, 0, 255), (173, 255, 0), (0, 255, 153), (255, 92, 0), (255, 0, 255),
    (255, 0, 245), (255, 0, 102), (255, 173, 0), (255, 0, 20), (255, 184, 184),
    (0, 31, 255), (0, 255, 61), (0, 71, 255), (255, 0, 204), (0, 255, 194),
    (0, 255, 82), (0, 10, 255), (0, 112, 255), (51, 0, 255), (0, 194, 255),
    (0, 122, 255), (0, 255, 163), (255, 153, 0), (0, 255, 10), (255, 112, 0),
    (143, 255, 0), (82, 0, 255), (163, 255, 0), (255, 235, 0), (8, 184, 170),
    (133, 0, 255), (0, 255, 92), (184, 0, 255), (255, 0, 31), (0, 184, 255),
    (0, 214, 255), (255, 0, 112), (92, 255, 0), (0, 224, 255), (112, 224, 255),
    (70, 184, 160), (163, 0, 255), (153, 0, 255), (71, 255, 0), (255, 0, 163),
    (255, 204, 0), (255, 0, 143), (0, 255, 235), (133, 255, 0), (255, 0, 235),
    (245, 0, 255), (255, 0, 122), (255, 245, 0), (10, 190, 212), (214, 255, 0),
    (0, 204, 255), (20, 0, 255), (255, 255, 0), (0, 153, 255), (0, 41, 255),
    (0, 255, 204), (41, 0, 255), (41, 255, 0), (173, 0, 255), (0, 245, 255),
    (71, 0, 255), (122, 0, 255), (0, 255, 184), (0, 92, 255), (184, 255, 0),
    (0, 133, 255), (255, 214, 0), (25, 194, 194), (102, 255, 0), (92, 0, 255),
]


# The project's COCO-Stuff palette (182 labels; tools/colorize_labels.py
# draws with it). id: (name, colour) for the classes of landscape photos.
# Ids are fixed by COCO-Stuff (labels.txt); names are kept here so the table
# reads on its own.
NATURAL = {
    156: ("sky-other", (120, 180, 240)),
    105: ("clouds", (215, 222, 235)),
    134: ("mountain", (125, 95, 80)),
    168: ("tree", (25, 105, 35)),
    154: ("sea", (15, 60, 150)),
    123: ("grass", (115, 195, 55)),
    126: ("hill", (160, 165, 75)),
    153: ("sand", (235, 210, 145)),
    118: ("flower", (235, 85, 175)),
    147: ("river", (45, 135, 210)),
    149: ("rock", (105, 105, 110)),
    158: ("snow", (250, 250, 252)),
    177: ("water-other", (70, 165, 190)),
    141: ("plant-other", (70, 150, 95)),
    119: ("fog", (185, 185, 200)),
    96: ("bush", (55, 125, 45)),
    110: ("dirt", (145, 100, 55)),
    135: ("mud", (95, 75, 45)),
    125: ("ground-other", (170, 135, 95)),
    124: ("gravel", (150, 145, 135)),
    161: ("stone", (135, 130, 120)),
    133: ("moss", (95, 140, 40)),
    128: ("leaves", (60, 160, 30)),
    162: ("straw", (215, 190, 95)),
    181: ("wood", (120, 75, 35)),
    159: ("solid-other", (140, 115, 115)),
    95: ("building-other", (190, 60, 50)),
    127: ("house", (210, 100, 60)),
    150: ("roof", (165, 40, 40)),
    174: ("wall-stone", (175, 160, 140)),
    144: ("playingfield", (90, 180, 90)),
}


def voc_colour(i):
    r = g = b = 0
    c = i
    for j in range(8):
        r |= ((c >> 0) & 1) << (7 - j)
        g |= ((c >> 1) & 1) << (7 - j)
        b |= ((c >> 2) & 1) << (7 - j)
        c >>= 3
    return r, g, b


def coco182():
    """(r, g, b) of every id of the 182 COCO-Stuff labels (COCO-Stuff id - 1):
    the landscape classes' natural colours, the others PASCAL-VOC's of id + 1,
    distinct for all ids (samples/legend.txt lists them)."""
    pal = [voc_colour(i + 1) for i in range(COCO182_LABELS)]
    for i, (_, rgb) in NATURAL.items():
        pal[i] = rgb
    return pal



class PaletteError(Exception):
    pass


def hexcolour(rgb):
    return "#%02x%02x%02x" % tuple(int(v) for v in rgb)


def default_palette(n_labels):
    """'#rrggbb' per label for the label spaces above, or None."""
    if n_labels in (182, 183):
        cols = [hexcolour(c) for c in coco182()]
        return ["#000000"] + cols if n_labels == 183 else cols
    if n_labels == 151:
        return ["#000000"] + [hexcolour(c) for c in ADE20K_150]
    return None


def read_palette_file(path, n_labels=None):
    """'#rrggbb' per label from an "id name #rrggbb" file naming every label
    once: labels 0..n_labels-1, or (n_labels None) 0 up to its largest id."""
    cols = {}
    top = n_labels if n_labels is not None else 256    # label maps are 8-bit
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise PaletteError("cannot read palette %s: %s" % (path, e))
    for ln, line in enumerate(lines, 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        words = s.split("\t") if "\t" in s else s.split()
        colour = next((w for w in words[1:] if len(w) == 7 and w[0] == "#"
                       and all(c in "0123456789abcdefABCDEF" for c in w[1:])), None)
        try:
            i = int(words[0])
        except ValueError:
            i = -1
        if colour is None or not 0 <= i < top:
            raise PaletteError("%s:%d: expected \"id name #rrggbb\" with id 0..%d, got %r"
                               % (path, ln, top - 1, s))
        if i in cols:
            raise PaletteError("%s:%d: label %d listed twice" % (path, ln, i))
        cols[i] = colour.lower()
    if n_labels is None:
        if not cols:
            raise PaletteError("palette %s lists no label" % path)
        n_labels = max(cols) + 1
    missing = [i for i in range(n_labels) if i not in cols]
    if missing:
        raise PaletteError("%s gives no colour to label(s) %s of the model's %d"
                           % (path, ", ".join(map(str, missing[:8])), n_labels))
    out = [cols[i] for i in range(n_labels)]
    if len(set(out)) != len(out):
        raise PaletteError("%s gives one colour to two labels" % path)
    return out


def check_palette(cols, n_labels, what):
    if len(cols) != n_labels or len(set(cols)) != len(cols):
        raise PaletteError("%s: %d colours (%d distinct) for %d labels"
                           % (what, len(cols), len(set(cols)), n_labels))
    return cols


def model_palette(path):
    """The '#rrggbb' palette a model file carries (vqgan.cond_stage.label_colors):
    from the key/value records at the file's head (a released model is GBs)."""
    import gguf_writer as gw
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(min(size, 64 << 20))
        try:
            g = gw.parse_gguf(head, check=False)
        except gw.GGUFError:
            if len(head) == size:
                raise
            g = gw.read_gguf(path)      # records beyond 64 MiB: the whole file
    except (OSError, gw.GGUFError) as e:
        raise PaletteError("cannot read model %s: %s" % (path, e))
    cols = g.value("vqgan.cond_stage.label_colors")
    if not cols:
        raise PaletteError("model %s carries no label palette (tools/add_palette.py adds one)" % path)
    return [str(c) for c in cols]


def load_palette(src):
    """(r, g, b) per label id from a model file (.gguf) or an "id name
    #rrggbb" file naming every id from 0 to its largest once."""
    cols = model_palette(src) if src.lower().endswith(".gguf") else read_palette_file(src)
    return [tuple(int(c[k:k + 2], 16) for k in (1, 3, 5)) for c in cols]
