#!/usr/bin/python3
"""Convert a Taming Transformers checkpoint to a libvqgan model file.

usage: convert.py CONFIG.yaml CHECKPOINT.ckpt OUT.gguf
                  [--dtype f32|f16|bf16] [--name NAME] [--labels labels.txt]
                  [--palette auto|none|FILE]

CONFIG.yaml is the reference's config (model.target + model.params);
CHECKPOINT.ckpt a Lightning checkpoint (its 'state_dict') or a bare state
dict. The output follows docs/model-format.md. Every tensor the config
implies is checked for presence and shape; anything unsupported is refused
with a message and exit status 1.

Run it with Debian's interpreter (/usr/bin/python3), which has torch.
"""

import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_writer as gw  # noqa: E402

# the name messages and --help give: the installed launcher's (vqgan-convert)
PROG = os.environ.get("VQGAN_PROG") or "convert.py"

FORMAT_VERSION = 1

T_VQMODEL = "taming.models.vqgan.VQModel"
T_VQSEG = "taming.models.vqgan.VQSegmentationModel"
T_GPT = "taming.modules.transformer.mingpt.GPT"
T_N2N = "taming.models.cond_transformer.Net2NetTransformer"
T_LABELATOR = "taming.modules.util.Labelator"
T_SOS = "taming.modules.util.SOSProvider"
T_IDENTITY = "taming.modules.transformer.permuter.Identity"
T_GUMBEL = "taming.models.vqgan.GumbelVQ"
T_COORD = "taming.modules.misc.coord.CoordStage"
UNCONDITIONAL = "__is_unconditional__"

# Other first-stage models of the reference whose quantizer differs from the
# VectorQuantizer codebook and the GumbelQuantize logits the engine implements.
OTHER_QUANTIZER_MODELS = ("EMAVQ",)

# How a depth condition reaches the model's [-1, 1]: the reference's D-RIN
# data pipeline normalises every map on its own (min-max); the filters do the
# same by default (docs/model-format.md, vqgan.cond_stage.depth_normalization).
DEPTH_NORMALIZATION = "minmax"


class ConvertError(Exception):
    pass


# ---------------------------------------------------------------------------
# Config handling
# ---------------------------------------------------------------------------

def _int(v, what, lo=0, hi=None):
    """An integer field, with the range the library's loader accepts (hi:
    src/model.c's limits), so that a file it would refuse is never written."""
    if isinstance(v, bool) or not isinstance(v, int):
        try:
            if isinstance(v, float) and v == int(v):
                v = int(v)
            else:
                raise ValueError
        except (TypeError, ValueError, OverflowError):
            raise ConvertError("%s must be an integer, got %r" % (what, v))
    if v < lo:
        raise ConvertError("%s must be >= %d, got %d" % (what, lo, v))
    if hi is not None and v > hi:
        raise ConvertError("%s must be <= %d (the library's limit), got %d" % (what, hi, v))
    return v


def _int_list(v, what, lo=0, hi=None, max_len=None):
    if v is None:
        return []
    if not isinstance(v, (list, tuple)):
        raise ConvertError("%s must be a list, got %r" % (what, v))
    if max_len is not None and len(v) > max_len:
        raise ConvertError("%s has %d elements; the library takes at most %d" % (what, len(v), max_len))
    return [_int(x, "%s[%d]" % (what, i), lo, hi) for i, x in enumerate(v)]


def _target_name(cfg):
    if isinstance(cfg, str):
        return cfg
    if not isinstance(cfg, dict) or "target" not in cfg:
        raise ConvertError("config section %r has no 'target'" % (cfg,))
    if not isinstance(cfg["target"], str):
        raise ConvertError("config target %r is not a class path (a string)" % (cfg["target"],))
    return cfg["target"]


def _params(cfg):
    p = cfg.get("params") if isinstance(cfg, dict) else None
    if p is not None and not isinstance(p, dict):
        raise ConvertError("params of %s must be a mapping, got %r" % (cfg.get("target"), p))
    return p if p is not None else {}


def check_vq_target(target, where):
    if target in (T_VQMODEL, T_VQSEG, T_GUMBEL):
        return
    short = target.rsplit(".", 1)[-1]
    if short in OTHER_QUANTIZER_MODELS or "quantize" in target.lower():
        raise ConvertError(
            "%s: unsupported quantizer model %s; only the plain "
            "VectorQuantizer codebook of %s / %s is supported"
            % (where, target, T_VQMODEL, T_VQSEG))
    raise ConvertError("%s: unknown target %r" % (where, target))


