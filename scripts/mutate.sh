#!/usr/bin/env bash
# mutate.sh [LIST...]: a one-line mutation pass. Debian has no mutation tool
# for C++, so this applies hand-written mutations one at a time, rebuilds the
# test binaries that should notice, runs them, and restores the file.
#
# LIST defaults to tests/mutations/*.txt. One mutation per line, `#` starts a
# comment line, blank lines are skipped:
#
#   path|exact original substring|replacement|target[,target...][|doctest options]
#
#   path         a file, relative to the project root
#   original     a literal substring (not a regex) that must occur exactly once
#                in the file, else the line is reported BAD and nothing is run
#   replacement  literal text put in its place (may be empty)
#   targets      make targets; each `test_x` or `build/tests/test_x` is built
#                and run, anything else (bin/attack, mamba, cnn) is only built
#                (name the programs a test runs, since the test binaries do
#                not depend on them)
#   options      optional: passed to every test binary of the line, e.g.
#                -tc="lira*" to run only the relevant test cases
#
# A literal `|` inside a field is written `\|`.
#
# Verdicts: CAUGHT (a named test failed or timed out), SURVIVED (all passed),
# BAD (the substring is missing or not unique), NOBUILD (the mutant does not
# compile: a useless mutation, fix the line). Before the mutations, each
# distinct set of targets is built and run once unmutated; a set that fails
# there marks its lines BASELINE-FAIL instead of counting them as caught
# (MUTATE_NO_BASELINE=1 skips this). The file is restored after every
# mutation, also on Ctrl-C or an error (trap); the restored file is newer than
# the mutant's objects, so the next make rebuilds them, and this script does so
# for the targets it touched before it exits normally.
#
# Environment: MUTATE_TIMEOUT (seconds per test binary, default 900),
# MUTATE_JOBS (make -j, default 2), MUTATE_LOG (log folder, default
# build/mutate). Exit status 0 when every mutation was caught.
set -u
cd "$(dirname "$0")/.."

TIMEOUT=${MUTATE_TIMEOUT:-900}
JOBS=${MUTATE_JOBS:-2}
LOG=${MUTATE_LOG:-build/mutate}
mkdir -p "$LOG"

