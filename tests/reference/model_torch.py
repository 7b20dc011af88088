#!/usr/bin/env python3
"""model_torch.py: an independent PyTorch float64 implementation of docs/model.md
(written from the spec, not from the C code). Reads a `bgfm grad` dump (params,
inputs, draws), recomputes the four losses and every parameter gradient with autograd
and compares: losses to 1e-5 relative, gradients to 1e-4 relative L2 error.
Prints TAP lines. Not a trainer (see model_bench.py for the float32 batched version).

usage: model_torch.py DUMP.h5 [DUMP.h5 ...]
"""
import math
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as Fn

torch.set_default_dtype(torch.float64)


def s(x):
    return x.decode() if isinstance(x, bytes) else str(x)


class Params:
    def __init__(self, grp):
        self.t = {}
        grp.visititems(self._add)

    def _add(self, name, obj):
        if isinstance(obj, h5py.Dataset):
            self.t[name] = torch.tensor(obj[()].astype(np.float64), requires_grad=True)

    def __getitem__(self, k):
        return self.t[k]


def gcn_norm(A):
    At = A + torch.eye(A.shape[0])
    d = At.sum(1)
    di = d.rsqrt()
    return di[:, None] * At * di[None, :]


def ln(x, p, pre):
    return Fn.layer_norm(x, (x.shape[-1],), p[pre + "/gamma"], p[pre + "/beta"], eps=1e-5)


def block(p, pre, h, A, nh):
    # model.md section 2: GCN on region rows, MHSA over all rows, FFN; LayerNorms after
    T, H = h.shape
    tok, hr = h[:1], h[1:]
    u = gcn_norm(A) @ (hr @ p[pre + "/gcn/W"].T) + p[pre + "/gcn/b"]
    hr = ln(hr + torch.relu(u), p, pre + "/ln_g")
    h = torch.cat([tok, hr], 0)
    d = H // nh
    q = (h @ p[pre + "/attn/Wq"].T + p[pre + "/attn/bq"]).view(T, nh, d).transpose(0, 1)
    k = (h @ p[pre + "/attn/Wk"].T + p[pre + "/attn/bk"]).view(T, nh, d).transpose(0, 1)
    v = (h @ p[pre + "/attn/Wv"].T + p[pre + "/attn/bv"]).view(T, nh, d).transpose(0, 1)
    a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d), -1) @ v
    a = a.transpose(0, 1).reshape(T, H) @ p[pre + "/attn/Wo"].T + p[pre + "/attn/bo"]
    h = ln(h + a, p, pre + "/ln_1")
    f = torch.relu(h @ p[pre + "/ffn/W1"].T + p[pre + "/ffn/b1"]) @ p[pre + "/ffn/W2"].T + p[pre + "/ffn/b2"]
    return ln(h + f, p, pre + "/ln_2")


def encoder(p, cfg, atlas, ai, X, idx, A):
    """X: (n, D_in) node inputs of the node subset idx (ascending), A: (n, n)."""
    h = X @ p["in/W"].T + p["in/b"] + p["embed/node/" + atlas][idx]
    h = torch.cat([p["embed/token"][ai:ai + 1], h], 0)
    for l in range(cfg["L"]):
        h = block(p, f"enc/{l}", h, A, cfg["nh"])
    return h[1:]


def readout(p, cfg, atlas, z, idx, N):
    """model.md section 2: graph embedding of the node rows z (n, H) of nodes idx."""
    if cfg["readout"] == "mean":
        return z.mean(0)
    # region readout: v = (N / n) * scatter(Wc z_i) into the regions' slots, e = W v + b
    rd = cfg["readout_dim"]
    pz = z @ p["readout/Wc"].T
    v = torch.zeros(N, rd).index_put((idx,), pz) * (N / len(idx))
    return p["readout/W/" + atlas] @ v.reshape(-1) + p["readout/b"]


def node_inputs(C, R, cfg, N):
    X = torch.zeros(N, cfg["N_max"] + cfg["k"])
    X[:, :N] = C
    X[:, cfg["N_max"]:] = R
    return X


