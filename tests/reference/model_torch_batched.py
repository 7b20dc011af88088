#!/usr/bin/env python3
"""model_torch_batched.py: a batched PyTorch float32 implementation of docs/model.md's
GMAE + GCL training step, for the benchmark (bench/model_step.sh): every graph of a
batch goes through one bmm per product (no per-graph Python loop); dense normalised
adjacency; autograd backward; global-norm clipping; torch.optim.AdamW with weight decay
on matrices only. Prints key=value lines (graphs_per_s, peak_rss_mb, ...).
Not the correctness reference (model_torch.py, float64, per graph, checks bgfm's
gradients): this file times PyTorch doing the same work the way a PyTorch user would.

usage: model_torch_batched.py H L N B [--steps S] [--warmup W] [--threads T]
"""
import argparse
import math
import resource
import time

import numpy as np
import torch
import torch.nn.functional as Fn


def build_params(H, nh, F, k, L, Ld, P, N, dtype, seed=1, readout="region", rdim=8):
    g = torch.Generator().manual_seed(seed)
    p, decay = {}, {}

    def mat(name, r, c):
        b = math.sqrt(6.0 / (r + c))
        p[name] = ((torch.rand(r, c, generator=g, dtype=dtype) * 2 - 1) * b).requires_grad_()
        decay[name] = True

    def vec(name, n, val=0.0):
        p[name] = torch.full((n,), val, dtype=dtype).requires_grad_()
        decay[name] = False

    def emb(name, *shape):
        p[name] = (0.02 * torch.randn(*shape, generator=g, dtype=dtype)).requires_grad_()
        decay[name] = False

    mat("in/W", H, N + k); vec("in/b", H)
    emb("embed/token", 1, H); emb("embed/node", N, H)
    for pre, nb in (("enc", L), ("dec", Ld)):
        for l in range(nb):
            q = f"{pre}/{l}/"
            mat(q + "gcn/W", H, H); vec(q + "gcn/b", H)
            vec(q + "ln_g/gamma", H, 1.0); vec(q + "ln_g/beta", H)
            mat(q + "attn/Wqkv", 3 * H, H); vec(q + "attn/bqkv", 3 * H)
            mat(q + "attn/Wo", H, H); vec(q + "attn/bo", H)
            vec(q + "ln_1/gamma", H, 1.0); vec(q + "ln_1/beta", H)
            mat(q + "ffn/W1", F, H); vec(q + "ffn/b1", F)
            mat(q + "ffn/W2", H, F); vec(q + "ffn/b2", H)
            vec(q + "ln_2/gamma", H, 1.0); vec(q + "ln_2/beta", H)
    mat("dec/re/W", H, H); vec("dec/re/b", H); emb("dec/mask_token", H)
    mat("dec/out/W", N, H); vec("dec/out/b", N)
    mat("proj/W1", H, H); vec("proj/b1", H); mat("proj/W2", P, H); vec("proj/b2", P)
    if readout == "region":
        mat("readout/Wc", rdim, H); mat("readout/W", H, N * rdim); vec("readout/b", H)
    return p, decay


def pool(p, z, idx, N):
    """Graph embeddings of node rows z (B, n, H) of nodes idx (B, n): docs/model.md section 2."""
    if "readout/Wc" not in p:
        return z.mean(1)
    B, n, _ = z.shape
    rd = p["readout/Wc"].shape[0]
    v = torch.zeros(B, N, rd, dtype=z.dtype)
    v = v.index_put((torch.arange(B)[:, None].expand(B, n), idx), z @ p["readout/Wc"].T) * (N / n)
    return v.reshape(B, N * rd) @ p["readout/W"].T + p["readout/b"]


def gcn_norm(A):
    """A (B, n, n) 0/1 -> Dt^-1/2 (A + I) Dt^-1/2, dense."""
    At = A + torch.eye(A.shape[-1], dtype=A.dtype)
    di = At.sum(-1).rsqrt()
    return di[:, :, None] * At * di[:, None, :]


def ln(x, p, pre):
    return Fn.layer_norm(x, (x.shape[-1],), p[pre + "/gamma"], p[pre + "/beta"], eps=1e-5)


