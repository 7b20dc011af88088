#!/usr/bin/env bash
# corpus.sh: pretraining throughput on a 3-dataset corpus (inputs.datasets, every dataset
# role pretrain) against one merged dataset holding the same scans (inputs.bids; the
# subjects renamed so they do not collide), in the same run: both pipelines parcellate
# and connect the same images, then pretrain the same model for the same steps; the
# figure is the ratio of the median training rates (graphs/s of the train_step lines,
# the first step left out). Target: the corpus within 5% of the merged dataset. The two
# runs alternate (merged, corpus, merged, corpus, ...) so that load changes hit both.
# Second figure (ADD=1, the default): adding a small dataset to a corpus that already ran
# (docs/corpus.md, "Adding or removing a dataset"): three `bgfm synth` datasets of
# ADD_S subjects (ADD_VOL volumes, the 3 mm grid, aal) run through parcellate and
# connectivity; then a fourth of ADD_S4 subjects is added. The rerun (parts of the first
# three reused) is timed against a from-scratch run over the four in a new workdir,
# alternating, ADD_REPS pairs: the ratio of `bgfm run`'s wall time, and of the two
# stages' own wall_s (metrics.jsonl).
# PRETRAIN=0 or ADD=0 leaves one of the two out. Not a test: figures for docs/performance.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_init corpus
S=${S:-12}; VOL=${VOL:-60}; EPOCHS=${EPOCHS:-6}; REPS=${REPS:-3}; NP=${NP:-2}
if [ "${PRETRAIN:-1}" = 1 ]; then  # PRETRAIN=0: the second figure only
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
fi

[ "${ADD:-1}" = 1 ] || exit 0
ADD_S=${ADD_S:-16}; ADD_S4=${ADD_S4:-2}; ADD_VOL=${ADD_VOL:-120}; ADD_REPS=${ADD_REPS:-3}
"$BGFM" synth --out "$T/syn" --datasets 3 --subjects "$ADD_S" --volumes "$ADD_VOL" --tr 2.0,1.5,0.8 --seed 21 --quiet
"$BGFM" synth --out "$T/syn4" --subjects "$ADD_S4" --volumes "$ADD_VOL" --tr 1.0 --seed 21 --first-subject 500 --quiet
add_yaml() {  # add_yaml FILE WORKDIR K: the first K of the four datasets
  {
    printf 'name: add\nworkdir: %s\ninputs:\n  datasets:\n' "$2"
    for k in $(seq 1 "$3"); do
      b=$([ "$k" = 4 ] && echo "$T/syn4" || echo "$T/syn/ds-$k")
      printf '    - {name: s%s, bids: %s, role: %s}\n' "$k" "$b" "$([ "$k" = 4 ] && echo downstream || echo pretrain)"
    done
    printf 'atlases: [{name: aal116, path: /usr/share/mricron/templates/aal.nii.gz}]\nstages:\n'
    printf '  - {name: parc, uses: parcellate, with: {detrend: true, high_pass: 0.01, low_pass: 0.1, standardize: zscore}}\n'
    printf '  - {name: conn, uses: connectivity, with: {windows: {length_s: 60, stride_s: 30}, rwse_steps: 5}}\n'
  } >"$1"
}
add_yaml "$T/add3.yaml" "$T/wa" 3
mpirun --oversubscribe --bind-to none -np "$NP" "$BGFM" run "$T/add3.yaml" --quiet --no-report
now() { date +%s.%N; }
for r in $(seq 1 "$ADD_REPS"); do
  rm -rf "$T/wi" "$T/wf"; cp -a "$T/wa" "$T/wi"   # the three-dataset run, as it was
  add_yaml "$T/addi.yaml" "$T/wi" 4; add_yaml "$T/addf.yaml" "$T/wf" 4
  order="i f"; [ $((r % 2)) -eq 0 ] && order="f i"
  for p in $order; do
    t0=$(now)
    mpirun --oversubscribe --bind-to none -np "$NP" "$BGFM" run "$T/add$p.yaml" --quiet --no-report
    echo "$p $r $(echo "$(now) - $t0" | bc)" >>"$T/add_times.txt"
    cp "$T/w$p/metrics.jsonl" "$T/add-$p-$r.jsonl"
  done
  cmp -s "$T/wi/parc/timeseries.h5" "$T/wf/parc/timeseries.h5"
  for f in "$T"/wf/conn/*.h5; do cmp -s "$f" "$T/wi/conn/$(basename "$f")"; done
done
$PY - "$T" "$ADD_REPS" "$NP" <<'PYEOF'
import json, sys, os, statistics as st
T, reps, np_ = sys.argv[1], int(sys.argv[2]), sys.argv[3]
wall = {"i": [], "f": []}
for l in open(f"{T}/add_times.txt"):
    p, r, t = l.split()
    wall[p].append(float(t))
def stages(p, r):  # the last parc and conn "stage" lines of that run
    ls = [json.loads(l) for l in open(f"{T}/add-{p}-{r}.jsonl") if '"event": "stage"' in l]
    return sum(l["wall_s"] for l in ls[-2:]), {l["stage"]: l["items"] for l in ls[-2:]}
si = [stages("i", r)[0] for r in range(1, reps + 1)]
sf = [stages("f", r)[0] for r in range(1, reps + 1)]
items_i, items_f = stages("i", 1)[1], stages("f", 1)[1]
print(f"adding a dataset: {np_} ranks, {reps} alternating pairs, load {os.getloadavg()[0]:.2f}")
print(f"  extracted / computed: rerun {items_i}, from scratch {items_f}")
print(f"  bgfm run wall: rerun median {st.median(wall['i']):.2f} s, from scratch {st.median(wall['f']):.2f} s, "
      f"ratio {st.median(wall['i']) / st.median(wall['f']):.3f}")
print(f"  parc + conn wall_s: rerun median {st.median(si):.2f} s, from scratch {st.median(sf):.2f} s, "
      f"ratio {st.median(si) / st.median(sf):.3f}")
print("  outputs byte-identical (timeseries.h5, graph store): yes")
PYEOF
