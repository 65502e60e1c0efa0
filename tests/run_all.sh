#!/usr/bin/env bash
# run_all.sh BIN...: runs each doctest binary from the project root and adds
# up their test cases; ends with the line "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/.."
passed=0 failed=0 skipped=0 broken=()
for bin in "$@"; do
  echo "== $bin"
  out=$("$bin" 2>&1); rc=$?
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
    [ -z "$line" ] && failed=$((failed + 1))  # crashed before its summary
  fi
done
[ ${#broken[@]} -gt 0 ] && echo "failing binaries: ${broken[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ ${#broken[@]} -eq 0 ]
