#!/bin/sh
# Colour-coded label maps: gray8 ids and the same labels as an rgb24 palette
# picture give identical frames (both filters); a JPEG-compressed colour label
# video with palette_match=nearest gives the frames of its nearest-colour ids
# (those of the clean video wherever the nearest colour is the true one); an
# off-palette colour stops with a message naming it; tools/colorize_labels.py
# and the palette agree both ways, and its --palette colours another label
# space (the 183-label test model's) as the filters read it.
. "$(dirname "$0")/testlib"

MODEL=$ROOT/samples/models/default.gguf
LEGEND=$ROOT/samples/legend.txt
SYN="vqgan_synth=model=$MODEL:top_k=16:seed=5"

# Four frames of the panning label video scaled to 64x32 (nearest neighbour:
# ids kept, every region) as gray8 ids (PNG) and, coloured by
# tools/colorize_labels.py, as rgb24 pictures.
ff -i "$ROOT/samples/labels_pan.mkv" -frames:v 4 -vf "format=gray8,scale=64:32:flags=neighbor" "$TMP/ids%d.png"
"$PYTHON" - "$ROOT" "$TMP" <<'PY'
import sys, os
import numpy as np
from PIL import Image
sys.path.insert(0, os.path.join(sys.argv[1], "tools"))
from colorize_labels import colorize
tmp = sys.argv[2]
for i in range(1, 5):
    ids = np.array(Image.open(f"{tmp}/ids{i}.png"))
    Image.fromarray(colorize(ids)).save(f"{tmp}/rgb{i}.png")
# every label once, for the round trip: 182 ids in a 14x13 block
Image.fromarray(np.arange(182, dtype=np.uint8).reshape(13, 14).repeat(16, 0).repeat(16, 1)).save(f"{tmp}/all-ids.png")
Image.fromarray(colorize(np.array(Image.open(f"{tmp}/all-ids.png")))).save(f"{tmp}/all-rgb.png")
# complete=: a mask over the left half, a picture of horizontal bands
m = np.zeros((32, 64), np.uint8)
m[:, :32] = 255
Image.fromarray(m).save(f"{tmp}/half.png")
Image.fromarray(np.repeat(np.linspace(0, 255, 32).astype(np.uint8)[:, None, None], 64, 1).repeat(3, 2)).save(f"{tmp}/bands.png")
PY
check "colour label pictures written by tools/colorize_labels.py" test -f "$TMP/rgb4.png"

ff -i "$TMP/ids%d.png" -vf "format=gray8,$SYN" -f framemd5 "$TMP/gray.md5"
ff -i "$TMP/rgb%d.png" -vf "format=rgb24,$SYN:palette=$LEGEND" -f framemd5 "$TMP/rgb.md5"
check "vqgan_synth: rgb24 palette pictures give the frames of gray8 ids" \
    eval '[ "$(frames "$TMP/gray.md5" | wc -l)" -eq 4 ] && [ "$(frames "$TMP/gray.md5" | cut -d, -f6)" = "$(frames "$TMP/rgb.md5" | cut -d, -f6)" ]'
ff -i "$TMP/rgb%d.png" -vf "format=bgr24,$SYN:palette=$LEGEND" -f framemd5 "$TMP/bgr.md5"
check "vqgan_synth: bgr24 the same" [ "$(frames "$TMP/gray.md5" | cut -d, -f6)" = "$(frames "$TMP/bgr.md5" | cut -d, -f6)" ]
ff -i "$TMP/rgb%d.png" -vf "format=rgba,$SYN:palette=$LEGEND" -f framemd5 "$TMP/rgba.md5"
check "vqgan_synth: rgba the same" [ "$(frames "$TMP/gray.md5" | cut -d, -f6)" = "$(frames "$TMP/rgba.md5" | cut -d, -f6)" ]

# any packed 8-bit RGB layout (an RGB FFV1 video decodes to bgr0)
for f in bgr0 argb; do
    ff -i "$TMP/rgb%d.png" -vf "format=$f,$SYN:palette=$LEGEND" -f framemd5 "$TMP/$f.md5"
    check "vqgan_synth: $f the same" eval '[ "$(frames "$TMP/gray.md5" | cut -d, -f6)" = "$(frames "$TMP/$f.md5" | cut -d, -f6)" ]'
