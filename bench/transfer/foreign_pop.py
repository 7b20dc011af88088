#!/usr/bin/python3
"""foreign_pop.py: a trait population written by other software than `bgfm synth`.

usage: foreign_pop.py OUT [--labelled 64] [--unlabelled 240] [--traits 4] [--seed 1]
                          [--trait-coupling 0.10] [--trait-shift 2.0] [--trait-components 4]
                          [--fingerprint 0.10]
                          [--jitter 3.0] [--sites 3] [--workers 2]

Every population of docs/results.md before section 12r came from `bgfm synth`, whose
people differ in the coupling of a few hard-partitioned networks. This generator shares
no code or design with it, so the model can be judged on people it was not built around.
Its design follows what is known of resting-state fMRI, not what the model reads:

- Space: the MNI 3 mm grid, brain mask from the Colin27 brain (mricron's ch2bet), not
  from either atlas the pipeline reads; signal weighted towards darker (grey) voxels.
- Sources: C = 17 soft, overlapping spatial components, each 1 or 2 Gaussian blobs
  (sd 6 to 10 mm), most of them mirrored across the midline,, whose time courses follow
  an AR(1) process at 0.5 s with a correlation matrix of its own per person, convolved
  with a double-gamma HRF whose delay differs per person (Handwerker et al. 2004).
- What distinguishes people (stable over their scan):
  * traits: K latent traits t ~ N(0, 1); trait k adds `--trait-coupling` x t_k x
    (u_k u_k' off the diagonal) to the components' correlations (u_k: `--trait-components`
    components, default 4, signs random) and moves the blobs of three components by `--trait-shift` mm per SD
    along a fixed direction each: individual differences in FC are largely differences
    in the spatial layout of networks (Bijsterbosch et al. 2018, eLife);
  * fingerprint: every correlation perturbed by `--fingerprint` x N(0, 1) (symmetric),
    every blob displaced by N(0, `--jitter`^2) mm per axis, each component's amplitude
    x exp(0.2 N(0, 1)), the HRF's peak shifted by N(0, 0.5^2) s;
  * age (18..75, in participants.tsv) lowers the coupling within the four meta-networks
    the base correlations are built from (less segregation with age);
- What does not: two within-scan states (the person's correlations, and the same plus
  a fresh random perturbation), switching with a mean dwell of 40 s; a global signal of
  a per-person amplitude (vigilance); respiration (0.2-0.33 Hz) and cardiac (0.9-1.3
  Hz) oscillations aliased by the TR, strongest at the brain's edge and centre; head
  motion: a per-person level (log-normal; higher with age and in patients, as in
  clinical samples) giving spikes that shift the brain's edge voxels together for two
  volumes (Power et al. 2012); thermal noise of the site's temporal SNR, smoothed by the
  site's FWHM.
- Head position (the confounds file; its own stream, the images do not change): a
  Gaussian random walk per parameter (step sd 0.02 mm x motion / 0.12; rotations in
  mm at 50 mm, i.e. / 50 rad) plus, at each spike's first volume only (the head moves
  and comes back), a displacement e = a w / |w|^2 + n for a spike of a percent: w a
  per-person direction with |w| = 2 (percent of edge signal per mm), n orthogonal to w
  of norm |a| / 2 x |N(0, 1)| (movement the artifact does not see), so w . e = a; the
  spike's second volume (spin history) shows in the parameters only through their
  derivatives. Realignment estimates add N(0, 0.01^2) mm (0.01 / 50 rad) per volume
  and parameter, and misestimate each spike's displacement by N(0, (|a| / 4)^2) mm per
  parameter (motion within a volume breaks the rigid-body model; Power et al. 2014,
  Ciric et al. 2017: 24-parameter regression leaves part of the artifact in FC).
- Sites (`--sites`): TR 2.0 / 2.5 / 1.5 / 2.0 s with 150 / 120 / 200 / 150 volumes (the
  same scan time near 5 min; `--scan-scale` multiplies the volumes), their own gain,
  tSNR (50-80), smoothing (4-6 mm); the third site scans eyes closed (a coupling shift
  between two components), as pooled studies do.
- Labels: diagnosis from a liability w . t / |w| + N(0, 1) (the traits explain half of
  it), patient when above 0; score = v . t / |v| + N(0, 1); both `n/a` for the
  unlabelled people, whose traits are in OUT/derivatives/foreign/truth.json only (for
  bench/transfer/oracle.py; a method under evaluation must not read it).

Writes OUT/participants.tsv (participant_id diagnosis site age sex score trait_1..K)
and OUT/sub-XXX/func/sub-XXX_task-rest_bold.nii.gz (int16 with a scale, TR in
pixdim[4]) with sub-XXX_task-rest_desc-confounds_timeseries.tsv beside it (fMRIPrep's
columns: trans_x..rot_z in mm and radians, their _derivative1, _power2 and
_derivative1_power2, framewise_displacement (Power et al. 2012, 50 mm), global_signal
over the brain mask; `n/a` in the first row of differences). The same seed gives the
same people whatever --workers says. Each file is written under a temporary name and
renamed when complete, the confounds before the image; a call interrupted and run again
with the same arguments keeps the images already written (and adds the confounds of an
image written without them).
"""
import argparse, json, os, sys
from multiprocessing import Pool
import numpy as np
import nibabel as nib
from scipy import ndimage
from scipy.stats import gamma

