"""logreg_ref.py: the independent reference of the probe's classifier (stages/probe/
logreg.c), imported by tests/reference/probe_logreg.py and tests/e2e/probe_pipeline.sh:
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
