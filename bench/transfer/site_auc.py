#!/usr/bin/python3
"""site_auc.py COHORT...: how well the site alone reads the diagnosis of the labelled people
(docs/results.md 12q: a site confounded with the diagnosis by chance). k per class drawn at
random (k = 4, 8), each other labelled person scored by the patient fraction of its site
among the training people (+1 / +2), AUC on them; the mean over 400 draws. No FC is read.
Not a test: figures for results.md."""
import os, sys
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle import read_table  # noqa: E402


def site_auc(cohort, k, draws=400):
    r = [x for x in read_table(cohort) if x["diagnosis"] != "n/a"]
    site = np.array([x["site"] for x in r])
    y = np.array([x["diagnosis"] == "patient" for x in r])
    rng = np.random.default_rng(0)
    got = []
    for _ in range(draws):
        tr = np.concatenate([rng.choice(np.where(y)[0], k, replace=False),
                             rng.choice(np.where(~y)[0], k, replace=False)])
        te = np.setdiff1d(np.arange(len(y)), tr)
        frac = {s: (y[tr][site[tr] == s].sum() + 1) / ((site[tr] == s).sum() + 2) for s in set(site)}
        sc = np.array([frac[s] for s in site[te]])
        p, n = sc[y[te]], sc[~y[te]]
        got.append((p[:, None] > n[None]).mean() + 0.5 * (p[:, None] == n[None]).mean())
    return float(np.mean(got))


for c in sys.argv[1:]:
    print(f"{c}: the site alone reads the diagnosis at AUC {site_auc(c, 4):.3f} (k = 4), "
          f"{site_auc(c, 8):.3f} (k = 8)")
