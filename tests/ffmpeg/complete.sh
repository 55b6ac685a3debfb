#!/bin/sh
# vqgan_synth=complete (completion / inpainting): a picture's tokens kept
# outside a mask, the rest sampled. Against the reference's golden case
# (../shared/golden/complete: greedy, blend=none), and the promises of
# docs/filters.md: an empty mask gives the picture's reconstruction (or the
# picture itself with blend=mask), a full mask plain synthesis, complete=alpha
# complete=mask, blend=mask the input's pixels outside the mask, mask_grow a
# grown mask, temporal=reuse the frames of off; and the errors.
. "$(dirname "$0")/testlib"

CPL=$(model complete)
SEG=$(model segmentation)
CLS=$(model classcond)
C=$GOLDEN/complete
RAW16="-f rawvideo -pix_fmt gray16le"
RGB="-f rawvideo -pix_fmt rgb24"
GRAPH="[0][1][2]vqgan_synth=model=$CPL:complete=1"

# The inputs the tests make: masks (empty, full, wrong size, rgb, the golden
# one grown by a cell), the picture with its mask as alpha, a 3-frame clip
# whose picture changes only below every sampled cell's window.
"$PYTHON" - "$C" "$TMP" <<'PY' || notok "making the test inputs"
import sys
import numpy as np
from PIL import Image
c, tmp = sys.argv[1:3]
pic = np.array(Image.open(c + "/picture.png").convert("RGB"))
mask = np.array(Image.open(c + "/mask.png"))
h, w = mask.shape
Image.fromarray(np.zeros((h, w), np.uint8)).save(tmp + "/empty.png")
Image.fromarray(np.full((h, w), 255, np.uint8)).save(tmp + "/full.png")
Image.fromarray(np.zeros((h - 8, w), np.uint8)).save(tmp + "/small.png")
Image.fromarray(np.stack([mask] * 3, -1)).save(tmp + "/mask-rgb.png")
Image.fromarray(np.dstack([pic, mask])).save(tmp + "/picture-alpha.png")
# The golden cell mask grown by one cell (Chebyshev), drawn as whole cells.
cells = np.load(c + "/cell_mask.npy").astype(bool)
g = np.zeros_like(cells)
for dy in (-1, 0, 1):
    for dx in (-1, 0, 1):
        g |= np.roll(np.roll(np.pad(cells, 1), dy, 0), dx, 1)[1:-1, 1:-1]
Image.fromarray((np.kron(g, np.ones((8, 8))) * 255).astype(np.uint8)[:h, :w]).save(tmp + "/grown.png")
np.save(tmp + "/grown_cells.npy", g.astype(np.uint8))
# A clip: frame 1 changes the bottom token row (y >= 48) outside the mask,
# frame 2 repeats frame 1.
p1 = pic.copy()
p1[48:] = 255 - p1[48:]
for i, p in enumerate([pic, p1, p1]):
    Image.fromarray(p).save(tmp + "/clip-%d.png" % (i + 1))
PY

"$FFMPEG" -hide_banner -h filter=vqgan_synth >"$TMP/help" 2>&1
for o in complete mask_grow blend feather output; do
    check "-h filter=vqgan_synth lists $o" grep -q "^ *$o " "$TMP/help"
done

# 0. output=tokens without completion: the sampled tokens themselves, which
# mode=decode turns into the picture plain sampling gives.
COND=$(model conditional)
ffcheck "output=tokens: vqgan_synth=top_k=1 on conditional/labels.png gives conditional/indices.npy" \
    "$TMP/cond-tok.raw" "$GOLDEN/conditional/indices.npy" tokens \
    -i "$GOLDEN/conditional/labels.png" -vf "vqgan_synth=model=$COND:top_k=1:output=tokens" $RAW16 "$TMP/cond-tok.raw"
ff -i "$GOLDEN/conditional/labels.png" -vf "vqgan_synth=model=$COND:seed=2:top_k=8:output=tokens,vqgan_synth=model=$COND:mode=decode" \
    -f framemd5 "$TMP/tok-dec"
