// metric_attacks.h: attacks that threshold one number computed from the
// target's output (Yeom et al. 2018; Song & Mittal 2021). No attack model is
// trained: the threshold is chosen on shadow models' outputs, either one for
// all classes or one per class.
//
// Every score is oriented so that HIGHER = MORE LIKELY A MEMBER (models fit
// their training data: lower loss, higher confidence, lower entropy):
//   loss              -cross_entropy(z, y)
//   confidence        p_y, the true-class probability (Song & Mittal's choice;
//                     max_i p_i ignores the label and is weaker)
//   entropy           -prediction_entropy(z)
//   modified_entropy  -modified_entropy(z, y)
//   correctness       1 if the prediction is right, else 0 (Yeom et al.'s
//                     baseline; its ROC has a single interior point)
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mmia {

enum class MetricAttack { loss, confidence, entropy, modified_entropy, correctness };

// Every metric attack, in the order above.
const std::vector<MetricAttack>& all_metric_attacks();
// "loss", "confidence", "entropy", "modified_entropy", "correctness".
std::string metric_attack_name(MetricAttack a);
// The inverse; throws listing the known names.
MetricAttack metric_attack_from_name(const std::string& name);

// The attack's score for every row of logits (n rows of n_classes).
std::vector<double> metric_scores(MetricAttack a, const std::vector<float>& logits, int n_classes,
                                  const std::vector<int>& labels);

// Song & Mittal's class-dependent thresholds: select_threshold (metrics.h) on
// the shadow examples of each class. A class with no shadow members or no
// shadow non-members: with fallback == nullptr it throws naming the class;
// otherwise that class gets the global threshold (select_threshold on every
// shadow example) and is appended to *fallback (classes increasing).
std::vector<double> per_class_thresholds(const std::vector<double>& shadow_scores,
                                         const std::vector<int>& shadow_labels,
                                         const std::vector<int>& shadow_is_member, int n_classes,
                                         std::vector<int>* fallback = nullptr);

// The per-class attack as one score: scores[i] - thresholds[labels[i]], so
// "member iff shifted score >= 0" is the per-class rule, and AUC / TPR at low
// FPR rank examples by how far they clear their own class's threshold.
std::vector<double> subtract_class_thresholds(const std::vector<double>& scores, const std::vector<int>& labels,
                                              const std::vector<double>& thresholds);

// One model's exposure at one point of its training (bin/attack's
// vulnerability per epoch): its logits on its members and on its
// non-members (rows of n_classes, labels alongside). Returns
//   {"train_acc", "test_acc"}: the fraction of members / non-members whose
//                 argmax logit is the label (is_correct; ties: the first)
//   "gap":        train_acc - test_acc
//   "loss_auc":   roc_auc of the loss attack's score (-cross_entropy, higher
//                 = member), members the positive class
//   "loss_tpr_at_1pct_fpr": tpr_at_fpr(its ROC, 0.01)
// Needs at least one member and one non-member; throws what metric_scores
// and roc_curve throw on bad input.
nlohmann::json loss_attack_exposure(const std::vector<float>& member_logits, const std::vector<int>& member_labels,
                                    const std::vector<float>& nonmember_logits,
                                    const std::vector<int>& nonmember_labels, int n_classes);

}  // namespace mmia
