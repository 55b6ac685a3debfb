#!/bin/sh
# Sampling is a function of (model, input, seed): the same seed gives the same
# frames across runs and thread counts; another seed gives other frames.
. "$(dirname "$0")/testlib"

COND=$(model conditional)
LABELS="$GOLDEN/conditional/labels.png"

# sample FILE OPTIONS: three frames of the golden labels through vqgan_synth
sample() {
    _out=$1; shift
    ff -framerate 5 -loop 1 -t 0.6 -i "$LABELS" -vf "vqgan_synth=model=$COND:$1" \
        -f framemd5 "$_out" || { sed 's/^/# /' "$TMP/stderr" | tail -n 5; return 1; }
}

sample "$TMP/a" "seed=7:threads=1"; ra=$?
sample "$TMP/b" "seed=7:threads=1"; rb=$?
sample "$TMP/c" "seed=7:threads=2"; rc=$?
sample "$TMP/d" "seed=8:threads=2"; rd=$?
sample "$TMP/e" "seed=7:temperature=0.7:top_k=8:top_p=0.9:threads=2"; re=$?
sample "$TMP/f" "seed=7:temperature=0.7:top_k=8:top_p=0.9:threads=1"; rf=$?

check "sampling three frames runs" [ $ra$rb$rc$rd$re$rf = 000000 ]
check "three frames come out" [ "$(frames "$TMP/a" | wc -l)" -eq 3 ]
check "same seed: identical framemd5 across runs" cmp -s "$TMP/a" "$TMP/b"
check "same seed: identical framemd5 with threads=1 and threads=2" cmp -s "$TMP/a" "$TMP/c"
check "same seed, temperature/top_k/top_p set: identical with threads=1 and 2" cmp -s "$TMP/e" "$TMP/f"
check "another seed gives other frames" sh -c "! cmp -s '$TMP/a' '$TMP/d'"
check "identical input frames give identical pictures (seed per frame)" \
    [ "$(frames "$TMP/a" | awk -F, '{print $6}' | sort -u | wc -l)" -eq 1 ]

# temporal=reuse promises frames identical to sampling each from scratch.
ff -loglevel info -framerate 5 -loop 1 -t 0.6 -i "$LABELS" \
    -vf "vqgan_synth=model=$COND:seed=7:threads=1:temporal=reuse" -f framemd5 "$TMP/r"
check "temporal=reuse runs" [ $? -eq 0 ]
check "temporal=reuse gives the frames of temporal=off" cmp -s "$TMP/a" "$TMP/r"
check "temporal=reuse reuses the tokens of an unchanged frame" \
    grep -q "frame 2: 0 tokens sampled, [1-9][0-9]* reused" "$TMP/stderr"
# temporal=follow draws by the Gumbel-max rule keyed to content coordinates
# (docs/sampling.md): other pictures than off for the same seed, but a still
# label map still gives identical frames, and greedy sampling (top_k=1) is
# the argmax in every mode.
ff -framerate 5 -loop 1 -t 0.6 -i "$LABELS" \
    -vf "vqgan_synth=model=$COND:seed=7:threads=2:temporal=follow" -f framemd5 "$TMP/fo"
check "temporal=follow runs" [ $? -eq 0 ]
check "temporal=follow on a still label map gives identical frames" \
    [ "$(frames "$TMP/fo" | awk -F, '{print $6}' | sort -u | wc -l)" -eq 1 ]
sample "$TMP/g1" "seed=7:top_k=1:threads=2"
sample "$TMP/g2" "seed=7:top_k=1:threads=2:temporal=follow"
check "temporal=follow with top_k=1 gives the frames of temporal=off" cmp -s "$TMP/g1" "$TMP/g2"

finish
