#!/usr/bin/python3
"""Add (or replace) the label palette of a segmentation model file.

    add_palette.py MODEL.gguf PALETTE [OUT.gguf]

PALETTE is an "id name #rrggbb" file (samples/legend.txt) or "auto" (the
default palette of the label count, tools/palettes.py). Every other byte of
the file stays as it was: the key/value records and tensor records are copied
verbatim, vqgan.cond_stage.label_colors goes after the label keys, and the
tensor data follows the (re-padded) header unchanged. Used to give
samples/models/default.gguf the colours of samples/legend.txt without
converting it again.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_writer as gw  # noqa: E402
import palettes  # noqa: E402

KEY = "vqgan.cond_stage.label_colors"


def main():
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    src, pal = sys.argv[1:3]
    out = sys.argv[3] if len(sys.argv) == 4 else src
    g = gw.read_gguf(src)
    n = g.value("vqgan.cond_stage.n_labels")
    if g.value("vqgan.cond_stage.kind") != "segmentation" or n is None:
        raise SystemExit("%s: not a segmentation-conditional model" % src)
    try:
        cols = palettes.default_palette(n) if pal == "auto" else palettes.read_palette_file(pal, n)
    except palettes.PaletteError as e:
        raise SystemExit(str(e))
    if cols is None:
        raise SystemExit("no default palette for %d labels: give a palette file" % n)
    d = g.data
    kvs, placed = [], False
    for kv in g.kv.values():
        if kv.key == KEY:
            continue
        kvs.append(d[kv.pos:kv.end])
        if kv.key in ("vqgan.cond_stage.label_names",) or (
                kv.key == "vqgan.cond_stage.n_labels" and "vqgan.cond_stage.label_names" not in g.kv):
            kvs.append(gw.encode_kv(KEY, gw.T_ARRAY, cols, gw.T_STRING))
            placed = True
    if not placed:
        kvs.append(gw.encode_kv(KEY, gw.T_ARRAY, cols, gw.T_STRING))
    infos = [d[ti.pos:ti.end] for ti in g.tensors]
    blob = gw.serialize(kvs, infos, d[g.data_start:], alignment=g.alignment)
    gw.read_gguf(blob)  # the result parses and passes the writer's checks
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
    os.replace(tmp, out)
    print("%s: %s with %d colours (%d bytes, tensor data unchanged)" % (out, KEY, len(cols), len(blob)))


if __name__ == "__main__":
    main()
