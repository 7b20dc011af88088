#!/usr/bin/env bash
# probe_pipeline.sh: a tiny pipeline up to the probe stage through `bgfm run`: report
# files and schema, folds grouped by subject and stratified in every repeat, per-fold
# AUCs recomputed from predictions.csv with scipy's Mann-Whitney statistic, the
# regression of a participants.tsv column (folds grouped by subject, per-fold and pooled
# R2 and Pearson r recomputed from regression_predictions.csv), fc_pca against a numpy
# PCA of the pretraining graphs' FC, the participation ratio and subject share against
# numpy, embeddings against the PyTorch encoder of tests/reference/model_torch.py,
# identical results on a rerun and on 3 ranks (same checkpoint), `bgfm report` numbers
# = probe.json, the strict protocol (recorded; an overlap is exit 3), and the config and
# data errors (finetune: true, more folds than subjects per class, bad targets).
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 12 --volumes 40 --seed 3
mk() {  # mk FILE WORKDIR PROBE_WITH [PRETRAIN_EXTRA] [BIDS]
cat >"$1" <<YAML
name: pr
workdir: $2
seed: 9
inputs: {bids: ${5:-$T/d/bids}}
atlases:
  - {name: tiny, path: $T/d/atlas.nii.gz}
stages:
  - {name: parc, uses: parcellate, with: {standardize: zscore}}
  - {name: conn, uses: connectivity, with: {windows: {length: 10, stride: 5}}}
  - {name: pre, uses: pretrain, with: {epochs: 2, batch_size: 8, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0${4:-}}}
  - {name: probe, uses: probe, with: $3}
YAML
}
PW="{folds: 3, few_shot: [1, 2, all], targets: [age], few_shot_n: [3, 5, all], pca_components: 4}"
mk "$T/a.yaml" "$T/wa" "$PW"
expect_rc "pipeline up to probe on 1 rank" 0 $MPIRUN 1 "$BGFM" run "$T/a.yaml" --quiet
R="$T/wa/probe/report"
check "report files written" test -s "$R/probe.json" -a -s "$R/folds.csv" -a -s "$R/predictions.csv" -a -s "$R/few_shot.dat" -a -s "$R/few_shot.gp" -a -s "$R/regression_predictions.csv" -a -s "$R/embeddings.h5"
check "few_shot.png drawn by gnuplot" $PY -c "import sys; sys.exit(0 if open('$R/few_shot.png','rb').read(8) == b'\x89PNG\r\n\x1a\n' else 1)"
check "probe.json schema" $PY - "$R/probe.json" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
F = ["pretrained", "random_init", "fc_baseline", "fc_pca", "site", "motion"]
views = [d["pooled"]] + [d["atlases"][a] for a in d["atlases"]]
assert list(d["atlases"]) == ["tiny"]
assert d["format_version"] == 2 and d["repeats"] == 3 and d["folds"] == 3
for v in views:
    assert set(v["n_features"]) == set(F) and v["n_features"]["fc_pca"] == 4
    for t in F:
        for k in ["auc", "auc_sd", "accuracy", "balanced_accuracy", "auc_folds", "auc_repeats", "auc_oof", "auc_oof_repeats"]:
            assert k in v[t], (t, k)
        assert len(v[t]["auc_folds"]) == 3 and all(len(r) == 3 for r in v[t]["auc_folds"])
assert [r["k"] for r in d["few_shot"]] == [1, 2, "all"]
assert all(set(r) >= set(["k"] + F) for r in d["few_shot"])
assert d["n_subjects"] == 12 and d["class_subjects"] == [6, 6]
assert d["protocol"] == "transductive" and d["overlap_subjects"] == 12 and d["pretrain_graphs"] == d["n_graphs"] == 84
assert d["targets"] == ["age"] and set(d["regression"]) == {"age", "mean"}
g = d["regression"]["age"]
assert g["pooled"]["n_subjects"] == 12 and [r["n"] for r in g["few_shot"]] == [3, 5, "all"]
for t in F:
    assert set(g["pooled"][t]) >= {"r2", "r2_sd", "r2_folds", "r2_oof", "pearson_r", "alpha_median"}
    assert abs(d["regression"]["mean"]["pooled"][t]["r2"] - g["pooled"][t]["r2"]) < 1e-15
