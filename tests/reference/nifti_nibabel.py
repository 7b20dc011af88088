#!/usr/bin/env python3
"""nifti_nibabel.py: independent checks of bgfm's NIfTI reader/writer with nibabel.
Not a test of nibabel. Modes:
  compare IMAGE DUMP      DUMP.json/.f32 written by `test_nifti --dump IMAGE DUMP`
  variants SRC OUTDIR     write byte-swapped / NIfTI-2 / uint16-scaled copies of SRC
  written IMAGE DTYPE     check a `test_nifti --write-pattern` file against the pattern
Exit 0 when everything matches, 1 otherwise (messages on stdout)."""
import json
import sys

import nibabel as nib
import numpy as np


def compare(image, dump):
    img = nib.load(image)
    hdr = img.header
    meta = json.load(open(dump + ".json"))
    ok = True
    shape = img.shape
    ndim = len(shape)
    if meta["ndim"] != ndim or tuple(meta["dim"][1:ndim + 1]) != tuple(shape):
        print(f"dims differ: bgfm {meta['dim']} nibabel {shape}")
        ok = False
    pix = np.asarray(hdr["pixdim"], dtype=np.float64)
    if not np.allclose(meta["pixdim"][:ndim + 1], pix[:ndim + 1], rtol=1e-6, atol=0):
        print(f"pixdim differ: {meta['pixdim']} vs {pix}")
        ok = False
    aff = np.asarray(meta["affine"])
    if not np.allclose(aff, img.affine, rtol=0, atol=1e-6):
        print(f"affine differs:\n{aff}\nnibabel:\n{img.affine}")
        ok = False
    if ndim >= 4:
        tunit = hdr.get_xyzt_units()[1]
        scale = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6, "unknown": 1.0}[tunit]
        tr = float(hdr.get_zooms()[3]) * scale
        if abs(meta["tr"] - tr) > 1e-6 * max(1.0, tr):
            print(f"TR differs: {meta['tr']} vs {tr}")
            ok = False
    data = np.asarray(img.dataobj, dtype=np.float64)  # scaled like get_fdata
    nvox = int(np.prod(shape[:3])) if ndim >= 3 else int(np.prod(shape))
    ref = data.reshape(nvox, -1, order="F")
    got = np.fromfile(dump + ".f32", dtype=np.float32).astype(np.float64)
    if got.size != ref.size:
        print(f"voxel count differs: {got.size} vs {ref.size}")
        return False
    got = got.reshape(-1, nvox).T  # (nvox, nvol): volumes are written one after another
    err = np.abs(got - ref) / np.maximum(1.0, np.abs(ref))
    if err.max() > 1e-6:
        i = np.unravel_index(np.argmax(err), err.shape)
        print(f"voxel data differ: max rel err {err.max():.3g} at {i}: {got[i]} vs {ref[i]}")
        ok = False
    print(f"{image}: shape {shape}, {ref.size} voxels compared, max rel err {err.max():.2g}")
    return ok


def variants(src, outdir):
    img = nib.load(src)
    data = np.asanyarray(img.dataobj)
    # big-endian NIfTI-1, same dtype
    be = nib.Nifti1Image(data, img.affine, img.header.as_byteswapped(">"))
    nib.save(be, f"{outdir}/swapped.nii.gz")
    # NIfTI-2, float64, qform only (sform_code 0), stored uncompressed
    n2 = nib.Nifti2Image(data.astype(np.float64), img.affine)
    n2.header.set_sform(None, code=0)
    n2.header.set_qform(img.affine, code=1)
    n2.header.set_xyzt_units("mm", "msec")
    z = list(img.header.get_zooms())
    if len(z) >= 4:
        z[3] = z[3] * 1000.0
    n2.header.set_zooms(z)
    nib.save(n2, f"{outdir}/nifti2.nii")
    # uint16 with slope/intercept, big-endian NIfTI-2 gz
    u = nib.Nifti2Image((data.astype(np.float64) - data.min()).astype(">u2"), img.affine,
                        nib.Nifti2Header(endianness=">"))
    u.header.set_slope_inter(0.5, -7.0)
    nib.save(u, f"{outdir}/scaled_u16.nii.gz")


def pattern(dtype):
    i = np.arange(210)
    vols = []
    for t in range(4):
        if dtype == 2:
            vols.append(((i * 3 + t) % 256).astype(np.float64))
        else:
            vols.append(((i * 37 + t * 11) % 1000) * 0.25 - 100.0)
    return np.stack(vols, axis=1)  # (nvox, nvol)


def written(image, dtype):
    img = nib.load(image)
    ok = True
    if img.shape != (7, 6, 5, 4):
        print(f"shape {img.shape}")
        ok = False
    c, s = np.cos(0.3), np.sin(0.3)
    want = np.array([[-2 * c, -3 * s, 0, 10], [-2 * s, 3 * c, 0, -20], [0, 0, 4, 30],
                     [0, 0, 0, 1]])
    if not np.allclose(img.affine, want, atol=1e-5):
        print(f"affine\n{img.affine}\nwant\n{want}")
        ok = False
    # qform must describe the same affine (rotation + zoom)
    q = img.header.get_qform()
    if not np.allclose(q, want, atol=1e-5):
        print(f"qform\n{q}\nwant\n{want}")
        ok = False
    zooms = img.header.get_zooms()
    if not np.allclose(zooms, (2, 3, 4, 1.25), atol=1e-6):
        print(f"zooms {zooms}")
        ok = False
    if img.header.get_xyzt_units() != ("mm", "sec"):
        print(f"units {img.header.get_xyzt_units()}")
        ok = False
    want_dt = {16: np.float32, 4: np.int16, 2: np.uint8}[dtype]
    if img.get_data_dtype() != want_dt:
        print(f"dtype {img.get_data_dtype()}")
        ok = False
    data = img.get_fdata().reshape(210, 4, order="F")
    ref = pattern(dtype)
    if not np.allclose(data, ref, atol=1e-5, rtol=0):
        print(f"data differ: max abs err {np.abs(data - ref).max()}")
        ok = False
    print(f"{image}: nibabel reads shape {img.shape} dtype {img.get_data_dtype()}")
    return ok


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "compare":
        sys.exit(0 if compare(sys.argv[2], sys.argv[3]) else 1)
    if mode == "variants":
        variants(sys.argv[2], sys.argv[3])
        sys.exit(0)
    if mode == "written":
        sys.exit(0 if written(sys.argv[2], int(sys.argv[3])) else 1)
    sys.exit(2)
