#!/usr/bin/python3
"""Write a model file (and optionally a reference-layout checkpoint) with
seeded random weights for a config, e.g. the released S-FLCKR shapes:

    /usr/bin/python3 tools/make_random_model.py tools/configs/sflckr.yaml OUT.gguf [--ckpt OUT.ckpt]

Weights are scaled like a trained network's (conv/linear ~ N(0, 1/fan_in),
norm scales ~ 1) so activations keep a sensible range through every layer.
Used by the benchmarks; the checkpoint lets tools/reference_timing.py run the
reference's algorithm on exactly the same weights."""
import argparse
import os
import sys

import numpy as np
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import convert  # noqa: E402


def random_tensors(plan, seed):
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in convert.expected_tensors(plan).items():
        shape = tuple(int(s) for s in shape)
        if name.endswith("norm1.weight") or name.endswith("norm2.weight") or \
                name.endswith("norm.weight") or name.endswith("norm_out.weight") or \
                ".ln" in name and name.endswith(".weight"):
            a = 1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)
        elif len(shape) == 1:
            a = 0.02 * rng.standard_normal(shape, dtype=np.float32)
        elif name.endswith("pos_emb") or name.endswith("tok_emb.weight") or \
                name.endswith("embedding.weight"):
            a = rng.standard_normal(shape, dtype=np.float32) * (0.5 if "emb" in name else 1.0)
        else:
            fan_in = int(np.prod(shape[1:]))
            a = rng.standard_normal(shape, dtype=np.float32) / np.float32(np.sqrt(fan_in))
        out[name] = a.astype(np.float32)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config")
    ap.add_argument("out")
    ap.add_argument("--ckpt", help="also write a Lightning-style checkpoint")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--dtype", default="f32", choices=("f32", "f16", "bf16"))
    a = ap.parse_args()
    with open(a.config, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    plan = convert.build_plan(config)
    tensors = random_tensors(plan, a.seed)
    w = convert.build_writer(plan, tensors, a.dtype, os.path.basename(a.out))
    w.write(a.out)
    if a.ckpt:
        import torch
        sd = {k: torch.from_numpy(v) for k, v in tensors.items()}
        torch.save({"state_dict": sd, "epoch": 0, "global_step": 0}, a.ckpt)
    print("%s: %d tensors, %.1f M parameters" % (a.out, len(tensors),
                                                 sum(v.size for v in tensors.values()) / 1e6))


if __name__ == "__main__":
    main()
