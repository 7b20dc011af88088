#!/usr/bin/env python3
"""synth_check.py: independent checks of a `bgfm synth` dataset with nibabel/numpy/scipy.
Not a test of the parcellation stage: ROI signals are computed here from the AAL atlas
resampled by nearest neighbour in numpy.
  synth_check.py files DIR T TR VOXEL DTYPE   every image: grid, affine, TR, dtype, mask
  synth_check.py effect DIR ATLAS             designed group effect on ROI correlations
  synth_check.py traits DIR ATLAS             tables vs model.json, and the designed trait
                                              effects recovered from ROI correlations
  synth_check.py sites DIR ATLAS              --site-coupling: each site's coupling shift
                                              (model.json) recovered from ROI correlations
  synth_check.py spread DIR ATLAS             --site-spread: within every site, how far each
                                              subject lies along the site's own pattern
                                              follows its amplitude (model.json)
Exit 0 when every check passes, 1 otherwise.
With SYNTH_CHECK_CACHE=DIR the subjects' ROI Fisher z of traits, sites and spread are kept in
DIR, keyed by the images (path, size, modification time) and the regions' voxels: a second
check of the same images (tests/e2e/synth.sh's must_fail, which edits model.json only)
reads them from there instead of the images."""
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
    model = json.load(open(os.path.join(d, "derivatives/synth/model.json")))
    K = model.get("traits", 0)
    extra = ["score"] + [f"trait_{k}" for k in range(1, K + 1)] if K else []
    if header != ["participant_id", "diagnosis", "site", "age", "sex"] + extra:
        ok = fail(f"participants.tsv columns {header}")
    diag = [r[1] for r in rows if r[1] != "n/a"]
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
    from multiprocessing import Pool
    with Pool(2) as pool:  # the subjects' images are read and reduced two at a time
        fz = pool.map(subject_fz, [(os.path.join(d, r[0], "func", f"{r[0]}_task-rest_space-MNI152NLin6Asym_{res}_desc-preproc_bold.nii.gz"), roi_idx) for r in rows])
    for r, z in zip(rows, fz):
        for a, b in score:
            ia, ib = np.flatnonzero(roi_net == a), np.flatnonzero(roi_net == b)
            score[(a, b)].append(z[np.ix_(ia, ib)].mean())
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


def bold_path(d, sid, vox):
    return os.path.join(d, sid, "func", f"{sid}_task-rest_space-MNI152NLin6Asym_res-{vox}_desc-preproc_bold.nii.gz")


def roi_setup(d, atlas):
    """AAL regions on the dataset's grid (numpy nearest neighbour), each with the network
    holding most of its voxels in the written network map, and its voxel indices."""
    model = json.load(open(os.path.join(d, "derivatives/synth/model.json")))
    shape, aff = grid(model["voxel_size"])
    netmap = np.asarray(nib.load(glob.glob(os.path.join(d, "derivatives/synth/*desc-networks_dseg.nii.gz"))[0]).dataobj).astype(int)
    aal = resample_nn(atlas, shape, aff)
    labels, roi_net, roi_idx = [], [], []
    for r in np.unique(aal):
        m = (aal == r) & (netmap > 0)
        if r <= 0 or m.sum() < 5:
            continue
        vals, counts = np.unique(netmap[m], return_counts=True)
        labels.append(int(r))
        roi_net.append(vals[np.argmax(counts)] - 1)
        roi_idx.append(np.flatnonzero(m.ravel(order="F")))
    return model, np.array(labels), np.array(roi_net), roi_idx


def subject_fz(args):
    """Fisher z of the Pearson correlations between the mean signals of the regions."""
    path, roi_idx = args
    img = nib.load(path)
    data = np.asarray(img.dataobj, dtype=np.float32).reshape(-1, img.shape[3], order="F")
    ts = np.stack([data[idx].mean(axis=0) for idx in roi_idx])
    return np.arctanh(np.clip(np.corrcoef(ts), -0.999, 0.999))


def ols_t(y, X):
    """OLS coefficients and their t statistics."""
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    resid = y - X @ beta
    dof = X.shape[0] - X.shape[1]
    cov = (resid @ resid / dof) * np.linalg.inv(X.T @ X)
    return beta, beta / np.sqrt(np.diag(cov))