assert set(d["effective_dim"]["tiny"]) == set(F) and set(d["subject_variance_share"]["tiny"]) == set(F)
assert set(d["label_variance_share"]["tiny"]) == set(F) and set(d["site_variance_share"]["tiny"]) == set(F)
assert d["fc_pca"]["tiny"]["components"] == 4 and d["fc_pca"]["tiny"]["fitting_graphs"] == 84
# no confounds files: nobody's head motion is known, the motion feature set is constant
assert d["motion"] == {"subjects_known": 0, "subjects": 12, "fill_mm": 0}, d["motion"]
assert all(v["motion"]["auc"] == 0.5 for v in views) and d["effective_dim"]["tiny"]["motion"] is None
PYEOF
check "folds grouped by subject and stratified by label in each of the 3 draws" $PY - "$R/folds.csv" <<'PYEOF'
import csv, sys, collections
rows = list(csv.DictReader(open(sys.argv[1])))
draws = []
for col in ["fold", "fold_1", "fold_2"]:
    fold = collections.defaultdict(set); lab = {}
    for r in rows:
        fold[r["participant_id"]].add(r[col]); lab[r["participant_id"]] = r["label"]
    assert len(fold) == 12 and all(len(f) == 1 for f in fold.values()), "a subject straddles folds"
    per = collections.Counter((next(iter(fold[s])), lab[s]) for s in fold)
    for f in "012":
        assert per[(f, "0")] == 2 and per[(f, "1")] == 2, per
    draws.append(tuple(sorted((k, min(v)) for k, v in fold.items())))
assert len(set(draws)) == 3, "the draws are not different"
PYEOF
check "per-fold AUCs and their mean/sd over draws x folds recomputed from predictions.csv (Mann-Whitney)" $PY - "$R" <<'PYEOF'
import csv, json, sys, numpy as np
from scipy.stats import mannwhitneyu
R = sys.argv[1]
d = json.load(open(R + "/probe.json"))
rows = list(csv.DictReader(open(R + "/predictions.csv")))
for view, block in [("pooled", d["pooled"]), ("tiny", d["atlases"]["tiny"])]:
    for t in ["pretrained", "random_init", "fc_baseline", "fc_pca", "site", "motion"]:
        allf = []
        for rep in range(3):
            aucs = []
            for f in range(3):
                rr = [r for r in rows if r["view"] == view and r["features"] == t and int(r["repeat"]) == rep and int(r["fold"]) == f]
                p = np.array([float(r["p_1"]) for r in rr]); y = np.array([r["label"] == "1" for r in rr])
                aucs.append(mannwhitneyu(p[y], p[~y]).statistic / (y.sum() * (~y).sum()))
            assert np.allclose(aucs, block[t]["auc_folds"][rep], atol=1e-12), (view, t, aucs, block[t]["auc_folds"])
            allf += aucs
        assert abs(np.mean(allf) - block[t]["auc"]) < 1e-12 and abs(np.std(allf, ddof=1) - block[t]["auc_sd"]) < 1e-12
PYEOF
check "site alone: every out-of-fold probability = numpy/scipy L2 logistic regression (C = 1, standardised) on the one-hot site of every window, each view and draw" $PY - "$R" "$T/d/bids/participants.tsv" "$ROOT/tests/reference" <<'PYEOF'
import collections, csv, h5py, os, sys, numpy as np
sys.path.insert(0, sys.argv[3])
from logreg_ref import subject_oof
R = sys.argv[1]
site = {r["participant_id"]: r["site"] for r in csv.DictReader(open(sys.argv[2]), delimiter="\t")}
names = sorted(set(site.values()))
rows = [r for r in csv.DictReader(open(R + "/predictions.csv")) if r["features"] == "site"]
assert len(names) >= 2 and rows
# the classifier reads windows (one atlas here: every view's samples are the graphs), a
# subject's probability is the mean over its windows: a subject weighs its window count
E = h5py.File(R + "/embeddings.h5", "r")
win = collections.Counter(x.decode() if isinstance(x, bytes) else str(x) for x in E["participant_id"][()])
worst, n = subject_oof(rows, lambda p: [float(site[p] == q) for q in names], win)
assert worst < 1e-4 and n == 2 * 3 * 12, (worst, n)
print("# %d site-alone probabilities, max abs diff %.1e" % (n, worst))
PYEOF
check "cells.csv: the k=all AUC cells equal Mann-Whitney AUCs of predictions.csv; every few-shot and regression mean/sd of probe.json is its cells' mean/sd" $PY - "$R" <<'PYEOF'
import csv, json, sys, numpy as np
from scipy.stats import mannwhitneyu
R = sys.argv[1]
d = json.load(open(R + "/probe.json"))
cells = list(csv.DictReader(open(R + "/cells.csv")))
preds = list(csv.DictReader(open(R + "/predictions.csv")))
def vals(task, view, t, size, metric):
    return np.array([float(c["value"]) for c in cells if (c["task"], c["view"], c["features"], c["size"], c["metric"]) == (task, view, t, size, metric)])
