#!/usr/bin/env python3
"""Quality figures of the trained default model on the held-out photos.

    /usr/bin/python3 tools/eval_quality.py --ckpt build/train --out build/eval

uses the torch checkpoint written by tools/train.py (OUT/model.ckpt, loaded
into the reference modules of train.py) and the photos train.py held out.

    /usr/bin/python3 tools/eval_quality.py --gguf samples/models/default.gguf --out build/eval

takes the weights from a converted model file instead (the shipped default
model: its f16-stored tensors, widened to f32; the condition stage's decoder,
which the file does not hold and inference never uses, stays at its initial
weights).

(a) First-stage reconstruction PSNR at 256x256: the photo's centre square,
    resized to 256x256 (bicubic), encoded, quantised and decoded; PSNR of the
    8-bit result against the 8-bit input.

(b) Label fidelity of synthesis.  The held-out segmentation map (same crop,
    nearest-neighbour resize) is encoded by the condition stage and image
    tokens are sampled with the reference's sliding-window schedule
    (golden/README.md; at 256x256 the 16x16 token grid is exactly one
    transformer window, so the schedule reduces to plain autoregressive
    sampling, done here with a key/value cache), then decoded.  Every 16x16
    patch lying entirely inside one class of the map is described by the mean
    and standard deviation of its R, G and B values; it is classified by the
    nearest class centroid (features standardised), the centroids being
    learned from the *training* photos, choosing only among the classes
    present in that map.  Accuracy (share of patches) and balanced accuracy
    (mean per-class recall, so a constant answer cannot score above 1/K) are
    reported for
        real        the held-out photo itself (what a perfect model reaches)
        recon       its first-stage reconstruction
        synth       images synthesised from the map (top-k and greedy)
        shuffled    synthesised images scored against a *different* held-out
                    map: what a label-blind generator of plausible landscapes
                    would get
        noise       uniform noise
        chance      expected score of a random guess among the map's classes
    A noise image gives every patch the same statistics, so it lands on one
    class (balanced accuracy 1/K); a label-blind model only scores what the
    typical layout of landscapes gives away (the shuffled row).

Side-by-side PNGs (labels colourised | real | synthesised top-k | synthesised
greedy) go to --out, as do the same figures in results.txt; also, per held-out
photo, NAME_synth.png (labels colourised | real | synthesised top-k) and
NAME_recon.png (real | first-stage reconstruction), the pictures of
samples/quality/.
"""
import argparse
import math
import os
import sys
import time

# OpenMP threads that spin while waiting collapse to a crawl when other jobs
# share the cores (measured here: ~10x slower per step); wait passively.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train as T  # noqa: E402
from colorize_labels import colorize  # noqa: E402

SIZE = 256
PATCH = 16


