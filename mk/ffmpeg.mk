# mk/ffmpeg.mk: FFmpeg with the vqgan_encode / vqgan_synth filters.
#
# Included by the top-level Makefile. Targets:
#
#   ffmpeg-<ver>    build/ffmpeg-<ver>/ffmpeg and ffprobe (out-of-tree build of
#                   ffmpeg-src/ffmpeg-<ver>, statically linked to build/libvqgan.a);
#                   for the default version also the links build/ffmpeg, build/ffprobe
#   ffmpeg          the default version ($(FFMPEG_DEFAULT_VERSION))
#   ffmpeg-all      every prepared version ($(FFMPEG_VERSIONS))
#   check-ffmpeg    tests/ffmpeg/*.sh against every version ($(FFMPEG_BINS)
#                   lists the binaries, for tests/run.sh)
#   clean-ffmpeg    remove the FFmpeg build directories (not the sources)
#
# ./configure prepares the source trees and writes build/config.mk; it is run
# automatically when the trees are missing or a patch changed. The patches
# carry the filter sources: a change in libavfilter_vqgan/ regenerates
# patches/ffmpeg-*/0002-*.patch (patches/mkpatches.py --sources), which
# ./configure applies to the trees; nothing else is copied into them.
# FFMPEG_WITH_VQGAN=no builds the same FFmpeg without the filters (and without
# needing build/libvqgan.a).

FFMPEG_MK := $(lastword $(MAKEFILE_LIST))

-include build/config.mk
# The library's configuration (CONFIGURE_ARGS, FFMPEG_PROFILE): this file also
# runs alone, in the sub-make of ffmpeg-<ver> (not for make clean alone).
ifneq ($(VQ_CLEAN_ONLY),yes)
-include config.mk
endif
PYTHON ?= /usr/bin/python3
# ./configure run again as config.mk was written, $(1) first: its compiler
# (where config.mk set it) and its arguments unexpanded, so that a $ in them
# reaches ./configure. Here and in the Makefile's config.mk rule.
configure_again = $(if $(filter file,$(origin CC)),CC='$(CC)') ./configure $(if $(1),$(1) )$(value CONFIGURE_ARGS)

FFMPEG_VERSIONS        ?= 7.1 9.0
FFMPEG_DEFAULT_VERSION ?= $(lastword $(FFMPEG_VERSIONS))
FFMPEG_CONFIGURE_ARGS  ?=
# The model an FFmpeg built here falls back on after model=, VQGAN_MODEL and
# the installed default (vqgan_default_model_path()): only this build-tree
# FFmpeg knows it; patched FFmpeg trees elsewhere never see a source path.
VQGAN_BUILD_TREE_MODEL ?= $(abspath samples/models/default.gguf)
FFMPEG_WITH_VQGAN      ?= yes
# Anything else for FFmpeg's configure, e.g. FFMPEG_EXTRA_CONFIGURE=--enable-debug
FFMPEG_EXTRA_CONFIGURE ?=

