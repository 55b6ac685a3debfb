#!/usr/bin/python3
"""Parity with the reference's modules on architectures the golden cases do not cover.

The golden vectors (../shared/golden) hold one architecture per stage: f=8
from ch_mult [1,1,2,2], two res blocks, attention at the lowest level only,
square-ish inputs, a GPT with 8-wide heads and w=4. Released models differ
(S-FLCKR: f=16, attention at 16; the default model: one res block). This test
builds models of other shapes with seeded random weights, computes what the
reference computes with the reference's module definitions as reproduced in
tools/train.py (verified there against the golden vectors), writes each as a
reference-layout config.yaml + checkpoint, converts it with tools/convert.py
and runs the C library on it (build/libvqgan.so, through ctypes), fp32:

  - first stages: f=8 with attention at two levels and three res blocks; f=16
    with one res block and attention only in the middle; f=4 with no res
    block in the encoder (num_res_blocks 0); a one-channel (grey) tokenizer;
    inputs not square and not of the config's resolution;
  - a segmentation stage with f=2, attention at the top level and 5 labels;
  - a segmentation-conditional GPT with w=6 and 12-wide heads, sampled
    greedily with the sliding window: every cell's logits recomputed by the
    reference's forward on the C engine's own window, which must pick their
    argmax;
  - a class-conditional GPT with 20-wide heads and n_unmasked set.

Tolerances are the golden README's: indices identical unless the reference's
own margin is below rounding, floats within 1e-4 relative to their scale.
"""
import copy
import ctypes
import os
import sys
import tempfile

import numpy as np
import torch
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import convert  # noqa: E402
import train  # noqa: E402

BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
LIB = os.path.join(os.path.abspath(BUILD), "libvqgan.so")
TOL = 1e-4
passed = failed = 0


def report(good, desc):
    global passed, failed
    print("%s - %s" % ("ok" if good else "not ok", desc))
    passed += bool(good)
    failed += not good


# ---- the library --------------------------------------------------------------------

class SessionParams(ctypes.Structure):
    _fields_ = [("n_threads", ctypes.c_int), ("temperature", ctypes.c_float), ("top_k", ctypes.c_int),
                ("top_p", ctypes.c_float), ("seed", ctypes.c_uint64), ("temporal", ctypes.c_int),
                ("cache_bytes", ctypes.c_size_t), ("progress", ctypes.c_void_p),
                ("progress_opaque", ctypes.c_void_p), ("fast_step", ctypes.c_int),
                ("origin_x", ctypes.c_int32), ("origin_y", ctypes.c_int32),
                ("log_callback", ctypes.c_void_p), ("log_opaque", ctypes.c_void_p)]


def load_lib():
    lib = ctypes.CDLL(LIB)
    P = ctypes.c_void_p
    lib.vqgan_last_error.restype = ctypes.c_char_p
    lib.vqgan_model_load.argtypes = [ctypes.c_char_p, P, ctypes.POINTER(P)]
    lib.vqgan_model_unref.argtypes = [P]
    lib.vqgan_session_new.argtypes = [P, P, ctypes.POINTER(P)]
    lib.vqgan_session_free.argtypes = [P]
    lib.vqgan_session_default_params.restype = SessionParams
    lib.vqgan_session_set_params.argtypes = [P, ctypes.POINTER(SessionParams)]
    lib.vqgan_encode_image_f32.argtypes = [P, P, ctypes.c_int, ctypes.c_int, P, P]
    lib.vqgan_encode_labels.argtypes = [P, P, ctypes.c_ssize_t, ctypes.c_int, ctypes.c_int, P, P]
    lib.vqgan_decode_f32.argtypes = [P, P, ctypes.c_int, ctypes.c_int, P]
    lib.vqgan_encode_image.argtypes = [P, P, ctypes.c_ssize_t, ctypes.c_int, ctypes.c_int, P]
    lib.vqgan_model_image_channels.argtypes = [P, P, P]
    lib.vqgan_sample_conditional.argtypes = [P, P, ctypes.c_int, ctypes.c_int, P]
    lib.vqgan_sample_unconditional.argtypes = [P, ctypes.c_int, ctypes.c_int, ctypes.c_int, P]
    return lib


