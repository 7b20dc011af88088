#!/usr/bin/env bash
# report_adapt.sh: the adaptation stages in `bgfm report` (text) and in the run report
# page's "Probe and adaptation" section (docs/report.md). A tiny pipeline on 2 ranks runs
# a probe (2 draws of folds) and four finetune stages: one on the probe's first draw
# (classification: the probe's rows over that draw, from its cells.csv), one regressing age
# on both draws, one with another seed, one with 4 folds (same seed). A stage of
# kind `prompt` is made from the first by hand (its report/prompt.json of the same shape,
# other numbers), so that any adaptation report is read. Checked here, reading the JSON and
# predictions files with Python (never through bgfm): which stages share the probe's folds
# (recomputed from the predictions files); the text per-stage tables and the tables of all
# methods; the page's tables (data-v) equal probe.json, finetune.json and prompt.json; the
# page has one few-shot figure per table and Chromium renders it; the section, its tables
# and the text table are absent without an adaptation stage (report_html.sh covers the
# probe-only page). Chromium checks are TAP SKIPs when chromium cannot run here.
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 12 --volumes 40 --seed 3
mk() {  # mk FILE WORKDIR [STAGE LINES...]
  local f=$1 w=$2
  shift 2
  {
    printf 'name: ra\nworkdir: %s\nseed: 9\ninputs: {bids: %s/bids}\n' "$w" "$T/d"
    printf 'atlases:\n  - {name: tiny, path: %s/atlas.nii.gz}\nstages:\n' "$T/d"
    printf '  - {name: parc, uses: parcellate, with: {standardize: zscore}}\n'
    printf '  - {name: conn, uses: connectivity, with: {windows: {length: 10, stride: 5}}}\n'
    printf '  - {name: pre, uses: pretrain, with: {epochs: 2, batch_size: 8, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0}}\n'
    local s; for s in "$@"; do printf '  - %s\n' "$s"; done
  } >"$f"
}
PROBE="{name: probe, uses: probe, with: {folds: 3, repeats: 2, few_shot: [1, 2, all], targets: [age], few_shot_n: [3, 5, all], pca_components: 4}}"
FT="{name: ft, uses: finetune, with: {folds: 3, few_shot: [2, all], epochs: 3, patience: 2, batch_size: 8, val_fraction: 0.25}}"
FTA="{name: ft_age, uses: finetune, with: {target: age, folds: 3, repeats: 2, few_shot: [5, all], epochs: 2, batch_size: 8, encoders: [pretrained], train: last_blocks, llrd: 0.5}}"
FTS="{name: ft_seed, uses: finetune, with: {folds: 3, seed: 4, epochs: 2, batch_size: 8, encoders: [random_init], train: head}}"
FTF="{name: ft_f4, uses: finetune, with: {folds: 4, epochs: 1, batch_size: 8, encoders: [random_init], train: head}}"
mk "$T/a.yaml" "$T/wa" "$PROBE" "$FT" "$FTA" "$FTS" "$FTF"
expect_rc "pipeline: probe + 4 finetune stages on 2 ranks" 0 $MPIRUN 2 "$BGFM" run "$T/a.yaml" --quiet
# a prompt stage: ft's outputs under another kind and other numbers (the page reads any kind)
$PY - "$T/wa" <<'PYEOF' || notok "make a prompt stage"
import json, os, shutil, sys
w = sys.argv[1]
os.makedirs(w + "/pr/report")
d = json.load(open(w + "/ft/report/finetune.json"))
d.update(format="bgfm-prompt", kind="prompt", stage="pr", trainable_params=123, wall_seconds=4.5)
for i, e in enumerate(d["encoders"].values()):
    for r in e["few_shot"]:
        r["auc"], r["sd"] = 0.61 + 0.01 * i, 0.07
    for c in e["cells"]:
        c["seconds"] = 0.25
json.dump(d, open(w + "/pr/report/prompt.json", "w"), indent=1)
shutil.copy(w + "/ft/report/predictions.csv", w + "/pr/report/predictions.csv")
m = json.load(open(w + "/ft/manifest.json"))
m.update(stage="pr", kind="prompt")
json.dump(m, open(w + "/pr/manifest.json", "w"))
PYEOF
"$BGFM" report "$T/wa" >"$T/text" 2>"$T/text.err"
check "bgfm report WORKDIR (text): exit 0" test $? -eq 0
"$BGFM" report "$T/wa" --html >/dev/null 2>"$T/html.err"
check "bgfm report WORKDIR --html: exit 0" test $? -eq 0
H="$T/wa/report/index.html"

