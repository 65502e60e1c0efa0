# mk/fuzz.mk: build rules for the libFuzzer targets that need more than the
# Makefile's generic ones (those: the engine loader, input.bin, data files).
# `make fuzz` runs them all (FUZZ_NAMES is every fuzz/fuzz_*.cpp).

$(BUILD)/fuzz/fuzz_config: fuzz/fuzz_config.cpp common/config.cpp common/config.h
	@mkdir -p $(dir $@)
	clang++ $(FUZZ_FLAGS) fuzz/fuzz_config.cpp common/config.cpp -o $@

$(BUILD)/fuzz/fuzz_checkpoint_meta: fuzz/fuzz_checkpoint_meta.cpp train/checkpoint_meta.cpp train/checkpoint_meta.h common/config.cpp common/config.h
	@mkdir -p $(dir $@)
	clang++ $(FUZZ_FLAGS) fuzz/fuzz_checkpoint_meta.cpp train/checkpoint_meta.cpp common/config.cpp -o $@

$(BUILD)/fuzz/fuzz_corpus: fuzz/fuzz_corpus.cpp common/corpus.cpp common/corpus.h common/data.cpp common/data.h
	@mkdir -p $(dir $@)
	clang++ $(FUZZ_FLAGS) fuzz/fuzz_corpus.cpp common/corpus.cpp common/data.cpp -lz -lzstd -lnettle -o $@

$(BUILD)/fuzz/fuzz_bpe_blob: fuzz/fuzz_bpe_blob.cpp engine/bpe.h engine/unicode_tables.h engine/packed.h
	@mkdir -p $(dir $@)
	clang++ $(FUZZ_FLAGS) fuzz/fuzz_bpe_blob.cpp -o $@

$(BUILD)/fuzz/fuzz_tokenizer_json: fuzz/fuzz_tokenizer_json.cpp common/tokenizer_json.cpp common/tokenizer_json.h engine/bpe.h engine/unicode_tables.h
	@mkdir -p $(dir $@)
	clang++ $(FUZZ_FLAGS) fuzz/fuzz_tokenizer_json.cpp common/tokenizer_json.cpp -o $@

$(BUILD)/fuzz/fuzz_safetensors: fuzz/fuzz_safetensors.cpp export/safetensors.cpp export/safetensors.h common/config.cpp common/config.h $(ENGINE_HDRS)
	@mkdir -p $(dir $@)
	clang++ $(FUZZ_FLAGS) fuzz/fuzz_safetensors.cpp export/safetensors.cpp common/config.cpp -o $@

$(BUILD)/fuzz/fuzz_defence_spec: fuzz/fuzz_defence_spec.cpp attack/defence_spec.cpp attack/defence_spec.h \
                                  common/number_text.h
	@mkdir -p $(dir $@)
	clang++ $(FUZZ_FLAGS) fuzz/fuzz_defence_spec.cpp attack/defence_spec.cpp -o $@
