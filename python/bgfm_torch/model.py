"""model.py: the bgfm model (docs/model.md) as a PyTorch nn.Module, built from the
metadata of a `bgfm export` file, with a strict loader and a writer.

Written from docs/model.md (sections 1-4): population input normalisation, node inputs
[Ct row | zeros to N_max | RWSE], input layer + node identity embeddings, the atlas token
as row 0, L blocks (symmetric-normalised GCN on the region rows, multi-head
self-attention over all rows, feed-forward, post-LayerNorms, dropout in training), and
the readout (region or mean). The pretraining parts (decoder, projection head) exist
when the file holds them (`bgfm export --full`). Parameter names are the safetensors
names (docs/export.md, "The module and its names": the table from bgfm's names).

Not the losses or a trainer; not a reader of bgfm's HDF5 checkpoints.
"""
import math
from dataclasses import dataclass
from typing import List

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as Fn

from . import safetensors as st

FORMAT = "bgfm-safetensors"
FORMAT_VERSION = 1
LN_EPS = 1e-5


class BGFMLoadError(ValueError):
    """A file that does not fit the model (names the file and the first bad tensor)."""


@dataclass
class Config:
    """The architecture (docs/model.md symbols)."""
    atlases: List[str]
    atlas_nodes: List[int]
    H: int = 128
    nh: int = 4
    F: int = 256
    k: int = 5
    L: int = 2
    Ld: int = 1
    P: int = 128
    N_max: int = 400
    readout: str = "region"
    readout_dim: int = 8
    input_norm: str = "population"
    pop_rank: int = 0
    embedding: str = "encoder"
    pcs: int = 0

    @property
    def D_in(self):
        return self.N_max + self.k

    @classmethod
    def from_metadata(cls, meta, path="metadata"):
        def need(key):
            if key not in meta:
                raise BGFMLoadError(f"{path}: __metadata__ has no {key}")
            return meta[key]

        def num(key):
            v = need(key)
            if not v.isdigit():
                raise BGFMLoadError(f"{path}: __metadata__ {key} = {v!r} is not an integer")
            return int(v)
        if meta.get("format") != FORMAT:
            raise BGFMLoadError(f"{path}: __metadata__ format is {meta.get('format')!r}, not "
                                f"{FORMAT}: not a bgfm model")
        if num("format_version") > FORMAT_VERSION:
            raise BGFMLoadError(f"{path}: format_version {meta['format_version']} is newer than "
                                f"this bgfm_torch reads ({FORMAT_VERSION})")
        atl = need("atlases").split(",")
        nodes = [int(x) if x.isdigit() else -1 for x in need("atlas_nodes").split(",")]
        if len(atl) != len(nodes) or min(nodes) < 2 or len(set(atl)) != len(atl):
            raise BGFMLoadError(f"{path}: __metadata__ atlases / atlas_nodes do not match")
        c = cls(atl, nodes, **{k: num(k) for k in ("H", "nh", "F", "k", "L", "Ld", "P", "N_max")},
                readout=need("readout"), input_norm=need("input_norm"))
        if c.readout not in ("region", "mean") or c.input_norm not in ("population", "none"):
            raise BGFMLoadError(f"{path}: __metadata__ readout must be region|mean and "
                                "input_norm population|none")
        c.readout_dim = num("readout_dim") if c.readout == "region" else 0
        # files written before the population head (model.md section 11) have neither key
        c.pop_rank = num("pop_rank") if "pop_rank" in meta else 0
        c.embedding = meta.get("embedding", "encoder")
        c.pcs = num("pcs") if "pcs" in meta else 0
        if c.embedding not in ("encoder", "encoder+pop", "pop", "pcs+pop") or c.pop_rank > 256 or \
                (c.embedding != "encoder" and c.pop_rank < 1) or \
                ((c.embedding == "pcs+pop") != (c.pcs > 0)) or c.pcs > c.H:
            raise BGFMLoadError(f"{path}: __metadata__ embedding must be encoder|encoder+pop|pop|"
                                "pcs+pop, a head (pop_rank 1..256) is needed for the last three, "
                                "and pcs+pop needs pcs 1..H (every other embedding none)")
        if c.H % c.nh or max(nodes) > c.N_max or ("D_in" in meta and num("D_in") != c.D_in):
            raise BGFMLoadError(f"{path}: __metadata__ describes no valid model (H % nh, "
                                "atlas nodes <= N_max, D_in = N_max + k)")
        return c

    def metadata(self, full):
        """The architecture keys of the metadata (strings, as bgfm writes them)."""
        m = {"format": FORMAT, "format_version": str(FORMAT_VERSION),
             "contents": "full" if full else "encoder", "atlases": ",".join(self.atlases),
             "atlas_nodes": ",".join(str(n) for n in self.atlas_nodes),
             "readout": self.readout, "input_norm": self.input_norm,
             "readout_dim": str(self.readout_dim if self.readout == "region" else 0),
             "D_in": str(self.D_in), "layer_norm_eps": "1e-05",
             "pop_rank": str(self.pop_rank), "embedding": self.embedding}
        if self.pcs:
            m["pcs"] = str(self.pcs)
        for k in ("H", "nh", "F", "k", "L", "Ld", "P", "N_max"):
            m[k] = str(getattr(self, k))
        return m


