#!/usr/bin/python3
"""fc_realism.py COHORT [--first N]: how a cohort's FC compares with what real resting
state shows, from the images alone (independent of bgfm: numpy, scipy, nibabel).

Each image is read through AAL (nearest neighbour onto its grid), band-passed 0.01-0.1
Hz (Butterworth order 2, zero phase), and its FC computed over the whole scan and over
each half. Prints the mean FC over edges and people (real AAL data without global signal
regression: about 0.2-0.4), the share of people identified from one half's FC deviations
by the other half's (Finn et al. 2015, here on halves of one short scan), and the edges'
test-retest ICC(1) between the halves (short scans: median about 0.3-0.5, Noble et al.
2019)."""
import argparse, glob, os
import numpy as np
import nibabel as nib
from scipy.signal import butter, sosfiltfilt

ap = argparse.ArgumentParser()
ap.add_argument("cohort")
ap.add_argument("--first", type=int, default=24, help="people read (default 24)")
o = ap.parse_args()
files = sorted(glob.glob(os.path.join(o.cohort, "sub-*", "func", "*_bold.nii.gz")))[:o.first]
if len(files) < 3:
    raise SystemExit("fc_realism: fewer than 3 images under " + o.cohort)
atlas = nib.load("/usr/share/mricron/templates/aal.nii.gz")
lab1 = np.asarray(atlas.dataobj)
full, half_a, half_b, grid = [], [], [], None
for f in files:
    img = nib.load(f)
    if grid is None or not np.allclose(img.affine, grid[0]) or img.shape[:3] != grid[1]:
        ijk = np.indices(img.shape[:3]).reshape(3, -1)
        mm = img.affine[:3, :3] @ ijk + img.affine[:3, 3:4]
        src = np.rint(np.linalg.solve(atlas.affine[:3, :3], mm - atlas.affine[:3, 3:4])).astype(int)
        ok = np.all((src >= 0) & (src < np.array(lab1.shape)[:, None]), axis=0)
        lab = np.zeros(ijk.shape[1], int)
        lab[ok] = lab1[src[0, ok], src[1, ok], src[2, ok]]
        grid = (img.affine, img.shape[:3], lab)
    lab = grid[2]
    x = img.get_fdata(dtype=np.float32).reshape(-1, img.shape[3])
    R = np.array([x[lab == q].mean(0) for q in range(1, 117)])
    tr = float(img.header["pixdim"][4])
    sos = butter(2, [0.01, 0.1], "bandpass", fs=1 / tr, output="sos")
    R = sosfiltfilt(sos, R - R.mean(1, keepdims=True), axis=1)
    T = R.shape[1]
    iu = np.triu_indices(116, 1)
    full.append(np.corrcoef(R)[iu])
    half_a.append(np.corrcoef(R[:, :T // 2])[iu])
    half_b.append(np.corrcoef(R[:, T // 2:])[iu])
full, za, zb = np.array(full), np.arctanh(np.array(half_a)), np.arctanh(np.array(half_b))
n = len(files)
S = np.corrcoef(za - za.mean(0), zb - zb.mean(0))[:n, n:]
m = (za + zb) / 2
msb, msw = 2 * m.var(0, ddof=1), ((za - m) ** 2 + (zb - m) ** 2).sum(0) / n
icc = (msb - msw) / (msb + msw)
print("fc_realism: %s, %d people" % (o.cohort, n))
print("  mean FC %.3f (edges' group means: sd %.3f)" % (full.mean(), full.mean(0).std()))
print("  identified from the other half: %.2f (chance %.2f)" % (np.mean(S.argmax(1) == np.arange(n)), 1.0 / n))
print("  edge ICC(1) between halves: median %.2f, quartiles %.2f / %.2f" % (np.median(icc), *np.percentile(icc, [25, 75])))
