#!/usr/bin/env bash
# pretrain_strict.sh: `protocol: strict` never feeds a probed (labelled) subject to
# pretraining, checked from what training reads: with every labelled graph's FC
# overwritten in the store, a strict run gives bit-identical weights (and the same
# /pretrain_graphs: the unlabelled subjects' graphs); overwriting one UNLABELLED graph
# changes them, and so does overwriting labelled graphs under `transductive` (the
# controls: the test can fail). Also: 1 and 2 ranks fit the same input normalisation.
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 8 --volumes 40 --seed 3
# subjects 1-4 unlabelled (diagnosis n/a), 5-8 labelled
$PY - "$T/d/bids/participants.tsv" <<'PYEOF'
import sys
l = open(sys.argv[1]).read().splitlines()
rows = [r.split("\t") for r in l[1:]]
for i, r in enumerate(rows):
    r[1] = "n/a" if i < 4 else ("control" if i % 2 else "patient")
open(sys.argv[1], "w").write("\n".join([l[0]] + ["\t".join(r) for r in rows]) + "\n")
PYEOF
mk() {  # mk FILE WORKDIR PROTOCOL
PIPE_NAME=strict PIPE_SEED=9 pipeline_yaml "$1" "$2" "{windows: {length: 10, stride: 5}}" \
  "{name: pre, uses: pretrain, with: {epochs: 2, batch_size: 4, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0, protocol: $3}}"
}
mk "$T/s.yaml" "$T/ws" strict
mk "$T/t.yaml" "$T/wt" transductive
expect_rc "strict run" 0 "$BGFM" run "$T/s.yaml" --quiet
expect_rc "transductive run" 0 "$BGFM" run "$T/t.yaml" --quiet
cp "$T/ws/pre/final.h5" "$T/s0.h5"
cp "$T/wt/pre/final.h5" "$T/t0.h5"
# overwrite graphs in a store: which = labelled | one_unlabelled
scramble() {
$PY - "$1" "$2" <<'PYEOF'
import sys, h5py, numpy as np
w, which = sys.argv[1], sys.argv[2]
idx = h5py.File(w + "/conn/index.h5", "r")
lab = idx["graphs/label"][()]
pick = np.nonzero(lab >= 0)[0] if which == "labelled" else np.nonzero(lab < 0)[0][:1]
assert len(pick) > 0
shards = [s.decode() for s in idx["shards"][()]]
rng = np.random.default_rng(1)
for g in pick:
    f = h5py.File(w + "/conn/" + shards[idx["graphs/shard"][g]], "r+")
    d = f["graphs/tiny/fc"]
    x = d[idx["graphs/row"][g]]
    d[idx["graphs/row"][g]] = np.clip(x + rng.normal(0, 0.3, x.shape), -1, 1).astype(np.float32)
    f.close()
PYEOF
}
same() { h5_same "$1" "$2" model >/dev/null 2>&1; }  # every /model tensor bit-identical
differ() { ! same "$@"; }
check "strict: /pretrain_graphs are exactly the unlabelled subjects' graphs" $PY - "$T/ws" <<'PYEOF'
import sys, h5py, numpy as np
w = sys.argv[1]
f = h5py.File(w + "/pre/final.h5", "r")
lab = h5py.File(w + "/conn/index.h5", "r")["graphs/label"][()]
assert f.attrs["protocol"] in (b"strict", "strict")
assert list(f["pretrain_graphs"][()]) == list(np.nonzero(lab < 0)[0]) and (lab >= 0).sum() > 0
PYEOF
check "scramble every labelled graph (strict store)" scramble "$T/ws" labelled
check "scramble every labelled graph (transductive store)" scramble "$T/wt" labelled
expect_rc "strict rerun on the scrambled store" 0 "$BGFM" run "$T/s.yaml" --only pre --force --quiet
expect_rc "transductive rerun on the scrambled store" 0 "$BGFM" run "$T/t.yaml" --only pre --force --quiet
check "strict: weights bit-identical (no labelled graph was read)" same "$T/s0.h5" "$T/ws/pre/final.h5"
check "control: transductive weights changed" differ "$T/t0.h5" "$T/wt/pre/final.h5"
check "scramble one unlabelled graph" scramble "$T/ws" one_unlabelled
expect_rc "strict rerun" 0 "$BGFM" run "$T/s.yaml" --only pre --force --quiet
check "control: strict weights changed by an unlabelled graph" differ "$T/s0.h5" "$T/ws/pre/final.h5"
# the fitted input normalisation has the same bits on 1 and 2 ranks (fixed-point sums)
expect_rc "strict run on 2 ranks" 0 $MPIRUN 2 "$BGFM" run "$T/s.yaml" --only pre --force --quiet
cp "$T/ws/pre/final.h5" "$T/s2.h5"
expect_rc "strict run on 1 rank" 0 "$BGFM" run "$T/s.yaml" --only pre --force --quiet
check "norm buffers bit-identical for 1 and 2 ranks" $PY - "$T/s2.h5" "$T/ws/pre/final.h5" <<'PYEOF'
import sys, h5py, numpy as np
a, b = (h5py.File(f, "r") for f in sys.argv[1:3])
for k in ("norm/tiny/mean", "norm/tiny/std"):
    assert np.array_equal(a["model"][k][()], b["model"][k][()]), k
assert (a["model"]["norm/tiny/std"][()] != 1).any()
PYEOF
