#!/usr/bin/env bash
# corpus_audit.sh: the leakage audit of inputs.datasets pipelines (docs/corpus.md), and a
# model from another pipeline. Planted overlaps: a dataset with role `both` (its subjects
# pretrained on and probed) and a subject map pairing a pretrain subject with a
# downstream one: each refused (exit 3) unless the probe says `transductive: true`, then
# recorded in probe.json and report/audit.tsv, which are checked against the pairs
# recomputed in Python from the graph store, /pretrain_graphs and folds.csv. A map of two
# downstream subjects puts them in one fold. A map naming an unknown subject is refused
# before any work. `checkpoint: PATH` from another workdir: the model card (bgfm inspect)
# and the audit against its /pretrain_subjects; an atlas or RWSE steps the model lacks
# refused before any work (exit 3).
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/a" --subjects 8 --volumes 30 --seed 1
tiny_dataset "$T/b" --subjects 8 --volumes 30 --seed 2
PRE="{name: pre, uses: pretrain, with: {epochs: 1, batch_size: 8, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0}}"
mk() {  # mk FILE WORKDIR ROLE_A PROBE_WITH [INPUTS_EXTRA] [PRETRAIN_LINE]
cat >"$1" <<YAML
name: au
workdir: $2
seed: 5
inputs:
  ${5:-label_column: diagnosis}
  datasets:
    - {name: alpha, bids: $T/a/bids, role: $3}
    - {name: beta, bids: $T/b/bids, role: downstream}
atlases:
  - {name: tiny, path: $T/a/atlas.nii.gz}
stages:
  - {name: parc, uses: parcellate, with: {standardize: zscore}}
  - {name: conn, uses: connectivity, with: {windows: {length: 10, stride: 5}}}
  - ${6:-$PRE}
  - {name: probe, uses: probe, with: $4}
YAML
}
PW="folds: 2, repeats: 1, few_shot: [1, all], pca_components: 4"
# ---- same subjects in both roles ----
mk "$T/both.yaml" "$T/wb" both "{$PW}"
"$BGFM" run "$T/both.yaml" --quiet >"$T/out" 2>&1
rc=$?
if [ $rc -eq 3 ] && grep -q "probe: 8 probed subject(s) were read by pretraining ('alpha/sub-01', 'alpha/sub-02'" "$T/out" && grep -q "transductive: true" "$T/out" && [ ! -e "$T/wb/probe" ]; then
  ok "role both without transductive: refused (exit 3), naming the subjects, no report"
else notok "role both refused (exit $rc)"; sed 's/^/# /' "$T/out"; fi
mk "$T/both.yaml" "$T/wb" both "{$PW, transductive: true}"
expect_rc "the same with transductive: true (pretrain and the rest up to date)" 0 "$BGFM" run "$T/both.yaml" --quiet
audit_check() {  # audit_check WORKDIR MAP_PAIRS_PY: probe.json audit and audit.tsv vs a recomputation
  $PY - "$1" "$2" <<'PYEOF'
import sys, json, csv, h5py, collections
w, pairs = sys.argv[1], eval(sys.argv[2])
idx = h5py.File(w + "/conn/index.h5", "r")
ds = [x.decode() for x in idx["graphs/dataset"][:]]
pid = [x.decode() for x in idx["graphs/participant_id"][:]]
pre = h5py.File(w + "/pre/final.h5", "r")["pretrain_graphs"][:]
canon = {}
for a, b in pairs:                      # groups: the smallest key names the group
    ga, gb = canon.get(a, a), canon.get(b, b)
    m = min(ga, gb)
    for k in list(canon) + [a, b]:
        if canon.get(k, k) in (ga, gb): canon[k] = m
key = lambda g: ds[g] + "/" + pid[g]
read = {key(g) for g in pre}
folds = list(csv.DictReader(open(w + "/probe/report/folds.csv")))
fkey = lambda r: r["dataset"] + "/" + r["participant_id"]      # the subject's (group's) key
probed_subj = {fkey(r) for r in folds}
probed_pairs = {key(int(r["graph"])) for r in folds}
assert all(canon.get(key(int(r["graph"])), key(int(r["graph"]))) == fkey(r) for r in folds)
subj = lambda k: canon.get(k, k)
overlap = sorted({subj(k) for k in read} & {subj(k) for k in probed_pairs})
d = json.load(open(w + "/probe/report/probe.json"))
a = d["audit"]
assert a["overlap"] == overlap and a["overlap_subjects"] == len(overlap) == d["overlap_subjects"], (a, overlap)
assert a["pretrain_pairs"] == len(read) and a["probe_pairs"] == len(probed_pairs), a
assert a["pretrain_subjects"] == len({subj(k) for k in read}) and a["probe_subjects"] == len(probed_subj)
rows = list(csv.DictReader(open(w + "/probe/report/audit.tsv"), delimiter="\t"))
got = {(r["dataset"] + "/" + r["participant_id"]): r for r in rows}
assert set(got) == read | probed_pairs, set(got) ^ (read | probed_pairs)
for k, r in got.items():
    assert r["subject"] == subj(k) and int(r["pretrain"]) == (k in read) and int(r["probe"]) == (k in probed_pairs)
    assert int(r["overlap"]) == (subj(k) in overlap), r
print(len(overlap), a["transductive"])
PYEOF
}
out=$(audit_check "$T/wb" "[]") && [ "$out" = "8 True" ] && ok "audit of role both: 8 overlapping subjects, transductive recorded" || notok "audit of role both ($out)"

