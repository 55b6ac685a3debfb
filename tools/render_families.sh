#!/bin/sh
# Renders one 256x256 frame through build/ffmpeg with every released family's
# full-size random-weight model (build/families/NAME.gguf, from
# `make bench-families-models`), with the input that family takes, and prints
# the seconds each took. Slow (minutes per model on 2 cores) and memory-hungry
# (the 1.4B cIN model takes 6 GB as f32): not part of make check.
#
#   sh tools/render_families.sh [NAME...]      (default: every model present)
#
# Environment: FFMPEG (default build/ffmpeg), FAMILIES_DIR (build/families),
# OUT (a directory for the pictures, default a temporary one, removed).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FFMPEG=${FFMPEG:-$ROOT/build/ffmpeg}
DIR=${FAMILIES_DIR:-$ROOT/build/families}
PYTHON=${PYTHON:-/usr/bin/python3}
KEEP=${OUT:-}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/render-families.XXXXXX")}
[ -n "$KEEP" ] || trap 'rm -rf "$OUT"' EXIT
mkdir -p "$OUT"
S=256x256

# a 256x256 depth map (grayf32) from ../shared/data/drin, a label map (gray8,
# two regions) and a picture (rgb24)
"$PYTHON" - "$ROOT/../shared/data/drin/depth" "$OUT" <<'PY' || exit 1
import os, sys
import numpy as np
from PIL import Image
src, out = sys.argv[1:3]
names = sorted(f for f in os.listdir(src) if f.endswith(".png")) if os.path.isdir(src) else []
if names:
    rgba = np.ascontiguousarray(np.array(Image.open(os.path.join(src, names[0])).convert("RGBA")))
    d = Image.fromarray(rgba.view("<f4")[..., 0]).resize((256, 256), Image.BOX)
    depth = np.asarray(d, dtype="<f4")
else:
    depth = np.tile(np.linspace(0, 1, 256, dtype="<f4")[:, None], (1, 256))
depth.tofile(os.path.join(out, "depth.f32"))
lab = np.zeros((256, 256), np.uint8)
lab[128:] = 1
lab.tofile(os.path.join(out, "labels.gray"))
y, x = np.mgrid[0:256, 0:256]
rgb = np.stack([(x % 256), (y % 256), ((x + y) // 2) % 256], -1).astype(np.uint8)
rgb.tofile(os.path.join(out, "picture.rgb"))
PY

run() {
    name=$1; shift
    t0=$(date +%s.%N)
    if "$FFMPEG" -nostdin -hide_banner -loglevel error -y "$@" "$OUT/$name.png" 2>"$OUT/$name.log"; then
        t1=$(date +%s.%N)
        printf '%-10s %6.1f s for one %s frame -> %s\n' "$name" "$(echo "$t1 - $t0" | bc)" "$S" "$OUT/$name.png"
    else
        printf '%-10s FAILED: %s\n' "$name" "$(tail -n 2 "$OUT/$name.log" | tr '\n' ' ')"
        failed=1
    fi
}

failed=0
names=${*:-drin faceshq coco ade20k ffhq celebahq gumbel_f8 f16_16384 cin}
for n in $names; do
    m=$DIR/$n.gguf
    [ -f "$m" ] || { printf '%-10s (no %s)\n' "$n" "$m"; continue; }
    case $n in
    drin)      run $n -f rawvideo -pix_fmt grayf32le -s $S -i "$OUT/depth.f32" \
                   -vf "vqgan_synth=model=$m:top_k=100:depth_range=0|7000" -frames:v 1 ;;
    faceshq)   run $n -f lavfi -i "color=s=$S:d=0.04" -vf "vqgan_synth=model=$m:top_k=100" -frames:v 1 ;;
    coco|ade20k) run $n -f rawvideo -pix_fmt gray8 -s $S -i "$OUT/labels.gray" \
                   -vf "vqgan_synth=model=$m:top_k=100" -frames:v 1 ;;
    cin)       run $n -f lavfi -i "color=s=$S:d=0.04" -vf "vqgan_synth=model=$m:class=933:top_k=100" -frames:v 1 ;;
    ffhq|celebahq) run $n -f lavfi -i "color=s=$S:d=0.04" -vf "vqgan_synth=model=$m:top_k=100" -frames:v 1 ;;
    *)         run $n -f rawvideo -pix_fmt rgb24 -s $S -i "$OUT/picture.rgb" \
                   -vf "vqgan_encode=model=$m,vqgan_synth=model=$m:mode=decode" -frames:v 1 ;;
    esac
done
exit $failed
