#!/usr/bin/env bash
# prompt_pipeline.sh: the prompt stage (graph prompt tuning, docs/adapt.md "prompt") in a
# tiny pipeline beside a probe: report schema (finetune.json's shape plus the prompt
# fields); trainable_params = the prompts (N x H feature + N(N-1)/2 edge per atlas) + the
# head (K x H + K), from the checkpoint's H and node counts; the probe's subject folds;
# predictions.csv holds every labelled subject once per encoder; per-fold AUCs recomputed
# with scipy; the selected epoch is the argmin of the validation curve; nothing peeks
# (fold_file, fold 0's labels flipped: its cells unchanged, the others change); 1 and 2
# ranks agree; stopped after an epoch and rerun: identical predictions; bad inputs (an
# unknown prompt, an atlas the checkpoint lacks) exit 2 / 3 before training.
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 12 --volumes 40 --seed 3
mk() {  # mk FILE WORKDIR PROMPT_WITH [PARTICIPANTS] [EXTRA_ATLAS]
PARTICIPANTS=${4:-} EXTRA_ATLAS=${5:-} adapt_yaml "$1" "$2" "{name: pr, uses: prompt, with: $3}"
}
PW="{folds: 3, few_shot: [2, all], epochs: 4, patience: 2, batch_size: 8, val_fraction: 0.25}"
mk "$T/a.yaml" "$T/wa" "$PW"
expect_rc "pipeline with probe and prompt on 1 rank" 0 $MPIRUN 1 "$BGFM" run "$T/a.yaml" --quiet
R="$T/wa/pr/report"
check "prompt report files" test -s "$R/prompt.json" -a -s "$R/predictions.csv"
check "prompt.json: schema, trainable_params = prompts + head (from the checkpoint), selection = argmin" \
  $PY - "$R/prompt.json" "$T/wa/pre/final.h5" <<'PYEOF'
import json, sys, h5py
d = json.load(open(sys.argv[1]))
assert d["format"] == "bgfm-prompt" and d["kind"] == "prompt" and d["task"] == "classification"
assert d["prompts"] == ["feature", "edge"] and d["edge_margin"] == 6.0 and d["train"] == "prompts+head"
assert set(d["encoders"]) == {"pretrained", "random_init"} and d["folds"] == 3
with h5py.File(sys.argv[2], "r") as f:
    a = f["model"].attrs
    H = int(a["H"])
    nodes = [int(x) for x in a["atlas_nodes"]]
