#!/usr/bin/env bash
# report_motion.sh: the run report's head-motion QC (docs/report.md), written when the
# parcellate stage read the scans' confounds files: a tiny dataset whose patients move more gets
# fMRIPrep-style confounds files; the page's motion table equals numpy's reading of
# those files and of timeseries.h5 (median and largest mean framewise displacement,
# scrubbed scans and share, the AUC of mean FD alone by scipy's Mann-Whitney U), the
# warning note is there, the strip plot is an inline PNG, and headless Chromium renders
# the page with every image loaded (a SKIP when chromium cannot run). Without confounds
# there is no motion table. The graph store carries each scan's mean FD (a damaged
# /subjects/mean_fd is exit 3 naming the file), and the probe's
# `motion` feature set (mean FD alone) equals numpy/scipy's logistic regression on it;
# with `regress_out: [motion, site]` the FC triangle's probabilities equal numpy's
# (least squares on the training windows, residuals, the same classifier).
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 12 --volumes 40 --seed 5 --sites 3
$PY - "$T/d/bids" <<'PYEOF' || notok "confounds files"
import csv, glob, os, sys, numpy as np
b = sys.argv[1]
dx = {r["participant_id"]: r["diagnosis"] for r in csv.DictReader(open(b + "/participants.tsv"), delimiter="\t")}
rng = np.random.default_rng(4)
M = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
for img in sorted(glob.glob(b + "/sub-*/func/*_bold.nii.gz")):
    sid = os.path.basename(img).split("_")[0]
    step = 0.04 if dx[sid] == "patient" else 0.015
    P = np.cumsum(rng.normal(0, step, (40, 6)), axis=0)
    if dx[sid] == "patient":
        P[20, :3] += 0.4  # out and back: two volumes above 0.5 mm
    P[:, 3:] /= 50
    d = np.vstack([np.full((1, 6), np.nan), np.diff(P, axis=0)])
    fd = np.abs(d[:, :3]).sum(1) + 50 * np.abs(d[:, 3:]).sum(1)
    with open(img.replace("_bold.nii.gz", "_desc-confounds_timeseries.tsv"), "w") as f:
        f.write("\t".join(M + ["framewise_displacement"]) + "\n")
        for t in range(40):
            f.write("\t".join(["%.8g" % v for v in P[t]] + ["n/a" if t == 0 else "%.8g" % fd[t]]) + "\n")
PYEOF
mk() {  # mk FILE WORKDIR PARCELLATE-OPTIONS
  printf 'name: rm\nworkdir: %s\nseed: 9\ninputs: {bids: %s/bids}\natlases:\n  - {name: tiny, path: %s/atlas.nii.gz}\nstages:\n' "$2" "$T/d" "$T/d" >"$1"
  printf '  - {name: parc, uses: parcellate, with: {standardize: zscore%s}}\n' "$3" >>"$1"
  printf '  - {name: conn, uses: connectivity, with: {windows: {length: 10, stride: 5}}}\n' >>"$1"
}
mk "$T/a.yaml" "$T/wa" ", confounds: [motion6], scrub: 0.5"
expect_rc "parcellate with confounds and scrub, connectivity (2 ranks: each reads its own images' confounds for the summary)" 0 $MPIRUN 2 "$BGFM" run "$T/a.yaml" --quiet
H="$T/wa/report/index.html"
check "motion table = numpy on the confounds files and timeseries.h5; the note; an inline strip plot" $PY - "$H" "$T/wa/parc/timeseries.h5" "$T/d/bids" <<'PYEOF'
import csv, glob, html.parser, sys, h5py, numpy as np
from scipy.stats import mannwhitneyu
class P(html.parser.HTMLParser):
    def __init__(s):
        super().__init__(); s.t = None; s.rows = []; s.cell = None; s.text = ""; s.imgs = 0
    def handle_starttag(s, tag, a):
        a = dict(a)
        if tag == "table": s.t = a.get("id")
        if tag == "tr" and s.t == "motion-parc": s.rows.append([])
        if tag in ("td", "th") and s.t == "motion-parc": s.cell = {"v": a.get("data-v"), "text": ""}
        if tag == "img" and a.get("src", "").startswith("data:image/png;base64,"): s.imgs += 1
    def handle_data(s, d):
        s.text += d
        if s.cell is not None: s.cell["text"] += d
    def handle_endtag(s, tag):
        if tag in ("td", "th") and s.cell is not None: s.rows[-1].append(s.cell); s.cell = None
        if tag == "table": s.t = None
