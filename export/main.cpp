// bin/export: checkpoint -> packed model file; dataset images -> input.bin.
//
//   bin/export model --checkpoint checkpoints/mnist_mamba-mnist.pt --output mnist_mamba.bin
//   bin/export image --dataset mnist --index 0 [--count 1] [--split test] --output input.bin
//   bin/export hf --dir HF_DIR --output model.bin          (Hugging Face -> packed; docs/HF.md)
//   bin/export hf --checkpoint CKPT --output-dir HF_DIR [--dtype F32|F16|BF16]   (ours -> Hugging Face)
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "common/command_line.h"
#include "common/data.h"
#include "export/hf.h"
#include "export/model_export.h"

using namespace mmia;

int main(int argc, char** argv) {
    CLI::App app{"Export a trained model or dataset images for the engines (./mamba, ./cnn)."};
    app.require_subcommand(1);

    std::string checkpoint, model_out;
    auto* model_cmd = app.add_subcommand("model", "checkpoint -> packed model file");
    model_cmd->add_option("--checkpoint", checkpoint, "checkpoint written by bin/train")->required();
    model_cmd->add_option("--output", model_out, "packed model file")->required();

    std::string dataset = "mnist", data_dir, split = "test", image_out, labels_out;
    int64_t index = 0, count = 1;
    auto* image_cmd = app.add_subcommand("image", "dataset images -> raw float32 input.bin");
    image_cmd->add_option("--dataset", dataset, "mnist | fashion | cifar10")->capture_default_str();
    image_cmd->add_option("--data-dir", data_dir, "directory holding the dataset files");
    image_cmd->add_option("--split", split, "test | train")
        ->check(CLI::IsMember({"test", "train"}))->capture_default_str();
    image_cmd->add_option("--index", index, "first image")->check(int_in<int64_t>(0, kMaxIdxImages))->capture_default_str();
    image_cmd->add_option("--count", count, "number of images (0 = to the end of the split)")
        ->check(int_in<int64_t>(0, kMaxIdxImages))->capture_default_str();
    image_cmd->add_option("--output", image_out, "input.bin to write")->required();
    image_cmd->add_option("--labels", labels_out, "also write the images' labels, one per line");

    std::string hf_dir, hf_out, hf_ckpt, hf_out_dir, hf_dtype = "F32";
    auto* hf_cmd = app.add_subcommand(
        "hf", "Hugging Face checkpoints: --dir DIR --output model.bin imports MambaForCausalLM / "
              "GPTNeoXForCausalLM (config.json + safetensors); --checkpoint CKPT --output-dir DIR exports ours");
    hf_cmd->add_option("--dir", hf_dir, "import: directory with config.json and model.safetensors (or sharded)");
    hf_cmd->add_option("--output", hf_out, "import: packed model file to write");
    hf_cmd->add_option("--checkpoint", hf_ckpt, "export: a language-model checkpoint written by bin/train");
    hf_cmd->add_option("--output-dir", hf_out_dir, "export: directory for config.json + model.safetensors");
    hf_cmd->add_option("--dtype", hf_dtype, "export: stored dtype")
        ->check(CLI::IsMember({"F32", "F16", "BF16"}))->capture_default_str();

    if (int code = parse_command_line(app, argc, argv); code >= 0) return code;

    try {
        if (*hf_cmd) {
            const bool import = !hf_dir.empty() && !hf_out.empty() && hf_ckpt.empty() && hf_out_dir.empty();
            const bool export_ = hf_dir.empty() && hf_out.empty() && !hf_ckpt.empty() && !hf_out_dir.empty();
            if (!hf_dir.empty() && hf_out.empty() && hf_ckpt.empty() && hf_out_dir.empty())
                throw std::runtime_error("hf: --dir needs --output model.bin (the packed file to write)");
            if (!hf_ckpt.empty() && hf_out_dir.empty() && hf_dir.empty() && hf_out.empty())
                throw std::runtime_error("hf: --checkpoint needs --output-dir DIR (the Hugging Face directory to write)");
            if (!import && !export_)
                throw std::runtime_error("hf: give --dir DIR --output model.bin (import) or --checkpoint CKPT "
                                         "--output-dir DIR (export), not a mix");
            // No output may be an input (docs/BAD_INPUT.md, "Command lines").
            if (import)
                check_output_not_input(hf_out, "--output", {hf_dir + "/config.json", hf_dir + "/model.safetensors",
                                                            hf_dir + "/model.safetensors.index.json"});
            else
                for (const char* f : {"config.json", "model.safetensors"})
                    check_output_not_input(hf_out_dir + "/" + f, "--output-dir", {hf_ckpt});
            std::printf("%s\n", import ? import_hf_to_file(hf_dir, hf_out).c_str()
                                       : export_hf(hf_ckpt, hf_out_dir, hf_dtype).c_str());
        } else if (*model_cmd) {
            // Before any work: no output may be one of the inputs (an atomic
            // write would rename the new file over it), nor the other output.
            check_output_not_input(model_out, "--output", {checkpoint});
            export_checkpoint(checkpoint, model_out);
            std::printf("wrote %s\n", model_out.c_str());
        } else {
            const std::vector<std::string> inputs = dataset_files(dataset, data_dir);
            check_output_not_input(image_out, "--output", inputs);
            if (!labels_out.empty()) {
                check_output_not_input(labels_out, "--labels", inputs);
                if (io_same_file(labels_out.c_str(), image_out.c_str()))
                    throw std::runtime_error(labels_out + ": --labels is the same file as --output (give each its own file)");
            }
            Dataset data = load_dataset(dataset, data_dir);
            const ImageSet& set = split == "test" ? data.test : data.train;
            if (count == 0) count = std::max<int64_t>(set.n - index, 1);
            write_images(image_out, labels_out, set, index, count);  // both or neither
            std::printf("wrote %s: %lld image(s) %dx%dx%d from %s %s, first label %d\n",
                        image_out.c_str(), (long long)count, set.channels, set.height, set.width,
                        dataset.c_str(), split.c_str(), index < set.n ? set.labels[size_t(index)] : -1);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