FFMPEG_FILTER_SOURCES := $(wildcard libavfilter_vqgan/*.c libavfilter_vqgan/*.h)
# A pkg-config directory whose libvqgan.pc points at a directory holding only
# libvqgan.a, so that the linker cannot pick build/libvqgan.so.
FFMPEG_PC_DIR := build/ffmpeg-pkgconfig

FFMPEG_FILTERS := buffer buffersink abuffer abuffersink \
    scale format null crop pad hstack vstack split setpts setsar trim fps showinfo \
    hflip vflip transpose aformat anull atrim \
    color nullsrc testsrc testsrc2 sendcmd metadata movie
ifeq ($(FFMPEG_WITH_VQGAN),yes)
FFMPEG_FILTERS += vqgan_encode vqgan_synth
endif
# tools/vqgan-farm: the origins pre-pass prints frame metadata; the join
# reads a concat list; tests/ffmpeg/farm.sh muxes a WAV track to check the
# audio copy
FFMPEG_FILTERS += metadata
FFMPEG_FARM_DEMUXERS := concat wav

ffmpeg_comma := ,
ffmpeg_empty :=
ffmpeg_space := $(ffmpeg_empty) $(ffmpeg_empty)
ffmpeg_list   = $(subst $(ffmpeg_space),$(ffmpeg_comma),$(strip $(1)))

FFMPEG_CONFIGURE_FLAGS := \
    --disable-everything --disable-autodetect --disable-doc --disable-debug \
    --disable-ffplay --disable-network --disable-shared --enable-static \
    --enable-gpl --enable-pthreads --enable-zlib --enable-libx264 \
    --pkg-config-flags=--static \
    --enable-decoder=png,mjpeg,ffv1,rawvideo,h264,wrapped_avframe \
    --enable-encoder=png,ffv1,rawvideo,libx264,wrapped_avframe,mjpeg \
    --enable-parser=png,mjpeg,h264 \
    --enable-muxer=matroska,mp4,image2,image2pipe,rawvideo,framemd5,framecrc,md5,null \
    --enable-demuxer=matroska,mov,image2,image2pipe,png_pipe,jpeg_pipe,rawvideo,h264 \
    --enable-protocol=file,pipe \
    --enable-indev=lavfi \
    --enable-filter=$(call ffmpeg_list,$(FFMPEG_FILTERS))
FFMPEG_CONFIGURE_FLAGS += --enable-demuxer=$(call ffmpeg_list,$(FFMPEG_FARM_DEMUXERS))
ifeq ($(FFMPEG_WITH_VQGAN),yes)
FFMPEG_CONFIGURE_FLAGS += --enable-libvqgan
endif

.PHONY: ffmpeg-force ffmpeg ffmpeg-all check-ffmpeg clean-ffmpeg $(FFMPEG_VERSIONS:%=ffmpeg-%) \
        $(FFMPEG_VERSIONS:%=ffmpeg-build-%)

ifeq ($(FFMPEG_PROFILE),full)
ffmpeg: ffmpeg-full
else
ffmpeg: ffmpeg-$(FFMPEG_DEFAULT_VERSION)
endif
ffmpeg-all: $(FFMPEG_VERSIONS:%=ffmpeg-%)

# The private pkg-config file for FFmpeg's configure (see FFMPEG_PC_DIR).
$(FFMPEG_PC_DIR)/libvqgan.pc: build/pkgconfig/libvqgan.pc
	@mkdir -p $(FFMPEG_PC_DIR)/lib
	ln -sf $(abspath build/libvqgan.a) $(FFMPEG_PC_DIR)/lib/libvqgan.a
	sed -e 's|^libdir=.*|libdir=$(abspath $(FFMPEG_PC_DIR)/lib)|' \
	    -e '/^Libs:/s|-L[^ ]*|-L$${libdir}|' $< >$@.tmp && mv $@.tmp $@

# The patch that carries the filter sources, refreshed from libavfilter_vqgan/.
FFMPEG_SOURCES_PATCH = 0002-lavfi-add-the-vqgan-filter-sources.patch
patches/ffmpeg-%/$(FFMPEG_SOURCES_PATCH): $(FFMPEG_FILTER_SOURCES) patches/mkpatches.py
	$(PYTHON) patches/mkpatches.py --sources $*

# One ./configure run prepares every tree; rerun when a patch changes.
ffmpeg-src/.prepared: $(sort $(wildcard patches/ffmpeg-*/*.patch) \
                             $(wildcard $(FFMPEG_VERSIONS:%=patches/ffmpeg-%/$(FFMPEG_SOURCES_PATCH))))
	$(configure_again)
	@touch $@

# ffmpeg_rules(VER): the rules of one FFmpeg version.
define ffmpeg_rules
FFMPEG_SRC_$(1) ?= $(abspath ffmpeg-src/ffmpeg-$(1))

# The source tree, unpacked and patched by ./configure (which rewrites the
# stamp only when the tree changed).
$$(FFMPEG_SRC_$(1))/.vqgan-prepared: ffmpeg-src/.prepared
	@test -f $$@ || { echo "FFmpeg $(1) was not prepared: see ./configure --help" >&2; exit 1; }

# The flags of the last FFmpeg configure; rewritten only when they change.
build/ffmpeg-$(1)/configure.flags: ffmpeg-force
	@mkdir -p build/ffmpeg-$(1)
	@echo '$$(subst ','"'"',$(FFMPEG_CONFIGURE_FLAGS) $(FFMPEG_EXTRA_CONFIGURE) build-tree-model=$(VQGAN_BUILD_TREE_MODEL))' >$$@.tmp
	@if cmp -s $$@.tmp $$@; then rm $$@.tmp; else mv $$@.tmp $$@; fi

# FFmpeg's own configure, out of tree.
# Its configure script: FFmpeg's configure reruns only when the patches
# changed it (./configure keeps the timestamps of unchanged files), not when a
# filter source changed (FFmpeg's make rebuilds those objects alone).
$$(FFMPEG_SRC_$(1))/configure: $$(FFMPEG_SRC_$(1))/.vqgan-prepared
	@test -f $$@