# ---- the expected tables, from the files alone ----------------------------------------
cat >"$T/want.py" <<'PYEOF'
"""want.py WORKDIR: the tables of all methods as they should be, from probe.json, the
adaptation reports and the predictions files: a stage joins the probe when its task,
seed, draws and every (repeat, participant, fold) of the pooled view equal the probe's."""
import csv, glob, json, math, os
def folds(path, target, draws):
    rows = [r for r in csv.DictReader(open(path)) if r["view"] == "pooled" and (target is None or r["target"] == target) and int(r["repeat"]) < draws]
    f0 = rows[0]["features"]
    return sorted((r["repeat"], r["participant_id"], r["fold"]) for r in rows if r["features"] == f0)
def cells(w, target, draws):
    """the probe's pooled few-shot rows over draws 0..draws-1: {feature: {size: (mean, sd)}}"""
    import numpy as np
    v = {}
    for r in csv.DictReader(open(w + "/probe/report/cells.csv")):
        if r["view"] == "pooled" and r["task"] == (target or "label") and r["metric"] == ("r2" if target else "auc") and int(r["repeat"]) < draws:
            v.setdefault(r["features"], {}).setdefault(r["size"], []).append(float(r["value"]))
    out = {}
    for f, by in v.items():
        for k, x in by.items():
            x = np.array([y for y in x if math.isfinite(y)])
            out.setdefault(f, {})[k] = (float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else 0.0) if len(x) else (float("nan"), float("nan"))
    return out
def lev(k):
    return 10**9 if k == "all" else int(k)
def load(w):
    probe = json.load(open(w + "/probe/report/probe.json"))
    ads = []
    for p in sorted(glob.glob(w + "/*/report/*.json")):
        d = json.load(open(p))
        if os.path.basename(p) != "probe.json" and d.get("kind") == os.path.basename(p)[:-5] and "encoders" in d:
            ads.append((p.split("/")[-3], d))
    return probe, ads
def tables(w):
    probe, ads = load(w)
    out = {}
    for st, d in ads:
        tg = d["target"] if d["task"] == "regression" else None
        pred = "regression_predictions.csv" if tg else "predictions.csv"
        R = d["repeats"]
        joins = (d["seed"] == probe["seed"] and R <= probe["repeats"] and
                 folds(w + "/%s/report/%s" % (st, pred), tg, R) == folds(w + "/probe/report/" + pred, tg, R))
        key = ("probe" if joins else st, tg)
        t = out.setdefault(key, {})
        if joins and not t:
            fs = probe["few_shot"] if tg is None else probe["regression"][tg]["few_shot"]
            kk = "k" if tg is None else "n"
            sub = cells(w, tg, R) if R < probe["repeats"] else None
            for f in ["pretrained", "random_init", "fc_baseline", "fc_pca", "site", "motion"]:
                lv = {str(r[kk]): (r[f], r[f + "_sd"]) for r in fs} if sub is None else sub[f]
                t[("probe", f)] = {"levels": lv, "params": float("nan"), "seconds": float("nan")}
        m = "r2" if tg else "auc"
        for enc, e in d["encoders"].items():
            t[(st, enc)] = {"levels": {str(r["k"]): (r[m], r["sd"]) for r in e["few_shot"]},
                            "params": d["trainable_params"],
                            "seconds": sum(c["seconds"] for c in e["cells"])}
    return out
def levels(t):
    return sorted({k for r in t.values() for k in r["levels"]}, key=lev)
def close(a, b, tol):
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or math.isnan(b)
    return b is not None and not math.isnan(b) and abs(a - b) <= tol
