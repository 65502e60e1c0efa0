// features.cpp: per-example attack features from one row of logits.
#include "attack/features.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>

namespace mmia {

namespace {

void check_row(const float* logits, int n_classes, const char* what) {
    if (n_classes < 2)
        throw std::invalid_argument(std::string(what) + ": needs at least 2 classes, got " +
                                    std::to_string(n_classes));
    if (!logits) throw std::invalid_argument(std::string(what) + ": null logits");
    for (int i = 0; i < n_classes; i++)
        if (!std::isfinite(logits[i]))
            throw std::invalid_argument(std::string(what) + ": logit " + std::to_string(i) +
                                        " is not finite");
}

void check_label(int y, int n_classes, const char* what) {
    if (y < 0 || y >= n_classes)
        throw std::invalid_argument(std::string(what) + ": label " + std::to_string(y) +
                                    " outside [0, " + std::to_string(n_classes) + ")");
}

// log sum_i exp(z_i) over i != skip (skip = -1: all), max-shifted.
double logsumexp_except(const float* z, int n, int skip) {
    double m = -std::numeric_limits<double>::infinity();
    for (int i = 0; i < n; i++)
        if (i != skip) m = std::max(m, double(z[i]));
    double s = 0;
    for (int i = 0; i < n; i++)
        if (i != skip) s += std::exp(double(z[i]) - m);
    return m + std::log(s);
}

}  // namespace

std::vector<double> log_softmax(const float* logits, int n_classes) {
    check_row(logits, n_classes, "log_softmax");
    double lse = logsumexp_except(logits, n_classes, -1);
    std::vector<double> out(n_classes);
    for (int i = 0; i < n_classes; i++) out[i] = double(logits[i]) - lse;
    return out;
}

std::vector<double> softmax(const float* logits, int n_classes) {
    std::vector<double> p = log_softmax(logits, n_classes);
    for (double& v : p) v = std::exp(v);
    return p;
}

double cross_entropy(const float* logits, int n_classes, int y) {
    check_label(y, n_classes, "cross_entropy");
    return -log_softmax(logits, n_classes)[y];
}

double max_confidence(const float* logits, int n_classes) {
    std::vector<double> p = softmax(logits, n_classes);
    return *std::max_element(p.begin(), p.end());
}

double true_class_confidence(const float* logits, int n_classes, int y) {
    check_label(y, n_classes, "true_class_confidence");
    return std::exp(log_softmax(logits, n_classes)[y]);
}

double prediction_entropy(const float* logits, int n_classes) {
    std::vector<double> logp = log_softmax(logits, n_classes);
    double h = 0;
    for (double lp : logp) {
        double p = std::exp(lp);
        if (p > 0) h -= p * lp;  // 0 log 0 = 0
    }
    return h;
}

double modified_entropy(const float* logits, int n_classes, int y) {
    check_label(y, n_classes, "modified_entropy");
    std::vector<double> logp = log_softmax(logits, n_classes);
    double lse = logsumexp_except(logits, n_classes, -1);
    double m = 0;
    for (int i = 0; i < n_classes; i++) {
        // log(1 - p_i) = log(sum_{j != i} p_j)
        double log1m = logsumexp_except(logits, n_classes, i) - lse;
        if (i == y) m -= std::exp(log1m) * logp[i];       // -(1 - p_y) log p_y
        else m -= std::exp(logp[i]) * log1m;              // -p_i log(1 - p_i)
    }
    return m;
}

int is_correct(const float* logits, int n_classes, int y) {
    check_row(logits, n_classes, "is_correct");
    check_label(y, n_classes, "is_correct");
    int arg = int(std::max_element(logits, logits + n_classes) - logits);
    return arg == y ? 1 : 0;
}

double logit_scaled_confidence(const float* logits, int n_classes, int y) {
    check_row(logits, n_classes, "logit_scaled_confidence");
    check_label(y, n_classes, "logit_scaled_confidence");
    return double(logits[y]) - logsumexp_except(logits, n_classes, y);
}

void seed000_features(const float* logits, int n_classes, double* out) {
    std::vector<double> p = softmax(logits, n_classes);  // checks the row
    for (int i = 0; i < n_classes; i++) out[i] = logits[i];
    for (int i = 0; i < n_classes; i++) out[n_classes + i] = p[i];
    std::vector<double> sorted = p;
    std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<double>());
    out[2 * n_classes] = sorted[0] - sorted[1];
    out[2 * n_classes + 1] = prediction_entropy(logits, n_classes);
}

int64_t check_logits(const std::vector<float>& logits, int n_classes, const std::vector<int>* labels,
                     const char* what) {
    if (n_classes < 2)
        throw std::invalid_argument(std::string(what) + ": needs at least 2 classes, got " +
                                    std::to_string(n_classes));
    if (logits.empty() || logits.size() % size_t(n_classes) != 0)
        throw std::invalid_argument(std::string(what) + ": " + std::to_string(logits.size()) +
                                    " logits is not a whole number (>= 1) of rows of " +
                                    std::to_string(n_classes));
    int64_t n = int64_t(logits.size() / size_t(n_classes));
    for (size_t i = 0; i < logits.size(); i++)
        if (!std::isfinite(logits[i]))
            throw std::invalid_argument(std::string(what) + ": logit " + std::to_string(i % n_classes) +
                                        " of row " + std::to_string(i / n_classes) + " is not finite");
    if (labels) {
        if (int64_t(labels->size()) != n)
            throw std::invalid_argument(std::string(what) + ": " + std::to_string(n) + " rows of logits but " +
                                        std::to_string(labels->size()) + " labels");
        for (size_t i = 0; i < labels->size(); i++) {
            int y = (*labels)[i];
            if (y < 0 || y >= n_classes)
                throw std::invalid_argument(std::string(what) + ": label " + std::to_string(y) + " of row " +
                                            std::to_string(i) + " outside [0, " +
                                            std::to_string(n_classes) + ")");
        }
    }
    return n;
}

Matrix seed000_feature_matrix(const std::vector<float>& logits, int n_classes) {
    int64_t n = check_logits(logits, n_classes, nullptr, "seed000_feature_matrix");
    Matrix x(n, seed000_feature_count(n_classes));
    for (int64_t i = 0; i < n; i++) seed000_features(&logits[size_t(i) * n_classes], n_classes, x.row(i));
    return x;
}

Matrix softmax_matrix(const std::vector<float>& logits, int n_classes) {
    int64_t n = check_logits(logits, n_classes, nullptr, "softmax_matrix");
    Matrix x(n, n_classes);
    for (int64_t i = 0; i < n; i++) {
        std::vector<double> p = softmax(&logits[size_t(i) * n_classes], n_classes);
        std::copy(p.begin(), p.end(), x.row(i));
    }
    return x;
}

std::vector<double> logit_scaled_confidences(const std::vector<float>& logits, int n_classes,
                                             const std::vector<int>& labels) {
    int64_t n = check_logits(logits, n_classes, &labels, "logit_scaled_confidences");
    std::vector<double> phi(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++)
        phi[size_t(i)] = logit_scaled_confidence(&logits[size_t(i) * n_classes], n_classes, labels[size_t(i)]);
    return phi;
}

}  // namespace mmia
