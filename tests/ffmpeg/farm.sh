#!/bin/sh
# tools/vqgan-farm on a real Slurm (docs/farm.md): a one-node cluster on this
# machine (tests/ffmpeg/slurm_cluster: munged, slurmctld and slurmd started
# directly from a generated slurm.conf, 2 CPUs, loopback only, state under
# $TMP; Debian's slurm-wlm and munge installed when missing), stopped on exit
# whatever the result.
#
#  - 12 frames of samples/labels_pan.mkv in 4 tasks with temporal=follow (the
#    origins pre-pass, then each task from its first frame's origin), joined:
#    every frame identical (framemd5) to the one-process render; OUTPUT in a
#    directory whose name holds a space and a '%';
#  - 12 frames of samples/labels_moving.mkv, with a WAV track muxed in, in 4
#    tasks with temporal=reuse; one task is cancelled (scancel of its array
#    element) in the middle of its second frame: no segment counts as done,
#    status says so, the join does not run and no output appears; resume
#    resubmits that task alone and the joined video's frames are identical
#    to the one-process render, its audio packets the input's;
#  - refusals: a frame range past the end, sbatch not on PATH (nothing
#    submitted, no job directory), a model missing on the node when the
#    task runs (a failed task naming the model and the node, no output).
. "$(dirname "$0")/testlib"

FARM="$PYTHON $ROOT/tools/vqgan-farm"
CL=$TMP/cluster
MODEL=$ROOT/samples/models/default.gguf
SYNTH="model=$MODEL:seed=7:top_k=32"
# one thread everywhere: the tasks get threads=1 from their one CPU, and the
# one-process renders ask for it (frames do not depend on the thread count,
# determinism.sh checks that); on a busy 2-core machine two threads of one
# process wait on each other at every parallel region
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
trap 'sh "$ROOT/tests/ffmpeg/slurm_cluster" stop "$CL"; rm -rf "$TMP"' EXIT

# the sample videos fitted to the model's factor (testlib's samples_divisor)
PAN=$ROOT/samples/labels_pan.mkv MOVING=$ROOT/samples/labels_moving.mkv
S=$(samples_divisor "$MODEL")
if [ "$S" -gt 1 ]; then
    for v in pan moving; do
        ff -i "$ROOT/samples/labels_$v.mkv" -vf "scale=iw/$S:ih/$S:flags=neighbor" -c:v ffv1 "$TMP/labels_$v.mkv" ||
            { notok "scaling labels_$v.mkv by 1/$S"; sed 's/^/# /' "$TMP/stderr"; }
    done
    PAN=$TMP/labels_pan.mkv MOVING=$TMP/labels_moving.mkv
fi

if sh "$ROOT/tests/ffmpeg/slurm_cluster" start "$CL" 2>"$TMP/cluster.err"; then
    ok "a one-node Slurm cluster (munged, slurmctld, slurmd; 2 CPUs, loopback) started"
else
    notok "a one-node Slurm cluster started:"; sed 's/^/# /' "$TMP/cluster.err"; finish
fi
export SLURM_CONF=$CL/slurm.conf

# wait_idle SECONDS: until no job is queued or running
wait_idle() {
    _n=$(( $1 * 2 ))
    while [ $_n -gt 0 ]; do
        [ -z "$(squeue -h -o %i 2>/dev/null)" ] && return 0
        sleep 0.5; _n=$((_n - 1))
    done
    echo "# still queued after $1 s:"; squeue | sed 's/^/#   /'
    return 1
}
# frames FILE OUT: the decoded frames' framemd5 lines (rgb24; timestamps,
# sizes and hashes)
frames() {
    "$FFMPEG" -nostdin -hide_banner -loglevel error -i "$1" -map 0:v:0 -pix_fmt rgb24 -f framemd5 - 2>/dev/null |
        grep -v '^#' > "$2"
}
# same_frames A B N: both hold the same N frames
same_frames() {
    frames "$1" "$TMP/fa"; frames "$2" "$TMP/fb"
    [ "$(wc -l < "$TMP/fa")" -eq "$3" ] && cmp -s "$TMP/fa" "$TMP/fb" ||
        { echo "# $(wc -l < "$TMP/fa") and $(wc -l < "$TMP/fb") frames; first difference:"; diff "$TMP/fa" "$TMP/fb" | head -3 | sed 's/^/#   /'; return 1; }
}

