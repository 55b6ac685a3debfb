# mk/install.mk: make install / make uninstall (DESTDIR honoured).
#
# Included by the top-level Makefile. The directories come from config.mk
# (./configure --prefix, --bindir, --libdir, --includedir, --datadir):
#
#   LIBDIR      libvqgan.so.X.Y.Z, its soname link libvqgan.so.X, the
#               development link libvqgan.so, libvqgan.a, pkgconfig/libvqgan.pc
#   INCLUDEDIR  vqgan.h, vqgan_version.h
#   DATADIR/libvqgan/models   default.gguf (vqgan_default_model_path()) and
#                             its README; DATADIR/libvqgan/legend.txt
#   DATADIR/libvqgan/tools    the Python tools, run from there
#   BINDIR      one launcher per tool in INSTALL_TOOLS (vqgan-convert, ...)
#   DATADIR/doc/libvqgan      README.md, LICENSE, docs/*.md
#   DATADIR/man/man1          the launchers' manual pages (man/*.1)
#
# make uninstall removes exactly the files make install writes (the lists
# below) and the directories that are libvqgan's own.

DESTDIR ?=
DOCDIR   = $(DATADIR)/doc/libvqgan
MAN1DIR  = $(DATADIR)/man/man1
PKGDATA  = $(DATADIR)/libvqgan

