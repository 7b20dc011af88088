#!/usr/bin/env bash
# corpus_pipeline.sh: inputs.datasets end to end (docs/corpus.md). Two tiny datasets whose
# participant ids collide (sub-01..sub-08 in both), one pretrain and one downstream:
# timeseries.h5 rows carry `dataset` beside `participant_id` and each dataset's rows
# equal those of a pipeline over that dataset alone; the graph store carries the dataset
# of every graph; pretraining read exactly the pretrain dataset's graphs; the probe
# labelled only the downstream dataset's subjects (8, none seen in pretraining); parcellate
# and connectivity outputs byte-identical on 1 and 3 ranks, the probe's results equal;
# a per-dataset TR override reaches /subjects/t_r; an entity selection and a participants
# filter; and the bad inputs refused before any work with FILE:LINE:COL (exit 2 or 3,
# nothing written).
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/a" --subjects 8 --volumes 30 --seed 1
tiny_dataset "$T/b" --subjects 8 --volumes 30 --seed 2
corpus_yaml() {  # corpus_yaml FILE WORKDIR [EXTRA KEYS OF THE beta ENTRY]; $CONN: conn's with:
local conn=${CONN:-"{windows: {length: 10, stride: 5}}"}
cat >"$1" <<YAML
name: co
workdir: $2
seed: 5
inputs:
  datasets:
    - {name: alpha, bids: $T/a/bids, role: pretrain}
    - {name: beta, bids: $T/b/bids, role: downstream, site_column: site${3:-}}
atlases:
  - {name: tiny, path: $T/a/atlas.nii.gz}
stages:
  - {name: parc, uses: parcellate, with: {standardize: zscore}}
  - {name: conn, uses: connectivity, with: $conn}
  - {name: pre, uses: pretrain, with: {epochs: 1, batch_size: 8, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0}}
  - {name: probe, uses: probe, with: {folds: 2, repeats: 1, few_shot: [1, all], pca_components: 4}}
YAML
}
corpus_yaml "$T/c.yaml" "$T/w1"
expect_rc "two datasets with colliding ids: pipeline on 1 rank" 0 $MPIRUN 1 "$BGFM" run "$T/c.yaml" --quiet
# the same dataset alone, through inputs.bids, as the reference of beta's rows
DATA="$T/b" pipeline_yaml "$T/single.yaml" "$T/ws"
expect_rc "beta alone through inputs.bids" 0 $MPIRUN 1 "$BGFM" run "$T/single.yaml" --only parc --quiet
check "timeseries.h5: dataset beside participant_id, sites per dataset, rows equal to each dataset alone" \
  $PY - "$T/w1/parc/timeseries.h5" "$T/ws/parc/timeseries.h5" <<'PYEOF'
import sys, h5py, numpy as np
f, s = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
ds = [x.decode() for x in f["subjects/dataset"][:]]
pid = [x.decode() for x in f["subjects/participant_id"][:]]
ids = ["sub-%02d" % i for i in range(1, 9)]
assert ds == ["alpha"] * 8 + ["beta"] * 8, ds
assert pid == ids + ids, pid
assert f.attrs["datasets"].decode() == "alpha,beta"
site = [x.decode() for x in f["subjects/site"][:]]
assert site == [""] * 8 + ["site-%d" % (i % 2 + 1) for i in range(8)], site
assert "dataset" not in s["subjects"] and "datasets" not in s.attrs
lab = f["subjects/label"][:]
assert list(lab[8:]) == list(s["subjects/label"][:]) == [i % 2 for i in range(8)], lab
off, soff = f["atlases/tiny/offsets"][:], s["atlases/tiny/offsets"][:]
ts, sts = f["atlases/tiny/timeseries"][:], s["atlases/tiny/timeseries"][:]
assert np.array_equal(ts[off[8]:], sts) and off[16] - off[8] == soff[-1]
assert list(f["subjects/t_r"][:]) == [2.0] * 16
PYEOF
check "graph store: /graphs/dataset = the dataset of each graph's subject row" \
  $PY - "$T/w1/parc/timeseries.h5" "$T/w1/conn/index.h5" "$T/w1/conn" <<'PYEOF'
import sys, h5py, numpy as np
t, i = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
sd = t["subjects/dataset"][:]
gd, subj = i["graphs/dataset"][:], i["graphs/subject"][:]
assert len(gd) == len(subj) > 0 and all(gd[k] == sd[subj[k]] for k in range(len(gd)))
sh = h5py.File(sys.argv[3] + "/" + i["shards"][0].decode(), "r")
assert list(sh["graphs/tiny/dataset"][:]) == list(gd[: len(sh["graphs/tiny/dataset"])])
PYEOF
check "pretraining read exactly the graphs of the pretrain dataset" \
  $PY - "$T/w1/conn/index.h5" "$T/w1/pre/final.h5" <<'PYEOF'