def subjects_fz(paths, roi_idx):
    """subject_fz of every image (read in 2 processes), through $SYNTH_CHECK_CACHE if set."""
    cache = os.environ.get("SYNTH_CHECK_CACHE")
    if cache:
        import hashlib
        h = hashlib.sha256()
        for p in paths:
            st = os.stat(p)
            h.update(f"{os.path.abspath(p)} {st.st_size} {st.st_mtime_ns}\n".encode())
        for idx in roi_idx:
            h.update(np.ascontiguousarray(idx, dtype=np.int64).tobytes() + b"|")
        cfile = os.path.join(cache, h.hexdigest() + ".npy")
        if os.path.exists(cfile):
            return list(np.load(cfile))
    from multiprocessing import Pool
    with Pool(2) as pool:
        fz = pool.map(subject_fz, [(p, roi_idx) for p in paths])
    if cache:
        os.makedirs(cache, exist_ok=True)
        np.save(cfile, np.array(fz))
    return fz


def subjects_design(d, model, rows, roi_idx):
    """Every subject's ROI Fisher z (subjects_fz) and the design [1, site dummies
    (against the first site by number), traits]; the site names in that order."""
    fz = subjects_fz([bold_path(d, r[0], model["voxel_size"]) for r in rows], roi_idx)
    n = len(fz)
    site_names = sorted({r[2] for r in rows}, key=lambda x: int(x.split("-")[1]))
    site = np.array([[r[2] == s for s in site_names[1:]] for r in rows], dtype=float).reshape(n, -1)
    Z = np.array([t["traits"] for t in model["participants"]])
    return fz, site_names, np.column_stack([np.ones(n), site, Z])


def pair_mean(fz, roi_net, a, b):
    """Per subject, the mean Fisher z between the regions of networks a and b."""
    ia, ib = np.flatnonzero(roi_net == a), np.flatnonzero(roi_net == b)
    return np.array([f[np.ix_(ia, ib)].mean() for f in fz])


def check_trait_tables(d, model, header, rows):
    """participants.tsv against model.json: columns, n/a rows, traits, score, classes."""
    ok = True
    K, S, U = model["traits"], model["labelled"], model["unlabelled"]
    truth = model["participants"]
    if header != ["participant_id", "diagnosis", "site", "age", "sex", "score"] + [f"trait_{k}" for k in range(1, K + 1)]:
        ok = fail(f"participants.tsv columns {header}")
    if len(rows) != S + U or len(truth) != S + U:
        return fail(f"{len(rows)} rows, {len(truth)} in model.json, expected {S} + {U}")
    for r, t in zip(rows, truth):
        if r[0] != t["participant_id"] or r[2] != t["site"]:
            ok = fail(f"{r[0]}: id/site differ from model.json {t['participant_id']} {t['site']}")
        if t["labelled"]:
            vals = np.array([float(x) for x in r[5:]])
            if np.max(np.abs(vals - np.array([t["score"]] + t["traits"]))) > 5.1e-7:
                ok = fail(f"{r[0]}: score/traits {r[5:]} differ from model.json")
            if r[1] != t["diagnosis"] or (r[1] == "patient") != (t["liability"] > model["liability_threshold"]):
                ok = fail(f"{r[0]}: diagnosis {r[1]} vs liability {t['liability']}")
        elif any(x != "n/a" for x in [r[1]] + r[5:]):
            ok = fail(f"{r[0]}: unlabelled subject with values {r[1]} {r[5:]}")
    lab = [r for r, t in zip(rows, truth) if t["labelled"]]
    if [r[0] for r in lab] != [f"sub-{i:0{len(rows[0][0]) - 4}d}" for i in range(1, S + 1)]:
        ok = fail("labelled subjects are not sub-1..S")
    npat = sum(r[1] == "patient" for r in lab)
    if npat != S // 2 or sum(r[1] == "control" for r in lab) != S - S // 2:
        ok = fail(f"classes not balanced: {npat} patients of {S}")
    sites = sorted({r[2] for r in rows})
    for s in sites:
        kinds = {t["labelled"] for r, t in zip(rows, truth) if r[2] == s}
        if U >= 2 * len(sites) and kinds != {True, False}:
            ok = fail(f"{s} does not hold both labelled and unlabelled subjects")
    # diagnosis and score follow the traits (w.z and v.z from the true traits)
    Z = np.array([t["traits"] for t in truth if t["labelled"]])
    wz, vz = Z @ np.array(model["diagnosis_weights"]), Z @ np.array(model["score_weights"])
    pat = np.array([r[1] == "patient" for r in lab])
    tt, p = stats.ttest_ind(wz[pat], wz[~pat], equal_var=False)
    rs = np.corrcoef(vz, [float(r[5]) for r in lab])[0, 1]
    print(f"{S} labelled ({npat} patients) + {U} unlabelled; w.z patients vs controls t = {tt:.2f}; "
          f"corr(score, v.z) = {rs:.2f}")
    if not tt > 2:
        ok = fail("patients do not have a higher w.z than controls")
    if not rs > 0.3:
        ok = fail("score does not follow v.z")
    return ok