# The tools installed, as launcher-name:script. Add a tool here, with its
# manual page man/NAME.1 (and its script to INSTALL_TOOL_FILES when it needs
# helpers), and both install and uninstall pick it up.
INSTALL_TOOLS = vqgan-convert:convert.py vqgan-colorize-labels:colorize_labels.py vqgan-farm:vqgan-farm
# Scripts copied to DATADIR/libvqgan/tools: the tools and the modules they import.
INSTALL_TOOL_FILES = convert.py gguf_writer.py palettes.py colorize_labels.py vqgan-farm
INSTALL_DOCS = README.md LICENSE COPYING.LGPLv2.1 $(sort $(wildcard docs/*.md))
# What README.md and docs/*.md link to, at the same relative places under
# DOCDIR (the install test follows every relative link)
INSTALL_DOC_EXTRAS = $(sort $(wildcard docs/*.txt)) samples/README.md samples/demo.png samples/models/README.md \
    samples/quality/README.md samples/quality/synth_canada.png samples/complete/figure.png

# Every file make install writes, relative to DESTDIR (uninstall's list).
INSTALLED_FILES = \
    $(LIBDIR)/$(SOFILE) $(LIBDIR)/$(SONAME) $(LIBDIR)/libvqgan.so $(LIBDIR)/libvqgan.a \
    $(LIBDIR)/pkgconfig/libvqgan.pc \
    $(INCLUDEDIR)/vqgan.h $(INCLUDEDIR)/vqgan_version.h \
    $(PKGDATA)/models/default.gguf $(PKGDATA)/models/README.md $(PKGDATA)/legend.txt \
    $(INSTALL_TOOL_FILES:%=$(PKGDATA)/tools/%) \
    $(foreach t,$(INSTALL_TOOLS),$(BINDIR)/$(word 1,$(subst :, ,$(t)))) \
    $(INSTALL_DOCS:%=$(DOCDIR)/%) $(INSTALL_DOC_EXTRAS:%=$(DOCDIR)/%) \
    $(foreach t,$(INSTALL_TOOLS),$(MAN1DIR)/$(word 1,$(subst :, ,$(t))).1)
# Directories that hold nothing but libvqgan's files (removed by uninstall).
INSTALLED_DIRS = $(PKGDATA)/tools $(PKGDATA)/models $(PKGDATA) $(DOCDIR)/docs \
    $(DOCDIR)/samples/models $(DOCDIR)/samples/quality $(DOCDIR)/samples/complete $(DOCDIR)/samples $(DOCDIR)

INSTALL      ?= install
INSTALL_DATA  = $(INSTALL) -m 644

.PHONY: install uninstall install-dirs-check

# The directories are configure's: the library has DATADIR compiled in (its
# default model's path) and the .pc file names PREFIX, so a directory given
# to make install alone would install a library that looks elsewhere.
INSTALL_DIR_VARS = PREFIX BINDIR LIBDIR INCLUDEDIR DATADIR prefix exec_prefix bindir libdir includedir datadir
install-dirs-check:
	@bad="$(strip $(foreach v,$(INSTALL_DIR_VARS),$(if $(filter command line,$(origin $(v))),$(v))))"; \
	if [ -n "$$bad" ]; then \
	    echo "make install: $$bad on the command line: the installation directories are ./configure's" \
	         "(./configure --lib-only --prefix=... --libdir=..., then make); DESTDIR=... stages them" >&2; exit 2; fi

install: install-dirs-check lib
	$(INSTALL) -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(BINDIR) \
	    $(DESTDIR)$(PKGDATA)/models $(DESTDIR)$(PKGDATA)/tools $(DESTDIR)$(DOCDIR)/docs $(DESTDIR)$(MAN1DIR)
	$(INSTALL) -m 755 $(BUILD)/$(SOFILE) $(DESTDIR)$(LIBDIR)/$(SOFILE)
	ln -sf $(SOFILE) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SOFILE) $(DESTDIR)$(LIBDIR)/libvqgan.so
	$(INSTALL_DATA) $(BUILD)/libvqgan.a $(DESTDIR)$(LIBDIR)/libvqgan.a
	printf '$(PC_TEXT)' "$(PREFIX)" "$(LIBDIR)" "$(INCLUDEDIR)" >$(DESTDIR)$(LIBDIR)/pkgconfig/libvqgan.pc
	$(INSTALL_DATA) include/vqgan.h $(BUILD)/include/vqgan_version.h $(DESTDIR)$(INCLUDEDIR)/
	$(INSTALL_DATA) samples/models/default.gguf samples/models/README.md $(DESTDIR)$(PKGDATA)/models/
	$(INSTALL_DATA) samples/legend.txt $(DESTDIR)$(PKGDATA)/legend.txt
	@# scripts (a #! line) executable, modules not
	@set -e; for f in $(INSTALL_TOOL_FILES); do \
	    if head -c 2 tools/$$f | grep -q '^#!'; then m=755; else m=644; fi; \
	    $(INSTALL) -m $$m tools/$$f $(DESTDIR)$(PKGDATA)/tools/$$f; done
	@# The launchers run the installed scripts with the Python the build uses,
	@# without writing bytecode into the install tree (-B: uninstall's lists
	@# would miss it)
	@set -e; for t in $(INSTALL_TOOLS); do \
	    name=$${t%%:*}; script=$${t#*:}; \
	    printf '#!/bin/sh\n# libvqgan %s: runs %s\nVQGAN_PROG=%s\nexport VQGAN_PROG\nexec %s -B %s "$$@"\n' \
	        "$(VERSION)" "$$script" "$$name" "$(PYTHON)" "$(PKGDATA)/tools/$$script" >$(DESTDIR)$(BINDIR)/$$name; \
	    chmod 755 $(DESTDIR)$(BINDIR)/$$name; echo "launcher $(BINDIR)/$$name -> $(PKGDATA)/tools/$$script"; \
	done
	$(INSTALL_DATA) README.md LICENSE COPYING.LGPLv2.1 $(DESTDIR)$(DOCDIR)/
	$(INSTALL_DATA) $(filter docs/%,$(INSTALL_DOCS)) $(DESTDIR)$(DOCDIR)/docs/
	@set -e; for f in $(INSTALL_DOC_EXTRAS); do \
	    $(INSTALL) -d $(DESTDIR)$(DOCDIR)/$$(dirname $$f); $(INSTALL_DATA) $$f $(DESTDIR)$(DOCDIR)/$$f; done
	$(INSTALL_DATA) $(foreach t,$(INSTALL_TOOLS),man/$(word 1,$(subst :, ,$(t))).1) $(DESTDIR)$(MAN1DIR)/

uninstall: install-dirs-check
	rm -f $(addprefix $(DESTDIR),$(INSTALLED_FILES))
	@# bytecode a tool's run wrote there all the same (python3 run by hand)
	rm -rf $(DESTDIR)$(PKGDATA)/tools/__pycache__
	-rmdir $(addprefix $(DESTDIR),$(INSTALLED_DIRS)) 2>/dev/null

# make check-install: tests/install/run.sh (the install tree, a program using
# the installed library through pkg-config, nm -D, uninstall, and FFmpeg
# $(INSTALL_TEST_FFMPEG) from a pristine tree + the patches alone, built
# against the installed library, then run with the checkout moved away).
# make check runs it through tests/run.sh (INSTALL_CHECK).
INSTALL_TEST_FFMPEG ?= $(firstword $(filter 7.1,$(FFMPEG_VERSIONS)) $(FFMPEG_DEFAULT_VERSION))
# make check: tests/ffmpeg/*.sh run through the installed FFmpeg
# $(INSTALL_TEST_FFMPEG) inside check-install, and through build/ffmpeg-<ver>
# for the other versions (one FFmpeg build of each version, not two).
CHECK_FFMPEG_VERSIONS = $(filter-out $(INSTALL_TEST_FFMPEG),$(FFMPEG_VERSIONS))
CHECK_FFMPEG_BINS = $(CHECK_FFMPEG_VERSIONS:%=build/ffmpeg-%/ffmpeg)
.PHONY: ffmpeg-check
ffmpeg-check: $(CHECK_FFMPEG_VERSIONS:%=ffmpeg-%)
.PHONY: check-install
check-install: ffmpeg-src/.prepared test-models
	@origin='$(FFMPEG_ORIGIN_$(INSTALL_TEST_FFMPEG))'; \
	case $$origin in \
	debian:*) src=$$(ls ffmpeg-src/downloads/ffmpeg_$(FFMPEG_RELEASE_$(INSTALL_TEST_FFMPEG)).orig.tar.* | grep -v '\.asc$$' | head -n1) ;; \
	tar:*) src=$${origin#tar:}; src=$${src%:*} ;; \
	dir:*) src=$${origin#dir:} ;; \
	*) echo "not ok - FFmpeg $(INSTALL_TEST_FFMPEG) is prepared (build/config.mk: origin '$$origin')"; exit 1 ;; \
	esac; \
	$(TEST_ENV) FFMPEG_FLAGS='$(FFMPEG_CONFIGURE_FLAGS)' sh tests/install/run.sh "$$src" $(INSTALL_TEST_FFMPEG)
