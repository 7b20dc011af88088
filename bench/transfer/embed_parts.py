#!/usr/bin/python3
"""embed_parts.py: which part of the probe's embedding carries what (docs/results.md
section 12i). Reads a probe's report/embeddings.h5 (`/pretrained`, `encoder+pop`: the
readout's H numbers, then the head's) and evaluates, as oracle.py does (random draws of
the labelled subjects; each subject's windows averaged, the atlases side by side), the
whole embedding, its first H numbers (the encoder's readout) and the rest (the head),
and the FC triangle of the same subjects in the same draws.

  bench/transfer/embed_parts.py COHORT EMBEDDINGS_H5 INDEX H [--draws N]"""
import argparse, os, sys
import h5py
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from head_rank import load, report  # noqa: E402


def row(name, F, lab, Y, draws):
    """head_rank.report's row, its second column the number of features."""
    report(name, [(F, F.shape[1])], lab, Y, draws)


def main():
    ap = argparse.ArgumentParser()
    for a in ("cohort", "embeddings", "index"):
        ap.add_argument(a)
    ap.add_argument("H", type=int)
    ap.add_argument("--draws", type=int, default=40)
    o = ap.parse_args()
    lab_ids, lab, Y, atlases, _, means = load(o.cohort, o.index)
    f = h5py.File(o.embeddings, "r")
    A = np.array([x.decode() for x in f["atlas"][()]])
    P = np.array([x.decode() for x in f["participant_id"][()]])
    E = f["pretrained"][()]

    def feats(cols):
        return np.concatenate([np.array([E[(P == p) & (A == a)][:, cols].mean(0) for p in lab_ids])
                               for a in sorted(set(A))], 1)

    print("| features | numbers | AUC k=4 | k=8 | R2 n=16 | n=48 |\n|---|---|---|---|---|---|")
    row("embedding", feats(slice(0, E.shape[1])), lab, Y, o.draws)
    row("encoder's readout", feats(slice(0, o.H)), lab, Y, o.draws)
    row("head", feats(slice(o.H, E.shape[1])), lab, Y, o.draws)
    row("FC triangle", np.concatenate([np.array([means[a][p] for p in lab_ids]) for a in atlases], 1),
        lab, Y, o.draws)


if __name__ == "__main__":
    main()