done
ff -i "$TMP/rgb1.png" -vf "format=gbrp,$SYN:palette=$LEGEND" -f null -
check "a planar RGB picture is refused with the hint format=rgb24" grep -q "Input format gbrp cannot be used.*Insert format=rgb24" "$TMP/stderr"
ff -i "$TMP/ids1.png" -vf "format=yuv444p,vqgan_synth=model=$MODEL:mode=origin" -f null -
check "mode=origin refuses a yuv label picture (not turned into colours)" grep -q "Input format yuv444p cannot be used.*format=gray8" "$TMP/stderr"
# ids -> colours (colorize_labels.py) -> ids (the filter's palette) is the identity, every label.
ff -i "$TMP/all-ids.png" -vf "format=gray8,vqgan_encode=model=$MODEL:stage=cond" -f rawvideo -pix_fmt gray16le "$TMP/all-gray.tok"
ff -i "$TMP/all-rgb.png" -vf "format=rgb24,vqgan_encode=model=$MODEL:stage=cond:palette=$LEGEND" -f rawvideo -pix_fmt gray16le "$TMP/all-rgb.tok"
ff -i "$TMP/all-rgb.png" -vf "format=bgr0,vqgan_encode=model=$MODEL:stage=cond:palette=$LEGEND" -f rawvideo -pix_fmt gray16le "$TMP/all-bgr0.tok"
check "vqgan_encode: bgr0 colour labels give the tokens of gray8 ids, all 182 labels" cmp -s "$TMP/all-gray.tok" "$TMP/all-bgr0.tok"
check "vqgan_encode: 182 labels coloured by colorize_labels.py read back as the same ids (tokens equal)" \
    [ -s "$TMP/all-gray.tok" ] && cmp -s "$TMP/all-gray.tok" "$TMP/all-rgb.tok"
"$PYTHON" - "$ROOT" "$LEGEND" <<'PY' && ok "legend.txt and colorize_labels.py: the same colour for every id, no colour twice" || notok "legend.txt and colorize_labels.py agree"
import sys, os
sys.path.insert(0, os.path.join(sys.argv[1], "tools"))
import colorize_labels as cl
pal = cl.palette()
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[2]) if not l.startswith("#") and l.strip()]
legend = {int(r[0]): r[2].lower() for r in rows}
ok = all(legend[i] == "#%02x%02x%02x" % tuple(int(v) for v in pal[i]) for i in range(cl.N_LABELS))
sys.exit(0 if ok and len(set(legend.values())) == len(legend) == cl.N_LABELS else 1)
PY

# Off-palette colour: one pixel changed.
"$PYTHON" -c '
import sys; from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB"); im.putpixel((5, 7), (1, 2, 3)); im.save(sys.argv[2])' "$TMP/rgb1.png" "$TMP/off.png"
ff -i "$TMP/off.png" -vf "format=rgb24,$SYN:palette=$LEGEND" -f null -
st=$?
check "off-palette colour: the run fails" [ $st -ne 0 ]
check "off-palette colour: the message names the colour, position and closest entry" \
    grep -q "Colour #010203 at (5,7) is not in the palette '$LEGEND': the closest entry is [0-9]* .* #[0-9a-f]\{6\}, at distance" "$TMP/stderr"
ff -i "$TMP/off.png" -vf "format=rgb24,$SYN" -f null -
check "off-palette colour, the model's palette: the message names it" \
    grep -q "Colour #010203 at (5,7) is not in the palette of model '$MODEL'" "$TMP/stderr"
sed -n '1p' "$TMP/stderr" | sed 's/^/# /'
# The default model carries the legend's palette: no palette= needed.
ff -i "$TMP/rgb%d.png" -vf "format=rgb24,$SYN" -f framemd5 "$TMP/model-pal.md5"
check "the default model's own palette reads the rgb24 pictures as the gray8 ids" \
    [ "$(frames "$TMP/gray.md5" | cut -d, -f6)" = "$(frames "$TMP/model-pal.md5" | cut -d, -f6)" ]
