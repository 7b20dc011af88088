"""parcellate_extract.py BGFM TMPDIR: ROI means and every cleaning option of the
parcellate stage against numpy/scipy/nibabel (parcellate_lib.py), on small images made
here: float32, int16 with scl_slope/scl_inter, float64; a 2 mm and an oblique 3 mm
atlas made here plus the real 1 mm AAL; and the real nitime fmri1.nii.gz.
Prints TAP lines."""
import os
import subprocess
import sys

import h5py
import nibabel as nib
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import Tap  # noqa: E402
from parcellate_lib import (clean, load_data, make_subject, resample_labels, roi_means,  # noqa
                            write_pipeline, write_tsv)

BGFM, TMP = sys.argv[1], sys.argv[2]
AAL = "/usr/share/mricron/templates/aal.nii.gz"
NITIME = "/usr/lib/python3/dist-packages/nitime/data/fmri1.nii.gz"
tap = Tap()




def close(mine, ref, rtol=1e-5):
    scale = max(np.abs(ref).max(), 1e-30)
    return np.abs(mine - ref).max() <= rtol * scale, np.abs(mine - ref).max() / scale


rng = np.random.default_rng(42)
bids = os.path.join(TMP, "bids")
aff6 = np.array([[-6., 0, 0, 90], [0, 6, 0, -126], [0, 0, 6, -72], [0, 0, 0, 1]])
shape = (26, 30, 26)
T, TR = 64, 2.0
for s, kind in [("01", "float32"), ("02", "int16"), ("03", "float64")]:
    make_subject(f"{bids}/sub-{s}/func/sub-{s}_task-rest_bold.nii.gz", rng, shape, aff6, T, TR,
                 kind)
write_tsv(f"{bids}/participants.tsv",
          [{"participant_id": "sub-01", "diagnosis": "ctl"},
           {"participant_id": "sub-02", "diagnosis": "asd"},
           {"participant_id": "sub-03", "diagnosis": "n/a"}], ["participant_id", "diagnosis"])
