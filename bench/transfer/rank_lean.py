#!/usr/bin/python3
"""rank_lean.py: would a head one direction wider than the count rule's serve better?
(docs/results.md section 12ac). Reads corpus_size.py's tables (one file per population,
run with --ranks covering c - 1 .. c + 1) and prints, per population, the rule's count c,
the head alone at c - 1, c and c + 1 and the FC triangle (AUC k = 4, 8; R2 from 16, 48
subjects), then the mean of (c + 1) - (c) over the populations named as counted, and
where the head at c + 1 falls behind the FC triangle on a measure where the head at c was
ahead of it.

  bench/transfer/rank_lean.py FILE [FILE...] [--aside NAME[,NAME...]]

--aside: populations (file names without .txt) shown but not counted.
Not a test: figures for results.md."""
import argparse, os, re
import numpy as np

M = ["AUC k=4", "AUC k=8", "R2 n=16", "R2 n=48"]


def read(path):
    """(count c, FC row, {rank: row}) from one corpus_size.py table."""
    c, fc, by = None, None, {}
    for line in open(path):
        cells = [x.strip() for x in line.strip().strip("|").split("|")]
        if len(cells) != 5:
            continue
        try:
            vals = [float(x) for x in cells[1:]]
        except ValueError:
            continue
        m = re.search(r"rank (\d+) by (rule|request)", cells[0])
        if cells[0] == "FC triangle":
            fc = vals
        elif m and m.group(2) == "rule":
            c = int(m.group(1))
        elif m:
            by[int(m.group(1))] = vals
    return c, fc, by


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--aside", default="")
    o = ap.parse_args()
    aside = set(x for x in o.aside.split(",") if x)
    print("| population | count c | " + " | ".join(f"{m}: FC / c-1 / c / c+1" for m in M) + " |")
    print("|---" * (2 + len(M)) + "|")
    diffs, falls = [], []
    for f in o.files:
        name = os.path.basename(f)[:-4]
        c, fc, by = read(f)
        if c is None or c not in by or c + 1 not in by:
            print(f"| {name} | no gap or ranks missing | " + " | ".join("" for _ in M) + " |")
            continue
        lo = by.get(c - 1, [float("nan")] * 4)
        cells = [f"{fc[i]:.3f} / {lo[i]:.3f} / {by[c][i]:.3f} / {by[c + 1][i]:.3f}"
                 for i in range(4)]
        tag = " (aside)" if name in aside else ""
        print(f"| {name}{tag} | {c} | " + " | ".join(cells) + " |")
        if name in aside:
            continue
        diffs.append([by[c + 1][i] - by[c][i] for i in range(4)])
        for i in range(4):
            if by[c][i] > fc[i] and by[c + 1][i] < fc[i]:
                falls.append(f"{name} {M[i]} ({by[c][i]:.3f} -> {by[c + 1][i]:.3f}, "
                             f"FC {fc[i]:.3f})")
    d = np.array(diffs)
    print(f"\ncounted populations: {len(d)}")
    print("mean (c+1) - (c): " + ", ".join(f"{M[i]} {d[:, i].mean():+.4f}" for i in range(4)))
    better = ", ".join(f"{M[i]} {(d[:, i] > 0).sum()}" for i in range(4))
    print("populations where c+1 is better: " + better)
    print("c+1 behind the FC triangle where c was ahead: " + ("; ".join(falls) or "none"))
    ok = (d[:, 0].mean() >= -0.005 and d[:, 1].mean() >= -0.005 and d[:, 2].mean() >= -0.01
          and d[:, 3].mean() >= -0.01 and not falls)
    print("criterion (means >= -0.005 AUC, >= -0.01 R2, no fall behind FC): "
          + ("met" if ok else "not met"))


if __name__ == "__main__":
    main()
