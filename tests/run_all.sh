#!/usr/bin/env bash
# run_all.sh BIN...: runs each doctest binary from the project root and adds
# up their test cases; ends with the line "N passed, N failed, N skipped".
# Each binary's wall seconds and CPU seconds (user + system, its threads and
# the programs it runs) follow its name, and the slowest five are listed at
# the end, so a CI log says where the suite's time goes.
set -u
cd "$(dirname "$0")/.."
passed=0 failed=0 skipped=0 broken=()
# Failing outputs are kept and summarised again at the very end, so that a CI
# log that shows only its last lines still says what failed and why.
keep=$(mktemp -d)
times=$(mktemp)
trap 'rm -rf "$keep" "$times"' EXIT
tck=$(getconf CLK_TCK)
# This shell's waited-for children's CPU time in clock ticks (cutime + cstime,
# fields 16 and 17 of /proc/PID/stat).
children_ticks() { local st; read -r -a st </proc/$$/stat; echo $((st[15] + st[16])); }
for bin in "$@"; do
  t0=$(date +%s.%N) c0=$(children_ticks)
  out=$("$bin" 2>&1); rc=$?
  dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {print b - a}')
  cpu=$(awk -v c="$(($(children_ticks) - c0))" -v t="$tck" 'BEGIN {print c / t}')
  printf '%.1f %s\n' "$dt" "$bin" >>"$times"
  printf '== %s (%.1f s, %.1f s CPU)\n' "$bin" "$dt" "$cpu"
  if [ $rc -eq 0 ]; then
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
  if [ $rc -ne 0 ] || [ -z "$line" ]; then
    broken+=("$bin")
    echo "$out" >"$keep/${#broken[@]}.log"
    [ -z "$line" ] && failed=$((failed + 1))  # crashed before its summary
  fi
done
i=0
for bin in "${broken[@]+"${broken[@]}"}"; do
  i=$((i + 1))
  echo "== why $bin failed (its test cases, failed checks, sanitizer and crash lines; then its last lines)"
  grep -E 'TEST CASE:|ERROR:|FATAL|ERROR|SUMMARY:|runtime error|Sanitizer|signal|Segmentation|terminate' "$keep/$i.log" | head -n 40
  echo "-- last lines:"
  tail -n 12 "$keep/$i.log"
done
echo "slowest test binaries (wall s): $(sort -rn "$times" | head -n 5 | tr '\n' ' ')"
echo "all test binaries: $(awk '{s += $1} END {printf "%.0f", s}' "$times") s"
[ ${#broken[@]} -gt 0 ] && echo "failing binaries: ${broken[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ ${#broken[@]} -eq 0 ]
