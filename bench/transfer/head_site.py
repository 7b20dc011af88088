#!/usr/bin/python3
"""head_site.py: what are the population head's leading directions on a multi-site
cohort? (docs/results.md section 12t). The head (docs/model.md section 11) fitted per
atlas on the unlabelled people's site-centred windows (`pop_site: centre`: 150 principal
axes, shrinkage 0.1); for each of its leading directions, over the unlabelled people's
mean scores:

- site: the share of the scores' variance between sites (eta squared; 0 after centring
  only if each site's people's mean is that site's window mean), and the ratio of the
  largest to the smallest within-site variance (a site whose people spread more along
  the direction: a scale, which centring keeps);
- traits: the share the true traits explain (foreign_pop.py's
  derivatives/foreign/truth.json; least squares with an intercept), and each trait's
  correlation; the generator's own motion level beside the measured one;
- motion: Spearman correlation with mean framewise displacement and the volumes above
  0.5 mm (the cohort's confounds files), and with the generator's motion level.

  bench/transfer/head_site.py COHORT RUN [--directions D] [--scale]

RUN is a pipeline run directory (its connectivity/index.h5).
--scale also divides each site's centred rows by that site's root-mean-square (per
entry), the candidate fix, and prints the rule's count and the directions again.
Not a test: figures for results.md."""
import argparse, json, os, sys
import numpy as np
import scipy.linalg as sl
import scipy.stats as ss
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle import read_graphs  # noqa: E402
from head_rank import axes, scatter, shrunk, mean_rows  # noqa: E402
from corpus_size import site_centred, rule  # noqa: E402


def s(x):
    return x.decode() if isinstance(x, bytes) else str(x)


def motion(cohort, people, scrub=0.5):
    """{participant: (mean FD, volumes with FD > scrub)} from the cohort's confounds files."""
    out = {}
    for p in people:
        f = os.path.join(cohort, p, "func", f"{p}_task-rest_desc-confounds_timeseries.tsv")
        if not os.path.exists(f):
            return {}
        lines = open(f).read().split("\n")
        col = lines[0].split("\t").index("framewise_displacement")
        fd = np.array([float(l.split("\t")[col]) for l in lines[2:] if l])
        out[p] = (float(fd.mean()), float(np.sum(fd > scrub)))
    return out


def site_scaled(rows, site):
    """site-centred rows, each site's further divided by its per-entry RMS (times the
    pooled RMS, so the overall scale is kept)."""
    keys = sorted(set(site[q] for q, _ in rows))
    X = {k: np.array([x for q, x in rows if site[q] == k]) for k in keys}
    pooled = np.sqrt(np.mean(np.concatenate([v ** 2 for v in X.values()]), 0))
    rms = {k: np.sqrt(np.mean(v ** 2, 0)) for k, v in X.items()}
    return [(q, x * pooled / np.where(rms[site[q]] > 0, rms[site[q]], 1)) for q, x in rows]


def describe(rows, site, table, mot, d):
    P, Q = axes(rows, 150)[:2]
    subs = sorted(set(P))
    Sb, Sw = scatter(Q, P, subs)
    ev, V = sl.eigh(Sb, shrunk(Sw, 0.1))
    ev, V = ev[::-1][:d], V[:, ::-1][:, :d]
    M = mean_rows(Q, P, subs) @ V
    st = np.array([site[p] for p in subs])
    T = np.array([table[p]["traits"] for p in subs])
    traits = range(T.shape[1])
    T1 = np.column_stack([np.ones(len(subs)), T])
    for j in range(d):
        y = M[:, j] - M[:, j].mean()
        tot = y @ y
        between = sum(np.sum(st == k) * y[st == k].mean() ** 2 for k in set(st))
        wv = [y[st == k].var() for k in sorted(set(st))]
        res = y - T1 @ np.linalg.lstsq(T1, y, rcond=None)[0]
        r2 = 1 - res @ res / tot
        rt = " ".join(f"{np.corrcoef(y, T[:, i])[0, 1]:+.2f}" for i in range(len(traits)))
        line = (f"  dir {j + 1}: lambda {ev[j]:7.2f}  site eta2 {between / tot:.2f}"
                f"  within-site var max/min {max(wv) / min(wv):5.2f}"
                f" ({' '.join(f'{v / np.mean(wv):.2f}' for v in wv)})"
                f"  traits R2 {r2:.2f} [{rt}]")
        if mot:
            fd = [mot[p][0] for p in subs]
            sc = [mot[p][1] for p in subs]
            line += (f"  rho(fd) {ss.spearmanr(y, fd)[0]:+.2f}"
                     f" rho(scrubbed) {ss.spearmanr(y, sc)[0]:+.2f}")
        gm = [table[p]["motion"] for p in subs]
        line += f" rho(true motion) {ss.spearmanr(y, gm)[0]:+.2f}"
        print(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cohort")
    ap.add_argument("run")
    ap.add_argument("--directions", type=int, default=4)
    ap.add_argument("--scale", action="store_true")
    a = ap.parse_args()
    truth = json.load(open(os.path.join(a.cohort, "derivatives", "foreign", "truth.json")))
    table = {r["participant_id"]: r for r in truth["participants"]}
    site = {p: r["site"] for p, r in table.items()}
    unl = {p for p, r in table.items() if not r["labelled"]}
    atlases, graphs = read_graphs(os.path.join(a.run, "connectivity", "index.h5"))
    mot = motion(a.cohort, sorted(unl))
    print(f"{len(unl)} unlabelled people in the table; sites "
          + " ".join(f"{k}:{sum(site[p] == k for p in unl)}" for k in sorted(set(site.values()))))
    forms = [("centred", lambda r: site_centred(r, site))]
    if a.scale:
        forms.append(("centred+scaled", lambda r: site_scaled(site_centred(r, site), site)))
    for name, f in forms:
        for at in atlases:
            rows = f([(q, x) for (q, w, x) in graphs[at] if q in unl])
            gap, foot = rule(rows)
            print(f"{at} {name}: {len(rows)} windows of {len({q for q, _ in rows})} people;"
                  f" the rule: gap {gap} (mean count at the ladder's foot {foot:.2f})")
            describe(rows, site, table, mot, a.directions)


if __name__ == "__main__":
    main()
