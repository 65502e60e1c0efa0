#!/usr/bin/env bash
# bench.sh: speed benchmarks (`make bench`). Every ratio is against a baseline
# measured in the same run with the same thread count. Output is also saved
# to bench/results.txt, which BENCHMARKS.md quotes.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-$(nproc)}
make -s fast
make -s -j2 bin/train bin/export bin/bench_engine bin/bench_scan bin/bench_train

# The demo's checkpoint if there is one; else a quick one (speed does not
# depend on how well the weights are trained).
CKPT=checkpoints/mnist_mamba-mnist.pt
if [ ! -f "$CKPT" ]; then
  CKPT=build/bench/mnist_mamba_quick.pt
  bin/train --dataset mnist --epochs 1 --limit-train 2048 --threads "$THREADS" --output "$CKPT" >/dev/null
fi
mkdir -p build/bench bench
bin/export model --checkpoint "$CKPT" --output build/bench/model.bin >/dev/null
bin/export image --dataset mnist --index 0 --output build/bench/input.bin >/dev/null

{
  echo "mamba-mia benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "checkpoint: $CKPT"
  echo
  echo "== engine vs LibTorch (bin/bench_engine --threads $THREADS)"
  OMP_NUM_THREADS=$THREADS bin/bench_engine --checkpoint "$CKPT" --model build/bench/model.bin \
    --input build/bench/input.bin --threads "$THREADS"
  echo
  echo "== fused selective scan vs the LibTorch loop (bin/bench_scan --threads $THREADS)"
  bin/bench_scan --threads "$THREADS"
  echo
  echo "== training step of the MNIST presets, fused scan vs the loop (bin/bench_train --threads $THREADS)"
  bin/bench_train --threads "$THREADS"
} 2>&1 | tee bench/results.txt
