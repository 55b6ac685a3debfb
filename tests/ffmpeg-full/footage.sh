#!/bin/sh
# tests/ffmpeg-full/footage.sh FFMPEG: the full profile's ffmpeg
# (`make ffmpeg-full`, build/ffmpeg-full/ffmpeg) with a user's own media,
# made by Debian's own ffmpeg (/usr/bin/ffmpeg, the `ffmpeg` package,
# installed when missing):
#
#  - a Matroska file holding a lossless FFV1 label video and an Opus audio
#    track: vqgan_synth on the video, the audio copied (-c:a copy) into an MP4
#    with H.264 (libx264); the MP4 holds h264 + opus, its audio packets are
#    the input's (hashes equal), the video's frames are those of the same
#    synthesis written losslessly;
#  - the same with an AAC track;
#  - ProRes (.mov) and VP9 (.webm) clips of real footage (a pan over a photo
#    of ../shared/data/sflckr) through vqgan_encode=stage=image: one token per
#    cell (the model's factor) for every frame, and the tokens of each clip equal to those
#    of the same frames decoded by Debian's ffmpeg and given as raw rgb24.
# `make check-full` runs it.  Output as tests/ffmpeg/*.sh.
. "$(dirname "$0")/../ffmpeg/testlib"

DEB=${DEBIAN_FFMPEG:-/usr/bin/ffmpeg}
if [ ! -x "$DEB" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q ffmpeg >"$TMP/apt.log" 2>&1 ||
        { notok "Debian's ffmpeg installed (apt-get install ffmpeg)"; tail -n 3 "$TMP/apt.log" | sed 's/^/# /'; finish; }
fi
deb() { "$DEB" -nostdin -hide_banner -loglevel error -y "$@" 2>"$TMP/deb.stderr"; }
echo "# Debian's ffmpeg: $("$DEB" -hide_banner -version | head -n 1)"
echo "# full profile:    $("$FFMPEG" -hide_banner -version | head -n 1)"
MODEL=$ROOT/samples/models/default.gguf
SYN="vqgan_synth=model=$MODEL:seed=3:top_k=32"

# ---- 1. Matroska FFV1 labels + Opus / AAC -> MP4 H.264 + the same audio
LABELS=$ROOT/samples/labels_pan.mkv
for a in opus aac; do
    case $a in opus) enc="-c:a libopus -b:a 64k" ;; aac) enc="-c:a aac -b:a 96k" ;; esac
    deb -i "$LABELS" -f lavfi -i "sine=frequency=440:sample_rate=48000" -frames:v 4 -t 0.5 \
        -map 0:v -map 1:a -c:v ffv1 -pix_fmt gray $enc "$TMP/in-$a.mkv"
    check "Debian's ffmpeg wrote a Matroska file with FFV1 labels and $a audio" \
        sh -c "\"$DEB\" -hide_banner -i \"$TMP/in-$a.mkv\" 2>&1 | grep -q 'Video: ffv1' && \"$DEB\" -hide_banner -i \"$TMP/in-$a.mkv\" 2>&1 | grep -q 'Audio: $a'"
    if ff -i "$TMP/in-$a.mkv" -map 0:v -map 0:a -vf "$SYN" -c:v libx264 -pix_fmt yuv420p -c:a copy \
          "$TMP/out-$a.mp4"; then
        ok "full profile: vqgan_synth on the FFV1 video, -c:a copy of $a, into MP4 with H.264"
    else
        notok "full profile: vqgan_synth on the FFV1 video, -c:a copy of $a, into MP4 with H.264"
        sed 's/^/# /' "$TMP/stderr" | tail -n 5
    fi
    info=$("$FFMPEG" -hide_banner -i "$TMP/out-$a.mp4" 2>&1)
    check "the MP4 holds h264 video and $a audio" \
        sh -c "printf '%s' \"\$1\" | grep -q 'Video: h264' && printf '%s' \"\$1\" | grep -q 'Audio: $a'" _ "$info"
    ff -i "$TMP/in-$a.mkv" -map 0:a -c copy -f streamhash -hash md5 "$TMP/a-in.hash"
    ff -i "$TMP/out-$a.mp4" -map 0:a -c copy -f streamhash -hash md5 "$TMP/a-out.hash"
    check "the MP4's $a packets are the input's (streamhash equal)" cmp -s "$TMP/a-in.hash" "$TMP/a-out.hash"
    # the video: the synthesis itself, compared losslessly
    ff -i "$TMP/in-$a.mkv" -map 0:v -vf "$SYN" -f framemd5 "$TMP/syn-$a.md5"
    ff -i "$LABELS" -frames:v 4 -vf "format=gray,$SYN" -f framemd5 "$TMP/syn-ref.md5"
    check "vqgan_synth's frames from the Matroska file equal those from the original labels ($a)" \
        sh -c "[ \$(grep -vc '^#' \"$TMP/syn-$a.md5\") -eq 4 ] && cmp -s \"$TMP/syn-$a.md5\" \"$TMP/syn-ref.md5\""
done

# ---- 2. ProRes and VP9 clips of real footage -> vqgan_encode=stage=image
PHOTO=$(ls "$ROOT/../shared/data/sflckr/images/"*.jpg | head -n 1)
deb -loop 1 -framerate 8 -i "$PHOTO" -frames:v 6 \
    -vf "scale=640:-2,crop=256:176:x='n*16':y=16,format=rgb24" -c:v rawvideo -f nut "$TMP/footage.nut"
W=256 H=176
for c in prores vp9; do
    case $c in
        prores) f=$TMP/footage.mov; deb -i "$TMP/footage.nut" -c:v prores_ks -profile:v 2 -pix_fmt yuv422p10le "$f" ;;
        vp9) f=$TMP/footage.webm; deb -i "$TMP/footage.nut" -c:v libvpx-vp9 -b:v 1M -deadline good -cpu-used 8 -pix_fmt yuv420p "$f" ;;
    esac
    check "Debian's ffmpeg wrote a $c clip of real footage" test -s "$f"
    if ff -i "$f" -vf "format=rgb24,vqgan_encode=model=$MODEL:stage=image" -f rawvideo -pix_fmt gray16le "$TMP/$c.tok"; then
        n=$(( $(wc -c <"$TMP/$c.tok") / 2 ))
        # one token per cell of the model's factor (16 or 8) in every frame
        check "full profile decodes $c for vqgan_encode=stage=image: $n tokens for 6 frames of ${W}x$H" \
            [ "$n" -eq $((6 * (W / 16) * (H / 16))) -o "$n" -eq $((6 * (W / 8) * (H / 8))) ]
    else
        notok "full profile decodes $c for vqgan_encode=stage=image"; sed 's/^/# /' "$TMP/stderr" | tail -n 5
    fi
    deb -i "$f" -pix_fmt rgb24 -f rawvideo "$TMP/$c.rgb"
    ff -f rawvideo -pix_fmt rgb24 -s ${W}x$H -i "$TMP/$c.rgb" -vf "vqgan_encode=model=$MODEL:stage=image" \
        -f rawvideo -pix_fmt gray16le "$TMP/$c-deb.tok"
    check "its tokens equal those of the frames decoded by Debian's ffmpeg" cmp -s "$TMP/$c.tok" "$TMP/$c-deb.tok"
done
finish
