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
import os, sys
import numpy as np
import scipy.linalg as sl
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from head_rank import axes, harmonise, head, penalised, report, scatter, start  # noqa: E402


def held_out_counts(rows, cs, r0=150, s=0.1, splits=2, seed=7, site=None, beta=0.0, harm=0.0):
    """The held-out counts (`splits` random splits x both ways: the model's four with the
    default 2) for each threshold C in cs, in split order."""
    P, Q = axes(rows, r0)[:2]
    if harm:
        Q = harmonise(Q, P, site, harm)
    subs = np.array(sorted(set(P)))
    rng = np.random.default_rng(seed)
    found = {c: [] for c in cs}
    for _ in range(splits):
        perm = rng.permutation(len(subs))
        halves = [subs[perm[: len(subs) // 2]], subs[perm[len(subs) // 2:]]]
        for h in (0, 1):
            a, b = set(halves[h]), set(halves[1 - h])
            ia = np.array([p in a for p in P])
            SbA, SwA = scatter(Q[ia], P[ia], sorted(a), recentre=True)
            SbB, SwB = scatter(Q[~ia], P[~ia], sorted(b), recentre=True)
            _, V = sl.eigh(SbA, penalised(SwA, s, Q[ia], P[ia], sorted(a), site, beta))
            V = V[:, ::-1][:, :64]
            rho = np.array([(v @ SbB @ v) / (v @ SwB @ v) for v in V.T])
            bulk = np.median(rho[16:])
            for c in cs:
                k = 0
                while k < 16 and rho[k] >= c * bulk:
                    k += 1
                found[c].append(k)
    return found


LADDER = [1.2, 1.4, 1.65, 1.9, 2.2, 2.6, 3.0]


def plateau(sums):
    """The model's plateau rule (docs/model.md section 11) on 16 fits' summed counts up the
    LADDER: the gap's size, or 0 (no gap)."""
    for lo, hi in zip(sums, sums[1:]):
        r = (hi + 8) // 16
        if lo - hi <= 6 and lo <= 12 * 16 and r >= 2:
            return r
    return 0


def held_out_ranks(rows, cs, r0=150, s=0.1):
    return {c: int(max(2, round(np.mean(v)))) for c, v in held_out_counts(rows, cs, r0, s).items()}


def main():
    o, (lab_ids, lab, Y, atlases, unl, means) = start("cs", "C")
    cs = [float(x) for x in o.cs.split(",")]
    ranks = {a: held_out_ranks(unl[a], cs) for a in atlases}
    for c in cs:
        report(c, [head(unl[a], means[a], lab_ids, 150, ranks[a][c], 0.1) for a in atlases],
               lab, Y, o.draws)


if __name__ == "__main__":
    main()
