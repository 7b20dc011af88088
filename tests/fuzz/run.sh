#!/usr/bin/env bash
# run.sh: runs every libFuzzer target (build-fuzz/fuzz_*, made by `make fuzz-build`) for
# FUZZ_TIME seconds, at most FUZZ_PARALLEL (default 2) at a time, one worker each, and
# prints per target: executions, exec/s, cov, ft, corpus size, new units, findings.
# Seeds come from tests/fuzz/corpus/<target>/ (read only); the growing corpus lives in
# build-fuzz/corpus/<target>/ and crashing inputs in build-fuzz/artifacts/.
#   tests/fuzz/run.sh [TARGET...]      FUZZ_TIME=600 FUZZ_PARALLEL=2
# Exit status 1 if any target found a crash, leak, timeout or out-of-memory.
set -uo pipefail
cd "$(dirname "$0")/../.."
B=build-fuzz
T=${FUZZ_TIME:-600}
P=${FUZZ_PARALLEL:-2}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$B"/fuzz_*; do [ -x "$f" ] && targets+=("$(basename "$f" | sed 's/^fuzz_//')"); done
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz: no targets in $B (make fuzz-build)" >&2; exit 1; }
mkdir -p "$B/logs" "$B/artifacts"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# Per-target options: input size bound; leak checking off only where MPI is initialised
# (Open MPI's init allocations are reported by LeakSanitizer as leaks).
opts_for() {
  case $1 in
    nifti) echo "-max_len=8192" ;;
    yaml) echo "-max_len=8192 -dict=tests/fuzz/yaml.dict" ;;
    graphs) echo "-max_len=512" ;;
    ckpt) echo "-max_len=512" ;;
    safetensors) echo "-max_len=8192" ;;
    tsv) echo "-max_len=4096" ;;
    *) echo "" ;;
  esac
}
leaks_for() { case $1 in ckpt) echo 0 ;; *) echo 1 ;; esac; }

run_target() {
  local t=$1 log="$B/logs/$1.log"
  mkdir -p "$B/corpus/$t"
  local seeds="tests/fuzz/corpus/$t"
  [ -d "$seeds" ] || seeds=""
  ASAN_OPTIONS="detect_leaks=$(leaks_for "$t"):abort_on_error=0:allocator_may_return_null=1" \
    "$B/fuzz_$t" $(opts_for "$t") -max_total_time="$T" -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$B/artifacts/$t-" \
    "$B/corpus/$t" $seeds >"$log" 2>&1
  echo $? >"$B/logs/$t.rc"
}

running=0
for t in "${targets[@]}"; do
  [ -x "$B/fuzz_$t" ] || { echo "fuzz: $B/fuzz_$t missing" >&2; exit 1; }
  run_target "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$P" ]; then wait -n; running=$((running - 1)); fi
done
wait

fail=0
printf '%-8s %10s %8s %7s %7s %8s %6s  %s\n' target execs exec/s cov ft corpus new result
for t in "${targets[@]}"; do
  log="$B/logs/$t.log"
  rc=$(cat "$B/logs/$t.rc" 2>/dev/null || echo 1)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  new=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1)
  cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
  ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
  corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p')
  res=ok
  if [ "$rc" -ne 0 ] || grep -qE '^==[0-9]+==ERROR|runtime error:|^SUMMARY: libFuzzer' "$log"; then
    res="FINDING (see $log, $B/artifacts/$t-*)"
    fail=1
  fi
  printf '%-8s %10s %8s %7s %7s %8s %6s  %s\n' "$t" "${execs:-?}" "${eps:-?}" "${cov:-?}" \
    "${ft:-?}" "${corp:-?}" "${new:-?}" "$res"
done
exit $fail
