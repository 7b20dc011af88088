"""parcellate_confounds.py BGFM TMPDIR: confound regression and scrubbing of the
parcellate stage against an independent numpy reading of docs/parcellate.md
("Confounds"): nilearn's order (detrend, filter, confounds, standardize), the confounds
detrended and filtered as the series are, then removed by least squares (np.linalg.lstsq
residuals, not the stage's Gram-Schmidt), scrubbed volumes censored by spike regressors
without a filter and, with one, by scipy's natural cubic spline through the other volumes
before anything else (Power et al. 2014; nilearn's sample_mask). Also the
file naming (fMRIPrep's current and older names, derived-image entities dropped), the
errors (exit 3, the file named) and on_error: skip. Prints TAP lines."""
import json
import os
import subprocess
import sys

import h5py
import numpy as np
from scipy import interpolate, signal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import Tap  # noqa: E402
from parcellate_lib import (load_data, make_subject, resample_labels, roi_means,  # noqa
                            write_pipeline, write_tsv)

BGFM, TMP = sys.argv[1], sys.argv[2]
AAL = "/usr/share/mricron/templates/aal.nii.gz"
tap = Tap()




rng = np.random.default_rng(7)
aff = np.array([[-6., 0, 0, 90], [0, 6, 0, -126], [0, 0, 6, -72], [0, 0, 0, 1]])
shape, T, TR = (26, 30, 26), 80, 2.0
bids = os.path.join(TMP, "bids")
# sub-01: raw-style name; sub-02: an fMRIPrep derived name (space/res/desc entities
# dropped for its confounds file); sub-03: the older _desc-confounds_regressors.tsv
names = {"01": ("sub-01_task-rest_bold.nii.gz", "sub-01_task-rest_desc-confounds_timeseries.tsv"),
         "02": ("sub-02_task-rest_run-1_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.nii.gz",
                "sub-02_task-rest_run-1_desc-confounds_timeseries.tsv"),
         "03": ("sub-03_task-rest_bold.nii.gz", "sub-03_task-rest_desc-confounds_regressors.tsv")}
MOT = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
conf = {}
for s, (img, tsv) in names.items():
    d = f"{bids}/sub-{s}/func"
    make_subject(f"{d}/{img}", rng, shape, aff, T, TR, "float32")
    P = np.cumsum(rng.normal(0, 0.05, (T, 6)), axis=0)
    P[:, 3:] /= 50.0
    for i in rng.choice(T - 1, 4, replace=False):  # a few jumps (spikes in FD)
        P[i] += rng.normal(0, 0.6, 6) * [1, 1, 1, .02, .02, .02]
    cols, vals = [], []
    dP = np.vstack([np.full((1, 6), np.nan), np.diff(P, axis=0)])
    for k, m in enumerate(MOT):
        cols += [m, m + "_derivative1", m + "_power2", m + "_derivative1_power2"]
        vals += [P[:, k], dP[:, k], P[:, k] ** 2, dP[:, k] ** 2]
    fd = np.abs(dP[:, :3]).sum(1) + 50 * np.abs(dP[:, 3:]).sum(1)
    csf = rng.normal(0, 1, T)
    cols += ["framewise_displacement", "global_signal", "csf", "dup"]  # dup: in csf's and trans_x's span
    vals += [fd, rng.normal(0, 1, T), csf, 2 * csf - P[:, 0]]
    V = np.column_stack(vals)
    with open(f"{d}/{tsv}", "w") as f:
        f.write("\t".join(cols) + "\n")
        for r in range(T):
            f.write("\t".join("n/a" if np.isnan(v) else "%.9g" % v for v in V[r]) + "\n")
    conf[s] = (cols, np.nan_to_num(np.array([[float("%.9g" % v) for v in row] for row in V])))
write_tsv(f"{bids}/participants.tsv",
          [{"participant_id": "sub-01", "diagnosis": "a"}, {"participant_id": "sub-02", "diagnosis": "b"},
           {"participant_id": "sub-03", "diagnosis": "a"}], ["participant_id", "diagnosis"])

import nibabel as nib  # noqa: E402
at = nib.load(AAL)
rl = np.unique(np.rint(np.asarray(at.dataobj)).astype(np.int64))
rl = rl[rl > 0]
ref_ts = {}
for s, (img, _) in names.items():
    d, im = load_data(f"{bids}/sub-{s}/func/{img}")
    lab, tie = resample_labels(at, d.shape, im.affine)
    ref_ts[s] = roi_means(d, lab, rl)


