#!/usr/bin/python3
"""probe_ridge.py TEST_RIDGE TMPDIR: checks the probe's ridge regression, its choice of
strength, the regression scores, fc_pca's PCA and the collapse diagnostics
(stages/probe/ridge.c, regress.c, pca.c) against independent numpy/scipy code.
- ridge: standardise with the training mean and population sd; for every alpha of the
  grid (D * 10^linspace(-3, 5, 33)) the leave-one-out error by brute force (refit with
  intercept on n - 1 rows, numpy.linalg.solve), the argmin (larger alpha on ties) must be
  the C choice and the curves agree to 1e-8; coefficients and test predictions from the
  closed form (Z'Z + aI)^-1 Z'y at that alpha (narrow and wide data).
- cross-validation (`--cv`): folds hold each subject once; per fold the numpy ridge on the
  training subjects (alpha by brute-force LOO) predicts the test subjects; R2 per fold =
  1 - SSE/SST with the test fold's mean, and that of the null model (the training
  subjects' mean for every test subject); pooled out-of-fold R2; scipy.stats.pearsonr;
  few-shot subsets inside the training fold.
- PCA: numpy.linalg.svd of the centred float32-valued data: axes up to sign, variances,
  scores of other rows (1e-6 relative); past 4096 rows pca_fit finds the Gram matrix's
  eigenpairs by the randomised solver (pca_many).
- participation ratio from numpy.linalg.eigvalsh(np.cov) and the subject share of variance.
- the Gram matrix's leading eigenpairs (`--gram`, pca_gram_top, the population head's
  principal subspace): exact and randomised, against numpy.linalg.eigh of X X^T.
Prints TAP lines."""
import os, subprocess, sys
import numpy as np
from scipy.stats import pearsonr
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import Tap  # noqa: E402

exe, tmp = sys.argv[1], sys.argv[2]
tap = Tap()




def run(mode, name, text):
    path = os.path.join(tmp, name + ".in")
    out = path + ".out"
    open(path, "w").write(text)
    subprocess.run([exe, mode, path, out], check=True)
    return open(out).read().split("\n")


def rows(X, y=None):
    return "".join(("%.17g " % y[i] if y is not None else "") + " ".join("%.17g" % v for v in X[i]) + "\n"
                   for i in range(len(X)))


def grid(D):
    return D * 10.0 ** np.linspace(-3, 5, 33)


def standardise(X):
    mu = X.mean(0)
    sd = X.std(0)
    sd = np.where(sd > 1e-12 * np.maximum(1, np.abs(mu)), sd, 1.0)
    return mu, sd


def ridge_closed(Z, y, a):
    zm, ym = Z.mean(0), y.mean()
    Zc = Z - zm
    b = np.linalg.solve(Zc.T @ Zc + a * np.eye(Z.shape[1]), Zc.T @ (y - ym))
    return b, ym - zm @ b


def loo_curve(Z, y, alphas):
    n = len(y)
    out = []
    for a in alphas:
        e = 0.0
        for i in range(n):
            keep = np.arange(n) != i
            b, b0 = ridge_closed(Z[keep], y[keep], a)
            e += (y[i] - (Z[i] @ b + b0)) ** 2
        out.append(e / n)
    return np.array(out)


def ref_ridge(X, y):
    """(alpha index, loo curve, predict function) as the probe defines it"""
    mu, sd = standardise(X)
    Z = (X - mu) / sd
    al = grid(X.shape[1])
    loo = loo_curve(Z, y, al)
    ia = len(al) - 1 - int(np.argmin(loo[::-1]))  # smallest error, larger alpha on ties
    b, b0 = ridge_closed(Z, y, al[ia])
    return ia, loo, lambda T: ((T - mu) / sd) @ b + b0, b