p = P(); p.feed(open(sys.argv[1], encoding="utf-8").read())
got = {r[0]["text"]: (r[1]["v"] if r[1]["v"] is not None else r[1]["text"]) for r in p.rows}
f = h5py.File(sys.argv[2], "r")
ids = [x.decode() for x in f["subjects/participant_id"][()]]
fd, ns, T = [], [], []
for sid in ids:
    rows = list(csv.DictReader(open(glob.glob(sys.argv[3] + "/%s/func/*confounds_timeseries.tsv" % sid)[0]), delimiter="\t"))
    v = np.array([float(r["framewise_displacement"]) for r in rows if r["framewise_displacement"] != "n/a"])
    fd.append(v.mean()); ns.append(int((v > 0.5).sum())); T.append(len(rows))
fd, ns = np.array(fd), np.array(ns)
assert np.allclose(f["subjects/mean_fd"][()], fd, atol=1e-12) and (f["subjects/n_scrubbed"][()] == ns).all()
lab = f["subjects/label"][()]; cls = f["subjects/label"].attrs["classes"]
cls = (cls.decode() if isinstance(cls, bytes) else cls).split(",")
assert got["confounds regressed"] == "motion6" and float(got["scrub (mm of framewise displacement)"]) == 0.5, got
assert abs(float(got["median of the scans' mean framewise displacement (mm)"]) - np.median(fd)) < 1e-12
assert abs(float(got["largest (mm)"]) - fd.max()) < 1e-12
assert float(got["scans with scrubbed volumes"]) == (ns > 0).sum() > 0
assert abs(float(got["share of all volumes scrubbed"]) - ns.sum() / sum(T)) < 1e-12
y = lab == 1; k = lab >= 0
auc = mannwhitneyu(fd[k & y], fd[k & ~y]).statistic / ((k & y).sum() * (k & ~y).sum())
key = "AUC of mean framewise displacement alone for %s against %s" % (cls[1], cls[0])
assert abs(float(got[key]) - auc) < 1e-12 and auc > 0.8, (got.get(key), auc)
assert "Motion alone separates the labels" in p.text and p.imgs >= 1
print("# mean FD median %.3f, AUC %.3f (%s vs %s), %d scans scrubbed" % (np.median(fd), auc, cls[1], cls[0], (ns > 0).sum()))
PYEOF
cp "$H" "$T/page.bak"
BGFM_FAIL_ALLOC_WHAT="AUC ranks" "$BGFM" report "$T/wa" --html >"$T/oom.out" 2>&1; rc=$?
check "report --html out of memory for the AUC of mean FD alone: exit 5, its message, the old page kept" \
  bash -c "[ $rc -eq 5 ] && grep -q 'out of memory allocating .* for AUC ranks\$' '$T/oom.out' && cmp -s '$H' '$T/page.bak'"
check "the graph store carries each scan's mean FD (index and every shard) = timeseries.h5's" $PY - "$T/wa/conn" "$T/wa/parc/timeseries.h5" <<'PYEOF'
import glob, sys, h5py, numpy as np
fd = h5py.File(sys.argv[2], "r")["subjects/mean_fd"][()]
idx = h5py.File(sys.argv[1] + "/index.h5", "r")
assert np.array_equal(idx["graphs/mean_fd"][()], fd[idx["graphs/subject"][()]])
n = 0
for sh in sorted(glob.glob(sys.argv[1] + "/shard-*.h5")):
    for a, g in h5py.File(sh, "r")["graphs"].items():
        assert np.array_equal(g["mean_fd"][()], fd[g["subject"][()]]), (sh, a)
        n += len(g["subject"])
