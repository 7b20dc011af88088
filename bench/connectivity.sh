#!/usr/bin/env bash
# connectivity.sh: benchmark of the connectivity stage. One graph at N=400, T=1200 on one
# thread: bgfm's Pearson (standardise + one SSYRK + mirror) vs the SSYRK call alone and
# vs numpy.corrcoef; then the whole stage on a small synthetic cohort, graphs/s per rank.
# Not a test: prints figures (docs/performance.md quotes them).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
D="$ROOT/${BGFM_BUILD:-build}/tests/test_connectivity"
PY=/usr/bin/python3
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
T=$(mktemp -d /tmp/bgfm-bench-conn.XXXXXX); trap 'rm -rf "$T"' EXIT
N=${N:-400}; TR=${TR:-1200}; REPS=${REPS:-15}
read -r _ pear _ syrk _ graph _ std < <("$D" bench "$N" "$TR" "$REPS")
np=$($PY - "$N" "$TR" "$REPS" <<'PY'
import sys, time, numpy as np
N, T, R = map(int, sys.argv[1:4])
x = np.random.default_rng(0).standard_normal((T, N)).astype(np.float32)
best = bd = 1e30
xd = (x - x.mean(0)).astype(np.float64)
for _ in range(R):
    t = time.perf_counter(); np.corrcoef(x, rowvar=False); best = min(best, time.perf_counter() - t)
    t = time.perf_counter(); xd.T @ xd; bd = min(bd, time.perf_counter() - t)  # numpy: one dsyrk
print("%.6f %.6f" % (best, bd))
PY
)
read -r np dsyrk <<<"$np"
awk -v p="$pear" -v s="$syrk" -v n="$np" -v d="$dsyrk" -v g="$graph" -v st="$std" -v N="$N" -v T="$TR" 'BEGIN{
  printf "one graph, N=%d, T=%d, 1 thread (best of runs):\n", N, T
  printf "  bgfm pearson (standardise+SSYRK+mirror) %8.3f ms   (standardise %.3f ms)\n", p*1e3, st*1e3
  printf "  OpenBLAS SSYRK alone                    %8.3f ms   ratio %.2fx (target <= 1.3x)\n", s*1e3, p/s
  printf "  numpy.corrcoef (float64)                %8.3f ms   bgfm is %.1fx faster (target >= 3x)\n", n*1e3, n/p
  printf "  of which its X^T X alone (OpenBLAS DSYRK) %6.3f ms   = %.2fx the SSYRK: no float32 Pearson\n", d*1e3, d/s
  printf "    can beat corrcoef by more than corrcoef / SSYRK = %.2fx on this machine\n", n/s
  printf "  whole graph (pearson, threshold, RWSE k=5) %5.3f ms\n", g*1e3 }'
# whole stage on a synthetic cohort
S=${S:-24}
$PY "$ROOT/tests/reference/connectivity_make_ts.py" "$T/ts.h5" --subjects "$S" --atlases aal116:116,ho48:48,aicha:384 --tmin 200
for n in 1 2; do
  rm -rf "$T/o"; mkdir "$T/o"
  w=$(mpirun --oversubscribe -np $n "$D" stage "$T/ts.h5" "$T/o" gps=64 | sed -n 's/.*wall_s=//p')
  G=$((S * 3))
  awk -v w="$w" -v G=$G -v n=$n -v S="$S" 'BEGIN{printf "stage, %d subjects x 3 atlases (N=116,48,384; T=200..%d), %d rank(s): %d graphs in %.2f s (read, compute, gather, write shards + index) = %.1f graphs/s, %.1f graphs/s per rank\n", S, 200+7*(S-1), n, G, w, G/w, G/w/n}'
done
