#!/usr/bin/env python3
"""adapt_check.py: the checks the adaptation stages' e2e tests share (finetune_pipeline.sh,
prompt_pipeline.sh; docs/adapt.md), computed from the stages' files with independent code
(csv, json, scipy). Each subcommand exits non-zero (an assertion) when the check fails.

  folds_auc REPORT NAME PROBE_PREDICTIONS   the probe's folds, each labelled subject once per
                                            encoder, probabilities summing to 1, per-fold
                                            AUCs = scipy's Mann-Whitney U from predictions.csv
  flip PREDICTIONS FOLDS_OUT PARTICIPANTS FLIPPED_OUT
                                            the folds as a fold_file, and participants.tsv
                                            with the labels of fold 0's subjects flipped
  nopeek REPORT_A REPORT_B NAME             fold 0's cells keep their selection and
                                            predictions when its labels change; others change
  ranks REPORT_A REPORT_B NAME              the same selected epochs, losses and predictions
                                            within 1e-4 (1 against 2 ranks)
NAME is the report's JSON name without .json (finetune, prompt)."""
import csv
import json
import sys

from scipy.stats import mannwhitneyu


def folds_auc(R, name, probe_pred):
    d = json.load(open(f"{R}/{name}.json"))
    rows = list(csv.DictReader(open(R + "/predictions.csv")))
    prob = {r["participant_id"]: int(r["fold"]) for r in csv.DictReader(open(probe_pred)) if r["repeat"] == "0"}
    assert list(rows[0].keys())[:6] == ["view", "features", "repeat", "participant_id", "label", "fold"]
    for enc in d["encoders"]:
        rr = [r for r in rows if r["features"] == enc]
        assert sorted(r["participant_id"] for r in rr) == sorted(prob), "each labelled subject once"
        for r in rr:
            assert int(r["fold"]) == prob[r["participant_id"]], "the probe's fold"
            assert abs(sum(float(r[k]) for k in r if k.startswith("p_")) - 1) < 1e-9
        labels = sorted({r["label"] for r in rr})
        for f in range(d["folds"]):
            t = [r for r in rr if int(r["fold"]) == f]
            pos = [float(r["p_" + labels[1]]) for r in t if r["label"] == labels[1]]
            neg = [float(r["p_" + labels[1]]) for r in t if r["label"] == labels[0]]
            auc = mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg))
            assert abs(auc - d["encoders"][enc]["auc_folds"][0][f]) < 1e-12, (enc, f, auc)


def flip(pred, folds_out, participants, flipped_out):
    rows = [r for r in csv.DictReader(open(pred)) if r["features"] == "pretrained"]
    with open(folds_out, "w") as f:
        f.write("participant_id\tfold\n")
        for r in rows:
            f.write("%s\t%s\n" % (r["participant_id"], r["fold"]))
    test = {r["participant_id"] for r in rows if r["fold"] == "0"}
    lines = open(participants).read().splitlines()
    j = lines[0].split("\t").index("diagnosis")
    with open(flipped_out, "w") as f:
        f.write(lines[0] + "\n")
        for line in lines[1:]:
            c = line.split("\t")
            if c[0] in test:
                c[j] = "patient" if c[j] == "control" else "control"
            f.write("\t".join(c) + "\n")


def nopeek(ra, rb, name):
    a, b = (json.load(open(f"{p}/{name}.json")) for p in (ra, rb))
    ca, cb = a["encoders"]["pretrained"]["cells"], b["encoders"]["pretrained"]["cells"]
    assert a["fold_file"] and len(ca) == len(cb) > 0
    other = 0
    for x, y in zip(ca, cb):
        assert (x["k"], x["fold"]) == (y["k"], y["fold"])
        if x["fold"] == 0:
            for k in ["best_epoch", "epochs_run", "best_val_loss", "val_loss", "train_subjects", "val_subjects"]:
                assert x[k] == y[k], (k, x[k], y[k])
        else:
            other += x["val_loss"] != y["val_loss"]
    assert other > 0, "flipping training labels must change the other folds' fits"
    pa = [r for r in csv.DictReader(open(ra + "/predictions.csv")) if r["fold"] == "0"]
    pb = [r for r in csv.DictReader(open(rb + "/predictions.csv")) if r["fold"] == "0"]
    assert pa and [r["participant_id"] for r in pa] == [r["participant_id"] for r in pb]
    for r, s in zip(pa, pb):
        assert r["label"] != s["label"]
        assert [r[k] for k in r if k.startswith("p_")] == [s[k] for k in s if k.startswith("p_")]


def ranks(ra, rb, name):
    a, b = (json.load(open(f"{p}/{name}.json")) for p in (ra, rb))
    for enc in a["encoders"]:
        for x, y in zip(a["encoders"][enc]["cells"], b["encoders"][enc]["cells"]):
            assert x["best_epoch"] == y["best_epoch"] and x["epochs_run"] == y["epochs_run"]
            assert all((u is None and v is None) or abs(u - v) < 1e-4 * max(1, abs(u))
                       for u, v in zip(x["val_loss"], y["val_loss"]))  # None: no validation
    pa, pb = (list(csv.DictReader(open(p + "/predictions.csv"))) for p in (ra, rb))
    assert len(pa) == len(pb) > 0
    for r, s in zip(pa, pb):
        assert r["participant_id"] == s["participant_id"]
        for k in r:
            if k.startswith("p_"):
                assert abs(float(r[k]) - float(s[k])) < 1e-4, (k, r[k], s[k])


if __name__ == "__main__":
    cmds = {"folds_auc": folds_auc, "flip": flip, "nopeek": nopeek, "ranks": ranks}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        print(__doc__)
        sys.exit(2)
    cmds[sys.argv[1]](*sys.argv[2:])
