#!/usr/bin/env bash
# bench.sh: speed benchmarks (`make bench`). Every ratio is against a baseline
# measured in the same run with the same thread count. Output is also saved
# to bench/results.txt, which BENCHMARKS.md quotes.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-$(nproc)}
# The baselines (LibTorch, OpenBLAS) run at their best on this CPU: some
# machines set OPENBLAS_CORETYPE (e.g. Haswell) and OPENBLAS_L2_SIZE, which
# hold OpenBLAS to AVX2 kernels. BASELINE unsets them for the benchmark
# programs only (the engines never link OpenBLAS, so only the baselines
# see the difference); tests and CI keep the environment they are given.
BASELINE=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
make -s fast
make -s -j2 bin/train bin/export bin/bench_engine bin/bench_scan bin/bench_train bin/bench_lm bin/bench_lm_torch

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

# The CNN presets on CIFAR-10: their trained checkpoints if there are any,
# else quick ones (again, speed does not depend on the weights).
make -s -j2 bin/bench_cnn
CNN_PRESETS="shokri mambaris-cnn"
for P in $CNN_PRESETS; do
  C=checkpoints/cifar10_$P.pt
  if [ ! -f "$C" ]; then
    C=build/bench/cifar10_${P}_quick.pt
    bin/train --model cnn --preset "$P" --dataset cifar10 --epochs 1 --limit-train 2048 --threads "$THREADS" \
      --output "$C" >/dev/null
  fi
  bin/export model --checkpoint "$C" --output "build/bench/cnn_$P.bin" >/dev/null
done

{
  echo "mamba-mia benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "checkpoint: $CKPT"
  echo "load before the run: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min); environment OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, unset for the baselines"
  echo
  echo "== engine vs LibTorch (bin/bench_engine --threads $THREADS)"
  OMP_NUM_THREADS=$THREADS "${BASELINE[@]}" bin/bench_engine --checkpoint "$CKPT" --model build/bench/model.bin \
    --input build/bench/input.bin --threads "$THREADS"
  echo
  echo "== language models: ms per generated token against context length (bin/bench_lm --threads $THREADS)"
  bin/bench_lm --threads "$THREADS" --svg bench/lm_context.svg
  echo
  echo "== language models: engine vs LibTorch on the same weights, training tokens/s per preset (bin/bench_lm_torch --threads $THREADS)"
  echo "load now: $(cut -d' ' -f1-3 /proc/loadavg)"
  OMP_NUM_THREADS=$THREADS "${BASELINE[@]}" bin/bench_lm_torch --threads "$THREADS"
  echo
  echo "== fused selective scan vs the LibTorch loop (bin/bench_scan --threads $THREADS)"
  "${BASELINE[@]}" bin/bench_scan --threads "$THREADS"
  echo
  echo "== training step of the MNIST presets, fused scan vs the loop (bin/bench_train --threads $THREADS)"
  "${BASELINE[@]}" bin/bench_train --threads "$THREADS"
  for P in $CNN_PRESETS; do
    echo
    echo "== CNN engine vs LibTorch on CIFAR-10, GEMM vs OpenBLAS (bin/bench_cnn --threads $THREADS, $P)"
    C=checkpoints/cifar10_$P.pt
    [ -f "$C" ] || C=build/bench/cifar10_${P}_quick.pt
    OMP_NUM_THREADS=$THREADS "${BASELINE[@]}" bin/bench_cnn --checkpoint "$C" --model "build/bench/cnn_$P.bin" --threads "$THREADS"
  done
  echo
  echo "== Hugging Face imports at real shapes: import peak RSS, open time, decode tokens/s against the bandwidth bound (scripts/hf_bench.sh, 1 thread)"
  bash scripts/hf_bench.sh build/bench/hf 1
} 2>&1 | tee bench/results.txt