def expand(spec):
    out = []
    for w in spec:
        sfx = {"motion6": [""], "motion12": ["", "_derivative1"],
               "motion24": ["", "_derivative1", "_power2", "_derivative1_power2"]}.get(w)
        for c in ([w] if sfx is None else [m + x for x in sfx for m in MOT]):
            if c not in out:
                out.append(c)
    return out


def reference(s, spec, scrub, detrend, hp, lp, std):
    ts, cov, flg = ref_ts[s]
    cols, V = conf[s]
    X = [V[:, cols.index(c)] for c in expand(spec)]
    cens = V[:, cols.index("framewise_displacement")] > scrub if scrub > 0 else np.zeros(T, bool)
    filtered = hp > 0 or lp > 0
    if cens.any() and filtered:
        # censored by interpolation before filtering (Power et al. 2014; nilearn's
        # sample_mask): scipy's natural cubic spline through the kept volumes, the
        # nearest kept value beyond the first and the last
        keep = np.nonzero(~cens)[0]
        def interp(y):
            y = np.array(y, dtype=np.float64)
            cs = interpolate.CubicSpline(keep, y[keep], bc_type="natural", axis=0)
            t = np.nonzero(cens)[0]
            inside = (t > keep[0]) & (t < keep[-1])
            y[t[inside]] = cs(t[inside])
            y[t[t < keep[0]]] = y[keep[0]]
            y[t[t > keep[-1]]] = y[keep[-1]]
            return y
        ts = interp(ts)
        X = [interp(c) for c in X]
    elif cens.any():
        for i in np.nonzero(cens)[0]:
            e = np.zeros(T)
            e[i] = 1.0
            X.append(e)
    X = np.column_stack(X) if X else np.zeros((T, 0))

    def prep(y, confound):
        y = signal.detrend(y, axis=0, type="linear") if detrend else (y - y.mean(0) if confound else y)
        if hp > 0 or lp > 0:
            sos = (signal.butter(5, [hp, lp], "bandpass", fs=1 / TR, output="sos") if hp > 0 and lp > 0
                   else signal.butter(5, hp, "highpass", fs=1 / TR, output="sos") if hp > 0
                   else signal.butter(5, lp, "lowpass", fs=1 / TR, output="sos"))
            y = signal.sosfiltfilt(sos, y, axis=0)
        return y
    raw_mean = ts.mean(0)
    y = prep(ts, False)
    if X.shape[1]:
        Xc = prep(X, True)
        beta = np.linalg.lstsq(Xc, y, rcond=None)[0]
        y = y - Xc @ beta
    if std == "zscore":
        sd = y.std(0)
        sd[sd < np.finfo(float).eps] = 1
        y = (y - y.mean(0)) / sd
    elif std == "psc":
        y = 100 * (y - y.mean(0)) / np.where(np.abs(raw_mean) < 1e-300, 1, np.abs(raw_mean))
    y[:, flg.astype(bool)] = 0
    return y, int(cens.sum())


def run(tag, w, on_error="fail"):
    wd = f"{TMP}/w_{tag}"
    write_pipeline(f"{TMP}/p_{tag}.yaml", wd, bids, [("aal", AAL)], w, on_error=on_error)
    r = subprocess.run([BGFM, "run", f"{TMP}/p_{tag}.yaml", "--quiet"], capture_output=True, text=True)
    return r, wd


