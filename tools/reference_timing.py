#!/usr/bin/python3
"""Time the reference's algorithm on the same weights as the C engine.

The reference (taming-transformers scripts/sample_conditional.py) samples
every cell of the grid with one full forward of the whole window (2·w·w - 1
positions), encodes the label map with the segmentation VQGAN and decodes the
tokens with the first stage. This script runs exactly that with Debian's
PyTorch (fp32, CPU, all cores) on a checkpoint written by
tools/make_random_model.py --ckpt, using the reference's own module
definitions as reproduced in tools/train.py (verified there against the
golden vectors).

Timing every cell of a 32x32 grid would take hours, so the transformer part is
measured on a few full-window forwards and multiplied by the number of cells
(every cell costs one identical forward in the reference's loop); the stages
are timed once per frame size. The JSON written says so.

    /usr/bin/python3 tools/reference_timing.py CONFIG CKPT OUT.json [--sizes 256x512,512x512]
"""
import argparse
import json
import os
import sys
import time

import torch
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train  # noqa: E402  (the reference's modules, verified against the golden vectors)


def build(cfg, sd):
    p = cfg["model"]["params"]
    t = p["transformer_config"]["params"]
    gpt = train.GPT(t["vocab_size"], t["block_size"], t["n_layer"], t["n_head"], t["n_embd"])
    gpt.load_state_dict({k[len("transformer."):]: v for k, v in sd.items() if k.startswith("transformer.")},
                        strict=False)
    fs = p["first_stage_config"]["params"]
    cs = p["cond_stage_config"]["params"]
    first = train.VQModel(fs["ddconfig"], fs["n_embed"], fs["embed_dim"])
    first.load_state_dict({k[len("first_stage_model."):]: v for k, v in sd.items()
                           if k.startswith("first_stage_model.")}, strict=False)
    cond = train.VQModel(cs["ddconfig"], cs["n_embed"], cs["embed_dim"])
    cond.load_state_dict({k[len("cond_stage_model."):]: v for k, v in sd.items()
                          if k.startswith("cond_stage_model.")}, strict=False)
    return gpt.eval(), first.eval(), cond.eval(), cs["n_labels"]


def best_of(n, f):
    best = 1e30
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("ckpt")
    ap.add_argument("out")
    ap.add_argument("--sizes", default="256x512,512x512")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    with open(a.config) as f:
        cfg = yaml.safe_load(f)
    sd = torch.load(a.ckpt, map_location="cpu")["state_dict"]
    gpt, first, cond, n_labels = build(cfg, sd)
    block = gpt.block_size
    res = {"what": "reference algorithm (full-window forward per cell), PyTorch %s fp32, %d threads; "
                   "transformer time = one timed forward x cells (extrapolated)" % (torch.__version__, a.threads),
           "sizes": {}}
    with torch.no_grad():
        idx = torch.randint(0, gpt.tok_emb.num_embeddings, (1, block - 1))
        t_fwd = best_of(2, lambda: gpt(idx))
        res["forward_seconds"] = t_fwd
        print("reference: one %d-position forward %.2f s" % (block - 1, t_fwd))
        for s in a.sizes.split(","):
            h, w = (int(v) for v in s.split("x"))
            seg = torch.randint(0, n_labels, (1, h, w))
            onehot = torch.nn.functional.one_hot(seg, n_labels).permute(0, 3, 1, 2).float()
            t_enc = best_of(1, lambda: cond.encode(onehot))
            f = 2 ** (len(cfg["model"]["params"]["first_stage_config"]["params"]["ddconfig"]["ch_mult"]) - 1)
            cells = (h // f) * (w // f)
            z = torch.randn(1, first.quantize.embedding.weight.shape[1], h // f, w // f)
            t_dec = best_of(1, lambda: first.decode(z))
            total = t_enc + cells * t_fwd + t_dec
            res["sizes"][s] = {"cells": cells, "encode_s": t_enc, "decode_s": t_dec, "frame_s": total}
            print("reference %s: encode %.2f s + %d cells x %.2f s + decode %.2f s = %.1f s per frame"
                  % (s, t_enc, cells, t_fwd, t_dec, total))
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
