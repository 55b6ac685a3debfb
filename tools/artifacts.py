#!/usr/bin/env python3
"""The artefact measure of the default model's pictures: isolated specks.

A *speck* is a small spot that stands out from a calm surrounding: the dark
dots with a white highlight that a weak first-stage decoder leaves along
region borders, or a blot in an otherwise smooth sky.  On the luminance
Y = 0.299 R + 0.587 G + 0.114 B (0..255) of an 8-bit RGB picture:

  c(p)     = |mean of Y over the 3x3 square at p - mean of Y over the border
             of the 5x5 square at p|   (a centre-surround response)
  speck    c(p) >= CONTRAST (40 levels), c(p) is the largest c within radius
           3 (one centre per spot), and c(p) >= TEXTURE (8) x the median of c
           over the 15x15 square around p (sampled every 2nd pixel): the spot
           stands out from the local texture, so foliage, rock and water,
           where every pixel responds, do not count; a row of dots on a
           blurred background does (the median sees the background).

The rate is specks per megapixel (pixels within 3 of the border are not
centres).  Real photos have some (a bird in the sky, a boat on the sea, a
sunlit stone); tools/eval_quality.py compares a model's pictures with the
real photos' rate.

    /usr/bin/python3 tools/artifacts.py PICTURE.png ...   # rate per picture

prints each picture's count and rate.  Needs only numpy and PIL.

    /usr/bin/python3 tools/artifacts.py --diagnose MODEL.gguf|TRAIN_DIR [DATA]

looks for the causes (see diagnose(); needs torch).
"""
import sys

import numpy as np

CONTRAST = 40.0   # |centre - surround| in 8-bit luminance levels
TEXTURE = 8.0     # ... and at least this many times the local texture level
CENTRE = 1        # radius of the centre's box (3x3)
SURROUND = 2      # Chebyshev radius of the surround ring (the 5x5 square's border)
PEAK = 3          # a centre is the largest response within this radius
LOCAL = 7         # radius of the square over which the texture level is the median


def luminance(rgb):
    a = np.asarray(rgb, dtype=np.float32)
    if a.ndim == 2:
        return a
    return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114


def _shifts(a, r, step=1):
    """Every (dy, dx) shift of a (edge-replicated) within the square of radius r
    (every step-th row and column of it), stacked: shape (n, H, W)."""
    H, W = a.shape
    p = np.pad(a, r, mode="edge")
    return np.stack([p[r + dy:r + dy + H, r + dx:r + dx + W]
                     for dy in range(-r, r + 1, step) for dx in range(-r, r + 1, step)])


def _ring(a, r):
    H, W = a.shape
    p = np.pad(a, r, mode="edge")
    return np.stack([p[r + dy:r + dy + H, r + dx:r + dx + W]
                     for dy in range(-r, r + 1) for dx in range(-r, r + 1)
                     if max(abs(dy), abs(dx)) == r])


def speck_map(rgb):
    """(boolean map of speck centres, centre-surround response |c|)."""
    y = luminance(rgb)
    c = np.abs(_shifts(y, CENTRE).mean(0) - _ring(y, SURROUND).mean(0))
    peak = c >= _shifts(c, PEAK).max(0)
    texture = np.median(_shifts(c, LOCAL, 2), axis=0)
    m = (c >= CONTRAST) & peak & (c >= TEXTURE * texture)
    b = SURROUND + CENTRE
    m[:b, :] = m[-b:, :] = False
    m[:, :b] = m[:, -b:] = False
    return m, c


def speck_rate(rgb):
    """(count, specks per megapixel, (ys, xs) of the centres)."""
    m, _ = speck_map(rgb)
    ys, xs = np.nonzero(m)
    n = len(ys)
    return n, n / (m.size / 1e6), (ys, xs)


def demo_panels(path):
    """The synthesised pictures of a demo picture (tools/make_demo_picture.py:
    rows of labels | white gap | synthesis, separated by white gaps)."""
    from PIL import Image
    a = np.asarray(Image.open(path).convert("RGB"))
    white = (a == 255).all(-1)
    cols = np.nonzero(white.all(0))[0]
    x0 = int(cols.max()) + 1 if len(cols) else 0
    rows = white[:, x0:].all(1)
    out, y = [], 0
    while y < a.shape[0]:
        if rows[y]:
            y += 1
            continue
        y1 = y
        while y1 < a.shape[0] and not rows[y1]:
            y1 += 1
        out.append(a[y:y1, x0:])
        y = y1
    return out


def pooled_rate(pictures):
    """Specks per megapixel over a set of pictures (their pixels pooled)."""
    n = sum(speck_rate(p)[0] for p in pictures)
    px = sum(np.asarray(p).shape[0] * np.asarray(p).shape[1] for p in pictures)
    return n / (px / 1e6), n


def main():
    from PIL import Image
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    if sys.argv[1] == "--diagnose":
        import os
        here = os.path.dirname(os.path.abspath(__file__))
        diagnose(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else
                 os.path.join(here, "..", "..", "shared", "data", "sflckr"))
        return
    for path in sys.argv[1:]:
        img = np.asarray(Image.open(path).convert("RGB"))
        n, rate, _ = speck_rate(img)
        print("%-60s %5d specks  %8.1f per Mpx  (%dx%d)" % (path, n, rate, img.shape[1], img.shape[0]))


