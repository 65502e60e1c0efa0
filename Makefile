# mamba-mia build.
#
#   make setup   install what is missing (Debian packages, MNIST) - idempotent
#   make all     optimised engines (single-threaded), bin/train, bin/export
#   make omp     engines with OpenMP (the seed's `make omp && ./mamba ...`)
#   make fast    fastest engine build, used by `make bench`
#   make debug   engines and tests with symbols, ASan and UBSan
#   make test    build and run every test binary
#   make bench   speed benchmarks; results go to bench/results.txt
#   make demo    the main job: setup, train, export, infer (attack run later)
#   make clean
#
# The engines (mamba.cpp, cnn.cpp, transformer.cpp) need only libc, libm and OpenMP. The
# training side (train/, export/, common/) links LibTorch, zlib, nlohmann-json.
# Its programs go to bin/: a file cannot share its name with the source
# folders train/, export/ and attack/ at the top level.

CXX      ?= g++
BUILD    := build
# Where the programs go: ./mamba, bin/train ... for BUILD=build; under
# build-san/ for the sanitizer sub-make (mk/sanitize.mk).
PROG_PREFIX := $(if $(filter build,$(BUILD)),,$(BUILD)/)
ARCH     ?= -march=native
# No -ffast-math / -Ofast: it lets the compiler assume no NaNs, which would
# silently delete the engines' NaN-input checks. Reassociation alone is enough
# for the compiler to vectorise dot products.
OPT      := -O3 $(ARCH) -fno-math-errno -fno-trapping-math -fassociative-math -fno-signed-zeros -fopenmp-simd
WARN     := -Wall -Wextra -Wno-unused-parameter
CXXSTD   := -std=c++17
ENGINE_CXXFLAGS ?= $(CXXSTD) $(OPT) $(WARN)
OMPFLAG  := -fopenmp

TORCH_INC  := -isystem /usr/include/torch/csrc/api/include
TORCH_LIBS := -ltorch -ltorch_cpu -lc10
HOST_CXXFLAGS ?= $(CXXSTD) -O2 $(ARCH) $(WARN) $(OMPFLAG) $(TORCH_INC) -Iengine -I.
HOST_LDLIBS   := $(TORCH_LIBS) -lz -lzstd -lnettle -ldivsufsort -lcmark-gfm -lcmark-gfm-extensions -lpthread

SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

