"""nifti_patch.py CASE IMAGE: rewrite IMAGE (a 4-D tiny_bids series) into a broken or
special variant for tests/faults/nifti_faults.sh, written with nibabel and struct, never
with bgfm. Cases: dim0=3, dim1=-8, pixdim1=-4, datatype=99 (patched NIfTI-1 header,
uncompressed bytes written under the same .nii.gz name: bgfm detects gzip by magic),
v2-overflow (NIfTI-2 whose dims multiply past 2^63), nan-region (region 1 all NaN),
const-region (region 1 constant in time), far-atlas (the atlas moved 5 m away),
huge-dims / huge-atlas (the image / the atlas: a .nii.gz of a few kB whose header says
32767 x 32767 x 32767 voxels x 32767 volumes)."""
import gzip, struct, sys
import numpy as np
import nibabel as nib

case, path = sys.argv[1], sys.argv[2]
img = nib.load(path)
data = np.asarray(img.dataobj).astype(np.float32)
lab = np.asarray(nib.load("d/atlas.nii.gz").dataobj)


def raw_nifti1():
    out = nib.Nifti1Image(data, img.affine)
    out.header.set_data_dtype(np.float32)
    out.header["vox_offset"] = 352
    return bytearray(out.header.binaryblock + b"\0" * 4 + data.tobytes(order="F"))


if case.startswith(("dim", "pixdim", "datatype")):
    b = raw_nifti1()
    key, val = case.split("=")
    if key == "dim0":
        struct.pack_into("<h", b, 40, int(val))
    elif key == "dim1":
        struct.pack_into("<h", b, 42, int(val))
    elif key == "pixdim1":
        struct.pack_into("<f", b, 80, float(val))
    elif key == "datatype":
        struct.pack_into("<h", b, 70, int(val))
    open(path, "wb").write(bytes(b))
elif case == "v2-overflow":
    out = nib.Nifti2Image(data, img.affine)
    out.header.set_data_dtype(np.float32)
    out.header["vox_offset"] = 544
    b = bytearray(out.header.binaryblock + b"\0" * 4 + data.tobytes(order="F"))
    struct.pack_into("<8q", b, 16, 4, 1 << 20, 1 << 20, 1 << 20, 1 << 20, 1, 1, 1)
    open(path, "wb").write(bytes(b))
elif case in ("huge-dims", "huge-atlas"):
    h = bytearray(348)
    struct.pack_into("<i", h, 0, 348)
    struct.pack_into("<8h", h, 40, 4, 32767, 32767, 32767, 32767, 1, 1, 1)
    struct.pack_into("<hh", h, 70, 16, 32)
    struct.pack_into("<8f", h, 76, 1, 2, 2, 2, 2, 1, 1, 1)
    struct.pack_into("<f", h, 108, 352)
    h[344:348] = b"n+1\0"
    blob = gzip.compress(bytes(h) + b"\0" * 4 + np.zeros(15000, np.float32).tobytes())
    open(path if case == "huge-dims" else "d/atlas.nii.gz", "wb").write(blob)
elif case in ("nan-region", "const-region"):
    m = lab == 1
    if case == "nan-region":
        data[m, :] = np.nan
    else:
        data[m, :] = 100.0
    nib.save(nib.Nifti1Image(data, img.affine, img.header), path)
elif case == "far-atlas":
    a = nib.load("d/atlas.nii.gz")
    A = a.affine.copy()
    A[0, 3] += 5000
    nib.save(nib.Nifti1Image(np.asarray(a.dataobj), A), "d/atlas.nii.gz")
else:
    sys.exit("unknown case " + case)