n = 0
for view, block in [("pooled", d["pooled"]), ("tiny", d["atlases"]["tiny"])]:
    for t in ["pretrained", "random_init", "fc_baseline", "fc_pca", "site", "motion"]:
        for rep in range(3):
            for f in range(3):
                c = [float(x["value"]) for x in cells if (x["task"], x["view"], x["features"], x["size"], x["metric"], x["repeat"], x["fold"]) == ("label", view, t, "all", "auc", str(rep), str(f))]
                rr = [r for r in preds if r["view"] == view and r["features"] == t and int(r["repeat"]) == rep and int(r["fold"]) == f]
                p = np.array([float(r["p_1"]) for r in rr]); y = np.array([r["label"] == "1" for r in rr])
                assert len(c) == 1 and abs(c[0] - mannwhitneyu(p[y], p[~y]).statistic / (y.sum() * (~y).sum())) < 1e-12, (view, t, rep, f)
                n += 1
        for e in block["few_shot"]:
            v = vals("label", view, t, "all" if e["k"] == "all" else str(e["k"]), "auc")
            assert len(v) == 9 and abs(np.nanmean(v) - e[t]) < 1e-12, (view, t, e["k"], v, e[t])
            n += 1
for tg, tb in ((k, v) for k, v in d.get("regression", {}).items() if k in d["targets"]):
    for e in tb["few_shot"]:
        for t in ["pretrained", "fc_baseline"]:
            v = vals(tg, "pooled", t, "all" if e["n"] == "all" else str(e["n"]), "r2")
            assert len(v) == 9 and abs(np.mean(v) - e[t]) < 1e-12, (tg, t, e["n"], v, e[t])
            n += 1
        size = "all" if e["n"] == "all" else str(e["n"])
        null = [vals(tg, "pooled", t, size, "r2_train_mean") for t in ["pretrained", "random_init", "fc_baseline", "fc_pca", "site", "motion"]]
        assert all(np.array_equal(null[0], x) for x in null), "the null model's cells differ between feature sets"
        assert len(null[0]) == 9 and abs(np.mean(null[0]) - e["train_mean"]) < 1e-12, (tg, e["n"], null[0], e["train_mean"])
        n += 1
print(f"# {n} cells and means checked")
PYEOF
check "regression: folds grouped by subject; per-fold R2, pooled R2, Pearson r and the null model's R2 (the training subjects' mean) recomputed from regression_predictions.csv" $PY - "$R" "$T/d/bids/participants.tsv" <<'PYEOF'
import csv, json, sys, collections, numpy as np
from scipy.stats import pearsonr
R = sys.argv[1]
d = json.load(open(R + "/probe.json"))
age = {r["participant_id"]: float(r["age"]) for r in csv.DictReader(open(sys.argv[2]), delimiter="\t")}
rows = list(csv.DictReader(open(R + "/regression_predictions.csv")))
fold_of = collections.defaultdict(set)
for r in rows:
    fold_of[(r["repeat"], r["participant_id"])].add(r["fold"])
    assert float(r["y"]) == age[r["participant_id"]]