PYEOF
export PYTHONPATH="$T"
check "which stages share the probe's folds (recomputed from the predictions files)" $PY - "$T/wa" <<'PYEOF'
import sys, want
t = want.tables(sys.argv[1])
assert set(t) == {("probe", None), ("probe", "age"), ("ft_seed", None), ("ft_f4", None)}, set(t)
assert {s for s, _ in t[("probe", None)]} == {"probe", "ft", "pr"}, t[("probe", None)].keys()
assert {s for s, _ in t[("probe", "age")]} == {"probe", "ft_age"}
probe = want.load(sys.argv[1])[0]
c = want.cells(sys.argv[1], None, 1)   # the probe's first draw differs from its two-draw means
assert c["pretrained"]["all"] != (probe["few_shot"][-1]["pretrained"], probe["few_shot"][-1]["pretrained_sd"])
PYEOF

check "text: each adaptation stage's table (encoder, level, metric mean +- sd, trainable, seconds) = its report" $PY - "$T/wa" "$T/text" <<'PYEOF'
import json, re, sys, want
w, text = sys.argv[1], open(sys.argv[2]).read()
probe, ads = want.load(w)
assert len(ads) == 5
for st, d in ads:
    m = re.search(r"^%s stage '%s' \(.*\)\n.*\n\n.*\n((?:\S.*\n)+)" % (d["kind"], st), text, re.M)
    assert m, st
    rows = [l.split() for l in m.group(1).splitlines() if not l.startswith("  ")]
    wantrows = []
    for enc, e in d["encoders"].items():
        for r in e["few_shot"]:
            sec = sum(c["seconds"] for c in e["cells"] if str(c["k"]) == str(r["k"]))
            wantrows.append((enc, str(r["k"]), r["k_effective"], r["auc" if d["task"] == "classification" else "r2"], r["sd"], d["trainable_params"], sec))
    assert len(rows) == len(wantrows), (st, rows)
    for g, x in zip(rows, wantrows):
        assert g[0] == x[0] and g[1] == x[1] and g[4] == "+-", (g, x)
        assert abs(float(g[2]) - x[2]) <= 0.005 and abs(float(g[3]) - x[3]) <= 5e-5 and abs(float(g[5]) - x[4]) <= 5e-5, (g, x)
        assert int(g[6]) == x[5] and abs(float(g[7]) - x[6]) <= 0.005, (g, x)
PYEOF

check "text: the tables of all methods (rows: methods, columns: few-shot levels) = the reports" $PY - "$T/wa" "$T/text" <<'PYEOF'
import math, re, sys, want
T = want.tables(sys.argv[1]); text = sys.argv[2] and open(sys.argv[2]).read()
blocks = re.findall(r"^all methods: (.*)\n(method.*)\n((?:\S.*\n)+)", text, re.M)
assert len(blocks) == len(T) == 4, len(blocks)
seen = set()
for head, cols, body in blocks:
    key = ("probe" if "probe stage 'probe'" in head else None, re.search(r"R2 of (\S+)", head).group(1) if "R2 of" in head else None)
    rows = [l.split() for l in body.splitlines()]
    if key[0] is None:
        key = (rows[0][0], key[1])
    t = T[key]; seen.add(key)
    lv = want.levels(t)
    assert cols.split()[1:-2] == [("n=" if key[1] else "k=") + k for k in lv], (cols, lv)
    assert len(rows) == len(t)
    for r in rows:
        x = t[(r[0], r[1])]; i = 2
        for k in lv:
            if r[i] == "n/a":
                assert k not in x["levels"], (r, k); i += 1; continue
            m, sd = x["levels"][k]
            assert r[i + 1] == "+-" and abs(float(r[i]) - m) <= 5e-5 and abs(float(r[i + 2]) - sd) <= 5e-5, (r, k, m, sd)
            i += 3
        f = lambda v: float("nan") if v == "n/a" else float(v)
        assert want.close(x["params"], f(r[i]), 0.5) and want.close(x["seconds"], f(r[i + 1]), 0.005), (r, x)
        assert i + 2 == len(r)
assert seen == set(T)
assert "not in a table with a probe: another seed than probe 'probe' (4, 9)" in text
assert "not in a table with a probe: other folds than probe 'probe' (predictions.csv)" in text
PYEOF

