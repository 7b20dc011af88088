#!/usr/bin/env bash
# probe_pipeline.sh: a tiny pipeline up to the probe stage through `bgfm run`: report
# files and schema, folds grouped by subject and stratified, per-fold AUCs recomputed
# from predictions.csv with a numpy Mann-Whitney statistic, embeddings against the
# PyTorch encoder of tests/reference/model_torch.py, identical results on a
# rerun and on 3 ranks (same checkpoint), `bgfm report` numbers = probe.json, and the
# config errors (finetune: true, more folds than subjects per class).
source "$(dirname "$0")/../lib/tap.sh"
$PY "$ROOT/tests/lib/tiny_bids.py" "$T/d" --subjects 12 --volumes 40 --seed 3 >/dev/null || { notok "tiny dataset"; exit 1; }
mk() {  # mk FILE WORKDIR PROBE_WITH
cat >"$1" <<YAML
name: pr
workdir: $2
seed: 9
inputs: {bids: $T/d/bids}
atlases:
  - {name: tiny, path: $T/d/atlas.nii.gz}
stages:
  - {name: parc, uses: parcellate, with: {standardize: zscore}}
  - {name: conn, uses: connectivity, with: {windows: {length: 10, stride: 5}}}
  - {name: pre, uses: pretrain, with: {epochs: 2, batch_size: 8, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0}}
  - {name: probe, uses: probe, with: $3}
YAML
}
mk "$T/a.yaml" "$T/wa" "{folds: 3, few_shot: [1, 2, all]}"
expect_rc "pipeline up to probe on 1 rank" 0 $MPIRUN 1 "$BGFM" run "$T/a.yaml" --quiet
R="$T/wa/probe/report"
check "report files written" test -s "$R/probe.json" -a -s "$R/folds.csv" -a -s "$R/predictions.csv" -a -s "$R/few_shot.dat" -a -s "$R/few_shot.gp"
check "few_shot.png drawn by gnuplot" $PY -c "import sys; sys.exit(0 if open('$R/few_shot.png','rb').read(8) == b'\x89PNG\r\n\x1a\n' else 1)"
check "probe.json schema" $PY - "$R/probe.json" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
views = [d["pooled"]] + [d["atlases"][a] for a in d["atlases"]]
assert list(d["atlases"]) == ["tiny"]
for v in views:
    for t in ["pretrained", "random_init", "fc_baseline"]:
        for k in ["auc", "auc_sd", "accuracy", "balanced_accuracy", "auc_folds"]:
            assert k in v[t], (t, k)
        assert len(v[t]["auc_folds"]) == 3
assert [r["k"] for r in d["few_shot"]] == [1, 2, "all"]
assert all(set(r) >= {"k", "pretrained", "random_init", "fc_baseline"} for r in d["few_shot"])
assert d["n_subjects"] == 12 and d["class_subjects"] == [6, 6]
PYEOF
check "folds grouped by subject and stratified by label" $PY - "$R/folds.csv" <<'PYEOF'
import csv, sys, collections
rows = list(csv.DictReader(open(sys.argv[1])))
fold = collections.defaultdict(set); lab = {}
for r in rows:
    fold[r["participant_id"]].add(r["fold"]); lab[r["participant_id"]] = r["label"]
assert len(fold) == 12 and all(len(f) == 1 for f in fold.values()), "a subject straddles folds"
per = collections.Counter((next(iter(fold[s])), lab[s]) for s in fold)
for f in "012":
    assert per[(f, "0")] == 2 and per[(f, "1")] == 2, per
PYEOF
check "per-fold AUCs and their mean/sd recomputed from predictions.csv (Mann-Whitney)" $PY - "$R" <<'PYEOF'
import csv, json, sys, numpy as np
from scipy.stats import mannwhitneyu
R = sys.argv[1]
d = json.load(open(R + "/probe.json"))
rows = list(csv.DictReader(open(R + "/predictions.csv")))
for view, block in [("pooled", d["pooled"]), ("tiny", d["atlases"]["tiny"])]:
    for t in ["pretrained", "random_init", "fc_baseline"]:
        aucs = []
        for f in range(3):
            rr = [r for r in rows if r["view"] == view and r["features"] == t and int(r["fold"]) == f]
            p = np.array([float(r["p_1"]) for r in rr]); y = np.array([r["label"] == "1" for r in rr])
            aucs.append(mannwhitneyu(p[y], p[~y]).statistic / (y.sum() * (~y).sum()))
        assert np.allclose(aucs, block[t]["auc_folds"], atol=1e-12), (view, t, aucs, block[t]["auc_folds"])
        assert abs(np.mean(aucs) - block[t]["auc"]) < 1e-12 and abs(np.std(aucs, ddof=1) - block[t]["auc_sd"]) < 1e-12