def block(p, pre, h, Ahat, nh, pd, train):
    B, T, H = h.shape
    d = H // nh
    tok, hr = h[:, :1], h[:, 1:]
    u = torch.bmm(Ahat, hr @ p[pre + "/gcn/W"].T) + p[pre + "/gcn/b"]
    hr = ln(hr + torch.relu(u), p, pre + "/ln_g")
    h = torch.cat([tok, hr], 1)
    qkv = (h @ p[pre + "/attn/Wqkv"].T + p[pre + "/attn/bqkv"]).view(B, T, 3, nh, d)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, nh, T, d) each
    a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), -1)
    a = Fn.dropout(a, pd, train) @ v
    a = a.transpose(1, 2).reshape(B, T, H) @ p[pre + "/attn/Wo"].T + p[pre + "/attn/bo"]
    h = ln(h + Fn.dropout(a, pd, train), p, pre + "/ln_1")
    f = torch.relu(h @ p[pre + "/ffn/W1"].T + p[pre + "/ffn/b1"]) @ p[pre + "/ffn/W2"].T + p[pre + "/ffn/b2"]
    return ln(h + Fn.dropout(f, pd, train), p, pre + "/ln_2")


def encoder(p, X, R, idx, Ahat, cfg, train):
    """X (B, n, N) FC part, R (B, n, k), idx (B, n) node indices, Ahat (B, n, n)."""
    N = cfg["N"]
    W = p["in/W"]
    h = X @ W[:, :N].T + R @ W[:, N:].T + p["in/b"] + p["embed/node"][idx]
    h = torch.cat([p["embed/token"].expand(h.shape[0], 1, -1), h], 1)
    for l in range(cfg["L"]):
        h = block(p, f"enc/{l}", h, Ahat, cfg["nh"], cfg["pd"], train)
    return h[:, 1:]


def projection(p, e):
    q = torch.relu(e @ p["proj/W1"].T + p["proj/b1"]) @ p["proj/W2"].T + p["proj/b2"]
    return Fn.normalize(q, dim=-1)