assert all(len(f) == 1 for f in fold_of.values()), "a subject is in two regression folds of one draw"
for view, block in [("pooled", d["regression"]["age"]["pooled"]), ("tiny", d["regression"]["age"]["atlases"]["tiny"])]:
    for t in ["pretrained", "random_init", "fc_baseline", "fc_pca", "site", "motion"]:
        allf, oof, prs = [], [], []
        for rep in range(3):
            rr = [r for r in rows if r["view"] == view and r["features"] == t and int(r["repeat"]) == rep]
            assert sorted(r["participant_id"] for r in rr) == sorted(age), "each subject predicted once"
            y = np.array([float(r["y"]) for r in rr]); p = np.array([float(r["prediction"]) for r in rr])
            f = np.array([int(r["fold"]) for r in rr])
            assert sorted(np.bincount(f)) == [4, 4, 4]
            r2 = [1 - np.sum((y[f == k] - p[f == k]) ** 2) / np.sum((y[f == k] - y[f == k].mean()) ** 2) for k in range(3)]
            assert np.allclose(r2, block[t]["r2_folds"][rep], rtol=1e-10, atol=1e-12), (view, t, r2, block[t]["r2_folds"][rep])
            allf += r2
            oof.append(1 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2))
            prs.append(pearsonr(y, p)[0])
        assert abs(np.mean(allf) - block[t]["r2"]) < 1e-10 and abs(np.std(allf, ddof=1) - block[t]["r2_sd"]) < 1e-10
        assert np.allclose(oof, block[t]["r2_oof_repeats"], rtol=1e-10) and abs(np.mean(oof) - block[t]["r2_oof"]) < 1e-10
        assert np.allclose(prs, block[t]["pearson_r_repeats"], rtol=1e-9) and abs(np.mean(prs) - block[t]["pearson_r"]) < 1e-9
    # the null model: each test fold predicted by the mean age of the other folds' subjects
    null = []
    for rep in range(3):
        rr = [r for r in rows if r["view"] == view and r["features"] == "pretrained" and int(r["repeat"]) == rep]
        y = np.array([float(r["y"]) for r in rr]); f = np.array([int(r["fold"]) for r in rr])
        null += [1 - np.sum((y[f == k] - y[f != k].mean()) ** 2) / np.sum((y[f == k] - y[f == k].mean()) ** 2) for k in range(3)]
    assert abs(np.mean(null) - block["train_mean_r2"]) < 1e-10 and abs(np.std(null, ddof=1) - block["train_mean_r2_sd"]) < 1e-10, (view, null, block["train_mean_r2"])
    assert max(null) <= 1e-12, "a constant prediction has R2 <= 0 about the test fold's mean"
PYEOF
check "fc_pca = numpy PCA of the pretraining graphs' FC (scores up to sign); effective dimension and subject, label and site shares = numpy" $PY - "$T/wa/pre/final.h5" "$T/wa/conn" "$R" <<'PYEOF'
import h5py, json, os, sys, numpy as np
ck, gdir, R = sys.argv[1:4]
d = json.load(open(R + "/probe.json"))
s = lambda x: x.decode() if isinstance(x, bytes) else str(x)
idx = h5py.File(os.path.join(gdir, "index.h5"), "r")
shards = [s(x) for x in idx["shards"][()]]
names = [s(x) for x in idx["atlases"][()]]
def tri(g):
    an = names[idx["graphs/atlas"][g]]
    C = h5py.File(os.path.join(gdir, shards[idx["graphs/shard"][g]]), "r")["graphs/%s/fc" % an][idx["graphs/row"][g]]
    return C[np.triu_indices(C.shape[0], 1)].astype(np.float64)
