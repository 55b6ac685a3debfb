#!/bin/sh
# The released model families beyond S-FLCKR through vqgan_encode and
# vqgan_synth, against the reference's golden cases (../shared/golden, "The
# other released model families"): depth (D-RIN), coordinates (FacesHQ),
# COCO-Stuff's 183 labels, the Gumbel tokenizer, the class-conditional and
# unconditional sliding windows; greedy pictures within 1 in 8 bits, tokens
# identical. Then a depth video made from ../shared/data/drin (a slow zoom)
# with depth_range fixed: temporal=reuse identical to off. Then the errors.
. "$(dirname "$0")/testlib"

DEPTH=$(model depth)
COORD=$(model coord)
COCO=$(model coco)
GUMBEL=$(model gumbel)
CLASSWIN=$(model classwin)
UNCONDWIN=$(model uncondwin)
SEG=$(model conditional)
RAW16="-f rawvideo -pix_fmt gray16le"
RGB="-f rawvideo -pix_fmt rgb24"
DATA=${VQGAN_DATA:-$ROOT/../shared/data}

# the golden pictures' size (every case of the family set is 72x56)
size() { "$PYTHON" -c 'import sys, numpy as np; s = np.load(sys.argv[1]).shape; print("%dx%d" % (s[-1], s[-2]))' "$1"; }

# ---- depth (D-RIN) ----------------------------------------------------------
ffcheck "depth: vqgan_encode=stage=cond on depth.png (gray16, per-image min-max) equals cond_indices.npy" \
    "$TMP/depth-ci.raw" "$GOLDEN/depth/cond_indices.npy" tokens \
    -i "$GOLDEN/depth/depth.png" -vf "vqgan_encode=model=$DEPTH:stage=cond" $RAW16 "$TMP/depth-ci.raw"
ffcheck "depth: vqgan_synth=top_k=1 on depth.png gives image.npy" \
    "$TMP/depth-img.raw" "$GOLDEN/depth/image.npy" image \
    -i "$GOLDEN/depth/depth.png" -vf "vqgan_synth=model=$DEPTH:top_k=1" $RGB "$TMP/depth-img.raw"
ffcheck "depth: depth_range=0:65535 on depth.png (spans exactly 0..65535) gives image.npy" \
    "$TMP/depth-img2.raw" "$GOLDEN/depth/image.npy" image \
    -i "$GOLDEN/depth/depth.png" -vf "vqgan_synth=model=$DEPTH:top_k=1:depth_range=0\\\\:65535" $RGB "$TMP/depth-img2.raw"
ffcheck "depth: depth_range=0|65535 (no escaping) gives image.npy" \
    "$TMP/depth-img2b.raw" "$GOLDEN/depth/image.npy" image \
    -i "$GOLDEN/depth/depth.png" -vf "vqgan_synth=model=$DEPTH:top_k=1:depth_range=0|65535" $RGB "$TMP/depth-img2b.raw"
# the same map as grayf32 (raw video), and as gray8 through format=gray8 (coarser: runs)
"$PYTHON" -c 'import sys, numpy as np; np.load(sys.argv[1]).astype("<f4").tofile(sys.argv[2])' \
    "$GOLDEN/depth/depth.npy" "$TMP/depth.f32"
ffcheck "depth: grayf32 depth.npy (already in [-1, 1], per-image min-max keeps it) gives image.npy" \
    "$TMP/depth-img3.raw" "$GOLDEN/depth/image.npy" image \
    -f rawvideo -pix_fmt grayf32le -s "$(size "$GOLDEN/depth/depth.npy")" -i "$TMP/depth.f32" \
    -vf "vqgan_synth=model=$DEPTH:top_k=1" $RGB "$TMP/depth-img3.raw"
# larger means farther: the negated map with depth_invert is the same input
"$PYTHON" -c 'import sys, numpy as np; (-np.load(sys.argv[1])).astype("<f4").tofile(sys.argv[2])' \
    "$GOLDEN/depth/depth.npy" "$TMP/depth-neg.f32"
ffcheck "depth: depth_invert on the negated map gives image.npy" \
    "$TMP/depth-img4.raw" "$GOLDEN/depth/image.npy" image \
    -f rawvideo -pix_fmt grayf32le -s "$(size "$GOLDEN/depth/depth.npy")" -i "$TMP/depth-neg.f32" \
    -vf "vqgan_synth=model=$DEPTH:top_k=1:depth_invert=1" $RGB "$TMP/depth-img4.raw"