ff -i "$TMP/all-rgb.png" -vf "format=rgb24,vqgan_encode=model=$MODEL:stage=cond" -f rawvideo -pix_fmt gray16le "$TMP/all-model.tok"
check "vqgan_encode with the model's palette: the same tokens for all 182 labels" cmp -s "$TMP/all-gray.tok" "$TMP/all-model.tok"
# complete= reads colour labels through the palette too (it read their bytes as ids)
ff -i "$TMP/ids1.png" -i "$TMP/bands.png" -i "$TMP/half.png" \
    -filter_complex "[0]format=gray8[c];[2]format=gray8[m];[c][1][m]$SYN:complete=1" -f framemd5 "$TMP/cpl-gray.md5"
ff -i "$TMP/rgb1.png" -i "$TMP/bands.png" -i "$TMP/half.png" \
    -filter_complex "[0]format=rgb24[c];[2]format=gray8[m];[c][1][m]$SYN:complete=1" -f framemd5 "$TMP/cpl-rgb.md5"
check "complete=1: rgb24 palette labels give the frame of gray8 ids" \
    eval '[ "$(frames "$TMP/cpl-gray.md5" | wc -l)" -eq 1 ] && [ "$(frames "$TMP/cpl-gray.md5" | cut -d, -f6)" = "$(frames "$TMP/cpl-rgb.md5" | cut -d, -f6)" ]'
# mode=origin (the farm's pre-pass) reads colour labels too: the same origins
ff -i "$TMP/ids%d.png" -vf "format=gray8,vqgan_synth=model=$MODEL:mode=origin,metadata=mode=print:file=$TMP/origin-gray.txt" -f null -
ff -i "$TMP/rgb%d.png" -vf "format=rgb24,vqgan_synth=model=$MODEL:mode=origin,metadata=mode=print:file=$TMP/origin-rgb.txt" -f null -
check "mode=origin: rgb24 palette labels give the origins of gray8 ids (4 frames)" \
    eval '[ "$(grep -c origin_x "$TMP/origin-gray.txt")" -eq 4 ] && [ "$(grep origin_ "$TMP/origin-gray.txt")" = "$(grep origin_ "$TMP/origin-rgb.txt")" ]'
# A model without a palette (the golden conditional model) refuses colour labels.
ff -i "$GOLDEN/conditional/labels.png" -vf "format=rgb24,vqgan_synth=model=$(model conditional):top_k=1" -f null -
check "rgb24 labels, no palette= and none in the model: refused, naming the palette option" \
    grep -q "carries no palette: set palette=FILE" "$TMP/stderr"

# A JPEG-compressed colour label video.
ff -i "$TMP/rgb%d.png" -c:v mjpeg -q:v 2 -pix_fmt yuvj444p "$TMP/labels-jpeg.mkv"
ff -i "$TMP/labels-jpeg.mkv" -vf "format=rgb24,$SYN:palette=$LEGEND" -f null -
check "JPEG colours with exact matching are refused" grep -q "is not in the palette" "$TMP/stderr"
ff -i "$TMP/labels-jpeg.mkv" -f rawvideo -pix_fmt rgb24 "$TMP/jpeg.rgb"
# The nearest palette colour of every decoded pixel, as gray8 ids, with the
# farthest distance and how many pixels differ from the clean ids.
"$PYTHON" - "$ROOT" "$TMP" <<'PY' >"$TMP/nearest.txt"
import sys, os
import numpy as np
from PIL import Image
sys.path.insert(0, os.path.join(sys.argv[1], "tools"))
import colorize_labels as cl
tmp = sys.argv[2]
pal = np.array(cl.palette()[:cl.N_LABELS], dtype=np.int64)
rgb = np.fromfile(f"{tmp}/jpeg.rgb", dtype=np.uint8).reshape(4, 32, 64, 3).astype(np.int64)
d2 = ((rgb[..., None, :] - pal[None, None, None]) ** 2).sum(-1)
near = d2.argmin(-1)
far = np.sqrt(d2.min(-1)).max()
wrong = 0
for i in range(4):
    Image.fromarray(near[i].astype(np.uint8)).save(f"{tmp}/near{i + 1}.png")
    wrong += int((near[i] != np.array(Image.open(f"{tmp}/ids{i + 1}.png"))).sum())
