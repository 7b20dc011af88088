#!/usr/bin/python3
"""linear.py: what linear maps fitted on the UNLABELLED subjects (no label, no trait)
give on a trait cohort (issue 12; docs/results.md section 11): the evidence that chose
bgfm's population head (docs/model.md section 11).

usage: linear.py COHORT GRAPHS_INDEX --targets trait_1,...  [--draws 60]

Features of the labelled subjects, evaluated as oracle.py evaluates (subject means of
the windows; few-shot logistic regression AUC at k = 4, 8 per class and ridge R2 from
16, 48 subjects, alpha by leave-one-out on the training subjects; random draws):
- the FC triangle (both atlases);
- PCA: every edge standardised over the unlabelled subjects' windows, the leading r
  principal axes of the unlabelled windows;
- the same-person discriminant: in the leading 150 principal axes of the unlabelled
  windows, the r leading generalised eigenvectors of the between-subject covariance
  against the within-subject (window) covariance shrunk by s towards its mean
  eigenvalue. Both atlases are fitted together here (bgfm fits each atlas alone).
"""
import argparse, os, sys
import numpy as np
import scipy.linalg as sl
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle import read_graphs, read_participants, subject_means, evaluate  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cohort")
    ap.add_argument("index")
    ap.add_argument("--targets", required=True)
    ap.add_argument("--draws", type=int, default=60)
    o = ap.parse_args()
    targets = o.targets.split(",")
    lab_ids, unl_ids, diag, tv = read_participants(o.cohort, targets)
    atlases, graphs = read_graphs(o.index)
    means = {a: subject_means(graphs[a]) for a in atlases}
    lab = np.array([diag[p] for p in lab_ids])
    Y = np.array([tv[p] for p in lab_ids])
    X = lambda ids: np.array([np.concatenate([means[a][p] for a in atlases]) for p in ids])

    def run(name, F):
        r = evaluate(F, lab, Y, [4, 8], [16, 48], o.draws, np.random.default_rng(12))
        print(f"| {name} | {r['few_shot']['4'][0]:.3f} | {r['few_shot']['8'][0]:.3f} | "
              f"{r['few_shot_n']['16'][0]:.3f} | {r['few_shot_n']['48'][0]:.3f} |", flush=True)
    print("| features | AUC k=4 | k=8 | R2 n=16 | n=48 |\n|---|---|---|---|---|")
    XL, XU = X(lab_ids), X(unl_ids)
    run("FC triangle", XL)
    mu, sd = XU.mean(0), XU.std(0)
    sd[sd == 0] = 1
    ZL = (XL - mu) / sd
    _, _, Vt = np.linalg.svd((XU - mu) / sd, full_matrices=False)
    for r in (4, 8, 16, 32, 64):
        run(f"PCA, r = {r}", ZL @ Vt[:r].T)
    # windows of the unlabelled subjects, the atlases side by side
    P, W = [], []
    for p in unl_ids:
        per = [[x for (q, w, x) in graphs[a] if q == p] for a in atlases]
        for j in range(min(len(v) for v in per)):
            P.append(p)
            W.append(np.concatenate([per[i][j] for i in range(len(atlases))]))
    P, W = np.array(P), (np.array(W) - mu) / sd
    _, _, Vw = np.linalg.svd(W - W.mean(0), full_matrices=False)
    B = Vw[:150]
    Q = W @ B.T
    subs = sorted(set(P))
    M = np.array([Q[P == p].mean(0) for p in subs])
    g = Q.mean(0)
    Sb = (M - g).T @ (M - g) / len(subs)
    R = np.concatenate([Q[P == p] - Q[P == p].mean(0) for p in subs])
    Sw = R.T @ R / len(R)
    for s in (0.1, 0.5):
        Sws = (1 - s) * Sw + s * np.trace(Sw) / len(B) * np.eye(len(B))
        _, V = sl.eigh(Sb, Sws)
        V = V[:, ::-1]
        for r in (8, 16, 32, 64):
            run(f"same-person discriminant, s = {s}, r = {r}", ZL @ B.T @ V[:, :r])


if __name__ == "__main__":
    main()