cases = {
    "motion24 + global_signal, scrub 0.4, detrend, band-pass, zscore":
        ({"detrend": "true", "high_pass": 0.01, "low_pass": 0.1, "standardize": "zscore",
          "confounds": "[motion24, global_signal]", "scrub": 0.4}, ["motion24", "global_signal"], 0.4),
    "motion6 + csf + a dependent column, no detrend, no filter, psc":
        ({"detrend": "false", "standardize": "psc", "confounds": "[motion6, csf, trans_x, dup]"},
         ["motion6", "csf", "trans_x", "dup"], 0.0),
    "scrub 0.3 alone, detrend, high-pass":
        ({"detrend": "true", "high_pass": 0.01, "scrub": 0.3}, [], 0.3),
    "motion6, scrub 0.4, detrend, no filter, zscore (spike regressors)":
        ({"detrend": "true", "standardize": "zscore", "confounds": "[motion6]", "scrub": 0.4},
         ["motion6"], 0.4),
}
for tag, (name, (w, spec, scrub)) in enumerate(cases.items()):
    r, wd = run(f"c{tag}", w)
    if r.returncode != 0:
        tap(False, f"{name}: bgfm run exited {r.returncode}: {r.stderr.strip()[-400:]}")
        continue
    f = h5py.File(f"{wd}/parcellate/timeseries.h5", "r")
    g = f["atlases/aal"]
    off = g["offsets"][:]
    worst, nspk, good = 0.0, [], True
    for si, s in enumerate(["01", "02", "03"]):
        ref, ns = reference(s, spec, scrub, w.get("detrend") == "true", float(w.get("high_pass", 0)),
                            float(w.get("low_pass", 0)), w.get("standardize", "none"))
        mine = g["timeseries"][off[si]:off[si + 1]].astype(np.float64)
        rel = np.abs(mine - ref).max() / max(np.abs(ref).max(), 1e-30)
        worst = max(worst, rel)
        good &= rel < 2e-5
        nspk.append(ns)
    good &= f.attrs["confounds"].decode() == ",".join(spec) and abs(f.attrs["scrub"] - scrub) < 1e-12
    for si, s in enumerate(["01", "02", "03"]):  # the per-subject summary: scrubbed count, mean FD
        cols, V = conf[s]
        fdv = V[1:, cols.index("framewise_displacement")]  # row 0 is n/a
        good &= int(f["subjects/n_scrubbed"][si]) == nspk[si] and abs(f["subjects/mean_fd"][si] - fdv.mean()) < 1e-9
    tap(bool(good), f"{name}: 3 subjects (three confounds file names) match numpy lstsq "
        f"(worst rel err {worst:.1e}; spikes {nspk}, = /subjects/n_scrubbed; mean FD)")

# 2 ranks write the same file as 1 (every dataset and attribute)
w0 = cases[list(cases)[0]][0]
write_pipeline(f"{TMP}/p_np2.yaml", f"{TMP}/w_np2", bids, [("aal", AAL)], w0)
r = subprocess.run(["mpirun", "--oversubscribe", "-np", "2", BGFM, "run", f"{TMP}/p_np2.yaml", "--quiet"],
                   capture_output=True, text=True)
same = r.returncode == 0
if same:
    A = h5py.File(f"{TMP}/w_c0/parcellate/timeseries.h5", "r")
    B = h5py.File(f"{TMP}/w_np2/parcellate/timeseries.h5", "r")
    objs = []
    A.visit(objs.append)
    for n in objs:
        if isinstance(A[n], h5py.Dataset):
            same &= n in B and np.array_equal(A[n][()], B[n][()], equal_nan=A[n].dtype.kind == "f")
    same &= dict(A.attrs).keys() == dict(B.attrs).keys()
tap(bool(same), "2 ranks: the same datasets (series, n_scrubbed, mean_fd) as 1 rank"
    + ("" if r.returncode == 0 else " -- " + r.stderr[-300:]))

# the fingerprint names the censoring where it changed (scrub with a filter), so a folder
# made by an earlier version runs again there and nowhere else

revs = [("revision: scrub censors by interpolation" in json.load(open(f"{TMP}/w_c{i}/parcellate/manifest.json"))["resolved"])
        for i in range(len(cases))]
tap(revs == [True, False, True, False], f"the fingerprint's revision line exactly where scrub meets a filter: {revs}")

# the regression does something: without it the series differ, and with motion24 + spikes
# the cleaned series are orthogonal to every (prepared) regressor
r0, wd0 = run("none", {"detrend": "true", "high_pass": 0.01, "low_pass": 0.1, "standardize": "zscore"})
if r0.returncode == 0:
    a = h5py.File(f"{wd0}/parcellate/timeseries.h5", "r")["atlases/aal/timeseries"][:]
    b = h5py.File(f"{TMP}/w_c0/parcellate/timeseries.h5", "r")["atlases/aal/timeseries"][:]
    tap(np.abs(a - b).max() > 0.05, f"without confounds the series differ (max |diff| {np.abs(a - b).max():.2f})")
    h0 = h5py.File(f"{wd0}/parcellate/timeseries.h5", "r")
    fd0 = [conf[s][1][1:, conf[s][0].index("framewise_displacement")].mean() for s in ["01", "02", "03"]]
    tap(h0.attrs["confounds"] == b"" and (h0["subjects/n_scrubbed"][()] == 0).all()
        and np.allclose(h0["subjects/mean_fd"][()], fd0, rtol=0, atol=1e-9),
        "nothing regressed: the attribute is empty, the files read for head motion alone "
        "(mean FD = numpy's, none scrubbed)")
else:
    tap(False, "run without confounds: " + r0.stderr[-300:])