pre = h5py.File(ck, "r")["pretrain_graphs"][()]
assert len(pre) == d["pretrain_graphs"]
X = np.array([tri(g) for g in pre]); mu = X.mean(0)
U, sv, Vt = np.linalg.svd(X - mu, full_matrices=False)
k = d["fc_pca"]["tiny"]["components"]
assert k == min(4, len(pre) - 1, X.shape[1])
E = h5py.File(R + "/embeddings.h5", "r")
assert s(E.attrs["format"]) == "bgfm-embeddings" and int(E.attrs["format_version"]) == 1
G = E["graph"][()]
P = np.array([tri(g) for g in G])
ref = (P - mu) @ Vt[:k].T
got = E["fc_pca"][()][:, :k]
sign = np.sign(np.sum(got * ref, axis=0))
err = np.abs(got - ref * sign).max() / np.abs(ref).max()
assert err < 1e-6, err
assert abs(d["fc_pca"]["tiny"]["variance_share"] - np.sum(sv[:k] ** 2) / np.sum(sv ** 2)) < 1e-9
sub = np.array([s(x) for x in E["participant_id"][()]])
nsh = 0
site = np.array([s(x) for x in idx["graphs/site"][()][G]])
onehot = np.array([[float(q == w) for w in sorted(set(site[site != ""]))] for q in site])
for t in ["pretrained", "random_init", "fc_pca", "fc_baseline", "site"]:
    Z = P if t == "fc_baseline" else onehot if t == "site" else E[t][()][:, :k] if t == "fc_pca" else E[t][()]
    lam = np.linalg.eigvalsh(np.cov(Z.T))
    pr = lam.sum() ** 2 / (lam ** 2).sum()
    assert abs(pr - d["effective_dim"]["tiny"][t]) < 1e-8 * pr, (t, pr, d["effective_dim"]["tiny"][t])
    m = Z.mean(0)
    b = sum((sub == q).sum() * np.sum((Z[sub == q].mean(0) - m) ** 2) for q in set(sub))
    assert abs(b / np.sum((Z - m) ** 2) - d["subject_variance_share"]["tiny"][t]) < 1e-10
    # label and site shares: the same ratio with the graph's label / site as the group
    # (over the graphs with a label / a known site)
    lab = idx["graphs/label"][()][G]
    for key, grp, ok in (("label_variance_share", lab, lab >= 0), ("site_variance_share", site, site != "")):
        groups = sorted(set(grp[ok].tolist()))
        assert len(groups) >= 2, (key, groups)
        Zk = Z[ok]; gk = grp[ok]; mk = Zk.mean(0)
        b = sum((gk == q).sum() * np.sum((Zk[gk == q].mean(0) - mk) ** 2) for q in groups)
        assert abs(b / np.sum((Zk - mk) ** 2) - d[key]["tiny"][t]) < 1e-10, (key, t)
        nsh += 1
print("# fc_pca max rel err %.1e; %d label/site shares = numpy" % (err, nsh))
# label by site: each labelled subject once, at the site of its first probed graph
from scipy.stats import chi2_contingency
ls = d["label_site"]
first = {}
for g, q in zip(G, sub):
    if q not in first:
        first[q] = g
labs = idx["graphs/label"][()]; sites_all = np.array([s(x) for x in idx["graphs/site"][()]])
sites = sorted({sites_all[g] for g in first.values() if sites_all[g] != ""})
assert ls["sites"] == sites, (ls["sites"], sites)
tab = np.zeros((len(sites), len(d["classes"])), dtype=int)
for q, g in first.items():
    if labs[g] >= 0 and sites_all[g] != "":
        tab[sites.index(sites_all[g]), d["classes"].index(int(labs[g]))] += 1
assert (np.array(ls["counts"]) == tab).all(), (ls["counts"], tab)
keep = tab[tab.sum(1) > 0][:, tab.sum(0) > 0]
c2, pv, dof, _ = chi2_contingency(keep, correction=False)
assert ls["dof"] == dof and abs(ls["chi2"] - c2) < 1e-10 and abs(ls["p"] - pv) < 1e-12, (ls, c2, pv, dof)
print("# label by site %s: chi2 %.4f dof %d p %.4g = scipy" % (tab.tolist(), c2, dof, pv))
PYEOF
$PY "$ROOT/tests/reference/probe_embed.py" "$T/wa/pre/final.h5" "$T/wa/conn" "$R/embeddings.h5"
cp "$R/probe.json" "$T/first.json"; cp "$R/regression_predictions.csv" "$T/first_reg.csv"
expect_rc "rerun of the probe stage (--only probe --force)" 0 $MPIRUN 1 "$BGFM" run "$T/a.yaml" --only probe --force --quiet 2> "$T/rerun.err"
# the labelled subjects of this cohort are split by site (6/0, 0/6): one warning, naming the key
check "a label split by site is warned about once (chi-squared p, probe.json key)" \
  test "$(grep -c 'label is unevenly spread over the 2 sites.*p = 0.000532.*"label_site"' "$T/rerun.err")" = 1
