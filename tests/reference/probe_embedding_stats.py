#!/usr/bin/python3
"""probe_embedding_stats.py WORKDIR PARTICIPANTS.tsv: analysis (not a test) behind
docs/results.md section 3: per atlas, for the probe's pretrained and random-init
embeddings (WORKDIR/probe/report/embeddings.h5), the participation ratio of the
covariance, the top principal component's variance share, and the share of variance
explained by subject, diagnosis group and site means."""
import h5py, numpy as np, csv, sys
from scipy.stats import f_oneway
w, ptsv = sys.argv[1], sys.argv[2]
E = h5py.File(w + "/probe/report/embeddings.h5", "r")
rows = {int(r["graph"]): r for r in csv.DictReader(open(w + "/probe/report/folds.csv"))}
site = {r["participant_id"]: r["site"] for r in csv.DictReader(open(ptsv), delimiter="\t")}
g = E["graph"][()]
atl = np.array([rows[x]["atlas"] for x in g]); sub = np.array([rows[x]["participant_id"] for x in g])
lab = np.array([rows[x]["label"] for x in g]); st = np.array([site[s] for s in sub])
for a in ["aal116", "ho48"]:
    for t in ["pretrained", "random_init"]:
        X = E[t][()][atl == a]; X = X - X.mean(0)
        ev = np.linalg.eigvalsh(np.cov(X.T))[::-1]; pr = ev.sum() ** 2 / (ev ** 2).sum()
        # between-subject share of variance, group share, site share (of total, summed over dims)
        def share(keys):
            tot = (X ** 2).sum(); b = 0
            for k in np.unique(keys):
                m = keys[atl == a] == k; b += m.sum() * (X[m].mean(0) ** 2).sum()
            return b / tot
        s_sub, s_grp, s_site = share(sub), share(lab), share(st)
        print("%-7s %-12s PR %5.2f  var share: subject %.3f group %.4f site %.3f  top-PC share %.3f" % (a, t, pr, s_sub, s_grp, s_site, ev[0] / ev.sum()))
