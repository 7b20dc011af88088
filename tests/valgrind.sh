#!/usr/bin/env bash
# valgrind.sh: every unit test of build-vg/ (make BUILD=build-vg all) under valgrind memcheck,
# `make check` 3/4. The memcheck command comes from the Makefile ($VALGRIND). At most
# VG_PARALLEL (default 2) processes at a time, the slowest first: test_pop (LAPACK's
# eigensolvers, some 450 times their native time; about 230 s of memcheck in all since
# session 34, 430 s before) runs as VG_POP_PARTS (default 3) processes of every third of
# its tests (BGFM_TEST_PART, tests/lib/test_part.h), then test_layers and test_model
# (their thread-count tests run real-size products, 300 times their native time, 70-80 s),
# so that on 2 cores the phase lasts about half the processes' total. BGFM_TEST_MEMCHECK=1
# tells a test it runs under memcheck: test_model's thread test then covers every code
# path once instead of every combination, and four of test_pop's tests take 100 people
# for 150 (make test and the ASan suite run them at full size). Each process has its own files:
# its output in build-vg/NAME.out, valgrind's report in build-vg/NAME.PID.vg (NAME: test_x,
# or test_pop.part0 ...).
# One line per process, in name order, once every one has ended; exit 1 if any failed.
#   VALGRIND="valgrind ..." tests/valgrind.sh
set -uo pipefail
cd "$(dirname "$0")/.."
B=build-vg
P=${VG_PARALLEL:-2}
PARTS=${VG_POP_PARTS:-3}
[ -n "${VALGRIND:-}" ] || { echo "valgrind.sh: VALGRIND (the memcheck command) is not set" >&2; exit 2; }
export OPENBLAS_NUM_THREADS=1 CMOCKA_MESSAGE_OUTPUT=TAP BGFM_TEST_MEMCHECK=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tests=()
for t in "$B"/tests/test_*; do [ -x "$t" ] && tests+=("$(basename "$t")"); done
[ ${#tests[@]} -gt 0 ] || { echo "valgrind.sh: no unit tests in $B/tests" >&2; exit 1; }
order=()   # process names: test_x, or test_pop.partI (its I-th of PARTS)
if [ -x "$B/tests/test_pop" ]; then for ((i = 0; i < PARTS; i++)); do order+=("test_pop.part$i"); done; fi
for t in test_layers test_model; do [ -x "$B/tests/$t" ] && order+=("$t"); done
for t in "${tests[@]}"; do case " ${order[*]} test_pop " in *" $t "*) ;; *) order+=("$t") ;; esac; done

one() {  # one NAME: runs it, writes build-vg/NAME.rc ("EXIT SECONDS")
  local n=$B/$1 s t=${1%.part*} part=
  [ "$t" != "$1" ] && part="${1#*.part}/$PARTS"
  s=$(date +%s)
  rm -f "$n".*.vg "$n.rc"
  local pre=(); [ -n "$part" ] && pre=(env "BGFM_TEST_PART=$part")
  # shellcheck disable=SC2086  # VALGRIND is a command line
  "${pre[@]}" $VALGRIND --log-file="$n.%p.vg" "$B/tests/$t" >"$n.out" 2>&1 </dev/null
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
mapfile -t names < <(printf '%s\n' "${order[@]}" | sort)
for t in "${names[@]}"; do
  n=$B/$t
  read -r rc secs 2>/dev/null <"$n.rc" || { rc=1; secs=?; }
  if [ "$rc" -eq 0 ]; then echo "valgrind ok      $B/tests/$t  ${secs}s"
  else echo "valgrind FAILED  $B/tests/$t  (exit $rc; see $n.out, $n.*.vg)"; fail=1; fi
done
# the parts ran every test of test_pop once: their plans add up to the whole program's
if [ -x "$B/tests/test_pop" ]; then
  whole=$("$B/tests/test_pop" 2>/dev/null </dev/null | sed -n 's/^1\.\.//p')
  sum=0; for ((i = 0; i < PARTS; i++)); do
    k=$(sed -n 's/^1\.\.//p' "$B/test_pop.part$i.out"); sum=$((sum + ${k:-0})); done
  if [ -n "$whole" ] && [ "$sum" -eq "$whole" ]; then echo "valgrind ok      test_pop's $PARTS parts ran its $whole tests"
  else echo "valgrind FAILED  test_pop's $PARTS parts ran $sum tests, the program has ${whole:-?}"; fail=1; fi
fi
exit $fail
