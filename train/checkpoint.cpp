// checkpoint.cpp: see checkpoint.h.
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include "train/checkpoint.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include "engine/io.h"

namespace mmia {

std::string first_nonfinite_weight(torch::nn::Module& model) {
    auto describe = [](const std::string& what, const std::string& name, const torch::Tensor& t) -> std::string {
        if (!t.is_floating_point() || t.numel() == 0) return "";
        auto flat = t.detach().reshape({-1});
        auto bad = torch::isfinite(flat).logical_not();
        if (!bad.any().item<bool>()) return "";
        const int64_t i = bad.nonzero()[0][0].item<int64_t>();
        const double v = flat[i].item<double>();
        return what + " '" + name + "' element " + std::to_string(i) + " is " +
               (std::isnan(v) ? "NaN" : v > 0 ? "+inf" : "-inf");
    };
    for (const auto& p : model.named_parameters())
        if (std::string d = describe("parameter", p.key(), p.value()); !d.empty()) return d;
    for (const auto& b : model.named_buffers())
        if (std::string d = describe("buffer", b.key(), b.value()); !d.empty()) return d;
    return "";
}

void save_checkpoint(const std::string& path, torch::nn::Module& model,
                     torch::optim::Optimizer* optimizer, const json& meta) {
    namespace fs = std::filesystem;
    // Never a checkpoint that would carry a NaN on to export and the engines.
    if (std::string bad = first_nonfinite_weight(model); !bad.empty())
        throw std::runtime_error(path + ": refusing to write a checkpoint whose " + bad);
    fs::path parent = fs::path(path).parent_path();
    if (!parent.empty()) fs::create_directories(parent);
    // The archive is serialised into memory and written by io.h's atomic
    // writer, never by LibTorch to the file: LibTorch's file writer, on a
    // full disk, throws from its destructor and aborts the process, and
    // leaves its temporary file behind.
    std::string bytes;
    try {
        torch::serialize::OutputArchive archive;
        json m = meta;
        m["checkpoint_version"] = kCheckpointVersion;
        archive.write("meta", c10::IValue(m.dump()));
        torch::serialize::OutputArchive model_archive;
        model.save(model_archive);
        archive.write("model", model_archive);
        if (optimizer) {
            torch::serialize::OutputArchive optim_archive;
            optimizer->save(optim_archive);
            archive.write("optimizer", optim_archive);
        }
        archive.save_to([&bytes](const void* data, size_t n) {
            bytes.append(static_cast<const char*>(data), n);
            return n;
        });
    } catch (const c10::Error& e) {
        throw std::runtime_error(path + ": cannot serialise the checkpoint: " + e.what_without_backtrace());
    }
    char err[512];
    if (io_write_file_atomic(path.c_str(), bytes.data(), bytes.size(), err, sizeof err) != 0)
        throw std::runtime_error(path + ": cannot write checkpoint: " + err);
}

static torch::serialize::InputArchive open_archive(const std::string& path) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (!std::filesystem::exists(status)) throw std::runtime_error(path + ": no such checkpoint file");
    // A FIFO or device is refused before LibTorch opens it (an open() of a
    // FIFO with no writer would wait forever).
    if (!std::filesystem::is_regular_file(status)) throw std::runtime_error(path + ": not a regular file");
    torch::serialize::InputArchive archive;
    try {
        archive.load_from(path);
    } catch (const std::exception& e) {
        throw std::runtime_error(path + ": not a readable checkpoint (truncated or corrupt)");
    }
    return archive;
}

static json meta_from_archive(torch::serialize::InputArchive& archive, const std::string& path) {
    c10::IValue v;
    if (!archive.try_read("meta", v) || !v.isString())
        throw std::runtime_error(path + ": not a mamba-mia checkpoint (no meta record)");
    std::error_code ec;
    const uint64_t file_bytes = std::filesystem::file_size(path, ec);
    return parse_checkpoint_meta(v.toStringRef(), path, ec ? 0 : file_bytes);
}

json read_checkpoint_meta(const std::string& path) {
    auto archive = open_archive(path);
    return meta_from_archive(archive, path);
}

void load_checkpoint_state(const std::string& path, torch::nn::Module& model,
                           torch::optim::Optimizer* optimizer) {
    auto archive = open_archive(path);
    try {
        torch::serialize::InputArchive model_archive;
        archive.read("model", model_archive);
        model.load(model_archive);
        if (optimizer) {
            torch::serialize::InputArchive optim_archive;
            archive.read("optimizer", optim_archive);
            optimizer->load(optim_archive);
        }
    } catch (const c10::Error& e) {
        throw std::runtime_error(path + ": checkpoint does not match the model it describes: " +
                                 e.what_without_backtrace());
    }
    if (std::string bad = first_nonfinite_weight(model); !bad.empty())
        throw std::runtime_error(path + ": " + bad + " (a checkpoint's weights must be finite)");
}

MambaClassifier load_mamba_checkpoint(const std::string& path, json* meta_out) {
    json meta = read_checkpoint_meta(path);
    MambaClassifier model{nullptr};
    try {
        if (meta.value("model", "") != "mamba")
            throw std::runtime_error("model is \"" + meta.value("model", "?") + "\", not mamba");
        MambaConfig cfg = mamba_from_json(meta.at("mamba"));
        InputSpec in = input_from_json(meta.at("input"));
        model = MambaClassifier(cfg, in.channels, in.height, in.width, in.n_classes, in.mean,
                                in.std);
    } catch (const std::exception& e) {
        throw std::runtime_error(path + ": bad checkpoint meta: " + e.what());
    }
    load_checkpoint_state(path, *model, nullptr);
    if (meta_out) *meta_out = meta;
    return model;
}

}  // namespace mmia
