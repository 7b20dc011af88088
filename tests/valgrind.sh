#!/usr/bin/env bash
# valgrind.sh: every unit test of build-vg/ (make BUILD=build-vg all) under valgrind memcheck,
# `make check` 3/4. The memcheck command comes from the Makefile ($VALGRIND). At most
# VG_PARALLEL (default 2) tests at a time, the slowest first (test_pop: 16 held-out fits per
# pop_rank: auto fit, about 170 s; test_layers and test_model: their thread-count tests run
# real-size products, 300 times their native time, 90-100 s), so that on 2 cores the phase
# lasts about as long as the slowest alone. BGFM_TEST_MEMCHECK=1 tells a
# test it runs under memcheck: test_model's thread test then covers every code path once
# instead of every combination (make test and the ASan suite run them all). Each test has its own files:
# its output in build-vg/test_NAME.out, valgrind's report in build-vg/test_NAME.PID.vg.
# One line per test, in name order, once every test has ended; exit 1 if any failed.
#   VALGRIND="valgrind ..." tests/valgrind.sh
set -uo pipefail
cd "$(dirname "$0")/.."
B=build-vg
P=${VG_PARALLEL:-2}
[ -n "${VALGRIND:-}" ] || { echo "valgrind.sh: VALGRIND (the memcheck command) is not set" >&2; exit 2; }
export OPENBLAS_NUM_THREADS=1 CMOCKA_MESSAGE_OUTPUT=TAP BGFM_TEST_MEMCHECK=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tests=()
for t in "$B"/tests/test_*; do [ -x "$t" ] && tests+=("$(basename "$t")"); done
[ ${#tests[@]} -gt 0 ] || { echo "valgrind.sh: no unit tests in $B/tests" >&2; exit 1; }
order=()
for t in test_pop test_layers test_model; do [ -x "$B/tests/$t" ] && order+=("$t"); done
for t in "${tests[@]}"; do case " ${order[*]} " in *" $t "*) ;; *) order+=("$t") ;; esac; done

one() {  # one NAME: runs it, writes build-vg/NAME.rc ("EXIT SECONDS")
  local n=$B/$1 s; s=$(date +%s)
  rm -f "$n".*.vg "$n.rc"
  # shellcheck disable=SC2086  # VALGRIND is a command line
  $VALGRIND --log-file="$n.%p.vg" "$B/tests/$1" >"$n.out" 2>&1 </dev/null
  echo "$? $(( $(date +%s) - s ))" >"$n.rc"
}
running=0
for t in "${order[@]}"; do
  one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$P" ]; then wait -n; running=$((running - 1)); fi
done
wait

fail=0
for t in "${tests[@]}"; do
  n=$B/$t
  read -r rc secs 2>/dev/null <"$n.rc" || { rc=1; secs=?; }
  if [ "$rc" -eq 0 ]; then echo "valgrind ok      $B/tests/$t  ${secs}s"
  else echo "valgrind FAILED  $B/tests/$t  (exit $rc; see $n.out, $n.*.vg)"; fail=1; fi
done
exit $fail
