#!/usr/bin/python3
"""confounds_check.py DIR [--n 6]: the confounds files of a foreign_pop.py population or
of `bgfm synth --motion`, read as a pipeline would read fMRIPrep's (plain TSV, no code of
either generator).

For the first n subjects (participants.tsv's order, else the sub-* folders sorted):
checks that sub-XXX_task-rest_desc-confounds_timeseries.tsv has fMRIPrep's motion
columns and one row per volume of the image, that framewise_displacement (Power et al.
2012: sum |d trans| + 50 mm x sum |d rot|), the _derivative1 (backward difference, `n/a`
first), _derivative1_power2 and _power2 columns follow from the six parameters, and that
global_signal is the image's mean over its mask. Then how much of the motion artifact
regression removes: the mean series of the mask's edge voxels (mask: temporal sd > 0;
edge: a 6-neighbour outside it), linearly detrended, and its R2 by the 6 parameters, by
all 24, and by the 24 plus one regressor per volume of FD > 0.5 mm (each with intercept
and trend). Reported, not asserted, except that the models nest; k unrelated regressors
reach an R2 near k / (T - 2) by chance (the column chance24). With truth.json, the mean
FD beside the person's motion level and their correlation (synth: model.json's
"motion" subjects, whose mean_fd must equal the file's).
Prints a table and "N passed, N failed"; exits 1 if a check failed.
"""
import argparse, csv, glob, json, os, sys
import numpy as np
import nibabel as nib
from scipy import ndimage
from scipy.stats import pearsonr, spearmanr

P6 = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
P24 = [c + x for c in P6 for x in ["", "_derivative1", "_power2", "_derivative1_power2"]]
TOL = 1e-5


def num(v):
    return np.nan if v == "n/a" else float(v)


