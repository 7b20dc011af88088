"""bgfm_torch: bgfm's brain-graph model in PyTorch (docs/export.md).

    import bgfm_torch as bt
    model = bt.load("model.safetensors")          # strict: every tensor used and checked
    store = bt.GraphStore("runs/demo/connectivity")
    emb, idx = bt.embed_store(model, store)        # = bgfm's probe embeddings
    bt.save(model, "edited.safetensors")           # back to bgfm: `init: edited.safetensors`

Pure PyTorch + numpy + h5py (Debian 12's python3-torch, python3-numpy, python3-h5py);
safetensors read and written without the safetensors package.
"""
from .data import AtlasBatchSampler, GraphStore, collate, embed_store
from .model import BGFMLoadError, BrainGFM, Config, load, new_model, save
from .safetensors import SafetensorsError, load_file, save_file

__all__ = ["AtlasBatchSampler", "GraphStore", "collate", "embed_store", "BGFMLoadError",
           "BrainGFM", "Config", "load", "new_model", "save", "SafetensorsError", "load_file",
           "save_file"]