ffcheck "depth: vqgan_encode=stage=cond,vqgan_synth=cond_tokens=1 gives image.npy" \
    "$TMP/depth-img5.raw" "$GOLDEN/depth/image.npy" image \
    -i "$GOLDEN/depth/depth.png" \
    -vf "vqgan_encode=model=$DEPTH:stage=cond,vqgan_synth=model=$DEPTH:top_k=1:cond_tokens=1" $RGB "$TMP/depth-img5.raw"
# a 12-bit sensor's map (gray12le, and big-endian): its stored values, the
# input's own units: the same condition tokens as gray16 holding 16x them,
# per-image min-max and with depth_range 0|4095 against 0|65520
"$PYTHON" - "$GOLDEN/depth/depth.png" "$TMP" <<'PY'
import sys, numpy as np
from PIL import Image
d = (np.asarray(Image.open(sys.argv[1])).astype(np.uint32) >> 4).astype(np.uint16)
d.astype("<u2").tofile(sys.argv[2] + "/d12le.raw")
d.astype(">u2").tofile(sys.argv[2] + "/d12be.raw")
(d << 4).astype("<u2").tofile(sys.argv[2] + "/d16x.raw")
PY
DS=$(size "$GOLDEN/depth/depth.npy")
d12() { ff -f rawvideo -pix_fmt "$1" -s "$DS" -i "$TMP/$2" -vf "vqgan_encode=model=$DEPTH:stage=cond$3" -f framemd5 "$TMP/$4"; }
d12 gray12le d12le.raw "" t12.md5; d12 gray12be d12be.raw "" t12be.md5; d12 gray16le d16x.raw "" t16.md5
d12 gray12le d12le.raw ":depth_range=0|4095" r12.md5; d12 gray16le d16x.raw ":depth_range=0|65520" r16.md5
check "depth: gray12le/gray12be maps give the condition tokens of gray16 at 16x (min-max, and depth_range 0|4095 ~ 0|65520)" \
    eval '[ -n "$(grep -v "^#" "$TMP/t16.md5")" ] && [ "$(grep -v "^#" "$TMP/t12.md5")" = "$(grep -v "^#" "$TMP/t16.md5")" ] &&
          [ "$(grep -v "^#" "$TMP/t12be.md5")" = "$(grep -v "^#" "$TMP/t16.md5")" ] &&
          [ -n "$(grep -v "^#" "$TMP/r16.md5")" ] && [ "$(grep -v "^#" "$TMP/r12.md5")" = "$(grep -v "^#" "$TMP/r16.md5")" ]'
check "depth: gray8 depth (format=gray8) renders" \
    ff -i "$GOLDEN/depth/depth.png" -vf "format=gray8,vqgan_synth=model=$DEPTH:top_k=1" $RGB "$TMP/depth8.raw"

# ---- coordinates (FacesHQ) ---------------------------------------------------
CS=$(size "$GOLDEN/coord/image.npy")
ffcheck "coord: vqgan_encode=stage=cond on a $CS frame equals cond_indices.npy" \
    "$TMP/coord-ci.raw" "$GOLDEN/coord/cond_indices.npy" tokens \
    -f lavfi -i "color=s=$CS:d=0.04" -vf "vqgan_encode=model=$COORD:stage=cond" $RAW16 "$TMP/coord-ci.raw"
ffcheck "coord: vqgan_synth=top_k=1 on a $CS color source gives image.npy" \
    "$TMP/coord-img.raw" "$GOLDEN/coord/image.npy" image \
    -f lavfi -i "color=s=$CS:d=0.04" -vf "vqgan_synth=model=$COORD:top_k=1" $RGB "$TMP/coord-img.raw"
ffcheck "coord: any input content (testsrc) gives the same picture" \
    "$TMP/coord-img2.raw" "$GOLDEN/coord/image.npy" image \
    -f lavfi -i "testsrc=s=$CS:d=0.04" -vf "vqgan_synth=model=$COORD:top_k=1" $RGB "$TMP/coord-img2.raw"

# ---- COCO-Stuff, 183 labels --------------------------------------------------
ffcheck "coco: vqgan_encode=stage=cond on labels.png (183 labels) equals cond_indices.npy" \
    "$TMP/coco-ci.raw" "$GOLDEN/coco/cond_indices.npy" tokens \
    -i "$GOLDEN/coco/labels.png" -vf "vqgan_encode=model=$COCO:stage=cond" $RAW16 "$TMP/coco-ci.raw"
ffcheck "coco: vqgan_synth=top_k=1 on labels.png gives image.npy" \
    "$TMP/coco-img.raw" "$GOLDEN/coco/image.npy" image \
    -i "$GOLDEN/coco/labels.png" -vf "vqgan_synth=model=$COCO:top_k=1" $RGB "$TMP/coco-img.raw"

# ---- Gumbel tokenizer --------------------------------------------------------
ffcheck "gumbel: vqgan_encode=stage=image on x.png equals indices.npy (argmax of the logits)" \
    "$TMP/gumbel-idx.raw" "$GOLDEN/gumbel/indices.npy" tokens \
    -i "$GOLDEN/gumbel/x.png" -vf "vqgan_encode=model=$GUMBEL:stage=image" $RAW16 "$TMP/gumbel-idx.raw"
ffcheck "gumbel: vqgan_encode,vqgan_synth=mode=decode on x.png gives dec.npy" \
    "$TMP/gumbel-dec.raw" "$GOLDEN/gumbel/dec.npy" image \
    -i "$GOLDEN/gumbel/x.png" \
    -vf "vqgan_encode=model=$GUMBEL:stage=image,vqgan_synth=model=$GUMBEL:mode=decode" $RGB "$TMP/gumbel-dec.raw"

# ---- class-conditional and unconditional, grids larger than the window --------
cls=$(npy_int "$GOLDEN/classwin/cond_token.npy")
WS=$(size "$GOLDEN/classwin/image.npy")
ffcheck "classwin: vqgan_synth=top_k=1:class=$cls on a $WS source (sliding window) gives image.npy" \
    "$TMP/classwin.raw" "$GOLDEN/classwin/image.npy" image \
    -f lavfi -i "color=s=$WS:d=0.04" -vf "vqgan_synth=model=$CLASSWIN:top_k=1:class=$cls" $RGB "$TMP/classwin.raw"
US=$(size "$GOLDEN/uncondwin/image.npy")
ffcheck "uncondwin: vqgan_synth=top_k=1 on a $US source (sliding window) gives image.npy" \
    "$TMP/uncondwin.raw" "$GOLDEN/uncondwin/image.npy" image \
    -f lavfi -i "color=s=$US:d=0.04" -vf "vqgan_synth=model=$UNCONDWIN:top_k=1" $RGB "$TMP/uncondwin.raw"

# ---- a depth video from ../shared/data/drin: a slow zoom -----------------------
# 8 frames of 96x72 grayf32: a crop of the map closing in on its centre, each
# step held for two frames (a still camera between moves), resampled by area.
if "$PYTHON" - "$DATA/drin/depth" "$TMP/zoom.f32" <<'PY'
import os, sys
import numpy as np
from PIL import Image
d = sorted(f for f in os.listdir(sys.argv[1]) if f.endswith(".png"))[0]
rgba = np.array(Image.open(os.path.join(sys.argv[1], d)).convert("RGBA"))
depth = np.ascontiguousarray(rgba).view("<f4")[..., 0]       # the reference's rgba_to_depth
H, W = depth.shape
frames = []
for step in range(4):
    s = 1.0 - 0.06 * step
    h, w = int(H * s), int(W * s)
    y, x = (H - h) // 2, (W - w) // 2
    crop = Image.fromarray(depth[y:y + h, x:x + w]).resize((96, 72), Image.BOX)
    f = np.asarray(crop, dtype="<f4")
    frames += [f, f]
np.stack(frames).astype("<f4").tofile(sys.argv[2])
print("# %s: %d frames, depth %.1f..%.1f" % (d, len(frames), depth.min(), depth.max()))
PY
then
    zoom() {
        "$FFMPEG" -nostdin -hide_banner -loglevel info -y -f rawvideo -pix_fmt grayf32le -s 96x72 -r 8 \
            -i "$TMP/zoom.f32" -vf "vqgan_synth=model=$DEPTH:seed=5:top_k=20:depth_range=0|7000:$1" \
            -f framemd5 "$TMP/zoom-$2" 2>"$TMP/stderr.zoom-$2"
    }
    zoom temporal=off off; r1=$?
    zoom temporal=reuse reuse; r2=$?
    check "drin depth zoom, 8 frames of 96x72, depth_range=0|7000: off and reuse run" [ $r1$r2 = 00 ]
    check "drin depth zoom: temporal=reuse frames identical (framemd5) to temporal=off" \
        sh -c "[ \$(grep -vc '^#' '$TMP/zoom-off') -eq 8 ] && cmp -s '$TMP/zoom-off' '$TMP/zoom-reuse'"
    check "drin depth zoom: reuse copies the held frames (frame 1: 0 tokens sampled)" \
        grep -q "frame 1: 0 tokens sampled" "$TMP/stderr.zoom-reuse"
else
    notok "drin depth zoom: the video could be made from $DATA/drin/depth"
fi

# ---- errors --------------------------------------------------------------------
# expect_error DESCRIPTION WORDS FFMPEG-ARGS...: ffmpeg fails (no crash) and
# its stderr holds every word of WORDS (|-separated)
expect_error() {
    _d=$1 _w=$2; shift 2
    _st=$(run_status "$FFMPEG" -nostdin -hide_banner -loglevel error -y "$@")
    _ok=1
    [ "$_st" = "exit 0" ] && _ok=0
    case $_st in signal*) _ok=0 ;; esac
    _IFS=$IFS; IFS='|'
    for _word in $_w; do grep -q -- "$_word" "$TMP/stderr" || _ok=0; done
    IFS=$_IFS
    if [ $_ok = 1 ]; then ok "$_d"; else notok "$_d ($_st)"; sed 's/^/# /' "$TMP/stderr" | tail -n 3; fi
}
expect_error "a depth map (grayf32) on a segmentation model is refused, naming depth" "depth|segmentation" \
    -f rawvideo -pix_fmt grayf32le -s 72x56 -i "$TMP/depth.f32" -vf "vqgan_synth=model=$SEG" -f null -
expect_error "a 16-bit depth PNG on a segmentation model's vqgan_encode is refused" "depth|gray8" \
    -i "$GOLDEN/depth/depth.png" -vf "vqgan_encode=model=$SEG:stage=cond" -f null -
"$PYTHON" - "$GOLDEN/coco/labels.npy" "$TMP/labels-pal8.png" <<'PY'
import struct, sys, zlib
import numpy as np
lab = np.load(sys.argv[1]).astype(np.uint8)
h, w = lab.shape[-2:]
lab = lab.reshape(h, w)
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
pal = bytes((37 * i + 11) % 256 for i in range(256 * 3))
raw = b"".join(b"\0" + lab[y].tobytes() for y in range(h))
open(sys.argv[2], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
                              + chunk(b"PLTE", pal) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
PY
expect_error "labels (a pal8 label picture) on a depth model are refused, naming labels" "labels|depth" \
    -i "$TMP/labels-pal8.png" -vf "vqgan_synth=model=$DEPTH" -f null -
expect_error "tokens from vqgan_encode on a depth model without cond_tokens=1 are refused" "cond_tokens=1" \
    -i "$GOLDEN/depth/depth.png" -vf "vqgan_encode=model=$DEPTH:stage=cond,vqgan_synth=model=$DEPTH" -f null -
"$PYTHON" -c 'import numpy as np; a = np.full((56, 72), 183, np.uint8); a.tofile("'"$TMP"'/lab183.raw")'
expect_error "label id 183 on the 183-label model is refused, naming the id and 0..182" "183|0..182" \
    -f rawvideo -pix_fmt gray8 -s 72x56 -i "$TMP/lab183.raw" -vf "vqgan_synth=model=$COCO" -f null -
expect_error "a class id out of range is refused, naming the range" "class=10|0..9" \
    -f lavfi -i "color=s=32x32:d=0.04" -vf "vqgan_synth=model=$CLASSWIN:class=10" -f null -
expect_error "depth_range with LO >= HI is refused" "depth_range" \
    -i "$GOLDEN/depth/depth.png" -vf "vqgan_synth=model=$DEPTH:depth_range=5|5" -f null -
# a Gumbel file whose quantize.proj is gone
"$PYTHON" - "$GUMBEL" "$TMP/gumbel-noproj.gguf" <<PY
import sys
sys.path.insert(0, "$ROOT/tools")
import gguf_writer as gw
g = gw.read_gguf(sys.argv[1])
w = gw.GGUFWriter(alignment=32)
for kv in g.kv.values():
    if kv.key != "general.alignment":
        w.add_kv(kv.key, kv.type, kv.value, kv.elem_type)
for ti in g.tensors:
    if not ti.name.startswith("quantize.proj."):
        w.add_tensor(ti.name, g.tensor(ti.name), "f32")
w.write(sys.argv[2])
PY
expect_error "a Gumbel model file without quantize.proj is refused, naming the tensor" "quantize.proj.weight|missing" \
    -i "$GOLDEN/gumbel/x.png" -vf "vqgan_encode=model=$TMP/gumbel-noproj.gguf" -f null -

finish