def ridge_case(name, n, D, seed, noise):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + 7, D)) * (1 + rng.random(D) * 3) + rng.random(D) * 5
    w = np.zeros(D); w[: min(D, 5)] = rng.standard_normal(min(D, 5))
    y = X @ w + noise * rng.standard_normal(n + 7) + 3.0
    Xtr, ytr, Xte = X[:n], y[:n], X[n:]
    v = run("--ridge", name, "%d %d %d\n" % (n, D, len(Xte)) + rows(Xtr, ytr) + rows(Xte))
    ia_c = int(v[0].split()[0])
    loo_c = np.array([float(x) for x in v[1:34]])
    b0_c = float(v[34])
    beta_c = np.array([float(x) for x in v[35:35 + D]])
    pred_c = np.array([float(x) for x in v[35 + D:35 + D + len(Xte)]])
    ia, loo, predict, beta = ref_ridge(Xtr, ytr)
    tap(np.allclose(loo_c, loo, rtol=1e-8, atol=0), "%s: LOO error of all 33 alphas = brute-force refits (max rel %.1e)" % (name, np.max(np.abs(loo_c / loo - 1))))
    tap(ia_c == ia, "%s: chosen alpha index %d = numpy argmin %d (alpha %.4g)" % (name, ia_c, ia, grid(D)[ia]))
    tap(abs(b0_c - ytr.mean()) < 1e-12 * max(1, abs(b0_c)) and np.allclose(beta_c, beta, rtol=1e-8, atol=1e-10 * np.abs(beta).max()),
        name + ": coefficients = closed form at the chosen alpha")
    tap(np.allclose(pred_c, predict(Xte), rtol=1e-9, atol=1e-9), name + ": test predictions")


ridge_case("ridge_narrow", 40, 6, 1, 0.7)
ridge_case("ridge_narrow_noisy", 30, 20, 4, 6.0)
ridge_case("ridge_wide", 24, 150, 2, 0.7)
ridge_case("ridge_wide_noisy", 24, 150, 5, 4.0)
ridge_case("ridge_few", 5, 30, 3, 0.7)


def r2(y, p):
    return 1 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2)


def cv_case(name, S, D, F, seed, nfew, signal):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((S, D))
    y = X[:, 0] - 0.5 * X[:, 1] + 0.8 * rng.standard_normal(S)
    y[rng.choice(S, 3, replace=False)] = np.nan  # no target: left out
    v = run("--cv", name, "%d %d %d %d %d\n" % (S, D, F, seed, nfew) +
            "".join(("nan" if np.isnan(y[i]) else "%.17g" % y[i]) + " " + " ".join("%.17g" % x for x in X[i]) + "\n" for i in range(S)))
    fold = np.array([int(l.split()[0]) for l in v[:S]])
    pred = np.array([float(l.split()[1]) for l in v[:S]])
    cells = np.array([[float(x) for x in l.split()] for l in v[S:S + F]])
    few = [l.split() for l in v[S + F:S + 2 * F]]
    has = ~np.isnan(y)
    tap(np.all(fold[~has] == -1) and np.all((fold[has] >= 0) & (fold[has] < F)) and
        max(np.bincount(fold[has])) - min(np.bincount(fold[has])) <= 1,
        name + ": every subject with the target in exactly one test fold, sizes within 1")
    ok_p, ok_r2, ok_a, ok_m = True, True, True, True
    for k in range(F):
        tr, te = has & (fold != k), fold == k
        ia, loo, predict, _ = ref_ridge(X[tr], y[tr])
        ok_a &= abs(cells[k, 1] - grid(D)[ia]) <= 1e-12 * grid(D)[ia] and cells[k, 2] == tr.sum()
        ok_p &= np.allclose(pred[te], predict(X[te]), rtol=1e-9, atol=1e-9)
        ok_r2 &= abs(cells[k, 0] - r2(y[te], pred[te])) < 1e-10
        ok_m &= abs(cells[k, 3] - r2(y[te], np.full(te.sum(), y[tr].mean()))) < 1e-10
    tap(ok_a, name + ": per fold, alpha = numpy's LOO choice on the training subjects only")
    tap(ok_p, name + ": out-of-fold predictions = numpy ridge")
    tap(ok_r2, name + ": per-fold R2 = 1 - SSE/SST (test fold's mean)")
    tap(ok_m, name + ": per-fold R2 of the null model = that of the training subjects' mean")
    pooled = r2(y[has], pred[has])
    r = pearsonr(y[has], pred[has])[0]
    print("# %s: pooled out-of-fold R2 %.4f, Pearson r %.4f, fold R2 %s" % (name, pooled, r, np.round(cells[:, 0], 3)))
    if signal:
        tap(pooled > 0.2 and r > 0.5, name + ": the signal is found (pooled R2 %.3f, r %.3f)" % (pooled, r))
    ok_f = True
    for k in range(F):
        idx = np.array([int(s) for s in few[k][4:]])
        tr = np.zeros(S, bool); tr[idx] = True
        ok_f &= len(idx) == min(nfew, (has & (fold != k)).sum()) and not np.any(fold[idx] == k) and np.all(has[idx])
        ia, loo, predict, _ = ref_ridge(X[tr], y[tr])
        te = fold == k
        ok_f &= abs(float(few[k][0]) - r2(y[te], predict(X[te]))) < 1e-9 and abs(float(few[k][1]) - grid(D)[ia]) <= 1e-12 * grid(D)[ia]
        ok_f &= abs(float(few[k][3]) - r2(y[te], np.full(te.sum(), y[tr].mean()))) < 1e-10
    tap(ok_f, name + ": few-shot (%d subjects): inside the training fold, R2, alpha and the null "
        "model's R2 = numpy" % nfew)
    return pred, y, fold