lists=("$@")
if [ ${#lists[@]} -eq 0 ]; then
  lists=(tests/mutations/*.txt)
fi
for l in "${lists[@]}"; do
  [ -f "$l" ] || { echo "error: mutate.sh: $l: no such mutation list" >&2; exit 2; }
done

# --- restore on any exit -----------------------------------------------------
BACKUP=""      # the original content of the file now mutated, if any
MUTATED=""     # that file's path
MUTATED_NOW="the file"
CHILD=""       # the build or test running now (its own process group)
# run_child CMD...: runs CMD in its own process group and waits, so that an
# interrupt can stop the whole build before the file is restored (a compiler
# left running would write a mutant object newer than the restored source).
run_child() {
  setsid "$@" & CHILD=$!
  wait "$CHILD"; local rc=$?
  CHILD=""
  return $rc
}
stop_child() {
  if [ -n "$CHILD" ]; then
    kill -TERM -- "-$CHILD" 2>/dev/null
    wait "$CHILD" 2>/dev/null
    CHILD=""
  fi
}
restore() {
  if [ -n "$MUTATED" ] && [ -n "$BACKUP" ] && [ -f "$BACKUP" ]; then
    # Copy content (not mv): the file gets a new mtime, newer than the
    # mutant's objects, so make rebuilds them from the original.
    MUTATED_NOW=$MUTATED
    cat "$BACKUP" > "$MUTATED" && rm -f "$BACKUP"
    MUTATED=""
  fi
}
trap 'restore' EXIT
exec 3>&2  # the terminal's stderr, for the trap (it may run inside a redirection)
trap 'stop_child; restore; echo "interrupted: $MUTATED_NOW restored" >&3; exit 130' INT TERM HUP

SEP=$'\x01'
# split_line LINE: sets the array F to the |-separated fields, `\|` kept as |.
split_line() {
  local s=${1//\\|/$SEP}
  IFS='|' read -r -a F <<< "$s"
  local i
  for i in "${!F[@]}"; do F[$i]=${F[$i]//$SEP/|}; done
}

# targets_of "a,b": prints the make targets, one per line.
targets_of() {
  local t
  IFS=',' read -r -a T <<< "$1"
  for t in "${T[@]}"; do
    t=${t// /}
    [ -z "$t" ] && continue
    case $t in
      test_*) echo "build/tests/$t" ;;
      *) echo "$t" ;;
    esac
  done
}

# build_and_run TARGETS OPTIONS LOGFILE: 0 all passed, 1 a test failed,
# 2 the build failed.
build_and_run() {
  local targets=$1 opts=$2 logf=$3 t rc
  # shellcheck disable=SC2086
  if ! run_child make -j"$JOBS" --no-print-directory $targets > "$logf" 2>&1; then
    return 2
  fi
  for t in $targets; do
    case $t in
      build/tests/test_*)
        # shellcheck disable=SC2086
        eval "run_child timeout $TIMEOUT $t $opts" >> "$logf" 2>&1; rc=$?
        if [ $rc -ne 0 ]; then
          [ $rc -eq 124 ] && echo "(timed out after ${TIMEOUT}s)" >> "$logf"
          return 1
        fi ;;
    esac
  done
  return 0
}

# --- read every mutation -------------------------------------------------------
entries=()   # "list:lineno" of each mutation, with fields in parallel arrays
M_PATH=() M_ORIG=() M_REPL=() M_TARGETS=() M_OPTS=()
for l in "${lists[@]}"; do
  n=0
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    case $line in ''|'#'*) continue ;; esac
    [[ $line =~ ^[[:space:]]*$ ]] && continue
    split_line "$line"
    if [ ${#F[@]} -lt 4 ] || [ ${#F[@]} -gt 5 ]; then
      echo "BAD       $l:$n: needs path|original|replacement|targets[|options], got ${#F[@]} fields"
      entries+=("BAD:$l:$n"); M_PATH+=(""); M_ORIG+=(""); M_REPL+=(""); M_TARGETS+=(""); M_OPTS+=("")
      continue
    fi
    entries+=("$l:$n")
    M_PATH+=("${F[0]}"); M_ORIG+=("${F[1]}"); M_REPL+=("${F[2]}")
    M_TARGETS+=("$(targets_of "${F[3]}" | tr '\n' ' ')"); M_OPTS+=("${F[4]:-}")
  done < "$l"
done

# --- baselines: each distinct (targets, options) unmutated ---------------------
declare -A BASE
if [ "${MUTATE_NO_BASELINE:-0}" != 1 ]; then
  for i in "${!entries[@]}"; do
    case ${entries[$i]} in BAD:*) continue ;; esac
    key="${M_TARGETS[$i]}|${M_OPTS[$i]}"
    [ -n "${BASE[$key]+x}" ] && continue
    logf="$LOG/baseline_$(echo "$key" | md5sum | cut -c1-8).log"
    build_and_run "${M_TARGETS[$i]}" "${M_OPTS[$i]}" "$logf"; rc=$?
    BASE[$key]=$rc
    if [ $rc -eq 0 ]; then
      echo "baseline  ok    ${M_TARGETS[$i]}${M_OPTS[$i]:+ ${M_OPTS[$i]}}"
    else
      echo "baseline  FAIL  ${M_TARGETS[$i]}${M_OPTS[$i]:+ ${M_OPTS[$i]}} (see $logf)"
    fi
  done
fi

# --- the mutations ------------------------------------------------------------
caught=0 survived=0 bad=0 nobuild=0 basefail=0
survivors=()
all_targets=""
count_of() {  # count_of FILE SUBSTRING: literal occurrences
  local content rest
  content=$(cat "$1"; printf x); content=${content%x}
  rest=${content//"$2"/}
  echo $(( (${#content} - ${#rest}) / ${#2} ))
}
for i in "${!entries[@]}"; do
  e=${entries[$i]}
  case $e in BAD:*) bad=$((bad + 1)); continue ;; esac
  p=${M_PATH[$i]} o=${M_ORIG[$i]} r=${M_REPL[$i]} tg=${M_TARGETS[$i]} op=${M_OPTS[$i]}
  desc="$p: '$o' -> '$r'"
  if [ ! -f "$p" ] || [ -z "$o" ]; then
    echo "BAD       $e: $p: no such file or empty original"; bad=$((bad + 1)); continue
  fi
  c=$(count_of "$p" "$o")
  if [ "$c" -ne 1 ]; then
    echo "BAD       $e: $desc: the original occurs $c times (must be exactly once)"
    bad=$((bad + 1)); continue
  fi
  key="$tg|$op"
  if [ "${BASE[$key]:-0}" != 0 ]; then
    echo "BASELINE-FAIL $e: $desc"; basefail=$((basefail + 1)); continue
  fi
  BACKUP=$(mktemp "$LOG/backup.XXXXXX")
  cat "$p" > "$BACKUP"
  MUTATED=$p
  content=$(cat "$p"; printf x); content=${content%x}
  printf '%s' "${content/"$o"/"$r"}" > "$p"
  logf="$LOG/$(basename "${e%%:*}" .txt)_${e##*:}.log"
  t0=$SECONDS
  build_and_run "$tg" "$op" "$logf"; rc=$?
  restore
  all_targets="$all_targets $tg"
  dt=$((SECONDS - t0))
  case $rc in
    0) echo "SURVIVED  $e: $desc (${dt}s)"; survived=$((survived + 1)); survivors+=("$e") ;;
    1) echo "CAUGHT    $e: $desc (${dt}s)"; caught=$((caught + 1)) ;;
    2) echo "NOBUILD   $e: $desc (see $logf)"; nobuild=$((nobuild + 1)) ;;
  esac
done

# Leave the tree's binaries built from the original sources.
if [ -n "$all_targets" ]; then
  # shellcheck disable=SC2086
  make -j"$JOBS" --no-print-directory $(echo $all_targets | tr ' ' '\n' | sort -u) > "$LOG/rebuild.log" 2>&1 \
    || echo "warning: rebuilding the original targets failed (see $LOG/rebuild.log)"
fi

total=$((caught + survived + bad + nobuild + basefail))
echo "summary: $total mutations: $caught caught, $survived survived, $bad bad, $nobuild not building, $basefail baseline failures"
[ ${#survivors[@]} -gt 0 ] && echo "survivors: ${survivors[*]}"
[ $((survived + bad + nobuild + basefail)) -eq 0 ]