C = 17          # spatial components
DT = 0.5        # s, the latent process's step
GLOBAL = 0.1     # median amplitude (percent) of the global signal
STATE = 0.2      # sd of the second state's perturbation of the correlations
AFF = np.array([[-3.0, 0, 0, 90], [0, 3, 0, -126], [0, 0, 3, -72], [0, 0, 0, 1]])
SHAPE = (61, 73, 61)
SITES = [  # TR s, volumes, gain, tSNR, FWHM mm, eyes closed
    (2.0, 150, 1.00, 70.0, 5.0, False),
    (2.5, 120, 0.85, 55.0, 6.0, False),
    (1.5, 200, 1.10, 80.0, 4.0, True),
    (2.0, 150, 0.95, 50.0, 6.0, False),
]


def brain_mask():
    """ch2bet resampled (nearest) onto the 3 mm grid; T1 intensity inside it."""
    im = nib.load("/usr/share/mricron/templates/ch2bet.nii.gz")
    t1 = np.asarray(im.dataobj, dtype=np.float32)
    ijk = np.indices(SHAPE).reshape(3, -1)
    mm = AFF[:3, :3] @ ijk + AFF[:3, 3:4]
    src = np.linalg.solve(im.affine[:3, :3], mm - im.affine[:3, 3:4])
    src = np.rint(src).astype(int)
    ok = np.all((src >= 0) & (src < np.array(t1.shape)[:, None]), axis=0)
    val = np.zeros(ijk.shape[1], np.float32)
    val[ok] = t1[src[0, ok], src[1, ok], src[2, ok]]
    inside = val > 5
    xyz = mm[:, inside].T                       # mm coordinates of brain voxels
    inten = val[inside]
    rank = np.argsort(np.argsort(inten)) / (len(inten) - 1.0)
    grey = 0.4 + 0.6 * (1.0 - rank)             # darker voxels carry more BOLD
    return inside.reshape(SHAPE), xyz, grey


def nearest_corr(S, floor=0.05):
    S = (S + S.T) / 2
    w, V = np.linalg.eigh(S)
    S = (V * np.maximum(w, floor)) @ V.T
    d = np.sqrt(np.diag(S))
    return S / np.outer(d, d)


def hrf(tr_peak_shift):
    t = np.arange(0, 32, DT)
    h = gamma.pdf(t, 6 + tr_peak_shift) - gamma.pdf(t, 16 + tr_peak_shift) / 6
    return h / np.abs(h).sum()


