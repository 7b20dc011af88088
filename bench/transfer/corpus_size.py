#!/usr/bin/python3
"""corpus_size.py: does the population head find the shared traits with more unlabelled
people? (docs/results.md section 12m). On a cohort whose unlabelled subjects are a
prefix-stable draw (bgfm synth draws subject s the same whatever --unlabelled says), the
head of docs/model.md section 11 is fitted per atlas on the first U unlabelled subjects'
windows, each site's mean taken out first (`pop_site: centre`), for each U given:

- the held-out rule's answer per atlas (head_holdout.py's fits: 16 of them, the model's
  plateau rule up the ladder of thresholds; 0 for no gap) and the rank the model would
  keep (the atlases' largest count; 8 without a gap); sections 12m-12n were measured
  with the rule before session 20 (4 fits at threshold 2);
- the head alone at that rank and at the generator's number of traits, evaluated as
  oracle.py does (the labelled subjects, random draws; the atlases side by side);
- the FC triangle of the same labelled subjects on the same draws (it does not depend
  on U).

  bench/transfer/corpus_size.py COHORT INDEX U[,U...] [--draws N] [--ranks R[,R...]]

--ranks adds the head alone at each rank given (section 12n: what the rule's rank costs).

Not a test: figures for results.md. The pipeline's own fit (C) is what the model uses;
this reimplements it in numpy (random half splits instead of the SplitMix64 order)."""
import argparse, os, sys
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle import read_graphs, read_table, participants_from, subject_means, evaluate, with_graphs  # noqa: E402
from head_rank import head  # noqa: E402
from head_holdout import LADDER, held_out_counts, plateau  # noqa: E402


def site_centred(rows, site):
    """rows [(subject, triangle)] less the mean of their site's rows."""
    out, keys = [], sorted(set(site[q] for q, _ in rows))
    mean = {k: np.mean([x for q, x in rows if site[q] == k], 0) for k in keys}
    for q, x in rows:
        out.append((q, x - mean[site[q]]))
    return out


def first_rows(graphs, atlas, keep, site):
    """The site-centred windows of one atlas of the unlabelled subjects in keep."""
    return site_centred([(q, x) for (q, w, x) in graphs[atlas] if q in keep], site)


def unlabelled_cohort(cohort, index):
    """(the unlabelled subjects, sorted; each subject's site; the atlases; their graphs)"""
    table = read_table(cohort)
    targets = [c for c in table[0] if c == "score" or c.startswith("trait_")]
    _, unl_ids, _, _ = participants_from(table, targets)
    site = {r["participant_id"]: r["site"] for r in table}
    atlases, graphs = read_graphs(index)
    return sorted(unl_ids), site, atlases, graphs


def rule(rows, site=None, beta=0.0, harm=0.0):
    """The model's rule for one atlas: (the gap or 0, the mean count at the ladder's foot).
    site, beta: head_rank.penalised()."""
    c = held_out_counts(rows, LADDER, splits=8, site=site, beta=beta, harm=harm)
    return plateau([sum(c[x]) for x in LADDER]), float(np.mean(c[LADDER[0]]))


def study_inputs(cohort, index):
    """What a study of the head on a cohort's stored graphs reads: the labelled and (sorted)
    unlabelled ids, each person's site, the atlases, their graphs [(id, window, triangle)]
    and each person's mean triangle, the labelled people's diagnosis lab and targets Y,
    their FC triangles side by side (fc), and the target names."""
    table = read_table(cohort)
    targets = [c for c in table[0] if c == "score" or c.startswith("trait_")]
    lab_ids, unl_ids, diag, tv = participants_from(table, targets)
    atlases, graphs = read_graphs(index)
    means = {a: subject_means(graphs[a]) for a in atlases}
    lab_ids = with_graphs(lab_ids, means)
    return dict(lab_ids=lab_ids, unl_ids=sorted(unl_ids), atlases=atlases, graphs=graphs,
                site={r["participant_id"]: r["site"] for r in table}, means=means,
                lab=np.array([diag[p] for p in lab_ids]), Y=np.array([tv[p] for p in lab_ids]),
                fc=np.array([np.concatenate([means[a][p] for a in atlases]) for p in lab_ids]),
                targets=targets)


def row(name, F, lab, Y, draws):
    r = evaluate(F, lab, Y, [4, 8], [16, 48], draws, np.random.default_rng(12))
    return (f"{r['few_shot']['4'][0]:.3f} | {r['few_shot']['8'][0]:.3f} | "
            f"{r['few_shot_n']['16'][0]:.3f} | {r['few_shot_n']['48'][0]:.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cohort")
    ap.add_argument("index")
    ap.add_argument("sizes")
    ap.add_argument("--draws", type=int, default=40)
    ap.add_argument("--ranks", default="")
    o = ap.parse_args()
    s = study_inputs(o.cohort, o.index)
    lab_ids, unl_ids, site, atlases, graphs, means, lab, Y, fc = (
        s[k] for k in ("lab_ids", "unl_ids", "site", "atlases", "graphs", "means", "lab", "Y", "fc"))
    K = sum(1 for c in s["targets"] if c.startswith("trait_"))
    print(f"{len(lab_ids)} labelled, {len(unl_ids)} unlabelled subjects; {K} traits; "
          f"atlases {', '.join(atlases)}; {o.draws} draws")
    print("| features | AUC k=4 | k=8 | R2 n=16 | n=48 |\n|---|---|---|---|---|")
    print(f"| FC triangle | {row('fc', fc, lab, Y, o.draws)} |", flush=True)
    for U in [int(x) for x in o.sizes.split(",")]:
        keep = set(unl_ids[:U])
        rows = {a: first_rows(graphs, a, keep, site) for a in atlases}
        counts = {a: rule(rows[a]) for a in atlases}
        rank = max(c for c, _ in counts.values()) or 8
        gap = "gap" if any(c for c, _ in counts.values()) else "no gap"
        said = ", ".join(f"{a} {m:.2f}" for a, (_, m) in counts.items())
        extra = [(int(x), "request") for x in o.ranks.split(",") if x]
        for r, why in [(rank, f"rule ({said}; {gap})"), (K, "K traits")] + extra:
            F = np.concatenate([head(rows[a], means[a], lab_ids, 150, r, 0.1)[0]
                                for a in atlases], 1)
            print(f"| U = {U}: head, rank {r} by {why} | {row('h', F, lab, Y, o.draws)} |",
                  flush=True)


if __name__ == "__main__":
    main()
