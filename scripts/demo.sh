#!/usr/bin/env bash
# demo.sh: the main job on MNIST (run by `make demo`, after `make setup`):
# train the default Mamba, export it and a test image, run the mmap'd engine,
# check the engine's accuracy on all 10,000 test images, then the membership
# inference run (bin/attack --shadow 10: Mamba vs CNN) and where its report is.
# Re-running resumes or reuses every trained checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-$(nproc)}
PRESET=${PRESET:-mamba-mnist}
CKPT=checkpoints/mnist_${PRESET}.pt

make -s bin/train bin/export bin/attack
make -s omp

echo "== train ($PRESET, $THREADS threads)"
bin/train --model mamba --dataset mnist --preset "$PRESET" --threads "$THREADS" --output "$CKPT"

echo "== export"
bin/export model --checkpoint "$CKPT" --output mnist_mamba.bin
bin/export image --dataset mnist --index 0 --output input.bin

echo "== ./mamba mnist_mamba.bin input.bin"
./mamba mnist_mamba.bin input.bin

echo "== engine accuracy on the 10,000 MNIST test images"
bash scripts/engine_accuracy.sh ./mamba mnist_mamba.bin mnist "$THREADS"

echo "== membership inference, Mamba vs CNN (bin/attack --shadow 10)"
bin/attack --shadow 10 --threads "$THREADS"
