#!/usr/bin/python3
"""pop_fit.py CKPT CONN_DIR: the checkpoint's population head (pop/<atlas>/W, b) against
an independent numpy/scipy fit of docs/model.md section 11 on the graphs the checkpoint
says training read (/pretrain_graphs), as the model sees them (input-normalised with the
checkpoint's norm buffers): PCA by SVD (at most 150 components), between-scan and
within-scan covariances, the within one shrunk by pop_shrink (read from the stored
configuration, default 0.1) towards its mean eigenvalue, scipy.linalg.eigh(Sb, Sw).
With `pop_site: centre` (the default) the rows are centred on their site's mean (the
index's /graphs/site, per /graphs/dataset) before the PCA, and the directions are applied
to the rows less the mean of all of them. With `pop_site: harmonise` each site's scores
in the principal subspace are moreover mapped to the pooled covariance (S_k^-1/2 S^1/2,
S_k shrunk by pop_site_shrink (0.5 by default) towards its mean eigenvalue; scipy's sqrtm-free form through eigh)
before the covariances below, and the directions so chosen are applied to the rows' own
scores.
People who stand apart (`pop_outlier_z`, 4 by default): over the scans with two or more
graphs, each scan's mean score less the mean of all of them, its distance g^T Sw^-1 g (Sw
shrunk as below), z = (log distance - median) / (1.4826 MAD) of the log distances; the
scans with z above pop_outlier_z are left out and the fit above made again without them.
People who hold a leading direction (`pop_outlier_share`, 0 = off by default), on the
same first fit's scores, after those: over the scans kept, the 8 leading directions of
eigh(Sb, Sw') (the scans' means recentred on their mean), each scan's mean along each, and
the largest share of a direction's variance one scan holds; while it is at least
pop_outlier_share (and 20 or more of the kept scans have two or more graphs, at most 16
times), that scan is left out and the directions found again; the fit is then made again
without every scan left out.
Checked per atlas:
- each direction's features (W z + b over the training graphs) match numpy's within 1e-3
  relative (directions whose eigenvalue is within 1e-3 of a neighbour's: the subspace);
- invariants that need no eigensolver: over the training graphs the features are centred,
  and their within-scan covariance, shrunk as above, is the identity (1e-3);
- rows past the fitted directions are zero (directions with no between-scan variance, as
  with fewer scans than pop_rank, are not fitted).
With `pop_rank: auto` in the stored configuration the rank of each atlas is recomputed
by docs/model.md section 11's held-out rule (the scans split in halves twice by the
splitmix64 hash of the scan number, the discriminant of each half scored on the other,
directions kept while their held-out ratio is at least twice the median of directions
17-64, the mean of the four counts rounded half up, none when below 2 or not measurable);
every atlas's head must keep the largest count of the atlases; where none has a gap, the
largest peak over k >= 2 of the halves' reproducibility if at least 0.7 (the smallest
canonical correlation between the two halves' fits' k leading directions' scores on one
half's people, averaged over the 16 (split, half) pairs); else 8.
With `embedding: pcs+pop` (chosen by `embedding: auto` when no atlas has a gap and the
reproducible peak, if any, is below 3) the head's
last 4 rows are the 4 leading principal axes of the same (site-centred) rows, each scaled
to unit variance over the training graphs, signs as above, b = -W times the mean of all
rows: checked against numpy's SVD (features within 1e-3 relative, the covariance of the
features the identity, b).
Exits 1 with a message on the first failure."""
import re, sys
import h5py, numpy as np, scipy.linalg as sl