def vq_stage(cfg, where, segmentation, role="first"):
    """Validate a VQModel / VQSegmentationModel / GumbelVQ config; return its
    params. role: "first" (the image tokenizer; VQModel or GumbelVQ),
    "segmentation" (VQSegmentationModel) or "depth" (a one-channel VQModel
    as condition stage)."""
    target = _target_name(cfg)
    check_vq_target(target, where)
    if segmentation and target != T_VQSEG:
        raise ConvertError("%s: a segmentation condition stage must be %s, "
                           "got %s" % (where, T_VQSEG, target))
    if not segmentation and role == "first" and target not in (T_VQMODEL,
                                                               T_GUMBEL):
        raise ConvertError("%s: a first stage must be %s or %s, got %s"
                           % (where, T_VQMODEL, T_GUMBEL, target))
    if role == "depth" and target != T_VQMODEL:
        raise ConvertError("%s: a depth condition stage must be %s, got %s"
                           % (where, T_VQMODEL, target))
    gumbel = target == T_GUMBEL
    p = _params(cfg)
    if p.get("remap") is not None:
        raise ConvertError("%s: params.remap is set (%r); quantizers with "
                           "index remapping (a subset of used codes, "
                           "quantize.used) are not supported"
                           % (where, p["remap"]))
    # sane_index_shape only reshapes the indices the quantizer returns and
    # legacy only changes the training loss: neither changes a token.
    for k in ("sane_index_shape", "legacy"):
        if k in p and not isinstance(p[k], bool):
            raise ConvertError("%s: params.%s must be true or false, got %r"
                               % (where, k, p[k]))
    if "quantizer_config" in p:
        raise ConvertError("%s: params.quantizer_config is set; only the "
                           "VectorQuantizer codebook and GumbelVQ's "
                           "quantizer are supported" % where)
    if not gumbel:
        for k in ("kl_weight", "temperature_scheduler_config"):
            if k in p:
                raise ConvertError("%s: params.%s is set on %s (a GumbelVQ "
                                   "option); only the plain VectorQuantizer "
                                   "codebook is supported there"
                                   % (where, k, target))
    elif "temperature_scheduler_config" not in p:
        # the reference's GumbelVQ requires it; it only anneals the training
        # temperature, which inference (argmax of the logits) never reads
        raise ConvertError("%s: GumbelVQ without "
                           "params.temperature_scheduler_config is not the "
                           "reference's GumbelVQ" % where)
    dd = p.get("ddconfig")
    if not isinstance(dd, dict):
        raise ConvertError("%s: params.ddconfig is missing" % where)
    W = where + ".ddconfig"
    if dd.get("double_z", True):
        raise ConvertError("%s.double_z is %r; only double_z: false is "
                           "supported (a VQ first stage has double_z false)"
                           % (W, dd.get("double_z", "unset (default true)")))
    if not dd.get("resamp_with_conv", True):
        raise ConvertError("%s.resamp_with_conv is false; only convolutional "
                           "resampling is supported" % W)
    if dd.get("give_pre_end", False):
        raise ConvertError("%s.give_pre_end is true; not supported" % W)
    if dd.get("tanh_out", False):
        raise ConvertError("%s.tanh_out is true; not supported" % W)
    if "temb_ch" in dd and dd["temb_ch"]:
        raise ConvertError("%s.temb_ch is set; not supported" % W)
    for k in ("ch", "num_res_blocks", "resolution", "in_channels", "out_ch",
              "z_channels"):
        if k not in dd:
            raise ConvertError("%s.%s is missing" % (W, k))
    s = {
        "ch": _int(dd["ch"], W + ".ch", 1, 4096),
        "ch_mult": _int_list(dd.get("ch_mult", [1, 2, 4, 8]), W + ".ch_mult",
                             1, 64, 8),
        "num_res_blocks": _int(dd["num_res_blocks"], W + ".num_res_blocks",
                               0, 7),
        "attn_resolutions": _int_list(dd.get("attn_resolutions", []),
                                      W + ".attn_resolutions", 1, 1 << 16, 8),
        "resolution": _int(dd["resolution"], W + ".resolution", 1, 1 << 16),
        "in_channels": _int(dd["in_channels"], W + ".in_channels", 1, 4096),
        "out_ch": _int(dd["out_ch"], W + ".out_ch", 1, 4096),
        "z_channels": _int(dd["z_channels"], W + ".z_channels", 1, 4096),
    }
    if "embed_dim" not in p or "n_embed" not in p:
        raise ConvertError("%s: params.embed_dim and params.n_embed are "
                           "required" % where)
    s["embed_dim"] = _int(p["embed_dim"], where + ".embed_dim", 1, 4096)
    s["n_embed"] = _int(p["n_embed"], where + ".n_embed", 1, 65536)
    if not s["ch_mult"]:
        raise ConvertError("%s.ch_mult is empty" % W)
    for c in [s["ch"]] + [s["ch"] * m for m in s["ch_mult"]]:
        if c % 32:
            raise ConvertError("%s: channel count %d is not a multiple of 32 "
                               "(GroupNorm uses 32 groups)" % (W, c))
    s["quantizer"] = "gumbel" if gumbel else "vq"
    s["factor"] = 2 ** (len(s["ch_mult"]) - 1)
    if gumbel and s["embed_dim"] != s["z_channels"]:
        # GumbelQuantize's proj takes z_channels inputs but is applied to
        # quant_conv's embed_dim outputs: the reference itself runs only when
        # the two are equal (they are in every released GumbelVQ)
        raise ConvertError("%s: GumbelVQ needs embed_dim (%d) equal to "
                           "ddconfig.z_channels (%d)"
                           % (where, s["embed_dim"], s["z_channels"]))
    if role == "depth" and s["in_channels"] != 1:
        raise ConvertError("%s: a VQModel condition stage must take one "
                           "channel (a depth map), got ddconfig.in_channels "
                           "%d" % (where, s["in_channels"]))
    if segmentation:
        n_labels = _int(p.get("n_labels", s["in_channels"]),
                        where + ".n_labels", 1)
        if n_labels != s["in_channels"]:
            raise ConvertError("%s: n_labels %d differs from "
                               "ddconfig.in_channels %d"
                               % (where, n_labels, s["in_channels"]))
        if n_labels > 256:
            raise ConvertError("%s: n_labels %d is above 256: label maps hold "
                               "8-bit ids" % (where, n_labels))
        s["n_labels"] = n_labels
    return s


def coord_stage(cfg, where, first):
    """CoordStage: no weights; tokens = round(n_embed * area-downsampled
    raster position). Its grid must be the image grid."""
    cp = _params(cfg)
    for k in ("n_embed", "down_factor"):
        if k not in cp:
            raise ConvertError("%s: CoordStage needs params.%s" % (where, k))
    c = {"n_embed": _int(cp["n_embed"], where + ".n_embed", 1),
         "down_factor": _int(cp["down_factor"], where + ".down_factor", 1)}
    f = 2 ** (len(first["ch_mult"]) - 1)
    if c["down_factor"] != f:
        raise ConvertError("%s: CoordStage down_factor %d differs from the "
                           "first stage's factor %d (the condition grid must "
                           "be the image grid)" % (where, c["down_factor"], f))
    return c


def gpt_stage(cfg, where):
    target = _target_name(cfg)
    if target != T_GPT:
        raise ConvertError("%s: unknown transformer target %r (only %s)"
                           % (where, target, T_GPT))
    p = _params(cfg)
    for k in ("vocab_size", "block_size"):
        if k not in p:
            raise ConvertError("%s: params.%s is missing" % (where, k))
    s = {
        "vocab_size": _int(p["vocab_size"], where + ".vocab_size", 1, 1 << 20),
        "block_size": _int(p["block_size"], where + ".block_size", 1, 1 << 16),
        "n_layer": _int(p.get("n_layer", 12), where + ".n_layer", 1, 1024),
        "n_head": _int(p.get("n_head", 8), where + ".n_head", 1, 1024),
        "n_embd": _int(p.get("n_embd", 256), where + ".n_embd", 1, 1 << 16),
        "n_unmasked": _int(p.get("n_unmasked", 0), where + ".n_unmasked", 0),
    }
    if s["n_embd"] % s["n_head"]:
        raise ConvertError("%s: n_head %d does not divide n_embd %d"
                           % (where, s["n_head"], s["n_embd"]))
    if s["n_unmasked"] > s["block_size"]:
        raise ConvertError("%s: n_unmasked %d exceeds block_size %d"
                           % (where, s["n_unmasked"], s["block_size"]))
    return s