def expect_fail(tag, w, want, why, on_error="fail"):
    r, wd = run(tag, w, on_error)
    msg = r.stderr.strip()
    ok = r.returncode == 3 and all(x in msg for x in want)
    ok &= not os.path.exists(f"{wd}/parcellate/timeseries.h5")
    tap(ok, f"{why}: exit {r.returncode}, the message names {want[0].split('/')[-1]}"
        + ("" if ok else f" -- got: {msg[-400:]}"))


expect_fail("nocol", {"confounds": "[motion6, white_matter]"},
            ["sub-01_task-rest_desc-confounds_timeseries.tsv", "white_matter", "its columns are"],
            "a column the file lacks")
# sub-03 loses its confounds file
os.rename(f"{bids}/sub-03/func/{names['03'][1]}", f"{TMP}/keep.tsv")
expect_fail("nofile", {"confounds": "[motion6]"},
            ["sub-03_task-rest_bold.nii.gz", "sub-03_task-rest_desc-confounds_timeseries.tsv",
             "sub-03_task-rest_desc-confounds_regressors.tsv"], "an image without a confounds file")
r, wd = run("skip", {"confounds": "[motion6]"}, on_error="skip")
ok = r.returncode == 9  # finished with subjects skipped (docs/errors.md)
if ok:
    f = h5py.File(f"{wd}/parcellate/timeseries.h5", "r")
    sk = [x.decode() for x in f["skipped/image"][:]]
    ok = f.attrs["n_subjects"] == 2 and len(sk) == 1 and "sub-03" in sk[0]
else:
    print("# " + r.stderr[-400:])
tap(ok, "on_error: skip leaves the image without a confounds file out, records it, exit 9")
os.rename(f"{TMP}/keep.tsv", f"{bids}/sub-03/func/{names['03'][1]}")
# a short file, a bad cell, scrubbing too much, too many regressors
p1 = f"{bids}/sub-01/func/{names['01'][1]}"
orig = open(p1).read()
open(p1, "w").write("".join(orig.splitlines(True)[:-1]))
expect_fail("short", {"confounds": "[motion6]"}, [names["01"][1], "79 rows", "80 volumes"],
            "a file one row short")
lines = orig.splitlines(True)
lines[5] = "abc\t" + lines[5].split("\t", 1)[1]
open(p1, "w").write("".join(lines))
expect_fail("cell", {"confounds": "[motion6]"}, [names["01"][1] + ":6", "'abc' is not a number"],
            "a cell that is not a number (FILE:LINE)")
open(p1, "w").write(orig)
expect_fail("scrub", {"scrub": 0.0001, "max_scrubbed": 0.2}, ["sub-01_task-rest_bold.nii.gz", "max_scrubbed"],
            "more volumes above scrub than max_scrubbed allows")
# a file without framewise_displacement: drop the column from sub-02's file
p2 = f"{bids}/sub-02/func/{names['02'][1]}"
o2 = open(p2).read()
rows = [ln.rstrip("\n").split("\t") for ln in o2.splitlines()]
j = rows[0].index("framewise_displacement")
open(p2, "w").write("".join("\t".join(r[:j] + r[j + 1:]) + "\n" for r in rows))
expect_fail("nofd", {"scrub": 0.5}, [names["02"][1], "framewise_displacement", "scrub needs it"],
            "scrub on a file without framewise_displacement")
open(p2, "w").write(o2)
# a changed confounds file makes the stage run again (its hash is an input)
r1, wd1 = run("rerun", {"confounds": "[motion6]"})
before = open(f"{wd1}/parcellate/timeseries.h5", "rb").read() if r1.returncode == 0 else b""
r2, _ = run("rerun", {"confounds": "[motion6]"})
same = open(f"{wd1}/parcellate/timeseries.h5", "rb").read() == before
lines = orig.splitlines(True)
cells = lines[10].split("\t")
cells[0] = "%.9g" % (float(cells[0]) + 1.0)
lines[10] = "\t".join(cells)
open(p1, "w").write("".join(lines))
r3, _ = run("rerun", {"confounds": "[motion6]"})
after = open(f"{wd1}/parcellate/timeseries.h5", "rb").read() if r3.returncode == 0 else b""
open(p1, "w").write(orig)
tap(r1.returncode == 0 and r2.returncode == 0 and same and r3.returncode == 0 and after != before,
    "an unchanged confounds file keeps the output; a changed one makes the stage run again")
print(f"# {tap.failed} failed")
tap.exit()