cv_case("cv_narrow", 40, 5, 4, 7, 8, True)
cv_case("cv_wide", 30, 80, 3, 8, 6, False)


def pca_case(name, n, D, k, seed):
    rng = np.random.default_rng(seed)
    L = rng.standard_normal((6, D))
    X = (rng.standard_normal((n + 9, 6)) * [5, 4, 3, 2, 1.5, 1]) @ L + 0.05 * rng.standard_normal((n + 9, D)) + 0.3
    X = X.astype(np.float32).astype(np.float64)  # the store's precision
    F, T = X[:n], X[n:]
    v = run("--pca", name, "%d %d %d %d\n" % (n, D, k, len(T)) + rows(F) + rows(T))
    kc = int(v[0]); p = 1
    mean = np.array([float(x) for x in v[p:p + D]]); p += D
    comp = np.array([float(x) for x in v[p:p + kc * D]]).reshape(kc, D); p += kc * D
    var = np.array([float(x) for x in v[p:p + kc]]); p += kc
    tot = float(v[p]); p += 1
    S = np.array([float(x) for x in v[p:p + len(T) * kc]]).reshape(len(T), kc)
    mu = F.mean(0)
    U, s, Vt = np.linalg.svd(F - mu, full_matrices=False)
    rv = s[:k] ** 2 / (n - 1)
    sign = np.sign(np.sum(comp * Vt[:k], axis=1))
    Vs = Vt[:k] * sign[:, None]
    Sref = (T - mu) @ Vs.T
    tap(kc == k and np.allclose(mean, mu, rtol=1e-12, atol=1e-12), "%s: %d components, centred on the fitting rows' mean" % (name, kc))
    err = np.abs(comp - Vs).max() / np.abs(Vs).max()
    tap(err < 1e-6, "%s: axes = numpy SVD up to sign (max rel err %.1e)" % (name, err))
    tap(np.allclose(var, rv, rtol=1e-9) and abs(tot - np.sum(s ** 2) / (n - 1)) < 1e-9 * tot, name + ": component and total variances")
    err = np.abs(S - Sref).max() / np.abs(Sref).max()
    tap(err < 1e-6, "%s: scores of unseen rows (max rel err %.1e)" % (name, err))
    big = np.argmax(np.abs(comp), axis=1)
    tap(np.all(comp[np.arange(kc), big] > 0), name + ": sign convention (largest loading positive)")


