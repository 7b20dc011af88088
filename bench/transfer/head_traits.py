#!/usr/bin/python3
"""head_traits.py: are the population head's leading directions the generator's traits?
(docs/results.md section 12p). The head (docs/model.md section 11) fitted per atlas on the
first U unlabelled people's site-centred windows, as the model fits it (150 principal
axes, shrinkage 0.1); each direction's score of every one of those people (their mean
window) regressed on their true traits (bgfm synth's model.json; least squares with an
intercept, K traits from U people); printed per atlas: the share of each of the leading
16 directions' variance the traits explain, and the generalised eigenvalues beside them.
A direction the traits explain is one the head found; one they do not is each person's
own fingerprint, topography or noise.

  bench/transfer/head_traits.py COHORT INDEX U[,U...]

Needs the synth cohort's model.json (the oracle's knowledge: never the model's). Not a
test: figures for results.md."""
import argparse, json, os, sys
import numpy as np
import scipy.linalg as sl
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from head_rank import axes, scatter, shrunk, mean_rows  # noqa: E402
from corpus_size import first_rows, unlabelled_cohort  # noqa: E402


def trait_shares(rows, true, r0=150, s=0.1, d=16):
    """(generalised eigenvalues, share of each direction's variance the traits explain)"""
    P, Q = axes(rows, r0)[:2]
    subs = sorted(set(P))
    Sb, Sw = scatter(Q, P, subs)
    ev, V = sl.eigh(Sb, shrunk(Sw, s))
    ev, V = ev[::-1][:d], V[:, ::-1][:, :d]
    M = mean_rows(Q, P, subs)
    S = (M - M.mean(0)) @ V
    Z = np.c_[np.array([true[q] for q in subs]), np.ones(len(subs))]
    fit = Z @ np.linalg.lstsq(Z, S, rcond=None)[0]
    return ev, 1 - (S - fit).var(0) / S.var(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cohort")
    ap.add_argument("index")
    ap.add_argument("sizes")
    o = ap.parse_args()
    model = json.load(open(os.path.join(o.cohort, "derivatives", "synth", "model.json")))
    true = {q["participant_id"]: np.array(q["traits"], float) for q in model["participants"]}
    unl_ids, site, atlases, graphs = unlabelled_cohort(o.cohort, o.index)
    print(f"{model['traits']} traits")
    print("| U | atlas | share of each direction's variance the traits explain, 1..16 | "
          "eigenvalues 1..10 |\n|---|---|---|---|")
    for U in [int(x) for x in o.sizes.split(",")]:
        if U > len(unl_ids):
            sys.exit(f"head_traits: {U} people asked, the cohort has {len(unl_ids)} unlabelled")
        for a in atlases:
            ev, sh = trait_shares(first_rows(graphs, a, set(unl_ids[:U]), site), true)
            print(f"| {U} | {a} | {' '.join(f'{x:.2f}' for x in sh)} | "
                  f"{' '.join(f'{x:.1f}' for x in ev[:10])} |", flush=True)


if __name__ == "__main__":
    main()
