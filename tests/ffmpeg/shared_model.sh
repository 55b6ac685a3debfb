#!/bin/sh
# Filter instances naming one model file share one loaded copy (libvqgan's
# process-wide cache): the library logs "vqgan: loaded model" once per load.
. "$(dirname "$0")/testlib"

COND=$(model conditional)
LABELS="$GOLDEN/conditional/labels.png"

loads() { grep -c 'vqgan: loaded model' "$TMP/stderr"; }

ff -loglevel verbose -i "$LABELS" -filter_complex \
    "[0]split[a][b];[a]vqgan_synth=model=$COND:seed=1:top_k=4[x];[b]vqgan_synth=model=$COND:seed=2:top_k=4[y];[x][y]hstack" \
    -f null -
check "two vqgan_synth instances on one model run" [ $? -eq 0 ]
n=$(loads)
check "two vqgan_synth instances load the model once (loaded $n times)" [ "$n" -eq 1 ]

ff -loglevel verbose -i "$LABELS" -vf "vqgan_encode=model=$COND:stage=cond,vqgan_synth=model=$COND:top_k=1" -f null -
check "vqgan_encode and vqgan_synth on one model run" [ $? -eq 0 ]
n=$(loads)
check "vqgan_encode and vqgan_synth load the model once (loaded $n times)" [ "$n" -eq 1 ]

# precision is part of what is shared: auto and fp32 are one model; bf16 is
# another where the library runs bf16 (oneDNN in the build, as config.mk
# records it, and a CPU with native bf16); elsewhere it resolves to fp32
ff -loglevel verbose -i "$LABELS" \
    -vf "vqgan_encode=model=$COND:stage=cond:precision=auto,vqgan_synth=model=$COND:top_k=1:precision=fp32" -f null -
n=$(loads)
check "precision=auto and precision=fp32 share one model (loaded $n times)" [ "$n" -eq 1 ]
want=1
if grep -qw 'avx512_bf16\|amx_bf16' /proc/cpuinfo && grep -q '^BACKEND_CFLAGS.*-DVQ_HAVE_DNNL' "$ROOT/config.mk"; then
    want=2
fi
ff -loglevel verbose -i "$LABELS" \
    -vf "vqgan_encode=model=$COND:stage=cond:precision=bf16,vqgan_synth=model=$COND:top_k=1:precision=fp32" -f null -
n=$(loads)
check "precision=bf16 beside fp32: loaded $n times ($want on this CPU)" [ "$n" -eq "$want" ]

finish
