#!/usr/bin/python3
"""embed_forms.py: which embedding should the model give where the held-out rule finds no
gap? (docs/results.md sections 12j, 12k). Reads strict runs' saved embeddings
(report/embeddings.h5): H encoder columns, then the head's rows (`encoder+pop`: the
readout's H = hidden numbers and the head's 8; `pcs+pop`: H = 8 readout axes and the
head's 12), and evaluates forms built from them and from the FC, as the probe does (5
subject folds, stratified for diagnosis; k labelled subjects per class or n subjects from
the training folds; logistic regression C = 1 on standardised subject means, AUC on the test fold;
ridge per target with the strength chosen by leave-one-out over D 10^(-3..5), R2 about
the test fold's mean; 10 fold draws per run), averaged over the runs (seeds).

  bench/transfer/embed_forms.py COHORT INDEX H RUN [RUN ...] --forms F,F,...

Forms (per atlas, side by side; the head refitted by head_rank.py's numpy fit where it
has r rows, the readout's axes a PCA of the saved readouts of the labelled graphs, so a
screen, not the model):
  FC    the FC triangle             EH    the saved embedding
  H     the saved head (every row)  Hr<r> the head alone at rank r
  E+Hr<r>  the readout and a head of r rows
  EHFP<k>  the saved embedding and the FC's k leading principal axes
  HEP<k>   the saved head and the readout's k leading principal axes (HEP<k>F: and the
           FC's 4 leading principal axes)
  HFP<k>   the saved head and the FC's k leading principal axes
  FP<k>    the FC's k leading principal axes alone (the probe's fc_pca, refitted here)
--motion-out: every form's columns less their least-squares line on the labelled people's
log mean framewise displacement (the confounds files beside the images; no label is read):
what a form reads of the diagnosis once head motion is taken out of the features, not
only out of the scores (motion_read.py).
Not a test: figures for results.md."""
import argparse, os, sys
import h5py
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from head_rank import load, head, axes  # noqa: E402
from oracle import logreg_auc, mean_fd  # noqa: E402


def ridge_pred(X, y, Xn):
    """Standardised ridge, strength by exact leave-one-out (the probe's grid)."""
    mu, sd = X.mean(0), X.std(0)
    sd[sd == 0] = 1
    Z = (X - mu) / sd
    ym, n = y.mean(), len(Z)
    U, sv, Vt = np.linalg.svd(Z, full_matrices=False)
    keep = sv ** 2 > 1e-10 * sv[0] ** 2
    U, sv, Vt = U[:, keep], sv[keep], Vt[keep]
    Uy, best = U.T @ (y - ym), None
    for a in np.logspace(-3, 5, 33) * Z.shape[1]:
        f = sv ** 2 / (sv ** 2 + a)
        h = (U ** 2 * f).sum(1) + 1.0 / n
        if np.any(1 - h <= 1e-12):
            continue
        e = ((((y - ym) - U @ (f * Uy)) / (1 - h)) ** 2).sum()
        if best is None or e <= best[0]:
            best = (e, a)
    return ((Xn - mu) / sd) @ (Vt.T @ ((sv / (sv ** 2 + best[1])) * Uy)) + ym


def folds(lab, rng, strat, F=5):
    fo, c = np.empty(len(lab), int), 0
    idx = np.arange(len(lab))
    for g in ([idx[lab == v] for v in (0, 1)] if strat else [idx]):
        for i in rng.permutation(g):
            fo[i], c = c % F, c + 1
    return fo


