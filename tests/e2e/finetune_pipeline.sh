#!/usr/bin/env bash
# finetune_pipeline.sh: the finetune stage (docs/adapt.md) in a tiny pipeline beside a
# probe: report schema; the same subject folds as the probe; predictions.csv holds every
# labelled subject once per encoder with probabilities summing to 1; per-fold AUCs
# recomputed from it with scipy; the selected epoch is the argmin of the recorded
# validation curve, never past the epochs run; regression (target: age) R2 recomputed
# from regression_predictions.csv; nothing peeks: with a fold_file, flipping the labels
# of fold 0's subjects leaves every cell whose test fold is 0 unchanged (validation
# curve, selected epoch, predictions) while the other cells change; 1 and 2 ranks agree
# (same checkpoint); train: head leaves the encoder's parameter count out; the bad inputs
# (non-numeric target, more folds than subjects per class, last_blocks above the
# encoder's depth, a bad fold_file) exit 2 or 3 before training.
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 12 --volumes 40 --seed 3
mk() {  # mk FILE WORKDIR FT_WITH [PARTICIPANTS] [FT2_WITH]
local x=()
[ -n "${5:-}" ] && x=("{name: ft2, uses: finetune, with: $5}")
PARTICIPANTS=${4:-} adapt_yaml "$1" "$2" "{name: ft, uses: finetune, with: $3}" "${x[@]}"
}
FW="{folds: 3, few_shot: [2, all], epochs: 4, patience: 2, batch_size: 8, val_fraction: 0.25}"
RW="{target: age, folds: 3, epochs: 3, batch_size: 8, encoders: [pretrained], train: last_blocks, llrd: 0.5}"
mk "$T/a.yaml" "$T/wa" "$FW" "" "$RW"
expect_rc "pipeline with probe, finetune (label) and finetune (age) on 1 rank" 0 $MPIRUN 1 "$BGFM" run "$T/a.yaml" --quiet
R="$T/wa/ft/report"
check "finetune report files" test -s "$R/finetune.json" -a -s "$R/predictions.csv" -a -s "$T/wa/ft2/report/regression_predictions.csv"
check "finetune.json: schema, cells, selection = argmin of the validation curve" $PY - "$R/finetune.json" <<'PYEOF'
import json, sys, math
d = json.load(open(sys.argv[1]))
assert d["format"] == "bgfm-finetune" and d["task"] == "classification" and d["folds"] == 3 and d["repeats"] == 1
assert set(d["encoders"]) == {"pretrained", "random_init"}
assert d["trainable_params"] > 0 and d["trainable_params"] <= d["model_params"] + 100
for e in d["encoders"].values():
    assert [r["k"] for r in e["few_shot"]] == [2, "all"]
    assert len(e["auc_folds"]) == 1 and len(e["auc_folds"][0]) == 3
    assert len(e["cells"]) == 6
    for c in e["cells"]:
        v = c["val_loss"]
        assert 1 <= c["epochs_run"] <= 4 and len(v) == c["epochs_run"]
        assert c["val_subjects"] >= 2 and c["test_subjects"] == 4
        best = min(range(len(v)), key=lambda i: (v[i], i))
        assert c["best_epoch"] == best + 1, (c, best)
        assert abs(c["best_val_loss"] - v[best]) < 1e-12
        # early stopping: a run ends at 4 epochs or `patience` (2) after its best
        assert c["epochs_run"] == 4 or c["epochs_run"] - c["best_epoch"] == 2
        if c["k"] == 2:
            assert c["train_subjects"] + c["val_subjects"] == 4
