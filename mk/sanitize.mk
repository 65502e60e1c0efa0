# mk/sanitize.mk: the engines and the whole test suite under AddressSanitizer
# + UndefinedBehaviorSanitizer (g++), in their own build dir.
#
#   make test-san    build build-san/ and run the test binaries there
#
# A sub-make with BUILD=build-san and the sanitizer flags in the engine and
# host flags reuses the Makefile's rules, so the objects, test binaries and
# link lines are those of `make test`. The sanitized CLIs the tests run
# (./mamba, ./cnn, bin/train, bin/export) are built here too and handed over
# through MAMBA_BIN, CNN_BIN, TRANSFORMER_BIN, TRAIN_BIN, EXPORT_BIN. The runtimes (libasan,
# libubsan) come with g++ itself, which `make setup` installs.
#
# LibTorch, OpenBLAS and libgomp are Debian's uninstrumented builds: ASan
# still checks every access our code makes, including into memory they
# allocated (malloc is intercepted), but not their own code. mk/lsan.supp
# and mk/ubsan.supp hold the only exceptions, each with its reason.

SAN_BUILD := build-san
# -g1: line tables and functions, all a sanitizer report's stack needs (file:line
# per frame); without -g's types and locals, a LibTorch object is 1.8 MB, not 7.9,
# and compiles ~15% sooner (attack/defence.cpp 24.6 -> 21.0 s with the PCH).
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all -g1
SAN_ENGINE_CXXFLAGS := $(CXXSTD) -O1 $(ARCH) -fno-math-errno -fno-trapping-math -fassociative-math \
                       -fno-signed-zeros -fopenmp-simd $(WARN) $(SAN_FLAGS)
SAN_HOST_CXXFLAGS := $(CXXSTD) -O1 $(ARCH) $(WARN) $(OMPFLAG) $(TORCH_INC) -Iengine -I. $(SAN_FLAGS)
# Tests that train models for minutes with LibTorch are left out by default
# (docs/FUZZING.md says why and what covers their code under the
# sanitizers); `make test-san SAN_SKIP=` runs every test.
SAN_SKIP ?= test_parity test_cnn_parity test_mamba_cifar_parity test_attack_run test_attack_jobs test_defences test_extract_jobs
SAN_TEST_BINS := $(filter-out $(SAN_SKIP:%=$(SAN_BUILD)/tests/%),$(TEST_SRCS:tests/%.cpp=$(SAN_BUILD)/tests/%))
SAN_CLIS := $(ENGINES:%=$(SAN_BUILD)/%) $(SAN_BUILD)/bin/train $(SAN_BUILD)/bin/export $(SAN_BUILD)/bin/corpus \
            $(SAN_BUILD)/bin/attack $(SAN_BUILD)/bin/extract $(SAN_BUILD)/bin/accountant $(SAN_BUILD)/bin/tokenize

# halt_on_error: the first finding fails its test binary, with the report.
# detect_leaks: on, with mk/lsan.supp. check_initialization_order: off by
# default. Not detect_stack_use_after_return: with g++ 12's libasan its fake
# stack corrupts an initializer_list in a large doctest function
# (test_attack_features "per-class thresholds": SEGV reading 0x4501 inside
# std::vector(initializer_list) at -O1; passes with the option off).
SAN_ENV := ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1 \
           LSAN_OPTIONS=suppressions=$(CURDIR)/mk/lsan.supp:print_suppressions=0 \
           UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=$(CURDIR)/mk/ubsan.supp \
           MAMBA_BIN=$(SAN_BUILD)/mamba CNN_BIN=$(SAN_BUILD)/cnn TRANSFORMER_BIN=$(SAN_BUILD)/transformer \
           TRAIN_BIN=$(SAN_BUILD)/bin/train EXPORT_BIN=$(SAN_BUILD)/bin/export CORPUS_BIN=$(SAN_BUILD)/bin/corpus \
           ATTACK_BIN=$(SAN_BUILD)/bin/attack EXTRACT_BIN=$(SAN_BUILD)/bin/extract \
           ACCOUNTANT_BIN=$(SAN_BUILD)/bin/accountant \
           TOKENIZE_BIN=$(SAN_BUILD)/bin/tokenize

