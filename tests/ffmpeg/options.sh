#!/bin/sh
# Options, sizes and stream properties: every option listed by -h, the padding
# rule for sizes that are not a multiple of the factor, timestamps, time base
# and sample aspect ratio passed through, a size change mid-stream.
. "$(dirname "$0")/testlib"

COND=$(model conditional)
VQ=$(model vqgan)
LABELS="$GOLDEN/conditional/labels.png"

"$FFMPEG" -hide_banner -h filter=vqgan_synth >"$TMP/help-synth" 2>&1
for o in model mode temperature top_k top_p seed threads class map temporal fast precision; do
    check "-h filter=vqgan_synth lists $o" grep -q "^ *$o " "$TMP/help-synth"
done
"$FFMPEG" -hide_banner -h filter=vqgan_encode >"$TMP/help-encode" 2>&1
for o in model stage threads map precision; do
    check "-h filter=vqgan_encode lists $o" grep -q "^ *$o " "$TMP/help-encode"
done

# bytes FILE: size of a file
bytes() { wc -c <"$1" | tr -d ' '; }

# precision: fp32 is auto, bf16 runs (fp32 where the CPU has no bf16), a bad value is refused
ff -i "$LABELS" -vf "vqgan_synth=model=$COND:top_k=1" -f framemd5 "$TMP/prec-auto"
ff -i "$LABELS" -vf "vqgan_encode=model=$COND:stage=cond:precision=fp32,vqgan_synth=model=$COND:top_k=1:precision=fp32" \
    -f framemd5 "$TMP/prec-fp32"
check "precision=fp32 gives auto's picture" [ "$(frames "$TMP/prec-auto")" = "$(frames "$TMP/prec-fp32")" ]
ff -i "$LABELS" -vf "vqgan_encode=model=$COND:stage=cond:precision=bf16,vqgan_synth=model=$COND:top_k=1:precision=bf16" \
    -f rawvideo -pix_fmt rgb24 "$TMP/prec-bf16.rgb"
check "precision=bf16 runs and gives a 128x72 picture" [ "$(bytes "$TMP/prec-bf16.rgb")" -eq $((128 * 72 * 3)) ]
ff -i "$LABELS" -vf "vqgan_synth=model=$COND:precision=fp16" -f null -
check "precision=fp16 is refused" [ $? -ne 0 ]

ff -i "$LABELS" -vf "crop=125:70:0:0,vqgan_encode=model=$COND:stage=cond" -f rawvideo -pix_fmt gray16le "$TMP/odd.raw"
check "125x70 labels give a 16x9 token grid (edges replicated)" [ "$(bytes "$TMP/odd.raw")" -eq $((16 * 9 * 2)) ]
ff -i "$LABELS" -vf "crop=125:70:0:0,vqgan_synth=model=$COND:top_k=1" -f rawvideo -pix_fmt rgb24 "$TMP/odd.rgb"
check "125x70 labels give a 125x70 picture (cropped back)" [ "$(bytes "$TMP/odd.rgb")" -eq $((125 * 70 * 3)) ]
ff -i "$GOLDEN/vqgan/x.png" -vf "crop=61:45:0:0,vqgan_encode=model=$VQ,vqgan_synth=model=$VQ:mode=decode" \
    -f rawvideo -pix_fmt rgb24 "$TMP/odd-dec.rgb"
check "61x45 picture: tokens 8x6, decoded at grid x factor 64x48" [ "$(bytes "$TMP/odd-dec.rgb")" -eq $((64 * 48 * 3)) ]

# Timestamps, time base, SAR: compare with the same graph minus the filter.
ff -framerate 7 -loop 1 -t 0.5 -i "$LABELS" -vf "setpts=3*PTS+5" -f framemd5 "$TMP/ts-ref"
ff -framerate 7 -loop 1 -t 0.5 -i "$LABELS" -vf "setpts=3*PTS+5,vqgan_synth=model=$COND:top_k=1" -f framemd5 "$TMP/ts-out"
check "time base passes through" [ "$(grep '^#tb' "$TMP/ts-ref")" = "$(grep '^#tb' "$TMP/ts-out")" ]
check "timestamps and durations pass through" \
    [ "$(frames "$TMP/ts-ref" | cut -d, -f1-4)" = "$(frames "$TMP/ts-out" | cut -d, -f1-4)" ]
