# libvqgan: the engine (build/libvqgan.a, build/libvqgan.so), its tests and
# benchmarks, and (mk/ffmpeg.mk) an FFmpeg with the vqgan filters.
#
#   make            library + build/ffmpeg, build/ffprobe (default FFmpeg version)
#   make check      every test; ends with "N passed, N failed"
#   make bench      benchmarks (figures, not pass/fail)
#   make demo       renders build/demo.mp4 with the default model

PYTHON   ?= /usr/bin/python3
BUILD    ?= build
GOLDEN   ?= $(abspath ../shared/golden)

# ./configure writes config.mk (installation directories, CPU flags, the
# backends found); without one, make runs `./configure --lib-only` first
# (not for `make clean` or `make distclean` alone).
VQ_CLEAN_ONLY := $(if $(MAKECMDGOALS),$(if $(filter-out clean distclean,$(MAKECMDGOALS)),,yes))
ifneq ($(VQ_CLEAN_ONLY),yes)
include config.mk
endif
config.mk:
	$(call configure_again,--lib-only)
	@[ ! -e $(DEPS_STAMP) ] || touch -r $@ $(DEPS_STAMP)
# The goals that install the missing Debian packages (deps, below) do so
# before config.mk is read, so that ./configure finds the backends they bring
# (on a fresh machine, `make check` would otherwise build and test the
# library without oneDNN: the full ./configure that the FFmpeg build runs
# later rewrites config.mk too late for the make already running). The same
# when config.mk was written before them (a plain `make` first): deps marks
# what it installed in DEPS_STAMP, ./configure runs again with the compiler
# and the arguments config.mk was written with, and make restarts where that
# changed config.mk (./configure keeps an unchanged file and its date; the
# stamp then takes config.mk's date, so that nothing is rebuilt and nothing
# loops). `make deps` alone does the same, so that a later `make` finds the
# backends.
DEPS_STAMP = $(BUILD)/.deps-installed
ifneq ($(filter deps check check-quick bench,$(MAKECMDGOALS)),)
config.mk: $(DEPS_STAMP)
endif

# One place holds the version: VERSION ("MAJOR.MINOR.PATCH"). The header
# vqgan_version.h, vqgan_version(), the .pc file and the soname come from it.
VERSION  := $(strip $(file <VERSION))
VERSION_WORDS := $(subst ., ,$(VERSION))
VERSION_MAJOR := $(word 1,$(VERSION_WORDS))
VERSION_MINOR := $(word 2,$(VERSION_WORDS))
VERSION_PATCH := $(word 3,$(VERSION_WORDS))
# The soname carries the ABI: while the major version is 0, every minor
# version may change it (a struct the caller allocates grows), so it is
# 0.MINOR (libvqgan.so.0.3); from 1.0 on, the major version.
# tests/unit/test_api_install.c records the public structs' sizes of this ABI.
SOVERSION = $(if $(filter 0,$(VERSION_MAJOR)),0.$(VERSION_MINOR),$(VERSION_MAJOR))
SONAME    = libvqgan.so.$(SOVERSION)
SOFILE    = libvqgan.so.$(VERSION)

# CFLAGS, CPPFLAGS and LDFLAGS are the builder's (the environment's, the
# make command line's, or those ./configure recorded): a packager's
# `make CFLAGS="-O2 -g -fstack-protector-strong" CPPFLAGS=-D_FORTIFY_SOURCE=2`
# replaces CFLAGS, so the flags the build needs live in VQ_CFLAGS, and the
# compiler gets $(ALL_CFLAGS): those, then CPPFLAGS and CFLAGS (last: an -O
# or -march of the builder's wins).
CFLAGS   ?= -O2 -g
VQ_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -fPIC -fopenmp $(ARCH_CFLAGS) -Iinclude -I$(BUILD)/include -Isrc
# -O2's default "very cheap" vectorizer model leaves loops of unknown length
# scalar (GroupNorm + swish ran 3x slower); IEEE semantics are kept either way
VQ_CFLAGS += -fvect-cost-model=dynamic
VQ_CFLAGS += $(BACKEND_CFLAGS)
# The shared library exports vqgan.h's VQGAN_API functions alone; tests that
# need internals link libvqgan.a.
VQ_CFLAGS += -fvisibility=hidden
# No path into the source tree in the objects (debug info, __FILE__): the
# installed library must not name the checkout it was built in.
VQ_CFLAGS += -ffile-prefix-map=$(CURDIR)=.
ALL_CFLAGS = $(VQ_CFLAGS) $(CPPFLAGS) $(CFLAGS)
LIBS      = $(BACKEND_LIBS) $(BASE_LIBS)