pca_case("pca_wide", 30, 400, 8, 11)
pca_case("pca_narrow", 60, 12, 5, 12)
pca_case("pca_many", 5000, 12, 4, 13)  # past PCA_EXACT_MAX rows: the randomised solver


def gram_case(name, n, D, k, solver, seed):
    """pca_gram_top against numpy.linalg.eigh of the same Gram matrix X X^T: eigenvalues
    within 1e-8 of the largest; the planted directions' eigenvectors up to sign; every
    vector orthonormal with a small residual."""
    rng = np.random.default_rng(seed)
    L = rng.standard_normal((6, D)) / np.sqrt(D)
    X = (rng.standard_normal((n, 6)) * [40, 25, 15, 10, 7, 5]) @ L + rng.standard_normal((n, D))
    v = run("--gram", name, "%d %d %d %d\n" % (n, D, k, solver) + rows(X))
    used, block, iters = [int(x) for x in v[0].split()]
    lam = np.array([float(x) for x in v[1:1 + k]])
    U = np.array([float(x) for x in v[1 + k:1 + k + n * k]]).reshape(n, k)
    w, V = np.linalg.eigh(X @ X.T)
    w, V = w[::-1][:k], V[:, ::-1][:, :k]
    err = np.abs(lam - w).max() / w[0]
    tap(err < 1e-8, "%s: %s solver (block %d, %d iterations): %d eigenvalues = numpy eigh (max err %.1e of the largest)"
        % (name, ["auto", "exact", "randomised"][used], block, iters, k, err))
    cos = np.abs(np.sum(U[:, :6] * V[:, :6], axis=0))
    tap(np.all(np.abs(cos - 1) < 1e-9), "%s: the 6 planted directions' eigenvectors = numpy's up to sign (min |cos| %.12f)" % (name, cos.min()))
    # past the planted directions the bulk's eigenvalues are close together, so its single
    # eigenvectors are ill-determined; what a solver owes there is a small residual
    res = np.linalg.norm(X @ (X.T @ U) - U * lam, axis=0).max() / w[0]
    tap(np.allclose(U.T @ U, np.eye(k), atol=1e-10) and res < 1e-5,
        "%s: orthonormal, every residual |G u - lam u| small (largest %.1e of the largest eigenvalue)" % (name, res))


gram_case("gram_randomised", 500, 400, 40, 2, 31)
gram_case("gram_exact", 200, 300, 20, 1, 32)


def pr_case(name, n, D, G, seed, collapse):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, G, n); g[:G] = np.arange(G)
    X = rng.standard_normal((G, D))[g] * 2 + rng.standard_normal((n, D)) * (1 + np.arange(D) % 3)
    if collapse:
        X = np.outer(X[:, 0], np.ones(D)) + 1e-3 * X
    v = run("--pr", name, "%d %d %d\n" % (n, D, G) + rows(X, g.astype(float)))
    pr, sh = [float(x) for x in v[0].split()]
    lam = np.linalg.eigvalsh(np.cov(X.T))
    ref = lam.sum() ** 2 / (lam ** 2).sum()
    m = X.mean(0)
    b = sum((g == k).sum() * np.sum((X[g == k].mean(0) - m) ** 2) for k in range(G))
    rs = b / np.sum((X - m) ** 2)
    tap(abs(pr - ref) < 1e-9 * ref, "%s: participation ratio %.4f = numpy eigvalsh %.4f" % (name, pr, ref))
    tap(abs(sh - rs) < 1e-12, "%s: subject share of variance %.4f = numpy" % (name, sh))


pr_case("pr_narrow", 50, 8, 10, 21, False)
pr_case("pr_wide", 20, 60, 5, 22, False)
pr_case("pr_collapsed", 40, 16, 8, 23, True)
tap.exit()