check "rerun: probe.json and regression predictions identical" sh -c 'cmp -s "$1" "$2" && cmp -s "$3" "$4"' _ "$T/first.json" "$R/probe.json" "$T/first_reg.csv" "$R/regression_predictions.csv"
cp -r "$T/wa" "$T/wb"
mk "$T/b.yaml" "$T/wb" "$PW"
expect_rc "probe stage on 3 ranks (same checkpoint)" 0 $MPIRUN 3 "$BGFM" run "$T/b.yaml" --only probe --force --quiet 2> "$T/r3.err"
check "on 3 ranks the label-by-site warning is printed once" test "$(grep -c 'label is unevenly spread' "$T/r3.err")" = 1
check "3 ranks: same numbers, folds, predictions and embeddings as 1 rank" $PY - "$T/first.json" "$T/wb/probe/report" "$R" <<'PYEOF'
import json, sys, h5py, numpy as np
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2] + "/probe.json"))
for k in ["checkpoint", "graphs"]:
    a.pop(k); b.pop(k)
assert a == b
for f in ["folds.csv", "predictions.csv", "regression_predictions.csv"]:
    assert open(sys.argv[2] + "/" + f).read() == open(sys.argv[3] + "/" + f).read(), f
A, B = h5py.File(sys.argv[2] + "/embeddings.h5", "r"), h5py.File(sys.argv[3] + "/embeddings.h5", "r")
for k in ["graph", "pretrained", "random_init", "fc_pca", "participant_id"]:
    assert np.array_equal(A[k][()], B[k][()]), k
PYEOF
# regress_out: [motion] where nobody's motion is known (no confounds): a warning, and
# nothing regressed out (every AUC as without it)
cp -r "$T/wa" "$T/wr"
mk "$T/r.yaml" "$T/wr" "{folds: 3, few_shot: [1, 2, all], targets: [age], few_shot_n: [3, 5, all], pca_components: 4, regress_out: [motion]}"
expect_rc "regress_out: [motion] without confounds runs" 0 $MPIRUN 1 "$BGFM" run "$T/r.yaml" --only probe --force --quiet 2> "$T/rr.err"
check "regress_out without any known motion: warned once, recorded, every AUC as without it (1e-9)" $PY - "$T/first.json" "$T/wr/probe/report/probe.json" "$T/rr.err" <<'PYEOF'
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert open(sys.argv[3]).read().count("regress_out lists motion, but no probed subject's head motion is known") == 1
assert a["regress_out"] == [] and b["regress_out"] == ["motion"]
for v in ["pooled"]:
    for t in ["pretrained", "random_init", "fc_baseline", "fc_pca", "site", "motion"]:
        assert abs(a[v][t]["auc"] - b[v][t]["auc"]) < 1e-9, (t, a[v][t]["auc"], b[v][t]["auc"])
PYEOF
"$BGFM" report "$T/wa" >"$T/rep.txt" 2>&1
check "bgfm report numbers = probe.json (classification, few-shot, representation, regression)" $PY - "$T/rep.txt" "$R/probe.json" <<'PYEOF'
import json, sys, re
txt = open(sys.argv[1]).read().splitlines(); d = json.load(open(sys.argv[2]))
F = ["pretrained", "random_init", "fc_baseline", "fc_pca", "site", "motion"]
num = r"(-?[\d.]+)"
got, reg = {}, {}; view = None; part = "cls"
for l in txt:
    if l.startswith("regression of"): part = "reg"
    m = re.match(r"^(\S+)?\s+(pretrained|random_init|fc_baseline|fc_pca|site|motion)\s+%s \+- %s\s+%s(?: \+- %s\s+%s \+- %s)?" % ((num,) * 6), l)
    if m:
        view = m.group(1) or view
        (got if part == "cls" else reg)[(view, m.group(2))] = [float(x) for x in m.groups()[2:] if x is not None]