PYEOF
check "same folds as the probe; every labelled subject predicted once per encoder; AUCs = scipy" $PY "$ROOT/tests/lib/adapt_check.py" folds_auc "$R" finetune "$T/wa/probe/report/predictions.csv"
check "regression: R2 per fold recomputed from regression_predictions.csv; last_blocks trains fewer parameters" $PY - "$T/wa/ft2/report" "$T/d/bids/participants.tsv" <<'PYEOF'
import csv, json, sys
import numpy as np
R = sys.argv[1]
d = json.load(open(R + "/finetune.json"))
age = {r["participant_id"]: float(r["age"]) for r in csv.DictReader(open(sys.argv[2]), delimiter="\t")}
rows = list(csv.DictReader(open(R + "/regression_predictions.csv")))
assert d["task"] == "regression" and d["target"] == "age" and list(d["encoders"]) == ["pretrained"]
assert sorted(r["participant_id"] for r in rows) == sorted(age)
for f in range(3):
    t = [r for r in rows if int(r["fold"]) == f]
    y = np.array([float(r["y"]) for r in t]); p = np.array([float(r["prediction"]) for r in t])
    assert all(float(r["y"]) == age[r["participant_id"]] for r in t)
    r2 = 1 - ((y - p) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert abs(r2 - d["encoders"]["pretrained"]["r2_folds"][0][f]) < 1e-9, (r2, f)
assert d["train"] == "last_blocks" and d["trainable_params"] < d["model_params"] / 2
PYEOF
# ---- nothing peeks: fixed folds (fold_file), the labels of fold 0's subjects flipped
check "fold_file and flipped labels from the first run" $PY "$ROOT/tests/lib/adapt_check.py" flip "$R/predictions.csv" "$T/folds.tsv" "$T/d/bids/participants.tsv" "$T/flip.tsv"
NW="{folds: 3, few_shot: [2, all], epochs: 4, patience: 2, batch_size: 8, val_fraction: 0.25, fold_file: $T/folds.tsv, encoders: [pretrained]}"
PROBE_W="{fold_file: $T/folds.tsv, few_shot: [2, all], targets: [age]}" mk "$T/n1.yaml" "$T/wn1" "$NW"
mk "$T/n2.yaml" "$T/wn2" "$NW" "$T/flip.tsv"
expect_rc "fold_file run, labels as given" 0 $MPIRUN 1 "$BGFM" run "$T/n1.yaml" --quiet
expect_rc "fold_file run, fold 0's labels flipped" 0 $MPIRUN 1 "$BGFM" run "$T/n2.yaml" --quiet
check "probe with fold_file: the file's folds for every graph and for the regression; one draw" $PY - "$T/wn1/probe/report" "$T/folds.tsv" <<'PYEOF'
import csv, json, sys
R = sys.argv[1]
want = {r["participant_id"]: r["fold"] for r in csv.DictReader(open(sys.argv[2]), delimiter="\t")}
d = json.load(open(R + "/probe.json"))
assert d["repeats"] == 1 and d["folds"] == 3
g = list(csv.DictReader(open(R + "/folds.csv")))
assert len(g) == 84 and all(r["fold"] == want[r["participant_id"]] for r in g)
rr = list(csv.DictReader(open(R + "/regression_predictions.csv")))
assert rr and all(r["fold"] == want[r["participant_id"]] for r in rr)
PYEOF
check "no peeking: test fold 0's labels change nothing of its cells' selection or predictions; the others change" $PY "$ROOT/tests/lib/adapt_check.py" nopeek "$T/wn1/ft/report" "$T/wn2/ft/report" finetune
# ---- 1 and 2 ranks, same checkpoint
cp -r "$T/wa" "$T/wb"
sed "s#$T/wa#$T/wb#" "$T/a.yaml" >"$T/b.yaml"
expect_rc "finetune stage on 2 ranks (same checkpoint)" 0 $MPIRUN 2 "$BGFM" run "$T/b.yaml" --only ft --force --quiet
check "1 and 2 ranks: the same selected epochs, predictions within 1e-4" $PY "$ROOT/tests/lib/adapt_check.py" ranks "$T/wa/ft/report" "$T/wb/ft/report" finetune
# ---- bad input, before training
printf 'participant_id\tdiagnosis\tsite\tage\tsex\n' >"$T/bad.tsv"
tail -n +2 "$T/d/bids/participants.tsv" | awk -F'\t' 'BEGIN{OFS="\t"} NR==3{$4="old"} {print}' >>"$T/bad.tsv"
mk "$T/e1.yaml" "$T/we1" "{target: age, folds: 3, epochs: 1}" "$T/bad.tsv"
expect_rc "a non-numeric target is exit 3" 3 $MPIRUN 1 "$BGFM" run "$T/e1.yaml" --quiet
check "  ... naming the file, row and column" sh -c "$MPIRUN 1 '$BGFM' run '$T/e1.yaml' --quiet 2>&1 | grep -q 'bad.tsv.*age'"
mk "$T/e2.yaml" "$T/wa" "{folds: 7, epochs: 1}"
expect_rc "more folds than subjects per class is exit 3" 3 $MPIRUN 1 "$BGFM" run "$T/e2.yaml" --only ft --quiet
mk "$T/e3.yaml" "$T/wa" "{train: last_blocks, last_blocks: 5, epochs: 1}"
expect_rc "last_blocks above the encoder's blocks is exit 2" 2 $MPIRUN 1 "$BGFM" run "$T/e3.yaml" --only ft --quiet
printf 'participant_id\tfold\nsub-01\t0\n' >"$T/short.tsv"
mk "$T/e4.yaml" "$T/wa" "{fold_file: $T/short.tsv, epochs: 1}"
expect_rc "a fold_file missing a labelled subject is exit 3" 3 $MPIRUN 1 "$BGFM" run "$T/e4.yaml" --only ft --quiet
mk "$T/e5.yaml" "$T/wa" "{encoders: [pretrained, scratch]}"
expect_rc "an unknown encoder is exit 2 at validate" 2 "$BGFM" validate "$T/e5.yaml"
check "no finetune output left by the failed runs" test ! -e "$T/we1/ft/report/finetune.json"
