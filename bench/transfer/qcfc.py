#!/usr/bin/python3
"""qcfc.py TIMESERIES.h5 ATLAS.nii.gz [--fd DATASET_DIR] [--atlas-name NAME]
[--only COLUMN=VALUE]: how much of
a population's functional connectivity follows head motion (QC-FC; Power et al. 2012,
Ciric et al. 2017, Parkes et al. 2018), read from a parcellate stage's timeseries.h5 with
numpy alone.

For every scan: the FC of the atlas's regions (Pearson of the cleaned series; flagged
regions left out). For every edge: the correlation across scans of its FC with the scan's
mean framewise displacement (timeseries.h5 /subjects/mean_fd, else the mean of the
framewise_displacement column of each scan's confounds file under --fd). Prints the
median |QC-FC|, the share of edges with p < 0.05 (uncorrected), the mean QC-FC, and the
correlation of QC-FC with the distance between the regions' centres (negative: motion
raises short-range coupling more than long-range, the signature of real motion
artifact). Reported, not asserted.

--only COLUMN=VALUE: the scans of the participants whose participants.tsv (in the
--fd folder) has that value only, e.g. diagnosis=control: where the people who move
more also differ in their brains (patients moving more), QC-FC over everyone mixes the
two; within one group it is motion's alone.
"""
import argparse, csv, glob, os, sys
import h5py
import nibabel as nib
import numpy as np
from scipy.stats import pearsonr, t as tdist


def mean_fd_from_files(d, ids):
    out = []
    for sid in ids:
        f = glob.glob(os.path.join(d, sid, "func", "*_desc-confounds_timeseries.tsv"))
        rows = list(csv.DictReader(open(f[0]), delimiter="\t"))
        v = [float(r["framewise_displacement"]) for r in rows if r["framewise_displacement"] != "n/a"]
        out.append(np.mean(v))
    return np.array(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ts")
    ap.add_argument("atlas")
    ap.add_argument("--fd", help="dataset folder with confounds files")
    ap.add_argument("--atlas-name")
    ap.add_argument("--only", help="COLUMN=VALUE of participants.tsv under --fd")
    a = ap.parse_args()
    f = h5py.File(a.ts, "r")
    name = a.atlas_name or sorted(f["atlases"].keys())[0]
    g = f["atlases"][name]
    off, ts, labels = g["offsets"][()], g["timeseries"], g["region_labels"][()]
    flag = g["flagged"][()] if "flagged" in g else np.zeros((len(off) - 1, len(labels)), bool)
    ids = [x.decode() for x in f["subjects/participant_id"][()]]
    if "subjects/mean_fd" in f:
        fd = f["subjects/mean_fd"][()]
    else:
        fd = mean_fd_from_files(a.fd, ids)
    sel = np.ones(len(ids), bool)
    if a.only:
        col, val = a.only.split("=", 1)
        rows = list(csv.DictReader(open(os.path.join(a.fd, "participants.tsv")), delimiter="\t"))
        by = {r["participant_id"]: r[col] for r in rows}
        sel = np.array([by.get(i if i.startswith("sub-") else "sub-" + i) == val for i in ids])
    keep = ~flag[sel].any(axis=0)
    N = int(keep.sum())
    iu = np.triu_indices(N, 1)
    fc = np.array([np.corrcoef(ts[off[s]:off[s + 1]][:, keep].T)[iu] for s in np.flatnonzero(sel)])
    fd, ids = fd[sel], [i for i, k in zip(ids, sel) if k]
    # QC-FC: Pearson across scans of each edge with mean FD
    x = (fd - fd.mean()) / fd.std()
    z = (fc - fc.mean(axis=0)) / (fc.std(axis=0) + 1e-12)
    q = (z * x[:, None]).mean(axis=0)
    n = len(ids)
    tt = q * np.sqrt((n - 2) / np.maximum(1e-12, 1 - q * q))
    p = 2 * tdist.sf(np.abs(tt), n - 2)
    # region centres (mm) from the atlas
    img = nib.load(a.atlas)
    lab = np.asarray(img.dataobj)
    ctr = []
    for L in labels[keep]:
        ijk = np.argwhere(lab == L).mean(axis=0)
        ctr.append(img.affine[:3, :3] @ ijk + img.affine[:3, 3])
    ctr = np.array(ctr)
    dist = np.linalg.norm(ctr[iu[0]] - ctr[iu[1]], axis=1)
    rd = pearsonr(q, dist)[0]
    print("scans %d, regions %d, edges %d, mean FD median %.3f (%.3f-%.3f)" % (
        n, N, len(q), np.median(fd), fd.min(), fd.max()))
    print("QC-FC: median |r| %.3f, edges p<0.05 %.1f %%, mean r %+.3f, r with distance %+.3f" % (
        np.median(np.abs(q)), 100 * (p < 0.05).mean(), q.mean(), rd))


if __name__ == "__main__":
    main()
