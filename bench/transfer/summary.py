#!/usr/bin/python3
"""summary.py: the transfer study's tables (markdown) from every probe.json under OUT.

usage: summary.py OUT [--view pooled|<atlas>]

OUT/<variant>/<protocol>/seed<S>/probe/report/probe.json (bench/transfer_study.sh) and
OUT/oracle.json (oracle.py). Head motion alone (the probe's `motion`) is a column where
the probe knew the subjects' mean framewise displacement. Each cell: mean over seeds of the probe's mean over draws x
folds, then (in brackets) the sd over seeds / the mean sd over folds.

Paired comparisons (where the probe wrote report/cells.csv): for every size, the
difference pretrained - baseline over the cells both were measured on (the same seed,
fold draw and fold, so the same training and test subjects): its mean, a 90% interval
from a bootstrap over seeds x draws (folds of one draw share subjects, so a draw is the
unit resampled), and the share of cells where pretrained is ahead. An interval that
contains 0 is no difference (docs/results.md).
"""
import csv, glob, json, os, sys
import numpy as np

FEAT = ["pretrained", "random_init", "fc_baseline", "fc_pca"]


def load(out):
    runs = {}
    for p in sorted(glob.glob(os.path.join(out, "*", "*", "seed*", "probe", "report", "probe.json"))):
        parts = p[len(out):].strip("/").split("/")
        runs.setdefault((parts[0], parts[1]), []).append(json.load(open(p)))
    return runs


def view_of(j, view):
    return j["pooled"] if view == "pooled" else j["atlases"][view]


def cell(vals, sds):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "n/a"
    m = np.mean(vals)
    s_seed = np.std(vals, ddof=1) if len(vals) > 1 else 0.0
    s_fold = np.mean([x for x in sds if x is not None]) if sds else float("nan")
    return f"{m:.3f} ({s_seed:.3f}/{s_fold:.2f})"


def motion_known(js):
    """the probe's head-motion-alone feature set, where the probe knew someone's motion"""
    return ["motion"] if all(j.get("motion", {}).get("subjects_known", 0) > 0 for j in js) else []


