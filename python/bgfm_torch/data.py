"""data.py: a bgfm graph store (the connectivity stage's index.h5 + shard-NNNNN.h5,
docs/formats.md "Graph store") as a torch.utils.data.Dataset, a sampler that keeps each
batch to one atlas (the model's batches are per atlas), a collate function, and the
graph embeddings of a whole store. h5py + numpy + torch only. Not a writer of stores.
"""
import os

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


def _s(x):
    return x.decode() if isinstance(x, bytes) else str(x)


class GraphStore(Dataset):
    """Graphs of a bgfm graph store. `path`: index.h5 or the folder holding it.
    `atlases`: keep only these atlases; `indices`: keep only these store indices.
    An item is a dict: fc (N, N) float32, adj (N, N) float32 0/1, rwse (N, k) float32,
    flagged (N) uint8, atlas (str), index (store index), subject, window, label,
    participant_id, site. Shards are opened lazily, once per process (DataLoader workers
    each open their own)."""

    def __init__(self, path, atlases=None, indices=None):
        if os.path.isdir(path):
            path = os.path.join(path, "index.h5")
        self.path, self.root = path, os.path.dirname(os.path.abspath(path))
        with h5py.File(path, "r") as f:
            if _s(f.attrs.get("format", b"")) != "bgfm-graphs-index":
                raise ValueError(f"{path}: not a bgfm graph store index (format attribute)")
            self.shards = [_s(x) for x in f["shards"][()]]
            self.atlases = [_s(x) for x in f["atlases"][()]]
            self.atlas_nodes = [int(x) for x in f["atlas_nodes"][()]]
            self.rwse_steps = int(f.attrs["rwse_steps"])
            g = f["graphs"]
            self.meta = {k: g[k][()] for k in ("atlas", "shard", "row", "subject", "window", "label")}
            self.participant_id = [_s(x) for x in g["participant_id"][()]]
            self.site = [_s(x) for x in g["site"][()]]
        keep = np.arange(len(self.meta["atlas"]))
        if atlases is not None:
            unknown = set(atlases) - set(self.atlases)
            if unknown:
                raise KeyError(f"{path}: no atlas {sorted(unknown)} (it has {self.atlases})")
            ids = [self.atlases.index(a) for a in atlases]
            keep = keep[np.isin(self.meta["atlas"][keep], ids)]
        if indices is not None:
            keep = np.intersect1d(keep, np.asarray(indices, dtype=np.int64))
        self.indices = keep
        self._files, self._pid = {}, None

    def __len__(self):
        return len(self.indices)

    def atlas_of(self, i):
        """Atlas name of item i (no shard read)."""
        return self.atlases[self.meta["atlas"][self.indices[i]]]

    def _shard(self, j):
        if self._pid != os.getpid():  # a forked worker: its own handles
            self._files, self._pid = {}, os.getpid()
        if j not in self._files:
            self._files[j] = h5py.File(os.path.join(self.root, self.shards[j]), "r")
        return self._files[j]

    def __getitem__(self, i):
        g = int(self.indices[i])
        m = self.meta
        a = self.atlases[m["atlas"][g]]
        grp = self._shard(int(m["shard"][g]))["graphs"][a]
        r = int(m["row"][g])
        return {"fc": torch.from_numpy(grp["fc"][r].astype(np.float32)),
                "adj": torch.from_numpy(grp["adj"][r].astype(np.float32)),
                "rwse": torch.from_numpy(grp["rwse"][r].astype(np.float32)),
                "flagged": torch.from_numpy(grp["flagged"][r].astype(np.uint8)),
                "atlas": a, "index": g, "subject": int(m["subject"][g]),
                "window": int(m["window"][g]), "label": int(m["label"][g]),
                "participant_id": self.participant_id[g], "site": self.site[g]}


def collate(items):
    """Stack items of ONE atlas into a batch: fc, adj (B, N, N), rwse (B, N, k), atlas
    (str), and index/subject/window/label as int64 tensors, participant_id/site lists."""
    atl = {it["atlas"] for it in items}
    if len(atl) != 1:
        raise ValueError(f"a batch mixes atlases {sorted(atl)}; use AtlasBatchSampler")
    out = {k: torch.stack([it[k] for it in items]) for k in ("fc", "adj", "rwse", "flagged")}
    for k in ("index", "subject", "window", "label"):
        out[k] = torch.tensor([it[k] for it in items], dtype=torch.int64)
    out["participant_id"] = [it["participant_id"] for it in items]
    out["site"] = [it["site"] for it in items]
    out["atlas"] = atl.pop()
    return out


class AtlasBatchSampler(Sampler):
    """Batches of dataset positions, each of one atlas: in store order, or shuffled
    (positions within each atlas, then the batches) by a numpy generator of `seed`."""

    def __init__(self, store, batch_size, shuffle=False, seed=0, drop_last=False):
        self.store, self.batch_size, self.shuffle = store, batch_size, shuffle
        self.seed, self.drop_last, self.epoch = seed, drop_last, 0

    def _batches(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        by = {}
        for i in range(len(self.store)):
            by.setdefault(self.store.atlas_of(i), []).append(i)
        out = []
        for pos in by.values():
            if self.shuffle:
                rng.shuffle(pos)
            for s in range(0, len(pos), self.batch_size):
                b = pos[s:s + self.batch_size]
                if len(b) == self.batch_size or not self.drop_last:
                    out.append(b)
        if self.shuffle:
            rng.shuffle(out)
        return out

    def __iter__(self):
        yield from self._batches()
        self.epoch += 1

    def __len__(self):
        return len(self._batches())


@torch.no_grad()
def embed_store(model, store, batch_size=32, device=None):
    """Graph embeddings (len(store), H) float64 numpy, in store order, and the store
    indices: the model in eval mode on every full graph (as bgfm's probe embeds)."""
    was = model.training
    model.eval()
    if device is not None:
        model.to(device)
    dev = next(model.parameters()).device
    out = np.zeros((len(store), model.embed_dim))
    loader = torch.utils.data.DataLoader(store, batch_sampler=AtlasBatchSampler(store, batch_size),
                                         collate_fn=collate)
    pos = 0
    for b in loader:
        e = model(b["fc"].to(dev), b["adj"].to(dev), b["rwse"].to(dev), b["atlas"])
        n = e.shape[0]
        out[pos:pos + n] = e.double().cpu().numpy()
        pos += n
    model.train(was)
    # AtlasBatchSampler in order visits atlas by atlas: put the rows back in store order
    order = [i for b in AtlasBatchSampler(store, batch_size)._batches() for i in b]
    res = np.zeros_like(out)
    res[order] = out
    return res, store.indices.copy()
