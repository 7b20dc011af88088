#!/usr/bin/python3
"""safetensors_ref.py FILE.safetensors CHECKPOINT.h5 encoder|full: an independent check
of a `bgfm export` file (json + numpy + h5py, not python/bgfm_torch): the byte layout of
the safetensors format (little-endian header length, JSON object, space padding to 8,
data_offsets tiling the data exactly, F32 only), the tensor names from the checkpoint's
names by the table of docs/export.md (own regular expressions), every tensor bit-equal
to /model/<name> of the checkpoint, exactly the encoder's (or every) tensor, and the
metadata against the checkpoint's attributes and /state. Prints TAP lines.

Importable: torch_name(bgfm_name) is the documented map."""
import json
import re
import sys

import h5py
import numpy as np

RULES = [  # docs/export.md, "The module and its names": bgfm name -> PyTorch name
    (r"in/W", "input.weight"), (r"in/b", "input.bias"),
    (r"embed/token", "embed.token.weight"), (r"embed/node/([\w-]+)", r"embed.node.\1.weight"),
    (r"readout/Wc", "readout.proj.weight"), (r"readout/W/([\w-]+)", r"readout.atlas.\1.weight"),
    (r"readout/b", "readout.bias"),
    (r"dec/re/W", "dec.re.weight"), (r"dec/re/b", "dec.re.bias"),
    (r"dec/mask_token", "dec.mask_token"),
    (r"dec/out/W", "dec.out.weight"), (r"dec/out/b", "dec.out.bias"),
    (r"proj/W([12])", r"proj.fc\1.weight"), (r"proj/b([12])", r"proj.fc\1.bias"),
    (r"norm/([\w-]+)/(mean|std)", r"norm.\1.\2"),
    (r"pop/([\w-]+)/W", r"pop.\1.weight"), (r"pop/([\w-]+)/b", r"pop.\1.bias"),
    (r"pcs/([\w-]+)/W", r"pcs.\1.weight"), (r"pcs/([\w-]+)/b", r"pcs.\1.bias"),
    (r"(enc|dec)/(\d+)/(gcn)/W", r"\1.\2.\3.weight"), (r"(enc|dec)/(\d+)/(gcn)/b", r"\1.\2.\3.bias"),
    (r"(enc|dec)/(\d+)/(ln_g|ln_1|ln_2)/gamma", r"\1.\2.\3.weight"),
    (r"(enc|dec)/(\d+)/(ln_g|ln_1|ln_2)/beta", r"\1.\2.\3.bias"),
    (r"(enc|dec)/(\d+)/attn/W([qkvo])", r"\1.\2.attn.\3.weight"),
    (r"(enc|dec)/(\d+)/attn/b([qkvo])", r"\1.\2.attn.\3.bias"),
    (r"(enc|dec)/(\d+)/ffn/W([12])", r"\1.\2.ffn.fc\3.weight"),
    (r"(enc|dec)/(\d+)/ffn/b([12])", r"\1.\2.ffn.fc\3.bias"),
]


def torch_name(b):
    hits = [re.sub(f"^{p}$", t, b) for p, t in RULES if re.fullmatch(p, b)]
    assert len(hits) == 1, (b, hits)
    return hits[0]


def s(x):
    return x.decode() if isinstance(x, bytes) else str(x)


def main(path, ckpt, contents):
    results = []

    def check(name, cond):
        results.append(bool(cond))
        print(("ok" if cond else "not ok") + " - " + name)
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    check("header length within the file and a multiple of 8", 8 + n <= len(raw) and n % 8 == 0)
    text = raw[8:8 + n].decode("utf-8")
    check("header padded with spaces only", text.rstrip(" ").endswith("}") and
          set(text[len(text.rstrip(" ")):]) <= {" "})
    hdr = json.loads(text)
    check("first key is __metadata__", list(hdr)[0] == "__metadata__")
    meta = hdr.pop("__metadata__")
    data = raw[8 + n:]
    spans = sorted((e["data_offsets"][0], e["data_offsets"][1], k) for k, e in hdr.items())
    at, tiled = 0, True
    for b, e, k in spans:
        tiled &= b == at and e - b == 4 * int(np.prod(hdr[k]["shape"]))
        at = e
    check("data_offsets tile the data exactly (no gap, overlap or trailing byte)",
          tiled and at == len(data))
    check("every dtype is F32", all(e["dtype"] == "F32" for e in hdr.values()))
    check("tensors in name order, data in header order",
          list(hdr) == sorted(hdr) and [k for _, _, k in spans] == list(hdr))
    f = h5py.File(ckpt, "r")
    names = []
    f["model"].visit(lambda x: names.append(x) if isinstance(f["model"][x], h5py.Dataset) else None)
    keep = [x for x in names if contents == "full" or not x.startswith(("dec/", "proj/"))]
    want = {torch_name(x): x for x in keep}
    check(f"the tensors are exactly the checkpoint's {contents} ({len(want)})", set(hdr) == set(want))
    same = True
    for k, e in hdr.items():
        if k not in want:
            same = False
            continue
        a = np.frombuffer(data[e["data_offsets"][0]:e["data_offsets"][1]], "<f4").reshape(e["shape"])
        ref = f["model"][want[k]][()]
        same &= a.shape == ref.shape and a.tobytes() == ref.astype("<f4").tobytes()
    check("every tensor bit-equal to the checkpoint's", same)
    at_ = f["model"].attrs
    arch = {k: str(int(at_[k])) for k in ("H", "nh", "F", "k", "L", "Ld", "P", "N_max", "D_in")}
    arch.update(atlases=s(at_["atlases"]), readout=s(at_.get("readout", "mean")),
                atlas_nodes=",".join(str(int(x)) for x in at_["atlas_nodes"]),
                input_norm=s(at_.get("input_norm", "none")), contents=contents,
                readout_dim=str(int(at_["readout_dim"])) if "readout_dim" in at_ else "0",
                format="bgfm-safetensors", format_version="1",
                pop_rank=str(int(at_["pop_rank"])) if "pop_rank" in at_ else "0",
                embedding=s(at_.get("embedding", "encoder")))
    if "pop_site" in at_ and int(arch["pop_rank"]) > 0:  # how the head was fitted
        arch.update(pop_site=s(at_["pop_site"]))
    check("metadata: the architecture of /model", all(meta.get(k) == v for k, v in arch.items()))
    corpus = {"config": s(f["state"].attrs["config"]), "step": str(int(f["state/step"][()])),
              "epoch": str(int(f["state/epoch"][()])), "seed": str(int(f["state/seed"][()])),
              "protocol": s(f.attrs["protocol"]), "pretrain_graphs": str(len(f["pretrain_graphs"])),
              "source_sha256_model": s(f.attrs["sha256_model"])}
    check("metadata: the corpus (config, protocol, pretraining graphs, state)",
          all(meta.get(k) == v for k, v in corpus.items()) and meta.get("bgfm_version"))
    check("metadata values are strings", all(isinstance(v, str) for v in meta.values()))
    return all(results)


if __name__ == "__main__":
    sys.exit(0 if main(*sys.argv[1:4]) else 1)
