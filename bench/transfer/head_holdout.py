#!/usr/bin/python3
"""head_holdout.py: a rank for the population head read off the unlabelled subjects by a
held-out criterion (docs/results.md section 12g, "a rank chosen from the data"). Per atlas:
split the unlabelled subjects in two halves (2 random splits x both ways), fit the
same-person discriminant on one half (150 principal axes of all unlabelled windows,
shrinkage 0.1), and score each of its directions v on the other half by the ratio
v'Sb v / v'Sw v; the rank is the number of leading directions whose held-out ratio is at
least C times the median ratio of directions 17 to 64 (the bulk), averaged over the four
fits, at least 2. Then the head at that rank, alone, is evaluated as head_rank.py does.
Exploratory; not in the model.

  bench/transfer/head_holdout.py COHORT INDEX C[,C...] [--draws N]"""
import argparse, os, sys
import numpy as np
import scipy.linalg as sl
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle import read_graphs, read_table, participants_from, subject_means, evaluate  # noqa: E402
from head_rank import head  # noqa: E402


def scatter(Q, P, subs):
    M = np.array([Q[P == p].mean(0) for p in subs])
    M = M - M.mean(0)
    R = np.concatenate([Q[P == p] - Q[P == p].mean(0) for p in subs])
    return M.T @ M / len(subs), R.T @ R / len(R)


def held_out_ranks(rows, cs, r0=150, s=0.1):
    P = np.array([q for q, _ in rows])
    W = np.array([x for _, x in rows], dtype=float)
    mu, sd = W.mean(0), W.std(0)
    sd[sd == 0] = 1
    W = (W - mu) / sd
    W = W - W.mean(0)
    _, _, Vt = np.linalg.svd(W, full_matrices=False)
    Q = W @ Vt[:r0].T
    subs = np.array(sorted(set(P)))
    rng = np.random.default_rng(7)
    found = {c: [] for c in cs}
    for _ in range(2):
        perm = rng.permutation(len(subs))
        halves = [subs[perm[: len(subs) // 2]], subs[perm[len(subs) // 2:]]]
        for h in (0, 1):
            a, b = set(halves[h]), set(halves[1 - h])
            ia = np.array([p in a for p in P])
            SbA, SwA = scatter(Q[ia], P[ia], sorted(a))
            SbB, SwB = scatter(Q[~ia], P[~ia], sorted(b))
            SwA = (1 - s) * SwA + s * np.trace(SwA) / r0 * np.eye(r0)
            _, V = sl.eigh(SbA, SwA)
            V = V[:, ::-1][:, :64]
            rho = np.array([(v @ SbB @ v) / (v @ SwB @ v) for v in V.T])
            bulk = np.median(rho[16:])
            for c in cs:
                k = 0
                while k < 16 and rho[k] >= c * bulk:
                    k += 1
                found[c].append(k)
    return {c: int(max(2, round(np.mean(v)))) for c, v in found.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cohort")
    ap.add_argument("index")
    ap.add_argument("cs")
    ap.add_argument("--draws", type=int, default=40)
    o = ap.parse_args()
    cs = [float(x) for x in o.cs.split(",")]
    rows = read_table(o.cohort)
    targets = [c for c in rows[0] if c == "score" or c.startswith("trait_")]
    lab_ids, unl_ids, diag, tv = participants_from(rows, targets)
    lab = np.array([diag[p] for p in lab_ids])
    Y = np.array([tv[p] for p in lab_ids])
    atlases, graphs = read_graphs(o.index)
    U = set(unl_ids)
    unl = {a: [(q, x) for (q, w, x) in graphs[a] if q in U] for a in atlases}
    means = {a: subject_means(graphs[a]) for a in atlases}
    ranks = {a: held_out_ranks(unl[a], cs) for a in atlases}
    print("| C | ranks | AUC k=4 | k=8 | R2 n=16 | n=48 |\n|---|---|---|---|---|---|")
    for c in cs:
        parts = [head(unl[a], means[a], lab_ids, 150, ranks[a][c], 0.1) for a in atlases]
        F = np.concatenate([f for f, _ in parts], 1)
        res = evaluate(F, lab, Y, [4, 8], [16, 48], o.draws, np.random.default_rng(12))
        print(f"| {c} | {'/'.join(str(k) for _, k in parts)} | {res['few_shot']['4'][0]:.3f} | "
              f"{res['few_shot']['8'][0]:.3f} | {res['few_shot_n']['16'][0]:.3f} | "
              f"{res['few_shot_n']['48'][0]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
