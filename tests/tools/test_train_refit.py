#!/usr/bin/python3
"""Tests for tools/train.py's decoder refit (stage 4, --dec-steps).

On a small f=8 first stage at its seeded initial weights and a few steps of
tiny crops of ../shared/data/sflckr:
  - the refit changes the decoder and post_quant_conv, and nothing else:
    encoder, quant_conv and codebook stay bit-identical, so every token of a
    picture is the same before and after (the condition stage and the
    transformer trained on those tokens stay valid);
  - it is resumable: stopped after step 2 (--stop-after) and continued with
    --resume, it ends with the same decoder, bit for bit, as an uninterrupted
    run, and leaves no partial checkpoint behind.

Prints one line per check, ``ok - ...`` or ``not ok - ...``; exit status 1
if any check failed. Run with /usr/bin/python3 (needs torch, numpy, PIL).
"""

import argparse
import os
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import train as T  # noqa: E402

failures = 0


def check(name, cond):
    global failures
    print(("ok - " if cond else "not ok - ") + name, flush=True)
    if not cond:
        failures += 1


def args_for(out, **kw):
    a = dict(out=out, seed=23, extra_data=[], ckpt_every=1, resume=False, stop_after=0,
             log_every=100, fs_batch=2, dec_steps=4, dec_lr=1e-3, dec_crop=32, dec_l1=0.5,
             dec_perceptual=0.2,
             # the first stage's schedule: part of the refit's resume signature
             fs_steps=10, fs_stop=0, fs_crop=32, fs_crop_late=32, fs_late=0.5, fs_lr=3e-4,
             disc_start=0.5, disc_weight=0.8, disc_ndf=8, perceptual_weight=1.0,
             codebook_weight=1.0)
    a.update(kw)
    return argparse.Namespace(**a)


def fresh_model():
    torch.manual_seed(5)
    return T.VQModel(**T.FIRST_STAGE)


def state(m, prefixes):
    return {k: v.clone() for k, v in m.state_dict().items() if k.startswith(prefixes)}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def main():
    torch.set_num_threads(1)
    T.set_factor(8)
    data = T.DEFAULT_DATA
    if not os.path.isdir(data):
        check("the S-FLCKR photos are at %s" % data, False)
        return 1
    train_names, val_names = T.list_photos(data)
    train_names = train_names[:3]
    frozen = ("encoder.", "quant_conv.", "quantize.")
    refit = ("decoder.", "post_quant_conv.")
    x = torch.linspace(-1, 1, 3 * 64 * 64).reshape(1, 3, 64, 64).sin()
    with tempfile.TemporaryDirectory() as tmp:
        log = T.Log(os.path.join(tmp, "train.log"))
        m = fresh_model().eval()
        before_frozen, before_refit = state(m, frozen), state(m, refit)
        with torch.no_grad():
            tok_before = m.encode(x)[2][1].clone()
        a = args_for(os.path.join(tmp, "whole"))
        os.makedirs(a.out)
        T.refit_decoder(a, m, data, train_names, val_names, log)
        with torch.no_grad():
            tok_after = m.encode(x)[2][1]
        check("refit: encoder, quant_conv and codebook bit-identical", same(before_frozen, state(m, frozen)))
        check("refit: every token of a picture unchanged (%d tokens)" % tok_before.numel(),
              torch.equal(tok_before, tok_after))
        moved = [k for k in before_refit if not torch.equal(before_refit[k], state(m, refit)[k])]
        check("refit: the decoder and post_quant_conv were trained (%d of %d tensors changed)"
              % (len(moved), len(before_refit)), len(moved) > len(before_refit) // 2)
        check("refit: every parameter trainable again afterwards",
              all(p.requires_grad for p in m.parameters()))
        check("refit: no partial checkpoint left", not os.path.exists(os.path.join(a.out, "stage4.partial.pt")))
        whole = state(m, refit)

        # stopped after step 2, then resumed
        m2 = fresh_model().eval()
        b = args_for(os.path.join(tmp, "split"), stop_after=2)
        os.makedirs(b.out)
        code = None
        try:
            T.refit_decoder(b, m2, data, train_names, val_names, log)
        except SystemExit as e:
            code = e.code
        check("--stop-after 2: stops with status 3 and a checkpoint",
              code == 3 and os.path.exists(os.path.join(b.out, "stage4.partial.pt")))
        m3 = fresh_model().eval()
        T.refit_decoder(args_for(b.out, resume=True), m3, data, train_names, val_names, log)
        check("--resume: the same decoder as an uninterrupted refit, bit for bit", same(whole, state(m3, refit)))
        check("--resume: no partial checkpoint left", not os.path.exists(os.path.join(b.out, "stage4.partial.pt")))
        # another refit schedule does not resume from this one's checkpoint
        m4 = fresh_model().eval()
        c = args_for(os.path.join(tmp, "other"), stop_after=2)
        os.makedirs(c.out)
        try:
            T.refit_decoder(c, m4, data, train_names, val_names, log)
        except SystemExit:
            pass
        msg = ""
        try:
            T.refit_decoder(args_for(c.out, resume=True, dec_lr=5e-4), fresh_model().eval(), data,
                            train_names, val_names, log)
        except SystemExit as e:
            msg = str(e.code)
        check("--resume with another --dec-lr: refused, naming the checkpoint", "stage4.partial.pt" in msg)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
