#!/usr/bin/python3
"""probe_embed.py CKPT GRAPHS_DIR EMBEDDINGS.h5: the probe's pretrained graph
embeddings against the independent PyTorch float64 encoder of docs/model.md
(tests/reference/model_torch.py: encoder(), readout(), node_inputs()): e = the
checkpoint's readout (the mean of the region rows, or the region readout) of the last
encoder block on the full graph, no dropout/masking/corruption; then, under the model's
`embedding` (encoder+pop, pop, encoder: docs/model.md section 11), the population head's
numbers W z + b of the input-normalised FC upper triangle (numpy, float64); with
pcs+pop the readout goes through its principal axes pcs/<atlas>/{W,b} first, and those
axes are checked against numpy's eigendecomposition of the covariance of the torch
readouts of every graph pretraining read (/pretrain_graphs): unit variance and
uncorrelated (W S W^T = I), the leading subspace, and b = -W mean. Relative L2 error per
graph < 1e-4; the embedding width must be the model's. Prints TAP lines."""
import os, sys
import h5py, numpy as np, torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_torch as mt

ck, gdir, emb = sys.argv[1], sys.argv[2], sys.argv[3]
c = h5py.File(ck, "r")
p = mt.Params(c["model"])
a = c["model"].attrs
cfg = {k: int(a[k]) for k in ["H", "nh", "F", "k", "L", "Ld", "P", "N_max"]}
cfg["readout"] = mt.s(a["readout"]) if "readout" in a else "mean"
embed = mt.s(a["embedding"]) if "embedding" in a else "encoder"
pop_rank = int(a["pop_rank"]) if "pop_rank" in a else 0
if cfg["readout"] == "region":
    cfg["readout_dim"] = int(a["readout_dim"])
atl = mt.s(a["atlases"]).split(",")
idx = h5py.File(os.path.join(gdir, "index.h5"), "r")
shards = [mt.s(x) for x in idx["shards"][()]]
names = [mt.s(x) for x in idx["atlases"][()]]
E = h5py.File(emb, "r")
worst = 0.0
graphs = E["graph"][()]
pick = list(range(0, len(graphs), max(1, len(graphs) // 12)))


def graph(g):
    """Atlas name, input-normalised FC, adjacency and RWSE of store graph g (torch, float64)."""
    an = names[idx["graphs/atlas"][g]]
    sh = h5py.File(os.path.join(gdir, shards[idx["graphs/shard"][g]]), "r")
    row = idx["graphs/row"][g]
    C = torch.tensor(sh["graphs/%s/fc" % an][row].astype(np.float64))
    A = torch.tensor(sh["graphs/%s/adj" % an][row].astype(np.float64))
    R = torch.tensor(sh["graphs/%s/rwse" % an][row].astype(np.float64))
    if "norm/%s/mean" % an in p.t:  # population input normalisation (model.md section 1)
        C = (C - p["norm/%s/mean" % an].detach()) / p["norm/%s/std" % an].detach()
    return an, C, A, R


def readout(an, C, A, R):
    N = C.shape[0]
    X = mt.node_inputs(C, R, cfg, N)
    z = mt.encoder(p, cfg, an, atl.index(an), X, torch.arange(N), A)
    return mt.readout(p, cfg, an, z, torch.arange(N), N).numpy()


axes_ok = True
if embed == "pcs+pop":
    with torch.no_grad():
        rows = {}
        for g in c["pretrain_graphs"][()]:
            an, C, A, R = graph(g)
            rows.setdefault(an, []).append(readout(an, C, A, R))
    for an, X in sorted(rows.items()):
        X = np.array(X)
        W = c["model/pcs/%s/W" % an][()].astype(np.float64)
        b = c["model/pcs/%s/b" % an][()].astype(np.float64)
        m = X.mean(0)
        S = (X - m).T @ (X - m) / len(X)
        ev, V = np.linalg.eigh(S)
        ev, V = ev[::-1], V[:, ::-1]
        k = W.shape[0]
        white = np.abs(W @ S @ W.T - np.eye(k)).max()
        Vk = V[:, :k]
        outside = np.linalg.norm(W.T - Vk @ (Vk.T @ W.T)) / np.linalg.norm(W)
        berr = np.abs(b + W @ m).max() / max(1e-12, np.abs(b).max())
        signs = all(W[r][np.argmax(np.abs(W[r]))] > 0 for r in range(k))
        good = white < 1e-3 and outside < 1e-3 and berr < 1e-4 and signs
        axes_ok &= good
        print(("ok" if good else "not ok") + " - readout axes of %s (%d graphs, %d rows): W S W^T = I "
              "(max err %.1e), leading subspace (outside %.1e), b = -W mean (%.1e), signs %s"
              % (an, len(X), k, white, outside, berr, signs))
with torch.no_grad():
    for j in pick:
        an, C, A, R = graph(graphs[j])
        N = C.shape[0]
        parts = []
        if embed != "pop":
            e = readout(an, C, A, R)
            if embed == "pcs+pop":
                e = c["model/pcs/%s/W" % an][()].astype(np.float64) @ e + c["model/pcs/%s/b" % an][()]
            parts.append(e)
        if embed != "encoder":
            iu = np.triu_indices(N, 1)
            Wp = c["model/pop/%s/W" % an][()].astype(np.float64)
            bp = c["model/pop/%s/b" % an][()].astype(np.float64)
            parts.append(Wp @ C.numpy()[iu] + bp)
        ref = np.concatenate(parts)
        got = E["pretrained"][j]
        worst = max(worst, np.linalg.norm(got - ref) / np.linalg.norm(ref) if got.shape == ref.shape else np.inf)
ok = worst < 1e-4
print(("ok" if ok else "not ok") + " - pretrained embeddings of %d graphs = torch encoder + %s readout, embedding %s (pop_rank %d) (worst rel err %.2e)" % (len(pick), cfg["readout"], embed, pop_rank, worst))
d = np.abs(E["pretrained"][()] - E["random_init"][()]).max()
print(("ok" if d > 1e-3 else "not ok") + " - random-init embeddings differ from pretrained (max diff %.3g)" % d)
sys.exit(0 if ok and d > 1e-3 and axes_ok else 1)