def center_square(img, seg, size=SIZE):
    from PIL import Image
    w, h = img.size
    m = min(w, h)
    box = ((w - m) // 2, (h - m) // 2, (w - m) // 2 + m, (h - m) // 2 + m)
    return (np.asarray(img.crop(box).resize((size, size), Image.BICUBIC)),
            np.asarray(seg.crop(box).resize((size, size), Image.NEAREST)))


def to_x(a):
    return torch.from_numpy(a.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]


def to_u8(x):
    return ((x[0].clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).numpy().astype(np.uint8)


def psnr_u8(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * math.log10(255.0 ** 2 / max(mse, 1e-10))


@torch.no_grad()
def cached_forward(gpt, idx, cache):
    """GPT forward of new tokens idx (B,T) given the keys/values of the earlier
    positions in cache (list per layer, updated in place); same arithmetic as
    train.GPT.forward in eval mode."""
    p0 = 0 if cache[0] is None else cache[0][0].shape[2]
    B, Tn = idx.shape
    x = gpt.tok_emb(idx) + gpt.pos_emb[:, p0:p0 + Tn]
    for li, blk in enumerate(gpt.blocks):
        a = blk.attn
        h = blk.ln1(x)
        C = h.shape[-1]
        nh = a.n_head
        k = a.key(h).view(B, Tn, nh, C // nh).transpose(1, 2)
        q = a.query(h).view(B, Tn, nh, C // nh).transpose(1, 2)
        v = a.value(h).view(B, Tn, nh, C // nh).transpose(1, 2)
        if cache[li] is not None:
            k = torch.cat((cache[li][0], k), 2)
            v = torch.cat((cache[li][1], v), 2)
        cache[li] = (k, v)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(a.mask[:, :, p0:p0 + Tn, :p0 + Tn] == 0, float("-inf"))
        y = (F.softmax(att, dim=-1) @ v).transpose(1, 2).contiguous().view(B, Tn, C)
        x = x + a.proj(y)
        x = x + blk.mlp(blk.ln2(x))
    return gpt.head(gpt.ln_f(x))


@torch.no_grad()
def sample_window(gpt, c_grid, greedy, top_k, temperature, gen):
    """Sampling for a grid of exactly one window (H = W = w): the sliding
    schedule then has li = i, lj = j throughout, i.e. autoregressive sampling
    of the w*w image tokens after the w*w condition tokens."""
    H, W = c_grid.shape
    cache = [None] * len(gpt.blocks)
    logits = cached_forward(gpt, c_grid.reshape(1, -1).long(), cache)[0, -1]
    out = []
    for t in range(H * W):
        lg = logits / temperature
        if greedy:
            tok = int(lg.argmax())
        else:
            if top_k:
                vals, _ = torch.topk(lg, top_k)
                lg = lg.masked_fill(lg < vals[-1], float("-inf"))
            tok = int(torch.multinomial(F.softmax(lg, -1), 1, generator=gen))
        out.append(tok)
        if t + 1 < H * W:
            logits = cached_forward(gpt, torch.tensor([[tok]]), cache)[0, -1]
    return torch.tensor(out).view(H, W)


@torch.no_grad()
def sliding_sample_cached(gpt, c_grid, w, greedy, top_k, temperature, gen):
    """train.sliding_sample (the reference's schedule) computed with less work:
    the logits for window position p depend only on the first n_cond + p
    tokens (causal mask), and those are final when p is visited (raster
    order), so each window keeps a key/value cache of what it has been fed and
    is only fed the tokens it has not seen yet.  Same results."""
    H, W = c_grid.shape
    assert H >= w and W >= w
    z = c_grid.clone().long()
    hw = w // 2
    caches = {}
    for i in range(H):
        li = i if i <= hw else (w - (H - i) if H - i < hw else hw)
        for j in range(W):
            lj = j if j <= hw else (w - (W - j) if W - j < hw else hw)
            i0, j0 = i - li, j - lj
            seq = torch.cat((c_grid[i0:i0 + w, j0:j0 + w].reshape(-1),
                             z[i0:i0 + w, j0:j0 + w].reshape(-1)))
            need = w * w + li * w + lj           # tokens up to the one predicting (li, lj)
            cache, fed, last = caches.get((i0, j0), ([None] * len(gpt.blocks), 0, None))
            if need > fed:
                last = cached_forward(gpt, seq[fed:need][None], cache)[0, -1]
                fed = need
            caches[(i0, j0)] = (cache, fed, last)
            lg = last / temperature
            if greedy:
                z[i, j] = int(lg.argmax())
            else:
                if top_k:
                    vals, _ = torch.topk(lg, top_k)
                    lg = lg.masked_fill(lg < vals[-1], float("-inf"))
                z[i, j] = int(torch.multinomial(F.softmax(lg, -1), 1, generator=gen))
        for key in [k for k in caches if k[0] < i + 1 - w]:  # windows above are done
            del caches[key]
    return z


def synthesize(first, cond, gpt, seg, greedy, top_k, temperature, seed, log=None):
    w = int(round(math.sqrt(gpt.block_size // 2)))
    _, _, (_, ci) = cond.encode_labels(torch.from_numpy(seg.astype(np.int64))[None])
    cg = ci.view(seg.shape[0] // T.FACTOR, seg.shape[1] // T.FACTOR)
    gen = torch.Generator().manual_seed(seed)
    if cg.shape == (w, w):
        z = sample_window(gpt, cg, greedy, top_k, temperature, gen)
    else:
        z = sliding_sample_cached(gpt, cg, w, greedy, top_k, temperature, gen)
    with torch.no_grad():
        return to_u8(first.decode_code(z[None])), z


def load_gguf(path):
    """(first, cond, gpt) torch modules (eval mode) with the weights of a model
    file written by tools/convert.py (tensor names are the reference's
    state_dict names with their stage prefix)."""
    import gguf_writer as G
    g = G.read_gguf(path)
    # f=16 has five encoder levels (down.0..down.4), f=8 four
    T.set_factor(16 if any(ti.name.startswith("first_stage_model.encoder.down.4.") for ti in g.tensors)
                 else 8)
    first, cond, gpt = T.build_models()
    for prefix, m in (("first_stage_model.", first), ("cond_stage_model.", cond),
                      ("transformer.", gpt)):
        sd = m.state_dict()
        sub = {}
        for ti in g.tensors:
            if not ti.name.startswith(prefix):
                continue
            k = ti.name[len(prefix):]
            if k not in sd or tuple(sd[k].shape) != tuple(ti.shape):
                raise SystemExit("%s: tensor %s does not fit the model train.py builds" % (path, ti.name))
            sub[k] = torch.from_numpy(g.tensor(ti.name).astype(np.float32).copy())
        missing = [k for k in sd if k not in sub]
        # Not in model files: the attention masks (buffers made by the
        # constructor), the condition stage's decoder and colorize (unused).
        allowed = (lambda k: k.endswith("attn.mask")) if prefix == "transformer." else \
                  (lambda k: k.startswith(("decoder.", "post_quant_conv.")) or k == "colorize") \
                  if prefix == "cond_stage_model." else (lambda k: False)
        bad = [k for k in missing if not allowed(k)]
        if bad:
            raise SystemExit("%s lacks %s%s" % (path, prefix, bad[0]))
        m.load_state_dict(sub, strict=False)
        m.eval()
    return first, cond, gpt


def patch_features(img, seg, patch=PATCH):
    """(features (N,6), labels (N,)) of the patches lying inside one class."""
    feats, labs = [], []
    H, W = seg.shape
    for y in range(0, H - patch + 1, patch):
        for x in range(0, W - patch + 1, patch):
            s = seg[y:y + patch, x:x + patch]
            if (s == s.flat[0]).all():
                p = img[y:y + patch, x:x + patch].reshape(-1, 3).astype(np.float64)
                feats.append(np.concatenate([p.mean(0), p.std(0)]))
                labs.append(int(s.flat[0]))
    return np.array(feats).reshape(-1, 6), np.array(labs, dtype=np.int64)


class Centroids:
    def __init__(self, pairs):
        F_, L_ = zip(*[patch_features(i, s) for i, s in pairs])
        F_, L_ = np.concatenate(F_), np.concatenate(L_)
        self.scale = F_.std(0) + 1e-6
        self.c = {int(k): (F_[L_ == k] / self.scale).mean(0) for k in np.unique(L_)}

    def score(self, img, seg):
        """(correct flags, true labels, n_candidates) for the pure patches of seg
        whose class has a centroid."""
        f, l = patch_features(img, seg)
        keep = np.array([k in self.c for k in l], dtype=bool)
        f, l = f[keep], l[keep]
        cands = sorted(set(l.tolist()))
        if not cands:
            return np.zeros(0, bool), l, 0
        C = np.stack([self.c[k] for k in cands])
        d = (((f / self.scale)[:, None, :] - C[None]) ** 2).sum(-1)
        pred = np.array(cands)[d.argmin(1)]
        return pred == l, l, len(cands)


def summarize(results):
    """results: list of (correct, labels, K) -> accuracy, balanced accuracy, chance."""
    corr = np.concatenate([r[0] for r in results])
    labs = np.concatenate([r[1] for r in results])
    acc = corr.mean() if len(corr) else float("nan")
    bal = np.mean([corr[labs == k].mean() for k in np.unique(labs)])
    chance = np.mean(np.concatenate([np.full(len(r[1]), 1.0 / max(r[2], 1)) for r in results]))
    return acc, bal, chance, len(corr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default=os.path.join(T.ROOT, "build", "train"),
                    help="folder with config.yaml + model.ckpt from train.py")
    ap.add_argument("--gguf", help="take the weights from this model file (tools/convert.py "
                    "output, e.g. samples/models/default.gguf) instead of --ckpt")
    ap.add_argument("--data", default=T.DEFAULT_DATA)
    ap.add_argument("--out", default=os.path.join(T.ROOT, "build", "eval"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--top-k", type=int, default=32)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--wide", type=int, default=1,
                    help="also synthesise this many held-out maps at 512 pixels wide "
                         "(sliding window over a 32-token-wide grid), pictures only")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--demo-png", default=os.path.join(T.ROOT, "samples", "demo.png"),
                    help="demo picture whose synthesised panels get the artefact measure")
    ap.add_argument("--frames", nargs="*", default=[],
                    help="more pictures (e.g. every frame of build/demo.mp4) for the artefact measure")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    from PIL import Image
    lines = []

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    t0 = time.time()
    if a.gguf:
        first, cond, gpt = load_gguf(a.gguf)
    else:
        first, cond, gpt = T.load_trained(a.ckpt)
    train_names, val_names = T.list_photos(a.data)
    say("%s %s; held-out photos: %s" % ("model file" if a.gguf else "checkpoint",
                                        a.gguf or a.ckpt, ", ".join(val_names)))

    def prep(name):
        return center_square(*T.load_photo(a.data, name))

    train_pairs = [prep(n) for n in train_names]
    val_pairs = [prep(n) for n in val_names]

    # (a) reconstruction PSNR
    say("\n(a) first-stage reconstruction PSNR at %dx%d (8-bit)" % (SIZE, SIZE))
    recons = []
    with torch.no_grad():
        for n, (img, _) in zip(val_names, val_pairs):
            r = to_u8(first(to_x(img))[0])
            recons.append(r)
            Image.fromarray(np.concatenate([img, r], 1)).save(os.path.join(a.out, "%s_recon.png" % n))
            say("  %-40s %.2f dB" % (n, psnr_u8(img, r)))
        vp = np.mean([psnr_u8(i, r) for (i, _), r in zip(val_pairs, recons)])
        tp = np.mean([psnr_u8(i, to_u8(first(to_x(i))[0])) for i, _ in train_pairs])
    say("  held-out mean %.2f dB   (training photos, same crop: %.2f dB)" % (vp, tp))

    # (b) synthesis
    say("\n(b) synthesis from held-out maps at %dx%d: top-k %d (T=%.1f, seed %d) and greedy"
        % (SIZE, SIZE, a.top_k, a.temperature, a.seed))
    synth_k, synth_g = [], []
    for i, (n, (img, seg)) in enumerate(zip(val_names, val_pairs)):
        ts = time.time()
        sk, _ = synthesize(first, cond, gpt, seg, False, a.top_k, a.temperature, a.seed + i)
        sg, _ = synthesize(first, cond, gpt, seg, True, None, 1.0, a.seed + i)
        synth_k.append(sk)
        synth_g.append(sg)
        row = np.concatenate([colorize(seg), img, sk, sg], 1)
        Image.fromarray(row).save(os.path.join(a.out, "%s.png" % n))
        Image.fromarray(row[:, :3 * SIZE]).save(os.path.join(a.out, "%s_synth.png" % n))
        say("  %-40s sampled in %.0fs -> %s.png" % (n, time.time() - ts, n))

    cent = Centroids(train_pairs)
    rng = np.random.RandomState(a.seed)
    noise = [rng.randint(0, 256, size=(SIZE, SIZE, 3)).astype(np.uint8) for _ in val_pairs]
    nv = len(val_pairs)
    rows = [
        ("real photo", [cent.score(img, seg) for img, seg in val_pairs]),
        ("first-stage reconstruction", [cent.score(r, seg) for r, (_, seg) in zip(recons, val_pairs)]),
        ("synthesised, top-k", [cent.score(s, seg) for s, (_, seg) in zip(synth_k, val_pairs)]),
        ("synthesised, greedy", [cent.score(s, seg) for s, (_, seg) in zip(synth_g, val_pairs)]),
        ("shuffled maps (label-blind)", [cent.score(synth_k[(j + 1) % nv], val_pairs[j][1])
                                         for j in range(nv)]),
        ("uniform noise", [cent.score(z, seg) for z, (_, seg) in zip(noise, val_pairs)]),
    ]
    say("\n    label fidelity: nearest class centroid (mean+std RGB of %dx%d single-class patches;"
        % (PATCH, PATCH))
    say("    centroids from the %d training photos; candidates = classes in the map)" % len(train_pairs))
    say("  %-30s %9s %9s %8s" % ("image", "accuracy", "balanced", "patches"))
    for name, res in rows:
        acc, bal, chance, npch = summarize(res)
        say("  %-30s %8.1f%% %8.1f%% %8d" % (name, 100 * acc, 100 * bal, npch))
    say("  %-30s %8.1f%% %8s" % ("chance", 100 * summarize(rows[0][1])[2], ""))
    say("  per photo (accuracy real / synth top-k / synth greedy / noise):")
    for j, n in enumerate(val_names):
        say("    %-40s %5.1f%% %5.1f%% %5.1f%% %5.1f%%" % (
            n, *[100 * rows[r][1][j][0].mean() for r in (0, 2, 3, 5)]))

    # wide frames: the sliding window at work
    wide_pics = []
    for j in range(min(a.wide, nv)):
        n = val_names[j]
        img0, seg0 = T.load_photo(a.data, n)
        img, seg = T.rescale(img0, seg0, 512 / img0.size[0])
        H = img.size[1] // T.FACTOR * T.FACTOR
        img = np.asarray(img)[:H, :512]
        seg = np.asarray(seg)[:H, :512]
        ts = time.time()
        sk, z = synthesize(first, cond, gpt, seg, False, a.top_k, a.temperature, a.seed + 100 + j)
        Image.fromarray(np.concatenate([colorize(seg), img, sk], 1)).save(
            os.path.join(a.out, "%s_wide.png" % n))
        wide_pics.append(("wide synthesis %dx%d" % (512, H), [sk]))
        acc = cent.score(sk, seg)[0].mean()
        say("\n  wide %s: %dx%d, token grid %dx%d (window %d), sampled in %.0fs, patch accuracy %.1f%% (real %.1f%%) -> %s_wide.png"
            % (n, 512, H, z.shape[1], z.shape[0], int(round(math.sqrt(gpt.block_size // 2))),
               time.time() - ts, 100 * acc, 100 * cent.score(img, seg)[0].mean(), n))
    # (c) artefacts: isolated specks (tools/artifacts.py)
    import artifacts as AR
    say("\n(c) artefacts: isolated specks per megapixel (tools/artifacts.py: centre-surround "
        ">= %.0f levels and >= %.0fx the local texture)" % (AR.CONTRAST, AR.TEXTURE))
    real_all = [img for img, _ in train_pairs + val_pairs]
    real_rate, _ = AR.pooled_rate(real_all)
    say("  %-44s %8.1f   (%d photos, 256x256)" % ("real photos (all of sflckr)", real_rate, len(real_all)))
    groups = [("held-out reconstructions", recons), ("held-out syntheses, top-k", synth_k),
              ("held-out syntheses, greedy", synth_g)] + wide_pics
    if a.demo_png and os.path.exists(a.demo_png):
        groups.append(("demo frames (%s)" % os.path.basename(a.demo_png), AR.demo_panels(a.demo_png)))
    if a.frames:
        groups.append(("%d given frames" % len(a.frames),
                       [np.asarray(Image.open(p_).convert("RGB")) for p_ in a.frames]))
    for name, pics in groups:
        r, n_ = AR.pooled_rate(pics)
        say("  %-44s %8.1f   (%d specks; %.2fx real)" % (name, r, n_, r / max(real_rate, 1e-9)))
    say("\ntotal %.0fs" % (time.time() - t0))
    with open(os.path.join(a.out, "results.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
