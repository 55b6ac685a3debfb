#!/bin/sh
# Bad models, options and inputs fail cleanly: a non-zero exit (ffmpeg's own
# exit codes are (-AVERROR) & 255, e.g. 234 for EINVAL, so "no crash" means
# "not killed by a signal"), and a message naming the file, value and range.
. "$(dirname "$0")/testlib"

VQ=$(model vqgan)
COND=$(model conditional)
CLS=$(model classcond)
X="$GOLDEN/vqgan/x.png"
LABELS="$GOLDEN/conditional/labels.png"

# fails DESCRIPTION MESSAGE-REGEX FFMPEG-ARGS...
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

mkdir -p "$TMP/adir"
head -c 100000 "$VQ" >"$TMP/truncated.gguf"
"$PYTHON" -c 'import sys; sys.stdout.buffer.write(bytes([200]) * (64 * 48))' >"$TMP/unknown.gray"

fails "missing model file" "Cannot open model file '$TMP/nope.gguf'.*No such file" \
    -i "$X" -vf "vqgan_encode=model=$TMP/nope.gguf" -f null -
fails "model path is a directory" "'$TMP/adir' is a directory" \
    -i "$X" -vf "vqgan_synth=model=$TMP/adir:mode=decode" -f null -
fails "truncated model file" "Cannot load model file '$TMP/truncated.gguf'" \
    -i "$X" -vf "vqgan_encode=model=$TMP/truncated.gguf" -f null -
fails "stage=cond on a model without a condition stage" "stage=cond needs a spatial condition.*$VQ" \
    -i "$X" -vf "vqgan_encode=model=$VQ:stage=cond" -f null -
fails "mode=sample on a tokenizer-only model" "mode=sample needs a transformer.*$VQ" \
    -i "$X" -vf "vqgan_synth=model=$VQ" -f null -
fails "negative temperature" "-1.*temperature.*out of range \\[0 - 100\\]" \
    -i "$LABELS" -vf "vqgan_synth=model=$COND:temperature=-1" -f null -
fails "zero temperature" "temperature = 0 must be a finite value > 0" \
    -i "$LABELS" -vf "vqgan_synth=model=$COND:temperature=0" -f null -
fails "top_k above the vocabulary" "top_k = 1000 is above the model's vocabulary.*0\.\.64" \
    -i "$LABELS" -vf "vqgan_synth=model=$COND:top_k=1000" -f null -
fails "unknown label id" "Label id 200 at \(0,0\) is not known.*0\.\.7" \
    -f rawvideo -pix_fmt gray8 -s 64x48 -i "$TMP/unknown.gray" -vf "vqgan_synth=model=$COND:top_k=1" -f null -
fails "unknown label id in vqgan_encode=stage=cond" "Label id 200 at \(0,0\) is not known.*0\.\.7" \
    -f rawvideo -pix_fmt gray8 -s 64x48 -i "$TMP/unknown.gray" -vf "vqgan_encode=model=$COND:stage=cond" -f null -
fails "map target outside the labels" "map: target label 9 .*0\.\.7" \
    -i "$LABELS" -vf "vqgan_synth=model=$COND:map=200=9" -f null -
fails "class above the model's classes" "class=64 is outside.*0\.\.63" \
    -f lavfi -i color=s=32x32:d=0.04 -vf "vqgan_synth=model=$CLS:class=64" -f null -
# (inputs larger than the context slide the window: tests/ffmpeg/families.sh)
fails "class-conditional input larger than the largest grid" "gives a 1025x1 token grid.*grids up to 1024x1024" \
    -f lavfi -i color=s=8200x8:d=0.04 -vf "vqgan_synth=model=$CLS" -f null -
fails "condition tokens fed to mode=decode" "Input holds cond tokens.*mode=decode" \
    -i "$LABELS" -vf "vqgan_encode=model=$COND:stage=cond,vqgan_synth=model=$COND:mode=decode" -f null -
fails "RGB picture fed to a segmentation model" "Input format rgb24 holds colour-coded labels, and the model carries no palette: set palette=FILE.*format=gray8" \
    -i "$X" -vf "vqgan_synth=model=$COND" -f null -
fails "mode=origin with output=tokens" "output=tokens with mode=origin has no image tokens to output" \
    -i "$LABELS" -vf "vqgan_synth=model=$COND:mode=origin:output=tokens" -f null -
fails "mode=origin with complete=" "complete=alpha samples the masked cells: it needs mode=sample; mode=origin" \
    -i "$LABELS" -i "$X" -filter_complex "[0][1]vqgan_synth=model=$COND:complete=alpha:mode=origin" -f null -
fails "complete= with a condition input that has no frame" "the condition input \(input 0\) ended before its first frame" \
    -i "$LABELS" -f lavfi -i color=s=128x72:d=0.04 \
    -filter_complex "[0]trim=end_frame=0[c];[1]format=rgba[p];[c][p]vqgan_synth=model=$COND:complete=alpha" -f null -
# stage=cond: a yuv label video is refused, not converted to rgb24 and read as colours
fails "vqgan_encode=stage=cond on yuv444p labels" "Input format yuv444p cannot be used.*segmentation-conditional.*format=gray8" \
    -i "$LABELS" -vf "format=yuv444p,vqgan_encode=model=$COND:stage=cond" -f null -
fails "vqgan_encode=stage=cond, depth model, an rgb24 picture" "Input format rgb24 cannot be used.*depth-conditioned.*format=gray16" \
    -i "$X" -vf "vqgan_encode=model=$(model depth):stage=cond" -f null -

st=$(run_status "$FFMPEG" -nostdin -hide_banner -loglevel error -y -f rawvideo -pix_fmt gray8 -s 64x48 \
    -i "$TMP/unknown.gray" -vf "vqgan_synth=model=$COND:top_k=1:map=200=3" -f null -)
check "map=200=3 makes the unknown label usable ($st)" [ "$st" = "exit 0" ]

finish
