// bin/export: checkpoint -> packed model file; dataset images -> input.bin.
//
//   bin/export model --checkpoint checkpoints/mnist_mamba-mnist.pt --output mnist_mamba.bin
//   bin/export image --dataset mnist --index 0 [--count 1] [--split test] --output input.bin
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>

#include "common/command_line.h"
#include "common/data.h"
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

    if (int code = parse_command_line(app, argc, argv); code >= 0) return code;

    try {
        // Before any work: no output may be one of the inputs (an atomic
        // write would rename the new file over it), nor the other output.
        if (*model_cmd) {
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