def nt_xent(za, zb, tau):
    Z = torch.cat([za, zb], 0)
    n = Z.shape[0]
    S = (Z @ Z.T / tau).masked_fill(torch.eye(n, dtype=torch.bool), float("-inf"))
    pos = torch.cat([torch.arange(n // 2, n), torch.arange(0, n // 2)])
    return Fn.cross_entropy(S, pos)


def draws(B, N, M, cfg, dtype, gen):
    perm = torch.rand(B, N, generator=gen).argsort(1)
    vis = perm[:, M:].sort(1).values
    msk = perm[:, :M].sort(1).values
    corrupt = torch.rand(B, N, generator=gen) < cfg["p_node"]
    noise = 0.1 * torch.randn(B, N, N, generator=gen, dtype=dtype)
    keep = torch.triu(torch.rand(B, N, N, generator=gen) >= cfg["p_edge"], 1)
    keep = keep | keep.transpose(1, 2)
    return vis, msk, corrupt, noise, keep


def losses(p, fc, adj, rw, dr, cfg, train):
    B, N, _ = fc.shape
    H = cfg["H"]
    vis, msk, corrupt, noise, keep = dr
    bi = torch.arange(B)[:, None]
    # view a: visible nodes, masked columns zeroed
    maskb = torch.zeros(B, N, dtype=torch.bool)
    maskb[bi, msk] = True
    C = fc.masked_fill(maskb[:, None, :], 0.0)
    Xa = C[bi, vis]
    Av = adj[bi[:, :, None], vis[:, :, None], vis[:, None, :]]
    za = encoder(p, Xa, rw[bi, vis], vis, gcn_norm(Av), cfg, train)
    # view b: corrupted full graph
    Xb = torch.where(corrupt[:, :, None], noise, fc)
    allidx = torch.arange(N).expand(B, N)
    zb = encoder(p, Xb, rw, allidx, gcn_norm(adj * keep), cfg, train)
    # decoder
    d = torch.zeros(B, N, H, dtype=fc.dtype)
    d = d.index_put((bi.expand_as(vis), vis), za @ p["dec/re/W"].T + p["dec/re/b"])
    d = d.index_put((bi.expand_as(msk), msk), p["dec/mask_token"].expand(B, msk.shape[1], H))
    h = torch.cat([p["embed/token"].expand(B, 1, -1), d + p["embed/node"]], 1)
    Ahat = gcn_norm(adj)
    for l in range(cfg["Ld"]):
        h = block(p, f"dec/{l}", h, Ahat, cfg["nh"], cfg["pd"], train)
    y = h[:, 1:][bi, msk] @ p["dec/out/W"].T + p["dec/out/b"]
    rec = Fn.smooth_l1_loss(y, fc[bi, msk], beta=1.0)
    s = za @ za.transpose(1, 2) / math.sqrt(H)
    off = ~torch.eye(vis.shape[1], dtype=torch.bool).expand(B, -1, -1)
    adj_l = Fn.binary_cross_entropy_with_logits(s[off], Av[off])
    cl = nt_xent(projection(p, pool(p, za, vis, N)), projection(p, pool(p, zb, allidx, N)), cfg["tau"])
    total = cfg["lam"][0] * rec + cfg["lam"][1] * adj_l + cfg["lam"][2] * cl
    return total, (rec, adj_l, cl)


def make_data(B, N, k, dtype, seed=0):
    rng = np.random.default_rng(seed)
    fc = rng.uniform(-0.5, 0.5, (B, N, N))
    fc = np.triu(fc, 1)
    fc = fc + fc.transpose(0, 2, 1) + np.eye(N)
    a = np.triu(rng.uniform(size=(B, N, N)) < 0.15, 1)
    a = a | a.transpose(0, 2, 1)
    rw = rng.uniform(size=(B, N, k))
    return (torch.tensor(fc, dtype=dtype), torch.tensor(a, dtype=dtype), torch.tensor(rw, dtype=dtype))


def main():
    ap = argparse.ArgumentParser()
    for a in ("H", "L", "N", "B"):
        ap.add_argument(a, type=int)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--readout", default="region", choices=["region", "mean"])
    o = ap.parse_args()
    torch.set_num_threads(o.threads)
    H, N, B = o.H, o.N, o.B
    cfg = dict(H=H, nh=4, F=2 * H, k=5, L=o.L, Ld=1, P=128, N=N, pd=0.1, p_node=0.1, p_edge=0.1,
               tau=0.2, lam=(1.0, 0.1, 0.01), mask_ratio=0.4)
    M = min(int(math.floor(cfg["mask_ratio"] * N + 0.5)), N - 4)
    dt = torch.float32
    p, decay = build_params(H, cfg["nh"], cfg["F"], cfg["k"], o.L, 1, cfg["P"], N, dt, readout=o.readout)
    fc, adj, rw = make_data(B, N, cfg["k"], dt)
    gen = torch.Generator().manual_seed(3)
    groups = [{"params": [p[n] for n in p if decay[n]], "weight_decay": 1e-4},
              {"params": [p[n] for n in p if not decay[n]], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    params = list(p.values())
    ts, cpu = [], 0.0
    for s in range(o.warmup + o.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        dr = draws(B, N, M, cfg, dt, gen)
        opt.zero_grad(set_to_none=True)
        tot, _ = losses(p, fc, adj, rw, dr, cfg, True)
        tot.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        ts.append(time.perf_counter() - t0)
        if s >= o.warmup:
            cpu += time.process_time() - c0
    ts = sorted(ts[o.warmup:])
    med = ts[len(ts) // 2]
    print("torch %s threads %d" % (torch.__version__, torch.get_num_threads()))
    print("step_ms_median %.3f\nstep_ms_best %.3f" % (med * 1e3, ts[0] * 1e3))
    print("graphs_per_s %.2f" % (B / med))
    print("graphs_per_s_best %.2f" % (B / ts[0]))
    print("cpu_ms_per_step %.3f" % (cpu / o.steps * 1e3))
    print("peak_rss_mb %.1f" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0))


if __name__ == "__main__":
    main()
