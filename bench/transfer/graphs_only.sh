#!/usr/bin/env bash
# graphs_only.sh OUT "SYNTH ARGS": a study population's graphs without pretraining: the
# cohort (bgfm synth SYNTH ARGS into OUT/cohort, unless there) through the study's
# parcellate and connectivity stages (bench/transfer/study.yaml.in, no pretrain or probe)
# into OUT/graphs, for readings of the FC alone (bench/transfer/site_share.py). Not a test.
# mpirun reads no stdin here, so that the script can run inside a `while read` loop.
#   BGFM=path  a pinned binary (default build/bgfm)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$1 SYNTH=$2
B=${BGFM:-$ROOT/build/bgfm}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
[ -f "$OUT/cohort/participants.tsv" ] ||
  mpirun --oversubscribe -np 2 "$B" synth --out "$OUT/cohort" $SYNTH --quiet </dev/null
sed -e "s|@WORKDIR@|$OUT/graphs|; s|@SEED@|1|; s|@BIDS@|$OUT/cohort|; s|@PARCELLATE@||; s|@ONERROR@|fail|" \
    -e '/- name: pretrain/,$d' "$ROOT/bench/transfer/study.yaml.in" > "$OUT/graphs.yaml"
mpirun --oversubscribe -np 2 "$B" run "$OUT/graphs.yaml" > "$OUT/graphs.log" 2>&1 </dev/null
echo "graphs_only: $OUT/graphs/connectivity/index.h5"
