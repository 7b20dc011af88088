#!/usr/bin/python3
"""adapt_summary.py: the table of docs/results.md section 10 from the runs of
bench/adapt_study.sh (OUT=DIR): per method and few-shot level, the AUC averaged over
seeds, with (sd over seeds / mean sd over folds), and the per-seed paired differences
that the text quotes.
    bench/adapt_summary.py DIR        (DIR holds w1, w2, ... of adapt_study.sh)
"""
import glob
import json
import os
import statistics as st
import sys


def load(w):
    """method name -> {k: (auc, fold sd)} for one seed's workdir"""
    out = {}
    p = json.load(open(os.path.join(w, "probe/report/probe.json")))
    for feat in ["pretrained", "random_init", "fc_baseline", "fc_pca"]:
        out["probe " + feat] = {str(r["k"]): (r[feat], r[feat + "_sd"]) for r in p["few_shot"]}
    for stage, kind in [("finetune", "finetune"), ("prompt", "prompt"), ("prompt_meta", "prompt")]:
        f = os.path.join(w, stage, "report", kind + ".json")
        if not os.path.exists(f):
            continue
        d = json.load(open(f))
        for enc, e in d["encoders"].items():
            out["%s %s" % (stage, enc)] = {str(r["k"]): (r["auc"], r["sd"]) for r in e["few_shot"]}
        out["%s params" % stage] = d["trainable_params"]
        if d.get("meta"):
            out["%s k_shot" % stage] = d["meta"].get("k_shot")
    return out


def main():
    ws = sorted(glob.glob(os.path.join(sys.argv[1], "w*")))
    ws = [w for w in ws if os.path.exists(os.path.join(w, "probe/report/probe.json"))]
    runs = [load(w) for w in ws]
    full = max(len(r) for r in runs) if runs else 0
    keep = [i for i, r in enumerate(runs) if len(r) == full]  # finished runs only
    runs, ws = [runs[i] for i in keep], [ws[i] for i in keep]
    if not runs:
        sys.exit("no finished run under " + sys.argv[1])
    print("%d seed(s): %s" % (len(runs), ", ".join(os.path.basename(w) for w in ws)))
    ks = list(runs[0]["probe pretrained"].keys())
    methods = [m for m in runs[0] if isinstance(runs[0][m], dict)]
    print("| | " + " | ".join("AUC k=%s" % k for k in ks) + " |")
    print("|---" * (len(ks) + 1) + "|")
    for m in methods:
        cells = []
        for k in ks:
            v = [r[m][k][0] for r in runs if m in r]
            sd = [r[m][k][1] for r in runs if m in r]
            between = st.stdev(v) if len(v) > 1 else 0.0
            cells.append("%.3f (%.3f/%.2f)" % (st.mean(v), between, st.mean(sd)))
        print("| %s | %s |" % (m, " | ".join(cells)))
    for m in [m for m in runs[0] if m.endswith("params") or m.endswith("k_shot")]:
        print("%s: %s" % (m, runs[0][m]))
    pairs = [("finetune pretrained", "finetune random_init"),
             ("prompt_meta pretrained", "probe pretrained"),
             ("prompt_meta pretrained", "prompt pretrained"),
             ("prompt_meta pretrained", "prompt_meta random_init"),
             ("probe pretrained", "probe fc_baseline"),
             ("probe pretrained", "probe random_init")]
    print("per seed, paired differences (same folds):")
    for a, b in pairs:
        if a not in runs[0] or b not in runs[0]:
            continue
        diffs = ["k=%s: %s" % (k, ", ".join("%+.3f" % (r[a][k][0] - r[b][k][0]) for r in runs))
                 for k in ks]
        print("  %s - %s: %s" % (a, b, "; ".join(diffs)))


if __name__ == "__main__":
    main()
