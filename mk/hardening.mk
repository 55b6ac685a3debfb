# mk/hardening.mk: sanitizers, leak checks and fuzzing (docs/hardening.md).
#
# Included by the top-level Makefile. Every target prints one line per
# program (or run) in the test runner's format, "ok - ..." / "not ok - ...",
# keeps the full output under build/<kind>/log/, and fails when a line fails.
#
#   check-asan      the library and every tests/{unit,parity,robustness}/test_*.c built with
#                   AddressSanitizer + UndefinedBehaviorSanitizer (gcc) into
#                   build/asan/, each test run once ($(HARD_JOBS) at a time,
#                   OMP_WAIT_POLICY=passive); LeakSanitizer is on
#   check-tsan      tests/robustness/test_concurrency.c under ThreadSanitizer (clang),
#                   library built WITHOUT -fopenmp (see below) into build/tsan/
#   check-valgrind  valgrind memcheck, no leak allowed, on $(VALGRIND_TESTS)
#                   (the normal build/tests/ binaries) and on the fuzz target
#                   as a plain program over the corpus and regressions
#   check-fuzz      the model-loader fuzzer (clang libFuzzer + ASan + UBSan)
#                   for $(FUZZ_TIME) s over tests/fuzz/corpus, after replaying
#                   tests/fuzz/regressions
#   fuzz-long       $(FUZZ_LONG_TIME) s (default 1 h) in fork mode with
#                   $(FUZZ_JOBS) workers, past crashes; corpus kept in
#                   build/fuzz/corpus-long between runs
#   check-hardening all four (their programs built first, in parallel; valgrind
#                   and the fuzzer side by side), then "hardening: N passed, N failed"
#   clean-hardening remove build/asan, build/tsan, build/fuzz, build/valgrind,
#                   build/hardening
#
# Measured on 2 shared cores, from scratch: check-asan 82 s, check-tsan 10 s,
# check-valgrind 21 s, check-fuzz 69 s; check-hardening with the builds done
# 162 s (Nov 2026). On the Intel Xeon of December 2026 check-hardening from
# scratch took 430 s, against 900-1160 s before its builds ran in parallel
# (docs/hardening.md).
#
# ThreadSanitizer and OpenMP (check-tsan): libgomp is not built with TSan, so
# its barriers and task queues are invisible to TSan and every parallel region reports
# false races. The TSan build therefore compiles the library and the test
# without -fopenmp (the pragmas are ignored, every call runs on the calling
# thread; omp_* functions still come from libgomp) and the test gives every
# session n_threads = 1, so oneDNN (which uses libgomp inside) stays on the
# calling thread too. What TSan then checks is exactly our own
# synchronisation: the shared-model cache and reference counts (model.c), the
# per-thread error and the log callback lock (error.c), the packed weights
# (held by the model, read-only after load), oneDNN's one-time engine set-up
# (backend_dnnl.c), and
# that sessions share nothing mutable through the model. No suppressions.
#
# Valgrind and oneDNN: valgrind reports the CPU as having no AVX-512 (CPUID
# is virtualised), so oneDNN's JIT and the target_clones hot loops pick AVX2
# code that valgrind can run; the JIT's code buffers need --smc-check. oneDNN
# convolutions and products under valgrind are ~100x slower, so check-valgrind
# runs the programs that finish in seconds there: test_model_file (every
# broken model, every error path of the loader), test_sampler, and the fuzz
# target as a plain program over the corpus and regressions (loads and
# refusals, and every stage of the tiny models). test_robustness and
# test_concurrency take over 10 minutes under valgrind; they and the numeric
# tests are checked for leaks by LeakSanitizer in check-asan instead.

HARD_ENV = GOLDEN=$(GOLDEN) VQGAN_GOLDEN=$(GOLDEN) VQ_TEST_MODELS=$(abspath $(BUILD))/test-models \
           VQ_BROKEN_MODELS=$(abspath $(BUILD))/broken-models BUILD=$(BUILD) PYTHON=$(PYTHON)
HARD_DATA = test-models $(BUILD)/broken-models/expect.tsv

