#!/usr/bin/env bash
# pretrain_pipeline.sh: the pretrain stage through `bgfm run` on a tiny dataset:
# checkpoints + final.h5 + metrics lines, chaining (a gcl stage initialised from the
# gmae stage's final.h5, init: auto), and a run stopped after a checkpoint then resumed
# (on another thread count) ending with bit-identical parameters and optimiser state to
# an uninterrupted run.
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 6 --volumes 40
mk() {  # mk FILE WORKDIR
PIPE_NAME=pt PIPE_SEED=5 pipeline_yaml "$1" "$2" "{windows: {length: 10, stride: 5}}" "{name: pre1, uses: pretrain, with: {mode: gmae+gcl, epochs: 3, batch_size: 4, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0, checkpoint_every: 4, keep_checkpoints: 2, warmup: 3}}" "{name: pre2, uses: pretrain, with: {mode: gcl, epochs: 1, batch_size: 4, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0}}"
}
mk "$T/a.yaml" "$T/wa"
expect_rc "uninterrupted run" 0 "$BGFM" run "$T/a.yaml" --quiet
check "final.h5 and checkpoints written" test -f "$T/wa/pre1/final.h5" -a -f "$T/wa/pre2/final.h5"
check "keep_checkpoints: 2 kept" test "$(ls "$T/wa/pre1/checkpoints" | wc -l)" -eq 2
check "metrics lines with the step fields" $PY - "$T/wa/metrics.jsonl" <<'PYEOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if '"step"' in l]
need = {"stage", "step", "epoch", "loss", "loss_rec", "loss_adj", "loss_cl", "grad_norm", "lr", "graphs_per_s"}
assert recs and all(need <= set(r) for r in recs), recs[:1]
assert {r["stage"] for r in recs} == {"pre1", "pre2"}
assert all(r["loss_rec"] == 0 and r["loss_adj"] == 0 for r in recs if r["stage"] == "pre2")
PYEOF
check "checkpoint layout (model, optim, state, completion mark)" $PY - "$T/wa/pre1/final.h5" <<'PYEOF'
import h5py, sys
f = h5py.File(sys.argv[1], "r")
assert f.attrs["complete"] == 1 and "enc/0/attn/Wq" in f["model"] and "in/W" in f["optim/m"]
assert f["model"].attrs["atlases"] == b"tiny" and f["state/step"][()] == 33
assert b"epochs: 3" in f["state"].attrs["config"].encode() if isinstance(f["state"].attrs["config"], str) else b"epochs: 3" in f["state"].attrs["config"]
PYEOF
mk "$T/b.yaml" "$T/wb"
BGFM_TEST_STOP_AFTER=6 "$BGFM_T" run "$T/b.yaml" --quiet >"$T/ostop" 2>&1
rc=$?
check "stopped run exits 75 after step 6" test $rc -eq 75
# a rare failure of the line above was once seen and not reproduced: keep what it printed
[ $rc -eq 75 ] || { echo "# exit $rc; the run printed:"; sed 's/^/#   /' "$T/ostop" | tail -20; }
check "a checkpoint was kept for the resume" test -f "$T/wb/.pre1.partial/checkpoints/ckpt-4.h5"
# the resume runs on 2 threads (OPENBLAS_NUM_THREADS; the model's team follows it; OpenBLAS
# caps it at the CPU count), the first part and the uninterrupted run on 1: the bits must
# not depend on the count
OPENBLAS_NUM_THREADS=2 "$BGFM" run "$T/b.yaml" >"$T/ob" 2>&1
check "rerun resumes and completes" grep -q "resuming from" "$T/ob"
want=$(( $(nproc) >= 2 ? 2 : 1 ))
check "the resumed stage ran on $want threads (metrics.jsonl)" \
  grep -q "\"stage\": \"pre1\", \"kind\": \"pretrain\", .*\"threads\": $want," "$T/wb/metrics.jsonl"
check "resumed run (on 2 threads): parameters and AdamW moments bit-identical" $PY - "$T/wa/pre1/final.h5" "$T/wb/pre1/final.h5" "$T/wa/pre2/final.h5" "$T/wb/pre2/final.h5" <<'PYEOF'
import h5py, numpy as np, sys
for a, b in [(sys.argv[1], sys.argv[2]), (sys.argv[3], sys.argv[4])]:
    fa, fb = h5py.File(a, "r"), h5py.File(b, "r")
    names = []
    fa.visit(lambda n: names.append(n) if isinstance(fa[n], h5py.Dataset) else None)
    assert len(names) > 50
    for n in names:
        assert np.array_equal(fa[n][()], fb[n][()]), n
PYEOF
check "chained stage started from pre1 (differs from random init)" $PY - "$T/wa/pre1/final.h5" "$T/wa/pre2/final.h5" <<'PYEOF'
import h5py, numpy as np, sys
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
# gcl does not train the decoder: pre2 keeps pre1's mask token (no decay) exactly
assert np.array_equal(a["model/dec/mask_token"][()], b["model/dec/mask_token"][()])
assert not np.array_equal(a["model/in/W"][()], b["model/in/W"][()])
PYEOF
# the chained stage's starting checkpoint is one of its inputs: changing the first
# stage reruns the second too, and nothing reruns when nothing changed
$BGFM run "$T/a.yaml" >"$T/r0" 2>&1
check "rerun with nothing changed: both pretrain stages up to date" test "$(grep -c "up to date, skipped" "$T/r0")" -eq 4
check "pre2's manifest lists pre1's final.h5 as an input" grep -q "pre1/final.h5" "$T/wa/pre2/manifest.json"
sed -i 's/epochs: 3, batch_size: 4/epochs: 2, batch_size: 4/' "$T/a.yaml"
$BGFM run "$T/a.yaml" --dry-run >"$T/r1" 2>&1
check "dry-run: pre1 changed, pre2 runs after it" grep -qE "pre2 +pretrain +run" "$T/r1"
$BGFM run "$T/a.yaml" >"$T/r2" 2>&1
check "changing pre1 reruns pre1 and pre2" test "$(grep -c "running: inputs or parameters changed" "$T/r2")" -eq 2
