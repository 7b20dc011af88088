#!/usr/bin/env python3
"""adapt_torch.py: an independent PyTorch float64 check of the adaptation step of
docs/adapt.md (`bgfm grad --task ...` dumps): the encoder of docs/model.md on the full,
uncorrupted graphs (model_torch.py's encoder and readout, written from the spec), the
task head e W^T + b, and the mean cross-entropy (classify) or squared error (regress);
with graph prompts (`--prompt full`) the feature prompt added to the input layer's output
and the prompted, weighted adjacency sigmoid(P + margin (2A - 1)) of docs/adapt.md.
Loss to 1e-5 relative, every gradient (encoder, readout, head) to 1e-4 relative L2; the
tensors the step does not touch (decoder, projection head, buffers) must have zero
gradients. Prints TAP lines.

usage: adapt_torch.py DUMP.h5 [DUMP.h5 ...]
"""
import math
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as Fn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_torch import Params, block, encoder, node_inputs, readout, s  # noqa: E402

torch.set_default_dtype(torch.float64)


def prompted_adj(P, A, margin):
    """docs/adapt.md "prompt": w_ij = sigmoid(P_ij + margin (2 A_ij - 1)), i != j, from the
    upper triangle P (row-major, i < j) of the symmetric logits; zero diagonal."""
    N = A.shape[0]
    iu = torch.triu_indices(N, N, 1)
    Pm = torch.zeros(N, N).index_put((iu[0], iu[1]), P)
    Pm = Pm + Pm.T
    return torch.sigmoid(Pm + margin * (2 * A - 1)) * (1 - torch.eye(N))


def prompted_encoder(p, cfg, atlas, ai, X, A, margin):
    """model_torch's encoder on the full graph with the feature prompt added to the input
    layer's output and the prompted weighted adjacency (gcn_norm of W + I)."""
    h = X @ p["in/W"].T + p["in/b"] + p["embed/node/" + atlas] + p["prompt/feat"]
    h = torch.cat([p["embed/token"][ai:ai + 1], h], 0)
    W = prompted_adj(p["prompt/edge"], A, margin)
    for l in range(cfg["L"]):
        h = block(p, f"enc/{l}", h, W, cfg["nh"])
    return h[1:]


def task_loss(f, p):
    pa = f["params"].attrs
    cfg = {k: int(pa[k]) for k in ["H", "nh", "F", "k", "L", "Ld", "P", "N_max"]}
    cfg["readout"] = s(pa["readout"]) if "readout" in pa else "mean"
    if cfg["readout"] == "region":
        cfg["readout_dim"] = int(pa["readout_dim"])
    atlases = s(pa["atlases"]).split(",")
    atlas = s(f.attrs["atlas"])
    ai = atlases.index(atlas)
    task = s(f["loss"].attrs["task"])
    fc = torch.tensor(f["inputs/fc"][()].astype(np.float64))
    adj = torch.tensor(f["inputs/adj"][()].astype(np.float64))
    rw = torch.tensor(f["inputs/rwse"][()].astype(np.float64))
    tg = f["inputs/targets"][()]
    if f"norm/{atlas}/mean" in p.t:
        fc = (fc - p[f"norm/{atlas}/mean"].detach()) / p[f"norm/{atlas}/std"].detach()
    B, N = fc.shape[0], fc.shape[1]
    idx = torch.arange(N)
    if "prompt/feat" in p.t:
        mg = float(f["loss"].attrs["prompt_margin"])
        E = torch.stack([readout(p, cfg, atlas, prompted_encoder(p, cfg, atlas, ai, node_inputs(fc[b], rw[b], cfg, N),
                                                                 adj[b], mg), idx, N) for b in range(B)])
    else:
        E = torch.stack([readout(p, cfg, atlas, encoder(p, cfg, atlas, ai, node_inputs(fc[b], rw[b], cfg, N),
                                                        idx, adj[b]), idx, N) for b in range(B)])
    out = E @ p["head/W"].T + p["head/b"]
    if task == "classify":
        return Fn.cross_entropy(out, torch.tensor(tg.astype(np.int64)))
    return ((out[:, 0] - torch.tensor(tg)) ** 2).mean()


def check(path):
    ok = True
    with h5py.File(path, "r") as f:
        p = Params(f["params"])
        L = task_loss(f, p)
        L.backward()
        c, r = float(f["loss/total"][()]), float(L)
        err = abs(c - r) / max(abs(r), 1e-30)
        good = err <= 1e-5
        ok &= good
        print(("ok" if good else "not ok") + f" - {path}: task loss bgfm {c:.9g} torch {r:.9g} rel {err:.2e}")
        gnorm = math.sqrt(sum(float(t.grad.norm()) ** 2 for t in p.t.values() if t.grad is not None))
        worst, bad, n, zero_bad = 0.0, [], 0, []
        for name, t in p.t.items():
            g_c = torch.tensor(f["grad"][name][()].astype(np.float64))
            if t.grad is None:  # not on the adaptation path: the dump must hold zeros
                if float(g_c.abs().max()) != 0.0:
                    zero_bad.append(name)
                continue
            rn, en = float(t.grad.norm()), float((g_c - t.grad).norm())
            rn_eff = rn if rn > 1e-12 * gnorm else 1e-2 * gnorm
            rel = en / rn_eff if rn_eff > 0 else (0.0 if en == 0 else float("inf"))
            worst = max(worst, rel)
            n += 1
            if rel > 1e-4:
                bad.append(f"{name} rel {rel:.2e} (|ref| {rn:.3e})")
        if "prompt/feat" in p.t:  # the prompts' gradients must have been compared
            good = not bad and all(t in p.t and p.t[t].grad is not None for t in ["prompt/feat", "prompt/edge"])
            ok &= good
            print(("ok" if good else "not ok") + f" - {path}: feature and edge prompt gradients within 1e-4")
        good = not bad and n > 0 and "head/W" in p.t
        ok &= good
        print(("ok" if good else "not ok") + f" - {path}: {n} gradient tensors (head included), worst rel L2 {worst:.2e}"
              + ("" if good else "; " + ", ".join(bad[:8])))
        good = not zero_bad
        ok &= good
        print(("ok" if good else "not ok") + f" - {path}: tensors off the adaptation path have zero gradients"
              + ("" if good else ": " + ", ".join(zero_bad[:8])))
    return ok


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(0 if all([check(a) for a in sys.argv[1:]]) else 1)
