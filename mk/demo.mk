# mk/demo.mk: `make demo`, a sample label video rendered with the default model.
#
# Included by the top-level Makefile. From a fresh clone (with ../shared
# beside it; as root on Debian 12) it does every step itself, one after the
# other, and prints how long each took:
#
#   1. deps       the Debian packages (the Makefile's `deps` target)
#   2. configure  ./configure: FFmpeg's source from Debian's archive
#                 (apt-get source), unpacked and patched (ffmpeg-src/.prepared)
#   3. build      build/libvqgan.a and the default FFmpeg version only
#                 (build/ffmpeg, build/ffprobe); in parallel on every core
#                 unless make was given -j itself
#   4. render     tools/render_demo.sh: $(DEMO_LABELS) through vqgan_synth
#                 without model= (samples/models/default.gguf) -> $(DEMO_OUT)
#                 (H.264, libx264) and $(DEMO_PNG) (colourised labels |
#                 synthesis, first and last frame); prints the speed (frames,
#                 seconds, s/frame) and checks the video with build/ffprobe
#
# Variables: DEMO_LABELS, DEMO_FRAMES (0 = all), DEMO_SYNTH (vqgan_synth
# options; fixed seed, so the render is deterministic), DEMO_OUT, DEMO_PNG.

DEMO_LABELS ?= samples/labels_pan.mkv
DEMO_FRAMES ?= 0
DEMO_SYNTH  ?= seed=7:top_k=32:temporal=follow
DEMO_OUT    ?= $(BUILD)/demo.mp4
DEMO_PNG    ?= $(BUILD)/demo.png

DEMO_ENV = DEMO_LABELS='$(DEMO_LABELS)' DEMO_FRAMES='$(DEMO_FRAMES)' DEMO_SYNTH='$(DEMO_SYNTH)' \
           DEMO_OUT='$(DEMO_OUT)' DEMO_PNG='$(DEMO_PNG)' PYTHON='$(PYTHON)' \
           FFMPEG=build/ffmpeg FFPROBE=build/ffprobe

.PHONY: demo demo-render

demo:
	+@t0=$$(date +%s); \
	mf=" $${MAKEFLAGS%% -- *} "; \
	case $$mf in *" -j"*) jobs= ;; *) jobs=-j$$(nproc 2>/dev/null || echo 2) ;; esac; \
	echo "== demo 1/4: deps"; \
	$(MAKE) --no-print-directory deps || exit 1; t1=$$(date +%s); \
	echo "== demo 2/4: configure (FFmpeg source)"; \
	$(MAKE) --no-print-directory ffmpeg-src/.prepared || exit 1; t2=$$(date +%s); \
	echo "== demo 3/4: build (libvqgan, FFmpeg $(FFMPEG_DEFAULT_VERSION)) $$jobs"; \
	$(MAKE) --no-print-directory $$jobs ffmpeg || exit 1; t3=$$(date +%s); \
	echo "== demo 4/4: render"; \
	$(MAKE) --no-print-directory demo-render || exit 1; t4=$$(date +%s); \
	echo "demo: done in $$((t4 - t0)) s: deps $$((t1 - t0)) s, configure $$((t2 - t1)) s, build $$((t3 - t2)) s, render $$((t4 - t3)) s"; \
	echo "demo: $(DEMO_OUT), $(DEMO_PNG)"

# The render alone (needs build/ffmpeg).
demo-render:
	$(DEMO_ENV) sh tools/render_demo.sh