class Population:
    def __init__(self, a):
        self.a = a
        r = np.random.default_rng([a.seed, 0])
        self.inside, self.xyz, self.grey = brain_mask()
        V = len(self.xyz)
        # components: blobs, most mirrored across x = 0
        self.blobs = []                          # (component, centre mm, sd mm)
        for c in range(C):
            for _ in range(int(r.integers(1, 3))):
                ctr = self.xyz[r.integers(V)].copy()
                sd = r.uniform(6, 10)
                self.blobs.append((c, ctr, sd))
                if r.random() < 0.75:
                    self.blobs.append((c, ctr * np.array([-1, 1, 1]), sd))
        nb = len(self.blobs)
        # base correlations: four meta-networks (one anticorrelated with the rest)
        self.meta = r.integers(0, 4, C)
        F = np.zeros((C, 4))
        F[np.arange(C), self.meta] = r.uniform(0.5, 0.8, C)
        F[self.meta == 3, 0] = -0.4               # the fourth anticorrelated with the first
        F += 0.15 * r.standard_normal((C, 4))
        base = F @ F.T
        np.fill_diagonal(base, 1.0 + np.diag(base))
        self.base = nearest_corr(base)
        self.same_meta = (self.meta[:, None] == self.meta[None, :]) & ~np.eye(C, dtype=bool)
        # traits: coupling loadings and blob displacement directions
        K = a.traits
        self.du = []
        self.move = np.zeros((K, nb, 3))
        for k in range(K):
            u = np.zeros(C)
            idx = r.choice(C, a.trait_components, replace=False)
            u[idx] = r.choice([-1.0, 1.0], a.trait_components)
            D = np.outer(u, u)
            np.fill_diagonal(D, 0)
            self.du.append(D)
            for c in r.choice(C, 3, replace=False):
                d = r.standard_normal(3)
                d /= np.linalg.norm(d)
                for b, (cb, _, _) in enumerate(self.blobs):
                    if cb == c:
                        self.move[k, b] = d
        self.w = np.abs(r.standard_normal(K)) + 0.2
        self.v = r.standard_normal(K)
        # eyes closed: one pair of components coupled differently
        self.closed = np.zeros((C, C))
        i, j = r.choice(C, 2, replace=False)
        self.closed[i, j] = self.closed[j, i] = -0.25
        # physiology's spatial weights: the edge (distance to the mask's outside) and
        # the centre (near the ventricles)
        dist = ndimage.distance_transform_edt(self.inside)[self.inside]
        self.edge = np.exp(-(dist - 1) / 2.0)
        cen = np.linalg.norm(self.xyz - np.array([0, -18, 12]), axis=1)
        self.centre = np.exp(-(cen / 25.0) ** 2)
        self.n = a.labelled + a.unlabelled

    def person(self, s):
        """Everything drawn for subject s (its own stream)."""
        a = self.a
        r = np.random.default_rng([a.seed, 1, s])
        site = s % a.sites
        t = r.standard_normal(a.traits)
        age = r.uniform(18, 75)
        sex = "F" if r.random() < 0.5 else "M"
        liab = self.w @ t / np.linalg.norm(self.w) + r.standard_normal()
        score = self.v @ t / np.linalg.norm(self.v) + r.standard_normal()
        patient = liab > 0
        motion = np.exp(np.log(0.12) + 0.012 * (age - 45) + 0.3 * patient + 0.5 * r.standard_normal())
        return dict(s=s, site=site, t=t, age=age, sex=sex, patient=patient, score=score,
                    motion=motion, labelled=s < a.labelled, rng=r)

    def image(self, p):
        a, r = self.a, p["rng"]
        tr, T, gain, tsnr, fwhm, closed = SITES[p["site"]]
        T = int(round(T * a.scan_scale))
        # correlations of this person
        S = self.base.copy()
        for k in range(a.traits):
            S += a.trait_coupling * p["t"][k] * self.du[k]
        S -= 0.06 * (p["age"] - 45) / 15 * self.same_meta
        R = r.standard_normal((C, C))
        S += a.fingerprint * np.triu(R, 1) + a.fingerprint * np.triu(R, 1).T
        if closed:
            S += self.closed
        S1 = nearest_corr(S)
        R2 = r.standard_normal((C, C))
        S2 = nearest_corr(S1 + STATE * (np.triu(R2, 1) + np.triu(R2, 1).T))
        L = [np.linalg.cholesky(S1), np.linalg.cholesky(S2)]
        # latent process at DT, two states, then HRF, sampled at the TR
        n_fine = int(np.ceil(T * tr / DT)) + 64
        phi = 0.9
        z = np.zeros((n_fine, C))
        state, prev = 0, np.zeros(C)
        for i in range(n_fine):
            if r.random() < DT / 40.0:
                state = 1 - state
            prev = phi * prev + np.sqrt(1 - phi * phi) * (L[state] @ r.standard_normal(C))
            z[i] = prev
        h = hrf(0.5 * r.standard_normal())
        bold = np.array([np.convolve(z[:, c], h)[:n_fine] for c in range(C)]).T[64:]
        ti = np.rint(np.arange(T) * tr / DT).astype(int)
        X = bold[ti]
        X /= X.std(axis=0)
        X *= np.exp(0.2 * r.standard_normal(C))            # component amplitudes
        # maps: blobs at this person's positions
        nb = len(self.blobs)
        shift = r.normal(0, a.jitter, (nb, 3)) + np.tensordot(p["t"], self.move, 1) * a.trait_shift
        M = np.zeros((len(self.xyz), C), np.float32)
        for b, (c, ctr, sd) in enumerate(self.blobs):
            d2 = ((self.xyz - (ctr + shift[b])) ** 2).sum(axis=1)
            M[:, c] += np.exp(-d2 / (2 * sd * sd))
        sig = (M @ X.T.astype(np.float32)) * self.grey[:, None]          # V x T, percent
        gsig = smooth_series(r, T, tr)
        sig += np.exp(np.log(GLOBAL) + 0.5 * r.standard_normal()) * self.grey[:, None] * gsig[None, :]
        tt = np.arange(T) * tr
        resp = np.sin(2 * np.pi * r.uniform(0.2, 0.33) * tt + r.uniform(0, 2 * np.pi))
        card = np.sin(2 * np.pi * r.uniform(0.9, 1.3) * tt + r.uniform(0, 2 * np.pi))
        sig += 0.4 * self.edge[:, None] * resp[None, :] + 0.5 * self.centre[:, None] * card[None, :]
        spikes, events = np.zeros(T), []
        for _ in range(r.poisson(T * min(p["motion"], 1.5) * 0.15)):
            i = r.integers(T)
            events.append((int(i), r.normal(0, 4 * p["motion"] / 0.12 * 0.25)))
            spikes[i:i + 2] += events[-1][1]
        sig += self.edge[:, None] * spikes[None, :]
        p["spikes"], p["events"] = spikes, events    # for motion(): (volume, percent)
        # thermal noise, smoothed by the site's FWHM, at the site's tSNR
        vol = np.zeros(SHAPE + (T,), np.float32)
        noise = r.standard_normal(SHAPE + (T,)).astype(np.float32)
        sd = fwhm / 3.0 / 2.3548
        noise = ndimage.gaussian_filter(noise, (sd, sd, sd, 0))
        noise = noise[self.inside] / noise[self.inside].std()
        base = 1000.0 * gain * (0.8 + 0.2 * self.grey)
        vol[self.inside] = base[:, None] * (1 + 0.01 * sig) + (base / tsnr)[:, None] * noise
        return vol, tr

    def motion(self, p, T):
        """Realignment estimates (T x 6: trans_x..z mm, rot_x..z rad) for the spikes
        image(p) drew, from a stream of their own (the image's stream is untouched)."""
        m = np.random.default_rng([self.a.seed, 7919, p["s"]])
        w = m.standard_normal(6)
        w *= 2.0 / np.linalg.norm(w)                  # percent at the edge per mm along w
        x = np.cumsum(m.normal(0, 0.02 * p["motion"] / 0.12, (T, 6)), axis=0)  # drift, mm
        x += m.normal(0, 0.01, (T, 6))               # the realignment's estimation noise
        for i, amp in p["events"]:                   # out at the spike's volume, then back
            n = m.standard_normal(6)
            n -= (n @ w) / (w @ w) * w
            n *= abs(amp) / 2 * abs(m.standard_normal()) / np.linalg.norm(n)
            x[i] += amp / (w @ w) * w + n            # w . e = amp
            x[i] += m.normal(0, 0.5 * abs(amp) / 2, 6)  # misestimated (within-volume motion)
        x[:, 3:] /= 50.0                             # rotations: mm at 50 mm to radians
        return x


MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]


def write_confounds(path, x, gs):
    """fMRIPrep's confounds file: the six parameters, their 24-parameter expansion,
    framewise displacement (Power et al. 2012) and the global signal; written whole."""
    d = np.vstack([np.full((1, 6), np.nan), np.diff(x, axis=0)])
    cols = [("global_signal", gs), ("framewise_displacement",
                                    np.abs(d[:, :3]).sum(axis=1) + 50 * np.abs(d[:, 3:]).sum(axis=1))]
    for j, c in enumerate(MOTION):
        cols += [(c, x[:, j]), (c + "_derivative1", d[:, j]),
                 (c + "_derivative1_power2", d[:, j] ** 2), (c + "_power2", x[:, j] ** 2)]
    part = path[:-len(".tsv")] + ".part.tsv"
    with open(part, "w") as f:
        f.write("\t".join(c for c, _ in cols) + "\n")
        for i in range(len(gs)):
            f.write("\t".join("n/a" if np.isnan(v[i]) else "%.8g" % v[i] for _, v in cols) + "\n")
    os.replace(part, path)


def smooth_series(r, T, tr):
    """A global signal: low-frequency Gaussian noise (0.01-0.05 Hz), unit sd."""
    f = np.fft.rfftfreq(T, tr)
    spec = (r.standard_normal(len(f)) + 1j * r.standard_normal(len(f))) * ((f > 0.01) & (f < 0.05))
    x = np.fft.irfft(spec, T)
    return x / (x.std() + 1e-12)