def gcn_norm(adj):
    """Ahat = Dt^-1/2 (A + I) Dt^-1/2, Dt = row sums of A + I (model.md section 2)."""
    a = adj + torch.eye(adj.shape[-1], dtype=adj.dtype, device=adj.device)
    d = a.sum(-1).rsqrt()
    return d[..., :, None] * a * d[..., None, :]


class Attention(nn.Module):
    def __init__(self, H, nh, p_drop):
        super().__init__()
        self.nh = nh
        self.q, self.k, self.v, self.o = (nn.Linear(H, H) for _ in range(4))
        self.drop = nn.Dropout(p_drop)

    def forward(self, h):  # h (B, T, H)
        B, T, H = h.shape
        d = H // self.nh

        def heads(x):
            return x.view(B, T, self.nh, d).transpose(1, 2)  # (B, nh, T, d)
        s = heads(self.q(h)) @ heads(self.k(h)).transpose(-1, -2) / math.sqrt(d)
        a = self.drop(torch.softmax(s, -1)) @ heads(self.v(h))
        return self.o(a.transpose(1, 2).reshape(B, T, H))


class FFN(nn.Module):
    def __init__(self, H, F):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(H, F), nn.Linear(F, H)

    def forward(self, h):
        return self.fc2(torch.relu(self.fc1(h)))


class Block(nn.Module):
    """One encoder (or decoder) block of model.md section 2; row 0 is the atlas token."""

    def __init__(self, H, nh, F, p_drop):
        super().__init__()
        self.gcn = nn.Linear(H, H)
        self.ln_g = nn.LayerNorm(H, eps=LN_EPS)
        self.attn = Attention(H, nh, p_drop)
        self.ln_1 = nn.LayerNorm(H, eps=LN_EPS)
        self.ffn = FFN(H, F)
        self.ln_2 = nn.LayerNorm(H, eps=LN_EPS)
        self.drop = nn.Dropout(p_drop)

    def forward(self, h, ahat):  # h (B, T, H), ahat (B, T-1, T-1)
        tok, hr = h[:, :1], h[:, 1:]
        u = ahat @ Fn.linear(hr, self.gcn.weight) + self.gcn.bias  # bias after propagation
        h = torch.cat([tok, self.ln_g(hr + torch.relu(u))], 1)
        h = self.ln_1(h + self.drop(self.attn(h)))
        return self.ln_2(h + self.drop(self.ffn(h)))


