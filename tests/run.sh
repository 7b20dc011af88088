#!/usr/bin/env bash
# run.sh: the test suite. Every test prints TAP lines ("ok - NAME" / "not ok - NAME");
# a test program that crashes or exits non-zero without a "not ok" line counts as
# one failure. Closes with "N passed, N failed".
#   tests/run.sh [PATTERN [EXCLUDE]]   only tests whose file name matches PATTERN
#                            (grep -E) and does not match EXCLUDE; the excluded ones are
#                            named in a closing "not run here" line (make check's SAN_SKIP)
# TEST_JOBS=N (default 1; `make test` and `make check` pass 2): up to N tests at a time,
# each in its own temp dir and log, a line per test as it ends; the shell tests first
# (the longest), the unit tests after them. A test whose header has a line
# "# test-serial: REASON" (it brings up a Slurm on the first free of fixed ports, or
# network namespaces) never runs beside another such test.
set -uo pipefail
cd "$(dirname "$0")/.."
export BGFM_BUILD=${BGFM_BUILD:-build}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
export CMOCKA_MESSAGE_OUTPUT=TAP
pat=${1:-.}
excl=${2:-}
log=$(mktemp -d /tmp/bgfm-test.XXXXXX)
pass=0; fail=0; failed_names=(); excluded=()
wanted() {  # wanted PATH NAME: matches PATTERN, and EXCLUDE (noted) if given
  echo "$1" | grep -qE "$pat" || return 1
  if [ -n "$excl" ] && echo "$1" | grep -qE "$excl"; then excluded+=("$2"); return 1; fi
}
jobs=${TEST_JOBS:-1}
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: TEST_JOBS must be a positive integer, not '$jobs'" >&2; exit 2; }
logname() { echo "$log/$(echo "$1" | tr '/' '_').log"; }
declare -A running=()   # pid -> test name
nstarted=0
start() {  # start NAME CMD...: runs it in the background; its log gets "EXIT SECONDS" in LOG.rc
  local name=$1; shift
  local out; out=$(logname "$name")
  # Open MPI's session directories (singletons' and mpirun's) under the test's own base,
  # so that a test ending never removes one that a test beside it uses
  nstarted=$((nstarted + 1))
  local od="$log/o$nstarted"; mkdir -p "$od"
  ( t0=$(date +%s.%N); OMPI_MCA_orte_tmpdir_base=$od "$@" >"$out" 2>&1 </dev/null; rc=$?
    awk -v r="$rc" -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%d %.1f\n", r, b-a}' >"$out.rc" ) &
  last_pid=$!; running[$!]=$name
}
reap() {  # waits for one running test to end, counts and prints it
  local pid name out rc dt p f
  wait -n -p pid "${!running[@]}"
  name=${running[$pid]}; unset "running[$pid]"
  out=$(logname "$name")
  read -r rc dt <"$out.rc" 2>/dev/null || { rc=1; dt=?; }
  p=$(grep -cE '^ok( |$)' "$out"); f=$(grep -cE '^not ok( |$)' "$out")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "not ok - $name exited with $rc" >>"$out"; fi
  if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then f=1; echo "not ok - $name ran no test" >>"$out"; fi
  pass=$((pass + p)); fail=$((fail + f))
  printf '%-44s %3d passed %3d failed  %ss\n' "$name" "$p" "$f" "$dt"
  if [ "$f" -ne 0 ]; then
    failed_names+=("$name"); grep -E '^not ok' "$out" | sed 's/^/    /' | head -20
    [ -n "${CI:-}" ] && { echo "---- $name output (tail) ----"; tail -40 "$out"; }
  fi
}
queue=()   # test names in the order they start
declare -A qpath=() qserial=()
add() { queue+=("$1"); qpath[$1]=$2; qserial[$1]=$3; }  # add NAME PATH SERIAL(0/1)
for dir in e2e mpi faults reference; do
  for t in tests/$dir/*.sh; do
    [ -f "$t" ] || continue
    wanted "$t" "$dir/$(basename "$t" .sh)" || continue
    ser=0; grep -q '^# test-serial: ' "$t" && ser=1
    add "$dir/$(basename "$t" .sh)" "$t" "$ser"
  done
done
for t in "$BGFM_BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  wanted "$t" "unit/$(basename "$t")" || continue
  add "unit/$(basename "$t")" "$t" 0
done
serial_pid=""   # the test-serial test running, if any
while [ ${#queue[@]} -gt 0 ] || [ ${#running[@]} -gt 0 ]; do
  next=-1
  if [ ${#running[@]} -lt "$jobs" ]; then
    for i in "${!queue[@]}"; do
      if [ "${qserial[${queue[$i]}]}" = 0 ] || [ -z "$serial_pid" ]; then next=$i; break; fi
    done
  fi
  if [ "$next" -lt 0 ]; then
    reap
    [ -n "$serial_pid" ] && [ -z "${running[$serial_pid]+x}" ] && serial_pid=""
    continue
  fi
  name=${queue[$next]}; unset "queue[$next]"; queue=(${queue[@]+"${queue[@]}"})
  case $name in unit/*) start "$name" "${qpath[$name]}" ;; *) start "$name" bash "${qpath[$name]}" ;; esac
  [ "${qserial[$name]}" = 1 ] && serial_pid=$last_pid
done
echo "logs: $log"
[ ${#excluded[@]} -eq 0 ] || echo "not run here (excluded): ${excluded[*]}"
[ ${#failed_names[@]} -eq 0 ] || echo "failed: ${failed_names[*]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
