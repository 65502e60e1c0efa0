// classifiers.h: the attack models: a binary classifier "member or not" on
// feature vectors (logistic regression, or an MLP with ReLU hidden layers and
// a sigmoid output), and Shokri et al.'s per-class attack built from it.
//
// Plain C++ (no LibTorch): the attack models are small, and this way they are
// deterministic for a seed on any machine (our own RNG use, one thread, a
// fixed order of floating-point operations) and build in seconds.
//
// Training: inputs standardised with the training set's mean and standard
// deviation (stored in the model and applied to every later input), weights
// initialised uniform(+-1/sqrt(fan_in)) like PyTorch's Linear, biases 0,
// binary cross-entropy on the output logit, mini-batch Adam
// (beta1 0.9, beta2 0.999, eps 1e-8), the examples reshuffled every epoch.
// The training set should be balanced (the shadow protocol makes it so): no
// class weighting is applied.
#pragma once
#include <cstdint>
#include <vector>

#include "attack/matrix.h"

namespace mmia {

struct ClassifierSpec {
    std::vector<int> hidden;  // widths of the ReLU hidden layers; empty = logistic regression
    int epochs = 50;
    int batch_size = 64;
    double learning_rate = 1e-3;
    double weight_decay = 0;  // L2 penalty on weights (not biases), added to the gradient
    uint64_t seed = 0;
};

// Logistic regression is the MLP with no hidden layer; these name the two
// attack models the project uses.
ClassifierSpec logistic_regression_spec(uint64_t seed);
ClassifierSpec mlp_spec(std::vector<int> hidden, uint64_t seed);

class BinaryClassifier {
public:
    // Trains from scratch. x: n examples x d features (finite); is_member: n
    // labels, 1 = member (the positive class), 0 = non-member, both present.
    void fit(const Matrix& x, const std::vector<int>& is_member, const ClassifierSpec& spec);

    // Membership scores: the model's log-odds log(P(member) / P(non-member)),
    // higher = more likely a member; threshold 0 is P(member) = 0.5. Log-odds
    // rather than the probability because the sigmoid rounds confident
    // outputs to exactly 1.0, which would tie them in the ROC.
    std::vector<double> score(const Matrix& x) const;

    bool trained() const { return !layers_.empty(); }
    int64_t n_inputs() const { return int64_t(mean_.size()); }
    // Mean training loss (binary cross-entropy) of each epoch, for tests and logs.
    const std::vector<double>& loss_history() const { return loss_history_; }

    // All parameters as one vector: layer by layer, its weights [out][in]
    // then its biases. With loss_and_gradient, what a gradient check needs.
    const std::vector<double>& parameters() const { return params_; }
    void set_parameters(const std::vector<double>& p);
    // Mean binary cross-entropy over the rows of x (raw inputs, standardised
    // as score() does) and, when grad is not null, its gradient in
    // parameters() order (without the weight decay term). Training runs the
    // same code on every mini-batch.
    double loss_and_gradient(const Matrix& x, const std::vector<int>& is_member,
                             std::vector<double>* grad) const;

private:
    struct Layer {
        int in = 0, out = 0;
        size_t w = 0, b = 0;  // offsets in params_ of weights [out][in] and biases [out]
    };
    std::vector<double> mean_, inv_std_;  // standardisation, per input feature
    std::vector<Layer> layers_;           // hidden layers (ReLU), then the output layer (1 unit)
    std::vector<double> params_;
    std::vector<double> loss_history_;

    Matrix standardise(const Matrix& x, const char* what) const;
    // Output logit for one standardised input; acts[l] receives layer l's
    // output (post-ReLU for hidden layers).
    double forward(const double* x, std::vector<std::vector<double>>& acts) const;
    // Sum of the losses of the given rows of standardised xs; adds the
    // gradient of that SUM to grad (sized like params_).
    double accumulate_gradient(const Matrix& xs, const std::vector<int>& y, const int64_t* rows, int64_t count,
                               std::vector<double>& grad) const;
};

// Shokri et al. (2017): one attack classifier per class, each trained on the
// shadow models' outputs for examples of that class (members of their shadow
// model vs non-members) and applied to the target's outputs for examples of
// the same class.
//
// Input: the probability vector in class order, NOT sorted. Each model only
// ever sees one true class, so the vector's coordinates keep a fixed meaning
// (coordinate y is the true-class confidence p_y, the strongest membership
// signal); sorting would throw away which coordinate is p_y (it is
// the largest only when the prediction is right) in exchange for nothing.
class ShokriAttack {
public:
    // probs: n x k softmax vectors from the shadow models; labels: true
    // classes in [0, k); is_member: membership in the shadow that produced
    // the row. Class c's model trains with seed spec.seed + c. Every class
    // needs members and non-members: without fallback_to_global a class that
    // has not both throws; with it, that class is scored by one global model
    // trained on every row (seed spec.seed + k) and listed in
    // fallback_classes() (the whole set still needs both).
    void fit(const Matrix& probs, const std::vector<int>& labels, const std::vector<int>& is_member,
             const ClassifierSpec& spec, bool fallback_to_global = false);
    // Log-odds membership scores for the target's rows (see BinaryClassifier::score).
    std::vector<double> score(const Matrix& probs, const std::vector<int>& labels) const;
    int n_classes() const { return int(per_class_.size()); }
    // The classes scored by the global model (increasing; empty unless a
    // class lacked members or non-members and fit() was told to fall back).
    const std::vector<int>& fallback_classes() const { return fallback_; }

private:
    std::vector<BinaryClassifier> per_class_;  // untrained for a fallback class
    BinaryClassifier global_;                   // trained only when there is a fallback class
    std::vector<int> fallback_;
};

// Seed 000's own protocol, kept to compare with its published numbers: the
// attack classifier trains on the TARGET's outputs with their true
// membership (a random 1 - test_fraction of the members and of the
// non-members, drawn with spec.seed) and scores the held-out rest. It
// measures how separable the target's outputs are, not what an attacker
// without membership labels can do (that is the shadow-trained attack).
// Each side keeps at least one member and one non-member.
struct HeldOutScores {
    std::vector<int64_t> rows;  // the held-out examples (rows of x), increasing
    std::vector<double> score;  // their log-odds membership scores
};
HeldOutScores train_on_target_outputs(const Matrix& x, const std::vector<int>& is_member,
                                      const ClassifierSpec& spec, double test_fraction);

}  // namespace mmia