class Embeddings(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.token = nn.Embedding(len(cfg.atlases), cfg.H)
        self.node = nn.ModuleDict({a: nn.Embedding(n, cfg.H)
                                   for a, n in zip(cfg.atlases, cfg.atlas_nodes)})


class RegionReadout(nn.Module):
    """e = (N / n) W_a [Wc z_0; ...; Wc z_{N-1}] + b, absent regions 0 (model.md section 2)."""

    def __init__(self, cfg):
        super().__init__()
        self.proj = nn.Linear(cfg.H, cfg.readout_dim, bias=False)
        self.atlas = nn.ModuleDict({a: nn.Linear(n * cfg.readout_dim, cfg.H, bias=False)
                                    for a, n in zip(cfg.atlases, cfg.atlas_nodes)})
        self.bias = nn.Parameter(torch.zeros(cfg.H))

    def forward(self, z, idx, atlas, N):
        B, n, _ = z.shape
        p = self.proj(z)
        v = p.new_zeros(B, N, p.shape[-1]).scatter(1, idx[..., None].expand_as(p), p) * (N / n)
        return self.atlas[atlas](v.reshape(B, -1)) + self.bias


class InputNorm(nn.Module):
    """The fitted population mean and sd of every FC entry (buffers, never trained)."""

    def __init__(self, N):
        super().__init__()
        self.register_buffer("mean", torch.zeros(N, N))
        self.register_buffer("std", torch.ones(N, N))


class PopHead(nn.Module):
    """The population head of one atlas (model.md section 11): r directions over the upper
    triangle of the input-normalised FC, fitted by bgfm after pretraining from which graphs
    are windows of one scan (buffers, never trained)."""

    def __init__(self, N, r):
        super().__init__()
        self.register_buffer("weight", torch.zeros(r, N * (N - 1) // 2))
        self.register_buffer("bias", torch.zeros(r))
        self.N = N

    def forward(self, C):
        iu = torch.triu_indices(self.N, self.N, 1, device=C.device)
        return C[:, iu[0], iu[1]] @ self.weight.T + self.bias


class ReadoutAxes(nn.Module):
    """The readout's leading principal axes of one atlas (model.md section 11, embedding
    pcs+pop): r rows over the encoder's H numbers, fitted by bgfm after pretraining on the
    graphs it read (buffers, never trained)."""

    def __init__(self, H, r):
        super().__init__()
        self.register_buffer("weight", torch.zeros(r, H))
        self.register_buffer("bias", torch.zeros(r))

    def forward(self, e):
        return e @ self.weight.T + self.bias


class Decoder(nn.Module):
    """GMAE decoder (model.md section 3): blocks registered as dec.0, dec.1, ..."""

    def __init__(self, cfg, p_drop):
        super().__init__()
        self.re = nn.Linear(cfg.H, cfg.H)
        self.mask_token = nn.Parameter(torch.zeros(cfg.H))
        for l in range(cfg.Ld):
            self.add_module(str(l), Block(cfg.H, cfg.nh, cfg.F, p_drop))
        self.out = nn.Linear(cfg.H, cfg.N_max)
        self.n_blocks = cfg.Ld

    def blocks(self):
        return [getattr(self, str(l)) for l in range(self.n_blocks)]


class Projection(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(cfg.H, cfg.H), nn.Linear(cfg.H, cfg.P)

    def forward(self, e):
        return Fn.normalize(self.fc2(torch.relu(self.fc1(e))), dim=-1)


class BrainGFM(nn.Module):
    """The encoder (full=False) or the whole pretraining model (full=True)."""

    def __init__(self, cfg, full=False, dropout=0.1):
        super().__init__()
        self.cfg, self.full = cfg, full
        H = cfg.H
        self.input = nn.Linear(cfg.D_in, H)
        self.embed = Embeddings(cfg)
        self.enc = nn.ModuleList(Block(H, cfg.nh, cfg.F, dropout) for _ in range(cfg.L))
        if cfg.readout == "region":
            self.readout = RegionReadout(cfg)
        if full:
            self.dec = Decoder(cfg, dropout)
            self.proj = Projection(cfg)
        if cfg.input_norm == "population":
            self.norm = nn.ModuleDict({a: InputNorm(n) for a, n in zip(cfg.atlases, cfg.atlas_nodes)})
        if cfg.pop_rank:
            self.pop = nn.ModuleDict({a: PopHead(n, cfg.pop_rank) for a, n in zip(cfg.atlases, cfg.atlas_nodes)})
        if cfg.pcs:
            self.pcs = nn.ModuleDict({a: ReadoutAxes(H, cfg.pcs) for a in cfg.atlases})
        self.reset_parameters()

    def reset_parameters(self):
        """model.md section 5: Xavier-uniform matrices, zero biases, LayerNorm 1 and 0,
        tokens / embeddings / mask token N(0, 0.02^2)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, 0.0, 0.02)
        if self.full:
            nn.init.normal_(self.dec.mask_token, 0.0, 0.02)
        if self.cfg.readout == "region":
            nn.init.zeros_(self.readout.bias)

    @property
    def embed_dim(self):
        """Width of forward()'s embedding: the readout's H (or its pcs axes), pop_rank, or
        both (embedding)."""
        c = self.cfg
        enc = c.pcs if c.embedding == "pcs+pop" else c.H if c.embedding != "pop" else 0
        return enc + (c.pop_rank if c.embedding != "encoder" else 0)

    def _atlas(self, atlas):
        if atlas not in self.embed.node:
            raise KeyError(f"atlas {atlas!r} is not one of the model's ({', '.join(self.cfg.atlases)})")
        return self.cfg.atlases.index(atlas)

    def normalise(self, fc, atlas):
        """Ct = (C - mean_a) / sd_a with input_norm population (model.md section 1), else C."""
        if self.cfg.input_norm != "population":
            return fc
        nm = self.norm[atlas]
        return (fc - nm.mean) / nm.std

    def encode(self, fc, adj, rwse, atlas, nodes=None, mask_columns=True):
        """Node embeddings z (B, n, H) of the node set `nodes` (B, n) ascending original
        indices (default: every node), and the index tensor. fc, adj (B, N, N) and rwse
        (B, N, k) as the graph store holds them. With a node subset, the FC columns of the
        other nodes are zeroed in the inputs when mask_columns (model.md section 3)."""
        p = next(self.parameters())
        fc, adj, rwse = (x.to(device=p.device, dtype=p.dtype) for x in (fc, adj, rwse))
        ai = self._atlas(atlas)
        B, N = fc.shape[0], fc.shape[1]
        if N != self.cfg.atlas_nodes[ai] or rwse.shape[-1] != self.cfg.k:
            raise ValueError(f"graphs of atlas {atlas} with {N} nodes and {rwse.shape[-1]} RWSE "
                             f"steps; the model has {self.cfg.atlas_nodes[ai]} and {self.cfg.k}")
        C = self.normalise(fc, atlas)
        if nodes is None:
            idx = torch.arange(N, device=p.device).expand(B, N)
        else:
            idx = nodes.to(p.device)
            if mask_columns:
                keep = torch.zeros(B, N, dtype=C.dtype, device=p.device).scatter(1, idx, 1.0)
                C = C * keep[:, None, :]
        n = idx.shape[1]
        rows = idx[..., None]
        x = C.new_zeros(B, n, self.cfg.D_in)
        x[..., :N] = C.gather(1, rows.expand(B, n, N))
        x[..., self.cfg.N_max:] = rwse.gather(1, rows.expand(B, n, self.cfg.k))
        h = self.input(x) + self.embed.node[atlas].weight[idx]
        a = adj.gather(1, rows.expand(B, n, N)).gather(2, idx[:, None, :].expand(B, n, n))
        ahat = gcn_norm(a)
        h = torch.cat([self.embed.token.weight[ai].expand(B, 1, -1), h], 1)
        for blk in self.enc:
            h = blk(h, ahat)
        return h[:, 1:], idx

    def pool(self, z, idx, atlas, N):
        """The graph embedding (B, H) of node embeddings z of nodes idx (model.md section 2)."""
        if self.cfg.readout == "mean":
            return z.mean(1)
        return self.readout(z, idx, atlas, N)

    def forward(self, fc, adj, rwse, atlas):
        """Graph embeddings (B, embed_dim) of B full graphs of one atlas: what bgfm's probe
        computes in eval mode (no masking, no corruption; dropout only in training): the
        encoder's readout (with pcs+pop: on its leading principal axes), then (every
        embedding but encoder) the population head."""
        parts = []
        if self.cfg.embedding != "pop":
            z, idx = self.encode(fc, adj, rwse, atlas)
            e = self.pool(z, idx, atlas, fc.shape[1])
            parts.append(self.pcs[atlas](e) if self.cfg.embedding == "pcs+pop" else e)
        if self.cfg.embedding != "encoder":
            self._atlas(atlas)
            p = next(self.parameters())
            parts.append(self.pop[atlas](self.normalise(fc.to(device=p.device, dtype=p.dtype), atlas)))
        return torch.cat(parts, 1) if len(parts) > 1 else parts[0]

    def decode(self, z, idx, adj, atlas):
        """GMAE decoder (model.md section 3): predictions y (B, N, N_max) of every node
        from the visible nodes' z (B, n, H) at idx (B, n); the first N columns predict Ct."""
        if not self.full:
            raise RuntimeError("an encoder-only model has no decoder (export with --full)")
        ai, (B, N) = self._atlas(atlas), adj.shape[:2]
        adj = adj.to(z.dtype)
        d = self.dec.mask_token.expand(B, N, -1).clone()
        d = d.scatter(1, idx[..., None].expand(-1, -1, z.shape[-1]), self.dec.re(z))
        d = d + self.embed.node[atlas].weight
        h = torch.cat([self.embed.token.weight[ai].expand(B, 1, -1), d], 1)
        ahat = gcn_norm(adj)
        for blk in self.dec.blocks():
            h = blk(h, ahat)
        return self.dec.out(h[:, 1:])

    def project(self, e):
        """The L2-normalised projection q(e) of graph embeddings (model.md section 4)."""
        if not self.full:
            raise RuntimeError("an encoder-only model has no projection head (export with --full)")
        return self.proj(e)


def load(path, dropout=0.1, map_location="cpu"):
    """The model of a `bgfm export` file, strictly: every tensor of the file is a tensor
    of the model its metadata describes, with that shape and float32 finite values, and
    every tensor of the model is in the file. BGFMLoadError / SafetensorsError otherwise,
    naming the file and the first bad tensor. Returned in eval mode."""
    tensors, meta = st.load_file(path)
    cfg = Config.from_metadata(meta, path)
    contents = meta.get("contents")
    if contents not in ("encoder", "full"):
        raise BGFMLoadError(f"{path}: __metadata__ contents must be encoder or full")
    model = BrainGFM(cfg, full=contents == "full", dropout=dropout)
    want = model.state_dict()
    for name, a in tensors.items():
        if name not in want:
            raise BGFMLoadError(f"{path}: unexpected tensor {name}: not a tensor of the "
                                f"{'model' if model.full else 'encoder'} the metadata describes")
        if a.dtype != np.float32:
            raise BGFMLoadError(f"{path}: tensor {name} has dtype {a.dtype}; bgfm models are float32")
        if tuple(a.shape) != tuple(want[name].shape):
            raise BGFMLoadError(f"{path}: tensor {name} has shape {list(a.shape)}; the model the "
                                f"metadata describes needs {list(want[name].shape)}")
        if not np.isfinite(a).all():
            raise BGFMLoadError(f"{path}: tensor {name} holds a NaN or Inf")
    for name in want:
        if name not in tensors:
            raise BGFMLoadError(f"{path}: tensor {name} is missing (the model the metadata "
                                "describes has it)")
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
    model.metadata = dict(meta)
    return model.to(map_location).eval()


def save(model, path, metadata=None):
    """Write the model as a bgfm safetensors file (float32), readable by `init:` of a
    pretrain stage and by load(). The metadata is the loaded file's (corpus keys kept),
    the architecture keys from the model, then `metadata` (str -> str) on top."""
    meta = dict(getattr(model, "metadata", {}))
    meta.update(model.cfg.metadata(model.full))
    meta.update(metadata or {})
    tensors = {k: v.detach().to("cpu", torch.float32).numpy() for k, v in model.state_dict().items()}
    st.save_file(tensors, path, meta)


def new_model(atlases, atlas_nodes, full=False, dropout=0.1, **arch):
    """A fresh model (model.md section 5 initialisation) of the given architecture."""
    return BrainGFM(Config(list(atlases), list(atlas_nodes), **arch), full=full, dropout=dropout)