def evaluate(F, lab, Y, seed, draws=10):
    """AUC at k = 4, 8 and R2 from n = 16, 48 (means over draws x folds)."""
    rng = np.random.default_rng(seed)
    auc, r2 = {4: [], 8: []}, {16: [], 48: []}
    for _ in range(draws):
        fo = folds(lab, rng, True)
        for f in range(5):
            tr, te = np.where(fo != f)[0], np.where(fo == f)[0]
            for k in auc:
                t = np.r_[rng.permutation(tr[lab[tr] == 0])[:k], rng.permutation(tr[lab[tr] == 1])[:k]]
                auc[k].append(logreg_auc(F[t], lab[t].astype(float), F[te], lab[te]))
        fo = folds(lab, rng, False)
        for f in range(5):
            tr, te = np.where(fo != f)[0], np.where(fo == f)[0]
            for n in r2:
                t = rng.permutation(tr)[:n]
                v = []
                for j in range(Y.shape[1]):
                    yt = Y[te, j]
                    p = ridge_pred(F[t], Y[t, j], F[te])
                    v.append(1 - ((yt - p) ** 2).sum() / ((yt - yt.mean()) ** 2).sum())
                r2[n].append(np.mean(v))
    return [np.mean(auc[4]), np.mean(auc[8]), np.mean(r2[16]), np.mean(r2[48])]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cohort")
    ap.add_argument("index")
    ap.add_argument("H", type=int)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--forms", required=True)
    ap.add_argument("--motion-out", action="store_true")
    o = ap.parse_args()
    lab_ids, lab, Y, atlases, unl, means = load(o.cohort, o.index)
    X = np.c_[np.ones(len(lab_ids)), np.log([mean_fd(o.cohort, p) for p in lab_ids])] if o.motion_out else None
    heads, fcp = {}, {}

    def Hr(r):
        if r not in heads:
            heads[r] = np.concatenate([head(unl[a], means[a], lab_ids, 150, r, 0.1)[0] for a in atlases], 1)
        return heads[r]

    def FP(k):
        if k not in fcp:
            parts = []
            for a in atlases:
                _, _, mu, sd, m, B = axes(unl[a], 150)
                parts.append(np.array([((means[a][p] - mu) / sd - m) @ B[:k].T for p in lab_ids]))
            fcp[k] = np.concatenate(parts, 1)
        return fcp[k]

    def saved(run):
        f = h5py.File(os.path.join(run, "probe/report/embeddings.h5"), "r")
        A = np.array([x.decode() for x in f["atlas"][()]])
        P = np.array([x.decode() for x in f["participant_id"][()]])
        E = f["pretrained"][()]
        sel = lambda p, a: (P == p) & (A == a)

        def cols(c):
            return np.concatenate([np.array([E[sel(p, a)][:, c].mean(0) for p in lab_ids])
                                   for a in sorted(set(A))], 1)

        def pcs(k):
            parts = []
            for a in sorted(set(A)):
                X = E[A == a][:, :o.H]
                m = X.mean(0)
                Vt = np.linalg.svd(X - m, full_matrices=False)[2][:k]
                parts.append(np.array([((E[sel(p, a)][:, :o.H] - m) @ Vt.T).mean(0) for p in lab_ids]))
            return np.concatenate(parts, 1)
        return cols, pcs

    FC = np.concatenate([np.array([means[a][p] for p in lab_ids]) for a in atlases], 1)
    print(f"{len(lab_ids)} labelled subjects, atlases {', '.join(atlases)}, {len(o.runs)} runs\n")
    print("| form | AUC k=4 | k=8 | R2 n=16 | n=48 |\n|---|---|---|---|---|")
    # name prefix -> builder(cols, pcs, n) with n the number after the prefix (the longest
    # prefix that matches wins: "E+Hr8" is not "EH")
    builders = {
        "FC": lambda cols, pcs, n: FC,
        "EH": lambda cols, pcs, n: cols(slice(0, None)),
        "H": lambda cols, pcs, n: cols(slice(o.H, None)),
        "Hr": lambda cols, pcs, n: Hr(n),
        "E+Hr": lambda cols, pcs, n: np.concatenate([cols(slice(0, o.H)), Hr(n)], 1),
        "EHFP": lambda cols, pcs, n: np.concatenate([cols(slice(0, None)), FP(n)], 1),
        "HEP": lambda cols, pcs, n: np.concatenate([cols(slice(o.H, None)), pcs(n)], 1),
        "HFP": lambda cols, pcs, n: np.concatenate([cols(slice(o.H, None)), FP(n)], 1),
        "FP": lambda cols, pcs, n: FP(n),
    }
    for v in o.forms.split(","):
        base, fc4 = (v[:-1], True) if v.startswith("HEP") and v.endswith("F") else (v, False)
        pre = max((k for k in builders if base.startswith(k) and (base[len(k):].isdigit()
                                                                 or base == k)), key=len, default=None)
        if pre is None:
            sys.exit(f"embed_forms: unknown form {v}")
        n = int(base[len(pre):]) if base != pre else 0
        res = []
        for i, run in enumerate(o.runs):
            cols, pcs = saved(run)
            F = builders[pre](cols, pcs, n)
            if fc4:
                F = np.concatenate([F, FP(4)], 1)
            if X is not None:
                F = F - X @ np.linalg.lstsq(X, F, rcond=None)[0]
            res.append(evaluate(F, lab, Y, seed=i + 1))
        m = np.mean(res, 0)
        print(f"| {v} | {m[0]:.3f} | {m[1]:.3f} | {m[2]:.3f} | {m[3]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