assert n == len(idx["graphs/subject"]) > 0 and np.isfinite(fd).all()
PYEOF
# a timeseries.h5 whose /subjects/mean_fd does not hold one value per subject: the
# connectivity stage stops (exit 3) naming the file and the dataset, and writes no store
cp "$T/wa/parc/timeseries.h5" "$T/bad_ts.h5"
$PY -c "
import h5py, sys; f = h5py.File(sys.argv[1], 'r+'); v = f['subjects/mean_fd'][()]; del f['subjects/mean_fd']
f['subjects/mean_fd'] = v[:5]" "$T/bad_ts.h5" || notok "damaging mean_fd"
mkdir -p "$T/obad"
$MPIRUN 1 "$ROOT/${BGFM_BUILD:-build}/tests/test_connectivity" stage "$T/bad_ts.h5" "$T/obad" >"$T/bad.out" 2>&1; rc=$?
check "a damaged /subjects/mean_fd: exit 3 naming the file and the dataset, no index written" \
  test $rc -eq 3 -a -n "$(grep -l "bad_ts.h5.*/subjects/mean_fd. holds .* values, expected" "$T/bad.out")" -a ! -e "$T/obad/index.h5"
# the probe's `motion` feature set: the scan's mean FD alone, through the same classifier
cp "$T/a.yaml" "$T/p.yaml"
printf '  - {name: pre, uses: pretrain, with: {epochs: 1, batch_size: 8, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0}}\n' >>"$T/p.yaml"
printf '  - {name: probe, uses: probe, with: {folds: 3, few_shot: [2, all], targets: [age]}}\n' >>"$T/p.yaml"
expect_rc "pretrain and probe after it (2 ranks)" 0 $MPIRUN 2 "$BGFM" run "$T/p.yaml" --quiet 2> "$T/p.err"
check "the probe warns once that head motion alone reads the label (AUC 1.00)" \
  test "$(grep -c 'probe: head motion alone (mean framewise displacement) reads the label at AUC 1.00' "$T/p.err")" = 1
check "motion alone: every out-of-fold probability = numpy/scipy L2 logistic regression (C = 1, standardised) on the scan's mean FD; it separates the movers (AUC > 0.8); probe.json says all 12 known" $PY - "$T/wa/probe/report" "$T/wa/parc/timeseries.h5" "$ROOT/tests/reference" <<'PYEOF'
import collections, csv, json, sys, h5py, numpy as np
sys.path.insert(0, sys.argv[3])
from logreg_ref import subject_oof
R = sys.argv[1]
f = h5py.File(sys.argv[2], "r")
fd = dict(zip([x.decode() for x in f["subjects/participant_id"][()]], f["subjects/mean_fd"][()]))
d = json.load(open(R + "/probe.json"))
assert d["motion"]["subjects_known"] == d["motion"]["subjects"] == 12, d["motion"]
assert d["pooled"]["motion"]["auc"] > 0.8 and d["effective_dim"]["tiny"]["motion"] == 1, d["pooled"]["motion"]
rows = [r for r in csv.DictReader(open(R + "/predictions.csv")) if r["features"] == "motion"]
E = h5py.File(R + "/embeddings.h5", "r")
win = collections.Counter(x.decode() if isinstance(x, bytes) else str(x) for x in E["participant_id"][()])
worst, n = subject_oof(rows, lambda p: [fd[p]], win)
assert worst < 1e-4 and n == 2 * d["repeats"] * 12, (worst, n)
print("# %d motion-alone probabilities, max abs diff %.1e, AUC %.3f" % (n, worst, d["pooled"]["motion"]["auc"]))
PYEOF
printf '  - {name: probe_mo, uses: probe, with: {folds: 3, few_shot: [2, all], targets: [age], regress_out: [motion, site]}}\n' >>"$T/p.yaml"
expect_rc "a probe with regress_out: [motion, site] after it" 0 $MPIRUN 2 "$BGFM" run "$T/p.yaml" --quiet 2> "$T/mo.err"
check "with motion regressed out, no such warning" test "$(grep -c 'head motion alone (mean framewise displacement) reads' "$T/mo.err")" = 0
check "regress_out: recorded; motion and site alone become constant (AUC 0.5); every FC-triangle probability = numpy (lstsq on [1, mean FD, site one-hot] of the training windows, residuals, then the L2 logistic regression)" $PY - "$T/wa/probe_mo/report" "$T/wa/parc/timeseries.h5" "$T/wa/conn" "$ROOT/tests/reference" <<'PYEOF'
import csv, json, sys, h5py, numpy as np
from scipy.special import expit
sys.path.insert(0, sys.argv[4])
from logreg_ref import ref_fit
R = sys.argv[1]
d = json.load(open(R + "/probe.json"))
assert d["regress_out"] == ["motion", "site"], d["regress_out"]
for v in [d["pooled"]] + list(d["atlases"].values()):
    assert v["motion"]["auc"] == 0.5 and v["site"]["auc"] == 0.5, (v["motion"]["auc"], v["site"]["auc"])