build/ffmpeg-$(1)/ffbuild/config.mak: $$(FFMPEG_SRC_$(1))/configure build/ffmpeg-$(1)/configure.flags \
        $(if $(filter yes,$(FFMPEG_WITH_VQGAN)),$(FFMPEG_PC_DIR)/libvqgan.pc)
	@mkdir -p build/ffmpeg-$(1)
	@echo "FFmpeg $(1): configure (log: build/ffmpeg-$(1)/configure.log)"
	cd build/ffmpeg-$(1) && \
	    PKG_CONFIG_PATH=$(abspath $(FFMPEG_PC_DIR))$$$${PKG_CONFIG_PATH:+:$$$$PKG_CONFIG_PATH} \
	    $$(FFMPEG_SRC_$(1))/configure $(FFMPEG_CONFIGURE_FLAGS) $(FFMPEG_EXTRA_CONFIGURE) \
	    >configure.log 2>&1 || { tail -n 30 configure.log; tail -n 40 ffbuild/config.log; exit 1; }
	@# The build tree's model, last in the filters' lookup (FFmpeg's
	@# --extra-cflags would eat the quotes); this FFmpeg is never installed.
	@echo "libavfilter/vqgan_common.o: CPPFLAGS += -DVQGAN_BUILD_TREE_MODEL='\"$(VQGAN_BUILD_TREE_MODEL)\"'" \
	    >>build/ffmpeg-$(1)/ffbuild/config.mak
	@touch $$@

# The build proper; run by ffmpeg-$(1) after `lib` in a sub-make so that
# the two never run in parallel.
ffmpeg-build-$(1): build/ffmpeg-$(1)/ffbuild/config.mak
	@if [ -f build/libvqgan.a ] && [ build/libvqgan.a -nt build/ffmpeg-$(1)/ffmpeg_g ]; then \
	    rm -f build/ffmpeg-$(1)/ffmpeg_g build/ffmpeg-$(1)/ffprobe_g; fi
	@# FFmpeg's make gets the jobserver but not our command-line variables
	@# (make CFLAGS=... would replace FFmpeg's own).
	@# Without a jobserver (plain `make`), FFmpeg still builds on every core.
	+mf=" $$$$MAKEFLAGS"; case "$$$$mf" in *jobserver*|*" -j"*) j= ;; *) j=-j$$$$(nproc) ;; esac; \
	    MAKEFLAGS="$$$${mf%% -- *}" $$(MAKE) $$$$j -C build/ffmpeg-$(1) ffmpeg ffprobe
ifeq ($(1),$(FFMPEG_DEFAULT_VERSION))
	ln -sf ffmpeg-$(1)/ffmpeg build/ffmpeg
	ln -sf ffmpeg-$(1)/ffprobe build/ffprobe
endif

ffmpeg-$(1): $(if $(filter yes,$(FFMPEG_WITH_VQGAN)),lib)
	+@$$(MAKE) --no-print-directory -f $(FFMPEG_MK) ffmpeg-build-$(1)
endef

ffmpeg-force:

$(foreach v,$(FFMPEG_VERSIONS),$(eval $(call ffmpeg_rules,$(v))))

# The ffmpeg binaries of every version, for tests/run.sh (FFMPEG_BINS).
FFMPEG_BINS := $(FFMPEG_VERSIONS:%=build/ffmpeg-%/ffmpeg)

check-ffmpeg: ffmpeg-all
	sh tests/ffmpeg/run $(FFMPEG_BINS)

clean-ffmpeg:
	rm -rf $(FFMPEG_VERSIONS:%=build/ffmpeg-%) build/ffmpeg-full $(FFMPEG_PC_DIR) build/ffmpeg build/ffprobe

# ---- the full profile ----------------------------------------------------------
# make ffmpeg-full (or ./configure --ffmpeg-profile=full, then make): FFmpeg
# $(FFMPEG_FULL_VERSION) with the options of Debian's own ffmpeg package for
# that version, read from its source package's debian/rules
# (tools/ffmpeg_full_config.py: the Build-Depends this Debian release has are
# installed when root; options whose library is missing or too old here are
# dropped and listed in build/ffmpeg-full/full.note), plus --enable-libvqgan.
# FFmpeg's own libraries static (Debian's --enable-shared and installation
# directories left out), so build/ffmpeg-full/ffmpeg runs from here.
# Not part of make check.
FFMPEG_FULL_VERSION ?= $(firstword $(filter 7.1,$(FFMPEG_VERSIONS)) $(FFMPEG_DEFAULT_VERSION))
FFMPEG_FULL_SRC = $(FFMPEG_SRC_$(FFMPEG_FULL_VERSION))
FFMPEG_FULL_DEBVER = $(patsubst debian:%,%,$(filter debian:%,$(FFMPEG_ORIGIN_$(FFMPEG_FULL_VERSION))))

