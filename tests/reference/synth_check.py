#!/usr/bin/env python3
"""synth_check.py: independent checks of a `bgfm synth` dataset with nibabel/numpy/scipy.
Not a test of the parcellation stage: ROI signals are computed here from the AAL atlas
resampled by nearest neighbour in numpy.
  synth_check.py files DIR T TR VOXEL DTYPE   every image: grid, affine, TR, dtype, mask
  synth_check.py effect DIR ATLAS             designed group effect on ROI correlations
Exit 0 when every check passes, 1 otherwise."""
import csv
import glob
import json
import os
import sys

import nibabel as nib
import numpy as np
from scipy import stats


def fail(msg):
    print("FAIL:", msg)
    return False


def grid(vox):
    if vox == 2:
        return (91, 109, 91), np.array([[-2, 0, 0, 90], [0, 2, 0, -126], [0, 0, 2, -72], [0, 0, 0, 1.0]])
    return (61, 73, 61), np.array([[-3, 0, 0, 90], [0, 3, 0, -126], [0, 0, 3, -72], [0, 0, 0, 1.0]])


def read_participants(d):
    with open(os.path.join(d, "participants.tsv"), newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    return rows[0], rows[1:]


def check_files(d, T, tr, vox, dtype):
    ok = True
    shape, aff = grid(vox)
    header, rows = read_participants(d)
    if header != ["participant_id", "diagnosis", "site", "age", "sex"]:
        ok = fail(f"participants.tsv columns {header}")
    diag = [r[1] for r in rows]
    if set(diag) != {"control", "patient"} or abs(diag.count("control") - diag.count("patient")) > 1:
        ok = fail(f"diagnosis not balanced: {diag}")
    if not all(r[2].startswith("site-") for r in rows) or not all(r[4] in ("M", "F") for r in rows):
        ok = fail("site/sex columns")
    if not all(18 <= int(r[3]) <= 90 for r in rows):
        ok = fail("age column")
    desc = json.load(open(os.path.join(d, "dataset_description.json")))
    if "BIDSVersion" not in desc or "Name" not in desc:
        ok = fail("dataset_description.json")
    res = f"res-{vox}"
    net = nib.load(glob.glob(os.path.join(d, "derivatives/synth/*desc-networks_dseg.nii.gz"))[0])
    mask = np.asarray(net.dataobj) > 0
    for r in rows:
        sid = r[0]
        files = glob.glob(os.path.join(d, sid, "func", f"{sid}_task-rest_space-MNI152NLin6Asym_{res}_desc-preproc_bold.nii.gz"))
        if len(files) != 1:
            ok = fail(f"{sid}: {files}")
            continue
        img = nib.load(files[0])
        if img.shape != shape + (T,):
            ok = fail(f"{sid}: shape {img.shape}")
        if not np.allclose(img.affine, aff):
            ok = fail(f"{sid}: affine {img.affine}")
        z = img.header.get_zooms()
        if not np.allclose(z, (vox, vox, vox, tr)) or img.header.get_xyzt_units() != ("mm", "sec"):
            ok = fail(f"{sid}: zooms {z} units {img.header.get_xyzt_units()}")
        sidecar = json.load(open(files[0].replace(".nii.gz", ".json")))
        if abs(sidecar["RepetitionTime"] - tr) > 1e-9:
            ok = fail(f"{sid}: sidecar TR {sidecar['RepetitionTime']}")
        if img.get_data_dtype() != np.dtype(dtype):
            ok = fail(f"{sid}: dtype {img.get_data_dtype()}")
        if int(img.header["sform_code"]) != 4:
            ok = fail(f"{sid}: sform_code {img.header['sform_code']}")
        if rows.index(r) >= 3:  # voxel data of the first three subjects (time budget)
            continue
        data = img.get_fdata(dtype=np.float32)
        if np.any(data[~mask] != 0):
            ok = fail(f"{sid}: non-zero voxels outside the brain mask")
        sd = data[mask].std(axis=1)
        if np.any(sd == 0):
            ok = fail(f"{sid}: {np.sum(sd == 0)} constant voxels inside the mask")
    print(f"{len(rows)} subjects checked: grid {shape}, TR {tr}, dtype {dtype}, "
          f"{mask.sum()} brain voxels")
    return ok


def resample_nn(atlas_path, shape, aff):
    at = nib.load(atlas_path)
    lab = np.asarray(at.dataobj)
    ijk = np.indices(shape).reshape(3, -1)
    world = aff[:3, :3] @ ijk + aff[:3, 3:4]
    inv = np.linalg.inv(at.affine)
    src = np.floor(inv[:3, :3] @ world + inv[:3, 3:4] + 0.5).astype(int)
    inside = np.all((src >= 0) & (src < np.array(lab.shape)[:, None]), axis=0)
    out = np.zeros(ijk.shape[1], dtype=np.int64)
    out[inside] = lab[src[0, inside], src[1, inside], src[2, inside]]
    return out.reshape(shape)


def check_effect(d, atlas):
    model = json.load(open(os.path.join(d, "derivatives/synth/model.json")))
    vox = model["voxel_size"]
    shape, aff = grid(vox)
    netmap = np.asarray(nib.load(glob.glob(os.path.join(d, "derivatives/synth/*desc-networks_dseg.nii.gz"))[0]).dataobj).astype(int)
    aal = resample_nn(atlas, shape, aff)
    regions = [r for r in np.unique(aal) if r > 0]
    roi_net, roi_idx = [], []
    for r in regions:
        m = (aal == r) & (netmap > 0)
        if m.sum() < 5:
            continue
        vals, counts = np.unique(netmap[m], return_counts=True)
        roi_net.append(vals[np.argmax(counts)] - 1)
        roi_idx.append(np.flatnonzero(m.ravel(order="F")))
    roi_net = np.array(roi_net)
    header, rows = read_participants(d)
    res = f"res-{vox}"
    score = {(0, 1): [], (2, 3): [], (4, 5): []}
    group = []
    for r in rows:
        sid = r[0]
        img = nib.load(os.path.join(d, sid, "func", f"{sid}_task-rest_space-MNI152NLin6Asym_{res}_desc-preproc_bold.nii.gz"))
        data = img.get_fdata(dtype=np.float32).reshape(-1, img.shape[3], order="F")
        ts = np.stack([data[idx].mean(axis=0) for idx in roi_idx])
        c = np.corrcoef(ts)
        for a, b in score:
            ia, ib = np.flatnonzero(roi_net == a), np.flatnonzero(roi_net == b)
            score[(a, b)].append(np.arctanh(np.clip(c[np.ix_(ia, ib)], -0.999, 0.999)).mean())
        group.append(r[1])
    group = np.array(group)
    ok = True
    eff = model["effect"]
    for (a, b), v in score.items():
        v = np.array(v)
        ctl, pat = v[group == "control"], v[group == "patient"]
        t, p = stats.ttest_ind(ctl, pat, equal_var=False)
        print(f"networks {a}-{b}: mean Fisher z control {ctl.mean():.3f} patient {pat.mean():.3f} "
              f"(t = {t:.2f}, p = {p:.2g})")
        if (a, b) == (0, 1) and not (t > 3 and ctl.mean() - pat.mean() > eff / 4):
            ok = fail("designed effect (controls > patients on networks 0-1) not found")
        if (a, b) == (2, 3) and not (t < -3 and pat.mean() - ctl.mean() > eff / 4):
            ok = fail("designed effect (patients > controls on networks 2-3) not found")
        if (a, b) == (4, 5) and not (abs(ctl.mean() - pat.mean()) < eff / 4 and p > 0.001):
            ok = fail("control pair 4-5 differs between groups")
    print(f"{len(roi_idx)} AAL regions, networks per region: {np.bincount(roi_net)}")
    return ok


if __name__ == "__main__":
    if sys.argv[1] == "files":
        sys.exit(0 if check_files(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]) else 1)
    if sys.argv[1] == "effect":
        sys.exit(0 if check_effect(sys.argv[2], sys.argv[3]) else 1)
    sys.exit(2)