f = h5py.File(sys.argv[2], "r")
ids = [x.decode() for x in f["subjects/participant_id"][()]]
fd = dict(zip(ids, f["subjects/mean_fd"][()]))
idx = h5py.File(sys.argv[3] + "/index.h5", "r")
s = lambda x: x.decode() if isinstance(x, bytes) else str(x)
pid = [s(x) for x in idx["graphs/participant_id"][()]]
site = [s(x) for x in idx["graphs/site"][()]]
sites = sorted(set(site))
shard = [s(x) for x in idx["shards"][()]]
fc = []
for g in range(len(pid)):
    a = h5py.File(sys.argv[3] + "/" + shard[idx["graphs/shard"][g]], "r")["graphs/tiny/fc"][idx["graphs/row"][g]]
    fc.append(a[np.triu_indices(a.shape[0], 1)].astype(np.float64))
fc = np.array(fc)
C = np.array([[fd[p]] + [float(site[g] == q) for q in sites] for g, p in enumerate(pid)])
rows = [r for r in csv.DictReader(open(R + "/predictions.csv")) if r["features"] == "fc_baseline" and r["view"] == "tiny"]
worst, n = 0.0, 0
for rep in range(d["repeats"]):
    rr = {r["participant_id"]: r for r in rows if int(r["repeat"]) == rep}
    fold = {p: int(r["fold"]) for p, r in rr.items()}
    lab = {p: int(r["label"]) for p, r in rr.items()}
    g_in = [g for g in range(len(pid)) if pid[g] in rr]
    for k in sorted(set(fold.values())):
        tr = np.array([fold[pid[g]] != k for g in g_in]); X = fc[g_in]; Cg = C[g_in]
        A = np.hstack([np.ones((tr.sum(), 1)), Cg[tr]])
        B = np.linalg.lstsq(A, X[tr], rcond=None)[0]
        Xr = X - np.hstack([np.ones((len(g_in), 1)), Cg]) @ B
        mu = Xr[tr].mean(0); sd = Xr[tr].std(0); sd[sd <= 1e-12 * np.maximum(1, abs(mu))] = 1
        Z = (Xr - mu) / sd
        y = np.array([lab[pid[g]] for g in g_in])
        W, b = ref_fit(Z[tr], y[tr], 2, 1.0)
        p = expit(Z[~tr] @ W[0] + b[0])
        te = [pid[g] for g in np.array(g_in)[~tr]]
        for q in sorted(set(te)):
            got = float(rr[q]["p_1"]); want = p[[t == q for t in te]].mean()
            worst = max(worst, abs(got - want)); n += 1
