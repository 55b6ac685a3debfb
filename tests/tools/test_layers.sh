#!/bin/sh
# The layering check (tools/check_layers.py, docs/architecture.md "Layers") on
# the library's objects, and proof that it fails: on a planted upward call (the
# sampler's object calling the session layer) and on two files using each
# other (the session/window circle this project had until 0.2).
B=${BUILD:-build}
PY=${PYTHON:-/usr/bin/python3}
CC=${CC:-cc}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
say() { if [ "$1" = 0 ]; then echo "ok - $2"; else echo "not ok - $2"; fi; }

out=$("$PY" tools/check_layers.py "$B/obj" src 2>&1); rc=$?
say $rc "the library's objects keep the layers ($(echo "$out" | tail -n 1 | sed 's/^check_layers: //'))"
[ $rc = 0 ] || echo "$out" | grep -v '^  ' | sed 's/^/    /'

mkdir "$t/up" "$t/circle"
cp "$B"/obj/*.o "$t/up/"
cp "$B"/obj/*.o "$t/circle/"
# an upward call: the sampler (networks) reporting progress through the session (api)
{ cat src/sampler.c; printf '%s\n' '#include "session.h"' \
  'int vq_planted_upward(struct vqgan_session *s) { return vq_session_progress(s, 0, 1); }'; } > "$t/sampler.c"
$CC -std=c11 -D_GNU_SOURCE -Iinclude -I"$B/include" -Isrc -c "$t/sampler.c" -o "$t/up/sampler.o"
out=$("$PY" tools/check_layers.py "$t/up" 2>&1); rc=$?
echo "$out" | grep -q 'upward call: src/sampler.c (networks) uses src/session.c (api): vq_session_progress'
say $(( rc == 1 && $? == 0 ? 0 : 1 )) "a planted upward call (sampler.c -> vq_session_progress) fails the check, named"
# two files of one layer using each other: error.c calling vmath.c, which calls error.c
{ cat src/vmath.c; printf '%s\n' '#include "error.h"' \
  'int vq_planted_vmath(void) { return vq_error(-3, "planted"); }'; } > "$t/vmath.c"
{ cat src/error.c; printf '%s\n' 'int vq_planted_vmath(void);' \
  'int vq_planted_error(void) { return vq_planted_vmath(); }'; } > "$t/error.c"
$CC -std=c11 -D_GNU_SOURCE -fopenmp -Iinclude -I"$B/include" -Isrc -c "$t/vmath.c" -o "$t/circle/vmath.o" &&
$CC -std=c11 -D_GNU_SOURCE -Iinclude -I"$B/include" -Isrc -c "$t/error.c" -o "$t/circle/error.o"
out=$("$PY" tools/check_layers.py "$t/circle" 2>&1); rc=$?
echo "$out" | grep -q 'files using each other: src/error.c <-> src/vmath.c'
say $(( rc == 1 && $? == 0 ? 0 : 1 )) "two files using each other (error.c <-> vmath.c, planted) fail the check, named"
