#!/usr/bin/env bash
# connectivity_ranks.sh: the connectivity stage's shards and index are identical for 1, 2
# and 3 ranks: every dataset and attribute compared with h5py, and the files byte for byte.
# Not a numerical check (reference/connectivity_ref.sh is).
source "$(dirname "$0")/../lib/tap.sh"
D="$ROOT/${BGFM_BUILD:-build}/tests/test_connectivity"
$PY "$ROOT/tests/reference/connectivity_make_ts.py" "$T/ts.h5" --subjects 7 --atlases aal:20,ho:9,ai:14 \
  --tmin 50 --flag 2:ho:4 --constant 3:aal:5 || notok "make timeseries"
cat >"$T/cmp.py" <<'PY'
import sys, os, h5py, numpy as np
a, b = sys.argv[1], sys.argv[2]
bad = []
def walk(x, y, path):
    if set(x.attrs) != set(y.attrs): bad.append(path + " attrs")
    for k in x.attrs:
        if not np.array_equal(np.asarray(x.attrs[k]), np.asarray(y.attrs[k])): bad.append(path + "@" + k)
    if isinstance(x, h5py.Dataset):
        u, v = x[()], y[()]
        nan = x.dtype.kind == "f"  # a mean FD unknown (no confounds) is NaN in both
        if x.dtype != y.dtype or x.shape != y.shape or not np.array_equal(u, v, equal_nan=nan): bad.append(path)
        return
    if set(x) != set(y): bad.append(path + " members")
    for k in x:
        if k in y: walk(x[k], y[k], path + "/" + k)
fa, fb = sorted(os.listdir(a)), sorted(os.listdir(b))
if fa != fb: bad.append("file lists %s vs %s" % (fa, fb))
n = 0
for f in fa:
    if f in fb:
        with h5py.File(os.path.join(a, f), "r") as x, h5py.File(os.path.join(b, f), "r") as y:
            walk(x, y, f)
            n += 1
print("compared %d files" % n)
if bad: print("differences:", bad[:10]); sys.exit(1)
PY
for cfg in "gps=5 wlen=30 wstride=15 constant=flag" "gps=4 measure=partial density=0.2 fisher_z=1 compress=3 constant=flag"; do
  for n in 1 2 3; do
    rm -rf "$T/o$n"; mkdir "$T/o$n"
    $MPIRUN $n "$D" stage "$T/ts.h5" "$T/o$n" $cfg >"$T/log$n" 2>&1 || notok "$n ranks ($cfg): $(tail -2 "$T/log$n")"
  done
  nf=$(ls "$T/o1" | wc -l)
  check "[$cfg] several shards written ($nf files)" test "$nf" -ge 3
  for n in 2 3; do
    check "[$cfg] every dataset identical, 1 vs $n ranks (h5py)" $PY "$T/cmp.py" "$T/o1" "$T/o$n"
    same=1; for f in "$T/o1"/*; do cmp -s "$f" "$T/o$n/$(basename "$f")" || same=0; done
    check "[$cfg] files byte-identical, 1 vs $n ranks" test $same -eq 1
  done
done
