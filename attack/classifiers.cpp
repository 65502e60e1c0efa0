// classifiers.cpp: logistic regression / MLP trained with mini-batch Adam,
// and Shokri's per-class attack (see classifiers.h).
#include "attack/classifiers.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>

namespace mmia {

ClassifierSpec logistic_regression_spec(uint64_t seed) {
    ClassifierSpec s;
    s.hidden = {};
    s.seed = seed;
    return s;
}

ClassifierSpec mlp_spec(std::vector<int> hidden, uint64_t seed) {
    ClassifierSpec s;
    s.hidden = std::move(hidden);
    s.seed = seed;
    return s;
}

namespace {

void check_features(const Matrix& x, const char* what) {
    if (x.rows <= 0 || x.cols <= 0)
        throw std::invalid_argument(std::string(what) + ": empty feature matrix (" +
                                    std::to_string(x.rows) + " x " + std::to_string(x.cols) + ")");
    if (x.values.size() != size_t(x.rows * x.cols))
        throw std::invalid_argument(std::string(what) + ": matrix storage does not match its shape");
    for (size_t i = 0; i < x.values.size(); i++)
        if (!std::isfinite(x.values[i]))
            throw std::invalid_argument(std::string(what) + ": feature " + std::to_string(i % x.cols) +
                                        " of row " + std::to_string(i / x.cols) + " is not finite");
}

void check_spec(const ClassifierSpec& s) {
    for (int h : s.hidden)
        if (h < 1 || h > 4096)
            throw std::invalid_argument("classifier: hidden width " + std::to_string(h) +
                                        " outside [1, 4096]");
    if (s.epochs < 1) throw std::invalid_argument("classifier: epochs must be >= 1");
    if (s.batch_size < 1) throw std::invalid_argument("classifier: batch_size must be >= 1");
    if (!(s.learning_rate > 0) || !std::isfinite(s.learning_rate))
        throw std::invalid_argument("classifier: learning_rate must be positive");
    if (!(s.weight_decay >= 0) || !std::isfinite(s.weight_decay))
        throw std::invalid_argument("classifier: weight_decay must be >= 0");
}

// is_member: one 0/1 label per row, both values present.
void check_membership(const std::vector<int>& is_member, int64_t rows, const char* what) {
    if (int64_t(is_member.size()) != rows)
        throw std::invalid_argument(std::string(what) + ": " + std::to_string(rows) + " rows but " +
                                    std::to_string(is_member.size()) + " labels");
    int64_t members = 0;
    for (int y : is_member) {
        if (y != 0 && y != 1)
            throw std::invalid_argument(std::string(what) + ": label " + std::to_string(y) +
                                        " (must be 1 = member or 0 = non-member)");
        members += y;
    }
    if (members == 0 || members == rows)
        throw std::invalid_argument(std::string(what) + ": needs members and non-members, got " +
                                    std::to_string(members) + " members of " + std::to_string(rows));
}

// Uniform double in [0, 1) from the raw 64-bit output: the standard library's
// distributions differ between implementations, mt19937_64 itself does not.
double uniform01(std::mt19937_64& rng) { return double(rng() >> 11) * 0x1.0p-53; }

// log(1 + exp(t)) without overflow.
double softplus(double t) { return std::max(t, 0.0) + std::log1p(std::exp(-std::fabs(t))); }
double sigmoid(double t) {
    if (t >= 0) return 1 / (1 + std::exp(-t));
    double e = std::exp(t);
    return e / (1 + e);
}

}  // namespace

double BinaryClassifier::forward(const double* x, std::vector<std::vector<double>>& acts) const {
    const double* in = x;
    for (size_t l = 0; l < layers_.size(); l++) {
        const Layer& L = layers_[l];
        std::vector<double>& out = acts[l];
        bool hidden = l + 1 < layers_.size();
        for (int o = 0; o < L.out; o++) {
            const double* w = &params_[L.w + size_t(o) * L.in];
            double s = params_[L.b + o];
            for (int i = 0; i < L.in; i++) s += w[i] * in[i];
            out[o] = hidden ? std::max(s, 0.0) : s;
        }
        in = out.data();
    }
    return acts.back()[0];
}

double BinaryClassifier::accumulate_gradient(const Matrix& xs, const std::vector<int>& y, const int64_t* rows,
                                             int64_t count, std::vector<double>& grad) const {
    const size_t n_layers = layers_.size();
    std::vector<std::vector<double>> acts(n_layers), delta(n_layers);
    for (size_t l = 0; l < n_layers; l++) {
        acts[l].assign(layers_[l].out, 0.0);
        delta[l].assign(layers_[l].out, 0.0);
    }
    double loss = 0;
    for (int64_t k = 0; k < count; k++) {
        const double* x = xs.row(rows[k]);
        double logit = forward(x, acts);
        double target = y[size_t(rows[k])];
        loss += softplus(logit) - target * logit;       // binary cross-entropy on the logit
        delta[n_layers - 1][0] = sigmoid(logit) - target;  // d loss / d logit
        for (size_t l = n_layers; l-- > 0;) {
            const Layer& L = layers_[l];
            const double* a_in = l == 0 ? x : acts[l - 1].data();
            for (int o = 0; o < L.out; o++) {
                double g = delta[l][o];
                if (g == 0) continue;
                double* gw = &grad[L.w + size_t(o) * L.in];
                for (int i = 0; i < L.in; i++) gw[i] += g * a_in[i];
                grad[L.b + o] += g;
            }
            if (l == 0) break;
            // delta of the layer below, through its ReLU (acts hold post-ReLU values).
            std::vector<double>& below = delta[l - 1];
            std::fill(below.begin(), below.end(), 0.0);
            for (int o = 0; o < L.out; o++) {
                double g = delta[l][o];
                if (g == 0) continue;
                const double* w = &params_[L.w + size_t(o) * L.in];
                for (int i = 0; i < L.in; i++) below[i] += g * w[i];
            }
            for (int i = 0; i < L.in; i++)
                if (acts[l - 1][i] <= 0) below[i] = 0;
        }
    }
    return loss;
}

Matrix BinaryClassifier::standardise(const Matrix& x, const char* what) const {
    if (!trained()) throw std::logic_error(std::string(what) + ": the classifier has not been trained");
    check_features(x, what);
    if (x.cols != n_inputs())
        throw std::invalid_argument(std::string(what) + ": " + std::to_string(x.cols) +
                                    " features, the classifier was trained on " + std::to_string(n_inputs()));
    Matrix xs(x.rows, x.cols);
    for (int64_t r = 0; r < x.rows; r++)
        for (int64_t j = 0; j < x.cols; j++) xs.at(r, j) = (x.at(r, j) - mean_[size_t(j)]) * inv_std_[size_t(j)];
    return xs;
}

void BinaryClassifier::fit(const Matrix& x, const std::vector<int>& is_member, const ClassifierSpec& spec) {
    check_features(x, "BinaryClassifier::fit");
    check_spec(spec);
    check_membership(is_member, x.rows, "BinaryClassifier::fit");
    const int64_t n = x.rows;
    const int d = int(x.cols);

    // Standardisation. A constant feature keeps scale 1 (it carries nothing).
    mean_.assign(d, 0.0);
    inv_std_.assign(d, 1.0);
    for (int64_t r = 0; r < n; r++)
        for (int j = 0; j < d; j++) mean_[j] += x.at(r, j);
    for (int j = 0; j < d; j++) mean_[j] /= double(n);
    for (int j = 0; j < d; j++) {
        double ss = 0;
        for (int64_t r = 0; r < n; r++) ss += (x.at(r, j) - mean_[j]) * (x.at(r, j) - mean_[j]);
        double sd = std::sqrt(ss / double(n));
        inv_std_[j] = sd > 1e-12 * (1 + std::fabs(mean_[j])) ? 1 / sd : 1.0;
    }

    // Layers and initialisation.
    std::mt19937_64 rng(spec.seed);
    layers_.clear();
    params_.clear();
    int in = d;
    std::vector<int> widths = spec.hidden;
    widths.push_back(1);
    for (int out : widths) {
        Layer L;
        L.in = in;
        L.out = out;
        L.w = params_.size();
        double bound = 1 / std::sqrt(double(in));
        for (size_t i = 0; i < size_t(out) * in; i++) params_.push_back((2 * uniform01(rng) - 1) * bound);
        L.b = params_.size();
        params_.resize(params_.size() + out, 0.0);
        layers_.push_back(L);
        in = out;
    }
    const Matrix xs = standardise(x, "BinaryClassifier::fit");

    // Mini-batch Adam (beta1 0.9, beta2 0.999, eps 1e-8).
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    std::vector<double> grad(params_.size()), m(params_.size(), 0.0), v(params_.size(), 0.0);
    std::vector<int64_t> order(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++) order[size_t(i)] = i;
    loss_history_.clear();
    int64_t step = 0;
    for (int epoch = 0; epoch < spec.epochs; epoch++) {
        for (int64_t i = n - 1; i > 0; i--) std::swap(order[size_t(i)], order[size_t(rng() % uint64_t(i + 1))]);
        double epoch_loss = 0;
        for (int64_t start = 0; start < n; start += spec.batch_size) {
            int64_t count = std::min(n - start, int64_t(spec.batch_size));
            std::fill(grad.begin(), grad.end(), 0.0);
            epoch_loss += accumulate_gradient(xs, is_member, &order[size_t(start)], count, grad);
            step++;
            double bc1 = 1 - std::pow(b1, double(step)), bc2 = 1 - std::pow(b2, double(step));
            for (const Layer& L : layers_)  // weight decay on weights only
                for (size_t i = L.w; i < L.b; i++) grad[i] += spec.weight_decay * double(count) * params_[i];
            for (size_t i = 0; i < params_.size(); i++) {
                double g = grad[i] / double(count);
                m[i] = b1 * m[i] + (1 - b1) * g;
                v[i] = b2 * v[i] + (1 - b2) * g * g;
                params_[i] -= spec.learning_rate * (m[i] / bc1) / (std::sqrt(v[i] / bc2) + eps);
            }
        }
        loss_history_.push_back(epoch_loss / double(n));
    }
}

std::vector<double> BinaryClassifier::score(const Matrix& x) const {
    const Matrix xs = standardise(x, "BinaryClassifier::score");
    std::vector<std::vector<double>> acts(layers_.size());
    for (size_t l = 0; l < layers_.size(); l++) acts[l].assign(layers_[l].out, 0.0);
    std::vector<double> out(static_cast<size_t>(x.rows));
    for (int64_t r = 0; r < x.rows; r++) out[size_t(r)] = forward(xs.row(r), acts);
    return out;
}

void BinaryClassifier::set_parameters(const std::vector<double>& p) {
    if (!trained()) throw std::logic_error("BinaryClassifier::set_parameters: the classifier has not been trained");
    if (p.size() != params_.size())
        throw std::invalid_argument("BinaryClassifier::set_parameters: " + std::to_string(p.size()) +
                                    " values for " + std::to_string(params_.size()) + " parameters");
    params_ = p;
}

double BinaryClassifier::loss_and_gradient(const Matrix& x, const std::vector<int>& is_member,
                                           std::vector<double>* grad) const {
    const Matrix xs = standardise(x, "BinaryClassifier::loss_and_gradient");
    check_membership(is_member, x.rows, "BinaryClassifier::loss_and_gradient");
    std::vector<int64_t> rows(static_cast<size_t>(x.rows));
    for (int64_t i = 0; i < x.rows; i++) rows[size_t(i)] = i;
    std::vector<double> g(params_.size(), 0.0);
    double loss = accumulate_gradient(xs, is_member, rows.data(), x.rows, g) / double(x.rows);
    if (grad) {
        for (double& v : g) v /= double(x.rows);
        *grad = std::move(g);
    }
    return loss;
}

// --- Shokri's per-class attack ---------------------------------------------------

namespace {

void check_labels_for(const Matrix& probs, const std::vector<int>& labels, const char* what) {
    if (int64_t(labels.size()) != probs.rows)
        throw std::invalid_argument(std::string(what) + ": " + std::to_string(probs.rows) +
                                    " probability rows but " + std::to_string(labels.size()) + " labels");
    if (probs.cols < 2) throw std::invalid_argument(std::string(what) + ": needs at least 2 classes");
    for (size_t i = 0; i < labels.size(); i++)
        if (labels[i] < 0 || labels[i] >= probs.cols)
            throw std::invalid_argument(std::string(what) + ": label " + std::to_string(labels[i]) +
                                        " of row " + std::to_string(i) + " outside [0, " +
                                        std::to_string(probs.cols) + ")");
}

Matrix rows_of(const Matrix& m, const std::vector<int64_t>& rows) {
    Matrix out(int64_t(rows.size()), m.cols);
    for (size_t i = 0; i < rows.size(); i++) std::copy(m.row(rows[i]), m.row(rows[i]) + m.cols, out.row(int64_t(i)));
    return out;
}

}  // namespace

void ShokriAttack::fit(const Matrix& probs, const std::vector<int>& labels, const std::vector<int>& is_member,
                       const ClassifierSpec& spec, bool fallback_to_global) {
    check_labels_for(probs, labels, "ShokriAttack::fit");
    if (is_member.size() != labels.size())
        throw std::invalid_argument("ShokriAttack::fit: " + std::to_string(labels.size()) + " labels but " +
                                    std::to_string(is_member.size()) + " membership labels");
    const int k = int(probs.cols);
    std::vector<BinaryClassifier> models(static_cast<size_t>(k));
    std::vector<int> fallback;
    for (int c = 0; c < k; c++) {
        std::vector<int64_t> rows;
        std::vector<int> y;
        int64_t members = 0;
        for (size_t i = 0; i < labels.size(); i++)
            if (labels[i] == c) {
                rows.push_back(int64_t(i));
                y.push_back(is_member[i]);
                members += is_member[i] == 1;
            }
        if (fallback_to_global && (members == 0 || members == int64_t(rows.size()))) {
            fallback.push_back(c);
            continue;
        }
        if (rows.empty())
            throw std::invalid_argument("ShokriAttack::fit: no shadow examples of class " + std::to_string(c));
        ClassifierSpec s = spec;
        s.seed = spec.seed + uint64_t(c);
        try {
            models[size_t(c)].fit(rows_of(probs, rows), y, s);
        } catch (const std::invalid_argument& e) {
            throw std::invalid_argument("ShokriAttack::fit: class " + std::to_string(c) + ": " + e.what());
        }
    }
    BinaryClassifier global;
    if (!fallback.empty()) {
        ClassifierSpec s = spec;
        s.seed = spec.seed + uint64_t(k);
        global.fit(probs, is_member, s);
    }
    per_class_ = std::move(models);
    global_ = std::move(global);
    fallback_ = std::move(fallback);
}

std::vector<double> ShokriAttack::score(const Matrix& probs, const std::vector<int>& labels) const {
    if (per_class_.empty()) throw std::logic_error("ShokriAttack::score: the attack has not been trained");
    check_labels_for(probs, labels, "ShokriAttack::score");
    if (probs.cols != int64_t(per_class_.size()))
        throw std::invalid_argument("ShokriAttack::score: " + std::to_string(probs.cols) +
                                    " classes, the attack was trained on " + std::to_string(per_class_.size()));
    std::vector<double> out(labels.size());
    for (int c = 0; c < int(per_class_.size()); c++) {
        std::vector<int64_t> rows;
        for (size_t i = 0; i < labels.size(); i++)
            if (labels[i] == c) rows.push_back(int64_t(i));
        if (rows.empty()) continue;
        const bool global = std::binary_search(fallback_.begin(), fallback_.end(), c);
        std::vector<double> s = (global ? global_ : per_class_[size_t(c)]).score(rows_of(probs, rows));
        for (size_t i = 0; i < rows.size(); i++) out[size_t(rows[i])] = s[i];
    }
    return out;
}

// --- seed 000's protocol: trained on the target's own outputs ----------------------

HeldOutScores train_on_target_outputs(const Matrix& x, const std::vector<int>& is_member,
                                      const ClassifierSpec& spec, double test_fraction) {
    if (!(test_fraction > 0 && test_fraction < 1))
        throw std::invalid_argument("train_on_target_outputs: test_fraction must be in (0, 1), got " +
                                    std::to_string(test_fraction));
    check_features(x, "train_on_target_outputs");
    check_membership(is_member, x.rows, "train_on_target_outputs");
    std::mt19937_64 rng(spec.seed);
    std::vector<uint8_t> held_out(static_cast<size_t>(x.rows), 0);
    for (int side = 0; side < 2; side++) {  // stratified: members, then non-members
        std::vector<int64_t> rows;
        for (int64_t i = 0; i < x.rows; i++)
            if (is_member[size_t(i)] == side) rows.push_back(i);
        if (rows.size() < 2)
            throw std::invalid_argument(std::string("train_on_target_outputs: needs at least 2 ") +
                                        (side ? "members" : "non-members") + " to split");
        for (size_t i = rows.size() - 1; i > 0; i--) std::swap(rows[i], rows[size_t(rng() % uint64_t(i + 1))]);
        int64_t n_test = std::llround(double(rows.size()) * test_fraction);
        n_test = std::min<int64_t>(std::max<int64_t>(n_test, 1), int64_t(rows.size()) - 1);
        for (int64_t i = 0; i < n_test; i++) held_out[size_t(rows[size_t(i)])] = 1;
    }
    std::vector<int64_t> train_rows;
    HeldOutScores r;
    for (int64_t i = 0; i < x.rows; i++) (held_out[size_t(i)] ? r.rows : train_rows).push_back(i);
    std::vector<int> train_y;
    for (int64_t i : train_rows) train_y.push_back(is_member[size_t(i)]);
    BinaryClassifier model;
    model.fit(rows_of(x, train_rows), train_y, spec);
    r.score = model.score(rows_of(x, r.rows));
    return r;
}

}  // namespace mmia
