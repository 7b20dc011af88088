#!/usr/bin/python3
"""head_repro.py: do two halves of the people find the same leading directions? (docs/
results.md section 12p: a lead for counting the head's directions where the held-out
rule finds no plateau). Per atlas, on the first U unlabelled people's site-centred
windows (the model's 150 principal axes, shrinkage 0.1), the people are split in two
halves at random; the head is fitted on each half alone; both fits score the people of
one half, and for k = 1 .. 12 the smallest canonical correlation between the two fits' k
leading directions' scores is taken (then the same on the other half's people). Printed:
its mean over the splits. Directions that are the people's shared factors span the same
space in both halves, whatever their order within it; directions that fit one half's
own fingerprints do not. No label and no trait is read.

  bench/transfer/head_repro.py COHORT INDEX U[,U...] [--splits N] [--groups G]

--groups G: instead, G disjoint groups of --splits splits each (each a draw of what the
model's 8 splits could be), and per threshold T the answers of the fallback over the
groups: the peak over k >= 2 of a group's mean curve if at least T, else no gap, the
larger of the atlases' answers kept (as the model keeps its rank).

Not a test: figures for results.md."""
import argparse, os, sys
import numpy as np
import scipy.linalg as sl
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from head_rank import axes, scatter, shrunk, mean_rows  # noqa: E402
from corpus_size import first_rows, unlabelled_cohort  # noqa: E402

KMAX = 12


def min_canon(X, Y):
    """The smallest canonical correlation between the columns of X and of Y (centred)."""
    qx = np.linalg.qr(X - X.mean(0))[0]
    qy = np.linalg.qr(Y - Y.mean(0))[0]
    return np.linalg.svd(qx.T @ qy, compute_uv=False).min()


def reproducibility(rows, splits, rng, r0=150, s=0.1):
    """Mean over splits x halves of the smallest canonical correlation, k = 1 .. KMAX."""
    P, Q = axes(rows, r0)[:2]
    subs = np.array(sorted(set(P)))
    M = mean_rows(Q, P, subs)
    got = []
    for _ in range(splits):
        perm = rng.permutation(len(subs))
        halves = [set(subs[perm[: len(subs) // 2]]), set(subs[perm[len(subs) // 2:]])]
        V = []
        for h in halves:
            rows_h = np.array([p in h for p in P])
            Sb, Sw = scatter(Q[rows_h], P[rows_h], sorted(h), recentre=True)
            V.append(sl.eigh(Sb, shrunk(Sw, s))[1][:, ::-1][:, :KMAX])
        for h in halves:
            Mh = M[np.array([q in h for q in subs])]
            got.append([min_canon(Mh @ V[0][:, :k], Mh @ V[1][:, :k]) for k in range(1, KMAX + 1)])
    return np.mean(got, 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cohort")
    ap.add_argument("index")
    ap.add_argument("sizes")
    ap.add_argument("--splits", type=int, default=8)
    ap.add_argument("--groups", type=int, default=0)
    o = ap.parse_args()
    unl_ids, site, atlases, graphs = unlabelled_cohort(o.cohort, o.index)
    if o.groups:
        print("| U | answers at T = 0.6 | 0.65 | 0.7 |\n|---|---|---|---|")
        for U in [int(x) for x in o.sizes.split(",")]:
            curves = []
            for a in atlases:
                rows, rng = first_rows(graphs, a, set(unl_ids[:U]), site), np.random.default_rng(11)
                curves.append([reproducibility(rows, o.splits, rng) for _ in range(o.groups)])
            cells = []
            for T in (0.6, 0.65, 0.7):
                got = [max([int(np.argmax(c[g][1:])) + 2 if c[g][1:].max() >= T else 0
                            for c in curves]) for g in range(o.groups)]
                cells.append(", ".join(f"{'no gap' if v == 0 else v} in {got.count(v)}"
                                       for v in sorted(set(got))))
            print(f"| {U} | {' | '.join(cells)} |", flush=True)
        return
    print(f"| U | atlas | smallest canonical correlation of the k leading directions, k = 1 .. {KMAX} |"
          "\n|---|---|---|")
    for U in [int(x) for x in o.sizes.split(",")]:
        for a in atlases:
            c = reproducibility(first_rows(graphs, a, set(unl_ids[:U]), site), o.splits,
                                np.random.default_rng(5))
            print(f"| {U} | {a} | {' '.join(f'{x:.2f}' for x in c)} |", flush=True)


if __name__ == "__main__":
    main()