PYEOF
$PY "$ROOT/tests/reference/probe_embed.py" "$T/wa/pre/final.h5" "$T/wa/conn" "$R/embeddings.h5"
cp "$R/probe.json" "$T/first.json"
expect_rc "rerun of the probe stage (--only probe --force)" 0 $MPIRUN 1 "$BGFM" run "$T/a.yaml" --only probe --force --quiet
check "rerun: probe.json and folds identical" cmp -s "$T/first.json" "$R/probe.json"
cp -r "$T/wa" "$T/wb"
mk "$T/b.yaml" "$T/wb" "{folds: 3, few_shot: [1, 2, all]}"
expect_rc "probe stage on 3 ranks (same checkpoint)" 0 $MPIRUN 3 "$BGFM" run "$T/b.yaml" --only probe --force --quiet
check "3 ranks: same numbers and folds as 1 rank" $PY - "$T/first.json" "$T/wb/probe/report/probe.json" "$R/folds.csv" "$T/wb/probe/report/folds.csv" <<'PYEOF'
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
for k in ["checkpoint", "graphs"]:
    a.pop(k); b.pop(k)
assert a == b
assert open(sys.argv[3]).read() == open(sys.argv[4]).read()
PYEOF
"$BGFM" report "$T/wa" >"$T/rep.txt" 2>&1
check "bgfm report numbers = probe.json" $PY - "$T/rep.txt" "$R/probe.json" <<'PYEOF'
import json, sys, re
txt = open(sys.argv[1]).read().splitlines(); d = json.load(open(sys.argv[2]))
got = {}; view = None
for l in txt:
    m = re.match(r"^(\S+)?\s+(pretrained|random_init|fc_baseline)\s+([\d.]+) \+- ([\d.]+)\s+([\d.]+) \+- ([\d.]+)\s+([\d.]+) \+- ([\d.]+)", l)
    if m:
        view = m.group(1) or view
        got[(view, m.group(2))] = [float(x) for x in m.groups()[2:]]
assert len(got) == 6, got
for (view, t), v in got.items():
    b = d["pooled"] if view == "pooled" else d["atlases"][view]
    want = [b[t][k] for k in ["auc", "auc_sd", "accuracy", "accuracy_sd", "balanced_accuracy", "balanced_accuracy_sd"]]
    assert all(abs(x - y) <= 6e-5 for x, y in zip(v, want)), (view, t, v, want)
fs = [l.split() for l in txt if re.match(r"^(\d+|all)\s+[\d.]+\s", l)]
assert len(fs) == 3
for row, ref in zip(fs, d["few_shot"]):
    assert row[0] == str(ref["k"])
    assert all(abs(float(row[2 + i]) - ref[t]) <= 6e-5 for i, t in enumerate(["pretrained", "random_init", "fc_baseline"]))
PYEOF
expect_rc "bgfm report on a folder without a probe: exit 2" 2 "$BGFM" report "$T/d" 2>/dev/null
mk "$T/c.yaml" "$T/wc" "{finetune: true}"
"$BGFM" validate "$T/c.yaml" >"$T/c.out" 2>&1; rc=$?
check "finetune: true rejected as a config error (exit 2, names the key)" test $rc -eq 2 -a -n "$(grep -l finetune "$T/c.out")"
cp -r "$T/wa" "$T/wd"
mk "$T/e.yaml" "$T/wd" "{folds: 7}"
"$BGFM" run "$T/e.yaml" --only probe --force --quiet >"$T/e.out" 2>&1; rc=$?
check "more folds than subjects per class: exit 3 with a message" test $rc -eq 3 -a -n "$(grep -l "fewer than folds" "$T/e.out")"
