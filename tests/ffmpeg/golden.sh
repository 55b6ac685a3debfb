#!/bin/sh
# vqgan_encode and vqgan_synth against the reference implementation's golden
# vectors (../shared/golden, see its README): tokens exactly, pictures within
# 1 in 8 bits.
. "$(dirname "$0")/testlib"

VQ=$(model vqgan)
SEG=$(model segmentation)
COND=$(model conditional)
CLS=$(model classcond)
RAW16="-f rawvideo -pix_fmt gray16le"
RGB="-f rawvideo -pix_fmt rgb24"

ffcheck "vqgan_encode=stage=image on vqgan/x.png equals vqgan/indices.npy" \
    "$TMP/vqgan-idx.raw" "$GOLDEN/vqgan/indices.npy" tokens \
    -i "$GOLDEN/vqgan/x.png" -vf "vqgan_encode=model=$VQ:stage=image" $RAW16 "$TMP/vqgan-idx.raw"

ffcheck "vqgan_encode,vqgan_synth=mode=decode on vqgan/x.png gives vqgan/dec.npy" \
    "$TMP/vqgan-dec.raw" "$GOLDEN/vqgan/dec.npy" image \
    -i "$GOLDEN/vqgan/x.png" \
    -vf "vqgan_encode=model=$VQ:stage=image,vqgan_synth=model=$VQ:mode=decode" $RGB "$TMP/vqgan-dec.raw"

ffcheck "vqgan_encode=stage=cond on segmentation/labels.png equals segmentation/indices.npy" \
    "$TMP/seg-idx.raw" "$GOLDEN/segmentation/indices.npy" tokens \
    -i "$GOLDEN/segmentation/labels.png" -vf "vqgan_encode=model=$SEG:stage=cond" $RAW16 "$TMP/seg-idx.raw"

ffcheck "vqgan_encode=stage=cond on conditional/labels.png equals conditional/cond_indices.npy" \
    "$TMP/cond-idx.raw" "$GOLDEN/conditional/cond_indices.npy" tokens \
    -i "$GOLDEN/conditional/labels.png" -vf "vqgan_encode=model=$COND:stage=cond" $RAW16 "$TMP/cond-idx.raw"

ffcheck "vqgan_synth=top_k=1 on conditional/labels.png (gray8 labels) gives conditional/image.npy" \
    "$TMP/cond-img.raw" "$GOLDEN/conditional/image.npy" image \
    -i "$GOLDEN/conditional/labels.png" -vf "vqgan_synth=model=$COND:top_k=1" $RGB "$TMP/cond-img.raw"

ffcheck "vqgan_encode=stage=cond,vqgan_synth=top_k=1 (gray16 condition tokens) gives conditional/image.npy" \
    "$TMP/cond-img2.raw" "$GOLDEN/conditional/image.npy" image \
    -i "$GOLDEN/conditional/labels.png" \
    -vf "vqgan_encode=model=$COND:stage=cond,vqgan_synth=model=$COND:top_k=1" $RGB "$TMP/cond-img2.raw"

# The same labels as a palette PNG (indices = labels, colours arbitrary).
"$PYTHON" - "$GOLDEN/conditional/labels.npy" "$TMP/labels-pal8.png" <<'PY'
import struct, sys, zlib
import numpy as np
lab = np.load(sys.argv[1]).astype(np.uint8)
h, w = lab.shape
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
pal = bytes((37 * i + 11) % 256 for i in range(256 * 3))
raw = b"".join(b"\0" + lab[y].tobytes() for y in range(h))
png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
       + chunk(b"PLTE", pal) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
open(sys.argv[2], "wb").write(png)
PY
ffcheck "vqgan_synth=top_k=1 on conditional labels as a palette (pal8) PNG gives conditional/image.npy" \
    "$TMP/cond-img3.raw" "$GOLDEN/conditional/image.npy" image \
    -i "$TMP/labels-pal8.png" -vf "vqgan_synth=model=$COND:top_k=1" $RGB "$TMP/cond-img3.raw"
ffcheck "vqgan_encode=stage=cond on the palette PNG equals conditional/cond_indices.npy" \
    "$TMP/cond-idx3.raw" "$GOLDEN/conditional/cond_indices.npy" tokens \
    -i "$TMP/labels-pal8.png" -vf "vqgan_encode=model=$COND:stage=cond" $RAW16 "$TMP/cond-idx3.raw"

class=$(npy_int "$GOLDEN/classcond/class_id.npy")
ffcheck "vqgan_synth=top_k=1:class=$class on a 32x32 color source gives classcond/image.npy" \
    "$TMP/cls-img.raw" "$GOLDEN/classcond/image.npy" image \
    -f lavfi -i "color=s=32x32:d=0.04" -vf "vqgan_synth=model=$CLS:top_k=1:class=$class" \
    $RGB "$TMP/cls-img.raw"

finish
