#!/usr/bin/env bash
# report_html.sh: the run report page WORKDIR/report/index.html (docs/report.md). A tiny
# pipeline up to the probe on 2 ranks writes it at the end of `bgfm run`; the page is one
# file without script or network references; its section headings are those of the stages
# that ran; its numbers equal probe.json, metrics.jsonl and the HDF5 outputs (read here
# with Python's json, html.parser and h5py, never through bgfm); headless Chromium renders
# it (a full-page screenshot; a test copy of the page with a check script counts images
# not loaded and script errors); a scaling CSV gets its section; a failed stage gives a
# page that says so; a training run stopped by a signal and resumed is counted; a figure
# gnuplot cannot draw costs only itself (each figure is retried alone) and is named; without
# gnuplot `bgfm report --html` exits 2 and writes nothing while `bgfm run` still succeeds
# with a page naming the missing figures; out of memory while the page is built is exit 5
# naming what was allocated, the page that was there left as it was. Chromium checks are
# TAP SKIPs (with the reason) when chromium cannot run here.
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 12 --volumes 40 --seed 3
# region 4 without signal in sub-02: under min_coverage in one scan, flagged in its graphs
$PY - "$T/d" <<'PYEOF' || notok "flag a region"
import nibabel as nib, numpy as np, sys
d = sys.argv[1]; f = d + "/bids/sub-02/func/sub-02_task-rest_bold.nii.gz"
lab = np.asarray(nib.load(d + "/atlas.nii.gz").dataobj); im = nib.load(f)
x = np.asarray(im.dataobj).copy(); x[lab == 4] = 0
nib.save(nib.Nifti1Image(x, im.affine, im.header), f)
PYEOF
mk() {  # mk FILE WORKDIR [STAGE LINES...]
  local f=$1 w=$2
  shift 2
  {
    printf 'name: rh\nworkdir: %s\nseed: 9\ninputs: {bids: %s/bids}\n' "$w" "$T/d"
    printf 'atlases:\n  - {name: tiny, path: %s/atlas.nii.gz}\nstages:\n' "$T/d"
    printf '  - {name: parc, uses: parcellate, with: {standardize: zscore}}\n'
    printf '  - {name: conn, uses: connectivity, with: {windows: {length: 10, stride: 5}}}\n'
    local s; for s in "$@"; do printf '  - %s\n' "$s"; done
  } >"$f"
}
PRE="{name: pre, uses: pretrain, with: {epochs: 3, batch_size: 8, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0, checkpoint_every: 10}}"
PROBE="{name: probe, uses: probe, with: {folds: 3, few_shot: [1, 2, all], targets: [age], few_shot_n: [3, 5, all], pca_components: 4}}"
mk "$T/a.yaml" "$T/wa" "$PRE" "$PROBE"
expect_rc "pipeline up to the probe on 2 ranks" 0 $MPIRUN 2 "$BGFM" run "$T/a.yaml" --quiet
H="$T/wa/report/index.html"
check "bgfm run wrote WORKDIR/report/index.html" test -s "$H"
check "no leftover scratch or temporary file" bash -c "! ls -A '$T/wa/.bgfm' | grep -q report- && ! ls -A '$T/wa/report' | grep -qv '^index.html$'"

