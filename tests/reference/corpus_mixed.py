"""corpus_mixed.py BGFM TMPDIR: one parcellate stage over three datasets that differ in
TR (2.0 s, 0.8 s, and a 2.0 s header overridden by the dataset's t_r: 1.5), voxel size
(6 mm, 4 mm), grid, field of view and volume count, with colliding participant ids,
against numpy/scipy/nibabel (parcellate_lib.py): every row's ROI means and band-pass +
zscore from its own grid and TR. Prints TAP lines."""
import os
import subprocess
import sys

import h5py
import nibabel as nib
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import Tap  # noqa: E402
from parcellate_lib import clean, load_data, make_subject, resample_labels, roi_means, write_tsv  # noqa

BGFM, TMP = sys.argv[1], sys.argv[2]
tap = Tap()




rng = np.random.default_rng(7)
aff6 = np.array([[-6., 0, 0, 90], [0, 6, 0, -126], [0, 0, 6, -72], [0, 0, 0, 1]])
aff4 = np.array([[-4., 0, 0, 78], [0, 4, 0, -110], [0, 0, 4, -60], [0, 0, 0, 1]])
# name, grid shape, affine, volumes, header TR, dataset t_r override
sets = [("six", (26, 30, 26), aff6, 64, 2.0, None),
        ("four", (36, 44, 34), aff4, 90, 0.8, None),
        ("over", (26, 30, 26), aff6, 50, 2.0, 1.5)]
for name, shape, aff, T, tr, _ in sets:
    for s in ("01", "02"):
        make_subject(f"{TMP}/{name}/sub-{s}/func/sub-{s}_task-rest_bold.nii.gz", rng, shape, aff,
                     T, tr)
    write_tsv(f"{TMP}/{name}/participants.tsv", [{"participant_id": "sub-01", "dx": "a"},
                                                 {"participant_id": "sub-02", "dx": "b"}],
              ["participant_id", "dx"])
a4 = np.array([[4., 0, 0, -81], [0, 4, 0, -111], [0, 0, 4, -61], [0, 0, 0, 1]])
i, j, k = np.meshgrid(np.arange(40), np.arange(50), np.arange(36), indexing="ij")
blk = ((i // 8) + 5 * (j // 10) + 25 * (k // 9)) * 4 + 3
blk[(i + j + k) % 11 == 0] = 0
nib.save(nib.Nifti1Image(blk.astype(np.int16), a4), f"{TMP}/blocks.nii.gz")
with open(f"{TMP}/p.yaml", "w") as f:
    f.write(f"name: m\nworkdir: {TMP}/w\ninputs:\n  label_column: dx\n  datasets:\n")
    for name, _, _, _, _, over in sets:
        f.write(f"    - {{name: {name}, bids: {TMP}/{name}, role: both"
                + (f", t_r: {over}" if over else "") + "}\n")
    f.write(f"atlases:\n  - {{name: blocks, path: {TMP}/blocks.nii.gz}}\nstages:\n"
            "  - {name: parcellate, uses: parcellate, with: {detrend: true, high_pass: 0.01, "
            "low_pass: 0.1, standardize: zscore}}\n")
r = subprocess.run(["mpirun", "--oversubscribe", "-np", "2", BGFM, "run", f"{TMP}/p.yaml",
                    "--quiet"], capture_output=True, text=True)
tap(r.returncode == 0, f"three datasets of mixed TR and voxel size parcellated on 2 ranks "
    f"(exit {r.returncode}) {r.stderr.strip()[-300:]}")
f = h5py.File(f"{TMP}/w/parcellate/timeseries.h5", "r")
at = nib.load(f"{TMP}/blocks.nii.gz")
rl = np.unique(np.asarray(at.dataobj)).astype(np.int64)
rl = rl[rl != 0]
off = f["atlases/blocks/offsets"][:]
row, worst, ok = 0, 0.0, True
for name, shape, aff, T, tr, over in sets:
    for s in ("01", "02"):
        d, im = load_data(f"{TMP}/{name}/sub-{s}/func/sub-{s}_task-rest_bold.nii.gz")
        lab, tie = resample_labels(at, d.shape, im.affine)
        assert not tie.any()
        ts, cov, flg = roi_means(d, lab, rl)
        use_tr = over or tr
        ref = clean(ts, flg, use_tr, detrend=True, high_pass=0.01, low_pass=0.1,
                    standardize="zscore")
        mine = f["atlases/blocks/timeseries"][off[row]:off[row + 1]].astype(np.float64)
        err = np.abs(mine - ref).max() / max(np.abs(ref).max(), 1e-30)
        worst = max(worst, err)
        checks = [err <= 1e-5, mine.shape[0] == T, abs(f["subjects/t_r"][row] - use_tr) < 1e-6,  # a header TR is float32
                  f["subjects/dataset"][row].decode() == name,
                  f["subjects/participant_id"][row].decode() == "sub-" + s,
                  np.array_equal(f["atlases/blocks/flagged"][row], flg)]
        if not all(checks):
            print(f"# row {row} ({name}/sub-{s}): checks {checks}", flush=True)
        ok &= all(bool(c) for c in checks)
        row += 1
tap(ok and row == f.attrs["n_subjects"], f"each row = numpy/scipy from its own grid and TR "
    f"(6 rows: 6 mm TR 2.0, 4 mm TR 0.8, 6 mm TR 1.5 by the dataset's t_r; worst rel err "
    f"{worst:.1e})")
tap(list(f["subjects/label"][:]) == [0, 1] * 3, "labels coded over the datasets' shared values")
tap.exit()