ck, cdir = sys.argv[1], sys.argv[2]
s = lambda x: x.decode() if isinstance(x, bytes) else str(x)
f = h5py.File(ck, "r")
a = f["model"].attrs
r = int(a["pop_rank"])
assert r > 0, "no population head in " + ck
cfg = s(f["state"].attrs["config"]) if "config" in f["state"].attrs else ""
m = re.search(r"pop_shrink:\s*([0-9.eE+-]+)", cfg)
shrink = float(m.group(1)) if m else 0.1
m = re.search(r"pop_site_shrink:\s*([0-9.eE+-]+)", cfg)
site_shrink = float(m.group(1)) if m else 0.5
m = re.search(r"pop_outlier_z:\s*([0-9.eE+-]+)", cfg)
zmax = float(m.group(1)) if m else 0.0  # older models: everyone kept
m = re.search(r"pop_outlier_share:\s*([0-9.eE+-]+)", cfg)
smin = float(m.group(1)) if m else 0.0
auto = re.search(r"pop_rank:\s*auto\b", cfg) is not None
emb = s(a["embedding"]) if "embedding" in a else "encoder"
NPC = 4 if emb == "pcs+pop" else 0  # the FC's principal axes after the discriminant rows
by_site = re.search(r"pop_site:\s*none\b", cfg) is None
harm = re.search(r"pop_site:\s*harmonise\b", cfg) is not None
if "pop_site" in a:  # how the head was fitted (pop_site: auto chooses centre or harmonise)
    by_site, harm = s(a["pop_site"]) != "none", s(a["pop_site"]) == "harmonise"
M64 = (1 << 64) - 1


def mix64(x):
    """The SplitMix64 finaliser: one SplitMix64 step of z is mix64(z + 0x9E3779B97F4A7C15)."""
    x &= M64
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & M64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def covs(Q, scan, subs):
    """Between (subject means recentred on their mean) and within covariances."""
    G = np.array([Q[scan == p].mean(0) for p in subs])
    G = G - G.mean(0)
    R = np.concatenate([Q[scan == p] - Q[scan == p].mean(0) for p in subs])
    return G.T @ G / len(subs), R.T @ R / len(R)


LADDER = [1.2, 1.4, 1.65, 1.9, 2.2, 2.6, 3.0]


def min_canon(X, Y):
    """The smallest canonical correlation between the columns of X and of Y, centred."""
    qx = np.linalg.qr(X - X.mean(0))[0]
    qy = np.linalg.qr(Y - Y.mean(0))[0]
    return np.linalg.svd(qx.T @ qy, compute_uv=False).min()


def held_out_rank(Q, scan):
    """(count, the mean counts up the ladder, the halves' reproducibility curve, its peak)
    by the held-out plateau rule over 16 fits (8 splits, both ways): count 0 when there is
    no gap; the reproducibility, k = 1 .. 12: per split and half, that half's people's mean
    rows scored by both halves' 12 leading directions, the smallest canonical correlation of
    the k leading scores, averaged over the 16; its peak over k >= 2 if at least 0.7, else
    0. Means, curve None and peak 0 when not measurable."""
    r0 = Q.shape[1]
    subs = sorted(set(int(x) for x in scan))
    sums = [0] * len(LADDER)  # the 16 fits' counts summed, per threshold
    curve = np.zeros(12)
    for k in range(8):
        order = sorted(subs, key=lambda p: (mix64(p + (k + 1) * 0x9E3779B97F4A7C15), p))
        h = len(subs) // 2
        halves = [sorted(order[:h]), sorted(order[h:])]
        D = min(64, r0, h - 1)
        if D < 32:
            return 0, None, None, 0
        lead = []
        for fit in (0, 1):
            ia = np.isin(scan, halves[fit])
            SbA, SwA = covs(Q[ia], scan[ia], halves[fit])
            SbB, SwB = covs(Q[~ia], scan[~ia], halves[1 - fit])
            SwA = (1 - shrink) * SwA + shrink * np.trace(SwA) / r0 * np.eye(r0)
            _, V = sl.eigh(SbA, SwA)
            V = V[:, ::-1][:, :D]
            lead.append(V[:, :12])
            rho = np.einsum("ij,ik,kj->j", V, SbB, V) / np.einsum("ij,ik,kj->j", V, SwB, V)
            bulk = np.median(rho[16:])
            for t, c in enumerate(LADDER):
                sums[t] += next((j for j in range(16) if rho[j] < c * bulk), 16)
        for half in halves:
            Mh = np.array([Q[scan == p].mean(0) for p in half])
            curve += [min_canon(Mh @ lead[0][:, :j], Mh @ lead[1][:, :j]) for j in range(1, 13)]
    means, curve = [x / 16 for x in sums], curve / 16
    peak = int(np.argmax(curve[1:])) + 2
    peak = peak if curve[peak - 1] >= 0.7 else 0
    for t in range(len(LADDER) - 1):  # the first flat pair going up: at most 6 of 16 more below
        r = (sums[t + 1] + 8) // 16
        if sums[t] - sums[t + 1] <= 6 and sums[t] <= 12 * 16 and r >= 2:
            return r, means, curve, peak
    return 0, means, curve, peak