# ---- refusals --------------------------------------------------------------
out=$TMP/past.mkv
$FARM submit "$PAN" "$out" --frames 30 --frames-per-task 3 --ffmpeg "$FFMPEG" \
    --filter "$SYNTH" >"$TMP/o" 2>"$TMP/e"; rc=$?
check "a frame range past the end is refused: \"$(cat "$TMP/e")\"" \
    sh -c "[ $rc -ne 0 ] && grep -q 'past the end.*24 frames' '$TMP/e' && [ ! -e '$out' ] && [ ! -e '$out.farm' ]"
env PATH=/nonexistent $FARM submit "$PAN" "$out" --frames 3 --frames-per-task 3 \
    --ffmpeg "$FFMPEG" --filter "$SYNTH" >"$TMP/o" 2>"$TMP/e"; rc=$?
check "sbatch not on PATH is refused, nothing written: \"$(cat "$TMP/e")\"" \
    sh -c "[ $rc -ne 0 ] && grep -q 'sbatch was not found' '$TMP/e' && [ ! -e '$out' ] && [ ! -e '$out.farm' ]"

# a model that is there at submission and gone when the task runs
cp "$MODEL" "$TMP/gone.gguf"
out=$TMP/gone.mkv
$FARM submit "$MOVING" "$out" --frames 4 --frames-per-task 2 --ffmpeg "$FFMPEG" \
    --filter "model=$TMP/gone.gguf:seed=7:top_k=32:temporal=reuse" --sbatch=--hold >"$TMP/o" 2>&1
rm -f "$TMP/gone.gguf"
for j in $(squeue -h -o %F | sort -u); do scontrol release "$j"; done
wait_idle 120
$FARM status "$out" >"$TMP/st" 2>&1; rc=$?
check "a model missing on the node: the tasks fail naming it and the node, no output (status $rc)" \
    sh -c "[ $rc -eq 1 ] && grep -q 'failed.*model $TMP/gone.gguf is missing or unreadable on node' '$TMP/st' &&
           grep -q 'join: not run' '$TMP/st' && [ ! -e '$out' ]"
sed 's/^/# /' "$TMP/st" | head -4

# ---- follow: 12 frames of the pan in 4 tasks --------------------------------
ff -i "$PAN" -frames:v 12 -vf "vqgan_synth=$SYNTH:threads=1:temporal=follow" -c:v ffv1 "$TMP/ref_pan.mkv" ||
    { notok "one-process render of labels_pan.mkv"; sed 's/^/# /' "$TMP/stderr"; }
out="$TMP/run 50%/pan.mkv"      # Slurm expands %-patterns in --output: vqgan-farm writes %%
$FARM submit "$PAN" "$out" --frames 12 --frames-per-task 3 --ffmpeg "$FFMPEG" \
    --filter "$SYNTH:temporal=follow" >"$TMP/o" 2>&1 || { notok "submit labels_pan.mkv"; sed 's/^/# /' "$TMP/o"; }
wait_idle 900
$FARM status "$out" >"$TMP/st" 2>&1; rc=$?
check "follow: the origins pre-pass, 4 tasks and the join done (status $rc)" \
    sh -c "[ $rc -eq 0 ] && grep -q '^origins: done' '$TMP/st' && grep -q '^complete:' '$TMP/st'"
sed 's/^/# /' "$TMP/st"
echo "# origins (frame x y) at the tasks' first frames: $(awk '$1 % 3 == 0 { printf "%s(%s,%s) ", $1, $2, $3 }' "$out.farm/origins.txt" 2>/dev/null)"
check "follow: 12 joined frames identical (framemd5) to the one-process render" \
    same_frames "$TMP/ref_pan.mkv" "$out" 12
check "follow: the tasks after the first start at a moved origin (else this proves nothing)" \
    sh -c "awk '\$1 == 9 && (\$2 != 0 || \$3 != 0) { f = 1 } END { exit !f }' '$out.farm/origins.txt'"

