#!/usr/bin/env bash
# extract_sweep.sh: issue 11's sweep of bin/extract, Mamba against the
# transformer at matched sizes on the same tokens: preset pairs x corpora x
# training lengths, each over SEEDS (and prefix lengths up to 128 + 50 <= the
# 256-token context). Each configuration is its own run directory under
# ROOT, so an interrupted sweep resumes where it stopped and a finished one
# trains nothing. Then prints one Markdown table from every run's
# metrics.json ("pooled": counts summed over seeds, Wilson 95% intervals):
# per run and model, held-out loss, greedy extraction of training suffixes at
# the longest prefix, the same for held-out documents and for the documents
# repeated most often (a corpus built with --repeat-docs), the most-inserted
# canaries' exposure, and the best membership-inference AUC.
#
#   scripts/extract_sweep.sh                       # the whole grid (hours on 2 cores)
#   SIZES="s" CORPORA="prose code" SEEDS="1,2,3" scripts/extract_sweep.sh
#   SIZES="s" CORPORA="prose-400k-rep4" EPOCHS="3 6 12" SEEDS=42 scripts/extract_sweep.sh   # training length axis
#
# A corpus is a name under data/corpora (a missing one of the five named
# corpora is built with 2 canaries per insertion count) or a directory, e.g.
#   bin/corpus build --name prose --max-bytes 400000 --canaries 2 --repeat-docs 4 --out data/corpora/prose-400k-rep4
# EXTRA adds bin/extract flags (e.g. "--control --n-sequences 200").
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"s m l"}
CORPORA=${CORPORA:-"prose code legal dictionary man"}
SEEDS=${SEEDS:-"1,2,3"}
PREFIX=${PREFIX:-"8,16,32,64,128"}
EPOCHS=${EPOCHS:-0}
THREADS=${THREADS:-2}
ROOT=${ROOT:-runs/extract-sweep}
EXTRA=${EXTRA:-}
make -j2 bin/extract bin/corpus
dirs=()
for c in $CORPORA; do
  corpus=$c
  if [ ! -d "$corpus" ]; then
    corpus=data/corpora/$c
    test -f "$corpus/manifest.json" || bin/corpus build --name "$c" --canaries 2
  fi
  for size in $SIZES; do
    for e in $EPOCHS; do
      dir="$ROOT/$(basename "$corpus")-$size-e$e-seed$(printf '%s' "$SEEDS" | tr ',' '_')"
      echo "== $corpus mamba-lm-$size vs transformer-lm-$size, seeds $SEEDS, epochs $e -> $dir ($(date +%T))" >&2
      # shellcheck disable=SC2086
      bin/extract --corpus "$corpus" --presets "mamba-lm-$size,transformer-lm-$size" --seeds "$SEEDS" \
        --epochs "$e" --prefix-lengths "$PREFIX" --threads "$THREADS" --run-dir "$dir" $EXTRA >&2
      dirs+=("$dir")
    done
  done
done
python3 - "${dirs[@]}" <<'PY'
import json, sys

def rate(row):
    if row is None:
        return "n/a"
    lo, hi = row["memorized_ci95"]
    return "%d/%d [%.3f, %.3f]" % (row["memorized"], row["n"], lo, hi)

print("| run | model | held-out loss (nats/byte) | train, greedy, k max | held-out, greedy, k max "
      "| repeated docs, most copies | max-insertion exposure (bits) | best MIA AUC |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for d in sys.argv[1:]:
    m = json.load(open(d + "/metrics.json"))
    kmax = max(m["config"]["prefix_lengths"])
    for name, p in m["pooled"].items():
        pick = lambda split: next((r for r in p["prefix"] if r["split"] == split and r["k"] == kmax
                                   and r["decoding"] == "greedy"), None)
        rep = "n/a"
        by = [r for r in p.get("prefix_by_copies", []) if r["k"] == kmax and r["decoding"] == "greedy"]
        if by:
            top = max(by, key=lambda r: r["copies"])
            rep = "x%d: %s" % (top["copies"], rate(top))
        expo = "n/a"
        ins = p.get("exposure_by_insertions", {})
        if ins:
            most = max(ins, key=int)
            expo = "%.2f (x%s)" % (ins[most]["mean_exposure"]["mean"], most)
        best = p.get("best_mia_auc")
        print("| %s | %s | %.3f | %s | %s | %s | %s | %s |" % (
            d.split("/")[-1], name, p["mean_heldout_loss"], rate(pick("train")), rate(pick("heldout")), rep, expo,
            "%.3f" % best["mean"] if best else "n/a"))
PY