.PHONY: test-san san-bins

# In the sub-make the objects are only prerequisites of pattern rules, which
# make would delete as intermediates after linking (and rebuild next time).
ifeq ($(BUILD),$(SAN_BUILD))
.SECONDARY: $(COMMON_OBJS) $(TRAIN_OBJS) $(EXPORT_OBJS) $(ATTACK_OBJS) $(ENGINE_LIB_OBJS) \
            $(BUILD)/tests/doctest_main.o $(BUILD)/train/main.o $(BUILD)/export/main.o $(BUILD)/corpus/main.o \
            $(BUILD)/attack/main.o $(BUILD)/attack/extract_main.o $(BUILD)/train/accountant_main.o \
            $(BUILD)/train/dp_accountant.o $(BUILD)/tokenize/main.o
endif

$(ENGINES:%=$(SAN_BUILD)/%): $(SAN_BUILD)/%: %.cpp $(ENGINE_HDRS)
	@mkdir -p $(dir $@)
	$(CXX) $(SAN_ENGINE_CXXFLAGS) $(OMPFLAG) $< -o $@ -lm

$(SAN_BUILD)/bin/train: $(SAN_BUILD)/train/main.o $(TRAIN_OBJS) $(COMMON_OBJS)
	@mkdir -p $(dir $@)
	$(CXX) $(SAN_HOST_CXXFLAGS) $^ -o $@ $(HOST_LDLIBS)

$(SAN_BUILD)/bin/export: $(SAN_BUILD)/export/main.o $(EXPORT_OBJS) $(TRAIN_OBJS) $(COMMON_OBJS)
	@mkdir -p $(dir $@)
	$(CXX) $(SAN_HOST_CXXFLAGS) $^ -o $@ $(HOST_LDLIBS)

$(SAN_BUILD)/bin/corpus: $(SAN_BUILD)/corpus/main.o $(COMMON_OBJS)
	@mkdir -p $(dir $@)
	$(CXX) $(SAN_HOST_CXXFLAGS) $^ -o $@ -lz -lzstd -lnettle

$(SAN_BUILD)/bin/tokenize: $(SAN_BUILD)/tokenize/main.o $(SAN_BUILD)/common/tokenizer_json.o $(SAN_BUILD)/common/data.o
	@mkdir -p $(dir $@)
	$(CXX) $(SAN_HOST_CXXFLAGS) $^ -o $@ -lz

$(SAN_BUILD)/bin/extract: $(SAN_BUILD)/attack/extract_main.o $(ATTACK_OBJS) $(ENGINE_LIB_OBJS) $(EXPORT_OBJS) $(TRAIN_OBJS) $(COMMON_OBJS)
	@mkdir -p $(dir $@)
	$(CXX) $(SAN_HOST_CXXFLAGS) $^ -o $@ $(HOST_LDLIBS)

$(SAN_BUILD)/bin/attack: $(SAN_BUILD)/attack/main.o $(ATTACK_OBJS) $(ENGINE_LIB_OBJS) $(EXPORT_OBJS) $(TRAIN_OBJS) $(COMMON_OBJS)
	@mkdir -p $(dir $@)
	$(CXX) $(SAN_HOST_CXXFLAGS) $^ -o $@ $(HOST_LDLIBS)

san-bins: setup
	@$(MAKE) --no-print-directory -j2 BUILD=$(SAN_BUILD) \
	  ENGINE_CXXFLAGS="$(SAN_ENGINE_CXXFLAGS)" HOST_CXXFLAGS="$(SAN_HOST_CXXFLAGS)" \
	  $(SAN_CLIS) $(SAN_TEST_BINS)

test-san: san-bins
	@$(SAN_ENV) bash tests/run_all.sh $(SAN_TEST_BINS)
