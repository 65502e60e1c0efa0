#!/usr/bin/env bash
# lm_quality.sh [presets...] [corpora...]: the language models' quality table
# (BENCHMARKS.md, "Language models: quality"). Trains each preset on each
# corpus (bin/train --model KIND --preset P --corpus data/corpora/NAME),
# exports it, and prints one markdown row per run: parameters (total and
# non-embedding, from the checkpoint meta), training tokens and wall time,
# held-out bits per byte (the meta's final heldout_bpb), and a greedy sample
# from the engine (bin/bench_lm_check; prompt $PROMPT).
#
#   scripts/lm_quality.sh                                # mamba-lm-s transformer-lm-s on prose code
#   scripts/lm_quality.sh mamba-lm-m transformer-lm-m prose
#   MAX_BYTES=400000 scripts/lm_quality.sh ...           # capped corpora (see below)
#   PARITY=1 scripts/lm_quality.sh ...                   # also engine vs LibTorch (scripts/lm_parity.sh)
#
# Environment: THREADS (default nproc), EPOCHS (default: the preset's),
# PROMPT (default "The "), OUT (default build/quality), MAX_BYTES: when set,
# each corpus is rebuilt with `bin/corpus build --max-bytes MAX_BYTES` (same
# packages, seed and split rule, less source text) into
# $OUT/corpora/NAME-MAX_BYTES, so a run fits a time budget; the table names
# the corpus directory and its checksum either way.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-$(nproc)}
OUT=${OUT:-build/quality}
PROMPT=${PROMPT:-The }
PRESETS=()
CORPORA=()
for a in "$@"; do
  case "$a" in
    mamba-lm-*|transformer-lm-*) PRESETS+=("$a") ;;
    *) CORPORA+=("$a") ;;
  esac
done
[ ${#PRESETS[@]} -gt 0 ] || PRESETS=(mamba-lm-s transformer-lm-s)
[ ${#CORPORA[@]} -gt 0 ] || CORPORA=(prose code)
make -s -j2 bin/train bin/export bin/corpus bin/bench_lm_check
mkdir -p "$OUT"

kv() { sed -n "s/^$1 = //p" "$2" | head -1; }

echo "LM quality: ${PRESETS[*]} on ${CORPORA[*]}; $THREADS threads; $(date -u '+%Y-%m-%d %H:%M UTC');" \
  "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "${PARITY:-}" ]; then
  echo "| corpus | preset | params (non-emb) | train tokens | train s | held-out bpb | logits max diff (positions) | greedy identical (tokens) | Mamba step vs prefill | load |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
else
  echo "| corpus | preset | params (non-emb) | train tokens | train s | held-out bpb | greedy sample (engine, prompt \"$PROMPT\") | load |"
  echo "|---|---|---|---|---|---|---|---|"
fi
status=0
for C in "${CORPORA[@]}"; do
  DIR=data/corpora/$C
  if [ -n "${MAX_BYTES:-}" ]; then
    DIR=$OUT/corpora/$C-$MAX_BYTES
    [ -f "$DIR/manifest.json" ] || bin/corpus build --name "$C" --max-bytes "$MAX_BYTES" --out "$DIR" >"$OUT/corpus-$C.log"
  fi
  for P in "${PRESETS[@]}"; do
    KIND=${P%-*}
    CK=$OUT/${C}_$P.pt
    EP=()
    [ -z "${EPOCHS:-}" ] || EP=(--epochs "$EPOCHS")
    LOAD=$(cut -d' ' -f1 /proc/loadavg)
    rm -f "$CK"
    bin/train --model "$KIND" --preset "$P" --corpus "$DIR" --threads "$THREADS" "${EP[@]}" --output "$CK" \
      >"$OUT/train_${C}_$P.log"
    bin/export model --checkpoint "$CK" --output "$OUT/${C}_$P.bin" >/dev/null
    R=$OUT/check_${C}_$P.txt
    PA=()
    [ -z "${PARITY:-}" ] || PA=(--parity --corpus "$DIR")
    rc=0
    OMP_NUM_THREADS=$THREADS bin/bench_lm_check --checkpoint "$CK" --model "$OUT/${C}_$P.bin" --prompt "$PROMPT" \
      "${PA[@]}" >"$R" || rc=$?
    [ $rc -eq 0 ] || status=$rc
    ROW="| $DIR | $P | $(kv parameters "$R") ($(kv non_embedding_parameters "$R")) | $(kv train_tokens "$R") | $(kv train_seconds "$R") | $(kv heldout_bpb "$R")"
    if [ -n "${PARITY:-}" ]; then
      STEP=$(kv stepwise_vs_prefill_max_abs_diff "$R")
      echo "$ROW | $(kv logits_max_abs_diff "$R") ($(kv logits_positions "$R")) | $(kv greedy_identical "$R") ($(kv greedy_tokens "$R")) | ${STEP:-n/a} | $LOAD |"
    else
      echo "$ROW | \`$(kv sample "$R")\` | $LOAD |"
    fi
  done
done
exit $status
