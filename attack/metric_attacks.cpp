// metric_attacks.cpp: loss / confidence / entropy / modified entropy /
// correctness attacks with global or per-class thresholds (see metric_attacks.h).
#include "attack/metric_attacks.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "attack/features.h"
#include "attack/metrics.h"

namespace mmia {

const std::vector<MetricAttack>& all_metric_attacks() {
    static const std::vector<MetricAttack> all = {MetricAttack::loss, MetricAttack::confidence,
                                                  MetricAttack::entropy, MetricAttack::modified_entropy,
                                                  MetricAttack::correctness};
    return all;
}

std::string metric_attack_name(MetricAttack a) {
    switch (a) {
        case MetricAttack::loss: return "loss";
        case MetricAttack::confidence: return "confidence";
        case MetricAttack::entropy: return "entropy";
        case MetricAttack::modified_entropy: return "modified_entropy";
        case MetricAttack::correctness: return "correctness";
    }
    throw std::invalid_argument("metric_attack_name: unknown attack " + std::to_string(int(a)));
}

MetricAttack metric_attack_from_name(const std::string& name) {
    std::string known;
    for (MetricAttack a : all_metric_attacks()) {
        if (metric_attack_name(a) == name) return a;
        known += (known.empty() ? "" : ", ") + metric_attack_name(a);
    }
    throw std::invalid_argument("unknown metric attack \"" + name + "\" (known: " + known + ")");
}

std::vector<double> metric_scores(MetricAttack a, const std::vector<float>& logits, int n_classes,
                                  const std::vector<int>& labels) {
    int64_t n = check_logits(logits, n_classes, &labels, "metric_scores");
    std::vector<double> s(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++) {
        const float* z = &logits[size_t(i) * size_t(n_classes)];
        int y = labels[size_t(i)];
        switch (a) {
            case MetricAttack::loss: s[size_t(i)] = -cross_entropy(z, n_classes, y); break;
            case MetricAttack::confidence: s[size_t(i)] = true_class_confidence(z, n_classes, y); break;
            case MetricAttack::entropy: s[size_t(i)] = -prediction_entropy(z, n_classes); break;
            case MetricAttack::modified_entropy: s[size_t(i)] = -modified_entropy(z, n_classes, y); break;
            case MetricAttack::correctness: s[size_t(i)] = is_correct(z, n_classes, y); break;
            default: throw std::invalid_argument("metric_scores: unknown attack " + std::to_string(int(a)));
        }
    }
    return s;
}

std::vector<double> per_class_thresholds(const std::vector<double>& shadow_scores,
                                         const std::vector<int>& shadow_labels,
                                         const std::vector<int>& shadow_is_member, int n_classes,
                                         std::vector<int>* fallback) {
    if (n_classes < 2)
        throw std::invalid_argument("per_class_thresholds: needs at least 2 classes, got " +
                                    std::to_string(n_classes));
    if (shadow_scores.size() != shadow_labels.size() || shadow_scores.size() != shadow_is_member.size())
        throw std::invalid_argument("per_class_thresholds: " + std::to_string(shadow_scores.size()) +
                                    " scores, " + std::to_string(shadow_labels.size()) + " labels, " +
                                    std::to_string(shadow_is_member.size()) + " membership labels");
    std::vector<std::vector<double>> scores(static_cast<size_t>(n_classes));
    std::vector<std::vector<int>> member(static_cast<size_t>(n_classes));
    for (size_t i = 0; i < shadow_labels.size(); i++) {
        int y = shadow_labels[i];
        if (y < 0 || y >= n_classes)
            throw std::invalid_argument("per_class_thresholds: label " + std::to_string(y) + " of example " +
                                        std::to_string(i) + " outside [0, " + std::to_string(n_classes) + ")");
        scores[size_t(y)].push_back(shadow_scores[i]);
        member[size_t(y)].push_back(shadow_is_member[i]);
    }
    std::vector<double> t(static_cast<size_t>(n_classes));
    for (int c = 0; c < n_classes; c++) {
        const auto& mc = member[size_t(c)];
        const int64_t members = std::count(mc.begin(), mc.end(), 1);
        if (fallback && (members == 0 || members == int64_t(mc.size()))) {
            t[size_t(c)] = select_threshold(shadow_scores, shadow_is_member);
            fallback->push_back(c);
            continue;
        }
        try {
            t[size_t(c)] = select_threshold(scores[size_t(c)], member[size_t(c)]);
        } catch (const std::invalid_argument& e) {
            throw std::invalid_argument("per_class_thresholds: class " + std::to_string(c) + ": " + e.what());
        }
    }
    return t;
}

std::vector<double> subtract_class_thresholds(const std::vector<double>& scores, const std::vector<int>& labels,
                                              const std::vector<double>& thresholds) {
    if (scores.size() != labels.size())
        throw std::invalid_argument("subtract_class_thresholds: " + std::to_string(scores.size()) +
                                    " scores but " + std::to_string(labels.size()) + " labels");
    std::vector<double> out(scores.size());
    for (size_t i = 0; i < scores.size(); i++) {
        int y = labels[i];
        if (y < 0 || size_t(y) >= thresholds.size())
            throw std::invalid_argument("subtract_class_thresholds: label " + std::to_string(y) +
                                        " has no threshold (" + std::to_string(thresholds.size()) +
                                        " classes)");
        out[i] = scores[i] - thresholds[size_t(y)];
        if (!std::isfinite(out[i]))
            throw std::invalid_argument("subtract_class_thresholds: score " + std::to_string(i) +
                                        " minus its class threshold is not finite");
    }
    return out;
}

nlohmann::json loss_attack_exposure(const std::vector<float>& member_logits, const std::vector<int>& member_labels,
                                    const std::vector<float>& nonmember_logits,
                                    const std::vector<int>& nonmember_labels, int n_classes) {
    auto acc = [&](const std::vector<float>& z, const std::vector<int>& y) {
        int64_t right = 0;
        for (size_t i = 0; i < y.size(); i++) right += is_correct(z.data() + i * size_t(n_classes), n_classes, y[i]);
        return y.empty() ? 0.0 : double(right) / double(y.size());
    };
    std::vector<double> s = metric_scores(MetricAttack::loss, member_logits, n_classes, member_labels);
    const std::vector<double> sn = metric_scores(MetricAttack::loss, nonmember_logits, n_classes, nonmember_labels);
    s.insert(s.end(), sn.begin(), sn.end());
    std::vector<int> is_member(member_labels.size(), 1);
    is_member.resize(s.size(), 0);
    const double train_acc = acc(member_logits, member_labels), test_acc = acc(nonmember_logits, nonmember_labels);
    return {{"train_acc", train_acc},
            {"test_acc", test_acc},
            {"gap", train_acc - test_acc},
            {"loss_auc", roc_auc(s, is_member)},
            {"loss_tpr_at_1pct_fpr", tpr_at_fpr(roc_curve(s, is_member), 0.01)}};
}

}  // namespace mmia
