#!/usr/bin/python3
"""Tests for tools/convert.py, tools/gguf_writer.py, tests/robustness/make_broken_models.py.

Converts every golden case (shared/golden/*: config.yaml + model.ckpt) in
f32, f16 and bf16, reads the files back and checks keys, names, shapes and
values; checks that broken checkpoints/configs are refused with a message
naming the problem and exit status 1; generates the broken-file set.

Prints one line per check, ``ok - ...`` or ``not ok - ...``; exit status 1
if any check failed. Run with /usr/bin/python3 (needs torch, numpy, yaml).
The golden folder is $VQGAN_GOLDEN, else shared/golden in or beside the
repository.
"""

import copy
import os
import subprocess
import sys
import tempfile
import traceback

import numpy as np
import torch
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TOOLS = os.path.join(ROOT, "tools")
sys.path.insert(0, TOOLS)
import gguf_writer as gw  # noqa: E402
import convert  # noqa: E402
import palettes  # noqa: E402

PY = sys.executable or "/usr/bin/python3"
CONVERT = os.path.join(TOOLS, "convert.py")
CASES = ["vqgan", "segmentation", "gpt", "conditional", "classcond",
         "depth", "coord", "coco", "classwin", "uncondwin", "complete",
         "gumbel"]

failures = 0


def report(good, desc, detail=None):
    global failures
    print("%s - %s" % ("ok" if good else "not ok", desc))
    if not good:
        failures += 1
        if detail:
            for line in str(detail).rstrip().splitlines():
                print("#   " + line)
    sys.stdout.flush()
    return good


def check(desc, fn):
    """Run fn(); it returns None/True for success or a failure detail."""
    try:
        r = fn()
    except Exception:  # noqa: BLE001 - any exception is a failed check
        return report(False, desc, traceback.format_exc())
    if r is None or r is True:
        return report(True, desc)
    return report(False, desc, r)


def find_golden():
    for d in (os.environ.get("VQGAN_GOLDEN"),
              os.path.join(ROOT, "shared", "golden"),
              os.path.join(ROOT, "..", "shared", "golden"),
              "/work/shared/golden"):
        if d and os.path.isfile(os.path.join(d, "vqgan", "model.ckpt")):
            return os.path.abspath(d)
    return None