def rows_fit(rows, an, mu, sd):
    """The graphs' rows as the model sees them, centred (on their site's mean where the
    head is fitted by site), their PCA by SVD and the leading r0 scores Q."""
    X = []
    for g in rows:
        C = h5py.File(cdir + "/" + shards[GS[g]], "r")["graphs/%s/fc" % an][GR[g]].astype(np.float64)
        if mu is not None:
            C = (C - mu) / sd
        iu = np.triu_indices(C.shape[0], 1)
        X.append(C[iu].astype(np.float32).astype(np.float64))  # the C side keeps float rows
    X = np.array(X)
    scan = np.array([GJ[g] for g in rows])
    n, T = X.shape
    X0 = X - X.mean(0)
    keys = [(GDS[g], GSITE[g]) for g in rows]
    Xc = X0.copy()
    nsites = len(set(keys))
    if by_site and nsites > 1:
        for k in set(keys):
            sel = np.array([q == k for q in keys])
            Xc[sel] = X[sel] - X[sel].mean(0)
    U, sv, Vt = np.linalg.svd(Xc, full_matrices=False)
    lam = sv ** 2
    r0 = int(min(150, n - 1, T, (lam > 1e-10 * lam[0]).sum()))
    return X, scan, keys, Xc, X0, Vt, lam, r0, Xc @ Vt[:r0].T, nsites


def stand_apart(Q, scan):
    """The scans (of two or more rows) whose mean score, less the mean of all scans' means,
    lies at a distance g^T Sw^-1 g (Sw the within-scan covariance shrunk as the fit's) more
    than zmax robust deviations (1.4826 MAD) above the median, on a log scale; measured
    over at least 20 such scans."""
    subs = sorted(set(int(x) for x in scan))
    G = np.array([Q[scan == p].mean(0) for p in subs])
    G = G - G.mean(0)
    Sw = covs(Q, scan, subs)[1]
    Sw = (1 - shrink) * Sw + shrink * np.trace(Sw) / len(Sw) * np.eye(len(Sw))
    multi = np.array([(scan == p).sum() > 1 for p in subs])
    if multi.sum() < 20:
        return set()
    ld = np.log(np.einsum("ij,ij->i", G, np.linalg.solve(Sw, G.T).T))
    med = np.median(ld[multi])
    z = (ld - med) / (1.4826 * np.median(np.abs(ld[multi] - med)))
    out = {p for p, zz, mm in zip(subs, z, multi) if mm and zz > zmax}
    if out:
        print("pop_fit: %d of %d scans stand apart: %s" % (len(out), multi.sum(), " ".join(
            "%d (z %.1f)" % (p, zz) for zz, p in sorted(zip(z, subs), reverse=True)[:len(out)])))
    return out


def holding(Q, scan, gone):
    """The scans not in gone that hold smin or more of a leading direction's variance, left
    out one at a time (the directions found again each time); printed in that order."""
    keep = np.array([int(p) not in gone for p in scan])
    out = []
    while len(out) < 16:
        subs = sorted(set(int(p) for p in scan[keep]))
        if sum((scan[keep] == p).sum() > 1 for p in subs) < 20:
            break
        Sb, Sw = covs(Q[keep], scan[keep], subs)
        Sw = (1 - shrink) * Sw + shrink * np.trace(Sw) / len(Sw) * np.eye(len(Sw))
        V = sl.eigh(Sb, Sw)[1][:, ::-1][:, :8]
        Y = np.array([Q[keep & (scan == p)].mean(0) for p in subs]) @ V
        C = (Y - Y.mean(0)) ** 2
        share = C.max(0) / C.sum(0)
        j = int(np.argmax(share))
        if share[j] < smin:
            break
        p = subs[int(np.argmax(C[:, j]))]
        out.append((p, share[j], j + 1))
        keep &= scan != p
    if out:
        print("pop_fit: %d scans hold a leading direction: %s" % (len(out), " ".join(
            "%d (%.2f of direction %d)" % x for x in out)))
    return {p for p, _, _ in out}


