# libvqgan: the engine (build/libvqgan.a, build/libvqgan.so), its tests and
# benchmarks, and (mk/ffmpeg.mk) an FFmpeg with the vqgan filters.
#
#   make            library + build/ffmpeg, build/ffprobe (default FFmpeg version)
#   make check      every test; ends with "N passed, N failed"
#   make bench      benchmarks (figures, not pass/fail)
#   make demo       renders build/demo.mp4 with the default model

PYTHON   ?= /usr/bin/python3
CC       ?= gcc
BUILD    ?= build
GOLDEN   ?= $(abspath ../shared/golden)
SOVERSION = 0

CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE -Wall -Wextra -fPIC -fopenmp -march=x86-64-v2 -Iinclude -Isrc
# -O2's default "very cheap" vectorizer model leaves loops of unknown length
# scalar (GroupNorm + swish ran 3x slower); IEEE semantics are kept either way
CFLAGS   += -fvect-cost-model=dynamic
CFLAGS   += -DVQ_HAVE_DNNL -DVQ_HAVE_OPENBLAS -I/usr/include/x86_64-linux-gnu/openblas-pthread
LIBS      = -ldnnl -lopenblas -fopenmp -lmvec -lm -lpthread

SRC      := $(sort $(wildcard src/*.c))
OBJ      := $(SRC:src/%.c=$(BUILD)/obj/%.o)
TESTS    := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TESTS:tests/%.c=$(BUILD)/tests/%)
BENCHES  := $(sort $(wildcard tests/bench_*.c))
BENCH_BIN:= $(BENCHES:tests/%.c=$(BUILD)/tests/%)

.PHONY: all lib deps check check-quick bench demo clean test-models
all: lib ffmpeg

lib: $(BUILD)/libvqgan.a $(BUILD)/libvqgan.so $(BUILD)/pkgconfig/libvqgan.pc

# Debian packages the build and the tests need (installed when missing and root).
DEB_PKGS = gcc make pkg-config libdnnl-dev libopenblas-dev python3-torch python3-numpy \
           python3-yaml python3-pil nasm libx264-dev zlib1g-dev dpkg-dev clang valgrind
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing:" $$missing; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages (run as root or install them): $$missing"; exit 1; fi; \
	fi

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) include/vqgan.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libvqgan.a: $(OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libvqgan.so: $(OBJ)
	$(CC) -shared -Wl,-soname,libvqgan.so.$(SOVERSION) -o $@ $^ $(LIBS)

$(BUILD)/pkgconfig/libvqgan.pc: Makefile
	@mkdir -p $(dir $@)
	@printf 'prefix=%s\nlibdir=%s\nincludedir=%s\n\nName: libvqgan\nDescription: Taming Transformers (VQGAN + GPT) inference\nVersion: 0.1.0\nLibs: -L$${libdir} -lvqgan\nLibs.private: %s\nCflags: -I$${includedir}\n' \
	  "$(CURDIR)" "$(abspath $(BUILD))" "$(CURDIR)/include" "$(LIBS)" > $@

$(BUILD)/tests/%: tests/%.c $(BUILD)/libvqgan.a $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $< -o $@ $(BUILD)/libvqgan.a $(LIBS)

# Model files converted from the reference's golden checkpoints.
TEST_MODELS = vqgan segmentation gpt conditional classcond classwin uncondwin complete
test-models: $(TEST_MODELS:%=$(BUILD)/test-models/%.gguf)
$(BUILD)/test-models/%.gguf: tools/convert.py tools/gguf_writer.py
	@mkdir -p $(dir $@)
	$(PYTHON) tools/convert.py $(GOLDEN)/$*/config.yaml $(GOLDEN)/$*/model.ckpt $@ >/dev/null

# One hand-broken model file per field, for tests/test_model_file.c.
$(BUILD)/broken-models/expect.tsv: $(BUILD)/test-models/vqgan.gguf tests/make_broken_models.py
	@rm -rf $(dir $@) && mkdir -p $(dir $@)
	$(PYTHON) tests/make_broken_models.py $< $(dir $@) >/dev/null

# make check: every test program, the Python tests, the FFmpeg tests against
# every FFmpeg version, and the hardening runs (sanitizers, valgrind, fuzzing:
# mk/hardening.mk). make check-quick: the first two only (no FFmpeg build).
CHECK_DATA = test-models $(BUILD)/broken-models/expect.tsv $(TEST_BIN)
TEST_ENV = GOLDEN=$(GOLDEN) VQ_TEST_MODELS=$(abspath $(BUILD))/test-models BUILD=$(BUILD) PYTHON=$(PYTHON) \
	  VQ_BROKEN_MODELS=$(abspath $(BUILD))/broken-models VQGAN_GOLDEN=$(GOLDEN)
check: deps lib ffmpeg-all $(CHECK_DATA)
	@$(TEST_ENV) FFMPEG_BINS="$(FFMPEG_BINS)" \
	  HARDENING="$(MAKE) -s --no-print-directory check-hardening" sh tests/run.sh $(TEST_BIN)
check-quick: deps lib $(CHECK_DATA)
	@$(TEST_ENV) sh tests/run.sh $(TEST_BIN)

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
bench: deps lib $(BENCH_BIN) $(BUILD)/sflckr-random.gguf $(BUILD)/reference-timing.json
	@for b in $(BENCH_BIN); do echo "== $$b"; $(BENCH_ENV) $$b $(BENCH_FLAGS) || exit 1; done

clean:
	rm -rf $(BUILD)

-include mk/*.mk