def run_convert(*args):
    p = subprocess.run([PY, CONVERT] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    return p.returncode, p.stdout, p.stderr


# ---------------------------------------------------------------------------
# What each golden case must produce
# ---------------------------------------------------------------------------

STAGE_KEYS = ["tensor_prefix", "ch", "ch_mult", "num_res_blocks",
              "attn_resolutions", "resolution", "in_channels", "out_ch",
              "z_channels", "embed_dim", "n_embed"]
GPT_KEYS = ["tensor_prefix", "vocab_size", "block_size", "n_layer", "n_head",
            "n_embd", "n_unmasked"]


def stage_expect(stage, vq_cfg, prefix):
    p = vq_cfg["params"]
    dd = p["ddconfig"]
    k = "vqgan.%s." % stage
    e = {k + "tensor_prefix": prefix, k + "embed_dim": p["embed_dim"],
         k + "n_embed": p["n_embed"]}
    for n in STAGE_KEYS[1:-2]:
        e[k + n] = dd[n]
    if vq_cfg["target"].endswith(".GumbelVQ"):
        e[k + "quantizer"] = "gumbel"
    return e


def gpt_expect(gpt_cfg):
    p = gpt_cfg["params"]
    e = {"vqgan.transformer.tensor_prefix": "transformer.",
         "vqgan.transformer.n_unmasked": p.get("n_unmasked", 0)}
    for n in GPT_KEYS[1:-1]:
        e["vqgan.transformer." + n] = p[n]
    return e


def expected_keys(cfg, name):
    """key -> value every golden case's file must hold (read from the yaml
    independently of the converter)."""
    m = cfg["model"]
    t = m["target"].rsplit(".", 1)[-1]
    e = {"general.architecture": "vqgan", "general.name": name,
         "general.alignment": 32, "vqgan.format_version": 1}
    if t in ("VQModel", "GumbelVQ"):
        e.update(stage_expect("first_stage", m, ""))
        e.update({"vqgan.has_first_stage": True,
                  "vqgan.cond_stage.kind": "none",
                  "vqgan.has_transformer": False})
    elif t == "VQSegmentationModel":
        e.update(stage_expect("cond_stage", m, ""))
        e.update({"vqgan.has_first_stage": False,
                  "vqgan.cond_stage.kind": "segmentation",
                  "vqgan.cond_stage.n_labels": m["params"]["n_labels"],
                  "vqgan.has_transformer": False})
    elif t == "GPT":
        e.update(gpt_expect(m))
        e.update({"vqgan.has_first_stage": False,
                  "vqgan.cond_stage.kind": "none",
                  "vqgan.has_transformer": True})
    elif t == "Net2NetTransformer":
        p = m["params"]
        e.update(gpt_expect(p["transformer_config"]))
        e.update(stage_expect("first_stage", p["first_stage_config"],
                              "first_stage_model."))
        e.update({"vqgan.has_first_stage": True,
                  "vqgan.has_transformer": True})
        cs = p["cond_stage_config"]
        if cs == "__is_unconditional__":
            e["vqgan.cond_stage.kind"] = "sos"
            e["vqgan.cond_stage.sos_token"] = p.get("sos_token", 0)
            return e
        ct = cs["target"].rsplit(".", 1)[-1]
        if ct == "VQSegmentationModel":
            e.update(stage_expect("cond_stage", cs, "cond_stage_model."))
            e["vqgan.cond_stage.kind"] = "segmentation"
            e["vqgan.cond_stage.n_labels"] = cs["params"]["n_labels"]
            # --palette auto: COCO-Stuff / ADE20K label spaces get a palette
            if cs["params"]["n_labels"] in (151, 182, 183):
                e["vqgan.cond_stage.label_colors"] = palettes.default_palette(cs["params"]["n_labels"])
        elif ct == "VQModel":
            e.update(stage_expect("cond_stage", cs, "cond_stage_model."))
            e["vqgan.cond_stage.kind"] = "depth"
            e["vqgan.cond_stage.depth_normalization"] = "minmax"
        elif ct == "CoordStage":
            e["vqgan.cond_stage.kind"] = "coord"
            e["vqgan.cond_stage.n_embed"] = cs["params"]["n_embed"]
            e["vqgan.cond_stage.down_factor"] = cs["params"]["down_factor"]
        elif ct == "Labelator":
            e["vqgan.cond_stage.kind"] = "class"
            e["vqgan.cond_stage.n_classes"] = cs["params"]["n_classes"]
        elif ct == "SOSProvider":
            e["vqgan.cond_stage.kind"] = "sos"
            e["vqgan.cond_stage.sos_token"] = cs["params"].get("sos_token", 0)
    return e


def dropped(name, seg_standalone):
    """Checkpoint entries the converter must leave out (independent of
    the converter's own rule)."""
    seg_parts = ("decoder.", "post_quant_conv.")
    return (name.startswith("loss.") or ".loss." in name
            or name.endswith(".attn.mask")
            or name.split(".")[-1] == "colorize"
            or (name.startswith("cond_stage_model.")
                and name[len("cond_stage_model."):].startswith(seg_parts))
            or (seg_standalone and name.startswith(seg_parts)))


def check_roundtrip(path, sd, cfg, name, dtype):
    g = gw.read_gguf(path)
    problems = []
    exp = expected_keys(cfg, name)
    for k, v in exp.items():
        if k not in g.kv:
            problems.append("missing key %s" % k)
        elif g.kv[k].value != v:
            problems.append("key %s = %r, expected %r" % (k, g.kv[k].value, v))
    extra = sorted(set(g.kv) - set(exp))
    if extra:
        problems.append("unexpected keys: %s" % ", ".join(extra))
    for k in g.kv.values():   # the types the spec documents
        want = {"string": gw.T_STRING, "bool": gw.T_BOOL}
        if isinstance(exp.get(k.key), bool):
            if k.type != want["bool"]:
                problems.append("key %s is not bool" % k.key)
        elif isinstance(exp.get(k.key), str):
            if k.type != want["string"]:
                problems.append("key %s is not a string" % k.key)
        elif isinstance(exp.get(k.key), list) and all(isinstance(x, str) for x in exp[k.key]):
            if k.type != gw.T_ARRAY or k.elem_type != gw.T_STRING:
                problems.append("key %s is not a string array" % k.key)
        elif isinstance(exp.get(k.key), list):
            if k.type != gw.T_ARRAY or k.elem_type != gw.T_U32:
                problems.append("key %s is not a u32 array" % k.key)
        elif isinstance(exp.get(k.key), int) and k.type != gw.T_U32:
            problems.append("key %s is not u32" % k.key)

    seg = cfg["model"]["target"].endswith(".VQSegmentationModel")
    want_names = [n for n in sd if not dropped(n, seg)]
    got_names = [t.name for t in g.tensors]
    if sorted(want_names) != sorted(got_names):
        problems.append("tensor names differ: missing %s, extra %s" % (
            sorted(set(want_names) - set(got_names))[:5],
            sorted(set(got_names) - set(want_names))[:5]))
    for ti in g.tensors:
        if ti.name not in sd:
            continue
        ref = sd[ti.name].float().numpy()
        if tuple(ti.shape) != tuple(ref.shape):
            problems.append("%s: shape %s != %s" % (ti.name, ti.shape,
                                                    ref.shape))
            continue
        want_type = gw.TENSOR_TYPES[dtype] if ref.ndim >= 2 else gw.GGML_F32
        if ti.type != want_type:
            problems.append("%s: type %d, expected %d" % (ti.name, ti.type,
                                                         want_type))
        if ti.offset % 32:
            problems.append("%s: offset %d not aligned" % (ti.name,
                                                           ti.offset))
        got = g.tensor(ti.name)
        if ti.type == gw.GGML_F32:
            ok = np.array_equal(got, ref)
        elif ti.type == gw.GGML_F16:
            # half an ulp of f16 (11-bit significand), or half the
            # subnormal spacing 2^-24
            tol = np.maximum(np.abs(ref) * 2.0 ** -11, 2.0 ** -25)
            ok = bool((np.abs(got - ref) <= tol).all())
        else:
            tol = np.abs(ref) * 2.0 ** -8       # 8-bit significand
            ok = bool((np.abs(got - ref) <= tol).all())
            # ties to even: the value must be the nearer bf16 neighbour
            bits = ref.view(np.uint32) & 0xFFFF
            exact_half = bits == 0x8000
            if exact_half.any():
                kept = got.view(np.uint32)[exact_half] >> 16
                ok = ok and bool((kept & 1 == 0).all())
        if not ok:
            problems.append("%s: values differ beyond %s rounding (max %g)"
                            % (ti.name, dtype,
                               float(np.abs(got - ref).max())))
    err = convert.check_file(path)
    if err:
        problems.append("check_model: " + err)
    return "\n".join(problems[:20]) if problems else None


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

def test_writer_units(tmp):
    def bf16():
        x = np.array([1.0, 1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, -2.5,
                      3.4028234e38, np.inf, -np.inf, 1e-40, 0.0],
                     dtype=np.float32)
        b = gw.f32_to_bf16_bits(x)
        want = [0x3F80, 0x3F80, 0x3F82, 0xC020, 0x7F80, 0x7F80, 0xFF80,
                0x0001, 0x0000]
        if list(b) != want:
            return "bf16 bits %s != %s" % ([hex(v) for v in b],
                                           [hex(v) for v in want])
        if not np.isnan(gw.bf16_bits_to_f32(gw.f32_to_bf16_bits(
                np.array([np.nan], np.float32))))[0]:
            return "NaN did not stay NaN"
    check("bf16 rounding is nearest-even (ties, overflow, subnormal, NaN)",
          bf16)

    def kv_roundtrip():
        w = gw.GGUFWriter()
        w.add_string("general.architecture", "vqgan")
        w.add_u32("a.u32", 7)
        w.add_bool("a.bool", True)
        w.add_f32("a.f32", 0.5)
        w.add_u64("a.u64", 1 << 40)
        w.add_i32("a.i32", -3)
        w.add_u32_array("a.u32s", [1, 2, 4])
        w.add_u32_array("a.empty", [])
        w.add_string_array("a.strs", ["x", "", "ünï"])
        w.add_tensor("t", np.arange(24, dtype=np.float32).reshape(2, 3, 4))
        w.add_tensor("h", np.ones((3, 5), np.float32), "f16")
        p = os.path.join(tmp, "unit.gguf")
        w.write(p)
        g = gw.read_gguf(p)
        want = {"general.architecture": "vqgan", "a.u32": 7, "a.bool": True,
                "a.f32": 0.5, "a.u64": 1 << 40, "a.i32": -3,
                "a.u32s": [1, 2, 4], "a.empty": [], "general.alignment": 32,
                "a.strs": ["x", "", "ünï"]}
        got = dict((k, v.value) for k, v in g.kv.items())
        if got != want:
            return "kv %r != %r" % (got, want)
        if g.by_name["t"].dims != [4, 3, 2]:
            return "dims not innermost first: %r" % g.by_name["t"].dims
        if not np.array_equal(g.tensor("t"),
                              np.arange(24).reshape(2, 3, 4)):
            return "tensor data differs"
        if g.data_start % 32 or g.by_name["h"].offset % 32:
            return "data not aligned"
    check("writer/reader round-trip of typed keys and tensors", kv_roundtrip)

    def streamed():
        # write() streams tensor by tensor: the bytes of to_bytes(), every
        # dtype, sizes that need padding, progress reported per tensor
        w = gw.GGUFWriter()
        w.add_string("general.architecture", "vqgan")
        rng = np.random.default_rng(3)
        for i, dt in enumerate(("f32", "f16", "bf16", "f16", "f32")):
            w.add_tensor("t%d" % i, rng.standard_normal((3, 7 + i)).astype(np.float32), dt)
        p = os.path.join(tmp, "streamed.gguf")
        calls = []
        size = w.write(p, progress=lambda *a: calls.append(a))
        data = open(p, "rb").read()
        if data != w.to_bytes() or size != len(data):
            return "write() gave %d bytes unlike to_bytes()'s %d" % (len(data), len(w.to_bytes()))
        if [c[0] for c in calls] != [1, 2, 3, 4, 5] or calls[-1][2:] != (len(data), len(data)):
            return "progress calls %r" % calls
    check("GGUFWriter.write streams the bytes of to_bytes (every dtype, padding, progress per tensor)", streamed)


def test_golden(golden, tmp):
    labels_path = os.path.join(tmp, "labels8.txt")
    with open(labels_path, "w") as f:
        f.write("# test labels\n")
        for i in range(8):
            f.write("%d\tlabel %d\n" % (i, i))
    for case in CASES:
        cfg_path = os.path.join(golden, case, "config.yaml")
        ckpt = os.path.join(golden, case, "model.ckpt")
        with open(cfg_path) as f:
            cfg = yaml.safe_load(f)
        sd = torch.load(ckpt, map_location="cpu")["state_dict"]
        for dtype in ("f32", "f16", "bf16"):
            out = os.path.join(tmp, "%s-%s.gguf" % (case, dtype))
            if dtype == "f32":
                # through the command line: exit status and summary line
                rc, so, se = run_convert(cfg_path, ckpt, out, "--dtype",
                                         dtype, "--name", case)
                lines = so.strip().splitlines()
                report(rc == 0 and len(lines) == 1 and "tensors" in so
                       and "bytes" in so and dtype in so,
                       "convert %s (%s, command line, one-line summary)"
                       % (case, dtype), "rc=%d\n%s%s" % (rc, so, se))
            else:
                try:
                    convert.convert(cfg_path, ckpt, out, dtype, case)
                except Exception:  # noqa: BLE001
                    report(False, "convert %s (%s)" % (case, dtype),
                           traceback.format_exc())
                    continue
            check("%s (%s): keys, names, shapes, values round-trip"
                  % (case, dtype),
                  lambda: check_roundtrip(out, sd, cfg, case, dtype))

    # labels on the segmentation-conditional case
    def labels():
        out = os.path.join(tmp, "conditional-labels.gguf")
        rc, so, se = run_convert(
            os.path.join(golden, "conditional", "config.yaml"),
            os.path.join(golden, "conditional", "model.ckpt"), out,
            "--labels", labels_path)
        if rc != 0:
            return se
        g = gw.read_gguf(out)
        kv = g.kv.get("vqgan.cond_stage.label_names")
        if kv is None or kv.type != gw.T_ARRAY or kv.elem_type != gw.T_STRING:
            return "no string array vqgan.cond_stage.label_names"
        if kv.value != ["label %d" % i for i in range(8)]:
            return "label names %r" % kv.value
    check("--labels writes vqgan.cond_stage.label_names", labels)

    def labels_wrong_count():
        bad = os.path.join(tmp, "labels3.txt")
        with open(bad, "w") as f:
            f.write("0\ta\n1\tb\n2\tc\n")
        rc, so, se = run_convert(
            os.path.join(golden, "segmentation", "config.yaml"),
            os.path.join(golden, "segmentation", "model.ckpt"),
            os.path.join(tmp, "x.gguf"), "--labels", bad)
        if rc != 1 or "8" not in se or "labels" not in se:
            return "rc=%d: %s" % (rc, se)
    check("--labels with the wrong label count is refused",
          labels_wrong_count)

    def coco_labels():
        out = os.path.join(tmp, "coco-labels.gguf")
        rc, so, se = run_convert(
            os.path.join(golden, "coco", "config.yaml"),
            os.path.join(golden, "coco", "model.ckpt"), out,
            "--labels", os.path.join(TOOLS, "labels", "cocostuff-183.txt"))
        if rc != 0:
            return se
        g = gw.read_gguf(out)
        names = g.value("vqgan.cond_stage.label_names")
        if len(names) != 183 or names[0] != "unlabeled" or \
                names[1] != "person" or names[182] == "":
            return "label names %r" % (names[:3],)
        # the default palette on the reference's shifted ids: label k is
        # samples/legend.txt's id k - 1 (label 1 person), 0 unlabelled black
        legend = {}
        with open(os.path.join(ROOT, "samples", "legend.txt")) as f:
            for line in f:
                cols = line.rstrip("\n").split("\t")
                if len(cols) >= 3 and not line.startswith("#"):
                    legend[int(cols[0])] = (cols[1], cols[2])
        colours = g.value("vqgan.cond_stage.label_colors")
        bad = [k for k in range(1, 183) if colours[k] != legend[k - 1][1]]
        if colours[0] != "#000000" or bad or legend[0][0] != "person":
            return "label 0 %s, labels %s not the legend's id - 1 (label 1 %s, legend 0 %s)" % (
                colours[0], bad[:5], colours[1], legend[0])
    check("tools/labels/cocostuff-183.txt names the coco case's 183 labels, and the default palette colours "
          "label k as the legend's id k - 1 (0 unlabelled black)", coco_labels)


def expect_refusal(desc, cfg, sd, words, tmp, via_cli=False):
    """Write cfg/sd to tmp, convert, expect failure naming all words."""
    cfg_path = os.path.join(tmp, "bad.yaml")
    ckpt = os.path.join(tmp, "bad.ckpt")
    out = os.path.join(tmp, "bad.gguf")
    with open(cfg_path, "w") as f:
        yaml.safe_dump(cfg, f)
    torch.save({"state_dict": sd}, ckpt)

    def fn():
        if via_cli:
            rc, so, se = run_convert(cfg_path, ckpt, out)
            msg = se
            if rc != 1:
                return "exit status %d (expected 1)\n%s%s" % (rc, so, se)
        else:
            try:
                convert.convert(cfg_path, ckpt, out)
                return "converted without complaint"
            except convert.ConvertError as e:
                msg = str(e)
        missing = [w for w in words if w not in msg]
        if missing:
            return "message %r lacks %r" % (msg, missing)
        if os.path.exists(out):
            return "an output file was left behind"
    check(desc, fn)


def test_refusals(golden, tmp):
    def load(case):
        with open(os.path.join(golden, case, "config.yaml")) as f:
            cfg = yaml.safe_load(f)
        sd = torch.load(os.path.join(golden, case, "model.ckpt"),
                        map_location="cpu")["state_dict"]
        return cfg, sd

    vcfg, vsd = load("vqgan")
    ccfg, csd = load("conditional")
    kcfg, ksd = load("classcond")

    sd = dict(vsd)
    del sd["decoder.conv_out.bias"]
    expect_refusal("missing tensor refused, exit 1, tensor named",
                   vcfg, sd, ["missing", "decoder.conv_out.bias"], tmp, True)

    sd = dict(vsd)
    sd["quantize.embedding.weight"] = vsd["quantize.embedding.weight"].t() \
        .contiguous()
    expect_refusal("mis-shaped tensor refused, exit 1, name/expected/got",
                   vcfg, sd, ["quantize.embedding.weight", "(64, 8)",
                              "(8, 64)"], tmp, True)

    cfg = copy.deepcopy(ccfg)
    cfg["model"]["params"]["permuter_config"] = {
        "target": "taming.modules.transformer.permuter.AlternateParsing",
        "params": {"H": 4, "W": 4}}
    expect_refusal("unsupported permuter refused, exit 1", cfg, csd,
                   ["permuter", "AlternateParsing"], tmp, True)

    cfg = copy.deepcopy(vcfg)
    cfg["model"]["params"]["ddconfig"]["double_z"] = True
    expect_refusal("double_z true refused, exit 1", cfg, vsd, ["double_z"],
                   tmp, True)

    sd = dict(vsd)
    sd["encoder.extra.weight"] = torch.zeros(3)
    expect_refusal("unexpected extra tensor refused and named", vcfg, sd,
                   ["unexpected", "encoder.extra.weight"], tmp)

    sd = dict(csd)
    sd["transformer.blocks.1.mlp.0.weight"] = torch.zeros(32, 32)
    expect_refusal("mis-shaped transformer tensor refused (Net2Net prefix)",
                   ccfg, sd, ["transformer.blocks.1.mlp.0.weight",
                              "(128, 32)", "(32, 32)"], tmp)

    sd = dict(csd)
    del sd["cond_stage_model.encoder.down.1.block.0.conv1.weight"]
    expect_refusal("missing cond-stage tensor refused", ccfg, sd,
                   ["cond_stage_model.encoder.down.1.block.0.conv1.weight"],
                   tmp)

    gcfg, gsd = load("gumbel")
    dcfg, dsd = load("depth")
    ocfg, osd = load("coord")

    cfg = copy.deepcopy(vcfg)
    cfg["model"]["target"] = "taming.models.vqgan.GumbelVQ"
    expect_refusal("GumbelVQ without its temperature scheduler refused",
                   cfg, vsd, ["GumbelVQ", "temperature_scheduler_config"],
                   tmp)

    sd = dict(gsd)
    del sd["quantize.proj.weight"]
    expect_refusal("GumbelVQ checkpoint without quantize.proj refused, "
                   "exit 1, tensor named", gcfg, sd,
                   ["missing", "quantize.proj.weight"], tmp, True)

    sd = dict(gsd)
    sd["quantize.embedding.weight"] = gsd["quantize.embed.weight"]
    del sd["quantize.embed.weight"]
    expect_refusal("GumbelVQ with a VectorQuantizer codebook name refused",
                   gcfg, sd, ["quantize.embed.weight"], tmp)

    cfg = copy.deepcopy(gcfg)
    cfg["model"]["params"]["embed_dim"] = 8
    expect_refusal("GumbelVQ with embed_dim != z_channels refused", cfg, gsd,
                   ["embed_dim", "z_channels"], tmp)

    cfg = copy.deepcopy(vcfg)
    cfg["model"]["params"]["kl_weight"] = 1e-8
    expect_refusal("a GumbelVQ option on a VQModel refused", cfg, vsd,
                   ["kl_weight", "VQModel"], tmp)

    cfg = copy.deepcopy(dcfg)
    cfg["model"]["params"]["cond_stage_config"]["params"]["ddconfig"][
        "in_channels"] = 3
    expect_refusal("VQModel condition stage on 3 channels refused", cfg, dsd,
                   ["one channel", "in_channels", "3"], tmp)

    cfg = copy.deepcopy(dcfg)
    cfg["model"]["params"]["cond_stage_key"] = "segmentation"
    expect_refusal("VQModel condition stage under another key refused", cfg,
                   dsd, ["cond_stage_key", "segmentation", "depth"], tmp)

    sd = dict(dsd)
    del sd["cond_stage_model.quant_conv.weight"]
    expect_refusal("depth stage tensor missing refused", dcfg, sd,
                   ["cond_stage_model.quant_conv.weight"], tmp)

    cfg = copy.deepcopy(ocfg)
    cfg["model"]["params"]["cond_stage_config"]["params"]["down_factor"] = 16
    expect_refusal("CoordStage down_factor != first-stage factor refused",
                   cfg, osd, ["down_factor", "16", "8"], tmp)

    cfg = copy.deepcopy(ocfg)
    del cfg["model"]["params"]["cond_stage_config"]["params"]["n_embed"]
    expect_refusal("CoordStage without n_embed refused", cfg, osd,
                   ["CoordStage", "n_embed"], tmp)

    cfg = copy.deepcopy(ocfg)
    cfg["model"]["params"]["cond_stage_config"]["params"]["n_embed"] = 65
    expect_refusal("CoordStage n_embed above the vocabulary refused", cfg,
                   osd, ["n_embed", "65", "vocab_size"], tmp)

    cfg = copy.deepcopy(ccfg)
    cs = cfg["model"]["params"]["cond_stage_config"]["params"]
    cs["n_labels"] = cs["ddconfig"]["in_channels"] = \
        cs["ddconfig"]["out_ch"] = 300
    expect_refusal("300 labels refused (8-bit ids)", cfg, csd,
                   ["n_labels", "300", "256"], tmp)

    cfg = copy.deepcopy(gcfg)
    cfg["model"]["params"]["remap"] = "data/used.npy"
    expect_refusal("GumbelVQ remap refused, option named", cfg, gsd,
                   ["remap", "data/used.npy"], tmp)

    cfg = copy.deepcopy(vcfg)
    cfg["model"]["target"] = "taming.models.vqgan.EMAVQ"
    expect_refusal("EMAVQ quantizer refused", cfg, vsd, ["EMAVQ"], tmp)

    cfg = copy.deepcopy(vcfg)
    cfg["model"]["params"]["remap"] = "data/remap.npy"
    expect_refusal("quantizer remap refused", cfg, vsd, ["remap"], tmp)

    cfg = copy.deepcopy(vcfg)
    cfg["model"]["target"] = "some.other.Model"
    expect_refusal("unknown target refused", cfg, vsd,
                   ["unknown", "some.other.Model"], tmp)

    cfg = copy.deepcopy(ccfg)
    cfg["model"]["params"]["cond_stage_config"]["target"] = "x.y.Z"
    expect_refusal("unknown cond stage target refused", cfg, csd,
                   ["unknown", "x.y.Z"], tmp)

    # accepted variants
    def variant(cfg, sd, want):
        cfg_path = os.path.join(tmp, "var.yaml")
        ckpt = os.path.join(tmp, "var.ckpt")
        out = os.path.join(tmp, "var.gguf")
        with open(cfg_path, "w") as f:
            yaml.safe_dump(cfg, f)
        torch.save(sd, ckpt)              # a bare state dict
        convert.convert(cfg_path, ckpt, out)
        g = gw.read_gguf(out)
        for k, v in want.items():
            if g.value(k) != v:
                return "%s = %r, expected %r" % (k, g.value(k), v)
        return convert.check_file(out)

    cfg = copy.deepcopy(kcfg)
    cfg["model"]["params"]["cond_stage_config"] = "__is_unconditional__"
    check("__is_unconditional__ -> kind sos, sos_token 0 (bare state dict)",
          lambda: variant(cfg, ksd, {"vqgan.cond_stage.kind": "sos",
                                     "vqgan.cond_stage.sos_token": 0}))
    cfg2 = copy.deepcopy(kcfg)
    cfg2["model"]["params"]["cond_stage_config"] = {
        "target": "taming.modules.util.SOSProvider",
        "params": {"sos_token": 5}}
    check("SOSProvider -> kind sos, sos_token 5",
          lambda: variant(cfg2, ksd, {"vqgan.cond_stage.kind": "sos",
                                      "vqgan.cond_stage.sos_token": 5}))
    cfg3 = copy.deepcopy(kcfg)
    cfg3["model"]["params"]["unconditional"] = True
    cfg3["model"]["params"]["sos_token"] = 3
    check("params.unconditional true -> kind sos, sos_token 3",
          lambda: variant(cfg3, ksd, {"vqgan.cond_stage.kind": "sos",
                                      "vqgan.cond_stage.sos_token": 3}))
    cfg5 = copy.deepcopy(vcfg)
    cfg5["model"]["params"]["sane_index_shape"] = True
    cfg5["model"]["params"]["legacy"] = False
    check("sane_index_shape and legacy accepted (no effect on tokens)",
          lambda: variant(cfg5, vsd, {"vqgan.cond_stage.kind": "none"}))
    cfg4 = copy.deepcopy(ccfg)
    cfg4["model"]["params"]["permuter_config"] = {
        "target": "taming.modules.transformer.permuter.Identity"}
    check("Identity permuter accepted",
          lambda: variant(cfg4, csd, {"vqgan.cond_stage.kind":
                                      "segmentation"}))


def test_broken_set(tmp):
    valid = os.path.join(tmp, "vqgan-f32.gguf")
    out = os.path.join(tmp, "broken")
    p = subprocess.run([PY, os.path.join(ROOT, "tests", "robustness", "make_broken_models.py"),
                        valid, out], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    report(p.returncode == 0,
           "make_broken_models.py writes the set; the Python reader rejects "
           "each file with its expected substring", p.stdout)

    def content():
        with open(os.path.join(out, "expect.tsv")) as f:
            rows = [ln.rstrip("\n").split("\t") for ln in f if ln.strip()]
        subs = set(r[1] for r in rows)
        need = {"OK", "magic", "version", "tensor_count", "kv_count",
                "value type", "truncated", "key", "duplicate", "n_dims",
                "dims", "tensor type", "alignment", "past the end", "overlap",
                "name", "vqgan.first_stage.ch", "encoder.conv_in.weight",
                "non-finite", "count", "general.architecture"}
        lack = need - subs
        if lack:
            return "expect.tsv lacks %s" % sorted(lack)
        for r in rows:
            if len(r) != 2 or not os.path.isfile(os.path.join(out, r[0])):
                return "bad row %r" % (r,)
    check("expect.tsv covers every required field", content)



class _Marker:
    """Pickled into a checkpoint: unpickling it calls os.system (the
    converter must never run it)."""

    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def test_untrusted(golden, tmp):
    """A downloaded checkpoint is data: no code of it runs, objects of
    modules that are not installed (Lightning's callbacks) are skipped, and
    the tensors convert as from the plain checkpoint."""
    cfg = os.path.join(golden, "vqgan", "config.yaml")
    ck = torch.load(os.path.join(golden, "vqgan", "model.ckpt"), map_location="cpu")
    plain = os.path.join(tmp, "plain.gguf")
    convert.convert(cfg, os.path.join(golden, "vqgan", "model.ckpt"), plain, name="m")
    flag = os.path.join(tmp, "ran")

    def no_code():
        evil = dict(ck, hyper_parameters=_Marker("touch " + flag))
        path = os.path.join(tmp, "evil.ckpt")
        torch.save(evil, path)
        out = os.path.join(tmp, "evil.gguf")
        convert.convert(cfg, path, out, name="m")
        if os.path.exists(flag):
            return "the checkpoint's os.system call ran"
        if open(out, "rb").read() != open(plain, "rb").read():
            return "the tensors differ from the plain checkpoint's"
    check("a checkpoint holding a pickled os.system call converts without running it", no_code)

    def lightning():
        # an object of a module this Python lacks, as Lightning saves its callbacks
        import types
        mod = types.ModuleType("pytorch_lightning_stand_in")
        cls = type("ModelCheckpoint", (), {"__module__": mod.__name__})
        mod.ModelCheckpoint = cls
        sys.modules[mod.__name__] = mod
        try:
            path = os.path.join(tmp, "pl.ckpt")
            torch.save(dict(ck, callbacks={"cb": cls()}), path)
        finally:
            del sys.modules[mod.__name__]
        out = os.path.join(tmp, "pl.gguf")
        convert.convert(cfg, path, out, name="m")
        if open(out, "rb").read() != open(plain, "rb").read():
            return "the tensors differ from the plain checkpoint's"
    check("a checkpoint holding objects of a module that is not installed converts (Lightning's callbacks)",
          lightning)

    def legacy():
        path = os.path.join(tmp, "legacy.ckpt")
        torch.save(ck, path, _use_new_zipfile_serialization=False)
        out = os.path.join(tmp, "legacy.gguf")
        convert.convert(cfg, path, out, name="m")
        if open(out, "rb").read() != open(plain, "rb").read():
            return "the tensors differ from the plain checkpoint's"
    check("the pre-1.6 (non-zip) checkpoint format converts as the zip one", legacy)

    def torchscript():
        path = os.path.join(tmp, "script.pt")
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), path)
        try:
            convert.load_state_dict(path)
            return "loaded"
        except convert.ConvertError as e:
            if "TorchScript archive" not in str(e):
                return "message %r" % str(e)
    check("a TorchScript archive (torch.load would run its code) is refused", torchscript)

    def tar_link():
        # a pre-0.4 (tar) checkpoint whose 'storages' member is a hard link:
        # torch's tar path would chmod/chown the file it points to
        import tarfile
        victim = os.path.join(tmp, "victim.txt")
        with open(victim, "w") as f:
            f.write("x\n")
        os.chmod(victim, 0o600)
        before = os.stat(victim)
        path = os.path.join(tmp, "tar.ckpt")
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
            ti = tarfile.TarInfo("storages")
            ti.type, ti.linkname, ti.mode, ti.mtime = tarfile.LNKTYPE, victim, 0o6777, 86400
            t.addfile(ti)
        try:
            convert.load_state_dict(path)
            return "loaded"
        except convert.ConvertError:
            pass
        after = os.stat(victim)
        if (after.st_mode, after.st_mtime) != (before.st_mode, before.st_mtime):
            return "the linked file changed: mode %o -> %o" % (before.st_mode, after.st_mode)
    check("a tar checkpoint linking to another file is refused and leaves that file as it was", tar_link)

    def forced_weights_only():
        env = dict(os.environ, TORCH_FORCE_WEIGHTS_ONLY_LOAD="1")
        r = subprocess.run([PY, CONVERT, cfg, os.path.join(golden, "vqgan", "model.ckpt"),
                            os.path.join(tmp, "forced.gguf")], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            return r.stderr
    check("TORCH_FORCE_WEIGHTS_ONLY_LOAD=1 in the environment: the conversion still runs", forced_weights_only)


def test_loader_limits(golden, tmp):
    """What the library's loader would refuse is refused here, not written."""
    with open(os.path.join(golden, "classcond", "config.yaml")) as f:
        kcfg = yaml.safe_load(f)
    ksd = torch.load(os.path.join(golden, "classcond", "model.ckpt"), map_location="cpu")["state_dict"]
    sd = dict(ksd)
    for k in sd:
        if k.endswith("attn.mask"):
            m = sd[k].clone()
            m[..., :3, :3] = 1
            sd[k] = m
    expect_refusal("an attention mask that is not the config's n_unmasked is refused and named",
                   kcfg, sd, ["attn.mask", "n_unmasked 0"], tmp)
    cfg = copy.deepcopy(kcfg)
    cfg["model"]["params"]["transformer_config"]["params"]["n_unmasked"] = 3
    expect_refusal("n_unmasked 3 in the config, causal masks in the checkpoint: refused",
                   cfg, ksd, ["attn.mask", "n_unmasked 3"], tmp)
    with open(os.path.join(golden, "vqgan", "config.yaml")) as f:
        vcfg = yaml.safe_load(f)
    vsd = torch.load(os.path.join(golden, "vqgan", "model.ckpt"), map_location="cpu")["state_dict"]
    for field, value, words in (("num_res_blocks", 8, ["num_res_blocks", "<= 7"]),
                                ("resolution", 100000, ["resolution", "<= 65536"]),
                                ("ch_mult", [1] * 9, ["ch_mult", "at most 8"]),
                                ("resolution", float("inf"), ["resolution", "integer"])):
        cfg = copy.deepcopy(vcfg)
        cfg["model"]["params"]["ddconfig"][field] = value
        expect_refusal("ddconfig.%s = %r is refused (the loader's limit)" % (field, value), cfg, vsd, words, tmp)
    with open(os.path.join(golden, "conditional", "config.yaml")) as f:
        ccfg = yaml.safe_load(f)
    csd = torch.load(os.path.join(golden, "conditional", "model.ckpt"), map_location="cpu")["state_dict"]
    cfg = copy.deepcopy(ccfg)
    b = cfg["model"]["params"]["transformer_config"]["params"]["block_size"]
    cfg["model"]["params"]["transformer_config"]["params"]["block_size"] = b - 2
    sd = {k: (v[:, :b - 2] if k.endswith("pos_emb") else v[..., :b - 2, :b - 2] if k.endswith("attn.mask") else v)
          for k, v in csd.items()}
    expect_refusal("a segmentation model's block_size that is not 2*w*w is refused", cfg, sd,
                   ["block_size %d is not 2*w*w" % (b - 2)], tmp)
    sd = dict(vsd)
    w = sd["decoder.conv_out.weight"].clone()
    w.view(-1)[0] = 3.4e38      # above 3.3961775e38: rounds to infinity in bf16
    sd["decoder.conv_out.weight"] = w

    def bf16_inf():
        path = os.path.join(tmp, "big.ckpt")
        torch.save({"state_dict": sd}, path)
        out = os.path.join(tmp, "big.gguf")
        try:
            convert.convert(os.path.join(golden, "vqgan", "config.yaml"), path, out, dtype="bf16")
            return "converted"
        except convert.ConvertError as e:
            if "decoder.conv_out.weight" not in str(e) or "infinity in bf16" not in str(e):
                return "message %r" % str(e)
    check("--dtype bf16: a value that rounds to infinity is refused, naming the tensor", bf16_inf)


def test_user_mistakes(golden, tmp):
    """Ordinary mistakes are messages (exit 1), never tracebacks, and an input
    is never overwritten."""
    g = os.path.join(golden, "gpt")
    ck = os.path.join(tmp, "same.ckpt")
    with open(os.path.join(g, "model.ckpt"), "rb") as a, open(ck, "wb") as b:
        b.write(a.read())
    seg = os.path.join(golden, "segmentation")
    for desc, args, words in (
            ("CONFIG and CHECKPOINT swapped", [os.path.join(g, "model.ckpt"), os.path.join(g, "config.yaml"),
                                               os.path.join(tmp, "x.gguf")], ["cannot read config"]),
            ("the output is the checkpoint", [os.path.join(g, "config.yaml"), ck, ck], ["would be overwritten"]),
            ("--labels missing", [os.path.join(seg, "config.yaml"), os.path.join(seg, "model.ckpt"),
                                  os.path.join(tmp, "x.gguf"), "--labels", os.path.join(tmp, "none.txt")],
             ["cannot read labels"])):
        def fn(args=args, words=words):
            before = open(ck, "rb").read()
            rc, so, se = run_convert(*args)
            if rc != 1 or "Traceback" in se or any(w not in se for w in words):
                return "exit %d: %s" % (rc, se[-400:])
            if open(ck, "rb").read() != before:
                return "the checkpoint was changed"
        check("%s: exit 1 with a message, no traceback" % desc, fn)


def main():
    no_golden = os.environ.get("VQ_NO_GOLDEN", "0") not in ("", "0")
    golden = None if no_golden else find_golden()
    if no_golden:
        # make check-quick without ../shared: the writer's own checks only
        with tempfile.TemporaryDirectory(prefix="test_convert.") as tmp:
            test_writer_units(tmp)
        print("# skipped the conversions of the golden checkpoints (VQ_NO_GOLDEN set)")
        return 1 if failures else 0
    if golden is None:
        report(False, "golden models found (set VQGAN_GOLDEN)")
        return 1
    with tempfile.TemporaryDirectory(prefix="test_convert.") as tmp:
        test_writer_units(tmp)
        test_golden(golden, tmp)
        test_refusals(golden, tmp)
        test_untrusted(golden, tmp)
        test_loader_limits(golden, tmp)
        test_user_mistakes(golden, tmp)
        test_broken_set(tmp)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
