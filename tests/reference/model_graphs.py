#!/usr/bin/env python3
"""model_graphs.py: write a small graph shard (graphs.h SHARD layout) of synthetic
brain graphs with block-structured FC, for model tests and benchmarks.
Not the connectivity stage: FC here comes from a block model, not from time series.

usage: model_graphs.py OUT.h5 ATLAS:N:G [ATLAS:N:G ...] [--k 5] [--seed 0] [--tau 0.3]
"""
import sys
import h5py
import numpy as np


def rwse(A, k):
    deg = np.maximum(A.sum(1), 1e-6)
    P = A / deg[:, None]
    out = np.zeros((A.shape[0], k))
    M = np.eye(A.shape[0])
    for s in range(k):
        M = M @ P
        out[:, s] = np.diag(M)
    return out


def graph(rng, N, k, tau, T=120):
    # a block model: nodes in 4 communities share a latent signal
    comm = np.arange(N) * 4 // N
    lat = rng.standard_normal((4, T))
    ts = 0.8 * lat[comm] + rng.standard_normal((N, T))
    C = np.corrcoef(ts)
    np.fill_diagonal(C, 1.0)
    A = (C > tau).astype(np.uint8)
    np.fill_diagonal(A, 0)
    return C.astype(np.float32), A, rwse(A.astype(np.float64), k).astype(np.float32)


def main(argv):
    out, specs, k, seed, tau = argv[0], [], 5, 0, 0.3
    i = 1
    while i < len(argv):
        if argv[i] == "--k": k = int(argv[i + 1]); i += 2
        elif argv[i] == "--seed": seed = int(argv[i + 1]); i += 2
        elif argv[i] == "--tau": tau = float(argv[i + 1]); i += 2
        else:
            a, n, g = argv[i].split(":"); specs.append((a, int(n), int(g))); i += 1
    rng = np.random.default_rng(seed)
    with h5py.File(out, "w") as f:
        f.attrs["format"] = np.bytes_("bgfm-graphs-shard")
        f.attrs["format_version"] = np.int64(1)
        f.attrs["atlases"] = np.bytes_(",".join(s[0] for s in specs))
        f.attrs["measure"] = np.bytes_("pearson")
        f.attrs["fisher_z"] = np.int64(0)
        f.attrs["adjacency"] = np.bytes_("threshold")
        f.attrs["adjacency_value"] = np.float64(tau)
        f.attrs["rwse_steps"] = np.int64(k)
        f.attrs["window_length"] = np.int64(0)
        f.attrs["window_stride"] = np.int64(0)
        f.attrs["graphs_per_shard"] = np.int64(sum(s[2] for s in specs))
        f.attrs["shard"] = np.int64(0)
        f.attrs["n_graphs"] = np.int64(sum(s[2] for s in specs))
        for a, N, G in specs:
            fc = np.zeros((G, N, N), np.float32)
            adj = np.zeros((G, N, N), np.uint8)
            rw = np.zeros((G, N, k), np.float32)
            for g in range(G):
                fc[g], adj[g], rw[g] = graph(rng, N, k, tau)
            grp = f.create_group(f"graphs/{a}")
            grp.attrs["n_nodes"] = np.int64(N)
            grp.create_dataset("fc", data=fc, chunks=(1, N, N))
            grp.create_dataset("adj", data=adj, chunks=(1, N, N))
            grp.create_dataset("rwse", data=rw, chunks=(1, N, k))
            grp.create_dataset("subject", data=np.arange(G, dtype=np.int64))
            grp.create_dataset("window", data=np.zeros(G, np.int64))
            grp.create_dataset("label", data=np.full(G, -1, np.int64))
            grp.create_dataset("flagged", data=np.zeros((G, N), np.uint8))
            grp.create_dataset("participant_id", data=np.array([f"sub-{g:03d}".encode() for g in range(G)], dtype="S8"))
            grp.create_dataset("site", data=np.array([b"s0"] * G, dtype="S3"))


if __name__ == "__main__":
    main(sys.argv[1:])