# ---- the page as a file: self-contained, sections, numbers -----------------------------
cat >"$T/page.py" <<'PYEOF'
"""page.py HTML: the page parsed with html.parser into headings, tables (rows of cells
with their data-v) and images; imported by the checks below."""
import html.parser, sys
class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.h2, self.h3, self.imgs, self.tables, self.scripts, self.refs = [], [], [], {}, 0, []
        self._t = None; self._row = None; self._cell = None
    def handle_starttag(self, tag, a):
        a = dict(a)
        if tag == "h2": self.h2.append(a.get("id"))
        if tag == "h3": self.h3.append(a.get("id"))
        if tag == "img": self.imgs.append(a.get("src", ""))
        if tag == "script": self.scripts += 1
        for k in ("src", "href"):
            if k in a and tag != "img": self.refs.append(a[k])
        if tag == "table": self._t = a.get("id"); self.tables.setdefault(self._t, [])
        if tag == "tr" and self._t is not None: self._row = {"attrs": a, "cells": []}
        if tag in ("td", "th") and self._row is not None:
            self._cell = {"v": a.get("data-v"), "text": ""}
    def handle_data(self, d):
        if self._cell is not None: self._cell["text"] += d
    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row["cells"].append(self._cell); self._cell = None
        if tag == "tr" and self._row is not None:
            self.tables[self._t].append(self._row); self._row = None
        if tag == "table": self._t = None
def load(path):
    p = Page(); p.feed(open(path, encoding="utf-8").read()); return p
def num(c):
    return float("nan") if c["v"] in (None, "nan") else float(c["v"])