K = len(d["classes"])
prompts = sum(N * H + N * (N - 1) // 2 for N in nodes)
assert d["prompt_params"] == prompts, (d["prompt_params"], prompts)
assert d["trainable_params"] == prompts + K * H + K, (d["trainable_params"], prompts, K, H)
assert d["trainable_params"] < d["model_params"] / 3
for e in d["encoders"].values():
    assert [r["k"] for r in e["few_shot"]] == [2, "all"] and len(e["cells"]) == 6
    for c in e["cells"]:
        v = c["val_loss"]
        assert 1 <= c["epochs_run"] <= 4 and len(v) == c["epochs_run"] and c["test_subjects"] == 4
        best = min(range(len(v)), key=lambda i: (v[i], i))
        assert c["best_epoch"] == best + 1 and abs(c["best_val_loss"] - v[best]) < 1e-12
        assert c["epochs_run"] == 4 or c["epochs_run"] - c["best_epoch"] == 2
print("# H %d nodes %s prompts %d trainable %d model %d" % (H, nodes, prompts, d["trainable_params"], d["model_params"]))
PYEOF
check "same folds as the probe; every labelled subject once per encoder; AUCs = scipy" $PY "$ROOT/tests/lib/adapt_check.py" folds_auc "$R" prompt "$T/wa/probe/report/predictions.csv"
# ---- nothing peeks: fixed folds (fold_file), the labels of fold 0's subjects flipped
check "fold_file and flipped labels from the first run" $PY "$ROOT/tests/lib/adapt_check.py" flip "$R/predictions.csv" "$T/folds.tsv" "$T/d/bids/participants.tsv" "$T/flip.tsv"
NW="{folds: 3, few_shot: [2, all], epochs: 4, patience: 2, batch_size: 8, val_fraction: 0.25, fold_file: $T/folds.tsv, encoders: [pretrained]}"
PROBE_W="{fold_file: $T/folds.tsv, few_shot: [2, all]}" mk "$T/n1.yaml" "$T/wn1" "$NW"
PROBE_W="{fold_file: $T/folds.tsv, few_shot: [2, all]}" mk "$T/n2.yaml" "$T/wn2" "$NW" "$T/flip.tsv"
expect_rc "fold_file run, labels as given" 0 $MPIRUN 1 "$BGFM" run "$T/n1.yaml" --quiet
expect_rc "fold_file run, fold 0's labels flipped" 0 $MPIRUN 1 "$BGFM" run "$T/n2.yaml" --quiet
check "no peeking: test fold 0's labels change nothing of its cells' selection or predictions; the others change" $PY "$ROOT/tests/lib/adapt_check.py" nopeek "$T/wn1/pr/report" "$T/wn2/pr/report" prompt
# ---- 1 and 2 ranks, same checkpoint
cp -r "$T/wa" "$T/wb"
sed "s#$T/wa#$T/wb#" "$T/a.yaml" >"$T/b.yaml"
expect_rc "prompt stage on 2 ranks (same checkpoint)" 0 $MPIRUN 2 "$BGFM" run "$T/b.yaml" --only pr --force --quiet
check "1 and 2 ranks: the same selected epochs, predictions within 1e-4" $PY "$ROOT/tests/lib/adapt_check.py" ranks "$T/wa/pr/report" "$T/wb/pr/report" prompt
# ---- stopped after an epoch (the test hook), then rerun: the uninterrupted result
cp -r "$T/wa" "$T/wc"
sed "s#$T/wa#$T/wc#" "$T/a.yaml" >"$T/c.yaml"
rm -rf "$T/wc/pr"
BGFM_TEST_STOP_AFTER=7 $MPIRUN 2 "$BGFM_T" run "$T/c.yaml" --only pr --quiet >/dev/null 2>&1
rc=$?
[ "$rc" = 75 ] && ok "stopped after 7 epochs: exit 75" || notok "stopped after 7 epochs: exit 75 (got $rc)"
check "  ... ckpt-7.h5 in the kept partial folder, with the prompts" $PY -c "import h5py,sys; f=h5py.File(sys.argv[1]); assert f['extra/prompt'].shape[0] == 4 * 70" "$T/wc/.pr.partial/checkpoints/ckpt-7.h5"
expect_rc "  ... rerun resumes" 0 $MPIRUN 2 "$BGFM" run "$T/c.yaml" --only pr --quiet
check "  ... predictions.csv identical to the uninterrupted 2-rank run" cmp "$T/wb/pr/report/predictions.csv" "$T/wc/pr/report/predictions.csv"
# ---- bad input, before training
mk "$T/e1.yaml" "$T/wa" "{prompts: [feature, nodes]}"
expect_rc "an unknown prompt is exit 2 at validate" 2 "$BGFM" validate "$T/e1.yaml"
cp -r "$T/wa" "$T/we"
mk "$T/e2.yaml" "$T/we" "$PW" "" tiny2
"$BGFM" run "$T/e2.yaml" --only parc --force --quiet >/dev/null 2>&1
"$BGFM" run "$T/e2.yaml" --only conn --force --quiet >/dev/null 2>&1
rm -rf "$T/we/pr"
expect_rc "a prompt on an atlas the checkpoint lacks is exit 3" 3 $MPIRUN 1 "$BGFM" run "$T/e2.yaml" --only pr --force --quiet
check "  ... naming the atlas and the checkpoint" sh -c "$MPIRUN 1 '$BGFM' run '$T/e2.yaml' --only pr --force --quiet 2>&1 | grep -q \"atlas 'tiny2'.*final.h5\""
check "  ... and no prompt output" test ! -e "$T/we/pr"
