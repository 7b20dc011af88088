#!/usr/bin/python3
"""site_share.py: how much of the people's variation along each of the population head's
leading directions lies in one site (docs/results.md section 12t): the head refitted as
the model fits it (`pop_site: centre`: the unlabelled people's site-centred windows, 150
principal axes, shrinkage 0.1); per direction, the people's mean scores, per site their
variance about the site's mean times the site's people (the share of the total the
largest site holds, what pretrain's log warns about at 0.8: docs/model.md section 11).

  bench/transfer/site_share.py COHORT INDEX [--directions 8] [--rotated R[,R..]]
                               [--permutations N] [--apart]

With --permutations, each --rotated share is set beside the same share with the people's
site labels shuffled N times (site sizes kept): the share one site holds by chance grows
with R and with the site's size, and only a share above that null's 95th percentile says a
site has variation of its own there. With --apart, per atlas the people furthest from the
rest in the head's metric (the scan mean's distance g^T Sw^-1 g, robust z of its log:
what pop_outlier_z reads, docs/model.md section 11), and what share of each direction's
variance the one person who holds most of it holds.

With --share T, per atlas, the people who hold a leading direction themselves: while one
person holds at least T of some leading direction's variance (among --directions), that
person is left out and the head refitted; printed in the order left out, with the share,
the direction and their z before it, then the sites' shares of the last fit. What a rule
"a direction one person alone spans is not a way people differ" would leave out, beside
pop_outlier_z's distance (docs/model.md section 11).

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
    ap.add_argument("--apart", action="store_true",
                    help="the people furthest from the rest (robust z of the log distance)")
    ap.add_argument("--permutations", type=int, default=0,
                    help="N: the --rotated shares under N shufflings of the site labels")
    ap.add_argument("--share", type=float, default=0.0,
                    help="T: leave out, one at a time, whoever holds T of a leading direction")
    o = ap.parse_args()
    s = study_inputs(o.cohort, o.index)
    site, graphs = s["site"], s["graphs"]
    for a in s["atlases"]:
        keep = set(s["unl_ids"])
        subs, M, G, Sw = centred_fit(graphs[a], keep, site, o.directions)
        gone = []
        while o.share > 0 and len(gone) < 20:
            one, who = person_shares(M)
            j = int(np.argmax(one))
            if one[j] < o.share:
                break
            gone.append(f"{subs[who[j]]} ({one[j]:.2f} of direction {j + 1}, z {robust_z(G, Sw)[who[j]]:.1f})")
            keep.discard(subs[who[j]])
            subs, M, G, Sw = centred_fit(graphs[a], keep, site, o.directions)
        if o.share > 0:
            print(f"{a}: holding {o.share:.2f} of a leading direction, left out in turn: "
                  + (", ".join(gone) if gone else "nobody"))
        st = np.array([site[p] for p in subs])
        ks = sorted(set(st))
        out = []
        for j in range(M.shape[1]):
            ss = np.array([np.sum((M[st == k, j] - M[st == k, j].mean()) ** 2) for k in ks])
            out.append(f"{ss.max() / ss.sum():.2f} ({ks[int(np.argmax(ss))]})")
        print(f"{a}: {len(subs)} people, {len(ks)} sites; largest site's share per direction: "
              + ", ".join(out))
        if o.apart:
            z = robust_z(G, Sw)
            top = np.argsort(z)[::-1][:6]
            one = person_shares(M)[0]
            print(f"{a}: furthest from the rest (robust z of the log distance): "
                  + ", ".join(f"{subs[i]} {z[i]:.1f}" for i in top)
                  + "; the one person's largest share per direction: "
                  + ", ".join(f"{x:.2f}" for x in one))
        # the same share for any direction within the r leading ones (--rotated r): per site
        # the largest generalised eigenvalue of its scatter against the sites' summed
        # scatter, which a direction mixed from several sites' own ones does not hide
        rng = np.random.default_rng(0)
        for r in o.rotated:
            best = rotated_shares(M[:, :r], st, ks)
            line = ", ".join(f"{b:.2f} ({k})" for b, k in zip(best, ks))
            if o.permutations:
                null = np.array([rotated_shares(M[:, :r], rng.permutation(st), ks)
                                 for _ in range(o.permutations)])
                q95 = np.quantile(null, 0.95, axis=0)
                p = (1 + np.sum(null >= best, axis=0)) / (1 + o.permutations)
                line = ", ".join(f"{b:.2f} ({k}; null 95% {q:.2f}, p {pv:.3f})"
                                 for b, k, q, pv in zip(best, ks, q95, p))
            print(f"{a}: within the leading {r}, the largest share one site holds along any "
                  f"direction: " + line)


def centred_fit(graphs_a, keep, site, d):
    """The head's centred fit on the people in keep: (people, their mean scores on the d
    leading directions, their mean rows in the principal axes, the within-scan covariance)."""
    rows = site_centred([(q, x) for q, w, x in graphs_a if q in keep], site)
    P, Q = axes(rows, 150)[:2]
    subs = sorted(set(P))
    Sb, Sw = scatter(Q, P, subs)
    V = sl.eigh(Sb, shrunk(Sw, 0.1))[1][:, ::-1][:, :d]
    G = mean_rows(Q, P, subs)
    return subs, G @ V, G, Sw


def person_shares(M):
    """Per direction (column of M), the largest share of its variance one person holds,
    and who."""
    C = (M - M.mean(0)) ** 2
    return C.max(0) / C.sum(0), C.argmax(0)


def robust_z(G, Sw):
    """Each person's robust z of the log distance g^T Sw'^-1 g from the mean (pop_outlier_z)."""
    G = G - G.mean(0)
    ld = np.log(np.einsum("ij,ij->i", G, np.linalg.solve(shrunk(Sw, 0.1), G.T).T))
    return (ld - np.median(ld)) / (1.4826 * np.median(np.abs(ld - np.median(ld))))


def rotated_shares(Mr, st, ks):
    """Per site, the largest generalised eigenvalue of its people's scatter (about the
    site's mean) against the sites' summed scatter, within the columns of Mr."""
    r = Mr.shape[1]
    S = [np.cov(Mr[st == k].T, bias=True).reshape(r, r) * np.sum(st == k) for k in ks]
    tot = sum(S)
    return np.array([sl.eigh(Sk, tot, eigvals_only=True)[-1] for Sk in S])


if __name__ == "__main__":
    main()