SRC      := $(sort $(wildcard src/*.c))
OBJ      := $(SRC:src/%.c=$(BUILD)/obj/%.o)
# tests/: unit/ (one part of the library against a slow obvious reference),
# parity/ (against the reference implementation's outputs), robustness/
# (hostile inputs, limits, concurrency), tools/ (the converter, the layering
# check), bench/ (figures, not pass/fail), ffmpeg/ and install/ (end to end),
# common/ (the headers they share). The programs build flat into build/tests/.
TEST_DIRS := tests/unit tests/parity tests/robustness
TESTS    := $(sort $(foreach d,$(TEST_DIRS),$(wildcard $(d)/test_*.c)))
TEST_BIN := $(addprefix $(BUILD)/tests/,$(notdir $(TESTS:.c=)))
BENCHES  := $(sort $(wildcard tests/bench/bench_*.c))
BENCH_BIN:= $(addprefix $(BUILD)/tests/,$(notdir $(BENCHES:.c=)))
vpath test_%.c $(TEST_DIRS)
vpath bench_%.c tests/bench

.PHONY: all lib deps check check-quick bench bench-families-models demo clean distclean test-models FORCE
all: lib ffmpeg

lib: $(BUILD)/libvqgan.a $(BUILD)/libvqgan.so $(BUILD)/pkgconfig/libvqgan.pc

# Debian packages the build and the tests need (installed when missing and root).
DEB_PKGS = gcc make pkg-config libdnnl-dev libopenblas-dev python3-torch python3-numpy \
           python3-yaml python3-pil nasm libx264-dev zlib1g-dev dpkg-dev clang valgrind
deps: $(DEPS_STAMP)
# Always run; touched only when it installed something (made with an old
# date the first time, so that its own creation reconfigures nothing).
$(DEPS_STAMP): FORCE
	@mkdir -p $(dir $@); [ -e $@ ] || touch -d @0 $@
	@missing=$$(for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing:" $$missing; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null && touch $@; \
	  else echo "missing Debian packages (run as root or install them): $$missing"; exit 1; fi; \
	fi
FORCE:

$(BUILD)/include/vqgan_version.h: VERSION
	@mkdir -p $(dir $@)
	@case "$(VERSION)" in [0-9]*.[0-9]*.[0-9]*) ;; *) echo "VERSION: '$(VERSION)' is not MAJOR.MINOR.PATCH" >&2; exit 1 ;; esac
	@printf '/* Generated from VERSION by the build; do not edit. */\n#ifndef VQGAN_VERSION_H\n#define VQGAN_VERSION_H\n#define VQGAN_VERSION_MAJOR %s\n#define VQGAN_VERSION_MINOR %s\n#define VQGAN_VERSION_PATCH %s\n#define VQGAN_VERSION_STRING "%s"\n#endif\n' \
	  $(VERSION_MAJOR) $(VERSION_MINOR) $(VERSION_PATCH) $(VERSION) >$@

# Header dependencies come from the compiler (-MMD -MP: build/obj/*.d), so an
# object is rebuilt when a header it includes changes, and only then.
$(BUILD)/obj/%.o: src/%.c $(BUILD)/include/vqgan_version.h config.mk
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@
-include $(OBJ:.o=.d)

# The configured datadir is compiled into this one object (vqgan_default_model_path).
$(BUILD)/obj/paths.o: VQ_CFLAGS += -DVQ_DATADIR='"$(DATADIR)"'

$(BUILD)/libvqgan.a: $(OBJ)
	@rm -f $@
	ar rcs $@ $^

# build/libvqgan.so.X.Y.Z with its soname link (for programs run from the
# build tree) and the development link.
$(BUILD)/libvqgan.so: $(OBJ) src/libvqgan.map
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--no-undefined -Wl,--version-script,src/libvqgan.map -o $(BUILD)/$(SOFILE) $(OBJ) $(LDFLAGS) $(LIBS)
	ln -sf $(SOFILE) $(BUILD)/$(SONAME)
	ln -sf $(SOFILE) $@

# The .pc file for the build tree (uninstalled); make install writes the real one.
# Requires.private names the backends pkg-config knows (configure's
# PC_REQUIRES_PRIVATE); a config.mk written before it: every flag in Libs.private
PC_LIBS = $(if $(filter undefined,$(origin PC_LIBS_PRIVATE)),$(LIBS),$(strip $(PC_LIBS_PRIVATE) $(BASE_LIBS)))
PC_TEXT = prefix=%s\nlibdir=%s\nincludedir=%s\n\nName: libvqgan\nDescription: Taming Transformers (VQGAN + GPT) inference\nVersion: $(VERSION)\nLibs: -L$${libdir} -lvqgan\n$(if $(strip $(PC_REQUIRES_PRIVATE)),Requires.private: $(strip $(PC_REQUIRES_PRIVATE))\n)Libs.private: $(PC_LIBS)\nCflags: -I$${includedir}\n
$(BUILD)/pkgconfig/libvqgan.pc: Makefile config.mk VERSION
	@mkdir -p $(dir $@)
	@printf '$(PC_TEXT)' "$(CURDIR)" "$(abspath $(BUILD))" "$(CURDIR)/include" > $@
	@# vqgan_version.h is generated into the build tree
	@sed -i 's|^Cflags:.*|Cflags: -I$${includedir} -I$(abspath $(BUILD))/include|' $@

$(BUILD)/tests/%: %.c $(BUILD)/libvqgan.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -Itests/common $< -o $@ $(BUILD)/libvqgan.a $(LIBS)
-include $(TEST_BIN:=.d) $(BENCH_BIN:=.d)
# The test sources lived in tests/ itself until the split into tests/unit/ and
# the rest: an older build's dependency files still name them there.
tests/test_%.c tests/bench_%.c tests/%.h: ;

# Model files converted from the reference's golden checkpoints.
TEST_MODELS = vqgan segmentation gpt conditional classcond classwin uncondwin complete depth coord coco gumbel
test-models: $(TEST_MODELS:%=$(BUILD)/test-models/%.gguf)
$(BUILD)/test-models/%.gguf: tools/convert.py tools/gguf_writer.py tools/palettes.py tools/colorize_labels.py
	@mkdir -p $(dir $@)
	$(PYTHON) tools/convert.py $(GOLDEN)/$*/config.yaml $(GOLDEN)/$*/model.ckpt $@ >/dev/null

# One hand-broken model file per field, for tests/robustness/test_model_file.c.
$(BUILD)/broken-models/expect.tsv: $(BUILD)/test-models/vqgan.gguf tests/robustness/make_broken_models.py
	@rm -rf $(dir $@) && mkdir -p $(dir $@)
	$(PYTHON) tests/robustness/make_broken_models.py $< $(dir $@) >/dev/null

# make check: every test program, the Python tests, the FFmpeg tests against
# every FFmpeg version, and the hardening runs (sanitizers, valgrind, fuzzing:
# mk/hardening.mk). make check-quick: the first two only (no FFmpeg build).
CHECK_DATA = test-models $(BUILD)/broken-models/expect.tsv $(TEST_BIN)
TEST_ENV = GOLDEN=$(GOLDEN) VQ_TEST_MODELS=$(abspath $(BUILD))/test-models BUILD=$(BUILD) PYTHON=$(PYTHON) \
	  VQ_BROKEN_MODELS=$(abspath $(BUILD))/broken-models VQGAN_GOLDEN=$(GOLDEN)
# farm.sh tests tools/vqgan-farm and Slurm around an ffmpeg, not the filters:
# it runs once, in the install test (it took 200-230 s a run here).
FFMPEG_ONCE = farm.sh farm_fake.sh
check: deps lib ffmpeg-check $(CHECK_DATA)
	@$(TEST_ENV) FFMPEG_BINS="$(CHECK_FFMPEG_BINS)" FFMPEG_ONCE="$(FFMPEG_ONCE)" \
	  HARDENING="$(MAKE) -s --no-print-directory check-hardening" \
	  INSTALL_CHECK="$(MAKE) -s --no-print-directory check-install" sh tests/run.sh $(TEST_BIN)
# check-quick needs no ../shared: without the golden data ($(GOLDEN) missing)
# it runs the unit tests' cases that need none (VQ_NO_GOLDEN=1: the others
# are skipped, each named), the converter's writer checks, the parity test on
# generated architectures (tests/parity/test_architectures.py: seeded random
# weights against the reference's modules, its own fixture) and the layering
# check; with the golden data, every test program but the FFmpeg ones.
HAVE_GOLDEN := $(wildcard $(GOLDEN)/vqgan/model.ckpt)
UNIT_BIN := $(addprefix $(BUILD)/tests/,$(notdir $(basename $(wildcard tests/unit/test_*.c))))
ifneq ($(HAVE_GOLDEN),)
check-quick: deps lib $(CHECK_DATA)
	@$(TEST_ENV) sh tests/run.sh $(TEST_BIN)
else
check-quick: deps lib $(UNIT_BIN)
	@$(TEST_ENV) VQ_NO_GOLDEN=1 sh tests/run.sh $(UNIT_BIN)
endif

# The released S-FLCKR shapes with seeded random weights, as a model file and
# as a reference-layout checkpoint (the same weights), and the reference
# algorithm's timing on them.
$(BUILD)/sflckr-random.gguf: tools/make_random_model.py tools/configs/sflckr.yaml tools/convert.py
	$(PYTHON) tools/make_random_model.py tools/configs/sflckr.yaml $@ --ckpt $(BUILD)/sflckr-random.ckpt
$(BUILD)/reference-timing.json: $(BUILD)/sflckr-random.gguf tools/reference_timing.py
	$(PYTHON) tools/reference_timing.py tools/configs/sflckr.yaml $(BUILD)/sflckr-random.ckpt $@

# The benches run under libgomp's default wait policy (idle threads spin a
# while before sleeping), as ffmpeg and programs embedding the library get it:
# with OMP_WAIT_POLICY=passive every parallel region wakes a sleeping thread,
# about a fifth of a one-position transformer step on a 2-core VM. The test
# suite (tests/run.sh) stays passive: it shares the machine with itself.
BENCH_ENV = env -u OMP_WAIT_POLICY
# The released families at their real shapes with random weights, for
# tests/bench/bench_families (bf16 files: the loader converts to f32; the 1.4B cIN
# model takes 3 GB on disk, 6 GB in memory).
FAMILIES = drin faceshq coco ade20k ffhq celebahq gumbel_f8 f16_16384 cin
FAMILY_MODELS = $(FAMILIES:%=$(BUILD)/families/%.gguf)
bench-families-models: $(FAMILY_MODELS)
$(BUILD)/families/%.gguf: tools/configs/%.yaml tools/make_random_model.py tools/convert.py
	@mkdir -p $(dir $@)
	nice $(PYTHON) tools/make_random_model.py $< $@.tmp --dtype bf16 && mv $@.tmp $@
bench: deps lib $(BENCH_BIN) $(BUILD)/sflckr-random.gguf $(BUILD)/reference-timing.json $(FAMILY_MODELS)
	@for b in $(BENCH_BIN); do echo "== $$b"; $(BENCH_ENV) $$b $(BENCH_FLAGS) || exit 1; done

clean:
	rm -rf $(BUILD)
# and what ./configure wrote: config.mk, the FFmpeg sources it prepared
distclean: clean
	rm -rf config.mk config.mk.tmp ffmpeg-src

-include mk/*.mk