POP = None


def write_one(s):
    sid = "sub-%03d" % (s + 1)
    d = os.path.join(POP.a.out, sid, "func")
    final = os.path.join(d, sid + "_task-rest_bold.nii.gz")
    conf = os.path.join(d, sid + "_task-rest_desc-confounds_timeseries.tsv")
    if os.path.exists(final) and os.path.exists(conf):  # an earlier, interrupted call's
        return s
    p = POP.person(s)
    vol, tr = POP.image(p)
    os.makedirs(d, exist_ok=True)
    write_confounds(conf, POP.motion(p, vol.shape[-1]), vol[POP.inside].mean(axis=0, dtype=np.float64))
    if os.path.exists(final):  # an image written without its confounds: the same bytes
        return s
    im = nib.Nifti1Image(vol, AFF)
    im.set_data_dtype(np.int16)
    im.header.set_xyzt_units("mm", "sec")
    im.header["pixdim"][4] = tr
    im.set_qform(AFF, 4)
    im.set_sform(AFF, 4)
    part = os.path.join(d, sid + "_task-rest_bold.part.nii.gz")
    nib.save(im, part)
    os.replace(part, final)  # complete or absent
    return s


def main():
    global POP
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--labelled", type=int, default=64)
    ap.add_argument("--unlabelled", type=int, default=240)
    ap.add_argument("--traits", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--trait-coupling", type=float, default=0.10)
    ap.add_argument("--trait-shift", type=float, default=2.0)
    ap.add_argument("--trait-components", type=int, default=4)
    ap.add_argument("--scan-scale", type=float, default=1.0, help="scan length x (default 1: about 5 min)")
    ap.add_argument("--fingerprint", type=float, default=0.10)
    ap.add_argument("--jitter", type=float, default=3.0)
    ap.add_argument("--sites", type=int, default=3, choices=[1, 2, 3, 4])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", type=int, default=0, help="write only the first N subjects (checks)")
    a = ap.parse_args()
    if os.path.exists(os.path.join(a.out, "participants.tsv")):
        sys.exit("foreign_pop: %s already holds a dataset" % a.out)
    POP = Population(a)
    n = a.only or POP.n
    with Pool(a.workers) as pool:
        for s in pool.imap_unordered(write_one, range(n)):
            pass
    rows, truth = [], []
    head = ["participant_id", "diagnosis", "site", "age", "sex", "score"] + ["trait_%d" % (k + 1) for k in range(a.traits)]
    for s in range(n):
        p = POP.person(s)
        sid = "sub-%03d" % (s + 1)
        truth.append({"participant_id": sid, "traits": p["t"].tolist(), "labelled": bool(p["labelled"]),
                      "patient": bool(p["patient"]), "motion": p["motion"], "site": p["site"] + 1})
        if p["labelled"]:
            lab = ["patient" if p["patient"] else "control", "%.6f" % p["score"]] + ["%.6f" % x for x in p["t"]]
        else:
            lab = ["n/a", "n/a"] + ["n/a"] * a.traits
        rows.append([sid, lab[0], "site-%d" % (p["site"] + 1), "%d" % int(p["age"]), p["sex"]] + lab[1:])
    with open(os.path.join(a.out, "participants.tsv"), "w") as f:
        f.write("\t".join(head) + "\n")
        for row in rows:
            f.write("\t".join(row) + "\n")
    with open(os.path.join(a.out, "dataset_description.json"), "w") as f:
        json.dump({"Name": "foreign_pop", "BIDSVersion": "1.8.0", "DatasetType": "raw"}, f)
    os.makedirs(os.path.join(a.out, "derivatives", "foreign"), exist_ok=True)
    with open(os.path.join(a.out, "derivatives", "foreign", "truth.json"), "w") as f:
        json.dump({"options": vars(a), "participants": truth}, f, indent=1)
    print("foreign_pop: wrote %d subjects to %s" % (n, a.out))


if __name__ == "__main__":
    main()