def build_plan(config):
    """Turn the config into a plan: the stages, their keys and prefixes."""
    if not isinstance(config, dict):
        raise ConvertError("config is not a mapping")
    model = config.get("model", config)
    target = _target_name(model)
    params = _params(model)
    plan = {"target": target, "first": None, "cond": None, "gpt": None,
            "cond_kind": "none"}

    if target in (T_VQMODEL, T_GUMBEL):
        plan["first"] = vq_stage(model, "model", False)
        plan["first"]["prefix"] = ""
    elif target == T_VQSEG:
        plan["cond"] = vq_stage(model, "model", True)
        plan["cond"]["prefix"] = ""
        plan["cond_kind"] = "segmentation"
    elif target == T_GPT:
        plan["gpt"] = gpt_stage(model, "model")
    elif target == T_N2N:
        pc = params.get("permuter_config")
        if pc is not None and _target_name(pc) != T_IDENTITY:
            raise ConvertError("model.params.permuter_config: unsupported "
                               "permuter %r (only %s)"
                               % (_target_name(pc), T_IDENTITY))
        dcs = params.get("downsample_cond_size", -1)
        if dcs not in (-1, None):
            raise ConvertError("model.params.downsample_cond_size is %r; "
                               "only -1 (no resizing) is supported" % (dcs,))
        for k in ("transformer_config", "first_stage_config",
                  "cond_stage_config"):
            if k not in params:
                raise ConvertError("model.params.%s is missing" % k)
        plan["gpt"] = gpt_stage(params["transformer_config"],
                                "transformer_config")
        fs = params["first_stage_config"]
        if isinstance(fs, str):
            raise ConvertError("first_stage_config %r is not supported" % fs)
        plan["first"] = vq_stage(fs, "first_stage_config", False)
        plan["first"]["prefix"] = "first_stage_model."
        cs = params["cond_stage_config"]
        vocab = plan["gpt"]["vocab_size"]
        if plan["first"]["n_embed"] > vocab:
            raise ConvertError("first stage n_embed %d exceeds the "
                               "transformer's vocab_size %d"
                               % (plan["first"]["n_embed"], vocab))
        if cs == "__is_first_stage__":
            raise ConvertError("cond_stage_config '__is_first_stage__' (the "
                               "first stage as condition) is not supported")
        if cs == UNCONDITIONAL or params.get("unconditional", False):
            plan["cond_kind"] = "sos"
            plan["sos_token"] = _int(params.get("sos_token", 0),
                                     "model.params.sos_token", 0)
        elif isinstance(cs, str):
            raise ConvertError("cond_stage_config %r is not supported "
                               "(only %r or a target)" % (cs, UNCONDITIONAL))
        else:
            ct = _target_name(cs)
            if ct == T_VQSEG:
                plan["cond"] = vq_stage(cs, "cond_stage_config", True)
                plan["cond"]["prefix"] = "cond_stage_model."
                plan["cond_kind"] = "segmentation"
                if plan["cond"]["n_embed"] > vocab:
                    raise ConvertError(
                        "cond stage n_embed %d exceeds the transformer's "
                        "vocab_size %d" % (plan["cond"]["n_embed"], vocab))
            elif ct == T_VQMODEL:
                plan["cond"] = vq_stage(cs, "cond_stage_config", False,
                                        "depth")
                plan["cond"]["prefix"] = "cond_stage_model."
                plan["cond_kind"] = "depth"
                plan["depth_normalization"] = DEPTH_NORMALIZATION
                key = params.get("cond_stage_key")
                if key not in (None, "depth"):
                    raise ConvertError(
                        "model.params.cond_stage_key is %r; a one-channel "
                        "VQModel condition stage is supported as depth "
                        "(cond_stage_key: depth)" % (key,))
                if plan["cond"]["n_embed"] > vocab:
                    raise ConvertError(
                        "cond stage n_embed %d exceeds the transformer's "
                        "vocab_size %d" % (plan["cond"]["n_embed"], vocab))
                if plan["cond"]["factor"] != plan["first"]["factor"]:
                    raise ConvertError(
                        "cond stage factor %d differs from the first stage's "
                        "%d" % (plan["cond"]["factor"],
                                plan["first"]["factor"]))
            elif ct == T_COORD:
                plan["coord"] = coord_stage(cs, "cond_stage_config",
                                            plan["first"])
                plan["cond_kind"] = "coord"
                # FacesHQ has n_embed = vocab_size: round(n_embed * x)
                # stays below it on frames under n_embed * (down_factor - 1)
                # pixels tall (the library refuses a frame where it would not)
                if plan["coord"]["n_embed"] > vocab:
                    raise ConvertError(
                        "CoordStage n_embed %d exceeds the transformer's "
                        "vocab_size %d" % (plan["coord"]["n_embed"], vocab))
            elif ct == T_LABELATOR:
                cp = _params(cs)
                if "n_classes" not in cp:
                    raise ConvertError("cond_stage_config: Labelator needs "
                                       "params.n_classes")
                plan["cond_kind"] = "class"
                plan["n_classes"] = _int(cp["n_classes"],
                                         "cond_stage_config.n_classes", 1)
                if plan["n_classes"] > vocab:
                    raise ConvertError("Labelator n_classes %d exceeds the "
                                       "transformer's vocab_size %d"
                                       % (plan["n_classes"], vocab))
            elif ct == T_SOS:
                cp = _params(cs)
                plan["cond_kind"] = "sos"
                plan["sos_token"] = _int(cp.get("sos_token", 0),
                                         "cond_stage_config.sos_token", 0)
            elif ct == T_GUMBEL or ct.rsplit(".", 1)[-1] in \
                    OTHER_QUANTIZER_MODELS:
                raise ConvertError("cond_stage_config: target %s is not "
                                   "supported as a condition stage (only %s, "
                                   "%s (depth), %s, %s, %s)"
                                   % (ct, T_VQSEG, T_VQMODEL, T_COORD,
                                      T_LABELATOR, T_SOS))
            else:
                raise ConvertError("cond_stage_config: unknown target %r"
                                   % ct)
        if plan["cond_kind"] == "sos" and plan["sos_token"] >= vocab:
            raise ConvertError("sos_token %d is not below the transformer's "
                               "vocab_size %d" % (plan["sos_token"], vocab))
    else:
        check_vq_target(target, "model")  # raises with the right message
        raise ConvertError("model: unknown target %r" % target)
    if plan["gpt"] is not None:
        plan["gpt"]["prefix"] = "transformer."
        b = plan["gpt"]["block_size"]
        w = int((b // 2) ** 0.5)
        while (w + 1) * (w + 1) * 2 <= b:
            w += 1
        if plan["cond_kind"] in ("segmentation", "depth", "coord") and 2 * w * w != b:
            raise ConvertError("transformer_config.block_size %d is not 2*w*w: a model with a spatial "
                               "condition slides a w x w window over [condition, image] tokens "
                               "(block_size 512 for w = 16)" % b)
    return plan


# ---------------------------------------------------------------------------
# Expected tensors (the reference architecture)
# ---------------------------------------------------------------------------

def _conv(out, name, cout, cin, k):
    out[name + ".weight"] = (cout, cin, k, k)
    out[name + ".bias"] = (cout,)


def _norm(out, name, c):
    out[name + ".weight"] = (c,)
    out[name + ".bias"] = (c,)


def _resblock(out, name, cin, cout):
    _norm(out, name + ".norm1", cin)
    _conv(out, name + ".conv1", cout, cin, 3)
    _norm(out, name + ".norm2", cout)
    _conv(out, name + ".conv2", cout, cout, 3)
    if cin != cout:
        _conv(out, name + ".nin_shortcut", cout, cin, 1)


def _attn(out, name, c):
    _norm(out, name + ".norm", c)
    for p in ("q", "k", "v", "proj_out"):
        _conv(out, "%s.%s" % (name, p), c, c, 1)


def encoder_tensors(s, out, pre):
    ch, mult, nrb = s["ch"], s["ch_mult"], s["num_res_blocks"]
    nlev = len(mult)
    _conv(out, pre + "conv_in", ch, s["in_channels"], 3)
    curr_res = s["resolution"]
    in_mult = [1] + mult
    block_in = ch
    for i in range(nlev):
        block_in = ch * in_mult[i]
        block_out = ch * mult[i]
        for j in range(nrb):
            _resblock(out, "%sdown.%d.block.%d" % (pre, i, j), block_in,
                      block_out)
            block_in = block_out
            if curr_res in s["attn_resolutions"]:
                _attn(out, "%sdown.%d.attn.%d" % (pre, i, j), block_in)
        if i != nlev - 1:
            _conv(out, "%sdown.%d.downsample.conv" % (pre, i), block_in,
                  block_in, 3)
            curr_res //= 2
    _resblock(out, pre + "mid.block_1", block_in, block_in)
    _attn(out, pre + "mid.attn_1", block_in)
    _resblock(out, pre + "mid.block_2", block_in, block_in)
    _norm(out, pre + "norm_out", block_in)
    _conv(out, pre + "conv_out", s["z_channels"], block_in, 3)


def decoder_tensors(s, out, pre):
    ch, mult, nrb = s["ch"], s["ch_mult"], s["num_res_blocks"]
    nlev = len(mult)
    block_in = ch * mult[-1]
    curr_res = s["resolution"] // 2 ** (nlev - 1)
    _conv(out, pre + "conv_in", block_in, s["z_channels"], 3)
    _resblock(out, pre + "mid.block_1", block_in, block_in)
    _attn(out, pre + "mid.attn_1", block_in)
    _resblock(out, pre + "mid.block_2", block_in, block_in)
    levels = []
    for i in reversed(range(nlev)):
        lev = {}
        block_out = ch * mult[i]
        for j in range(nrb + 1):
            _resblock(lev, "%sup.%d.block.%d" % (pre, i, j), block_in,
                      block_out)
            block_in = block_out
            if curr_res in s["attn_resolutions"]:
                _attn(lev, "%sup.%d.attn.%d" % (pre, i, j), block_in)
        if i != 0:
            _conv(lev, "%sup.%d.upsample.conv" % (pre, i), block_in,
                  block_in, 3)
            curr_res *= 2
        levels.append(lev)
    for lev in reversed(levels):          # up.0 first, like the state dict
        out.update(lev)
    _norm(out, pre + "norm_out", block_in)
    _conv(out, pre + "conv_out", s["out_ch"], block_in, 3)


def vq_tensors(s, out, segmentation):
    pre = s["prefix"]
    encoder_tensors(s, out, pre + "encoder.")
    if not segmentation:
        decoder_tensors(s, out, pre + "decoder.")
    if s.get("quantizer", "vq") == "gumbel":
        # GumbelQuantize: logits by a 1x1 conv (z_channels = embed_dim in),
        # the codebook as an Embedding named embed
        _conv(out, pre + "quantize.proj", s["n_embed"], s["embed_dim"], 1)
        out[pre + "quantize.embed.weight"] = (s["n_embed"], s["embed_dim"])
    else:
        out[pre + "quantize.embedding.weight"] = (s["n_embed"],
                                                  s["embed_dim"])
    _conv(out, pre + "quant_conv", s["embed_dim"], s["z_channels"], 1)
    if not segmentation:
        _conv(out, pre + "post_quant_conv", s["z_channels"], s["embed_dim"],
              1)


def gpt_tensors(s, out):
    pre, e, v = s["prefix"], s["n_embd"], s["vocab_size"]
    out[pre + "tok_emb.weight"] = (v, e)
    out[pre + "pos_emb"] = (1, s["block_size"], e)
    for i in range(s["n_layer"]):
        b = "%sblocks.%d." % (pre, i)
        _norm(out, b + "ln1", e)
        _norm(out, b + "ln2", e)
        for p in ("key", "query", "value", "proj"):
            out[b + "attn.%s.weight" % p] = (e, e)
            out[b + "attn.%s.bias" % p] = (e,)
        out[b + "mlp.0.weight"] = (4 * e, e)
        out[b + "mlp.0.bias"] = (4 * e,)
        out[b + "mlp.2.weight"] = (e, 4 * e)
        out[b + "mlp.2.bias"] = (e,)
    _norm(out, pre + "ln_f", e)
    out[pre + "head.weight"] = (v, e)


def expected_tensors(plan):
    """Ordered dict name -> numpy shape of every tensor the file holds."""
    from collections import OrderedDict
    out = OrderedDict()
    if plan["first"] is not None:
        vq_tensors(plan["first"], out, False)
    if plan["cond"] is not None:
        vq_tensors(plan["cond"], out, True)
    if plan["gpt"] is not None:
        gpt_tensors(plan["gpt"], out)
    return out


def is_dropped(name, plan):
    """Checkpoint entries inference never reads."""
    prefixes = []
    if plan["first"] is not None:
        prefixes.append((plan["first"]["prefix"], False))
    if plan["cond"] is not None:
        prefixes.append((plan["cond"]["prefix"], True))
    if name.startswith("loss."):
        return True
    for pre, seg in prefixes:
        if not name.startswith(pre):
            continue
        rest = name[len(pre):]
        if rest.startswith("loss.") or rest == "colorize":
            return True
        if seg and (rest.startswith("decoder.")
                    or rest.startswith("post_quant_conv.")):
            return True
    if plan["gpt"] is not None:
        pre = plan["gpt"]["prefix"]
        if name.startswith(pre + "blocks.") and name.endswith(".attn.mask"):
            return True
    return False


# ---------------------------------------------------------------------------
# Checkpoint loading
# ---------------------------------------------------------------------------

class _Opaque:
    """Stands for every object of a checkpoint that is not a tensor, a
    container of tensors or a number: Lightning's callbacks and hyper-
    parameters (pytorch_lightning and omegaconf need not be installed),
    numpy scalars. Never called or run: whatever the pickle would build,
    it builds this inert object instead."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass


def _checkpoint_pickle_module():
    """A pickle module for torch's checkpoint loaders (load_state_dict) that
    builds tensors and plain containers and nothing else: unpickling a downloaded checkpoint must not
    run code (pickle's REDUCE calls whatever global the file names, e.g.
    os.system). torch resolves its storage types itself."""
    import collections
    import functools
    import pickle
    import types
    import torch
    import torch._tensor
    import torch._utils

    # types pickle's BUILD cannot change (extension types), and the tensor
    # rebuild functions as partials: BUILD sets attributes on the object it
    # is given, and on a function torch's legacy loader would then read
    # (dump_patches, __name__: a ".patch" file written where the file says);
    # a partial has no source, so that loader never writes one
    allowed = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
        ("torch", "Size"): torch.Size,
    }
    rebuild = {("torch._utils", n): getattr(torch._utils, n) for n in
               ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter",
                "_rebuild_parameter_with_state") if hasattr(torch._utils, n)}
    if hasattr(torch._tensor, "_rebuild_from_type_v2"):
        rebuild[("torch._tensor", "_rebuild_from_type_v2")] = torch._tensor._rebuild_from_type_v2

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) in allowed:
                return allowed[(module, name)]
            if (module, name) in rebuild:
                return functools.partial(rebuild[(module, name)])
            return type(name, (_Opaque,), {"__module__": module})

    def load(f, **kwargs):
        return Unpickler(f, **kwargs).load()

    m = types.ModuleType("vqgan_checkpoint_pickle")
    # what torch.serialization reads of the pickle module besides these two
    m.__dict__.update({k: v for k, v in vars(pickle).items() if not k.startswith("__")})
    m.Unpickler, m.load = Unpickler, load
    return m


def load_state_dict(path):
    import io
    import torch
    import torch.serialization as ts
    restricted = _checkpoint_pickle_module()
    # torch.load itself is not used: it hands an archive that torch's own zip
    # reader finds constants.pkl in to torch.jit.load (running its code; a
    # zip can show Python's zipfile other names than torch's reader), and a
    # pre-0.4 tar checkpoint to tarfile, which extracts links wherever they
    # point. A zip goes straight to torch's loader of checkpoint archives;
    # anything else is read from memory, where the tar path is never taken.
    # Both take our unpickler as their pickle module.
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic == b"PK\x03\x04":
            reader = torch._C.PyTorchFileReader(path)
            records = reader.get_all_records()
            if any(r.endswith("constants.pkl") or "/code/" in r for r in records):
                raise ConvertError("%s is a TorchScript archive (it holds code), not a checkpoint: "
                                   "save the model's state_dict with torch.save" % path)
            ck = ts._load(reader, "cpu", restricted, encoding="utf-8")
        else:
            with open(path, "rb") as f:
                ck = ts._legacy_load(io.BytesIO(f.read()), "cpu", restricted, encoding="utf-8")
    except ConvertError:
        raise
    except Exception as e:  # noqa: BLE001 - report any load failure
        raise ConvertError("cannot load checkpoint %s: %s" % (path, e))
    if isinstance(ck, dict) and "state_dict" in ck:
        sd = ck["state_dict"]
    else:
        sd = ck
    if not isinstance(sd, dict) or not all(
            torch.is_tensor(v) for v in sd.values()):
        raise ConvertError("%s holds neither a checkpoint with a "
                           "'state_dict' nor a bare state dict" % path)
    return sd


def _shape_str(shape):
    return "(" + ", ".join(str(d) for d in shape) + ")"


def check_masks(sd, names, plan):
    """The attention masks the converter leaves out are the reference's
    buffers, and a loaded checkpoint's buffer wins over the config: each
    must be what the engine computes from the config, causal with the
    first n_unmasked positions seeing each other (minGPT's CausalSelfAttention)."""
    import torch
    gpt = plan["gpt"]
    if gpt is None:
        return
    b, u = gpt["block_size"], gpt["n_unmasked"]
    want = torch.tril(torch.ones(b, b))
    want[:u, :u] = 1
    for n in sorted(names):
        if not (n.startswith(gpt["prefix"] + "blocks.") and n.endswith(".attn.mask")):
            continue
        t = sd[names[n]]
        if tuple(t.shape) != (1, 1, b, b):
            raise ConvertError("%s has the shape %s, not (1, 1, %d, %d) for block_size %d"
                               % (n, _shape_str(t.shape), b, b, b))
        if not torch.equal(t.reshape(b, b).to(torch.float32) != 0, want != 0):
            raise ConvertError("%s is not the causal mask of the config's n_unmasked %d (block_size %d): "
                               "the checkpoint's mask is what the reference would use; set n_unmasked in "
                               "transformer_config to the checkpoint's" % (n, u, b))


def select_tensors(sd, plan):
    """Check the state dict against the plan; return name -> float32 array
    in the expected order."""
    import torch
    expected = expected_tensors(plan)
    gpt = plan["gpt"]
    names = dict((k, k) for k in sd)
    # a bare GPT state dict (tok_emb.weight, ...) gets the transformer. prefix
    if plan["target"] == T_GPT and "transformer.tok_emb.weight" not in sd \
            and "tok_emb.weight" in sd:
        names = dict((gpt["prefix"] + k, k) for k in sd)

    missing = [n for n in expected if n not in names]
    if missing:
        # a wrapper's prefix (a LightningModule holding the model as
        # self.model, say): said, not guessed
        hint = ""
        for pre in sorted({k.split(".", 1)[0] + "." for k in sd if "." in k}):
            if sum(1 for n in missing if pre + n in names) > len(missing) // 2:
                hint = ("; the checkpoint's names carry the prefix %r: save the inner model's "
                        "state_dict, or strip the prefix" % pre)
                break
        raise ConvertError(
            "checkpoint is missing %d tensor%s the config requires: %s%s%s"
            % (len(missing), "" if len(missing) == 1 else "s",
               ", ".join(missing[:8]), ", ..." if len(missing) > 8 else "", hint))
    extra = sorted(n for n in names if n not in expected
                   and not is_dropped(n, plan))
    if extra:
        raise ConvertError(
            "checkpoint has %d unexpected tensor%s the config does not "
            "describe: %s%s" % (len(extra), "" if len(extra) == 1 else "s",
                               ", ".join(extra[:8]),
                               ", ..." if len(extra) > 8 else ""))
    check_masks(sd, names, plan)
    out = {}
    for n, shape in expected.items():
        t = sd[names[n]]
        got = tuple(t.shape)
        if got != tuple(shape):
            raise ConvertError("tensor %s has the wrong shape: expected %s, "
                               "got %s" % (n, _shape_str(shape),
                                           _shape_str(got)))
        if not t.is_floating_point():
            raise ConvertError("tensor %s has non-float dtype %s"
                               % (n, t.dtype))
        a = t.detach().to(dtype=torch.float32).contiguous().numpy()
        if not np.isfinite(a).all():
            raise ConvertError("tensor %s contains non-finite values" % n)
        out[n] = a
    return out


# ---------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------

def read_labels(path, n_labels):
    """``value<TAB>name`` per line ('#' comments and blank lines skipped);
    the values must be 0..n_labels-1, each once."""
    names = {}
    try:
        with open(path, encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConvertError("cannot read labels %s: %s" % (path, e))
    for ln, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "\t" not in line:
            raise ConvertError("%s:%d: expected 'value<TAB>name'"
                               % (path, ln))
        v, name = line.split("\t", 1)
        try:
            v = int(v)
        except ValueError:
            raise ConvertError("%s:%d: %r is not an integer label value"
                               % (path, ln, v))
        if not 0 <= v < n_labels:
            raise ConvertError("%s:%d: label value %d is outside "
                               "0..%d (the model has %d labels)"
                               % (path, ln, v, n_labels - 1, n_labels))
        if v in names:
            raise ConvertError("%s:%d: label value %d given twice"
                               % (path, ln, v))
        names[v] = name.strip()
    if len(names) != n_labels:
        missing = [v for v in range(n_labels) if v not in names]
        raise ConvertError("%s names %d labels but the model has %d "
                           "(missing values: %s%s)"
                           % (path, len(names), n_labels,
                              ", ".join(map(str, missing[:8])),
                              ", ..." if len(missing) > 8 else ""))
    return [names[v] for v in range(n_labels)]


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------

def add_stage_keys(w, stage, s):
    k = "vqgan.%s." % stage
    w.add_string(k + "tensor_prefix", s["prefix"])
    w.add_u32(k + "ch", s["ch"])
    w.add_u32_array(k + "ch_mult", s["ch_mult"])
    w.add_u32(k + "num_res_blocks", s["num_res_blocks"])
    w.add_u32_array(k + "attn_resolutions", s["attn_resolutions"])
    w.add_u32(k + "resolution", s["resolution"])
    w.add_u32(k + "in_channels", s["in_channels"])
    w.add_u32(k + "out_ch", s["out_ch"])
    w.add_u32(k + "z_channels", s["z_channels"])
    w.add_u32(k + "embed_dim", s["embed_dim"])
    w.add_u32(k + "n_embed", s["n_embed"])
    if s.get("quantizer", "vq") != "vq":
        w.add_string(k + "quantizer", s["quantizer"])


def build_writer(plan, tensors, dtype="f32", name="", labels=None, colors=None):
    w = gw.GGUFWriter(alignment=32)
    w.add_string("general.architecture", "vqgan")
    w.add_string("general.name", name)
    w.add_u32("general.alignment", 32)
    w.add_u32("vqgan.format_version", FORMAT_VERSION)
    w.add_bool("vqgan.has_first_stage", plan["first"] is not None)
    if plan["first"] is not None:
        add_stage_keys(w, "first_stage", plan["first"])
    w.add_string("vqgan.cond_stage.kind", plan["cond_kind"])
    if plan["cond_kind"] == "segmentation":
        add_stage_keys(w, "cond_stage", plan["cond"])
        w.add_u32("vqgan.cond_stage.n_labels", plan["cond"]["n_labels"])
        if labels is not None:
            w.add_string_array("vqgan.cond_stage.label_names", labels)
        if colors is not None:
            w.add_string_array("vqgan.cond_stage.label_colors", colors)
    elif plan["cond_kind"] == "depth":
        add_stage_keys(w, "cond_stage", plan["cond"])
        w.add_string("vqgan.cond_stage.depth_normalization",
                     plan["depth_normalization"])
    elif plan["cond_kind"] == "coord":
        w.add_u32("vqgan.cond_stage.n_embed", plan["coord"]["n_embed"])
        w.add_u32("vqgan.cond_stage.down_factor",
                  plan["coord"]["down_factor"])
    elif plan["cond_kind"] == "class":
        w.add_u32("vqgan.cond_stage.n_classes", plan["n_classes"])
    elif plan["cond_kind"] == "sos":
        w.add_u32("vqgan.cond_stage.sos_token", plan["sos_token"])
    w.add_bool("vqgan.has_transformer", plan["gpt"] is not None)
    if plan["gpt"] is not None:
        g = plan["gpt"]
        w.add_string("vqgan.transformer.tensor_prefix", g["prefix"])
        for k in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd",
                  "n_unmasked"):
            w.add_u32("vqgan.transformer." + k, g[k])
    for n, a in tensors.items():
        t = dtype if a.ndim >= 2 else "f32"
        if t == "f16":
            big = np.abs(a) > 65504.0
            if big.any():
                raise ConvertError("tensor %s has values beyond the f16 range "
                                   "(max |x| = %g); use --dtype bf16 or f32"
                                   % (n, float(np.abs(a).max())))
        # from f32 bits 0x7f7f8000 up, round-to-nearest-even gives bf16's infinity
        if t == "bf16" and a.size and np.abs(a).max() >= np.array([0x7F7F8000], np.uint32).view(np.float32)[0]:
            raise ConvertError("tensor %s has values that round to infinity in bf16 "
                               "(max |x| = %g); use --dtype f32" % (n, float(np.abs(a).max())))
        w.add_tensor(n, a, t)
    return w


def _progress_printer(what):
    """A progress callback for GGUFWriter.write: one line on a terminal's
    stderr, rewritten at most twice a second; nothing when stderr is not a
    terminal (logs, tests)."""
    import time
    if not sys.stderr.isatty():
        return None
    last = [0.0]

    def show(i, n, done, total):
        now = time.monotonic()
        if i < n and now - last[0] < 0.5:
            return
        last[0] = now
        sys.stderr.write("\r%s: %s: %d of %d tensors, %.2f of %.2f GB%s"
                         % (PROG, what, i, n, done / 1e9, total / 1e9, "\n" if i == n else ""))
        sys.stderr.flush()
    return show


def convert(config_path, ckpt_path, out_path, dtype="f32", name=None,
            labels_path=None, palette="auto"):
    import yaml
    if dtype not in ("f32", "f16", "bf16"):
        raise ConvertError("--dtype must be f32, f16 or bf16")
    try:
        with open(config_path, encoding="utf-8-sig") as f:
            config = yaml.safe_load(f)
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConvertError("cannot read config %s: %s (a taming-transformers config.yaml; the "
                           "arguments are CONFIG CHECKPOINT OUTPUT)" % (config_path, e))
    # the output must not replace an input (e.g. CHECKPOINT given twice)
    for what, path in (("config", config_path), ("checkpoint", ckpt_path), ("labels", labels_path),
                       ("palette", palette if palette not in ("auto", "none") else None)):
        if path and os.path.exists(out_path) and os.path.exists(path) and os.path.samefile(path, out_path):
            raise ConvertError("the output %s is the %s file: it would be overwritten" % (out_path, what))
    plan = build_plan(config)
    labels = None
    if labels_path is not None:
        if plan["cond_kind"] != "segmentation":
            raise ConvertError("--labels given but the model has no "
                               "segmentation condition stage")
        labels = read_labels(labels_path, plan["cond"]["n_labels"])
    colors = None
    if plan["cond_kind"] == "segmentation" and palette != "none":
        import palettes
        n = plan["cond"]["n_labels"]
        try:
            colors = (palettes.default_palette(n) if palette == "auto"
                      else palettes.read_palette_file(palette, n))
        except palettes.PaletteError as e:
            raise ConvertError(str(e))
    elif palette not in ("auto", "none"):
        raise ConvertError("--palette given but the model has no "
                           "segmentation condition stage")
    if sys.stderr.isatty():
        sys.stderr.write("%s: reading %s\n" % (PROG, ckpt_path))
    sd = load_state_dict(ckpt_path)
    tensors = select_tensors(sd, plan)
    if name is None:
        # a file name that is not UTF-8: its undecodable bytes as U+FFFD
        name = os.path.splitext(os.path.basename(out_path))[0]
        name = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    w = build_writer(plan, tensors, dtype, name, labels, colors)
    tmp = None
    try:
        # a temporary name of our own beside the output, renamed over it
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(out_path)),
                                   prefix="." + os.path.basename(out_path) + ".", suffix=".tmp")
        os.close(fd)
        size = w.write(tmp, progress=_progress_printer("writing " + out_path))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)         # as open() would have made it
        os.replace(tmp, out_path)
        tmp = None
    except OSError as e:
        raise ConvertError("cannot write %s: %s" % (out_path, e))
    finally:
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)
    return {"tensors": len(tensors), "bytes": size,
            "data_bytes": w.tensor_data_bytes(), "dtype": dtype,
            "keys": len(w._kv_list()), "plan": plan}