def check_traits(d, atlas):
    model, labels, roi_net, roi_idx = roi_setup(d, atlas)
    header, rows = read_participants(d)
    ok = check_trait_tables(d, model, header, rows)
    K, N = model["traits"], model["networks"]
    fz, site_names, X = subjects_design(d, model, rows, roi_idx)
    col = len(site_names)  # column of trait 1
    def pair_t(a, b):
        return ols_t(pair_mean(fz, roi_net, a, b), X)
    loaded = {}
    for k, pairs in enumerate(model["trait_pairs"]):
        for q in pairs:
            a, b = q["networks"]
            loaded.setdefault((a, b), {})[k] = loaded.get((a, b), {}).get(k, 0) + q["sign"]
    # designed trait -> pair loadings: the mean Fisher z between the regions of the two
    # networks regressed on all traits (and site); right sign, |t| > 3
    for (a, b), ks in sorted(loaded.items()):
        beta, t = pair_t(a, b)
        for k, sign in ks.items():
            msg = f"trait {k + 1} -> networks {a}-{b} (sign {sign:+d}): slope {beta[col + k]:+.3f}, t = {t[col + k]:+.2f}"
            print(msg)
            if not (np.sign(t[col + k]) == np.sign(sign) and abs(t[col + k]) > 3):
                ok = fail(f"designed loading not recovered: {msg}")
    # pairs no trait loads show no trait effect: at most 5% of their trait slopes with
    # |t| > 3 (about 0.5% expected by chance) and none above 4.5
    null_t = []
    for a in range(N):
        for b in range(a + 1, N):
            if (a, b) in loaded:
                continue
            beta, t = pair_t(a, b)
            null_t.extend(t[col:col + K])
    null_t = np.abs(np.array(null_t))
    print(f"{len(null_t) // K} pairs no trait loads: max |t| = {null_t.max():.2f}, "
          f"{np.mean(null_t > 3):.1%} of {len(null_t)} trait slopes with |t| > 3")
    if np.mean(null_t > 3) > 0.05 or null_t.max() > 4.5:
        ok = fail("traits shift network pairs they do not load")
    # designed trait -> parcel mixing: the region's mean Fisher z with the regions of its
    # secondary network, right sign and |t| > 3
    for k, parcels in enumerate(model["trait_parcels"]):
        for q in parcels:
            if q["atlas_label"] not in labels:
                continue
            i = int(np.flatnonzero(labels == q["atlas_label"])[0])
            im = np.flatnonzero(roi_net == q["secondary"])
            y = np.array([f[i, im].mean() for f in fz])
            beta, t = ols_t(y, X)
            msg = (f"trait {k + 1} -> region {q['atlas_label']} (network {q['network']}) mixing with "
                   f"network {q['secondary']} (sign {q['sign']:+d}): slope {beta[col + k]:+.3f}, t = {t[col + k]:+.2f}")
            print(msg)
            if not (np.sign(t[col + k]) == np.sign(q["sign"]) and abs(t[col + k]) > 3):
                ok = fail(f"designed mixing not recovered: {msg}")
    return ok


