// lm_trainer.h: the language-model training loop (bin/train --model
// mamba-lm | transformer-lm; bin/extract calls it too). Same guarantees as the
// classifier's train_classifier (trainer.h): atomic checkpoints, bit-exact
// resume, determinism for a seed and thread count, refusal of a checkpoint
// made with another configuration without --force.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "train/lm_model.h"
#include "train/trainer.h"

namespace mmia {

// Windows of a byte stream for next-token prediction with context L: window w
// is tokens [w L, w L + L) predicting [w L + 1, w L + L + 1); the stream's
// tail shorter than L + 1 bytes is not trained on. Returns (n_windows) =
// (n - 1) / L (0 when n < 2).
int64_t lm_window_count(int64_t stream_bytes, int64_t context);

// Mean next-token cross-entropy in nats per token over every byte of
// `stream` after its first: windows of `context` tokens (the last one
// shorter), each predicted from the start of its window only, evaluated in
// batches of `batch` windows in eval mode without gradients. Bits per byte
// = the loss / ln 2 (tokens are bytes). Returns {loss, n_predicted}; a stream
// of fewer than 2 bytes gives {NaN, 0}.
std::pair<double, int64_t> lm_stream_loss(LanguageModel& model, const std::vector<uint8_t>& stream,
                                          int64_t context, int64_t batch);

// Trains (or resumes, or finds already trained) the language model of
// job.spec (model "mamba-lm" or "transformer-lm") on next-token cross-entropy
// over the windows (lm_window_count) of train_stream, AdamW with job.train's
// rate, weight decay and schedule (cosine over all steps), batches of
// job.train.batch_size windows in an order that depends only on (seed,
// epoch). After each epoch: the held-out loss and bits per byte over
// heldout_stream (lm_stream_loss). Checkpoints at the end of each epoch and,
// with job.train.checkpoint_every = S > 0, every S steps, recording the
// corpus name (job.dataset) and sha256, the thread count and the history.
// Returns the final meta record. Throws std::runtime_error("<why>") when the
// training stream holds no window, or the checkpoint is another run's.
json train_lm(const TrainJob& job, const std::vector<uint8_t>& train_stream,
              const std::vector<uint8_t>& heldout_stream);

// The model a checkpoint's meta describes, with its weights (and the meta in
// *meta_out). Throws std::runtime_error("<path>: <why>").
LanguageModel load_lm_checkpoint(const std::string& path, json* meta_out = nullptr);

}  // namespace mmia
