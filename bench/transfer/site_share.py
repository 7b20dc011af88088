#!/usr/bin/python3
"""site_share.py: how much of the people's variation along each of the population head's
leading directions lies in one site (docs/results.md section 12t): the head refitted as
the model fits it (`pop_site: centre`: the unlabelled people's site-centred windows, 150
principal axes, shrinkage 0.1); per direction, the people's mean scores, per site their
variance about the site's mean times the site's people (the share of the total the
largest site holds, what pretrain's log warns about at 0.8: docs/model.md section 11).

  bench/transfer/site_share.py COHORT INDEX [--directions 8] [--rotated R[,R..]]

Not a test: figures for results.md."""
import argparse, os, sys
import numpy as np
import scipy.linalg as sl
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from head_rank import axes, scatter, shrunk, mean_rows  # noqa: E402
from corpus_size import site_centred, study_inputs  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cohort")
    ap.add_argument("index")
    ap.add_argument("--directions", type=int, default=8)
    ap.add_argument("--rotated", type=lambda t: [int(x) for x in t.split(",")], default=[],
                    help="R[,R..]: the largest share along any direction within the R leading")
    o = ap.parse_args()
    s = study_inputs(o.cohort, o.index)
    site, graphs = s["site"], s["graphs"]
    keep = set(s["unl_ids"])
    for a in s["atlases"]:
        rows = site_centred([(q, x) for q, w, x in graphs[a] if q in keep], site)
        P, Q = axes(rows, 150)[:2]
        subs = sorted(set(P))
        Sb, Sw = scatter(Q, P, subs)
        V = sl.eigh(Sb, shrunk(Sw, 0.1))[1][:, ::-1][:, :o.directions]
        M = mean_rows(Q, P, subs) @ V
        st = np.array([site[p] for p in subs])
        ks = sorted(set(st))
        out = []
        for j in range(M.shape[1]):
            ss = np.array([np.sum((M[st == k, j] - M[st == k, j].mean()) ** 2) for k in ks])
            out.append(f"{ss.max() / ss.sum():.2f} ({ks[int(np.argmax(ss))]})")
        print(f"{a}: {len(subs)} people, {len(ks)} sites; largest site's share per direction: "
              + ", ".join(out))
        # the same share for any direction within the r leading ones (--rotated r): per site
        # the largest generalised eigenvalue of its scatter against the sites' summed
        # scatter, which a direction mixed from several sites' own ones does not hide
        for r in o.rotated:
            Mr = M[:, :r]
            S = [np.cov(Mr[st == k].T, bias=True).reshape(r, r) * np.sum(st == k) for k in ks]
            tot = sum(S)
            best = [sl.eigh(Sk, tot, eigvals_only=True)[-1] for Sk in S]
            print(f"{a}: within the leading {r}, the largest share one site holds along any "
                  f"direction: " + ", ".join(f"{b:.2f} ({k})" for b, k in zip(best, ks)))


if __name__ == "__main__":
    main()
