#!/usr/bin/python3
"""scoreboard.py: the issue's targets, one row per population (docs/results.md, "Where
the default stands").

usage: scoreboard.py NAME=OUT [NAME=OUT ...] [--protocol strict] [--variant default]

OUT is a bench/transfer_study.sh folder (OUT/<variant>/<protocol>/seed<S>/probe/report/
probe.json and cells.csv, several seeds). For each population, the paired differences
pretrained - baseline over the same cells (summary.py's bootstrap over seeds x draws) at
the sizes the issue's targets name, and which targets the mean misses:
  diagnosis AUC at k = 4 and 8: at least the FC triangle's and PCA of FC's, and at least
  0.05 above random init;
  trait regression R2 (mean over the targets) from 16 and 48 subjects: at least the FC
  triangle's, and from 16 better (mean above 0).
A figure is bold where its 90 % interval excludes 0. Beside them, how much there is to
win at k = 8: random init's AUC, the pretrained one's, and the oracle map's (OUT/
oracle.json, bench/transfer/oracle.py: a map from FC to the traits fitted with the
unlabelled people's true traits): where the oracle is less than 0.05 above random init,
that target asks for more than a map fitted with the true traits reaches (an estimate,
not a bound: a representation can read the diagnosis better than it); and where the
probe knew the subjects' head motion, what motion alone reads at k = 8 (the probe's
`motion`), and the probe's `regress_out` when it had one. Not a test: figures for
results.md.
"""
import argparse, glob, json, os, sys
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from summary import load_cells, motion_known, paired  # noqa: E402

BASES = ("fc_baseline", "fc_pca", "random_init")
SHORT = {"fc_baseline": "FC", "fc_pca": "PCA", "random_init": "random"}


def fmt(row):
    _, _, m, lo, hi, _, _ = row
    s = f"{m:+.3f}"
    return f"**{s}**" if lo > 0 or hi < 0 else s


def board(name, out, variant, proto):
    js = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(
        out, variant, proto, "seed*", "probe", "report", "probe.json")))]
    if not js:
        sys.exit(f"scoreboard: {out}: no {variant}/{proto}/seed*/probe/report/probe.json")
    forms = sorted({(j["embedding"], j["pop_rank"]) for j in js})
    form = ", ".join(f"{e} ({r})" if e == "pop" else e for e, r in forms)
    cells = load_cells(out, variant, proto)
    rng = np.random.default_rng(0)  # per population: a row does not depend on the others
    targets = sorted({t for (t, v, s, f) in cells if t != "label"})
    got = {b: {(r[0], r[1]): r for r in paired(cells, "pooled", targets, b, rng)} for b in BASES}
    missed, parts = [], []
    for k in ("4", "8"):
        vals = []
        for b in BASES:
            r = got[b].get(("label", k))
            if r is None:
                sys.exit(f"scoreboard: {out}: no diagnosis cells at k = {k} against {b}")
            vals.append(fmt(r))
            need = 0.05 if b == "random_init" else 0.0
            if r[2] < need:
                missed.append(f"k={k} vs {SHORT[b]} {r[2]:+.3f}")
        parts.append(" / ".join(vals))
    for n in ("16", "48"):
        r = got["fc_baseline"].get(("regression", n))
        if r is None:
            sys.exit(f"scoreboard: {out}: no regression cells from {n} subjects")
        parts.append(fmt(r))
        if r[2] < 0 or (n == "16" and r[2] <= 0):
            missed.append(f"R2 n={n} vs FC {r[2]:+.3f}")
    fs8 = lambda j: next(e for e in j["pooled"]["few_shot"] if str(e["k"]) == "8")
    room = f"{np.mean([fs8(j)['random_init'] for j in js]):.2f} / {np.mean([fs8(j)['pretrained'] for j in js]):.2f}"
    orc = os.path.join(out, "oracle.json")
    if os.path.exists(orc):
        room += f" / {json.load(open(orc))['views']['trait_map/pooled']['few_shot']['8'][0]:.2f}"
    if motion_known(js):
        # what head motion alone reads (the probe's `motion`), where the probe knew it
        room += f"; motion {np.mean([fs8(j)['motion'] for j in js]):.2f}"
    if any(j.get("regress_out") for j in js):
        room += f" (regress_out: {', '.join(js[0]['regress_out'])})"
    parts.append(room)
    return f"| {name} | {form} | {len(js)} | " + " | ".join(parts) + \
        f" | {'; '.join(missed) if missed else 'none'} |", not missed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", metavar="NAME=OUT")
    ap.add_argument("--protocol", default="strict")
    ap.add_argument("--variant", default="default")
    o = ap.parse_args()
    print("| population | embedding (rank) | seeds | AUC k=4 vs FC / PCA / random | "
          "AUC k=8 vs FC / PCA / random | R2 n=16 vs FC | R2 n=48 vs FC | "
          "AUC k=8 random / pretrained / oracle | targets the mean misses |")
    print("|---|---|---|---|---|---|---|---|---|")
    met = 0
    for spec in o.runs:
        if "=" not in spec:
            sys.exit(f"scoreboard: {spec}: expected NAME=OUT")
        name, out = spec.split("=", 1)
        line, ok = board(name, out, o.variant, o.protocol)
        met += ok
        print(line, flush=True)
    print(f"\nEvery target met in the mean on {met} of {len(o.runs)} populations "
          f"({o.protocol} protocol; bold: the 90 % interval excludes 0).")


if __name__ == "__main__":
    main()
