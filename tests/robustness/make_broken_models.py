#!/usr/bin/python3
"""Write hand-broken copies of a valid model file for the C loader test.

usage: make_broken_models.py VALID.gguf OUTDIR

OUTDIR receives valid.gguf, one broken file per case and expect.tsv with
lines ``filename<TAB>substring``: the substring the loader's error message
must contain (``OK`` for the valid file). Each file is also checked against
the Python reader/checker (tools/gguf_writer.py, tools/convert.py) so that a
case that is not broken the intended way is caught here; exit status 1 if
any such self-check fails.
"""

import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
import gguf_writer as gw  # noqa: E402
import convert  # noqa: E402


class Model:
    """A parsed file as editable parts: kvs and tensors (with raw data)."""

    def __init__(self, g):
        self.alignment = g.alignment
        self.kvs = gw.kv_list(g)
        self.tensors = [[ti.name, list(ti.dims), ti.type, g.raw_tensor(ti.name)]
                        for ti in g.tensors]

    def copy(self):
        m = Model.__new__(Model)
        m.alignment = self.alignment
        m.kvs = list(self.kvs)
        m.tensors = [list(t) for t in self.tensors]
        return m

    def kv_index(self, key):
        for i, kv in enumerate(self.kvs):
            if kv[0] == key:
                return i
        raise KeyError(key)

    def tensor_index(self, name):
        for i, t in enumerate(self.tensors):
            if t[0] == name:
                return i
        raise KeyError(name)

    def layout(self, extra_data=0):
        """Infos with offsets laid out like the writer, plus the data."""
        infos, blobs, off = [], [], 0
        for name, dims, ttype, raw in self.tensors:
            infos.append([name, dims, ttype, off])
            padded = gw.align_up(len(raw), self.alignment)
            blobs.append(raw + b"\0" * (padded - len(raw)))
            off += padded
        return infos, b"".join(blobs) + b"\0" * extra_data

    def to_bytes(self, infos=None, data=None, **kw):
        if infos is None:
            infos, data = self.layout()
        return gw.serialize(self.kvs, [tuple(i) for i in infos], data,
                            alignment=self.alignment, **kw)


def patch(data, pos, fmt, value):
    b = bytearray(data)
    struct.pack_into(fmt, b, pos, value)
    return bytes(b)


def set_element(raw, ttype, index, value):
    """Overwrite element ``index`` of raw tensor data with ``value``."""
    enc = gw.tensor_bytes(np.array([value], dtype=np.float32), ttype)
    n = len(enc)
    return raw[:index * n] + enc + raw[(index + 1) * n:]


def pick_stage(g):
    """(ch key, conv_in tensor, a required tensor) for the file's stages."""
    if g.value("vqgan.has_first_stage"):
        p = g.value("vqgan.first_stage.tensor_prefix")
        return ("vqgan.first_stage.ch", p + "encoder.conv_in.weight",
                p + "quantize.embedding.weight")
    if g.value("vqgan.cond_stage.kind") == "segmentation":
        p = g.value("vqgan.cond_stage.tensor_prefix")
        return ("vqgan.cond_stage.ch", p + "encoder.conv_in.weight",
                p + "quantize.embedding.weight")
    p = g.value("vqgan.transformer.tensor_prefix")
    return ("vqgan.transformer.n_embd", p + "tok_emb.weight",
            p + "head.weight")


