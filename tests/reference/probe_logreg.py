#!/usr/bin/python3
"""probe_logreg.py TEST_LOGREG TMPDIR: checks the C logistic regression and metrics of
the probe (stages/probe/logreg.c, metrics.c) against independent numpy/scipy code.
Fits: logreg_ref.py (scipy L-BFGS-B on the same penalised objective 0.5|W|^2 + C sum
CE), binary and multinomial, narrow and wide
(D > n) data, standardised with the training mean and population sd; coefficients
must agree to 1e-4. AUC: scipy.stats.mannwhitneyu U / (n1 n0) (and macro one-vs-rest
for 3 classes), accuracy, balanced accuracy. Prints TAP lines."""
import subprocess, sys, os
import numpy as np
from scipy.special import expit, logsumexp
from scipy.stats import mannwhitneyu
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import Tap  # noqa: E402
from logreg_ref import ref_fit  # noqa: E402

exe, tmp = sys.argv[1], sys.argv[2]
tap = Tap()


def run_case(name, n, D, K, C, stdz, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n)
    y[:K] = np.arange(K)
    X = rng.standard_normal((n, D)) * (1 + rng.random(D) * 3) + 5.0
    X[:, : min(D, 4)] += 1.2 * y[:, None]
    path = os.path.join(tmp, name + ".in")
    with open(path, "w") as f:
        f.write("%d %d %d %.17g %d\n" % (n, D, K, C, stdz))
        for i in range(n):
            f.write("%d %s\n" % (y[i], " ".join("%.17g" % v for v in X[i])))
    out = os.path.join(tmp, name + ".out")
    subprocess.run([exe, "--fit", path, out], check=True)
    vals = open(out).read().split()
    nr, Dc, conv = int(vals[0]), int(vals[1]), int(vals[2])
    v = np.array([float(x) for x in vals[4:]])
    Wc = v[: nr * D].reshape(nr, D); bc = v[nr * D: nr * D + nr]
    musd = v[nr * D + nr: nr * D + nr + 2 * D].reshape(D, 2)
    Pc = v[nr * D + nr + 2 * D:].reshape(n, K)
    if stdz:
        mu = X.mean(0); sd = X.std(0)
        Z = (X - mu) / sd
        tap(np.allclose(musd[:, 0], mu, rtol=1e-12, atol=1e-12) and
            np.allclose(musd[:, 1], sd, rtol=1e-12), name + ": standardisation = training mean, population sd")
    else:
        Z = X
    W, b = ref_fit(Z, y, K, C)
    scale = max(1.0, np.abs(W).max())
    err = max(np.abs(Wc - W).max(), np.abs(bc - b).max()) / scale
    tap(conv == 1 and err < 1e-4, "%s: coefficients match scipy (max rel err %.2e, n %d D %d K %d)" % (name, err, n, D, K))
    S = Z @ W.T + b
    P = np.column_stack([1 - expit(S[:, 0]), expit(S[:, 0])]) if K == 2 else np.exp(S - logsumexp(S, axis=1)[:, None])
    tap(np.abs(P - Pc).max() < 1e-5, name + ": predicted probabilities match")

run_case("binary", 80, 6, 2, 0.7, 1, 1)
run_case("binary_raw", 60, 3, 2, 2.0, 0, 2)
run_case("multinomial", 90, 5, 3, 0.5, 1, 3)
run_case("wide_binary", 30, 200, 2, 1.0, 1, 4)
run_case("wide_multinomial", 33, 120, 3, 0.3, 1, 5)

# AUC / accuracy / balanced accuracy
def metrics_case(name, n, K, seed, ties):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n); y[:K] = np.arange(K)
    S = rng.random((n, K)) + 0.3 * np.eye(K)[y]
    if ties:
        S = np.round(S * 4) / 4
    path = os.path.join(tmp, name + ".auc"); out = path + ".out"
    with open(path, "w") as f:
        f.write("%d %d\n" % (n, K))
        for i in range(n):
            f.write("%d %s\n" % (y[i], " ".join("%.17g" % v for v in S[i])))
    subprocess.run([exe, "--auc", path, out], check=True)
    auc, acc, bacc = [float(x) for x in open(out).read().split()]
    cols = [1] if K == 2 else range(K)
    ref = np.mean([mannwhitneyu(S[y == k, k], S[y != k, k]).statistic / ((y == k).sum() * (y != k).sum()) for k in cols])
    pred = S.argmax(1)
    racc = np.mean(pred == y)
    rbacc = np.mean([np.mean(pred[y == k] == k) for k in range(K)])
    tap(abs(auc - ref) < 1e-12, "%s: AUC %.6f = Mann-Whitney U/(n1 n0) %.6f" % (name, auc, ref))
    tap(abs(acc - racc) < 1e-12 and abs(bacc - rbacc) < 1e-12, name + ": accuracy and balanced accuracy")

metrics_case("auc_binary", 101, 2, 7, False)
metrics_case("auc_binary_ties", 64, 2, 8, True)
metrics_case("auc_ovr3", 90, 3, 9, True)
# chi-squared test of a site x class table, and the chi-squared upper tail
from scipy.stats import chi2 as chi2_dist, chi2_contingency
def chi2_case(name, table, seed):
    rng = np.random.default_rng(seed)
    pts = [(float(x), int(k)) for k in (1, 2, 3, 4, 5, 8, 15, 30) for x in rng.gamma(k / 2.0, 2.0, 6)]
    pts += [(0.5, 1), (40.0, 3), (200.0, 7), (1e-6, 1)]
    path = os.path.join(tmp, name + ".chi2"); out = path + ".out"
    T = np.array(table, dtype=np.int64)
    with open(path, "w") as f:
        f.write("%d %d\n" % T.shape)
        for row in T:
            f.write(" ".join(str(v) for v in row) + "\n")
        f.write("%d\n" % len(pts))
        for x, k in pts:
            f.write("%.17g %d\n" % (x, k))
    subprocess.run([exe, "--chi2", path, out], check=True)
    lines = open(out).read().split("\n")
    c2, dof, p, v = lines[0].split()
    c2, dof, p, v = float(c2), int(dof), float(p), float(v)
    keep = T[T.sum(1) > 0][:, T.sum(0) > 0]
    ref = chi2_contingency(keep, correction=False)
    rv = np.sqrt(ref[0] / (keep.sum() * (min(keep.shape) - 1)))
    tap(dof == ref[2] and abs(c2 - ref[0]) < 1e-10 * max(1, ref[0]) and abs(p - ref[1]) < 1e-12
        and abs(v - rv) < 1e-12, "%s: chi2 %.4f dof %d p %.4g V %.4f = scipy chi2_contingency"
        % (name, c2, dof, p, v))
    sf = np.array([float(x) for x in lines[1:1 + len(pts)]])
    rsf = np.array([chi2_dist.sf(x, k) for x, k in pts])
    err = np.max(np.abs(sf - rsf) / np.maximum(rsf, 1e-300))
    tap(err < 1e-11, "%s: %d upper tails = scipy chi2.sf (max rel err %.1e)" % (name, len(pts), err))

chi2_case("chi2_fifth_population", [[10, 6], [3, 13], [7, 7], [10, 4]], 11)
chi2_case("chi2_empty_site_3_classes", [[4, 2, 6], [0, 0, 0], [1, 7, 3], [5, 5, 1]], 12)
tap.exit()