# atlas 2: axis-aligned 4 mm blocks (labels 3, 7, 11, ...), different grid from the data
a4 = np.array([[4., 0, 0, -81], [0, 4, 0, -111], [0, 0, 4, -61], [0, 0, 0, 1]])
i, j, k = np.meshgrid(np.arange(40), np.arange(50), np.arange(36), indexing="ij")
blk = ((i // 8) + 5 * (j // 10) + 25 * (k // 9)) * 4 + 3
blk[(i + j + k) % 11 == 0] = 0
nib.save(nib.Nifti1Image(blk.astype(np.int16), a4), f"{TMP}/blocks.nii.gz")
# atlas 3: oblique 3 mm grid (rotation about z and x) with 30 random-ish labels
th, ph = 0.3, -0.2
Rz = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
Rx = np.array([[1, 0, 0], [0, np.cos(ph), -np.sin(ph)], [0, np.sin(ph), np.cos(ph)]])
ao = np.eye(4)
ao[:3, :3] = Rz @ Rx * 3.0
ao[:3, 3] = [-70.3, -95.7, -52.1]
ob = ((i[:48, :48, :40] // 7) * 3 + (j[:48, :48, :40] // 9) * 5 + (k[:48, :48, :40] // 8)) % 30 + 1
nib.save(nib.Nifti1Image(ob.astype(np.uint8), ao), f"{TMP}/oblique.nii.gz")
atlases = [("aal", AAL), ("blocks", f"{TMP}/blocks.nii.gz"), ("oblique", f"{TMP}/oblique.nii.gz")]

cases = {
    "plain ROI mean": dict(detrend="false"),
    "detrend": dict(detrend="true"),
    "band-pass 0.01-0.1 Hz": dict(detrend="true", high_pass=0.01, low_pass=0.1),
    "high-pass 0.02 Hz only": dict(detrend="false", high_pass=0.02),
    "low-pass 0.08 Hz only, order 3": dict(detrend="false", low_pass=0.08, filter_order=3),
    "zscore": dict(detrend="true", standardize="zscore"),
    "psc": dict(detrend="false", standardize="psc"),
    "psc after band-pass": dict(detrend="true", high_pass=0.01, low_pass=0.1, standardize="psc"),
    "t_r override 1.5 s, band-pass": dict(detrend="true", high_pass=0.02, low_pass=0.2,
                                          t_r=1.5),
}

data = {}
for s in ["01", "02", "03"]:
    data[s] = load_data(f"{bids}/sub-{s}/func/sub-{s}_task-rest_bold.nii.gz")
refmeans = {}
for an, ap in atlases:
    at = nib.load(ap)
    rl = np.unique(np.rint(np.asarray(at.dataobj, dtype=np.float64)).astype(np.int64))
    rl = rl[rl != 0]
    for s in data:
        d, im = data[s]
        lab, tie = resample_labels(at, d.shape, im.affine)
        assert not tie.any(), "test grids must avoid rounding ties"
        refmeans[(an, s)] = roi_means(d, lab, rl) + (rl,)

for ci, (name, w) in enumerate(cases.items()):
    wd = f"{TMP}/w{ci}"
    write_pipeline(f"{TMP}/p{ci}.yaml", wd, bids, atlases, w)
    r = subprocess.run([BGFM, "run", f"{TMP}/p{ci}.yaml", "--quiet"], capture_output=True,
                       text=True)
    if r.returncode != 0:
        tap(False, f"{name}: bgfm run exited {r.returncode}: {r.stderr.strip()[-300:]}")
        continue
    f = h5py.File(f"{wd}/parcellate/timeseries.h5", "r")
    ok_all, worst = True, 0.0
    for an, ap in atlases:
        g = f["atlases/" + an]
        off = g["offsets"][:]
        for si, s in enumerate(["01", "02", "03"]):
            ts, cov, flg, rl = refmeans[(an, s)]
            tr = float(w.get("t_r", TR))
            ref = clean(ts, flg, tr, detrend=w.get("detrend") == "true",
                        high_pass=float(w.get("high_pass", 0)),
                        low_pass=float(w.get("low_pass", 0)),
                        order=int(w.get("filter_order", 5)),
                        standardize=w.get("standardize", "none"))
            mine = g["timeseries"][off[si]:off[si + 1]].astype(np.float64)
            good, rel = close(mine, ref)
            good &= np.array_equal(g["region_labels"][:], rl)
            good &= np.array_equal(g["flagged"][si], flg)
            good &= np.allclose(g["coverage"][si], cov, atol=1e-6)
            good &= abs(f["subjects/t_r"][si] - tr) < 1e-9
            ok_all &= bool(good)
            worst = max(worst, rel)
    tap(ok_all, f"{name}: 3 atlases x 3 subjects (float32, int16+scl_slope, float64) match "
        f"numpy/scipy (worst rel err {worst:.1e})")
    if ci == 0:
        lab = f["subjects/label"][:]
        tap(list(lab) == [1, 0, -1] and f["subjects/label"].attrs["classes"] == b"asd,ctl",
            "labels coded from participants.tsv (text -> sorted classes, n/a -> -1)")
        flagged_any = any(f[f"atlases/{an}/flagged"][:].any() for an, _ in atlases)
        zero_ok = True
        for an, _ in atlases:
            g = f["atlases/" + an]
            off = g["offsets"][:]
            for si in range(3):
                rows = g["timeseries"][off[si]:off[si + 1]]
                zero_ok &= bool(np.all(rows[:, g["flagged"][si].astype(bool)] == 0))
        tap(flagged_any and zero_ok, "low-coverage regions are flagged, kept and all zero")
        names = f["atlases/aal/region_names"][:3].astype(str).tolist()
        tap(names == ["Precentral_L", "Precentral_R", "Frontal_Sup_L"] and
            f["atlases/blocks/region_names"][0] == b"label_3", "region names from aal.nii.txt, "
            "else label_<v>")
    f.close()

# Real file written by other software: nitime's fmri1.nii.gz (int16, oblique sform,
# TR 1.35 s), with an axis-aligned 3 mm block atlas covering its field of view.
nb = f"{TMP}/nbids"
os.makedirs(f"{nb}/sub-01/func")
os.symlink(NITIME, f"{nb}/sub-01/func/sub-01_task-rest_bold.nii.gz")
write_tsv(f"{nb}/participants.tsv", [{"participant_id": "sub-01", "diagnosis": 1}],
          ["participant_id", "diagnosis"])
ni = nib.load(NITIME)
corners = ni.affine @ np.array([[x, y, z, 1] for x in (0, 9) for y in (0, 9) for z in (0, 17)]).T
lo = corners[:3].min(axis=1) - 6
a3 = np.diag([3.0, 3.0, 3.0, 1.0])
a3[:3, 3] = lo
ii, jj, kk = np.meshgrid(np.arange(16), np.arange(20), np.arange(20), indexing="ij")
nat = (ii // 4) + 4 * (jj // 5) + 16 * (kk // 5) + 1
nib.save(nib.Nifti1Image(nat.astype(np.int16), a3), f"{TMP}/nat.nii.gz")
write_pipeline(f"{TMP}/pn.yaml", f"{TMP}/wn", nb, [("nat", f"{TMP}/nat.nii.gz")],
               dict(detrend="true", high_pass=0.01, low_pass=0.2, standardize="zscore",
                    min_coverage=0.3))
r = subprocess.run([BGFM, "run", f"{TMP}/pn.yaml", "--quiet"], capture_output=True, text=True)
if r.returncode != 0:
    tap(False, f"nitime fmri1.nii.gz: bgfm run exited {r.returncode}: {r.stderr.strip()[-300:]}")
else:
    f = h5py.File(f"{TMP}/wn/parcellate/timeseries.h5", "r")
    d, im = load_data(NITIME)
    at = nib.load(f"{TMP}/nat.nii.gz")
    rl = np.unique(nat)
    lab, tie = resample_labels(at, d.shape, im.affine)
    ts, cov, flg = roi_means(d, lab, rl, min_coverage=0.3)
    ref = clean(ts, flg, 1.35, detrend=True, high_pass=0.01, low_pass=0.2, standardize="zscore")
    mine = f["atlases/nat/timeseries"][:].astype(np.float64)
    good, rel = close(mine, ref)
    tap(good and not tie.any() and np.array_equal(f["atlases/nat/flagged"][0], flg) and
        abs(f["subjects/t_r"][0] - 1.35) < 1e-6 and f["subjects/n_volumes"][0] == 40 and
        (flg == 0).sum() >= 5,
        f"nitime fmri1.nii.gz (int16, oblique, TR 1.35 s): {(flg == 0).sum()} regions match "
        f"numpy/scipy (rel err {rel:.1e})")
tap.exit()