# Runs the shell words in $$cmd with output to $$log, then prints one result
# line for $$label and sets fail=1 on failure. A run fails on a nonzero exit,
# a "not ok" line, or a sanitizer / valgrind report in its output.
define hard_run
start=$$(date +%s); sh -c "$$cmd" > $$log 2>&1; rc=$$?; secs=$$(( $$(date +%s) - start )); \
p=$$(grep -c '^ok ' $$log); f=$$(grep -c '^not ok ' $$log); \
s=$$(grep -c -E '^(==[0-9]+==|)(ERROR|WARNING): (AddressSanitizer|LeakSanitizer|ThreadSanitizer)|runtime error:|ERROR SUMMARY: [1-9]|SUMMARY: (AddressSanitizer|ThreadSanitizer|UndefinedBehaviorSanitizer)' $$log); \
if [ $$rc -eq 0 ] && [ $$f -eq 0 ] && [ $$s -eq 0 ]; then \
  if [ $$p -gt 0 ]; then echo "ok - $$label: $$p checks passed ($$secs s)"; else echo "ok - $$label ($$secs s)"; fi; \
else \
  echo "not ok - $$label: exit status $$rc, $$f checks failed, $$s sanitizer reports ($$secs s, log $$log)"; \
  grep -E '^not ok |ERROR:|WARNING: ThreadSanitizer|runtime error:|definitely lost|indirectly lost|ERROR SUMMARY|^    #[0-3] ' $$log | head -20 | sed 's/^/    /'; \
  fail=1; \
fi
endef

# Builds without -fopenmp (TSan, fuzzer) still call a few omp_* functions,
# which come from libgomp; clang finds no omp.h without libomp-dev, so the
# declarations come from this generated header.
OMP_SHIM = $(BUILD)/omp-shim
$(OMP_SHIM)/omp.h:
	@mkdir -p $(dir $@)
	@printf '%s\n' '/* generated by mk/hardening.mk: the OpenMP API for builds without -fopenmp */' \
	  '#ifndef VQ_OMP_SHIM_H' '#define VQ_OMP_SHIM_H' \
	  'int omp_get_max_threads(void); void omp_set_num_threads(int); double omp_get_wtime(void);' \
	  'int omp_get_thread_num(void); int omp_get_num_threads(void); int omp_in_parallel(void);' \
	  'int omp_get_num_procs(void);' '#endif' > $@

.PHONY: check-asan check-tsan check-valgrind check-fuzz fuzz-long check-hardening clean-hardening

# ---- AddressSanitizer + UndefinedBehaviorSanitizer ------------------------------
ASAN_DIR    = $(BUILD)/asan
ASAN_FLAGS  = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ASAN_OBJ    = $(SRC:src/%.c=$(ASAN_DIR)/obj/%.o)
ASAN_TESTS  = $(addprefix $(ASAN_DIR)/tests/,$(notdir $(TESTS:.c=)))
ASAN_RUNENV = OMP_WAIT_POLICY=passive ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=0 \
              UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

