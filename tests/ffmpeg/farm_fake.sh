#!/bin/sh
# tools/vqgan-farm's own logic against stand-in Slurm commands (sbatch,
# squeue, scancel, scontrol written below into $TMP/bin: sbatch records its
# arguments and either queues the job or runs it at once, expanding Slurm's
# %-patterns), so that what real Slurm rarely does on cue can be made to
# happen: an sbatch refusing the third job of a submission, squeue failing
# while a task runs, a small MaxArraySize. farm.sh runs the tool on a real
# one-node Slurm. Tiny frames (128x80 of labels_pan.mkv, the default model).
#
#  - a refused join cancels the jobs queued before it and leaves no job, so
#    that a corrected submit runs; a cluster's MaxArraySize is checked first;
#  - squeue failing: status exits 2, resume refuses and deletes nothing;
#  - resume refuses the options vqgan-farm sets itself; a damaged job.json
#    is a message, not a traceback; an input changed since submit is refused;
#  - submit refuses an unknown filter option, a container or encoder ffmpeg
#    lacks, and complete=, with nothing written; it takes --vcodec copy;
#    without model= it takes ffmpeg's default; follow with output=tokens
#    renders (the pre-pass outputs its input);
#  - the join keeps every frame when the audio is shorter than the video,
#    keeps the video's place when it starts after the audio; an MP4 whose
#    edit list leaves packets out renders the frames ffmpeg decodes; --pre
#    puts filters before vqgan_synth (and refuses a chain that changes the
#    frame count, a graph, an unknown filter); a '%' in
#    the job directory's path reaches sbatch as '%%'; the hints carry
#    --job-dir.
. "$(dirname "$0")/testlib"

FARM="$PYTHON $ROOT/tools/vqgan-farm"
MODEL=$ROOT/samples/models/default.gguf
SYNTH="model=$MODEL:seed=7:top_k=8:threads=1"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export FAKE=$TMP/slurm
mkdir -p "$TMP/bin" "$FAKE"

cat >"$TMP/bin/sbatch" <<'EOF'
#!/usr/bin/python3
# stand-in sbatch: --parsable's "ID;cluster"; FAKE_FAIL_NAME refuses the job of
# that --job-name; FAKE_QUEUE=1 queues the job (squeue shows it), else it runs
# now (each array index in turn, after its dependencies succeeded)
import json, os, subprocess, sys
fake = os.environ["FAKE"]
args = sys.argv[1:]
with open(fake + "/sbatch.log", "a") as f:
    f.write(json.dumps(args) + "\n")
opt, wrap, i = {}, None, 0
while i < len(args):
    if args[i] == "--wrap":
        wrap = args[i + 1]; i += 2; continue
    k, _, v = args[i].partition("=")
    opt[k] = v; i += 1
if os.environ.get("FAKE_FAIL_NAME") == opt.get("--job-name"):
    sys.exit("sbatch: error: Batch job submission failed: refused for the test")
idx = []
for part in opt.get("--array", "").split(",") if "--array" in opt else []:
    a, _, b = part.partition("-")
    idx += range(int(a), int(b or a) + 1)
cf = fake + "/counter"
jid = int(open(cf).read()) + 1 if os.path.exists(cf) else 100
open(cf, "w").write(str(jid))
print(f"{jid};test")
if os.environ.get("FAKE_QUEUE") or "--hold" in opt:
    with open(fake + "/queue", "a") as q:
        for k in idx or [None]:
            q.write(f"{jid}_{k}|PENDING|Priority\n" if k is not None else f"{jid}|PENDING|Priority\n")
    sys.exit(0)
rcs = json.load(open(fake + "/rc.json")) if os.path.exists(fake + "/rc.json") else {}
deps = opt["--dependency"].split(":")[1:] if "--dependency" in opt else []
def pattern(s, k):
    out, i = "", 0
    while i < len(s):
        if s[i] == "%" and i + 1 < len(s):
            c = s[i + 1]
            out += {"%": "%", "j": str(jid), "A": str(jid), "a": str(k)}.get(c, "%" + c); i += 2
        else:
            out += s[i]; i += 1
    return out