check "page: each adaptation stage's table and the tables of all methods = the reports (data-v, exact)" $PY - "$H" "$T/wa" <<'PYEOF'
import math, sys, json, want
sys.path.insert(0, ".")
import html.parser
class P(html.parser.HTMLParser):
    def __init__(s):
        super().__init__(); s.t = {}; s.cur = None; s.row = None; s.cell = None; s.h2 = []; s.h3 = []; s.imgs_after = {}
    def handle_starttag(s, tag, a):
        a = dict(a)
        if tag == "h2": s.h2.append(a.get("id"))
        if tag == "h3": s.h3.append(a.get("id"))
        if tag == "img" and s.h3: s.imgs_after[s.h3[-1]] = s.imgs_after.get(s.h3[-1], 0) + 1
        if tag == "table": s.cur = a.get("id"); s.t[s.cur] = []
        if tag == "tr" and s.cur: s.row = {"a": a, "c": []}
        if tag in ("td", "th") and s.row is not None: s.cell = {"v": a.get("data-v"), "l": a.get("data-level"), "x": ""}
    def handle_data(s, d):
        if s.cell is not None: s.cell["x"] += d
    def handle_endtag(s, tag):
        if tag in ("td", "th") and s.cell is not None: s.row["c"].append(s.cell); s.cell = None
        if tag == "tr" and s.row is not None: s.t[s.cur].append(s.row); s.row = None
        if tag == "table": s.cur = None
p = P(); p.feed(open(sys.argv[1]).read())
def num(c): return float("nan") if c["v"] in (None, "nan") else float(c["v"])
assert p.h2 == ["run", "dataset", "parcellation", "connectivity", "pretraining", "probe", "provenance"], p.h2
probe, ads = want.load(sys.argv[2])
for st, d in ads:
    assert "adapt-stage-" + st in p.h3, st
    rows = p.t["adapt-" + st][1:]
    m = "auc" if d["task"] == "classification" else "r2"
    wr = [(enc, r, e) for enc, e in d["encoders"].items() for r in e["few_shot"]]
    assert len(rows) == len(wr)
    for g, (enc, r, e) in zip(rows, wr):
        assert g["a"]["data-enc"] == enc and g["a"]["data-k"] == str(r["k"])
        c = g["c"]
        assert num(c[2]) == r["k_effective"] and num(c[3]) == r[m] and num(c[4]) == r["sd"] and num(c[5]) == d["trainable_params"]
        assert math.isclose(num(c[6]), sum(x["seconds"] for x in e["cells"] if str(x["k"]) == str(r["k"])), rel_tol=1e-12)
T = want.tables(sys.argv[2])
ids = {("probe", None): "methods-probe", ("probe", "age"): "methods-probe-age", ("ft_seed", None): "methods-ft_seed",
       ("ft_f4", None): "methods-ft_f4"}
for key, t in T.items():
    rows = p.t[ids[key]]
    lv = want.levels(t)
    assert [c["l"] for c in rows[0]["c"] if c["l"]] == lv, (key, rows[0])
    assert len(rows) - 1 == len(t)
    for r in rows[1:]:
        x = t[(r["a"]["data-stage"], r["a"]["data-feat"])]
        c = r["c"][2:]
        for i, k in enumerate(lv):
            m, sd = x["levels"].get(k, (None, None))
            tol = 1e-12 * (1 + abs(m or 0) + abs(sd or 0))  # the probe's rows over fewer draws: numpy's sums
            assert want.close(m, num(c[2 * i]), tol) and want.close(sd, num(c[2 * i + 1]), tol), (key, r, k)
        assert want.close(x["params"], num(c[-2]), 0) and want.close(x["seconds"], num(c[-1]), 1e-12 * max(1, x["seconds"] if not math.isnan(x["seconds"]) else 1))
    assert p.imgs_after.get("methods-stage-" + ids[key][8:], 0) == 1, (key, p.imgs_after)
kinds = {r["a"]["data-kind"] for r in p.t["methods-probe"][1:]}
assert kinds == {"probe", "finetune", "prompt"}, kinds
PYEOF

# ---- headless Chromium: the page renders, every image loads -----------------------------
CHROME=$(command -v chromium || command -v chromium-browser || true)
chrome() { timeout 120 "$CHROME" --headless --disable-gpu --no-sandbox --disable-dev-shm-usage \
  --user-data-dir="$T/chrome-profile" --hide-scrollbars "$@"; }
if [ -n "$CHROME" ] && ! chrome --dump-dom "file://$H" >"$T/probe-chrome.html" 2>"$T/chrome0.log"; then
  WHY="chromium does not start here: $(grep -v '^\s*$' "$T/chrome0.log" | tail -1)"; CHROME=
