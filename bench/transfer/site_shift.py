#!/usr/bin/python3
"""site_shift.py: what a site's shift of everyone's FC does to the population head and
pop_rank: auto's held-out rule, and what centring the head's fit on the sites buys
(docs/results.md section 12i; docs/model.md section 11, "Sites"). Per atlas, every
unlabelled window (what strict pretraining reads) and every subject's mean triangle get
their site's shift A sd (g 1 + e) / sqrt(2), with sd the mean sd of an FC entry over the
windows, g ~ N(0, 1) one number per site (a global offset) and e ~ N(0, I) a pattern per
site. Then the held-out rule (docs/model.md section 11) and the head at the rank it
gives (8 without a gap), evaluated as oracle.py does, in three forms:
  none:    fitted on the FC as it is (pop_site: none);
  centre:  fitted on the FC less its site's mean (over the unlabelled windows), applied
           to the FC as it is (pop_site: centre, the default);
  harmon.: the same fit, applied to the FC less its site's mean too (what a per-site
           offset stored in the model would give; not built).
A column "gap" says whether embedding: auto would read the head alone.

  bench/transfer/site_shift.py COHORT INDEX A[,A...] [--draws N]"""
import os, sys
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from head_holdout import held_out_counts  # noqa: E402
from head_rank import head, report, start  # noqa: E402
from oracle import read_table  # noqa: E402


def held_out_count(rows):
    """The held-out rule's rank at C = 2 (0: no gap): the mean of the four counts rounded
    half up, when at least 2 (pop.c; head_holdout.py's splits)."""
    r = int(np.floor(np.mean(held_out_counts(rows, [2.0])[2.0]) + 0.5))
    return r if r >= 2 else 0


def main():
    o, (lab_ids, lab, Y, atlases, unl, means) = start("amps", "shift A, form")
    site = {r["participant_id"]: r["site"] for r in read_table(o.cohort)}
    sites = sorted(set(site.values()))
    for amp in [float(x) for x in o.amps.split(",")]:
        rng = np.random.default_rng(99)
        U, M, Uc, Mc, share = {}, {}, {}, {}, []
        for a in atlases:
            X = np.array([x for _, x in unl[a]])
            sd, D = X.std(0).mean(), X.shape[1]
            d = {k: amp * sd * (rng.standard_normal() + rng.standard_normal(D)) / np.sqrt(2)
                 for k in sites}
            U[a] = [(p, x + d[site[p]]) for p, x in unl[a]]
            M[a] = {p: x + d[site[p]] for p, x in means[a].items()}
            S = np.array([d[site[p]] for p, _ in unl[a]])
            share.append(S.var(0).mean() / np.array([x for _, x in U[a]]).var(0).mean())
            mk = {k: np.mean([x for p, x in U[a] if site[p] == k], 0) for k in sites}
            Uc[a] = [(p, x - mk[site[p]]) for p, x in U[a]]
            Mc[a] = {p: x - mk[site[p]] for p, x in M[a].items()}
        print(f"<!-- shift {amp}: the sites' share of an FC entry's variance "
              f"{', '.join(f'{v:.3f}' for v in share)} ({', '.join(atlases)}) -->", flush=True)
        for form, fit_rows, apply_means in (("none", U, M), ("centre", Uc, M), ("harmon.", Uc, Mc)):
            r = max(held_out_count(fit_rows[a]) for a in atlases)
            gap = r >= 2
            report(f"{amp} {form}, {'gap: head alone' if gap else 'no gap'}",
                   [head(fit_rows[a], apply_means[a], lab_ids, 150, r if gap else 8, 0.1)
                    for a in atlases], lab, Y, o.draws)


if __name__ == "__main__":
    main()
