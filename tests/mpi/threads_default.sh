#!/usr/bin/env bash
# threads_default.sh: with no OPENBLAS_NUM_THREADS / GOTO_NUM_THREADS / OMP_NUM_THREADS,
# the ranks of a node share its CPUs (each gets CPUs / ranks on the node, at least 1)
# instead of each taking them all; a set OPENBLAS_NUM_THREADS is obeyed. Read from the
# "threads" field of the stage's metrics.jsonl line. Ranks unbound (--bind-to none), so
# each rank's affinity mask holds every CPU.
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 4 --volumes 30
cat >"$T/p.yaml" <<YAML
name: t
workdir: $T/w
inputs: {bids: $T/d/bids}
atlases:
  - {name: tiny, path: $T/d/atlas.nii.gz}
stages:
  - {name: parc, uses: parcellate}
YAML
cpus=$(nproc)
threads() { tail -n 1 "$T/w/metrics.jsonl" | sed -n 's/.*"threads": \([0-9]*\),.*/\1/p'; }
run() {  # run NP [ENV...]: the stage on NP unbound ranks; prints its thread count
  local np=$1; shift
  env -u OPENBLAS_NUM_THREADS -u GOTO_NUM_THREADS -u OMP_NUM_THREADS "$@" \
    mpirun --oversubscribe --bind-to none -np "$np" "$BGFM" run "$T/p.yaml" --force --quiet >/dev/null 2>&1 &&
    threads
}
all=$(( cpus < 64 ? cpus : 64 ))  # OpenBLAS (MAX_THREADS=64) caps its default there
check "1 rank, nothing set: all $all CPUs" test "$(run 1)" = "$all"
share=$(( all / 2 > 0 ? all / 2 : 1 ))
check "2 ranks, nothing set: $share each" test "$(run 2)" = "$share"
share=$(( all / 3 > 0 ? all / 3 : 1 ))
check "3 ranks, nothing set: $share each (at least 1)" test "$(run 3)" = "$share"
check "OPENBLAS_NUM_THREADS=1 is obeyed on 1 rank" test "$(run 1 OPENBLAS_NUM_THREADS=1)" = 1
check "OMP_NUM_THREADS=1 counts as set too" test "$(run 1 OMP_NUM_THREADS=1)" = 1