ff -i "$GOLDEN/conditional/labels.png" -vf "vqgan_synth=model=$COND:seed=2:top_k=8" -f framemd5 "$TMP/tok-plain"
check "output=tokens then mode=decode gives the picture of plain sampling" \
    sh -c "[ -n \"\$(grep -v '^#' '$TMP/tok-plain')\" ] && [ \"\$(grep -v '^#' '$TMP/tok-dec')\" = \"\$(grep -v '^#' '$TMP/tok-plain')\" ]"

# 1. The golden case: greedy completion, blend=none, through ffmpeg.
ffcheck "complete=1:blend=none:top_k=1 on complete/{labels,picture,mask}.png gives complete/image.npy" \
    "$TMP/img.raw" "$C/image.npy" image \
    -i "$C/labels.png" -i "$C/picture.png" -i "$C/mask.png" \
    -filter_complex "$GRAPH:blend=none:top_k=1" $RGB "$TMP/img.raw"
ffcheck "output=tokens: the completed tokens equal complete/indices.npy" \
    "$TMP/tok.raw" "$C/indices.npy" tokens \
    -i "$C/labels.png" -i "$C/picture.png" -i "$C/mask.png" \
    -filter_complex "$GRAPH:top_k=1:output=tokens" $RAW16 "$TMP/tok.raw"
# every output frame carries its statistics (docs/filters.md), completion's and token maps' too
ff -i "$C/labels.png" -i "$C/picture.png" -i "$C/mask.png" \
    -filter_complex "$GRAPH:top_k=1,metadata=mode=print:file=$TMP/meta-cpl.txt" -f null -
ff -i "$C/labels.png" -i "$C/picture.png" -i "$C/mask.png" \
    -filter_complex "$GRAPH:top_k=1:output=tokens,metadata=mode=print:file=$TMP/meta-tok.txt" -f null -
for k in sampled reused shift_x shift_y seconds tokens_per_second; do
    check "complete=1 and output=tokens frames carry lavfi.vqgan.$k" \
        sh -c "grep -q 'lavfi.vqgan.$k=' '$TMP/meta-cpl.txt' && grep -q 'lavfi.vqgan.$k=' '$TMP/meta-tok.txt'"
done
check "output=tokens: kept cells equal complete/picture_indices.npy, the others were sampled" \
    "$PYTHON" -c '
import sys, numpy as np
t = np.fromfile(sys.argv[1], dtype="<u2").reshape(7, 9)
p = np.load(sys.argv[2] + "/picture_indices.npy")[0]
m = np.load(sys.argv[2] + "/cell_mask.npy").astype(bool)
print("# kept %d cells equal: %s; %d of %d sampled cells differ from the picture" %
      ((~m).sum(), (t[~m] == p[~m]).all(), (t[m] != p[m]).sum(), m.sum()))
sys.exit(0 if (t[~m] == p[~m]).all() else 1)' "$TMP/tok.raw" "$C"
ffcheck "vqgan_encode=stage=image on complete/picture.png equals complete/picture_indices.npy" \
    "$TMP/pic-idx.raw" "$C/picture_indices.npy" tokens \
    -i "$C/picture.png" -vf "vqgan_encode=model=$CPL" $RAW16 "$TMP/pic-idx.raw"

# Condition tokens instead of labels give the same completion; a size that
# is not a multiple of the factor is padded and cropped back.
ffcheck "complete=1 on condition tokens (vqgan_encode=stage=cond) gives complete/image.npy" \
    "$TMP/img-ct.raw" "$C/image.npy" image \
    -i "$C/labels.png" -i "$C/picture.png" -i "$C/mask.png" \
    -filter_complex "[0]vqgan_encode=model=$CPL:stage=cond[c];[c][1][2]vqgan_synth=model=$CPL:complete=1:blend=none:top_k=1" \
    $RGB "$TMP/img-ct.raw"
ff -i "$C/labels.png" -i "$C/picture.png" -i "$C/mask.png" \
    -filter_complex "[0]crop=69:50:0:0[l];[1]crop=69:50:0:0[p];[2]crop=69:50:0:0[m];[l][p][m]vqgan_synth=model=$CPL:complete=1:top_k=1" \
    $RGB "$TMP/odd.rgb"
