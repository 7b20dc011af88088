#!/usr/bin/python3
"""head_hetero.py: the population head with and without the site-heterogeneity term
(docs/results.md section 12t). Per atlas, on the unlabelled people's site-centred windows
(what strict pretraining reads): the held-out plateau rule (16 fits) and the head alone at
the rule's rank (8 without a gap: printed as such, since the model would read `pcs+pop`
there), with the discriminant's denominator S_w' + beta x hetero() for each beta given
(head_rank.hetero: how much more some sites' people spread along a direction than the
sites' average), evaluated as oracle.py does; the FC triangle beside them.

  bench/transfer/head_hetero.py COHORT INDEX [--betas 0,1,cov,cov0.5] [--draws N]

`cov`: instead of a penalty, each site's scores mapped to the pooled covariance
(head_rank.harmonise; covG: shrinkage G of each site's covariance, 0.1 by default)
before the directions are chosen.

Not a test: figures for results.md."""
import argparse, os, sys
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from head_rank import head  # noqa: E402
from corpus_size import first_rows, rule, row, study_inputs  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cohort")
    ap.add_argument("index")
    ap.add_argument("--betas", default="0,1")
    ap.add_argument("--draws", type=int, default=40)
    o = ap.parse_args()
    s = study_inputs(o.cohort, o.index)
    lab_ids, unl_ids, site, atlases, graphs, means, lab, Y, fc = (
        s[k] for k in ("lab_ids", "unl_ids", "site", "atlases", "graphs", "means", "lab", "Y", "fc"))
    keep = set(q for a in atlases for q, _, _ in graphs[a]) & set(unl_ids)
    print(f"{o.cohort}: {len(lab_ids)} labelled, {len(keep)} unlabelled, "
          f"{len(set(site[p] for p in keep))} sites; {o.draws} draws")
    print("| features | AUC k=4 | k=8 | R2 n=16 | n=48 |\n|---|---|---|---|---|")
    print(f"| FC triangle | {row('fc', fc, lab, Y, o.draws)} |", flush=True)
    rows = {a: first_rows(graphs, a, keep, site) for a in atlases}
    for tok in o.betas.split(","):
        harm = float(tok[3:] or 0.1) if tok.startswith("cov") else 0.0
        if tok.startswith("cov") and not harm > 0:
            sys.exit(f"head_hetero.py: {tok}: the shrinkage must be above 0 (0 is no harmonisation)")
        beta = 0.0 if harm else float(tok)
        counts = {a: rule(rows[a], site, beta, harm) for a in atlases}
        gap = max(c for c, _ in counts.values())
        said = ", ".join(f"{a} {c} ({m:.2f})" for a, (c, m) in counts.items())
        r = gap or 8
        F = np.concatenate([head(rows[a], means[a], lab_ids, 150, r, 0.1, site, beta, harm)[0]
                            for a in atlases], 1)
        what = f"gap {gap}" if gap else "no gap: rank 8, the model reads pcs+pop"
        print(f"| {f'covariance harmonised ({harm:g})' if harm else f'beta {beta:g}'}: head alone, rank {r} ({what}; {said}) | "
              f"{row('h', F, lab, Y, o.draws)} |", flush=True)


if __name__ == "__main__":
    main()