def table_auc(js, view):
    fs = view_of(js[0], view)["few_shot"]
    ks = [str(e["k"]) for e in fs]
    cols = FEAT + motion_known(js)
    lines = ["| k per class | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for i, k in enumerate(ks):
        row = [k]
        for f in cols:
            v = [view_of(j, view)["few_shot"][i].get(f) for j in js]
            sd = [view_of(j, view)["few_shot"][i].get(f + "_sd") for j in js]
            row.append(cell(v, sd))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def table_r2(js, view):
    def fsn(j):
        m = j["regression"]["mean"]
        return m["few_shot"] if view == "pooled" else m["atlases"][view]["few_shot"]
    ns = [str(e["n"]) for e in fsn(js[0])]
    # the null model (every test subject predicted by the training subjects' mean), where
    # the probe reports it
    cols = FEAT + motion_known(js) + (["train_mean"] if "train_mean" in fsn(js[0])[0] else [])
    lines = ["| n subjects | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for i, n in enumerate(ns):
        row = [n]
        for f in cols:
            row.append(cell([fsn(j)[i].get(f) for j in js], [fsn(j)[i].get(f + "_sd") for j in js]))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def load_cells(out, variant, proto):
    """{(task, size, features): {(seed, repeat, fold): value}} of the headline metric"""
    cells = {}
    for p in sorted(glob.glob(os.path.join(out, variant, proto, "seed*", "probe", "report", "cells.csv"))):
        seed = p.split(os.sep)[-4]
        for r in csv.DictReader(open(p)):
            if r["metric"] not in ("auc", "r2"):
                continue
            key = (r["task"], r["view"], r["size"], r["features"])
            cells.setdefault(key, {})[(seed, r["repeat"], r["fold"])] = float(r["value"])
    return cells


def paired(cells, view, targets, base, rng):
    """rows of (task, size, mean diff, lo, hi, share ahead, cells) for pretrained - base;
    regression differences are averaged over the targets of each cell first"""
    rows = []
    sizes = {}
    for (task, v, size, f) in cells:
        if v == view and f == "pretrained":
            sizes.setdefault("label" if task == "label" else "regression", set()).add(size)
    order = lambda z: (z == "all", int(z) if z.isdigit() else 0)
    for kind in ("label", "regression"):
        for size in sorted(sizes.get(kind, ()), key=order):
            tasks = ["label"] if kind == "label" else targets
            diff = {}
            for t in tasks:
                a, b = cells.get((t, view, size, "pretrained"), {}), cells.get((t, view, size, base), {})
                for c in a.keys() & b.keys():
                    if np.isfinite(a[c]) and np.isfinite(b[c]):
                        diff.setdefault(c, []).append(a[c] - b[c])
            if not diff:
                continue
            d = {c: np.mean(v) for c, v in diff.items() if len(v) == len(tasks)}
            units = sorted({c[:2] for c in d})
            per = [np.array([d[c] for c in d if c[:2] == u]) for u in units]
            boot = []
            for _ in range(2000):
                pick = rng.integers(0, len(per), len(per))
                boot.append(np.mean(np.concatenate([per[i] for i in pick])))
            allv = np.array(list(d.values()))
            rows.append((kind, size, allv.mean(), np.percentile(boot, 5), np.percentile(boot, 95),
                         np.mean(allv > 0) + 0.5 * np.mean(allv == 0), len(allv)))
    return rows


def table_paired(out, variant, proto, view, targets):
    cells = load_cells(out, variant, proto)
    if not cells:
        return []
    lines = ["| task | size | vs " + " | vs ".join(FEAT[1:]) + " |", "|---" * (len(FEAT) + 1) + "|"]
    res = {b: paired(cells, view, targets, b, np.random.default_rng(7)) for b in FEAT[1:]}
    for i, r in enumerate(res[FEAT[1]]):
        row = ["diagnosis AUC" if r[0] == "label" else "R2 (mean of targets)", r[1]]
        for b in FEAT[1:]:
            q = res[b][i]
            mark = "**" if q[3] > 0 else ""
            row.append(f"{mark}{q[2]:+.3f}{mark} [{q[3]:+.3f}, {q[4]:+.3f}] {100 * q[5]:.0f}%")
        lines.append("| " + " | ".join(row) + " |")
    lines.append(f"\n({res[FEAT[1]][0][6]} paired cells per size for diagnosis; bold: the 90% interval is above 0)")
    return lines


def main():
    out = sys.argv[1]
    view = sys.argv[sys.argv.index("--view") + 1] if "--view" in sys.argv else "pooled"
    runs = load(out)
    if not runs:
        sys.exit("summary: no probe.json under " + out)
    for (variant, proto), js in sorted(runs.items()):
        print(f"\n### {variant}, protocol {proto}, view {view}: {len(js)} seed(s)")
        print("\nFew-shot diagnosis AUC, mean over seeds (sd over seeds / mean sd over folds)\n")
        print("\n".join(table_auc(js, view)))
        if js[0].get("regression", {}).get("mean", {}).get("few_shot"):
            print("\nFew-shot regression R2, mean over targets " + ",".join(js[0]["targets"]) + "\n")
            print("\n".join(table_r2(js, view)))
        pt = table_paired(out, variant, proto, view, js[0].get("targets", []))
        if pt:
            print("\nPaired differences pretrained - baseline over the same cells: mean [90% interval, bootstrap over seeds x draws] share of cells ahead\n")
            print("\n".join(pt))
        for key, title, fmt in (("effective_dim", "Effective dimension (participation ratio)", ".1f"),
                                ("subject_variance_share", "Share of variance between subjects", ".3f"),
                                ("label_variance_share", "Share of variance between labels", ".3f"),
                                ("site_variance_share", "Share of variance between sites", ".3f")):
            ed = [j[key] for j in js if key in j]
            if len(ed) < len(js):  # a probe.json of an earlier bgfm lacks it
                continue
            mean = lambda a, f: np.mean([np.nan if e[a][f] is None else e[a][f] for e in ed])
            print(f"\n{title} per atlas: " + "; ".join(
                f"{a}: " + ", ".join(f"{f} {mean(a, f):{fmt}}" for f in FEAT if f in ed[0][a])
                for a in ed[0]))
        ls = js[0].get("label_site")  # the same labelled subjects in every seed's probe
        if ls and ls.get("counts"):
            print("\nLabelled subjects per site and class: " + ", ".join(
                f"{q} {'/'.join(str(c) for c in n)}" for q, n in zip(ls["sites"], ls["counts"]))
                + (f"; chi-squared {ls['chi2']:.2f}, dof {ls['dof']}, p = {ls['p']:.3g}, "
                   f"Cramer's V {ls['cramers_v']:.2f}" if ls.get("p") is not None else ""))
    op = os.path.join(out, "oracle.json")
    if os.path.exists(op):
        o = json.load(open(op))
        print(f"\n### Oracles ({o['draws']} draws; {o['n_labelled']} labelled, {o['n_unlabelled']} unlabelled subjects)\n")
        print("| oracle | AUC k=2 | k=4 | k=8 | all | R2 n=16 | n=48 | all |")
        print("|---|---|---|---|---|---|---|---|")
        for name, r in o["views"].items():
            if name.startswith("trait_map/") and name != "trait_map/" + view and view != "pooled":
                continue
            a = [f"{r['few_shot'][k][0]:.3f}" for k in ("2", "4", "8", "all")]
            b = [f"{r['few_shot_n'][k][0]:.3f}" for k in ("16", "48", "all")]
            print(f"| {name} | " + " | ".join(a + b) + " |")


if __name__ == "__main__":
    main()
