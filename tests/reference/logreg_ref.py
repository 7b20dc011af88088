"""logreg_ref.py: the independent reference of the probe's classifier (stages/probe/
logreg.c), imported by tests/reference/probe_logreg.py and tests/e2e/probe_pipeline.sh,
report_motion.sh:
scipy.optimize.minimize (L-BFGS-B, analytic gradient, tight tolerances) on the
penalised objective 0.5 |W|^2 + C sum_i w_i CE_i (w_i = 1 unless sample weights are
given), binary (one row of W) or multinomial. Written from docs/probe.md, not the C."""
import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, logsumexp


def ref_fit(X, y, K, C, weights=None):
    """(W, b) minimising 0.5 |W|^2 + C sum_i weights_i CE(softmax(W x_i + b), y_i)."""
    n, D = X.shape
    c = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    nr = 1 if K == 2 else K
    Y = np.eye(K)[y]

    def f(th):
        W = th[:nr * D].reshape(nr, D)
        b = th[nr * D:]
        S = X @ W.T + b
        if nr == 1:
            s = S[:, 0]
            loss = np.sum(c * (np.logaddexp(0, s) - y * s))
            r = C * c * (expit(s) - y)
            gW = W + r[None, :] @ X
            gb = np.array([r.sum()])
        else:
            lse = logsumexp(S, axis=1)
            loss = np.sum(c * (lse - S[np.arange(n), y]))
            R = C * c[:, None] * (np.exp(S - lse[:, None]) - Y)
            gW = W + R.T @ X
            gb = R.sum(0)
        return 0.5 * np.sum(W * W) + C * loss, np.concatenate([gW.ravel(), gb])
    res = minimize(f, np.zeros(nr * (D + 1)), jac=True, method="L-BFGS-B",
                   options={"maxiter": 100000, "gtol": 1e-12, "ftol": 1e-15, "maxcor": 30})
    th = res.x
    W = th[:nr * D].reshape(nr, D)
    b = th[nr * D:]
    if nr > 1:  # symmetric softmax: intercepts defined up to a constant; C keeps sum 0
        b = b - b.mean()
    return W, b


def subject_oof(rows, feat, win, C=1.0):
    """The worst difference and count over every (view, repeat, fold) of the probe's
    predictions.csv `rows` of one feature set whose features are per subject (the same in
    every window: the site's one-hot, the mean FD): the reference fits the standardised
    features of the training windows (a subject weighs its window count win[id]; docs/
    probe.md step 7) and a test subject's probability is its windows' (all equal).
    feat(id) -> that subject's feature vector."""
    worst, n = 0.0, 0
    keys = sorted({(r["view"], int(r["repeat"])) for r in rows})
    for view, rep in keys:
        rr = [r for r in rows if r["view"] == view and int(r["repeat"]) == rep]
        X = np.array([feat(r["participant_id"]) for r in rr], dtype=float)
        y = np.array([int(r["label"]) for r in rr])
        f = np.array([int(r["fold"]) for r in rr])
        got = np.array([float(r["p_1"]) for r in rr])
        c = np.array([win[r["participant_id"]] for r in rr], dtype=float)
        for k in sorted(set(f)):
            tr = f != k
            wt = c[tr] / c[tr].sum()
            mu = wt @ X[tr]
            sd = np.sqrt(wt @ (X[tr] - mu) ** 2)
            sd[sd <= 1e-12 * np.maximum(1, abs(mu))] = 1
            Z = (X - mu) / sd
            W, b = ref_fit(Z[tr], y[tr], 2, C, weights=c[tr])
            worst = max(worst, np.abs(expit(Z[~tr] @ W[0] + b[0]) - got[~tr]).max())
            n += int((~tr).sum())
    return worst, n
