// trainer.h: the training loop shared by ./train and ./attack (which trains
// target and shadow models on index subsets).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <random>
#include <string>

#include "common/config.h"
#include "common/data.h"
#include "train/checkpoint.h"
#include "train/dp_accountant.h"
#include "train/cnn_model.h"
#include "train/mamba_model.h"

namespace mmia {

// Pixels as float in [0,1], shape (n, C, H, W); the model normalises.
torch::Tensor images_to_tensor(const ImageSet& set);
torch::Tensor labels_to_tensor(const ImageSet& set);  // (n) int64

// DP-SGD (Abadi et al. 2016, as Opacus and TF-Privacy implement it;
// ../shared/notes/defences.md section 1.1). Off unless `enabled`.
struct DpConfig {
    bool enabled = false;
    double noise_multiplier = 0;  // sigma >= 0: noise stddev / max_grad_norm
    double max_grad_norm = 1.0;   // C > 0: each example's gradient (all parameters) is clipped to L2 norm C
    double sample_rate = 0;       // q in (0, 1]: each example joins a step with probability q
    double delta = 1e-5;          // the statement's delta, in (0, 1)
    double target_epsilon = 0;    // > 0: noise_multiplier was found by bisection for this epsilon
    // How the per-example gradients are computed (dp_sgd_gradients):
    // "expanded weights" (one batched backward; models without batch norm),
    // "microbatches of one" (any model), or "" for expanded weights where
    // the model has them.
    std::string per_example_gradients;
    // Expanded weights hold B x (parameter count) gradient values: a larger
    // batch runs in chunks of at most this many values (128 MB of floats).
    int64_t expanded_max_values = int64_t(1) << 25;
};
json to_json(const DpConfig& dp);

// The DP-SGD settings of a run of `epochs` epochs over n_train examples:
// q = sample_rate, or batch_size / n_train (at most 1) when sample_rate is 0;
// sigma = noise_multiplier, or (target_epsilon > 0) the accountant's sigma
// for that epsilon within 0.5% (dp::sigma_for_epsilon over
// epochs * dp_steps_per_epoch(q) steps). Throws what sigma_for_epsilon throws.
DpConfig resolve_dp(double noise_multiplier, double target_epsilon, double max_grad_norm, double sample_rate,
                    double delta, int batch_size, int epochs, int64_t n_train);

// DP-SGD needs per-example gradients: a preset with batch norm (which mixes
// the examples of a batch) is refused with a runtime_error naming the preset
// (Opacus swaps in group norm; the engines have none).
void check_dp_model(const ModelSpec& spec);

struct TrainJob {
    ModelSpec spec;
    TrainConfig train;
    InputSpec input;
    std::string dataset;     // recorded in the checkpoint meta
    std::string checkpoint;  // where to write (and resume from)
    bool force = false;      // overwrite a checkpoint made with another config
    bool verbose = true;     // per-epoch lines on stdout
    json extra_meta = json::object();  // e.g. the attack's split description
    DpConfig dp;             // DP-SGD (image models only)
    // Image models: label smoothing eps in [0, 1) (classification_loss);
    // recorded in the meta's "training" when non-zero.
    double label_smoothing = 0;
    // Image models: dropout probability in [0, 1) while training (0 = the
    // preset's own): Mamba on every block's output before the residual add
    // and on the pooled vector before the head (its dropout and head_dropout
    // fields); CNN on the input of every dense layer. Off at eval, so the
    // exported model and the engines are unaffected.
    double dropout = 0;
    // Image models: early stopping by validation loss (docs/PRIVACY.md):
    // stop once `early_stopping` epochs in a row brought no lower validation
    // loss than the best so far; the checkpoint holds the best epoch's
    // weights. 0 = off. The validation set is (val_x, val_y) when defined,
    // else a seeded 10% (at least 1) of the training examples, held out of
    // training (early_stopping_split).
    int early_stopping = 0;
    torch::Tensor val_x, val_y;
    int stop_after_epochs = 0;  // tests: return after this many epochs, as a killed run would
    // Image models: called after every epoch with the model's logits in eval
    // mode, no grad, on the training examples (n_train, n_classes) and on
    // (test_x, test_y)'s images (n_test, n_classes), float; its JSON object
    // is merged into that epoch's history entry (keys the trainer writes
    // itself are kept: "epoch", "loss", "test_acc", ...). Unset (the
    // default): no extra forward pass. Setting it leaves the trained weights
    // bit for bit as they are (eval mode, no grad, no random numbers drawn);
    // it is not part of the checkpoint's identity (bin/attack: the
    // vulnerability per epoch).
    std::function<json(int epoch, const torch::Tensor& train_logits, const torch::Tensor& test_logits)> per_epoch;
    // Language models (train_lm) only:
    std::string dataset_sha256;  // the corpus's checksum (manifest sha256), recorded and part of the identity
    int threads = 0;             // intra-op threads of this run, recorded in the meta
    int64_t stop_after_steps = 0;  // tests: return after this many optimizer steps in all
};

// What decides a run's bits beyond its configuration, for checkpoint meta
// ("reproducibility") and run directories: {"threads" (LibTorch intra-op
// threads now), "seed", "preset", "libtorch" (version), "compiler",
// "cpu_features"}.
json run_environment(uint64_t seed, const std::string& preset);

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

// The training loss of the image models: cross-entropy against smoothed
// targets (1 - eps) onehot(y) + eps / K, averaged over the batch:
//   mean_i [ -(1 - eps) log p_i[y_i] - (eps / K) sum_k log p_i[k] ]
// (PyTorch's cross_entropy(label_smoothing=eps)); eps = 0 is plain
// cross-entropy. logits (B, K), y (B) int64; B = 0 gives NaN (mean of none).
torch::Tensor classification_loss(const torch::Tensor& logits, const torch::Tensor& y, double label_smoothing);

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
// The same without the mirror: two numbers per image (dy, dx), so labels
// and digits' handedness are kept ("shift2": pad 2, the digit sets).
torch::Tensor augment_shift(const torch::Tensor& x, int pad, std::mt19937_64& rng);
// A batch through TrainConfig::augment's mode: "none" (x itself),
// "crop-flip" (shift <= 4 px and mirror), "shift2" (shift <= 2 px),
// "shift2-flip" (shift <= 2 px and mirror; bin/attack's 'augment' for
// CIFAR-10). Throws for another mode.
torch::Tensor augment_images(const torch::Tensor& x, const std::string& mode, std::mt19937_64& rng);

// --- Early stopping -------------------------------------------------------

// The rule (Keras' EarlyStopping(monitor="val_loss", patience, min_delta=0,
// restore_best_weights=True)): after each epoch, a validation loss below the
// best so far makes that epoch the best; `patience` epochs in a row without
// one stop training, and the best epoch's weights are kept. A NaN loss is
// never an improvement.
struct EarlyStopping {
    int patience = 1;
    double best = INFINITY;
    int best_epoch = 0;  // 1-based; 0 = none yet
    int bad_epochs = 0;
    // Records epoch `epoch` (1-based) with validation loss `loss`; true when
    // training stops after it.
    bool update(int epoch, double loss);
};

// The seeded validation split of bin/train's early stopping: a permutation
// of 0..n-1 from mt19937_64(seed ^ 0x5eed5a1d), its first max(1, n / 10)
// entries the validation examples, the rest (sorted) the training ones.
// Needs n >= 2. Returns {training indices, validation indices}.
std::pair<std::vector<int64_t>, std::vector<int64_t>> early_stopping_split(int64_t n, uint64_t seed);

// --- DP-SGD ---------------------------------------------------------------

// Steps per epoch under Poisson sampling at rate q: floor(1/q), at least 1
// (Opacus's DPDataLoader: int(1 / sample_rate) batches per epoch).
int64_t dp_steps_per_epoch(double q);

// Poisson sampling: each of the n indices independently with probability q,
// in increasing order; may be empty. Draws exactly n numbers from rng (the
// top 53 bits of each, compared with q), so the same generator state gives
// the same batch on every standard library.
std::vector<int64_t> poisson_sample(int64_t n, double q, std::mt19937_64& rng);

struct DpStepStats {
    double loss_sum = 0;     // sum of the sampled examples' cross-entropy losses
    int64_t correct = 0;     // of the sampled examples, how many were classified right
    double max_norm = 0;     // the largest per-example gradient L2 norm (before clipping)
};

// A model's forward with per-example parameters: logits (B, n_classes) of x
// (B, C, H, W) where example b uses pe[j][b] for the j-th of
// model.parameters() (pe[j] is (B, *shape_j)), except the layers it runs
// ghost (recorded in *ghost; a model may run none). See train/per_example.h.
using PerExampleForward = std::function<torch::Tensor(const torch::Tensor& x, const std::vector<torch::Tensor>& pe,
                                                      GhostTaps* ghost)>;

// One DP-SGD gradient: for each example i of the batch (x (B, C, H, W), y
// (B); B may be 0) the gradient g_i of its loss (classification_loss with
// label_smoothing) w.r.t. every parameter of `model`, clipped to
// g_i * min(1, C / (||g_i||_2 + 1e-6)) with the norm over all parameters
// together (Opacus's flat clipping); the clipped gradients are summed,
// N(0, (sigma C)^2) noise is added to every coordinate (from LibTorch's
// global generator), and the result is divided by the expected batch size
// q * n_train. Writes it into each parameter's .grad (for any optimizer's
// step). `model` should be in train mode; it must not mix examples (no
// batch norm).
// The g_i come from one batched forward and backward through per_example
// when it is given (every parameter expanded to (B, *shape), the gradient
// taken w.r.t. the expansions: Opacus's "expanded weights"), else from a
// forward and backward per example (microbatches of one; any model). The
// two agree to float rounding (tests/test_dp_sgd.cpp).
DpStepStats dp_sgd_gradients(torch::nn::Module& model,
                             const std::function<torch::Tensor(const torch::Tensor&)>& forward,
                             const torch::Tensor& x, const torch::Tensor& y, const DpConfig& dp,
                             int64_t n_train, double label_smoothing = 0,
                             const PerExampleForward& per_example = nullptr);

// The classifiers' PerExampleForward (their forward with PerExampleParams,
// train/per_example.h); null for a model with batch norm (a Mamba with a
// stem, a CNN with batch norm), which DP-SGD refuses anyway.
PerExampleForward mamba_per_example_forward(MambaClassifier model);
PerExampleForward cnn_per_example_forward(CnnClassifier model);

// The accountant's view of `steps` DP-SGD steps: Poisson sampling at q,
// noise multiplier sigma, delta; dp_accounting's orders, the improved
// conversion, |terms| fractional series (an upper bound) (train/dp_accountant.h).
dp::Accounting dp_accounting(const DpConfig& dp, int64_t steps);

// The JSON privacy statement of a DP-trained checkpoint after `steps`
// steps: dp::statement_json's fields plus max_grad_norm, dataset_size,
// expected_batch_size, steps_per_epoch, epochs_done, target_epsilon (if
// any), and "checkpoint" (its file name).
json dp_statement(const DpConfig& dp, int64_t steps, int64_t n_train, int epochs_done,
                  const std::string& checkpoint);
// Where the statement of `checkpoint` lives: "<checkpoint>.privacy.json".
std::string dp_statement_path(const std::string& checkpoint);

}  // namespace mmia
