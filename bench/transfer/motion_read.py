#!/usr/bin/python3
"""motion_read.py OUT: on a foreign_pop.py cohort's transfer study (bench/transfer_study.sh
--out OUT), what each feature set's diagnosis scores follow: the AUC of head motion
alone for the diagnosis among the labelled people (truth.json), then per seed the
Spearman correlation of each feature set's out-of-fold subject scores (pooled view,
every label) with the person's log motion level, and the largest with any trait. With
confounds files (foreign_pop.py writes them), the AUC of the mean framewise
displacement alone too. Then each feature set's AUC from those scores, and from what is
left of them once log motion is regressed out (a least-squares line over the labelled
people): how much of a feature set's reading of the diagnosis goes through motion.
OUT/cohort, else the cohort the study's seed1.yaml reads. --variant NAME: that variant's
runs (and seed1.yaml) instead of the default's."""
import csv, json, os, sys
import numpy as np
from scipy.stats import mannwhitneyu, spearmanr
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle import mean_fd  # noqa: E402

out = sys.argv[1]
variant = sys.argv[sys.argv.index("--variant") + 1] if "--variant" in sys.argv else "default"
auc = lambda v, yy: mannwhitneyu(v[yy], v[~yy]).statistic / (yy.sum() * (~yy).sum())
cohort = os.path.join(out, "cohort")
if not os.path.isdir(cohort):  # a study of another folder's cohort (--cohort): its pipeline says which
    for line in open(os.path.join(out, variant, "strict", "seed1.yaml")):
        if line.strip().startswith("bids:"):
            cohort = line.split(":", 1)[1].strip()
truth = os.path.join(cohort, "derivatives", "foreign", "truth.json")
t = {p["participant_id"]: p for p in json.load(open(truth))["participants"]}
lab = [p for p in t.values() if p["labelled"]]
m = np.array([p["motion"] for p in lab])
y = np.array([p["patient"] for p in lab])
print("%s: motion alone reads the diagnosis at AUC %.3f" % (out, auc(m, y)))
fd = [mean_fd(cohort, p["participant_id"]) for p in lab]  # what a user sees of it
if None not in fd:
    fd = np.array(fd)
    print("  mean framewise displacement alone: AUC %.3f" % auc(fd, y))
seed = 1
while os.path.exists(os.path.join(out, variant, "strict", "seed%d" % seed, "probe", "report", "predictions.csv")):
    rows = list(csv.DictReader(open(os.path.join(out, variant, "strict", "seed%d" % seed, "probe", "report", "predictions.csv"))))
    cols, aucs = [], []
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
        yy = np.array([t[i]["patient"] for i in ids], bool)
        res = s - np.polyval(np.polyfit(mot, s, 1), mot)
        aucs.append("%s %.3f / %.3f" % (feat, auc(s, yy), auc(res, yy)))
    print("  seed %d (scores with log motion / the closest trait): %s" % (seed, "; ".join(cols)))
    print("  seed %d (AUC of the scores / with log motion regressed out): %s" % (seed, "; ".join(aucs)))
    seed += 1