PYEOF
export PYTHONPATH="$T"
check "self-contained: no script, no external reference, every image an inline PNG, < 3 MB" $PY - "$H" <<'PYEOF'
import os, sys, base64, page
p = page.load(sys.argv[1])
assert p.scripts == 0, "script tag"
assert all(r.startswith("#") for r in p.refs), p.refs
assert p.imgs and all(s.startswith("data:image/png;base64,") for s in p.imgs), len(p.imgs)
for s in p.imgs:
    assert base64.b64decode(s.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
assert "http://" not in open(sys.argv[1]).read() and "https://" not in open(sys.argv[1]).read()
assert os.path.getsize(sys.argv[1]) < 3e6
print("# %d images, %d bytes" % (len(p.imgs), os.path.getsize(sys.argv[1])))
PYEOF
check "headings: the sections of the stages that ran, and no scaling section" $PY - "$H" <<'PYEOF'
import sys, page
p = page.load(sys.argv[1])
assert p.h2 == ["run", "dataset", "parcellation", "connectivity", "pretraining", "probe", "provenance"], p.h2
for h in ["dataset-parc", "parcellation-parc", "connectivity-conn", "pretraining-pre", "probe-stage-probe"]:
    assert h in p.h3 or "h-" + h in p.h3, (h, p.h3)
PYEOF
check "provenance: each stage's BLAS kernel as its manifest says" $PY - "$H" "$T/wa" <<'PYEOF'
import glob, json, sys
h = open(sys.argv[1], encoding="utf-8").read()
ms = glob.glob(sys.argv[2] + "/*/manifest.json")
assert ms
for m in ms:
    b = json.load(open(m))["blas"]
    assert b.startswith("OpenBLAS ") and "<th>BLAS (kernel)</th><td>" + b + "</td>" in h, (m, b)
assert h.count("<th>BLAS (kernel)</th>") == len(ms), (h.count("<th>BLAS (kernel)</th>"), len(ms))
PYEOF
check "pretraining numbers = metrics.jsonl (the latest run's train_step lines)" $PY - "$H" "$T/wa/metrics.jsonl" <<'PYEOF'
import json, math, sys, page
p = page.load(sys.argv[1])
L = [json.loads(l) for l in open(sys.argv[2])]
steps = [l for l in L if l["event"] == "train_step" and l["stage"] == "pre"]
rows = {r["attrs"].get("data-k"): page.num(r["cells"][1]) for r in p.tables["pretrain-pre"]}
last = steps[-1]
want = {"steps": len(steps), "last_step": last["step"], "epochs": max(l["epoch"] for l in steps) + 1,
        "loss": last["loss"], "loss_rec": last["loss_rec"], "loss_adj": last["loss_adj"],
        "loss_cl": last["loss_cl"], "lr": last["lr"], "ranks": 2, "resumes": 0, "stops": 0,
        "mean_graphs_per_s": sum(l["graphs_per_s"] for l in steps) / len(steps),
        "compute_s": sum(l["compute_s"] for l in steps), "comm_s": sum(l["comm_s"] for l in steps),
        "io_s": sum(l["io_s"] for l in steps)}
for k, v in want.items():
    assert math.isclose(rows[k], v, rel_tol=1e-12, abs_tol=1e-300), (k, rows[k], v)
assert len(steps) > 3 and [l["step"] for l in steps] == sorted(l["step"] for l in steps)
PYEOF
check "dataset numbers = timeseries.h5 and the manifest" $PY - "$H" "$T/wa/parc/timeseries.h5" <<'PYEOF'
import sys, h5py, numpy as np, page
p = page.load(sys.argv[1])
f = h5py.File(sys.argv[2], "r")
kv = [page.num(r["cells"][1]) for r in p.tables["dataset-parc"]]
S = f["subjects/participant_id"].shape[0]
assert kv[0] == S and kv[1] == len(set(f["subjects/participant_id"][()])), kv
assert kv[3] == 0, kv
lab = f["subjects/label"][()]
rows = p.tables["labels-parc"][1:]
got = {r["cells"][0]["text"]: page.num(r["cells"][1]) for r in rows}
classes = f["subjects/label"].attrs["classes"]
classes = (classes.decode() if isinstance(classes, bytes) else classes).split(",")
for i, c in enumerate(classes):
    assert got[c] == (lab == i).sum(), (c, got)
assert got["unknown"] == (lab < 0).sum()
PYEOF
check "parcellation QC = timeseries.h5: the regions under min_coverage and how often" $PY - "$H" "$T/wa/parc/timeseries.h5" <<'PYEOF'
import sys, h5py, numpy as np, page
p = page.load(sys.argv[1])
f = h5py.File(sys.argv[2], "r")
fl = f["atlases/tiny/flagged"][()]; cov = f["atlases/tiny/coverage"][()]
lab = f["atlases/tiny/region_labels"][()]
rows = p.tables["coverage-parc-tiny"][1:]
want = {int(lab[r]): int(fl[:, r].sum()) for r in range(len(lab)) if fl[:, r].any()}
got = {int(page.num(r["cells"][1])): int(page.num(r["cells"][2])) for r in rows}
assert got == want and want == {4: 1}, (got, want)
for r in rows:
    i = list(lab).index(int(page.num(r["cells"][1])))
    assert abs(page.num(r["cells"][4]) - cov[:, i].astype(np.float64).mean()) < 1e-12
PYEOF
check "connectivity QC = the graph store: graph counts, mean edge density, flagged graphs" $PY - "$H" "$T/wa/conn" <<'PYEOF'
import sys, glob, h5py, numpy as np, page
p = page.load(sys.argv[1])
idx = h5py.File(sys.argv[2] + "/index.h5", "r")
dens, flagged, g0 = [], [], 0
for sh in [x.decode() for x in idx["shards"][()]]:
    f = h5py.File(sys.argv[2] + "/" + sh, "r")
    adj = f["graphs/tiny/adj"][()]; fl = f["graphs/tiny/flagged"][()]
    N = adj.shape[1]; iu = np.triu_indices(N, 1)
    dens += [a[iu].sum() / len(iu[0]) for a in adj]
    flagged += [g0 + i for i in range(len(fl)) if fl[i].any()]
    g0 += len(adj)
kv = [page.num(r["cells"][1]) for r in p.tables["conn-conn-tiny"]]
assert kv[0] == g0 == idx["graphs/atlas"].shape[0] and kv[1] == g0, kv
assert abs(kv[3] - np.mean(dens)) < 1e-12, (kv[3], np.mean(dens))
rows = p.tables["flagged-conn-tiny"][1:]
assert [int(page.num(r["cells"][0])) for r in rows] == flagged and len(flagged) > 0, flagged
assert all(r["cells"][1]["text"] == "sub-02" for r in rows)
PYEOF
check "probe tables = probe.json (classification, few-shot, effective dimension, label by site, regression)" $PY - "$H" "$T/wa/probe/report/probe.json" <<'PYEOF'
import json, math, sys, page
p = page.load(sys.argv[1]); d = json.load(open(sys.argv[2]))
F = ["pretrained", "random_init", "fc_baseline", "fc_pca", "site", "motion"]
def same(g, w):
    return math.isnan(g) if w is None else g == w
n = 0
for r in p.tables["probe-probe"][1:]:
    v, f = r["attrs"]["data-view"], r["attrs"]["data-feat"]
    b = (d["pooled"] if v == "pooled" else d["atlases"][v])[f]
    ks = ["auc", "auc_sd", "accuracy", "accuracy_sd", "balanced_accuracy", "balanced_accuracy_sd"]
    for c, k in zip(r["cells"][2:], ks):
        assert same(page.num(c), b[k]), (v, f, k, c, b[k])
    n += 1
assert n == len(F) * (1 + len(d["atlases"])), n
fs = p.tables["fewshot-probe-auc"][1:]
assert len(fs) == len(d["few_shot"]) > 0
for r, w in zip(fs, d["few_shot"]):
    assert same(page.num(r["cells"][1]), w["k_effective"])
    for i, f in enumerate(F):
        assert same(page.num(r["cells"][2 + 2 * i]), w[f]) and same(page.num(r["cells"][3 + 2 * i]), w[f + "_sd"])
m = 0
for r in p.tables["dim-probe"][1:]:
    a, f = r["attrs"]["data-atlas"], r["attrs"]["data-feat"]
    assert same(page.num(r["cells"][2]), d["effective_dim"][a][f])
    assert same(page.num(r["cells"][4]), d["subject_variance_share"][a][f]); m += 1
assert m == len(F) * len(d["effective_dim"])
# the labelled subjects per site and label, and the chi-squared test, as in probe.json
import html as htmlmod, re
raw = open(sys.argv[1]).read()
para = re.search(r'<p class="note" id="labelsite-probe">(.*?)</p>', raw, re.S)
assert para, "no label-by-site paragraph"
txt = re.sub(r"<[^>]+>", "", htmlmod.unescape(para.group(1)))
ls = d["label_site"]
want = ", ".join("%s %s" % (q, "/".join(str(v) for v in c)) for q, c in zip(ls["sites"], ls["counts"]))
assert ("): " + want + ".") in txt, (txt, want)
assert ("p = %.3g" % ls["p"]) in txt if ls["p"] is not None else "n/a" in txt, txt
for t in d["targets"]:
    rows = p.tables["reg-probe-" + t][1:]
    assert len(rows) == (len(F) + 1) * (1 + len(d["regression"][t]["atlases"]))  # the feature sets, the null model
    for r in rows:
        v, f = r["attrs"]["data-view"], r["attrs"]["data-feat"]
        vb = d["regression"][t]["pooled"] if v == "pooled" else d["regression"][t]["atlases"][v]
        if f == "train_mean":
            assert same(page.num(r["cells"][2]), vb["train_mean_r2"]) and same(page.num(r["cells"][3]), vb["train_mean_r2_sd"]), (t, v)
            continue
        b = vb[f]
        for c, k in zip(r["cells"][2:], ["r2", "r2_sd", "r2_oof", "pearson_r"]):
            assert same(page.num(c), b[k]), (t, v, f, k)
PYEOF

# ---- headless Chromium: a screenshot, every image loaded, no script error ---------------
CHROME=$(command -v chromium || command -v chromium-browser || true)
chrome() { timeout 120 "$CHROME" --headless --disable-gpu --no-sandbox --disable-dev-shm-usage \
  --user-data-dir="$T/chrome-profile" --hide-scrollbars "$@"; }
if [ -n "$CHROME" ] && ! chrome --dump-dom "file://$H" >"$T/probe-chrome.html" 2>"$T/chrome0.log"; then
  WHY="chromium does not start here: $(grep -v '^\s*$' "$T/chrome0.log" | tail -1)"; CHROME=
fi
[ -z "$CHROME" ] && WHY=${WHY:-"chromium is not installed (scripts/deps.sh test installs it)"}
if [ -z "$CHROME" ]; then
  for n in "full-page screenshot" "every image loaded, no script error" "failed-stage page renders"; do
    echo "ok - chromium: $n # SKIP $WHY"
  done
else
  chrome --screenshot="$T/shot.png" --window-size=1100,6000 "file://$H" >/dev/null 2>"$T/chrome1.log"
  check "chromium: full-page screenshot" $PY -c "
import sys, struct
d = open('$T/shot.png', 'rb').read()
assert d[:8] == b'\x89PNG\r\n\x1a\n' and len(d) > 20000
w, h = struct.unpack('>II', d[16:24]); assert (w, h) == (1100, 6000), (w, h)"
  # the test harness: a copy of the page with a check script (the product page has none)
  $PY - "$H" "$T/harness.html" <<'PYEOF'
import sys
s = open(sys.argv[1], encoding="utf-8").read()
js = """<script>
var errs = [];
window.addEventListener('error', function (e) { errs.push(String(e.message || e.type)); }, true);
window.addEventListener('load', function () {
  var im = Array.prototype.slice.call(document.images);
  var bad = im.filter(function (i) { return !i.complete || i.naturalWidth === 0; });
  var d = document.createElement('div'); d.id = 'bgfm-test';
  d.textContent = 'images=' + im.length + ' broken=' + bad.length + ' errors=' + errs.length + ' ' + errs.join('|');
  document.body.appendChild(d);
});
</script>"""
open(sys.argv[2], "w", encoding="utf-8").write(s.replace("<head>", "<head>" + js, 1))
PYEOF
  chrome --enable-logging=stderr --v=0 --virtual-time-budget=10000 --dump-dom "file://$T/harness.html" >"$T/dom.html" 2>"$T/console.log"
  nimg=$($PY -c "import page; print(len(page.load('$H').imgs))")
  check "chromium: every image loaded, no script error (images=$nimg)" bash -c "grep -q 'images=$nimg broken=0 errors=0 ' '$T/dom.html' && ! grep -q 'CONSOLE.*\(Error\|Uncaught\)' '$T/console.log'"
  grep -o 'images=[0-9][^<]*' "$T/dom.html" | sed 's/^/# /'
fi

# ---- a pipeline without pretrain and probe: their sections are absent -------------------
mk "$T/b.yaml" "$T/wb"
expect_rc "parcellate + connectivity only" 0 "$BGFM" run "$T/b.yaml" --quiet
check "no pretraining or probe section" $PY -c "
import page; p = page.load('$T/wb/report/index.html')
assert p.h2 == ['run', 'dataset', 'parcellation', 'connectivity', 'provenance'], p.h2"

# ---- a scaling study under the workdir (bgfm scale's CSV columns): its section and numbers
printf 'stage,mode,ranks,oversubscribed,items,items_unit,wall_s,items_per_s,speedup,efficiency,compute_s,comm_s,io_s,steps\nconn,strong,1,0,84,graphs,2.5,33.6,1,1,2,0.1,0.4,0\nconn,strong,2,0,84,graphs,1.5,56,1.66667,0.833333,1.1,0.2,0.2,0\n' >"$T/wb/scaling-conn-strong.csv"
"$BGFM" report "$T/wb" --html >/dev/null 2>&1
check "a scaling*.csv in the workdir: a Scaling section with its numbers" $PY - "$T/wb/report/index.html" "$T/wb/scaling-conn-strong.csv" <<'PYEOF'
import csv, sys, page
p = page.load(sys.argv[1])
assert p.h2 == ["run", "dataset", "parcellation", "connectivity", "scaling", "provenance"], p.h2
rows = p.tables["scaling-1"]
want = list(csv.reader(open(sys.argv[2])))
assert [c["text"] for c in rows[0]["cells"]] == want[0]
for r, w in zip(rows[1:], want[1:]):
    assert len(r["cells"]) == len(w)
    for c, x in zip(r["cells"], w):
        assert (c["text"] == x) if c["v"] is None else float(c["v"]) == float(x), (c, x)
assert len(rows) == len(want) == 3
PYEOF
rm "$T/wb/scaling-conn-strong.csv"

# ---- a failed stage: the page says so --------------------------------------------------
mk "$T/c.yaml" "$T/wc" "$PRE"
"$BGFM" run "$T/c.yaml" --only parc --quiet >/dev/null 2>&1
"$BGFM" run "$T/c.yaml" --only conn --quiet >/dev/null 2>&1
$PY - "$T/wc/conn/shard-00000.h5" <<'PYEOF'
import h5py, numpy as np, sys
with h5py.File(sys.argv[1], "r+") as f:   # NaN in every graph: pretraining fails (exit 6)
    x = f["graphs/tiny/fc"][()]; x[:, 1, 2] = x[:, 2, 1] = np.nan; f["graphs/tiny/fc"][...] = x
PYEOF
"$BGFM" run "$T/c.yaml" --only pre >"$T/c.out" 2>&1
rc=$?
check "the failing stage exits 6 and the report is still written" bash -c "[ $rc -eq 6 ] && test -s '$T/wc/report/index.html'"
check "the page says the stage failed, with its exit code" $PY - "$T/wc/report/index.html" <<'PYEOF'
import sys, page
p = page.load(sys.argv[1])
st = {r["cells"][0]["text"]: r["cells"][2]["text"] for r in p.tables["stages"][1:]}
assert st["parc"] == "complete" and st["conn"] == "complete", st
assert st["pre"].startswith("failed (exit 6, "), st
assert "pretraining" in p.h2
s = open(sys.argv[1]).read()
assert 'class="problem">stage pre: failed (exit 6' in s
PYEOF
if [ -n "$CHROME" ]; then
  chrome --screenshot="$T/shot-c.png" --window-size=1000,2000 "file://$T/wc/report/index.html" >/dev/null 2>&1
  check "chromium: failed-stage page renders" test -s "$T/shot-c.png"
fi

# ---- a training run stopped by a signal and resumed: the page counts it -----------------
mk "$T/r.yaml" "$T/wr" "$PRE"
BGFM_TEST_STOP_AFTER=4 "$BGFM_T" run "$T/r.yaml" --quiet >/dev/null 2>&1
rc=$?
"$BGFM" run "$T/r.yaml" --quiet >/dev/null 2>&1
check "stopped after step 4 (exit $rc) and resumed: resumes, stops and steps = metrics.jsonl" $PY - "$T/wr/report/index.html" "$T/wr/metrics.jsonl" <<'PYEOF'
import json, sys, page
p = page.load(sys.argv[1])
L = [json.loads(l) for l in open(sys.argv[2])]
ev = [l for l in L if l["event"] == "stage" and l["stage"] == "pre"]
steps = [l["step"] for l in L if l["event"] == "train_step" and l["stage"] == "pre"]
rows = {r["attrs"].get("data-k"): page.num(r["cells"][1]) for r in p.tables["pretrain-pre"]}
assert [e["status"] for e in ev] == [75, 0], ev
assert rows["stops"] == 1 and rows["resumes"] == 1, rows
assert rows["steps"] == len(set(steps)) == max(steps) == rows["last_step"], (rows, steps)
st = {r["cells"][0]["text"]: r["cells"][2]["text"] for r in p.tables["stages"][1:]}
assert st["pre"] == "complete", st
PYEOF

# ---- gnuplot failing: the batch fails, each figure is drawn alone; one figure that never
# draws is named on the page (bgfm run) or is the error (report --html, exit 4) -----------
mkdir -p "$T/badgnu"
cat >"$T/badgnu/gnuplot" <<'SH'
#!/bin/sh
# a gnuplot that fails on the whole-page script and on figure 2's own script
case "$1" in report.gp|fig-2.gp) echo "gnuplot: simulated error" >&2; exit 1 ;; esac
exec /usr/bin/gnuplot "$@"
SH
chmod +x "$T/badgnu/gnuplot"
PATH="$T/badgnu:$PATH" "$BGFM" report "$T/wb" --html >"$T/bg.out" 2>&1
rc=$?
check "report --html with a figure gnuplot cannot draw: exit 4 naming it, its script kept" bash -c "[ $rc -eq 4 ] && grep -q 'could not draw figure .*gnuplot fig-2.gp' '$T/bg.out' && ls '$T'/wb/.bgfm/report-*/fig-2.gp >/dev/null"
rm -rf "$T"/wb/.bgfm/report-*
touch "$T/wb/metrics.jsonl"  # newer than the page: bgfm run writes it again
PATH="$T/badgnu:$PATH" "$BGFM" run "$T/b.yaml" --quiet >"$T/bg2.out" 2>&1
rc=$?
check "bgfm run with it: exit 0, a warning, every other figure drawn alone" $PY - "$T/wb/report/index.html" "$rc" "$T/bg2.out" <<'PYEOF'
import sys, page
p = page.load(sys.argv[1]); s = open(sys.argv[1]).read()
assert sys.argv[2] == "0" and "could not draw figure" in open(sys.argv[3]).read()
assert s.count("figure not drawn") == 1, s.count("figure not drawn")
assert len(p.imgs) > 3
PYEOF

