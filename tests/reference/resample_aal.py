"""resample_aal.py TEST_RESAMPLE TMPDIR: the real 1 mm AAL atlas mapped onto a 2 mm, a
3 mm and an oblique 2.5 mm grid by bgfm (test_resample --map) against an independent
numpy/nibabel nearest-neighbour implementation (round half away from zero). Labels must
be equal except at voxels whose atlas coordinate is within 1e-6 of a rounding tie."""
import os
import subprocess
import sys

import nibabel as nib
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from parcellate_lib import resample_labels  # noqa: E402

TOOL, TMP = sys.argv[1], sys.argv[2]
AAL = "/usr/share/mricron/templates/aal.nii.gz"
aal = nib.load(AAL)
fails = 0


def grid(name, shape, affine):
    p = os.path.join(TMP, name + ".nii.gz")
    nib.save(nib.Nifti1Image(np.zeros(shape, np.float32), affine), p)
    return p


th = np.deg2rad(17.0)
ph = np.deg2rad(-9.0)
Rz = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
Ry = np.array([[np.cos(ph), 0, np.sin(ph)], [0, 1, 0], [-np.sin(ph), 0, np.cos(ph)]])
obl = np.eye(4)
obl[:3, :3] = Rz @ Ry @ np.diag([-2.5, 2.5, 2.5])
obl[:3, 3] = [88.3, -121.7, -66.1]
grids = {
    "2 mm (MNI 91x109x91)": ((91, 109, 91), np.array([[-2., 0, 0, 90], [0, 2, 0, -126],
                                                     [0, 0, 2, -72], [0, 0, 0, 1]])),
    "3 mm (61x73x61)": ((61, 73, 61), np.array([[-3., 0, 0, 90], [0, 3, 0, -126],
                                                [0, 0, 3, -72], [0, 0, 0, 1]])),
    "oblique 2.5 mm (rotated 17 deg z, -9 deg y)": ((80, 90, 75), obl),
}
for name, (shape, aff) in grids.items():
    p = grid(name.split()[0].replace(" ", ""), shape, aff)
    out = os.path.join(TMP, "out.raw")
    r = subprocess.run([TOOL, "--map", AAL, p, out], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"not ok - AAL onto {name}: tool failed: {r.stderr.strip()}")
        fails += 1
        continue
    mine = np.fromfile(out, np.uint16).reshape(shape[::-1]).transpose(2, 1, 0)
    ref, tie = resample_labels(aal, shape, aff)
    diff = (mine != ref) & ~tie
    nlab = len(np.unique(ref[ref > 0]))
    ok = not diff.any() and (ref > 0).sum() > 1000
    print(("ok" if ok else "not ok") + f" - AAL 1 mm onto {name}: {diff.sum()} mismatches "
          f"outside ties ({tie.sum()} tie voxels, {(mine != ref).sum()} differ in all, "
          f"{nlab} labels present)")
    fails += 0 if ok else 1
sys.exit(1 if fails else 0)
