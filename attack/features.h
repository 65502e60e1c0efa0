// features.h: what an attack reads off one output row of a classifier.
//
// Every function takes the raw LOGITS of one example (n_classes floats, what
// mamba_forward_logits writes) and, where it needs it, the example's true
// label y. Probabilities are computed here, in double precision, from the
// logits with the log-sum-exp shift, so a confident model never turns into
// log(0) or 0/0. Bad input (n_classes < 2, y out of range, a non-finite
// logit) throws std::invalid_argument.
#pragma once
#include <cstdint>
#include <vector>

#include "attack/matrix.h"

namespace mmia {

// Softmax probabilities, stable (max-subtracted), summing to 1.
std::vector<double> softmax(const float* logits, int n_classes);
// log p_i for every class: z_i - logsumexp(z).
std::vector<double> log_softmax(const float* logits, int n_classes);

// Cross-entropy loss -log p_y (>= 0; 0 for a perfectly confident right answer).
double cross_entropy(const float* logits, int n_classes, int y);
// max_i p_i: the confidence of the predicted class.
double max_confidence(const float* logits, int n_classes);
// p_y: the confidence in the TRUE class (Song & Mittal's "confidence").
double true_class_confidence(const float* logits, int n_classes, int y);
// Shannon entropy -sum p_i log p_i in nats (0 log 0 = 0); 0..log(n_classes).
double prediction_entropy(const float* logits, int n_classes);
// Song & Mittal (2021), eq. 7: -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i).
// Low for a confident right answer, high for a confident wrong one (unlike
// entropy, it knows the label). Computed with log(1 - p_i) = logsumexp over
// the other classes - logsumexp over all, so p_i ~ 1 costs no precision.
double modified_entropy(const float* logits, int n_classes, int y);
// 1 if argmax of the logits is y (the first maximum on ties), else 0.
int is_correct(const float* logits, int n_classes, int y);
// LiRA's logit-scaled confidence (Carlini et al. 2022):
//   phi = log p_y - log(1 - p_y) = z_y - logsumexp_{i != y} z_i,
// computed from the logits directly, so it stays finite and exact where p_y
// rounds to 1 in floating point.
double logit_scaled_confidence(const float* logits, int n_classes, int y);

// Seed 000's attack input (BarisAtik/MAMBARIS, notebooks/attack.ipynb),
// 2 * n_classes + 2 values (22 for 10 classes), in its order:
//   [0, k)       the k logits
//   [k, 2k)      the k softmax probabilities
//   2k           top-1 minus top-2 probability (the seed's "confidence margin")
//   2k + 1       entropy of the softmax (the seed added 1e-10 inside the log;
//                here 0 log 0 = 0, a difference below 1e-9)
// It does not use the label.
constexpr int seed000_feature_count(int n_classes) { return 2 * n_classes + 2; }
void seed000_features(const float* logits, int n_classes, double* out /*[2k+2]*/);

// --- Whole sets --------------------------------------------------------------
// `logits` holds n rows of n_classes (row-major, n = logits.size() / n_classes);
// `labels` the n true labels. Sizes that do not line up throw.

// n x (2k+2): seed000_features for every row.
Matrix seed000_feature_matrix(const std::vector<float>& logits, int n_classes);
// n x k: the softmax vectors (Shokri's attack input).
Matrix softmax_matrix(const std::vector<float>& logits, int n_classes);
// n values of logit_scaled_confidence.
std::vector<double> logit_scaled_confidences(const std::vector<float>& logits, int n_classes,
                                             const std::vector<int>& labels);

// Throws unless logits holds a whole number (>= 1) of rows of n_classes >= 2
// finite values and, when labels is given, one label in [0, n_classes) per
// row. Returns the number of rows.
int64_t check_logits(const std::vector<float>& logits, int n_classes, const std::vector<int>* labels,
                     const char* what);

}  // namespace mmia