def projection(p, e):
    q = torch.relu(e @ p["proj/W1"].T + p["proj/b1"]) @ p["proj/W2"].T + p["proj/b2"]
    return Fn.normalize(q, dim=-1)


def nt_xent(za, zb, tau):
    Z = torch.cat([za, zb], 0)
    n = Z.shape[0]
    S = Z @ Z.T / tau
    S = S.masked_fill(torch.eye(n, dtype=torch.bool), float("-inf"))
    pos = torch.cat([torch.arange(n // 2, n), torch.arange(0, n // 2)])
    return Fn.cross_entropy(S, pos)


def losses(f, p):
    pa = f["params"].attrs
    cfg = {k: int(pa[k]) for k in ["H", "nh", "F", "k", "L", "Ld", "P", "N_max"]}
    cfg["readout"] = s(pa["readout"]) if "readout" in pa else "mean"
    if cfg["readout"] == "region":
        cfg["readout_dim"] = int(pa["readout_dim"])
    atlases = s(pa["atlases"]).split(",")
    atlas = s(f.attrs["atlas"])
    ai = atlases.index(atlas)
    la = f["loss"].attrs
    mode = s(la["mode"])
    lam = [float(la["lambda_rec"]), float(la["lambda_adj"]), float(la["lambda_cl"])]
    tau = float(la["tau_cl"])
    mask_cols = int(la["mask_columns"])
    dec_in = s(la["decoder_input"]) if "decoder_input" in la else "nodes"
    rec_partner = "rec_target" in la and s(la["rec_target"]) == "partner"
    fc = torch.tensor(f["inputs/fc"][()].astype(np.float64))
    adj = torch.tensor(f["inputs/adj"][()].astype(np.float64))
    rw = torch.tensor(f["inputs/rwse"][()].astype(np.float64))
    B, N = fc.shape[0], fc.shape[1]
    H = cfg["H"]
    dr = {k: torch.tensor(f["draws"][k][()].astype(np.float64)) for k in f["draws"]}
    checks = []
    if "gmae" in mode:
        M = min(int(math.floor(float(la["mask_ratio"]) * N + 0.5)), N - 4)
        checks.append(("mask count", bool((dr["mask"].sum(1) == M).all())))
    for v in "ab":
        if "edge_keep_" + v in dr:
            ek = dr["edge_keep_" + v]
            checks.append(("edge_keep_%s symmetric" % v, bool((ek == ek.transpose(1, 2)).all())))

    # view b is made from the partner graphs when the dump has them (model.md section 4)
    src = {"a": (fc, adj, rw), "b": (fc, adj, rw)}
    if "fc_b" in f["inputs"]:
        src["b"] = tuple(torch.tensor(f["inputs"][k][()].astype(np.float64))
                         for k in ("fc_b", "adj_b", "rwse_b"))
    # population input normalisation (model.md section 1): a fitted statistic, not trained
    if f"norm/{atlas}/mean" in p.t:
        mu = p[f"norm/{atlas}/mean"].detach()
        sd = p[f"norm/{atlas}/std"].detach()
        checks.append(("input normalisation has a fitted mean and sd",
                       bool(mu.abs().sum() > 0 and (sd > 0).all() and (sd != 1).any())))
        fc = (fc - mu) / sd
        src = {v: ((t[0] - mu) / sd,) + tuple(t[1:]) for v, t in src.items()}

    def corrupted(b, v):
        fcv, adjv, rwv = src[v]
        C = fcv[b].clone()
        cr = dr["corrupt_" + v][b].bool()
        C[cr] = dr["noise_" + v][b][cr]
        return node_inputs(C, rwv[b], cfg, N), adjv[b] * dr["edge_keep_" + v][b]

    rec = adj_l = cl = torch.zeros(())
    ea, eb = [], []
    allidx = torch.arange(N)
    for b in range(B):
        if "gmae" in mode:
            mk = dr["mask"][b].bool()
            V = torch.nonzero(~mk).flatten()
            Mi = torch.nonzero(mk).flatten()
            C = fc[b].clone()
            if mask_cols:
                C[:, mk] = 0.0
            X = node_inputs(C, rw[b], cfg, N)[V]
            z = encoder(p, cfg, atlas, ai, X, V, adj[b][V][:, V])
            e = readout(p, cfg, atlas, z, V, N)
            # decoder (model.md section 3): decoder_input says what it reads besides the
            # node identities: visible node embeddings, the graph embedding e, or both
            d = torch.zeros(N, H)
            if dec_in == "graph":
                d = d + p["dec/mask_token"]
            else:
                d = d.index_put((V,), z @ p["dec/re/W"].T + p["dec/re/b"])
                d = d.index_put((Mi,), p["dec/mask_token"].expand(len(Mi), H))
            d = d + p["embed/node/" + atlas]
            if dec_in != "nodes":
                d = d + e
            h = torch.cat([p["embed/token"][ai:ai + 1], d], 0)
            for l in range(cfg["Ld"]):
                h = block(p, f"dec/{l}", h, adj[b], cfg["nh"])
            y = h[1:] @ p["dec/out/W"].T + p["dec/out/b"]
            tgt = src["b"][0] if rec_partner else fc  # rec_target partner: the partner's rows
            rec = rec + Fn.smooth_l1_loss(y[Mi][:, :N], tgt[b][Mi][:, :N], beta=1.0) / B
            # structure loss
            sl = z @ z.T / math.sqrt(H)
            off = ~torch.eye(len(V), dtype=torch.bool)
            adj_l = adj_l + Fn.binary_cross_entropy_with_logits(sl[off], adj[b][V][:, V][off]) / B
            ea.append(e)
        elif "gcl" in mode:
            X, A = corrupted(b, "a")
            ea.append(readout(p, cfg, atlas, encoder(p, cfg, atlas, ai, X, allidx, A), allidx, N))
        if "gcl" in mode:
            X, A = corrupted(b, "b")
            eb.append(readout(p, cfg, atlas, encoder(p, cfg, atlas, ai, X, allidx, A), allidx, N))
    if "gcl" in mode:
        cl = nt_xent(projection(p, torch.stack(ea)), projection(p, torch.stack(eb)), tau)
    total = lam[0] * rec + lam[1] * adj_l + lam[2] * cl
    return {"total": total, "rec": rec, "adj": adj_l, "cl": cl}, checks


def check(path):
    ok = True
    with h5py.File(path, "r") as f:
        p = Params(f["params"])
        L, checks = losses(f, p)
        L["total"].backward()
        for name, good in checks:
            print(("ok" if good else "not ok") + f" - {path}: draws: {name}")
            ok &= good
        for k in ["total", "rec", "adj", "cl"]:
            c = float(f["loss"][k][()])
            r = float(L[k])
            err = abs(c - r) / max(abs(r), 1e-30) if r != 0 else abs(c)
            good = err <= 1e-5
            ok &= good
            print(("ok" if good else "not ok") + f" - {path}: loss {k} bgfm {c:.9g} torch {r:.9g} rel {err:.2e}")
        worst, bad = 0.0, []
        n = 0
        gnorm = math.sqrt(sum(float(t.grad.norm()) ** 2 for t in p.t.values() if t.grad is not None))
        for name, t in p.t.items():
            g_ref = t.grad if t.grad is not None else torch.zeros_like(t)
            g_c = torch.tensor(f["grad"][name][()].astype(np.float64))
            rn = float(g_ref.norm())
            en = float((g_c - g_ref).norm())
            # A gradient that is zero in exact arithmetic (e.g. attention key biases: softmax
            # is shift-invariant) is compared absolutely, against 1e-6 of the total norm.
            rn_eff = rn if rn > 1e-12 * gnorm else 1e-2 * gnorm
            rel = en / rn_eff if rn_eff > 0 else (0.0 if en == 0 else float("inf"))
            worst = max(worst, rel)
            n += 1
            if rel > 1e-4:
                bad.append(f"{name} rel {rel:.2e} (|ref| {rn:.3e})")
        good = not bad
        ok &= good
        print(("ok" if good else "not ok") + f" - {path}: {n} gradient tensors, worst rel L2 {worst:.2e}"
              + ("" if good else "; " + ", ".join(bad[:8])))
    return ok


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    res = [check(a) for a in sys.argv[1:]]
    sys.exit(0 if all(res) else 1)