check "69x50 labels, picture and mask give a 69x50 picture, the input's outside the mask" "$PYTHON" -c '
import sys, numpy as np
from PIL import Image
o = np.fromfile(sys.argv[1], np.uint8)
pic = np.array(Image.open(sys.argv[2] + "/picture.png").convert("RGB"))[:50, :69]
m = np.array(Image.open(sys.argv[2] + "/mask.png"))[:50, :69] > 0
sys.exit(0 if o.size == 69 * 50 * 3 and (o.reshape(50, 69, 3)[~m] == pic[~m]).all() else 1)' "$TMP/odd.rgb" "$C"

# 2. An empty mask: the picture's own reconstruction (blend=none), or the
# picture itself (blend=mask: nothing is decoded).
ff -i "$C/labels.png" -i "$C/picture.png" -i "$TMP/empty.png" \
    -filter_complex "$GRAPH:blend=none:seed=3" -f framemd5 "$TMP/empty-none"
ff -i "$C/picture.png" -vf "vqgan_encode=model=$CPL,vqgan_synth=model=$CPL:mode=decode" \
    -f framemd5 "$TMP/recon"
check "empty mask, blend=none: the picture's reconstruction (vqgan_encode,mode=decode)" \
    sh -c "[ -n \"\$(grep -v '^#' '$TMP/recon')\" ] && [ \"\$(grep -v '^#' '$TMP/empty-none' | cut -d, -f5-)\" = \"\$(grep -v '^#' '$TMP/recon' | cut -d, -f5-)\" ]"
ff -i "$C/labels.png" -i "$C/picture.png" -i "$TMP/empty.png" \
    -filter_complex "$GRAPH:seed=3" -f framemd5 "$TMP/empty-mask"
ff -i "$C/picture.png" -vf format=rgb24 -f framemd5 "$TMP/picture"
check "empty mask, blend=mask (the default): the picture itself" \
    sh -c "[ -n \"\$(grep -v '^#' '$TMP/picture')\" ] && [ \"\$(grep -v '^#' '$TMP/empty-mask' | cut -d, -f5-)\" = \"\$(grep -v '^#' '$TMP/picture' | cut -d, -f5-)\" ]"

# 3. A full mask: plain synthesis with the same seed, identical frames.
ff -i "$C/labels.png" -i "$C/picture.png" -i "$TMP/full.png" \
    -filter_complex "$GRAPH:blend=none:seed=5:top_k=8" -f framemd5 "$TMP/full"
ff -i "$C/labels.png" -vf "vqgan_synth=model=$CPL:seed=5:top_k=8" -f framemd5 "$TMP/plain"
check "full mask: identical to plain synthesis with the same seed (segmentation model)" \
    sh -c "[ -n \"\$(grep -v '^#' '$TMP/plain')\" ] && [ \"\$(grep -v '^#' '$TMP/full')\" = \"\$(grep -v '^#' '$TMP/plain')\" ]"
"$PYTHON" -c 'import sys; from PIL import Image
Image.new("RGB", (32, 32), (90, 140, 200)).save(sys.argv[1] + "/p32.png")
Image.new("L", (32, 32), 255).save(sys.argv[1] + "/m32.png")' "$TMP"
ff -f lavfi -i color=s=32x32:d=0.04 -i "$TMP/p32.png" -i "$TMP/m32.png" \
    -filter_complex "[0][1][2]vqgan_synth=model=$CLS:complete=1:blend=none:class=5:seed=2:top_k=4" \
    -f framemd5 "$TMP/cls-full"
ff -f lavfi -i color=s=32x32:d=0.04 -vf "vqgan_synth=model=$CLS:class=5:seed=2:top_k=4" \
    -f framemd5 "$TMP/cls-plain"
check "full mask: identical to plain synthesis with the same seed (class-conditional model)" \
    sh -c "[ -n \"\$(grep -v '^#' '$TMP/cls-plain')\" ] && [ \"\$(grep -v '^#' '$TMP/cls-full')\" = \"\$(grep -v '^#' '$TMP/cls-plain')\" ]"

# 4. complete=alpha: the same as complete=1 with the alpha channel as the mask.
ff -i "$C/labels.png" -i "$C/picture.png" -i "$C/mask.png" \
    -filter_complex "$GRAPH:seed=9:top_k=8:blend=none" -f framemd5 "$TMP/m1"
ff -i "$C/labels.png" -i "$TMP/picture-alpha.png" \
    -filter_complex "[0][1]vqgan_synth=model=$CPL:complete=alpha:seed=9:top_k=8:blend=none" -f framemd5 "$TMP/ma"
