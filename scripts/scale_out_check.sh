#!/usr/bin/env bash
# scale_out_check.sh: one small LiRA run (MNIST, --shadow 16, both kinds: 34
# models) made three ways, every result compared bit for bit
# (docs/ATTACKS.md, "From one machine to a cluster"):
#   seq       bin/attack, 1 slot x 1 thread
#   parallel  bin/attack --plan --emit parallel --slots 2, then run_parallel.sh:
#             GNU parallel, 2 slots x 1 thread, then the attack
#   slurm     --emit slurm --slots 2 on scripts/slurm_local.sh's single-node
#             cluster: the array (%2), then the afterok attack
# and, for the speedup only (another thread count trains other CNN bits):
#   seq2      bin/attack --threads 2, 1 slot x 2 threads
# Every packed model (models/*/*.bin), engine output (outputs/), score file
# (scores/) and metrics.json (less "seconds", "trained_now", "cached") of
# parallel and slurm must equal seq's. Wall times of each leg, and of the
# training phase (the leg less its attack step's own total), are printed.
# Everything runs under `nice -n $NICE` (default 10; Slurm's daemons too, when
# this script starts them). Exit 0 when every comparison holds.
#
#   scripts/scale_out_check.sh [OUT]   (OUT default /tmp/mmia-scale-out; DS, EPOCHS, POP override)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/mmia-scale-out}
NICE=${NICE:-10}
ARGS=(--protocol lira --shadow 16 --ds "${DS:-300}" --epochs "${EPOCHS:-2}" --seed 11 --rmia-population "${POP:-300}")
N="nice -n $NICE"
rm -rf "$OUT" && mkdir -p "$OUT" || exit 1
fail=0
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.1f}')"; }
attack_secs() { python3 -c "import json,sys; print(f\"{json.load(open(sys.argv[1]))['seconds']['total']:.1f}\")" "$1/metrics.json"; }
train_secs() { python3 -c "import json,sys; print(f\"{json.load(open(sys.argv[1]))['seconds']['training']:.1f}\")" "$1/metrics.json"; }
say() { echo "$*" | tee -a "$OUT/summary.txt"; }

say "scale_out_check: bin/attack ${ARGS[*]} (nice -n $NICE); $(nproc) cores; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# Compares run dir $1 with seq: prints one line, sets fail.
compare() {
    local d=$1 n=0 bad=0 f
    while IFS= read -r f; do
        n=$((n + 1))
        cmp -s "$OUT/seq/$f" "$d/$f" || { bad=$((bad + 1)); echo "  differs: $f"; }
    done < <(cd "$OUT/seq" && find models outputs scores -type f \( -name '*.bin' -o -name '*.npy' -o -name '*.csv' \) | sort)
    local m
    m=$(python3 - "$OUT/seq/metrics.json" "$d/metrics.json" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for m in (a, b):
    for k in ("seconds", "trained_now", "cached"): m.pop(k, None)
print("equal" if a == b else "DIFFERENT")
EOF
)
    say "  $(basename "$d"): $n files (every .bin, .npy, .csv) compared with seq: $((n - bad)) identical, $bad different; metrics.json (less seconds, trained_now, cached): $m"
    [ "$bad" = 0 ] && [ "$m" = equal ] || fail=1
}

# 1. sequential, 1 thread
t0=$(now)
$N bin/attack "${ARGS[@]}" --threads 1 --run-dir "$OUT/seq" > "$OUT/seq.log" 2>&1 || { say "seq: failed (see $OUT/seq.log)"; exit 1; }
t1=$(now)
say "seq      (1 slot x 1 thread):  $(secs "$t0" "$t1") s: training $(train_secs "$OUT/seq") s (in-process), total $(attack_secs "$OUT/seq") s by its metrics.json"

# 2. GNU parallel, 2 slots x 1 thread
$N bin/attack "${ARGS[@]}" --threads 1 --run-dir "$OUT/parallel" --plan --emit parallel --slots 2 > "$OUT/parallel.plan.log" 2>&1 ||
    { say "parallel: --plan failed (see $OUT/parallel.plan.log)"; exit 1; }
t0=$(now)
$N "$OUT/parallel/run_parallel.sh" > "$OUT/parallel.log" 2>&1 || { say "parallel: failed (see $OUT/parallel.log)"; fail=1; }
t1=$(now)
total=$(secs "$t0" "$t1"); a=$(attack_secs "$OUT/parallel")
say "parallel (2 slots x 1 thread): $total s: 34 jobs $(secs "$a" "$total") s, then the attack step $a s ($(($(wc -l < "$OUT/parallel/joblog") - 1)) jobs in the joblog)"
compare "$OUT/parallel"

# 3. Slurm array on the local single-node cluster
was_up=0
scripts/slurm_local.sh status > /dev/null 2>&1 && was_up=1
if $N scripts/slurm_local.sh start > "$OUT/slurm.start.log" 2>&1; then
    export SLURM_CONF=${MMIA_SLURM_DIR:-/tmp/mmia-slurm}/slurm.conf
    $N bin/attack "${ARGS[@]}" --threads 1 --run-dir "$OUT/slurm" --plan --emit slurm --slots 2 > "$OUT/slurm.plan.log" 2>&1 ||
        { say "slurm: --plan failed"; exit 1; }
    t0=$(now)
    sub=$("$OUT/slurm/submit.sh" 2>&1) || say "slurm: submit.sh failed: $sub"
    id=$(sed -n 's/.*, attack \([0-9]*\) .*/\1/p' <<< "$sub")
    state=?
    while [ -n "$id" ]; do
        info=$(scontrol -o show job "$id" 2>&1)
        state=$(sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' <<< "$info")
        case "$info" in *DependencyNeverSatisfied*) state="$state (DependencyNeverSatisfied)"; break ;; esac
        case "$state" in PENDING|RUNNING|CONFIGURING|COMPLETING|"") sleep 0.25 ;; *) break ;; esac
    done
    t1=$(now)
    [ "$was_up" = 1 ] || scripts/slurm_local.sh stop
    if [ "$state" = COMPLETED ]; then
        total=$(secs "$t0" "$t1"); a=$(attack_secs "$OUT/slurm")
        say "slurm    (array %2, 1 CPU a task): $total s: $sub; attack job $state"
        compare "$OUT/slurm"
    else
        say "slurm: the attack job ended $state (logs in $OUT/slurm/slurm/)"
        fail=1
    fi
else
    [ "$was_up" = 1 ] || scripts/slurm_local.sh stop
    say "slurm: SKIPPED: $(head -1 "$OUT/slurm.start.log")"
    fail=1
fi

# 4. 1 slot x 2 threads (the speedup's other side; other CNN bits, not compared)
t0=$(now)
$N bin/attack "${ARGS[@]}" --threads 2 --run-dir "$OUT/seq2" > "$OUT/seq2.log" 2>&1 || { say "seq2: failed"; fail=1; }
t1=$(now)
total=$(secs "$t0" "$t1"); a=$(attack_secs "$OUT/seq2")
say "seq2     (1 slot x 2 threads): $total s: training $(train_secs "$OUT/seq2") s (in-process), total $a s by its metrics.json"
say "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$fail" = 0 ] && say "scale_out_check: OK (parallel and slurm bit-identical to seq)" || say "scale_out_check: FAILED"
exit "$fail"
