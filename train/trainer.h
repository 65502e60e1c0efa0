// trainer.h: the training loop shared by ./train and ./attack (which trains
// target and shadow models on index subsets).
#pragma once
#include <torch/torch.h>

#include <random>
#include <string>

#include "common/config.h"
#include "common/data.h"
#include "train/checkpoint.h"

namespace mmia {

// Pixels as float in [0,1], shape (n, C, H, W); the model normalises.
torch::Tensor images_to_tensor(const ImageSet& set);
torch::Tensor labels_to_tensor(const ImageSet& set);  // (n) int64

struct TrainJob {
    ModelSpec spec;
    TrainConfig train;
    InputSpec input;
    std::string dataset;     // recorded in the checkpoint meta
    std::string checkpoint;  // where to write (and resume from)
    bool force = false;      // overwrite a checkpoint made with another config
    bool verbose = true;     // per-epoch lines on stdout
    json extra_meta = json::object();  // e.g. the attack's split description
    int stop_after_epochs = 0;  // tests: return after this many epochs, as a killed run would
    // Language models (train_lm) only:
    std::string dataset_sha256;  // the corpus's checksum (manifest sha256), recorded and part of the identity
    int threads = 0;             // intra-op threads of this run, recorded in the meta
    int64_t stop_after_steps = 0;  // tests: return after this many optimizer steps in all
};

// Keeps freed memory instead of returning it to the OS, for the whole
// process: LibTorch allocates and frees large activations every step, and
// first-touch page faults cost several times the arithmetic on this kind of
// VM. Called once at the start of anything that trains (bin/train,
// bin/attack, the parity tests).
void keep_freed_memory();

// Trains (or resumes, or finds already trained) the model described by `job`
// (job.spec.model: "mamba" or "cnn") on (train_x, train_y), evaluating on
// (test_x, test_y) after each epoch. A library call: prints only when
// job.verbose (a progress bar goes to stderr when it is a terminal).
// Deterministic for a given seed and thread count: weights are initialised
// from the seed, and each epoch's shuffle depends only on (seed, epoch), so a
// resumed run continues exactly as an uninterrupted one. Returns the meta
// record of the final checkpoint (history, final train/test accuracy).
json train_classifier(const TrainJob& job, const torch::Tensor& train_x, const torch::Tensor& train_y,
                      const torch::Tensor& test_x, const torch::Tensor& test_y);
// train_classifier for a job that must be a Mamba one.
json train_mamba(const TrainJob& job, const torch::Tensor& train_x, const torch::Tensor& train_y,
                 const torch::Tensor& test_x, const torch::Tensor& test_y);

// Logits of `model` in eval mode, no grad, in batches: (n, n_classes).
torch::Tensor predict_logits(torch::nn::Module& model,
                             const std::function<torch::Tensor(const torch::Tensor&)>& forward,
                             const torch::Tensor& images, int64_t batch = 1000);
double accuracy(const torch::Tensor& logits, const torch::Tensor& labels);

// Training augmentation "crop-flip" on a batch x (B, C, H, W): each image is
// shifted by dy, dx in [-pad, pad] (as padding by `pad` with zeros and
// cropping H x W back) and mirrored left-right when a coin says so. Draws
// three numbers per image from `rng`, the epoch's (seed, epoch) generator, so
// a resumed run replays the same augmentations.
torch::Tensor augment_crop_flip(const torch::Tensor& x, int pad, std::mt19937_64& rng);

}  // namespace mmia