fi
[ -z "$CHROME" ] && WHY=${WHY:-"chromium is not installed (scripts/deps.sh test installs it)"}
if [ -z "$CHROME" ]; then
  echo "ok - chromium: the page with adaptation renders, every image loaded # SKIP $WHY"
else
  $PY - "$H" "$T/harness.html" <<'PYEOF'
import sys
s = open(sys.argv[1], encoding="utf-8").read()
js = """<script>
var errs = [];
window.addEventListener('error', function (e) { errs.push(String(e.message || e.type)); }, true);
window.addEventListener('load', function () {
  var im = Array.prototype.slice.call(document.images);
  var bad = im.filter(function (i) { return !i.complete || i.naturalWidth === 0; });
  var t = document.getElementById('methods-probe');
  var d = document.createElement('div'); d.id = 'bgfm-test';
  d.textContent = 'images=' + im.length + ' broken=' + bad.length + ' errors=' + errs.length +
    ' methods_width=' + (t ? t.getBoundingClientRect().width : 0);
  document.body.appendChild(d);
});
</script>"""
open(sys.argv[2], "w", encoding="utf-8").write(s.replace("<head>", "<head>" + js, 1))
PYEOF
  chrome --virtual-time-budget=10000 --dump-dom "file://$T/harness.html" >"$T/dom.html" 2>/dev/null
  nimg=$(grep -o 'data:image/png' "$H" | wc -l)
  check "chromium: the page with adaptation renders, every image loaded (images=$nimg)" bash -c "grep -q 'images=$nimg broken=0 errors=0 methods_width=[1-9]' '$T/dom.html'"
  grep -o 'images=[0-9][^<]*' "$T/dom.html" | sed 's/^/# /'
fi

# ---- without an adaptation stage: no adaptation tables, no table of all methods -----------
mk "$T/b.yaml" "$T/wb" "$PROBE"
expect_rc "pipeline up to the probe only" 0 "$BGFM" run "$T/b.yaml" --quiet
"$BGFM" report "$T/wb" >"$T/textb" 2>&1
check "text without adaptation: the probe's tables, no adaptation or all-methods table" bash -c "grep -q \"^probe stage 'probe'\" '$T/textb' && ! grep -q 'all methods\|finetune stage\|not in a table' '$T/textb'"
check "page without adaptation: the probe section, no adaptation heading or table" $PY - "$T/wb/report/index.html" <<'PYEOF'
import re, sys
s = open(sys.argv[1]).read()
assert 'id="probe"' in s and 'id="probe-stage-probe"' in s
assert not re.search(r'id="(adapt|methods)', s), re.findall(r'id="(adapt[^"]*|methods[^"]*)', s)
PYEOF
# ---- only an adaptation stage (no probe): its section and its own table -------------------
mk "$T/c.yaml" "$T/wc" "$FTS"
expect_rc "pipeline with a finetune stage and no probe" 0 "$BGFM" run "$T/c.yaml" --quiet
"$BGFM" report "$T/wc" >"$T/textc" 2>&1
rc=$?
check "text without a probe: exit 0, the stage's table, no probe on these folds" bash -c "[ $rc -eq 0 ] && grep -q \"^finetune stage 'ft_seed'\" '$T/textc' && grep -q 'no probe stage on these folds' '$T/textc'"
check "page without a probe: the section 'Probe and adaptation' with the stage" $PY - "$T/wc/report/index.html" <<'PYEOF'
import sys
s = open(sys.argv[1]).read()
assert '<h2 id="probe">Probe and adaptation</h2>' in s and 'id="adapt-ft_seed"' in s and 'id="methods-ft_seed"' in s
assert 'id="probe-stage-' not in s
PYEOF
# ---- a damaged adaptation report: bgfm report names it (exit 3) --------------------------
echo '{"kind": "finetune", "encoders": {' >"$T/wc/ft_seed/report/finetune.json"
"$BGFM" report "$T/wc" >/dev/null 2>"$T/bad.err"
rc=$?
check "a finetune.json that is not JSON: exit 3 naming the file" bash -c "[ $rc -eq 3 ] && grep -q 'ft_seed/report/finetune.json' '$T/bad.err'"
