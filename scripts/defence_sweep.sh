#!/usr/bin/env bash
# defence_sweep.sh: issue 14's comparison of defences, Mamba against CNN on
# the same members and non-members (bin/attack --defence, docs/PRIVACY.md).
# Each setting is its own run directory (the defence is in its name), so an
# interrupted sweep resumes and a finished one trains nothing. Prints one
# Markdown table (from each run's metrics.json): per setting and model kind,
# test accuracy, the generalisation gap, the strongest attack by AUC with its
# AUC, TPR at 0.1% FPR and epsilon lower bound, and DP's planned epsilon;
# writes $ROOT/privacy_utility.svg, every setting's points in one plot.
#
#   scripts/defence_sweep.sh                                  # MNIST, the settings below
#   DS=500 SHADOWS=4 TARGETS=1 EPOCHS=3 scripts/defence_sweep.sh
#   SETTINGS="none l2=0.05 dp:eps=8 label-only" DATASET=mnist scripts/defence_sweep.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET=${DATASET:-mnist}
# l2=10: AdamW decay strong enough to act in the default 3 epochs (0.05 and
# 0.5 left every accuracy unchanged at this scale; BENCHMARKS.md).
SETTINGS=${SETTINGS:-"none l2=10 dp:eps=8 label-only"}
DS=${DS:-500}
SHADOWS=${SHADOWS:-4}
TARGETS=${TARGETS:-1}
EPOCHS=${EPOCHS:-3}
SEED=${SEED:-42}
THREADS=${THREADS:-2}
ROOT=${ROOT:-runs/defence-sweep}
EXTRA=${EXTRA:-}
test -x bin/attack || make -j2 bin/attack
dirs=()
for s in $SETTINGS; do
  dir="$ROOT/$DATASET-ds$DS-s$SHADOWS-t$TARGETS-e$EPOCHS-seed$SEED-$(printf '%s' "$s" | tr ':=,' '__+')"
  echo "== --defence $s -> $dir ($(date +%T))" >&2
  bin/attack --model both --dataset "$DATASET" --ds "$DS" --shadow "$SHADOWS" --targets "$TARGETS" \
    --epochs "$EPOCHS" --seed "$SEED" --threads "$THREADS" --defence "$s" --run-dir "$dir" $EXTRA >&2
  dirs+=("$dir")
done
froms=()
for d in "${dirs[@]}"; do froms+=(--from-run "$d"); done
bin/attack --privacy-utility-plot "$ROOT/privacy_utility.svg" "${froms[@]}" >&2
python3 - "${dirs[@]}" <<'PY'
import json, sys
print("| setting | model | test acc | gap | strongest attack (AUC) | AUC | TPR@0.1%FPR | ε lower bound | DP ε (planned) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for d in sys.argv[1:]:
    m = json.load(open(d + "/metrics.json"))
    spec = m["config"].get("defence", {}).get("spec", "none")
    for kind, r in m["models"].items():
        s = r["summary"]
        atk = {a: v for a, v in s["attacks"].items() if a != "seed000_on_target" and "auc" in v}
        best = max(atk, key=lambda a: atk[a]["auc"]["mean"])
        b = atk[best]
        eps = m["config"].get("defence", {}).get("privacy", {}).get(kind, {}).get("epsilon", "-")
        eps = "%.3g" % eps if isinstance(eps, (int, float)) else eps
        print("| %s | %s | %.4f | %.4f | %s | %.3f | %.3f | %s | %s |" % (
            spec, kind, s["test_acc"]["mean"], s["gap"]["mean"], best, b["auc"]["mean"],
            b["tpr_at_01pct_fpr"]["mean"],
            "%.3f" % b["epsilon_lower_bound"]["mean"] if "epsilon_lower_bound" in b else "n/a", eps))
PY
