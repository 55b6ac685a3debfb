# mk/farm.mk: the long-run soak of docs/farm.md (issue 21); not part of
# make check (it takes about 20 minutes). tools/vqgan-farm itself is tested
# on a one-node Slurm cluster by tests/ffmpeg/farm.sh, in make check.
#
#   make soak      tests/robustness/soak.py on build/ffmpeg: 500 frames of a moving
#                  label video at 128x96 with temporal=follow and reuse
#                  (one thread, the default model), RSS sampled over the
#                  run, every frame's time, then a valgrind leak check of 4
#                  frames of each mode at 64x48 (SOAK_FLAGS to change: see
#                  tests/robustness/soak.py --help; docs/farm.md has the figures)

SOAK_FLAGS ?= --valgrind-frames 4

.PHONY: soak
soak: deps ffmpeg
	$(PYTHON) tests/robustness/soak.py --ffmpeg build/ffmpeg $(SOAK_FLAGS)