def build_cases(valid_bytes):
    g = gw.parse_gguf(valid_bytes)
    m = Model(g)
    ch_key, conv_in, req_tensor = pick_stage(g)
    cases = [("valid.gguf", valid_bytes, "OK")]

    def add(name, data, expect):
        cases.append((name, data, expect))

    def rebuilt(fn, **kw):
        mm = m.copy()
        fn(mm)
        return mm.to_bytes(**kw)

    def with_infos(fn, extra_data=0):
        infos, data = m.layout(extra_data)
        fn(infos)
        return m.to_bytes(infos, data)

    # --- header fields, patched in place ---------------------------------
    add("bad_magic.gguf", b"GGUX" + valid_bytes[4:], "magic")
    add("version_2.gguf", patch(valid_bytes, 4, "<I", 2), "version")
    add("version_4.gguf", patch(valid_bytes, 4, "<I", 4), "version")
    add("tensor_count_huge.gguf", patch(valid_bytes, 8, "<Q", 1 << 40),
        "tensor_count")
    add("kv_count_huge.gguf", patch(valid_bytes, 16, "<Q", 1 << 40),
        "kv_count")
    add("kv_count_65537.gguf", patch(valid_bytes, 16, "<Q", 65537),
        "kv_count")

    # --- key/values --------------------------------------------------------
    fv = g.kv["vqgan.format_version"]
    add("kv_value_type_99.gguf", patch(valid_bytes, fv.type_pos, "<I", 99),
        "value type")
    # a key whose (in-range) length runs past the end of the file
    last = g.kv["general.architecture"]
    stub = (valid_bytes[:last.end] + struct.pack("<Q", 200)
            + b"vqgan.format_ver")
    add("key_len_past_end.gguf", stub, "truncated")
    add("key_len_0.gguf", rebuilt(lambda mm: mm.kvs.insert(
        1, ("", gw.T_U32, 1, None))), "key")
    add("duplicate_key.gguf", rebuilt(lambda mm: mm.kvs.append(
        mm.kvs[mm.kv_index(ch_key)])), "duplicate")
    al = g.kv["general.alignment"]
    add("alignment_3.gguf", patch(valid_bytes, al.value_pos, "<I", 3),
        "alignment")
    cm = g.kv[ch_key.rsplit(".", 1)[0] + ".ch_mult"] \
        if ch_key.endswith(".ch") else None
    if cm is not None:
        # array layout: u32 element type, u64 count
        add("array_count_huge.gguf",
            patch(valid_bytes, cm.value_pos + 4, "<Q", 1 << 40), "count")
    else:
        mm = m.copy()
        mm.kvs.append(("general.tags", gw.T_ARRAY, [1, 2], gw.T_U32))
        b = mm.to_bytes()
        k = gw.parse_gguf(b).kv["general.tags"]
        add("array_count_huge.gguf", patch(b, k.value_pos + 4, "<Q", 1 << 40),
            "count")
    # a string array element with a huge length (wraps a naive pos + len)
    mm = m.copy()
    mm.kvs.insert(2, ("general.tags", gw.T_ARRAY, ["vqgan", "test"],
                      gw.T_STRING))
    b = mm.to_bytes()
    k = gw.parse_gguf(b).kv["general.tags"]
    add("string_elem_len_huge.gguf",
        patch(b, k.elem_pos[1], "<Q", 0xFFFFFFFFFFFFFFF0), "truncated")
    # ... and one with an in-range length that runs past the end
    stub = (b[:k.elem_pos[1]] + struct.pack("<Q", 4000) + b"test")
    add("string_elem_len_past_end.gguf", stub, "truncated")
    add("arch_llama.gguf", rebuilt(lambda mm: mm.kvs.__setitem__(
        mm.kv_index("general.architecture"),
        ("general.architecture", gw.T_STRING, "llama", None))),
        "general.architecture")
    add("missing_key_ch.gguf", rebuilt(lambda mm: mm.kvs.pop(
        mm.kv_index(ch_key))), ch_key)
    add("wrong_type_ch.gguf", rebuilt(lambda mm: mm.kvs.__setitem__(
        mm.kv_index(ch_key), (ch_key, gw.T_STRING,
                              str(g.value(ch_key)), None))), ch_key)

    # --- tensor infos ------------------------------------------------------
    t1 = 1  # the second tensor
    t1_name = m.tensors[t1][0]

    def set_dims(dims):
        return lambda infos: infos[t1].__setitem__(1, dims)
    add("tensor_n_dims_0.gguf", with_infos(set_dims([])), "n_dims")
    add("tensor_n_dims_5.gguf",
        with_infos(set_dims(list(m.tensors[t1][1]) + [1] * (
            5 - len(m.tensors[t1][1])))), "n_dims")
    add("tensor_dim_0.gguf",
        with_infos(set_dims([0] + list(m.tensors[t1][1][1:]))), "dims")
    add("tensor_dims_overflow.gguf",
        with_infos(set_dims([1 << 32, 1 << 32, 1, 1])), "dims")
    add("tensor_dims_overflow_wrap.gguf",
        with_infos(set_dims([(1 << 63) + 1, 2])), "dims")
    add("tensor_type_99.gguf",
        with_infos(lambda infos: infos[t1].__setitem__(2, 99)),
        "tensor type")
    lastt = len(m.tensors) - 1
    add("tensor_offset_unaligned.gguf", with_infos(
        lambda infos: infos[lastt].__setitem__(3, infos[lastt][3] + 4),
        extra_data=64), "alignment")
    infos0, data0 = m.layout()
    far = gw.align_up(len(data0), m.alignment) + 4096
    add("tensor_offset_past_end.gguf", with_infos(
        lambda infos: infos[lastt].__setitem__(3, far)), "past the end")
    # the second tensor starts inside the first one's data
    first_len = len(m.tensors[0][3])
    ov = max(0, (first_len - 1) // m.alignment * m.alignment)
    add("tensors_overlap.gguf", with_infos(
        lambda infos: infos[t1].__setitem__(3, ov)), "overlap")
    add("duplicate_tensor_name.gguf", with_infos(
        lambda infos: infos[t1].__setitem__(0, infos[0][0])), "duplicate")
    add("tensor_name_len_0.gguf", with_infos(
        lambda infos: infos[t1].__setitem__(0, "")), "name")

    # --- truncation --------------------------------------------------------
    add("truncated_3.gguf", valid_bytes[:3], "truncated")
    add("truncated_12.gguf", valid_bytes[:12], "truncated")
    ka = g.kv["general.architecture"]
    add("truncated_mid_key.gguf", valid_bytes[:ka.pos + 8 + 5], "truncated")
    kvs = list(g.kv.values())
    mid_kv = kvs[len(kvs) // 2]
    add("truncated_mid_kv.gguf",
        valid_bytes[:(mid_kv.value_pos + mid_kv.end) // 2 or
                    mid_kv.value_pos + 1], "truncated")
    if g.kv.get(ch_key.rsplit(".", 1)[0] + ".ch_mult") is not None:
        cmk = g.kv[ch_key.rsplit(".", 1)[0] + ".ch_mult"]
        add("truncated_mid_array.gguf", valid_bytes[:cmk.elem_pos[-1] + 2],
            "truncated")
    tmid = g.tensors[len(g.tensors) // 2]
    add("truncated_mid_tensor_name.gguf", valid_bytes[:tmid.pos + 8 + 3],
        "truncated")
    add("truncated_mid_tensor_info.gguf", valid_bytes[:tmid.dims_pos + 4],
        "truncated")
    add("truncated_last_tensor_info.gguf",
        valid_bytes[:g.tensors[-1].offset_pos + 4], "truncated")
    lt = max(g.tensors, key=lambda t: t.offset)
    add("truncated_data.gguf",
        valid_bytes[:g.data_start + lt.offset + lt.nbytes // 2],
        "past the end")

    # --- model-level checks -------------------------------------------------
    def swap_conv_in(infos):
        i = m.tensor_index(conv_in)
        d = list(infos[i][1])
        d[0], d[-1] = d[-1], d[0]
        infos[i][1] = d
    add("wrong_shape_conv_in.gguf", with_infos(swap_conv_in), conv_in)
    add("missing_tensor.gguf", rebuilt(lambda mm: mm.tensors.pop(
        mm.tensor_index(req_tensor))), req_tensor)

    def poison(value):
        def fn(mm):
            i = mm.tensor_index(req_tensor)
            t = mm.tensors[i]
            n = len(t[3]) // gw.TENSOR_ELEM_SIZE[t[2]]
            t[3] = set_element(t[3], t[2], n // 2, value)
        return fn
    add("tensor_nan.gguf", rebuilt(poison(float("nan"))), "non-finite")
    add("tensor_inf.gguf", rebuilt(poison(float("inf"))), "non-finite")
    return cases


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: make_broken_models.py VALID.gguf OUTDIR\n")
        return 2
    with open(argv[1], "rb") as f:
        valid = f.read()
    err = convert.check_file(argv[1])
    if err is not None:
        sys.stderr.write("%s is not a valid model file: %s\n" % (argv[1], err))
        return 1
    out = argv[2]
    os.makedirs(out, exist_ok=True)
    cases = build_cases(valid)
    bad = 0
    with open(os.path.join(out, "expect.tsv"), "w") as tsv:
        for name, data, expect in cases:
            path = os.path.join(out, name)
            with open(path, "wb") as f:
                f.write(data)
            tsv.write("%s\t%s\n" % (name, expect))
            # self-check with the Python reader/checker
            msg = convert.check_file(path)
            if expect == "OK":
                good = msg is None
            else:
                good = msg is not None and expect in msg
            if not good:
                bad += 1
                sys.stderr.write("self-check: %s: expected %r, Python reader "
                                 "says %r\n" % (name, expect, msg))
    print("wrote %d files + expect.tsv to %s%s" % (
        len(cases), out, "" if not bad else
        " (%d failed the self-check)" % bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
