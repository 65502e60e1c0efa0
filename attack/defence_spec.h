// defence_spec.h: the SPEC of bin/attack --defence (attack/defence.h has the
// rest: applying the defences, their JSON and privacy): the Defences record,
// its parser and its canonical forms. Plain C++ (no LibTorch, no JSON), so
// fuzz/fuzz_defence_spec.cpp builds it alone.
//
// Grammar (a comma list; --defence may be repeated, the lists are joined):
//   SPEC   := ITEM (',' ITEM)*
//   ITEM   := 'none'
//           | 'dp:' DPARAM (',' DPARAM)*      DP-SGD (bin/train --dp-*)
//           | 'l2=' WD                        AdamW weight decay, [0, 10]
//           | 'label-smoothing=' EPS          [0, 0.99]
//           | 'early-stopping=' PATIENCE      epochs, [1, 1000]
//           | 'dropout=' P                    [0, 0.99]
//           | 'augment'                       digits: shifts <= 2 px; CIFAR-10: and mirror
//           | 'top-k=' K                      release the K largest probabilities, [1, classes - 1]
//           | 'round=' D                      release probabilities rounded to D decimals, [1, 15]
//           | 'label-only'                    release the one-hot of the argmax
//   DPARAM := 'sigma=' S | 'eps=' E            exactly one of these two
//           | 'C=' C | 'delta=' D | 'q=' Q     defaults 1, 1e-5, batch / ds
// A DPARAM after 'dp:...' belongs to it, so "dp:sigma=1.1,C=1,l2=5e-4" is DP
// with C = 1, then L2. Each item at most once; 'none' alone.
#pragma once

#include <string>
#include <vector>

namespace mmia {

struct Defences {
    // Training defences.
    bool dp = false;
    double dp_sigma = 0;    // the noise multiplier, or (dp_epsilon > 0) found by the accountant
    double dp_epsilon = 0;  // > 0: the target epsilon
    double dp_clip = 1.0;   // C
    double dp_delta = 1e-5;
    double dp_q = 0;        // 0: batch size / ds
    double l2 = -1;         // >= 0: the weight decay (else the preset's)
    double label_smoothing = 0;
    int early_stopping = 0;  // patience in epochs; 0 = off
    double dropout = 0;
    bool augment = false;
    // Output defences, applied in this order.
    int top_k = 0;           // 0 = off
    int round_decimals = 0;  // 0 = off
    bool label_only = false;
    // pg1647's mitigation: only the targets defended (shokri protocol only).
    bool target_only = false;

    bool training() const;
    bool output() const;
    bool any() const { return training() || output(); }
};

// Parses the --defence values (each a SPEC). Throws std::runtime_error with
// "--defence: <why>" naming the offending item.
Defences parse_defences(const std::vector<std::string>& specs);

// The canonical SPEC ("none" when there is no defence), e.g.
// "dp:eps=8,C=1,delta=1e-05,l2=0.0005,top-k=3"; what the report prints.
std::string defence_spec(const Defences& d);

// The same for a directory name: only [A-Za-z0-9.+-] ("dp-eps-8-C-1-delta-1e-05+l2-0.0005+top-k-3"),
// with "+target-only" appended for the contrast.
std::string defence_slug(const Defences& d);

}  // namespace mmia
