#!/usr/bin/python3
"""Regenerate patches/ffmpeg-<version>/*.patch from a pristine FFmpeg tree.

    /usr/bin/python3 patches/mkpatches.py VERSION PRISTINE
    /usr/bin/python3 patches/mkpatches.py --sources VERSION...

VERSION is major.minor ("7.1", "9.0"); PRISTINE is an unpatched FFmpeg source
tree or its release tarball (e.g. ffmpeg-src/downloads/ffmpeg_9.0.2.orig.tar.xz).
The documentation inserted into doc/filters.texi is patches/vqgan-filters.texi.

The patches are the deliverable: they carry the filter sources themselves
(libavfilter_vqgan/ -> libavfilter/, as new files), so `git am` or `patch -p1`
on a plain FFmpeg tree gives a complete tree, and ./configure builds our own
FFmpeg from them alone. --sources rewrites only the patch holding the filter
sources (new files need no pristine tree); mk/ffmpeg.mk runs it whenever a
file in libavfilter_vqgan/ changes. The version floor of require_pkg_config
is the library's VERSION.
"""
import difflib
import os
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SOURCES_DIR = os.path.join(ROOT, "libavfilter_vqgan")


def library_version():
    with open(os.path.join(ROOT, "VERSION"), encoding="utf-8") as f:
        return f.read().strip()


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
                     f'enabled libvqgan          && require_pkg_config libvqgan "libvqgan >= {library_version()}" vqgan.h vqgan_version\n',
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


def filter_sources():
    return sorted(f for f in os.listdir(SOURCES_DIR) if f.endswith((".c", ".h")))


# (file name, subject, body, edits of existing files, new files (path, text))
def patches():
    return [
        ("0001-configure-add-libvqgan.patch",
         "configure: add --enable-libvqgan for the vqgan_encode and vqgan_synth filters",
         f"libvqgan is found by pkg-config, at least version {library_version()}.",
         [("configure", edit_configure)], None),
        ("0002-lavfi-add-the-vqgan-filter-sources.patch",
         "lavfi: add the vqgan_encode and vqgan_synth filter sources",
         "VQGAN tokenizer and Taming Transformers synthesis through libvqgan:\n"
         "vf_vqgan_encode.c, vf_vqgan_synth.c and their shared helpers\n"
         "vqgan_common.[ch], vqgan_complete.[ch] (completion).",
         [], "sources"),
        ("0003-lavfi-register-vqgan_encode-and-vqgan_synth.patch",
         "lavfi: register the vqgan_encode and vqgan_synth filters",
         "",
         [("libavfilter/allfilters.c", edit_allfilters), ("libavfilter/Makefile", edit_makefile)], None),
        ("0004-doc-filters-document-vqgan_encode-and-vqgan_synth.patch",
         "doc/filters: document vqgan_encode and vqgan_synth",
         "",
         [("doc/filters.texi", edit_texi)], None),
    ]


def header(n, total, subject, body):
    # An mbox message that `git am` takes (fixed date: the patches are
    # regenerated byte-identically from the same inputs).
    out = ("From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
           "From: libvqgan authors <libvqgan@invalid>\n"
           "Date: Thu, 1 Jan 2026 00:00:00 +0000\n"
           f"Subject: [PATCH {n}/{total}] {subject}\n\n")
    if body:
        out += body + "\n\n"
    return out + "---\n"


def new_file_diff(path, text):
    lines = text.splitlines(True)
    out = [f"diff --git a/{path} b/{path}\n", "new file mode 100644\n"]
    out += difflib.unified_diff([], lines, "/dev/null", f"b/{path}", n=3)
    return out


def sources_diff():
    out = []
    for name in filter_sources():
        with open(os.path.join(SOURCES_DIR, name), encoding="utf-8") as f:
            out += new_file_diff(f"libavfilter/{name}", f.read())
    return out


def write_patch(outdir, index, total, entry, src, ver):
    name, subject, body, edits, new = entry
    out = [header(index, total, subject, body)]
    for path, fn in edits:
        a = read_pristine(src, path)
        b = fn(a, ver)
        out.append(f"diff --git a/{path} b/{path}\n")
        out += difflib.unified_diff(a.splitlines(True), b.splitlines(True),
                                    f"a/{path}", f"b/{path}", n=3)
    if new == "sources":
        out += sources_diff()
    out.append("-- \nlibvqgan\n\n")
    with open(os.path.join(outdir, name), "w", encoding="utf-8") as f:
        f.writelines(out)
    print(f"wrote patches/ffmpeg-{ver}/{name}")


def main():
    args = sys.argv[1:]
    if args and args[0] == "--sources":
        for ver in args[1:]:
            outdir = os.path.join(HERE, f"ffmpeg-{ver}")
            ps = patches()
            for i, entry in enumerate(ps, 1):
                if entry[4] == "sources":
                    write_patch(outdir, i, len(ps), entry, None, ver)
        return
    if len(args) != 2:
        raise SystemExit(__doc__)
    ver, src = args
    outdir = os.path.join(HERE, f"ffmpeg-{ver}")
    os.makedirs(outdir, exist_ok=True)
    for old in os.listdir(outdir):
        if old.endswith(".patch"):
            os.remove(os.path.join(outdir, old))
    ps = patches()
    for i, entry in enumerate(ps, 1):
        write_patch(outdir, i, len(ps), entry, src, ver)


if __name__ == "__main__":
    main()
