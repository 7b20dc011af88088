#!/usr/bin/env bash
# prompt_meta.sh: the prompt stage's meta-learned initialisation (`meta: reptile`,
# docs/adapt.md "Meta-learned prompts") in a tiny pipeline: the tasks are the
# (column, atlas) pairs; meta-training and the cell's adaptation never share subjects,
# checked from the subjects each actually read (report/meta_subjects.csv): no subject read
# by both, the meta-read ones outside the test fold and the cell's training/validation
# subjects, the pool's size as reported, every test subject read by the fit; the probe's
# folds and scipy AUCs from predictions.csv; 1 and 2 ranks agree; stopped and rerun
# identical; fewer than two tasks, a missing column, a column with another class count
# exit 3 and meta with a regression target exit 2, all before training.
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 12 --volumes 40 --seed 3
mk() { adapt_yaml "$1" "$2" "{name: pm, uses: prompt, with: $3}"; }  # mk FILE WORKDIR PROMPT_WITH
MW="{folds: 3, few_shot: [1, 2, all], epochs: 3, patience: 2, batch_size: 8, encoders: [pretrained], meta: reptile, meta_tasks: [diagnosis, sex], meta_steps: 6, meta_shots: 2}"
mk "$T/a.yaml" "$T/wa" "$MW"
expect_rc "pipeline with probe and prompt + meta on 1 rank" 0 $MPIRUN 1 "$BGFM" run "$T/a.yaml" --quiet 2>"$T/a.err"
check "  ... warning that the label among meta_tasks makes the few-shot cells not k-shot" grep -q "not k-shot results" "$T/a.err"
R="$T/wa/pm/report"
check "prompt.json: the meta block, tasks = columns x atlases" $PY - "$R/prompt.json" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
m = d["meta"]
assert m["method"] == "reptile" and m["tasks"] == [["diagnosis", "tiny"], ["sex", "tiny"]], m
assert m["steps"] == 6 and m["shots"] == 2 and m["inner_steps"] == 4
assert m["source"] == "columns" and m["k_shot"] is False, m  # diagnosis is the label
PYEOF
check "meta-training and adaptation never share subjects (from the subjects each read)" $PY - "$R" "$T/wa/probe/report/predictions.csv" <<'PYEOF'
import csv, json, sys
R = sys.argv[1]
d = json.load(open(R + "/prompt.json"))
fold = {r["participant_id"]: int(r["fold"]) for r in csv.DictReader(open(sys.argv[2])) if r["repeat"] == "0"}
rows = list(csv.DictReader(open(R + "/meta_subjects.csv")))
assert rows and not [r for r in rows if r["read"] == "both"], "a subject read by both"
read_meta = 0
for c in d["encoders"]["pretrained"]["cells"]:
    k, f = str(c["k"]), c["fold"]
    cell = [r for r in rows if r["k"] == k and int(r["fold"]) == f]
    meta = {r["participant_id"] for r in cell if r["read"] == "meta"}
    fit = {r["participant_id"] for r in cell if r["read"] == "fit"}
    test = {s for s in fold if fold[s] == f}
    assert test <= fit, "every test subject is predicted"
    assert not meta & test and all(fold[s] != f for s in meta), "meta reads the training fold only"
    assert len(fit - test) == c["train_subjects"] + c["val_subjects"], (c, fit - test)
    assert len(meta) <= c["meta_subjects"] == len(fold) - len(test) - len(fit - test), c
    read_meta += len(meta)
    if k == "all": assert c["meta_subjects"] == 0 and not meta
assert read_meta > 0, "the meta-training read some subjects"
PYEOF
check "the probe's folds; AUCs = scipy from predictions.csv" $PY "$ROOT/tests/lib/adapt_check.py" folds_auc "$R" prompt "$T/wa/probe/report/predictions.csv"
meta_ranks_resume pm 4
# ---- bad input, before training
mk "$T/e1.yaml" "$T/wa" "{folds: 3, epochs: 1, meta: reptile}"
expect_rc "one task (the label x one atlas) is exit 3" 3 $MPIRUN 1 "$BGFM" run "$T/e1.yaml" --only pm --quiet
check "  ... saying why" sh -c "$MPIRUN 1 '$BGFM' run '$T/e1.yaml' --only pm --quiet 2>&1 | grep -q 'at least two tasks'"
mk "$T/e2.yaml" "$T/wa" "{folds: 3, epochs: 1, meta: reptile, meta_tasks: [diagnosis, handedness]}"
expect_rc "a meta_tasks column not in participants.tsv is exit 3" 3 $MPIRUN 1 "$BGFM" run "$T/e2.yaml" --only pm --quiet
mk "$T/e3.yaml" "$T/wa" "{folds: 3, epochs: 1, meta: reptile, meta_tasks: [diagnosis, age]}"
expect_rc "a meta_tasks column with another class count is exit 3" 3 $MPIRUN 1 "$BGFM" run "$T/e3.yaml" --only pm --quiet
mk "$T/e4.yaml" "$T/wa" "{target: age, meta: reptile}"
expect_rc "meta with a regression target is exit 2 at validate" 2 "$BGFM" validate "$T/e4.yaml"
