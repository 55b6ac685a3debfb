#!/usr/bin/python3
"""Regenerate patches/ffmpeg-<version>/*.patch from a pristine FFmpeg tree.

    /usr/bin/python3 patches/mkpatches.py VERSION PRISTINE

VERSION is major.minor ("7.1", "9.0"); PRISTINE is an unpatched FFmpeg source
tree or its release tarball (e.g. ffmpeg-src/downloads/ffmpeg_9.0.2.orig.tar.xz).
The documentation inserted into doc/filters.texi is patches/vqgan-filters.texi.

The patches are the deliverable (./configure applies them); this script only
keeps them easy to refresh when FFmpeg moves or the filters' options change.
"""
import difflib
import os
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))


def read_pristine(src, path):
    if os.path.isdir(src):
        with open(os.path.join(src, path), encoding="utf-8") as f:
            return f.read()
    with tarfile.open(src) as tar:
        for m in tar.getmembers():
            if m.name.split("/", 1)[-1] == path:
                return tar.extractfile(m).read().decode("utf-8")
    raise SystemExit(f"{src}: no {path}")


def insert_after(text, anchor, new, what):
    i = text.find(anchor)
    if i < 0:
        raise SystemExit(f"anchor for {what} not found: {anchor!r}")
    i += len(anchor)
    return text[:i] + new + text[i:]


def insert_before(text, anchor, new, what):
    i = text.find(anchor)
    if i < 0:
        raise SystemExit(f"anchor for {what} not found: {anchor!r}")
    return text[:i] + new + text[i:]


def edit_configure(t, ver):
    t = insert_after(t, "  --enable-libvmaf         enable vmaf filter via libvmaf [no]\n",
                     "  --enable-libvqgan        enable VQGAN tokenizer/synthesis filters via libvqgan [no]\n",
                     "configure help")
    t = insert_after(t, "\n    libvmaf\n", "    libvqgan\n", "EXTERNAL_LIBRARY_LIST")
    t = insert_after(t, 'libvmaf_cuda_filter_deps="libvmaf libvmaf_cuda ffnvcodec"\n',
                     'vqgan_encode_filter_deps="libvqgan"\n'
                     'vqgan_synth_filter_deps="libvqgan"\n',
                     "filter deps")
    t = insert_after(t, 'enabled libvmaf           && check_pkg_config libvmaf_cuda "libvmaf >= 2.0.0" libvmaf_cuda.h vmaf_cuda_state_init\n',
                     "enabled libvqgan          && require_pkg_config libvqgan libvqgan vqgan.h vqgan_version\n",
                     "require_pkg_config")
    return t


def edit_allfilters(t, ver):
    kind = "AVFilter" if ver.split(".")[0] in ("5", "6", "7") else "FFFilter"
    return insert_after(t, f"extern const {kind} ff_vf_vpp_qsv;\n",
                        f"extern const {kind} ff_vf_vqgan_encode;\n"
                        f"extern const {kind} ff_vf_vqgan_synth;\n",
                        "allfilters.c")


def edit_makefile(t, ver):
    anchor = "OBJS-$(CONFIG_VSTACK_FILTER)"
    line = next(l for l in t.splitlines(True) if l.startswith(anchor))
    new = ("OBJS-$(CONFIG_VQGAN_ENCODE_FILTER)           += vf_vqgan_encode.o vqgan_common.o\n"
           "OBJS-$(CONFIG_VQGAN_SYNTH_FILTER)            += vf_vqgan_synth.o vqgan_common.o vqgan_complete.o framesync.o\n")
    return insert_before(t, line, new, "libavfilter/Makefile")


def edit_texi(t, ver):
    with open(os.path.join(HERE, "vqgan-filters.texi"), encoding="utf-8") as f:
        doc = f.read()
    if not doc.endswith("\n\n"):
        doc = doc.rstrip("\n") + "\n\n"
    return insert_before(t, "@anchor{vstack}\n@section vstack\n", doc, "filters.texi")


PATCHES = [
    ("0001-configure-add-libvqgan.patch",
     "configure: add --enable-libvqgan for the vqgan_encode and vqgan_synth filters",
     [("configure", edit_configure)]),
    ("0002-lavfi-add-vqgan_encode-and-vqgan_synth.patch",
     "lavfi: register the vqgan_encode and vqgan_synth filters\n\n"
     "The filter sources (vf_vqgan_encode.c, vf_vqgan_synth.c, vqgan_common.[ch],\n"
     "vqgan_complete.[ch])\n"
     "are copied from libvqgan's libavfilter_vqgan/ by its build.",
     [("libavfilter/allfilters.c", edit_allfilters), ("libavfilter/Makefile", edit_makefile)]),
    ("0003-doc-filters-document-vqgan_encode-and-vqgan_synth.patch",
     "doc/filters: document vqgan_encode and vqgan_synth",
     [("doc/filters.texi", edit_texi)]),
]


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    ver, src = sys.argv[1], sys.argv[2]
    outdir = os.path.join(HERE, f"ffmpeg-{ver}")
    os.makedirs(outdir, exist_ok=True)
    for old in os.listdir(outdir):
        if old.endswith(".patch"):
            os.remove(os.path.join(outdir, old))
    for name, subject, edits in PATCHES:
        out = [f"Subject: [PATCH] {subject}\n\n---\n"]
        for path, fn in edits:
            a = read_pristine(src, path)
            b = fn(a, ver)
            out += difflib.unified_diff(a.splitlines(True), b.splitlines(True),
                                        f"a/{path}", f"b/{path}", n=3)
        with open(os.path.join(outdir, name), "w", encoding="utf-8") as f:
            f.writelines(out)
        print(f"wrote patches/ffmpeg-{ver}/{name}")


if __name__ == "__main__":
    main()
