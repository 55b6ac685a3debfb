#!/bin/sh
# render_demo.sh: the demo render of `make demo` (mk/demo.mk).
#
#   sh tools/render_demo.sh
#
# Renders a sample label video (gray8 class ids, FFV1) with the default model
# (vqgan_synth without model=: samples/models/default.gguf, the path built
# into the filter) to H.264, writes a side-by-side picture of the first and
# last frames (colourised labels | synthesis), prints the speed and checks the
# result with ffprobe. Deterministic: fixed seed, every draw keyed to
# (seed, position), x264 and the muxers in bitexact mode.
#
# Environment (defaults in brackets):
#   DEMO_LABELS   label video            [samples/labels_pan.mkv]
#   DEMO_OUT      the video              [build/demo.mp4]
#   DEMO_PNG      the picture            [build/demo.png]
#   DEMO_FRAMES   frames to render       [0 = all of the video]
#   DEMO_SYNTH    vqgan_synth options    [seed=7:top_k=32:temporal=follow]
#   FFMPEG, FFPROBE                      [build/ffmpeg, build/ffprobe]
#   PYTHON                               [/usr/bin/python3]

set -e

LABELS=${DEMO_LABELS:-samples/labels_pan.mkv}
OUT=${DEMO_OUT:-build/demo.mp4}
PNG=${DEMO_PNG:-build/demo.png}
FRAMES=${DEMO_FRAMES:-0}
SYNTH=${DEMO_SYNTH:-seed=7:top_k=32:temporal=follow}
FFMPEG=${FFMPEG:-build/ffmpeg}
FFPROBE=${FFPROBE:-build/ffprobe}
PYTHON=${PYTHON:-/usr/bin/python3}

# OpenMP threads that spin while waiting crawl when the cores are shared.
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export OMP_WAIT_POLICY

die() { echo "render_demo: $*" >&2; exit 1; }

[ -x "$FFMPEG" ] || die "$FFMPEG not found (make ffmpeg)"
[ -f "$LABELS" ] || die "$LABELS not found"

outdir=$(dirname "$OUT")
work=$outdir/demo-frames
log=$outdir/demo.log
rm -rf "$work"
mkdir -p "$work/labels" "$work/synth" "$(dirname "$PNG")"

trim=""
[ "$FRAMES" -gt 0 ] && trim="trim=end_frame=$FRAMES,"

echo "render_demo: $LABELS -> $OUT (vqgan_synth=$SYNTH, default model; log: $log)"
# One run: the synthesis goes to H.264 and, losslessly, to PNG frames for the
# picture. The filter logs one line per frame at info level; show those.
start=$(date +%s.%N)
{ "$FFMPEG" -hide_banner -nostdin -nostats -loglevel info -y -i "$LABELS" \
      -filter_complex "[0:v]${trim}vqgan_synth=$SYNTH,split[v][p]" \
      -map "[v]" -c:v libx264 -preset medium -crf 18 -pix_fmt yuv420p \
          -fflags +bitexact -flags:v +bitexact -movflags +faststart "$OUT" \
      -map "[p]" -fflags +bitexact -flags:v +bitexact "$work/synth/%03d.png" \
      2>&1; echo $? >"$work/rc"; } | tee "$log" | grep --line-buffered 'vqgan_synth.*frame [0-9]*:' || true
end=$(date +%s.%N)
rc=$(cat "$work/rc")
[ "$rc" = 0 ] || { tail -n 20 "$log" >&2; die "ffmpeg failed (exit status $rc), see $log"; }

# The speed: the filter's own per-frame seconds, and the wall time of the run
# (decoding the labels, x264 and the PNGs included).
awk -v start="$start" -v end="$end" '
    BEGIN { wall = end - start }
    /vqgan_synth.*frame [0-9]+:.* in [0-9.]+ s/ {
        for (i = 1; i < NF; i++) if ($(i + 1) == "s" && $i ~ /^[0-9.]+$/) { t += $i; n++ }
        if (match($0, /[0-9]+x[0-9]+ decoded/)) size = substr($0, RSTART, RLENGTH - 8)
    }
    END {
        if (n == 0) { print "render_demo: no per-frame lines from vqgan_synth in the log"; exit 1 }
        printf "render_demo: speed: %d frames (%s) in %.1f s of synthesis, %.2f s/frame; whole run %.1f s wall, %.2f s/frame\n",
               n, size, t, t / n, wall, wall / n
    }' "$log"

# The labels of the same frames, as gray8 PNGs.
"$FFMPEG" -hide_banner -nostdin -loglevel error -y -i "$LABELS" -vf "${trim}null" \
    -fflags +bitexact -flags:v +bitexact "$work/labels/%03d.png"

first=$(ls "$work/synth" | sort | head -n1)
last=$(ls "$work/synth" | sort | tail -n1)
[ -f "$work/labels/$first" ] && [ -f "$work/labels/$last" ] || die "label frames missing in $work/labels"
"$PYTHON" tools/make_demo_picture.py -o "$PNG" \
    "$work/labels/$first" "$work/synth/$first" \
    "$work/labels/$last" "$work/synth/$last"

# Check the video.
if [ -x "$FFPROBE" ]; then
    probe=$("$FFPROBE" -v error -select_streams v:0 -count_frames \
        -show_entries stream=codec_name,width,height,pix_fmt,nb_read_frames -of default=nw=1 "$OUT")
    echo "$probe" | sed 's/^/render_demo: ffprobe: /'
    want=$(ls "$work/synth" | wc -l)
    echo "$probe" | grep -qx 'codec_name=h264' || die "$OUT is not H.264"
    echo "$probe" | grep -qx "nb_read_frames=$want" || die "$OUT does not hold $want frames"
fi
echo "render_demo: wrote $OUT and $PNG"
