#!/bin/sh
# FFmpeg's conventions: runtime commands (sendcmd) applied between frames,
# refused values keep the old one and the run goes on; per-frame statistics
# as lavfi.vqgan.* frame metadata (ffprobe -show_frames, the metadata filter);
# an option or command that does not apply is named in a warning.
. "$(dirname "$0")/testlib"

MODEL=$ROOT/samples/models/default.gguf
# Six frames of a panning label video (8 fps: frame 3 is at 0.375 s), 64x32
# (small: eleven runs).
IN="-i $ROOT/samples/labels_pan.mkv -frames:v 6"
PRE="format=gray8,crop=64:32:0:0"
SYN="vqgan_synth=model=$MODEL:top_k=16"
# md5s FILE FIRST LAST: the picture checksums of frames FIRST..LAST (0-based)
md5s() { frames "$1" | sed -n "$(($2 + 1)),$(($3 + 1))p" | awk -F, '{print $NF}' | tr -d ' '; }

ff $IN -vf "$PRE,$SYN:seed=1" -f framemd5 "$TMP/seed1"
ff $IN -vf "$PRE,$SYN:seed=2" -f framemd5 "$TMP/seed2"
check "seed=1 and seed=2 give other pictures" [ "$(md5s "$TMP/seed1" 0 5)" != "$(md5s "$TMP/seed2" 0 5)" ]
ff $IN -vf "$PRE,sendcmd=c='0.375 vqgan_synth seed 2',$SYN:seed=1" -f framemd5 "$TMP/cmd"
check "sendcmd seed=2 at frame 3: the run gives 6 frames" [ "$(frames "$TMP/cmd" | wc -l)" -eq 6 ]
check "sendcmd seed=2 at frame 3: frames 0-2 as seed=1's" [ "$(md5s "$TMP/cmd" 0 2)" = "$(md5s "$TMP/seed1" 0 2)" ]
check "sendcmd seed=2 at frame 3: frames 3-5 as seed=2's from the start" \
    [ "$(md5s "$TMP/cmd" 3 5)" = "$(md5s "$TMP/seed2" 3 5)" ]

# Temporal reuse keeps its promise across a command (identical to off).
ff $IN -vf "$PRE,sendcmd=c='0.375 vqgan_synth temperature 0.7',$SYN:seed=1:temporal=reuse" -f framemd5 "$TMP/t-reuse"
ff $IN -vf "$PRE,sendcmd=c='0.375 vqgan_synth temperature 0.7',$SYN:seed=1" -f framemd5 "$TMP/t-off"
check "temperature command under temporal=reuse: frames as temporal=off's" \
    [ "$(md5s "$TMP/t-reuse" 0 5)" = "$(md5s "$TMP/t-off" 0 5)" ]

# Refused values: out of the option's range, invalid for the sampler, above
# the model's vocabulary; each is reported, the run goes on with the old value.
for bad in "top_p 5" "temperature 0" "top_k 100000" "fast 1000" "map 3=999"; do
    ff -loglevel error $IN -vf "$PRE,sendcmd=c='0.25 vqgan_synth $bad',$SYN:seed=1" -f framemd5 "$TMP/bad"
    st=$?
    check "runtime $bad: refused, the run continues (exit 0, 6 frames)" \
        eval '[ $st -eq 0 ] && [ "$(frames "$TMP/bad" | wc -l)" -eq 6 ]'
    check "runtime $bad: the message says the old value is kept" \
        grep -q "Command ${bad% *}=${bad#* } refused; the old value is kept" "$TMP/stderr"
    check "runtime $bad: every frame as without the command" [ "$(md5s "$TMP/bad" 0 5)" = "$(md5s "$TMP/seed1" 0 5)" ]
done

# Per-frame statistics as frame metadata.
FFPROBE=$(dirname "$FFMPEG")/ffprobe
"$FFPROBE" -v error -f lavfi -i "movie=$ROOT/samples/labels_pan.mkv,trim=end_frame=4,$PRE,$SYN:seed=1:temporal=reuse" \
    -show_frames -of flat >"$TMP/probe" 2>"$TMP/stderr"
n=$(grep -c '^frames\.frame\.[0-9]*\.media_type="video"' "$TMP/probe")
check "ffprobe -show_frames: 4 frames" [ "$n" -eq 4 ]
for key in sampled reused shift_x shift_y seconds tokens_per_second; do
    c=$(grep -c "^frames\.frame\.[0-9]*\.tags\.lavfi_vqgan_$key=" "$TMP/probe")
    check "ffprobe -show_frames: lavfi.vqgan.$key on every frame ($c of $n)" eval '[ "$c" -eq "$n" ] && [ "$n" -gt 0 ]'
done
# frame 0: what the filter's log line says it sampled; frame 1 (reuse, same labels shifted) some reused
ff -loglevel info $IN -frames:v 1 -vf "$PRE,$SYN:seed=1" -f null -
n0=$(sed -n 's/.*frame 0: \([0-9]*\) tokens sampled.*/\1/p' "$TMP/stderr")
check "lavfi.vqgan.sampled of frame 0 is the log line's count (${n0:-?})" \
    grep -q "^frames\.frame\.0\.tags\.lavfi_vqgan_sampled=\"${n0:-x}\"" "$TMP/probe"
check "lavfi.vqgan.seconds is a positive number" \
    grep -q '^frames\.frame\.0\.tags\.lavfi_vqgan_seconds="[0-9]*\.[0-9]*"' "$TMP/probe"
ff -loglevel info $IN -vf "$PRE,$SYN:seed=1,metadata=mode=print:key=lavfi.vqgan.sampled" -f null -
check "the metadata filter reads lavfi.vqgan.sampled on every frame (at least 6)" \
    [ "$(grep -c 'lavfi.vqgan.sampled=' "$TMP/stderr")" -ge 6 ]

# options that do not apply say so, as commands too: class on a segmentation
# model (the option and the command), map on vqgan_encode=stage=image
ff -loglevel warning $IN -frames:v 1 -vf "$PRE,$SYN:class=3" -f null -
check "class=3 on a segmentation model: a warning that it is ignored" grep -q "segmentation-conditional; class=3 is ignored" "$TMP/stderr"
ff -loglevel warning $IN -frames:v 1 -vf "$PRE,sendcmd=c='0 vqgan_synth class 5',$SYN" -f null -
check "the command class=5 on a segmentation model: a warning that it is ignored" grep -q "Command class=5: .* is not class-conditional; ignored" "$TMP/stderr"
ff -loglevel warning -i "$GOLDEN/vqgan/x.png" -vf "sendcmd=c='0 vqgan_encode map 0=1',vqgan_encode=model=$(model vqgan)" -f null -
check "the command map on vqgan_encode=stage=image: a warning that it is ignored" grep -q "Command map=0=1: the label options apply to stage=cond only; ignored" "$TMP/stderr"
finish