print(int(np.ceil(far)) + 1, wrong)
PY
read -r dist wrong <"$TMP/nearest.txt"
echo "# JPEG: farthest pixel from its nearest palette colour ${dist:-?}, $wrong pixels whose nearest colour is not the true one"
ff -i "$TMP/labels-jpeg.mkv" -vf "format=rgb24,$SYN:palette=$LEGEND:palette_match=nearest=$dist" -f framemd5 "$TMP/jpeg.md5"
ff -i "$TMP/near%d.png" -vf "format=gray8,$SYN" -f framemd5 "$TMP/near.md5"
check "palette_match=nearest:$dist: the 4 frames of the nearest-colour ids" \
    eval '[ "$(frames "$TMP/near.md5" | wc -l)" -eq 4 ] && [ "$(frames "$TMP/jpeg.md5" | cut -d, -f6)" = "$(frames "$TMP/near.md5" | cut -d, -f6)" ]'
if [ "$wrong" -eq 0 ]; then
    check "palette_match=nearest:$dist: the frames of the clean video (every nearest colour is the true one)" \
        [ "$(frames "$TMP/jpeg.md5" | cut -d, -f6)" = "$(frames "$TMP/gray.md5" | cut -d, -f6)" ]
else
    # JPEG moved some border pixels nearer another label's colour: the frames
    # are those of the ids the colours say (checked above), not the clean ones.
    ok "palette_match=nearest: $wrong pixels' nearest colour is another label's (compared with their own ids above)"
fi
ff -i "$TMP/labels-jpeg.mkv" -vf "format=rgb24,$SYN:palette=$LEGEND:palette_match=nearest=1" -f null -
check "palette_match=nearest:1 refuses the farther JPEG colours, naming the distance" \
    grep -q "within the palette_match distance: the closest entry is" "$TMP/stderr"
ff -i "$TMP/rgb1.png" -vf "format=rgb24,$SYN:palette=$LEGEND:palette_match=closest" -f null -
check "palette_match=closest is refused with the accepted forms" grep -q "use exact, or nearest:DIST" "$TMP/stderr"

# another label space: the 183 ids of the COCO-Stuff test model coloured by
# colorize_labels.py with the palette the model carries (--palette MODEL)
# read back as the same ids; with the fixed 182-label palette they would
# not (the model's ids are COCO-Stuff's + 1)
COCO=$(model coco)
"$PYTHON" -c 'import numpy as np; from PIL import Image
Image.fromarray(np.arange(183, dtype=np.uint8).repeat(8).reshape(1, -1).repeat(8, 0)).save("'"$TMP"'/ids183.png")'
"$PYTHON" "$ROOT/tools/colorize_labels.py" --palette "$COCO" "$TMP/ids183.png" "$TMP/rgb183.png" >/dev/null 2>"$TMP/e" ||
    sed 's/^/# /' "$TMP/e"
"$PYTHON" "$ROOT/tools/colorize_labels.py" "$TMP/ids183.png" "$TMP/fixed183.png" >/dev/null
for f in ids183 rgb183 fixed183; do
    ff -i "$TMP/$f.png" -vf "vqgan_encode=model=$COCO:stage=cond" -f framemd5 "$TMP/$f.md5"
done
check "colorize_labels.py --palette coco.gguf: 183 labels read back as the same ids (condition tokens equal)" \
    eval '[ -n "$(frames "$TMP/ids183.md5")" ] && [ "$(frames "$TMP/rgb183.md5")" = "$(frames "$TMP/ids183.md5")" ]'
check "... and the fixed 182-label palette's colours are other ids on that model" \
    eval '[ -n "$(frames "$TMP/fixed183.md5")" ] && [ "$(frames "$TMP/fixed183.md5")" != "$(frames "$TMP/ids183.md5")" ]'
"$PYTHON" "$ROOT/tools/colorize_labels.py" --palette "$(model vqgan)" "$TMP/ids183.png" "$TMP/x.png" >/dev/null 2>"$TMP/e"
rc=$?
check "colorize_labels.py --palette on a model without a palette: refused, naming it (status $rc)" \
    eval '[ $rc -ne 0 ] && grep -q "carries no label palette" "$TMP/e" && [ ! -e "$TMP/x.png" ]'
finish