# ---------------------------------------------------------------------------
# Checking a written file (a Python mirror of the loader's model checks)
# ---------------------------------------------------------------------------

_INT_TYPES = (gw.T_U8, gw.T_I8, gw.T_U16, gw.T_I16, gw.T_U32, gw.T_I32,
              gw.T_U64, gw.T_I64)


def _key(g, key, kind, required=True, default=None):
    kv = g.kv.get(key)
    if kv is None:
        if required:
            raise ConvertError("required key %s is missing" % key)
        return default
    tname = gw.VALUE_TYPE_NAMES.get(kv.type, str(kv.type))
    if kind == "int":
        if kv.type not in _INT_TYPES:
            raise ConvertError("key %s has type %s, expected an integer"
                               % (key, tname))
        if not 0 <= kv.value < 1 << 32:
            raise ConvertError("key %s value %d is out of range"
                               % (key, kv.value))
    elif kind == "bool":
        if kv.type != gw.T_BOOL:
            raise ConvertError("key %s has type %s, expected bool"
                               % (key, tname))
    elif kind == "string":
        if kv.type != gw.T_STRING:
            raise ConvertError("key %s has type %s, expected string"
                               % (key, tname))
    elif kind in ("ints", "strings"):
        want = _INT_TYPES if kind == "ints" else (gw.T_STRING,)
        if kv.type != gw.T_ARRAY or kv.elem_type not in want:
            raise ConvertError("key %s has type %s, expected an array of %s"
                               % (key, tname, "integers" if kind == "ints"
                                  else "strings"))
    return kv.value


