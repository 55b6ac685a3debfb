#!/bin/sh
# config.mk against the Debian packages `make deps` installs (Makefile,
# DEPS_STAMP): when deps installed something after config.mk was written, the
# goals that run deps run ./configure again, with the compiler and the
# arguments config.mk was written with; otherwise they leave config.mk alone.
# mk/ffmpeg.mk's preparation of the FFmpeg trees runs it with the same.
# Run in a copy of the build files (nothing to install: the suite runs after
# deps), with the stamp's date standing in for an installation and a line
# added to config.mk for what ./configure would now find otherwise. The make
# here is the script's own, whatever make and BUILD called the suite.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKE_RESTARTS BUILD
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
say() { if [ "$1" = 0 ]; then echo "ok - $2"; else echo "not ok - $2"; fi; }
mtime() { stat -c %Y "$1"; }
deps() { make -s --no-print-directory BUILD=build deps >/dev/null 2>&1; }

cp -r Makefile configure VERSION mk "$t/"
cd "$t" || exit 1
CC=cc ./configure --lib-only --prefix=/opt/vq-reconf >/dev/null 2>&1
echo 'STALE = 1' >> config.mk
touch -d '2001-01-01' config.mk
before=$(mtime config.mk)

# the first deps: the stamp is made with an old date, config.mk stays
deps; rc=$?
[ $rc = 0 ] && [ -e build/.deps-installed ] && [ "$(mtime build/.deps-installed)" -lt "$before" ] &&
    [ "$(mtime config.mk)" = "$before" ] && grep -q '^STALE = 1$' config.mk
say $? "make deps with nothing to install: its stamp made old, config.mk left as it was (rc $rc)"

# packages installed since config.mk was written: ./configure again, same
# compiler and arguments
touch build/.deps-installed
deps; rc=$?
[ $rc = 0 ] && ! grep -q '^STALE' config.mk && grep -q '^PREFIX = /opt/vq-reconf$' config.mk &&
    grep -q "^CONFIGURE_ARGS = '--prefix=/opt/vq-reconf'$" config.mk && grep -q '^CC = cc$' config.mk &&
    [ "$(mtime build/.deps-installed)" = "$(mtime config.mk)" ]
say $? "make deps after an installation newer than config.mk writes it again with its compiler and arguments (rc $rc)"

# and only once: the next deps leaves it
echo 'STALE = 2' >> config.mk
touch -d '2002-01-01' config.mk
touch -d '2001-06-01' build/.deps-installed
deps; rc=$?
[ $rc = 0 ] && [ "$(mtime config.mk)" = "$(date -d 2002-01-01 +%s)" ] && grep -q '^STALE = 2$' config.mk
say $? "make deps with config.mk newer than the last installation leaves it (rc $rc)"

# an installation that changes nothing ./configure finds: config.mk and its
# date kept, the stamp set to that date (nothing rebuilt, no restart again)
sed -i '/^STALE/d' config.mk
touch -d '2002-01-01' config.mk
touch build/.deps-installed
deps; rc=$?
[ $rc = 0 ] && [ "$(mtime config.mk)" = "$(date -d 2002-01-01 +%s)" ] &&
    [ "$(mtime build/.deps-installed)" = "$(mtime config.mk)" ]
say $? "make deps after an installation that changes nothing keeps config.mk's date (rc $rc)"

# mk/ffmpeg.mk prepares the FFmpeg trees with a full ./configure: the same
# compiler, and the arguments as recorded (a $ in them was expanded by make)
CC=cc ./configure --lib-only '--arch-cflags=-DVQ_X=$x' >/dev/null 2>&1
make -n -B -s --no-print-directory -f mk/ffmpeg.mk ffmpeg-src/.prepared >prepare.out 2>&1; rc=$?
cmd=$(head -n 1 prepare.out)
[ $rc = 0 ] && [ "$cmd" = "CC='cc' ./configure '--arch-cflags=-DVQ_X=\$x'" ]
say $? "mk/ffmpeg.mk runs ./configure again with config.mk's compiler and arguments, unexpanded (rc $rc, ran: $cmd)"

# what make cannot install into is refused; debhelper's autoconf options are
# accepted and ignored; the builder's flags are recorded for make
cp config.mk before.mk
./configure --lib-only '--prefix=/opt/a b' >out 2>&1; rc=$?
[ $rc != 0 ] && grep -q "holds a space" out && cmp -s config.mk before.mk
say $? "./configure --prefix='/opt/a b' is refused, config.mk left as it was (rc $rc)"
CFLAGS='-O1 -DV=$HOME' CPPFLAGS=-D_FORTIFY_SOURCE=2 ./configure --lib-only --build=x86_64-linux-gnu --prefix=/usr \
    --sysconfdir=/etc --mandir=/usr/share/man --disable-silent-rules --disable-dependency-tracking \
    --disable-option-checking --enable-something-else >out 2>&1; rc=$?
[ $rc = 0 ] && grep -q "ignored (not used by libvqgan): --build --sysconfdir --mandir" out &&
    grep -q "unknown options ignored.*--enable-something-else" out &&
    grep -qx 'CFLAGS = -O1 -DV=$$HOME' config.mk && grep -qx 'CPPFLAGS = -D_FORTIFY_SOURCE=2' config.mk
say $? "debhelper's ./configure options accepted and named as ignored, CFLAGS and CPPFLAGS recorded for make (rc $rc)"
./configure --lib-only --frobnicate >out 2>&1; rc=$?
[ $rc != 0 ] && grep -q "unknown option '--frobnicate'" out
say $? "an unknown option is an error without --disable-option-checking (rc $rc)"