ff -loglevel info -i "$LABELS" -vf "setsar=3/2,vqgan_synth=model=$COND:top_k=1,showinfo" -f null -
check "sample aspect ratio passes through" grep -q "sar:3/2" "$TMP/stderr"

# Size change mid-stream, within the filter (ffmpeg told not to rebuild the graph).
ff -i "$LABELS" -vf crop=64:48:0:0 "$TMP/seq-1.png" && cp "$LABELS" "$TMP/seq-2.png"
ff -framerate 1 -i "$TMP/seq-%d.png" -vf "vqgan_synth=model=$COND:top_k=1" -f framemd5 "$TMP/change"
check "size change mid-stream (ffmpeg rebuilds the graph) runs" [ $? -eq 0 ]
check "size change mid-stream (ffmpeg rebuilds the graph): two pictures" [ "$(frames "$TMP/change" | wc -l)" -eq 2 ]
ff -reinit_filter 0 -framerate 1 -i "$TMP/seq-%d.png" -vf "vqgan_synth=model=$COND:top_k=1" -f framemd5 "$TMP/change"
check "size change mid-stream (the filter reconfigures itself) runs" [ $? -eq 0 ]
check "size change mid-stream (the filter reconfigures itself): 64x48 then 128x72 pictures" \
    [ "$(frames "$TMP/change" | cut -d, -f5 | tr -d ' ' | tr '\n' ' ')" = "$((64 * 48 * 3)) $((128 * 72 * 3)) " ]
ff -reinit_filter 0 -framerate 1 -i "$TMP/seq-%d.png" \
    -vf "vqgan_encode=model=$COND:stage=cond,vqgan_synth=model=$COND:top_k=1" -f framemd5 "$TMP/change"
check "size change mid-stream through condition tokens (both filters reconfigure) runs" [ $? -eq 0 ]
check "size change mid-stream through condition tokens: 64x48 then 128x72 pictures" \
    [ "$(frames "$TMP/change" | cut -d, -f5 | tr -d ' ' | tr '\n' ' ')" = "$((64 * 48 * 3)) $((128 * 72 * 3)) " ]

# Flipped frames (negative linesize): vflip hands vqgan_synth's output a
# bottom-up buffer and vqgan_encode a bottom-up input; the results equal
# those through a copy (hflip twice), where both were refused before.
X="$GOLDEN/vqgan/x.png"
ff -i "$LABELS" -vf "vqgan_synth=model=$COND:top_k=1,vflip" -f framemd5 "$TMP/vf1"; rc=$?
ff -i "$LABELS" -vf "vqgan_synth=model=$COND:top_k=1,hflip,hflip,vflip" -f framemd5 "$TMP/vf2"
check "vqgan_synth into vflip (a bottom-up output buffer) runs (status $rc), the picture of a copied one" \
    eval '[ $rc -eq 0 ] && [ -n "$(frames "$TMP/vf1")" ] && [ "$(frames "$TMP/vf1")" = "$(frames "$TMP/vf2")" ]'
ff -i "$X" -vf "vflip,vqgan_encode=model=$VQ" -f framemd5 "$TMP/vf3"; rc=$?
ff -i "$X" -vf "vflip,hflip,hflip,vqgan_encode=model=$VQ" -f framemd5 "$TMP/vf4"
check "vflip into vqgan_encode (a bottom-up input) runs (status $rc), the tokens of a copied one" \
    eval '[ $rc -eq 0 ] && [ -n "$(frames "$TMP/vf3")" ] && [ "$(frames "$TMP/vf3")" = "$(frames "$TMP/vf4")" ]'

finish