check "complete=alpha gives the frames of complete=1 with the same mask" \
    sh -c "[ -n \"\$(grep -v '^#' '$TMP/m1')\" ] && [ \"\$(grep -v '^#' '$TMP/m1')\" = \"\$(grep -v '^#' '$TMP/ma')\" ]"

# 5. blend=mask: outside the pixel mask the input's pixels, inside the
# decoded ones; feather=4: identical beyond 4 pixels, a ramp within.
ff -i "$C/labels.png" -i "$C/picture.png" -i "$C/mask.png" \
    -filter_complex "$GRAPH:seed=9:top_k=8:blend=none" $RGB "$TMP/b-none.rgb"
ff -i "$C/labels.png" -i "$C/picture.png" -i "$C/mask.png" \
    -filter_complex "$GRAPH:seed=9:top_k=8:blend=mask" $RGB "$TMP/b-mask.rgb"
ff -i "$C/labels.png" -i "$C/picture.png" -i "$C/mask.png" \
    -filter_complex "$GRAPH:seed=9:top_k=8:blend=mask:feather=4" $RGB "$TMP/b-feather.rgb"
check "blend=mask: pixels outside the mask identical to the input, inside the decoded frame's; feather=4 beyond 4 pixels too" \
    "$PYTHON" -c '
import sys, numpy as np
from PIL import Image
t, c = sys.argv[1:3]
pic = np.array(Image.open(c + "/picture.png").convert("RGB")).astype(int)
m = np.array(Image.open(c + "/mask.png")) > 0
h, w = m.shape
rd = lambda n: np.fromfile(t + "/" + n, np.uint8).reshape(h, w, 3).astype(int)
none, mask, fe = rd("b-none.rgb"), rd("b-mask.rgb"), rd("b-feather.rgb")
ys, xs = np.nonzero(m)
d = np.sqrt(((np.mgrid[:h, :w][:, :, :, None] - np.stack([ys, xs])[:, None, None, :]) ** 2).sum(0)).min(-1)
ok = [(mask[~m] == pic[~m]).all(), (mask[m] == none[m]).all(),
      (fe[d > 4] == pic[d > 4]).all(), (fe[m] == none[m]).all(),
      (fe[(d > 0) & (d <= 4)] != pic[(d > 0) & (d <= 4)]).any()]
print("# outside kept, inside decoded, feather: beyond 4 kept, inside decoded, ramp changes pixels:", ok)
sys.exit(0 if all(ok) else 1)' "$TMP" "$C"

# 6. mask_grow=1 samples the cells of the mask grown by one cell.
ff -i "$C/labels.png" -i "$C/picture.png" -i "$C/mask.png" \
    -filter_complex "$GRAPH:seed=4:top_k=8:mask_grow=1:output=tokens" $RAW16 "$TMP/grow1.raw"
ff -i "$C/labels.png" -i "$C/picture.png" -i "$TMP/grown.png" \
    -filter_complex "$GRAPH:seed=4:top_k=8:output=tokens" $RAW16 "$TMP/grown.raw"
check "mask_grow=1 gives the tokens of the mask grown by one cell" \
    sh -c "[ -s '$TMP/grow1.raw' ] && cmp -s '$TMP/grow1.raw' '$TMP/grown.raw'"

# 7. Video: the picture changes in its bottom token row, outside the mask
# (frame 1), then stays (frame 2); labels and mask are one still picture
# each. reuse gives the frames of off; an unchanged frame samples nothing;
# the kept tokens that changed are counted (the encoder's attention block
# mixes the whole picture, so they are not only those of the bottom row).
clip() {
    "$FFMPEG" -nostdin -hide_banner -loglevel info -y -i "$C/labels.png" \
        -framerate 5 -i "$TMP/clip-%d.png" -i "$C/mask.png" \
        -filter_complex "$GRAPH:seed=6:top_k=16:$1" -f framemd5 "$2" 2>"$2.log"
}
clip temporal=off "$TMP/clip-off"; r1=$?
clip temporal=reuse "$TMP/clip-reuse"; r2=$?
check "a 3-frame clip with a still mask and labels, temporal=off and reuse: run" [ $r1$r2 = 00 ]
check "the clip gives 3 frames at the picture's timestamps" \
    [ "$(frames "$TMP/clip-off" | cut -d, -f3 | tr -d ' ' | tr '\n' ' ')" = "0 1 2 " ]
