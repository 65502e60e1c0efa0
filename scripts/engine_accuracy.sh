#!/usr/bin/env bash
# engine_accuracy.sh ENGINE MODEL.bin DATASET [THREADS]: the mmap'd engine's
# (./mamba or ./cnn) accuracy on the dataset's whole test split, printed as
# "engine test accuracy: 0.9858 (9858/10000)". Run from the project root
# after `make omp bin/export`; the exported test images stay in runs/.
set -euo pipefail
engine=$1 model=$2 dataset=$3 threads=${4:-$(nproc)}
mkdir -p runs
images=runs/${dataset}_test.bin labels=runs/${dataset}_test_labels.txt
[ -s "$images" ] && [ -s "$labels" ] ||
  bin/export image --dataset "$dataset" --index 0 --count 0 --output "$images" --labels "$labels" >/dev/null
pred=$(mktemp)
trap 'rm -f "$pred"' EXIT
"$engine" "$model" "$images" --quiet --threads "$threads" > "$pred"
paste -d' ' "$pred" "$labels" |
  awk '{n++; if ($1 == $2) c++} END {printf "engine test accuracy: %.4f (%d/%d)\n", c/n, c, n}'