for k in idx or [None]:
    env = dict(os.environ, SLURM_JOB_ID=str(jid))
    if k is not None:
        env.update(SLURM_ARRAY_TASK_ID=str(k), SLURM_ARRAY_JOB_ID=str(jid))
    if any(rcs.get(d, 1) != 0 for d in deps):
        rc = 1
    else:
        with open(pattern(opt["--output"], k), "a") as o:
            rc = subprocess.run(["/bin/sh", "-c", wrap], cwd=opt["--chdir"], env=env, stdout=o, stderr=o,
                                stdin=subprocess.DEVNULL).returncode
    rcs[str(jid)] = rcs.get(str(jid), 0) or rc
json.dump(rcs, open(fake + "/rc.json", "w"))
EOF
cat >"$TMP/bin/squeue" <<'EOF'
#!/bin/sh
[ -n "$FAKE_SQUEUE_FAIL" ] && { echo "slurm_load_jobs error: Socket timed out on send/recv operation" >&2; exit 1; }
[ -f "$FAKE/queue" ] && cat "$FAKE/queue"
exit 0
EOF
cat >"$TMP/bin/scancel" <<'EOF'
#!/bin/sh
echo "$*" >>"$FAKE/scancel.log"
EOF
cat >"$TMP/bin/scontrol" <<'EOF'
#!/bin/sh
[ "$1 $2" = "show config" ] && echo "MaxArraySize            = ${FAKE_MAX_ARRAY:-1001}"
EOF
chmod +x "$TMP/bin/"*
export PATH="$TMP/bin:$PATH"
# fresh: a new stand-in cluster (no queue, no job ids)
fresh() { rm -rf "$FAKE"; mkdir -p "$FAKE"; }

# 6 frames of the pan at 128x80 (8 fps); with a 0.3 s audio track; with the
# video 0.5 s after a 3 s audio track
ff -i "$ROOT/samples/labels_pan.mkv" -frames:v 6 -vf "scale=128:80:flags=neighbor" -c:v ffv1 "$TMP/pan.mkv" ||
    { notok "making the input"; sed 's/^/# /' "$TMP/stderr"; finish; }
"$PYTHON" - "$TMP" <<'EOF'
import math, struct, sys, wave
for name, n in (("short.wav", 2400), ("long.wav", 24000)):
    with wave.open(f"{sys.argv[1]}/{name}", "wb") as w:
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * t / 8000)))
                               for t in range(n)))
EOF
ff -i "$TMP/pan.mkv" -i "$TMP/short.wav" -map 0:v -map 1:a -c copy "$TMP/short_audio.mkv"
ff -itsoffset 0.5 -i "$TMP/pan.mkv" -i "$TMP/long.wav" -map 0:v -map 1:a -c copy "$TMP/late_video.mkv"
# an MP4 whose edit list starts 0.3 s in: 8 packets, 5 frames decoded
# (lossless grey H.264 with 8-frame groups, cut at 0.3 s by stream copy; it
# decodes as yuv420p, whose luma are the ids: rendered with --pre format=gray8;
# FFmpeg 7.1 puts no FFV1 in MP4)
ff -i "$ROOT/samples/labels_pan.mkv" -frames:v 8 -vf "scale=128:80:flags=neighbor" -c:v libx264 -pix_fmt gray \
    -qp 0 -g 8 -bf 2 "$TMP/gop.mp4"
ff -ss 0.3 -i "$TMP/gop.mp4" -c copy "$TMP/edit_list.mp4"

# ---- a submission sbatch refuses half-way ------------------------------------
fresh
out=$TMP/out/partial.mkv
FAKE_QUEUE=1 FAKE_FAIL_NAME=vqgan-farm-join $FARM submit "$TMP/pan.mkv" "$out" --frames-per-task 3 \
    --ffmpeg "$FFMPEG" --filter "$SYNTH:temporal=follow" >"$TMP/o" 2>"$TMP/e"; rc=$?
