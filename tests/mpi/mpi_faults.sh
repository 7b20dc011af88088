#!/usr/bin/env bash
# mpi_faults.sh: a failure on ONE rank inside the training step's collectives stops
# every rank with that rank's message and exit 7 (MPI failure), never a hang: inside
# the global NT-Xent (dist_ntxent) and inside the bucketed gradient all-reduce
# (dist_bucket), on 2 and 3 ranks, at the first and at a later step. The failures come
# from the test driver's hook (BGFM_TEST_FAIL=SITE:RANK:CALL, tests/lib/bgfm_test.c);
# every run is under `timeout` (exit 124 = a hang).
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 6 --volumes 40
PIPE_NAME=mf PIPE_SEED=5 pipeline_yaml "$T/p.yaml" "$T/w" "{windows: {length: 10, stride: 5}}" "{name: pre, uses: pretrain, with: {mode: gmae+gcl, epochs: 2, batch_size: 6, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0, checkpoint_every: 0, warmup: 2}}"
timeout 120 $MPIRUN 2 "$BGFM" run "$T/p.yaml" --only parc --quiet >/dev/null 2>&1
timeout 120 $MPIRUN 2 "$BGFM" run "$T/p.yaml" --only conn --quiet >/dev/null 2>&1
check "upstream graphs made" test -f "$T/w/conn/graphs/index.h5" -o -f "$T/w/conn/index.h5"
# the hook itself: without BGFM_TEST_FAIL the driver trains like build/bgfm
timeout 120 $MPIRUN 2 "$BGFM_T" run "$T/p.yaml" --only pre --quiet >"$T/o0" 2>&1
check "test driver without a fault: pretrain completes" bash -c "[ $? -eq 0 ] && [ -f '$T/w/pre/final.h5' ]"
# and build/bgfm ignores the variable (the hook is not in the product)
rm -rf "$T/w/pre" "$T/w/.pre.partial"
BGFM_TEST_FAIL=dist_ntxent:1 timeout 120 $MPIRUN 2 "$BGFM" run "$T/p.yaml" --only pre --quiet >"$T/o1" 2>&1
check "build/bgfm ignores BGFM_TEST_FAIL" bash -c "[ $? -eq 0 ] && [ -f '$T/w/pre/final.h5' ]"

fault() {  # fault RANKS SITE:RANK:CALL PATTERN
  local np=$1 spec=$2 pat=$3 out="$T/o-$1-${2//:/-}"
  rm -rf "$T/w/pre" "$T/w/.pre.partial"
  BGFM_TEST_FAIL=$spec timeout 120 $MPIRUN "$np" "$BGFM_T" run "$T/p.yaml" --only pre --quiet >"$out" 2>&1
  local rc=$?
  local who=${spec#*:}; who=${who%%:*}
  echo "# $np ranks, $spec: exit $rc: $(grep 'bgfm: error' "$out" | head -1)"
  check "$np ranks, failure in ${spec%%:*} on rank $who (call ${spec##*:}): every rank stops, exit 7, rank $who's message, no output" \
    bash -c "[ $rc -eq 7 ] && grep -q 'bgfm: error: rank $who: $pat' '$out' && [ ! -e '$T/w/pre' ]"
}
fault 2 dist_ntxent:1:1 "the global NT-Xent gather failed"
fault 2 dist_bucket:1:3 "the bucketed gradient all-reduce failed"
fault 3 dist_ntxent:2:4 "the global NT-Xent gather failed"
fault 3 dist_bucket:1:1 "the bucketed gradient all-reduce failed"
fault 3 dist_bucket:0:2 "the bucketed gradient all-reduce failed"