def _stage_from_keys(g, stage):
    k = "vqgan.%s." % stage
    s = {"prefix": _key(g, k + "tensor_prefix", "string")}
    for n in ("ch", "num_res_blocks", "resolution", "in_channels", "out_ch",
              "z_channels", "embed_dim", "n_embed"):
        s[n] = _key(g, k + n, "int")
        if s[n] < 1:
            raise ConvertError("key %s%s must be >= 1" % (k, n))
    s["ch_mult"] = _key(g, k + "ch_mult", "ints")
    s["attn_resolutions"] = _key(g, k + "attn_resolutions", "ints")
    s["quantizer"] = _key(g, k + "quantizer", "string", False, "vq")
    if s["quantizer"] not in ("vq", "gumbel"):
        raise ConvertError("key %squantizer %r is not vq or gumbel"
                           % (k, s["quantizer"]))
    if not s["ch_mult"] or min(s["ch_mult"]) < 1:
        raise ConvertError("key %sch_mult must be a non-empty list of "
                           "positive integers" % k)
    return s


def check_model(g):
    """Check a parsed GGUFFile (gguf_writer.read_gguf) against the model
    rules of docs/model-format.md; raise ConvertError naming the problem.
    Returns the plan rebuilt from the keys."""
    arch = g.kv.get("general.architecture")
    if arch is None or arch.type != gw.T_STRING or arch.value != "vqgan":
        raise ConvertError("general.architecture is %r, expected 'vqgan'"
                           % (None if arch is None else arch.value,))
    if _key(g, "vqgan.format_version", "int") != FORMAT_VERSION:
        raise ConvertError("vqgan.format_version %r is not %d" % (
            g.value("vqgan.format_version"), FORMAT_VERSION))
    plan = {"target": None, "first": None, "cond": None, "gpt": None}
    if _key(g, "vqgan.has_first_stage", "bool"):
        plan["first"] = _stage_from_keys(g, "first_stage")
    kind = _key(g, "vqgan.cond_stage.kind", "string")
    plan["cond_kind"] = kind
    if kind == "segmentation":
        plan["cond"] = _stage_from_keys(g, "cond_stage")
        plan["cond"]["n_labels"] = _key(g, "vqgan.cond_stage.n_labels",
                                        "int")
        names = _key(g, "vqgan.cond_stage.label_names", "strings", False)
        if names is not None and len(names) != plan["cond"]["n_labels"]:
            raise ConvertError("vqgan.cond_stage.label_names has %d names "
                               "for %d labels" % (len(names),
                                                  plan["cond"]["n_labels"]))
    elif kind == "depth":
        plan["cond"] = _stage_from_keys(g, "cond_stage")
        if plan["cond"]["in_channels"] != 1:
            raise ConvertError("a depth condition stage has in_channels %d, "
                               "not 1" % plan["cond"]["in_channels"])
        norm = _key(g, "vqgan.cond_stage.depth_normalization", "string")
        if norm != DEPTH_NORMALIZATION:
            raise ConvertError("vqgan.cond_stage.depth_normalization %r is "
                               "not %r" % (norm, DEPTH_NORMALIZATION))
    elif kind == "coord":
        plan["coord"] = {
            "n_embed": _key(g, "vqgan.cond_stage.n_embed", "int"),
            "down_factor": _key(g, "vqgan.cond_stage.down_factor", "int")}
        if min(plan["coord"].values()) < 1:
            raise ConvertError("vqgan.cond_stage.n_embed and down_factor "
                               "must be >= 1")
    elif kind == "class":
        plan["n_classes"] = _key(g, "vqgan.cond_stage.n_classes", "int")
    elif kind == "sos":
        plan["sos_token"] = _key(g, "vqgan.cond_stage.sos_token", "int")
    elif kind != "none":
        raise ConvertError("vqgan.cond_stage.kind %r is not one of none, "
                           "segmentation, depth, coord, class, sos" % kind)
    if _key(g, "vqgan.has_transformer", "bool"):
        t = {"prefix": _key(g, "vqgan.transformer.tensor_prefix", "string")}
        for n in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            t[n] = _key(g, "vqgan.transformer." + n, "int")
            if t[n] < 1:
                raise ConvertError("key vqgan.transformer.%s must be >= 1"
                                   % n)
        t["n_unmasked"] = _key(g, "vqgan.transformer.n_unmasked", "int",
                               False, 0)
        if t["n_embd"] % t["n_head"]:
            raise ConvertError("vqgan.transformer.n_head does not divide "
                               "vqgan.transformer.n_embd")
        plan["gpt"] = t
    expected = expected_tensors(plan)
    for name, shape in expected.items():
        ti = g.by_name.get(name)
        if ti is None:
            raise ConvertError("required tensor %s is missing" % name)
        if tuple(ti.shape) != tuple(shape):
            raise ConvertError("tensor %s has shape %s, expected %s"
                               % (name, _shape_str(ti.shape),
                                  _shape_str(shape)))
        if not np.isfinite(g.tensor(name)).all():
            raise ConvertError("tensor %s contains non-finite values" % name)
    extra = [ti.name for ti in g.tensors if ti.name not in expected]
    if extra:
        raise ConvertError("unexpected tensors: %s" % ", ".join(extra[:8]))
    return plan


