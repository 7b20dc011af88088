#!/usr/bin/env bash
# run.sh: the test suite. Every test prints TAP lines ("ok - NAME" / "not ok - NAME");
# a test program that crashes or exits non-zero without a "not ok" line counts as
# one failure. Closes with "N passed, N failed".
#   tests/run.sh [PATTERN [EXCLUDE]]   only tests whose file name matches PATTERN
#                            (grep -E) and does not match EXCLUDE; the excluded ones are
#                            named in a closing "not run here" line (make check's SAN_SKIP)
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
run_one() {  # run_one NAME CMD...
  local name=$1; shift
  local out="$log/$(echo "$name" | tr '/' '_').log"
  local t0=$(date +%s.%N)
  "$@" >"$out" 2>&1 </dev/null
  local rc=$?
  local p f
  p=$(grep -cE '^ok( |$)' "$out"); f=$(grep -cE '^not ok( |$)' "$out")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "not ok - $name exited with $rc" >>"$out"; fi
  if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then f=1; echo "not ok - $name ran no test" >>"$out"; fi
  pass=$((pass + p)); fail=$((fail + f))
  local dt; dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  printf '%-44s %3d passed %3d failed  %ss\n' "$name" "$p" "$f" "$dt"
  if [ "$f" -ne 0 ]; then
    failed_names+=("$name"); grep -E '^not ok' "$out" | sed 's/^/    /' | head -20
    [ -n "${CI:-}" ] && { echo "---- $name output (tail) ----"; tail -40 "$out"; }
  fi
}
for t in "$BGFM_BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  wanted "$t" "unit/$(basename "$t")" || continue
  run_one "unit/$(basename "$t")" "$t"
done
for dir in mpi reference e2e faults; do
  for t in tests/$dir/*.sh; do
    [ -f "$t" ] || continue
    wanted "$t" "$dir/$(basename "$t" .sh)" || continue
    run_one "$dir/$(basename "$t" .sh)" bash "$t"
  done
done
echo "logs: $log"
[ ${#excluded[@]} -eq 0 ] || echo "not run here (excluded): ${excluded[*]}"
[ ${#failed_names[@]} -eq 0 ] || echo "failed: ${failed_names[*]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