check "temporal=reuse gives the frames of temporal=off" \
    sh -c "[ -s '$TMP/clip-off' ] && cmp -s '$TMP/clip-off' '$TMP/clip-reuse'"
check "temporal=reuse: frame 2 (nothing changed) samples nothing and reuses the 15 masked cells" \
    grep -q "frame 2: 15 of 63 cells masked, 0 kept tokens changed; 0 tokens sampled, 15 reused" "$TMP/clip-reuse.log"
ff -framerate 5 -i "$TMP/clip-%d.png" -frames:v 2 -vf "vqgan_encode=model=$CPL" $RAW16 "$TMP/clip-tokens.raw"
check "temporal=reuse: frame 1 counts the kept tokens that changed, and samples or reuses each masked cell" \
    "$PYTHON" -c '
import re, sys, numpy as np
t = np.fromfile(sys.argv[1], dtype="<u2").reshape(2, 7, 9)
kept = np.load(sys.argv[2] + "/cell_mask.npy") == 0
want = int((t[0] != t[1])[kept].sum())
m = re.search(r"frame 1: 15 of 63 cells masked, (\d+) kept tokens changed; (\d+) tokens sampled, (\d+) reused",
              open(sys.argv[3]).read())
print("# frame 1: kept tokens changed %s (vqgan_encode: %d), sampled %s, reused %s" %
      (m and m.group(1), want, m and m.group(2), m and m.group(3)))
sys.exit(0 if m and int(m.group(1)) == want and int(m.group(2)) + int(m.group(3)) == 15 else 1)' \
    "$TMP/clip-tokens.raw" "$C" "$TMP/clip-reuse.log"

# 8. Errors: a clear message, a non-zero exit, no crash.
fails() {
    _d=$1 _re=$2; shift 2
    _st=$(run_status "$FFMPEG" -nostdin -hide_banner -loglevel error -y "$@")
    case $_st in
    signal*) notok "$_d: crashed ($_st)" ;;
    "exit 0") notok "$_d: exit status 0" ;;
    *) if grep -Eq -- "$_re" "$TMP/stderr"; then ok "$_d ($_st)"
       else notok "$_d: no message matching /$_re/ ($_st)"; sed 's/^/# /' "$TMP/stderr" | tail -n 5; fi ;;
    esac
}
fails "a mask of another size than the picture" "The mask is 72x48 but the picture is 72x56" \
    -i "$C/labels.png" -i "$C/picture.png" -i "$TMP/small.png" -filter_complex "$GRAPH" -f null -
fails "a picture of another size than the labels" "The picture is 72x48 but the condition \(labels 72x56\) gives a 72x56 frame" \
    -i "$C/labels.png" -i "$C/picture.png" -i "$TMP/small.png" \
    -filter_complex "[1]crop=72:48:0:0[p];[0][p][2]vqgan_synth=model=$CPL:complete=1" -f null -
fails "an rgb24 mask" "The mask \(input 2 of complete=mask\) is rgb24; it must be gray8" \
    -i "$C/labels.png" -i "$C/picture.png" -i "$TMP/mask-rgb.png" -filter_complex "$GRAPH" -f null -
fails "complete=alpha with a picture without alpha" "complete=alpha takes an rgba picture.*rgb24 \(no alpha\)" \
    -i "$C/labels.png" -i "$C/picture.png" \
    -filter_complex "[0][1]vqgan_synth=model=$CPL:complete=alpha" -f null -
fails "a model without a first stage" "complete=mask encodes the picture with the model's image tokenizer \(first stage\), but model '$SEG' has none" \
    -i "$C/labels.png" -i "$C/picture.png" -i "$C/mask.png" \
    -filter_complex "[0][1][2]vqgan_synth=model=$SEG:complete=1" -f null -
fails "complete with mode=decode" "complete=mask samples the masked cells: it needs mode=sample" \
    -i "$C/labels.png" -i "$C/picture.png" -i "$C/mask.png" \
    -filter_complex "[0][1][2]vqgan_synth=model=$CPL:complete=1:mode=decode" -f null -

finish
