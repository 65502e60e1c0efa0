// bin/tokenize: the byte-level BPE tokenizer (engine/bpe.h) on the command
// line, from a Hugging Face tokenizer.json, GPT-2's encoder.json +
// vocab.bpe, or a BPE tokenizer blob (docs/FORMAT.md).
//
//   bin/tokenize --tokenizer tokenizer.json [--special] < text    ids, one line
//   bin/tokenize --gpt2 DIR --decode < ids                          the text
//   bin/tokenize --tokenizer tokenizer.json --write-blob tok.bpe    the blob
//   bin/tokenize --blob tok.bpe < text
//   bin/tokenize --model lm.bin [--decode] [TEXT]                  the packed LM's own
//
// --gpt2 DIR reads DIR/encoder.json and DIR/vocab.bpe. --model reads the
// tokenizer a packed language model carries, as the engines read it
// (engine/lm.h lm_open_tokenizer): its BPE blob, or bytes (id = byte
// value) for a byte-level model. --special lets special added tokens
// (<|endoftext|>) be matched in the text. TEXT (text, or ids with --decode)
// given on the command line replaces stdin.
#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>
#include <sstream>

#include "common/command_line.h"
#include "common/data.h"
#include "common/tokenizer_json.h"
#include "engine/bpe.h"
#include "engine/lm.h"

using namespace mmia;

