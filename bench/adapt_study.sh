#!/usr/bin/env bash
# adapt_study.sh: a small adaptation study on a trait cohort (docs/results.md, section
# "Fine-tuning"): bgfm synth (32 labelled + 48 unlabelled subjects, 5 latent traits),
# Harvard-Oxford 48, windows of 60 TRs every 30, the demo's model pretrained 10 epochs;
# then the probe, the finetune stage, the prompt stage and the prompt stage with meta:
# reptile (tasks diagnosis and sex x the atlas) on the same folds (4 folds, seeds given),
# few-shot k = 2, 4, 8, all labelled subjects per class; each from the pretrained encoder
# and from random init. Prints, per seed, the AUC (mean +- sd over folds) of every
# method and level, and the load average. Minutes on 2 cores; not a test.
#   bench/adapt_study.sh [SEEDS]     (default "1 2"; OUT=dir keeps the runs)
# Environment: SYNTH="bgfm synth arguments" (the cohort), EPOCHS (pretraining, default 10),
# FOLDS (default 4). With `--datasets K` (K >= 3) in SYNTH: a held-out downstream dataset
# (docs/results.md section 10): ds-1 .. ds-(K-1) are pretraining datasets, ds-K the
# downstream one that pretraining never reads, and the meta stage meta-trains on the
# other datasets' diagnosis (meta_datasets) instead of meta_tasks.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_init adapt_study
SEEDS=${1:-"1 2"}
OUT=${OUT:-$T}
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
SYNTH=${SYNTH:-"--subjects 32 --unlabelled 48 --volumes 120 --tr 2 --voxel-size 3 --sites 2 --seed 21"}
EPOCHS=${EPOCHS:-10} FOLDS=${FOLDS:-4}
# shellcheck disable=SC2086
[ -d "$OUT/data" ] || "$BGFM" synth --out "$OUT/data" $SYNTH --quiet
K=$(sed -n 's/.*--datasets \([0-9]*\).*/\1/p' <<<"$SYNTH")
INPUTS="inputs: {bids: $OUT/data, label_column: diagnosis}"
META="meta_tasks: [diagnosis, sex]"
if [ -n "$K" ]; then
  INPUTS="inputs:
  label_column: diagnosis
  datasets:"
  names=()
  for k in $(seq 1 "$K"); do
    role=pretrain; [ "$k" = "$K" ] && role=downstream
    INPUTS="$INPUTS
    - {name: ds-$k, bids: $OUT/data/ds-$k, role: $role}"
    [ "$k" != "$K" ] && names+=("ds-$k")
  done
  META="meta_datasets: [$(IFS=,; echo "${names[*]}" | sed 's/,/, /g')]"
fi
for s in $SEEDS; do
  cat >"$OUT/s$s.yaml" <<YAML
name: adapt-study
workdir: $OUT/w$s
seed: $s
$INPUTS
atlases:
  - {name: ho48, path: /usr/share/mricron/templates/HarvardOxford-cort-maxprob-thr0-1mm.nii.gz}
stages:
  - {name: parcellate, uses: parcellate, with: {detrend: true, high_pass: 0.01, low_pass: 0.1, standardize: zscore}}
  - {name: connectivity, uses: connectivity, with: {windows: {length: 60, stride: 30}}}
  - {name: pretrain, uses: pretrain, with: {epochs: $EPOCHS, batch_size: 32, hidden: 64, heads: 4, ffn: 128, proj: 32, n_max: 0, warmup: 10}}
  - {name: probe, uses: probe, with: {folds: $FOLDS, repeats: 1, few_shot: [2, 4, 8, all]}}
  - {name: finetune, uses: finetune, with: {folds: $FOLDS, few_shot: [2, 4, 8, all], epochs: 20, patience: 5, batch_size: 16, lr: 1e-3}}
  - {name: prompt, uses: prompt, with: {folds: $FOLDS, few_shot: [2, 4, 8, all], epochs: 20, patience: 5, batch_size: 16}}
  - {name: prompt_meta, uses: prompt, with: {folds: $FOLDS, few_shot: [2, 4, 8, all], epochs: 20, patience: 5, batch_size: 16, meta: reptile, $META, meta_steps: 40}}
YAML
  t0=$(date +%s)
  mpirun --oversubscribe -np 2 "$BGFM" run "$OUT/s$s.yaml" --quiet --no-report
  echo "== seed $s: $(( $(date +%s) - t0 )) s, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  /usr/bin/python3 - "$OUT/w$s" <<'PY'
import json, sys
w = sys.argv[1]
p = json.load(open(w + "/probe/report/probe.json"))
ks = [r["k"] for r in p["few_shot"]]
print("k         " + "".join("%-16s" % k for k in ks))
for feat in ["pretrained", "random_init", "fc_baseline", "fc_pca"]:
    print(("probe %-11s" % feat[:11]) + "".join("%.3f +- %.3f   " % (r[feat], r[feat + "_sd"]) for r in p["few_shot"]))
for stage, tag in [("finetune", "tune "), ("prompt", "prmpt"), ("prompt_meta", "meta ")]:
    f = json.load(open("%s/%s/report/%s.json" % (w, stage, "finetune" if stage == "finetune" else "prompt")))
    for enc in f["encoders"]:
        e = f["encoders"][enc]
        print(("%s %-11s" % (tag, enc[:11])) + "".join("%.3f +- %.3f   " % (r["auc"], r["sd"]) for r in e["few_shot"]))
    print("%s trainable parameters %d of %d; wall %.0f s" % (stage, f["trainable_params"], f["model_params"], f["wall_seconds"]))
PY
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