check "the join refused: the pre-pass and the array queued before it are cancelled, no job left" \
    sh -c "[ $rc -ne 0 ] && grep -q 'were cancelled: nothing was submitted' '$TMP/e' &&
           [ \"\$(cat '$FAKE/scancel.log')\" = '100 101' ] && [ ! -e '$out.farm/job.json' ]"
FAKE_QUEUE=1 $FARM submit "$TMP/pan.mkv" "$out" --frames-per-task 3 --ffmpeg "$FFMPEG" \
    --filter "$SYNTH:temporal=follow" >"$TMP/o" 2>"$TMP/e"; rc=$?
check "then the corrected submit runs (status $rc)" sh -c "[ $rc -eq 0 ] && grep -q 'join: job 104' '$TMP/o'"

# ---- squeue failing while a task runs -----------------------------------------
sed -i 's/^103_0|PENDING|Priority/103_0|RUNNING|None/' "$FAKE/queue"
: >"$out.farm/seg/.00000.103.part"
FAKE_SQUEUE_FAIL=1 $FARM status "$out" >"$TMP/o" 2>"$TMP/e"; rc=$?
check "squeue failing: status exits 2 and says it cannot tell" \
    sh -c "[ $rc -eq 2 ] && grep -q 'squeue failed.*cannot tell' '$TMP/e'"
FAKE_SQUEUE_FAIL=1 $FARM resume "$out" >"$TMP/o" 2>"$TMP/e"; rc=$?
check "squeue failing: resume refuses, the running task's .part is kept, nothing submitted" \
    sh -c "[ $rc -ne 0 ] && [ -e '$out.farm/seg/.00000.103.part' ] && [ \$(wc -l < '$FAKE/sbatch.log') -eq 6 ]"
$FARM status "$out" >"$TMP/o" 2>&1; rc=$?
check "squeue answering: status exits 3 (queued and running)" sh -c "[ $rc -eq 3 ] && grep -q 'running.*job 103_0' '$TMP/o'"

# ---- resume's options, a damaged job, a changed input ---------------------------
$FARM resume "$out" --sbatch=--array=0-99 >"$TMP/o" 2>"$TMP/e"; rc=$?
check "resume refuses --sbatch=--array (vqgan-farm sets it)" sh -c "[ $rc -ne 0 ] && grep -q 'sets this option itself' '$TMP/e'"
mkdir -p "$TMP/out/bad.mkv.farm"
# damaged job records: shapes that are JSON but not a job, written beside a real one
"$PYTHON" -c '
import json, sys
job = json.load(open(sys.argv[1]))
shapes = [("a list", [1, 2]), ("only a version", {"version": 1}), ("a number as jobdir", dict(job, jobdir=3)),
          ("an empty submission record", dict(job, submissions=[{}])),
          ("no mem_mb", {k: v for k, v in job.items() if k != "mem_mb"})]
for i, (name, j) in enumerate(shapes):
    open("%s/job%d.json" % (sys.argv[2], i), "w").write(json.dumps(j))
    print(i, name)
' "$out.farm/job.json" "$TMP" >"$TMP/shapes.txt"
while read -r i name; do
    cp "$TMP/job$i.json" "$TMP/out/bad.mkv.farm/job.json"
    $FARM status "$TMP/out/bad.mkv" >"$TMP/o" 2>"$TMP/e"; rc=$?
    check "a job.json holding $name: a message, no traceback" \
        sh -c "[ $rc -ne 0 ] && grep -q 'vqgan-farm:.*job.json' '$TMP/e' && ! grep -q Traceback '$TMP/e'"
done <"$TMP/shapes.txt"
fresh
cp "$TMP/pan.mkv" "$TMP/changing.mkv"
out=$TMP/out/changed.mkv
FAKE_QUEUE=1 $FARM submit "$TMP/changing.mkv" "$out" --frames-per-task 3 --ffmpeg "$FFMPEG" --filter "$SYNTH" \
    >"$TMP/o" 2>&1 || { notok "submit changing.mkv"; sed 's/^/# /' "$TMP/o"; }
rm "$FAKE/queue"                 # every job gone: resume would render both tasks
ff -i "$ROOT/samples/labels_pan.mkv" -frames:v 6 -vf "scale=128:80:flags=neighbor,vflip" -c:v ffv1 "$TMP/changing.mkv"
$FARM resume "$out" >"$TMP/o" 2>"$TMP/e"; rc=$?
check "an input changed since submit: resume refuses (no mixed video)" \
    sh -c "[ $rc -ne 0 ] && grep -q 'input .*changing.mkv changed since the job was submitted' '$TMP/e'"

# ---- submit's checks ------------------------------------------------------------
fresh
FAKE_MAX_ARRAY=2 $FARM submit "$TMP/pan.mkv" "$TMP/out/max.mkv" --frames-per-task 2 --ffmpeg "$FFMPEG" \
    --filter "$SYNTH" >"$TMP/o" 2>"$TMP/e"; rc=$?
check "3 tasks, MaxArraySize 2: refused before anything is queued, naming --frames-per-task 3" \
    sh -c "[ $rc -ne 0 ] && grep -q \"MaxArraySize is 2.*--frames-per-task 3\" '$TMP/e' && [ ! -e '$FAKE/sbatch.log' ]"
for c in "typo.mkv|$SYNTH:top_kk=3||top_kk: not an option" "x.nosuchcontainer|$SYNTH||could not write" \
         "y.mkv|$SYNTH|--vcodec=nosuchcodec|could not write.*nosuchcodec"; do
    IFS='|' read -r name filt extra want <<EOC
$c
EOC
    $FARM submit "$TMP/pan.mkv" "$TMP/out/$name" --frames-per-task 3 --ffmpeg "$FFMPEG" --filter "$filt" $extra \
        >"$TMP/o" 2>"$TMP/e"; rc=$?
    check "submit refuses $name ${extra:-$filt}: \"$(head -c 120 "$TMP/e")\"" \
        sh -c "[ $rc -ne 0 ] && grep -q '$want' '$TMP/e' && [ ! -e '$TMP/out/$name.farm' ] && [ ! -e '$FAKE/sbatch.log' ]"
done

FAKE_QUEUE=1 $FARM submit "$TMP/pan.mkv" "$TMP/out/copy.mkv" --frames-per-task 3 --ffmpeg "$FFMPEG" \
    --filter "$SYNTH" --vcodec copy >"$TMP/o" 2>"$TMP/e"; rc=$?
check "--vcodec copy is accepted (the FFV1 segments copied)" sh -c "[ $rc -eq 0 ] && grep -q 'join: job' '$TMP/o'"
$FARM submit "$TMP/pan.mkv" "$TMP/out/cpl.mkv" --frames-per-task 3 --ffmpeg "$FFMPEG" \
    --filter "$SYNTH:complete=1" >"$TMP/o" 2>"$TMP/e"; rc=$?
check "complete= is refused (one label video in)" sh -c "[ $rc -ne 0 ] && grep -q 'complete= takes a picture' '$TMP/e'"

# ---- renders: the model ffmpeg takes by default, audio, a '%' in the path ------
# frames FILE: video frames as framemd5 lines (timestamps and hashes)
vframes() { "$FFMPEG" -nostdin -hide_banner -loglevel error -i "$1" -map 0:v:0 -pix_fmt rgb24 -f framemd5 - | grep -v '^#'; }
apts() { "$FFMPEG" -nostdin -hide_banner -loglevel error -i "$1" -map 0:a:0 -c copy -f framemd5 - 2>/dev/null | grep -v '^#' | head -1 | cut -d, -f2; }
fresh
out="$TMP/out/run 50%/nomodel.mkv"
$FARM submit "$TMP/pan.mkv" "$out" --frames-per-task 4 --ffmpeg "$FFMPEG" --filter "seed=7:top_k=8:threads=1" \
    --job-dir "$TMP/jd 50%" >"$TMP/o" 2>"$TMP/e"; rc=$?
ff -i "$TMP/pan.mkv" -vf "vqgan_synth=model=$MODEL:seed=7:top_k=8:threads=1" -c:v ffv1 "$TMP/ref.mkv"
got=$(vframes "$out") want=$(vframes "$TMP/ref.mkv")
check "no model=: the default model ffmpeg takes, the frames of its one-process render (status $rc)" \
    eval '[ $rc -eq 0 ] && [ "$(echo "$got" | grep -c .)" -eq 6 ] && [ "$got" = "$want" ]'
check "a '%' in the job directory's path reaches sbatch's --output as '%%'" grep -q 'jd 50%%/logs' "$FAKE/sbatch.log"
check "submit's hint carries --job-dir" grep -q "status .*nomodel.mkv' --job-dir" "$TMP/o"

# follow with output=tokens: the pre-pass outputs its input whatever output= says
fresh
$FARM submit "$TMP/pan.mkv" "$TMP/out/tok.mkv" --frames-per-task 3 --ffmpeg "$FFMPEG" \
    --filter "$SYNTH:temporal=follow:output=tokens" >"$TMP/o" 2>&1
$FARM status "$TMP/out/tok.mkv" >"$TMP/st" 2>&1; rc=$?
check "temporal=follow:output=tokens: the pre-pass, both tasks and the join done (status $rc)" \
    sh -c "[ $rc -eq 0 ] && grep -q '^origins: done' '$TMP/st'"

# a task that fails: status shows the filter's own message, not ffmpeg's last line
fresh
ff -i "$TMP/pan.mkv" -pix_fmt yuv420p -c:v ffv1 "$TMP/yuv.mkv"
$FARM submit "$TMP/yuv.mkv" "$TMP/out/yuv.mkv" --frames-per-task 6 --ffmpeg "$FFMPEG" --filter "$SYNTH" >"$TMP/o" 2>&1
$FARM status "$TMP/out/yuv.mkv" >"$TMP/st" 2>&1; rc=$?
check "a failing task: status names the filter's reason (status $rc): $(grep '^task 0' "$TMP/st" | cut -c1-150)" \
    sh -c "[ $rc -eq 1 ] && grep -q '^task 0 .*failed.*Input format yuv420p cannot be used' '$TMP/st'"

# the same video with --pre format=gray8 (labels decoded as yuv420p): the frames
# of the one-process render with -vf format=gray8,vqgan_synth, temporal=follow
# (the pre-pass runs the filters too)
fresh
$FARM submit "$TMP/yuv.mkv" "$TMP/out/yuvpre.mkv" --frames-per-task 4 --ffmpeg "$FFMPEG" \
    --filter "$SYNTH:temporal=follow" --pre format=gray8 >"$TMP/o" 2>&1; rc=$?
ff -i "$TMP/yuv.mkv" -vf "format=gray8,vqgan_synth=$SYNTH:temporal=follow" -c:v ffv1 "$TMP/ref_yuvpre.mkv"
got=$(vframes "$TMP/out/yuvpre.mkv") want=$(vframes "$TMP/ref_yuvpre.mkv")
$FARM status "$TMP/out/yuvpre.mkv" >"$TMP/st" 2>&1
check "--pre format=gray8 on a yuv420p label video, follow: the 6 frames of -vf format=gray8,vqgan_synth (status $rc), status names it" \
    eval '[ $rc -eq 0 ] && [ "$(echo "$got" | grep -c .)" -eq 6 ] && [ "$got" = "$want" ] && grep -q -- "--pre format=gray8" "$TMP/st"'
for pre in "fps=4" "split[a][b];[a][b]hstack" "nosuchfilter=1"; do
    fresh
    $FARM submit "$TMP/yuv.mkv" "$TMP/out/badpre.mkv" --frames-per-task 4 --ffmpeg "$FFMPEG" \
        --filter "$SYNTH" --pre "$pre" >"$TMP/o" 2>"$TMP/e"; rc=$?
    check "--pre '$pre' refused, nothing written: \"$(head -c 150 "$TMP/e")\"" \
        sh -c "[ $rc -ne 0 ] && grep -q -- '--pre' '$TMP/e' && [ ! -e '$TMP/out/badpre.mkv.farm/job.json' ] && [ ! -s '$FAKE/sbatch.log' ]"
done

for v in short_audio late_video edit_list; do
    fresh
    in=$TMP/$v.mkv pre=""
    [ $v = edit_list ] && in=$TMP/$v.mp4 pre=format=gray8
    $FARM submit "$in" "$TMP/out/$v.mkv" --frames-per-task 3 --ffmpeg "$FFMPEG" --filter "$SYNTH" \
        ${pre:+--pre "$pre"} >"$TMP/o" 2>&1 || { notok "submit $v"; sed 's/^/# /' "$TMP/o"; }
    ff -i "$in" -map 0:v -map 0:a? -vf "${pre:+$pre,}vqgan_synth=$SYNTH" -c:v ffv1 -c:a copy "$TMP/ref_$v.mkv"
    $FARM status "$TMP/out/$v.mkv" >"$TMP/st" 2>&1; rc=$?
    got=$(vframes "$TMP/out/$v.mkv") want=$(vframes "$TMP/ref_$v.mkv")
    ga=$(apts "$TMP/out/$v.mkv") wa=$(apts "$TMP/ref_$v.mkv")
    n=6; [ $v = edit_list ] && n=5
    check "$v: joined (status $rc), the $n frames and their timestamps of the one-process render, audio from pts ${ga:-none} (${wa:-none})" \
        eval '[ $rc -eq 0 ] && [ "$(echo "$got" | grep -c .)" -eq $n ] && [ "$got" = "$want" ] && { [ -n "$ga" ] || [ $v = edit_list ]; } && [ "$ga" = "$wa" ]'
    sed 's/^/# /' "$TMP/st" | grep -v '^# task' | head -3
done
finish
