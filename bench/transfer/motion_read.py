#!/usr/bin/python3
"""motion_read.py OUT: on a foreign_pop.py cohort's transfer study (bench/transfer_study.sh
--out OUT), what each feature set's diagnosis scores follow: the AUC of head motion
alone for the diagnosis among the labelled people (truth.json), then per seed the
Spearman correlation of each feature set's out-of-fold subject scores (pooled view,
every label) with the person's log motion level, and the largest with any trait."""
import csv, json, os, sys
import numpy as np
from scipy.stats import mannwhitneyu, spearmanr

out = sys.argv[1]
truth = os.path.join(out, "cohort", "derivatives", "foreign", "truth.json")
t = {p["participant_id"]: p for p in json.load(open(truth))["participants"]}
lab = [p for p in t.values() if p["labelled"]]
m = np.array([p["motion"] for p in lab])
y = np.array([p["patient"] for p in lab])
print("%s: motion alone reads the diagnosis at AUC %.3f" % (out, mannwhitneyu(m[y], m[~y]).statistic / (y.sum() * (~y).sum())))
seed = 1
while os.path.exists(os.path.join(out, "default", "strict", "seed%d" % seed, "probe", "report", "predictions.csv")):
    rows = list(csv.DictReader(open(os.path.join(out, "default", "strict", "seed%d" % seed, "probe", "report", "predictions.csv"))))
    cols = []
    for feat in ["pretrained", "random_init", "fc_baseline", "fc_pca"]:
        sc = {}
        for r in rows:
            if r["view"] == "pooled" and r["features"] == feat:
                sc.setdefault(r["participant_id"], []).append(float(r["p_1"]))
        ids = sorted(sc)
        s = np.array([np.mean(sc[i]) for i in ids])
        mot = np.log([t[i]["motion"] for i in ids])
        tr = np.array([t[i]["traits"] for i in ids])
        best = max(abs(spearmanr(s, tr[:, k])[0]) for k in range(tr.shape[1]))
        cols.append("%s %.2f / %.2f" % (feat, spearmanr(s, mot)[0], best))
    print("  seed %d (scores with log motion / the closest trait): %s" % (seed, "; ".join(cols)))
    seed += 1