# ---- gnuplot missing: --html is an error and writes nothing; bgfm run only warns ----------
mkdir -p "$T/nognu"
for b in mpirun; do ln -sf "$(command -v $b)" "$T/nognu/$b"; done
rm -f "$T/wb/report/index.html"
PATH="$T/nognu" "$BGFM" report "$T/wb" --html >"$T/ng.out" 2>&1
rc=$?
check "bgfm report --html without gnuplot: exit 2, no page, the message names gnuplot" bash -c "[ $rc -eq 2 ] && ! test -e '$T/wb/report/index.html' && grep -q gnuplot '$T/ng.out'"
PATH="$T/nognu" "$BGFM" run "$T/b.yaml" >"$T/ng2.out" 2>&1
rc=$?
check "bgfm run without gnuplot: exit 0, a warning, a page naming the figures not drawn" bash -c "[ $rc -eq 0 ] && grep -q 'warning.*report' '$T/ng2.out' && grep -q 'figure not drawn' '$T/wb/report/index.html'"
expect_rc "bgfm report --html with gnuplot, the workdir given relative: exit 0" 0 bash -c "cd '$T' && '$BGFM' report wb --html"
expect_rc "bgfm report --html on a folder that is not a workdir: exit 2" 2 "$BGFM" report "$T/d" --html
expect_rc "bgfm run --no-report writes no page" 0 bash -c "rm -rf '$T/wb/report' && '$BGFM' run '$T/b.yaml' --quiet --no-report && ! test -e '$T/wb/report'"

# ---- out of memory while the page is built (BGFM_FAIL_ALLOC_WHAT: the first allocation of
# that purpose fails): exit 5 naming it, the page that was there left as it was (never one
# missing a part), no scratch folder left ---------------------------------------------------
cp "$H" "$T/page.bak"
for what in "report carpet plot" "report cluster order" "report projection" "report TR per scan"; do
  BGFM_FAIL_ALLOC_WHAT="$what" "$BGFM" report "$T/wa" --html >"$T/oom.out" 2>&1
  rc=$?
  check "report --html out of memory for '$what': exit 5, its message, the old page kept" \
    bash -c "[ $rc -eq 5 ] && grep -q 'out of memory allocating .* for $what\$' '$T/oom.out' &&
      cmp -s '$H' '$T/page.bak' && ! ls -A '$T/wa/.bgfm' | grep -q report-"
done
