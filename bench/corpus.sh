#!/usr/bin/env bash
# corpus.sh: pretraining throughput on a 3-dataset corpus (inputs.datasets, every dataset
# role pretrain) against one merged dataset holding the same scans (inputs.bids; the
# subjects renamed so they do not collide), in the same run: both pipelines parcellate
# and connect the same images, then pretrain the same model for the same steps; the
# figure is the ratio of the median training rates (graphs/s of the train_step lines,
# the first step left out). Target: the corpus within 5% of the merged dataset. The two
# runs alternate (merged, corpus, merged, corpus, ...) so that load changes hit both.
# Not a test: figures for docs/performance.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_init corpus
S=${S:-12}; VOL=${VOL:-60}; EPOCHS=${EPOCHS:-6}; REPS=${REPS:-3}; NP=${NP:-2}
for k in 1 2 3; do
  $PY "$ROOT/tests/lib/tiny_bids.py" "$T/d$k" --subjects "$S" --volumes "$VOL" --seed "$k" >/dev/null
done
# the merged dataset: the same image files, subjects renamed sub-<k><id>
mkdir -p "$T/merged"
head -1 "$T/d1/bids/participants.tsv" >"$T/merged/participants.tsv"
for k in 1 2 3; do
  for d in "$T/d$k/bids"/sub-*; do
    id=$(basename "$d"); new="sub-${k}${id#sub-}"
    mkdir -p "$T/merged/$new/func"
    for f in "$d"/func/*; do ln -s "$f" "$T/merged/$new/func/$(basename "$f" | sed "s/^$id/$new/")"; done
  done
  tail -n +2 "$T/d$k/bids/participants.tsv" | sed "s/^sub-/sub-$k/" >>"$T/merged/participants.tsv"
done
STAGES="stages:
  - {name: parc, uses: parcellate, with: {standardize: zscore}}
  - {name: conn, uses: connectivity, with: {windows: {length: 20, stride: 10}}}
  - {name: pre, uses: pretrain, with: {epochs: $EPOCHS, batch_size: 16, hidden: 64, heads: 4, ffn: 128, proj: 16, n_max: 0}}"
cat >"$T/merged.yaml" <<YAML
name: merged
workdir: $T/wm
inputs: {bids: $T/merged}
atlases: [{name: tiny, path: $T/d1/atlas.nii.gz}]
$STAGES
YAML
cat >"$T/corpus.yaml" <<YAML
name: corpus
workdir: $T/wc
inputs:
  datasets:
    - {name: d1, bids: $T/d1/bids, role: pretrain}
    - {name: d2, bids: $T/d2/bids, role: pretrain}
    - {name: d3, bids: $T/d3/bids, role: pretrain}
atlases: [{name: tiny, path: $T/d1/atlas.nii.gz}]
$STAGES
YAML
for p in merged corpus; do
  mpirun --oversubscribe --bind-to none -np "$NP" "$BGFM" run "$T/$p.yaml" --only parc --quiet
  mpirun --oversubscribe --bind-to none -np "$NP" "$BGFM" run "$T/$p.yaml" --only conn --quiet
done
for r in $(seq 1 "$REPS"); do
  order="merged corpus"; [ $((r % 2)) -eq 0 ] && order="corpus merged"  # neither always first
  for p in $order; do
    w=$([ $p = merged ] && echo wm || echo wc)
    rm -f "$T/$w/metrics.jsonl"
    mpirun --oversubscribe --bind-to none -np "$NP" "$BGFM" run "$T/$p.yaml" --only pre --force --quiet
    cp "$T/$w/metrics.jsonl" "$T/$p-$r.jsonl"
  done
done
$PY - "$T" "$REPS" "$NP" <<'PYEOF'
import json, sys, os, statistics as st, h5py
T, reps, np_ = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def rates(p):
    out = []
    for r in range(1, reps + 1):
        steps = [json.loads(l) for l in open(f"{T}/{p}-{r}.jsonl") if '"train_step"' in l]
        out += [s["graphs_per_s"] for s in steps[1:]]
    return out
gm = h5py.File(f"{T}/wm/conn/index.h5", "r").attrs["n_graphs"]
gc = h5py.File(f"{T}/wc/conn/index.h5", "r").attrs["n_graphs"]
assert gm == gc, (gm, gc)
m, c = st.median(rates("merged")), st.median(rates("corpus"))
print(f"{gm} graphs, {np_} ranks, {reps} alternating runs each, load {os.getloadavg()[0]:.2f}")
print(f"merged dataset (inputs.bids):   median {m:9.1f} graphs/s")
print(f"3-dataset corpus (datasets):    median {c:9.1f} graphs/s")
print(f"corpus / merged = {c / m:.3f} (target >= 0.95)")
PYEOF
