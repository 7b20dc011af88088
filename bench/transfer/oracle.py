#!/usr/bin/python3
"""oracle.py: how much any representation could win on a trait cohort (issue 12).

usage: oracle.py COHORT OUT --targets trait_1,...  [--draws 200]

Two oracles, evaluated like the probe (subject-level features = mean over the subject's
windows; few-shot classification with k labelled subjects per class, L2 logistic
regression C = 1 on standardised features, AUC from scores on the other labelled
subjects; ridge from n subjects with alpha chosen by exact leave-one-out on the training
subjects only, R2 on the others), over random draws of the same sizes:
- `traits`: the true latent traits of the labelled subjects (bgfm synth's model.json,
  or foreign_pop.py's derivatives/foreign/truth.json):
  no representation can carry more about the traits than the traits themselves.
- `trait_map`: a ridge map FC triangle -> traits fitted on the UNLABELLED subjects with
  their true traits (which pretraining does not have), applied to the labelled
  subjects' graphs: what the unlabelled subjects could teach at best through FC.
Per atlas and pooled (triangles of both atlases concatenated). Writes OUT/oracle.json.
The graphs are those of the first run found under OUT (OUT/*/*/seed*/connectivity/index.h5).
"""
import argparse
import csv, glob, json, os, sys
import h5py
import numpy as np
from scipy.optimize import minimize
from scipy.stats import rankdata


def s(x):
    return x.decode() if isinstance(x, bytes) else str(x)


def mean_fd(cohort, pid):
    """A person's mean framewise displacement (mm) from the confounds file beside their
    image (foreign_pop.py writes them; fMRIPrep's name), None without that file."""
    f = os.path.join(cohort, pid, "func", pid + "_task-rest_desc-confounds_timeseries.tsv")
    if not os.path.exists(f):
        return None
    v = [r["framewise_displacement"] for r in csv.DictReader(open(f), delimiter="\t")]
    return float(np.mean([float(x) for x in v if x != "n/a"]))


def with_graphs(ids, means):
    """The ids with graphs in every atlas: the pipeline leaves some out (on_error: skip,
    e.g. scrubbed beyond max_scrubbed); the others are named on stderr."""
    keep = [p for p in ids if all(p in m for m in means.values())]
    if len(keep) < len(ids):
        print("left out (no graphs):", " ".join(p for p in ids if p not in keep), file=sys.stderr)
    return keep


def read_graphs(index):
    idx = h5py.File(index, "r")
    d = os.path.dirname(index)
    shards = [s(x) for x in idx["shards"][()]]
    atlases = [s(x) for x in idx["atlases"][()]]
    G = idx["graphs/atlas"][()]
    out = {a: [] for a in atlases}
    pid = [s(x) for x in idx["graphs/participant_id"][()]]
    files = {}
    for g in range(len(G)):
        a = atlases[G[g]]
        sh = int(idx["graphs/shard"][g])
        f = files.setdefault(sh, h5py.File(os.path.join(d, shards[sh]), "r"))
        fc = f[f"graphs/{a}/fc"][int(idx["graphs/row"][g])]
        iu = np.triu_indices(fc.shape[0], 1)
        out[a].append((pid[g], int(idx["graphs/window"][g]), fc[iu].astype(np.float64)))
    return atlases, out


def subject_means(rows):
    by = {}
    for p, w, x in rows:
        by.setdefault(p, []).append(x)
    return {p: np.mean(v, 0) for p, v in by.items()}


def ridge_loo(X, Y):
    """Standardise on X, ridge with alpha by exact LOO over D * 10^(-3..5); returns predictor."""
    mu, sd = X.mean(0), X.std(0)
    sd[sd == 0] = 1
    Z = (X - mu) / sd
    ym = Y.mean(0)
    U, sv, Vt = np.linalg.svd(Z, full_matrices=False)
    Uy = U.T @ (Y - ym)
    n = len(Z)
    best = None
    for a in np.logspace(-3, 5, 33) * Z.shape[1]:
        f = sv ** 2 / (sv ** 2 + a)
        h = (U ** 2 * f).sum(1) + 1.0 / n
        r = ((Y - ym) - U @ (f[:, None] * Uy)) / (1 - h)[:, None]
        e = (r ** 2).sum()
        if best is None or e < best[0] - 1e-12 * abs(best[0]):
            best = (e, a)
    a = best[1]
    W = Vt.T @ ((sv / (sv ** 2 + a))[:, None] * Uy)
    return lambda Xn: ((Xn - mu) / sd) @ W + ym


