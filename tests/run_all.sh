#!/usr/bin/env bash
# run_all.sh BIN...: runs each doctest binary from the project root and adds
# up their test cases; ends with the line "N passed, N failed, N skipped".
#
# TEST_JOBS binaries run at once (default 2; TEST_JOBS=1 runs them one after
# another, in the order given). Most binaries use one core for much of their
# time (they start the CLIs, whose LibTorch start-up alone is a second, three
# under ASan), so on CI's 2 cores two at a time finish the suite sooner.
# Each binary's output is kept whole and printed when it ends, so lines never
# interleave. While more than one runs, OMP_WAIT_POLICY defaults to passive:
# OpenMP threads that spin while another binary needs the core slow both.
#
# Each binary's wall seconds and CPU seconds (user + system, its threads and
# the programs it runs) follow its name, and the slowest five are listed at
# the end, so a CI log says where the suite's time goes.
set -u
cd "$(dirname "$0")/.."
jobs_max=${TEST_JOBS:-2}
case $jobs_max in
  [1-9] | [1-9][0-9]) ;;
  *) echo "run_all.sh: TEST_JOBS='$jobs_max' is not a count in 1..99" >&2; exit 2 ;;
esac
[ "$jobs_max" -gt 1 ] && export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
passed=0 failed=0 skipped=0 reported=0 broken=()
# Failing outputs are kept and summarised again at the very end, so that a CI
# log that shows only its last lines still says what failed and why.
keep=$(mktemp -d)
trap 'rm -rf "$keep"' EXIT
tck=$(getconf CLK_TCK)
# A shell's waited-for children's CPU time in clock ticks (cutime + cstime,
# fields 16 and 17 of /proc/PID/stat).
children_ticks() { local st; read -r -a st </proc/"$1"/stat; echo $((st[15] + st[16])); }

# run_one I BIN, in a subshell of its own: BIN's output to $keep/I.out, and
# "exit-status wall-seconds CPU-seconds" to $keep/I.res.
run_one() {
  local i=$1 bin=$2 me=$BASHPID t0 c0 rc
  t0=$(date +%s.%N) c0=$(children_ticks "$me")
  "$bin" >"$keep/$i.out" 2>&1; rc=$?
  awk -v r="$rc" -v a="$t0" -v b="$(date +%s.%N)" -v c="$(($(children_ticks "$me") - c0))" -v t="$tck" \
    'BEGIN {printf "%d %.1f %.1f\n", r, b - a, c / t}' >"$keep/$i.res"
}

# report I: prints binary I's result and adds up its test cases.
report() {
  local i=$1 bin=${bins[$1]} rc dt cpu out s line p f
  read -r rc dt cpu <"$keep/$i.res"
  out=$(cat "$keep/$i.out")
  echo "$dt ${bin}" >>"$keep/times"
  reported=$((reported + 1))
  printf '== %s (%s s, %s s CPU)\n' "$bin" "$dt" "$cpu"
  if [ "$rc" -eq 0 ]; then
    echo "$out" | grep -v '^\[doctest\] doctest version' | tail -n 25
  else
    echo "$out"  # a failure: all of it, so a CI log explains itself
  fi
  # cli_skip's "SKIPPED: why" lines (only with MMIA_ALLOW_SKIPS=1; else they fail)
  s=$(echo "$out" | grep -c 'SKIPPED: ')
  skipped=$((skipped + s))
  [ "$s" -gt 0 ] && echo "$out" | grep 'SKIPPED: '
  line=$(echo "$out" | grep -E '^\[doctest\] test cases:' | tail -n 1)
  p=$(echo "$line" | sed -nE 's/.*\| *([0-9]+) passed.*/\1/p')
  f=$(echo "$line" | sed -nE 's/.*\| *([0-9]+) failed.*/\1/p')
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
  if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
    broken+=("$i")
    [ -z "$line" ] && failed=$((failed + 1))  # crashed before its summary
  fi
}

bins=("$@")
declare -A index_of=()  # pid of a running run_one -> its binary's index
t_start=$(date +%s)
finish_one() {
  local pid
  wait -n -p pid
  report "${index_of[$pid]}"
  unset "index_of[$pid]"
}
echo "running ${#bins[@]} test binaries, $jobs_max at a time"
for i in "${!bins[@]}"; do
  [ "${#index_of[@]}" -ge "$jobs_max" ] && finish_one
  run_one "$i" "${bins[$i]}" &
  index_of[$!]=$i
done
while [ "${#index_of[@]}" -gt 0 ]; do finish_one; done

for i in "${broken[@]+"${broken[@]}"}"; do
  echo "== why ${bins[$i]} failed (its test cases, failed checks, sanitizer and crash lines; then its last lines)"
  grep -E 'TEST CASE:|ERROR:|FATAL|ERROR|SUMMARY:|runtime error|Sanitizer|signal|Segmentation|terminate' "$keep/$i.out" | head -n 40
  echo "-- last lines:"
  tail -n 12 "$keep/$i.out"
done
touch "$keep/times"
echo "slowest test binaries (wall s): $(sort -rn "$keep/times" | head -n 5 | tr '\n' ' ')"
echo "all test binaries: $(awk '{s += $1} END {printf "%.0f", s}' "$keep/times") s one after another; $(($(date +%s) - t_start)) s of wall time, $jobs_max at a time"
if [ ${#broken[@]} -gt 0 ]; then
  names=()
  for i in "${broken[@]}"; do names+=("${bins[$i]}"); done
  echo "failing binaries: ${names[*]}"
fi
if [ "$reported" -ne "${#bins[@]}" ]; then  # never a green line for binaries that did not run
  echo "run_all.sh: $reported of ${#bins[@]} test binaries reported"
  failed=$((failed + ${#bins[@]} - reported))
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ ${#broken[@]} -eq 0 ] && [ "$reported" -eq "${#bins[@]}" ]