namespace {

// The loaded tokenizer, freed on every way out of main (errors throw): a
// file's (t; info points to it as a BPE tokenizer) or a packed model's
// (model, info from lm_open_tokenizer).
struct LoadedTokenizer {
    Bpe t{};
    PackedFile model{};
    LmInfo info{};
    ~LoadedTokenizer() {
        bpe_free(&t);
        if (model.header) {
            lm_info_free(&info);
            packed_close(&model);
        }
    }
};

// An error whose message already names its file ("<path>: <why>", as
// read_file's): printed as it is, not behind a second path.
struct FileError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

std::vector<uint8_t> bytes_of(const std::string& path) {
    try {
        return read_file(path, kMaxFileBytes);
    } catch (const std::exception& e) {
        throw FileError(error_text(e));
    }
}

std::string text_of(const std::string& path) {
    std::vector<uint8_t> b = bytes_of(path);
    return std::string(b.begin(), b.end());
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Byte-level BPE tokenizer (GPT-2, GPT-NeoX): text on stdin -> token ids, or back with --decode"};
    std::string tokenizer, gpt2, blob_path, model, write_blob, text_arg;
    bool special = false, decode = false;
    auto* src = app.add_option_group("source", "where the tokenizer comes from");
    src->add_option("--tokenizer", tokenizer, "Hugging Face tokenizer.json");
    src->add_option("--gpt2", gpt2, "folder with GPT-2's encoder.json and vocab.bpe");
    src->add_option("--blob", blob_path, "a BPE tokenizer blob (--write-blob)");
    src->add_option("--model", model, "a packed language model: the tokenizer it carries (bytes for a byte-level model)");
    src->require_option(1);
    app.add_flag("--special", special, "match special added tokens such as <|endoftext|> in the text");
    app.add_flag("--decode", decode, "read token ids (whitespace-separated) and print their text");
    app.add_option("--write-blob", write_blob, "write the tokenizer as a blob to this file and exit");
    app.add_option("TEXT", text_arg, "the text (or ids with --decode) instead of stdin");
    if (int rc = parse_command_line(app, argc, argv); rc >= 0) return rc;

    std::string what = !tokenizer.empty() ? tokenizer : !gpt2.empty() ? gpt2 : !blob_path.empty() ? blob_path : model;
    try {
        // Before any work: the blob must not replace one of the inputs.
        if (!write_blob.empty()) {
            std::vector<std::string> inputs;
            if (!tokenizer.empty()) inputs.push_back(tokenizer);
            if (!gpt2.empty()) inputs.insert(inputs.end(), {gpt2 + "/encoder.json", gpt2 + "/vocab.bpe"});
            if (!blob_path.empty()) inputs.push_back(blob_path);
            if (!model.empty()) inputs.push_back(model);
            try {
                check_output_not_input(write_blob, "--write-blob", inputs);
            } catch (const std::exception& e) {
                throw FileError(e.what());
            }
        }
        LoadedTokenizer loaded;
        LmInfo& info = loaded.info;
        char err[512];
        std::vector<uint8_t> blob;
        if (!model.empty()) {
            if (lm_open_tokenizer(&loaded.model, model.c_str(), &info, err, sizeof err) != 0) throw FileError(err);
            if (info.tokenizer == MMIA_TOKENIZER_BPE && !info.bpe)
                throw FileError(model + ": the model's tokenizer is BPE but the file carries none (imported without "
                                        "tokenizer.json): no tokenizer to use");
            if (info.bpe) {  // the blob as stored (lm_read_tokenizer placed and loaded it)
                const uint8_t* at = loaded.model.bytes + uint64_t(loaded.model.header->hp[MMIA_LM_HP_BPE_AT]) * MMIA_ALIGN;
                blob.assign(at, at + loaded.model.header->hp[MMIA_LM_HP_BPE_BYTES]);
            } else if (!write_blob.empty()) {
                throw FileError(model + ": a byte-level model carries no tokenizer blob (its tokens are the 256 byte values)");
            }
        } else {
            if (!blob_path.empty()) {
                blob = bytes_of(blob_path);
            } else {
                BpeSpec spec = !tokenizer.empty() ? bpe_spec_from_tokenizer_json(text_of(tokenizer))
                                                  : bpe_spec_from_gpt2(text_of(gpt2 + "/encoder.json"), text_of(gpt2 + "/vocab.bpe"));
                blob = bpe_blob_write(spec);
            }
            if (bpe_load(&loaded.t, blob.data(), blob.size(), err, sizeof err) != 0) throw std::runtime_error(err);
            info.tokenizer = MMIA_TOKENIZER_BPE;
            info.eos = -1;
            info.bpe = &loaded.t;
        }
        if (!write_blob.empty()) {
            const Bpe& t = *info.bpe;
            what = write_blob;
            // All or nothing: a temporary renamed into place (engine/io.h).
            if (io_write_file_atomic(write_blob.c_str(), blob.data(), blob.size(), err, sizeof err) != 0)
                throw FileError(err);
            std::printf("wrote %zu bytes: vocabulary %u, merges %u, added tokens %u, NFC %s\n", blob.size(), t.vocab,
                        t.n_merges, t.n_added, (t.flags & BPE_FLAG_NFC) ? "on" : "off");
            return 0;
        }
        std::string input = text_arg;
        what = "TEXT";
        if (app.count("TEXT") == 0) {
            input.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
            what = "stdin";
        }
        if (decode) {
            std::vector<int32_t> ids;
            std::istringstream in(input);
            std::string word;
            while (in >> word) {
                char* end = nullptr;
                errno = 0;
                long v = std::strtol(word.c_str(), &end, 10);
                if (*end || errno || v < INT32_MIN || v > INT32_MAX)
                    throw std::runtime_error("\"" + word + "\" is not a token id");
                ids.push_back(int32_t(v));
            }
            BpeBytes out = {};
            int rc = 0;
            if (info.bpe) {
                rc = bpe_decode(info.bpe, ids.data(), ids.size(), &out, err, sizeof err);
            } else {  // bytes: each id's byte (engine/lm.h, as the engines print it)
                for (size_t k = 0; rc == 0 && k < ids.size(); k++) rc = lm_decode_token(&info, ids[k], &out, err, sizeof err);
            }
            if (rc == 0) std::fwrite(out.bytes, 1, out.n, stdout);
            free(out.bytes);
            if (rc != 0) throw std::runtime_error(err);
            return 0;
        }
        BpeIds ids = {};
        // the engines' encode (lm_encode_text: specials as plain text), or bpe_encode when asked for them
        int rc = special && info.bpe ? bpe_encode(info.bpe, input.data(), input.size(), 1, &ids, err, sizeof err)
                                     : lm_encode_text(&info, input.data(), input.size(), &ids, err, sizeof err);
        if (rc == 0) {
            for (size_t k = 0; k < ids.n; k++) std::printf(k ? " %d" : "%d", ids.ids[k]);
            std::printf("\n");
        }
        free(ids.ids);
        if (rc != 0) throw std::runtime_error(err);
    } catch (const FileError& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s: %s\n", what.c_str(), error_text(e).c_str());
        return 1;
    }
    return 0;
}
