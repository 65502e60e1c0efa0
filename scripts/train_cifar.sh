#!/usr/bin/env bash
# train_cifar.sh: issue 4's CIFAR-10 trainings. Each model trains on all
# 50,000 training images, with crop-flip augmentation, for the epochs that
# fit at most 30 minutes each on a 2-core machine (epoch times measured on this
# one: BENCHMARKS.md), is exported, and its engine's accuracy on the 10,000
# test images is checked against the trainer's.
#   bash scripts/train_cifar.sh [shokri] [mambaris-cnn] [mamba-cifar]
# (all three when none is named). SHOKRI_EPOCHS, MAMBARIS_EPOCHS and
# MAMBA_EPOCHS override the epochs; THREADS the threads. Re-running resumes
# an interrupted training and skips a finished one.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-$(nproc)}
make -s bin/train bin/export omp

train_one() {  # kind preset epochs engine
    local kind=$1 preset=$2 epochs=$3 engine=$4
    local ckpt=checkpoints/cifar10_${preset}_crop-flip_e${epochs}.pt model=cifar10_${preset}.bin
    echo "== $preset: $epochs epochs, crop-flip, $THREADS threads -> $ckpt"
    local t0=$SECONDS
    bin/train --model "$kind" --dataset cifar10 --preset "$preset" --epochs "$epochs" --augment crop-flip \
              --threads "$THREADS" --output "$ckpt"
    echo "$preset: bin/train took $((SECONDS - t0)) s"
    bin/export model --checkpoint "$ckpt" --output "$model"
    bash scripts/engine_accuracy.sh "$engine" "$model" cifar10 "$THREADS"
}

run() {
    case $1 in
        shokri)       train_one cnn shokri "${SHOKRI_EPOCHS:-30}" ./cnn ;;
        mambaris-cnn) train_one cnn mambaris-cnn "${MAMBARIS_EPOCHS:-45}" ./cnn ;;
        mamba-cifar)  train_one mamba mamba-cifar "${MAMBA_EPOCHS:-9}" ./mamba ;;
        *) echo "error: unknown model \"$1\" (known: shokri, mambaris-cnn, mamba-cifar)" >&2; exit 2 ;;
    esac
}

if [ $# -eq 0 ]; then set -- shokri mambaris-cnn mamba-cifar; fi
for m in "$@"; do run "$m"; done