assert len(got) == 12 and len(reg) == 12, (got, reg)
for (view, t), v in got.items():
    b = d["pooled"] if view == "pooled" else d["atlases"][view]
    want = [b[t][k] for k in ["auc", "auc_sd", "accuracy", "accuracy_sd", "balanced_accuracy", "balanced_accuracy_sd"]]
    assert all(abs(x - y) <= 6e-5 for x, y in zip(v, want)), (view, t, v, want)
for (view, t), v in reg.items():
    g = d["regression"]["age"]
    b = g["pooled"] if view == "pooled" else g["atlases"][view]
    want = [b[t][k] for k in ["r2", "r2_sd", "r2_oof", "pearson_r"]]
    assert all(abs(x - y) <= 6e-5 for x, y in zip(v, want)), (view, t, v, want)
fs = [l.split() for l in txt if re.match(r"^(\d+|all)\s+[\d.]+\s", l)]
assert len(fs) == 6, fs
for row, ref in zip(fs[:3], d["few_shot"]):
    assert row[0] == str(ref["k"])
    assert all(abs(float(row[2 + i]) - ref[t]) <= 6e-5 for i, t in enumerate(F))
for row, ref in zip(fs[3:], d["regression"]["age"]["few_shot"]):
    assert row[0] == str(ref["n"])
    assert all(abs(float(row[2 + i]) - ref[t]) <= 6e-5 for i, t in enumerate(F))
    assert len(row) == 9 and abs(float(row[8]) - ref["train_mean"]) <= 6e-5, (row, ref)
for row, ref in zip(fs[:3], d["few_shot"]):
    assert len(row) == 8, row  # classification rows have no null model column
ed = [l.split() for l in txt if re.match(r"^(tiny)?\s+(pretrained|random_init|fc_baseline|fc_pca|site|motion)\s+([\d.]+|n/a)\s+\d+(\s+([\d.]+|n/a)){3}\s*$", l)]
assert len(ed) == 6, ed
for row in ed:
    t = row[-6]
    want = d["effective_dim"]["tiny"][t]
    assert (row[-5] == "n/a" and want is None) if t == "motion" else abs(float(row[-5]) - want) <= 6e-3, row
    for col, key in ((-3, "subject_variance_share"), (-2, "label_variance_share"), (-1, "site_variance_share")):
        want = d[key]["tiny"][t]
        assert want is None if row[col] == "n/a" else abs(float(row[col]) - want) <= 6e-4, (key, row)