$(ASAN_DIR)/obj/%.o: src/%.c $(wildcard src/*.h) include/vqgan.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) -c $< -o $@

$(ASAN_DIR)/libvqgan.a: $(ASAN_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(ASAN_DIR)/tests/%: %.c $(ASAN_DIR)/libvqgan.a $(wildcard tests/common/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) -Itests/common $< -o $@ $(ASAN_DIR)/libvqgan.a $(LIBS)

# The tests run $(HARD_JOBS) at a time (each its own result file), then the
# result lines are printed in order.
HARD_JOBS ?= 2
ASAN_RESULTS = $(addprefix $(ASAN_DIR)/result/,$(notdir $(TESTS:.c=)))

$(ASAN_DIR)/result/%: $(ASAN_DIR)/tests/% hardening-force
	@mkdir -p $(dir $@) $(ASAN_DIR)/log; fail=0; \
	label="asan+ubsan: $*"; log=$(ASAN_DIR)/log/$*.txt; \
	cmd="env $(HARD_ENV) $(ASAN_RUNENV) $<"; \
	{ $(hard_run); } > $@.tmp; mv $@.tmp $@

check-asan: $(ASAN_TESTS) $(HARD_DATA)
	@rm -rf $(ASAN_DIR)/result; \
	$(MAKE) -s -k -j$(HARD_JOBS) $(ASAN_RESULTS) >/dev/null 2>&1; \
	for t in $(ASAN_RESULTS); do [ -f $$t ] && cat $$t || echo "not ok - asan+ubsan: $$(basename $$t): did not run"; done; \
	! cat $(ASAN_RESULTS) 2>/dev/null | grep -q '^not ok' && [ $$(cat $(ASAN_RESULTS) 2>/dev/null | grep -c '^ok') -eq $(words $(ASAN_RESULTS)) ]

.PHONY: hardening-force
.PRECIOUS: $(ASAN_DIR)/tests/% $(TSAN_DIR)/tests/%
hardening-force:

# ---- ThreadSanitizer -------------------------------------------------------------
# clang: gcc's TSan instruments the ifunc resolvers of ops.c's target_clones,
# which then run before the TSan runtime is up and crash at start-up.
TSAN_CC    ?= clang
TSAN_DIR    = $(BUILD)/tsan
TSAN_CFLAGS = $(filter-out -fopenmp -O2 -O3 -fvect-cost-model=%,$(ALL_CFLAGS)) -O1 -g -fsanitize=thread -fno-omit-frame-pointer \
              -I$(OMP_SHIM) -Wno-unknown-pragmas -Wno-source-uses-openmp -DVQ_TSAN_BUILD
TSAN_LIBS   = -fsanitize=thread $(BACKEND_LIBS) -lgomp $(filter-out -fopenmp,$(BASE_LIBS))
TSAN_OBJ    = $(SRC:src/%.c=$(TSAN_DIR)/obj/%.o)
TSAN_TESTS ?= test_concurrency test_scratch
TSAN_RUNENV = TSAN_OPTIONS=halt_on_error=0:exitcode=66:second_deadlock_stack=1 OMP_NUM_THREADS=1

$(TSAN_DIR)/obj/%.o: src/%.c $(wildcard src/*.h) include/vqgan.h $(OMP_SHIM)/omp.h
	@mkdir -p $(dir $@)
	$(TSAN_CC) $(TSAN_CFLAGS) -c $< -o $@

$(TSAN_DIR)/libvqgan.a: $(TSAN_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(TSAN_DIR)/tests/%: %.c $(TSAN_DIR)/libvqgan.a $(wildcard tests/common/*.h)
	@mkdir -p $(dir $@)
	$(TSAN_CC) $(TSAN_CFLAGS) -Itests/common $< -o $@ $(TSAN_DIR)/libvqgan.a $(TSAN_LIBS)

check-tsan: $(TSAN_TESTS:%=$(TSAN_DIR)/tests/%) $(HARD_DATA)
	@mkdir -p $(TSAN_DIR)/log; fail=0; \
	for n in $(TSAN_TESTS); do \
	  label="tsan: $$n"; log=$(TSAN_DIR)/log/$$n.txt; \
	  cmd="env $(HARD_ENV) $(TSAN_RUNENV) $(TSAN_DIR)/tests/$$n"; \
	  $(hard_run); \
	done; exit $$fail

# ---- valgrind ----------------------------------------------------------------------
VALGRIND       ?= valgrind
VALGRIND_TESTS ?= test_model_file test_sampler
VALGRIND_FLAGS ?= --leak-check=full --errors-for-leak-kinds=definite,indirect \
                  --show-leak-kinds=definite,indirect --error-exitcode=1 --smc-check=all-non-file \
                  --fair-sched=yes --num-callers=30
VALGRIND_RUNENV = VQ_TEST_QUICK=1

# the fuzz target as a plain program (gcc, the normal build): every corpus and
# regression file loaded, refused or run through every stage of the tiny models
$(BUILD)/valgrind/fuzz_replay: tests/fuzz/fuzz_model_load.c $(BUILD)/libvqgan.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DVQ_FUZZ_STANDALONE $< -o $@ $(BUILD)/libvqgan.a $(LIBS)

check-valgrind: $(VALGRIND_TESTS:%=$(BUILD)/tests/%) $(BUILD)/valgrind/fuzz_replay $(HARD_DATA) ffmpeg
	@mkdir -p $(BUILD)/valgrind/log; fail=0; \
	for n in $(VALGRIND_TESTS); do \
	  label="valgrind: $$n"; log=$(BUILD)/valgrind/log/$$n.txt; \
	  cmd="env $(HARD_ENV) $(VALGRIND_RUNENV) $(VALGRIND) $(VALGRIND_FLAGS) $(BUILD)/tests/$$n"; \
	  $(hard_run); \
	done; \
	label="valgrind: fuzz target over tests/fuzz/corpus and tests/fuzz/regressions"; \
	log=$(BUILD)/valgrind/log/fuzz_replay.txt; \
	cmd="$(VALGRIND) $(VALGRIND_FLAGS) $(BUILD)/valgrind/fuzz_replay $$(ls tests/fuzz/corpus/* tests/fuzz/regressions/* | grep -v README | tr "\n" " ")"; \
	$(hard_run); \
	label="valgrind: FFmpeg filter graphs built, run and torn down (tests/ffmpeg/valgrind_graphs)"; \
	log=$(BUILD)/valgrind/log/ffmpeg_graphs.txt; \
	cmd="env $(HARD_ENV) sh tests/ffmpeg/valgrind_graphs build/ffmpeg"; \
	$(hard_run); \
	exit $$fail

# ---- libFuzzer -----------------------------------------------------------------------
# clang, without -fopenmp: the fuzzer runs one thread; the few omp_* calls go
# to libgomp through a generated declaration header (libomp-dev not needed).
FUZZ_CC        ?= clang
FUZZ_DIR       ?= $(BUILD)/fuzz
FUZZ_TIME      ?= 60
FUZZ_LONG_TIME ?= 3600
FUZZ_CFLAGS     = $(filter-out -fopenmp -O2 -O3 -g -fvect-cost-model=%,$(ALL_CFLAGS)) -O1 -g -I$(OMP_SHIM) \
                  -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
                  -Wno-unknown-pragmas -Wno-source-uses-openmp $(FUZZ_EXTRA_CFLAGS)
# e.g. FUZZ_EXTRA_CFLAGS=-fno-sanitize=shift to look past a known bug
# (with FUZZ_DIR=build/fuzz-explore to keep the builds apart)
FUZZ_EXTRA_CFLAGS ?=
FUZZ_LIBS       = $(BACKEND_LIBS) -lgomp $(filter-out -fopenmp,$(BASE_LIBS))
FUZZ_OBJ        = $(SRC:src/%.c=$(FUZZ_DIR)/obj/%.o)
# -rss_limit_mb: a model file may not make the loader allocate more than this
FUZZ_OPTS      ?= -timeout=20 -rss_limit_mb=2048 -max_len=450000 -dict=tests/fuzz/gguf.dict \
                  -print_final_stats=1
FUZZ_RUNENV     = ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 OMP_NUM_THREADS=1

$(FUZZ_DIR)/obj/%.o: src/%.c $(wildcard src/*.h) include/vqgan.h $(OMP_SHIM)/omp.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/fuzz_model_load: tests/fuzz/fuzz_model_load.c $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< -o $@ $(FUZZ_OBJ) $(FUZZ_LIBS)

# One run over the regressions (each file once), then FUZZ_TIME seconds of
# fuzzing; new inputs go to build/fuzz/corpus-new, crashes to build/fuzz/crash-*.
check-fuzz: $(FUZZ_DIR)/fuzz_model_load
	@mkdir -p $(FUZZ_DIR)/log $(FUZZ_DIR)/corpus-new; fail=0; \
	label="fuzz: replay tests/fuzz/regressions and tests/fuzz/corpus"; log=$(FUZZ_DIR)/log/replay.txt; \
	cmd="env $(FUZZ_RUNENV) $(FUZZ_DIR)/fuzz_model_load -runs=0 $(FUZZ_OPTS) \
	  -artifact_prefix=$(FUZZ_DIR)/replay- tests/fuzz/corpus tests/fuzz/regressions"; \
	$(hard_run); \
	label="fuzz: model loader, $(FUZZ_TIME) s"; log=$(FUZZ_DIR)/log/fuzz.txt; \
	cmd="env $(FUZZ_RUNENV) $(FUZZ_DIR)/fuzz_model_load -max_total_time=$(FUZZ_TIME) $(FUZZ_OPTS) \
	  -artifact_prefix=$(FUZZ_DIR)/ $(FUZZ_DIR)/corpus-new tests/fuzz/corpus tests/fuzz/regressions"; \
	$(hard_run); \
	grep -h -E '^stat::number_of_executed_units|^stat::new_units_added' $$log | sed 's/^/    /'; \
	ls $(FUZZ_DIR)/crash-* $(FUZZ_DIR)/leak-* $(FUZZ_DIR)/timeout-* $(FUZZ_DIR)/oom-* 2>/dev/null | sed 's/^/    found: /'; \
	exit $$fail

# The documented longer run (docs/hardening.md): libFuzzer's fork mode with
# FUZZ_JOBS workers, going on past crashes so one run collects them all
# (build/fuzz/crash-*); corpus kept in build/fuzz/corpus-long between runs.
FUZZ_JOBS ?= 2
fuzz-long: $(FUZZ_DIR)/fuzz_model_load
	@mkdir -p $(FUZZ_DIR)/corpus-long $(FUZZ_DIR)/log
	cd $(FUZZ_DIR) && env $(FUZZ_RUNENV) ./fuzz_model_load -max_total_time=$(FUZZ_LONG_TIME) \
	  -fork=$(FUZZ_JOBS) -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
	  $(subst -dict=tests/,-dict=$(CURDIR)/tests/,$(FUZZ_OPTS)) \
	  -artifact_prefix=$(abspath $(FUZZ_DIR))/ corpus-long $(CURDIR)/tests/fuzz/corpus $(CURDIR)/tests/fuzz/regressions \
	  > log/fuzz-long.txt 2>&1; \
	grep -E '^#[0-9]+: cov|INFO: fuzzed for|^Done' log/fuzz-long.txt | tail -3; \
	found=$$(ls crash-* leak-* timeout-* oom-* 2>/dev/null); \
	if [ -n "$$found" ]; then echo "not ok - fuzz-long: found (in $(FUZZ_DIR)):" $$found; exit 1; \
	else echo "ok - fuzz-long: $(FUZZ_LONG_TIME) s, no crash, leak, timeout or oom"; fi

# ---- everything ----------------------------------------------------------------------
# Every program the four need is built first, $(HARD_JOBS) compilers at a time
# (the sanitizers' three copies of the library, one after the other, were
# most of the hardening's time on 2 cores); a failed build is left to its
# check to report. Then ASan and TSan; then valgrind and the fuzzer side by
# side, each one thread (the fuzzer runs for its FUZZ_TIME whatever else runs).
# The results print in that order.
HARD_BINS = $(ASAN_TESTS) $(TSAN_TESTS:%=$(TSAN_DIR)/tests/%) $(VALGRIND_TESTS:%=$(BUILD)/tests/%) \
            $(BUILD)/valgrind/fuzz_replay $(FUZZ_DIR)/fuzz_model_load
.PHONY: hardening-build
hardening-build: $(HARD_BINS)

check-hardening:
	@mkdir -p $(BUILD)/hardening; \
	$(MAKE) -s -k -j$(HARD_JOBS) hardening-build > $(BUILD)/hardening/build.log 2>&1; \
	out=$$($(MAKE) -s -k check-asan check-tsan 2>&1); rc=$$?; \
	$(MAKE) -s -k check-fuzz > $(BUILD)/hardening/fuzz.out 2>&1 & fz=$$!; \
	vg=$$($(MAKE) -s -k check-valgrind 2>&1) || rc=1; \
	wait $$fz || rc=1; \
	out=$$(printf '%s\n%s\n' "$$out" "$$vg"; cat $(BUILD)/hardening/fuzz.out); \
	printf '%s\n' "$$out"; \
	echo "hardening: $$(printf '%s\n' "$$out" | grep -c '^ok ') passed, $$(printf '%s\n' "$$out" | grep -c '^not ok ') failed"; \
	exit $$rc

clean-hardening:
	rm -rf $(ASAN_DIR) $(TSAN_DIR) $(FUZZ_DIR) $(BUILD)/valgrind $(BUILD)/hardening $(OMP_SHIM)

# src/paths.c holds the configured data directory (Makefile: the same flag
# for build/obj/paths.o): every instrumented build of it needs it too.
$(ASAN_DIR)/obj/paths.o $(TSAN_DIR)/obj/paths.o $(FUZZ_DIR)/obj/paths.o: VQ_CFLAGS += -DVQ_DATADIR='"$(DATADIR)"'
