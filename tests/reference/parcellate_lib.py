"""parcellate_lib.py: independent numpy/scipy/nibabel reference for the parcellate stage
(dataset making, nearest-neighbour atlas resampling, ROI means, cleaning) used by the
tests/reference/parcellate_*.py checks. Not bgfm code: written from the spec in
docs/parcellate.md, never from the C sources."""
import os

import nibabel as nib
import numpy as np
from scipy import signal


def round_half_away(x):
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def resample_labels(atlas_img, shape, affine, tie_tol=1e-6):
    """Atlas labels on the data grid (shape[:3], affine); returns (labels, tie_mask)
    where tie_mask marks voxels whose atlas coordinate lies within tie_tol of .5."""
    lab = np.asanyarray(atlas_img.dataobj)
    lab = np.rint(np.asarray(lab, dtype=np.float64)).astype(np.int64)
    nx, ny, nz = shape[:3]
    i, j, k = np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij")
    ijk1 = np.stack([i, j, k, np.ones_like(i)], axis=-1).reshape(-1, 4).T.astype(np.float64)
    world = affine @ ijk1
    a = np.linalg.inv(atlas_img.affine) @ world
    frac = np.abs(np.abs(a[:3]) - np.floor(np.abs(a[:3])) - 0.5)
    tie = (frac < tie_tol).any(axis=0)
    r = round_half_away(a[:3]).astype(np.int64)
    ok = np.ones(r.shape[1], bool)
    for d in range(3):
        ok &= (r[d] >= 0) & (r[d] < lab.shape[d])
    out = np.zeros(r.shape[1], np.int64)
    out[ok] = lab[r[0, ok], r[1, ok], r[2, ok]]
    return out.reshape(nx, ny, nz), tie.reshape(nx, ny, nz)


def roi_means(data, labels_on_grid, region_labels, min_coverage=0.5):
    """data: (x,y,z,T) float64. Returns (ts (T,N), coverage (N,), flagged (N,))."""
    T = data.shape[3]
    flat = data.reshape(-1, T)
    const = np.all(flat == flat[:, :1], axis=1)
    lab = labels_on_grid.reshape(-1)
    N = len(region_labels)
    ts = np.zeros((T, N))
    cov = np.zeros(N)
    flg = np.zeros(N, np.uint8)
    for n, v in enumerate(region_labels):
        inreg = lab == v
        nv = inreg.sum()
        m = inreg & ~const
        nm = m.sum()
        cov[n] = nm / nv if nv else 0.0
        if nm == 0 or cov[n] < min_coverage:
            flg[n] = 1
            continue
        ts[:, n] = flat[m].mean(axis=0)
    return ts, cov, flg


def clean(ts, flagged, tr, detrend=False, high_pass=0.0, low_pass=0.0, order=5,
          standardize="none"):
    """detrend (scipy linear), Butterworth sos + sosfiltfilt, then zscore/psc."""
    x = ts.copy()
    raw_mean = x.mean(axis=0)
    if detrend:
        x = signal.detrend(x, axis=0, type="linear")
    fs = 1.0 / tr
    if high_pass > 0 and low_pass > 0:
        sos = signal.butter(order, [high_pass, low_pass], "bandpass", fs=fs, output="sos")
        x = signal.sosfiltfilt(sos, x, axis=0)
    elif high_pass > 0:
        sos = signal.butter(order, high_pass, "highpass", fs=fs, output="sos")
        x = signal.sosfiltfilt(sos, x, axis=0)
    elif low_pass > 0:
        sos = signal.butter(order, low_pass, "lowpass", fs=fs, output="sos")
        x = signal.sosfiltfilt(sos, x, axis=0)
    if standardize == "zscore":
        sd = x.std(axis=0)
        sd[sd < np.finfo(np.float64).eps] = 1.0
        x = (x - x.mean(axis=0)) / sd
    elif standardize == "psc":
        d = np.abs(raw_mean)
        bad = d < np.finfo(np.float64).eps
        x = 100.0 * (x - x.mean(axis=0)) / np.where(bad, 1.0, d)
        x[:, bad] = 0.0
    x[:, flagged.astype(bool)] = 0.0
    return x


def smooth_noise(rng, shape, T, sigma_t=2.0):
    """Random signals correlated in time (cumulative + noise) so filters matter."""
    x = rng.standard_normal(shape + (T,))
    x = np.cumsum(x, axis=-1) * 0.3 + rng.standard_normal(shape + (T,))
    return x


def make_subject(path, rng, shape, affine, T, tr, kind="float32", brain_frac=0.7, base=100.0):
    """4D image: signal inside an ellipsoid 'brain', exact zeros outside (constant)."""
    nx, ny, nz = shape
    i, j, k = np.meshgrid(np.linspace(-1, 1, nx), np.linspace(-1, 1, ny),
                          np.linspace(-1, 1, nz), indexing="ij")
    brain = (i ** 2 + j ** 2 + k ** 2) < brain_frac
    d = np.zeros(shape + (T,))
    d[brain] = base + 5.0 * smooth_noise(rng, (int(brain.sum()),), T) + \
        np.linspace(0, 3, T)[None, :]
    if kind == "int16":
        slope, inter = 0.05, 10.0
        stored = np.rint((d - inter) / slope)
        stored[~brain] = np.rint((0.0 - inter) / slope)
        img = nib.Nifti1Image(stored.astype(np.int16), affine)
        img.header.set_slope_inter(slope, inter)
        img.header.set_data_dtype(np.int16)
        d = stored * slope + inter
    elif kind == "float64":
        img = nib.Nifti1Image(d.astype(np.float64), affine)
        img.header.set_data_dtype(np.float64)
    else:
        d = d.astype(np.float32).astype(np.float64)
        img = nib.Nifti1Image(d.astype(np.float32), affine)
    img.header.set_xyzt_units("mm", "sec")
    z = img.header.get_zooms()
    img.header.set_zooms(z[:3] + (tr,))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    nib.save(img, path)
    return d


def load_data(path):
    """Image data as our reader sees it: scaled values rounded to float32."""
    img = nib.load(path)
    return np.asarray(img.get_fdata(dtype=np.float64), dtype=np.float32).astype(np.float64), img


def write_tsv(path, rows, cols):
    with open(path, "w") as f:
        f.write("\t".join(cols) + "\n")
        for r in rows:
            f.write("\t".join(str(r.get(c, "n/a")) for c in cols) + "\n")


def write_pipeline(path, workdir, bids, atlases, with_, on_error="fail", extra=""):
    w = ", ".join(f"{k}: {v}" for k, v in with_.items())
    at = "\n".join(f"  - {{name: {n}, path: {p}}}" for n, p in atlases)
    with open(path, "w") as f:
        f.write(f"name: t\nworkdir: {workdir}\nseed: 1\non_error: {on_error}\n"
                f"inputs:\n  bids: {bids}\n  label_column: diagnosis\n{extra}"
                f"atlases:\n{at}\nstages:\n  - {{name: parcellate, uses: parcellate, "
                f"with: {{{w}}}}}\n")