ls = d["label_site"]
line = [l for l in txt if l.startswith("labelled subjects per site and label")]
assert len(line) == 1, line
want = ", ".join("%s %s" % (q, "/".join(str(v) for v in c)) for q, c in zip(ls["sites"], ls["counts"]))
assert line[0].endswith("): " + want), (line, want)
chi = [l for l in txt if l.startswith("chi-squared ")]
assert len(chi) == 1 and ("p = %.3g," % ls["p"]) in chi[0] and ("dof %d," % ls["dof"]) in chi[0], chi
PYEOF
expect_rc "bgfm report on a folder without a probe: exit 2" 2 "$BGFM" report "$T/d" 2>/dev/null
mk "$T/c.yaml" "$T/wc" "{finetune: true}"
"$BGFM" validate "$T/c.yaml" >"$T/c.out" 2>&1; rc=$?
check "finetune: true rejected as a config error (exit 2, names the key)" test $rc -eq 2 -a -n "$(grep -l finetune "$T/c.out")"
cp -r "$T/wa" "$T/wd"
mk "$T/e.yaml" "$T/wd" "{folds: 7}"
"$BGFM" run "$T/e.yaml" --only probe --force --quiet >"$T/e.out" 2>&1; rc=$?
check "more folds than subjects per class: exit 3 with a message" test $rc -eq 3 -a -n "$(grep -l "fewer than folds" "$T/e.out")"
# ---- targets: errors name the file, the row and the column (exit 3) ----
cp -r "$T/wa" "$T/wt"
mk "$T/t1.yaml" "$T/wt" "{folds: 3, targets: [height]}"
"$BGFM" run "$T/t1.yaml" --only probe --force --quiet >"$T/t1.out" 2>&1; rc=$?
check "a targets column missing from participants.tsv: exit 3 naming the file and the column" test $rc -eq 3 -a -n "$(grep -l "participants.tsv has no column 'height'" "$T/t1.out")"
mk "$T/t2.yaml" "$T/wt" "{folds: 3, targets: [age, sex]}"
"$BGFM" run "$T/t2.yaml" --only probe --force --quiet >"$T/t2.out" 2>&1; rc=$?
check "a non-numeric targets value: exit 3 naming the file, row and column" test $rc -eq 3 -a -n "$(grep -l "participants.tsv: row 1 (participant 'sub-01'), column 'sex': 'M' is not a number" "$T/t2.out")"
mk "$T/t3.yaml" "$T/wt" "{targets: [age, age]}"
"$BGFM" validate "$T/t3.yaml" >"$T/t3.out" 2>&1; rc=$?
check "a target listed twice, or few_shot_n below 3: config errors (exit 2)" test $rc -eq 2 -a -n "$(grep -l "listed twice" "$T/t3.out")"
mk "$T/t4.yaml" "$T/wt" "{few_shot_n: [2, all]}"
expect_rc "few_shot_n: [2, all] rejected by validate" 2 sh -c '"$1" validate "$2" >/dev/null 2>&1' _ "$BGFM" "$T/t4.yaml"
mk "$T/t5.yaml" "$T/wt" "{regress_out: [motion, scanner]}"
"$BGFM" validate "$T/t5.yaml" >"$T/t5.out" 2>&1; rc=$?
check "regress_out: [motion, scanner]: a config error (exit 2) naming the file, line, key and item" test $rc -eq 2 -a -n "$(grep -E "t5.yaml:[0-9]+.*regress_out.*'scanner' is not a confound the probe knows: motion or site" "$T/t5.out")"
# ---- strict protocol: 4 unlabelled subjects are all pretraining reads ----
tiny_dataset "$T/s" --subjects 16 --volumes 40 --seed 4
$PY - "$T/s/bids/participants.tsv" <<'PYEOF'
import sys
l = open(sys.argv[1]).read().splitlines()
out = [l[0]] + [r if i < 12 else "\t".join([r.split("\t")[0], "n/a"] + r.split("\t")[2:]) for i, r in enumerate(l[1:])]
open(sys.argv[1], "w").write("\n".join(out) + "\n")
PYEOF
mk "$T/s.yaml" "$T/ws" "{folds: 3, few_shot: [2, all], targets: [age], few_shot_n: [3, all]}" ", protocol: strict" "$T/s/bids"
expect_rc "strict pipeline up to probe" 0 $MPIRUN 1 "$BGFM" run "$T/s.yaml" --quiet
check "strict: protocol recorded, no probed subject among the pretraining graphs (checked from the graphs read)" $PY - "$T/ws" <<'PYEOF'
import csv, json, sys, h5py
w = sys.argv[1]
d = json.load(open(w + "/probe/report/probe.json"))
pre = h5py.File(w + "/pre/final.h5", "r")["pretrain_graphs"][()]
idx = h5py.File(w + "/conn/index.h5", "r")
pid = [x.decode() if isinstance(x, bytes) else x for x in idx["graphs/participant_id"][()]]
read = {pid[g] for g in pre}
probed = {r["participant_id"] for r in csv.DictReader(open(w + "/probe/report/folds.csv"))}
assert d["protocol"] == "strict" and d["overlap_subjects"] == 0 and d["pretrain_graphs"] == len(pre)
assert read == {"sub-13", "sub-14", "sub-15", "sub-16"} and not (read & probed) and len(probed) == 12
assert d["regression"]["age"]["pooled"]["n_subjects"] == 12
PYEOF
mk "$T/s2.yaml" "$T/ws" "{folds: 3, targets: [age], target_subjects: all}" ", protocol: strict" "$T/s/bids"
"$BGFM" run "$T/s2.yaml" --only probe --force --quiet >"$T/s2.out" 2>&1; rc=$?
check "strict: probing the unlabelled subjects' targets too is exit 3 naming the checkpoint and a participant" test $rc -eq 3 -a -n "$(grep -l "final.h5 was pretrained under protocol 'strict' but read graphs of 4 probed subject(s), e.g. 'sub-13'" "$T/s2.out")"
