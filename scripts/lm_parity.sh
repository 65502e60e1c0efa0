#!/usr/bin/env bash
# lm_parity.sh [presets...] [corpus]: the larger LM presets' parity, the check
# tests/test_lm_parity.cpp makes on the small ones in `make test`: each preset
# is trained briefly on a capped corpus (MAX_BYTES of source text, default
# 1500000: one epoch of a few hundred steps at batch 16 x 256), exported, and
# bin/bench_lm_check --parity compares the engine with LibTorch on held-out
# text: max |logit diff| at every position of a 512-token text (the
# transformer: its context, 256), greedy generation of 256 tokens
# token-identical (the transformer: context - 32 prompt tokens), and for
# Mamba prefill vs one token at a time. Exit non-zero when a check fails.
#
#   scripts/lm_parity.sh                                   # mamba-lm-m transformer-lm-m on prose
#   scripts/lm_parity.sh mamba-lm-l transformer-lm-l       # the large pair
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- mamba-lm-m transformer-lm-m prose
case " $* " in *" prose "*|*" code "*|*" legal "*|*" dictionary "*|*" man "*) ;; *) set -- "$@" prose ;; esac
MAX_BYTES=${MAX_BYTES:-1500000} OUT=${OUT:-build/parity} PARITY=1 exec bash scripts/lm_quality.sh "$@"
