#!/usr/bin/env bash
# connectivity_pipeline.sh: the connectivity stage through `bgfm run` (parcellate ->
# connectivity) on a tiny dataset: shards + index, identical files on 1 and 2 ranks,
# flags carried from timeseries.h5, `bgfm inspect` on the index and a shard, and the
# validate hook's messages. Not the numerical checks (reference/connectivity_ref.sh).
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 5 --volumes 40
mk() {  # mk FILE WORKDIR CONNECTIVITY-WITH
PIPE_NAME=conn PIPE_SEED=5 pipeline_yaml "$1" "$2" "$3"
}
mk "$T/a.yaml" "$T/w1" "{measure: partial, adjacency: {density: 0.2}, windows: {length: 20, stride: 10}, graphs_per_shard: 4}"
mk "$T/b.yaml" "$T/w2" "{measure: partial, adjacency: {density: 0.2}, windows: {length: 20, stride: 10}, graphs_per_shard: 4}"
expect_rc "bgfm run, 1 rank" 0 $MPIRUN 1 "$BGFM" run "$T/a.yaml" --quiet
expect_rc "bgfm run, 2 ranks" 0 $MPIRUN 2 "$BGFM" run "$T/b.yaml" --quiet
check "index.h5 and shards written" test -f "$T/w1/conn/index.h5" -a -f "$T/w1/conn/shard-00000.h5"
same=1; n=0
for f in "$T/w1/conn"/*.h5; do n=$((n+1)); cmp -s "$f" "$T/w2/conn/$(basename "$f")" || same=0; done
check "graph files byte-identical for 1 and 2 ranks ($n files)" test $same -eq 1 -a $n -ge 3
check "graphs = rows x atlases x windows, flags from timeseries.h5" $PY - "$T/w1/parc/timeseries.h5" "$T/w1/conn" <<'PYEOF'
import sys, os, h5py, numpy as np
ts = h5py.File(sys.argv[1], "r"); idx = h5py.File(os.path.join(sys.argv[2], "index.h5"), "r")
off = ts["atlases/tiny/offsets"][:]
W = [(off[s + 1] - off[s] - 20) // 10 + 1 for s in range(len(off) - 1)]
assert idx.attrs["n_graphs"] == sum(W), (idx.attrs["n_graphs"], W)
g = idx["graphs"]
for i in range(int(idx.attrs["n_graphs"])):
    sh = idx["shards"][g["shard"][i]].decode()
    f = h5py.File(os.path.join(sys.argv[2], sh), "r")["graphs/tiny"]
    s = g["subject"][i]
    assert (f["flagged"][g["row"][i]] == ts["atlases/tiny/flagged"][s]).all()
    assert g["participant_id"][i] == ts["subjects/participant_id"][s]
PYEOF
"$BGFM" inspect "$T/w1/conn/index.h5" --json >"$T/insp.json" 2>"$T/insp.err"
check "bgfm inspect --json on the index" $PY -c "
import json; d = json.load(open('$T/insp.json'))
assert d['format'] == 'bgfm-graphs-index' and d['measure'] == 'partial' and d['adjacency'] == 'density'
assert d['atlases'][0]['name'] == 'tiny' and d['atlases'][0]['n_graphs'] == d['n_graphs']"
"$BGFM" inspect "$T/w1/conn/shard-00000.h5" >"$T/insp.txt" 2>&1
check "bgfm inspect on a shard" grep -q "graph shard, 4 graphs" "$T/insp.txt"
BGFM_FAIL_ALLOC_WHAT=attribute "$BGFM" inspect "$T/w1/conn/shard-00000.h5" >"$T/insp.txt" 2>&1; rc=$?
check "bgfm inspect short of memory reading the root attribute format: exit 5, saying so" \
  bash -c "test $rc -eq 5 && grep -q 'out of memory allocating .* for attribute' '$T/insp.txt'"
for what in "dataset list" "flagged regions"; do
  BGFM_FAIL_ALLOC_WHAT="$what" "$BGFM" inspect "$T/w1/parc/timeseries.h5" >"$T/insp.txt" 2>&1; rc=$?
  check "bgfm inspect of the time series short of memory for the $what: exit 5, saying so" \
    bash -c "test $rc -eq 5 && grep -q 'out of memory allocating .* for $what\$' '$T/insp.txt'"
done
cp "$T/w1/conn/shard-00000.h5" "$T/badfmt.h5"
$PY -c "import h5py, sys; f = h5py.File(sys.argv[1], 'r+'); del f.attrs['format']; f.attrs['format'] = 7" "$T/badfmt.h5"
"$BGFM" inspect "$T/badfmt.h5" >"$T/insp.txt" 2>&1; rc=$?
check "bgfm inspect on a file whose format is not a string: exit 0, shown as a file without one" \
  bash -c "test $rc -eq 0 && grep -q 'no bgfm format attribute' '$T/insp.txt'"
mk "$T/c.yaml" "$T/w3" "{adjacency: {threshold: 0.2, density: 0.1}}"
"$BGFM" validate "$T/c.yaml" >/dev/null 2>"$T/err"; rc=$?
check "threshold and density together: exit 2" test $rc -eq 2
check "... with a message saying to give exactly one" grep -q "exactly one of adjacency.threshold and adjacency.density" "$T/err"
mk "$T/d.yaml" "$T/w4" "{windows: {stride: 5}}"
"$BGFM" validate "$T/d.yaml" >/dev/null 2>"$T/err"; rc=$?
check "windows.stride without length: exit 2" test $rc -eq 2
