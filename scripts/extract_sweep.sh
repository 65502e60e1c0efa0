#!/usr/bin/env bash
# extract_sweep.sh: issue 11's sweep of bin/extract, Mamba against the
# transformer at matched sizes: preset pairs x corpora x seeds (and prefix
# lengths up to 128 + 50 <= the 256-token context). Each configuration is
# its own run directory (runs/extract-...), so an interrupted sweep resumes
# where it stopped and a finished one trains nothing.
#
#   scripts/extract_sweep.sh                       # the whole grid (hours on 2 cores)
#   SIZES="s" CORPORA="prose code" SEEDS="1,2,3" scripts/extract_sweep.sh
#   EPOCHS=4 scripts/extract_sweep.sh              # training length axis: one sweep per EPOCHS value
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"s m l"}
CORPORA=${CORPORA:-"prose code legal dictionary man"}
SEEDS=${SEEDS:-"1,2,3"}
PREFIX=${PREFIX:-"8,16,32,64,128"}
EPOCHS=${EPOCHS:-0}
EXTRA=${EXTRA:-}
make -j2 bin/extract bin/corpus
for corpus in $CORPORA; do
  test -f "data/corpora/$corpus/manifest.json" || bin/corpus build --name "$corpus" --canaries 2
  for size in $SIZES; do
    echo "== $corpus mamba-lm-$size vs transformer-lm-$size seeds $SEEDS epochs $EPOCHS ($(date +%T))"
    bin/extract --corpus "$corpus" --presets "mamba-lm-$size,transformer-lm-$size" --seeds "$SEEDS" \
      --epochs "$EPOCHS" --prefix-lengths "$PREFIX" $EXTRA
  done
done