def ptr(a):
    return a.ctypes.data_as(ctypes.c_void_p)


class Engine:
    """One model file and a greedy fp32 session on it."""

    def __init__(self, lib, path):
        self.lib, self.m, self.s = lib, ctypes.c_void_p(), ctypes.c_void_p()
        if lib.vqgan_model_load(path.encode(), None, ctypes.byref(self.m)) or \
                lib.vqgan_session_new(self.m, None, ctypes.byref(self.s)):
            raise RuntimeError(self.error())
        p = lib.vqgan_session_default_params()
        p.top_k = 1
        if lib.vqgan_session_set_params(self.s, ctypes.byref(p)):
            raise RuntimeError(self.error())

    def error(self):
        return self.lib.vqgan_last_error().decode()

    def call(self, name, *args):
        if getattr(self.lib, name)(self.s, *args):
            raise RuntimeError("%s: %s" % (name, self.error()))

    def close(self):
        self.lib.vqgan_session_free(self.s)
        self.lib.vqgan_model_unref(self.m)


# ---- models in the reference's layout ------------------------------------------------

def perturb(module, seed):
    """Every parameter away from its default (as the golden cases do), at scales
    that keep activations of order one."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            r = torch.randn(p.shape, generator=g)
            if name.endswith("bias"):
                p.copy_(0.1 * r)
            elif p.dim() == 1:                          # norm scales
                p.copy_(1.0 + 0.2 * r)
            elif "embedding" in name or "tok_emb" in name:
                p.copy_(0.5 * r)
            elif "pos_emb" in name:
                p.copy_(0.3 * r)
            else:                                       # conv / linear weights
                fan_in = p[0].numel()
                p.copy_(r / fan_in ** 0.5)
    return module.eval()


def vq_config(ch_mult, nrb, attn, resolution, z, embed, n_embed, in_ch=3, n_labels=None):
    dd = dict(double_z=False, z_channels=z, resolution=resolution, in_channels=in_ch,
              out_ch=in_ch, ch=32, ch_mult=list(ch_mult), num_res_blocks=nrb,
              attn_resolutions=list(attn), dropout=0.0)
    p = dict(embed_dim=embed, n_embed=n_embed, ddconfig=dd,
             lossconfig=dict(target="taming.modules.losses.DummyLoss"))
    if n_labels is None:
        return dict(target="taming.models.vqgan.VQModel", params=p)
    p.update(n_labels=n_labels, image_key="segmentation")
    return dict(target="taming.models.vqgan.VQSegmentationModel", params=p)


def vq_module(cfg, seed):
    p = cfg["params"]
    if "n_labels" in p:
        m = train.VQSegmentationModel(p["n_labels"], p["ddconfig"], p["n_embed"], p["embed_dim"])
    else:
        m = train.VQModel(p["ddconfig"], p["n_embed"], p["embed_dim"])
    return perturb(m, seed)


def gpt_config(vocab, block, n_layer, n_head, n_embd, n_unmasked=0):
    p = dict(vocab_size=vocab, block_size=block, n_layer=n_layer, n_head=n_head, n_embd=n_embd)
    if n_unmasked:
        p["n_unmasked"] = n_unmasked
    return dict(target="taming.modules.transformer.mingpt.GPT", params=p)


def gpt_module(cfg, seed):
    p = cfg["params"]
    return perturb(train.GPT(p["vocab_size"], p["block_size"], p["n_layer"], p["n_head"], p["n_embd"],
                             n_unmasked=p.get("n_unmasked", 0)), seed)


def write_model(tmp, name, config, state_dict):
    """config.yaml + a Lightning-style checkpoint, converted to a model file."""
    cfg_path, ckpt, out = (os.path.join(tmp, name + e) for e in (".yaml", ".ckpt", ".gguf"))
    with open(cfg_path, "w") as f:
        yaml.safe_dump({"model": config}, f)
    torch.save({"state_dict": state_dict}, ckpt)
    convert.convert(cfg_path, ckpt, out)
    return out


def prefixed(prefix, module):
    return {prefix + k: v for k, v in module.state_dict().items()}


# ---- comparisons ----------------------------------------------------------------------

def rel_diff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def indices_agree(ours, h, codebook):
    """Our index at every cell is the reference's nearest code, or within
    rounding of it (the reference's distance to ours exceeds its minimum by at
    most TOL of the distances' scale)."""
    z = torch.from_numpy(h).permute(0, 2, 3, 1).reshape(-1, h.shape[1]).double()
    e = codebook.double()
    d = (z ** 2).sum(1, keepdim=True) + (e ** 2).sum(1) - 2 * z @ e.t()
    best = d.argmin(1).numpy()
    ours = ours.reshape(-1)
    exact = int((ours == best).sum())
    gap = (d[np.arange(len(ours)), ours] - d.min(1).values).numpy()
    scale = float(d.abs().max())
    return bool(np.all(gap <= TOL * scale)), exact, len(ours)


def check_first_stage(eng, model, name, H, W, seed):
    f = 2 ** (len(model.encoder.down) - 1)
    g = torch.Generator().manual_seed(seed)
    C = model.encoder.conv_in.in_channels
    x = (torch.randint(0, 256, (1, C, H, W), generator=g).float() / 127.5 - 1.0)
    with torch.no_grad():
        h = model.encode_h(x).numpy()
    gh, gw = H // f, W // f
    tok = np.zeros(gh * gw, np.int32)
    pre = np.zeros(h.size, np.float32)
    xs = np.ascontiguousarray(x.numpy()[0], np.float32)
    eng.call("vqgan_encode_image_f32", ptr(xs), W, H, ptr(tok), ptr(pre))
    dh = rel_diff(pre.reshape(h.shape), h)
    report(dh < TOL, "%s: encoder + quant_conv of a %dx%d image within %g of the reference (%.2g)"
           % (name, W, H, TOL, dh))
    ok, exact, n = indices_agree(tok, h, model.quantize.embedding.weight.detach())
    report(ok, "%s: indices are the reference's nearest codes (%d of %d identical, the rest near-ties)"
           % (name, exact, n))
    # decode the reference's own indices
    ref_idx = torch.from_numpy(tok.astype(np.int64)).view(1, gh, gw)
    with torch.no_grad():
        dec = model.decode_code(ref_idx).numpy()
    out = np.zeros(dec.size, np.float32)
    eng.call("vqgan_decode_f32", ptr(tok), gw, gh, ptr(out))
    dd = rel_diff(out.reshape(dec.shape), dec)
    report(dd < TOL, "%s: decode of a %dx%d grid within %g of the reference (%.2g)" % (name, gw, gh, TOL, dd))


def check_segmentation(eng, model, name, H, W, n_labels, seed):
    f = 2 ** (len(model.encoder.down) - 1)
    rng = np.random.default_rng(seed)
    # blocky label maps, as segmentations are, with some single-pixel noise
    ids = np.repeat(np.repeat(rng.integers(0, n_labels, (H // 2 + 1, W // 2 + 1)), 2, 0), 2, 1)[:H, :W]
    ids = np.where(rng.random((H, W)) < 0.1, rng.integers(0, n_labels, (H, W)), ids).astype(np.uint8)
    with torch.no_grad():
        h = model.quant_conv(model.encoder(train.one_hot(torch.from_numpy(ids.astype(np.int64))[None],
                                                         n_labels))).numpy()
    tok = np.zeros((H // f) * (W // f), np.int32)
    pre = np.zeros(h.size, np.float32)
    ids = np.ascontiguousarray(ids)
    eng.call("vqgan_encode_labels", ptr(ids), W, W, H, ptr(tok), ptr(pre))
    dh = rel_diff(pre.reshape(h.shape), h)
    report(dh < TOL, "%s: one-hot encoder + quant_conv of a %dx%d label map within %g of the reference (%.2g)"
           % (name, W, H, TOL, dh))
    ok, exact, n = indices_agree(tok, h, model.quantize.embedding.weight.detach())
    report(ok, "%s: condition indices are the reference's nearest codes (%d of %d identical)" % (name, exact, n))
    return tok


def window_offset(i, n, w):
    """The golden README's rule (even w)."""
    if i <= w // 2:
        return i
    if n - i < w // 2:
        return w - (n - i)
    return w // 2


def check_greedy(name, logits_at, ours):
    """logits_at(k): the reference's logits for the k-th sampled cell, given
    our tokens before it. Ours must be their argmax, or within rounding."""
    exact = worst = 0
    ok = True
    for k, t in enumerate(ours):
        lg = logits_at(k)
        best = int(np.argmax(lg))
        exact += t == best
        lead = float(lg[best] - lg[t])
        worst = max(worst, lead)
        ok &= lead <= TOL * max(1.0, float(np.max(np.abs(lg))))
    report(ok, "%s: every token the argmax of the reference's logits on our window (%d of %d identical, "
           "largest lead over ours %.2g)" % (name, exact, len(ours), worst))


def check_conditional(eng, gpt, cond, gh, gw, w, name):
    ours = np.zeros(gh * gw, np.int32)
    eng.call("vqgan_sample_conditional", ptr(cond), gw, gh, ptr(ours))
    c, img = cond.reshape(gh, gw), ours.reshape(gh, gw)
    ww = w * w
    cells = [(i, j) for i in range(gh) for j in range(gw)]

    def logits_at(k):
        i, j = cells[k]
        li, lj = window_offset(i, gh, w), window_offset(j, gw, w)
        r0, c0 = i - li, j - lj
        seq = np.concatenate([c[r0:r0 + w, c0:c0 + w].reshape(-1), img[r0:r0 + w, c0:c0 + w].reshape(-1)])
        seq = torch.from_numpy(seq[:2 * ww - 1].astype(np.int64))[None]
        with torch.no_grad():
            return gpt(seq)[0, ww - 1 + li * w + lj].numpy().astype(np.float64)
    check_greedy(name, logits_at, ours)
    return ours


def check_classcond(eng, gpt, class_id, gh, gw, name):
    ours = np.zeros(gh * gw, np.int32)
    eng.call("vqgan_sample_unconditional", class_id, gw, gh, ptr(ours))
    seq = torch.from_numpy(np.concatenate([[class_id], ours]).astype(np.int64))[None]
    with torch.no_grad():
        lg = gpt(seq[:, :-1])[0].numpy().astype(np.float64)
    check_greedy(name, lambda k: lg[k], ours)


def main():
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    lib = load_lib()
    with tempfile.TemporaryDirectory() as tmp:
        # 1. f=8, attention at two levels (32 and 8 on the config's 64), three
        #    res blocks, uneven channel multipliers, z != embed_dim
        cfg = vq_config([1, 2, 2, 3], 3, [32, 8], 64, 12, 6, 50)
        m = vq_module(cfg, 1)
        eng = Engine(lib, write_model(tmp, "f8", cfg, m.state_dict()))
        check_first_stage(eng, m, "f=8, attention at 32 and 8, 3 res blocks", 40, 56, 11)
        eng.close()

        # 2. f=16 (the released S-FLCKR multipliers), one res block, attention
        #    only in the middle, an input four times smaller than its resolution
        cfg = vq_config([1, 1, 2, 2, 4], 1, [], 256, 8, 8, 30)
        m = vq_module(cfg, 2)
        eng = Engine(lib, write_model(tmp, "f16", cfg, m.state_dict()))
        check_first_stage(eng, m, "f=16, 1 res block, no attention levels", 48, 80, 12)
        eng.close()

        # 2b. no res blocks in the encoder (num_res_blocks 0; the decoder has
        #     one a level), which the reference runs where ch_mult is constant
        cfg = vq_config([1, 1, 1], 0, [8], 32, 8, 8, 20)
        m = vq_module(cfg, 8)
        eng = Engine(lib, write_model(tmp, "nrb0", cfg, m.state_dict()))
        check_first_stage(eng, m, "f=4, 0 res blocks, attention at 8", 24, 40, 15)
        eng.close()

        # 2c. a one-channel tokenizer (in_channels = out_ch = 1: grey pictures,
        #     planes of the f32 calls); the 8-bit RGB calls refuse it
        cfg = vq_config([1, 2], 1, [], 32, 4, 4, 12, in_ch=1)
        m = vq_module(cfg, 9)
        eng = Engine(lib, write_model(tmp, "grey", cfg, m.state_dict()))
        check_first_stage(eng, m, "one-channel tokenizer, f=2", 14, 22, 16)
        ci, co = ctypes.c_int(0), ctypes.c_int(0)
        r = lib.vqgan_model_image_channels(eng.m, ctypes.byref(ci), ctypes.byref(co))
        rgb = np.zeros(14 * 22 * 3, np.uint8)
        tok = np.zeros(7 * 11, np.int32)
        r8 = lib.vqgan_encode_image(eng.s, rgb.ctypes.data_as(ctypes.c_void_p), ctypes.c_ssize_t(66), 22, 14,
                                    tok.ctypes.data_as(ctypes.c_void_p))
        report(r == 0 and (ci.value, co.value) == (1, 1) and r8 != 0 and "1 channels" in eng.error(),
               "one-channel tokenizer: vqgan_model_image_channels gives 1 and 1 (status %d), the 8-bit RGB "
               "encode refuses it: %s" % (r, eng.error()))
        eng.close()

        # 3. segmentation stage: f=2, attention at the top level, 5 labels
        cfg = vq_config([1, 2], 2, [16], 16, 8, 4, 20, in_ch=5, n_labels=5)
        m = vq_module(cfg, 3)
        eng = Engine(lib, write_model(tmp, "seg", cfg, m.state_dict()))
        check_segmentation(eng, m, "segmentation f=2, attention at the top level", 10, 14, 5, 13)
        eng.close()

        # 4. segmentation-conditional: w = 6 (block 72), 3 heads of 12, grid
        #    7 x 10 from a 56 x 80 label map
        first = vq_config([1, 2, 2, 2], 1, [8], 64, 8, 8, 40)
        seg = vq_config([1, 1, 2, 2], 1, [], 64, 8, 8, 24, in_ch=6, n_labels=6)
        gcfg = gpt_config(40, 72, 2, 3, 36)
        net = dict(target="taming.models.cond_transformer.Net2NetTransformer",
                   params=dict(cond_stage_key="segmentation", transformer_config=gcfg,
                               first_stage_config=first, cond_stage_config=seg))
        fm, sm, gm = vq_module(first, 4), vq_module(seg, 5), gpt_module(gcfg, 6)
        sd = {**prefixed("first_stage_model.", fm), **prefixed("cond_stage_model.", sm),
              **prefixed("transformer.", gm)}
        eng = Engine(lib, write_model(tmp, "cond", net, sd))
        cond = check_segmentation(eng, sm, "conditional's segmentation stage (f=8, 6 labels)", 56, 80, 6, 14)
        ours = check_conditional(eng, gm, cond, 7, 10, 6, "conditional, w=6, heads of 12, 7x10 grid, greedy")
        with torch.no_grad():
            dec = fm.decode_code(torch.from_numpy(ours.astype(np.int64)).view(1, 7, 10)).numpy()
        out = np.zeros(dec.size, np.float32)
        eng.call("vqgan_decode_f32", ptr(ours), 10, 7, ptr(out))
        dd = rel_diff(out.reshape(dec.shape), dec)
        report(dd < TOL, "conditional: the sampled grid decoded within %g of the reference (%.2g)" % (TOL, dd))
        eng.close()

        # 5. class-conditional: 2 heads of 20, 3 x 4 tokens after the class
        #    token, which is unmasked (n_unmasked 1; more would let the first
        #    image tokens see later ones, which the engine refuses)
        gcfg = gpt_config(40, 13, 2, 2, 40, n_unmasked=1)
        net = dict(target="taming.models.cond_transformer.Net2NetTransformer",
                   params=dict(cond_stage_key="class_label", transformer_config=gcfg,
                               first_stage_config=copy.deepcopy(first),
                               cond_stage_config=dict(target="taming.modules.util.Labelator",
                                                      params=dict(n_classes=9))))
        gm = gpt_module(gcfg, 7)
        sd = {**prefixed("first_stage_model.", fm), **prefixed("transformer.", gm)}
        eng = Engine(lib, write_model(tmp, "classcond", net, sd))
        check_classcond(eng, gm, 7, 3, 4, "class-conditional, heads of 20, n_unmasked 1, greedy")
        eng.close()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