# ---- a subject map: alpha/sub-03 (pretrain) is beta/sub-05 (downstream) ----
printf 'subject\tsame_as\nalpha/sub-03\tbeta/sub-05\n' >"$T/map.tsv"
mk "$T/map.yaml" "$T/wm" pretrain "{$PW}" "subject_map: $T/map.tsv"
"$BGFM" run "$T/map.yaml" --quiet >"$T/out" 2>&1
rc=$?
if [ $rc -eq 3 ] && grep -q "1 probed subject(s) were read by pretraining ('alpha/sub-03'" "$T/out" && [ ! -e "$T/wm/probe" ]; then
  ok "a mapped pair across roles: refused (exit 3) naming it"
else notok "a mapped pair refused (exit $rc)"; sed 's/^/# /' "$T/out"; fi
mk "$T/map.yaml" "$T/wm" pretrain "{$PW, transductive: true}" "subject_map: $T/map.tsv"
expect_rc "the mapped pair with transductive: true" 0 "$BGFM" run "$T/map.yaml" --quiet
out=$(audit_check "$T/wm" "[('alpha/sub-03', 'beta/sub-05')]") && [ "$out" = "1 True" ] && ok "audit of the mapped pair: one subject in both" || notok "audit of the mapped pair ($out)"
# two downstream subjects that are one person: one subject for the folds
printf 'a\tb\nbeta/sub-01\tbeta/sub-03\n' >"$T/map2.tsv"
mk "$T/map2.yaml" "$T/wm2" pretrain "{$PW}" "subject_map: $T/map2.tsv"
expect_rc "a map of two downstream subjects" 0 "$BGFM" run "$T/map2.yaml" --quiet
check "the two are one subject in one fold; 7 probed subjects, no overlap" $PY - "$T/wm2" <<'PYEOF'
import sys, json, csv
w = sys.argv[1]
rows = list(csv.DictReader(open(w + "/probe/report/folds.csv")))
ids = {(r["dataset"], r["participant_id"]) for r in rows}
assert ("beta", "sub-03") not in ids and len(ids) == 7, ids
g3 = {int(r["graph"]) for r in rows if r["participant_id"] == "sub-01"}
import h5py
pid = h5py.File(w + "/conn/index.h5", "r")["graphs/participant_id"][:]
assert {pid[g].decode() for g in g3} == {"sub-01", "sub-03"}, "sub-03's graphs are keyed as sub-01's"
assert len({r["fold"] for r in rows if r["participant_id"] == "sub-01"}) == 1
d = json.load(open(w + "/probe/report/probe.json"))
assert d["probed_subjects"] == 7 and d["audit"]["overlap_subjects"] == 0
PYEOF
printf 'a\tb\nbeta/sub-01\tbeta/sub-99\n' >"$T/map3.tsv"
mk "$T/map3.yaml" "$T/wm3" pretrain "{$PW}" "subject_map: $T/map3.tsv"
"$BGFM" run "$T/map3.yaml" --quiet >"$T/out" 2>&1
rc=$?
if [ $rc -eq 3 ] && grep -Eq "map3.yaml:5:16: .*map3.tsv:2: 'beta/sub-99': dataset 'beta' has no participant 'sub-99'" "$T/out" && [ ! -e "$T/wm3/parc" ]; then
  ok "a subject map naming an unknown subject: refused before any work (exit 3, both positions)"
