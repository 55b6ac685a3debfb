#!/bin/sh
# Video through vqgan_synth with the shipped default model (no model= option)
# on the label videos of samples/: temporal=reuse gives exactly the frames of
# temporal=off on a video with changes while reusing work; a static video
# gives identical frames; follow detects the pan of labels_pan.mkv.
. "$(dirname "$0")/testlib"

MOVING=$ROOT/samples/labels_moving.mkv
PAN=$ROOT/samples/labels_pan.mkv
STATIC=$ROOT/samples/labels_static.mkv

# the videos fitted to the model's factor F (testlib's samples_divisor)
F=$(model_factor "$ROOT/samples/models/default.gguf")
S=$(samples_divisor "$ROOT/samples/models/default.gguf")
W=$((512 / S)) H=$((320 / S))
FIT="scale=$W:$H:flags=neighbor"

# synth OUT VIDEO N CROP OPTIONS: the first N frames of VIDEO, fitted to the
# model's factor and cropped to CROP (w:h:x:y in the 512x320 frame, to keep
# the test short), through vqgan_synth with the default model, as framemd5
synth() {
    _out=$1 _in=$2 _n=$3 _crop=$4; shift 4
    _c=$(echo "$_crop" | awk -F: -v s=$S '{ printf "%d:%d:%d:%d", $1 / s, $2 / s, $3 / s, $4 / s }')
    "$FFMPEG" -nostdin -hide_banner -loglevel info -y -i "$_in" -frames:v "$_n" \
        -vf "$FIT,crop=$_c,vqgan_synth=seed=3:top_k=100:$1" -f framemd5 "$_out" \
        2>"$TMP/stderr.$(basename "$_out")"
}

synth "$TMP/off" "$MOVING" 3 512:320:0:0 "temporal=off";   r1=$?
synth "$TMP/reuse" "$MOVING" 3 512:320:0:0 "temporal=reuse"; r2=$?
check "labels_moving.mkv, 3 frames of ${W}x$H (factor $F), off and reuse, default model: run" [ $r1$r2 = 00 ]
check "the default model is used when no model= is given" \
    grep -q "default.gguf" "$TMP/stderr.off"
check "labels_moving.mkv: temporal=reuse frames identical (framemd5) to temporal=off" \
    sh -c "[ -s '$TMP/off' ] && cmp -s '$TMP/off' '$TMP/reuse'"
check "labels_moving.mkv: temporal=reuse reuses positions after the first frame" \
    grep -q "frame 2: [0-9]* tokens sampled, [1-9][0-9]* reused" "$TMP/stderr.reuse"

# steady: frame 0 is off's; later frames keep the pixels of every cell far
# from the tokens that changed (here the rows above the rolling disc).
# top_k=2, so that the tokens far from the disc stay the same: with
# top_k=100 a position whose window saw a change draws another token, and
# under a model less sure of itself (the f=8 default) those draws cascade in
# raster order until no token is kept; greedy (top_k=1) keeps every token of
# the f=8 model (nothing would change). Cells still at top_k=2, frames 1 and
# 2: 580 and 556 of 640 (f=8 default), 237 and 605 (the former f=16 one).
"$FFMPEG" -nostdin -hide_banner -loglevel error -y -i "$MOVING" -frames:v 1 \
    -vf "$FIT,vqgan_synth=seed=3:top_k=2:temporal=off" -f framemd5 "$TMP/off.greedy"
"$FFMPEG" -nostdin -hide_banner -loglevel error -y -i "$MOVING" -frames:v 3 \
    -vf "$FIT,vqgan_synth=seed=3:top_k=2:temporal=steady" -f rawvideo -pix_fmt rgb24 "$TMP/steady.rgb" \
    2>"$TMP/stderr.steady"
check "labels_moving.mkv with steady: runs" [ $? -eq 0 ]
check "labels_moving.mkv with steady: still ${F}x$F cells between frames, changes near the disc, frame 0 = off's" \
    "$PYTHON" -c '
import hashlib, sys
import numpy as np
W, H, F = (int(v) for v in sys.argv[3:6])
a = np.fromfile(sys.argv[1], dtype=np.uint8).reshape(-1, H, W, 3)
md5 = [l.split(",")[-1].strip() for l in open(sys.argv[2]) if not l.startswith("#")]
cells = lambda d: d.reshape(H // F, F, W // F, F, 3).any(axis=(1, 3, 4))
moved = [cells(a[t] != a[t - 1]) for t in (1, 2)]
still = [int((~m).sum()) for m in moved]
print("# cells still from frame to frame: %s of %d" % (still, moved[0].size))
sys.exit(0 if len(a) == 3 and hashlib.md5(a[0].tobytes()).hexdigest() == md5[0]
         and still[1] > 0 and all(s < moved[0].size for s in still) else 1)
' "$TMP/steady.rgb" "$TMP/off.greedy" $W $H $F

synth "$TMP/static" "$STATIC" 3 256:256:0:64 "temporal=reuse"
check "labels_static.mkv with reuse: runs" [ $? -eq 0 ]
check "labels_static.mkv with reuse: identical consecutive frames" \
    [ "$(frames "$TMP/static" | awk -F, '{print $6}' | sort -u | wc -l)" -eq 1 ]
check "labels_static.mkv with reuse: nothing sampled after the first frame" \
    grep -q "frame 2: 0 tokens sampled" "$TMP/stderr.static"

synth "$TMP/pan" "$PAN" 2 256:256:0:64 "temporal=follow"
check "labels_pan.mkv with follow: runs" [ $? -eq 0 ]
check "labels_pan.mkv with follow: the pan (1 token right) is detected" \
    grep -q "frame 1: .*(shift 1,0)" "$TMP/stderr.pan"
finish