def logreg_auc(Xtr, ytr, Xte, yte, C=1.0):
    mu, sd = Xtr.mean(0), Xtr.std(0)
    sd[sd == 0] = 1
    A, T = (Xtr - mu) / sd, (Xte - mu) / sd
    D = A.shape[1]

    def f(wb):
        w, b = wb[:D], wb[D]
        z = A @ w + b
        l = np.logaddexp(0, z) - ytr * z
        p = 1 / (1 + np.exp(-z))
        g = A.T @ (p - ytr)
        return 0.5 * w @ w + C * l.sum(), np.r_[w + C * g, C * (p - ytr).sum()]

    wb = minimize(f, np.zeros(D + 1), jac=True, method="L-BFGS-B").x
    sc = T @ wb[:D] + wb[D]
    r = rankdata(sc)
    n1 = yte.sum()
    n0 = len(yte) - n1
    return (r[yte == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)


def evaluate(F, lab, Y, ks, ns, draws, rng):
    """F: (S, D) subject features of the labelled subjects; lab 0/1; Y (S, T) targets."""
    res = {"few_shot": {}, "few_shot_n": {}}
    idx = np.arange(len(lab))
    for k in ks:
        a = []
        for _ in range(draws):
            c0 = rng.permutation(idx[lab == 0])
            c1 = rng.permutation(idx[lab == 1])
            kk = min(k, len(c0) - 1, len(c1) - 1) if k else max(1, int(0.8 * min(len(c0), len(c1))))
            tr = np.r_[c0[:kk], c1[:kk]]
            te = np.r_[c0[kk:], c1[kk:]]
            a.append(logreg_auc(F[tr], lab[tr].astype(float), F[te], lab[te]))
        res["few_shot"][str(k or "all")] = [float(np.mean(a)), float(np.std(a))]
    ok = ~np.isnan(Y).any(1)
    for n in ns:
        r2 = []
        for _ in range(draws):
            p = rng.permutation(idx[ok])
            nn = n if n else int(0.8 * len(p))
            tr, te = p[:nn], p[nn:]
            pr = ridge_loo(F[tr], Y[tr])(F[te])
            yt = Y[te]
            r2.append(np.mean(1 - ((yt - pr) ** 2).sum(0) / ((yt - yt.mean(0)) ** 2).sum(0)))
        res["few_shot_n"][str(n or "all")] = [float(np.mean(r2)), float(np.std(r2))]
    return res


def read_table(cohort):
    """participants.tsv of a cohort as a list of {column: text} rows."""
    with open(os.path.join(cohort, "participants.tsv")) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def participants_from(rows, targets):
    """The labelled and unlabelled (diagnosis n/a) ids of read_table's rows, each subject's
    diagnosis (1 = patient) and its target values (NaN when n/a)."""
    known = lambda v: v not in ("n/a", "")
    lab_ids = [r["participant_id"] for r in rows if known(r["diagnosis"])]
    unl_ids = [r["participant_id"] for r in rows if not known(r["diagnosis"])]
    diag = {r["participant_id"]: int(r["diagnosis"] == "patient") for r in rows}
    tv = {r["participant_id"]: [float(r[t]) if known(r[t]) else np.nan for t in targets]
          for r in rows}
    return lab_ids, unl_ids, diag, tv


def read_participants(cohort, targets):
    """participants_from(read_table(cohort), targets)."""
    return participants_from(read_table(cohort), targets)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cohort")
    ap.add_argument("out")
    ap.add_argument("--targets", required=True)
    ap.add_argument("--draws", type=int, default=200)
    o = ap.parse_args()
    idxs = sorted(glob.glob(os.path.join(o.out, "*", "*", "seed*", "connectivity", "index.h5")))
    if not idxs:
        sys.exit("oracle: no connectivity/graphs/index.h5 under " + o.out)
    truth = os.path.join(o.cohort, "derivatives", "synth", "model.json")
    if not os.path.exists(truth):  # bench/transfer/foreign_pop.py's cohorts
        truth = os.path.join(o.cohort, "derivatives", "foreign", "truth.json")
    model = json.load(open(truth))
    targets = o.targets.split(",")
    true = {}  # every subject's true traits (model.json), unlabelled included
    for subj in model["participants"]:
        true[subj["participant_id"]] = np.array(subj["traits"], dtype=float)
    lab_ids, unl_ids, diag, tv = read_participants(o.cohort, targets)
    atlases, graphs = read_graphs(idxs[0])
    means = {a: subject_means(graphs[a]) for a in atlases}
    # people the pipeline left out (on_error: skip, e.g. scrubbed beyond max_scrubbed)
    # have no graphs: the oracle sees who pretraining saw
    have = set.intersection(*[set(means[a]) for a in atlases])
    gone = [p for p in lab_ids + unl_ids if p not in have]
    if gone:
        print("oracle: %d people without graphs (left out by the pipeline): %s" % (len(gone), " ".join(gone)))
    lab_ids = [p for p in lab_ids if p in have]
    unl_ids = [p for p in unl_ids if p in have]
    views = {a: [a] for a in atlases}
    views["pooled"] = atlases
    rng = np.random.default_rng(12)
    out = {"cohort": o.cohort, "targets": targets, "draws": o.draws, "graphs": idxs[0],
           "n_labelled": len(lab_ids), "n_unlabelled": len(unl_ids), "views": {}}
    lab = np.array([diag[p] for p in lab_ids])
    Y = np.array([tv[p] for p in lab_ids])
    ks, ns = [2, 4, 8, 0], [16, 48, 0]
    out["views"]["traits"] = evaluate(np.array([true[p] for p in lab_ids]), lab, Y, ks, ns, o.draws, rng)
    for v, al in views.items():
        X = lambda ids: np.array([np.concatenate([means[a][p] for a in al]) for p in ids])
        m = ridge_loo(X(unl_ids), np.array([true[p] for p in unl_ids]))
        out["views"]["trait_map/" + v] = evaluate(m(X(lab_ids)), lab, Y, ks, ns, o.draws, rng)
    json.dump(out, open(os.path.join(o.out, "oracle.json"), "w"), indent=1)
    print("oracle: wrote", os.path.join(o.out, "oracle.json"))


if __name__ == "__main__":
    main()
