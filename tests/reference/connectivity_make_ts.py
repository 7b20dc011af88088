#!/usr/bin/env python3
"""connectivity_make_ts.py: write a small timeseries.h5 in the documented format
(docs/formats.md, parcellate section) with h5py, as input for connectivity tests.
Not a parcellation: series are random mixtures of latent signals.

usage: connectivity_make_ts.py OUT.h5 [--subjects S] [--atlases a:N,b:M] [--tmin T]
       [--seed K] [--flag s:atlas:region ...] [--nan s:atlas:region]
       [--constant s:atlas:region] [--short s:T] [--no-site]
"""
import argparse

import h5py
import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--subjects", type=int, default=5)
    ap.add_argument("--atlases", default="aal:12,ho:7")
    ap.add_argument("--tmin", type=int, default=60)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--flag", action="append", default=[])
    ap.add_argument("--nan", action="append", default=[])
    ap.add_argument("--constant", action="append", default=[])
    ap.add_argument("--short", action="append", default=[])
    ap.add_argument("--ties", action="store_true", help="round series to a coarse grid")
    ap.add_argument("--no-site", action="store_true")
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    S = a.subjects
    atl = [(x.split(":")[0], int(x.split(":")[1])) for x in a.atlases.split(",")]
    T = [a.tmin + 7 * s for s in range(S)]
    for x in a.short:
        s, t = x.split(":")
        T[int(s)] = int(t)

    def trip(x):
        s, at, r = x.split(":")
        return int(s), at, int(r)

    with h5py.File(a.out, "w") as f:
        f.attrs["format"] = np.bytes_("bgfm-timeseries")
        f.attrs["format_version"] = np.int64(1)
        f.attrs["n_subjects"] = np.int64(S)
        f.attrs["atlases"] = np.bytes_(",".join(n for n, _ in atl))
        f.attrs["detrend"] = np.int64(1)
        f.attrs["high_pass"] = 0.0
        f.attrs["low_pass"] = 0.0
        f.attrs["standardize"] = np.bytes_("zscore")
        f.attrs["filter_order"] = np.int64(5)
        f.attrs["min_coverage"] = 0.5
        g = f.create_group("subjects")
        g["participant_id"] = np.array([b"sub-%02d" % (s + 1) for s in range(S)])
        g["image"] = np.array([b"sub-%02d/func/bold.nii.gz" % (s + 1) for s in range(S)])
        g["n_volumes"] = np.array(T, dtype=np.int64)
        g["t_r"] = np.full(S, 2.0)
        lab = g.create_dataset("label", data=np.array([s % 3 - 1 for s in range(S)], dtype=np.int64))
        lab.attrs["classes"] = np.bytes_("control,patient")
        c = g.create_group("columns")
        if not a.no_site:
            c["site"] = np.array([b"siteA" if s % 2 == 0 else b"siteB" for s in range(S)])
        c["age"] = np.arange(S, dtype=np.float64) + 20
        for name, N in atl:
            k = max(2, N // 3)
            rows, flags = [], np.zeros((S, N), np.uint8)
            for s in range(S):
                lat = rng.standard_normal((T[s], k))
                mix = rng.standard_normal((k, N))
                x = lat @ mix + 0.7 * rng.standard_normal((T[s], N))
                if a.ties:
                    x = np.round(x)
                rows.append(x.astype(np.float32))
            for x in a.flag:
                s, at, r = trip(x)
                if at == name:
                    flags[s, r] = 1
                    rows[s][:, r] = 0
            for x in a.nan:
                s, at, r = trip(x)
                if at == name:
                    rows[s][T[s] // 2, r] = np.nan
            for x in a.constant:
                s, at, r = trip(x)
                if at == name:
                    rows[s][:, r] = 3.5
            ga = f.create_group("atlases/" + name)
            ga.attrs["path"] = np.bytes_("/nonexistent/" + name + ".nii.gz")
            ga.attrs["n_regions"] = np.int64(N)
            ga["timeseries"] = np.concatenate(rows, axis=0) if S else np.zeros((0, N), np.float32)
            ga["offsets"] = np.concatenate([[0], np.cumsum(T)]).astype(np.int64)
            ga["region_labels"] = (np.arange(N, dtype=np.int32) + 1) * 2
            ga["region_names"] = np.array([b"region_%d" % (2 * i + 2) for i in range(N)])
            ga["coverage"] = np.where(flags == 1, 0.1, 1.0).astype(np.float32)
            ga["flagged"] = flags


if __name__ == "__main__":
    main()
