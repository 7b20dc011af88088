#!/usr/bin/env bash
# reprobe.sh: probe a finished transfer-study run again with this binary and other probe
# options, without pretraining again (docs/results.md 12aa). The run's folder is copied
# (its pretraining checkpoint and parcellation kept as they are), the connectivity stage
# runs again (so the graph store carries what this version writes, e.g. each scan's mean
# framewise displacement), then the probe with the run's own options plus EXTRA.
#
#   bench/transfer/reprobe.sh RUN.yaml OUT [EXTRA]
#     RUN.yaml  a transfer_study.sh pipeline (OUT/<variant>/<protocol>/seed<S>.yaml)
#     OUT       the new seed folder, e.g. runs/x/motion/strict/seed1 (made; must not exist)
#     EXTRA     probe options added to the run's, e.g. "regress_out: [motion]"
# The probe's numbers for the feature sets the run already had are the run's own when
# EXTRA is empty (the same checkpoint, graphs, folds and classifier).
# PARCELLATE=1: the parcellate stage runs again too (its series are the run's; what this
# version adds, e.g. each scan's mean FD read from its confounds file when the run
# regressed nothing, comes with it); the pretraining checkpoint is still the run's.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${BGFM:-$ROOT/build/bgfm}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
[ $# -ge 2 ] || { sed -n '2,13p' "$0"; exit 2; }
Y=$1 OUT=$2 EXTRA=${3:-}
SRC=$(sed -n 's/^workdir: //p' "$Y")
[ -d "$SRC/pretrain" ] || { echo "reprobe: $SRC has no pretrain folder" >&2; exit 2; }
[ ! -e "$OUT" ] || { echo "reprobe: $OUT exists" >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cp -r "$SRC/parcellate" "$SRC/pretrain" "$OUT/"
# the same pipeline in OUT; EXTRA appended to the probe's options
sed -e "s#^workdir: .*#workdir: $OUT#" "$Y" |
  awk -v x="$EXTRA" '/name: probe$/ {p = 1} p && /with: \{/ && x != "" {sub(/\}$/, ", " x "}"); p = 0} {print}' \
  > "$OUT.yaml"
NP=${NP:-2}
STAGES="connectivity probe"
[ "${PARCELLATE:-0}" = 1 ] && STAGES="parcellate $STAGES"
for st in $STAGES; do
  rc=0
  mpirun --oversubscribe -np "$NP" "$B" run "$OUT.yaml" --only "$st" --force >>"$OUT.log" 2>&1 < /dev/null || rc=$?
  # exit 9: inputs left out under on_error: skip (as in the run itself)
  [ "$rc" -eq 0 ] || [ "$rc" -eq 9 ] || { echo "reprobe: $st failed (exit $rc), see $OUT.log" >&2; exit "$rc"; }
done
echo "reprobe: $OUT/probe/report/probe.json"
