"""parcellate_numpy.py MODE IMAGE ATLAS...: the Python workflows bgfm's parcellation is
compared with (bench/parcellate.sh). Not a test.
  once:      load the 4D image once with nibabel, resample every atlas onto its grid
             (numpy, nearest neighbour through the affines), ROI means for all atlases.
  per-atlas: what a nilearn user's loop does per atlas (nilearn is not installed here, so
             its steps are spelled out): load the image (float64, as nilearn's
             get_data), resample the atlas with scipy.ndimage.affine_transform order=0
             (resample_to_img 'nearest'), then scipy.ndimage.mean per volume."""
import sys
import time

import nibabel as nib
import numpy as np
from scipy import ndimage


def nn_labels(atlas, shape, affine):
    lab = np.asarray(atlas.dataobj).astype(np.int32)
    i, j, k = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    ijk = np.stack([i.ravel(), j.ravel(), k.ravel(), np.ones(i.size)])
    a = np.rint(np.linalg.inv(atlas.affine) @ affine @ ijk)[:3].astype(np.int64)
    ok = np.all((a >= 0) & (a < np.array(lab.shape)[:, None]), axis=0)
    out = np.zeros(i.size, np.int32)
    out[ok] = lab[a[0, ok], a[1, ok], a[2, ok]]
    return out


def once(image, atlases):
    img = nib.load(image)
    data = np.asanyarray(img.dataobj, dtype=np.float32)
    T = data.shape[3]
    flat = data.reshape(-1, T, order="F")
    const = np.all(flat == flat[:, :1], axis=1)
    out = []
    for p in atlases:
        lab = nn_labels(nib.load(p), data.shape[:3], img.affine)
        lab = lab.reshape(data.shape[:3]).ravel(order="F")
        lab[const] = 0
        regions = np.unique(lab[lab > 0])
        ts = np.zeros((T, len(regions)))
        for n, r in enumerate(regions):
            ts[:, n] = flat[lab == r].mean(axis=0)
        out.append(ts)
    return out


def per_atlas(image, atlases):
    out = []
    for p in atlases:
        img = nib.load(image)
        data = img.get_fdata()  # float64, like nilearn
        atlas = nib.load(p)
        m = np.linalg.inv(atlas.affine) @ img.affine
        lab = ndimage.affine_transform(np.asarray(atlas.dataobj), m[:3, :3], m[:3, 3],
                                       output_shape=data.shape[:3], order=0)
        regions = np.unique(lab[lab > 0])
        ts = np.zeros((data.shape[3], len(regions)))
        for t in range(data.shape[3]):
            ts[t] = ndimage.mean(data[..., t], labels=lab, index=regions)
        out.append(ts)
    return out


if __name__ == "__main__":
    t0 = time.time()
    res = {"once": once, "per-atlas": per_atlas}[sys.argv[1]](sys.argv[2], sys.argv[3:])
    print(f"{sys.argv[1]}: {sum(r.shape[1] for r in res)} regions in {time.time() - t0:.2f} s")
