#!/usr/bin/env bash
# config_alloc.sh: allocation-failure injection through the pipeline loader: for every
# N, BGFM_FAIL_ALLOC_AFTER=N makes the N-th allocation fail; the loader must report
# out of memory (exit code 5 inside) and never crash, up to the N where it succeeds.
source "$(dirname "$0")/../lib/tap.sh"
PROBE="$ROOT/${BGFM_BUILD:-build}/tests/test_config"
[ -x "$PROBE" ] || { notok "build/tests/test_config is missing (make build/tests/test_config)"; exit 1; }
bad=0; first_ok=0
for n in $(seq 1 1000); do
  out=$(BGFM_FAIL_ALLOC_AFTER=$n "$PROBE" --alloc-probe 2>&1)
  rc=$?
  if [ $rc -ne 0 ]; then bad=$((bad + 1)); echo "# N=$n exit $rc: $out" | head -3; fi
  case "$out" in "rc=0 "*) first_ok=$n; break ;; esac
  case "$out" in "rc=5 out of memory"*) ;; *) bad=$((bad + 1)); echo "# N=$n: $out" | head -3 ;; esac
done
check "every injected allocation failure ends in out-of-memory (N=1..$((first_ok - 1)))" test $bad -eq 0
check "the probe succeeds once allocations stop failing" test $first_ok -gt 10
