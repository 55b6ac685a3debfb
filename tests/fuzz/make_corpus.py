#!/usr/bin/python3
"""Write the seed corpus of the model-loader fuzzer (tests/fuzz/corpus/).

usage: make_corpus.py OUTDIR

Tiny but valid model files of every kind (a first stage alone, the
transformer alone, segmentation-conditional, class-conditional and
unconditional pipelines, in f32, f16 and bf16), made with
tools/make_random_model.py from the configs below, plus the hand-broken
variants of the transformer-only file from tests/robustness/make_broken_models.py.
Everything stays small (about 1 MB in all) so that the fuzzer runs fast.
The files are checked in; run this again only when the format changes.
"""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
PY = sys.executable or "/usr/bin/python3"


def dd(in_channels, out_ch, z=4):
    return {"double_z": False, "z_channels": z, "resolution": 8,
            "in_channels": in_channels, "out_ch": out_ch, "ch": 32,
            "ch_mult": [1], "num_res_blocks": 1, "attn_resolutions": [],
            "dropout": 0.0}


def vq(embed=4, n=8):
    return {"target": "taming.models.vqgan.VQModel",
            "params": {"embed_dim": embed, "n_embed": n, "ddconfig": dd(3, 3),
                       "lossconfig": {"target": "taming.modules.losses.DummyLoss"}}}


def gpt(vocab=8, block=8, layers=1, heads=2, embd=4):
    return {"target": "taming.modules.transformer.mingpt.GPT",
            "params": {"vocab_size": vocab, "block_size": block,
                       "n_layer": layers, "n_head": heads, "n_embd": embd}}


def n2n(cond, block, **extra):
    p = {"transformer_config": gpt(block=block), "first_stage_config": vq(),
         "cond_stage_config": cond}
    p.update(extra)
    return {"model": {"target": "taming.models.cond_transformer.Net2NetTransformer",
                      "params": p}}


SEG = {"target": "taming.models.vqgan.VQSegmentationModel",
       "params": {"embed_dim": 4, "n_embed": 8, "n_labels": 2, "image_key": "segmentation",
                  "ddconfig": dd(2, 2),
                  "lossconfig": {"target": "taming.modules.losses.DummyLoss"}}}

MODELS = [
    ("tiny_vqgan_f16.gguf", {"model": vq()}, "f16"),
    ("tiny_gpt_f32.gguf", {"model": gpt()}, "f32"),
    ("tiny_gpt_bf16.gguf", {"model": gpt(vocab=6, block=5, heads=1)}, "bf16"),
    ("tiny_seg_cond_bf16.gguf", n2n(SEG, 8), "bf16"),
    ("tiny_classcond_f16.gguf",
     n2n({"target": "taming.modules.util.Labelator", "params": {"n_classes": 4}}, 5), "f16"),
    ("tiny_uncond_f16.gguf", n2n("__is_unconditional__", 5, sos_token=3), "f16"),
]



def main(argv):
    import yaml
    if len(argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    out = argv[1]
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp()
    try:
        for name, cfg, dtype in MODELS:
            y = os.path.join(tmp, name + ".yaml")
            with open(y, "w") as f:
                yaml.safe_dump(cfg, f)
            subprocess.check_call([PY, os.path.join(ROOT, "tools", "make_random_model.py"),
                                   y, os.path.join(out, name), "--dtype", dtype, "--seed", "7"])
        bdir = os.path.join(tmp, "broken")
        subprocess.check_call([PY, os.path.join(ROOT, "tests", "make_broken_models.py"),
                               os.path.join(out, "tiny_gpt_f32.gguf"), bdir],
                              stdout=subprocess.DEVNULL)
        for fn in sorted(os.listdir(bdir)):
            if fn.endswith(".gguf") and fn != "valid.gguf":
                shutil.copy(os.path.join(bdir, fn), os.path.join(out, "broken_gpt_" + fn))
    finally:
        shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
