#!/usr/bin/python3
"""head_rank.py: the population head (docs/model.md section 11) fitted per atlas on the
unlabelled subjects' windows (what strict pretraining reads), alone, at several settings,
evaluated as oracle.py does (random draws of the labelled subjects; pooled view: the
atlases' heads side by side). docs/results.md section 12g.

  bench/transfer/head_rank.py COHORT INDEX R0:R:S[,R0:R:S...] [--draws N]

R0 principal axes (the model uses 150), R directions (`pop_rank`; a negative R = -F keeps
the directions whose eigenvalue is at least F/100 of the largest, 2 to 16), S shrinkage
(`pop_shrink`). Not a test: figures for results.md."""
import argparse, os, sys
import numpy as np
import scipy.linalg as sl
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle import read_graphs, read_table, participants_from, subject_means, evaluate, with_graphs  # noqa: E402


def axes(rows, r0):
    """The windows [(subject, triangle)] of one atlas as the model's head sees them:
    standardised per entry, centred, scored on their r0 leading principal axes B.
    Returns subject per row P, scores Q, and mu, sd, m, B to map other triangles."""
    P = np.array([q for q, _ in rows])
    W = np.array([x for _, x in rows], dtype=float)
    mu, sd = W.mean(0), W.std(0)
    sd[sd == 0] = 1
    W = (W - mu) / sd
    m = W.mean(0)
    _, _, Vt = np.linalg.svd(W - m, full_matrices=False)
    B = Vt[:r0]
    return P, (W - m) @ B.T, mu, sd, m, B


def mean_rows(Q, P, subs):
    """Each subject's mean row of the scores Q (P: the subject of each row)."""
    return np.array([Q[P == p].mean(0) for p in subs])


def scatter(Q, P, subs, recentre=False):
    """Between-subject (the subjects' mean rows; recentred on their own mean when asked,
    for a subset of the rows) and within-subject covariances of the scores Q."""
    M = mean_rows(Q, P, subs)
    if recentre:
        M = M - M.mean(0)
    R = np.concatenate([Q[P == p] - Q[P == p].mean(0) for p in subs])
    return M.T @ M / len(subs), R.T @ R / len(R)


def shrunk(Sw, s):
    return (1 - s) * Sw + s * np.trace(Sw) / len(Sw) * np.eye(len(Sw))


def hetero(Q, P, subs, site):
    """How differently the sites' people spread (docs/results.md section 12t): the sum
    over sites k, weighted by their share of the people, of the positive part of
    (S_b,k - S_b), S_b,k the covariance of site k's people's mean rows about their own
    mean and S_b the weighted mean of the S_b,k. 0 with one site."""
    M = mean_rows(Q, P, subs)
    st = np.array([site[p] for p in subs])
    keys = sorted(set(st))
    Sk = []
    for k in keys:
        Mk = M[st == k] - M[st == k].mean(0)
        Sk.append((np.sum(st == k) / len(subs), Mk.T @ Mk / len(Mk)))
    S = sum(w * x for w, x in Sk)
    out = np.zeros_like(S)
    for w, x in Sk:
        e, U = np.linalg.eigh(x - S)
        out += w * (U * np.maximum(e, 0)) @ U.T
    return out


def harmonise(Q, P, site, g=0.1):
    """Each site's rows of the scores Q mapped so that their covariance is the pooled one
    (CovBat-like, Chen et al. 2022: Q_k S_k^-1/2 S^1/2, S_k shrunk by g towards its mean
    eigenvalue). Used only to choose the directions."""
    st = np.array([site[p] for p in P])
    S = Q.T @ Q / len(Q)
    e, U = np.linalg.eigh(S)
    half = (U * np.sqrt(np.maximum(e, 0))) @ U.T
    out = Q.copy()
    for k in set(st):
        Qk = Q[st == k]
        Sk = shrunk(Qk.T @ Qk / len(Qk), g)
        e, U = np.linalg.eigh(Sk)
        out[st == k] = Qk @ ((U / np.sqrt(e)) @ U.T) @ half
    return out


def penalised(Sw, s, Q, P, subs, site, beta):
    """The discriminant's denominator: Sw shrunk, plus beta x hetero() when sites given."""
    D = shrunk(Sw, s)
    return D if not beta or site is None else D + beta * hetero(Q, P, subs, site)


def head(rows, means, lab_ids, r0, r, s, site=None, beta=0.0, harm=0.0):
    """The head of one atlas fitted on rows [(subject, triangle)]; the labelled subjects'
    mean triangles through it, and the rank used. With site and beta, the denominator
    adds beta x hetero()."""
    P, Q, mu, sd, m, B = axes(rows, r0)
    subs = sorted(set(P))
    if harm:
        Q = harmonise(Q, P, site, harm)
    Sb, Sw = scatter(Q, P, subs)
    ev, V = sl.eigh(Sb, penalised(Sw, s, Q, P, subs, site, beta))
    ev, V = ev[::-1], V[:, ::-1]
    if r < 0:
        r = int(min(16, max(2, np.sum(ev >= (-r / 100.0) * ev[0]))))
    A = B.T @ V[:, :r]
    return np.array([((means[p] - mu) / sd - m) @ A for p in lab_ids]), r


def load(cohort, index):
    """The labelled subjects (ids, diagnosis, target matrix), the atlases, each atlas's
    unlabelled windows [(subject, triangle)] and every subject's mean triangle."""
    rows = read_table(cohort)
    targets = [c for c in rows[0] if c == "score" or c.startswith("trait_")]
    lab_ids, unl_ids, diag, tv = participants_from(rows, targets)
    atlases, graphs = read_graphs(index)
    U = set(unl_ids)
    unl = {a: [(q, x) for (q, w, x) in graphs[a] if q in U] for a in atlases}
    means = {a: subject_means(graphs[a]) for a in atlases}
    lab_ids = with_graphs(lab_ids, means)
    return (lab_ids, np.array([diag[p] for p in lab_ids]), np.array([tv[p] for p in lab_ids]),
            atlases, unl, means)


def report(name, parts, lab, Y, draws):
    """One table row: the atlases' heads side by side, evaluated as oracle.py does."""
    F = np.concatenate([f for f, _ in parts], 1)
    res = evaluate(F, lab, Y, [4, 8], [16, 48], draws, np.random.default_rng(12))
    print(f"| {name} | {'/'.join(str(k) for _, k in parts)} | {res['few_shot']['4'][0]:.3f} | "
          f"{res['few_shot']['8'][0]:.3f} | {res['few_shot_n']['16'][0]:.3f} | "
          f"{res['few_shot_n']['48'][0]:.3f} |", flush=True)


def start(listname, first):
    """The command line both scripts take (COHORT INDEX LIST [--draws N]), the cohort
    loaded, and the table's header (its first column named `first`)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("cohort")
    ap.add_argument("index")
    ap.add_argument(listname)
    ap.add_argument("--draws", type=int, default=40)
    o = ap.parse_args()
    data = load(o.cohort, o.index)
    print(f"| {first} | ranks | AUC k=4 | k=8 | R2 n=16 | n=48 |\n|---|---|---|---|---|---|")
    return o, data


def main():
    o, (lab_ids, lab, Y, atlases, unl, means) = start("settings", "R0:R:S")
    for st in o.settings.split(","):
        r0, r, s = st.split(":")
        report(st, [head(unl[a], means[a], lab_ids, int(r0), int(r), float(s)) for a in atlases],
               lab, Y, o.draws)

if __name__ == "__main__":
    main()