assert worst < 1e-4 and n == d["repeats"] * 12, (worst, n)
print("# %d FC-triangle probabilities with motion and site regressed out, max abs diff %.1e" % (n, worst))
# the ridge side: motion alone, regressed out of itself, predicts every test subject by
# the training mean, so each cell's R2 is the null model's
cells = list(csv.DictReader(open(R + "/cells.csv")))
key = lambda r: (r["view"], r["size"], r["repeat"], r["fold"])
r2 = {key(r): float(r["value"]) for r in cells if r["task"] == "age" and r["features"] == "motion" and r["metric"] == "r2"}
null = {key(r): float(r["value"]) for r in cells if r["task"] == "age" and r["features"] == "motion" and r["metric"] == "r2_train_mean"}
assert r2 and r2.keys() == null.keys() and all(abs(r2[k] - null[k]) < 1e-9 for k in r2), (r2, null)
PYEOF
check "the run report: a head-motion-alone row in each probe's table, the regress_out note on probe_mo's only" $PY - "$T/wa/report/index.html" <<'PYEOF'
import re, sys
h = open(sys.argv[1], encoding="utf-8").read()
assert len(re.findall(r'data-feat="motion"', h)) >= 4, "no motion rows"
m = re.search(r'<p class="note" id="regress-out-probe_mo">([^<]*)</p>', h)
assert m and m.group(1).endswith(": motion, site."), m
assert 'id="regress-out-probe"' not in h
PYEOF
# Nothing regressed: the confounds files are still read for head motion (the same mean FD,
# nothing scrubbed, the table says so); a file that cannot be read is a warning naming it
# and that scan's motion unknown; without files no motion table and no /subjects/mean_fd.
mk "$T/b.yaml" "$T/wb" ""
expect_rc "the same with nothing regressed (2 ranks)" 0 $MPIRUN 2 "$BGFM" run "$T/b.yaml" --quiet
check "nothing regressed: /subjects/mean_fd = the regressing run's (the same files), none scrubbed; the motion table says the files were read for motion only" $PY - "$T/wb" "$T/wa" <<'PYEOF'
import sys, h5py, numpy as np
b, a = (h5py.File(w + "/parc/timeseries.h5", "r") for w in sys.argv[1:])
assert np.array_equal(b["subjects/mean_fd"][()], a["subjects/mean_fd"][()]) and np.isfinite(b["subjects/mean_fd"][()]).all()
assert (b["subjects/n_scrubbed"][()] == 0).all() and (a["subjects/n_scrubbed"][()] > 0).any()
h = open(sys.argv[1] + "/report/index.html", encoding="utf-8").read()
assert 'id="motion-parc"' in h and "(none: the confounds files read for head motion only)" in h
assert "motion in the FC (nothing was regressed" in h
PYEOF
first=$(ls "$T"/d/bids/sub-*/func/*_desc-confounds_timeseries.tsv | head -1)
mkdir -p "$T/keep" && cp "$first" "$T/keep/" && head -20 "$T/keep/$(basename "$first")" >"$first"
mk "$T/c.yaml" "$T/wc" ""
expect_rc "nothing regressed, one confounds file cut short: the run goes on" 0 "$BGFM" run "$T/c.yaml" --quiet 2>"$T/c.err"
check "a warning names the file and says the scan's motion is unknown; that scan's mean FD is NaN, the others known" \
  $PY - "$T/wc/parc/timeseries.h5" "$first" "$T/c.err" <<'PYEOF'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
fd = f["subjects/mean_fd"][()]; ids = [x.decode() for x in f["subjects/participant_id"][()]]
sub = sys.argv[2].split("/")[-1].split("_")[0]
assert np.isnan(fd[ids.index(sub)]) and np.isfinite(np.delete(fd, ids.index(sub))).all(), fd
err = open(sys.argv[3]).read()
assert sys.argv[2] in err and "head motion is left unknown" in err and err.count("warning") == 1, err
PYEOF
rm -f "$T"/d/bids/sub-*/func/*_desc-confounds_timeseries.tsv
mk "$T/e.yaml" "$T/we" ""
expect_rc "the same without confounds files" 0 "$BGFM" run "$T/e.yaml" --quiet
check "without confounds files: no motion table, no /subjects/mean_fd" bash -c "test -s '$T/we/report/index.html' && ! grep -q 'id=\"motion-' '$T/we/report/index.html' && \
  $PY -c \"import h5py, sys; f = h5py.File('$T/we/parc/timeseries.h5', 'r'); sys.exit('subjects/mean_fd' in f or 'subjects/n_scrubbed' in f)\""
CHROME=$(command -v chromium || command -v chromium-browser || true)
if [ -n "$CHROME" ] && timeout 120 "$CHROME" --headless --disable-gpu --no-sandbox --disable-dev-shm-usage \
     --user-data-dir="$T/chrome-profile" --screenshot="$T/shot.png" --window-size=1100,3000 "file://$H" \
     >/dev/null 2>"$T/chrome.log" && [ -s "$T/shot.png" ]; then
  check "chromium renders the page with the motion section (a screenshot)" $PY -c "
import struct; d = open('$T/shot.png', 'rb').read()
assert d[:8] == b'\x89PNG\r\n\x1a\n' and struct.unpack('>II', d[16:24]) == (1100, 3000) and len(d) > 20000"
else
  echo "ok - chromium renders the page with the motion section # SKIP chromium cannot run here"
fi
