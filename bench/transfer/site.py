#!/usr/bin/python3
"""site.py: how much of a cohort's few-shot diagnosis the acquisition site alone explains
(docs/results.md section 12d).

usage: site.py COHORT GRAPHS_INDEX [--draws 60]

Evaluated as oracle.py evaluates (subject means, logistic AUC at k = 4, 8 per class,
ridge R2 from 16 and 48 subjects, random draws of the labelled subjects):
- the site alone (one-hot, participants.tsv's `site` column);
- the FC triangle (both atlases);
- the FC triangle with each site's mean removed, the means taken over every subject of
  the site (labelled and unlabelled; no label is read).
A site that predicts the label better than the FC triangle means the labelled sample's
classes are unevenly spread over sites, and any feature set that keeps the site gains
from it.
"""
import argparse, os, sys
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle import read_graphs, read_table, participants_from, subject_means, evaluate  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cohort")
    ap.add_argument("index")
    ap.add_argument("--draws", type=int, default=60)
    o = ap.parse_args()
    rows = read_table(o.cohort)
    if not rows or "site" not in rows[0]:
        sys.exit(f"site.py: {o.cohort}/participants.tsv has no 'site' column")
    site = {r["participant_id"]: r["site"] for r in rows}
    sites = sorted(set(site.values()))
    targets = [c for c in rows[0] if c == "score" or c.startswith("trait_")]
    lab_ids, unl_ids, diag, tv = participants_from(rows, targets)
    lab = np.array([diag[p] for p in lab_ids])
    Y = np.array([tv[p] for p in lab_ids])
    atlases, graphs = read_graphs(o.index)
    means = {a: subject_means(graphs[a]) for a in atlases}
    fc = {p: np.concatenate([means[a][p] for a in atlases]) for p in lab_ids + unl_ids}
    smean = {s: np.mean([fc[p] for p in fc if site[p] == s], 0) for s in sites}
    print("| features | AUC k=4 | k=8 | R2 n=16 | n=48 |\n|---|---|---|---|---|")
    for name, F in (("site alone (one-hot)", [[site[p] == s for s in sites] for p in lab_ids]),
                    ("FC triangle", [fc[p] for p in lab_ids]),
                    ("FC triangle minus its site's mean", [fc[p] - smean[site[p]] for p in lab_ids])):
        r = evaluate(np.array(F, dtype=float), lab, Y, [4, 8], [16, 48], o.draws,
                     np.random.default_rng(12))
        print(f"| {name} | {r['few_shot']['4'][0]:.3f} | {r['few_shot']['8'][0]:.3f} | "
              f"{r['few_shot_n']['16'][0]:.3f} | {r['few_shot_n']['48'][0]:.3f} |", flush=True)
    print("labelled subjects per site and class:",
          ", ".join(f"{s} {sum(1 for p, y in zip(lab_ids, lab) if site[p] == s and y == 0)}/"
                    f"{sum(1 for p, y in zip(lab_ids, lab) if site[p] == s and y == 1)}" for s in sites))


if __name__ == "__main__":
    main()