else notok "unknown subject in the map (exit $rc)"; sed 's/^/# /' "$T/out"; fi

# ---- a model from another pipeline (another workdir) ----
mk "$T/m.yaml" "$T/wx" pretrain "{$PW}"
expect_rc "pipeline 1: pretrain on alpha" 0 "$BGFM" run "$T/m.yaml" --quiet
check "bgfm inspect prints the model card; its counts match the graph store" \
  $PY - "$BGFM" "$T/wx" <<'PYEOF'
import sys, json, subprocess, h5py
b, w = sys.argv[1], sys.argv[2]
txt = subprocess.run([b, "inspect", w + "/pre/final.h5"], capture_output=True, text=True, check=True).stdout
assert "model card (what the model was pretrained on):" in txt, txt
j = json.loads(subprocess.run([b, "inspect", w + "/pre/final.h5", "--json"], capture_output=True, text=True, check=True).stdout)
c = j["model_card"]
idx = h5py.File(w + "/conn/index.h5", "r")
pre = h5py.File(w + "/pre/final.h5", "r")["pretrain_graphs"][:]
assert c["graphs"] == len(pre) and c["subjects"] == 8 and c["scans"] == 8
assert [(x["name"], x["role"], x["subjects"], x["graphs"]) for x in c["datasets"]] == [("alpha", "pretrain", 8, len(pre))]
assert c["atlases"] == [{"name": "tiny", "nodes": 4, "graphs": len(pre)}] and c["rwse_steps"] == idx.attrs["rwse_steps"]
assert "epochs: 1" in c["options"]
keys = [x.decode() for x in h5py.File(w + "/pre/final.h5", "r")["pretrain_subjects"][:]]
assert keys == ["alpha/sub-%02d" % i for i in range(1, 9)], keys
PYEOF
ext() {  # ext FILE WORKDIR [ATLAS_LINES] [CONN_WITH]
local conn=${4:-"{windows: {length: 10, stride: 5}}"}
cat >"$1" <<YAML
name: ex
workdir: $2
inputs:
  datasets:
    - {name: beta, bids: $T/b/bids, role: downstream}
atlases:
  - {name: tiny, path: $T/a/atlas.nii.gz}
${3:-}
stages:
  - {name: parc, uses: parcellate, with: {standardize: zscore}}
  - {name: conn, uses: connectivity, with: $conn}
  - {name: probe, uses: probe, with: {$PW, checkpoint: $T/wx/pre/final.h5}}
YAML
}
ext "$T/e.yaml" "$T/we"
expect_rc "pipeline 2 in another workdir probes beta with pipeline 1's final.h5" 0 "$BGFM" run "$T/e.yaml" --quiet
check "its report names the checkpoint; the audit reads its 8 pretrain subjects, no overlap" $PY - "$T/we" "$T/wx/pre/final.h5" <<'PYEOF'
import sys, json
d = json.load(open(sys.argv[1] + "/probe/report/probe.json"))
assert d["checkpoint"] == sys.argv[2] and d["n_subjects"] == 8
a = d["audit"]
assert a["pretrain_subjects"] == 8 and a["probe_subjects"] == 8 and a["overlap_subjects"] == 0, a
PYEOF
ext "$T/e2.yaml" "$T/we2" "  - {name: tiny2, path: $T/b/atlas.nii.gz}"
"$BGFM" run "$T/e2.yaml" --quiet >"$T/out" 2>&1
rc=$?
if [ $rc -eq 3 ] && grep -Eq "e2.yaml:[0-9]+:[0-9]+: atlas 'tiny2' of this pipeline is not in the checkpoint .* whose atlases are tiny \(4 nodes\)" "$T/out" && [ ! -e "$T/we2/parc" ]; then
  ok "an atlas the model lacks: refused before any work (exit 3), naming it"
else notok "atlas not in the checkpoint (exit $rc)"; sed 's/^/# /' "$T/out"; fi
ext "$T/e3.yaml" "$T/we3" "" "{windows: {length: 10, stride: 5}, rwse_steps: 3}"
"$BGFM" run "$T/e3.yaml" --quiet >"$T/out" 2>&1
rc=$?
if [ $rc -eq 3 ] && grep -q "stage 'conn' makes graphs with 3 RWSE steps but the checkpoint" "$T/out" && [ ! -e "$T/we3/parc" ]; then
  ok "other RWSE steps than the model's: refused before any work (exit 3)"
else notok "RWSE steps differ (exit $rc)"; sed 's/^/# /' "$T/out"; fi
