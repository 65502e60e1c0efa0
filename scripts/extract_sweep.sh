#!/usr/bin/env bash
# extract_sweep.sh: issue 11's sweep of bin/extract, Mamba against the
# transformer at matched sizes on the same tokens: preset pairs x corpora x
# training lengths, each over SEEDS (and prefix lengths up to 128 + 50 <= the
# 256-token context). Each configuration is its own run directory under
# ROOT, so an interrupted sweep resumes where it stopped and a finished one
# trains nothing. Then `bin/extract --summarize` writes ROOT/summary/ from
# every run's metrics.json ("pooled": counts summed over seeds, Wilson 95%
# intervals) and the script prints its sweep.md: per run and model, held-out
# loss, greedy extraction of training suffixes at the longest prefix, the
# same for held-out documents, the --control model and the documents
# repeated most often (a corpus built with --repeat-docs), the most-inserted
# canaries' exposure, the best membership-inference AUC and the loss
# attack's TPR at 1% FPR; per Mamba/transformer pair, which fits better and
# which leaks more; plots of leakage against fit, size, epochs and corpus.
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
# The summary (attack/extract_sweep.h): sweep.md (the table, which model fits
# better and which leaks more per pair, the plots), sweep.csv, plots/*.svg.
bin/extract --summarize "$(IFS=,; printf '%s' "${dirs[*]}")" --run-dir "$ROOT/summary" >&2
cat "$ROOT/summary/sweep.md"