def r2(y, X):
    """R2 of y by [1, trend, X] (least squares)."""
    T = len(y)
    A = np.column_stack([np.ones(T), np.linspace(-1, 1, T)] + ([X] if X.size else []))
    b = np.linalg.lstsq(A, y, rcond=None)[0]
    res = y - A @ b
    return 1.0 - (res @ res) / ((y - y.mean()) @ (y - y.mean()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--n", type=int, default=6)
    a = ap.parse_args()
    pt = os.path.join(a.dir, "participants.tsv")
    if os.path.exists(pt):
        sids = [row["participant_id"] for row in csv.DictReader(open(pt), delimiter="\t")]
    else:
        sids = sorted(d for d in os.listdir(a.dir) if d.startswith("sub-"))
    sids = sids[:a.n]
    tj = os.path.join(a.dir, "derivatives", "foreign", "truth.json")
    truth = {p["participant_id"]: p for p in json.load(open(tj))["participants"]} if os.path.exists(tj) else {}
    sj = os.path.join(a.dir, "derivatives", "synth", "model.json")
    synth = {}
    if os.path.exists(sj) and "motion" in json.load(open(sj)):
        synth = {p["participant_id"]: p for p in json.load(open(sj))["motion"]["subjects"]}
        truth = {k: {"motion": v["level"]} for k, v in synth.items()}
    npass = nfail = 0
    mfd, mot = [], []
    print("%-8s %4s %5s %7s %7s %7s %7s %9s %8s  %s" % ("subject", "T", "FD>.5", "meanFD", "motion",
                                                        "R2_6", "R2_24", "R2_24+spk", "chance24", "checks"))
    for sid in sids:
        func = os.path.join(a.dir, sid, "func")
        bad = []

        def check(ok, what):
            nonlocal npass, nfail
            npass, nfail = npass + bool(ok), nfail + (not ok)
            if not ok:
                bad.append(what)
            return ok

        tsv = os.path.join(func, sid + "_task-rest_desc-confounds_timeseries.tsv")
        img = nib.load(sorted(glob.glob(os.path.join(func, sid + "_task-rest*_bold.nii.gz")))[0])
        T = img.shape[3]
        if not check(os.path.exists(tsv), "no confounds file"):
            print("%-8s %4d  %s" % (sid, T, "; ".join(bad)))
            continue
        with open(tsv, newline="") as f:
            rows = list(csv.reader(f, delimiter="\t"))
        head, body = rows[0], rows[1:]
        need = P24 + ["framewise_displacement", "global_signal"]
        missing = [c for c in need if c not in head]
        check(not missing, "missing columns %s" % " ".join(missing))
        check(len(body) == T, "%d rows for %d volumes" % (len(body), T))
        check(all(len(r) == len(head) for r in body), "ragged rows")
        if missing or len(body) != T:
            print("%-8s %4d  %s" % (sid, T, "; ".join(bad)))
            continue
        col = {c: np.array([num(r[head.index(c)]) for r in body]) for c in need}
        # n/a exactly where fMRIPrep writes it: the first row of differences
        diffs = ["framewise_displacement"] + [c for c in P24 if "derivative1" in c]
        check(all(np.isnan(col[c][0]) for c in diffs), "first row of differences not n/a")
        check(not any(np.isnan(col[c][1:]).any() for c in diffs) and
              not any(np.isnan(col[c]).any() for c in need if c not in diffs), "n/a elsewhere")
        X = np.column_stack([col[c] for c in P6])
        d = np.diff(X, axis=0)
        fd = np.abs(d[:, :3]).sum(axis=1) + 50 * np.abs(d[:, 3:]).sum(axis=1)
        check(np.max(np.abs(fd - col["framewise_displacement"][1:])) < TOL, "framewise_displacement")
        for j, c in enumerate(P6):
            check(np.max(np.abs(d[:, j] - col[c + "_derivative1"][1:])) < TOL, c + "_derivative1")
            check(np.max(np.abs(d[:, j] ** 2 - col[c + "_derivative1_power2"][1:])) < TOL, c + "_derivative1_power2")
            check(np.max(np.abs(X[:, j] ** 2 - col[c + "_power2"])) < TOL, c + "_power2")
        # the image: mask, its edge, the global signal
        data = img.get_fdata(dtype=np.float32)
        mask = data.std(axis=3) > 0
        edge = mask & ~ndimage.binary_erosion(mask, ndimage.generate_binary_structure(3, 1))
        gs = data[mask].mean(axis=0, dtype=np.float64)
        check(np.max(np.abs(gs - col["global_signal"])) < 1e-3 * np.abs(gs).mean(), "global_signal")
        y = data[edge].mean(axis=0, dtype=np.float64)
        del data
        t = np.linspace(-1, 1, T)
        y = y - np.polyval(np.polyfit(t, y, 1), t)
        full = np.column_stack([np.nan_to_num(col[c]) for c in P24])   # n/a rows as 0
        spk = np.flatnonzero(np.nan_to_num(col["framewise_displacement"]) > 0.5)
        S = np.zeros((T, len(spk)))
        S[spk, np.arange(len(spk))] = 1
        ra, rb = r2(y, X), r2(y, full)
        rc = r2(y, np.column_stack([full, S]))
        check(rb >= ra - 1e-9 and rc >= rb - 1e-9, "R2 of nested models decreases")
        m = np.nanmean(col["framewise_displacement"])
        if sid in synth:
            check(abs(synth[sid]["mean_fd"] - m) < 1e-5 * max(1.0, m), "model.json mean_fd")
        mv = truth.get(sid, {}).get("motion", np.nan)
        mfd.append(m)
        mot.append(mv)
        print("%-8s %4d %5d %7.3f %7.3f %7.3f %7.3f %9.3f %8.3f  %s" % (
            sid, T, len(spk), m, mv, ra, rb, rc, 24.0 / (T - 2), "ok" if not bad else "; ".join(bad)))
    mfd, mot = np.array(mfd), np.array(mot)
    if len(mfd) > 2 and not np.isnan(mot).any():
        print("mean FD with motion (truth.json) over %d: Pearson of logs %.3f, Spearman %.3f"
              % (len(mfd), pearsonr(np.log(mfd), np.log(mot))[0], spearmanr(mfd, mot)[0]))
    print("%d passed, %d failed" % (npass, nfail))
    sys.exit(1 if nfail else 0)


if __name__ == "__main__":
    main()