def check_file(path):
    """Parse and check a model file; return None if valid, else the error
    message (container or model)."""
    try:
        check_model(gw.read_gguf(path))
    except (gw.GGUFError, ConvertError) as e:
        return str(e)
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Convert a Taming Transformers config.yaml + checkpoint "
                    "to a libvqgan GGUF model file.")
    ap.add_argument("config")
    ap.add_argument("checkpoint")
    ap.add_argument("output")
    ap.add_argument("--dtype", default="f32", choices=("f32", "f16", "bf16"),
                    help="storage type of rank>=2 tensors (default f32)")
    ap.add_argument("--name", default=None,
                    help="general.name (default: the output's base name)")
    ap.add_argument("--labels", default=None,
                    help="value<TAB>name file naming the segmentation labels")
    ap.add_argument("--palette", default="auto",
                    help="label colours for colour-coded label maps: an "
                         "'id name #rrggbb' file (samples/legend.txt), 'none', "
                         "or 'auto' (default): COCO-Stuff's for 182/183 labels, "
                         "ADE20K's for 151 (tools/palettes.py)")
    a = ap.parse_args(argv)
    try:
        r = convert(a.config, a.checkpoint, a.output, a.dtype, a.name,
                    a.labels, a.palette)
    except ConvertError as e:
        sys.stderr.write("%s: error: %s\n" % (PROG, e))
        return 1
    except gw.GGUFError as e:
        sys.stderr.write("%s: error: %s\n" % (PROG, e))
        return 1
    print("%s: %d tensors, %d bytes of tensor data (%s), %d keys, file %d "
          "bytes" % (a.output, r["tensors"], r["data_bytes"], r["dtype"],
                     r["keys"], r["bytes"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