import sys, h5py, numpy as np
i, c = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
want = [g for g, d in enumerate(i["graphs/dataset"][:]) if d == b"alpha"]
assert list(c["pretrain_graphs"][:]) == want and len(want) > 0, (list(c["pretrain_graphs"][:]), want)
PYEOF
check "probe: only the downstream dataset's 8 subjects, dataset beside participant_id in folds.csv and embeddings.h5, none seen in pretraining" \
  $PY - "$T/w1/probe/report" <<'PYEOF'
import sys, json, csv
R = sys.argv[1]
d = json.load(open(R + "/probe.json"))
assert d["n_subjects"] == 8 and d["overlap_subjects"] == 0, (d["n_subjects"], d["overlap_subjects"])
ids = {(r["dataset"], r["participant_id"]) for r in csv.DictReader(open(R + "/folds.csv"))}
assert ids == {("beta", "sub-%02d" % k) for k in range(1, 9)}, ids
import h5py
e = h5py.File(R + "/embeddings.h5", "r")
assert {x.decode() for x in e["dataset"][:]} == {"beta"} and len(set(e["participant_id"][:])) == 8
PYEOF
# a changed role reruns what chooses graphs by role (pretrain, probe), not the rest
sed -e 's/role: downstream, site_column/role: both, site_column/' -e 's/pca_components: 4}/pca_components: 4, transductive: true}/' "$T/c.yaml" >"$T/c2.yaml"
check "beta's role changed to both: parcellate and connectivity up to date, pretrain reruns" \
  sh -c "'$BGFM' run '$T/c2.yaml' --dry-run >'$T/plan.txt' && grep -Eq 'parc +parcellate +up to date' '$T/plan.txt' && grep -Eq 'conn +connectivity +up to date' '$T/plan.txt' && grep -Eq 'pre +pretrain +run' '$T/plan.txt'"
# targets read from each downstream dataset's own table
sed 's/pca_components: 4}/pca_components: 4, targets: [age], few_shot_n: [3, all]}/' "$T/c.yaml" >"$T/t.yaml"
expect_rc "a probe with targets over the datasets' tables" 0 "$BGFM" run "$T/t.yaml" --quiet
check "regression targets: beta's ages keyed by dataset and participant" \
  $PY - "$T/w1/probe/report" "$T/b/bids/participants.tsv" <<'PYEOF'