# ---- reuse, one task cancelled mid-frame, resume ----------------------------
"$PYTHON" - "$TMP/tone.wav" <<'EOF'
import math, struct, sys, wave
with wave.open(sys.argv[1], "wb") as w:       # 3 s of 440 Hz, 16-bit mono
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
    w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * t / 8000)))
                           for t in range(24000)))
EOF
ff -i "$MOVING" -i "$TMP/tone.wav" -map 0:v -map 1:a -c copy "$TMP/moving_av.mkv" ||
    { notok "muxing a WAV track into labels_moving.mkv"; sed 's/^/# /' "$TMP/stderr"; }
ff -i "$TMP/moving_av.mkv" -frames:v 12 -map 0:v -vf "vqgan_synth=$SYNTH:threads=1:temporal=reuse" -c:v ffv1 "$TMP/ref_mov.mkv" ||
    { notok "one-process render of labels_moving.mkv"; sed 's/^/# /' "$TMP/stderr"; }
out=$TMP/mov.mkv
$FARM submit "$TMP/moving_av.mkv" "$out" --frames 12 --frames-per-task 3 --ffmpeg "$FFMPEG" \
    --filter "$SYNTH:temporal=reuse" >"$TMP/o" 2>&1 || { notok "submit labels_moving.mkv"; sed 's/^/# /' "$TMP/o"; }
arr=$(sed -n 's/.*job array \([0-9]*\).*/\1/p' "$TMP/o")
# task 2 runs after 0 and 1 (2 CPUs): cancel it once its first frame is logged
log=$out.farm/logs/task-00002.log
n=600
while [ $n -gt 0 ] && ! grep -q '\] frame 0:' "$log" 2>/dev/null; do sleep 0.5; n=$((n - 1)); done
scancel "${arr}_2"
echo "# cancelled ${arr}_2 after: $(grep '\] frame 0:' "$log" 2>/dev/null | sed 's/.*\] //')"
wait_idle 900
$FARM status "$out" >"$TMP/st" 2>&1; rc=$?
sed 's/^/# /' "$TMP/st"
check "reuse, task 2 cancelled mid-frame: no segment counted, status says so, no join, no output (status $rc)" \
    sh -c "[ $rc -eq 1 ] && [ ! -e '$out.farm/seg/00002.mkv' ] && grep -Eq '^task 2 .* (failed|missing)' '$TMP/st' &&
           [ \$(grep -c ' done ' '$TMP/st') -eq 3 ] && grep -q 'join: not run' '$TMP/st' && [ ! -e '$out' ]"
echo "# left by the cancelled task: $(ls -A "$out.farm/seg" | tr '\n' ' ')"
$FARM resume "$out" >"$TMP/o" 2>&1; rc=$?
check "resume resubmits task 2 alone: \"$(head -1 "$TMP/o")\"" \
    sh -c "[ $rc -eq 0 ] && grep -q 'resubmitted 1 of 4 tasks (2)' '$TMP/o'"
wait_idle 900
$FARM status "$out" >"$TMP/st" 2>&1; rc=$?
check "reuse: complete after resume (status $rc), no partial segment left" \
    sh -c "[ $rc -eq 0 ] && grep -q '^complete:' '$TMP/st' && [ -z \"\$(ls -A '$out.farm/seg' | grep part)\" ]"
check "reuse: 12 joined frames identical (framemd5) to the one-process render" \
    same_frames "$TMP/ref_mov.mkv" "$out" 12
"$FFMPEG" -nostdin -loglevel error -i "$TMP/moving_av.mkv" -map 0:a -c copy -f framemd5 - 2>/dev/null | grep -v '^#' | cut -d, -f6 > "$TMP/a_in"
"$FFMPEG" -nostdin -loglevel error -i "$out" -map 0:a -c copy -f framemd5 - 2>/dev/null | grep -v '^#' | cut -d, -f6 > "$TMP/a_out"
check "reuse: the input's audio copied ($(wc -l < "$TMP/a_out") packets, the input's first ones)" \
    sh -c "[ -s '$TMP/a_out' ] && head -n \$(wc -l < '$TMP/a_out') '$TMP/a_in' | cmp -s - '$TMP/a_out'"
finish