# --- sources ---------------------------------------------------------------
ENGINE_HDRS := $(wildcard engine/*.h)
COMMON_SRCS := $(wildcard common/*.cpp)
TRAIN_SRCS  := $(filter-out train/main.cpp train/accountant_main.cpp,$(wildcard train/*.cpp))
EXPORT_SRCS := $(filter-out export/main.cpp,$(wildcard export/*.cpp))
ATTACK_SRCS := $(filter-out attack/main.cpp attack/extract_main.cpp,$(wildcard attack/*.cpp))
COMMON_OBJS := $(COMMON_SRCS:%.cpp=$(BUILD)/%.o)
ATTACK_OBJS := $(ATTACK_SRCS:%.cpp=$(BUILD)/%.o)
TRAIN_OBJS  := $(TRAIN_SRCS:%.cpp=$(BUILD)/%.o)
EXPORT_OBJS := $(EXPORT_SRCS:%.cpp=$(BUILD)/%.o)
# The engines compiled as libraries (no main) for ./attack, ./export and tests.
ENGINE_LIB_OBJS := $(BUILD)/mamba_lib.o $(BUILD)/cnn_lib.o $(BUILD)/transformer_lib.o

.PHONY: all omp fast debug engines train-bins test bench demo setup clean fuzz corpora extract
.DEFAULT_GOAL := all

all: engines train-bins

ENGINES := mamba cnn transformer

engines: $(ENGINES)

omp:
	$(foreach e,$(ENGINES),$(CXX) $(ENGINE_CXXFLAGS) $(OMPFLAG) $(e).cpp -o $(e) -lm &&) true

fast:
	$(foreach e,$(ENGINES),$(CXX) $(ENGINE_CXXFLAGS) -funroll-loops $(OMPFLAG) $(e).cpp -o $(e) -lm &&) true

debug:
	$(foreach e,$(ENGINES),$(CXX) $(CXXSTD) -O1 -g $(WARN) $(SAN) $(OMPFLAG) $(e).cpp -o $(e) -lm &&) true

$(ENGINES): %: %.cpp $(ENGINE_HDRS)
	$(CXX) $(ENGINE_CXXFLAGS) $< -o $@ -lm

$(BUILD)/mamba_lib.o: mamba.cpp $(ENGINE_HDRS)
	@mkdir -p $(dir $@)
	$(CXX) $(ENGINE_CXXFLAGS) $(OMPFLAG) -DMAMBA_NO_MAIN -c mamba.cpp -o $@

$(BUILD)/cnn_lib.o: cnn.cpp $(ENGINE_HDRS)
	@mkdir -p $(dir $@)
	$(CXX) $(ENGINE_CXXFLAGS) $(OMPFLAG) -DCNN_NO_MAIN -c cnn.cpp -o $@

$(BUILD)/transformer_lib.o: transformer.cpp $(ENGINE_HDRS)
	@mkdir -p $(dir $@)
	$(CXX) $(ENGINE_CXXFLAGS) $(OMPFLAG) -DTRANSFORMER_NO_MAIN -c transformer.cpp -o $@

train-bins: bin/train bin/export bin/attack bin/corpus bin/extract bin/accountant bin/tokenize

# Header dependencies come from the compiler (-MMD -MP, one .d file beside
# each object and test binary, included at the end of this file): a header
# edit rebuilds exactly what includes it. A clean tree has no .d files and
# builds everything anyway.
DEPFLAGS = -MMD -MP -MF $@.d

# The precompiled LibTorch header (common/torch_pch.h says how it is used),
# one per build directory, compiled with that directory's HOST_CXXFLAGS (the
# flags must match its users'; -Winvalid-pch says when one does not fit).
# PCH_INC goes before HOST_CXXFLAGS: its -I must come ahead of -I., where
# GCC would find the plain header first.
# It depends on LibTorch's version header, so a libtorch-dev upgrade rebuilds it.
TORCH_PCH := $(BUILD)/pch/common/torch_pch.h.gch
PCH_INC   := -I$(BUILD)/pch -Winvalid-pch
$(TORCH_PCH): common/torch_pch.h /usr/include/torch/csrc/api/include/torch/version.h
	@mkdir -p $(dir $@)
	$(CXX) $(HOST_CXXFLAGS) -x c++-header $< -o $@

$(BUILD)/%.o: %.cpp | $(TORCH_PCH)
	@mkdir -p $(dir $@)
	$(CXX) $(PCH_INC) $(HOST_CXXFLAGS) $(DEPFLAGS) -c $< -o $@

bin/train: $(BUILD)/train/main.o $(TRAIN_OBJS) $(COMMON_OBJS)
	@mkdir -p bin
	$(CXX) $(HOST_CXXFLAGS) $^ -o $@ $(HOST_LDLIBS)

# bin/corpus needs no LibTorch: common/ alone (zlib, nettle for SHA-256).
bin/corpus: $(BUILD)/corpus/main.o $(COMMON_OBJS)
	@mkdir -p bin
	$(CXX) $(HOST_CXXFLAGS) $^ -o $@ -lz -lzstd -lnettle

# bin/accountant: the DP-SGD accountant (docs/PRIVACY.md); plain C++, no LibTorch.
# (In the sanitizer sub-make, BUILD=build-san, it is build-san/bin/accountant.)
$(PROG_PREFIX)bin/accountant: $(BUILD)/train/accountant_main.o $(BUILD)/train/dp_accountant.o
	@mkdir -p $(dir $@)
	$(CXX) $(HOST_CXXFLAGS) $^ -o $@

# The default corpora (docs/CORPORA.md), into data/corpora/<name>.
CORPORA := prose code legal dictionary man
corpora: bin/corpus
	@for n in $(CORPORA); do bin/corpus build --name $$n --canaries 2 || exit 1; done

# bin/tokenize: the BPE tokenizer (engine/bpe.h) from tokenizer.json, GPT-2
# files or a blob; no LibTorch.
bin/tokenize: $(BUILD)/tokenize/main.o $(BUILD)/common/tokenizer_json.o $(BUILD)/common/data.o
	@mkdir -p bin
	$(CXX) $(HOST_CXXFLAGS) $^ -o $@ -lz

bin/export: $(BUILD)/export/main.o $(EXPORT_OBJS) $(TRAIN_OBJS) $(COMMON_OBJS)
	@mkdir -p bin
	$(CXX) $(HOST_CXXFLAGS) $^ -o $@ $(HOST_LDLIBS)

bin/attack: $(BUILD)/attack/main.o $(ATTACK_OBJS) $(ENGINE_LIB_OBJS) $(EXPORT_OBJS) $(TRAIN_OBJS) $(COMMON_OBJS)
	@mkdir -p bin
	$(CXX) $(HOST_CXXFLAGS) $^ -o $@ $(HOST_LDLIBS)

# bin/extract: memorization and extraction in the language models (issue 11).
bin/extract: $(BUILD)/attack/extract_main.o $(ATTACK_OBJS) $(ENGINE_LIB_OBJS) $(EXPORT_OBJS) $(TRAIN_OBJS) $(COMMON_OBJS)
	@mkdir -p bin
	$(CXX) $(HOST_CXXFLAGS) $^ -o $@ $(HOST_LDLIBS)

# The default extraction run (docs/EXTRACTION.md): the first 400 kB of the
# prose corpus with canaries (built when missing), both small LMs trained 12
# epochs on it, all five parts: 714 s on 2 quiet cores (BENCHMARKS.md; 3
# epochs: 194 s), under the 30-minute budget. EXTRACT_FLAGS adds flags (not
# --corpus or --epochs).
EXTRACT_CORPUS ?= data/corpora/prose-400k
EXTRACT_FLAGS ?=
extract: bin/extract bin/corpus
	@test -f $(EXTRACT_CORPUS)/manifest.json || \
	  bin/corpus build --name prose --max-bytes 400000 --canaries 2 --out $(EXTRACT_CORPUS)
	bin/extract --corpus $(EXTRACT_CORPUS) --epochs 12 $(EXTRACT_FLAGS)

# --- tests -----------------------------------------------------------------
# Each tests/test_*.cpp is its own doctest binary (so LibTorch-free tests
# build in seconds); tests/doctest_main.cpp supplies main().
TEST_SRCS := $(wildcard tests/test_*.cpp)
TEST_BINS := $(TEST_SRCS:tests/%.cpp=$(BUILD)/tests/%)

$(BUILD)/tests/doctest_main.o: tests/doctest_main.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXSTD) -O1 -c $< -o $@

$(BUILD)/tests/test_%: tests/test_%.cpp $(BUILD)/tests/doctest_main.o $(ENGINE_LIB_OBJS) $(TRAIN_OBJS) $(EXPORT_OBJS) $(ATTACK_OBJS) $(COMMON_OBJS) | $(TORCH_PCH)
	$(CXX) $(PCH_INC) $(HOST_CXXFLAGS) $(DEPFLAGS) $(filter %.cpp %.o,$^) -o $@ $(HOST_LDLIBS)

# The programs a test binary runs are its prerequisites, so `make
# build/tests/test_x` never runs a stale ./mamba or bin/train (the
# sanitizer sub-make, BUILD=build-san, points them at its own builds, which
# the tests find through MAMBA_BIN, CNN_BIN, TRAIN_BIN, EXPORT_BIN,
# ATTACK_BIN). They are not linked (the link line takes .cpp and .o only).
$(BUILD)/tests/test_cnn_engine: $(PROG_PREFIX)cnn $(PROG_PREFIX)mamba
$(BUILD)/tests/test_mamba_cifar_parity: $(PROG_PREFIX)mamba
$(BUILD)/tests/test_checkpoint: $(PROG_PREFIX)bin/train $(PROG_PREFIX)bin/export
$(BUILD)/tests/test_attack_run: $(PROG_PREFIX)bin/attack
$(BUILD)/tests/test_attack_jobs: $(PROG_PREFIX)bin/attack
$(BUILD)/tests/test_extract: $(PROG_PREFIX)bin/extract
$(BUILD)/tests/test_extract_jobs: $(PROG_PREFIX)bin/extract
$(BUILD)/tests/test_extract_sweep: $(PROG_PREFIX)bin/extract
$(BUILD)/tests/test_corpus: $(PROG_PREFIX)bin/corpus
$(BUILD)/tests/test_lm_engine: $(PROG_PREFIX)mamba $(PROG_PREFIX)transformer $(PROG_PREFIX)cnn
$(BUILD)/tests/test_lm_train: $(PROG_PREFIX)bin/train $(PROG_PREFIX)bin/export
$(BUILD)/tests/test_dp_sgd: $(PROG_PREFIX)bin/train $(PROG_PREFIX)bin/export $(PROG_PREFIX)cnn
$(BUILD)/tests/test_hf: $(PROG_PREFIX)bin/export $(PROG_PREFIX)bin/tokenize $(PROG_PREFIX)mamba $(PROG_PREFIX)transformer

# The engine suites need no LibTorch: they link the engine library and the
# packed writer only, so a change to an engine header rebuilds them in
# seconds (and a mutation pass over engine/ stays cheap).
$(BUILD)/tests/test_engine: tests/test_engine.cpp $(BUILD)/tests/doctest_main.o $(BUILD)/mamba_lib.o \
                            $(BUILD)/export/packed_writer.o $(ENGINE_HDRS) tests/cli_check.h tests/engine_rows.h $(PROG_PREFIX)mamba
	$(CXX) $(HOST_CXXFLAGS) $(DEPFLAGS) $(filter %.cpp %.o,$^) -o $@
$(BUILD)/tests/test_cnn_engine: tests/test_cnn_engine.cpp $(BUILD)/tests/doctest_main.o $(BUILD)/cnn_lib.o \
                                $(BUILD)/export/packed_writer.o $(ENGINE_HDRS) tests/cli_check.h tests/engine_rows.h
	$(CXX) $(HOST_CXXFLAGS) $(DEPFLAGS) $(filter %.cpp %.o,$^) -o $@
# The accountant's suite links the accountant alone (and runs bin/accountant).
$(BUILD)/tests/test_accountant: tests/test_accountant.cpp $(BUILD)/tests/doctest_main.o $(BUILD)/train/dp_accountant.o \
                                tests/cli_check.h $(PROG_PREFIX)bin/accountant
	$(CXX) $(HOST_CXXFLAGS) $(DEPFLAGS) $(filter %.cpp %.o,$^) -o $@
# The tokenizer suite needs no LibTorch either: engine/bpe.h and the
# tokenizer.json converter (nlohmann-json).
$(BUILD)/tests/test_bpe: tests/test_bpe.cpp $(BUILD)/tests/doctest_main.o $(BUILD)/common/tokenizer_json.o \
                         $(BUILD)/common/data.o $(ENGINE_HDRS) tests/cli_check.h tests/temp_dir.h $(PROG_PREFIX)bin/tokenize
	$(CXX) $(HOST_CXXFLAGS) $(DEPFLAGS) $(filter %.cpp %.o,$^) -o $@ -lz
# test_cli_outputs runs every program and links nothing but doctest.
$(BUILD)/tests/test_cli_outputs: tests/test_cli_outputs.cpp $(BUILD)/tests/doctest_main.o tests/cli_check.h \
                                 tests/temp_dir.h $(ENGINES:%=$(PROG_PREFIX)%) $(PROG_PREFIX)bin/train \
                                 $(PROG_PREFIX)bin/export $(PROG_PREFIX)bin/attack $(PROG_PREFIX)bin/extract \
                                 $(PROG_PREFIX)bin/corpus
	$(CXX) $(HOST_CXXFLAGS) $(DEPFLAGS) $(filter %.cpp %.o,$^) -o $@
# The packed writer includes only engine/format.h and engine/io.h (+ packed.h).
$(BUILD)/export/packed_writer.o: export/packed_writer.cpp export/packed_writer.h engine/format.h engine/io.h engine/packed.h
	@mkdir -p $(dir $@)
	$(CXX) $(HOST_CXXFLAGS) $(DEPFLAGS) -c $< -o $@

test: setup
	@$(MAKE) --no-print-directory -j2 $(ENGINES) bin/train bin/export bin/attack bin/corpus bin/extract bin/accountant bin/tokenize $(TEST_BINS)
	@bash tests/run_all.sh $(TEST_BINS)

# --- benchmarks ------------------------------------------------------------
bin/bench_%: bench/bench_%.cpp $(ENGINE_LIB_OBJS) $(TRAIN_OBJS) $(EXPORT_OBJS) $(COMMON_OBJS)
	@mkdir -p bin
	$(CXX) $(HOST_CXXFLAGS) $^ -o $@ $(HOST_LDLIBS)
# bench_lm needs no LibTorch: the engines, the format's writer and the SVG plot only.
bin/bench_lm: bench/bench_lm.cpp $(BUILD)/mamba_lib.o $(BUILD)/transformer_lib.o export/packed_writer.cpp common/svg_lines.cpp common/svg_lines.h $(ENGINE_HDRS)
	@mkdir -p bin
	$(CXX) $(CXXSTD) -O2 $(ARCH) $(WARN) $(OMPFLAG) -I. bench/bench_lm.cpp export/packed_writer.cpp common/svg_lines.cpp \
	  $(BUILD)/mamba_lib.o $(BUILD)/transformer_lib.o -o $@ -lm
# bench_cnn compares the engine's GEMM with OpenBLAS (libopenblas0 ships no
# dev symlink, hence the file name); nothing else links it.
bin/bench_cnn: HOST_LDLIBS += -l:libopenblas.so.0

# --- fuzzing (libFuzzer, clang) ----------------------------------------------
# `make fuzz` runs every fuzz/fuzz_*.cpp target for FUZZ_SECONDS on its seed
# corpus (fuzz/corpus/<target>, read-only); what it finds goes to build/fuzz/.
FUZZ_SECONDS ?= 60
FUZZ_FLAGS   := -std=c++17 -g -O1 -fopenmp-simd -Wno-pass-failed -fsanitize=fuzzer,address,undefined -I. -Iengine
FUZZ_NAMES   := $(patsubst fuzz/%.cpp,%,$(wildcard fuzz/fuzz_*.cpp))
FUZZ_BINS    := $(FUZZ_NAMES:%=$(BUILD)/fuzz/%)

$(BUILD)/fuzz/fuzz_mamba_model: fuzz/fuzz_mamba_model.cpp mamba.cpp $(ENGINE_HDRS)
	@mkdir -p $(dir $@)
	clang++ $(FUZZ_FLAGS) -DMAMBA_NO_MAIN fuzz/fuzz_mamba_model.cpp mamba.cpp -o $@
$(BUILD)/fuzz/fuzz_cnn_model: fuzz/fuzz_cnn_model.cpp cnn.cpp $(ENGINE_HDRS)
	@mkdir -p $(dir $@)
	clang++ $(FUZZ_FLAGS) -DCNN_NO_MAIN fuzz/fuzz_cnn_model.cpp cnn.cpp -o $@
$(BUILD)/fuzz/fuzz_lm_model: fuzz/fuzz_lm_model.cpp mamba.cpp transformer.cpp $(ENGINE_HDRS)
	@mkdir -p $(dir $@)
	clang++ $(FUZZ_FLAGS) -DMAMBA_NO_MAIN -DTRANSFORMER_NO_MAIN fuzz/fuzz_lm_model.cpp mamba.cpp transformer.cpp -o $@
$(BUILD)/fuzz/fuzz_input: fuzz/fuzz_input.cpp $(ENGINE_HDRS)
	@mkdir -p $(dir $@)
	clang++ $(FUZZ_FLAGS) $< -o $@
$(BUILD)/fuzz/fuzz_extract_sweep: fuzz/fuzz_extract_sweep.cpp attack/extract_sweep.cpp attack/extract_format.cpp \
                                  common/svg_lines.cpp attack/extract_sweep.h attack/extract.h common/svg_lines.h \
                                  engine/bpe.h
	@mkdir -p $(dir $@)
	clang++ $(FUZZ_FLAGS) $(filter %.cpp,$^) -o $@
$(BUILD)/fuzz/fuzz_%: fuzz/fuzz_%.cpp common/data.cpp common/data.h
	@mkdir -p $(dir $@)
	clang++ $(FUZZ_FLAGS) $< common/data.cpp -lz -o $@

# One phony target per fuzz target, so `make -j2 fuzz` runs two at once (each
# starts as soon as its binary is built). A finding makes the fuzzer exit
# non-zero: its report is shown and make fails (the status is the fuzzer's,
# not that of the grep that trims the output).
FUZZ_RUNS := $(FUZZ_NAMES:%=fuzz-run-%)
.PHONY: $(FUZZ_RUNS)
fuzz: $(FUZZ_RUNS)
$(FUZZ_RUNS): fuzz-run-%: $(BUILD)/fuzz/%
	@mkdir -p $(BUILD)/fuzz/new_$* $(BUILD)/fuzz/crashes
	@$(BUILD)/fuzz/$* -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=$(BUILD)/fuzz/crashes/$*- $(BUILD)/fuzz/new_$* fuzz/corpus/$* \
	    > $(BUILD)/fuzz/$*.log 2>&1 || { echo "== $* ($(FUZZ_SECONDS) s): FAILED"; tail -n 60 $(BUILD)/fuzz/$*.log; exit 1; }
	@echo "== $* ($(FUZZ_SECONDS) s):" $$(grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec' $(BUILD)/fuzz/$*.log)

# --- setup, demo, bench ----------------------------------------------------
setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

bench: setup
	@bash scripts/bench.sh

clean:
	rm -rf $(BUILD) bin $(ENGINES)

# Further rules live in mk/*.mk (one file per concern, e.g. sanitizer runs).
-include $(wildcard mk/*.mk)

# Generated header dependencies (see DEPFLAGS).
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
