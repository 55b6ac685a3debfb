#!/bin/sh
# Runs every test program given as an argument, then the Python and FFmpeg
# test scripts, and prints "N passed, N failed". A test prints one line per
# check, "ok - ..." or "not ok - ..."; a program that dies, or fails without
# saying which check, counts as one more failure.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
log=${BUILD:-build}/test-log.txt
: > "$log"
pass=0; fail=0
run() {
    name=$1; shift
    out=$("$@" 2>&1); rc=$?
    printf '%s\n' "$out" >> "$log"
    p=$(printf '%s\n' "$out" | grep -c '^ok ')
    f=$(printf '%s\n' "$out" | grep -c '^not ok ')
    printf '%s\n' "$out" | grep '^not ok ' | sed "s|^|  $name: |"
    if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1; echo "  $name: exited with status $rc"; printf '%s\n' "$out" | tail -5 | sed 's/^/    /'
    fi
    echo "$name: $p passed, $f failed"
    pass=$((pass + p)); fail=$((fail + f))
}
for t in "$@"; do run "$(basename "$t")" "$t"; done
for t in tests/*/test_*.py; do [ -f "$t" ] && run "$(basename "$t")" "${PYTHON:-/usr/bin/python3}" "$t"; done
for t in tests/*/test_*.sh; do [ -f "$t" ] && run "$(basename "$t")" sh "$t"; done
for ff in ${FFMPEG_BINS:-}; do
    for t in tests/ffmpeg/*.sh; do [ -f "$t" ] && run "$(basename "$t") [$ff]" sh "$t" "$ff"; done
done
# The install test (make check-install): one "ok -" line per check.
[ -n "${INSTALL_CHECK:-}" ] && run install $INSTALL_CHECK
# The hardening runs (make check-hardening) print one "ok -" line per run.
[ -n "${HARDENING:-}" ] && run hardening $HARDENING
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