.PHONY: ffmpeg-full ffmpeg-full-build
build/ffmpeg-full/full.flags: tools/ffmpeg_full_config.py ffmpeg-src/.prepared
	@mkdir -p $(dir $@)
	@deb=$$(ls ffmpeg-src/downloads/ffmpeg_$(FFMPEG_RELEASE_$(FFMPEG_FULL_VERSION))*.debian.tar.* 2>/dev/null | head -n1); \
	if [ -z "$$deb" ]; then \
	    [ -n "$(FFMPEG_FULL_DEBVER)" ] || { echo "ffmpeg-full: FFmpeg $(FFMPEG_FULL_VERSION) does not come from Debian's archive: no debian/rules to read" >&2; exit 1; }; \
	    (cd ffmpeg-src/downloads && apt-get source --download-only -q "ffmpeg=$(FFMPEG_FULL_DEBVER)" >apt-get-source-full.log 2>&1); \
	    deb=$$(ls ffmpeg-src/downloads/ffmpeg_$(FFMPEG_RELEASE_$(FFMPEG_FULL_VERSION))*.debian.tar.* 2>/dev/null | head -n1); \
	    [ -n "$$deb" ] || { echo "ffmpeg-full: no Debian packaging for ffmpeg $(FFMPEG_FULL_DEBVER) (ffmpeg-src/downloads/apt-get-source-full.log)" >&2; exit 1; }; \
	fi; \
	$(PYTHON) tools/ffmpeg_full_config.py "$$deb" $(FFMPEG_FULL_SRC) $@.tmp $(dir $@)full.note \
	    $$([ "$$(id -u)" = 0 ] && echo --install-deps) && mv $@.tmp $@

# Debian's libraries are linked as Debian ships them, shared (their static
# dependencies are not all packaged): so is libvqgan here, build/libvqgan.so
# through the build tree's .pc, found at run time by the rpath.
build/ffmpeg-full/ffbuild/config.mak: build/ffmpeg-full/full.flags $(FFMPEG_FULL_SRC)/configure build/pkgconfig/libvqgan.pc
	@echo "FFmpeg $(FFMPEG_FULL_VERSION) full profile: configure (log: build/ffmpeg-full/configure.log)"
	cd build/ffmpeg-full && \
	    PKG_CONFIG_PATH=$(abspath build/pkgconfig)$${PKG_CONFIG_PATH:+:$$PKG_CONFIG_PATH} \
	    $(FFMPEG_FULL_SRC)/configure $$(cat full.flags) --disable-shared --enable-static \
	    --extra-ldexeflags=-Wl,-rpath,$(abspath build) --enable-libvqgan $(FFMPEG_EXTRA_CONFIGURE) \
	    >configure.log 2>&1 || { tail -n 30 configure.log; tail -n 40 ffbuild/config.log; exit 1; }
	@echo "libavfilter/vqgan_common.o: CPPFLAGS += -DVQGAN_BUILD_TREE_MODEL='\"$(VQGAN_BUILD_TREE_MODEL)\"'" \
	    >>build/ffmpeg-full/ffbuild/config.mak
	@touch $@

ffmpeg-full-build: build/ffmpeg-full/ffbuild/config.mak
	@if [ build/libvqgan.a -nt build/ffmpeg-full/ffmpeg_g ]; then rm -f build/ffmpeg-full/ffmpeg_g build/ffmpeg-full/ffprobe_g; fi
	+mf=" $$MAKEFLAGS"; case "$$mf" in *jobserver*|*" -j"*) j= ;; *) j=-j$$(nproc) ;; esac; \
	    MAKEFLAGS="$${mf%% -- *}" $(MAKE) $$j -C build/ffmpeg-full ffmpeg ffprobe
ifeq ($(FFMPEG_PROFILE),full)
	ln -sf ffmpeg-full/ffmpeg build/ffmpeg
	ln -sf ffmpeg-full/ffprobe build/ffprobe
endif

ffmpeg-full: lib
	+@$(MAKE) --no-print-directory -f $(FFMPEG_MK) ffmpeg-full-build

# make check-full: the full profile's ffmpeg with a user's own media made by
# Debian's ffmpeg (tests/ffmpeg-full/footage.sh: Matroska FFV1 + Opus/AAC to
# MP4 H.264 with -c:a copy; ProRes and VP9 footage into vqgan_encode).
.PHONY: check-full
check-full: ffmpeg-full
	@GOLDEN=$(GOLDEN) PYTHON=$(PYTHON) sh tests/ffmpeg-full/footage.sh build/ffmpeg-full/ffmpeg >$(BUILD)/check-full.log 2>&1; \
	    rc=$$?; cat $(BUILD)/check-full.log; \
	    echo "$$(grep -c '^ok ' $(BUILD)/check-full.log) passed, $$(grep -c '^not ok ' $(BUILD)/check-full.log) failed"; exit $$rc
