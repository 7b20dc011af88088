#!/usr/bin/env bash
# pop_solver.sh: the population head's principal subspace found exactly (the n x n Gram
# matrix) and by randomised subspace iteration (pop_solver: randomised; pca.h), on the
# same rows in the same run (bench/pop_solver.c over build/libbgfm.a): time and memory of
# each, how far the randomised answers lie from the exact ones, and the head's directions
# from each. Rows: a transfer study's graphs (RUN=the study's seed folder, e.g.
# runs/transfer/g45/default/strict/seed1: the unlabelled graphs of ATLAS, each FC entry
# standardised over them as input_norm: population does), then planted rows of the sizes
# in SIZES; BIG="S:W:T" runs the randomised solver alone at a size the exact one would
# not fit. Prints the load average with the figures (docs/performance.md, "The population
# head"). Not a test.
#   bench/pop_solver.sh        (RUN=..., ATLAS=aal116, SIZES="S:W:T ...", BIG="S:W:T")
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_init pop_solver
cd "$ROOT"
SIZES=${SIZES:-"1500:3:6670 2500:3:6670"}
BIG=${BIG:-}
ATLAS=${ATLAS:-aal116}
bench_driver pop_solver
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "${RUN:-}" ]; then
  T_RUN=$("$PY" - "$RUN/connectivity" "$ATLAS" "$T/rows.f32" "$T/scans.i64" <<'PY'
import glob, sys
import h5py, numpy as np
d, atlas, rows, scans = sys.argv[1:]
fc, subj = [], []
for s in sorted(glob.glob(d + "/shard-*.h5")):
    with h5py.File(s, "r") as f:
        g = f["graphs/" + atlas]
        keep = g["label"][()] < 0
        fc.append(g["fc"][()][keep]); subj.append(g["subject"][()][keep])
fc, subj = np.concatenate(fc), np.concatenate(subj)
N = fc.shape[1]; iu = np.triu_indices(N, 1)
X = fc[:, iu[0], iu[1]].astype(np.float64)
X = (X - X.mean(0)) / X.std(0)
X.astype(np.float32).tofile(rows); subj.astype(np.int64).tofile(scans)
print(X.shape[1])
PY
)
  echo "== $RUN, $ATLAS (unlabelled graphs, standardised), OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS"
  "$T/pop_solver" "$T/rows.f32" "$T/scans.i64" "$T_RUN" | sed 's/^/   /'
fi
for s in $SIZES; do
  IFS=: read -r S W TT <<<"$s"
  echo "== planted: $S people x $W windows, T = $TT, OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS"
  "$T/pop_solver" "$S" "$W" "$TT" | sed 's/^/   /'
done
if [ -n "$BIG" ]; then
  IFS=: read -r S W TT <<<"$BIG"
  echo "== planted, randomised only: $S people x $W windows, T = $TT"
  EXACT=0 "$T/pop_solver" "$S" "$W" "$TT" | sed 's/^/   /'
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
