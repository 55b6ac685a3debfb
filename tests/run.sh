#!/bin/sh
# Runs every test program given as an argument, then the Python and FFmpeg
# test scripts, and prints "N passed, N failed". A test prints one line per
# check, "ok - ..." or "not ok - ..."; a program that dies, or fails without
# saying which check, counts as one more failure. Each program's summary line
# ends with its wall time in seconds, to show where the suite's time goes.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
log=${BUILD:-build}/test-log.txt
: > "$log"
pass=0; fail=0
run() {
    name=$1; shift
    t0=$(date +%s)
    out=$("$@" 2>&1); rc=$?
    secs=$(( $(date +%s) - t0 ))
    printf '%s\n' "$out" >> "$log"
    p=$(printf '%s\n' "$out" | grep -c '^ok ')
    f=$(printf '%s\n' "$out" | grep -c '^not ok ')
    printf '%s\n' "$out" | grep '^not ok ' | sed "s|^|  $name: |"
    if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1; echo "  $name: exited with status $rc"; printf '%s\n' "$out" | tail -5 | sed 's/^/    /'
    fi
    echo "$name: $p passed, $f failed ($secs s)"
    pass=$((pass + p)); fail=$((fail + f))
}
for t in "$@"; do run "$(basename "$t")" "$t"; done
for t in tests/*/test_*.py; do [ -f "$t" ] && run "$(basename "$t")" "${PYTHON:-/usr/bin/python3}" "$t"; done
for t in tests/*/test_*.sh; do [ -f "$t" ] && run "$(basename "$t")" sh "$t"; done
# FFMPEG_ONCE: scripts (basenames) that test a tool around ffmpeg rather than
# the filters inside it; they run here only when no install test follows
# (which runs every script against its installed FFmpeg), and each is named.
for ff in ${FFMPEG_BINS:-}; do
    for t in tests/ffmpeg/*.sh; do
        [ -f "$t" ] || continue
        b=$(basename "$t")
        case " ${FFMPEG_ONCE:-} " in
        *" $b "*) [ -n "${INSTALL_CHECK:-}" ] &&
                  { echo "$b [$ff]: not run here: once is enough, in the install test"; continue; } ;;
        esac
        run "$b [$ff]" sh "$t" "$ff"
    done
done
# The install test (make check-install): one "ok -" line per check.
[ -n "${INSTALL_CHECK:-}" ] && run install $INSTALL_CHECK
# The hardening runs (make check-hardening) print one "ok -" line per run.
[ -n "${HARDENING:-}" ] && run hardening $HARDENING
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