used = f["pretrain_graphs"][()]
idx = h5py.File(cdir + "/index.h5", "r")
names = [s(x) for x in idx["atlases"][()]]
shards = [s(x) for x in idx["shards"][()]]
GA, GS, GR, GJ = (idx["graphs/" + k][()] for k in ("atlas", "shard", "row", "subject"))
GSITE = [s(x) for x in idx["graphs/site"][()]]
GDS = [s(x) for x in idx["graphs/dataset"][()]] if "graphs/dataset" in idx else [""] * len(GA)
fail = lambda msg: sys.exit("pop_fit: " + msg)
checked = 0
counts, peaks = [], []
for ai, an in enumerate(names):
    rows = [g for g in used if GA[g] == ai]
    if not rows or ("pop/%s/W" % an) not in f["model"]:
        continue
    W = f["model/pop/%s/W" % an][()].astype(np.float64)
    b = f["model/pop/%s/b" % an][()].astype(np.float64)
    mu = f["model/norm/%s/mean" % an][()].astype(np.float64) if ("norm/%s/mean" % an) in f["model"] else None
    sd = f["model/norm/%s/std" % an][()].astype(np.float64) if mu is not None else None
    again = True
    while True:  # the fit; again without the people who stand apart or hold a direction
        X, scan, keys, Xc, X0, Vt, lam, r0, Q, nsites = rows_fit(rows, an, mu, sd)
        if not again:
            break
        apart = stand_apart(Q, scan) if zmax else set()
        if smin:
            apart |= holding(Q, scan, apart)
        if not apart:
            break
        rows, again = [g for g in rows if GJ[g] not in apart], False
    n, T = X.shape
    if harm and nsites > 1:  # each site's scores to the pooled covariance, for the choice only
        def power(S, p):
            e, U = sl.eigh(S)
            return (U * np.where(e > 0, np.abs(e) ** p, 0)) @ U.T
        half = power(Q.T @ Q / n, 0.5)
        Qh = Q.copy()
        for k in set(keys):
            sel = np.array([q == k for q in keys])
            Sk = Q[sel].T @ Q[sel] / sel.sum()
            Sk = (1 - site_shrink) * Sk + site_shrink * np.trace(Sk) / r0 * np.eye(r0)
            Qh[sel] = Q[sel] @ power(Sk, -0.5) @ half
        Q = Qh
    subs = sorted(set(scan))
    M = np.array([Q[scan == p].mean(0) for p in subs])
    Sb = M.T @ M / len(subs)
    R = np.concatenate([Q[scan == p] - Q[scan == p].mean(0) for p in subs])
    Sw = R.T @ R / n
    Sws = (1 - shrink) * Sw + shrink * np.trace(Sw) / r0 * np.eye(r0)
    ev, V = sl.eigh(Sb, Sws)
    ev, V = ev[::-1], V[:, ::-1]
    if auto:
        cnt, held, curve, peak = held_out_rank(Q, scan)
        counts.append(cnt)
        peaks.append(peak)
    rd = r - NPC  # the discriminant rows
    if NPC:  # the principal rows: Xc's leading right singular vectors over sd sqrt(lam / n)
        Wp = f["model/pop/%s/W" % an][()][rd:].astype(np.float64)
        bp = f["model/pop/%s/b" % an][()][rd:].astype(np.float64)
        Pn = Vt[:NPC] / np.sqrt(lam[:NPC] / n)[:, None]
        for k in range(NPC):
            Pn[k] *= np.sign(Pn[k, np.argmax(np.abs(Pn[k]))])
            if k + 1 < len(lam) and abs(lam[k] - lam[k + 1]) < 1e-3 * lam[k]:
                continue
            err = np.linalg.norm(Xc @ (Wp[k] - Pn[k])) / np.linalg.norm(Xc @ Pn[k])
            if not err < 1e-3:
                fail("%s: principal row %d differs from numpy (relative error %.2e)" % (an, k, err))
        Fp = Xc @ Wp.T
        cov = Fp.T @ Fp / n
        if np.abs(cov - np.eye(NPC)).max() > 1e-3:
            fail("%s: the principal rows' features do not have identity covariance (max error "
                 "%.2e)" % (an, np.abs(cov - np.eye(NPC)).max()))
        if np.abs(bp + Wp @ X.mean(0)).max() > 1e-3 * max(1.0, np.abs(bp).max()):
            fail("%s: the principal rows' b is not -W mean" % an)
    W, b = W[:rd], b[:rd]
    rr = int(min(rd, r0, (ev > 1e-9 * ev[0]).sum()))  # no null-space directions
    Wn = (Vt[:r0].T @ V[:, :rr]).T
    for k in range(rr):  # the sign rule: largest-magnitude entry positive
        j = np.argmax(np.abs(Wn[k]))
        Wn[k] *= np.sign(Wn[k, j])
    Fc = X @ W[:rr].T + b[:rr]
    Fn = X0 @ Wn.T
    if np.abs(W[rr:]).max(initial=0) != 0 or np.abs(b[rr:]).max(initial=0) != 0:
        fail("%s: rows past the %d fitted directions are not zero" % (an, rr))
    if np.abs(Fc.mean(0)).max() > 1e-3 * max(1.0, np.abs(Fc).max()):
        fail("%s: the features are not centred over the training graphs" % an)
    # within-scan covariance of the features of the scores the fit chose them on (harmonised
    # or not), shrunk as in the fit: the identity
    Pc = Vt[:r0]  # the shrinkage term through the PCA basis: shrink * tr(Sw)/r0 * A^T A
    A = np.linalg.lstsq(Pc.T, W[:rr].T, rcond=None)[0]
    Ff = Q @ A
    Rf = np.concatenate([Ff[scan == p] - Ff[scan == p].mean(0) for p in subs])
    Swf = Rf.T @ Rf / n
    Id = (1 - shrink) * Swf + shrink * np.trace(Sw) / r0 * A.T @ A
    if np.abs(Id - np.eye(rr)).max() > 1e-3:
        fail("%s: A^T Sw A is not the identity (max error %.2e)" % (an, np.abs(Id - np.eye(rr)).max()))
    for k in range(rr):
        gap = min([abs(ev[k] - ev[j]) for j in (k - 1, k + 1) if 0 <= j < r0] or [np.inf])
        if gap < 1e-3 * abs(ev[k]):
            continue
        err = np.linalg.norm(Fc[:, k] - Fn[:, k]) / np.linalg.norm(Fn[:, k])
        if not err < 1e-3:
            fail("%s: direction %d differs from numpy (relative error %.2e)" % (an, k, err))
    # the subspace of all rr directions
    Qc, _ = np.linalg.qr(Fc - Fc.mean(0))
    Qn, _ = np.linalg.qr(Fn)
    cosines = np.linalg.svd(Qc.T @ Qn, compute_uv=False)
    if cosines.min() < 1 - 1e-4:
        fail("%s: the head's subspace differs from numpy's (smallest cosine %.6f)" % (an, cosines.min()))
    checked += 1
    print("pop_fit: %s: %d graphs, %d scans, %s%d of %d directions%s, leading ratio %.3f%s" %
          (an, n, len(subs), "%s on %d sites, " % ("centred and harmonised" if harm else "centred", nsites)
           if by_site and nsites > 1 else "",
           rr, rd, " and %d principal axes" % NPC if NPC else "", ev[0],
           "" if not auto else ", pop_rank auto: held-out means %s, reproducibility %s (peak %d), count %d" %
           ("not measured" if held is None else " ".join("%.2f" % x for x in held),
            "not measured" if curve is None else " ".join("%.2f" % x for x in curve), peak, cnt)))
if not checked:
    fail("no atlas with a population head and training graphs in " + ck)
if auto:
    # the largest count of the atlases, else the largest reproducible peak, else 8
    want = min(16, max(counts) or max(peaks) or 8)
    print("pop_fit: pop_rank auto: rank %d" % want)
    if r - NPC != want:
        fail("pop_rank auto: the head has %d discriminant rows, the rule gives %d (counts %s, "
             "peaks %s)" % (r - NPC, want, counts, peaks))
    if NPC and (max(counts) or max(peaks)) and not re.search(r"embedding:\s*pcs\+pop", cfg):
        fail("embedding pcs+pop chosen by auto although an atlas shows a gap or a reproducible "
             "peak (counts %s, peaks %s)" % (counts, peaks))