def site_pairs(d, atlas, key, option):
    """For the site checks: model.json (which must hold `key`, written by `option`), the
    participants' rows, the site names, the design [1, site dummies, traits] and, per
    network pair a < b with regions in the atlas, its index in row order and every
    subject's mean Fisher z between the two networks' regions; None when `key` is absent."""
    model, labels, roi_net, roi_idx = roi_setup(d, atlas)
    header, rows = read_participants(d)
    if key not in model:
        return fail(f"model.json has no {key} (made without {option})") or None
    N = model["networks"]
    fz, site_names, X = subjects_design(d, model, rows, roi_idx)
    pairs = [(a * N - a * (a + 1) // 2 + (b - a - 1), pair_mean(fz, roi_net, a, b))
             for a in range(N) for b in range(a + 1, N)
             if (roi_net == a).any() and (roi_net == b).any()]
    return model, rows, site_names, X, pairs


def check_sites(d, atlas):
    """--site-coupling: per network pair, the mean Fisher z between the regions of the two
    networks regressed on the traits and the site dummies; each site's coefficients
    (against site-1) must follow its true shift less site-1's (model.json
    site_coupling_shift): Pearson r > 0.6 over the pairs, for every site."""
    got = site_pairs(d, atlas, "site_coupling_shift", "--site-coupling")
    if got is None:
        return False
    model, rows, site_names, X, pairs = got
    S = len(site_names)
    shift = np.array(model["site_coupling_shift"])
    est = np.array([ols_t(y, X)[0][1:S] for _, y in pairs])
    true = np.array([shift[1:, j] - shift[0, j] for j, _ in pairs])
    ok = True
    for k in range(est.shape[1]):
        r = np.corrcoef(est[:, k], true[:, k])[0, 1]
        print(f"{site_names[k + 1]} - {site_names[0]}: {len(est)} network pairs, r = {r:+.3f} "
              f"between the recovered and the true coupling shift")
        if not r > 0.6:
            ok = fail(f"{site_names[k + 1]}'s coupling shift not recovered (r = {r:.3f})")
    return ok


def check_spread(d, atlas):
    """--site-spread: per network pair, the mean Fisher z between the regions of the two
    networks, residualised on the traits and the site dummies; within every site, the
    subjects' residuals projected on the site's own pattern (model.json site_spread_pattern)
    must follow their amplitudes (site_spread_amplitude): Pearson r > 0.6 (the largest |r|
    on another site's pattern is printed beside it)."""
    got = site_pairs(d, atlas, "site_spread_pattern", "--site-spread")
    if got is None:
        return False
    model, rows, site_names, X, pairs = got
    pat = np.array(model["site_spread_pattern"])
    amp = np.array([t["site_spread_amplitude"] for t in model["participants"]])
    cols = [j for j, _ in pairs]
    res = np.array([y - X @ np.linalg.lstsq(X, y, rcond=None)[0] for _, y in pairs]).T
    site_of = np.array([site_names.index(r[2]) for r in rows])
    ok = True
    for k, name in enumerate(site_names):
        m = site_of == k
        r_own = np.corrcoef(res[m] @ pat[k, cols], amp[m])[0, 1]
        r_other = max(abs(np.corrcoef(res[m] @ pat[j, cols], amp[m])[0, 1])
                      for j in range(len(site_names)) if j != k)
        print(f"{name}: {m.sum()} subjects, {len(cols)} network pairs: r = {r_own:+.3f} between "
              f"the projection on its own pattern and the amplitude; at most |r| = "
              f"{r_other:.3f} on another site's pattern")
        if not r_own > 0.6:
            ok = fail(f"{name}'s own spread not recovered (r = {r_own:.3f}, other {r_other:.3f})")
    return ok


if __name__ == "__main__":
    if sys.argv[1] == "files":
        sys.exit(0 if check_files(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]) else 1)
    if sys.argv[1] == "effect":
        sys.exit(0 if check_effect(sys.argv[2], sys.argv[3]) else 1)
    if sys.argv[1] == "traits":
        sys.exit(0 if check_traits(sys.argv[2], sys.argv[3]) else 1)
    if sys.argv[1] == "sites":
        sys.exit(0 if check_sites(sys.argv[2], sys.argv[3]) else 1)
    if sys.argv[1] == "spread":
        sys.exit(0 if check_spread(sys.argv[2], sys.argv[3]) else 1)
    sys.exit(2)
