#!/usr/bin/python3
"""probe_embed.py CKPT GRAPHS_DIR EMBEDDINGS.h5: the probe's pretrained graph
embeddings against the independent PyTorch float64 encoder of docs/model.md
(tests/reference/model_torch.py: encoder(), readout(), node_inputs()): e = the
checkpoint's readout (the mean of the region rows, or the region readout) of the last
encoder block on the full graph, no dropout/masking/corruption; then, under the model's
`embedding` (encoder+pop, pop, encoder: docs/model.md section 11), the population head's
numbers W z + b of the input-normalised FC upper triangle (numpy, float64). Relative L2
error per graph < 1e-4; the embedding width must be the model's. Prints TAP lines."""
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
with torch.no_grad():
    for j in pick:
        g = graphs[j]
        an = names[idx["graphs/atlas"][g]]
        sh = h5py.File(os.path.join(gdir, shards[idx["graphs/shard"][g]]), "r")
        row = idx["graphs/row"][g]
        C = torch.tensor(sh["graphs/%s/fc" % an][row].astype(np.float64))
        A = torch.tensor(sh["graphs/%s/adj" % an][row].astype(np.float64))
        R = torch.tensor(sh["graphs/%s/rwse" % an][row].astype(np.float64))
        N = C.shape[0]
        if "norm/%s/mean" % an in p.t:  # population input normalisation (model.md section 1)
            C = (C - p["norm/%s/mean" % an].detach()) / p["norm/%s/std" % an].detach()
        parts = []
        if embed != "pop":
            X = mt.node_inputs(C, R, cfg, N)
            z = mt.encoder(p, cfg, an, atl.index(an), X, torch.arange(N), A)
            parts.append(mt.readout(p, cfg, an, z, torch.arange(N), N).numpy())
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
sys.exit(0 if ok and d > 1e-3 else 1)