# ----------------------------------------------------------------------------
# diagnosis of a model's artefacts (needs torch; tools/train.py's modules)
# ----------------------------------------------------------------------------
def diagnose(model_path, data, out=None):
    """Where a model's specks come from.  Prints:
    (1) the decoder alone: every code decoded as a uniform 16x16 grid; a
        speck that appears at the same place in most of them is learnt by the
        decoder at a fixed position (it cannot come from the tokens, which are
        all equal); the same on a 24x24 grid tells whether that place is
        anchored to the frame's top-left corner (zero padding) or to the
        middle;
    (2) reconstructions of the photos: the specks' positions;
    (3) the codes at the specks of syntheses against the codes' frequency in
        the encoded training photos (rare codes = codes the decoder saw little
        of)."""
    import os
    import torch
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import eval_quality as E
    import train as T
    first, cond, gpt = E.load_gguf(model_path) if model_path.endswith(".gguf") else T.load_trained(model_path)
    f = T.FACTOR
    n_e = first.quantize.embedding.weight.shape[0]
    side = 256 // f

    def decode(grid):
        with torch.no_grad():
            return E.to_u8(first.decode_code(grid[None]))

    heat = np.zeros((256, 256))
    per_code = []
    for c in range(n_e):
        m, _ = speck_map(decode(torch.full((side, side), c, dtype=torch.long)))
        heat += m
        per_code.append(int(m.sum()))
    # positions (blurred to 5x5 cells) where a speck shows in many uniform decodes
    hb = _shifts(heat, 2).max(0)
    ys, xs = np.unravel_index(np.argsort(hb.ravel())[::-1], hb.shape)
    print("(1) decoder alone: %d codes decoded as uniform %dx%d grids (256x256 px)" % (n_e, side, side))
    print("    specks per uniform decode: mean %.2f, max %d (code %d); decodes without any: %d"
          % (np.mean(per_code), max(per_code), int(np.argmax(per_code)), per_code.count(0)))
    shown = []
    for y, x in zip(ys, xs):
        if hb[y, x] < 0.2 * n_e or len(shown) >= 3:
            break
        if any(abs(y - a) < 12 and abs(x - b) < 12 for a, b in shown):
            continue
        shown.append((y, x))
        print("    fixed-place speck at x=%d y=%d (token cell %d,%d): in %d of %d uniform decodes"
              % (x, y, x // f, y // f, int(hb[y, x]), n_e))
    if shown:
        big = 24 * 16 // f
        heat2 = np.zeros((big * f, big * f))
        for c in range(0, n_e, max(1, n_e // 32)):
            heat2 += speck_map(decode(torch.full((big, big), c, dtype=torch.long)))[0]
        hb2 = _shifts(heat2, 2).max(0)
        n2 = len(range(0, n_e, max(1, n_e // 32)))
        for y, x in shown:
            print("    on a %dx%d grid (%d codes): at the same x,y from the top-left: %d; "
                  "mirrored from the bottom-right: %d"
                  % (big, big, n2, int(hb2[y, x]), int(hb2[big * f - 1 - y, big * f - 1 - x])))
    # (2) reconstructions
    names = sorted(n[:-4] for n in os.listdir(os.path.join(data, "images")) if n.endswith(".jpg"))
    pos = np.zeros((256, 256))
    rates_real, rates_rec = [], []
    enc_counts = np.zeros(n_e)
    for n in names:
        img, seg = E.center_square(*T.load_photo(data, n))
        with torch.no_grad():
            xr, _, (_, idx) = first(E.to_x(img))
        r = E.to_u8(xr)
        enc_counts += np.bincount(idx.numpy().ravel(), minlength=n_e)
        m, _ = speck_map(r)
        pos += m
        rates_real.append(speck_rate(img)[1])
        rates_rec.append(speck_rate(r)[1])
    pb = _shifts(pos, 2).max(0)
    print("(2) reconstructions of %d photos (256x256): %.0f specks/Mpx (the photos: %.0f)"
          % (len(names), np.mean(rates_rec), np.mean(rates_real)))
    for y, x in shown:
        print("    at the decoder's fixed place x=%d y=%d: a speck in %d of %d reconstructions"
              % (x, y, int(pb[y, x]), len(names)))
    # (3) codes under the specks of syntheses
    freq = enc_counts / enc_counts.sum()
    rank = np.argsort(np.argsort(-freq))      # 0 = most used
    at_speck, at_all = [], []
    for i, n in enumerate(names[:8]):
        img, seg = E.center_square(*T.load_photo(data, n))
        s, z = E.synthesize(first, cond, gpt, seg, False, 32, 1.0, 1 + i)
        _, _, (ys_, xs_) = speck_rate(s)
        zz = z.numpy()
        at_speck += [int(zz[y // f, x // f]) for y, x in zip(ys_, xs_)]
        at_all += list(zz.ravel())
    if at_speck:
        fs = freq[at_speck]
        fa = freq[at_all]
        print("(3) top-k syntheses of %d maps: %d specks; the code of a speck's cell has training "
              "frequency median %.4f (all sampled cells: %.4f); %.0f%% of speck cells hold a code "
              "outside the %d most used (all sampled cells: %.0f%%); codes never used by the "
              "encoder on these photos: %d of %d"
              % (8, len(at_speck), np.median(fs), np.median(fa),
                 100 * np.mean(rank[at_speck] >= n_e // 4), n_e // 4,
                 100 * np.mean(rank[at_all] >= n_e // 4), int((enc_counts == 0).sum()), n_e))
        top = np.bincount(at_speck, minlength=n_e)
        order = np.argsort(-top)[:8]
        print("    codes most often under specks: " + ", ".join(
            "%d (%d specks, training freq %.4f, uniform-decode specks %d)" % (c, top[c], freq[c], per_code[c])
            for c in order if top[c]))


if __name__ == "__main__":
    main()
