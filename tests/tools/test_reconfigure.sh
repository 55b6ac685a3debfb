#!/bin/sh
# config.mk against the Debian packages `make deps` installs (Makefile,
# DEPS_STAMP): when deps installed something after config.mk was written, the
# goals that run deps write config.mk again, with the arguments it was
# written with; otherwise they leave it alone. Run in a copy of the build
# files (nothing to install: the suite runs after deps), with the stamp's date
# standing in for an installation.
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
say() { if [ "$1" = 0 ]; then echo "ok - $2"; else echo "not ok - $2"; fi; }
mtime() { stat -c %Y "$1"; }

cp -r Makefile configure VERSION mk "$t/"
cd "$t" || exit 1
./configure --lib-only --prefix=/opt/vq-reconf >/dev/null 2>&1
touch -d '2001-01-01' config.mk
before=$(mtime config.mk)

# the first deps: the stamp is made with an old date, config.mk stays
make -s --no-print-directory deps >/dev/null 2>&1; rc=$?
[ $rc = 0 ] && [ -e build/.deps-installed ] && [ "$(mtime build/.deps-installed)" -lt "$before" ] &&
    [ "$(mtime config.mk)" = "$before" ]
say $? "make deps with nothing to install: its stamp made old, config.mk left as it was (rc $rc)"

# packages installed since config.mk was written: config.mk again, same
# arguments (its date now, even where ./configure found nothing new)
touch build/.deps-installed
make -s --no-print-directory deps >/dev/null 2>&1; rc=$?
[ $rc = 0 ] && [ "$(mtime config.mk)" -gt "$before" ] && grep -q '^PREFIX = /opt/vq-reconf$' config.mk &&
    grep -q "^CONFIGURE_ARGS = '--prefix=/opt/vq-reconf'$" config.mk
say $? "make deps after an installation newer than config.mk writes it again with its arguments (rc $rc)"

# and only once: the next deps leaves it
touch -d '2001-01-01' build/.deps-installed
after=$(mtime config.mk)
make -s --no-print-directory deps >/dev/null 2>&1
[ "$(mtime config.mk)" = "$after" ]
say $? "make deps with config.mk newer than the last installation leaves it"
