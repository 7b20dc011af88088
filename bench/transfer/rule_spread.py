#!/usr/bin/python3
"""rule_spread.py: how much does the held-out rule's count depend on which halves it
splits the people into? (docs/results.md section 12n). The model's count for an atlas
(docs/model.md section 11, `pop_rank: auto`) is the mean of four fits: two fixed splits
of the unlabelled people into halves, each fitted both ways. Here, on the first U
unlabelled subjects of a cohort (site-centred, as `pop_site: centre` fits), the same
counts are made over many random splits (numpy, as corpus_size.py), and printed per
atlas: the mean over every fit, the four-fit means the model could have drawn (one per
two consecutive splits), their spread, and the share of them that show a gap (a mean
that rounds to 2 or more).

  bench/transfer/rule_spread.py COHORT INDEX U[,U...] [--splits N] [--thresholds C,C...]
                                [--plateau]

--thresholds: instead, the mean count over every fit at each threshold C (the model's is
2: a direction counts when its held-out ratio is at least C times the bulk's median);
where a population's factors stand out cleanly the count hardly moves as C falls.

--plateau: the model's plateau rule (docs/model.md section 11) on disjoint groups of 16
fits (8 splits, the model's number): per group, the mean count at each threshold of the
ladder 1.2, 1.4, 1.65, 1.9, 2.2, 2.6, 3; going up, the first neighbouring pair over which
the fits' summed counts fall by at most 6 is a gap of round(mean at the upper one), if at
least 2 and the mean at the lower one is at most 12. Printed per atlas: the mean counts
over every fit, and the share of groups giving each answer (and for the atlases together,
the largest of their answers, the rank the model keeps), beside the rule before session
20 on the first 4 fits of each group (the mean count at 2x, rounded; a gap when >= 2).

Not a test: figures for results.md."""
import argparse, os, sys
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from head_holdout import LADDER, held_out_counts, plateau  # noqa: E402
from corpus_size import first_rows, unlabelled_cohort  # noqa: E402


def counts(o, cs, unl_ids, site, atlases, graphs):
    """(U, atlas, {C: the counts of every fit}) for each size and atlas, in print order."""
    for U in [int(x) for x in o.sizes.split(",")]:
        keep = set(unl_ids[:U])
        for a in atlases:
            yield U, a, held_out_counts(first_rows(graphs, a, keep, site), cs,
                                        splits=o.splits, seed=11)


def shares(got):
    return ", ".join(f"{'no gap' if r == 0 else r}: {got.count(r) / len(got):.2f}"
                     for r in sorted(set(got)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cohort")
    ap.add_argument("index")
    ap.add_argument("sizes")
    ap.add_argument("--splits", type=int, default=24)
    ap.add_argument("--thresholds", default="")
    ap.add_argument("--plateau", action="store_true")
    o = ap.parse_args()
    if o.splits < 2 or o.splits % (8 if o.plateau else 2):
        sys.exit("rule_spread: --splits must be an even number, at least 2 (with --plateau "
                 "a multiple of 8)")
    data = unlabelled_cohort(o.cohort, o.index)
    if o.plateau:
        print(f"{o.splits} random splits x both ways; groups of 16 fits: {o.splits // 8}")
        print("| U | atlas | mean counts at " + ", ".join(f"{c:g}" for c in LADDER) +
              "x | the rule's answers (share of groups) | the rule before session 20 |"
              "\n|---|---|---|---|---|")
        per_u = {}
        for U, a, f in counts(o, LADDER + [2.0], *data):
            sums = np.array([f[c] for c in LADDER]).reshape(len(LADDER), -1, 16).sum(2).T
            got = [plateau(list(x)) for x in sums]
            four = np.array(f[2.0], float).reshape(-1, 16)[:, :4].mean(1)  # 4 fits at 2x
            old = [int(r) if r >= 2 else 0 for r in np.floor(four + 0.5)]
            per_u.setdefault(U, []).append((got, old))
            print(f"| {U} | {a} | " + " ".join(f"{np.mean(f[c]):.2f}" for c in LADDER) +
                  f" | {shares(got)} | {shares(old)} |", flush=True)
            if len(per_u[U]) == len(data[2]):
                new_k, old_k = ([max(x) for x in zip(*[g[i] for g in per_u[U]])] for i in (0, 1))
                print(f"| {U} | rank kept | | {shares(new_k)} | {shares(old_k)} |")
        return
    if o.thresholds:
        cs = [float(x) for x in o.thresholds.split(",")]
        print(f"{o.splits} random splits x both ways; the mean count at each threshold")
        print("| U | atlas | " + " | ".join(f"C = {c:g}" for c in cs) + " |\n|---|---|" +
              "---|" * len(cs))
        for U, a, f in counts(o, cs, *data):
            print(f"| {U} | {a} | " + " | ".join(f"{np.mean(f[c]):.2f}" for c in cs) + " |",
                  flush=True)
        return
    print(f"{len(data[0])} unlabelled subjects; {o.splits} random splits x both ways; "
          f"four-fit means: {o.splits // 2}")
    print("| U | atlas | mean of all fits | four-fit means (min / median / max) | sd | "
          "share with a gap |\n|---|---|---|---|---|---|")
    for U, a, f in counts(o, [2.0], *data):
        c = np.array(f[2.0], float)
        four = c.reshape(-1, 4).mean(1)
        gap = np.mean(np.floor(four + 0.5) >= 2)
        print(f"| {U} | {a} | {c.mean():.2f} | {four.min():.2f} / {np.median(four):.2f} / "
              f"{four.max():.2f} | {four.std():.2f} | {gap:.2f} |", flush=True)


if __name__ == "__main__":
    main()