import sys, csv, json
R = sys.argv[1]
age = {r["participant_id"]: float(r["age"]) for r in csv.DictReader(open(sys.argv[2]), delimiter="\t")}
rows = list(csv.DictReader(open(R + "/regression_predictions.csv")))
assert rows and all(r["dataset"] == "beta" and float(r["y"]) == age[r["participant_id"]] for r in rows)
assert {r["participant_id"] for r in rows} == set(age)
assert json.load(open(R + "/probe.json"))["regression"]["age"]["pooled"]["n_subjects"] == 8
PYEOF
corpus_yaml "$T/c3.yaml" "$T/w3"
expect_rc "the same pipeline on 3 ranks" 0 $MPIRUN 3 "$BGFM" run "$T/c3.yaml" --quiet
check "timeseries.h5 byte-identical on 1 and 3 ranks" cmp -s "$T/w1/parc/timeseries.h5" "$T/w3/parc/timeseries.h5"
same_store() { for f in "$T"/w1/conn/*.h5; do cmp -s "$f" "$T/w3/conn/$(basename "$f")" || return 1; done; }
check "graph store byte-identical on 1 and 3 ranks" same_store
check "pretraining read the same graphs and the probe labelled the same subjects on 3 ranks" \
  $PY - "$T/w1" "$T/w3" <<'PYEOF'
import sys, json, h5py, numpy as np
a, b = sys.argv[1], sys.argv[2]
pa, pb = (h5py.File(x + "/pre/final.h5", "r")["pretrain_graphs"][:] for x in (a, b))
assert np.array_equal(pa, pb)
ja, jb = (json.load(open(x + "/probe/report/probe.json")) for x in (a, b))
assert ja["n_subjects"] == jb["n_subjects"] == 8 and ja["overlap_subjects"] == jb["overlap_subjects"]
assert open(a + "/probe/report/folds.csv").read() == open(b + "/probe/report/folds.csv").read()
PYEOF
# per-dataset settings: a TR override, an entity selection and a participants filter
mkdir -p "$T/b/bids/sub-01/func" && cp "$T/b/bids/sub-01/func/sub-01_task-rest_bold.nii.gz" "$T/b/bids/sub-01/func/sub-01_task-nback_bold.nii.gz"
CONN="{windows: {length_s: 16, stride_s: 8}}" corpus_yaml "$T/o.yaml" "$T/wo" ", t_r: 0.8, task: rest, filter: \"sex != M\""
expect_rc "t_r, task and filter of one dataset; windows in seconds" 0 $MPIRUN 2 "$BGFM" run "$T/o.yaml" --only parc --quiet
expect_rc "connectivity with windows in seconds over TRs 2.0 and 0.8" 0 $MPIRUN 2 "$BGFM" run "$T/o.yaml" --only conn --quiet
check "each scan's windows: round(16 s / TR) volumes every round(8 s / TR), from its own TR" \
  $PY - "$T/wo/parc/timeseries.h5" "$T/wo/conn/index.h5" <<'PYEOF'
import sys, h5py, collections
t, i = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
tr, T = t["subjects/t_r"][:], t["subjects/n_volumes"][:]
got = collections.Counter(i["graphs/subject"][:])
for s in range(len(tr)):
    L, S = max(2, round(16 / tr[s])), max(1, round(8 / tr[s]))
    want = (T[s] - L) // S + 1 if T[s] >= L else 0
    assert got[s] == want, (s, tr[s], got[s], want)
assert i.attrs["window_length_s"] == 16 and i.attrs["window_stride_s"] == 8 and i.attrs["window_length"] == 0
assert set(tr) == {2.0, 0.8}
PYEOF
check "the override reaches /subjects/t_r of that dataset only; nback and sex M left out" \
  $PY - "$T/wo/parc/timeseries.h5" <<'PYEOF'
import sys, h5py
f = h5py.File(sys.argv[1], "r")
ds = [x.decode() for x in f["subjects/dataset"][:]]
pid = [x.decode() for x in f["subjects/participant_id"][:]]
img = [x.decode() for x in f["subjects/image"][:]]
tr = list(f["subjects/t_r"][:])
keep = ["sub-%02d" % (s + 1) for s in range(8) if s % 3]          # tiny_bids.py: sex M when s % 3 == 0
assert pid == ["sub-%02d" % k for k in range(1, 9)] + keep, pid
assert not any("nback" in x for x in img)
assert tr == [2.0] * 8 + [0.8] * len(keep), tr
PYEOF
rm "$T/b/bids/sub-01/func/sub-01_task-nback_bold.nii.gz"
# another coding of the label in one dataset, mapped onto the other's
$PY -c "
import csv, sys
r = list(csv.DictReader(open('$T/b/bids/participants.tsv'), delimiter='\t'))
with open('$T/b/dx.tsv', 'w') as f:
    f.write('participant_id\tdx\tsite\n')
    for x in r: f.write(x['participant_id'] + '\t' + ('1' if x['diagnosis'] == 'control' else '2') + '\t' + x['site'] + '\n')
"
corpus_yaml "$T/l.yaml" "$T/wl" ", participants: $T/b/dx.tsv, label_column: dx, label_map: [\"1=control\", \"2=patient\"]"
expect_rc "a dataset whose labels are coded 1/2 in another column, with label_map" 0 "$BGFM" run "$T/l.yaml" --only parc --quiet
check "its labels get the other dataset's codes (control 0, patient 1)" \
  $PY - "$T/wl/parc/timeseries.h5" "$T/b/bids/participants.tsv" <<'PYEOF'
import sys, csv, h5py
f = h5py.File(sys.argv[1], "r")
diag = {r["participant_id"]: r["diagnosis"] for r in csv.DictReader(open(sys.argv[2]), delimiter="\t")}
lab, ds = f["subjects/label"][:], [x.decode() for x in f["subjects/dataset"][:]]
pid = [x.decode() for x in f["subjects/participant_id"][:]]
assert f["subjects/label"].attrs["classes"] == b"control,patient"
assert f["subjects/label"].attrs["column"] == b"alpha:diagnosis,beta:dx"
for k in range(len(pid)):
    if ds[k] == "beta":
        assert lab[k] == (0 if diag[pid[k]] == "control" else 1), (k, lab[k])
assert sorted(set(lab)) == [0, 1]
PYEOF

# ---- refused before any work: FILE:LINE:COL, exit 2 (pipeline file) or 3 (data) ----
bad() {  # bad NAME RC PATTERN: write $T/bad.yaml from stdin, run it, expect RC, message, nothing written
  cat >"$T/bad.yaml"
  rm -rf "$T/wb"
  "$BGFM" run "$T/bad.yaml" >"$T/out" 2>&1
  local rc=$?
  if [ "$rc" -eq "$2" ] && grep -Eq "$3" "$T/out" && [ ! -e "$T/wb/parc" ]; then ok "$1"
  else notok "$1 (exit $rc)"; sed 's/^/# /' "$T/out"; fi
}
head_yaml() { printf 'name: bad\nworkdir: %s\ninputs:\n  datasets:\n' "$T/wb"; }
tail_yaml() { printf 'atlases: [{name: tiny, path: %s}]\nstages:\n  - {name: parc, uses: parcellate}\n  - {name: conn, uses: connectivity}\n  - {name: pre, uses: pretrain}\n  - {name: probe, uses: probe}\n' "$T/a/atlas.nii.gz"; }
{ head_yaml; printf '    - {name: x, bids: %s, role: pretrain}\n    - {name: x, bids: %s, role: downstream}\n' "$T/a/bids" "$T/b/bids"; tail_yaml; } |
  bad "two datasets with the same name" 2 "bad.yaml:6:14: duplicate dataset name 'x' \(first at line 5\)"
{ head_yaml; printf '    - {name: x, bids: %s, role: pretrain}\n    - {name: y, bids: %s, role: }\n' "$T/a/bids" "$T/b/bids"; tail_yaml; } |
  bad "an empty role" 2 "bad.yaml:6:[0-9]+: no value given.*inputs.datasets.y.role"
{ head_yaml; printf '    - {name: x, bids: %s, role: pretrain}\n    - {name: y, bids: %s, role: downstreem}\n' "$T/a/bids" "$T/b/bids"; tail_yaml; } |
  bad "a role that is not a role" 2 "bad.yaml:6:[0-9]+: .*downstream"
{ head_yaml; printf '    - {name: x, bids: %s}\n' "$T/a/bids"; tail_yaml; } |
  bad "a dataset without role" 2 "bad.yaml:5:7: missing required key \(key 'inputs.datasets.x.role'\)"
{ head_yaml; printf '    - {name: x, bids: %s, role: downstream}\n' "$T/a/bids"; tail_yaml; } |
  bad "a pretrain stage without a pretrain dataset" 2 "bad.yaml:[0-9]+:[0-9]+: stage 'pre' \(pretrain\) needs a dataset with role pretrain"
printf 'name: bad\nworkdir: %s\ninputs:\n  bids: %s\n  datasets:\n    - {name: x, bids: %s, role: both}\n' "$T/wb" "$T/a/bids" "$T/a/bids" | { cat; tail_yaml; } |
  bad "inputs.bids and inputs.datasets together" 2 "bad.yaml:4:9: give either inputs.bids"
mkdir -p "$T/nop" && cp -r "$T/b/bids/sub-01" "$T/nop/"
{ head_yaml; printf '    - {name: x, bids: %s, role: pretrain}\n    - {name: y, bids: %s, role: downstream}\n' "$T/a/bids" "$T/nop"; tail_yaml; } |
  bad "a dataset folder without participants.tsv" 3 "bad.yaml:6:23: dataset 'y': the participants table '.*nop/participants.tsv' does not exist"
{ head_yaml; printf '    - {name: x, bids: %s, role: pretrain}\n    - {name: y, bids: %s, role: downstream, label_column: group}\n' "$T/a/bids" "$T/b/bids"; tail_yaml; } |
  bad "a label column missing in one dataset" 3 "bad.yaml:6:[0-9]+: dataset 'y': .* has no column 'group'.*label_column"
{ head_yaml; printf '    - {name: x, bids: %s, role: pretrain, filter: "handedness == R"}\n    - {name: y, bids: %s, role: downstream}\n' "$T/a/bids" "$T/b/bids"; tail_yaml; } |
  bad "a filter on a column the table lacks" 3 "bad.yaml:5:[0-9]+: dataset 'x': .* has no column 'handedness'"
{ head_yaml; printf '    - {name: x, bids: %s, role: pretrain, filter: "sex"}\n    - {name: y, bids: %s, role: downstream}\n' "$T/a/bids" "$T/b/bids"; tail_yaml; } |
  bad "a filter that is not COLUMN OP VALUE" 2 "bad.yaml:5:[0-9]+: 'sex' is not a filter"
resolved() { "$BGFM" validate "$1" | sed '/^# plan/,$d'; }
check "bgfm validate prints the datasets resolved, and that text parses back to itself" \
  bash -c "$(declare -f resolved); BGFM='$BGFM'; resolved '$T/c.yaml' >'$T/v.yaml' && resolved '$T/v.yaml' >'$T/v2.yaml' && grep -q 'role: downstream' '$T/v.yaml' && cmp -s <(tail -n +3 '$T/v.yaml') <(tail -n +3 '$T/v2.yaml')"
