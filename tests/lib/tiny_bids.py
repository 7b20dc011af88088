#!/usr/bin/python3
"""tiny_bids.py OUT [--subjects S] [--volumes T] [--seed X] [--parcels P]: a tiny BIDS
dataset (8x9x7 voxels, 4 mm) and a matching 4-region label atlas OUT/atlas.nii.gz, written
with nibabel, for engine tests that need real files but no realism. --parcels P > 4: the
same voxels dealt round-robin into P regions instead (enough nodes for GMAE to mask).
--factors K: the regions' signals share K person-level factors: each subject's region
series are L e (e white noise, one series per region), L = I + sum_k a s_k B_k / b (a:
--factor-size, default 1; --factor-sizes a1,a2,..: K = their number, each its own) with
s_k ~ N(0, 1) per subject, B_k the symmetric indicator of region pairs within the k-th
block of b = P / K regions (and a small per-subject random part), so the FC of every
window varies between people along K shared directions (pop_rank: auto's test).
--sites K: subject s is at site s mod K + 1 (default 2). --site-shift A: every subject of
a site shares that site's coupling shift, L += A E_k / sqrt(P) (E_k a fixed symmetric
normal matrix per site, zero diagonal, drawn from its own generator), so that the FC
differs between sites, not only between people (pop_site's test). --site-own A: the
subjects of the first site (only) differ along one more coupling pattern of their own,
L += A z F / sqrt(P) (z ~ N(0, 1) per subject, F a fixed symmetric normal matrix; both
from their own generators, so the other draws do not change): a site's own person-level
variation (pop_site: harmonise's test). --apart N: the last N subjects' FC is moreover their
own, L += A G_s / sqrt(P) (A: --apart-size, default 3; G_s a symmetric normal matrix per
subject, from its own generator): people who stand apart (pop_outlier_z's test); with
--apart-rank R, L += A U U' / P instead (U: P x R normal, per subject): an FC of their own
along few directions (pop_outlier_share's test)."""
import argparse, os
import numpy as np
import nibabel as nib

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--subjects", type=int, default=3)
ap.add_argument("--volumes", type=int, default=20)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--parcels", type=int, default=4)
ap.add_argument("--factors", type=int, default=0)
ap.add_argument("--factor-size", type=float, default=1.0)
ap.add_argument("--factor-sizes", default="")
ap.add_argument("--sites", type=int, default=2)
ap.add_argument("--site-shift", type=float, default=0.0)
ap.add_argument("--site-own", type=float, default=0.0)
ap.add_argument("--apart", type=int, default=0)
ap.add_argument("--apart-size", type=float, default=3.0)
ap.add_argument("--apart-rank", type=int, default=0)
a = ap.parse_args()
sizes = [float(x) for x in a.factor_sizes.split(",")] if a.factor_sizes else [a.factor_size] * a.factors
if a.factor_sizes:
    a.factors = len(sizes)
rng = np.random.default_rng(a.seed)
E = []
if a.site_shift:
    srng = np.random.default_rng(a.seed + 7919)
    for k in range(a.sites):
        M = np.triu(srng.standard_normal((max(a.parcels, 4),) * 2), 1)
        E.append(M + M.T)
if a.site_own:
    orng = np.random.default_rng(a.seed + 104729)
    M = np.triu(orng.standard_normal((max(a.parcels, 4),) * 2), 1)
    F = M + M.T
    zrng = np.random.default_rng(a.seed + 15485863)
shape = (8, 9, 7)
aff = np.array([[-4.0, 0, 0, 16], [0, 4, 0, -18], [0, 0, 4, -12], [0, 0, 0, 1]])
os.makedirs(a.out, exist_ok=True)
lab = np.zeros(shape, np.int16)
lab[1:4, 1:8, 1:6] = 1
lab[4:7, 1:5, 1:6] = 2
lab[4:7, 5:8, 1:6] = 3
lab[1:7, 1:8, 6:7] = 4
if a.parcels > 4:
    lab[lab > 0] = np.arange(int((lab > 0).sum())) % a.parcels + 1
img = nib.Nifti1Image(lab, aff)
img.set_qform(aff, 1); img.set_sform(aff, 1)
nib.save(img, os.path.join(a.out, "atlas.nii.gz"))
rows = ["participant_id\tdiagnosis\tsite\tage\tsex"]
for s in range(a.subjects):
    sid = "sub-%02d" % (s + 1)
    d = os.path.join(a.out, "bids", sid, "func")
    os.makedirs(d, exist_ok=True)
    data = np.zeros(shape + (a.volumes,), np.float32)
    inside = lab > 0
    noise = rng.standard_normal((inside.sum(), a.volumes))
    z = zrng.standard_normal() if a.site_own else 0.0
    own = s >= a.subjects - a.apart
    if a.factors or a.site_shift or a.site_own or own:
        P = int(lab.max())
        L = np.eye(P) + 0.05 * rng.standard_normal((P, P))
        blk = P // max(a.factors, 1)
        if a.site_shift:
            L += a.site_shift * E[s % a.sites] / np.sqrt(P)
        if a.site_own and s % a.sites == 0:
            L += a.site_own * z * F / np.sqrt(P)
        if own and a.apart_rank:  # a pattern of few directions (as motion leaves)
            U = np.random.default_rng([a.seed, 78, s]).standard_normal((P, a.apart_rank))
            L += a.apart_size * (U @ U.T) / P
        elif own:
            G = np.random.default_rng([a.seed, 77, s]).standard_normal((P, P))
            L += a.apart_size * (G + G.T) / np.sqrt(2 * P)
        for k in range(a.factors):
            B = np.zeros((P, P))
            B[k * blk:(k + 1) * blk, k * blk:(k + 1) * blk] = 1
            np.fill_diagonal(B, 0)
            L += sizes[k] * rng.standard_normal() * B / blk
        X = L @ rng.standard_normal((P, a.volumes))
        noise = 0.3 * noise + X[lab[inside] - 1]
    data[inside] = 100 + noise.astype(np.float32)
    im = nib.Nifti1Image(data, aff)
    im.header.set_xyzt_units("mm", "sec")
    im.header["pixdim"][4] = 2.0
    im.set_qform(aff, 1); im.set_sform(aff, 1)
    nib.save(im, os.path.join(d, "%s_task-rest_bold.nii.gz" % sid))
    rows.append("%s\t%s\tsite-%d\t%d\t%s" % (sid, "patient" if s % 2 else "control", s % a.sites + 1, 20 + s, "F" if s % 3 else "M"))
with open(os.path.join(a.out, "bids", "participants.tsv"), "w") as f:
    f.write("\n".join(rows) + "\n")
