#!/usr/bin/env bash
# prompt_meta_datasets.sh: meta-learned prompts from other datasets (`meta_datasets`,
# docs/adapt.md "Meta-learned prompts"): two pretrain datasets (alpha, gamma) give the
# tasks, the downstream dataset (beta) is held out. Checked from the subjects each phase
# actually read (report/meta_subjects.csv): meta-training read only alpha's and gamma's
# subjects, the fit only beta's, in every cell including k = all; the pool's size as
# reported; prompt.json says the cells are k-shot results. 1 and 2 ranks read the same
# subjects; stopped and rerun identical. Bad input before training: an unknown dataset,
# a downstream dataset, meta_tasks beside it, no meta (exit 2); one task, a dataset
# whose labels have another class count (exit 3).
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/a" --subjects 8 --volumes 30 --seed 1
tiny_dataset "$T/b" --subjects 10 --volumes 30 --seed 2
tiny_dataset "$T/g" --subjects 8 --volumes 30 --seed 4
my() {  # my FILE WORKDIR PROMPT_WITH [EXTRA KEYS OF THE gamma ENTRY]
cat >"$1" <<YAML
name: md
workdir: $2
seed: 5
inputs:
  datasets:
    - {name: alpha, bids: $T/a/bids, role: pretrain}
    - {name: beta, bids: $T/b/bids, role: downstream}
    - {name: gamma, bids: $T/g/bids, role: pretrain${4:-}}
atlases:
  - {name: tiny, path: $T/a/atlas.nii.gz}
stages:
  - {name: parc, uses: parcellate, with: {standardize: zscore}}
  - {name: conn, uses: connectivity, with: {windows: {length: 10, stride: 5}}}
  - {name: pre, uses: pretrain, with: {epochs: 1, batch_size: 8, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0}}
  - {name: pm, uses: prompt, with: $3}
YAML
}
MW="{folds: 2, few_shot: [1, all], epochs: 2, patience: 2, batch_size: 8, encoders: [pretrained], meta: reptile, meta_datasets: [alpha, gamma], meta_steps: 6, meta_shots: 2}"
my "$T/a.yaml" "$T/wa" "$MW"
expect_rc "prompt + meta over two pretrain datasets, held-out downstream dataset: 1 rank" 0 \
  $MPIRUN 1 "$BGFM" run "$T/a.yaml" --quiet
R="$T/wa/pm/report"
check "prompt.json: tasks = datasets x atlases, pool of 16 subjects, k-shot" $PY - "$R/prompt.json" <<'PYEOF'
import json, sys
m = json.load(open(sys.argv[1]))["meta"]
assert m["tasks"] == [["alpha", "tiny"], ["gamma", "tiny"]], m
assert m["source"] == "datasets" and m["k_shot"] is True, m
assert m["pool_subjects"] == 16 and m["pool_graphs"] > 16, m
PYEOF
check "meta read only alpha/gamma subjects, the fit only beta's, in every cell" $PY - "$R" <<'PYEOF'
import csv, json, sys
R = sys.argv[1]
d = json.load(open(R + "/prompt.json"))
rows = list(csv.DictReader(open(R + "/meta_subjects.csv")))
assert rows and not [r for r in rows if r["read"] == "both"], "a subject read by both"
cells = d["encoders"]["pretrained"]["cells"]
assert {str(c["k"]) for c in cells} == {"1", "all"}, cells
for c in cells:
    cell = [r for r in rows if r["k"] == str(c["k"]) and int(r["fold"]) == c["fold"]]
    meta = {r["participant_id"] for r in cell if r["read"] == "meta"}
    fit = {r["participant_id"] for r in cell if r["read"] == "fit"}
    assert meta and all(s.split("/")[0] in ("alpha", "gamma") for s in meta), meta
    assert fit and all(s.startswith("beta/") for s in fit), fit
    assert c["meta_subjects"] == 16 and len(meta) <= 16, c
    assert len(fit) == c["train_subjects"] + c["val_subjects"] + c["test_subjects"], (c, fit)
PYEOF
meta_ranks_resume pm 3
# ---- bad input, before training
bad2() {  # bad2 NAME PROMPT_WITH: exit 2 at validate, naming the key
  my "$T/e.yaml" "$T/wa" "$2"
  local out; out=$("$BGFM" validate "$T/e.yaml" 2>&1); local rc=$?
  if [ "$rc" = 2 ] && grep -q "meta_datasets" <<<"$out"; then ok "$1: exit 2 naming meta_datasets"
  else notok "$1: exit 2 naming meta_datasets (got $rc: $out)"; fi
}
bad2 "a dataset not in inputs.datasets" "{meta: reptile, meta_datasets: [alpha, delta]}"
bad2 "a downstream dataset" "{meta: reptile, meta_datasets: [alpha, beta]}"
bad2 "meta_tasks beside meta_datasets" "{meta: reptile, meta_datasets: [alpha, gamma], meta_tasks: [sex]}"
bad2 "meta_datasets without meta" "{meta_datasets: [alpha, gamma]}"
my "$T/e5.yaml" "$T/wa" "{folds: 2, epochs: 1, meta: reptile, meta_datasets: [alpha]}"
expect_rc "one dataset x one atlas (one task) is exit 3" 3 $MPIRUN 1 "$BGFM" run "$T/e5.yaml" --only pm --quiet
check "  ... saying why" sh -c "$MPIRUN 1 '$BGFM' run '$T/e5.yaml' --only pm --quiet 2>&1 | grep -q 'at least two tasks'"
my "$T/e6.yaml" "$T/wf" "{folds: 2, epochs: 1, meta: reptile, meta_datasets: [alpha, gamma]}" ', filter: "diagnosis == patient"'
expect_rc "a dataset with one label value among its subjects (filter) is exit 3" 3 $MPIRUN 1 "$BGFM" run "$T/e6.yaml" --quiet
check "  ... naming the dataset" sh -c "$MPIRUN 1 '$BGFM' run '$T/e6.yaml' --only pm --quiet 2>&1 | grep -q \"meta_datasets 'gamma' has 1 label value\""
